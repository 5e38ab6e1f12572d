/* http_client_h1.c: the HTTP/1.1 exchange on a connection the pool handed
 * over (the shape of h2o's http1client.c over its socketpool.c): the TLS
 * handshake (https), writing the request, reading the response through
 * llhttp into the request (headers up to MAX_RESPONSE_HEADER_BYTES, the body
 * up to max_response_body).
 *
 * http_client.c starts it (hg_client__h1_start, from the pool's seam); it
 * ends by giving the connection back to the pool: hg_client__conn_release
 * when the response is complete (kept alive or not), hg_client__conn_fail
 * when the connection failed, hg_client__conn_close when a connection with
 * no request is done for. The pool then hands the request back to
 * http_client.c. Calls no function of http_client.c. Runs on the client's
 * loop thread, from the pool's seam and from libuv's read and write
 * callbacks. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "net/http_client_internal.h"

#define MAX_RESPONSE_HEADER_BYTES 32768

static int on_header_data(llhttp_t *p, const char *at, size_t len);
static int on_header_field_complete(llhttp_t *p);
static int on_header_value_complete(llhttp_t *p);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);

static const llhttp_settings_t parser_settings = {
    .on_header_field = on_header_data,
    .on_header_value = on_header_data,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Gives the connection back as failed. Before any response byte the
 * failure may be a stale keep-alive connection, which the pool retries. */
static void fail(conn_t *conn, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(conn_t *conn, int err, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  hg_client__conn_fail(conn, err, !conn->got_bytes, text);
}

/* The response is complete: the connection is kept alive unless must_close,
 * the server's answer, or TLS bytes already past the response say no. */
static void complete(conn_t *conn, int must_close) {
  int keep = !must_close && conn->keep_alive && !(conn->tls && hg_tls_conn_has_input(conn->tls));
  hg_client__conn_release(conn, keep);
}

/* Forgets the response collected so far (a new attempt, or after an
 * interim 1xx response). */
static void resp_reset(req_t *r) {
  r->status = 0;
  r->truncated = 0;
  hg_buf_reset(&r->hdr);
  r->nhdr = 0;
  hg_buf_reset(&r->body);
}

/* ---- writing ---- */

typedef struct write_req {
  uv_write_t req;
  char data[];
} write_req_t;

static void write_cb(uv_write_t *wr, int status) {
  conn_t *conn = wr->handle->data;
  free(HG_CONTAINER(wr, write_req_t, req));
  if (status < 0 && status != UV_ECANCELED && conn->state != C_CLOSING) {
    if (conn->req)
      fail(conn, HG_EIO, "write: %s", uv_strerror(status));
    else
      hg_client__conn_close(conn);
  }
}

/* Sends what the socket takes now and queues a copy of the rest. */
static int conn_write(conn_t *conn, const char *data, size_t len) {
  if (len == 0) return 0;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&conn->tcp, &b, 1);
  if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
  if (n < 0) return n;
  if ((size_t)n == len) return 0;
  write_req_t *wr = malloc(sizeof(*wr) + len - (size_t)n);
  if (wr == NULL) return UV_ENOMEM;
  memcpy(wr->data, data + n, len - (size_t)n);
  b = uv_buf_init(wr->data, (unsigned)(len - (size_t)n));
  int rc = uv_write(&wr->req, (uv_stream_t *)&conn->tcp, &b, 1, write_cb);
  if (rc < 0) free(wr);
  return rc;
}

