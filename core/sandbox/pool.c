/* pool.c: the sandbox's worker processes, seen from the loop (pool.h).
 *
 * Workers start with posix_spawn (glibc's runs the child in the parent's
 * memory until exec: no copy of the gateway's page tables, which fork, and
 * uv_spawn with it, made the loop wait 2-5 ms for at every start) and are
 * watched through a pidfd on the loop: readable when the process ended,
 * then reaped with waitpid. */
#define _GNU_SOURCE
#include "sandbox/pool.h"

#include "base/buf.h"
#include "base/common.h"
#include "base/log.h"
#include "sandbox/wire.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct job {
  struct job *next;
  uint32_t id;
  char org[64];
  hg_wire_out_t frame; /* the request, built at submit */
  hg_lua_delivery_t *d;
  hg_sandbox_done_fn done;
  void *ud;
} job_t;

/* Jobs a worker holds, in the order it runs them: the first is running
 * (or about to), the others wait in its socket. */
#define PIPELINE 256

typedef struct worker {
  hg_sandbox_t *sb; /* NULL once the pool let go of this worker */
  pid_t pid;
  int pidfd;
  uv_poll_t exitpoll; /* the pidfd: readable once the process ended */
  uv_pipe_t pipe;
  uv_timer_t deadline; /* the first job's */
  int open;            /* handles not yet closed */
  int exited, dead;    /* dead: takes no more jobs (killed, or broken) */
  int polled;          /* the deadline passed once: the answer got one poll to arrive */
  int answered;        /* it has answered a job: it is past its start-up */
  job_t *jobs, **jobs_tail;
  unsigned n_jobs;
  uint64_t head_since; /* when the first job became first (its run's start, near enough) */
  char org[64];        /* whose jobs it holds (a worker serves one organization at a time) */
  char *rbuf;
  size_t rlen, rcap;
  size_t slot;
} worker_t;

typedef struct wreq {
  uv_write_t req;
  worker_t *w;
} wreq_t;

/* Jobs each organization has in the pool (queued or in a worker): a small
 * open-addressing table, entries dropped when they reach 0. */
typedef struct org_count {
  char org[64];
  unsigned n;      /* 0: a free slot */
  double job_ms;   /* how long its jobs take to run (moving average) */
} org_count_t;

struct hg_sandbox {
  hg_sandbox_opts_t o;
  worker_t **slots;
  job_t *head, **tail;
  size_t n_queued;
  uint32_t next_id;
  int closing;
  int cancelled;      /* hg_sandbox_cancel ran: no new jobs */
  int spawn_failing;  /* the last start of a worker failed */
  uv_timer_t respawn; /* retries slots whose spawn failed */
  org_count_t *orgs;
  size_t orgs_cap, orgs_used;
  int exe_fd;         /* the binary, opened at start: workers start from it even once its path is gone */
  char exe_path[64];  /* /proc/self/fd/N */
  hg_sandbox_stats_t st;
  char exe[PATH_MAX];
  char **env;
  char arg_states[24], arg_as[24];
};

static void pump(hg_sandbox_t *sb);
static int spawn(hg_sandbox_t *sb, size_t slot);
static void respawn_cb(uv_timer_t *t);
static void deadline_cb(uv_timer_t *t);
static size_t live_workers(const hg_sandbox_t *sb);
static void fail_queued(hg_sandbox_t *sb, int status, const char *err);

static uint64_t org_hash(const char *org) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char *p = (const unsigned char *)org; *p; p++) h = (h ^ *p) * 1099511628211ull;
  return h;
}

static org_count_t *org_slot(hg_sandbox_t *sb, const char *org) {
  size_t mask = sb->orgs_cap - 1, i = (size_t)org_hash(org) & mask;
  while (sb->orgs[i].n != 0 && strcmp(sb->orgs[i].org, org) != 0) i = (i + 1) & mask;
  return &sb->orgs[i];
}

