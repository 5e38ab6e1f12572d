/* db_sqlite.c: db.h on SQLite.
 *
 * A thin layer: each call is one sqlite3 call. What it adds is the
 * statement cache of the store thread's connection (HG_DB_CACHE): parsing
 * and planning a statement costs several times what running it does for
 * the small inserts and lookups of a job, so each hot statement stays
 * prepared, keyed by the address of its SQL literal. The cache belongs to
 * the connection, which one thread uses at a time, so it takes no lock.
 *
 * Opening creates the file private to its owner, switches it to WAL and
 * sets the pragmas every store connection runs with (the store thread's
 * connection then adds its own, store.c). */
#include "store/db_internal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include "base/common.h"
#include "base/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAX 64

typedef struct sq_stmt {
  struct hg_stmt base;
  sqlite3_stmt *st;
  const char *sql; /* the cache key, or NULL when not cached */
  int in_use;      /* cached: handed out and not yet released */
} sq_stmt_t;

typedef struct sq_db {
  struct hg_db base;
  sqlite3 *db;
  size_t n_cached;
  sq_stmt_t *cache[CACHE_MAX];
} sq_db_t;

static int errcode(int rc) {
  switch (rc) {
  case SQLITE_CONSTRAINT_UNIQUE:
  case SQLITE_CONSTRAINT_PRIMARYKEY: return HG_EEXIST;
  case SQLITE_CONSTRAINT_FOREIGNKEY: return HG_ENOTFOUND;
  default: break;
  }
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE: return 0;
  case SQLITE_NOMEM: return HG_ENOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return HG_EBUSY;
  case SQLITE_CONSTRAINT: return HG_EINVAL; /* NOT NULL, CHECK: bad input */
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return HG_ECORRUPT;
  case SQLITE_TOOBIG: return HG_ETOOBIG;
  case SQLITE_FULL: return HG_ENOSPC;
  case SQLITE_MISUSE:
  case SQLITE_RANGE:
  case SQLITE_MISMATCH: return HG_EINVAL;
  default: return HG_EIO;
  }
}

static sqlite3 *conn(hg_db_t *db) { return ((sq_db_t *)db)->db; }
static sqlite3_stmt *raw(hg_stmt_t *st) { return ((sq_stmt_t *)st)->st; }

static void sq_close(hg_db_t *db) {
  sq_db_t *d = (sq_db_t *)db;
  for (size_t i = 0; i < d->n_cached; i++) {
    sqlite3_finalize(d->cache[i]->st);
    free(d->cache[i]);
  }
  /* A caller that still holds a statement leaks it; closing lazily keeps
   * the file consistent. */
  if (sqlite3_close(d->db) != SQLITE_OK) sqlite3_close_v2(d->db);
  hg_db__clear(db);
  free(d);
}

static int new_stmt(sq_db_t *d, const char *sql, int persistent, sq_stmt_t **out) {
  sq_stmt_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return HG_ENOMEM;
  int rc = sqlite3_prepare_v3(d->db, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &s->st, NULL);
  if (rc != SQLITE_OK) {
    free(s);
    return errcode(rc);
  }
  s->base.db = &d->base;
  *out = s;
  return 0;
}

static int sq_prepare(hg_db_t *db, const char *sql, hg_stmt_t **out) {
  sq_db_t *d = (sq_db_t *)db;
  sq_stmt_t *s = NULL;
  int cache = (db->flags & HG_DB_CACHE) != 0;
  if (cache) {
    for (size_t i = 0; i < d->n_cached; i++) {
      if (d->cache[i]->sql != sql) continue;
      /* In use further up the stack: that caller keeps it, this one gets
       * its own (finalized on release). */
      if (d->cache[i]->in_use) break;
      d->cache[i]->in_use = 1;
      *out = &d->cache[i]->base;
      return 0;
    }
  }
  int keep = cache && d->n_cached < CACHE_MAX;
  for (size_t i = 0; keep && i < d->n_cached; i++) keep = d->cache[i]->sql != sql;
  int rc = new_stmt(d, sql, keep, &s);
  if (rc != 0) return rc;
  if (keep) {
    s->sql = sql;
    s->in_use = 1;
    d->cache[d->n_cached++] = s;
  }
  *out = &s->base;
  return 0;
}

static void sq_release(hg_stmt_t *st) {
  sq_stmt_t *s = (sq_stmt_t *)st;
  if (s->sql != NULL) {
    sqlite3_reset(s->st);
    sqlite3_clear_bindings(s->st);
    s->in_use = 0;
    return;
  }
  sqlite3_finalize(s->st);
  free(s);
}

static void sq_reset(hg_stmt_t *st) { sqlite3_reset(raw(st)); }

static int sq_bind_int64(hg_stmt_t *st, int i, int64_t v) { return errcode(sqlite3_bind_int64(raw(st), i, v)); }

static int sq_bind_text(hg_stmt_t *st, int i, const char *s, size_t len) {
  if (len > INT32_MAX) return HG_ETOOBIG;
  return errcode(sqlite3_bind_text(raw(st), i, s, (int)len, SQLITE_STATIC));
}

static int sq_bind_blob(hg_stmt_t *st, int i, const void *p, size_t len) {
  if (len > INT32_MAX) return HG_ETOOBIG;
  return errcode(sqlite3_bind_blob(raw(st), i, p, (int)len, SQLITE_STATIC));
}

static int sq_bind_null(hg_stmt_t *st, int i) { return errcode(sqlite3_bind_null(raw(st), i)); }

