/* api_webhooks.c: the webhook management endpoints (the SDK's
 * createWebhook, rotateWebhookSecret, and get/list/update/delete).
 *
 * Each handler validates on the loop thread, then runs one store job and
 * answers from its completion. */
#include "api/api.h"
#include "base/url.h"

#include "base/common.h"
#include "pipeline/event_types.h"
#include "base/ids.h"
#include "store/keys.h"
#include "lua/runtime.h"
#include "net/router.h"
#include "base/sign.h"
#include "pipeline/dispatcher.h"
#include "pipeline/subs.h"
#include "pipeline/throttle.h"
#include "store/health.h"
#include "store/lines.h"
#include "store/webhooks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_META_KEYS 50
#define MAX_META_KEY 64
#define MAX_META_VALUE 512
#define MAX_EVENTS 100

typedef struct job {
  hg_api_t *api;
  hg_http_req_t *req;
  hg_webhook_t w;
  const char *org; /* NULL or points into org_buf: the caller's organization limit */
  char org_buf[129];
  char id[HG_ID_MAX];
  char secret[HG_SECRET_MAX];
  /* PATCH: which fields change. */
  int set_url, set_events, set_active, set_metadata, set_disable_after, set_rate_limit, set_max_concurrency;
  int set_ordering;
  /* PATCH ordering null: the deliveries that waited in the line, to send
   * now (seqs and due times, n of cap). */
  int64_t *released, *released_due;
  size_t n_released, cap_released;
  json_t *set_plugins;   /* PATCH: new plugins (array), or NULL: unchanged */
  json_t *set_transform; /* PATCH: new transform (string or null), or NULL: unchanged */
  /* list */
  hg_db_t *db; /* during list_work: rows read their public keys */
  int org_mode, page_size, count;
  char after[HG_ID_MAX], last[HG_ID_MAX];
  json_t *items;
  hg_webhook_t rows[100]; /* one page, copied on the store thread */
  /* rotate */
  int64_t now, grace_ms, prev_expires;
} job_t;

static job_t *job_new(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    hg_api_internal_error(req, "allocate job", HG_ENOMEM);
    return NULL;
  }
  j->api = api;
  j->req = req;
  if (who->org[0]) {
    snprintf(j->org_buf, sizeof(j->org_buf), "%s", who->org);
    j->org = j->org_buf;
  }
  const char *id = hg_http_req_param(req, "id");
  if (id) snprintf(j->id, sizeof(j->id), "%s", id);
  return j;
}

static void job_free(job_t *j) {
  if (j == NULL) return;
  hg_webhook_close(&j->w);
  for (int i = 0; i < j->count && i < 100; i++) hg_webhook_close(&j->rows[i]);
  json_decref(j->items);
  json_decref(j->set_plugins);
  json_decref(j->set_transform);
  free(j->released);
  free(j->released_due);
  /* The job may have carried a secret. */
  memset(j->secret, 0, sizeof(j->secret));
  free(j);
}

static void submit(job_t *j, hg_store_work_fn work, hg_store_done_fn done) {
  int r = hg_store_submit(j->api->store, work, done, j);
  if (r != 0) {
    hg_api_internal_error(j->req, "store submit", r);
    job_free(j);
  }
}

/* Answers 404 for ids that cannot exist without asking the store. */
static int check_id(hg_http_req_t *req, const char *id) {
  if (hg_id_valid("wh_", id)) return 1;
  hg_http_respond_error(req, 404, "not_found", "webhook not found", NULL);
  return 0;
}

