/* ingest.c: makes published events durable (see ingest.h).
 *
 * A job is one hg_ingest_submit: its events (copied; what they point to
 * taken over) and the caller's callback. It takes one of two paths:
 *
 * - the store's: one rerunnable store job, whose completion reports;
 * - the log's, for a single event that nothing stored can change: a record
 *   in the intake log and a logged store job at once, two completions, and
 *   whichever succeeds first reports (refs counts the completions still to
 *   come). A failed store job is retried; meanwhile the log keeps the space
 *   of its record and every later one (the hold). */
#include "pipeline/ingest.h"

#include "base/common.h"
#include "base/list.h"
#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/dispatcher.h"
#include "pipeline/subs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events answered from the intake log that the store has yet to store:
 * past this many, or this many bytes of records, events take the store's
 * path again, whose answers wait for the store (the store thread may run
 * at a lower priority, see STORE_NICE in app.c). The backlog is held in
 * memory (each job keeps its payload) and in the log: 64 MiB bounds both;
 * 65,536 is about a second of the fastest ingest measured. */
#define INTAKE_MAX_UNAPPLIED 65536
#define INTAKE_MAX_UNAPPLIED_BYTES (64u << 20)
/* A store job that failed for an event answered from the log is retried
 * after 100 ms, doubling up to 5 s, until it succeeds or the gateway stops
 * (the next start then stores it from the log). */
#define INTAKE_RETRY_FIRST_MS 100
#define INTAKE_RETRY_MAX_MS 5000

int hg_ingest__log_answers_only;

struct hg_ingest {
  uv_loop_t *loop;
  hg_store_t *store;
  hg_intake_t *intake; /* NULL: every event takes the store's path */
  hg_subs_t *subs;
  hg_dispatcher_t *dispatcher;
  int64_t first_delay_ms;
  char node_id[128]; /* hg_ingest_set_node: new deliveries are born leased to it; "" none */
  int64_t lease_ms;
  uint64_t hold_lsn; /* the lowest record whose store job failed and is retried (0: none) */
  size_t retrying;   /* such records; log space is released only below hold_lsn */
  size_t unapplied;  /* answered from the log, not yet stored */
  size_t unapplied_bytes;
  hg_list_t retries; /* retry timers, closed at hg_ingest_close */
  int down;          /* the log failed: every event takes the store's path */
  int draining;      /* no more retries */
  int closing;       /* freed once jobs is 0 */
  size_t jobs;       /* jobs not yet freed */
};

typedef struct job {
  hg_ingest_t *ing;
  hg_event_in_t *events;
  size_t n;
  unsigned flags;
  hg_ingest_done_fn done;
  void *ud;
  int64_t now; /* Unix ms, set by the store job's first run */
  /* The log's path: two completions, the log's and the store's, and
   * whichever succeeds first reports. */
  int fast;
  int refs;                   /* completions still to come */
  int answered;               /* done has run */
  int log_state, store_state; /* 0 pending, 1 done, -1 failed (store: see STORE_REJECTED) */
  int log_deliveries;         /* the report's count: active targets when logged */
  uint64_t lsn;               /* the event's record in the log */
  size_t rec_len;             /* its size */
  int retries;                /* failed store jobs so far */
  int reran;                  /* the store's path ran again after a commit's unique violation */
  /* A single event's storage, so that it costs no allocation of its own. */
  hg_event_in_t one;
} job_t;

/* store_state: 0 pending, 1 stored, -1 no more store jobs (the log keeps
 * the event for the next start, if it has it), -2 the store rejected the
 * row (it will never be stored). */
#define STORE_REJECTED (-2)

static void ingest_free(hg_ingest_t *ing) { free(ing); }

void hg_ingest_event_done(hg_event_in_t *ev) {
  free(ev->payload);
  free(ev->idem_key);
  json_decref(ev->targets);
  ev->payload = ev->idem_key = NULL;
  ev->targets = NULL;
  hg_event_in_done(ev);
}

static void job_free(job_t *j) {
  hg_ingest_t *ing = j->ing;
  for (size_t i = 0; i < j->n; i++)
    hg_ingest_event_done(&j->events[i]);
  if (j->events != &j->one) free(j->events);
  free(j);
  if (--ing->jobs == 0 && ing->closing) ingest_free(ing);
}

static void job_unref(job_t *j) {
  if (--j->refs <= 0) job_free(j);
}

