/* TEMPORARY until the http branch merges. */
#include "http_server.h"
void hg_http_limits_default(hg_http_limits_t *l) {
  l->max_header_bytes = 16384; l->max_headers = 100; l->max_body = 1 << 20;
  l->header_timeout_ms = 10000; l->idle_timeout_ms = 60000; l->body_timeout_ms = 30000; l->max_connections = 10000;
}
