/* purge.c: deleting old rows in small batches (purge.h). */
#include "store/purge.h"

#include "base/common.h"
#include "store/store.h"

#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rows newer than the cutoff a walk reads before it ends. SQLite assigns
 * seqs in commit order (a row's time is taken a little before, on the
 * loop); PostgreSQL connections reserve blocks of 256 seqs ahead
 * (hg_db_nextval), so a row older than the cutoff sits at most a block per
 * connection behind a newer one: room for 64 of them. */
#define SLACK_SQLITE 1024
#define SLACK_PG 16384

int hg_purge_events_indexed(hg_db_t *db) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         hg_db_engine(db) == HG_DB_PG
                             ? "SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                               "AND a.attnum = i.indkey[0] WHERE i.indrelid = CAST('deliveries' AS regclass) "
                               "AND a.attname = 'event_seq'"
                             : "SELECT count(*) FROM pragma_index_list('deliveries') l, pragma_index_info(l.name) i "
                               "WHERE i.seqno = 0 AND i.name = 'event_seq'",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "look for an index of deliveries by event");
  rc = hg_db_step(st);
  int r = rc == HG_DB_ROW ? hg_db_column_int64(st, 0) > 0
          : rc < 0        ? hg_db_fail(db, rc, "look for an index of deliveries by event")
                          : HG_EIO;
  hg_db_release(st);
  return r;
}

int hg_purge_lock(hg_db_t *db) {
  if (hg_db_engine(db) != HG_DB_PG) return 0;
  hg_stmt_t *st = NULL;
  /* 7302: the purge's key among hookgate's advisory locks (nodes.c holds
   * 7301 per node id). */
  int rc = hg_db_prepare(db, "SELECT pg_try_advisory_xact_lock(7302, 0)", &st);
  if (rc < 0) return hg_db_fail(db, rc, "lock the purge");
  rc = hg_db_step(st);
  int r = rc == HG_DB_ROW ? (hg_db_column_int64(st, 0) ? 0 : HG_EBUSY)
          : rc < 0        ? hg_db_fail(db, rc, "lock the purge")
                          : HG_EIO;
  hg_db_release(st);
  return r;
}

/* Runs st (bound), returning the rows it changed, or HG_E*. */
static int64_t run_changes(hg_db_t *db, hg_stmt_t *st, const char *op) {
  int rc = hg_db_step(st);
  if (rc < 0) return hg_db_fail(db, rc, op);
  return hg_db_changes(db);
}

/* Deletes the deliveries in seqs (read as not pending in this
 * transaction) with their attempts. */
static int delete_deliveries(hg_db_t *db, const int64_t *seqs, size_t n, hg_purge_counts_t *out) {
  if (n == 0) return 0;
  hg_stmt_t *st = NULL;
  int rc;
  if (hg_db_engine(db) == HG_DB_PG) {
    /* Other nodes write these rows meanwhile: FOR UPDATE waits for a
     * replay in progress and reads its outcome, so that a delivery made
     * pending again keeps its row and its attempts. The attempts go in the
     * statement itself (not by the cascade) to be counted. */
    char *arr = hg_db_int64_array(seqs, n);
    if (arr == NULL) return HG_ENOMEM;
    rc = hg_db_prepare(db,
                       "WITH d AS (SELECT x.seq FROM unnest(CAST(?1 AS BIGINT[])) AS s(seq) "
                       "JOIN deliveries x ON x.seq = s.seq WHERE x.status <> 'pending' FOR UPDATE OF x), "
                       "a AS (DELETE FROM attempts WHERE delivery_seq IN (SELECT seq FROM d) RETURNING 1), "
                       "r AS (DELETE FROM deliveries WHERE seq IN (SELECT seq FROM d) RETURNING 1) "
                       "SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM a)",
                       &st);
    if (rc == 0) {
      hg_db_bind_text(st, 1, arr, -1);
      rc = hg_db_step(st);
      if (rc == HG_DB_ROW) {
        out->deliveries += hg_db_column_int64(st, 0);
        out->attempts += hg_db_column_int64(st, 1);
        rc = 0;
      } else if (rc == HG_DB_DONE) {
        rc = HG_EIO;
      }
    }
    hg_db_release(st);
    free(arr);
    return rc < 0 ? hg_db_fail(db, rc, "purge deliveries") : 0;
  }
  /* SQLite: this connection is the only writer, so what the batch read is
   * still so; a statement per row costs no round trip. */
  hg_stmt_t *del = NULL;
  if ((rc = hg_db_prepare(db, "DELETE FROM attempts WHERE delivery_seq = ?1", &st)) < 0 ||
      (rc = hg_db_prepare(db, "DELETE FROM deliveries WHERE seq = ?1 AND status <> 'pending'", &del)) < 0) {
    hg_db_release(st);
    return hg_db_fail(db, rc, "purge deliveries");
  }
  for (size_t i = 0; i < n && rc >= 0; i++) {
    hg_db_bind_int64(st, 1, seqs[i]);
    int64_t a = run_changes(db, st, "purge attempts");
    hg_db_reset(st);
    if (a < 0) {
      rc = (int)a;
      break;
    }
    hg_db_bind_int64(del, 1, seqs[i]);
    int64_t d = run_changes(db, del, "purge deliveries");
    hg_db_reset(del);
    if (d < 0) {
      rc = (int)d;
      break;
    }
    out->attempts += a;
    out->deliveries += d;
  }
  hg_db_release(st);
  hg_db_release(del);
  return rc < 0 ? rc : 0;
}

