/* store.c: the SQLite store, its writer thread and group commit.
 *
 * One thread owns the write connection. Jobs the loop thread submits during
 * one loop turn are handed over together (see publish); the thread takes
 * every queued job at once, runs each inside its own SAVEPOINT
 * of a single BEGIN IMMEDIATE transaction, commits once (one fsync for the
 * group), then hands the finished jobs to the loop through a uv_async.
 *
 * The commit only writes the write-ahead log: the sync thread fdatasyncs it
 * before the group's completions run, and the checkpoint thread copies it
 * into the database (durable.c). Opening the database and its migrations
 * are migrate.c's; what this file's parts share, store_internal.h.
 *
 * Jobs submitted as rerunnable (ingest: one per published event) run
 * together, neighbours under one SAVEPOINT: a savepoint per job made SQLite
 * copy every page a job touched into its sub-journal, about 1.5 us per event.
 * Should one of them fail, that savepoint is rolled back and each of them
 * runs again alone under its own, so a failing job still takes nothing of
 * its neighbours with it. */
#include "store/store_internal.h"

#include <unistd.h>

#include "base/common.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

int hg_store_errcode(int rc) {
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

int hg_store_fail(sqlite3 *db, int rc, const char *op) {
  char code[16];
  snprintf(code, sizeof(code), "%d", rc);
  /* sqlite3_errmsg names tables and columns, never bound values. */
  hg_log(HG_LOG_ERROR, "sqlite error", "op", op, "code", code, "error",
         db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc), NULL);
  return hg_store_errcode(rc);
}

int hg_store__exec(sqlite3 *db, const char *sql, const char *op) {
  int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : hg_store_fail(db, rc, op);
}

/* ---- Cached statements ---- */

/* Parsing and planning a statement costs several times what running it
 * does for the small inserts and lookups of a job, so the store thread
 * keeps each hot statement prepared. The cache belongs to the thread: only
 * that thread touches its statements, and it finalizes them before the
 * connection is closed, so no lock and no stale connection pointer. */
#define STMT_CACHE_MAX 64

typedef struct stmt_cache {
  sqlite3 *db;
  size_t n;
  struct {
    const char *sql; /* the caller's literal: its address is the key */
    sqlite3_stmt *st;
  } e[STMT_CACHE_MAX];
} stmt_cache_t;

static __thread stmt_cache_t *tls_cache;

int hg_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out) {
  stmt_cache_t *c = tls_cache;
  *out = NULL;
  if (c == NULL || c->db != db) return sqlite3_prepare_v2(db, sql, -1, out, NULL);
  for (size_t i = 0; i < c->n; i++) {
    if (c->e[i].sql != sql) continue;
    /* In use further up the stack: that caller keeps it, this one gets
     * its own (finalized on release, as it is not in the cache). */
    if (sqlite3_stmt_busy(c->e[i].st)) return sqlite3_prepare_v2(db, sql, -1, out, NULL);
    *out = c->e[i].st;
    return SQLITE_OK;
  }
  int rc = sqlite3_prepare_v3(db, sql, -1, c->n < STMT_CACHE_MAX ? SQLITE_PREPARE_PERSISTENT : 0, out, NULL);
  if (rc == SQLITE_OK && c->n < STMT_CACHE_MAX) {
    c->e[c->n].sql = sql;
    c->e[c->n].st = *out;
    c->n++;
  }
  return rc;
}

void hg_store_release(sqlite3_stmt *st) {
  if (st == NULL) return;
  stmt_cache_t *c = tls_cache;
  if (c != NULL && c->db == sqlite3_db_handle(st)) {
    for (size_t i = 0; i < c->n; i++) {
      if (c->e[i].st == st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return;
      }
    }
  }
  sqlite3_finalize(st);
}

static void cache_clear(stmt_cache_t *c) {
  for (size_t i = 0; i < c->n; i++) sqlite3_finalize(c->e[i].st);
  c->n = 0;
}

/* Runs a statement without results through the cache. */
static int exec_cached(sqlite3 *db, const char *sql, const char *op) {
  sqlite3_stmt *st;
  int rc = hg_store_prepare(db, sql, &st);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) rc = SQLITE_OK;
  }
  hg_store_release(st);
  return rc == SQLITE_OK ? 0 : hg_store_fail(db, rc, op);
}

