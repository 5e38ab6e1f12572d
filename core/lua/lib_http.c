/* lib_http.c: hookgate.http.request — outbound HTTP through the gateway's
 * client (the one deliveries use: same pool, TLS verification and SSRF
 * rules). Yields.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/common.h"
#include "net/http_client.h"

#include <stdlib.h>
#include <string.h>

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
  hg_client_t *client = rt->client ? *rt->client : NULL;
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

void hg_lua__open_http(lua_State *L) {
  static const luaL_Reg http[] = {{"request", l_http_request}, {NULL, NULL}};
  hg_lua__set_funcs(L, "http", http);
}
