/* bare_responder.c: the ingest benchmark's anchors. A bare libuv server that
 * answers 202 to every request and does nothing else: no parsing beyond
 * finding the end of each request, no storage, no logging. Its req/s under
 * the same wrk settings is what "the network stack plus libuv" costs on this
 * machine at this moment; hookgate's figure is read as a ratio of it.
 *
 * With --durable FILE it is the limit of a durable answer instead: the bytes
 * of every request received in a loop turn are written to FILE and
 * fdatasync'd on libuv's thread pool (one group at a time; what arrives
 * meanwhile forms the next group), and only then are that group's requests
 * answered. That is group commit with nothing else: no parsing, no index,
 * no database. FILE wraps at 64 MiB so a long run does not fill the disk.
 *
 * It understands just enough HTTP/1.1 for wrk: headers end at CRLFCRLF and a
 * Content-Length body follows. Pipelined requests are answered in order.
 *
 * Build: cc -O2 -o bare_responder bare_responder.c -luv
 * Run:   bare_responder PORT [--durable FILE]   (listens on 127.0.0.1:PORT) */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <unistd.h>
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
  int owed;    /* durable mode: answers waiting on a group's fdatasync */
  int closing; /* uv_close called: answer nothing more */
  int closed;  /* durable mode: closed while answers were owed */
} conn_t;

/* Durable mode: a group is the requests of one or more loop turns and their
 * bytes; one group is being synced while the next gathers. */
#define WRAP_BYTES (64u << 20)
typedef struct group {
  char *bytes;
  size_t len, cap;
  conn_t **conns; /* one entry per answer owed, in order */
  size_t n, ncap;
} group_t;
static int durable_fd = -1;
static off_t durable_off;
static group_t gathering, syncing;
static int sync_busy;
static uv_work_t sync_req;

static void close_cb(uv_handle_t *h) {
  conn_t *c = h->data;
  if (c->owed > 0) {
    c->closed = 1; /* freed when its group's answers come due */
    return;
  }
  free(c);
}

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

static void answer(conn_t *c, int n);

static void close_conn(conn_t *c) {
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (nread < 0) {
    close_conn(c);
    return;
  }
  if (durable_fd >= 0) {
    group_t *g = &gathering;
    if (g->len + (size_t)nread > g->cap) {
      g->cap = (g->len + (size_t)nread) * 2;
      g->bytes = realloc(g->bytes, g->cap);
    }
    memcpy(g->bytes + g->len, buf->base, (size_t)nread);
    g->len += (size_t)nread;
  }
  c->len += (size_t)nread;
  int n = consume(c);
  if (c->len == BUF_CAP) { /* a header block larger than the buffer */
    close_conn(c);
    return;
  }
  if (n == 0) return;
  if (durable_fd >= 0) {
    group_t *g = &gathering;
    if (g->n + (size_t)n > g->ncap) {
      g->ncap = (g->n + (size_t)n) * 2;
      g->conns = realloc(g->conns, g->ncap * sizeof(*g->conns));
    }
    for (int i = 0; i < n; i++) g->conns[g->n++] = c;
    c->owed += n;
    return;
  }
  answer(c, n);
}

/* Writes n answers, 64 to a write request. */
static void answer(conn_t *c, int n) {
  uv_stream_t *s = (uv_stream_t *)&c->tcp;
  while (n > 0 && !c->closing) {
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t bufs[64];
    int nb = n < 64 ? n : 64;
    for (int i = 0; i < nb; i++) bufs[i] = uv_buf_init(reply, (unsigned)reply_len);
    if (uv_write(w, s, bufs, (unsigned)nb, write_cb) != 0) free(w);
    n -= nb;
  }
}

/* The thread pool's part of a group: one write, one fdatasync. */
static void sync_work(uv_work_t *req) {
  (void)req;
  if (durable_off + (off_t)syncing.len > (off_t)WRAP_BYTES) durable_off = 0;
  size_t done = 0;
  while (done < syncing.len) {
    ssize_t w = pwrite(durable_fd, syncing.bytes + done, syncing.len - done, durable_off + (off_t)done);
    if (w <= 0) {
      perror("bare_responder: write");
      exit(1);
    }
    done += (size_t)w;
  }
  durable_off += (off_t)done;
  if (fdatasync(durable_fd) != 0) {
    perror("bare_responder: fdatasync");
    exit(1);
  }
}

static void start_sync(void);

/* Back on the loop: the group is durable, answer its requests. */
static void sync_done(uv_work_t *req, int status) {
  (void)req;
  (void)status;
  for (size_t i = 0; i < syncing.n;) {
    conn_t *c = syncing.conns[i];
    size_t j = i;
    while (j < syncing.n && syncing.conns[j] == c) j++;
    int n = (int)(j - i);
    c->owed -= n;
    if (c->closed) {
      if (c->owed == 0) free(c);
    } else if (!c->closing) {
      answer(c, n);
    }
    i = j;
  }
  syncing.len = 0;
  syncing.n = 0;
  sync_busy = 0;
  start_sync();
}

static void start_sync(void) {
  if (sync_busy || gathering.n == 0) return;
  group_t t = syncing;
  syncing = gathering;
  gathering = t;
  sync_busy = 1;
  uv_queue_work(uv_default_loop(), &sync_req, sync_work, sync_done);
}

/* After each loop turn's reads: send what gathered to be synced. */
static void check_cb(uv_check_t *h) {
  (void)h;
  start_sync();
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
  if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--durable") == 0)) {
    fprintf(stderr, "usage: %s PORT [--durable FILE]\n", argv[0]);
    return 2;
  }
  if (argc == 4) {
    durable_fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (durable_fd < 0) {
      perror(argv[3]);
      return 1;
    }
    /* Written whole once, as hookgate's intake log writes its segments:
     * every later fdatasync overwrites blocks the file has, with no size
     * or extent to persist, from the first run on. */
    static char zeros[1 << 20];
    for (unsigned off = 0; off < WRAP_BYTES; off += sizeof(zeros))
      if (pwrite(durable_fd, zeros, sizeof(zeros), off) != (ssize_t)sizeof(zeros)) {
        perror(argv[3]);
        return 1;
      }
    if (fdatasync(durable_fd) != 0) {
      perror(argv[3]);
      return 1;
    }
  }
  reply_len = (size_t)snprintf(reply, sizeof(reply),
                               "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\n\r\n%s",
                               sizeof(body) - 1, body);
  uv_loop_t *loop = uv_default_loop();
  uv_check_t check;
  uv_check_init(loop, &check);
  uv_check_start(&check, check_cb);
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
