/* recover.c: SQL for bulk recovery (recover.h). */
#include "store/recover.h"

#include "base/common.h"
#include "store/deliveries.h"
#include "store/lines.h"

#include <stdio.h>
#include <string.h>

/* The status filter as three flags: the same statement serves every
 * combination (one cached plan). */
#define STATUS_FILTER "((d.status = 'failed' AND ?4 <> 0) OR (d.status = 'skipped' AND ?5 <> 0) OR " \
                      "(d.status = 'success' AND ?6 <> 0))"
#define WINDOW "d.webhook_id = ?1 AND d.id > ?2 AND d.id < ?3 AND d.created_at >= ?7 AND d.created_at < ?8"

/* How far past a window's end its deliveries' ids may have been made. */
#define ID_SLACK_MS (3600 * 1000)

/* The id bounds of a window: bound text is borrowed by the statement
 * (db.h), so they live in the caller's frame. */
typedef struct bounds {
  char lo[HG_ID_MAX], hi[HG_ID_MAX];
} bounds_t;

/* Binds q to ?1 … ?8 (?2 is the caller's lower bound of ids, after, when
 * past the window's start). */
static void bind_q(hg_stmt_t *st, const hg_recover_q_t *q, const char *after, bounds_t *b) {
  char *lo = b->lo, *hi = b->hi;
  /* Ids are time-ordered (ids.h): the window is a range of the index
   * deliveries_by_webhook (webhook_id, id); created_at makes it exact. */
  hg_id_at("del_", q->since, lo);
  /* An id is made when the store job runs, created_at when the event was
   * accepted: a delivery accepted just before until may be stored after
   * it (a queued store, the intake log applied at a restart), so the ids
   * go up to an hour past; created_at makes the window exact. */
  hg_id_at("del_", q->until + ID_SLACK_MS, hi);
  hg_db_bind_text(st, 1, q->webhook_id, -1);
  hg_db_bind_text(st, 2, after != NULL && after[0] != '\0' && strcmp(after, lo) > 0 ? after : lo, -1);
  hg_db_bind_text(st, 3, hi, -1);
  hg_db_bind_int64(st, 4, (q->statuses >> HG_DEL_FAILED) & 1);
  hg_db_bind_int64(st, 5, (q->statuses >> HG_DEL_SKIPPED) & 1);
  hg_db_bind_int64(st, 6, (q->statuses >> HG_DEL_SUCCESS) & 1);
  hg_db_bind_int64(st, 7, q->since);
  hg_db_bind_int64(st, 8, q->until);
}

int hg_recover_count(hg_db_t *db, const hg_recover_q_t *q, int64_t cap, int64_t *n, int *capped) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "SELECT count(*) FROM (SELECT 1 FROM deliveries d WHERE " WINDOW " AND " STATUS_FILTER
                         " LIMIT ?9) x",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "count deliveries to recover");
  bounds_t b;
  bind_q(st, q, NULL, &b);
  hg_db_bind_int64(st, 9, cap + 1);
  rc = hg_db_step(st);
  if (rc == HG_DB_ROW) {
    int64_t c = hg_db_column_int64(st, 0);
    *capped = c > cap;
    *n = c > cap ? cap : c;
    rc = 0;
  } else {
    rc = hg_db_fail(db, rc < 0 ? rc : HG_EIO, "count deliveries to recover");
  }
  hg_db_release(st);
  return rc;
}

