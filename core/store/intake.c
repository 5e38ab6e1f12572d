/* intake.c: the intake log (see intake.h).
 *
 * Three parties: the loop thread appends records to a local batch and, in
 * the loop's prepare and check phases, hands the turn's batch to the log's
 * thread (one lock, one wake-up per turn, as the store does); the log's
 * thread writes what it was handed with one pwrite per segment, fdatasyncs,
 * and hands the completions back through a uv_async. While it syncs, the
 * next turns' records gather: a group commit of its own. */
#include "store/intake.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/fs.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* A segment holds at least 8 of the largest records, and writing one full
 * of zeros (once, when created) takes ~10 ms here. */
#define SEGMENT_BYTES (8u * 1024 * 1024)
#define SEG_HDR 32
#define REC_HDR 16 /* u32 length, u32 CRC, u64 number */
/* Released segments kept for reuse: one to move into at the next rotation
 * and one more, so that a burst does not wait for a new file. */
#define SPARE_SEGMENTS 2
static const char seg_magic[8] = {'H', 'G', 'I', 'N', 'T', 'K', '0', '1'};

struct comp {
  hg_intake_done_fn fn;
  void *ud;
  int status;
};

/* Records (each REC_HDR + bytes, CRC not yet set) and their completions. */
struct batch {
  unsigned char *buf;
  size_t len, cap;
  struct comp *c;
  size_t n, ncap;
};

struct seg {
  int fd;
  int slot;          /* the file is seg-<slot>.log */
  uint64_t first;    /* number of its first record */
  uint64_t last;     /* of its last record so far (first - 1: none) */
  uint64_t salt;
};

struct hg_intake {
  uv_loop_t *loop;
  uv_thread_t thread, loop_thread;
  uv_mutex_t mutex;
  uv_cond_t cond;
  int mutex_ok, cond_ok, thread_ok;
  uv_async_t async;
  uv_prepare_t prepare;
  uv_check_t check;
  int handles_open;
  char *dir;
  int dir_fd;
  /* Loop thread only. */
  struct batch local;
  struct comp *running; /* completions being run: swapped with done */
  size_t running_cap;
  uint64_t next_lsn;
  int close_called;
  /* Guarded by mutex. */
  struct batch queued;
  struct comp *done;
  size_t ndone, done_cap;
  int closing, failed;
  hg_intake_stats_t stats;
  uint64_t released; /* atomic: written by the loop, read by the thread */
  /* The thread's (and open's, before it starts). */
  struct batch work;
  struct seg *segs; /* in use, oldest first; the last is being written */
  size_t nsegs;
  struct seg *spare; /* zeroed or fully released, ready to reuse */
  size_t nspare;
  size_t off; /* write offset in the current segment */
  int next_slot;
  uint64_t t_bytes, t_segments; /* added to stats under the mutex */
};

static uint32_t rec_crc(uint64_t salt, const unsigned char *rec, size_t len) {
  /* Over the salt, the length, the number and the bytes (the CRC field
   * itself, rec[4..8), left out). */
  uLong c = crc32(0L, (const Bytef *)&salt, sizeof(salt));
  c = crc32(c, rec, 4);
  c = crc32(c, rec + 8, (uInt)(8 + len));
  return (uint32_t)c;
}

static void put_header(unsigned char h[SEG_HDR], uint64_t first, uint64_t salt) {
  memset(h, 0, SEG_HDR);
  memcpy(h, seg_magic, 8);
  memcpy(h + 8, &first, 8);
  memcpy(h + 16, &salt, 8);
  uint32_t c = (uint32_t)crc32(0L, h, 24);
  memcpy(h + 24, &c, 4);
}

/* 1 and fills *first and *salt when h is a valid header. */
static int get_header(const unsigned char h[SEG_HDR], uint64_t *first, uint64_t *salt) {
  uint32_t c;
  memcpy(&c, h + 24, 4);
  if (memcmp(h, seg_magic, 8) != 0 || c != (uint32_t)crc32(0L, h, 24)) return 0;
  memcpy(first, h + 8, 8);
  memcpy(salt, h + 16, 8);
  return 1;
}

