/* test_lines.c: a webhook's FIFO line in the store (store/lines.c, and how
 * ingest, loading, the start's read, replays and recoveries keep it)
 * against a real store file. The same SQL runs on PostgreSQL in the
 * integration suite (fifo.test.mjs with HG_TEST_STORE=postgresql). */
#define _GNU_SOURCE
#include "base/common.h"
#include "hgtest.h"
#include "hgtest_sql.h"
#include "store/deliveries.h"
#include "store/events.h"
#include "store/lines.h"
#include "store/recover.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/hg-lines-XXXXXX";

static hg_db_t *open_db(const char *name) {
  char path[128], err[256];
  snprintf(path, sizeof(path), "%s/%s.db", dir, name);
  hg_db_t *db = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return NULL;
  CHECK_EQ_INT(hg_db_exec(db,
                          "INSERT INTO webhooks (id, url, events, active, created_at, updated_at) VALUES "
                          "('wh_f', 'https://f.example', '[\"user.created\"]', 1, 1, 1),"
                          "('wh_u', 'https://u.example', '[\"user.created\"]', 1, 1, 1)",
                          "test"),
               0);
  return db;
}

/* Stores event id for the targets (JSON array text) as ingest does. */
static void ingest(hg_db_t *db, const char *id, const char *targets) {
  json_t *t = json_loads(targets, 0, NULL);
  hg_event_in_t ev;
  memset(&ev, 0, sizeof(ev));
  hg_copy(ev.id, sizeof(ev.id), id);
  hg_copy(ev.type, sizeof(ev.type), "user.created");
  ev.payload = (char *)"{\"type\":\"user.created\",\"data\":{}}";
  ev.payload_len = strlen(ev.payload);
  ev.now = 1700000000000LL;
  ev.targets = t;
  CHECK_EQ_INT(hg_events_insert(db, &ev), 0);
  hg_event_in_done(&ev);
  json_decref(t);
}

static int64_t seq_of(hg_db_t *db, const char *event, const char *wh) {
  char sql[256];
  snprintf(sql, sizeof(sql),
           "SELECT d.seq FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE e.id = '%s' AND "
           "d.webhook_id = '%s'",
           event, wh);
  return query_int(db, sql);
}

/* Whether hg_deliveries_load finds seq waiting behind another. */
static int waiting(hg_db_t *db, int64_t seq) {
  hg_send_t s;
  if (hg_deliveries_load(db, seq, 1700000000000LL, &s, NULL) != 0) return -1;
  int w = s.waiting;
  hg_send_close(&s);
  return w;
}

/* The first column of the first row of sql as text into out. */
static int query_text(hg_db_t *db, const char *sql, char *out, size_t cap) {
  hg_stmt_t *st = NULL;
  int r = -1;
  if (hg_db_prepare(db, sql, &st) == 0 && hg_db_step(st) == HG_DB_ROW) {
    hg_copy(out, cap, hg_db_column_text(st, 0));
    r = 0;
  }
  hg_db_release(st);
  return r;
}

typedef struct rows {
  int64_t seqs[64];
  size_t n;
} rows_t;

static int add_row(int64_t seq, int64_t due, void *ud) {
  (void)due;
  rows_t *r = ud;
  if (r->n < 64) r->seqs[r->n++] = seq;
  return 0;
}

static int has(const rows_t *r, int64_t seq) {
  for (size_t i = 0; i < r->n; i++)
    if (r->seqs[i] == seq) return 1;
  return 0;
}

