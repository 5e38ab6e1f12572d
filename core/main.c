/* main.c: the hookgate command line. */
#include "app.h"
#include "base/common.h"
#include "config/config.h"
#include "base/crypto.h"
#include "store/copy.h"
#include "store/keys.h"
#include "store/purge.h"
#include "pipeline/event_types.h"
#include "base/log.h"
#include "lua/runtime.h"
#include "net/ssrf.h"
#include "net/router.h"
#include "sandbox/worker.h"
#include "store/store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "hookgate " HG_VERSION ": a webhook gateway\n"
    "\n"
    "Usage:\n"
    "  hookgate serve [-c FILE]          run the gateway\n"
    "  hookgate check -c FILE            validate a config file (exit 1 with FILE:LINE on error)\n"
    "  hookgate keys create [-c FILE] --scopes S[,S...] [--org ID]\n"
    "                                    create an API key; prints the key alone, once\n"
    "  hookgate keys list [-c FILE]      list API keys (never the keys themselves)\n"
    "  hookgate keys revoke [-c FILE] ID revoke an API key\n"
    "  hookgate store copy --from FILE.db --to postgresql://...\n"
    "                                    copy a SQLite store into an empty PostgreSQL database\n"
    "  hookgate store purge --before DATE [-c FILE | --store ADDRESS]\n"
    "                                    delete events and deliveries created before DATE\n"
    "                                    (ISO 8601, e.g. 2026-11-01 or 2026-11-01T00:00:00Z),\n"
    "                                    as retention does: never a pending delivery or its event\n"
    "  hookgate routes [--json]          list the HTTP API's routes (--json: with the scopes each needs)\n"
    "  hookgate version                  print the version\n"
    "  hookgate --help                   this text\n"
    "\n"
    "Scopes: webhooks:read, webhooks:write, events:publish, admin.\n"
    "Environment: HOOKGATE_LISTEN, HOOKGATE_STORE, HOOKGATE_ADMIN_KEY, HOOKGATE_LOG_LEVEL,\n"
    "HOOKGATE_LOG_FORMAT override the config file.\n";

typedef struct args {
  const char *config;
  const char *scopes;
  const char *org;
  const char *from;
  const char *to;
  const char *before;
  const char *store;
  int json;
  int optind;
} args_t;

static int parse_args(int argc, char **argv, args_t *a) {
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},
      {"scopes", required_argument, NULL, 's'},
      {"org", required_argument, NULL, 'o'},
      {"from", required_argument, NULL, 'F'},
      {"to", required_argument, NULL, 'T'},
      {"before", required_argument, NULL, 'B'},
      {"store", required_argument, NULL, 'S'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(a, 0, sizeof(*a));
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': a->config = optarg; break;
    case 's': a->scopes = optarg; break;
    case 'o': a->org = optarg; break;
    case 'F': a->from = optarg; break;
    case 'T': a->to = optarg; break;
    case 'B': a->before = optarg; break;
    case 'S': a->store = optarg; break;
    case 'j': a->json = 1; break;
    case 'h': fputs(usage, stdout); exit(0);
    default: fputs(usage, stderr); return -1;
    }
  }
  a->optind = optind;
  return 0;
}

static int load_config(const args_t *a, hg_config_t *cfg) {
  char err[512];
  if (hg_config_load(cfg, a->config, err, sizeof(err)) != 0) {
    fprintf(stderr, "hookgate: %s\n", err);
    return -1;
  }
  return 0;
}

static int cmd_serve(const args_t *a) {
  hg_config_t cfg;
  if (load_config(a, &cfg) != 0) return 1;
  hg_log_setup(cfg.log_level, cfg.log_format, 2);
  int code = hg_app_run(&cfg);
  hg_config_close(&cfg);
  return code;
}

/* One problem `hookgate check` found after loading, about key of the
 * config: "hookgate: FILE:LINE: KEY: problem", the line found by
 * hg_config_key_line (without ":LINE" when the file does not set key). */
static void check_problem(const hg_config_t *cfg, const char *key, const char *problem) {
  int line = hg_config_key_line(cfg, key);
  if (line > 0) fprintf(stderr, "hookgate: %s:%d: %s: %s\n", cfg->path, line, key, problem);
  else fprintf(stderr, "hookgate: %s: %s: %s\n", cfg->path, key, problem);
}

/* The line of a plugin's own file that a load error is about, when the
 * message names what ("unknown key 'x'", "version must be a string", ...):
 * the first line assigning that name; 0 if none. */
