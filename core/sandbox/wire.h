/* wire.h: the frames the gateway and its sandbox workers exchange over a
 * socket pair (core/sandbox/pool.c, core/sandbox/worker.c).
 *
 * A frame is a 4-byte length (host order: both ends are one binary on one
 * machine) and that many bytes of fields: 32-bit numbers and strings
 * (a 32-bit length, then the bytes). A reader checks every length against
 * what is left: a short or malformed frame reads as bad, never past its
 * end. Each side reads the other as untrusted. */
#ifndef HG_SANDBOX_WIRE_H
#define HG_SANDBOX_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* The largest frame either side sends or accepts. */
#define HG_WIRE_MAX_FRAME (64u << 20)

/* A frame being built; p is malloc'd, the first 4 bytes hold the length
 * once hg_wire_finish ran. failed is set (and stays) on any allocation
 * failure or when the frame would pass HG_WIRE_MAX_FRAME. */
typedef struct hg_wire_out {
  char *p;
  size_t len, cap;
  int failed;
} hg_wire_out_t;

void hg_wire_begin(hg_wire_out_t *w);
/* The same, with room for cap bytes made at once (a hint: it grows). */
void hg_wire_begin_sized(hg_wire_out_t *w, size_t cap);
void hg_wire_u32(hg_wire_out_t *w, uint32_t v);
/* Bytes as they are (no length). */
void hg_wire_raw(hg_wire_out_t *w, const void *src, size_t n);
void hg_wire_str(hg_wire_out_t *w, const char *s, size_t len);
/* A NUL-terminated string, or NULL (sent as the length 0xffffffff). */
void hg_wire_cstr(hg_wire_out_t *w, const char *s);
/* Writes the length; 0, or -1 if the frame failed (w->p is then freed). */
int hg_wire_finish(hg_wire_out_t *w);
void hg_wire_free(hg_wire_out_t *w);

/* Reading a frame's fields (without its length prefix). Borrowed. */
typedef struct hg_wire_in {
  const char *p;
  size_t len, off;
  int bad;
} hg_wire_in_t;

uint32_t hg_wire_get_u32(hg_wire_in_t *r);
/* The next string (not NUL-terminated: *len says how long), or NULL for a
 * NULL string and when the frame is bad (r->bad tells which). */
const char *hg_wire_get_str(hg_wire_in_t *r, size_t *len);

/* A job: transform one delivery with the webhook's code. */
#define HG_WIRE_JOB_TRANSFORM 1u
/* An answer's status. */
#define HG_WIRE_OK 0u
#define HG_WIRE_SCRIPT_ERROR 1u /* err says what, as "transform:LINE: message" */
#define HG_WIRE_BUDGET 2u       /* stopped by the worker at the CPU budget */

#endif
