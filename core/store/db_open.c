/* db_open.c: hg_db_open and hg_db_engine_of (db.h): which backend an
 * address names, and opening it. The only file that calls into every
 * backend; the backends call only db.c, so the store's files form no
 * loop of calls. */
#include "store/db_internal.h"

#include "base/common.h"

#include <string.h>

hg_db_engine_t hg_db_engine_of(const char *address) {
  if (address != NULL && (strncmp(address, "postgresql://", 13) == 0 || strncmp(address, "postgres://", 11) == 0))
    return HG_DB_PG;
  return HG_DB_SQLITE;
}

int hg_db_open(hg_db_t **out, const char *address, unsigned flags, char *err, size_t errlen) {
  *out = NULL;
  if (address == NULL || address[0] == '\0') {
    hg_set_err(err, errlen, "no store address");
    return HG_EINVAL;
  }
  if (hg_db_engine_of(address) == HG_DB_PG) return hg_db__pg_open(out, address, flags, err, errlen);
  return hg_db__sqlite_open(out, address, flags, err, errlen);
}
