/* Tests for http_client.c against small servers on the same loop (plain
 * HTTP) and `openssl s_server` (HTTPS), all on 127.0.0.1. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <mbedtls/aesni.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "base/common.h"
#include "hgtest.h"
#include "net/http_client.h"
#include "net/ssrf.h"

extern char **environ;

/* ---- a canned-response server ---- */

#define MAX_SCONNS 64

typedef struct srv srv_t;

typedef struct sconn {
  uv_tcp_t tcp;
  uv_timer_t delay;
  srv_t *s;
  char buf[16384];
  size_t len;
  int nreq;
  int open_handles;
  int closing;
} sconn_t;

struct srv {
  uv_tcp_t tcp;
  int port;
  int accepted, open, max_open;
  int drop_second;         /* close without answering a connection's second request */
  int drop_after_response; /* close right after answering */
  sconn_t *conns[MAX_SCONNS];
};

typedef struct swrite {
  uv_write_t req;
  sconn_t *sc;
  int close_after;
  char data[];
} swrite_t;

static void sconn_handle_close_cb(uv_handle_t *h) {
  sconn_t *sc = h->data;
  if (--sc->open_handles == 0) free(sc);
}

static void sconn_close(sconn_t *sc) {
  if (sc->closing) return;
  sc->closing = 1;
  sc->s->open--;
  for (int i = 0; i < MAX_SCONNS; i++)
    if (sc->s->conns[i] == sc) sc->s->conns[i] = NULL;
  uv_close((uv_handle_t *)&sc->tcp, sconn_handle_close_cb);
  uv_close((uv_handle_t *)&sc->delay, sconn_handle_close_cb);
}

static void swrite_cb(uv_write_t *w, int status) {
  swrite_t *sw = (swrite_t *)w;
  if (status == 0 && sw->close_after) sconn_close(sw->sc);
  free(sw);
}

static void sconn_send(sconn_t *sc, const char *data, size_t len, int close_after) {
  swrite_t *sw = malloc(sizeof(*sw) + len);
  sw->sc = sc;
  sw->close_after = close_after;
  memcpy(sw->data, data, len);
  uv_buf_t b = uv_buf_init(sw->data, (unsigned)len);
  if (uv_write(&sw->req, (uv_stream_t *)&sc->tcp, &b, 1, swrite_cb) != 0) free(sw);
}

