/* db_pg.c: the PostgreSQL backend of db.h, over libpq.
 *
 * Design choices:
 *
 * - One connection, driven with libpq's asynchronous calls in non-blocking
 *   mode, so that every round trip waits in poll() under a deadline
 *   (HG_PG_STATEMENT_TIMEOUT_MS). A statement past its deadline is
 *   cancelled and the connection is marked broken: from then on every call
 *   fails at once with HG_EUNAVAIL, as it does once libpq reports the
 *   connection bad. Reconnecting is the store thread's job (it closes this
 *   connection and opens another).
 *
 * - SQL is written with "?" and "?N" (db.h); each statement's text is
 *   rewritten once, when it is prepared, to PostgreSQL's "$N", skipping
 *   quoted literals and identifiers and comments. "?" takes SQLite's number:
 *   one more than the largest number used so far.
 *
 * - Parameters are sent typed: int64 as int8 in binary (8 bytes, big
 *   endian), text as text (copied into the statement with a NUL, since libpq
 *   reads text values up to their NUL and db.h's text need not have one),
 *   blobs as bytea in binary, NULL as an untyped NULL.
 *
 * - With HG_DB_CACHE, a statement is kept per SQL address (the string
 *   literal) and prepared on the server under a name of its own ("hgN") at
 *   its first step, when its parameters' types are known. A later run whose
 *   bindings do not fit those types runs unnamed instead (a NULL fits any
 *   type; int64 and text also fit a parameter the server typed itself, sent
 *   as text then). A cached statement handed out and not yet released is
 *   never handed out again: a nested prepare of the same SQL gets a
 *   statement of its own. Without HG_DB_CACHE, beyond HG_PG_CACHE_MAX
 *   cached statements, or for that nested caller, statements run unnamed
 *   (PQsendQueryParams: parsed on every run, nothing kept on the server).
 *   A server that no longer knows a prepared statement (SQLSTATE 26000, say
 *   after DISCARD ALL) bumps the connection's generation, so every cached
 *   statement prepares again; the failed run is retried once when no
 *   transaction was open.
 *
 * - Results come back in binary and whole (not row by row): a statement
 *   holds its PGresult until its next run, reset or release, so nested
 *   statements can run while an outer one is still between rows. Columns
 *   are decoded by their type: integers, booleans, oids, numerics and
 *   floats read as int64 (text holding digits too); text types as text;
 *   bytea as bytes. Other types (timestamps, ...) must be cast in the SQL.
 *
 * - Messages: the primary message of the server's error only, never its
 *   DETAIL (which shows the row's values); for data exceptions (class 22)
 *   only the part before the first ':' (the rest quotes the bad input).
 *   Connection failures name the address with its password hidden.
 */
#include "store/db_internal.h"

#include "base/common.h"
#include "base/log.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long one statement (or one exec) may take, send to last result. */
#define HG_PG_STATEMENT_TIMEOUT_MS 5000
/* How many statements a connection keeps prepared at most. */
#define HG_PG_CACHE_MAX 128
/* hg_db_nextval: values reserved per round trip, and tables served. */
#define HG_PG_SEQ_BLOCK 1024 /* as generate_series's bound in pg_nextval's SQL */
#define HG_PG_SEQ_TABLES 4
/* Deferred statements sent before their answers are read anyway: bounds
 * what libpq buffers for a very large group. */
#define HG_PG_PIPE_MAX 4096
/* A cached statement's text buffers larger than this are freed on release,
 * so that one huge payload does not stay allocated for the process's life. */
#define HG_PG_KEEP_BUF 65536

/* Type oids (server/catalog/pg_type.h, stable across versions). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_NAME 19
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_TEXT 25
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_BPCHAR 1042
#define OID_VARCHAR 1043
#define OID_NUMERIC 1700

typedef enum { P_NULL = 0, P_INT, P_TEXT, P_BLOB } ptype_t;

typedef struct param {
  ptype_t type;
  int64_t i;
  const void *blob; /* borrowed (db.h) */
  size_t len;       /* text or blob length */
  char *buf;        /* the text's copy, NUL-terminated */
  size_t cap;
  char num[24]; /* the int64 as sent: 8 bytes big endian, or decimal text */
} param_t;

typedef struct pg_db pg_db_t;

typedef struct pg_stmt {
  hg_stmt_t base;
  const char *key; /* the caller's SQL: the cache key */
  char *sql;       /* rewritten to $N */
  int nparams;
  param_t *params;
  /* Cached statements only. */
  int cached;
  int busy;     /* handed out and not released */
  unsigned gen; /* the connection generation it was prepared in; 0: not prepared */
  char name[16];
  Oid *prep_types; /* the types it was prepared with */
  Oid *srv_types;  /* what the server made of those sent as 0 (untyped), or NULL */
  /* The current run. */
  PGresult *res;
  int row; /* the current row; -1 before the first */
  int started;
  char *colbuf; /* integers formatted as text: 24 bytes a column */
  int colbuf_n;
} pg_stmt_t;

struct pg_db {
  hg_db_t base;
  PGconn *conn;
  int broken;
  unsigned gen;       /* bumped when the server forgets prepared statements */
  unsigned next_name; /* names are never reused on a connection */
  int64_t changes;
  pg_stmt_t *cache[HG_PG_CACHE_MAX];
  int ncache;
  char errmsg[256];
  /* Deferred statements (hg_db_defer): sent in pipeline mode, answers not
   * read until pipe_drain. */
  int in_pipe;
  int piped;
  int64_t last_io; /* now_ms() when the server last answered */
  /* Sequence values reserved ahead (hg_db_nextval), per table. */
  struct {
    char table[32];
    int64_t vals[HG_PG_SEQ_BLOCK];
    int n, next;
  } seqs[HG_PG_SEQ_TABLES];
};

static const hg_db_ops_t pg_ops;

/* ------------------------------------------------------------------ */
/* Messages and error codes                                           */

