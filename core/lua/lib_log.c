/* lib_log.c: hookgate.log — debug, info, warn, error into the gateway's log,
 * naming the plugin and the script's file:line.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/log.h"

#include <stdio.h>

static int do_log(lua_State *L, hg_log_level_t level) {
  const char *msg = luaL_checkstring(L, 1);
  hg_lua_t *rt = hg_lua__rt(L);
  lua_Debug ar;
  char where[160] = "";
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    snprintf(where, sizeof(where), "%s:%d", ar.short_src, ar.currentline);
  hg_log(level, msg, "plugin", rt->plugin, "at", where, NULL);
  return 0;
}
static int l_log_debug(lua_State *L) { return do_log(L, HG_LOG_DEBUG); }
static int l_log_info(lua_State *L) { return do_log(L, HG_LOG_INFO); }
static int l_log_warn(lua_State *L) { return do_log(L, HG_LOG_WARN); }
static int l_log_error(lua_State *L) { return do_log(L, HG_LOG_ERROR); }

void hg_lua__open_log(lua_State *L) {
  static const luaL_Reg log[] = {
      {"debug", l_log_debug}, {"info", l_log_info}, {"warn", l_log_warn}, {"error", l_log_error}, {NULL, NULL}};
  hg_lua__set_funcs(L, "log", log);
}
