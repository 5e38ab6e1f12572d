/* http_client.c: keep-alive HTTP/1.1 client on libuv, llhttp and mbedTLS:
 * its API. URLs, the client's lifetime, requests from hg_client_send() to
 * their callback, close and stats. The pool of origins and connections is
 * http_client_pool.c; the HTTP/1 exchange on a connection is
 * http_client_h1.c; http_client_internal.h says what they share.
 *
 * The top of the three: it calls the pool and the exchange, neither calls
 * it. The pool reaches it only through pool_cb (the seam), which starts the
 * exchange on a connection handed over, or ends a request the pool hands
 * back. Runs on the client's loop thread. */
#include "net/http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/common.h"
#include "net/http_client_internal.h"

/* ---- URL ---- */

static int url_err(char *err, size_t errlen, const char *msg) {
  if (err) snprintf(err, errlen, "url: %s", msg);
  return HG_EINVAL;
}

int hg_client_url_parse(const char *url, hg_client_url_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  if (url == NULL) return url_err(err, errlen, "missing");
  size_t len = strlen(url);
  if (len > 8192) return url_err(err, errlen, "longer than 8192 bytes");
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
      return url_err(err, errlen, "spaces and control characters are not allowed");
  const char *p;
  if (strncasecmp(url, "http://", 7) == 0) {
    p = url + 7;
  } else if (strncasecmp(url, "https://", 8) == 0) {
    p = url + 8;
    out->https = 1;
  } else {
    return url_err(err, errlen, "scheme must be http or https");
  }
  size_t alen = strcspn(p, "/?#");
  const char *aend = p + alen;
  if (memchr(p, '@', alen)) return url_err(err, errlen, "user-info is not allowed");
  const char *port = NULL;
  if (*p == '[') {
    const char *rb = memchr(p, ']', alen);
    if (rb == NULL) return url_err(err, errlen, "unterminated IPv6 address");
    char v6[64];
    size_t hl = (size_t)(rb - p - 1);
    if (hl == 0 || hl >= sizeof(v6)) return url_err(err, errlen, "bad IPv6 address");
    memcpy(v6, p + 1, hl);
    v6[hl] = '\0';
    struct in6_addr a6;
    if (uv_inet_pton(AF_INET6, v6, &a6) != 0) return url_err(err, errlen, "bad IPv6 address");
    out->host = p + 1;
    out->host_len = hl;
    if (rb + 1 < aend) {
      if (rb[1] != ':') return url_err(err, errlen, "junk after IPv6 address");
      port = rb + 2;
    }
  } else {
    const char *colon = memchr(p, ':', alen);
    out->host = p;
    out->host_len = colon ? (size_t)(colon - p) : alen;
    if (colon) port = colon + 1;
    if (out->host_len == 0) return url_err(err, errlen, "missing host");
    if (out->host_len > 253) return url_err(err, errlen, "host longer than 253 bytes");
    for (size_t i = 0; i < out->host_len; i++) {
      char ch = p[i];
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_'))
        return url_err(err, errlen, "bad character in host");
    }
  }
  out->port = out->https ? 443 : 80;
  if (port) {
    size_t pl = (size_t)(aend - port);
    unsigned v = 0;
    if (pl == 0 || pl > 5) return url_err(err, errlen, "port must be 1..65535");
    for (size_t i = 0; i < pl; i++) {
      if (port[i] < '0' || port[i] > '9') return url_err(err, errlen, "port must be 1..65535");
      v = v * 10 + (unsigned)(port[i] - '0');
    }
    if (v == 0 || v > 65535) return url_err(err, errlen, "port must be 1..65535");
    out->port = (uint16_t)v;
  }
  out->path = aend;
  out->path_len = strcspn(aend, "#");
  if (out->path_len == 0) {
    out->path = "/";
    out->path_len = 1;
  }
  return 0;
}

/* ---- client lifetime ---- */

void hg_client_opts_default(hg_client_opts_t *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->connect_timeout_ms = 5000;
  opts->total_timeout_ms = 15000;
  opts->max_response_body = 65536;
  opts->max_in_flight = 1024;
  opts->max_per_origin = HG_CLIENT_MAX_PER_ORIGIN;
  opts->max_idle_per_origin = HG_CLIENT_MAX_IDLE_PER_ORIGIN;
  opts->idle_timeout_ms = 30000;
}

