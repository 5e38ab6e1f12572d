/* plugins.c: a generation's life — hg_lua_new builds it (a state from
 * vm.c, then the hookgate Lua library, every plugins/<name>/init.lua, the
 * global bindings), hg_lua_start and hg_lua_stop start and stop its timers
 * and runs — and what the API asks of the plugins: per-webhook bindings
 * checked, redacted, described; which phases and routes they define. */
#include "lua/internal.h"

#include "base/common.h"
#include "base/log.h"
#include "lua/marshal.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* Loads into rt's fresh state: the hookgate library (schema.lua,
 * runtime.lua), the plugins of every folder of opts, and the global
 * bindings. Problems go to errors. */
static void load(hg_lua_t *rt, const hg_lua_opts_t *opts, json_t *errors) {
  lua_State *L = rt->L;
  /* host: what runtime.lua gets from C. */
  if (load_lib(L, opts->lib_path, "schema", errors) != 0) return;
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    add_error(errors, "%s", lua_tostring(L, -1));
    return;
  }
  int schema_idx = lua_gettop(L);
  hg_lua__open_hookgate(L);
  int hg_idx = lua_gettop(L);
  lua_newtable(L); /* the sentinel: a unique table */
  lua_pushvalue(L, -1);
  rt->sentinel = luaL_ref(L, LUA_REGISTRYINDEX);
  int sentinel_idx = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
  lua_setfield(L, schema_idx, "array_mt");
  hg_lua__lazy_open(L);
  if (load_lib(L, opts->lib_path, "runtime", errors) != 0) return;
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
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_marshal_array_mt_key);
  lua_setfield(L, -2, "json_array_mt");
  lua_pushcfunction(L, set_plugin);
  lua_setfield(L, -2, "set_plugin");
  lua_pushcfunction(L, hg_lua__lazy_env);
  lua_setfield(L, -2, "lazy_env");
  lua_pushstring(L, opts->lib_path);
  lua_setfield(L, -2, "lib_path");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    add_error(errors, "%s", lua_tostring(L, -1));
    return;
  }
  lua_getfield(L, -1, "run");
  rt->fn_run = luaL_ref(L, LUA_REGISTRYINDEX);
  rt->R = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);

  for (size_t i = 0; i < opts->n_plugin_paths; i++) load_dir(rt, opts->plugin_paths[i], errors);

  /* Global bindings from the config file: {"name": {config}, ...}. */
  if (opts->plugins_json != NULL) {
    json_error_t jerr;
    json_t *bindings = json_loads(opts->plugins_json, 0, &jerr);
    const char *name;
    json_t *conf;
    json_object_foreach(bindings, name, conf) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
      lua_getfield(L, -1, "bind_global");
      lua_pushstring(L, name);
      if (json_is_true(conf)) lua_pushnil(L); /* plugins = { name = true }: defaults */
      else hg_marshal_push(L, conf);
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
   * pure phases keep the global bindings' call list (see walk_global), and
   * so does route (see route_body in run.c). */
  for (int p = 0; p < HG_PHASE_COUNT; p++) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
    lua_getfield(L, -1, "has");
    lua_pushstring(L, hg_phase_name((hg_phase_t)p));
    lua_pushnil(L);
    rt->has[p] = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    lua_settop(L, 0);
    rt->calls[p] = LUA_NOREF;
    if (p == HG_PHASE_TRANSFORM || p == HG_PHASE_SIGN || p == HG_PHASE_RETRY || p == HG_PHASE_ROUTE) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
      lua_getfield(L, -1, "calls");
      lua_pushstring(L, hg_phase_name((hg_phase_t)p));
      if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) rt->calls[p] = luaL_ref(L, LUA_REGISTRYINDEX);
      lua_settop(L, 0);
    }
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "routes");
  lua_pushnil(L);
  rt->has_routes = lua_next(L, -2) != 0;
  lua_settop(L, 0);
}

int hg_lua_new(hg_lua_t **out, const hg_lua_opts_t *opts, json_t **errors_out) {
  json_t *errors = json_array();
  hg_lua_t *rt = NULL;
  if (errors == NULL || hg_lua__vm_open(&rt, opts) != 0) {
    json_decref(errors);
    return HG_ENOMEM;
  }
  load(rt, opts, errors);
  lua_settop(rt->L, 0);
  if (json_array_size(errors) > 0) {
    *errors_out = errors;
    hg_lua__vm_discard(rt);
    return HG_ECONFIG;
  }
  json_decref(errors);
  *errors_out = NULL;
  *out = rt;
  return 0;
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
    if (conf) hg_marshal_push(L, conf);
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
  json_t *order = hg_marshal_to_json(L, -1, err, sizeof(err));
  lua_getfield(L, top + 1, "available");
  lua_call(L, 0, 1);
  json_t *avail = hg_marshal_to_json(L, -1, err, sizeof(err));
  lua_settop(L, top);
  return json_pack("{s:o,s:o}", "plugins", order ? order : json_array(), "available", avail ? avail : json_array());
}


json_t *hg_lua_redact_bindings(hg_lua_t *rt, json_t *plugins) {
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  char err[128];
  json_t *out = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->R);
  lua_getfield(L, -1, "redact_bindings");
  hg_marshal_push(L, plugins);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) out = hg_marshal_to_json(L, -1, err, sizeof(err));
  lua_settop(L, top);
  /* Never fall back to the unredacted configs. */
  return out ? out : json_array();
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

/* --- timers --------------------------------------------------------------- */

static void timer_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)status, (void)arg, (void)res, (void)res2, (void)err, (void)ud;
}

static void plugin_timer_cb(uv_timer_t *t) {
  hg_lua_t *rt = t->data;
  size_t idx = (size_t)(t - rt->timers);
  json_t *arg = json_pack("{s:I}", "index", (json_int_t)idx + 1);
  if (hg_lua__start_run(rt, RUN_TIMER, HG_PHASE_AFTER, "timer", NULL, NULL, arg, timer_done, NULL) != 0)
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

void hg_lua_stop(hg_lua_t *rt) {
  hg_lua__runs_stop(rt);
  while (rt->utimers) hg_lua__utimer_close(rt->utimers);
  for (size_t i = 0; i < rt->n_timers; i++) uv_close((uv_handle_t *)&rt->timers[i], plugin_timer_close_cb);
  rt->n_timers = 0;
}

void hg_lua_shutdown(hg_lua_t *rt) {
  hg_lua_stop(rt);
  hg_lua__runs_wake(rt);
}
