/* test_db.c: db.h's API against a real PostgreSQL (db_pg.c).
 *
 * Runs when HG_TEST_PG_URI names a database it may create tables in (for
 * example the URI printed by "scripts/pg-tmp start DIR"); otherwise it says
 * so and exits 77, which ctest reports as skipped. */
#include "base/common.h"
#include "hgtest.h"
#include "store/db.h"

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *uri;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static hg_db_t *open_db(unsigned flags) {
  hg_db_t *db = NULL;
  char err[256] = "";
  int rc = hg_db_open(&db, uri, flags, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "cannot open %s: %s\n", uri, err);
  CHECK_EQ_INT(rc, 0);
  return db;
}

/* Runs sql, which must answer one row with one integer. */
static int64_t query_int(hg_db_t *db, const char *sql) {
  hg_stmt_t *st = NULL;
  int64_t v = -1;
  CHECK_EQ_INT(hg_db_prepare(db, sql, &st), 0);
  if (st == NULL) return v;
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  v = hg_db_column_int64(st, 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  hg_db_release(st);
  return v;
}

static void make_tables(hg_db_t *db) {
  CHECK_EQ_INT(hg_db_exec(db,
                          "DROP TABLE IF EXISTS child; DROP TABLE IF EXISTS item;"
                          "CREATE TABLE item (id BIGINT PRIMARY KEY, name TEXT UNIQUE, data BYTEA, n BIGINT);"
                          "CREATE TABLE child (id BIGINT PRIMARY KEY, item_id BIGINT NOT NULL REFERENCES item(id))",
                          "test setup"),
               0);
}

static void test_engine_and_address(void) {
  CHECK_EQ_INT(hg_db_engine_of("postgresql://h/db"), HG_DB_PG);
  CHECK_EQ_INT(hg_db_engine_of("postgres://h/db"), HG_DB_PG);
  CHECK_EQ_INT(hg_db_engine_of("/var/lib/hookgate/hg.db"), HG_DB_SQLITE);
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  CHECK_EQ_INT(hg_db_engine(db), HG_DB_PG);
  CHECK_EQ_STR(hg_db_address(db), uri);
  CHECK(hg_db_native(db) != NULL);
  CHECK(!hg_db_in_transaction(db));
  /* The session is what db.h promises: durable commits. */
  PGconn *c = hg_db_native(db);
  CHECK_EQ_STR(PQparameterStatus(c, "server_encoding"), "UTF8");
  hg_stmt_t *st = NULL;
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT current_setting('synchronous_commit')", &st), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_STR(hg_db_column_text(st, 0), "on");
  hg_db_release(st);
  hg_db_close(db);
}

/* connect_timeout defaults to 5 s, and the URI's own value wins. */
static void test_connect_timeout(void) {
  hg_db_t *db = open_db(0);
  if (db == NULL) return;
  PQconninfoOption *opts = PQconninfo(hg_db_native(db));
  for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
    if (strcmp(o->keyword, "connect_timeout") == 0) CHECK_EQ_STR(o->val, "5");
  PQconninfoFree(opts);
  hg_db_close(db);

  char u[512];
  snprintf(u, sizeof(u), "%s%cconnect_timeout=7", uri, strchr(uri, '?') != NULL ? '&' : '?');
  char err[256];
  CHECK_EQ_INT(hg_db_open(&db, u, 0, err, sizeof(err)), 0);
  if (db == NULL) return;
  opts = PQconninfo(hg_db_native(db));
  for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
    if (strcmp(o->keyword, "connect_timeout") == 0) CHECK_EQ_STR(o->val, "7");
  PQconninfoFree(opts);
  hg_db_close(db);
}

static void test_password_hidden(void) {
  const char *bad = "postgresql://u:sekrit@127.0.0.1:1/x?connect_timeout=1";
  hg_db_t *db = (hg_db_t *)1;
  char err[512] = "";
  int64_t t0 = now_ms();
  CHECK_EQ_INT(hg_db_open(&db, bad, 0, err, sizeof(err)), HG_EUNAVAIL);
  CHECK(now_ms() - t0 < 3000);
  CHECK(db == NULL);
  CHECK(err[0] != '\0');
  CHECK(strstr(err, "sekrit") == NULL);
  CHECK(strstr(err, "postgresql://u:***@127.0.0.1:1/x") != NULL);

  /* A password given as a parameter is hidden too. */
  char u[512];
  snprintf(u, sizeof(u), "%s%cpassword=sekrit", uri, strchr(uri, '?') != NULL ? '&' : '?');
  CHECK_EQ_INT(hg_db_open(&db, u, 0, err, sizeof(err)), 0); /* trust: the password is not checked */
  if (db == NULL) return;
  CHECK(strstr(hg_db_address(db), "sekrit") == NULL);
  CHECK(strstr(hg_db_address(db), "password=***") != NULL);
  hg_db_close(db);
}

static void test_round_trip(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  hg_stmt_t *st = NULL;

  /* "?" in order of appearance, every type, and NULLs. */
  static const unsigned char blob[] = {0x00, 0x01, 0xff, 0x00, 'a', 0x00};
  CHECK_EQ_INT(hg_db_prepare(db, "INSERT INTO item (id, name, data, n) VALUES (?, ?, ?, ?)", &st), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 1, 1), 0);
  CHECK_EQ_INT(hg_db_bind_text(st, 2, "first-and-more", 5), 0); /* a length shorter than the string */
  CHECK_EQ_INT(hg_db_bind_blob(st, 3, blob, sizeof(blob)), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 4, INT64_MIN), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  CHECK_EQ_INT(hg_db_changes(db), 1);
  CHECK_EQ_INT(hg_db_bind_int64(st, 5, 0), HG_EINVAL); /* no such parameter */
  CHECK_EQ_INT(hg_db_bind_int64(st, 0, 0), HG_EINVAL);
  hg_db_release(st);

  CHECK_EQ_INT(hg_db_prepare(db, "INSERT INTO item (id, name, data, n) VALUES (?, ?, ?, ?)", &st), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 1, 2), 0);
  CHECK_EQ_INT(hg_db_bind_null(st, 2), 0);
  CHECK_EQ_INT(hg_db_bind_null(st, 3), 0);
  CHECK_EQ_INT(hg_db_bind_null(st, 4), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  hg_db_release(st);

  /* "?N", a number used twice, and a '?' inside a quoted literal that must
   * stay a question mark; a long text. */
  size_t long_len = 200000;
  char *long_text = malloc(long_len + 1);
  for (size_t i = 0; i < long_len; i++)
    long_text[i] = (char)('a' + i % 26);
  long_text[long_len] = '\0';
  CHECK_EQ_INT(
      hg_db_prepare(
          db, "INSERT INTO item (id, name, data, n) VALUES (?2, 'what?' || ?1 || '?x', NULL, ?2 * 10) -- id ?3?", &st),
      0);
  CHECK_EQ_INT(hg_db_bind_text(st, 1, long_text, -1), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 2, 3), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 3, 99), HG_EINVAL); /* ?3 is in a comment */
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  hg_db_release(st);
  /* The caller's buffer may change once the statement ran. */
  memset(long_text, 'z', long_len);

  CHECK_EQ_INT(hg_db_prepare(db, "SELECT id, name, data, n, \"n\" AS \"what?\" FROM item ORDER BY id", &st), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 1);
  CHECK_EQ_STR(hg_db_column_text(st, 1), "first");
  CHECK_EQ_INT(hg_db_column_bytes(st, 1), 5);
  CHECK_EQ_INT(hg_db_column_bytes(st, 2), sizeof(blob));
  CHECK(hg_db_column_blob(st, 2) != NULL && memcmp(hg_db_column_blob(st, 2), blob, sizeof(blob)) == 0);
  CHECK(hg_db_column_int64(st, 3) == INT64_MIN);
  CHECK_EQ_STR(hg_db_column_text(st, 3), "-9223372036854775808");
  CHECK_EQ_STR(hg_db_column_text(st, 0), "1"); /* two integer columns as text at once */
  CHECK_EQ_STR(hg_db_column_text(st, 3), "-9223372036854775808");
  CHECK(!hg_db_column_is_null(st, 1));

  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 2);
  CHECK(hg_db_column_is_null(st, 1));
  CHECK(hg_db_column_text(st, 1) == NULL);
  CHECK(hg_db_column_is_null(st, 2));
  CHECK(hg_db_column_blob(st, 2) == NULL);
  CHECK_EQ_INT(hg_db_column_bytes(st, 2), 0);
  CHECK(hg_db_column_is_null(st, 3));
  CHECK_EQ_INT(hg_db_column_int64(st, 3), 0);

  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 3);
  const char *name = hg_db_column_text(st, 1);
  CHECK(name != NULL && strlen(name) == long_len + 7);
  CHECK(name != NULL && strncmp(name, "what?abc", 8) == 0);
  CHECK(name != NULL && strcmp(name + 5 + long_len, "?x") == 0);
  CHECK_EQ_INT(hg_db_column_int64(st, 3), 30);
  CHECK_EQ_INT(hg_db_column_int64(st, 4), 30);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  hg_db_release(st);
  free(long_text);

  /* "?" after "?2" takes the number after the largest so far (SQLite's
   * rule): here 3. */
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT ?2 - ?1, ?", &st), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 1, 10), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 2, 15), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 3, 7), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 5);
  CHECK_EQ_INT(hg_db_column_int64(st, 1), 7);
  hg_db_release(st);

  /* A parameter number out of SQLite's range is refused. */
  st = (hg_stmt_t *)1;
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT ?32767", &st), HG_EINVAL);
  CHECK(st == NULL);

  /* Aggregates come back as other types: SUM(BIGINT) is numeric, COUNT is
   * int8, a comparison is boolean, a digits-only text reads as a number. */
  CHECK_EQ_INT(query_int(db, "SELECT SUM(n) FROM item WHERE n > 0"), 30);
  CHECK_EQ_INT(query_int(db, "SELECT CAST(-12345678901234 AS NUMERIC)"), -12345678901234LL);
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM item"), 3);
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) > 2 FROM item"), 1);
  CHECK_EQ_INT(query_int(db, "SELECT CAST(7 AS INTEGER)"), 7);
  CHECK_EQ_INT(query_int(db, "SELECT '123'"), 123);
  CHECK_EQ_INT(query_int(db, "SELECT CAST(2.9 AS DOUBLE PRECISION)"), 2);
  hg_db_close(db);
}

