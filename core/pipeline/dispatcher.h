/* dispatcher.h: sends due deliveries, records each attempt, schedules
 * retries.
 *
 * Every pending delivery is one 16-byte entry (due time, row) in an
 * in-memory min-heap, loaded from the store at start and fed by ingestion
 * after each commit. Due entries are loaded from the store in batches,
 * signed, sent through the HTTP client (which enforces the global and
 * per-origin caps), and each outcome is recorded in the store (group
 * commit) before the next attempt is scheduled. A delivery in flight when
 * the process dies is still pending in the store, so it is sent again after
 * a restart, with the same webhook-id (at least once). While the store's
 * server is unreachable (hg_store_available), no attempt starts; one whose
 * outcome could not be recorded stays pending and is sent again. */
#ifndef HG_DISPATCHER_H
#define HG_DISPATCHER_H

#include "config/config.h"
#include "store/health.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hg_dispatcher hg_dispatcher_t;

typedef struct hg_dispatch_result {
  const char *delivery_id;
  int status_code; /* 0: no response */
  const char *body;
  size_t body_len;
  int64_t duration_ms;
  int success;
  const char *error; /* NULL on success */
} hg_dispatch_result_t;

typedef void (*hg_dispatch_cb)(const hg_dispatch_result_t *res, void *ud);

/* What a recorded attempt did to its webhook's health (store/health.h),
 * for the operational events (pipeline/health.h). Every pointer is valid
 * during the callback only. */
typedef struct hg_dispatch_health {
  const char *webhook_id, *org; /* org: "" for none */
  const char *delivery_id, *event_id, *event_type;
  int attempts;                 /* made, this one included */
  int status_code;              /* this attempt's; 0: no response */
  const char *error;            /* this attempt's, or NULL */
  int exhausted;                /* the delivery failed for good */
  const hg_health_out_t *health;
} hg_dispatch_health_t;

/* Runs on the loop thread after the record's store job committed, never
 * inside a dispatcher call made by the caller. */
typedef void (*hg_dispatch_health_cb)(const hg_dispatch_health_t *h, void *ud);

struct hg_lua;
struct hg_subs;
struct hg_client;
/* Creates the dispatcher from cfg (delivery section). lua points at the
 * app's current Lua generation (read at each use, since a reload replaces
 * it). subs: the subscription index, told when a 410 deactivates a
 * webhook. client: the HTTP client deliveries go out through (borrowed:
 * the caller creates it and closes it after hg_dispatcher_stop, which
 * cancels the requests on the wire). Returns 0 or HG_ENOMEM. */
int hg_dispatcher_new(hg_dispatcher_t **out, uv_loop_t *loop, hg_store_t *store, const hg_config_t *cfg,
                      struct hg_lua *const *lua, struct hg_subs *subs, struct hg_client *client);

/* Loads the pending deliveries from the store and starts sending (unless
 * paused). While the store's server is unreachable (the load fails with
 * HG_EUNAVAIL) it tries again every second and sends nothing meanwhile. */
int hg_dispatcher_start(hg_dispatcher_t *d);

/* Adds new pending deliveries (rows already committed), due at due_ms. */
void hg_dispatcher_enqueue(hg_dispatcher_t *d, const int64_t *seqs, size_t n, int64_t due_ms);

/* Sharing a PostgreSQL store (cluster.h): from now on each delivery is
 * claimed for node_id (copied) for lease_ms before it is loaded, and one
 * another node holds is left to it. Returns 0 or HG_ENOMEM. */
int hg_dispatcher_set_node(hg_dispatcher_t *d, const char *node_id, int64_t lease_ms);

/* As enqueue, each with its own due time, skipping those in hand (or held
 * back by their webhook's limits): the orphaned work the cluster poll
 * found. */
void hg_dispatcher_offer(hg_dispatcher_t *d, const int64_t *seqs, const int64_t *dues, size_t n);

/* Whether the queue has work due at now or no room: a node that is busy
 * takes on no other node's work. */
int hg_dispatcher_has_due(const hg_dispatcher_t *d, int64_t now);

/* 1 if delivery seq is being sent (or loaded, or recorded) right now. */
int hg_dispatcher_busy(const hg_dispatcher_t *d, int64_t seq);

/* Sends delivery seq now, whatever its status: once and without retries
 * when cb is non-NULL (a test send; cb gets the outcome after it is
 * recorded), or as a replay (cb NULL): one more attempt, which retries on
 * the schedule only while the schedule has attempts left.
 * Returns HG_EBUSY when it is in flight, HG_ESTATE when stopping. */
int hg_dispatcher_send_now(hg_dispatcher_t *d, int64_t seq, hg_dispatch_cb cb, void *ud);

/* From now on cb(h, ud) runs once per recorded attempt that exhausted its
 * delivery, disabled its webhook or ended its failing streak (test sends
 * and skipped deliveries never do). cb NULL: none. */
void hg_dispatcher_on_health(hg_dispatcher_t *d, hg_dispatch_health_cb cb, void *ud);

/* A webhook's flow limits changed (store/webhooks.h: deliveries per 1000
 * s and attempts at once, 0 each: none): deliveries it holds back follow
 * the new ones from now on, and those a looser limit lets go are sent.
 * Loop thread; webhook_id is borrowed; never calls back. */
void hg_dispatcher_limits(hg_dispatcher_t *d, const char *webhook_id, int64_t rate_limit_milli,
                          int64_t max_concurrency);

/* Pausing keeps accepting and storing; nothing is sent until resumed. */
void hg_dispatcher_pause(hg_dispatcher_t *d);
void hg_dispatcher_resume(hg_dispatcher_t *d);
int hg_dispatcher_paused(const hg_dispatcher_t *d);

typedef struct hg_dispatcher_stats {
  size_t queued;    /* pending deliveries waiting in memory (held included) */
  size_t held;      /* of which held back by their webhook's rateLimit or maxConcurrency */
  size_t in_flight; /* being loaded, sent or recorded */
  uint64_t attempts, successes, failures;
  uint64_t claims_lost; /* deliveries found held by another node's lease (cluster.h) */
  uint64_t line_waits;  /* loads that found the delivery behind another in its FIFO line */
} hg_dispatcher_stats_t;

void hg_dispatcher_stats(const hg_dispatcher_t *d, hg_dispatcher_stats_t *out);

/* Stops sending; calls done(ud) once nothing is in flight (possibly inside
 * this call). Requests on the wire end when the caller then closes the
 * client: cancelled, not recorded, they stay pending and are sent again
 * after a restart. Then free it. */
void hg_dispatcher_stop(hg_dispatcher_t *d, void (*done)(void *ud), void *ud);

/* Frees the dispatcher; its handles close on the next loop run. Accepts
 * NULL. */
void hg_dispatcher_free(hg_dispatcher_t *d);

/* The tenant sandbox (core/sandbox/pool.h), or NULL while no webhook's
 * transform has run yet. */
struct hg_sandbox;
const struct hg_sandbox *hg_dispatcher_sandbox(const hg_dispatcher_t *d);

#endif
