/* migrate.c: bringing a store's schema up to date, on either engine.
 *
 * schema.c holds what the migrations are, append-only, one list per
 * engine; this file, how they are applied.
 *
 * SQLite: the version is PRAGMA user_version; each migration runs in a
 * transaction of its own under the write lock, with foreign keys off and
 * checked by hand (SQLite's procedure for rebuilding a table).
 *
 * PostgreSQL: the version is the one row of hookgate_schema; every pending
 * migration runs in one transaction (DDL is transactional there) under an
 * advisory lock, so that nodes starting together on one database apply
 * each migration once and the others wait, then find nothing to do. */
#include "store/store_internal.h"

#include <sqlite3.h>

#include "base/common.h"
#include "base/log.h"
#include "store/schema.h"

#include <stdio.h>
#include <string.h>

/* ---- SQLite ---- */

static int sq_exec(sqlite3 *db, const char *sql, const char *op) {
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  if (rc == SQLITE_OK) return 0;
  hg_log(HG_LOG_ERROR, "sqlite error", "op", op, "error", sqlite3_errmsg(db), NULL);
  return HG_EIO;
}

static int user_version(sqlite3 *db, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *out = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  int res = rc == SQLITE_OK ? 0 : HG_EIO;
  sqlite3_finalize(st);
  return res;
}

/* Sets PRAGMA foreign_keys (outside a transaction only). */
static int set_foreign_keys(sqlite3 *db, int on) {
  return sq_exec(db, on ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF", "migrate: foreign_keys");
}

static int migrate(sqlite3 *db, char *err, size_t errlen);

/* PRAGMA foreign_keys: 0 or 1, or -1 if it cannot be read. */
static int foreign_keys(sqlite3 *db) {
  sqlite3_stmt *st = NULL;
  int on = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA foreign_keys", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    on = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return on;
}

static int sq_migrate(sqlite3 *db, char *err, size_t errlen) {
  /* Migrations run with foreign keys off, as SQLite's procedure for
   * rebuilding a table asks: with them on, dropping a referenced table
   * deletes (ON DELETE CASCADE) every row that references it, which no
   * later check would notice. So off it must be, read back (the pragma is
   * silently ignored inside a transaction); each migration checks the keys
   * itself before it commits. */
  int was = foreign_keys(db);
  if (set_foreign_keys(db, 0) != 0 || foreign_keys(db) != 0) {
    hg_set_err(err, errlen, "cannot turn foreign keys off to migrate: %s", sqlite3_errmsg(db));
    return HG_EIO;
  }
  int r = migrate(db, err, errlen);
  /* Unreadable before: the store always runs with them on. */
  if (was != 0 && (set_foreign_keys(db, 1) != 0 || foreign_keys(db) != 1) && r == 0) {
    hg_set_err(err, errlen, "cannot turn foreign keys back on after migrating: %s", sqlite3_errmsg(db));
    r = HG_EIO;
  }
  return r;
}

/* How many rows reference a missing row (PRAGMA foreign_key_check), or
 * -1 with the reason in err. The last such row's tables go to child and
 * parent. */
static int64_t dangling_rows(sqlite3 *db, char child[64], char parent[64]) {
  sqlite3_stmt *st = NULL;
  int64_t n = 0;
  int rc = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL);
  while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    n++;
    snprintf(child, 64, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(parent, 64, "%s", (const char *)sqlite3_column_text(st, 2));
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? n : -1;
}

static int migrate(sqlite3 *db, char *err, size_t errlen) {
  /* One migration per transaction, re-reading the version under the write
   * lock each time, so two processes starting together cannot both apply
   * the same migration. */
  for (;;) {
    int v = 0, rc;
    char sql[64];
    if (sq_exec(db, "BEGIN IMMEDIATE", "migrate: begin") != 0) {
      hg_set_err(err, errlen, "cannot lock the database for migration: %s", sqlite3_errmsg(db));
      return HG_EIO;
    }
    if ((rc = user_version(db, &v)) != 0) {
      hg_set_err(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db));
      goto fail;
    }
    if (v > hg_schema_version || v < 0) {
      hg_set_err(err, errlen,
              "database schema version %d is newer than this binary (supports %d): upgrade hookgate", v,
              hg_schema_version);
      rc = HG_ECORRUPT;
      goto fail;
    }
    if (v == hg_schema_version) {
      sq_exec(db, "ROLLBACK", "migrate: end");
      return 0;
    }
    /* Rows left dangling before (written with foreign keys off, say by
     * hand) are not this migration's doing: only new ones fail it. */
    char child[64] = "", parent[64] = "";
    int64_t dangling = dangling_rows(db, child, parent);
    if (dangling < 0) {
      hg_set_err(err, errlen, "migration %d failed: cannot check foreign keys: %s", v + 1, sqlite3_errmsg(db));
      rc = HG_EIO;
      goto fail;
    }
    if (dangling > 0)
      hg_log(HG_LOG_WARN, "the database has rows referencing missing rows; migrating all the same", "table", child,
             "references", parent, NULL);
    rc = sqlite3_exec(db, hg_schema_migrations[v], NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      hg_set_err(err, errlen, "migration %d failed: %s", v + 1, sqlite3_errmsg(db));
      hg_log(HG_LOG_ERROR, "migration failed", "error", sqlite3_errmsg(db), NULL);
      rc = HG_EIO;
      goto fail;
    }
    int64_t after = dangling_rows(db, child, parent);
    if (after < 0 || after > dangling) {
      if (after < 0)
        hg_set_err(err, errlen, "migration %d failed: cannot check foreign keys: %s", v + 1, sqlite3_errmsg(db));
      else
        hg_set_err(err, errlen, "migration %d failed: it would leave rows of %s referencing missing rows of %s", v + 1,
                   child, parent);
      rc = HG_EIO;
      goto fail;
    }
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
    if ((rc = sq_exec(db, sql, "migrate: set user_version")) != 0 ||
        (rc = sq_exec(db, "COMMIT", "migrate: commit")) != 0) {
      hg_set_err(err, errlen, "migration %d failed: %s", v + 1, sqlite3_errmsg(db));
      rc = HG_EIO;
      goto fail;
    }
    char vbuf[16];
    snprintf(vbuf, sizeof(vbuf), "%d", v + 1);
    hg_log(HG_LOG_INFO, "migration applied", "version", vbuf, NULL);
    continue;
  fail:
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
}

/* ---- PostgreSQL ---- */

/* Any constant: the key of the advisory lock migrations hold. */
#define PG_MIGRATE_LOCK "7301460520197154657"

static int pg_version(hg_db_t *db, int *out) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "SELECT version FROM hookgate_schema", &st);
  if (rc == 0) rc = hg_db_step(st);
  *out = rc == HG_DB_ROW ? (int)hg_db_column_int64(st, 0) : 0;
  hg_db_release(st);
  return rc < 0 ? rc : 0;
}

