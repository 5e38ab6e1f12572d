/* deliveries.c: SQL for deliveries and their attempts. */
#include "store/deliveries.h"

#include "base/common.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {"pending", "success", "failed", "skipped"};

const char *hg_delivery_status_name(hg_delivery_status_t s) {
  return (unsigned)s < HG_ARRAY_LEN(status_names) ? status_names[s] : "unknown";
}

int hg_delivery_status_parse(const char *s, hg_delivery_status_t *out) {
  for (size_t i = 0; i < HG_ARRAY_LEN(status_names); i++) {
    if (strcmp(s, status_names[i]) == 0) {
      *out = (hg_delivery_status_t)i;
      return 0;
    }
  }
  return HG_EINVAL;
}

static hg_delivery_status_t status_of(const unsigned char *s) {
  hg_delivery_status_t st = HG_DEL_FAILED;
  if (s) hg_delivery_status_parse((const char *)s, &st);
  return st;
}

void hg_send_close(hg_send_t *s) {
  if (s == NULL) return;
  free(s->url);
  free(s->payload);
  free(s->lua);
  free(s->request_headers);
  s->url = s->payload = s->lua = s->request_headers = NULL;
  memset(s->secrets, 0, sizeof(s->secrets));
}

static void bind_opt(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

int hg_deliveries_load(sqlite3 *db, int64_t seq, int64_t now, hg_send_t *out, const hg_send_t *prev) {
  sqlite3_stmt *st = NULL;
  memset(out, 0, sizeof(*out));
  int rc = hg_store_prepare(db,
                              "SELECT d.id, d.webhook_id, e.id, d.status, d.attempts, d.next_attempt_at, w.active, "
                              "w.url, e.payload, d.created_at, e.type, w.lua, w.organization_id FROM deliveries d "
                              "JOIN events e ON e.seq = d.event_seq "
                              "JOIN webhooks w ON w.id = d.webhook_id WHERE d.seq = ?1", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "load delivery");
  sqlite3_bind_int64(st, 1, seq);
  rc = sqlite3_step(st);
  int r = 0;
  if (rc == SQLITE_ROW) {
    out->seq = seq;
    hg_copy(out->id, sizeof(out->id), (const char *)sqlite3_column_text(st, 0));
    hg_copy(out->webhook_id, sizeof(out->webhook_id), (const char *)sqlite3_column_text(st, 1));
    hg_copy(out->event_id, sizeof(out->event_id), (const char *)sqlite3_column_text(st, 2));
    out->status = status_of(sqlite3_column_text(st, 3));
    out->attempts = sqlite3_column_int(st, 4);
    out->next_attempt_at = sqlite3_column_int64(st, 5);
    out->webhook_active = sqlite3_column_int(st, 6);
    out->created_at = sqlite3_column_int64(st, 9);
    hg_copy(out->event_type, sizeof(out->event_type), (const char *)sqlite3_column_text(st, 10));
    if (sqlite3_column_type(st, 11) != SQLITE_NULL) out->lua = strdup((const char *)sqlite3_column_text(st, 11));
    if (sqlite3_column_type(st, 12) != SQLITE_NULL)
      hg_copy(out->org, sizeof(out->org), (const char *)sqlite3_column_text(st, 12));
    out->url = strdup((const char *)sqlite3_column_text(st, 7));
    out->payload_len = (size_t)sqlite3_column_bytes(st, 8);
    out->payload = malloc(out->payload_len + 1);
    if (out->url == NULL || out->payload == NULL) {
      r = HG_ENOMEM;
    } else {
      memcpy(out->payload, sqlite3_column_blob(st, 8), out->payload_len);
      out->payload[out->payload_len] = '\0';
    }
  } else {
    r = rc == SQLITE_DONE ? HG_ENOTFOUND : hg_store_fail(db, rc, "load delivery");
  }
  hg_store_release(st);
  if (r == 0 && prev != NULL && strcmp(prev->webhook_id, out->webhook_id) == 0) {
    /* A batch often holds many deliveries of one webhook. */
    memcpy(out->secrets, prev->secrets, prev->n_secrets * sizeof(out->secrets[0]));
    out->n_secrets = prev->n_secrets;
  } else if (r == 0) {
    r = hg_webhooks_secrets(db, out->webhook_id, now, out->secrets, HG_MAX_SECRETS, &out->n_secrets);
  }
  if (r != 0) hg_send_close(out);
  return r;
}

int hg_deliveries_record(sqlite3 *db, const hg_attempt_rec_t *rec) {
  sqlite3_stmt *st = NULL;
  char att_id[HG_ID_MAX];
  hg_id_new("att_", att_id);
  int rc = hg_store_prepare(db,
                              "INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code, "
                              "response_body, error, request_headers) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "record attempt");
  sqlite3_bind_text(st, 1, att_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, rec->delivery_seq);
  sqlite3_bind_int(st, 3, rec->attempt);
  sqlite3_bind_int64(st, 4, rec->started_at);
  sqlite3_bind_int64(st, 5, rec->duration_ms);
  sqlite3_bind_int(st, 6, rec->status_code);
  if (rec->response_body) sqlite3_bind_blob(st, 7, rec->response_body, (int)rec->response_len, SQLITE_STATIC);
  bind_opt(st, 8, rec->error);
  bind_opt(st, 9, rec->request_headers);
  rc = sqlite3_step(st);
  hg_store_release(st);
  if (rc != SQLITE_DONE) return hg_store_fail(db, rc, "record attempt");
  rc = hg_store_prepare(db,
                          "UPDATE deliveries SET status = ?2, attempts = ?3, status_code = ?4, next_attempt_at = ?5, "
                          "updated_at = ?6 WHERE seq = ?1", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "update delivery");
  sqlite3_bind_int64(st, 1, rec->delivery_seq);
  sqlite3_bind_text(st, 2, hg_delivery_status_name(rec->new_status), -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, rec->attempt);
  sqlite3_bind_int(st, 4, rec->status_code);
  if (rec->new_status == HG_DEL_PENDING) sqlite3_bind_int64(st, 5, rec->next_attempt_at);
  else sqlite3_bind_null(st, 5);
  sqlite3_bind_int64(st, 6, rec->started_at + rec->duration_ms);
  rc = sqlite3_step(st);
  hg_store_release(st);
  if (rc != SQLITE_DONE) return hg_store_fail(db, rc, "update delivery");
  if (rec->deactivate_webhook) {
    rc = hg_store_prepare(db, "UPDATE webhooks SET active = 0, updated_at = ?2 WHERE id = ?1", &st);
    if (rc != SQLITE_OK) return hg_store_fail(db, rc, "deactivate webhook");
    sqlite3_bind_text(st, 1, rec->deactivate_webhook, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, rec->started_at + rec->duration_ms);
    rc = sqlite3_step(st);
    hg_store_release(st);
    if (rc != SQLITE_DONE) return hg_store_fail(db, rc, "deactivate webhook");
  }
  return 0;
}

int hg_deliveries_abandon(sqlite3 *db, int64_t seq, int64_t now) {
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db,
                              "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, updated_at = ?2 "
                              "WHERE seq = ?1 AND status = 'pending'", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "abandon delivery");
  sqlite3_bind_int64(st, 1, seq);
  sqlite3_bind_int64(st, 2, now);
  rc = sqlite3_step(st);
  hg_store_release(st);
  return rc == SQLITE_DONE ? 0 : hg_store_fail(db, rc, "abandon delivery");
}

int hg_deliveries_pending(sqlite3 *db, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud) {
  /* In table order: the dispatcher's heap orders them. Sorting a million
   * rows here cost a sorter as large as the result, in memory with
   * temp_store=MEMORY, which malloc then kept. */
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db,
                              "SELECT seq, next_attempt_at FROM deliveries WHERE status = 'pending'", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "read pending deliveries");
  int r = 0;
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
    r = cb(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), ud);
  if (r == 0 && rc != SQLITE_DONE) r = hg_store_fail(db, rc, "read pending deliveries");
  hg_store_release(st);
  return r;
}

