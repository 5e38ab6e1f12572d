/* http_server.c: HTTP/1.1 on libuv + llhttp, plain or TLS.
 *
 * Shape of a connection: bytes from the socket (decrypted first on a TLS
 * listener) go into llhttp. Each request gets a struct req when its first
 * byte arrives and joins the connection's queue, which is in request order.
 * A complete request goes to the handler; its answer is serialised into the
 * req, and the queue is flushed from the front, so responses leave in order
 * whatever order the handler answers in. One uv_timer per connection carries
 * whichever deadline applies now: idle, headers, body or lingering close. */
#include "net/http_server.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/list.h"
#include "base/log.h"
#include "net/tls_server.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* Stop reading a connection with more requests than this waiting. */
#define MAX_PENDING 16
/* How long a closing connection drains what the peer still sends, so the
 * kernel does not reset the connection over unread data and destroy the
 * response we just sent. */
#define LINGER_MS 1000
/* How long a closing connection may take to send its last bytes to a peer
 * that does not read them. */
#define SEND_GRACE_MS 10000
#define READ_BUF_SIZE 65536
/* Buffers bigger than this are not kept for the next request. */
#define KEEP_BUF_MAX 65536

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

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shut;
  hg_http_server_t *s;
  hg_list_t link;           /* in s->conns while the socket is open */
  struct conn *resume_next; /* in s->resume while waiting there */
  llhttp_t parser;
  struct req *head, *tail; /* all requests, oldest first */
  struct req *cur;         /* the one being parsed (also tail) */
  struct req *spare;       /* a finished req kept for reuse */
  unsigned n_queued;
  unsigned n_held; /* requests the handler holds */
  int refs;        /* 1 for the handles, 1 per request the handler holds */
  hg_tls_sconn_t *tls;
  struct listener *l; /* holds a reference: tls points into l->tls */
  /* Input received but not parsed because too many requests were pending. */
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
  char rbuf[READ_BUF_SIZE];
  char pbuf[16384]; /* TLS plaintext */
};

static void conn_close(struct conn *c);
static void conn_end(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_arm(struct conn *c);
static int conn_feed(struct conn *c, const char *data, size_t len);
static void respond_raw(struct req *r, int status, const char *ctype, const char *body,
                        size_t body_len);
static void on_idle(uv_idle_t *h);
static void conn_unref(struct conn *c);
static void listener_unref(struct listener *l);

/* ---- small helpers ---- */

static void server_unref(hg_http_server_t *s) {
  if (--s->refs == 0) free(s);
}

static uint64_t rng_next(hg_http_server_t *s) {
  /* splitmix64: request ids need to be unique, not secret. */
  uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static const char *cached_date(hg_http_server_t *s) {
  time_t now = time(NULL);
  if (now != s->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    s->date_sec = now;
  }
  return s->date;
}

void hg_http_limits_default(hg_http_limits_t *l) {
  l->max_header_bytes = 16384;
  l->max_headers = 100;
  l->max_body = 1024 * 1024;
  l->header_timeout_ms = 10000;
  l->idle_timeout_ms = 60000;
  l->body_timeout_ms = 30000;
  l->max_connections = 10000;
}

const char *hg_http_status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Payload Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return "Unknown";
  }
}

/* ---- requests ---- */

static void req_free(struct req *r) {
  if (r == NULL) return;
  hg_buf_free(&r->hb);
  free(r->pub.headers);
  if (r->pub.body != r->empty_body) free(r->pub.body);
  hg_buf_free(&r->extra);
  hg_buf_free(&r->out);
  free(r);
}

/* A fresh request for c, reusing the connection's spare when there is one. */
static struct req *req_new(struct conn *c) {
  struct req *r = c->spare;
  if (r != NULL) {
    c->spare = NULL;
    hg_buf_t hb = r->hb, extra = r->extra, out = r->out;
    char *body = r->pub.body;
    hg_http_header_t *hdrs = r->pub.headers;
    size_t hdr_cap = r->hdr_cap, body_cap = r->body_cap;
    memset(r, 0, sizeof(*r));
    r->hb = hb;
    hg_buf_reset(&r->hb);
    r->pub.headers = hdrs;
    r->hdr_cap = hdr_cap;
    r->pub.body = body;
    r->body_cap = body_cap;
    r->extra = extra;
    hg_buf_reset(&r->extra);
    r->out = out;
    hg_buf_reset(&r->out);
  } else if ((r = calloc(1, sizeof(*r))) == NULL) {
    return NULL;
  }
  if (r->pub.body == NULL) r->pub.body = r->empty_body;
  r->pub.body[0] = '\0';
  r->c = c;
  r->pub.method = "";
  r->pub.query = "";
  r->pub.remote_addr = c->remote;
  r->pub.is_tls = c->is_tls;
  r->pub.start_ns = hg_now_ns();
  r->start_ms = uv_now(c->s->loop);
  r->keep_alive = 1;
  uint64_t id = rng_next(c->s);
  static const char hex[] = "0123456789abcdef";
  memcpy(r->pub.request_id, "req_", 4);
  for (int i = 0; i < 16; i++) r->pub.request_id[4 + i] = hex[(id >> (60 - 4 * i)) & 15];
  r->pub.request_id[20] = '\0';
  return r;
}

/* Keeps r for the next request on c when its buffers are modest. */
static void req_recycle(struct conn *c, struct req *r) {
  if (c->spare == NULL && !c->closed && r->hb.cap <= KEEP_BUF_MAX && r->body_cap <= KEEP_BUF_MAX &&
      r->out.cap <= KEEP_BUF_MAX) {
    c->spare = r;
    return;
  }
  req_free(r);
}

static int hb_put(struct req *r, const char *at, size_t len) { return hg_buf_append(&r->hb, at, len); }