static void test_returning_and_changes(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  hg_stmt_t *st = NULL;
  for (int i = 1; i <= 3; i++) {
    CHECK_EQ_INT(hg_db_prepare(db, "INSERT INTO item (id, n) VALUES (?, 0) RETURNING id * 100", &st), 0);
    CHECK_EQ_INT(hg_db_bind_int64(st, 1, i), 0);
    CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
    CHECK_EQ_INT(hg_db_column_int64(st, 0), i * 100);
    CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
    hg_db_release(st);
  }
  CHECK_EQ_INT(hg_db_changes(db), 1);
  CHECK_EQ_INT(hg_db_exec(db, "UPDATE item SET n = n + 1", "test"), 0);
  CHECK_EQ_INT(hg_db_changes(db), 3);
  /* A SELECT leaves the count of the last write alone. */
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM item"), 3);
  CHECK_EQ_INT(hg_db_changes(db), 3);
  CHECK_EQ_INT(hg_db_prepare(db, "DELETE FROM item WHERE id > ?", &st), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 1, 1), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  CHECK_EQ_INT(hg_db_changes(db), 2);
  hg_db_release(st);
  CHECK_EQ_INT(hg_db_prepare(db, "DELETE FROM item WHERE id > ?", &st), 0);
  CHECK_EQ_INT(hg_db_bind_int64(st, 1, 1), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  CHECK_EQ_INT(hg_db_changes(db), 0);
  hg_db_release(st);
  hg_db_close(db);
}

static const char *insert_named = "INSERT INTO item (id, name) VALUES (?, ?)";

static int insert_item(hg_db_t *db, int64_t id, const char *name) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, insert_named, &st);
  if (rc != 0) return rc;
  hg_db_bind_int64(st, 1, id);
  hg_db_bind_text(st, 2, name, -1);
  rc = hg_db_step(st);
  hg_db_release(st);
  return rc;
}

