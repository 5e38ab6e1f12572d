/* test_health.c: a webhook's failing streak and its disabling
 * (store/health.c) against a real store file. */
#include "base/common.h"
#include "hgtest.h"
#include "hgtest_pg.h"
#include "hgtest_sql.h"
#include "store/health.h"
#include "store/store.h"
#include "store/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/hg-health-XXXXXX";

static hg_db_t *open_db(const char *name) {
  char path[128], err[256];
  snprintf(path, sizeof(path), "%s/%s.db", dir, name);
  hg_db_t *db = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return NULL;
  CHECK_EQ_INT(hg_db_exec(db,
                          "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) "
                          "VALUES ('wh_a', 'https://a.example', '[]', 1, 1, 1)",
                          "test"),
               0);
  return db;
}

static hg_health_in_t in_of(hg_health_kind_t kind, int64_t at, int64_t rule_n, int64_t rule_ms) {
  hg_health_in_t in = {"wh_a", kind, at, 0, NULL, NULL, rule_n, rule_ms};
  return in;
}

static void streak_and_rule(void) {
  hg_db_t *db = open_db("rule");
  if (db == NULL) return;
  hg_health_out_t out;
  /* A failed attempt with retries left starts the failing time only. */
  hg_health_in_t in = in_of(HG_HEALTH_RETRYING, 1000, 3, 0);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  in.at = 2000; /* a later failure keeps the first time */
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  in = in_of(HG_HEALTH_EXHAUSTED, 3000, 3, 0);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(out.exhausted == 1 && out.failing_since == 1000 && !out.disabled);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(out.exhausted == 2 && !out.disabled);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(out.exhausted == 3 && out.disabled && out.disabled_at == 3000);
  CHECK_EQ_STR(out.code, HG_DISABLED_FAILURES);
  CHECK(strstr(out.message, "3 deliveries in a row") != NULL);
  hg_webhook_t w;
  CHECK_EQ_INT(hg_webhooks_get(db, "wh_a", NULL, &w), 0);
  CHECK(w.active == 0 && w.disabled_at == 3000 && w.exhausted == 3 && w.failing_since == 1000);
  CHECK_EQ_STR(w.disabled_reason, HG_DISABLED_FAILURES);
  hg_webhook_close(&w);
  /* Inactive already: counted, never disabled twice. */
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(out.exhausted == 4 && !out.disabled);
  /* A success ends the streak and says it was one. */
  in = in_of(HG_HEALTH_SUCCESS, 5000, 3, 0);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(out.recovered && out.exhausted == 4 && out.failing_since == 1000);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(!out.recovered);
  /* Failures without an exhausted delivery are no recovery either. */
  in = in_of(HG_HEALTH_RETRYING, 6000, 3, 0);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  in = in_of(HG_HEALTH_SUCCESS, 7000, 3, 0);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(!out.recovered);
  hg_db_close(db);
}

static void failing_time_and_off(void) {
  hg_db_t *db = open_db("time");
  if (db == NULL) return;
  hg_health_out_t out;
  /* One exhausted delivery is enough, but only after an hour of failing. */
  hg_health_in_t in = in_of(HG_HEALTH_EXHAUSTED, 1000, 1, 3600000);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(!out.disabled);
  in.at = 1000 + 3599999;
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(!out.disabled);
  /* Both 0: never by the rule. */
  in.at = 1000 + 3600000;
  in.rule_exhausted = in.rule_failing_ms = 0;
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(!out.disabled);
  in.rule_exhausted = 1;
  in.rule_failing_ms = 3600000;
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(out.disabled && out.exhausted == 4);
  hg_db_close(db);
}

static void asked_and_gone(void) {
  hg_db_t *db = open_db("gone");
  if (db == NULL) return;
  hg_health_out_t out;
  /* A 410 disables whatever the rule, with its own code and text. */
  hg_health_in_t in = in_of(HG_HEALTH_EXHAUSTED, 1000, 0, 0);
  in.disable_code = HG_DISABLED_GONE;
  in.disable_message = "the receiver answered 410 Gone";
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(out.disabled && out.exhausted == 1);
  CHECK_EQ_STR(out.code, "gone");
  CHECK_EQ_STR(out.message, "the receiver answered 410 Gone");
  /* Re-enabled by hand: the streak is forgotten. */
  CHECK_EQ_INT(hg_health_reset(db, "wh_a"), 0);
  hg_webhook_t w;
  CHECK_EQ_INT(hg_webhooks_get(db, "wh_a", NULL, &w), 0);
  CHECK(w.exhausted == 0 && w.failing_since == 0);
  hg_webhook_close(&w);
  /* A webhook deleted while its delivery was on the wire: nothing, no error. */
  CHECK_EQ_INT(hg_db_exec(db, "DELETE FROM webhooks WHERE id = 'wh_a'", "test"), 0);
  in = in_of(HG_HEALTH_EXHAUSTED, 2000, 1, 0);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(!out.disabled && out.exhausted == 0);
  in.kind = HG_HEALTH_RETRYING;
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  in.kind = HG_HEALTH_SUCCESS;
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK(!out.recovered);
  hg_db_close(db);
}