static void set_errmsg(pg_db_t *db, const char *msg) {
  /* Keep the first line only (libpq's own messages continue with hints),
   * without the severity a server message starts with. */
  if (strncmp(msg, "FATAL:  ", 8) == 0 || strncmp(msg, "ERROR:  ", 8) == 0) msg += 8;
  size_t n = strcspn(msg, "\n");
  if (n >= sizeof(db->errmsg)) n = sizeof(db->errmsg) - 1;
  memcpy(db->errmsg, msg, n);
  db->errmsg[n] = '\0';
}

/* The connection is gone or cannot be trusted any more; everything fails
 * fast from now on. */
static int set_broken(pg_db_t *db, const char *why) {
  db->broken = 1;
  if (why != NULL)
    set_errmsg(db, why);
  else if (db->conn != NULL && PQerrorMessage(db->conn)[0] != '\0')
    set_errmsg(db, PQerrorMessage(db->conn));
  else
    set_errmsg(db, "connection lost");
  return HG_EUNAVAIL;
}

static int is_class(const char *state, const char *cls) { return state != NULL && strncmp(state, cls, 2) == 0; }

/* SQLSTATE to HG_E* (db.h's list). */
static int code_of(const char *s) {
  if (s == NULL || strlen(s) != 5) return HG_EIO;
  if (strcmp(s, "23505") == 0) return HG_EEXIST;
  if (strcmp(s, "23503") == 0) return HG_ENOTFOUND;
  if (is_class(s, "23")) return HG_EINVAL;
  if (strcmp(s, "22001") == 0) return HG_ETOOBIG;
  if (is_class(s, "22")) return HG_EINVAL;
  /* A serialization failure, a deadlock, a lock not free in time, or a
   * statement cancelled (a DBA's statement_timeout or pg_cancel_backend;
   * the store's own deadline breaks the connection instead): nothing of
   * it was kept, and trying again may work. */
  if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "55P03") == 0 || strcmp(s, "57014") == 0)
    return HG_EBUSY;
  /* A read-only transaction where a write was expected: the server is a
   * standby now (a failover) or was made read-only. As an unreachable
   * server: the store connects again, which may reach the new primary. */
  if (strcmp(s, "25006") == 0) return HG_EUNAVAIL;
  if (strcmp(s, "53100") == 0 || strcmp(s, "53400") == 0) return HG_ENOSPC;
  if (strcmp(s, "53200") == 0) return HG_ENOMEM;
  if (is_class(s, "08") || strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 || strcmp(s, "57P03") == 0)
    return HG_EUNAVAIL;
  if (strcmp(s, "25P02") == 0) return HG_EIO;
  if (is_class(s, "42")) return HG_EINVAL;
  return HG_EIO;
}

/* Records a failed result's message and returns its code. */
static int result_error(pg_db_t *db, const PGresult *res) {
  const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  if (PQstatus(db->conn) == CONNECTION_BAD) return set_broken(db, primary);
  if (primary == NULL) primary = PQerrorMessage(db->conn);
  if (primary == NULL || primary[0] == '\0') primary = "statement failed";
  size_t n = strcspn(primary, "\n");
  /* A data exception's message quotes the offending input after a colon
   * ("invalid input syntax for type bigint: \"x\""): keep what precedes. */
  if (is_class(state, "22")) n = strcspn(primary, ":\n");
  if (n > 200) n = 200;
  snprintf(db->errmsg, sizeof(db->errmsg), "%.*s (SQLSTATE %s)", (int)n, primary, state != NULL ? state : "?????");
  int rc = code_of(state);
  if (rc == HG_EUNAVAIL) db->broken = 1;
  /* A syntax or catalog error is our bug, not the input's: say so loudly. */
  if (is_class(state, "42")) hg_log(HG_LOG_ERROR, "postgresql: bad SQL", "error", db->errmsg, NULL);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Waiting under a deadline                                            */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int timed_out(pg_db_t *db) {
  char buf[256];
  PGcancel *c = PQgetCancel(db->conn);
  /* Ask the server to stop the statement, so it does not hold its locks
   * for nothing; the connection is given up either way. */
  if (c != NULL) {
    (void)PQcancel(c, buf, sizeof(buf));
    PQfreeCancel(c);
  }
  char msg[96];
  snprintf(msg, sizeof(msg), "statement timed out after %d ms", HG_PG_STATEMENT_TIMEOUT_MS);
  return set_broken(db, msg);
}

/* Waits until the socket is readable (and writable, when want_write);
 * returns 0, or HG_EUNAVAIL past the deadline or on a dead socket. */
static int wait_socket(pg_db_t *db, int want_write, int64_t deadline) {
  int fd = PQsocket(db->conn);
  if (fd < 0) return set_broken(db, NULL);
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return timed_out(db);
    struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (want_write ? POLLOUT : 0))};
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return set_broken(db, "poll failed");
  }
}

/* Pushes the query just queued out to the server (non-blocking mode). */
static int flush_out(pg_db_t *db, int64_t deadline) {
  for (;;) {
    int r = PQflush(db->conn);
    if (r == 0) return 0;
    if (r < 0) return set_broken(db, NULL);
    int rc = wait_socket(db, 1, deadline);
    if (rc != 0) return rc;
    /* The server may answer (an error) before taking all our input: read
     * it, or both sides wait on full buffers. */
    if (!PQconsumeInput(db->conn)) return set_broken(db, NULL);
  }
}

static int failed_result(const PGresult *r) {
  ExecStatusType s = PQresultStatus(r);
  return s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY;
}

/* Reads from the socket until the next result (or the end of them) can
 * be taken without blocking. Returns 0 or HG_EUNAVAIL. */
static int await_result(pg_db_t *db, int64_t deadline) {
  while (PQisBusy(db->conn)) {
    int rc = wait_socket(db, 0, deadline);
    if (rc != 0) return rc;
    if (!PQconsumeInput(db->conn)) return set_broken(db, NULL);
  }
  return 0;
}

