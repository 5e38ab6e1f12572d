/* keys.c: API key creation, lookup, listing and revocation. */
#include "store/keys.h"

#include "base/common.h"
#include "base/crypto.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  unsigned bit;
} scope_names[] = {
    {"webhooks:read", HG_SCOPE_WEBHOOKS_READ},
    {"webhooks:write", HG_SCOPE_WEBHOOKS_WRITE},
    {"events:publish", HG_SCOPE_EVENTS_PUBLISH},
    {"admin", HG_SCOPE_ADMIN},
};

int hg_scopes_parse(const char *csv, unsigned *out) {
  unsigned scopes = 0;
  if (csv == NULL) return HG_EINVAL;
  const char *p = csv;
  for (;;) {
    while (*p == ' ') p++;
    const char *end = p;
    while (*end && *end != ',') end++;
    const char *last = end;
    while (last > p && last[-1] == ' ') last--;
    size_t n = (size_t)(last - p);
    unsigned bit = 0;
    for (size_t i = 0; i < HG_ARRAY_LEN(scope_names); i++)
      if (strlen(scope_names[i].name) == n && memcmp(scope_names[i].name, p, n) == 0) bit = scope_names[i].bit;
    if (bit == 0) return HG_EINVAL;
    scopes |= bit;
    if (*end == '\0') break;
    p = end + 1;
  }
  *out = scopes;
  return 0;
}

void hg_scopes_format(unsigned scopes, char *out, size_t cap) {
  size_t len = 0;
  if (cap == 0) return;
  out[0] = '\0';
  for (size_t i = 0; i < HG_ARRAY_LEN(scope_names); i++) {
    if (!(scopes & scope_names[i].bit)) continue;
    const char *sep = len > 0 ? "," : "";
    size_t n = strlen(sep) + strlen(scope_names[i].name);
    /* A partial name would read as a different scope: stop instead. */
    if (n >= cap - len) return;
    snprintf(out + len, cap - len, "%s%s", sep, scope_names[i].name);
    len += n;
  }
}

int hg_org_id_valid(const char *org) {
  if (org == NULL) return 0;
  size_t n = 0;
  for (; org[n]; n++) {
    char c = org[n];
    int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
             c == '.' || c == ':' || c == '-';
    if (!ok || n >= HG_ORG_ID_MAX) return 0;
  }
  return n > 0;
}

/* Columns: id, prefix, scopes, organization_id, created_at, revoked_at. */
#define KEY_COLUMNS "id, prefix, scopes, organization_id, created_at, revoked_at"

static void row_to_info(hg_stmt_t *st, hg_key_info_t *k) {
  const char *s;
  memset(k, 0, sizeof(*k));
  if ((s = hg_db_column_text(st, 0)) != NULL) snprintf(k->id, sizeof(k->id), "%s", s);
  if ((s = hg_db_column_text(st, 1)) != NULL)
    snprintf(k->prefix, sizeof(k->prefix), "%s", s);
  /* A scope name this binary does not know (written by a newer one)
   * grants nothing rather than failing the whole row. */
  if ((s = hg_db_column_text(st, 2)) != NULL) {
    unsigned scopes = 0;
    if (hg_scopes_parse(s, &scopes) == 0) k->scopes = scopes;
  }
  if ((s = hg_db_column_text(st, 3)) != NULL) {
    k->has_org = 1;
    snprintf(k->organization_id, sizeof(k->organization_id), "%s", s);
  }
  k->created_at = hg_db_column_int64(st, 4);
  k->revoked_at = hg_db_column_int64(st, 5); /* NULL reads as 0: active */
}

