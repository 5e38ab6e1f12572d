/* app.c: builds the gateway from its config, runs the loop, and shuts down
 * gracefully on SIGTERM/SIGINT. */
#include "app.h"
#include "console.h"

#include "base/common.h"
#include "base/crypto.h"
#include "base/datadir.h"
#include "base/list.h"
#include "pipeline/cluster.h"
#include "pipeline/dispatcher.h"
#include "pipeline/event_types.h"
#include "pipeline/ingest.h"
#include "pipeline/recover.h"
#include "pipeline/retention.h"
#include "store/events.h"
#include "store/keys.h"
#include "base/log.h"
#include "lua/runtime.h"
#include "net/http_client.h"
#include "base/metrics.h"
#include "base/memtrim.h"
#include "sandbox/pool.h"
#include "pipeline/health.h"
#include "pipeline/subs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <strings.h>
#include <unistd.h>

static void put_lua_error(const char *plugin, const char *phase, uint64_t n, void *ud);
static void reload_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who);
static void plugins_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who);
HG_API_ROUTE(reload, HG_SCOPE_ADMIN)
HG_API_ROUTE(plugins, HG_SCOPE_ADMIN)
static void fallback(hg_http_req_t *req, void *ud);

/* The app's own routes get &app->api, as the API's do. */
static hg_app_t *app_of(hg_api_t *api) { return HG_CONTAINER(api, hg_app_t, api); }

static void healthz(hg_http_req_t *req, void *ud) {
  hg_app_t *app = app_of(ud);
  if (app->stopping) hg_http_respond_json(req, 503, json_pack("{s:s}", "status", "shutting_down"));
  else hg_http_respond_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void put_counter(hg_buf_t *b, const char *name, const char *help, const char *labels, uint64_t v) {
  hg_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s%s %llu\n", name, help, name, name, labels,
                (unsigned long long)v);
}

/* One family per phase: its calls (seconds = 0) or the time spent in them. */
static void put_lua_phases(hg_buf_t *b, const char *name, const char *help, int seconds) {
  hg_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
  for (int p = 0; p < HG_PHASE_COUNT; p++) {
    uint64_t calls, ns;
    hg_lua_phase_stats((hg_phase_t)p, &calls, &ns);
    if (seconds) hg_buf_printf(b, "%s{phase=\"%s\"} %.9f\n", name, hg_phase_name((hg_phase_t)p), (double)ns / 1e9);
    else hg_buf_printf(b, "%s{phase=\"%s\"} %llu\n", name, hg_phase_name((hg_phase_t)p), (unsigned long long)calls);
  }
}

