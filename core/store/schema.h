/* schema.h: the ordered schema migrations applied by migrate.c. */
#ifndef HG_SCHEMA_H
#define HG_SCHEMA_H

/* hg_schema_migrations[i] takes user_version i to i + 1. */
extern const char *const hg_schema_migrations[];
extern const int hg_schema_version;

#endif