/* Adds delta (+1 or -1) to org's count. -1 if the table cannot grow. */
static int org_add(hg_sandbox_t *sb, const char *org, int delta) {
  if (delta > 0 && (sb->orgs_used + 1) * 2 > sb->orgs_cap) {
    size_t cap = sb->orgs_cap ? sb->orgs_cap * 2 : 64;
    org_count_t *old = sb->orgs, *t = calloc(cap, sizeof(*t));
    if (t == NULL) return -1;
    size_t old_cap = sb->orgs_cap;
    sb->orgs = t;
    sb->orgs_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
      if (old[i].n) *org_slot(sb, old[i].org) = old[i];
    free(old);
  }
  org_count_t *c = org_slot(sb, org);
  if (delta > 0) {
    if (c->n == 0) {
      /* A free slot keeps what its last organization left: start anew. */
      memset(c, 0, sizeof(*c));
      snprintf(c->org, sizeof(c->org), "%s", org);
      sb->orgs_used++;
    }
    c->n++;
    return 0;
  }
  if (c->n == 0) return 0;
  if (--c->n == 0) {
    /* Removal in linear probing: put back the run that follows. */
    sb->orgs_used--;
    size_t mask = sb->orgs_cap - 1, i = (size_t)(c - sb->orgs);
    for (size_t k = (i + 1) & mask; sb->orgs[k].n != 0; k = (k + 1) & mask) {
      org_count_t e = sb->orgs[k];
      sb->orgs[k].n = 0;
      sb->orgs_used--;
      *org_slot(sb, e.org) = e;
      sb->orgs_used++;
    }
  }
  return 0;
}

static unsigned org_jobs(hg_sandbox_t *sb, const char *org) {
  return sb->orgs_cap ? org_slot(sb, org)->n : 0;
}

static void job_free(job_t *j) {
  hg_wire_free(&j->frame);
  free(j);
}

/* --- finishing a job ------------------------------------------------------------ */

static void finish(hg_sandbox_t *sb, job_t *j, int status, const char *err) {
  org_add(sb, j->org, -1);
  j->done(status, j->d, err, j->ud);
  job_free(j);
}

/* A header name: an HTTP token. */
static int is_token(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 32 || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c)) return 0;
  }
  return 1;
}

/* A header value: no control characters but tab. */
static int is_field_value(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 32 && c != '\t') || c == 127) return 0;
  }
  return 1;
}

static char *dup_n(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p == NULL) return NULL;
  if (n) memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

/* Applies an OK answer's result (at r) to d. 0, HG_EINVAL with err set (the
 * result breaks a rule the gateway enforces), HG_ENOMEM, or HG_EIO (the
 * frame is malformed: the worker is not to be trusted further). */
static int apply(hg_wire_in_t *r, hg_lua_delivery_t *d, size_t max_result, char *err, size_t errlen) {
  size_t ul, bl, sl;
  /* url and body: NULL when the script left them as they were. */
  const char *url = hg_wire_get_str(r, &ul);
  const char *body = hg_wire_get_str(r, &bl);
  const char *skip = hg_wire_get_str(r, &sl);
  uint32_t n = hg_wire_get_u32(r);
  if (r->bad || n > 64) return HG_EIO;
  /* What the gateway keeps of a result is bounded like the script's own
   * memory: url and body together within sandbox.memory, headers (below)
   * within 64 KiB. */
  if (ul + bl > max_result) {
    snprintf(err, errlen, "transform: the result (url and body) is over sandbox.memory (%zu bytes)", max_result);
    return HG_EINVAL;
  }
  if (url != NULL && memchr(url, '\0', ul) != NULL) {
    snprintf(err, errlen, "transform: delivery.url contains a NUL byte");
    return HG_EINVAL;
  }
  hg_lua_header_t *h = n ? calloc(n, sizeof(*h)) : NULL;
  if (n && h == NULL) return HG_ENOMEM;
  int rc = 0;
  size_t header_bytes = 0;
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    size_t nl, vl;
    const char *name = hg_wire_get_str(r, &nl);
    const char *value = hg_wire_get_str(r, &vl);
    if (!r->bad && name != NULL && value != NULL) header_bytes += nl + vl + 4;
    if (r->bad || name == NULL || value == NULL) {
      rc = HG_EIO;
    } else if (header_bytes > (64u << 10)) {
      snprintf(err, errlen, "transform: delivery.headers: more than 64 KiB of names and values");
      rc = HG_EINVAL;
    } else if (!is_token(name, nl) || !is_field_value(value, vl)) {
      snprintf(err, errlen, "transform: delivery.headers: a name or value has characters HTTP does not allow");
      rc = HG_EINVAL;
    } else if ((h[i].name = dup_n(name, nl)) == NULL || (h[i].value = dup_n(value, vl)) == NULL) {
      rc = HG_ENOMEM;
    }
  }
  if (rc == 0 && r->off != r->len) rc = HG_EIO;
  char *nurl = NULL, *nbody = NULL, *nskip = NULL;
  if (rc == 0 && ((url != NULL && (nurl = dup_n(url, ul)) == NULL) ||
                  (body != NULL && (nbody = dup_n(body, bl)) == NULL) ||
                  (skip != NULL && (nskip = dup_n(skip, sl)) == NULL)))
    rc = HG_ENOMEM;
  if (rc != 0) {
    for (uint32_t i = 0; i < n; i++) {
      free(h[i].name);
      free(h[i].value);
    }
    free(h);
    free(nurl);
    free(nbody);
    free(nskip);
    return rc;
  }
  /* d's own fields go; the borrowed ones are the caller's. */
  char *old_url = NULL, *old_body = NULL;
  if (nurl != NULL) {
    old_url = d->own_url ? (char *)d->url : NULL;
    d->url = nurl;
    d->own_url = 1;
  }
  if (nbody != NULL) {
    old_body = d->own_body ? (char *)d->body : NULL;
    d->body = nbody;
    d->body_len = bl;
    d->own_body = 1;
  }
  hg_lua_header_t *old_h = d->headers;
  size_t old_n = d->n_headers;
  free(d->skip);
  d->skip = nskip;
  d->headers = h;
  d->n_headers = n;
  free(old_url);
  free(old_body);
  for (size_t i = 0; i < old_n; i++) {
    free(old_h[i].name);
    free(old_h[i].value);
  }
  free(old_h);
  return 0;
}

