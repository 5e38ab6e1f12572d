/* libs.h: the `hookgate` module's pure libraries, for states outside the
 * runtime (the tenant sandbox's). */
#ifndef HG_LUA_LIBS_H
#define HG_LUA_LIBS_H

#include <lua.h>

/* Adds the pure functions (json, crypto, sign, verify: no I/O, no state
 * between calls) to the table on top of L's stack, and registers the JSON
 * array metatable in L's registry (hg_marshal_open). [-0, +0, m] */
void hg_lua_open_pure(lua_State *L);

#endif
