/* health.h: the gateway's operational events about endpoint health.
 *
 * The dispatcher records each attempt's effect on its webhook's failing
 * streak in the store (store/health.h) and reports what happened
 * (hg_dispatcher_on_health); this module turns the report into events
 * published through the ingest like any other, so they are durable,
 * signed and retried, and fan out by the subscription index:
 *
 *   delivery.exhausted   a delivery's last attempt failed
 *   webhook.disabled     the gateway made a webhook inactive
 *   webhook.recovered    the first success after exhausted deliveries
 *
 * An event goes to the webhooks of the organization of the webhook it is
 * about (and, like every event, to webhooks without an organization: the
 * operator's); one about a webhook without an organization goes only to
 * webhooks without one. Never about itself: an event is never delivered
 * to the webhook it is about, and a delivery of an operational event that
 * is exhausted publishes no delivery.exhausted, so a failing subscriber
 * cannot feed itself (docs/api.md). Payloads carry ids, codes, counts and
 * times: never a URL, a secret, an error text or a copy of a payload.
 *
 * Loop thread only. Published on a best-effort basis: an event the store
 * refuses (or that a stop interrupts before it is stored) is logged and
 * lost; the state it reports (the webhook's disabledAt, its deliveries)
 * is in the store either way. */
#ifndef HG_HEALTH_H
#define HG_HEALTH_H

#include "pipeline/dispatcher.h"
#include "pipeline/ingest.h"
#include "pipeline/subs.h"

typedef struct hg_health hg_health_t;

/* ingest points at the caller's ingest pointer, read at each use (NULL
 * once the ingest is closed: nothing is published from then on); subs is
 * borrowed. Returns NULL when out of memory. */
hg_health_t *hg_health_new(hg_ingest_t *const *ingest, hg_subs_t *subs);

/* Accepts NULL. Events already handed to the ingest are not affected. */
void hg_health_free(hg_health_t *h);

/* The dispatcher's health callback (hg_dispatcher_on_health), ud an
 * hg_health_t: publishes what r calls for. */
void hg_health_report_cb(const hg_dispatch_health_t *r, void *ud);

#endif
