/* deliver.c: one delivery's way out: the Lua phases (the operator's
 * transform, sign and deliver plugins here, the webhook's own transform in
 * the tenant sandbox), the URL rules, the Standard Webhooks signature and
 * headers, the request handed to the HTTP client, and its response. */
#include "pipeline/dispatcher_internal.h"

#include "base/common.h"
#include "base/crypto.h"
#include "base/log.h"
#include "base/sign.h"
#include "base/url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void response_cb(const hg_client_response_t *res, void *ud) {
  item_t *it = ud;
  if (res->error == HG_ECLOSED) {
    /* Cancelled by stop: leave the row pending for the next start. */
    hg_dispatch__abandon(it);
    return;
  }
  if (res->body_len > 0) {
    it->resp_body = malloc(res->body_len);
    if (it->resp_body) {
      memcpy(it->resp_body, res->body, res->body_len);
      it->resp_len = res->body_len;
    }
  }
  if (res->error != 0) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "%s", res->error_text ? res->error_text : hg_strerror(res->error));
  }
  hg_dispatch__finish(it, res->status, res);
}

/* The HTTP client's default User-Agent (the app sets no other). */
#define USER_AGENT "hookgate/" HG_VERSION
#define REDACTED "[redacted]"
/* Past this much JSON text, further headers are left out of the record
 * (the sandbox allows 64 KiB of a transform's headers; operator plugins'
 * names are bounded by their memory only). */
#define KEPT_HEADERS_MAX (64u << 10)

/* 1 when value is the one the core itself sets under name: safe to show. */
static int core_value(const item_t *it, const char *name, const char *value, const char *ts, const char *sig) {
  if (strcasecmp(name, "content-type") == 0) return strcmp(value, "application/json") == 0;
  if (strcasecmp(name, "webhook-id") == 0) return strcmp(value, it->send.event_id) == 0;
  if (strcasecmp(name, "webhook-timestamp") == 0) return strcmp(value, ts) == 0;
  if (strcasecmp(name, "user-agent") == 0) return strcmp(value, USER_AGENT) == 0;
  if (strcasecmp(name, "webhook-signature") != 0) return 0;
  if (sig != NULL) return strcmp(value, sig) == 0;
  unsigned char d[32];
  hg_sha256(value, strlen(value), d);
  return it->has_sig_digest && memcmp(d, it->sig_digest, sizeof(d)) == 0;
}

/* Headers the client sets itself and drops from the caller's list. */
static int client_header(const char *name) {
  return strcasecmp(name, "host") == 0 || strcasecmp(name, "content-length") == 0 ||
         strcasecmp(name, "transfer-encoding") == 0 || strcasecmp(name, "connection") == 0;
}

/* Room a "name":"value" member may take: every value byte escaped; names
 * are tokens (the client refused the request otherwise), never escaped. */
static size_t member_max(const char *name, size_t value_len) { return strlen(name) + 6 * value_len + 6; }

static char *put_str(char *w, const char *s) {
  static const char hex[] = "0123456789abcdef";
  *w++ = '"';
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      *w++ = '\\';
      *w++ = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      memcpy(w, "\\u00", 4);
      w[4] = hex[c >> 4];
      w[5] = hex[c & 15];
      w += 6;
    } else {
      *w++ = (char)c;
    }
  }
  *w++ = '"';
  return w;
}

static char *put_member(char *w, int *first, const char *name, const char *value) {
  if (!*first) *w++ = ',';
  *first = 0;
  w = put_str(w, name);
  *w++ = ':';
  return put_str(w, value);
}

/* Keeps the headers of the request just handed to the client for the
 * attempt's record (it->send.request_headers), as a JSON object text:
 * names as sent and in the order sent, with the User-Agent and
 * Content-Length the client adds (Host, which follows from the URL, is
 * left out). A value is kept in full only when it is the one the core
 * sets under that name (Content-Type, webhook-id, webhook-timestamp,
 * webhook-signature, User-Agent, Content-Length); any other is
 * "[redacted]": plugins and tenant transforms add credentials for the
 * receiver (custom-headers), which reading the delivery log must not hand
 * out. sig is the core's webhook-signature, or NULL after a deliver-phase
 * plugin (it->sig_digest then). One allocation; when it fails the attempt
 * records no headers. */
