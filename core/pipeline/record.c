/* record.c: the outcome of an attempt: the retry decision (the schedule
 * with jitter, Retry-After, the retry phase, 410), its record written with
 * the others of the loop turn in one store job, its log line, then the
 * after phase. */
#define _GNU_SOURCE /* strptime, timegm */
#include "pipeline/dispatcher_internal.h"

#include "base/common.h"
#include "base/crypto.h"
#include "base/log.h"
#include "base/metrics.h"
#include "store/lines.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void after_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)status, (void)arg, (void)res, (void)res2, (void)err, (void)ud;
}

typedef struct rec_batch {
  hg_dispatcher_t *d;
  item_t *head;
} rec_batch_t;

/* Runs sql (a literal), a statement without rows. */
static int exec_step(hg_db_t *db, const char *sql) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) rc = hg_db_step(st);
  hg_db_release(st);
  return rc < 0 ? rc : 0;
}

/* The attempt's health, under a savepoint of its own: on PostgreSQL a
 * failed statement aborts the transaction, and the health row is shared by
 * every node (a lock wait, a deadlock between two nodes recording two
 * webhooks in opposite order): its failure must not undo the records of
 * the batch, which would then be sent again. Returns 0 (with *kept 0 when
 * the health was not written), or the failure of something before it (a
 * deferred record, the connection), which is the job's. */
static int record_health(hg_db_t *db, item_t *it, int *kept) {
  *kept = 0;
  int r = exec_step(db, "SAVEPOINT hg_health");
  if (r != 0) return r;
  r = hg_health_record(db, &it->hin, &it->hout);
  if (r == 0) r = exec_step(db, "RELEASE hg_health");
  if (r == 0) {
    *kept = 1;
    return 0;
  }
  if (r == HG_EUNAVAIL) return r;
  if (hg_db_exec(db, "ROLLBACK TO hg_health", "health rollback") != 0 ||
      hg_db_exec(db, "RELEASE hg_health", "health release") != 0)
    return HG_EIO;
  return 0;
}

/* Every record's health under one savepoint, after the records: one more
 * round trip per batch, not two per attempt. Should one fail, the lot is
 * rolled back and written again one by one (record_health), so that only
 * the failing one goes without. Returns 0, or the failure of something
 * before them (a deferred record, the connection), which is the job's. */
static int record_healths(hg_db_t *db, rec_batch_t *b) {
  int any = 0;
  for (item_t *it = b->head; it && !any; it = it->rec_next) any = it->rec_status == 0 && it->has_health;
  if (!any) return 0;
  hg_stmt_t *st = NULL;
  int r = hg_db_prepare(db, "SAVEPOINT hg_healths", &st);
  if (r == 0) r = hg_db_defer(st);
  hg_db_release(st);
  if (r < 0) return r;
  hg_health_batch_t seen = {0};
  for (item_t *it = b->head; it && r == 0; it = it->rec_next)
    if (it->rec_status == 0 && it->has_health) r = hg_health_record_in(db, &seen, &it->hin, &it->hout);
  if (r == 0) r = exec_step(db, "RELEASE hg_healths");
  if (r == 0) return 0;
  if (r == HG_EUNAVAIL) return r;
  /* The savepoint's own failure (a deferred record before it) shows at
   * the first statement after it: then there is nothing to roll back to,
   * and the failure is the job's. */
  if (hg_db_exec(db, "ROLLBACK TO hg_healths", "health rollback") != 0) return r;
  if (hg_db_exec(db, "RELEASE hg_healths", "health release") != 0) return HG_EIO;
  for (item_t *it = b->head; it; it = it->rec_next) {
    if (it->rec_status != 0 || !it->has_health) continue;
    int kept = 0;
    if ((r = record_health(db, it, &kept)) != 0) return r;
    if (!kept) it->has_health = 0;
  }
  return 0;
}

/* The batch's records, in one call (on PostgreSQL, multi-row statements). */
static int record_all(hg_db_t *db, rec_batch_t *b) {
  size_t n = 0;
  for (item_t *it = b->head; it; it = it->rec_next) n++;
  const hg_attempt_rec_t **recs = malloc(n * sizeof(*recs));
  int *status = malloc(n * sizeof(*status));
  int r = HG_ENOMEM;
  if (recs != NULL && status != NULL) {
    size_t i = 0;
    for (item_t *it = b->head; it; it = it->rec_next) recs[i++] = &it->rec;
    r = hg_deliveries_record_many(db, recs, n, status);
    i = 0;
    for (item_t *it = b->head; it; it = it->rec_next, i++) it->rec_status = r == 0 ? status[i] : r;
  }
  free(recs);
  free(status);
  return r;
}