static int pg_migrate(hg_db_t *db, char *err, size_t errlen) {
  int v = 0, rc;
  if ((rc = hg_db_exec(db,
                       /* Wait as long as another node's migration takes (the
                        * session's lock_timeout is for rows, db_pg.c). */
                       "BEGIN; SET LOCAL lock_timeout = 0; SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ");"
                       "CREATE TABLE IF NOT EXISTS hookgate_schema (version BIGINT NOT NULL);"
                       "INSERT INTO hookgate_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM hookgate_schema);",
                       "migrate: begin")) != 0) {
    hg_set_err(err, errlen, "cannot lock the database for migration: %s", hg_db_errmsg(db));
    goto fail;
  }
  if ((rc = pg_version(db, &v)) != 0) {
    hg_set_err(err, errlen, "cannot read the schema version: %s", hg_db_errmsg(db));
    goto fail;
  }
  if (v > hg_schema_pg_version || v < 0) {
    hg_set_err(err, errlen, "database schema version %d is newer than this binary (supports %d): upgrade hookgate", v,
               hg_schema_pg_version);
    rc = HG_ECORRUPT;
    goto fail;
  }
  for (int i = v; i < hg_schema_pg_version; i++) {
    if ((rc = hg_db_exec(db, hg_schema_pg_migrations[i], "migrate")) != 0) {
      hg_set_err(err, errlen, "migration %d failed: %s", i + 1, hg_db_errmsg(db));
      goto fail;
    }
  }
  char sql[64];
  snprintf(sql, sizeof(sql), "UPDATE hookgate_schema SET version = %d", hg_schema_pg_version);
  if ((v < hg_schema_pg_version && (rc = hg_db_exec(db, sql, "migrate: set version")) != 0) ||
      (rc = hg_db_exec(db, "COMMIT", "migrate: commit")) != 0) {
    hg_set_err(err, errlen, "migrating from version %d failed: %s", v, hg_db_errmsg(db));
    goto fail;
  }
  if (v < hg_schema_pg_version) {
    char vbuf[16];
    snprintf(vbuf, sizeof(vbuf), "%d", hg_schema_pg_version);
    hg_log(HG_LOG_INFO, "migrations applied", "version", vbuf, "engine", "postgresql", NULL);
  }
  return 0;
fail:
  if (hg_db_in_transaction(db)) hg_db_exec(db, "ROLLBACK", "migrate: rollback");
  return rc == HG_EUNAVAIL || rc == HG_ECORRUPT ? rc : HG_EIO;
}

/* ---- Both ---- */

int hg_store_schema_version(hg_db_engine_t engine) {
  return engine == HG_DB_PG ? hg_schema_pg_version : hg_schema_version;
}

int hg_store_migrate(hg_db_t *db, char *err, size_t errlen) {
  if (hg_db_engine(db) == HG_DB_PG) return pg_migrate(db, err, errlen);
  return sq_migrate(hg_db_native(db), err, errlen);
}

int hg_store_open_sync(hg_db_t **out, const char *address, char *err, size_t errlen) {
  hg_db_t *db = NULL;
  *out = NULL;
  if (err != NULL && errlen > 0) err[0] = '\0';
  int rc = hg_db_open(&db, address, 0, err, errlen);
  if (rc == 0 && (rc = hg_store_migrate(db, err, errlen)) != 0) {
    hg_db_close(db);
    db = NULL;
  }
  *out = db;
  return rc;
}
