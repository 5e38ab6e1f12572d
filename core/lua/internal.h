/* internal.h: the contract between the runtime's files — vm.c (the state,
 * its limits, error reports), run.c (coroutine runs), pure.c (synchronous
 * pure phases), lazy.c (the phase tables filled on first use), plugins.c
 * (loading, bindings, timers) — and the libraries
 * (lib_*.c, assembled by libs.c). Nothing outside core/lua/ includes it but
 * the tenant sandbox, for hg_lua_open_pure. */
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
  uv_loop_t *loop;
  struct hg_client *const *client; /* see hg_lua_opts_t */
  hg_lua_subrequest_fn subrequest;
  void *subrequest_ud;
  size_t shared_limit; /* lua.shared_memory */
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
  int fn_run;                 /* registry ref: R.run */
  int calls[HG_PHASE_COUNT];  /* registry refs: the global call lists of the pure phases and route */
  int next_timer_id;
  const char *runtime_source; /* runtime.lua's chunk source string (see hook) */
  int lazy_copies; /* registry ref: lazy table -> its copy (weak keys; lazy.c) */
  int lazy_mt[3];  /* registry refs: the metatables of lazy deliveries, events, and unread event data */
};

static inline hg_lua_t *hg_lua__rt(lua_State *L) { return *(hg_lua_t **)lua_getextraspace(L); }

/* The files call downwards only: vm.c (the state) <- lazy.c <- run.c (runs) <- the
 * libraries (lib_*.c, assembled by libs.c) and pure.c <- plugins.c (a
 * generation: builds it, starts and stops it). */

/* --- vm.c ------------------------------------------------------------------- */

/* A generation with a fresh state: allocator, panic handler, standard
 * libraries and the count hook; limits and the app's hooks from opts.
 * Returns 0 or HG_ENOMEM. */
int hg_lua__vm_open(hg_lua_t **out, const hg_lua_opts_t *opts);
/* Closes a generation nobody holds yet (its build failed). */
void hg_lua__vm_discard(hg_lua_t *rt);

/* The count hook: CPU slices and budgets (every state of a generation). */
void hg_lua__hook(lua_State *L, lua_Debug *ar);

/* Replaces the raw error value on top of L's stack with {message,
 * traceback}, from stack level on. [-1, +1, m] */
void hg_lua__structure_error(lua_State *L, int status, int level);
/* The message handler of pure phases: hg_lua__structure_error at level 1. */
int hg_lua__msgh(lua_State *L);
/* Logs and counts the error on top of L's stack and writes "plugin P
 * (phase): msg" to err. plugin: the plugin that was running, or NULL. */
void hg_lua__report_error(lua_State *L, int status, const char *plugin, const char *phase, char *err,
                          size_t errlen);

/* See hg_lua_phase_stats: calls and time per phase, loop thread only. */
typedef struct hg_lua_phase_stat {
  uint64_t calls, ns;
} hg_lua_phase_stat_t;
extern hg_lua_phase_stat_t hg_lua__phase_stats[HG_PHASE_COUNT];

static inline void hg_lua__phase_count(hg_phase_t phase, uint64_t ns) {
  hg_lua__phase_stats[phase].calls++;
  hg_lua__phase_stats[phase].ns += ns;
}

/* --- run.c ------------------------------------------------------------------ */

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

/* Starts a run of R[fn] (runtime.lua) of the given kind with arg (JSON,
 * borrowed): done runs later, never inside this call. Returns 0,
 * HG_ESTATE once the generation is stopped, or HG_ENOMEM. */
int hg_lua__start_run(hg_lua_t *rt, run_kind_t kind, hg_phase_t phase, const char *fn, const char *key,
                      const char *bindings, json_t *arg, hg_lua_done_fn done, void *ud);

/* Starts a run of the function in registry slot fn_ref (kept), labelled
 * with the plugin that registered it. Returns 0 or a negative code. */
int hg_lua__spawn(hg_lua_t *rt, int fn_ref, const char *label);

/* hg_lua_stop's part for runs: no new run starts, the pooled ones close. */
void hg_lua__runs_stop(hg_lua_t *rt);
/* hg_lua_shutdown's part for runs: wakes those sleeping in hookgate.sleep. */
void hg_lua__runs_wake(hg_lua_t *rt);

/* --- lazy.c: the delivery and event tables, filled on first use ------------ */

/* The generation's lazy metatables and copy table, before runtime.lua
 * loads. [-0, +0, m] */
void hg_lua__lazy_open(lua_State *L);
/* Pushes the delivery table transform and sign see: its fields are written
 * into it the first time anything looks at it, from d (borrowed until
 * hg_lua__seal_delivery). [-0, +1, m] */
void hg_lua__push_delivery(lua_State *L, const hg_lua_delivery_t *d);
/* Ends d's phase for its table at idx: a table nobody looked at gets a
 * copy of d's fields to fill from later (a plugin may have kept it). Call
 * it before d changes or goes, whatever the phase's outcome. Never raises:
 * if the copy cannot be made (memory), the table no longer reads d and
 * raises when read. [-0, +0, -] */
void hg_lua__seal_delivery(lua_State *L, int idx, const hg_lua_delivery_t *d);
/* Pushes the argument route sees, {event, targets} (event: id, type,
 * organizationId, and data decoded from the raw text when read; targets:
 * a JSON array of strings, borrowed), filled as a delivery is. Returns 0,
 * or HG_EINVAL (nothing pushed) if a target is not a string. */
int hg_lua__push_route(lua_State *L, const hg_lua_event_t *ev, json_t *targets);
/* 1 if the table at idx was never looked at: it holds what was pushed. */
int hg_lua__untouched(lua_State *L, int idx);
/* host.lazy_env(readonly_proxies): a table of next, rawget, rawset, rawlen,
 * getmetatable and setmetatable for plugins' environments: the base
 * library's, which fill a lazy table first (rawset refuses the read-only
 * proxies of the hookgate module, setmetatable __gc). */
int hg_lua__lazy_env(lua_State *L);

/* --- lib_timer.c: user timers (hookgate.timer.at/every) of a generation --- */

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

/* --- the libraries ------------------------------------------------------------
 * Each adds its functions to the table on top of L's stack. [-0, +0, m] */

void hg_lua__open_json(lua_State *L);   /* json: encode, decode, array, null */
void hg_lua__open_crypto(lua_State *L); /* crypto: digests, HMAC, random, encodings */
void hg_lua__open_sign(lua_State *L);   /* sign, verify */
void hg_lua__open_timer(lua_State *L);  /* sleep; timer: at, every, cancel */
void hg_lua__open_log(lua_State *L);    /* log: debug, info, warn, error */
void hg_lua__open_shared(lua_State *L); /* shared: get, set, incr */
void hg_lua__open_http(lua_State *L);   /* http: request */
void hg_lua__open_mgmt(lua_State *L);   /* webhooks, deliveries, events */

/* Pushes the whole `hookgate` module table. [-0, +1, m] */
int hg_lua__open_hookgate(lua_State *L);

/* Sets table[name] = a new table of fns, on the table on top of L's stack. */
static inline void hg_lua__set_funcs(lua_State *L, const char *name, const luaL_Reg *fns) {
  lua_newtable(L);
  luaL_setfuncs(L, fns, 0);
  lua_setfield(L, -2, name);
}

#endif