static int record_work(hg_db_t *db, void *ud) {
  rec_batch_t *b = ud;
  /* The connection is lost and the transaction with it, the records
   * written before included: the job fails, so that record_done treats
   * every record of the batch as not written. */
  int rc = record_all(db, b);
  if (rc != 0) return rc;
  /* In the records' transaction. A failure here leaves the attempts
   * recorded (they must not be sent again) without their health: logged
   * by the store, and nothing reported. */
  int r = record_healths(db, b);
  /* A FIFO line's head that ended: its line's new head, read in the same
   * transaction, goes on the heap once it committed (record_one). */
  for (item_t *it = b->head; it && r == 0; it = it->rec_next) {
    if (it->rec_status != 0 || it->send.line <= 0 || it->test_cb || it->rec.new_status == HG_DEL_PENDING) continue;
    r = hg_line_head(db, it->send.webhook_id, &it->line_next_seq, &it->line_next_due);
    if (r == HG_ENOTFOUND) r = 0;
  }
  return r;
}

/* One line per attempt: info when it succeeded (or a plugin skipped it),
 * warn when it failed. Ids, numbers and the error text only: never the URL
 * (it may carry a token), headers, signatures, secrets or bodies. Nothing
 * is formatted when the level is off; the line costs stack buffers only. */
static void log_attempt(const item_t *it) {
  const hg_attempt_rec_t *rec = &it->rec;
  int failed = rec->new_status == HG_DEL_PENDING || rec->new_status == HG_DEL_FAILED;
  hg_log_level_t level = failed ? HG_LOG_WARN : HG_LOG_INFO;
  if (!hg_log_enabled(level)) return;
  char attempt[16], duration[24], outcome[16], next[25];
  snprintf(attempt, sizeof(attempt), "%d", rec->attempt);
  snprintf(duration, sizeof(duration), "%lld", (long long)rec->duration_ms);
  const char *out = rec->error;
  if (out == NULL) {
    snprintf(outcome, sizeof(outcome), "%d", rec->status_code);
    out = outcome;
  }
  const char *nx = NULL;
  if (rec->new_status == HG_DEL_PENDING) {
    hg_format_time(rec->next_attempt_at, next);
    nx = next;
  } else if (rec->new_status == HG_DEL_FAILED) {
    nx = rec->deactivate_webhook ? "deactivated" : "gave up";
  }
  /* Optional pairs packed first: a NULL key ends the list. */
  const char *opt[4] = {NULL, NULL, NULL, NULL};
  int n = 0;
  if (nx) {
    opt[n++] = "next";
    opt[n++] = nx;
  }
  if (it->test_cb) {
    opt[n++] = "test";
    opt[n++] = "true";
  }
  hg_log(level, "delivery attempt", "webhook", it->send.webhook_id, "delivery", it->send.id, "event",
         it->send.event_id, "attempt", attempt, "outcome", out, "duration_ms", duration, opt[0], opt[1], opt[2],
         opt[3], NULL);
}

/* After the record committed: the index learns of a disabled webhook at
 * once, and the health callback (the operational events) of what
 * happened, if anything did. */
static void report_health(item_t *it) {
  hg_dispatcher_t *d = it->d;
  const hg_health_out_t *h = &it->hout;
  int exhausted = it->hin.kind == HG_HEALTH_EXHAUSTED;
  if (h->disabled && d->subs) hg_subs_set_active(d->subs, it->send.webhook_id, 0);
  if (!exhausted && !h->disabled && !h->recovered) return;
  if (d->health_cb == NULL) return;
  hg_dispatch_health_t rep = {it->send.webhook_id, it->send.org, it->send.id, it->send.event_id,
                              it->send.event_type, it->rec.attempt, it->rec.status_code, it->rec.error,
                              exhausted, h};
  d->health_cb(&rep, d->health_ud);
}

