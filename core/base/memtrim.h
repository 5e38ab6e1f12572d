/* memtrim.h: gives memory back to the system once the gateway goes idle.
 *
 * glibc's malloc keeps what a burst freed: chunks in the middle of a heap,
 * and every heap of the arenas the store, intake and sync threads use, stay
 * mapped until a malloc_trim. After a load run that is tens of MiB of RSS
 * held by an idle gateway (docs/performance.md, "Memory after load").
 *
 * A repeating timer on the loop looks every interval at the process's CPU
 * time: an interval in which the process used less than 5% of one core is
 * idle. On the first idle interval after a busy one, or on an idle one when
 * resident memory has grown by 1 MiB or more since the last trim (a slow
 * climb at a trickle of traffic), it calls malloc_trim(0), which returns the
 * free pages of every arena, on libuv's thread pool (a trim walks each
 * arena's free lists under its lock: milliseconds on a large heap). Under
 * load it never runs: a trim costs that walk and a page fault for each page
 * used again. An idle interval costs a getrusage and a read of
 * /proc/self/statm. Without glibc nothing is trimmed (the counters still
 * count the attempts). */
#ifndef HG_MEMTRIM_H
#define HG_MEMTRIM_H

#include <stdint.h>
#include <uv.h>

typedef struct hg_memtrim hg_memtrim_t;

typedef struct hg_memtrim_stats {
  uint64_t trims;          /* malloc_trim calls made */
  uint64_t last_trim_bytes; /* RSS the last trim returned (0 when none, or unknown) */
} hg_memtrim_stats_t;

/* Starts the timer (interval_ms > 0; unref'd: it keeps no loop alive).
 * Returns NULL on allocation failure (the gateway then runs without it).
 * Nothing runs inside this call. */
hg_memtrim_t *hg_memtrim_start(uv_loop_t *loop, uint64_t interval_ms);

/* The counters, for /metrics. t may be NULL (all zero). */
hg_memtrim_stats_t hg_memtrim_stats(const hg_memtrim_t *t);

/* Stops the timer; the struct is freed once the loop has closed it and a
 * trim in flight, if any, has ended (the loop must run for both). NULL is
 * accepted. */
void hg_memtrim_stop(hg_memtrim_t *t);

#endif