/* Reads every result of the query just sent. Keeps the first failed one,
 * else the last one with rows, else the last; *out gets it (the caller
 * clears it). Returns 0 or HG_EUNAVAIL (then *out is NULL). */
static int collect(pg_db_t *db, int64_t deadline, PGresult **out) {
  *out = NULL;
  int rc = flush_out(db, deadline);
  while (rc == 0) {
    if ((rc = await_result(db, deadline)) != 0) break;
    PGresult *r = PQgetResult(db->conn);
    if (r == NULL) break;
    if (*out == NULL || (!failed_result(*out) && (failed_result(r) || PQresultStatus(r) == PGRES_TUPLES_OK ||
                                                  PQresultStatus(*out) != PGRES_TUPLES_OK))) {
      PQclear(*out);
      *out = r;
    } else {
      PQclear(r);
    }
  }
  if (rc != 0) {
    PQclear(*out);
    *out = NULL;
    return rc;
  }
  if (*out == NULL && PQstatus(db->conn) == CONNECTION_BAD) return set_broken(db, NULL);
  db->last_io = now_ms();
  return 0;
}

/* Whether calls may go to the server at all. */
static int usable(pg_db_t *db) {
  if (db->broken) return HG_EUNAVAIL;
  if (PQstatus(db->conn) == CONNECTION_BAD) return set_broken(db, NULL);
  return 0;
}

/* A result's status as 0 or HG_E*; records INSERT/UPDATE/DELETE counts. */
static int finish(pg_db_t *db, PGresult *res) {
  if (res == NULL) return result_error(db, NULL);
  ExecStatusType s = PQresultStatus(res);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY) return result_error(db, res);
  /* SQLite counts only rows written, so a SELECT leaves the count alone. */
  const char *cmd = PQcmdStatus(res);
  if (strncmp(cmd, "INSERT ", 7) == 0 || strncmp(cmd, "UPDATE ", 7) == 0 || strncmp(cmd, "DELETE ", 7) == 0 ||
      strncmp(cmd, "MERGE ", 6) == 0)
    db->changes = strtoll(PQcmdTuples(res), NULL, 10);
  return 0;
}

/* ------------------------------------------------------------------ */
/* SQL rewriting: ? and ?N to $N                                       */

/* Sets *out to the rewritten text (malloc'd) and *nparams to the number of
 * parameters; returns 0, HG_ENOMEM, or HG_EINVAL for a ?N out of range
 * (SQLite's limit: 1 to 32766). */
static int rewrite(const char *sql, char **out_sql, int *nparams) {
  size_t n = strlen(sql);
  /* "?" becomes at most "$32766": 6 more bytes each, at worst. */
  size_t cap = n * 7 + 1;
  char *out = malloc(cap);
  if (out == NULL) return HG_ENOMEM;
  size_t o = 0;
  int max = 0;
  for (size_t i = 0; i < n;) {
    char c = sql[i];
    if (c == '\'' || c == '"') {
      /* A quoted literal or identifier; a doubled quote inside is an
       * escaped one, which the loop handles as an end and a new start. */
      size_t j = i + 1;
      while (j < n && sql[j] != c)
        j++;
      if (j < n) j++;
      memcpy(out + o, sql + i, j - i);
      o += j - i;
      i = j;
    } else if (c == '-' && sql[i + 1] == '-') {
      size_t j = i;
      while (j < n && sql[j] != '\n')
        j++;
      memcpy(out + o, sql + i, j - i);
      o += j - i;
      i = j;
    } else if (c == '/' && sql[i + 1] == '*') {
      const char *end = strstr(sql + i + 2, "*/");
      size_t j = end != NULL ? (size_t)(end + 2 - sql) : n;
      memcpy(out + o, sql + i, j - i);
      o += j - i;
      i = j;
    } else if (c == '?') {
      long num;
      size_t j = i + 1;
      if (sql[j] >= '0' && sql[j] <= '9') {
        num = 0;
        while (sql[j] >= '0' && sql[j] <= '9' && num <= 32766)
          num = num * 10 + (sql[j++] - '0');
        if (num < 1 || num > 32766) {
          free(out);
          return HG_EINVAL;
        }
      } else {
        num = max + 1;
      }
      if (num > max) max = (int)num;
      o += (size_t)snprintf(out + o, cap - o, "$%ld", num);
      i = j;
    } else {
      out[o++] = c;
      i++;
    }
  }
  out[o] = '\0';
  *out_sql = out;
  *nparams = max;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Statements                                                          */

static void clear_result(pg_stmt_t *st) {
  PQclear(st->res);
  st->res = NULL;
  st->row = -1;
  st->started = 0;
}

static void stmt_free(pg_stmt_t *st) {
  if (st == NULL) return;
  clear_result(st);
  for (int i = 0; i < st->nparams && st->params != NULL; i++)
    free(st->params[i].buf);
  free(st->params);
  free(st->prep_types);
  free(st->srv_types);
  free(st->colbuf);
  free(st->sql);
  free(st);
}

static int stmt_new(pg_db_t *db, const char *sql, pg_stmt_t **out) {
  int rc = HG_ENOMEM;
  pg_stmt_t *st = calloc(1, sizeof(*st));
  if (st == NULL) goto fail;
  st->base.db = &db->base;
  st->key = sql;
  st->row = -1;
  if ((rc = rewrite(sql, &st->sql, &st->nparams)) != 0) goto fail;
  rc = HG_ENOMEM;
  if (st->nparams > 0 && (st->params = calloc((size_t)st->nparams, sizeof(*st->params))) == NULL) goto fail;
  *out = st;
  return 0;
fail:
  stmt_free(st);
  return rc;
}

static int pg_prepare(hg_db_t *d, const char *sql, hg_stmt_t **out) {
  pg_db_t *db = (pg_db_t *)d;
  int rc = usable(db);
  if (rc != 0) return rc;
  pg_stmt_t *st = NULL;
  if (d->flags & HG_DB_CACHE) {
    for (int i = 0; i < db->ncache; i++) {
      if (db->cache[i]->key == sql) {
        st = db->cache[i];
        break;
      }
    }
    if (st != NULL && !st->busy) {
      st->busy = 1;
      *out = &st->base;
      return 0;
    }
    /* Either busy (a nested caller: it gets one of its own, uncached) or
     * new (cached when there is room). */
    int cache_it = st == NULL && db->ncache < HG_PG_CACHE_MAX;
    if ((rc = stmt_new(db, sql, &st)) != 0) return rc;
    if (cache_it) {
      st->cached = 1;
      st->busy = 1;
      db->cache[db->ncache++] = st;
    }
  } else if ((rc = stmt_new(db, sql, &st)) != 0) {
    return rc;
  }
  *out = &st->base;
  return 0;
}

static void unbind_all(pg_stmt_t *st) {
  for (int i = 0; i < st->nparams; i++) {
    param_t *p = &st->params[i];
    p->type = P_NULL;
    p->blob = NULL;
    if (p->cap > HG_PG_KEEP_BUF) {
      free(p->buf);
      p->buf = NULL;
      p->cap = 0;
    }
  }
}

static void pg_release(hg_stmt_t *s) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  if (!st->cached) {
    stmt_free(st);
    return;
  }
  clear_result(st);
  unbind_all(st);
  st->busy = 0;
}

