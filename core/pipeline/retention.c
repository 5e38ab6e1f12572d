/* retention.c: the background purge's timer and passes (retention.h).
 *
 * One timer, one store job at a time. The job fills its own result
 * fields on the store thread; the loop applies them in done, and only
 * when the job's transaction committed. */
#include "pipeline/retention.h"

#include "base/common.h"
#include "base/log.h"
#include "base/metrics.h"
#include "store/purge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Between two batches of a pass: what other jobs queued meanwhile runs
 * first, and the purge takes at most about half of an idle store. */
#define PAUSE_MS 5

struct hg_retention {
  hg_retention_opts_t o;
  char *intake_dir; /* a copy of o.intake_dir */
  uv_timer_t timer;
  int in_job, stopping, closed;
  int warned_index; /* the missing index was logged once */
  /* The pass under way (loop thread). */
  hg_purge_rules_t rules;
  hg_purge_pos_t pos;
  hg_purge_counts_t total;
  uint64_t started_ns;
  int in_pass, first_batch;
  /* A batch's result, written on the store thread. */
  hg_purge_pos_t job_pos;
  hg_purge_counts_t job_counts;
  int job_locked_out; /* another node holds the lock */
  int marked;         /* this pass's events cutoff is marked in the intake log */
  int job_marked;
};

static void maybe_free(hg_retention_t *r) {
  if (r->stopping && r->closed && !r->in_job) {
    free(r->intake_dir);
    free(r);
  }
}

/* Store thread. */
static int batch_work(hg_db_t *db, void *ud) {
  hg_retention_t *r = ud;
  memset(&r->job_counts, 0, sizeof(r->job_counts));
  r->job_locked_out = 0;
  r->job_pos = r->pos;
  int rc = hg_purge_lock(db);
  if (rc == HG_EBUSY) {
    r->job_locked_out = 1;
    return 0;
  }
  if (rc != 0) return rc;
  if (r->first_batch && r->rules.events_before > 0) {
    int ix = hg_purge_events_indexed(db);
    if (ix < 0) return ix;
    r->rules.events_indexed = ix;
  }
  r->job_marked = r->marked;
  if (r->job_pos.phase == 1 && r->rules.events_before > 0 && r->rules.events_indexed && !r->marked) {
    /* Durable before any event of this pass is deleted. */
    if ((rc = hg_purge_mark(r->intake_dir, r->rules.events_before)) != 0) return rc;
    r->job_marked = 1;
  }
  return hg_purge_batch(db, &r->rules, &r->job_pos, &r->job_counts);
}

static void tick(uv_timer_t *t);

static void end_pass(hg_retention_t *r, int status) {
  r->in_pass = 0;
  if (status == 0) {
    int64_t now = hg_wall_ms();
    hg_metrics.purge_last_pass_ms = now;
    char e[24], d[24], a[24], ms[24];
    e[hg_fmt_u64(e, (uint64_t)r->total.events)] = '\0';
    d[hg_fmt_u64(d, (uint64_t)r->total.deliveries)] = '\0';
    a[hg_fmt_u64(a, (uint64_t)r->total.attempts)] = '\0';
    ms[hg_fmt_u64(ms, (hg_now_ns() - r->started_ns) / 1000000)] = '\0';
    hg_log(HG_LOG_INFO, "retention: purge pass done", "events", e, "deliveries", d, "attempts", a, "ms", ms, NULL);
  } else if (status != HG_EUNAVAIL) {
    hg_log(HG_LOG_WARN, "retention: purge pass stopped; the next one starts over", "error", hg_strerror(status), NULL);
  }
  uv_timer_start(&r->timer, tick, r->o.interval_ms, 0);
}

