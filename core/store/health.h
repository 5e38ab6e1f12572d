/* health.h: a webhook's failing streak and its automatic disabling, in
 * the store (store thread only, inside the job that records the attempt).
 *
 * The streak is a row of webhook_health, there only while failures are
 * counted: consecutive_exhausted (deliveries in a row that failed for
 * good) and failing_since (the first failed attempt since the last
 * success). Every change is one SQL statement that reads and writes the
 * row (an upsert with RETURNING, a DELETE with RETURNING, an UPDATE with
 * a condition), so that two nodes recording at once on one PostgreSQL
 * database cannot lose a count, and only one of them sees a webhook
 * disabled, or recovered. Where no answer is needed the statement is
 * deferred (db.h) on PostgreSQL, as the attempt's own record is. */
#ifndef HG_STORE_HEALTH_H
#define HG_STORE_HEALTH_H

#include "store/db.h"

#include <stdint.h>

/* What an attempt was, for the streak. */
typedef enum {
  HG_HEALTH_SUCCESS = 1,   /* a 2xx */
  HG_HEALTH_RETRYING = 2,  /* failed, another attempt is scheduled */
  HG_HEALTH_EXHAUSTED = 3, /* failed, and it was the delivery's last */
} hg_health_kind_t;

/* Disable codes (webhooks.disabled_reason; the API's disabledReason.code). */
#define HG_DISABLED_GONE "gone"                     /* the receiver answered 410 */
#define HG_DISABLED_FAILURES "consecutive_failures" /* the disable rule tripped */
#define HG_DISABLED_RETRY_POLICY "retry_policy"     /* a retry plugin answered "deactivate" */
#define HG_DISABLED_MANUAL "manual"                 /* PATCH active=false, or created inactive */

typedef struct hg_health_in {
  const char *webhook_id;
  hg_health_kind_t kind;
  int64_t at; /* Unix ms: when the attempt started */
  /* The streak as the delivery's load read it: a success with none counted
   * needs no answer from the store (see hg_health_record). */
  int64_t loaded_exhausted;
  /* EXHAUSTED: non-NULL disables the webhook whatever the rule (a 410, a
   * retry plugin), with this code and message (borrowed). */
  const char *disable_code;
  const char *disable_message;
  /* The rule (the webhook's own or the gateway's): disabled once at least
   * rule_exhausted deliveries in a row were exhausted and no delivery
   * succeeded for rule_failing_ms; a 0 leaves its condition out; both 0:
   * never by the rule. */
  int64_t rule_exhausted, rule_failing_ms;
} hg_health_in_t;

typedef struct hg_health_out {
  int64_t exhausted;     /* the streak's count: after this record, or before a recovery */
  int64_t failing_since; /* Unix ms, 0: none */
  int disabled;          /* this record made the webhook inactive, */
  int64_t disabled_at;   /* at this time (its disabled_at) */
  int recovered;         /* this success ended a streak of exhausted deliveries */
  char code[24];         /* disabled: its code */
  char message[160];     /* disabled: its text */
} hg_health_out_t;

/* Updates webhook in->webhook_id's streak for one recorded attempt and,
 * when the rule trips (or disable_code asks), makes the webhook inactive
 * with disabled_at, disabled_reason and disabled_message, unless it was
 * inactive already. out is zeroed first. A webhook deleted meanwhile is
 * left alone (0). Returns 0 or HG_E*. */
int hg_health_record(hg_db_t *db, const hg_health_in_t *in, hg_health_out_t *out);

/* The records of one transaction, in order: a success needs no
 * statement for a webhook whose last record in the same transaction was
 * a success (its row is gone already; nothing to report). On PostgreSQL
 * that holds only for successes with nothing counted at their load (their
 * statement deletes the row, if any, without an answer; a row another
 * node makes meanwhile is left to the next success); on SQLite, where the
 * store thread is the only writer, for every success. Zero it before the
 * first record, and again when the records are rolled back. */
#define HG_HEALTH_SEEN 8
typedef struct hg_health_batch {
  const char *cleared[HG_HEALTH_SEEN]; /* webhooks whose last record was such a success (borrowed) */
  size_t n;
} hg_health_batch_t;

/* hg_health_record within batch b (see hg_health_batch_t). */
int hg_health_record_in(hg_db_t *db, hg_health_batch_t *b, const hg_health_in_t *in, hg_health_out_t *out);

/* Forgets webhook id's streak (PATCH active=true). */
int hg_health_reset(hg_db_t *db, const char *id);

#endif
