/* json_scan.c: a strict JSON validator and span finders that allocate
 * nothing. */
#include "base/json_scan.h"

#include "base/common.h"

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_DEPTH 256
#define DUP_KEYS 32 /* keys per object checked for duplicates */

typedef struct scan {
  const unsigned char *p, *end;
  int depth;
} scan_t;

static void ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hex4(const unsigned char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if ((c | 32) >= 'a' && (c | 32) <= 'f') v |= (uint32_t)((c | 32) - 'a' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/* Eight bytes at a time: nonzero when any of them is a quote, a backslash,
 * a control character (< 0x20) or not ASCII, i.e. needs a closer look.
 * (The classic "has a zero byte" test: (x - 0x01..) & ~x & 0x80...) */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static inline uint64_t special8(uint64_t x) {
  uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
  uint64_t zq = (q - ONES) & ~q, zb = (b - ONES) & ~b, ctl = (x - ONES * 0x20) & ~x;
  return (zq | zb | ctl | x) & HIGHS;
}

static int string(scan_t *s) {
  s->p++; /* the opening quote */
  while (s->p < s->end) {
    /* Runs of plain ASCII, the bulk of most payloads, skipped sixteen
     * bytes at a time where SSE2 is there (every x86-64), else in words. */
#ifdef __SSE2__
    while (s->end - s->p >= 16) {
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s->p);
      /* Signed: bytes of 0x80 and up are negative, so "< 0x20" also
       * catches everything that is not ASCII. */
      __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"')), backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
      __m128i hit = _mm_or_si128(_mm_or_si128(quote, backslash), _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
      int m = _mm_movemask_epi8(hit);
      if (m != 0) {
        s->p += __builtin_ctz((unsigned)m);
        break;
      }
      s->p += 16;
    }
#endif
    while (s->end - s->p >= 8) {
      uint64_t x;
      memcpy(&x, s->p, 8);
      if (special8(x) != 0) break;
      s->p += 8;
    }
    if (s->p >= s->end) break;
    unsigned char c = *s->p;
    if (c == '"') {
      s->p++;
      return 0;
    }
    if (c < 0x20) return -1;
    if (c == '\\') {
      if (s->end - s->p < 2) return -1;
      c = s->p[1];
      if (c == 'u') {
        uint32_t cp, lo;
        if (s->end - s->p < 6 || hex4(s->p + 2, &cp) != 0) return -1;
        s->p += 6;
        if (cp == 0) return -1; /* as jansson: no NUL in strings */
        if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' || hex4(s->p + 2, &lo) != 0 || lo < 0xDC00 ||
              lo > 0xDFFF)
            return -1;
          s->p += 6;
        }
        continue;
      }
      if (!memchr("\"\\/bfnrt", c, 8)) return -1;
      s->p += 2;
      continue;
    }
    if (c < 0x80) {
      s->p++;
      continue;
    }
    /* UTF-8: shortest form, no surrogates, at most U+10FFFF. */
    int n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
    else return -1;
    if (s->end - s->p <= n) return -1;
    for (int i = 1; i <= n; i++) {
      if ((s->p[i] & 0xC0) != 0x80) return -1;
      cp = cp << 6 | (s->p[i] & 0x3F);
    }
    if (n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return -1;
    if (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return -1;
    s->p += n + 1;
  }
  return -1;
}

static int digits(scan_t *s) {
  const unsigned char *start = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return s->p > start ? 0 : -1;
}

static int number(scan_t *s) {
  if (*s->p == '-') s->p++;
  if (s->p >= s->end) return -1;
  if (*s->p == '0') s->p++;
  else if (digits(s) != 0) return -1;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (digits(s) != 0) return -1;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (digits(s) != 0) return -1;
  }
  return 0;
}

static int literal(scan_t *s, const char *word, size_t n) {
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
  s->p += n;
  return 0;
}

static int value(scan_t *s);

static int object(scan_t *s) {
  const unsigned char *keys[DUP_KEYS];
  size_t key_lens[DUP_KEYS], n_keys = 0;
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return 0;
  }
  for (;;) {
    if (s->p >= s->end || *s->p != '"') return -1;
    const unsigned char *k = s->p + 1;
    if (string(s) != 0) return -1;
    size_t klen = (size_t)(s->p - 1 - k);
    /* Two values for one name is ambiguous: refused, as jansson does with
     * JSON_REJECT_DUPLICATES (raw text compared; enough for real input). */
    for (size_t i = 0; i < n_keys; i++)
      if (key_lens[i] == klen && memcmp(keys[i], k, klen) == 0) return -1;
    if (n_keys < DUP_KEYS) {
      keys[n_keys] = k;
      key_lens[n_keys++] = klen;
    }
    ws(s);
    if (s->p >= s->end || *s->p != ':') return -1;
    s->p++;
    ws(s);
    if (value(s) != 0) return -1;
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == '}') {
      s->p++;
      return 0;
    }
    if (*s->p != ',') return -1;
    s->p++;
    ws(s);
  }
}

