#include "common.h"
#include "hgtest.h"
#include "log.h"

static void time_format(void) {
  char buf[25];
  hg_format_time(0, buf);
  CHECK_EQ_STR(buf, "1970-01-01T00:00:00.000Z");
  hg_format_time(1614265330123LL, buf);
  CHECK_EQ_STR(buf, "2021-02-25T15:02:10.123Z");
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

int main(void) {
  RUN(time_format);
  RUN(log_parse);
  return HGT_DONE();
}
