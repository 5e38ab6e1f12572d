/* hgtest.h: a minimal unit-test harness. Each test file is one executable;
 * it prints one line per failure and a closing "N passed, N failed" line. */
#ifndef HG_TEST_H
#define HG_TEST_H

#include <stdio.h>
#include <string.h>

static int hgt_passed, hgt_failed;

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (cond) hgt_passed++;                                                              \
    else {                                                                               \
      hgt_failed++;                                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
    }                                                                                    \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                               \
  do {                                                                                   \
    long long hgt_a = (long long)(a), hgt_b = (long long)(b);                            \
    if (hgt_a == hgt_b) hgt_passed++;                                                    \
    else {                                                                               \
      hgt_failed++;                                                                      \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a,  \
              #b, hgt_a, hgt_b);                                                         \
    }                                                                                    \
  } while (0)

#define CHECK_EQ_STR(a, b)                                                               \
  do {                                                                                   \
    const char *hgt_a = (a), *hgt_b = (b);                                               \
    if (hgt_a && hgt_b && strcmp(hgt_a, hgt_b) == 0) hgt_passed++;                       \
    else {                                                                               \
      hgt_failed++;                                                                      \
      fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,  \
              #a, #b, hgt_a ? hgt_a : "(null)", hgt_b ? hgt_b : "(null)");               \
    }                                                                                    \
  } while (0)

#define RUN(fn)                                                                          \
  do {                                                                                   \
    int hgt_before = hgt_failed;                                                         \
    fn();                                                                                \
    fprintf(stderr, "%s %s\n", hgt_failed == hgt_before ? "ok  " : "FAIL", #fn);         \
  } while (0)

#define HGT_DONE()                                                                       \
  (printf("%d passed, %d failed\n", hgt_passed, hgt_failed), hgt_failed ? 1 : 0)

#endif