static json_t *webhook_json(hg_api_t *api, const hg_webhook_t *w) {
  json_t *events = json_loads(w->events, 0, NULL);
  json_t *meta = json_loads(w->metadata, 0, NULL);
  json_t *lua = w->lua ? json_loads(w->lua, 0, NULL) : NULL;
  json_t *plugins = json_object_get(lua, "plugins");
  json_t *transform = json_object_get(lua, "transform");
  json_t *out = json_pack("{s:s,s:s,s:o,s:o,s:b,s:o,s:o,s:o,s:o,s:O}", "id", w->id, "url", w->url, "events",
                          events ? events : json_array(), "organizationId",
                          w->org ? json_string(w->org) : json_null(), "active", w->active, "metadata",
                          meta ? meta : json_object(), "createdAt", hg_api_time(w->created_at), "updatedAt",
                          hg_api_time(w->updated_at), "plugins",
                          plugins && api->lua ? hg_lua_redact_bindings(api->lua, plugins) : json_array(), "transform",
                          transform ? transform : json_null());
  json_decref(lua);
  /* A v1a webhook's public keys, never a secret or a private key. */
  json_t *keys = json_array();
  for (size_t i = 0; i < w->n_public_keys; i++)
    json_array_append_new(keys, json_string(w->public_keys[i]));
  json_object_set_new(out, "signatureScheme", json_string(w->scheme[0] ? w->scheme : "v1"));
  json_object_set_new(out, "publicKey", w->n_public_keys > 0 ? json_string(w->public_keys[0]) : json_null());
  json_object_set_new(out, "publicKeys", keys);
  /* Endpoint health (docs/api.md): why it is inactive, its own rule, and
   * its failing streak. */
  json_object_set_new(out, "disabledAt", w->active || !w->disabled_at ? json_null() : hg_api_time(w->disabled_at));
  json_object_set_new(out, "disabledReason",
                      w->active || !w->disabled_reason
                          ? json_null()
                          : json_pack("{s:s,s:s}", "code", w->disabled_reason, "message",
                                      w->disabled_message ? w->disabled_message : ""));
  json_t *rule = json_null();
  if (w->disable_after_exhausted >= 0 || w->disable_after_failing_ms >= 0) {
    rule = json_object();
    if (w->disable_after_exhausted >= 0)
      json_object_set_new(rule, "exhausted", json_integer((json_int_t)w->disable_after_exhausted));
    if (w->disable_after_failing_ms >= 0) {
      char d[24];
      hg_format_duration(w->disable_after_failing_ms, d);
      json_object_set_new(rule, "failingFor", json_string(d));
    }
  }
  json_object_set_new(out, "disableAfter", rule);
  /* Flow control: per second (kept to the thousandth), and at once. */
  json_t *rate = json_null();
  if (w->rate_limit_milli > 0)
    rate = w->rate_limit_milli % 1000 == 0 ? json_integer((json_int_t)(w->rate_limit_milli / 1000))
                                           : json_real((double)w->rate_limit_milli / 1000.0);
  json_object_set_new(out, "rateLimit", rate);
  json_object_set_new(out, "maxConcurrency",
                      w->max_concurrency > 0 ? json_integer((json_int_t)w->max_concurrency) : json_null());
  json_object_set_new(out, "ordering", w->fifo ? json_string("fifo") : json_null());
  json_object_set_new(out, "failingSince", w->failing_since ? hg_api_time(w->failing_since) : json_null());
  json_object_set_new(out, "exhaustedDeliveries", json_integer((json_int_t)w->exhausted));
  return out;
}

/* Checks `disableAfter`: null (the gateway's rule) or {exhausted?,
 * failingFor?}; a key left out takes the gateway's value. Sets the two
 * (-1: the gateway's). Returns 1 when valid. */
static int check_disable_after(json_t *v, json_t *details, int64_t *exhausted, int64_t *failing_ms) {
  *exhausted = *failing_ms = -1;
  if (json_is_null(v)) return 1;
  if (!json_is_object(v)) {
    hg_api_detail(details, "disableAfter", "must be null or an object {\"exhausted\": n, \"failingFor\": \"5d\"}");
    return 0;
  }
  int ok = 1;
  const char *key;
  json_t *val;
  json_object_foreach(v, key, val) {
    if (strcmp(key, "exhausted") == 0) {
      if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > 1000000) {
        hg_api_detail(details, "disableAfter.exhausted", "must be a whole number from 0 to 1000000");
        ok = 0;
      } else {
        *exhausted = json_integer_value(val);
      }
    } else if (strcmp(key, "failingFor") == 0) {
      int64_t ms = -1;
      if (json_is_integer(val) && json_integer_value(val) >= 0 && json_integer_value(val) <= 365 * 86400)
        ms = json_integer_value(val) * 1000;
      else if (json_is_string(val) && (hg_parse_duration(json_string_value(val), &ms) != 0 || ms > 365LL * 86400000))
        ms = -1;
      if (ms < 0) {
        hg_api_detail(details, "disableAfter.failingFor",
                      "must be a duration such as \"5d\", \"12h\", \"30m\" or \"90s\" (or a number of seconds), "
                      "at most 365 days");
        ok = 0;
      } else {
        *failing_ms = ms;
      }
    } else {
      char field[96];
      snprintf(field, sizeof(field), "disableAfter.%.70s", key);
      hg_api_detail(details, field, "unknown field");
      ok = 0;
    }
  }
  return ok;
}

/* Checks `rateLimit`: null (none) or deliveries per second from 0.01 to
 * 10000, kept to the thousandth. Sets *milli (0: none). Returns 1 when
 * valid. */
static int check_rate_limit(json_t *v, json_t *details, int64_t *milli) {
  *milli = 0;
  if (json_is_null(v)) return 1;
  double r = json_is_number(v) ? json_number_value(v) : -1;
  /* NaN and infinities cannot come from JSON text; the bounds rule out the rest. */
  if (!(r >= (double)HG_RATE_LIMIT_MIN_MILLI / 1000.0 && r <= (double)HG_RATE_LIMIT_MAX_MILLI / 1000.0)) {
    hg_api_detail(details, "rateLimit", "must be null or a number of deliveries per second from 0.01 to 10000");
    return 0;
  }
  *milli = (int64_t)llround(r * 1000.0);
  return 1;
}

