/* lib_crypto.c: hookgate.crypto — digests, HMAC, randomness, encodings and
 * a constant-time comparison. Pure: the tenant sandbox opens it too.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/common.h"
#include "base/crypto.h"

static int l_sha256(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  unsigned char out[32];
  hg_sha256(s, len, out);
  lua_pushlstring(L, (const char *)out, 32);
  return 1;
}

static int l_hmac_sha256(lua_State *L) {
  size_t klen, len;
  const char *k = luaL_checklstring(L, 1, &klen);
  const char *s = luaL_checklstring(L, 2, &len);
  unsigned char out[32];
  hg_hmac_sha256(k, klen, s, len, out);
  lua_pushlstring(L, (const char *)out, 32);
  return 1;
}

static int l_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 4096, 1, "must be 0 to 4096 bytes");
  unsigned char buf[4096];
  if (hg_random(buf, (size_t)n) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, "crypto.random: no randomness available");
    return 2;
  }
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

static int l_base64(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  size_t cap = (len + 2) / 3 * 4 + 1;
  char *out = luaL_buffinitsize(L, &b, cap);
  int n = hg_base64_encode((const unsigned char *)s, len, out, cap);
  luaL_pushresultsize(&b, n > 0 ? (size_t)n : 0);
  return 1;
}

static int l_base64_decode(lua_State *L) {
  size_t len, out_len = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len + 1);
  if (hg_base64_decode(s, len, (unsigned char *)out, len + 1, &out_len) != 0) {
    luaL_pushresultsize(&b, 0);
    lua_pushnil(L);
    lua_pushstring(L, "crypto.base64_decode: not base64");
    return 2;
  }
  luaL_pushresultsize(&b, out_len);
  return 1;
}

static int l_hex(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, 2 * len + 1);
  hg_hex_encode((const unsigned char *)s, len, out);
  luaL_pushresultsize(&b, 2 * len);
  return 1;
}

/* constant_time_equal(a, b) -> boolean */
static int l_ct_equal(lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  lua_pushboolean(L, la == lb && hg_ct_equal(a, b, la));
  return 1;
}

void hg_lua__open_crypto(lua_State *L) {
  static const luaL_Reg crypto[] = {{"sha256", l_sha256},
                                    {"hmac_sha256", l_hmac_sha256},
                                    {"random", l_random},
                                    {"base64", l_base64},
                                    {"base64_decode", l_base64_decode},
                                    {"hex", l_hex},
                                    {"constant_time_equal", l_ct_equal},
                                    {NULL, NULL}};
  hg_lua__set_funcs(L, "crypto", crypto);
}