static const char sql_savepoint[] = "SAVEPOINT hg_job";
static const char sql_release[] = "RELEASE hg_job";
static const char sql_begin[] = "BEGIN IMMEDIATE";

/* ---- The store thread ---- */

/* Undoes savepoint name and drops it. Should SQLite fail to roll back
 * (an I/O error), the whole transaction goes: the caller then sees it
 * ended (sqlite3_get_autocommit) and fails every job in it, as it must,
 * since the work can no longer be told apart from the rest. */
static void undo(sqlite3 *db, const char *name) {
  char sql[48];
  snprintf(sql, sizeof(sql), "ROLLBACK TO %s", name);
  int ok = hg_store__exec(db, sql, "rollback to") == 0;
  snprintf(sql, sizeof(sql), "RELEASE %s", name);
  /* ROLLBACK TO keeps the savepoint open; RELEASE then drops it. */
  if (ok) ok = hg_store__exec(db, sql, "release") == 0;
  if (!ok && !sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static int run_job(sqlite3 *db, struct job *j) {
  if (exec_cached(db, sql_savepoint, "savepoint") != 0) return HG_EIO;
  int status = j->work(db, j->ud);
  if (sqlite3_get_autocommit(db)) return status; /* the caller handles a lost transaction */
  if (status >= 0) {
    if (exec_cached(db, sql_release, "release") == 0) return status;
    status = HG_EIO;
  }
  undo(db, "hg_job");
  return status;
}

static const char sql_run_savepoint[] = "SAVEPOINT hg_run";
static const char sql_run_release[] = "RELEASE hg_run";

/* Runs the rerunnable jobs from..to_excl under one savepoint. Returns 0
 * when every one succeeded (their statuses set); 1 when *stop failed and
 * the savepoint was rolled back (nothing of the run is left); -1 when the
 * transaction ended inside *stop (the jobs after it have not run). */
static int run_together(sqlite3 *db, struct job *from, struct job *to_excl, struct job **stop) {
  *stop = from;
  if (exec_cached(db, sql_run_savepoint, "savepoint") != 0) return sqlite3_get_autocommit(db) ? -1 : 1;
  for (struct job *k = from; k != to_excl; k = k->next) {
    *stop = k;
    k->status = k->work(db, k->ud);
    if (sqlite3_get_autocommit(db)) return -1;
    if (k->status < 0) {
      undo(db, "hg_run");
      return sqlite3_get_autocommit(db) ? -1 : 1;
    }
  }
  if (exec_cached(db, sql_run_release, "release") == 0) return 0;
  *stop = from;
  if (sqlite3_get_autocommit(db)) return -1;
  undo(db, "hg_run");
  return sqlite3_get_autocommit(db) ? -1 : 1;
}

/* Runs rerunnable neighbours from..to_excl: together, and when one fails,
 * the ones before it together again, the failing one alone under its own
 * savepoint, and on with the rest together (so one bad request costs its
 * neighbours one rerun, not a savepoint each). Returns 0 with every status
 * set, or -1 when the transaction ended inside *lost. */
static int run_rerunnable(sqlite3 *db, struct job *from, struct job *to_excl, struct job **lost) {
  struct job *j = from;
  while (j != to_excl) {
    struct job *failed = NULL;
    int r = run_together(db, j, to_excl, &failed);
    if (r == 0) return 0;
    if (r < 0) {
      *lost = failed;
      return -1;
    }
    if (failed != j) {
      struct job *again = NULL;
      r = run_together(db, j, failed, &again);
      if (r < 0) {
        *lost = again;
        return -1;
      }
      for (struct job *k = j; r != 0 && k != failed; k = k->next) {
        /* It failed differently the second time: each alone. */
        k->status = run_job(db, k);
        if (sqlite3_get_autocommit(db)) {
          *lost = k;
          return -1;
        }
      }
    }
    failed->status = run_job(db, failed);
    if (sqlite3_get_autocommit(db)) {
      *lost = failed;
      return -1;
    }
    j = failed->next;
  }
  return 0;
}

static void fail_jobs(struct job *from, struct job *to_excl, int status) {
  for (struct job *k = from; k != to_excl; k = k->next) k->status = status;
}

/* The transaction ended inside job lost: SQLite rolls everything back on
 * errors such as SQLITE_FULL, or the work committed on its own. Every job
 * of it from *first through lost fails (the ones before lost are not
 * durable either), and a new transaction opens for the jobs after, which
 * become *first. Returns -1 when that BEGIN failed (they failed too). */
static int restart_txn(sqlite3 *db, struct job **first, struct job *lost) {
  hg_log(HG_LOG_ERROR, "store transaction ended inside a job; failing its group", NULL);
  /* A full disk is told apart: the callers answer it as such, and it may
   * clear. */
  int status = lost->status == HG_ENOSPC || (sqlite3_errcode(db) & 0xff) == SQLITE_FULL ? HG_ENOSPC : HG_EIO;
  fail_jobs(*first, lost->next, status);
  *first = lost->next;
  if (*first != NULL && exec_cached(db, sql_begin, "begin") != 0) {
    fail_jobs(*first, NULL, HG_EIO);
    return -1;
  }
  return 0;
}

/* Runs one group and ends its transaction with end_sql ("COMMIT"; a
 * measuring build may pass "ROLLBACK", which also sets *committed).
 * Returns the number of jobs that shared the committed transaction (0 when
 * nothing was committed) and adds commit time to *ns. */
static uint64_t run_group(sqlite3 *db, struct job *batch, uint64_t *ns, int *committed, const char *end_sql) {
  struct job *first = batch; /* first job of the open transaction */
  uint64_t in_txn = 0;
  *committed = 0;
  if (exec_cached(db, sql_begin, "begin") != 0) {
    fail_jobs(batch, NULL, HG_EIO);
    return 0;
  }
  for (struct job *j = batch; j != NULL;) {
    /* A run of rerunnable neighbours goes together; anything else alone. */
    struct job *end = j->next;
    if (j->rerunnable)
      while (end != NULL && end->rerunnable) end = end->next;
    struct job *lost = NULL;
    int together = end != j->next ? run_rerunnable(db, j, end, &lost) : 1;
    if (together < 0) {
      in_txn = 0;
      if (restart_txn(db, &first, lost) != 0) return 0;
      j = lost->next;
      continue;
    }
    for (struct job *k = j; k != end; k = k->next) {
      if (together != 0) k->status = run_job(db, k);
      in_txn++;
      if (!sqlite3_get_autocommit(db)) continue;
      in_txn = 0;
      if (restart_txn(db, &first, k) != 0) return 0;
    }
    j = end;
  }
  if (first == NULL) return 0;
  uint64_t t0 = hg_now_ns();
  int rc = sqlite3_exec(db, end_sql, NULL, NULL, NULL);
  *ns += hg_now_ns() - t0;
  if (rc != SQLITE_OK) {
    hg_store_fail(db, rc, "commit");
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    fail_jobs(first, NULL, (rc & 0xff) == SQLITE_FULL ? HG_ENOSPC : HG_EIO);
    return 0;
  }
  *committed = 1;
  return in_txn;
}

hg_store_bounds_t (*hg_store__bounds)(void);

/* Takes a group of logged jobs in a measuring mode (hg_store__bounds):
 * returns 0 when there is none (the group is committed as usual). Nothing
 * it does is written, so nothing is synced either. */
static int bounds_group(sqlite3 *db, struct job *batch, hg_store_bounds_t bounds, uint64_t *ns) {
  int committed;
  if (bounds == HG_STORE_BOUNDS_SKIP)
    for (struct job *j = batch; j != NULL; j = j->next) j->status = 0;
  else if (bounds == HG_STORE_BOUNDS_ROLLBACK)
    run_group(db, batch, ns, &committed, "ROLLBACK");
  return bounds != HG_STORE_BOUNDS_OFF;
}

static void thread_main(void *arg) {
  hg_store_t *s = arg;
  stmt_cache_t *cache = calloc(1, sizeof(*cache));
  if (cache != NULL) {
    /* Without a cache every statement is prepared each time: slower, not wrong. */
    cache->db = s->db;
    tls_cache = cache;
  }
  int niced = 0;
  hg_store_bounds_t bounds = hg_store__bounds ? hg_store__bounds() : HG_STORE_BOUNDS_OFF;
  uv_mutex_lock(&s->mutex);
  for (;;) {
    while (s->queue == NULL && !s->closing) uv_cond_wait(&s->cond, &s->mutex);
    /* Closing with jobs still queued: run them first. */
    if (s->queue == NULL) break;
    struct job *batch = s->queue, **batch_tail = s->queue_tail;
    s->queue = NULL;
    s->queue_tail = &s->queue;
    int nice = s->nice;
    uv_mutex_unlock(&s->mutex);
    if (nice != niced) {
      /* Linux: PRIO_PROCESS with 0 is the calling thread. Raising the
       * priority back needs CAP_SYS_NICE or RLIMIT_NICE >= 20; the caller
       * (app.c) lowers it only where it can. */
      if (setpriority(PRIO_PROCESS, 0, nice) != 0)
        hg_log(HG_LOG_WARN, "cannot change the store thread's priority", "error", strerror(errno), NULL);
      niced = nice;
    }

    uint64_t ns = 0, njobs = 0;
    int committed = 0, eager = 0;
    for (struct job *j = batch; j != NULL; j = j->next) {
      njobs++;
      eager |= !j->logged;
    }
    int64_t changes = sqlite3_total_changes64(s->db);
    uint64_t in_txn = 0;
    if (eager || !bounds_group(s->db, batch, bounds, &ns))
      in_txn = run_group(s->db, batch, &ns, &committed, "COMMIT");
    /* A group that only read wrote nothing to the log: no fsync for it. */
    int wrote = committed && sqlite3_total_changes64(s->db) != changes;

    uv_mutex_lock(&s->mutex);
    s->stats.jobs += njobs;
    s->stats.commit_ns += ns;
    if (committed) s->stats.commits++;
    if (in_txn > s->stats.max_batch) s->stats.max_batch = in_txn;
    if (committed) {
      hg_hist_observe(&s->stats.commit_seconds, (double)ns / 1e9);
      hg_hist_observe(&s->stats.batch_jobs, (double)in_txn);
    }
    /* The sync thread needs waking when it waits for work, or when it
     * waits out LAZY_SYNC_NS and this group cannot wait; otherwise the
     * group just joins the list it will take (a wake-up per group was
     * ~3,000 context switches a second at -c50). */
    if (s->synq == NULL || eager) uv_cond_signal(&s->sync_cond);
    *s->synq_tail = batch;
    s->synq_tail = batch_tail;
    s->synq_dirty |= wrote;
    s->synq_eager |= eager;
    s->synq_jobs += njobs;
  }
  s->store_exited = 1;
  uv_cond_signal(&s->sync_cond);
  uv_mutex_unlock(&s->mutex);
  /* The connection is closed after the join: its statements go first. */
  tls_cache = NULL;
  if (cache != NULL) cache_clear(cache);
  free(cache);
}

/* ---- The loop side ---- */

static struct job *take_done(hg_store_t *s) {
  uv_mutex_lock(&s->mutex);
  struct job *list = s->done;
  s->done = NULL;
  s->done_tail = &s->done;
  uv_mutex_unlock(&s->mutex);
  return list;
}

/* Each job is freed before its callback runs, so a callback may close the
 * store or submit again without anything here touching freed memory. */
static void run_done(struct job *j) {
  while (j != NULL) {
    struct job *next = j->next;
    hg_store_done_fn done = j->done;
    void *ud = j->ud;
    int status = j->status;
    free(j);
    if (done != NULL) done(status, ud);
    j = next;
  }
}

static void hg_store_async_cb(uv_async_t *h) { run_done(take_done(h->data)); }

/* Hands the jobs submitted on the loop thread to the store thread. */
static void publish(hg_store_t *s) {
  if (s->local == NULL) return;
  uv_mutex_lock(&s->mutex);
  *s->queue_tail = s->local;
  s->queue_tail = s->local_tail;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mutex);
  s->local = NULL;
  s->local_tail = &s->local;
}

void hg_store_flush(hg_store_t *s) {
  if (s == NULL) return;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &s->loop_thread)) publish(s);
}