/* Checks `maxConcurrency`: null (none) or a whole number from 1 to 1000.
 * Sets *n (0: none). Returns 1 when valid. */
static int check_max_concurrency(json_t *v, json_t *details, int64_t *n) {
  *n = 0;
  if (json_is_null(v)) return 1;
  if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > HG_MAX_CONCURRENCY_MAX) {
    hg_api_detail(details, "maxConcurrency", "must be null or a whole number from 1 to 1000");
    return 0;
  }
  *n = json_integer_value(v);
  return 1;
}

/* Checks `ordering`: null (unordered) or "fifo". Sets *fifo. Returns 1
 * when valid. */
static int check_ordering(json_t *v, json_t *details, int *fifo) {
  *fifo = 0;
  if (json_is_null(v)) return 1;
  if (json_is_string(v) && strcmp(json_string_value(v), "fifo") == 0) {
    *fifo = 1;
    return 1;
  }
  hg_api_detail(details, "ordering", "must be null (unordered) or \"fifo\"");
  return 0;
}

/* Sets w's disabled_* fields for a change of active made through the API:
 * disabled by hand (reason "manual"), or enabled (cleared). */
static void set_disabled(hg_webhook_t *w, int active, int64_t now) {
  free(w->disabled_reason);
  free(w->disabled_message);
  w->disabled_reason = w->disabled_message = NULL;
  w->disabled_at = 0;
  if (active) return;
  w->disabled_at = now;
  w->disabled_reason = strdup(HG_DISABLED_MANUAL);
  w->disabled_message = strdup("disabled through the API");
}

/* The signature schemes a webhook may sign with. */
static const char *const schemes[] = {"v1", "v1a", NULL};

static int check_scheme(json_t *v, json_t *details, char out[4]) {
  for (size_t i = 0; json_is_string(v) && schemes[i]; i++) {
    if (strcmp(json_string_value(v), schemes[i]) == 0) {
      snprintf(out, 4, "%s", schemes[i]);
      return 1;
    }
  }
  hg_api_detail(details, "signatureScheme", "must be \"v1\" (HMAC-SHA256) or \"v1a\" (Ed25519)");
  return 0;
}

/* Checks `plugins` and `transform` (either may be NULL: absent). */
static void check_lua(hg_api_t *api, json_t *plugins, json_t *transform, json_t *details) {
  int ok = 1;
  if (plugins != NULL && !json_is_array(plugins)) {
    hg_api_detail(details, "plugins", "must be an array of {\"name\": ..., \"config\": {...}}");
    ok = 0;
  } else if (plugins != NULL && json_array_size(plugins) > 20) {
    hg_api_detail(details, "plugins", "must bind at most 20 plugins");
    ok = 0;
  }
  if (transform != NULL && !json_is_null(transform) &&
      (!json_is_string(transform) || json_string_length(transform) > 65536)) {
    hg_api_detail(details, "transform", "must be Lua source (a string of at most 64 KiB) or null");
    ok = 0;
  }
  if (!ok || api->lua == NULL) return;
  json_t *none = json_array();
  json_t *errs = hg_lua_check_bindings(api->lua, plugins ? plugins : none,
                                       transform && json_is_string(transform) ? transform : NULL);
  json_decref(none);
  json_array_extend(details, errs);
  json_decref(errs);
}

/* The stored form: {"plugins": [...], "transform": "..."}, or NULL when both are empty. */
static char *lua_text(json_t *plugins, json_t *transform) {
  int has_plugins = plugins && json_array_size(plugins) > 0;
  int has_transform = transform && json_is_string(transform);
  if (!has_plugins && !has_transform) return NULL;
  json_t *o = json_object();
  if (has_plugins) json_object_set(o, "plugins", plugins);
  if (has_transform) json_object_set(o, "transform", transform);
  char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(o);
  return text;
}

static void respond_status(job_t *j, int status, const char *what) {
  if (status == HG_ENOTFOUND) hg_http_respond_error(j->req, 404, "not_found", "webhook not found", NULL);
  else hg_api_internal_error(j->req, what, status);
}

/* --- validation ---------------------------------------------------------- */

static char *check_url(hg_api_t *api, json_t *v, json_t *details) {
  char why[128];
  if (!json_is_string(v)) return hg_api_detail(details, "url", "must be a string"), NULL;
  if (!hg_url_ok(json_string_value(v), api->cfg->allow_http_urls, why, sizeof(why))) return hg_api_detail(details, "url", "%s", why), NULL;
  return strdup(json_string_value(v));
}

