/* fuzz_http.c: the HTTP server (core/http_server.c on llhttp) fed raw bytes
 * through a real loopback connection, as a client would send them.
 *
 * One server runs on this thread's loop for the whole process, with small
 * limits so that the fuzzer reaches them (431, 413). Each input is one
 * connection: the bytes go out in pieces (their size depends on the
 * input's length, so partial reads and requests split anywhere are
 * exercised), then the client half-closes and reads until the server
 * closes. The handler reads every field of each request and answers in
 * several ways: at once, later (from a timer, so pipelined answers finish
 * out of order), as JSON, as an error, with no body, with headers added.
 *
 * Checked, besides memory safety, leaks and UB: each request the handler
 * sees is well formed (method, target = path [? query], NUL-terminated
 * body of body_len bytes, header names and values NUL-terminated), what
 * the client reads starts as an HTTP/1.1 response, every request is
 * answered, and the connection closes. */
#include "base/common.h"
#include "net/http_server.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t loop;
static hg_http_server_t *srv;
static int port;
static size_t held; /* answers waiting on a timer */

static void die(const char *what) {
  fprintf(stderr, "fuzz_http: %s\n", what);
  abort();
}

typedef struct later {
  uv_timer_t timer;
  hg_http_req_t *req;
} later_t;

static void later_closed(uv_handle_t *h) { free(h->data); }

static void later_cb(uv_timer_t *t) {
  later_t *l = t->data;
  held--;
  hg_http_respond(l->req, 202, "text/plain", l->req->path, strlen(l->req->path));
  uv_close((uv_handle_t *)t, later_closed);
}

/* Reads every byte the request exposes, so that ASan sees each. */
static size_t touch(const hg_http_req_t *r) {
  size_t sum = strlen(r->method) + strlen(r->target) + strlen(r->path) + strlen(r->query) + strlen(r->request_id);
  if (r->method[0] == '\0') die("a request without a method");
  size_t pl = strlen(r->path);
  if (strncmp(r->target, r->path, pl) != 0) die("path is not the start of the target");
  if (r->target[pl] == '?' ? strcmp(r->target + pl + 1, r->query) != 0 : (r->target[pl] != '\0' || r->query[0]))
    die("target is not path [? query]");
  if (r->body[r->body_len] != '\0') die("body not NUL-terminated at body_len");
  for (size_t i = 0; i < r->body_len; i++) sum += (unsigned char)r->body[i];
  for (size_t i = 0; i < r->n_headers; i++) sum += strlen(r->headers[i].name) + strlen(r->headers[i].value);
  if (r->n_headers > 32) die("more headers than the limit");
  if (r->body_len > 4096) die("a body over the limit");
  return sum;
}

static void handler(hg_http_req_t *req, void *ud) {
  (void)ud;
  size_t sum = touch(req);
  const char *p = req->path;
  if (strncmp(p, "/later", 6) == 0) {
    later_t *l = calloc(1, sizeof(*l));
    if (l == NULL) die("out of memory");
    l->req = req;
    l->timer.data = l;
    uv_timer_init(&loop, &l->timer);
    /* Later requests answer sooner: out of order on the connection. */
    uv_timer_start(&l->timer, later_cb, (uint64_t)(sum % 3), 0);
    held++;
    return;
  }
  if (strncmp(p, "/json", 5) == 0) {
    hg_http_respond_json(req, 201, json_pack("{s:s,s:s%,s:I}", "path", p, "body", req->body, req->body_len, "n",
                                             (json_int_t)req->n_headers));
    return;
  }
  if (strncmp(p, "/error", 6) == 0) {
    hg_http_respond_error(req, 422, "validation_error", req->query, NULL);
    return;
  }
  if (strncmp(p, "/empty", 6) == 0) {
    hg_http_respond(req, 204, NULL, NULL, 0);
    return;
  }
  const char *v = hg_http_req_header(req, "x-echo");
  if (v != NULL && strpbrk(v, "\r\n") == NULL) hg_http_req_add_header(req, "X-Echo", v);
  hg_http_respond(req, 200, "application/octet-stream", req->body, req->body_len);
}

