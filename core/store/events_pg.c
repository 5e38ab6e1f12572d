/* events_pg.c: storing events on PostgreSQL, where a statement costs the
 * server about what three rows do.
 *
 * Every insert is deferred (db.h): an event's row and its deliveries' rows
 * are sent without waiting for an answer, their seqs reserved ahead
 * (hg_db_nextval) instead of read back with RETURNING, so that a whole
 * group of events reaches the server in one round trip.
 *
 * A batch (hg_events_batch_*) goes further: the rows of the events it holds
 * go in a few multi-row statements instead of two statements per event.
 * Measured before it (a scratch run of wrk -c50 against one node, delivery
 * paused), the server spent 63 us of CPU per event, against 23 us for
 * bench/pg_anchor's rows of one statement per group: the difference was
 * each statement's own work (its portal, executor start, locks), not the
 * rows'. */
#include "store/events.h"

#include "base/common.h"
#include "base/ids.h"
#include "store/rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events a batch holds before it sends their rows, and payload bytes: one
 * statement's parameters travel in one message, which PostgreSQL takes up
 * to 1 GB, and large events gain nothing from sharing one. */
#define BATCH_EVENTS HG_ROWS_MAX
#define BATCH_BYTES (4u << 20)

/* ---- One event at a time ---- */

/* The event and its deliveries, deferred. The count recorded and answered
 * is that of the targets given, which the caller took from the
 * subscription index (active webhooks only); each delivery re-checks in SQL
 * that its webhook is active (instead of a SELECT per target first), so a
 * webhook deactivated in the meantime gets no delivery, and its seq is
 * simply never found. */
int hg_events__insert_pg(hg_db_t *db, hg_event_in_t *ev) {
  static const char ins_event[] = "INSERT INTO events (seq, id, type, organization_id, payload, idempotency_key, "
                                  "created_at, deliveries) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
  /* An ordered webhook's delivery takes its place in the line (l: no row
   * for an unordered one) under the line row's lock, held until the
   * commit: the numbers of one webhook's deliveries follow the order in
   * which the nodes' transactions commit (store/lines.h). It is born
   * without a lease: the node that ends the one ahead sends it
   * (dispatcher.h). */
  static const char ins_delivery_lines[] =
      "WITH l AS (UPDATE webhook_lines SET next = next + 1 WHERE webhook_id = ?3 RETURNING next) "
      "INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, next_attempt_at, created_at, updated_at, "
      "lease_owner, lease_until, line) SELECT ?1, ?2, ?3, ?4, 'pending', ?6, ?5, ?5, "
      "CASE WHEN l.next IS NULL THEN CAST(?7 AS TEXT) END, CASE WHEN l.next IS NULL THEN CAST(?8 AS BIGINT) END, "
      "l.next FROM (SELECT 1) AS one LEFT JOIN l ON true "
      "WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?3 AND active = 1)";
  /* No webhook is ordered (ev->lines 0): the look costs PostgreSQL about
   * a tenth of its ingest throughput (bench/ingest-ab), so it is left out. */
  static const char ins_delivery[] =
      "INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, next_attempt_at, created_at, updated_at, "
      "lease_owner, lease_until) SELECT ?1, ?2, ?3, ?4, 'pending', ?6, ?5, ?5, CAST(?7 AS TEXT), CAST(?8 AS BIGINT) "
      "WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?3 AND active = 1)";
  int64_t event_seq = 0;
  int rc = hg_db_nextval(db, "events", &event_seq);
  if (rc < 0) return hg_db_fail(db, rc, "reserve event seq");
  hg_stmt_t *st = NULL;
  if ((rc = hg_db_prepare(db, ins_event, &st)) < 0) return hg_db_fail(db, rc, "insert event");
  hg_db_bind_int64(st, 1, event_seq);
  hg_db_bind_text(st, 2, ev->id, -1);
  hg_db_bind_text(st, 3, ev->type, -1);
  if (ev->org[0]) hg_db_bind_text(st, 4, ev->org, -1);
  else hg_db_bind_null(st, 4);
  hg_db_bind_blob(st, 5, ev->payload, ev->payload_len);
  if (ev->idem_key) hg_db_bind_text(st, 6, ev->idem_key, -1);
  else hg_db_bind_null(st, 6);
  hg_db_bind_int64(st, 7, ev->now);
  hg_db_bind_int64(st, 8, ev->n_deliveries);
  rc = hg_db_defer(st);
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "insert event");
  if ((rc = hg_db_prepare(db, ev->lines ? ins_delivery_lines : ins_delivery, &st)) < 0)
    return hg_db_fail(db, rc, "insert delivery");
  int r = 0;
  size_t i;
  json_t *t;
  json_array_foreach(ev->targets, i, t) {
    if (!json_is_string(t)) continue;
    int64_t seq = 0;
    if ((rc = hg_db_nextval(db, "deliveries", &seq)) < 0) {
      r = hg_db_fail(db, rc, "reserve delivery seq");
      break;
    }
    char del_id[HG_ID_MAX];
    hg_id_new("del_", del_id);
    hg_db_bind_int64(st, 1, seq);
    hg_db_bind_text(st, 2, del_id, -1);
    hg_db_bind_text(st, 3, json_string_value(t), -1);
    hg_db_bind_int64(st, 4, event_seq);
    hg_db_bind_int64(st, 5, ev->now);
    hg_db_bind_int64(st, 6, ev->now + ev->first_delay_ms);
    if (ev->lease_owner != NULL) {
      hg_db_bind_text(st, 7, ev->lease_owner, -1);
      hg_db_bind_int64(st, 8, ev->now + ev->lease_ms);
    } else {
      hg_db_bind_null(st, 7);
      hg_db_bind_null(st, 8);
    }
    if ((rc = hg_db_defer(st)) < 0) {
      r = hg_db_fail(db, rc, "insert delivery");
      break;
    }
    if ((r = hg_event_in__push_seq(ev, seq)) != 0) break;
  }
  hg_db_release(st);
  return r;
}

