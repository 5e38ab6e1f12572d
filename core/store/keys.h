/* keys.h: API keys, stored as SHA-256 hashes.
 *
 * A key is "hg_" + base64url of 32 random bytes (46 characters). Only its
 * hash and its first 10 characters (to tell keys apart in listings) are
 * stored. Every function runs synchronously on the connection it is given:
 * the CLI's (hg_store_open_sync) or, in the server, the store thread's
 * inside a store job. None of them logs the key. */
#ifndef HG_KEYS_H
#define HG_KEYS_H

#include "base/ids.h"
#include "store/db.h"

#include <stddef.h>
#include <stdint.h>

enum {
  HG_SCOPE_WEBHOOKS_READ = 1,
  HG_SCOPE_WEBHOOKS_WRITE = 2,
  HG_SCOPE_EVENTS_PUBLISH = 4,
  HG_SCOPE_ADMIN = 8,
  HG_SCOPE_ALL = 15
};

/* Room for a key and its NUL. */
#define HG_KEY_MAX 64
/* Characters of the key kept as its visible prefix. */
#define HG_KEY_PREFIX_LEN 10
/* Room for hg_scopes_format of HG_SCOPE_ALL and its NUL. */
#define HG_SCOPES_MAX 64
#define HG_ORG_ID_MAX 128

typedef struct hg_key_info {
  char id[HG_ID_MAX]; /* key_<time-ordered> */
  char prefix[16];
  unsigned scopes;
  char organization_id[HG_ORG_ID_MAX + 1]; /* "" when has_org is 0 */
  int has_org;
  int64_t created_at; /* Unix ms */
  int64_t revoked_at; /* Unix ms; 0 = active */
} hg_key_info_t;

/* Parses a comma-separated scope list such as
 * "webhooks:read,webhooks:write,events:publish,admin" into a bit set.
 * Spaces around names are ignored and repeats are harmless. Returns 0 or
 * HG_EINVAL for an unknown name, an empty item or an empty list. */
int hg_scopes_parse(const char *csv, unsigned *out);

/* Writes the canonical list for scopes (known bits in the order above,
 * comma-separated; "" for none) to out, NUL-terminated. If cap is too
 * small the list stops before the first name that does not fit (never a
 * partial name); HG_SCOPES_MAX always suffices. */
void hg_scopes_format(unsigned scopes, char *out, size_t cap);

/* Returns 1 if org is 1..128 characters of [A-Za-z0-9_.:-], else 0. */
int hg_org_id_valid(const char *org);

/* Creates a key with scopes (non-zero, within HG_SCOPE_ALL) for org (NULL
 * for none). Writes the key (shown once, never stored) to key_out, which
 * needs cap >= 47 (HG_KEY_MAX suffices), and fills info if not NULL.
 * Returns 0, HG_EINVAL (scopes or org), HG_ETOOBIG (cap), HG_EIO (no
 * randomness, or the store) or another store error (db.h). On failure
 * key_out is "" (if cap > 0). */
int hg_keys_create(hg_db_t *db, unsigned scopes, const char *org, char *key_out, size_t cap,
                   hg_key_info_t *info);

/* Finds the active key whose SHA-256 matches key's, confirming the stored
 * hash with a constant-time comparison, and fills out. Returns 0,
 * HG_ENOTFOUND (unknown, malformed or revoked key) or a store error
 * (db.h). */
int hg_keys_lookup(hg_db_t *db, const char *key, hg_key_info_t *out);

/* Calls cb for every key, oldest first, revoked ones included. A non-zero
 * return from cb stops the walk and is returned. Returns 0, that value, or
 * a store error (db.h). k is valid only during the call. */
int hg_keys_list(hg_db_t *db, int (*cb)(const hg_key_info_t *k, void *ud), void *ud);

/* Revokes the active key with this id (its revoked_at becomes now).
 * Returns 0, HG_ENOTFOUND (no such key, or already revoked) or a
 * store error (db.h). */
int hg_keys_revoke(hg_db_t *db, const char *id);

#endif
