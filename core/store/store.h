/* store.h: the store (SQLite or PostgreSQL, db.h) and its writer thread.
 *
 * PostgreSQL: the same job model on one connection; a group is one
 * transaction whose COMMIT (synchronous_commit on) makes it durable, so no
 * fsync of its own. While the server cannot be reached, jobs complete with
 * HG_EUNAVAIL without running and the thread reconnects by itself.
 *
 * SQLite: the description below.
 *
 * The loop thread never touches disk. Work is a function that runs on the
 * store thread with the SQLite connection; the completion runs back on the
 * loop (through uv_async). Everything that arrives while a transaction is
 * being committed is run in the next one: one transaction and one fsync for
 * a whole group (group commit). Each job runs inside its own SAVEPOINT, so
 * a job that fails rolls back only its own changes. A completion runs only
 * after the transaction holding its job is durable (WAL, synchronous=FULL). */
#ifndef HG_STORE_H
#define HG_STORE_H

#include "base/metrics.h"

#include "store/db.h"

#include <stdint.h>
#include <uv.h>

typedef struct hg_store hg_store_t;

/* Runs on the store thread. Returns 0 to keep its changes, or a negative
 * HG_E* code to roll them back (its savepoint only). Must not block on
 * anything but SQLite, and must not touch loop-thread state. */
typedef int (*hg_store_work_fn)(hg_db_t *db, void *ud);

/* Runs the work of n neighbouring jobs submitted with the same many
 * (hg_store_submit_many), uds[i] being each one's ud, in order, as their
 * work functions would one after the other, but free to share statements
 * between them (PostgreSQL: several events' rows in one INSERT). Stops at
 * the first job that fails: returns 0 when all n succeeded, or that job's
 * negative status with *failed its index. Statements it defers may fail
 * later, at the savepoint's release: the store then treats the run as it
 * treats any failure there. */
typedef int (*hg_store_work_many_fn)(hg_db_t *db, void *const *uds, size_t n, size_t *failed);

/* Runs on the loop thread once the job's transaction is durable (or rolled
 * back): status is the work function's return, or HG_EIO when the commit
 * itself failed. */
typedef void (*hg_store_done_fn)(int status, void *ud);

typedef struct hg_store_stats {
  uint64_t commits;      /* transactions committed */
  uint64_t jobs;         /* jobs run */
  uint64_t max_batch;    /* most jobs in one transaction */
  uint64_t commit_ns;    /* total time spent in COMMIT (the log written, not synced) */
  uint64_t syncs;        /* fsyncs of the write-ahead log */
  uint64_t syncs_waited; /* of them, those that waited for more groups (logged jobs) */
  uint64_t groups_gathered; /* groups the store thread let gather (GATHER_NS) */
  uint64_t groups_rerun;    /* PostgreSQL: groups tried without savepoints, rolled back and run again */
  uint64_t synced_jobs;  /* jobs whose fsync is done (counted before their completions run) */
  uint64_t checkpoints;  /* checkpoints by the checkpoint thread that copied frames */
  uint64_t checkpoints_inline; /* the same, by the store thread (the log at 4,000 frames) */
  hg_hist_t commit_seconds; /* one COMMIT: the write-ahead log written */
  hg_hist_t sync_seconds;   /* one fdatasync of the log (makes every commit before it durable) */
  hg_hist_t batch_jobs;     /* jobs per transaction */
} hg_store_stats_t;

/* Process-wide SQLite settings (no memory statistics). Call once, first
 * thing in main, before any thread starts and before SQLite is used:
 * returns HG_ESTATE (and changes nothing) once SQLite has initialised. */
int hg_store_global_init(void);

/* Opens address (hg_db_open: a SQLite file, created with its parent
 * directories, mode 0700, if needed; or a PostgreSQL URI), applies
 * pending migrations, and starts the
 * store thread. Call it on the thread that runs loop: that thread is "the
 * loop thread" below. A database whose schema is newer than this binary is
 * refused with HG_ECORRUPT and a message in err. On failure *out is NULL,
 * err says why (err may be NULL), and the loop may still have to run once
 * to release the store's handles. Runs on, and blocks, the calling (loop)
 * thread while migrating: meant for start-up. */
int hg_store_open(hg_store_t **out, uv_loop_t *loop, const char *address, char *err, size_t errlen);

/* The engine the store runs on. */
hg_db_engine_t hg_store_engine(const hg_store_t *s);

/* 0 while the store's server is unreachable (PostgreSQL: the connection
 * lost and not yet back), 1 otherwise; always 1 on SQLite. Jobs submitted
 * while it is 0 complete with HG_EUNAVAIL without running. Any thread. */
int hg_store_available(hg_store_t *s);