static int pwrite_all(int fd, const void *p, size_t n, size_t off) {
  const unsigned char *b = p;
  while (n > 0) {
    ssize_t w = pwrite(fd, b, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    b += w;
    n -= (size_t)w;
    off += (size_t)w;
  }
  return 0;
}

static int seg_slot(const char *name) {
  int slot;
  char tail;
  if (sscanf(name, "seg-%d.lo%c", &slot, &tail) != 2 || tail != 'g' || slot < 0) return -1;
  return slot;
}

/* ---- Recovery ---- */

struct found {
  int slot;
  uint64_t first, salt;
};

static int cmp_found(const void *a, const void *b) {
  const struct found *x = a, *y = b;
  return x->first < y->first ? -1 : x->first > y->first;
}

/* Lists dir's segment files with a valid header, oldest first. */
static int list_segments(const char *dir, struct found **out, size_t *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (d == NULL) {
    if (errno == ENOENT) return 0;
    hg_set_err(err, errlen, "cannot read %s: %s", dir, strerror(errno));
    return HG_EIO;
  }
  size_t cap = 0;
  struct dirent *e;
  int r = 0;
  while ((e = readdir(d)) != NULL) {
    int slot = seg_slot(e->d_name);
    if (slot < 0) continue;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      hg_set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
      r = HG_EIO;
      break;
    }
    unsigned char h[SEG_HDR];
    ssize_t got = pread(fd, h, SEG_HDR, 0);
    int read_errno = errno;
    close(fd);
    if (got < 0) {
      hg_set_err(err, errlen, "cannot read %s: %s", path, strerror(read_errno));
      r = HG_EIO;
      break;
    }
    struct found f = {slot, 0, 0};
    if (got != SEG_HDR || !get_header(h, &f.first, &f.salt)) continue;
    if (hg_grow(out, &cap, *n + 1, sizeof(**out), 8) != 0) {
      r = HG_ENOMEM;
      break;
    }
    (*out)[(*n)++] = f;
  }
  closedir(d);
  if (r != 0) {
    free(*out);
    *out = NULL;
    *n = 0;
    return r;
  }
  if (*n > 1) qsort(*out, *n, sizeof(**out), cmp_found);
  return 0;
}

int hg_intake_recover(const char *dir, hg_intake_record_fn fn, void *ud, char *err, size_t errlen) {
  struct found *segs;
  size_t n;
  int r = list_segments(dir, &segs, &n, err, errlen);
  if (r != 0) return r;
  /* Mapped, not malloc'd: glibc raises its mmap threshold to the size of a
   * freed mapping, and the dispatcher's queue grown after this start then
   * came from the heap instead, fragmented (+17 MiB of RSS with a million
   * pending deliveries). */
  unsigned char *buf = NULL;
  if (n > 0) {
    void *m = mmap(NULL, SEGMENT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      hg_set_err(err, errlen, "cannot map a buffer to read %s: %s", dir, strerror(errno));
      r = HG_ENOMEM;
    } else {
      buf = m;
    }
  }
  for (size_t i = 0; r == 0 && i < n; i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/seg-%d.log", dir, segs[i].slot);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      hg_set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
      r = HG_EIO;
      break;
    }
    size_t have = 0;
    while (have < SEGMENT_BYTES) {
      ssize_t got = pread(fd, buf + have, SEGMENT_BYTES - have, (off_t)have);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        /* Not the end of the log: records after this point may have been
         * answered. Refuse rather than start without them. */
        hg_set_err(err, errlen, "cannot read %s: %s", path, strerror(errno));
        r = HG_EIO;
        break;
      }
      if (got == 0) break;
      have += (size_t)got;
    }
    close(fd);
    if (r != 0) break;
    size_t off = SEG_HDR;
    uint64_t want = segs[i].first;
    while (off + REC_HDR <= have) {
      uint32_t len, crc;
      uint64_t lsn;
      memcpy(&len, buf + off, 4);
      memcpy(&crc, buf + off + 4, 4);
      memcpy(&lsn, buf + off + 8, 8);
      if (len == 0 || len > HG_INTAKE_MAX_RECORD || off + REC_HDR + len > have || lsn != want) break;
      if (crc != rec_crc(segs[i].salt, buf + off, len)) break;
      if ((r = fn(lsn, buf + off + REC_HDR, len, ud)) != 0) break;
      off += REC_HDR + len;
      want++;
    }
    if (r == 0 && i + 1 < n && segs[i + 1].first != want) {
      /* A segment that ends before the next one starts: either one retired
       * earlier whose header wipe a crash undid (harmless: its records were
       * stored), or a record that failed its check (damage). What follows
       * is recovered either way. */
      char a[24], b[24];
      a[hg_fmt_u64(a, want)] = '\0';
      b[hg_fmt_u64(b, segs[i + 1].first)] = '\0';
      hg_log(HG_LOG_WARN, "intake log: a segment ends before the next one starts", "file", path, "ends_before", a,
             "next_starts", b, NULL);
    }
  }
  if (buf != NULL) munmap(buf, SEGMENT_BYTES);
  free(segs);
  return r;
}

