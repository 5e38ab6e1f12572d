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

/* Claims delivery seq for node_id until now + lease_ms, when it is free,
 * its lease has run out, or this node holds it until before keep_until (a
 * lease of this node's that lasts until keep_until or later is left as it
 * is: nothing is written; new deliveries are born leased to the node that
 * accepted them, events.h). A row another session has locked is skipped,
 * and so is one waiting behind another in its webhook's FIFO line
 * (store/lines.h): it is nobody's until it is the head.
 * Deferred (hg_db_defer): its answer is not read. A load of the row that
 * follows in the same transaction (hg_deliveries_load,
 * hg_deliveries_load_many) reads the lease: the row is this node's to send
 * when hg_send_leased(send, node_id, keep_until). Returns 0 or HG_E*. */
int hg_deliveries_claim(hg_db_t *db, int64_t seq, const char *node_id, int64_t now, int64_t lease_ms,
                        int64_t keep_until);

/* As hg_deliveries_claim for the n deliveries seqs, in one statement. */
int hg_deliveries_claim_many(hg_db_t *db, const int64_t *seqs, size_t n, const char *node_id, int64_t now,
                             int64_t lease_ms, int64_t keep_until);

/* Calls cb for up to limit pending deliveries due at or before due_before
 * whose lease is free or has run out at now, earliest first: work another
 * node should have sent and has not (it died, or is behind), of
 * unordered webhooks only (the heads of FIFO lines are found by
 * hg_line_heads, store/lines.h: the rows waiting behind them are never
 * returned, though the scan of the due index still passes over them). A
 * non-zero
 * return from cb stops and is returned. */
int hg_deliveries_orphans(hg_db_t *db, int64_t due_before, int64_t now, int64_t after_due, int64_t after_seq,
                          int limit, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud);

#endif
