/* recover.c: bulk recovery, run in the background (recover.h). */
#include "pipeline/recover.h"

#include "base/common.h"
#include "base/list.h"
#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/dispatcher.h"
#include "pipeline/event_types.h"
#include "store/deliveries.h"
#include "store/recover.h"
#include "store/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deliveries requeued per store job, and events looked at per job when
 * looking for missed ones: each job stays around a millisecond. */
#define REQUEUE_BATCH 500
#define MISSED_BATCH 1000
/* A dry run counts up to this many deliveries in one statement. */
#define COUNT_CAP 1000000
/* Ended recoveries kept for GET. */
#define RECOVER_KEEP 64
/* Holding back: while the delivery queue holds more than QUEUE_HIGH
 * entries, or another node runs the same webhook's missed deliveries,
 * the next batch waits WAIT_MS. */
#define QUEUE_HIGH 20000
#define WAIT_MS 200
/* A scan for missed events pauses this long between its batches. */
#define SCAN_PAUSE_MS 10
/* Recoveries that may run at once on a node (dry runs included). */
#define MAX_RUNNING 8

typedef enum { REC_STARTING, REC_RUNNING, REC_DONE, REC_FAILED, REC_STOPPED } rec_state_t;
static const char *const state_names[] = {"starting", "running", "done", "failed", "stopped"};

struct hg_recovery {
  hg_list_t link; /* in hg_recover.all, newest last */
  hg_recover_t *r;
  char id[HG_ID_MAX];
  hg_recover_req_t req;
  char caller_org[132]; /* the caller's organization ("" none): the webhook is read as it */
  char org[132];        /* the webhook's, once started */
  int has_org;
  char w_org[132]; /* written by the start job, taken on the loop */
  int w_has_org;
  int64_t wh_created_at;
  json_t *patterns; /* the webhook's event patterns (missed only) */
  rec_state_t state;
  int phase;    /* 0: requeue ended deliveries, 1: missed events */
  int in_store; /* a job is out */
  int waiting;  /* held back: the registry's timer resumes it */
  int64_t not_before; /* while waiting: when it may go on (Unix ms) */
  char error[160];
  int64_t created_at, finished_at;
  /* Progress. */
  int64_t matched;  /* dry run: deliveries that would go again */
  int capped;
  int64_t requeued;
  int64_t missed_found, missed_added;
  char after[HG_ID_MAX];
  int64_t cursor;
  /* The current batch (results applied on success only: a failed job's
   * transaction is rolled back). */
  char b_after[HG_ID_MAX];
  int64_t b_cursor, b_found;
  size_t b_n;
  int b_more;
  int64_t b_now;
  int64_t seqs[HG_RECOVER_BATCH_MAX];
  hg_recover_started_fn cb;
  void *ud;
};

struct hg_recover {
  uv_loop_t *loop;
  hg_store_t *store;
  struct hg_dispatcher *dispatcher;
  hg_list_t all;
  size_t n_all;
  uv_timer_t timer;
  double rate; /* deliveries a recovery requeues per second at most; 0: unpaced */
  int64_t kept_ms; /* retention.deliveries (0: kept forever) */
  int closing;
  int jobs; /* store jobs out */
};

const char *hg_recovery_webhook(const hg_recovery_t *rec) { return rec->req.webhook_id; }
const char *hg_recovery_org(const hg_recovery_t *rec) { return rec->has_org ? rec->org : NULL; }
int hg_recovery_ended(const hg_recovery_t *rec) { return rec->state >= REC_DONE; }

static void rec_free(hg_recovery_t *rec) {
  hg_list_del(&rec->link);
  rec->r->n_all--;
  json_decref(rec->patterns);
  free(rec);
}

static void closed_cb(uv_handle_t *h) { free(h->data); }

static void maybe_free(hg_recover_t *r) {
  if (!r->closing || r->jobs > 0) return;
  hg_list_t *it, *tmp;
  HG_LIST_EACH_SAFE(it, tmp, &r->all) rec_free(HG_CONTAINER(it, hg_recovery_t, link));
  uv_close((uv_handle_t *)&r->timer, closed_cb);
}