static int plugin_problem_line(const char *file, const char *what) {
  char name[64];
  const char *q = strstr(what, "unknown key '");
  size_t n;
  if (q != NULL) {
    q += strlen("unknown key '");
    n = strcspn(q, "'");
  } else {
    q = what;
    n = strspn(q, "abcdefghijklmnopqrstuvwxyz_");
    if (strncmp(q + n, " must ", 6) != 0 && strncmp(q + n, "[", 1) != 0 && strncmp(q + n, ":", 1) != 0) return 0;
  }
  if (n == 0 || n >= sizeof(name)) return 0;
  memcpy(name, q, n);
  name[n] = '\0';
  return hg_config_text_key_line(file, name, 1);
}

/* One error of loading the plugins and checking the global bindings
 * (hg_lua_new's list), placed where it can be:
 *   "plugins.NAME.FIELD: problem"      -> the config file's line of that key;
 *   "lua.plugin_paths: ..." and co.    -> the config file's line of that key;
 *   "cannot read LIB/hookgate/X.lua"   -> the line of lua.lib_path;
 *   "plugin NAME: NAME/init.lua:LINE: problem" (a syntax or run error, Lua
 *     names the chunk by the plugin, not its path)
 *                                      -> "DIR/NAME/init.lua:LINE: plugin NAME: problem";
 *   "plugin NAME: /path/init.lua: problem" (a bad plugin table)
 *                                      -> "/path/init.lua:LINE: plugin NAME: problem",
 *     the line of the key it is about when the text has it.
 * Anything else is printed after the config file's name, as before. */
static void check_lua_error(const hg_config_t *cfg, const char *e) {
  if (strncmp(e, "plugins.", 8) == 0 || strncmp(e, "lua.", 4) == 0) {
    const char *sep = strstr(e, ": ");
    char key[256];
    if (sep != NULL && (size_t)(sep - e) < sizeof(key)) {
      memcpy(key, e, (size_t)(sep - e));
      key[sep - e] = '\0';
      check_problem(cfg, key, sep + 2);
      return;
    }
  }
  /* "cannot read LIB/hookgate/NAME.lua": the library folder is wrong. */
  if (strncmp(e, "cannot read ", 12) == 0 && strstr(e, "/hookgate/") != NULL) {
    check_problem(cfg, "lua.lib_path", e);
    return;
  }
  if (strncmp(e, "plugin ", 7) == 0) {
    const char *name = e + 7, *sep = strstr(name, ": ");
    char plugin[256];
    if (sep != NULL && (size_t)(sep - name) < sizeof(plugin)) {
      memcpy(plugin, name, (size_t)(sep - name));
      plugin[sep - name] = '\0';
      const char *rest = sep + 2;
      size_t plen = strlen(plugin);
      /* "NAME/init.lua:LINE: problem": the first folder of lua.plugin_paths
       * that holds the plugin, as the loader found it. */
      if (strncmp(rest, plugin, plen) == 0 && strncmp(rest + plen, "/init.lua:", 10) == 0) {
        const char *lineno = rest + plen + 10;
        size_t digits = strspn(lineno, "0123456789");
        if (digits > 0 && lineno[digits] == ':') {
          for (size_t i = 0; i < cfg->lua_plugin_paths.n; i++) {
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s/init.lua", cfg->lua_plugin_paths.items[i], plugin);
            if (access(path, R_OK) != 0) continue;
            const char *problem = lineno + digits + 1;
            while (*problem == ' ') problem++;
            fprintf(stderr, "hookgate: %s:%.*s: plugin %s: %s\n", path, (int)digits, lineno, plugin, problem);
            return;
          }
        }
      }
      /* "/path/NAME/init.lua: problem". */
      const char *tail = strstr(rest, "/init.lua: ");
      if (rest[0] == '/' && tail != NULL) {
        char path[1024];
        size_t len = (size_t)(tail - rest) + strlen("/init.lua");
        if (len < sizeof(path)) {
          memcpy(path, rest, len);
          path[len] = '\0';
          const char *problem = rest + len + 2;
          int line = plugin_problem_line(path, problem);
          if (line > 0) fprintf(stderr, "hookgate: %s:%d: plugin %s: %s\n", path, line, plugin, problem);
          else fprintf(stderr, "hookgate: %s: plugin %s: %s\n", path, plugin, problem);
          return;
        }
      }
    }
  }
  fprintf(stderr, "hookgate: %s: %s\n", cfg->path, e);
}

