/* api_deliveries.c: the SDK's testWebhook, listWebhookDeliveries and
 * replayWebhookDelivery, the delivery detail, and the admin switch that
 * pauses delivery. */
#include "api/api.h"

#include "base/common.h"
#include "store/deliveries.h"
#include "pipeline/dispatcher.h"
#include "pipeline/event_types.h"
#include "base/ids.h"
#include "store/keys.h"
#include "net/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_EVENT_TYPE "webhook.test"

typedef struct djob {
  hg_api_t *api;
  hg_http_req_t *req;
  const char *org;
  char org_buf[132];
  char wh[HG_ID_MAX];
  char del[HG_ID_MAX];
  int64_t seq;
  int in_line; /* replay: its webhook is ordered */
  /* test */
  char type[132];
  char *payload;
  size_t payload_len;
  char event_id[HG_EVENT_ID_MAX];
  /* list */
  int page_size, status, more;
  char after[HG_ID_MAX], last[HG_ID_MAX];
  char *event;
  json_t *out;
} djob_t;

static djob_t *djob_new(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  const char *wh = hg_http_req_param(req, "id");
  if (!hg_id_valid("wh_", wh)) {
    hg_http_respond_error(req, 404, "not_found", "webhook not found", NULL);
    return NULL;
  }
  const char *del = hg_http_req_param(req, "deliveryId");
  if (del != NULL && !hg_id_valid("del_", del)) {
    hg_http_respond_error(req, 404, "not_found", "delivery not found", NULL);
    return NULL;
  }
  djob_t *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    hg_api_internal_error(req, "allocate", HG_ENOMEM);
    return NULL;
  }
  j->api = api;
  j->req = req;
  if (who->org[0]) {
    snprintf(j->org_buf, sizeof(j->org_buf), "%s", who->org);
    j->org = j->org_buf;
  }
  snprintf(j->wh, sizeof(j->wh), "%s", wh);
  if (del) snprintf(j->del, sizeof(j->del), "%s", del);
  return j;
}

static void djob_free(djob_t *j) {
  if (j == NULL) return;
  free(j->payload);
  free(j->event);
  json_decref(j->out);
  free(j);
}

static void submit(djob_t *j, hg_store_work_fn work, hg_store_done_fn done) {
  int r = hg_store_submit(j->api->store, work, done, j);
  if (r != 0) {
    hg_api_internal_error(j->req, "store submit", r);
    djob_free(j);
  }
}

static void not_found_or_error(djob_t *j, int status, const char *what) {
  if (status == HG_ENOTFOUND)
    hg_http_respond_error(j->req, 404, "not_found", j->del[0] ? "delivery not found" : "webhook not found", NULL);
  else hg_api_internal_error(j->req, what, status);
}

/* --- POST /v1/webhooks/{id}/test --------------------------------------------- */

static void test_result(const hg_dispatch_result_t *res, void *ud) {
  djob_t *j = ud;
  /* Not loaded (the store failed to read it): the id is the one created. */
  const char *del = res->delivery_id[0] ? res->delivery_id : j->del;
  json_t *body = json_pack("{s:i,s:s%,s:I,s:b,s:s}", "statusCode", res->status_code, "responseBody",
                           res->body ? res->body : "", res->body ? res->body_len : (size_t)0, "durationMs",
                           (json_int_t)res->duration_ms, "success", res->success, "deliveryId", del);
  if (body == NULL) /* the receiver's body was not UTF-8 */
    body = json_pack("{s:i,s:s,s:I,s:b,s:s}", "statusCode", res->status_code, "responseBody",
                     "(response body is not UTF-8)", "durationMs", (json_int_t)res->duration_ms, "success",
                     res->success, "deliveryId", del);
  json_object_set_new(body, "error", res->error ? json_string(res->error) : json_null());
  hg_http_respond_json(j->req, 200, body);
  djob_free(j);
}

static int test_work(hg_db_t *db, void *ud) {
  djob_t *j = ud;
  return hg_deliveries_create_test(db, j->wh, j->org, j->type, j->payload, j->payload_len, hg_wall_ms(), j->event_id,
                                   &j->seq, j->del);
}

static void test_created(int status, void *ud) {
  djob_t *j = ud;
  if (status != 0) {
    not_found_or_error(j, status, "create test delivery");
    djob_free(j);
    return;
  }
  int r = hg_dispatcher_send_now(j->api->dispatcher, j->seq, test_result, j);
  if (r != 0) {
    if (r == HG_ESTATE) hg_http_respond_error(j->req, 503, "unavailable", "the gateway is shutting down", NULL);
    else if (r == HG_EBUSY)
      hg_http_respond_error(j->req, 409, "conflict", "the delivery is being sent right now; try again shortly", NULL);
    else hg_api_internal_error(j->req, "send the test delivery", r);
    djob_free(j);
  }
}

