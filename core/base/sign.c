/* sign.c: Standard Webhooks signing and verification. */
#include "base/sign.h"

#include "base/common.h"
#include "base/crypto.h"

#include <uv.h>
#include <stdio.h>
#include <string.h>

static const char secret_prefix[] = "whsec_";
#define SECRET_PREFIX_LEN (sizeof(secret_prefix) - 1)
static const char skey_prefix[] = "whsk_";
static const char pkey_prefix[] = "whpk_";
#define KEY_PREFIX_LEN (sizeof(skey_prefix) - 1)

/* Decodes a "whsk_" signing key into its 32-byte seed. */
static int seed_of(const char *key, unsigned char seed[HG_ED25519_KEY_BYTES]) {
  size_t n = 0;
  if (!hg_signing_key_is_v1a(key)) return HG_EINVAL;
  key += KEY_PREFIX_LEN;
  if (hg_base64_decode(key, strlen(key), seed, HG_ED25519_KEY_BYTES, &n) != 0 || n != HG_ED25519_KEY_BYTES) {
    memset(seed, 0, HG_ED25519_KEY_BYTES);
    return HG_EINVAL;
  }
  return 0;
}

/* Decodes a secret into key (HG_SECRET_MAX_BYTES); "whsec_" optional. */
static int secret_key(const char *secret, unsigned char *key, size_t *keylen) {
  if (secret == NULL) return HG_EINVAL;
  if (strncmp(secret, secret_prefix, SECRET_PREFIX_LEN) == 0) secret += SECRET_PREFIX_LEN;
  size_t n = strlen(secret);
  if (n == 0) return HG_EINVAL;
  if (hg_base64_decode(secret, n, key, HG_SECRET_MAX_BYTES, keylen) != 0) return HG_EINVAL;
  return *keylen > 0 ? 0 : HG_EINVAL;
}

int hg_secret_generate(char out[HG_SECRET_MAX]) {
  unsigned char raw[32];
  out[0] = '\0';
  if (hg_random(raw, sizeof(raw)) != 0) return HG_EIO;
  memcpy(out, secret_prefix, SECRET_PREFIX_LEN);
  int rc = hg_base64_encode(raw, sizeof(raw), out + SECRET_PREFIX_LEN, HG_SECRET_MAX - SECRET_PREFIX_LEN);
  memset(raw, 0, sizeof(raw));
  return rc < 0 ? rc : 0;
}

int hg_signing_key_generate(char out[HG_SECRET_MAX]) {
  unsigned char seed[HG_ED25519_KEY_BYTES];
  out[0] = '\0';
  if (hg_random(seed, sizeof(seed)) != 0) return HG_EIO;
  memcpy(out, skey_prefix, KEY_PREFIX_LEN);
  int rc = hg_base64_encode(seed, sizeof(seed), out + KEY_PREFIX_LEN, HG_SECRET_MAX - KEY_PREFIX_LEN);
  memset(seed, 0, sizeof(seed));
  return rc < 0 ? rc : 0;
}

int hg_signing_key_is_v1a(const char *key) { return key != NULL && strncmp(key, skey_prefix, KEY_PREFIX_LEN) == 0; }

int hg_public_key(const char *signing_key, char out[HG_PUBLIC_KEY_MAX]) {
  unsigned char seed[HG_ED25519_KEY_BYTES], pub[HG_ED25519_KEY_BYTES];
  out[0] = '\0';
  if (seed_of(signing_key, seed) != 0) return HG_EINVAL;
  hg_ed25519_t *k = hg_ed25519_new(seed);
  memset(seed, 0, sizeof(seed));
  if (k == NULL) return HG_ENOMEM;
  hg_ed25519_public(k, pub);
  hg_ed25519_free(k);
  memcpy(out, pkey_prefix, KEY_PREFIX_LEN);
  if (hg_base64_encode_public(pub, sizeof(pub), out + KEY_PREFIX_LEN, HG_PUBLIC_KEY_MAX - KEY_PREFIX_LEN) < 0) {
    out[0] = '\0';
    return HG_EINVAL;
  }
  return 0;
}

