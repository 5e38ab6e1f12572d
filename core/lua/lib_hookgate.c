/* lib_hookgate.c: the `hookgate` module plugins see.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. Misuse raises
 * (luaL_argerror); operational failure returns nil, err. Functions marked
 * "yields" suspend the run until the loop completes them and may run only
 * in I/O phases (ingest, route, deliver, after), routes and timers. */
#include "lua/internal.h"

#include "app.h"
#include "config/config.h"
#include "base/common.h"
#include "base/crypto.h"
#include "pipeline/dispatcher.h"
#include "net/http_client.h"
#include "base/log.h"
#include "base/sign.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static hg_lua_t *rt_of(lua_State *L) { return *(hg_lua_t **)lua_getextraspace(L); }


/* __index of a route event: `data` is decoded from the raw JSON text kept
 * in the metatable's `raw` on first use, then stored in the table itself.
 * [-2, +1, m] */
static int event_index(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "data") != 0 || !lua_getmetatable(L, 1) ||
      lua_getfield(L, -1, "raw") != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  json_t *j = json_loadb(s, len, JSON_DECODE_ANY, NULL);
  if (j == NULL) return luaL_error(L, "event.data: the stored text is not JSON"); /* validated at ingest */
  hg_lua__push_json(L, j);
  json_decref(j);
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "data");
  return 1;
}

void hg_lua__push_event(lua_State *L, const hg_lua_event_t *ev) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, ev->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, ev->type);
  lua_setfield(L, -2, "type");
  if (ev->org != NULL) {
    lua_pushstring(L, ev->org);
    lua_setfield(L, -2, "organizationId");
  }
  /* Most routing looks at the type and organization alone: the data is
   * parsed only if the plugin reads it. */
  lua_createtable(L, 0, 2);
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_setfield(L, -2, "raw");
  lua_pushcfunction(L, event_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}


static int do_log(lua_State *L, hg_log_level_t level) {
  const char *msg = luaL_checkstring(L, 1);
  hg_lua_t *rt = rt_of(L);
  lua_Debug ar;
  char where[160] = "";
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    snprintf(where, sizeof(where), "%s:%d", ar.short_src, ar.currentline);
  hg_log(level, msg, "plugin", rt->plugin, "at", where, NULL);
  return 0;
}
static int l_log_debug(lua_State *L) { return do_log(L, HG_LOG_DEBUG); }
static int l_log_info(lua_State *L) { return do_log(L, HG_LOG_INFO); }
static int l_log_warn(lua_State *L) { return do_log(L, HG_LOG_WARN); }
static int l_log_error(lua_State *L) { return do_log(L, HG_LOG_ERROR); }

/* --- shared: an in-memory dictionary with TTLs, one per process ------------------- */

static json_t *shared_dict;
/* What the values and keys hold, as counted by entry_bytes: every byte a
 * plugin can make the gateway keep here counts against lua.shared_memory. */
static size_t shared_bytes;

/* Bytes a value holds, counted generously (jansson's own overhead per
 * value and per object member included). */
static size_t json_bytes(json_t *v) {
  size_t n = 48;
  switch (json_typeof(v)) {
  case JSON_STRING: n += json_string_length(v); break;
  case JSON_ARRAY: {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) n += 8 + json_bytes(x);
    break;
  }
  case JSON_OBJECT: {
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) n += 48 + strlen(k) + json_bytes(x);
    break;
  }
  default: break;
  }
  return n;
}

static size_t entry_size(json_t *e) { return (size_t)json_integer_value(json_object_get(e, "s")); }

/* Drops every expired entry (they count until then): done when a set would
 * not fit, so that space held by expired values is given back first. */
static void shared_sweep(void) {
  json_int_t now = (json_int_t)hg_wall_ms();
  const char *k;
  json_t *e;
  void *tmp;
  json_object_foreach_safe(shared_dict, tmp, k, e) {
    json_int_t exp = json_integer_value(json_object_get(e, "e"));
    if (exp != 0 && exp <= now) {
      shared_bytes -= entry_size(e);
      json_object_del(shared_dict, k);
    }
  }
}

static void shared_del(const char *key) {
  json_t *e = json_object_get(shared_dict, key);
  if (e == NULL) return;
  shared_bytes -= entry_size(e);
  json_object_del(shared_dict, key);
}

static json_t *shared_entry(const char *key) {
  if (shared_dict == NULL) return NULL;
  json_t *e = json_object_get(shared_dict, key);
  if (e == NULL) return NULL;
  json_int_t exp = json_integer_value(json_object_get(e, "e"));
  if (exp != 0 && exp <= hg_wall_ms()) {
    shared_del(key);
    return NULL;
  }
  return e;
}