/* --- a worker's lifetime ---------------------------------------------------------- */

static void worker_close_cb(uv_handle_t *h) {
  worker_t *w = h->data;
  if (--w->open > 0) return;
  if (w->pidfd >= 0) close(w->pidfd);
  free(w->rbuf);
  free(w);
}

/* Stops using w: its handles close (the process is killed first unless it
 * exited) and its slot is empty. A running job is the caller's to finish. */
static void retire(worker_t *w) {
  hg_sandbox_t *sb = w->sb;
  if (sb == NULL) return;
  w->sb = NULL;
  w->dead = 1;
  if (sb->slots[w->slot] == w) sb->slots[w->slot] = NULL;
  uv_close((uv_handle_t *)&w->pipe, worker_close_cb);
  uv_close((uv_handle_t *)&w->deadline, worker_close_cb);
  /* The process is reaped before its handle goes: exit_poll_cb closes it
   * once waitpid has the status (no zombie, and no pid reused under a
   * kill). */
  if (!w->exited) kill(w->pid, SIGKILL);
  else uv_close((uv_handle_t *)&w->exitpoll, worker_close_cb);
}

/* Puts jobs (a chain) back at the front of the queue, in order. */
static void requeue(hg_sandbox_t *sb, job_t *jobs) {
  if (jobs == NULL) return;
  job_t *last = jobs;
  size_t n = 1;
  while (last->next) {
    last = last->next;
    n++;
  }
  last->next = sb->head;
  if (sb->head == NULL) sb->tail = &last->next;
  sb->head = jobs;
  sb->n_queued += n;
}

/* w is done for (killed, dead, or talking nonsense): fails its first job
 * with err (the one it was running), puts the others back in the queue,
 * retires it, and starts a worker in its place. */
static void replace(worker_t *w, const char *err) {
  hg_sandbox_t *sb = w->sb;
  if (sb == NULL) return;
  job_t *j = w->jobs;
  job_t *rest = j ? j->next : NULL;
  w->jobs = NULL;
  w->jobs_tail = &w->jobs;
  w->n_jobs = 0;
  size_t slot = w->slot;
  retire(w);
  if (!sb->closing && !sb->cancelled && spawn(sb, slot) != 0 && !uv_is_active((uv_handle_t *)&sb->respawn))
    uv_timer_start(&sb->respawn, respawn_cb, 1000, 0);
  requeue(sb, rest);
  if (sb->spawn_failing && live_workers(sb) == 0) fail_queued(sb, HG_EBUSY, "transform: no sandbox worker can start");
  if (j) {
    sb->st.jobs_failed++;
    finish(sb, j, HG_EINVAL, err);
  }
  pump(sb);
}