/* ---- Segments (the log's thread, or open before it starts) ---- */

static int seg_path(hg_intake_t *ix, int slot, char *path, size_t cap) {
  return snprintf(path, cap, "%s/seg-%d.log", ix->dir, slot) < (int)cap ? 0 : HG_EINVAL;
}

/* A new segment file, written full of zeros and synced, its directory
 * entry too. Returns 0 or an errno value. */
static int seg_create(hg_intake_t *ix, struct seg *out) {
  char path[4096];
  int slot = ix->next_slot++;
  if (seg_path(ix, slot, path, sizeof(path)) != 0) return ENAMETOOLONG;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  static const unsigned char zeros[64 * 1024];
  int rc = 0;
  for (size_t off = 0; rc == 0 && off < SEGMENT_BYTES; off += sizeof(zeros))
    rc = pwrite_all(fd, zeros, sizeof(zeros), off);
  if (rc == 0 && fdatasync(fd) != 0) rc = errno;
  if (rc == 0 && fsync(ix->dir_fd) != 0) rc = errno;
  if (rc != 0) {
    close(fd);
    unlink(path);
    return rc;
  }
  out->fd = fd;
  out->slot = slot;
  out->first = out->last = 0;
  out->salt = 0;
  ix->t_segments++;
  return 0;
}

/* Puts a segment whose records are all applied among the spares, its header
 * wiped so that recovery skips it (should the wipe be lost in a crash,
 * recovery hands back records already applied: harmless). */
static void seg_retire(hg_intake_t *ix, struct seg *sg) {
  static const unsigned char zeros[SEG_HDR];
  if (ix->nspare < SPARE_SEGMENTS && pwrite_all(sg->fd, zeros, SEG_HDR, 0) == 0) {
    ix->spare[ix->nspare++] = *sg;
    return;
  }
  char path[4096];
  close(sg->fd);
  if (seg_path(ix, sg->slot, path, sizeof(path)) == 0) unlink(path);
}

/* Retires the oldest segments whose records are all released; the one
 * being written too when current is set (it is full). */
static void retire_released(hg_intake_t *ix, int current) {
  uint64_t released = __atomic_load_n(&ix->released, __ATOMIC_ACQUIRE);
  size_t last = current ? ix->nsegs : (ix->nsegs > 0 ? ix->nsegs - 1 : 0), keep = 0;
  while (keep < last && ix->segs[keep].last <= released && ix->segs[keep].last >= ix->segs[keep].first) keep++;
  if (keep == 0) return;
  for (size_t i = 0; i < keep; i++) seg_retire(ix, &ix->segs[i]);
  memmove(ix->segs, ix->segs + keep, (ix->nsegs - keep) * sizeof(*ix->segs));
  ix->nsegs -= keep;
}

