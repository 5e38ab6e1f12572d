/* copy.c: `hookgate store copy`, a SQLite deployment's rows moved into
 * PostgreSQL (see copy.h).
 *
 * Design choices:
 *
 * - All or nothing: the whole copy is one PostgreSQL transaction, which
 *   first locks the tables (EXCLUSIVE: readers go on, writers wait) and
 *   checks they are empty, so a gateway that starts on the target meanwhile
 *   cannot slip rows in between the check and the copy. It commits only
 *   after the counts agree. The SQLite side is read in one read
 *   transaction: a snapshot, consistent even if a gateway still writes the
 *   file (the copy then misses what came after; stop it first).
 *
 * - Rows go as they are, every column, seq included: deliveries reference
 *   events by seq and attempts deliveries, so renumbering would mean
 *   rewriting both. PostgreSQL's identity columns do not advance for
 *   explicit values, so their sequences are moved past the largest seq
 *   afterwards, or the gateway's first insert would collide.
 *
 * - Rows are streamed (one SQLite statement per table, stepped) and sent in
 *   batches of COPY_BATCH rows per INSERT, one prepared statement per
 *   table: a round trip per batch, not per row. A batch's values are copied
 *   out of the SQLite row (which the next step overwrites) into an arena;
 *   a batch holding more than COPY_BATCH_BYTES goes early, row by row, so
 *   memory stays bounded by the largest rows, not by the table.
 *
 * - The statements are written once per table from its column list by the
 *   TABLE macro, so the SELECT and the INSERTs cannot disagree on a
 *   column, and stay string literals as db.h's statement cache wants. */
#include "store/copy.h"

#include "store/events.h"

#include "base/common.h"
#include "store/db.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Rows per INSERT: 32 rows of the widest table are 480 parameters, far
 * below PostgreSQL's 65,535, and a batch of large payloads still fits a
 * statement's deadline (db_pg.c). */
#define COPY_BATCH 32
#define COPY_BATCH_BYTES ((size_t)4 << 20)
#define COPY_PROGRESS_EVERY 100000
#define COPY_MAX_COLS 17

/* A table as copied: types has one letter a column, in the order of the
 * column list: 'i' integer, 't' text, 'b' blob. sum_col: the column whose
 * byte lengths are summed to verify (events.payload), or -1. */
typedef struct table {
  const char *name;
  const char *types;
  const char *select_sql; /* SQLite, in key order */
  const char *insert_one_sql;
  const char *insert_batch_sql; /* COPY_BATCH rows */
  const char *count_sql;        /* both engines */
  const char *any_sql;          /* PostgreSQL: whether it holds a row */
  int sum_col;
} table_t;

#define ROWS2(r) r "," r
#define ROWS4(r) ROWS2(r) "," ROWS2(r)
#define ROWS8(r) ROWS4(r) "," ROWS4(r)
#define ROWS16(r) ROWS8(r) "," ROWS8(r)
#define ROWS32(r) ROWS16(r) "," ROWS16(r)

#define TABLE(name, cols, row, types, key, sum_col)                                                                    \
  {                                                                                                                    \
    name, types, "SELECT " cols " FROM " name " ORDER BY " key, "INSERT INTO " name " (" cols ") VALUES " row,         \
        "INSERT INTO " name " (" cols ") VALUES " ROWS32(row), "SELECT count(*) FROM " name,                           \
        "SELECT 1 FROM " name " LIMIT 1", sum_col                                                                      \
  }

/* Parents before the rows that reference them. The columns are those of
 * SQLite's schema at its current version (schema.c), which PostgreSQL's
 * has too (schema_pg.c); deliveries' lease_owner and lease_until are not
 * copied (SQLite has no leases) and stay NULL: no node holds them. */