/* Forgets the oldest ended recoveries past RECOVER_KEEP. */
static void trim(hg_recover_t *r) {
  if (r->closing) return; /* maybe_free frees them all */
  hg_list_t *it, *tmp;
  HG_LIST_EACH_SAFE(it, tmp, &r->all) {
    if (r->n_all <= RECOVER_KEEP) break;
    hg_recovery_t *rec = HG_CONTAINER(it, hg_recovery_t, link);
    if (hg_recovery_ended(rec) && !rec->in_store) rec_free(rec);
  }
}

static void finish(hg_recovery_t *rec, rec_state_t state, const char *error) {
  rec->state = state;
  rec->finished_at = hg_wall_ms();
  if (error != NULL) hg_copy(rec->error, sizeof(rec->error), error);
  char n[24], m[24];
  snprintf(n, sizeof(n), "%lld", (long long)(rec->req.dry_run ? rec->matched : rec->requeued));
  snprintf(m, sizeof(m), "%lld", (long long)(rec->req.dry_run ? rec->missed_found : rec->missed_added));
  hg_log(state == REC_DONE ? HG_LOG_INFO : HG_LOG_WARN, "recovery ended", "recovery", rec->id, "webhook",
         rec->req.webhook_id, "state", state_names[state], rec->req.dry_run ? "would_requeue" : "requeued", n,
         rec->req.dry_run ? "would_add_missed" : "missed_added", m, "error", error, NULL);
  /* Not freed here (trim, by the callers, once nothing refers to it). */
}

static void step(hg_recovery_t *rec);
static void timer_cb(uv_timer_t *t);

