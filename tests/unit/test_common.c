#include "base/common.h"
#include "hgtest.h"
#include "base/log.h"

static void time_format(void) {
  char buf[25];
  hg_format_time(0, buf);
  CHECK_EQ_STR(buf, "1970-01-01T00:00:00.000Z");
  hg_format_time(1614265330123LL, buf);
  CHECK_EQ_STR(buf, "2021-02-25T15:02:10.123Z");
}

static void time_parse(void) {
  int64_t ms = -1;
  CHECK_EQ_INT(hg_parse_time("1970-01-01", &ms), 0);
  CHECK_EQ_INT(ms, 0);
  CHECK_EQ_INT(hg_parse_time("2021-02-25T15:02:10.123Z", &ms), 0);
  CHECK_EQ_INT(ms, 1614265330123LL);
  CHECK_EQ_INT(hg_parse_time("2021-02-25 15:02:10.1234", &ms), 0); /* digits past ms are dropped */
  CHECK_EQ_INT(ms, 1614265330123LL);
  CHECK_EQ_INT(hg_parse_time("2021-02-25T16:02:10.123+01:00", &ms), 0);
  CHECK_EQ_INT(ms, 1614265330123LL);
  CHECK_EQ_INT(hg_parse_time("2021-02-25T14:32:10.123-0030", &ms), 0);
  CHECK_EQ_INT(ms, 1614265330123LL);
  CHECK_EQ_INT(hg_parse_time("2021-02-25T15:02", &ms), 0);
  CHECK_EQ_INT(ms, 1614265320000LL);
  CHECK_EQ_INT(hg_parse_time("2024-02-29", &ms), 0); /* a leap day */
  CHECK_EQ_INT(ms, 1709164800000LL);
  CHECK_EQ_INT(hg_parse_time("2000-03-01T00:00:00Z", &ms), 0);
  CHECK_EQ_INT(ms, 951868800000LL);
  static const char *const bad[] = {"",          "yesterday",         "2026-11",          "2026-13-01",
                                    "2026-02-29", "2026-04-31",        "1969-12-31",       "2026-11-01T",
                                    "2026-11-01T25:00", "2026-11-01T10:00:61", "2026-11-01T10:00:00.", "2026-11-01Z",
                                    "2026-11-01T10:00:00+1", "2026-11-01x", "26-11-01", "2026-1-01"};
  for (size_t i = 0; i < HG_ARRAY_LEN(bad); i++) {
    ms = 42;
    CHECK_EQ_INT(hg_parse_time(bad[i], &ms), -1);
  }
}

static void log_parse(void) {
  hg_log_level_t l;
  CHECK_EQ_INT(hg_log_parse_level("warn", &l), 0);
  CHECK_EQ_INT(l, HG_LOG_WARN);
  CHECK_EQ_INT(hg_log_parse_level("loud", &l), HG_EINVAL);
  hg_log_format_t f;
  CHECK_EQ_INT(hg_log_parse_format("json", &f), 0);
  CHECK_EQ_INT(f, HG_LOG_JSON);
}

static void copy_and_digits(void) {
  char b[8], d[24];
  CHECK_EQ_INT(hg_copy(b, sizeof(b), "abc"), 3);
  CHECK_EQ_STR(b, "abc");
  CHECK_EQ_INT(hg_copy(b, sizeof(b), "abcdefghij"), 7); /* cut, NUL-terminated */
  CHECK_EQ_STR(b, "abcdefg");
  CHECK_EQ_INT(hg_copy(b, sizeof(b), NULL), 0);
  CHECK_EQ_STR(b, "");
  CHECK_EQ_INT(hg_copy(b, 1, "x"), 0);
  CHECK_EQ_STR(b, "");
  static const struct { uint64_t v; const char *s; } cases[] = {
      {0, "0"}, {7, "7"}, {10, "10"}, {4096, "4096"}, {18446744073709551615ULL, "18446744073709551615"}};
  for (size_t i = 0; i < HG_ARRAY_LEN(cases); i++) {
    size_t n = hg_fmt_u64(d, cases[i].v);
    d[n] = '\0';
    CHECK_EQ_STR(d, cases[i].s);
    CHECK_EQ_INT(n, strlen(cases[i].s));
  }
  static const struct { int64_t v; const char *s; } signed_cases[] = {
      {0, "0"}, {-1, "-1"}, {1700000000, "1700000000"}, {INT64_MIN, "-9223372036854775808"}};
  for (size_t i = 0; i < HG_ARRAY_LEN(signed_cases); i++) {
    size_t n = hg_fmt_i64(d, signed_cases[i].v);
    d[n] = '\0';
    CHECK_EQ_STR(d, signed_cases[i].s);
  }
}

static void durations(void) {
  static const struct { const char *s; int64_t ms; } good[] = {
      {"0", 0}, {"90", 90000}, {"90s", 90000}, {"15m", 900000}, {"12h", 43200000}, {"5d", 432000000}, {"0d", 0}};
  for (size_t i = 0; i < HG_ARRAY_LEN(good); i++) {
    int64_t ms = -1;
    CHECK_EQ_INT(hg_parse_duration(good[i].s, &ms), 0);
    CHECK(ms == good[i].ms);
  }
  static const char *const bad[] = {"", "d", "-5d", "5 d", "5days", "1.5h", "5w", "5dd", "99999999999999999999",
                                    "36501d", NULL};
  for (size_t i = 0; bad[i]; i++) {
    int64_t ms = 7;
    CHECK_EQ_INT(hg_parse_duration(bad[i], &ms), HG_EINVAL);
    CHECK(ms == 7);
  }
  CHECK_EQ_INT(hg_parse_duration(NULL, &(int64_t){0}), HG_EINVAL);
  char out[24];
  static const struct { int64_t ms; const char *s; } fmt[] = {
      {0, "0s"}, {432000000, "5d"}, {129600000, "36h"}, {90000, "90s"}, {900000, "15m"}, {1500, "1s"}, {-5, "0s"}};
  for (size_t i = 0; i < HG_ARRAY_LEN(fmt); i++) {
    hg_format_duration(fmt[i].ms, out);
    CHECK_EQ_STR(out, fmt[i].s);
  }
}

int main(void) {
  RUN(durations);
  RUN(time_format);
  RUN(time_parse);
  RUN(copy_and_digits);
  RUN(log_parse);
  return HGT_DONE();
}