static const table_t tables[HG_COPY_TABLES] = {
    TABLE("webhooks",
          "id, url, events, organization_id, active, metadata, created_at, updated_at, lua, signature_scheme, "
          "disabled_at, disabled_reason, disabled_message, disable_after_exhausted, disable_after_failing_ms, "
          "rate_limit_milli, max_concurrency",
          "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", "ttttitiittittiiii", "id", -1),
    TABLE("webhook_health", "webhook_id, consecutive_exhausted, failing_since", "(?,?,?)", "tii", "webhook_id", -1),
    TABLE("webhook_lines", "webhook_id, next", "(?,?)", "ti", "webhook_id", -1),
    TABLE("webhook_secrets", "webhook_id, secret, created_at, expires_at, public_key", "(?,?,?,?,?)", "ttiit",
          "webhook_id, secret", -1),
    TABLE("webhook_events", "pattern, webhook_id", "(?,?)", "tt", "pattern, webhook_id", -1),
    TABLE("api_keys", "id, hash, prefix, scopes, organization_id, created_at, revoked_at", "(?,?,?,?,?,?,?)",
          "tbtttii", "id", -1),
    TABLE("events", "seq, id, type, organization_id, payload, idempotency_key, created_at, deliveries",
          "(?,?,?,?,?,?,?,?)", "itttbtii", "seq", 4),
    TABLE("deliveries",
          "seq, id, webhook_id, event_seq, status, attempts, status_code, next_attempt_at, created_at, updated_at, "
          "line",
          "(?,?,?,?,?,?,?,?,?,?,?)", "ittitiiiiii", "seq", -1),
    TABLE("attempts",
          "id, delivery_seq, attempt, started_at, duration_ms, status_code, response_body, error, request_headers",
          "(?,?,?,?,?,?,?,?,?)", "tiiiiibtt", "id", -1),
};

/* Every table at once, so that the emptiness check and the copy see the
 * same (empty) tables. */
static const char lock_sql[] = "LOCK TABLE webhooks, webhook_health, webhook_lines, webhook_secrets, webhook_events, api_keys, events, "
                               "deliveries, attempts IN EXCLUSIVE MODE";

/* ---- A batch of rows ---- */

typedef struct cell {
  int null;
  int64_t i;
  size_t off, len; /* text and blobs: their bytes in the arena */
} cell_t;

typedef struct batch {
  cell_t cells[COPY_BATCH * COPY_MAX_COLS];
  int rows;
  char *buf; /* the arena */
  size_t len, cap;
} batch_t;

static int arena_add(batch_t *b, const void *p, size_t n, size_t *off) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n) cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (nb == NULL) return HG_ENOMEM;
    b->buf = nb;
    b->cap = cap;
  }
  *off = b->len;
  if (n > 0) memcpy(b->buf + b->len, p, n);
  b->len += n;
  return 0;
}

/* Copies the source's current row into the batch; adds the summed
 * column's bytes to *sum. */
static int take_row(batch_t *b, const table_t *t, hg_stmt_t *src, int64_t *sum) {
  int ncols = (int)strlen(t->types);
  cell_t *row = &b->cells[b->rows * COPY_MAX_COLS];
  for (int c = 0; c < ncols; c++) {
    cell_t *cell = &row[c];
    memset(cell, 0, sizeof(*cell));
    if (hg_db_column_is_null(src, c)) {
      cell->null = 1;
      continue;
    }
    if (t->types[c] == 'i') {
      cell->i = hg_db_column_int64(src, c);
      continue;
    }
    /* The pointer first, then its length (SQLite may convert on the
     * first call, which the length must describe). */
    const void *p = t->types[c] == 'b' ? hg_db_column_blob(src, c) : (const void *)hg_db_column_text(src, c);
    size_t n = hg_db_column_bytes(src, c);
    int rc = arena_add(b, p, n, &cell->off);
    if (rc != 0) return rc;
    cell->len = n;
    if (c == t->sum_col) *sum += (int64_t)n;
  }
  b->rows++;
  return 0;
}

/* Binds the batch's row r to st's parameters from first on. */
static int bind_row(hg_stmt_t *st, int first, const batch_t *b, const table_t *t, int r) {
  int ncols = (int)strlen(t->types), rc = 0;
  for (int c = 0; c < ncols && rc == 0; c++) {
    const cell_t *cell = &b->cells[r * COPY_MAX_COLS + c];
    const char *p = cell->len > 0 ? b->buf + cell->off : "";
    int i = first + c;
    if (cell->null) rc = hg_db_bind_null(st, i);
    else if (t->types[c] == 'i') rc = hg_db_bind_int64(st, i, cell->i);
    else if (t->types[c] == 'b') rc = hg_db_bind_blob(st, i, p, cell->len);
    else rc = hg_db_bind_text(st, i, p, (int)cell->len);
  }
  return rc;
}

static int run_insert(hg_stmt_t *st) {
  int rc = hg_db_step(st);
  hg_db_reset(st);
  return rc == HG_DB_DONE ? 0 : rc < 0 ? rc : HG_EIO;
}