static void test_constraint_errors(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  CHECK_EQ_INT(insert_item(db, 1, "dup-value-4711"), HG_DB_DONE);
  /* UNIQUE on name: the message names the constraint, never the value. */
  CHECK_EQ_INT(insert_item(db, 2, "dup-value-4711"), HG_EEXIST);
  CHECK(strstr(hg_db_errmsg(db), "item_name_key") != NULL);
  CHECK(strstr(hg_db_errmsg(db), "4711") == NULL);
  /* PRIMARY KEY too. */
  CHECK_EQ_INT(insert_item(db, 1, "other"), HG_EEXIST);
  CHECK(strstr(hg_db_errmsg(db), "item_pkey") != NULL);
  /* A FOREIGN KEY to nothing. */
  CHECK_EQ_INT(hg_db_exec(db, "INSERT INTO child (id, item_id) VALUES (1, 999)", "test (expected to fail)"),
               HG_ENOTFOUND);
  CHECK(strstr(hg_db_errmsg(db), "999") == NULL);
  /* NOT NULL is another constraint: HG_EINVAL. */
  CHECK_EQ_INT(hg_db_exec(db, "INSERT INTO child (id, item_id) VALUES (1, NULL)", "test (expected to fail)"),
               HG_EINVAL);
  /* Bad input data: HG_EINVAL, and the message does not quote it. */
  hg_stmt_t *st = NULL;
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT CAST(? AS BIGINT)", &st), 0);
  CHECK_EQ_INT(hg_db_bind_text(st, 1, "not-a-number-31337", -1), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_EINVAL);
  CHECK(strstr(hg_db_errmsg(db), "31337") == NULL);
  CHECK(strstr(hg_db_errmsg(db), "invalid input syntax") != NULL);
  hg_db_release(st);
  /* Too long for a VARCHAR(n): HG_ETOOBIG. */
  CHECK_EQ_INT(hg_db_exec(db, "SELECT CAST('abcdef' AS VARCHAR(3)) || CAST(CAST('abcdef' AS TEXT) AS CHAR(2))", "test"),
               0); /* an explicit cast truncates, a store does not */
  CHECK_EQ_INT(hg_db_exec(db, "CREATE TEMP TABLE short (s VARCHAR(3))", "test"), 0);
  CHECK_EQ_INT(hg_db_exec(db, "INSERT INTO short VALUES ('abcdef')", "test (expected to fail)"), HG_ETOOBIG);
  /* A syntax error is our bug: HG_EINVAL. */
  CHECK_EQ_INT(hg_db_exec(db, "SELEC 1", "test (expected to fail)"), HG_EINVAL);
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT nope FROM item", &st), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_EINVAL);
  hg_db_release(st);
  /* The connection is still good after all this. */
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM item"), 1);
  hg_db_close(db);
}

