/* test_api_common.c: the API's body parsing, through hg_http_virtual (a
 * request without a socket, answered to a callback). */
#include "api/api.h"
#include "base/common.h"
#include "hgtest.h"

#include <stdlib.h>

typedef struct answer {
  int status;
  char body[1024];
} answer_t;

static void on_answer(int status, const char *body, size_t len, void *ud) {
  answer_t *a = ud;
  a->status = status;
  snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body);
}

/* Answers 200 with the parsed object, or hg_api_parse_body's own answer. */
static void parse_handler(hg_http_req_t *req, void *ud) {
  (void)ud;
  json_t *doc = hg_api_parse_body(req, 0);
  if (doc != NULL) hg_http_respond_json(req, 200, doc);
}

static answer_t post(const char *body, size_t len) {
  answer_t a = {0, ""};
  CHECK_EQ_INT(hg_http_virtual("POST", "/x", "Bearer k", body, len, parse_handler, NULL, on_answer, &a), 0);
  return a;
}

static void parses_objects(void) {
  answer_t a = post("{\"a\":1}", 7);
  CHECK_EQ_INT(a.status, 200);
  CHECK_EQ_STR(a.body, "{\"a\":1}");
  a = post("[1]", 3);
  CHECK_EQ_INT(a.status, 400);
  a = post("{\"a\":1,\"a\":2}", 13);
  CHECK_EQ_INT(a.status, 400);
}

/* Found by tests/fuzz (fuzz_json_scan, then fuzz_body): jansson took a NUL
 * byte between tokens for nothing, so {"a":1<NUL>} was accepted, and the
 * event API stored and delivered its raw text, NUL included. */
static void refuses_nul_bytes(void) {
  static const char body[] = "{\"type\":\"user.created\",\"data\":{\"x\":1\0}}";
  answer_t a = post(body, sizeof(body) - 1);
  CHECK_EQ_INT(a.status, 400);
  CHECK(strstr(a.body, "\"type\":\"invalid_json\"") != NULL);
  CHECK(strstr(a.body, "malformed JSON at byte 36: NUL byte in the body") != NULL);
  static const char trailing[] = "{\"a\":1}\0";
  a = post(trailing, sizeof(trailing) - 1);
  CHECK_EQ_INT(a.status, 400);
  /* An escaped NUL is still jansson's to refuse. */
  a = post("{\"a\":\"\\u0000\"}", 14);
  CHECK_EQ_INT(a.status, 400);
}

/* Found by tests/fuzz/fuzz_body.c: jansson's message quoted the invalid
 * UTF-8 it stopped at; the answer could not be encoded and went out as a
 * 500 "out of memory" instead of this 400. */
static void malformed_utf8_is_400(void) {
  static const char body[] = "{\"type\":\"uated\",\"data\":{\"k\\u006\xc5\x86\xdd\xc5\xdd\x89\xfd\x82,\"x\":1}";
  answer_t a = post(body, sizeof(body) - 1);
  CHECK_EQ_INT(a.status, 400);
  CHECK(strstr(a.body, "\"type\":\"invalid_json\"") != NULL);
  CHECK(strstr(a.body, "\"field\":\"body\"") != NULL);
  a = post("{\"a\":\"\xff\"}", 8);
  CHECK_EQ_INT(a.status, 400);
  CHECK(strstr(a.body, "\"type\":\"invalid_json\"") != NULL);
}

int main(void) {
  RUN(parses_objects);
  RUN(refuses_nul_bytes);
  RUN(malformed_utf8_is_400);
  return HGT_DONE();
}
