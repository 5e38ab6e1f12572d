/* events.c: event insert, idempotency and fan-out. */
#include "events.h"

#include "common.h"
#include "ids.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEMPOTENCY_MS (24 * 3600 * 1000LL)

/* Looks for an earlier event with ev's idempotency key (or publisher id).
 * Returns 0 and sets ev->duplicate when one answers for this request. */
static int find_original(sqlite3 *db, hg_event_in_t *ev, int by_key) {
  sqlite3_stmt *st = NULL;
  const char *sql = by_key
                        ? "SELECT seq, id, created_at, organization_id, deliveries FROM events WHERE idempotency_key = ?1"
                        : "SELECT seq, id, created_at, organization_id, deliveries FROM events WHERE id = ?1";
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
      hg_copy(ev->original_id, sizeof(ev->original_id), (const char *)sqlite3_column_text(st, 1));
      ev->n_deliveries = sqlite3_column_int(st, 4);
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

/* Which targets are active webhooks (a route plugin may name any id):
 * active[i] for targets[i]. Returns how many are, or a negative code. */
static int check_targets(sqlite3 *db, json_t *targets, unsigned char *active) {
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db, "SELECT active FROM webhooks WHERE id = ?1", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "check delivery target");
  int n = 0;
  size_t i;
  json_t *t;
  json_array_foreach(targets, i, t) {
    active[i] = 0;
    if (!json_is_string(t)) continue;
    sqlite3_bind_text(st, 1, json_string_value(t), -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) active[i] = sqlite3_column_int(st, 0) == 1;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      hg_store_release(st);
      return hg_store_fail(db, rc, "check delivery target");
    }
    n += active[i];
  }
  hg_store_release(st);
  return n;
}

static int insert_all(sqlite3 *db, hg_event_in_t *ev, const unsigned char *active) {
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db,
                            "INSERT INTO events (id, type, organization_id, payload, idempotency_key, created_at, "
                            "deliveries) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "insert event");
  sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, ev->type, -1, SQLITE_STATIC);
  if (ev->org[0]) sqlite3_bind_text(st, 3, ev->org, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 4, ev->payload, (int)ev->payload_len, SQLITE_STATIC);
  if (ev->idem_key) sqlite3_bind_text(st, 5, ev->idem_key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, ev->now);
  sqlite3_bind_int(st, 7, ev->n_deliveries);
  rc = sqlite3_step(st);
  hg_store_release(st);
  if (rc != SQLITE_DONE) return hg_store_fail(db, rc, "insert event");
  int64_t event_seq = sqlite3_last_insert_rowid(db);

  /* One row from VALUES: an INSERT ... SELECT may write several rows, for
   * which SQLite keeps a statement journal (a copy of every page touched). */
  rc = hg_store_prepare(db,
                        "INSERT INTO deliveries (id, webhook_id, event_seq, status, next_attempt_at, created_at, "
                        "updated_at) VALUES (?1, ?2, ?3, 'pending', ?5, ?4, ?4)", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "insert delivery");
  int r = 0;
  size_t i;
  json_t *t;
  json_array_foreach(ev->targets, i, t) {
    if (!active[i]) continue;
    char del_id[HG_ID_MAX];
    hg_id_new("del_", del_id);
    sqlite3_bind_text(st, 1, del_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, json_string_value(t), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, event_seq);
    sqlite3_bind_int64(st, 4, ev->now);
    sqlite3_bind_int64(st, 5, ev->now + ev->first_delay_ms);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
      r = hg_store_fail(db, rc, "insert delivery");
      break;
    }
    if ((r = push_seq(ev, sqlite3_last_insert_rowid(db))) != 0) break;
  }
  hg_store_release(st);
  return r;
}

int hg_events_insert(sqlite3 *db, hg_event_in_t *ev) {
  int r;
  /* Everything reported is set afresh and nothing given is changed: the
   * store may run this twice. */
  ev->duplicate = ev->conflict = 0;
  ev->n_deliveries = 0;
  ev->n_seqs = 0;
  /* An Idempotency-Key first, then the publisher's own id: either one
   * seen before answers with the original event. */
  if (ev->idem_key && ((r = find_original(db, ev, 1)) != 0 || ev->duplicate)) return r;
  if (ev->client_id && ((r = find_original(db, ev, 0)) != 0 || ev->duplicate || ev->conflict)) return r;
  /* The event row records how many deliveries it fanned out to (an
   * idempotent replay answers with it), so the targets are checked first. */
  size_t n = json_array_size(ev->targets);
  unsigned char small[64];
  unsigned char *active = n <= sizeof(small) ? small : malloc(n);
  if (active == NULL) return HG_ENOMEM;
  r = check_targets(db, ev->targets, active);
  if (r >= 0) {
    ev->n_deliveries = r;
    r = insert_all(db, ev, active);
  }
  if (active != small) free(active);
  return r;
}