/* Conditions that may clear answer as such (503 with Retry-After at the
 * API), not as an I/O error (500): a statement cancelled by the server
 * (57014, a DBA's statement_timeout) is a busy store; a write refused
 * because the session is read-only (25006: a standby after a failover, a
 * server made read-only) is an unreachable one, so the store connects
 * again. */
static void test_transient_errors(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  CHECK_EQ_INT(hg_db_exec(db, "SET statement_timeout = 50", "test"), 0);
  CHECK_EQ_INT(hg_db_exec(db, "SELECT pg_sleep(2)", "test (expected to fail)"), HG_EBUSY);
  CHECK(strstr(hg_db_errmsg(db), "statement timeout") != NULL);
  CHECK_EQ_INT(hg_db_exec(db, "SET statement_timeout = 0", "test"), 0);
  CHECK_EQ_INT(hg_db_exec(db, "SET default_transaction_read_only = on", "test"), 0);
  CHECK_EQ_INT(insert_item(db, 7, "read-only"), HG_EUNAVAIL);
  CHECK(strstr(hg_db_errmsg(db), "read-only") != NULL);
  hg_db_close(db);
}

static const char *count_sql = "SELECT COUNT(*) FROM item WHERE id > ?";
static const char *list_sql = "SELECT id FROM item ORDER BY id";

static void test_cache(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  for (int i = 1; i <= 5; i++)
    CHECK_EQ_INT(insert_item(db, i, NULL), HG_DB_DONE);

  /* The same SQL a thousand times: one statement, prepared once. */
  hg_stmt_t *first = NULL;
  for (int i = 0; i < 1000; i++) {
    hg_stmt_t *st = NULL;
    CHECK_EQ_INT(hg_db_prepare(db, count_sql, &st), 0);
    if (first == NULL) first = st;
    if (st != first) {
      CHECK(st == first);
      hg_db_release(st);
      break;
    }
    hg_db_bind_int64(st, 1, i % 6);
    if (hg_db_step(st) != HG_DB_ROW || hg_db_column_int64(st, 0) != 5 - i % 6) {
      CHECK(!"the cached statement answered wrong");
      hg_db_release(st);
      break;
    }
    hg_db_release(st);
  }
  CHECK_EQ_INT(
      query_int(
          db,
          "SELECT COUNT(*) FROM pg_prepared_statements WHERE statement = 'SELECT COUNT(*) FROM item WHERE id > $1'"),
      1);

  /* Reset keeps the bindings; a run after DONE runs again. */
  hg_stmt_t *st = NULL;
  CHECK_EQ_INT(hg_db_prepare(db, count_sql, &st), 0);
  hg_db_bind_int64(st, 1, 3);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 2);
  hg_db_reset(st);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 2);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 2);
  hg_db_release(st);

  /* Nested: the outer statement is between rows when the same SQL is
   * prepared again; the inner one is another statement, and both walk all
   * their rows. */
  hg_stmt_t *outer = NULL, *inner = NULL;
  CHECK_EQ_INT(hg_db_prepare(db, list_sql, &outer), 0);
  int64_t want = 1;
  while (hg_db_step(outer) == HG_DB_ROW) {
    CHECK_EQ_INT(hg_db_column_int64(outer, 0), want);
    if (want == 2) {
      CHECK_EQ_INT(hg_db_prepare(db, list_sql, &inner), 0);
      CHECK(inner != outer);
      int n = 0;
      while (hg_db_step(inner) == HG_DB_ROW)
        CHECK_EQ_INT(hg_db_column_int64(inner, 0), ++n);
      CHECK_EQ_INT(n, 5);
      hg_db_release(inner);
      /* The inner one may even write meanwhile. */
      CHECK_EQ_INT(hg_db_exec(db, "UPDATE item SET n = 1 WHERE id = 5", "test"), 0);
    }
    want++;
  }
  CHECK_EQ_INT(want, 6);
  hg_db_release(outer);
  /* Released, it is the cached one again. */
  hg_stmt_t *again = NULL;
  CHECK_EQ_INT(hg_db_prepare(db, list_sql, &again), 0);
  CHECK(again == outer);
  hg_db_release(again);

  /* A parameter bound NULL, then text, then an integer, on one cached
   * statement: each run gets the right answer. */
  static const char *cast_sql = "SELECT CAST(?1 AS TEXT), ?2";
  const char *want_text[] = {NULL, "abc", "42", NULL};
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(hg_db_prepare(db, cast_sql, &st), 0);
    if (i == 1)
      hg_db_bind_text(st, 1, "abc", -1);
    else if (i == 2)
      hg_db_bind_int64(st, 1, 42);
    else
      hg_db_bind_null(st, 1);
    if (i == 3)
      hg_db_bind_blob(st, 2, "\0\1", 2); /* a type the first run did not have */
    else
      hg_db_bind_int64(st, 2, i);
    CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
    if (want_text[i] == NULL)
      CHECK(hg_db_column_text(st, 0) == NULL);
    else
      CHECK_EQ_STR(hg_db_column_text(st, 0), want_text[i]);
    if (i == 3)
      CHECK_EQ_INT(hg_db_column_bytes(st, 1), 2);
    else
      CHECK_EQ_INT(hg_db_column_int64(st, 1), i);
    hg_db_release(st);
  }

  /* The server forgets every prepared statement: the next run prepares
   * again and succeeds. */
  CHECK_EQ_INT(hg_db_exec(db, "DEALLOCATE ALL", "test"), 0);
  CHECK_EQ_INT(hg_db_prepare(db, count_sql, &st), 0);
  hg_db_bind_int64(st, 1, 0);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 5);
  hg_db_release(st);
  hg_db_close(db);

  /* The cache is bounded: beyond 128 statements, they run unprepared
   * (and still answer). The SQL must keep its address, as a literal does. */
  db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  static char many[200][32];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 200; i++) {
      snprintf(many[i], sizeof(many[i]), "SELECT %d", i);
      CHECK_EQ_INT(hg_db_prepare(db, many[i], &st), 0);
      if (hg_db_step(st) != HG_DB_ROW || hg_db_column_int64(st, 0) != i) CHECK(!"a statement answered wrong");
      hg_db_release(st);
    }
  }
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM pg_prepared_statements"), 128);
  hg_db_close(db);

  /* Without HG_DB_CACHE nothing is prepared on the server. */
  db = open_db(0);
  if (db == NULL) return;
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(hg_db_prepare(db, count_sql, &st), 0);
    hg_db_bind_int64(st, 1, 0);
    CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
    CHECK_EQ_INT(hg_db_column_int64(st, 0), 5);
    hg_db_release(st);
  }
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM pg_prepared_statements"), 0);
  hg_db_close(db);
}

