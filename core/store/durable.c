/* durable.c: the threads that make the store's commits durable.
 *
 * The fsync is pipelined: the store connection runs with synchronous=NORMAL
 * (a COMMIT writes the write-ahead log but does not sync it) and a second
 * thread, the sync thread, fdatasyncs the log and only then releases the
 * jobs of every group committed before that call began. Nothing is
 * acknowledged before it is durable, as with synchronous=FULL, but the store
 * thread runs the next group's work while the disk syncs the last one:
 * one fsync took ~0.1 ms on the development machine, as long as a group of
 * twenty ingests.
 *
 * A job whose effect the caller already holds durably elsewhere (an event
 * answered from the intake log, which keeps it until the job is done) is
 * submitted as logged: the fsync before its completion may be shared with
 * the groups behind it. While only logged jobs wait for it and the previous
 * fsync covered LAZY_SYNC_MIN_JOBS or more (the store is busy), the sync
 * thread waits up to LAZY_SYNC_NS after that fsync, so that a busy store
 * syncs a few hundred times a second instead of once per group.
 * Completions still come only after an fsync that covers them; only they
 * come later, and only under load.
 *
 * A fourth thread, the checkpoint thread, copies the log into the database
 * (see ckpt_main), so that SQLite's automatic checkpoint no longer runs
 * inside a COMMIT on the store thread. */
#include "store/store_internal.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <unistd.h>

#include "base/common.h"
#include "base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- The sync thread ---- */

/* Makes everything written to the write-ahead log so far durable; returns
 * 0 or an errno value. The log
 * is opened here, read-only, once: SQLite holds no locks on that file, so
 * this descriptor can never drop one of SQLite's. Should the file have been
 * replaced (SQLite keeps it while a connection is open, so only a deleted
 * and recreated store would), the new one is opened and synced too. */
static int sync_wal(hg_store_t *s) {
  for (int attempt = 0; attempt < 2; attempt++) {
    if (s->wal_fd < 0) {
      struct stat st;
      s->wal_fd = open(s->wal_path, O_RDONLY | O_CLOEXEC);
      if (s->wal_fd < 0 || fstat(s->wal_fd, &st) != 0) return errno;
      s->wal_dev = st.st_dev;
      s->wal_ino = st.st_ino;
    }
    if (fdatasync(s->wal_fd) != 0) return errno;
    struct stat now;
    if (stat(s->wal_path, &now) == 0 && now.st_dev == s->wal_dev && now.st_ino == s->wal_ino) return 0;
    close(s->wal_fd);
    s->wal_fd = -1;
  }
  return EIO;
}

/* Guarded by mutex. Whether the sync thread may leave the groups in synq
 * for a later fsync: only logged jobs wait for it, and the last fsync
 * covered at least LAZY_SYNC_MIN_JOBS jobs, so the store is busy and more
 * groups will soon join them. (Whether the store thread has work queued
 * says less: under load it still goes idle between the loop's turns.) */
static int may_wait(const hg_store_t *s, uint64_t last_jobs) {
  return s->synq_dirty && !s->synq_eager && !s->store_exited && last_jobs >= LAZY_SYNC_MIN_JOBS;
}

void hg_store__sync_main(void *arg) {
  hg_store_t *s = arg;
  uint64_t last_sync = 0, last_jobs = 0;
  uv_mutex_lock(&s->mutex);
  for (;;) {
    while (s->synq == NULL && !s->store_exited) uv_cond_wait(&s->sync_cond, &s->mutex);
    if (s->synq == NULL) break;
    /* The store thread signals sync_cond when it adds a group that cannot
     * wait and when it stops: each wake-up looks again. */
    int waited = 0;
    for (uint64_t now = hg_now_ns(); may_wait(s, last_jobs) && now - last_sync < s->lazy_sync_ns; now = hg_now_ns()) {
      uv_cond_timedwait(&s->sync_cond, &s->mutex, s->lazy_sync_ns - (now - last_sync));
      waited = 1;
    }
    struct job *list = s->synq, **tail = s->synq_tail;
    int dirty = s->synq_dirty;
    uint64_t jobs = s->synq_jobs;
    s->synq = NULL;
    s->synq_tail = &s->synq;
    s->synq_dirty = 0;
    s->synq_eager = 0;
    s->synq_jobs = 0;
    uv_mutex_unlock(&s->mutex);

    int rc = 0; /* an errno value */
    uint64_t t0 = hg_now_ns(), ns = 0;
    if (dirty) {
      rc = sync_wal(s);
      ns = hg_now_ns() - t0;
      last_sync = t0;
      last_jobs = jobs;
    }
    if (rc != 0) {
      /* Committed, but whether it reached the disk is unknown, and Linux
       * reports a failed writeback once: the next fdatasync may succeed
       * over pages that were dropped. Carrying on could acknowledge (or
       * serve, or answer an idempotent retry from) rows that a power cut
       * would take away. Stop instead: on restart SQLite recovers from
       * what is really on disk, and every delivery not yet recorded is
       * still pending there. */
      hg_log(HG_LOG_ERROR, "store fsync failed; stopping so that nothing unsynced is acknowledged", "file",
             s->wal_path, "error", uv_strerror(uv_translate_sys_error(rc)), NULL);
      abort();
    }

    uv_mutex_lock(&s->mutex);
    if (dirty) {
      s->stats.syncs++;
      s->stats.syncs_waited += waited;
      hg_hist_observe(&s->stats.sync_seconds, (double)ns / 1e9);
    }
    s->stats.synced_jobs += jobs;
    *s->done_tail = list;
    s->done_tail = tail;
    uv_async_send(&s->async);
  }
  uv_mutex_unlock(&s->mutex);
}