/* Delivery id under webhook wh, visible to org (NULL: any). */
#define VISIBLE "FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?1 AND d.webhook_id = ?2 " \
                "AND (?3 IS NULL OR w.organization_id = ?3)"

int hg_deliveries_seq(sqlite3 *db, const char *wh, const char *org, const char *id, int64_t *seq) {
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db, "SELECT d.seq " VISIBLE, &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "find delivery");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, wh, -1, SQLITE_STATIC);
  bind_opt(st, 3, org);
  rc = sqlite3_step(st);
  int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HG_ENOTFOUND : hg_store_fail(db, rc, "find delivery");
  if (r == 0) *seq = sqlite3_column_int64(st, 0);
  hg_store_release(st);
  return r;
}

int hg_deliveries_replay(sqlite3 *db, const char *wh, const char *org, const char *id, int64_t now, int64_t *seq) {
  int r = hg_deliveries_seq(db, wh, org, id, seq);
  if (r != 0) return r;
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db,
                              "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, updated_at = ?2 "
                              "WHERE seq = ?1", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "replay delivery");
  sqlite3_bind_int64(st, 1, *seq);
  sqlite3_bind_int64(st, 2, now);
  rc = sqlite3_step(st);
  hg_store_release(st);
  return rc == SQLITE_DONE ? 0 : hg_store_fail(db, rc, "replay delivery");
}

