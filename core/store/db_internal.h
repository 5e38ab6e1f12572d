/* db_internal.h: what db.c shares with its two backends.
 *
 *   db.c         the API of db.h: checks arguments and calls the backend
 *                through the connection's ops; hg_db_fail, the engine of an
 *                address, the address with its password hidden
 *   db_sqlite.c  SQLite (sqlite3, the statement cache keyed by SQL address)
 *   db_pg.c      PostgreSQL (libpq: parameters rewritten to $N, prepared
 *                statements cached per connection, results in binary, each
 *                statement under a deadline)
 *
 * A backend allocates its connection as a struct that begins with struct
 * hg_db, and its statements as structs that begin with struct hg_stmt. */
#ifndef HG_DB_INTERNAL_H
#define HG_DB_INTERNAL_H

#include "store/db.h"

typedef struct hg_db_ops {
  hg_db_engine_t engine;
  void (*close)(hg_db_t *db);
  int (*prepare)(hg_db_t *db, const char *sql, hg_stmt_t **out);
  void (*release)(hg_stmt_t *st);
  void (*reset)(hg_stmt_t *st);
  int (*bind_int64)(hg_stmt_t *st, int i, int64_t v);
  int (*bind_text)(hg_stmt_t *st, int i, const char *s, size_t len);
  int (*bind_blob)(hg_stmt_t *st, int i, const void *p, size_t len);
  int (*bind_null)(hg_stmt_t *st, int i);
  int (*step)(hg_stmt_t *st);
  int (*defer)(hg_stmt_t *st);
  int (*flush)(hg_db_t *db);
  int (*nextval)(hg_db_t *db, const char *table, int64_t *out);
  int (*column_is_null)(hg_stmt_t *st, int col);
  int64_t (*column_int64)(hg_stmt_t *st, int col);
  const char *(*column_text)(hg_stmt_t *st, int col);
  const void *(*column_blob)(hg_stmt_t *st, int col);
  size_t (*column_bytes)(hg_stmt_t *st, int col);
  int64_t (*changes)(hg_db_t *db);
  int (*exec)(hg_db_t *db, const char *sql); /* returns 0 or HG_E*, no logging */
  int (*in_transaction)(hg_db_t *db);
  const char *(*errmsg)(hg_db_t *db);
  void *(*native)(hg_db_t *db);
} hg_db_ops_t;

struct hg_db {
  const hg_db_ops_t *ops;
  char *address; /* malloc'd: the address with its password hidden */
  unsigned flags;
};

struct hg_stmt {
  hg_db_t *db;
};

/* db.c: sets db's common fields (address hidden, flags); returns 0 or
 * HG_ENOMEM. The backend frees db->address on close with
 * hg_db__clear. */
int hg_db__init(hg_db_t *db, const hg_db_ops_t *ops, const char *address, unsigned flags);
void hg_db__clear(hg_db_t *db);

/* The backends' open functions, called by hg_db_open (db_open.c). */
int hg_db__sqlite_open(hg_db_t **out, const char *path, unsigned flags, char *err, size_t errlen);
int hg_db__pg_open(hg_db_t **out, const char *uri, unsigned flags, char *err, size_t errlen);

#endif
