/* dispatcher.c: the delivery queue: the heap of pending deliveries, the
 * busy set, loading due ones in batches, the pump, the public API.
 * Sending is deliver.c's job, the outcome record.c's
 * (dispatcher_internal.h). */
#include "pipeline/dispatcher_internal.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/log.h"
#include "store/lines.h"
#include "store/nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_BATCH 128
/* Up to this many, a batch is claimed and loaded one delivery at a time
 * (load_each). */
#define SMALL_BATCH 4
/* While the store's server is unreachable, the queue looks again this
 * often (hg_store_available is a flag: looking costs nothing). */
#define STORE_WAIT_MS 500
/* How often the heads of FIFO lines are looked for (line_sweep): the
 * longest a line waits when the push of its next head was lost (the head
 * ended on another node in a race, or while it was being renumbered, or
 * the push found no memory). */
#define LINE_SWEEP_MS 2000

/* Due items loaded in one store job (the queue's alone). */
typedef struct batch {
  hg_dispatcher_t *d;
  item_t *items[LOAD_BATCH];
  size_t n;
  int64_t now;
} batch_t;

/* --- heap of (due, seq) ------------------------------------------------------ */

/* Earlier due first; among equal ones the lower seq (the older delivery):
 * a batch queued at one time (a recovery, a restart's load) goes out
 * oldest first. */
static int before(const entry_t *a, int64_t due, int64_t seq) { return a->due < due || (a->due == due && a->seq < seq); }

int hg_dispatch__heap_push(hg_dispatcher_t *d, int64_t due, int64_t seq) {
  if (d->n_heap == d->cap_heap && hg_grow(&d->heap, &d->cap_heap, d->n_heap + 1, sizeof(*d->heap), 1024) != 0)
    return HG_ENOMEM;
  size_t i = d->n_heap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (before(&d->heap[parent], due, seq)) break;
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
    if (c + 1 < n && before(&d->heap[c + 1], d->heap[c].due, d->heap[c].seq)) c++;
    if (before(&last, d->heap[c].due, d->heap[c].seq)) break;
    d->heap[i] = d->heap[c];
    i = c;
  }
  if (n > 0) d->heap[i] = last;
  return top;
}

/* --- busy set ---------------------------------------------------------------- */

static size_t bucket(int64_t seq) { return (size_t)((uint64_t)seq * 0x9E3779B97F4A7C15ull >> 52) % BUCKETS; }

static item_t *busy_item(const hg_dispatcher_t *d, int64_t seq) {
  for (item_t *it = d->busy[bucket(seq)]; it; it = it->next)
    if (it->seq == seq) return it;
  return NULL;
}

int hg_dispatcher_busy(const hg_dispatcher_t *d, int64_t seq) { return busy_item(d, seq) != NULL; }

/* Puts (due, seq) on the heap unless it is in hand already or held back by
 * its webhook's limits (then it is on its way): 1 when pushed. */
static int offer_one(hg_dispatcher_t *d, int64_t seq, int64_t due) {
  if (hg_dispatcher_busy(d, seq) || hg_throttle_holds(d->throttle, seq)) return 0;
  return hg_dispatch__heap_push(d, due, seq) == 0;
}

void hg_dispatch__line_next(hg_dispatcher_t *d, int64_t seq, int64_t due) {
  if (d->stopping) return;
  item_t *it = busy_item(d, seq);
  if (it != NULL) it->recheck = 1;
  else hg_dispatch__heap_push(d, due > 0 ? due : hg_wall_ms(), seq);
}

#define ITEM_SPARES 256
/* Under AddressSanitizer every item is freed, so that a use after free
 * is still reported rather than reaching a reused item. */
#if defined(__SANITIZE_ADDRESS__)
#define KEEP_SPARES 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEP_SPARES 0
#endif
#endif
#ifndef KEEP_SPARES
#define KEEP_SPARES 1
#endif

static item_t *item_new(hg_dispatcher_t *d, int64_t seq) {
  item_t *it = d->spares;
  if (it != NULL) {
    d->spares = it->rec_next;
    d->n_spares--;
    memset(it, 0, sizeof(*it));
  } else if ((it = calloc(1, sizeof(*it))) == NULL) {
    return NULL;
  }
  it->d = d;
  it->seq = seq;
  size_t b = bucket(seq);
  it->next = d->busy[b];
  d->busy[b] = it;
  d->active++;
  return it;
}

