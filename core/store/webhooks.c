/* webhooks.c: SQL for webhooks and their secrets. */
#include "store/webhooks.h"

#include "base/common.h"
#include "store/lines.h"
#include "store/store.h"
#include "base/log.h"

#include <jansson.h>
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
  free(w->disabled_reason);
  free(w->disabled_message);
  w->url = w->events = w->org = w->metadata = w->lua = NULL;
  w->disabled_reason = w->disabled_message = NULL;
}

static void bind_text(hg_stmt_t *st, int i, const char *s) {
  if (s) hg_db_bind_text(st, i, s, -1);
  else hg_db_bind_null(st, i);
}

static char *col_dup(hg_stmt_t *st, int i) {
  const char *s = hg_db_column_text(st, i);
  return s ? strdup(s) : NULL;
}

#define WEBHOOK_COLS                                                                                   \
  "id, url, events, organization_id, active, metadata, created_at, updated_at, lua, signature_scheme, " \
  "disabled_at, disabled_reason, disabled_message, disable_after_exhausted, disable_after_failing_ms, " \
  "rate_limit_milli, max_concurrency"
/* What a read adds: the failing streak (none without a row). */
#define WEBHOOK_READ \
  WEBHOOK_COLS ", h.consecutive_exhausted, h.failing_since, CASE WHEN l.webhook_id IS NULL THEN 0 ELSE 1 END"
#define WEBHOOK_FROM                                                       \
  "webhooks LEFT JOIN webhook_health h ON h.webhook_id = webhooks.id " \
  "LEFT JOIN webhook_lines l ON l.webhook_id = webhooks.id"

static int read_row(hg_stmt_t *st, hg_webhook_t *w) {
  memset(w, 0, sizeof(*w));
  snprintf(w->id, sizeof(w->id), "%s", hg_db_column_text(st, 0));
  w->url = col_dup(st, 1);
  w->events = col_dup(st, 2);
  w->org = col_dup(st, 3);
  w->active = (int)hg_db_column_int64(st, 4);
  w->metadata = col_dup(st, 5);
  w->created_at = hg_db_column_int64(st, 6);
  w->updated_at = hg_db_column_int64(st, 7);
  w->lua = col_dup(st, 8);
  hg_copy(w->scheme, sizeof(w->scheme), hg_db_column_text(st, 9));
  w->disabled_at = hg_db_column_int64_or(st, 10, 0);
  w->disabled_reason = col_dup(st, 11);
  w->disabled_message = col_dup(st, 12);
  w->disable_after_exhausted = hg_db_column_int64_or(st, 13, -1);
  w->disable_after_failing_ms = hg_db_column_int64_or(st, 14, -1);
  w->rate_limit_milli = hg_db_column_int64_or(st, 15, 0);
  w->max_concurrency = hg_db_column_int64_or(st, 16, 0);
  w->exhausted = hg_db_column_int64_or(st, 17, 0);
  w->failing_since = hg_db_column_int64_or(st, 18, 0);
  w->fifo = (int)hg_db_column_int64_or(st, 19, 0);
  if ((!w->disabled_reason && !hg_db_column_is_null(st, 11)) ||
      (!w->disabled_message && !hg_db_column_is_null(st, 12))) {
    hg_webhook_close(w);
    return HG_ENOMEM;
  }
  if ((!w->lua && !hg_db_column_is_null(st, 8)) || !w->url || !w->events || !w->metadata ||
      (!w->org && !hg_db_column_is_null(st, 3))) {
    hg_webhook_close(w);
    return HG_ENOMEM;
  }
  return 0;
}

/* Rewrites the subscription index rows of webhook id from its events (a
 * JSON array of event type patterns: one row per string in it). */
