/* http_client_pool.c: the client's origins and connections (the shape of
 * h2o's socketpool.c under its http1client.c): a pool of connected streams
 * that knows nothing of HTTP.
 *
 * An origin keeps its waiting requests in a FIFO and its idle connections
 * most recently used first; the pump gives a waiting request an idle
 * connection, or a new one while the origin has fewer than max_per_origin
 * and the client fewer than max_in_flight; origins waiting for a global
 * slot take turns in the ready queue. A new connection resolves the name
 * (uv_getaddrinfo), checks every address against the SSRF policy and
 * connects.
 *
 * Calls into no other file of the client: a connection ready for a request,
 * and a request leaving the pool, go up through c->pool_cb (the seam, see
 * http_client_internal.h). The exchange gives connections back with
 * hg_client__conn_release, hg_client__conn_fail and hg_client__conn_close.
 * Runs on the client's loop thread. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "net/http_client_internal.h"

static void conn_timer_cb(uv_timer_t *t);
static void pool_fail(conn_t *conn, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- origins ---- */

static uint64_t hash_key(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

origin_t *hg_client__origin_get(hg_client_t *c, const hg_client_url_t *u) {
  /* "<s|h>:<host>:<port>", lowercased; built by copies (once per send). */
  char key[300];
  size_t hl = u->host_len < sizeof(key) - 32 ? u->host_len : sizeof(key) - 32;
  key[0] = u->https ? 's' : 'h';
  key[1] = ':';
  memcpy(key + 2, u->host, hl);
  size_t kl = 2 + hl;
  key[kl++] = ':';
  kl += hg_fmt_u64(key + kl, u->port);
  key[kl] = '\0';
  for (size_t i = 2; i < kl; i++)
    if (key[i] >= 'A' && key[i] <= 'Z') key[i] = (char)(key[i] - 'A' + 'a');
  uint64_t h = hash_key(key, (size_t)kl);
  if (c->nbuckets > 0) {
    for (origin_t *o = c->buckets[h & (c->nbuckets - 1)]; o; o = o->hnext)
      if (strcmp(o->key, key) == 0) return o;
  }
  if (c->norigins >= c->nbuckets) {
    size_t nb = c->nbuckets ? c->nbuckets * 2 : 16;
    origin_t **b = calloc(nb, sizeof(*b));
    if (b == NULL) return NULL;
    for (size_t i = 0; i < c->nbuckets; i++) {
      origin_t *o = c->buckets[i], *next;
      for (; o; o = next) {
        next = o->hnext;
        size_t j = hash_key(o->key, strlen(o->key)) & (nb - 1);
        o->hnext = b[j];
        b[j] = o;
      }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
  }
  origin_t *o = calloc(1, sizeof(*o) + (size_t)kl + 1 + u->host_len + 1);
  if (o == NULL) return NULL;
  memcpy(o->key, key, (size_t)kl + 1);
  char *host = o->key + kl + 1;
  memcpy(host, key + 2, u->host_len);
  host[u->host_len] = '\0';
  o->host = host;
  o->https = u->https;
  snprintf(o->port, sizeof(o->port), "%u", u->port);
  hg_list_init(&o->queue);
  hg_list_init(&o->idle);
  hg_list_init(&o->ready_link);
  struct sockaddr_in *s4 = (struct sockaddr_in *)&o->literal_addr;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&o->literal_addr;
  if (uv_ip4_addr(host, u->port, s4) == 0)
    o->literal = 1;
  else if (uv_ip6_addr(host, u->port, s6) == 0)
    o->literal = 1;
  if (o->https && (o->session = hg_tls_session_new()) == NULL) {
    free(o);
    return NULL;
  }
  size_t j = h & (c->nbuckets - 1);
  o->hnext = c->buckets[j];
  c->buckets[j] = o;
  c->norigins++;
  return o;
}

void hg_client__origins_free(hg_client_t *c) {
  for (size_t i = 0; i < c->nbuckets; i++) {
    origin_t *o = c->buckets[i], *next;
    for (; o; o = next) {
      next = o->hnext;
      hg_tls_session_free(o->session);
      free(o);
    }
  }
  free(c->buckets);
  c->buckets = NULL;
  c->nbuckets = c->norigins = 0;
}

/* ---- connections ---- */

/* A closed connection holds no reference on the client: from here on its
 * handle callbacks touch only the connection itself. */
static void conn_maybe_free(conn_t *conn) {
  if (conn->state != C_CLOSING || conn->tcp_open || conn->timer_open || conn->gai_pending) return;
  free(conn);
}

static void tcp_close_cb(uv_handle_t *h) {
  conn_t *conn = h->data;
  conn->tcp_open = 0;
  conn_maybe_free(conn);
}

static void timer_close_cb(uv_handle_t *h) {
  conn_t *conn = h->data;
  conn->timer_open = 0;
  conn_maybe_free(conn);
}

/* The connection is set up, or gone before that (failed): no longer one
 * of its origin's openings. */
static void opened(conn_t *conn, int ok) {
  if (!conn->opening) return;
  conn->opening = 0;
  conn->o->opening--;
  conn->o->tls_failed = !ok;
}

void hg_client__conn_close(conn_t *conn) {
  hg_client_t *c = conn->c;
  if (conn->state == C_CLOSING) return;
  opened(conn, 0);
  if (conn->state == C_IDLE) {
    hg_list_del(&conn->link);
    conn->o->n_idle--;
    c->idle--;
  }
  if (conn->req) {
    conn->req->conn = NULL;
    conn->req = NULL;
  }
  if (conn->counted) {
    conn->counted = 0;
    c->in_flight--;
    conn->o->active--;
  }
  hg_list_del(&conn->all);
  conn->state = C_CLOSING;
  if (conn->gai_pending) uv_cancel((uv_req_t *)&conn->gai);
  if (conn->tcp_open && !uv_is_closing((uv_handle_t *)&conn->tcp))
    uv_close((uv_handle_t *)&conn->tcp, tcp_close_cb);
  if (conn->timer_open) uv_close((uv_handle_t *)&conn->timer, timer_close_cb);
  hg_tls_conn_free(conn->tls);
  conn->tls = NULL;
  conn_maybe_free(conn);
}

/* A request that found a reused keep-alive connection dead before any
 * response byte goes back to the head of its queue once, for a fresh
 * connection: the server most likely closed the idle connection as we were
 * sending. */
void hg_client__conn_fail(conn_t *conn, int err, int may_retry, const char *text) {
  hg_client_t *c = conn->c;
  origin_t *o = conn->o;
  req_t *r = conn->req;
  int retry = r && err == HG_EIO && conn->served > 0 && may_retry && !r->retried;
  hg_client__conn_close(conn);
  if (r && retry && !c->closing) {
    r->retried = 1;
    r->fresh = 1;
    r->state = R_QUEUED;
    hg_list_unshift(&o->queue, &r->link);
    c->queued++;
    c->requests_retried++;
    r = NULL;
  }
  hg_client__slot_freed(c, o);
  if (r) c->pool_cb(NULL, r, err, text);
}

/* The pool's own failures: a new connection, never a retry. */
static void pool_fail(conn_t *conn, int err, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  hg_client__conn_fail(conn, err, 0, text);
}

static void conn_timer_cb(uv_timer_t *t) {
  conn_t *conn = t->data;
  if (conn->state == C_IDLE)
    hg_client__conn_close(conn);
  else if (conn->state != C_CLOSING)
    pool_fail(conn, HG_ETIMEDOUT, "connect timeout");
}

/* ---- the exchange's side ---- */

void hg_client__conn_established(conn_t *conn) {
  uv_timer_stop(&conn->timer);
  conn->state = C_BUSY;
  int first = conn->opening && conn->o->https;
  opened(conn, 1);
  /* An HTTPS origin's first handshake ended: the requests that waited for
   * its session get connections now (see origin_t.opening). */
  if (first) hg_client__slot_freed(conn->c, conn->o);
}

/* An HTTPS origin with nothing to resume, whose first connection is on
 * its way: no second one starts until it is set up or fails. */
int hg_client__awaits_session(const origin_t *o) {
  return o->https && o->opening > 0 && !o->tls_failed && !hg_tls_session_valid(o->session);
}

void hg_client__conn_release(conn_t *conn, int keep) {
  hg_client_t *c = conn->c;
  origin_t *o = conn->o;
  req_t *r = conn->req;
  keep = keep && !c->closing && o->n_idle < c->o.max_idle_per_origin;
  conn->served++;
  if (keep) {
    conn->req = NULL;
    r->conn = NULL;
    conn->counted = 0;
    c->in_flight--;
    o->active--;
    conn->state = C_IDLE;
    hg_list_unshift(&o->idle, &conn->link);
    o->n_idle++;
    c->idle++;
  } else {
    hg_client__conn_close(conn);
  }
  hg_client__slot_freed(c, o);
  /* Its idle timeout starts only if no waiting request took it just now
   * (under load the usual case: two timer operations saved a request). */
  if (keep && conn->state == C_IDLE) uv_timer_start(&conn->timer, conn_timer_cb, c->o.idle_timeout_ms, 0);
  c->pool_cb(NULL, r, 0, NULL);
}

/* ---- scheduling ---- */

static void ready_add(hg_client_t *c, origin_t *o) {
  if (o->in_ready) return;
  o->in_ready = 1;
  hg_list_push(&c->ready, &o->ready_link);
}

static void conn_start(hg_client_t *c, origin_t *o, req_t *r);

static void assign(conn_t *conn, req_t *r) {
  hg_client_t *c = conn->c;
  hg_list_del(&r->link);
  c->queued--;
  r->state = R_ACTIVE;
  r->conn = conn;
  r->conn_reused = conn->served > 0;
  conn->req = r;
  conn->counted = 1;
  c->in_flight++;
  conn->o->active++;
}

void hg_client__pump(hg_client_t *c, origin_t *o, unsigned limit) {
  unsigned n = 0;
  c->api_depth++;
  while (!c->closing && !hg_list_empty(&o->queue) && n < limit) {
    if (c->in_flight >= c->o.max_in_flight) {
      ready_add(c, o);
      break;
    }
    req_t *r = HG_CONTAINER(o->queue.next, req_t, link);
    if (!r->fresh && !hg_list_empty(&o->idle)) {
      conn_t *conn = HG_CONTAINER(o->idle.next, conn_t, link);
      hg_list_del(&conn->link);
      o->n_idle--;
      c->idle--;
      uv_timer_stop(&conn->timer);
      conn->state = C_BUSY;
      assign(conn, r);
      c->pool_cb(conn, r, 0, NULL);
    } else if (o->active < c->o.max_per_origin && !hg_client__awaits_session(o)) {
      conn_start(c, o, r);
    } else {
      break;
    }
    n++;
  }
  if (n == limit && !hg_list_empty(&o->queue)) ready_add(c, o);
  c->api_depth--;
}

/* A global slot was freed: origins waiting for one take turns. */
static void pump_ready(hg_client_t *c) {
  while (!c->closing && c->in_flight < c->o.max_in_flight && !hg_list_empty(&c->ready)) {
    origin_t *o = HG_CONTAINER(c->ready.next, origin_t, ready_link);
    hg_list_del(&o->ready_link);
    o->in_ready = 0;
    hg_client__pump(c, o, 1);
  }
}

void hg_client__slot_freed(hg_client_t *c, origin_t *o) {
  if (c->api_depth > 0 || c->closing) return;
  c->api_depth++;
  pump_ready(c);
  hg_client__pump(c, o, UINT32_MAX);
  c->api_depth--;
}

void hg_client__pool_enqueue(hg_client_t *c, req_t *r) {
  r->state = R_QUEUED;
  hg_list_push(&r->o->queue, &r->link);
  c->queued++;
  hg_client__pump(c, r->o, UINT32_MAX);
}

void hg_client__pool_dequeue(req_t *r) {
  hg_list_del(&r->link);
  r->c->queued--;
}

/* ---- connecting ---- */

static void connect_next(conn_t *conn);

static void reconnect_close_cb(uv_handle_t *h) {
  conn_t *conn = h->data;
  conn->tcp_open = 0;
  if (conn->state == C_CLOSING) {
    conn_maybe_free(conn);
    return;
  }
  connect_next(conn);
}

static void connect_cb(uv_connect_t *creq, int status) {
  conn_t *conn = creq->data;
  if (status == UV_ECANCELED || conn->state == C_CLOSING) return;
  if (status < 0) {
    /* Try the next checked address, on a new socket. */
    if (conn->addr_i + 1 < conn->naddrs) {
      conn->addr_i++;
      uv_close((uv_handle_t *)&conn->tcp, reconnect_close_cb);
      return;
    }
    pool_fail(conn, HG_EIO, "%s", uv_strerror(status));
    return;
  }
  conn->c->connections_opened++;
  conn->state = C_CONNECTED;
  conn->c->pool_cb(conn, conn->req, 0, NULL);
}

static void connect_next(conn_t *conn) {
  int rc = uv_tcp_init(conn->c->loop, &conn->tcp);
  if (rc < 0) {
    pool_fail(conn, HG_EIO, "socket: %s", uv_strerror(rc));
    return;
  }
  conn->tcp_open = 1;
  conn->tcp.data = conn;
  conn->state = C_CONNECTING;
  conn->creq.data = conn;
  uv_tcp_nodelay(&conn->tcp, 1);
  rc = uv_tcp_connect(&conn->creq, &conn->tcp,
                      (const struct sockaddr *)&conn->addrs[conn->addr_i], connect_cb);
  if (rc < 0) pool_fail(conn, HG_EIO, "connect: %s", uv_strerror(rc));
}

/* Every address is checked before the first connect: one refused address
 * refuses the name, so a DNS answer mixing public and internal addresses
 * cannot be used to reach the internal one. */
static void conn_resolved(conn_t *conn) {
  char reason[256];
  for (unsigned i = 0; i < conn->naddrs; i++) {
    if (hg_ssrf_check(conn->c->o.ssrf, (const struct sockaddr *)&conn->addrs[i], reason,
                      sizeof(reason)) != 0) {
      pool_fail(conn, HG_EFORBIDDEN, "%s", reason);
      return;
    }
  }
  conn->addr_i = 0;
  connect_next(conn);
}

static void gai_cb(uv_getaddrinfo_t *g, int status, struct addrinfo *res) {
  conn_t *conn = g->data;
  conn->gai_pending = 0;
  if (conn->state == C_CLOSING) {
    uv_freeaddrinfo(res);
    conn_maybe_free(conn);
    return;
  }
  if (status < 0) {
    pool_fail(conn, HG_EIO, "dns: %s: %s", conn->o->host, uv_strerror(status));
    return;
  }
  conn->naddrs = 0;
  for (struct addrinfo *ai = res; ai && conn->naddrs < HG_CLIENT_MAX_ADDRS; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    memcpy(&conn->addrs[conn->naddrs++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  if (conn->naddrs == 0) {
    pool_fail(conn, HG_EIO, "dns: %s: no address", conn->o->host);
    return;
  }
  conn_resolved(conn);
}

static void conn_start(hg_client_t *c, origin_t *o, req_t *r) {
  conn_t *conn = calloc(1, sizeof(*conn));
  if (conn == NULL) {
    hg_list_del(&r->link);
    c->queued--;
    c->pool_cb(NULL, r, HG_ENOMEM, "out of memory");
    return;
  }
  conn->c = c;
  conn->o = o;
  hg_list_init(&conn->link);
  hg_list_push(&c->conns, &conn->all);
  uv_timer_init(c->loop, &conn->timer);
  conn->timer.data = conn;
  conn->timer_open = 1;
  conn->state = C_RESOLVING;
  conn->opening = 1;
  o->opening++;
  assign(conn, r);
  uv_timer_start(&conn->timer, conn_timer_cb, c->o.connect_timeout_ms, 0);
  if (o->literal) {
    conn->addrs[0] = o->literal_addr;
    conn->naddrs = 1;
    conn_resolved(conn);
    return;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  conn->gai.data = conn;
  int rc = uv_getaddrinfo(c->loop, &conn->gai, gai_cb, o->host, o->port, &hints);
  if (rc < 0) {
    pool_fail(conn, HG_EIO, "dns: %s: %s", o->host, uv_strerror(rc));
    return;
  }
  conn->gai_pending = 1;
}

/* ---- closing ---- */

void hg_client__pool_cancel(hg_client_t *c, hg_list_t *cancel) {
  for (size_t i = 0; i < c->nbuckets; i++) {
    for (origin_t *o = c->buckets[i]; o; o = o->hnext) {
      while (!hg_list_empty(&o->queue)) {
        req_t *r = HG_CONTAINER(o->queue.next, req_t, link);
        hg_list_del(&r->link);
        c->queued--;
        hg_list_push(cancel, &r->link);
      }
      if (o->in_ready) {
        hg_list_del(&o->ready_link);
        o->in_ready = 0;
      }
    }
  }
  while (!hg_list_empty(&c->conns)) {
    conn_t *conn = HG_CONTAINER(c->conns.next, conn_t, all);
    req_t *r = conn->req;
    hg_client__conn_close(conn);
    if (r) hg_list_push(cancel, &r->link);
  }
}
