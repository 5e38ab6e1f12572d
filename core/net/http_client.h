/* http_client.h: the outbound HTTP/1.1 client that delivers webhooks.
 *
 * Runs on one libuv loop. Each request: URL parse, then either an idle
 * keep-alive connection of its origin (scheme + host + port) or a new one:
 * non-blocking DNS (uv_getaddrinfo), the SSRF guard on every resolved
 * address, connect to exactly the checked address, TLS 1.2 for https. The
 * response is parsed with llhttp; redirects are not followed.
 *
 * Limits: at most max_in_flight requests hold a connection at once, and at
 * most max_per_origin per origin; the rest wait in a FIFO per origin, and
 * origins waiting for a global slot take turns, so a slow origin delays only
 * its own requests. */
#ifndef HG_HTTP_CLIENT_H
#define HG_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/ssrf.h"

typedef struct hg_client hg_client_t;

typedef struct hg_client_header {
  const char *name; /* compare case-insensitively */
  const char *value;
} hg_client_header_t;

/* Requests to one origin at once, by default: the one default of the
 * client's max_per_origin and of the config file's delivery.max_per_origin
 * (config.c uses it). */
#define HG_CLIENT_MAX_PER_ORIGIN 64
/* Idle keep-alive connections kept per origin, by default. */
#define HG_CLIENT_MAX_IDLE_PER_ORIGIN 32

typedef struct hg_client_opts {
  uv_loop_t *loop;
  uint64_t connect_timeout_ms;  /* DNS + TCP connect + TLS handshake; default 5000 */
  uint64_t total_timeout_ms;    /* whole request, queueing included; default 15000 */
  size_t max_response_body;     /* bytes kept; default 65536 */
  unsigned max_in_flight;       /* requests holding a connection, all origins; default 1024 */
  unsigned max_per_origin;      /* default HG_CLIENT_MAX_PER_ORIGIN */
  /* Keep-alive connections kept per origin: HG_CLIENT_MAX_IDLE_PER_ORIGIN
   * from hg_client_opts_default; 0 = max_per_origin. */
  unsigned max_idle_per_origin;
  uint64_t idle_timeout_ms;     /* idle keep-alive connections close after; default 30000 */
  const char *ca_file;          /* PEM bundle; NULL = HG_TLS_SYSTEM_CA_FILE */
  const hg_ssrf_policy_t *ssrf; /* borrowed, must outlive the client; NULL = default policy */
  const char *user_agent;       /* NULL = "hookgate/<version>" */
} hg_client_opts_t;

/* Fills opts with the defaults above (loop NULL). */
void hg_client_opts_default(hg_client_opts_t *opts);

typedef struct hg_client_request {
  const char *method; /* NULL = "POST" */
  const char *url;    /* http:// or https://, no user-info */
  /* Extra headers. Host, Content-Length, Transfer-Encoding and Connection are
   * set by the client and ignored here; User-Agent replaces the default. */
  const hg_client_header_t *headers;
  size_t n_headers;
  const char *body; /* may be NULL when body_len is 0 */
  size_t body_len;
  uint64_t timeout_ms; /* total timeout; 0 = the client's */
} hg_client_request_t;

typedef struct hg_client_response {
  int status;                       /* 0 when no response arrived */
  const hg_client_header_t *headers; /* as received */
  size_t n_headers;
  const char *body; /* NUL-terminated; body_len excludes the NUL */
  size_t body_len;
  int body_truncated; /* more than max_response_body arrived; the rest was dropped */
  int error;          /* 0 or HG_E*: HG_EIO (network, TLS, bad response), HG_ETIMEDOUT,
                         HG_EFORBIDDEN (SSRF), HG_ECLOSED (client closed) */
  /* Why it failed: "connection refused", "timeout (awaiting response)", "tls:
   * certificate verify failed: ...", "ssrf: 127.0.0.1 is a loopback address
   * (not in allow-list)". With error 0 it is NULL, or "redirect not
   * followed" for a 3xx. */
  const char *error_text;
  uint64_t duration_ms; /* from hg_client_send() to the callback */
  int conn_reused;      /* served on a keep-alive connection used before */
  int tls_resumed;      /* https: the connection resumed a cached session */
} hg_client_response_t;

/* The response is valid only during the callback; copy what you keep. */
typedef void (*hg_client_cb)(const hg_client_response_t *res, void *ud);

/* Creates a client on opts->loop (unset fields: 0 = default). Loads the CA
 * bundle now, so a bad ca_file fails here: HG_ECONFIG with the reason in err
 * (err may be NULL). Returns 0, HG_EINVAL (no loop), HG_ECONFIG or
 * HG_ENOMEM. */
int hg_client_new(hg_client_t **out, const hg_client_opts_t *opts, char *err, size_t errlen);

/* Starts a request; copies what it needs from req. cb(res, ud) runs exactly
 * once, later, on the loop, never inside this call. On failure returns
 * HG_EINVAL (bad URL, method or header; the reason in err, which may be
 * NULL), HG_ECLOSED (client closing) or HG_ENOMEM, and cb never runs. */
int hg_client_send(hg_client_t *c, const hg_client_request_t *req, hg_client_cb cb, void *ud,
                   char *err, size_t errlen);

/* Cancels every pending request, whose callbacks run before this returns
 * with error HG_ECLOSED; no callback runs after it returns. Closes every
 * connection; the client is freed once the loop has closed its handles.
 * Accepts NULL; a second call does nothing. Safe inside a callback. */
void hg_client_close(hg_client_t *c);

/* Looks up a response header case-insensitively; NULL when absent. */
const char *hg_client_response_header(const hg_client_response_t *res, const char *name);

/* Counters, for metrics and tests. */
typedef struct hg_client_stats {
  uint64_t connections_opened; /* TCP connections established */
  uint64_t requests_retried;   /* sent again after a reused connection failed */
  uint64_t tls_full;           /* TLS handshakes completed in full (the certificate verified) */
  uint64_t tls_resumed;        /* TLS handshakes that resumed an origin's session */
  unsigned in_flight;          /* requests holding a connection now */
  unsigned queued;             /* requests waiting for a slot now */
  unsigned idle;               /* idle keep-alive connections now */
} hg_client_stats_t;

void hg_client_stats(const hg_client_t *c, hg_client_stats_t *out);

/* A parsed URL; pointers into the string given to hg_client_url_parse(). */
typedef struct hg_client_url {
  int https;
  const char *host; /* without brackets for IPv6 */
  size_t host_len;
  uint16_t port;
  const char *path; /* path and query, "/" when empty; no fragment */
  size_t path_len;
} hg_client_url_t;

/* Parses an absolute http/https URL. Rejects user-info, a bad port, spaces
 * and control characters. Returns 0 or HG_EINVAL with the reason in err
 * (err may be NULL), e.g. "url: user-info is not allowed". The API uses it
 * to validate webhook URLs before storing them. */
int hg_client_url_parse(const char *url, hg_client_url_t *out, char *err, size_t errlen);

#endif
