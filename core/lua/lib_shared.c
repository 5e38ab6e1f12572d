/* lib_shared.c: hookgate.shared — an in-memory dictionary with TTLs, one per
 * process (it outlives a reload's generations), bounded by
 * lua.shared_memory.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/common.h"
#include "lua/marshal.h"

#include <string.h>

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
  else hg_marshal_push(L, json_object_get(e, "v"));
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
  json_t *v = hg_marshal_to_json(L, 2, err, sizeof(err));
  if (v == NULL) return luaL_argerror(L, 2, err);
  json_int_t exp = ttl > 0 ? (json_int_t)(hg_wall_ms() + (int64_t)(ttl * 1000)) : 0;
  size_t size = 96 + strlen(key) + json_bytes(v);
  json_t *old = json_object_get(shared_dict, key);
  size_t old_size = old ? entry_size(old) : 0;
  size_t limit = hg_lua__rt(L)->shared_limit;
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
    json_object_set_new(e, "v", hg_marshal_to_json(L, 2, err, sizeof(err)));
  } else {
    l_shared_set(L);
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 2);
  return 1;
}

void hg_lua__open_shared(lua_State *L) {
  static const luaL_Reg shared[] = {
      {"get", l_shared_get}, {"set", l_shared_set}, {"incr", l_shared_incr}, {NULL, NULL}};
  hg_lua__set_funcs(L, "shared", shared);
}