static void put_gauge(hg_buf_t *b, const char *name, const char *help, double v) {
  hg_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

/* GET /metrics: the Prometheus text format (version 0.0.4). Open like
 * /healthz: it carries counts, never ids, URLs or secrets. */
static void metrics(hg_http_req_t *req, void *ud) {
  hg_app_t *app = app_of(ud);
  const hg_metrics_t *m = &hg_metrics;
  hg_buf_t b = {0};
  put_counter(&b, "hookgate_events_ingested_total", "Events accepted and stored.", "", m->events_ingested);
  put_counter(&b, "hookgate_events_replayed_total", "Publish requests answered from an earlier event (idempotency).",
              "", m->events_replayed);
  put_counter(&b, "hookgate_deliveries_created_total", "Deliveries created by fan-out.", "", m->deliveries_created);
  hg_buf_printf(&b, "# HELP hookgate_delivery_attempts_total Delivery attempts by outcome.\n"
                    "# TYPE hookgate_delivery_attempts_total counter\n"
                    "hookgate_delivery_attempts_total{outcome=\"success\"} %llu\n"
                    "hookgate_delivery_attempts_total{outcome=\"failure\"} %llu\n",
                (unsigned long long)m->attempts_success, (unsigned long long)m->attempts_failure);
  hg_buf_printf(&b, "# HELP hookgate_deliveries_completed_total Deliveries that reached a final status.\n"
                    "# TYPE hookgate_deliveries_completed_total counter\n"
                    "hookgate_deliveries_completed_total{status=\"success\"} %llu\n"
                    "hookgate_deliveries_completed_total{status=\"failed\"} %llu\n"
                    "hookgate_deliveries_completed_total{status=\"skipped\"} %llu\n",
                (unsigned long long)m->deliveries_succeeded, (unsigned long long)m->deliveries_failed,
                (unsigned long long)m->deliveries_skipped);
  put_counter(&b, "hookgate_webhooks_deactivated_total",
              "Attempts that asked to deactivate their webhook: a 410 Gone answer or a retry plugin's \"deactivate\".", "",
              m->webhooks_deactivated);
  put_counter(&b, "hookgate_recoveries_started_total", "Bulk recoveries started (POST /v1/webhooks/{id}/recover).",
              "", m->recoveries_started);
  hg_buf_printf(&b, "# HELP hookgate_deliveries_recovered_total Deliveries sent again by bulk recoveries.\n"
                    "# TYPE hookgate_deliveries_recovered_total counter\n"
                    "hookgate_deliveries_recovered_total{kind=\"requeued\"} %llu\n"
                    "hookgate_deliveries_recovered_total{kind=\"missed\"} %llu\n",
                (unsigned long long)m->deliveries_recovered, (unsigned long long)m->deliveries_missed_added);
  hg_buf_printf(&b, "# HELP hookgate_retention_purged_total Rows the retention purge deleted, by table.\n"
                    "# TYPE hookgate_retention_purged_total counter\n"
                    "hookgate_retention_purged_total{table=\"events\"} %llu\n"
                    "hookgate_retention_purged_total{table=\"deliveries\"} %llu\n"
                    "hookgate_retention_purged_total{table=\"attempts\"} %llu\n",
                (unsigned long long)m->purged_events, (unsigned long long)m->purged_deliveries,
                (unsigned long long)m->purged_attempts);
  hg_buf_printf(&b, "# HELP hookgate_retention_last_pass_timestamp_seconds When the last retention purge pass "
                    "ended (Unix seconds; 0 before the first).\n"
                    "# TYPE hookgate_retention_last_pass_timestamp_seconds gauge\n"
                    "hookgate_retention_last_pass_timestamp_seconds %.3f\n",
                (double)m->purge_last_pass_ms / 1000.0);
  hg_buf_printf(&b,
                "# HELP hookgate_webhooks_disabled_total Webhooks the gateway disabled, by reason.\n"
                "# TYPE hookgate_webhooks_disabled_total counter\n"
                "hookgate_webhooks_disabled_total{reason=\"gone\"} %llu\n"
                "hookgate_webhooks_disabled_total{reason=\"consecutive_failures\"} %llu\n"
                "hookgate_webhooks_disabled_total{reason=\"retry_policy\"} %llu\n",
                (unsigned long long)m->webhooks_disabled[HG_METRIC_DISABLED_GONE],
                (unsigned long long)m->webhooks_disabled[HG_METRIC_DISABLED_FAILURES],
                (unsigned long long)m->webhooks_disabled[HG_METRIC_DISABLED_RETRY_POLICY]);
  hg_buf_printf(&b,
                "# HELP hookgate_operational_events_total Operational events the gateway stored, by type.\n"
                "# TYPE hookgate_operational_events_total counter\n"
                "hookgate_operational_events_total{type=\"delivery.exhausted\"} %llu\n"
                "hookgate_operational_events_total{type=\"webhook.disabled\"} %llu\n"
                "hookgate_operational_events_total{type=\"webhook.recovered\"} %llu\n",
                (unsigned long long)m->operational_events[0], (unsigned long long)m->operational_events[1],
                (unsigned long long)m->operational_events[2]);
  hg_buf_printf(&b,
                "# HELP hookgate_deliveries_throttled_total Deliveries held back by their webhook's limits, by "
                "the limit.\n"
                "# TYPE hookgate_deliveries_throttled_total counter\n"
                "hookgate_deliveries_throttled_total{reason=\"rate\"} %llu\n"
                "hookgate_deliveries_throttled_total{reason=\"concurrency\"} %llu\n",
                (unsigned long long)m->deliveries_throttled[0], (unsigned long long)m->deliveries_throttled[1]);
  hg_metrics_put_hist(&b, "hookgate_delivery_attempt_seconds", "Duration of one delivery attempt.",
                      &m->attempt_seconds);
  hg_metrics_put_hist(&b, "hookgate_delivery_latency_seconds",
                      "From the event's acceptance to the receiver's 2xx, retries included.",
                      &m->delivery_latency_seconds);
  if (app->api.dispatcher) {
    hg_dispatcher_stats_t ds;
    hg_dispatcher_stats(app->api.dispatcher, &ds);
    put_gauge(&b, "hookgate_delivery_queue_depth", "Pending deliveries waiting in the queue.", (double)ds.queued);
    put_gauge(&b, "hookgate_deliveries_in_flight", "Deliveries being loaded, sent or recorded.",
              (double)ds.in_flight);
    put_gauge(&b, "hookgate_delivery_paused", "1 while delivery is paused.",
              hg_dispatcher_paused(app->api.dispatcher) ? 1 : 0);
    put_gauge(&b, "hookgate_deliveries_held", "Pending deliveries held back by their webhook's rateLimit or "
              "maxConcurrency (part of the queue depth).", (double)ds.held);
    put_counter(&b, "hookgate_delivery_claims_lost_total",
                "Deliveries due here that another node sharing the store held (its lease).", "", ds.claims_lost);
    put_counter(&b, "hookgate_delivery_line_waits_total",
                "Deliveries loaded to be sent and found waiting behind another in their webhook's FIFO line.", "",
                ds.line_waits);
  }
  if (app->api.store) {
    hg_store_stats_t ss;
    hg_store_stats(app->api.store, &ss);
    put_counter(&b, "hookgate_store_jobs_total", "Store jobs run.", "", ss.jobs);
    put_gauge(&b, "hookgate_store_available",
              "1 while the store can be reached (always on SQLite; PostgreSQL: 0 while the connection is lost).",
              hg_store_available(app->api.store) ? 1 : 0);
    hg_metrics_put_hist(&b, "hookgate_store_commit_seconds",
                        "Duration of one store commit (the write-ahead log written; synced apart).", &ss.commit_seconds);
    hg_metrics_put_hist(&b, "hookgate_store_sync_seconds",
                        "Duration of one fsync of the write-ahead log; it makes every commit before it durable.",
                        &ss.sync_seconds);
    hg_metrics_put_hist(&b, "hookgate_store_commit_batch_size", "Jobs committed together in one transaction.",
                        &ss.batch_jobs);
    put_counter(&b, "hookgate_store_groups_gathered_total",
                "Store groups that waited for more events already durable in the intake log to join them (the store "
                "busy with those alone).",
                "", ss.groups_gathered);
    put_counter(&b, "hookgate_store_groups_rerun_total",
                "PostgreSQL: groups of events tried in one round trip without savepoints, in which something failed: "
                "rolled back and run again with a savepoint per run, so that only the failing request fails.",
                "", ss.groups_rerun);
    hg_buf_printf(&b,
                  "# HELP hookgate_store_checkpoints_total Checkpoints that copied write-ahead log frames into the "
                  "database, by thread: the checkpoint thread's, or the store thread's once the log reached 4,000 "
                  "frames.\n# TYPE hookgate_store_checkpoints_total counter\n"
                  "hookgate_store_checkpoints_total{thread=\"checkpoint\"} %llu\n"
                  "hookgate_store_checkpoints_total{thread=\"store\"} %llu\n",
                  (unsigned long long)ss.checkpoints, (unsigned long long)ss.checkpoints_inline);
  }
  hg_intake_stats_t is;
  if (hg_ingest_intake_stats(app->api.ingest, &is) == 0) {
    put_counter(&b, "hookgate_intake_records_total", "Events made durable in the intake log.",
                "", is.records);
    put_counter(&b, "hookgate_intake_syncs_total", "fdatasyncs of the intake log (each covers every record before it).",
                "", is.syncs);
    put_counter(&b, "hookgate_intake_bytes_total", "Bytes written to the intake log.", "", is.bytes);
    put_counter(&b, "hookgate_intake_segments_total", "Intake log segment files created (not reused).", "",
                is.segments);
    hg_metrics_put_hist(&b, "hookgate_intake_sync_seconds",
                        "Duration of one write and fdatasync of the intake log (a loop turn's records or more).",
                        &is.sync_seconds);
  }
  hg_memtrim_stats_t mt = hg_memtrim_stats(app->memtrim);
  put_counter(&b, "hookgate_memory_trims_total",
              "Times the gateway, idle after a busy spell, gave freed heap memory back to the system.", "", mt.trims);
  put_gauge(&b, "hookgate_memory_last_trim_bytes", "Resident memory the last of those returned.",
            (double)mt.last_trim_bytes);
  if (app->server)
    put_gauge(&b, "hookgate_http_connections", "Open client connections.",
              (double)hg_http_server_connections(app->server));
  if (app->client) {
    hg_client_stats_t cs;
    hg_client_stats(app->client, &cs);
    put_counter(&b, "hookgate_client_connections_opened_total",
                "Connections the gateway opened to receivers (and for Lua's http calls).", "",
                cs.connections_opened);
    hg_buf_printf(&b,
                  "# HELP hookgate_client_tls_handshakes_total TLS handshakes with receivers, by whether they resumed "
                  "the receiver's session (no certificate to verify) or ran in full.\n"
                  "# TYPE hookgate_client_tls_handshakes_total counter\n"
                  "hookgate_client_tls_handshakes_total{resumed=\"false\"} %llu\n"
                  "hookgate_client_tls_handshakes_total{resumed=\"true\"} %llu\n",
                  (unsigned long long)cs.tls_full, (unsigned long long)cs.tls_resumed);
  }
  put_lua_phases(&b, "hookgate_lua_phase_calls_total",
                 "Lua phase calls: route once per event, transform and sign once per delivery attempt.", 0);
  put_lua_phases(&b, "hookgate_lua_phase_seconds_total",
                 "Time the loop thread spent in Lua phases: building the argument, running the bound plugins, "
                 "reading the result back (not waiting on I/O).",
                 1);
  hg_buf_printf(&b, "# HELP hookgate_lua_errors_total Script errors by plugin and phase.\n"
                    "# TYPE hookgate_lua_errors_total counter\n");
  if (app->api.lua) {
    hg_lua_each_error_count(app->api.lua, put_lua_error, &b);
    put_gauge(&b, "hookgate_lua_memory_bytes", "Memory the Lua VM holds.", (double)hg_lua_memory(app->api.lua));
  }
  hg_sandbox_stats_t sst;
  memset(&sst, 0, sizeof(sst));
  const hg_sandbox_t *sb = app->api.dispatcher ? hg_dispatcher_sandbox(app->api.dispatcher) : NULL;
  if (sb) hg_sandbox_stats(sb, &sst);
  hg_buf_printf(&b, "# HELP hookgate_sandbox_jobs_total Webhook transforms run in the sandbox, by outcome.\n"
                    "# TYPE hookgate_sandbox_jobs_total counter\n"
                    "hookgate_sandbox_jobs_total{result=\"ok\"} %llu\n"
                    "hookgate_sandbox_jobs_total{result=\"script_error\"} %llu\n",
                (unsigned long long)sst.jobs_ok, (unsigned long long)sst.jobs_failed);
  put_counter(&b, "hookgate_sandbox_budget_stops_total",
              "Transforms a sandbox worker stopped at the CPU budget itself.", "", sst.budget_stops);
  put_counter(&b, "hookgate_sandbox_watchdog_kills_total",
              "Sandbox workers killed because a transform ran past budget + grace.", "", sst.watchdog_kills);
  put_counter(&b, "hookgate_sandbox_worker_exits_total", "Sandbox workers that stopped on their own.", "",
              sst.worker_exits);
  put_counter(&b, "hookgate_sandbox_spawns_total", "Sandbox workers started.", "", sst.spawns);
  hg_buf_printf(&b, "# HELP hookgate_sandbox_spawn_seconds_total Time the loop spent starting sandbox workers.\n"
                    "# TYPE hookgate_sandbox_spawn_seconds_total counter\nhookgate_sandbox_spawn_seconds_total %.9f\n",
                (double)sst.spawn_ns / 1e9);
  put_gauge(&b, "hookgate_sandbox_workers", "Sandbox workers running.", (double)sst.workers);
  put_gauge(&b, "hookgate_sandbox_queued", "Transforms waiting for a sandbox worker.", (double)sst.queued);
  put_gauge(&b, "hookgate_sandbox_running", "Transforms handed to sandbox workers, not answered yet.",
            (double)sst.running);
  if (b.failed) hg_api_internal_error(req, "render metrics", HG_ENOMEM);
  else hg_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
  free(b.data);
}

/* Reads the console's files when the config turns it on (the default).
 * Without them the gateway still runs: /console answers 404, and the log
 * says why. */
static void open_console(hg_app_t *app) {
  if (app->cfg == NULL || !app->cfg->console || app->console != NULL) return;
  char dir[4096], err[512] = "";
  if (hg_datadir(dir, sizeof(dir) - 8) != 0) {
    hg_log(HG_LOG_WARN, "console off: cannot find the data folder", NULL);
    return;
  }
  strcat(dir, "/console");
  if (hg_console_new(&app->console, dir, err, sizeof(err)) != 0)
    hg_log(HG_LOG_WARN, "console off: its files did not load", "error", err, NULL);
}

int hg_app_add_routes(hg_app_t *app) {
  static const hg_route_def_t routes[] = {
      {"GET", "/healthz", healthz, 0},
      {"GET", "/metrics", metrics, 0},
      HG_API_DEF("POST", "/v1/admin/reload", reload),
      HG_API_DEF("GET", "/v1/admin/plugins", plugins),
      {NULL, NULL, NULL, 0},
  };
  int r = hg_router_add_all(app->router, routes, &app->api);
  /* The console: static files, no key (its page asks for one and sends it
   * to the API only). Listed by `hookgate routes` even when it is off. */
  open_console(app);
  if (r == 0) r = hg_router_add(app->router, "GET", "/console", hg_console_index, app->console);
  if (r == 0) r = hg_router_add(app->router, "GET", "/console/{file}", hg_console_file, app->console);
  if (r == 0) r = hg_api_webhooks_add_routes(&app->api, app->router);
  if (r == 0) r = hg_api_events_add_routes(&app->api, app->router);
  if (r == 0) r = hg_api_deliveries_add_routes(&app->api, app->router);
  if (r == 0) r = hg_api_recover_add_routes(&app->api, app->router);
  hg_router_set_fallback(app->router, fallback, app);
  return r;
}

void hg_app_handle(hg_http_req_t *req, void *ud) {
  hg_app_t *app = ud;
  hg_router_dispatch(app->router, req);
}

/* --- Lua routes ---------------------------------------------------------------- */

typedef struct lua_route {
  hg_http_req_t *req;
} lua_route_t;

static void lua_route_done(int status, json_t *arg, json_t *res, json_t *res2, const char *err, void *ud) {
  (void)arg, (void)res2, (void)err;
  lua_route_t *lr = ud;
  hg_http_req_t *req = lr->req;
  free(lr);
  if (status != 0) {
    char msg[96];
    snprintf(msg, sizeof(msg), "the route's script failed (request id %s)", req->request_id);
    hg_http_respond_error(req, 500, "script_error", msg, NULL);
    return;
  }
  /* The handler answers {status = 202, body = "..." or a table, headers = {...}}. */
  json_t *st = json_object_get(res, "status");
  int code = json_is_integer(st) ? (int)json_integer_value(st) : 200;
  if (code < 200 || code > 599) code = 500;
  json_t *headers = json_object_get(res, "headers");
  const char *k;
  json_t *v;
  const char *ctype = NULL;
  json_object_foreach(headers, k, v) {
    if (!json_is_string(v)) continue;
    if (strcasecmp(k, "content-type") == 0) ctype = json_string_value(v);
    else if (strcasecmp(k, "content-length") != 0 && strcasecmp(k, "connection") != 0 &&
             strcasecmp(k, "transfer-encoding") != 0 && !strpbrk(json_string_value(v), "\r\n"))
      hg_http_req_add_header(req, k, json_string_value(v));
  }
  json_t *body = json_object_get(res, "body");
  if (json_is_string(body)) {
    hg_http_respond(req, code, ctype ? ctype : "text/plain; charset=utf-8", json_string_value(body),
                    json_string_length(body));
  } else if (body != NULL && !json_is_null(body)) {
    hg_http_respond_json(req, code, json_incref(body));
  } else {
    hg_http_respond(req, code, NULL, NULL, 0);
  }
}

/* Paths no C route serves: a Lua route, or 404. */
static void fallback(hg_http_req_t *req, void *ud) {
  hg_app_t *app = ud;
  const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
  if (app->api.lua == NULL || !hg_lua_has_route(app->api.lua, method, req->path)) {
    hg_http_respond_error(req, 404, "not_found", "no such endpoint", NULL);
    return;
  }
  json_t *headers = json_object();
  for (size_t i = 0; i < req->n_headers; i++) {
    char name[128];
    size_t n = 0;
    for (const char *p = req->headers[i].name; *p && n < sizeof(name) - 1; p++)
      name[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    name[n] = '\0';
    json_t *v = json_string(req->headers[i].value);
    if (v) json_object_set_new(headers, name, v);
  }
  json_t *body = json_stringn(req->body, req->body_len);
  if (body == NULL) body = json_string("");
  json_t *arg = json_pack("{s:s,s:s,s:s,s:o,s:o,s:s,s:s}", "method", method, "path", req->path, "query", req->query,
                          "headers", headers, "body", body, "requestId", req->request_id, "remote",
                          req->remote_addr ? req->remote_addr : "");
  lua_route_t *lr = malloc(sizeof(*lr));
  int r = lr && arg ? hg_lua_call_route(app->api.lua, method, req->path, arg, lua_route_done, lr) : HG_ENOMEM;
  json_decref(arg);
  if (r != 0) {
    free(lr);
    hg_api_internal_error(req, "start Lua route", r);
  } else {
    lr->req = req;
  }
}

/* --- what the Lua runtime gets from the app ------------------------------------ */

static int open_client(hg_app_t *app, char *err, size_t errlen) {
  const hg_config_t *cfg = app->cfg;
  int r = hg_ssrf_policy_parse(&app->ssrf, (const char *const *)cfg->allow_cidrs.items, cfg->allow_cidrs.n, err,
                               errlen);
  if (r != 0) return r;
  hg_client_opts_t opts;
  hg_client_opts_default(&opts);
  opts.loop = app->loop;
  opts.connect_timeout_ms = cfg->connect_timeout_ms;
  opts.total_timeout_ms = cfg->request_timeout_ms;
  opts.max_response_body = cfg->max_response_body;
  opts.max_in_flight = cfg->max_in_flight;
  opts.max_per_origin = cfg->max_per_origin;
  /* As many kept as may be open: with fewer, every lull in a busy
   * receiver's traffic closed the surplus, and the next burst connected
   * (and, for https, handshook) again; idle ones still close after
   * delivery.idle_timeout's 30 s. */
  opts.max_idle_per_origin = cfg->max_per_origin;
  opts.ca_file = cfg->ca_file;
  opts.ssrf = app->ssrf;
  return hg_client_new(&app->client, &opts, err, errlen);
}

/* Cancels every request on the wire (their callbacks run now). NULL first:
 * callbacks that run inside the close must not send anew. */
static void close_client(hg_app_t *app) {
  hg_client_t *c = app->client;
  app->client = NULL;
  hg_client_close(c);
}

/* Lua's management calls: a subrequest to the API with the process's
 * internal key. */
static int lua_subrequest(void *ud, const char *method, const char *target, const char *body, size_t body_len,
                          hg_lua_subrequest_cb cb, void *cb_ud) {
  hg_app_t *app = ud;
  char auth[96];
  snprintf(auth, sizeof(auth), "Bearer %s", app->internal_key);
  return hg_http_virtual(method, target, auth, body, body_len, hg_app_handle, app, cb, cb_ud);
}

hg_lua_opts_t hg_app_lua_opts(const hg_config_t *cfg, hg_app_t *app) {
  hg_lua_opts_t o = {
      .loop = app ? app->loop : uv_default_loop(),
      .lib_path = cfg->lua_lib_path,
      .plugin_paths = (const char *const *)cfg->lua_plugin_paths.items,
      .n_plugin_paths = cfg->lua_plugin_paths.n,
      .plugins_json = cfg->plugins_json,
      .memory = cfg->lua_memory,
      .run_memory = cfg->lua_run_memory,
      .shared_memory = cfg->lua_shared_memory,
      .cpu_slice_ms = cfg->lua_cpu_slice_ms,
      .cpu_budget_ms = cfg->lua_cpu_budget_ms,
  };
  if (app != NULL) {
    o.client = &app->client;
    o.subrequest = lua_subrequest;
    o.subrequest_ud = app;
  }
  return o;
}

/* --- reload -------------------------------------------------------------------- */

/* Builds a new generation; swaps it in only if every plugin loaded and
 * validated. Returns NULL on success, else the errors (new reference). */
static json_t *reload(hg_app_t *app) {
  hg_lua_t *next = NULL;
  json_t *errors = NULL;
  hg_lua_opts_t opts = hg_app_lua_opts(app->cfg, app);
  int r = hg_lua_new(&next, &opts, &errors);
  if (r != 0) {
    if (errors == NULL) errors = json_pack("[s]", hg_strerror(r));
    hg_log(HG_LOG_ERROR, "reload failed: the running generation stays", NULL);
    return errors;
  }
  hg_lua_t *old = app->api.lua;
  app->api.lua = next;
  hg_lua_start(next);
  if (old) {
    /* Runs in flight keep their reference and finish on the old VM. */
    hg_lua_stop(old);
    hg_lua_unref(old);
  }
  hg_log(HG_LOG_INFO, "reloaded: new Lua generation in service", NULL);
  return NULL;
}

static void reload_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  hg_log(HG_LOG_INFO, "reload requested", "key", who->key_id, NULL);
  json_t *errors = reload(app_of(api));
  if (errors == NULL) {
    hg_http_respond_json(req, 200, json_pack("{s:s,s:o}", "status", "reloaded", "plugins", hg_lua_describe(api->lua)));
    return;
  }
  json_t *details = json_array();
  size_t i;
  json_t *e;
  json_array_foreach(errors, i, e) json_array_append_new(details, json_pack("{s:s,s:O}", "field", "plugins", "message", e));
  json_decref(errors);
  hg_http_respond_error(req, 422, "reload_failed", "reload failed: the running generation stays in service", details);
}

static void plugins_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  (void)who;
  hg_http_respond_json(req, 200, hg_lua_describe(api->lua));
}

