/* deliveries.c: SQL for deliveries and their attempts. */
#include "store/deliveries.h"

#include "base/common.h"
#include "store/lines.h"
#include "store/rows.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {"pending", "success", "failed", "skipped"};

const char *hg_delivery_status_name(hg_delivery_status_t s) {
  return (unsigned)s < HG_ARRAY_LEN(status_names) ? status_names[s] : "unknown";
}

int hg_delivery_status_parse(const char *s, hg_delivery_status_t *out) {
  for (size_t i = 0; i < HG_ARRAY_LEN(status_names); i++) {
    if (strcmp(s, status_names[i]) == 0) {
      *out = (hg_delivery_status_t)i;
      return 0;
    }
  }
  return HG_EINVAL;
}

static hg_delivery_status_t status_of(const char *s) {
  hg_delivery_status_t st = HG_DEL_FAILED;
  if (s) hg_delivery_status_parse(s, &st);
  return st;
}

void hg_send_close(hg_send_t *s) {
  if (s == NULL) return;
  free(s->url);
  free(s->payload);
  free(s->lua);
  free(s->request_headers);
  s->url = s->payload = s->lua = s->request_headers = NULL;
  memset(s->secrets, 0, sizeof(s->secrets));
}

static void bind_opt(hg_stmt_t *st, int i, const char *s) {
  if (s) hg_db_bind_text(st, i, s, -1);
  else hg_db_bind_null(st, i);
}

/* Runs a statement without results, logging a failure as op. */
static int run(hg_db_t *db, hg_stmt_t *st, const char *op) {
  int rc = hg_db_step(st);
  return rc < 0 ? hg_db_fail(db, rc, op) : 0;
}

/* What a load reads, in two parts: the delivery with its event, then its
 * webhook (with the webhook's streak). PostgreSQL reads both in one
 * statement (a round trip each would cost more); SQLite reads the webhook
 * only when it differs from the last delivery's of the same transaction
 * (the usual batch holds many deliveries of one webhook). */
#define LOAD_OWN_COLUMNS                                                                                     \
  "d.id, d.webhook_id, e.id, d.status, d.attempts, d.next_attempt_at, e.payload, d.created_at, e.type, " \
  "d.line, CASE WHEN " HG_LINE_WAITING("d") " THEN 1 ELSE 0 END "
#define LOAD_OWN_N 11
#define LOAD_OWN_FROM "FROM deliveries d JOIN events e ON e.seq = d.event_seq "
#define LOAD_HOOK_COLUMNS                                                                                \
  "w.active, w.url, w.lua, w.organization_id, w.disable_after_exhausted, w.disable_after_failing_ms, " \
  "h.consecutive_exhausted, w.rate_limit_milli, w.max_concurrency "
#define LOAD_HOOK_N 9
#define LOAD_HOOK_JOINS "JOIN webhooks w ON w.id = d.webhook_id " \
                        "LEFT JOIN webhook_health h ON h.webhook_id = d.webhook_id "
#define LOAD_COLUMNS LOAD_OWN_COLUMNS ", " LOAD_HOOK_COLUMNS
/* PostgreSQL's rows also carry their lease (nodes.h). */
#define LOAD_LEASE ", d.lease_owner, d.lease_until "

int hg_send_leased(const hg_send_t *s, const char *node_id, int64_t until) {
  return s->lease_until >= until && strcmp(s->lease_owner, node_id) == 0;
}

/* LOAD_OWN_COLUMNS, from column off on. */
static int fill_own(hg_stmt_t *st, int off, int64_t seq, hg_send_t *out) {
  out->seq = seq;
  hg_copy(out->id, sizeof(out->id), hg_db_column_text(st, off + 0));
  hg_copy(out->webhook_id, sizeof(out->webhook_id), hg_db_column_text(st, off + 1));
  hg_copy(out->event_id, sizeof(out->event_id), hg_db_column_text(st, off + 2));
  out->status = status_of(hg_db_column_text(st, off + 3));
  out->attempts = (int)hg_db_column_int64(st, off + 4);
  out->next_attempt_at = hg_db_column_int64(st, off + 5);
  out->created_at = hg_db_column_int64(st, off + 7);
  hg_copy(out->event_type, sizeof(out->event_type), hg_db_column_text(st, off + 8));
  out->line = hg_db_column_int64_or(st, off + 9, 0);
  out->waiting = (int)hg_db_column_int64(st, off + 10);
  out->payload_len = hg_db_column_bytes(st, off + 6);
  out->payload = malloc(out->payload_len + 1);
  if (out->payload == NULL) return HG_ENOMEM;
  if (out->payload_len > 0) memcpy(out->payload, hg_db_column_blob(st, off + 6), out->payload_len);
  out->payload[out->payload_len] = '\0';
  return 0;
}

