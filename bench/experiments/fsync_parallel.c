/* fsync_parallel: whether this disk overlaps fdatasyncs. Each of THREADS
 * threads overwrites 16 KiB of a file of its own (written once before, as
 * the intake log's reused segments are) and fdatasyncs it, for SECONDS.
 * If two threads together sync twice as often as one, a second batch of
 * the intake log could sync while the first does; if not much more often,
 * the disk serialises its flushes and only the write could overlap.
 *
 *   cc -O2 -pthread -o fsync_parallel bench/experiments/fsync_parallel.c
 *   ./fsync_parallel 1 && ./fsync_parallel 2    [THREADS [DIR [SECONDS]]]
 *
 * Defaults: 1 thread, DIR /var/tmp (a real disk, not tmpfs), 3 seconds.
 * Prints each thread's syncs and mean µs per write + fdatasync, and the
 * syncs per second of all threads together. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 16384
#define SLOTS 256 /* the file: SLOTS chunks, overwritten in turn */
#define MAX_THREADS 16

struct worker {
  pthread_t thread;
  char path[4096];
  double seconds;
  long syncs;
  double mean_us;
  int error; /* errno of a failed call, or 0 */
};

/* Every thread's timed loop starts together, after all have set up. */
static pthread_barrier_t ready;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(struct worker *w) {
  if (w->error == 0) w->error = errno ? errno : EIO;
}

static void *work(void *arg) {
  struct worker *w = arg;
  static const char zero[CHUNK];
  char buf[CHUNK];
  memset(buf, 'x', sizeof(buf));
  int fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail(w);
  else unlink(w->path); /* gone however the run ends */
  /* Written once and synced, so that the timed writes only overwrite. */
  for (int i = 0; fd >= 0 && i < SLOTS; i++)
    if (pwrite(fd, zero, CHUNK, (off_t)i * CHUNK) != CHUNK) fail(w);
  if (fd >= 0 && fsync(fd) != 0) fail(w);
  pthread_barrier_wait(&ready);
  double start = now_s(), busy = 0;
  long i = 0;
  while (w->error == 0 && now_s() - start < w->seconds) {
    /* Each write differs from what the block holds (a file system may
     * skip rewriting identical data). */
    memcpy(buf, &i, sizeof(i));
    double t = now_s();
    if (pwrite(fd, buf, CHUNK, (off_t)(i % SLOTS) * CHUNK) != CHUNK || fdatasync(fd) != 0) fail(w);
    busy += now_s() - t;
    i++;
  }
  if (fd >= 0) close(fd);
  w->syncs = i;
  w->mean_us = i ? busy / (double)i * 1e6 : 0;
  return NULL;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1;
  const char *dir = argc > 2 ? argv[2] : "/var/tmp";
  double seconds = argc > 3 ? atof(argv[3]) : 3;
  if (n < 1 || n > MAX_THREADS || seconds <= 0) {
    fprintf(stderr, "usage: %s [THREADS (1-%d) [DIR [SECONDS]]]\n", argv[0], MAX_THREADS);
    return 2;
  }
  struct worker w[MAX_THREADS];
  memset(w, 0, sizeof(w));
  if (pthread_barrier_init(&ready, NULL, (unsigned)n) != 0) return 1;
  for (int i = 0; i < n; i++) {
    snprintf(w[i].path, sizeof(w[i].path), "%s/fsync_parallel.%d.%d", dir, (int)getpid(), i);
    w[i].seconds = seconds;
    if (pthread_create(&w[i].thread, NULL, work, &w[i]) != 0) {
      /* The started ones wait at the barrier: exit, their files unlinked. */
      fprintf(stderr, "cannot start thread %d\n", i);
      return 1;
    }
  }
  long total = 0;
  int error = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(w[i].thread, NULL);
    if (w[i].error) error = w[i].error;
    total += w[i].syncs;
    printf("thread %d: %ld syncs, %.0f us per write + fdatasync\n", i, w[i].syncs, w[i].mean_us);
  }
  if (error) {
    fprintf(stderr, "an open, write or fdatasync under %s failed: %s\n", dir, strerror(error));
    return 1;
  }
  printf("%d thread%s: %.0f syncs/s together\n", n, n == 1 ? "" : "s", (double)total / seconds);
  return 0;
}
