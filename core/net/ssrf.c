/* ssrf.c: classifies outbound addresses and applies the CIDR allow-list.
 *
 * Addresses are compared as 16 bytes: IPv4 becomes ::ffff:a.b.c.d, and an
 * IPv4 CIDR of length n becomes an IPv4-mapped CIDR of length 96 + n, so one
 * matcher serves both families. */
#include "net/ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

typedef struct cidr {
  uint8_t addr[16];
  unsigned prefix; /* 0..128, in mapped form for IPv4 */
} cidr_t;

struct hg_ssrf_policy {
  size_t n;
  cidr_t allow[]; /* n entries */
};

typedef struct range {
  const char *net;
  unsigned prefix;
  const char *what; /* completes "x is ..." */
} range_t;

/* First match wins, so narrower ranges come before the ranges holding them. */
static const range_t v4_ranges[] = {
    {"0.0.0.0", 32, "an unspecified address"},
    {"0.0.0.0", 8, "a 'this network' address"},
    {"127.0.0.0", 8, "a loopback address"},
    {"10.0.0.0", 8, "a private address"},
    {"172.16.0.0", 12, "a private address"},
    {"192.168.0.0", 16, "a private address"},
    {"100.64.0.0", 10, "a shared (CGNAT) address"},
    {"169.254.169.254", 32, "a link-local address (cloud metadata)"},
    {"169.254.0.0", 16, "a link-local address"},
    {"192.0.0.0", 24, "an IETF protocol address"},
    {"192.0.2.0", 24, "a documentation address"},
    {"198.51.100.0", 24, "a documentation address"},
    {"203.0.113.0", 24, "a documentation address"},
    {"198.18.0.0", 15, "a benchmarking address"},
    {"224.0.0.0", 4, "a multicast address"},
    {"255.255.255.255", 32, "a broadcast address"},
    {"240.0.0.0", 4, "a reserved address"},
};

static const range_t v6_ranges[] = {
    {"::", 128, "an unspecified address"},
    {"::1", 128, "a loopback address"},
    {"fc00::", 7, "a private (unique local) address"},
    {"fe80::", 10, "a link-local address"},
    {"fec0::", 10, "a site-local address"},
    {"ff00::", 8, "a multicast address"},
    {"2001:db8::", 32, "a documentation address"},
    {"100::", 64, "a discard-only address"},
    {"64:ff9b:1::", 48, "a private (local NAT64) address"},
};

static int prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix) {
  unsigned full = prefix / 8, rest = prefix % 8;
  if (memcmp(a, net, full) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a[full] & mask) == (net[full] & mask);
}

static void map_v4(uint8_t out[16], const uint8_t v4[4]) {
  memset(out, 0, 10);
  out[10] = out[11] = 0xff;
  memcpy(out + 12, v4, 4);
}

static int allowed(const hg_ssrf_policy_t *p, const uint8_t a[16]) {
  if (p == NULL) return 0;
  for (size_t i = 0; i < p->n; i++)
    if (prefix_match(a, p->allow[i].addr, p->allow[i].prefix)) return 1;
  return 0;
}

static const char *classify(const range_t *r, size_t n, int v4, const uint8_t *a) {
  for (size_t i = 0; i < n; i++) {
    uint8_t net[16];
    inet_pton(v4 ? AF_INET : AF_INET6, r[i].net, net);
    if (prefix_match(a, net, r[i].prefix)) return r[i].what;
  }
  return NULL;
}

/* Finds an IPv4 address carried inside an IPv6 one. Returns a label for the
 * form, or NULL when there is none. */
static const char *embedded_v4(const uint8_t a[16], uint8_t v4[4]) {
  static const uint8_t zero[12];
  static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (memcmp(a, zero, 10) == 0 && a[10] == 0xff && a[11] == 0xff) {
    memcpy(v4, a + 12, 4);
    return "IPv4-mapped";
  }
  if (memcmp(a, nat64, 12) == 0) {
    memcpy(v4, a + 12, 4);
    return "NAT64";
  }
  if (a[0] == 0x20 && a[1] == 0x02) {
    memcpy(v4, a + 2, 4);
    return "6to4";
  }
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
    /* Teredo stores the client's IPv4 address inverted in the last 32 bits. */
    for (int i = 0; i < 4; i++) v4[i] = (uint8_t)~a[12 + i];
    return "Teredo";
  }
  /* IPv4-compatible ::a.b.c.d (deprecated); :: and ::1 are IPv6's own. */
  if (memcmp(a, zero, 12) == 0 && !(a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] <= 1)) {
    memcpy(v4, a + 12, 4);
    return "IPv4-compatible";
  }
  return NULL;
}