/* LOAD_HOOK_COLUMNS, from column off on. */
static int fill_hook(hg_stmt_t *st, int off, hg_send_t *out) {
  out->webhook_active = (int)hg_db_column_int64(st, off + 0);
  int has_lua = !hg_db_column_is_null(st, off + 2);
  if (has_lua) out->lua = strdup(hg_db_column_text(st, off + 2));
  if (!hg_db_column_is_null(st, off + 3)) hg_copy(out->org, sizeof(out->org), hg_db_column_text(st, off + 3));
  out->disable_after_exhausted = hg_db_column_int64_or(st, off + 4, -1);
  out->disable_after_failing_ms = hg_db_column_int64_or(st, off + 5, -1);
  out->health_exhausted = hg_db_column_int64_or(st, off + 6, 0);
  out->rate_limit_milli = hg_db_column_int64_or(st, off + 7, 0);
  out->max_concurrency = hg_db_column_int64_or(st, off + 8, 0);
  out->url = strdup(hg_db_column_text(st, off + 1));
  return out->url == NULL || (has_lua && out->lua == NULL) ? HG_ENOMEM : 0;
}

/* The webhook's part of from, a delivery of the same webhook read earlier
 * in the same transaction. */
static int copy_hook(const hg_send_t *from, hg_send_t *out) {
  out->webhook_active = from->webhook_active;
  memcpy(out->org, from->org, sizeof(out->org));
  out->disable_after_exhausted = from->disable_after_exhausted;
  out->disable_after_failing_ms = from->disable_after_failing_ms;
  out->health_exhausted = from->health_exhausted;
  out->rate_limit_milli = from->rate_limit_milli;
  out->max_concurrency = from->max_concurrency;
  out->url = strdup(from->url);
  if (from->lua != NULL) out->lua = strdup(from->lua);
  return out->url == NULL || (from->lua != NULL && out->lua == NULL) ? HG_ENOMEM : 0;
}

/* A joined row (PostgreSQL): LOAD_COLUMNS LOAD_LEASE, from column off on. */
static int fill_send(hg_stmt_t *st, int off, int64_t seq, hg_send_t *out) {
  int r = fill_own(st, off, seq, out);
  if (r == 0) r = fill_hook(st, off + LOAD_OWN_N, out);
  int lease = off + LOAD_OWN_N + LOAD_HOOK_N;
  if (!hg_db_column_is_null(st, lease))
    hg_copy(out->lease_owner, sizeof(out->lease_owner), hg_db_column_text(st, lease));
  out->lease_until = hg_db_column_int64_or(st, lease + 1, 0);
  return r;
}

/* Which columns a load_row statement reads. */
enum { ROW_OWN, ROW_HOOK, ROW_JOINED };

/* Reads the one row of sql (bound to key, or to seq when key is NULL)
 * into out; HG_ENOTFOUND when there is none. */
static int load_row(hg_db_t *db, const char *sql, int64_t seq, const char *key, hg_send_t *out, int kind) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc < 0) return hg_db_fail(db, rc, "load delivery");
  if (key != NULL) hg_db_bind_text(st, 1, key, -1);
  else hg_db_bind_int64(st, 1, seq);
  rc = hg_db_step(st);
  int r;
  if (rc != HG_DB_ROW) r = rc == HG_DB_DONE ? HG_ENOTFOUND : hg_db_fail(db, rc, "load delivery");
  else if (kind == ROW_OWN) r = fill_own(st, 0, seq, out);
  else if (kind == ROW_HOOK) r = fill_hook(st, 0, out);
  else r = fill_send(st, 0, seq, out);
  hg_db_release(st);
  return r;
}

int hg_deliveries_load(hg_db_t *db, int64_t seq, int64_t now, hg_send_t *out, const hg_send_t *prev) {
  memset(out, 0, sizeof(*out));
  int pg = hg_db_engine(db) == HG_DB_PG;
  int r = pg ? load_row(db, "SELECT " LOAD_COLUMNS LOAD_LEASE LOAD_OWN_FROM LOAD_HOOK_JOINS "WHERE d.seq = ?1", seq,
                        NULL, out, ROW_JOINED)
             : load_row(db, "SELECT " LOAD_OWN_COLUMNS LOAD_OWN_FROM "WHERE d.seq = ?1", seq, NULL, out, ROW_OWN);
  /* A batch often holds many deliveries of one webhook. */
  int same = r == 0 && prev != NULL && strcmp(prev->webhook_id, out->webhook_id) == 0;
  if (r == 0 && !pg)
    r = same ? copy_hook(prev, out)
             : load_row(db, "SELECT " LOAD_HOOK_COLUMNS "FROM webhooks w "
                            "LEFT JOIN webhook_health h ON h.webhook_id = w.id WHERE w.id = ?1",
                        seq, out->webhook_id, out, ROW_HOOK);
  if (r == 0 && same) {
    memcpy(out->secrets, prev->secrets, prev->n_secrets * sizeof(out->secrets[0]));
    out->n_secrets = prev->n_secrets;
  } else if (r == 0) {
    r = hg_webhooks_secrets(db, out->webhook_id, now, out->secrets, HG_MAX_SECRETS, &out->n_secrets);
  }
  if (r != 0) hg_send_close(out);
  return r;
}

