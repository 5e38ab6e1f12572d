/* runtime.c: Lua VM generations, the sandbox's limits, and runs.
 *
 * Runs follow OpenResty's cosocket model (and HAProxy's hlua.c): each run
 * is a coroutine; an async primitive yields a sentinel and the libuv
 * callback that completes it resumes the coroutine with the results. An
 * instruction-count hook measures CPU: past the slice a coroutine yields
 * and is resumed on the next loop turn, so other traffic is served
 * meanwhile; past the run's budget the hook raises an error. */
#include "lua/internal.h"

#include "app.h"
#include "base/common.h"
#include "config/config.h"
#include "base/log.h"

#include <dirent.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const phase_names[] = {"ingest", "route", "transform", "sign", "deliver", "retry", "after"};

const char *hg_phase_name(hg_phase_t p) { return (unsigned)p < HG_PHASE_COUNT ? phase_names[p] : "?"; }

/* --- script error counters (process-wide: they survive reloads) ------------- */

typedef struct errcount {
  char plugin[64];
  char phase[16];
  uint64_t n;
} errcount_t;

static errcount_t errcounts[128];
static size_t n_errcounts;

void hg_lua_count_error(const char *plugin, const char *phase) {
  for (size_t i = 0; i < n_errcounts; i++) {
    if (strcmp(errcounts[i].plugin, plugin) == 0 && strcmp(errcounts[i].phase, phase) == 0) {
      errcounts[i].n++;
      return;
    }
  }
  if (n_errcounts == HG_ARRAY_LEN(errcounts)) return;
  snprintf(errcounts[n_errcounts].plugin, sizeof(errcounts[0].plugin), "%s", plugin);
  snprintf(errcounts[n_errcounts].phase, sizeof(errcounts[0].phase), "%s", phase);
  errcounts[n_errcounts++].n = 1;
}

void hg_lua_each_error_count(hg_lua_t *rt, hg_lua_error_count_fn cb, void *ud) {
  (void)rt;
  for (size_t i = 0; i < n_errcounts; i++) cb(errcounts[i].plugin, errcounts[i].phase, errcounts[i].n, ud);
}

/* --- memory and CPU limits ------------------------------------------------- */

/* Accounts every byte the VM holds; refusing an allocation makes Lua raise
 * "not enough memory" in the run that asked, which fails that run only. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  hg_lua_t *rt = ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    free(ptr);
    rt->mem -= osize;
    return NULL;
  }
  if (nsize > osize) {
    /* The host's own pushes (a run's thread, an argument table) happen
     * outside any protected call, where a refusal would be a panic that
     * aborts the process: they get a quarter more room. Script code (in a
     * run, or a plugin loading) gets the limit. */
    size_t limit = rt->current == NULL && !rt->loading ? rt->mem_limit + rt->mem_limit / 4 : rt->mem_limit;
    if (rt->mem + (nsize - osize) > limit) return NULL;
    hg_lua_run_t *run = rt->current;
    if (run != NULL && rt->mem + (nsize - osize) > run->mem_start + rt->run_mem_limit) return NULL;
    /* A run past its budget gets nothing more: a memory error skips
     * message handlers, so a script cannot catch its way out. */
    if (run != NULL && run->killed) return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p != NULL) rt->mem = rt->mem - osize + nsize;
  return p;
}

static void hook(lua_State *L, lua_Debug *ar) {
  hg_lua_t *rt = *(hg_lua_t **)lua_getextraspace(L);
  hg_lua_run_t *run = rt->current;
  if (run == NULL) return;
  uint64_t now = hg_now_ns();
  uint64_t used = run->cpu_ns + (now - run->slice_start_ns);
  if (used > rt->run_ns || run->killed) {
    int ours = lua_getinfo(L, "Sl", ar) && ar->source == rt->runtime_source;
    if (!run->killed) {
      /* Name the line the script was on, as any other error would. */
      run->killed = 1;
      if (ar->currentline > 0)
        snprintf(run->kill_msg, sizeof(run->kill_msg), "%s:%d: CPU budget exceeded: the run used more than %d ms",
                 ar->short_src, ar->currentline, (int)(rt->run_ns / 1000000));
      else
        snprintf(run->kill_msg, sizeof(run->kill_msg), "CPU budget exceeded: the run used more than %d ms",
                 (int)(rt->run_ns / 1000000));
      /* A plain error is caught by the script's own pcall, which may loop
       * and catch it forever: from now on the hook fires at every
       * instruction, so the error surfaces as soon as the script runs code
       * outside a pcall. */
      lua_sethook(L, hook, LUA_MASKCOUNT, 1);
      if (run->co != L) lua_sethook(run->co, hook, LUA_MASKCOUNT, 1);
    }
    /* The run's own coroutine stops for good: a yield is not caught by
     * pcall, and run_step never resumes a killed run. */
    if (L == run->co && lua_isyieldable(L)) lua_yield(L, 0);
    /* Elsewhere (a pure phase, a user coroutine, a sort comparator) raise,
     * except in runtime.lua, which must get to report the error. */
    if (!ours) {
      /* The message as it is: luaL_error would put the caller's place in
       * front of the place kill_msg names already. */
      lua_pushstring(L, run->kill_msg);
      lua_error(L);
    }
    return;
  }
  /* Only the run's own coroutine yields for preemption: a yield inside a
   * user coroutine would be taken for that coroutine's own. */
  if (now - run->slice_start_ns > rt->slice_ns && L == run->co && lua_isyieldable(L)) {
    run->preempted = 1;
    lua_yield(L, 0);
  }
}

/* --- script errors ------------------------------------------------------------ */

#define NOT_ENOUGH_MEMORY "not enough memory (the run's memory share or the VM's memory limit was reached)"

/* Replaces the raw error value on top of L's stack with {message,
 * traceback}, the form report_error reads. R.run calls plugins without
 * xpcall: this runs where the error is seen with the stack that raised it
 * still there, from level on (a message handler, or a coroutine that
 * died). Non-string errors are named by type, as lua.c does: no
 * __tostring, as this may run outside a protected call. */
static void structure_error(lua_State *L, int status, int level) {
  char buf[64];
  const char *msg;
  if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
    msg = lua_tostring(L, -1);
  } else {
    snprintf(buf, sizeof(buf), "(error object is a %s value)", luaL_typename(L, -1));
    msg = buf;
  }
  if (status == LUA_ERRMEM || strcmp(msg, "not enough memory") == 0) msg = NOT_ENOUGH_MEMORY;
  lua_createtable(L, 0, 2);
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  luaL_traceback(L, L, "", level);
  lua_setfield(L, -2, "traceback");
  lua_remove(L, -2);
}

/* The message handler of pure phases. [-1, +1, m] */
static int msgh_error(lua_State *L) {
  structure_error(L, LUA_ERRRUN, 1);
  return 1;
}