/* shared.get(key) -> value | nil */
static int l_shared_get(lua_State *L) {
  json_t *e = shared_entry(luaL_checkstring(L, 1));
  if (e == NULL) lua_pushnil(L);
  else hg_lua__push_json(L, json_object_get(e, "v"));
  return 1;
}

/* shared.set(key, value [, ttl_seconds]) -> true | nil, err */
static int l_shared_set(lua_State *L) {
  const char *key = luaL_checkstring(L, 1);
  double ttl = luaL_optnumber(L, 3, 0);
  luaL_argcheck(L, ttl >= 0, 3, "ttl must be >= 0");
  if (shared_dict == NULL) shared_dict = json_object();
  if (lua_isnil(L, 2)) {
    shared_del(key);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (json_object_size(shared_dict) >= 100000 && json_object_get(shared_dict, key) == NULL) shared_sweep();
  if (json_object_size(shared_dict) >= 100000 && json_object_get(shared_dict, key) == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, "shared.set: full (100000 keys)");
    return 2;
  }
  char err[128];
  json_t *v = hg_lua__to_json(L, 2, err, sizeof(err));
  if (v == NULL) return luaL_argerror(L, 2, err);
  json_int_t exp = ttl > 0 ? (json_int_t)(hg_wall_ms() + (int64_t)(ttl * 1000)) : 0;
  size_t size = 96 + strlen(key) + json_bytes(v);
  json_t *old = json_object_get(shared_dict, key);
  size_t old_size = old ? entry_size(old) : 0;
  size_t limit = rt_of(L)->app->cfg->lua_shared_memory;
  if (shared_bytes - old_size + size > limit) {
    shared_sweep();
    old = json_object_get(shared_dict, key);
    old_size = old ? entry_size(old) : 0;
  }
  if (shared_bytes - old_size + size > limit) {
    json_decref(v);
    lua_pushnil(L);
    lua_pushfstring(L, "shared.set: full (lua.shared_memory is %I bytes)", (lua_Integer)limit);
    return 2;
  }
  json_t *e = json_pack("{s:o,s:I,s:I}", "v", v, "e", exp, "s", (json_int_t)size);
  if (e == NULL) return luaL_error(L, "shared.set: out of memory");
  shared_bytes = shared_bytes - old_size + size;
  json_object_set_new(shared_dict, key, e);
  lua_pushboolean(L, 1);
  return 1;
}

/* shared.incr(key, by [, ttl]) -> new value (a missing key counts as 0) */
static int l_shared_incr(lua_State *L) {
  const char *key = luaL_checkstring(L, 1);
  lua_Number by = luaL_optnumber(L, 2, 1);
  json_t *e = shared_entry(key);
  lua_Number cur = 0;
  if (e != NULL) cur = json_number_value(json_object_get(e, "v"));
  lua_settop(L, 3);
  lua_pushnumber(L, cur + by);
  if (lua_isinteger(L, 2) || lua_isnil(L, 2)) {
    lua_Integer iv = (lua_Integer)(cur + by);
    lua_pop(L, 1);
    lua_pushinteger(L, iv);
  }
  lua_replace(L, 2);
  if (e != NULL && lua_isnil(L, 3)) {
    /* Keep the entry's expiry. */
    char err[8];
    json_object_set_new(e, "v", hg_lua__to_json(L, 2, err, sizeof(err)));
  } else {
    l_shared_set(L);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 2);
  return 1;
}

/* --- sleep and timers ------------------------------------------------------------ */

static void sleep_cb(uv_timer_t *t) {
  hg_lua_run_t *run = t->data;
  run->sleeping = 0;
  hg_lua__resume(run, 0);
}

/* sleep(seconds)   yields */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s <= 86400, 1, "must be 0 to 86400 seconds");
  hg_lua_run_t *run = hg_lua__check_io(L, "hookgate.sleep");
  if (run->rt->shutting_down) return 0; /* do not hold the shutdown up */
  run->sleeping = 1;
  uv_timer_start(&run->timer, sleep_cb, (uint64_t)(s * 1000), 0);
  return hg_lua__yield(L, run);
}

/* --- timers ------------------------------------------------------------------------ */

static void utimer_cb(uv_timer_t *h) {
  hg_lua_utimer_t *t = h->data;
  if (hg_lua__spawn(t->rt, t->fn_ref, t->label) != 0)
    hg_log(HG_LOG_WARN, "timer skipped: the Lua generation is stopping", "plugin", t->label, NULL);
  if (!t->repeat) hg_lua__utimer_close(t);
}

