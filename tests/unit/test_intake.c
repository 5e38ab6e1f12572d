/* The intake log (intake.c) on real files, and the recovery of events from
 * it into a real SQLite store (events.c). */
#define _GNU_SOURCE /* nftw */
#include "base/common.h"
#include "store/events.h"
#include "hgtest.h"
#include "hgtest_sql.h"
#include "store/intake.h"
#include "base/log.h"
#include "store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void sub(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

/* Record i: its number in the first 4 bytes, then bytes derived from it. */
static size_t make_record(unsigned char *buf, int i, size_t len) {
  memcpy(buf, &i, 4);
  for (size_t k = 4; k < len; k++) buf[k] = (unsigned char)(i * 31 + (int)k);
  return len;
}

static int check_record(const unsigned char *rec, size_t len, int *i) {
  memcpy(i, rec, 4);
  for (size_t k = 4; k < len; k++)
    if (rec[k] != (unsigned char)(*i * 31 + (int)k)) return 0;
  return 1;
}

struct appended {
  int done, status;
};

/* The loop runs until this many completions have come (the log's async
 * handle keeps it alive otherwise). */
static uv_loop_t *wait_loop;
static int wait_left;

static void on_done(int status, void *ud) {
  struct appended *a = ud;
  a->done++;
  a->status = status;
  if (--wait_left == 0) uv_stop(wait_loop);
}

static void run_until_done(uv_loop_t *loop, int n) {
  wait_loop = loop;
  wait_left = n;
  uv_run(loop, UV_RUN_DEFAULT);
}

/* What recovery hands back. */
struct seen {
  int n;
  int ids[4096];
  size_t lens[4096];
  uint64_t lsns[4096];
  int bad;
};

static int on_record(uint64_t lsn, const unsigned char *rec, size_t len, void *ud) {
  struct seen *s = ud;
  int i = -1;
  if (!check_record(rec, len, &i)) s->bad++;
  if (s->n < 4096) {
    s->ids[s->n] = i;
    s->lens[s->n] = len;
    s->lsns[s->n] = lsn;
  }
  s->n++;
  return 0;
}

static int count_segments(const char *path) {
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += strncmp(e->d_name, "seg-", 4) == 0;
  closedir(d);
  return n;
}

/* Appends n records of the given sizes (cycling) and runs the loop until
 * every one is durable; returns how many completed with status 0. */
static int append_n(hg_intake_t *ix, uv_loop_t *loop, int first, int n, const size_t *sizes, size_t nsizes,
                    uint64_t *last_lsn) {
  static unsigned char buf[HG_INTAKE_MAX_RECORD];
  struct appended *a = calloc((size_t)n, sizeof(*a));
  for (int i = 0; i < n; i++) {
    size_t len = make_record(buf, first + i, sizes[(size_t)i % nsizes]);
    CHECK_EQ_INT(hg_intake_append(ix, buf, len, on_done, &a[i], last_lsn), 0);
  }
  run_until_done(loop, n);
  int ok = 0;
  for (int i = 0; i < n; i++) ok += a[i].done == 1 && a[i].status == 0;
  free(a);
  return ok;
}

static void close_log(hg_intake_t *ix, uv_loop_t *loop) {
  hg_intake_close(ix);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(loop), 0);
}

/* Records come back in order, byte for byte, with their numbers, also when
 * they fill several segments (8 MiB each). */
static void round_trip(void) {
  char path[128];
  sub(path, sizeof(path), "rt");
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_intake_t *ix = NULL;
  char err[256];
  CHECK_EQ_INT(hg_intake_open(&ix, &loop, path, err, sizeof(err)), 0);
  static const size_t sizes[] = {4, 700, 5000, 100000, HG_INTAKE_MAX_RECORD};
  uint64_t lsn = 0;
  /* ~33 MiB: at least four segments. */
  CHECK_EQ_INT(append_n(ix, &loop, 0, 150, sizes, 5, &lsn), 150);
  CHECK_EQ_INT(lsn, 150);
  unsigned char big[16];
  CHECK_EQ_INT(hg_intake_append(ix, big, HG_INTAKE_MAX_RECORD + 1, on_done, NULL, NULL), HG_ETOOBIG);
  CHECK_EQ_INT(hg_intake_append(ix, big, 0, on_done, NULL, NULL), HG_ETOOBIG);
  hg_intake_stats_t st;
  hg_intake_stats(ix, &st);
  CHECK_EQ_INT(st.records, 150);
  CHECK(st.syncs >= 1);
  CHECK(st.segments >= 5);
  close_log(ix, &loop);
  CHECK(count_segments(path) >= 5);

  static struct seen s;
  memset(&s, 0, sizeof(s));
  CHECK_EQ_INT(hg_intake_recover(path, on_record, &s, err, sizeof(err)), 0);
  CHECK_EQ_INT(s.n, 150);
  CHECK_EQ_INT(s.bad, 0);
  int in_order = 1;
  for (int i = 0; i < 150 && i < s.n; i++)
    in_order &= s.ids[i] == i && s.lens[i] == sizes[i % 5] && s.lsns[i] == (uint64_t)i + 1;
  CHECK(in_order);
}

