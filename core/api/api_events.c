/* api_events.c: POST /v1/events and /v1/events/batch, GET /v1/event-types.
 *
 * A publish is parsed and validated here, goes through the Lua ingest and
 * route phases when a plugin has them, and is handed to the ingest
 * (pipeline/ingest.h), which makes it durable; its report is answered here.
 * An event is answered 202 only once it is durable. The body a receiver
 * gets is built once here, with the publisher's own bytes for `data`, and
 * stored: every attempt and every endpoint sends the same bytes. */
#include "api/api.h"

#include "base/common.h"
#include "base/ids.h"
#include "lua/runtime.h"
#include "pipeline/event_types.h"
#include "pipeline/ingest.h"
#include "pipeline/subs.h"
#include "store/events.h"
#include "store/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_BATCH 1000
#define MAX_IDEMPOTENCY_KEY 255

/* One publish request, from its validation to its answer. */
typedef struct publish {
  hg_api_t *api;
  hg_http_req_t *req;
  /* The events; what they point to (payload, idem_key, targets) is ours
   * until hg_ingest_submit takes it. */
  hg_event_in_t *events;
  size_t n;
  int batch;
  /* Lua phases in progress. */
  hg_lua_t *lua;      /* the generation the phases run on (referenced) */
  size_t pending;     /* runs not yet done */
  int failed;         /* answered already (a rejection or a script error) */
  int routed;         /* a route plugin replaced some event's targets */
  /* A single event's storage, so that it costs no allocation of its own. */
  hg_event_in_t one;
} publish_t;

static void publish_free(publish_t *g) {
  if (g == NULL) return;
  for (size_t i = 0; i < g->n; i++) hg_ingest_event_done(&g->events[i]);
  if (g->lua) hg_lua_unref(g->lua);
  if (g->events != &g->one) free(g->events);
  free(g);
}

static void run_lua_then_store(publish_t *g);
static void after_ingest(publish_t *g);

static int id_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ':';
}

/* Builds the bytes every receiver gets, {"type":"<type>","timestamp":"<now>",
 * "data":<data>}, by copies (this runs for every event) into a new
 * ev->payload, and notes where data is in it. Returns 0, or HG_ENOMEM with
 * ev->payload NULL. */
static int build_payload(hg_event_in_t *ev, const char *data, size_t data_len) {
  char ts[25];
  hg_format_time(hg_wall_ms(), ts);
  size_t tl = strlen(ev->type);
  if ((ev->payload = malloc(data_len + tl + 64)) == NULL) return HG_ENOMEM;
  char *o = ev->payload;
  memcpy(o, "{\"type\":\"", 9), o += 9;
  memcpy(o, ev->type, tl), o += tl;
  memcpy(o, "\",\"timestamp\":\"", 15), o += 15;
  memcpy(o, ts, 24), o += 24;
  memcpy(o, "\",\"data\":", 9), o += 9;
  ev->data_off = (size_t)(o - ev->payload);
  ev->data_len = data_len;
  memcpy(o, data, data_len), o += data_len;
  *o++ = '}';
  ev->payload_len = (size_t)(o - ev->payload);
  *o = '\0';
  return 0;
}

/* "<prefix><name>" into field, for an error detail (only built when one is
 * reported: check_event runs for every event). */
static const char *field_name(char field[64], const char *prefix, const char *name) {
  snprintf(field, 64, "%s%s", prefix, name);
  return field;
}

/* One event object's members as check_view reads them: taken from
 * jansson's tree (view_from_json, the general path) or straight from the
 * text (view_from_text, the fast path for a single event, which builds no
 * tree). */
typedef enum { V_ABSENT, V_NULL, V_STRING, V_OBJECT, V_OTHER } vkind_t;

typedef struct vfield {
  vkind_t kind;
  const char *str; /* V_STRING: the value, NUL-terminated; NULL when too long to be valid */
} vfield_t;

#define VIEW_MAX_UNKNOWN 16
#define VIEW_STR_MAX 132 /* > 128, the longest valid organizationId or id; = sizeof(ev->type) */

typedef struct event_view {
  vfield_t type, data, org, id;
  const char *data_raw; /* V_OBJECT data: its bytes, or NULL */
  size_t data_len;
  char *dumped; /* data_raw, when jansson had to render it; freed by view_done */
  /* view_from_text: the members it does not know, reported by check_view. */
  const char *unknown[VIEW_MAX_UNKNOWN];
  size_t unknown_len[VIEW_MAX_UNKNOWN], n_unknown;
  char bufs[4][VIEW_STR_MAX]; /* one per member above */
} event_view_t;