static int sq_step(hg_stmt_t *st) {
  int rc = sqlite3_step(raw(st));
  if (rc == SQLITE_ROW) return HG_DB_ROW;
  if (rc == SQLITE_DONE) return HG_DB_DONE;
  int e = errcode(rc);
  return e != 0 ? e : HG_EIO;
}

static int sq_defer(hg_stmt_t *st) {
  int rc = sq_step(st);
  sqlite3_reset(raw(st));
  return rc < 0 ? rc : 0;
}

static int sq_flush(hg_db_t *db) {
  (void)db;
  return 0;
}

static int sq_nextval(hg_db_t *db, const char *table, int64_t *out) {
  (void)db, (void)table, (void)out;
  return HG_ESTATE;
}

static int sq_column_is_null(hg_stmt_t *st, int col) { return sqlite3_column_type(raw(st), col) == SQLITE_NULL; }
static int64_t sq_column_int64(hg_stmt_t *st, int col) { return sqlite3_column_int64(raw(st), col); }
static const char *sq_column_text(hg_stmt_t *st, int col) {
  return (const char *)sqlite3_column_text(raw(st), col);
}
static const void *sq_column_blob(hg_stmt_t *st, int col) { return sqlite3_column_blob(raw(st), col); }
static size_t sq_column_bytes(hg_stmt_t *st, int col) { return (size_t)sqlite3_column_bytes(raw(st), col); }
static int64_t sq_changes(hg_db_t *db) { return sqlite3_changes64(conn(db)); }

static int sq_exec(hg_db_t *db, const char *sql) { return errcode(sqlite3_exec(conn(db), sql, NULL, NULL, NULL)); }
static int sq_in_transaction(hg_db_t *db) { return !sqlite3_get_autocommit(conn(db)); }
static const char *sq_errmsg(hg_db_t *db) { return sqlite3_errmsg(conn(db)); }
static void *sq_native(hg_db_t *db) { return conn(db); }

static const hg_db_ops_t sq_ops = {
    .engine = HG_DB_SQLITE,
    .close = sq_close,
    .prepare = sq_prepare,
    .release = sq_release,
    .reset = sq_reset,
    .bind_int64 = sq_bind_int64,
    .bind_text = sq_bind_text,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .defer = sq_defer,
    .flush = sq_flush,
    .nextval = sq_nextval,
    .column_is_null = sq_column_is_null,
    .column_int64 = sq_column_int64,
    .column_text = sq_column_text,
    .column_blob = sq_column_blob,
    .column_bytes = sq_column_bytes,
    .changes = sq_changes,
    .exec = sq_exec,
    .in_transaction = sq_in_transaction,
    .errmsg = sq_errmsg,
    .native = sq_native,
};

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

/* Switches to WAL, which the store's concurrency needs. SQLite answers
 * with the mode in force, which stays "delete" on file systems without
 * shared memory. */
static int set_wal(sqlite3 *db, const char *path, char *err, size_t errlen) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    hg_set_err(err, errlen, "cannot set journal_mode=WAL on %s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return errcode(rc) != 0 ? errcode(rc) : HG_EIO;
  }
  const char *mode = (const char *)sqlite3_column_text(st, 0);
  int ok = mode != NULL && strcmp(mode, "wal") == 0;
  if (!ok) hg_set_err(err, errlen, "cannot enable WAL on %s (journal mode stays %s)", path, mode ? mode : "?");
  sqlite3_finalize(st);
  return ok ? 0 : HG_EIO;
}

int hg_db__sqlite_open(hg_db_t **out, const char *path, unsigned flags, char *err, size_t errlen) {
  sq_db_t *d = calloc(1, sizeof(*d));
  int rc;
  *out = NULL;
  if (d == NULL || hg_db__init(&d->base, &sq_ops, path, flags) != 0) {
    free(d);
    hg_set_err(err, errlen, "out of memory");
    return HG_ENOMEM;
  }
  int readonly = (flags & HG_DB_READONLY) != 0;
  if (!readonly) {
    if ((rc = make_parent_dirs(path, err, errlen)) != 0) goto fail;
    /* The file holds webhook signing secrets: create it readable by its
     * owner only (SQLite gives the -wal and -shm files the same mode).
     * O_EXCL: never open and close an existing database here, as closing
     * any descriptor of a file drops every POSIX lock this process holds
     * on it, SQLite's included. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
  }
  /* One thread at a time uses a connection: no per-call mutex. */
  int src = sqlite3_open_v2(path, &d->db,
                            (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                                SQLITE_OPEN_NOMUTEX,
                            NULL);
  if (src != SQLITE_OK) {
    hg_set_err(err, errlen, "cannot open database %s: %s", path, d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(src));
    rc = errcode(src) != 0 ? errcode(src) : HG_EIO;
    goto fail;
  }
  sqlite3_extended_result_codes(d->db, 1);
  /* The busy timeout first: switching to WAL needs the lock that another
   * process starting at the same time may hold. */
  sqlite3_busy_timeout(d->db, 5000);
  if (!readonly && (rc = set_wal(d->db, path, err, errlen)) != 0) goto fail;
  if ((rc = sq_exec(&d->base, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")) != 0) {
    hg_set_err(err, errlen, "cannot set pragmas on %s: %s", path, sqlite3_errmsg(d->db));
    goto fail;
  }
  *out = &d->base;
  return 0;
fail:
  sq_close(&d->base);
  return rc;
}
