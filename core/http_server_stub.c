/* TEMPORARY until the http branch merges. */
#include "http_server.h"
void hg_http_limits_default(hg_http_limits_t *l) {
  l->max_header_bytes = 16384; l->max_headers = 100; l->max_body = 1 << 20;
  l->header_timeout_ms = 10000; l->idle_timeout_ms = 60000; l->body_timeout_ms = 30000; l->max_connections = 10000;
}
#include <stdlib.h>
int hg_http_server_new(hg_http_server_t **o, const hg_http_server_opts_t *p) { (void)o; (void)p; abort(); }
int hg_http_server_listen(hg_http_server_t *s, const char *a, const char *c, const char *k, char *e, size_t n) { (void)s; (void)a; (void)c; (void)k; (void)e; (void)n; abort(); }
void hg_http_server_shutdown(hg_http_server_t *s, void (*d)(void *), void *u) { (void)s; (void)d; (void)u; abort(); }
void hg_http_server_free(hg_http_server_t *s) { (void)s; }
const char *hg_http_req_header(const hg_http_req_t *r, const char *n) { (void)r; (void)n; abort(); }
const char *hg_http_req_param(const hg_http_req_t *r, const char *n) { (void)r; (void)n; abort(); }
void hg_http_req_add_header(hg_http_req_t *r, const char *n, const char *v) { (void)r; (void)n; (void)v; abort(); }
void hg_http_respond(hg_http_req_t *r, int s, const char *c, const char *b, size_t l) { (void)r; (void)s; (void)c; (void)b; (void)l; abort(); }
void hg_http_respond_json(hg_http_req_t *r, int s, json_t *b) { (void)r; (void)s; (void)b; abort(); }
void hg_http_respond_error(hg_http_req_t *r, int s, const char *t, const char *m, json_t *d) { (void)r; (void)s; (void)t; (void)m; (void)d; abort(); }
