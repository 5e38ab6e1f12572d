/* app.h: the running gateway: loop, config, server, router, and the parts
 * the API handlers share (api/api.h), which the app owns. */
#ifndef HG_APP_H
#define HG_APP_H

#include "api/api.h"
#include "config/config.h"
#include "lua/runtime.h"
#include "net/http_server.h"
#include "net/router.h"

#include <uv.h>

typedef struct hg_app {
  uv_loop_t *loop;
  const hg_config_t *cfg;
  hg_http_server_t *server;
  hg_router_t *router;
  /* What the handlers share: store, ingest, subscription index, event
   * types, dispatcher, Lua generation, key hashes. The routes get &api. */
  hg_api_t api;
  /* The outbound HTTP client deliveries and Lua's hookgate.http share
   * (NULL once closing), and the SSRF policy it checks addresses with. */
  struct hg_client *client;
  struct hg_ssrf_policy *ssrf;
  /* This node among those sharing a PostgreSQL store (cluster.h), or NULL. */
  struct hg_cluster *cluster;
  /* The background purge of old rows (retention.h), or NULL when off. */
  struct hg_retention *retention;
  /* The operational events' publisher (pipeline/health.h). */
  struct hg_health *health;
  /* Gives freed memory back once the gateway is idle (base/memtrim.h), or
   * NULL. */
  struct hg_memtrim *memtrim;
  /* The console's files (console.h), or NULL when it is off. */
  struct hg_console *console;
  /* The key Lua's management calls use (random per process, never shown;
   * api.internal_key_hash is its hash). */
  char internal_key[64];
  uv_signal_t sig_term, sig_int, sig_hup;
  int stopping; /* 0 running, 1 draining, 2 stopped */
  int exit_code;
} hg_app_t;

/* Runs the gateway with cfg until SIGTERM/SIGINT (graceful: stop accepting,
 * finish requests in flight, close the store, return 0) or a second signal
 * (immediate exit). Returns the process exit code. */
int hg_app_run(const hg_config_t *cfg);

/* The request handler: routes, then Lua routes, then 404. Also the target
 * of internal subrequests. */
void hg_app_handle(hg_http_req_t *req, void *app);

/* The Lua runtime's options from cfg. app supplies the loop, the HTTP
 * client and the management calls; NULL (as for `hookgate check`) gives
 * the default loop and neither: plugins load, but no run may use them. */
hg_lua_opts_t hg_app_lua_opts(const hg_config_t *cfg, hg_app_t *app);

/* Registers every route on app->router (used by serve and by `routes`). */
int hg_app_add_routes(hg_app_t *app);

#endif
