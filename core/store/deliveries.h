/* deliveries.h: deliveries and attempts in the store (store thread only). */
#ifndef HG_DELIVERIES_H
#define HG_DELIVERIES_H

#include "store/events.h"
#include "base/ids.h"
#include "base/sign.h"
#include "store/db.h"
#include "store/webhooks.h"

#include <stdint.h>

/* skipped: a plugin decided this webhook does not get this event (a
 * payload filter, say); final, nothing was sent, the reason is logged as
 * an attempt's error. */
typedef enum { HG_DEL_PENDING = 0, HG_DEL_SUCCESS = 1, HG_DEL_FAILED = 2, HG_DEL_SKIPPED = 3 } hg_delivery_status_t;

const char *hg_delivery_status_name(hg_delivery_status_t s);
int hg_delivery_status_parse(const char *s, hg_delivery_status_t *out); /* 0 or HG_EINVAL */

/* What the dispatcher needs to send one delivery. */
typedef struct hg_send {
  int64_t seq;
  char id[HG_ID_MAX];
  char webhook_id[HG_ID_MAX];
  char event_id[HG_EVENT_ID_MAX];
  hg_delivery_status_t status;
  int attempts;             /* made so far */
  int64_t next_attempt_at;  /* 0: none */
  int64_t created_at;       /* Unix ms: when the event was accepted */
  int webhook_active;
  char event_type[132];
  char *url;                /* malloc'd */
  char *lua;                /* the webhook's Lua bindings (JSON text) or NULL; malloc'd */
  char org[132];            /* the webhook's organization, or "" (truncated past 131 bytes) */
  /* The webhook's own disable rule (-1 each: the gateway's) and its streak
   * of exhausted deliveries when loaded (store/health.h). */
  int64_t disable_after_exhausted, disable_after_failing_ms;
  int64_t health_exhausted;
  /* The webhook's flow limits (store/webhooks.h): 0 each, none. */
  int64_t rate_limit_milli, max_concurrency;
  /* Its place in its webhook's FIFO line (store/lines.h), 0: none (the
   * webhook is unordered); waiting: another pending delivery is ahead of
   * it, so it may not be sent now (a replay or test send aside). */
  int64_t line;
  int waiting;
  char *payload;            /* malloc'd */
  size_t payload_len;
  char secrets[HG_MAX_SECRETS][HG_SECRET_MAX];
  size_t n_secrets;
  /* Set by the dispatcher when the request goes out: the headers it
   * carried as a JSON object text, for the attempt's record (see
   * hg_attempt_rec_t.request_headers); NULL until then. malloc'd. */
  char *request_headers;
  /* PostgreSQL: the row's lease as loaded ("" and 0 when free; SQLite
   * keeps none). */
  char lease_owner[128];
  int64_t lease_until;
} hg_send_t;

/* Whether s, as loaded, is leased to node_id until at least until. */
int hg_send_leased(const hg_send_t *s, const char *node_id, int64_t until);

void hg_send_close(hg_send_t *s); /* frees url, payload, lua and request_headers; wipes secrets */

/* Loads delivery seq for sending, with the secrets valid at now.
 * HG_ENOTFOUND if it is gone. prev (may be NULL) is a delivery loaded just
 * before in the same transaction with the same now: when it is of the same
 * webhook its secrets are copied instead of read again. */
int hg_deliveries_load(hg_db_t *db, int64_t seq, int64_t now, hg_send_t *out, const hg_send_t *prev);

/* PostgreSQL (where a round trip costs more than the work): loads the n
 * deliveries seqs in two statements or so (their rows, then each
 * webhook's secrets once), into outs[i], with status[i] each one's result
 * as hg_deliveries_load's (HG_ENOTFOUND for a row gone). Returns 0, or
 * HG_E* when the connection failed (every status then unreliable). */
int hg_deliveries_load_many(hg_db_t *db, const int64_t *seqs, size_t n, int64_t now, hg_send_t *const *outs,
                            int *status);