static void view_done(event_view_t *v) { free(v->dumped); }

static const char *const event_members[] = {"type", "data", "organizationId", "id", NULL};

static vfield_t *view_member(event_view_t *v, const char *name, size_t len) {
  vfield_t *f[] = {&v->type, &v->data, &v->org, &v->id};
  for (int i = 0; event_members[i]; i++)
    if (strlen(event_members[i]) == len && memcmp(event_members[i], name, len) == 0) return f[i];
  return NULL;
}

static void unknown_field(json_t *details, const char *prefix, const char *name, size_t len) {
  char field[64];
  snprintf(field, sizeof(field), "%s%.*s", prefix, (int)(len < 40 ? len : 40), name);
  hg_api_detail(details, field, "unknown field");
}

/* The general path: obj is an event object; unknown members are reported
 * at once. */
static void view_from_json(event_view_t *v, json_t *obj, const char *raw, size_t raw_len, const char *prefix,
                           json_t *details) {
  memset(v, 0, sizeof(*v));
  const char *key;
  json_t *val;
  json_object_foreach(obj, key, val) {
    vfield_t *f = view_member(v, key, strlen(key));
    if (f == NULL) {
      unknown_field(details, prefix, key, strlen(key));
      continue;
    }
    f->kind = json_is_null(val) ? V_NULL : json_is_string(val) ? V_STRING : json_is_object(val) ? V_OBJECT : V_OTHER;
    f->str = json_string_value(val);
  }
  if (v->data.kind != V_OBJECT) return;
  if (hg_json_member_span(raw, raw_len, "data", &v->data_raw, &v->data_len) != 0) {
    /* The key was written with escapes: fall back to jansson's rendering. */
    v->dumped = json_dumps(json_object_get(obj, "data"), JSON_COMPACT);
    v->data_raw = v->dumped;
    v->data_len = v->dumped ? strlen(v->dumped) : 0;
  }
}

/* The fast path: raw is a validated JSON object. Returns 0, or -1 when it
 * needs the general path: a key or a string member we read written with
 * escapes, a member given twice (the scanner rejects that among an
 * object's first 32 keys, the general path beyond), a number (jansson's
 * limits and wording apply), or more unknown members than the view keeps. */
static int view_from_text(event_view_t *v, const char *raw, size_t len) {
  memset(v, 0, sizeof(*v));
  size_t pos = 0, klen, vlen;
  const char *k, *val;
  int esc, nbuf = 0;
  while (hg_json_next_member(raw, len, &pos, &k, &klen, &esc, &val, &vlen)) {
    if (esc) return -1;
    vfield_t *f = view_member(v, k, klen);
    if (f == NULL) {
      if (v->n_unknown == VIEW_MAX_UNKNOWN) return -1;
      for (size_t i = 0; i < v->n_unknown; i++)
        if (v->unknown_len[i] == klen && memcmp(v->unknown[i], k, klen) == 0) return -1;
      v->unknown[v->n_unknown] = k;
      v->unknown_len[v->n_unknown++] = klen;
      continue;
    }
    if (f->kind != V_ABSENT) return -1;
    switch (val[0]) {
    case 'n': f->kind = V_NULL; break;
    case '{': f->kind = V_OBJECT; break;
    case '"':
      /* The scanner has checked the text (UTF-8, no raw control
       * characters): a string without a backslash is its own value. */
      if (memchr(val, '\\', vlen) != NULL) return -1;
      f->kind = V_STRING;
      if (vlen - 2 < VIEW_STR_MAX) {
        char *b = v->bufs[nbuf++];
        memcpy(b, val + 1, vlen - 2);
        b[vlen - 2] = '\0';
        f->str = b;
      }
      break;
    case 't':
    case 'f':
    case '[': f->kind = V_OTHER; break;
    default: return -1; /* a number: jansson's limits and words apply */
    }
    if (f == &v->data && f->kind == V_OBJECT) {
      v->data_raw = val;
      v->data_len = vlen;
    }
  }
  return 0;
}

/* Validates one event into ev. prefix names it in details ("" or
 * "events[3]."); before is how many details there were before this event
 * (its payload is built only if it added none). */