/* Sends the batch: one INSERT when it is full, one per row otherwise (the
 * table's last rows, or a batch cut short by its size). Empties it. */
static int flush(batch_t *b, const table_t *t, hg_stmt_t *one, hg_stmt_t *many) {
  int ncols = (int)strlen(t->types), rc = 0;
  if (b->rows == COPY_BATCH) {
    for (int r = 0; r < b->rows && rc == 0; r++) rc = bind_row(many, 1 + r * ncols, b, t, r);
    if (rc == 0) rc = run_insert(many);
  } else {
    for (int r = 0; r < b->rows && rc == 0; r++)
      if ((rc = bind_row(one, 1, b, t, r)) == 0) rc = run_insert(one);
  }
  b->rows = 0;
  b->len = 0;
  return rc;
}

/* ---- The copy ---- */

typedef struct copy {
  hg_db_t *src, *dst;
  char target[512]; /* the target's address, password hidden */
  hg_copy_progress_fn progress;
  void *ud;
  hg_copy_report_t *rep;
  char *err;
  size_t errlen;
} copy_t;

static int copy_table(copy_t *cp, const table_t *t, int64_t *rows) {
  hg_stmt_t *sel = NULL, *one = NULL, *many = NULL;
  batch_t *b = calloc(1, sizeof(*b));
  int rc = b == NULL ? HG_ENOMEM : 0, on_src = 0;
  *rows = 0;
  if (rc == 0 && (rc = hg_db_prepare(cp->src, t->select_sql, &sel)) != 0) on_src = 1;
  if (rc == 0) rc = hg_db_prepare(cp->dst, t->insert_one_sql, &one);
  if (rc == 0) rc = hg_db_prepare(cp->dst, t->insert_batch_sql, &many);
  while (rc == 0) {
    int s = hg_db_step(sel);
    if (s == HG_DB_DONE) break;
    if (s != HG_DB_ROW) {
      rc = s < 0 ? s : HG_EIO;
      on_src = 1;
      break;
    }
    if ((rc = take_row(b, t, sel, &cp->rep->payload_bytes)) != 0) {
      on_src = 1; /* no memory for the row read */
      break;
    }
    ++*rows;
    if ((b->rows == COPY_BATCH || b->len > COPY_BATCH_BYTES) && (rc = flush(b, t, one, many)) != 0) break;
    if (cp->progress != NULL && *rows % COPY_PROGRESS_EVERY == 0) cp->progress(t->name, *rows, cp->ud);
  }
  if (rc == 0) rc = flush(b, t, one, many);
  if (rc != 0) {
    if (on_src) hg_set_err(cp->err, cp->errlen, "reading %s from the SQLite file failed: %s (%s)", t->name,
                           hg_db_errmsg(cp->src), hg_strerror(rc));
    else if (rc == HG_ENOTFOUND) /* a foreign key: SQLite kept a row whose parent is gone */
      hg_set_err(cp->err, cp->errlen, "copying %s failed: the SQLite file has a row referencing a missing row: %s",
                 t->name, hg_db_errmsg(cp->dst));
    else hg_set_err(cp->err, cp->errlen, "copying %s failed: %s (%s)", t->name, hg_db_errmsg(cp->dst),
                    hg_strerror(rc));
  }
  hg_db_release(sel);
  hg_db_release(one);
  hg_db_release(many);
  if (b != NULL) free(b->buf);
  free(b);
  return rc;
}

/* The first column of sql's one row as an integer. */
static int query_int(hg_db_t *db, const char *sql, int64_t *out) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) rc = hg_db_step(st);
  if (rc == HG_DB_ROW) {
    *out = hg_db_column_int64(st, 0);
    rc = 0;
  } else if (rc >= 0) {
    rc = HG_EIO;
  }
  hg_db_release(st);
  return rc;
}

/* Refuses a target holding rows in any table: merging two deployments is
 * no copy (ids would collide half-way, seqs would mean two things). */
static int check_empty(copy_t *cp) {
  for (int i = 0; i < HG_COPY_TABLES; i++) {
    hg_stmt_t *st = NULL;
    int rc = hg_db_prepare(cp->dst, tables[i].any_sql, &st);
    if (rc == 0) rc = hg_db_step(st);
    hg_db_release(st);
    if (rc == HG_DB_ROW) {
      hg_set_err(cp->err, cp->errlen,
                 "the target %s already holds rows in table %s: copy only into an empty database (nothing copied)",
                 cp->target, tables[i].name);
      return HG_EEXIST;
    }
    if (rc != HG_DB_DONE) {
      hg_set_err(cp->err, cp->errlen, "cannot read table %s of the target: %s", tables[i].name, hg_db_errmsg(cp->dst));
      return rc < 0 ? rc : HG_EIO;
    }
  }
  return 0;
}

