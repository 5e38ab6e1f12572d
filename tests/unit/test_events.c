/* hg_events_insert against a real store file: fan-out rows, the count kept
 * on the event, idempotent repeats, and running twice on the same input
 * (the store reruns ingest jobs after rolling a shared savepoint back). */
#define _GNU_SOURCE
#include "base/common.h"
#include "store/events.h"
#include "hgtest.h"
#include "hgtest_pg.h"
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

/* ---- hg_events_batch_*, on SQLite and (with HG_TEST_PG_URI) PostgreSQL ---- */

/* A new store with webhooks wh_a, wh_b, wh_off (inactive) and wh_fifo
 * (ordered). */
static hg_db_t *open_engine(const char *name, int pg) {
  hg_db_t *db = hgt_open_store(dir, name, pg);
  if (db == NULL) return NULL;
  CHECK_EQ_INT(hg_db_exec(db,
                          "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) VALUES "
                          "('wh_a', 'https://a.example', '[\"user.created\"]', 1, 1, 1),"
                          "('wh_b', 'https://b.example', '[\"user.created\"]', 1, 1, 1),"
                          "('wh_off', 'https://c.example', '[\"user.created\"]', 0, 1, 1),"
                          "('wh_fifo', 'https://d.example', '[\"user.created\"]', 1, 1, 1);"
                          "INSERT INTO webhook_lines (webhook_id, next) VALUES ('wh_fifo', 0)",
                          "test"),
               0);
  return db;
}

#define NB 78 /* events in the batch below */

/* The batch: 70 plain events (more than the 64 a batch holds, so rows go
 * out in the middle of it), each to wh_a or to wh_a and wh_b; then events
 * that must go alone and see what came before them, held or not. */
static void batch_events(hg_event_in_t *evs, json_t *const *t, char *key) {
  for (int i = 0; i < NB; i++) {
    char id[32];
    snprintf(id, sizeof(id), "evt_b%02d", i);
    event_init(&evs[i], id, t[i < 70 ? i % 2 : 0], NULL);
    evs[i].first_delay_ms = 250;
  }
  /* 70: a publisher's id that is event 69's (held, not yet sent). */
  hg_copy(evs[70].id, sizeof(evs[70].id), "evt_b69");
  evs[70].client_id = 1;
  evs[71].idem_key = key; /* a new key */
  evs[73].idem_key = key; /* the same key: 71's event answers */
  evs[74].targets = t[2];  /* wh_off and wh_a */
  evs[75].targets = evs[76].targets = t[3]; /* ordered: to wh_fifo, in order */
  evs[75].lines = evs[76].lines = 1;
  hg_copy(evs[77].org, sizeof(evs[77].org), "org_x");
}

static int run_batch(hg_db_t *db, hg_event_in_t *evs) {
  hg_events_batch_t *b = NULL;
  int r = hg_events_batch_new(db, &b);
  for (int i = 0; i < NB && r == 0; i++) r = hg_events_batch_add(b, &evs[i]);
  if (r == 0) r = hg_events_batch_flush(b);
  hg_events_batch_free(b);
  return r;
}