/* Reads the error on top of L's stack — {plugin?, message, traceback} (see
 * structure_error, and R.route/R.timer/R.call, which still catch their
 * handler's errors themselves), or a raw value (a memory error skips the
 * message handler) — then logs it, counts it, and writes "plugin P
 * (phase): msg" to err. plugin: the plugin that was running, or NULL. */
static void report_error(lua_State *L, int status, const char *plugin, const char *phase, char *err,
                         size_t errlen) {
  const char *msg = NULL, *tb = "";
  if (plugin == NULL || plugin[0] == '\0') plugin = "?";
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "plugin");
    lua_getfield(L, -2, "message");
    lua_getfield(L, -3, "traceback");
    if (lua_isstring(L, -3)) plugin = lua_tostring(L, -3);
    msg = lua_tostring(L, -2);
    tb = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  } else {
    msg = lua_tostring(L, -1);
  }
  if (status == LUA_ERRMEM) msg = NOT_ENOUGH_MEMORY;
  if (msg == NULL) msg = "(error object is not a string)";
  snprintf(err, errlen, "plugin %s (%s): %s", plugin, phase, msg);
  hg_log(HG_LOG_ERROR, "script error", "plugin", plugin, "phase", phase, "error", msg, "traceback", tb, NULL);
  hg_lua_count_error(plugin, phase);
}

/* --- runs ------------------------------------------------------------------ */

hg_lua_run_t *hg_lua__current(lua_State *L) {
  hg_lua_t *rt = *(hg_lua_t **)lua_getextraspace(L);
  return rt->current;
}

hg_lua_run_t *hg_lua__check_io(lua_State *L, const char *what) {
  hg_lua_t *rt = *(hg_lua_t **)lua_getextraspace(L);
  hg_lua_run_t *run = rt->current;
  if (run == NULL)
    luaL_error(L, "%s cannot run while a module loads: call it from a phase function, a route or a timer", what);
  else if (run->pure)
    luaL_error(L, "%s is not allowed in the %s phase (pure); I/O is allowed in ingest, route, deliver, after, "
                  "routes and timers",
               what, hg_phase_name(run->phase));
  else if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot run here: not inside a yieldable call (a metamethod or an iterator?)", what);
  return run;
}

int hg_lua__yield(lua_State *L, hg_lua_run_t *run) {
  run->waiting = 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, run->rt->sentinel);
  return lua_yield(L, 1);
}

static void run_step(hg_lua_run_t *run, int nargs);

/* See hg_lua_phase_stats. Loop thread only. */
static struct {
  uint64_t calls, ns;
} phase_stats[HG_PHASE_COUNT];

void hg_lua_phase_stats(hg_phase_t phase, uint64_t *calls, uint64_t *ns) {
  *calls = phase_stats[phase].calls;
  *ns = phase_stats[phase].ns;
}

static void phase_count(hg_phase_t phase, uint64_t ns) {
  phase_stats[phase].calls++;
  phase_stats[phase].ns += ns;
}

static void run_close_cb(uv_handle_t *h) {
  hg_lua_run_t *run = h->data;
  hg_lua_t *rt = run->rt;
  free(run);
  hg_lua_unref(rt);
}

/* How many finished runs a generation keeps for reuse. Concurrent runs
 * beyond it get a new thread and timer, as without the pool. */
#define POOL_MAX 64

static void run_close(hg_lua_run_t *run) {
  luaL_unref(run->rt->L, LUA_REGISTRYINDEX, run->co_ref);
  uv_close((uv_handle_t *)&run->timer, run_close_cb);
}

/* Ends a run. One whose body returned normally (finished says so) goes to
 * the pool: in Lua 5.4 such a thread is back in status LUA_OK with an empty
 * call stack, and is given a new function and resumed like a new one. A
 * thread that failed, was killed or is still suspended is dropped (the
 * collector frees it), never reused. */
static void run_free(hg_lua_run_t *run, int finished) {
  hg_lua_t *rt = run->rt;
  if (run->prev_run) run->prev_run->next_run = run->next_run;
  else rt->runs = run->next_run;
  if (run->next_run) run->next_run->prev_run = run->prev_run;
  json_decref(run->arg);
  json_decref(run->targets);
  run->arg = run->targets = NULL;
  if (finished && !run->killed && !rt->stopped && rt->n_pool < POOL_MAX && lua_status(run->co) == LUA_OK) {
    lua_settop(run->co, 0);
    uv_timer_stop(&run->timer);
    run->prev_run = NULL;
    run->next_run = rt->pool;
    rt->pool = run;
    rt->n_pool++;
    return;
  }
  run_close(run);
}

static void preempt_cb(uv_timer_t *t) { run_step(t->data, 0); }

/* --- starting runs -----------------------------------------------------------
 *
 * A new run starts after the call that asked for it returns (a callback
 * never runs inside the call that registered it), from a queue the
 * generation drains once per loop turn: right after the turn's I/O (a
 * check handle), or before the next poll if it was queued elsewhere (an
 * idle handle, which also keeps that poll from blocking). One queue, not a
 * timer per run. */

static void kick_close_cb(uv_handle_t *h) { hg_lua_unref(h->data); }

static void kick_close(hg_lua_t *rt) {
  if (!rt->kick_open) return;
  rt->kick_open = 0;
  uv_close((uv_handle_t *)&rt->kick_check, kick_close_cb);
  uv_close((uv_handle_t *)&rt->kick_idle, kick_close_cb);
}

/* Starts the runs queued so far; runs they queue wait for the next turn. */
static void kick(hg_lua_t *rt) {
  hg_lua_run_t *run = rt->ready;
  rt->ready = rt->ready_tail = NULL;
  uv_check_stop(&rt->kick_check);
  uv_idle_stop(&rt->kick_idle);
  while (run != NULL) {
    hg_lua_run_t *next = run->next_ready;
    int nargs = run->first_nargs;
    run->first_nargs = 0;
    run_step(run, nargs);
    run = next;
  }
  /* A generation stopped meanwhile lets its handles go once nothing waits. */
  if (rt->stopped && rt->ready == NULL) kick_close(rt);
}

static void kick_check_cb(uv_check_t *h) { kick(h->data); }
static void kick_idle_cb(uv_idle_t *h) { kick(h->data); }

/* Queues run, its function and nargs arguments pushed on its thread. */
static void run_queue(hg_lua_run_t *run, int nargs) {
  hg_lua_t *rt = run->rt;
  run->first_nargs = nargs;
  run->next_ready = NULL;
  if (!rt->kick_open) {
    /* Each handle holds a reference until closed (hg_lua_stop). */
    uv_check_init(rt->loop, &rt->kick_check);
    uv_idle_init(rt->loop, &rt->kick_idle);
    rt->kick_check.data = rt->kick_idle.data = rt;
    hg_lua_ref(rt);
    hg_lua_ref(rt);
    rt->kick_open = 1;
  }
  if (rt->ready == NULL) {
    rt->ready = rt->ready_tail = run;
    uv_check_start(&rt->kick_check, kick_check_cb);
    uv_idle_start(&rt->kick_idle, kick_idle_cb);
  } else {
    rt->ready_tail->next_ready = run;
    rt->ready_tail = run;
  }
}

