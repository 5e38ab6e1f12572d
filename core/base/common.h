/* common.h: error codes and small helpers shared by every hookgate module.
 *
 * Convention (libuv's): functions return 0 on success or a negative HG_E*
 * code. Codes from libuv, mbedTLS and SQLite are translated at the boundary
 * of the module that calls them. */
#ifndef HG_COMMON_H
#define HG_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The project's version, from one place: project(hookgate VERSION x.y.z)
 * in CMakeLists.txt, which passes it as a compile definition. */
#ifndef HG_VERSION
#error "HG_VERSION comes from CMakeLists.txt (project VERSION): build with CMake"
#endif

enum {
  HG_OK = 0,
  HG_ENOMEM = -1,    /* out of memory */
  HG_EINVAL = -2,    /* invalid argument or input */
  HG_EIO = -3,       /* I/O or storage failure */
  HG_ENOTFOUND = -4, /* no such object */
  HG_EEXIST = -5,    /* object already exists */
  HG_EBUSY = -6,     /* object in use (e.g. delivery in flight) */
  HG_ETIMEDOUT = -7, /* timed out */
  HG_ECLOSED = -8,   /* handle or connection closed */
  HG_ETOOBIG = -9,   /* input over a configured limit */
  HG_ECONFIG = -10,  /* configuration error */
  HG_ECORRUPT = -11, /* stored data unreadable, or schema newer than binary */
  HG_EFORBIDDEN = -12,
  HG_ESTATE = -13, /* call not valid in the current state */
  HG_ENOSPC = -14, /* no space left for the store or the intake log */
  HG_EUNAVAIL = -15, /* the store's server is unreachable (PostgreSQL down): try again later */
};

/* Returns a static, human-readable text for an HG_E* code. */
const char *hg_strerror(int err);

/* printf into err (errlen bytes) for a function that reports why it
 * failed; err may be NULL or errlen 0 (nothing is written). */
void hg_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
uint64_t hg_now_ns(void);
/* Wall clock in milliseconds since the Unix epoch: this machine's clock
 * plus the offset last set (0 unless set). */
int64_t hg_wall_ms(void);
/* Sets the offset hg_wall_ms adds: with a PostgreSQL store shared by
 * several nodes, the database's clock minus this machine's, so that every
 * node stamps events and schedules retries by one clock. Any thread. */
void hg_wall_set_offset(int64_t ms);
/* The offset hg_wall_ms adds now. */
int64_t hg_wall_offset(void);
/* Formats a wall-clock time in ms as RFC 3339 UTC with milliseconds,
 * e.g. "2026-11-27T06:02:11.123Z". buf must hold at least 25 bytes. */
void hg_format_time(int64_t ms, char buf[25]);
/* Parses an ISO 8601 date or date-time into Unix ms: "2026-11-01" (UTC
 * midnight), "2026-11-01T08:30", "2026-11-01T08:30:00", with optional
 * fractional seconds and an optional "Z" or "+HH:MM"/"-HH:MM" offset (no
 * offset: UTC); 'T' may be a space. Years 1970 to 9999. Returns 0, or -1
 * for anything else (including a day the month does not have). */
int hg_parse_time(const char *s, int64_t *ms);

/* Copies the NUL-terminated src into dst (cap >= 1 bytes), truncating;
 * dst is always NUL-terminated; a NULL src copies "". Returns the length written. For hot paths
 * where snprintf("%s") costs a format parse per call. */
size_t hg_copy(char *dst, size_t cap, const char *src);
/* Writes v in decimal (no NUL) to out, which must hold 20 bytes. Returns
 * the number of digits. */
size_t hg_fmt_u64(char *out, uint64_t v);
/* As hg_fmt_u64 for a signed value, with a leading '-' when negative; out
 * must hold 20 bytes. */
size_t hg_fmt_i64(char *out, int64_t v);

/* Parses a duration: digits with a unit, "90s", "15m", "12h", "5d", or
 * plain digits (seconds); "0" is zero. Sets *ms. Returns 0, or HG_EINVAL
 * for anything else (a sign, a fraction, no digits, an unknown unit, or
 * more than 100 years). */
int hg_parse_duration(const char *s, int64_t *ms);
/* Formats ms the way hg_parse_duration reads it, in the largest unit that
 * divides it ("5d", "36h", "90s"; "0s" for zero, and whole seconds,
 * rounded down, for a value that is not). out must hold 24 bytes. */
void hg_format_duration(int64_t ms, char out[24]);

#define HG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
