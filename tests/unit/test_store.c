#define _GNU_SOURCE /* nftw */
#include "base/common.h"
#include "hgtest.h"
#include "base/log.h"
#include "store/schema.h"
#include "store/store.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static uv_thread_t loop_thread;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* The first column of the first row of sql as an int, or -1. */
static int query_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* This file tests the SQLite store's own machinery (user_version, the
 * write-ahead log), so it reads through sqlite3 itself: hg_store_open_sync's
 * connection, kept here so that close_db closes it as a whole. */
static hg_db_t *opened[8];

static int open_sync(sqlite3 **out, const char *path, char *err, size_t errlen) {
  hg_db_t *h = NULL;
  int rc = hg_store_open_sync(&h, path, err, errlen);
  *out = h != NULL ? hg_db_native(h) : NULL;
  for (size_t i = 0; h != NULL && i < sizeof(opened) / sizeof(opened[0]); i++) {
    if (opened[i] == NULL) {
      opened[i] = h;
      break;
    }
  }
  return rc;
}

static void close_db(sqlite3 *db) {
  for (size_t i = 0; i < sizeof(opened) / sizeof(opened[0]); i++) {
    if (opened[i] != NULL && hg_db_native(opened[i]) == db) {
      hg_db_close(opened[i]);
      opened[i] = NULL;
      return;
    }
  }
  sqlite3_close(db);
}

/* Closes db and opens path again through the store, which migrates it. */
static int reopen(sqlite3 **db, const char *path, char *err, size_t errlen) {
  close_db(*db);
  return open_sync(db, path, err, errlen);
}

static void db_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s/hg.db", dir, name); }

