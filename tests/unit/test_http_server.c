/* test_http_server.c: the HTTP server against real sockets.
 *
 * Each test runs a server on 127.0.0.1:0 in this thread's loop, and a
 * client thread with blocking sockets (receive timeout 3 s) that speaks raw
 * HTTP/1.1 to it. When the client is done it wakes the loop, which frees
 * the server; the loop must then run empty and close cleanly. */
#include "hgtest.h"

#include "base/common.h"
#include "net/http_server.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- the server side (loop thread) ---- */

typedef struct tctx tctx_t;
struct tctx {
  uv_loop_t loop;
  hg_http_server_t *srv;
  uv_async_t wake;
  pthread_t thread;
  void (*client)(tctx_t *t);
  int port;
  int family;
  int shutdown_on_slow; /* the /slow handler starts a graceful shutdown */
  int done_called;
  int handled;
  int conns_at_done;
  int held, max_held; /* /slow requests the handler holds */
};

struct slow {
  uv_timer_t timer;
  hg_http_req_t *req;
  tctx_t *t;
};

static void on_slow_closed(uv_handle_t *h) { free(h); }

static void on_slow(uv_timer_t *t) {
  struct slow *sl = (struct slow *)t;
  sl->t->held--;
  hg_http_respond(sl->req, 200, "text/plain", "slow", 4);
  uv_close((uv_handle_t *)t, on_slow_closed);
}

static void on_done(void *ud) {
  tctx_t *t = ud;
  t->done_called++;
  t->conns_at_done = (int)hg_http_server_connections(t->srv);
}

static void handler(hg_http_req_t *req, void *ud) {
  tctx_t *t = ud;
  t->handled++;
  if (strcmp(req->path, "/slow") == 0) {
    int ms = 50;
    if (strncmp(req->query, "ms=", 3) == 0) ms = atoi(req->query + 3);
    struct slow *sl = malloc(sizeof(*sl));
    sl->req = req;
    sl->t = t;
    if (++t->held > t->max_held) t->max_held = t->held;
    uv_timer_init(&t->loop, &sl->timer);
    uv_timer_start(&sl->timer, on_slow, (uint64_t)ms, 0);
    if (t->shutdown_on_slow) hg_http_server_shutdown(t->srv, on_done, t);
    return;
  }
  if (strcmp(req->path, "/echo") == 0) {
    char n[32];
    snprintf(n, sizeof(n), "%zu", req->body_len);
    hg_http_req_add_header(req, "X-Body-Len", n);
    hg_http_respond(req, 200, "application/octet-stream", req->body, req->body_len);
    return;
  }
  if (strcmp(req->path, "/hdr") == 0) {
    const char *v = hg_http_req_header(req, "x-TEST");
    hg_http_respond(req, 200, "text/plain", v ? v : "-", v ? strlen(v) : 1);
    return;
  }
  if (strcmp(req->path, "/json") == 0) {
    hg_http_respond_json(req, 201, json_pack("{s:i}", "n", 7));
    return;
  }
  if (strcmp(req->path, "/stats") == 0) {
    hg_http_server_stats_t st;
    hg_http_server_stats(t->srv, &st);
    char b[256];
    int n = snprintf(b, sizeof(b), "%zu %zu %zu %zu %zu %zu", st.connections, st.idle_connections,
                     st.idle_held_bytes, st.conn_bytes, st.pooled_requests, st.pooled_bytes);
    hg_http_respond(req, 200, "text/plain", b, (size_t)n);
    return;
  }
  if (strcmp(req->path, "/missing") == 0) {
    hg_http_respond_error(req, 404, "not_found", "no such thing", NULL);
    return;
  }
  hg_http_respond(req, 200, "text/plain", "ok", 2);
}

static void on_wake_closed(uv_handle_t *h) { (void)h; }

static void on_wake(uv_async_t *a) {
  tctx_t *t = a->data;
  hg_http_server_free(t->srv);
  t->srv = NULL;
  uv_close((uv_handle_t *)a, on_wake_closed);
}

static void *client_main(void *arg) {
  tctx_t *t = arg;
  t->client(t);
  uv_async_send(&t->wake);
  return NULL;
}

static int port_of(const char *addr) {
  const char *c = strrchr(addr, ':');
  return c ? atoi(c + 1) : 0;
}

/* Runs client in a thread against a fresh server listening on addr. */
static void run_full(const char *addr, const hg_http_limits_t *lim, const char *cert,
                     const char *key, int access_log, void (*client)(tctx_t *), tctx_t *t) {
  t->client = client;
  CHECK_EQ_INT(uv_loop_init(&t->loop), 0);
  hg_http_server_opts_t o;
  memset(&o, 0, sizeof(o));
  o.loop = &t->loop;
  if (lim) o.limits = *lim;
  else hg_http_limits_default(&o.limits);
  o.handler = handler;
  o.handler_ud = t;
  o.access_log = access_log;
  CHECK_EQ_INT(hg_http_server_new(&t->srv, &o), 0);
  char err[256] = "";
  int rc = hg_http_server_listen(t->srv, addr, cert, key, err, sizeof(err));
  CHECK_EQ_INT(rc, 0);
  if (rc != 0) fprintf(stderr, "listen: %s\n", err);
  const char *bound = hg_http_server_addr(t->srv, 0);
  t->port = bound ? port_of(bound) : 0;
  t->family = addr[0] == '[' ? AF_INET6 : AF_INET;
  uv_async_init(&t->loop, &t->wake, on_wake);
  t->wake.data = t;
  pthread_create(&t->thread, NULL, client_main, t);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  pthread_join(t->thread, NULL);
  CHECK_EQ_INT(uv_loop_close(&t->loop), 0);
}