static void check_view(hg_api_t *api, const hg_principal_t *who, const event_view_t *v, const char *prefix,
                       hg_event_in_t *ev, json_t *details, size_t before, int *forbidden) {
  char field[64];
  for (size_t i = 0; i < v->n_unknown; i++) unknown_field(details, prefix, v->unknown[i], v->unknown_len[i]);

  if (v->type.kind == V_ABSENT) hg_api_detail(details, field_name(field, prefix, "type"), "is required");
  else if (v->type.str == NULL || !hg_event_types_known(api->event_types, v->type.str))
    hg_api_detail(details, field_name(field, prefix, "type"), "must be a known event type (see GET /v1/event-types)");
  else if (hg_event_type_operational(v->type.str))
    hg_api_detail(details, field_name(field, prefix, "type"),
                  "\"%s\" is an operational event: only the gateway publishes it", v->type.str);
  else hg_copy(ev->type, sizeof(ev->type), v->type.str);

  if (v->data.kind == V_ABSENT) hg_api_detail(details, field_name(field, prefix, "data"), "is required");
  else if (v->data.kind != V_OBJECT) hg_api_detail(details, field_name(field, prefix, "data"), "must be a JSON object");
  if (v->data_raw && v->data_len > api->cfg->max_event_data)
    hg_api_detail(details, field_name(field, prefix, "data"), "must be at most %zu bytes (got %zu)",
                  api->cfg->max_event_data, v->data_len);

  if (v->org.kind != V_ABSENT && v->org.kind != V_NULL) {
    if (v->org.str == NULL || !hg_org_id_valid(v->org.str))
      hg_api_detail(details, field_name(field, prefix, "organizationId"),
                    "must be 1 to 128 characters of letters, digits, '_', '-', '.', ':'");
    else if (who->org[0] && strcmp(who->org, v->org.str) != 0)
      *forbidden = 1;
    else
      hg_copy(ev->org, sizeof(ev->org), v->org.str);
  } else if (who->org[0]) {
    hg_copy(ev->org, sizeof(ev->org), who->org);
  }

  if (v->id.kind != V_ABSENT) {
    const char *s = v->id.str;
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= 128;
    for (size_t i = 0; ok && i < n; i++) ok = id_char_ok(s[i]);
    if (!ok)
      hg_api_detail(details, field_name(field, prefix, "id"),
                    "must be 1 to 128 characters of letters, digits, '_', '-', '.', ':'");
    else {
      hg_copy(ev->id, sizeof(ev->id), s);
      ev->client_id = 1;
    }
  }
  /* On failure payload stays NULL, which the caller answers as out of memory. */
  if (json_array_size(details) == before && v->data_raw) (void)build_payload(ev, v->data_raw, v->data_len);
  if (!ev->client_id) hg_id_new("evt_", ev->id);
}

/* Validates one event object of the general path (its jansson form and
 * its raw text) into ev. */
static void check_event(hg_api_t *api, const hg_principal_t *who, json_t *obj, const char *raw, size_t raw_len,
                        const char *prefix, hg_event_in_t *ev, json_t *details, int *forbidden) {
  if (!json_is_object(obj)) {
    char field[64];
    snprintf(field, sizeof(field), "%.*s", (int)(strlen(prefix) ? strlen(prefix) - 1 : 0), prefix);
    hg_api_detail(details, field[0] ? field : "body", "must be an object");
    return;
  }
  event_view_t v;
  size_t before = json_array_size(details);
  view_from_json(&v, obj, raw, raw_len, prefix, details);
  check_view(api, who, &v, prefix, ev, details, before, forbidden);
  view_done(&v);
}

/* The answer to a single event: {"id":...,"deliveries":n}. */
static void answer_single(hg_http_req_t *req, const char *id, int deliveries, int replayed) {
  if (replayed) hg_http_req_add_header(req, "Idempotent-Replayed", "true");
  /* The hot path's answer, written directly. Ids are [A-Za-z0-9_.:-]:
   * nothing to escape. */
  char out[HG_EVENT_ID_MAX + 48];
  size_t il = strnlen(id, HG_EVENT_ID_MAX), n = 7;
  memcpy(out, "{\"id\":\"", 7);
  memcpy(out + n, id, il);
  n += il;
  memcpy(out + n, "\",\"deliveries\":", 15);
  n += 15;
  n += hg_fmt_u64(out + n, (uint64_t)(deliveries > 0 ? deliveries : 0));
  out[n++] = '}';
  hg_http_respond(req, 202, "application/json", out, n);
}

