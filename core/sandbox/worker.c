/* worker.c: a sandbox worker, the process that runs tenants' code.
 *
 * A webhook's `transform` is code an organization-scoped key wrote: it is
 * hostile input. It never runs in the gateway's process. The gateway
 * (core/sandbox/pool.c) starts a few of these workers (`hookgate
 * sandbox-worker`, the same binary), sends each one job at a time over a
 * socket pair on fd 0, and kills a worker that does not answer within the
 * job's budget plus a grace: a script that a hook cannot stop (a pattern
 * that backtracks for minutes inside string.find, a loop in an xpcall
 * message handler, which Lua runs with hooks off) ends with its process.
 *
 * Inside the worker, each webhook's code gets a Lua state of its own (kept
 * for the webhook's next deliveries, up to a number of states per worker,
 * least recently used first out): no table, string or function is shared
 * between two webhooks, so nothing one organization's code does can be
 * seen by another's. A state holds only pure functions: Lua's base library
 * without files, load of binary chunks, collectgarbage or print; string
 * (without dump), table, math, utf8, coroutine; and hookgate.json,
 * hookgate.crypto, hookgate.sign, hookgate.verify. No I/O, timers, shared
 * dictionary or management calls exist here to be reached.
 *
 * Limits, each checked here and backed by the gateway's watchdog:
 * - CPU: a count hook checks the clock every 1,000 instructions; past the
 *   budget the run fails with "transform:LINE: CPU budget exceeded", and
 *   from then on the hook fires at every instruction and every allocation
 *   is refused (a script's pcall cannot catch its way out: memory errors
 *   skip message handlers). The state is thrown away.
 * - Memory: every byte a state holds is counted by its allocator against
 *   the per-state limit; over it, Lua raises "not enough memory".
 * - Finalizers: setmetatable refuses a metatable with __gc (Lua runs
 *   finalizers with hooks off, at times of the collector's choosing).
 * The process itself: no file descriptors but its socket and stderr, no
 * core dumps, an address-space limit, a seccomp filter of the few system
 * calls jobs need (both except under AddressSanitizer, which reserves
 * terabytes of shadow and needs more calls), and it dies with the
 * gateway. */
#define _GNU_SOURCE /* close_range */
#include "sandbox/worker.h"

#include "base/common.h"
#include "base/crypto.h"
#include "base/ids.h"
#include "lua/libs.h"
#include "sandbox/wire.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct state {
  char key[HG_ID_MAX]; /* the webhook */
  char *code;          /* the source this state was built from */
  lua_State *L;
  int fn_ref;          /* the transform function */
  size_t mem, limit;
  uint64_t last_used;
  /* Of the run going on: */
  uint64_t deadline_ns;
  int budget_ms;
  int killed;       /* past the deadline: every allocation refused */
  int kill_line;    /* where the script was when it was stopped */
  char kill_src[64];
  int refused_mem;  /* an allocation over the limit was refused */
} state_t;

static state_t *states;
static size_t n_states, max_states;
static uint64_t use_clock;

static void *st_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  state_t *s = ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    free(ptr);
    s->mem -= osize;
    return NULL;
  }
  if (nsize > osize && (s->killed || s->mem + (nsize - osize) > s->limit)) {
    if (!s->killed) s->refused_mem = 1;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p != NULL) s->mem = s->mem - osize + nsize;
  return p;
}

static void hook(lua_State *L, lua_Debug *ar) {
  state_t *s = *(state_t **)lua_getextraspace(L);
  if (!s->killed) {
    if (hg_now_ns() < s->deadline_ns) return;
    s->killed = 1;
    s->kill_line = 0;
    s->kill_src[0] = '\0';
    if (lua_getinfo(L, "Sl", ar)) {
      s->kill_line = ar->currentline;
      snprintf(s->kill_src, sizeof(s->kill_src), "%s", ar->short_src);
    }
    /* Fire at every instruction from now on, in this coroutine; others
     * still check at their next count. */
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  }
  /* Pushing the message may find no memory (a killed state gets none):
   * then this raises a memory error instead, which is as good, as the
   * run's outcome is read from s->killed, not from the message. */
  lua_pushliteral(L, "CPU budget exceeded");
  lua_error(L);
}

/* setmetatable(t, mt) without __gc: a finalizer runs with hooks off, when
 * the collector decides, so it could neither be stopped nor charged to the
 * run that made it. (A __gc added to the metatable later marks nothing:
 * Lua decides at setmetatable.) Upvalue 1: the real setmetatable. */
