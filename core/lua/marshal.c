/* marshal.c: JSON values <-> Lua values (see marshal.h). */
#include "lua/marshal.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>

const char hg_marshal_null_key = 0, hg_marshal_array_mt_key = 0, hg_marshal_touch_key = 0;

void hg_marshal_open(lua_State *L) {
  lua_newtable(L);
  lua_pushstring(L, "array");
  lua_setfield(L, -2, "__name");
  /* Shared by every plugin's arrays: getmetatable() shows a name, not the
   * table, so no plugin can add metamethods for the others. */
  lua_pushstring(L, "json array");
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
}

void hg_marshal_push(lua_State *L, json_t *v) {
  luaL_checkstack(L, 4, "JSON too deep");
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    lua_createtable(L, 0, (int)json_object_size(v));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
      hg_marshal_push(L, x);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    lua_createtable(L, (int)json_array_size(v), 0);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      hg_marshal_push(L, x);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
    lua_setmetatable(L, -2);
    break;
  }
  case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); break;
  case JSON_INTEGER: lua_pushinteger(L, (lua_Integer)json_integer_value(v)); break;
  case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
  case JSON_TRUE: lua_pushboolean(L, 1); break;
  case JSON_FALSE: lua_pushboolean(L, 0); break;
  default: lua_pushlightuserdata(L, (void *)&hg_marshal_null_key); break;
  }
}

/* 1 if the table at idx is a JSON array, with its length in *n: marked with
 * the array metatable, or keyed exactly 1..n (n > 0). */
static int is_array(lua_State *L, int idx, lua_Integer *n) {
  if (lua_getmetatable(L, idx)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
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
  if (depth > HG_MARSHAL_MAX_DEPTH) {
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
    if (lua_touserdata(L, idx) == &hg_marshal_null_key) return json_null();
    break;
  case LUA_TTABLE: {
    /* Each level pushes a key and a value. lua_checkstack, not
     * luaL_checkstack: this may run outside a protected call (a run's
     * result, the config file), where raising would be a panic. */
    if (!lua_checkstack(L, 4)) {
      snprintf(err, errlen, "nested too deep (or a cycle)");
      return NULL;
    }
    /* A lazy table is filled first (in a protected call: this may run
     * outside one, and filling allocates). */
    if (lua_getmetatable(L, idx)) {
      if (lua_rawgetp(L, -1, &hg_marshal_touch_key) == LUA_TFUNCTION) {
        lua_pushvalue(L, idx);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
          snprintf(err, errlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "a table could not be read");
          lua_pop(L, 2);
          return NULL;
        }
        lua_pop(L, 1);
      } else {
        lua_pop(L, 2);
      }
    }
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

json_t *hg_marshal_to_json(lua_State *L, int idx, char *err, size_t errlen) {
  return to_json(L, idx, 0, err, errlen);
}
