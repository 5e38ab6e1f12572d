/* test_store_pg.c: the store thread on PostgreSQL (HG_TEST_PG_URI; exits
 * 77, skipped, without): a group of rerunnable jobs is committed in one
 * round trip without savepoints, and when something in it fails, be it a
 * job's own answer or a deferred statement whose failure shows only at the
 * COMMIT, it is rolled back and run again with savepoints, so that only
 * the failing job fails and nothing of the others is lost or doubled;
 * which job a deferred failure belongs to is found by halving the group. */
#include "base/common.h"
#include "base/log.h"
#include "hgtest.h"
#include "hgtest_pg.h"
#include "hgtest_sql.h"
#include "store/store.h"

#include <stdio.h>
#include <uv.h>

static char dir[] = "/tmp/hg-test-store-pg-XXXXXX";

/* A job that holds the store thread until the loop has queued the jobs
 * that must share the next group (the store takes every queued job). */
struct gate {
  uv_sem_t started, go;
};

static int gate_work(hg_db_t *db, void *ud) {
  (void)db;
  struct gate *g = ud;
  uv_sem_post(&g->started);
  uv_sem_wait(&g->go);
  return 0;
}

struct ins {
  int id;        /* the row it inserts (deferred) */
  int fail_now;  /* returns this at once (a job's own failure), after deferring */
  int runs, status, done;
};

static int ins_work(hg_db_t *db, void *ud) {
  struct ins *in = ud;
  in->runs++;
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "INSERT INTO t (id) VALUES (?1)", &st);
  if (rc == 0) {
    hg_db_bind_int64(st, 1, in->id);
    rc = hg_db_defer(st);
  }
  hg_db_release(st);
  if (rc < 0) return rc;
  return in->fail_now;
}

static void ins_done(int status, void *ud) {
  struct ins *in = ud;
  in->status = status;
  in->done++;
}

/* Runs jobs n in one group (behind a gate), to their completions; returns
 * the store's groups_rerun after. */
static uint64_t run_group_of(uv_loop_t *loop, hg_store_t *s, struct ins *jobs, int n) {
  struct gate g;
  uv_sem_init(&g.started, 0);
  uv_sem_init(&g.go, 0);
  CHECK_EQ_INT(hg_store_submit(s, gate_work, NULL, &g), 0);
  hg_store_flush(s);
  uv_sem_wait(&g.started);
  for (int i = 0; i < n; i++) CHECK_EQ_INT(hg_store_submit_rerunnable(s, ins_work, ins_done, &jobs[i]), 0);
  hg_store_flush(s);
  uv_sem_post(&g.go);
  for (int spins = 0; spins < 100000; spins++) {
    int all = 1;
    for (int i = 0; i < n; i++) all &= jobs[i].done == 1;
    if (all) break;
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_sem_destroy(&g.started);
  uv_sem_destroy(&g.go);
  hg_store_stats_t st;
  hg_store_stats(s, &st);
  return st.groups_rerun;
}

static void optimistic_groups(void) {
  char addr[512];
  hg_db_t *check = hgt_open_store_at(dir, "optimistic", 1, addr);
  if (check == NULL) return;
  CHECK_EQ_INT(hg_db_exec(check, "CREATE TABLE t (id BIGINT PRIMARY KEY)", "test"), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_store_t *s = NULL;
  char err[256];
  CHECK_EQ_INT(hg_store_open(&s, &loop, addr, err, sizeof(err)), 0);
  if (s == NULL) return;

  /* All succeed: one run each, no rerun. */
  struct ins ok[3] = {{1, 0, 0, 0, 0}, {2, 0, 0, 0, 0}, {3, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, ok, 3), 0);
  for (int i = 0; i < 3; i++) CHECK(ok[i].runs == 1 && ok[i].status == 0 && ok[i].done == 1);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t"), 3);

  /* The third's row is taken: its failure shows at the COMMIT only. The
   * group is rolled back and run again: only that job fails. */
  struct ins dup[4] = {{10, 0, 0, 0, 0}, {11, 0, 0, 0, 0}, {1, 0, 0, 0, 0}, {12, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, dup, 4), 1);
  CHECK_EQ_INT(dup[0].status, 0);
  CHECK_EQ_INT(dup[1].status, 0);
  CHECK_EQ_INT(dup[2].status, HG_EEXIST);
  CHECK_EQ_INT(dup[3].status, 0);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id IN (10, 11, 12)"), 3);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t"), 6);

  /* A job's own failure (after deferring its row): rolled back with the
   * group, which runs again; its row is not kept, the others' are. */
  struct ins own[3] = {{20, 0, 0, 0, 0}, {21, HG_EINVAL, 0, 0, 0}, {22, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, own, 3), 2);
  CHECK_EQ_INT(own[0].status, 0);
  CHECK_EQ_INT(own[1].status, HG_EINVAL);
  CHECK_EQ_INT(own[2].status, 0);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id IN (20, 22)"), 2);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id = 21"), 0);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t"), 8);

  /* One bad row among 16: the careful run halves the group until it
   * finds it, so no job runs more than 2 + log2(16) times more (one job
   * at a time from the first, the last job ran 13 times). */
  struct ins many[16];
  for (int i = 0; i < 16; i++) many[i] = (struct ins){100 + i, 0, 0, 0, 0};
  many[11].id = 2; /* taken */
  CHECK_EQ_INT((int)run_group_of(&loop, s, many, 16), 3);
  int most = 0;
  for (int i = 0; i < 16; i++) {
    CHECK_EQ_INT(many[i].status, i == 11 ? HG_EEXIST : 0);
    if (many[i].runs > most) most = many[i].runs;
  }
  printf("  a bad row among 16: %d runs at most, the last job %d\n", most, many[15].runs);
  CHECK(most <= 6);
  CHECK(many[15].runs <= 4);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id >= 100"), 15);

  hg_store_close(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  hg_db_close(check);
}

int main(void) {
  hg_log_setup(HG_LOG_WARN, HG_LOG_LOGFMT, 2);
  if (hgt_pg_base() == NULL) {
    printf("skipped: set HG_TEST_PG_URI to a PostgreSQL database (scripts/pg-tmp start DIR prints one)\n");
    return 77;
  }
  RUN(optimistic_groups);
  return HGT_DONE();
}
