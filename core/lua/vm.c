/* vm.c: a generation's Lua state — its accounting allocator, the CPU hook,
 * script error reports and counters — and its references.
 *
 * Runs (run.c) follow OpenResty's cosocket model (and HAProxy's hlua.c):
 * each run is a coroutine; an async primitive yields a sentinel and the
 * libuv callback that completes it resumes the coroutine with the results.
 * The instruction-count hook here measures CPU: past the slice a coroutine
 * yields and is resumed on the next loop turn, so other traffic is served
 * meanwhile; past the run's budget the hook raises an error. */
#include "lua/internal.h"

#include "base/common.h"
#include "base/log.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void hg_lua__hook(lua_State *L, lua_Debug *ar) {
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
      lua_sethook(L, hg_lua__hook, LUA_MASKCOUNT, 1);
      if (run->co != L) lua_sethook(run->co, hg_lua__hook, LUA_MASKCOUNT, 1);
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
void hg_lua__structure_error(lua_State *L, int status, int level) {
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
int hg_lua__msgh(lua_State *L) {
  hg_lua__structure_error(L, LUA_ERRRUN, 1);
  return 1;
}

/* Reads the error on top of L's stack — {plugin?, message, traceback} (see
 * structure_error, and R.route/R.timer/R.call, which still catch their
 * handler's errors themselves), or a raw value (a memory error skips the
 * message handler) — then logs it, counts it, and writes "plugin P
 * (phase): msg" to err. plugin: the plugin that was running, or NULL. */
void hg_lua__report_error(lua_State *L, int status, const char *plugin, const char *phase, char *err,
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

/* An error outside any protected call: Lua aborts after this. Say why. */
static int on_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  hg_log(HG_LOG_ERROR, "Lua panic: the process stops", "error", msg ? msg : "(no message)", NULL);
  return 0;
}

/* --- phase counters (process-wide, like the error counters) ------------------- */

hg_lua_phase_stat_t hg_lua__phase_stats[HG_PHASE_COUNT];

void hg_lua_phase_stats(hg_phase_t phase, uint64_t *calls, uint64_t *ns) {
  *calls = hg_lua__phase_stats[phase].calls;
  *ns = hg_lua__phase_stats[phase].ns;
}

/* --- a generation ------------------------------------------------------------- */

/* The collector's pause (percent): a cycle starts when the VM holds this
 * much of what the last one left. Phase tables and their strings are
 * garbage the moment a call ends, a few hundred bytes per delivery or
 * event, and at Lua's default (200) the collector ran often enough to be a
 * third of a no-op plugin's cost. At 400 it runs a third as often; the
 * VM's live data is small (a few hundred KiB) and its memory limit still
 * applies (an allocation over it runs a full collection first). */
#define HG_LUA_GC_PAUSE 400

int hg_lua__vm_open(hg_lua_t **out, const hg_lua_opts_t *opts) {
  hg_lua_t *rt = calloc(1, sizeof(*rt));
  if (rt == NULL) return HG_ENOMEM;
  rt->loop = opts->loop;
  rt->client = opts->client;
  rt->subrequest = opts->subrequest;
  rt->subrequest_ud = opts->subrequest_ud;
  rt->shared_limit = opts->shared_memory;
  rt->refs = 1;
  rt->mem_limit = opts->memory;
  rt->run_mem_limit = opts->run_memory;
  rt->slice_ns = opts->cpu_slice_ms * 1000000u;
  rt->run_ns = opts->cpu_budget_ms * 1000000u;
  lua_State *L = rt->L = lua_newstate(l_alloc, rt);
  if (L == NULL) {
    free(rt);
    return HG_ENOMEM;
  }
  *(hg_lua_t **)lua_getextraspace(L) = rt;
  lua_atpanic(L, on_panic);
  luaL_openlibs(L);
  lua_gc(L, LUA_GCINC, HG_LUA_GC_PAUSE, 0, 0);
  /* Threads created later inherit the hook. */
  lua_sethook(L, hg_lua__hook, LUA_MASKCOUNT, 1000);
  *out = rt;
  return 0;
}

void hg_lua__vm_discard(hg_lua_t *rt) {
  rt->refs = 0;
  lua_close(rt->L);
  free(rt);
}

void hg_lua_ref(hg_lua_t *rt) { rt->refs++; }

void hg_lua_unref(hg_lua_t *rt) {
  if (rt == NULL || --rt->refs > 0) return;
  lua_close(rt->L);
  free(rt->timers);
  free(rt);
}

size_t hg_lua_memory(hg_lua_t *rt) { return rt->mem; }
