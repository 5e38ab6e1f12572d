/* hgtest_pg.h: a fresh store for the unit tests that run on both engines:
 * a SQLite file in dir, or, when HG_TEST_PG_URI names a PostgreSQL server
 * (scripts/test starts one), a new database there, migrated as a gateway's
 * (hg_store_open_sync). */
#ifndef HG_TEST_PG_H
#define HG_TEST_PG_H

#include "hgtest.h"
#include "store/db.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* HG_TEST_PG_URI, or NULL when unset or empty. */
static inline const char *hgt_pg_base(void) {
  const char *u = getenv("HG_TEST_PG_URI");
  return u != NULL && u[0] != '\0' ? u : NULL;
}

/* Runs call when HG_TEST_PG_URI is set, else says it is skipped. */
#define HGT_ON_PG(call)                                          \
  do {                                                           \
    if (hgt_pg_base() != NULL)                                   \
      call;                                                      \
    else                                                         \
      printf("  skipped: HG_TEST_PG_URI is not set\n");         \
  } while (0)

/* Opens a new store named name: on PostgreSQL (pg) a database
 * hg_unit_NAME_PID made afresh on the server, else DIR/NAME.db. NULL (a
 * failed check recorded) when it cannot. Its address goes to addr (512
 * bytes) when addr is not NULL. */
static inline hg_db_t *hgt_open_store_at(const char *dir, const char *name, int pg, char *addr_out) {
  char addr[512], err[256];
  if (pg) {
    const char *base = hgt_pg_base();
    hg_db_t *admin = NULL;
    CHECK(base != NULL);
    if (base == NULL) return NULL;
    CHECK_EQ_INT(hg_db_open(&admin, base, 0, err, sizeof(err)), 0);
    if (admin == NULL) return NULL;
    char db_name[96], sql[160];
    snprintf(db_name, sizeof(db_name), "hg_unit_%s_%d", name, (int)getpid());
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db_name);
    hg_db_exec(admin, sql, "test");
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db_name);
    CHECK_EQ_INT(hg_db_exec(admin, sql, "test"), 0);
    hg_db_close(admin);
    /* The same address with the path's database name replaced. */
    const char *q = strchr(base, '?');
    size_t head = q ? (size_t)(q - base) : strlen(base);
    size_t slash = head;
    while (slash > 0 && base[slash - 1] != '/') slash--;
    snprintf(addr, sizeof(addr), "%.*s%s%s", (int)slash, base, db_name, q ? q : "");
  } else {
    snprintf(addr, sizeof(addr), "%s/%s.db", dir, name);
  }
  if (addr_out != NULL) memcpy(addr_out, addr, sizeof(addr));
  hg_db_t *db = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&db, addr, err, sizeof(err)), 0);
  return db;
}

static inline hg_db_t *hgt_open_store(const char *dir, const char *name, int pg) {
  return hgt_open_store_at(dir, name, pg, NULL);
}

#endif
