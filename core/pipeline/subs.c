/* subs.c: the in-memory subscription index. */
#include "pipeline/subs.h"

#include "base/common.h"
#include "base/log.h"
#include "pipeline/event_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Up to how many patterns one event type can match: itself, each dotted
 * prefix with ".*", and "*". */
#define HG_EVENT_MAX_PATTERNS 10

/* Recent answers of hg_subs_match, by (type, organization): a publisher
 * sends the same few types, and building the answer from the index cost
 * about 2,300 instructions an event in jansson lookups and allocations
 * (callgrind, ingest). Any change to the index empties it (gen). 64 slots:
 * far more (type, organization) pairs than one gateway's hot set; key: a
 * type and an organization id of up to 132 bytes each, and the separator. */
#define MATCH_CACHE 64

typedef struct match_entry {
  uint64_t gen; /* 0: empty */
  char key[272]; /* type, '\n', organization */
  json_t *ids;
} match_entry_t;

struct hg_subs {
  json_t *hooks;    /* id -> {"org": string|null, "active": bool, "events": [patterns]} */
  json_t *patterns; /* pattern -> {id: true} */
  uint64_t gen;     /* bumped by every change */
  int any_ordered;  /* some webhook is (or may be) ordered: hg_subs_any_ordered */
  match_entry_t cache[MATCH_CACHE];
};

hg_subs_t *hg_subs_new(void) {
  hg_subs_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  s->hooks = json_object();
  s->patterns = json_object();
  s->gen = 1;
  if (s->hooks == NULL || s->patterns == NULL) {
    hg_subs_free(s);
    return NULL;
  }
  return s;
}

void hg_subs_free(hg_subs_t *s) {
  if (s == NULL) return;
  for (size_t i = 0; i < MATCH_CACHE; i++) json_decref(s->cache[i].ids);
  json_decref(s->hooks);
  json_decref(s->patterns);
  free(s);
}

void hg_subs_replace(hg_subs_t *dst, hg_subs_t *src) {
  uint64_t gen = dst->gen;
  hg_subs_t tmp = *dst;
  *dst = *src;
  *src = tmp;
  /* Every answer dst kept (now src's) is stale; the ones it takes over
   * (none: src was just loaded) would be too under an older number. */
  dst->gen = (gen > src->gen ? gen : src->gen) + 1;
  for (size_t i = 0; i < MATCH_CACHE; i++) dst->cache[i].gen = 0;
}

void hg_subs_del(hg_subs_t *s, const char *id) {
  s->gen++;
  json_t *h = json_object_get(s->hooks, id);
  if (h == NULL) return;
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(h, "events"), i, p) {
    json_t *set = json_object_get(s->patterns, json_string_value(p));
    json_object_del(set, id);
    if (set != NULL && json_object_size(set) == 0) json_object_del(s->patterns, json_string_value(p));
  }
  json_object_del(s->hooks, id);
}

int hg_subs_put(hg_subs_t *s, const char *id, const char *org, int active, const char *events_json) {
  hg_subs_del(s, id); /* bumps gen */
  json_t *events = json_loads(events_json, 0, NULL);
  if (!json_is_array(events)) {
    json_decref(events);
    return HG_EINVAL;
  }
  json_t *h = json_pack("{s:o,s:b,s:o}", "org", org ? json_string(org) : json_null(), "active", active, "events",
                        events);
  if (h == NULL) return HG_ENOMEM;
  size_t i;
  json_t *p;
  json_array_foreach(events, i, p) {
    const char *pat = json_string_value(p);
    if (pat == NULL) continue;
    json_t *set = json_object_get(s->patterns, pat);
    if (set == NULL) {
      set = json_object();
      json_object_set_new(s->patterns, pat, set);
    }
    json_object_set(set, id, json_true());
  }
  json_object_set_new(s->hooks, id, h);
  return 0;
}

void hg_subs_set_active(hg_subs_t *s, const char *id, int active) {
  s->gen++;
  json_t *h = json_object_get(s->hooks, id);
  if (h != NULL) json_object_set_new(h, "active", json_boolean(active));
}

int hg_subs_count_active(hg_subs_t *s, json_t *ids) {
  int n = 0;
  size_t i;
  json_t *id;
  json_array_foreach(ids, i, id) {
    json_t *h = json_is_string(id) ? json_object_get(s->hooks, json_string_value(id)) : NULL;
    n += h != NULL && json_is_true(json_object_get(h, "active"));
  }
  return n;
}

json_t *hg_subs_filter_active(hg_subs_t *s, json_t *ids) {
  json_t *out = json_array();
  size_t i;
  json_t *id;
  if (out == NULL) return NULL;
  json_array_foreach(ids, i, id) {
    json_t *h = json_is_string(id) ? json_object_get(s->hooks, json_string_value(id)) : NULL;
    if (h != NULL && json_is_true(json_object_get(h, "active"))) json_array_append(out, id);
  }
  return out;
}

