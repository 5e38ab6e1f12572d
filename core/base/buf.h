/* buf.h: one growable byte buffer and one growable array, for every module.
 *
 * hg_buf_t is a byte buffer with a read offset: writers append at len,
 * readers consume from off; consumed space is reclaimed before the buffer
 * grows. A failed allocation sets `failed` in the printf form (so a long
 * rendering can be checked once at the end) and returns HG_ENOMEM from the
 * others. A zeroed hg_buf_t is an empty buffer; hg_buf_free releases it.
 *
 * hg_grow is the one grow-and-double step for typed arrays: it makes room
 * for `need` elements of `size` bytes in *items (capacity *cap, in
 * elements), doubling from `first`. */
#ifndef HG_BUF_H
#define HG_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct hg_buf {
  char *data;
  size_t off;  /* bytes before off are consumed */
  size_t len;  /* bytes written */
  size_t cap;  /* bytes allocated */
  int failed;  /* hg_buf_printf ran out of memory: the text is incomplete */
} hg_buf_t;

/* Ensures room for extra more bytes after len (reclaiming consumed space
 * first). Returns 0 or HG_ENOMEM (b unchanged). */
int hg_buf_reserve(hg_buf_t *b, size_t extra);
/* Appends n bytes. Returns 0 or HG_ENOMEM (b unchanged). */
int hg_buf_append(hg_buf_t *b, const void *p, size_t n);
/* Appends formatted text (NUL kept after len, not counted); on failure
 * sets b->failed and later calls do nothing. */
void hg_buf_printf(hg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hg_buf_vprintf(hg_buf_t *b, const char *fmt, va_list ap);
/* Unread bytes: data + off, len - off. */
static inline size_t hg_buf_unread(const hg_buf_t *b) { return b->len - b->off; }
/* Marks n unread bytes consumed; an emptied buffer restarts at 0. */
void hg_buf_consume(hg_buf_t *b, size_t n);
/* Empties b, keeping its memory. */
void hg_buf_reset(hg_buf_t *b);
/* Releases b's memory; b is an empty buffer afterwards. */
void hg_buf_free(hg_buf_t *b);
/* Hands the bytes to the caller, NUL-terminated and malloc'd ("" for an
 * empty buffer; NULL when b failed or memory ran out, b's memory then
 * freed); b is empty afterwards.
 * *len gets the length when len is not NULL. */
char *hg_buf_take(hg_buf_t *b, size_t *len);

/* Room for need elements of size bytes in *items, doubling *cap from
 * first (when 0). Returns 0 or HG_ENOMEM (*items, *cap unchanged). */
int hg_grow(void *items, size_t *cap, size_t need, size_t size, size_t first);
/* As hg_grow, but the doubling stops at max elements (need <= max): for a
 * buffer with a limit, which should not take twice the limit's memory. */
int hg_grow_max(void *items, size_t *cap, size_t need, size_t size, size_t first, size_t max);

#endif
