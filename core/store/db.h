/* db.h: one SQL connection, SQLite or PostgreSQL, behind one small API.
 *
 * The row files (webhooks.c, events.c, deliveries.c, keys.c) and every
 * store job speak this API only; db_sqlite.c and db_pg.c implement it, in
 * the manner of a libuv backend. A connection belongs to one thread at a
 * time and takes no lock.
 *
 * SQL text is written once, in the subset both engines accept:
 *   - parameters are "?" (numbered in order of appearance) or "?N"; the
 *     PostgreSQL backend rewrites them to "$N" (outside quoted text);
 *   - INSERT ... ON CONFLICT DO NOTHING, RETURNING, COALESCE, LIMIT/OFFSET;
 *   - integers are 64-bit on both sides (PostgreSQL columns are BIGINT),
 *     booleans are integers 0/1, binary data is BLOB/BYTEA;
 *   - a parameter PostgreSQL cannot type from its context alone (?1 IS
 *     NULL) is written with a cast: CAST(?1 AS TEXT).
 * Where the engines differ, the caller picks the text with
 * hg_db_engine(db) (both are string literals, so both may be cached).
 *
 * Errors are HG_E* codes (base/common.h): HG_EEXIST for a UNIQUE or PRIMARY
 * KEY violation, HG_ENOTFOUND for a FOREIGN KEY violation, HG_EINVAL for
 * other constraint violations and misuse, HG_EBUSY for a lock, HG_ENOMEM,
 * HG_ETOOBIG, HG_ECORRUPT, HG_ENOSPC (disk or quota full), HG_EUNAVAIL (the
 * server is unreachable, the connection lost or a statement ran past its
 * deadline: the transaction is gone), HG_EIO for anything else.
 * hg_db_errmsg names tables and columns, never bound values. */
#ifndef HG_DB_H
#define HG_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct hg_db hg_db_t;
typedef struct hg_stmt hg_stmt_t;

typedef enum { HG_DB_SQLITE = 1, HG_DB_PG = 2 } hg_db_engine_t;

/* hg_db_step's results besides errors. */
#define HG_DB_DONE 0
#define HG_DB_ROW 1

/* Flags of hg_db_open. */
#define HG_DB_READONLY 1u /* SQLite: open read-only; PostgreSQL: a read-only session */
#define HG_DB_CACHE 2u    /* keep hot statements prepared (the store thread's connection) */

/* Which engine a store address names: PostgreSQL for "postgresql://..."
 * and "postgres://..." URIs (any libpq connection URI), SQLite (a file
 * path) otherwise. */
hg_db_engine_t hg_db_engine_of(const char *address);

/* Copies address to out (cap bytes, NUL-terminated, truncated) with any
 * password replaced by "***": for logs and messages about an address that
 * is not open (hg_db_address does the same for an open one). */
void hg_db_redact(const char *address, char *out, size_t cap);

/* Opens a connection to address (see hg_db_engine_of). SQLite: the file
 * is created with its parent directories (mode 0700) unless READONLY, WAL
 * and the store's pragmas are set. PostgreSQL: connects (at most
 * connect_timeout seconds, 5 unless the URI says otherwise) with
 * synchronous_commit on. Neither migrates (store.h does). On failure *out
 * is NULL and err says why, never with a password. */
int hg_db_open(hg_db_t **out, const char *address, unsigned flags, char *err, size_t errlen);

/* Closes the connection and every statement it cached. Accepts NULL. */
void hg_db_close(hg_db_t *db);

hg_db_engine_t hg_db_engine(const hg_db_t *db);

/* The address the connection was opened with, its password (if any)
 * replaced by "***": for logs and messages. */
const char *hg_db_address(const hg_db_t *db);

/* Prepares sql, which must be a string literal (static and never
 * changing): with HG_DB_CACHE its address is the cache key. A cached
 * statement still in use (a nested call preparing the same SQL) is never
 * handed out twice: the inner caller gets its own. Returns 0 or HG_E*. */
int hg_db_prepare(hg_db_t *db, const char *sql, hg_stmt_t **out);

/* Gives a statement back: reset with bindings cleared when cached,
 * finalized otherwise. Accepts NULL. */
void hg_db_release(hg_stmt_t *st);

