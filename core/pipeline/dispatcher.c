/* dispatcher.c: the delivery queue, attempts and retries. */
#define _GNU_SOURCE /* strptime, timegm */
#include "pipeline/dispatcher.h"

#include "base/common.h"
#include "base/crypto.h"
#include "store/deliveries.h"
#include "net/http_client.h"
#include "base/log.h"
#include "lua/runtime.h"
#include "base/metrics.h"
#include "sandbox/pool.h"
#include "pipeline/subs.h"
#include "base/sign.h"
#include "base/url.h"
#include "base/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOAD_BATCH 128
#define BUCKETS 4096

typedef struct entry {
  int64_t due;
  int64_t seq;
} entry_t;

typedef struct item item_t;

typedef struct batch {
  hg_dispatcher_t *d;
  item_t *items[LOAD_BATCH];
  size_t n;
  int64_t now;
} batch_t;

struct item {
  hg_dispatcher_t *d;
  item_t *next; /* bucket chain of the busy set */
  int64_t seq;
  int forced;   /* replay or test: send whatever the status */
  hg_dispatch_cb test_cb; /* non-NULL: a test send */
  void *test_ud;
  int load_status;
  hg_send_t send;
  int64_t started_at;
  /* Outcome. */
  hg_attempt_rec_t rec;
  hg_lua_delivery_t *ld; /* the Lua phases' view, while a stage runs elsewhere (the sandbox) */
  char *resp_body;
  size_t resp_len;
  char error[512];
  int has_error;
  int cancelled;
  int no_retry; /* a script error: fail now, replay after a fix */
  int skipped;  /* a transform plugin set delivery.skip: nothing is sent */
  item_t *rec_next; /* in the batch of records waiting to be written */
  int rec_status;
};

typedef struct code_cache {
  char *bindings, *code;
} code_cache_t;

struct hg_dispatcher {
  uv_loop_t *loop;
  hg_lua_t *const *lua; /* the app's current generation (may change on reload) */
  hg_subs_t *subs;
  hg_store_t *store;
  const hg_config_t *cfg;
  hg_client_t *client; /* the app's (borrowed) */
  uv_timer_t timer;
  /* Attempts finished this loop turn: written in one store job when the
   * turn ends (an idle handle: it also keeps the loop from blocking in
   * poll while records wait), not one job each. */
  uv_idle_t rec_check;
  item_t *rec_head, **rec_tail;
  size_t rec_n;
  entry_t *heap;
  size_t n_heap, cap_heap;
  item_t *busy[BUCKETS];
  size_t active; /* items alive: loading, sending or recording */
  unsigned max_active;
  int paused, stopping, started;
  hg_sandbox_t *sandbox; /* tenants' transforms: started on first use */
  code_cache_t codes[16]; /* see tenant_transform */
  unsigned next_code;
  void (*stop_cb)(void *);
  void *stop_ud;
  hg_dispatcher_stats_t stats;
};

static void pump(hg_dispatcher_t *d);

/* --- heap of (due, seq) ------------------------------------------------------ */

static int heap_push(hg_dispatcher_t *d, int64_t due, int64_t seq) {
  if (d->n_heap == d->cap_heap && hg_grow(&d->heap, &d->cap_heap, d->n_heap + 1, sizeof(*d->heap), 1024) != 0)
    return HG_ENOMEM;
  size_t i = d->n_heap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (d->heap[parent].due <= due) break;
    d->heap[i] = d->heap[parent];
    i = parent;
  }
  d->heap[i].due = due;
  d->heap[i].seq = seq;
  return 0;
}

static entry_t heap_pop(hg_dispatcher_t *d) {
  entry_t top = d->heap[0];
  entry_t last = d->heap[--d->n_heap];
  size_t i = 0, n = d->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && d->heap[c + 1].due < d->heap[c].due) c++;
    if (last.due <= d->heap[c].due) break;
    d->heap[i] = d->heap[c];
    i = c;
  }
  if (n > 0) d->heap[i] = last;
  return top;
}

/* --- busy set ---------------------------------------------------------------- */

static size_t bucket(int64_t seq) { return (size_t)((uint64_t)seq * 0x9E3779B97F4A7C15ull >> 52) % BUCKETS; }

int hg_dispatcher_busy(const hg_dispatcher_t *d, int64_t seq) {
  for (item_t *it = d->busy[bucket(seq)]; it; it = it->next)
    if (it->seq == seq) return 1;
  return 0;
}

