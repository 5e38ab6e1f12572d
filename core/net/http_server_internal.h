/* http_server_internal.h: what the server's two files share.
 *
 *   http_server.c     the server, its listeners, accepting, and each
 *                     connection's life: reading (through TLS on a TLS
 *                     listener), sending bytes, timers, closing, shutdown
 *   http_server_h1.c  HTTP/1: requests, llhttp parsing, handing complete
 *                     requests to the handler, writing responses in
 *                     request order, internal subrequests
 *
 * Shape of a connection: bytes from the socket (decrypted first on a TLS
 * listener) go into llhttp. Each request gets a struct req when its first
 * byte arrives and joins the connection's queue, which is in request order.
 * A complete request goes to the handler; its answer is serialised into the
 * req, and the queue is flushed from the front, so responses leave in order
 * whatever order the handler answers in. One uv_timer per connection carries
 * whichever deadline applies now: idle, headers, body or lingering close. */
#ifndef HG_HTTP_SERVER_INTERNAL_H
#define HG_HTTP_SERVER_INTERNAL_H

#include <llhttp.h>
#include <time.h>
#include <uv.h>

#include "base/buf.h"
#include "base/list.h"
#include "net/http_server.h"
#include "net/tls_server.h"

#define HG_HTTP_READ_BUF_SIZE 65536
#define HG_HTTP_TLS_BUF_SIZE 16384
/* The most the request pool (hg_http_server.pool) holds, buffers included. */
#define HG_HTTP_POOL_BYTES (512 * 1024)

enum req_state { RQ_PARSING, RQ_HANDLER, RQ_DONE };
enum timer_kind { TK_NONE, TK_IDLE, TK_HEADER, TK_BODY, TK_LINGER };

struct conn;

struct req {
  hg_http_req_t pub;
  struct conn *c;
  struct req *next;
  enum req_state state;
  unsigned headers_done : 1, keep_alive : 1, is_head : 1, http10 : 1, need_continue : 1,
      close_after : 1;
  unsigned in_value : 1;  /* a header value is open (its NUL not yet written) */
  uint64_t start_ms;      /* uv_now() at the first byte */
  uint64_t body_start_ms; /* uv_now() when the headers completed */
  size_t trailer_bytes;
  /* Request line and headers as NUL-terminated strings: target, then name,
   * value pairs, then the path. Header pointers hold offsets into it until
   * the headers complete. */
  hg_buf_t hb;
  size_t hdr_cap;
  size_t body_cap;
  char empty_body[1];
  /* Headers the handler added: "Name: value\r\n" lines. */
  hg_buf_t extra;
  /* The serialised response. */
  hg_buf_t out;
  int status;
  size_t resp_bytes;
  /* An internal subrequest (no connection): where the answer goes. */
  hg_http_virtual_cb vcb;
  void *vud;
};

struct listener {
  uv_tcp_t tcp;
  hg_http_server_t *s;
  struct listener *next;
  hg_tls_server_t *tls;
  char addr[64];
  int refs; /* 1 for the handle, 1 per connection it accepted */
};

/* What an idle keep-alive connection costs is this struct (and libuv's
 * and the kernel's share): it holds no request and no buffer between
 * requests. Finished requests go back to the server's pool instead. */
struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  hg_http_server_t *s;
  hg_list_t link;           /* in s->conns while the socket is open */
  struct conn *resume_next; /* in s->resume while waiting there */
  llhttp_t parser;
  struct req *head, *tail; /* all requests, oldest first */
  struct req *cur;         /* the one being parsed (also tail) */
  unsigned n_queued;
  unsigned n_held; /* requests the handler holds */
  int refs;        /* 1 for the handles, 1 per request the handler holds */
  hg_tls_sconn_t *tls;
  struct listener *l; /* holds a reference: tls points into l->tls */
  /* Input received but not parsed because too many requests were pending;
   * freed once parsed, so that an idle connection holds no buffer. */
  hg_buf_t left;
  int err_status; /* set by parser callbacks that fail the request */
  unsigned reading : 1, paused : 1, in_resume : 1, stopped : 1, ending : 1, shutting : 1,
      lingering : 1, closed : 1, is_tls : 1;
  unsigned served; /* requests begun */
  uint64_t accept_ms;
  enum timer_kind tkind;
  uint64_t deadline;
  /* When the uv timer will fire (uv_now time), or 0 when it is not
   * running. It may run for an earlier deadline than the current one:
   * on_timer then arms it again for the rest (see conn_arm). */
  uint64_t armed;
  char remote[48];
};

struct hg_http_server {
  uv_loop_t *loop;
  hg_http_limits_t lim;
  hg_http_handler_fn handler;
  void *handler_ud;
  int access_log;
  struct listener *listeners;
  hg_list_t conns;
  size_t n_conns;
  struct conn *resume; /* connections whose input may be parsed again */
  uv_idle_t idle;      /* runs deferred work: resume, done */
  int refs;            /* owner + open handles + live connections */
  int draining, freeing, done_pending;
  void (*done)(void *ud);
  void *done_ud;
  uint64_t rng;
  time_t date_sec;
  char date[40];
  llhttp_settings_t settings;
  /* Finished requests kept with their buffers for the next ones, on any
   * connection, so that a keep-alive request costs no malloc while an idle
   * connection holds nothing; at most HG_HTTP_POOL_BYTES in all. */
  struct req *pool;
  size_t pool_n;
  size_t pool_bytes;
  char rbuf[HG_HTTP_READ_BUF_SIZE]; /* one read buffer for every connection */
  char pbuf[HG_HTTP_TLS_BUF_SIZE];  /* TLS plaintext */
};

/* ---- http_server.c ---- */

/* Closes at once. Requests the handler holds stay valid: their answers
 * are dropped. */
void hg_http__conn_close(struct conn *c);

/* Closes gracefully: after the queued writes, send FIN, then linger. */
void hg_http__conn_end(struct conn *c);

/* Sets c's timer for the deadline that applies now. */
void hg_http__conn_arm(struct conn *c);

/* Drops a reference; the last one frees c (and its requests). */
void hg_http__conn_unref(struct conn *c);

/* Sends bytes on the socket, through TLS on a TLS connection. Returns 0,
 * HG_EIO or HG_ENOMEM (the caller closes). */
int hg_http__conn_send(struct conn *c, const char *data, size_t len);

/* Parses c's saved input again from a later loop iteration (c is paused
 * and has room for more requests). Takes a reference until then. */
void hg_http__conn_resume_later(struct conn *c);

/* ---- http_server_h1.c ---- */

/* Fills the parser callbacks every connection of a server uses. */
void hg_http__settings_init(llhttp_settings_t *s);

/* Parses data. Returns 0 when all of it was consumed, 1 when parsing
 * paused with the rest saved in c->left (too many requests pending), -1
 * when the connection stopped reading or closed. Complete requests go to
 * the handler from here. */
int hg_http__conn_feed(struct conn *c, const char *data, size_t len);

/* Sends every finished response at the front of the queue, then decides
 * whether the connection closes, reads again, or waits. */
void hg_http__conn_flush(struct conn *c);

/* Answers the request being parsed with an error and closes after it. */
void hg_http__fail_current(struct conn *c, int status, const char *message);

/* Frees a request and its buffers. Accepts NULL. */
void hg_http__req_free(struct req *r);

/* The memory r holds: the struct and its buffers' capacity. */
size_t hg_http__req_bytes(const struct req *r);

/* Frees every request in s's pool. */
void hg_http__pool_free(hg_http_server_t *s);

#endif
