/* sqlite_hold DB: takes SQLite's write lock on DB (BEGIN IMMEDIATE), prints
 * "locked", and holds it until its standard input closes. For the
 * integration tests: a store that cannot write, without any test hook in
 * the gateway. */
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: sqlite_hold DB\n");
    return 2;
  }
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlite_hold: cannot open %s: %s\n", argv[1], sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_busy_timeout(db, 10000);
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    fprintf(stderr, "sqlite_hold: cannot lock %s: %s\n", argv[1], sqlite3_errmsg(db));
    return 1;
  }
  printf("locked\n");
  fflush(stdout);
  char buf[256];
  while (read(0, buf, sizeof(buf)) > 0) {
  }
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close(db);
  return 0;
}