int hg_deliveries_load_many(hg_db_t *db, const int64_t *seqs, size_t n, int64_t now, hg_send_t *const *outs,
                            int *status) {
  for (size_t i = 0; i < n; i++) {
    memset(outs[i], 0, sizeof(*outs[i]));
    status[i] = HG_ENOTFOUND;
  }
  if (n == 0) return 0;
  char *arr = hg_db_int64_array(seqs, n);
  if (arr == NULL) return HG_ENOMEM;
  hg_stmt_t *st = NULL;
  /* Driven from the list (a nested loop of index lookups): with "d.seq =
   * ANY(...)" the plan cached for the statement hashed the webhooks and
   * scanned a bitmap, several times the work for the usual few rows. */
  int rc = hg_db_prepare(db,
                         "SELECT d.seq, " LOAD_COLUMNS LOAD_LEASE "FROM unnest(CAST(?1 AS BIGINT[])) AS s(seq) "
                         "JOIN deliveries d ON d.seq = s.seq JOIN events e ON e.seq = d.event_seq " LOAD_HOOK_JOINS,
                         &st);
  if (rc < 0) {
    free(arr);
    return hg_db_fail(db, rc, "load deliveries");
  }
  hg_db_bind_text(st, 1, arr, -1);
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    int64_t seq = hg_db_column_int64(st, 0);
    for (size_t i = 0; i < n; i++) {
      if (seqs[i] != seq || status[i] != HG_ENOTFOUND) continue;
      status[i] = fill_send(st, 1, seq, outs[i]);
      break;
    }
  }
  hg_db_release(st);
  free(arr);
  if (rc < 0) {
    for (size_t i = 0; i < n; i++) hg_send_close(outs[i]);
    return hg_db_fail(db, rc, "load deliveries");
  }
  /* Secrets once per webhook of the batch. */
  for (size_t i = 0; i < n; i++) {
    if (status[i] != 0) continue;
    size_t k = 0;
    while (k < i && !(status[k] == 0 && strcmp(outs[k]->webhook_id, outs[i]->webhook_id) == 0)) k++;
    if (k < i) {
      memcpy(outs[i]->secrets, outs[k]->secrets, outs[k]->n_secrets * sizeof(outs[i]->secrets[0]));
      outs[i]->n_secrets = outs[k]->n_secrets;
    } else {
      status[i] = hg_webhooks_secrets(db, outs[i]->webhook_id, now, outs[i]->secrets, HG_MAX_SECRETS,
                                      &outs[i]->n_secrets);
      if (status[i] == HG_EUNAVAIL) rc = HG_EUNAVAIL;
    }
  }
  for (size_t i = 0; i < n; i++)
    if (status[i] != 0) hg_send_close(outs[i]);
  return rc == HG_EUNAVAIL ? rc : 0;
}

/* PostgreSQL: a record's statements are deferred (db.h), so that the
 * records of a batch share one round trip. A failure would then undo the
 * whole batch (and its attempts be sent again), so the one failure that
 * can be expected, a delivery deleted with its webhook while on the
 * wire, is ruled out in SQL: the attempt is not inserted. SQLite runs each
 * statement at once (the same SQL as before). */
static int run_or_defer(hg_db_t *db, hg_stmt_t *st, const char *op) {
  if (hg_db_engine(db) != HG_DB_PG) return run(db, st, op);
  int rc = hg_db_defer(st);
  return rc < 0 ? hg_db_fail(db, rc, op) : 0;
}