/* Starts a new segment for records from lsn on: reuses a spare (after
 * retiring every segment whose records are all released) or creates one.
 * Returns 0 or an errno value. */
static int seg_next(hg_intake_t *ix, uint64_t lsn) {
  retire_released(ix, 1);
  struct seg sg;
  if (ix->nspare > 0) {
    sg = ix->spare[--ix->nspare];
  } else {
    int rc = seg_create(ix, &sg);
    if (rc != 0) return rc;
  }
  struct seg *grown = realloc(ix->segs, (ix->nsegs + 1) * sizeof(*grown));
  if (grown == NULL) {
    ix->spare[ix->nspare++] = sg; /* there was room: it came from there or nspare was 0 */
    return ENOMEM;
  }
  ix->segs = grown;
  if (getrandom(&sg.salt, sizeof(sg.salt), 0) != (ssize_t)sizeof(sg.salt)) sg.salt = hg_now_ns() ^ (uint64_t)lsn;
  sg.first = lsn;
  sg.last = lsn - 1;
  unsigned char h[SEG_HDR];
  put_header(h, sg.first, sg.salt);
  int rc = pwrite_all(sg.fd, h, SEG_HDR, 0);
  ix->segs[ix->nsegs++] = sg;
  ix->off = SEG_HDR;
  return rc;
}

/* Writes a batch: its records in order, each whole in one segment, then
 * fdatasync. Returns 0 or an errno value; on failure *durable is how many
 * of the batch's first records are durable all the same (those in a
 * segment synced before the next one was started). */
static int write_batch(hg_intake_t *ix, struct batch *b, size_t *durable) {
  size_t p = 0, nrec = 0;
  *durable = 0;
  while (p < b->len) {
    struct seg *cur = ix->nsegs > 0 ? &ix->segs[ix->nsegs - 1] : NULL;
    size_t q = p;
    uint64_t last = 0;
    while (cur != NULL && q < b->len) {
      uint32_t len;
      memcpy(&len, b->buf + q, 4);
      if (ix->off + (q - p) + REC_HDR + len > SEGMENT_BYTES) break;
      memcpy(&last, b->buf + q + 8, 8);
      uint32_t crc = rec_crc(cur->salt, b->buf + q, len);
      memcpy(b->buf + q + 4, &crc, 4);
      q += REC_HDR + len;
      nrec++;
    }
    if (q > p) {
      int rc = pwrite_all(cur->fd, b->buf + p, q - p, ix->off);
      if (rc != 0) return rc;
      ix->off += q - p;
      ix->t_bytes += q - p;
      cur->last = last;
      p = q;
    }
    if (p < b->len) {
      /* The rest goes into the next segment: this one must be durable first. */
      if (cur != NULL && fdatasync(cur->fd) != 0) return errno;
      *durable = nrec;
      uint64_t lsn;
      memcpy(&lsn, b->buf + p + 8, 8);
      int rc = seg_next(ix, lsn);
      if (rc != 0) return rc;
    }
  }
  struct seg *cur = &ix->segs[ix->nsegs - 1];
  if (fdatasync(cur->fd) != 0) return errno;
  *durable = nrec;
  return 0;
}

/* A spare ready before the current segment fills, so that no batch waits
 * for 8 MiB of zeros. Run after a batch's completions are handed back. */
static void prepare_spare(hg_intake_t *ix) {
  if (ix->nspare == 0) retire_released(ix, 0);
  if (ix->nspare == 0 && ix->off > SEGMENT_BYTES / 2) {
    struct seg sg;
    if (seg_create(ix, &sg) == 0) ix->spare[ix->nspare++] = sg;
  }
}