/* Deletes the events in seqs that no delivery references any more. */
static int delete_events(hg_db_t *db, const int64_t *seqs, size_t n, hg_purge_counts_t *out) {
  if (n == 0) return 0;
  hg_stmt_t *st = NULL;
  int rc;
  if (hg_db_engine(db) == HG_DB_PG) {
    char *arr = hg_db_int64_array(seqs, n);
    if (arr == NULL) return HG_ENOMEM;
    rc = hg_db_prepare(db,
                       "DELETE FROM events WHERE seq IN (SELECT s.seq FROM unnest(CAST(?1 AS BIGINT[])) AS s(seq)) "
                       "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = events.seq)",
                       &st);
    if (rc == 0) {
      hg_db_bind_text(st, 1, arr, -1);
      int64_t e = run_changes(db, st, "purge events");
      if (e >= 0)
        out->events += e;
      else
        rc = (int)e;
    } else {
      rc = hg_db_fail(db, rc, "purge events");
    }
    hg_db_release(st);
    free(arr);
    return rc < 0 ? rc : 0;
  }
  if ((rc = hg_db_prepare(db,
                          "DELETE FROM events WHERE seq = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE "
                          "event_seq = ?1)",
                          &st)) < 0)
    return hg_db_fail(db, rc, "purge events");
  for (size_t i = 0; i < n; i++) {
    hg_db_bind_int64(st, 1, seqs[i]);
    int64_t e = run_changes(db, st, "purge events");
    hg_db_reset(st);
    if (e < 0) {
      rc = (int)e;
      break;
    }
    out->events += e;
  }
  hg_db_release(st);
  return rc < 0 ? rc : 0;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* One batch of the walk over deliveries. */
static int deliveries_batch(hg_db_t *db, const hg_purge_rules_t *rules, hg_purge_pos_t *pos, int64_t slack,
                            int64_t *seqs, size_t *n, int *end) {
  int64_t ev_before = rules->events_indexed ? rules->events_before : 0;
  int64_t bound = max64(rules->deliveries_before, ev_before);
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "SELECT d.seq, d.status, d.created_at, e.created_at FROM deliveries d "
                         "JOIN events e ON e.seq = d.event_seq WHERE d.seq > ?1 ORDER BY d.seq LIMIT ?2",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "read deliveries to purge");
  hg_db_bind_int64(st, 1, pos->after);
  hg_db_bind_int64(st, 2, HG_PURGE_BATCH);
  size_t read = 0;
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    read++;
    int64_t seq = hg_db_column_int64(st, 0);
    const char *status = hg_db_column_text(st, 1);
    int64_t created = hg_db_column_int64(st, 2), ev_created = hg_db_column_int64(st, 3);
    pos->after = seq;
    if (created >= bound) pos->newer++;
    if (status == NULL || strcmp(status, "pending") == 0) continue;
    if ((rules->deliveries_before > 0 && created < rules->deliveries_before) ||
        (ev_before > 0 && ev_created < ev_before))
      seqs[(*n)++] = seq;
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "read deliveries to purge");
  *end = read < HG_PURGE_BATCH || pos->newer > slack;
  return 0;
}

/* One batch of the walk over events. */
static int events_batch(hg_db_t *db, const hg_purge_rules_t *rules, hg_purge_pos_t *pos, int64_t slack, int64_t *seqs,
                        size_t *n, int *end) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "SELECT seq, created_at FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2", &st);
  if (rc < 0) return hg_db_fail(db, rc, "read events to purge");
  hg_db_bind_int64(st, 1, pos->after);
  hg_db_bind_int64(st, 2, HG_PURGE_BATCH);
  size_t read = 0;
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    read++;
    int64_t seq = hg_db_column_int64(st, 0), created = hg_db_column_int64(st, 1);
    pos->after = seq;
    if (created >= rules->events_before)
      pos->newer++;
    else
      seqs[(*n)++] = seq;
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "read events to purge");
  *end = read < HG_PURGE_BATCH || pos->newer > slack;
  return 0;
}