static char *check_events(hg_api_t *api, json_t *v, json_t *details) {
  if (!json_is_array(v)) return hg_api_detail(details, "events", "must be an array of event types"), NULL;
  size_t n = json_array_size(v);
  if (n == 0) return hg_api_detail(details, "events", "must name at least one event type"), NULL;
  if (n > MAX_EVENTS) return hg_api_detail(details, "events", "must name at most %d event types", MAX_EVENTS), NULL;
  int ok = 1;
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_array_get(v, i);
    char field[32], why[256];
    snprintf(field, sizeof(field), "events[%zu]", i);
    if (!json_is_string(e)) {
      hg_api_detail(details, field, "must be a string");
      ok = 0;
      continue;
    }
    if (hg_event_pattern_check(api->event_types, json_string_value(e), why, sizeof(why)) != 0) {
      hg_api_detail(details, field, "%s", why);
      ok = 0;
      continue;
    }
    for (size_t k = 0; k < i; k++) {
      if (json_equal(json_array_get(v, k), e)) {
        hg_api_detail(details, field, "duplicate of events[%zu]", k);
        ok = 0;
        break;
      }
    }
  }
  return ok ? json_dumps(v, JSON_COMPACT) : NULL;
}

static char *check_metadata(json_t *v, json_t *details) {
  if (!json_is_object(v)) return hg_api_detail(details, "metadata", "must be an object of strings"), NULL;
  if (json_object_size(v) > MAX_META_KEYS)
    return hg_api_detail(details, "metadata", "must have at most %d keys", MAX_META_KEYS), NULL;
  int ok = 1;
  const char *key;
  json_t *val;
  json_object_foreach(v, key, val) {
    char field[96];
    snprintf(field, sizeof(field), "metadata.%.70s", key);
    size_t klen = strlen(key);
    if (klen == 0 || klen > MAX_META_KEY) {
      hg_api_detail(details, field, "keys must be 1 to %d characters", MAX_META_KEY);
      ok = 0;
    } else if (!json_is_string(val)) {
      hg_api_detail(details, field, "must be a string");
      ok = 0;
    } else if (json_string_length(val) > MAX_META_VALUE) {
      hg_api_detail(details, field, "must be at most %d characters", MAX_META_VALUE);
      ok = 0;
    }
  }
  return ok ? json_dumps(v, JSON_COMPACT) : NULL;
}

static int check_active(json_t *v, json_t *details, int *out) {
  if (!json_is_boolean(v)) return hg_api_detail(details, "active", "must be true or false"), 0;
  *out = json_is_true(v);
  return 1;
}

/* --- POST /v1/webhooks ---------------------------------------------------- */

static int create_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  int r = hg_webhooks_insert(db, &j->w, j->secret);
  return r != 0 ? r : hg_webhooks_public_keys(db, &j->w, j->w.created_at);
}

static void create_done(int status, void *ud) {
  job_t *j = ud;
  if (status != 0) {
    respond_status(j, status, "create webhook");
  } else {
    /* Committed: events from now on fan out to it. */
    if (j->api->subs) {
      hg_subs_put(j->api->subs, j->w.id, j->w.org, j->w.active, j->w.events);
      if (j->w.fifo) hg_subs_note_ordered(j->api->subs);
    }
    json_t *body = webhook_json(j->api, &j->w);
    /* A v1 secret is shown once, here; a v1a signing key never leaves the
     * gateway (the receiver verifies with publicKey). */
    if (strcmp(j->w.scheme, "v1") == 0) json_object_set_new(body, "secret", json_string(j->secret));
    hg_http_respond_json(j->req, 201, body);
  }
  job_free(j);
}