/* Before the loop polls (jobs from timers) and after (jobs from I/O). */
static void publish_prepare_cb(uv_prepare_t *h) { publish(h->data); }
static void publish_check_cb(uv_check_t *h) { publish(h->data); }

static void store_free(hg_store_t *s) {
  if (s == NULL) return;
  if (s->sync_cond_ok) uv_cond_destroy(&s->sync_cond);
  if (s->ckpt_cond_ok) uv_cond_destroy(&s->ckpt_cond);
  if (s->wal_fd >= 0) close(s->wal_fd);
  free(s->wal_path);
  if (s->cond_ok) uv_cond_destroy(&s->cond);
  if (s->mutex_ok) uv_mutex_destroy(&s->mutex);
  sqlite3_close(s->db);
  free(s);
}

static void hg_store_close_cb(uv_handle_t *h) {
  hg_store_t *s = h->data;
  if (--s->handles_open > 0) return;
  /* The thread has been joined: whatever it finished after the last async
   * callback ran is here, and runs now, once. */
  run_done(take_done(s));
  store_free(s);
}

/* fdatasync here takes ~0.1 ms; a group of hundreds of jobs is the goal. */
static const double commit_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
static const double batch_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};

int hg_store_global_init(void) {
  /* No memory statistics: with them on, every SQLite allocation takes a
   * process-wide mutex (a tenth of the store thread's work per event). */
  int rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  return rc == SQLITE_OK ? 0 : HG_ESTATE;
}

