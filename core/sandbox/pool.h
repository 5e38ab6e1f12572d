/* pool.h: the gateway's side of the tenant sandbox — a pool of worker
 * processes (core/sandbox/worker.c) that run webhooks' transform code,
 * each job under a deadline the loop enforces.
 *
 * The loop never waits on tenant code: jobs are written to a worker's
 * socket (up to 256 in flight, all of one organization: a worker serves one
 * organization at a time) and their answers read when they come, many per
 * loop turn. The first job a worker holds must be answered within the
 * budget plus a grace, timed from the answer before it; past that the
 * worker is killed (SIGKILL) and replaced, that job fails as a script
 * error and the worker's other jobs go back to the queue. An organization
 * holds at most half the workers (at least one), so a tenant whose code
 * always runs to its budget slows its own deliveries, not everyone's.
 *
 * Callbacks never run inside the call that registered them. */
#ifndef HG_SANDBOX_POOL_H
#define HG_SANDBOX_POOL_H

#include "lua/runtime.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hg_sandbox hg_sandbox_t;

typedef struct hg_sandbox_opts {
  uv_loop_t *loop;
  unsigned workers;     /* processes (>= 1) */
  unsigned states;      /* Lua states each worker keeps (one per webhook) */
  uint64_t budget_ms;   /* CPU budget of one run */
  uint64_t grace_ms;    /* past budget + grace, the worker is killed */
  size_t memory;        /* bytes one webhook's state may hold */
  size_t max_queue;     /* jobs waiting for a worker, at most */
  size_t max_per_org;   /* jobs one organization may have in the pool (queued or running) */
} hg_sandbox_opts_t;

/* Starts the workers. 0, or a negative code with err set. */
int hg_sandbox_new(hg_sandbox_t **out, const hg_sandbox_opts_t *opts, char *err, size_t errlen);

/* Kills the workers and frees the pool once their handles closed. Jobs
 * still queued or running are dropped without their callbacks: the owner
 * frees the pool only when it has none (the dispatcher waits for its
 * deliveries first). */
void hg_sandbox_free(hg_sandbox_t *sb);

/* For a stopping gateway: every queued job and every job a worker holds
 * ends now with HG_ECLOSED (their callbacks run from this call; the
 * workers holding jobs are killed), and new ones are refused (HG_ESTATE).
 * The pool itself stays until hg_sandbox_free. */
void hg_sandbox_cancel(hg_sandbox_t *sb);

/* Completion of a transform: status 0 (d holds the result: url, body,
 * headers, skip, replaced as hg_lua_call_delivery would), HG_EINVAL (the
 * script failed, stopped at its budget or its worker died: err says how,
 * as "transform:LINE: message"), HG_EBUSY (no worker can start: try
 * later), HG_ECLOSED (hg_sandbox_cancel) or HG_ENOMEM. */
typedef void (*hg_sandbox_done_fn)(int status, hg_lua_delivery_t *d, const char *err, void *ud);

/* Runs code (a webhook's transform) over d in a worker. key names the
 * webhook (its Lua state), org its organization (fairness; may be NULL or
 * ""). d stays the caller's and must live until done, which runs later,
 * never inside this call. Returns 0, or without calling done: HG_EBUSY
 * (the queue is full, org has max_per_org jobs in already, or no worker
 * can start; *retry_ms, when retry_ms is not NULL, then says when to try
 * again: how long org's jobs in the pool take to run, from how long its
 * last ones took, 5 ms to 5 s), HG_ESTATE (cancelled or closing) or
 * HG_ENOMEM. */
int hg_sandbox_transform(hg_sandbox_t *sb, const char *key, const char *org, const char *code,
                         hg_lua_delivery_t *d, hg_sandbox_done_fn done, void *ud, uint64_t *retry_ms);

typedef struct hg_sandbox_stats {
  uint64_t jobs_ok, jobs_failed;   /* answered by a worker */
  uint64_t budget_stops;           /* runs a worker stopped at the budget itself */
  uint64_t watchdog_kills;         /* workers killed at budget + grace */
  uint64_t worker_exits;           /* workers that died on their own */
  uint64_t spawns;                 /* workers started, first ones included */
  uint64_t spawn_ns;               /* time the loop spent starting them */
  size_t queued, running, workers; /* now */
} hg_sandbox_stats_t;

void hg_sandbox_stats(const hg_sandbox_t *sb, hg_sandbox_stats_t *out);

#endif
