/* common.c: error texts, clocks and small formatting helpers. */
#define _GNU_SOURCE /* timegm */
#include "base/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *hg_strerror(int err) {
  switch (err) {
  case HG_OK: return "ok";
  case HG_ENOMEM: return "out of memory";
  case HG_EINVAL: return "invalid argument";
  case HG_EIO: return "i/o error";
  case HG_ENOTFOUND: return "not found";
  case HG_EEXIST: return "already exists";
  case HG_EBUSY: return "busy";
  case HG_ETIMEDOUT: return "timed out";
  case HG_ECLOSED: return "closed";
  case HG_ETOOBIG: return "too big";
  case HG_ECONFIG: return "configuration error";
  case HG_ECORRUPT: return "stored data unreadable or newer than this binary";
  case HG_EFORBIDDEN: return "forbidden";
  case HG_ESTATE: return "invalid state";
  case HG_ENOSPC: return "no space left on the storage device";
  case HG_EUNAVAIL: return "the store is unavailable";
  default: return "unknown error";
  }
}

uint64_t hg_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_offset_ms; /* atomic: hg_wall_set_offset */

int64_t hg_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + __atomic_load_n(&wall_offset_ms, __ATOMIC_RELAXED);
}

void hg_wall_set_offset(int64_t ms) { __atomic_store_n(&wall_offset_ms, ms, __ATOMIC_RELAXED); }

int64_t hg_wall_offset(void) { return __atomic_load_n(&wall_offset_ms, __ATOMIC_RELAXED); }

void hg_format_time(int64_t ms, char buf[25]) {
  /* Called per event and per log line: the seconds part is formatted once
   * per second per thread. */
  static __thread time_t cached_secs = -1;
  static __thread char cached[21];
  time_t secs = (time_t)(ms / 1000);
  if (secs != cached_secs) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
    cached_secs = secs;
  }
  /* 2026-11-27T06:02:11.123Z: 24 characters and the NUL. */
  memcpy(buf, cached, 19);
  int milli = (int)(ms % 1000);
  buf[19] = '.';
  buf[20] = (char)('0' + milli / 100);
  buf[21] = (char)('0' + milli / 10 % 10);
  buf[22] = (char)('0' + milli % 10);
  buf[23] = 'Z';
  buf[24] = '\0';
}

size_t hg_copy(char *dst, size_t cap, const char *src) {
  if (src == NULL) src = ""; /* SQLite's column text is NULL when out of memory */
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
  return n;
}

size_t hg_fmt_u64(char *out, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

size_t hg_fmt_i64(char *out, int64_t v) {
  if (v >= 0) return hg_fmt_u64(out, (uint64_t)v);
  out[0] = '-';
  return 1 + hg_fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

void hg_set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Reads n digits at s into *out; 0 when they are all digits. */
static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int hg_parse_time(const char *s, int64_t *ms) {
  int y, mo, d, h = 0, mi = 0, sec = 0, milli = 0;
  if (s == NULL || strlen(s) < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
      digits(s + 8, 2, &d))
    return HG_EINVAL;
  const char *p = s + 10;
  int offset_min = 0;
  if (*p == 'T' || *p == 't') {
    if (digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi) || p[6] != ':' || digits(p + 7, 2, &sec))
      return HG_EINVAL;
    p += 9;
    if (*p == '.') {
      int n = 0, scale = 100;
      for (p++; *p >= '0' && *p <= '9'; p++, n++) {
        milli += (*p - '0') * scale;
        scale /= 10;
      }
      if (n == 0) return HG_EINVAL;
    }
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int oh, om;
      if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59) return HG_EINVAL;
      offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
      p += 6;
    } else {
      return HG_EINVAL; /* a time needs its offset: local time is not guessed */
    }
  }
  if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return HG_EINVAL;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) return HG_EINVAL;
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  if (t == (time_t)-1) return HG_EINVAL;
  *ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + milli;
  return 0;
}