static void maybe_stopped(hg_dispatcher_t *d) {
  /* A sweep's job out (line_sweeping) holds d too: its completion reads it. */
  if (d->stopping && d->active == 0 && !d->line_sweeping && d->stop_cb) {
    void (*cb)(void *) = d->stop_cb;
    d->stop_cb = NULL;
    cb(d->stop_ud);
  }
}

static void timer_cb(uv_timer_t *t);

void hg_dispatch__flow_end(item_t *it) {
  hg_dispatcher_t *d = it->d;
  hg_flow_t *f = it->flow;
  it->flow = NULL;
  /* From the timer: this runs inside record and abandon paths that go on
   * with the dispatcher after it. */
  if (hg_throttle_end(d->throttle, f) && !d->stopping && d->started) uv_timer_start(&d->timer, timer_cb, 0, 0);
}

void hg_dispatch__item_free(item_t *it) {
  hg_dispatcher_t *d = it->d;
  hg_dispatch__flow_end(it);
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
  hg_send_close(&it->send); /* wipes the secrets */
  free(it->resp_body);
  if (KEEP_SPARES && d->n_spares < ITEM_SPARES && !d->stopping) {
    it->rec_next = d->spares;
    d->spares = it;
    d->n_spares++;
  } else {
    free(it);
  }
  maybe_stopped(d);
}

/* Drops an item without recording anything: its row stays pending (and
 * due) in the store. While stopping, that is the at-least-once rule: it is
 * sent after the restart. Otherwise the row goes back on the heap. A test
 * send is answered. */
void hg_dispatch__abandon_for(item_t *it, uint64_t ms) {
  hg_dispatcher_t *d = it->d;
  int was_test = it->test_cb != NULL;
  if (it->test_cb) {
    hg_dispatch_result_t res = {it->send.id, 0, NULL, 0, 0, 0, d->stopping ? "shutting down" : "not sent"};
    it->test_cb(&res, it->test_ud);
    it->test_cb = NULL;
  }
  if (!d->stopping && !was_test) hg_dispatch__heap_push(d, hg_wall_ms() + (int64_t)ms, it->seq);
  hg_dispatch__item_free(it);
}

/* --- loading due deliveries ---------------------------------------------------- */

/* Loads the batch one delivery at a time (SQLite, or a small batch on
 * PostgreSQL, where the statements over an array below cost the server
 * several times as much per call, measured ~10x for one row, so they pay
 * only for bigger batches). */
static int load_each(hg_db_t *db, batch_t *b) {
  const hg_send_t *prev = NULL; /* the last one loaded, in this transaction at this time */
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = b->items[i];
    it->load_status = hg_deliveries_load(db, it->seq, b->now, &it->send, prev);
    /* The connection is lost and the transaction with it: nothing more
     * can be read, and the whole batch goes back on the heap. */
    if (it->load_status == HG_EUNAVAIL) return HG_EUNAVAIL;
    prev = it->load_status == 0 ? &it->send : NULL;
  }
  return 0;
}

/* Nodes sharing a PostgreSQL store: the batch is claimed (deferred: the
 * claims go out with the first load, in one round trip) and loaded; a
 * delivery whose lease is not this node's after that (another node holds
 * it, or its row is locked by another session) is marked HG_EBUSY. A
 * delivery this node accepted was born leased to it (events.h): its claim
 * writes nothing while that lease has half its length (at least
 * LEASE_LEFT_MS) past the attempt's
 * timeout to run. */
#define LEASE_LEFT_MS 5000

