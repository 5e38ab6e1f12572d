/* log.c: structured log lines in logfmt or JSON. */
#include "base/log.h"

#include "base/common.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static hg_log_level_t min_level = HG_LOG_INFO;
static hg_log_format_t out_format = HG_LOG_LOGFMT;
static int out_fd = 2;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void hg_log_setup(hg_log_level_t level, hg_log_format_t format, int fd) {
  min_level = level;
  out_format = format;
  out_fd = fd;
}

int hg_log_parse_level(const char *s, hg_log_level_t *out) {
  for (size_t i = 0; i < HG_ARRAY_LEN(level_names); i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (hg_log_level_t)i;
      return 0;
    }
  }
  return HG_EINVAL;
}

int hg_log_parse_format(const char *s, hg_log_format_t *out) {
  if (strcmp(s, "logfmt") == 0) *out = HG_LOG_LOGFMT;
  else if (strcmp(s, "json") == 0) *out = HG_LOG_JSON;
  else return HG_EINVAL;
  return 0;
}

int hg_log_enabled(hg_log_level_t level) { return level >= min_level; }

/* A line buffer that silently truncates: a log line is never worth a crash
 * or an allocation failure. */
struct line {
  char buf[8192];
  size_t len;
};

static void put(struct line *l, const char *s, size_t n) {
  if (n > sizeof(l->buf) - 2 - l->len) n = sizeof(l->buf) - 2 - l->len;
  memcpy(l->buf + l->len, s, n);
  l->len += n;
}

static void puts_(struct line *l, const char *s) { put(l, s, strlen(s)); }

static void put_json_str(struct line *l, const char *s) {
  put(l, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      put(l, esc, 2);
    } else if (c < 0x20) {
      snprintf(esc, sizeof(esc), "\\u%04x", c);
      put(l, esc, 6);
    } else {
      put(l, (const char *)&c, 1);
    }
  }
  put(l, "\"", 1);
}

static void put_logfmt_val(struct line *l, const char *s) {
  int quote = *s == '\0';
  for (const char *p = s; *p && !quote; p++)
    if (*p == ' ' || *p == '=' || *p == '"' || (unsigned char)*p < 0x20) quote = 1;
  if (!quote) {
    puts_(l, s);
    return;
  }
  /* logfmt quotes like JSON strings do. */
  put_json_str(l, s);
}

static void put_kv(struct line *l, const char *k, const char *v) {
  if (v == NULL) v = "";
  if (out_format == HG_LOG_JSON) {
    put(l, ",", 1);
    put_json_str(l, k);
    put(l, ":", 1);
    put_json_str(l, v);
  } else {
    put(l, " ", 1);
    puts_(l, k);
    put(l, "=", 1);
    put_logfmt_val(l, v);
  }
}

void hg_logv(hg_log_level_t level, const char *msg, va_list ap) {
  if (level < min_level) return;
  struct line l;
  l.len = 0;
  char ts[25];
  hg_format_time(hg_wall_ms(), ts);
  if (out_format == HG_LOG_JSON) {
    puts_(&l, "{\"time\":\"");
    puts_(&l, ts);
    puts_(&l, "\"");
  } else {
    puts_(&l, "time=");
    puts_(&l, ts);
  }
  put_kv(&l, "level", level_names[level]);
  put_kv(&l, "msg", msg);
  for (;;) {
    const char *k = va_arg(ap, const char *);
    if (k == NULL) break;
    const char *v = va_arg(ap, const char *);
    put_kv(&l, k, v);
  }
  if (out_format == HG_LOG_JSON) l.buf[l.len++] = '}';
  l.buf[l.len++] = '\n';
  /* One write per line so lines from the loop and store threads never mix. */
  ssize_t r = write(out_fd, l.buf, l.len);
  (void)r;
}

void hg_log(hg_log_level_t level, const char *msg, ...) {
  va_list ap;
  va_start(ap, msg);
  hg_logv(level, msg, ap);
  va_end(ap);
}