/* Arms the registry's timer for the earliest waiting recovery. */
static void arm(hg_recover_t *r) {
  int64_t first = INT64_MAX;
  for (hg_list_t *it = r->all.next; it != &r->all; it = it->next) {
    hg_recovery_t *rec = HG_CONTAINER(it, hg_recovery_t, link);
    if (rec->waiting && rec->not_before < first) first = rec->not_before;
  }
  if (first == INT64_MAX) {
    uv_timer_stop(&r->timer);
    return;
  }
  int64_t wait = first - hg_wall_ms();
  uv_timer_start(&r->timer, timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void timer_cb(uv_timer_t *t) {
  hg_recover_t *r = t->data;
  int64_t now = hg_wall_ms();
  hg_list_t *it, *tmp;
  HG_LIST_EACH_SAFE(it, tmp, &r->all) {
    hg_recovery_t *rec = HG_CONTAINER(it, hg_recovery_t, link);
    if (rec->waiting && rec->not_before <= now) {
      rec->waiting = 0;
      step(rec);
    }
  }
  if (!r->closing) arm(r);
}

/* Holds rec back until at (Unix ms): the registry's timer resumes it. */
static void wait_until(hg_recovery_t *rec, int64_t at) {
  rec->waiting = 1;
  rec->not_before = at;
  arm(rec->r);
}

static void wait_a_little(hg_recovery_t *rec) { wait_until(rec, hg_wall_ms() + WAIT_MS); }

/* --- the batches (store thread) ---------------------------------------------------- */

static int match_cb(const char *type, const char *org, void *ud) {
  hg_recovery_t *rec = ud;
  /* As the subscription index matches (subs.c): a webhook without an
   * organization gets every organization's events; one with an
   * organization gets its own only. */
  if (rec->has_org && (org == NULL || strcmp(org, rec->org) != 0)) return 0;
  /* Operational events are the gateway's news of the moment (one about
   * this very webhook was never meant for it): missed ones are not sent
   * late. */
  if (hg_event_type_operational(type)) return 0;
  size_t i;
  json_t *p;
  json_array_foreach(rec->patterns, i, p) {
    if (json_is_string(p) && hg_event_pattern_match(json_string_value(p), type)) return 1;
  }
  return 0;
}

static int batch_work(hg_db_t *db, void *ud) {
  hg_recovery_t *rec = ud;
  hg_recover_q_t q = {rec->req.webhook_id, rec->req.since, rec->req.until, rec->req.statuses};
  rec->b_n = 0;
  rec->b_found = 0;
  rec->b_more = 0;
  if (rec->phase == 0) {
    hg_copy(rec->b_after, sizeof(rec->b_after), rec->after);
    return hg_recover_requeue(db, &q, rec->b_after, REQUEUE_BATCH, rec->b_now, rec->seqs, &rec->b_n);
  }
  rec->b_cursor = rec->cursor;
  /* Not before the webhook existed; and not where retention may have
   * purged deliveries it did get (the event would look missed). */
  int64_t from = rec->wh_created_at;
  if (rec->r->kept_ms > 0 && rec->b_now - rec->r->kept_ms > from) from = rec->b_now - rec->r->kept_ms;
  int rc = hg_recover_missed(db, &q, from, !rec->req.dry_run, &rec->b_cursor, MISSED_BATCH, match_cb,
                             rec, rec->b_now, rec->seqs, &rec->b_n, &rec->b_found, &rec->b_more);
  return rc;
}

static void batch_done_(int status, void *ud) {
  hg_recovery_t *rec = ud;
  hg_recover_t *r = rec->r;
  r->jobs--;
  rec->in_store = 0;
  if (r->closing) {
    if (!hg_recovery_ended(rec)) finish(rec, REC_STOPPED, "the gateway stopped");
    maybe_free(r);
    return;
  }
  if (status == HG_EBUSY || status == HG_EUNAVAIL) {
    /* Another node adds this webhook's missed deliveries right now, or
     * the store's server is away: the same batch again shortly. */
    wait_a_little(rec);
    return;
  }
  if (status != 0) {
    finish(rec, REC_FAILED, hg_strerror(status));
    return;
  }
  if (rec->b_n > 0 && r->dispatcher != NULL) hg_dispatcher_enqueue(r->dispatcher, rec->seqs, rec->b_n, rec->b_now);
  if (rec->phase == 0) {
    rec->requeued += (int64_t)rec->b_n;
    hg_metrics.deliveries_recovered += rec->b_n;
    hg_copy(rec->after, sizeof(rec->after), rec->b_after);
    if (rec->b_n < REQUEUE_BATCH) {
      rec->phase = 1;
    } else if (r->rate > 0) {
      /* delivery.recover_rate: the deliveries it requeued go out at once,
       * and sending them costs the gateway about what ingest does. */
      wait_until(rec, hg_wall_ms() + (int64_t)((double)rec->b_n * 1000.0 / r->rate));
      return;
    }
  } else {
    rec->cursor = rec->b_cursor;
    rec->missed_found += rec->b_found;
    rec->missed_added += (int64_t)rec->b_n;
    hg_metrics.deliveries_missed_added += rec->b_n;
    if (!rec->b_more) {
      finish(rec, REC_DONE, NULL);
      return;
    }
    /* At most MISSED_BATCH events looked at per SCAN_PAUSE_MS: a scan
     * reads every stored event, and several may run. */
    wait_until(rec, hg_wall_ms() + SCAN_PAUSE_MS);
    return;
  }
  if (rec->phase == 1 && !rec->req.missed) {
    finish(rec, REC_DONE, NULL);
    return;
  }
  step(rec);
}

static void batch_done(int status, void *ud) {
  hg_recover_t *r = ((hg_recovery_t *)ud)->r;
  /* Closing, batch_done_ may free the registry. */
  int closing = r->closing;
  batch_done_(status, ud);
  if (!closing) trim(r);
}

/* Sends the next batch, or holds back while the delivery queue is long. */
static void step(hg_recovery_t *rec) {
  hg_recover_t *r = rec->r;
  if (hg_recovery_ended(rec) || rec->in_store) return;
  if (r->dispatcher != NULL && !rec->req.dry_run) {
    hg_dispatcher_stats_t st;
    hg_dispatcher_stats(r->dispatcher, &st);
    if (st.queued > QUEUE_HIGH) {
      wait_a_little(rec);
      return;
    }
  }
  rec->b_now = hg_wall_ms();
  if (hg_store_submit(r->store, batch_work, batch_done, rec) != 0) {
    finish(rec, REC_FAILED, "the store is closing");
    return;
  }
  rec->in_store = 1;
  r->jobs++;
}

/* --- starting (the first job reads the webhook) --------------------------------------- */

static int start_work(hg_db_t *db, void *ud) {
  hg_recovery_t *rec = ud;
  hg_webhook_t w;
  int rc = hg_webhooks_get(db, rec->req.webhook_id, rec->caller_org[0] ? rec->caller_org : NULL, &w);
  if (rc == 0) {
    rec->w_has_org = w.org != NULL;
    if (w.org) hg_copy(rec->w_org, sizeof(rec->w_org), w.org);
    rec->wh_created_at = w.created_at;
    json_decref(rec->patterns);
    rec->patterns = json_loads(w.events ? w.events : "[]", 0, NULL);
    if (rec->patterns == NULL || !json_is_array(rec->patterns)) rc = HG_EIO;
  }
  hg_webhook_close(&w);
  if (rc == 0 && rec->req.dry_run) {
    hg_recover_q_t q = {rec->req.webhook_id, rec->req.since, rec->req.until, rec->req.statuses};
    rc = hg_recover_count(db, &q, COUNT_CAP, &rec->matched, &rec->capped);
  }
  return rc;
}

static void start_done(int status, void *ud) {
  hg_recovery_t *rec = ud;
  hg_recover_t *r = rec->r;
  r->jobs--;
  rec->in_store = 0;
  if (r->closing) status = HG_ESTATE;
  hg_recover_started_fn cb = rec->cb;
  rec->cb = NULL;
  if (status != 0) {
    cb(status, NULL, rec->ud);
    rec_free(rec);
    maybe_free(r);
    return;
  }
  rec->state = REC_RUNNING;
  rec->has_org = rec->w_has_org;
  hg_copy(rec->org, sizeof(rec->org), rec->w_org);
  hg_metrics.recoveries_started++;
  char since[25], until[25];
  hg_format_time(rec->req.since, since);
  hg_format_time(rec->req.until, until);
  hg_log(HG_LOG_INFO, "recovery started", "recovery", rec->id, "webhook", rec->req.webhook_id, "since", since,
         "until", until, "dry_run", rec->req.dry_run ? "true" : "false", NULL);
  /* A dry run's count is done; its missed events are counted by batches. */
  if (rec->req.dry_run) rec->phase = 1;
  if (rec->phase == 1 && !rec->req.missed) finish(rec, REC_DONE, NULL);
  else step(rec);
  cb(0, rec, rec->ud);
  trim(r);
}

static int overlaps(const hg_recover_req_t *a, const hg_recover_req_t *b) {
  return strcmp(a->webhook_id, b->webhook_id) == 0 && a->since < b->until && b->since < a->until;
}

int hg_recover_start(hg_recover_t *r, const hg_recover_req_t *req, hg_recover_started_fn cb, void *ud,
                     const hg_recovery_t **conflict) {
  *conflict = NULL;
  if (r->closing) return HG_ESTATE;
  hg_list_t *it;
  for (it = r->all.next; it != &r->all; it = it->next) {
    hg_recovery_t *other = HG_CONTAINER(it, hg_recovery_t, link);
    /* A dry run changes nothing: it never conflicts. */
    /* Only one the caller could see: its webhook is the same, so it is
     * visible to the same organizations; compared by the organization it
     * was asked with while it starts. */
    if (!hg_recovery_ended(other) && !other->req.dry_run && !req->dry_run && overlaps(&other->req, req) &&
        (req->org == NULL || strcmp(other->caller_org, req->org) == 0 ||
         (other->has_org && strcmp(other->org, req->org) == 0))) {
      *conflict = other;
      return HG_EEXIST;
    }
  }
  size_t running = 0;
  for (it = r->all.next; it != &r->all; it = it->next)
    running += !hg_recovery_ended(HG_CONTAINER(it, hg_recovery_t, link));
  if (running >= MAX_RUNNING) return HG_EBUSY;
  hg_recovery_t *rec = calloc(1, sizeof(*rec));
  if (rec == NULL) return HG_ENOMEM;
  rec->r = r;
  rec->req = *req;
  rec->req.org = NULL; /* the caller's: not kept (the webhook's is, below) */
  hg_id_new("rcv_", rec->id);
  rec->created_at = hg_wall_ms();
  rec->cb = cb;
  rec->ud = ud;
  hg_list_init(&rec->link);
  /* Read with the caller's organization, to find only a webhook it may see. */
  if (req->org != NULL) hg_copy(rec->caller_org, sizeof(rec->caller_org), req->org);
  hg_list_push(&r->all, &rec->link);
  r->n_all++;
  if (hg_store_submit(r->store, start_work, start_done, rec) != 0) {
    rec_free(rec);
    return HG_ESTATE;
  }
  rec->in_store = 1;
  r->jobs++;
  return 0;
}

const hg_recovery_t *hg_recover_find(const hg_recover_t *r, const char *id) {
  for (const hg_list_t *it = r->all.next; it != &r->all; it = it->next) {
    const hg_recovery_t *rec = HG_CONTAINER(it, hg_recovery_t, link);
    if (rec->state != REC_STARTING && strcmp(rec->id, id) == 0) return rec;
  }
  return NULL;
}

static const char *status_filter(unsigned s) {
  unsigned all = (1u << HG_DEL_FAILED) | (1u << HG_DEL_SKIPPED) | (1u << HG_DEL_SUCCESS);
  if (s == all) return "all";
  if (s == (1u << HG_DEL_SKIPPED)) return "skipped";
  return "failed";
}

json_t *hg_recovery_json(const hg_recovery_t *rec) {
  char since[25], until[25], created[25], finished[25];
  hg_format_time(rec->req.since, since);
  hg_format_time(rec->req.until, until);
  hg_format_time(rec->created_at, created);
  if (rec->finished_at) hg_format_time(rec->finished_at, finished);
  json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:s}", "id", rec->id, "webhookId", rec->req.webhook_id,
                        "state", state_names[rec->state], "since", since, "until", until, "status",
                        status_filter(rec->req.statuses), "missed", rec->req.missed, "dryRun", rec->req.dry_run,
                        "createdAt", created);
  if (o == NULL) return NULL;
  json_object_set_new(o, "finishedAt", rec->finished_at ? json_string(finished) : json_null());
  if (rec->req.dry_run) {
    json_object_set_new(o, "count", json_integer(rec->matched));
    json_object_set_new(o, "countCapped", json_boolean(rec->capped));
  } else {
    json_object_set_new(o, "requeued", json_integer(rec->requeued));
  }
  if (rec->req.missed) {
    json_object_set_new(o, "missedFound", json_integer(rec->missed_found));
    if (!rec->req.dry_run) json_object_set_new(o, "missedAdded", json_integer(rec->missed_added));
  }
  json_object_set_new(o, "error", rec->error[0] ? json_string(rec->error) : json_null());
  return o;
}

int hg_recover_new(hg_recover_t **out, uv_loop_t *loop, hg_store_t *store, struct hg_dispatcher *dispatcher,
                   double rate, int64_t kept_ms) {
  hg_recover_t *r = calloc(1, sizeof(*r));
  if (r == NULL) return HG_ENOMEM;
  r->loop = loop;
  r->store = store;
  r->dispatcher = dispatcher;
  r->rate = rate;
  r->kept_ms = kept_ms;
  hg_list_init(&r->all);
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  *out = r;
  return 0;
}

void hg_recover_close(hg_recover_t *r) {
  if (r == NULL) return;
  r->closing = 1;
  r->dispatcher = NULL;
  uv_timer_stop(&r->timer);
  hg_list_t *it;
  for (it = r->all.next; it != &r->all; it = it->next) {
    hg_recovery_t *rec = HG_CONTAINER(it, hg_recovery_t, link);
    if (!hg_recovery_ended(rec) && !rec->in_store && rec->state != REC_STARTING)
      finish(rec, REC_STOPPED, "the gateway stopped");
  }
  maybe_free(r);
}
