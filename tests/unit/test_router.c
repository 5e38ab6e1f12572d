#include "base/common.h"
#include "hgtest.h"
#include "net/router.h"

#include <stdio.h>
#include <stdlib.h>

static int hits[8];
static char last_params[256];

static void handler(hg_http_req_t *req, void *ud) {
  hits[(size_t)ud]++;
  last_params[0] = '\0';
  for (size_t i = 0; i < req->n_params; i++) {
    strcat(last_params, req->params[i].name);
    strcat(last_params, "=");
    strcat(last_params, req->params[i].value);
    strcat(last_params, ";");
    free(req->params[i].value);
  }
  req->n_params = 0;
}

static void dispatch(hg_router_t *r, const char *method, const char *path) {
  hg_http_req_t req;
  memset(&req, 0, sizeof(req));
  req.method = method;
  req.path = (char *)path;
  req.query = "";
  hg_router_dispatch(r, &req);
}

static void matching(void) {
  hg_router_t *r = hg_router_new();
  CHECK_EQ_INT(hg_router_add(r, "GET", "/v1/webhooks", handler, (void *)0), 0);
  CHECK_EQ_INT(hg_router_add(r, "GET", "/v1/webhooks/{id}", handler, (void *)1), 0);
  CHECK_EQ_INT(hg_router_add(r, "GET", "/v1/webhooks/{id}/deliveries/{deliveryId}", handler, (void *)2), 0);
  CHECK_EQ_INT(hg_router_add(r, "POST", "/v1/webhooks/{id}/deliveries/{deliveryId}/replay", handler, (void *)3), 0);
  CHECK_EQ_INT(hg_router_add(r, "GET", "bad", handler, NULL), HG_EINVAL);
  CHECK_EQ_INT(hg_router_add(r, "GET", "/a/{x", handler, NULL), HG_EINVAL);
  dispatch(r, "GET", "/v1/webhooks");
  CHECK_EQ_INT(hits[0], 1);
  dispatch(r, "GET", "/v1/webhooks/wh_1");
  CHECK_EQ_INT(hits[1], 1);
  CHECK_EQ_STR(last_params, "id=wh_1;");
  dispatch(r, "HEAD", "/v1/webhooks/wh%5F2");
  CHECK_EQ_INT(hits[1], 2);
  CHECK_EQ_STR(last_params, "id=wh_2;");
  dispatch(r, "GET", "/v1/webhooks/wh_1/deliveries/del_2");
  CHECK_EQ_INT(hits[2], 1);
  CHECK_EQ_STR(last_params, "id=wh_1;deliveryId=del_2;");
  dispatch(r, "POST", "/v1/webhooks/wh_1/deliveries/del_2/replay");
  CHECK_EQ_INT(hits[3], 1);
  hg_router_free(r);
}

static void collect(const char *method, const char *pattern, unsigned scope, void *ud) {
  char line[96];
  snprintf(line, sizeof(line), "%s %s %u;", method, pattern, scope);
  strcat(ud, line);
}

/* hg_router_each reports the scope each definition declared, in order. */
static void scopes(void) {
  static const hg_route_def_t defs[] = {
      {"GET", "/open", handler, 0},
      {"POST", "/v1/things/{id}", handler, 6},
      {NULL, NULL, NULL, 0},
  };
  hg_router_t *r = hg_router_new();
  CHECK_EQ_INT(hg_router_add(r, "GET", "/plain", handler, NULL), 0);
  CHECK_EQ_INT(hg_router_add_all(r, defs, NULL), 0);
  char out[256] = "";
  hg_router_each(r, collect, out);
  CHECK_EQ_STR(out, "GET /plain 0;GET /open 0;POST /v1/things/{id} 6;");
  hg_router_free(r);
}

static void decoding(void) {
  char *s = hg_url_decode("a%20b+c", 7, 1);
  CHECK_EQ_STR(s, "a b c");
  free(s);
  CHECK(hg_url_decode("a%2", 3, 0) == NULL);
  CHECK(hg_url_decode("a%00", 4, 0) == NULL);
  CHECK(hg_url_decode("%zz", 3, 0) == NULL);
  int bad;
  s = hg_query_get("pageSize=5&pageToken=abc%3D", "pageToken", &bad);
  CHECK_EQ_STR(s, "abc=");
  free(s);
  CHECK(hg_query_get("pageSize=5", "pageToken", &bad) == NULL);
  CHECK_EQ_INT(bad, 0);
  s = hg_query_get("flag&x=1", "flag", &bad);
  CHECK_EQ_STR(s, "");
  free(s);
}

int main(void) {
  RUN(matching);
  RUN(scopes);
  RUN(decoding);
  return HGT_DONE();
}
