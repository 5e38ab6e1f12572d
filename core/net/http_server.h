/* http_server.h: the HTTP/1.1 server on libuv + llhttp, plain or TLS.
 *
 * One server owns any number of listeners. Each complete request is handed
 * to the handler; the handler answers it with exactly one hg_http_respond*()
 * call, at once or later (after a store commit, say). Responses on a
 * connection go out in request order even when answered out of order
 * (pipelining). If the connection dies before the answer, the request stays
 * valid until the handler responds; the response is then dropped. */
#ifndef HG_HTTP_SERVER_H
#define HG_HTTP_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hg_http_server hg_http_server_t;
typedef struct hg_http_req hg_http_req_t;

typedef struct hg_http_header {
  char *name;  /* as received; compare case-insensitively */
  char *value; /* NUL-terminated */
} hg_http_header_t;

#define HG_HTTP_MAX_PARAMS 4

struct hg_http_req {
  /* Read-only for handlers. */
  const char *method; /* "GET", "POST", ... */
  char *target;       /* raw request target: "/v1/webhooks?pageSize=5" */
  char *path;         /* target up to '?', not decoded */
  char *query;        /* after '?', not decoded; "" when absent */
  hg_http_header_t *headers;
  size_t n_headers;
  char *body; /* NUL-terminated for convenience; body_len excludes the NUL */
  size_t body_len;
  char request_id[24];       /* "req_" + random, echoed as X-Request-Id */
  uint64_t start_ns;         /* hg_now_ns() when the first byte arrived */
  const char *remote_addr;   /* "127.0.0.1" */
  int is_tls;
  /* Filled by the router. */
  struct {
    const char *name;
    char *value; /* decoded */
  } params[HG_HTTP_MAX_PARAMS];
  size_t n_params;
  /* Free for the application (e.g. the authenticated key). */
  void *app_data;
};

typedef void (*hg_http_handler_fn)(hg_http_req_t *req, void *ud);

typedef struct hg_http_limits {
  size_t max_header_bytes; /* request line + headers; default 16384 -> 431 */
  unsigned max_headers;    /* default 100 -> 431 */
  size_t max_body;         /* default 1 MiB -> 413, rest not read */
  uint64_t header_timeout_ms; /* headers must arrive within; default 10000 */
  uint64_t idle_timeout_ms;   /* keep-alive idle; default 60000 */
  uint64_t body_timeout_ms;   /* body must arrive within; default 30000 */
  unsigned max_connections;   /* default 10000; over it, accept then close */
} hg_http_limits_t;

/* Fills limits with the defaults above. */
void hg_http_limits_default(hg_http_limits_t *limits);

typedef struct hg_http_server_opts {
  uv_loop_t *loop;
  hg_http_limits_t limits;
  hg_http_handler_fn handler;
  void *handler_ud;
  int access_log; /* nonzero: one info line per request */
} hg_http_server_opts_t;

/* Creates a server (no listener yet). A limit left at zero takes its default
 * (so a zeroed opts.limits works). Returns 0 or HG_ENOMEM. */
int hg_http_server_new(hg_http_server_t **out, const hg_http_server_opts_t *opts);

/* Binds and listens on addr: "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:0"
 * (port 0 picks a free port). When tls_cert and tls_key are both non-NULL
 * (PEM file paths) the listener speaks TLS. On failure returns a negative
 * code and writes a sentence into err, e.g. "listen 127.0.0.1:8080: address
 * already in use". On success logs "listening" with addr=<bound address>. */
int hg_http_server_listen(hg_http_server_t *s, const char *addr, const char *tls_cert,
                          const char *tls_key, char *err, size_t errlen);

/* Graceful shutdown: stop accepting, let requests in flight be answered,
 * close idle connections and each busy one after its last response. Calls
 * done(ud) on the loop once every connection is closed. Not reentrant. */
void hg_http_server_shutdown(hg_http_server_t *s, void (*done)(void *ud), void *ud);

/* Nonzero once hg_http_server_shutdown() was called. */
int hg_http_server_draining(const hg_http_server_t *s);

/* Number of open connections. */
size_t hg_http_server_connections(const hg_http_server_t *s);

/* What the server's connections hold, for tests and diagnostics. */
typedef struct hg_http_server_stats {
  size_t connections;      /* open */
  size_t idle_connections; /* open, with no request begun or waiting for its answer */
  size_t idle_held_bytes;  /* request and input buffers the idle ones hold: 0, since
                            * an idle connection keeps none */
  size_t conn_bytes;       /* the size of one connection's own struct */
  size_t pooled_requests;  /* finished requests the server keeps for the next ones */
  size_t pooled_bytes;     /* their memory, buffers included; bounded (512 KiB) */
} hg_http_server_stats_t;

/* Fills st. Walks every connection: O(connections). */
void hg_http_server_stats(const hg_http_server_t *s, hg_http_server_stats_t *st);

/* Added: the bound address of the i-th successful listen, as logged
 * ("127.0.0.1:41234", "[::1]:41234"); NULL when i is out of range or after
 * shutdown. Useful with port 0. The string lives as long as the listener. */
const char *hg_http_server_addr(const hg_http_server_t *s, size_t i);

/* Closes every handle; the server is freed once the loop runs their close
 * callbacks. Call after shutdown's done, or at exit. Accepts NULL. */
void hg_http_server_free(hg_http_server_t *s);

/* Looks up a request header, case-insensitively. NULL when absent. */
const char *hg_http_req_header(const hg_http_req_t *req, const char *name);

/* Looks up a router parameter by name. NULL when absent. */
const char *hg_http_req_param(const hg_http_req_t *req, const char *name);

/* Adds a header to the response that the next hg_http_respond*() sends.
 * Copies name and value. */
void hg_http_req_add_header(hg_http_req_t *req, const char *name, const char *value);

/* Answers the request; copies body. Adds Content-Length, Date, X-Request-Id,
 * and Connection: close when the connection is closing. After this call req
 * must not be touched. content_type may be NULL (no body). */
void hg_http_respond(hg_http_req_t *req, int status, const char *content_type, const char *body,
                     size_t body_len);

/* Answers with a JSON document; takes ownership of body (json_decref). */
void hg_http_respond_json(hg_http_req_t *req, int status, json_t *body);

/* Answers {"error":{"type":type,"message":message,"details":details}}.
 * Takes ownership of details (a JSON array, or NULL for []). */
void hg_http_respond_error(hg_http_req_t *req, int status, const char *type, const char *message,
                           json_t *details);

/* Internal subrequests: the Lua API calls the HTTP API's handlers without
 * a socket, so both share one implementation of every rule.
 * hg_http_virtual builds a request (method GET/POST/PATCH/PUT/DELETE,
 * target "/v1/...", the given Authorization header value, a JSON body)
 * and runs handler on it now; the handler's answer goes to cb (status,
 * body), now or later. Returns HG_EINVAL or HG_ENOMEM (cb is then never
 * called). */
typedef void (*hg_http_virtual_cb)(int status, const char *body, size_t body_len, void *ud);
int hg_http_virtual(const char *method, const char *target, const char *authorization, const char *body,
                    size_t body_len, hg_http_handler_fn handler, void *handler_ud, hg_http_virtual_cb cb, void *ud);

/* The reason phrase for a status code ("Not Found"). */
const char *hg_http_status_text(int status);

#endif