static void close_handles(hg_store_t *s) {
  uv_close((uv_handle_t *)&s->prepare, hg_store_close_cb);
  uv_close((uv_handle_t *)&s->check, hg_store_close_cb);
  uv_close((uv_handle_t *)&s->async, hg_store_close_cb);
}

int hg_store_open(hg_store_t **out, uv_loop_t *loop, const char *path, char *err, size_t errlen) {
  hg_store_t *s = calloc(1, sizeof(*s));
  int rc = HG_ENOMEM;
  *out = NULL;
  if (s == NULL) {
    hg_set_err(err, errlen, "out of memory");
    goto fail;
  }
  s->stats.commit_seconds.bounds = commit_bounds;
  s->stats.commit_seconds.n = HG_ARRAY_LEN(commit_bounds);
  s->stats.batch_jobs.bounds = batch_bounds;
  s->stats.batch_jobs.n = HG_ARRAY_LEN(batch_bounds);
  s->stats.sync_seconds.bounds = commit_bounds;
  s->stats.sync_seconds.n = HG_ARRAY_LEN(commit_bounds);
  s->loop = loop;
  s->queue_tail = &s->queue;
  s->done_tail = &s->done;
  s->synq_tail = &s->synq;
  s->local_tail = &s->local;
  s->loop_thread = uv_thread_self();
  s->wal_fd = -1;
  s->lazy_sync_ns = LAZY_SYNC_NS;
  if ((rc = hg_store_open_sync(&s->db, path, err, errlen)) != 0) goto fail;
  /* The sync thread makes commits durable (see durable.c). */
  /* temp_store=MEMORY keeps savepoint sub-journals in memory: a group's
   * shared savepoint journals every page its jobs change (~100 KiB for a
   * group of fifty events), and past 64 KiB SQLite spilled it to a temporary
   * file, created and unlinked per group. */
  if (hg_store__exec(s->db, "PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY", "pragmas") != 0) {
    hg_set_err(err, errlen, "cannot set synchronous=NORMAL on %s: %s", path, sqlite3_errmsg(s->db));
    rc = HG_EIO;
    goto fail;
  }
  rc = HG_ENOMEM;
  const char *file = sqlite3_db_filename(s->db, "main");
  size_t flen = strlen(file ? file : path);
  if ((s->wal_path = malloc(flen + 5)) == NULL) goto fail;
  memcpy(s->wal_path, file ? file : path, flen);
  memcpy(s->wal_path + flen, "-wal", 5);
  if (uv_mutex_init(&s->mutex) != 0) goto fail;
  s->mutex_ok = 1;
  if (uv_cond_init(&s->cond) != 0) goto fail;
  s->cond_ok = 1;
  if (uv_cond_init(&s->sync_cond) != 0) goto fail;
  s->sync_cond_ok = 1;
  if (uv_async_init(loop, &s->async, hg_store_async_cb) != 0) goto fail;
  s->async.data = s;
  s->handles_open = 3;
  /* Neither handle can fail to initialise on a live loop. */
  uv_prepare_init(loop, &s->prepare);
  uv_check_init(loop, &s->check);
  s->prepare.data = s;
  s->check.data = s;
  uv_prepare_start(&s->prepare, publish_prepare_cb);
  uv_check_start(&s->check, publish_check_cb);
  uv_unref((uv_handle_t *)&s->prepare);
  uv_unref((uv_handle_t *)&s->check);
  if (uv_thread_create(&s->sync_thread, hg_store__sync_main, s) != 0) {
    hg_set_err(err, errlen, "cannot start the store's sync thread");
    goto fail_live;
  }
  hg_store__ckpt_start(s);
  if (uv_thread_create(&s->thread, thread_main, s) != 0) {
    uv_mutex_lock(&s->mutex);
    s->store_exited = 1;
    uv_cond_signal(&s->sync_cond);
    uv_mutex_unlock(&s->mutex);
    uv_thread_join(&s->sync_thread);
    hg_store__ckpt_stop(s);
    hg_set_err(err, errlen, "cannot start the store thread");
    goto fail_live;
  }
  *out = s;
  return 0;
fail:
  if (rc == HG_ENOMEM && err != NULL && errlen > 0 && err[0] == '\0') hg_set_err(err, errlen, "out of memory");
  store_free(s);
  return rc;
fail_live:
  /* The handles are live: the store goes with the last close callback. */
  s->close_called = 1;
  close_handles(s);
  return HG_EIO;
}

