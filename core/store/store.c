/* store.c: the store's writer thread and group commit, on SQLite or
 * PostgreSQL (db.h).
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
 * its neighbours with it.
 *
 * On PostgreSQL the same groups, savepoints and reruns apply (a failed
 * statement there leaves the transaction unusable until ROLLBACK TO, which
 * is what undoing a job does anyway). COMMIT returns once the group is
 * durable (synchronous_commit on), so the group's completions go straight
 * to the loop, and the sync and checkpoint threads do not exist. A lost
 * connection fails the jobs that needed it with HG_EUNAVAIL; the thread
 * then reconnects every PG_RETRY_NS, failing jobs at once meanwhile. */
#include "store/store_internal.h"

#include <sqlite3.h>
#include <unistd.h>

#include "base/common.h"
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Runs a statement without results through the connection's statement
 * cache (sql is a literal). */
static int exec_cached(hg_db_t *db, const char *sql, const char *op) {
  hg_stmt_t *st;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) rc = hg_db_step(st);
  hg_db_release(st);
  return rc >= 0 ? 0 : hg_db_fail(db, rc, op);
}

/* As exec_cached, for a statement whose answer can wait (BEGIN, a
 * SAVEPOINT): on PostgreSQL it goes out with what follows, in one round
 * trip, and a failure shows at the next step (db.h), which the callers
 * below treat as the job's or the run's. SQLite runs it at once. */
static int exec_deferred(hg_db_t *db, const char *sql, const char *op) {
  hg_stmt_t *st;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) rc = hg_db_defer(st);
  hg_db_release(st);
  return rc >= 0 ? 0 : hg_db_fail(db, rc, op);
}

static int txn_open(hg_db_t *db) { return hg_db_in_transaction(db); }

static const char sql_savepoint[] = "SAVEPOINT hg_job";
static const char sql_release[] = "RELEASE hg_job";
static const char sql_begin_sqlite[] = "BEGIN IMMEDIATE";
static const char sql_begin_pg[] = "BEGIN";
static const char sql_commit_pg[] = "COMMIT";

static const char *sql_begin(hg_db_t *db) { return hg_db_engine(db) == HG_DB_PG ? sql_begin_pg : sql_begin_sqlite; }

/* ---- The store thread ---- */

/* Undoes savepoint name and drops it. Should SQLite fail to roll back
 * (an I/O error), the whole transaction goes: the caller then sees it
 * ended (sqlite3_get_autocommit) and fails every job in it, as it must,
 * since the work can no longer be told apart from the rest. */
static void undo(hg_db_t *db, const char *name) {
  char sql[48];
  snprintf(sql, sizeof(sql), "ROLLBACK TO %s", name);
  int ok = hg_db_exec(db, sql, "rollback to") == 0;
  snprintf(sql, sizeof(sql), "RELEASE %s", name);
  /* ROLLBACK TO keeps the savepoint open; RELEASE then drops it. */
  if (ok) ok = hg_db_exec(db, sql, "release") == 0;
  if (!ok && txn_open(db)) hg_db_exec(db, "ROLLBACK", "rollback");
}

/* A deferred statement's failure, as the job's status: a UNIQUE or
 * foreign key violation is the job's own answer, not an I/O error. */
static int deferred_failure(int rc) {
  return rc == HG_EUNAVAIL || rc == HG_EEXIST || rc == HG_ENOTFOUND || rc == HG_EINVAL || rc == HG_ENOSPC ||
                 rc == HG_EBUSY
             ? rc
             : HG_EIO;
}

static int run_job(hg_db_t *db, struct job *j) {
  int rc = exec_deferred(db, sql_savepoint, "savepoint");
  if (rc != 0) return rc == HG_EUNAVAIL ? rc : HG_EIO;
  int status = j->work(db, j->ud);
  if (!txn_open(db)) return status; /* the caller handles a lost transaction */
  if (status >= 0) {
    if ((rc = exec_cached(db, sql_release, "release")) == 0) return status;
    status = deferred_failure(rc);
  }
  undo(db, "hg_job");
  return status;
}

