/* lib_sign.c: hookgate.sign and hookgate.verify — Standard Webhooks
 * signatures (base/sign.h). Pure: the tenant sandbox opens it too.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/common.h"
#include "base/sign.h"

#include <string.h>
#include <strings.h>

/* sign(secret, id, timestamp, body) -> "v1,<base64>" */
static int l_sign(lua_State *L) {
  const char *secret = luaL_checkstring(L, 1);
  const char *id = luaL_checkstring(L, 2);
  lua_Integer ts = luaL_checkinteger(L, 3);
  size_t len;
  const char *body = luaL_checklstring(L, 4, &len);
  char out[64];
  if (hg_sign_v1(secret, id, (int64_t)ts, body, len, out, sizeof(out)) < 0)
    return luaL_argerror(L, 1, "not a valid secret (whsec_ + base64)");
  lua_pushstring(L, out);
  return 1;
}

/* verify(secrets, headers, body [, tolerance]) -> true | nil, err
 * secrets: a string or a list; headers: a table with webhook-id,
 * webhook-timestamp, webhook-signature (any case). */
static const char *header_field(lua_State *L, int idx, const char *name) {
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && strcasecmp(lua_tostring(L, -2), name) == 0 &&
        lua_type(L, -1) == LUA_TSTRING) {
      const char *v = lua_tostring(L, -1);
      lua_pop(L, 2);
      return v; /* the table keeps the string alive */
    }
    lua_pop(L, 1);
  }
  return NULL;
}

static int l_verify(lua_State *L) {
  const char *secrets[16];
  size_t n = 0;
  if (lua_type(L, 1) == LUA_TSTRING) {
    secrets[n++] = lua_tostring(L, 1);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer len = luaL_len(L, 1);
    luaL_checkstack(L, 24, "verify: too many secrets");
    for (lua_Integer i = 1; i <= len && n < 16; i++) {
      lua_rawgeti(L, 1, i);
      /* Left on the stack until hg_verify returns: a number converts to a
       * new string that only this slot keeps alive. */
      secrets[n++] = luaL_checkstring(L, -1);
    }
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t len;
  const char *body = luaL_checklstring(L, 3, &len);
  lua_Integer tolerance = luaL_optinteger(L, 4, 300);
  const char *id = header_field(L, 2, "webhook-id");
  const char *ts = header_field(L, 2, "webhook-timestamp");
  const char *sig = header_field(L, 2, "webhook-signature");
  int r = hg_verify(secrets, n, id, ts, sig, body, len, hg_wall_ms() / 1000, (int)tolerance);
  if (r == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, r == HG_ETIMEDOUT ? "timestamp outside the tolerance"
                    : r == HG_EFORBIDDEN ? "no signature matches"
                                         : "missing or malformed webhook headers or secret");
  return 2;
}

void hg_lua__open_sign(lua_State *L) {
  static const luaL_Reg fns[] = {{"sign", l_sign}, {"verify", l_verify}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
