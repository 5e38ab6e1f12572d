/* recover.h: SQL for bulk recovery (POST /v1/webhooks/{id}/recover):
 * ended deliveries of one webhook in a time window made pending again,
 * and deliveries created for the events it never got (published while it
 * was disabled). Each call does a bounded amount of work, so that the
 * caller (pipeline/recover.c) runs a large window as many small store
 * jobs between the others. Store thread only. */
#ifndef HG_STORE_RECOVER_H
#define HG_STORE_RECOVER_H

#include "base/ids.h"
#include "store/db.h"

#include <stddef.h>
#include <stdint.h>

/* The most a batch may take (the limit of each call below). */
#define HG_RECOVER_BATCH_MAX 1000

/* Which deliveries: those of webhook_id created in [since, until) (Unix
 * ms) whose status is one of statuses (bits 1u << hg_delivery_status_t;
 * pending ones are never touched). */
typedef struct hg_recover_q {
  const char *webhook_id;
  int64_t since, until;
  unsigned statuses;
} hg_recover_q_t;

/* Counts the deliveries q selects, up to cap: *n, and *capped = 1 when
 * there are more. Returns 0 or HG_E*. */
int hg_recover_count(hg_db_t *db, const hg_recover_q_t *q, int64_t cap, int64_t *n, int *capped);

/* Makes up to limit of the deliveries q selects with id above after (""
 * for the first call) pending and due at now, oldest first, with their
 * own ids (PostgreSQL: their leases end, as on a replay). Their seqs go to
 * seqs (limit entries), their number to *n; after becomes the last id
 * taken. *n < limit means the window is done. Returns 0 or HG_E*. */
int hg_recover_requeue(hg_db_t *db, const hg_recover_q_t *q, char after[HG_ID_MAX], size_t limit, int64_t now,
                       int64_t *seqs, size_t *n);

/* Whether an event of type for organization org (NULL: none) goes to the
 * webhook: its subscription, decided by the caller. */
typedef int (*hg_recover_match_fn)(const char *type, const char *org, void *ud);

/* Events the webhook never got: looks at up to limit events with seq
 * above *cursor, in seq order, and for each one created in [q->since,
 * q->until), at or after created_at (the webhook's creation), that match
 * takes and that has no delivery to the webhook, counts it in *found and,
 * when create, adds a pending delivery due at now (its seq to seqs, which
 * holds limit entries; *n of them). *cursor becomes the last seq looked
 * at; *more is 0 once no event is left. Returns 0 or HG_E*. */
int hg_recover_missed(hg_db_t *db, const hg_recover_q_t *q, int64_t created_at, int create, int64_t *cursor,
                      size_t limit, hg_recover_match_fn match, void *ud, int64_t now, int64_t *seqs, size_t *n,
                      int64_t *found, int *more);

#endif
