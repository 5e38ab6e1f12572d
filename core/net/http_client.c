/* http_client.c: keep-alive HTTP/1.1 client on libuv, llhttp and mbedTLS.
 *
 * Objects:
 *   origin  scheme + host + port: a FIFO of waiting requests, a stack of idle
 *           connections, the cached TLS session. Lives as long as the client.
 *   conn    one TCP (maybe TLS) connection; serves one request at a time.
 *   req     one request: the serialized bytes, the total-timeout timer and
 *           the response being collected.
 *
 * A request holds a "slot" while a connection works for it (connecting or
 * busy); slots are capped globally and per origin. pump() hands waiting
 * requests to idle connections or new ones as slots allow.
 *
 * Reentrancy: user callbacks never run while pump() or hg_client_send() is
 * on the stack; a failure found there is delivered from the request's timer
 * on the next loop iteration. Everywhere else the callback is the last thing
 * a code path does. */
#include "net/http_client.h"

#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/common.h"
#include "base/list.h"
#include "net/tls_client.h"

#define MAX_ADDRS 8
#define MAX_RESPONSE_HEADER_BYTES 32768
#define READ_BUF_SIZE 65536
#define PLAIN_BUF_SIZE 16384

typedef struct origin {
  struct origin *hnext;
  hg_list_t ready_link; /* in client->ready while waiting for a global slot */
  int in_ready;
  hg_list_t queue;      /* waiting req_t */
  hg_list_t idle;       /* idle conn_t, most recently used first */
  unsigned active;   /* connections holding a slot */
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

typedef struct conn conn_t;

typedef struct req {
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

struct conn {
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
  struct sockaddr_storage addrs[MAX_ADDRS];
  unsigned naddrs, addr_i;
};

typedef struct write_req {
  uv_write_t req;
  char data[];
} write_req_t;

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
  unsigned refs;  /* 1 until closed, + live requests + live connections */
  int closing;
  int api_depth; /* > 0 while send or pump is on the stack */
  uint64_t connections_opened, requests_retried;
  char rbuf[READ_BUF_SIZE];
  char pbuf[PLAIN_BUF_SIZE];
};

static llhttp_settings_t parser_settings;

static void pump(hg_client_t *c, origin_t *o, unsigned limit);
static void conn_close(conn_t *conn);
static void conn_fail(conn_t *conn, int err, const char *fmt, ...);
static void req_finish(req_t *r, int err, const char *text);
static void init_settings(llhttp_settings_t *s);
static void slot_freed(hg_client_t *c, origin_t *o);

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

/* ---- origins ---- */

static uint64_t hash_key(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static origin_t *origin_get(hg_client_t *c, const hg_client_url_t *u) {
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

/* ---- client lifetime ---- */

void hg_client_opts_default(hg_client_opts_t *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->connect_timeout_ms = 5000;
  opts->total_timeout_ms = 15000;
  opts->max_response_body = 65536;
  opts->max_in_flight = 1024;
  opts->max_per_origin = 32;
  opts->max_idle_per_origin = 32;
  opts->idle_timeout_ms = 30000;
}

static void client_free(hg_client_t *c) {
  for (size_t i = 0; i < c->nbuckets; i++) {
    origin_t *o = c->buckets[i], *next;
    for (; o; o = next) {
      next = o->hnext;
      hg_tls_session_free(o->session);
      free(o);
    }
  }
  free(c->buckets);
  hg_tls_client_free(c->tls);
  free(c->user_agent);
  free(c);
}

static void client_unref(hg_client_t *c) {
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
  c->user_agent = strdup(opts->user_agent ? opts->user_agent : "hookgate/" HG_VERSION);
  if (c->user_agent == NULL) goto fail;
  if ((rc = hg_tls_client_new(&c->tls, opts->ca_file, tlserr, sizeof(tlserr))) != 0) {
    if (err) snprintf(err, errlen, "%s", rc == HG_ENOMEM ? "out of memory" : tlserr);
    goto fail;
  }
  c->o.user_agent = c->user_agent;
  /* Filled once with the same contents by whichever client comes first. */
  if (parser_settings.on_message_complete == NULL) init_settings(&parser_settings);
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

static void req_timer_cb(uv_timer_t *t);

static void req_close_cb(uv_handle_t *h) {
  req_t *r = h->data;
  hg_client_t *c = r->c;
  free(r);
  client_unref(c);
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
  origin_t *o = origin_get(c, &u);
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
  uv_timer_init(c->loop, &r->timer);
  r->timer.data = r;
  c->refs++;
  uv_timer_start(&r->timer, req_timer_cb, rq->timeout_ms ? rq->timeout_ms : c->o.total_timeout_ms,
                 0);
  r->state = R_QUEUED;
  hg_list_push(&o->queue, &r->link);
  c->queued++;
  pump(c, o, UINT32_MAX);
  return 0;
}

static void resp_reset(req_t *r) {
  r->status = 0;
  r->truncated = 0;
  hg_buf_reset(&r->hdr);
  r->nhdr = 0;
  hg_buf_reset(&r->body);
}

static void deliver(req_t *r) {
  hg_client_response_t res;
  hg_client_header_t *hdrs = NULL;
  memset(&res, 0, sizeof(res));
  r->state = R_DONE;
  uv_timer_stop(&r->timer);
  if (r->err == 0) {
    res.status = r->status;
    if (r->nhdr > 0 && (hdrs = malloc(r->nhdr * sizeof(*hdrs))) != NULL) {
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
  free(hdrs);
  hg_buf_free(&r->hdr);
  hg_buf_free(&r->body);
  uv_close((uv_handle_t *)&r->timer, req_close_cb);
}

/* Ends a request that holds neither a connection nor a queue place. */
static void req_finish(req_t *r, int err, const char *text) {
  hg_client_t *c = r->c;
  r->err = err;
  if (err) snprintf(r->errtext, sizeof(r->errtext), "%s", text);
  if (c->api_depth > 0) {
    r->state = R_DEFERRED;
    hg_list_push(&c->deferred, &r->link);
    uv_timer_start(&r->timer, req_timer_cb, 0, 0);
    return;
  }
  deliver(r);
}

static void req_timer_cb(uv_timer_t *t) {
  req_t *r = t->data;
  hg_client_t *c = r->c;
  if (r->state == R_DEFERRED) {
    hg_list_del(&r->link);
    deliver(r);
    return;
  }
  const char *text = "timeout (queued: connection limit reached)";
  if (r->state == R_QUEUED) {
    hg_list_del(&r->link);
    c->queued--;
  } else if (r->conn) {
    conn_t *conn = r->conn;
    if (conn->state == C_BUSY)
      text = conn->got_bytes ? "timeout (reading response)" : "timeout (awaiting response)";
    else
      text = "timeout (connecting)";
    origin_t *o = conn->o;
    conn_close(conn);
    slot_freed(c, o);
  }
  r->err = HG_ETIMEDOUT;
  snprintf(r->errtext, sizeof(r->errtext), "%s", text);
  deliver(r);
}

/* ---- scheduling ---- */

static void ready_add(hg_client_t *c, origin_t *o) {
  if (o->in_ready) return;
  o->in_ready = 1;
  hg_list_push(&c->ready, &o->ready_link);
}

static void conn_start(hg_client_t *c, origin_t *o, req_t *r);
static void conn_send_request(conn_t *conn);

static void assign(conn_t *conn, req_t *r) {
  hg_client_t *c = conn->c;
  hg_list_del(&r->link);
  c->queued--;
  r->state = R_ACTIVE;
  r->conn = conn;
  r->conn_reused = conn->served > 0;
  resp_reset(r);
  conn->req = r;
  conn->got_bytes = 0;
  conn->msg_done = 0;
  conn->counted = 1;
  c->in_flight++;
  conn->o->active++;
}

/* Dispatches up to limit waiting requests of o. */
static void pump(hg_client_t *c, origin_t *o, unsigned limit) {
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
      conn_send_request(conn);
    } else if (o->active < c->o.max_per_origin) {
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
    pump(c, o, 1);
  }
}

/* Called after a connection gave up its slot, outside pump. */
static void slot_freed(hg_client_t *c, origin_t *o) {
  if (c->api_depth > 0 || c->closing) return;
  c->api_depth++;
  pump_ready(c);
  pump(c, o, UINT32_MAX);
  c->api_depth--;
}

/* ---- connections ---- */

static void conn_maybe_free(conn_t *conn) {
  if (conn->state != C_CLOSING || conn->tcp_open || conn->timer_open || conn->gai_pending) return;
  hg_client_t *c = conn->c;
  free(conn);
  client_unref(c);
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

/* Detaches the request (if any) and gives back the slot; the connection
 * is never used again. Does not pump. */
static void conn_close(conn_t *conn) {
  hg_client_t *c = conn->c;
  if (conn->state == C_CLOSING) return;
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

/* Fails the connection and its request. A request that found a reused
 * keep-alive connection dead before any response byte goes back to the
 * head of its queue once, for a fresh connection: the server most likely
 * closed the idle connection as we were sending. */
static void conn_fail(conn_t *conn, int err, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  hg_client_t *c = conn->c;
  origin_t *o = conn->o;
  req_t *r = conn->req;
  int retry = r && err == HG_EIO && conn->served > 0 && !conn->got_bytes && !r->retried;
  conn_close(conn);
  if (r && retry && !c->closing) {
    r->retried = 1;
    r->fresh = 1;
    r->state = R_QUEUED;
    hg_list_unshift(&o->queue, &r->link);
    c->queued++;
    c->requests_retried++;
    r = NULL;
  }
  slot_freed(c, o);
  if (r) req_finish(r, err, text);
}

static void conn_timer_cb(uv_timer_t *t) {
  conn_t *conn = t->data;
  if (conn->state == C_IDLE)
    conn_close(conn);
  else if (conn->state != C_CLOSING)
    conn_fail(conn, HG_ETIMEDOUT, "connect timeout");
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  conn_t *conn = h->data;
  (void)size;
  /* One buffer serves every connection: read_cb consumes it entirely before
   * libuv asks for it again. */
  *buf = uv_buf_init(conn->c->rbuf, sizeof(conn->c->rbuf));
}

static void write_cb(uv_write_t *wr, int status) {
  conn_t *conn = wr->handle->data;
  free(HG_CONTAINER(wr, write_req_t, req));
  if (status < 0 && status != UV_ECANCELED && conn->state != C_CLOSING) {
    if (conn->req)
      conn_fail(conn, HG_EIO, "write: %s", uv_strerror(status));
    else
      conn_close(conn);
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
    conn_fail(conn, HG_EIO, "write: %s", uv_strerror(rc));
    return 1;
  }
  return 0;
}

static void conn_send_request(conn_t *conn) {
  req_t *r = conn->req;
  llhttp_init(&conn->parser, HTTP_RESPONSE, &parser_settings);
  conn->parser.data = conn;
  if (conn->tls) {
    char err[256];
    if (hg_tls_conn_write(conn->tls, r->wbuf, r->wlen, err, sizeof(err)) != 0) {
      conn_fail(conn, HG_EIO, "%s", err);
      return;
    }
    tls_flush(conn);
    return;
  }
  int rc = conn_write(conn, r->wbuf, r->wlen);
  if (rc < 0) conn_fail(conn, HG_EIO, "write: %s", uv_strerror(rc));
}

/* The connection is established (and TLS is up): send. */
static void conn_ready(conn_t *conn) {
  uv_timer_stop(&conn->timer);
  conn->state = C_BUSY;
  conn_send_request(conn);
}

/* The response is complete. The connection goes idle or closes, then the
 * callback runs. */
static void conn_complete(conn_t *conn, int must_close) {
  hg_client_t *c = conn->c;
  origin_t *o = conn->o;
  req_t *r = conn->req;
  int keep = !must_close && !conn->must_close && conn->keep_alive && !c->closing &&
             !(conn->tls && hg_tls_conn_has_input(conn->tls)) &&
             o->n_idle < c->o.max_idle_per_origin;
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
    uv_timer_start(&conn->timer, conn_timer_cb, c->o.idle_timeout_ms, 0);
  } else {
    conn_close(conn);
  }
  slot_freed(c, o);
  req_finish(r, 0, NULL);
}

/* The peer closed (or reset) the connection. */
static void conn_eof(conn_t *conn, ssize_t nread) {
  if (nread == UV_EOF && conn->got_bytes) {
    /* A close-delimited body ends here. */
    llhttp_finish(&conn->parser);
    if (conn->msg_done) {
      conn_complete(conn, 1);
      return;
    }
  }
  if (conn->state == C_HANDSHAKE)
    conn_fail(conn, HG_EIO, "tls: handshake failed: %s",
              nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
  else if (nread == UV_EOF)
    conn_fail(conn, HG_EIO, "%s",
              conn->got_bytes ? "connection closed mid-response" : "connection closed before response");
  else
    conn_fail(conn, HG_EIO, "%s", uv_strerror((int)nread));
}

/* Feeds response bytes. Returns nonzero when the request ended (the
 * connection is idle or closed and must not be touched). */
static int http_input(conn_t *conn, const char *data, size_t len) {
  req_t *r = conn->req;
  if (r == NULL) {
    conn_close(conn);
    return 1;
  }
  conn->got_bytes = 1;
  llhttp_errno_t e = llhttp_execute(&conn->parser, data, len);
  if (conn->msg_done) {
    int extra = e == HPE_PAUSED && llhttp_get_error_pos(&conn->parser) < data + len;
    if (e == HPE_PAUSED) llhttp_resume(&conn->parser);
    conn_complete(conn, extra || r->truncated);
    return 1;
  }
  if (e != HPE_OK) {
    conn_fail(conn, HG_EIO, "bad response: %s", llhttp_get_error_reason(&conn->parser));
    return 1;
  }
  return 0;
}

static void tls_input(conn_t *conn, const char *data, size_t len) {
  char err[256];
  hg_client_t *c = conn->c;
  if (hg_tls_conn_feed(conn->tls, data, len) != 0) {
    conn_fail(conn, HG_EIO, "out of memory");
    return;
  }
  if (conn->state == C_HANDSHAKE) {
    int rc = hg_tls_conn_handshake(conn->tls, err, sizeof(err));
    if (tls_flush(conn)) return;
    if (rc < 0) {
      conn_fail(conn, HG_EIO, "%s", err);
      return;
    }
    if (rc == 1) return;
    conn->req->tls_resumed = hg_tls_conn_resumed(conn->tls);
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
      conn_fail(conn, HG_EIO, "%s", err);
      return;
    }
    if (http_input(conn, c->pbuf, (size_t)n)) return;
  }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *conn = s->data;
  if (nread == 0 || conn->state == C_CLOSING) return;
  /* Bytes or EOF on an idle connection: the server closed it or broke the
   * protocol. Either way it cannot carry the next request. */
  if (conn->state == C_IDLE) {
    conn_close(conn);
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
  char err[256];
  if (status == UV_ECANCELED || conn->state == C_CLOSING) return;
  if (status < 0) {
    /* Try the next checked address, on a new socket. */
    if (conn->addr_i + 1 < conn->naddrs) {
      conn->addr_i++;
      uv_close((uv_handle_t *)&conn->tcp, reconnect_close_cb);
      return;
    }
    conn_fail(conn, HG_EIO, "%s", uv_strerror(status));
    return;
  }
  conn->c->connections_opened++;
  int rc = uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb);
  if (rc < 0) {
    conn_fail(conn, HG_EIO, "read: %s", uv_strerror(rc));
    return;
  }
  if (!conn->o->https) {
    conn_ready(conn);
    return;
  }
  rc = hg_tls_conn_new(&conn->tls, conn->c->tls, conn->o->host, conn->o->session);
  if (rc != 0) {
    conn_fail(conn, HG_EIO, "tls: cannot start: %s", hg_strerror(rc));
    return;
  }
  conn->state = C_HANDSHAKE;
  rc = hg_tls_conn_handshake(conn->tls, err, sizeof(err));
  if (tls_flush(conn)) return;
  if (rc < 0) conn_fail(conn, HG_EIO, "%s", err);
}

static void connect_next(conn_t *conn) {
  int rc = uv_tcp_init(conn->c->loop, &conn->tcp);
  if (rc < 0) {
    conn_fail(conn, HG_EIO, "socket: %s", uv_strerror(rc));
    return;
  }
  conn->tcp_open = 1;
  conn->tcp.data = conn;
  conn->state = C_CONNECTING;
  conn->creq.data = conn;
  uv_tcp_nodelay(&conn->tcp, 1);
  rc = uv_tcp_connect(&conn->creq, &conn->tcp,
                      (const struct sockaddr *)&conn->addrs[conn->addr_i], connect_cb);
  if (rc < 0) conn_fail(conn, HG_EIO, "connect: %s", uv_strerror(rc));
}

/* Every address is checked before the first connect: one refused address
 * refuses the name, so a DNS answer mixing public and internal addresses
 * cannot be used to reach the internal one. */
static void conn_resolved(conn_t *conn) {
  char reason[256];
  for (unsigned i = 0; i < conn->naddrs; i++) {
    if (hg_ssrf_check(conn->c->o.ssrf, (const struct sockaddr *)&conn->addrs[i], reason,
                      sizeof(reason)) != 0) {
      conn_fail(conn, HG_EFORBIDDEN, "%s", reason);
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
    conn_fail(conn, HG_EIO, "dns: %s: %s", conn->o->host, uv_strerror(status));
    return;
  }
  conn->naddrs = 0;
  for (struct addrinfo *ai = res; ai && conn->naddrs < MAX_ADDRS; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    memcpy(&conn->addrs[conn->naddrs++], ai->ai_addr, ai->ai_addrlen);
  }
  uv_freeaddrinfo(res);
  if (conn->naddrs == 0) {
    conn_fail(conn, HG_EIO, "dns: %s: no address", conn->o->host);
    return;
  }
  conn_resolved(conn);
}

static void conn_start(hg_client_t *c, origin_t *o, req_t *r) {
  conn_t *conn = calloc(1, sizeof(*conn));
  if (conn == NULL) {
    hg_list_del(&r->link);
    c->queued--;
    req_finish(r, HG_ENOMEM, "out of memory");
    return;
  }
  conn->c = c;
  conn->o = o;
  c->refs++;
  hg_list_init(&conn->link);
  hg_list_push(&c->conns, &conn->all);
  uv_timer_init(c->loop, &conn->timer);
  conn->timer.data = conn;
  conn->timer_open = 1;
  conn->state = C_RESOLVING;
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
    conn_fail(conn, HG_EIO, "dns: %s: %s", o->host, uv_strerror(rc));
    return;
  }
  conn->gai_pending = 1;
}

/* ---- llhttp callbacks ---- */

static int hbuf_append(req_t *r, const char *at, size_t len) {
  if (r->hdr.len + len + 1 > MAX_RESPONSE_HEADER_BYTES) return -1;
  return hg_buf_append(&r->hdr, at, len);
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
    /* Room for the whole body at once; on_body grows it if this failed. */
    if (want > 0) (void)hg_buf_reserve(&r->body, want);
  }
  return r->head_only ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  conn_t *conn = p->data;
  req_t *r = conn->req;
  size_t max = conn->c->o.max_response_body;
  size_t take = len;
  if (r->body.len + take > max) take = max - r->body.len;
  /* One byte more than the bytes: deliver() ends the body with a NUL. */
  if (hg_buf_reserve(&r->body, take + 1) != 0) {
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

static void init_settings(llhttp_settings_t *s) {
  llhttp_settings_init(s);
  s->on_header_field = on_header_data;
  s->on_header_value = on_header_data;
  s->on_header_field_complete = on_header_field_complete;
  s->on_header_value_complete = on_header_value_complete;
  s->on_headers_complete = on_headers_complete;
  s->on_body = on_body;
  s->on_message_complete = on_message_complete;
}

/* ---- close, stats ---- */

void hg_client_close(hg_client_t *c) {
  if (c == NULL || c->closing) return;
  c->closing = 1;
  hg_list_t cancel;
  hg_list_init(&cancel);
  for (size_t i = 0; i < c->nbuckets; i++) {
    for (origin_t *o = c->buckets[i]; o; o = o->hnext) {
      while (!hg_list_empty(&o->queue)) {
        req_t *r = HG_CONTAINER(o->queue.next, req_t, link);
        hg_list_del(&r->link);
        c->queued--;
        hg_list_push(&cancel, &r->link);
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
    conn_close(conn);
    if (r) hg_list_push(&cancel, &r->link);
  }
  /* Failures already decided keep their own error. */
  while (!hg_list_empty(&c->deferred)) {
    req_t *r = HG_CONTAINER(c->deferred.next, req_t, link);
    hg_list_del(&r->link);
    deliver(r);
  }
  while (!hg_list_empty(&cancel)) {
    req_t *r = HG_CONTAINER(cancel.next, req_t, link);
    hg_list_del(&r->link);
    r->err = HG_ECLOSED;
    snprintf(r->errtext, sizeof(r->errtext), "canceled: client closed");
    deliver(r);
  }
  client_unref(c);
}

void hg_client_stats(const hg_client_t *c, hg_client_stats_t *out) {
  out->connections_opened = c->connections_opened;
  out->requests_retried = c->requests_retried;
  out->in_flight = c->in_flight;
  out->queued = c->queued;
  out->idle = c->idle;
}

const char *hg_client_response_header(const hg_client_response_t *res, const char *name) {
  for (size_t i = 0; i < res->n_headers; i++)
    if (strcasecmp(res->headers[i].name, name) == 0) return res->headers[i].value;
  return NULL;
}