static int submit(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud, int rerunnable, int logged) {
  if (s == NULL || work == NULL) return HG_EINVAL;
  struct job *j = calloc(1, sizeof(*j));
  if (j == NULL) return HG_ENOMEM;
  j->rerunnable = rerunnable;
  j->logged = logged;
  j->work = work;
  j->done = done;
  j->ud = ud;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &s->loop_thread)) {
    /* close_called is set on this thread only. */
    if (s->close_called) {
      free(j);
      return HG_ESTATE;
    }
    *s->local_tail = j;
    s->local_tail = &j->next;
    return 0;
  }
  uv_mutex_lock(&s->mutex);
  if (s->closing) {
    uv_mutex_unlock(&s->mutex);
    free(j);
    return HG_ESTATE;
  }
  *s->queue_tail = j;
  s->queue_tail = &j->next;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mutex);
  return 0;
}

int hg_store_submit(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud) {
  return submit(s, work, done, ud, 0, 0);
}

int hg_store_submit_rerunnable(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud) {
  return submit(s, work, done, ud, 1, 0);
}

int hg_store_submit_logged(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud) {
  return submit(s, work, done, ud, 1, 1);
}

void hg_store_set_lazy_sync(hg_store_t *s, uint64_t ns) {
  uv_mutex_lock(&s->mutex);
  s->lazy_sync_ns = ns;
  uv_mutex_unlock(&s->mutex);
}

void hg_store_set_nice(hg_store_t *s, int nice) {
  uv_mutex_lock(&s->mutex);
  s->nice = nice;
  uv_mutex_unlock(&s->mutex);
}

void hg_store_stats(hg_store_t *s, hg_store_stats_t *out) {
  uv_mutex_lock(&s->mutex);
  *out = s->stats;
  uv_mutex_unlock(&s->mutex);
}

void hg_store_close(hg_store_t *s) {
  if (s == NULL || s->close_called) return;
  s->close_called = 1;
  publish(s);
  uv_mutex_lock(&s->mutex);
  s->closing = 1;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mutex);
  /* Blocks the loop while the last group commits and syncs: this is
   * shutdown. The store thread tells the sync thread when it has ended. */
  uv_thread_join(&s->thread);
  uv_thread_join(&s->sync_thread);
  hg_store__ckpt_stop(s);
  int rc = sqlite3_close(s->db);
  if (rc != SQLITE_OK) {
    /* A work function left a statement unfinalized. Closing lazily keeps
     * the file consistent; the statement's memory is lost. */
    hg_store_fail(s->db, rc, "close");
    sqlite3_close_v2(s->db);
  }
  s->db = NULL;
  close_handles(s);
}