static item_t *item_new(hg_dispatcher_t *d, int64_t seq) {
  item_t *it = calloc(1, sizeof(*it));
  if (it == NULL) return NULL;
  it->d = d;
  it->seq = seq;
  size_t b = bucket(seq);
  it->next = d->busy[b];
  d->busy[b] = it;
  d->active++;
  return it;
}

static void maybe_stopped(hg_dispatcher_t *d) {
  if (d->stopping && d->active == 0 && d->stop_cb) {
    void (*cb)(void *) = d->stop_cb;
    d->stop_cb = NULL;
    cb(d->stop_ud);
  }
}

static void item_free(item_t *it) {
  hg_dispatcher_t *d = it->d;
  for (item_t **p = &d->busy[bucket(it->seq)]; *p; p = &(*p)->next) {
    if (*p == it) {
      *p = it->next;
      break;
    }
  }
  d->active--;
  if (it->ld) {
    hg_lua_delivery_close(it->ld);
    free(it->ld);
  }
  hg_send_close(&it->send);
  free(it->resp_body);
  free(it);
  maybe_stopped(d);
}

/* Drops an item without recording anything: its row stays pending (and
 * due) in the store. While stopping, that is the at-least-once rule: it is
 * sent after the restart. Otherwise the row goes back on the heap. A test
 * send is answered. */
static void abandon_for(item_t *it, uint64_t ms) {
  hg_dispatcher_t *d = it->d;
  int was_test = it->test_cb != NULL;
  if (it->test_cb) {
    hg_dispatch_result_t res = {it->send.id, 0, NULL, 0, 0, 0, d->stopping ? "shutting down" : "not sent"};
    it->test_cb(&res, it->test_ud);
    it->test_cb = NULL;
  }
  if (!d->stopping && !was_test) heap_push(d, hg_wall_ms() + (int64_t)ms, it->seq);
  item_free(it);
}

static void abandon(item_t *it) { abandon_for(it, 1000); }

/* --- recording the outcome --------------------------------------------------- */

static void after_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)status, (void)arg, (void)res, (void)res2, (void)err, (void)ud;
}

typedef struct rec_batch {
  hg_dispatcher_t *d;
  item_t *head;
} rec_batch_t;

static int record_work(sqlite3 *db, void *ud) {
  rec_batch_t *b = ud;
  for (item_t *it = b->head; it; it = it->rec_next) it->rec_status = hg_deliveries_record(db, &it->rec);
  return 0;
}

static void record_one(item_t *it, int status) {
  hg_dispatcher_t *d = it->d;
  if (status != 0) {
    /* Not recorded: the row is still pending and due in the store, so it
     * is sent again (at least once): after the retry delay, or in 1 s. */
    hg_log(HG_LOG_ERROR, "could not record a delivery attempt", "delivery", it->send.id, "error",
           hg_strerror(status), NULL);
    if (it->rec.new_status != HG_DEL_PENDING && !d->stopping && !it->test_cb) heap_push(d, hg_wall_ms() + 1000, it->seq);
  }
  if (it->rec.new_status == HG_DEL_PENDING && !d->stopping) heap_push(d, it->rec.next_attempt_at, it->seq);
  if (status == 0 && it->rec.deactivate_webhook && d->subs) hg_subs_set_active(d->subs, it->rec.deactivate_webhook, 0);
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
  item_free(it);
}

static void record_done(int status, void *ud) {
  rec_batch_t *b = ud;
  hg_dispatcher_t *d = b->d;
  for (item_t *it = b->head, *next; it; it = next) {
    next = it->rec_next;
    record_one(it, status != 0 ? status : it->rec_status);
  }
  free(b);
  pump(d);
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
      abandon(it);
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

/* Decides what follows an attempt and queues its record. */
static void finish_attempt(item_t *it, int status_code, const hg_client_response_t *res) {
  hg_dispatcher_t *d = it->d;
  const hg_config_t *cfg = d->cfg;
  int64_t now = hg_wall_ms();
  hg_attempt_rec_t *rec = &it->rec;
  rec->delivery_seq = it->seq;
  rec->attempt = it->send.attempts + 1;
  rec->started_at = it->started_at;
  rec->duration_ms = now - it->started_at;
  rec->status_code = status_code;
  rec->response_body = it->resp_body;
  rec->response_len = it->resp_len;
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
        if (json_is_number(res_j) && json_number_value(res_j) >= 0 && rec->attempt < 100) {
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
record:
  queue_record(it);
}

/* --- sending ------------------------------------------------------------------ */

static void response_cb(const hg_client_response_t *res, void *ud) {
  item_t *it = ud;
  if (res->error == HG_ECLOSED) {
    /* Cancelled by stop: leave the row pending for the next start. */
    abandon(it);
    return;
  }
  if (res->body_len > 0) {
    it->resp_body = malloc(res->body_len);
    if (it->resp_body) {
      memcpy(it->resp_body, res->body, res->body_len);
      it->resp_len = res->body_len;
    }
  }
  if (res->error != 0) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "%s", res->error_text ? res->error_text : hg_strerror(res->error));
  }
  finish_attempt(it, res->status, res);
}

