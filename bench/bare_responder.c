/* bare_responder.c: the ingest benchmark's anchor. A bare libuv server that
 * answers 202 to every request and does nothing else: no parsing beyond
 * finding the end of each request, no storage, no logging. Its req/s under
 * the same wrk settings is what "the network stack plus libuv" costs on this
 * machine at this moment; hookgate's figure is read as a ratio of it.
 *
 * It understands just enough HTTP/1.1 for wrk: headers end at CRLFCRLF and a
 * Content-Length body follows. Pipelined requests are answered in order.
 *
 * Build: cc -O2 -o bare_responder bare_responder.c -luv
 * Run:   bare_responder PORT   (listens on 127.0.0.1:PORT) */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define BUF_CAP 65536

/* The answer hookgate gives to a publish, byte for byte in length. */
static const char body[] = "{\"id\":\"evt_00000000000000000000000000\",\"deliveries\":1}";
static char reply[256];
static size_t reply_len;

typedef struct conn {
  uv_tcp_t tcp;
  char buf[BUF_CAP];
  size_t len;  /* bytes held in buf */
  size_t need; /* body bytes still to skip */
} conn_t;

static void close_cb(uv_handle_t *h) { free(h->data); }

static void write_cb(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  conn_t *c = h->data;
  buf->base = c->buf + c->len;
  buf->len = BUF_CAP - c->len;
}

/* Consumes whole requests from the buffer; returns how many were complete. */
static int consume(conn_t *c) {
  int n = 0;
  size_t off = 0;
  for (;;) {
    if (c->need > 0) {
      size_t take = c->len - off < c->need ? c->len - off : c->need;
      off += take;
      c->need -= take;
      if (c->need > 0) break;
      n++;
      continue;
    }
    char *end = memmem(c->buf + off, c->len - off, "\r\n\r\n", 4);
    if (end == NULL) break;
    size_t clen = 0;
    /* Content-Length, case-insensitively, within this request's headers. */
    for (char *p = c->buf + off; p < end; p++) {
      if ((*p == 'c' || *p == 'C') && (size_t)(end - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
        clen = strtoul(p + 15, NULL, 10);
        break;
      }
    }
    off = (size_t)(end - c->buf) + 4;
    c->need = clen;
    if (clen == 0) n++;
  }
  memmove(c->buf, c->buf + off, c->len - off);
  c->len -= off;
  return n;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  conn_t *c = s->data;
  if (nread < 0) {
    uv_close((uv_handle_t *)s, close_cb);
    return;
  }
  c->len += (size_t)nread;
  int n = consume(c);
  if (c->len == BUF_CAP) { /* a header block larger than the buffer */
    uv_close((uv_handle_t *)s, close_cb);
    return;
  }
  if (n == 0) return;
  uv_write_t *w = malloc(sizeof(*w));
  uv_buf_t bufs[64];
  int nb = n < 64 ? n : 64;
  for (int i = 0; i < nb; i++) bufs[i] = uv_buf_init(reply, (unsigned)reply_len);
  uv_write(w, s, bufs, (unsigned)nb, write_cb);
}

static void on_conn(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn_t *c = calloc(1, sizeof(*c));
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  reply_len = (size_t)snprintf(reply, sizeof(reply),
                               "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\n\r\n%s",
                               sizeof(body) - 1, body);
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  uv_tcp_init(loop, &server);
  int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&server, 4096, on_conn);
  if (r != 0) {
    fprintf(stderr, "bare_responder: %s\n", uv_strerror(r));
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}