static int add_timer(lua_State *L, int repeat) {
  double s = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, s >= (repeat ? 0.01 : 0) && s <= 30 * 86400, 1,
                repeat ? "interval must be 0.01 s to 30 days" : "delay must be 0 to 30 days");
  hg_lua_t *rt = rt_of(L);
  hg_lua_run_t *cur = hg_lua__current(L);
  if (cur == NULL)
    return luaL_error(L, "hookgate.timer cannot be used while a module loads: declare `timers` in the plugin table");
  /* A timer's function runs as a run of its own, with I/O: started from a
   * pure phase, it would be a way out of that phase's limits. */
  if (cur->pure)
    return luaL_error(L, "hookgate.timer cannot be used in the %s phase (pure: no I/O, no timers)",
                      hg_phase_name(cur->phase));
  if (rt->stopped) {
    lua_pushnil(L);
    lua_pushstring(L, "timer: the Lua generation is stopping");
    return 2;
  }
  hg_lua_utimer_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return luaL_error(L, "out of memory");
  t->rt = rt;
  t->repeat = repeat;
  t->id = ++rt->next_timer_id;
  snprintf(t->label, sizeof(t->label), "%s", rt->plugin);
  lua_pushvalue(L, 2);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_init(rt->loop, &t->timer);
  t->timer.data = t;
  uint64_t ms = (uint64_t)(s * 1000);
  uv_timer_start(&t->timer, utimer_cb, ms, repeat ? (ms ? ms : 1) : 0);
  t->next = rt->utimers;
  rt->utimers = t;
  hg_lua_ref(rt);
  lua_pushinteger(L, t->id);
  return 1;
}

/* timer.at(delay, fn) -> id: runs fn once, after delay seconds, as a run of
 * its own (it may do I/O). */
static int l_timer_at(lua_State *L) { return add_timer(L, 0); }
/* timer.every(interval, fn) -> id: runs fn every interval seconds. */
static int l_timer_every(lua_State *L) { return add_timer(L, 1); }
/* timer.cancel(id) -> true if a timer was stopped */
static int l_timer_cancel(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  hg_lua_t *rt = rt_of(L);
  for (hg_lua_utimer_t *t = rt->utimers; t; t = t->next) {
    if (t->id == id) {
      hg_lua__utimer_close(t);
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}

/* --- http.request ------------------------------------------------------------------ */

typedef struct http_call {
  hg_lua_run_t *run;
} http_call_t;

static void http_cb(const hg_client_response_t *res, void *ud) {
  http_call_t *call = ud;
  hg_lua_run_t *run = call->run;
  free(call);
  lua_State *co = run->co;
  if (res->status == 0) {
    lua_pushnil(co);
    lua_pushstring(co, res->error_text ? res->error_text : hg_strerror(res->error));
    hg_lua__resume(run, 2);
    return;
  }
  lua_createtable(co, 0, 4);
  lua_pushinteger(co, res->status);
  lua_setfield(co, -2, "status");
  lua_pushlstring(co, res->body ? res->body : "", res->body_len);
  lua_setfield(co, -2, "body");
  lua_pushboolean(co, res->body_truncated);
  lua_setfield(co, -2, "truncated");
  lua_createtable(co, 0, (int)res->n_headers);
  for (size_t i = 0; i < res->n_headers; i++) {
    luaL_Buffer b;
    luaL_buffinit(co, &b);
    for (const char *p = res->headers[i].name; *p; p++) luaL_addchar(&b, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
    luaL_pushresult(&b);
    lua_pushstring(co, res->headers[i].value);
    lua_rawset(co, -3);
  }
  lua_setfield(co, -2, "headers");
  hg_lua__resume(run, 1);
}

/* http.request{method=, url=, headers=, body=, timeout=} -> {status, headers, body} | nil, err   yields
 * The delivery client: same pool, TLS verification and SSRF rules. */
static int l_http_request(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  hg_lua_run_t *run = hg_lua__check_io(L, "hookgate.http.request");
  hg_lua_t *rt = run->rt;
  lua_getfield(L, 1, "url");
  const char *url = luaL_checkstring(L, -1);
  lua_getfield(L, 1, "method");
  const char *method = luaL_optstring(L, -1, "GET");
  lua_getfield(L, 1, "body");
  size_t body_len = 0;
  const char *body = luaL_optlstring(L, -1, NULL, &body_len);
  lua_getfield(L, 1, "timeout");
  double timeout = luaL_optnumber(L, -1, 10);
  luaL_argcheck(L, timeout > 0 && timeout <= 300, 1, "timeout must be 0 to 300 seconds");
  hg_client_header_t headers[64];
  size_t n = 0;
  lua_getfield(L, 1, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0 && n < HG_ARRAY_LEN(headers)) {
      /* Strings only: a number converted here would be a string nothing
       * references once popped. */
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        headers[n].name = lua_tostring(L, -2);
        headers[n++].value = lua_tostring(L, -1);
      } else if (lua_type(L, -2) == LUA_TSTRING) {
        luaL_error(L, "http.request: header %s must be a string", lua_tostring(L, -2));
      }
      lua_pop(L, 1);
    }
  }
  hg_client_t *client = rt->app->dispatcher ? hg_dispatcher_client(rt->app->dispatcher) : NULL;
  if (client == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, "http.request: the HTTP client is not available (shutting down)");
    return 2;
  }
  hg_client_request_t req;
  memset(&req, 0, sizeof(req));
  req.method = method;
  req.url = url;
  req.headers = headers;
  req.n_headers = n;
  req.body = body;
  req.body_len = body_len;
  req.timeout_ms = (uint64_t)(timeout * 1000);
  http_call_t *call = malloc(sizeof(*call));
  if (call == NULL) return luaL_error(L, "out of memory");
  call->run = run;
  char err[200];
  int r = hg_client_send(client, &req, http_cb, call, err, sizeof(err));
  if (r != 0) {
    free(call);
    lua_pushnil(L);
    lua_pushstring(L, r == HG_EINVAL ? err : hg_strerror(r));
    return 2;
  }
  return hg_lua__yield(L, run);
}

