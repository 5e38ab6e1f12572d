/* throttle.h: per-webhook flow control for the dispatcher: a webhook's
 * rateLimit (a token bucket) and maxConcurrency (attempts open at once).
 *
 * The dispatcher learns a delivery's webhook, and that webhook's limits,
 * when it loads the delivery. It then asks hg_throttle_admit: either the
 * attempt may start now (it takes a slot, and a token), or the delivery is
 * held: the throttle keeps its row number (8 bytes, nothing loaded) in a
 * queue of that webhook's, first in first out, and hands it back through
 * hg_throttle_next once the webhook has a free slot and a token; its slot
 * and token are then taken for it already. Nothing here touches the store:
 * a held delivery stays pending there, as it was.
 *
 * A webhook's state (a "flow") exists while it has attempts open, held
 * deliveries, or a bucket that has not refilled yet; a webhook without
 * limits and without a flow costs nothing. Flows idle with a full bucket
 * are dropped by a sweep every few seconds, so the table stays as small as
 * the set of webhooks recently sent to under a limit.
 *
 * Loop thread only. Nothing here calls back: the dispatcher polls
 * hg_throttle_next (from its pump) and hg_throttle_due (for its timer). */
#ifndef HG_THROTTLE_H
#define HG_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct hg_throttle hg_throttle_t;
typedef struct hg_flow hg_flow_t;

/* A webhook's limits as stored: rate_milli deliveries per 1000 s (0: no
 * rate limit), max_concurrency attempts open at once (0: no limit). */
typedef struct hg_flow_limits {
  int64_t rate_milli;
  int64_t max_concurrency;
} hg_flow_limits_t;

/* The bounds the API accepts (docs/api.md): rateLimit from 0.01 to 10000
 * per second, kept to the thousandth; maxConcurrency from 1 to 1000. */
#define HG_RATE_LIMIT_MIN_MILLI 10
#define HG_RATE_LIMIT_MAX_MILLI 10000000
#define HG_MAX_CONCURRENCY_MAX 1000

typedef enum {
  HG_THROTTLE_GO = 0,          /* start the attempt now */
  HG_THROTTLE_RATE = 1,        /* held: out of tokens */
  HG_THROTTLE_CONCURRENCY = 2, /* held: maxConcurrency attempts open */
  HG_THROTTLE_HELD = 3         /* held already (a second copy of its row number): drop this one */
} hg_throttle_verdict_t;

/* Creates an empty throttle, or NULL when out of memory. */
hg_throttle_t *hg_throttle_new(void);

/* Frees it, its flows and every held row number (their rows stay pending
 * in the store and are read again at the next start). Accepts NULL. Any
 * hg_flow_t the caller still holds dies with it. */
void hg_throttle_free(hg_throttle_t *t);

/* Decides for delivery seq of webhook webhook_id (borrowed) with limits
 * lim, at now (Unix ms). HG_THROTTLE_GO: *flow is the flow whose slot the
 * attempt took (NULL when the webhook has no limit and no flow: nothing to
 * give back); the caller gives it back with hg_throttle_end when the
 * attempt ends. Any held verdict: seq is kept here (or was already) and
 * the caller drops its copy without queueing it anywhere. Returns a
 * negative HG_E* code when out of memory (nothing kept; *flow NULL). */
int hg_throttle_admit(hg_throttle_t *t, const char *webhook_id, const hg_flow_limits_t *lim, int64_t seq, int64_t now,
                      hg_flow_t **flow);

/* Tells the throttle webhook_id's limits changed (a PATCH; a load that
 * read them): a flow it has takes them at once, and held deliveries a
 * looser limit lets go become due. Does nothing for a webhook without a
 * flow (its next delivery brings the limits). */
void hg_throttle_limits(hg_throttle_t *t, const char *webhook_id, const hg_flow_limits_t *lim);

/* Hands out one held delivery that may start at now: returns 1 with *seq
 * and *flow set (its slot and token are taken: give them back with
 * hg_throttle_end), or 0 when none may. Webhooks take turns. */
int hg_throttle_next(hg_throttle_t *t, int64_t now, int64_t *seq, hg_flow_t **flow);

/* When hg_throttle_next may next hand something out (Unix ms): now or
 * earlier when a slot was given back since, the time the next token is due
 * for a webhook that waits on its rate only, INT64_MAX when nothing held
 * can go before a slot is given back. */
int64_t hg_throttle_due(const hg_throttle_t *t);

/* Gives back the slot an attempt took (flow may be NULL: nothing to do).
 * Returns 1 when a held delivery of that webhook may now go (call the
 * pump), 0 otherwise. */
int hg_throttle_end(hg_throttle_t *t, hg_flow_t *flow);

/* 1 when seq is held here. */
int hg_throttle_holds(const hg_throttle_t *t, int64_t seq);

/* Deliveries held now, all webhooks together. */
size_t hg_throttle_held(const hg_throttle_t *t);

#endif
