/* run.c: runs — coroutines started from a queue once per loop turn,
 * preempted when their CPU slice is used up, resumed by the async
 * primitives' callbacks, and ended with their outcome read back. */
#include "lua/internal.h"

#include "base/common.h"
#include "lua/marshal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* 1 if the value at idx is what hg_marshal_push made of arr, an array of
 * strings, unchanged: a table still marked as an array, of the same
 * strings. Then the JSON value read back would equal arr. */
static int same_string_array(lua_State *L, int idx, json_t *arr) {
  size_t n = json_array_size(arr);
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
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
    /* R.run and route_body let a plugin's error through as raised: the
     * dead coroutine still has the stack for the traceback. (A killed run
     * comes with its report built; routes and timers catch their own.) */
    if (run->kind == RUN_PHASE && !run->killed) hg_lua__structure_error(co, status, 0);
    if (run->killed && !lua_istable(co, -1)) {
      /* Stopped where the refused allocations left a memory error: say
       * what stopped it. */
      lua_pushstring(co, run->kill_msg);
      status = LUA_ERRRUN;
    }
    const char *phase = run->kind == RUN_ROUTE ? "routes" : run->kind == RUN_TIMER ? "timer" : hg_phase_name(run->phase);
    hg_lua__report_error(co, status, run->label ? run->label : run->plugin[0] ? run->plugin : NULL, phase, err, sizeof(err));
    r = HG_EINVAL;
  } else {
    int n = lua_gettop(co);
    char jerr[128];
    if (run->targets != NULL) {
      /* The route phase mostly leaves its targets alone: no new JSON then,
       * and nothing to read when no plugin looked at arg (route_body). */
      if ((n >= 2 && hg_lua__untouched(co, 2)) || (n >= 1 && same_string_array(co, 1, run->targets)))
        res = json_incref(run->targets);
      else if (n >= 1 && !lua_isnil(co, 1)) res = hg_marshal_to_json(co, 1, jerr, sizeof(jerr));
    } else {
      if (n >= 1 && !lua_isnil(co, 1)) res = hg_marshal_to_json(co, 1, jerr, sizeof(jerr));
      if (n >= 2 && !lua_isnil(co, 2)) res2 = hg_marshal_to_json(co, 2, jerr, sizeof(jerr));
    }
  }
  if (run->kind == RUN_PHASE) hg_lua__phase_count(run->phase, run->cpu_ns + run->host_ns + (hg_now_ns() - read_from));
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
    out = hg_marshal_to_json(L, -1, jerr, sizeof(jerr));
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, c->arg_ref);
    hg_lua__phase_stats[c->phase].ns += hg_now_ns() - t0;
  }
  c->done(status, out, res, res2, err, c->ud);
  json_decref(out);
  free(c);
}

