/* webhooks.c: SQL for webhooks and their secrets. */
#include "store/webhooks.h"

#include "base/common.h"
#include "store/store.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hg_webhook_close(hg_webhook_t *w) {
  if (w == NULL) return;
  free(w->url);
  free(w->events);
  free(w->org);
  free(w->metadata);
  free(w->lua);
  w->url = w->events = w->org = w->metadata = w->lua = NULL;
}

static int sql_fail(sqlite3 *db, const char *what) {
  hg_log(HG_LOG_ERROR, "store query failed", "query", what, "error", sqlite3_errmsg(db), NULL);
  return (sqlite3_errcode(db) & 0xff) == SQLITE_FULL ? HG_ENOSPC : HG_EIO;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const unsigned char *s = sqlite3_column_text(st, i);
  return s ? strdup((const char *)s) : NULL;
}

#define WEBHOOK_COLS "id, url, events, organization_id, active, metadata, created_at, updated_at, lua, signature_scheme"

static int read_row(sqlite3_stmt *st, hg_webhook_t *w) {
  memset(w, 0, sizeof(*w));
  snprintf(w->id, sizeof(w->id), "%s", (const char *)sqlite3_column_text(st, 0));
  w->url = col_dup(st, 1);
  w->events = col_dup(st, 2);
  w->org = col_dup(st, 3);
  w->active = sqlite3_column_int(st, 4);
  w->metadata = col_dup(st, 5);
  w->created_at = sqlite3_column_int64(st, 6);
  w->updated_at = sqlite3_column_int64(st, 7);
  w->lua = col_dup(st, 8);
  hg_copy(w->scheme, sizeof(w->scheme), (const char *)sqlite3_column_text(st, 9));
  if ((!w->lua && sqlite3_column_type(st, 8) != SQLITE_NULL) || !w->url || !w->events || !w->metadata || (!w->org && sqlite3_column_type(st, 3) != SQLITE_NULL)) {
    hg_webhook_close(w);
    return HG_ENOMEM;
  }
  return 0;
}

/* Rewrites the subscription index rows of webhook id from its events. */
static int set_patterns(sqlite3 *db, const char *id, const char *events) {
  sqlite3_stmt *st = NULL;
  int r = 0;
  if (hg_store_prepare(db, "DELETE FROM webhook_events WHERE webhook_id = ?1", &st) != SQLITE_OK)
    return sql_fail(db, "index subscriptions");
  bind_text(st, 1, id);
  if (sqlite3_step(st) != SQLITE_DONE) r = sql_fail(db, "index subscriptions");
  hg_store_release(st);
  if (r != 0) return r;
  if (hg_store_prepare(db,
                         "INSERT OR IGNORE INTO webhook_events (pattern, webhook_id) SELECT value, ?1 FROM json_each(?2)", &st) != SQLITE_OK)
    return sql_fail(db, "index subscriptions");
  bind_text(st, 1, id);
  bind_text(st, 2, events);
  if (sqlite3_step(st) != SQLITE_DONE) r = sql_fail(db, "index subscriptions");
  hg_store_release(st);
  return r;
}

/* Stores secret as the current secret of webhook id, with its public key
 * when it is a v1a signing key. */
static int insert_secret(sqlite3 *db, const char *id, const char *secret, int64_t now) {
  sqlite3_stmt *st = NULL;
  char pub[HG_PUBLIC_KEY_MAX] = "";
  int r = 0;
  if (hg_signing_key_is_v1a(secret) && (r = hg_public_key(secret, pub)) != 0) return r;
  if (hg_store_prepare(db, "INSERT INTO webhook_secrets (webhook_id, secret, created_at, public_key) VALUES (?,?,?,?)",
                       &st) != SQLITE_OK)
    return sql_fail(db, "insert secret");
  bind_text(st, 1, id);
  bind_text(st, 2, secret);
  sqlite3_bind_int64(st, 3, now);
  bind_text(st, 4, pub[0] ? pub : NULL);
  if (sqlite3_step(st) != SQLITE_DONE) r = sql_fail(db, "insert secret");
  hg_store_release(st);
  return r;
}