static int load_shared(hg_db_t *db, batch_t *b) {
  hg_dispatcher_t *d = b->d;
  /* Renewed unless half the lease is left past the attempt's timeout:
   * the attempt starts after the load, the sandbox's queue and any
   * transform, and deliver.c checks the lease again before it does. */
  int64_t left = d->lease_ms / 2 > LEASE_LEFT_MS ? d->lease_ms / 2 : LEASE_LEFT_MS;
  int64_t want = (int64_t)d->cfg->request_timeout_ms + left;
  /* Never more than a fresh claim gives (now + cluster.lease). */
  int64_t keep = b->now + (want < d->lease_ms ? want : d->lease_ms);
  int rc = 0;
  if (b->n <= SMALL_BATCH) {
    for (size_t i = 0; i < b->n && rc == 0; i++)
      rc = hg_deliveries_claim(db, b->items[i]->seq, d->node_id, b->now, d->lease_ms, keep);
    if (rc == 0) rc = load_each(db, b);
  } else {
    int64_t seqs[LOAD_BATCH];
    hg_send_t *outs[LOAD_BATCH];
    int status[LOAD_BATCH];
    for (size_t i = 0; i < b->n; i++) {
      seqs[i] = b->items[i]->seq;
      outs[i] = &b->items[i]->send;
    }
    rc = hg_deliveries_claim_many(db, seqs, b->n, d->node_id, b->now, d->lease_ms, keep);
    if (rc == 0) rc = hg_deliveries_load_many(db, seqs, b->n, b->now, outs, status);
    for (size_t i = 0; i < b->n && rc == 0; i++) b->items[i]->load_status = status[i];
  }
  if (rc != 0) {
    for (size_t i = 0; i < b->n; i++) b->items[i]->load_status = rc;
    return rc == HG_EUNAVAIL ? rc : 0;
  }
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = b->items[i];
    /* One waiting in its FIFO line was not claimed: load_done drops it. */
    if (it->load_status == 0 && !it->send.waiting && !hg_send_leased(&it->send, d->node_id, keep)) {
      hg_send_close(&it->send);
      it->load_status = HG_EBUSY;
    }
  }
  return 0;
}

static int load_work(hg_db_t *db, void *ud) {
  batch_t *b = ud;
  return b->d->node_id != NULL ? load_shared(db, b) : load_each(db, b);
}

/* The store is unavailable (hg_store_available) and it was about to be
 * sent: no attempt starts whose outcome could not be recorded. It goes
 * back on the heap, due in STORE_WAIT_MS (its row is still pending); a
 * test send is answered "not sent" instead (its row stays pending, as on
 * any other failure to send it). */
static void wait_for_store(item_t *it) {
  if (it->test_cb) {
    hg_dispatch_result_t res = {it->send.id, 0, NULL, 0, 0, 0, "not sent: the store is unavailable"};
    it->test_cb(&res, it->test_ud);
    it->test_cb = NULL;
    hg_dispatch__item_free(it);
    return;
  }
  hg_dispatch__abandon_for(it, STORE_WAIT_MS);
}

/* Whether attempts may start: the store can record their outcomes. Logs
 * once when that changes. */
static int store_ready(hg_dispatcher_t *d) {
  int up = hg_store_available(d->store);
  if (!up && !d->store_waiting) {
    d->store_waiting = 1;
    hg_log(HG_LOG_WARN, "the store is unavailable: no delivery attempt starts until it is back", NULL);
  } else if (up && d->store_waiting) {
    d->store_waiting = 0;
    hg_log(HG_LOG_INFO, "the store is available again: deliveries resume", NULL);
  }
  return up;
}

/* The webhook's limits (throttle.h), now that the load told them: 1 when
 * the attempt may start. Otherwise the throttle holds the delivery (its
 * row number: the row stays pending in the store, untouched) and hands it
 * back once the webhook has room, and the item is freed. Tests and
 * replays (forced) are explicit requests: they go at once and take no
 * slot (docs/api.md). */
static int admit(item_t *it) {
  hg_dispatcher_t *d = it->d;
  hg_flow_limits_t lim = {it->send.rate_limit_milli, it->send.max_concurrency};
  if (it->admitted) {
    /* Its slot was taken before the load: the limits it read (changed
     * perhaps by another node's PATCH) apply to the ones behind it. */
    hg_throttle_limits(d->throttle, it->send.webhook_id, &lim);
    return 1;
  }
  if (it->forced || it->test_cb) return 1;
  hg_flow_t *f = NULL;
  int v = hg_throttle_admit(d->throttle, it->send.webhook_id, &lim, it->seq, hg_wall_ms(), &f);
  if (v == HG_THROTTLE_GO) {
    it->flow = f;
    return 1;
  }
  if (v < 0) hg_dispatch__abandon(it); /* out of memory: on the heap again, due in a second */
  else hg_dispatch__item_free(it);
  return 0;
}