/* ---- The checkpoint thread ----
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that takes the log
 * past 1,000 frames: on the store thread, which then reads the log back,
 * writes the pages into the database and fsyncs both while every job
 * behind it waits. Here a thread of its own does that work, with a
 * connection of its own, in PASSIVE mode (it copies what no reader still
 * needs and never blocks the store connection), each time the log has
 * grown by CKPT_FRAMES. Under steady writes such a checkpoint rarely
 * copies the whole log (the store commits again meanwhile), and SQLite
 * starts the log again from its beginning only after one has: so once the
 * log reaches CKPT_FRAMES_MAX the store thread runs a PASSIVE checkpoint
 * itself, which finds most frames copied already and completes. */
#define CKPT_FRAMES 1000
#define CKPT_FRAMES_MAX (4 * CKPT_FRAMES)

static void ckpt_fail(sqlite3 *db, const char *op) {
  hg_log(HG_LOG_ERROR, "sqlite error", "op", op, "error", sqlite3_errmsg(db), NULL);
}

/* Store thread only (SQLite calls it after each commit). */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
  hg_store_t *s = ud;
  if (frames < s->ckpt_next - CKPT_FRAMES) s->ckpt_next = CKPT_FRAMES; /* the log started again */
  if (frames >= CKPT_FRAMES_MAX) {
    /* Busy (the checkpoint thread is in one) or not, a later commit tries again. */
    int copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, &copied);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) ckpt_fail(db, "checkpoint");
    if (rc == SQLITE_OK && copied > 0) {
      uv_mutex_lock(&s->mutex);
      s->stats.checkpoints_inline++;
      uv_mutex_unlock(&s->mutex);
    }
    return SQLITE_OK;
  }
  if (frames < s->ckpt_next) return SQLITE_OK;
  s->ckpt_next = frames + CKPT_FRAMES;
  uv_mutex_lock(&s->mutex);
  s->ckpt_wanted = 1;
  uv_cond_signal(&s->ckpt_cond);
  uv_mutex_unlock(&s->mutex);
  return SQLITE_OK;
}

static void ckpt_main(void *arg) {
  hg_store_t *s = arg;
  uv_mutex_lock(&s->mutex);
  for (;;) {
    while (!s->ckpt_wanted && !s->ckpt_quit) uv_cond_wait(&s->ckpt_cond, &s->mutex);
    if (s->ckpt_quit) break;
    s->ckpt_wanted = 0;
    uv_mutex_unlock(&s->mutex);
    int log = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) ckpt_fail(s->ckpt_db, "checkpoint");
    if (rc == SQLITE_OK && log < 0) hg_log(HG_LOG_WARN, "store checkpoint found no log to copy", NULL);
    uv_mutex_lock(&s->mutex);
    if (rc == SQLITE_OK && copied > 0) s->stats.checkpoints++;
  }
  uv_mutex_unlock(&s->mutex);
}

/* Starts the checkpoint thread. Without it (no second connection, no
 * thread) the store keeps SQLite's automatic checkpoint: slower, not
 * wrong. */
void hg_store__ckpt_start(hg_store_t *s) {
  const char *file = sqlite3_db_filename(hg_db_native(s->db), "main");
  if (file == NULL || uv_cond_init(&s->ckpt_cond) != 0) return;
  s->ckpt_cond_ok = 1;
  /* synchronous=NORMAL (never OFF): the checkpoint fsyncs the log before
   * it copies frames (the sync thread may not have reached them yet) and
   * the database before the log may start again. A connection checkpoints
   * only once it has read the log: the schema read attaches it. */
  int rc = sqlite3_open_v2(file, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(s->ckpt_db, 5000);
    rc = sqlite3_exec(s->ckpt_db, "PRAGMA synchronous=NORMAL; SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
  }
  const char *why = NULL;
  if (rc != SQLITE_OK) why = sqlite3_errmsg(s->ckpt_db);
  else if (uv_thread_create(&s->ckpt_thread, ckpt_main, s) != 0) why = "cannot start a thread";
  if (why != NULL) {
    hg_log(HG_LOG_WARN, "store checkpoints stay on the store thread", "reason", why, NULL);
    sqlite3_close(s->ckpt_db);
    s->ckpt_db = NULL;
    return;
  }
  s->ckpt_next = CKPT_FRAMES;
  /* Replaces SQLite's automatic checkpoint on the store connection. */
  sqlite3_wal_hook(hg_db_native(s->db), wal_hook, s);
}

/* Stops the checkpoint thread and closes its connection: before the store
 * connection, so that the last close (the store's) checkpoints and removes
 * the log as usual. */
void hg_store__ckpt_stop(hg_store_t *s) {
  if (s->ckpt_db == NULL) return;
  uv_mutex_lock(&s->mutex);
  s->ckpt_quit = 1;
  uv_cond_signal(&s->ckpt_cond);
  uv_mutex_unlock(&s->mutex);
  uv_thread_join(&s->ckpt_thread);
  sqlite3_close(s->ckpt_db);
  s->ckpt_db = NULL;
}
