/* events.c: event insert, idempotency and fan-out. */
#include "store/events.h"

#include "base/common.h"
#include "base/ids.h"
#include "store/intake.h"
#include "store/lines.h"
#include "store/purge.h"
#include "base/log.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define IDEMPOTENCY_MS (24 * 3600 * 1000LL)

/* Looks for an earlier event with ev's idempotency key (or publisher id).
 * Returns 0 and sets ev->duplicate when one answers for this request. */
static int find_original(hg_db_t *db, hg_event_in_t *ev, int by_key) {
  hg_stmt_t *st = NULL;
  const char *sql = by_key
                        ? "SELECT seq, id, created_at, organization_id, deliveries FROM events WHERE idempotency_key = ?1"
                        : "SELECT seq, id, created_at, organization_id, deliveries FROM events WHERE id = ?1";
  int rc = hg_db_prepare(db, sql, &st);
  if (rc < 0) return hg_db_fail(db, rc, "find event");
  hg_db_bind_text(st, 1, by_key ? ev->idem_key : ev->id, -1);
  rc = hg_db_step(st);
  int r = 0;
  if (rc == HG_DB_ROW) {
    int64_t seq = hg_db_column_int64(st, 0);
    int64_t created = hg_db_column_int64(st, 2);
    const char *org = hg_db_column_text(st, 3);
    if (by_key && created < ev->now - IDEMPOTENCY_MS) {
      /* The key has expired: free it for this new event. */
      hg_db_release(st);
      st = NULL;
      rc = hg_db_prepare(db, "UPDATE events SET idempotency_key = NULL WHERE seq = ?1", &st);
      if (rc < 0) return hg_db_fail(db, rc, "expire idempotency key");
      hg_db_bind_int64(st, 1, seq);
      rc = hg_db_step(st);
      r = rc >= 0 ? 0 : hg_db_fail(db, rc, "expire idempotency key");
    } else if (!by_key && strcmp(org ? org : "", ev->org) != 0) {
      ev->conflict = 1;
    } else {
      ev->duplicate = 1;
      hg_copy(ev->original_id, sizeof(ev->original_id), hg_db_column_text(st, 1));
      ev->n_deliveries = (int)hg_db_column_int64(st, 4);
    }
  } else if (rc < 0) {
    r = hg_db_fail(db, rc, "find event");
  }
  hg_db_release(st);
  return r;
}

int hg_events__insert_seq(hg_db_t *db, hg_stmt_t *st, int64_t *seq) {
  int rc = hg_db_step(st);
  if (hg_db_engine(db) == HG_DB_PG) {
    if (rc == HG_DB_DONE) return HG_EIO; /* no row came back */
    if (rc < 0) return rc;
    *seq = hg_db_column_int64(st, 0);
    rc = hg_db_step(st);
    return rc < 0 ? rc : 0;
  }
  if (rc < 0) return rc;
  hg_stmt_t *last = NULL;
  if ((rc = hg_db_prepare(db, "SELECT last_insert_rowid()", &last)) == 0) {
    rc = hg_db_step(last);
    if (rc == HG_DB_ROW) *seq = hg_db_column_int64(last, 0);
    rc = rc == HG_DB_ROW ? 0 : rc < 0 ? rc : HG_EIO;
  }
  hg_db_release(last);
  return rc;
}

/* Which targets are active webhooks (a route plugin may name any id):
 * active[i] for targets[i], with TARGET_ORDERED set when it is ordered
 * (store/lines.h). Returns how many are, or a negative code. */
#define TARGET_ACTIVE 1
#define TARGET_ORDERED 2

static int check_targets(hg_db_t *db, json_t *targets, unsigned char *active) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "SELECT w.active, EXISTS (SELECT 1 FROM webhook_lines l WHERE l.webhook_id = w.id) "
                         "FROM webhooks w WHERE w.id = ?1",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "check delivery target");
  int n = 0;
  size_t i;
  json_t *t;
  json_array_foreach(targets, i, t) {
    active[i] = 0;
    if (!json_is_string(t)) continue;
    hg_db_bind_text(st, 1, json_string_value(t), -1);
    rc = hg_db_step(st);
    if (rc == HG_DB_ROW && hg_db_column_int64(st, 0) == 1)
      active[i] = TARGET_ACTIVE | (hg_db_column_int64(st, 1) ? TARGET_ORDERED : 0);
    if (rc < 0) {
      rc = hg_db_fail(db, rc, "check delivery target");
      hg_db_release(st);
      return rc;
    }
    hg_db_reset(st);
    n += active[i] != 0;
  }
  hg_db_release(st);
  return n;
}