/* Inside the transaction, before COMMIT: every table's count on both
 * sides equals the rows copied, and events' payload bytes agree. */
static int verify(copy_t *cp) {
  for (int i = 0; i < HG_COPY_TABLES; i++) {
    int64_t n_src = -1, n_dst = -1;
    int rc = query_int(cp->src, tables[i].count_sql, &n_src);
    if (rc == 0) rc = query_int(cp->dst, tables[i].count_sql, &n_dst);
    if (rc != 0) {
      hg_set_err(cp->err, cp->errlen, "verifying %s: cannot count its rows: %s", tables[i].name,
                 hg_strerror(rc));
      return rc;
    }
    if (n_src != n_dst || n_dst != cp->rep->rows[i]) {
      hg_set_err(cp->err, cp->errlen,
                 "verifying %s: the SQLite file has %lld rows, the target %lld, %lld were copied (rolled back)",
                 tables[i].name, (long long)n_src, (long long)n_dst, (long long)cp->rep->rows[i]);
      return HG_ECORRUPT;
    }
  }
  int64_t bytes = -1;
  int rc = query_int(cp->dst, "SELECT COALESCE(sum(octet_length(payload)), 0) FROM events", &bytes);
  if (rc != 0) {
    hg_set_err(cp->err, cp->errlen, "verifying events: cannot sum the payloads: %s", hg_db_errmsg(cp->dst));
    return rc;
  }
  if (bytes != cp->rep->payload_bytes) {
    hg_set_err(cp->err, cp->errlen,
               "verifying events: the payloads read hold %lld bytes, the target's %lld (rolled back)",
               (long long)cp->rep->payload_bytes, (long long)bytes);
    return HG_ECORRUPT;
  }
  return 0;
}

/* Moves the identity sequences of events and deliveries to their largest
 * seq (nothing for an empty table: HAVING yields no row). setval is not
 * undone by a rollback, hence last before COMMIT: a failure after it
 * leaves only a gap in the numbering. */
static int move_sequences(copy_t *cp) {
  static const char *const sql[] = {
      "SELECT setval(pg_get_serial_sequence('events', 'seq'), max(seq)) FROM events HAVING max(seq) IS NOT NULL",
      "SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), max(seq)) FROM deliveries "
      "HAVING max(seq) IS NOT NULL",
  };
  for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
    hg_stmt_t *st = NULL;
    int rc = hg_db_prepare(cp->dst, sql[i], &st);
    if (rc == 0) rc = hg_db_step(st);
    hg_db_release(st);
    if (rc != HG_DB_ROW && rc != HG_DB_DONE) {
      hg_set_err(cp->err, cp->errlen, "cannot move the target's %s sequence: %s", i == 0 ? "events" : "deliveries",
                 hg_db_errmsg(cp->dst));
      return rc < 0 ? rc : HG_EIO;
    }
  }
  return 0;
}

/* Opens and migrates the SQLite file, noting its version before. */
static int open_source(copy_t *cp, const char *from) {
  char e[512] = "";
  int rc = hg_db_open(&cp->src, from, 0, e, sizeof(e));
  if (rc != 0) {
    hg_set_err(cp->err, cp->errlen, "cannot open %s: %s", from, e);
    return rc;
  }
  int64_t v = 0;
  if ((rc = query_int(cp->src, "PRAGMA user_version", &v)) != 0) {
    hg_set_err(cp->err, cp->errlen, "%s: cannot read its schema version: %s", from, hg_db_errmsg(cp->src));
    return rc;
  }
  cp->rep->from_version_before = (int)v;
  if ((rc = hg_store_migrate(cp->src, e, sizeof(e))) != 0) {
    hg_set_err(cp->err, cp->errlen, "cannot migrate %s: %s", from, e);
    return rc;
  }
  cp->rep->from_version = hg_store_schema_version(HG_DB_SQLITE);
  return 0;
}