/* Sends the request: the plain path, or the one a deliver-phase plugin
 * looked at (req_json holds url, body and headers then). */
/* Puts the request on the wire (the client copies what it needs). */
static void send_raw(item_t *it, const char *url, const char *body, size_t body_len, const hg_client_header_t *headers,
                     size_t n_headers) {
  hg_dispatcher_t *d = it->d;
  if (d->client == NULL || d->stopping) {
    abandon(it);
    return;
  }
  hg_client_request_t req;
  memset(&req, 0, sizeof(req));
  req.method = "POST";
  req.url = url;
  req.headers = headers;
  req.n_headers = n_headers;
  req.body = body;
  req.body_len = body_len;
  char err[200];
  int r = hg_client_send(d->client, &req, response_cb, it, err, sizeof(err));
  if (r != 0) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "%s", r == HG_EINVAL ? err : hg_strerror(r));
    finish_attempt(it, 0, NULL);
  }
}

static void script_failed(item_t *it, const char *err);

/* 0 if url (as the Lua phases left it) follows the webhook URL rules;
 * else fails the delivery as a script error and returns -1. */
static int url_allowed(item_t *it, const char *url) {
  char why[128];
  if (url == it->send.url || hg_url_ok(url, it->d->cfg->allow_http_urls, why, sizeof(why))) return 0;
  char msg[256];
  snprintf(msg, sizeof(msg), "delivery.url after the Lua phases %s", why);
  script_failed(it, msg);
  return -1;
}

/* Sends what a deliver-phase plugin left in req_json (url, body, headers). */
static void send_request(item_t *it, json_t *req_json) {
  hg_client_header_t headers[64];
  size_t n = 0;
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(req_json, "headers"), k, v) {
    if (n < HG_ARRAY_LEN(headers) && json_is_string(v)) {
      headers[n].name = k;
      headers[n++].value = json_string_value(v);
    }
  }
  const char *url = json_string_value(json_object_get(req_json, "url"));
  json_t *body = json_object_get(req_json, "body");
  if (url == NULL || !json_is_string(body)) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "script_error: url and body must be strings after the Lua phases");
    it->no_retry = 1;
    finish_attempt(it, 0, NULL);
    return;
  }
  if (url_allowed(it, url) != 0) return;
  send_raw(it, url, json_string_value(body), json_string_length(body), headers, n);
}

static void script_failed(item_t *it, const char *err) {
  if (it->d->stopping) {
    abandon(it);
    return;
  }
  /* A broken script fails the delivery (no retry: it would fail the same
   * way); after a fix, a replay sends it. */
  it->has_error = 1;
  it->no_retry = 1;
  snprintf(it->error, sizeof(it->error), "script_error: %.400s", err);
  finish_attempt(it, 0, NULL);
}

static void deliver_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)res, (void)res2;
  item_t *it = ud;
  if (it->d->stopping) {
    /* Shutting down: whatever the plugin saw (its requests were cancelled),
     * the delivery stays pending and goes out after the restart. */
    abandon(it);
    return;
  }
  if (status != 0) {
    script_failed(it, err);
    return;
  }
  send_request(it, arg);
}

/* The request as the Lua phases left it, for the deliver phase (JSON). */
static json_t *delivery_json(const hg_lua_delivery_t *ld) {
  json_t *h = json_object();
  for (size_t i = 0; i < ld->n_headers; i++) {
    json_t *v = json_string(ld->headers[i].value);
    if (v) json_object_set_new(h, ld->headers[i].name, v);
  }
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s%,s:o,s:i}", "id", ld->id, "webhookId", ld->webhook_id, "eventId",
                   ld->event_id, "eventType", ld->event_type, "url", ld->url, "body", ld->body, ld->body_len,
                   "headers", h, "attempt", ld->attempt);
}

