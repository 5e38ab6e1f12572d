/* marshal.h: JSON values <-> Lua values, the one converter.
 *
 * Every place that moves JSON into a Lua state or reads a Lua value back
 * as JSON uses it: the runtime (phase arguments and results), the
 * libraries (json.encode/decode, shared, the management calls), the tenant
 * sandbox, and the config file's plugin settings. One set of rules:
 *
 * - JSON null becomes json.null (a light userdata); nil and json.null
 *   become null.
 * - A JSON array becomes a table with the array metatable (registered by
 *   hg_marshal_open), so that it reads back as an array even when empty.
 *   A table without it is an array when its keys are exactly 1..n (n > 0);
 *   anything else is an object, whose keys must be strings.
 * - Integers stay integers; NaN and infinity have no JSON form.
 * - Strings keep every byte (NUL included) and must be valid UTF-8.
 * - At most HG_MARSHAL_MAX_DEPTH levels of nesting (which also ends a
 *   cycle).
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#ifndef HG_LUA_MARSHAL_H
#define HG_LUA_MARSHAL_H

#include <jansson.h>
#include <lua.h>
#include <stddef.h>

#define HG_MARSHAL_MAX_DEPTH 64

/* The registry keys (light userdata: their addresses) of json.null and of
 * the array metatable. */
extern const char hg_marshal_null_key, hg_marshal_array_mt_key;

/* A metatable with a function at this key (light userdata) marks a table
 * whose contents are filled on first use (core/lua/lazy.c):
 * hg_marshal_to_json calls it with the table before reading the table. */
extern const char hg_marshal_touch_key;

/* Creates the array metatable in L's registry. Once per state, before
 * pushing JSON arrays into it. [-0, +0, m] */
void hg_marshal_open(lua_State *L);

/* Pushes v (borrowed) as a Lua value. [-0, +1, m] */
void hg_marshal_push(lua_State *L, json_t *v);

/* Converts the Lua value at idx into a new JSON reference, or returns NULL
 * with the reason in err ("a function has no JSON form", "nested too deep
 * (or a cycle)", ...). Reads tables raw: no metamethod runs. Never raises,
 * so it is safe outside a protected call. [-0, +0, -] */
json_t *hg_marshal_to_json(lua_State *L, int idx, char *err, size_t errlen);

#endif
