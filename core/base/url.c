/* url.c: see url.h. */
#include "base/url.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int hg_url_ok(const char *url, int allow_http, char *why, size_t cap) {
  size_t len = strlen(url);
  if (len > HG_URL_MAX) return snprintf(why, cap, "must be at most %d characters", HG_URL_MAX), 0;
  for (const char *p = url; *p; p++)
    if ((unsigned char)*p <= 0x20 || *p == 0x7f) return snprintf(why, cap, "must not contain spaces or control characters"), 0;
  const char *rest;
  if (strncasecmp(url, "https://", 8) == 0) rest = url + 8;
  else if (strncasecmp(url, "http://", 7) == 0 && allow_http) rest = url + 7;
  else
    return snprintf(why, cap, allow_http ? "must be an http or https URL" : "must be an https URL"), 0;
  size_t alen = strcspn(rest, "/?#");
  if (memchr(rest, '@', alen)) return snprintf(why, cap, "must not contain user information"), 0;
  if (strchr(url, '#')) return snprintf(why, cap, "must not contain a fragment"), 0;
  const char *host_end = rest + alen;
  if (rest[0] == '[') {
    const char *close = memchr(rest, ']', alen);
    if (close == NULL || close == rest + 1) return snprintf(why, cap, "has a malformed IPv6 host"), 0;
    for (const char *p = rest + 1; p < close; p++)
      if (!(strchr("0123456789abcdefABCDEF:.", *p))) return snprintf(why, cap, "has a malformed IPv6 host"), 0;
    host_end = close + 1;
  } else {
    const char *colon = memchr(rest, ':', alen);
    if (colon) host_end = colon;
    if (host_end == rest) return snprintf(why, cap, "must have a host"), 0;
    for (const char *p = rest; p < host_end; p++)
      if (!(((*p | 32) >= 'a' && (*p | 32) <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
        return snprintf(why, cap, "has an invalid character in the host"), 0;
  }
  if (host_end < rest + alen) {
    if (*host_end != ':' || host_end + 1 == rest + alen) return snprintf(why, cap, "has a malformed port"), 0;
    long port = 0;
    for (const char *p = host_end + 1; p < rest + alen; p++) {
      if (*p < '0' || *p > '9' || (port = port * 10 + (*p - '0')) > 65535)
        return snprintf(why, cap, "has a malformed port"), 0;
    }
    if (port == 0) return snprintf(why, cap, "has a malformed port"), 0;
  }
  return 1;
}
