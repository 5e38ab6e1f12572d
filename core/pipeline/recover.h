/* recover.h: bulk recovery of one webhook's deliveries in a time window
 * (POST /v1/webhooks/{id}/recover): ended ones made pending again, oldest
 * first, with their own ids, and optionally deliveries made for the events
 * it never got (published while it was disabled). A recovery runs in the
 * background as bounded store jobs (store/recover.h), one after another,
 * so that ingest's jobs keep running between them; it holds back while
 * the delivery queue is long. Its progress is kept in memory, on the node
 * that runs it, for the last RECOVER_KEEP recoveries; a restart ends the
 * running ones (what they requeued stays requeued). Loop thread only. */
#ifndef HG_RECOVER_H
#define HG_RECOVER_H

#include "base/ids.h"
#include "store/store.h"

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

typedef struct hg_recover hg_recover_t;
typedef struct hg_recovery hg_recovery_t;
struct hg_dispatcher;

/* What to recover. */
typedef struct hg_recover_req {
  char webhook_id[HG_ID_MAX];
  const char *org;       /* the caller's organization, or NULL (any): a webhook outside it is not found */
  int64_t since, until;  /* Unix ms: deliveries (and events) created in [since, until) */
  unsigned statuses;     /* bits 1u << hg_delivery_status_t: failed, skipped, success */
  int missed;            /* also the events the webhook never got */
  int dry_run;           /* count only; nothing changes */
} hg_recover_req_t;

/* Runs once per hg_recover_start that returned 0, later, on the loop: status
 * 0 with rec (the recovery, owned by the registry; valid during the call,
 * then through hg_recover_find), HG_ENOTFOUND for a webhook unknown to the
 * caller's organization, or another HG_E* (rec NULL). */
typedef void (*hg_recover_started_fn)(int status, const hg_recovery_t *rec, void *ud);

/* dispatcher gets the recovered deliveries; both are borrowed until
 * hg_recover_close. rate: deliveries a recovery requeues per second at
 * most (delivery.recover_rate), 0 for no pacing. kept_ms: how long
 * deliveries are kept (retention.deliveries, 0: forever): older events are
 * never taken for missed ones (their deliveries may have been purged). */
int hg_recover_new(hg_recover_t **out, uv_loop_t *loop, hg_store_t *store, struct hg_dispatcher *dispatcher,
                   double rate, int64_t kept_ms);

/* Starts a recovery: cb runs once it has started (or could not). Returns
 * 0; HG_EEXIST when a recovery (not a dry run) of that webhook over an
 * overlapping window is running on this node, *conflict set to it;
 * HG_EBUSY when 8 recoveries run on this node already; or another HG_E*.
 * cb never runs unless 0 was returned. */
int hg_recover_start(hg_recover_t *r, const hg_recover_req_t *req, hg_recover_started_fn cb, void *ud,
                     const hg_recovery_t **conflict);

/* The recovery with id, or NULL. Valid until control returns to the loop. */
const hg_recovery_t *hg_recover_find(const hg_recover_t *r, const char *id);

/* Its webhook, and its organization (NULL: none). */
const char *hg_recovery_webhook(const hg_recovery_t *rec);
const char *hg_recovery_org(const hg_recovery_t *rec);
/* Whether it has ended (done, failed or stopped). */
int hg_recovery_ended(const hg_recovery_t *rec);

/* The API's view of it (a new reference). */
json_t *hg_recovery_json(const hg_recovery_t *rec);

/* Stops every running recovery (at its next batch) and forgets the
 * dispatcher; the registry is freed once the store has completed its last
 * job. Call before closing the store and freeing the dispatcher. Accepts
 * NULL. */
void hg_recover_close(hg_recover_t *r);

#endif
