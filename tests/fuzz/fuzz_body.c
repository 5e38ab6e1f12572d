/* fuzz_body.c: the bodies the API validates, through the real handlers:
 * the input is one body, sent with the admin key as a single event
 * (POST /v1/events: the scanner's fast path or jansson's), a batch (POST
 * /v1/events/batch), a new webhook (POST /v1/webhooks) and a change to one
 * (PATCH /v1/webhooks/{id}), the last also as an org-limited key. See
 * fuzz_app.h for the app.
 *
 * Checked, besides memory safety, leaks and UB: each answer is one JSON
 * object, never 500, with an error object on 4xx; an accepted event's
 * body was JSON without NUL bytes (the text the gateway stores and
 * delivers); a
 * webhook answered 201 has an id and a whsec_ secret. */
#include "fuzz_app.h"
#include "base/json_scan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char wh[64];

static void send_one(const char *method, const char *target, size_t key, const uint8_t *data, size_t size,
                     hgf_answer_t *ans) {
  if (hgf_request(method, target, hgf_auth(key), (const char *)data, size, ans) != 0) abort();
  hgf_check_answer(method, target, ans);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  hgf_app();
  hgf_answer_t ans;
  if (wh[0] == '\0') {
    static const char w[] = "{\"url\":\"https://example.com/hook\",\"events\":[\"user.created\"]}";
    send_one("POST", "/v1/webhooks", 0, (const uint8_t *)w, sizeof(w) - 1, &ans);
    hgf_note_ids(&ans);
    free(ans.body);
    char t[64];
    hgf_expand("/v1/webhooks/{wh}", t, sizeof(t));
    snprintf(wh, sizeof(wh), "%s", t);
  }
  int accepted = 0;
  send_one("POST", "/v1/events", 0, data, size, &ans);
  accepted |= ans.status == 202 || ans.status == 200;
  free(ans.body);
  send_one("POST", "/v1/events/batch", 0, data, size, &ans);
  accepted |= ans.status == 202 || ans.status == 200;
  free(ans.body);
  if (accepted) {
    /* What was stored is what gets delivered: it must be JSON, by the
     * scanner (which takes numbers of any size, as RFC 8259 does) or by
     * jansson (which takes nesting deeper than the scanner's 256). */
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    if ((doc == NULL && !hg_json_valid((const char *)data, size)) || memchr(data, '\0', size) != NULL) {
      fprintf(stderr, "fuzz_body: an event body that is not JSON was accepted: %.*s\n", (int)size, data);
      abort();
    }
    json_decref(doc);
  }
  send_one("POST", "/v1/webhooks", 0, data, size, &ans);
  if (ans.status == 201) {
    json_t *doc = json_loadb(ans.body, ans.body_len, 0, NULL);
    const char *secret = json_string_value(json_object_get(doc, "secret"));
    const char *id = json_string_value(json_object_get(json_object_get(doc, "webhook"), "id"));
    if (id == NULL) id = json_string_value(json_object_get(doc, "id"));
    if (secret == NULL || strncmp(secret, "whsec_", 6) != 0 || id == NULL) {
      fprintf(stderr, "fuzz_body: a created webhook without id or secret: %s\n", ans.body);
      abort();
    }
    json_decref(doc);
  }
  free(ans.body);
  send_one("PATCH", wh, 0, data, size, &ans);
  free(ans.body);
  send_one("PATCH", wh, 4, data, size, &ans);
  free(ans.body);
  return 0;
}