static void report(job_t *j, int status, int deliveries, int replayed) {
  hg_ingest_result_t res = {status, j->fast, j->events, j->n, deliveries, replayed};
  j->done(&res, j->ud);
}

static int ingest_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  /* Once: a second run (see hg_store_submit_rerunnable) must see the same
   * time, or an Idempotency-Key could expire between the two. */
  if (j->now == 0) j->now = hg_wall_ms();
  for (size_t i = 0; i < j->n; i++) {
    j->events[i].now = j->now;
    int r = hg_events_insert(db, &j->events[i]);
    if (r != 0) return r;
    /* One taken id fails the whole job: nothing of it is stored. */
    if (j->events[i].conflict) return HG_EEXIST;
  }
  return 0;
}

/* Neighbouring jobs' events in one batch (store/events.h: on PostgreSQL,
 * their rows in a few multi-row statements). */
static int ingest_work_many(hg_db_t *db, void *const *uds, size_t n, size_t *failed) {
  hg_events_batch_t *b = NULL;
  *failed = 0;
  int r = hg_events_batch_new(db, &b);
  for (size_t k = 0; k < n && r == 0; k++) {
    job_t *j = uds[k];
    *failed = k;
    if (j->now == 0) j->now = hg_wall_ms();
    for (size_t i = 0; i < j->n && r == 0; i++) {
      j->events[i].now = j->now;
      r = hg_events_batch_add(b, &j->events[i]);
      if (r == 0 && j->events[i].conflict) r = HG_EEXIST;
    }
  }
  /* The rows held go out as part of the last job's work: a failure here
   * is the run's (the store undoes it and runs each job again alone). */
  if (r == 0) r = hg_events_batch_flush(b);
  hg_events_batch_free(b);
  return r;
}

/* --- The log's path -------------------------------------------------------- */

/* A logged event's success, from whichever completion has it durably first. */
static void accepted(job_t *j, int deliveries) {
  if (j->answered) return;
  j->answered = 1;
  hg_metrics.events_ingested++;
  hg_metrics.deliveries_created += (uint64_t)deliveries;
  report(j, 0, deliveries, 0);
}

/* A logged event that neither the log nor the store can have. */
static void failed(job_t *j, int err) {
  if (j->answered) return;
  j->answered = 1;
  report(j, err, 0, 0);
}

/* The intake log's completion: the event is durable there. */
static void intake_done(int status, void *ud) {
  job_t *j = ud;
  j->log_state = status == 0 ? 1 : -1;
  if (status == 0 && j->store_state == STORE_REJECTED)
    failed(j, HG_EINVAL); /* in the log, but the store will never take it */
  else if (status == 0)
    accepted(j, j->log_deliveries);
  else if (hg_ingest__log_answers_only || j->store_state < 0) /* a measuring build's store never answers */
    failed(j, status);
  job_unref(j);
}

/* A store job to try again, after a delay (ing->retries). */
typedef struct retry {
  uv_timer_t timer;
  job_t *j;
  hg_list_t link;
} retry_t;

static void retry_closed(uv_handle_t *h) { free(h->data); }

/* No log space is released at or past a record whose store job failed
 * (hold), until every such job has succeeded or been given up (unhold). */
static void hold(job_t *j) {
  hg_ingest_t *ing = j->ing;
  if (ing->hold_lsn == 0 || j->lsn < ing->hold_lsn) ing->hold_lsn = j->lsn;
}

static void unhold(job_t *j) {
  if (j->retries > 0 && --j->ing->retrying == 0) j->ing->hold_lsn = 0;
}

/* The event no longer waits for the store (stored, kept, or rejected). */
static void unapplied_done(job_t *j) {
  j->ing->unapplied--;
  j->ing->unapplied_bytes -= j->rec_len;
}

/* No more store jobs for this event: the log keeps it, unreleased, and the
 * next start stores it; or, should the log have failed too, it is nowhere
 * and the caller (if not answered yet) gets an error. */
static void keep_for_next_start(job_t *j) {
  unapplied_done(j);
  j->store_state = -1; /* a log completion still to come answers from this */
  if (j->log_state == -1) {
    failed(j, HG_EIO);
  } else {
    /* The hold stays until the restart: retrying is never brought back to
     * 0, so events keep the store's path meanwhile. */
    hold(j);
    hg_log(HG_LOG_ERROR, "an accepted event is not stored; the intake log keeps it for the next start", "event",
           j->events[0].id, NULL);
  }
  job_unref(j);
}