int hg_deliveries_record(hg_db_t *db, const hg_attempt_rec_t *rec) {
  hg_stmt_t *st = NULL;
  char att_id[HG_ID_MAX];
  hg_id_new("att_", att_id);
  int pg = hg_db_engine(db) == HG_DB_PG;
  int rc = hg_db_prepare(db,
                         pg ? "INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code, "
                              "response_body, error, request_headers) SELECT ?1, ?2, ?3, ?4, ?5, ?6, CAST(?7 AS BYTEA), ?8, ?9 "
                              "WHERE EXISTS (SELECT 1 FROM deliveries WHERE seq = ?2)"
                            : "INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code, "
                              "response_body, error, request_headers) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "record attempt");
  hg_db_bind_text(st, 1, att_id, -1);
  hg_db_bind_int64(st, 2, rec->delivery_seq);
  hg_db_bind_int64(st, 3, rec->attempt);
  hg_db_bind_int64(st, 4, rec->started_at);
  hg_db_bind_int64(st, 5, rec->duration_ms);
  hg_db_bind_int64(st, 6, rec->status_code);
  if (rec->response_body) hg_db_bind_blob(st, 7, rec->response_body, rec->response_len);
  else hg_db_bind_null(st, 7);
  bind_opt(st, 8, rec->error);
  bind_opt(st, 9, rec->request_headers);
  rc = run_or_defer(db, st, "record attempt");
  hg_db_release(st);
  if (rc < 0) return rc;
  /* PostgreSQL: the lease ends with the attempt's record (the node
   * claims the delivery again when its retry is due), so that a replay or
   * another node need not wait out cluster.lease. */
  rc = hg_db_prepare(db,
                     pg ? "UPDATE deliveries SET status = ?2, attempts = ?3, status_code = ?4, next_attempt_at = ?5, "
                          "updated_at = ?6, lease_owner = NULL, lease_until = NULL WHERE seq = ?1"
                        : "UPDATE deliveries SET status = ?2, attempts = ?3, status_code = ?4, next_attempt_at = ?5, "
                          "updated_at = ?6 WHERE seq = ?1",
                     &st);
  if (rc < 0) return hg_db_fail(db, rc, "update delivery");
  hg_db_bind_int64(st, 1, rec->delivery_seq);
  hg_db_bind_text(st, 2, hg_delivery_status_name(rec->new_status), -1);
  hg_db_bind_int64(st, 3, rec->attempt);
  hg_db_bind_int64(st, 4, rec->status_code);
  if (rec->new_status == HG_DEL_PENDING) hg_db_bind_int64(st, 5, rec->next_attempt_at);
  else hg_db_bind_null(st, 5);
  hg_db_bind_int64(st, 6, rec->started_at + rec->duration_ms);
  rc = run_or_defer(db, st, "update delivery");
  hg_db_release(st);
  return rc < 0 ? rc : 0;
}

/* PostgreSQL: many records in multi-row statements (rows.h). */
typedef struct rec_rows {
  const hg_attempt_rec_t *const *recs;
  char (*ids)[HG_ID_MAX];
} rec_rows_t;

static void bind_attempt(hg_stmt_t *st, int p, size_t i, void *ud) {
  const rec_rows_t *rr = ud;
  const hg_attempt_rec_t *rec = rr->recs[i];
  hg_db_bind_text(st, p, rr->ids[i], -1);
  hg_db_bind_int64(st, p + 1, rec->delivery_seq);
  hg_db_bind_int64(st, p + 2, rec->attempt);
  hg_db_bind_int64(st, p + 3, rec->started_at);
  hg_db_bind_int64(st, p + 4, rec->duration_ms);
  hg_db_bind_int64(st, p + 5, rec->status_code);
  if (rec->response_body) hg_db_bind_blob(st, p + 6, rec->response_body, rec->response_len);
  else hg_db_bind_null(st, p + 6);
  bind_opt(st, p + 7, rec->error);
  bind_opt(st, p + 8, rec->request_headers);
}

static void bind_update(hg_stmt_t *st, int p, size_t i, void *ud) {
  const hg_attempt_rec_t *rec = ((const rec_rows_t *)ud)->recs[i];
  hg_db_bind_int64(st, p, rec->delivery_seq);
  hg_db_bind_text(st, p + 1, hg_delivery_status_name(rec->new_status), -1);
  hg_db_bind_int64(st, p + 2, rec->attempt);
  hg_db_bind_int64(st, p + 3, rec->status_code);
  if (rec->new_status == HG_DEL_PENDING) hg_db_bind_int64(st, p + 4, rec->next_attempt_at);
  else hg_db_bind_null(st, p + 4);
  hg_db_bind_int64(st, p + 5, rec->started_at + rec->duration_ms);
}

int hg_deliveries_record_many(hg_db_t *db, const hg_attempt_rec_t *const *recs, size_t n, int *status) {
  if (hg_db_engine(db) != HG_DB_PG || n == 1) {
    for (size_t i = 0; i < n; i++) {
      status[i] = hg_deliveries_record(db, recs[i]);
      if (status[i] == HG_EUNAVAIL) return HG_EUNAVAIL;
    }
    return 0;
  }
  rec_rows_t rr = {recs, malloc(n * sizeof(*rr.ids))};
  int rc = HG_ENOMEM;
  if (rr.ids != NULL) {
    for (size_t i = 0; i < n; i++) hg_id_new("att_", rr.ids[i]);
    rc = hg_rows_send(db, HG_ROWS_ATTEMPTS, n, bind_attempt, &rr, "record attempts");
    if (rc == 0) rc = hg_rows_send(db, HG_ROWS_DELIVERY_UPDATES, n, bind_update, &rr, "update deliveries");
  }
  free(rr.ids);
  for (size_t i = 0; i < n; i++) status[i] = rc;
  /* Any failure is the job's: the attempts of a chunk sent before it
   * must not be kept without their deliveries' outcome. */
  return rc;
}

int hg_deliveries_abandon(hg_db_t *db, int64_t seq, int64_t now) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, updated_at = ?2 "
                         "WHERE seq = ?1 AND status = 'pending'", &st);
  if (rc < 0) return hg_db_fail(db, rc, "abandon delivery");
  hg_db_bind_int64(st, 1, seq);
  hg_db_bind_int64(st, 2, now);
  rc = run(db, st, "abandon delivery");
  hg_db_release(st);
  return rc;
}

