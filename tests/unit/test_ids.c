#include "base/common.h"
#include "hgtest.h"
#include "base/ids.h"

#include <stdlib.h>
#include <uv.h>

static void format(void) {
  char id[HG_ID_MAX];
  hg_id_new("wh_", id);
  CHECK_EQ_INT(strlen(id), 3 + 26);
  CHECK(hg_id_valid("wh_", id));
  CHECK(!hg_id_valid("evt_", id));
  CHECK(!hg_id_valid("wh_", NULL));
  CHECK(!hg_id_valid("wh_", "wh_"));
  CHECK(!hg_id_valid("wh_", "wh_01ARZ3NDEKTSV4RRFFQ69G5FAV")); /* uppercase */
  CHECK(hg_id_valid("wh_", "wh_01arz3ndektsv4rrffq69g5fav"));
  CHECK(!hg_id_valid("wh_", "wh_01arz3ndektsv4rrffq69g5fa"));   /* 25 */
  CHECK(!hg_id_valid("wh_", "wh_01arz3ndektsv4rrffq69g5favx")); /* 27 */
  CHECK(!hg_id_valid("wh_", "wh_01arz3ndektsv4rrffq69g5fau"));  /* u */
  CHECK(!hg_id_valid("wh_", "wh_81arz3ndektsv4rrffq69g5fav"));  /* > 48 bits */
  /* The time part decodes to now (within a few seconds). */
  uint64_t ms = 0;
  const char *alpha = "0123456789abcdefghjkmnpqrstvwxyz";
  for (int i = 0; i < 10; i++) ms = ms * 32 + (uint64_t)(strchr(alpha, id[3 + i]) - alpha);
  int64_t skew = (int64_t)ms - hg_wall_ms();
  CHECK(skew <= 0 && skew > -5000);
  /* URL-safe: nothing to escape. */
  for (const char *p = id; *p; p++) CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
}

static void monotonic(void) {
  enum { N = 100000 };
  char(*ids)[HG_ID_MAX] = malloc(sizeof(*ids) * N);
  int bad = 0, invalid = 0;
  for (int i = 0; i < N; i++) hg_id_new("evt_", ids[i]);
  for (int i = 0; i < N; i++) {
    if (!hg_id_valid("evt_", ids[i])) invalid++;
    if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0) bad++;
  }
  CHECK_EQ_INT(invalid, 0);
  CHECK_EQ_INT(bad, 0);
  free(ids);
}

/* Several threads at once: every id is distinct and each thread sees its
 * own ids increase. */
enum { THREADS = 4, PER_THREAD = 20000 };
static char thread_ids[THREADS][PER_THREAD][HG_ID_MAX];

static void worker(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int i = 0; i < PER_THREAD; i++) hg_id_new("del_", thread_ids[t][i]);
}

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

static void threads(void) {
  uv_thread_t th[THREADS];
  for (int t = 0; t < THREADS; t++) uv_thread_create(&th[t], worker, (void *)(intptr_t)t);
  for (int t = 0; t < THREADS; t++) uv_thread_join(&th[t]);
  int bad = 0;
  for (int t = 0; t < THREADS; t++)
    for (int i = 1; i < PER_THREAD; i++) bad += strcmp(thread_ids[t][i - 1], thread_ids[t][i]) >= 0;
  CHECK_EQ_INT(bad, 0);
  qsort(thread_ids, THREADS * PER_THREAD, HG_ID_MAX, cmp);
  char(*all)[HG_ID_MAX] = &thread_ids[0][0];
  int dups = 0;
  for (int i = 1; i < THREADS * PER_THREAD; i++) dups += strcmp(all[i - 1], all[i]) == 0;
  CHECK_EQ_INT(dups, 0);
}

int main(void) {
  RUN(format);
  RUN(monotonic);
  RUN(threads);
  return HGT_DONE();
}