/* Queues a job; ud is borrowed until done runs. done may be NULL. Never
 * runs done inside this call. Thread-safe but meant for the loop thread.
 * Jobs submitted on the loop thread reach the store thread together, in
 * order, at the loop's next check phase (jobs from I/O callbacks: the same
 * turn) or prepare phase (jobs from timers and close callbacks: before the
 * loop next waits for I/O), or at hg_store_flush. uv_run must therefore
 * keep running (UV_RUN_DEFAULT, or ONCE/NOWAIT again) until they are done.
 * From any other thread a job goes at once, and so may overtake jobs the
 * loop thread submitted earlier in the same turn.
 * Returns 0, HG_EINVAL (NULL store or work), HG_ENOMEM, or HG_ESTATE once
 * the store is closing (done is then never called). */
int hg_store_submit(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud);

/* Hands the jobs submitted on the loop thread to the store thread now,
 * instead of at the end of this loop turn: for a caller that is about to
 * block the loop until the store has run them (tests). A no-op on any
 * other thread. */
void hg_store_flush(hg_store_t *s);

/* As hg_store_submit, for a job that may run twice: neighbouring
 * rerunnable jobs share one savepoint, and when one of them fails that
 * savepoint is rolled back and each runs again under its own (so a failing
 * job still undoes only itself). work must therefore set everything it
 * reports afresh on each run and must not depend on having run before; it
 * never runs twice after succeeding. For small, frequent jobs: a savepoint
 * per job costs more than the work of a one-row insert. */
int hg_store_submit_rerunnable(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud);

/* As hg_store_submit_rerunnable, for a job whose effect the caller holds
 * durably elsewhere until done runs (an event in the intake log): done
 * still runs only after an fsync covers the job, but while only such jobs
 * wait for one and the previous fsync covered 16 jobs or more (the store
 * is busy), that fsync may wait up to 2 ms after the previous one, to be
 * shared with the groups behind. */
int hg_store_submit_logged(hg_store_t *s, hg_store_work_fn work, hg_store_done_fn done, void *ud);

/* As hg_store_submit_rerunnable (or, with logged set,
 * hg_store_submit_logged), for a job whose neighbours with the same many
 * may run together through it (hg_store_work_many_fn). work still runs it
 * alone: when a run fails, the failing job is run again by itself. */
int hg_store_submit_many(hg_store_t *s, hg_store_work_fn work, hg_store_work_many_fn many, hg_store_done_fn done,
                         void *ud, int logged);

/* Runs the store thread at this nice value (0 normal, up to 19 lowest)
 * from its next group on: for a gateway whose requests do not wait for
 * the store (the intake log, intake.h), so that under a full CPU the
 * threads requests do wait for run first. The thread takes bigger groups
 * when it runs less often, which also costs less per job. */
void hg_store_set_nice(hg_store_t *s, int nice);

/* How long the sync thread may hold logged jobs' fsync back (2 ms unless
 * set): for tests, which need a window no slow machine misses. */
void hg_store_set_lazy_sync(hg_store_t *s, uint64_t ns);

/* How long, after a busy group of logged jobs began, the store thread lets
 * the next gather before it runs it (4 ms unless set; 0 turns it off), up
 * to HG_STORE_GATHER_MAX_JOBS jobs. SQLite only. For tests and
 * benchmarks. */
void hg_store_set_gather(hg_store_t *s, uint64_t ns);
#define HG_STORE_GATHER_MAX_JOBS 1024

/* Copies the counters. */
void hg_store_stats(hg_store_t *s, hg_store_stats_t *out);

/* What the store thread does with a group made only of logged jobs (events
 * the intake log answered): commits it (OFF, the product); runs it and
 * rolls it back, so that SQLite does the inserts but writes and syncs
 * nothing (ROLLBACK); or does not run it (SKIP). The last two report
 * success and lose the events: they bound what storing events costs
 * ingest. */
typedef enum { HG_STORE_BOUNDS_OFF, HG_STORE_BOUNDS_ROLLBACK, HG_STORE_BOUNDS_SKIP } hg_store_bounds_t;

/* A measuring build's hook (bench/experiments/bounds.c installs it; NULL in
 * the product): called once on each store thread as it starts, it returns
 * the thread's hg_store_bounds_t. */
extern hg_store_bounds_t (*hg_store__bounds)(void);

/* Runs the jobs already queued, commits them, stops the thread and closes
 * the database; completions of those jobs still run, on the loop, after
 * this returns (never inside it). Blocks the calling thread until the last
 * group is committed. The store is freed once the loop has run the
 * uv_async close callback; until then submit returns HG_ESTATE and stats
 * still work. Loop thread only; may be called from a done callback.
 * Accepts NULL; a second call is a no-op. */
void hg_store_close(hg_store_t *s);

/* For the CLI (keys create/list/revoke) and tests: opens address (a
 * SQLite path or a PostgreSQL URI, see hg_db_engine_of) on the calling
 * thread with the same settings and migrations. Close with hg_db_close(). */
int hg_store_open_sync(hg_db_t **out, const char *address, char *err, size_t errlen);

/* Applies pending migrations to db. Returns 0, HG_ECORRUPT (schema newer
 * than this binary, message in err), HG_EUNAVAIL or HG_EIO. */
int hg_store_migrate(hg_db_t *db, char *err, size_t errlen);

/* The schema version this binary migrates the given engine to. */
int hg_store_schema_version(hg_db_engine_t engine);

#endif