static void test_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  djob_t *j = djob_new(api, req, who);
  if (j == NULL) return;
  json_t *body = hg_api_parse_body(req, 1);
  if (body == NULL) {
    djob_free(j);
    return;
  }
  static const char *const allowed[] = {"event", "data", NULL};
  json_t *details = json_array();
  hg_api_reject_unknown(body, allowed, details);
  snprintf(j->type, sizeof(j->type), "%s", TEST_EVENT_TYPE);
  json_t *v = json_object_get(body, "event");
  if (v != NULL) {
    if (!json_is_string(v) || !hg_event_types_known(api->event_types, json_string_value(v)))
      hg_api_detail(details, "event", "must be a known event type");
    else snprintf(j->type, sizeof(j->type), "%s", json_string_value(v));
  }
  v = json_object_get(body, "data");
  char *data = NULL;
  if (v != NULL && !json_is_object(v)) hg_api_detail(details, "data", "must be a JSON object");
  else data = v ? json_dumps(v, JSON_COMPACT) : NULL;
  if (json_array_size(details) > 0) {
    free(data);
    json_decref(body);
    hg_api_validation_error(req, details);
    djob_free(j);
    return;
  }
  json_decref(details);
  json_decref(body);
  char ts[25];
  hg_format_time(hg_wall_ms(), ts);
  if (data == NULL) {
    size_t cap = strlen(j->wh) + 64;
    data = malloc(cap);
    if (data) snprintf(data, cap, "{\"test\":true,\"webhookId\":\"%s\"}", j->wh);
  }
  size_t cap = (data ? strlen(data) : 0) + strlen(j->type) + 64;
  j->payload = data ? malloc(cap) : NULL;
  if (j->payload == NULL) {
    free(data);
    hg_api_internal_error(req, "allocate", HG_ENOMEM);
    djob_free(j);
    return;
  }
  j->payload_len = (size_t)snprintf(j->payload, cap, "{\"type\":\"%s\",\"timestamp\":\"%s\",\"data\":%s}", j->type, ts, data);
  free(data);
  submit(j, test_work, test_created);
}

/* --- GET /v1/webhooks/{id}/deliveries ------------------------------------------- */

static int list_work(hg_db_t *db, void *ud) {
  djob_t *j = ud;
  return hg_deliveries_list_json(db, j->wh, j->org, j->after, j->page_size, j->status, j->event, j->out, j->last,
                                 &j->more);
}

static void list_done(int status, void *ud) {
  djob_t *j = ud;
  if (status != 0) {
    not_found_or_error(j, status, "list deliveries");
  } else {
    json_t *next = json_null();
    if (j->more) {
      char tok[96];
      hg_api_page_token(j->last, tok, sizeof(tok));
      next = json_string(tok);
    }
    hg_http_respond_json(j->req, 200, json_pack("{s:O,s:o}", "deliveries", j->out, "nextPageToken", next));
  }
  djob_free(j);
}

static void list_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  int page_size, bad = 0;
  char after[HG_ID_MAX];
  if (hg_api_page_params(req, "del_", &page_size, after, sizeof(after)) != 0) return;
  json_t *details = json_array();
  int status = -1;
  char *st = hg_query_get(req->query, "status", &bad);
  hg_delivery_status_t ds;
  if (bad || (st && hg_delivery_status_parse(st, &ds) != 0))
    hg_api_detail(details, "status", "must be pending, success, failed or skipped");
  else if (st)
    status = (int)ds;
  free(st);
  char *event = hg_query_get(req->query, "event", &bad);
  if (bad || (event && !hg_event_type_name_valid(event)))
    hg_api_detail(details, "event", "must be an event type");
  if (json_array_size(details) > 0) {
    free(event);
    hg_api_validation_error(req, details);
    return;
  }
  json_decref(details);
  djob_t *j = djob_new(api, req, who);
  if (j == NULL) {
    free(event);
    return;
  }
  j->page_size = page_size;
  j->status = status;
  j->event = event;
  snprintf(j->after, sizeof(j->after), "%s", after);
  j->out = json_array();
  submit(j, list_work, list_done);
}

/* --- GET /v1/webhooks/{id}/deliveries/{deliveryId} ------------------------------ */

static int get_work(hg_db_t *db, void *ud) {
  djob_t *j = ud;
  return hg_deliveries_get_json(db, j->wh, j->org, j->del, &j->out);
}

static void get_done(int status, void *ud) {
  djob_t *j = ud;
  if (status != 0) {
    not_found_or_error(j, status, "get delivery");
  } else {
    hg_http_respond_json(j->req, 200, j->out);
    j->out = NULL;
  }
  djob_free(j);
}

static void get_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  djob_t *j = djob_new(api, req, who);
  if (j) submit(j, get_work, get_done);
}

/* --- POST /v1/webhooks/{id}/deliveries/{deliveryId}/replay ---------------------- */

static int replay_work(hg_db_t *db, void *ud) {
  djob_t *j = ud;
  return hg_deliveries_replay(db, j->wh, j->org, j->del, hg_wall_ms(), &j->seq, &j->in_line);
}