/* 1 if the value at idx is what hg_lua__push_json made of arr, an array of
 * strings, unchanged: a table still marked as an array, of the same
 * strings. Then the JSON value read back would equal arr. */
static int same_string_array(lua_State *L, int idx, json_t *arr) {
  size_t n = json_array_size(arr);
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);
  int same = lua_rawequal(L, -1, -2) && lua_rawlen(L, idx) == n;
  lua_pop(L, 2);
  for (size_t i = 0; same && i < n; i++) {
    json_t *v = json_array_get(arr, i);
    size_t len;
    same = lua_rawgeti(L, idx, (lua_Integer)i + 1) == LUA_TSTRING && json_is_string(v);
    if (same) {
      const char *s = lua_tolstring(L, -1, &len);
      same = len == json_string_length(v) && memcmp(s, json_string_value(v), len) == 0;
    }
    lua_pop(L, 1);
  }
  return same;
}

/* Reads the outcome of a finished run and calls done. */
static void run_finish(hg_lua_run_t *run, int status) {
  lua_State *co = run->co;
  /* The result is read back from here: it counts as the phase's time. */
  uint64_t read_from = run->step_end_ns;
  char err[1024];
  err[0] = '\0';
  json_t *arg = run->arg, *res = NULL, *res2 = NULL;
  int r = 0;
  if (status != LUA_OK) {
    /* R.run and R.route_event let a plugin's error through as raised: the
     * dead coroutine still has the stack for the traceback. (A killed run
     * comes with its report built; routes and timers catch their own.) */
    if (run->kind == RUN_PHASE && !run->killed) structure_error(co, status, 0);
    if (run->killed && !lua_istable(co, -1)) {
      /* Stopped where the refused allocations left a memory error: say
       * what stopped it. */
      lua_pushstring(co, run->kill_msg);
      status = LUA_ERRRUN;
    }
    const char *phase = run->kind == RUN_ROUTE ? "routes" : run->kind == RUN_TIMER ? "timer" : hg_phase_name(run->phase);
    report_error(co, status, run->label ? run->label : run->plugin[0] ? run->plugin : NULL, phase, err, sizeof(err));
    r = HG_EINVAL;
  } else {
    int n = lua_gettop(co);
    char jerr[128];
    /* The route phase mostly leaves its targets alone: no new JSON then. */
    if (n >= 1 && run->targets != NULL && same_string_array(co, 1, run->targets)) res = json_incref(run->targets);
    else if (n >= 1 && !lua_isnil(co, 1)) res = hg_lua__to_json(co, 1, jerr, sizeof(jerr));
    if (n >= 2 && !lua_isnil(co, 2)) res2 = hg_lua__to_json(co, 2, jerr, sizeof(jerr));
  }
  if (run->kind == RUN_PHASE) phase_count(run->phase, run->cpu_ns + run->host_ns + (hg_now_ns() - read_from));
  run->done(r, arg, res, res2, err, run->ud);
  json_decref(res);
  json_decref(res2);
  hg_lua_t *rt = run->rt;
  run_free(run, status == LUA_OK);
  /* A failed run (a memory bomb, typically) leaves its garbage behind;
   * give the memory back now rather than at the next allocation failure. */
  if (r != 0 && rt->mem > rt->mem_limit / 2) lua_gc(rt->L, LUA_GCCOLLECT);
}

static void run_step(hg_lua_run_t *run, int nargs) {
  hg_lua_t *rt = run->rt;
  int nres = 0;
  run->preempted = run->waiting = 0;
  run->slice_start_ns = hg_now_ns();
  /* The share counts what the run grew the VM by over all its steps, so
   * yielding (sleep(0), preemption) does not start a fresh share. */
  run->mem_start = rt->mem > run->mem_used ? rt->mem - run->mem_used : 0;
  hg_lua_run_t *prev = rt->current;
  rt->current = run;
  /* Other runs set rt->plugin while this one waited: hookgate.log and the
   * error report must name this run's plugin. */
  memcpy(rt->plugin, run->plugin, sizeof(rt->plugin));
  int status = lua_resume(run->co, rt->L, nargs, &nres);
  memcpy(run->plugin, rt->plugin, sizeof(run->plugin));
  run->mem_used = rt->mem > run->mem_start ? rt->mem - run->mem_start : 0;
  rt->current = prev;
  run->step_end_ns = hg_now_ns();
  run->cpu_ns += run->step_end_ns - run->slice_start_ns;
  if (status == LUA_YIELD && run->killed) {
    /* Report it as R.run reports any error, with the suspended stack. */
    lua_State *co = run->co;
    lua_settop(co, 0);
    lua_createtable(co, 0, 2);
    lua_pushstring(co, run->kill_msg);
    lua_setfield(co, -2, "message");
    luaL_traceback(co, co, "", 0);
    lua_setfield(co, -2, "traceback");
    run_finish(run, LUA_ERRRUN);
    return;
  }
  if (status == LUA_YIELD) {
    if (run->preempted) {
      /* Let the loop serve other traffic, then continue. Not a 0 ms timer:
       * libuv (1.44) runs a timer re-armed with 0 from its own callback
       * again in the same pass, before polling for I/O, so the loop would
       * serve nothing else until the run ends. */
      uv_timer_start(&run->timer, preempt_cb, 1, 0);
      return;
    }
    lua_pop(run->co, nres);
    if (run->waiting) return; /* an async primitive resumes it */
    lua_pushstring(run->co, "coroutine.yield() outside a coroutine: runs cannot be suspended this way");
    run_finish(run, LUA_ERRRUN);
    return;
  }
  run_finish(run, status);
}

void hg_lua__resume(hg_lua_run_t *run, int nargs) { run_step(run, nargs); }

/* A new run on rt, its thread's stack empty: the caller pushes the function
 * and its arguments. Taken from the pool when one is there (no thread, no
 * registry slot, no timer to create), else built; either way the run holds
 * a reference to rt until its timer is closed. */
