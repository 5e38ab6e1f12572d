/* migrate.c: opening a connection to the store's database and bringing
 * its schema up to date.
 *
 * hg_store_open_sync creates the file private to its owner, switches it to
 * WAL, sets the pragmas every connection runs with (hg_store_open, in
 * store.c, then adds the store connection's own) and applies the migrations
 * of schema.c, each in a transaction of its own under the write lock, with
 * foreign keys off and checked by hand. schema.c holds what the migrations
 * are, append-only; this file, how they are applied. */
#include "store/store_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/common.h"
#include "base/fs.h"
#include "base/log.h"
#include "store/schema.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* mkdir -p of the directory part of path (private: the database holds
 * webhook secrets). */
static int make_parent_dirs(const char *path, char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL || slash == path) return 0;
  char dir[4096], failed[4096] = "";
  if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path) >= (int)sizeof(dir)) {
    hg_set_err(err, errlen, "cannot create directory for %s: %s", path, strerror(ENAMETOOLONG));
    return HG_EIO;
  }
  int rc = hg_fs_mkdirs(dir, 0, failed, sizeof(failed));
  if (rc == ENOTDIR) hg_set_err(err, errlen, "%s is not a directory", failed);
  else if (rc != 0) hg_set_err(err, errlen, "cannot create directory %s: %s", failed[0] ? failed : dir, strerror(rc));
  return rc == 0 ? 0 : HG_EIO;
}

static int user_version(sqlite3 *db, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *out = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  int res = rc == SQLITE_OK ? 0 : hg_store_fail(db, rc, "read user_version");
  sqlite3_finalize(st);
  return res;
}

int hg_store_schema_version(void) { return hg_schema_version; }

/* Sets PRAGMA foreign_keys (outside a transaction only). */
static int set_foreign_keys(sqlite3 *db, int on) {
  return hg_store__exec(db, on ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF", "migrate: foreign_keys");
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

int hg_store_migrate(sqlite3 *db, char *err, size_t errlen) {
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
    if (hg_store__exec(db, "BEGIN IMMEDIATE", "migrate: begin") != 0) {
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
      hg_store__exec(db, "ROLLBACK", "migrate: end");
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
      hg_store_fail(db, rc, "migrate");
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
    if ((rc = hg_store__exec(db, sql, "migrate: set user_version")) != 0 ||
        (rc = hg_store__exec(db, "COMMIT", "migrate: commit")) != 0) {
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

int hg_store_open_sync(sqlite3 **out, const char *path, char *err, size_t errlen) {
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int rc;
  *out = NULL;
  if (err != NULL && errlen > 0) err[0] = '\0';
  if ((rc = make_parent_dirs(path, err, errlen)) != 0) goto fail;
  /* The file holds webhook signing secrets: create it readable by its
   * owner only (SQLite gives the -wal and -shm files the same mode).
   * O_EXCL: never open and close an existing database here, as closing any
   * descriptor of a file drops every POSIX lock this process holds on it,
   * SQLite's included. */
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  /* One thread at a time uses this connection (the loop thread while
   * migrating, then only the store thread): no per-call mutex. */
  int src = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (src != SQLITE_OK) {
    hg_set_err(err, errlen, "cannot open database %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
    rc = hg_store_fail(db, src, "open");
    goto fail;
  }
  sqlite3_extended_result_codes(db, 1);
  /* The busy timeout first: switching to WAL needs the lock that another
   * process starting at the same time may hold. */
  sqlite3_busy_timeout(db, 5000);
  src = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (src == SQLITE_OK) src = sqlite3_step(st);
  if (src != SQLITE_ROW) {
    hg_set_err(err, errlen, "cannot set journal_mode=WAL on %s: %s", path, sqlite3_errmsg(db));
    rc = hg_store_fail(db, src, "journal_mode");
    goto fail;
  }
  /* SQLite answers with the mode in force, which stays "delete" on file
   * systems without shared memory; the store's concurrency needs WAL. */
  const char *mode = (const char *)sqlite3_column_text(st, 0);
  if (mode == NULL || strcmp(mode, "wal") != 0) {
    hg_set_err(err, errlen, "cannot enable WAL on %s (journal mode stays %s)", path, mode ? mode : "?");
    rc = HG_EIO;
    goto fail;
  }
  sqlite3_finalize(st);
  st = NULL;
  if (hg_store__exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", "pragmas") != 0) {
    hg_set_err(err, errlen, "cannot set pragmas on %s: %s", path, sqlite3_errmsg(db));
    rc = HG_EIO;
    goto fail;
  }
  if ((rc = hg_store_migrate(db, err, errlen)) != 0) goto fail;
  *out = db;
  return 0;
fail:
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rc;
}