static void run(const hg_http_limits_t *lim, void (*client)(tctx_t *), tctx_t *t) {
  run_full("127.0.0.1:0", lim, NULL, NULL, 0, client, t);
}

/* ---- the client side (client thread) ---- */

typedef struct {
  int fd;
  char *buf;
  size_t len, cap;
} cli_t;

typedef struct {
  int status;
  char head[8192];
  char *body;
  size_t body_len;
} resp_t;

static int cli_open(cli_t *c, tctx_t *t) {
  memset(c, 0, sizeof(*c));
  c->fd = socket(t->family, SOCK_STREAM, 0);
  struct timeval tv = {3, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int r;
  if (t->family == AF_INET6) {
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons((uint16_t)t->port);
    inet_pton(AF_INET6, "::1", &sa.sin6_addr);
    r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
  } else {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)t->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
  }
  return r;
}

static void cli_close(cli_t *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
}

static int cli_sendn(cli_t *c, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return -1;
    s += w;
    n -= (size_t)w;
  }
  return 0;
}

static int cli_send(cli_t *c, const char *s) { return cli_sendn(c, s, strlen(s)); }

/* Reads more bytes into c->buf. Returns bytes read, 0 on EOF, -1 on
 * timeout or error. */
static ssize_t cli_fill(cli_t *c) {
  if (c->cap - c->len < 65536) {
    c->cap = c->cap ? c->cap * 2 : 131072;
    c->buf = realloc(c->buf, c->cap);
  }
  ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
  if (n > 0) c->len += (size_t)n;
  return n;
}

static const char *resp_header(const resp_t *r, const char *name) {
  static __thread char val[512];
  size_t nl = strlen(name);
  for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      size_t l = e ? (size_t)(e - v) : strlen(v);
      if (l >= sizeof(val)) l = sizeof(val) - 1;
      memcpy(val, v, l);
      val[l] = '\0';
      return val;
    }
  }
  return NULL;
}

/* Reads one response. Returns 0, or -1 when the connection ended or timed
 * out first. */
static int cli_read(cli_t *c, resp_t *r, int is_head) {
  memset(r, 0, sizeof(*r));
  char *end;
  for (;;) {
    if (c->len > 0) {
      c->buf[c->len] = '\0';
      if ((end = strstr(c->buf, "\r\n\r\n")) != NULL) break;
    }
    if (cli_fill(c) <= 0) return -1;
  }
  size_t hl = (size_t)(end - c->buf) + 4;
  if (hl >= sizeof(r->head)) return -1;
  memcpy(r->head, c->buf, hl);
  r->head[hl] = '\0';
  r->status = atoi(r->head + 9);
  const char *cl = resp_header(r, "Content-Length");
  size_t blen = (cl && !is_head && r->status >= 200) ? (size_t)atol(cl) : 0;
  while (c->len < hl + blen)
    if (cli_fill(c) <= 0) return -1;
  r->body = malloc(blen + 1);
  memcpy(r->body, c->buf + hl, blen);
  r->body[blen] = '\0';
  r->body_len = blen;
  memmove(c->buf, c->buf + hl + blen, c->len - hl - blen);
  c->len -= hl + blen;
  return 0;
}

static void resp_free(resp_t *r) {
  free(r->body);
  r->body = NULL;
}

/* 1 when the server closed the connection with no more bytes, 0 when
 * bytes arrived, -1 on timeout. */
static int cli_eof(cli_t *c) {
  if (c->len > 0) return 0;
  ssize_t n = cli_fill(c);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) return 1;
  return n > 0 ? 0 : -1;
}

static int ms_since(uint64_t start_ns) { return (int)((hg_now_ns() - start_ns) / 1000000); }

/* ---- tests ---- */

