/* http_client_internal.h: what the client's three files share.
 *
 *   http_client.c       the API: URLs, the client's lifetime, requests (built
 *                       on send, ended by their timer, delivered to the
 *                       callback), close, stats
 *   http_client_pool.c  origins and their limits, the ready queue, idle
 *                       connections, DNS, the SSRF check and connect
 *   http_client_h1.c    the HTTP/1 exchange on a connected socket: the TLS
 *                       handshake, writing the request, parsing the
 *                       response with llhttp, the body limit
 *
 * Objects:
 *   origin  scheme + host + port: a FIFO of waiting requests, a stack of idle
 *           connections, the cached TLS session. Lives as long as the client.
 *   conn    one TCP (maybe TLS) connection; serves one request at a time.
 *   req     one request: the serialized bytes, the total-timeout timer and
 *           the response being collected.
 *
 * A request holds a "slot" while a connection works for it (connecting or
 * busy); slots are capped globally and per origin. The pool's pump hands
 * waiting requests to idle connections or new ones as slots allow.
 *
 * Reentrancy: user callbacks never run while the pump or hg_client_send() is
 * on the stack (api_depth > 0); a failure found there is delivered from the
 * request's timer on the next loop iteration. Everywhere else the callback
 * is the last thing a code path does. */
#ifndef HG_HTTP_CLIENT_INTERNAL_H
#define HG_HTTP_CLIENT_INTERNAL_H

#include <llhttp.h>
#include <uv.h>

#include "base/buf.h"
#include "base/list.h"
#include "net/http_client.h"
#include "net/tls_client.h"

#define HG_CLIENT_MAX_ADDRS 8
#define HG_CLIENT_READ_BUF_SIZE 65536
#define HG_CLIENT_PLAIN_BUF_SIZE 16384

typedef struct hg_client_origin {
  struct hg_client_origin *hnext;
  hg_list_t ready_link; /* in client->ready while waiting for a global slot */
  int in_ready;
  hg_list_t queue; /* waiting req_t */
  hg_list_t idle;  /* idle conn_t, most recently used first */
  unsigned active; /* connections holding a slot */
  unsigned n_idle;
  int https;
  int literal; /* host is an IP address: no DNS */
  struct sockaddr_storage literal_addr;
  char port[6];
  hg_tls_session_t *session;
  const char *host; /* points into key */
  char key[];       /* "h:" or "s:" + host + ":" + port, NUL, host, NUL */
} origin_t;

enum { R_QUEUED = 1, R_ACTIVE, R_DEFERRED, R_DONE };
enum { C_RESOLVING = 1, C_CONNECTING, C_HANDSHAKE, C_BUSY, C_IDLE, C_CLOSING };

typedef struct hg_client_conn conn_t;

typedef struct hg_client_req {
  hg_client_t *c;
  origin_t *o;
  conn_t *conn;
  hg_list_t link; /* origin queue, or client->deferred */
  uv_timer_t timer;
  hg_client_cb cb;
  void *ud;
  uint64_t start_ns;
  int state;
  int retried, fresh, head_only;
  int conn_reused, tls_resumed;
  int err;
  char errtext[256];
  /* The response. */
  int status;
  int truncated;
  hg_buf_t hdr; /* "name\0value\0" pairs */
  unsigned nhdr;
  hg_buf_t body; /* room for a NUL after it whenever data is set */
  size_t wlen;
  char wbuf[]; /* request line, headers, body */
} req_t;

struct hg_client_conn {
  hg_client_t *c;
  origin_t *o;
  req_t *req;
  hg_list_t link; /* origin->idle */
  hg_list_t all;  /* client->conns, until closing */
  uv_tcp_t tcp;
  uv_timer_t timer; /* connect timeout, then idle timeout */
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  int state;
  int tcp_open, timer_open, gai_pending, counted;
  int got_bytes, msg_done, keep_alive, must_close;
  unsigned served;
  llhttp_t parser;
  hg_tls_conn_t *tls;
  struct sockaddr_storage addrs[HG_CLIENT_MAX_ADDRS];
  unsigned naddrs, addr_i;
};

struct hg_client {
  uv_loop_t *loop;
  hg_client_opts_t o;
  char *user_agent;
  hg_tls_client_t *tls;
  origin_t **buckets;
  size_t nbuckets, norigins;
  hg_list_t ready;    /* origins waiting for a global slot */
  hg_list_t conns;    /* open connections */
  hg_list_t deferred; /* requests whose callback waits for the next iteration */
  unsigned in_flight, queued, idle;
  unsigned refs; /* 1 until closed, + live requests + live connections */
  int closing;
  int api_depth; /* > 0 while send or pump is on the stack */
  uint64_t connections_opened, requests_retried;
  char rbuf[HG_CLIENT_READ_BUF_SIZE];  /* one read buffer for every connection */
  char pbuf[HG_CLIENT_PLAIN_BUF_SIZE]; /* TLS plaintext */
};

/* ---- http_client.c ---- */

/* Drops a reference; the last one frees the client. */
void hg_client__unref(hg_client_t *c);

/* Ends a request that holds neither a connection nor a queue place: its
 * callback runs now, or from its timer when the pump or send is on the
 * stack. text is copied (used when err is not 0). */
void hg_client__req_finish(req_t *r, int err, const char *text);

/* ---- http_client_pool.c ---- */

/* The origin of u, created on first use. NULL when out of memory. */
origin_t *hg_client__origin_get(hg_client_t *c, const hg_client_url_t *u);

/* Frees every origin (at the client's end). */
void hg_client__origins_free(hg_client_t *c);

/* Dispatches up to limit waiting requests of o. Never runs a callback. */
void hg_client__pump(hg_client_t *c, origin_t *o, unsigned limit);

/* Called after a connection gave up its slot outside the pump: waiting
 * requests take the slot. */
void hg_client__slot_freed(hg_client_t *c, origin_t *o);

/* Detaches the request (if any) and gives back the slot; the connection is
 * never used again and is freed once its handles closed. Does not pump. */
void hg_client__conn_close(conn_t *conn);

/* Fails the connection and its request, which ends through
 * hg_client__req_finish as the last step (or is queued once more: see the
 * function). */
void hg_client__conn_fail(conn_t *conn, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The response is complete: the connection goes idle, or closes when
 * must_close or it cannot be kept; then the request ends through
 * hg_client__req_finish. */
void hg_client__conn_complete(conn_t *conn, int must_close);

/* Closing: takes every queued request and every connection's request out
 * of the pool onto cancel, and closes every connection. */
void hg_client__pool_cancel(hg_client_t *c, hg_list_t *cancel);

/* ---- http_client_h1.c ---- */

/* Sets up the parser callbacks once for every client. */
void hg_client__h1_init(void);

/* The socket connected: start reading, then, for https, the TLS handshake,
 * and send the request once the connection is ready. */
void hg_client__h1_start(conn_t *conn);

/* Sends the connection's request (a ready connection: new or idle). */
void hg_client__h1_send(conn_t *conn);

/* Forgets the response collected so far (a new attempt, or after an
 * interim 1xx response). */
void hg_client__resp_reset(req_t *r);

#endif
