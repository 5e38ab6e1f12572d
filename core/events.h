/* events.h: storing an event and fanning it out into deliveries, in the
 * store (runs on the store thread, inside a store job). */
#ifndef HG_EVENTS_H
#define HG_EVENTS_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define HG_EVENT_ID_MAX 132 /* a publisher's own id: up to 128 characters */

typedef struct hg_event_in {
  /* In. */
  char id[HG_EVENT_ID_MAX]; /* evt_..., or the publisher's id */
  int client_id;            /* id came from the publisher: a repeat answers the original */
  char type[132];
  char org[132];            /* "" for none */
  char *payload;            /* the bytes receivers get; borrowed */
  size_t payload_len;
  char *idem_key;           /* scoped Idempotency-Key, or NULL; borrowed */
  int64_t now;              /* Unix ms */
  int64_t first_delay_ms;   /* the first attempt is due at now + this */
  /* When non-NULL (a route plugin ran), the webhook ids to deliver to,
   * instead of the subscriptions' match; inactive or unknown ids are
   * skipped. A JSON array of strings; borrowed. */
  json_t *targets;
  /* Out. */
  int duplicate;            /* 1: an earlier event with this key or id was found */
  int conflict;             /* 1: the id is taken by another organization's event */
  int n_deliveries;
  int64_t *delivery_seqs;   /* new deliveries (malloc'd; caller frees) */
  size_t n_seqs;
} hg_event_in_t;

/* Inserts the event and one pending delivery (due now) per active webhook
 * that subscribes to its type and may see its organization; or, when the
 * idempotency key or publisher id was seen before (the key within 24 h),
 * fills id and n_deliveries from the original and sets duplicate. */
int hg_events_insert(sqlite3 *db, hg_event_in_t *ev);

/* The ids of the active webhooks that subscribe to ev's type and may see
 * its organization (a new JSON array of strings in *out). */
int hg_events_match(sqlite3 *db, const hg_event_in_t *ev, json_t **out);

/* Up to how many patterns one event type can match: itself, each dotted
 * prefix with ".*", and "*". */
#define HG_EVENT_MAX_PATTERNS 10

#endif