static int cmd_check(const args_t *a) {
  if (a->config == NULL) {
    fputs("hookgate check: -c FILE is required\n", stderr);
    return 2;
  }
  hg_config_t cfg;
  if (load_config(a, &cfg) != 0) return 1;
  /* What serve would refuse at start-up, checked without starting: event
   * types, the SSRF allow-list, the CA file, and every plugin and binding.
   * Each problem is printed once, as FILE:LINE: where it can be placed; the
   * plugin loader's own log lines would repeat them, so the log is quiet
   * below errors here and the errors are printed by check alone. */
  hg_log_setup(HG_LOG_ERROR, cfg.log_format, -1);
  char err[512];
  int bad = 0;
  hg_event_types_t *types = NULL;
  if (hg_event_types_new(&types, &cfg.event_types, err, sizeof(err)) != 0) {
    /* "webhooks.event_types: ..." already names the key. */
    const char *k = "webhooks.event_types: ";
    check_problem(&cfg, "webhooks.event_types", strncmp(err, k, strlen(k)) == 0 ? err + strlen(k) : err);
    bad = 1;
  }
  hg_event_types_free(types);
  hg_ssrf_policy_t *policy = NULL;
  if (hg_ssrf_policy_parse(&policy, (const char *const *)cfg.allow_cidrs.items, cfg.allow_cidrs.n, err,
                           sizeof(err)) != 0) {
    check_problem(&cfg, "delivery.allow_cidrs", err);
    bad = 1;
  }
  hg_ssrf_policy_free(policy);
  if (cfg.ca_file && access(cfg.ca_file, R_OK) != 0) {
    snprintf(err, sizeof(err), "cannot read %s", cfg.ca_file);
    check_problem(&cfg, "delivery.ca_file", err);
    bad = 1;
  }
  /* The plugins load as at start, without an HTTP client or the API (no
   * plugin code runs past loading here). */
  hg_lua_opts_t lopts = hg_app_lua_opts(&cfg, NULL);
  hg_lua_t *lua = NULL;
  json_t *errors = NULL;
  if (hg_lua_new(&lua, &lopts, &errors) != 0) {
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) check_lua_error(&cfg, json_string_value(e));
    json_decref(errors);
    bad = 1;
  }
  hg_lua_unref(lua);
  if (!bad) printf("%s: ok\n", a->config);
  hg_config_close(&cfg);
  return bad;
}

static int open_db(const args_t *a, hg_db_t **db) {
  hg_config_t cfg;
  char err[512];
  if (load_config(a, &cfg) != 0) return -1;
  int r = hg_store_open_sync(db, cfg.store, err, sizeof(err));
  if (r != 0) {
    char shown[512];
    hg_db_redact(cfg.store, shown, sizeof(shown));
    fprintf(stderr, "hookgate: cannot open the store %s: %s\n", shown, err);
  }
  hg_config_close(&cfg);
  return r == 0 ? 0 : -1;
}

static int print_key(const hg_key_info_t *k, void *ud) {
  (void)ud;
  char scopes[128], created[25], revoked[25] = "-";
  hg_scopes_format(k->scopes, scopes, sizeof(scopes));
  hg_format_time(k->created_at, created);
  if (k->revoked_at) hg_format_time(k->revoked_at, revoked);
  printf("%-32s %-12s %-48s %-16s %-24s %s\n", k->id, k->prefix, scopes, k->has_org ? k->organization_id : "-",
         created, revoked);
  return 0;
}