int hg_recover_requeue(hg_db_t *db, const hg_recover_q_t *q, char after[HG_ID_MAX], size_t limit, int64_t now,
                       int64_t *seqs, size_t *n) {
  *n = 0;
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "SELECT d.seq, d.id FROM deliveries d WHERE " WINDOW " AND " STATUS_FILTER
                         " ORDER BY d.id LIMIT ?9",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "find deliveries to recover");
  bounds_t b;
  bind_q(st, q, after, &b);
  hg_db_bind_int64(st, 9, (int64_t)limit);
  char last[HG_ID_MAX] = "";
  while ((rc = hg_db_step(st)) == HG_DB_ROW && *n < limit) {
    seqs[(*n)++] = hg_db_column_int64(st, 0);
    hg_copy(last, sizeof(last), hg_db_column_text(st, 1));
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "find deliveries to recover");
  if (*n == 0) return 0;
  /* As a replay does (deliveries.c): pending, due now, a lease ended; the
   * status is checked again, so a delivery that changed meanwhile stays as
   * it is. Deferred on PostgreSQL: the batch goes in one round trip. */
  /* An ordered webhook's join the end of its line, oldest first
   * (store/lines.h): *n places taken at once (one may go unused when its
   * delivery changed meanwhile: only the order of the numbers matters). */
  int64_t line = 0;
  rc = hg_line_take(db, q->webhook_id, (int64_t)*n, &line);
  if (rc != 0 && rc != HG_ENOTFOUND) return rc;
  int pg = hg_db_engine(db) == HG_DB_PG;
  rc = hg_db_prepare(db,
                     pg ? "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, updated_at = ?2, "
                          "lease_owner = NULL, lease_until = NULL, line = CAST(?3 AS BIGINT) "
                          "WHERE seq = ?1 AND status <> 'pending'"
                        : "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, updated_at = ?2, "
                          "line = CAST(?3 AS BIGINT) WHERE seq = ?1 AND status <> 'pending'",
                     &st);
  if (rc < 0) return hg_db_fail(db, rc, "recover deliveries");
  for (size_t i = 0; i < *n && rc >= 0; i++) {
    hg_db_bind_int64(st, 1, seqs[i]);
    hg_db_bind_int64(st, 2, now);
    if (line > 0) hg_db_bind_int64(st, 3, line + (int64_t)i);
    else hg_db_bind_null(st, 3);
    rc = hg_db_defer(st);
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "recover deliveries");
  hg_copy(after, HG_ID_MAX, last);
  return 0;
}

int hg_recover_missed(hg_db_t *db, const hg_recover_q_t *q, int64_t created_at, int create, int64_t *cursor,
                      size_t limit, hg_recover_match_fn match, void *ud, int64_t now, int64_t *seqs, size_t *n,
                      int64_t *found, int *more) {
  *n = 0;
  *more = 0;
  int rc;
  if (create && hg_db_engine(db) == HG_DB_PG) {
    /* Two nodes adding the missed deliveries of one webhook at once would
     * both find an event without one: one at a time, the other tries its
     * batch again later (HG_EBUSY). */
    hg_stmt_t *lk = NULL;
    rc = hg_db_prepare(db, "SELECT pg_try_advisory_xact_lock(hashtext('hookgate.recover.' || ?1))", &lk);
    if (rc == 0) {
      hg_db_bind_text(lk, 1, q->webhook_id, -1);
      rc = hg_db_step(lk);
      if (rc == HG_DB_ROW) rc = hg_db_column_int64(lk, 0) ? 0 : HG_EBUSY;
      else if (rc >= 0) rc = HG_EIO;
    }
    hg_db_release(lk);
    if (rc == HG_EBUSY) return rc;
    if (rc < 0) return hg_db_fail(db, rc, "lock missed deliveries");
  }
  hg_stmt_t *st = NULL;
  rc = hg_db_prepare(db,
                     "SELECT e.seq, e.created_at, e.type, e.organization_id, EXISTS (SELECT 1 FROM deliveries d "
                     "WHERE d.event_seq = e.seq AND d.webhook_id = ?2) FROM events e WHERE e.seq > ?1 "
                     "ORDER BY e.seq LIMIT ?3",
                     &st);
  if (rc < 0) return hg_db_fail(db, rc, "find missed events");
  hg_db_bind_int64(st, 1, *cursor);
  hg_db_bind_text(st, 2, q->webhook_id, -1);
  hg_db_bind_int64(st, 3, (int64_t)limit);
  /* The matches are read first, then added: a statement's rows are not
   * read while another statement writes on the same connection. */
  int64_t want[HG_RECOVER_BATCH_MAX];
  size_t nwant = 0, seen = 0;
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    seen++;
    *cursor = hg_db_column_int64(st, 0);
    int64_t t = hg_db_column_int64(st, 1);
    if (t < q->since || t >= q->until || t < created_at || hg_db_column_int64(st, 4) != 0) continue;
    const char *org = hg_db_column_is_null(st, 3) ? NULL : hg_db_column_text(st, 3);
    if (!match(hg_db_column_text(st, 2), org, ud)) continue;
    (*found)++;
    if (create && nwant < HG_RECOVER_BATCH_MAX && nwant < limit) want[nwant++] = *cursor;
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "find missed events");
  *more = seen == limit;
  for (size_t i = 0; i < nwant; i++) {
    char id[HG_ID_MAX];
    if ((rc = hg_deliveries_insert_one(db, q->webhook_id, want[i], 1, now, id, &seqs[*n])) != 0) return rc;
    (*n)++;
  }
  return 0;
}