/* SQLite (PostgreSQL takes hg_events__insert_pg, events_pg.c). */
static int insert_all(hg_db_t *db, hg_event_in_t *ev, const unsigned char *active) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db,
                         "INSERT INTO events (id, type, organization_id, payload, idempotency_key, created_at, "
                         "deliveries) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                         &st);
  if (rc < 0) return hg_db_fail(db, rc, "insert event");
  hg_db_bind_text(st, 1, ev->id, -1);
  hg_db_bind_text(st, 2, ev->type, -1);
  if (ev->org[0]) hg_db_bind_text(st, 3, ev->org, -1);
  else hg_db_bind_null(st, 3);
  hg_db_bind_blob(st, 4, ev->payload, ev->payload_len);
  if (ev->idem_key) hg_db_bind_text(st, 5, ev->idem_key, -1);
  else hg_db_bind_null(st, 5);
  hg_db_bind_int64(st, 6, ev->now);
  hg_db_bind_int64(st, 7, ev->n_deliveries);
  int64_t event_seq = 0;
  rc = hg_events__insert_seq(db, st, &event_seq);
  if (rc < 0) rc = hg_db_fail(db, rc, "insert event");
  hg_db_release(st);
  if (rc < 0) return rc;

  /* One row from VALUES: an INSERT ... SELECT may write several rows, for
   * which SQLite keeps a statement journal (a copy of every page touched). */
  rc = hg_db_prepare(db,
                     "INSERT INTO deliveries (id, webhook_id, event_seq, status, next_attempt_at, created_at, "
                     "updated_at, line) VALUES (?1, ?2, ?3, 'pending', ?5, ?4, ?4, ?6)",
                     &st);
  if (rc < 0) return hg_db_fail(db, rc, "insert delivery");
  int r = 0;
  size_t i;
  json_t *t;
  json_array_foreach(ev->targets, i, t) {
    if (!active[i]) continue;
    char del_id[HG_ID_MAX];
    hg_id_new("del_", del_id);
    hg_db_bind_text(st, 1, del_id, -1);
    hg_db_bind_text(st, 2, json_string_value(t), -1);
    hg_db_bind_int64(st, 3, event_seq);
    hg_db_bind_int64(st, 4, ev->now);
    hg_db_bind_int64(st, 5, ev->now + ev->first_delay_ms);
    int64_t line = 0;
    if ((active[i] & TARGET_ORDERED) && (r = hg_line_take(db, json_string_value(t), 1, &line)) == HG_ENOTFOUND) r = 0;
    if (r != 0) break;
    if (line > 0) hg_db_bind_int64(st, 6, line);
    else hg_db_bind_null(st, 6);
    int64_t seq = 0;
    rc = hg_events__insert_seq(db, st, &seq);
    if (rc < 0) {
      r = hg_db_fail(db, rc, "insert delivery");
      break;
    }
    hg_db_reset(st);
    if ((r = hg_event_in__push_seq(ev, seq)) != 0) break;
  }
  hg_db_release(st);
  return r;
}

int hg_events_insert(hg_db_t *db, hg_event_in_t *ev) {
  int r;
  /* Everything reported is set afresh and nothing given is changed: the
   * store may run this twice. */
  ev->duplicate = ev->conflict = 0;
  ev->n_deliveries = 0;
  ev->n_seqs = 0;
  /* An Idempotency-Key first, then the publisher's own id: either one
   * seen before answers with the original event. */
  if (ev->idem_key && ((r = find_original(db, ev, 1)) != 0 || ev->duplicate)) return r;
  if (ev->client_id && ((r = find_original(db, ev, 0)) != 0 || ev->duplicate || ev->conflict)) return r;
  /* The event row records how many deliveries it fanned out to (an
   * idempotent replay answers with it), so the targets are checked first. */
  size_t n = json_array_size(ev->targets);
  if (hg_db_engine(db) == HG_DB_PG) {
    size_t i;
    json_t *t;
    json_array_foreach(ev->targets, i, t) ev->n_deliveries += json_is_string(t);
    return hg_events__insert_pg(db, ev);
  }
  unsigned char small[64];
  unsigned char *active = n <= sizeof(small) ? small : malloc(n);
  if (active == NULL) return HG_ENOMEM;
  r = check_targets(db, ev->targets, active);
  if (r >= 0) {
    ev->n_deliveries = r;
    r = insert_all(db, ev, active);
  }
  if (active != small) free(active);
  return r;
}

/* A batch (events_pg.c) holds the events it can send in multi-row
 * statements; any other is stored here, once what it held went first. */