int hg_subs_load(hg_subs_t *s, hg_db_t *db) {
  hg_stmt_t *st = NULL;
  int rc = hg_db_prepare(db, "SELECT id, organization_id, active, events FROM webhooks", &st);
  if (rc != 0) {
    hg_log(HG_LOG_ERROR, "cannot read webhooks for the subscription index", "error", hg_db_errmsg(db), NULL);
    return rc;
  }
  int r = 0;
  while (r == 0 && (rc = hg_db_step(st)) == HG_DB_ROW)
    r = hg_subs_put(s, hg_db_column_text(st, 0), hg_db_column_text(st, 1), hg_db_column_int64(st, 2) != 0,
                    hg_db_column_text(st, 3));
  /* The step's own code: HG_EUNAVAIL (the server lost) is no I/O error. */
  if (r == 0 && rc != HG_DB_DONE) r = rc;
  hg_db_release(st);
  if (r != 0) return r;
  if ((rc = hg_db_prepare(db, "SELECT count(*) FROM webhook_lines", &st)) != 0) {
    hg_log(HG_LOG_ERROR, "cannot read ordered webhooks for the subscription index", "error", hg_db_errmsg(db), NULL);
    return rc;
  }
  if ((rc = hg_db_step(st)) == HG_DB_ROW) s->any_ordered = hg_db_column_int64(st, 0) > 0;
  else r = rc < 0 ? rc : HG_EIO;
  hg_db_release(st);
  return r;
}

int hg_subs_any_ordered(const hg_subs_t *s) { return s->any_ordered; }

void hg_subs_note_ordered(hg_subs_t *s) { s->any_ordered = 1; }

static json_t *match(hg_subs_t *s, const char *type, const char *org);

json_t *hg_subs_match(hg_subs_t *s, const char *type, const char *org) {
  char key[sizeof(s->cache[0].key)];
  size_t tl = strlen(type), ol = org ? strlen(org) : 0, kl = tl + 1 + ol;
  if (kl >= sizeof(key)) return match(s, type, org);
  memcpy(key, type, tl); /* "type\norg" */
  key[tl] = '\n';
  if (ol) memcpy(key + tl + 1, org, ol);
  key[kl] = '\0';
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < kl; i++) h = (h ^ (unsigned char)key[i]) * 16777619u;
  match_entry_t *e = &s->cache[h % MATCH_CACHE];
  if (e->gen == s->gen && strcmp(e->key, key) == 0) return json_incref(e->ids);
  json_t *ids = match(s, type, org);
  if (ids == NULL) return NULL;
  json_decref(e->ids);
  e->ids = json_incref(ids);
  e->gen = s->gen;
  memcpy(e->key, key, kl + 1);
  return ids;
}

static json_t *match(hg_subs_t *s, const char *type, const char *org) {
  char patterns[HG_EVENT_MAX_PATTERNS][136];
  size_t n = 0;
  size_t tl = hg_copy(patterns[n++], sizeof(patterns[0]), type);
  for (size_t i = tl; i > 0 && n < HG_EVENT_MAX_PATTERNS - 1; i--) {
    if (type[i - 1] != '.' || i + 2 > sizeof(patterns[0])) continue;
    /* "a.b.c" gives "a.b.*", then "a.*" */
    memcpy(patterns[n], type, i);
    patterns[n][i] = '*';
    patterns[n++][i + 1] = '\0';
  }
  /* "*" is every event the publishers send, not the gateway's own: an
   * operational event goes to webhooks that asked for it by name. */
  if (!hg_event_type_operational(type)) memcpy(patterns[n++], "*", 2);
  json_t *ids = json_array(), *seen = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *id;
    json_t *v;
    json_object_foreach(json_object_get(s->patterns, patterns[i]), id, v) {
      json_t *h = json_object_get(s->hooks, id);
      if (h == NULL || !json_is_true(json_object_get(h, "active"))) continue;
      const char *worg = json_string_value(json_object_get(h, "org"));
      /* A webhook without organization gets every organization's events;
       * an event without organization reaches only webhooks without one. */
      if (worg != NULL && (org == NULL || org[0] == '\0' || strcmp(worg, org) != 0)) continue;
      /* One webhook may match through two patterns ("user.*" and
       * "user.created"): keep it once. */
      if (json_array_size(ids) == 1 && seen == NULL) {
        seen = json_object();
        json_object_set(seen, json_string_value(json_array_get(ids, 0)), json_true());
      }
      if (seen != NULL) {
        if (json_object_get(seen, id)) continue;
        json_object_set(seen, id, json_true());
      }
      json_array_append_new(ids, json_string(id));
    }
  }
  json_decref(seen);
  return ids;
}
