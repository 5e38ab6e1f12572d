/* api_auth.c: Bearer keys, scopes and a short-lived cache of lookups.
 *
 * A key is looked up by its SHA-256 (the store never holds the key). Hits
 * are cached for a few seconds so that a busy publisher costs no store
 * round trip per request; a revoked key therefore stops working within
 * HG_KEYCACHE_TTL_MS. */
#include "api/api.h"

#include "base/common.h"
#include "base/crypto.h"
#include "store/keys.h"
#include "base/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HG_KEYCACHE_SLOTS 1024
#define HG_KEYCACHE_TTL_MS 5000

typedef struct slot {
  unsigned char hash[32];
  uint64_t expires_ns;
  hg_principal_t who;
} slot_t;

struct hg_keycache {
  slot_t slots[HG_KEYCACHE_SLOTS];
};

static slot_t *cache_slot(hg_api_t *api, const unsigned char hash[32]) {
  if (api->keys == NULL && (api->keys = calloc(1, sizeof(*api->keys))) == NULL) return NULL;
  unsigned idx = ((unsigned)hash[0] | (unsigned)hash[1] << 8) % HG_KEYCACHE_SLOTS;
  return &api->keys->slots[idx];
}

typedef struct lookup {
  hg_api_t *api;
  hg_http_req_t *req;
  unsigned scope;
  hg_api_authorized_fn fn;
  char key[160];
  unsigned char hash[32];
  hg_key_info_t info;
} lookup_t;

static void finish(hg_api_t *api, hg_http_req_t *req, unsigned scope, const hg_principal_t *who,
                   hg_api_authorized_fn fn) {
  if ((who->scopes & (scope | HG_SCOPE_ADMIN)) == 0) {
    hg_http_respond_error(req, 403, "forbidden", "insufficient permissions", NULL);
    return;
  }
  fn(api, req, who);
}

static int lookup_work(hg_db_t *db, void *ud) {
  lookup_t *l = ud;
  return hg_keys_lookup(db, l->key, &l->info);
}

static void lookup_done(int status, void *ud) {
  lookup_t *l = ud;
  if (status != 0) {
    if (status == HG_ENOTFOUND)
      hg_http_respond_error(l->req, 401, "unauthorized", "unknown or revoked API key", NULL);
    else
      hg_api_internal_error(l->req, "key lookup", status);
  } else {
    hg_principal_t who;
    memset(&who, 0, sizeof(who));
    snprintf(who.key_id, sizeof(who.key_id), "%s", l->info.id);
    who.scopes = l->info.scopes;
    if (l->info.has_org) snprintf(who.org, sizeof(who.org), "%s", l->info.organization_id);
    slot_t *s = cache_slot(l->api, l->hash);
    if (s != NULL) {
      memcpy(s->hash, l->hash, 32);
      s->who = who;
      s->expires_ns = hg_now_ns() + (uint64_t)HG_KEYCACHE_TTL_MS * 1000000u;
    }
    finish(l->api, l->req, l->scope, &who, l->fn);
  }
  memset(l->key, 0, sizeof(l->key));
  free(l);
}

static size_t header_count(const hg_http_req_t *req, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < req->n_headers; i++) n += strcasecmp(req->headers[i].name, name) == 0;
  return n;
}

void hg_api_authorize(hg_api_t *api, hg_http_req_t *req, unsigned scope, hg_api_authorized_fn fn) {
  /* Two keys in one request: which one acts is anyone's guess (a proxy may
   * pick the other one), so neither does. */
  if (header_count(req, "authorization") > 1) {
    json_t *details = json_pack("[{s:s,s:s}]", "field", "Authorization", "message", "sent more than once");
    hg_http_respond_error(req, 400, "bad_request", "more than one Authorization header", details);
    return;
  }
  const char *auth = hg_http_req_header(req, "authorization");
  if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
    hg_http_req_add_header(req, "WWW-Authenticate", "Bearer");
    hg_http_respond_error(req, 401, "unauthorized", "missing API key: send Authorization: Bearer <key>", NULL);
    return;
  }
  const char *key = auth + 7;
  size_t key_len = strlen(key);
  unsigned char hash[32];
  hg_sha256(key, key_len, hash);
  int internal = api->has_internal_key && hg_ct_equal(hash, api->internal_key_hash, 32);
  if ((api->has_admin_key && hg_ct_equal(hash, api->admin_key_hash, 32)) || internal) {
    hg_principal_t who;
    memset(&who, 0, sizeof(who));
    strcpy(who.key_id, internal ? "lua" : "bootstrap");
    who.scopes = HG_SCOPE_ALL;
    finish(api, req, scope, &who, fn);
    return;
  }
  slot_t *s = cache_slot(api, hash);
  if (s != NULL && s->expires_ns > hg_now_ns() && hg_ct_equal(s->hash, hash, 32)) {
    finish(api, req, scope, &s->who, fn);
    return;
  }
  if (key_len >= sizeof(((lookup_t *)0)->key)) {
    hg_http_respond_error(req, 401, "unauthorized", "unknown or revoked API key", NULL);
    return;
  }
  lookup_t *l = calloc(1, sizeof(*l));
  if (l == NULL) {
    hg_api_internal_error(req, "look up the API key", HG_ENOMEM);
    return;
  }
  l->api = api;
  l->req = req;
  l->scope = scope;
  l->fn = fn;
  memcpy(l->key, key, key_len);
  memcpy(l->hash, hash, 32);
  int r = hg_store_submit(api->store, lookup_work, lookup_done, l);
  if (r != 0) {
    free(l);
    hg_api_internal_error(req, "key lookup", r);
  }
}

void hg_api_keycache_free(hg_api_t *api) {
  free(api->keys);
  api->keys = NULL;
}
