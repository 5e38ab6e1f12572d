/* webhooks.h: webhooks and their signing secrets in the store.
 *
 * Every function here runs on the store thread (inside a store job) or in
 * the CLI, on a connection opened by hg_store_open*(). None keeps state. */
#ifndef HG_WEBHOOKS_H
#define HG_WEBHOOKS_H

#include "base/ids.h"
#include "base/sign.h"
#include "store/db.h"

#include <stdint.h>

/* The most signing secrets a webhook holds at once during rotations. */
#define HG_MAX_SECRETS 10

typedef struct hg_webhook {
  char id[HG_ID_MAX];
  char *url;
  char *events;   /* JSON array text */
  char *org;      /* NULL: no organization */
  int active;
  char *metadata; /* JSON object text */
  char *lua;      /* per-webhook Lua bindings (JSON text), or NULL */
  int64_t created_at, updated_at; /* Unix ms */
  char scheme[4];                 /* the signature scheme, "v1" (HMAC) or "v1a" (Ed25519) */
  /* Why it is inactive (store/health.h): when (0: not set), a code and a
   * text (NULL: none). Written by hg_webhooks_insert and _update as given. */
  int64_t disabled_at;
  char *disabled_reason, *disabled_message;
  /* Its own disable rule, each -1 for the gateway's. */
  int64_t disable_after_exhausted, disable_after_failing_ms;
  /* Flow control (pipeline/throttle.h): deliveries per 1000 s and
   * attempts open at once; 0 each: no limit. */
  int64_t rate_limit_milli, max_concurrency;
  /* Ordering "fifo" (store/lines.h): read from its line's row; written by
   * hg_webhooks_insert only (a change goes through hg_line_set). */
  int fifo;
  /* Its failing streak when read (never written here): deliveries in a
   * row exhausted, and since when none succeeded (0: not failing). */
  int64_t exhausted, failing_since;
  /* v1a: the public keys of the signing keys valid at the time of reading,
   * newest (the current one) first, when filled by
   * hg_webhooks_public_keys; otherwise none. */
  char public_keys[HG_MAX_SECRETS][HG_PUBLIC_KEY_MAX];
  size_t n_public_keys;
} hg_webhook_t;

/* Frees the strings w holds (not w). Accepts a zeroed w. */
void hg_webhook_close(hg_webhook_t *w);

/* Inserts w and its first secret: a "whsec_" secret for a v1 webhook, a
 * "whsk_" signing key for a v1a one (w->scheme says which; its public key
 * is derived and stored beside it). */
int hg_webhooks_insert(hg_db_t *db, const hg_webhook_t *w, const char *secret);

/* Reads webhook id into out (caller closes). out is zeroed first, so
 * hg_webhook_close(out) is safe whatever this returns. When org is
 * non-NULL, a webhook of another organization (or of none) is HG_ENOTFOUND
 * too. */
int hg_webhooks_get(hg_db_t *db, const char *id, const char *org, hg_webhook_t *out);

/* As hg_webhooks_get, for a change written back in the same transaction:
 * on PostgreSQL the row stays locked until then (FOR NO KEY UPDATE, taken
 * before the read), so a change
 * another node makes meanwhile (its automatic disabling, store/health.h)
 * waits for this one instead of being overwritten by it. */
int hg_webhooks_get_locked(hg_db_t *db, const char *id, const char *org, hg_webhook_t *out);

/* Lists webhooks newest first: ids below after_id ("" = from the newest),
 * at most limit. org_mode 0: any; 1: organization == org. Calls cb per row
 * (w is valid during the call only); cb returns nonzero to stop. */
int hg_webhooks_list(hg_db_t *db, int org_mode, const char *org, const char *after_id, int limit,
                     int (*cb)(const hg_webhook_t *w, void *ud), void *ud);

/* Writes url, events, active, metadata, lua, updated_at, the disabled_*
 * fields, the disable rule and the flow limits of w (matched by id). */
int hg_webhooks_update(hg_db_t *db, const hg_webhook_t *w);

/* Deletes webhook id (and its secrets); org as in get. */
int hg_webhooks_delete(hg_db_t *db, const char *id, const char *org);

/* Fills w->public_keys with the public keys of w's v1a signing keys valid
 * at now, newest first (none for a v1 webhook). Reads no private key. */
int hg_webhooks_public_keys(hg_db_t *db, hg_webhook_t *w, int64_t now);

/* Makes new_secret (a secret or a signing key, of the webhook's scheme) the
 * current secret. The old current secret stays valid
 * until now + grace_ms (grace_ms 0: retired at once); secrets already in a
 * grace period keep theirs; expired ones are removed, and the oldest go
 * first when more than HG_MAX_SECRETS would remain. *prev_expires gets the
 * old secret's expiry. */
int hg_webhooks_rotate(hg_db_t *db, const char *id, const char *org, const char *new_secret, int64_t now,
                       int64_t grace_ms, int64_t *prev_expires);

/* Copies the secrets valid at now, current first, into out (up to max). */
int hg_webhooks_secrets(hg_db_t *db, const char *id, int64_t now, char (*out)[HG_SECRET_MAX], size_t max,
                        size_t *n);

#endif