static hg_lua_run_t *run_new(hg_lua_t *rt, run_kind_t kind, hg_phase_t phase, hg_lua_done_fn done, void *ud) {
  hg_lua_run_t *run = rt->pool;
  if (run != NULL) {
    rt->pool = run->next_run;
    rt->n_pool--;
    /* Everything but the thread, its registry slot and the timer starts
     * afresh. */
    run->pure = 0;
    run->cpu_ns = run->slice_start_ns = run->host_ns = run->step_end_ns = 0;
    run->mem_start = run->mem_used = 0;
    run->preempted = run->waiting = run->killed = run->sleeping = 0;
    run->kill_msg[0] = run->plugin[0] = '\0';
    run->first_nargs = 0;
    run->arg = run->targets = NULL;
    run->label = NULL;
  } else {
    if ((run = calloc(1, sizeof(*run))) == NULL) return NULL;
    run->rt = rt;
    run->co = lua_newthread(rt->L);
    /* Marked as the runtime's: the sandbox refuses to resume or close it. */
    lua_rawgeti(rt->L, LUA_REGISTRYINDEX, rt->R);
    if (lua_getfield(rt->L, -1, "run_threads") == LUA_TTABLE) {
      lua_pushvalue(rt->L, -3);
      lua_pushboolean(rt->L, 1);
      lua_rawset(rt->L, -3);
    }
    lua_pop(rt->L, 2);
    run->co_ref = luaL_ref(rt->L, LUA_REGISTRYINDEX);
    uv_timer_init(rt->loop, &run->timer);
    run->timer.data = run;
    hg_lua_ref(rt);
  }
  run->kind = kind;
  run->phase = phase;
  run->done = done;
  run->ud = ud;
  run->prev_run = NULL;
  run->next_run = rt->runs;
  if (rt->runs) rt->runs->prev_run = run;
  rt->runs = run;
  return run;
}

/* --- JSON argument tables --------------------------------------------------- */

/* The argument table lives in the registry while the run goes on, so that
 * its final state can be read back after the coroutine finished. */
typedef struct async_ctx {
  hg_lua_done_fn done;
  void *ud;
  hg_lua_t *rt;
  int arg_ref;
  hg_phase_t phase;
} async_ctx_t;

static void async_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  async_ctx_t *c = ud;
  (void)arg;
  json_t *out = NULL;
  if (c->arg_ref != LUA_NOREF) {
    /* A phase's argument table read back: part of the phase's time (its
     * call was counted by run_finish just before). */
    uint64_t t0 = hg_now_ns();
    lua_State *L = c->rt->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->arg_ref);
    char jerr[128];
    out = hg_lua__to_json(L, -1, jerr, sizeof(jerr));
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, c->arg_ref);
    phase_stats[c->phase].ns += hg_now_ns() - t0;
  }
  c->done(status, out, res, res2, err, c->ud);
  json_decref(out);
  free(c);
}

static int start_run(hg_lua_t *rt, run_kind_t kind, hg_phase_t phase, const char *fn, const char *key,
                     const char *bindings, json_t *arg, hg_lua_done_fn done, void *ud) {
  if (rt->stopped) return HG_ESTATE;
  uint64_t t0 = hg_now_ns();
  async_ctx_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return HG_ENOMEM;
  c->done = done;
  c->ud = ud;
  c->rt = rt;
  c->arg_ref = LUA_NOREF;
  c->phase = phase;
  hg_lua_run_t *run = run_new(rt, kind, phase, async_done, c);
  if (run == NULL) {
    free(c);
    return HG_ENOMEM;
  }
  lua_State *co = run->co;
  lua_rawgeti(co, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(co, -1, fn);
  lua_remove(co, -2);
  int nargs;
  if (kind == RUN_ROUTE) {
    lua_pushstring(co, key);
    hg_lua__push_json(co, arg);
    nargs = 2;
  } else if (kind == RUN_TIMER) {
    hg_lua__push_json(co, arg);
    nargs = 1;
  } else {
    lua_pushstring(co, hg_phase_name(phase));
    if (bindings) lua_pushstring(co, bindings);
    else lua_pushnil(co);
    hg_lua__push_json(co, arg);
    lua_pushvalue(co, -1);
    c->arg_ref = luaL_ref(co, LUA_REGISTRYINDEX);
    nargs = 3;
  }
  run->arg = json_incref(arg);
  run->host_ns = hg_now_ns() - t0;
  run_queue(run, nargs);
  return 0;
}

static void spawn_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)status, (void)arg, (void)res, (void)res2, (void)err, (void)ud;
}

int hg_lua__spawn(hg_lua_t *rt, int fn_ref, const char *label) {
  if (rt->stopped) return HG_ESTATE;
  hg_lua_run_t *run = run_new(rt, RUN_TIMER, HG_PHASE_AFTER, spawn_done, NULL);
  if (run == NULL) return HG_ENOMEM;
  lua_State *co = run->co;
  lua_rawgeti(co, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(co, -1, "call");
  lua_remove(co, -2);
  lua_rawgeti(co, LUA_REGISTRYINDEX, fn_ref);
  lua_pushstring(co, label);
  run->label = NULL;
  run_queue(run, 2);
  return 0;
}

int hg_lua_call_async(hg_lua_t *rt, hg_phase_t phase, const char *bindings, json_t *arg, hg_lua_done_fn done,
                      void *ud) {
  return start_run(rt, RUN_PHASE, phase, "run", NULL, bindings, arg, done, ud);
}

int hg_lua_route_event(hg_lua_t *rt, const hg_lua_event_t *ev, json_t *targets, hg_lua_done_fn done, void *ud) {
  if (rt->stopped) return HG_ESTATE;
  uint64_t t0 = hg_now_ns();
  hg_lua_run_t *run = run_new(rt, RUN_PHASE, HG_PHASE_ROUTE, done, ud);
  if (run == NULL) return HG_ENOMEM;
  /* R.route_event(event, targets) builds arg and returns arg.targets: only
   * that is read back, by run_finish, as the result. */
  lua_State *co = run->co;
  lua_rawgeti(co, LUA_REGISTRYINDEX, rt->fn_route_event);
  hg_lua__push_event(co, ev);
  hg_lua__push_json(co, targets);
  run->targets = json_incref(targets);
  run->host_ns = hg_now_ns() - t0;
  run_queue(run, 2);
  return 0;
}

int hg_lua_has_route(hg_lua_t *rt, const char *method, const char *path) {
  if (!rt->has_routes) return 0;
  lua_State *L = rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "routes");
  lua_pushfstring(L, "%s %s", method, path);
  lua_rawget(L, -2);
  int found = !lua_isnil(L, -1);
  lua_pop(L, 3);
  return found;
}

int hg_lua_call_route(hg_lua_t *rt, const char *method, const char *path, json_t *req, hg_lua_done_fn done,
                      void *ud) {
  char key[512];
  snprintf(key, sizeof(key), "%s %s", method, path);
  return start_run(rt, RUN_ROUTE, HG_PHASE_INGEST, "route", key, NULL, req, done, ud);
}

/* --- pure phases ------------------------------------------------------------ */

/* Calls each function of the global bindings' call list for phase (at
 * calls: function, conf, plugin name, ...) with the table at arg, as R.run
 * does, naming the plugin before each call. Leaves the first non-nil
 * result on top (nil if none). */
static int walk_global(lua_State *L, hg_lua_t *rt, int calls, int arg, int msgh) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, calls);
  for (lua_Integer i = 1; i <= n; i += 3) {
    size_t len;
    lua_rawgeti(L, calls, i + 2);
    const char *name = lua_tolstring(L, -1, &len);
    if (len >= sizeof(rt->plugin)) len = sizeof(rt->plugin) - 1;
    memcpy(rt->plugin, name, len);
    rt->plugin[len] = '\0';
    lua_pop(L, 1);
    lua_rawgeti(L, calls, i);
    lua_pushvalue(L, arg);
    lua_rawgeti(L, calls, i + 1);
    int status = lua_pcall(L, 2, 1, msgh);
    if (status != LUA_OK || !lua_isnil(L, -1)) return status;
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  return LUA_OK;
}

