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
  int lookup;    /* then runs a SELECT whose answer it waits for (as an idempotency lookup) */
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
  if (in->lookup) {
    /* Its answer comes after those of every row sent before it. */
    if ((rc = hg_db_prepare(db, "SELECT count(*) FROM t", &st)) == 0) rc = hg_db_step(st);
    hg_db_release(st);
    if (rc < 0) return rc;
  }
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

/* Lets the groups that follow a rerun with savepoints (16) go by. */
static void settle(uv_loop_t *loop, hg_store_t *s) {
  static int id = 1000;
  for (int i = 0; i < 8; i++) {
    struct ins one = {id++, 0, 0, 0, 0, 0};
    run_group_of(loop, s, &one, 1);
    CHECK_EQ_INT(one.status, 0);
  }
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
  struct ins ok[3] = {{1, 0, 0, 0, 0, 0}, {2, 0, 0, 0, 0, 0}, {3, 0, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, ok, 3), 0);
  for (int i = 0; i < 3; i++) CHECK(ok[i].runs == 1 && ok[i].status == 0 && ok[i].done == 1);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t"), 3);

  /* The third's row is taken: its failure shows at the COMMIT only. The
   * group is rolled back and run again: only that job fails. */
  struct ins dup[4] = {{10, 0, 0, 0, 0, 0}, {11, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 0}, {12, 0, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, dup, 4), 1);
  CHECK_EQ_INT(dup[0].status, 0);
  CHECK_EQ_INT(dup[1].status, 0);
  CHECK_EQ_INT(dup[2].status, HG_EEXIST);
  CHECK_EQ_INT(dup[3].status, 0);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id IN (10, 11, 12)"), 3);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t"), 6);

  /* Right after a group that ran again, groups run with savepoints for a
   * while (a publisher whose requests keep failing would otherwise make
   * every group run twice): a job's own failure costs no rerun then. */
  struct ins own[3] = {{20, 0, 0, 0, 0, 0}, {21, HG_EINVAL, 0, 0, 0, 0}, {22, 0, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, own, 3), 1);
  CHECK_EQ_INT(own[0].status, 0);
  CHECK_EQ_INT(own[1].status, HG_EINVAL);
  CHECK_EQ_INT(own[2].status, 0);
  CHECK_EQ_INT(own[0].runs, 2); /* together, then again before the failing one */
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id IN (20, 22)"), 2);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id = 21"), 0);
  settle(&loop, s);

  /* The same once that has passed: rolled back with the group, which runs
   * again; the failing job's row is not kept, the others' are. */
  struct ins own2[3] = {{30, 0, 0, 0, 0, 0}, {31, HG_EINVAL, 0, 0, 0, 0}, {32, 0, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, own2, 3), 2);
  CHECK_EQ_INT(own2[0].status, 0);
  CHECK_EQ_INT(own2[1].status, HG_EINVAL);
  CHECK_EQ_INT(own2[2].status, 0);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id IN (30, 32)"), 2);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id = 31"), 0);
  settle(&loop, s);

  /* One bad row among 16: the careful run halves the group until it
   * finds it, so no job runs more than 2 + log2(16) times more (one job
   * at a time from the first, the last job ran 13 times). */
  struct ins many[16];
  for (int i = 0; i < 16; i++) many[i] = (struct ins){100 + i, 0, 0, 0, 0, 0};
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
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id BETWEEN 100 AND 115"), 15);
  settle(&loop, s);

  /* A bad row at the front shows at a later job's lookup, and is blamed
   * on it: the jobs before that one then fail together at their release,
   * and are halved as well (a round trip per half, rather than one per
   * job run alone); each still ends with its own status. */
  struct ins front[16];
  for (int i = 0; i < 16; i++) front[i] = (struct ins){200 + i, 0, 0, 0, 0, i == 12};
  front[0].id = 1; /* taken */
  CHECK_EQ_INT((int)run_group_of(&loop, s, front, 16), 4);
  most = 0;
  for (int i = 0; i < 16; i++) {
    CHECK_EQ_INT(front[i].status, i == 0 ? HG_EEXIST : 0);
    if (front[i].runs > most) most = front[i].runs;
  }
  printf("  a bad row first, shown at job 12's lookup: %d runs at most, job 5 %d\n", most, front[5].runs);
  CHECK(most <= 8);
  CHECK_EQ_INT(query_int(check, "SELECT count(*) FROM t WHERE id BETWEEN 201 AND 215"), 15);
  settle(&loop, s);

  /* A group of one whose row is refused: its failure is its own, nothing
   * runs again. */
  struct ins one[1] = {{3, 0, 0, 0, 0, 0}};
  CHECK_EQ_INT((int)run_group_of(&loop, s, one, 1), 4);
  CHECK_EQ_INT(one[0].status, HG_EEXIST);
  CHECK_EQ_INT(one[0].runs, 1);

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
