/* health.c: the operational events (see health.h). */
#include "pipeline/health.h"

#include "base/common.h"
#include "base/ids.h"
#include "base/log.h"
#include "base/metrics.h"
#include "pipeline/event_types.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct hg_health {
  hg_ingest_t *const *ingest;
  hg_subs_t *subs;
};

hg_health_t *hg_health_new(hg_ingest_t *const *ingest, hg_subs_t *subs) {
  hg_health_t *h = calloc(1, sizeof(*h));
  if (h == NULL) return NULL;
  h->ingest = ingest;
  h->subs = subs;
  return h;
}

void hg_health_free(hg_health_t *h) { free(h); }

/* The index of type in hg_metrics.operational_events. */
enum { OP_EXHAUSTED, OP_DISABLED, OP_RECOVERED };
static const char *const op_types[] = {"delivery.exhausted", "webhook.disabled", "webhook.recovered"};

static json_t *time_or_null(int64_t ms) {
  if (ms <= 0) return json_null();
  char buf[25];
  hg_format_time(ms, buf);
  return json_string(buf);
}

static void published(const hg_ingest_result_t *res, void *ud) {
  uintptr_t op = (uintptr_t)ud;
  if (res->status == 0) {
    hg_metrics.operational_events[op]++;
    return;
  }
  hg_log(HG_LOG_WARN, "could not store an operational event", "type", op_types[op], "event",
         res->n ? res->events[0].id : "", "error", hg_strerror(res->status), NULL);
}

/* Publishes one event of op_types[op] with data (taken) about webhook
 * r->webhook_id, to the webhooks subscribed to it that may see r->org,
 * the webhook itself left out. */
static void publish(hg_health_t *h, int op, const hg_dispatch_health_t *r, json_t *data) {
  hg_ingest_t *ing = *h->ingest;
  const char *type = op_types[op];
  json_t *match = ing && data ? hg_subs_match(h->subs, type, r->org) : NULL;
  json_t *targets = match ? json_array() : NULL;
  size_t i;
  json_t *id;
  json_array_foreach(match, i, id) {
    if (strcmp(json_string_value(id), r->webhook_id) != 0) json_array_append(targets, id);
  }
  json_decref(match);
  if (targets == NULL || json_array_size(targets) == 0) {
    /* Nobody asked for it: nothing is stored. */
    json_decref(targets);
    json_decref(data);
    return;
  }
  hg_event_in_t ev;
  memset(&ev, 0, sizeof(ev));
  hg_id_new("evt_", ev.id);
  hg_copy(ev.type, sizeof(ev.type), type);
  hg_copy(ev.org, sizeof(ev.org), r->org);
  char ts[25];
  hg_format_time(hg_wall_ms(), ts);
  /* The envelope every event has (api_events.c): type, timestamp, data. */
  json_t *env = json_pack("{s:s,s:s,s:O}", "type", type, "timestamp", ts, "data", data);
  char *data_text = json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
  char *text = env ? json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(env);
  json_decref(data);
  int rc = HG_ENOMEM;
  if (text && data_text) {
    /* Where data sits in the envelope: the last member. */
    size_t tl = strlen(text), dl = strlen(data_text);
    ev.payload = text;
    ev.payload_len = tl;
    ev.data_off = tl - 1 - dl;
    ev.data_len = dl;
    ev.targets = targets;
    rc = hg_ingest_submit(ing, &ev, 1, 0, published, (void *)(uintptr_t)op);
  }
  free(data_text);
  if (rc != 0) {
    hg_log(HG_LOG_WARN, "could not publish an operational event", "type", type, "webhook", r->webhook_id, "error",
           hg_strerror(rc), NULL);
    free(text);
    json_decref(targets);
  }
}

void hg_health_report_cb(const hg_dispatch_health_t *r, void *ud) {
  hg_health_t *h = ud;
  const hg_health_out_t *o = r->health;
  int64_t now = hg_wall_ms();
  if (o->disabled) {
    if (strcmp(o->code, HG_DISABLED_GONE) == 0)
      hg_metrics.webhooks_disabled[HG_METRIC_DISABLED_GONE]++;
    else if (strcmp(o->code, HG_DISABLED_FAILURES) == 0)
      hg_metrics.webhooks_disabled[HG_METRIC_DISABLED_FAILURES]++;
    else
      hg_metrics.webhooks_disabled[HG_METRIC_DISABLED_RETRY_POLICY]++;
    hg_log(HG_LOG_WARN, "webhook disabled", "webhook", r->webhook_id, "reason", o->code, "message", o->message, NULL);
  }
  if (o->recovered) hg_log(HG_LOG_INFO, "webhook recovered", "webhook", r->webhook_id, NULL);
  /* Never about itself: a delivery of an operational event that failed
   * for good publishes none (its webhook's disabling or recovery still
   * does, to the other webhooks). */
  if (r->exhausted && !hg_event_type_operational(r->event_type)) {
    json_t *d = json_pack("{s:s,s:s,s:s,s:s,s:i,s:o,s:I,s:o}", "webhookId", r->webhook_id, "deliveryId", r->delivery_id,
                          "eventId", r->event_id, "eventType", r->event_type, "attempts", r->attempts, "lastStatusCode",
                          r->status_code ? json_integer(r->status_code) : json_null(), "exhaustedDeliveries",
                          (json_int_t)o->exhausted, "failingSince", time_or_null(o->failing_since));
    publish(h, OP_EXHAUSTED, r, d);
  }
  if (o->disabled) {
    json_t *d = json_pack("{s:s,s:o,s:{s:s,s:s},s:I,s:o,s:s,s:s}", "webhookId", r->webhook_id, "disabledAt",
                          time_or_null(o->disabled_at), "disabledReason", "code", o->code, "message", o->message,
                          "exhaustedDeliveries", (json_int_t)o->exhausted, "failingSince",
                          time_or_null(o->failing_since), "deliveryId", r->delivery_id, "eventId", r->event_id);
    publish(h, OP_DISABLED, r, d);
  }
  if (o->recovered) {
    json_t *d = json_pack("{s:s,s:o,s:I,s:o,s:s,s:s}", "webhookId", r->webhook_id, "recoveredAt", time_or_null(now),
                          "exhaustedDeliveries", (json_int_t)o->exhausted, "failingSince",
                          time_or_null(o->failing_since), "deliveryId", r->delivery_id, "eventId", r->event_id);
    publish(h, OP_RECOVERED, r, d);
  }
}