static void batch_done(int status, void *ud) {
  hg_retention_t *r = ud;
  r->in_job = 0;
  if (r->stopping) {
    maybe_free(r);
    return;
  }
  if (status == 0 && r->job_locked_out) {
    hg_log(HG_LOG_DEBUG, "retention: another node is purging; this pass ends", NULL);
    r->in_pass = 0;
    uv_timer_start(&r->timer, tick, r->o.interval_ms, 0);
    return;
  }
  if (status != 0) {
    end_pass(r, status);
    return;
  }
  if (r->first_batch && r->rules.events_before > 0 && !r->rules.events_indexed && !r->warned_index) {
    r->warned_index = 1;
    hg_log(HG_LOG_WARN,
           "retention: events are kept: the store has no index of deliveries by event_seq, without which deleting "
           "an event scans every delivery; deliveries are purged (docs/configuration.md, retention)",
           NULL);
  }
  r->first_batch = 0;
  r->marked = r->job_marked;
  r->pos = r->job_pos;
  r->total.events += r->job_counts.events;
  r->total.deliveries += r->job_counts.deliveries;
  r->total.attempts += r->job_counts.attempts;
  hg_metrics.purged_events += (uint64_t)r->job_counts.events;
  hg_metrics.purged_deliveries += (uint64_t)r->job_counts.deliveries;
  hg_metrics.purged_attempts += (uint64_t)r->job_counts.attempts;
  if (r->pos.phase >= 2)
    end_pass(r, 0);
  else
    uv_timer_start(&r->timer, tick, PAUSE_MS, 0);
}

static void submit_batch(hg_retention_t *r) {
  if (r->stopping || r->in_job) return;
  if (r->pos.phase == 1 && r->rules.events_before > 0 && !r->marked && hg_ingest_log_holds(r->o.ingest)) {
    hg_log(HG_LOG_WARN, "retention: events are kept this pass: an event the intake log answered is not stored yet",
           NULL);
    r->rules.events_before = 0;
  }
  int rc = hg_store_submit(r->o.store, batch_work, batch_done, r);
  if (rc == 0)
    r->in_job = 1;
  else if (rc != HG_ESTATE)
    end_pass(r, rc);
}

/* The timer: the start of a pass, or its next batch. */
static void tick(uv_timer_t *t) {
  hg_retention_t *r = t->data;
  if (!r->in_pass) {
    int64_t now = hg_wall_ms();
    memset(&r->pos, 0, sizeof(r->pos));
    memset(&r->total, 0, sizeof(r->total));
    r->rules.events_before = r->o.events_ms ? now - (int64_t)r->o.events_ms : 0;
    r->rules.deliveries_before = r->o.deliveries_ms ? now - (int64_t)r->o.deliveries_ms : 0;
    r->rules.events_indexed = 0;
    r->started_ns = hg_now_ns();
    r->first_batch = 1;
    r->in_pass = 1;
    r->marked = 0;
  }
  submit_batch(r);
}

int hg_retention_start(hg_retention_t **out, const hg_retention_opts_t *opts) {
  *out = NULL;
  if (opts->events_ms == 0 && opts->deliveries_ms == 0) return 0;
  hg_retention_t *r = calloc(1, sizeof(*r));
  if (r == NULL) return HG_ENOMEM;
  r->o = *opts;
  if (opts->intake_dir != NULL && (r->intake_dir = strdup(opts->intake_dir)) == NULL) {
    free(r);
    return HG_ENOMEM;
  }
  r->o.intake_dir = r->intake_dir;
  if (r->o.interval_ms == 0) r->o.interval_ms = 600000;
  uv_timer_init(opts->loop, &r->timer);
  r->timer.data = r;
  uv_timer_start(&r->timer, tick, r->o.interval_ms, 0);
  *out = r;
  return 0;
}

static void timer_closed(uv_handle_t *h) {
  hg_retention_t *r = h->data;
  r->closed = 1;
  maybe_free(r);
}

void hg_retention_stop(hg_retention_t *r) {
  if (r == NULL || r->stopping) return;
  r->stopping = 1;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, timer_closed);
}
