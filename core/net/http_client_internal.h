/* http_client_internal.h: what the client's three files share.
 *
 *   http_client.c       the API: URLs, the client's lifetime, requests (built
 *                       on send, ended by their deadline, delivered to the
 *                       callback), close, stats
 *   http_client_pool.c  origins and their limits, the ready queue, idle
 *                       connections, DNS, the SSRF check and connect: a
 *                       pool of connected streams that knows nothing of HTTP
 *   http_client_h1.c    the HTTP/1 exchange on a connection the pool handed
 *                       over: the TLS handshake, writing the request, parsing
 *                       the response with llhttp, the body limit
 *
 * Calls between the files go one way (h2o's socketpool.c under its
 * http1client.c): http_client.c calls the pool and the exchange, the
 * exchange calls the pool, and the pool calls up only through c->pool_cb,
 * which hg_client_new() sets to a function of http_client.c. Everything runs
 * on the client's loop thread.
 *
 * Objects:
 *   origin  scheme + host + port: a FIFO of waiting requests, a stack of idle
 *           connections, the cached TLS session (the exchange's: the pool
 *           only creates and frees it). Lives as long as the client.
 *   conn    one TCP (maybe TLS) connection; serves one request at a time.
 *           The pool allocates and frees it; it holds no reference on the
 *           client (once closed, its handle callbacks touch only the conn).
 *   req     one request: the serialized bytes, its deadline (the total
 *           timeout) and the response being collected. http_client.c
 *           allocates and frees it; while queued or holding a slot it is on
 *           loan to the pool.
 *
 * Deadlines: every live request is in one of the client's lanes, one
 * per distinct timeout (HG_CLIENT_LANES - 1 of them, a request's deadline
 * is its start plus its timeout, so each lane is in deadline order by
 * arrival), and the last lane, kept in order by insertion, for timeouts
 * beyond those. One timer (the client's tick) is set for the earliest
 * head: three heap operations and a handle to close per request in libuv
 * cost a delivery more than everything else the client does for it
 * outside the kernel. The tick may fire early (its request ended) and then
 * sets itself for the next; it stops when no request is left, so that an
 * idle client keeps no loop running.
 *
 * A request holds a "slot" while a connection works for it (connecting or
 * busy); slots are capped globally and per origin. The pool's pump hands
 * waiting requests to idle connections or new ones as slots allow.
 *
 * The seam, c->pool_cb(conn, r, err, text), the pool's one way up:
 *   conn != NULL, err 0  "conn is r's": newly connected (state C_CONNECTED)
 *                        or reused idle (C_BUSY); the exchange starts on it.
 *                        Once per attempt (a retry is a second attempt).
 *   conn == NULL         "r is out of the pool": its exchange completed and
 *                        the connection was given back (err 0), or it failed
 *                        or never got a connection (err, text). Once, last;
 *                        the pool does not touch r afterwards. Not called for
 *                        a request the client takes back itself (its
 *                        deadline, close).
 * The pool calls it from the pump (so inside hg_client_send() too) and from
 * its libuv callbacks; it is the last thing the pool's code path does with r.
 *
 * Reentrancy: user callbacks never run while the pump or hg_client_send() is
 * on the stack (api_depth > 0); a failure found there is delivered from the
 * client's tick on the next loop iteration. Everywhere else the callback
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
#define HG_CLIENT_LANES 4 /* of requests' deadlines (see the top) */

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
  /* Connections started and not yet set up (connecting, handshaking). An
   * HTTPS origin with no session to resume opens one connection alone
   * first, so that the others resume its session instead of each paying a
   * full handshake; tls_failed: the last one to try failed, so they open
   * side by side again until a handshake succeeds. */
  unsigned opening;
  int tls_failed;
  const char *host; /* points into key */
  char key[];       /* "h:" or "s:" + host + ":" + port, NUL, host, NUL */
} origin_t;

/* Request states: R_QUEUED and R_ACTIVE while the pool has it (in a queue;
 * holding a slot), R_DEFERRED and R_DONE in http_client.c. */
enum { R_QUEUED = 1, R_ACTIVE, R_DEFERRED, R_DONE };
/* Connection states, set by the pool: C_CONNECTED is connected and handed
 * over but not set up yet (the TLS handshake runs; the connect timeout still
 * applies) until hg_client__conn_established(). */
enum { C_RESOLVING = 1, C_CONNECTING, C_CONNECTED, C_BUSY, C_IDLE, C_CLOSING };

typedef struct hg_client_conn conn_t;

typedef struct hg_client_req {
  hg_client_t *c;
  origin_t *o;
  /* The pool's while it has the request. */
  conn_t *conn;
  hg_list_t link; /* origin queue (pool), or client->deferred */
  int state;
  int retried, fresh; /* sent again once; wants a new connection */
  int conn_reused;    /* the connection it was last given had served before */
  /* http_client.c's. */
  hg_list_t tlink;      /* in a lane of client->lanes, until delivered */
  uint64_t deadline_ns; /* hg_now_ns() clock */
  hg_client_cb cb;
  void *ud;
  uint64_t start_ns;
  int head_only;
  int err;
  char errtext[256];
  /* The response, filled by the exchange. */
  int tls_resumed;
  int status;
  int truncated;
  hg_buf_t hdr; /* "name\0value\0" pairs */
  unsigned nhdr;
  hg_buf_t body; /* room for a NUL after it whenever data is set */
  size_t wlen;
  char wbuf[]; /* request line, headers, body */
} req_t;