static void store_done(int status, void *ud);

static void retry_cb(uv_timer_t *t) {
  retry_t *r = t->data;
  job_t *j = r->j;
  hg_list_del(&r->link);
  uv_close((uv_handle_t *)t, retry_closed);
  j->store_state = 0;
  /* Meanwhile a publisher may have sent an event with this very id (it got
   * it in our answer): found by id, it counts as stored. */
  j->events[0].client_id = 1;
  if (hg_store_submit_logged(j->ing->store, ingest_work, store_done, j) != 0) keep_for_next_start(j);
}

/* The store failed to store an event answered (or about to be) from the
 * log: the same job runs again later; meanwhile no log space at or past
 * its record is released. */
static void schedule_retry(job_t *j, int status) {
  hg_ingest_t *ing = j->ing;
  if (j->retries == 0) {
    ing->retrying++;
    hold(j);
  }
  /* 100 ms << 6 is past the 5 s cap already; the shift stays small. */
  int delay = INTAKE_RETRY_FIRST_MS << (j->retries < 6 ? j->retries : 6);
  if (delay > INTAKE_RETRY_MAX_MS) delay = INTAKE_RETRY_MAX_MS;
  j->retries++;
  retry_t *r = ing->draining ? NULL : calloc(1, sizeof(*r));
  if (r == NULL) {
    keep_for_next_start(j);
    return;
  }
  char n[24];
  n[hg_fmt_u64(n, (uint64_t)j->retries)] = '\0';
  hg_log(HG_LOG_ERROR, "an accepted event could not be stored; trying again", "event", j->events[0].id, "attempt", n,
         "error", hg_strerror(status), NULL);
  r->j = j;
  r->timer.data = r;
  uv_timer_init(ing->loop, &r->timer);
  uv_timer_start(&r->timer, retry_cb, (uint64_t)delay, 0);
  hg_list_unshift(&ing->retries, &r->link);
}

/* The store's completion for an event also sent to the intake log. */
static void fast_store_done(job_t *j, int status) {
  hg_ingest_t *ing = j->ing;
  hg_event_in_t *ev = &j->events[0];
  if (status != 0 && j->log_state != -1 && status != HG_EEXIST && status != HG_EINVAL && status != HG_ENOTFOUND) {
    /* Answered from the log, or about to be: it must reach the store. A
     * busy, full or failing disk, or an unreachable store's server
     * (HG_EUNAVAIL), may clear; a rejected row never will. */
    schedule_retry(j, status);
    return;
  }
  if (status != 0 && j->log_state != -1) {
    /* A row the store rejects (its id taken meanwhile by another
     * organization's event, invalid, a missing reference): retrying cannot
     * help and nothing is held for it. If it was answered 202 already, the
     * log line is all that is left to say. */
    hg_log(HG_LOG_ERROR, "an accepted event cannot be stored and is dropped", "event", ev->id, "error",
           hg_strerror(status), NULL);
    unhold(j);
    unapplied_done(j);
    j->store_state = STORE_REJECTED;
    job_unref(j);
    return;
  }
  j->store_state = status == 0 ? 1 : -1;
  unapplied_done(j);
  if (status == 0) {
    if (ev->n_seqs > 0 && ing->dispatcher)
      hg_dispatcher_enqueue(ing->dispatcher, ev->delivery_seqs, ev->n_seqs, ev->now + ev->first_delay_ms);
    if (j->retries > 0) hg_log(HG_LOG_INFO, "an accepted event was stored after retrying", "event", ev->id, NULL);
    unhold(j);
    /* Stored and synced: the log may reuse the space of every record up to
     * this one, but not that of one still being retried. */
    uint64_t upto = j->lsn;
    if (ing->hold_lsn != 0 && upto >= ing->hold_lsn) upto = ing->hold_lsn - 1;
    if (ing->intake) hg_intake_release(ing->intake, upto);
    if (!hg_ingest__log_answers_only)
      accepted(j, ev->n_deliveries); /* durable in the store before (or instead of) the log */
    else if (j->log_state == -1)
      failed(j, HG_EIO); /* a measuring build: only the log's sync answers, or its failure */
  } else {
    failed(j, status); /* neither the log nor the store has it */
  }
  job_unref(j);
}