/* --- the management API, through internal subrequests ------------------------- */

typedef struct sub_call {
  hg_lua_run_t *run;
  int yielded;
  int done;
  int status;
  char *body;
  size_t body_len;
} sub_call_t;

/* Pushes the outcome: decoded body on 2xx (true for an empty one), or
 * nil, "message", error table. Returns the number of values. */
static int push_sub_result(lua_State *L, int status, const char *body, size_t len) {
  json_t *j = len ? json_loadb(body, len, 0, NULL) : NULL;
  if (status >= 200 && status < 300) {
    if (j) hg_lua__push_json(L, j);
    else lua_pushboolean(L, 1);
    json_decref(j);
    return 1;
  }
  lua_pushnil(L);
  json_t *e = json_object_get(j, "error");
  const char *msg = json_string_value(json_object_get(e, "message"));
  lua_pushfstring(L, "%d %s", status, msg ? msg : "error");
  if (e) {
    json_object_set_new(e, "status", json_integer(status));
    hg_lua__push_json(L, e);
  } else {
    lua_pushnil(L);
  }
  json_decref(j);
  return 3;
}

static void sub_cb(int status, const char *body, size_t len, void *ud) {
  sub_call_t *c = ud;
  if (!c->yielded) {
    /* Answered within the call (a validation error): no yield needed. */
    c->done = 1;
    c->status = status;
    c->body = malloc(len + 1);
    if (c->body) memcpy(c->body, body, len);
    c->body_len = c->body ? len : 0;
    return;
  }
  hg_lua_run_t *run = c->run;
  free(c);
  int n = push_sub_result(run->co, status, body, len);
  hg_lua__resume(run, n);
}

static int subrequest(lua_State *L, const char *method, const char *target, int body_idx) {
  hg_lua_run_t *run = hg_lua__check_io(L, "the hookgate management API");
  hg_lua_t *rt = run->rt;
  char *body = NULL;
  if (body_idx > 0 && !lua_isnoneornil(L, body_idx)) {
    char err[128];
    json_t *j = hg_lua__to_json(L, body_idx, err, sizeof(err));
    if (j == NULL) return luaL_argerror(L, body_idx, err);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
  }
  sub_call_t *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    free(body);
    return luaL_error(L, "out of memory");
  }
  c->run = run;
  char auth[96];
  snprintf(auth, sizeof(auth), "Bearer %s", rt->app->internal_key);
  int r = hg_http_virtual(method, target, auth, body ? body : "", body ? strlen(body) : 0, hg_app_handle, rt->app,
                          sub_cb, c);
  free(body);
  if (r != 0) {
    free(c);
    return luaL_error(L, "subrequest failed: %s", hg_strerror(r));
  }
  if (c->done) {
    int n = push_sub_result(L, c->status, c->body, c->body_len);
    free(c->body);
    free(c);
    return n;
  }
  c->yielded = 1;
  return hg_lua__yield(L, run);
}

/* Builds "/v1/webhooks/<id>..." with id percent-encoded if needed. */
static const char *path_id(lua_State *L, int idx, const char *fmt) {
  const char *id = luaL_checkstring(L, idx);
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
      luaL_argerror(L, idx, "not an id");
  return lua_pushfstring(L, fmt, id);
}