const char *hg_http_req_header(const hg_http_req_t *req, const char *name) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (strcasecmp(req->headers[i].name, name) == 0) return req->headers[i].value;
  return NULL;
}

const char *hg_http_req_param(const hg_http_req_t *req, const char *name) {
  for (size_t i = 0; i < req->n_params; i++)
    if (strcmp(req->params[i].name, name) == 0) return req->params[i].value;
  return NULL;
}

void hg_http_req_add_header(hg_http_req_t *req, const char *name, const char *value) {
  struct req *r = (struct req *)req;
  size_t nl = strlen(name), vl = strlen(value);
  if (hg_buf_reserve(&r->extra, nl + vl + 4) != 0) return;
  char *p = r->extra.data + r->extra.len;
  memcpy(p, name, nl);
  p[nl] = ':';
  p[nl + 1] = ' ';
  memcpy(p + nl + 2, value, vl);
  p[nl + 2 + vl] = '\r';
  p[nl + 3 + vl] = '\n';
  r->extra.len += nl + vl + 4;
}

int hg_http_virtual(const char *method, const char *target, const char *authorization, const char *body,
                    size_t body_len, hg_http_handler_fn handler, void *handler_ud, hg_http_virtual_cb cb, void *ud) {
  static const char *const methods[] = {"GET", "POST", "PATCH", "PUT", "DELETE"};
  const char *m = NULL;
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
    if (strcmp(methods[i], method) == 0) m = methods[i];
  if (m == NULL || target[0] != '/') return HG_EINVAL;
  struct req *r = calloc(1, sizeof(*r));
  if (r == NULL) return HG_ENOMEM;
  r->vcb = cb;
  r->vud = ud;
  r->pub.method = m;
  /* hb: target, path, then the two headers' names and values. */
  size_t tl = strlen(target), al = strlen(authorization);
  const char *qm = strchr(target, '?');
  size_t pl = qm ? (size_t)(qm - target) : tl;
  size_t hb_len = tl + 1 + pl + 1 + 13 + 17 + 14 + al + 1;
  r->pub.headers = calloc(2, sizeof(hg_http_header_t));
  r->pub.body = malloc(body_len + 1);
  if (hg_buf_reserve(&r->hb, hb_len) != 0 || r->pub.headers == NULL || r->pub.body == NULL) {
    req_free(r);
    return HG_ENOMEM;
  }
  r->hb.len = hb_len;
  char *p = r->hb.data;
  memcpy(p, target, tl + 1);
  r->pub.target = p;
  r->pub.query = qm ? p + (qm - target) + 1 : "";
  p += tl + 1;
  memcpy(p, target, pl);
  p[pl] = '\0';
  r->pub.path = p;
  p += pl + 1;
  strcpy(p, "content-type");
  r->pub.headers[0].name = p;
  p += 13;
  strcpy(p, "application/json");
  r->pub.headers[0].value = p;
  p += 17;
  strcpy(p, "authorization");
  r->pub.headers[1].name = p;
  p += 14;
  memcpy(p, authorization, al + 1);
  r->pub.headers[1].value = p;
  r->pub.n_headers = 2;
  if (body_len) memcpy(r->pub.body, body, body_len);
  r->pub.body[body_len] = '\0';
  r->pub.body_len = body_len;
  r->pub.remote_addr = "internal";
  r->pub.start_ns = hg_now_ns();
  snprintf(r->pub.request_id, sizeof(r->pub.request_id), "req_internal");
  r->state = RQ_HANDLER;
  handler(&r->pub, handler_ud);
  return 0;
}

/* ---- parser callbacks ---- */

static int head_too_big(struct conn *c, struct req *r) {
  /* hb holds the target and the header names and values; count the
   * separators too (": ", CRLF) and a request line's worth of framing. */
  if (r->hb.len + 4 * r->pub.n_headers + 16 > c->s->lim.max_header_bytes) {
    c->err_status = 431;
    return -1;
  }
  return 0;
}

/* Trailers of a chunked body are not kept, but they count against the
 * header limit so that they cannot go on forever. */
static int trailer(struct conn *c, struct req *r, size_t len) {
  r->trailer_bytes += len;
  if (r->trailer_bytes > c->s->lim.max_header_bytes) {
    c->err_status = 431;
    return -1;
  }
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  struct conn *c = p->data;
  struct req *r = req_new(c);
  if (r == NULL) return -1;
  if (c->tail) c->tail->next = r;
  else c->head = r;
  c->tail = r;
  c->cur = r;
  c->n_queued++;
  c->served++;
  /* A request ends the idle period: conn_arm() would otherwise keep the
   * deadline set when the connection first went idle, and cut a busy
   * keep-alive connection idle_timeout after its first request. The read
   * callback re-arms the timer right after parsing. */
  if (c->tkind == TK_IDLE) c->tkind = TK_NONE;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  if (hb_put(c->cur, at, len) != 0) return -1;
  return head_too_big(c, c->cur);
}

static int on_url_complete(llhttp_t *p) {
  struct conn *c = p->data;
  return hb_put(c->cur, "", 1) == 0 ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  struct req *r = c->cur;
  if (r->headers_done) return trailer(c, r, len);
  hg_http_req_t *q = &r->pub;
  if (r->in_value) {
    if (hb_put(r, "", 1) != 0) return -1;
    r->in_value = 0;
  }
  /* The first piece of a name starts a new header. */
  if (q->n_headers == 0 || q->headers[q->n_headers - 1].value != NULL) {
    if (q->n_headers >= c->s->lim.max_headers) {
      c->err_status = 431;
      return -1;
    }
    if (q->n_headers == r->hdr_cap &&
        hg_grow(&q->headers, &r->hdr_cap, q->n_headers + 1, sizeof(*q->headers), 16) != 0)
      return -1;
    q->headers[q->n_headers].name = (char *)(uintptr_t)r->hb.len;
    q->headers[q->n_headers].value = NULL;
    q->n_headers++;
  }
  if (hb_put(r, at, len) != 0) return -1;
  return head_too_big(c, r);
}