static json_t *result_json(const hg_event_in_t *ev) {
  return json_pack("{s:s,s:i}", "id", ev->id, "deliveries", ev->n_deliveries);
}

/* The ingest's report: the answer. */
static void stored(const hg_ingest_result_t *res, void *ud) {
  publish_t *g = ud;
  if (res->status == HG_EEXIST && !res->from_log) {
    const char *msg = "an event id in this request is already used";
    char buf[200];
    for (size_t i = 0; i < res->n; i++) {
      if (!res->events[i].conflict) continue;
      snprintf(buf, sizeof(buf), "event id \"%.128s\" is already used by another organization", res->events[i].id);
      msg = buf;
      break;
    }
    hg_http_respond_error(g->req, 409, "conflict", msg, NULL);
  } else if (res->status != 0) {
    hg_api_internal_error(g->req, res->from_log ? "store event" : "store events", res->status);
  } else if (!g->batch) {
    answer_single(g->req, res->events[0].id, res->deliveries, res->replayed);
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; i < res->n; i++) json_array_append_new(arr, result_json(&res->events[i]));
    hg_http_respond_json(g->req, 202, json_pack("{s:o}", "events", arr));
  }
  publish_free(g);
}

/* Hands the events to the ingest, whose report answers. Takes g. */
static void store_events(publish_t *g) {
  unsigned flags = (g->batch ? HG_INGEST_BATCH : 0) | (g->routed ? HG_INGEST_ROUTED : 0);
  int r = hg_ingest_submit(g->api->ingest, g->events, g->n, flags, stored, g);
  if (r != 0) {
    hg_api_internal_error(g->req, "store submit", r);
    publish_free(g);
  }
}

/* An event object as jansson sees it, except that an object-valued `data`
 * is an empty placeholder: its bytes are taken raw from the text (see
 * check_event), so building its tree would be wasted work. NULL when the
 * text needs the general path (escaped keys, not an object). */
static json_t *envelope(const char *raw, size_t len, const char *lazy) {
  size_t pos = 0, klen, vlen;
  const char *k, *v;
  int esc;
  json_t *obj = json_object();
  while (hg_json_next_member(raw, len, &pos, &k, &klen, &esc, &v, &vlen)) {
    if (esc || klen >= 64) {
      json_decref(obj);
      return NULL;
    }
    char name[64];
    memcpy(name, k, klen);
    name[klen] = '\0';
    int is_lazy = strcmp(name, lazy) == 0;
    /* The scanner has checked the body (UTF-8, no raw control characters),
     * so a string without a backslash is its own value. */
    json_t *val = is_lazy && v[0] == '{'   ? json_object()
                  : is_lazy && v[0] == '[' ? json_array()
                  : v[0] == '"' && vlen >= 2 && memchr(v, '\\', vlen) == NULL
                      ? json_stringn_nocheck(v + 1, vlen - 2)
                      : json_loadb(v, vlen, JSON_DECODE_ANY, NULL);
    if (val == NULL) {
      json_decref(obj);
      return NULL;
    }
    json_object_set_new(obj, name, val);
  }
  return obj;
}

/* Whether the body can take a fast path: JSON by its content type, an
 * object, checked by the allocation-free scanner. Otherwise the general
 * path (which also words the errors) parses it. */
static int fast_body(hg_http_req_t *req) {
  if (!hg_api_is_json_type(hg_http_req_header(req, "content-type"))) return 0;
  if (!hg_json_valid(req->body, req->body_len)) return 0;
  const char *p = req->body;
  while (p < req->body + req->body_len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p < req->body + req->body_len && *p == '{';
}

/* A batch's fast parse: only the small fields turned into JSON values.
 * NULL sends the request down the general path. */
static json_t *parse_fast_batch(hg_http_req_t *req) {
  if (!fast_body(req)) return NULL;
  /* {"events": [event, ...]} and nothing else. */
  const char *arr;
  size_t arr_len, n;
  if (hg_json_member_span(req->body, req->body_len, "events", &arr, &arr_len) != 0 || arr[0] != '[') return NULL;
  const char *vals[MAX_BATCH + 1];
  size_t lens[MAX_BATCH + 1];
  if (hg_json_array_spans(arr, arr_len, vals, lens, MAX_BATCH + 1, &n) != 0 || n == 0 || n > MAX_BATCH) return NULL;
  json_t *events = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *e = vals[i][0] == '{' ? envelope(vals[i], lens[i], "data")
                                  : json_loadb(vals[i], lens[i], JSON_DECODE_ANY, NULL);
    if (e == NULL) {
      json_decref(events);
      return NULL;
    }
    json_array_append_new(events, e);
  }
  json_t *body = envelope(req->body, req->body_len, "events");
  if (body == NULL) {
    json_decref(events);
    return NULL;
  }
  json_object_set_new(body, "events", events);
  return body;
}