int hg_webhooks_insert(sqlite3 *db, const hg_webhook_t *w, const char *secret) {
  sqlite3_stmt *st = NULL;
  int r = 0;
  if (hg_store_prepare(db, "INSERT INTO webhooks (" WEBHOOK_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?)", &st) != SQLITE_OK)
    return sql_fail(db, "insert webhook");
  bind_text(st, 1, w->id);
  bind_text(st, 2, w->url);
  bind_text(st, 3, w->events);
  bind_text(st, 4, w->org);
  sqlite3_bind_int(st, 5, w->active);
  bind_text(st, 6, w->metadata);
  sqlite3_bind_int64(st, 7, w->created_at);
  sqlite3_bind_int64(st, 8, w->updated_at);
  bind_text(st, 9, w->lua);
  bind_text(st, 10, w->scheme[0] ? w->scheme : "v1");
  if (sqlite3_step(st) != SQLITE_DONE) r = sql_fail(db, "insert webhook");
  hg_store_release(st);
  if (r != 0) return r;
  if ((r = insert_secret(db, w->id, secret, w->created_at)) != 0) return r;
  r = set_patterns(db, w->id, w->events);
  return r;
}

int hg_webhooks_get(sqlite3 *db, const char *id, const char *org, hg_webhook_t *out) {
  sqlite3_stmt *st = NULL;
  /* Zeroed before anything can fail, so that closing out is safe after any
   * answer: callers close it on their one cleanup path. */
  memset(out, 0, sizeof(*out));
  if (hg_store_prepare(db,
                         "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR organization_id = ?2)", &st) != SQLITE_OK)
    return sql_fail(db, "get webhook");
  bind_text(st, 1, id);
  bind_text(st, 2, org);
  int rc = sqlite3_step(st), r;
  if (rc == SQLITE_ROW) r = read_row(st, out);
  else if (rc == SQLITE_DONE) r = HG_ENOTFOUND;
  else r = sql_fail(db, "get webhook");
  hg_store_release(st);
  return r;
}

int hg_webhooks_list(sqlite3 *db, int org_mode, const char *org, const char *after_id, int limit,
                     int (*cb)(const hg_webhook_t *w, void *ud), void *ud) {
  sqlite3_stmt *st = NULL;
  /* Ids are time-ordered, so "below the last id seen" pages newest first
   * without skipping or repeating rows while new ones arrive. */
  const char *sql = org_mode ? "SELECT " WEBHOOK_COLS " FROM webhooks WHERE organization_id = ?3 AND "
                               "(?1 = '' OR id < ?1) ORDER BY id DESC LIMIT ?2"
                             : "SELECT " WEBHOOK_COLS " FROM webhooks WHERE (?1 = '' OR id < ?1) "
                               "ORDER BY id DESC LIMIT ?2";
  if (hg_store_prepare(db, sql, &st) != SQLITE_OK) return sql_fail(db, "list webhooks");
  bind_text(st, 1, after_id);
  sqlite3_bind_int(st, 2, limit);
  if (org_mode) bind_text(st, 3, org);
  int r = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    hg_webhook_t w;
    if ((r = read_row(st, &w)) != 0) break;
    int stop = cb(&w, ud);
    hg_webhook_close(&w);
    if (stop) break;
  }
  if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE) r = sql_fail(db, "list webhooks");
  hg_store_release(st);
  return r;
}

int hg_webhooks_update(sqlite3 *db, const hg_webhook_t *w) {
  sqlite3_stmt *st = NULL;
  if (hg_store_prepare(db,
                         "UPDATE webhooks SET url = ?2, events = ?3, active = ?4, metadata = ?5, updated_at = ?6, lua = ?7 "
                         "WHERE id = ?1", &st) != SQLITE_OK)
    return sql_fail(db, "update webhook");
  bind_text(st, 1, w->id);
  bind_text(st, 2, w->url);
  bind_text(st, 3, w->events);
  sqlite3_bind_int(st, 4, w->active);
  bind_text(st, 5, w->metadata);
  sqlite3_bind_int64(st, 6, w->updated_at);
  bind_text(st, 7, w->lua);
  int r = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_fail(db, "update webhook");
  if (r == 0 && sqlite3_changes(db) == 0) r = HG_ENOTFOUND;
  hg_store_release(st);
  if (r == 0) r = set_patterns(db, w->id, w->events);
  return r;
}

int hg_webhooks_delete(sqlite3 *db, const char *id, const char *org) {
  sqlite3_stmt *st = NULL;
  if (hg_store_prepare(db, "DELETE FROM webhooks WHERE id = ?1 AND (?2 IS NULL OR organization_id = ?2)", &st) != SQLITE_OK)
    return sql_fail(db, "delete webhook");
  bind_text(st, 1, id);
  bind_text(st, 2, org);
  int r = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_fail(db, "delete webhook");
  if (r == 0 && sqlite3_changes(db) == 0) r = HG_ENOTFOUND;
  hg_store_release(st);
  return r;
}