static int on_header_field_complete(llhttp_t *p) {
  struct conn *c = p->data;
  struct req *r = c->cur;
  if (r->headers_done) return 0;
  if (hb_put(r, "", 1) != 0) return -1;
  /* Offset + 1 so that an empty value still reads as "value started". */
  r->pub.headers[r->pub.n_headers - 1].value = (char *)(uintptr_t)(r->hb.len + 1);
  r->in_value = 1;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  struct req *r = c->cur;
  if (r->headers_done) return trailer(c, r, len);
  if (hb_put(r, at, len) != 0) return -1;
  return head_too_big(c, r);
}

static int on_header_value_complete(llhttp_t *p) {
  struct conn *c = p->data;
  struct req *r = c->cur;
  if (r->headers_done || !r->in_value) return 0;
  r->in_value = 0;
  return hb_put(r, "", 1) == 0 ? 0 : -1;
}

static void send_continue(struct conn *c);

static int on_headers_complete(llhttp_t *p) {
  struct conn *c = p->data;
  struct req *r = c->cur;
  hg_http_req_t *q = &r->pub;
  if (r->in_value) {
    if (hb_put(r, "", 1) != 0) return -1;
    r->in_value = 0;
  }
  char *hb = r->hb.data;
  size_t target_len = strlen(hb);
  const char *qm = memchr(hb, '?', target_len);
  size_t query_off = qm ? (size_t)(qm - hb) + 1 : 0;
  size_t path_off = r->hb.len;
  size_t path_len = qm ? (size_t)(qm - hb) : target_len;
  /* The path is copied from hb into hb: grow first, so the source is not
   * freed by the realloc under the copy. */
  if (hg_buf_reserve(&r->hb, path_len + 1) != 0) return -1;
  hb = r->hb.data;
  memcpy(hb + r->hb.len, hb, path_len);
  hb[r->hb.len + path_len] = '\0';
  r->hb.len += path_len + 1;
  /* hb is final now: turn offsets into pointers. */
  q->target = hb;
  q->path = hb + path_off;
  q->query = qm ? hb + query_off : "";
  for (size_t i = 0; i < q->n_headers; i++) {
    q->headers[i].name = hb + (uintptr_t)q->headers[i].name;
    q->headers[i].value = hb + ((uintptr_t)q->headers[i].value - 1);
  }
  r->headers_done = 1;
  r->body_start_ms = uv_now(c->s->loop);
  q->method = llhttp_method_name((llhttp_method_t)p->method);
  r->is_head = p->method == HTTP_HEAD;
  r->http10 = p->http_major == 1 && p->http_minor == 0;

  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->s->lim.max_body) {
    c->err_status = 413;
    return -1;
  }
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) {
    size_t need = (size_t)p->content_length + 1;
    if (need > r->body_cap) {
      char *nb = r->pub.body == r->empty_body ? malloc(need) : realloc(r->pub.body, need);
      if (nb == NULL) return -1;
      r->pub.body = nb;
      r->body_cap = need;
    }
  }
  const char *expect = hg_http_req_header(q, "expect");
  int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  if (expect != NULL && has_body && strcasecmp(expect, "100-continue") == 0 && !r->http10) {
    r->need_continue = 1;
    if (c->head == r) send_continue(c);
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  struct req *r = c->cur;
  if (r->pub.body_len + len > c->s->lim.max_body) {
    c->err_status = 413;
    return -1;
  }
  size_t need = r->pub.body_len + len + 1;
  if (need > r->body_cap) {
    /* body_cap is 0 while body is the built-in empty one. */
    char *body = r->pub.body == r->empty_body ? NULL : r->pub.body;
    if (hg_grow(&body, &r->body_cap, need, 1, 1024) != 0) return -1;
    r->pub.body = body;
  }
  memcpy(r->pub.body + r->pub.body_len, at, len);
  r->pub.body_len += len;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct conn *c = p->data;
  struct req *r = c->cur;
  r->pub.body[r->pub.body_len] = '\0';
  r->keep_alive = llhttp_should_keep_alive(p) != 0;
  r->need_continue = 0;
  /* Pause so the request is handed over outside the parser. An upgrade
   * request pauses by itself (HPE_PAUSED_UPGRADE), and must: pausing here
   * too left that second pause to come, from the next bytes, with no
   * request being parsed. */
  return p->upgrade ? 0 : HPE_PAUSED;
}

/* ---- writing ---- */

struct wreq {
  uv_write_t w;
  struct conn *c;
  char data[];
};

static void on_write(uv_write_t *w, int status) {
  struct wreq *wr = (struct wreq *)w;
  struct conn *c = wr->c;
  free(wr);
  if (status < 0 && !c->closed) conn_close(c);
}

/* Sends bytes on the socket: what the kernel takes at once goes without a
 * copy; the rest is copied into a write request. */
static int raw_send(struct conn *c, const char *data, size_t len) {
  if (len == 0) return 0;
  if (c->tcp.write_queue_size == 0) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n != UV_EAGAIN) {
      return HG_EIO;
    }
    if (len == 0) return 0;
  }
  struct wreq *wr = malloc(sizeof(*wr) + len);
  if (wr == NULL) return HG_ENOMEM;
  wr->c = c;
  memcpy(wr->data, data, len);
  uv_buf_t b = uv_buf_init(wr->data, (unsigned)len);
  if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
    free(wr);
    return HG_EIO;
  }
  return 0;
}

static int tls_flush(struct conn *c) {
  size_t n;
  const char *p = hg_tls_sconn_pending(c->tls, &n);
  if (n == 0) return 0;
  int rc = raw_send(c, p, n);
  hg_tls_sconn_consume(c->tls, n);
  return rc;
}