int hg_events_batch_add(hg_events_batch_t *b, hg_event_in_t *ev) {
  hg_db_t *db = NULL;
  int r = hg_events__batch_hold(b, ev, &db);
  return r == 1 ? hg_events_insert(db, ev) : r;
}

/* ---- The intake log's record ----
 * u8 version (1), i64 now, i64 first delay, u32 data offset, u32 data
 * length, then id, type and organization (each u16 length + bytes), u32
 * payload length + payload, u32 target count, each target u16 + bytes. */

#define RECORD_VERSION 1

static size_t str16_size(const char *s) { return 2 + strlen(s); }

/* A target the record can hold: a string of u16 length (a webhook id is
 * far shorter; anything else could never be a delivery target). */
static int recordable(json_t *t) { return json_is_string(t) && json_string_length(t) <= UINT16_MAX; }

size_t hg_events_record_size(const hg_event_in_t *ev) {
  size_t n = 1 + 8 + 8 + 4 + 4 + str16_size(ev->id) + str16_size(ev->type) + str16_size(ev->org) + 4 +
             ev->payload_len + 4;
  size_t i;
  json_t *t;
  json_array_foreach(ev->targets, i, t) {
    if (recordable(t)) n += 2 + json_string_length(t);
  }
  return n;
}

static unsigned char *put(unsigned char *o, const void *p, size_t n) {
  memcpy(o, p, n);
  return o + n;
}

static unsigned char *put_str16(unsigned char *o, const char *s, size_t n) {
  uint16_t l = (uint16_t)n;
  o = put(o, &l, 2);
  return put(o, s, n);
}

void hg_events_record(const hg_event_in_t *ev, unsigned char *o) {
  *o++ = RECORD_VERSION;
  o = put(o, &ev->now, 8);
  o = put(o, &ev->first_delay_ms, 8);
  uint32_t off = (uint32_t)ev->data_off, dlen = (uint32_t)ev->data_len, plen = (uint32_t)ev->payload_len;
  o = put(o, &off, 4);
  o = put(o, &dlen, 4);
  o = put_str16(o, ev->id, strlen(ev->id));
  o = put_str16(o, ev->type, strlen(ev->type));
  o = put_str16(o, ev->org, strlen(ev->org));
  o = put(o, &plen, 4);
  o = put(o, ev->payload, ev->payload_len);
  uint32_t n = 0;
  size_t i;
  json_t *t;
  json_array_foreach(ev->targets, i, t) n += recordable(t);
  o = put(o, &n, 4);
  json_array_foreach(ev->targets, i, t) {
    if (recordable(t)) o = put_str16(o, json_string_value(t), json_string_length(t));
  }
}

typedef struct reader {
  const unsigned char *p, *end;
} reader_t;

static int get(reader_t *r, void *out, size_t n) {
  if ((size_t)(r->end - r->p) < n) return -1;
  memcpy(out, r->p, n);
  r->p += n;
  return 0;
}

/* A u16-length string into out (cap bytes, NUL-terminated). */
static int get_str16(reader_t *r, char *out, size_t cap) {
  uint16_t l;
  if (get(r, &l, 2) != 0 || l >= cap || (size_t)(r->end - r->p) < l) return -1;
  memcpy(out, r->p, l);
  out[l] = '\0';
  r->p += l;
  return memchr(out, '\0', l) == NULL ? 0 : -1;
}

int hg_events_from_record(const unsigned char *rec, size_t len, hg_event_in_t *ev) {
  reader_t r = {rec, rec + len};
  memset(ev, 0, sizeof(*ev));
  uint8_t version;
  uint32_t off, dlen, plen, n;
  if (get(&r, &version, 1) != 0 || version != RECORD_VERSION || get(&r, &ev->now, 8) != 0 ||
      get(&r, &ev->first_delay_ms, 8) != 0 || get(&r, &off, 4) != 0 || get(&r, &dlen, 4) != 0 ||
      get_str16(&r, ev->id, sizeof(ev->id)) != 0 || get_str16(&r, ev->type, sizeof(ev->type)) != 0 ||
      get_str16(&r, ev->org, sizeof(ev->org)) != 0 || get(&r, &plen, 4) != 0 || (size_t)(r.end - r.p) < plen ||
      (uint64_t)off + dlen > plen)
    return HG_EINVAL;
  ev->payload = (char *)r.p;
  ev->payload_len = plen;
  ev->data_off = off;
  ev->data_len = dlen;
  ev->client_id = 1;
  r.p += plen;
  if (get(&r, &n, 4) != 0 || (ev->targets = json_array()) == NULL) return HG_EINVAL;
  for (uint32_t i = 0; i < n; i++) {
    uint16_t l;
    if (get(&r, &l, 2) != 0 || (size_t)(r.end - r.p) < l) break;
    json_array_append_new(ev->targets, json_stringn((const char *)r.p, l));
    r.p += l;
  }
  if (json_array_size(ev->targets) != n || r.p != r.end) {
    json_decref(ev->targets);
    ev->targets = NULL;
    return HG_EINVAL;
  }
  return 0;
}