static void test_transactions(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  CHECK(hg_db_in_transaction(db));
  CHECK_EQ_INT(insert_item(db, 1, "a"), HG_DB_DONE);
  CHECK_EQ_INT(hg_db_exec(db, "SAVEPOINT s", "test"), 0);
  CHECK_EQ_INT(insert_item(db, 2, "a"), HG_EEXIST);
  /* The transaction is aborted, not ended: still open until rolled back. */
  CHECK(hg_db_in_transaction(db));
  CHECK_EQ_INT(insert_item(db, 3, "c"), HG_EIO); /* 25P02: in failed transaction */
  CHECK_EQ_INT(hg_db_exec(db, "ROLLBACK TO SAVEPOINT s", "test"), 0);
  CHECK(hg_db_in_transaction(db));
  CHECK_EQ_INT(insert_item(db, 3, "c"), HG_DB_DONE);
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  CHECK(!hg_db_in_transaction(db));
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM item WHERE id IN (1, 3)"), 2);

  /* A rolled back transaction leaves nothing. */
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN; DELETE FROM item; ROLLBACK", "test"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM item"), 2);
  hg_db_close(db);

  /* A read-only session refuses writes. */
  db = open_db(HG_DB_READONLY);
  if (db == NULL) return;
  CHECK_EQ_INT(query_int(db, "SELECT COUNT(*) FROM item"), 2);
  CHECK(insert_item(db, 9, "z") < 0);
  CHECK(strstr(hg_db_errmsg(db), "read-only") != NULL);
  hg_db_close(db);
}

/* Deferred statements: many in one round trip, in order, with their
 * failure showing at the next step (whatever statement that is), after
 * which the transaction rolls back to its savepoint as usual. */