static int add_header(hg_lua_delivery_t *ld, const char *name, const char *value) {
  /* These are the core's: every header of that name, in any case, goes
   * (two spellings would both be sent), then the core's value is added. */
  size_t k = 0;
  for (size_t i = 0; i < ld->n_headers; i++) {
    if (strcasecmp(ld->headers[i].name, name) == 0) {
      free(ld->headers[i].name);
      free(ld->headers[i].value);
    } else {
      ld->headers[k++] = ld->headers[i];
    }
  }
  ld->n_headers = k;
  hg_lua_header_t *h = realloc(ld->headers, (ld->n_headers + 1) * sizeof(*h));
  if (h == NULL) return HG_ENOMEM;
  ld->headers = h;
  char *n = strdup(name), *v = strdup(value);
  if (n == NULL || v == NULL) {
    free(n);
    free(v);
    return HG_ENOMEM;
  }
  h[ld->n_headers].name = n;
  h[ld->n_headers].value = v;
  ld->n_headers++;
  return 0;
}

/* Sends ld after a transform phase alone: the core's headers go straight
 * into the request, each replacing the first of the plugin's headers of
 * the same name as add_header would, without copying any. */
static void send_transformed(item_t *it, const hg_lua_delivery_t *ld, const char *ts_buf, const char *sig) {
  const hg_client_header_t core[] = {
      {"Content-Type", "application/json"},
      {"webhook-id", it->send.event_id},
      {"webhook-timestamp", ts_buf},
      {"webhook-signature", sig},
  };
  hg_client_header_t headers[64 + HG_ARRAY_LEN(core)];
  size_t n = 0;
  if (ld->n_headers > 64) {
    /* Cutting the list could drop the signature: refuse instead. */
    script_failed(it, "more than 64 request headers after the Lua phases");
    return;
  }
  /* The plugins' headers but the core's names, in any case (a second
   * spelling would be sent beside the core's value), then the core's. */
  for (size_t i = 0; i < ld->n_headers; i++) {
    size_t k = 0;
    while (k < HG_ARRAY_LEN(core) && strcasecmp(ld->headers[i].name, core[k].name) != 0) k++;
    if (k == HG_ARRAY_LEN(core)) headers[n++] = (hg_client_header_t){ld->headers[i].name, ld->headers[i].value};
  }
  if (n + HG_ARRAY_LEN(core) > 64) {
    script_failed(it, "more than 64 request headers after the Lua phases");
    return;
  }
  for (size_t k = 0; k < HG_ARRAY_LEN(core); k++) headers[n++] = core[k];
  send_raw(it, ld->url, ld->body, ld->body_len, headers, n);
}

static void send_lua_rest(item_t *it);

/* The webhook's own transform code (tenant code: it runs in the sandbox),
 * from its bindings text, or NULL when it has none. Borrowed from a small
 * cache of the last bindings seen (parsed once, not per delivery): valid
 * until the next call. */
static const char *tenant_transform(hg_dispatcher_t *d, const char *bindings) {
  if (bindings == NULL || strstr(bindings, "\"transform\"") == NULL) return NULL;
  code_cache_t *c = d->codes;
  for (size_t i = 0; i < HG_ARRAY_LEN(d->codes); i++)
    if (c[i].bindings && strcmp(c[i].bindings, bindings) == 0) return c[i].code;
  code_cache_t *slot = &c[d->next_code++ % HG_ARRAY_LEN(d->codes)];
  free(slot->bindings);
  free(slot->code);
  slot->bindings = slot->code = NULL;
  json_t *b = json_loads(bindings, 0, NULL);
  const char *code = json_string_value(json_object_get(b, "transform"));
  if (code && (slot->bindings = strdup(bindings)) != NULL && (slot->code = strdup(code)) == NULL) {
    free(slot->bindings);
    slot->bindings = NULL;
  }
  json_decref(b);
  return slot->code;
}

static void tenant_done(int status, hg_lua_delivery_t *ld, const char *err, void *ud) {
  item_t *it = ud;
  (void)ld;
  if (it->d->stopping) {
    abandon(it);
    return;
  }
  if (status == HG_EBUSY || status == HG_ENOMEM) {
    abandon(it); /* due again in a second */
    return;
  }
  if (status != 0) {
    /* Named as the docs say: plugin webhook-transform, then where. */
    char msg[700];
    snprintf(msg, sizeof(msg), "plugin webhook-transform (transform): %s", err);
    hg_lua_count_error("webhook-transform", "transform");
    script_failed(it, msg);
    return;
  }
  send_lua_rest(it);
}