static void publish(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who, int batch) {
  /* A single event is read straight from its text when it can be (no
   * jansson tree at all); otherwise, and for batches, from jansson's. */
  event_view_t view;
  int have_view = !batch && fast_body(req) && view_from_text(&view, req->body, req->body_len) == 0;
  json_t *body = NULL;
  if (!have_view) {
    if (batch) body = parse_fast_batch(req);
    if (body == NULL) body = hg_api_parse_body(req, 0);
    if (body == NULL) return;
  }
  json_t *details = json_array();
  publish_t *g = calloc(1, sizeof(*g));
  int forbidden = 0;
  if (g == NULL) goto nomem;
  g->api = api;
  g->req = req;
  g->batch = batch;
  const char *key = hg_http_req_header(req, "idempotency-key");
  if (key != NULL) {
    size_t klen = strlen(key);
    int ok = klen >= 1 && klen <= MAX_IDEMPOTENCY_KEY && !batch;
    for (size_t i = 0; ok && i < klen; i++) ok = key[i] > 0x20 && key[i] < 0x7f;
    if (!ok) {
      hg_api_detail(details, "Idempotency-Key",
                    batch ? "is not supported on batches: give each event an id instead"
                          : "must be 1 to 255 printable ASCII characters");
    } else {
      /* Keys are scoped to the caller's organization: two tenants never
       * share a key space. */
      size_t cap = klen + sizeof(who->org) + 4;
      if ((g->one.idem_key = malloc(cap)) == NULL) goto nomem;
      snprintf(g->one.idem_key, cap, "%s|%s", who->org[0] ? who->org : "-", key);
    }
  }
  if (!batch) {
    g->events = &g->one;
    g->n = 1;
    if (have_view) check_view(api, who, &view, "", &g->events[0], details, json_array_size(details), &forbidden);
    else check_event(api, who, body, req->body, req->body_len, "", &g->events[0], details, &forbidden);
  } else {
    static const char *const allowed[] = {"events", NULL};
    hg_api_reject_unknown(body, allowed, details);
    json_t *arr = json_object_get(body, "events");
    const char *raw;
    size_t raw_len;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > MAX_BATCH) {
      hg_api_detail(details, "events", "must be an array of 1 to %d events", MAX_BATCH);
    } else if (hg_json_member_span(req->body, req->body_len, "events", &raw, &raw_len) != 0) {
      hg_api_detail(details, "events", "must be written without escapes in its name");
    } else {
      size_t n = json_array_size(arr), got = 0;
      const char **vals = calloc(n, sizeof(*vals));
      size_t *lens = calloc(n, sizeof(*lens));
      g->events = calloc(n, sizeof(*g->events));
      if (!vals || !lens || !g->events || hg_json_array_spans(raw, raw_len, vals, lens, n, &got) != 0 || got != n) {
        free(vals);
        free(lens);
        goto nomem;
      }
      g->n = n;
      for (size_t i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "events[%zu].", i);
        check_event(api, who, json_array_get(arr, i), vals[i], lens[i], prefix, &g->events[i], details, &forbidden);
      }
      free(vals);
      free(lens);
    }
  }
  if (hg_api_refuse(req, &details, forbidden)) goto out;
  for (size_t i = 0; i < g->n; i++)
    if (g->events[i].payload == NULL) goto nomem;
  if (api->lua && (hg_lua_has(api->lua, HG_PHASE_INGEST, NULL) || hg_lua_has(api->lua, HG_PHASE_ROUTE, NULL))) {
    g->lua = api->lua;
    hg_lua_ref(g->lua);
    run_lua_then_store(g);
    g = NULL;
    goto out;
  }
  after_ingest(g);
  g = NULL;
  goto out;
