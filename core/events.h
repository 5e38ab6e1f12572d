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
  size_t data_off, data_len; /* where the event's "data" is in payload */
  char *idem_key;           /* scoped Idempotency-Key, or NULL; borrowed */
  int64_t now;              /* Unix ms */
  int64_t first_delay_ms;   /* the first attempt is due at now + this */
  /* The webhook ids to deliver to: the subscription index's match (subs.c),
   * as a route plugin may have changed it; inactive or unknown ids are
   * skipped. A JSON array of strings; borrowed; required. */
  json_t *targets;
  /* Out. */
  int duplicate;            /* 1: an earlier event with this key or id was found, */
  char original_id[HG_EVENT_ID_MAX]; /* and this is its id (id is left as it was) */
  int conflict;             /* 1: the id is taken by another organization's event */
  int n_deliveries;
  int64_t *delivery_seqs;   /* new deliveries (malloc'd; caller frees) */
  size_t n_seqs;
} hg_event_in_t;

/* Inserts the event and one pending delivery (due at now + first_delay_ms)
 * per active webhook in ev->targets; or, when the
 * idempotency key or publisher id was seen before (the key within 24 h),
 * fills original_id and n_deliveries from the original and sets duplicate.
 * Changes none of the inputs and sets every output afresh, so it may run
 * again on the same ev after its changes were rolled back. */
int hg_events_insert(sqlite3 *db, hg_event_in_t *ev);

#endif