/* PostgreSQL: groups run with savepoints after one that had to run again. */
#define CAREFUL_GROUPS 16

static const char sql_run_savepoint[] = "SAVEPOINT hg_run";
/* Jobs handed to one hg_store_work_many_fn call at most. */
#define MANY_MAX 128
static const char sql_run_release[] = "RELEASE hg_run";

/* Runs the jobs from..to_excl in order, neighbours with the same many in
 * one call, until one fails or the transaction ends: returns 0 when every
 * one succeeded (their statuses set), -1 when the transaction ended inside
 * *stop, 1 when *stop failed (its status set; the rest have not run). */
static int run_jobs(hg_db_t *db, struct job *from, struct job *to_excl, struct job **stop) {
  *stop = from;
  for (struct job *k = from; k != to_excl;) {
    *stop = k;
    struct job *next = k->next;
    if (k->many == NULL) {
      k->status = k->work(db, k->ud);
    } else {
      /* Neighbours with the same many, up to MANY_MAX, in one call. */
      void *uds[MANY_MAX];
      struct job *run[MANY_MAX];
      size_t n = 0, failed = 0;
      for (next = k; next != to_excl && next->many == k->many && n < MANY_MAX; next = next->next) {
        run[n] = next;
        uds[n++] = next->ud;
      }
      int st = k->many(db, uds, n, &failed);
      if (st >= 0 || failed >= n) failed = n - 1; /* the last one ran, or is blamed */
      for (size_t i = 0; i < failed; i++) run[i]->status = 0;
      /* The last job run stands for the call: a failure is its own, and a
       * transaction lost inside the call was lost inside it. */
      k = *stop = run[failed];
      k->status = st < 0 ? st : 0;
    }
    if (!txn_open(db)) return -1;
    if (k->status < 0) return 1;
    k = next;
  }
  return 0;
}

/* Runs the rerunnable jobs from..to_excl under one savepoint. Returns 0
 * when every one succeeded (their statuses set); 1 when *stop failed and
 * the savepoint was rolled back (nothing of the run is left); 2 when the
 * release failed instead (a deferred statement's failure: some job's, not
 * known which; rolled back too); -1 when the transaction ended inside
 * *stop (the jobs after it have not run). */
static int run_together(hg_db_t *db, struct job *from, struct job *to_excl, struct job **stop) {
  *stop = from;
  if (exec_deferred(db, sql_run_savepoint, "savepoint") != 0) return !txn_open(db) ? -1 : 1;
  int r = run_jobs(db, from, to_excl, stop);
  if (r < 0) return -1;
  if (r == 0 && exec_cached(db, sql_run_release, "release") == 0) return 0;
  int unknown = r == 0;
  if (unknown) *stop = from;
  if (!txn_open(db)) return -1;
  undo(db, "hg_run");
  return !txn_open(db) ? -1 : unknown ? 2 : 1;
}

/* Runs rerunnable neighbours from..to_excl: together, and when one fails,
 * the ones before it together again, the failing one alone under its own
 * savepoint, and on with the rest together (so one bad request costs its
 * neighbours one rerun, not a savepoint each); when the run failed at its
 * release (which job's row is not known), each half the same way. Returns
 * 0 with every status set, or -1 when the transaction ended inside *lost. */
