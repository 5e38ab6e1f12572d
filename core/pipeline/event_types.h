/* event_types.h: the event types webhooks subscribe to, and patterns.
 *
 * Known types are the 15 built in (user.created, ...), the gateway's 3
 * operational ones (webhook.disabled, webhook.recovered,
 * delivery.exhausted), plus those named in the config. A subscription is an exact known type, "*" (everything), or a
 * prefix pattern "user.*" that matches every type starting with "user.". */
#ifndef HG_EVENT_TYPES_H
#define HG_EVENT_TYPES_H

#include "config/config.h"

#include <stddef.h>

typedef struct hg_event_types hg_event_types_t;

/* Builds the registry from the built-ins and extra (may be NULL). A bad
 * name in extra fails with HG_ECONFIG and a message in err. */
int hg_event_types_new(hg_event_types_t **out, const hg_strlist_t *extra, char *err, size_t errlen);
void hg_event_types_free(hg_event_types_t *t); /* accepts NULL */

/* 1 if type is a known event type. */
int hg_event_types_known(const hg_event_types_t *t, const char *type);

/* Number of known types and the i-th, in registration order. */
size_t hg_event_types_count(const hg_event_types_t *t);
const char *hg_event_types_at(const hg_event_types_t *t, size_t i);

/* Checks a subscription pattern. Returns 0, or HG_EINVAL with a reason in
 * why ("unknown event type \"user.craeted\""). */
int hg_event_pattern_check(const hg_event_types_t *t, const char *pattern, char *why, size_t cap);

/* 1 if type is one of the gateway's operational event types: only the
 * gateway publishes them, and "*" does not match them (a subscriber names
 * them, or "webhook.*" / "delivery.*"). */
int hg_event_type_operational(const char *type);

/* 1 if pattern ("*", "user.*" or an exact type) matches type. */
int hg_event_pattern_match(const char *pattern, const char *type);

/* 1 if s is a well-formed type name: dot-separated lowercase words of
 * [a-z0-9_], each starting with a letter, at most 128 characters. */
int hg_event_type_name_valid(const char *s);

#endif