static void c_keepalive(tctx_t *t) {
  cli_t c;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  char ids[3][64];
  for (int i = 0; i < 3; i++) {
    resp_t r;
    CHECK_EQ_INT(cli_send(&c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
    CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strncmp(r.head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK_EQ_STR(r.body, "ok");
    CHECK_EQ_STR(resp_header(&r, "Content-Length"), "2");
    CHECK_EQ_STR(resp_header(&r, "Content-Type"), "text/plain");
    CHECK(resp_header(&r, "Date") != NULL && strstr(resp_header(&r, "Date"), " GMT") != NULL);
    CHECK(resp_header(&r, "Connection") == NULL);
    const char *id = resp_header(&r, "X-Request-Id");
    CHECK(id != NULL && strncmp(id, "req_", 4) == 0 && strlen(id) == 20);
    snprintf(ids[i], sizeof(ids[i]), "%s", id ? id : "");
    resp_free(&r);
  }
  CHECK(strcmp(ids[0], ids[1]) != 0 && strcmp(ids[1], ids[2]) != 0);
  /* Header lookup is case-insensitive; JSON and error helpers. */
  resp_t r;
  cli_send(&c, "GET /hdr HTTP/1.1\r\nX-Test: hello there\r\n\r\nGET /json HTTP/1.1\r\n\r\n"
               "GET /missing HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "hello there");
  resp_free(&r);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 201);
  CHECK_EQ_STR(resp_header(&r, "Content-Type"), "application/json");
  CHECK_EQ_STR(r.body, "{\"n\":7}");
  resp_free(&r);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK(strncmp(r.head, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
  CHECK_EQ_STR(r.body, "{\"error\":{\"type\":\"not_found\",\"message\":\"no such thing\",\"details\":[]}}");
  resp_free(&r);
  cli_close(&c);
}

static void test_keepalive(void) {
  tctx_t t = {0};
  run(NULL, c_keepalive, &t);
  CHECK_EQ_INT(t.handled, 6);
}

static void c_pipelining(tctx_t *t) {
  cli_t c;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  /* The slow one is answered last but must come out first. */
  cli_send(&c, "GET /slow?ms=100 HTTP/1.1\r\n\r\n"
               "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
               "GET /x HTTP/1.1\r\n\r\n");
  resp_t r;
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "slow");
  resp_free(&r);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "abc");
  resp_free(&r);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "ok");
  resp_free(&r);
  /* Many more than the pending bound, behind a slow one: parsing pauses
   * and resumes, and every answer still comes in order. */
  char big[40 * 64];
  size_t n = 0;
  n += (size_t)sprintf(big + n, "GET /slow?ms=80 HTTP/1.1\r\n\r\n");
  for (int i = 1; i < 40; i++)
    n += (size_t)sprintf(big + n, "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\n%02d", i);
  cli_sendn(&c, big, n);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "slow");
  resp_free(&r);
  int in_order = 1;
  for (int i = 1; i < 40; i++) {
    char want[4];
    snprintf(want, sizeof(want), "%02d", i);
    if (cli_read(&c, &r, 0) != 0 || strcmp(r.body, want) != 0) in_order = 0;
    resp_free(&r);
  }
  CHECK(in_order);
  /* 40 slow ones at once: reading stops while more than 16 wait. */
  n = 0;
  for (int i = 0; i < 40; i++) n += (size_t)sprintf(big + n, "GET /slow?ms=20 HTTP/1.1\r\n\r\n");
  cli_sendn(&c, big, n);
  int all_slow = 1;
  for (int i = 0; i < 40; i++) {
    if (cli_read(&c, &r, 0) != 0 || strcmp(r.body, "slow") != 0) all_slow = 0;
    resp_free(&r);
  }
  CHECK(all_slow);
  cli_close(&c);
}

static void test_pipelining(void) {
  tctx_t t = {0};
  run(NULL, c_pipelining, &t);
  CHECK_EQ_INT(t.handled, 83);
  CHECK(t.max_held >= 16 && t.max_held <= 17);
}

/* The server's stats, asked on c: connections, idle ones, the bytes those
 * hold, a connection's struct size, pooled requests and their bytes. */
typedef struct {
  size_t conns, idle, held, conn_bytes, pooled, pooled_bytes;
} stats_t;

static int get_stats(cli_t *c, stats_t *st) {
  resp_t r;
  memset(st, 0, sizeof(*st));
  if (cli_send(c, "GET /stats HTTP/1.1\r\n\r\n") != 0 || cli_read(c, &r, 0) != 0) return -1;
  int n = sscanf(r.body, "%zu %zu %zu %zu %zu %zu", &st->conns, &st->idle, &st->held, &st->conn_bytes,
                 &st->pooled, &st->pooled_bytes);
  resp_free(&r);
  return n == 6 ? 0 : -1;
}

/* An idle keep-alive connection holds no request and no buffer: finished
 * requests go to the server's bounded pool, and input saved while parsing
 * was paused is freed once parsed. */
static void c_idle_memory(tctx_t *t) {
  cli_t a, b;
  resp_t r;
  stats_t st, st2;
  CHECK_EQ_INT(cli_open(&a, t), 0);
  CHECK_EQ_INT(cli_open(&b, t), 0);
  /* A small request and one with a body and a response of 3000 bytes. */
  CHECK_EQ_INT(cli_send(&a, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  CHECK_EQ_INT(cli_read(&a, &r, 0), 0);
  resp_free(&r);
  char big[4096];
  int n = snprintf(big, sizeof(big), "POST /echo HTTP/1.1\r\nContent-Length: 3000\r\n\r\n");
  memset(big + n, 'x', 3000);
  CHECK_EQ_INT(cli_sendn(&a, big, (size_t)n + 3000), 0);
  CHECK_EQ_INT(cli_read(&a, &r, 0), 0);
  CHECK_EQ_INT((int)r.body_len, 3000);
  resp_free(&r);
  /* a is idle now (its answers were read); b is busy with the question. */
  CHECK_EQ_INT(get_stats(&b, &st), 0);
  CHECK_EQ_INT((int)st.conns, 2);
  CHECK_EQ_INT((int)st.idle, 1);
  CHECK_EQ_INT((int)st.held, 0);
  CHECK(st.conn_bytes > 0 && st.conn_bytes < 1024);
  /* a's requests went back to the pool, from which b's question took one. */
  CHECK(st.pooled <= 1 && st.pooled_bytes <= 512 * 1024);
  /* Another request on a takes a pooled one and gives it back: the pool
   * does not grow with keep-alive requests. */
  CHECK_EQ_INT(cli_send(&a, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0);
  CHECK_EQ_INT(cli_read(&a, &r, 0), 0);
  resp_free(&r);
  CHECK_EQ_INT(get_stats(&b, &st2), 0);
  CHECK_EQ_INT((int)st2.idle, 1);
  CHECK_EQ_INT((int)st2.held, 0);
  CHECK_EQ_INT((int)st2.pooled, (int)st.pooled);
  /* More pipelined requests than the pending bound, behind a slow one:
   * parsing pauses with the rest saved, then resumes; once a has all its
   * answers, the saved input is gone too. */
  char burst[40 * 40];
  size_t len = (size_t)sprintf(burst, "GET /slow?ms=20 HTTP/1.1\r\n\r\n");
  for (int i = 1; i < 40; i++) len += (size_t)sprintf(burst + len, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_sendn(&a, burst, len), 0);
  int all = 1;
  for (int i = 0; i < 40; i++) {
    if (cli_read(&a, &r, 0) != 0) all = 0;
    resp_free(&r);
  }
  CHECK(all);
  CHECK_EQ_INT(get_stats(&b, &st), 0);
  CHECK_EQ_INT((int)st.idle, 1);
  CHECK_EQ_INT((int)st.held, 0);
  CHECK(st.pooled_bytes <= 512 * 1024);
  cli_close(&a);
  cli_close(&b);
}

static void test_idle_memory(void) {
  tctx_t t = {0};
  run(NULL, c_idle_memory, &t);
  CHECK(t.max_held == 1);
}

static void c_chunked(tctx_t *t) {
  cli_t c;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  usleep(20000);
  cli_send(&c, "1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: t\r\n\r\n");
  resp_t r;
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_STR(resp_header(&r, "X-Body-Len"), "12");
  CHECK_EQ_STR(r.body, "hello world!");
  resp_free(&r);
  /* The connection stays usable. */
  cli_send(&c, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "ok");
  resp_free(&r);
  cli_close(&c);
}

static void test_chunked(void) {
  tctx_t t = {0};
  run(NULL, c_chunked, &t);
}

static void c_expect(tctx_t *t) {
  cli_t c;
  resp_t r;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK(strncmp(r.head, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
  resp_free(&r);
  cli_send(&c, "hello");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_STR(r.body, "hello");
  resp_free(&r);
  /* Too big: 413 at once, no 100, then the connection closes. */
  cli_send(&c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 413);
  CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
  CHECK_EQ_STR(resp_header(&r, "Content-Type"), "application/json");
  CHECK(strstr(r.body, "\"type\":\"payload_too_large\"") != NULL);
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
}

static void test_expect_continue(void) {
  tctx_t t = {0};
  run(NULL, c_expect, &t);
  CHECK_EQ_INT(t.handled, 1);
}

static void c_head(tctx_t *t) {
  cli_t c;
  resp_t r;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "HEAD /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 1), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_STR(resp_header(&r, "Content-Length"), "2");
  resp_free(&r);
  /* Had the body been sent, it would show up as the start of this one. */
  cli_send(&c, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK(strncmp(r.head, "HTTP/1.1 200 OK", 15) == 0);
  CHECK_EQ_STR(r.body, "ok");
  resp_free(&r);
  cli_close(&c);
}

static void test_head(void) {
  tctx_t t = {0};
  run(NULL, c_head, &t);
}

static void c_conn_close(tctx_t *t) {
  cli_t c;
  resp_t r;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* HTTP/1.0 closes by default... */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /x HTTP/1.0\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "ok");
  CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* ...and stays with keep-alive. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  for (int i = 0; i < 2; i++) {
    cli_send(&c, "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
    CHECK_EQ_STR(r.body, "ok");
    CHECK_EQ_STR(resp_header(&r, "Connection"), "keep-alive");
    resp_free(&r);
  }
  cli_close(&c);
}

static void test_connection_close(void) {
  tctx_t t = {0};
  run(NULL, c_conn_close, &t);
}

/* Found by tests/fuzz/fuzz_http.c: an upgrade request whose end arrived
 * with bytes after it, in a read after its start, crashed the server (the
 * upgrade was handled as a second pause, with no request being parsed).
 * We do not switch protocols: the request is answered, and the connection
 * closes after it, unread bytes and all. */
static void c_upgrade(tctx_t *t) {
  static const char *const req = "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxxxx";
  for (size_t cut = 0; cut < strlen(req); cut += 9) {
    cli_t c;
    resp_t r;
    CHECK_EQ_INT(cli_open(&c, t), 0);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cut > 0) {
      cli_sendn(&c, req, cut);
      usleep(20000); /* a read of its own */
    }
    cli_send(&c, req + cut);
    CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
    resp_free(&r);
    CHECK_EQ_INT(cli_eof(&c), 1);
    cli_close(&c);
  }
  /* The server is still there. */
  cli_t c;
  resp_t r;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  resp_free(&r);
  cli_close(&c);
}

static void test_upgrade(void) {
  tctx_t t = {0};
  run(NULL, c_upgrade, &t);
}

static void c_limits(tctx_t *t) {
  cli_t c;
  resp_t r;
  /* One header over 16 KiB. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  char *big = malloc(20000);
  int n = sprintf(big, "GET /x HTTP/1.1\r\nX-Big: ");
  memset(big + n, 'a', 17000);
  strcpy(big + n + 17000, "\r\n\r\n");
  cli_send(&c, big);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK(strncmp(r.head, "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46) == 0);
  CHECK(strstr(r.body, "\"type\":\"headers_too_large\"") != NULL);
  CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* 101 headers. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  n = sprintf(big, "GET /x HTTP/1.1\r\n");
  for (int i = 0; i < 101; i++) n += sprintf(big + n, "H%d: v\r\n", i);
  strcpy(big + n, "\r\n");
  cli_send(&c, big);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 431);
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* 100 headers are fine. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  n = sprintf(big, "GET /x HTTP/1.1\r\n");
  for (int i = 0; i < 100; i++) n += sprintf(big + n, "H%d: v\r\n", i);
  strcpy(big + n, "\r\n");
  cli_send(&c, big);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  resp_free(&r);
  cli_close(&c);
  free(big);
  /* A body over 1 MiB is refused before it is sent. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 413);
  CHECK(strstr(r.body, "payload_too_large") != NULL);
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* Exactly 1 MiB is accepted. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  size_t mib = 1048576;
  char *body = malloc(mib);
  memset(body, 'b', mib);
  cli_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n");
  cli_sendn(&c, body, mib);
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body_len, mib);
  resp_free(&r);
  cli_close(&c);
  /* A chunked body that grows past the limit: 413, and the rest is
   * drained so the answer is not lost to a reset. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  char hdr[32];
  for (int i = 0; i < 5; i++) {
    snprintf(hdr, sizeof(hdr), "%zx\r\n", mib / 4);
    if (cli_send(&c, hdr) != 0 || cli_sendn(&c, body, mib / 4) != 0 || cli_send(&c, "\r\n") != 0)
      break;
  }
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 413);
  resp_free(&r);
  cli_close(&c);
  free(body);
  /* Garbage. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GARBAGE\x01 / HTTP/9\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK(strncmp(r.head, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
  CHECK(strstr(r.body, "{\"error\":{\"type\":\"bad_request\",\"message\":") == r.body);
  CHECK(strstr(r.body, "\"details\":[]") != NULL);
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* Both Content-Length and chunked: refused. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 400);
  resp_free(&r);
  cli_close(&c);
}

static void test_limits(void) {
  tctx_t t = {0};
  run(NULL, c_limits, &t);
  CHECK_EQ_INT(t.handled, 2);
}

static void c_timeouts(tctx_t *t) {
  cli_t c;
  resp_t r;
  /* Slowloris: headers never finish. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  uint64_t t0 = hg_now_ns();
  cli_send(&c, "GET /x HTTP/1.1\r\nHost: a\r\n");
  usleep(100000);
  cli_send(&c, "X-More: 1\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 408);
  CHECK(strstr(r.body, "request_timeout") != NULL);
  int ms = ms_since(t0);
  CHECK(ms >= 180 && ms < 1500);
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* A connection that never says anything is closed without a word. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* Idle keep-alive: closed silently after its idle time. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  resp_free(&r);
  t0 = hg_now_ns();
  CHECK_EQ_INT(cli_eof(&c), 1);
  ms = ms_since(t0);
  CHECK(ms >= 250 && ms < 1500);
  cli_close(&c);
  /* The body stalls. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_INT(r.status, 408);
  CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  /* No timeout while the handler holds the request: /slow answers after
   * both the idle and header timeouts. */
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /slow?ms=500 HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "slow");
  resp_free(&r);
  cli_close(&c);
}

static void test_timeouts(void) {
  tctx_t t = {0};
  hg_http_limits_t lim;
  hg_http_limits_default(&lim);
  lim.header_timeout_ms = 200;
  lim.idle_timeout_ms = 300;
  lim.body_timeout_ms = 200;
  run(&lim, c_timeouts, &t);
}

#define MANY 1000

static void c_many(tctx_t *t) {
  cli_t *cs = calloc(MANY, sizeof(*cs));
  int ok_open = 1, ok = 1;
  for (int i = 0; i < MANY; i++)
    if (cli_open(&cs[i], t) != 0) ok_open = 0;
  CHECK(ok_open);
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < MANY; i++) {
      char req[64];
      snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\n%04d", i);
      if (cli_send(&cs[i], req) != 0) ok = 0;
    }
    for (int i = 0; i < MANY; i++) {
      resp_t r;
      char want[8];
      snprintf(want, sizeof(want), "%04d", i);
      if (cli_read(&cs[i], &r, 0) != 0 || r.status != 200 || strcmp(r.body, want) != 0) ok = 0;
      resp_free(&r);
    }
  }
  CHECK(ok);
  for (int i = 0; i < MANY; i++) cli_close(&cs[i]);
  free(cs);
}

static void test_many_connections(void) {
  tctx_t t = {0};
  run(NULL, c_many, &t);
  CHECK_EQ_INT(t.handled, 2 * MANY);
}

static void c_one(tctx_t *t) {
  cli_t c;
  resp_t r;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  CHECK_EQ_STR(r.body, "ok");
  resp_free(&r);
  cli_close(&c);
}

static void test_ipv6(void) {
  /* Skip when the machine has no ::1. */
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::1", &sa.sin6_addr);
  int usable = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  if (fd >= 0) close(fd);
  if (!usable) {
    fprintf(stderr, "skip test_ipv6: ::1 unavailable\n");
    return;
  }
  tctx_t t = {0};
  run_full("[::1]:0", NULL, NULL, NULL, 0, c_one, &t);
  CHECK_EQ_INT(t.handled, 1);
}

static void test_listen_errors(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_http_server_opts_t o;
  memset(&o, 0, sizeof(o));
  o.loop = &loop;
  hg_http_limits_default(&o.limits);
  o.handler = handler;
  hg_http_server_t *a, *b;
  CHECK_EQ_INT(hg_http_server_new(&a, &o), 0);
  CHECK_EQ_INT(hg_http_server_new(&b, &o), 0);
  char err[256] = "";
  CHECK_EQ_INT(hg_http_server_listen(a, "127.0.0.1:0", NULL, NULL, err, sizeof(err)), 0);
  const char *bound = hg_http_server_addr(a, 0);
  CHECK(bound != NULL && strncmp(bound, "127.0.0.1:", 10) == 0 && port_of(bound) > 0);
  CHECK(hg_http_server_addr(a, 1) == NULL);
  char addr[64], want[128];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", port_of(bound));
  snprintf(want, sizeof(want), "listen %s: address already in use", addr);
  CHECK(hg_http_server_listen(b, addr, NULL, NULL, err, sizeof(err)) < 0);
  CHECK_EQ_STR(err, want);
  CHECK(hg_http_server_listen(b, "nonsense", NULL, NULL, err, sizeof(err)) < 0);
  CHECK(strncmp(err, "listen nonsense: ", 17) == 0);
  CHECK(hg_http_server_listen(b, "127.0.0.1:0", "/nonexistent/cert.pem", "/nonexistent/key.pem",
                              err, sizeof(err)) < 0);
  CHECK(strstr(err, "/nonexistent/cert.pem") != NULL);
  CHECK_EQ_INT(hg_http_server_draining(a), 0);
  CHECK_EQ_INT(hg_http_server_connections(a), 0);
  hg_http_server_free(a);
  hg_http_server_free(b);
  hg_http_server_free(NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static int connect_refused(tctx_t *t) {
  cli_t c;
  int r = cli_open(&c, t);
  int e = errno;
  cli_close(&c);
  return r != 0 && e == ECONNREFUSED;
}

static void c_shutdown(tctx_t *t) {
  cli_t idle, body, slow;
  resp_t r;
  /* An idle keep-alive connection. */
  CHECK_EQ_INT(cli_open(&idle, t), 0);
  cli_send(&idle, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&idle, &r, 0), 0);
  resp_free(&r);
  /* A request whose body is still arriving. */
  CHECK_EQ_INT(cli_open(&body, t), 0);
  cli_send(&body, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello");
  usleep(50000);
  /* The slow request starts the shutdown from inside the handler. */
  CHECK_EQ_INT(cli_open(&slow, t), 0);
  cli_send(&slow, "GET /slow?ms=300 HTTP/1.1\r\n\r\n");
  /* The idle connection is closed: that proves the shutdown began. */
  CHECK_EQ_INT(cli_eof(&idle), 1);
  cli_close(&idle);
  CHECK(connect_refused(t));
  cli_send(&body, "world");
  CHECK_EQ_INT(cli_read(&body, &r, 0), 0);
  CHECK_EQ_STR(r.body, "helloworld");
  CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&body), 1);
  cli_close(&body);
  CHECK_EQ_INT(cli_read(&slow, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_STR(r.body, "slow");
  CHECK_EQ_STR(resp_header(&r, "Connection"), "close");
  resp_free(&r);
  CHECK_EQ_INT(cli_eof(&slow), 1);
  cli_close(&slow);
  /* Wait for done (the last connection lingers until our close). */
  for (int i = 0; i < 300 && !__atomic_load_n(&t->done_called, __ATOMIC_SEQ_CST); i++)
    usleep(10000);
}

static void test_shutdown(void) {
  tctx_t t = {0};
  t.shutdown_on_slow = 1;
  run(NULL, c_shutdown, &t);
  CHECK_EQ_INT(t.done_called, 1);
  CHECK_EQ_INT(t.conns_at_done, 0);
}

static void c_dead_client(tctx_t *t) {
  /* The client leaves before the answer; the answer is dropped. */
  cli_t c;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /slow?ms=100 HTTP/1.1\r\n\r\n");
  usleep(20000);
  cli_close(&c);
  usleep(200000);
  /* Server still fine. */
  c_one(t);
}

static void test_dead_client(void) {
  tctx_t t = {0};
  run(NULL, c_dead_client, &t);
  CHECK_EQ_INT(t.handled, 2);
}

static void c_max_conns(tctx_t *t) {
  cli_t a, b, c;
  resp_t r;
  CHECK_EQ_INT(cli_open(&a, t), 0);
  CHECK_EQ_INT(cli_open(&b, t), 0);
  usleep(50000);
  CHECK_EQ_INT(cli_open(&c, t), 0);
  CHECK_EQ_INT(cli_eof(&c), 1);
  cli_close(&c);
  cli_send(&a, "GET /x HTTP/1.1\r\n\r\n");
  CHECK_EQ_INT(cli_read(&a, &r, 0), 0);
  CHECK_EQ_INT(r.status, 200);
  resp_free(&r);
  cli_close(&a);
  cli_close(&b);
}

static void test_max_connections(void) {
  tctx_t t = {0};
  hg_http_limits_t lim;
  hg_http_limits_default(&lim);
  lim.max_connections = 2;
  run(&lim, c_max_conns, &t);
}

static void c_access(tctx_t *t) {
  cli_t c;
  resp_t r;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /x?token=SECRETQUERY HTTP/1.1\r\nAuthorization: Bearer SECRETAUTH\r\n\r\n");
  CHECK_EQ_INT(cli_read(&c, &r, 0), 0);
  resp_free(&r);
  cli_close(&c);
}

static void test_access_log(void) {
  char path[] = "/tmp/hg_access_XXXXXX";
  int fd = mkstemp(path);
  hg_log_setup(HG_LOG_INFO, HG_LOG_LOGFMT, fd);
  tctx_t t = {0};
  run_full("127.0.0.1:0", NULL, NULL, NULL, 1, c_access, &t);
  hg_log_setup(HG_LOG_WARN, HG_LOG_LOGFMT, 2);
  char buf[8192] = "";
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  char want[64];
  snprintf(want, sizeof(want), "msg=listening addr=127.0.0.1:%d tls=false", t.port);
  CHECK(strstr(buf, want) != NULL);
  CHECK(strstr(buf, "msg=access method=GET path=/x status=200 bytes=2 duration_ms=") != NULL);
  CHECK(strstr(buf, "request_id=req_") != NULL);
  CHECK(strstr(buf, "remote=127.0.0.1") != NULL);
  CHECK(strstr(buf, "SECRET") == NULL);
}

/* ---- TLS ---- */

static char tls_dir[64];
static char tls_cert[128], tls_key[128];

static int make_cert(void) {
  strcpy(tls_dir, "/tmp/hg_tls_XXXXXX");
  if (mkdtemp(tls_dir) == NULL) return -1;
  snprintf(tls_cert, sizeof(tls_cert), "%s/cert.pem", tls_dir);
  snprintf(tls_key, sizeof(tls_key), "%s/key.pem", tls_dir);
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-subj /CN=localhost -days 1 -keyout %s -out %s >/dev/null 2>&1",
           tls_key, tls_cert);
  return system(cmd) == 0 ? 0 : -1;
}

static void drop_cert(void) {
  unlink(tls_cert);
  unlink(tls_key);
  rmdir(tls_dir);
}

typedef struct {
  mbedtls_net_context net;
  mbedtls_ssl_context ssl;
  mbedtls_ssl_config conf;
  mbedtls_x509_crt ca;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_entropy_context ent;
} tls_cli_t;

static int tls_cli_open(tls_cli_t *tc, tctx_t *t, mbedtls_ssl_session *resume) {
  mbedtls_net_init(&tc->net);
  mbedtls_ssl_init(&tc->ssl);
  mbedtls_ssl_config_init(&tc->conf);
  mbedtls_x509_crt_init(&tc->ca);
  mbedtls_ctr_drbg_init(&tc->drbg);
  mbedtls_entropy_init(&tc->ent);
  if (mbedtls_ctr_drbg_seed(&tc->drbg, mbedtls_entropy_func, &tc->ent, NULL, 0) != 0) return -1;
  if (mbedtls_x509_crt_parse_file(&tc->ca, tls_cert) != 0) return -2;
  char port[16];
  snprintf(port, sizeof(port), "%d", t->port);
  if (mbedtls_net_connect(&tc->net, "127.0.0.1", port, MBEDTLS_NET_PROTO_TCP) != 0) return -3;
  mbedtls_ssl_config_defaults(&tc->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                              MBEDTLS_SSL_PRESET_DEFAULT);
  mbedtls_ssl_conf_authmode(&tc->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&tc->conf, &tc->ca, NULL);
  mbedtls_ssl_conf_rng(&tc->conf, mbedtls_ctr_drbg_random, &tc->drbg);
  mbedtls_ssl_conf_read_timeout(&tc->conf, 3000);
  if (mbedtls_ssl_setup(&tc->ssl, &tc->conf) != 0) return -4;
  mbedtls_ssl_set_hostname(&tc->ssl, "localhost");
  if (resume) mbedtls_ssl_set_session(&tc->ssl, resume);
  mbedtls_ssl_set_bio(&tc->ssl, &tc->net, mbedtls_net_send, NULL, mbedtls_net_recv_timeout);
  int rc;
  while ((rc = mbedtls_ssl_handshake(&tc->ssl)) != 0)
    if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) return rc;
  return 0;
}

static void tls_cli_close(tls_cli_t *tc) {
  mbedtls_ssl_close_notify(&tc->ssl);
  mbedtls_net_free(&tc->net);
  mbedtls_ssl_free(&tc->ssl);
  mbedtls_ssl_config_free(&tc->conf);
  mbedtls_x509_crt_free(&tc->ca);
  mbedtls_ctr_drbg_free(&tc->drbg);
  mbedtls_entropy_free(&tc->ent);
}

/* Sends a request and reads until the response with body "ok" is in. */
static int tls_get(tls_cli_t *tc, char *out, size_t outlen) {
  const char *req = "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if (mbedtls_ssl_write(&tc->ssl, (const unsigned char *)req, strlen(req)) != (int)strlen(req))
    return -1;
  size_t n = 0;
  while (n < outlen - 1) {
    int rc = mbedtls_ssl_read(&tc->ssl, (unsigned char *)out + n, outlen - 1 - n);
    if (rc <= 0) return -1;
    n += (size_t)rc;
    out[n] = '\0';
    char *e = strstr(out, "\r\n\r\n");
    if (e && strlen(e + 4) >= 2) return 0;
  }
  return -1;
}

static void c_tls(tctx_t *t) {
  tls_cli_t tc;
  char out[2048];
  int rc = tls_cli_open(&tc, t, NULL);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_STR(mbedtls_ssl_get_version(&tc.ssl), "TLSv1.2");
  for (int i = 0; i < 2 && rc == 0; i++) {
    CHECK_EQ_INT(tls_get(&tc, out, sizeof(out)), 0);
    CHECK(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(out, "\r\n\r\nok") != NULL);
  }
  mbedtls_ssl_session sess;
  mbedtls_ssl_session_init(&sess);
  CHECK_EQ_INT(mbedtls_ssl_get_session(&tc.ssl, &sess), 0);
  CHECK(sess.ticket != NULL && sess.ticket_len > 0); /* the server issued a ticket */
  tls_cli_close(&tc);
  /* Resume with the ticket. */
  rc = tls_cli_open(&tc, t, &sess);
  CHECK_EQ_INT(rc, 0);
  if (rc == 0) CHECK_EQ_INT(tls_get(&tc, out, sizeof(out)), 0);
  /* Pipelined past the pending bound, behind a slow one, over TLS. */
  if (rc == 0) {
    char reqs[30 * 48];
    size_t n = (size_t)sprintf(reqs, "GET /slow?ms=50 HTTP/1.1\r\n\r\n");
    for (int i = 0; i < 29; i++) n += (size_t)sprintf(reqs + n, "GET /x HTTP/1.1\r\n\r\n");
    CHECK_EQ_INT(mbedtls_ssl_write(&tc.ssl, (const unsigned char *)reqs, n), (int)n);
    static char all[30 * 400];
    size_t got = 0;
    int count = 0;
    while (count < 30 && got < sizeof(all) - 1) {
      int r = mbedtls_ssl_read(&tc.ssl, (unsigned char *)all + got, sizeof(all) - 1 - got);
      if (r <= 0) break;
      got += (size_t)r;
      all[got] = '\0';
      count = 0;
      for (const char *p = all; (p = strstr(p, "HTTP/1.1 200 OK")) != NULL; p++) count++;
    }
    CHECK_EQ_INT(count, 30);
    const char *first = strstr(all, "\r\n\r\n");
    CHECK(first != NULL && strncmp(first + 4, "slow", 4) == 0);
  }
  tls_cli_close(&tc);
  mbedtls_ssl_session_free(&sess);
  /* Plain HTTP to the TLS port: that connection is dropped, nothing else. */
  cli_t c;
  CHECK_EQ_INT(cli_open(&c, t), 0);
  cli_send(&c, "GET /x HTTP/1.1\r\n\r\n");
  char junk[256];
  ssize_t n;
  int got_eof = 0;
  while ((n = recv(c.fd, junk, sizeof(junk), 0)) > 0) {
  }
  got_eof = n == 0 || errno == ECONNRESET;
  CHECK(got_eof);
  cli_close(&c);
  rc = tls_cli_open(&tc, t, NULL);
  CHECK_EQ_INT(rc, 0);
  if (rc == 0) CHECK_EQ_INT(tls_get(&tc, out, sizeof(out)), 0);
  tls_cli_close(&tc);
}

static void test_tls(void) {
  if (make_cert() != 0) {
    fprintf(stderr, "skip test_tls: openssl could not make a certificate\n");
    drop_cert();
    return;
  }
  tctx_t t = {0};
  run_full("127.0.0.1:0", NULL, tls_cert, tls_key, 0, c_tls, &t);
  CHECK_EQ_INT(t.handled, 34);
  /* A key that is not a key: the error names the file. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  hg_http_server_opts_t o;
  memset(&o, 0, sizeof(o));
  o.loop = &loop;
  o.handler = handler;
  hg_http_server_t *s;
  hg_http_server_new(&s, &o);
  char err[256] = "";
  CHECK(hg_http_server_listen(s, "127.0.0.1:0", tls_cert, tls_cert, err, sizeof(err)) < 0);
  CHECK(strstr(err, "tls key") != NULL && strstr(err, tls_cert) != NULL);
  hg_http_server_free(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  drop_cert();
}

int main(void) {
  /* Keep the test output quiet unless something fails. */
  hg_log_setup(HG_LOG_WARN, HG_LOG_LOGFMT, 2);
  RUN(test_keepalive);
  RUN(test_pipelining);
  RUN(test_idle_memory);
  RUN(test_chunked);
  RUN(test_expect_continue);
  RUN(test_head);
  RUN(test_connection_close);
  RUN(test_upgrade);
  RUN(test_limits);
  RUN(test_timeouts);
  RUN(test_many_connections);
  RUN(test_ipv6);
  RUN(test_listen_errors);
  RUN(test_shutdown);
  RUN(test_dead_client);
  RUN(test_max_connections);
  RUN(test_access_log);
  RUN(test_tls);
  return HGT_DONE();
}
