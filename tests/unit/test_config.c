#include "base/common.h"
#include "config/config.h"
#include "hgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/hg-config-XXXXXX";

static const char *write_cfg(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

static void defaults(void) {
  hg_config_t cfg;
  char err[256];
  CHECK_EQ_INT(hg_config_load(&cfg, NULL, err, sizeof(err)), 0);
  CHECK_EQ_INT(cfg.listen.n, 1);
  CHECK_EQ_STR(cfg.listen.items[0], "127.0.0.1:8080");
  CHECK_EQ_STR(cfg.store, "./data/hookgate.db");
  CHECK_EQ_INT(cfg.http.max_body, 1 << 20);
  CHECK_EQ_INT(cfg.http.header_timeout_ms, 10000);
  CHECK_EQ_INT(cfg.http.max_headers, 100);
  CHECK_EQ_INT(cfg.retention_events_ms, 30LL * 86400 * 1000);
  CHECK_EQ_INT(cfg.retention_deliveries_ms, 30LL * 86400 * 1000);
  CHECK_EQ_INT(cfg.retention_interval_ms, 600000);
  hg_config_close(&cfg);
}

/* Durations: a number and one unit, or seconds; 0 keeps forever. */
static void retention_durations(void) {
  hg_config_t cfg;
  char err[256];
  const char *p = write_cfg("ret.lua", "retention = { events = '1.5h', deliveries = 0, interval = 90 }\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), 0);
  CHECK_EQ_INT(cfg.retention_events_ms, 5400000);
  CHECK_EQ_INT(cfg.retention_deliveries_ms, 0);
  CHECK_EQ_INT(cfg.retention_interval_ms, 90000);
  hg_config_close(&cfg);
  p = write_cfg("ret2.lua", "retention = { deliveries = '2w', events = '45s' }\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), 0);
  CHECK_EQ_INT(cfg.retention_deliveries_ms, 14LL * 86400 * 1000);
  CHECK_EQ_INT(cfg.retention_events_ms, 45000);
  hg_config_close(&cfg);
  static const char *const bad[] = {"'30x'", "'-1d'", "'d'", "'1 d'", "'1dd'", "-5", "'0.2s'", "'inf'", "{}"};
  for (size_t i = 0; i < HG_ARRAY_LEN(bad); i++) {
    char text[128];
    snprintf(text, sizeof(text), "retention = {\n  events = %s,\n}\n", bad[i]);
    p = write_cfg("ret3.lua", text);
    CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
    CHECK(strstr(err, "ret3.lua:2: retention.events: must be") != NULL);
  }
}

static void full_file(void) {
  const char *p = write_cfg("full.lua", "listen = { '127.0.0.1:9000', '[::1]:9000' }\n"
                                        "store = '/tmp/x.db'\n"
                                        "log = { level = 'debug', format = 'json', access = false }\n"
                                        "http = { max_body = 2048, header_timeout = 0.5, max_headers = 20 }\n"
                                        "webhooks = { allow_http = true, event_types = { 'invoice.paid' } }\n");
  hg_config_t cfg;
  char err[256] = "";
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), 0);
  CHECK_EQ_INT(cfg.listen.n, 2);
  CHECK_EQ_STR(cfg.listen.items[1], "[::1]:9000");
  CHECK_EQ_INT(cfg.log_level, HG_LOG_DEBUG);
  CHECK_EQ_INT(cfg.log_format, HG_LOG_JSON);
  CHECK_EQ_INT(cfg.access_log, 0);
  CHECK_EQ_INT(cfg.http.max_body, 2048);
  CHECK_EQ_INT(cfg.http.header_timeout_ms, 500);
  CHECK_EQ_INT(cfg.http.max_headers, 20);
  CHECK_EQ_INT(cfg.allow_http_urls, 1);
  CHECK_EQ_INT(cfg.event_types.n, 1);
  hg_config_close(&cfg);
}

static void unknown_key_names_line(void) {
  const char *p = write_cfg("bad.lua", "store = 'x.db'\n\nhttp = {\n  max_body = 5,\n  max_bdy = 5,\n  idle_timeout = 3,\n}\n");
  hg_config_t cfg;
  char err[256] = "", want[300];
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  snprintf(want, sizeof(want), "%s:5: http.max_bdy: unknown key", p);
  CHECK(strncmp(err, want, strlen(want)) == 0);
  if (strncmp(err, want, strlen(want)) != 0) fprintf(stderr, "  got: %s\n", err);

  p = write_cfg("bad2.lua", "-- comment\nlistne = '1.2.3.4:5'\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  snprintf(want, sizeof(want), "%s:2: listne: unknown key", p);
  CHECK(strncmp(err, want, strlen(want)) == 0);
}

static void type_errors_and_syntax(void) {
  hg_config_t cfg;
  char err[256] = "";
  const char *p = write_cfg("t.lua", "http = { max_body = 'big' }\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, ":1: http.max_body: must be a number") != NULL);
  p = write_cfg("s.lua", "store = \n\n= 3\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "s.lua:3:") != NULL);
  p = write_cfg("r.lua", "store = nil .. 'x'\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "r.lua:1:") != NULL);
  p = write_cfg("io.lua", "store = io.open('/etc/passwd')\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  p = write_cfg("lvl.lua", "log = { level = 'loud' }\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "log.level") != NULL);
  p = write_cfg("tls.lua", "tls = { listen = '127.0.0.1:8443' }\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "cert and key") != NULL);
}

/* Found by tests/fuzz/fuzz_config.c: string.rep of an empty string a
 * billion times spun for seconds (its loop runs per repetition, and
 * allocates nothing a limit could stop). Now bounded, and named. */
static void string_rep_bounded(void) {
  hg_config_t cfg;
  char err[256] = "";
  const char *p = write_cfg("rep.lua", "x = string.rep('', 1 << 30)\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "rep.lua:1: string.rep: a result over 16 MiB") != NULL);
  p = write_cfg("rep2.lua", "store = ('x'):rep(1 << 30)\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "rep2.lua:1: string.rep") != NULL);
  /* The ordinary uses still work: the store path built with rep. */
  p = write_cfg("rep3.lua", "store = '/tmp/' .. ('ab'):rep(3, '-') .. string.rep('c', 2) .. '.db'\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), 0);
  CHECK_EQ_STR(cfg.store, "/tmp/ab-ab-abcc.db");
  hg_config_close(&cfg);
}

/* Found by tests/fuzz/fuzz_config.c: the message named the plugin after
 * the JSON holding its name was freed (a use after free under ASan). */
static void plugin_not_a_table(void) {
  hg_config_t cfg;
  char err[256] = "";
  const char *p = write_cfg("plug.lua", "plugins = { [\"mat\"] = { \"c#= h ops\" } }\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "plug.lua:1: plugins: mat: must be a table of settings (or true)") != NULL);
  p = write_cfg("plug2.lua", "plugins = { ['slack-format'] = true, other = 5 }\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "plugins: other: must be a table of settings (or true)") != NULL);
}

/* Found by tests/fuzz/fuzz_config.c: a nested key with an empty name
 * (webhooks = { [""] = ... }) made the search for its line read past the
 * line's buffer (a stack overflow under ASan). */
static void empty_nested_key(void) {
  hg_config_t cfg;
  char err[256] = "";
  const char *p = write_cfg("empty.lua", "store = 'x.db'\nwebhooks = {\n  [\"\"] = 1,\n}\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "empty.lua:4: webhooks.: unknown key") != NULL);
}

/* A list with a __len or __index metamethod that raises: read raw, it
 * is refused as config (before: luaL_len ran the metamethod outside a
 * protected call, a Lua panic that aborted the process). A plugin setting
 * nested deeper than the limit is refused, the Lua stack grown as it goes. */
static void metatables_and_depth(void) {
  hg_config_t cfg;
  char err[256] = "";
  const char *p = write_cfg("len.lua", "listen = setmetatable({}, { __len = function() error('len ran') end,"
                                       " __index = function() error('index ran') end })\n");
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "len ran") == NULL && strstr(err, "index ran") == NULL);
  p = write_cfg("deep.lua", "local t = 1 for i = 1, 200 do t = { t } end\nplugins = { a = t }\n");
  err[0] = '\0';
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "nested too deep") != NULL);
}

static void env_overrides(void) {
  const char *p = write_cfg("e.lua", "store = 'file.db'\nadmin_key = env('HG_TEST_KEY', 'fallback-key-0123456789')\n");
  setenv("HOOKGATE_LISTEN", "127.0.0.1:0,[::1]:0", 1);
  setenv("HOOKGATE_STORE", "/tmp/env.db", 1);
  setenv("HOOKGATE_LOG_LEVEL", "warn", 1);
  hg_config_t cfg;
  char err[256] = "";
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), 0);
  CHECK_EQ_INT(cfg.listen.n, 2);
  CHECK_EQ_STR(cfg.store, "/tmp/env.db");
  CHECK_EQ_STR(cfg.admin_key, "fallback-key-0123456789");
  CHECK_EQ_INT(cfg.log_level, HG_LOG_WARN);
  hg_config_close(&cfg);
  setenv("HOOKGATE_LOG_LEVEL", "chatty", 1);
  CHECK_EQ_INT(hg_config_load(&cfg, p, err, sizeof(err)), HG_ECONFIG);
  CHECK(strstr(err, "HOOKGATE_LOG_LEVEL") != NULL);
  unsetenv("HOOKGATE_LISTEN");
  unsetenv("HOOKGATE_STORE");
  unsetenv("HOOKGATE_LOG_LEVEL");
}

int main(void) {
  if (mkdtemp(dir) == NULL) return 1;
  RUN(defaults);
  RUN(retention_durations);
  RUN(full_file);
  RUN(unknown_key_names_line);
  RUN(type_errors_and_syntax);
  RUN(string_rep_bounded);
  RUN(plugin_not_a_table);
  RUN(empty_nested_key);
  RUN(metatables_and_depth);
  RUN(env_overrides);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return HGT_DONE();
}