/* ---- Recovery from the intake log ---- */

typedef struct recovery {
  hg_db_t *db;
  uint64_t seen, stored, purged;
  int64_t purged_before; /* the purge mark (purge.h): older events were stored, and may have been purged since */
} recovery_t;

static int recover_record(uint64_t lsn, const unsigned char *rec, size_t len, void *ud) {
  recovery_t *rc = ud;
  hg_event_in_t ev;
  rc->seen++;
  if (hg_events_from_record(rec, len, &ev) != 0) {
    char n[24];
    n[hg_fmt_u64(n, lsn)] = '\0';
    hg_log(HG_LOG_ERROR, "intake log: a record is not an event; skipped", "record", n, NULL);
    return 0;
  }
  if (ev.now < rc->purged_before) {
    /* Stored long ago; the store lacking it means a purge took it. */
    rc->purged++;
    json_decref(ev.targets);
    hg_event_in_done(&ev);
    return 0;
  }
  /* Each record under a savepoint: one that fails undoes only itself. */
  int r = hg_db_exec(rc->db, "SAVEPOINT hg_recover", "recover savepoint") == 0 ? 0 : HG_EIO;
  if (r == 0) r = hg_events_insert(rc->db, &ev);
  if (r == 0 && ev.conflict) r = HG_EEXIST;
  if (r == 0 && !ev.duplicate) rc->stored++;
  if (r != 0) hg_db_exec(rc->db, "ROLLBACK TO hg_recover", "recover rollback");
  hg_db_exec(rc->db, "RELEASE hg_recover", "recover release");
  if (r == HG_EEXIST || r == HG_EINVAL || r == HG_ENOTFOUND) {
    /* This event cannot be stored (its id is another organization's): the
     * rest can. */
    hg_log(HG_LOG_ERROR, "intake log: an event cannot be stored; skipped", "event", ev.id, "error", hg_strerror(r),
           NULL);
    r = 0;
  }
  json_decref(ev.targets);
  hg_event_in_done(&ev);
  return r;
}

int hg_events_recover(const char *dir, const char *store_path, uint64_t *seen, uint64_t *stored, char *err,
                      size_t errlen) {
  *seen = *stored = 0;
  struct stat st;
  if (stat(dir, &st) != 0) {
    /* No log there (ENOTDIR: a parent is not a directory, which opening
     * the store reports in its own words). */
    if (errno == ENOENT || errno == ENOTDIR) return 0;
    hg_set_err(err, errlen, "cannot read %s: %s", dir, strerror(errno));
    return HG_EIO;
  }
  hg_db_t *db = NULL;
  int r = hg_store_open_sync(&db, store_path, err, errlen);
  if (r != 0) return r;
  recovery_t rc = {db, 0, 0, 0, hg_purge_marked(dir)};
  /* PostgreSQL connections commit synchronously already (db.h). */
  if (hg_db_exec(db, hg_db_engine(db) == HG_DB_PG ? "BEGIN" : "PRAGMA synchronous=FULL; BEGIN IMMEDIATE",
                 "recover begin") != 0) {
    hg_set_err(err, errlen, "cannot begin: %s", hg_db_errmsg(db));
    r = HG_EIO;
  }
  if (r == 0) {
    if (err != NULL && errlen > 0) err[0] = '\0';
    r = hg_intake_recover(dir, recover_record, &rc, err, errlen);
    if (r != 0 && err != NULL && err[0] == '\0') hg_set_err(err, errlen, "cannot store an event: %s", hg_strerror(r));
  }
  if (r == 0 && hg_db_exec(db, "COMMIT", "recover commit") != 0) {
    hg_set_err(err, errlen, "cannot commit: %s", hg_db_errmsg(db));
    r = HG_EIO;
  }
  if (r != 0 && hg_db_in_transaction(db)) hg_db_exec(db, "ROLLBACK", "recover rollback");
  hg_db_close(db);
  if (r == 0) {
    *seen = rc.seen;
    *stored = rc.stored;
    if (rc.purged > 0) {
      char n[24];
      n[hg_fmt_u64(n, rc.purged)] = '\0';
      hg_log(HG_LOG_DEBUG, "intake log: records of events older than the last purge skipped", "records", n, NULL);
    }
  }
  return r;
}
