/* ssrf.h: the outbound-address guard (server-side request forgery).
 *
 * Every address a delivery would connect to is checked here after DNS and
 * before connect. Loopback, private, CGNAT, link-local (cloud metadata),
 * multicast, unspecified, broadcast and reserved ranges are refused, also
 * when hidden inside IPv6 (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible
 * ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32), unless
 * a configured CIDR allow-list admits the address. */
#ifndef HG_SSRF_H
#define HG_SSRF_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct hg_ssrf_policy hg_ssrf_policy_t;

/* Builds a policy from an allow-list of CIDRs ("127.0.0.0/8", "::1/128",
 * "10.0.0.5" = a single host). cidrs may be NULL when n is 0: the default
 * policy, which admits only public addresses. On a bad entry returns
 * HG_EINVAL and writes e.g. "allow-list entry 2: \"10.0.0.0/33\": prefix
 * length must be 0..32" into err (err may be NULL). Returns 0, HG_EINVAL or
 * HG_ENOMEM; *out is set only on success. */
int hg_ssrf_policy_parse(hg_ssrf_policy_t **out, const char *const *cidrs, size_t n, char *err,
                         size_t errlen);

/* Frees a policy. Accepts NULL. */
void hg_ssrf_policy_free(hg_ssrf_policy_t *p);

/* Checks one resolved address (AF_INET or AF_INET6). policy may be NULL
 * (the default policy). Returns 0 when the address may be contacted, or
 * HG_EFORBIDDEN and writes the reason into reason, e.g. "ssrf: 127.0.0.1 is
 * a loopback address (not in allow-list)". Other families are refused. */
int hg_ssrf_check(const hg_ssrf_policy_t *policy, const struct sockaddr *sa, char *reason,
                  size_t reasonlen);

#endif