/* ---- Many events: multi-row statements (rows.h) ---- */

typedef struct drow {
  int64_t seq, event_seq, now, due, until;
  const char *webhook; /* borrowed from the event's targets */
  const char *owner;   /* the lease's, or NULL */
  char id[HG_ID_MAX];
} drow_t;

struct hg_events_batch {
  hg_db_t *db;
  int pg;
  hg_event_in_t *evs[BATCH_EVENTS];
  int64_t ev_seqs[BATCH_EVENTS];
  size_t nev;
  size_t bytes; /* the payloads held */
  drow_t *rows;
  size_t nrows, cap;
};

int hg_events_batch_new(hg_db_t *db, hg_events_batch_t **out) {
  *out = NULL;
  hg_events_batch_t *b = calloc(1, sizeof(*b));
  if (b == NULL) return HG_ENOMEM;
  b->db = db;
  b->pg = hg_db_engine(db) == HG_DB_PG;
  *out = b;
  return 0;
}

void hg_events_batch_free(hg_events_batch_t *b) {
  if (b == NULL) return;
  free(b->rows);
  free(b);
}

static void bind_event(hg_stmt_t *st, int p, size_t i, void *ud) {
  const hg_events_batch_t *b = ud;
  const hg_event_in_t *ev = b->evs[i];
  hg_db_bind_int64(st, p, b->ev_seqs[i]);
  hg_db_bind_text(st, p + 1, ev->id, -1);
  hg_db_bind_text(st, p + 2, ev->type, -1);
  if (ev->org[0]) hg_db_bind_text(st, p + 3, ev->org, -1);
  else hg_db_bind_null(st, p + 3);
  hg_db_bind_blob(st, p + 4, ev->payload, ev->payload_len);
  hg_db_bind_int64(st, p + 5, ev->now);
  hg_db_bind_int64(st, p + 6, ev->n_deliveries);
}

