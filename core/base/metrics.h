/* metrics.h: counters and histograms, rendered in the Prometheus text
 * format at GET /metrics.
 *
 * Every metric lives in one process-wide struct written by the loop thread
 * only (the store thread's figures are copied from hg_store_stats under the
 * store's lock), so no atomics are needed. */
#ifndef HG_METRICS_H
#define HG_METRICS_H

#include "base/buf.h"

#include <stddef.h>
#include <stdint.h>

#define HG_HIST_MAX_BUCKETS 16

typedef struct hg_hist {
  const double *bounds; /* upper bounds, ascending; +Inf is implicit */
  size_t n;
  uint64_t counts[HG_HIST_MAX_BUCKETS]; /* per bucket, not cumulative */
  uint64_t count;
  double sum;
} hg_hist_t;

void hg_hist_observe(hg_hist_t *h, double v);

enum { HG_METRIC_DISABLED_GONE, HG_METRIC_DISABLED_FAILURES, HG_METRIC_DISABLED_RETRY_POLICY };

typedef struct hg_metrics {
  uint64_t events_ingested;
  uint64_t events_replayed;   /* answered from an idempotency key or id */
  uint64_t deliveries_created;
  uint64_t attempts_success, attempts_failure;
  uint64_t deliveries_succeeded, deliveries_failed, deliveries_skipped;
  uint64_t webhooks_deactivated;
  uint64_t recoveries_started, deliveries_recovered, deliveries_missed_added; /* bulk recovery */
  /* Rows the retention purge deleted (pipeline/retention.h), and the wall
   * time (Unix ms) its last pass ended, 0 before the first. */
  uint64_t purged_events, purged_deliveries, purged_attempts;
  int64_t purge_last_pass_ms;
  /* Webhooks the gateway disabled, by reason (HG_METRIC_DISABLED_*), and
   * operational events stored, by type (delivery.exhausted,
   * webhook.disabled, webhook.recovered: pipeline/health.h). */
  uint64_t webhooks_disabled[3];
  uint64_t operational_events[3];
  /* Deliveries a webhook's limits held back (pipeline/throttle.h): [0]
   * its rateLimit, [1] its maxConcurrency. */
  uint64_t deliveries_throttled[2];
  hg_hist_t attempt_seconds;  /* one attempt: connect to response */
  hg_hist_t delivery_latency_seconds; /* event accepted to receiver's 2xx */
} hg_metrics_t;

/* The process's metrics. */
extern hg_metrics_t hg_metrics;

/* Sets the histograms' buckets; call once at start. */
void hg_metrics_init(void);

/* Appends a histogram in the exposition format. labels: "" or `a="b"`. */
void hg_metrics_put_hist(hg_buf_t *b, const char *name, const char *help, const hg_hist_t *h);

#endif