static void check_batch(hg_db_t *db, hg_event_in_t *evs, int pg) {
  for (int i = 0; i < NB; i++) {
    int dup = i == 70 || i == 73;
    CHECK_EQ_INT(evs[i].duplicate, dup);
    CHECK_EQ_INT(evs[i].conflict, 0);
    if (dup) continue;
    /* PostgreSQL counts the targets given (the caller's index keeps
     * active ones only); SQLite those it finds active. */
    int want = i < 70 ? 1 + i % 2 : i == 74 ? (pg ? 2 : 1) : 1;
    CHECK_EQ_INT(evs[i].n_deliveries, want);
    CHECK_EQ_INT((int)evs[i].n_seqs, i == 74 && pg ? 2 : want);
    /* Each seq reported is the delivery of this event to its k-th target.
     * 74's first target is the inactive wh_off: SQLite reports no seq for
     * it, PostgreSQL one that is never stored. */
    for (size_t k = 0; k < evs[i].n_seqs; k++) {
      char sql[512];
      int skip = i == 74 && !pg;
      const char *wh = json_string_value(json_array_get(evs[i].targets, k + (size_t)skip));
      snprintf(sql, sizeof(sql),
               "SELECT count(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.seq = %lld AND "
               "e.id = '%.40s' AND d.webhook_id = '%.40s' AND d.status = 'pending' AND d.next_attempt_at = %lld",
               (long long)evs[i].delivery_seqs[k], evs[i].id, wh, (long long)(evs[i].now + 250));
      CHECK_EQ_INT(query_int(db, sql), i == 74 && pg && k == 0 ? 0 : 1);
    }
  }
  CHECK_EQ_STR(evs[70].original_id, "evt_b69");
  CHECK_EQ_STR(evs[73].original_id, "evt_b71");
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events"), NB - 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries"), 35 + 70 + 6);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries WHERE webhook_id = 'wh_off'"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(DISTINCT id) FROM deliveries"), 111);
  CHECK_EQ_INT(query_int(db, "SELECT sum(deliveries) FROM events"), 111 + pg);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events WHERE idempotency_key IS NOT NULL"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events WHERE organization_id = 'org_x' AND id = 'evt_b77'"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events WHERE id = 'evt_b05' AND payload IS NOT NULL AND "
                             "created_at = 1700000000000"),
               1);
  /* The ordered webhook's two deliveries hold places 1 and 2, in order. */
  CHECK_EQ_INT(query_int(db, "SELECT d.line FROM deliveries d JOIN events e ON e.seq = d.event_seq "
                             "WHERE e.id = 'evt_b75'"),
               1);
  CHECK_EQ_INT(query_int(db, "SELECT d.line FROM deliveries d JOIN events e ON e.seq = d.event_seq "
                             "WHERE e.id = 'evt_b76'"),
               2);
}

/* A batch stores what the same events stored one by one would, run once
 * or twice (rolled back in between, as the store reruns a failed run). */
static void batch_engine(int pg) {
  hg_db_t *db = open_engine(pg ? "batch_pg" : "batch", pg);
  if (db == NULL) return;
  json_t *t[4] = {json_pack("[s]", "wh_a"), json_pack("[s,s]", "wh_a", "wh_b"), json_pack("[s,s]", "wh_off", "wh_a"),
                  json_pack("[s]", "wh_fifo")};
  char key[] = "-|key-b";
  static hg_event_in_t evs[NB];
  batch_events(evs, t, key);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  for (int run = 0; run < 2; run++) {
    CHECK_EQ_INT(hg_db_exec(db, "SAVEPOINT s", "test"), 0);
    CHECK_EQ_INT(run_batch(db, evs), 0);
    CHECK_EQ_INT(hg_db_flush(db), 0);
    if (run == 0) check_batch(db, evs, pg);
    CHECK_EQ_INT(hg_db_exec(db, run == 0 ? "ROLLBACK TO s; RELEASE s" : "RELEASE s", "test"), 0);
  }
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  check_batch(db, evs, pg);
  for (int i = 0; i < NB; i++) hg_event_in_done(&evs[i]);
  for (int i = 0; i < 4; i++) json_decref(t[i]);
  hg_db_close(db);
}

static void batch_sqlite(void) { batch_engine(0); }
static void batch_postgresql(void) { HGT_ON_PG(batch_engine(1)); }

int main(void) {
  hg_log_setup(HG_LOG_WARN, HG_LOG_LOGFMT, 2);
  snprintf(dir, sizeof(dir), "/tmp/hg-test-events-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  RUN(fan_out_and_count);
  RUN(runs_twice);
  RUN(many_deliveries);
  RUN(batch_sqlite);
  RUN(batch_postgresql);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return HGT_DONE();
}