/* PostgreSQL: in pages of PENDING_PAGE rows, in (due, seq) order along the
 * index of pending deliveries: one statement reading a backlog of millions
 * (after an outage) would outlast the statement deadline (db_pg.c), and the
 * dispatcher would never start. Rows without a due time come last. */
#define PENDING_PAGE 10000

static int pending_pages(hg_db_t *db, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud) {
  static const char page_sql[] =
      "SELECT seq, next_attempt_at, CASE WHEN " HG_LINE_WAITING("deliveries") " THEN 1 ELSE 0 END FROM deliveries "
      "WHERE status = 'pending' AND next_attempt_at IS NOT NULL "
      "AND (next_attempt_at, seq) > (?1, ?2) ORDER BY next_attempt_at, seq LIMIT ?3";
  static const char undue_sql[] =
      "SELECT seq, 0 FROM deliveries WHERE status = 'pending' AND next_attempt_at IS NULL AND NOT "
      HG_LINE_WAITING("deliveries");
  int64_t last_due = INT64_MIN, last_seq = INT64_MIN;
  for (;;) {
    hg_stmt_t *st = NULL;
    int rc = hg_db_prepare(db, page_sql, &st);
    if (rc < 0) return hg_db_fail(db, rc, "read pending deliveries");
    hg_db_bind_int64(st, 1, last_due);
    hg_db_bind_int64(st, 2, last_seq);
    hg_db_bind_int64(st, 3, PENDING_PAGE);
    int r = 0, n = 0;
    while (r == 0 && (rc = hg_db_step(st)) == HG_DB_ROW) {
      last_seq = hg_db_column_int64(st, 0);
      last_due = hg_db_column_int64(st, 1);
      n++;
      /* One waiting in its webhook's line goes when the one ahead ends
       * (dispatcher.h), not from here. */
      if (hg_db_column_int64(st, 2) == 0) r = cb(last_seq, last_due, ud);
    }
    hg_db_release(st);
    if (r != 0) return r;
    if (rc < 0) return hg_db_fail(db, rc, "read pending deliveries");
    if (n < PENDING_PAGE) break;
  }
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, undue_sql, &st);
  if (rc < 0) return hg_db_fail(db, rc, "read pending deliveries");
  int r = 0;
  while (r == 0 && (rc = hg_db_step(st)) == HG_DB_ROW) r = cb(hg_db_column_int64(st, 0), 0, ud);
  if (r == 0 && rc < 0) r = hg_db_fail(db, rc, "read pending deliveries");
  hg_db_release(st);
  return r;
}

int hg_deliveries_pending(hg_db_t *db, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud) {
  if (hg_db_engine(db) == HG_DB_PG) return pending_pages(db, cb, ud);
  /* In table order: the dispatcher's heap orders them. Sorting a million
   * rows here cost (on SQLite) a sorter as large as the result, in memory
   * with temp_store=MEMORY, which malloc then kept. */
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(
      db, "SELECT seq, next_attempt_at FROM deliveries WHERE status = 'pending' AND NOT " HG_LINE_WAITING("deliveries"),
      &st);
  if (rc < 0) return hg_db_fail(db, rc, "read pending deliveries");
  int r = 0;
  while (r == 0 && (rc = hg_db_step(st)) == HG_DB_ROW)
    r = cb(hg_db_column_int64(st, 0), hg_db_column_int64(st, 1), ud);
  if (r == 0 && rc < 0) r = hg_db_fail(db, rc, "read pending deliveries");
  hg_db_release(st);
  return r;
}

/* Delivery id under webhook wh, visible to org (NULL: any). */
#define VISIBLE "FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?1 AND d.webhook_id = ?2 " \
                "AND (CAST(?3 AS TEXT) IS NULL OR w.organization_id = ?3)"

