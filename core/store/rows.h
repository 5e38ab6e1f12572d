/* rows.h: many rows in one statement, on PostgreSQL (store thread).
 *
 * PostgreSQL's own work per statement (its portal, executor start and end,
 * locks) costs about what three small rows do, so the store sends the rows
 * of many events, or of many attempts' records, as multi-row statements.
 * Each kind of statement below has one text per chunk size (1, 2, 4 ...
 * HG_ROWS_MAX rows), made once for the process, so that each is prepared
 * once per connection (db_pg.c caches statements by their text's address);
 * n rows go in chunks of the largest sizes that fit (n = 25: 16 + 8 + 1). */
#ifndef HG_ROWS_H
#define HG_ROWS_H

#include "store/db.h"

#include <stddef.h>

#define HG_ROWS_MAX 64

typedef enum {
  /* events (seq, id, type, organization_id, payload, created_at,
   * deliveries) */
  HG_ROWS_EVENTS,
  /* deliveries (seq, id, webhook_id, event_seq, created_at = updated_at,
   * next_attempt_at, lease_owner, lease_until), pending; a row whose
   * webhook is not active (or gone) is left out. */
  HG_ROWS_DELIVERIES,
  /* attempts (id, delivery_seq, attempt, started_at, duration_ms,
   * status_code, response_body, error, request_headers); a row whose
   * delivery is gone (purged, its webhook deleted) is left out. */
  HG_ROWS_ATTEMPTS,
  /* deliveries updated after an attempt, by seq: (seq, status, attempts,
   * status_code, next_attempt_at, updated_at), the lease ended. */
  HG_ROWS_DELIVERY_UPDATES,
  HG_ROWS_KINDS
} hg_rows_kind_t;

/* Binds row i of the caller's rows to parameters first, first + 1, ...
 * (one per column, in the order above) of st. */
typedef void (*hg_rows_bind_fn)(hg_stmt_t *st, int first, size_t i, void *ud);

/* Sends n rows of kind, deferred (db.h: a failure shows at a later step),
 * in as few statements as the chunk sizes allow. Returns 0, or HG_E*
 * (logged with op) when a statement could not be prepared or sent, or
 * HG_ENOMEM when the texts could not be made. PostgreSQL only. */
int hg_rows_send(hg_db_t *db, hg_rows_kind_t kind, size_t n, hg_rows_bind_fn bind, void *ud, const char *op);

#endif
