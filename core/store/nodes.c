/* nodes.c: the rows nodes sharing a PostgreSQL store use to find each
 * other and to hand deliveries over (nodes.h). */
#include "store/nodes.h"

#include "base/common.h"
#include "store/lines.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A session-level advisory lock per node id, held by the store
 * connection: a second live process under the same id cannot take it,
 * and a process that died loses it with its connection, so the same node
 * started again takes it (and its leases) back at once. Taken again after
 * every reconnect (the poll asks each time; a session that holds it just
 * counts one more). */
int hg_nodes_lock(hg_db_t *db, const char *node_id) {
  static const char sql[] = "SELECT pg_try_advisory_lock(7301, hashtext(?1))";
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) {
    hg_db_bind_text(st, 1, node_id, -1);
    rc = hg_db_step(st);
    if (rc == HG_DB_ROW) rc = hg_db_column_int64(st, 0) ? 0 : HG_EEXIST;
    else if (rc == HG_DB_DONE) rc = HG_EIO;
  }
  hg_db_release(st);
  return rc == HG_EEXIST || rc == 0 ? rc : hg_db_fail(db, rc, "lock node id");
}

int hg_nodes_register(hg_db_t *db, const char *node_id, const char *version, const char *settings, int64_t now,
                      int64_t seen_within_ms, char *differs, size_t cap) {
  static const char upsert[] =
      "INSERT INTO hookgate_nodes (node_id, version, settings, started_at, seen_at) VALUES (?1, ?2, ?3, ?4, ?4) "
      "ON CONFLICT (node_id) DO UPDATE SET version = EXCLUDED.version, settings = EXCLUDED.settings, "
      "started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at";
  static const char others[] =
      "SELECT node_id FROM hookgate_nodes WHERE node_id <> ?1 AND seen_at >= ?2 AND (version <> ?3 OR settings <> ?4) "
      "ORDER BY node_id";
  hg_stmt_t *st = NULL;
  differs[0] = '\0';
  int rc = hg_db_prepare(db, upsert, &st);
  if (rc == 0) {
    hg_db_bind_text(st, 1, node_id, -1);
    hg_db_bind_text(st, 2, version, -1);
    hg_db_bind_text(st, 3, settings, -1);
    hg_db_bind_int64(st, 4, now);
    rc = hg_db_step(st);
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "register node");
  if ((rc = hg_db_prepare(db, others, &st)) != 0) return hg_db_fail(db, rc, "read nodes");
  hg_db_bind_text(st, 1, node_id, -1);
  hg_db_bind_int64(st, 2, now - seen_within_ms);
  hg_db_bind_text(st, 3, version, -1);
  hg_db_bind_text(st, 4, settings, -1);
  size_t len = 0;
  while ((rc = hg_db_step(st)) == HG_DB_ROW) {
    const char *id = hg_db_column_text(st, 0);
    int n = snprintf(differs + len, cap - len, "%s%s", len ? "," : "", id ? id : "?");
    if (n < 0 || (size_t)n >= cap - len) break;
    len += (size_t)n;
  }
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "read nodes") : 0;
}

int hg_nodes_poll(hg_db_t *db, const char *node_id, int64_t now, int64_t *changes, int64_t *db_now_ms) {
  static const char seen[] = "UPDATE hookgate_nodes SET seen_at = ?1 WHERE node_id = ?2";
  /* clock_timestamp(), not now(): the time of the answer, not of the
   * transaction's start (a group may have begun a while ago). */
  static const char look[] =
      "SELECT n, CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT) FROM hookgate_changes WHERE id = 1";
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, seen, &st);
  if (rc == 0) {
    hg_db_bind_int64(st, 1, now);
    hg_db_bind_text(st, 2, node_id, -1);
    rc = hg_db_step(st);
  }
  hg_db_release(st);
  if (rc < 0) return hg_db_fail(db, rc, "node seen");
  if ((rc = hg_db_prepare(db, look, &st)) == 0 && (rc = hg_db_step(st)) == HG_DB_ROW) {
    *changes = hg_db_column_int64(st, 0);
    *db_now_ms = hg_db_column_int64(st, 1);
    rc = 0;
  } else if (rc == HG_DB_DONE) {
    rc = HG_ECORRUPT; /* migration 1 inserts the row */
  }
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "poll changes") : 0;
}