/* Runs a pure phase: push leaves the phase's argument table on top of L's
 * stack (and may leave values below it for the caller). On success the
 * first non-nil value a plugin returned (or nil) sits just above the
 * table. The caller's lua_settop(L, top) removes all. The global bindings
 * (no per-webhook ones) are walked from here, without R.run: this runs
 * for every delivery. */
static int call_pure(hg_lua_t *rt, hg_phase_t phase, const char *bindings, void (*push)(lua_State *L, void *ud),
                     void *ud, char *err, size_t errlen) {
  lua_State *L = rt->L;
  hg_lua_run_t *run = &rt->sync_run;
  memset(run, 0, sizeof(*run));
  run->rt = rt;
  run->kind = RUN_PHASE;
  run->phase = phase;
  run->pure = 1;
  run->co = L;
  lua_pushcfunction(L, msgh_error);
  int msgh = lua_gettop(L);
  push(L, ud);
  int arg = lua_gettop(L);
  hg_lua_run_t *prev = rt->current;
  rt->current = run;
  /* This may run inside another run (a management call): its plugin name
   * comes back afterwards. Errors before the first plugin name none. */
  char outer[sizeof(rt->plugin)];
  memcpy(outer, rt->plugin, sizeof(outer));
  rt->plugin[0] = '\0';
  run->slice_start_ns = hg_now_ns();
  run->mem_start = rt->mem;
  int status;
  if ((bindings == NULL || bindings[0] == '\0') && rt->calls[phase] != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->calls[phase]);
    status = walk_global(L, rt, arg + 1, arg, msgh);
    lua_remove(L, arg + 1); /* the call list */
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->fn_run);
    lua_pushstring(L, hg_phase_name(phase));
    if (bindings) lua_pushstring(L, bindings);
    else lua_pushnil(L);
    lua_pushvalue(L, arg);
    status = lua_pcall(L, 3, 1, msgh);
  }
  rt->current = prev;
  if (run->killed) lua_sethook(L, hook, LUA_MASKCOUNT, 1000);
  if (run->killed && status != LUA_OK) {
    /* The message handler may have found no memory (a killed run gets
     * none): report the budget. */
    lua_pop(L, 1);
    lua_pushstring(L, run->kill_msg);
    status = LUA_ERRRUN;
  }
  if (status != LUA_OK) report_error(L, status, rt->plugin, hg_phase_name(phase), err, errlen);
  memcpy(rt->plugin, outer, sizeof(outer));
  if (status != LUA_OK) return HG_EINVAL;
  lua_remove(L, msgh); /* what push left moves down to where it was */
  return 0;
}

static void push_json_arg(lua_State *L, void *ud) { hg_lua__push_json(L, ud); }

int hg_lua_call(hg_lua_t *rt, hg_phase_t phase, const char *bindings, json_t **arg, json_t **result, char *err,
                size_t errlen) {
  lua_State *L = rt->L;
  uint64_t t0 = hg_now_ns();
  int top = lua_gettop(L), arg_idx = top + 1;
  *result = NULL;
  int r = call_pure(rt, phase, bindings, push_json_arg, *arg, err, errlen);
  if (r == 0) {
    char jerr[128];
    if (!lua_isnil(L, arg_idx + 1)) *result = hg_lua__to_json(L, arg_idx + 1, jerr, sizeof(jerr));
    json_t *out = hg_lua__to_json(L, arg_idx, jerr, sizeof(jerr));
    if (out != NULL) {
      json_decref(*arg);
      *arg = out;
    } else {
      snprintf(err, errlen, "phase %s: the argument table cannot be read back: %s", hg_phase_name(phase), jerr);
      r = HG_EINVAL;
    }
  }
  lua_settop(L, top);
  phase_count(phase, hg_now_ns() - t0);
  return r;
}

/* --- the delivery table of transform and sign ----------------------------- */

void hg_lua_delivery_close(hg_lua_delivery_t *d) {
  if (d == NULL) return;
  if (d->own_url) free((void *)d->url);
  if (d->own_body) free((void *)d->body);
  free(d->skip);
  for (size_t i = 0; i < d->n_headers; i++) {
    free(d->headers[i].name);
    free(d->headers[i].value);
  }
  free(d->headers);
  d->url = d->body = d->skip = NULL;
  d->own_url = d->own_body = 0;
  d->headers = NULL;
  d->n_headers = 0;
}

/* [url, body, delivery]: the url and body strings stay below the table, so
 * that read_delivery can tell they are unchanged: while the stack keeps
 * them alive, no other string can have their address. */
static void push_delivery(lua_State *L, void *ud) {
  const hg_lua_delivery_t *d = ud;
  lua_pushstring(L, d->url);
  lua_pushlstring(L, d->body, d->body_len);
  lua_createtable(L, 0, 8);
  lua_pushstring(L, d->id);
  lua_setfield(L, -2, "id");
  lua_pushstring(L, d->webhook_id);
  lua_setfield(L, -2, "webhookId");
  lua_pushstring(L, d->event_id);
  lua_setfield(L, -2, "eventId");
  lua_pushstring(L, d->event_type);
  lua_setfield(L, -2, "eventType");
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "url");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "body");
  lua_pushinteger(L, d->attempt);
  lua_setfield(L, -2, "attempt");
  lua_createtable(L, 0, (int)d->n_headers);
  for (size_t i = 0; i < d->n_headers; i++) {
    lua_pushstring(L, d->headers[i].value);
    lua_setfield(L, -2, d->headers[i].name);
  }
  lua_setfield(L, -2, "headers");
  if (d->skip) {
    lua_pushstring(L, d->skip);
    lua_setfield(L, -2, "skip");
  }
}

static int replace_str(char **dst, const char *s, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return HG_ENOMEM;
  memcpy(copy, s, len);
  copy[len] = '\0';
  free(*dst);
  *dst = copy;
  return 0;
}

/* replace_str for url and body, which may be borrowed (*own clear). */
static int replace_field(const char **dst, int *own, const char *s, size_t len) {
  char *copy = NULL;
  if (replace_str(&copy, s, len) != 0) return HG_ENOMEM;
  if (*own) free((void *)*dst);
  *dst = copy;
  *own = 1;
  return 0;
}

/* Reads url, body, headers and skip back from the table at idx (see
 * push_delivery: the original url and body strings sit at idx - 2
 * and idx - 1). An unchanged url or body is the same string object: not
 * copied again. */