static void load_done(int status, void *ud) {
  batch_t *b = ud;
  hg_dispatcher_t *d = b->d;
  /* Lost while loading, or since: the batch waits for the store (logged
   * once by store_ready, here or in the pump below, not once per item). */
  int wait = !d->stopping && (status == HG_EUNAVAIL || !store_ready(d));
  for (size_t i = 0; i < b->n; i++) {
    item_t *it = b->items[i];
    hg_send_t *s = &it->send;
    if (wait) {
      wait_for_store(it);
      continue;
    }
    if (status == 0 && it->load_status == HG_EBUSY && !it->test_cb) {
      /* Held by another node's live lease (or its row by another
       * session): that node sends it. Should it die, the lease runs out
       * and the poll (cluster.c) brings it back. A replay asked of this
       * node (forced) tries again in a second instead. */
      d->stats.claims_lost++;
      if (it->forced) hg_dispatch__abandon(it);
      else hg_dispatch__item_free(it);
      continue;
    }
    if (status != 0 || it->load_status != 0 || d->stopping) {
      int gone = status == 0 && it->load_status == HG_ENOTFOUND;
      if (!gone && !d->stopping)
        hg_log(HG_LOG_ERROR, "could not load a delivery; trying again in 1 s", "error",
               hg_strerror(status != 0 ? status : it->load_status), NULL);
      if (it->test_cb) {
        /* Said as it is: a store that could not read the delivery is not
         * a delivery that does not exist (it stays pending, below). */
        char why[160];
        if (d->stopping) snprintf(why, sizeof(why), "shutting down");
        else if (status != 0)
          snprintf(why, sizeof(why), "not sent yet: the store could not read it (%s); it is sent once the store answers",
                   hg_strerror(status));
        else if (it->load_status == HG_EBUSY) snprintf(why, sizeof(why), "being sent by another node");
        else if (gone) snprintf(why, sizeof(why), "delivery not found");
        else snprintf(why, sizeof(why), "not sent yet: could not read it (%s)", hg_strerror(it->load_status));
        hg_dispatch_result_t res = {s->id, 0, NULL, 0, 0, 0, why};
        it->test_cb(&res, it->test_ud);
        it->test_cb = NULL;
      }
      /* A deleted delivery is gone; a store error leaves it pending, so it
       * goes back on the heap. */
      if (gone) hg_dispatch__item_free(it);
      else hg_dispatch__abandon(it);
      continue;
    }
    /* A stale heap entry (the delivery was replayed, or already rescheduled)
     * sends nothing: the live entry does. */
    if (!it->forced && (s->status != HG_DEL_PENDING || s->next_attempt_at > b->now)) {
      hg_dispatch__item_free(it);
      continue;
    }
    if (s->waiting && !it->test_cb) {
      /* Behind another pending delivery in its webhook's FIFO line: it
       * goes once that one ends, queued then by whichever node ends it
       * (hg_dispatch__line_next), or found by a restart's load or the
       * sweep of heads (line_sweep_cb); nothing is kept for it here. A
       * replay asked before its webhook became ordered (forced) waits
       * too: it goes in its turn. */
      d->stats.line_waits++;
      if (it->recheck) hg_dispatch__abandon_for(it, 0);
      else hg_dispatch__item_free(it);
      continue;
    }
    if (!s->webhook_active && !it->test_cb) {
      it->started_at = hg_wall_ms();
      it->has_error = 1;
      snprintf(it->error, sizeof(it->error), "not sent: the webhook is inactive");
      it->no_retry = 1;
      it->not_sent = 1;
      hg_dispatch__finish(it, 0, NULL);
      continue;
    }
    if (!admit(it)) continue;
    hg_dispatch__send(it);
  }
  free(b);
  /* Items dropped above freed slots that no record will refill. */
  hg_dispatch__pump(d);
}

