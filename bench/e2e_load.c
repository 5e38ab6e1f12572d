/* e2e_load.c: end-to-end latency, publish to the receiver's receipt, as
 * bench/e2e.mjs measures it, in C: at 10,000 events a second the Node
 * publisher and receiver took most of a core between them, on the two the
 * gateway needs, and the row measured them.
 *
 *   e2e_load --port PORT[,PORT...] --key ADMIN_KEY [--rate 1000] [--duration 30]
 *
 * Starts a receiver on 127.0.0.1 (port 0), subscribes it to user.created
 * through the first port (the webhook's URL names the receiver), then
 * publishes 512-byte events at a fixed rate on keep-alive connections,
 * each carrying one request at a time, in turn across the ports. A
 * publish's time is when the schedule said to send it; one that finds no
 * connection free waits in a backlog (reported), so waiting for the
 * gateway's earlier answers counts against it. Its 202 names the event id;
 * the receiver keeps the receipt time (when the request's head is in) by
 * webhook-id, which is the event id. The two are joined at the end.
 * Prints one JSON line, as e2e.mjs does:
 * {sent, failed, received, late, seconds, p50_ms, p99_ms, max_ms,
 *  publish_p50_ms, publish_p99_ms, connections, max_backlog}. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_PORTS 8
#define BODY_BYTES 512

static uv_loop_t *loop;
static int ports[MAX_PORTS], nports;
static const char *key;
static double rate = 1000, duration = 30;

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static void die(const char *what) {
  fprintf(stderr, "e2e_load: %s\n", what);
  exit(1);
}

/* ---- Event ids: send and receipt times, joined by id ---- */

typedef struct {
  char id[48];
  double sent, recv; /* < 0: not yet */
} ev_t;

static ev_t *evs;
static size_t evs_cap; /* a power of two */

static ev_t *ev_of(const char *id, size_t len) {
  if (len == 0 || len >= sizeof(evs[0].id)) return NULL;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
  for (size_t i = h & (evs_cap - 1), n = 0; n < evs_cap; i = (i + 1) & (evs_cap - 1), n++) {
    ev_t *e = &evs[i];
    if (e->id[0] == '\0') {
      memcpy(e->id, id, len);
      e->id[len] = '\0';
      e->sent = e->recv = -1;
      return e;
    }
    if (strlen(e->id) == len && memcmp(e->id, id, len) == 0) return e;
  }
  return NULL; /* full: more events than the run can send */
}

/* ---- Parsing: just what the other side sends ---- */

/* The end of the head (past its blank line) in buf[0..n), or 0. */
static size_t head_end(const char *buf, size_t n) {
  for (size_t i = 3; i < n; i++)
    if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') return i + 1;
  return 0;
}

/* Header name's value in head[0..n) (a line "\r\nName: value"), its length
 * in *len; NULL when absent. */
static const char *header(const char *head, size_t n, const char *name, size_t *len) {
  size_t nl = strlen(name);
  for (size_t i = 0; i + 2 + nl < n; i++) {
    if (head[i] != '\r' || head[i + 1] != '\n' || strncasecmp(head + i + 2, name, nl) != 0 || head[i + 2 + nl] != ':')
      continue;
    const char *v = head + i + 3 + nl, *end = head + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    const char *e = v;
    while (e < end && *e != '\r') e++;
    *len = (size_t)(e - v);
    return v;
  }
  return NULL;
}

static size_t content_length(const char *head, size_t n) {
  size_t len = 0;
  const char *v = header(head, n, "content-length", &len);
  return v ? (size_t)strtoul(v, NULL, 10) : 0;
}

typedef struct {
  char *p;
  size_t n, cap;
} buf_t;

static void buf_add(buf_t *b, const char *p, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + n) cap *= 2;
    if ((b->p = realloc(b->p, cap)) == NULL) die("out of memory");
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void buf_drop(buf_t *b, size_t n) {
  memmove(b->p, b->p + n, b->n - n);
  b->n -= n;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h, (void)suggested;
  static char space[65536];
  *buf = uv_buf_init(space, sizeof(space));
}

/* ---- The receiver ---- */