static void line_from_ingest(void) {
  hg_db_t *db = open_db("ingest");
  if (db == NULL) return;
  CHECK_EQ_INT(hg_line_set(db, "wh_f", 1, NULL, NULL), 0);
  CHECK_EQ_INT(hg_line_set(db, "wh_f", 1, NULL, NULL), 0); /* ordered already: nothing */
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhook_lines"), 1);
  ingest(db, "evt_1", "[\"wh_f\", \"wh_u\"]");
  ingest(db, "evt_2", "[\"wh_u\", \"wh_f\"]");
  ingest(db, "evt_3", "[\"wh_f\"]");
  int64_t f1 = seq_of(db, "evt_1", "wh_f"), f2 = seq_of(db, "evt_2", "wh_f"), f3 = seq_of(db, "evt_3", "wh_f");
  /* Places in the order the events were stored; none for the unordered. */
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries WHERE webhook_id = 'wh_u' AND line IS NOT NULL"), 0);
  CHECK(f1 > 0 && f2 > 0 && f3 > 0);
  char sql[160];
  snprintf(sql, sizeof(sql), "SELECT line FROM deliveries WHERE seq = %lld", (long long)f1);
  int64_t l1 = query_int(db, sql);
  snprintf(sql, sizeof(sql), "SELECT line FROM deliveries WHERE seq = %lld", (long long)f3);
  CHECK_EQ_INT(query_int(db, sql), l1 + 2);
  /* Only the head may go; the unordered webhook's never wait. */
  CHECK_EQ_INT(waiting(db, f1), 0);
  CHECK_EQ_INT(waiting(db, f2), 1);
  CHECK_EQ_INT(waiting(db, f3), 1);
  CHECK_EQ_INT(waiting(db, seq_of(db, "evt_2", "wh_u")), 0);
  int64_t head = 0, due = 0;
  CHECK_EQ_INT(hg_line_head(db, "wh_f", &head, &due), 0);
  CHECK_EQ_INT(head, f1);
  CHECK(due > 0);
  CHECK_EQ_INT(hg_line_head(db, "wh_u", &head, &due), HG_ENOTFOUND);
  /* The start reads the head and the unordered ones, not what waits. */
  rows_t r = {{0}, 0};
  CHECK_EQ_INT(hg_deliveries_pending(db, add_row, &r), 0);
  CHECK_EQ_INT(r.n, 3);
  CHECK(has(&r, f1) && !has(&r, f2) && !has(&r, f3));
  /* The sweep's look: each ordered webhook's head, due by then. */
  rows_t heads = {{0}, 0};
  CHECK_EQ_INT(hg_line_heads(db, 1700000000000LL + 1, add_row, &heads), 0);
  CHECK_EQ_INT(heads.n, 1);
  CHECK(has(&heads, f1));
  heads.n = 0;
  CHECK_EQ_INT(hg_line_heads(db, 1, add_row, &heads), 0); /* not due yet */
  CHECK_EQ_INT(heads.n, 0);
  /* The head ends: the next is the head. */
  snprintf(sql, sizeof(sql), "UPDATE deliveries SET status = 'success' WHERE seq = %lld", (long long)f1);
  CHECK_EQ_INT(hg_db_exec(db, sql, "test"), 0);
  CHECK_EQ_INT(hg_line_head(db, "wh_f", &head, &due), 0);
  CHECK_EQ_INT(head, f2);
  CHECK_EQ_INT(waiting(db, f2), 0);
  CHECK_EQ_INT(waiting(db, f3), 1);
  /* A replay of the ended one goes to the end of the line, behind f3. */
  int64_t seq = 0;
  int in_line = 0;
  char del_id[HG_ID_MAX];
  snprintf(sql, sizeof(sql), "SELECT id FROM deliveries WHERE seq = %lld", (long long)f1);
  CHECK_EQ_INT(query_text(db, sql, del_id, sizeof(del_id)), 0);
  CHECK_EQ_INT(hg_deliveries_replay(db, "wh_f", NULL, del_id, 1700000001000LL, &seq, &in_line), 0);
  CHECK_EQ_INT(seq, f1);
  CHECK_EQ_INT(in_line, 1);
  CHECK_EQ_INT(waiting(db, f1), 1);
  CHECK_EQ_INT(hg_line_head(db, "wh_f", &head, &due), 0);
  CHECK_EQ_INT(head, f2);
  /* A replay of a pending one keeps its place. */
  snprintf(sql, sizeof(sql), "SELECT id FROM deliveries WHERE seq = %lld", (long long)f3);
  CHECK_EQ_INT(query_text(db, sql, del_id, sizeof(del_id)), 0);
  CHECK_EQ_INT(hg_deliveries_replay(db, "wh_f", NULL, del_id, 1700000001000LL, &seq, &in_line), 0);
  CHECK_EQ_INT(in_line, 1);
  snprintf(sql, sizeof(sql), "SELECT line FROM deliveries WHERE seq = %lld", (long long)f3);
  CHECK_EQ_INT(query_int(db, sql), l1 + 2);
  /* An unordered webhook's replay is not in a line. */
  snprintf(sql, sizeof(sql), "SELECT id FROM deliveries WHERE seq = %lld", (long long)seq_of(db, "evt_1", "wh_u"));
  CHECK_EQ_INT(query_text(db, sql, del_id, sizeof(del_id)), 0);
  CHECK_EQ_INT(hg_deliveries_replay(db, "wh_u", NULL, del_id, 1700000001000LL, &seq, &in_line), 0);
  CHECK_EQ_INT(in_line, 0);
  /* Unordered again: the line ends, and what waited in it is released. */
  rows_t rel = {{0}, 0};
  CHECK_EQ_INT(hg_line_set(db, "wh_f", 0, add_row, &rel), 0);
  CHECK_EQ_INT(rel.n, 3);
  CHECK(has(&rel, f1) && has(&rel, f2) && has(&rel, f3));
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM deliveries WHERE line IS NOT NULL AND status = 'pending'"), 0);
  CHECK_EQ_INT(waiting(db, f3), 0);
  CHECK_EQ_INT(hg_line_take(db, "wh_f", 1, &head), HG_ENOTFOUND);
  rel.n = 0;
  CHECK_EQ_INT(hg_line_set(db, "wh_f", 0, add_row, &rel), 0); /* unordered already: nothing */
  CHECK_EQ_INT(rel.n, 0);
  hg_db_close(db);
}

