/* test_memtrim.c: the idle trim gives a fragmented heap back to the system
 * once the process goes idle, and never while it is busy. */
#include "base/memtrim.h"
#include "hgtest.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Sanitizers bring their own allocator: malloc_trim then trims glibc's
 * unused heap, and RSS tells nothing. The counters are still checked. */
#if defined(__SANITIZE_ADDRESS__)
#define HG_OWN_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define HG_OWN_MALLOC 0
#endif
#endif
#ifndef HG_OWN_MALLOC
#define HG_OWN_MALLOC 1
#endif

#define INTERVAL_MS 200

static uint64_t rss(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Keeps the process busy: each loop turn spins 20 ms of CPU. */
static void spin(uv_idle_t *h) {
  (void)h;
  double end = now_ms() + 20;
  while (now_ms() < end) {
  }
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

static void run_for(uv_loop_t *loop, uint64_t ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, stop_loop, ms, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs the loop until t has made `want` trims, for at most 10 s (a loaded
 * machine or a sanitizer may make the ticks late; a trim that should not
 * come does not come any sooner for it). */
static void run_until_trims(uv_loop_t *loop, hg_memtrim_t *t, uint64_t want) {
  for (int i = 0; i < 200 && hg_memtrim_stats(t).trims < want; i++) run_for(loop, 50);
}

static void trims_when_idle(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_memtrim_t *t = hg_memtrim_start(&loop, INTERVAL_MS);
  CHECK(t != NULL);

  /* 64 MiB in 2 KiB chunks (under the mmap threshold: they come from the
   * heap), then all freed but every 32nd: free pages glibc keeps, in the
   * middle of the heap where free() alone does not return them. */
  enum { N = 32768, SZ = 2048 };
  char **p = malloc(sizeof(*p) * N);
  for (int i = 0; i < N; i++) {
    p[i] = malloc(SZ);
    memset(p[i], 1, SZ);
  }
  for (int i = 0; i < N; i++)
    if (i % 32 != 0) free(p[i]);
  uint64_t before = rss();

  /* Busy for three intervals: no trim. */
  uv_idle_t idle;
  uv_idle_init(&loop, &idle);
  uv_idle_start(&idle, spin);
  run_for(&loop, 3 * INTERVAL_MS + 50);
  uv_idle_stop(&idle);
  uv_close((uv_handle_t *)&idle, NULL);
  CHECK_EQ_INT(hg_memtrim_stats(t).trims, 0);

  /* Idle: an idle interval after the busy ones trims. */
  run_until_trims(&loop, t, 1);
  hg_memtrim_stats_t st = hg_memtrim_stats(t);
  CHECK_EQ_INT(st.trims, 1);
  uint64_t after = rss();
  if (HG_OWN_MALLOC) {
    CHECK(before > after && before - after >= (uint64_t)40 << 20);
    CHECK(st.last_trim_bytes >= (uint64_t)40 << 20);
  }

  /* Still idle, nothing grew: no second trim. */
  run_for(&loop, 3 * INTERVAL_MS);
  CHECK_EQ_INT(hg_memtrim_stats(t).trims, 1);

  /* The heap grows by more than 1 MiB while idle (a trickle's slow climb):
   * trimmed again. */
  char **q = malloc(sizeof(*q) * N);
  for (int i = 0; i < N; i++) q[i] = malloc(SZ);
  for (int i = 0; i < N; i++)
    if (i % 32 != 0) free(q[i]);
  run_until_trims(&loop, t, 2);
  CHECK_EQ_INT(hg_memtrim_stats(t).trims, 2);

  for (int i = 0; i < N; i += 32) free(p[i]), free(q[i]);
  free(p);
  free(q);
  hg_memtrim_stop(t);
  hg_memtrim_stop(NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  CHECK_EQ_INT(hg_memtrim_stats(NULL).trims, 0);
}

int main(void) {
  RUN(trims_when_idle);
  return HGT_DONE();
}
