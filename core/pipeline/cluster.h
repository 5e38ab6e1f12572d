/* cluster.h: one node among several sharing a PostgreSQL store.
 *
 * Every poll_ms (cluster.poll) the node looks at the shared state through
 * its store thread: it refreshes its row in hookgate_nodes, takes the
 * database's clock as its own (hg_wall_set_offset), reloads what it keeps
 * in memory when another node changed webhooks, secrets or keys (the
 * change counter), and, when its own queue has nothing due, offers the
 * dispatcher pending deliveries that are overdue with no live lease: work
 * of a node that died or fell behind. The dispatcher claims each delivery
 * before it sends it (hg_deliveries_claim, store/nodes.h), so two nodes never send one at
 * the same time while a lease lasts. docs/scaling.md tells the whole of it.
 *
 * On SQLite there are no other nodes: hg_cluster_start is not called. */
#ifndef HG_CLUSTER_H
#define HG_CLUSTER_H

#include "config/config.h"
#include "pipeline/dispatcher.h"
#include "store/store.h"

#include <uv.h>

typedef struct hg_cluster hg_cluster_t;

typedef struct hg_cluster_opts {
  uv_loop_t *loop;
  hg_store_t *store;
  hg_dispatcher_t *dispatcher;
  const hg_config_t *cfg;
  /* Called on the loop when another node changed webhooks, their secrets
   * or API keys: the caller reloads what it keeps of them. */
  void (*changed)(void *ud);
  void *ud;
} hg_cluster_opts_t;

/* Registers this node, sets the clock offset and starts polling. Blocks
 * the loop thread (runs the loop) until the first look is done: meant for
 * start-up, before anything is served. Warns when other live nodes run
 * another version or other shared settings. Returns 0 or HG_E* with err
 * set; *out is then NULL. */
int hg_cluster_start(hg_cluster_t **out, const hg_cluster_opts_t *opts, char *err, size_t errlen);

/* This node's id (cluster.node_id, or the host name). */
const char *hg_cluster_node_id(const hg_cluster_t *c);

/* Stops polling; the cluster is freed once its timer has closed and its
 * last store job (if one runs) has completed. Accepts NULL. */
void hg_cluster_stop(hg_cluster_t *c);

#endif