int hg_deliveries_seq(hg_db_t *db, const char *wh, const char *org, const char *id, int64_t *seq) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "SELECT d.seq " VISIBLE, &st);
  if (rc < 0) return hg_db_fail(db, rc, "find delivery");
  hg_db_bind_text(st, 1, id, -1);
  hg_db_bind_text(st, 2, wh, -1);
  bind_opt(st, 3, org);
  rc = hg_db_step(st);
  int r = rc == HG_DB_ROW ? 0 : rc == HG_DB_DONE ? HG_ENOTFOUND : hg_db_fail(db, rc, "find delivery");
  if (r == 0) *seq = hg_db_column_int64(st, 0);
  hg_db_release(st);
  return r;
}

/* A place at the end of webhook wh's line for a delivery joining it now:
 * *line 0 when wh is unordered. */
static int line_place(hg_db_t *db, const char *wh, int64_t *line) {
  int r = hg_line_take(db, wh, 1, line);
  return r == HG_ENOTFOUND ? 0 : r;
}

static void bind_line(hg_stmt_t *st, int i, int64_t line) {
  if (line > 0) hg_db_bind_int64(st, i, line);
  else hg_db_bind_null(st, i);
}

int hg_deliveries_replay(hg_db_t *db, const char *wh, const char *org, const char *id, int64_t now, int64_t *seq,
                         int *in_line) {
  *in_line = 0;
  int r = hg_deliveries_seq(db, wh, org, id, seq);
  if (r != 0) return r;
  /* An ordered webhook's: one that ended joins the end of the line; one
   * still pending keeps its place (docs/api.md#ordering). */
  int64_t line = 0;
  if ((r = line_place(db, wh, &line)) != 0) return r;
  *in_line = line > 0;
  hg_stmt_t *st = NULL;
  /* PostgreSQL: a replay is sent by the node that was asked, at once:
   * another node's lease on it ends. Not so for an ordered webhook's
   * pending delivery (it keeps its place): another node may be sending it
   * right now, and it must not go twice at once. */
  int rc = hg_db_prepare(db,
                         hg_db_engine(db) == HG_DB_PG
                             ? "UPDATE deliveries SET line = CASE WHEN status = 'pending' AND line IS NOT NULL THEN line "
                               "ELSE CAST(?3 AS BIGINT) END, "
                               "lease_owner = CASE WHEN status = 'pending' AND line IS NOT NULL THEN lease_owner END, "
                               "lease_until = CASE WHEN status = 'pending' AND line IS NOT NULL THEN lease_until END, "
                               "status = 'pending', next_attempt_at = ?2, updated_at = ?2 WHERE seq = ?1"
                             : "UPDATE deliveries SET line = CASE WHEN status = 'pending' AND line IS NOT NULL THEN line "
                               "ELSE CAST(?3 AS BIGINT) END, status = 'pending', next_attempt_at = ?2, updated_at = ?2 "
                               "WHERE seq = ?1",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "replay delivery");
  hg_db_bind_int64(st, 1, *seq);
  hg_db_bind_int64(st, 2, now);
  bind_line(st, 3, line);
  rc = run(db, st, "replay delivery");
  hg_db_release(st);
  return rc;
}