int hg_secret_check(const char *secret) {
  unsigned char key[HG_SECRET_MAX_BYTES];
  size_t keylen = 0;
  if (secret == NULL || strncmp(secret, secret_prefix, SECRET_PREFIX_LEN) != 0) return HG_EINVAL;
  int rc = secret_key(secret, key, &keylen);
  memset(key, 0, sizeof(key));
  if (rc != 0 || keylen < HG_SECRET_MIN_BYTES) return HG_EINVAL;
  return 0;
}

/* Signing keys ready for use. Every delivery is signed with its webhook's
 * secret: decoding the base64 and deriving HMAC's inner and outer key
 * blocks each time was a fifth of a delivery's CPU. A prepared context is
 * re-initialised (it keeps the key) instead. An Ed25519 key is kept
 * prepared the same way: deriving its public half is a scalar
 * multiplication, as dear as the signature itself. The cache is global (a
 * mutex; the loop thread is the only real user) and bounded; evicted
 * contexts are wiped by hg_hmac_sha256_free and hg_ed25519_free. */
#define KEY_CACHE 64

typedef struct prepared {
  char secret[HG_SECRET_MAX];
  hg_hmac_t *ctx;   /* a "whsec_" secret's, or NULL */
  hg_ed25519_t *ed; /* a "whsk_" key's, or NULL */
  uint64_t used;    /* for LRU */
  int live;
} prepared_t;

static prepared_t key_cache[KEY_CACHE];
static uint64_t key_clock;
static uv_mutex_t key_mutex;
static uv_once_t key_once = UV_ONCE_INIT;

static void key_init(void) { uv_mutex_init(&key_mutex); }

/* Returns the prepared entry for secret (a "whsec_" secret or a "whsk_"
 * key; mutex held by the caller), or NULL when it is malformed or memory
 * ran out. */
static prepared_t *prepared(const char *secret) {
  prepared_t *victim = &key_cache[0];
  for (size_t i = 0; i < KEY_CACHE; i++) {
    prepared_t *p = &key_cache[i];
    if (p->live && strcmp(p->secret, secret) == 0) {
      p->used = ++key_clock;
      return p;
    }
    if (!p->live || p->used < victim->used) victim = p;
  }
  if (strlen(secret) >= HG_SECRET_MAX) return NULL;
  unsigned char key[HG_SECRET_MAX_BYTES];
  size_t keylen = 0;
  int v1a = hg_signing_key_is_v1a(secret);
  if ((v1a ? seed_of(secret, key) : secret_key(secret, key, &keylen)) != 0) return NULL;
  hg_hmac_sha256_free(victim->ctx);
  hg_ed25519_free(victim->ed);
  victim->ctx = NULL;
  victim->ed = NULL;
  victim->live = 0;
  if (v1a)
    victim->ed = hg_ed25519_new(key);
  else
    victim->ctx = hg_hmac_sha256_new(key, keylen);
  memset(key, 0, sizeof(key));
  if (victim->ctx == NULL && victim->ed == NULL) return NULL;
  snprintf(victim->secret, sizeof(victim->secret), "%s", secret);
  victim->live = 1;
  victim->used = ++key_clock;
  return victim;
}

/* The signed content "<id>.<ts>.<body>" as five parts for the HMAC calls;
 * tsbuf (24 bytes) holds the timestamp's digits. */
static void signed_parts(const char *msg_id, int64_t ts, const char *body, size_t len, char tsbuf[24],
                         const void *parts[5], size_t lens[5]) {
  size_t tslen = hg_fmt_i64(tsbuf, ts);
  parts[0] = msg_id, lens[0] = strlen(msg_id);
  parts[1] = ".", lens[1] = 1;
  parts[2] = tsbuf, lens[2] = tslen;
  parts[3] = ".", lens[3] = 1;
  parts[4] = body, lens[4] = len;
}