int hg_lua__start_run(hg_lua_t *rt, run_kind_t kind, hg_phase_t phase, const char *fn, const char *key,
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
    hg_marshal_push(co, arg);
    nargs = 2;
  } else if (kind == RUN_TIMER) {
    hg_marshal_push(co, arg);
    nargs = 1;
  } else {
    lua_pushstring(co, hg_phase_name(phase));
    if (bindings) lua_pushstring(co, bindings);
    else lua_pushnil(co);
    hg_marshal_push(co, arg);
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

/* --- the route phase ----------------------------------------------------------- */

/* The body of a route run (it was R.route_event in runtime.lua: under the
 * count hook each VM instruction costs a hook check, and that walk cost
 * more than the rest of a no-op call). At 1 the argument {event, targets}
 * (lazy.c), at 2 the global bindings' call list (function, conf, plugin
 * name, ...): each plugin is called with (arg, conf), naming it first, as
 * R.run does, until one returns non-nil. Returns nil and arg when no
 * plugin looked at arg (the targets are those given), else arg.targets.
 * A plugin may yield (I/O, preemption): route_k continues the walk at the
 * next entry, ctx, with the plugin's result on top. */
static int route_k(lua_State *L, int status, lua_KContext ctx) {
  hg_lua_t *rt = hg_lua__rt(L);
  lua_Integer i = (lua_Integer)ctx, n = (lua_Integer)lua_rawlen(L, 2);
  if (status == LUA_YIELD) {
    if (!lua_isnil(L, -1)) i = n + 1;
    lua_settop(L, 2);
  }
  for (; i <= n; i += 3) {
    size_t len;
    lua_rawgeti(L, 2, i + 2);
    const char *name = lua_tolstring(L, -1, &len);
    if (len >= sizeof(rt->plugin)) len = sizeof(rt->plugin) - 1;
    memcpy(rt->plugin, name, len);
    rt->plugin[len] = '\0';
    if (rt->current) rt->current->label = NULL;
    lua_pop(L, 1);
    lua_rawgeti(L, 2, i);
    lua_pushvalue(L, 1);
    lua_rawgeti(L, 2, i + 1);
    lua_callk(L, 2, 1, (lua_KContext)(i + 3), route_k);
    int done = !lua_isnil(L, -1);
    lua_settop(L, 2);
    if (done) break;
  }
  if (hg_lua__untouched(L, 1)) {
    lua_pushnil(L);
    lua_pushvalue(L, 1);
    return 2;
  }
  lua_getfield(L, 1, "targets");
  return 1;
}

static int route_body(lua_State *L) {
  hg_lua_t *rt = hg_lua__rt(L);
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->calls[HG_PHASE_ROUTE]);
  if (!lua_istable(L, 2)) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  return route_k(L, LUA_OK, 1);
}

int hg_lua_call_async(hg_lua_t *rt, hg_phase_t phase, const char *bindings, json_t *arg, hg_lua_done_fn done,
                      void *ud) {
  return hg_lua__start_run(rt, RUN_PHASE, phase, "run", NULL, bindings, arg, done, ud);
}

int hg_lua_route_event(hg_lua_t *rt, const hg_lua_event_t *ev, json_t *targets, hg_lua_done_fn done, void *ud) {
  if (rt->stopped) return HG_ESTATE;
  uint64_t t0 = hg_now_ns();
  hg_lua_run_t *run = run_new(rt, RUN_PHASE, HG_PHASE_ROUTE, done, ud);
  if (run == NULL) return HG_ENOMEM;
  /* route_body(arg) returns arg.targets, or nil and arg when no plugin
   * looked at arg: only that is read back, by run_finish, as the result.
   * arg is filled on first use (lazy.c): most routing looks at the type
   * and organization alone, and a no-op at nothing; the event's data is
   * decoded only if read. */
  lua_State *co = run->co;
  lua_pushcfunction(co, route_body);
  int r = hg_lua__push_route(co, ev, targets);
  if (r != 0) {
    lua_settop(co, 0);
    run_free(run, 1);
    return r;
  }
  run->targets = json_incref(targets);
  run->host_ns = hg_now_ns() - t0;
  run_queue(run, 1);
  return 0;
}

int hg_lua_call_route(hg_lua_t *rt, const char *method, const char *path, json_t *req, hg_lua_done_fn done,
                      void *ud) {
  char key[512];
  snprintf(key, sizeof(key), "%s %s", method, path);
  return hg_lua__start_run(rt, RUN_ROUTE, HG_PHASE_INGEST, "route", key, NULL, req, done, ud);
}

/* --- stopping ------------------------------------------------------------------ */

void hg_lua__runs_stop(hg_lua_t *rt) {
  rt->stopped = 1;
  if (rt->ready == NULL) kick_close(rt); /* else once the queue is drained */
  /* No new run starts: the pooled ones go (each holds a reference). */
  while (rt->pool) {
    hg_lua_run_t *run = rt->pool;
    rt->pool = run->next_run;
    run_close(run);
  }
  rt->n_pool = 0;
}

void hg_lua__runs_wake(hg_lua_t *rt) {
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