static hg_sandbox_t *sandbox_of(hg_dispatcher_t *d) {
  if (d->sandbox == NULL) {
    const hg_config_t *cfg = d->cfg;
    hg_sandbox_opts_t o = {.loop = d->loop,
                           .workers = (unsigned)cfg->sandbox_workers,
                           .states = (unsigned)cfg->sandbox_states,
                           .budget_ms = cfg->sandbox_cpu_budget_ms,
                           .grace_ms = cfg->sandbox_grace_ms,
                           .memory = cfg->sandbox_memory,
                           .max_queue = cfg->sandbox_queue,
                           /* One organization's transforms hold at most half
                            * the dispatcher's places (max_active is twice
                            * max_in_flight): past that its deliveries wait in
                            * the heap, and the other half stays free for the
                            * other organizations. */
                           .max_per_org = cfg->max_in_flight};
    char err[256];
    if (hg_sandbox_new(&d->sandbox, &o, err, sizeof(err)) != 0)
      hg_log(HG_LOG_ERROR, "cannot start the transform sandbox", "error", err, NULL);
  }
  return d->sandbox;
}

/* The Lua phases of a delivery: the operator's transform plugins here, the
 * webhook's own transform code in the sandbox (tenant code never runs in
 * this process), then send_lua_rest. */
static void send_lua(item_t *it, hg_lua_t *lua, int lua_transform, int tenant) {
  hg_send_t *s = &it->send;
  hg_lua_delivery_t *ld = it->ld = calloc(1, sizeof(*ld));
  if (ld == NULL) {
    abandon(it);
    return;
  }
  ld->id = s->id;
  ld->webhook_id = s->webhook_id;
  ld->event_id = s->event_id;
  ld->event_type = s->event_type;
  ld->attempt = s->attempts + 1;
  char err[1024];
  /* Borrowed: copied only if a plugin changes them. */
  ld->url = s->url;
  ld->body = s->payload;
  ld->body_len = s->payload_len;
  if (lua_transform && hg_lua_call_delivery(lua, HG_PHASE_TRANSFORM, s->lua, ld, err, sizeof(err)) != 0) {
    script_failed(it, err);
    return;
  }
  const char *code = tenant ? tenant_transform(it->d, s->lua) : NULL;
  if (code != NULL) {
    hg_sandbox_t *sb = sandbox_of(it->d);
    uint64_t retry_ms = 1000;
    int r = sb ? hg_sandbox_transform(sb, s->webhook_id, s->org, code, ld, tenant_done, it, &retry_ms) : HG_EIO;
    /* The sandbox is full, holds its share of this organization's
     * transforms already, or cannot start: due again when it says its
     * queue for the organization will have room (a second if it cannot
     * tell). */
    if (r != 0) abandon_for(it, r == HG_EBUSY ? retry_ms : 1000);
    return;
  }
  send_lua_rest(it);
}

/* After the transforms: skip, sign (the core's signature, then the sign
 * phase), the deliver phase or the request. */