int hg_purge_batch(hg_db_t *db, const hg_purge_rules_t *rules, hg_purge_pos_t *pos, hg_purge_counts_t *out) {
  int64_t slack = hg_db_engine(db) == HG_DB_PG ? SLACK_PG : SLACK_SQLITE;
  int events_on = rules->events_before > 0 && rules->events_indexed;
  int64_t seqs[HG_PURGE_BATCH];
  size_t n = 0;
  int end = 0, rc = 0;
  if (pos->phase == 0) {
    if (rules->deliveries_before <= 0 && !events_on)
      end = 1;
    else
      rc = deliveries_batch(db, rules, pos, slack, seqs, &n, &end);
    if (rc == 0) rc = delete_deliveries(db, seqs, n, out);
  } else if (pos->phase == 1) {
    if (!events_on)
      end = 1;
    else
      rc = events_batch(db, rules, pos, slack, seqs, &n, &end);
    if (rc == 0) rc = delete_events(db, seqs, n, out);
  } else {
    return 0;
  }
  if (rc != 0) return rc;
  if (end) {
    pos->phase++;
    pos->after = 0;
    pos->newer = 0;
  }
  return 0;
}

int64_t hg_purge_marked(const char *intake_dir) {
  char path[4096];
  if (intake_dir == NULL || snprintf(path, sizeof(path), "%s/purged-before", intake_dir) >= (int)sizeof(path)) return 0;
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  long long v = 0;
  if (fscanf(f, "%lld", &v) != 1 || v < 0) v = 0;
  fclose(f);
  return (int64_t)v;
}

int hg_purge_mark(const char *intake_dir, int64_t t) {
  struct stat st;
  if (intake_dir == NULL || stat(intake_dir, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
  if (hg_purge_marked(intake_dir) >= t) return 0;
  char path[4096], tmp[4096 + 8];
  if (snprintf(path, sizeof(path), "%s/purged-before", intake_dir) >= (int)sizeof(path)) return HG_EIO;
  snprintf(tmp, sizeof(tmp), "%s.new", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return HG_EIO;
  char buf[32];
  int n = snprintf(buf, sizeof(buf), "%lld\n", (long long)t);
  int ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0 || hg_fs_sync_parent(path) != 0) {
    unlink(tmp);
    return HG_EIO;
  }
  return 0;
}

int hg_purge_run(const char *address, int64_t before, hg_purge_counts_t *out, int *events_indexed, char *err,
                 size_t errlen) {
  memset(out, 0, sizeof(*out));
  *events_indexed = 0;
  hg_db_t *db = NULL;
  int rc = hg_store_open_sync(&db, address, err, errlen);
  if (rc != 0) return rc;
  int ix = hg_purge_events_indexed(db);
  if (ix < 0) {
    hg_set_err(err, errlen, "cannot read the schema of %s: %s", hg_db_address(db), hg_strerror(ix));
    hg_db_close(db);
    return ix;
  }
  *events_indexed = ix;
  /* Events from the last minute stay (purge.h); on SQLite the intake log
   * beside the file is told first. */
  int64_t ev_before = before, recent = hg_wall_ms() - HG_PURGE_RECENT_MS;
  if (ev_before > recent) ev_before = recent;
  if (ix && hg_db_engine(db) == HG_DB_SQLITE) {
    char dir[4096];
    if (snprintf(dir, sizeof(dir), "%s-intake", address) < (int)sizeof(dir) && hg_purge_mark(dir, ev_before) != 0) {
      hg_set_err(err, errlen, "cannot write the purge mark in %s-intake/ (nothing deleted)", address);
      hg_db_close(db);
      return HG_EIO;
    }
  }
  hg_purge_rules_t rules = {ev_before, before, ix};
  hg_purge_pos_t pos = {0};
  const char *begin = hg_db_engine(db) == HG_DB_PG ? "BEGIN" : "BEGIN IMMEDIATE";
  while (pos.phase < 2) {
    hg_purge_counts_t batch = {0};
    if ((rc = hg_db_exec(db, begin, "purge: begin")) != 0) break;
    rc = hg_purge_batch(db, &rules, &pos, &batch);
    if (rc == 0) rc = hg_db_exec(db, "COMMIT", "purge: commit");
    if (rc != 0) {
      if (hg_db_in_transaction(db)) (void)hg_db_exec(db, "ROLLBACK", "purge: rollback");
      break;
    }
    out->events += batch.events;
    out->deliveries += batch.deliveries;
    out->attempts += batch.attempts;
  }
  if (rc != 0)
    hg_set_err(err, errlen, "purging %s failed: %s (%s)", hg_db_address(db), hg_strerror(rc), hg_db_errmsg(db));
  hg_db_close(db);
  return rc;
}