static void keep_headers(item_t *it, const hg_client_header_t *h, size_t n, size_t body_len, const char *sig) {
  char ts[24], len_buf[24];
  ts[hg_fmt_i64(ts, it->started_at / 1000)] = '\0';
  len_buf[hg_fmt_u64(len_buf, body_len)] = '\0';
  /* Room: the members the client adds, and for the others an upper bound
   * (a value in full or redacted, whichever is longer) capped where the
   * loop below stops adding; which value is shown is decided once, there. */
  int has_ua = 0;
  size_t upper = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcasecmp(h[i].name, "user-agent") == 0) has_ua = 1;
    if (client_header(h[i].name)) continue;
    size_t vlen = strlen(h[i].value);
    upper += member_max(h[i].name, vlen > strlen(REDACTED) ? vlen : strlen(REDACTED));
  }
  size_t budget = 2 + member_max("Content-Length", strlen(len_buf));
  size_t cap = budget + (upper < KEPT_HEADERS_MAX ? upper : KEPT_HEADERS_MAX) +
               (has_ua ? 0 : member_max("User-Agent", strlen(USER_AGENT)));
  char *out = malloc(cap + 1), *w = out;
  if (out == NULL) return;
  int first = 1;
  *w++ = '{';
  if (!has_ua) w = put_member(w, &first, "User-Agent", USER_AGENT);
  for (size_t i = 0; i < n; i++) {
    if (client_header(h[i].name)) continue;
    int full = core_value(it, h[i].name, h[i].value, ts, sig);
    size_t m = member_max(h[i].name, full ? strlen(h[i].value) : strlen(REDACTED));
    if (budget + m > KEPT_HEADERS_MAX) continue;
    budget += m;
    w = put_member(w, &first, h[i].name, full ? h[i].value : REDACTED);
  }
  w = put_member(w, &first, "Content-Length", len_buf);
  *w++ = '}';
  *w = '\0';
  free(it->send.request_headers);
  it->send.request_headers = out;
}

/* Puts the request on the wire (the client copies what it needs). sig: the
 * core's webhook-signature, for the attempt's record (see keep_headers). */
static void send_raw(item_t *it, const char *url, const char *body, size_t body_len, const hg_client_header_t *headers,
                     size_t n_headers, const char *sig) {
  hg_dispatcher_t *d = it->d;
  if (d->client == NULL || d->stopping) {
    hg_dispatch__abandon(it);
    return;
  }
  /* Nodes sharing a PostgreSQL store: the lease taken at the load must
   * outlast the attempt. A delivery that waited long since (a full store
   * queue, the transform sandbox's queue) goes back to be claimed again
   * instead of racing another node that may take it over. */
  if (d->node_id != NULL && !it->test_cb &&
      !hg_send_leased(&it->send, d->node_id, hg_wall_ms() + (int64_t)d->cfg->request_timeout_ms + 1000)) {
    hg_dispatch__abandon(it);
    return;
  }
  hg_client_request_t req;
  memset(&req, 0, sizeof(req));
  req.method = "POST";
  req.url = url;
  req.headers = headers;
  req.n_headers = n_headers;
  req.body = body;
  req.body_len = body_len;
  char err[200];
  int r = hg_client_send(d->client, &req, response_cb, it, err, sizeof(err));
  /* The client never calls back inside the call: the record is ready
   * before the response can be. */
  if (r == 0) keep_headers(it, headers, n_headers, body_len, sig);
  if (r != 0) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "%s", r == HG_EINVAL ? err : hg_strerror(r));
    hg_dispatch__finish(it, 0, NULL);
  }
}

static void script_failed(item_t *it, const char *err);

/* 0 if url (as the Lua phases left it) follows the webhook URL rules;
 * else fails the delivery as a script error and returns -1. */
static int url_allowed(item_t *it, const char *url) {
  char why[128];
  if (url == it->send.url || hg_url_ok(url, it->d->cfg->allow_http_urls, why, sizeof(why))) return 0;
  char msg[256];
  snprintf(msg, sizeof(msg), "delivery.url after the Lua phases %s", why);
  script_failed(it, msg);
  return -1;
}

