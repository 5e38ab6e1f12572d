/* fuzz_config.c: the config reader (core/config.c) on arbitrary Lua text.
 *
 * Each input is written to a file and read with hg_config_load, as the
 * gateway reads its config. Checked, besides memory safety and leaks:
 * success leaves a usable config (a listener, a store path, a delivery
 * schedule, sane limits), failure returns HG_ECONFIG or HG_ENOMEM with a
 * message and a zeroed cfg (the contract: "cfg is then closed already").
 *
 * A config file is the operator's own program: an endless loop or a
 * gigabyte string in it is not a gateway bug, so this harness gives the
 * reader's Lua state a budget of instructions and memory. It does that by
 * defining luaL_newstate, which config.c calls (the executable's
 * definition comes before liblua's). */
#include "base/common.h"
#include "config/config.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LUA_MEMORY (32u << 20)
#define LUA_STEPS 200000 /* hook calls of 100 instructions each */

typedef struct budget {
  size_t used;
  long steps;
} budget_t;

static budget_t budget;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  budget_t *b = ud;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    b->used -= osize;
    free(ptr);
    return NULL;
  }
  if (nsize > osize && b->used + (nsize - osize) > LUA_MEMORY) return NULL;
  void *np = realloc(ptr, nsize);
  if (np != NULL) b->used = b->used - osize + nsize;
  return np;
}

static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  /* Past the budget every hook call raises, so a pcall in the file cannot
   * swallow the error for long. */
  if (++budget.steps > LUA_STEPS) luaL_error(L, "fuzz: instruction budget exhausted");
}

static int panic(lua_State *L) {
  fprintf(stderr, "fuzz_config: Lua panic: %s\n", lua_tostring(L, -1));
  abort();
}

lua_State *luaL_newstate(void) {
  budget.used = 0;
  budget.steps = 0;
  lua_State *L = lua_newstate(limited_alloc, &budget);
  if (L != NULL) {
    lua_atpanic(L, panic);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 100);
  }
  return L;
}

static char path[256];

static void cleanup(void) {
  if (path[0]) unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (path[0] == '\0') {
    const char *tmp = getenv("HG_FUZZ_TMP") ? getenv("HG_FUZZ_TMP") : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/hg-fuzz-config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    atexit(cleanup);
    /* The environment overrides the file: keep the host's out of it. */
    static const char *const vars[] = {"HOOKGATE_LISTEN", "HOOKGATE_STORE", "HOOKGATE_ADMIN_KEY", "HOOKGATE_LOG_LEVEL",
                                       "HOOKGATE_LOG_FORMAT"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) unsetenv(vars[i]);
  }
  FILE *f = fopen(path, "wb");
  if (f == NULL) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);

  hg_config_t cfg;
  char err[512];
  memset(err, 'x', sizeof(err));
  int r = hg_config_load(&cfg, path, err, sizeof(err));
  if (r == 0) {
    if (cfg.listen.n == 0 && cfg.tls_listen == NULL) abort();
    for (size_t i = 0; i < cfg.listen.n; i++)
      if (cfg.listen.items[i] == NULL) abort();
    if (cfg.store == NULL || cfg.lua_lib_path == NULL || cfg.path == NULL || strcmp(cfg.path, path) != 0) abort();
    if (cfg.schedule == NULL || cfg.n_schedule == 0) abort();
    if (cfg.tls_listen && (cfg.tls_cert == NULL || cfg.tls_key == NULL)) abort();
    if (cfg.admin_key && strlen(cfg.admin_key) < 16) abort();
    hg_config_close(&cfg);
  } else {
    if (r != HG_ECONFIG && r != HG_ENOMEM) abort();
    if (strnlen(err, sizeof(err)) == sizeof(err) || err[0] == '\0') abort();
    static const hg_config_t zero;
    if (memcmp(&cfg, &zero, sizeof(cfg)) != 0) {
      fprintf(stderr, "fuzz_config: a failed load left cfg not zeroed (%s)\n", err);
      abort();
    }
  }
  return 0;
}