static void on_hup(uv_signal_t *h, int signum) {
  (void)signum;
  hg_app_t *app = h->data;
  json_t *errors = reload(app);
  size_t i;
  json_t *e;
  json_array_foreach(errors, i, e) hg_log(HG_LOG_ERROR, "reload error", "error", json_string_value(e), NULL);
  json_decref(errors);
}

static void put_lua_error(const char *plugin, const char *phase, uint64_t n, void *ud) {
  hg_buf_printf(ud, "hookgate_lua_errors_total{plugin=\"%s\",phase=\"%s\"} %llu\n", plugin, phase,
                (unsigned long long)n);
}

static void signal_close_cb(uv_handle_t *h) { (void)h; }

/* The store thread's nice value while the intake log answers publishes:
 * 10 gave +12% at -c256 and +8% at -c50 over 0 (which gained nothing over
 * no log at all); 19 a little more, but leaves the store, and with it
 * delivery records and API reads, a fifth of 10's share of a busy CPU
 * (docs/performance.md). */
#define STORE_NICE 10
/* How often the idle trim looks at the process (base/memtrim.h): RSS
 * settles within two of these after a load ends. */
#define MEMTRIM_INTERVAL_MS 5000

/* Whether a thread may go from STORE_NICE back to 0: Linux needs
 * CAP_SYS_NICE or RLIMIT_NICE of 20 or more for that (systemd:
 * LimitNICE=20); root in a container may lack the capability. Tried on a
 * throwaway thread (on Linux a nice value is per thread). Without it the
 * store keeps its normal priority, so that a failed intake log never leaves
 * publishes waiting for a lowered thread. */
