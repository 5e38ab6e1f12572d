/* metrics.c: counters, histograms and the text format. */
#include "base/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hg_metrics_t hg_metrics;

/* Seconds: from a loopback receiver (sub-millisecond) to a slow one. */
static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10, 30};

void hg_metrics_init(void) {
  memset(&hg_metrics, 0, sizeof(hg_metrics));
  hg_metrics.attempt_seconds.bounds = latency_bounds;
  hg_metrics.attempt_seconds.n = sizeof(latency_bounds) / sizeof(latency_bounds[0]);
  hg_metrics.delivery_latency_seconds.bounds = latency_bounds;
  hg_metrics.delivery_latency_seconds.n = hg_metrics.attempt_seconds.n;
}

void hg_hist_observe(hg_hist_t *h, double v) {
  size_t i = 0;
  while (i < h->n && v > h->bounds[i]) i++;
  h->counts[i]++; /* i == n: the +Inf bucket */
  h->count++;
  h->sum += v;
}

void hg_metrics_put_hist(hg_buf_t *b, const char *name, const char *help, const hg_hist_t *h) {
  hg_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i < h->n; i++) {
    cum += h->counts[i];
    hg_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
  }
  cum += h->counts[h->n];
  hg_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
  hg_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}