/* A database with the schema and a scratch table t for the jobs below. */
static void make_db(const char *path) {
  sqlite3 *db = NULL;
  char err[256];
  CHECK_EQ_INT(open_sync(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(sqlite3_exec(db, "CREATE TABLE t (id INTEGER PRIMARY KEY)", NULL, NULL, NULL), SQLITE_OK);
  close_db(db);
}

/* A store on loop (initialised here) over a fresh database made by make_db;
 * path (128 bytes) gets its file. */
static hg_store_t *open_fresh(uv_loop_t *loop, const char *name, char *path) {
  char err[256];
  db_path(path, 128, name);
  make_db(path);
  uv_loop_init(loop);
  hg_store_t *s = NULL;
  CHECK_EQ_INT(hg_store_open(&s, loop, path, err, sizeof(err)), 0);
  return s;
}

/* ---- Migrations ---- */

static void migrations(void) {
  char path[128], err[256];
  sqlite3 *db = NULL;
  db_path(path, sizeof(path), "a/b/mig"); /* parent directories are created */
  CHECK_EQ_INT(open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return;
  CHECK_EQ_INT(hg_store_schema_version(HG_DB_SQLITE), 12);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('webhooks','webhook_secrets','api_keys')"), 3);
  CHECK_EQ_INT(query_int(db, "PRAGMA foreign_keys"), 1);
  CHECK_EQ_INT(query_int(db, "PRAGMA synchronous"), 2); /* FULL */
  CHECK_EQ_INT(query_int(db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
  /* A row survives reopening, and reopening applies nothing twice. */
  CHECK_EQ_INT(sqlite3_exec(db, "INSERT INTO webhooks (id, url, events, created_at, updated_at) "
                                "VALUES ('wh_1', 'https://example.com', '[]', 1, 1)", NULL, NULL, NULL),
               SQLITE_OK);
  close_db(db);
  db = NULL;
  CHECK_EQ_INT(open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return;
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhooks"), 1);
  CHECK_EQ_INT(reopen(&db, path, err, sizeof(err)), 0);
  close_db(db);
}

/* A database as version v of the schema left it: migrations 1 to v run
 * by hand on a new file (its directory made by a full open first), on a
 * connection with foreign keys off. path (128 bytes) gets its file. */
static sqlite3 *db_at_version(const char *name, int v, char *path) {
  char err[256];
  sqlite3 *db = NULL;
  db_path(path, 128, name);
  CHECK_EQ_INT(open_sync(&db, path, err, sizeof(err)), 0);
  close_db(db);
  remove(path);
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  for (int i = 0; i < v; i++) CHECK_EQ_INT(sqlite3_exec(db, hg_schema_migrations[i], NULL, NULL, NULL), SQLITE_OK);
  char sql[40];
  snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
  CHECK_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  return db;
}

/* Migration 5 moves the per-event delivery count onto the event row: a
 * database written by version 4 keeps answering idempotent replays with
 * the right count. */
static void migration_5_counts(void) {
  char path[128], err[256];
  sqlite3 *db = db_at_version("m5", 4, path);
  CHECK_EQ_INT(sqlite3_exec(db,
                            "INSERT INTO webhooks (id, url, events, created_at, updated_at) "
                            "  VALUES ('wh_1', 'https://example.com', '[]', 1, 1);"
                            "INSERT INTO events (seq, id, type, payload, created_at) VALUES (1, 'evt_1', 'a.b', '{}', 1);"
                            "INSERT INTO events (seq, id, type, payload, created_at) VALUES (2, 'evt_2', 'a.b', '{}', 1);"
                            "INSERT INTO deliveries (id, webhook_id, event_seq, status, created_at, updated_at) "
                            "  VALUES ('del_1', 'wh_1', 1, 'pending', 1, 1), ('del_2', 'wh_1', 1, 'pending', 1, 1);",
                            NULL, NULL, NULL),
               SQLITE_OK);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'deliveries_by_event'"), 1);
  CHECK_EQ_INT(reopen(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "SELECT deliveries FROM events WHERE id = 'evt_1'"), 2);
  CHECK_EQ_INT(query_int(db, "SELECT deliveries FROM events WHERE id = 'evt_2'"), 0);
  /* Migration 5 dropped it; migration 10 made it again (the purge and
   * recovery need it). */
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'deliveries_by_event'"), 1);
  close_db(db);
}

/* Migration 6 rebuilds the deliveries table without its table-wide UNIQUE
 * index on id: every row, its seq and the attempts that reference it
 * survive; ids stay unique within a webhook; foreign keys are on again
 * and still cascade. */
static void migration_6_rebuild(void) {
  char path[128], err[256];
  sqlite3 *db = db_at_version("m6", 5, path);
  CHECK_EQ_INT(sqlite3_exec(db,
                            "PRAGMA foreign_keys = ON;"
                            "INSERT INTO webhooks (id, url, events, created_at, updated_at) "
                            "  VALUES ('wh_1', 'https://example.com', '[]', 1, 1), ('wh_2', 'https://example.com', '[]', 1, 1);"
                            "INSERT INTO events (seq, id, type, payload, created_at) VALUES (1, 'evt_1', 'a.b', '{}', 1);"
                            "INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, attempts, created_at, updated_at) "
                            "  VALUES (7, 'del_1', 'wh_1', 1, 'failed', 2, 1, 2), (9, 'del_2', 'wh_2', 1, 'pending', 0, 1, 1);"
                            "INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code) "
                            "  VALUES ('att_1', 7, 1, 1, 5, 500), ('att_2', 7, 2, 2, 5, 503);",
                            NULL, NULL, NULL),
               SQLITE_OK);
  CHECK_EQ_INT(reopen(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "PRAGMA foreign_keys"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM attempts WHERE delivery_seq = 7"), 2);
  CHECK_EQ_INT(query_int(db, "SELECT seq FROM deliveries WHERE id = 'del_1' AND webhook_id = 'wh_1'"), 7);
  CHECK_EQ_INT(query_int(db, "SELECT attempts FROM deliveries WHERE seq = 7"), 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'deliveries_new'"), 0);
  /* deliveries_by_webhook, migration 10's deliveries_by_event and 12's deliveries_line. */
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'deliveries' AND type = 'index'"), 3);
  /* Unique within a webhook, not across them. */
  CHECK(sqlite3_exec(db, "INSERT INTO deliveries (id, webhook_id, event_seq, status, created_at, updated_at) "
                         "VALUES ('del_1', 'wh_1', 1, 'pending', 1, 1)", NULL, NULL, NULL) != SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db, "INSERT INTO deliveries (id, webhook_id, event_seq, status, created_at, updated_at) "
                                "VALUES ('del_1', 'wh_2', 1, 'pending', 1, 1)", NULL, NULL, NULL),
               SQLITE_OK);
  /* Still referenced and still cascading. */
  CHECK(sqlite3_exec(db, "INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code) "
                         "VALUES ('att_3', 999, 1, 1, 1, 200)", NULL, NULL, NULL) != SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db, "DELETE FROM webhooks WHERE id = 'wh_1'", NULL, NULL, NULL), SQLITE_OK);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM attempts"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries"), 2);
  close_db(db);
}

/* Migration 7 (signature schemes): webhooks written before it are v1
 * webhooks, their secrets have no public key, and both stay as they were. */
static void migration_7_schemes(void) {
  char path[128], err[256];
  sqlite3 *db = db_at_version("m7", 6, path);
  CHECK_EQ_INT(
      sqlite3_exec(db,
                   "INSERT INTO webhooks (id, url, events, created_at, updated_at) "
                   "  VALUES ('wh_1', 'https://example.com', '[]', 1, 1);"
                   "INSERT INTO webhook_secrets (webhook_id, secret, created_at) VALUES ('wh_1', 'whsec_x', 1);",
                   NULL, NULL, NULL),
      SQLITE_OK);
  CHECK_EQ_INT(reopen(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhooks WHERE id = 'wh_1' AND signature_scheme = 'v1'"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhook_secrets WHERE secret = 'whsec_x' AND public_key IS NULL"),
               1);
  close_db(db);
}

/* Migration 8 (request headers): attempts recorded before it have none
 * (NULL, which the API answers as null); the rest of the row stays. */
static void migration_8_request_headers(void) {
  char path[128], err[256];
  sqlite3 *db = db_at_version("m8", 7, path);
  CHECK_EQ_INT(sqlite3_exec(db,
                            "INSERT INTO webhooks (id, url, events, created_at, updated_at) "
                            "  VALUES ('wh_1', 'https://example.com', '[]', 1, 1);"
                            "INSERT INTO events (seq, id, type, payload, created_at) VALUES (1, 'evt_1', 'a.b', '{}', 1);"
                            "INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, created_at, updated_at) "
                            "  VALUES (7, 'del_1', 'wh_1', 1, 'failed', 1, 1);"
                            "INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code) "
                            "  VALUES ('att_1', 7, 1, 1, 5, 500);",
                            NULL, NULL, NULL),
               SQLITE_OK);
  CHECK_EQ_INT(reopen(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM attempts WHERE id = 'att_1' AND status_code = 500 "
                             "AND request_headers IS NULL"),
               1);
  close_db(db);
}

/* Migration 9 (endpoint health): webhooks gain their disabled_* columns
 * and own rule, all NULL (an inactive webhook of before keeps no reason),
 * and the streak table starts empty. */
static void migration_9_health(void) {
  char path[128], err[256];
  sqlite3 *db = db_at_version("m9", 8, path);
  CHECK_EQ_INT(sqlite3_exec(db,
                            "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) "
                            "  VALUES ('wh_1', 'https://example.com', '[]', 0, 1, 1);",
                            NULL, NULL, NULL),
               SQLITE_OK);
  CHECK_EQ_INT(reopen(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhooks WHERE id = 'wh_1' AND active = 0 AND disabled_at IS NULL "
                             "AND disabled_reason IS NULL AND disabled_message IS NULL "
                             "AND disable_after_exhausted IS NULL AND disable_after_failing_ms IS NULL"),
               1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhook_health"), 0);
  /* Its rows go with their webhook. */
  CHECK_EQ_INT(sqlite3_exec(db,
                            "INSERT INTO webhook_health (webhook_id, consecutive_exhausted) VALUES ('wh_1', 3);"
                            "DELETE FROM webhooks WHERE id = 'wh_1';",
                            NULL, NULL, NULL),
               SQLITE_OK);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhook_health"), 0);
  close_db(db);
}

/* Rows left dangling before a migration (written with foreign keys off)
 * do not stop it: only rows a migration itself leaves dangling would. */
static void migration_keeps_old_dangling_rows(void) {
  char path[128], err[256];
  sqlite3 *db = db_at_version("m6fk", 5, path);
  /* Written with foreign keys off: a delivery of a webhook that is gone. */
  CHECK_EQ_INT(sqlite3_exec(db,
                            "INSERT INTO events (seq, id, type, payload, created_at) VALUES (1, 'evt_1', 'a.b', '{}', 1);"
                            "INSERT INTO deliveries (id, webhook_id, event_seq, status, created_at, updated_at) "
                            "  VALUES ('del_1', 'wh_gone', 1, 'pending', 1, 1);",
                            NULL, NULL, NULL),
               SQLITE_OK);
  CHECK_EQ_INT(query_int(db, "PRAGMA foreign_keys"), 0);
  CHECK_EQ_INT(reopen(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(query_int(db, "PRAGMA user_version"), hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries WHERE webhook_id = 'wh_gone'"), 1);
  /* The store's connection runs with them on again after migrating. */
  CHECK_EQ_INT(query_int(db, "PRAGMA foreign_keys"), 1);
  close_db(db);
}

static void newer_schema(void) {
  char path[128], err[256] = "";
  sqlite3 *db = NULL;
  db_path(path, sizeof(path), "new");
  CHECK_EQ_INT(open_sync(&db, path, err, sizeof(err)), 0);
  CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
  close_db(db);
  db = NULL;

  char want[160];
  snprintf(want, sizeof(want), "database schema version 999 is newer than this binary (supports %d): upgrade hookgate",
           hg_store_schema_version(HG_DB_SQLITE));
  CHECK_EQ_INT(open_sync(&db, path, err, sizeof(err)), HG_ECORRUPT);
  CHECK(db == NULL);
  CHECK_EQ_STR(err, want);

  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_store_t *s = (hg_store_t *)&loop; /* must be reset */
  err[0] = '\0';
  CHECK_EQ_INT(hg_store_open(&s, &loop, path, err, sizeof(err)), HG_ECORRUPT);
  CHECK(s == NULL);
  CHECK_EQ_STR(err, want);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void bad_path(void) {
  char path[128], err[256] = "";
  sqlite3 *db = NULL;
  /* A regular file where a directory should be. */
  snprintf(path, sizeof(path), "%s/file", dir);
  FILE *f = fopen(path, "w");
  fclose(f);
  snprintf(path, sizeof(path), "%s/file/hg.db", dir);
  CHECK(open_sync(&db, path, err, sizeof(err)) < 0);
  CHECK(db == NULL);
  CHECK(strlen(err) > 0);
}

/* ---- Jobs ---- */

struct ctx {
  hg_store_t *store;
  sqlite3 *reader; /* a second connection, on the loop thread */
  int done, ok, on_loop, visible, total;
  int statuses[8];
  hg_store_stats_t stats;
  int close_at_end;
};

struct insert {
  struct ctx *c;
  int id;
  int fail; /* return this from work after inserting */
  int slot; /* index into c->statuses, or -1 */
  int runs; /* times work ran */
};

static int insert_work(hg_db_t *hdb, void *ud) {
  sqlite3 *db = hg_db_native(hdb);
  struct insert *in = ud;
  char sql[64];
  in->runs++;
  snprintf(sql, sizeof(sql), "INSERT INTO t (id) VALUES (%d)", in->id);
  if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) return HG_EIO;
  return in->fail;
}

static int row_exists(sqlite3 *db, int id) {
  char sql[64];
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM t WHERE id = %d", id);
  return query_int(db, sql) == 1;
}

static void insert_done(int status, void *ud) {
  struct insert *in = ud;
  struct ctx *c = in->c;
  c->done++;
  if (status == 0) c->ok++;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &loop_thread)) c->on_loop++;
  /* Committed before the callback: another connection sees the row. */
  if (c->reader != NULL && status == 0 && row_exists(c->reader, in->id)) c->visible++;
  if (in->slot >= 0) c->statuses[in->slot] = status;
  if (c->close_at_end && c->done == c->total) {
    hg_store_stats(c->store, &c->stats);
    hg_store_close(c->store); /* from inside a completion */
    hg_store_close(c->store); /* and twice: a no-op */
  }
}

static struct insert group_jobs[200];

static void submit_group_cb(uv_timer_t *t) {
  struct ctx *c = t->data;
  for (int i = 0; i < 200; i++) {
    group_jobs[i] = (struct insert){c, i + 1, 0, -1, 0};
    CHECK_EQ_INT(hg_store_submit(c->store, insert_work, insert_done, &group_jobs[i]), 0);
  }
  uv_close((uv_handle_t *)t, NULL);
}

static void group_commit(void) {
  char path[128];
  uv_loop_t loop;
  struct ctx c = {0};
  c.total = 200;
  c.close_at_end = 1;
  c.store = open_fresh(&loop, "group", path);
  CHECK_EQ_INT(sqlite3_open_v2(path, &c.reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  uv_timer_t timer;
  uv_timer_init(&loop, &timer);
  timer.data = &c;
  uv_timer_start(&timer, submit_group_cb, 0, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(c.done, 200);
  CHECK_EQ_INT(c.ok, 200);
  CHECK_EQ_INT(c.on_loop, 200);
  CHECK_EQ_INT(c.visible, 200);
  CHECK_EQ_INT(c.stats.jobs, 200);
  /* Submitted in one loop turn (a timer callback): handed over together,
   * so they share one transaction. */
  CHECK_EQ_INT(c.stats.commits, 1);
  CHECK_EQ_INT(c.stats.max_batch, 200);
  /* Every commit was synced before its jobs completed, by at most as many
   * fsyncs as commits (one fsync may cover several). */
  CHECK(c.stats.syncs >= 1);
  CHECK(c.stats.syncs <= c.stats.commits);
  CHECK_EQ_INT(c.stats.sync_seconds.count, c.stats.syncs);
  fprintf(stderr, "  200 jobs in %llu commits, largest group %llu\n", (unsigned long long)c.stats.commits,
          (unsigned long long)c.stats.max_batch);
  CHECK_EQ_INT(query_int(c.reader, "SELECT count(*) FROM t"), 200);
  close_db(c.reader);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* A gate job holds the store thread in its work until the loop has queued
 * the jobs that must share the next group. */
struct gate {
  uv_sem_t started, go;
};

static void gate_init(struct gate *g) {
  uv_sem_init(&g->started, 0);
  uv_sem_init(&g->go, 0);
}

static void gate_destroy(struct gate *g) {
  uv_sem_destroy(&g->started);
  uv_sem_destroy(&g->go);
}

static int gate_work(hg_db_t *hdb, void *ud) {
  (void)hdb;
  struct gate *g = ud;
  uv_sem_post(&g->started);
  uv_sem_wait(&g->go);
  return 0;
}

/* Submits a gate and waits until the store thread is inside it. */
static void gate_enter(hg_store_t *s, struct gate *g) {
  CHECK_EQ_INT(hg_store_submit(s, gate_work, NULL, g), 0);
  hg_store_flush(s); /* the loop is blocked: hand it over now */
  uv_sem_wait(&g->started);
}

/* Lets the gate the store thread is in return, once the jobs submitted
 * since are queued behind it (they then form the next group). */
static void gate_open(hg_store_t *s, struct gate *g) {
  hg_store_flush(s);
  uv_sem_post(&g->go);
}

static int rollback_work(hg_db_t *hdb, void *ud) {
  sqlite3 *db = hg_db_native(hdb);
  (void)ud;
  /* Misbehaving work: ends the whole transaction. */
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return 0;
}

/* From a thread other than the loop's, a job goes to the store thread at
 * once: nothing on the loop has to run for it. */
static struct insert thread_jobs[10];

static void submit_from_thread(void *arg) {
  struct ctx *c = arg;
  for (int i = 0; i < 10; i++) {
    thread_jobs[i] = (struct insert){c, i + 1, 0, -1, 0};
    CHECK_EQ_INT(hg_store_submit(c->store, insert_work, insert_done, &thread_jobs[i]), 0);
  }
}

static void other_thread(void) {
  char path[128];
  uv_loop_t loop;
  struct ctx c = {0};
  c.total = 10;
  c.close_at_end = 1;
  c.store = open_fresh(&loop, "thread", path);
  uv_thread_t t;
  CHECK_EQ_INT(uv_thread_create(&t, submit_from_thread, &c), 0);
  CHECK_EQ_INT(uv_thread_join(&t), 0);
  /* All ten reach the store thread and commit while the loop is not
   * running (their completions wait for it). */
  sqlite3 *reader = NULL;
  CHECK_EQ_INT(sqlite3_open_v2(path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  int rows = 0;
  for (int spin = 0; spin < 5000 && (rows = query_int(reader, "SELECT count(*) FROM t")) < 10; spin++) uv_sleep(1);
  CHECK_EQ_INT(rows, 10);
  close_db(reader);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(c.done, 10);
  CHECK_EQ_INT(c.ok, 10);
  CHECK_EQ_INT(c.on_loop, 10);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void failing_job(void) {
  char path[128];
  uv_loop_t loop;
  struct ctx c = {0};
  c.store = open_fresh(&loop, "fail", path);
  struct gate g;
  gate_init(&g);

  /* Group 2: A, B (fails after inserting), C. */
  gate_enter(c.store, &g);
  struct insert a = {&c, 1, 0, 0, 0}, b = {&c, 2, HG_EINVAL, 1, 0}, cc = {&c, 3, 0, 2, 0};
  hg_store_submit(c.store, insert_work, insert_done, &a);
  hg_store_submit(c.store, insert_work, insert_done, &b);
  hg_store_submit(c.store, insert_work, insert_done, &cc);
  /* Group 3: D, then a job that ends the transaction, then E. */
  struct insert d = {&c, 4, 0, 3, 0}, e = {&c, 5, 0, 5, 0};
  struct insert x = {&c, 0, 0, 4, 0};
  hg_store_submit(c.store, gate_work, NULL, &g);
  gate_open(c.store, &g); /* group 2 runs */
  uv_sem_wait(&g.started);
  hg_store_submit(c.store, insert_work, insert_done, &d);
  hg_store_submit(c.store, rollback_work, insert_done, &x);
  hg_store_submit(c.store, insert_work, insert_done, &e);
  gate_open(c.store, &g);

  c.total = 6;
  c.close_at_end = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(c.done, 6);
  CHECK_EQ_INT(c.statuses[0], 0);
  CHECK_EQ_INT(c.statuses[1], HG_EINVAL);
  CHECK_EQ_INT(c.statuses[2], 0);
  CHECK_EQ_INT(c.statuses[3], HG_EIO);
  CHECK_EQ_INT(c.statuses[4], HG_EIO);
  CHECK_EQ_INT(c.statuses[5], 0);
  CHECK(c.stats.max_batch >= 4); /* A, B, C and the second gate */
  CHECK_EQ_INT(uv_loop_close(&loop), 0);

  sqlite3 *db = NULL;
  CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  CHECK(row_exists(db, 1));
  CHECK(!row_exists(db, 2));
  CHECK(row_exists(db, 3));
  CHECK(!row_exists(db, 4));
  CHECK(row_exists(db, 5));
  close_db(db);
  gate_destroy(&g);
}

/* Rerunnable neighbours share a savepoint; when one fails, only it is
 * undone (the others run again, alone), and a plain job between them
 * splits the run. */
static void rerunnable_jobs(void) {
  char path[128];
  uv_loop_t loop;
  struct ctx c = {0};
  c.store = open_fresh(&loop, "rerun", path);
  struct gate g;
  gate_init(&g);

  /* Group 2: A, B (fails after inserting), C rerunnable; P plain; D, E
   * rerunnable (succeed). Group 3: F rerunnable, X ends the transaction
   * (rerunnable too), G rerunnable. */
  gate_enter(c.store, &g);
  struct insert a = {&c, 1, 0, 0, 0}, b = {&c, 2, HG_EINVAL, 1, 0}, cc = {&c, 3, 0, 2, 0}, p = {&c, 4, 0, 3, 0};
  struct insert d = {&c, 5, 0, 4, 0}, e = {&c, 6, 0, 5, 0};
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &a), 0);
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &b), 0);
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &cc), 0);
  /* Two more after C: H fails too, I succeeds. */
  struct insert h = {&c, 9, HG_EINVAL, -1, 0}, i = {&c, 10, 0, -1, 0};
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &h), 0);
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &i), 0);
  CHECK_EQ_INT(hg_store_submit(c.store, insert_work, insert_done, &p), 0);
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &d), 0);
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &e), 0);
  hg_store_submit(c.store, gate_work, NULL, &g);
  gate_open(c.store, &g); /* group 2 runs */
  uv_sem_wait(&g.started);
  struct insert f = {&c, 7, 0, 6, 0}, x = {&c, 0, 0, 7, 0}, gg = {&c, 8, 0, -1, 0};
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &f), 0);
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, rollback_work, insert_done, &x), 0);
  CHECK_EQ_INT(hg_store_submit_rerunnable(c.store, insert_work, insert_done, &gg), 0);
  gate_open(c.store, &g);

  c.total = 11;
  c.close_at_end = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(c.done, 11);
  int want[8] = {0, HG_EINVAL, 0, 0, 0, 0, HG_EIO, HG_EIO};
  for (int i = 0; i < 8; i++) CHECK_EQ_INT(c.statuses[i], want[i]);
  /* A and B ran together, B failed: A ran again (with any others before
   * B, together), B alone; then C and H together, H failed: C again, H
   * alone; then I. A job after a failure runs once more at most. */
  CHECK_EQ_INT(a.runs, 2);
  CHECK_EQ_INT(b.runs, 2);
  CHECK_EQ_INT(cc.runs, 2);
  CHECK_EQ_INT(h.runs, 2);
  CHECK_EQ_INT(i.runs, 1);
  CHECK_EQ_INT(p.runs, 1);
  CHECK_EQ_INT(d.runs, 1);
  CHECK_EQ_INT(e.runs, 1);
  CHECK_EQ_INT(f.runs, 1);
  CHECK_EQ_INT(gg.runs, 1);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);

  sqlite3 *db = NULL;
  CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  int present[11] = {0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1};
  for (int id = 1; id <= 10; id++) CHECK_EQ_INT(row_exists(db, id), present[id]);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM t"), 7);
  close_db(db);
  gate_destroy(&g);
}