static void create_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  json_t *body = hg_api_parse_body(req, 0);
  if (body == NULL) return;
  static const char *const allowed[] = {"url",          "events",    "organizationId",  "secret",
                                        "active",       "metadata",  "plugins",         "transform",
                                        "signatureScheme", "disableAfter", "rateLimit", "maxConcurrency",
                                        "ordering",     NULL};
  json_t *details = json_array();
  job_t *j = job_new(api, req, who);
  if (j == NULL) goto out;
  hg_api_reject_unknown(body, allowed, details);
  json_t *v;
  if ((v = json_object_get(body, "url")) == NULL) hg_api_detail(details, "url", "is required");
  else j->w.url = check_url(api, v, details);
  if ((v = json_object_get(body, "events")) == NULL) hg_api_detail(details, "events", "is required");
  else j->w.events = check_events(api, v, details);
  j->w.active = 1;
  if ((v = json_object_get(body, "active")) != NULL) check_active(v, details, &j->w.active);
  if ((v = json_object_get(body, "metadata")) != NULL) j->w.metadata = check_metadata(v, details);
  else j->w.metadata = strdup("{}");
  j->w.disable_after_exhausted = j->w.disable_after_failing_ms = -1;
  if ((v = json_object_get(body, "disableAfter")) != NULL)
    check_disable_after(v, details, &j->w.disable_after_exhausted, &j->w.disable_after_failing_ms);
  if ((v = json_object_get(body, "rateLimit")) != NULL) check_rate_limit(v, details, &j->w.rate_limit_milli);
  if ((v = json_object_get(body, "maxConcurrency")) != NULL)
    check_max_concurrency(v, details, &j->w.max_concurrency);
  if ((v = json_object_get(body, "ordering")) != NULL) check_ordering(v, details, &j->w.fifo);
  int forbidden_org = 0;
  if ((v = json_object_get(body, "organizationId")) != NULL && !json_is_null(v)) {
    if (!json_is_string(v) || !hg_org_id_valid(json_string_value(v)))
      hg_api_detail(details, "organizationId", "must be 1 to 128 characters of letters, digits, '_', '-', '.', ':'");
    else if (who->org[0] && strcmp(who->org, json_string_value(v)) != 0)
      forbidden_org = 1;
    else
      j->w.org = strdup(json_string_value(v));
  } else if (who->org[0]) {
    /* An organization's key creates webhooks for its organization. */
    j->w.org = strdup(who->org);
  }
  json_t *plugins = json_object_get(body, "plugins"), *transform = json_object_get(body, "transform");
  size_t before = json_array_size(details);
  check_lua(api, plugins, transform, details);
  if (json_array_size(details) == before) j->w.lua = lua_text(plugins, transform);
  snprintf(j->w.scheme, sizeof(j->w.scheme), "v1");
  if ((v = json_object_get(body, "signatureScheme")) != NULL) check_scheme(v, details, j->w.scheme);
  int v1a = strcmp(j->w.scheme, "v1a") == 0;
  if ((v = json_object_get(body, "secret")) != NULL) {
    if (v1a)
      hg_api_detail(details, "secret", "only a v1 webhook takes a secret: a v1a webhook's signing key is generated");
    else if (!json_is_string(v) || hg_secret_check(json_string_value(v)) != 0)
      hg_api_detail(details, "secret", "must be \"whsec_\" followed by the base64 of 24 to 64 bytes");
    else
      snprintf(j->secret, sizeof(j->secret), "%s", json_string_value(v));
  }
  if (hg_api_refuse(req, &details, forbidden_org)) goto out;
  if (j->secret[0] == '\0' && (v1a ? hg_signing_key_generate(j->secret) : hg_secret_generate(j->secret)) != 0) {
    hg_api_internal_error(req, "generate secret", HG_EIO);
    goto out;
  }
  if (!j->w.url || !j->w.events || !j->w.metadata || (who->org[0] && !j->w.org)) {
    hg_api_internal_error(req, "allocate", HG_ENOMEM);
    goto out;
  }
  hg_id_new("wh_", j->w.id);
  j->w.created_at = j->w.updated_at = hg_wall_ms();
  if (!j->w.active) set_disabled(&j->w, 0, j->w.created_at);
  submit(j, create_work, create_done);
  j = NULL;
out:
  job_free(j);
  json_decref(details);
  json_decref(body);
}

/* --- GET /v1/webhooks/{id} ------------------------------------------------- */

static int get_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  int r = hg_webhooks_get(db, j->id, j->org, &j->w);
  return r != 0 ? r : hg_webhooks_public_keys(db, &j->w, hg_wall_ms());
}

static void get_done(int status, void *ud) {
  job_t *j = ud;
  if (status != 0) respond_status(j, status, "get webhook");
  else hg_http_respond_json(j->req, 200, webhook_json(j->api, &j->w));
  job_free(j);
}

static void get_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  if (!check_id(req, hg_http_req_param(req, "id"))) return;
  job_t *j = job_new(api, req, who);
  if (j) submit(j, get_work, get_done);
}

/* --- GET /v1/webhooks ------------------------------------------------------ */

static int list_row(const hg_webhook_t *w, void *ud) {
  job_t *j = ud;
  /* One row past the page tells whether there is a next page. */
  if (j->count == j->page_size) {
    j->count++;
    return 1;
  }
  /* Copied here, rendered on the loop thread: rendering may call into Lua
   * (redaction), which lives on the loop thread only. */
  hg_webhook_t *row = &j->rows[j->count];
  *row = *w;
  row->url = strdup(w->url);
  row->events = strdup(w->events);
  row->metadata = strdup(w->metadata);
  row->org = w->org ? strdup(w->org) : NULL;
  row->lua = w->lua ? strdup(w->lua) : NULL;
  row->disabled_reason = w->disabled_reason ? strdup(w->disabled_reason) : NULL;
  row->disabled_message = w->disabled_message ? strdup(w->disabled_message) : NULL;
  snprintf(j->last, sizeof(j->last), "%s", w->id);
  j->count++;
  /* A failure here leaves the row without its keys: answer an error. */
  if (hg_webhooks_public_keys(j->db, row, j->now) != 0) row->url = (free(row->url), NULL);
  return 0;
}

