/* common.c: error texts, clocks and small formatting helpers. */
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

/* n digits at *p as a number, advancing *p; -1 if they are not digits. */
static int digits(const char **p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (**p < '0' || **p > '9') return -1;
    v = v * 10 + (**p - '0');
  }
  return v;
}

int hg_parse_time(const char *s, int64_t *ms) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const char *p = s;
  int y = digits(&p, 4), mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
  if (y < 1970 || *p++ != '-' || (mo = digits(&p, 2)) < 1 || mo > 12 || *p++ != '-' || (d = digits(&p, 2)) < 1)
    return -1;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[mo - 1] + (mo == 2 && leap)) return -1;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if ((h = digits(&p, 2)) < 0 || h > 23 || *p++ != ':' || (mi = digits(&p, 2)) < 0 || mi > 59) return -1;
    if (*p == ':') {
      p++;
      if ((sec = digits(&p, 2)) < 0 || sec > 59) return -1;
      if (*p == '.') {
        p++;
        int n = 0, scale = 100;
        for (; *p >= '0' && *p <= '9'; p++, n++) {
          frac += (*p - '0') * scale;
          scale /= 10;
        }
        if (n == 0) return -1;
      }
    }
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1, oh, om;
      if ((oh = digits(&p, 2)) < 0 || oh > 23) return -1;
      if (*p == ':') p++;
      if ((om = digits(&p, 2)) < 0 || om > 59) return -1;
      off = sign * (oh * 60 + om);
    }
  }
  if (*p != '\0') return -1;
  /* Days since 1970-01-01 (the civil calendar, proleptic Gregorian). */
  int64_t days = 0;
  for (int yy = 1970; yy < y; yy++) days += 365 + ((yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0);
  for (int m = 1; m < mo; m++) days += mdays[m - 1] + (m == 2 && leap);
  days += d - 1;
  *ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - (int64_t)off * 60) * 1000 + frac;
  return 0;
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

int hg_parse_duration(const char *s, int64_t *ms) {
  if (s == NULL || *s < '0' || *s > '9') return HG_EINVAL;
  int64_t v = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (*p - '0');
    if (v > 100LL * 365 * 86400) return HG_EINVAL;
  }
  int64_t unit;
  switch (*p) {
  case '\0': unit = 1; p--; break; /* plain seconds: nothing to skip */
  case 's': unit = 1; break;
  case 'm': unit = 60; break;
  case 'h': unit = 3600; break;
  case 'd': unit = 86400; break;
  default: return HG_EINVAL;
  }
  if (p[1] != '\0' || v * unit > 100LL * 365 * 86400) return HG_EINVAL;
  *ms = v * unit * 1000;
  return 0;
}

void hg_format_duration(int64_t ms, char out[24]) {
  int64_t s = ms > 0 ? ms / 1000 : 0;
  static const struct { int64_t n; char c; } units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}};
  char unit = 's';
  for (size_t i = 0; s > 0 && i < HG_ARRAY_LEN(units); i++) {
    if (s % units[i].n == 0) {
      s /= units[i].n;
      unit = units[i].c;
      break;
    }
  }
  size_t n = hg_fmt_i64(out, s);
  out[n++] = unit;
  out[n] = '\0';
}

void hg_set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}
