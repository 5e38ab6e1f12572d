/* dispatcher_internal.h: what the dispatcher's three files share.
 *
 *   dispatcher.c  the queue: the heap of (due, seq), the busy set, loading
 *                 due deliveries in batches, the pump and its timer, the
 *                 public API (new, start, enqueue, send_now, pause, resume,
 *                 stats, stop, free)
 *   deliver.c     one delivery's way out: the Lua transform, sign and
 *                 deliver phases, the tenant sandbox and its code cache, the
 *                 URL rules, signing, headers, the request handed to the
 *                 HTTP client and its response callback
 *   record.c      the outcome: Retry-After, jitter, the retry decision
 *                 (success, retry, failed, 410 deactivation), the records
 *                 written in one store job per loop turn, the attempt's
 *                 log line, the after phase
 *
 * Per-webhook flow control (rateLimit, maxConcurrency) is throttle.c's:
 * the queue asks it before an attempt starts (load_done), and an item
 * holds its webhook's slot (item.flow) until its attempt ends
 * (hg_dispatch__flow_end).
 *
 * An item is one delivery being handled. It is in the busy set from
 * item_new (the pump or send_now) until hg_dispatch__item_free, and goes
 * one way: loaded (a batch store job), then hg_dispatch__send, then
 * hg_dispatch__finish, then recorded (a store job), then freed. Any step
 * may end it early with hg_dispatch__abandon (nothing recorded: the row
 * stays pending in the store).
 *
 * Threads: everything runs on the loop thread, except the work functions of
 * the store jobs (loading, recording, the start), which run on the store
 * thread and touch only the items their job holds. */
#ifndef HG_DISPATCHER_INTERNAL_H
#define HG_DISPATCHER_INTERNAL_H

#include "lua/runtime.h"
#include "net/http_client.h"
#include "pipeline/dispatcher.h"
#include "pipeline/subs.h"
#include "pipeline/throttle.h"
#include "sandbox/pool.h"
#include "store/deliveries.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define BUCKETS 4096 /* of the busy set */

typedef struct entry {
  int64_t due;
  int64_t seq;
} entry_t;

typedef struct item item_t;

struct item {
  hg_dispatcher_t *d;
  item_t *next; /* bucket chain of the busy set */
  int64_t seq;
  int forced;   /* replay or test: send whatever the status */
  /* The slot (and token) of its webhook's limits the attempt holds, or
   * NULL; admitted: taken before loading (a held delivery handed back by
   * the throttle), so load_done does not ask again. */
  hg_flow_t *flow;
  int admitted;
  hg_dispatch_cb test_cb; /* non-NULL: a test send */
  void *test_ud;
  int load_status;
  /* The one ahead of it in its webhook's FIFO line ended while it was
   * being loaded (hg_dispatch__line_next): found waiting, it is loaded
   * again instead of dropped. */
  int recheck;
  /* Its record ended it (not pending) and it was in a line: the line's
   * new head, to queue once the record committed (seq 0: none). */
  int64_t line_next_seq, line_next_due;
  hg_send_t send;
  int64_t started_at;
  /* Outcome. */
  hg_attempt_rec_t rec;
  hg_lua_delivery_t *ld; /* the Lua phases' view, while a stage runs elsewhere (the sandbox) */
  char *resp_body;
  size_t resp_len;
  char error[512];
  int has_error;
  int no_retry; /* a script error: fail now, replay after a fix */
  int skipped;  /* a transform plugin set delivery.skip: nothing is sent */
  int not_sent; /* recorded as not sent (its webhook is inactive): no health, no operational event */
  /* SHA-256 of the core's webhook-signature, kept while a deliver-phase
   * plugin runs: its request shows that header's value in the attempt's
   * record only when it is still the core's (see keep_headers in
   * deliver.c). */
  unsigned char sig_digest[32];
  int has_sig_digest;
  item_t *rec_next; /* in the batch of records waiting to be written; in the dispatcher's spares once freed */
  int rec_status;
  /* The webhook's health, recorded with the attempt (has_health: there is
   * something to record). */
  int has_health;
  hg_health_in_t hin;
  hg_health_out_t hout;
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
  /* The sweep of FIFO lines' heads (hg_line_heads, every LINE_SWEEP_MS):
   * the safety net under hg_dispatch__line_next; line_sweeping while its
   * job runs. */
  uv_timer_t line_timer;
  int line_sweeping;
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
  /* Freed items kept for the next ones (ITEM_SPARES at most): an item is
   * about 2.8 KiB, past glibc's per-thread cache, and one comes and goes
   * per delivery. */
  item_t *spares;
  unsigned n_spares;
  unsigned max_active;
  int paused, stopping, started;
  int store_waiting;     /* the store was found unavailable: no attempt starts (logged once) */
  /* Sharing a PostgreSQL store (hg_dispatcher_set_node): each delivery is
   * claimed for this node before it is loaded. NULL: alone (SQLite). */
  char *node_id;
  int64_t lease_ms;
  hg_throttle_t *throttle; /* per-webhook limits, and the deliveries they hold */
  hg_sandbox_t *sandbox; /* tenants' transforms: started on first use */
  code_cache_t codes[16]; /* see tenant_transform in deliver.c */
  unsigned next_code;
  void (*stop_cb)(void *);
  void *stop_ud;
  hg_dispatcher_stats_t stats;
  hg_dispatch_health_cb health_cb; /* hg_dispatcher_on_health */
  void *health_ud;
};