static void record_one(item_t *it, int status) {
  hg_dispatcher_t *d = it->d;
  log_attempt(it);
  if (status != 0) {
    /* Not recorded: the row is still pending and due in the store, so it
     * is sent again (at least once): after the retry delay, or in 1 s.
     * So too when the store's server was lost (HG_EUNAVAIL, the whole
     * batch then: see record_work), a warning: it clears by itself, and
     * the pump starts nothing until the store is back. */
    hg_log(status == HG_EUNAVAIL ? HG_LOG_WARN : HG_LOG_ERROR, "could not record a delivery attempt", "delivery",
           it->send.id, "error", hg_strerror(status), NULL);
    if (it->rec.new_status != HG_DEL_PENDING && !d->stopping && !it->test_cb)
      hg_dispatch__heap_push(d, hg_wall_ms() + 1000, it->seq);
  }
  if (it->rec.new_status == HG_DEL_PENDING && !d->stopping) hg_dispatch__heap_push(d, it->rec.next_attempt_at, it->seq);
  if (status == 0 && it->has_health) report_health(it);
  if (status == 0 && it->line_next_seq > 0) hg_dispatch__line_next(d, it->line_next_seq, it->line_next_due);
  hg_lua_t *lua = *d->lua;
  if (status == 0 && it->rec.new_status != HG_DEL_PENDING && lua && hg_lua_has(lua, HG_PHASE_AFTER, it->send.lua)) {
    json_t *arg = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s?}", "deliveryId", it->send.id, "webhookId",
                            it->send.webhook_id, "eventId", it->send.event_id, "eventType", it->send.event_type,
                            "status", hg_delivery_status_name(it->rec.new_status), "statusCode", it->rec.status_code,
                            "attempts", it->rec.attempt, "error", it->rec.error);
    /* Fire and forget: a failing after() is logged, nothing else. */
    if (arg) hg_lua_call_async(lua, HG_PHASE_AFTER, it->send.lua, arg, after_done, NULL);
    json_decref(arg);
  }
  if (it->test_cb) {
    hg_dispatch_result_t res = {it->send.id,
                                it->rec.status_code,
                                it->resp_body,
                                it->resp_len,
                                it->rec.duration_ms,
                                it->rec.new_status == HG_DEL_SUCCESS,
                                it->has_error ? it->error : NULL};
    it->test_cb(&res, it->test_ud);
  }
  hg_dispatch__item_free(it);
}

static void record_done(int status, void *ud) {
  rec_batch_t *b = ud;
  hg_dispatcher_t *d = b->d;
  for (item_t *it = b->head, *next; it; it = next) {
    next = it->rec_next;
    record_one(it, status != 0 ? status : it->rec_status);
  }
  free(b);
  hg_dispatch__pump(d);
}

/* Writes the attempts finished this loop turn in one store job. */
static void flush_records(hg_dispatcher_t *d) {
  if (d->rec_head == NULL) return;
  rec_batch_t *b = malloc(sizeof(*b));
  item_t *head = d->rec_head;
  d->rec_head = NULL;
  d->rec_tail = &d->rec_head;
  d->rec_n = 0;
  uv_idle_stop(&d->rec_check);
  int r = HG_ENOMEM;
  if (b != NULL) {
    /* Filled in before it is queued: the store thread may take it at once. */
    b->d = d;
    b->head = head;
    r = hg_store_submit(d->store, record_work, record_done, b);
  }
  if (r != 0) {
    hg_log(HG_LOG_ERROR, "could not queue delivery records", "error", hg_strerror(r), NULL);
    free(b);
    for (item_t *it = head, *next; it; it = next) {
      next = it->rec_next;
      hg_dispatch__abandon(it);
    }
  }
}

static void rec_check_cb(uv_idle_t *h) { flush_records(h->data); }

static void queue_record(item_t *it) {
  hg_dispatcher_t *d = it->d;
  it->rec_next = NULL;
  *d->rec_tail = it;
  d->rec_tail = &it->rec_next;
  if (d->rec_n++ == 0) uv_idle_start(&d->rec_check, rec_check_cb);
  /* Big turns are cut into groups of a few hundred. */
  if (d->rec_n >= 256) flush_records(d);
}

