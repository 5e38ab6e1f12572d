/* subs.h: the subscription index on the loop thread.
 *
 * Which active webhooks get an event of a given type and organization is
 * answered from memory, without a store round trip: the ingest hot path
 * and the route phase both need the answer before the event's store job.
 * The store stays the truth: the index is loaded from it at start and
 * updated after each committed change (create, update, delete, a 410
 * deactivation); the delivery insert re-checks `active` in SQL, so a
 * webhook deactivated in between gets nothing. */
#ifndef HG_SUBS_H
#define HG_SUBS_H

#include "store/db.h"

#include <jansson.h>

typedef struct hg_subs hg_subs_t;

hg_subs_t *hg_subs_new(void);
void hg_subs_free(hg_subs_t *s); /* accepts NULL */

/* Loads every webhook from db (a connection of the caller's thread), and
 * whether any is ordered (store/lines.h). */
int hg_subs_load(hg_subs_t *s, hg_db_t *db);

/* Whether some webhook may be ordered ("fifo"): one was when the index was
 * loaded, or hg_subs_note_ordered was called since. Ingest on PostgreSQL
 * takes FIFO places only then (events.h). */
int hg_subs_any_ordered(const hg_subs_t *s);
void hg_subs_note_ordered(hg_subs_t *s);

/* Adds or replaces webhook id: org (NULL: none), active, and its events as
 * JSON array text. */
int hg_subs_put(hg_subs_t *s, const char *id, const char *org, int active, const char *events_json);

/* Takes src's webhooks into dst (which callers hold on to) and leaves
 * dst's old ones in src, for the caller to free: a full reload (another
 * node changed webhooks, cluster.h). */
void hg_subs_replace(hg_subs_t *dst, hg_subs_t *src);

void hg_subs_del(hg_subs_t *s, const char *id);
void hg_subs_set_active(hg_subs_t *s, const char *id, int active);

/* The ids of the active webhooks that match type (exact, each dotted
 * prefix with ".*", and "*") and may see org ("" for an event without
 * organization: only webhooks without one). A JSON array the caller owns a
 * reference to (json_decref it) but must not change: the index keeps
 * recent answers and hands the same array out again until it changes. */
json_t *hg_subs_match(hg_subs_t *s, const char *type, const char *org);

/* How many of ids (a JSON array) are active webhooks, as the index knows
 * them now. */
int hg_subs_count_active(hg_subs_t *s, json_t *ids);

/* Those of ids (a JSON array) that are active webhooks, as the index knows
 * them now, in their order: a new array the caller owns, or NULL when out
 * of memory. */
json_t *hg_subs_filter_active(hg_subs_t *s, json_t *ids);

#endif
