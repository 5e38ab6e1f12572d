/* test_deliveries.c: the delivery queries against a real store file. */
#include "base/common.h"
#include "store/deliveries.h"
#include "hgtest.h"
#include "store/store.h"
#include "store/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/hg-deliveries-XXXXXX";

static hg_db_t *open_db(void) {
  char path[128], err[256];
  snprintf(path, sizeof(path), "%s/d.db", dir);
  hg_db_t *db = NULL;
  CHECK_EQ_INT(hg_store_open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return NULL;
  CHECK_EQ_INT(hg_db_exec(db,
                          "INSERT INTO webhooks (id, url, events, organization_id, active, created_at, updated_at) "
                          "VALUES ('wh_a', 'https://a.example', '[\"user.created\"]', 'org_a', 1, 1, 1)", "test"),
               0);
  return db;
}

/* Leaves a pattern on the stack where the next calls put their locals. */
static void __attribute__((noinline)) dirty_stack(void) {
  volatile char junk[8192];
  for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (char)0xa5;
}

/* Found by tests/fuzz/fuzz_api.c: listing the deliveries of a webhook that
 * does not exist (or of another organization) freed the uninitialised
 * pointers of the webhook it had not read, on the store thread. */
static void list_of_missing_webhook(void) {
  hg_db_t *db = open_db();
  if (db == NULL) return;
  hg_webhook_t w;
  memset(&w, 0xa5, sizeof(w));
  CHECK_EQ_INT(hg_webhooks_get(db, "wh_missing", NULL, &w), HG_ENOTFOUND);
  CHECK(w.url == NULL && w.events == NULL && w.org == NULL && w.metadata == NULL && w.lua == NULL);
  hg_webhook_close(&w);
  memset(&w, 0xa5, sizeof(w));
  CHECK_EQ_INT(hg_webhooks_get(db, "wh_a", "org_b", &w), HG_ENOTFOUND);
  CHECK(w.url == NULL);
  hg_webhook_close(&w);

  json_t *arr = json_array();
  char last[64] = "";
  int more = -1;
  dirty_stack();
  CHECK_EQ_INT(hg_deliveries_list_json(db, "wh_missing", NULL, "", 10, -1, NULL, arr, last, &more), HG_ENOTFOUND);
  dirty_stack();
  CHECK_EQ_INT(hg_deliveries_list_json(db, "wh_a", "org_b", "", 10, -1, NULL, arr, last, &more), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_deliveries_list_json(db, "wh_a", "org_a", "", 10, -1, NULL, arr, last, &more), 0);
  CHECK_EQ_INT(json_array_size(arr), 0);
  CHECK_EQ_INT(more, 0);
  json_decref(arr);
  hg_db_close(db);
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 1;
  RUN(list_of_missing_webhook);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return HGT_DONE();
}