nomem:
  hg_api_internal_error(req, "allocate", HG_ENOMEM);
out:
  publish_free(g);
  json_decref(details);
  json_decref(body);
  if (have_view) view_done(&view);
}

/* --- Lua: ingest and route phases ------------------------------------------ */

typedef struct phase_call {
  publish_t *g;
  size_t i;
} phase_call_t;

/* Builds the receiver's body again from a plugin's version of the event. */
static int rebuild_payload(hg_api_t *api, hg_event_in_t *ev, json_t *e, char *why, size_t cap) {
  json_t *type = json_object_get(e, "type"), *data = json_object_get(e, "data"), *org = json_object_get(e, "organizationId");
  if (!json_is_string(type) || !hg_event_types_known(api->event_types, json_string_value(type)) ||
      hg_event_type_operational(json_string_value(type))) {
    snprintf(why, cap, "ingest: event.type must stay a known event type, not an operational one");
    return -1;
  }
  if (!json_is_object(data)) {
    snprintf(why, cap, "ingest: event.data must stay a table (a JSON object)");
    return -1;
  }
  snprintf(ev->type, sizeof(ev->type), "%s", json_string_value(type));
  if (json_is_string(org) && hg_org_id_valid(json_string_value(org)))
    snprintf(ev->org, sizeof(ev->org), "%s", json_string_value(org));
  else if (org == NULL || json_is_null(org))
    ev->org[0] = '\0';
  char *d = json_dumps(data, JSON_COMPACT);
  if (d == NULL) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  char *old = ev->payload;
  int r = build_payload(ev, d, strlen(d));
  free(d);
  if (r != 0) {
    ev->payload = old;
    snprintf(why, cap, "out of memory");
    return -1;
  }
  free(old);
  return 0;
}

static json_t *event_json(const hg_event_in_t *ev) {
  /* The data the publisher sent, as a table: the stored payload's "data". */
  json_t *payload = json_loadb(ev->payload, ev->payload_len, 0, NULL);
  json_t *out = json_pack("{s:s,s:O,s:s?,s:s}", "type", ev->type, "data", json_object_get(payload, "data"),
                          "organizationId", ev->org[0] ? ev->org : NULL, "id", ev->id);
  json_decref(payload);
  return out;
}

static void route_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)arg, (void)res2, (void)err;
  phase_call_t *pc = ud;
  publish_t *g = pc->g;
  size_t i = pc->i;
  free(pc);
  /* On a script error the subscriptions' match stands (logged and counted). */
  json_t *targets = res;
  if (status == 0 && json_is_array(targets)) {
    json_decref(g->events[i].targets);
    g->events[i].targets = json_incref(targets);
    g->routed = 1;
  }
  if (--g->pending > 0) return;
  store_events(g);
}

/* The route phase, per event, over the targets the index matched. */
static void run_route(publish_t *g) {
  g->pending = g->n;
  for (size_t i = 0; i < g->n; i++) {
    /* The event goes to Lua without JSON in between; its data as raw text,
     * decoded only if a plugin reads event.data. */
    const hg_event_in_t *e = &g->events[i];
    hg_lua_event_t ev = {.id = e->id, .type = e->type, .org = e->org[0] ? e->org : NULL};
    phase_call_t *pc = malloc(sizeof(*pc));
    int r = pc ? HG_OK : HG_ENOMEM;
    /* The payload was built here, with data where data_off says. */
    ev.data = e->payload + e->data_off;
    ev.data_len = e->data_len;
    if (r == 0) {
      pc->g = g;
      pc->i = i;
      r = hg_lua_route_event(g->lua, &ev, g->events[i].targets, route_done, pc);
      if (r == HG_ESTATE && g->api->lua != NULL && g->api->lua != g->lua) {
        /* A reload retired the generation meanwhile: route on the new one. */
        hg_lua_unref(g->lua);
        g->lua = g->api->lua;
        hg_lua_ref(g->lua);
        r = hg_lua_route_event(g->lua, &ev, g->events[i].targets, route_done, pc);
      }
    }
    if (r != 0) {
      /* Keep the match for this event. */
      free(pc);
      if (--g->pending == 0) store_events(g);
    }
  }
}

