/* intake.h: the intake log, where an accepted event becomes durable before
 * the store has it.
 *
 * Answering a publish only after SQLite has inserted and committed the
 * event puts the store thread's work for a whole group (5-7 us of CPU per
 * event) between every request and its answer. The intake log takes it off
 * that path: the loop thread appends each event as one record, a thread of
 * the log's own writes a turn's records with one pwrite() per segment and
 * makes them durable with one fdatasync(), and the request is answered then; the
 * store applies the same event in its own time. Once the store has made
 * an event durable, the log is told (hg_intake_release) and its space is
 * used again. After a crash, hg_intake_recover hands back every record
 * still in the log, and the caller applies those that the store lacks.
 *
 * On disk: a directory of segment files, each SEGMENT_BYTES long and
 * written once full of zeros when created, so that appending overwrites
 * blocks the file already has and fdatasync need not commit the file
 * system's journal (about 87 us instead of 188 us for 16 KiB on the
 * development VM, bench/experiments/fsync_modes.c). A segment starts with a header (magic, its first record
 * number, a random salt, a CRC); each record is its length, a CRC-32 over
 * the salt, number, length and bytes, its number, then the bytes. A record
 * whose CRC fails, or left over from a segment's earlier use (another
 * salt), ends that segment's records; recovery goes on with the next
 * segment (and warns if it does not start where this one ended). Records are never split across segments. Native
 * byte order: the log stays on the machine that wrote it. */
#ifndef HG_INTAKE_H
#define HG_INTAKE_H

#include "base/metrics.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hg_intake hg_intake_t;

/* Runs on the loop thread once the record is durable (status 0) or could
 * not be made durable (a negative HG_E* code; it may or may not be in the
 * log, so a later recovery may still hand it back). */
typedef void (*hg_intake_done_fn)(int status, void *ud);

/* Called for each record found by hg_intake_recover, in order: return 0
 * to go on, anything else to stop with that value. */
typedef int (*hg_intake_record_fn)(uint64_t lsn, const unsigned char *rec, size_t len, void *ud);

/* The largest record: a bigger one is refused by hg_intake_append (the
 * caller takes another path). */
#define HG_INTAKE_MAX_RECORD (1024 * 1024)

/* Reads every record left in the log in dir (a directory that does not
 * exist holds none) and calls fn for each. Run before hg_intake_open,
 * which starts the log afresh. Returns 0, fn's non-zero value, or a
 * negative HG_E* code with err set. */
int hg_intake_recover(const char *dir, hg_intake_record_fn fn, void *ud, char *err, size_t errlen);

/* Opens the log in dir (created, mode 0700, with its parents), reusing its
 * segment files for new records: whatever they held must have been
 * recovered and applied first. Call on the loop thread, which then owns
 * append and release. Starts the log's thread. */
int hg_intake_open(hg_intake_t **out, uv_loop_t *loop, const char *dir, char *err, size_t errlen);

/* Appends a record of len bytes (copied); done runs once it is durable.
 * Records appended during one loop turn are written together at the end
 * of it. Sets *lsn to the record's number (increasing by one per record).
 * Returns 0, HG_ETOOBIG (len > HG_INTAKE_MAX_RECORD), HG_ENOMEM, or
 * HG_ESTATE once closing or after a write failed (nothing is accepted
 * after one: the log's state on disk is then unknown). Loop thread. */
int hg_intake_append(hg_intake_t *ix, const void *rec, size_t len, hg_intake_done_fn done, void *ud, uint64_t *lsn);

/* Every record up to and including lsn is durable elsewhere: its space may
 * be reused. Loop thread. */
void hg_intake_release(hg_intake_t *ix, uint64_t lsn);

typedef struct hg_intake_stats {
  uint64_t records;   /* appended and durable */
  uint64_t syncs;     /* fdatasyncs */
  uint64_t bytes;     /* written, headers included */
  uint64_t segments;  /* segment files created (not reused) */
  hg_hist_t sync_seconds; /* one write and fdatasync of a turn's records */
} hg_intake_stats_t;

/* Copies the counters (any thread). */
void hg_intake_stats(hg_intake_t *ix, hg_intake_stats_t *out);

/* Writes what was appended, stops the thread; completions still run on
 * the loop afterwards. Frees once the loop has closed its handles. Loop
 * thread; accepts NULL. */
void hg_intake_close(hg_intake_t *ix);

#endif