static void send_lua_rest(item_t *it) {
  hg_send_t *s = &it->send;
  hg_lua_t *lua = *it->d->lua;
  hg_lua_delivery_t ld = *it->ld;
  free(it->ld);
  it->ld = NULL;
  int lua_sign = lua && hg_lua_has(lua, HG_PHASE_SIGN, s->lua);
  int lua_deliver = lua && hg_lua_has(lua, HG_PHASE_DELIVER, s->lua);
  int64_t ts = it->started_at / 1000;
  char ts_buf[24];
  ts_buf[hg_fmt_i64(ts_buf, ts)] = '\0';
  char err[1024];
  /* delivery.skip = "reason" (or true): this webhook does not get this
   * event. Recorded as skipped with the reason; nothing is sent. */
  if (ld.skip != NULL) {
    it->skipped = 1;
    it->has_error = 1; /* a test send reports the reason */
    snprintf(it->error, sizeof(it->error), "skipped: %.400s", ld.skip);
    hg_lua_delivery_close(&ld);
    finish_attempt(it, 0, NULL);
    return;
  }
  /* A transform may change the URL, within the rules the API applies. */
  if (url_allowed(it, ld.url) != 0) {
    hg_lua_delivery_close(&ld);
    return;
  }
  /* The Standard Webhooks signature covers the body as sent, after any
   * transformation. */
  char sig[HG_MAX_SECRETS * (HG_SIG_V1_LEN + 1) + 1];
  const char *secrets[HG_MAX_SECRETS];
  for (size_t i = 0; i < s->n_secrets; i++) secrets[i] = s->secrets[i];
  if (s->n_secrets == 0 ||
      hg_sign_header(secrets, s->n_secrets, s->event_id, ts, ld.body, ld.body_len, sig, sizeof(sig)) < 0) {
    hg_lua_delivery_close(&ld);
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "cannot sign: the webhook has no valid secret");
    finish_attempt(it, 0, NULL);
    return;
  }
  if (!lua_sign && !lua_deliver) {
    send_transformed(it, &ld, ts_buf, sig);
    hg_lua_delivery_close(&ld);
    return;
  }
  if (add_header(&ld, "Content-Type", "application/json") != 0 || add_header(&ld, "webhook-id", s->event_id) != 0 ||
      add_header(&ld, "webhook-timestamp", ts_buf) != 0 || add_header(&ld, "webhook-signature", sig) != 0) {
    hg_lua_delivery_close(&ld);
    script_failed(it, "out of memory");
    return;
  }
  if (lua_sign && hg_lua_call_delivery(lua, HG_PHASE_SIGN, s->lua, &ld, err, sizeof(err)) != 0) {
    hg_lua_delivery_close(&ld);
    script_failed(it, err);
    return;
  }
  if (lua_sign && url_allowed(it, ld.url) != 0) {
    hg_lua_delivery_close(&ld);
    return;
  }
  if (lua_deliver) {
    json_t *dj = delivery_json(&ld);
    hg_lua_delivery_close(&ld);
    int r = dj ? hg_lua_call_async(lua, HG_PHASE_DELIVER, s->lua, dj, deliver_done, it) : HG_EINVAL;
    json_decref(dj);
    if (r != 0) script_failed(it, "the deliver phase could not start (headers or body not UTF-8?)");
    return;
  }
  hg_client_header_t headers[64];
  size_t n = 0;
  if (ld.n_headers > HG_ARRAY_LEN(headers)) {
    /* Cutting the list could drop the signature: refuse instead. */
    hg_lua_delivery_close(&ld);
    script_failed(it, "more than 64 request headers after the Lua phases");
    return;
  }
  for (size_t i = 0; i < ld.n_headers && n < HG_ARRAY_LEN(headers); i++) {
    headers[n].name = ld.headers[i].name;
    headers[n++].value = ld.headers[i].value;
  }
  send_raw(it, ld.url, ld.body, ld.body_len, headers, n);
  hg_lua_delivery_close(&ld);
}

static void send_item(item_t *it) {
  hg_dispatcher_t *d = it->d;
  hg_send_t *s = &it->send;
  hg_lua_t *lua = *d->lua;
  it->started_at = hg_wall_ms();
  int64_t ts = it->started_at / 1000;
  char ts_buf[24];
  ts_buf[hg_fmt_i64(ts_buf, ts)] = '\0';
  int lua_transform = lua && hg_lua_has(lua, HG_PHASE_TRANSFORM, s->lua);
  int lua_sign = lua && hg_lua_has(lua, HG_PHASE_SIGN, s->lua);
  int lua_deliver = lua && hg_lua_has(lua, HG_PHASE_DELIVER, s->lua);
  int tenant = s->lua != NULL && strstr(s->lua, "\"transform\"") != NULL;
  if (lua_transform || lua_sign || lua_deliver || tenant) {
    send_lua(it, lua, lua_transform, tenant);
    return;
  }
  char sig[HG_MAX_SECRETS * (HG_SIG_V1_LEN + 1) + 1];
  const char *secrets[HG_MAX_SECRETS];
  for (size_t i = 0; i < s->n_secrets; i++) secrets[i] = s->secrets[i];
  if (s->n_secrets == 0 ||
      hg_sign_header(secrets, s->n_secrets, s->event_id, ts, s->payload, s->payload_len, sig, sizeof(sig)) < 0) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "cannot sign: the webhook has no valid secret");
    finish_attempt(it, 0, NULL);
    return;
  }
  hg_client_header_t headers[] = {
      {"Content-Type", "application/json"},
      {"webhook-id", s->event_id},
      {"webhook-timestamp", ts_buf},
      {"webhook-signature", sig},
  };
  send_raw(it, s->url, s->payload, s->payload_len, headers, HG_ARRAY_LEN(headers));
}

/* --- loading due deliveries ---------------------------------------------------- */

static int load_work(sqlite3 *db, void *ud) {
  batch_t *b = ud;
  const hg_send_t *prev = NULL; /* the last one loaded, in this transaction at this time */
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = b->items[i];
    it->load_status = hg_deliveries_load(db, it->seq, b->now, &it->send, prev);
    prev = it->load_status == 0 ? &it->send : NULL;
  }
  return 0;
}