static const char ok_response[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\nRetry-After: 7\r\n\r\nhello";

static void send_ok(sconn_t *sc) {
  sconn_send(sc, ok_response, strlen(ok_response), sc->s->drop_after_response);
}

static void delay_cb(uv_timer_t *t) { send_ok(t->data); }

static void serve(sconn_t *sc, const char *method, const char *path, const char *body,
                  size_t body_len) {
  srv_t *s = sc->s;
  char head[256];
  sc->nreq++;
  if (s->drop_second && sc->nreq >= 2) {
    sconn_close(sc);
  } else if (strcmp(path, "/ok") == 0) {
    send_ok(sc);
  } else if (strcmp(path, "/slow") == 0) {
    uv_timer_start(&sc->delay, delay_cb, 30, 0);
  } else if (strcmp(path, "/chunked") == 0) {
    const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    sconn_send(sc, r, strlen(r), 0);
  } else if (strcmp(path, "/close") == 0) {
    const char *r = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    sconn_send(sc, r, strlen(r), 1);
  } else if (strcmp(path, "/big") == 0) {
    size_t n = 70000;
    char *r = malloc(n + 100);
    int hl = sprintf(r, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    memset(r + hl, 'x', n);
    sconn_send(sc, r, (size_t)hl + n, 0);
    free(r);
  } else if (strcmp(path, "/bigchunked") == 0 || strcmp(path, "/mid") == 0) {
    /* Chunked past the body limit, or 40,000 bytes by Content-Length. */
    int chunked = path[1] == 'b';
    size_t n = chunked ? 70000 : 40000;
    char *r = malloc(n + 200);
    int hl = chunked ? sprintf(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n", n)
                     : sprintf(r, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    memset(r + hl, 'y', n);
    size_t tl = chunked ? (size_t)sprintf(r + hl + n, "\r\n0\r\n\r\n") : 0;
    sconn_send(sc, r, (size_t)hl + n + tl, 0);
    free(r);
  } else if (strcmp(path, "/manyheaders") == 0) {
    /* More headers than the client's inline array holds. */
    char r[1024];
    int l = sprintf(r, "HTTP/1.1 200 OK\r\n");
    for (int i = 1; i <= 20; i++) l += sprintf(r + l, "X-H%d: %d\r\n", i, i);
    l += sprintf(r + l, "X-Method: twenty-first\r\nContent-Length: 4\r\n\r\nmany");
    sconn_send(sc, r, (size_t)l, 0);
  } else if (strcmp(path, "/redirect") == 0) {
    const char *r = "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n";
    sconn_send(sc, r, strlen(r), 0);
  } else if (strcmp(path, "/reset") == 0) {
    sc->closing = 1;
    s->open--;
    for (int i = 0; i < MAX_SCONNS; i++)
      if (s->conns[i] == sc) s->conns[i] = NULL;
    uv_tcp_close_reset(&sc->tcp, sconn_handle_close_cb);
    uv_close((uv_handle_t *)&sc->delay, sconn_handle_close_cb);
  } else if (strcmp(path, "/echo") == 0) {
    char *r = malloc(body_len + 200);
    int hl = snprintf(head, sizeof(head), "HTTP/1.1 201 Created\r\nX-Method: %s\r\nContent-Length: %zu\r\n\r\n",
                      method, body_len);
    memcpy(r, head, (size_t)hl);
    memcpy(r + hl, body, body_len);
    sconn_send(sc, r, (size_t)hl + body_len, 0);
    free(r);
  }
  /* "/hang" and anything else: no answer. */
}

static void salloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  sconn_t *sc = h->data;
  (void)size;
  *buf = uv_buf_init(sc->buf + sc->len, (unsigned)(sizeof(sc->buf) - sc->len));
}

static void sread_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  sconn_t *sc = st->data;
  (void)buf;
  if (sc->closing) return;
  if (nread < 0) {
    sconn_close(sc);
    return;
  }
  sc->len += (size_t)nread;
  for (;;) {
    char *end = memmem(sc->buf, sc->len, "\r\n\r\n", 4);
    if (end == NULL) return;
    size_t hlen = (size_t)(end - sc->buf) + 4;
    size_t blen = 0;
    char *cl = memmem(sc->buf, hlen, "Content-Length: ", 16);
    if (cl) blen = (size_t)atol(cl + 16);
    if (sc->len < hlen + blen) return;
    char method[16] = "", path[128] = "";
    sscanf(sc->buf, "%15s %127s", method, path);
    char body[4096];
    size_t bl = blen < sizeof(body) ? blen : sizeof(body);
    memcpy(body, sc->buf + hlen, bl);
    memmove(sc->buf, sc->buf + hlen + blen, sc->len - hlen - blen);
    sc->len -= hlen + blen;
    serve(sc, method, path, body, bl);
    if (sc->closing) return;
  }
}

static void accept_cb(uv_stream_t *server, int status) {
  srv_t *s = server->data;
  if (status < 0) return;
  sconn_t *sc = calloc(1, sizeof(*sc));
  sc->s = s;
  uv_tcp_init(server->loop, &sc->tcp);
  uv_timer_init(server->loop, &sc->delay);
  sc->tcp.data = sc->delay.data = sc;
  sc->open_handles = 2;
  if (uv_accept(server, (uv_stream_t *)&sc->tcp) != 0) {
    sc->closing = 1;
    uv_close((uv_handle_t *)&sc->tcp, sconn_handle_close_cb);
    uv_close((uv_handle_t *)&sc->delay, sconn_handle_close_cb);
    return;
  }
  s->accepted++;
  s->open++;
  if (s->open > s->max_open) s->max_open = s->open;
  for (int i = 0; i < MAX_SCONNS; i++)
    if (s->conns[i] == NULL) {
      s->conns[i] = sc;
      break;
    }
  uv_read_start((uv_stream_t *)&sc->tcp, salloc_cb, sread_cb);
}

static void srv_start(uv_loop_t *loop, srv_t *s) {
  memset(s, 0, sizeof(*s));
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(loop, &s->tcp);
  s->tcp.data = s;
  uv_tcp_bind(&s->tcp, (const struct sockaddr *)&addr, 0);
  uv_listen((uv_stream_t *)&s->tcp, 128, accept_cb);
  struct sockaddr_in bound;
  int len = sizeof(bound);
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &len);
  s->port = ntohs(bound.sin_port);
}

static void srv_stop(srv_t *s) {
  for (int i = 0; i < MAX_SCONNS; i++)
    if (s->conns[i]) sconn_close(s->conns[i]);
  uv_close((uv_handle_t *)&s->tcp, NULL);
}

/* ---- client helpers ---- */

typedef struct result {
  int done;
  int status, error, truncated, reused, resumed;
  char text[256];
  char body[256]; /* the first bytes */
  size_t body_len;
  char retry_after[16], location[32], x_method[16];
  char cipher[64]; /* openssl s_server -www's page: the suite it names */
  size_t body_alloc; /* malloc_usable_size of the body's buffer (0: none) */
  int *counter; /* incremented when done, if set */
  int order;    /* *counter after this one's increment */
  uint64_t duration_ms;
} result_t;

static void on_response(const hg_client_response_t *res, void *ud) {
  result_t *r = ud;
  r->done++;
  r->status = res->status;
  r->error = res->error;
  r->truncated = res->body_truncated;
  r->reused = res->conn_reused;
  r->resumed = res->tls_resumed;
  snprintf(r->text, sizeof(r->text), "%s", res->error_text ? res->error_text : "");
  snprintf(r->body, sizeof(r->body), "%s", res->body);
  r->body_len = res->body_len;
  const char *ci = strstr(res->body, "Cipher is ");
  if (ci) snprintf(r->cipher, sizeof(r->cipher), "%.*s", (int)strcspn(ci + 10, "\r\n<"), ci + 10);
  r->body_alloc = res->body_len > 0 ? malloc_usable_size((void *)res->body) : 0;
  const char *v;
  if ((v = hg_client_response_header(res, "retry-after"))) snprintf(r->retry_after, 16, "%s", v);
  if ((v = hg_client_response_header(res, "Location"))) snprintf(r->location, 32, "%s", v);
  if ((v = hg_client_response_header(res, "X-Method"))) snprintf(r->x_method, 16, "%s", v);
  r->duration_ms = res->duration_ms;
  if (r->counter) r->order = ++*r->counter;
}

static hg_ssrf_policy_t *loopback_policy(void) {
  hg_ssrf_policy_t *p = NULL;
  const char *cidrs[] = {"127.0.0.0/8", "::1/128"};
  hg_ssrf_policy_parse(&p, cidrs, 2, NULL, 0);
  return p;
}

static hg_client_t *client_new(uv_loop_t *loop, const hg_ssrf_policy_t *ssrf, unsigned per_origin,
                               unsigned in_flight, const char *ca_file) {
  hg_client_opts_t o;
  hg_client_opts_default(&o);
  o.loop = loop;
  o.ssrf = ssrf;
  o.max_per_origin = per_origin;
  o.max_in_flight = in_flight;
  o.ca_file = ca_file;
  o.max_response_body = ca_file ? 1 << 20 : 65536;
  hg_client_t *c = NULL;
  char err[256];
  int rc = hg_client_new(&c, &o, err, sizeof(err));
  if (rc != 0) fprintf(stderr, "hg_client_new: %s\n", err);
  return c;
}

static int get(hg_client_t *c, const char *url, uint64_t timeout_ms, result_t *r) {
  hg_client_request_t rq;
  memset(&rq, 0, sizeof(rq));
  rq.method = "GET";
  rq.url = url;
  rq.timeout_ms = timeout_ms;
  return hg_client_send(c, &rq, on_response, r, NULL, 0);
}

/* Runs the loop until *count reaches want, or 15 s pass. */
static void run_until(uv_loop_t *loop, int *count, int want) {
  uint64_t deadline = hg_now_ns() + 15000000000ull;
  while (*count < want && hg_now_ns() < deadline) uv_run(loop, UV_RUN_ONCE);
  CHECK(*count >= want);
}

static void finish(uv_loop_t *loop, hg_client_t *c) {
  hg_client_close(c);
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(loop), 0);
}

