/* events.h: storing an event and fanning it out into deliveries, in the
 * store (runs on the store thread, inside a store job). */
#ifndef HG_EVENTS_H
#define HG_EVENTS_H

#include "store/db.h"

#include <jansson.h>
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
  /* PostgreSQL, nodes sharing the store: the node that will send the new
   * deliveries, which are born leased to it until now + lease_ms (so it
   * need not claim them: nodes.h); NULL for none. Borrowed. */
  const char *lease_owner;
  int64_t lease_ms;
  /* PostgreSQL: some webhook may be ordered (pipeline/subs.h): the
   * deliveries take their FIFO places (store/lines.h). 0: none is, and
   * the insert skips the look (SQLite looks per target anyway). */
  int lines;
  /* The webhook ids to deliver to: the subscription index's match (subs.c),
   * as a route plugin may have changed it; inactive or unknown ids are
   * skipped. A JSON array of strings; borrowed; required. */
  json_t *targets;
  /* Out. */
  int duplicate;            /* 1: an earlier event with this key or id was found, */
  char original_id[HG_EVENT_ID_MAX]; /* and this is its id (id is left as it was) */
  int conflict;             /* 1: the id is taken by another organization's event */
  int n_deliveries;
  int64_t *delivery_seqs;   /* new deliveries: seq_small, or malloc'd (hg_event_in_done) */
  size_t n_seqs;
  int64_t seq_small[4];     /* room for the usual few without an allocation */
} hg_event_in_t;
/* Once hg_events_insert has run, delivery_seqs may point into the struct
 * itself (seq_small): move it by pointer, never copy it by value. */

/* Frees what hg_events_insert allocated in ev (not ev itself). */
void hg_event_in_done(hg_event_in_t *ev);

/* Inserts the event and one pending delivery (due at now + first_delay_ms)
 * per active webhook in ev->targets; or, when the
 * idempotency key or publisher id was seen before (the key within 24 h),
 * fills original_id and n_deliveries from the original and sets duplicate.
 * Changes none of the inputs and sets every output afresh, so it may run
 * again on the same ev after its changes were rolled back. */
int hg_events_insert(hg_db_t *db, hg_event_in_t *ev);

/* Several events in order, as hg_events_insert would store them one after
 * the other, in fewer statements: on PostgreSQL the rows of the events
 * added go in multi-row INSERTs (events_pg.c), sent (deferred, db.h) when
 * 64 are held (or 4 MiB of payloads) and at hg_events_batch_flush. An event with an
 * Idempotency-Key or a publisher's id to look up, or with an ordered
 * webhook among its targets, is stored alone at once, after the rows held
 * before it. Each event's outputs are set when it is added. On SQLite, add
 * is hg_events_insert. Store thread only; a batch lives within one store
 * job's work, and its events must stay in place until it is flushed or
 * freed (freeing drops what is held: call it after a failure only). */
typedef struct hg_events_batch hg_events_batch_t;
int hg_events_batch_new(hg_db_t *db, hg_events_batch_t **out); /* 0 or HG_ENOMEM */
int hg_events_batch_add(hg_events_batch_t *b, hg_event_in_t *ev);
int hg_events_batch_flush(hg_events_batch_t *b);
void hg_events_batch_free(hg_events_batch_t *b);

/* For events.c and events_pg.c: hg_events_insert's PostgreSQL path once
 * nothing is left to look up; the batch taking ev (0), or not (1: ev is
 * to be stored alone on *db, what the batch held sent first), or HG_E*;
 * appending a new delivery's seq to ev (event_in.c). */
int hg_events__insert_pg(hg_db_t *db, hg_event_in_t *ev);
int hg_events__batch_hold(hg_events_batch_t *b, hg_event_in_t *ev, hg_db_t **db);
int hg_event_in__push_seq(hg_event_in_t *ev, int64_t seq);

/* For the row files (events.c, deliveries.c): steps st, an INSERT of one
 * row into a table keyed by seq, and sets *seq to the new row's. The
 * statement's text is chosen per engine: on PostgreSQL it ends in
 * "RETURNING seq" (its row is read, then st is stepped to its end); on
 * SQLite it does not, and seq is read with SELECT last_insert_rowid():
 * RETURNING cost SQLite 3.40 about 1.4 us more per inserted row, the extra
 * SELECT about 0.1 us, on every event and delivery a publish stores.
 * Returns 0 or HG_E* (not logged). */
int hg_events__insert_seq(hg_db_t *db, hg_stmt_t *st, int64_t *seq);

/* An event as the intake log keeps it (intake.h): what hg_events_insert
 * needs to store it after a crash (id, type, organization, payload, time,
 * first delay, targets). hg_events_record_size is the exact length
 * hg_events_record writes into out. */
size_t hg_events_record_size(const hg_event_in_t *ev);
void hg_events_record(const hg_event_in_t *ev, unsigned char *out);

/* Fills ev from a record: payload points into rec, targets is a new JSON
 * array (the caller decrefs it), client_id is set, so that inserting an
 * event already stored finds it instead of storing it twice. Returns 0, or
 * HG_EINVAL for a record that is not one of these. */
int hg_events_from_record(const unsigned char *rec, size_t len, hg_event_in_t *ev);

/* Stores every event the intake log in dir holds that the store at
 * store_path (a SQLite path or a PostgreSQL URI, as hg_store_open_sync
 * takes) lacks (answered, then the process stopped before the store had it
 * durably), in one transaction durable before returning: run before
 * the store opens; the log then starts afresh (hg_intake_open). Events the
 * store has are left alone, so running it twice stores nothing twice. A
 * record that is not an event, or an event the store rejects (its id
 * another organization's), is logged and skipped. *seen counts the
 * records, *stored the events stored now. Returns 0, or a negative HG_E*
 * code with err set and nothing stored. A missing dir holds nothing. */
int hg_events_recover(const char *dir, const char *store_path, uint64_t *seen, uint64_t *stored, char *err,
                      size_t errlen);

#endif
