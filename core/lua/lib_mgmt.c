/* lib_mgmt.c: hookgate.webhooks, hookgate.deliveries and hookgate.events —
 * the management API, called through internal subrequests (the runtime's
 * subrequest function, hg_lua_opts_t). Yields unless answered at once.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/common.h"
#include "lua/marshal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (j) hg_marshal_push(L, j);
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
    hg_marshal_push(L, e);
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
    json_t *j = hg_marshal_to_json(L, body_idx, err, sizeof(err));
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
  int r = rt->subrequest ? rt->subrequest(rt->subrequest_ud, method, target, body ? body : "",
                                           body ? strlen(body) : 0, sub_cb, c)
                         : HG_ESTATE;
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

void hg_lua__open_mgmt(lua_State *L) {
  static const luaL_Reg webhooks[] = {{"create", l_wh_create}, {"get", l_wh_get},       {"list", l_wh_list},
                                      {"update", l_wh_update}, {"delete", l_wh_delete}, {"test", l_wh_test},
                                      {"rotate_secret", l_wh_rotate}, {NULL, NULL}};
  static const luaL_Reg deliveries[] = {
      {"list", l_del_list}, {"get", l_del_get}, {"replay", l_del_replay}, {NULL, NULL}};
  static const luaL_Reg events[] = {{"publish", l_events_publish}, {NULL, NULL}};
  hg_lua__set_funcs(L, "webhooks", webhooks);
  hg_lua__set_funcs(L, "deliveries", deliveries);
  hg_lua__set_funcs(L, "events", events);
}