/* A log that was never opened holds nothing; recovery stops early when the
 * callback says so. */
static void recover_edges(void) {
  char path[128], err[256];
  sub(path, sizeof(path), "none");
  static struct seen s;
  memset(&s, 0, sizeof(s));
  CHECK_EQ_INT(hg_intake_recover(path, on_record, &s, err, sizeof(err)), 0);
  CHECK_EQ_INT(s.n, 0);
}

/* A damaged record ends the log there: those before it come back, none
 * after it (a torn write at the end of the log looks the same). */
static void damaged_record(void) {
  char path[128], err[256];
  sub(path, sizeof(path), "dmg");
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_intake_t *ix = NULL;
  CHECK_EQ_INT(hg_intake_open(&ix, &loop, path, err, sizeof(err)), 0);
  static const size_t sizes[] = {100};
  uint64_t lsn;
  CHECK_EQ_INT(append_n(ix, &loop, 0, 10, sizes, 1, &lsn), 10);
  close_log(ix, &loop);
  /* Record 6 (0-based 5) starts at 32 + 5 * (16 + 100); flip a byte of its data. */
  /* The one segment with a header holds the records (the spare has none). */
  DIR *d = opendir(path);
  struct dirent *e;
  char seg[512] = "";
  while (d && (e = readdir(d)) != NULL) {
    if (strncmp(e->d_name, "seg-", 4) != 0) continue;
    char p[512];
    snprintf(p, sizeof(p), "%.200s/%.200s", path, e->d_name);
    int fd = open(p, O_RDONLY);
    unsigned char h[8];
    if (fd >= 0 && pread(fd, h, 8, 0) == 8 && memcmp(h, "HGINTK01", 8) == 0) snprintf(seg, sizeof(seg), "%s", p);
    if (fd >= 0) close(fd);
  }
  if (d) closedir(d);
  static struct seen s;
  CHECK(seg[0] != '\0');
  int fd = open(seg, O_RDWR);
  CHECK(fd >= 0);
  off_t at = 32 + 5 * (16 + 100) + 16 + 50;
  unsigned char c;
  CHECK_EQ_INT(pread(fd, &c, 1, at), 1);
  c ^= 0x40;
  CHECK_EQ_INT(pwrite(fd, &c, 1, at), 1);
  close(fd);
  memset(&s, 0, sizeof(s));
  CHECK_EQ_INT(hg_intake_recover(path, on_record, &s, err, sizeof(err)), 0);
  CHECK_EQ_INT(s.n, 5);
  CHECK_EQ_INT(s.bad, 0);
}

/* Opening the log again reuses its files: what they held is not handed
 * back a second time, only what was appended since. Released space is
 * reused while running, so the files stay few. */
static void reuse(void) {
  char path[128], err[256];
  sub(path, sizeof(path), "reuse");
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_intake_t *ix = NULL;
  CHECK_EQ_INT(hg_intake_open(&ix, &loop, path, err, sizeof(err)), 0);
  static const size_t sizes[] = {HG_INTAKE_MAX_RECORD / 2};
  uint64_t lsn = 0;
  CHECK_EQ_INT(append_n(ix, &loop, 0, 40, sizes, 1, &lsn), 40);
  close_log(ix, &loop);
  int files = count_segments(path);

  uv_loop_init(&loop);
  CHECK_EQ_INT(hg_intake_open(&ix, &loop, path, err, sizeof(err)), 0);
  /* 200 records of 512 KiB (100 MiB) released as they are written: the
   * log goes round its files instead of adding new ones. */
  int ok = 0;
  for (int round = 0; round < 20; round++) {
    ok += append_n(ix, &loop, 1000 + round * 10, 10, sizes, 1, &lsn);
    hg_intake_release(ix, lsn);
  }
  CHECK_EQ_INT(ok, 200);
  hg_intake_stats_t st;
  hg_intake_stats(ix, &st);
  CHECK(st.segments <= 2);
  /* And three that are not released: only these come back. */
  CHECK_EQ_INT(append_n(ix, &loop, 5000, 3, sizes, 1, &lsn), 3);
  close_log(ix, &loop);
  CHECK(count_segments(path) <= files + 2);

  static struct seen s;
  memset(&s, 0, sizeof(s));
  CHECK_EQ_INT(hg_intake_recover(path, on_record, &s, err, sizeof(err)), 0);
  /* Records of released segments may come back too (their headers are
   * wiped without a sync), but none of the first open's, and never out of
   * order. */
  int last3 = s.n >= 3 && s.ids[s.n - 3] == 5000 && s.ids[s.n - 2] == 5001 && s.ids[s.n - 1] == 5002;
  CHECK(last3);
  int from_first = 0, ordered = 1;
  for (int i = 0; i < s.n && i < 4096; i++) {
    from_first += s.ids[i] < 1000;
    if (i > 0) ordered &= s.lsns[i] > s.lsns[i - 1];
  }
  CHECK_EQ_INT(from_first, 0);
  CHECK(ordered);
  CHECK_EQ_INT(s.bad, 0);
}

