/* test_purge.c: the retention purge's batches (store/purge.c) against a
 * real SQLite store file: what goes, what stays, how many rows a batch
 * reads, and where a walk ends. */
#include "base/common.h"
#include "hgtest.h"
#include "hgtest_sql.h"
#include "store/purge.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/hg-purge-XXXXXX";
static int n_db;

/* A fresh store with one webhook. */
static hg_db_t *open_db(void) {
  char path[128], err[256];
  snprintf(path, sizeof(path), "%s/p%d.db", dir, n_db++);
  hg_db_t *db = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return NULL;
  CHECK_EQ_INT(hg_db_exec(db,
                          "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) "
                          "VALUES ('wh_a', 'https://a.example', '[\"*\"]', 1, 1, 1)",
                          "test"),
               0);
  return db;
}

/* n events created at time t, each with one delivery of status st and
 * two attempts. */
static void add(hg_db_t *db, int n, int64_t t, const char *st) {
  static int calls;
  char sql[1024];
  snprintf(sql, sizeof(sql),
           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) "
           "INSERT INTO events (id, type, payload, created_at) "
           "SELECT 'evt_' || %d || '_' || x, 'a.b', x'7b7d', %lld FROM c;"
           "INSERT INTO deliveries (id, webhook_id, event_seq, status, created_at, updated_at) "
           "SELECT 'del_' || seq, 'wh_a', seq, '%s', created_at, created_at FROM events "
           "WHERE seq > (SELECT coalesce(max(event_seq), 0) FROM deliveries);"
           "INSERT INTO attempts (id, delivery_seq, attempt, started_at, duration_ms, status_code) "
           "SELECT 'att_' || seq || '_' || a.n, seq, a.n, created_at, 1, 200 FROM deliveries, "
           "(SELECT 1 AS n UNION ALL SELECT 2) a WHERE seq NOT IN (SELECT delivery_seq FROM attempts);",
           n, ++calls, (long long)t, st);
  CHECK_EQ_INT(hg_db_exec(db, sql, "test"), 0);
}

/* Runs a whole pass, one transaction per batch; returns the batches. */
static int pass(hg_db_t *db, hg_purge_rules_t *rules, hg_purge_counts_t *out) {
  hg_purge_pos_t pos = {0};
  memset(out, 0, sizeof(*out));
  int batches = 0;
  while (pos.phase < 2 && batches < 1000) {
    int64_t before = pos.after;
    int phase = pos.phase;
    CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
    CHECK_EQ_INT(hg_purge_batch(db, rules, &pos, out), 0);
    CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
    /* Bounded: a batch moves at most HG_PURGE_BATCH seqs on (seqs are
     * dense here). */
    if (pos.phase == phase) CHECK(pos.after - before <= HG_PURGE_BATCH);
    batches++;
  }
  return batches;
}

static void what_goes(void) {
  hg_db_t *db = open_db();
  if (db == NULL) return;
  add(db, 1200, 1000, "success"); /* old, done: go */
  add(db, 5, 1000, "pending");    /* old, pending: stay, with their events */
  add(db, 7, 1000, "failed");     /* old, done: go */
  add(db, 10, 9000, "success");   /* newer than the cutoff: stay */
  CHECK_EQ_INT(hg_db_exec(db, "CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries(event_seq)", "test"), 0);
  CHECK_EQ_INT(hg_purge_events_indexed(db), 1);
  hg_purge_rules_t rules = {5000, 5000, 1};
  hg_purge_counts_t c;
  int batches = pass(db, &rules, &c);
  /* 1,222 deliveries at 500 a batch, then as many events. */
  CHECK_EQ_INT(batches, 6);
  CHECK_EQ_INT(c.deliveries, 1207);
  CHECK_EQ_INT(c.attempts, 2414);
  CHECK_EQ_INT(c.events, 1207);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries WHERE status = 'pending'"), 5);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries"), 15);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events"), 15);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM attempts"), 30);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM deliveries d "
                             "WHERE d.event_seq = e.seq)"),
               0);
  /* A second pass finds nothing. */
  pass(db, &rules, &c);
  CHECK_EQ_INT(c.deliveries + c.events + c.attempts, 0);
  hg_db_close(db);
}