static void test_deferred(void) {
  static const char ins[] = "INSERT INTO item (id, name, n) VALUES (?, ?, ?)";
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  hg_stmt_t *st = NULL;
  /* Past the pipeline's bound (4096), so that it is drained on the way. */
  for (int i = 1; i <= 5000; i++) {
    char name[32];
    snprintf(name, sizeof(name), "d%d", i);
    CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
    hg_db_bind_int64(st, 1, i);
    hg_db_bind_text(st, 2, name, -1); /* a stack buffer: copied when sent */
    hg_db_bind_int64(st, 3, i * 2);
    CHECK_EQ_INT(hg_db_defer(st), 0);
    hg_db_release(st);
  }
  CHECK(hg_db_in_transaction(db));
  CHECK_EQ_INT(hg_db_flush(db), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM item WHERE n = id * 2"), 5000);
  CHECK_EQ_INT(query_int(db, "SELECT count(DISTINCT name) FROM item"), 5000);

  /* A deferred failure shows at the next step, which did not run. */
  CHECK_EQ_INT(hg_db_exec(db, "SAVEPOINT s", "test"), 0);
  CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
  hg_db_bind_int64(st, 1, 9001);
  hg_db_bind_text(st, 2, "d1", -1); /* name is UNIQUE */
  hg_db_bind_int64(st, 3, 0);
  CHECK_EQ_INT(hg_db_defer(st), 0);
  hg_db_bind_int64(st, 1, 9002);
  hg_db_bind_text(st, 2, "fresh", -1);
  CHECK_EQ_INT(hg_db_defer(st), 0); /* aborted with the one before */
  hg_db_release(st);
  CHECK(hg_db_in_transaction(db));
  CHECK_EQ_INT(insert_item(db, 9003, "other"), HG_EEXIST);
  CHECK(strstr(hg_db_errmsg(db), "d1") == NULL); /* the message quotes no value */
  CHECK_EQ_INT(hg_db_exec(db, "ROLLBACK TO SAVEPOINT s", "test"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM item WHERE id > 9000"), 0);
  /* The cached statement works again after the failure (prepared anew). */
  CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
  hg_db_bind_int64(st, 1, 9004);
  hg_db_bind_text(st, 2, "after", -1);
  hg_db_bind_int64(st, 3, 1);
  CHECK_EQ_INT(hg_db_defer(st), 0);
  hg_db_release(st);
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM item"), 5001);
  hg_db_close(db);
}

/* A step after deferred statements goes out in the same pipeline: it sees
 * what they did, its rows and counts are its own, and a deferred failure
 * before it is its answer (it did not run). */
static void test_step_after_deferred(void) {
  static const char ins[] = "INSERT INTO item (id, name, n) VALUES (?, ?, ?)";
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  hg_stmt_t *st = NULL;
  for (int i = 1; i <= 3; i++) {
    char name[16];
    snprintf(name, sizeof(name), "p%d", i);
    CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
    hg_db_bind_int64(st, 1, i);
    hg_db_bind_text(st, 2, name, -1);
    hg_db_bind_int64(st, 3, i * 10);
    CHECK_EQ_INT(hg_db_defer(st), 0);
    hg_db_release(st);
  }
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT id, n FROM item WHERE id >= ? ORDER BY id", &st), 0);
  hg_db_bind_int64(st, 1, 2);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 2);
  CHECK_EQ_INT(hg_db_column_int64(st, 1), 20);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 3);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  hg_db_release(st);
  /* An UPDATE stepped behind a deferred one counts its own rows only. */
  CHECK_EQ_INT(hg_db_prepare(db, "UPDATE item SET n = n + 1 WHERE id = ?", &st), 0);
  hg_db_bind_int64(st, 1, 1);
  CHECK_EQ_INT(hg_db_defer(st), 0);
  hg_db_release(st);
  CHECK_EQ_INT(hg_db_prepare(db, "UPDATE item SET n = n + 1 WHERE id >= ?", &st), 0);
  hg_db_bind_int64(st, 1, 2);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_DONE);
  hg_db_release(st);
  CHECK_EQ_INT(hg_db_changes(db), 2);
  CHECK_EQ_INT(query_int(db, "SELECT sum(n) FROM item"), 63);
  /* A deferred failure, then a step: the step answers the failure and its
   * statement did not run. */
  CHECK_EQ_INT(hg_db_exec(db, "SAVEPOINT s", "test"), 0);
  CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
  hg_db_bind_int64(st, 1, 7);
  hg_db_bind_text(st, 2, "p1", -1); /* name is UNIQUE */
  hg_db_bind_int64(st, 3, 0);
  CHECK_EQ_INT(hg_db_defer(st), 0);
  hg_db_release(st);
  CHECK_EQ_INT(hg_db_prepare(db, "UPDATE item SET n = 0 WHERE id = ?", &st), 0);
  hg_db_bind_int64(st, 1, 3);
  CHECK_EQ_INT(hg_db_step(st), HG_EEXIST);
  hg_db_release(st);
  CHECK_EQ_INT(hg_db_exec(db, "ROLLBACK TO SAVEPOINT s", "test"), 0);
  CHECK_EQ_INT(query_int(db, "SELECT n FROM item WHERE id = 3"), 31);
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  hg_db_close(db);
}

/* Failing jobs, as the store runs them (a deferred SAVEPOINT, a statement
 * that fails, ROLLBACK TO), leave no prepared statements behind on the
 * server: what is prepared never depends on a pipeline's outcome. */
static void test_failures_leak_no_prepared(void) {
  static const char ins[] = "INSERT INTO item (id, name, n) VALUES (?, ?, ?)";
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  make_tables(db);
  CHECK_EQ_INT(insert_item(db, 1, "taken"), HG_DB_DONE);
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  hg_stmt_t *st = NULL;
  int64_t before = -1;
  for (int i = 0; i < 50; i++) {
    CHECK_EQ_INT(hg_db_prepare(db, "SAVEPOINT j", &st), 0);
    CHECK_EQ_INT(hg_db_defer(st), 0);
    hg_db_release(st);
    CHECK_EQ_INT(hg_db_prepare(db, ins, &st), 0);
    hg_db_bind_int64(st, 1, 100 + i);
    hg_db_bind_text(st, 2, "taken", -1); /* UNIQUE */
    hg_db_bind_int64(st, 3, 0);
    CHECK_EQ_INT(hg_db_step(st), HG_EEXIST);
    hg_db_release(st);
    CHECK_EQ_INT(hg_db_exec(db, "ROLLBACK TO SAVEPOINT j", "test"), 0);
    if (i == 0) before = query_int(db, "SELECT count(*) FROM pg_prepared_statements");
  }
  CHECK_EQ_INT(query_int(db, "SELECT count(*) FROM pg_prepared_statements"), before);
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test"), 0);
  hg_db_close(db);
}