static void thread_main(void *arg) {
  hg_intake_t *ix = arg;
  uv_mutex_lock(&ix->mutex);
  for (;;) {
    while (ix->queued.len == 0 && !ix->closing) uv_cond_wait(&ix->cond, &ix->mutex);
    if (ix->queued.len == 0) break;
    struct batch t = ix->work;
    ix->work = ix->queued;
    ix->queued = t;
    int failed = ix->failed;
    uv_mutex_unlock(&ix->mutex);

    uint64_t t0 = hg_now_ns();
    size_t durable = 0;
    int rc = failed ? EIO : write_batch(ix, &ix->work, &durable);
    double secs = (double)(hg_now_ns() - t0) / 1e9;
    if (rc != 0 && !failed)
      hg_log(HG_LOG_ERROR, "intake log write failed; no more events are accepted through it", "dir", ix->dir, "error",
             strerror(rc), NULL);

    uv_mutex_lock(&ix->mutex);
    if (rc != 0) __atomic_store_n(&ix->failed, 1, __ATOMIC_RELAXED);
    ix->stats.bytes += ix->t_bytes;
    ix->stats.segments += ix->t_segments;
    ix->t_bytes = ix->t_segments = 0;
    if (hg_grow(&ix->done, &ix->done_cap, ix->ndone + ix->work.n, sizeof(*ix->done), 256) != 0) {
      /* Cannot hand completions back: nothing safe to do. */
      hg_log(HG_LOG_ERROR, "out of memory in the intake log", NULL);
      abort();
    }
    for (size_t i = 0; i < ix->work.n; i++) {
      /* Records made durable before a failure are answered as such: the
       * next start finds them in the log either way. */
      ix->work.c[i].status = i < durable ? 0 : rc == ENOSPC || rc == EDQUOT ? HG_ENOSPC : HG_EIO;
      ix->done[ix->ndone++] = ix->work.c[i];
    }
    ix->stats.records += durable;
    if (rc == 0) {
      ix->stats.syncs++;
      hg_hist_observe(&ix->stats.sync_seconds, secs);
    }
    ix->work.len = ix->work.n = 0;
    uv_async_send(&ix->async);
    if (rc == 0) {
      uv_mutex_unlock(&ix->mutex);
      prepare_spare(ix);
      uv_mutex_lock(&ix->mutex);
    }
  }
  uv_mutex_unlock(&ix->mutex);
}

/* ---- The loop side ---- */

static void run_done(hg_intake_t *ix) {
  uv_mutex_lock(&ix->mutex);
  struct comp *list = ix->done;
  size_t n = ix->ndone, cap = ix->done_cap;
  ix->done = ix->running;
  ix->done_cap = ix->running_cap;
  ix->ndone = 0;
  uv_mutex_unlock(&ix->mutex);
  ix->running = list;
  ix->running_cap = cap;
  for (size_t i = 0; i < n; i++) list[i].fn(list[i].status, list[i].ud);
}

static void async_cb(uv_async_t *h) { run_done(h->data); }

/* Room in b for bytes more record bytes and comps more completions, grown
 * by doubling. Returns 0 or HG_ENOMEM (b's contents unchanged). */
static int batch_reserve(struct batch *b, size_t bytes, size_t comps) {
  if (hg_grow(&b->buf, &b->cap, b->len + bytes, 1, 64 * 1024) != 0) return HG_ENOMEM;
  return hg_grow(&b->c, &b->ncap, b->n + comps, sizeof(*b->c), 256);
}

static int batch_append(struct batch *to, const struct batch *from) {
  if (batch_reserve(to, from->len, from->n) != 0) return HG_ENOMEM;
  memcpy(to->buf + to->len, from->buf, from->len);
  memcpy(to->c + to->n, from->c, from->n * sizeof(*from->c));
  to->len += from->len;
  to->n += from->n;
  return 0;
}