static int cmd_keys(int argc, char **argv, const args_t *a) {
  if (a->optind >= argc) {
    fputs("hookgate keys: expected create, list or revoke\n", stderr);
    return 2;
  }
  const char *sub = argv[a->optind];
  hg_db_t *db = NULL;
  int code = 1;
  if (strcmp(sub, "create") == 0) {
    unsigned scopes;
    if (a->scopes == NULL || hg_scopes_parse(a->scopes, &scopes) != 0) {
      fputs("hookgate keys create: --scopes must list one or more of webhooks:read, webhooks:write, "
            "events:publish, admin\n",
            stderr);
      return 2;
    }
    if (a->org && !hg_org_id_valid(a->org)) {
      fputs("hookgate keys create: --org must be 1 to 128 characters of letters, digits, '_', '-', '.', ':'\n",
            stderr);
      return 2;
    }
    if (hg_crypto_init() != 0 || open_db(a, &db) != 0) goto out;
    char key[128];
    hg_key_info_t info;
    int r = hg_keys_create(db, scopes, a->org, key, sizeof(key), &info);
    if (r != 0) {
      fprintf(stderr, "hookgate keys create: %s\n", hg_strerror(r));
      goto out;
    }
    /* The key alone on stdout, so scripts can capture it; the id goes to
     * stderr for the operator. */
    printf("%s\n", key);
    fprintf(stderr, "created key %s (shown once; store it now)\n", info.id);
    memset(key, 0, sizeof(key));
    code = 0;
  } else if (strcmp(sub, "list") == 0) {
    if (open_db(a, &db) != 0) goto out;
    printf("%-32s %-12s %-48s %-16s %-24s %s\n", "ID", "PREFIX", "SCOPES", "ORGANIZATION", "CREATED", "REVOKED");
    code = hg_keys_list(db, print_key, NULL) == 0 ? 0 : 1;
  } else if (strcmp(sub, "revoke") == 0) {
    if (a->optind + 1 >= argc) {
      fputs("hookgate keys revoke: expected a key id (key_...)\n", stderr);
      return 2;
    }
    if (open_db(a, &db) != 0) goto out;
    int r = hg_keys_revoke(db, argv[a->optind + 1]);
    if (r == HG_ENOTFOUND) fprintf(stderr, "hookgate keys revoke: no active key %s\n", argv[a->optind + 1]);
    else if (r != 0) fprintf(stderr, "hookgate keys revoke: %s\n", hg_strerror(r));
    else {
      fprintf(stderr, "revoked %s (servers stop accepting it within 5 s)\n", argv[a->optind + 1]);
      code = 0;
    }
  } else {
    fprintf(stderr, "hookgate keys: unknown command '%s' (create, list, revoke)\n", sub);
    return 2;
  }
out:
  hg_db_close(db);
  return code;
}

static void print_copy_progress(const char *table, int64_t rows, void *ud) {
  (void)ud;
  fprintf(stderr, "%s: %lld rows so far\n", table, (long long)rows);
}

/* `hookgate store purge --before DATE`: the store named by --store, else
 * by the config (-c) and HOOKGATE_STORE, as `keys` finds it. */
static int cmd_store_purge(const args_t *a) {
  int64_t before = 0;
  if (a->before == NULL) {
    fputs("hookgate store purge: --before DATE is required (e.g. --before 2026-11-01)\n", stderr);
    return 2;
  }
  if (hg_parse_time(a->before, &before) != 0) {
    fprintf(stderr,
            "hookgate store purge: --before: not an ISO 8601 date or date-time: \"%s\" (e.g. 2026-11-01 or "
            "2026-11-01T00:00:00Z)\n",
            a->before);
    return 2;
  }
  hg_config_t cfg;
  memset(&cfg, 0, sizeof(cfg));
  if (a->store == NULL && load_config(a, &cfg) != 0) return 1;
  const char *address = a->store ? a->store : cfg.store;
  hg_log_setup(HG_LOG_ERROR, HG_LOG_LOGFMT, -1);
  char err[1024] = "", shown[512], when[25];
  hg_db_redact(address, shown, sizeof(shown));
  hg_format_time(before, when);
  hg_purge_counts_t n;
  int indexed = 0;
  int r = hg_purge_run(address, before, &n, &indexed, err, sizeof(err));
  hg_config_close(&cfg);
  if (r != 0) {
    fprintf(stderr, "hookgate store purge: %s\n", err);
    if (n.events + n.deliveries + n.attempts > 0)
      fprintf(stderr, "deleted before the failure: %lld events, %lld deliveries, %lld attempts\n",
              (long long)n.events, (long long)n.deliveries, (long long)n.attempts);
    return 1;
  }
  printf("%s: purged rows created before %s\n", shown, when);
  if (indexed) printf("events: %lld deleted\n", (long long)n.events);
  else
    printf("events: kept (the store has no index of deliveries by event_seq; see docs/configuration.md, "
           "retention)\n");
  printf("deliveries: %lld deleted\n", (long long)n.deliveries);
  printf("attempts: %lld deleted\n", (long long)n.attempts);
  return 0;
}

