/* app.c: builds the gateway from its config, runs the loop, and shuts down
 * gracefully on SIGTERM/SIGINT. */
#include "app.h"

#include "api.h"
#include "common.h"
#include "crypto.h"
#include "dispatcher.h"
#include "event_types.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void healthz(hg_http_req_t *req, void *ud) {
  hg_app_t *app = ud;
  if (app->stopping) hg_http_respond_json(req, 503, json_pack("{s:s}", "status", "shutting_down"));
  else hg_http_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

int hg_app_add_routes(hg_app_t *app) {
  int r = hg_router_add(app->router, "GET", "/healthz", healthz, app);
  if (r == 0) r = hg_api_webhooks_add_routes(app);
  if (r == 0) r = hg_api_events_add_routes(app);
  if (r == 0) r = hg_api_deliveries_add_routes(app);
  return r;
}

static void handle(hg_http_req_t *req, void *ud) {
  hg_app_t *app = ud;
  hg_router_dispatch(app->router, req);
}

static void signal_close_cb(uv_handle_t *h) { (void)h; }

static void dispatcher_stopped(void *ud) {
  hg_app_t *app = ud;
  hg_log(HG_LOG_INFO, "delivery stopped; closing the store", NULL);
  hg_dispatcher_free(app->dispatcher);
  app->dispatcher = NULL;
  /* Jobs still queued (none should be: every request was answered and
   * every delivery record written) are committed before the store closes. */
  hg_store_close(app->store);
  app->store = NULL;
  uv_close((uv_handle_t *)&app->sig_term, signal_close_cb);
  uv_close((uv_handle_t *)&app->sig_int, signal_close_cb);
  app->stopping = 2;
}

static void drained(void *ud) {
  hg_app_t *app = ud;
  hg_log(HG_LOG_INFO, "connections drained; stopping delivery", NULL);
  hg_http_server_free(app->server);
  app->server = NULL;
  /* Deliveries on the wire are cancelled, not failed: they stay pending and
   * go out again after the restart, with the same webhook-id. */
  hg_dispatcher_stop(app->dispatcher, dispatcher_stopped, app);
}

static void on_signal(uv_signal_t *h, int signum) {
  hg_app_t *app = h->data;
  const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
  if (app->stopping) {
    hg_log(HG_LOG_WARN, "second signal: exiting now", "signal", name, NULL);
    /* SQLite's WAL keeps the file consistent without a clean close. */
    _exit(1);
  }
  app->stopping = 1;
  hg_log(HG_LOG_INFO, "shutting down: finishing requests in flight", "signal", name, NULL);
  hg_http_server_shutdown(app->server, drained, app);
}

/* 1,000+ concurrent connections need more descriptors than the usual soft
 * limit of 1024: raise it to the hard limit. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int hg_app_run(const hg_config_t *cfg) {
  hg_app_t app;
  uv_loop_t loop;
  char err[512];
  int code = 1;
  memset(&app, 0, sizeof(app));
  app.cfg = cfg;
  app.loop = &loop;
  raise_fd_limit();
  if (uv_loop_init(&loop) != 0) {
    hg_log(HG_LOG_ERROR, "cannot start the event loop", NULL);
    return 1;
  }
  if (hg_crypto_init() != 0) {
    hg_log(HG_LOG_ERROR, "cannot seed the random generator", NULL);
    goto out;
  }
  if (cfg->admin_key) {
    hg_sha256(cfg->admin_key, strlen(cfg->admin_key), app.admin_key_hash);
    app.has_admin_key = 1;
  }
  if (hg_event_types_new(&app.event_types, &cfg->event_types, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "bad configuration", "error", err, NULL);
    goto out;
  }
  if (hg_store_open(&app.store, &loop, cfg->store, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "cannot open the store", "path", cfg->store, "error", err, NULL);
    goto out;
  }
  if (hg_dispatcher_new(&app.dispatcher, &loop, app.store, cfg, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "bad delivery configuration", "error", err, NULL);
    goto out;
  }
  if ((app.router = hg_router_new()) == NULL || hg_app_add_routes(&app) != 0) {
    hg_log(HG_LOG_ERROR, "cannot build the router", NULL);
    goto out;
  }
  hg_http_server_opts_t opts;
  memset(&opts, 0, sizeof(opts));
  opts.loop = &loop;
  opts.limits = cfg->http;
  opts.handler = handle;
  opts.handler_ud = &app;
  opts.access_log = cfg->access_log;
  if (hg_http_server_new(&app.server, &opts) != 0) goto out;
  /* Handle SIGTERM/SIGINT before listening: once the port accepts
   * connections, a signal must drain them, not kill the process. */
  uv_signal_init(&loop, &app.sig_term);
  uv_signal_init(&loop, &app.sig_int);
  app.sig_term.data = app.sig_int.data = &app;
  uv_signal_start(&app.sig_term, on_signal, SIGTERM);
  uv_signal_start(&app.sig_int, on_signal, SIGINT);
  for (size_t i = 0; i < cfg->listen.n; i++) {
    if (hg_http_server_listen(app.server, cfg->listen.items[i], NULL, NULL, err, sizeof(err)) != 0) {
      hg_log(HG_LOG_ERROR, "cannot listen", "error", err, NULL);
      goto out;
    }
  }
  if (cfg->tls_listen &&
      hg_http_server_listen(app.server, cfg->tls_listen, cfg->tls_cert, cfg->tls_key, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "cannot listen", "error", err, NULL);
    goto out;
  }
  if (hg_dispatcher_start(app.dispatcher) != 0) goto out;
  hg_log(HG_LOG_INFO, "hookgate started", "version", HG_VERSION, "store", cfg->store, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  code = 0;
  hg_log(HG_LOG_INFO, "stopped", NULL);
out:
  if (app.sig_term.loop && !uv_is_closing((uv_handle_t *)&app.sig_term)) {
    /* Failed to start: the signal watchers would keep the loop alive. */
    uv_close((uv_handle_t *)&app.sig_term, signal_close_cb);
    uv_close((uv_handle_t *)&app.sig_int, signal_close_cb);
  }
  hg_http_server_free(app.server);
  hg_dispatcher_free(app.dispatcher);
  hg_store_close(app.store);
  /* Let close callbacks run so every handle is released. */
  uv_run(&loop, UV_RUN_DEFAULT);
  hg_router_free(app.router);
  hg_event_types_free(app.event_types);
  hg_api_keycache_free(&app);
  if (uv_loop_close(&loop) != 0) hg_log(HG_LOG_WARN, "event loop closed with handles open", NULL);
  return code;
}