/* Sends what a deliver-phase plugin left in req_json (url, body, headers). */
static void send_request(item_t *it, json_t *req_json) {
  hg_client_header_t headers[64];
  size_t n = 0;
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(req_json, "headers"), k, v) {
    if (n < HG_ARRAY_LEN(headers) && json_is_string(v)) {
      headers[n].name = k;
      headers[n++].value = json_string_value(v);
    }
  }
  const char *url = json_string_value(json_object_get(req_json, "url"));
  json_t *body = json_object_get(req_json, "body");
  if (url == NULL || !json_is_string(body)) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "script_error: url and body must be strings after the Lua phases");
    it->no_retry = 1;
    hg_dispatch__finish(it, 0, NULL);
    return;
  }
  if (url_allowed(it, url) != 0) return;
  send_raw(it, url, json_string_value(body), json_string_length(body), headers, n, NULL);
}

static void script_failed(item_t *it, const char *err) {
  if (it->d->stopping) {
    hg_dispatch__abandon(it);
    return;
  }
  /* A broken script fails the delivery (no retry: it would fail the same
   * way); after a fix, a replay sends it. */
  it->has_error = 1;
  it->no_retry = 1;
  snprintf(it->error, sizeof(it->error), "script_error: %.400s", err);
  hg_dispatch__finish(it, 0, NULL);
}

static void deliver_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)res, (void)res2;
  item_t *it = ud;
  if (it->d->stopping) {
    /* Shutting down: whatever the plugin saw (its requests were cancelled),
     * the delivery stays pending and goes out after the restart. */
    hg_dispatch__abandon(it);
    return;
  }
  if (status != 0) {
    script_failed(it, err);
    return;
  }
  send_request(it, arg);
}

/* The request as the Lua phases left it, for the deliver phase (JSON). */
static json_t *delivery_json(const hg_lua_delivery_t *ld) {
  json_t *h = json_object();
  for (size_t i = 0; i < ld->n_headers; i++) {
    json_t *v = json_string(ld->headers[i].value);
    if (v) json_object_set_new(h, ld->headers[i].name, v);
  }
  return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s%,s:o,s:i}", "id", ld->id, "webhookId", ld->webhook_id, "eventId",
                   ld->event_id, "eventType", ld->event_type, "url", ld->url, "body", ld->body, ld->body_len,
                   "headers", h, "attempt", ld->attempt);
}

static int add_header(hg_lua_delivery_t *ld, const char *name, const char *value) {
  /* These are the core's: every header of that name, in any case, goes
   * (two spellings would both be sent), then the core's value is added. */
  size_t k = 0;
  for (size_t i = 0; i < ld->n_headers; i++) {
    if (strcasecmp(ld->headers[i].name, name) == 0) {
      free(ld->headers[i].name);
      free(ld->headers[i].value);
    } else {
      ld->headers[k++] = ld->headers[i];
    }
  }
  ld->n_headers = k;
  hg_lua_header_t *h = realloc(ld->headers, (ld->n_headers + 1) * sizeof(*h));
  if (h == NULL) return HG_ENOMEM;
  ld->headers = h;
  char *n = strdup(name), *v = strdup(value);
  if (n == NULL || v == NULL) {
    free(n);
    free(v);
    return HG_ENOMEM;
  }
  h[ld->n_headers].name = n;
  h[ld->n_headers].value = v;
  ld->n_headers++;
  return 0;
}

/* Sends ld after a transform phase alone: the core's headers go straight
 * into the request, each replacing the first of the plugin's headers of
 * the same name as add_header would, without copying any. */