static const char *query_of(lua_State *L, int idx, const char *base) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, base);
  if (lua_istable(L, idx)) {
    char sep = '?';
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && (lua_isstring(L, -1))) {
        luaL_addchar(&b, sep);
        sep = '&';
        luaL_addstring(&b, lua_tostring(L, -2));
        luaL_addchar(&b, '=');
        for (const char *p = lua_tostring(L, -1); *p; p++) {
          char c = *p;
          if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.') {
            luaL_addchar(&b, c);
          } else {
            char hex[4];
            snprintf(hex, sizeof(hex), "%%%02X", (unsigned char)c);
            luaL_addstring(&b, hex);
          }
        }
      }
      lua_pop(L, 1);
    }
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

static int l_wh_create(lua_State *L) { return subrequest(L, "POST", "/v1/webhooks", 1); }
static int l_wh_get(lua_State *L) { return subrequest(L, "GET", path_id(L, 1, "/v1/webhooks/%s"), 0); }
static int l_wh_list(lua_State *L) { return subrequest(L, "GET", query_of(L, 1, "/v1/webhooks"), 0); }
static int l_wh_update(lua_State *L) { return subrequest(L, "PATCH", path_id(L, 1, "/v1/webhooks/%s"), 2); }
static int l_wh_delete(lua_State *L) { return subrequest(L, "DELETE", path_id(L, 1, "/v1/webhooks/%s"), 0); }
static int l_wh_test(lua_State *L) { return subrequest(L, "POST", path_id(L, 1, "/v1/webhooks/%s/test"), 2); }
static int l_wh_rotate(lua_State *L) {
  return subrequest(L, "POST", path_id(L, 1, "/v1/webhooks/%s/rotate-secret"), 2);
}
static int l_del_list(lua_State *L) {
  const char *base = path_id(L, 1, "/v1/webhooks/%s/deliveries");
  return subrequest(L, "GET", query_of(L, 2, base), 0);
}
static int l_del_get(lua_State *L) {
  const char *wh = path_id(L, 1, "%s");
  const char *id = path_id(L, 2, "%s");
  return subrequest(L, "GET", lua_pushfstring(L, "/v1/webhooks/%s/deliveries/%s", wh, id), 0);
}
static int l_del_replay(lua_State *L) {
  const char *wh = path_id(L, 1, "%s");
  const char *id = path_id(L, 2, "%s");
  return subrequest(L, "POST", lua_pushfstring(L, "/v1/webhooks/%s/deliveries/%s/replay", wh, id), 0);
}
static int l_events_publish(lua_State *L) { return subrequest(L, "POST", "/v1/events", 1); }

/* --- the module ------------------------------------------------------------------------ */


int hg_lua__open_hookgate(lua_State *L, hg_lua_t *rt) {
  (void)rt;
  static const luaL_Reg top[] = {{"sleep", l_sleep}, {NULL, NULL}};
  static const luaL_Reg log[] = {
      {"debug", l_log_debug}, {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error}, {NULL, NULL}};
  static const luaL_Reg shared[] = {
      {"get", l_shared_get}, {"set", l_shared_set}, {"incr", l_shared_incr}, {NULL, NULL}};
  static const luaL_Reg http[] = {{"request", l_http_request}, {NULL, NULL}};
  static const luaL_Reg webhooks[] = {{"create", l_wh_create}, {"get", l_wh_get},       {"list", l_wh_list},
                                      {"update", l_wh_update}, {"delete", l_wh_delete}, {"test", l_wh_test},
                                      {"rotate_secret", l_wh_rotate}, {NULL, NULL}};
  static const luaL_Reg deliveries[] = {
      {"list", l_del_list}, {"get", l_del_get}, {"replay", l_del_replay}, {NULL, NULL}};
  static const luaL_Reg events[] = {{"publish", l_events_publish}, {NULL, NULL}};
  static const luaL_Reg timer[] = {
      {"at", l_timer_at}, {"every", l_timer_every}, {"cancel", l_timer_cancel}, {NULL, NULL}};

  lua_newtable(L);
  hg_lua__open_pure(L);
  luaL_setfuncs(L, top, 0);
  hg_lua__set_funcs(L, "log", log);
  hg_lua__set_funcs(L, "shared", shared);
  hg_lua__set_funcs(L, "http", http);
  hg_lua__set_funcs(L, "webhooks", webhooks);
  hg_lua__set_funcs(L, "deliveries", deliveries);
  hg_lua__set_funcs(L, "events", events);
  hg_lua__set_funcs(L, "timer", timer);
  lua_pushstring(L, HG_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
