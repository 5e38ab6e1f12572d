/* ids.h: time-ordered, URL-safe object ids ("wh_01jd...", "evt_01jd...").
 *
 * An id is a short type prefix and 26 characters of lowercase Crockford
 * base32 in the ULID layout: a 48-bit Unix time in milliseconds (10
 * characters), then 80 random bits (16 characters). Within a process ids
 * are strictly increasing, so strcmp order is creation order and
 * "ORDER BY id" lists objects oldest first. */
#ifndef HG_IDS_H
#define HG_IDS_H

#include <stdint.h>

/* Room for the longest prefix (13 characters), the 26 id characters and
 * the NUL. */
#define HG_ID_MAX 40
#define HG_ID_BODY_LEN 26
#define HG_ID_PREFIX_MAX (HG_ID_MAX - HG_ID_BODY_LEN - 1)

/* Writes prefix + a new id to out. Thread-safe. Strictly greater (strcmp)
 * than every id made before in this process with the same prefix, even
 * within one millisecond or when the wall clock steps back: the ULID
 * monotonic rule (same millisecond: the random part plus one). A prefix
 * longer than HG_ID_PREFIX_MAX is a programming error (asserted; release
 * builds truncate it). Never fails: should the random generator fail, the
 * random part of the previous id is incremented instead, which keeps ids
 * unique, only less unpredictable. */
void hg_id_new(const char *prefix, char out[HG_ID_MAX]);

/* Writes the smallest id with prefix made at Unix time ms (clamped to the
 * 48 bits an id holds), so that "id >= hg_id_at(p, t)" selects the ids
 * made at t or later (by the clock of the process that made them). */
void hg_id_at(const char *prefix, int64_t ms, char out[HG_ID_MAX]);

/* Returns 1 if id is prefix followed by exactly 26 lowercase Crockford
 * base32 characters whose time fits 48 bits, 0 otherwise. NULL id: 0. */
int hg_id_valid(const char *prefix, const char *id);

#endif
