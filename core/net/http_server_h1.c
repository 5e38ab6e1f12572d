/* http_server_h1.c: HTTP/1.1 requests and responses on the server's
 * connections: a request object per request (finished ones go back to the
 * server's pool for the next, on any connection), llhttp's callbacks filling it within the limits, complete
 * requests handed to the handler, answers serialised and sent in request
 * order (pipelining), 100-continue, and internal subrequests that run a
 * handler without a socket. http_server.c owns the sockets. */
#include "base/common.h"
#include "base/log.h"
#include "net/http_server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Stop reading a connection with more requests than this waiting. */
#define MAX_PENDING 16
/* A request with a buffer bigger than this is not kept for the next one:
 * the pool is for the common small request, and its bytes are bounded. */
#define KEEP_BUF_MAX 16384

/* ---- small helpers ---- */

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

void hg_http__req_free(struct req *r) {
  if (r == NULL) return;
  hg_buf_free(&r->hb);
  free(r->pub.headers);
  if (r->pub.body != r->empty_body) free(r->pub.body);
  hg_buf_free(&r->extra);
  hg_buf_free(&r->out);
  free(r);
}

size_t hg_http__req_bytes(const struct req *r) {
  return sizeof(*r) + r->hb.cap + r->hdr_cap * sizeof(hg_http_header_t) + r->body_cap + r->extra.cap +
         r->out.cap;
}

void hg_http__pool_free(hg_http_server_t *s) {
  while (s->pool != NULL) {
    struct req *r = s->pool;
    s->pool = r->next;
    hg_http__req_free(r);
  }
  s->pool_n = 0;
  s->pool_bytes = 0;
}

/* A fresh request for c, reusing one from the server's pool when there is
 * one. */