static void send_transformed(item_t *it, const hg_lua_delivery_t *ld, const char *ts_buf, const char *sig) {
  const hg_client_header_t core[] = {
      {"Content-Type", "application/json"},
      {"webhook-id", it->send.event_id},
      {"webhook-timestamp", ts_buf},
      {"webhook-signature", sig},
  };
  hg_client_header_t headers[64 + HG_ARRAY_LEN(core)];
  size_t n = 0;
  if (ld->n_headers > 64) {
    /* Cutting the list could drop the signature: refuse instead. */
    script_failed(it, "more than 64 request headers after the Lua phases");
    return;
  }
  /* The plugins' headers but the core's names, in any case (a second
   * spelling would be sent beside the core's value), then the core's. */
  for (size_t i = 0; i < ld->n_headers; i++) {
    size_t k = 0;
    while (k < HG_ARRAY_LEN(core) && strcasecmp(ld->headers[i].name, core[k].name) != 0) k++;
    if (k == HG_ARRAY_LEN(core)) headers[n++] = (hg_client_header_t){ld->headers[i].name, ld->headers[i].value};
  }
  if (n + HG_ARRAY_LEN(core) > 64) {
    script_failed(it, "more than 64 request headers after the Lua phases");
    return;
  }
  for (size_t k = 0; k < HG_ARRAY_LEN(core); k++) headers[n++] = core[k];
  send_raw(it, ld->url, ld->body, ld->body_len, headers, n, sig);
}

static void send_lua_rest(item_t *it);

/* The webhook's own transform code (tenant code: it runs in the sandbox),
 * from its bindings text, or NULL when it has none. Borrowed from a small
 * cache of the last bindings seen (parsed once, not per delivery): valid
 * until the next call. */
static const char *tenant_transform(hg_dispatcher_t *d, const char *bindings) {
  if (bindings == NULL || strstr(bindings, "\"transform\"") == NULL) return NULL;
  code_cache_t *c = d->codes;
  for (size_t i = 0; i < HG_ARRAY_LEN(d->codes); i++)
    if (c[i].bindings && strcmp(c[i].bindings, bindings) == 0) return c[i].code;
  code_cache_t *slot = &c[d->next_code++ % HG_ARRAY_LEN(d->codes)];
  free(slot->bindings);
  free(slot->code);
  slot->bindings = slot->code = NULL;
  json_t *b = json_loads(bindings, 0, NULL);
  const char *code = json_string_value(json_object_get(b, "transform"));
  if (code && (slot->bindings = strdup(bindings)) != NULL && (slot->code = strdup(code)) == NULL) {
    free(slot->bindings);
    slot->bindings = NULL;
  }
  json_decref(b);
  return slot->code;
}

static void tenant_done(int status, hg_lua_delivery_t *ld, const char *err, void *ud) {
  item_t *it = ud;
  (void)ld;
  if (it->d->stopping) {
    hg_dispatch__abandon(it);
    return;
  }
  if (status == HG_EBUSY || status == HG_ENOMEM) {
    hg_dispatch__abandon(it); /* due again in a second */
    return;
  }
  if (status != 0) {
    /* Named as the docs say: plugin webhook-transform, then where. */
    char msg[700];
    snprintf(msg, sizeof(msg), "plugin webhook-transform (transform): %s", err);
    hg_lua_count_error("webhook-transform", "transform");
    script_failed(it, msg);
    return;
  }
  send_lua_rest(it);
}

static hg_sandbox_t *sandbox_of(hg_dispatcher_t *d) {
  if (d->sandbox == NULL) {
    const hg_config_t *cfg = d->cfg;
    hg_sandbox_opts_t o = {.loop = d->loop,
                           .workers = (unsigned)cfg->sandbox_workers,
                           .states = (unsigned)cfg->sandbox_states,
                           .budget_ms = cfg->sandbox_cpu_budget_ms,
                           .grace_ms = cfg->sandbox_grace_ms,
                           .memory = cfg->sandbox_memory,
                           .max_queue = cfg->sandbox_queue,
                           /* One organization's transforms hold at most half
                            * the dispatcher's places (max_active is twice
                            * max_in_flight): past that its deliveries wait in
                            * the heap, and the other half stays free for the
                            * other organizations. */
                           .max_per_org = cfg->max_in_flight};
    char err[256];
    if (hg_sandbox_new(&d->sandbox, &o, err, sizeof(err)) != 0)
      hg_log(HG_LOG_ERROR, "cannot start the transform sandbox", "error", err, NULL);
  }
  return d->sandbox;
}