static int conn_send(struct conn *c, const char *data, size_t len) {
  if (!c->is_tls) return raw_send(c, data, len);
  if (hg_tls_sconn_write(c->tls, data, len) != 0) return HG_EIO;
  return tls_flush(c);
}

static void send_continue(struct conn *c) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  c->head->need_continue = 0;
  if (conn_send(c, cont, sizeof(cont) - 1) != 0) conn_close(c);
}

/* Sends every finished response at the front of the queue, then decides
 * whether the connection closes, reads again, or waits. */
static void conn_flush(struct conn *c) {
  if (c->shutting) {
    /* Answers that come after we said goodbye have nowhere to go. */
    while (c->head != NULL && c->head->state == RQ_DONE) {
      struct req *r = c->head;
      c->head = r->next;
      if (c->head == NULL) c->tail = NULL;
      c->n_queued--;
      req_free(r);
    }
    return;
  }
  while (!c->closed && c->head != NULL && c->head->state == RQ_DONE) {
    struct req *r = c->head;
    int close_after = r->close_after;
    int rc = conn_send(c, r->out.data, r->out.len);
    c->head = r->next;
    if (c->head == NULL) c->tail = NULL;
    c->n_queued--;
    req_recycle(c, r);
    if (rc != 0) {
      conn_close(c);
      return;
    }
    if (close_after) {
      conn_end(c);
      return;
    }
  }
  if (c->closed || c->ending) return;
  if (c->head != NULL && c->head->state == RQ_PARSING && c->head->need_continue) send_continue(c);
  if (c->closed) return;
  if (c->head == NULL && c->s->draining) {
    conn_end(c);
    return;
  }
  if (c->paused && c->n_queued <= MAX_PENDING / 2 && !c->in_resume) {
    /* Parse what is left from a later loop iteration, not inside the
     * handler's hg_http_respond() call. */
    c->in_resume = 1;
    c->refs++;
    c->resume_next = c->s->resume;
    c->s->resume = c;
    uv_idle_start(&c->s->idle, on_idle);
  }
  conn_arm(c);
}

/* Serialises a response into r->out and queues it. */
static void respond_raw(struct req *r, int status, const char *ctype, const char *body,
                        size_t body_len) {
  struct conn *c = r->c;
  if (c == NULL) {
    /* A subrequest: hand the answer over instead of writing it. */
    for (size_t i = 0; i < r->pub.n_params; i++) free(r->pub.params[i].value);
    r->pub.n_params = 0;
    (void)ctype;
    r->vcb(status, body, body_len, r->vud);
    req_free(r);
    return;
  }
  hg_http_server_t *s = c->s;
  int held = r->state == RQ_HANDLER;
  if (held) c->n_held--;
  /* The router's decoded parameters are the handler's; it is done now. */
  for (size_t i = 0; i < r->pub.n_params; i++) free(r->pub.params[i].value);
  r->pub.n_params = 0;
  r->state = RQ_DONE;
  r->status = status;
  if (c->closed) {
    /* The connection died while the handler worked: drop the answer. */
    struct req **pp = &c->head;
    while (*pp != r) pp = &(*pp)->next;
    *pp = r->next;
    if (c->tail == r) {
      c->tail = NULL;
      for (struct req *t = c->head; t; t = t->next) c->tail = t;
    }
    c->n_queued--;
    req_free(r);
    if (held) conn_unref(c);
    return;
  }
  int no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
  int closing = r->close_after || !r->keep_alive || c->ending;
  /* Draining: the last request of the connection says goodbye. */
  if (s->draining && r->next == NULL) closing = 1;
  r->close_after = closing;
  size_t ct_len = ctype ? strlen(ctype) : 0;
  size_t need = 320 + ct_len + r->extra.len + body_len;
  hg_buf_reset(&r->out);
  if (hg_buf_reserve(&r->out, need) != 0) {
    r->close_after = 1;
    conn_flush(c);
    if (held) conn_unref(c);
    return;
  }
  char *o = r->out.data;
  /* Written by copies, not snprintf: this runs for every response. */
  const char *reason = hg_http_status_text(status);
  size_t len = 9, rl = strnlen(reason, 40);
  memcpy(o, "HTTP/1.1 ", 9);
  len += hg_fmt_u64(o + len, (uint64_t)(status > 0 ? status : 0));
  o[len++] = ' ';
  memcpy(o + len, reason, rl);
  len += rl;
  o[len++] = '\r';
  o[len++] = '\n';
  if (ctype != NULL) {
    memcpy(o + len, "Content-Type: ", 14);
    memcpy(o + len + 14, ctype, ct_len);
    memcpy(o + len + 14 + ct_len, "\r\n", 2);
    len += 16 + ct_len;
  }
  if (!no_body) {
    memcpy(o + len, "Content-Length: ", 16);
    len += 16;
    len += hg_fmt_u64(o + len, body_len);
    o[len++] = '\r';
    o[len++] = '\n';
  }
  const char *date = cached_date(s);
  size_t dl = strnlen(date, 40), il = strnlen(r->pub.request_id, sizeof(r->pub.request_id));
  memcpy(o + len, "Date: ", 6);
  memcpy(o + len + 6, date, dl);
  len += 6 + dl;
  memcpy(o + len, "\r\nX-Request-Id: ", 16);
  memcpy(o + len + 16, r->pub.request_id, il);
  len += 16 + il;
  o[len++] = '\r';
  o[len++] = '\n';
  if (r->extra.len > 0) {
    memcpy(o + len, r->extra.data, r->extra.len);
    len += r->extra.len;
  }
  if (closing) {
    memcpy(o + len, "Connection: close\r\n", 19);
    len += 19;
  } else if (r->http10) {
    memcpy(o + len, "Connection: keep-alive\r\n", 24);
    len += 24;
  }
  memcpy(o + len, "\r\n", 2);
  len += 2;
  r->resp_bytes = 0;
  if (!no_body && !r->is_head && body_len > 0) {
    memcpy(o + len, body, body_len);
    len += body_len;
    r->resp_bytes = body_len;
  }
  r->out.len = len;
  if (s->access_log && hg_log_enabled(HG_LOG_INFO)) {
    char st[8], bytes[24], dur[32];
    snprintf(st, sizeof(st), "%d", status);
    snprintf(bytes, sizeof(bytes), "%zu", r->resp_bytes);
    uint64_t ns = hg_now_ns() - r->pub.start_ns;
    snprintf(dur, sizeof(dur), "%.3f", (double)ns / 1e6);
    hg_log(HG_LOG_INFO, "access", "method", r->pub.method, "path",
           r->pub.path ? r->pub.path : "", "status", st, "bytes", bytes, "duration_ms", dur,
           "request_id", r->pub.request_id, "remote", c->remote, NULL);
  }
  conn_flush(c);
  if (held) conn_unref(c);
}

