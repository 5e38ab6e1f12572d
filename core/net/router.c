/* router.c: a small segment-matching router.
 *
 * Routes are few (tens) and matched by walking the path's segments against
 * each route's, which costs less than building a tree would. */
#include "net/router.h"

#include "base/buf.h"
#include "base/common.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 12

typedef struct route {
  char method[8];
  char *pattern;
  char *segs[MAX_SEGS];  /* "{id}" marks a parameter */
  char *names[MAX_SEGS]; /* "id" for a parameter segment, else NULL */
  size_t n_segs;
  hg_http_handler_fn fn;
  void *ud;
  unsigned scope; /* as declared by its hg_route_def_t; enforced by fn */
} route_t;

struct hg_router {
  route_t *routes;
  size_t n, cap;
  hg_http_handler_fn fallback;
  void *fallback_ud;
};

void hg_router_set_fallback(hg_router_t *r, hg_http_handler_fn fn, void *ud) {
  r->fallback = fn;
  r->fallback_ud = ud;
}

hg_router_t *hg_router_new(void) { return calloc(1, sizeof(hg_router_t)); }

static void route_close(route_t *rt) {
  free(rt->pattern);
  for (size_t i = 0; i < rt->n_segs; i++) {
    free(rt->segs[i]);
    free(rt->names[i]);
  }
}

void hg_router_free(hg_router_t *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n; i++) route_close(&r->routes[i]);
  free(r->routes);
  free(r);
}

int hg_router_add(hg_router_t *r, const char *method, const char *pattern, hg_http_handler_fn fn,
                  void *ud) {
  if (pattern[0] != '/' || strlen(method) >= sizeof(((route_t *)0)->method)) return HG_EINVAL;
  if (hg_grow(&r->routes, &r->cap, r->n + 1, sizeof(*r->routes), 16) != 0) return HG_ENOMEM;
  route_t *rt = &r->routes[r->n];
  memset(rt, 0, sizeof(*rt));
  strcpy(rt->method, method);
  rt->fn = fn;
  rt->ud = ud;
  if ((rt->pattern = strdup(pattern)) == NULL) goto nomem;
  size_t n_params = 0;
  for (const char *p = pattern + 1; *p;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (rt->n_segs == MAX_SEGS || len == 0) goto bad;
    if ((rt->segs[rt->n_segs] = strndup(p, len)) == NULL) goto nomem;
    const char *seg = rt->segs[rt->n_segs++];
    if (seg[0] == '{') {
      if (seg[len - 1] != '}' || len < 3 || ++n_params > HG_HTTP_MAX_PARAMS) goto bad;
      if ((rt->names[rt->n_segs - 1] = strndup(seg + 1, len - 2)) == NULL) goto nomem;
    }
    p += len + (slash ? 1 : 0);
  }
  r->n++;
  return 0;
bad:
  route_close(rt);
  return HG_EINVAL;
nomem:
  route_close(rt);
  return HG_ENOMEM;
}

int hg_router_add_all(hg_router_t *r, const hg_route_def_t *defs, void *ud) {
  for (const hg_route_def_t *d = defs; d->method != NULL; d++) {
    int rc = hg_router_add(r, d->method, d->pattern, d->fn, ud);
    if (rc != 0) return rc;
    r->routes[r->n - 1].scope = d->scope;
  }
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char *hg_url_decode(const char *src, size_t len, int plus_is_space) {
  char *out = malloc(len + 1), *o = out;
  if (out == NULL) return NULL;
  for (size_t i = 0; i < len; i++) {
    if (src[i] == '%') {
      int hi = i + 2 < len ? hexval(src[i + 1]) : -1;
      int lo = i + 2 < len ? hexval(src[i + 2]) : -1;
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        free(out);
        return NULL;
      }
      *o++ = (char)(hi * 16 + lo);
      i += 2;
    } else if (src[i] == '+' && plus_is_space) {
      *o++ = ' ';
    } else {
      *o++ = src[i];
    }
  }
  *o = '\0';
  return out;
}

char *hg_query_get(const char *query, const char *name, int *bad) {
  size_t nlen = strlen(name);
  *bad = 0;
  for (const char *p = query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : len;
    if (klen == nlen && memcmp(p, name, nlen) == 0) {
      const char *v = eq ? eq + 1 : p + len;
      char *out = hg_url_decode(v, (size_t)(p + len - v), 1);
      if (out == NULL) *bad = 1;
      return out;
    }
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

/* Matches path against rt, filling req->params on success. */
static int match(const route_t *rt, const char *path, hg_http_req_t *req) {
  const char *p = path + 1;
  size_t i = 0;
  req->n_params = 0;
  for (;;) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (i == rt->n_segs) return len == 0 && slash == NULL;
    if (len == 0) return 0;
    const char *seg = rt->segs[i];
    if (seg[0] == '{') {
      if (req != NULL) {
        char *v = hg_url_decode(p, len, 0);
        if (v == NULL) return 0;
        req->params[req->n_params].name = rt->names[i];
        req->params[req->n_params++].value = v;
      }
    } else if (strlen(seg) != len || memcmp(seg, p, len) != 0) {
      return 0;
    }
    i++;
    if (slash == NULL) return i == rt->n_segs;
    p = slash + 1;
  }
}

static void clear_params(hg_http_req_t *req) {
  for (size_t i = 0; i < req->n_params; i++) free(req->params[i].value);
  req->n_params = 0;
}

void hg_router_dispatch(hg_router_t *r, hg_http_req_t *req) {
  char allow[64] = "";
  size_t allow_len = 0;
  int is_head = strcmp(req->method, "HEAD") == 0;
  for (size_t i = 0; i < r->n; i++) {
    route_t *rt = &r->routes[i];
    hg_http_req_t probe;
    probe.n_params = 0;
    if (!match(rt, req->path, &probe)) {
      clear_params(&probe);
      continue;
    }
    if (strcmp(rt->method, req->method) == 0 || (is_head && strcmp(rt->method, "GET") == 0)) {
      memcpy(req->params, probe.params, sizeof(probe.params));
      req->n_params = probe.n_params;
      rt->fn(req, rt->ud);
      return;
    }
    clear_params(&probe);
    if (allow_len + strlen(rt->method) + 3 < sizeof(allow))
      allow_len += (size_t)snprintf(allow + allow_len, sizeof(allow) - allow_len, "%s%s", allow_len ? ", " : "",
                                    rt->method);
  }
  if (allow_len > 0) {
    hg_http_req_add_header(req, "Allow", allow);
    hg_http_respond_error(req, 405, "method_not_allowed", "method not allowed for this path", NULL);
  } else if (r->fallback) {
    r->fallback(req, r->fallback_ud);
  } else {
    hg_http_respond_error(req, 404, "not_found", "no such endpoint", NULL);
  }
}

void hg_router_each(const hg_router_t *r,
                    void (*cb)(const char *method, const char *pattern, unsigned scope, void *ud), void *ud) {
  for (size_t i = 0; i < r->n; i++) cb(r->routes[i].method, r->routes[i].pattern, r->routes[i].scope, ud);
}