void hg_dispatch__sandbox_free(hg_dispatcher_t *d) {
  hg_sandbox_free(d->sandbox);
  d->sandbox = NULL;
  for (size_t i = 0; i < HG_ARRAY_LEN(d->codes); i++) {
    free(d->codes[i].bindings);
    free(d->codes[i].code);
  }
}

/* The Lua phases of a delivery: the operator's transform plugins here, the
 * webhook's own transform code in the sandbox (tenant code never runs in
 * this process), then send_lua_rest. */
static void send_lua(item_t *it, hg_lua_t *lua, int lua_transform, int tenant) {
  hg_send_t *s = &it->send;
  hg_lua_delivery_t *ld = it->ld = calloc(1, sizeof(*ld));
  if (ld == NULL) {
    hg_dispatch__abandon(it);
    return;
  }
  ld->id = s->id;
  ld->webhook_id = s->webhook_id;
  ld->event_id = s->event_id;
  ld->event_type = s->event_type;
  ld->attempt = s->attempts + 1;
  char err[1024];
  /* Borrowed: copied only if a plugin changes them. */
  ld->url = s->url;
  ld->body = s->payload;
  ld->body_len = s->payload_len;
  if (lua_transform && hg_lua_call_delivery(lua, HG_PHASE_TRANSFORM, s->lua, ld, err, sizeof(err)) != 0) {
    script_failed(it, err);
    return;
  }
  const char *code = tenant ? tenant_transform(it->d, s->lua) : NULL;
  if (code != NULL) {
    hg_sandbox_t *sb = sandbox_of(it->d);
    uint64_t retry_ms = 1000;
    int r = sb ? hg_sandbox_transform(sb, s->webhook_id, s->org, code, ld, tenant_done, it, &retry_ms) : HG_EIO;
    /* The sandbox is full, holds its share of this organization's
     * transforms already, or cannot start: due again when it says its
     * queue for the organization will have room (a second if it cannot
     * tell). */
    if (r != 0) hg_dispatch__abandon_for(it, r == HG_EBUSY ? retry_ms : 1000);
    return;
  }
  send_lua_rest(it);
}

/* After the transforms: skip, sign (the core's signature, then the sign
 * phase), the deliver phase or the request. */
