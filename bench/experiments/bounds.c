/* bounds.c: the measuring build of bench/experiments/ingest-bounds
 * (cmake -DHG_BENCH_BOUNDS=ON links it into the hookgate binary only;
 * never a release). Before main it installs two hooks the product leaves
 * unset:
 *
 * - the store's (store.h, hg_store__bounds): with HOOKGATE_BENCH_BOUNDS set
 *   to "rollback", a group of logged jobs (events already answered from
 *   the intake log) runs and is rolled back instead of committed, so
 *   SQLite does the inserts but writes and syncs nothing; with "skip" it
 *   does not run at all. Both report success. Any other group is committed
 *   as usual.
 * - the ingest's (ingest.h, hg_ingest__log_answers_only): an event sent to
 *   the log is answered from the log's sync only, never from the store's
 *   (which the modes above may skip or roll back).
 *
 * They bound what storing events costs ingest. */
#include "base/log.h"
#include "pipeline/ingest.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

/* Runs as each store thread starts. */
static hg_store_bounds_t bounds_mode(void) {
  const char *e = getenv("HOOKGATE_BENCH_BOUNDS");
  hg_store_bounds_t mode;
  if (e == NULL || e[0] == '\0') return HG_STORE_BOUNDS_OFF;
  if (strcmp(e, "skip") == 0) {
    mode = HG_STORE_BOUNDS_SKIP;
  } else if (strcmp(e, "rollback") == 0) {
    mode = HG_STORE_BOUNDS_ROLLBACK;
  } else {
    /* A typo would measure the product under the wrong name. */
    hg_log(HG_LOG_ERROR, "HOOKGATE_BENCH_BOUNDS must be rollback or skip", "value", e, NULL);
    abort();
  }
  hg_log(HG_LOG_WARN, "a measuring build: answered events are not stored", "HOOKGATE_BENCH_BOUNDS", e, NULL);
  return mode;
}

__attribute__((constructor)) static void install(void) {
  hg_store__bounds = bounds_mode;
  hg_ingest__log_answers_only = 1;
}