int hg_deliveries_create_test(sqlite3 *db, const char *wh, const char *org, const char *type, const char *payload,
                              size_t len, int64_t now, char *event_id, int64_t *seq, char *del_id) {
  hg_webhook_t w;
  int r = hg_webhooks_get(db, wh, org, &w);
  if (r != 0) return r;
  sqlite3_stmt *st = NULL;
  hg_id_new("evt_", event_id);
  int rc = hg_store_prepare(db,
                              "INSERT INTO events (id, type, organization_id, payload, created_at, deliveries) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, 1)", &st);
  if (rc != SQLITE_OK) {
    hg_webhook_close(&w);
    return hg_store_fail(db, rc, "insert test event");
  }
  sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
  bind_opt(st, 3, w.org);
  sqlite3_bind_blob(st, 4, payload, (int)len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, now);
  rc = sqlite3_step(st);
  hg_store_release(st);
  hg_webhook_close(&w);
  if (rc != SQLITE_DONE) return hg_store_fail(db, rc, "insert test event");
  int64_t event_seq = sqlite3_last_insert_rowid(db);
  hg_id_new("del_", del_id);
  /* Not pending: a test is sent once, at once, by the caller, never by the
   * queue; the attempt's record sets its final status. */
  rc = hg_store_prepare(db,
                          "INSERT INTO deliveries (id, webhook_id, event_seq, status, created_at, updated_at) "
                          "VALUES (?1, ?2, ?3, 'failed', ?4, ?4)", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "insert test delivery");
  sqlite3_bind_text(st, 1, del_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, wh, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, event_seq);
  sqlite3_bind_int64(st, 4, now);
  rc = sqlite3_step(st);
  hg_store_release(st);
  if (rc != SQLITE_DONE) return hg_store_fail(db, rc, "insert test delivery");
  *seq = sqlite3_last_insert_rowid(db);
  return 0;
}

static json_t *time_json(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return json_null();
  char buf[25];
  hg_format_time(sqlite3_column_int64(st, col), buf);
  return json_string(buf);
}

static json_t *int_or_null(sqlite3_stmt *st, int col) {
  return sqlite3_column_type(st, col) == SQLITE_NULL ? json_null() : json_integer(sqlite3_column_int64(st, col));
}

#define DELIVERY_COLS "d.id, e.id, e.type, d.status, d.status_code, d.attempts, d.created_at, d.updated_at, " \
                      "d.next_attempt_at, d.seq"

static json_t *delivery_json(sqlite3_stmt *st) {
  return json_pack("{s:s,s:s,s:s,s:s,s:o,s:i,s:o,s:o,s:o}", "id", (const char *)sqlite3_column_text(st, 0),
                   "eventId", (const char *)sqlite3_column_text(st, 1), "event",
                   (const char *)sqlite3_column_text(st, 2), "status", (const char *)sqlite3_column_text(st, 3),
                   "statusCode", int_or_null(st, 4), "attempts", sqlite3_column_int(st, 5), "createdAt",
                   time_json(st, 6), "updatedAt", time_json(st, 7), "nextAttemptAt", time_json(st, 8));
}

/* 0 when webhook wh exists and org (NULL: any) may see it, else
 * HG_ENOTFOUND or a store error. */
static int webhook_visible(sqlite3 *db, const char *wh, const char *org) {
  hg_webhook_t w = {0};
  int r = hg_webhooks_get(db, wh, org, &w);
  hg_webhook_close(&w);
  return r;
}