static void pool_cb(conn_t *conn, req_t *r, int err, const char *text);

static void client_free(hg_client_t *c) {
  hg_client__origins_free(c);
  hg_tls_client_free(c->tls);
  free(c->user_agent);
  free(c);
}

static void unref(hg_client_t *c) {
  if (--c->refs == 0) client_free(c);
}

int hg_client_new(hg_client_t **out, const hg_client_opts_t *opts, char *err, size_t errlen) {
  char tlserr[400];
  int rc = HG_ENOMEM;
  if (opts == NULL || opts->loop == NULL) {
    if (err) snprintf(err, errlen, "client: no loop");
    return HG_EINVAL;
  }
  hg_client_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return HG_ENOMEM;
  hg_client_opts_t d;
  hg_client_opts_default(&d);
  c->o = *opts;
  if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = d.connect_timeout_ms;
  if (!c->o.total_timeout_ms) c->o.total_timeout_ms = d.total_timeout_ms;
  if (!c->o.max_response_body) c->o.max_response_body = d.max_response_body;
  if (!c->o.max_in_flight) c->o.max_in_flight = d.max_in_flight;
  if (!c->o.max_per_origin) c->o.max_per_origin = d.max_per_origin;
  if (!c->o.max_idle_per_origin) c->o.max_idle_per_origin = c->o.max_per_origin;
  if (!c->o.idle_timeout_ms) c->o.idle_timeout_ms = d.idle_timeout_ms;
  c->o.ca_file = NULL; /* not kept: used only below */
  c->loop = opts->loop;
  c->refs = 1;
  hg_list_init(&c->ready);
  hg_list_init(&c->conns);
  hg_list_init(&c->deferred);
  hg_list_init(&c->due);
  for (unsigned i = 0; i < HG_CLIENT_LANES; i++) hg_list_init(&c->lanes[i].reqs);
  c->user_agent = strdup(opts->user_agent ? opts->user_agent : "hookgate/" HG_VERSION);
  if (c->user_agent == NULL) goto fail;
  if ((rc = hg_tls_client_new(&c->tls, opts->ca_file, tlserr, sizeof(tlserr))) != 0) {
    if (err) snprintf(err, errlen, "%s", rc == HG_ENOMEM ? "out of memory" : tlserr);
    goto fail;
  }
  c->o.user_agent = c->user_agent;
  c->pool_cb = pool_cb;
  /* Last: from here on the client is freed only through its tick's close. */
  uv_timer_init(c->loop, &c->tick);
  c->tick.data = c;
  c->refs++;
  *out = c;
  return 0;
fail:
  client_free(c);
  return rc;
}

/* ---- requests ---- */

static int is_tchar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Appends n bytes at w; returns the end. */
static char *put(char *w, const char *src, size_t n) {
  memcpy(w, src, n);
  return w + n;
}

static int is_token(const char *s) {
  if (s == NULL || *s == '\0') return 0;
  for (; *s; s++)
    if (!is_tchar(*s)) return 0;
  return 1;
}

static int skipped_header(const char *name) {
  /* Most headers start with another letter: skip the compares for them. */
  char c = (char)(name[0] | 0x20);
  if (c != 'h' && c != 'c' && c != 't') return 0;
  return strcasecmp(name, "host") == 0 || strcasecmp(name, "content-length") == 0 ||
         strcasecmp(name, "transfer-encoding") == 0 || strcasecmp(name, "connection") == 0;
}

static void tick_cb(uv_timer_t *t);

/* Sets the tick for at (hg_now_ns clock) unless it is set for earlier. */
static void tick_arm(hg_client_t *c, uint64_t at) {
  if (c->closing || (c->tick_at != 0 && c->tick_at <= at)) return;
  uint64_t now = hg_now_ns();
  c->tick_at = at > 0 ? at : 1;
  /* Rounded up: it never fires before the deadline it is set for. */
  uv_timer_start(&c->tick, tick_cb, at > now ? (at - now + 999999) / 1000000 : 0, 0);
}