int hg_deliveries_create_test(hg_db_t *db, const char *wh, const char *org, const char *type, const char *payload,
                              size_t len, int64_t now, char *event_id, int64_t *seq, char *del_id) {
  hg_webhook_t w;
  int r = hg_webhooks_get(db, wh, org, &w);
  if (r != 0) return r;
  hg_stmt_t *st = NULL;
  hg_id_new("evt_", event_id);
  /* RETURNING on PostgreSQL only: see hg_events__insert_seq. */
  int pg = hg_db_engine(db) == HG_DB_PG;
  int rc = hg_db_prepare(db,
                         pg ? "INSERT INTO events (id, type, organization_id, payload, created_at, deliveries) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, 1) RETURNING seq"
                            : "INSERT INTO events (id, type, organization_id, payload, created_at, deliveries) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                         &st);
  if (rc < 0) {
    hg_webhook_close(&w);
    return hg_db_fail(db, rc, "insert test event");
  }
  hg_db_bind_text(st, 1, event_id, -1);
  hg_db_bind_text(st, 2, type, -1);
  bind_opt(st, 3, w.org);
  hg_db_bind_blob(st, 4, payload, len);
  hg_db_bind_int64(st, 5, now);
  int64_t event_seq = 0;
  rc = hg_events__insert_seq(db, st, &event_seq);
  if (rc < 0) rc = hg_db_fail(db, rc, "insert test event");
  hg_db_release(st);
  hg_webhook_close(&w);
  if (rc < 0) return rc;
  /* Not pending: a test is sent once, at once, by the caller, never by the
   * queue; the attempt's record sets its final status. */
  return hg_deliveries_insert_one(db, wh, event_seq, 0, now, del_id, seq);
}

int hg_deliveries_insert_one(hg_db_t *db, const char *wh, int64_t event_seq, int pending, int64_t now,
                             char id[HG_ID_MAX], int64_t *seq) {
  hg_id_new("del_", id);
  /* A pending one of an ordered webhook joins the end of its line. */
  int64_t line = 0;
  int rc = pending ? line_place(db, wh, &line) : 0;
  if (rc != 0) return rc;
  /* RETURNING on PostgreSQL only: see hg_events__insert_seq. */
  hg_stmt_t *st = NULL;
  rc = hg_db_prepare(db,
                     hg_db_engine(db) == HG_DB_PG
                         ? "INSERT INTO deliveries (id, webhook_id, event_seq, status, next_attempt_at, created_at, "
                           "updated_at, line) VALUES (?1, ?2, ?3, ?5, CAST(?6 AS BIGINT), ?4, ?4, CAST(?7 AS BIGINT)) "
                           "RETURNING seq"
                         : "INSERT INTO deliveries (id, webhook_id, event_seq, status, next_attempt_at, created_at, "
                           "updated_at, line) VALUES (?1, ?2, ?3, ?5, CAST(?6 AS BIGINT), ?4, ?4, CAST(?7 AS BIGINT))",
                     &st);
  if (rc < 0) return hg_db_fail(db, rc, "insert delivery");
  bind_line(st, 7, line);
  hg_db_bind_text(st, 1, id, -1);
  hg_db_bind_text(st, 2, wh, -1);
  hg_db_bind_int64(st, 3, event_seq);
  hg_db_bind_int64(st, 4, now);
  hg_db_bind_text(st, 5, pending ? "pending" : "failed", -1);
  if (pending) hg_db_bind_int64(st, 6, now);
  else hg_db_bind_null(st, 6);
  rc = hg_events__insert_seq(db, st, seq);
  if (rc < 0) rc = hg_db_fail(db, rc, "insert delivery");
  hg_db_release(st);
  return rc < 0 ? rc : 0;
}

static json_t *time_json(hg_stmt_t *st, int col) {
  if (hg_db_column_is_null(st, col)) return json_null();
  char buf[25];
  hg_format_time(hg_db_column_int64(st, col), buf);
  return json_string(buf);
}

static json_t *int_or_null(hg_stmt_t *st, int col) {
  return hg_db_column_is_null(st, col) ? json_null() : json_integer(hg_db_column_int64(st, col));
}

#define DELIVERY_COLS "d.id, e.id, e.type, d.status, d.status_code, d.attempts, d.created_at, d.updated_at, " \
                      "d.next_attempt_at, d.seq"

static json_t *delivery_json(hg_stmt_t *st) {
  return json_pack("{s:s,s:s,s:s,s:s,s:o,s:i,s:o,s:o,s:o}", "id", hg_db_column_text(st, 0), "eventId",
                   hg_db_column_text(st, 1), "event", hg_db_column_text(st, 2), "status", hg_db_column_text(st, 3),
                   "statusCode", int_or_null(st, 4), "attempts", (int)hg_db_column_int64(st, 5), "createdAt",
                   time_json(st, 6), "updatedAt", time_json(st, 7), "nextAttemptAt", time_json(st, 8));
}

/* 0 when webhook wh exists and org (NULL: any) may see it, else
 * HG_ENOTFOUND or a store error. */
static int webhook_visible(hg_db_t *db, const char *wh, const char *org) {
  hg_webhook_t w = {0};
  int r = hg_webhooks_get(db, wh, org, &w);
  hg_webhook_close(&w);
  return r;
}

int hg_deliveries_list_json(hg_db_t *db, const char *wh, const char *org, const char *after_id, int limit, int status,
                            const char *event, json_t *arr, char *last_id, int *more) {
  int r = webhook_visible(db, wh, org);
  if (r != 0) return r;
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "SELECT " DELIVERY_COLS " FROM deliveries d JOIN events e ON e.seq = d.event_seq "
                         "WHERE d.webhook_id = ?1 AND (CAST(?2 AS TEXT) = '' OR d.id < ?2) AND "
                         "(CAST(?3 AS TEXT) IS NULL OR d.status = ?3) AND (CAST(?4 AS TEXT) IS NULL OR e.type = ?4) "
                         "ORDER BY d.id DESC LIMIT ?5", &st);
  if (rc < 0) return hg_db_fail(db, rc, "list deliveries");
  hg_db_bind_text(st, 1, wh, -1);
  hg_db_bind_text(st, 2, after_id, -1);
  bind_opt(st, 3, status >= 0 ? hg_delivery_status_name((hg_delivery_status_t)status) : NULL);
  bind_opt(st, 4, event);
  hg_db_bind_int64(st, 5, (int64_t)limit + 1);
  int n = 0;
  *more = 0;
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    if (n == limit) {
      *more = 1;
      break;
    }
    json_array_append_new(arr, delivery_json(st));
    snprintf(last_id, HG_ID_MAX, "%s", hg_db_column_text(st, 0));
    n++;
  }
  r = rc >= 0 ? 0 : hg_db_fail(db, rc, "list deliveries");
  hg_db_release(st);
  return r;
}

