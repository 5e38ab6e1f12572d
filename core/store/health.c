/* health.c: SQL for a webhook's failing streak and its disabling (see
 * health.h). */
#include "store/health.h"

#include "base/common.h"

#include <stdio.h>
#include <string.h>

/* Runs st, or on PostgreSQL defers it: for statements whose answer nobody
 * reads (deliveries.c does the same with the attempt's record). */
static int run_or_defer(hg_db_t *db, hg_stmt_t *st, const char *op) {
  int rc = hg_db_engine(db) == HG_DB_PG ? hg_db_defer(st) : hg_db_step(st);
  return rc < 0 ? hg_db_fail(db, rc, op) : 0;
}

/* A success ends the streak. The row goes, and with it the count: when the
 * count was above 0 this success is a recovery. Only the statement that
 * deletes the row sees its old values, so two nodes cannot both report
 * one recovery. On PostgreSQL the answer costs a round trip, paid only
 * when the delivery's load saw a streak; otherwise the row is deleted
 * only if it counts no exhausted delivery (should one have been counted
 * since the load, the next success reports the recovery). */
static int on_success(hg_db_t *db, const hg_health_in_t *in, hg_health_out_t *out) {
  hg_stmt_t *st = NULL;
  int exact = hg_db_engine(db) != HG_DB_PG || in->loaded_exhausted > 0;
  int rc = hg_db_prepare(db,
                         exact ? "DELETE FROM webhook_health WHERE webhook_id = ?1 "
                                 "RETURNING consecutive_exhausted, failing_since"
                               : "DELETE FROM webhook_health WHERE webhook_id = ?1 AND consecutive_exhausted = 0",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "reset webhook health");
  hg_db_bind_text(st, 1, in->webhook_id, -1);
  if (!exact) {
    rc = run_or_defer(db, st, "reset webhook health");
    hg_db_release(st);
    return rc;
  }
  rc = hg_db_step(st);
  if (rc == HG_DB_ROW) {
    out->exhausted = hg_db_column_int64(st, 0);
    out->failing_since = hg_db_column_int64_or(st, 1, 0);
    out->recovered = out->exhausted > 0;
    while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    }
  }
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "reset webhook health") : 0;
}

/* A failed attempt with another to come starts the failing time, once. A
 * webhook deleted meanwhile gets no row (no foreign key failure that
 * would undo the batch of records on PostgreSQL). */
static int on_retrying(hg_db_t *db, const hg_health_in_t *in) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "INSERT INTO webhook_health (webhook_id, consecutive_exhausted, failing_since) "
                         "SELECT ?1, 0, ?2 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?1) "
                         "ON CONFLICT (webhook_id) DO UPDATE SET failing_since = excluded.failing_since "
                         "WHERE webhook_health.failing_since IS NULL",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "count failing webhook");
  hg_db_bind_text(st, 1, in->webhook_id, -1);
  hg_db_bind_int64(st, 2, in->at);
  rc = run_or_defer(db, st, "count failing webhook");
  hg_db_release(st);
  return rc;
}

/* Whether the rule trips for the streak in out, at time now. */
static int rule_trips(const hg_health_in_t *in, const hg_health_out_t *out, int64_t now) {
  if (in->rule_exhausted <= 0 && in->rule_failing_ms <= 0) return 0;
  if (in->rule_exhausted > 0 && out->exhausted < in->rule_exhausted) return 0;
  if (in->rule_failing_ms > 0 && (out->failing_since == 0 || now - out->failing_since < in->rule_failing_ms)) return 0;
  return 1;
}

/* Makes the webhook inactive with its reason, unless it is already:
 * only the record that changes it reports it (*done). */
static int disable(hg_db_t *db, const char *id, int64_t at, const char *code, const char *message, int *done) {
  hg_stmt_t *st = NULL;
  *done = 0;
  int rc = hg_db_prepare(db,
                         "UPDATE webhooks SET active = 0, disabled_at = ?2, disabled_reason = ?3, "
                         "disabled_message = ?4, updated_at = ?2 WHERE id = ?1 AND active = 1 RETURNING id",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "disable webhook");
  hg_db_bind_text(st, 1, id, -1);
  hg_db_bind_int64(st, 2, at);
  hg_db_bind_text(st, 3, code, -1);
  hg_db_bind_text(st, 4, message, -1);
  while ((rc = hg_db_step(st)) == HG_DB_ROW)
    *done = 1;
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "disable webhook") : 0;
}

