/* buf.c: the growable buffer and array of buf.h. */
#include "base/buf.h"

#include "base/common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hg_grow(void *items, size_t *cap, size_t need, size_t size, size_t first) {
  return hg_grow_max(items, cap, need, size, first, SIZE_MAX);
}

int hg_grow_max(void *items, size_t *cap, size_t need, size_t size, size_t first, size_t max) {
  if (need <= *cap) return 0;
  if (need > max) return HG_ENOMEM;
  size_t n = *cap ? *cap : (first ? first : 1);
  while (n < need) {
    if (n > SIZE_MAX / 2) return HG_ENOMEM;
    n *= 2;
  }
  if (n > max) n = max;
  if (size && n > SIZE_MAX / size) return HG_ENOMEM;
  void *p = realloc(*(void **)items, n * size);
  if (p == NULL) return HG_ENOMEM;
  *(void **)items = p;
  *cap = n;
  return 0;
}

int hg_buf_reserve(hg_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra && b->data) return 0;
  if (b->off > 0) { /* reclaim consumed space first */
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->cap - b->len >= extra) return 0;
  }
  if (extra > SIZE_MAX - b->len - 1) return HG_ENOMEM;
  /* One spare byte so printf and take can always place a NUL. */
  return hg_grow(&b->data, &b->cap, b->len + extra + 1, 1, 256);
}

int hg_buf_append(hg_buf_t *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (hg_buf_reserve(b, n) != 0) return HG_ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void hg_buf_vprintf(hg_buf_t *b, const char *fmt, va_list ap) {
  if (b->failed) return;
  for (;;) {
    va_list aq;
    va_copy(aq, ap);
    size_t room = b->data ? b->cap - b->len : 0;
    int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, aq);
    va_end(aq);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    if (hg_buf_reserve(b, (size_t)n + 1) != 0) {
      b->failed = 1;
      return;
    }
  }
}

void hg_buf_printf(hg_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hg_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void hg_buf_consume(hg_buf_t *b, size_t n) {
  b->off += n < b->len - b->off ? n : b->len - b->off;
  if (b->off == b->len) b->off = b->len = 0;
}

void hg_buf_reset(hg_buf_t *b) {
  b->off = b->len = 0;
  b->failed = 0;
}

void hg_buf_free(hg_buf_t *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

char *hg_buf_take(hg_buf_t *b, size_t *len) {
  if (b->failed || hg_buf_reserve(b, 1) != 0) {
    hg_buf_free(b);
    if (len) *len = 0;
    return NULL;
  }
  if (b->off > 0) {
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
  }
  b->data[b->len] = '\0';
  char *p = b->data;
  if (len) *len = b->len;
  memset(b, 0, sizeof(*b));
  return p;
}