static void try_renice(void *arg) {
  int *ok = arg;
  *ok = setpriority(PRIO_PROCESS, 0, 1) == 0 && setpriority(PRIO_PROCESS, 0, 0) == 0;
}

static int can_raise_priority_back(void) {
  uv_thread_t t;
  int ok = 0;
  if (uv_thread_create(&t, try_renice, &ok) != 0) return 0;
  uv_thread_join(&t);
  return ok;
}

/* Stores what the intake log holds and the store lacks, before the store
 * opens (see hg_events_recover). */
static int recover_intake(const char *dir, const char *store) {
  char err[512] = "";
  uint64_t seen = 0, stored = 0;
  if (hg_events_recover(dir, store, &seen, &stored, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "cannot apply the intake log to the store", "dir", dir, "error", err, NULL);
    return -1;
  }
  if (seen > 0) {
    /* After a clean stop the store has every record already (stored=0). */
    char a[24], b[24];
    a[hg_fmt_u64(a, seen)] = '\0';
    b[hg_fmt_u64(b, stored)] = '\0';
    hg_log(stored > 0 ? HG_LOG_INFO : HG_LOG_DEBUG, "intake log applied", "records", a, "stored", b, NULL);
  }
  return 0;
}

/* Gives up the store retries of logged events (the log keeps them) and
 * closes the log: before the store closes, whose last completions then find
 * no log to release. */