static void send_lua_rest(item_t *it) {
  hg_send_t *s = &it->send;
  hg_lua_t *lua = *it->d->lua;
  hg_lua_delivery_t ld = *it->ld;
  free(it->ld);
  it->ld = NULL;
  int lua_sign = lua && hg_lua_has(lua, HG_PHASE_SIGN, s->lua);
  int lua_deliver = lua && hg_lua_has(lua, HG_PHASE_DELIVER, s->lua);
  int64_t ts = it->started_at / 1000;
  char ts_buf[24];
  ts_buf[hg_fmt_i64(ts_buf, ts)] = '\0';
  char err[1024];
  /* delivery.skip = "reason" (or true): this webhook does not get this
   * event. Recorded as skipped with the reason; nothing is sent. */
  if (ld.skip != NULL) {
    it->skipped = 1;
    it->has_error = 1; /* a test send reports the reason */
    snprintf(it->error, sizeof(it->error), "skipped: %.400s", ld.skip);
    hg_lua_delivery_close(&ld);
    hg_dispatch__finish(it, 0, NULL);
    return;
  }
  /* A transform may change the URL, within the rules the API applies. */
  if (url_allowed(it, ld.url) != 0) {
    hg_lua_delivery_close(&ld);
    return;
  }
  /* The Standard Webhooks signature covers the body as sent, after any
   * transformation. */
  char sig[HG_MAX_SECRETS * (HG_SIG_ENTRY_MAX + 1) + 1];
  const char *secrets[HG_MAX_SECRETS];
  for (size_t i = 0; i < s->n_secrets; i++) secrets[i] = s->secrets[i];
  if (s->n_secrets == 0 ||
      hg_sign_header(secrets, s->n_secrets, s->event_id, ts, ld.body, ld.body_len, sig, sizeof(sig)) < 0) {
    hg_lua_delivery_close(&ld);
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "cannot sign: the webhook has no valid secret");
    hg_dispatch__finish(it, 0, NULL);
    return;
  }
  if (!lua_sign && !lua_deliver) {
    send_transformed(it, &ld, ts_buf, sig);
    hg_lua_delivery_close(&ld);
    return;
  }
  if (add_header(&ld, "Content-Type", "application/json") != 0 || add_header(&ld, "webhook-id", s->event_id) != 0 ||
      add_header(&ld, "webhook-timestamp", ts_buf) != 0 || add_header(&ld, "webhook-signature", sig) != 0) {
    hg_lua_delivery_close(&ld);
    script_failed(it, "out of memory");
    return;
  }
  if (lua_sign && hg_lua_call_delivery(lua, HG_PHASE_SIGN, s->lua, &ld, err, sizeof(err)) != 0) {
    hg_lua_delivery_close(&ld);
    script_failed(it, err);
    return;
  }
  if (lua_sign && url_allowed(it, ld.url) != 0) {
    hg_lua_delivery_close(&ld);
    return;
  }
  if (lua_deliver) {
    hg_sha256(sig, strlen(sig), it->sig_digest);
    it->has_sig_digest = 1;
    json_t *dj = delivery_json(&ld);
    hg_lua_delivery_close(&ld);
    int r = dj ? hg_lua_call_async(lua, HG_PHASE_DELIVER, s->lua, dj, deliver_done, it) : HG_EINVAL;
    json_decref(dj);
    if (r != 0) script_failed(it, "the deliver phase could not start (headers or body not UTF-8?)");
    return;
  }
  hg_client_header_t headers[64];
  size_t n = 0;
  if (ld.n_headers > HG_ARRAY_LEN(headers)) {
    /* Cutting the list could drop the signature: refuse instead. */
    hg_lua_delivery_close(&ld);
    script_failed(it, "more than 64 request headers after the Lua phases");
    return;
  }
  for (size_t i = 0; i < ld.n_headers && n < HG_ARRAY_LEN(headers); i++) {
    headers[n].name = ld.headers[i].name;
    headers[n++].value = ld.headers[i].value;
  }
  send_raw(it, ld.url, ld.body, ld.body_len, headers, n, sig);
  hg_lua_delivery_close(&ld);
}

/* Without Lua phases or a tenant transform, the stored payload is signed
 * and sent as it is: no Lua delivery table is built. */
void hg_dispatch__send(item_t *it) {
  hg_dispatcher_t *d = it->d;
  hg_send_t *s = &it->send;
  hg_lua_t *lua = *d->lua;
  it->started_at = hg_wall_ms();
  int64_t ts = it->started_at / 1000;
  char ts_buf[24];
  ts_buf[hg_fmt_i64(ts_buf, ts)] = '\0';
  int lua_transform = lua && hg_lua_has(lua, HG_PHASE_TRANSFORM, s->lua);
  int lua_sign = lua && hg_lua_has(lua, HG_PHASE_SIGN, s->lua);
  int lua_deliver = lua && hg_lua_has(lua, HG_PHASE_DELIVER, s->lua);
  int tenant = s->lua != NULL && strstr(s->lua, "\"transform\"") != NULL;
  if (lua_transform || lua_sign || lua_deliver || tenant) {
    send_lua(it, lua, lua_transform, tenant);
    return;
  }
  char sig[HG_MAX_SECRETS * (HG_SIG_ENTRY_MAX + 1) + 1];
  const char *secrets[HG_MAX_SECRETS];
  for (size_t i = 0; i < s->n_secrets; i++) secrets[i] = s->secrets[i];
  if (s->n_secrets == 0 ||
      hg_sign_header(secrets, s->n_secrets, s->event_id, ts, s->payload, s->payload_len, sig, sizeof(sig)) < 0) {
    it->has_error = 1;
    snprintf(it->error, sizeof(it->error), "cannot sign: the webhook has no valid secret");
    hg_dispatch__finish(it, 0, NULL);
    return;
  }
  hg_client_header_t headers[] = {
      {"Content-Type", "application/json"},
      {"webhook-id", s->event_id},
      {"webhook-timestamp", ts_buf},
      {"webhook-signature", sig},
  };
  send_raw(it, s->url, s->payload, s->payload_len, headers, HG_ARRAY_LEN(headers), sig);
}