typedef struct {
  uv_tcp_t tcp;
  buf_t in;
  long need; /* body bytes still to come, -1: reading a head */
} rconn_t;

static uv_tcp_t listener;
static const char ok_answer[] = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

static void rconn_closed(uv_handle_t *h) {
  rconn_t *c = h->data;
  free(c->in.p);
  free(c);
}

static void write_freed(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void rconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  rconn_t *c = s->data;
  if (nread < 0) {
    uv_close((uv_handle_t *)s, rconn_closed);
    return;
  }
  buf_add(&c->in, b->base, (size_t)nread);
  for (;;) {
    if (c->need < 0) {
      size_t e = head_end(c->in.p, c->in.n);
      if (e == 0) return;
      double t = now_ms();
      size_t len = 0;
      const char *id = header(c->in.p, e, "webhook-id", &len);
      ev_t *ev = id ? ev_of(id, len) : NULL;
      if (ev && ev->recv < 0) ev->recv = t;
      c->need = (long)content_length(c->in.p, e);
      buf_drop(&c->in, e);
    }
    if (c->in.n < (size_t)c->need) return;
    buf_drop(&c->in, (size_t)c->need);
    c->need = -1;
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t out = uv_buf_init((char *)ok_answer, sizeof(ok_answer) - 1);
    if (w == NULL || uv_write(w, s, &out, 1, write_freed) != 0) free(w);
  }
}

static void on_accept(uv_stream_t *server, int status) {
  if (status != 0) return;
  rconn_t *c = calloc(1, sizeof(*c));
  if (c == NULL) die("out of memory");
  c->need = -1;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, rconn_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, rconn_read);
}

/* ---- Creating the webhook (blocking, before the loop runs) ---- */

static void create_webhook(int receiver_port) {
  char body[256], req[1024];
  snprintf(body, sizeof(body), "{\"url\":\"http://127.0.0.1:%d/hook\",\"events\":[\"user.created\"]}", receiver_port);
  int n = snprintf(req, sizeof(req),
                   "POST /v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   key, strlen(body), body);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)ports[0]);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) die("cannot reach the gateway");
  if (write(fd, req, (size_t)n) != n) die("cannot send the webhook's creation");
  char ans[4096];
  ssize_t got = 0, r;
  while ((r = read(fd, ans + got, sizeof(ans) - 1 - (size_t)got)) > 0) got += r;
  close(fd);
  ans[got > 0 ? got : 0] = '\0';
  if (strncmp(ans, "HTTP/1.1 201", 12) != 0 && strncmp(ans, "HTTP/1.1 200", 12) != 0) {
    fprintf(stderr, "e2e_load: cannot create the webhook: %.200s\n", ans);
    exit(1);
  }
}

/* ---- The publisher ---- */

typedef struct pconn {
  uv_tcp_t tcp;
  uv_connect_t connect;
  buf_t in;
  char *req;
  size_t req_len;
  double t0;
  int busy, dead, up;
} pconn_t;

static pconn_t *conns;
static int nconn, conns_up;
static double *backlog; /* a ring of scheduled send times */
static size_t bl_head, bl_n, bl_cap, max_backlog;
static long sent, failed, pending, total, answered;
static double *publish_ms;
static size_t npublish;
static int next_conn;
static double start;
static uv_timer_t tick_timer, wait_timer;

static void send_on(pconn_t *c, double t0) {
  c->busy = 1;
  c->t0 = t0;
  uv_buf_t b = uv_buf_init(c->req, (unsigned)c->req_len);
  uv_write_t *w = malloc(sizeof(*w));
  if (w == NULL || uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, write_freed) != 0) {
    free(w);
    c->busy = 0;
    c->dead = 1;
    pending--;
    failed++;
  }
}

static void publish(double t0) {
  pending++;
  sent++;
  for (int i = 0; i < nconn; i++) {
    pconn_t *c = &conns[(next_conn + i) % nconn];
    if (!c->busy && !c->dead) {
      next_conn = (next_conn + i + 1) % nconn;
      send_on(c, t0);
      return;
    }
  }
  int alive = 0;
  for (int i = 0; i < nconn && !alive; i++) alive = !conns[i].dead;
  if (!alive) {
    pending--;
    failed++;
    return;
  }
  if (bl_n == bl_cap) die("backlog full");
  backlog[(bl_head + bl_n++) % bl_cap] = t0;
  if (bl_n > max_backlog) max_backlog = bl_n;
}