static void bind_delivery(hg_stmt_t *st, int p, size_t i, void *ud) {
  const drow_t *d = &((const hg_events_batch_t *)ud)->rows[i];
  hg_db_bind_int64(st, p, d->seq);
  hg_db_bind_text(st, p + 1, d->id, -1);
  hg_db_bind_text(st, p + 2, d->webhook, -1);
  hg_db_bind_int64(st, p + 3, d->event_seq);
  hg_db_bind_int64(st, p + 4, d->now);
  hg_db_bind_int64(st, p + 5, d->due);
  if (d->owner != NULL) {
    hg_db_bind_text(st, p + 6, d->owner, -1);
    hg_db_bind_int64(st, p + 7, d->until);
  } else {
    hg_db_bind_null(st, p + 6);
    hg_db_bind_null(st, p + 7);
  }
}

int hg_events_batch_flush(hg_events_batch_t *b) {
  /* Events first: the deliveries' rows refer to theirs. */
  int r = hg_rows_send(b->db, HG_ROWS_EVENTS, b->nev, bind_event, b, "insert events");
  if (r == 0) r = hg_rows_send(b->db, HG_ROWS_DELIVERIES, b->nrows, bind_delivery, b, "insert deliveries");
  b->nev = 0;
  b->nrows = 0;
  b->bytes = 0;
  return r;
}

static drow_t *new_row(hg_events_batch_t *b) {
  if (b->nrows == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 64;
    drow_t *rows = realloc(b->rows, cap * sizeof(*rows));
    if (rows == NULL) return NULL;
    b->rows = rows;
    b->cap = cap;
  }
  return &b->rows[b->nrows++];
}

int hg_events__batch_hold(hg_events_batch_t *b, hg_event_in_t *ev, hg_db_t **db_out) {
  *db_out = b->db;
  /* Only an event with nothing to look up first and no FIFO place to
   * take is held; any other goes alone (1), after the rows held so far (an
   * earlier event of the batch may be the one its key finds). */
  if (!b->pg || ev->idem_key != NULL || ev->client_id || ev->lines) {
    int r = hg_events_batch_flush(b);
    return r != 0 ? r : 1;
  }
  /* Set afresh, as hg_events_insert does: the store may run this twice. */
  ev->duplicate = ev->conflict = 0;
  ev->n_deliveries = 0;
  ev->n_seqs = 0;
  size_t i;
  json_t *t;
  json_array_foreach(ev->targets, i, t) ev->n_deliveries += json_is_string(t);
  hg_db_t *db = b->db;
  int64_t event_seq = 0;
  int rc = hg_db_nextval(db, "events", &event_seq);
  if (rc < 0) return hg_db_fail(db, rc, "reserve event seq");
  json_array_foreach(ev->targets, i, t) {
    if (!json_is_string(t)) continue;
    int64_t seq = 0;
    if ((rc = hg_db_nextval(db, "deliveries", &seq)) < 0) return hg_db_fail(db, rc, "reserve delivery seq");
    drow_t *d = new_row(b);
    if (d == NULL) return HG_ENOMEM;
    d->seq = seq;
    d->event_seq = event_seq;
    d->now = ev->now;
    d->due = ev->now + ev->first_delay_ms;
    d->webhook = json_string_value(t);
    d->owner = ev->lease_owner;
    d->until = ev->now + ev->lease_ms;
    hg_id_new("del_", d->id);
    if ((rc = hg_event_in__push_seq(ev, seq)) != 0) return rc;
  }
  b->evs[b->nev] = ev;
  b->ev_seqs[b->nev++] = event_seq;
  b->bytes += ev->payload_len;
  return b->nev == BATCH_EVENTS || b->bytes >= BATCH_BYTES ? hg_events_batch_flush(b) : 0;
}