static int set_patterns(hg_db_t *db, const char *id, const char *events) {
  hg_stmt_t *st = NULL;
  int r = hg_db_prepare(db, "DELETE FROM webhook_events WHERE webhook_id = ?1", &st);
  if (r == 0) r = hg_db_step(st);
  if (r < 0) r = hg_db_fail(db, r, "index subscriptions");
  hg_db_release(st);
  if (r < 0) return r;
  json_error_t jerr;
  json_t *arr = json_loads(events, 0, &jerr);
  if (arr == NULL) {
    hg_log(HG_LOG_ERROR, "store query failed", "query", "index subscriptions", "error", jerr.text, NULL);
    return HG_EIO;
  }
  r = hg_db_prepare(db, "INSERT INTO webhook_events (pattern, webhook_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING", &st);
  if (r < 0) {
    json_decref(arr);
    return hg_db_fail(db, r, "index subscriptions");
  }
  size_t i;
  json_t *p;
  json_array_foreach(arr, i, p) {
    if (!json_is_string(p)) continue;
    hg_db_bind_text(st, 1, json_string_value(p), (int)json_string_length(p));
    bind_text(st, 2, id);
    r = hg_db_step(st);
    hg_db_reset(st);
    if (r < 0) {
      r = hg_db_fail(db, r, "index subscriptions");
      break;
    }
  }
  hg_db_release(st);
  json_decref(arr);
  return r < 0 ? r : 0;
}

/* Stores secret as the current secret of webhook id, with its public key
 * when it is a v1a signing key. */
static int insert_secret(hg_db_t *db, const char *id, const char *secret, int64_t now) {
  hg_stmt_t *st = NULL;
  char pub[HG_PUBLIC_KEY_MAX] = "";
  int r = 0;
  if (hg_signing_key_is_v1a(secret) && (r = hg_public_key(secret, pub)) != 0) return r;
  r = hg_db_prepare(db, "INSERT INTO webhook_secrets (webhook_id, secret, created_at, public_key) VALUES (?,?,?,?)",
                    &st);
  if (r < 0) return hg_db_fail(db, r, "insert secret");
  bind_text(st, 1, id);
  bind_text(st, 2, secret);
  hg_db_bind_int64(st, 3, now);
  bind_text(st, 4, pub[0] ? pub : NULL);
  r = hg_db_step(st);
  if (r < 0) r = hg_db_fail(db, r, "insert secret");
  hg_db_release(st);
  return r < 0 ? r : 0;
}

/* Binds disabled_at, disabled_reason, disabled_message, the rule and the
 * flow limits from parameter i on. */
static void bind_health(hg_stmt_t *st, int i, const hg_webhook_t *w) {
  if (w->disabled_at) hg_db_bind_int64(st, i, w->disabled_at);
  else hg_db_bind_null(st, i);
  bind_text(st, i + 1, w->disabled_reason);
  bind_text(st, i + 2, w->disabled_message);
  if (w->disable_after_exhausted >= 0) hg_db_bind_int64(st, i + 3, w->disable_after_exhausted);
  else hg_db_bind_null(st, i + 3);
  if (w->disable_after_failing_ms >= 0) hg_db_bind_int64(st, i + 4, w->disable_after_failing_ms);
  else hg_db_bind_null(st, i + 4);
  if (w->rate_limit_milli > 0) hg_db_bind_int64(st, i + 5, w->rate_limit_milli);
  else hg_db_bind_null(st, i + 5);
  if (w->max_concurrency > 0) hg_db_bind_int64(st, i + 6, w->max_concurrency);
  else hg_db_bind_null(st, i + 6);
}