/* Seconds from a Retry-After header: delta-seconds or an HTTP date. */
static int parse_retry_after(const char *v, double *out) {
  if (v == NULL) return 0;
  char *end;
  double s = strtod(v, &end);
  if (end != v && *end == '\0' && s >= 0) {
    *out = s;
    return 1;
  }
  struct tm tm;
  memset(&tm, 0, sizeof(tm));
  const char *rest = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (rest == NULL || *rest != '\0') return 0;
  double delta = (double)(timegm(&tm) - time(NULL));
  *out = delta > 0 ? delta : 0;
  return 1;
}

static double jittered(const hg_config_t *cfg, double seconds) {
  if (cfg->jitter <= 0 || seconds <= 0) return seconds;
  uint32_t r;
  if (hg_random(&r, sizeof(r)) != 0) return seconds;
  double u = (double)r / 4294967295.0 * 2.0 - 1.0; /* [-1, 1] */
  return seconds * (1.0 + cfg->jitter * u);
}

/* What the attempt does to its webhook's health (store/health.h): not for
 * test sends (they never count) nor skipped deliveries (nothing was
 * sent). */
static void health_in(item_t *it, int ok) {
  const hg_config_t *cfg = it->d->cfg;
  const hg_attempt_rec_t *rec = &it->rec;
  hg_health_in_t *in = &it->hin;
  /* Nor deliveries recorded as not sent because their webhook is inactive:
   * no request was made, and a disabled webhook's backlog must not turn
   * into one delivery.exhausted each. */
  if (it->test_cb != NULL || it->not_sent) return;
  memset(in, 0, sizeof(*in));
  in->webhook_id = it->send.webhook_id;
  in->at = rec->started_at;
  in->loaded_exhausted = it->send.health_exhausted;
  in->rule_exhausted =
      it->send.disable_after_exhausted >= 0 ? it->send.disable_after_exhausted : (int64_t)cfg->disable_after_exhausted;
  in->rule_failing_ms = it->send.disable_after_failing_ms >= 0 ? it->send.disable_after_failing_ms
                                                               : (int64_t)cfg->disable_after_failing_ms;
  if (ok) {
    in->kind = HG_HEALTH_SUCCESS;
  } else if (rec->new_status == HG_DEL_PENDING) {
    in->kind = HG_HEALTH_RETRYING;
  } else {
    in->kind = HG_HEALTH_EXHAUSTED;
    if (rec->deactivate_webhook) {
      int gone = rec->status_code == 410;
      in->disable_code = gone ? HG_DISABLED_GONE : HG_DISABLED_RETRY_POLICY;
      in->disable_message = gone ? "the receiver answered 410 Gone" : "a retry plugin answered \"deactivate\"";
    }
  }
  it->has_health = 1;
}