static void pconn_closed(uv_handle_t *h) { (void)h; }

static void pconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  pconn_t *c = s->data;
  if (nread < 0) {
    /* Dropped from the pool; the publish it carried, if any, failed. */
    c->dead = 1;
    if (c->busy) {
      c->busy = 0;
      pending--;
      failed++;
    }
    uv_close((uv_handle_t *)s, pconn_closed);
    return;
  }
  buf_add(&c->in, b->base, (size_t)nread);
  size_t e = head_end(c->in.p, c->in.n);
  if (e == 0) return;
  size_t len = content_length(c->in.p, e);
  if (c->in.n < e + len) return;
  int status = c->in.n >= 12 ? atoi(c->in.p + 9) : 0;
  const char *body = c->in.p + e, *id = NULL;
  size_t idlen = 0;
  for (size_t i = 0; i + 10 < len; i++) {
    if (memcmp(body + i, "\"id\":\"evt_", 10) == 0) {
      id = body + i + 6;
      while (i + 6 + idlen < len && body[i + 6 + idlen] != '"') idlen++;
      break;
    }
  }
  double t = now_ms();
  if (npublish < (size_t)total) publish_ms[npublish++] = t - c->t0;
  pending--;
  answered++;
  c->busy = 0;
  ev_t *ev = status == 202 && id ? ev_of(id, idlen) : NULL;
  if (ev == NULL) failed++;
  else ev->sent = c->t0;
  buf_drop(&c->in, e + len);
  if (bl_n > 0) {
    double t0 = backlog[bl_head];
    bl_head = (bl_head + 1) % bl_cap;
    bl_n--;
    send_on(c, t0);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  pconn_t *c = req->data;
  if (status != 0) die("cannot connect to the gateway");
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, pconn_read);
  c->up = 1;
  conns_up++;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p) {
  if (n == 0) return 0;
  size_t i = (size_t)ceil(p / 100.0 * (double)n);
  if (i > 0) i--;
  if (i >= n) i = n - 1;
  return v[i];
}

static double finish_deadline;

static void report(void) {
  double *lat = malloc(sizeof(double) * (size_t)(total > 0 ? total : 1));
  size_t n = 0;
  long late = 0;
  for (size_t i = 0; i < evs_cap; i++) {
    ev_t *e = &evs[i];
    if (e->id[0] == '\0' || e->sent < 0) continue;
    if (e->recv < 0) late++;
    else lat[n++] = e->recv - e->sent;
  }
  qsort(lat, n, sizeof(double), cmp_double);
  qsort(publish_ms, npublish, sizeof(double), cmp_double);
  printf("{\"sent\":%ld,\"failed\":%ld,\"received\":%zu,\"late\":%ld,\"seconds\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
         "\"max_ms\":%.3f,\"publish_p50_ms\":%.3f,\"publish_p99_ms\":%.3f,\"connections\":%d,\"max_backlog\":%zu}\n",
         sent, failed, n, late, (now_ms() - start) / 1000, pct(lat, n, 50), pct(lat, n, 99), n ? lat[n - 1] : 0,
         pct(publish_ms, npublish, 50), pct(publish_ms, npublish, 99), nconn, max_backlog);
  free(lat);
}

static void wait_cb(uv_timer_t *t) {
  long joined = 0;
  for (size_t i = 0; i < evs_cap; i++) joined += evs[i].id[0] && evs[i].sent >= 0 && evs[i].recv >= 0;
  long known = 0;
  for (size_t i = 0; i < evs_cap; i++) known += evs[i].id[0] && evs[i].sent >= 0;
  if ((pending > 0 || joined < known) && now_ms() < finish_deadline) return;
  uv_timer_stop(t);
  report();
  uv_stop(loop);
}

