/* http_server.c: HTTP/1.1 on libuv + llhttp, plain or TLS: the server,
 * its listeners and connections. A connection's bytes are read here (and
 * decrypted on a TLS listener), parsed and answered by http_server_h1.c,
 * and sent here; its one timer, its closing (at once, or gracefully with a
 * lingering drain) and the server's shutdown live here too.
 * http_server_internal.h describes the shape of a connection. */
#include "net/http_server.h"

#include "base/common.h"
#include "base/log.h"
#include "net/http_server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* How long a closing connection drains what the peer still sends, so the
 * kernel does not reset the connection over unread data and destroy the
 * response we just sent. */
#define LINGER_MS 1000
/* How long a closing connection may take to send its last bytes to a peer
 * that does not read them. */
#define SEND_GRACE_MS 10000

static void on_idle(uv_idle_t *h);
static void listener_unref(struct listener *l);

/* ---- small helpers ---- */

static void server_unref(hg_http_server_t *s) {
  if (--s->refs > 0) return;
  hg_http__pool_free(s);
  free(s);
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

/* ---- sending ---- */

struct wreq {
  uv_write_t w;
  struct conn *c;
  char data[];
};

static void on_write(uv_write_t *w, int status) {
  struct wreq *wr = (struct wreq *)w;
  struct conn *c = wr->c;
  free(wr);
  if (status < 0 && !c->closed) hg_http__conn_close(c);
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

int hg_http__conn_send(struct conn *c, const char *data, size_t len) {
  if (!c->is_tls) return raw_send(c, data, len);
  if (hg_tls_sconn_write(c->tls, data, len) != 0) return HG_EIO;
  return tls_flush(c);
}

/* ---- reading ---- */

static void peer_done(struct conn *c);

/* Decrypts and parses everything buffered on a TLS connection. */
static void tls_pump(struct conn *c) {
  hg_http_server_t *s = c->s;
  for (;;) {
    if (c->closed || c->paused || c->stopped || c->ending) return;
    int n = hg_tls_sconn_read(c->tls, s->pbuf, sizeof(s->pbuf));
    if (tls_flush(c) != 0) {
      hg_http__conn_close(c);
      return;
    }
    if (n == 0) return;
    if (n < 0) {
      /* A bad handshake or a peer that said goodbye: this connection only. */
      if (n == HG_EIO && !hg_tls_sconn_established(c->tls))
        hg_log(HG_LOG_DEBUG, "tls handshake failed", "remote", c->remote, NULL);
      if (n == HG_EIO) hg_http__conn_close(c);
      else peer_done(c);
      return;
    }
    if (hg_http__conn_feed(c, s->pbuf, (size_t)n) != 0) return;
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
    hg_http__conn_close(c);
    return;
  }
  c->stopped = 1;
  c->ending = 1;
  for (struct req *r = c->head; r; r = r->next) r->close_after = r->next == NULL;
  /* The last answer closes; without pending ones, nothing else would. */
  if (c->head->state == RQ_DONE) hg_http__conn_flush(c);
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
    if (nread < 0) hg_http__conn_close(c);
    return;
  }
  if (nread < 0) {
    uv_read_stop(st);
    c->reading = 0;
    if (nread == UV_EOF) peer_done(c);
    else hg_http__conn_close(c);
    return;
  }
  c->refs++;
  if (c->is_tls) {
    if (hg_tls_sconn_feed(c->tls, buf->base, (size_t)nread) != 0) hg_http__conn_close(c);
    else tls_pump(c);
  } else {
    hg_http__conn_feed(c, buf->base, (size_t)nread);
  }
  if (!c->closed) hg_http__conn_arm(c);
  hg_http__conn_unref(c);
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
      hg_http__fail_current(c, 408, k == TK_HEADER ? "request headers not received in time"
                                          : "request body not received in time");
      if (!c->closed) hg_http__conn_arm(c);
      return;
    }
    hg_http__conn_close(c);
    return;
  default: hg_http__conn_close(c); return;
  }
}