static int run_rerunnable(hg_db_t *db, struct job *from, struct job *to_excl, struct job **lost) {
  if (from != to_excl && from->next == to_excl) {
    /* One: alone, under its own savepoint (a half, below). */
    from->status = run_job(db, from);
    if (txn_open(db)) return 0;
    *lost = from;
    return -1;
  }
  struct job *j = from;
  while (j != to_excl) {
    struct job *failed = NULL;
    int r = run_together(db, j, to_excl, &failed);
    if (r == 0) return 0;
    if (r < 0) {
      *lost = failed;
      return -1;
    }
    if (r == 2) {
      /* Some job's deferred row failed, which one is not known: each half
       * again, together. One bad job then costs its run about 2 log2(n)
       * reruns, where trying the jobs one at a time from the first cost
       * one rerun of the rest per job before it (n^2 / 2 jobs' work for a
       * group of n: a publisher able to make rows fail at will could
       * stall the store with it). */
      size_t n = 0;
      for (struct job *k = j; k != to_excl; k = k->next) n++;
      struct job *mid = j;
      for (size_t i = 0; i < n / 2; i++) mid = mid->next;
      if (run_rerunnable(db, j, mid, lost) < 0) return -1;
      return run_rerunnable(db, mid, to_excl, lost);
    }
    if (failed != j) {
      struct job *again = NULL;
      r = run_together(db, j, failed, &again);
      if (r < 0) {
        *lost = again;
        return -1;
      }
      /* A deferred row of one before it failed at a job's own step (a
       * lookup drains what was sent before it), and was blamed on it:
       * the run before it fails at its release now, and is halved. */
      if (r == 2) {
        if (run_rerunnable(db, j, failed, lost) < 0) return -1;
        r = 0;
      }
      for (struct job *k = j; r != 0 && k != failed; k = k->next) {
        /* It failed differently the second time: each alone. */
        k->status = run_job(db, k);
        if (!txn_open(db)) {
          *lost = k;
          return -1;
        }
      }
    }
    failed->status = run_job(db, failed);
    if (!txn_open(db)) {
      *lost = failed;
      return -1;
    }
    j = failed->next;
  }
  return 0;
}

/* What the jobs of a group are told when its BEGIN or COMMIT failed: a
 * full disk, a lost server and a lock not free in time (SQLite's busy
 * timeout: another process holds the write lock; PostgreSQL's
 * lock_timeout) are told apart, because each may clear and the API answers
 * them 503 with Retry-After; anything else is an I/O error. */
static int group_status(int rc) {
  return rc == HG_ENOSPC || rc == HG_EUNAVAIL || rc == HG_EBUSY ? rc : HG_EIO;
}

/* What the jobs of a transaction that ended inside job status's run are
 * told. On PostgreSQL a transaction ends inside a job only with its
 * connection, whatever the job itself returned (it may not have looked at
 * a failed step); on SQLite it is the job's own failure (SQLITE_FULL rolls
 * everything back, say). */
static int txn_lost_status(hg_db_t *db, int status) {
  return hg_db_engine(db) == HG_DB_PG ? HG_EUNAVAIL : group_status(status);
}

static void fail_jobs(struct job *from, struct job *to_excl, int status) {
  for (struct job *k = from; k != to_excl; k = k->next) k->status = status;
}

/* The transaction ended inside job lost: SQLite rolls everything back on
 * errors such as SQLITE_FULL, or the work committed on its own. Every job
 * of it from *first through lost fails (the ones before lost are not
 * durable either), and a new transaction opens for the jobs after, which
 * become *first. Returns -1 when that BEGIN failed (they failed too). */
static int restart_txn(hg_db_t *db, struct job **first, struct job *lost) {
  hg_log(HG_LOG_ERROR, "store transaction ended inside a job; failing its group", NULL);
  int status = txn_lost_status(db, lost->status);
  fail_jobs(*first, lost->next, status);
  *first = lost->next;
  int rc;
  if (*first != NULL && (rc = exec_cached(db, sql_begin(db), "begin")) != 0) {
    fail_jobs(*first, NULL, group_status(rc));
    return -1;
  }
  return 0;
}

/* PostgreSQL, a group of rerunnable jobs only (ingest): run without
 * savepoints and committed in the round trip that sends the last rows, one
 * round trip per group instead of two (the release of the run's savepoint,
 * whose answer tells which run a deferred failure belongs to, then the
 * COMMIT). Returns 1 when committed (*n the jobs), -1 when it cannot be
 * known or the connection was lost (every job failed, as run_group's
 * COMMIT failing fails them), or 0 when a job or a deferred statement
 * failed: everything was rolled back, and the group may run again with
 * savepoints, so that only the failing job fails. */