static int l_setmetatable(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    int has = lua_rawget(L, 2) != LUA_TNIL;
    lua_pop(L, 1);
    if (has) return luaL_error(L, "setmetatable: __gc metamethods are not allowed in a transform");
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* load(chunk [, name [, mode [, env]]]): text only. Upvalue 1: the real load. */
static int l_load(lua_State *L) {
  lua_settop(L, 4);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L);
}

/* __index of the sandbox's hookgate table: the parts of the module that
 * plugins have and a transform does not get say so, instead of "attempt
 * to index a nil value". */
static int l_missing(lua_State *L) {
  static const char *const io[] = {"sleep", "http", "webhooks", "deliveries", "events",
                                   "timer", "shared", "log",  NULL};
  const char *k = lua_tostring(L, 2);
  for (const char *const *p = io; k && *p; p++)
    if (strcmp(k, *p) == 0)
      return luaL_error(L, "hookgate.%s is not allowed in the transform phase (pure); a webhook's transform runs "
                        "in the sandbox with hookgate.json, crypto, sign and verify only", k);
  return 0;
}

static void wrap_global(lua_State *L, const char *name, lua_CFunction f) {
  lua_getglobal(L, name);
  lua_pushcclosure(L, f, 1);
  lua_setglobal(L, name);
}

/* The environment of a transform: see the top of this file. [-0, +0, m] */
static int open_env(lua_State *L) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},         {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},   {LUA_COLIBNAME, luaopen_coroutine},
                                  {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->name; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  static const char *const drop[] = {"dofile", "loadfile", "collectgarbage", "print", "require", NULL};
  for (const char *const *d = drop; *d; d++) {
    lua_pushnil(L);
    lua_setglobal(L, *d);
  }
  wrap_global(L, "setmetatable", l_setmetatable);
  wrap_global(L, "load", l_load);
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);
  lua_newtable(L);
  hg_lua_open_pure(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_missing);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_setglobal(L, "hookgate");
  return 0;
}

static void state_close(state_t *s) {
  if (s->L) lua_close(s->L);
  free(s->code);
  memset(s, 0, sizeof(*s));
}

/* Formats the failure of the run on s into err: the stop at the budget,
 * the memory limit, or the script's own error (on top of s->L). */
static uint32_t run_error(state_t *s, int status, char *err, size_t errlen) {
  if (s->killed) {
    if (s->kill_line > 0)
      snprintf(err, errlen, "%s:%d: CPU budget exceeded: the run used more than %d ms", s->kill_src, s->kill_line,
               s->budget_ms);
    else
      snprintf(err, errlen, "transform: CPU budget exceeded: the run used more than %d ms", s->budget_ms);
    return HG_WIRE_BUDGET;
  }
  if (status == LUA_ERRMEM || s->refused_mem) {
    snprintf(err, errlen, "transform: not enough memory: the script reached its limit of %zu bytes", s->limit);
    return HG_WIRE_SCRIPT_ERROR;
  }
  const char *msg = lua_tostring(s->L, -1);
  if (msg) snprintf(err, errlen, "%s", msg);
  else snprintf(err, errlen, "transform: error object is a %s value", luaL_typename(s->L, -1));
  return HG_WIRE_SCRIPT_ERROR;
}

static void arm(state_t *s, int budget_ms, uint64_t start_ns) {
  s->budget_ms = budget_ms;
  s->deadline_ns = start_ns + (uint64_t)budget_ms * 1000000u;
  s->killed = 0;
  s->refused_mem = 0;
  lua_sethook(s->L, hook, LUA_MASKCOUNT, 1000);
}

/* The state for webhook key running code: the one kept, or a new one with
 * the code compiled and run (its chunk returns the function). Returns it,
 * or NULL with *status and err set (the failed state is thrown away). */
