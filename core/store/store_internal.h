/* store_internal.h: what the store's files share.
 *
 *   store.c    the job model: the statement cache, the store thread (groups,
 *              savepoints, rerunnable jobs, a transaction lost inside a
 *              job), the loop side (jobs handed over once per loop turn,
 *              completions through uv_async), open, submit, stats, close,
 *              the measuring build's hook; it allocates and frees every
 *              field of hg_store
 *   durable.c  the threads that make a committed group durable: the sync
 *              thread (fdatasync of the write-ahead log, the lazy sync of
 *              logged jobs) and the checkpoint thread
 *   migrate.c  applying schema.c's (SQLite) and schema_pg.c's (PostgreSQL)
 *              migrations; opening a connection is db.h's
 *
 * A job goes: submit (loop thread: local, then queue at the end of the loop
 * turn) -> the store thread (runs it in a group, commits, appends the group
 * to synq) -> the sync thread (fdatasync, then moves synq to done) -> the
 * loop (uv_async: frees the job, runs its completion). */
#ifndef HG_STORE_INTERNAL_H
#define HG_STORE_INTERNAL_H

#include "store/store.h"

#include <sys/types.h>

/* At most one fsync per this many ns while only logged jobs wait for one
 * and the store is busy: 2 ms holds ~100 events per fsync at 50,000 a
 * second, and delays their completions (the dispatch of their deliveries,
 * the release of their log space) by at most that much. */
#define LAZY_SYNC_NS 2000000u
/* A trickle of events (each fsync covering fewer jobs than this) is synced
 * at once, so their deliveries go out without that delay. */
#define LAZY_SYNC_MIN_JOBS 16
/* While the store is busy with logged jobs only (SQLite; LAZY_SYNC_MIN_JOBS
 * or more queued while the last group ran), the store thread lets the next
 * group gather until GATHER_NS after the previous one began, or until
 * GATHER_MAX_JOBS wait, or a job that is not logged arrives. Each COMMIT
 * rewrites the pages its rows share with the last one's (the table's last
 * leaf, each index's), so a group of 200 events writes a third of the pages
 * per event that groups of 40 do. Logged jobs' answers went from the intake
 * log already: only their deliveries' dispatch waits, and only under load
 * (and, in the rare turn whose log write failed, those events' answers). */
#define GATHER_NS 4000000u
#define GATHER_MAX_JOBS HG_STORE_GATHER_MAX_JOBS

struct job {
  struct job *next;
  hg_store_work_fn work;
  hg_store_work_many_fn many; /* or NULL */
  hg_store_done_fn done;
  void *ud;
  int status;
  int rerunnable;
};

struct hg_store {
  uv_loop_t *loop;
  uv_async_t async;
  uv_thread_t thread;
  uv_mutex_t mutex;
  uv_cond_t cond;
  int mutex_ok, cond_ok;
  hg_db_t *db; /* used only by the store thread once it runs */
  hg_db_engine_t engine;
  char *address; /* PostgreSQL: what the store thread reconnects to */
  int available; /* hg_store_available; atomic (__atomic builtins) */
  /* Guarded by mutex. */
  struct job *queue, **queue_tail;
  uint64_t queue_jobs; /* how many jobs queue holds */
  int queue_eager;     /* a job in queue was not submitted as logged */
  int gathering;       /* the store thread waits for a group to gather */
  uint64_t gather_ns;  /* GATHER_NS unless hg_store_set_gather (0: off) */
  struct job *done, **done_tail;
  struct job *synq, **synq_tail; /* committed, waiting for the fsync */
  int synq_dirty;                /* a group in synq wrote to the log */
  int synq_eager;                /* a job in synq was not submitted as logged */
  uint64_t synq_jobs;            /* how many jobs synq holds */
  uint64_t lazy_sync_ns;         /* LAZY_SYNC_NS unless hg_store_set_lazy_sync */
  int closing;
  int nice; /* the store thread's nice value (hg_store_set_nice) */
  int store_exited; /* the store thread is gone: the sync thread drains and ends */
  /* The checkpoint thread's (see durable.c); it runs while ckpt_db is
   * open. ckpt_wanted and ckpt_quit are guarded by mutex. */
  uv_thread_t ckpt_thread;
  uv_cond_t ckpt_cond;
  int ckpt_cond_ok;
  int ckpt_wanted, ckpt_quit;
  struct sqlite3 *ckpt_db;
  int ckpt_next; /* the store thread's: log frames at which to wake it next */
  hg_store_stats_t stats;
  /* The sync thread's. */
  uv_thread_t sync_thread;
  uv_cond_t sync_cond;
  int sync_cond_ok;
  char *wal_path;
  int wal_fd;
  dev_t wal_dev;
  ino_t wal_ino;
  /* Loop thread only. Jobs submitted on the loop thread wait in local
   * until the loop's prepare or check phase hands them over in one go: one
   * lock and at most one wake-up of the store thread per loop turn instead
   * of one per job (futex calls were a third of a trivial ingest's CPU). */
  uv_thread_t loop_thread;
  uv_prepare_t prepare;
  uv_check_t check;
  struct job *local, **local_tail;
  uint64_t local_jobs;
  int local_eager;
  int handles_open; /* async, prepare, check: freed when all are closed */
  int close_called;
};

/* durable.c. The sync thread's body (uv_thread_create with s): waits on
 * sync_cond under mutex for groups in synq, fdatasyncs the log outside the
 * lock, then moves them to done and wakes the loop. Ends once store_exited
 * is set and synq is empty; aborts the process if an fsync fails. */
void hg_store__sync_main(void *arg);

/* durable.c. Starts the checkpoint thread and installs the wal hook that
 * wakes it on s->db. Loop thread, in hg_store_open, after s->db is open and
 * mutex is initialised, before the store thread starts. Cannot fail: when
 * the thread cannot start, SQLite's automatic checkpoint stays in place. */
void hg_store__ckpt_start(hg_store_t *s);

/* durable.c. Stops the checkpoint thread and closes its connection. Loop
 * thread, after the store thread has been joined and before s->db is
 * closed; takes mutex. A no-op when the thread is not running. */
void hg_store__ckpt_stop(hg_store_t *s);

#endif