int hg_keys_create(hg_db_t *db, unsigned scopes, const char *org, char *key_out, size_t cap,
                   hg_key_info_t *info) {
  unsigned char raw[32], hash[32];
  char key[HG_KEY_MAX];
  hg_key_info_t k;
  hg_stmt_t *st = NULL;
  int rc;

  if (cap > 0) key_out[0] = '\0';
  if (scopes == 0 || (scopes & ~(unsigned)HG_SCOPE_ALL) != 0) return HG_EINVAL;
  if (org != NULL && !hg_org_id_valid(org)) return HG_EINVAL;
  memset(&k, 0, sizeof(k));
  memcpy(key, "hg_", 3);
  if ((rc = hg_random(raw, sizeof(raw))) != 0) goto done;
  if ((rc = hg_base64url_encode(raw, sizeof(raw), key + 3, sizeof(key) - 3)) < 0) goto done;
  if ((size_t)rc + 3 + 1 > cap) {
    rc = HG_ETOOBIG;
    goto done;
  }
  hg_sha256(key, strlen(key), hash);
  hg_id_new("key_", k.id);
  memcpy(k.prefix, key, HG_KEY_PREFIX_LEN);
  k.scopes = scopes;
  if (org != NULL) {
    k.has_org = 1;
    snprintf(k.organization_id, sizeof(k.organization_id), "%s", org);
  }
  k.created_at = hg_wall_ms();
  char scopes_csv[HG_SCOPES_MAX];
  hg_scopes_format(scopes, scopes_csv, sizeof(scopes_csv));

  int src = hg_db_prepare(db,
                          "INSERT INTO api_keys (id, hash, prefix, scopes, organization_id, created_at) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          &st);
  if (src == 0) {
    hg_db_bind_text(st, 1, k.id, -1);
    hg_db_bind_blob(st, 2, hash, sizeof(hash));
    hg_db_bind_text(st, 3, k.prefix, -1);
    hg_db_bind_text(st, 4, scopes_csv, -1);
    if (org != NULL) hg_db_bind_text(st, 5, org, -1);
    else hg_db_bind_null(st, 5);
    hg_db_bind_int64(st, 6, k.created_at);
    src = hg_db_step(st);
  }
  if (src < 0) {
    rc = hg_db_fail(db, src, "keys create");
    goto done;
  }
  memcpy(key_out, key, strlen(key) + 1);
  if (info != NULL) *info = k;
  rc = 0;
done:
  hg_db_release(st);
  memset(raw, 0, sizeof(raw));
  memset(key, 0, sizeof(key));
  return rc;
}

int hg_keys_lookup(hg_db_t *db, const char *key, hg_key_info_t *out) {
  unsigned char hash[32];
  hg_stmt_t *st = NULL;
  int rc;
  if (key == NULL) return HG_ENOTFOUND;
  hg_sha256(key, strlen(key), hash);
  int src = hg_db_prepare(db, "SELECT " KEY_COLUMNS ", hash FROM api_keys WHERE hash = ?", &st);
  if (src == 0) {
    hg_db_bind_blob(st, 1, hash, sizeof(hash));
    src = hg_db_step(st);
  }
  if (src == HG_DB_DONE) {
    rc = HG_ENOTFOUND;
    goto done;
  }
  if (src < 0) {
    rc = hg_db_fail(db, src, "keys lookup");
    goto done;
  }
  /* The index found the row by equality; confirm in constant time so the
   * answer never depends on how many leading bytes matched. */
  const void *stored = hg_db_column_blob(st, 6);
  if (stored == NULL || hg_db_column_bytes(st, 6) != sizeof(hash) || !hg_ct_equal(stored, hash, sizeof(hash)) ||
      !hg_db_column_is_null(st, 5)) {
    rc = HG_ENOTFOUND;
    goto done;
  }
  row_to_info(st, out);
  rc = 0;
done:
  hg_db_release(st);
  return rc;
}

int hg_keys_list(hg_db_t *db, int (*cb)(const hg_key_info_t *k, void *ud), void *ud) {
  hg_stmt_t *st = NULL;
  int rc = 0, src;
  src = hg_db_prepare(db, "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY created_at, id", &st);
  if (src < 0) {
    rc = hg_db_fail(db, src, "keys list");
    goto done;
  }
  while ((src = hg_db_step(st)) == HG_DB_ROW) {
    hg_key_info_t k;
    row_to_info(st, &k);
    if ((rc = cb(&k, ud)) != 0) goto done;
  }
  if (src < 0) rc = hg_db_fail(db, src, "keys list");
done:
  hg_db_release(st);
  return rc;
}

int hg_keys_revoke(hg_db_t *db, const char *id) {
  hg_stmt_t *st = NULL;
  int rc = 0;
  if (id == NULL) return HG_ENOTFOUND;
  int src = hg_db_prepare(db, "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", &st);
  if (src == 0) {
    hg_db_bind_int64(st, 1, hg_wall_ms());
    hg_db_bind_text(st, 2, id, -1);
    src = hg_db_step(st);
  }
  if (src < 0) rc = hg_db_fail(db, src, "keys revoke");
  else if (hg_db_changes(db) == 0) rc = HG_ENOTFOUND;
  hg_db_release(st);
  return rc;
}