static void pg_reset(hg_stmt_t *s) { clear_result((pg_stmt_t *)s); }

static param_t *param_at(pg_stmt_t *st, int i) {
  if (i < 1 || i > st->nparams) return NULL;
  /* Rebinding while rows are pending would leave them describing another
   * run: start afresh, as SQLite requires a reset here. */
  if (st->started) clear_result(st);
  return &st->params[i - 1];
}

static int pg_bind_int64(hg_stmt_t *s, int i, int64_t v) {
  param_t *p = param_at((pg_stmt_t *)s, i);
  if (p == NULL) return HG_EINVAL;
  p->type = P_INT;
  p->i = v;
  return 0;
}

static int pg_bind_text(hg_stmt_t *s, int i, const char *t, size_t len) {
  param_t *p = param_at((pg_stmt_t *)s, i);
  if (p == NULL) return HG_EINVAL;
  /* libpq sends a text-format value up to its NUL: copy it with one. A NUL
   * inside the text would cut it short, and PostgreSQL text holds no NUL. */
  if (memchr(t, '\0', len) != NULL) return HG_EINVAL;
  if (p->cap < len + 1) {
    size_t cap = len + 1 < 64 ? 64 : len + 1;
    char *b = realloc(p->buf, cap);
    if (b == NULL) return HG_ENOMEM;
    p->buf = b;
    p->cap = cap;
  }
  memcpy(p->buf, t, len);
  p->buf[len] = '\0';
  p->type = P_TEXT;
  p->len = len;
  return 0;
}

static int pg_bind_blob(hg_stmt_t *s, int i, const void *b, size_t len) {
  param_t *p = param_at((pg_stmt_t *)s, i);
  if (p == NULL) return HG_EINVAL;
  if (len > INT32_MAX) return HG_ETOOBIG;
  p->type = P_BLOB;
  p->blob = b;
  p->len = len;
  return 0;
}

static int pg_bind_null(hg_stmt_t *s, int i) {
  param_t *p = param_at((pg_stmt_t *)s, i);
  if (p == NULL) return HG_EINVAL;
  p->type = P_NULL;
  return 0;
}

static Oid oid_of(ptype_t t) {
  switch (t) {
  case P_INT: return OID_INT8;
  case P_TEXT: return OID_TEXT;
  case P_BLOB: return OID_BYTEA;
  default: return 0;
  }
}

/* Whether the current bindings fit the types st was prepared with. */
static int fits(const pg_stmt_t *st) {
  for (int i = 0; i < st->nparams; i++) {
    ptype_t t = st->params[i].type;
    Oid want = st->prep_types[i];
    if (t == P_NULL || oid_of(t) == want) continue;
    if (want == 0 && (t == P_INT || t == P_TEXT)) continue; /* sent as text: the server parses it */
    /* Bytes for a parameter the server typed as bytea (prepared with a
     * NULL there: a request without a response body, say). */
    if (want == 0 && t == P_BLOB && st->srv_types != NULL && st->srv_types[i] == OID_BYTEA) continue;
    return 0;
  }
  return 1;
}

/* The values, lengths, formats and types of a run, in arrays of nparams
 * (on the stack for small statements). as_text_int: send int64 as decimal
 * text for parameters the server typed itself at prepare time. */
typedef struct {
  const char **values;
  int *lengths, *formats;
  Oid *types;
} run_args_t;

static void fill_args(pg_stmt_t *st, const run_args_t *a, int prepared) {
  for (int i = 0; i < st->nparams; i++) {
    param_t *p = &st->params[i];
    int untyped = prepared && st->prep_types[i] == 0;
    a->types[i] = oid_of(p->type);
    a->formats[i] = 0;
    a->lengths[i] = 0;
    a->values[i] = NULL;
    switch (p->type) {
    case P_INT:
      if (untyped) {
        snprintf(p->num, sizeof(p->num), "%" PRId64, p->i);
        a->values[i] = p->num;
      } else {
        uint64_t u = (uint64_t)p->i;
        for (int b = 7; b >= 0; b--, u >>= 8)
          p->num[b] = (char)(u & 0xff);
        a->values[i] = p->num;
        a->lengths[i] = 8;
        a->formats[i] = 1;
      }
      break;
    case P_TEXT: a->values[i] = p->buf; break;
    case P_BLOB:
      a->values[i] = p->blob;
      a->lengths[i] = (int)p->len;
      a->formats[i] = 1;
      break;
    case P_NULL: break;
    }
  }
}

