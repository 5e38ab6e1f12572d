/* memtrim.c: malloc_trim once the process goes idle (memtrim.h). */
#include "base/memtrim.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

struct hg_memtrim {
  uv_timer_t timer;
  uint64_t interval_ms;
  uint64_t cpu_us;     /* the process's CPU time at the last tick */
  int busy_since_trim; /* some interval since the last trim was busy */
  uint64_t rss_at_trim; /* resident bytes just after the last trim */
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
  return n == 2 ? (uint64_t)resident * 4096u : 0;
}

static void tick(uv_timer_t *h) {
  hg_memtrim_t *t = h->data;
  uint64_t cpu = cpu_micros();
  uint64_t used = cpu - t->cpu_us;
  t->cpu_us = cpu;
  if (used * 20 >= t->interval_ms * 1000) { /* 5% of one core or more: busy */
    t->busy_since_trim = 1;
    return;
  }
  uint64_t before = rss_bytes();
  if (!t->busy_since_trim && before < t->rss_at_trim + (1u << 20)) return;
  malloc_trim(0);
  uint64_t after = rss_bytes();
  t->st.trims++;
  t->st.last_trim_bytes = before > after ? before - after : 0;
  t->busy_since_trim = 0;
  t->rss_at_trim = after;
  t->cpu_us = cpu_micros(); /* the trim's own CPU is not the next interval's load */
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

static void closed(uv_handle_t *h) { free(h->data); }

void hg_memtrim_stop(hg_memtrim_t *t) {
  if (t == NULL) return;
  uv_close((uv_handle_t *)&t->timer, closed);
}