/* A worker's first job waits for the worker to start: exec, the dynamic
 * loader (libpq alone brings a dozen libraries), Lua, the seccomp filter.
 * That is not the script's time, and under a sanitizer it took 100-200 ms,
 * more than budget + grace: the first transform of a new worker was
 * killed. The script's own CPU is still bounded by the worker's hook at
 * the budget; this only delays the backstop for that one job. */
#define STARTUP_ALLOWANCE_MS 1000

/* Arms the watchdog for w's first job (from now: it starts when the one
 * before it was answered). */
static void arm(worker_t *w) {
  w->polled = 0;
  w->head_since = hg_now_ns();
  uint64_t ms = w->sb->o.budget_ms + w->sb->o.grace_ms + (w->answered ? 0 : STARTUP_ALLOWANCE_MS);
  if (w->jobs) uv_timer_start(&w->deadline, deadline_cb, ms, 0);
  else uv_timer_stop(&w->deadline);
}

static void exit_poll_cb(uv_poll_t *h, int status, int events) {
  worker_t *w = h->data;
  (void)status, (void)events;
  int ws = 0;
  pid_t r = waitpid(w->pid, &ws, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return; /* not yet */
  w->exited = 1;
  uv_poll_stop(h);
  if (w->sb == NULL) {
    uv_close((uv_handle_t *)h, worker_close_cb); /* retired before it ended */
    return;
  }
  int sig = r > 0 && WIFSIGNALED(ws) ? WTERMSIG(ws) : 0, code = r > 0 && WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
  if (!w->sb->closing) {
    w->sb->st.worker_exits++;
    char msg[48];
    snprintf(msg, sizeof(msg), "%d", code);
    hg_log(HG_LOG_WARN, "sandbox worker stopped", "status", msg, "signal", sig ? strsignal(sig) : "none", NULL);
  }
  char err[160];
  snprintf(err, sizeof(err), "transform: the sandbox worker running the script stopped (%s %d)",
           sig ? "signal" : "exit status", sig ? sig : code);
  replace(w, err);
}

static void deadline_cb(uv_timer_t *t) {
  worker_t *w = t->data;
  hg_sandbox_t *sb = w->sb;
  if (sb == NULL || w->jobs == NULL) return;
  if (!w->polled) {
    /* Timers run before the loop polls: after a long loop turn the answer
     * may be in the socket already, unread. Give it one poll (a 0 ms timer
     * would fire again in this same pass). */
    w->polled = 1;
    uv_timer_start(&w->deadline, deadline_cb, 1, 0);
    return;
  }
  sb->st.watchdog_kills++;
  char err[256];
  snprintf(err, sizeof(err),
           "transform: CPU budget exceeded: the run used more than %d ms and was stopped by the watchdog "
           "(it could not be interrupted where it was: a pattern match, an error handler or a finalizer)",
           (int)sb->o.budget_ms);
  replace(w, err);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  worker_t *w = h->data;
  (void)suggested;
  size_t want = 64 << 10;
  if (hg_grow(&w->rbuf, &w->rcap, w->rlen + want, 1, want) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(w->rbuf + w->rlen, (unsigned)(w->rcap - w->rlen));
}

/* Handles the complete answer at p (n bytes, no length prefix): it is the
 * first job's. */
static void on_answer(worker_t *w, const char *p, size_t n) {
  hg_sandbox_t *sb = w->sb;
  job_t *j = w->jobs;
  hg_wire_in_t r = {p, n, 0, 0};
  uint32_t id = hg_wire_get_u32(&r);
  uint32_t status = hg_wire_get_u32(&r);
  size_t el;
  const char *e = hg_wire_get_str(&r, &el);
  if (r.bad || j == NULL || id != j->id) {
    replace(w, "transform: the sandbox worker answered out of turn");
    return;
  }
  char err[600];
  int rc;
  if (status == HG_WIRE_OK) {
    rc = apply(&r, j->d, sb->o.memory, err, sizeof(err));
    if (rc == HG_EIO) {
      replace(w, "transform: the sandbox worker sent a malformed answer");
      return;
    }
  } else {
    if (status == HG_WIRE_BUDGET) sb->st.budget_stops++;
    if (e != NULL && el > 0) snprintf(err, sizeof(err), "%.*s", (int)(el < 500 ? el : 500), e);
    else snprintf(err, sizeof(err), "transform: failed");
    rc = HG_EINVAL;
  }
  if (sb->orgs_cap) {
    org_count_t *c = org_slot(sb, j->org);
    double ms = (double)(hg_now_ns() - w->head_since) / 1e6;
    if (c->n) c->job_ms = c->job_ms > 0 ? 0.9 * c->job_ms + 0.1 * ms : ms;
  }
  w->jobs = j->next;
  if (w->jobs == NULL) w->jobs_tail = &w->jobs;
  w->n_jobs--;
  w->answered = 1;
  arm(w);
  if (rc == 0) sb->st.jobs_ok++;
  else sb->st.jobs_failed++;
  finish(sb, j, rc, rc == HG_ENOMEM ? "transform: out of memory reading the result" : err);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  worker_t *w = s->data;
  (void)buf;
  if (w->sb == NULL) return;
  if (nread < 0) {
    /* EOF or an error: the process is gone or going; exit_poll_cb finishes. */
    uv_read_stop(s);
    if (!w->exited) kill(w->pid, SIGKILL);
    w->dead = 1;
    return;
  }
  w->rlen += (size_t)nread;
  size_t off = 0;
  while (w->sb != NULL && w->rlen - off >= 4) {
    uint32_t n;
    memcpy(&n, w->rbuf + off, 4);
    /* An answer holds at most what the script's state could: its url,
     * body and headers, within sandbox.memory. */
    if (n > HG_WIRE_MAX_FRAME || n > w->sb->o.memory + (1u << 20)) {
      replace(w, "transform: the sandbox worker sent a malformed answer");
      return;
    }
    if (w->rlen - off - 4 < n) break;
    on_answer(w, w->rbuf + off + 4, n);
    off += 4 + (size_t)n;
  }
  if (w->sb == NULL) return; /* replaced: w's buffers go with it */
  memmove(w->rbuf, w->rbuf + off, w->rlen - off);
  w->rlen -= off;
  if (w->rlen == 0 && w->rcap > (1u << 20)) {
    /* A big answer's buffer is not kept for the next small ones. */
    free(w->rbuf);
    w->rbuf = NULL;
    w->rcap = 0;
  }
  pump(w->sb);
}

static void write_cb(uv_write_t *req, int status) {
  wreq_t *wr = (wreq_t *)req;
  worker_t *w = wr->w;
  free(wr);
  if (status < 0 && w->sb != NULL) replace(w, "transform: the sandbox worker stopped taking jobs");
  else if (w->sb != NULL) pump(w->sb);
}

/* fd moved above the standard ones (a gateway started with fd 0 closed
 * would hand them out), close-on-exec. */
static int above_stdio(int fd) {
  if (fd > 2) return fd;
  int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return n;
}

static int spawn(hg_sandbox_t *sb, size_t slot) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    hg_log(HG_LOG_ERROR, "cannot start a sandbox worker", "error", strerror(errno), NULL);
    return HG_EIO;
  }
  sv[0] = above_stdio(sv[0]);
  sv[1] = above_stdio(sv[1]);
  char *args[] = {sb->exe, "sandbox-worker", "--states", sb->arg_states, "--address-space", sb->arg_as, NULL};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&at);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 0); /* the child's end on fd 0, without close-on-exec */
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGPIPE);
  sigaddset(&dflt, SIGCHLD);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &dflt);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  uint64_t t0 = hg_now_ns();
  int r = sv[0] < 0 || sv[1] < 0 ? EMFILE
                                  : posix_spawn(&pid, sb->exe_fd >= 0 ? sb->exe_path : sb->exe, &fa, &at, args, sb->env);
  sb->st.spawn_ns += hg_now_ns() - t0;
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (sv[1] >= 0) close(sv[1]);
  int pidfd = r == 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
  worker_t *w = r == 0 && pidfd >= 0 ? calloc(1, sizeof(*w)) : NULL;
  if (w == NULL) {
    hg_log(HG_LOG_ERROR, "cannot start a sandbox worker", "error", strerror(r ? r : errno), NULL);
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
    }
    if (pidfd >= 0) close(pidfd);
    if (sv[0] >= 0) close(sv[0]);
    sb->spawn_failing = 1;
    return HG_EIO;
  }
  sb->spawn_failing = 0;
  w->sb = sb;
  w->slot = slot;
  w->pid = pid;
  w->pidfd = pidfd;
  uv_pipe_init(sb->o.loop, &w->pipe, 0);
  uv_pipe_open(&w->pipe, sv[0]);
  uv_timer_init(sb->o.loop, &w->deadline);
  uv_poll_init(sb->o.loop, &w->exitpoll, pidfd);
  w->pipe.data = w->deadline.data = w->exitpoll.data = w;
  w->jobs_tail = &w->jobs;
  w->open = 3;
  uv_poll_start(&w->exitpoll, UV_READABLE, exit_poll_cb);
  uv_read_start((uv_stream_t *)&w->pipe, alloc_cb, read_cb);
  sb->slots[slot] = w;
  sb->st.spawns++;
  return 0;
}