/* A connection not heard from for a while may have been closed by the
 * server: a statement deferred then runs at once, so its failure is its
 * own answer (the store runs a group again when its BEGIN fails). */
static void test_defer_after_idle(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  hg_db_t *killer = open_db(0);
  if (db == NULL || killer == NULL) return;
  int64_t pid = query_int(db, "SELECT pg_backend_pid()");
  hg_stmt_t *st = NULL;
  /* Heard from just now: deferred (nothing is read yet). */
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT 1", &st), 0);
  CHECK_EQ_INT(hg_db_defer(st), 0);
  hg_db_release(st);
  CHECK_EQ_INT(hg_db_flush(db), 0);
  CHECK_EQ_INT(hg_db_prepare(killer, "SELECT pg_terminate_backend(CAST(? AS INTEGER))", &st), 0);
  hg_db_bind_int64(st, 1, pid);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  hg_db_release(st);
  struct timespec pause = {1, 200000000};
  nanosleep(&pause, NULL);
  CHECK_EQ_INT(hg_db_prepare(db, "BEGIN", &st), 0);
  CHECK_EQ_INT(hg_db_defer(st), HG_EUNAVAIL);
  hg_db_release(st);
  CHECK(!hg_db_in_transaction(db));
  hg_db_close(db);
  hg_db_close(killer);
}

/* Reserved sequence values: unique across connections, from the table's
 * own sequence, so that rows inserted without a seq never collide. */
static void test_nextval(void) {
  hg_db_t *a = open_db(HG_DB_CACHE), *b = open_db(0);
  if (a == NULL || b == NULL) return;
  CHECK_EQ_INT(hg_db_exec(a, "DROP TABLE IF EXISTS seqd; CREATE TABLE seqd (seq BIGINT GENERATED BY DEFAULT AS "
                             "IDENTITY PRIMARY KEY, v TEXT)",
                          "test"),
               0);
  /* Each connection takes more than one block (1,024 values). */
  static int64_t seen[2600];
  for (int i = 0; i < 2600; i++) CHECK_EQ_INT(hg_db_nextval(i % 2 ? a : b, "seqd", &seen[i]), 0);
  int dup = 0;
  for (int i = 0; i < 2600; i++)
    for (int k = 0; k < i; k++) dup += seen[i] == seen[k];
  CHECK_EQ_INT(dup, 0);
  /* Rows given reserved seqs, then one the sequence numbers itself. */
  CHECK_EQ_INT(hg_db_exec(b, "INSERT INTO seqd (v) VALUES ('auto')", "test"), 0);
  int64_t autoseq = query_int(b, "SELECT seq FROM seqd WHERE v = 'auto'");
  for (int i = 0; i < 2600; i++) dup += seen[i] == autoseq;
  CHECK_EQ_INT(dup, 0);
  CHECK_EQ_INT(hg_db_nextval(a, "no_such_table", &seen[0]) < 0, 1);
  hg_db_close(a);
  hg_db_close(b);
}

/* A cached statement first run with a NULL where bytes go later (a
 * request without a response body, then with one) keeps running as the
 * prepared statement: the server's own type for the parameter is asked
 * once, and bytes fit it. Without that, every later run went unnamed,
 * parsed and planned again. */
static const char bytes_sql[] = "SELECT COALESCE(length(CAST(?1 AS BYTEA)), -1)";

static void test_untyped_bytes(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  static const unsigned char b[3] = {0, 1, 2};
  for (int i = 0; i < 4; i++) {
    hg_stmt_t *st = NULL;
    CHECK_EQ_INT(hg_db_prepare(db, bytes_sql, &st), 0);
    if (i == 0) hg_db_bind_null(st, 1);
    else hg_db_bind_blob(st, 1, b, sizeof(b));
    CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
    CHECK_EQ_INT((int)hg_db_column_int64(st, 0), i == 0 ? -1 : 3);
    hg_db_release(st);
  }
  /* Every run, the three with bytes included, went through the prepared
   * statement (PostgreSQL 14+ counts its plans). */
  CHECK_EQ_INT(query_int(db, "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE statement = "
                             "'SELECT COALESCE(length(CAST($1 AS BYTEA)), -1)'"),
               4);
  hg_db_close(db);
}