void hg_http_respond(hg_http_req_t *req, int status, const char *content_type, const char *body,
                     size_t body_len) {
  respond_raw((struct req *)req, status, content_type, body, body_len);
}

void hg_http_respond_json(hg_http_req_t *req, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (text == NULL) {
    respond_raw((struct req *)req, 500, "application/json",
                "{\"error\":{\"type\":\"internal\",\"message\":\"out of memory\",\"details\":[]}}",
                67);
    return;
  }
  respond_raw((struct req *)req, status, "application/json", text, strlen(text));
  free(text);
}

void hg_http_respond_error(hg_http_req_t *req, int status, const char *type, const char *message,
                           json_t *details) {
  if (details == NULL) details = json_array();
  if (type == NULL) type = "error";
  if (message == NULL) message = "";
  json_t *doc = json_pack("{s:{s:s,s:s,s:o}}", "error", "type", type, "message", message,
                          "details", details);
  hg_http_respond_json(req, status, doc);
}

/* ---- reading and parsing ---- */

static void dispatch(struct conn *c, struct req *r) {
  hg_http_server_t *s = c->s;
  r->state = RQ_HANDLER;
  c->n_held++;
  c->refs++;
  if (s->draining) r->keep_alive = 0;
  /* The handler may answer at once, which may close the connection; the
   * reference taken for the request keeps c valid until we return. */
  c->refs++;
  s->handler(&r->pub, s->handler_ud);
  conn_unref(c);
}

static const char *error_type(int status) {
  switch (status) {
  case 408: return "request_timeout";
  case 413: return "payload_too_large";
  case 431: return "headers_too_large";
  default: return "bad_request";
  }
}

/* Answers the request being parsed with an error and closes after it. */
static void fail_current(struct conn *c, int status, const char *message) {
  struct req *r = c->cur;
  if (r == NULL) {
    on_message_begin(&c->parser);
    r = c->cur;
    if (r == NULL) {
      conn_close(c);
      return;
    }
  }
  c->cur = NULL;
  c->stopped = 1;
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
  r->close_after = 1;
  r->need_continue = 0;
  if (r->pub.path == NULL) r->pub.path = "";
  hg_http_respond_error(&r->pub, status, error_type(status), message, NULL);
}

static void save_left(struct conn *c, const char *p, size_t n) {
  hg_buf_t *b = &c->left;
  if (b->data != NULL && p >= b->data && p <= b->data + b->cap) {
    /* The rest of the input saved before (parsing paused again): it stays
     * where it is. */
    b->off = (size_t)(p - b->data);
    b->len = b->off + n;
    return;
  }
  hg_buf_reset(b);
  if (hg_buf_append(b, p, n) != 0) conn_close(c);
}

/* Parses data. Returns 0 when all of it was consumed, 1 when parsing
 * paused with the rest saved (too many requests pending), -1 when the
 * connection stopped reading or closed. */
static int conn_feed(struct conn *c, const char *data, size_t len) {
  const char *p = data, *end = data + len;
  while (p < end) {
    if (c->closed || c->stopped || c->ending) return -1;
    if (c->n_queued > MAX_PENDING) {
      save_left(c, p, (size_t)(end - p));
      c->paused = 1;
      if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
      }
      return 1;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, p, (size_t)(end - p));
    if (e == HPE_OK) return 0;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
      p = llhttp_get_error_pos(&c->parser);
      if (e == HPE_PAUSED) llhttp_resume(&c->parser);
      struct req *r = c->cur;
      c->cur = NULL;
      if (e == HPE_PAUSED_UPGRADE || !r->keep_alive || c->s->draining) {
        /* Nothing after this request is read: an upgrade switches to a
         * protocol we do not speak; a closing request is the last. */
        r->keep_alive = 0;
        c->stopped = 1;
        if (c->reading) {
          uv_read_stop((uv_stream_t *)&c->tcp);
          c->reading = 0;
        }
      }
      dispatch(c, r);
      continue;
    }
    int status = c->err_status ? c->err_status : 400;
    const char *msg = status == 431   ? "request headers too large"
                      : status == 413 ? "request body too large"
                                      : llhttp_get_error_reason(&c->parser);
    if (msg == NULL || *msg == '\0') msg = "malformed request";
    fail_current(c, status, msg);
    return -1;
  }
  return 0;
}

/* Decrypts and parses everything buffered on a TLS connection. */
static void peer_done(struct conn *c);