static state_t *state_for(const char *key, const char *code, size_t code_len, size_t limit, int budget_ms,
                          uint64_t start_ns, uint32_t *status, char *err, size_t errlen) {
  state_t *s = NULL, *lru = NULL;
  for (size_t i = 0; i < n_states; i++) {
    if (strcmp(states[i].key, key) == 0) {
      s = &states[i];
      break;
    }
    if (lru == NULL || states[i].last_used < lru->last_used) lru = &states[i];
  }
  if (s != NULL && (strlen(s->code) != code_len || memcmp(s->code, code, code_len) != 0 || s->limit != limit)) {
    state_close(s);
  } else if (s != NULL) {
    s->last_used = ++use_clock;
    arm(s, budget_ms, start_ns);
    return s;
  } else if (n_states < max_states) {
    s = &states[n_states++];
  } else {
    s = lru;
    state_close(s);
  }
  snprintf(s->key, sizeof(s->key), "%s", key);
  s->code = malloc(code_len + 1);
  s->limit = limit;
  s->last_used = ++use_clock;
  if (s->code == NULL) {
    snprintf(err, errlen, "transform: the sandbox is out of memory");
    *status = HG_WIRE_SCRIPT_ERROR;
    state_close(s);
    return NULL;
  }
  memcpy(s->code, code, code_len);
  s->code[code_len] = '\0';
  s->L = lua_newstate(st_alloc, s);
  if (s->L == NULL) {
    snprintf(err, errlen, "transform: not enough memory to start the script's state");
    *status = HG_WIRE_SCRIPT_ERROR;
    state_close(s);
    return NULL;
  }
  *(state_t **)lua_getextraspace(s->L) = s;
  arm(s, budget_ms, start_ns);
  lua_State *L = s->L;
  lua_pushcfunction(L, open_env);
  int st = lua_pcall(L, 0, 0, 0);
  if (st == LUA_OK) {
    /* "function(delivery) ... end" is the usual form: it becomes "return
     * function(delivery) ... end" on the same line, so line numbers stay.
     * A chunk that returns a function works too. */
    size_t i = 0;
    while (i < code_len && (code[i] == ' ' || code[i] == '\t' || code[i] == '\r' || code[i] == '\n')) i++;
    size_t j = i + 8;
    if (code_len - i >= 8 && memcmp(code + i, "function", 8) == 0) {
      while (j < code_len && (code[j] == ' ' || code[j] == '\t')) j++;
    }
    if (j < code_len && code[j] == '(' && memcmp(code + i, "function", 8) == 0) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      luaL_addstring(&b, "return ");
      luaL_addlstring(&b, code, code_len);
      luaL_pushresult(&b);
    } else {
      lua_pushlstring(L, code, code_len);
    }
    size_t len;
    const char *src = lua_tolstring(L, -1, &len);
    st = luaL_loadbufferx(L, src, len, "=transform", "t");
    lua_remove(L, -2);
    if (st == LUA_OK) st = lua_pcall(L, 0, 1, 0);
    if (st == LUA_OK && lua_type(L, -1) != LUA_TFUNCTION) {
      lua_pushliteral(L, "transform: the code must be a function, or return one");
      st = LUA_ERRRUN;
    }
  }
  if (st != LUA_OK) {
    *status = run_error(s, st, err, errlen);
    state_close(s);
    return NULL;
  }
  s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return s;
}

/* --- one job ------------------------------------------------------------------- */

typedef struct job {
  uint32_t id, budget_ms;
  size_t memory;
  char key[HG_ID_MAX];
  const char *code;
  size_t code_len;
  const char *f[6]; /* id, webhookId, eventId, eventType, url, body */
  size_t f_len[6];
  uint32_t attempt, n_headers;
  hg_wire_in_t headers; /* where the header pairs start */
  const char *skip;     /* set by a plugin before, or NULL */
  size_t skip_len;
} job_t;

static const char *const field_names[6] = {"id", "webhookId", "eventId", "eventType", "url", "body"};

static int read_job(hg_wire_in_t *r, job_t *j) {
  memset(j, 0, sizeof(*j));
  if (hg_wire_get_u32(r) != HG_WIRE_JOB_TRANSFORM) return -1;
  j->id = hg_wire_get_u32(r);
  j->budget_ms = hg_wire_get_u32(r);
  j->memory = (size_t)hg_wire_get_u32(r) << 10;
  size_t len;
  const char *key = hg_wire_get_str(r, &len);
  if (key == NULL || len >= sizeof(j->key)) return -1;
  memcpy(j->key, key, len);
  j->code = hg_wire_get_str(r, &j->code_len);
  if (j->code == NULL) return -1;
  for (int i = 0; i < 6; i++) {
    j->f[i] = hg_wire_get_str(r, &j->f_len[i]);
    if (j->f[i] == NULL) return -1;
  }
  j->attempt = hg_wire_get_u32(r);
  j->n_headers = hg_wire_get_u32(r);
  j->headers = *r;
  for (uint32_t i = 0; i < 2 * j->n_headers && !r->bad; i++) hg_wire_get_str(r, &len);
  j->skip = hg_wire_get_str(r, &j->skip_len);
  return r->bad || r->off != r->len ? -1 : 0;
}