int hg_deliveries_list_json(sqlite3 *db, const char *wh, const char *org, const char *after_id, int limit, int status,
                            const char *event, json_t *arr, char *last_id, int *more) {
  int r = webhook_visible(db, wh, org);
  if (r != 0) return r;
  sqlite3_stmt *st = NULL;
  int rc = hg_store_prepare(db,
                              "SELECT " DELIVERY_COLS " FROM deliveries d JOIN events e ON e.seq = d.event_seq "
                              "WHERE d.webhook_id = ?1 AND (?2 = '' OR d.id < ?2) AND (?3 IS NULL OR d.status = ?3) "
                              "AND (?4 IS NULL OR e.type = ?4) ORDER BY d.id DESC LIMIT ?5", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "list deliveries");
  sqlite3_bind_text(st, 1, wh, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, after_id, -1, SQLITE_STATIC);
  bind_opt(st, 3, status >= 0 ? hg_delivery_status_name((hg_delivery_status_t)status) : NULL);
  bind_opt(st, 4, event);
  sqlite3_bind_int(st, 5, limit + 1);
  int n = 0;
  *more = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == limit) {
      *more = 1;
      break;
    }
    json_array_append_new(arr, delivery_json(st));
    snprintf(last_id, HG_ID_MAX, "%s", (const char *)sqlite3_column_text(st, 0));
    n++;
  }
  r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : hg_store_fail(db, rc, "list deliveries");
  hg_store_release(st);
  return r;
}

/* JSON text stored by the gateway (a payload, an attempt's headers) back
 * as a value; NULL when it cannot be parsed. A payload's data is kept byte
 * for byte, so it may hold what jansson refuses by default: \u0000 in a
 * string, or an integer beyond 64 bits (then read as a double, as a
 * JavaScript client would). */
static json_t *stored_json(const void *text, size_t len) {
  json_t *v = json_loadb(text, len, JSON_ALLOW_NUL, NULL);
  if (v == NULL) v = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
  return v;
}

static json_t *stored_json_col(sqlite3_stmt *st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return json_null();
  json_t *v = stored_json(sqlite3_column_blob(st, col), (size_t)sqlite3_column_bytes(st, col));
  return v ? v : json_null();
}

int hg_deliveries_get_json(sqlite3 *db, const char *wh, const char *org, const char *id, json_t **out) {
  sqlite3_stmt *st = NULL;
  /* The payload only here: the list stays light. */
  int rc = hg_store_prepare(db,
                              "SELECT " DELIVERY_COLS ", e.payload FROM deliveries d JOIN events e ON e.seq = d.event_seq "
                              "JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = ?1 AND d.webhook_id = ?2 "
                              "AND (?3 IS NULL OR w.organization_id = ?3)", &st);
  if (rc != SQLITE_OK) return hg_store_fail(db, rc, "get delivery");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, wh, -1, SQLITE_STATIC);
  bind_opt(st, 3, org);
  rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    hg_store_release(st);
    return rc == SQLITE_DONE ? HG_ENOTFOUND : hg_store_fail(db, rc, "get delivery");
  }
  json_t *d = delivery_json(st);
  int64_t seq = sqlite3_column_int64(st, 9);
  json_object_set_new(d, "payload", stored_json_col(st, 10));
  hg_store_release(st);
  json_t *attempts = json_array();
  rc = hg_store_prepare(db,
                          "SELECT id, attempt, started_at, duration_ms, status_code, response_body, error, request_headers "
                          "FROM attempts WHERE delivery_seq = ?1 ORDER BY attempt, started_at", &st);
  if (rc != SQLITE_OK) {
    json_decref(d);
    json_decref(attempts);
    return hg_store_fail(db, rc, "get attempts");
  }
  sqlite3_bind_int64(st, 1, seq);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_t *body = json_null();
    if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
      /* A receiver's body need not be UTF-8: keep only what JSON can carry. */
      body = json_stringn((const char *)sqlite3_column_blob(st, 5), (size_t)sqlite3_column_bytes(st, 5));
      if (body == NULL) body = json_string("(response body is not UTF-8)");
    }
    json_array_append_new(attempts,
                          json_pack("{s:s,s:i,s:o,s:I,s:o,s:o,s:o,s:o}", "id", (const char *)sqlite3_column_text(st, 0),
                                    "attempt", sqlite3_column_int(st, 1), "startedAt", time_json(st, 2), "durationMs",
                                    (json_int_t)sqlite3_column_int64(st, 3), "statusCode",
                                    sqlite3_column_int(st, 4) ? json_integer(sqlite3_column_int(st, 4)) : json_null(),
                                    "responseBody", body ? body : json_null(), "error",
                                    sqlite3_column_type(st, 6) == SQLITE_NULL
                                        ? json_null()
                                        : json_string((const char *)sqlite3_column_text(st, 6)),
                                    "requestHeaders", stored_json_col(st, 7)));
  }
  hg_store_release(st);
  json_object_set_new(d, "attempts", attempts);
  *out = d;
  return 0;
}