static int submit_batch(hg_dispatcher_t *d, batch_t *b) {
  b->now = hg_wall_ms();
  int r = hg_store_submit(d->store, load_work, load_done, b);
  if (r != 0) {
    for (size_t i = 0; i < b->n; i++) {
      b->items[i]->test_cb = NULL; /* send_now reports the error itself */
      if (!d->stopping) hg_dispatch__heap_push(d, hg_wall_ms() + 1000, b->items[i]->seq);
      hg_dispatch__item_free(b->items[i]);
    }
    free(b);
  }
  return r;
}

/* Adds delivery seq to the batch being filled (*bp, made on first use),
 * submitting it when full. flow: the slot a held delivery took (the item
 * holds it from now on). Returns 0, or HG_ENOMEM when no item could be
 * made: seq goes back on the heap, due at due, and its slot is given
 * back. */
static int batch_add(hg_dispatcher_t *d, batch_t **bp, int64_t due, int64_t seq, hg_flow_t *flow) {
  item_t *it = NULL;
  if (*bp == NULL) *bp = calloc(1, sizeof(**bp));
  if (*bp == NULL || (it = item_new(d, seq)) == NULL) {
    hg_throttle_end(d->throttle, flow);
    hg_dispatch__heap_push(d, due, seq);
    return HG_ENOMEM;
  }
  it->flow = flow;
  it->admitted = flow != NULL;
  batch_t *b = *bp;
  b->d = d;
  b->items[b->n++] = it;
  if (b->n == LOAD_BATCH) {
    submit_batch(d, b);
    *bp = NULL;
  }
  return 0;
}

static void start_again(hg_dispatcher_t *d);

static void timer_cb(uv_timer_t *t) {
  hg_dispatcher_t *d = t->data;
  if (!d->started) start_again(d); /* the start's job failed (start_done) */
  else hg_dispatch__pump(d);
}