/* Pushes the delivery table a transform gets. [-0, +1, m] */
static int push_delivery(lua_State *L) {
  job_t *j = lua_touserdata(L, 1);
  lua_createtable(L, 0, 8);
  for (int i = 0; i < 6; i++) {
    lua_pushlstring(L, j->f[i], j->f_len[i]);
    lua_setfield(L, -2, field_names[i]);
  }
  lua_pushinteger(L, (lua_Integer)j->attempt);
  lua_setfield(L, -2, "attempt");
  lua_createtable(L, 0, (int)j->n_headers);
  hg_wire_in_t r = j->headers;
  for (uint32_t i = 0; i < j->n_headers; i++) {
    size_t nl, vl;
    const char *n = hg_wire_get_str(&r, &nl);
    const char *v = hg_wire_get_str(&r, &vl);
    lua_pushlstring(L, n ? n : "", nl);
    lua_pushlstring(L, v ? v : "", vl);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  if (j->skip) {
    lua_pushlstring(L, j->skip, j->skip_len);
    lua_setfield(L, -2, "skip");
  }
  return 1;
}

/* Writes what the transform left in the delivery table at idx (read raw:
 * no metamethod of the script's runs here). 0, or -1 with err set. */
static int write_result(lua_State *L, int idx, const job_t *j, hg_wire_out_t *w, char *err, size_t errlen) {
  size_t len;
  lua_pushliteral(L, "url");
  if (lua_rawget(L, idx) != LUA_TSTRING) {
    snprintf(err, errlen, "transform: delivery.url must be a string");
    return -1;
  }
  lua_pushliteral(L, "body");
  if (lua_rawget(L, idx) != LUA_TSTRING) {
    snprintf(err, errlen, "transform: delivery.body must be a string");
    return -1;
  }
  /* Unchanged (the usual case for the URL) goes back as NULL: no copy of
   * the same bytes on either side. */
  const char *url = lua_tolstring(L, -2, &len);
  if (len == j->f_len[4] && memcmp(url, j->f[4], len) == 0) hg_wire_cstr(w, NULL);
  else hg_wire_str(w, url, len);
  const char *body = lua_tolstring(L, -1, &len);
  if (len == j->f_len[5] && memcmp(body, j->f[5], len) == 0) hg_wire_cstr(w, NULL);
  else hg_wire_str(w, body, len);
  lua_pop(L, 2);
  lua_pushliteral(L, "skip");
  int t = lua_rawget(L, idx);
  if (t == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
    const char *skip = lua_tolstring(L, -1, &len);
    hg_wire_str(w, skip, len);
  } else if (t != LUA_TSTRING && lua_toboolean(L, -1)) {
    hg_wire_cstr(w, "a transform plugin skipped it");
  } else {
    hg_wire_cstr(w, NULL);
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "headers");
  if (lua_rawget(L, idx) != LUA_TTABLE) {
    hg_wire_u32(w, 0);
    lua_pop(L, 1);
    return 0;
  }
  int h = lua_gettop(L);
  uint32_t n = 0;
  size_t bytes = 0;
  lua_pushnil(L);
  while (lua_next(L, h) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
      n++;
      bytes += lua_rawlen(L, -2) + (lua_type(L, -1) == LUA_TSTRING ? lua_rawlen(L, -1) : 32) + 4;
    }
    lua_pop(L, 1);
  }
  if (bytes > (64u << 10)) {
    snprintf(err, errlen, "transform: delivery.headers: more than 64 KiB of names and values");
    return -1;
  }
  if (n > 60) {
    snprintf(err, errlen, "transform: more than 60 request headers (the gateway adds 4 of its own, to 64)");
    return -1;
  }
  hg_wire_u32(w, n);
  lua_pushnil(L);
  while (lua_next(L, h) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
      const char *k = lua_tolstring(L, -2, &len);
      hg_wire_str(w, k, len);
      lua_pushvalue(L, -1); /* a number converts on the copy, not the key's value in next */
      const char *v = lua_tolstring(L, -1, &len);
      hg_wire_str(w, v, len);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* Runs job j; the answer goes into w (begun). */
static void run_job(job_t *j, hg_wire_out_t *w) {
  char err[512];
  uint64_t start = hg_now_ns();
  uint32_t status = HG_WIRE_OK;
  hg_wire_u32(w, j->id);
  size_t limit = j->memory < (64u << 10) ? (64u << 10) : j->memory;
  state_t *s = state_for(j->key, j->code, j->code_len, limit, (int)j->budget_ms, start, &status, err, sizeof(err));
  if (s == NULL) {
    hg_wire_u32(w, status);
    hg_wire_cstr(w, err);
    return;
  }
  lua_State *L = s->L;
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
  lua_pushcfunction(L, push_delivery);
  lua_pushlightuserdata(L, j);
  int st = lua_pcall(L, 1, 1, 0);
  if (st == LUA_OK) {
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);        /* [fn, delivery, fn, delivery] */
    st = lua_pcall(L, 1, 0, 0); /* [fn, delivery] */
  }
  if (st != LUA_OK || s->killed) {
    status = run_error(s, st, err, sizeof(err));
    hg_wire_u32(w, status);
    hg_wire_cstr(w, err);
    /* Whatever a stopped or failed run left behind (a half-built table in
     * a closure, a coroutine mid-way) goes with its state. */
    state_close(s);
    return;
  }
  hg_wire_out_t res; /* the result alone, appended to w once complete */
  memset(&res, 0, sizeof(res));
  lua_sethook(L, NULL, 0, 0);
  if (write_result(L, 2, j, &res, err, sizeof(err)) != 0 || res.failed) {
    if (res.failed) snprintf(err, sizeof(err), "transform: the result is too large for the sandbox");
    hg_wire_u32(w, HG_WIRE_SCRIPT_ERROR);
    hg_wire_cstr(w, err);
  } else {
    hg_wire_u32(w, HG_WIRE_OK);
    hg_wire_cstr(w, NULL);
    hg_wire_raw(w, res.p, res.len);
  }
  hg_wire_free(&res);
  lua_settop(L, 0);
}

/* --- the process ---------------------------------------------------------------- */

static int write_full(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

#if defined(__SANITIZE_ADDRESS__)
#define HG_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HG_UNDER_ASAN 1
#endif
#endif

/* The system calls a worker makes once it runs jobs: reading jobs and
 * writing answers on its socket, memory, the clock, randomness (the
 * generator's reseeding), and what abort and exit need. Anything else
 * fails with EPERM: a script has no way to make a system call, so this
 * only matters should a memory bug in Lua or in hookgate's pure functions
 * be turned into code running in the worker. Not under AddressSanitizer,
 * whose runtime needs far more. 0, or -1 if the filter could not load. */
static int allow_only_what_jobs_need(void) {
#ifdef HG_UNDER_ASAN
  return 0;
#else
  static const int calls[] = {
      SCMP_SYS(read),          SCMP_SYS(write),       SCMP_SYS(close),          SCMP_SYS(exit),
      SCMP_SYS(exit_group),    SCMP_SYS(brk),         SCMP_SYS(mmap),           SCMP_SYS(munmap),
      SCMP_SYS(mremap),        SCMP_SYS(madvise),     SCMP_SYS(mprotect),       SCMP_SYS(futex),
      SCMP_SYS(clock_gettime), SCMP_SYS(getrandom),   SCMP_SYS(rt_sigreturn),   SCMP_SYS(rt_sigprocmask),
      SCMP_SYS(rt_sigaction),  SCMP_SYS(sigaltstack), SCMP_SYS(getpid),         SCMP_SYS(gettid),
      SCMP_SYS(tgkill),        SCMP_SYS(fstat),       SCMP_SYS(newfstatat),     SCMP_SYS(lseek),
      SCMP_SYS(getppid),       SCMP_SYS(restart_syscall),
  };
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == NULL) return -1;
  int rc = 0;
  for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]) && rc == 0; i++)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
  if (rc == 0) rc = seccomp_load(ctx); /* sets no_new_privs first */
  seccomp_release(ctx);
  return rc == 0 ? 0 : -1;
