/* api_recover.c: bulk recovery of a webhook's deliveries
 * (POST /v1/webhooks/{id}/recover) and its progress
 * (GET /v1/webhooks/{id}/recover/{recoveryId}); the work is
 * pipeline/recover.c's. */
#include "api/api.h"

#include "base/common.h"
#include "base/ids.h"
#include "net/router.h"
#include "pipeline/recover.h"
#include "store/deliveries.h"
#include "store/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The widest window one recovery may take: a year. */
#define MAX_WINDOW_MS (366LL * 24 * 3600 * 1000)

static int webhook_id_ok(hg_http_req_t *req, const char **wh) {
  *wh = hg_http_req_param(req, "id");
  if (hg_id_valid("wh_", *wh)) return 1;
  hg_http_respond_error(req, 404, "not_found", "webhook not found", NULL);
  return 0;
}

static void started(int status, const hg_recovery_t *rec, void *ud) {
  hg_http_req_t *req = ud;
  if (status == HG_ENOTFOUND) {
    hg_http_respond_error(req, 404, "not_found", "webhook not found", NULL);
    return;
  }
  if (status != 0) {
    hg_api_internal_error(req, "start recovery", status);
    return;
  }
  /* A dry run without missed events, or a small window, may be done
   * already: its counts are final (200). Otherwise it runs on: 202, and
   * GET on its id shows the progress. */
  json_t *body = hg_recovery_json(rec);
  if (body == NULL) {
    hg_api_internal_error(req, "answer recovery", HG_ENOMEM);
    return;
  }
  char loc[128];
  snprintf(loc, sizeof(loc), "/v1/webhooks/%s/recover/%s", hg_recovery_webhook(rec),
           json_string_value(json_object_get(body, "id")));
  hg_http_req_add_header(req, "Location", loc);
  hg_http_respond_json(req, hg_recovery_ended(rec) ? 200 : 202, body);
}

/* A time field: an ISO 8601 date or date-time (hg_parse_time; UTC when it
 * names no offset). */
static int time_field(json_t *body, const char *name, int required, int64_t *out, json_t *details) {
  json_t *v = json_object_get(body, name);
  if (v == NULL) {
    if (required) hg_api_detail(details, name, "is required (an ISO 8601 time, e.g. 2026-12-01T00:00:00Z)");
    return 0;
  }
  if (!json_is_string(v) || hg_parse_time(json_string_value(v), out) != 0) {
    hg_api_detail(details, name, "must be an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T00:00:00Z");
    return 0;
  }
  return 1;
}

static void recover_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  const char *wh;
  if (!webhook_id_ok(req, &wh)) return;
  if (api->recover == NULL) {
    hg_http_respond_error(req, 503, "unavailable", "the gateway is shutting down", NULL);
    return;
  }
  json_t *body = hg_api_parse_body(req, 0);
  if (body == NULL) return;
  static const char *const allowed[] = {"since", "until", "status", "missed", "dryRun", NULL};
  json_t *details = json_array();
  hg_api_reject_unknown(body, allowed, details);
  hg_recover_req_t r = {0};
  hg_copy(r.webhook_id, sizeof(r.webhook_id), wh);
  r.org = who->org[0] ? who->org : NULL;
  int64_t now = hg_wall_ms();
  int have_since = time_field(body, "since", 1, &r.since, details);
  r.until = now;
  int have_until = time_field(body, "until", 0, &r.until, details);
  if (have_until && r.until > now) r.until = now; /* nothing was made after now */
  if (have_since && r.since >= r.until)
    hg_api_detail(details, have_until ? "until" : "since", "the window is empty: since must be before until (or now)");
  else if (have_since && r.until - r.since > MAX_WINDOW_MS)
    hg_api_detail(details, "since", "the window is longer than 366 days: recover it in parts");
  json_t *v = json_object_get(body, "status");
  const char *status = v == NULL ? "failed" : json_is_string(v) ? json_string_value(v) : "";
  if (strcmp(status, "failed") == 0) r.statuses = 1u << HG_DEL_FAILED;
  else if (strcmp(status, "skipped") == 0) r.statuses = 1u << HG_DEL_SKIPPED;
  else if (strcmp(status, "all") == 0) r.statuses = (1u << HG_DEL_FAILED) | (1u << HG_DEL_SKIPPED) | (1u << HG_DEL_SUCCESS);
  else hg_api_detail(details, "status", "must be \"failed\", \"skipped\" or \"all\"");
  if ((v = json_object_get(body, "missed")) != NULL && !json_is_boolean(v))
    hg_api_detail(details, "missed", "must be a boolean");
  else r.missed = json_is_true(v);
  if ((v = json_object_get(body, "dryRun")) != NULL && !json_is_boolean(v))
    hg_api_detail(details, "dryRun", "must be a boolean");
  else r.dry_run = json_is_true(v);
  json_decref(body);
  if (hg_api_refuse(req, &details, 0)) return;
  json_decref(details);
  const hg_recovery_t *other = NULL;
  int rc = hg_recover_start(api->recover, &r, started, req, &other);
  if (rc == HG_EEXIST) {
    char msg[160];
    json_t *o = hg_recovery_json(other);
    snprintf(msg, sizeof(msg), "recovery %s of this webhook over an overlapping window is running",
             o ? json_string_value(json_object_get(o, "id")) : "?");
    json_decref(o);
    hg_http_respond_error(req, 409, "conflict", msg, NULL);
  } else if (rc == HG_EBUSY) {
    hg_http_respond_error(req, 409, "conflict",
                          "8 recoveries are running on this node already: try again once one has ended", NULL);
  } else if (rc != 0) {
    hg_api_internal_error(req, "start recovery", rc);
  }
}

static void recovery_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  const char *wh;
  if (!webhook_id_ok(req, &wh)) return;
  const char *id = hg_http_req_param(req, "recoveryId");
  const hg_recovery_t *rec = NULL;
  if (hg_id_valid("rcv_", id) && api->recover != NULL) rec = hg_recover_find(api->recover, id);
  /* Another organization's recovery is not found, as its webhook is not. */
  const char *org = rec ? hg_recovery_org(rec) : NULL;
  if (rec == NULL || strcmp(hg_recovery_webhook(rec), wh) != 0 ||
      (who->org[0] && (org == NULL || strcmp(org, who->org) != 0))) {
    hg_http_respond_error(req, 404, "not_found", "recovery not found (recoveries are kept in memory on the node "
                                                 "that ran them, the last 64)", NULL);
    return;
  }
  json_t *body = hg_recovery_json(rec);
  if (body == NULL) hg_api_internal_error(req, "answer recovery", HG_ENOMEM);
  else hg_http_respond_json(req, 200, body);
}

HG_API_ROUTE(recover, HG_SCOPE_WEBHOOKS_WRITE)
HG_API_ROUTE(recovery, HG_SCOPE_WEBHOOKS_READ)

int hg_api_recover_add_routes(hg_api_t *api, hg_router_t *router) {
  static const hg_route_def_t routes[] = {
      HG_API_DEF("POST", "/v1/webhooks/{id}/recover", recover),
      HG_API_DEF("GET", "/v1/webhooks/{id}/recover/{recoveryId}", recovery),
      {NULL, NULL, NULL, 0},
  };
  return hg_router_add_all(router, routes, api);
}
