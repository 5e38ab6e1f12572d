/* hgtest_sql.h: store (db.h) helpers shared by the unit tests that read a
 * store. */
#ifndef HG_TEST_SQL_H
#define HG_TEST_SQL_H

#include "store/db.h"

/* The first column of the first row of sql as an int, or -1. sql need not
 * be a literal: the tests' connections (hg_store_open_sync) cache no
 * statements. */
static inline int query_int(hg_db_t *db, const char *sql) {
  hg_stmt_t *st = NULL;
  int v = -1;
  if (hg_db_prepare(db, sql, &st) == 0 && hg_db_step(st) == HG_DB_ROW) v = (int)hg_db_column_int64(st, 0);
  hg_db_release(st);
  return v;
}

#endif