/* Puts r, whose timeout is timeout_ns, in its lane: at the tail of the
 * lane of that timeout (the clock only goes forward), or in order in the
 * last lane once the keyed ones are taken. */
static void deadline_add(hg_client_t *c, req_t *r, uint64_t timeout_ns) {
  unsigned i = 0;
  while (i < c->n_lanes && c->lanes[i].timeout_ns != timeout_ns) i++;
  if (i == c->n_lanes && c->n_lanes < HG_CLIENT_LANES - 1) c->lanes[c->n_lanes++].timeout_ns = timeout_ns;
  if (i == c->n_lanes) i = HG_CLIENT_LANES - 1;
  hg_list_t *h = &c->lanes[i].reqs, *prev = h->prev;
  while (prev != h && HG_CONTAINER(prev, req_t, tlink)->deadline_ns > r->deadline_ns) prev = prev->prev;
  hg_list_insert(prev, &r->tlink);
  c->live++;
  tick_arm(c, r->deadline_ns);
}

/* The live request with the earliest deadline, or NULL. */
static req_t *earliest(hg_client_t *c) {
  req_t *best = NULL;
  for (unsigned i = 0; i < HG_CLIENT_LANES; i++) {
    if (hg_list_empty(&c->lanes[i].reqs)) continue;
    req_t *r = HG_CONTAINER(c->lanes[i].reqs.next, req_t, tlink);
    if (best == NULL || r->deadline_ns < best->deadline_ns) best = r;
  }
  return best;
}

int hg_client_send(hg_client_t *c, const hg_client_request_t *rq, hg_client_cb cb, void *ud,
                   char *err, size_t errlen) {
  hg_client_url_t u;
  int rc;
  if (c->closing) {
    if (err) snprintf(err, errlen, "client closed");
    return HG_ECLOSED;
  }
  if ((rc = hg_client_url_parse(rq->url, &u, err, errlen)) != 0) return rc;
  const char *method = rq->method ? rq->method : "POST";
  if (!is_token(method)) {
    if (err) snprintf(err, errlen, "method: not a valid token");
    return HG_EINVAL;
  }
  int has_ua = 0;
  size_t hdr_bytes = 0;
  for (size_t i = 0; i < rq->n_headers; i++) {
    const hg_client_header_t *h = &rq->headers[i];
    if (!is_token(h->name) || h->value == NULL || strpbrk(h->value, "\r\n") != NULL) {
      if (err)
        snprintf(err, errlen, "header %zu: bad name or value (CR and LF are not allowed)", i + 1);
      return HG_EINVAL;
    }
    if (skipped_header(h->name)) continue;
    if (strcasecmp(h->name, "user-agent") == 0) has_ua = 1;
    hdr_bytes += strlen(h->name) + strlen(h->value) + 4;
  }
  origin_t *o = hg_client__origin_get(c, &u);
  if (o == NULL) return HG_ENOMEM;

  /* Host: bracket IPv6, and name the port only when it is not the default. */
  int v6 = memchr(u.host, ':', u.host_len) != NULL;
  int default_port = u.port == (u.https ? 443 : 80);
  int slash = u.path[0] != '/';
  int has_body = rq->body_len > 0 || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0);
  size_t cap = strlen(method) + 1 + (size_t)slash + u.path_len + 11 + 6 + u.host_len + 2 + 8 +
               2 + hdr_bytes + (has_ua ? 0 : 14 + strlen(c->user_agent)) + 40 + 2 +
               rq->body_len + 1;
  /* The request's text follows it; only the struct needs zeroing. */
  req_t *r = malloc(sizeof(*r) + cap);
  if (r == NULL) return HG_ENOMEM;
  memset(r, 0, sizeof(*r));
  char *w = r->wbuf;
  /* Built by copies: this runs for every delivery. */
  w = put(w, method, strlen(method));
  *w++ = ' ';
  if (slash) *w++ = '/';
  w = put(w, u.path, u.path_len);
  w = put(w, " HTTP/1.1\r\nHost: ", 17);
  if (v6) *w++ = '[';
  w = put(w, u.host, u.host_len);
  if (v6) *w++ = ']';
  if (!default_port) {
    *w++ = ':';
    w += hg_fmt_u64(w, u.port);
  }
  w = put(w, "\r\n", 2);
  if (!has_ua) {
    w = put(w, "User-Agent: ", 12);
    w = put(w, c->user_agent, strlen(c->user_agent));
    w = put(w, "\r\n", 2);
  }
  for (size_t i = 0; i < rq->n_headers; i++) {
    if (skipped_header(rq->headers[i].name)) continue;
    w = put(w, rq->headers[i].name, strlen(rq->headers[i].name));
    w = put(w, ": ", 2);
    w = put(w, rq->headers[i].value, strlen(rq->headers[i].value));
    w = put(w, "\r\n", 2);
  }
  if (has_body) {
    w = put(w, "Content-Length: ", 16);
    w += hg_fmt_u64(w, rq->body_len);
    w = put(w, "\r\n", 2);
  }
  w = put(w, "\r\n", 2);
  if (rq->body_len) memcpy(w, rq->body, rq->body_len);
  w += rq->body_len;
  r->wlen = (size_t)(w - r->wbuf);

  r->c = c;
  r->o = o;
  r->cb = cb;
  r->ud = ud;
  r->start_ns = hg_now_ns();
  r->head_only = strcmp(method, "HEAD") == 0;
  uint64_t timeout_ns = (uint64_t)(rq->timeout_ms ? rq->timeout_ms : c->o.total_timeout_ms) * 1000000u;
  r->deadline_ns = r->start_ns + timeout_ns;
  c->refs++;
  deadline_add(c, r, timeout_ns);
  hg_client__pool_enqueue(c, r);
  return 0;
}