int hg_webhooks_insert(hg_db_t *db, const hg_webhook_t *w, const char *secret) {
  hg_stmt_t *st = NULL;
  int r = hg_db_prepare(db, "INSERT INTO webhooks (" WEBHOOK_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &st);
  if (r < 0) return hg_db_fail(db, r, "insert webhook");
  bind_text(st, 1, w->id);
  bind_text(st, 2, w->url);
  bind_text(st, 3, w->events);
  bind_text(st, 4, w->org);
  hg_db_bind_int64(st, 5, w->active);
  bind_text(st, 6, w->metadata);
  hg_db_bind_int64(st, 7, w->created_at);
  hg_db_bind_int64(st, 8, w->updated_at);
  bind_text(st, 9, w->lua);
  bind_text(st, 10, w->scheme[0] ? w->scheme : "v1");
  bind_health(st, 11, w);
  r = hg_db_step(st);
  if (r < 0) r = hg_db_fail(db, r, "insert webhook");
  hg_db_release(st);
  if (r < 0) return r;
  if ((r = insert_secret(db, w->id, secret, w->created_at)) != 0) return r;
  if (w->fifo && (r = hg_line_set(db, w->id, 1, NULL, NULL)) != 0) return r;
  r = set_patterns(db, w->id, w->events);
  return r;
}

#define WEBHOOK_GET \
  "SELECT " WEBHOOK_READ " FROM " WEBHOOK_FROM " WHERE id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR organization_id = ?2)"

static int get_webhook(hg_db_t *db, const char *id, const char *org, hg_webhook_t *out, int lock) {
  hg_stmt_t *st = NULL;
  /* Zeroed before anything can fail, so that closing out is safe after any
   * answer: callers close it on their one cleanup path. */
  memset(out, 0, sizeof(*out));
  /* PostgreSQL: locked first, the row cannot change under a
   * read-change-write (another node disabling it meanwhile waits, then
   * sees the write), and the read after the lock sees every table as it
   * is then (a locking read with joins re-reads only the locked table).
   * FOR NO KEY UPDATE, as an UPDATE takes: it leaves the foreign-key
   * checks of inserts referencing the webhook (deliveries, health) free.
   * SQLite has one writer: the transaction is the lock. */
  int rc = 0;
  if (lock && hg_db_engine(db) == HG_DB_PG) {
    rc = hg_db_prepare(db, "SELECT 1 FROM webhooks WHERE id = ?1 FOR NO KEY UPDATE", &st);
    if (rc < 0) return hg_db_fail(db, rc, "lock webhook");
    bind_text(st, 1, id);
    rc = hg_db_step(st);
    if (rc == HG_DB_ROW) rc = hg_db_step(st);
    hg_db_release(st);
    st = NULL;
    if (rc < 0) return hg_db_fail(db, rc, "lock webhook");
  }
  rc = hg_db_prepare(db, WEBHOOK_GET, &st);
  if (rc < 0) return hg_db_fail(db, rc, "get webhook");
  bind_text(st, 1, id);
  bind_text(st, 2, org);
  int r;
  rc = hg_db_step(st);
  if (rc == HG_DB_ROW) r = read_row(st, out);
  else if (rc == HG_DB_DONE) r = HG_ENOTFOUND;
  else r = hg_db_fail(db, rc, "get webhook");
  hg_db_release(st);
  return r;
}

int hg_webhooks_get(hg_db_t *db, const char *id, const char *org, hg_webhook_t *out) {
  return get_webhook(db, id, org, out, 0);
}

int hg_webhooks_get_locked(hg_db_t *db, const char *id, const char *org, hg_webhook_t *out) {
  return get_webhook(db, id, org, out, 1);
}