static int read_delivery(lua_State *L, int idx, hg_lua_delivery_t *d, char *err, size_t errlen) {
  size_t len;
  const char *s;
  lua_getfield(L, idx, "url");
  if (lua_type(L, -1) != LUA_TSTRING) {
    snprintf(err, errlen, "delivery.url must be a string");
    return HG_EINVAL;
  }
  s = lua_tolstring(L, -1, &len);
  if (s != lua_tostring(L, idx - 2) && replace_field(&d->url, &d->own_url, s, len) != 0) return HG_ENOMEM;
  lua_getfield(L, idx, "body");
  if (lua_type(L, -1) != LUA_TSTRING) {
    snprintf(err, errlen, "delivery.body must be a string");
    return HG_EINVAL;
  }
  /* The body's exact bytes: no UTF-8 check, no copy through JSON. */
  s = lua_tolstring(L, -1, &len);
  if (s != lua_tostring(L, idx - 1)) {
    if (replace_field(&d->body, &d->own_body, s, len) != 0) return HG_ENOMEM;
    d->body_len = len;
  }
  lua_getfield(L, idx, "skip");
  free(d->skip);
  d->skip = NULL;
  if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
    s = lua_tolstring(L, -1, &len);
    if (replace_str(&d->skip, s, len) != 0) return HG_ENOMEM;
  } else if (lua_toboolean(L, -1) && lua_type(L, -1) != LUA_TSTRING) {
    if ((d->skip = strdup("a transform plugin skipped it")) == NULL) return HG_ENOMEM;
  }
  lua_getfield(L, idx, "headers");
  for (size_t i = 0; i < d->n_headers; i++) {
    free(d->headers[i].name);
    free(d->headers[i].value);
  }
  d->n_headers = 0;
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
        hg_lua_header_t *h = realloc(d->headers, (d->n_headers + 1) * sizeof(*h));
        if (h == NULL) {
          lua_pop(L, 2);
          return HG_ENOMEM;
        }
        d->headers = h;
        /* A number value converts on this stack copy; the copy lives until
         * the pop below, and strdup keeps its text. */
        char *n = strdup(lua_tostring(L, -2)), *v = strdup(lua_tostring(L, -1));
        if (n == NULL || v == NULL) {
          free(n);
          free(v);
          lua_pop(L, 2);
          return HG_ENOMEM;
        }
        h[d->n_headers].name = n;
        h[d->n_headers].value = v;
        d->n_headers++;
      }
      lua_pop(L, 1);
    }
  }
  return 0;
}

int hg_lua_call_delivery(hg_lua_t *rt, hg_phase_t phase, const char *bindings, hg_lua_delivery_t *d, char *err,
                         size_t errlen) {
  lua_State *L = rt->L;
  uint64_t t0 = hg_now_ns();
  int top = lua_gettop(L);
  int r = call_pure(rt, phase, bindings, push_delivery, d, err, errlen);
  if (r == 0) {
    char why[96];
    /* top + 1, top + 2: the url and body given; top + 3: the table;
     * top + 4: the result. */
    r = read_delivery(L, top + 3, d, why, sizeof(why));
    if (r == HG_EINVAL) snprintf(err, errlen, "plugin (%s): %s", hg_phase_name(phase), why);
  }
  lua_settop(L, top);
  phase_count(phase, hg_now_ns() - t0);
  return r;
}

int hg_lua_has(hg_lua_t *rt, hg_phase_t phase, const char *bindings) {
  if (bindings == NULL || bindings[0] == '\0') return rt->has[phase];
  /* Without plugins of its own (a transform alone, which runs in the
   * sandbox), a webhook runs the global list. The key "plugins" cannot
   * appear in the transform's source as such: JSON escapes its quotes. */
  if (strstr(bindings, "\"plugins\"") == NULL) return rt->has[phase];
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "has");
  lua_pushstring(L, hg_phase_name(phase));
  lua_pushstring(L, bindings);
  /* A binding that fails to compile (its plugin is gone after a reload,
   * say) "has" the phase: running it reports the error where the delivery
   * records it, instead of skipping the webhook's plugins silently. */
  int has = lua_pcall(L, 2, 1, 0) != LUA_OK || lua_toboolean(L, -1);
  lua_settop(L, top);
  return has || rt->has[phase];
}

/* An error outside any protected call: Lua aborts after this. Say why. */
static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  hg_log(HG_LOG_ERROR, "Lua panic: the process stops", "error", msg ? msg : "(no message)", NULL);
  return 0;
}

/* --- building a generation --------------------------------------------------- */