static void deliver(req_t *r) {
  hg_client_response_t res;
  /* The usual answer's few headers need no allocation. */
  hg_client_header_t few[16];
  hg_client_header_t *hdrs = NULL;
  hg_client_t *c = r->c;
  memset(&res, 0, sizeof(res));
  r->state = R_DONE;
  hg_list_del(&r->tlink);
  if (--c->live == 0 && !c->closing) {
    /* Nothing left to time or deliver: an idle client holds no loop open. */
    uv_timer_stop(&c->tick);
    c->tick_at = 0;
  }
  if (r->err == 0) {
    res.status = r->status;
    if (r->nhdr > 0 && (hdrs = r->nhdr <= HG_ARRAY_LEN(few) ? few : malloc(r->nhdr * sizeof(*hdrs))) != NULL) {
      const char *p = r->hdr.data;
      for (unsigned i = 0; i < r->nhdr; i++) {
        hdrs[i].name = p;
        p += strlen(p) + 1;
        hdrs[i].value = p;
        p += strlen(p) + 1;
      }
      res.headers = hdrs;
      res.n_headers = r->nhdr;
    }
    res.body = r->body.data ? r->body.data : "";
    res.body_len = r->body.len;
    res.body_truncated = r->truncated;
    if (r->status >= 300 && r->status < 400) res.error_text = "redirect not followed";
  } else {
    res.body = "";
    res.error = r->err;
    res.error_text = r->errtext;
  }
  res.duration_ms = (hg_now_ns() - r->start_ns) / 1000000u;
  res.conn_reused = r->conn_reused;
  res.tls_resumed = r->tls_resumed;
  if (r->body.data) r->body.data[r->body.len] = '\0';
  if (r->cb) r->cb(&res, r->ud);
  if (hdrs != few) free(hdrs);
  hg_buf_free(&r->hdr);
  hg_buf_free(&r->body);
  free(r);
  unref(c);
}

/* Ends a request that holds neither a connection nor a queue place: its
 * callback runs now, or from the client's tick when the pump or send is on
 * the stack. text is copied (used when err is not 0). */
static void req_finish(req_t *r, int err, const char *text) {
  hg_client_t *c = r->c;
  r->err = err;
  if (err) snprintf(r->errtext, sizeof(r->errtext), "%s", text);
  if (c->api_depth > 0) {
    r->state = R_DEFERRED;
    hg_list_push(&c->deferred, &r->link);
    tick_arm(c, hg_now_ns());
    return;
  }
  deliver(r);
}

/* The seam: the pool hands a connection over to r's exchange, or hands r
 * back for good (see http_client_internal.h). */