/* Returns nonzero when the connection failed (and is closed). */
static int tls_flush(conn_t *conn) {
  const char *data;
  size_t len;
  hg_tls_conn_out(conn->tls, &data, &len);
  int rc = conn_write(conn, data, len);
  hg_tls_conn_out_clear(conn->tls);
  if (rc < 0) {
    fail(conn, HG_EIO, "write: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

static void send_request(conn_t *conn) {
  req_t *r = conn->req;
  /* A new attempt: the response starts empty. */
  resp_reset(r);
  conn->got_bytes = 0;
  conn->msg_done = 0;
  llhttp_init(&conn->parser, HTTP_RESPONSE, &parser_settings);
  conn->parser.data = conn;
  if (conn->tls) {
    char err[256];
    if (hg_tls_conn_write(conn->tls, r->wbuf, r->wlen, err, sizeof(err)) != 0) {
      fail(conn, HG_EIO, "%s", err);
      return;
    }
    tls_flush(conn);
    return;
  }
  int rc = conn_write(conn, r->wbuf, r->wlen);
  if (rc < 0) fail(conn, HG_EIO, "write: %s", uv_strerror(rc));
}

/* The connection is set up (and TLS is up): send. */
static void conn_ready(conn_t *conn) {
  hg_client__conn_established(conn);
  send_request(conn);
}

/* ---- reading ---- */

/* The peer closed (or reset) the connection. */
static void conn_eof(conn_t *conn, ssize_t nread) {
  if (nread == UV_EOF && conn->got_bytes) {
    /* A close-delimited body ends here. */
    llhttp_finish(&conn->parser);
    if (conn->msg_done) {
      complete(conn, 1);
      return;
    }
  }
  if (conn->state == C_CONNECTED)
    fail(conn, HG_EIO, "tls: handshake failed: %s",
         nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
  else if (nread == UV_EOF)
    fail(conn, HG_EIO, "%s",
         conn->got_bytes ? "connection closed mid-response" : "connection closed before response");
  else
    fail(conn, HG_EIO, "%s", uv_strerror((int)nread));
}

/* Feeds response bytes. Returns nonzero when the request ended (the
 * connection is idle or closed and must not be touched). */
static int http_input(conn_t *conn, const char *data, size_t len) {
  req_t *r = conn->req;
  if (r == NULL) {
    hg_client__conn_close(conn);
    return 1;
  }
  conn->got_bytes = 1;
  llhttp_errno_t e = llhttp_execute(&conn->parser, data, len);
  if (conn->msg_done) {
    int extra = e == HPE_PAUSED && llhttp_get_error_pos(&conn->parser) < data + len;
    if (e == HPE_PAUSED) llhttp_resume(&conn->parser);
    complete(conn, extra || r->truncated);
    return 1;
  }
  if (e != HPE_OK) {
    fail(conn, HG_EIO, "bad response: %s", llhttp_get_error_reason(&conn->parser));
    return 1;
  }
  return 0;
}

static void tls_input(conn_t *conn, const char *data, size_t len) {
  char err[256];
  hg_client_t *c = conn->c;
  if (hg_tls_conn_feed(conn->tls, data, len) != 0) {
    fail(conn, HG_EIO, "out of memory");
    return;
  }
  if (conn->state == C_CONNECTED) {
    int rc = hg_tls_conn_handshake(conn->tls, err, sizeof(err));
    if (tls_flush(conn)) return;
    if (rc < 0) {
      fail(conn, HG_EIO, "%s", err);
      return;
    }
    if (rc == 1) return;
    conn->req->tls_resumed = hg_tls_conn_resumed(conn->tls);
    if (conn->req->tls_resumed) c->tls_resumed++;
    else c->tls_full++;
    conn_ready(conn);
    if (conn->state != C_BUSY) return;
  }
  for (;;) {
    int n = hg_tls_conn_read(conn->tls, c->pbuf, sizeof(c->pbuf), err, sizeof(err));
    if (n == 0) return;
    if (n == HG_ECLOSED) {
      conn_eof(conn, UV_EOF);
      return;
    }
    if (n < 0) {
      fail(conn, HG_EIO, "%s", err);
      return;
    }
    if (http_input(conn, c->pbuf, (size_t)n)) return;
  }
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  conn_t *conn = h->data;
  (void)size;
  /* One buffer serves every connection: read_cb consumes it entirely before
   * libuv asks for it again. */
  *buf = uv_buf_init(conn->c->rbuf, sizeof(conn->c->rbuf));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *conn = s->data;
  if (nread == 0 || conn->state == C_CLOSING) return;
  /* Bytes or EOF on an idle connection: the server closed it or broke the
   * protocol. Either way it cannot carry the next request. */
  if (conn->state == C_IDLE) {
    hg_client__conn_close(conn);
    return;
  }
  if (nread < 0) {
    conn_eof(conn, nread);
    return;
  }
  if (conn->tls)
    tls_input(conn, buf->base, (size_t)nread);
  else
    http_input(conn, buf->base, (size_t)nread);
}

/* ---- starting ---- */

void hg_client__h1_start(conn_t *conn) {
  char err[256];
  if (conn->state == C_BUSY) {
    /* A reused connection: already reading, set up. */
    send_request(conn);
    return;
  }
  int rc = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
  if (rc < 0) {
    fail(conn, HG_EIO, "read: %s", uv_strerror(rc));
    return;
  }
  if (!conn->o->https) {
    conn_ready(conn);
    return;
  }
  rc = hg_tls_conn_new(&conn->tls, conn->c->tls, conn->o->host, conn->o->session);
  if (rc != 0) {
    fail(conn, HG_EIO, "tls: cannot start: %s", hg_strerror(rc));
    return;
  }
  rc = hg_tls_conn_handshake(conn->tls, err, sizeof(err));
  if (tls_flush(conn)) return;
  if (rc < 0) fail(conn, HG_EIO, "%s", err);
}

/* ---- llhttp callbacks ---- */

/* Headers arrive in small pieces, each string followed by a NUL: an
 * append that fits stays inline. */
static inline int hbuf_append(req_t *r, const char *at, size_t len) {
  hg_buf_t *b = &r->hdr;
  if (b->len + len + 1 > MAX_RESPONSE_HEADER_BYTES) return -1;
  if (b->data == NULL || b->cap - b->len < len) return hg_buf_append(b, at, len);
  memcpy(b->data + b->len, at, len);
  b->len += len;
  return 0;
}

static int too_big(llhttp_t *p) {
  llhttp_set_error_reason(p, "response headers too large");
  return HPE_USER;
}

static int on_header_data(llhttp_t *p, const char *at, size_t len) {
  conn_t *conn = p->data;
  return hbuf_append(conn->req, at, len) ? too_big(p) : 0;
}

static int on_header_field_complete(llhttp_t *p) {
  conn_t *conn = p->data;
  return hbuf_append(conn->req, "", 1) ? too_big(p) : 0;
}

static int on_header_value_complete(llhttp_t *p) {
  conn_t *conn = p->data;
  conn->req->nhdr++;
  return hbuf_append(conn->req, "", 1) ? too_big(p) : 0;
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *conn = p->data;
  req_t *r = conn->req;
  r->status = p->status_code;
  if (p->flags & F_CONTENT_LENGTH) {
    size_t want = p->content_length < conn->c->o.max_response_body
                      ? (size_t)p->content_length
                      : conn->c->o.max_response_body;
    /* Room for the whole body at once, and no more (+1 for deliver()'s
     * NUL); on_body grows it if this failed. */
    if (want > 0) (void)hg_grow_max(&r->body.data, &r->body.cap, want + 1, 1, want + 1, want + 1);
  }
  return r->head_only ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  conn_t *conn = p->data;
  req_t *r = conn->req;
  size_t max = conn->c->o.max_response_body;
  size_t take = len;
  if (r->body.len + take > max) take = max - r->body.len;
  /* One byte more than the bytes: deliver() ends the body with a NUL. The
   * doubling stops at the limit's max + 1 bytes. */
  if (hg_grow_max(&r->body.data, &r->body.cap, r->body.len + take + 1, 1, 1024, max + 1) != 0) {
    llhttp_set_error_reason(p, "out of memory");
    return HPE_USER;
  }
  memcpy(r->body.data + r->body.len, at, take);
  r->body.len += take;
  if (take < len) {
    /* Over the limit: deliver what we have and drop the connection rather
     * than read an unbounded remainder. */
    r->truncated = 1;
    conn->msg_done = 1;
    llhttp_set_error_reason(p, "body truncated");
    return HPE_USER;
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  conn_t *conn = p->data;
  req_t *r = conn->req;
  if (r->status >= 100 && r->status < 200) {
    /* An interim response (100 Continue): the real one follows. */
    resp_reset(r);
    return 0;
  }
  conn->keep_alive = llhttp_should_keep_alive(p);
  conn->msg_done = 1;
  return HPE_PAUSED;
}