static void respawn_cb(uv_timer_t *t) {
  hg_sandbox_t *sb = t->data;
  int failed = 0;
  for (size_t i = 0; i < sb->o.workers && !sb->closing; i++)
    if (sb->slots[i] == NULL && spawn(sb, i) != 0) failed = 1;
  if (failed) uv_timer_start(&sb->respawn, respawn_cb, 1000, 0);
  if (failed && live_workers(sb) == 0) fail_queued(sb, HG_EBUSY, "transform: no sandbox worker can start");
  pump(sb);
}

/* --- jobs --------------------------------------------------------------------------- */

static size_t live_workers(const hg_sandbox_t *sb) {
  size_t n = 0;
  for (size_t i = 0; i < sb->o.workers; i++)
    if (sb->slots[i] != NULL && !sb->slots[i]->dead) n++;
  return n;
}

/* Fails every queued job with status (their deliveries wait outside). */
static void fail_queued(hg_sandbox_t *sb, int status, const char *err) {
  job_t *j = sb->head;
  sb->head = NULL;
  sb->tail = &sb->head;
  sb->n_queued = 0;
  while (j) {
    job_t *next = j->next;
    finish(sb, j, status, err);
    j = next;
  }
}

/* How many workers hold jobs of org now. */
static unsigned workers_for(const hg_sandbox_t *sb, const char *org) {
  unsigned n = 0;
  for (size_t i = 0; i < sb->o.workers; i++) {
    worker_t *w = sb->slots[i];
    if (w && w->n_jobs && strcmp(w->org, org) == 0) n++;
  }
  return n;
}

