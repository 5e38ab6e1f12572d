/* ingest.h: makes published events durable.
 *
 * Events go to the store (its group commit makes one fsync cheap for many
 * events), and a single event that depends on nothing the store holds (no
 * Idempotency-Key, no id of its own) goes to the intake log (store/intake.h)
 * at the same time: it is reported durable as soon as either has it, which is
 * normally the log. Such an event's store job is retried until it succeeds,
 * the row is refused for good, or the gateway stops (the log then keeps the
 * event for the next start); meanwhile no log space at or past its record is
 * released, and new events take the store's path only. Stored events' new
 * deliveries go to the dispatcher's queue.
 *
 * Everything here runs on the loop thread but the store jobs. */
#ifndef HG_INGEST_H
#define HG_INGEST_H

#include "store/events.h"
#include "store/intake.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hg_ingest hg_ingest_t;
struct hg_dispatcher;
struct hg_subs;

typedef struct hg_ingest_opts {
  uv_loop_t *loop;
  hg_store_t *store;                /* borrowed; closed only after hg_ingest_close */
  const char *intake_dir;           /* the intake log's directory; NULL: no log */
  int store_nice;                   /* the store thread's nice value while the log answers (0: unchanged) */
  int64_t first_delay_ms;           /* an event's deliveries are first due this long after it */
  struct hg_subs *subs;             /* borrowed: counts the active webhooks a route plugin named */
  struct hg_dispatcher *dispatcher; /* borrowed until hg_ingest_close: gets new deliveries; may be NULL */
} hg_ingest_opts_t;

/* What an hg_ingest_submit came to. */
typedef struct hg_ingest_result {
  /* 0: every event is durable. HG_EEXIST, from the store alone (not
   * from_log): an event's id is another organization's (its conflict is
   * set) and nothing is stored. Any other HG_E* code: nothing is durable
   * (HG_ENOSPC: storage is full; HG_EUNAVAIL: the store's server is
   * unreachable). */
  int status;
  int from_log;                /* the event went to the intake log as well as to the store */
  const hg_event_in_t *events; /* the n events submitted; see hg_ingest_done_fn */
  size_t n;
  int deliveries; /* status 0: events[0]'s new deliveries */
  int replayed;   /* status 0: an event repeats an earlier one (and now has its id) */
} hg_ingest_result_t;

/* Runs exactly once per hg_ingest_submit that returned 0, later, on the
 * loop thread, never inside hg_ingest_submit. res and the events in it are
 * valid only during the callback. With from_log the store may still be
 * working on the event: read nothing of it but its inputs (its id). */
typedef void (*hg_ingest_done_fn)(const hg_ingest_result_t *res, void *ud);

/* hg_ingest_submit's flags. */
enum {
  HG_INGEST_BATCH = 1,  /* the events came as a batch: all of them go to the store, none to the log */
  HG_INGEST_ROUTED = 2, /* a route plugin chose the targets: they may name inactive or unknown webhooks */
};

/* Creates the ingest and opens the intake log in opts->intake_dir, if any
 * (whatever it held must have been applied to the store: hg_events_recover).
 * Returns 0, or a negative HG_E* code with *out NULL and err saying why.
 * The loop may have to run once afterwards to release the log's handles. */
int hg_ingest_new(hg_ingest_t **out, const hg_ingest_opts_t *opts, char *err, size_t errlen);

/* Makes n events durable (all or none), then calls done(res, ud). Each
 * event's payload and idem_key (malloc'd) and its targets (a reference) are
 * taken over on success: the ingest frees them, possibly after done
 * (hg_ingest_event_done). events itself is copied and stays the caller's.
 * The events' now and first_delay_ms are set here. Returns 0, or a
 * negative HG_E* code (the store refused the job) with nothing taken and
 * done never called. */
int hg_ingest_submit(hg_ingest_t *ing, hg_event_in_t *events, size_t n, unsigned flags, hg_ingest_done_fn done,
                     void *ud);

/* Frees what an event handed to hg_ingest_submit points to (payload,
 * idem_key, targets, and what the store added), not ev itself: for the
 * caller's events that were never submitted. */
void hg_ingest_event_done(hg_event_in_t *ev);

/* Nodes sharing a PostgreSQL store: the deliveries of events submitted
 * from now on are born leased to node_id (copied) for lease_ms, so that
 * this node's dispatcher sends them without claiming them first
 * (store/nodes.h). */
void hg_ingest_set_node(hg_ingest_t *ing, const char *node_id, int64_t lease_ms);

/* The intake log's counters: 0, or HG_ENOTFOUND when there is no log
 * (none configured, or closed). */
int hg_ingest_intake_stats(hg_ingest_t *ing, hg_intake_stats_t *out);

/* The gateway is stopping: a store job that fails from now on is not
 * retried (the log keeps its event for the next start). */
void hg_ingest_drain(hg_ingest_t *ing);

/* Gives up the store jobs waiting to be retried (the log keeps their
 * events for the next start), closes the intake log and forgets the
 * dispatcher; the ingest is freed once the store has completed every job
 * it still has. Call before closing the store; the loop must then run
 * until the store's completions are done. Accepts NULL. */
void hg_ingest_close(hg_ingest_t *ing);

/* A measuring build's switch (bench/experiments/bounds.c sets it; 0 in the
 * product): an event sent to the log is answered from the log's sync
 * only, never from the store's, which such a build may skip or roll back. */
extern int hg_ingest__log_answers_only;

/* 1 while an event answered from the intake log has failed to reach the
 * store and is being retried (or is kept for the next start), else 0: the
 * retention purge marks no time for the log then (store/purge.h). Accepts
 * NULL (0). Loop thread. */
int hg_ingest_log_holds(const hg_ingest_t *ing);

#endif