static void close_ingest(hg_app_t *app) {
  hg_ingest_close(app->api.ingest);
  app->api.ingest = NULL;
}

/* Stops the bulk recoveries: before the dispatcher they feed is freed. */
static void close_recover(hg_app_t *app) {
  hg_recover_close(app->api.recover);
  app->api.recover = NULL;
}

static void dispatcher_stopped(void *ud) {
  hg_app_t *app = ud;
  /* Its poll would keep the loop alive; its last jobs (handing the
   * leases back) run before the store closes below. */
  hg_cluster_stop(app->cluster);
  app->cluster = NULL;
  /* Its batch out, if any, completes once the store has run it. */
  hg_retention_stop(app->retention);
  app->retention = NULL;
  /* When nothing was in flight, this runs inside hg_dispatcher_stop,
   * before drained closes the client: Lua's requests end here, while the
   * store is still open. (Inside that close, this does nothing.) */
  close_client(app);
  hg_log(HG_LOG_INFO, "delivery stopped; closing the store", NULL);
  close_recover(app);
  hg_dispatcher_free(app->api.dispatcher);
  app->api.dispatcher = NULL;
  /* Every request is answered, so every record is in the log; the store
   * jobs applying them may still be queued. */
  close_ingest(app);
  /* Jobs still queued (the store jobs of events answered from the intake
   * log, if any) are committed before the store closes. */
  hg_store_close(app->api.store);
  app->api.store = NULL;
  uv_close((uv_handle_t *)&app->sig_term, signal_close_cb);
  uv_close((uv_handle_t *)&app->sig_int, signal_close_cb);
  uv_close((uv_handle_t *)&app->sig_hup, signal_close_cb);
  app->stopping = 2;
}