static void ordered_later(void) {
  hg_db_t *db = open_db("later");
  if (db == NULL) return;
  ingest(db, "evt_1", "[\"wh_f\"]");
  ingest(db, "evt_2", "[\"wh_f\"]");
  ingest(db, "evt_3", "[\"wh_f\"]");
  int64_t f1 = seq_of(db, "evt_1", "wh_f"), f2 = seq_of(db, "evt_2", "wh_f"), f3 = seq_of(db, "evt_3", "wh_f");
  char sql[160];
  snprintf(sql, sizeof(sql), "UPDATE deliveries SET status = 'failed' WHERE seq = %lld", (long long)f1);
  CHECK_EQ_INT(hg_db_exec(db, sql, "test"), 0);
  CHECK_EQ_INT(waiting(db, f3), 0); /* unordered: nothing waits */
  /* Made ordered: the pending ones line up by creation, the ended one
   * stays out; new places come after theirs. */
  CHECK_EQ_INT(hg_line_set(db, "wh_f", 1, NULL, NULL), 0);
  CHECK_EQ_INT(waiting(db, f2), 0);
  CHECK_EQ_INT(waiting(db, f3), 1);
  int64_t first = 0;
  CHECK_EQ_INT(hg_line_take(db, "wh_f", 3, &first), 0);
  CHECK(first > f3);
  CHECK_EQ_INT(hg_line_take(db, "wh_f", 1, &first), 0);
  CHECK_EQ_INT(query_int(db, "SELECT next FROM webhook_lines WHERE webhook_id = 'wh_f'"), first);
  /* A recovery's requeue joins the end, oldest first. */
  hg_recover_q_t q = {"wh_f", 0, INT64_MAX / 2, 1u << HG_DEL_FAILED};
  char after[HG_ID_MAX] = "";
  int64_t seqs[8];
  size_t n = 0;
  CHECK_EQ_INT(hg_recover_requeue(db, &q, after, 8, 1700000002000LL, seqs, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(hg_db_flush(db), 0);
  snprintf(sql, sizeof(sql), "SELECT line FROM deliveries WHERE seq = %lld", (long long)f1);
  CHECK(query_int(db, sql) > first);
  CHECK_EQ_INT(waiting(db, f1), 1);
  /* Deleting the webhook takes its line with it. */
  CHECK_EQ_INT(hg_db_exec(db, "DELETE FROM webhooks WHERE id = 'wh_f'", "test"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM webhook_lines"), 0);
  hg_db_close(db);
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 1;
  RUN(line_from_ingest);
  RUN(ordered_later);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return HGT_DONE();
}