static void tls_pump(struct conn *c) {
  hg_http_server_t *s = c->s;
  for (;;) {
    if (c->closed || c->paused || c->stopped || c->ending) return;
    int n = hg_tls_sconn_read(c->tls, s->pbuf, sizeof(s->pbuf));
    if (tls_flush(c) != 0) {
      conn_close(c);
      return;
    }
    if (n == 0) return;
    if (n < 0) {
      /* A bad handshake or a peer that said goodbye: this connection only. */
      if (n == HG_EIO && !hg_tls_sconn_established(c->tls))
        hg_log(HG_LOG_DEBUG, "tls handshake failed", "remote", c->remote, NULL);
      if (n == HG_EIO) conn_close(c);
      else peer_done(c);
      return;
    }
    if (conn_feed(c, s->pbuf, (size_t)n) != 0) return;
  }
}

/* The peer sent its last byte. Answers still owed go out (a half-closed
 * client still gets them), then the connection closes. */
static void peer_done(struct conn *c) {
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
  if (c->cur != NULL || c->head == NULL) {
    conn_close(c);
    return;
  }
  c->stopped = 1;
  c->ending = 1;
  for (struct req *r = c->head; r; r = r->next) r->close_after = r->next == NULL;
  /* The last answer closes; without pending ones, nothing else would. */
  if (c->head->state == RQ_DONE) conn_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct conn *c = h->data;
  (void)suggested;
  /* One buffer for all connections: the loop calls on_read right after. */
  buf->base = c->s->rbuf;
  buf->len = sizeof(c->s->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = st->data;
  if (nread == 0) return;
  if (c->lingering) {
    if (nread < 0) conn_close(c);
    return;
  }
  if (nread < 0) {
    uv_read_stop(st);
    c->reading = 0;
    if (nread == UV_EOF) peer_done(c);
    else conn_close(c);
    return;
  }
  c->refs++;
  if (c->is_tls) {
    if (hg_tls_sconn_feed(c->tls, buf->base, (size_t)nread) != 0) conn_close(c);
    else tls_pump(c);
  } else {
    conn_feed(c, buf->base, (size_t)nread);
  }
  if (!c->closed) conn_arm(c);
  conn_unref(c);
}

/* ---- timers and closing ---- */

static void on_timer(uv_timer_t *t);

/* Starts c's timer for deadline (uv_now time; at once if it has passed)
 * and notes when it fires: every start goes through here, so armed always
 * says what the timer will do. */
static void timer_at(struct conn *c, uint64_t deadline) {
  uint64_t now = uv_now(c->s->loop);
  c->armed = deadline > now ? deadline : now;
  uv_timer_start(&c->timer, on_timer, c->armed - now, 0);
}

static void on_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  enum timer_kind k = c->tkind;
  c->armed = 0;
  if (k == TK_NONE) return; /* set for a deadline that has gone since */
  if (k != TK_LINGER && uv_now(c->s->loop) < c->deadline) {
    timer_at(c, c->deadline); /* set for an earlier deadline than the current one: the rest */
    return;
  }
  c->tkind = TK_NONE;
  switch (k) {
  case TK_HEADER:
  case TK_BODY:
    if (c->cur != NULL) {
      fail_current(c, 408, k == TK_HEADER ? "request headers not received in time"
                                          : "request body not received in time");
      if (!c->closed) conn_arm(c);
      return;
    }
    conn_close(c);
    return;
  default: conn_close(c); return;
  }
}

static void conn_arm(struct conn *c) {
  if (c->closed || c->lingering || c->shutting) return;
  const hg_http_limits_t *lim = &c->s->lim;
  enum timer_kind k = TK_NONE;
  uint64_t deadline = 0;
  if (c->n_held > 0 || c->shutting) {
    k = TK_NONE;
  } else if (c->cur != NULL) {
    if (c->cur->headers_done) {
      k = TK_BODY;
      deadline = c->cur->body_start_ms + lim->body_timeout_ms;
    } else {
      k = TK_HEADER;
      deadline = c->cur->start_ms + lim->header_timeout_ms;
    }
  } else if (c->head == NULL && !c->served) {
    /* A new connection must start a request within the header timeout. */
    k = TK_HEADER;
    deadline = c->accept_ms + lim->header_timeout_ms;
  } else if (c->head == NULL) {
    if (c->tkind == TK_IDLE) return;
    k = TK_IDLE;
    deadline = uv_now(c->s->loop) + lim->idle_timeout_ms;
  }
  if (k == c->tkind && deadline == c->deadline) return;
  c->tkind = k;
  c->deadline = deadline;
  /* The timer is moved only when it would fire too late. One running for
   * an earlier deadline, or with nothing left to time (TK_NONE), fires,
   * and on_timer arms it for the rest or does nothing: a keep-alive
   * request then costs no timer update at all, where stopping it at each
   * request and starting it at each answer was two heap operations. */
  if (k == TK_NONE || (c->armed != 0 && c->armed <= deadline)) return;
  timer_at(c, deadline);
}

static void on_conn_closed(uv_handle_t *h) { conn_unref(h->data); }

/* Frees c once its handles closed and nobody holds a request or a
 * deferred-work slot. */
static void conn_unref(struct conn *c) {
  if (--c->refs > 0) return;
  hg_http_server_t *s = c->s;
  for (struct req *r = c->head; r != NULL;) {
    struct req *n = r->next;
    req_free(r);
    r = n;
  }
  req_free(c->spare);
  hg_buf_free(&c->left);
  hg_tls_sconn_free(c->tls);
  struct listener *l = c->l;
  free(c);
  /* The listener goes first: c's own server reference keeps s alive. */
  if (l) listener_unref(l);
  server_unref(s);
}

/* Closes at once. Requests the handler holds stay valid: their answers
 * are dropped. */