static int add_error(json_t *errors, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_error(json_t *errors, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  json_array_append_new(errors, json_string(buf));
  hg_log(HG_LOG_ERROR, "plugin error", "error", buf, NULL);
  return 0;
}

static int set_plugin(lua_State *L) {
  hg_lua_t *rt = *(hg_lua_t **)lua_getextraspace(L);
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  /* Once per plugin call: no snprintf. */
  if (len >= sizeof(rt->plugin)) len = sizeof(rt->plugin) - 1;
  memcpy(rt->plugin, name, len);
  rt->plugin[len] = '\0';
  if (rt->current) rt->current->label = NULL;
  return 0;
}

/* Loads lib_path/hookgate/<name>.lua with the full library (our code). */
static int load_lib(lua_State *L, const char *lib_path, const char *name, json_t *errors) {
  char path[1024], chunk[64];
  snprintf(path, sizeof(path), "%s/hookgate/%s.lua", lib_path, name);
  /* Named "hookgate/NAME.lua", not by its path: errors raised here can
   * reach delivery logs, which tenants read. */
  snprintf(chunk, sizeof(chunk), "@hookgate/%s.lua", name);
  FILE *f = fopen(path, "rb");
  char *src = NULL;
  size_t len = 0;
  if (f != NULL) {
    if (fseek(f, 0, SEEK_END) == 0) {
      long n = ftell(f);
      if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (src = malloc((size_t)n + 1)) != NULL) len = fread(src, 1, (size_t)n, f);
    }
    fclose(f);
  }
  if (src == NULL) {
    add_error(errors, "cannot read %s", path);
    return -1;
  }
  int r = luaL_loadbufferx(L, src, len, chunk, "t");
  free(src);
  if (r != LUA_OK) {
    add_error(errors, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Loads every plugins/<name>/init.lua under dir. */
static void load_dir(hg_lua_t *rt, const char *dir, json_t *errors) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    add_error(errors, "lua.plugin_paths: cannot open %s", dir);
    return;
  }
  char *names[512];
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < HG_ARRAY_LEN(names)) {
    if (e->d_name[0] == '.') continue;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, n, sizeof(names[0]), cmp_str);
  lua_State *L = rt->L;
  for (size_t i = 0; i < n; i++) {
    char path[1024];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s/init.lua", dir, names[i]);
    if (names[i] == NULL || stat(path, &st) != 0) {
      free(names[i]);
      continue;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
    lua_getfield(L, -1, "load_plugin");
    lua_pushstring(L, names[i]);
    lua_pushstring(L, path);
    rt->current = NULL;
    rt->loading = 1;
    int st_load = lua_pcall(L, 2, 2, 0);
    rt->loading = 0;
    if (st_load != LUA_OK) add_error(errors, "plugin %s: %s", names[i], lua_tostring(L, -1));
    else if (lua_isnil(L, -2)) add_error(errors, "plugin %s: %s", names[i], lua_tostring(L, -1));
    lua_settop(L, 0);
    free(names[i]);
  }
}

static void describe_errors(lua_State *L, int idx, const char *prefix, json_t *errors) {
  idx = lua_absindex(L, idx);
  lua_Integer n = luaL_len(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    lua_getfield(L, -1, "field");
    lua_getfield(L, -2, "message");
    add_error(errors, "%s%s%s: %s", prefix, lua_tostring(L, -2)[0] ? "." : "", lua_tostring(L, -2),
              lua_tostring(L, -1));
    lua_pop(L, 3);
  }
}

int hg_lua_new(hg_lua_t **out, struct hg_app *app, json_t **errors_out) {
  const hg_config_t *cfg = app->cfg;
  json_t *errors = json_array();
  hg_lua_t *rt = calloc(1, sizeof(*rt));
  if (rt == NULL || errors == NULL) {
    free(rt);
    json_decref(errors);
    return HG_ENOMEM;
  }
  rt->app = app;
  rt->loop = app->loop;
  rt->refs = 1;
  rt->mem_limit = cfg->lua_memory;
  rt->run_mem_limit = cfg->lua_run_memory;
  rt->slice_ns = cfg->lua_cpu_slice_ms * 1000000u;
  rt->run_ns = cfg->lua_cpu_budget_ms * 1000000u;
  lua_State *L = rt->L = lua_newstate(l_alloc, rt);
  if (L == NULL) {
    free(rt);
    json_decref(errors);
    return HG_ENOMEM;
  }
  *(hg_lua_t **)lua_getextraspace(L) = rt;
  lua_atpanic(L, on_panic);
  luaL_openlibs(L);
  /* Threads created later inherit the hook. */
  lua_sethook(L, hook, LUA_MASKCOUNT, 1000);

  /* host: what runtime.lua gets from C. */
  if (load_lib(L, cfg->lua_lib_path, "schema", errors) != 0) goto done;
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    add_error(errors, "%s", lua_tostring(L, -1));
    goto done;
  }
  int schema_idx = lua_gettop(L);
  hg_lua__open_hookgate(L, rt);
  int hg_idx = lua_gettop(L);
  lua_newtable(L); /* the sentinel: a unique table */
  lua_pushvalue(L, -1);
  rt->sentinel = luaL_ref(L, LUA_REGISTRYINDEX);
  int sentinel_idx = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);
  lua_setfield(L, schema_idx, "array_mt");
  if (load_lib(L, cfg->lua_lib_path, "runtime", errors) != 0) goto done;
  {
    /* The hook knows runtime.lua by its source string's address (shared by
     * every function of the chunk), not by its name, which a plugin's
     * load could give its own chunk. */
    lua_Debug ar;
    lua_pushvalue(L, -1);
    if (lua_getinfo(L, ">S", &ar)) rt->runtime_source = ar.source;
  }
  lua_newtable(L);
  lua_pushvalue(L, hg_idx);
  lua_setfield(L, -2, "hookgate");
  lua_pushvalue(L, sentinel_idx);
  lua_setfield(L, -2, "SENTINEL");
  lua_pushvalue(L, schema_idx);
  lua_setfield(L, -2, "schema");
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua__array_mt_key);
  lua_setfield(L, -2, "json_array_mt");
  lua_pushcfunction(L, set_plugin);
  lua_setfield(L, -2, "set_plugin");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    add_error(errors, "%s", lua_tostring(L, -1));
    goto done;
  }
  lua_getfield(L, -1, "run");
  rt->fn_run = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "route_event");
  rt->fn_route_event = luaL_ref(L, LUA_REGISTRYINDEX);
  rt->R = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);

  for (size_t i = 0; i < cfg->lua_plugin_paths.n; i++) load_dir(rt, cfg->lua_plugin_paths.items[i], errors);

  /* Global bindings from the config file: {"name": {config}, ...}. */
  if (cfg->plugins_json != NULL) {
    json_error_t jerr;
    json_t *bindings = json_loads(cfg->plugins_json, 0, &jerr);
    const char *name;
    json_t *conf;
    json_object_foreach(bindings, name, conf) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
      lua_getfield(L, -1, "bind_global");
      lua_pushstring(L, name);
      if (json_is_true(conf)) lua_pushnil(L); /* plugins = { name = true }: defaults */
      else hg_lua__push_json(L, conf);
      rt->loading = 1;
      int st_bind = lua_pcall(L, 2, 2, 0);
      rt->loading = 0;
      if (st_bind != LUA_OK) {
        add_error(errors, "plugins.%s: %s", name, lua_tostring(L, -1));
      } else if (lua_isnil(L, -2)) {
        char prefix[96];
        snprintf(prefix, sizeof(prefix), "plugins.%s", name);
        describe_errors(L, -1, prefix, errors);
      }
      lua_settop(L, 0);
    }
    json_decref(bindings);
  }
  /* Which phases any global plugin defines: the fast path skips Lua. The
   * pure phases keep the global bindings' call list (see walk_global). */
  for (int p = 0; p < HG_PHASE_COUNT; p++) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
    lua_getfield(L, -1, "has");
    lua_pushstring(L, phase_names[p]);
    lua_pushnil(L);
    rt->has[p] = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    lua_settop(L, 0);
    rt->calls[p] = LUA_NOREF;
    if (p == HG_PHASE_TRANSFORM || p == HG_PHASE_SIGN || p == HG_PHASE_RETRY) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
      lua_getfield(L, -1, "calls");
      lua_pushstring(L, phase_names[p]);
      if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) rt->calls[p] = luaL_ref(L, LUA_REGISTRYINDEX);
      lua_settop(L, 0);
    }
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "routes");
  lua_pushnil(L);
  rt->has_routes = lua_next(L, -2) != 0;
  lua_settop(L, 0);
done:
  lua_settop(L, 0);
  if (json_array_size(errors) > 0) {
    *errors_out = errors;
    rt->refs = 0;
    lua_close(rt->L);
    free(rt);
    return HG_ECONFIG;
  }
  json_decref(errors);
  *errors_out = NULL;
  *out = rt;
  return 0;
}

void hg_lua_ref(hg_lua_t *rt) { rt->refs++; }

void hg_lua_unref(hg_lua_t *rt) {
  if (rt == NULL || --rt->refs > 0) return;
  lua_close(rt->L);
  free(rt->timers);
  free(rt);
}