/* Records in one transaction (hg_health_record_in), on SQLite and, with
 * HG_TEST_PG_URI, PostgreSQL: a success after a success of the same
 * webhook sends nothing more (the row is gone already), any other record
 * in between makes the next success count again. */
static int failing_since(hg_db_t *db, const char *wh) {
  char sql[128];
  snprintf(sql, sizeof(sql), "SELECT failing_since FROM webhook_health WHERE webhook_id = '%s'", wh);
  return query_int(db, sql);
}

static void batch_engine(int pg) {
  hg_db_t *db = hgt_open_store(dir, pg ? "batch_pg" : "batch", pg);
  if (db == NULL) return;
  CHECK_EQ_INT(hg_db_exec(db,
                          "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) "
                          "VALUES ('wh_a', 'https://a.example', '[]', 1, 1, 1), ('wh_b', 'https://b.example', '[]', 1, 1, 1)",
                          "test"),
               0);
  hg_health_out_t out;
  hg_health_in_t in = in_of(HG_HEALTH_RETRYING, 1000, 0, 0);
  CHECK_EQ_INT(hg_health_record(db, &in, &out), 0);
  CHECK_EQ_INT(failing_since(db, "wh_a"), 1000);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  hg_health_batch_t seen = {0};
  in = in_of(HG_HEALTH_SUCCESS, 1100, 0, 0);
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &in, &out), 0);
  CHECK_EQ_INT(hg_db_flush(db), 0);
  CHECK_EQ_INT(failing_since(db, "wh_a"), -1); /* ended */
  /* A row made meanwhile (as another node might on PostgreSQL; on SQLite
   * nothing else writes, so this only shows that no statement was sent):
   * the second success in a row leaves it. */
  CHECK_EQ_INT(hg_db_exec(db, "INSERT INTO webhook_health (webhook_id, consecutive_exhausted, failing_since) "
                              "VALUES ('wh_a', 0, 1500)", "test"), 0);
  in.at = 1200;
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &in, &out), 0);
  CHECK(!out.recovered);
  CHECK_EQ_INT(hg_db_flush(db), 0);
  CHECK_EQ_INT(failing_since(db, "wh_a"), 1500);
  /* Another webhook's records change nothing for wh_a's. */
  hg_health_in_t b = in_of(HG_HEALTH_RETRYING, 1250, 0, 0);
  b.webhook_id = "wh_b";
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &b, &out), 0);
  /* A failure in between: the next success sends its statement again. */
  in = in_of(HG_HEALTH_RETRYING, 2000, 0, 0);
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &in, &out), 0);
  CHECK_EQ_INT(hg_db_flush(db), 0);
  CHECK_EQ_INT(failing_since(db, "wh_a"), 1500);
  in = in_of(HG_HEALTH_SUCCESS, 2100, 0, 0);
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &in, &out), 0);
  CHECK_EQ_INT(hg_db_flush(db), 0);
  CHECK_EQ_INT(failing_since(db, "wh_a"), -1);
  /* An exhausted delivery, then two successes loaded while it counted:
   * the first reports the recovery, the second nothing. */
  in = in_of(HG_HEALTH_EXHAUSTED, 2200, 0, 0);
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &in, &out), 0);
  CHECK(out.exhausted == 1 && !out.disabled);
  in = in_of(HG_HEALTH_SUCCESS, 2300, 0, 0);
  in.loaded_exhausted = 1;
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &in, &out), 0);
  CHECK(out.recovered && out.exhausted == 1);
  in.at = 2400;
  CHECK_EQ_INT(hg_health_record_in(db, &seen, &in, &out), 0);
  CHECK(!out.recovered && out.exhausted == 0);
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  CHECK_EQ_INT(failing_since(db, "wh_a"), -1);
  CHECK_EQ_INT(failing_since(db, "wh_b"), 1250);
  hg_db_close(db);
}

static void batch_sqlite(void) { batch_engine(0); }
static void batch_postgresql(void) { HGT_ON_PG(batch_engine(1)); }

int main(void) {
  if (mkdtemp(dir) == NULL) return 1;
  RUN(streak_and_rule);
  RUN(failing_time_and_off);
  RUN(asked_and_gone);
  RUN(batch_sqlite);
  RUN(batch_postgresql);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return HGT_DONE();
}
