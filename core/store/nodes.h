/* nodes.h: what the nodes sharing one PostgreSQL store keep in it about
 * each other and about who sends which delivery (store thread only;
 * PostgreSQL only: schema_pg.c's hookgate_nodes, hookgate_changes and the
 * lease columns of deliveries). docs/scaling.md tells the whole design. */
#ifndef HG_NODES_H
#define HG_NODES_H

#include "store/db.h"

#include <stddef.h>
#include <stdint.h>

/* Takes (or confirms) this connection's hold on node_id: 0, or HG_EEXIST
 * when another live process holds it (two gateways under one id would
 * take each other's leases for their own). */
int hg_nodes_lock(hg_db_t *db, const char *node_id);

/* Writes this node's row (its version and the settings that must agree
 * across nodes, as text) and reports in differs (cap bytes, "" when none)
 * the ids of the other nodes seen in the last seen_within_ms whose version
 * or settings are not the same, comma-separated. Returns 0 or HG_E*. */
int hg_nodes_register(hg_db_t *db, const char *node_id, const char *version, const char *settings, int64_t now,
                      int64_t seen_within_ms, char *differs, size_t cap);

/* One look at the shared state: refreshes this node's seen_at, and reads
 * the change counter (bumped by every change to webhooks, their secrets
 * and API keys) and the database's clock (Unix ms). */
int hg_nodes_poll(hg_db_t *db, const char *node_id, int64_t now, int64_t *changes, int64_t *db_now_ms);

/* Ends every lease node_id holds on a pending delivery (a clean stop:
 * what it was sending goes to the other nodes at once). */
int hg_nodes_release(hg_db_t *db, const char *node_id);

/* Claims delivery seq for node_id until now + lease_ms: 1 when claimed
 * (it was free, its lease had run out, or this node held it already), 0
 * when another node holds it or the row is gone. */
int hg_deliveries_claim(hg_db_t *db, int64_t seq, const char *node_id, int64_t now, int64_t lease_ms);

/* Claims the n deliveries seqs for node_id until now + lease_ms, in one
 * statement: claimed[i] (n bytes) is 1 when seqs[i] is now this node's
 * (its lease was free, had run out, or was this node's already), 0 when
 * another node holds it or the row is gone. Returns 0 or HG_E*. */
int hg_deliveries_claim_many(hg_db_t *db, const int64_t *seqs, size_t n, const char *node_id, int64_t now,
                             int64_t lease_ms, unsigned char *claimed);

/* Calls cb for up to limit pending deliveries due at or before due_before
 * whose lease is free or has run out at now, earliest first: work another
 * node should have sent and has not (it died, or is behind). A non-zero
 * return from cb stops and is returned. */
int hg_deliveries_orphans(hg_db_t *db, int64_t due_before, int64_t now, int limit,
                          int (*cb)(int64_t seq, int64_t due, void *ud), void *ud);

#endif
