/* db.c: the engine-neutral calls of db.h, dispatched to the connection's
 * backend (db_sqlite.c, db_pg.c), and what the backends share (their
 * common fields, the address without its password). The backends build
 * on this file; choosing one and opening it is db_open.c's, the one file
 * that knows them all. */
#include "store/db_internal.h"

#include "base/common.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>

/* "scheme://user:password@host" -> "scheme://user:***@host"; anything else
 * is copied as it is (a file path has no password). A password given as a
 * URI parameter (?password=...) is hidden too. */
static char *hide_password(const char *a) {
  size_t n = strlen(a);
  char *out = malloc(n + 8); /* "***" may stand for an empty password twice */
  if (out == NULL) return NULL;
  const char *scheme = strstr(a, "://");
  const char *at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
  const char *slash = scheme != NULL ? strchr(scheme + 3, '/') : NULL;
  const char *colon = scheme != NULL ? memchr(scheme + 3, ':', at != NULL ? (size_t)(at - scheme - 3) : 0) : NULL;
  if (at != NULL && (slash == NULL || at < slash) && colon != NULL) {
    size_t head = (size_t)(colon + 1 - a);
    memcpy(out, a, head);
    memcpy(out + head, "***", 3);
    strcpy(out + head + 3, at);
  } else {
    strcpy(out, a);
  }
  char *pw = strstr(out, "password=");
  if (pw != NULL) {
    char *end = pw + 9;
    while (*end != '\0' && *end != '&') end++;
    /* The room for "***" is there: out has 3 bytes to spare. */
    memmove(pw + 12, end, strlen(end) + 1);
    memcpy(pw + 9, "***", 3);
  }
  return out;
}

void hg_db_redact(const char *address, char *out, size_t cap) {
  char *h = hide_password(address != NULL ? address : "");
  hg_copy(out, cap, h != NULL ? h : "");
  free(h);
}

int hg_db__init(hg_db_t *db, const hg_db_ops_t *ops, const char *address, unsigned flags) {
  db->ops = ops;
  db->flags = flags;
  db->address = hide_password(address != NULL ? address : "");
  return db->address != NULL ? 0 : HG_ENOMEM;
}

void hg_db__clear(hg_db_t *db) {
  free(db->address);
  db->address = NULL;
}

void hg_db_close(hg_db_t *db) {
  if (db != NULL) db->ops->close(db);
}

hg_db_engine_t hg_db_engine(const hg_db_t *db) { return db->ops->engine; }
const char *hg_db_address(const hg_db_t *db) { return db->address; }

int hg_db_prepare(hg_db_t *db, const char *sql, hg_stmt_t **out) {
  *out = NULL;
  if (db == NULL || sql == NULL) return HG_EINVAL;
  return db->ops->prepare(db, sql, out);
}

void hg_db_release(hg_stmt_t *st) {
  if (st != NULL) st->db->ops->release(st);
}

void hg_db_reset(hg_stmt_t *st) { st->db->ops->reset(st); }

int hg_db_bind_int64(hg_stmt_t *st, int i, int64_t v) { return st->db->ops->bind_int64(st, i, v); }

int hg_db_bind_text(hg_stmt_t *st, int i, const char *s, int len) {
  if (s == NULL) return st->db->ops->bind_null(st, i);
  return st->db->ops->bind_text(st, i, s, len < 0 ? strlen(s) : (size_t)len);
}

int hg_db_bind_blob(hg_stmt_t *st, int i, const void *p, size_t len) {
  return st->db->ops->bind_blob(st, i, len > 0 ? p : "", len);
}

int hg_db_bind_null(hg_stmt_t *st, int i) { return st->db->ops->bind_null(st, i); }
int hg_db_step(hg_stmt_t *st) { return st->db->ops->step(st); }
int hg_db_defer(hg_stmt_t *st) { return st->db->ops->defer(st); }
int hg_db_flush(hg_db_t *db) { return db->ops->flush(db); }
int hg_db_nextval(hg_db_t *db, const char *table, int64_t *out) { return db->ops->nextval(db, table, out); }
int hg_db_column_is_null(hg_stmt_t *st, int col) { return st->db->ops->column_is_null(st, col); }
int64_t hg_db_column_int64(hg_stmt_t *st, int col) { return st->db->ops->column_int64(st, col); }
int64_t hg_db_column_int64_or(hg_stmt_t *st, int col, int64_t dflt) {
  return hg_db_column_is_null(st, col) ? dflt : hg_db_column_int64(st, col);
}
const char *hg_db_column_text(hg_stmt_t *st, int col) { return st->db->ops->column_text(st, col); }
const void *hg_db_column_blob(hg_stmt_t *st, int col) { return st->db->ops->column_blob(st, col); }
size_t hg_db_column_bytes(hg_stmt_t *st, int col) { return st->db->ops->column_bytes(st, col); }
int64_t hg_db_changes(hg_db_t *db) { return db->ops->changes(db); }
int hg_db_in_transaction(hg_db_t *db) { return db->ops->in_transaction(db); }
const char *hg_db_errmsg(hg_db_t *db) { return db != NULL ? db->ops->errmsg(db) : ""; }
void *hg_db_native(hg_db_t *db) { return db->ops->native(db); }

char *hg_db_int64_array(const int64_t *v, size_t n) {
  char *a = malloc(n * 21 + 3); /* 20 characters and a comma each, the braces, the NUL */
  if (a == NULL) return NULL;
  size_t len = 0;
  a[len++] = '{';
  for (size_t i = 0; i < n; i++) {
    if (i > 0) a[len++] = ',';
    len += hg_fmt_i64(a + len, v[i]);
  }
  a[len++] = '}';
  a[len] = '\0';
  return a;
}

int hg_db_exec(hg_db_t *db, const char *sql, const char *op) {
  int rc = db->ops->exec(db, sql);
  return rc == 0 ? 0 : hg_db_fail(db, rc, op);
}

int hg_db_fail(hg_db_t *db, int rc, const char *op) {
  /* The engines' messages name tables and columns, never bound values. */
  hg_log(HG_LOG_ERROR, db != NULL && hg_db_engine(db) == HG_DB_PG ? "postgresql error" : "sqlite error", "op", op,
         "code", hg_strerror(rc), "error", hg_db_errmsg(db), NULL);
  return rc;
}