static int list_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  j->db = db;
  j->now = hg_wall_ms();
  int r = hg_webhooks_list(db, j->org_mode, j->org, j->after, j->page_size + 1, list_row, j);
  j->db = NULL;
  return r;
}

static void list_done(int status, void *ud) {
  job_t *j = ud;
  if (status != 0) {
    respond_status(j, status, "list webhooks");
  } else {
    json_t *next = json_null();
    if (j->count > j->page_size) {
      char tok[96];
      hg_api_page_token(j->last, tok, sizeof(tok));
      next = json_string(tok);
    }
    for (int i = 0; i < j->count && i < j->page_size; i++) {
      if (!j->rows[i].url || !j->rows[i].events || !j->rows[i].metadata) {
        hg_api_internal_error(j->req, "list webhooks", HG_ENOMEM);
        json_decref(next);
        job_free(j);
        return;
      }
      json_array_append_new(j->items, webhook_json(j->api, &j->rows[i]));
    }
    json_t *body = json_pack("{s:O,s:o}", "webhooks", j->items, "nextPageToken", next);
    hg_http_respond_json(j->req, 200, body);
  }
  job_free(j);
}

static void list_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  int page_size, bad = 0;
  char after[HG_ID_MAX];
  if (hg_api_page_params(req, "wh_", &page_size, after, sizeof(after)) != 0) return;
  char *org = hg_query_get(req->query, "organizationId", &bad);
  if (bad || (org && !hg_org_id_valid(org))) {
    free(org);
    json_t *details = json_array();
    hg_api_detail(details, "organizationId", "must be 1 to 128 characters of letters, digits, '_', '-', '.', ':'");
    hg_api_validation_error(req, details);
    return;
  }
  if (org && who->org[0] && strcmp(org, who->org) != 0) {
    free(org);
    hg_api_forbidden_org(req);
    return;
  }
  job_t *j = job_new(api, req, who);
  if (j == NULL) {
    free(org);
    return;
  }
  if (org) {
    snprintf(j->org_buf, sizeof(j->org_buf), "%s", org);
    j->org = j->org_buf;
  }
  free(org);
  j->org_mode = j->org != NULL;
  j->page_size = page_size;
  snprintf(j->after, sizeof(j->after), "%s", after);
  if ((j->items = json_array()) == NULL) {
    hg_api_internal_error(req, "allocate", HG_ENOMEM);
    job_free(j);
    return;
  }
  submit(j, list_work, list_done);
}

/* --- PATCH /v1/webhooks/{id} ----------------------------------------------- */

static int released_row(int64_t seq, int64_t due, void *ud) {
  job_t *j = ud;
  if (j->n_released == j->cap_released) {
    size_t cap = j->cap_released ? j->cap_released * 2 : 64;
    int64_t *a = realloc(j->released, cap * sizeof(*a));
    if (a == NULL) return HG_ENOMEM;
    j->released = a;
    int64_t *b = realloc(j->released_due, cap * sizeof(*b));
    if (b == NULL) return HG_ENOMEM;
    j->released_due = b;
    j->cap_released = cap;
  }
  j->released[j->n_released] = seq;
  j->released_due[j->n_released++] = due;
  return 0;
}

static int patch_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  /* Read, change, write in one job: the store thread serializes this
   * node's jobs, and the row is read locked (another node sharing a
   * PostgreSQL store changing it meanwhile waits, or is waited for), so no
   * other change can slip in between. The new values wait in j->w's
   * strings until the row is read into a second struct. */
  hg_webhook_t cur;
  int r = hg_webhooks_get_locked(db, j->id, j->org, &cur);
  if (r != 0) return r;
  if (j->set_url) {
    free(cur.url);
    cur.url = j->w.url;
    j->w.url = NULL;
  }
  if (j->set_events) {
    free(cur.events);
    cur.events = j->w.events;
    j->w.events = NULL;
  }
  if (j->set_metadata) {
    free(cur.metadata);
    cur.metadata = j->w.metadata;
    j->w.metadata = NULL;
  }
  if (j->set_disable_after) {
    cur.disable_after_exhausted = j->w.disable_after_exhausted;
    cur.disable_after_failing_ms = j->w.disable_after_failing_ms;
  }
  if (j->set_rate_limit) cur.rate_limit_milli = j->w.rate_limit_milli;
  if (j->set_max_concurrency) cur.max_concurrency = j->w.max_concurrency;
  if (j->set_active && cur.active != j->w.active) {
    /* Re-enabled: the reason and the failing streak go; the rule counts
     * afresh. Disabled by hand: the reason says so. */
    cur.active = j->w.active;
    set_disabled(&cur, cur.active, j->now);
    if (cur.active) {
      cur.exhausted = cur.failing_since = 0;
      if ((r = hg_health_reset(db, cur.id)) != 0) {
        hg_webhook_close(&cur);
        return r;
      }
    }
  }
  if (j->set_plugins || j->set_transform) {
    /* One column holds both: keep the half this PATCH does not name. */
    json_t *old = cur.lua ? json_loads(cur.lua, 0, NULL) : NULL;
    json_t *plugins = j->set_plugins ? j->set_plugins : json_object_get(old, "plugins");
    json_t *transform = j->set_transform ? j->set_transform : json_object_get(old, "transform");
    free(cur.lua);
    cur.lua = lua_text(plugins, transform);
    json_decref(old);
  }
  cur.updated_at = j->now;
  r = hg_webhooks_update(db, &cur);
  /* The job may run again (the store retries a failed group): the list
   * of released deliveries starts afresh each time. */
  j->n_released = 0;
  /* Whatever the row said: on PostgreSQL another node's PATCH may have
   * changed the line since (hg_line_set does nothing when it is so). */
  if (r == 0 && j->set_ordering) {
    r = hg_line_set(db, cur.id, j->w.fifo, released_row, j);
    cur.fifo = j->w.fifo;
  }
  if (r == 0) r = hg_webhooks_public_keys(db, &cur, j->now);
  hg_webhook_close(&j->w);
  j->w = cur;
  return r;
}