int hg_webhooks_list(hg_db_t *db, int org_mode, const char *org, const char *after_id, int limit,
                     int (*cb)(const hg_webhook_t *w, void *ud), void *ud) {
  hg_stmt_t *st = NULL;
  /* Ids are time-ordered, so "below the last id seen" pages newest first
   * without skipping or repeating rows while new ones arrive. */
  const char *sql = org_mode ? "SELECT " WEBHOOK_READ " FROM " WEBHOOK_FROM " WHERE organization_id = ?3 AND "
                               "(CAST(?1 AS TEXT) = '' OR id < ?1) ORDER BY id DESC LIMIT ?2"
                             : "SELECT " WEBHOOK_READ " FROM " WEBHOOK_FROM " WHERE (CAST(?1 AS TEXT) = '' OR id < ?1) "
                               "ORDER BY id DESC LIMIT ?2";
  int rc = hg_db_prepare(db, sql, &st);
  if (rc < 0) return hg_db_fail(db, rc, "list webhooks");
  bind_text(st, 1, after_id);
  hg_db_bind_int64(st, 2, limit);
  if (org_mode) bind_text(st, 3, org);
  int r = 0;
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    hg_webhook_t w;
    if ((r = read_row(st, &w)) != 0) break;
    int stop = cb(&w, ud);
    hg_webhook_close(&w);
    if (stop) break;
  }
  if (r == 0 && rc < 0) r = hg_db_fail(db, rc, "list webhooks");
  hg_db_release(st);
  return r;
}

int hg_webhooks_update(hg_db_t *db, const hg_webhook_t *w) {
  hg_stmt_t *st = NULL;
  int r = hg_db_prepare(db,
                        "UPDATE webhooks SET url = ?2, events = ?3, active = ?4, metadata = ?5, updated_at = ?6, "
                        "lua = ?7, disabled_at = ?8, disabled_reason = ?9, disabled_message = ?10, "
                        "disable_after_exhausted = ?11, disable_after_failing_ms = ?12, rate_limit_milli = ?13, "
                        "max_concurrency = ?14 WHERE id = ?1",
                        &st);
  if (r < 0) return hg_db_fail(db, r, "update webhook");
  bind_text(st, 1, w->id);
  bind_text(st, 2, w->url);
  bind_text(st, 3, w->events);
  hg_db_bind_int64(st, 4, w->active);
  bind_text(st, 5, w->metadata);
  hg_db_bind_int64(st, 6, w->updated_at);
  bind_text(st, 7, w->lua);
  bind_health(st, 8, w);
  r = hg_db_step(st);
  r = r < 0 ? hg_db_fail(db, r, "update webhook") : 0;
  if (r == 0 && hg_db_changes(db) == 0) r = HG_ENOTFOUND;
  hg_db_release(st);
  if (r == 0) r = set_patterns(db, w->id, w->events);
  return r;
}

int hg_webhooks_delete(hg_db_t *db, const char *id, const char *org) {
  hg_stmt_t *st = NULL;
  int r = hg_db_prepare(db, "DELETE FROM webhooks WHERE id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR organization_id = ?2)",
                        &st);
  if (r < 0) return hg_db_fail(db, r, "delete webhook");
  bind_text(st, 1, id);
  bind_text(st, 2, org);
  r = hg_db_step(st);
  r = r < 0 ? hg_db_fail(db, r, "delete webhook") : 0;
  if (r == 0 && hg_db_changes(db) == 0) r = HG_ENOTFOUND;
  hg_db_release(st);
  return r;
}

/* Runs sql with id as ?1 and, when it has one (has_t), t as ?2. */
static int exec_id_time(hg_db_t *db, const char *sql, const char *id, int has_t, int64_t t, const char *what) {
  hg_stmt_t *st = NULL;
  int r = hg_db_prepare(db, sql, &st);
  if (r < 0) return hg_db_fail(db, r, what);
  bind_text(st, 1, id);
  if (has_t) hg_db_bind_int64(st, 2, t);
  r = hg_db_step(st);
  r = r < 0 ? hg_db_fail(db, r, what) : 0;
  hg_db_release(st);
  return r;
}

