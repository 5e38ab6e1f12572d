/* hg_events_insert against a real store file: fan-out rows, the count kept
 * on the event, idempotent repeats, and running twice on the same input
 * (the store reruns ingest jobs after rolling a shared savepoint back). */
#define _GNU_SOURCE
#include "base/common.h"
#include "store/events.h"
#include "hgtest.h"
#include "hgtest_sql.h"
#include "base/log.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static hg_db_t *open_db(const char *name) {
  char path[128], err[256];
  snprintf(path, sizeof(path), "%s/%s.db", dir, name);
  hg_db_t *db = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return NULL;
  CHECK_EQ_INT(hg_db_exec(db,
                          "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) VALUES "
                          "('wh_a', 'https://a.example', '[\"user.created\"]', 1, 1, 1),"
                          "('wh_b', 'https://b.example', '[\"user.created\"]', 1, 1, 1),"
                          "('wh_off', 'https://c.example', '[\"user.created\"]', 0, 1, 1)", "test"),
               0);
  return db;
}

static void event_init(hg_event_in_t *ev, const char *id, json_t *targets, char *idem) {
  memset(ev, 0, sizeof(*ev));
  hg_copy(ev->id, sizeof(ev->id), id);
  hg_copy(ev->type, sizeof(ev->type), "user.created");
  ev->payload = (char *)"{\"type\":\"user.created\",\"data\":{}}";
  ev->payload_len = strlen(ev->payload);
  ev->idem_key = idem;
  ev->now = 1700000000000LL;
  ev->targets = targets;
}

static void fan_out_and_count(void) {
  hg_db_t *db = open_db("fan");
  if (db == NULL) return;
  json_t *targets = json_pack("[s,s,s,s]", "wh_a", "wh_off", "wh_unknown", "wh_b");
  hg_event_in_t ev;
  event_init(&ev, "evt_1", targets, NULL);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  CHECK_EQ_INT(hg_events_insert(db, &ev), 0);
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  CHECK_EQ_INT(ev.n_deliveries, 2); /* inactive and unknown ids get none */
  CHECK_EQ_INT(ev.n_seqs, 2);
  CHECK_EQ_INT(query_int(db, "SELECT deliveries FROM events WHERE id = 'evt_1'"), 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries WHERE status = 'pending' AND webhook_id IN "
                             "('wh_a', 'wh_b')"), 2);
  hg_event_in_done(&ev);
  json_decref(targets);
  hg_db_close(db);
}

/* Run, roll back, run again: the same outcome both times, inputs kept. */
static void runs_twice(void) {
  hg_db_t *db = open_db("twice");
  if (db == NULL) return;
  json_t *targets = json_pack("[s]", "wh_a");
  char key[] = "-|key-1";
  hg_event_in_t first;
  event_init(&first, "evt_first", targets, key);
  CHECK_EQ_INT(hg_events_insert(db, &first), 0);
  CHECK_EQ_INT(first.duplicate, 0);
  hg_event_in_done(&first);

  /* A repeat of the key, run twice as the store would rerun it (in a
   * transaction, where PostgreSQL takes savepoints too). */
  hg_event_in_t again;
  event_init(&again, "evt_again", targets, key);
  again.now += 1000;
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  for (int run = 0; run < 2; run++) {
    CHECK_EQ_INT(hg_db_exec(db, "SAVEPOINT s", "test"), 0);
    CHECK_EQ_INT(hg_events_insert(db, &again), 0);
    CHECK_EQ_INT(again.duplicate, 1);
    CHECK_EQ_STR(again.original_id, "evt_first");
    CHECK_EQ_STR(again.id, "evt_again"); /* the input is left alone */
    CHECK_EQ_INT(again.n_deliveries, 1);
    CHECK_EQ_INT(again.n_seqs, 0);
    CHECK_EQ_INT(hg_db_exec(db, run == 0 ? "ROLLBACK TO s; RELEASE s" : "RELEASE s", "test"), 0);
  }
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);

  /* A new event run twice: one set of rows, the same counts. */
  hg_event_in_t fresh;
  event_init(&fresh, "evt_fresh", targets, NULL);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  for (int run = 0; run < 2; run++) {
    CHECK_EQ_INT(hg_db_exec(db, "SAVEPOINT s", "test"), 0);
    CHECK_EQ_INT(hg_events_insert(db, &fresh), 0);
    CHECK_EQ_INT(fresh.duplicate, 0);
    CHECK_EQ_INT(fresh.n_deliveries, 1);
    CHECK_EQ_INT(fresh.n_seqs, 1);
    CHECK_EQ_INT(hg_db_exec(db, run == 0 ? "ROLLBACK TO s; RELEASE s" : "RELEASE s", "test"), 0);
  }
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events WHERE id = 'evt_fresh'"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq "
                             "WHERE e.id = 'evt_fresh'"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events"), 2);
  hg_event_in_done(&fresh);
  hg_event_in_done(&again);
  json_decref(targets);
  hg_db_close(db);
}

/* An event fanned out to more webhooks than the deliveries' small inline
 * room (4) reports every new delivery, in order, through the growth to
 * the heap and its doublings; and again when run a second time on the
 * same input. */
static void many_deliveries(void) {
  hg_db_t *db = open_db("many");
  if (db == NULL) return;
  json_t *targets = json_array();
  for (int i = 0; i < 19; i++) {
    char sql[200], id[16];
    snprintf(id, sizeof(id), "wh_m%02d", i);
    snprintf(sql, sizeof(sql),
             "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) "
             "VALUES ('%s', 'https://m.example', '[\"user.created\"]', 1, 1, 1)", id);
    CHECK_EQ_INT(hg_db_exec(db, sql, "test"), 0);
    json_array_append_new(targets, json_string(id));
  }
  hg_event_in_t ev;
  event_init(&ev, "evt_many", targets, NULL);
  for (int run = 0; run < 2; run++) {
    CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
    CHECK_EQ_INT(hg_events_insert(db, &ev), 0);
    CHECK_EQ_INT(ev.n_deliveries, 19);
    CHECK_EQ_INT(ev.n_seqs, 19);
    /* Each seq is the row of the delivery to the i-th target. */
    int match = 0;
    for (size_t i = 0; i < ev.n_seqs; i++) {
      char sql[160];
      snprintf(sql, sizeof(sql), "SELECT webhook_id = 'wh_m%02zu' FROM deliveries WHERE seq = %lld", i,
               (long long)ev.delivery_seqs[i]);
      match += query_int(db, sql);
    }
    CHECK_EQ_INT(match, 19);
    CHECK_EQ_INT(hg_db_exec(db, "ROLLBACK", "test"), 0);
  }
  hg_event_in_done(&ev);
  CHECK(ev.delivery_seqs == NULL);
  json_decref(targets);
  hg_db_close(db);
}

int main(void) {
  hg_log_setup(HG_LOG_WARN, HG_LOG_LOGFMT, 2);
  snprintf(dir, sizeof(dir), "/tmp/hg-test-events-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  RUN(fan_out_and_count);
  RUN(runs_twice);
  RUN(many_deliveries);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return HGT_DONE();
}
