/* pure.c: the pure phases (transform, sign, retry), run synchronously on
 * the VM's main thread with no I/O, and the delivery table transform and
 * sign see without JSON in between (this runs for every delivery). */
#include "lua/internal.h"

#include "base/buf.h"
#include "base/common.h"
#include "lua/marshal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  lua_pushcfunction(L, hg_lua__msgh);
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
  if (run->killed) lua_sethook(L, hg_lua__hook, LUA_MASKCOUNT, 1000);
  if (run->killed && status != LUA_OK) {
    /* The message handler may have found no memory (a killed run gets
     * none): report the budget. */
    lua_pop(L, 1);
    lua_pushstring(L, run->kill_msg);
    status = LUA_ERRRUN;
  }
  if (status != LUA_OK) hg_lua__report_error(L, status, rt->plugin, hg_phase_name(phase), err, errlen);
  memcpy(rt->plugin, outer, sizeof(outer));
  if (status != LUA_OK) return HG_EINVAL;
  lua_remove(L, msgh); /* what push left moves down to where it was */
  return 0;
}

static void push_json_arg(lua_State *L, void *ud) { hg_marshal_push(L, ud); }

int hg_lua_call(hg_lua_t *rt, hg_phase_t phase, const char *bindings, json_t **arg, json_t **result, char *err,
                size_t errlen) {
  lua_State *L = rt->L;
  uint64_t t0 = hg_now_ns();
  int top = lua_gettop(L), arg_idx = top + 1;
  *result = NULL;
  int r = call_pure(rt, phase, bindings, push_json_arg, *arg, err, errlen);
  if (r == 0) {
    char jerr[128];
    if (!lua_isnil(L, arg_idx + 1)) *result = hg_marshal_to_json(L, arg_idx + 1, jerr, sizeof(jerr));
    json_t *out = hg_marshal_to_json(L, arg_idx, jerr, sizeof(jerr));
    if (out != NULL) {
      json_decref(*arg);
      *arg = out;
    } else {
      snprintf(err, errlen, "phase %s: the argument table cannot be read back: %s", hg_phase_name(phase), jerr);
      r = HG_EINVAL;
    }
  }
  lua_settop(L, top);
  hg_lua__phase_count(phase, hg_now_ns() - t0);
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

/* The delivery table, filled on first use (lazy.c): a plugin that never
 * looks at it costs neither the strings nor the table's fields. */
static void push_delivery(lua_State *L, void *ud) { hg_lua__push_delivery(L, ud); }

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

/* Reads url, body, headers and skip back from the table at idx. An
 * unchanged url or body (the same bytes as d's) is not copied again; a
 * table nobody looked at (see lazy.c) holds what d holds: nothing to read. */
static int read_delivery(lua_State *L, int idx, hg_lua_delivery_t *d, char *err, size_t errlen) {
  size_t len;
  const char *s;
  if (hg_lua__untouched(L, idx)) return 0;
  lua_getfield(L, idx, "url");
  if (lua_type(L, -1) != LUA_TSTRING) {
    snprintf(err, errlen, "delivery.url must be a string");
    return HG_EINVAL;
  }
  s = lua_tolstring(L, -1, &len);
  if ((d->url == NULL || strlen(d->url) != len || memcmp(s, d->url, len) != 0) &&
      replace_field(&d->url, &d->own_url, s, len) != 0)
    return HG_ENOMEM;
  lua_getfield(L, idx, "body");
  if (lua_type(L, -1) != LUA_TSTRING) {
    snprintf(err, errlen, "delivery.body must be a string");
    return HG_EINVAL;
  }
  /* The body's exact bytes: no UTF-8 check, no copy through JSON. */
  s = lua_tolstring(L, -1, &len);
  if (len != d->body_len || (len > 0 && memcmp(s, d->body, len) != 0)) {
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
    /* The array's old capacity is not known: the first header reallocates
     * it, the next ones double it. */
    size_t cap = 0;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
        if (d->n_headers == cap && hg_grow(&d->headers, &cap, d->n_headers + 1, sizeof(*d->headers), 8) != 0) {
          lua_pop(L, 2);
          return HG_ENOMEM;
        }
        hg_lua_header_t *h = d->headers;
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
  /* The table is filled from d until its phase ends (lazy.c): it ends now,
   * before d changes. The table sits at top + 1, or above the message
   * handler after a script error. */
  hg_lua__seal_delivery(L, r == 0 ? top + 1 : top + 2, d);
  if (r == 0) {
    char why[96];
    /* top + 1: the table; top + 2: the result. */
    r = read_delivery(L, top + 1, d, why, sizeof(why));
    if (r == HG_EINVAL) snprintf(err, errlen, "plugin (%s): %s", hg_phase_name(phase), why);
  }
  lua_settop(L, top);
  hg_lua__phase_count(phase, hg_now_ns() - t0);
  return r;
}
