#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "base/common.h"
#include "hgtest.h"
#include "net/ssrf.h"

/* Checks one literal address; returns the reason ("" when allowed). */
static const char *check(const hg_ssrf_policy_t *p, const char *ip) {
  static char reason[256];
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &s6->sin6_addr);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &s4->sin_addr);
  }
  reason[0] = '\0';
  int rc = hg_ssrf_check(p, (struct sockaddr *)&ss, reason, sizeof(reason));
  if (rc == 0) return "";
  if (rc != HG_EFORBIDDEN) return "bad return code";
  return reason;
}

static void default_policy(void) {
  CHECK_EQ_STR(check(NULL, "127.0.0.1"), "ssrf: 127.0.0.1 is a loopback address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "::1"), "ssrf: ::1 is a loopback address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "10.1.2.3"), "ssrf: 10.1.2.3 is a private address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "172.20.0.1"), "ssrf: 172.20.0.1 is a private address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "192.168.1.1"), "ssrf: 192.168.1.1 is a private address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "100.64.0.1"),
               "ssrf: 100.64.0.1 is a shared (CGNAT) address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "169.254.169.254"),
               "ssrf: 169.254.169.254 is a link-local address (cloud metadata) (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "169.254.1.1"),
               "ssrf: 169.254.1.1 is a link-local address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "0.0.0.0"), "ssrf: 0.0.0.0 is an unspecified address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "::"), "ssrf: :: is an unspecified address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "255.255.255.255"),
               "ssrf: 255.255.255.255 is a broadcast address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "224.0.0.1"), "ssrf: 224.0.0.1 is a multicast address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "ff02::1"), "ssrf: ff02::1 is a multicast address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "fe80::1"), "ssrf: fe80::1 is a link-local address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "fd00::1"),
               "ssrf: fd00::1 is a private (unique local) address (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "::ffff:127.0.0.1"),
               "ssrf: ::ffff:127.0.0.1 is a loopback address via IPv4-mapped 127.0.0.1 (not in "
               "allow-list)");
  CHECK_EQ_STR(check(NULL, "::ffff:169.254.169.254"),
               "ssrf: ::ffff:169.254.169.254 is a link-local address (cloud metadata) via "
               "IPv4-mapped 169.254.169.254 (not in allow-list)");
  CHECK_EQ_STR(check(NULL, "::10.0.0.1"),
               "ssrf: ::10.0.0.1 is a private address via IPv4-compatible 10.0.0.1 (not in "
               "allow-list)");
  CHECK_EQ_STR(check(NULL, "64:ff9b::7f00:1"),
               "ssrf: 64:ff9b::7f00:1 is a loopback address via NAT64 127.0.0.1 (not in "
               "allow-list)");
  CHECK_EQ_STR(check(NULL, "2002:a9fe:a9fe::1"),
               "ssrf: 2002:a9fe:a9fe::1 is a link-local address (cloud metadata) via 6to4 "
               "169.254.169.254 (not in allow-list)");
  /* Public addresses pass, also inside IPv6. */
  CHECK_EQ_STR(check(NULL, "93.184.216.34"), "");
  CHECK_EQ_STR(check(NULL, "2606:2800:220:1:248:1893:25c8:1946"), "");
  CHECK_EQ_STR(check(NULL, "::ffff:93.184.216.34"), "");
  CHECK_EQ_STR(check(NULL, "2002:5db8:d822::1"), "");
  CHECK_EQ_STR(check(NULL, "172.32.0.1"), "");
  CHECK_EQ_STR(check(NULL, "100.128.0.1"), "");
}

static void allow_list(void) {
  hg_ssrf_policy_t *p = NULL;
  const char *cidrs[] = {"127.0.0.0/8", "::1/128", "10.1.0.0/16", "fd12:3456::/32"};
  CHECK_EQ_INT(hg_ssrf_policy_parse(&p, cidrs, HG_ARRAY_LEN(cidrs), NULL, 0), 0);
  CHECK_EQ_STR(check(p, "127.0.0.1"), "");
  CHECK_EQ_STR(check(p, "127.255.0.9"), "");
  CHECK_EQ_STR(check(p, "::1"), "");
  CHECK_EQ_STR(check(p, "::ffff:127.0.0.1"), "");
  CHECK_EQ_STR(check(p, "10.1.2.3"), "");
  CHECK_EQ_STR(check(p, "fd12:3456::77"), "");
  CHECK_EQ_STR(check(p, "10.2.0.1"), "ssrf: 10.2.0.1 is a private address (not in allow-list)");
  CHECK_EQ_STR(check(p, "169.254.169.254"),
               "ssrf: 169.254.169.254 is a link-local address (cloud metadata) (not in allow-list)");
  hg_ssrf_policy_free(p);

  /* A single host and host bits past the prefix. */
  const char *more[] = {"169.254.169.254", "192.168.7.9/24"};
  CHECK_EQ_INT(hg_ssrf_policy_parse(&p, more, 2, NULL, 0), 0);
  CHECK_EQ_STR(check(p, "169.254.169.254"), "");
  CHECK_EQ_STR(check(p, "169.254.169.253"),
               "ssrf: 169.254.169.253 is a link-local address (not in allow-list)");
  CHECK_EQ_STR(check(p, "192.168.7.200"), "");
  hg_ssrf_policy_free(p);

  hg_ssrf_policy_t *empty = NULL;
  CHECK_EQ_INT(hg_ssrf_policy_parse(&empty, NULL, 0, NULL, 0), 0);
  CHECK_EQ_STR(check(empty, "127.0.0.1"), "ssrf: 127.0.0.1 is a loopback address (not in allow-list)");
  hg_ssrf_policy_free(empty);
  hg_ssrf_policy_free(NULL);
}

static void bad_cidrs(void) {
  char err[256];
  hg_ssrf_policy_t *p = NULL;
  const char *a[] = {"127.0.0.0/8", "10.0.0.0/33"};
  CHECK_EQ_INT(hg_ssrf_policy_parse(&p, a, 2, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_STR(err, "allow-list entry 2: \"10.0.0.0/33\": prefix length must be 0..32");
  CHECK(p == NULL);
  const char *b[] = {"localhost/8"};
  CHECK_EQ_INT(hg_ssrf_policy_parse(&p, b, 1, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_STR(err, "allow-list entry 1: \"localhost/8\": \"localhost\" is not an IP address");
  const char *c[] = {"::1/129"};
  CHECK_EQ_INT(hg_ssrf_policy_parse(&p, c, 1, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_STR(err, "allow-list entry 1: \"::1/129\": prefix length must be 0..128");
  const char *d[] = {"10.0.0.0/"};
  CHECK_EQ_INT(hg_ssrf_policy_parse(&p, d, 1, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_STR(err, "allow-list entry 1: \"10.0.0.0/\": prefix length must be a number 0..32");
  const char *e[] = {""};
  CHECK_EQ_INT(hg_ssrf_policy_parse(&p, e, 1, err, sizeof(err)), HG_EINVAL);
  CHECK(p == NULL);
}

int main(void) {
  RUN(default_policy);
  RUN(allow_list);
  RUN(bad_cidrs);
  return HGT_DONE();
}