static int cmd_store(int argc, char **argv, const args_t *a) {
  if (a->optind < argc && strcmp(argv[a->optind], "purge") == 0) return cmd_store_purge(a);
  if (a->optind >= argc || strcmp(argv[a->optind], "copy") != 0) {
    fputs("hookgate store: expected copy or purge\n", stderr);
    return 2;
  }
  if (a->from == NULL || a->to == NULL) {
    fputs("hookgate store copy: --from FILE.db and --to postgresql://... are both required\n", stderr);
    return 2;
  }
  /* Errors of opening the stores are in the message; the log would say
   * them again. */
  hg_log_setup(HG_LOG_ERROR, HG_LOG_LOGFMT, -1);
  char err[1024], target[512];
  hg_copy_report_t rep;
  hg_db_redact(a->to, target, sizeof(target));
  int r = hg_store_copy(a->from, a->to, print_copy_progress, NULL, &rep, err, sizeof(err));
  if (r != 0) {
    /* Whatever failed, the target's transaction was rolled back. */
    fprintf(stderr, "hookgate store copy: %s\n", err);
    return 1;
  }
  if (rep.from_version_before != rep.from_version)
    printf("%s: migrated from schema version %d to %d before copying\n", a->from, rep.from_version_before,
           rep.from_version);
  else printf("%s: schema version %d (current)\n", a->from, rep.from_version);
  int64_t total = 0;
  for (int i = 0; i < HG_COPY_TABLES; i++) {
    printf("%s: %lld copied\n", rep.tables[i], (long long)rep.rows[i]);
    total += rep.rows[i];
  }
  printf("verified: %lld rows and %lld payload bytes on both sides; committed to %s\n", (long long)total,
         (long long)rep.payload_bytes, target);
  return 0;
}

static void print_route(const char *method, const char *pattern, unsigned scope, void *ud) {
  (void)scope, (void)ud;
  printf("%s %s\n", method, pattern);
}

/* One route as JSON: its scopes are the ones of which a key needs any
 * (admin implies them all); an empty list means no key is needed. */
static void add_route_json(const char *method, const char *pattern, unsigned scope, void *ud) {
  char names[HG_SCOPES_MAX];
  hg_scopes_format(scope, names, sizeof(names));
  json_t *scopes = json_array();
  for (char *save = NULL, *s = strtok_r(names, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save))
    json_array_append_new(scopes, json_string(s));
  json_array_append_new(ud, json_pack("{s:s,s:s,s:o,s:b,s:b}", "method", method, "path", pattern, "scopes", scopes,
                                      "auth", scope != 0, "adminOnly", scope == HG_SCOPE_ADMIN));
}

static int cmd_routes(const args_t *a) {
  hg_app_t app;
  memset(&app, 0, sizeof(app));
  app.router = hg_router_new();
  if (app.router == NULL || hg_app_add_routes(&app) != 0) return 1;
  int code = 0;
  if (a->json) {
    json_t *arr = json_array();
    hg_router_each(app.router, add_route_json, arr);
    char *text = json_dumps(arr, JSON_INDENT(2));
    if (text != NULL) printf("%s\n", text);
    else code = 1;
    free(text);
    json_decref(arr);
  } else {
    hg_router_each(app.router, print_route, NULL);
  }
  hg_router_free(app.router);
  return code;
}

int main(int argc, char **argv) {
  args_t a;
  /* A tenant-code worker the gateway started (core/sandbox/worker.c):
   * nothing else of the gateway's runs in that process. Not in the usage
   * text: it is no command for people. */
  if (argc >= 2 && strcmp(argv[1], "sandbox-worker") == 0) return hg_sandbox_worker_main(argc - 2, argv + 2);
  /* Before anything uses SQLite or starts a thread. Cannot fail here. */
  (void)hg_store_global_init();
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
    printf("hookgate %s\n", HG_VERSION);
    return 0;
  }
  const char *cmd = argv[1];
  if (parse_args(argc - 1, argv + 1, &a) != 0) return 2;
  if (strcmp(cmd, "serve") == 0) return cmd_serve(&a);
  if (strcmp(cmd, "check") == 0) return cmd_check(&a);
  if (strcmp(cmd, "routes") == 0) return cmd_routes(&a);
  if (strcmp(cmd, "keys") == 0) {
    /* getopt ran on argv + 1 ("keys" in place of the program name) and moved
     * the operands to its end: they start at argv[1 + optind]. */
    return cmd_keys(argc - 1, argv + 1, &a);
  }
  if (strcmp(cmd, "store") == 0) return cmd_store(argc - 1, argv + 1, &a);
  fprintf(stderr, "hookgate: unknown command '%s'\n\n%s", cmd, usage);
  return 2;
}