static void drained(void *ud) {
  hg_app_t *app = ud;
  hg_log(HG_LOG_INFO, "connections drained; stopping delivery", NULL);
  hg_http_server_free(app->server);
  app->server = NULL;
  if (app->api.lua) hg_lua_shutdown(app->api.lua);
  /* Deliveries on the wire are cancelled, not failed: the dispatcher stops
   * first, so the requests the client's close then cancels stay pending
   * and go out again after the restart, with the same webhook-id. */
  hg_dispatcher_stop(app->api.dispatcher, dispatcher_stopped, app);
  close_client(app);
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
  hg_ingest_drain(app->api.ingest);
  hg_log(HG_LOG_INFO, "shutting down: finishing requests in flight", "signal", name, NULL);
  hg_http_server_shutdown(app->server, drained, app);
}

typedef struct subs_load {
  hg_subs_t *subs;
  int status;
  int done;
} subs_load_t;

static int subs_load_work(hg_db_t *db, void *ud) {
  subs_load_t *l = ud;
  return hg_subs_load(l->subs, db);
}

static void subs_load_done(int status, void *ud) {
  subs_load_t *l = ud;
  l->status = status;
  l->done = 1;
}

/* Another node changed webhooks, their secrets or API keys: the index is
 * read again whole (into a new one, swapped in when read, so that events
 * meanwhile match the old one), and cached key lookups are dropped. */
