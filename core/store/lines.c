/* lines.c: a webhook's FIFO line (lines.h). */
#include "store/lines.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/ids.h"

#include <stddef.h>
#include <stdlib.h>

/* Prepares sql, binds wh as ?1 and steps it once. */
static int step_wh(hg_db_t *db, const char *sql, const char *wh, hg_stmt_t **st, const char *op) {
  int rc = hg_db_prepare(db, sql, st);
  if (rc < 0) return hg_db_fail(db, rc, op);
  hg_db_bind_text(*st, 1, wh, -1);
  return hg_db_step(*st);
}

int hg_line_take(hg_db_t *db, const char *wh, int64_t n, int64_t *first) {
  *first = 0;
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "UPDATE webhook_lines SET next = next + ?2 WHERE webhook_id = ?1 RETURNING next", &st);
  if (rc < 0) return hg_db_fail(db, rc, "take line numbers");
  hg_db_bind_text(st, 1, wh, -1);
  hg_db_bind_int64(st, 2, n);
  rc = hg_db_step(st);
  int r = 0;
  if (rc == HG_DB_ROW) {
    *first = hg_db_column_int64(st, 0) - n + 1;
    /* SQLite writes the row once the statement has run to its end. */
    if ((rc = hg_db_step(st)) < 0) r = hg_db_fail(db, rc, "take line numbers");
  } else {
    r = rc == HG_DB_DONE ? HG_ENOTFOUND : hg_db_fail(db, rc, "take line numbers");
  }
  hg_db_release(st);
  if (r != 0) *first = 0;
  return r;
}

static int line_on(hg_db_t *db, const char *wh) {
  /* Ordered already: nothing to do (and no look for the highest seq, which
   * reads the webhook's deliveries). */
  hg_stmt_t *st = NULL;
  int rc = step_wh(db, "SELECT 1 FROM webhook_lines WHERE webhook_id = ?1", wh, &st, "order webhook");
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "order webhook");
  if (rc == HG_DB_ROW) return 0;
  /* Numbered by seq, the order they were created in; the counter goes on
   * past the highest. Nothing when another session made the row meanwhile
   * (nothing returned). */
  rc = step_wh(db,
               "INSERT INTO webhook_lines (webhook_id, next) SELECT ?1, COALESCE(MAX(seq), 0) FROM deliveries "
               "WHERE webhook_id = ?1 AND status = 'pending' ON CONFLICT DO NOTHING RETURNING next",
               wh, &st, "order webhook");
  int added = rc == HG_DB_ROW;
  if (added) rc = hg_db_step(st);
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "order webhook");
  if (!added) return 0;
  rc = step_wh(db, "UPDATE deliveries SET line = seq WHERE webhook_id = ?1 AND status = 'pending'", wh, &st,
               "order webhook");
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "order webhook") : 0;
}

static int line_off(hg_db_t *db, const char *wh, int (*released)(int64_t, int64_t, void *), void *ud) {
  hg_stmt_t *st = NULL;
  int rc = step_wh(db, "DELETE FROM webhook_lines WHERE webhook_id = ?1 RETURNING next", wh, &st, "unorder webhook");
  int removed = rc == HG_DB_ROW;
  if (removed) rc = hg_db_step(st);
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "unorder webhook");
  if (!removed) return 0;
  if (released != NULL) {
    rc = step_wh(db,
                 "SELECT seq, COALESCE(next_attempt_at, 0) FROM deliveries WHERE webhook_id = ?1 AND "
                 "line IS NOT NULL AND status = 'pending'",
                 wh, &st, "unorder webhook");
    int r = 0;
    for (; rc == HG_DB_ROW && r == 0; rc = hg_db_step(st))
      r = released(hg_db_column_int64(st, 0), hg_db_column_int64(st, 1), ud);
    hg_db_release(st);
    if (r != 0) return r;
    if (rc < 0) return hg_db_fail(db, rc, "unorder webhook");
  }
  rc = step_wh(db, "UPDATE deliveries SET line = NULL WHERE webhook_id = ?1 AND line IS NOT NULL AND status = 'pending'",
               wh, &st, "unorder webhook");
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "unorder webhook") : 0;
}