static int array(scan_t *s) {
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    return 0;
  }
  for (;;) {
    if (value(s) != 0) return -1;
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ']') {
      s->p++;
      return 0;
    }
    if (*s->p != ',') return -1;
    s->p++;
    ws(s);
  }
}

static int value(scan_t *s) {
  if (s->p >= s->end) return -1;
  switch (*s->p) {
  case '{':
  case '[': {
    if (++s->depth > MAX_DEPTH) return -1;
    int r = *s->p == '{' ? object(s) : array(s);
    s->depth--;
    return r;
  }
  case '"': return string(s);
  case 't': return literal(s, "true", 4);
  case 'f': return literal(s, "false", 5);
  case 'n': return literal(s, "null", 4);
  default:
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return number(s);
    return -1;
  }
}

int hg_json_valid(const char *text, size_t len) {
  scan_t s = {(const unsigned char *)text, (const unsigned char *)text + len, 0};
  ws(&s);
  if (value(&s) != 0) return 0;
  ws(&s);
  return s.p == s.end;
}

/* --- spans of validated text ---------------------------------------------- */

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* Past the closing quote of the string at p (validated text). memchr
 * finds quotes fast; a quote preceded by an odd run of backslashes is
 * escaped. */
static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end;) {
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL) return end;
    size_t bs = 0;
    for (const char *b = q; b > p && b[-1] == '\\'; b--) bs++;
    if (bs % 2 == 0) return q + 1;
    p = q + 1;
  }
  return end;
}

static const char *skip_value(const char *p, const char *end) {
  if (p >= end) return end;
  if (*p == '"') return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      if (*p == '"') {
        p = skip_string(p, end);
        continue;
      }
      if (*p == '{' || *p == '[') depth++;
      else if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return end;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') p++;
  return p;
}

int hg_json_next_member(const char *text, size_t len, size_t *pos, const char **key, size_t *key_len, int *escaped,
                        const char **val, size_t *val_len) {
  const char *end = text + len, *p = text + *pos;
  if (*pos == 0) {
    p = skip_ws(text, end);
    if (p >= end || *p != '{') return 0;
    p++;
  }
  p = skip_ws(p, end);
  if (p < end && *p == ',') p = skip_ws(p + 1, end);
  if (p >= end || *p != '"') return 0;
  const char *k = p + 1;
  p = skip_string(p, end);
  *key = k;
  *key_len = (size_t)(p - 1 - k);
  *escaped = memchr(k, '\\', *key_len) != NULL;
  p = skip_ws(p, end);
  if (p >= end || *p != ':') return 0;
  p = skip_ws(p + 1, end);
  *val = p;
  p = skip_value(p, end);
  *val_len = (size_t)(p - *val);
  *pos = (size_t)(p - text);
  return 1;
}

int hg_json_member_span(const char *text, size_t len, const char *key, const char **val, size_t *val_len) {
  const char *p = skip_ws(text, text + len);
  if (p >= text + len || *p != '{') return HG_EINVAL;
  size_t pos = 0, klen = strlen(key), kl;
  const char *k;
  int esc;
  while (hg_json_next_member(text, len, &pos, &k, &kl, &esc, val, val_len))
    if (!esc && kl == klen && memcmp(k, key, klen) == 0) return 0;
  return HG_ENOTFOUND;
}

int hg_json_array_spans(const char *text, size_t len, const char **vals, size_t *lens, size_t max, size_t *n) {
  const char *p = skip_ws(text, text + len), *end = text + len;
  *n = 0;
  if (p >= end || *p != '[') return HG_EINVAL;
  p = skip_ws(p + 1, end);
  while (p < end && *p != ']') {
    if (*n == max) return HG_ETOOBIG;
    const char *v = p;
    p = skip_value(p, end);
    vals[*n] = v;
    lens[(*n)++] = (size_t)(p - v);
    p = skip_ws(p, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
  }
  return 0;
}
