/* log.h: one line per event, logfmt or JSON, with levels.
 *
 * Never pass a secret (API key, webhook secret, Authorization header) as a
 * value: nothing here can tell a secret from any other string. */
#ifndef HG_LOG_H
#define HG_LOG_H

#include <stdarg.h>

typedef enum { HG_LOG_DEBUG = 0, HG_LOG_INFO, HG_LOG_WARN, HG_LOG_ERROR } hg_log_level_t;
typedef enum { HG_LOG_LOGFMT = 0, HG_LOG_JSON } hg_log_format_t;

/* Sets level, format and the file descriptor lines go to (default: info,
 * logfmt, 2). Call before other threads log. */
void hg_log_setup(hg_log_level_t level, hg_log_format_t format, int fd);

/* Parses "debug|info|warn|error" and "logfmt|json". Return 0 or HG_EINVAL. */
int hg_log_parse_level(const char *s, hg_log_level_t *out);
int hg_log_parse_format(const char *s, hg_log_format_t *out);

int hg_log_enabled(hg_log_level_t level);

/* Writes one line: time, level, msg, then the key/value pairs given as
 * const char * arguments ending with NULL, e.g.
 *   hg_log(HG_LOG_INFO, "listening", "addr", "127.0.0.1:8080", NULL);
 * A NULL value is written as an empty value. Thread-safe: each line is
 * written with a single write(2). */
void hg_log(hg_log_level_t level, const char *msg, ...);
void hg_logv(hg_log_level_t level, const char *msg, va_list ap);

#endif
