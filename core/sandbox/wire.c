/* wire.c: see wire.h. */
#include "sandbox/wire.h"

#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

void hg_wire_begin(hg_wire_out_t *w) {
  memset(w, 0, sizeof(*w));
  hg_wire_u32(w, 0); /* the length, set by hg_wire_finish */
}

void hg_wire_begin_sized(hg_wire_out_t *w, size_t cap) {
  memset(w, 0, sizeof(*w));
  if (cap <= HG_WIRE_MAX_FRAME && (w->p = malloc(cap)) != NULL) w->cap = cap;
  hg_wire_u32(w, 0);
}

void hg_wire_raw(hg_wire_out_t *w, const void *src, size_t n) {
  if (n == 0) return;
  if (w->failed) return;
  if (n > HG_WIRE_MAX_FRAME - w->len) {
    w->failed = 1;
    return;
  }
  if (hg_grow(&w->p, &w->cap, w->len + n, 1, 256) != 0) {
    w->failed = 1;
    return;
  }
  memcpy(w->p + w->len, src, n);
  w->len += n;
}

void hg_wire_u32(hg_wire_out_t *w, uint32_t v) { hg_wire_raw(w, &v, sizeof(v)); }

void hg_wire_str(hg_wire_out_t *w, const char *s, size_t len) {
  if (len >= UINT32_MAX) {
    w->failed = 1;
    return;
  }
  hg_wire_u32(w, (uint32_t)len);
  hg_wire_raw(w, s, len);
}

void hg_wire_cstr(hg_wire_out_t *w, const char *s) {
  if (s == NULL) hg_wire_u32(w, UINT32_MAX);
  else hg_wire_str(w, s, strlen(s));
}

int hg_wire_finish(hg_wire_out_t *w) {
  if (w->failed) {
    hg_wire_free(w);
    return -1;
  }
  uint32_t n = (uint32_t)(w->len - 4);
  memcpy(w->p, &n, 4);
  return 0;
}

void hg_wire_free(hg_wire_out_t *w) {
  free(w->p);
  w->p = NULL;
  w->len = w->cap = 0;
}

uint32_t hg_wire_get_u32(hg_wire_in_t *r) {
  uint32_t v = 0;
  if (r->bad || r->len - r->off < 4) {
    r->bad = 1;
    return 0;
  }
  memcpy(&v, r->p + r->off, 4);
  r->off += 4;
  return v;
}

const char *hg_wire_get_str(hg_wire_in_t *r, size_t *len) {
  *len = 0;
  uint32_t n = hg_wire_get_u32(r);
  if (r->bad || n == UINT32_MAX) return NULL;
  if (r->len - r->off < n) {
    r->bad = 1;
    return NULL;
  }
  const char *s = r->p + r->off;
  r->off += n;
  *len = n;
  return s;
}