static void conn_close(struct conn *c) {
  if (c->closed) return;
  hg_http_server_t *s = c->s;
  c->closed = 1;
  hg_list_del(&c->link);
  s->n_conns--;
  /* Requests nobody holds go now; held ones stay queued until answered. */
  struct req **pp = &c->head;
  c->tail = NULL;
  while (*pp != NULL) {
    struct req *r = *pp;
    if (r->state != RQ_HANDLER) {
      *pp = r->next;
      c->n_queued--;
      req_free(r);
    } else {
      c->tail = r;
      pp = &r->next;
    }
  }
  c->cur = NULL;
  /* Two handles close; each close callback drops one reference, and the
   * connection's single handle reference becomes two. */
  c->refs++;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
  if (s->draining && s->n_conns == 0 && s->done != NULL) {
    s->done_pending = 1;
    uv_idle_start(&s->idle, on_idle);
  }
}

static void on_shutdown(uv_shutdown_t *sr, int status) {
  struct conn *c = sr->data;
  if (c->closed) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  /* Drain the peer's leftovers for a moment, then close. */
  c->lingering = 1;
  if (!c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
      conn_close(c);
      return;
    }
    c->reading = 1;
  }
  c->tkind = TK_LINGER;
  timer_at(c, uv_now(c->s->loop) + LINGER_MS);
}

/* Closes gracefully: after the queued writes, send FIN, then linger. */
static void conn_end(struct conn *c) {
  if (c->closed || c->shutting) return;
  c->ending = 1;
  c->stopped = 1;
  c->shutting = 1;
  c->cur = NULL;
  c->tkind = TK_LINGER;
  timer_at(c, uv_now(c->s->loop) + SEND_GRACE_MS);
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
  c->shut.data = c;
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

/* ---- deferred work ---- */

static void on_idle(uv_idle_t *h) {
  hg_http_server_t *s = h->data;
  struct conn *list = s->resume;
  s->resume = NULL;
  while (list != NULL) {
    struct conn *c = list;
    list = c->resume_next;
    c->in_resume = 0;
    if (!c->closed && c->paused && !c->stopped && !c->ending) {
      c->paused = 0;
      int r = 0;
      size_t n = hg_buf_unread(&c->left);
      if (n > 0) {
        const char *left = c->left.data + c->left.off;
        /* Marked read before parsing: save_left sets what remains. */
        c->left.off = c->left.len = 0;
        r = conn_feed(c, left, n);
      }
      if (r == 0 && c->is_tls) tls_pump(c);
      if (!c->closed && !c->paused && !c->stopped && !c->ending && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
        else conn_close(c);
      }
      if (!c->closed) conn_arm(c);
    }
    conn_unref(c);
  }
  if (s->done_pending && s->n_conns == 0) {
    s->done_pending = 0;
    void (*done)(void *) = s->done;
    s->done = NULL;
    if (done) done(s->done_ud);
  }
  if (s->resume == NULL && !s->done_pending) uv_idle_stop(&s->idle);
}

/* ---- accepting ---- */

static void on_reject_closed(uv_handle_t *h) { free(h); }

static void on_connection(uv_stream_t *ls, int status) {
  struct listener *l = ls->data;
  hg_http_server_t *s = l->s;
  if (status < 0) return;
  if (s->draining || s->n_conns >= s->lim.max_connections) {
    uv_tcp_t *t = malloc(sizeof(*t));
    if (t == NULL) return;
    uv_tcp_init(s->loop, t);
    uv_accept(ls, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_reject_closed);
    return;
  }
  struct conn *c = calloc(1, sizeof(*c));
  if (c == NULL) return;
  c->s = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->refs = 1;
  c->accept_ms = uv_now(s->loop);
  s->refs++;
  c->l = l;
  l->refs++;
  hg_list_push(&s->conns, &c->link);
  s->n_conns++;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof(c->remote));
    else uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof(c->remote));
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
  c->parser.data = c;
  if (l->tls != NULL) {
    c->is_tls = 1;
    if ((c->tls = hg_tls_sconn_new(l->tls)) == NULL) {
      conn_close(c);
      return;
    }
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  c->reading = 1;
  conn_arm(c);
}

/* ---- the server ---- */

int hg_http_server_new(hg_http_server_t **out, const hg_http_server_opts_t *opts) {
  *out = NULL;
  hg_http_server_t *s = calloc(1, sizeof(*s));
  if (s == NULL) return HG_ENOMEM;
  s->loop = opts->loop;
  s->lim = opts->limits;
  hg_http_limits_t d;
  hg_http_limits_default(&d);
  /* Zero means "the default" for every limit. */
  if (s->lim.max_header_bytes == 0) s->lim.max_header_bytes = d.max_header_bytes;
  if (s->lim.max_headers == 0) s->lim.max_headers = d.max_headers;
  if (s->lim.max_body == 0) s->lim.max_body = d.max_body;
  if (s->lim.header_timeout_ms == 0) s->lim.header_timeout_ms = d.header_timeout_ms;
  if (s->lim.idle_timeout_ms == 0) s->lim.idle_timeout_ms = d.idle_timeout_ms;
  if (s->lim.body_timeout_ms == 0) s->lim.body_timeout_ms = d.body_timeout_ms;
  if (s->lim.max_connections == 0) s->lim.max_connections = d.max_connections;
  s->handler = opts->handler;
  s->handler_ud = opts->handler_ud;
  s->access_log = opts->access_log;
  s->refs = 2; /* the owner and the idle handle */
  if (getrandom(&s->rng, sizeof(s->rng), 0) != sizeof(s->rng)) s->rng = hg_now_ns();
  hg_list_init(&s->conns);
  uv_idle_init(s->loop, &s->idle);
  s->idle.data = s;
  llhttp_settings_init(&s->settings);
  s->settings.on_message_begin = on_message_begin;
  s->settings.on_url = on_url;
  s->settings.on_url_complete = on_url_complete;
  s->settings.on_header_field = on_header_field;
  s->settings.on_header_field_complete = on_header_field_complete;
  s->settings.on_header_value = on_header_value;
  s->settings.on_header_value_complete = on_header_value_complete;
  s->settings.on_headers_complete = on_headers_complete;
  s->settings.on_body = on_body;
  s->settings.on_message_complete = on_message_complete;
  *out = s;
  return 0;
}