/* A single event with neither an Idempotency-Key nor an id of its own
 * (nothing about it depends on what the store holds) goes to the intake
 * log and to the store at once, and is reported as soon as either has it
 * durably: normally the log, whose one write and fdatasync per loop turn
 * come well before the store's inserts, commit and fsync. Returns 0, or
 * non-zero to take the store's path instead. */
static int log_event(job_t *j) {
  hg_ingest_t *ing = j->ing;
  hg_event_in_t *ev = &j->events[0];
  j->now = hg_wall_ms();
  ev->now = j->now;
  size_t len = hg_events_record_size(ev);
  unsigned char small[2048], *rec = len <= sizeof(small) ? small : malloc(len);
  if (rec == NULL) return HG_ENOMEM;
  hg_events_record(ev, rec);
  int r = hg_intake_append(ing->intake, rec, len, intake_done, j, &j->lsn);
  if (rec != small) free(rec);
  if (r == HG_ESTATE && !ing->down) {
    /* The log failed (and said why): the store is on the request path again. */
    ing->down = 1;
    hg_store_set_nice(ing->store, 0);
  }
  if (r != 0) return r;
  j->fast = 1;
  j->refs = 2;
  j->rec_len = len;
  /* The index matches active webhooks only; a route plugin may name any. */
  j->log_deliveries =
      (j->flags & HG_INGEST_ROUTED) ? hg_subs_count_active(ing->subs, ev->targets) : (int)json_array_size(ev->targets);
  ing->unapplied++;
  ing->unapplied_bytes += len;
  r = hg_store_submit_logged(ing->store, ingest_work, store_done, j);
  if (r != 0) schedule_retry(j, r);
  return 0;
}

/* --- Completions ----------------------------------------------------------- */

/* Whether a run found one of the job's ids taken by another organization
 * (the only HG_EEXIST a run reports as such). */
static int any_conflict(const job_t *j) {
  for (size_t i = 0; i < j->n; i++)
    if (j->events[i].conflict) return 1;
  return 0;
}

static void store_done(int status, void *ud) {
  job_t *j = ud;
  if (j->fast) {
    fast_store_done(j, status);
    return;
  }
  if (status == HG_EEXIST && !j->reran && !any_conflict(j)) {
    /* PostgreSQL: another node (or another session) committed the same
     * Idempotency-Key or id while this job ran, so its insert failed at
     * the commit, which says nothing of whose row it is. Run once more:
     * the run finds the committed row and answers with it, a replay (or a
     * conflict, should it be another organization's). j->now is kept. */
    j->reran = 1;
    if (hg_store_submit_many(j->ing->store, ingest_work, ingest_work_many, store_done, j, 0) == 0) return;
  }
  if (status != 0) {
    report(j, status, 0, 0);
    job_free(j);
    return;
  }
  int replayed = 0;
  for (size_t i = 0; i < j->n; i++) {
    hg_event_in_t *ev = &j->events[i];
    replayed |= ev->duplicate;
    if (ev->duplicate) {
      /* Reported with the original event's id. */
      hg_copy(ev->id, sizeof(ev->id), ev->original_id);
      hg_metrics.events_replayed++;
    } else {
      hg_metrics.events_ingested++;
      hg_metrics.deliveries_created += (uint64_t)ev->n_deliveries;
    }
    if (ev->n_seqs > 0 && j->ing->dispatcher)
      hg_dispatcher_enqueue(j->ing->dispatcher, ev->delivery_seqs, ev->n_seqs, ev->now + ev->first_delay_ms);
  }
  report(j, 0, j->events[0].n_deliveries, replayed);
  job_free(j);
}

/* --- The interface --------------------------------------------------------- */

int hg_ingest_new(hg_ingest_t **out, const hg_ingest_opts_t *opts, char *err, size_t errlen) {
  hg_ingest_t *ing = calloc(1, sizeof(*ing));
  *out = NULL;
  if (ing == NULL) {
    if (err) snprintf(err, errlen, "out of memory");
    return HG_ENOMEM;
  }
  ing->loop = opts->loop;
  ing->store = opts->store;
  ing->subs = opts->subs;
  ing->dispatcher = opts->dispatcher;
  ing->first_delay_ms = opts->first_delay_ms;
  hg_list_init(&ing->retries);
  if (opts->intake_dir) {
    int r = hg_intake_open(&ing->intake, opts->loop, opts->intake_dir, err, errlen);
    if (r != 0) {
      free(ing);
      return r;
    }
    /* Events no longer wait for the store: it yields the CPU to the
     * threads they do wait for (measured in docs/performance.md). */
    if (opts->store_nice != 0) hg_store_set_nice(ing->store, opts->store_nice);
  }
  *out = ing;
  return 0;
}