/* Moves queued jobs of org (all of them, up to w's room) to w, in order,
 * and writes them in one go. */
static void feed(hg_sandbox_t *sb, worker_t *w) {
  uv_buf_t bufs[PIPELINE];
  unsigned nb = 0;
  job_t **pp = &sb->head, *j;
  while ((j = *pp) != NULL && w->n_jobs < PIPELINE) {
    if (strcmp(j->org, w->org) != 0) {
      pp = &j->next;
      continue;
    }
    *pp = j->next;
    if (sb->tail == &j->next) sb->tail = pp;
    sb->n_queued--;
    j->next = NULL;
    *w->jobs_tail = j;
    w->jobs_tail = &j->next;
    if (w->n_jobs++ == 0) arm(w);
    bufs[nb++] = uv_buf_init(j->frame.p, (unsigned)j->frame.len);
  }
  if (nb == 0) return;
  wreq_t *wr = malloc(sizeof(*wr));
  if (wr == NULL) {
    replace(w, "transform: out of memory");
    return;
  }
  wr->w = w;
  /* The frames stay with their jobs: a job is answered (and freed) only
   * after the worker read all of it, and a replaced worker's jobs go back
   * to the queue, frames and all. */
  if (uv_write(&wr->req, (uv_stream_t *)&w->pipe, bufs, nb, write_cb) != 0) {
    free(wr);
    replace(w, "transform: the sandbox worker stopped taking jobs");
  }
}

/* Hands queued jobs to workers: a worker serves one organization at a time
 * (up to PIPELINE of its jobs in flight), and an organization gets at most
 * half the workers (at least one). */
static void pump(hg_sandbox_t *sb) {
  unsigned per_org = sb->o.workers / 2 ? sb->o.workers / 2 : 1;
  for (size_t i = 0; i < sb->o.workers && sb->head; i++) {
    worker_t *w = sb->slots[i];
    if (w == NULL || w->dead) continue;
    if (w->n_jobs == 0) {
      /* The oldest job whose organization is under its share. */
      job_t *j = sb->head;
      while (j != NULL && workers_for(sb, j->org) >= per_org) j = j->next;
      if (j == NULL) continue;
      snprintf(w->org, sizeof(w->org), "%s", j->org);
    }
    feed(sb, w);
    if (sb->slots[i] != w) return; /* replaced: replace pumped */
  }
}