static int exec_id_time(sqlite3 *db, const char *sql, const char *id, int64_t t, const char *what) {
  sqlite3_stmt *st = NULL;
  if (hg_store_prepare(db, sql, &st) != SQLITE_OK) return sql_fail(db, what);
  bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, t);
  int r = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_fail(db, what);
  hg_store_release(st);
  return r;
}

int hg_webhooks_rotate(sqlite3 *db, const char *id, const char *org, const char *new_secret, int64_t now,
                       int64_t grace_ms, int64_t *prev_expires) {
  hg_webhook_t w;
  int r = hg_webhooks_get(db, id, org, &w);
  if (r != 0) return r;
  hg_webhook_close(&w);
  *prev_expires = now + grace_ms;
  /* Retire the current secret: valid for the grace period, or gone now. */
  if (grace_ms > 0)
    r = exec_id_time(db, "UPDATE webhook_secrets SET expires_at = ?2 WHERE webhook_id = ?1 AND expires_at IS NULL",
                     id, now + grace_ms, "retire secret");
  else
    r = exec_id_time(db, "DELETE FROM webhook_secrets WHERE webhook_id = ?1 AND expires_at IS NULL", id,
                     now, "retire secret");
  if (r == 0)
    r = exec_id_time(db, "DELETE FROM webhook_secrets WHERE webhook_id = ?1 AND expires_at <= ?2", id, now,
                     "drop expired secrets");
  if (r != 0) return r;
  /* Keep the newest HG_MAX_SECRETS - 1 previous secrets beside the new one. */
  sqlite3_stmt *st = NULL;
  if (hg_store_prepare(db,
                         "DELETE FROM webhook_secrets WHERE webhook_id = ?1 AND secret NOT IN (SELECT secret FROM "
                         "webhook_secrets WHERE webhook_id = ?1 ORDER BY created_at DESC, expires_at DESC LIMIT ?2)", &st) != SQLITE_OK)
    return sql_fail(db, "trim secrets");
  bind_text(st, 1, id);
  sqlite3_bind_int(st, 2, HG_MAX_SECRETS - 1);
  r = sqlite3_step(st) == SQLITE_DONE ? 0 : sql_fail(db, "trim secrets");
  hg_store_release(st);
  if (r != 0) return r;
  r = insert_secret(db, id, new_secret, now);
  if (r == 0) r = exec_id_time(db, "UPDATE webhooks SET updated_at = ?2 WHERE id = ?1", id, now, "touch webhook");
  return r;
}

int hg_webhooks_secrets(sqlite3 *db, const char *id, int64_t now, char (*out)[HG_SECRET_MAX], size_t max,
                        size_t *n) {
  sqlite3_stmt *st = NULL;
  *n = 0;
  if (hg_store_prepare(db,
                         "SELECT secret FROM webhook_secrets WHERE webhook_id = ?1 AND (expires_at IS NULL OR "
                         "expires_at > ?2) ORDER BY expires_at IS NOT NULL, created_at DESC", &st) != SQLITE_OK)
    return sql_fail(db, "read secrets");
  bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, now);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
    hg_copy(out[(*n)++], HG_SECRET_MAX, (const char *)sqlite3_column_text(st, 0));
  int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_fail(db, "read secrets");
  hg_store_release(st);
  return r;
}

int hg_webhooks_public_keys(sqlite3 *db, hg_webhook_t *w, int64_t now) {
  sqlite3_stmt *st = NULL;
  w->n_public_keys = 0;
  if (strcmp(w->scheme, "v1a") != 0) return 0;
  if (hg_store_prepare(db,
                       "SELECT public_key FROM webhook_secrets WHERE webhook_id = ?1 AND public_key IS NOT NULL AND "
                       "(expires_at IS NULL OR expires_at > ?2) ORDER BY expires_at IS NOT NULL, created_at DESC",
                       &st) != SQLITE_OK)
    return sql_fail(db, "read public keys");
  bind_text(st, 1, w->id);
  sqlite3_bind_int64(st, 2, now);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && w->n_public_keys < HG_MAX_SECRETS)
    hg_copy(w->public_keys[w->n_public_keys++], HG_PUBLIC_KEY_MAX, (const char *)sqlite3_column_text(st, 0));
  int r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sql_fail(db, "read public keys");
  hg_store_release(st);
  return r;
}
