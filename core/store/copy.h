/* copy.h: moving a SQLite deployment's data into PostgreSQL
 * (`hookgate store copy --from FILE.db --to postgresql://...`).
 *
 * Both stores are opened and migrated as a gateway would (the SQLite file
 * to this binary's schema first), then every row of the tables that hold
 * a deployment's state (HG_COPY_TABLES) is copied, every column, seq
 * values kept, in one PostgreSQL transaction that commits only after the
 * counts on both sides agree. A target that already holds rows in any of
 * those tables is refused: a copy never merges. */
#ifndef HG_STORE_COPY_H
#define HG_STORE_COPY_H

#include <stddef.h>
#include <stdint.h>

/* How many tables a copy moves, in the order it moves them (parents
 * before the rows that reference them). */
#define HG_COPY_TABLES 9

typedef struct hg_copy_report {
  int from_version_before;            /* the SQLite file's schema version as found */
  int from_version;                   /* ... and after migrating it */
  int to_version;                     /* the PostgreSQL schema version */
  const char *tables[HG_COPY_TABLES]; /* names, in copy order */
  int64_t rows[HG_COPY_TABLES];       /* rows copied (and counted on both sides) */
  int64_t payload_bytes;              /* sum of events.payload lengths, equal on both sides */
} hg_copy_report_t;

/* Called every 100,000 rows of a table while it is being copied. */
typedef void (*hg_copy_progress_fn)(const char *table, int64_t rows, void *ud);

/* Copies the SQLite store at from (an existing file) into the PostgreSQL
 * store at to (a postgresql:// URI). Returns 0 with rep filled once the
 * copy is committed and verified; otherwise a HG_E* code with the reason
 * in err (never a password) and nothing committed to the target:
 *   HG_EINVAL   from is not a SQLite path or to not a PostgreSQL URI;
 *   HG_ENOTFOUND from does not exist (no file is created);
 *   HG_EEXIST   the target already holds rows (err names the table);
 *   HG_ECORRUPT the counts after copying differ (rolled back);
 *   others      opening, migrating, reading or writing failed.
 * progress may be NULL. */
int hg_store_copy(const char *from, const char *to, hg_copy_progress_fn progress, void *ud, hg_copy_report_t *rep,
                  char *err, size_t errlen);

#endif