static void rules_apart(void) {
  hg_db_t *db = open_db();
  if (db == NULL) return;
  add(db, 3, 1000, "success");
  add(db, 4, 3000, "success");
  CHECK_EQ_INT(hg_db_exec(db, "CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries(event_seq)", "test"), 0);
  hg_purge_counts_t c;
  /* Deliveries only (events kept forever): the old deliveries go, every
   * event stays. */
  hg_purge_rules_t d_only = {0, 2000, 1};
  pass(db, &d_only, &c);
  CHECK_EQ_INT(c.deliveries, 3);
  CHECK_EQ_INT(c.events, 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events"), 7);
  /* Events only: an old event takes its deliveries with it even though
   * deliveries are kept forever. */
  hg_purge_rules_t e_only = {4000, 0, 1};
  pass(db, &e_only, &c);
  CHECK_EQ_INT(c.deliveries, 4);
  CHECK_EQ_INT(c.attempts, 8);
  CHECK_EQ_INT(c.events, 7);
  /* Both off: nothing is read. */
  add(db, 2, 1000, "success");
  hg_purge_rules_t off = {0, 0, 1};
  CHECK_EQ_INT(pass(db, &off, &c), 2);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events"), 2);
  hg_db_close(db);
}

static void events_need_the_index(void) {
  hg_db_t *db = open_db();
  if (db == NULL) return;
  add(db, 3, 1000, "success");
  /* Migration 10 made the index: a store without it (dropped by hand). */
  CHECK_EQ_INT(hg_db_exec(db, "DROP INDEX deliveries_by_event", "test"), 0);
  CHECK_EQ_INT(hg_purge_events_indexed(db), 0);
  hg_purge_rules_t rules = {5000, 5000, 0};
  hg_purge_counts_t c;
  pass(db, &rules, &c);
  CHECK_EQ_INT(c.deliveries, 3);
  CHECK_EQ_INT(c.events, 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM events"), 3);
  /* An index under another name, event_seq first, counts. */
  CHECK_EQ_INT(hg_db_exec(db, "CREATE INDEX d_ev ON deliveries(event_seq, status)", "test"), 0);
  CHECK_EQ_INT(hg_purge_events_indexed(db), 1);
  hg_db_close(db);
}

/* A walk ends once it has read more than its slack of rows newer than the
 * cutoff, not at the end of the table: an old row far behind thousands of
 * newer ones waits. */
static void walk_ends_past_newer_rows(void) {
  hg_db_t *db = open_db();
  if (db == NULL) return;
  add(db, 1, 1000, "success");
  add(db, 4000, 9000, "success");
  add(db, 1, 1000, "success"); /* an old row after 4,000 newer ones */
  hg_purge_rules_t rules = {0, 5000, 0};
  hg_purge_counts_t c;
  int batches = pass(db, &rules, &c);
  CHECK(batches <= 4); /* 1,025 newer rows read at most, in 500s; not 4,002 */
  CHECK_EQ_INT(c.deliveries, 1);
  hg_db_close(db);
}

/* The intake log's purge mark: only ever moves later; no log, no mark. */
static void the_mark(void) {
  char log[160], none[160];
  snprintf(log, sizeof(log), "%s/x.db-intake", dir);
  snprintf(none, sizeof(none), "%s/missing-intake", dir);
  CHECK_EQ_INT(hg_purge_marked(log), 0);
  CHECK_EQ_INT(hg_purge_mark(none, 5), 0);
  CHECK_EQ_INT(hg_purge_marked(none), 0);
  CHECK(access(none, F_OK) != 0);
  CHECK_EQ_INT(mkdir(log, 0700), 0);
  CHECK_EQ_INT(hg_purge_mark(log, 1700000000123LL), 0);
  CHECK_EQ_INT(hg_purge_marked(log), 1700000000123LL);
  CHECK_EQ_INT(hg_purge_mark(log, 1600000000000LL), 0);
  CHECK_EQ_INT(hg_purge_marked(log), 1700000000123LL);
  CHECK_EQ_INT(hg_purge_mark(log, 1800000000000LL), 0);
  CHECK_EQ_INT(hg_purge_marked(log), 1800000000000LL);
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 1;
  RUN(what_goes);
  RUN(rules_apart);
  RUN(events_need_the_index);
  RUN(walk_ends_past_newer_rows);
  RUN(the_mark);
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return HGT_DONE();
}