#endif
}

/* Takes away what the process does not need (see the top of this file). */
static void confine(size_t address_space) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_DUMPABLE, 0);
  signal(SIGPIPE, SIG_IGN);
  close_range(3, ~0u, 0);
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
#ifndef HG_UNDER_ASAN
  if (address_space > 0) {
    struct rlimit as = {address_space, address_space};
    setrlimit(RLIMIT_AS, &as);
  }
#else
  (void)address_space;
#endif
}

int hg_sandbox_worker_main(int argc, char **argv) {
  size_t states_max = 16, address_space = 0;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--states") == 0) states_max = strtoull(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--address-space") == 0) address_space = strtoull(argv[i + 1], NULL, 10);
  }
  if (states_max < 1) states_max = 1;
  if (states_max > 4096) states_max = 4096;
  confine(address_space);
  /* The gateway may be gone already (it died between spawn and prctl). */
  if (getppid() == 1) return 1;
  max_states = states_max;
  states = calloc(max_states, sizeof(*states));
  if (states == NULL) return 1;
  /* What needs files or more system calls runs once before the filter:
   * the random generator's first seeding and OpenSSL's digests (which read
   * their configuration on first use). */
  unsigned char warm[32], digest[32];
  if (hg_random(warm, sizeof(warm)) != 0) return 1;
  hg_sha256(warm, sizeof(warm), digest);
  hg_hmac_sha256(warm, sizeof(warm), digest, sizeof(digest), warm);
  if (allow_only_what_jobs_need() != 0) {
    fputs("hookgate sandbox-worker: cannot load the system call filter\n", stderr);
    return 1;
  }
  const int fd = 0;
  /* Jobs come pipelined: read what is there, run every complete job, and
   * write the answers together when no complete job is left (or at once
   * after a job that took over a millisecond: the gateway's watchdog times
   * each job from the answer before it). */
  char *buf = NULL;
  size_t cap = 0, len = 0;
  hg_wire_out_t out;
  memset(&out, 0, sizeof(out));
  uint64_t last_flush = hg_now_ns();
  int ok = 1;
  while (ok) {
    size_t off = 0;
    while (ok && len - off >= 4) {
      uint32_t n;
      memcpy(&n, buf + off, 4);
      if (n > HG_WIRE_MAX_FRAME) {
        ok = 0;
        break;
      }
      if (len - off - 4 < n) break;
      hg_wire_in_t r = {buf + off + 4, n, 0, 0};
      off += 4 + (size_t)n;
      job_t j;
      hg_wire_out_t w;
      hg_wire_begin(&w);
      if (read_job(&r, &j) != 0) {
        hg_wire_u32(&w, j.id);
        hg_wire_u32(&w, HG_WIRE_SCRIPT_ERROR);
        hg_wire_cstr(&w, "transform: the sandbox got a malformed job");
      } else {
        run_job(&j, &w);
      }
      if (hg_wire_finish(&w) != 0) {
        /* The answer could not be built (memory): say so in a small one. */
        hg_wire_begin(&w);
        hg_wire_u32(&w, j.id);
        hg_wire_u32(&w, HG_WIRE_SCRIPT_ERROR);
        hg_wire_cstr(&w, "transform: the sandbox ran out of memory for the answer");
        if (hg_wire_finish(&w) != 0) {
          ok = 0;
          break;
        }
      }
      hg_wire_raw(&out, w.p, w.len);
      hg_wire_free(&w);
      uint64_t now = hg_now_ns();
      if (out.failed || out.len > (1u << 20) || now - last_flush > 1000000u) {
        if (out.failed || write_full(fd, out.p, out.len) != 0) ok = 0;
        out.len = 0;
        last_flush = now;
      }
    }
    if (off > 0) {
      memmove(buf, buf + off, len - off);
      len -= off;
    }
    if (!ok) break;
    if (out.len > 0) {
      if (write_full(fd, out.p, out.len) != 0) break;
      out.len = 0;
    }
    last_flush = hg_now_ns();
    /* Room for the next frame's header, or for all of it once known. */
    size_t want = len + 65536;
    if (len >= 4) {
      uint32_t n;
      memcpy(&n, buf, 4);
      if ((size_t)n + 4 > want) want = (size_t)n + 4;
    }
    if (want > cap) {
      char *p = realloc(buf, want);
      if (p == NULL) break;
      buf = p;
      cap = want;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break; /* the gateway closed: done */
    len += (size_t)r;
  }
  hg_wire_free(&out);
  for (size_t i = 0; i < n_states; i++) state_close(&states[i]);
  free(states);
  free(buf);
  return 0;
}
