/* memtrim.c: malloc_trim once the process goes idle (memtrim.h). */
#include "base/memtrim.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

struct hg_memtrim {
  uv_timer_t timer;
  uv_work_t work;
  uint64_t interval_ms;
  uint64_t cpu_us;      /* the process's CPU time at the last tick */
  int busy_since_trim;  /* some interval since the last trim was busy */
  int trimming;         /* a trim is on the thread pool */
  int stopped;          /* hg_memtrim_stop was called */
  int closed;           /* the timer's close callback ran */
  uint64_t rss_at_trim; /* resident bytes just after the last trim */
  uint64_t before, after; /* the trim in flight's readings */
  hg_memtrim_stats_t st;
};

static uint64_t cpu_micros(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
         (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* Resident bytes, from /proc/self/statm (0 when unreadable). */
static uint64_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "re");
  if (f == NULL) return 0;
  unsigned long size = 0, resident = 0;
  int n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  long page = sysconf(_SC_PAGESIZE);
  return n == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

static void maybe_free(hg_memtrim_t *t) {
  if (t->stopped && t->closed && !t->trimming) free(t);
}

/* On the thread pool: a trim walks every arena's free lists under that
 * arena's lock, milliseconds on a large fragmented heap; the loop goes on
 * meanwhile. */
static void trim_work(uv_work_t *w) {
  hg_memtrim_t *t = w->data;
  t->before = rss_bytes();
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  t->after = rss_bytes();
}

static void trim_done(uv_work_t *w, int status) {
  hg_memtrim_t *t = w->data;
  t->trimming = 0;
  if (status == 0) {
    t->st.trims++;
    t->st.last_trim_bytes = t->before > t->after ? t->before - t->after : 0;
    t->rss_at_trim = t->after;
  }
  t->cpu_us = cpu_micros(); /* the trim's own CPU is not the next interval's load */
  maybe_free(t);
}

static void tick(uv_timer_t *h) {
  hg_memtrim_t *t = h->data;
  uint64_t cpu = cpu_micros();
  uint64_t used = cpu - t->cpu_us;
  t->cpu_us = cpu;
  if (t->trimming) return;
  if (used * 20 >= t->interval_ms * 1000) { /* 5% of one core or more: busy */
    t->busy_since_trim = 1;
    return;
  }
  if (!t->busy_since_trim && rss_bytes() < t->rss_at_trim + (1u << 20)) return;
  t->busy_since_trim = 0;
  t->work.data = t;
  if (uv_queue_work(h->loop, &t->work, trim_work, trim_done) == 0) t->trimming = 1;
}

hg_memtrim_t *hg_memtrim_start(uv_loop_t *loop, uint64_t interval_ms) {
  hg_memtrim_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  t->interval_ms = interval_ms;
  t->cpu_us = cpu_micros();
  t->busy_since_trim = 1; /* start-up allocated and freed: one trim when idle */
  uv_timer_init(loop, &t->timer);
  t->timer.data = t;
  uv_timer_start(&t->timer, tick, interval_ms, interval_ms);
  uv_unref((uv_handle_t *)&t->timer);
  return t;
}

hg_memtrim_stats_t hg_memtrim_stats(const hg_memtrim_t *t) {
  hg_memtrim_stats_t z = {0};
  return t ? t->st : z;
}

static void closed(uv_handle_t *h) {
  hg_memtrim_t *t = h->data;
  t->closed = 1;
  maybe_free(t);
}

void hg_memtrim_stop(hg_memtrim_t *t) {
  if (t == NULL) return;
  t->stopped = 1;
  uv_close((uv_handle_t *)&t->timer, closed);
}