int hg_line_set(hg_db_t *db, const char *wh, int on, int (*released)(int64_t seq, int64_t due, void *ud), void *ud) {
  return on ? line_on(db, wh) : line_off(db, wh, released, ud);
}

int hg_line_head(hg_db_t *db, const char *wh, int64_t *seq, int64_t *due) {
  *seq = *due = 0;
  hg_stmt_t *st = NULL;
  int rc = step_wh(db,
                   "SELECT seq, COALESCE(next_attempt_at, 0) FROM deliveries WHERE webhook_id = ?1 AND "
                   "line IS NOT NULL AND status = 'pending' ORDER BY line LIMIT 1",
                   wh, &st, "find line head");
  int r = 0;
  if (rc == HG_DB_ROW) {
    *seq = hg_db_column_int64(st, 0);
    *due = hg_db_column_int64(st, 1);
  } else {
    r = rc == HG_DB_DONE ? HG_ENOTFOUND : hg_db_fail(db, rc, "find line head");
  }
  hg_db_release(st);
  return r;
}

/* PostgreSQL, in one statement: LATERAL with LIMIT 1 makes it one probe
 * of the partial index per ordered webhook (a plain join of the heads was
 * planned as a hash join over every deliveries row). */
static int heads_pg(hg_db_t *db, int64_t now, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "SELECT h.seq, COALESCE(h.next_attempt_at, 0) FROM webhook_lines l CROSS JOIN LATERAL "
                         "(SELECT d.seq, d.next_attempt_at, d.lease_until FROM deliveries d WHERE "
                         "d.webhook_id = l.webhook_id AND d.line IS NOT NULL AND d.status = 'pending' "
                         "ORDER BY d.line LIMIT 1) h WHERE COALESCE(h.next_attempt_at, 0) <= ?1 AND "
                         "(h.lease_until IS NULL OR h.lease_until < ?1)",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "find line heads");
  hg_db_bind_int64(st, 1, now);
  int r = 0;
  while (r == 0 && (rc = hg_db_step(st)) == HG_DB_ROW) r = cb(hg_db_column_int64(st, 0), hg_db_column_int64(st, 1), ud);
  hg_db_release(st);
  if (r != 0) return r;
  return rc < 0 ? hg_db_fail(db, rc, "find line heads") : 0;
}

int hg_line_heads(hg_db_t *db, int64_t now, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud) {
  if (hg_db_engine(db) == HG_DB_PG) return heads_pg(db, now, cb, ud);
  /* SQLite (no LATERAL): the ordered webhooks first (usually none, or a
   * few), then each one's head along the partial index, on the store's own
   * file: no round trips. */
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "SELECT webhook_id FROM webhook_lines", &st);
  if (rc < 0) return hg_db_fail(db, rc, "find line heads");
  char(*ids)[HG_ID_MAX] = NULL;
  size_t n = 0, cap = 0;
  int r = 0;
  while (r == 0 && (rc = hg_db_step(st)) == HG_DB_ROW) {
    if (n == cap && hg_grow(&ids, &cap, n + 1, sizeof(*ids), 16) != 0) r = HG_ENOMEM;
    else hg_copy(ids[n++], HG_ID_MAX, hg_db_column_text(st, 0));
  }
  hg_db_release(st);
  if (r == 0 && rc < 0) r = hg_db_fail(db, rc, "find line heads");
  for (size_t i = 0; i < n && r == 0; i++) {
    int64_t seq, due;
    r = hg_line_head(db, ids[i], &seq, &due);
    if (r == 0 && due <= now) r = cb(seq, due, ud);
    else if (r == HG_ENOTFOUND) r = 0;
  }
  free(ids);
  return r;
}
