/* lib_timer.c: hookgate.sleep and hookgate.timer (at, every, cancel): a
 * run waits on the loop; a timer's function runs as a run of its own.
 *
 * Stack effects are noted as in the Lua manual: [-o, +p, x]. */
#include "lua/internal.h"

#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>

static void sleep_cb(uv_timer_t *t) {
  hg_lua_run_t *run = t->data;
  run->sleeping = 0;
  hg_lua__resume(run, 0);
}

/* sleep(seconds)   yields */
static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s <= 86400, 1, "must be 0 to 86400 seconds");
  hg_lua_run_t *run = hg_lua__check_io(L, "hookgate.sleep");
  if (run->rt->shutting_down) return 0; /* do not hold the shutdown up */
  run->sleeping = 1;
  uv_timer_start(&run->timer, sleep_cb, (uint64_t)(s * 1000), 0);
  return hg_lua__yield(L, run);
}

/* --- timers ------------------------------------------------------------------------ */

static void utimer_cb(uv_timer_t *h) {
  hg_lua_utimer_t *t = h->data;
  if (hg_lua__spawn(t->rt, t->fn_ref, t->label) != 0)
    hg_log(HG_LOG_WARN, "timer skipped: the Lua generation is stopping", "plugin", t->label, NULL);
  if (!t->repeat) hg_lua__utimer_close(t);
}

static int add_timer(lua_State *L, int repeat) {
  double s = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, s >= (repeat ? 0.01 : 0) && s <= 30 * 86400, 1,
                repeat ? "interval must be 0.01 s to 30 days" : "delay must be 0 to 30 days");
  hg_lua_t *rt = hg_lua__rt(L);
  hg_lua_run_t *cur = hg_lua__current(L);
  if (cur == NULL)
    return luaL_error(L, "hookgate.timer cannot be used while a module loads: declare `timers` in the plugin table");
  /* A timer's function runs as a run of its own, with I/O: started from a
   * pure phase, it would be a way out of that phase's limits. */
  if (cur->pure)
    return luaL_error(L, "hookgate.timer cannot be used in the %s phase (pure: no I/O, no timers)",
                      hg_phase_name(cur->phase));
  if (rt->stopped) {
    lua_pushnil(L);
    lua_pushstring(L, "timer: the Lua generation is stopping");
    return 2;
  }
  hg_lua_utimer_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return luaL_error(L, "out of memory");
  t->rt = rt;
  t->repeat = repeat;
  t->id = ++rt->next_timer_id;
  snprintf(t->label, sizeof(t->label), "%s", rt->plugin);
  lua_pushvalue(L, 2);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_init(rt->loop, &t->timer);
  t->timer.data = t;
  uint64_t ms = (uint64_t)(s * 1000);
  uv_timer_start(&t->timer, utimer_cb, ms, repeat ? (ms ? ms : 1) : 0);
  t->next = rt->utimers;
  rt->utimers = t;
  hg_lua_ref(rt);
  lua_pushinteger(L, t->id);
  return 1;
}

/* timer.at(delay, fn) -> id: runs fn once, after delay seconds, as a run of
 * its own (it may do I/O). */
static int l_timer_at(lua_State *L) { return add_timer(L, 0); }
/* timer.every(interval, fn) -> id: runs fn every interval seconds. */
static int l_timer_every(lua_State *L) { return add_timer(L, 1); }
/* timer.cancel(id) -> true if a timer was stopped */
static int l_timer_cancel(lua_State *L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  hg_lua_t *rt = hg_lua__rt(L);
  for (hg_lua_utimer_t *t = rt->utimers; t; t = t->next) {
    if (t->id == id) {
      hg_lua__utimer_close(t);
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  lua_pushboolean(L, 0);
  return 1;
}

static void utimer_close_cb(uv_handle_t *h) {
  hg_lua_utimer_t *t = h->data;
  hg_lua_t *rt = t->rt;
  luaL_unref(rt->L, LUA_REGISTRYINDEX, t->fn_ref);
  free(t);
  hg_lua_unref(rt);
}

void hg_lua__utimer_close(hg_lua_utimer_t *t) {
  hg_lua_t *rt = t->rt;
  for (hg_lua_utimer_t **p = &rt->utimers; *p; p = &(*p)->next) {
    if (*p == t) {
      *p = t->next;
      break;
    }
  }
  uv_close((uv_handle_t *)&t->timer, utimer_close_cb);
}

void hg_lua__open_timer(lua_State *L) {
  static const luaL_Reg top[] = {{"sleep", l_sleep}, {NULL, NULL}};
  static const luaL_Reg timer[] = {
      {"at", l_timer_at}, {"every", l_timer_every}, {"cancel", l_timer_cancel}, {NULL, NULL}};
  luaL_setfuncs(L, top, 0);
  hg_lua__set_funcs(L, "timer", timer);
}
