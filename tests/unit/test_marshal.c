/* test_marshal.c: the one JSON <-> Lua converter (core/lua/marshal.c), and
 * the config file's plugin settings, which go through it. */
#include "base/common.h"
#include "config/config.h"
#include "hgtest.h"
#include "lua/marshal.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs chunk (which returns one value) in L and converts its result. */
static json_t *convert(lua_State *L, const char *chunk, char *err, size_t errlen) {
  err[0] = '\0';
  if (luaL_dostring(L, chunk) != LUA_OK) {
    snprintf(err, errlen, "chunk: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return NULL;
  }
  int top = lua_gettop(L);
  json_t *j = hg_marshal_to_json(L, -1, err, errlen);
  CHECK_EQ_INT(lua_gettop(L), top); /* the stack as it was */
  lua_settop(L, 0);
  return j;
}

static int dumps_equal(json_t *j, const char *want) {
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
  int eq = s && strcmp(s, want) == 0;
  if (!eq) fprintf(stderr, "got %s, want %s\n", s ? s : "(null)", want);
  free(s);
  return eq;
}

static void round_trip(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  hg_marshal_open(L);
  json_t *in = json_loads("{\"a\":[1,2.5,\"x\",null,true],\"b\":{},\"c\":[]}", 0, NULL);
  hg_marshal_push(L, in);
  char err[128] = "";
  json_t *out = hg_marshal_to_json(L, -1, err, sizeof(err));
  CHECK(json_equal(in, out));
  lua_setglobal(L, "v");
  /* The empty array keeps its metatable; nulls are json.null, not nil. */
  json_t *j = convert(L, "return { #v.a, getmetatable(v.c), type(v.a[4]) }", err, sizeof(err));
  CHECK(dumps_equal(j, "[5,\"json array\",\"userdata\"]"));
  json_decref(j);
  json_decref(in);
  json_decref(out);
  lua_close(L);
}

static void rules(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  hg_marshal_open(L);
  char err[128];
  json_t *j;
  j = convert(L, "return { 1, 2, 3 }", err, sizeof(err));
  CHECK(dumps_equal(j, "[1,2,3]"));
  json_decref(j);
  j = convert(L, "return { [1] = 1, [3] = 3 }", err, sizeof(err)); /* a hole: not an array */
  CHECK(j == NULL && strstr(err, "object keys must be strings") != NULL);
  j = convert(L, "return {}", err, sizeof(err));
  CHECK(dumps_equal(j, "{}"));
  json_decref(j);
  j = convert(L, "return { n = 3, f = 1.5, s = 'a\\0b' }", err, sizeof(err));
  CHECK(dumps_equal(j, "{\"f\":1.5,\"n\":3,\"s\":\"a\\u0000b\"}"));
  json_decref(j);
  j = convert(L, "return { x = 0/0 }", err, sizeof(err));
  CHECK(j == NULL && strcmp(err, "NaN and infinity have no JSON form") == 0);
  j = convert(L, "return { x = math.huge }", err, sizeof(err));
  CHECK(j == NULL && strcmp(err, "NaN and infinity have no JSON form") == 0);
  j = convert(L, "return { f = print }", err, sizeof(err));
  CHECK(j == NULL && strcmp(err, "a function has no JSON form") == 0);
  j = convert(L, "return '\\xff'", err, sizeof(err));
  CHECK(j == NULL && strcmp(err, "a string is not valid UTF-8") == 0);
  /* Exactly HG_MARSHAL_MAX_DEPTH tables deep converts; one more does not. */
  j = convert(L, "local t = 1 for i = 1, 64 do t = { t } end return t", err, sizeof(err));
  CHECK(j != NULL);
  json_decref(j);
  j = convert(L, "local t = 1 for i = 1, 65 do t = { t } end return t", err, sizeof(err));
  CHECK(j == NULL && strstr(err, "nested too deep") != NULL);
  j = convert(L, "local t = {} t.self = t return t", err, sizeof(err));
  CHECK(j == NULL && strstr(err, "(or a cycle)") != NULL);
  /* Read raw: no metamethod runs (this may be outside a protected call). */
  j = convert(L, "return setmetatable({ a = 1 }, { __index = error, __pairs = error, __len = error })", err,
              sizeof(err));
  CHECK(dumps_equal(j, "{\"a\":1}"));
  json_decref(j);
  lua_close(L);
}

static char dir[] = "/tmp/hg-marshal-XXXXXX";

static int load_cfg(const char *text, hg_config_t *cfg, char *err, size_t errlen) {
  char path[256];
  snprintf(path, sizeof(path), "%s/c.lua", dir);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return hg_config_load(cfg, path, err, errlen);
}

/* The config file's plugin settings follow the same rules. Before the
 * converter was shared: NaN failed with no reason given, nesting stopped at
 * 32 levels, and a string stopped at its first NUL byte. */
static void config_settings(void) {
  hg_config_t cfg;
  char err[256] = "";
  CHECK_EQ_INT(load_cfg("plugins = { p = { x = 0/0 } }\n", &cfg, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "plugins: NaN and infinity have no JSON form") != NULL);
  CHECK_EQ_INT(load_cfg("local t = 1 for i = 1, 40 do t = { t } end\nplugins = { p = { deep = t } }\n", &cfg, err,
                        sizeof(err)),
               0);
  hg_config_close(&cfg);
  CHECK_EQ_INT(load_cfg("plugins = { p = { s = 'a\\0b', list = { 1, 2 } } }\n", &cfg, err, sizeof(err)), 0);
  json_t *got = json_loads(cfg.plugins_json, JSON_ALLOW_NUL, NULL);
  CHECK(dumps_equal(got, "{\"p\":{\"list\":[1,2],\"s\":\"a\\u0000b\"}}"));
  json_decref(got);
  hg_config_close(&cfg);
  CHECK_EQ_INT(load_cfg("plugins = { p = { f = print } }\n", &cfg, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "plugins: a function has no JSON form") != NULL);
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 1;
  RUN(round_trip);
  RUN(rules);
  RUN(config_settings);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return HGT_DONE();
}