/* The MAC of "<id>.<ts>.<body>" under key, as base64 text (44 characters
 * and a NUL in b64). */
static int mac_b64(const unsigned char *key, size_t keylen, const char *msg_id, int64_t ts,
                   const char *body, size_t len, char b64[45]) {
  char tsbuf[24];
  const void *parts[5];
  size_t lens[5];
  signed_parts(msg_id, ts, body, len, tsbuf, parts, lens);
  unsigned char mac[32];
  int rc = hg_hmac_sha256_parts(key, keylen, parts, lens, 5, mac);
  if (rc == 0) rc = hg_base64_encode(mac, sizeof(mac), b64, 45) < 0 ? HG_EINVAL : 0;
  return rc;
}

int hg_sign_v1(const char *secret, const char *msg_id, int64_t ts, const char *body, size_t len, char *out,
               size_t outcap) {
  if (outcap > 0) out[0] = '\0';
  if (secret == NULL || msg_id == NULL || (body == NULL && len > 0)) return HG_EINVAL;
  if (outcap < HG_SIG_V1_LEN + 1) {
    /* Keep the error order: a bad secret is HG_EINVAL even here. */
    unsigned char key[HG_SECRET_MAX_BYTES];
    size_t keylen = 0;
    int bad = secret_key(secret, key, &keylen);
    memset(key, 0, sizeof(key));
    return bad ? HG_EINVAL : HG_ETOOBIG;
  }
  char tsbuf[24];
  const void *parts[5];
  size_t lens[5];
  signed_parts(msg_id, ts, body, len, tsbuf, parts, lens);
  unsigned char mac[32];
  int rc = HG_EINVAL;
  uv_once(&key_once, key_init);
  uv_mutex_lock(&key_mutex);
  /* A "whsk_" key is no HMAC secret, whatever its text decodes to. */
  prepared_t *p = hg_signing_key_is_v1a(secret) ? NULL : prepared(secret);
  if (p != NULL && hg_hmac_sha256_run(p->ctx, parts, lens, 5, mac) == 0) rc = 0;
  uv_mutex_unlock(&key_mutex);
  if (rc != 0) return HG_EINVAL;
  /* The signature goes out in clear, so the faster encoder for public
   * bytes will do (verification compares with the constant-time one). */
  memcpy(out, "v1,", 3);
  if (hg_base64_encode_public(mac, sizeof(mac), out + 3, outcap - 3) != 44) return HG_EINVAL;
  return HG_SIG_V1_LEN;
}

int hg_sign_v1a(const char *key, const char *msg_id, int64_t ts, const char *body, size_t len, char *out,
                size_t outcap) {
  if (outcap > 0) out[0] = '\0';
  if (!hg_signing_key_is_v1a(key) || msg_id == NULL || (body == NULL && len > 0)) return HG_EINVAL;
  if (outcap < HG_SIG_V1A_LEN + 1) {
    unsigned char seed[HG_ED25519_KEY_BYTES];
    int bad = seed_of(key, seed);
    memset(seed, 0, sizeof(seed));
    return bad ? HG_EINVAL : HG_ETOOBIG;
  }
  char tsbuf[24];
  const void *parts[5];
  size_t lens[5];
  signed_parts(msg_id, ts, body, len, tsbuf, parts, lens);
  unsigned char sig[HG_ED25519_SIG_BYTES];
  int rc = HG_EINVAL;
  uv_once(&key_once, key_init);
  uv_mutex_lock(&key_mutex);
  prepared_t *p = prepared(key);
  if (p != NULL) rc = hg_ed25519_sign(p->ed, parts, lens, 5, sig);
  uv_mutex_unlock(&key_mutex);
  if (rc != 0) return rc;
  memcpy(out, "v1a,", 4);
  if (hg_base64_encode_public(sig, sizeof(sig), out + 4, outcap - 4) != 88) return HG_EINVAL;
  return HG_SIG_V1A_LEN;
}