int hg_sandbox_transform(hg_sandbox_t *sb, const char *key, const char *org, const char *code,
                         hg_lua_delivery_t *d, hg_sandbox_done_fn done, void *ud, uint64_t *retry_ms) {
  if (sb->closing || sb->cancelled) return HG_ESTATE;
  if (sb->n_queued >= sb->o.max_queue) return HG_EBUSY;
  /* No worker and none can start: the delivery waits outside (its slot in
   * the dispatcher freed) rather than in a queue nothing serves. */
  if (sb->spawn_failing && live_workers(sb) == 0) return HG_EBUSY;
  /* One organization's backlog waits outside too, past its share. */
  char o[64];
  snprintf(o, sizeof(o), "%s", org ? org : "");
  unsigned mine = org_jobs(sb, o);
  if (mine >= sb->o.max_per_org) {
    if (retry_ms) {
      /* Long enough for the jobs in to run, on the workers it may use. */
      double per = org_slot(sb, o)->job_ms;
      unsigned share = sb->o.workers / 2 ? sb->o.workers / 2 : 1;
      double ms = (per > 0 ? per : 0.05) * mine / share; /* unknown yet: 50 us a job */
      *retry_ms = ms < 5 ? 5 : ms > 5000 ? 5000 : (uint64_t)ms;
    }
    return HG_EBUSY;
  }
  job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) return HG_ENOMEM;
  if (org_add(sb, o, +1) != 0) {
    free(j);
    return HG_ENOMEM;
  }
  j->id = ++sb->next_id;
  memcpy(j->org, o, sizeof(j->org));
  j->d = d;
  j->done = done;
  j->ud = ud;
  hg_wire_out_t *w = &j->frame;
  size_t need = 128 + strlen(key) + strlen(code) + strlen(d->url) + d->body_len + 4 * 8;
  for (size_t i = 0; i < d->n_headers; i++) need += 8 + strlen(d->headers[i].name) + strlen(d->headers[i].value);
  hg_wire_begin_sized(w, need);
  hg_wire_u32(w, HG_WIRE_JOB_TRANSFORM);
  hg_wire_u32(w, j->id);
  hg_wire_u32(w, (uint32_t)sb->o.budget_ms);
  hg_wire_u32(w, (uint32_t)(sb->o.memory >> 10));
  hg_wire_cstr(w, key);
  hg_wire_cstr(w, code);
  hg_wire_cstr(w, d->id);
  hg_wire_cstr(w, d->webhook_id);
  hg_wire_cstr(w, d->event_id);
  hg_wire_cstr(w, d->event_type);
  hg_wire_cstr(w, d->url);
  hg_wire_str(w, d->body, d->body_len);
  hg_wire_u32(w, (uint32_t)d->attempt);
  hg_wire_u32(w, (uint32_t)d->n_headers);
  for (size_t i = 0; i < d->n_headers; i++) {
    hg_wire_cstr(w, d->headers[i].name);
    hg_wire_cstr(w, d->headers[i].value);
  }
  hg_wire_cstr(w, d->skip);
  if (hg_wire_finish(w) != 0) {
    org_add(sb, j->org, -1);
    free(j);
    return HG_ENOMEM;
  }
  j->next = NULL;
  *sb->tail = j;
  sb->tail = &j->next;
  sb->n_queued++;
  pump(sb);
  return 0;
}

/* --- the pool ----------------------------------------------------------------------- */