/* hg_store_submit_many: neighbours with the same many run in one call
 * (at most 128 at a time); a failing one is undone with the whole run, and
 * the ones before it run together again, it alone (its work), the rest
 * together; a plain job between them splits the calls. */
static size_t many_calls[16], many_ncalls;

static int insert_many(hg_db_t *hdb, void *const *uds, size_t n, size_t *failed) {
  if (many_ncalls < HG_ARRAY_LEN(many_calls)) many_calls[many_ncalls] = n;
  many_ncalls++;
  for (size_t i = 0; i < n; i++) {
    int r = insert_work(hdb, uds[i]);
    if (r < 0) {
      *failed = i;
      return r;
    }
  }
  return 0;
}

static void many_jobs(void) {
  char path[128];
  uv_loop_t loop;
  struct ctx c = {0};
  c.store = open_fresh(&loop, "many", path);
  struct gate g;
  gate_init(&g);
  gate_enter(c.store, &g);
  /* A, B, C, D (fails after inserting), E; P plain; F, G; then 130 more
   * (ids 100...229) in calls of 128 and 2. */
  static struct insert jobs[8], more[130];
  for (int i = 0; i < 8; i++) jobs[i] = (struct insert){&c, i + 1, i == 3 ? HG_EINVAL : 0, i, 0};
  for (int i = 0; i < 5; i++)
    CHECK_EQ_INT(hg_store_submit_many(c.store, insert_work, insert_many, insert_done, &jobs[i], 0), 0);
  CHECK_EQ_INT(hg_store_submit(c.store, insert_work, insert_done, &jobs[5]), 0);
  for (int i = 6; i < 8; i++)
    CHECK_EQ_INT(hg_store_submit_many(c.store, insert_work, insert_many, insert_done, &jobs[i], i == 7), 0);
  for (int i = 0; i < 130; i++) {
    more[i] = (struct insert){&c, 100 + i, 0, -1, 0};
    CHECK_EQ_INT(hg_store_submit_many(c.store, insert_work, insert_many, insert_done, &more[i], 0), 0);
  }
  CHECK_EQ_INT(hg_store_submit_many(c.store, insert_work, NULL, insert_done, &more[0], 0), HG_EINVAL);
  gate_open(c.store, &g);
  c.total = 138;
  c.close_at_end = 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(c.done, 138);
  CHECK_EQ_INT(c.ok, 137);
  int want[8] = {0, 0, 0, HG_EINVAL, 0, 0, 0, 0};
  for (int i = 0; i < 8; i++) CHECK_EQ_INT(c.statuses[i], want[i]);
  /* Calls: A-E (stopped at D, which fails), A-C again, E; then F-G and the 130 (one run of
   * neighbours, in calls of 128 at most). */
  size_t want_calls[] = {5, 3, 1, 128, 4};
  CHECK_EQ_INT((int)many_ncalls, (int)HG_ARRAY_LEN(want_calls));
  for (size_t i = 0; i < many_ncalls && i < HG_ARRAY_LEN(want_calls); i++)
    CHECK_EQ_INT((int)many_calls[i], (int)want_calls[i]);
  int runs[8] = {2, 2, 2, 2, 1, 1, 1, 1};
  for (int i = 0; i < 8; i++) CHECK_EQ_INT(jobs[i].runs, runs[i]);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);

  sqlite3 *db = NULL;
  CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  for (int id = 1; id <= 8; id++) CHECK_EQ_INT(row_exists(db, id), id != 4);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM t WHERE id >= 100"), 130);
  close_db(db);
  gate_destroy(&g);
}

