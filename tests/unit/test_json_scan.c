/* The scanner must agree with jansson (the general path) on what is valid
 * JSON, except where json_scan.h says otherwise (numbers too big for
 * jansson's types are valid JSON). */
#include "base/common.h"
#include "hgtest.h"
#include "base/json_scan.h"

#include <jansson.h>
#include <stdlib.h>

static const char *const valid[] = {
    "{}", "[]", "0", "-0", "1.5e+10", "\"\"", "true", "false", "null", " {\"a\" : [1, 2, {\"b\": null}] } ",
    "{\"type\":\"user.created\",\"data\":{\"pad\":\"xxxx\"}}", "\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\"",
    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "[[[[[[]]]]]]", "{\"a\":1,\"b\":{\"a\":2}}", "-12.5E-3",
};

static const char *const invalid[] = {
    "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "tru",
    "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u0000\"", "\"\\udc00\"", "\"\\ud800\"", "\"\\ud800\\u0041\"",
    "\"\x01\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xe2\x82\"",
    "{\"a\":1,\"a\":2}", "[1 2]", "{} {}", "[\"a\"]x", "{\"a\":1}}",
};

static int jansson_ok(const char *s) {
  json_t *j = json_loadb(s, strlen(s), JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
  json_decref(j);
  return j != NULL;
}

static void agrees_with_jansson(void) {
  for (size_t i = 0; i < HG_ARRAY_LEN(valid); i++) {
    CHECK(hg_json_valid(valid[i], strlen(valid[i])));
    CHECK(jansson_ok(valid[i]));
    if (!hg_json_valid(valid[i], strlen(valid[i]))) fprintf(stderr, "  refused: %s\n", valid[i]);
  }
  for (size_t i = 0; i < HG_ARRAY_LEN(invalid); i++) {
    CHECK(!hg_json_valid(invalid[i], strlen(invalid[i])));
    CHECK(!jansson_ok(invalid[i]));
    if (hg_json_valid(invalid[i], strlen(invalid[i]))) fprintf(stderr, "  accepted: %s\n", invalid[i]);
  }
}

/* Strings are skipped sixteen (SSE2) or eight bytes at a time: every
 * special byte must still be seen wherever it falls in a block or a word,
 * and a string may end anywhere. */
static void special_bytes_at_every_offset(void) {
  static const char *const inserts[] = {"\"", "\\", "\x01", "\x1f", "\xc3", "\xc3\xa9", "\\n", "\\u00e9", "\x7f", " ", "\x80", "\xff", "\xe2\x82\xac"};
  char text[64];
  for (size_t len = 0; len < 40; len++) {
    for (size_t at = 0; at <= len; at++) {
      for (size_t k = 0; k < HG_ARRAY_LEN(inserts); k++) {
        size_t n = 0;
        text[n++] = '"';
        for (size_t i = 0; i < at; i++) text[n++] = 'a' + (char)(i % 26);
        size_t il = strlen(inserts[k]);
        memcpy(text + n, inserts[k], il);
        n += il;
        for (size_t i = at; i < len; i++) text[n++] = 'A' + (char)(i % 26);
        text[n++] = '"';
        text[n] = '\0';
        int want = jansson_ok(text), got = hg_json_valid(text, n);
        CHECK_EQ_INT(got, want);
        if (got != want) fprintf(stderr, "  len %zu at %zu insert %zu\n", len, at, k);
        /* A valid string cut short (its closing quote gone) is not valid,
         * and the scanner reads nothing past the end (ASan would say). */
        if (want) CHECK(!hg_json_valid(text, n - 1));
      }
    }
  }
}

static void depth_limit(void) {
  char deep[1200];
  size_t n = 0;
  for (int i = 0; i < 300; i++) deep[n++] = '[';
  for (int i = 0; i < 300; i++) deep[n++] = ']';
  CHECK(!hg_json_valid(deep, n));
  CHECK(hg_json_valid(deep + 50, n - 100)); /* 250 deep */
}

static void members(void) {
  const char *t = " { \"type\" : \"x\", \"d\\u0061ta\": {\"a\": [1,{\"b\":\"}\"}]}, \"n\": -1.5 } ";
  size_t pos = 0, kl, vl;
  const char *k, *v;
  int esc;
  CHECK(hg_json_next_member(t, strlen(t), &pos, &k, &kl, &esc, &v, &vl));
  CHECK(kl == 4 && memcmp(k, "type", 4) == 0 && !esc && vl == 3);
  CHECK(hg_json_next_member(t, strlen(t), &pos, &k, &kl, &esc, &v, &vl));
  CHECK(esc);
  CHECK(vl == strlen("{\"a\": [1,{\"b\":\"}\"}]}") && memcmp(v, "{\"a\"", 4) == 0);
  CHECK(hg_json_next_member(t, strlen(t), &pos, &k, &kl, &esc, &v, &vl));
  CHECK(vl == 4 && memcmp(v, "-1.5", 4) == 0);
  CHECK(!hg_json_next_member(t, strlen(t), &pos, &k, &kl, &esc, &v, &vl));
  CHECK_EQ_INT(hg_json_member_span(t, strlen(t), "n", &v, &vl), 0);
  CHECK_EQ_INT(hg_json_member_span(t, strlen(t), "data", &v, &vl), HG_ENOTFOUND); /* escaped key: not matched */
  const char *a = "[1, \"a,b\", {\"c\": [2]}, null]";
  const char *vals[8];
  size_t lens[8], n;
  CHECK_EQ_INT(hg_json_array_spans(a, strlen(a), vals, lens, 8, &n), 0);
  CHECK_EQ_INT(n, 4);
  CHECK(lens[1] == 5 && memcmp(vals[1], "\"a,b\"", 5) == 0);
  CHECK(lens[2] == 10);
  CHECK_EQ_INT(hg_json_array_spans(a, strlen(a), vals, lens, 2, &n), HG_ETOOBIG);
}

int main(void) {
  RUN(agrees_with_jansson);
  RUN(special_bytes_at_every_offset);
  RUN(depth_limit);
  RUN(members);
  return HGT_DONE();
}