int hg_sandbox_new(hg_sandbox_t **out, const hg_sandbox_opts_t *opts, char *err, size_t errlen) {
  *out = NULL;
  hg_sandbox_t *sb = calloc(1, sizeof(*sb));
  if (sb == NULL) return HG_ENOMEM;
  sb->o = *opts;
  if (sb->o.workers < 1) sb->o.workers = 1;
  if (sb->o.states < 1) sb->o.states = 1;
  if (sb->o.max_queue < 1) sb->o.max_queue = 1;
  sb->tail = &sb->head;
  if (sb->o.max_per_org < 1) sb->o.max_per_org = 1;
  size_t exe_len = sizeof(sb->exe);
  int r = uv_exepath(sb->exe, &exe_len);
  /* Workers start from this descriptor: replacing or deleting the binary
   * (a package upgrade) does not stop them from starting. */
  sb->exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (sb->exe_fd >= 0) snprintf(sb->exe_path, sizeof(sb->exe_path), "/proc/self/fd/%d", sb->exe_fd);
  sb->slots = calloc(sb->o.workers, sizeof(*sb->slots));
  /* Only the sanitizers' settings pass: the gateway's environment holds
   * its admin key and store address, which tenant code has no business
   * near, even through a bug. */
  size_t n = 0;
  for (char **e = environ; *e; e++) n++;
  sb->env = calloc(n + 1, sizeof(char *));
  if (sb->slots == NULL || sb->env == NULL || r != 0) {
    snprintf(err, errlen, "sandbox: %s", r != 0 ? uv_strerror(r) : "out of memory");
    free(sb->slots);
    free(sb->env);
    if (sb->exe_fd >= 0) close(sb->exe_fd);
    free(sb);
    return r != 0 ? HG_EIO : HG_ENOMEM;
  }
  n = 0;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, "ASAN_", 5) == 0 || strncmp(*e, "UBSAN_", 6) == 0 || strncmp(*e, "LSAN_", 5) == 0)
      sb->env[n++] = *e;
  snprintf(sb->arg_states, sizeof(sb->arg_states), "%u", sb->o.states);
  /* Room for every state at its limit, and the worker's own needs. */
  unsigned long long as = (unsigned long long)sb->o.states * sb->o.memory + (512ull << 20);
  snprintf(sb->arg_as, sizeof(sb->arg_as), "%llu", as);
  uv_timer_init(sb->o.loop, &sb->respawn);
  sb->respawn.data = sb;
  for (size_t i = 0; i < sb->o.workers; i++) {
    if (spawn(sb, i) != 0) {
      snprintf(err, errlen, "sandbox: cannot start worker processes from %s", sb->exe);
      hg_sandbox_free(sb);
      return HG_EIO;
    }
  }
  *out = sb;
  return 0;
}

static void pool_close_cb(uv_handle_t *h) {
  hg_sandbox_t *sb = h->data;
  if (sb->exe_fd >= 0) close(sb->exe_fd);
  free(sb->orgs);
  free(sb->slots);
  free(sb->env);
  free(sb);
}

void hg_sandbox_free(hg_sandbox_t *sb) {
  if (sb == NULL) return;
  sb->closing = 1;
  for (size_t i = 0; i < sb->o.workers; i++) {
    worker_t *w = sb->slots[i];
    if (w == NULL) continue;
    job_t *j = w->jobs;
    w->jobs = NULL;
    retire(w);
    while (j) {
      job_t *next = j->next;
      job_free(j);
      j = next;
    }
  }
  while (sb->head) {
    job_t *j = sb->head;
    sb->head = j->next;
    job_free(j);
  }
  uv_close((uv_handle_t *)&sb->respawn, pool_close_cb);
}

void hg_sandbox_cancel(hg_sandbox_t *sb) {
  if (sb == NULL || sb->cancelled) return;
  sb->cancelled = 1;
  uv_timer_stop(&sb->respawn);
  fail_queued(sb, HG_ECLOSED, "transform: the gateway is stopping");
  for (size_t i = 0; i < sb->o.workers; i++) {
    worker_t *w = sb->slots[i];
    if (w == NULL || w->n_jobs == 0) continue;
    /* Its jobs back to the queue, then failed like the others. */
    job_t *jobs = w->jobs;
    w->jobs = NULL;
    w->jobs_tail = &w->jobs;
    w->n_jobs = 0;
    retire(w);
    requeue(sb, jobs);
    fail_queued(sb, HG_ECLOSED, "transform: the gateway is stopping");
  }
}

void hg_sandbox_stats(const hg_sandbox_t *sb, hg_sandbox_stats_t *out) {
  *out = sb->st;
  out->queued = sb->n_queued;
  out->running = out->workers = 0;
  for (size_t i = 0; i < sb->o.workers; i++) {
    worker_t *w = sb->slots[i];
    if (w == NULL || w->dead) continue;
    out->workers++;
    out->running += w->n_jobs;
  }
}
