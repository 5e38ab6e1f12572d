#define _GNU_SOURCE /* memmem */
#include "base/common.h"
#include "hgtest.h"
#include "store/keys.h"
#include "store/store.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

/* Reads a whole file (empty if missing) into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  *len = 0;
  if (f == NULL) return calloc(1, 1);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  *len = fread(buf, 1, (size_t)n, f);
  fclose(f);
  return buf;
}

static int file_contains(const char *path, const char *needle) {
  size_t len;
  char *buf = slurp(path, &len);
  int found = memmem(buf, len, needle, strlen(needle)) != NULL;
  free(buf);
  return found;
}

static void scopes(void) {
  unsigned s = 0;
  char buf[HG_SCOPES_MAX];
  CHECK_EQ_INT(hg_scopes_parse("webhooks:read,webhooks:write,events:publish,admin", &s), 0);
  CHECK_EQ_INT(s, HG_SCOPE_ALL);
  CHECK_EQ_INT(hg_scopes_parse("admin, webhooks:read ,admin", &s), 0);
  CHECK_EQ_INT(s, HG_SCOPE_ADMIN | HG_SCOPE_WEBHOOKS_READ);
  CHECK_EQ_INT(hg_scopes_parse("", &s), HG_EINVAL);
  CHECK_EQ_INT(hg_scopes_parse("admin,", &s), HG_EINVAL);
  CHECK_EQ_INT(hg_scopes_parse("admin,,webhooks:read", &s), HG_EINVAL);
  CHECK_EQ_INT(hg_scopes_parse("webhooks:delete", &s), HG_EINVAL);
  CHECK_EQ_INT(hg_scopes_parse("Admin", &s), HG_EINVAL);
  hg_scopes_format(HG_SCOPE_ALL, buf, sizeof(buf));
  CHECK_EQ_STR(buf, "webhooks:read,webhooks:write,events:publish,admin");
  hg_scopes_format(HG_SCOPE_ADMIN | HG_SCOPE_WEBHOOKS_READ, buf, sizeof(buf));
  CHECK_EQ_STR(buf, "webhooks:read,admin");
  hg_scopes_format(0, buf, sizeof(buf));
  CHECK_EQ_STR(buf, "");
  hg_scopes_format(HG_SCOPE_ALL, buf, 10);
  CHECK_EQ_INT(strlen(buf), 0); /* the first name does not fit: nothing partial */
}

static void org_ids(void) {
  char long_org[200];
  CHECK(hg_org_id_valid("acme"));
  CHECK(hg_org_id_valid("org_2:eu-west.1"));
  CHECK(!hg_org_id_valid(""));
  CHECK(!hg_org_id_valid(NULL));
  CHECK(!hg_org_id_valid("acme corp"));
  CHECK(!hg_org_id_valid("acme/1"));
  memset(long_org, 'a', 128);
  long_org[128] = '\0';
  CHECK(hg_org_id_valid(long_org));
  long_org[128] = 'a';
  long_org[129] = '\0';
  CHECK(!hg_org_id_valid(long_org));
}

struct listing {
  int n;
  hg_key_info_t keys[4];
};

static int collect(const hg_key_info_t *k, void *ud) {
  struct listing *l = ud;
  if (l->n < 4) l->keys[l->n] = *k;
  l->n++;
  return 0;
}

static int stop_at_first(const hg_key_info_t *k, void *ud) {
  (void)k;
  ++*(int *)ud;
  return 7;
}