static void pool_cb(conn_t *conn, req_t *r, int err, const char *text) {
  if (conn != NULL)
    hg_client__h1_start(conn);
  else
    req_finish(r, err, text);
}

/* Delivers the requests on list l (linked by link), first to last, those
 * added meanwhile included: their outcome is decided already. */
static void deliver_list(hg_list_t *l) {
  while (!hg_list_empty(l)) {
    req_t *r = HG_CONTAINER(l->next, req_t, link);
    hg_list_del(&r->link);
    deliver(r);
  }
}

/* r's deadline passed: whatever it holds is given up. */
static void expire(req_t *r) {
  hg_client_t *c = r->c;
  const char *text = "timeout (queued: connection limit reached)";
  if (r->state == R_QUEUED) {
    if (hg_client__awaits_session(r->o)) text = "timeout (queued: waiting for the receiver's first TLS handshake)";
    hg_client__pool_dequeue(r);
  } else if (r->conn) {
    conn_t *conn = r->conn;
    if (conn->state == C_BUSY)
      text = conn->got_bytes ? "timeout (reading response)" : "timeout (awaiting response)";
    else
      text = "timeout (connecting)";
    origin_t *o = conn->o;
    hg_client__conn_close(conn);
    hg_client__slot_freed(c, o);
  }
  r->err = HG_ETIMEDOUT;
  snprintf(r->errtext, sizeof(r->errtext), "%s", text);
  deliver(r);
}

/* The tick: the deferred callbacks waiting when it fired first (their
 * outcome was decided before any deadline now due; one deferred by them
 * waits for the next tick), then every request whose deadline passed,
 * then set again for the earliest left. A callback may close the client:
 * the tick's handle keeps it allocated until its close callback, which
 * runs after this one returns, and the close delivers every request left,
 * those in c->due included, so no callback runs after it. */
static void tick_cb(uv_timer_t *t) {
  hg_client_t *c = t->data;
  c->tick_at = 0;
  while (!hg_list_empty(&c->deferred)) {
    hg_list_t *l = c->deferred.next;
    hg_list_del(l);
    hg_list_push(&c->due, l);
  }
  deliver_list(&c->due);
  uint64_t now = hg_now_ns();
  req_t *r;
  while (!c->closing && (r = earliest(c)) != NULL) {
    if (r->deadline_ns > now) {
      tick_arm(c, r->deadline_ns);
      break;
    }
    /* Deferred by an expiry above (its outcome is decided, its callback
     * waits): delivered, not expired. */
    if (r->state == R_DEFERRED) {
      hg_list_del(&r->link);
      deliver(r);
      continue;
    }
    expire(r);
  }
}

static void tick_close_cb(uv_handle_t *h) { unref(h->data); }

/* ---- close, stats ---- */

void hg_client_close(hg_client_t *c) {
  if (c == NULL || c->closing) return;
  c->closing = 1;
  hg_list_t cancel;
  hg_list_init(&cancel);
  hg_client__pool_cancel(c, &cancel);
  /* Failures already decided keep their own error: the ones a running
   * tick is delivering first, in their order. */
  deliver_list(&c->due);
  deliver_list(&c->deferred);
  while (!hg_list_empty(&cancel)) {
    req_t *r = HG_CONTAINER(cancel.next, req_t, link);
    hg_list_del(&r->link);
    r->err = HG_ECLOSED;
    snprintf(r->errtext, sizeof(r->errtext), "canceled: client closed");
    deliver(r);
  }
  uv_close((uv_handle_t *)&c->tick, tick_close_cb);
  unref(c);
}

void hg_client_stats(const hg_client_t *c, hg_client_stats_t *out) {
  out->connections_opened = c->connections_opened;
  out->requests_retried = c->requests_retried;
  out->tls_full = c->tls_full;
  out->tls_resumed = c->tls_resumed;
  out->in_flight = c->in_flight;
  out->queued = c->queued;
  out->idle = c->idle;
}

const char *hg_client_response_header(const hg_client_response_t *res, const char *name) {
  for (size_t i = 0; i < res->n_headers; i++)
    if (strcasecmp(res->headers[i].name, name) == 0) return res->headers[i].value;
  return NULL;
}