/* Records that st is prepared on the server as name with types. */
static int note_prepared(pg_db_t *db, pg_stmt_t *st, const char *name, const Oid *types) {
  if (st->prep_types == NULL && st->nparams > 0 && (st->prep_types = malloc((size_t)st->nparams * sizeof(Oid))) == NULL)
    return HG_ENOMEM;
  if (st->nparams > 0) memcpy(st->prep_types, types, (size_t)st->nparams * sizeof(Oid));
  hg_copy(st->name, sizeof(st->name), name);
  st->gen = db->gen;
  return 0;
}

/* Room for a run's arguments: on the stack up to 16 parameters. */
typedef struct {
  const char *values[16];
  int lengths[16], formats[16];
  Oid types[16];
} run_space_t;

/* Points a at space, or at one allocation (*heap, freed by the caller)
 * for more than 16 parameters. Returns 0 or HG_ENOMEM. */
static int args_init(run_args_t *a, run_space_t *space, int np, void **heap) {
  *a = (run_args_t){space->values, space->lengths, space->formats, space->types};
  *heap = NULL;
  if (np <= 16) return 0;
  if ((*heap = malloc((size_t)np * (sizeof(char *) + 2 * sizeof(int) + sizeof(Oid)))) == NULL) return HG_ENOMEM;
  a->values = *heap;
  a->lengths = (int *)(a->values + np);
  a->formats = a->lengths + np;
  a->types = (Oid *)(a->formats + np);
  return 0;
}

/* Prepares st on the server under a fresh name with the types of its
 * current bindings. */
static int server_prepare(pg_db_t *db, pg_stmt_t *st, const Oid *types, int64_t deadline) {
  char name[16];
  snprintf(name, sizeof(name), "hg%u", ++db->next_name);
  if (!PQsendPrepare(db->conn, name, st->sql, st->nparams, types)) return set_broken(db, NULL);
  PGresult *res;
  int rc = collect(db, deadline, &res);
  if (rc == 0) rc = finish(db, res);
  PQclear(res);
  if (rc != 0) return rc;
  /* Parameters left for the server to type (bound NULL the first time):
   * what it made of them, so that bytes bound there later still run the
   * prepared statement (fits) instead of an unnamed one parsed and
   * planned on every run. One more round trip, once. */
  int untyped = 0;
  for (int i = 0; i < st->nparams && !untyped; i++) untyped = types[i] == 0;
  free(st->srv_types);
  st->srv_types = NULL;
  if (untyped) {
    if (!PQsendDescribePrepared(db->conn, name)) return set_broken(db, NULL);
    if ((rc = collect(db, deadline, &res)) != 0) return rc;
    if ((rc = finish(db, res)) == 0 && PQnparams(res) == st->nparams &&
        (st->srv_types = malloc((size_t)st->nparams * sizeof(Oid))) != NULL)
      for (int i = 0; i < st->nparams; i++) st->srv_types[i] = PQparamtype(res, i);
    PQclear(res);
    if (rc != 0) return rc;
  }
  return note_prepared(db, st, name, types);
}

/* Sends st with its bindings and reads its result into st->res. */
static int run(pg_db_t *db, pg_stmt_t *st) {
  int64_t deadline = now_ms() + HG_PG_STATEMENT_TIMEOUT_MS;
  int np = st->nparams;
  run_space_t space;
  run_args_t a;
  void *heap = NULL;
  if (args_init(&a, &space, np, &heap) != 0) return HG_ENOMEM;
  int rc = 0;
  for (int attempt = 0;; attempt++) {
    int named = 0;
    if (st->cached) {
      if (st->gen != db->gen) {
        fill_args(st, &a, 0);
        if ((rc = server_prepare(db, st, a.types, deadline)) != 0) break;
      }
      named = fits(st);
    }
    fill_args(st, &a, named);
    int sent = named ? PQsendQueryPrepared(db->conn, st->name, np, a.values, a.lengths, a.formats, 1)
                     : PQsendQueryParams(db->conn, st->sql, np, a.types, a.values, a.lengths, a.formats, 1);
    if (!sent) {
      rc = set_broken(db, NULL);
      break;
    }
    if ((rc = collect(db, deadline, &st->res)) != 0) break;
    if ((rc = finish(db, st->res)) == 0) break;
    /* The server lost our prepared statements (DISCARD ALL, a pooler
     * handing us another session): prepare them all again; retry once
     * when no transaction was aborted by the failure. */
    const char *state = PQresultErrorField(st->res, PG_DIAG_SQLSTATE);
    if (named && state != NULL && strcmp(state, "26000") == 0) {
      db->gen++;
      if (attempt == 0 && PQtransactionStatus(db->conn) == PQTRANS_IDLE) {
        PQclear(st->res);
        st->res = NULL;
        continue;
      }
    }
    break;
  }
  free(heap);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Deferred statements: pipeline mode                                  */

/* Reads the answers of every deferred statement: a sync point ends the
 * pipeline, the server answers each statement in order (those after a
 * failure as aborted), then the sync. Returns 0 or the first failure. */
static int pipe_drain_keep(pg_db_t *db, PGresult **keep) {
  if (!db->in_pipe) return 0;
  int64_t deadline = now_ms() + HG_PG_STATEMENT_TIMEOUT_MS;
  int err = 0, rc, lost_prepared = 0;
  PGresult *last = NULL;
  if (!PQpipelineSync(db->conn)) return set_broken(db, NULL);
  rc = flush_out(db, deadline);
  int nulls = 0;
  while (rc == 0) {
    if ((rc = await_result(db, deadline)) != 0) break;
    PGresult *r = PQgetResult(db->conn);
    if (r == NULL) {
      /* The end of one statement's answers; more than one in a row per
       * statement means the connection has nothing more to give. */
      if (++nulls > 2 * db->piped + 4 || PQstatus(db->conn) == CONNECTION_BAD) rc = set_broken(db, NULL);
      continue;
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      break;
    }
    if (st == PGRES_FATAL_ERROR && err == 0) {
      err = result_error(db, r);
      /* The server lost our prepared statements (DISCARD ALL, a pooler
       * handing us another session): every one is prepared again. */
      const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      if (state != NULL && strcmp(state, "26000") == 0) lost_prepared = 1;
    }
    else if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) (void)finish(db, r);
    if (keep != NULL) {
      PQclear(last);
      last = r;
    } else {
      PQclear(r);
    }
  }
  if (rc == 0 && !PQexitPipelineMode(db->conn)) rc = set_broken(db, "cannot leave pipeline mode");
  if (rc != 0) {
    PQclear(last);
    return rc;
  }
  db->in_pipe = 0;
  db->piped = 0;
  db->last_io = now_ms();
  if (lost_prepared) db->gen++;
  if (keep != NULL && err == 0) *keep = last;
  else PQclear(last);
  return err;
}