/* A fixed schedule: by time t, rate * t events have been sent; catching up
 * after a late tick keeps the average rate exact. */
static void tick_cb(uv_timer_t *t) {
  double now = now_ms();
  long due = (long)floor((now - start) / 1000.0 * rate);
  if (due > total) due = total;
  while (sent < due) publish(now);
  if (sent >= total) {
    uv_timer_stop(t);
    finish_deadline = now_ms() + 15000;
    uv_timer_start(&wait_timer, wait_cb, 20, 20);
  }
}

static void ready_cb(uv_timer_t *t) {
  if (conns_up < nconn) return; /* still connecting */
  uv_timer_stop(t);
  start = now_ms();
  uv_timer_start(&tick_timer, tick_cb, 0, 1);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) {
      for (char *p = strtok(argv[i + 1], ","); p && nports < MAX_PORTS; p = strtok(NULL, ",")) ports[nports++] = atoi(p);
    } else if (strcmp(argv[i], "--key") == 0) {
      key = argv[i + 1];
    } else if (strcmp(argv[i], "--rate") == 0) {
      rate = atof(argv[i + 1]);
    } else if (strcmp(argv[i], "--duration") == 0) {
      duration = atof(argv[i + 1]);
    } else {
      die("usage: e2e_load --port P[,P...] --key KEY [--rate R] [--duration S]");
    }
  }
  if (nports == 0 || key == NULL || rate <= 0 || duration <= 0) die("usage: e2e_load --port P[,P...] --key KEY [--rate R] [--duration S]");
  loop = uv_default_loop();
  total = (long)llround(rate * duration);
  for (evs_cap = 1024; evs_cap < (size_t)total * 2; evs_cap *= 2) {
  }
  evs = calloc(evs_cap, sizeof(*evs));
  publish_ms = malloc(sizeof(double) * (size_t)(total > 0 ? total : 1));
  bl_cap = (size_t)total + 1;
  backlog = malloc(sizeof(double) * bl_cap);
  if (evs == NULL || publish_ms == NULL || backlog == NULL) die("out of memory");

  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(loop, &listener);
  if (uv_tcp_bind(&listener, (const struct sockaddr *)&a, 0) != 0 ||
      uv_listen((uv_stream_t *)&listener, 1024, on_accept) != 0)
    die("cannot listen");
  struct sockaddr_in bound;
  int blen = sizeof(bound);
  uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &blen);
  create_webhook(ntohs(bound.sin_port));
  /* The other nodes see the new webhook at their next poll of the store
   * (cluster.poll, 1 s by default). */
  if (nports > 1) usleep(1500 * 1000);

  /* Enough connections, by Little's law, for answers taking up to 25 ms
   * at this rate (4 to 256). */
  nconn = (int)ceil(rate * 0.025);
  if (nconn < 4) nconn = 4;
  if (nconn > 256) nconn = 256;
  conns = calloc((size_t)nconn, sizeof(*conns));
  if (conns == NULL) die("out of memory");
  char body[BODY_BYTES + 1];
  const char *head = "{\"type\":\"user.created\",\"data\":{\"pad\":\"", *tail = "\"}}";
  size_t pad = BODY_BYTES - strlen(head) - strlen(tail);
  snprintf(body, sizeof(body), "%s%*s%s", head, (int)pad, "", tail);
  memset(body + strlen(head), 'x', pad);
  for (int i = 0; i < nconn; i++) {
    pconn_t *c = &conns[i];
    int port = ports[i % nports];
    size_t cap = 512 + BODY_BYTES + strlen(key);
    if ((c->req = malloc(cap)) == NULL) die("out of memory");
    c->req_len = (size_t)snprintf(c->req, cap,
                                  "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                                  port, key, BODY_BYTES, body);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    struct sockaddr_in to;
    uv_ip4_addr("127.0.0.1", port, &to);
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&to, on_connect) != 0) die("cannot connect");
  }
  uv_timer_t ready;
  uv_timer_init(loop, &ready);
  uv_timer_init(loop, &tick_timer);
  uv_timer_init(loop, &wait_timer);
  uv_timer_start(&ready, ready_cb, 1, 1);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