void hg_ingest_set_node(hg_ingest_t *ing, const char *node_id, int64_t lease_ms) {
  hg_copy(ing->node_id, sizeof(ing->node_id), node_id);
  ing->lease_ms = lease_ms;
}

int hg_ingest_submit(hg_ingest_t *ing, hg_event_in_t *events, size_t n, unsigned flags, hg_ingest_done_fn done,
                     void *ud) {
  job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) return HG_ENOMEM;
  j->events = n == 1 ? &j->one : calloc(n, sizeof(*j->events));
  if (j->events == NULL) {
    free(j);
    return HG_ENOMEM;
  }
  memcpy(j->events, events, n * sizeof(*events));
  for (size_t i = 0; i < n; i++) {
    j->events[i].first_delay_ms = ing->first_delay_ms;
    j->events[i].lease_owner = ing->node_id[0] ? ing->node_id : NULL;
    j->events[i].lease_ms = ing->lease_ms;
    j->events[i].lines = hg_subs_any_ordered(ing->subs);
  }
  if ((flags & HG_INGEST_ROUTED) && hg_store_engine(ing->store) == HG_DB_PG) {
    /* A route plugin may name any webhook: keep those the index knows as
     * active, as the PostgreSQL store counts the targets it is given
     * (it re-checks each in SQL, but answers without a query per target;
     * events.c). SQLite checks each target in the store instead. */
    for (size_t i = 0; i < n; i++) {
      json_t *kept = hg_subs_filter_active(ing->subs, j->events[i].targets);
      if (kept != NULL) {
        json_decref(j->events[i].targets);
        j->events[i].targets = kept;
      }
    }
  }
  j->ing = ing;
  j->n = n;
  j->flags = flags;
  j->done = done;
  j->ud = ud;
  ing->jobs++;
  /* Not while a store job for such an event is being retried: the log
   * could not reuse its space meanwhile, and the store is failing anyway.
   * Nor while the store's server is unreachable (PostgreSQL): its path
   * answers at once with HG_EUNAVAIL (503, try again), where the log would
   * accept an event the store cannot take until the server is back. */
  int took = 0;
  if (ing->intake && !ing->down && ing->retrying == 0 && hg_store_available(ing->store) && n == 1 &&
      !(flags & HG_INGEST_BATCH) && events[0].idem_key == NULL && !events[0].client_id &&
      ing->unapplied < INTAKE_MAX_UNAPPLIED && ing->unapplied_bytes < INTAKE_MAX_UNAPPLIED_BYTES && log_event(j) == 0)
    took = 1;
  if (!took) {
    j->now = 0;
    int r = hg_store_submit_many(ing->store, ingest_work, ingest_work_many, store_done, j, 0);
    if (r != 0) {
      /* Nothing taken: the events stay the caller's. */
      if (j->events != &j->one) free(j->events);
      free(j);
      ing->jobs--;
      return r;
    }
  }
  for (size_t i = 0; i < n; i++) {
    events[i].payload = events[i].idem_key = NULL;
    events[i].targets = NULL;
  }
  return 0;
}

int hg_ingest_intake_stats(hg_ingest_t *ing, hg_intake_stats_t *out) {
  if (ing == NULL || ing->intake == NULL) return HG_ENOTFOUND;
  hg_intake_stats(ing->intake, out);
  return 0;
}

void hg_ingest_drain(hg_ingest_t *ing) {
  if (ing) ing->draining = 1;
}

void hg_ingest_close(hg_ingest_t *ing) {
  if (ing == NULL) return;
  ing->draining = 1;
  while (!hg_list_empty(&ing->retries)) {
    retry_t *r = HG_CONTAINER(ing->retries.next, retry_t, link);
    hg_list_del(&r->link);
    uv_close((uv_handle_t *)&r->timer, retry_closed);
    keep_for_next_start(r->j);
  }
  /* The store's last completions find no log to release and no queue. */
  hg_intake_close(ing->intake);
  ing->intake = NULL;
  ing->dispatcher = NULL;
  ing->closing = 1;
  if (ing->jobs == 0) ingest_free(ing);
}

int hg_ingest_log_holds(const hg_ingest_t *ing) { return ing != NULL && ing->hold_lsn != 0; }