static void patch_done(int status, void *ud) {
  job_t *j = ud;
  if (status != 0) {
    respond_status(j, status, "update webhook");
  } else {
    if (j->api->subs) {
      hg_subs_put(j->api->subs, j->w.id, j->w.org, j->w.active, j->w.events);
      if (j->w.fifo) hg_subs_note_ordered(j->api->subs);
    }
    /* Deliveries this node holds back follow the new limits at once. */
    if (j->api->dispatcher && (j->set_rate_limit || j->set_max_concurrency))
      hg_dispatcher_limits(j->api->dispatcher, j->w.id, j->w.rate_limit_milli, j->w.max_concurrency);
    /* Its line ended: what waited in it goes now (those another node
     * holds are left to it). */
    if (j->api->dispatcher && j->n_released > 0)
      hg_dispatcher_offer(j->api->dispatcher, j->released, j->released_due, j->n_released);
    hg_http_respond_json(j->req, 200, webhook_json(j->api, &j->w));
  }
  job_free(j);
}

static void patch_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  if (!check_id(req, hg_http_req_param(req, "id"))) return;
  json_t *body = hg_api_parse_body(req, 0);
  if (body == NULL) return;
  static const char *const allowed[] = {"url",       "events",          "active",       "metadata",  "plugins",
                                        "transform", "signatureScheme", "disableAfter", "rateLimit", "maxConcurrency",
                                        "ordering",  NULL};
  json_t *details = json_array();
  job_t *j = job_new(api, req, who);
  if (j == NULL) goto out;
  hg_api_reject_unknown(body, allowed, details);
  /* The scheme comes with the keys: changing it would need new keys the
   * receivers do not have yet. A new webhook is the way. */
  if (json_object_get(body, "signatureScheme") != NULL)
    hg_api_detail(details, "signatureScheme", "is set when the webhook is created and cannot be changed");
  json_t *v;
  if ((v = json_object_get(body, "url")) != NULL) j->set_url = (j->w.url = check_url(api, v, details)) != NULL;
  if ((v = json_object_get(body, "events")) != NULL)
    j->set_events = (j->w.events = check_events(api, v, details)) != NULL;
  if ((v = json_object_get(body, "metadata")) != NULL)
    j->set_metadata = (j->w.metadata = check_metadata(v, details)) != NULL;
  if ((v = json_object_get(body, "active")) != NULL) j->set_active = check_active(v, details, &j->w.active);
  if ((v = json_object_get(body, "disableAfter")) != NULL)
    j->set_disable_after =
        check_disable_after(v, details, &j->w.disable_after_exhausted, &j->w.disable_after_failing_ms);
  if ((v = json_object_get(body, "rateLimit")) != NULL)
    j->set_rate_limit = check_rate_limit(v, details, &j->w.rate_limit_milli);
  if ((v = json_object_get(body, "maxConcurrency")) != NULL)
    j->set_max_concurrency = check_max_concurrency(v, details, &j->w.max_concurrency);
  if ((v = json_object_get(body, "ordering")) != NULL) j->set_ordering = check_ordering(v, details, &j->w.fifo);
  json_t *plugins = json_object_get(body, "plugins"), *transform = json_object_get(body, "transform");
  if (plugins || transform) {
    check_lua(api, plugins, transform, details);
    j->set_plugins = json_incref(plugins);
    j->set_transform = json_incref(transform);
  }
  if (hg_api_refuse(req, &details, 0)) goto out;
  j->now = hg_wall_ms();
  submit(j, patch_work, patch_done);
  j = NULL;
out:
  job_free(j);
  json_decref(details);
  json_decref(body);
}

/* --- DELETE /v1/webhooks/{id} ---------------------------------------------- */

static int delete_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  return hg_webhooks_delete(db, j->id, j->org);
}