static void replay_done(int status, void *ud) {
  djob_t *j = ud;
  if (status != 0) {
    not_found_or_error(j, status, "replay delivery");
  } else {
    /* Durable first (pending and due now in the store), then sent at once:
     * a crash in between still sends it after the restart. An ordered
     * webhook's goes in its turn instead: queued, it is sent when it is
     * its line's head (docs/api.md#ordering). */
    int r = 0;
    if (j->in_line) hg_dispatcher_enqueue(j->api->dispatcher, &j->seq, 1, hg_wall_ms());
    else r = hg_dispatcher_send_now(j->api->dispatcher, j->seq, NULL, NULL);
    if (r == HG_EBUSY)
      hg_http_respond_error(j->req, 409, "conflict", "the delivery is being sent right now; try again shortly", NULL);
    else
      hg_http_respond_json(j->req, 202, json_pack("{s:s,s:s}", "id", j->del, "status", "pending"));
  }
  djob_free(j);
}

static int seq_work(hg_db_t *db, void *ud) {
  djob_t *j = ud;
  return hg_deliveries_seq(db, j->wh, j->org, j->del, &j->seq);
}

static void seq_done(int status, void *ud) {
  djob_t *j = ud;
  if (status != 0) {
    not_found_or_error(j, status, "find delivery");
    djob_free(j);
  } else if (hg_dispatcher_busy(j->api->dispatcher, j->seq)) {
    hg_http_respond_error(j->req, 409, "conflict", "the delivery is being sent right now; try again shortly", NULL);
    djob_free(j);
  } else {
    submit(j, replay_work, replay_done);
  }
}

static void replay_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  djob_t *j = djob_new(api, req, who);
  if (j) submit(j, seq_work, seq_done);
}

/* --- admin: pause and resume delivery -------------------------------------------- */

static void delivery_state(hg_api_t *api, hg_http_req_t *req) {
  hg_dispatcher_stats_t st;
  hg_dispatcher_stats(api->dispatcher, &st);
  hg_http_respond_json(req, 200,
                       json_pack("{s:b,s:I,s:I}", "paused", hg_dispatcher_paused(api->dispatcher), "queued",
                                 (json_int_t)st.queued, "inFlight", (json_int_t)st.in_flight));
}

typedef struct state_job {
  hg_api_t *api;
  hg_http_req_t *req;
} state_job_t;

static int barrier_work(hg_db_t *db, void *ud) {
  (void)db;
  (void)ud;
  return 0;
}

static void state_done(int status, void *ud) {
  (void)status;
  state_job_t *j = ud;
  delivery_state(j->api, j->req);
  free(j);
}

static void state_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  (void)who;
  /* Through the store, which writes nothing for it: its completion runs
   * after those of every event answered before this request. An event
   * answered from the intake log reaches the queue once the store has it,
   * so the counts include it only then. */
  state_job_t *j = malloc(sizeof(*j));
  if (j != NULL) *j = (state_job_t){api, req};
  if (j == NULL || hg_store_submit(api->store, barrier_work, state_done, j) != 0) {
    free(j);
    delivery_state(api, req);
  }
}

static void pause_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  hg_log(HG_LOG_WARN, "delivery paused", "key", who->key_id, NULL);
  hg_dispatcher_pause(api->dispatcher);
  delivery_state(api, req);
}

static void resume_authorized(hg_api_t *api, hg_http_req_t *req, const hg_principal_t *who) {
  hg_log(HG_LOG_INFO, "delivery resumed", "key", who->key_id, NULL);
  hg_dispatcher_resume(api->dispatcher);
  delivery_state(api, req);
}

HG_API_ROUTE(test, HG_SCOPE_WEBHOOKS_WRITE)
HG_API_ROUTE(list, HG_SCOPE_WEBHOOKS_READ)
HG_API_ROUTE(get, HG_SCOPE_WEBHOOKS_READ)
HG_API_ROUTE(replay, HG_SCOPE_WEBHOOKS_WRITE)
HG_API_ROUTE(state, HG_SCOPE_ADMIN)
HG_API_ROUTE(pause, HG_SCOPE_ADMIN)
HG_API_ROUTE(resume, HG_SCOPE_ADMIN)

int hg_api_deliveries_add_routes(hg_api_t *api, hg_router_t *router) {
  static const hg_route_def_t routes[] = {
      HG_API_DEF("POST", "/v1/webhooks/{id}/test", test),
      HG_API_DEF("GET", "/v1/webhooks/{id}/deliveries", list),
      HG_API_DEF("GET", "/v1/webhooks/{id}/deliveries/{deliveryId}", get),
      HG_API_DEF("POST", "/v1/webhooks/{id}/deliveries/{deliveryId}/replay", replay),
      HG_API_DEF("GET", "/v1/admin/delivery", state),
      HG_API_DEF("POST", "/v1/admin/delivery/pause", pause),
      HG_API_DEF("POST", "/v1/admin/delivery/resume", resume),
      {NULL, NULL, NULL, 0},
  };
  return hg_router_add_all(router, routes, api);
}