int hg_sign_header(const char *const *secrets, size_t n, const char *msg_id, int64_t ts, const char *body,
                   size_t len, char *out, size_t outcap) {
  if (outcap > 0) out[0] = '\0';
  if (n == 0) return HG_EINVAL;
  size_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    if (i > 0) {
      if (outcap - pos < 2) {
        out[0] = '\0'; /* pos > 0 here, so outcap > 0 */
        return HG_ETOOBIG;
      }
      out[pos++] = ' ';
    }
    int rc = hg_signing_key_is_v1a(secrets[i]) ? hg_sign_v1a(secrets[i], msg_id, ts, body, len, out + pos, outcap - pos)
                                               : hg_sign_v1(secrets[i], msg_id, ts, body, len, out + pos, outcap - pos);
    if (rc < 0) {
      if (outcap > 0) out[0] = '\0';
      return rc;
    }
    pos += (size_t)rc;
  }
  return (int)pos;
}

/* Parses a webhook-timestamp: 1..15 decimal digits, nothing else (15
 * digits of seconds is thirty million years; no overflow below). */
static int parse_ts(const char *s, int64_t *out) {
  int64_t v = 0;
  size_t i = 0;
  for (; s[i]; i++) {
    if (s[i] < '0' || s[i] > '9' || i >= 15) return HG_EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  if (i == 0) return HG_EINVAL;
  *out = v;
  return 0;
}

int hg_verify(const char *const *secrets, size_t n, const char *msg_id, const char *ts_header,
              const char *sig_header, const char *body, size_t len, int64_t now, int tolerance_s) {
  int64_t ts;
  unsigned char key[HG_SECRET_MAX_BYTES];
  size_t keylen = 0;
  char expect[45];
  int rc;

  if (msg_id == NULL || *msg_id == '\0' || ts_header == NULL || sig_header == NULL || n == 0)
    return HG_EINVAL;
  if (body == NULL && len > 0) return HG_EINVAL;
  if (parse_ts(ts_header, &ts) != 0) return HG_EINVAL;

  /* A header with no "<version>,<signature>" entry is malformed, not
   * merely unmatched. */
  int entries = 0;
  for (const char *p = sig_header; *p;) {
    while (*p == ' ') p++;
    const char *end = p;
    while (*end && *end != ' ') end++;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    if (comma != NULL && comma > p && comma + 1 < end) entries++;
    p = end;
  }
  if (entries == 0) return HG_EINVAL;

  for (size_t i = 0; i < n; i++) {
    if ((rc = secret_key(secrets[i], key, &keylen)) != 0) goto done;
  }

  int64_t skew = now > ts ? now - ts : ts - now;
  if (tolerance_s < 0 || skew > tolerance_s) {
    rc = HG_ETIMEDOUT;
    goto done;
  }

  rc = HG_EFORBIDDEN;
  for (size_t i = 0; i < n && rc == HG_EFORBIDDEN; i++) {
    int mrc;
    secret_key(secrets[i], key, &keylen);
    if ((mrc = mac_b64(key, keylen, msg_id, ts, body, len, expect)) != 0) {
      rc = mrc;
      goto done;
    }
    /* Compare the base64 text, not the decoded bytes: a signature with
     * different padding bits must not verify. */
    for (const char *p = sig_header; *p;) {
      while (*p == ' ') p++;
      const char *end = p;
      while (*end && *end != ' ') end++;
      if (end - p == HG_SIG_V1_LEN && memcmp(p, "v1,", 3) == 0 && hg_ct_equal(p + 3, expect, 44)) {
        rc = 0;
        break;
      }
      p = end;
    }
  }
done:
  memset(key, 0, sizeof(key));
  return rc;
}