static int pipe_drain(pg_db_t *db) { return pipe_drain_keep(db, NULL); }

static int pg_flush(hg_db_t *d) { return pipe_drain((pg_db_t *)d); }

/* Sends st in pipeline mode (entered when not yet in it), prepared first
 * in the same pipeline when it must be. Its answer is read by the next
 * pipe_drain. */
static int pipe_send(pg_db_t *db, pg_stmt_t *st) {
  int rc = 0;
  int np = st->nparams;
  run_space_t space;
  run_args_t a;
  void *heap = NULL;
  if (args_init(&a, &space, np, &heap) != 0) return HG_ENOMEM;
  int named = 0;
  if (st->cached) {
    if (st->gen != db->gen) {
      /* Prepared on its own, outside any pipeline (a round trip, once per
       * statement and connection): what is prepared then never depends on
       * whether a pipeline's statements failed. (Prepared inside one, a
       * prepare aborted with the pipeline had to be done again under a new
       * name, every cached statement with it, and the old names stayed on
       * the server for the connection's life.) */
      if (db->in_pipe) rc = pipe_drain(db);
      if (rc == 0) {
        fill_args(st, &a, 0);
        rc = server_prepare(db, st, a.types, now_ms() + HG_PG_STATEMENT_TIMEOUT_MS);
      }
    }
    named = rc == 0 && fits(st);
  }
  if (rc == 0 && !db->in_pipe) {
    if (!PQenterPipelineMode(db->conn)) rc = set_broken(db, "cannot enter pipeline mode");
    else db->in_pipe = 1;
  }
  if (rc == 0) {
    fill_args(st, &a, named);
    int sent = named ? PQsendQueryPrepared(db->conn, st->name, np, a.values, a.lengths, a.formats, 1)
                     : PQsendQueryParams(db->conn, st->sql, np, a.types, a.values, a.lengths, a.formats, 1);
    if (!sent) rc = set_broken(db, NULL);
    else db->piped++;
  }
  free(heap);
  return rc;
}

/* Whether a statement may start a pipeline: the connection was heard from
 * lately. A connection idle for long may have been closed by the server
 * (idle_session_timeout, a restart); a statement run at once finds that
 * out before anything else is sent, where a deferred one would only show
 * it in a later call (the store runs a group again on a new connection
 * only when its BEGIN failed: store.c). */
#define HG_PG_FRESH_MS 1000

static int pg_defer(hg_stmt_t *s) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  pg_db_t *db = (pg_db_t *)s->db;
  int rc = usable(db);
  if (rc != 0) return rc;
  if (!db->in_pipe && now_ms() - db->last_io > HG_PG_FRESH_MS) {
    for (;;) {
      if ((rc = hg_db_step(s)) < 0) return rc;
      if (rc == HG_DB_DONE) return 0;
    }
  }
  if (db->piped >= HG_PG_PIPE_MAX && (rc = pipe_drain(db)) != 0) return rc;
  if ((rc = pipe_send(db, st)) != 0) return rc;
  /* Out as far as the socket takes it now; the rest goes with the next
   * statements or the sync. */
  if (PQflush(db->conn) < 0) rc = set_broken(db, NULL);
  return rc;
}

static int pg_nextval(hg_db_t *d, const char *table, int64_t *out) {
  pg_db_t *db = (pg_db_t *)d;
  int slot = -1;
  for (int i = 0; i < HG_PG_SEQ_TABLES && slot < 0; i++)
    if (strcmp(db->seqs[i].table, table) == 0 || db->seqs[i].table[0] == '\0') slot = i;
  if (slot < 0 || strlen(table) >= sizeof(db->seqs[0].table)) return HG_EINVAL;
  if (db->seqs[slot].next < db->seqs[slot].n) {
    *out = db->seqs[slot].vals[db->seqs[slot].next++];
    return 0;
  }
  /* The sequence is looked up once (OFFSET 0 keeps the subquery from
   * being merged into the outer one), not once per value: per value, the
   * lookup cost the server five times what nextval does (3 us a value
   * against 0.6 us, measured in psql for 2,560). */
  static const char sql[] = "SELECT nextval(s.q) FROM (SELECT CAST(pg_get_serial_sequence(?1, 'seq') AS regclass) AS q "
                            "OFFSET 0) AS s, generate_series(1, 1024)";
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(d, sql, &st);
  int n = 0;
  if (rc == 0) {
    hg_db_bind_text(st, 1, table, -1);
    while ((rc = hg_db_step(st)) == HG_DB_ROW && n < HG_PG_SEQ_BLOCK) db->seqs[slot].vals[n++] = hg_db_column_int64(st, 0);
  }
  hg_db_release(st);
  if (rc < 0) return rc;
  if (n == 0) return HG_EIO;
  hg_copy(db->seqs[slot].table, sizeof(db->seqs[slot].table), table);
  db->seqs[slot].n = n;
  db->seqs[slot].next = 1;
  *out = db->seqs[slot].vals[0];
  return 0;
}

