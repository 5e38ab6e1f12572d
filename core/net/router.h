/* router.h: maps method + path to a handler, with {name} path parameters.
 *
 *   hg_router_add(r, "GET", "/v1/webhooks/{id}", get_webhook, app);
 *
 * Parameters are percent-decoded into req->params. A path that matches no
 * route answers 404; a path that matches with another method answers 405
 * with an Allow header. Both answers are JSON errors. */
#ifndef HG_ROUTER_H
#define HG_ROUTER_H

#include "net/http_server.h"

typedef struct hg_router hg_router_t;

hg_router_t *hg_router_new(void);
void hg_router_free(hg_router_t *r); /* accepts NULL */

/* Adds a route. pattern segments are literals or "{name}" (a whole
 * segment). Returns 0, HG_EINVAL for a bad pattern, or HG_ENOMEM. */
int hg_router_add(hg_router_t *r, const char *method, const char *pattern, hg_http_handler_fn fn,
                  void *ud);

typedef struct hg_route_def {
  const char *method;
  const char *pattern;
  hg_http_handler_fn fn;
  /* The HG_SCOPE_* bits a key needs, any one of them (0: no key). The
   * handler enforces it (HG_API_ROUTE defines both from one constant);
   * the router only keeps it for hg_router_each, so that `hookgate routes`
   * and the tests read what the server requires. */
  unsigned scope;
} hg_route_def_t;

/* Adds each route of defs (ended by a NULL method), all with ud. Returns
 * 0 or the first error. */
int hg_router_add_all(hg_router_t *r, const hg_route_def_t *defs, void *ud);

/* Sets the handler for paths no route matches (instead of the 404). */
void hg_router_set_fallback(hg_router_t *r, hg_http_handler_fn fn, void *ud);

/* Finds the route for req and calls its handler, or answers 404/405. A GET
 * route also answers HEAD. */
void hg_router_dispatch(hg_router_t *r, hg_http_req_t *req);

/* Calls cb for each route, in the order they were added, with the scope
 * its definition declared (0 for a route added by hg_router_add). */
void hg_router_each(const hg_router_t *r,
                    void (*cb)(const char *method, const char *pattern, unsigned scope, void *ud), void *ud);

/* Percent-decodes src[0..len) into a new string; "+" stays "+" unless
 * plus_is_space. NULL on a bad escape, an encoded NUL, or no memory. */
char *hg_url_decode(const char *src, size_t len, int plus_is_space);

/* Finds name in a query string ("a=1&b=2") and returns its decoded value
 * (malloc'd), or NULL when absent. *bad is set when present but malformed. */
char *hg_query_get(const char *query, const char *name, int *bad);

#endif