void hg_dispatch__pump(hg_dispatcher_t *d) {
  if (d->paused || d->stopping || !d->started) return;
  if (!store_ready(d)) {
    /* Its server is unreachable (PostgreSQL): an attempt whose outcome
     * cannot be recorded would be sent again, so none starts; due entries
     * stay on the heap and the queue looks again shortly. */
    if (d->n_heap > 0 || hg_throttle_held(d->throttle) > 0) uv_timer_start(&d->timer, timer_cb, STORE_WAIT_MS, 0);
    else uv_timer_stop(&d->timer);
    return;
  }
  int64_t now = hg_wall_ms();
  batch_t *b = NULL;
  int64_t seq;
  hg_flow_t *flow;
  /* Held deliveries whose webhook has room again go first: they were due
   * before anything the heap has due now. */
  while (d->active < d->max_active && hg_throttle_next(d->throttle, now, &seq, &flow)) {
    if (hg_dispatcher_busy(d, seq)) { /* in hand already (a replay): that attempt counts */
      hg_throttle_end(d->throttle, flow);
      continue;
    }
    if (batch_add(d, &b, now, seq, flow) != 0) break;
  }
  while (d->n_heap > 0 && d->heap[0].due <= now && d->active < d->max_active) {
    entry_t e = heap_pop(d);
    if (hg_dispatcher_busy(d, e.seq)) continue; /* a duplicate entry */
    if (batch_add(d, &b, e.due, e.seq, NULL) != 0) break;
  }
  if (b != NULL) submit_batch(d, b);
  int64_t next = d->n_heap > 0 ? d->heap[0].due : INT64_MAX;
  int64_t held = hg_throttle_due(d->throttle);
  if (held < next) next = held;
  if (next != INT64_MAX && d->active < d->max_active) {
    int64_t wait = next - now;
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
  if ((d->throttle = hg_throttle_new()) == NULL) {
    free(d);
    return HG_ENOMEM;
  }
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
  uv_timer_init(loop, &d->line_timer);
  d->line_timer.data = d;
  uv_idle_init(loop, &d->rec_check);
  d->rec_check.data = d;
  d->rec_tail = &d->rec_head;
  *out = d;
  return 0;
}

/* --- the sweep of FIFO lines' heads ------------------------------------------------ */

typedef struct sweep_job {
  hg_dispatcher_t *d;
  int64_t now;
  entry_t *heads;
  size_t n, cap;
} sweep_job_t;

static int sweep_row(int64_t seq, int64_t due, void *ud) {
  sweep_job_t *j = ud;
  if (j->n == j->cap && hg_grow(&j->heads, &j->cap, j->n + 1, sizeof(*j->heads), 64) != 0) return HG_ENOMEM;
  j->heads[j->n].seq = seq;
  j->heads[j->n++].due = due;
  return 0;
}

static int sweep_work(hg_db_t *db, void *ud) {
  sweep_job_t *j = ud;
  j->n = 0; /* the store may run it again */
  return hg_line_heads(db, j->now, sweep_row, j);
}

static void sweep_done(int status, void *ud) {
  sweep_job_t *j = ud;
  hg_dispatcher_t *d = j->d;
  d->line_sweeping = 0;
  size_t queued = 0;
  if (status == 0 && !d->stopping) {
    for (size_t i = 0; i < j->n; i++) queued += (size_t)offer_one(d, j->heads[i].seq, j->heads[i].due);
  }
  free(j->heads);
  free(j);
  if (queued > 0) hg_dispatch__pump(d);
  maybe_stopped(d);
}

/* Every LINE_SWEEP_MS: the heads of FIFO lines due now and free go on the
 * heap (a head already there is loaded once; its duplicate entry finds it
 * in hand or ended). One store job, one index lookup per ordered webhook;
 * none while paused, stopping or the store is unavailable. */
static void line_sweep_cb(uv_timer_t *t) {
  hg_dispatcher_t *d = t->data;
  if (d->line_sweeping || d->paused || d->stopping || !d->started || !hg_store_available(d->store)) return;
  /* No webhook is ordered (the index knows, on every node): nothing to do.
   * Nor while the queue is full: heads due now wait on the heap already,
   * and copies would only pile up. */
  if (d->subs != NULL && !hg_subs_any_ordered(d->subs)) return;
  if (d->active >= d->max_active) return;
  sweep_job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) return;
  j->d = d;
  j->now = hg_wall_ms();
  if (hg_store_submit(d->store, sweep_work, sweep_done, j) != 0) {
    free(j);
    return;
  }
  d->line_sweeping = 1;
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

static int start_work(hg_db_t *db, void *ud) { return hg_deliveries_pending(db, start_row, ud); }

static void start_done(int status, void *ud) {
  start_job_t *j = ud;
  hg_dispatcher_t *d = j->d;
  if (status != 0 && !d->stopping) {
    /* The pending deliveries are read again in a second, until the store
     * answers: its server is unreachable, another process holds SQLite's
     * write lock past the busy timeout, a disk error. Starting without
     * them would leave every delivery pending from before this start
     * unsent until the next one. Until then nothing is sent (not
     * started); new deliveries wait on the heap. */
    if (status == HG_EUNAVAIL)
      hg_log(HG_LOG_WARN, "could not load pending deliveries: the store is unavailable; trying again in 1 s", NULL);
    else
      hg_log(HG_LOG_ERROR, "could not load pending deliveries; trying again in 1 s", "error", hg_strerror(status),
             NULL);
    free(j->entries);
    free(j);
    uv_timer_start(&d->timer, timer_cb, 1000, 0);
    return;
  }
  if (status == 0) {
    for (size_t i = 0; i < j->n; i++) hg_dispatch__heap_push(d, j->entries[i].due, j->entries[i].seq);
    char n[24];
    snprintf(n, sizeof(n), "%zu", j->n);
    hg_log(HG_LOG_INFO, "delivery queue loaded", "pending", n, "paused", d->paused ? "true" : "false", NULL);
  }
  free(j->entries);
  free(j);
  d->started = 1;
  if (!d->stopping) uv_timer_start(&d->line_timer, line_sweep_cb, LINE_SWEEP_MS, LINE_SWEEP_MS);
  hg_dispatch__pump(d);
}

int hg_dispatcher_start(hg_dispatcher_t *d) {
  start_job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) return HG_ENOMEM;
  j->d = d;
  int r = hg_store_submit(d->store, start_work, start_done, j);
  if (r != 0) free(j);
  return r;
}

