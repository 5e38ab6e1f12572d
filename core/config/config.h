/* config.h: the gateway's configuration, read from a Lua file.
 *
 * The file is a Lua chunk that assigns top-level keys:
 *   listen = { "127.0.0.1:8080" }
 *   store = "./data/hookgate.db"
 *   http = { max_body = 1048576, header_timeout = 10 }
 * Unknown keys are errors reported as "FILE:LINE: key: message". After the
 * file, environment variables override: HOOKGATE_LISTEN (comma-separated
 * addresses), HOOKGATE_STORE, HOOKGATE_ADMIN_KEY, HOOKGATE_LOG_LEVEL,
 * HOOKGATE_LOG_FORMAT. */
#ifndef HG_CONFIG_H
#define HG_CONFIG_H

#include "net/http_server.h"
#include "base/log.h"

#include <stddef.h>

typedef struct hg_strlist {
  char **items;
  size_t n;
} hg_strlist_t;

typedef struct hg_config {
  char *path; /* the file read, or NULL for built-in defaults */

  hg_strlist_t listen; /* plain HTTP listeners */
  char *tls_listen;    /* NULL: no TLS listener */
  char *tls_cert;
  char *tls_key;

  char *store;     /* SQLite file path, or a postgresql:// URI (db.h) */
  int intake_log;  /* answer single events once in <store>-intake/ (intake.h); SQLite only */
  /* Nodes sharing a PostgreSQL store (docs/scaling.md). */
  char *node_id;     /* NULL: made up at start (host name and process id) */
  uint64_t lease_ms; /* how long a node holds a delivery it sends */
  uint64_t poll_ms;  /* between looks for other nodes' changes and orphaned work */
  /* Retention (pipeline/retention.h): rows older than these go; 0 keeps
   * forever. Default 30 days each, a pass every 10 minutes. */
  uint64_t retention_events_ms;
  uint64_t retention_deliveries_ms;
  uint64_t retention_interval_ms;
  char *admin_key; /* bootstrap key with every scope; a secret: never logged */

  hg_log_level_t log_level;
  hg_log_format_t log_format;
  int access_log;
  int console;     /* serve the delivery console at /console (console.h); default on */

  hg_http_limits_t http;

  int allow_http_urls;        /* webhooks may use http:// (development, tests) */
  hg_strlist_t event_types;   /* extra event types beside the built-in ones */

  /* Delivery. */
  int delivery_paused;            /* accept and store, send nothing until resumed */
  double *schedule;               /* seconds before attempt i+1 (schedule[0]: the first) */
  size_t n_schedule;
  double jitter;                  /* +/- fraction applied to each delay */
  double retry_after_max;         /* seconds: cap on a receiver's Retry-After */
  double recover_rate;            /* deliveries per second a bulk recovery requeues at most; 0: unpaced */
  unsigned max_in_flight;         /* all origins */
  unsigned max_per_origin;
  uint64_t connect_timeout_ms;
  uint64_t request_timeout_ms;    /* whole attempt: DNS, connect, TLS, response */
  size_t max_response_body;       /* bytes of a receiver's answer kept in the log */
  size_t max_event_data;          /* bytes of an event's data */
  hg_strlist_t allow_cidrs;       /* SSRF allow-list, e.g. "127.0.0.0/8" */
  char *ca_file;                  /* NULL: the system CA bundle */
  /* A webhook is disabled once both hold (0 leaves one out; both 0: never
   * automatically): this many deliveries in a row exhausted every attempt,
   * and none has succeeded for this long. A webhook may set its own. */
  size_t disable_after_exhausted;   /* default 5 */
  uint64_t disable_after_failing_ms; /* default 5 days */

  /* Lua. */
  char *lua_lib_path;             /* folder holding the hookgate Lua library */
  hg_strlist_t lua_plugin_paths;  /* folders of plugins/<name>/init.lua */
  uint64_t lua_cpu_slice_ms;      /* a coroutine yields after this much CPU */
  uint64_t lua_cpu_budget_ms;     /* a run fails past this much CPU */
  size_t lua_memory;              /* bytes the VM may hold */
  size_t lua_run_memory;          /* bytes one run may add */
  size_t lua_shared_memory;       /* bytes hookgate.shared may hold, keys included */
  char *plugins_json;             /* global bindings {"name": {config}}, or NULL */

  /* The tenant sandbox: worker processes for webhooks' transform code. */
  size_t sandbox_workers;         /* processes */
  size_t sandbox_states;          /* Lua states (webhooks) each keeps */
  uint64_t sandbox_cpu_budget_ms; /* one transform run, at most */
  uint64_t sandbox_grace_ms;      /* past budget + grace the worker is killed */
  size_t sandbox_memory;          /* bytes one webhook's state may hold */
  size_t sandbox_queue;           /* transforms waiting for a worker, at most */

  /* Where the file set each top-level key (for errors found after
   * loading, e.g. by `hookgate check`): see hg_config_key_line. */
  struct hg_config_line *key_lines;
  size_t n_key_lines;
} hg_config_t;

/* Fills cfg with defaults, then reads path (NULL: defaults only), then
 * applies environment overrides. On error returns HG_ECONFIG (or HG_ENOMEM)
 * with "FILE:LINE: message" in err; cfg is then closed already. */
int hg_config_load(hg_config_t *cfg, const char *path, char *err, size_t errlen);

/* The line of cfg's file that sets key, a dotted path such as
 * "delivery.allow_cidrs" or "plugins.custom-headers.headers.X-Api-Key";
 * 0 when the file does not set it (a default, or an environment
 * override). The top-level key's assignment is found from Lua's debug
 * information (the line where the assignment statement ended); the nested
 * names are then found by a textual search for `name =` or `["name"] =`
 * inside that assignment, the deepest one found wins. */
int hg_config_key_line(const hg_config_t *cfg, const char *key);

/* The first line of file that assigns name (`name =` or `["name"] =`,
 * outside a `--` comment) at or after line from; 0 if none. */
int hg_config_text_key_line(const char *file, const char *name, int from);

/* Frees what cfg holds. Accepts a zeroed or half-loaded cfg. */
void hg_config_close(hg_config_t *cfg);

#endif