static void lifecycle(void) {
  char path[128], err[256];
  hg_db_t *db = NULL;
  snprintf(path, sizeof(path), "%s/keys/hg.db", dir);
  CHECK_EQ_INT(hg_store_open_sync(&db, path, err, sizeof(err)), 0);
  if (db == NULL) return;

  char k1[HG_KEY_MAX], k2[HG_KEY_MAX];
  hg_key_info_t i1, i2, found;
  CHECK_EQ_INT(hg_keys_create(db, HG_SCOPE_WEBHOOKS_READ | HG_SCOPE_EVENTS_PUBLISH, "acme-1", k1, sizeof(k1), &i1), 0);
  CHECK_EQ_INT(strlen(k1), 46);
  CHECK(strncmp(k1, "hg_", 3) == 0);
  CHECK(strncmp(i1.prefix, k1, 10) == 0 && strlen(i1.prefix) == 10);
  CHECK(hg_id_valid("key_", i1.id));
  CHECK(i1.created_at > 0 && i1.revoked_at == 0);
  CHECK_EQ_INT(hg_keys_create(db, HG_SCOPE_ALL, NULL, k2, sizeof(k2), &i2), 0);
  CHECK(strcmp(k1, k2) != 0);

  CHECK_EQ_INT(hg_keys_lookup(db, k1, &found), 0);
  CHECK_EQ_STR(found.id, i1.id);
  CHECK_EQ_INT(found.scopes, HG_SCOPE_WEBHOOKS_READ | HG_SCOPE_EVENTS_PUBLISH);
  CHECK_EQ_INT(found.has_org, 1);
  CHECK_EQ_STR(found.organization_id, "acme-1");
  CHECK_EQ_STR(found.prefix, i1.prefix);
  CHECK_EQ_INT(found.created_at, i1.created_at);
  CHECK_EQ_INT(hg_keys_lookup(db, k2, &found), 0);
  CHECK_EQ_INT(found.scopes, HG_SCOPE_ALL);
  CHECK_EQ_INT(found.has_org, 0);
  CHECK_EQ_STR(found.organization_id, "");

  /* Wrong keys. */
  char wrong[HG_KEY_MAX];
  snprintf(wrong, sizeof(wrong), "%s", k1);
  wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
  CHECK_EQ_INT(hg_keys_lookup(db, wrong, &found), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_keys_lookup(db, "", &found), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_keys_lookup(db, NULL, &found), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_keys_lookup(db, i1.prefix, &found), HG_ENOTFOUND);

  /* Listing, oldest first. */
  struct listing l = {0};
  CHECK_EQ_INT(hg_keys_list(db, collect, &l), 0);
  CHECK_EQ_INT(l.n, 2);
  CHECK_EQ_STR(l.keys[0].id, i1.id);
  CHECK_EQ_STR(l.keys[1].id, i2.id);
  int calls = 0;
  CHECK_EQ_INT(hg_keys_list(db, stop_at_first, &calls), 7);
  CHECK_EQ_INT(calls, 1);

  /* Revocation. */
  CHECK_EQ_INT(hg_keys_revoke(db, i1.id), 0);
  CHECK_EQ_INT(hg_keys_lookup(db, k1, &found), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_keys_revoke(db, i1.id), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_keys_revoke(db, "key_nope"), HG_ENOTFOUND);
  CHECK_EQ_INT(hg_keys_lookup(db, k2, &found), 0);
  memset(&l, 0, sizeof(l));
  CHECK_EQ_INT(hg_keys_list(db, collect, &l), 0);
  CHECK_EQ_INT(l.n, 2);
  CHECK(l.keys[0].revoked_at > 0);
  CHECK_EQ_INT(l.keys[1].revoked_at, 0);

  /* Refusals. */
  char k3[HG_KEY_MAX];
  CHECK_EQ_INT(hg_keys_create(db, 0, NULL, k3, sizeof(k3), NULL), HG_EINVAL);
  CHECK_EQ_INT(hg_keys_create(db, 16, NULL, k3, sizeof(k3), NULL), HG_EINVAL);
  CHECK_EQ_INT(hg_keys_create(db, HG_SCOPE_ADMIN, "bad org", k3, sizeof(k3), NULL), HG_EINVAL);
  CHECK_EQ_INT(hg_keys_create(db, HG_SCOPE_ADMIN, NULL, k3, 46, NULL), HG_ETOOBIG);
  CHECK_EQ_STR(k3, "");
  memset(&l, 0, sizeof(l));
  hg_keys_list(db, collect, &l);
  CHECK_EQ_INT(l.n, 2);

  hg_db_close(db);

  /* Only hashes reach the disk: neither key, nor the secret part after its
   * visible prefix, is in the database or its WAL. The prefix is, which
   * shows the search reads the right bytes. */
  char wal[140];
  snprintf(wal, sizeof(wal), "%s-wal", path);
  CHECK(file_contains(path, i1.prefix) || file_contains(wal, i1.prefix));
  CHECK(!file_contains(path, k1) && !file_contains(wal, k1));
  CHECK(!file_contains(path, k2) && !file_contains(wal, k2));
  CHECK(!file_contains(path, k1 + 10) && !file_contains(wal, k1 + 10));
  CHECK(!file_contains(path, k2 + 10) && !file_contains(wal, k2 + 10));
}

int main(void) {
  snprintf(dir, sizeof(dir), "/tmp/hg-test-keys-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  RUN(scopes);
  RUN(org_ids);
  RUN(lifecycle);
  nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  return HGT_DONE();
}