static void url(char *buf, const srv_t *s, const char *path) {
  sprintf(buf, "http://127.0.0.1:%d%s", s->port, path);
}

/* ---- tests ---- */

static void bodies(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 4, 64, NULL);
  int n = 0;
  result_t r[8];
  memset(r, 0, sizeof(r));
  const char *paths[] = {"/ok", "/chunked", "/close", "/big", "/redirect"};
  char u[128];
  /* r[5]: the POST below; r[6]: requests refused at once; r[7]: more
   * headers than the client's inline array holds. */
  r[7].counter = &n;
  url(u, &s, "/manyheaders");
  CHECK_EQ_INT(get(c, u, 0, &r[7]), 0);
  for (int i = 0; i < 5; i++) {
    r[i].counter = &n;
    url(u, &s, paths[i]);
    CHECK_EQ_INT(get(c, u, 0, &r[i]), 0);
  }
  hg_client_header_t hdr[] = {{"X-Custom", "1"}, {"Content-Length", "999"}};
  hg_client_request_t post = {.url = u, .headers = hdr, .n_headers = 2, .body = "{\"a\":1}", .body_len = 7};
  url(u, &s, "/echo");
  r[5].counter = &n;
  CHECK_EQ_INT(hg_client_send(c, &post, on_response, &r[5], NULL, 0), 0);
  CHECK_EQ_INT(n, 0); /* never inside the call */
  run_until(&loop, &n, 7);

  CHECK_EQ_INT(r[0].status, 200);
  CHECK_EQ_STR(r[0].body, "hello");
  CHECK_EQ_STR(r[0].retry_after, "7");
  CHECK_EQ_STR(r[0].text, "");
  CHECK_EQ_INT(r[1].status, 200);
  CHECK_EQ_STR(r[1].body, "hello world");
  CHECK_EQ_INT(r[2].status, 200);
  CHECK_EQ_STR(r[2].body, "until the end");
  CHECK_EQ_INT(r[3].status, 200);
  CHECK_EQ_INT(r[3].truncated, 1);
  CHECK_EQ_INT(r[3].body_len, 65536);
  CHECK_EQ_INT(r[4].status, 302);
  CHECK_EQ_INT(r[4].error, 0);
  CHECK_EQ_STR(r[4].location, "/ok");
  CHECK_EQ_STR(r[4].text, "redirect not followed");
  CHECK_EQ_INT(r[5].status, 201);
  CHECK_EQ_STR(r[5].x_method, "POST");
  CHECK_EQ_STR(r[5].body, "{\"a\":1}");
  CHECK_EQ_INT(r[7].status, 200);
  CHECK_EQ_STR(r[7].x_method, "twenty-first");
  CHECK_EQ_STR(r[7].body, "many");

  /* Rejected synchronously: no callback, ever. */
  char err[128];
  hg_client_request_t bad = {.url = "http://user:pw@127.0.0.1/"};
  CHECK_EQ_INT(hg_client_send(c, &bad, on_response, &r[6], err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_STR(err, "url: user-info is not allowed");
  bad.url = "ftp://127.0.0.1/";
  CHECK_EQ_INT(hg_client_send(c, &bad, on_response, &r[6], err, sizeof(err)), HG_EINVAL);
  bad.url = u;
  hg_client_header_t inj[] = {{"X-A", "b\r\nX-Evil: 1"}};
  bad.headers = inj;
  bad.n_headers = 1;
  CHECK_EQ_INT(hg_client_send(c, &bad, on_response, &r[6], err, sizeof(err)), HG_EINVAL);
  srv_stop(&s);
  finish(&loop, c);
  CHECK_EQ_INT(r[6].done, 0);
  hg_ssrf_policy_free(p);
}

/* A response body takes what it holds (Content-Length) or at most
 * max_response_body + 1 bytes, never the next power of two past them: the
 * limit bounds each delivery's memory. */
static void body_memory(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 4, 64, NULL); /* max_response_body 65536 */
  int n = 0;
  result_t r[3];
  memset(r, 0, sizeof(r));
  const char *paths[] = {"/big", "/bigchunked", "/mid"};
  char u[128];
  for (int i = 0; i < 3; i++) {
    r[i].counter = &n;
    url(u, &s, paths[i]);
    CHECK_EQ_INT(get(c, u, 0, &r[i]), 0);
  }
  run_until(&loop, &n, 3);
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_INT(r[i].truncated, 1);
    CHECK_EQ_INT(r[i].body_len, 65536);
    CHECK(r[i].body_alloc >= 65537 && r[i].body_alloc < 65537 + 64);
  }
  CHECK_EQ_INT(r[2].truncated, 0);
  CHECK_EQ_INT(r[2].body_len, 40000);
  CHECK(r[2].body_alloc >= 40001 && r[2].body_alloc < 40001 + 64);
  srv_stop(&s);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
}