json_t *hg_lua_check_bindings(hg_lua_t *rt, json_t *plugins, json_t *transform) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  json_t *details = json_array();
  size_t i;
  json_t *b;
  /* A plugin's management call (webhooks.create/update) lands here in the
   * middle of its run: validation is not that run's work, but the run must
   * get its state back, or it could no longer do I/O nor be limited. */
  hg_lua_run_t *prev = rt->current;
  json_array_foreach(plugins, i, b) {
    char field[64];
    snprintf(field, sizeof(field), "plugins[%zu]", i);
    json_t *name = json_object_get(b, "name");
    if (!json_is_object(b) || !json_is_string(name)) {
      json_array_append_new(details, json_pack("{s:s,s:s}", "field", field, "message",
                                               "must be an object {\"name\": \"...\", \"config\": {...}}"));
      continue;
    }
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
      if (strcmp(key, "name") != 0 && strcmp(key, "config") != 0) {
        char f[96];
        snprintf(f, sizeof(f), "%s.%s", field, key);
        json_array_append_new(details, json_pack("{s:s,s:s}", "field", f, "message", "unknown field"));
      }
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
    lua_getfield(L, -1, "check_conf");
    lua_pushstring(L, json_string_value(name));
    json_t *conf = json_object_get(b, "config");
    if (conf) hg_lua__push_json(L, conf);
    else lua_pushnil(L);
    rt->current = NULL;
    rt->loading = 1;
    int st_check = lua_pcall(L, 2, 2, 0);
    rt->loading = 0;
    if (st_check != LUA_OK) {
      json_array_append_new(details, json_pack("{s:s,s:s}", "field", field, "message", lua_tostring(L, -1)));
    } else if (lua_isnil(L, -2)) {
      lua_Integer n = luaL_len(L, -1);
      for (lua_Integer k = 1; k <= n; k++) {
        lua_geti(L, -1, k);
        lua_getfield(L, -1, "field");
        lua_getfield(L, -2, "message");
        const char *f = lua_tostring(L, -2);
        char full[256];
        if (strcmp(f, "name") == 0) snprintf(full, sizeof(full), "%s.name", field);
        else snprintf(full, sizeof(full), "%s.config%s%s", field, f[0] ? "." : "", f);
        json_array_append_new(details, json_pack("{s:s,s:s}", "field", full, "message", lua_tostring(L, -1)));
        lua_pop(L, 3);
      }
    }
    lua_settop(L, top);
  }
  if (transform != NULL) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
    lua_getfield(L, -1, "compile_transform");
    lua_pushstring(L, json_string_value(transform));
    rt->loading = 1;
    int st_compile = lua_pcall(L, 1, 1, 0);
    rt->loading = 0;
    if (st_compile != LUA_OK) {
      /* "transform:3: unexpected symbol near 'x'" names the line. */
      json_array_append_new(details, json_pack("{s:s,s:s}", "field", "transform", "message", lua_tostring(L, -1)));
    }
    lua_settop(L, top);
  }
  rt->current = prev;
  if (json_array_size(details) == 0) {
    json_decref(details);
    return NULL;
  }
  return details;
}

json_t *hg_lua_describe(hg_lua_t *rt) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  char err[128];
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "describe");
  lua_call(L, 0, 1);
  json_t *order = hg_lua__to_json(L, -1, err, sizeof(err));
  lua_getfield(L, top + 1, "available");
  lua_call(L, 0, 1);
  json_t *avail = hg_lua__to_json(L, -1, err, sizeof(err));
  lua_settop(L, top);
  return json_pack("{s:o,s:o}", "plugins", order ? order : json_array(), "available", avail ? avail : json_array());
}

size_t hg_lua_memory(hg_lua_t *rt) { return rt->mem; }

json_t *hg_lua_redact_bindings(hg_lua_t *rt, json_t *plugins) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  char err[128];
  json_t *out = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "redact_bindings");
  hg_lua__push_json(L, plugins);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) out = hg_lua__to_json(L, -1, err, sizeof(err));
  lua_settop(L, top);
  /* Never fall back to the unredacted configs. */
  return out ? out : json_array();
}

/* --- timers --------------------------------------------------------------- */

static void timer_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)status, (void)arg, (void)res, (void)res2, (void)err, (void)ud;
}

static void plugin_timer_cb(uv_timer_t *t) {
  hg_lua_t *rt = t->data;
  size_t idx = (size_t)(t - rt->timers);
  json_t *arg = json_pack("{s:I}", "index", (json_int_t)idx + 1);
  if (start_run(rt, RUN_TIMER, HG_PHASE_AFTER, "timer", NULL, NULL, arg, timer_done, NULL) != 0)
    hg_log(HG_LOG_WARN, "plugin timer skipped", NULL);
  json_decref(arg);
}

void hg_lua_start(hg_lua_t *rt) {
  lua_State *L = rt->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "timers");
  lua_Integer n = luaL_len(L, -1);
  if (n > 0 && (rt->timers = calloc((size_t)n, sizeof(uv_timer_t))) != NULL) {
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, -1, i);
      lua_getfield(L, -1, "every");
      double every = lua_tonumber(L, -1);
      lua_getfield(L, -2, "at");
      double at = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : every;
      lua_pop(L, 3);
      uv_timer_t *t = &rt->timers[rt->n_timers++];
      uv_timer_init(rt->loop, t);
      t->data = rt;
      uv_timer_start(t, plugin_timer_cb, (uint64_t)(at * 1000), every > 0 ? (uint64_t)(every * 1000) : 0);
      hg_lua_ref(rt);
    }
  }
  lua_settop(L, 0);
}

static void plugin_timer_close_cb(uv_handle_t *h) { hg_lua_unref(h->data); }

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

void hg_lua_stop(hg_lua_t *rt) {
  rt->stopped = 1;
  if (rt->ready == NULL) kick_close(rt); /* else once the queue is drained */
  /* No new run starts: the pooled ones go (each holds a reference). */
  while (rt->pool) {
    hg_lua_run_t *run = rt->pool;
    rt->pool = run->next_run;
    run_close(run);
  }
  rt->n_pool = 0;
  while (rt->utimers) hg_lua__utimer_close(rt->utimers);
  for (size_t i = 0; i < rt->n_timers; i++) uv_close((uv_handle_t *)&rt->timers[i], plugin_timer_close_cb);
  rt->n_timers = 0;
}

void hg_lua_shutdown(hg_lua_t *rt) {
  hg_lua_stop(rt);
  rt->shutting_down = 1;
  /* Wake the runs sleeping in hookgate.sleep so shutdown does not wait out
   * their sleep; sleep returns at once from now on. */
  size_t n = 0;
  for (hg_lua_run_t *r = rt->runs; r; r = r->next_run) n += r->sleeping;
  hg_lua_run_t **wake = n ? calloc(n, sizeof(*wake)) : NULL;
  size_t k = 0;
  for (hg_lua_run_t *r = rt->runs; r && wake; r = r->next_run)
    if (r->sleeping) wake[k++] = r;
  hg_lua_ref(rt);
  for (size_t i = 0; i < k; i++) {
    wake[i]->sleeping = 0;
    uv_timer_stop(&wake[i]->timer);
    hg_lua__resume(wake[i], 0);
  }
  free(wake);
  hg_lua_unref(rt);
}