/* Decides what follows an attempt and queues its record. */
void hg_dispatch__finish(item_t *it, int status_code, const hg_client_response_t *res) {
  hg_dispatcher_t *d = it->d;
  const hg_config_t *cfg = d->cfg;
  int64_t now = hg_wall_ms();
  hg_attempt_rec_t *rec = &it->rec;
  /* The attempt is over: its webhook's slot is free for the next one,
   * while this one is recorded. */
  hg_dispatch__flow_end(it);
  rec->delivery_seq = it->seq;
  rec->attempt = it->send.attempts + 1;
  rec->started_at = it->started_at;
  rec->duration_ms = now - it->started_at;
  rec->status_code = status_code;
  rec->response_body = it->resp_body;
  rec->response_len = it->resp_len;
  rec->request_headers = it->send.request_headers; /* NULL unless a request went out */
  if (it->skipped) {
    rec->new_status = HG_DEL_SKIPPED;
    rec->error = it->error;
    hg_metrics.deliveries_skipped++;
    goto record;
  }
  int ok = !it->has_error && status_code >= 200 && status_code < 300;
  if (!ok && !it->has_error) {
    it->has_error = 1;
    if (status_code >= 300 && status_code < 400)
      snprintf(it->error, sizeof(it->error), "HTTP %d: redirect not followed", status_code);
    else
      snprintf(it->error, sizeof(it->error), "HTTP %d", status_code);
  }
  rec->error = it->has_error ? it->error : NULL;
  d->stats.attempts++;
  hg_hist_observe(&hg_metrics.attempt_seconds, (double)rec->duration_ms / 1000.0);
  if (ok) hg_metrics.attempts_success++;
  else hg_metrics.attempts_failure++;
  if (ok) {
    rec->new_status = HG_DEL_SUCCESS;
    d->stats.successes++;
    hg_metrics.deliveries_succeeded++;
    if (!it->test_cb)
      hg_hist_observe(&hg_metrics.delivery_latency_seconds, (double)(now - it->send.created_at) / 1000.0);
  } else if (status_code == 410) {
    /* Gone: the receiver asks us to stop. */
    rec->new_status = HG_DEL_FAILED;
    rec->deactivate_webhook = it->send.webhook_id;
    snprintf(it->error, sizeof(it->error), "HTTP 410 Gone: webhook deactivated");
    d->stats.failures++;
    hg_metrics.deliveries_failed++;
    hg_metrics.webhooks_deactivated++;
    hg_log(HG_LOG_WARN, "receiver answered 410 Gone: webhook deactivated", "webhook", it->send.webhook_id, NULL);
  } else if (it->test_cb != NULL || it->no_retry) {
    rec->new_status = HG_DEL_FAILED;
    d->stats.failures++;
    hg_metrics.deliveries_failed++;
  } else {
    int retry = (size_t)rec->attempt < cfg->n_schedule;
    double delay = retry ? jittered(cfg, cfg->schedule[rec->attempt]) : 0;
    double ra;
    if (retry && res && (status_code == 429 || status_code == 503) &&
        parse_retry_after(hg_client_response_header(res, "retry-after"), &ra))
      delay = ra < cfg->retry_after_max ? ra : cfg->retry_after_max;
    hg_lua_t *lua = *d->lua;
    if (lua && hg_lua_has(lua, HG_PHASE_RETRY, it->send.lua)) {
      /* A retry policy: a number (retry in N s), "give_up", "deactivate",
       * or nil for the default schedule. A script error keeps the default. */
      json_t *hdrs = json_object();
      for (size_t i = 0; res && i < res->n_headers; i++) {
        json_t *v = json_string(res->headers[i].value);
        if (v) json_object_set_new(hdrs, res->headers[i].name, v);
      }
      json_t *arg = json_pack("{s:i,s:i,s:i,s:s?,s:o,s:s,s:s,s:s,s:o}", "attempt", rec->attempt, "maxAttempts",
                              (int)cfg->n_schedule, "statusCode", status_code, "error", it->error, "headers", hdrs,
                              "deliveryId", it->send.id, "webhookId", it->send.webhook_id, "eventType",
                              it->send.event_type, "defaultDelay", retry ? json_real(delay) : json_null());
      json_t *res_j = NULL;
      char err[512];
      if (arg && hg_lua_call(lua, HG_PHASE_RETRY, it->send.lua, &arg, &res_j, err, sizeof(err)) == 0 && res_j) {
        if (json_is_number(res_j) && json_number_value(res_j) >= 0 && rec->attempt >= 100) {
          /* A plugin cannot retry one delivery forever: past 100 attempts
           * the schedule decides. */
          hg_log(HG_LOG_WARN, "retry phase asked for another retry after 100 attempts; using the default schedule",
                 "delivery", it->send.id, NULL);
        } else if (json_is_number(res_j) && json_number_value(res_j) >= 0) {
          retry = 1;
          delay = json_number_value(res_j);
          if (delay > 30 * 86400) delay = 30 * 86400;
        } else if (json_is_string(res_j) && strcmp(json_string_value(res_j), "give_up") == 0) {
          retry = 0;
        } else if (json_is_string(res_j) && strcmp(json_string_value(res_j), "deactivate") == 0) {
          retry = 0;
          rec->deactivate_webhook = it->send.webhook_id;
          hg_metrics.webhooks_deactivated++;
        } else {
          hg_log(HG_LOG_WARN, "retry phase returned something other than a number, \"give_up\" or \"deactivate\"; "
                 "using the default schedule", "delivery", it->send.id, NULL);
        }
      }
      json_decref(arg);
      json_decref(res_j);
    }
    if (retry) {
      rec->new_status = HG_DEL_PENDING;
      rec->next_attempt_at = now + (int64_t)llround(delay * 1000.0);
    } else {
      rec->new_status = HG_DEL_FAILED;
      d->stats.failures++;
      hg_metrics.deliveries_failed++;
    }
  }
  health_in(it, ok);
record:
  queue_record(it);
}