static void load_done(int status, void *ud) {
  batch_t *b = ud;
  hg_dispatcher_t *d = b->d;
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = b->items[i];
    hg_send_t *s = &it->send;
    if (status != 0 || it->load_status != 0 || d->stopping) {
      int gone = status == 0 && it->load_status == HG_ENOTFOUND;
      if (!gone && !d->stopping)
        hg_log(HG_LOG_ERROR, "could not load a delivery; trying again in 1 s", "error",
               hg_strerror(status != 0 ? status : it->load_status), NULL);
      if (it->test_cb) {
        hg_dispatch_result_t res = {s->id, 0, NULL, 0, 0, 0, d->stopping ? "shutting down" : "delivery not found"};
        it->test_cb(&res, it->test_ud);
        it->test_cb = NULL;
      }
      /* A deleted delivery is gone; a store error leaves it pending, so it
       * goes back on the heap. */
      if (gone) item_free(it);
      else abandon(it);
      continue;
    }
    /* A stale heap entry (the delivery was replayed, or already rescheduled)
     * sends nothing: the live entry does. */
    if (!it->forced && (s->status != HG_DEL_PENDING || s->next_attempt_at > b->now)) {
      item_free(it);
      continue;
    }
    if (!s->webhook_active && !it->test_cb) {
      it->started_at = hg_wall_ms();
      it->has_error = 1;
      snprintf(it->error, sizeof(it->error), "not sent: the webhook is inactive");
      it->no_retry = 1;
      finish_attempt(it, 0, NULL);
      continue;
    }
    send_item(it);
  }
  free(b);
  /* Items dropped above freed slots that no record will refill. */
  pump(d);
}

static int submit_batch(hg_dispatcher_t *d, batch_t *b) {
  b->now = hg_wall_ms();
  int r = hg_store_submit(d->store, load_work, load_done, b);
  if (r != 0) {
    for (size_t i = 0; i < b->n; i++) {
      b->items[i]->test_cb = NULL; /* send_now reports the error itself */
      if (!d->stopping) heap_push(d, hg_wall_ms() + 1000, b->items[i]->seq);
      item_free(b->items[i]);
    }
    free(b);
  }
  return r;
}

static void timer_cb(uv_timer_t *t) { pump(t->data); }

static void pump(hg_dispatcher_t *d) {
  if (d->paused || d->stopping || !d->started) return;
  int64_t now = hg_wall_ms();
  batch_t *b = NULL;
  while (d->n_heap > 0 && d->heap[0].due <= now && d->active < d->max_active) {
    entry_t e = heap_pop(d);
    if (hg_dispatcher_busy(d, e.seq)) continue; /* a duplicate entry */
    if (b == NULL && (b = calloc(1, sizeof(*b))) == NULL) {
      heap_push(d, e.due, e.seq);
      break;
    }
    item_t *it = item_new(d, e.seq);
    if (it == NULL) {
      heap_push(d, e.due, e.seq);
      break;
    }
    b->d = d;
    b->items[b->n++] = it;
    if (b->n == LOAD_BATCH) {
      submit_batch(d, b);
      b = NULL;
    }
  }
  if (b != NULL) submit_batch(d, b);
  if (d->n_heap > 0 && d->active < d->max_active) {
    int64_t wait = d->heap[0].due - now;
    uv_timer_start(&d->timer, timer_cb, wait > 0 ? (uint64_t)wait : 1, 0);
  } else {
    uv_timer_stop(&d->timer);
  }
}

/* --- public ------------------------------------------------------------------- */

int hg_dispatcher_new(hg_dispatcher_t **out, uv_loop_t *loop, hg_store_t *store, const hg_config_t *cfg,
                      hg_lua_t *const *lua, hg_subs_t *subs, hg_client_t *client) {
  hg_dispatcher_t *d = calloc(1, sizeof(*d));
  if (d == NULL) return HG_ENOMEM;
  d->client = client;
  d->lua = lua;
  d->subs = subs;
  d->loop = loop;
  d->store = store;
  d->cfg = cfg;
  d->paused = cfg->delivery_paused;
  /* Loaded and recording items beyond the client's cap keep the pipeline
   * full while responses are being recorded. */
  d->max_active = cfg->max_in_flight * 2;
  uv_timer_init(loop, &d->timer);
  d->timer.data = d;
  uv_idle_init(loop, &d->rec_check);
  d->rec_check.data = d;
  d->rec_tail = &d->rec_head;
  *out = d;
  return 0;
}

typedef struct start_job {
  hg_dispatcher_t *d;
  entry_t *entries;
  size_t n, cap;
  int failed;
} start_job_t;