static int run_optimistic(hg_db_t *db, struct job *batch, uint64_t *ns, uint64_t *n) {
  struct job *stop = NULL;
  *n = 0;
  int r = run_jobs(db, batch, NULL, &stop);
  if (r < 0) {
    fail_jobs(batch, NULL, txn_lost_status(db, stop->status));
    return -1;
  }
  int failure = 0; /* the COMMIT's, a deferred row's */
  if (r == 0) {
    uint64_t t0 = hg_now_ns();
    int rc = exec_cached(db, sql_commit_pg, "commit");
    *ns += hg_now_ns() - t0;
    if (rc == 0) {
      for (struct job *j = batch; j != NULL; j = j->next) (*n)++;
      return 1;
    }
    if (rc == HG_EUNAVAIL || rc == HG_ENOSPC) {
      if (txn_open(db)) hg_db_exec(db, "ROLLBACK", "rollback");
      fail_jobs(batch, NULL, rc);
      return -1;
    }
    failure = deferred_failure(rc);
  }
  if (txn_open(db) && hg_db_exec(db, "ROLLBACK", "rollback") != 0) {
    fail_jobs(batch, NULL, HG_EIO);
    return -1;
  }
  if (batch->next == NULL) {
    /* One job: the failure is its own, and nothing is left to run again
     * (its status is set when the job itself failed). */
    if (r == 0) batch->status = failure;
    return -1;
  }
  return 0;
}

/* Runs one group and ends its transaction with end_sql ("COMMIT"; a
 * measuring build may pass "ROLLBACK", which also sets *committed).
 * Returns the number of jobs that shared the committed transaction (0 when
 * nothing was committed) and adds commit time to *ns. */
static uint64_t run_group(hg_db_t *db, struct job *batch, uint64_t *ns, int *committed, const char *end_sql,
                          int optimistic, int *reran) {
  struct job *first = batch; /* first job of the open transaction */
  uint64_t in_txn = 0;
  *committed = 0;
  int rc = exec_deferred(db, sql_begin(db), "begin");
  if (rc != 0) {
    /* Nothing ran: a caller may run the group again (see thread_main). */
    fail_jobs(batch, NULL, group_status(rc));
    *committed = rc == HG_EUNAVAIL ? -1 : 0;
    return 0;
  }
  if (optimistic) {
    uint64_t n = 0;
    int r = run_optimistic(db, batch, ns, &n);
    if (r != 0) {
      *committed = r > 0;
      return n;
    }
    /* Rolled back: again, with savepoints. */
    if (reran != NULL) *reran = 1;
    if ((rc = exec_deferred(db, sql_begin(db), "begin")) != 0) {
      fail_jobs(batch, NULL, group_status(rc));
      return 0;
    }
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
      if (txn_open(db)) continue;
      in_txn = 0;
      if (restart_txn(db, &first, k) != 0) return 0;
    }
    j = end;
  }
  if (first == NULL) return 0;
  uint64_t t0 = hg_now_ns();
  rc = exec_cached(db, end_sql, "commit");
  *ns += hg_now_ns() - t0;
  if (rc != 0) {
    if (txn_open(db)) hg_db_exec(db, "ROLLBACK", "rollback");
    fail_jobs(first, NULL, group_status(rc));
    return 0;
  }
  *committed = 1;
  return in_txn;
}

hg_store_bounds_t (*hg_store__bounds)(void);

static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

/* Takes a group of logged jobs in a measuring mode (hg_store__bounds):
 * returns 0 when there is none (the group is committed as usual). Nothing
 * it does is written, so nothing is synced either. */