static void delete_done(int status, void *ud) {
  job_t *j = ud;
  if (status != 0) {
    respond_status(j, status, "delete webhook");
  } else {
    if (j->api->subs) hg_subs_del(j->api->subs, j->id);
    /* Deliveries it held back go now, to find their rows gone: nothing is
     * left waiting for a webhook that no longer exists. */
    if (j->api->dispatcher) hg_dispatcher_limits(j->api->dispatcher, j->id, 0, 0);
    hg_http_respond(j->req, 204, NULL, NULL, 0);
  }
  job_free(j);
}

static void delete_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  if (!check_id(req, hg_http_req_param(req, "id"))) return;
  job_t *j = job_new(api, req, who);
  if (j) submit(j, delete_work, delete_done);
}

/* --- POST /v1/webhooks/{id}/rotate-secret ---------------------------------- */

static int rotate_work(hg_db_t *db, void *ud) {
  job_t *j = ud;
  /* The new key is of the webhook's scheme, known only here. */
  int r = hg_webhooks_get(db, j->id, j->org, &j->w);
  if (r != 0) return r;
  int v1a = strcmp(j->w.scheme, "v1a") == 0;
  if ((v1a ? hg_signing_key_generate(j->secret) : hg_secret_generate(j->secret)) != 0) return HG_EIO;
  r = hg_webhooks_rotate(db, j->id, j->org, j->secret, j->now, j->grace_ms, &j->prev_expires);
  return r != 0 ? r : hg_webhooks_public_keys(db, &j->w, j->now);
}

static void rotate_done(int status, void *ud) {
  job_t *j = ud;
  if (status != 0) {
    respond_status(j, status, "rotate secret");
  } else if (strcmp(j->w.scheme, "v1a") == 0) {
    /* The private key stays here; receivers get the new public key, and
     * every public key that still signs, newest first. */
    json_t *keys = json_array();
    for (size_t i = 0; i < j->w.n_public_keys; i++)
      json_array_append_new(keys, json_string(j->w.public_keys[i]));
    hg_http_respond_json(j->req, 200,
                         json_pack("{s:s,s:o,s:o}", "publicKey", j->w.n_public_keys > 0 ? j->w.public_keys[0] : "",
                                   "publicKeys", keys, "previousSecretExpiresAt", hg_api_time(j->prev_expires)));
  } else {
    hg_http_respond_json(j->req, 200,
                         json_pack("{s:s,s:o}", "secret", j->secret, "previousSecretExpiresAt",
                                   hg_api_time(j->prev_expires)));
  }
  job_free(j);
}

static void rotate_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  if (!check_id(req, hg_http_req_param(req, "id"))) return;
  json_t *body = hg_api_parse_body(req, 1);
  if (body == NULL) return;
  static const char *const allowed[] = {"gracePeriodHours", NULL};
  json_t *details = json_array();
  hg_api_reject_unknown(body, allowed, details);
  double hours = 24;
  json_t *v = json_object_get(body, "gracePeriodHours");
  if (v != NULL) {
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 168)
      hg_api_detail(details, "gracePeriodHours", "must be a number from 0 to 168");
    else
      hours = json_number_value(v);
  }
  json_decref(body);
  if (json_array_size(details) > 0) {
    hg_api_validation_error(req, details);
    return;
  }
  json_decref(details);
  job_t *j = job_new(api, req, who);
  if (j == NULL) return;
  j->now = hg_wall_ms();
  j->grace_ms = (int64_t)(hours * 3600.0 * 1000.0);
  submit(j, rotate_work, rotate_done);
}

/* --- routes ---------------------------------------------------------------- */

HG_API_ROUTE(create, HG_SCOPE_WEBHOOKS_WRITE)
HG_API_ROUTE(get, HG_SCOPE_WEBHOOKS_READ)
HG_API_ROUTE(list, HG_SCOPE_WEBHOOKS_READ)
HG_API_ROUTE(patch, HG_SCOPE_WEBHOOKS_WRITE)
HG_API_ROUTE(delete, HG_SCOPE_WEBHOOKS_WRITE)
HG_API_ROUTE(rotate, HG_SCOPE_WEBHOOKS_WRITE)

int hg_api_webhooks_add_routes(hg_api_t *api, hg_router_t *router) {
  static const hg_route_def_t routes[] = {
      HG_API_DEF("POST", "/v1/webhooks", create),
      HG_API_DEF("GET", "/v1/webhooks", list),
      HG_API_DEF("GET", "/v1/webhooks/{id}", get),
      HG_API_DEF("PATCH", "/v1/webhooks/{id}", patch),
      HG_API_DEF("DELETE", "/v1/webhooks/{id}", delete),
      HG_API_DEF("POST", "/v1/webhooks/{id}/rotate-secret", rotate),
      {NULL, NULL, NULL, 0},
  };
  return hg_router_add_all(router, routes, api);
}