static void close_with_queue(void) {
  char path[128];
  uv_loop_t loop;
  struct ctx c = {0};
  static struct insert jobs[50];
  c.store = open_fresh(&loop, "close", path);
  for (int i = 0; i < 50; i++) {
    jobs[i] = (struct insert){&c, i + 1, 0, -1, 0};
    CHECK_EQ_INT(hg_store_submit(c.store, insert_work, insert_done, &jobs[i]), 0);
  }
  /* Closing before the loop ever ran: no completion may run inside close. */
  hg_store_close(c.store);
  CHECK_EQ_INT(c.done, 0);
  struct insert late = {&c, 99, 0, -1, 0};
  CHECK_EQ_INT(hg_store_submit(c.store, insert_work, insert_done, &late), HG_ESTATE);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(c.done, 50);
  CHECK_EQ_INT(c.ok, 50);
  CHECK_EQ_INT(c.on_loop, 50);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);

  sqlite3 *db = NULL;
  CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM t"), 50);
  close_db(db);
}

struct reader {
  hg_store_t *store;
  int n;
  hg_store_stats_t stats;
};

static int read_work(hg_db_t *hdb, void *ud) {
  sqlite3 *db = hg_db_native(hdb);
  struct reader *r = ud;
  r->n = query_int(db, "SELECT count(*) FROM t");
  return 0;
}