/* The log's directory and its missing parents are created. */
static void nested_dirs(void) {
  char path[128], err[256];
  sub(path, sizeof(path), "a/b/c-intake");
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_intake_t *ix = NULL;
  CHECK_EQ_INT(hg_intake_open(&ix, &loop, path, err, sizeof(err)), 0);
  static const size_t sizes[] = {64};
  uint64_t lsn;
  CHECK_EQ_INT(append_n(ix, &loop, 0, 3, sizes, 1, &lsn), 3);
  close_log(ix, &loop);
  struct stat st;
  CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
  static struct seen s;
  memset(&s, 0, sizeof(s));
  CHECK_EQ_INT(hg_intake_recover(path, on_record, &s, err, sizeof(err)), 0);
  CHECK_EQ_INT(s.n, 3);
}

/* An unusable directory is reported, not crashed on. */
static void bad_dir(void) {
  char path[128], err[256] = "";
  sub(path, sizeof(path), "file");
  FILE *f = fopen(path, "w");
  if (f) fclose(f);
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_intake_t *ix = (hg_intake_t *)&loop;
  CHECK_EQ_INT(hg_intake_open(&ix, &loop, path, err, sizeof(err)), HG_EIO);
  CHECK(ix == NULL);
  CHECK(strstr(err, "intake log") != NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- Events: the record and recovery into the store ---- */

static hg_event_in_t make_event(int i, const char *webhook) {
  hg_event_in_t ev;
  memset(&ev, 0, sizeof(ev));
  snprintf(ev.id, sizeof(ev.id), "evt_recover%04d", i);
  snprintf(ev.type, sizeof(ev.type), "user.created");
  snprintf(ev.org, sizeof(ev.org), "%s", i % 2 ? "org_a" : "");
  static char payload[64][80];
  int n = snprintf(payload[i % 64], sizeof(payload[0]), "{\"type\":\"user.created\",\"data\":{\"n\":%d}}", i);
  ev.payload = payload[i % 64];
  ev.payload_len = (size_t)n;
  ev.data_off = 30;
  ev.data_len = (size_t)n - 31;
  ev.now = 1700000000000LL + i;
  ev.first_delay_ms = 0;
  ev.targets = json_pack("[s]", webhook);
  return ev;
}

static void record_round_trip(void) {
  hg_event_in_t ev = make_event(7, "wh_abc");
  json_array_append_new(ev.targets, json_string("wh_second"));
  size_t n = hg_events_record_size(&ev);
  unsigned char *rec = malloc(n);
  hg_events_record(&ev, rec);
  hg_event_in_t back;
  CHECK_EQ_INT(hg_events_from_record(rec, n, &back), 0);
  CHECK_EQ_STR(back.id, ev.id);
  CHECK_EQ_STR(back.type, ev.type);
  CHECK_EQ_STR(back.org, ev.org);
  CHECK_EQ_INT(back.payload_len, ev.payload_len);
  CHECK(memcmp(back.payload, ev.payload, ev.payload_len) == 0);
  CHECK_EQ_INT(back.data_off, ev.data_off);
  CHECK_EQ_INT(back.data_len, ev.data_len);
  CHECK_EQ_INT(back.now, ev.now);
  CHECK_EQ_INT(back.client_id, 1);
  CHECK_EQ_INT(json_array_size(back.targets), 2);
  CHECK_EQ_STR(json_string_value(json_array_get(back.targets, 1)), "wh_second");
  json_decref(back.targets);
  /* Truncated, or one byte too many: refused. */
  CHECK_EQ_INT(hg_events_from_record(rec, n - 1, &back), HG_EINVAL);
  unsigned char *longer = malloc(n + 1);
  memcpy(longer, rec, n);
  longer[n] = 0;
  CHECK_EQ_INT(hg_events_from_record(longer, n + 1, &back), HG_EINVAL);
  rec[0] = 9; /* an unknown version */
  CHECK_EQ_INT(hg_events_from_record(rec, n, &back), HG_EINVAL);
  free(longer);
  free(rec);
  json_decref(ev.targets);
}

/* Events answered from the log, then the process gone before the store had
 * them: recovery stores each once, with its deliveries, and a second run
 * stores nothing twice. An event the store already has is left alone. */
static void recover_events(void) {
  char logdir[128], db[128], err[256];
  sub(logdir, sizeof(logdir), "ev-intake");
  sub(db, sizeof(db), "ev.db");
  hg_db_t *c = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&c, db, err, sizeof(err)), 0);
  CHECK_EQ_INT(hg_db_exec(c,
                          "INSERT INTO webhooks (id, url, events, created_at, updated_at) VALUES "
                          "('wh_live', 'http://127.0.0.1:9/', '[\"*\"]', 1, 1), "
                          "('wh_off', 'http://127.0.0.1:9/', '[\"*\"]', 1, 1);"
                          "UPDATE webhooks SET active = 0 WHERE id = 'wh_off'", "test"),
               0);
  /* Event 0 reached the store before the stop. */
  hg_event_in_t first = make_event(0, "wh_live");
  CHECK_EQ_INT(hg_events_insert(c, &first), 0);
  hg_event_in_done(&first);
  json_decref(first.targets);
  hg_db_close(c);

  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_intake_t *ix = NULL;
  CHECK_EQ_INT(hg_intake_open(&ix, &loop, logdir, err, sizeof(err)), 0);
  struct appended a[20];
  memset(a, 0, sizeof(a));
  for (int i = 0; i < 20; i++) {
    hg_event_in_t ev = make_event(i, i == 3 ? "wh_off" : "wh_live");
    size_t n = hg_events_record_size(&ev);
    unsigned char *rec = malloc(n);
    hg_events_record(&ev, rec);
    CHECK_EQ_INT(hg_intake_append(ix, rec, n, on_done, &a[i], NULL), 0);
    free(rec);
    json_decref(ev.targets);
  }
  run_until_done(&loop, 20);
  close_log(ix, &loop);

  uint64_t seen = 0, stored = 0;
  CHECK_EQ_INT(hg_events_recover(logdir, db, &seen, &stored, err, sizeof(err)), 0);
  CHECK_EQ_INT(seen, 20);
  CHECK_EQ_INT(stored, 19);
  CHECK_EQ_INT(hg_events_recover(logdir, db, &seen, &stored, err, sizeof(err)), 0);
  CHECK_EQ_INT(seen, 20);
  CHECK_EQ_INT(stored, 0);

  CHECK_EQ_INT(hg_store_open_sync(&c, db, err, sizeof(err)), 0);
  CHECK_EQ_INT(query_int(c, "SELECT count(*) FROM events"), 20);
  /* One pending delivery per event, none to the inactive webhook. */
  CHECK_EQ_INT(query_int(c, "SELECT count(*) FROM deliveries WHERE status = 'pending'"), 19);
  CHECK_EQ_INT(query_int(c, "SELECT count(*) FROM deliveries WHERE webhook_id = 'wh_off'"), 0);
  CHECK_EQ_INT(query_int(c, "SELECT deliveries FROM events WHERE id = 'evt_recover0003'"), 0);
  CHECK_EQ_INT(query_int(c, "SELECT count(*) FROM events WHERE id = 'evt_recover0005' AND organization_id = 'org_a' "
                              "AND created_at = 1700000000005 AND CAST(payload AS TEXT) = '{\"type\":\"user.created\",\"data\":{\"n\":5}}'"),
               1);
  hg_db_close(c);
}

int main(void) {
  hg_log_setup(HG_LOG_INFO, HG_LOG_LOGFMT, 2);
  snprintf(dir, sizeof(dir), "/tmp/hg-test-intake-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  RUN(round_trip);
  RUN(recover_edges);
  RUN(damaged_record);
  RUN(reuse);
  RUN(nested_dirs);
  RUN(bad_dir);
  RUN(record_round_trip);
  RUN(recover_events);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  return HGT_DONE();
}