static int pg_step(hg_stmt_t *s) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  pg_db_t *db = (pg_db_t *)s->db;
  if (!st->started) {
    int rc = usable(db);
    if (rc != 0) return rc;
    clear_result(st);
    if (db->in_pipe) {
      /* Deferred statements are waiting: this one goes after them in the
       * same round trip, its answer the last before the sync. A deferred
       * failure aborts it and is the answer, as when they were read
       * first. */
      if ((rc = pipe_send(db, st)) == 0) rc = pipe_drain_keep(db, &st->res);
      if (rc != 0) {
        clear_result(st);
        return rc;
      }
      st->started = 1;
    } else {
      st->started = 1;
      rc = run(db, st);
    }
    if (rc != 0) {
      /* The next step runs it again, as after a reset. */
      clear_result(st);
      return rc;
    }
  }
  if (st->res != NULL && PQresultStatus(st->res) == PGRES_TUPLES_OK && st->row + 1 < PQntuples(st->res)) {
    st->row++;
    return HG_DB_ROW;
  }
  /* Done: like SQLite's automatic reset, a further step runs it again. */
  st->started = 0;
  st->row = -1;
  return HG_DB_DONE;
}

/* ------------------------------------------------------------------ */
/* Columns                                                             */

static int valid_col(const pg_stmt_t *st, int col) {
  return st->res != NULL && st->row >= 0 && st->row < PQntuples(st->res) && col >= 0 && col < PQnfields(st->res);
}

static int pg_column_is_null(hg_stmt_t *s, int col) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  return !valid_col(st, col) || PQgetisnull(st->res, st->row, col);
}

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* numeric's binary form: ndigits, weight, sign, dscale (int16 each), then
 * base-10000 digits; the integer part is what an int64 column wants
 * (SUM over BIGINT is numeric). */
static int64_t numeric_to_int64(const unsigned char *p, int len) {
  if (len < 8) return 0;
  int ndigits = (int16_t)be(p, 2), weight = (int16_t)be(p + 2, 2);
  unsigned sign = (unsigned)be(p + 4, 2);
  if (sign == 0xC000 || len < 8 + 2 * ndigits) return 0; /* NaN, or malformed */
  /* Unsigned, so that a value past int64 wraps instead of overflowing. */
  uint64_t v = 0;
  for (int i = 0; i <= weight; i++)
    v = v * 10000 + (i < ndigits ? be(p + 8 + 2 * i, 2) : 0);
  return sign == 0x4000 ? (int64_t)(0 - v) : (int64_t)v;
}

/* A float as int64, saturating: converting an out-of-range one is undefined. */
static int64_t clamp(double d) {
  if (d != d) return 0;
  if (d >= 9223372036854775807.0) return INT64_MAX;
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)d;
}

static int64_t pg_column_int64(hg_stmt_t *s, int col) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  if (pg_column_is_null(s, col)) return 0;
  const unsigned char *v = (const unsigned char *)PQgetvalue(st->res, st->row, col);
  int len = PQgetlength(st->res, st->row, col);
  switch (PQftype(st->res, col)) {
  case OID_INT8: return len == 8 ? (int64_t)be(v, 8) : 0;
  case OID_INT4: return len == 4 ? (int32_t)be(v, 4) : 0;
  case OID_INT2: return len == 2 ? (int16_t)be(v, 2) : 0;
  case OID_OID: return len == 4 ? (int64_t)(uint32_t)be(v, 4) : 0;
  case OID_BOOL: return len == 1 && v[0] != 0;
  case OID_NUMERIC: return numeric_to_int64(v, len);
  case OID_FLOAT8: {
    uint64_t u = be(v, 8);
    double d;
    memcpy(&d, &u, sizeof(d));
    return len == 8 ? clamp(d) : 0;
  }
  case OID_FLOAT4: {
    uint32_t u = (uint32_t)be(v, 4);
    float f;
    memcpy(&f, &u, sizeof(f));
    return len == 4 ? clamp(f) : 0;
  }
  default:
    /* Text holding digits, as SQLite converts it; libpq ends every value,
     * binary ones too, with a NUL. */
    return strtoll((const char *)v, NULL, 10);
  }
}

static int is_integer_type(Oid t) {
  return t == OID_INT8 || t == OID_INT4 || t == OID_INT2 || t == OID_OID || t == OID_BOOL || t == OID_NUMERIC ||
         t == OID_FLOAT4 || t == OID_FLOAT8;
}

static const char *pg_column_text(hg_stmt_t *s, int col) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  if (pg_column_is_null(s, col)) return NULL;
  if (is_integer_type(PQftype(st->res, col))) {
    /* A number asked for as text: formatted into the statement's buffer,
     * one slot per column so two columns can be held at once. */
    int n = PQnfields(st->res);
    if (st->colbuf_n < n) {
      char *b = realloc(st->colbuf, (size_t)n * 24);
      if (b == NULL) return NULL;
      st->colbuf = b;
      st->colbuf_n = n;
    }
    char *slot = st->colbuf + (size_t)col * 24;
    snprintf(slot, 24, "%" PRId64, pg_column_int64(s, col));
    return slot;
  }
  /* text, varchar, name, bpchar, json, bytea...: the value's bytes, which
   * libpq follows with a NUL. */
  return PQgetvalue(st->res, st->row, col);
}

static size_t pg_column_bytes(hg_stmt_t *s, int col) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  if (pg_column_is_null(s, col)) return 0;
  if (is_integer_type(PQftype(st->res, col))) return strlen(pg_column_text(s, col));
  return (size_t)PQgetlength(st->res, st->row, col);
}

static const void *pg_column_blob(hg_stmt_t *s, int col) {
  pg_stmt_t *st = (pg_stmt_t *)s;
  if (pg_column_bytes(s, col) == 0) return NULL;
  if (is_integer_type(PQftype(st->res, col))) return pg_column_text(s, col);
  return PQgetvalue(st->res, st->row, col);
}

/* ------------------------------------------------------------------ */
/* The connection                                                      */

static int64_t pg_changes(hg_db_t *d) { return ((pg_db_t *)d)->changes; }

