/* libs.c: assembles the `hookgate` module from its libraries (one file
 * each, lib_*.c), as Lua's linit.c does for the standard ones. */
#include "lua/libs.h"
#include "lua/internal.h"

#include "base/common.h"
#include "lua/marshal.h"

void hg_lua_open_pure(lua_State *L) {
  hg_marshal_open(L);
  hg_lua__open_sign(L);
  hg_lua__open_json(L);
  hg_lua__open_crypto(L);
}

int hg_lua__open_hookgate(lua_State *L) {
  lua_newtable(L);
  hg_lua_open_pure(L);
  hg_lua__open_timer(L);
  hg_lua__open_log(L);
  hg_lua__open_shared(L);
  hg_lua__open_http(L);
  hg_lua__open_mgmt(L);
  lua_pushstring(L, HG_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
