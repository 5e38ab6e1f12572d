/* ids.c: ULID-layout ids, monotonic within the process. */
#include "base/ids.h"

#include "base/common.h"
#include "base/crypto.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Crockford's alphabet: no i, l, o, u. Ascending ASCII order, so the
 * string order of two encodings is their numeric order. */
static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";

static uv_once_t state_once = UV_ONCE_INIT;
static uv_mutex_t state_mutex;
static uint64_t last_ms;          /* guarded by state_mutex */
static unsigned char last_rand[10]; /* guarded by state_mutex; big-endian */

static void state_init(void) {
  /* Without a mutex nothing here is safe; failing loudly beats duplicate
   * ids, and uv_mutex_init fails only when the process is out of
   * resources. */
  if (uv_mutex_init(&state_mutex) != 0) abort();
}

/* Adds one to the 80-bit big-endian number; returns 1 on wrap-around. */
static int increment(unsigned char r[10]) {
  for (int i = 9; i >= 0; i--)
    if (++r[i] != 0) return 0;
  return 1;
}

static void encode(uint64_t ms, const unsigned char r[10], char *out) {
  /* 48 bits of time in 10 characters: the first holds the top 3 bits
   * (50 bits of room). */
  for (int i = 9; i >= 0; i--) {
    out[i] = alphabet[ms & 31];
    ms >>= 5;
  }
  /* 80 bits in 16 characters, 5 bits each, most significant first. */
  for (int i = 0; i < 16; i++) {
    int bit = i * 5; /* index of the first of this character's bits */
    int byte = bit / 8, shift = bit % 8;
    unsigned v = (unsigned)r[byte] << 8 | (byte + 1 < 10 ? r[byte + 1] : 0);
    out[10 + i] = alphabet[(v >> (11 - shift)) & 31];
  }
  out[26] = '\0';
}

void hg_id_new(const char *prefix, char out[HG_ID_MAX]) {
  size_t plen = strlen(prefix);
  assert(plen <= HG_ID_PREFIX_MAX);
  if (plen > HG_ID_PREFIX_MAX) plen = HG_ID_PREFIX_MAX;
  uv_once(&state_once, state_init);

  uint64_t now = (uint64_t)hg_wall_ms() & ((UINT64_C(1) << 48) - 1);
  unsigned char fresh[10];
  int have_fresh = 0;
  unsigned char r[10];
  uint64_t ms;

  uv_mutex_lock(&state_mutex);
  if (now > last_ms) {
    /* Drawing random bytes under our mutex only happens once per
     * millisecond, so the nesting with the generator's mutex is cheap. */
    have_fresh = hg_random(fresh, sizeof(fresh)) == 0;
  }
  if (now > last_ms && have_fresh) {
    last_ms = now;
    memcpy(last_rand, fresh, sizeof(last_rand));
  } else if (increment(last_rand)) {
    /* 2^80 ids in one millisecond cannot happen; a wrap means the random
     * part started near the top. Borrow the next millisecond. */
    last_ms++;
  } else if (now > last_ms) {
    /* The generator failed: keep the previous random part, incremented
     * above, but move to the current time. */
    last_ms = now;
  }
  ms = last_ms;
  memcpy(r, last_rand, sizeof(r));
  uv_mutex_unlock(&state_mutex);

  memcpy(out, prefix, plen);
  encode(ms, r, out + plen);
}

int hg_id_valid(const char *prefix, const char *id) {
  if (id == NULL || prefix == NULL) return 0;
  size_t plen = strlen(prefix);
  if (strncmp(id, prefix, plen) != 0) return 0;
  const char *b = id + plen;
  if (strlen(b) != HG_ID_BODY_LEN) return 0;
  /* The first character carries the top 3 of 50 bits: 48-bit times only. */
  if (b[0] < '0' || b[0] > '7') return 0;
  for (int i = 0; i < HG_ID_BODY_LEN; i++)
    if (b[i] == '\0' || strchr(alphabet, b[i]) == NULL) return 0;
  return 1;
}

void hg_id_at(const char *prefix, int64_t ms, char out[HG_ID_MAX]) {
  size_t plen = strlen(prefix);
  if (plen > HG_ID_PREFIX_MAX) plen = HG_ID_PREFIX_MAX;
  if (ms < 0) ms = 0;
  if ((uint64_t)ms >= (UINT64_C(1) << 48)) ms = (int64_t)((UINT64_C(1) << 48) - 1);
  static const unsigned char zero[10] = {0};
  memcpy(out, prefix, plen);
  encode((uint64_t)ms, zero, out + plen);
}
