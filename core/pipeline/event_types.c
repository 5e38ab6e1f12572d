/* event_types.c: the registry of known event types. */
#include "pipeline/event_types.h"

#include "base/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The identity platform's 15 event types (see the SDK reference). */
static const char *const builtin[] = {
    "user.created",          "user.updated",          "user.deleted",
    "session.created",       "session.revoked",       "organization.created",
    "organization.updated",  "organization.member.added", "organization.member.removed",
    "oauth.consent.granted", "oauth.consent.revoked", "mfa.enrolled",
    "mfa.removed",           "sso.connection.created", "directory.sync.completed",
};

/* The gateway's own operational events (pipeline/health.h): known and
 * subscribable like the rest, published only by the gateway. */
static const char *const operational[] = {"webhook.disabled", "webhook.recovered", "delivery.exhausted"};

int hg_event_type_operational(const char *type) {
  for (size_t i = 0; i < HG_ARRAY_LEN(operational); i++)
    if (strcmp(type, operational[i]) == 0) return 1;
  return 0;
}

struct hg_event_types {
  char **names;
  size_t n;
};

int hg_event_type_name_valid(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 128) return 0;
  int at_word_start = 1;
  for (const char *p = s; *p; p++) {
    char c = *p;
    if (at_word_start) {
      if (!(c >= 'a' && c <= 'z')) return 0;
      at_word_start = 0;
    } else if (c == '.') {
      at_word_start = 1;
    } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return 0;
    }
  }
  return !at_word_start;
}

static int add(hg_event_types_t *t, const char *name) {
  if (hg_event_types_known(t, name)) return 0;
  char **names = realloc(t->names, (t->n + 1) * sizeof(*names));
  if (names == NULL) return HG_ENOMEM;
  t->names = names;
  if ((names[t->n] = strdup(name)) == NULL) return HG_ENOMEM;
  t->n++;
  return 0;
}

int hg_event_types_new(hg_event_types_t **out, const hg_strlist_t *extra, char *err, size_t errlen) {
  hg_event_types_t *t = calloc(1, sizeof(*t));
  int r = HG_ENOMEM;
  if (t == NULL) goto fail;
  for (size_t i = 0; i < HG_ARRAY_LEN(builtin); i++)
    if ((r = add(t, builtin[i])) != 0) goto fail;
  for (size_t i = 0; i < HG_ARRAY_LEN(operational); i++)
    if ((r = add(t, operational[i])) != 0) goto fail;
  for (size_t i = 0; extra && i < extra->n; i++) {
    if (!hg_event_type_name_valid(extra->items[i])) {
      snprintf(err, errlen,
               "webhooks.event_types: \"%s\" is not a valid event type name (dot-separated lowercase words, e.g. "
               "\"invoice.paid\")",
               extra->items[i]);
      r = HG_ECONFIG;
      goto fail;
    }
    if ((r = add(t, extra->items[i])) != 0) goto fail;
  }
  *out = t;
  return 0;
fail:
  if (r == HG_ENOMEM) snprintf(err, errlen, "out of memory");
  hg_event_types_free(t);
  return r;
}

void hg_event_types_free(hg_event_types_t *t) {
  if (t == NULL) return;
  for (size_t i = 0; i < t->n; i++) free(t->names[i]);
  free(t->names);
  free(t);
}

int hg_event_types_known(const hg_event_types_t *t, const char *type) {
  /* Tens of types: a scan is cheaper than hashing. */
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->names[i], type) == 0) return 1;
  return 0;
}

size_t hg_event_types_count(const hg_event_types_t *t) { return t->n; }
const char *hg_event_types_at(const hg_event_types_t *t, size_t i) { return i < t->n ? t->names[i] : NULL; }

int hg_event_pattern_match(const char *pattern, const char *type) {
  size_t plen = strlen(pattern);
  if (plen == 1 && pattern[0] == '*') return !hg_event_type_operational(type);
  if (plen >= 2 && pattern[plen - 1] == '*' && pattern[plen - 2] == '.')
    return strncmp(pattern, type, plen - 1) == 0;
  return strcmp(pattern, type) == 0;
}

int hg_event_pattern_check(const hg_event_types_t *t, const char *pattern, char *why, size_t cap) {
  size_t plen = strlen(pattern);
  if (strcmp(pattern, "*") == 0) return 0;
  if (plen >= 3 && pattern[plen - 1] == '*' && pattern[plen - 2] == '.') {
    char prefix[130];
    if (plen - 2 >= sizeof(prefix)) goto bad_name;
    memcpy(prefix, pattern, plen - 2);
    prefix[plen - 2] = '\0';
    if (!hg_event_type_name_valid(prefix)) goto bad_name;
    for (size_t i = 0; i < t->n; i++)
      if (hg_event_pattern_match(pattern, t->names[i])) return 0;
    snprintf(why, cap, "pattern \"%s\" matches no known event type", pattern);
    return HG_EINVAL;
  }
  if (!hg_event_type_name_valid(pattern)) goto bad_name;
  if (!hg_event_types_known(t, pattern)) {
    snprintf(why, cap, "unknown event type \"%s\"", pattern);
    return HG_EINVAL;
  }
  return 0;
bad_name:
  snprintf(why, cap, "\"%.140s\" is not an event type or pattern (e.g. \"user.created\", \"user.*\", \"*\")", pattern);
  return HG_EINVAL;
}
