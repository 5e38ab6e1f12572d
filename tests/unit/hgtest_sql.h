/* hgtest_sql.h: SQLite helpers shared by the unit tests that read a store. */
#ifndef HG_TEST_SQL_H
#define HG_TEST_SQL_H

#include <sqlite3.h>

/* The first column of the first row of sql as an int, or -1. */
static inline int query_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

#endif