static void read_done(int status, void *ud) {
  struct reader *r = ud;
  CHECK_EQ_INT(status, 0);
  hg_store_stats(r->store, &r->stats);
  hg_store_close(r->store);
}

/* The store connection leaves syncing to the sync thread, and a group
 * that only read needs no fsync. */
static void reads_need_no_sync(void) {
  char path[128];
  uv_loop_t loop;
  struct reader r = {NULL, -1, {0}};
  r.store = open_fresh(&loop, "reads", path);
  CHECK_EQ_INT(hg_store_submit(r.store, read_work, read_done, &r), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(r.n, 0);
  CHECK_EQ_INT(r.stats.commits, 1);
  CHECK_EQ_INT(r.stats.syncs, 0);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* A read that runs after a write, in a later group, completes only after
 * the write's fsync: it may have read the written row, which must not be
 * shown before it is durable. */
struct ordered {
  hg_store_t *store;
  int write_done, read_done_after_write, seen;
  uint64_t syncs_at_read;
};

static int ordered_write(hg_db_t *hdb, void *ud) {
  sqlite3 *db = hg_db_native(hdb);
  (void)ud;
  return sqlite3_exec(db, "INSERT INTO t (id) VALUES (42)", NULL, NULL, NULL) == SQLITE_OK ? 0 : HG_EIO;
}

static void ordered_write_done(int status, void *ud) {
  struct ordered *o = ud;
  CHECK_EQ_INT(status, 0);
  o->write_done = 1;
}

static int ordered_read(hg_db_t *hdb, void *ud) {
  sqlite3 *db = hg_db_native(hdb);
  struct ordered *o = ud;
  o->seen = query_int(db, "SELECT count(*) FROM t WHERE id = 42");
  return 0;
}

static void ordered_read_done(int status, void *ud) {
  struct ordered *o = ud;
  CHECK_EQ_INT(status, 0);
  o->read_done_after_write = o->write_done;
  hg_store_stats_t st;
  hg_store_stats(o->store, &st);
  o->syncs_at_read = st.syncs;
  hg_store_close(o->store);
}

static void reads_wait_for_earlier_syncs(void) {
  char path[128];
  uv_loop_t loop;
  struct ordered o = {0};
  o.store = open_fresh(&loop, "ordered", path);
  struct gate g;
  gate_init(&g);
  /* Group 1: the write. Group 2 (held back by a gate until group 1 has
   * been committed): the read. */
  CHECK_EQ_INT(hg_store_submit(o.store, ordered_write, ordered_write_done, &o), 0);
  gate_enter(o.store, &g);
  CHECK_EQ_INT(hg_store_submit(o.store, ordered_read, ordered_read_done, &o), 0);
  gate_open(o.store, &g);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(o.seen, 1);
  CHECK_EQ_INT(o.read_done_after_write, 1);
  CHECK(o.syncs_at_read >= 1);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  gate_destroy(&g);
}

/* Jobs submitted as logged (their effect is durable elsewhere) still
 * complete only once an fsync has covered them, in order; under a stream
 * of them the store shares one fsync among several groups; a job not
 * submitted as logged ends the wait. The window is made 10 s here, so
 * that no slow machine misses it and a wait the eager job failed to end
 * would show. */
#define LOGGED_MAX_TURNS 400
#define LOGGED_PER_TURN 20
static struct insert logged_jobs[LOGGED_MAX_TURNS * LOGGED_PER_TURN + 1];

struct logged {
  struct ctx c;
  uv_loop_t *loop;
  uv_timer_t timer;
  int turns, order_ok, covered_ok, last_id, eager_id;
  uint64_t eager_at, eager_ms;
};

static void logged_done(int status, void *ud) {
  struct insert *in = ud;
  struct logged *l = (struct logged *)in->c;
  CHECK_EQ_INT(status, 0);
  hg_store_stats_t st;
  hg_store_stats(l->c.store, &st);
  /* Jobs are numbered in submission order: an fsync covered this one and
   * every one before it. */
  if (st.synced_jobs < (uint64_t)in->id) l->covered_ok = 0;
  if (in->id != l->last_id + 1) l->order_ok = 0;
  l->last_id = in->id;
  l->c.done++;
  if (row_exists(l->c.reader, in->id)) l->c.visible++;
  if (in->id == l->eager_id) {
    l->eager_ms = uv_now(l->loop) - l->eager_at;
    l->c.stats = st;
    hg_store_close(l->c.store);
  }
}

/* A group of logged jobs a millisecond, as a busy intake log hands them
 * over; once a few groups have committed and the first fsync is done (the
 * ones behind it wait), one job that is not logged. */
static void logged_turn_cb(uv_timer_t *h) {
  struct logged *l = h->data;
  for (int i = 0; i < LOGGED_PER_TURN; i++) {
    int id = l->turns * LOGGED_PER_TURN + i + 1;
    logged_jobs[id - 1] = (struct insert){&l->c, id, 0, -1, 0};
    CHECK_EQ_INT(hg_store_submit_logged(l->c.store, insert_work, logged_done, &logged_jobs[id - 1]), 0);
  }
  l->turns++;
  hg_store_stats_t st;
  hg_store_stats(l->c.store, &st);
  /* Not before the first fsync has ended: while it runs (slow under a
   * sanitizer on a busy disk) the groups behind it join the queue, and
   * the eager job joining them too would let the next fsync go at once,
   * so that nothing would show that logged groups wait. */
  if ((st.commits < 4 || st.syncs < 1) && l->turns < LOGGED_MAX_TURNS) return;
  l->eager_id = l->turns * LOGGED_PER_TURN + 1;
  logged_jobs[l->eager_id - 1] = (struct insert){&l->c, l->eager_id, 0, -1, 0};
  CHECK_EQ_INT(hg_store_submit(l->c.store, insert_work, logged_done, &logged_jobs[l->eager_id - 1]), 0);
  l->eager_at = uv_now(l->loop);
  uv_close((uv_handle_t *)h, NULL);
}

static void logged_jobs_share_syncs(void) {
  char path[128];
  uv_loop_t loop;
  struct logged l = {0};
  l.order_ok = l.covered_ok = 1;
  l.loop = &loop;
  l.c.store = open_fresh(&loop, "logged", path);
  hg_store_set_lazy_sync(l.c.store, 10ull * 1000 * 1000 * 1000);
  CHECK_EQ_INT(sqlite3_open_v2(path, &l.c.reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  uv_timer_init(&loop, &l.timer);
  l.timer.data = &l;
  uv_timer_start(&l.timer, logged_turn_cb, 0, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(l.turns < LOGGED_MAX_TURNS);
  CHECK_EQ_INT(l.c.done, l.eager_id);
  CHECK_EQ_INT(l.c.visible, l.eager_id);
  CHECK_EQ_INT(l.order_ok, 1);
  CHECK_EQ_INT(l.covered_ok, 1);
  /* The first group was synced at once (nothing before it); the groups
   * behind it waited, and shared one fsync. */
  CHECK(l.c.stats.syncs_waited >= 1);
  CHECK(l.c.stats.syncs < l.c.stats.commits);
  /* The eager job ended the 10 s wait. */
  CHECK(l.eager_ms < 5000);
  fprintf(stderr, "  %d jobs in %llu commits, %llu fsyncs (%llu waited); the eager job took %llu ms\n", l.eager_id,
          (unsigned long long)l.c.stats.commits, (unsigned long long)l.c.stats.syncs,
          (unsigned long long)l.c.stats.syncs_waited, (unsigned long long)l.eager_ms);
  close_db(l.c.reader);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* While logged jobs stream in faster than the store runs them, the store
 * thread lets each group gather (GATHER_NS, made 10 s here so that only
 * what should end a gather does): the cap on a group's jobs ends it, and so
 * do a job that is not logged and closing the store, at once. */
#define GATHER_PER_TURN 40
#define GATHER_MAX_TURNS 400
static struct insert gather_jobs[(GATHER_MAX_TURNS + 1) * GATHER_PER_TURN + 1];

struct gather {
  struct ctx c;
  uv_loop_t *loop;
  uv_timer_t timer;
  int turns, submitted, eager_id, last_id, order_ok;
  uint64_t eager_at, eager_ms, close_at, close_ms;
};

static void gather_done(int status, void *ud);

static void gather_submit_logged(struct gather *g, int n) {
  for (int i = 0; i < n; i++) {
    int id = ++g->submitted;
    gather_jobs[id - 1] = (struct insert){&g->c, id, 0, -1, 0};
    CHECK_EQ_INT(hg_store_submit_logged(g->c.store, insert_work, gather_done, &gather_jobs[id - 1]), 0);
  }
}

static void gather_done(int status, void *ud) {
  struct insert *in = ud;
  struct gather *g = (struct gather *)in->c;
  CHECK_EQ_INT(status, 0);
  if (in->id != g->last_id + 1) g->order_ok = 0;
  g->last_id = in->id;
  g->c.done++;
  if (in->id == g->eager_id) {
    g->eager_ms = uv_now(g->loop) - g->eager_at;
    /* More logged jobs, with the store busy: a gather begins, and closing
     * must end it. */
    gather_submit_logged(g, GATHER_PER_TURN);
    hg_store_stats(g->c.store, &g->c.stats);
    g->close_at = uv_now(g->loop);
    hg_store_close(g->c.store);
  }
  if (g->close_at > 0 && g->c.done == g->submitted) g->close_ms = uv_now(g->loop) - g->close_at;
}

static void gather_turn_cb(uv_timer_t *h) {
  struct gather *g = h->data;
  gather_submit_logged(g, GATHER_PER_TURN);
  g->turns++;
  hg_store_stats_t st;
  hg_store_stats(g->c.store, &st);
  if ((st.groups_gathered < 1 || st.max_batch < HG_STORE_GATHER_MAX_JOBS) && g->turns < GATHER_MAX_TURNS) return;
  g->eager_id = ++g->submitted;
  gather_jobs[g->eager_id - 1] = (struct insert){&g->c, g->eager_id, 0, -1, 0};
  CHECK_EQ_INT(hg_store_submit(g->c.store, insert_work, gather_done, &gather_jobs[g->eager_id - 1]), 0);
  g->eager_at = uv_now(g->loop);
  uv_close((uv_handle_t *)h, NULL);
}

static void gathered_groups(void) {
  char path[128];
  uv_loop_t loop;
  struct gather g = {0};
  g.order_ok = 1;
  g.loop = &loop;
  g.c.store = open_fresh(&loop, "gather", path);
  hg_store_set_gather(g.c.store, 10ull * 1000 * 1000 * 1000);
  uv_timer_init(&loop, &g.timer);
  g.timer.data = &g;
  uv_timer_start(&g.timer, gather_turn_cb, 0, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(g.turns < GATHER_MAX_TURNS);
  CHECK_EQ_INT(g.c.done, g.submitted);
  CHECK_EQ_INT(g.order_ok, 1);
  /* Groups gathered, up to the cap, and far fewer commits than turns. */
  CHECK(g.c.stats.groups_gathered >= 1);
  CHECK(g.c.stats.max_batch >= HG_STORE_GATHER_MAX_JOBS);
  CHECK(g.c.stats.commits * 4 < (uint64_t)g.turns);
  /* The eager job and the close ended the 10 s gathers. */
  CHECK(g.eager_ms < 5000);
  CHECK(g.close_at > 0 && g.close_ms < 5000);
  sqlite3 *db = NULL;
  CHECK_EQ_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM t"), g.submitted);
  sqlite3_close(db);
  fprintf(stderr, "  %d jobs in %d turns, %llu commits (%llu gathered, largest %llu); eager %llu ms, close %llu ms\n",
          g.submitted, g.turns, (unsigned long long)g.c.stats.commits, (unsigned long long)g.c.stats.groups_gathered,
          (unsigned long long)g.c.stats.max_batch, (unsigned long long)g.eager_ms, (unsigned long long)g.close_ms);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* The log is copied into the database by the checkpoint thread, not by a
 * COMMIT on the store thread, and starts again from its beginning once it
 * has been copied whole. */
static int blob_work(hg_db_t *hdb, void *ud) {
  sqlite3 *db = hg_db_native(hdb);
  (void)ud;
  return sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS big (b BLOB); INSERT INTO big VALUES (randomblob(3000))", NULL,
                      NULL, NULL) == SQLITE_OK
             ? 0
             : HG_EIO;
}

static void count_done(int status, void *ud) {
  int *n = ud;
  if (status == 0) (*n)++;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void checkpoints(void) {
  char path[128], wal[140];
  uv_loop_t loop;
  hg_store_t *store = open_fresh(&loop, "ckpt", path);
  snprintf(wal, sizeof(wal), "%s-wal", path);
  long db_before = file_size(path);
  int ok = 0;
  /* One transaction of ~3,000 pages: past the 1,000-frame mark. */
  for (int i = 0; i < 3000; i++) CHECK_EQ_INT(hg_store_submit(store, blob_work, count_done, &ok), 0);
  /* The store's async handle keeps the loop alive: turn it until done. */
  while (ok < 3000) uv_run(&loop, UV_RUN_ONCE);
  hg_store_stats_t st;
  hg_store_stats(store, &st);
  for (int spin = 0; spin < 5000 && st.checkpoints == 0; spin++) {
    uv_sleep(1);
    hg_store_stats(store, &st);
  }
  CHECK(st.checkpoints >= 1);
  /* The pages are in the database file (3,000 rows of 3,000 bytes). */
  CHECK(file_size(path) - db_before > 3000L * 3000);
  long wal_full = file_size(wal);
  CHECK(wal_full > 3000L * 3000);
  /* The next transactions write the log from its start again: it does
   * not grow. */
  for (int round = 0; round < 3; round++) {
    CHECK_EQ_INT(hg_store_submit(store, blob_work, count_done, &ok), 0);
    while (ok < 3001 + round) uv_run(&loop, UV_RUN_ONCE);
  }
  CHECK_EQ_INT(file_size(wal), wal_full);
  sqlite3 *reader = NULL;
  CHECK_EQ_INT(sqlite3_open_v2(path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  CHECK_EQ_INT(query_int(reader, "SELECT count(*) FROM big"), 3003);
  close_db(reader);
  hg_store_close(store);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  /* The last connection closed: the log was checkpointed and removed. */
  CHECK_EQ_INT(file_size(wal), -1);
}

/* Under steady writes the checkpoint thread is woken once per 1,000 new
 * frames, and the log stays bounded: at 4,000 frames the store thread
 * finishes a checkpoint and the log starts again. */
static void checkpoints_paced(void) {
  char path[128], wal[140];
  uv_loop_t loop;
  hg_store_t *store = open_fresh(&loop, "ckpt_paced", path);
  snprintf(wal, sizeof(wal), "%s-wal", path);
  int ok = 0;
  long largest = 0;
  /* Twelve transactions of ~750 frames: ~9,000 frames in all. */
  for (int round = 1; round <= 12; round++) {
    for (int i = 0; i < 1000; i++) CHECK_EQ_INT(hg_store_submit(store, blob_work, count_done, &ok), 0);
    while (ok < round * 1000) uv_run(&loop, UV_RUN_ONCE);
    long now = file_size(wal);
    if (now > largest) largest = now;
  }
  hg_store_stats_t st;
  hg_store_stats(store, &st);
  /* A wake-up per 1,000 new frames since the log last started: with the
   * count not reset on a restart it would stop after the first ~4,000. */
  CHECK(st.checkpoints >= 5);
  /* 4,000 frames, the transaction that crossed the mark, and room for a
   * finishing checkpoint that found the thread busy: far below 9,000. */
  CHECK(largest <= 6500L * 4120);
  fprintf(stderr, "  %llu checkpoints on the thread, %llu on the store thread, log at most %ld bytes\n",
          (unsigned long long)st.checkpoints, (unsigned long long)st.checkpoints_inline, largest);
  hg_store_close(store);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static void close_null(void) { hg_store_close(NULL); }

/* SQLite's failures as db.h reports them: a UNIQUE violation HG_EEXIST, a
 * foreign key HG_ENOTFOUND, and a full database (max_page_count reached)
 * HG_ENOSPC, which the API answers 503 storage_full. */
static void error_codes(void) {
  char path[128], err[256];
  db_path(path, sizeof(path), "codes");
  hg_db_t *db = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return;
  CHECK_EQ_INT(hg_db_exec(db, "CREATE TABLE u (k TEXT UNIQUE, v BLOB); CREATE TABLE c (w TEXT REFERENCES webhooks(id))",
                          "test"),
               0);
  static const char ins[] = "INSERT INTO u (k, v) VALUES (?, ?)";
  hg_stmt_t *st = NULL;
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
    hg_db_bind_text(st, 1, "same", -1);
    hg_db_bind_blob(st, 2, "x", 1);
    CHECK_EQ_INT(hg_db_step(st), i == 0 ? HG_DB_DONE : HG_EEXIST);
    hg_db_release(st);
  }
  CHECK_EQ_INT(hg_db_exec(db, "INSERT INTO c (w) VALUES ('wh_none')", "test"), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_db_exec(db, "PRAGMA max_page_count = 64", "test"), 0);
  static char big[512 * 1024];
  CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
  hg_db_bind_text(st, 1, "big", -1);
  hg_db_bind_blob(st, 2, big, sizeof(big));
  CHECK_EQ_INT(hg_db_step(st), HG_ENOSPC);
  hg_db_release(st);
  hg_db_close(db);
  CHECK(strcmp(hg_strerror(HG_ENOSPC), "unknown error") != 0);
  CHECK(strcmp(hg_strerror(HG_EUNAVAIL), "unknown error") != 0);
}

int main(void) {
  hg_log_setup(HG_LOG_INFO, HG_LOG_LOGFMT, 2);
  loop_thread = uv_thread_self();
  snprintf(dir, sizeof(dir), "/tmp/hg-test-store-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  RUN(error_codes);
  RUN(migrations);
  RUN(migration_5_counts);
  RUN(migration_6_rebuild);
  RUN(migration_7_schemes);
  RUN(migration_8_request_headers);
  RUN(migration_9_health);
  RUN(migration_keeps_old_dangling_rows);
  RUN(newer_schema);
  RUN(bad_path);
  RUN(group_commit);
  RUN(other_thread);
  RUN(failing_job);
  RUN(rerunnable_jobs);
  RUN(many_jobs);
  RUN(close_with_queue);
  RUN(reads_need_no_sync);
  RUN(reads_wait_for_earlier_syncs);
  RUN(logged_jobs_share_syncs);
  RUN(gathered_groups);
  RUN(checkpoints);
  RUN(checkpoints_paced);
  RUN(close_null);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  return HGT_DONE();
}