typedef struct subs_reload {
  hg_app_t *app;
  hg_subs_t *fresh;
} subs_reload_t;

static int subs_reload_work(hg_db_t *db, void *ud) {
  subs_reload_t *l = ud;
  return hg_subs_load(l->fresh, db);
}

static void subs_reload_done(int status, void *ud) {
  subs_reload_t *l = ud;
  if (status == 0 && l->app->api.subs != NULL) hg_subs_replace(l->app->api.subs, l->fresh);
  else if (status != HG_EUNAVAIL) hg_log(HG_LOG_WARN, "cannot reload webhooks changed by another node", "error", hg_strerror(status), NULL);
  /* The change not read may have made a webhook ordered: until a reload
   * says otherwise, ingest takes FIFO places (it costs only throughput). */
  if (status != 0 && l->app->api.subs != NULL) hg_subs_note_ordered(l->app->api.subs);
  hg_subs_free(l->fresh);
  free(l);
}

static void cluster_changed(void *ud) {
  hg_app_t *app = ud;
  hg_api_keycache_free(&app->api);
  subs_reload_t *l = calloc(1, sizeof(*l));
  if (l == NULL || (l->fresh = hg_subs_new()) == NULL) {
    free(l);
    return;
  }
  l->app = app;
  if (hg_store_submit(app->api.store, subs_reload_work, subs_reload_done, l) != 0) {
    hg_subs_free(l->fresh);
    free(l);
  }
}