int hg_ssrf_check(const hg_ssrf_policy_t *policy, const struct sockaddr *sa, char *reason,
                  size_t reasonlen) {
  uint8_t a[16];
  char text[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    map_v4(a, (const uint8_t *)&sin->sin_addr);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    memcpy(a, &sin6->sin6_addr, 16);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
  } else {
    if (reason) snprintf(reason, reasonlen, "ssrf: address family %d not allowed", sa->sa_family);
    return HG_EFORBIDDEN;
  }
  if (allowed(policy, a)) return 0;

  const char *what = NULL, *via = NULL;
  uint8_t v4[4];
  char v4text[INET_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) {
    what = classify(v4_ranges, HG_ARRAY_LEN(v4_ranges), 1, a + 12);
  } else if ((via = embedded_v4(a, v4)) != NULL) {
    uint8_t m[16];
    map_v4(m, v4);
    /* The allow-list speaks of destinations, and 127.0.0.1 is the same one
     * whether spelled as IPv4 or inside IPv6. */
    if (allowed(policy, m)) return 0;
    what = classify(v4_ranges, HG_ARRAY_LEN(v4_ranges), 1, v4);
    inet_ntop(AF_INET, v4, v4text, sizeof(v4text));
  } else {
    what = classify(v6_ranges, HG_ARRAY_LEN(v6_ranges), 0, a);
  }
  if (what == NULL) return 0;
  if (reason) {
    if (via != NULL)
      snprintf(reason, reasonlen, "ssrf: %s is %s via %s %s (not in allow-list)", text, what, via,
               v4text);
    else
      snprintf(reason, reasonlen, "ssrf: %s is %s (not in allow-list)", text, what);
  }
  return HG_EFORBIDDEN;
}

static int parse_cidr(const char *s, cidr_t *out, char *err, size_t errlen) {
  char buf[INET6_ADDRSTRLEN + 8];
  size_t len = strlen(s);
  if (len == 0 || len >= sizeof(buf)) {
    snprintf(err, errlen, "not an IP address or CIDR");
    return HG_EINVAL;
  }
  memcpy(buf, s, len + 1);
  char *slash = strchr(buf, '/');
  if (slash) *slash = '\0';
  uint8_t raw[16];
  unsigned max;
  if (inet_pton(AF_INET, buf, raw) == 1) {
    map_v4(out->addr, raw);
    max = 32;
  } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
    max = 128;
  } else {
    snprintf(err, errlen, "\"%s\" is not an IP address", buf);
    return HG_EINVAL;
  }
  unsigned prefix = max;
  if (slash) {
    const char *p = slash + 1;
    if (*p == '\0' || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p)) {
      snprintf(err, errlen, "prefix length must be a number 0..%u", max);
      return HG_EINVAL;
    }
    prefix = (unsigned)atoi(p);
    if (prefix > max) {
      snprintf(err, errlen, "prefix length must be 0..%u", max);
      return HG_EINVAL;
    }
  }
  out->prefix = max == 32 ? prefix + 96 : prefix;
  /* Host bits past the prefix are ignored: "127.0.0.1/8" means 127.0.0.0/8. */
  return 0;
}

int hg_ssrf_policy_parse(hg_ssrf_policy_t **out, const char *const *cidrs, size_t n, char *err,
                         size_t errlen) {
  char why[128];
  hg_ssrf_policy_t *p = calloc(1, sizeof(*p) + n * sizeof(cidr_t));
  if (p == NULL) return HG_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (cidrs[i] == NULL || parse_cidr(cidrs[i], &p->allow[i], why, sizeof(why)) != 0) {
      if (err)
        snprintf(err, errlen, "allow-list entry %zu: \"%s\": %s", i + 1,
                 cidrs[i] ? cidrs[i] : "(null)", cidrs[i] ? why : "missing");
      free(p);
      return HG_EINVAL;
    }
  }
  p->n = n;
  *out = p;
  return 0;
}

void hg_ssrf_policy_free(hg_ssrf_policy_t *p) { free(p); }
