/* retention.h: the background purge of old events and deliveries.
 *
 * Every interval the purge makes one pass over the store (store/purge.h
 * says what goes and what never does): one batch of at most
 * HG_PURGE_BATCH rows per store job, the next batch submitted a few
 * milliseconds after the last one completed, so that publishes and
 * delivery records queued meanwhile go first and a pass never holds
 * ingest back. A pass ends when both walks are done, or at the first
 * failure (the next pass starts over). Each pass that ends logs its
 * counts at info, and moves hookgate_retention_purged_total and
 * hookgate_retention_last_pass_timestamp_seconds (base/metrics.h).
 *
 * On SQLite the pass first marks its events cutoff in the intake log's
 * directory (store/purge.h), so that a start does not bring a purged
 * event back from the log. An event goes only once the store has it, and
 * the store's jobs run in order: every event the log answered before the
 * pass began was stored before the pass's first job runs, unless its store
 * job failed, which the ingest reports (hg_ingest_log_holds); the pass then
 * keeps events.
 *
 * On PostgreSQL every batch first takes a transaction-level advisory lock
 * (hg_purge_lock); a node that finds it taken ends its pass: another node
 * is purging. The deletes re-check what they delete, so two purgers at
 * once would still be safe; the lock only saves doing the work twice. */
#ifndef HG_RETENTION_H
#define HG_RETENTION_H

#include "pipeline/ingest.h"
#include "store/store.h"

#include <stdint.h>
#include <uv.h>

typedef struct hg_retention hg_retention_t;

typedef struct hg_retention_opts {
  uv_loop_t *loop;
  hg_store_t *store;
  uint64_t events_ms;     /* keep events this long; 0: forever */
  uint64_t deliveries_ms; /* keep deliveries this long; 0: forever */
  uint64_t interval_ms;   /* from the end of one pass to the start of the next (and from start to the first) */
  /* SQLite: the intake log's directory, whether or not this process
   * writes to it (a log left by an earlier run is applied at the next
   * start too), to mark before events go (store/purge.h); NULL: none. */
  const char *intake_dir;
  /* Borrowed: while it holds an unstored event (hg_ingest_log_holds), a
   * pass keeps every event. NULL: none. */
  hg_ingest_t *ingest;
} hg_retention_opts_t;

/* Starts the purge's timer on opts->loop (the loop thread). With both
 * retentions 0 nothing starts: *out is NULL and 0 is returned. Returns 0
 * or HG_ENOMEM. Nothing runs inside this call. */
int hg_retention_start(hg_retention_t **out, const hg_retention_opts_t *opts);

/* Stops it: no batch is submitted after this call; the one out (if any)
 * still completes on the loop, and the purge is freed once it has and the
 * timer has closed. Call before hg_store_close. Accepts NULL. */
void hg_retention_stop(hg_retention_t *r);

#endif