static void url_parse(void) {
  hg_client_url_t u;
  CHECK_EQ_INT(hg_client_url_parse("https://Example.com:8443/a/b?x=1#frag", &u, NULL, 0), 0);
  CHECK_EQ_INT(u.https, 1);
  CHECK_EQ_INT(u.port, 8443);
  CHECK_EQ_INT(u.host_len, 11);
  CHECK(strncmp(u.path, "/a/b?x=1", u.path_len) == 0 && u.path_len == 8);
  CHECK_EQ_INT(hg_client_url_parse("http://[::1]:81", &u, NULL, 0), 0);
  CHECK(u.host_len == 3 && strncmp(u.host, "::1", 3) == 0 && u.port == 81 && u.path_len == 1);
  CHECK_EQ_INT(hg_client_url_parse("http://h?q", &u, NULL, 0), 0);
  CHECK_EQ_INT(u.port, 80);
  CHECK(u.path_len == 2 && u.path[0] == '?');
  char err[128];
  CHECK_EQ_INT(hg_client_url_parse("http://a@b/", &u, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_INT(hg_client_url_parse("http://b:0/", &u, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_STR(err, "url: port must be 1..65535");
  CHECK_EQ_INT(hg_client_url_parse("http://b:70000/", &u, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_INT(hg_client_url_parse("http:///x", &u, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_INT(hg_client_url_parse("http://[::1/", &u, err, sizeof(err)), HG_EINVAL);
  CHECK_EQ_INT(hg_client_url_parse("http://a b/", &u, err, sizeof(err)), HG_EINVAL);
}

/* Each request is sent from the previous one's callback. */
typedef struct chain {
  hg_client_t *c;
  char url[128];
  int left, done, reused, errors;
} chain_t;

static void chain_cb(const hg_client_response_t *res, void *ud) {
  chain_t *ch = ud;
  ch->done++;
  if (res->status != 200) ch->errors++;
  if (res->conn_reused) ch->reused++;
  if (--ch->left > 0) {
    hg_client_request_t rq = {.method = "GET", .url = ch->url};
    if (hg_client_send(ch->c, &rq, chain_cb, ch, NULL, 0) != 0) ch->errors++;
  }
}

static void keepalive(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 4, 64, NULL);
  chain_t ch = {.c = c, .left = 10};
  url(ch.url, &s, "/ok");
  hg_client_request_t rq = {.method = "GET", .url = ch.url};
  CHECK_EQ_INT(hg_client_send(c, &rq, chain_cb, &ch, NULL, 0), 0);
  run_until(&loop, &ch.done, 10);
  CHECK_EQ_INT(ch.errors, 0);
  CHECK_EQ_INT(ch.reused, 9);
  CHECK_EQ_INT(s.accepted, 1);
  hg_client_stats_t st;
  hg_client_stats(c, &st);
  CHECK_EQ_INT(st.connections_opened, 1);
  CHECK_EQ_INT(st.idle, 1);
  srv_stop(&s);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
}

static void errors(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s, gone;
  srv_start(&loop, &s);
  srv_start(&loop, &gone);
  int gone_port = gone.port;
  srv_stop(&gone); /* a closed port */
  uv_run(&loop, UV_RUN_NOWAIT);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 4, 64, NULL);
  int n = 0;
  result_t r[4];
  memset(r, 0, sizeof(r));
  char u[128];
  for (int i = 0; i < 4; i++) r[i].counter = &n;
  sprintf(u, "http://127.0.0.1:%d/ok", gone_port);
  get(c, u, 0, &r[0]);
  url(u, &s, "/reset");
  get(c, u, 0, &r[1]);
  url(u, &s, "/hang");
  get(c, u, 300, &r[2]);
  get(c, "http://no-such-host.invalid/", 5000, &r[3]);
  run_until(&loop, &n, 4);
  CHECK_EQ_INT(r[0].status, 0);
  CHECK_EQ_INT(r[0].error, HG_EIO);
  CHECK_EQ_STR(r[0].text, "connection refused");
  CHECK_EQ_INT(r[1].error, HG_EIO);
  CHECK(strcmp(r[1].text, "connection reset by peer") == 0 ||
        strcmp(r[1].text, "connection closed before response") == 0);
  CHECK_EQ_INT(r[2].error, HG_ETIMEDOUT);
  CHECK_EQ_STR(r[2].text, "timeout (awaiting response)");
  CHECK_EQ_INT(r[3].error, HG_EIO);
  CHECK(strncmp(r[3].text, "dns: no-such-host.invalid: ", 27) == 0);
  srv_stop(&s);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
}

/* Requests with six different timeouts (more than the client keeps a lane
 * of its own for) to a server that never answers: each times out, none
 * before its deadline, in the order of their deadlines. */
static void deadlines(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 8, 64, NULL);
  const uint64_t timeouts[] = {500, 150, 400, 200, 300, 250};
  int n = 0;
  result_t r[6];
  memset(r, 0, sizeof(r));
  char u[128];
  url(u, &s, "/hang");
  for (int i = 0; i < 6; i++) {
    r[i].counter = &n;
    CHECK_EQ_INT(get(c, u, timeouts[i], &r[i]), 0);
  }
  run_until(&loop, &n, 6);
  for (int i = 0; i < 6; i++) {
    CHECK_EQ_INT(r[i].error, HG_ETIMEDOUT);
    CHECK(r[i].duration_ms >= timeouts[i]);
    int earlier = 0; /* requests with a shorter timeout */
    for (int j = 0; j < 6; j++) earlier += timeouts[j] < timeouts[i];
    CHECK_EQ_INT(r[i].order, earlier + 1);
  }
  srv_stop(&s);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
}

static void ssrf_refused(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_client_t *c = client_new(&loop, NULL, 4, 64, NULL); /* default policy */
  int n = 0;
  result_t r[3];
  memset(r, 0, sizeof(r));
  char u[128];
  for (int i = 0; i < 3; i++) r[i].counter = &n;
  url(u, &s, "/ok");
  get(c, u, 0, &r[0]);
  sprintf(u, "http://[::ffff:127.0.0.1]:%d/ok", s.port);
  get(c, u, 0, &r[1]);
  sprintf(u, "http://localhost:%d/ok", s.port);
  get(c, u, 0, &r[2]);
  CHECK_EQ_INT(n, 0);
  run_until(&loop, &n, 3);
  CHECK_EQ_INT(r[0].error, HG_EFORBIDDEN);
  CHECK_EQ_STR(r[0].text, "ssrf: 127.0.0.1 is a loopback address (not in allow-list)");
  CHECK_EQ_INT(r[1].error, HG_EFORBIDDEN);
  CHECK_EQ_STR(r[1].text, "ssrf: ::ffff:127.0.0.1 is a loopback address via IPv4-mapped "
                          "127.0.0.1 (not in allow-list)");
  CHECK_EQ_INT(r[2].error, HG_EFORBIDDEN);
  CHECK(strstr(r[2].text, "is a loopback address") != NULL);
  CHECK_EQ_INT(s.accepted, 0);
  srv_stop(&s);
  finish(&loop, c);
}

static void per_origin_cap(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 2, 64, NULL);
  int n = 0;
  result_t r[10];
  memset(r, 0, sizeof(r));
  char u[128];
  url(u, &s, "/slow");
  for (int i = 0; i < 10; i++) {
    r[i].counter = &n;
    get(c, u, 0, &r[i]);
  }
  hg_client_stats_t st;
  hg_client_stats(c, &st);
  CHECK_EQ_INT(st.in_flight, 2);
  CHECK_EQ_INT(st.queued, 8);
  run_until(&loop, &n, 10);
  int ok = 0;
  for (int i = 0; i < 10; i++) ok += r[i].status == 200;
  CHECK_EQ_INT(ok, 10);
  CHECK(s.max_open <= 2);
  CHECK_EQ_INT(s.accepted, 2);
  srv_stop(&s);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
}

static void slow_origin(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t slow, fast;
  srv_start(&loop, &slow);
  srv_start(&loop, &fast);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 2, 3, NULL);
  int nslow = 0, nfast = 0;
  result_t rs[4], rf[6];
  memset(rs, 0, sizeof(rs));
  memset(rf, 0, sizeof(rf));
  char u[128];
  url(u, &slow, "/hang");
  for (int i = 0; i < 4; i++) {
    rs[i].counter = &nslow;
    get(c, u, 10000, &rs[i]);
  }
  url(u, &fast, "/ok");
  for (int i = 0; i < 6; i++) {
    rf[i].counter = &nfast;
    get(c, u, 10000, &rf[i]);
  }
  run_until(&loop, &nfast, 6);
  int ok = 0;
  for (int i = 0; i < 6; i++) ok += rf[i].status == 200;
  CHECK_EQ_INT(ok, 6);
  CHECK_EQ_INT(nslow, 0);
  CHECK(slow.max_open <= 2);
  /* Closing cancels the hanging ones, inside the call. */
  hg_client_close(c);
  CHECK_EQ_INT(nslow, 4);
  CHECK_EQ_INT(rs[0].error, HG_ECLOSED);
  CHECK_EQ_STR(rs[3].text, "canceled: client closed");
  srv_stop(&slow);
  srv_stop(&fast);
  finish(&loop, c); /* a second close is a no-op */
  hg_ssrf_policy_free(p);
}

static void stale_keepalive(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  s.drop_second = 1;
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 4, 64, NULL);
  int n = 0;
  result_t r[2];
  memset(r, 0, sizeof(r));
  r[0].counter = r[1].counter = &n;
  char u[128];
  url(u, &s, "/ok");
  get(c, u, 0, &r[0]);
  run_until(&loop, &n, 1);
  /* The server drops the kept-alive connection on the next request without
   * answering: the client retries once on a fresh connection. */
  get(c, u, 0, &r[1]);
  run_until(&loop, &n, 2);
  CHECK_EQ_INT(r[0].status, 200);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK_EQ_INT(r[1].reused, 0);
  hg_client_stats_t st;
  hg_client_stats(c, &st);
  CHECK_EQ_INT(st.requests_retried, 1);
  CHECK_EQ_INT(s.accepted, 2);

  /* A server that closes after answering: the idle connection is noticed
   * (read EOF) and dropped from the pool. */
  s.drop_second = 0;
  s.drop_after_response = 1;
  get(c, u, 0, &r[0]);
  run_until(&loop, &n, 3);
  uint64_t deadline = hg_now_ns() + 5000000000ull;
  do {
    uv_run(&loop, UV_RUN_ONCE);
    hg_client_stats(c, &st);
  } while (st.idle > 0 && hg_now_ns() < deadline);
  CHECK_EQ_INT(st.idle, 0);
  get(c, u, 0, &r[1]);
  run_until(&loop, &n, 4);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK_EQ_INT(r[1].reused, 0);
  srv_stop(&s);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
}

static void idle_timeout(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_opts_t o;
  hg_client_opts_default(&o);
  o.loop = &loop;
  o.ssrf = p;
  o.idle_timeout_ms = 30;
  hg_client_t *c = NULL;
  CHECK_EQ_INT(hg_client_new(&c, &o, NULL, 0), 0);
  int n = 0;
  result_t r[2];
  memset(r, 0, sizeof(r));
  r[0].counter = r[1].counter = &n;
  char u[128];
  url(u, &s, "/ok");
  get(c, u, 0, &r[0]);
  run_until(&loop, &n, 1);
  hg_client_stats_t st;
  uint64_t deadline = hg_now_ns() + 5000000000ull;
  do {
    uv_run(&loop, UV_RUN_ONCE);
    hg_client_stats(c, &st);
  } while (st.idle > 0 && hg_now_ns() < deadline);
  CHECK_EQ_INT(st.idle, 0);
  get(c, u, 0, &r[1]);
  run_until(&loop, &n, 2);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK_EQ_INT(s.accepted, 2);
  srv_stop(&s);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
}

/* The callback of the first response closes the client: the others are
 * canceled inside that close, and nothing is touched afterwards. */
typedef struct closer {
  hg_client_t *c;
  int done, canceled;
} closer_t;

static void closer_cb(const hg_client_response_t *res, void *ud) {
  closer_t *cl = ud;
  cl->done++;
  if (res->error == HG_ECLOSED) cl->canceled++;
  hg_client_close(cl->c);
  hg_client_request_t rq = {.url = "http://127.0.0.1:1/"};
  CHECK_EQ_INT(hg_client_send(cl->c, &rq, closer_cb, cl, NULL, 0), HG_ECLOSED);
}

static void close_in_callback(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv_t s;
  srv_start(&loop, &s);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 1, 64, NULL);
  closer_t cl = {.c = c};
  char u[128];
  url(u, &s, "/ok");
  hg_client_request_t rq = {.method = "GET", .url = u};
  for (int i = 0; i < 5; i++) CHECK_EQ_INT(hg_client_send(c, &rq, closer_cb, &cl, NULL, 0), 0);
  run_until(&loop, &cl.done, 5);
  CHECK_EQ_INT(cl.canceled, 4);
  srv_stop(&s);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  hg_ssrf_policy_free(p);
}

/* Requests refused inside the send (the SSRF guard: their callbacks are
 * deferred to the client's tick), the first of which closes the client:
 * the others' callbacks run inside that close, none after it returns. */
typedef struct {
  hg_client_t *c;
  int done, closed, after_close;
} deferred_closer_t;

static void deferred_closer_cb(const hg_client_response_t *res, void *ud) {
  deferred_closer_t *cl = ud;
  CHECK_EQ_INT(res->error, HG_EFORBIDDEN);
  cl->done++;
  if (cl->closed) cl->after_close++;
  if (cl->done == 1) {
    hg_client_close(cl->c);
    cl->closed = 1;
  }
}

static void close_in_deferred(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_client_t *c = client_new(&loop, NULL, 4, 64, NULL); /* default policy: loopback refused */
  deferred_closer_t cl = {.c = c};
  hg_client_request_t rq = {.method = "GET", .url = "http://127.0.0.1:9/"};
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(hg_client_send(c, &rq, deferred_closer_cb, &cl, NULL, 0), 0);
  CHECK_EQ_INT(cl.done, 0); /* never inside the call */
  run_until(&loop, &cl.done, 4);
  CHECK_EQ_INT(cl.done, 4);
  CHECK_EQ_INT(cl.after_close, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* ---- HTTPS against openssl s_server ---- */

static int sh(const char *fmt, const char *dir) {
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), fmt, dir, dir, dir, dir, dir, dir, dir, dir);
  return system(cmd);
}

static void https(void) {
  char dir[] = "/tmp/hgtls.XXXXXX";
  if (mkdtemp(dir) == NULL) {
    CHECK(0);
    return;
  }
  const char *gen =
      "cd %s && openssl ecparam -name prime256v1 -genkey -noout -out ca.key && "
      "openssl req -x509 -new -key ca.key -subj /CN=hookgate-test-ca -days 2 -out ca.pem "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign && "
      "openssl ecparam -name prime256v1 -genkey -noout -out srv.key && "
      "openssl req -new -key srv.key -subj /CN=localhost -out srv.csr && "
      "printf 'subjectAltName=DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > ext.cnf && "
      "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile ext.cnf -out srv.pem 2>/dev/null";
  CHECK_EQ_INT(sh(gen, dir), 0);

  char cert[128], key[128], ca[128];
  snprintf(cert, sizeof(cert), "%s/srv.pem", dir);
  snprintf(key, sizeof(key), "%s/srv.key", dir);
  snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
  int out[2];
  CHECK_EQ_INT(pipe(out), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  char *argv[] = {"openssl", "s_server", "-accept", "0", "-www", "-cert", cert, "-key", key, NULL};
  pid_t pid;
  int rc = posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  CHECK_EQ_INT(rc, 0);
  /* It prints "ACCEPT [::]:<port>" once it listens. */
  FILE *f = fdopen(out[0], "r");
  char line[256];
  int port = 0;
  while (rc == 0 && fgets(line, sizeof(line), f)) {
    char *colon = strrchr(line, ':');
    if (strncmp(line, "ACCEPT", 6) == 0 && colon) {
      port = atoi(colon + 1);
      break;
    }
  }
  CHECK(port > 0);

  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_ssrf_policy_t *p = loopback_policy();
  hg_client_t *c = client_new(&loop, p, 4, 64, ca);
  hg_client_t *sys = client_new(&loop, p, 4, 64, NULL);
  int n = 0;
  result_t r[4];
  memset(r, 0, sizeof(r));
  for (int i = 0; i < 4; i++) r[i].counter = &n;
  char u[128];
  sprintf(u, "https://localhost:%d/", port);
  get(c, u, 10000, &r[0]);
  run_until(&loop, &n, 1);
  /* s_server -www answers HTTP/1.0 and closes: the next request needs a new
   * connection, which resumes the cached session. */
  get(c, u, 10000, &r[1]);
  get(sys, u, 10000, &r[2]);
  sprintf(u, "https://127.0.0.1:%d/", port);
  get(c, u, 10000, &r[3]);
  run_until(&loop, &n, 4);

  CHECK_EQ_INT(r[0].status, 200);
  CHECK_EQ_STR(r[0].text, "");
  CHECK_EQ_INT(r[0].resumed, 0);
  CHECK(strstr(r[0].body, "<HTML>") != NULL || strstr(r[0].body, "<html>") != NULL);
  /* s_server's page names the suite, chosen from the client's order: an
   * AES-GCM one on a CPU with AES-NI (mbedTLS runs it on those
   * instructions), else ChaCha20-Poly1305, mbedTLS's own first choice. */
  int aesni = mbedtls_aesni_has_support(MBEDTLS_AESNI_AES) && mbedtls_aesni_has_support(MBEDTLS_AESNI_CLMUL);
  CHECK(strncmp(r[0].cipher, aesni ? "ECDHE-ECDSA-AES" : "ECDHE-ECDSA-CHACHA20", aesni ? 15 : 20) == 0);
  fprintf(stderr, "  AES-NI: %s; cipher: %s\n", aesni ? "yes" : "no", r[0].cipher);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK_EQ_INT(r[1].resumed, 1);
  CHECK_EQ_INT(r[2].error, HG_EIO);
  CHECK(strncmp(r[2].text, "tls: certificate verify failed: ", 32) == 0);
  CHECK_EQ_INT(r[3].error, HG_EIO);
  CHECK(strncmp(r[3].text, "tls: certificate verify failed: ", 32) == 0);
  CHECK(strstr(r[3].text, "CN") != NULL);
  fprintf(stderr, "  system bundle: %s\n  wrong name: %s\n", r[2].text, r[3].text);

  /* A burst to an HTTPS origin with no session yet: its first connection
   * handshakes alone, and the others (s_server closes each after one
   * answer, so every request needs one) resume that session instead of
   * each paying a full handshake. */
  hg_client_t *fresh = client_new(&loop, p, 4, 64, ca);
  result_t b[6];
  memset(b, 0, sizeof(b));
  n = 0;
  for (int i = 0; i < 6; i++) b[i].counter = &n;
  sprintf(u, "https://localhost:%d/", port);
  for (int i = 0; i < 6; i++) get(fresh, u, 10000, &b[i]);
  run_until(&loop, &n, 6);
  int full = 0;
  for (int i = 0; i < 6; i++) {
    CHECK_EQ_INT(b[i].status, 200);
    full += !b[i].resumed;
  }
  CHECK_EQ_INT(full, 1);
  CHECK_EQ_INT(b[0].resumed, 0);
  /* A burst whose first handshake fails: every request still gets its own
   * attempt and the reason, the ones after the failure side by side. */
  hg_client_t *untrusting = client_new(&loop, p, 4, 64, NULL);
  memset(b, 0, sizeof(b));
  n = 0;
  for (int i = 0; i < 6; i++) b[i].counter = &n;
  for (int i = 0; i < 6; i++) get(untrusting, u, 10000, &b[i]);
  run_until(&loop, &n, 6);
  for (int i = 0; i < 6; i++) {
    CHECK_EQ_INT(b[i].error, HG_EIO);
    CHECK(strncmp(b[i].text, "tls: certificate verify failed: ", 32) == 0);
  }
  hg_client_close(fresh);
  hg_client_close(untrusting);

  /* A CA file that does not exist fails at creation. */
  hg_client_opts_t o;
  hg_client_opts_default(&o);
  o.loop = &loop;
  o.ca_file = "/nonexistent/ca.pem";
  hg_client_t *bad = NULL;
  char err[256];
  CHECK_EQ_INT(hg_client_new(&bad, &o, err, sizeof(err)), HG_ECONFIG);
  CHECK(strncmp(err, "tls: cannot load CA file /nonexistent/ca.pem", 44) == 0);
  fprintf(stderr, "  bad ca_file: %s\n", err);

  hg_client_close(sys);
  finish(&loop, c);
  hg_ssrf_policy_free(p);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  fclose(f);
  sh("rm -rf %s", dir);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  RUN(url_parse);
  RUN(bodies);
  RUN(body_memory);
  RUN(keepalive);
  RUN(errors);
  RUN(deadlines);
  RUN(ssrf_refused);
  RUN(per_origin_cap);
  RUN(slow_origin);
  RUN(stale_keepalive);
  RUN(idle_timeout);
  RUN(close_in_callback);
  RUN(close_in_deferred);
  RUN(https);
  return HGT_DONE();
}