static void start_again(hg_dispatcher_t *d) {
  if (d->stopping) return;
  int r = hg_dispatcher_start(d);
  if (r == HG_ENOMEM) uv_timer_start(&d->timer, timer_cb, 1000, 0);
  else if (r != 0) hg_log(HG_LOG_ERROR, "could not load pending deliveries", "error", hg_strerror(r), NULL);
}

int hg_dispatcher_set_node(hg_dispatcher_t *d, const char *node_id, int64_t lease_ms) {
  char *id = strdup(node_id);
  if (id == NULL) return HG_ENOMEM;
  free(d->node_id);
  d->node_id = id;
  d->lease_ms = lease_ms;
  return 0;
}

void hg_dispatcher_offer(hg_dispatcher_t *d, const int64_t *seqs, const int64_t *dues, size_t n) {
  for (size_t i = 0; i < n; i++) offer_one(d, seqs[i], dues[i]);
  if (n > 0) hg_dispatch__pump(d);
}

int hg_dispatcher_has_due(const hg_dispatcher_t *d, int64_t now) {
  return d->active >= d->max_active || (d->n_heap > 0 && d->heap[0].due <= now);
}

void hg_dispatcher_enqueue(hg_dispatcher_t *d, const int64_t *seqs, size_t n, int64_t due_ms) {
  for (size_t i = 0; i < n; i++) hg_dispatch__heap_push(d, due_ms, seqs[i]);
  if (n > 0) hg_dispatch__pump(d);
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

void hg_dispatcher_limits(hg_dispatcher_t *d, const char *webhook_id, int64_t rate_limit_milli,
                          int64_t max_concurrency) {
  hg_flow_limits_t lim = {rate_limit_milli, max_concurrency};
  hg_throttle_limits(d->throttle, webhook_id, &lim);
  if (hg_throttle_due(d->throttle) <= hg_wall_ms()) hg_dispatch__pump(d);
}

const hg_sandbox_t *hg_dispatcher_sandbox(const hg_dispatcher_t *d) { return d->sandbox; }

void hg_dispatcher_on_health(hg_dispatcher_t *d, hg_dispatch_health_cb cb, void *ud) {
  d->health_cb = cb;
  d->health_ud = ud;
}

void hg_dispatcher_pause(hg_dispatcher_t *d) {
  d->paused = 1;
  /* Not started yet, the timer reads the pending deliveries again (see
   * start_done): that goes on while paused. */
  if (d->started) uv_timer_stop(&d->timer);
}

void hg_dispatcher_resume(hg_dispatcher_t *d) {
  d->paused = 0;
  hg_dispatch__pump(d);
}

int hg_dispatcher_paused(const hg_dispatcher_t *d) { return d->paused; }

void hg_dispatcher_stats(const hg_dispatcher_t *d, hg_dispatcher_stats_t *out) {
  *out = d->stats;
  out->held = hg_throttle_held(d->throttle);
  out->queued = d->n_heap + out->held;
  out->in_flight = d->active;
}

void hg_dispatcher_stop(hg_dispatcher_t *d, void (*done)(void *ud), void *ud) {
  d->stopping = 1;
  d->stop_cb = done;
  d->stop_ud = ud;
  uv_timer_stop(&d->timer);
  uv_timer_stop(&d->line_timer);
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
  while (d->spares != NULL) {
    item_t *it = d->spares;
    d->spares = it->rec_next;
    free(it);
  }
  free(d->node_id);
  free(d->heap);
  hg_throttle_free(d->throttle);
  free(d);
}

static void line_timer_close_cb(uv_handle_t *h) {
  hg_dispatcher_t *d = h->data;
  uv_close((uv_handle_t *)&d->rec_check, check_close_cb);
}

static void timer_close_cb(uv_handle_t *h) {
  hg_dispatcher_t *d = h->data;
  uv_close((uv_handle_t *)&d->line_timer, line_timer_close_cb);
}

void hg_dispatcher_free(hg_dispatcher_t *d) {
  if (d == NULL) return;
  hg_dispatch__sandbox_free(d);
  d->client = NULL;
  uv_close((uv_handle_t *)&d->timer, timer_close_cb);
}