static int run_copy(copy_t *cp, const char *from, const char *to) {
  char e[512] = "";
  int rc = hg_db_open(&cp->dst, to, HG_DB_CACHE, e, sizeof(e));
  if (rc != 0) {
    hg_set_err(cp->err, cp->errlen, "cannot open the target: %s", e);
    return rc;
  }
  if ((rc = hg_store_migrate(cp->dst, e, sizeof(e))) != 0) {
    hg_set_err(cp->err, cp->errlen, "cannot migrate the target %s: %s", cp->target, e);
    return rc;
  }
  cp->rep->to_version = hg_store_schema_version(HG_DB_PG);
  /* The target is checked before the source is touched: a refused copy
   * leaves the SQLite file as it was. */
  if ((rc = hg_db_exec(cp->dst, "BEGIN", "copy: begin")) != 0 ||
      (rc = hg_db_exec(cp->dst, lock_sql, "copy: lock")) != 0) {
    hg_set_err(cp->err, cp->errlen, "cannot lock the target's tables (is a gateway running on it?): %s",
               hg_db_errmsg(cp->dst));
    return rc;
  }
  if ((rc = check_empty(cp)) != 0 || (rc = open_source(cp, from)) != 0) return rc;
  if ((rc = hg_db_exec(cp->src, "BEGIN", "copy: begin read")) != 0) {
    hg_set_err(cp->err, cp->errlen, "cannot start reading %s: %s", from, hg_db_errmsg(cp->src));
    return rc;
  }
  for (int i = 0; i < HG_COPY_TABLES; i++)
    if ((rc = copy_table(cp, &tables[i], &cp->rep->rows[i])) != 0) return rc;
  if ((rc = verify(cp)) != 0 || (rc = move_sequences(cp)) != 0) return rc;
  if ((rc = hg_db_exec(cp->dst, "COMMIT", "copy: commit")) != 0) {
    hg_set_err(cp->err, cp->errlen, "committing the copy failed: %s (nothing copied)", hg_db_errmsg(cp->dst));
    return rc;
  }
  return 0;
}

int hg_store_copy(const char *from, const char *to, hg_copy_progress_fn progress, void *ud, hg_copy_report_t *rep,
                  char *err, size_t errlen) {
  memset(rep, 0, sizeof(*rep));
  for (int i = 0; i < HG_COPY_TABLES; i++) rep->tables[i] = tables[i].name;
  if (err != NULL && errlen > 0) err[0] = '\0';
  copy_t cp = {.progress = progress, .ud = ud, .rep = rep, .err = err, .errlen = errlen};
  hg_db_redact(to != NULL ? to : "", cp.target, sizeof(cp.target));
  if (from == NULL || from[0] == '\0' || hg_db_engine_of(from) != HG_DB_SQLITE) {
    hg_set_err(err, errlen, "--from must be the path of a SQLite database file");
    return HG_EINVAL;
  }
  if (to == NULL || hg_db_engine_of(to) != HG_DB_PG) {
    hg_set_err(err, errlen, "--to must be a PostgreSQL URI (postgresql://...), not '%s'", cp.target);
    return HG_EINVAL;
  }
  /* hg_db_open would create a missing file (and its folders): a typo must
   * not copy an empty, new store. */
  struct stat sb;
  if (stat(from, &sb) != 0) {
    int e = errno;
    hg_set_err(err, errlen, "%s: %s", from, e == ENOENT ? "no such SQLite database file" : strerror(e));
    return HG_ENOTFOUND;
  }
  if (!S_ISREG(sb.st_mode)) {
    hg_set_err(err, errlen, "%s: not a SQLite database file", from);
    return HG_EINVAL;
  }
  /* Events a crashed gateway answered from its intake log (the directory
   * beside the file) but had not stored yet are stored first, as the
   * gateway's next start would: a PostgreSQL node has no such log. */
  char intake[4096];
  uint64_t seen = 0, stored = 0;
  if (snprintf(intake, sizeof(intake), "%s-intake", from) < (int)sizeof(intake)) {
    int r = hg_events_recover(intake, from, &seen, &stored, err, errlen);
    if (r != 0) return r;
  }
  int rc = run_copy(&cp, from, to);
  /* Whatever failed, nothing half-copied stays: the transaction goes. */
  if (rc != 0 && cp.dst != NULL && hg_db_in_transaction(cp.dst)) hg_db_exec(cp.dst, "ROLLBACK", "copy: rollback");
  if (cp.src != NULL && hg_db_in_transaction(cp.src)) hg_db_exec(cp.src, "ROLLBACK", "copy: end read");
  hg_db_close(cp.src);
  hg_db_close(cp.dst);
  return rc;
}