/* JSON text stored by the gateway (a payload, an attempt's headers) back
 * as a value; NULL when it cannot be parsed. A payload's data is kept byte
 * for byte, so it may hold what jansson refuses by default: \u0000 in a
 * string, or an integer beyond 64 bits (then read as a double, as a
 * JavaScript client would). */
static json_t *stored_json(const void *text, size_t len) {
  json_t *v = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
  if (v == NULL) v = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
  return v;
}

/* Column col as stored JSON: a BLOB column (a payload) when blob, else a
 * TEXT one (PostgreSQL keeps the two apart); null for SQL NULL or what
 * cannot be parsed. */
static json_t *stored_json_col(hg_stmt_t *st, int col, int blob) {
  if (hg_db_column_is_null(st, col)) return json_null();
  json_t *v;
  if (blob) {
    v = stored_json(hg_db_column_blob(st, col), hg_db_column_bytes(st, col));
  } else {
    const char *s = hg_db_column_text(st, col);
    v = stored_json(s, strlen(s));
  }
  return v ? v : json_null();
}

int hg_deliveries_get_json(hg_db_t *db, const char *wh, const char *org, const char *id, json_t **out) {
  hg_stmt_t *st = NULL;
  /* The payload only here: the list stays light. */
  int rc = hg_db_prepare(db,
                         "SELECT " DELIVERY_COLS ", e.payload FROM deliveries d JOIN events e ON e.seq = d.event_seq "
                         "JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?1 AND d.webhook_id = ?2 "
                         "AND (CAST(?3 AS TEXT) IS NULL OR w.organization_id = ?3)", &st);
  if (rc < 0) return hg_db_fail(db, rc, "get delivery");
  hg_db_bind_text(st, 1, id, -1);
  hg_db_bind_text(st, 2, wh, -1);
  bind_opt(st, 3, org);
  rc = hg_db_step(st);
  if (rc != HG_DB_ROW) {
    rc = rc == HG_DB_DONE ? HG_ENOTFOUND : hg_db_fail(db, rc, "get delivery");
    hg_db_release(st);
    return rc;
  }
  json_t *d = delivery_json(st);
  int64_t seq = hg_db_column_int64(st, 9);
  json_object_set_new(d, "payload", stored_json_col(st, 10, 1));
  hg_db_release(st);
  json_t *attempts = json_array();
  rc = hg_db_prepare(db,
                     "SELECT id, attempt, started_at, duration_ms, status_code, response_body, error, request_headers "
                     "FROM attempts WHERE delivery_seq = ?1 ORDER BY attempt, started_at", &st);
  if (rc < 0) {
    json_decref(d);
    json_decref(attempts);
    return hg_db_fail(db, rc, "get attempts");
  }
  hg_db_bind_int64(st, 1, seq);
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    json_t *body = json_null();
    if (!hg_db_column_is_null(st, 5)) {
      /* A receiver's body need not be UTF-8: keep only what JSON can carry. */
      body = json_stringn((const char *)hg_db_column_blob(st, 5), hg_db_column_bytes(st, 5));
      if (body == NULL) body = json_string("(response body is not UTF-8)");
    }
    int status_code = (int)hg_db_column_int64(st, 4);
    json_array_append_new(attempts,
                          json_pack("{s:s,s:i,s:o,s:I,s:o,s:o,s:o,s:o}", "id", hg_db_column_text(st, 0), "attempt",
                                    (int)hg_db_column_int64(st, 1), "startedAt", time_json(st, 2), "durationMs",
                                    (json_int_t)hg_db_column_int64(st, 3), "statusCode",
                                    status_code ? json_integer(status_code) : json_null(), "responseBody",
                                    body ? body : json_null(), "error",
                                    hg_db_column_is_null(st, 6) ? json_null() : json_string(hg_db_column_text(st, 6)),
                                    "requestHeaders", stored_json_col(st, 7, 0)));
  }
  hg_db_release(st);
  if (rc < 0) {
    /* A read that failed part way (a lost connection): no delivery log
     * with attempts missing. */
    json_decref(d);
    json_decref(attempts);
    return hg_db_fail(db, rc, "get attempts");
  }
  json_object_set_new(d, "attempts", attempts);
  *out = d;
  return 0;
}
