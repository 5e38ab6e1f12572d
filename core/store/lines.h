/* lines.h: a webhook's FIFO line in the store (ordering "fifo",
 * docs/api.md#ordering).
 *
 * A webhook is ordered while it has a row in webhook_lines; that row's
 * `next` is the number the last delivery to join its line took. A
 * delivery joins the line when it becomes pending (a new event's, a
 * replay's of an ended one, a recovery's) and takes the next number; its
 * `line` column holds it while it is pending (NULL for every delivery of
 * an unordered webhook). The line's head is its pending delivery with the
 * lowest number, and only the head may be sent: the dispatcher asks at
 * each load (HG_LINE_WAITING below), so the rule holds whatever each
 * node keeps in memory, after restarts and on every node of a shared
 * PostgreSQL store.
 *
 * Numbers are taken under the webhook_lines row's lock (an UPDATE), held
 * until the transaction commits: on PostgreSQL two nodes storing events
 * for one ordered webhook at once take their numbers in the order they
 * commit, so a delivery never becomes visible behind a higher number that
 * may already have been sent. On SQLite there is one writer anyway.
 *
 * Store thread only (inside a store job), like the rest of store/. */
#ifndef HG_LINES_H
#define HG_LINES_H

#include "store/db.h"

#include <stdint.h>

/* SQL: true when the row aliased a (a deliveries row with its webhook_id
 * and line) waits behind another pending delivery of its line. The
 * partial index deliveries_line serves it. */
#define HG_LINE_WAITING(a)                                                                                       \
  "(" a ".line IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries o WHERE o.webhook_id = " a ".webhook_id AND " \
  "o.line IS NOT NULL AND o.status = 'pending' AND o.line < " a ".line))"

/* Takes n numbers (n >= 1) at the end of webhook wh's line: *first is the
 * lowest (the others follow it). HG_ENOTFOUND when wh is not ordered (or
 * gone), with *first 0. Returns 0 or HG_E*. */
int hg_line_take(hg_db_t *db, const char *wh, int64_t n, int64_t *first);

/* Makes webhook wh ordered (on 1) or not (on 0); nothing when it is so
 * already. Made ordered, its pending deliveries join the line in the
 * order they were created. Made unordered, its line ends: each delivery
 * that waited in it is passed to released(seq, due, ud) (due: its
 * next_attempt_at, 0 for none), to be sent as any other; released may be
 * NULL. Returns 0 or HG_E* (released's own non-zero return stops it and
 * is returned). */
int hg_line_set(hg_db_t *db, const char *wh, int on,
                int (*released)(int64_t seq, int64_t due, void *ud), void *ud);

/* The head of webhook wh's line: its seq and due time (0: none set).
 * HG_ENOTFOUND when nothing is pending in it. */
int hg_line_head(hg_db_t *db, const char *wh, int64_t *seq, int64_t *due);

/* Calls cb(seq, due, ud) for the head of every ordered webhook's line that
 * may be sent at now: due by then, and on PostgreSQL not under another
 * node's live lease. One index probe per ordered webhook (PostgreSQL: in
 * one statement). A non-zero
 * return from cb stops and is returned. */
int hg_line_heads(hg_db_t *db, int64_t now, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud);

#endif
