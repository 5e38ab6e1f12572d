#include "base/common.h"
#include "hgtest.h"
#include "pipeline/throttle.h"

#include <stdint.h>

/* A webhook without limits and without a flow: nothing is kept. */
static void unlimited_costs_nothing(void) {
  hg_throttle_t *t = hg_throttle_new();
  hg_flow_limits_t none = {0, 0};
  hg_flow_t *f = (hg_flow_t *)1;
  for (int64_t seq = 1; seq <= 100; seq++) {
    CHECK_EQ_INT(hg_throttle_admit(t, "wh_free", &none, seq, 1000, &f), HG_THROTTLE_GO);
    CHECK(f == NULL);
  }
  CHECK_EQ_INT((int)hg_throttle_held(t), 0);
  CHECK(hg_throttle_due(t) == INT64_MAX);
  hg_throttle_free(t);
}

/* maxConcurrency 2: the third waits until one ends, first in first out;
 * a second copy of a held row number is refused. */
static void concurrency(void) {
  hg_throttle_t *t = hg_throttle_new();
  hg_flow_limits_t two = {0, 2};
  hg_flow_t *a, *b, *c;
  int64_t now = 1000, seq;
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_c", &two, 1, now, &a), HG_THROTTLE_GO);
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_c", &two, 2, now, &b), HG_THROTTLE_GO);
  CHECK(a != NULL && a == b);
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_c", &two, 3, now, &c), HG_THROTTLE_CONCURRENCY);
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_c", &two, 4, now, &c), HG_THROTTLE_CONCURRENCY);
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_c", &two, 3, now, &c), HG_THROTTLE_HELD);
  CHECK_EQ_INT((int)hg_throttle_held(t), 2);
  CHECK(hg_throttle_holds(t, 3) && hg_throttle_holds(t, 4) && !hg_throttle_holds(t, 1));
  CHECK_EQ_INT(hg_throttle_next(t, now, &seq, &c), 0);
  CHECK(hg_throttle_due(t) == INT64_MAX); /* nothing until a slot comes back */
  CHECK_EQ_INT(hg_throttle_end(t, a), 1);
  CHECK(hg_throttle_due(t) <= now);
  CHECK_EQ_INT(hg_throttle_next(t, now, &seq, &c), 1);
  CHECK(seq == 3 && c == a);
  CHECK_EQ_INT(hg_throttle_next(t, now, &seq, &c), 0); /* two open again */
  /* Limits lifted: the rest go. */
  hg_flow_limits_t none = {0, 0};
  hg_throttle_limits(t, "wh_c", &none);
  CHECK_EQ_INT(hg_throttle_next(t, now, &seq, &c), 1);
  CHECK(seq == 4);
  CHECK_EQ_INT((int)hg_throttle_held(t), 0);
  hg_throttle_end(t, b);
  hg_throttle_end(t, a);
  hg_throttle_end(t, a);
  hg_throttle_free(t);
}

/* rateLimit 5/s: one token, then one every 200 ms. */
static void rate(void) {
  hg_throttle_t *t = hg_throttle_new();
  hg_flow_limits_t five = {5000, 0};
  hg_flow_t *f;
  int64_t now = 10000, seq;
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_r", &five, 1, now, &f), HG_THROTTLE_GO);
  hg_throttle_end(t, f);
  for (int64_t s = 2; s <= 6; s++) CHECK_EQ_INT(hg_throttle_admit(t, "wh_r", &five, s, now, &f), HG_THROTTLE_RATE);
  CHECK(hg_throttle_due(t) > now && hg_throttle_due(t) <= now + 201);
  CHECK_EQ_INT(hg_throttle_next(t, now + 100, &seq, &f), 0);
  int64_t last = now, got = 0;
  for (int64_t ms = now; ms <= now + 2000; ms++) {
    while (hg_throttle_next(t, ms, &seq, &f)) {
      CHECK(seq == 2 + got);
      CHECK(got == 0 || ms - last >= 199);
      last = ms;
      got++;
      hg_throttle_end(t, f);
    }
  }
  CHECK_EQ_INT((int)got, 5);
  hg_throttle_free(t);
}

/* Webhooks take turns, and one webhook's limit holds no other. */
static void turns(void) {
  hg_throttle_t *t = hg_throttle_new();
  hg_flow_limits_t one = {0, 1};
  hg_flow_t *fa, *fb, *f;
  int64_t seq;
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_a", &one, 1, 0, &fa), HG_THROTTLE_GO);
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_b", &one, 100, 0, &fb), HG_THROTTLE_GO);
  for (int64_t s = 2; s <= 4; s++) CHECK_EQ_INT(hg_throttle_admit(t, "wh_a", &one, s, 0, &f), HG_THROTTLE_CONCURRENCY);
  for (int64_t s = 101; s <= 103; s++) CHECK_EQ_INT(hg_throttle_admit(t, "wh_b", &one, s, 0, &f), HG_THROTTLE_CONCURRENCY);
  hg_flow_limits_t none = {0, 0};
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_other", &none, 500, 0, &f), HG_THROTTLE_GO);
  hg_throttle_end(t, fa);
  hg_throttle_end(t, fb);
  CHECK_EQ_INT(hg_throttle_next(t, 0, &seq, &f), 1);
  int64_t first = seq;
  hg_throttle_end(t, f);
  CHECK_EQ_INT(hg_throttle_next(t, 0, &seq, &f), 1);
  CHECK((first < 100) != (seq < 100)); /* the other webhook's turn */
  hg_throttle_free(t);                 /* held ones and open slots go with it */
}

/* Many held row numbers: the set grows and shrinks and finds each. */
static void many_held(void) {
  hg_throttle_t *t = hg_throttle_new();
  hg_flow_limits_t one = {0, 1};
  hg_flow_t *open, *f;
  int64_t seq;
  CHECK_EQ_INT(hg_throttle_admit(t, "wh_m", &one, 1, 0, &open), HG_THROTTLE_GO);
  for (int64_t s = 2; s <= 5000; s++) CHECK_EQ_INT(hg_throttle_admit(t, "wh_m", &one, s * 7919, 0, &f), HG_THROTTLE_CONCURRENCY);
  CHECK_EQ_INT((int)hg_throttle_held(t), 4999);
  for (int64_t s = 2; s <= 5000; s++) {
    CHECK(hg_throttle_holds(t, s * 7919));
    hg_throttle_end(t, open);
    CHECK_EQ_INT(hg_throttle_next(t, 0, &seq, &open), 1);
    CHECK(seq == s * 7919);
    CHECK(!hg_throttle_holds(t, seq));
  }
  CHECK_EQ_INT((int)hg_throttle_held(t), 0);
  hg_throttle_free(t);
}

int main(void) {
  RUN(unlimited_costs_nothing);
  RUN(concurrency);
  RUN(rate);
  RUN(turns);
  RUN(many_held);
  return HGT_DONE();
}