/* Loads the index and waits for it: nothing else runs on the loop yet. */
static int load_subs(hg_app_t *app) {
  subs_load_t l = {app->api.subs, 0, 0};
  int r = hg_store_submit(app->api.store, subs_load_work, subs_load_done, &l);
  if (r != 0) return r;
  while (!l.done) uv_run(app->loop, UV_RUN_ONCE);
  return l.status;
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
  app.cfg = app.api.cfg = cfg;
  app.loop = &loop;
  raise_fd_limit();
  hg_metrics_init();
  if (uv_loop_init(&loop) != 0) {
    hg_log(HG_LOG_ERROR, "cannot start the event loop", NULL);
    return 1;
  }
  if (hg_crypto_init() != 0) {
    hg_log(HG_LOG_ERROR, "cannot seed the random generator", NULL);
    goto out;
  }
  if (cfg->admin_key) {
    hg_sha256(cfg->admin_key, strlen(cfg->admin_key), app.api.admin_key_hash);
    app.api.has_admin_key = 1;
  }
  if (hg_event_types_new(&app.api.event_types, &cfg->event_types, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "bad configuration", "error", err, NULL);
    goto out;
  }
  char intake_dir[4096], store_shown[512];
  hg_db_redact(cfg->store, store_shown, sizeof(store_shown));
  /* The intake log is a file beside a SQLite store. With PostgreSQL the
   * answer waits for the database's commit instead: an event acknowledged
   * on one node's disk would be stuck there if that node died, which is
   * what sharing the database is meant to prevent (docs/scaling.md). */
  int shared = hg_db_engine_of(cfg->store) == HG_DB_PG;
  snprintf(intake_dir, sizeof(intake_dir), "%s-intake", cfg->store);
  if (!shared && recover_intake(intake_dir, cfg->store) != 0) goto out;
  if (hg_store_open(&app.api.store, &loop, cfg->store, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "cannot open the store", "store", store_shown, "error", err, NULL);
    goto out;
  }
  /* The subscription index, read through the store thread (one connection
   * to the file in this process) before anything is served. */
  if ((app.api.subs = hg_subs_new()) == NULL || load_subs(&app) != 0) {
    hg_log(HG_LOG_ERROR, "cannot load the subscription index", NULL);
    goto out;
  }
  err[0] = '\0';
  if (open_client(&app, err, sizeof(err)) != 0 ||
      hg_dispatcher_new(&app.api.dispatcher, &loop, app.api.store, cfg, &app.api.lua, app.api.subs, app.client) != 0) {
    hg_log(HG_LOG_ERROR, "bad delivery configuration", "error", err, NULL);
    goto out;
  }
  if (cfg->allow_cidrs.n > 0) {
    /* Every start says so: a development config copied to production opens
     * the guard to the gateway's own machine or network. */
    char list[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < cfg->allow_cidrs.n && len < sizeof(list); i++)
      len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? "," : "", cfg->allow_cidrs.items[i]);
    hg_log(HG_LOG_WARN, "delivery.allow_cidrs opens the SSRF guard: any webhook may reach these networks",
           "allow_cidrs", list, NULL);
  }
  hg_ingest_opts_t iopts = {
      .loop = &loop,
      .store = app.api.store,
      .intake_dir = cfg->intake_log && !shared ? intake_dir : NULL,
      /* Publishes no longer wait for the store: it yields the CPU to the
       * threads they do wait for (measured in docs/performance.md), but
       * only where it can be given back should the log fail. */
      .store_nice = cfg->intake_log && !shared && can_raise_priority_back() ? STORE_NICE : 0,
      .first_delay_ms = (int64_t)(cfg->schedule[0] * 1000.0),
      .subs = app.api.subs,
      .dispatcher = app.api.dispatcher,
  };
  if (hg_ingest_new(&app.api.ingest, &iopts, err, sizeof(err)) != 0) {
    hg_log(HG_LOG_ERROR, "cannot open the intake log", "error", err, NULL);
    goto out;
  }
  if (hg_recover_new(&app.api.recover, &loop, app.api.store, app.api.dispatcher, cfg->recover_rate,
                     (int64_t)cfg->retention_deliveries_ms) != 0) goto out;
  /* The operational events: published through the ingest, read at each
   * use (close_ingest clears it). */
  if ((app.health = hg_health_new(&app.api.ingest, app.api.subs)) == NULL) goto out;
  hg_dispatcher_on_health(app.api.dispatcher, hg_health_report_cb, app.health);
  /* Before listening: a node refused (its id in use) never answers. */
  if (shared) {
    hg_cluster_opts_t copts = {&loop, app.api.store, app.api.dispatcher, cfg, cluster_changed, &app};
    if (hg_cluster_start(&app.cluster, &copts, err, sizeof(err)) != 0) {
      hg_log(HG_LOG_ERROR, "cannot join the store's nodes", "error", err, NULL);
      goto out;
    }
    hg_ingest_set_node(app.api.ingest, hg_cluster_node_id(app.cluster), (int64_t)cfg->lease_ms);
  }
  {
    unsigned char raw[24];
    if (hg_random(raw, sizeof(raw)) != 0) goto out;
    memcpy(app.internal_key, "hg_internal_", 12);
    hg_hex_encode(raw, sizeof(raw), app.internal_key + 12);
    hg_sha256(app.internal_key, strlen(app.internal_key), app.api.internal_key_hash);
    app.api.has_internal_key = 1;
  }
  json_t *lua_errors = NULL;
  hg_lua_opts_t lopts = hg_app_lua_opts(cfg, &app);
  if (hg_lua_new(&app.api.lua, &lopts, &lua_errors) != 0) {
    size_t i;
    json_t *e;
    json_array_foreach(lua_errors, i, e) hg_log(HG_LOG_ERROR, "plugin error", "error", json_string_value(e), NULL);
    json_decref(lua_errors);
    hg_log(HG_LOG_ERROR, "cannot start: fix the plugin errors above", NULL);
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
  opts.handler = hg_app_handle;
  opts.handler_ud = &app;
  opts.access_log = cfg->access_log;
  if (hg_http_server_new(&app.server, &opts) != 0) goto out;
  /* Handle SIGTERM/SIGINT before listening: once the port accepts
   * connections, a signal must drain them, not kill the process. */
  uv_signal_init(&loop, &app.sig_term);
  uv_signal_init(&loop, &app.sig_int);
  uv_signal_init(&loop, &app.sig_hup);
  app.sig_term.data = app.sig_int.data = app.sig_hup.data = &app;
  uv_signal_start(&app.sig_term, on_signal, SIGTERM);
  uv_signal_start(&app.sig_int, on_signal, SIGINT);
  uv_signal_start(&app.sig_hup, on_hup, SIGHUP);
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
  if (hg_dispatcher_start(app.api.dispatcher) != 0) goto out;
  hg_retention_opts_t ropts = {&loop,
                               app.api.store,
                               cfg->retention_events_ms,
                               cfg->retention_deliveries_ms,
                               cfg->retention_interval_ms,
                               shared ? NULL : intake_dir,
                               app.api.ingest};
  if (hg_retention_start(&app.retention, &ropts) != 0) goto out;
  hg_lua_start(app.api.lua);
  app.memtrim = hg_memtrim_start(&loop, MEMTRIM_INTERVAL_MS);
  hg_log(HG_LOG_INFO, "hookgate started", "version", HG_VERSION, "store", store_shown, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  code = 0;
  hg_log(HG_LOG_INFO, "stopped", NULL);
out:
  if (app.sig_term.loop && !uv_is_closing((uv_handle_t *)&app.sig_term)) {
    /* Failed to start: the signal watchers would keep the loop alive. */
    uv_close((uv_handle_t *)&app.sig_term, signal_close_cb);
    uv_close((uv_handle_t *)&app.sig_int, signal_close_cb);
    uv_close((uv_handle_t *)&app.sig_hup, signal_close_cb);
  }
  hg_http_server_free(app.server);
  if (app.api.lua) hg_lua_shutdown(app.api.lua);
  close_recover(&app);
  hg_dispatcher_free(app.api.dispatcher);
  app.api.dispatcher = NULL;
  close_client(&app);
  /* Before the ingest it borrows. */
  hg_retention_stop(app.retention);
  app.retention = NULL;
  close_ingest(&app);
  hg_cluster_stop(app.cluster);
  app.cluster = NULL;
  hg_store_close(app.api.store);
  hg_memtrim_stop(app.memtrim);
  app.memtrim = NULL;
  /* Let close callbacks run so every handle is released. */
  uv_run(&loop, UV_RUN_DEFAULT);
  hg_ssrf_policy_free(app.ssrf); /* after the client, which checks with it */
  app.ssrf = NULL;
  hg_lua_unref(app.api.lua);
  app.api.lua = NULL;
  hg_router_free(app.router);
  hg_console_free(app.console);
  hg_health_free(app.health);
  hg_subs_free(app.api.subs);
  hg_event_types_free(app.api.event_types);
  hg_api_keycache_free(&app.api);
  if (uv_loop_close(&loop) != 0) hg_log(HG_LOG_WARN, "event loop closed with handles open", NULL);
  return code;
}