/* Hands the turn's records to the log's thread. */
static void publish(hg_intake_t *ix) {
  if (ix->local.len == 0) return;
  uv_mutex_lock(&ix->mutex);
  if (ix->queued.len == 0) {
    struct batch t = ix->queued;
    ix->queued = ix->local;
    ix->local = t;
  } else if (batch_append(&ix->queued, &ix->local) != 0) {
    /* Keep them local: the next turn tries again. */
    uv_mutex_unlock(&ix->mutex);
    return;
  }
  ix->local.len = ix->local.n = 0;
  uv_cond_signal(&ix->cond);
  uv_mutex_unlock(&ix->mutex);
}

static void prepare_cb(uv_prepare_t *h) { publish(h->data); }
static void check_cb(uv_check_t *h) { publish(h->data); }

int hg_intake_append(hg_intake_t *ix, const void *rec, size_t len, hg_intake_done_fn done, void *ud, uint64_t *lsn) {
  if (ix == NULL || ix->close_called || __atomic_load_n(&ix->failed, __ATOMIC_RELAXED)) return HG_ESTATE;
  if (len == 0 || len > HG_INTAKE_MAX_RECORD) return HG_ETOOBIG;
  struct batch *b = &ix->local;
  if (batch_reserve(b, REC_HDR + len, 1) != 0) return HG_ENOMEM;
  uint32_t l32 = (uint32_t)len, zero = 0;
  uint64_t n = ix->next_lsn++;
  unsigned char *o = b->buf + b->len;
  memcpy(o, &l32, 4);
  memcpy(o + 4, &zero, 4);
  memcpy(o + 8, &n, 8);
  memcpy(o + REC_HDR, rec, len);
  b->len += REC_HDR + len;
  b->c[b->n++] = (struct comp){done, ud, 0};
  if (lsn != NULL) *lsn = n;
  return 0;
}

void hg_intake_release(hg_intake_t *ix, uint64_t lsn) {
  if (ix != NULL && lsn > __atomic_load_n(&ix->released, __ATOMIC_RELAXED))
    __atomic_store_n(&ix->released, lsn, __ATOMIC_RELEASE);
}

void hg_intake_stats(hg_intake_t *ix, hg_intake_stats_t *out) {
  uv_mutex_lock(&ix->mutex);
  *out = ix->stats;
  uv_mutex_unlock(&ix->mutex);
}

static void batch_free(struct batch *b) {
  free(b->buf);
  free(b->c);
}

static void intake_free(hg_intake_t *ix) {
  for (size_t i = 0; i < ix->nsegs; i++) close(ix->segs[i].fd);
  for (size_t i = 0; i < ix->nspare; i++) close(ix->spare[i].fd);
  free(ix->segs);
  free(ix->spare);
  if (ix->dir_fd >= 0) close(ix->dir_fd);
  batch_free(&ix->local);
  batch_free(&ix->queued);
  batch_free(&ix->work);
  free(ix->done);
  free(ix->running);
  if (ix->cond_ok) uv_cond_destroy(&ix->cond);
  if (ix->mutex_ok) uv_mutex_destroy(&ix->mutex);
  free(ix->dir);
  free(ix);
}

static void close_cb(uv_handle_t *h) {
  hg_intake_t *ix = h->data;
  if (--ix->handles_open > 0) return;
  run_done(ix);
  intake_free(ix);
}

/* The log is freed by the last close callback. */
static void close_handles(hg_intake_t *ix) {
  uv_close((uv_handle_t *)&ix->async, close_cb);
  uv_close((uv_handle_t *)&ix->prepare, close_cb);
  uv_close((uv_handle_t *)&ix->check, close_cb);
}

