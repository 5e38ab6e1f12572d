/* internal.h: what runtime.c and the lib_*.c modules share. */
#ifndef HG_LUA_INTERNAL_H
#define HG_LUA_INTERNAL_H

#include "lua/runtime.h"

#include <lauxlib.h>
#include <lua.h>

typedef struct hg_lua_run hg_lua_run_t;
typedef struct hg_lua_utimer hg_lua_utimer_t;

typedef enum { RUN_PHASE, RUN_ROUTE, RUN_TIMER } run_kind_t;

struct hg_lua_run {
  hg_lua_t *rt;
  lua_State *co;
  int co_ref;
  run_kind_t kind;
  hg_phase_t phase;
  int pure;
  uint64_t cpu_ns;         /* CPU used by this run so far */
  uint64_t slice_start_ns; /* when the current slice began */
  uint64_t host_ns;        /* spent outside lua_resume: arguments, results */
  uint64_t step_end_ns;    /* when the last lua_resume returned */
  size_t mem_start;
  size_t mem_used; /* VM growth during this run's earlier steps */
  int preempted; /* yielded by the CPU hook: resume on the next loop turn */
  int waiting;   /* yielded by an async primitive */
  int killed;    /* over its CPU budget: never resumed again */
  char kill_msg[200];
  int first_nargs; /* arguments of the first resume */
  hg_lua_run_t *next_ready; /* queued to start (see run_queue) */
  uv_timer_t timer; /* resumes after preemption; also hookgate.sleep */
  hg_lua_done_fn done;
  void *ud;
  json_t *arg;
  json_t *targets;   /* route phase: the targets given, kept for the result when unchanged */
  const char *label; /* plugin name for logs, when known */
  int sleeping;      /* waiting in hookgate.sleep */
  hg_lua_run_t *prev_run, *next_run; /* the generation's live runs, or the pool */
  char plugin[64];   /* the plugin this run was in when it last yielded */
};

struct hg_lua {
  struct hg_app *app;
  uv_loop_t *loop;
  lua_State *L;
  int refs;
  int R;         /* registry ref: the runtime.lua table */
  int sentinel;  /* registry ref: what async primitives yield */
  size_t mem, mem_limit, run_mem_limit;
  uint64_t slice_ns, run_ns;
  hg_lua_run_t *current; /* the run executing now, NULL while loading */
  hg_lua_run_t sync_run; /* used for pure phases */
  char plugin[64];       /* plugin executing now, for logs */
  int has[HG_PHASE_COUNT]; /* a global plugin defines the phase */
  int has_routes;
  int stopped;
  int shutting_down;
  int loading; /* plugin code runs outside a run (load, bind, check) */
  uv_timer_t *timers;
  size_t n_timers;
  hg_lua_utimer_t *utimers; /* live hookgate.timer timers */
  hg_lua_run_t *runs;       /* live async runs */
  hg_lua_run_t *pool;       /* finished runs kept for reuse: thread and timer ready */
  hg_lua_run_t *ready, *ready_tail; /* runs to start, in order (see run_queue) */
  uv_check_t kick_check;    /* starts them after this turn's I/O ... */
  uv_idle_t kick_idle;      /* ... or before the next poll, which it keeps from blocking */
  int kick_open;
  size_t n_pool;
  int fn_run, fn_route_event; /* registry refs: R.run, R.route_event */
  int calls[HG_PHASE_COUNT];  /* registry refs: the global call lists of the pure phases */
  int next_timer_id;
  const char *runtime_source; /* runtime.lua's chunk source string (see hook) */
};

/* The run executing now (NULL at load time or outside any run). */
hg_lua_run_t *hg_lua__current(lua_State *L);

/* For async primitives: raises if I/O is not allowed here (load time, or a
 * pure phase), naming the phases where it is. */
hg_lua_run_t *hg_lua__check_io(lua_State *L, const char *what);

/* Yields the current run until hg_lua__resume(). Use as
 * `return hg_lua__yield(L, run);` from a lua_CFunction. */
int hg_lua__yield(lua_State *L, hg_lua_run_t *run);

/* Resumes a waiting run with the nargs values pushed on run->co. */
void hg_lua__resume(hg_lua_run_t *run, int nargs);

void hg_lua__push_json(lua_State *L, json_t *v);
/* Pushes a route event table: id, type, organizationId, and data decoded
 * from ev->data on first read. */
void hg_lua__push_event(lua_State *L, const hg_lua_event_t *ev);
/* Converts the Lua value at idx into a new JSON reference, or NULL with a
 * reason in err (functions, cycles, non-string keys in objects). */
json_t *hg_lua__to_json(lua_State *L, int idx, char *err, size_t errlen);

/* Starts a run of the function in registry slot fn_ref (kept), labelled
 * with the plugin that registered it. Returns 0 or a negative code. */
int hg_lua__spawn(hg_lua_t *rt, int fn_ref, const char *label);

/* User timers (hookgate.timer.at/every) of a generation. */
struct hg_lua_utimer {
  uv_timer_t timer;
  hg_lua_t *rt;
  hg_lua_utimer_t *next;
  int fn_ref;
  int id;
  int repeat;
  char label[64];
};

/* Stops and frees a user timer. */
void hg_lua__utimer_close(hg_lua_utimer_t *t);

/* Adds the pure functions (json, crypto, sign, verify: no I/O, no state)
 * to the table on top of L's stack, and registers json's array metatable
 * in L's registry. lib_pure.c; the tenant sandbox uses it alone. */
void hg_lua__open_pure(lua_State *L);

/* Sets table[name] = a new table of fns, on the table on top of L's stack. */
void hg_lua__set_funcs(lua_State *L, const char *name, const luaL_Reg *fns);

/* Pushes the `hookgate` module table. */
int hg_lua__open_hookgate(lua_State *L, hg_lua_t *rt);

/* The registry keys of json.null and the array metatable. */
extern const char hg_lua__null_key, hg_lua__array_mt_key;

#endif