/* Resets st to run again (its bindings kept until rebound). */
void hg_db_reset(hg_stmt_t *st);

/* Binds parameter i (1-based). Text and blobs are borrowed: they must stay
 * valid until the statement is stepped, reset or released. len < 0: up to
 * the NUL. Return 0 or HG_E* (HG_EINVAL: no such parameter). */
int hg_db_bind_int64(hg_stmt_t *st, int i, int64_t v);
int hg_db_bind_text(hg_stmt_t *st, int i, const char *s, int len);
int hg_db_bind_blob(hg_stmt_t *st, int i, const void *p, size_t len);
int hg_db_bind_null(hg_stmt_t *st, int i);

/* Runs st, or moves to its next row: HG_DB_ROW, HG_DB_DONE or HG_E*. */
int hg_db_step(hg_stmt_t *st);

/* Runs st without waiting for its answer: for a statement whose results
 * the caller does not need (an INSERT or UPDATE). PostgreSQL sends it in
 * pipeline mode, so that the statements of many jobs share one round trip;
 * SQLite runs it at once. The bindings may change, and st be reset or
 * released, as soon as this returns. Its failure (a constraint, say)
 * shows on the connection's next hg_db_step or hg_db_exec, or in
 * hg_db_flush, whatever statement that call was about: a caller that
 * defers must treat a later failure as possibly its own (the store does:
 * a job's savepoint is released by a step, so the failure undoes the job,
 * or the run of jobs, that holds it). Returns 0 or HG_E*. */
int hg_db_defer(hg_stmt_t *st);

/* Waits for every deferred statement's answer: 0, or the first failure. */
int hg_db_flush(hg_db_t *db);

/* The next value of the sequence of table's seq column (PostgreSQL), taken
 * from a block of values the connection reserves ahead (one round trip per
 * 1,024), so that a row's seq is known before it is inserted and its insert
 * can be deferred. Values lost with the connection leave gaps, as any
 * sequence may. SQLite: HG_ESTATE (its rowids are not reserved ahead). */
int hg_db_nextval(hg_db_t *db, const char *table, int64_t *out);

/* v as a PostgreSQL array literal, "{1,2,3}" (malloc'd, or NULL when out
 * of memory): to bind as text to CAST(? AS BIGINT[]). Made of digits
 * only, never of input text. */
char *hg_db_int64_array(const int64_t *v, size_t n);

/* The current row's column col (0-based). Text and blobs stay valid until
 * the next step, reset or release. text: NULL for SQL NULL, otherwise
 * NUL-terminated; blob: NULL for SQL NULL or an empty value. */
int hg_db_column_is_null(hg_stmt_t *st, int col);
int64_t hg_db_column_int64(hg_stmt_t *st, int col);
/* Column col as an integer, or dflt when it is NULL. */
int64_t hg_db_column_int64_or(hg_stmt_t *st, int col, int64_t dflt);
const char *hg_db_column_text(hg_stmt_t *st, int col);
const void *hg_db_column_blob(hg_stmt_t *st, int col);
size_t hg_db_column_bytes(hg_stmt_t *st, int col);

/* Rows inserted, updated or deleted by the connection's last finished
 * INSERT, UPDATE or DELETE. */
int64_t hg_db_changes(hg_db_t *db);

/* Runs sql (one or more statements, no parameters, no results). On
 * failure logs it as op (hg_db_fail) and returns the code. */
int hg_db_exec(hg_db_t *db, const char *sql, const char *op);

/* Whether a transaction is open on the connection (false once a failure
 * ended it). */
int hg_db_in_transaction(hg_db_t *db);

/* The last failure's message from the engine, or "". */
const char *hg_db_errmsg(hg_db_t *db);

/* Logs a failure at error level (op, the HG_E code's name and
 * hg_db_errmsg; never bound values) and returns rc. For failures that are
 * not expected input errors: a UNIQUE violation the caller answers with
 * 409 need not be logged. */
int hg_db_fail(hg_db_t *db, int rc, const char *op);

/* The engine's own handle, for the engine-specific parts of the store
 * (SQLite's write-ahead log and checkpoints): a sqlite3 * or a PGconn *. */
void *hg_db_native(hg_db_t *db);

#endif