static struct req *req_new(struct conn *c) {
  hg_http_server_t *s = c->s;
  struct req *r = s->pool;
  if (r != NULL) {
    s->pool = r->next;
    s->pool_n--;
    s->pool_bytes -= hg_http__req_bytes(r);
    hg_buf_t hb = r->hb, extra = r->extra, out = r->out;
    char *body = r->pub.body;
    hg_http_header_t *hdrs = r->pub.headers;
    size_t hdr_cap = r->hdr_cap, body_cap = r->body_cap;
    memset(r, 0, sizeof(*r));
    /* The buffers keep their memory and start empty (the memset zeroed
     * their lengths). */
    r->hb.data = hb.data;
    r->hb.cap = hb.cap;
    r->pub.headers = hdrs;
    r->hdr_cap = hdr_cap;
    r->pub.body = body;
    r->body_cap = body_cap;
    r->extra.data = extra.data;
    r->extra.cap = extra.cap;
    r->out.data = out.data;
    r->out.cap = out.cap;
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

/* Keeps r in the server's pool for the next request, on any connection,
 * when its buffers are modest and the pool has room. A connection keeps
 * nothing for itself: with thousands of idle keep-alive connections, a
 * spare request each was most of their memory, while the requests in
 * flight at once, which the pool serves, are few. */
static void req_recycle(hg_http_server_t *s, struct req *r) {
  size_t bytes = hg_http__req_bytes(r);
  if (r->hb.cap <= KEEP_BUF_MAX && r->body_cap <= KEEP_BUF_MAX && r->out.cap <= KEEP_BUF_MAX &&
      r->extra.cap <= KEEP_BUF_MAX && s->pool_bytes + bytes <= HG_HTTP_POOL_BYTES) {
    r->next = s->pool;
    s->pool = r;
    s->pool_n++;
    s->pool_bytes += bytes;
    return;
  }
  hg_http__req_free(r);
}

/* The head arrives in many small pieces, each string followed by a NUL:
 * an append that fits stays inline, so that the common case costs a copy
 * and no call. */
static inline int hb_put(struct req *r, const char *at, size_t len) {
  hg_buf_t *b = &r->hb;
  if (b->data == NULL || b->cap - b->len < len) return hg_buf_append(b, at, len);
  memcpy(b->data + b->len, at, len);
  b->len += len;
  return 0;
}

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
    hg_http__req_free(r);
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
  /* A request ends the idle period: hg_http__conn_arm() would otherwise keep the
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
  if (r->hb.cap - r->hb.len < path_len + 1 && hg_buf_reserve(&r->hb, path_len + 1) != 0) return -1;
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
    if (hg_grow_max(&body, &r->body_cap, need, 1, 1024, c->s->lim.max_body + 1) != 0) return -1;
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

void hg_http__settings_init(llhttp_settings_t *s) {
  llhttp_settings_init(s);
  s->on_message_begin = on_message_begin;
  s->on_url = on_url;
  s->on_url_complete = on_url_complete;
  s->on_header_field = on_header_field;
  s->on_header_field_complete = on_header_field_complete;
  s->on_header_value = on_header_value;
  s->on_header_value_complete = on_header_value_complete;
  s->on_headers_complete = on_headers_complete;
  s->on_body = on_body;
  s->on_message_complete = on_message_complete;
}

/* ---- responses ---- */

static void send_continue(struct conn *c) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  c->head->need_continue = 0;
  if (hg_http__conn_send(c, cont, sizeof(cont) - 1) != 0) hg_http__conn_close(c);
}

void hg_http__conn_flush(struct conn *c) {
  if (c->shutting) {
    /* Answers that come after we said goodbye have nowhere to go. */
    while (c->head != NULL && c->head->state == RQ_DONE) {
      struct req *r = c->head;
      c->head = r->next;
      if (c->head == NULL) c->tail = NULL;
      c->n_queued--;
      hg_http__req_free(r);
    }
    return;
  }
  while (!c->closed && c->head != NULL && c->head->state == RQ_DONE) {
    struct req *r = c->head;
    int close_after = r->close_after;
    int rc = hg_http__conn_send(c, r->out.data, r->out.len);
    c->head = r->next;
    if (c->head == NULL) c->tail = NULL;
    c->n_queued--;
    req_recycle(c->s, r);
    if (rc != 0) {
      hg_http__conn_close(c);
      return;
    }
    if (close_after) {
      hg_http__conn_end(c);
      return;
    }
  }
  if (c->closed || c->ending) return;
  if (c->head != NULL && c->head->state == RQ_PARSING && c->head->need_continue) send_continue(c);
  if (c->closed) return;
  if (c->head == NULL && c->s->draining) {
    hg_http__conn_end(c);
    return;
  }
  /* Parse what is left from a later loop iteration, not inside the
   * handler's hg_http_respond() call. */
  if (c->paused && c->n_queued <= MAX_PENDING / 2 && !c->in_resume) hg_http__conn_resume_later(c);
  hg_http__conn_arm(c);
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
    hg_http__req_free(r);
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
    hg_http__req_free(r);
    if (held) hg_http__conn_unref(c);
    return;
  }
  int no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
  int closing = r->close_after || !r->keep_alive || c->ending;
  /* Draining: the last request of the connection says goodbye. */
  if (s->draining && r->next == NULL) closing = 1;
  r->close_after = closing;
  size_t ct_len = ctype ? strlen(ctype) : 0;
  size_t need = 320 + ct_len + r->extra.len + body_len;
  r->out.off = r->out.len = 0;
  if (r->out.cap < need && hg_buf_reserve(&r->out, need) != 0) {
    r->close_after = 1;
    hg_http__conn_flush(c);
    if (held) hg_http__conn_unref(c);
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
  hg_http__conn_flush(c);
  if (held) hg_http__conn_unref(c);
}

void hg_http_respond(hg_http_req_t *req, int status, const char *content_type, const char *body,
                     size_t body_len) {
  respond_raw((struct req *)req, status, content_type, body, body_len);
}

void hg_http_respond_json(hg_http_req_t *req, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (text == NULL) {
    static const char oom[] = "{\"error\":{\"type\":\"internal_error\",\"message\":\"out of memory\",\"details\":[]}}";
    respond_raw((struct req *)req, 500, "application/json", oom, sizeof(oom) - 1);
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

/* ---- handing requests over ---- */

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
  hg_http__conn_unref(c);
}

static const char *error_type(int status) {
  switch (status) {
  case 408: return "request_timeout";
  case 413: return "payload_too_large";
  case 431: return "headers_too_large";
  default: return "bad_request";
  }
}

void hg_http__fail_current(struct conn *c, int status, const char *message) {
  struct req *r = c->cur;
  if (r == NULL) {
    on_message_begin(&c->parser);
    r = c->cur;
    if (r == NULL) {
      hg_http__conn_close(c);
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
  if (hg_buf_append(b, p, n) != 0) hg_http__conn_close(c);
}

int hg_http__conn_feed(struct conn *c, const char *data, size_t len) {
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
    hg_http__fail_current(c, status, msg);
    return -1;
  }
  return 0;
}
