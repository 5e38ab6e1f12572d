/* fuzz_ssrf.c: the outbound-address guard (core/ssrf.c).
 *
 * Input: lines. Every line but the last is an allow-list entry; the last
 * is an address (an IPv4 or IPv6 literal). The same bytes, read raw, also
 * give an IPv4 and an IPv6 address, so the fuzzer reaches every address,
 * not only those it can spell. Checked, besides memory safety:
 *  - the policy parser accepts or refuses with a message; the checker
 *    answers 0 or HG_EFORBIDDEN with a NUL-terminated reason that fits
 *    any buffer size;
 *  - an IPv4 address and its IPv4-mapped form (::ffff:a.b.c.d) get the
 *    same answer under any policy;
 *  - under the default policy, an IPv4 address refused is also refused
 *    inside NAT64 (64:ff9b::/96), 6to4 (2002::/16) and Teredo
 *    (2001:0::/32). */
#include "base/common.h"
#include "net/ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 16

static int check4(const hg_ssrf_policy_t *p, const uint8_t v4[4]) {
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  memcpy(&sin.sin_addr, v4, 4);
  char reason[160];
  int r = hg_ssrf_check(p, (struct sockaddr *)&sin, reason, sizeof(reason));
  if (r != 0 && r != HG_EFORBIDDEN) abort();
  if (r != 0 && (strnlen(reason, sizeof(reason)) == sizeof(reason) || strncmp(reason, "ssrf: ", 6) != 0)) abort();
  return r;
}

static int check6(const hg_ssrf_policy_t *p, const uint8_t v6[16], size_t reasonlen) {
  struct sockaddr_in6 sin6;
  memset(&sin6, 0, sizeof(sin6));
  sin6.sin6_family = AF_INET6;
  memcpy(&sin6.sin6_addr, v6, 16);
  char reason[160];
  memset(reason, 'x', sizeof(reason));
  int r = hg_ssrf_check(p, (struct sockaddr *)&sin6, reasonlen ? reason : NULL, reasonlen);
  if (r != 0 && r != HG_EFORBIDDEN) abort();
  /* snprintf's contract: within reasonlen, NUL-terminated. */
  if (r != 0 && reasonlen > 0 && strnlen(reason, reasonlen) == reasonlen) abort();
  return r;
}

static void embedded(const hg_ssrf_policy_t *p, const uint8_t v4[4]) {
  int want = check4(p, v4);
  uint8_t a[16];
  memset(a, 0, 16);
  a[10] = a[11] = 0xff;
  memcpy(a + 12, v4, 4);
  if (check6(p, a, 160) != want) {
    fprintf(stderr, "ssrf: %u.%u.%u.%u and its IPv4-mapped form disagree\n", v4[0], v4[1], v4[2], v4[3]);
    abort();
  }
  if (p != NULL || want == 0) return;
  static const uint8_t nat64[4] = {0x00, 0x64, 0xff, 0x9b};
  memset(a, 0, 16);
  memcpy(a, nat64, 4);
  memcpy(a + 12, v4, 4);
  if (check6(p, a, 160) == 0) abort();
  memset(a, 0x5a, 16);
  a[0] = 0x20, a[1] = 0x02;
  memcpy(a + 2, v4, 4);
  if (check6(p, a, 160) == 0) abort();
  memset(a, 0x5a, 16);
  a[0] = 0x20, a[1] = 0x01, a[2] = 0, a[3] = 0;
  for (int i = 0; i < 4; i++) a[12 + i] = (uint8_t)~v4[i];
  if (check6(p, a, 160) == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  const char *lines[MAX_ENTRIES + 1];
  size_t n = 0;
  for (char *p = text; n < MAX_ENTRIES + 1;) {
    lines[n++] = p;
    char *nl = strchr(p, '\n');
    if (nl == NULL) break;
    *nl = '\0';
    p = nl + 1;
  }
  const char *addr = lines[n - 1];
  hg_ssrf_policy_t *pol = NULL;
  char err[128];
  memset(err, 'x', sizeof(err));
  int r = hg_ssrf_policy_parse(&pol, lines, n - 1, err, sizeof(err));
  if (r != 0 && (r != HG_EINVAL || pol != NULL || strnlen(err, sizeof(err)) == sizeof(err))) abort();
  uint8_t a[16];
  if (inet_pton(AF_INET, addr, a) == 1) {
    embedded(pol, a);
    embedded(NULL, a);
  } else if (inet_pton(AF_INET6, addr, a) == 1) {
    for (size_t len = 0; len < 64; len += 7) check6(pol, a, len);
    check6(NULL, a, 160);
  }
  /* The raw bytes as addresses. */
  uint8_t raw[16] = {0};
  memcpy(raw, data, size < 16 ? size : 16);
  embedded(pol, raw);
  embedded(NULL, raw);
  check6(pol, raw, 160);
  check6(NULL, raw, size % 64);
  hg_ssrf_policy_free(pol);
  free(text);
  return 0;
}
