/* lib_json.c: hookgate.json — encode, decode, array and null, over the one
 * converter (marshal.h). Pure: the tenant sandbox opens it too.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "lua/marshal.h"

#include <stdlib.h>

/* json.encode(v) -> string | nil, err   [-1, +1|2, -] */
static int l_json_encode(lua_State *L) {
  char err[128];
  luaL_checkany(L, 1);
  json_t *j = hg_marshal_to_json(L, 1, err, sizeof(err));
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
  hg_marshal_push(L, j);
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
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!same) return luaL_argerror(L, 1, "a table with a metatable of its own cannot become a JSON array");
    return 1;
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
  lua_setmetatable(L, 1);
  return 1;
}

void hg_lua__open_json(lua_State *L) {
  static const luaL_Reg json[] = {
      {"encode", l_json_encode}, {"decode", l_json_decode}, {"array", l_json_array}, {NULL, NULL}};
  hg_lua__set_funcs(L, "json", json);
  lua_getfield(L, -1, "json");
  lua_pushlightuserdata(L, (void *)&hg_marshal_null_key);
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
}
