/* purge.h: deleting old rows in small batches (retention).
 *
 * What goes, for cutoffs given as Unix ms (0: that rule is off):
 *   - a delivery created before deliveries_before, with its attempts;
 *   - an event created before events_before, with all its deliveries and
 *     their attempts;
 * and what never goes:
 *   - a delivery whose status is 'pending' (acknowledged work not done
 *     yet: waiting for an attempt or being sent), however old;
 *   - an event while any delivery of it remains (a pending one, or one
 *     the deliveries rule keeps).
 * Webhooks, their secrets and API keys are never touched.
 *
 * A pass walks the deliveries along their primary key (seq), oldest
 * first, joining each to its event (a primary-key lookup), then the events
 * along theirs; each batch reads at most HG_PURGE_BATCH rows. A walk ends at
 * the end of its table or once it has read HG_PURGE_SLACK rows newer than
 * its cutoff (seq order is creation order up to the blocks of seqs each
 * PostgreSQL connection reserves ahead, so a row older than the cutoff
 * cannot sit further on than that).
 *
 * Events need an index of deliveries by event_seq: deleting an event
 * checks its foreign key from deliveries, and without such an index each
 * check scans the whole deliveries table (SQLite and PostgreSQL alike;
 * ~0.1 s per event at a million deliveries). Schema 8 (SQLite) and 1
 * (PostgreSQL) have none (SQLite's migration 5 dropped it to save ingest
 * a B-tree write per delivery), so without it the events rule is not
 * applied (hg_purge_events_indexed tells) and only deliveries go. Any
 * index whose first column is deliveries.event_seq turns it on. */
#ifndef HG_STORE_PURGE_H
#define HG_STORE_PURGE_H

#include "store/db.h"

#include <stdint.h>

/* Rows read per batch, at most (one store job). */
#define HG_PURGE_BATCH 500

/* The rules of one pass. */
typedef struct hg_purge_rules {
  int64_t events_before;     /* Unix ms; 0: events are kept */
  int64_t deliveries_before; /* Unix ms; 0: deliveries are kept (but go with an old event) */
  int events_indexed;        /* hg_purge_events_indexed's answer: 0 turns the events rule off */
} hg_purge_rules_t;

/* Where a pass is: zero it to start one. */
typedef struct hg_purge_pos {
  int phase;     /* 0: deliveries, 1: events, 2: done */
  int64_t after; /* the last seq read in this phase's table */
  int64_t newer; /* rows read in this phase at or after its cutoff */
} hg_purge_pos_t;

typedef struct hg_purge_counts {
  int64_t events, deliveries, attempts;
} hg_purge_counts_t;

/* 1 when the deliveries table has an index whose first column is
 * event_seq, 0 when not; or a negative HG_E*. */
int hg_purge_events_indexed(hg_db_t *db);

/* PostgreSQL: tries the purge's transaction-level advisory lock (one
 * purger among the nodes sharing the database, until the transaction
 * holding the batch commits): 0 when taken, HG_EBUSY when another
 * session holds it. SQLite: 0 (one writer anyway). */
int hg_purge_lock(hg_db_t *db);

/* Runs one batch of the pass at pos (advanced), adding what it deleted to
 * out. Must run inside a transaction (a store job, or the CLI's BEGIN),
 * which it leaves open. pos->phase is 2 once the pass is done. Returns 0
 * or HG_E*; on failure the caller rolls the batch back and ignores out. */
int hg_purge_batch(hg_db_t *db, const hg_purge_rules_t *rules, hg_purge_pos_t *pos, hg_purge_counts_t *out);

/* The intake log's purge mark (SQLite: store/intake.h). The log keeps
 * the records of events it answered until it reuses their space, which at
 * a low rate may be long after the store had them; a start applies every
 * record whose event the store lacks (hg_events_recover), and so would
 * bring a purged event back, deliveries and all. Before a purge deletes
 * events created before t, it records t in intake_dir/purged-before (a
 * file the log's own code ignores); hg_events_recover skips the records of
 * events created before the mark. A purge must therefore only mark times
 * by which every event the log answered is in the store (retention.h and
 * the CLI see to it).
 *
 * hg_purge_mark writes t unless the mark is later already (durably:
 * written beside, synced, renamed, the directory synced); a missing
 * intake_dir (no log ever) is left alone. Returns 0 or HG_EIO.
 * hg_purge_marked reads it: 0 when there is none. Any thread; blocks. */
int hg_purge_mark(const char *intake_dir, int64_t t);
int64_t hg_purge_marked(const char *intake_dir);

/* The whole pass by hand (`hookgate store purge --before DATE`): opens
 * address (hg_store_open_sync: migrated as a gateway would), and runs
 * batches with both cutoffs at before, each in a transaction of its own
 * (a gateway running on the same store meanwhile waits at most for one),
 * until the pass is done. *events_indexed tells whether events could be
 * purged (see above). Blocks. Returns 0 or HG_E* with err set (never a
 * password); what committed before a failure stays deleted and is
 * counted in out. */
int hg_purge_run(const char *address, int64_t before, hg_purge_counts_t *out, int *events_indexed, char *err,
                 size_t errlen);

/* hg_purge_run keeps events created in the last HG_PURGE_RECENT_MS (and
 * marks no later time): a SQLite gateway running meanwhile may have
 * answered them from its intake log and not stored them yet. */
#define HG_PURGE_RECENT_MS 60000

#endif
