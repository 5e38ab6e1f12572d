/* schema.h: the ordered schema migrations applied by migrate.c. */
#ifndef HG_SCHEMA_H
#define HG_SCHEMA_H

/* hg_schema_migrations[i] takes user_version i to i + 1. */
extern const char *const hg_schema_migrations[];
extern const int hg_schema_version;

/* The same for PostgreSQL (schema_pg.c): hg_schema_pg_migrations[i] takes
 * hookgate_schema.version i to i + 1. The lists are separate because the
 * SQLite one carries that engine's history (table rebuilds, dropped
 * indexes); PostgreSQL's starts at SQLite's version 8. A change to the
 * schema appends one migration to each. */
extern const char *const hg_schema_pg_migrations[];
extern const int hg_schema_pg_version;

#endif
