/* cluster.c: one node among several sharing a PostgreSQL store (cluster.h).
 *
 * One timer, one store job at a time: a look that has not come back yet is
 * never doubled by the next tick. Orphaned work is looked for only while
 * the node's own queue has nothing due, so a busy node takes on no one
 * else's backlog and the same overdue rows are not offered again while
 * they wait in its heap. */
#include "pipeline/cluster.h"

#include <unistd.h>

#include "base/common.h"
#include "base/crypto.h"
#include "base/log.h"
#include "store/nodes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Work is another node's to send until it is this late: a live node sends
 * what it created within milliseconds, so past this it is behind or gone. */
#define ORPHAN_GRACE_MS 2000
#define ORPHAN_BATCH 512
/* Nodes not seen for this long are not compared at start. */
#define NODE_SEEN_MS 120000

struct hg_cluster {
  hg_cluster_opts_t o;
  uv_timer_t timer;
  char node_id[128];
  char *settings; /* JSON text of what must agree across nodes */
  int64_t changes;  /* the counter as last seen; -1 before the first look */
  int in_job;       /* a look is out */
  int releasing;    /* the release job is out (hg_cluster_stop) */
  int stopping;
  int closed;       /* the timer's close callback ran */
  int first_done, first_status;
  /* Filled on the store thread by the job, read on the loop in done. */
  int64_t seen_changes, db_now, local_mid;
  int want_orphans;
  /* Where the next look for orphans starts, after (due, seq): the rows
   * looked at go by in order, so rows a node keeps skipping (a webhook's
   * held backlog, under its rateLimit) cannot hide the ones behind them. */
  int64_t after_due, after_seq;
  int64_t *seqs, *dues;
  size_t n;
  char differs[512];
  int registering;
};

const char *hg_cluster_node_id(const hg_cluster_t *c) { return c->node_id; }

static void maybe_free(hg_cluster_t *c) {
  if (!c->stopping || !c->closed || c->in_job || c->releasing) return;
  free(c->settings);
  free(c->seqs);
  free(c->dues);
  free(c);
}

static int orphan_row(int64_t seq, int64_t due, void *ud) {
  hg_cluster_t *c = ud;
  c->seqs[c->n] = seq;
  c->dues[c->n++] = due;
  return 0;
}

/* Store thread. */
static int look_work(hg_db_t *db, void *ud) {
  hg_cluster_t *c = ud;
  int64_t t0 = hg_wall_ms();
  int r;
  if ((r = hg_nodes_lock(db, c->node_id)) != 0) return r;
  if (c->registering) {
    r = hg_nodes_register(db, c->node_id, HG_VERSION, c->settings, t0, NODE_SEEN_MS, c->differs, sizeof(c->differs));
    if (r != 0) return r;
  }
  if ((r = hg_nodes_poll(db, c->node_id, t0, &c->seen_changes, &c->db_now)) != 0) return r;
  int64_t t1 = hg_wall_ms();
  /* This machine's own clock at the middle of the round trip (the offset
   * changes only in look_done, on the loop, while no look is out). */
  c->local_mid = t0 + (t1 - t0) / 2 - hg_wall_offset();
  c->n = 0;
  if (c->want_orphans)
    r = hg_deliveries_orphans(db, c->db_now - ORPHAN_GRACE_MS, c->db_now, c->after_due, c->after_seq, ORPHAN_BATCH,
                              orphan_row, c);
  return r;
}

static void look_done(int status, void *ud) {
  hg_cluster_t *c = ud;
  int registering = c->registering;
  c->in_job = 0;
  if (registering) {
    c->registering = 0;
    c->first_done = 1;
    c->first_status = status;
    if (status == 0 && c->differs[0] != '\0')
      hg_log(HG_LOG_WARN,
             "other nodes on this store run another version or other shared settings (delivery schedule, "
             "timeouts, lease, event types): they should be the same on every node",
             "nodes", c->differs, NULL);
  }
  if (status == 0 && !c->stopping) {
    /* The database's clock becomes this node's: hg_wall_ms adds the
     * difference (measured at the middle of the round trip). */
    hg_wall_set_offset(c->db_now - c->local_mid);
    if (c->changes >= 0 && c->seen_changes != c->changes && c->o.changed) c->o.changed(c->o.ud);
    c->changes = c->seen_changes;
    if (c->want_orphans) {
      /* A full page: the next look goes on after it; else from the start. */
      c->after_due = c->n == ORPHAN_BATCH ? c->dues[c->n - 1] : INT64_MIN;
      c->after_seq = c->n == ORPHAN_BATCH ? c->seqs[c->n - 1] : 0;
    }
    if (c->n > 0) hg_dispatcher_offer(c->o.dispatcher, c->seqs, c->dues, c->n);
  } else if (status == HG_EEXIST && !c->stopping && !registering) {
    hg_log(HG_LOG_ERROR, "cluster: another running gateway uses this node id on this store: set cluster.node_id",
           "node", c->node_id, NULL);
  } else if (status != 0 && status != HG_EUNAVAIL && !c->stopping && !registering) {
    hg_log(HG_LOG_WARN, "cluster: cannot look at the shared state", "error", hg_strerror(status), NULL);
  }
  maybe_free(c);
}

static void look(hg_cluster_t *c) {
  if (c->in_job || c->stopping) return;
  c->want_orphans = !hg_dispatcher_has_due(c->o.dispatcher, hg_wall_ms());
  if (hg_store_submit(c->o.store, look_work, look_done, c) == 0) c->in_job = 1;
}