static int start_row(int64_t seq, int64_t due, void *ud) {
  start_job_t *j = ud;
  if (j->n == j->cap && hg_grow(&j->entries, &j->cap, j->n + 1, sizeof(*j->entries), 1024) != 0) return HG_ENOMEM;
  j->entries[j->n].seq = seq;
  j->entries[j->n++].due = due;
  return 0;
}

static int start_work(sqlite3 *db, void *ud) { return hg_deliveries_pending(db, start_row, ud); }

static void start_done(int status, void *ud) {
  start_job_t *j = ud;
  hg_dispatcher_t *d = j->d;
  if (status != 0) {
    hg_log(HG_LOG_ERROR, "could not load pending deliveries", "error", hg_strerror(status), NULL);
  } else {
    for (size_t i = 0; i < j->n; i++) heap_push(d, j->entries[i].due, j->entries[i].seq);
    char n[24];
    snprintf(n, sizeof(n), "%zu", j->n);
    hg_log(HG_LOG_INFO, "delivery queue loaded", "pending", n, "paused", d->paused ? "true" : "false", NULL);
  }
  free(j->entries);
  free(j);
  d->started = 1;
  pump(d);
}

int hg_dispatcher_start(hg_dispatcher_t *d) {
  start_job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) return HG_ENOMEM;
  j->d = d;
  int r = hg_store_submit(d->store, start_work, start_done, j);
  if (r != 0) free(j);
  return r;
}

void hg_dispatcher_enqueue(hg_dispatcher_t *d, const int64_t *seqs, size_t n, int64_t due_ms) {
  for (size_t i = 0; i < n; i++) heap_push(d, due_ms, seqs[i]);
  if (n > 0) pump(d);
}

int hg_dispatcher_send_now(hg_dispatcher_t *d, int64_t seq, hg_dispatch_cb cb, void *ud) {
  if (d->stopping) return HG_ESTATE;
  if (hg_dispatcher_busy(d, seq)) return HG_EBUSY;
  batch_t *b = calloc(1, sizeof(*b));
  if (b == NULL) return HG_ENOMEM;
  item_t *it = item_new(d, seq);
  if (it == NULL) {
    free(b);
    return HG_ENOMEM;
  }
  it->forced = 1;
  it->test_cb = cb;
  it->test_ud = ud;
  b->d = d;
  b->items[b->n++] = it;
  return submit_batch(d, b);
}

const hg_sandbox_t *hg_dispatcher_sandbox(const hg_dispatcher_t *d) { return d->sandbox; }

void hg_dispatcher_pause(hg_dispatcher_t *d) {
  d->paused = 1;
  uv_timer_stop(&d->timer);
}

void hg_dispatcher_resume(hg_dispatcher_t *d) {
  d->paused = 0;
  pump(d);
}

int hg_dispatcher_paused(const hg_dispatcher_t *d) { return d->paused; }

void hg_dispatcher_stats(const hg_dispatcher_t *d, hg_dispatcher_stats_t *out) {
  *out = d->stats;
  out->queued = d->n_heap;
  out->in_flight = d->active;
}

void hg_dispatcher_stop(hg_dispatcher_t *d, void (*done)(void *ud), void *ud) {
  d->stopping = 1;
  d->stop_cb = done;
  d->stop_ud = ud;
  uv_timer_stop(&d->timer);
  /* Nothing is sent from now on. Requests on the wire end when the caller
   * closes the client; their callbacks free their items then. Items being
   * loaded or recorded finish through the store. */
  d->client = NULL;
  /* Transforms queued or running in the sandbox end now: their deliveries
   * stay pending and go out after the restart. */
  hg_sandbox_cancel(d->sandbox);
  maybe_stopped(d);
}

static void check_close_cb(uv_handle_t *h) {
  hg_dispatcher_t *d = h->data;
  free(d->heap);
  free(d);
}

static void timer_close_cb(uv_handle_t *h) {
  hg_dispatcher_t *d = h->data;
  uv_close((uv_handle_t *)&d->rec_check, check_close_cb);
}

void hg_dispatcher_free(hg_dispatcher_t *d) {
  if (d == NULL) return;
  hg_sandbox_free(d->sandbox);
  d->sandbox = NULL;
  for (size_t i = 0; i < HG_ARRAY_LEN(d->codes); i++) {
    free(d->codes[i].bindings);
    free(d->codes[i].code);
  }
  d->client = NULL;
  uv_close((uv_handle_t *)&d->timer, timer_close_cb);
}