static int bounds_group(hg_db_t *db, struct job *batch, hg_store_bounds_t bounds, uint64_t *ns) {
  int committed;
  if (bounds == HG_STORE_BOUNDS_SKIP)
    for (struct job *j = batch; j != NULL; j = j->next) j->status = 0;
  else if (bounds == HG_STORE_BOUNDS_ROLLBACK)
    run_group(db, batch, ns, &committed, sql_rollback, 0, NULL);
  return bounds != HG_STORE_BOUNDS_OFF;
}

/* ---- PostgreSQL: a lost server ---- */

/* How often the store thread tries to reach a lost server again. Jobs that
 * arrive meanwhile fail at once (HG_EUNAVAIL): the API answers 503 with
 * Retry-After, which is better than holding a request for the length of a
 * connect timeout. */
#define PG_RETRY_NS 500000000u

static void set_available(hg_store_t *s, int on) { __atomic_store_n(&s->available, on, __ATOMIC_RELEASE); }

int hg_store_available(hg_store_t *s) { return __atomic_load_n(&s->available, __ATOMIC_ACQUIRE); }

hg_db_engine_t hg_store_engine(const hg_store_t *s) { return s->engine; }

/* Store thread: the connection failed (a job or the commit saw
 * HG_EUNAVAIL). Drops it; the thread reconnects before the next group. */
static void connection_lost(hg_store_t *s) {
  hg_log(HG_LOG_WARN, "store: the connection to PostgreSQL is lost; requests answer 503 until it is back", "store",
         hg_db_address(s->db), NULL);
  hg_db_close(s->db);
  s->db = NULL;
  set_available(s, 0);
}

/* Store thread, without the mutex: tries once to reach the server again.
 * Returns 1 when the store is connected. */
static int reconnect(hg_store_t *s, uint64_t *last_try) {
  if (s->db != NULL) return 1;
  uint64_t now = hg_now_ns();
  if (*last_try != 0 && now - *last_try < PG_RETRY_NS) return 0;
  *last_try = now;
  char err[256];
  hg_db_t *db = NULL;
  if (hg_db_open(&db, s->address, HG_DB_CACHE, err, sizeof(err)) != 0) return 0;
  s->db = db;
  set_available(s, 1);
  hg_log(HG_LOG_INFO, "store: connected to PostgreSQL again", "store", hg_db_address(db), NULL);
  return 1;
}

static int group_lost_server(struct job *batch) {
  for (struct job *j = batch; j != NULL; j = j->next)
    if (j->status == HG_EUNAVAIL) return 1;
  return 0;
}