static void tick(uv_timer_t *t) { look(t->data); }

static void timer_closed(uv_handle_t *h) {
  hg_cluster_t *c = h->data;
  c->closed = 1;
  maybe_free(c);
}

/* What must be the same on every node, as one JSON text: two nodes that
 * schedule retries or lease deliveries differently behave differently
 * for the same delivery depending on who holds it. */
static char *shared_settings(const hg_config_t *cfg) {
  json_t *o = json_object(), *sched = json_array(), *types = json_array();
  for (size_t i = 0; i < cfg->n_schedule; i++) json_array_append_new(sched, json_real(cfg->schedule[i]));
  for (size_t i = 0; i < cfg->event_types.n; i++) json_array_append_new(types, json_string(cfg->event_types.items[i]));
  json_object_set_new(o, "schedule", sched);
  json_object_set_new(o, "event_types", types);
  json_object_set_new(o, "jitter", json_real(cfg->jitter));
  json_object_set_new(o, "timeout_ms", json_integer((json_int_t)cfg->request_timeout_ms));
  json_object_set_new(o, "lease_ms", json_integer((json_int_t)cfg->lease_ms));
  json_object_set_new(o, "allow_http", json_boolean(cfg->allow_http_urls));
  json_object_set_new(o, "max_event_data", json_integer((json_int_t)cfg->max_event_data));
  /* Which attempt disables a failing webhook must not depend on the node
   * that records it. */
  json_object_set_new(o, "disable_after", json_pack("{s:I,s:I}", "exhausted", (json_int_t)cfg->disable_after_exhausted,
                                                    "failing_for_ms", (json_int_t)cfg->disable_after_failing_ms));
  char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
  json_decref(o);
  return s;
}

int hg_cluster_start(hg_cluster_t **out, const hg_cluster_opts_t *opts, char *err, size_t errlen) {
  *out = NULL;
  hg_cluster_t *c = calloc(1, sizeof(*c));
  if (c == NULL || (c->seqs = malloc(ORPHAN_BATCH * sizeof(int64_t))) == NULL ||
      (c->dues = malloc(ORPHAN_BATCH * sizeof(int64_t))) == NULL || (c->settings = shared_settings(opts->cfg)) == NULL) {
    if (c != NULL) {
      free(c->seqs);
      free(c->dues);
      free(c);
    }
    hg_set_err(err, errlen, "out of memory");
    return HG_ENOMEM;
  }
  c->o = *opts;
  c->changes = -1;
  c->after_due = INT64_MIN;
  if (opts->cfg->node_id != NULL) {
    hg_copy(c->node_id, sizeof(c->node_id), opts->cfg->node_id);
  } else {
    /* The host name: the same node after a restart, which takes its own
     * leases back at once (hg_nodes_lock keeps two live ones apart). */
    char host[64] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') hg_copy(host, sizeof(host), "node");
    host[sizeof(host) - 1] = '\0';
    hg_copy(c->node_id, sizeof(c->node_id), host);
  }
  int r = hg_dispatcher_set_node(opts->dispatcher, c->node_id, (int64_t)opts->cfg->lease_ms);
  uv_timer_init(opts->loop, &c->timer);
  c->timer.data = c;
  c->registering = 1;
  c->want_orphans = 0; /* the dispatcher's start loads every pending row */
  if (r == 0 && (r = hg_store_submit(opts->store, look_work, look_done, c)) == 0) {
    c->in_job = 1;
    while (!c->first_done) uv_run(opts->loop, UV_RUN_ONCE);
    r = c->first_status;
  }
  if (r != 0) c->first_done = 0; /* the leases under this id are not this process's to hand back */
  if (r == HG_EEXIST) {
    hg_set_err(err, errlen,
               "node id \"%s\" is in use by another running gateway on this store: give each node its own "
               "cluster.node_id",
               c->node_id);
    hg_cluster_stop(c);
    return r;
  }
  if (r != 0) {
    hg_set_err(err, errlen, "cannot register this node in the store: %s", hg_strerror(r));
    hg_cluster_stop(c);
    return r;
  }
  uv_timer_start(&c->timer, tick, opts->cfg->poll_ms, opts->cfg->poll_ms);
  hg_log(HG_LOG_INFO, "cluster: this node shares the store", "node", c->node_id, NULL);
  *out = c;
  return 0;
}

static int release_work(hg_db_t *db, void *ud) {
  hg_cluster_t *c = ud;
  return hg_nodes_release(db, c->node_id);
}

static void release_done(int status, void *ud) {
  hg_cluster_t *c = ud;
  c->releasing = 0;
  if (status != 0 && status != HG_EUNAVAIL)
    hg_log(HG_LOG_WARN, "cluster: cannot hand this node's leases back", "error", hg_strerror(status), NULL);
  maybe_free(c);
}

void hg_cluster_stop(hg_cluster_t *c) {
  if (c == NULL || c->stopping) return;
  c->stopping = 1;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, timer_closed);
  /* A clean stop hands its leases back: the deliveries it was sending
   * were cancelled, not recorded, and the other nodes may take them at
   * once instead of after cluster.lease. */
  if (c->first_done && hg_store_submit(c->o.store, release_work, release_done, c) == 0) c->releasing = 1;
}
