/* fuzz_json_scan.c: the allocation-free JSON scanner (core/json_scan.c)
 * against jansson, as a second opinion.
 *
 * The input is JSON text. Checked:
 *  - what jansson accepts (duplicate keys refused, nesting well under the
 *    scanner's 256) the scanner accepts, and what the scanner accepts
 *    jansson parses, save numbers too big for jansson's int64 or double;
 *  - for a valid object: walking its members with hg_json_next_member
 *    visits each key once, and each member's span, and what
 *    hg_json_member_span finds for its key, parses to jansson's value;
 *  - for a valid array: hg_json_array_spans splits it into jansson's
 *    elements.
 * (jansson skips a NUL byte between tokens, so text holding one is only
 * checked in the second direction.)
 * The text sits in a buffer of exactly its length, so any read past it is
 * an ASan report. */
#include "base/common.h"
#include "base/json_scan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int depth(json_t *j) {
  int d = 0;
  if (json_is_object(j)) {
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
      int c = depth(v);
      if (c > d) d = c;
    }
    return d + 1;
  }
  if (json_is_array(j)) {
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) {
      int c = depth(v);
      if (c > d) d = c;
    }
    return d + 1;
  }
  return 0;
}

static void fail(const char *what, const char *text, size_t len) {
  fprintf(stderr, "json_scan: %s\ninput (%zu bytes): %.*s\n", what, len, (int)(len > 2000 ? 2000 : len), text);
  abort();
}

/* Parses a span on its own (a copy of exactly its length). */
static json_t *load_span(const char *p, size_t n) {
  char *c = malloc(n ? n : 1);
  if (c == NULL) abort();
  memcpy(c, p, n);
  json_t *j = json_loadb(c, n, JSON_DECODE_ANY, NULL);
  free(c);
  return j;
}

static int too_big(const json_error_t *e) { return strstr(e->text, "too big") || strstr(e->text, "overflow"); }

static void check_object(const char *t, size_t n, json_t *doc) {
  size_t pos = 0, klen, vlen, members = 0;
  const char *k, *v;
  int esc;
  while (hg_json_next_member(t, n, &pos, &k, &klen, &esc, &v, &vlen)) {
    if (k < t || k + klen > t + n || v < t || v + vlen > t + n || vlen == 0) fail("member span outside the text", t, n);
    members++;
    if (esc || memchr(k, '\0', klen)) continue;
    char key[256];
    if (klen >= sizeof(key)) continue;
    memcpy(key, k, klen);
    key[klen] = '\0';
    json_t *want = json_object_get(doc, key);
    json_t *got = load_span(v, vlen);
    if (want == NULL || got == NULL || !json_equal(want, got)) fail("a member's span is not its value", t, n);
    json_decref(got);
    const char *mv;
    size_t mlen;
    if (hg_json_member_span(t, n, key, &mv, &mlen) != 0 || mv != v || mlen != vlen)
      fail("hg_json_member_span disagrees with hg_json_next_member", t, n);
  }
  if (members != json_object_size(doc)) fail("member count differs from jansson's", t, n);
  const char *mv;
  size_t mlen;
  if (json_object_get(doc, "\001absent") == NULL && hg_json_member_span(t, n, "\001absent", &mv, &mlen) != HG_ENOTFOUND)
    fail("hg_json_member_span found an absent key", t, n);
}

static void check_array(const char *t, size_t n, json_t *doc) {
  size_t want = json_array_size(doc), got = 0;
  const char **vals = malloc((want + 1) * sizeof(*vals));
  size_t *lens = malloc((want + 1) * sizeof(*lens));
  if (vals == NULL || lens == NULL) abort();
  if (hg_json_array_spans(t, n, vals, lens, want + 1, &got) != 0) fail("hg_json_array_spans failed on a valid array", t, n);
  if (got != want) fail("element count differs from jansson's", t, n);
  for (size_t i = 0; i < got; i++) {
    if (vals[i] < t || vals[i] + lens[i] > t + n) fail("element span outside the text", t, n);
    json_t *e = load_span(vals[i], lens[i]);
    if (e == NULL || !json_equal(e, json_array_get(doc, i))) fail("an element's span is not its value", t, n);
    json_decref(e);
  }
  if (want > 0 && hg_json_array_spans(t, n, vals, lens, want - 1, &got) != HG_ETOOBIG)
    fail("hg_json_array_spans did not stop at max", t, n);
  free(vals);
  free(lens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *t = malloc(size ? size : 1);
  if (t == NULL) return 0;
  memcpy(t, data, size);
  int valid = hg_json_valid(t, size);
  json_error_t err;
  json_t *strict = json_loadb(t, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
  /* jansson reads a NUL byte between tokens as nothing at all
   * ({"a":1<NUL>} parses): no oracle for such text. */
  int has_nul = memchr(t, '\0', size) != NULL;
  if (strict != NULL && depth(strict) <= 200 && !valid && !has_nul) fail("jansson accepts what the scanner refuses", t, size);
  if (valid) {
    json_t *doc = json_loadb(t, size, JSON_DECODE_ANY, &err);
    if (doc == NULL && !too_big(&err)) {
      fprintf(stderr, "jansson: %s\n", err.text);
      fail("the scanner accepts what jansson refuses", t, size);
    }
    json_decref(doc);
    /* Spans, where jansson's tree is the whole truth: no key given twice,
     * even spelled differently. */
    if (strict != NULL && json_is_object(strict)) check_object(t, size, strict);
    if (strict != NULL && json_is_array(strict)) check_array(t, size, strict);
  }
  json_decref(strict);
  free(t);
  return 0;
}