static int on_exhausted(hg_db_t *db, const hg_health_in_t *in, hg_health_out_t *out) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "INSERT INTO webhook_health (webhook_id, consecutive_exhausted, failing_since) "
                         "SELECT ?1, 1, ?2 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?1) "
                         "ON CONFLICT (webhook_id) DO UPDATE SET "
                         "consecutive_exhausted = webhook_health.consecutive_exhausted + 1, "
                         "failing_since = COALESCE(webhook_health.failing_since, excluded.failing_since) "
                         "RETURNING consecutive_exhausted, failing_since",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "count exhausted delivery");
  hg_db_bind_text(st, 1, in->webhook_id, -1);
  hg_db_bind_int64(st, 2, in->at);
  int found = 0;
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    found = 1;
    out->exhausted = hg_db_column_int64(st, 0);
    out->failing_since = hg_db_column_int64_or(st, 1, 0);
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "count exhausted delivery");
  if (!found) return 0; /* the webhook is gone */
  const char *code = in->disable_code;
  char message[sizeof(out->message)];
  if (code != NULL) {
    hg_copy(message, sizeof(message), in->disable_message ? in->disable_message : code);
  } else if (rule_trips(in, out, in->at)) {
    char since[25];
    hg_format_time(out->failing_since, since);
    code = HG_DISABLED_FAILURES;
    snprintf(message, sizeof(message), "%lld deliveries in a row failed every attempt; none succeeded since %s",
             (long long)out->exhausted, since);
  } else {
    return 0;
  }
  rc = disable(db, in->webhook_id, in->at, code, message, &out->disabled);
  if (rc == 0 && out->disabled) {
    out->disabled_at = in->at;
    hg_copy(out->code, sizeof(out->code), code);
    hg_copy(out->message, sizeof(out->message), message);
  }
  return rc;
}

int hg_health_record(hg_db_t *db, const hg_health_in_t *in, hg_health_out_t *out) {
  memset(out, 0, sizeof(*out));
  switch (in->kind) {
  case HG_HEALTH_SUCCESS: return on_success(db, in, out);
  case HG_HEALTH_RETRYING: return on_retrying(db, in);
  case HG_HEALTH_EXHAUSTED: return on_exhausted(db, in, out);
  }
  return HG_EINVAL;
}

int hg_health_record_in(hg_db_t *db, hg_health_batch_t *b, const hg_health_in_t *in, hg_health_out_t *out) {
  /* SQLite: the store thread is the only writer, so after a success's
   * DELETE no row exists until a later record of this transaction makes
   * one, whatever the load saw. PostgreSQL: only a success sent without
   * an answer (nothing counted at its load) is skipped, as above. */
  int plain = in->kind == HG_HEALTH_SUCCESS && (hg_db_engine(db) != HG_DB_PG || in->loaded_exhausted <= 0);
  size_t i = 0;
  while (i < b->n && strcmp(b->cleared[i], in->webhook_id) != 0) i++;
  if (plain && i < b->n) {
    /* Deleted by this transaction already, and nothing counted since. */
    memset(out, 0, sizeof(*out));
    return 0;
  }
  if (!plain && i < b->n) b->cleared[i] = b->cleared[--b->n];
  int rc = hg_health_record(db, in, out);
  if (rc == 0 && plain && b->n < HG_HEALTH_SEEN) b->cleared[b->n++] = in->webhook_id;
  return rc;
}

int hg_health_reset(hg_db_t *db, const char *id) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "DELETE FROM webhook_health WHERE webhook_id = ?1", &st);
  if (rc < 0) return hg_db_fail(db, rc, "reset webhook health");
  hg_db_bind_text(st, 1, id, -1);
  rc = hg_db_step(st);
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "reset webhook health") : 0;
}