struct hg_client_conn {
  /* The pool's: the stream and its place in the pool. */
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
  int opening; /* counted in o->opening */
  unsigned served; /* exchanges completed on it: > 0 is a reused connection */
  struct sockaddr_storage addrs[HG_CLIENT_MAX_ADDRS];
  unsigned naddrs, addr_i;
  /* The TLS layer of the stream: the exchange creates it, the pool frees it
   * with the stream. */
  hg_tls_conn_t *tls;
  /* The exchange's. */
  int got_bytes, msg_done, keep_alive;
  llhttp_t parser;
};

/* The seam (see the top of this file). */
typedef void (*hg_client__pool_cb)(conn_t *conn, req_t *r, int err, const char *text);

struct hg_client {
  uv_loop_t *loop;
  hg_client_opts_t o;
  char *user_agent;
  hg_tls_client_t *tls;
  hg_client__pool_cb pool_cb; /* set by hg_client_new */
  origin_t **buckets;
  size_t nbuckets, norigins;
  hg_list_t ready;    /* origins waiting for a global slot */
  hg_list_t conns;    /* open connections */
  hg_list_t deferred; /* requests whose callback waits for the next iteration */
  hg_list_t due;      /* the deferred ones the running tick is delivering (close delivers what is left) */
  struct {
    uint64_t timeout_ns;
    hg_list_t reqs; /* live requests with that timeout (the last lane: any other), earliest deadline first */
  } lanes[HG_CLIENT_LANES];
  unsigned n_lanes;    /* lanes keyed so far (at most HG_CLIENT_LANES - 1) */
  size_t live;         /* requests in the lanes */
  uv_timer_t tick;     /* for the earliest deadline, or 0 ms for deferred ones */
  uint64_t tick_at;    /* when it is set for (hg_now_ns clock), 0: not set */
  unsigned in_flight, queued, idle;
  unsigned refs; /* 1 until closed, + 1 for the tick's handle, + live requests */
  int closing;
  int api_depth; /* > 0 while send or pump is on the stack */
  uint64_t connections_opened, requests_retried, tls_full, tls_resumed;
  char rbuf[HG_CLIENT_READ_BUF_SIZE];  /* one read buffer for every connection */
  char pbuf[HG_CLIENT_PLAIN_BUF_SIZE]; /* TLS plaintext */
};

/* ---- http_client_pool.c: called by http_client.c and http_client_h1.c ---- */

/* The origin of u, created on first use. NULL when out of memory. */
origin_t *hg_client__origin_get(hg_client_t *c, const hg_client_url_t *u);

/* Frees every origin (at the client's end). */
void hg_client__origins_free(hg_client_t *c);

/* Takes r into its origin's queue (R_QUEUED) and pumps. pool_cb may run
 * inside this call, with api_depth > 0: a request that ends there has its
 * user callback deferred. */
void hg_client__pool_enqueue(hg_client_t *c, req_t *r);

/* Takes a queued request (R_QUEUED) back out of its queue. */
void hg_client__pool_dequeue(req_t *r);

/* Whether o's waiting requests wait for its first TLS handshake (an
 * HTTPS origin with no session to resume opens one connection alone). */
int hg_client__awaits_session(const origin_t *o);

/* Dispatches up to limit waiting requests of o. Never runs a user callback. */
void hg_client__pump(hg_client_t *c, origin_t *o, unsigned limit);

/* Called after a connection gave up its slot outside the pump: waiting
 * requests take the slot. */
void hg_client__slot_freed(hg_client_t *c, origin_t *o);

/* Detaches the request (if any; it does not come back through pool_cb) and
 * gives back the slot; the connection is never used again and is freed once
 * its handles closed. Does not pump. */
void hg_client__conn_close(conn_t *conn);

/* The exchange set the connection up (TLS): the connect timeout stops and
 * the connection is C_BUSY. When it was its HTTPS origin's first, the
 * requests waiting for that origin's session start connections now
 * (hg_client__slot_freed: no request's callback runs inside this call). */
void hg_client__conn_established(conn_t *conn);

/* The connection failed: it closes, and its request comes back through
 * pool_cb(NULL, r, err, text) as the last step, unless it goes back to the
 * head of its queue once: err HG_EIO on a reused connection before any
 * response byte (may_retry), as a server closing an idle connection while
 * we send looks. */
void hg_client__conn_fail(conn_t *conn, int err, int may_retry, const char *text);

/* The exchange completed: the connection goes idle when keep and the pool
 * has room for it (else it closes), the slot is freed, then the request
 * comes back through pool_cb(NULL, r, 0, NULL). */
void hg_client__conn_release(conn_t *conn, int keep);

/* Closing: takes every queued request and every connection's request out
 * of the pool onto cancel (none comes back through pool_cb), and closes
 * every connection. */
void hg_client__pool_cancel(hg_client_t *c, hg_list_t *cancel);

/* ---- http_client_h1.c: called by http_client.c ---- */

/* Starts the exchange of conn->req on conn, which the pool just handed
 * over: newly connected (C_CONNECTED: reading starts, then the TLS
 * handshake for https) or reused (C_BUSY). The request is sent once the
 * connection is set up. Ends through the pool (hg_client__conn_release,
 * hg_client__conn_fail, hg_client__conn_close), never calling back into
 * http_client.c. */
void hg_client__h1_start(conn_t *conn);

#endif