/* Takes over the segment files already in the directory as spares. */
static int adopt_segments(hg_intake_t *ix) {
  DIR *d = opendir(ix->dir);
  if (d == NULL) return errno;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    int slot = seg_slot(e->d_name);
    if (slot < 0) continue;
    if (slot >= ix->next_slot) ix->next_slot = slot + 1;
    char path[4096];
    if (seg_path(ix, slot, path, sizeof(path)) != 0) continue;
    struct stat st;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      rc = errno;
      break;
    }
    if (fstat(fd, &st) != 0 || st.st_size != SEGMENT_BYTES) {
      /* Not one of ours at full size (a crash while creating it). */
      close(fd);
      unlink(path);
      continue;
    }
    struct seg sg = {fd, slot, 0, 0, 0};
    seg_retire(ix, &sg);
  }
  closedir(d);
  return rc;
}

int hg_intake_open(hg_intake_t **out, uv_loop_t *loop, const char *dir, char *err, size_t errlen) {
  *out = NULL;
  hg_intake_t *ix = calloc(1, sizeof(*ix));
  if (ix == NULL || (ix->dir = strdup(dir)) == NULL ||
      (ix->spare = calloc(SPARE_SEGMENTS + 1, sizeof(*ix->spare))) == NULL) {
    if (ix != NULL) free(ix->dir);
    free(ix);
    hg_set_err(err, errlen, "out of memory");
    return HG_ENOMEM;
  }
  static const double bounds[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1};
  ix->stats.sync_seconds.bounds = bounds;
  ix->stats.sync_seconds.n = HG_ARRAY_LEN(bounds);
  ix->dir_fd = -1;
  ix->loop = loop;
  ix->loop_thread = uv_thread_self();
  ix->next_lsn = 1;
  /* Every directory made here has its entry synced, so that a power cut
   * cannot take the log's directory away with the records in it; the
   * log's own entry is synced again for a directory made before. */
  int rc = hg_fs_mkdirs(dir, 1, NULL, 0);
  if (rc == 0) rc = hg_fs_sync_parent(dir);
  if (rc == 0 && (ix->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) rc = errno;
  if (rc == 0) rc = adopt_segments(ix);
  if (rc == 0) rc = seg_next(ix, ix->next_lsn);
  if (rc == 0 && ix->nspare == 0) {
    struct seg sg;
    if ((rc = seg_create(ix, &sg)) == 0) ix->spare[ix->nspare++] = sg;
  }
  if (rc != 0) {
    hg_set_err(err, errlen, "cannot set up the intake log in %s: %s", dir, strerror(rc));
    intake_free(ix);
    return HG_EIO;
  }
  if (uv_mutex_init(&ix->mutex) != 0 || (ix->mutex_ok = 1, uv_cond_init(&ix->cond) != 0)) {
    hg_set_err(err, errlen, "cannot create the intake log's lock");
    intake_free(ix);
    return HG_EIO;
  }
  ix->cond_ok = 1;
  if (uv_async_init(loop, &ix->async, async_cb) != 0) {
    hg_set_err(err, errlen, "cannot create the intake log's async handle");
    intake_free(ix);
    return HG_EIO;
  }
  ix->async.data = ix;
  uv_prepare_init(loop, &ix->prepare);
  uv_check_init(loop, &ix->check);
  ix->prepare.data = ix->check.data = ix;
  ix->handles_open = 3;
  uv_prepare_start(&ix->prepare, prepare_cb);
  uv_check_start(&ix->check, check_cb);
  uv_unref((uv_handle_t *)&ix->prepare);
  uv_unref((uv_handle_t *)&ix->check);
  if (uv_thread_create(&ix->thread, thread_main, ix) != 0) {
    hg_set_err(err, errlen, "cannot start the intake log's thread");
    ix->close_called = 1;
    close_handles(ix);
    return HG_EIO;
  }
  ix->thread_ok = 1;
  *out = ix;
  return 0;
}

void hg_intake_close(hg_intake_t *ix) {
  if (ix == NULL || ix->close_called) return;
  ix->close_called = 1;
  publish(ix);
  uv_mutex_lock(&ix->mutex);
  ix->closing = 1;
  uv_cond_signal(&ix->cond);
  uv_mutex_unlock(&ix->mutex);
  uv_thread_join(&ix->thread);
  close_handles(ix);
}