void hg_http__conn_arm(struct conn *c) {
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

static void on_conn_closed(uv_handle_t *h) { hg_http__conn_unref(h->data); }

/* c is freed once its handles closed and nobody holds a request or a
 * deferred-work slot. */
void hg_http__conn_unref(struct conn *c) {
  if (--c->refs > 0) return;
  hg_http_server_t *s = c->s;
  for (struct req *r = c->head; r != NULL;) {
    struct req *n = r->next;
    hg_http__req_free(r);
    r = n;
  }
  hg_buf_free(&c->left);
  hg_tls_sconn_free(c->tls);
  struct listener *l = c->l;
  free(c);
  /* The listener goes first: c's own server reference keeps s alive. */
  if (l) listener_unref(l);
  server_unref(s);
}

void hg_http__conn_close(struct conn *c) {
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
      hg_http__req_free(r);
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
  /* libuv calls this even when the handle closes first (UV_ECANCELED),
   * and before the handle's close callback: c is still here. */
  free(sr);
  if (c->closed) return;
  if (status < 0) {
    hg_http__conn_close(c);
    return;
  }
  /* Drain the peer's leftovers for a moment, then close. */
  c->lingering = 1;
  if (!c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
      hg_http__conn_close(c);
      return;
    }
    c->reading = 1;
  }
  c->tkind = TK_LINGER;
  timer_at(c, uv_now(c->s->loop) + LINGER_MS);
}

void hg_http__conn_end(struct conn *c) {
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
  /* Allocated now rather than kept in every connection: most never need
   * it, and an idle connection's size is what thousands of them cost. */
  uv_shutdown_t *sr = malloc(sizeof(*sr));
  if (sr == NULL) {
    hg_http__conn_close(c);
    return;
  }
  sr->data = c;
  if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(sr);
    hg_http__conn_close(c);
  }
}

/* ---- deferred work ---- */

void hg_http__conn_resume_later(struct conn *c) {
  c->in_resume = 1;
  c->refs++;
  c->resume_next = c->s->resume;
  c->s->resume = c;
  uv_idle_start(&c->s->idle, on_idle);
}

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
        r = hg_http__conn_feed(c, left, n);
        /* Parsed, or given up: the buffer goes, so that the connection,
         * once idle, holds nothing. Paused again, it holds the rest. */
        if (!c->paused) hg_buf_free(&c->left);
      }
      if (r == 0 && c->is_tls) tls_pump(c);
      if (!c->closed && !c->paused && !c->stopped && !c->ending && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
        else hg_http__conn_close(c);
      }
      if (!c->closed) hg_http__conn_arm(c);
    }
    hg_http__conn_unref(c);
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
    hg_http__conn_close(c);
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
      hg_http__conn_close(c);
      return;
    }
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    hg_http__conn_close(c);
    return;
  }
  c->reading = 1;
  hg_http__conn_arm(c);
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
  hg_http__settings_init(&s->settings);
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
    if (c->head == NULL) hg_http__conn_end(c);
  }
  /* With connections left, the last one to close schedules done. */
  if (s->n_conns == 0) {
    s->done_pending = 1;
    uv_idle_start(&s->idle, on_idle);
  }
}

int hg_http_server_draining(const hg_http_server_t *s) { return s->draining; }

size_t hg_http_server_connections(const hg_http_server_t *s) { return s->n_conns; }

void hg_http_server_stats(const hg_http_server_t *s, hg_http_server_stats_t *st) {
  memset(st, 0, sizeof(*st));
  st->connections = s->n_conns;
  st->conn_bytes = sizeof(struct conn);
  st->pooled_requests = s->pool_n;
  st->pooled_bytes = s->pool_bytes;
  for (const hg_list_t *it = s->conns.next; it != &s->conns; it = it->next) {
    const struct conn *c = HG_CONTAINER(it, struct conn, link);
    size_t held = c->left.cap;
    for (const struct req *r = c->head; r != NULL; r = r->next) held += hg_http__req_bytes(r);
    if (c->head == NULL) {
      st->idle_connections++;
      st->idle_held_bytes += held;
    }
  }
}

static void on_idle_closed(uv_handle_t *h) { server_unref(h->data); }

void hg_http_server_free(hg_http_server_t *s) {
  if (s == NULL || s->freeing) return;
  s->freeing = 1;
  s->done = NULL;
  s->done_pending = 0;
  close_listeners(s);
  while (!hg_list_empty(&s->conns)) hg_http__conn_close(HG_CONTAINER(s->conns.next, struct conn, link));
  /* The idle handle will not run again: release what waits on it. */
  while (s->resume) {
    struct conn *c = s->resume;
    s->resume = c->resume_next;
    c->in_resume = 0;
    hg_http__conn_unref(c);
  }
  uv_close((uv_handle_t *)&s->idle, on_idle_closed);
  server_unref(s);
}