int hg_webhooks_rotate(hg_db_t *db, const char *id, const char *org, const char *new_secret, int64_t now,
                       int64_t grace_ms, int64_t *prev_expires) {
  hg_webhook_t w;
  int r = hg_webhooks_get(db, id, org, &w);
  if (r != 0) return r;
  hg_webhook_close(&w);
  *prev_expires = now + grace_ms;
  /* Retire the current secret: valid for the grace period, or gone now. */
  if (grace_ms > 0)
    r = exec_id_time(db, "UPDATE webhook_secrets SET expires_at = ?2 WHERE webhook_id = ?1 AND expires_at IS NULL",
                     id, 1, now + grace_ms, "retire secret");
  else
    r = exec_id_time(db, "DELETE FROM webhook_secrets WHERE webhook_id = ?1 AND expires_at IS NULL", id, 0, 0,
                     "retire secret");
  if (r == 0)
    r = exec_id_time(db, "DELETE FROM webhook_secrets WHERE webhook_id = ?1 AND expires_at <= ?2", id, 1, now,
                     "drop expired secrets");
  if (r != 0) return r;
  /* Keep the newest HG_MAX_SECRETS - 1 previous secrets beside the new one.
   * NULLS LAST spells out SQLite's order for PostgreSQL (whose DESC puts
   * NULLs first), though none is left once the current one is retired. */
  hg_stmt_t *st = NULL;
  r = hg_db_prepare(db,
                    "DELETE FROM webhook_secrets WHERE webhook_id = ?1 AND secret NOT IN (SELECT secret FROM "
                    "webhook_secrets WHERE webhook_id = ?1 ORDER BY created_at DESC, expires_at DESC NULLS LAST "
                    "LIMIT ?2)", &st);
  if (r < 0) return hg_db_fail(db, r, "trim secrets");
  bind_text(st, 1, id);
  hg_db_bind_int64(st, 2, HG_MAX_SECRETS - 1);
  r = hg_db_step(st);
  r = r < 0 ? hg_db_fail(db, r, "trim secrets") : 0;
  hg_db_release(st);
  if (r != 0) return r;
  r = insert_secret(db, id, new_secret, now);
  if (r == 0) r = exec_id_time(db, "UPDATE webhooks SET updated_at = ?2 WHERE id = ?1", id, 1, now, "touch webhook");
  return r;
}

int hg_webhooks_secrets(hg_db_t *db, const char *id, int64_t now, char (*out)[HG_SECRET_MAX], size_t max,
                        size_t *n) {
  hg_stmt_t *st = NULL;
  *n = 0;
  int rc = hg_db_prepare(db,
                         "SELECT secret FROM webhook_secrets WHERE webhook_id = ?1 AND (expires_at IS NULL OR "
                         "expires_at > ?2) ORDER BY expires_at IS NOT NULL, created_at DESC", &st);
  if (rc < 0) return hg_db_fail(db, rc, "read secrets");
  bind_text(st, 1, id);
  hg_db_bind_int64(st, 2, now);
  while ((rc = hg_db_step(st)) == HG_DB_ROW && *n < max)
    hg_copy(out[(*n)++], HG_SECRET_MAX, hg_db_column_text(st, 0));
  int r = rc >= 0 ? 0 : hg_db_fail(db, rc, "read secrets");
  hg_db_release(st);
  return r;
}

int hg_webhooks_public_keys(hg_db_t *db, hg_webhook_t *w, int64_t now) {
  hg_stmt_t *st = NULL;
  w->n_public_keys = 0;
  if (strcmp(w->scheme, "v1a") != 0) return 0;
  int rc = hg_db_prepare(db,
                         "SELECT public_key FROM webhook_secrets WHERE webhook_id = ?1 AND public_key IS NOT NULL AND "
                         "(expires_at IS NULL OR expires_at > ?2) ORDER BY expires_at IS NOT NULL, created_at DESC",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "read public keys");
  bind_text(st, 1, w->id);
  hg_db_bind_int64(st, 2, now);
  while ((rc = hg_db_step(st)) == HG_DB_ROW && w->n_public_keys < HG_MAX_SECRETS)
    hg_copy(w->public_keys[w->n_public_keys++], HG_PUBLIC_KEY_MAX, hg_db_column_text(st, 0));
  int r = rc >= 0 ? 0 : hg_db_fail(db, rc, "read public keys");
  hg_db_release(st);
  return r;
}
