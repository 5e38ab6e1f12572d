/* events.c: event insert, idempotency and fan-out. */
#include "events.h"

#include "common.h"
#include "ids.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEMPOTENCY_MS (24 * 3600 * 1000LL)

static int count_deliveries(sqlite3 *db, int64_t seq, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db, "SELECT count(*) FROM deliveries WHERE event_seq = ?1", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "count deliveries");
  sqlite3_bind_int64(st, 1, seq);
  rc = sqlite3_step(st);
  int r = rc == SQLITE_ROW ? 0 : hg_store_fail(db, rc, "count deliveries");
  if (r == 0) *out = sqlite3_column_int(st, 0);
  hg_store_release(st);
  return r;
}

/* Looks for an earlier event with ev's idempotency key (or publisher id).
 * Returns 0 and sets ev->duplicate when one answers for this request. */
static int find_original(sqlite3 *db, hg_event_in_t *ev, int by_key) {
  sqlite3_stmt *st = NULL;
  const char *sql = by_key ? "SELECT seq, id, created_at, organization_id FROM events WHERE idempotency_key = ?1"
                           : "SELECT seq, id, created_at, organization_id FROM events WHERE id = ?1";
  int rc = hg_store_prepare(db, sql, &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "find event");
  sqlite3_bind_text(st, 1, by_key ? ev->idem_key : ev->id, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  int r = 0;
  if (rc == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    int64_t created = sqlite3_column_int64(st, 2);
    const char *org = (const char *)sqlite3_column_text(st, 3);
    if (by_key && created < ev->now - IDEMPOTENCY_MS) {
      /* The key has expired: free it for this new event. */
      hg_store_release(st);
      st = NULL;
      rc = hg_store_prepare(db, "UPDATE events SET idempotency_key = NULL WHERE seq = ?1", &st);
      if (rc != SQLITE_OK) return hg_store_fail(db, rc, "expire idempotency key");
      sqlite3_bind_int64(st, 1, seq);
      rc = sqlite3_step(st);
      r = rc == SQLITE_DONE ? 0 : hg_store_fail(db, rc, "expire idempotency key");
    } else if (!by_key && strcmp(org ? org : "", ev->org) != 0) {
      ev->conflict = 1;
    } else {
      ev->duplicate = 1;
      snprintf(ev->id, sizeof(ev->id), "%s", (const char *)sqlite3_column_text(st, 1));
      r = count_deliveries(db, seq, &ev->n_deliveries);
    }
  } else if (rc != SQLITE_DONE) {
    r = hg_store_fail(db, rc, "find event");
  }
  hg_store_release(st);
  return r;
}

static int push_seq(hg_event_in_t *ev, int64_t seq) {
  if ((ev->n_seqs & (ev->n_seqs - 1)) == 0) {
    /* Grow at powers of two. */
    size_t cap = ev->n_seqs ? ev->n_seqs * 2 : 4;
    int64_t *seqs = realloc(ev->delivery_seqs, cap * sizeof(*seqs));
    if (seqs == NULL) return HG_ENOMEM;
    ev->delivery_seqs = seqs;
  }
  ev->delivery_seqs[ev->n_seqs++] = seq;
  return 0;
}

int hg_events_insert(sqlite3 *db, hg_event_in_t *ev) {
  sqlite3_stmt *st = NULL;
  int rc, r;
  ev->duplicate = ev->conflict = 0;
  ev->n_deliveries = 0;
  /* An Idempotency-Key first, then the publisher's own id: either one
   * seen before answers with the original event. */
  if (ev->idem_key && ((r = find_original(db, ev, 1)) != 0 || ev->duplicate)) return r;
  if (ev->client_id && ((r = find_original(db, ev, 0)) != 0 || ev->duplicate || ev->conflict)) return r;
  rc = hg_store_prepare(db,
                          "INSERT INTO events (id, type, organization_id, payload, idempotency_key, created_at) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "insert event");
  sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, ev->type, -1, SQLITE_STATIC);
  if (ev->org[0]) sqlite3_bind_text(st, 3, ev->org, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, ev->payload, (int)ev->payload_len, SQLITE_STATIC);
  if (ev->idem_key) sqlite3_bind_text(st, 5, ev->idem_key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, ev->now);
  rc = sqlite3_step(st);
  hg_store_release(st);
  if (rc != SQLITE_DONE) return hg_store_fail(db, rc, "insert event");
  int64_t event_seq = sqlite3_last_insert_rowid(db);

  json_t *targets = ev->targets;
  sqlite3_stmt *ins = NULL;
  /* SELECT from webhooks so an id a route plugin added that is unknown or
   * inactive inserts nothing. */
  rc = hg_store_prepare(db,
                          "INSERT INTO deliveries (id, webhook_id, event_seq, status, next_attempt_at, created_at, "
                          "updated_at) SELECT ?1, id, ?3, 'pending', ?5, ?4, ?4 FROM webhooks WHERE id = ?2 "
                          "AND active = 1", &ins);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "insert delivery");
  r = 0;
  size_t i;
  json_t *t;
  json_array_foreach(targets, i, t) {
    if (!json_is_string(t)) continue;
    char del_id[HG_ID_MAX];
    hg_id_new("del_", del_id);
    sqlite3_bind_text(ins, 1, del_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(ins, 2, json_string_value(t), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 3, event_seq);
    sqlite3_bind_int64(ins, 4, ev->now);
    sqlite3_bind_int64(ins, 5, ev->now + ev->first_delay_ms);
    int rc2 = sqlite3_step(ins);
    sqlite3_reset(ins);
    if (rc2 != SQLITE_DONE) {
      r = hg_store_fail(db, rc2, "insert delivery");
      break;
    }
    if (sqlite3_changes(db) == 0) continue;
    if ((r = push_seq(ev, sqlite3_last_insert_rowid(db))) != 0) break;
    ev->n_deliveries++;
  }
  hg_store_release(ins);
  return r;
}