/* Matches each event against the subscription index (in memory), runs the
 * route phase when a plugin has one, then stores. Takes g. */
static void after_ingest(publish_t *g) {
  for (size_t i = 0; i < g->n; i++)
    g->events[i].targets = hg_subs_match(g->api->subs, g->events[i].type, g->events[i].org);
  if (g->lua && hg_lua_has(g->lua, HG_PHASE_ROUTE, NULL)) {
    run_route(g);
    return;
  }
  store_events(g);
}

static void ingest_phase_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)err;
  phase_call_t *pc = ud;
  publish_t *g = pc->g;
  size_t i = pc->i;
  free(pc);
  if (!g->failed) {
    char why[200];
    if (status != 0 || arg == NULL) {
      /* arg == NULL: the plugin left something JSON cannot hold in the
       * event (a function, NaN): its changes cannot be honoured. */
      g->failed = 1;
      char msg[96];
      snprintf(msg, sizeof(msg), "an ingest script failed (request id %s)", g->req->request_id);
      hg_http_respond_error(g->req, 500, "script_error", msg, NULL);
    } else if (json_is_false(res)) {
      /* Rejected: return false, {status = 4xx, message = "..."}. */
      g->failed = 1;
      json_t *st = json_object_get(res2, "status");
      int code = json_is_integer(st) ? (int)json_integer_value(st) : 422;
      if (code < 400 || code > 599) code = 422;
      const char *m = json_string_value(json_object_get(res2, "message"));
      char msg[300];
      if (g->batch) snprintf(msg, sizeof(msg), "events[%zu]: %s", i, m ? m : "rejected by an ingest plugin");
      else snprintf(msg, sizeof(msg), "%s", m ? m : "rejected by an ingest plugin");
      hg_http_respond_error(g->req, code, "rejected", msg, NULL);
    } else if (arg && rebuild_payload(g->api, &g->events[i], arg, why, sizeof(why)) != 0) {
      g->failed = 1;
      hg_http_respond_error(g->req, 422, "rejected", why, NULL);
    }
  }
  if (--g->pending > 0) return;
  if (g->failed) publish_free(g);
  else after_ingest(g);
}

/* Runs the ingest phase over every event, then the route phase, then
 * stores. Takes g. */
static void run_lua_then_store(publish_t *g) {
  if (!hg_lua_has(g->lua, HG_PHASE_INGEST, NULL)) {
    after_ingest(g);
    return;
  }
  g->pending = g->n;
  for (size_t i = 0; i < g->n; i++) {
    json_t *arg = event_json(&g->events[i]);
    phase_call_t *pc = malloc(sizeof(*pc));
    int r = arg && pc ? HG_OK : HG_ENOMEM;
    if (r == 0) {
      pc->g = g;
      pc->i = i;
      r = hg_lua_call_async(g->lua, HG_PHASE_INGEST, NULL, arg, ingest_phase_done, pc);
    }
    json_decref(arg);
    if (r != 0) {
      free(pc);
      if (!g->failed) {
        g->failed = 1;
        hg_api_internal_error(g->req, "start ingest phase", r);
      }
      if (--g->pending == 0) publish_free(g);
    }
  }
}

static void publish_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  publish(api, req, who, 0);
}

static void batch_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  publish(api, req, who, 1);
}

static void types_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  (void)who;
  json_t *arr = json_array();
  for (size_t i = 0; i < hg_event_types_count(api->event_types); i++)
    json_array_append_new(arr, json_string(hg_event_types_at(api->event_types, i)));
  hg_http_respond_json(req, 200, json_pack("{s:o}", "eventTypes", arr));
}

HG_API_ROUTE(publish, HG_SCOPE_EVENTS_PUBLISH)
HG_API_ROUTE(batch, HG_SCOPE_EVENTS_PUBLISH)
HG_API_ROUTE(types, HG_SCOPE_WEBHOOKS_READ | HG_SCOPE_EVENTS_PUBLISH)

int hg_api_events_add_routes(hg_api_t *api, hg_router_t *router) {
  static const hg_route_def_t routes[] = {
      HG_API_DEF("POST", "/v1/events", publish),
      HG_API_DEF("POST", "/v1/events/batch", batch),
      HG_API_DEF("GET", "/v1/event-types", types),
      {NULL, NULL, NULL, 0},
  };
  return hg_router_add_all(router, routes, api);
}