static void thread_main(void *arg) {
  hg_store_t *s = arg;
  int niced = 0, pg = s->engine == HG_DB_PG;
  uint64_t last_try = 0;
  hg_store_bounds_t bounds = hg_store__bounds ? hg_store__bounds() : HG_STORE_BOUNDS_OFF;
  uint64_t last_group_ns = 0; /* when the last group was taken */
  int careful = 0;            /* PostgreSQL: groups still to run with savepoints (CAREFUL_GROUPS) */
  uv_mutex_lock(&s->mutex);
  for (;;) {
    while (s->queue == NULL && !s->closing) {
      if (pg && s->db == NULL) {
        /* Lost: keep trying every PG_RETRY_NS, so that the dispatcher
         * (which polls hg_store_available) resumes without a job. */
        uv_cond_timedwait(&s->cond, &s->mutex, PG_RETRY_NS);
        if (s->queue != NULL || s->closing) break;
        uv_mutex_unlock(&s->mutex);
        reconnect(s, &last_try);
        uv_mutex_lock(&s->mutex);
      } else {
        uv_cond_wait(&s->cond, &s->mutex);
      }
    }
    /* Closing with jobs still queued: run them first. */
    if (s->queue == NULL) break;
    /* Busy with logged jobs (as many queued by themselves while the last
     * group ran as make the sync thread wait: not counting what a gather
     * collects, so a gather does not keep itself going): let the group
     * gather (GATHER_NS). */
    if (!pg && s->gather_ns > 0 && !s->queue_eager && s->queue_jobs >= LAZY_SYNC_MIN_JOBS) {
      s->gathering = 1;
      int waited = 0;
      for (uint64_t now = hg_now_ns();
           !s->queue_eager && !s->closing && s->queue_jobs < GATHER_MAX_JOBS && now - last_group_ns < s->gather_ns;
           now = hg_now_ns()) {
        uv_cond_timedwait(&s->cond, &s->mutex, s->gather_ns - (now - last_group_ns));
        waited = 1;
      }
      s->stats.groups_gathered += waited;
      s->gathering = 0;
    }
    struct job *batch = s->queue, **batch_tail = s->queue_tail;
    uint64_t njobs = s->queue_jobs;
    int eager = s->queue_eager;
    last_group_ns = hg_now_ns();
    s->queue = NULL;
    s->queue_tail = &s->queue;
    s->queue_jobs = 0;
    s->queue_eager = 0;
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

    uint64_t ns = 0;
    int committed = 0, wrote = 0, reran = 0;
    uint64_t in_group = 0;
    if (pg) {
      if (!reconnect(s, &last_try)) {
        fail_jobs(batch, NULL, HG_EUNAVAIL);
      } else {
        /* Only rerunnable jobs (ingest): they may run again after a
         * rollback, so the group is first tried without savepoints;
         * not for CAREFUL_GROUPS groups after one that had to run again
         * (requests that keep failing, say a publisher sending ids another
         * organization owns, would otherwise make every group run twice). */
        int optimistic = careful == 0;
        for (struct job *j = batch; j != NULL && optimistic; j = j->next) optimistic = j->rerunnable;
        in_group = run_group(s->db, batch, &ns, &committed, sql_commit, optimistic, &reran);
        if (committed < 0) {
          /* The connection went while the store was idle (a server
           * restart, say) and BEGIN found out: nothing ran, so the group
           * may go again on a new connection at once. */
          connection_lost(s);
          last_try = 0;
          committed = 0;
          if (reconnect(s, &last_try))
            in_group = run_group(s->db, batch, &ns, &committed, sql_commit, optimistic, &reran);
          if (committed < 0) committed = 0;
        }
        if (reran) careful = CAREFUL_GROUPS;
        else if (careful > 0) careful--;
        if (s->db != NULL && group_lost_server(batch)) connection_lost(s);
      }
    } else {
      sqlite3 *native = hg_db_native(s->db);
      int64_t changes = sqlite3_total_changes64(native);
      if (eager || !bounds_group(s->db, batch, bounds, &ns))
        in_group = run_group(s->db, batch, &ns, &committed, sql_commit, 0, NULL);
      /* A group that only read wrote nothing to the log: no fsync for it. */
      wrote = committed && sqlite3_total_changes64(native) != changes;
    }

    uv_mutex_lock(&s->mutex);
    s->stats.jobs += njobs;
    s->stats.commit_ns += ns;
    s->stats.groups_rerun += reran;
    if (committed) s->stats.commits++;
    if (in_group > s->stats.max_batch) s->stats.max_batch = in_group;
    if (committed) {
      hg_hist_observe(&s->stats.commit_seconds, (double)ns / 1e9);
      hg_hist_observe(&s->stats.batch_jobs, (double)in_group);
    }
    if (pg) {
      /* PostgreSQL's COMMIT returned: the group is durable already. */
      s->stats.synced_jobs += njobs;
      *s->done_tail = batch;
      s->done_tail = batch_tail;
      uv_async_send(&s->async);
      continue;
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
  s->queue_jobs += s->local_jobs;
  s->queue_eager |= s->local_eager;
  /* A gathering store thread wakes only when the group should go. */
  if (!s->gathering || s->queue_eager || s->queue_jobs >= GATHER_MAX_JOBS) uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mutex);
  s->local = NULL;
  s->local_tail = &s->local;
  s->local_jobs = 0;
  s->local_eager = 0;
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
  hg_db_close(s->db);
  free(s->address);
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

int hg_store_open(hg_store_t **out, uv_loop_t *loop, const char *address, char *err, size_t errlen) {
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
  s->gather_ns = GATHER_NS;
  s->available = 1;
  s->engine = hg_db_engine_of(address);
  if ((s->address = strdup(address != NULL ? address : "")) == NULL) goto fail;
  if ((rc = hg_db_open(&s->db, address, HG_DB_CACHE, err, errlen)) != 0 ||
      (rc = hg_store_migrate(s->db, err, errlen)) != 0)
    goto fail;
  if (s->engine == HG_DB_SQLITE) {
    /* The sync thread makes commits durable (see durable.c).
     * temp_store=MEMORY keeps savepoint sub-journals in memory: a group's
     * shared savepoint journals every page its jobs change (~100 KiB for a
     * group of fifty events), and past 64 KiB SQLite spilled it to a
     * temporary file, created and unlinked per group. */
    if (hg_db_exec(s->db, "PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY", "pragmas") != 0) {
      hg_set_err(err, errlen, "cannot set synchronous=NORMAL on %s: %s", address, hg_db_errmsg(s->db));
      rc = HG_EIO;
      goto fail;
    }
    rc = HG_ENOMEM;
    const char *file = sqlite3_db_filename(hg_db_native(s->db), "main");
    size_t flen = strlen(file ? file : address);
    if ((s->wal_path = malloc(flen + 5)) == NULL) goto fail;
    memcpy(s->wal_path, file ? file : address, flen);
    memcpy(s->wal_path + flen, "-wal", 5);
  }
  rc = HG_ENOMEM;
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
  /* PostgreSQL's COMMIT is durable by itself: no sync thread, no
   * checkpoints of ours. */
  int sqlite = s->engine == HG_DB_SQLITE;
  if (sqlite && uv_thread_create(&s->sync_thread, hg_store__sync_main, s) != 0) {
    hg_set_err(err, errlen, "cannot start the store's sync thread");
    goto fail_live;
  }
  if (sqlite) hg_store__ckpt_start(s);
  if (uv_thread_create(&s->thread, thread_main, s) != 0) {
    uv_mutex_lock(&s->mutex);
    s->store_exited = 1;
    uv_cond_signal(&s->sync_cond);
    uv_mutex_unlock(&s->mutex);
    if (sqlite) uv_thread_join(&s->sync_thread);
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

static int submit(hg_store_t *s, hg_store_work_fn work, hg_store_work_many_fn many, hg_store_done_fn done, void *ud,
                  int rerunnable, int logged) {
  if (s == NULL || work == NULL) return HG_EINVAL;
  struct job *j = calloc(1, sizeof(*j));
  if (j == NULL) return HG_ENOMEM;
  j->rerunnable = rerunnable;
  j->work = work;
  j->many = many;
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
    s->local_jobs++;
    s->local_eager |= !logged;
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
  s->queue_jobs++;
  s->queue_eager |= !logged;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mutex);
  return 0;
}

int hg_store_submit(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud) {
  return submit(s, work, NULL, done, ud, 0, 0);
}

int hg_store_submit_rerunnable(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud) {
  return submit(s, work, NULL, done, ud, 1, 0);
}

int hg_store_submit_logged(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud) {
  return submit(s, work, NULL, done, ud, 1, 1);
}

int hg_store_submit_many(hg_store_t *s, hg_store_work_fn work, hg_store_work_many_fn many, hg_store_done_fn done,
                         void *ud, int logged) {
  if (many == NULL) return HG_EINVAL;
  return submit(s, work, many, done, ud, 1, logged != 0);
}

void hg_store_set_gather(hg_store_t *s, uint64_t ns) {
  uv_mutex_lock(&s->mutex);
  s->gather_ns = ns;
  uv_mutex_unlock(&s->mutex);
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
  if (s->engine == HG_DB_SQLITE) uv_thread_join(&s->sync_thread);
  hg_store__ckpt_stop(s);
  hg_db_close(s->db);
  s->db = NULL;
  close_handles(s);
}