/* ---- dispatcher.c ---- */

/* Adds (due, seq) to the heap. Loop thread; never calls back. Returns 0 or
 * HG_ENOMEM (the entry is lost until the next start; the row stays
 * pending in the store). Does not pump. */
int hg_dispatch__heap_push(hg_dispatcher_t *d, int64_t due, int64_t seq);

/* Starts loading due entries while there is room, then sets the timer for
 * the next one. Loop thread; does nothing while paused, stopping or not
 * started; never runs a callback. While the store is unavailable
 * (hg_store_available) it loads nothing and looks again in 500 ms. */
void hg_dispatch__pump(hg_dispatcher_t *d);

/* Takes it out of the busy set and frees it with what it owns. Loop
 * thread. The last item to go while stopping runs the stop callback
 * inside this call; d stays valid (it is freed by hg_dispatcher_free). */
void hg_dispatch__item_free(item_t *it);

/* Drops it without recording anything: the row stays pending in the
 * store, and unless stopping or a test send it goes back on the heap, due
 * in ms. A test send's callback runs inside this call. Frees it (see
 * hg_dispatch__item_free). Loop thread. */
void hg_dispatch__abandon_for(item_t *it, uint64_t ms);

/* Gives back the slot of its webhook's limits it->flow holds (if any):
 * its attempt ended, or never starts. When that lets a held delivery go,
 * the pump runs soon (from the timer, never inside this call). Loop
 * thread. */
void hg_dispatch__flow_end(item_t *it);

/* The head of a FIFO line (store/lines.h) is now seq, due at due (0:
 * now), after the one ahead of it ended here: it goes on the heap, or,
 * when it is in hand already (being loaded), is loaded again should the
 * load have found it still waiting. Loop thread; never calls back; does
 * not pump. */
void hg_dispatch__line_next(hg_dispatcher_t *d, int64_t seq, int64_t due);

/* hg_dispatch__abandon_for, due again in a second. */
static inline void hg_dispatch__abandon(item_t *it) { hg_dispatch__abandon_for(it, 1000); }

/* ---- deliver.c ---- */

/* Sends a loaded delivery: the Lua phases (maybe in the sandbox), the
 * signature, the request. Loop thread. Takes over it: every path ends in
 * hg_dispatch__finish or hg_dispatch__abandon, inside this call (a test
 * send may be answered then) or later from a Lua, sandbox or client
 * callback. */
void hg_dispatch__send(item_t *it);

/* Frees the tenant sandbox and the transform code cache (at the
 * dispatcher's end). Loop thread. */
void hg_dispatch__sandbox_free(hg_dispatcher_t *d);

/* ---- record.c ---- */

/* Decides what follows the attempt (status_code 0: no response; res NULL
 * when there is none) and queues its record, written in one store job with
 * the others of this loop turn. Loop thread; may run the retry phase (a
 * pure Lua phase, it does not yield). Takes over it: once the record is
 * written (or could not be queued) the test send is answered and it is
 * freed; when the store refuses the job that happens inside this call. */
void hg_dispatch__finish(item_t *it, int status_code, const hg_client_response_t *res);

#endif
