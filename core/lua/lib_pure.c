/* lib_pure.c: the pure part of the `hookgate` module: json, crypto, sign
 * and verify. Nothing here does I/O, keeps state between calls or knows
 * about a run: the operator's VM and the tenant sandbox's states
 * (core/sandbox/worker.c) both open it.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/common.h"
#include "base/crypto.h"
#include "base/sign.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
const char hg_lua__null_key = 0, hg_lua__array_mt_key = 0;

/* --- JSON <-> Lua ------------------------------------------------------------ */

void hg_lua__push_json(lua_State *L, json_t *v) {
  luaL_checkstack(L, 4, "JSON too deep");
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    lua_createtable(L, 0, (int)json_object_size(v));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      hg_lua__push_json(L, x);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    lua_createtable(L, (int)json_array_size(v), 0);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      hg_lua__push_json(L, x);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);
    lua_setmetatable(L, -2);
    break;
  }
  case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); break;
  case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
  case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
  case JSON_TRUE: lua_pushboolean(L, 1); break;
  case JSON_FALSE: lua_pushboolean(L, 0); break;
  default: lua_pushlightuserdata(L, (void *)&hg_lua__null_key); break;
  }
}

static int is_array(lua_State *L, int idx, lua_Integer *n) {
  if (lua_getmetatable(L, idx)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);
    int arr = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (arr) {
      *n = (lua_Integer)lua_rawlen(L, idx);
      return 1;
    }
  }
  lua_Integer len = (lua_Integer)lua_rawlen(L, idx), count = 0;
  if (len == 0) return 0; /* {} is an object unless marked */
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > len) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  *n = len;
  return count == len;
}

static json_t *to_json(lua_State *L, int idx, int depth, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  if (depth > 64) {
    snprintf(err, errlen, "nested too deep (or a cycle)");
    return NULL;
  }
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return json_null();
  case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return json_integer((json_int_t)lua_tointeger(L, idx));
    if (!isfinite(lua_tonumber(L, idx))) {
      snprintf(err, errlen, "NaN and infinity have no JSON form");
      return NULL;
    }
    return json_real(lua_tonumber(L, idx));
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    json_t *j = json_stringn(s, len);
    if (j == NULL) snprintf(err, errlen, "a string is not valid UTF-8");
    return j;
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == &hg_lua__null_key) return json_null();
    break;
  case LUA_TTABLE: {
    luaL_checkstack(L, 4, "JSON too deep");
    lua_Integer n;
    if (is_array(L, idx, &n)) {
      json_t *arr = json_array();
      for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        json_t *x = to_json(L, -1, depth + 1, err, errlen);
        lua_pop(L, 1);
        if (x == NULL) {
          json_decref(arr);
          return NULL;
        }
        json_array_append_new(arr, x);
      }
      return arr;
    }
    json_t *obj = json_object();
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        snprintf(err, errlen, "object keys must be strings");
        lua_pop(L, 2);
        json_decref(obj);
        return NULL;
      }
      json_t *x = to_json(L, -1, depth + 1, err, errlen);
      if (x == NULL) {
        lua_pop(L, 2);
        json_decref(obj);
        return NULL;
      }
      json_object_set_new(obj, lua_tostring(L, -2), x);
      lua_pop(L, 1);
    }
    return obj;
  }
  default: break;
  }
  snprintf(err, errlen, "a %s has no JSON form", luaL_typename(L, idx));
  return NULL;
}

json_t *hg_lua__to_json(lua_State *L, int idx, char *err, size_t errlen) { return to_json(L, idx, 0, err, errlen); }

/* json.encode(v) -> string | nil, err   [-1, +1|2, -] */
static int l_json_encode(lua_State *L) {
  char err[128];
  luaL_checkany(L, 1);
  json_t *j = to_json(L, 1, 0, err, sizeof(err));
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  if (s == NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.encode: %s", j ? "out of memory" : err);
    return 2;
  }
  lua_pushstring(L, s);
  free(s);
  return 1;
}

/* json.decode(s) -> value | nil, err   [-1, +1|2, -]. null decodes to json.null. */
static int l_json_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  json_error_t jerr;
  json_t *j = json_loadb(s, len, JSON_DECODE_ANY, &jerr);
  if (j == NULL) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.decode: %s at byte %d", jerr.text, jerr.position);
    return 2;
  }
  hg_lua__push_json(L, j);
  json_decref(j);
  return 1;
}

/* json.array(t) -> t, marked to encode as an array even when empty. */
static int l_json_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Only a plain table (or an array already): replacing another metatable
   * would strip a protected one, such as the read-only proxies of the
   * shared hookgate module. */
  if (lua_getmetatable(L, 1)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!same) return luaL_argerror(L, 1, "a table with a metatable of its own cannot become a JSON array");
    return 1;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);
  lua_setmetatable(L, 1);
  return 1;
}

/* --- crypto -------------------------------------------------------------------- */

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

/* --- Standard Webhooks ------------------------------------------------------------ */

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

/* --- log ---------------------------------------------------------------------------- */
void hg_lua__set_funcs(lua_State *L, const char *name, const luaL_Reg *fns) {
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  lua_setfield(L, -2, name);
}

void hg_lua__open_pure(lua_State *L) {
  lua_newtable(L); /* the array metatable */
  lua_pushstring(L, "array");
  lua_setfield(L, -2, "__name");
  /* Shared by every plugin's arrays: getmetatable() shows a name, not the
   * table, so no plugin can add metamethods for the others. */
  lua_pushstring(L, "json array");
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);

  static const luaL_Reg top[] = {{"sign", l_sign}, {"verify", l_verify}, {NULL, NULL}};
  static const luaL_Reg json[] = {
      {"encode", l_json_encode}, {"decode", l_json_decode}, {"array", l_json_array}, {NULL, NULL}};
  static const luaL_Reg crypto[] = {{"sha256", l_sha256},
                                    {"hmac_sha256", l_hmac_sha256},
                                    {"random", l_random},
                                    {"base64", l_base64},
                                    {"base64_decode", l_base64_decode},
                                    {"hex", l_hex},
                                    {"constant_time_equal", l_ct_equal},
                                    {NULL, NULL}};
  luaL_setfuncs(L, top, 0);
  hg_lua__set_funcs(L, "json", json);
  lua_getfield(L, -1, "json");
  lua_pushlightuserdata(L, (void *)&hg_lua__null_key);
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
  hg_lua__set_funcs(L, "crypto", crypto);
}