static int pg_exec(hg_db_t *d, const char *sql) {
  pg_db_t *db = (pg_db_t *)d;
  int rc = usable(db);
  /* A deferred failure drained here is the answer, and sql does not run
   * (a COMMIT of the aborted transaction would quietly roll back), except
   * for a ROLLBACK (TO): that is how a caller undoes the failure, and it
   * must reach the server, which takes it after the sync point. */
  if (rc == 0) rc = pipe_drain(db);
  if (rc != 0 && (db->broken || strncmp(sql, "ROLLBACK", 8) != 0)) return rc;
  int64_t deadline = now_ms() + HG_PG_STATEMENT_TIMEOUT_MS;
  if (!PQsendQuery(db->conn, sql)) return set_broken(db, NULL);
  PGresult *res;
  if ((rc = collect(db, deadline, &res)) != 0) return rc;
  rc = finish(db, res);
  PQclear(res);
  return rc;
}

static int pg_in_transaction(hg_db_t *d) {
  pg_db_t *db = (pg_db_t *)d;
  if (db->broken) return 0;
  /* Deferred statements cannot end a transaction (a failure leaves it
   * open and aborted until rolled back): it is open until they are read. */
  if (db->in_pipe) return 1;
  /* INERROR too: a failed statement leaves the transaction open (and
   * aborted) until the caller rolls back, to a savepoint or entirely. */
  PGTransactionStatusType t = PQtransactionStatus(db->conn);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static const char *pg_errmsg(hg_db_t *d) { return ((pg_db_t *)d)->errmsg; }
static void *pg_native(hg_db_t *d) { return ((pg_db_t *)d)->conn; }

static void pg_close(hg_db_t *d) {
  pg_db_t *db = (pg_db_t *)d;
  for (int i = 0; i < db->ncache; i++)
    stmt_free(db->cache[i]);
  if (db->conn != NULL) PQfinish(db->conn);
  hg_db__clear(d);
  free(db);
}

/* Notices (client_min_messages keeps them to warnings and worse) go to our
 * log, not to libpq's default of stderr. */
static void on_notice(void *arg, const PGresult *res) {
  (void)arg;
  const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  hg_log(HG_LOG_WARN, "postgresql notice", "message", m != NULL ? m : "", NULL);
}

int hg_db__pg_open(hg_db_t **out, const char *uri, unsigned flags, char *err, size_t errlen) {
  *out = NULL;
  pg_db_t *db = calloc(1, sizeof(*db));
  if (db == NULL || hg_db__init(&db->base, &pg_ops, uri, flags) != 0) {
    free(db);
    hg_set_err(err, errlen, "out of memory");
    return HG_ENOMEM;
  }
  /* Keywords are applied in order and a later one wins; the URI expands
   * in place of dbname, so its own connect_timeout overrides our default. */
  const char *keys[] = {"connect_timeout", "dbname", NULL};
  const char *vals[] = {"5", uri, NULL};
  db->conn = PQconnectdbParams(keys, vals, 1);
  int rc = 0;
  if (db->conn == NULL) {
    hg_set_err(err, errlen, "%s: out of memory", db->base.address);
    rc = HG_ENOMEM;
    goto fail;
  }
  if (PQstatus(db->conn) != CONNECTION_OK) {
    /* libpq's message names the host and port it tried, never the
     * password; keep its first line and our hidden address. */
    set_errmsg(db, PQerrorMessage(db->conn));
    hg_set_err(err, errlen, "cannot connect to %s: %s", db->base.address, db->errmsg);
    rc = HG_EUNAVAIL;
    goto fail;
  }
  PQsetErrorVerbosity(db->conn, PQERRORS_TERSE);
  PQsetNoticeReceiver(db->conn, on_notice, NULL);
  if (PQsetnonblocking(db->conn, 1) != 0) {
    hg_set_err(err, errlen, "%s: cannot use non-blocking mode", db->base.address);
    rc = HG_EIO;
    goto fail;
  }
  db->gen = 1;
  /* lock_timeout: a statement waiting for a row another session holds
   * (a node cut off in the middle of its transaction) gives up as
   * HG_EBUSY within 2 s, before the 5 s deadline would take the whole
   * connection down. idle_in_transaction_session_timeout and
   * idle_session_timeout: the server ends a session whose node went
   * silent (its locks, and its hold on its node id, go with it); a live
   * node's store thread is never idle that long, as its poll runs every
   * cluster.poll (at most 60 s). */
  rc = pg_exec(&db->base, (flags & HG_DB_READONLY)
                              ? "SET synchronous_commit = on; SET client_min_messages = warning; "
                                "SET lock_timeout = '2s'; SET idle_in_transaction_session_timeout = '30s'; "
                                "SET default_transaction_read_only = on"
                              : "SET synchronous_commit = on; SET client_min_messages = warning; "
                                "SET lock_timeout = '2s'; SET idle_in_transaction_session_timeout = '30s'; "
                                "SET idle_session_timeout = '120s'");
  if (rc != 0) {
    hg_set_err(err, errlen, "%s: %s", db->base.address, db->errmsg);
    goto fail;
  }
  *out = &db->base;
  return 0;
fail:
  pg_close(&db->base);
  return rc;
}

static const hg_db_ops_t pg_ops = {
    .engine = HG_DB_PG,
    .close = pg_close,
    .prepare = pg_prepare,
    .release = pg_release,
    .reset = pg_reset,
    .bind_int64 = pg_bind_int64,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .defer = pg_defer,
    .flush = pg_flush,
    .nextval = pg_nextval,
    .column_is_null = pg_column_is_null,
    .column_int64 = pg_column_int64,
    .column_text = pg_column_text,
    .column_blob = pg_column_blob,
    .column_bytes = pg_column_bytes,
    .changes = pg_changes,
    .exec = pg_exec,
    .in_transaction = pg_in_transaction,
    .errmsg = pg_errmsg,
    .native = pg_native,
};