/* The TLS configuration is shared by every connection the listener
 * accepted, so it lives until the listener is closed and the last of
 * them is freed: graceful shutdown closes listeners first. */
static void listener_unref(struct listener *l) {
  if (--l->refs > 0) return;
  hg_http_server_t *s = l->s;
  hg_tls_server_free(l->tls);
  free(l);
  server_unref(s);
}

static void on_listener_closed(uv_handle_t *h) { listener_unref(h->data); }

static int parse_addr(const char *addr, struct sockaddr_storage *ss) {
  char host[64];
  const char *colon;
  size_t hl;
  if (addr[0] == '[') {
    const char *rb = strchr(addr, ']');
    if (rb == NULL || rb[1] != ':') return UV_EINVAL;
    hl = (size_t)(rb - addr - 1);
    addr++;
    colon = rb + 1;
  } else {
    colon = strrchr(addr, ':');
    if (colon == NULL) return UV_EINVAL;
    hl = (size_t)(colon - addr);
  }
  if (hl >= sizeof(host)) return UV_EINVAL;
  memcpy(host, addr, hl);
  host[hl] = '\0';
  char *endp;
  long port = strtol(colon + 1, &endp, 10);
  if (colon[1] == '\0' || *endp != '\0' || port < 0 || port > 65535) return UV_EINVAL;
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
}

int hg_http_server_listen(hg_http_server_t *s, const char *addr, const char *tls_cert,
                          const char *tls_key, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  int rc = parse_addr(addr, &ss);
  if (rc != 0) {
    snprintf(err, errlen, "listen %s: invalid address (want host:port or [v6]:port)", addr);
    return HG_EINVAL;
  }
  if (s->draining) {
    snprintf(err, errlen, "listen %s: server is shutting down", addr);
    return HG_ESTATE;
  }
  hg_tls_server_t *tls = NULL;
  if (tls_cert != NULL && tls_key != NULL) {
    char terr[256];
    rc = hg_tls_server_new(&tls, tls_cert, tls_key, terr, sizeof(terr));
    if (rc != 0) {
      snprintf(err, errlen, "listen %s: %s", addr, terr);
      return rc;
    }
  }
  struct listener *l = calloc(1, sizeof(*l));
  if (l == NULL) {
    hg_tls_server_free(tls);
    snprintf(err, errlen, "listen %s: out of memory", addr);
    return HG_ENOMEM;
  }
  l->s = s;
  l->tls = tls;
  l->refs = 1;
  uv_tcp_init_ex(s->loop, &l->tcp, ss.ss_family);
  l->tcp.data = l;
  s->refs++;
  rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
  if (rc != 0) {
    snprintf(err, errlen, "listen %s: %s", addr, uv_strerror(rc));
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    return rc == UV_EADDRINUSE ? HG_EBUSY : HG_EIO;
  }
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  char ip[48] = "";
  int port = 0;
  uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &blen);
  if (bound.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof(ip));
    port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    snprintf(l->addr, sizeof(l->addr), "[%s]:%d", ip, port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof(ip));
    port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    snprintf(l->addr, sizeof(l->addr), "%s:%d", ip, port);
  }
  /* Append, so listener i is the i-th successful listen. */
  struct listener **pp = &s->listeners;
  while (*pp) pp = &(*pp)->next;
  *pp = l;
  hg_log(HG_LOG_INFO, "listening", "addr", l->addr, "tls", tls ? "true" : "false", NULL);
  return 0;
}

const char *hg_http_server_addr(const hg_http_server_t *s, size_t i) {
  for (struct listener *l = s->listeners; l; l = l->next)
    if (i-- == 0) return l->addr;
  return NULL;
}

static void close_listeners(hg_http_server_t *s) {
  struct listener *l = s->listeners;
  s->listeners = NULL;
  while (l) {
    struct listener *n = l->next;
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    l = n;
  }
}

void hg_http_server_shutdown(hg_http_server_t *s, void (*done)(void *ud), void *ud) {
  if (s->draining) return;
  s->draining = 1;
  s->done = done;
  s->done_ud = ud;
  close_listeners(s);
  /* Idle connections go now; busy ones after their last response. A
   * connection in the middle of receiving a request keeps going. */
  hg_list_t *it, *tmp;
  HG_LIST_EACH_SAFE(it, tmp, &s->conns) {
    struct conn *c = HG_CONTAINER(it, struct conn, link);
    if (c->head == NULL) conn_end(c);
  }
  /* With connections left, the last one to close schedules done. */
  if (s->n_conns == 0) {
    s->done_pending = 1;
    uv_idle_start(&s->idle, on_idle);
  }
}

int hg_http_server_draining(const hg_http_server_t *s) { return s->draining; }

size_t hg_http_server_connections(const hg_http_server_t *s) { return s->n_conns; }

static void on_idle_closed(uv_handle_t *h) { server_unref(h->data); }

void hg_http_server_free(hg_http_server_t *s) {
  if (s == NULL || s->freeing) return;
  s->freeing = 1;
  s->done = NULL;
  s->done_pending = 0;
  close_listeners(s);
  while (!hg_list_empty(&s->conns)) conn_close(HG_CONTAINER(s->conns.next, struct conn, link));
  /* The idle handle will not run again: release what waits on it. */
  while (s->resume) {
    struct conn *c = s->resume;
    s->resume = c->resume_next;
    c->in_resume = 0;
    conn_unref(c);
  }
  uv_close((uv_handle_t *)&s->idle, on_idle_closed);
  server_unref(s);
}
