/* api.h: what every API handler shares: the gateway's parts it works on
 * (hg_api_t), JSON bodies, validation errors, authentication and scopes.
 *
 * The app fills an hg_api_t, owns what it points to, and registers the
 * routes with it as their user data; the handlers borrow it. This layer
 * never sees the app itself. */
#ifndef HG_API_H
#define HG_API_H

#include "base/json_scan.h"
#include "config/config.h"
#include "net/http_server.h"
#include "net/router.h"
#include "store/store.h"

#include <jansson.h>

typedef struct hg_keycache hg_keycache_t;
typedef struct hg_event_types hg_event_types_t;
typedef struct hg_dispatcher hg_dispatcher_t;
typedef struct hg_ingest hg_ingest_t;
typedef struct hg_lua hg_lua_t;
typedef struct hg_subs hg_subs_t;
typedef struct hg_recover hg_recover_t;

/* The state the handlers share (loop thread only). */
typedef struct hg_api {
  const hg_config_t *cfg;
  hg_store_t *store;
  hg_ingest_t *ingest;           /* publishes go through it */
  hg_subs_t *subs;               /* the subscription index: webhook changes update it */
  hg_event_types_t *event_types;
  hg_dispatcher_t *dispatcher;   /* NULL once delivery has stopped */
  hg_recover_t *recover;         /* bulk recoveries; NULL once delivery has stopped */
  hg_lua_t *lua;                 /* the current Lua generation (NULL: none); a reload replaces it */
  hg_keycache_t *keys;           /* key lookups (hg_api_keycache_free) */
  unsigned char admin_key_hash[32]; /* SHA-256 of HOOKGATE_ADMIN_KEY, if has_admin_key */
  int has_admin_key;
  unsigned char internal_key_hash[32]; /* SHA-256 of the key Lua's management calls use, if has_internal_key */
  int has_internal_key;
} hg_api_t;

/* Who is calling: filled by hg_api_authorize. */
typedef struct hg_principal {
  char key_id[48];     /* "bootstrap" for HOOKGATE_ADMIN_KEY */
  unsigned scopes;     /* HG_SCOPE_* bits */
  char org[129];       /* organization the key is limited to, "" if none */
} hg_principal_t;

typedef void (*hg_api_authorized_fn)(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who);

/* Checks the Authorization: Bearer key and that it carries scope (a
 * HG_SCOPE_* bit; HG_SCOPE_ADMIN implies every scope). Answers 401 or 403
 * itself on failure; otherwise calls fn, possibly later (after a store
 * lookup). */
void hg_api_authorize(hg_api_t *api, hg_http_req_t *req, unsigned scope, hg_api_authorized_fn fn);

/* Frees the key-lookup cache (at shutdown). */
void hg_api_keycache_free(hg_api_t *api);

/* Whether a Content-Type value is application/json, in any case, with or
 * without parameters ("application/json; charset=utf-8"). */
int hg_api_is_json_type(const char *content_type);

/* Parses the request body as a JSON object. Answers 415 (not
 * application/json), 400 (malformed: message names the byte offset; or not
 * an object) itself and returns NULL; otherwise returns a new reference.
 * An empty body parses as {} when empty_ok. */
json_t *hg_api_parse_body(hg_http_req_t *req, int empty_ok);

/* Validation details: a JSON array of {field, message}. */
void hg_api_detail(json_t *details, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers 422 validation_error with details (takes ownership). */
void hg_api_validation_error(hg_http_req_t *req, json_t *details);

/* 403 for a key that names another organization than its own. */
void hg_api_forbidden_org(hg_http_req_t *req);

/* The end of a handler's validation: answers 422 when *details holds any
 * (taking it: *details becomes NULL), else 403 when forbidden_org; returns
 * 1 if it answered, 0 if the request may go on. */
int hg_api_refuse(hg_http_req_t *req, json_t **details, int forbidden_org);

/* Adds a detail for every key of obj not in allowed (NULL-terminated). */
void hg_api_reject_unknown(json_t *obj, const char *const *allowed, json_t *details);

/* Seconds a client is told to wait (Retry-After) when storage is full. */
#define HG_API_STORAGE_FULL_RETRY_AFTER "5"

/* Seconds a client is told to wait (Retry-After) while the store's server
 * is unreachable: the store reconnects by itself. */
#define HG_API_STORE_UNAVAILABLE_RETRY_AFTER "1"

/* Answers 500 with the request id, logging what failed; or, for
 * HG_ENOSPC (the store's or the intake log's disk is full), 503
 * storage_full with Retry-After; or, for HG_EUNAVAIL (the store's server
 * is unreachable, PostgreSQL), 503 store_unavailable with Retry-After. */
void hg_api_internal_error(hg_http_req_t *req, const char *what, int err);

/* Opaque page tokens: base64url of the last id seen. */
void hg_api_page_token(const char *last_id, char *out, size_t cap);
int hg_api_page_token_parse(const char *token, char *out_id, size_t cap);

/* Reads pageSize from the query (default 25, 1..100) and pageToken, which
 * must name an id with prefix (the list's own kind: a token names the last
 * id of a page we served); answers 422 itself and returns -1 on a bad
 * value. after_id is "" when there is no token. */
int hg_api_page_params(hg_http_req_t *req, const char *prefix, int *page_size, char *after_id, size_t cap);

/* Time as RFC 3339 JSON string, or JSON null for 0. */
json_t *hg_api_time(int64_t ms);

/* Defines name_route(req, api): authorizes scope, then calls
 * name_authorized(api, req, who); and the constant name_scope, which the
 * route table gives as the route's scope (HG_API_DEF), so that what
 * `hookgate routes` prints is what the handler checks. */
#define HG_API_ROUTE(name, scope)                                                                                      \
  enum { name##_scope = (scope) };                                                                                     \
  static void name##_route(hg_http_req_t *req, void *ud) { hg_api_authorize(ud, req, scope, name##_authorized); }

/* A route table entry for a handler defined by HG_API_ROUTE(name, ...). */
#define HG_API_DEF(method, pattern, name) {method, pattern, name##_route, name##_scope}

/* Route registration, one per API file: the routes get api as their user
 * data, which must outlive the router. */
int hg_api_webhooks_add_routes(hg_api_t *api, hg_router_t *router);
int hg_api_events_add_routes(hg_api_t *api, hg_router_t *router);
int hg_api_deliveries_add_routes(hg_api_t *api, hg_router_t *router);
int hg_api_recover_add_routes(hg_api_t *api, hg_router_t *router);

#endif