static void test_killed_connection(void) {
  /* Killed by itself: the statement fails, then every call fails at once. */
  hg_db_t *db = open_db(HG_DB_CACHE);
  if (db == NULL) return;
  hg_stmt_t *st = NULL;
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT pg_terminate_backend(pg_backend_pid())", &st), 0);
  CHECK_EQ_INT(hg_db_step(st), HG_EUNAVAIL);
  hg_db_release(st);
  int64_t t0 = now_ms();
  CHECK_EQ_INT(hg_db_prepare(db, count_sql, &st), HG_EUNAVAIL);
  CHECK_EQ_INT(hg_db_exec(db, "SELECT 1", "test (expected to fail)"), HG_EUNAVAIL);
  CHECK(!hg_db_in_transaction(db));
  CHECK(now_ms() - t0 < 100);
  hg_db_close(db);

  /* Killed by another connection while a statement is between rows: the
   * next statement fails fast, the rows already read stay readable. */
  db = open_db(HG_DB_CACHE);
  hg_db_t *killer = open_db(0);
  if (db == NULL || killer == NULL) return;
  CHECK_EQ_INT(hg_db_exec(db, "BEGIN", "test"), 0);
  int64_t pid = query_int(db, "SELECT pg_backend_pid()");
  hg_stmt_t *rows = NULL;
  CHECK_EQ_INT(hg_db_prepare(db, "SELECT generate_series(1, 3)", &rows), 0);
  CHECK_EQ_INT(hg_db_step(rows), HG_DB_ROW);
  /* An int64 parameter is a BIGINT: a function taking an INTEGER needs a cast. */
  CHECK_EQ_INT(hg_db_prepare(killer, "SELECT pg_terminate_backend(CAST(? AS INTEGER))", &st), 0);
  hg_db_bind_int64(st, 1, pid);
  CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(st, 0), 1);
  hg_db_release(st);
  t0 = now_ms();
  CHECK_EQ_INT(hg_db_prepare(db, count_sql, &st), 0); /* prepare does not talk to the server */
  CHECK_EQ_INT(hg_db_step(st), HG_EUNAVAIL);
  hg_db_release(st);
  CHECK(now_ms() - t0 < 1000);
  CHECK(!hg_db_in_transaction(db));
  CHECK_EQ_INT(hg_db_step(rows), HG_DB_ROW);
  CHECK_EQ_INT(hg_db_column_int64(rows, 0), 2);
  hg_db_release(rows);
  CHECK_EQ_INT(hg_db_exec(db, "COMMIT", "test (expected to fail)"), HG_EUNAVAIL);
  hg_db_close(db);
  hg_db_close(killer);
}

/* A statement past its deadline (5 s) is cancelled on the server and
 * fails with HG_EUNAVAIL; the connection is given up. */
static void test_deadline(void) {
  hg_db_t *db = open_db(HG_DB_CACHE);
  hg_db_t *watch = open_db(0);
  if (db == NULL || watch == NULL) return;
  int64_t pid = query_int(db, "SELECT pg_backend_pid()");
  int64_t t0 = now_ms();
  CHECK_EQ_INT(hg_db_exec(db, "SELECT pg_sleep(30)", "test (expected to time out)"), HG_EUNAVAIL);
  int64_t took = now_ms() - t0;
  CHECK(took >= 4900 && took < 8000);
  CHECK(strstr(hg_db_errmsg(db), "timed out") != NULL);
  CHECK_EQ_INT(hg_db_exec(db, "SELECT 1", "test (expected to fail)"), HG_EUNAVAIL);
  /* The server stopped sleeping: the cancel reached it. */
  hg_stmt_t *st = NULL;
  int sleeping = 1;
  for (int i = 0; i < 50 && sleeping; i++) {
    CHECK_EQ_INT(hg_db_prepare(watch, "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ? AND state = 'active'", &st),
                 0);
    hg_db_bind_int64(st, 1, pid);
    CHECK_EQ_INT(hg_db_step(st), HG_DB_ROW);
    sleeping = hg_db_column_int64(st, 0) != 0;
    hg_db_release(st);
    if (sleeping) nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
  }
  CHECK(!sleeping);
  hg_db_close(db);
  hg_db_close(watch);
}

int main(void) {
  uri = getenv("HG_TEST_PG_URI");
  if (uri == NULL || uri[0] == '\0') {
    printf("skipped: set HG_TEST_PG_URI to a PostgreSQL database (scripts/pg-tmp start DIR prints one)\n");
    return 77;
  }
  RUN(test_engine_and_address);
  RUN(test_connect_timeout);
  RUN(test_password_hidden);
  RUN(test_round_trip);
  RUN(test_returning_and_changes);
  RUN(test_constraint_errors);
  RUN(test_transient_errors);
  RUN(test_cache);
  RUN(test_transactions);
  RUN(test_deferred);
  RUN(test_step_after_deferred);
  RUN(test_defer_after_idle);
  RUN(test_failures_leak_no_prepared);
  RUN(test_nextval);
  RUN(test_untyped_bytes);
  RUN(test_killed_connection);
  RUN(test_deadline);
  return HGT_DONE();
}