/* The outcome of one attempt, to record. */
typedef struct hg_attempt_rec {
  int64_t delivery_seq;
  int attempt;           /* 1-based number of this attempt */
  int64_t started_at;    /* Unix ms */
  int64_t duration_ms;
  int status_code;       /* 0: no response */
  const char *response_body;
  size_t response_len;
  const char *error;     /* NULL on success */
  /* The request's headers as a JSON object text (name -> value, values
   * the gateway did not set itself as "[redacted]"), or NULL when no
   * request was made (skipped, script error, nothing to sign with).
   * Borrowed: stored as given, never parsed here. */
  const char *request_headers;
  hg_delivery_status_t new_status;
  int64_t next_attempt_at; /* when new_status is pending */
  /* The webhook to set inactive (410 Gone, a retry plugin's "deactivate"),
   * or NULL: not written by hg_deliveries_record; the dispatcher hands it
   * to the webhook's health record (store/health.h), which sets it
   * inactive with its reason. */
  const char *deactivate_webhook;
} hg_attempt_rec_t;

int hg_deliveries_record(hg_db_t *db, const hg_attempt_rec_t *rec);

/* Records n attempts as hg_deliveries_record would one after the other,
 * status[i] each one's result. On PostgreSQL they go in a few multi-row
 * statements (rows.h), deferred: every status is then the same, and a
 * failure of the rows themselves shows at the job's next step (db.h).
 * Returns HG_EUNAVAIL when the connection was lost (stopping there); on
 * PostgreSQL also any other failure (some rows may have been sent: the
 * job must roll back); else 0. */
int hg_deliveries_record_many(hg_db_t *db, const hg_attempt_rec_t *const *recs, size_t n, int *status);

/* Fails every attempt-less step: marks delivery seq failed with an error
 * attempt-free note (webhook deleted or inactive). */
int hg_deliveries_abandon(hg_db_t *db, int64_t seq, int64_t now);

/* Reads every pending delivery's (seq, next_attempt_at), in no particular
 * order, but those waiting behind another in their webhook's FIFO line
 * (store/lines.h). */
int hg_deliveries_pending(hg_db_t *db, int (*cb)(int64_t seq, int64_t due, void *ud), void *ud);

/* Makes delivery id of webhook wh pending and due at now (replay). Sets
 * *seq, and *in_line when wh is ordered (store/lines.h: an ended delivery
 * joins the end of the line, a pending one keeps its place; either way it
 * goes when it is the head, not at once). HG_ENOTFOUND when no such
 * delivery for that webhook (and org). */
int hg_deliveries_replay(hg_db_t *db, const char *wh, const char *org, const char *id, int64_t now, int64_t *seq,
                         int *in_line);

/* Looks up the seq of delivery id under webhook wh (and org). */
int hg_deliveries_seq(hg_db_t *db, const char *wh, const char *org, const char *id, int64_t *seq);

/* Creates a one-off event of webhook wh only (POST .../test) and its
 * delivery, due now. */
int hg_deliveries_create_test(hg_db_t *db, const char *wh, const char *org, const char *type, const char *payload,
                              size_t len, int64_t now, char *event_id, int64_t *seq, char *del_id);

/* Inserts one delivery of event event_seq to webhook wh, created at now:
 * pending and due at now when pending (at the end of wh's line when it is
 * ordered), else 'failed' with no attempt due
 * (a test's, whose record sets its status). Its id goes to id, its row
 * number to *seq. Returns 0 or HG_E*. */
int hg_deliveries_insert_one(hg_db_t *db, const char *wh, int64_t event_seq, int pending, int64_t now,
                             char id[HG_ID_MAX], int64_t *seq);

#include <jansson.h>

/* Appends up to limit deliveries of webhook wh (newest first, ids below
 * after_id unless "") to arr as API objects. status < 0: any status; event:
 * NULL or an event type. *more is set when another page follows; last_id
 * gets the last id appended. HG_ENOTFOUND when the webhook is not visible. */
int hg_deliveries_list_json(hg_db_t *db, const char *wh, const char *org, const char *after_id, int limit, int status,
                            const char *event, json_t *arr, char *last_id, int *more);

/* The delivery with its attempts, as the API shows it, with the event's
 * payload (the stored body every receiver gets unless a transform changes
 * it) as a JSON value, null if it cannot be parsed back (a number beyond a
 * double), and each attempt's requestHeaders (an object, or null when none
 * was recorded). *out is a new reference. */
int hg_deliveries_get_json(hg_db_t *db, const char *wh, const char *org, const char *id, json_t **out);

#endif