static void setup(void) {
  hg_log_setup(HG_LOG_ERROR, HG_LOG_LOGFMT, 2);
  if (uv_loop_init(&loop) != 0) die("uv_loop_init");
  hg_http_server_opts_t o;
  memset(&o, 0, sizeof(o));
  o.loop = &loop;
  o.limits.max_header_bytes = 2048;
  o.limits.max_headers = 32;
  o.limits.max_body = 4096;
  o.handler = handler;
  if (hg_http_server_new(&srv, &o) != 0) die("hg_http_server_new");
  char err[256];
  if (hg_http_server_listen(srv, "127.0.0.1:0", NULL, NULL, err, sizeof(err)) != 0) die(err);
  const char *a = hg_http_server_addr(srv, 0);
  port = atoi(strrchr(a, ':') + 1);
}

typedef struct client {
  uv_poll_t poll;
  int fd;
  int done;
  size_t got;
  char head[9];
} client_t;

static void client_read(uv_poll_t *h, int status, int events) {
  (void)events;
  client_t *c = h->data;
  char buf[65536];
  for (;;) {
    ssize_t n = status < 0 ? -1 : read(c->fd, buf, sizeof(buf));
    if (n > 0) {
      for (ssize_t i = 0; i < n && c->got < 9; i++) c->head[c->got++] = buf[i];
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && status >= 0) return;
    /* EOF, or the server reset the connection: it is closed either way. */
    uv_poll_stop(h);
    c->done = 1;
    return;
  }
}

static void poll_closed(uv_handle_t *h) { (void)h; }

/* A blocking connect to the server (the kernel completes the handshake
 * from the listen backlog), from a different 127/8 source address each
 * time: a long run makes more connections than one address has ports free
 * of TIME_WAIT. A failure is the machine's, not the server's: retried. */
static int client_connect(void) {
  static uint32_t n_conn;
  struct sockaddr_in sa, src;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  memset(&src, 0, sizeof(src));
  src.sin_family = AF_INET;
  int err = 0;
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    /* The port is picked at connect, for the whole 4-tuple. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    src.sin_addr.s_addr = htonl(0x7f000000u | (1 + (n_conn++ % 0xfffffe)));
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
      return fd;
    err = errno;
    close(fd);
    usleep(10000);
  }
  fprintf(stderr, "fuzz_http: connect: %s\n", strerror(err));
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (srv == NULL) setup();
  client_t c;
  memset(&c, 0, sizeof(c));
  c.fd = client_connect();
  fcntl(c.fd, F_SETFL, O_NONBLOCK);
  uv_poll_init(&loop, &c.poll, c.fd);
  c.poll.data = &c;
  uv_poll_start(&c.poll, UV_READABLE | UV_DISCONNECT, client_read);
  static const size_t pieces[] = {SIZE_MAX, 1, 7, 64, 512};
  size_t piece = pieces[size % 5];
  for (size_t off = 0; off < size && !c.done;) {
    size_t n = size - off < piece ? size - off : piece;
    ssize_t w = send(c.fd, data + off, n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) break; /* the server closed */
    if (w > 0) off += (size_t)w;
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  shutdown(c.fd, SHUT_WR);
  while (!c.done) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&c.poll, poll_closed);
  close(c.fd);
  /* The server's side closes too, and every held answer goes out (to a
   * closed connection: dropped). */
  while (hg_http_server_connections(srv) > 0 || held > 0) uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_NOWAIT);
  if (c.got > 0 && memcmp(c.head, "HTTP/1.1 ", c.got < 9 ? c.got : 9) != 0) die("the answer is not HTTP/1.1");
  return 0;
}