int hg_nodes_release(hg_db_t *db, const char *node_id) {
  /* Pending rows only: the partial index of due deliveries serves it. */
  static const char sql[] = "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL "
                            "WHERE status = 'pending' AND lease_owner = ?1";
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) {
    hg_db_bind_text(st, 1, node_id, -1);
    rc = hg_db_step(st);
  }
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "release leases") : 0;
}

int hg_deliveries_claim(hg_db_t *db, int64_t seq, const char *node_id, int64_t now, int64_t lease_ms,
                        int64_t keep_until) {
  /* SKIP LOCKED: a row another session has locked (a node claiming or
   * recording it, or one cut off in the middle of its transaction) is
   * left to that session at once instead of waited for; two nodes
   * claiming at once therefore never both get it. Deferred: the load that
   * follows in the same transaction reads the lease it left (nodes.h). */
  static const char sql[] = "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 WHERE seq = (SELECT c.seq FROM "
                            "deliveries c WHERE c.seq = ?3 AND (c.lease_until IS NULL OR c.lease_until < ?4 OR "
                            "(c.lease_owner = ?1 AND c.lease_until < ?5)) AND NOT " HG_LINE_WAITING("c") " "
                            "FOR UPDATE SKIP LOCKED)";
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) {
    hg_db_bind_text(st, 1, node_id, -1);
    hg_db_bind_int64(st, 2, now + lease_ms);
    hg_db_bind_int64(st, 3, seq);
    hg_db_bind_int64(st, 4, now);
    hg_db_bind_int64(st, 5, keep_until);
    rc = hg_db_defer(st);
  }
  hg_db_release(st);
  return rc < 0 ? hg_db_fail(db, rc, "claim delivery") : 0;
}

int hg_deliveries_claim_many(hg_db_t *db, const int64_t *seqs, size_t n, const char *node_id, int64_t now,
                             int64_t lease_ms, int64_t keep_until) {
  /* As hg_deliveries_claim: rows another session holds are skipped. */
  static const char sql[] =
      "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2 FROM (SELECT d.seq FROM "
      "unnest(CAST(?3 AS BIGINT[])) AS s(seq) JOIN deliveries d ON d.seq = s.seq "
      "WHERE (d.lease_until IS NULL OR d.lease_until < ?4 OR (d.lease_owner = ?1 AND d.lease_until < ?5)) "
      "AND NOT " HG_LINE_WAITING("d") " FOR UPDATE OF d SKIP LOCKED) c "
      "WHERE deliveries.seq = c.seq";
  if (n == 0) return 0;
  char *arr = hg_db_int64_array(seqs, n);
  if (arr == NULL) return HG_ENOMEM;
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc == 0) {
    hg_db_bind_text(st, 1, node_id, -1);
    hg_db_bind_int64(st, 2, now + lease_ms);
    hg_db_bind_text(st, 3, arr, -1);
    hg_db_bind_int64(st, 4, now);
    hg_db_bind_int64(st, 5, keep_until);
    rc = hg_db_defer(st);
  }
  hg_db_release(st);
  free(arr);
  return rc < 0 ? hg_db_fail(db, rc, "claim deliveries") : 0;
}

int hg_deliveries_orphans(hg_db_t *db, int64_t due_before, int64_t now, int64_t after_due, int64_t after_seq,
                          int limit, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud) {
  static const char sql[] =
      "SELECT seq, next_attempt_at FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?1 "
      "AND (lease_until IS NULL OR lease_until < ?2) AND (next_attempt_at > ?4 OR (next_attempt_at = ?4 AND "
      "seq > ?5)) AND line IS NULL ORDER BY next_attempt_at, seq LIMIT ?3";
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, sql, &st);
  if (rc != 0) return hg_db_fail(db, rc, "read orphaned deliveries");
  hg_db_bind_int64(st, 1, due_before);
  hg_db_bind_int64(st, 2, now);
  hg_db_bind_int64(st, 3, limit);
  hg_db_bind_int64(st, 4, after_due);
  hg_db_bind_int64(st, 5, after_seq);
  int r = 0;
  while (r == 0 && (rc = hg_db_step(st)) == HG_DB_ROW) r = cb(hg_db_column_int64(st, 0), hg_db_column_int64(st, 1), ud);
  hg_db_release(st);
  if (r != 0) return r;
  return rc < 0 ? hg_db_fail(db, rc, "read orphaned deliveries") : 0;
}
