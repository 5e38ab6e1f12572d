/* crypto.c: the process-wide random generator (mbedTLS CTR_DRBG), base64
 * (mbedTLS's constant-time coder; libcrypto's for public bytes), and
 * SHA-256 / HMAC-SHA-256 and Ed25519 from OpenSSL's libcrypto.
 *
 * Why two libraries: TLS is mbedTLS, but Debian 12's mbedTLS 2.28 has only a
 * portable SHA-256, and signing every delivery made it the largest single
 * cost on the delivery path (1.9 us per 600-byte HMAC here). libcrypto picks
 * the CPU's SHA extensions or AVX2 at run time (0.45 us for the same MAC);
 * see docs/performance.md. */
#include "base/crypto.h"

#include "base/common.h"

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_once_t rng_once = UV_ONCE_INIT;
static uv_mutex_t rng_mutex;
static int rng_mutex_ok;
static int rng_seeded; /* guarded by rng_mutex */
static mbedtls_entropy_context rng_entropy;
static mbedtls_ctr_drbg_context rng_drbg;

static void rng_once_init(void) {
  /* uv_mutex_init cannot fail on Linux short of resource exhaustion; a
   * failure leaves rng_mutex_ok 0 and every call reports HG_EIO. */
  if (uv_mutex_init(&rng_mutex) == 0) rng_mutex_ok = 1;
}

/* Seeds under rng_mutex, held by the caller. */
static int seed_locked(void) {
  static const char personalization[] = "hookgate ctr_drbg";
  if (rng_seeded) return 0;
  mbedtls_entropy_init(&rng_entropy);
  mbedtls_ctr_drbg_init(&rng_drbg);
  int rc = mbedtls_ctr_drbg_seed(&rng_drbg, mbedtls_entropy_func, &rng_entropy,
                                 (const unsigned char *)personalization, sizeof(personalization) - 1);
  if (rc != 0) {
    mbedtls_ctr_drbg_free(&rng_drbg);
    mbedtls_entropy_free(&rng_entropy);
    return HG_EIO;
  }
  rng_seeded = 1;
  return 0;
}

int hg_crypto_init(void) {
  uv_once(&rng_once, rng_once_init);
  if (!rng_mutex_ok) return HG_EIO;
  uv_mutex_lock(&rng_mutex);
  int rc = seed_locked();
  uv_mutex_unlock(&rng_mutex);
  return rc;
}

int hg_random(void *buf, size_t n) {
  uv_once(&rng_once, rng_once_init);
  if (!rng_mutex_ok) return HG_EIO;
  unsigned char *p = buf;
  int rc;
  uv_mutex_lock(&rng_mutex);
  if ((rc = seed_locked()) != 0) goto done;
  /* CTR_DRBG serves at most MBEDTLS_CTR_DRBG_MAX_REQUEST bytes per call. */
  while (n > 0) {
    size_t chunk = n < MBEDTLS_CTR_DRBG_MAX_REQUEST ? n : MBEDTLS_CTR_DRBG_MAX_REQUEST;
    if (mbedtls_ctr_drbg_random(&rng_drbg, p, chunk) != 0) {
      rc = HG_EIO;
      goto done;
    }
    p += chunk;
    n -= chunk;
  }
done:
  uv_mutex_unlock(&rng_mutex);
  return rc;
}

/* The SHA-256 implementation and the HMAC algorithm, fetched once: an
 * implicit fetch by name on every call costs more than hashing a key.
 * Each thread that hashes keeps one digest context (freed when the thread
 * ends), where EVP_Digest would allocate and free two per call: a request
 * hashes its API key. */
static uv_once_t md_once = UV_ONCE_INIT;
static EVP_MD *md_sha256;
static EVP_MAC *mac_hmac;
static pthread_key_t md_ctx_key;
static int md_ctx_key_ok;

static void md_ctx_free(void *ctx) { EVP_MD_CTX_free(ctx); }

static void md_init(void) {
  md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  mac_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  /* libuv's keys have no destructor: pthread's do. */
  md_ctx_key_ok = pthread_key_create(&md_ctx_key, md_ctx_free) == 0;
  if (md_sha256 == NULL || mac_hmac == NULL) {
    /* Only a broken libcrypto installation gets here. */
    fputs("hookgate: libcrypto has no SHA-256 or HMAC\n", stderr);
    abort();
  }
}

/* This thread's digest context, made on first use; NULL when none can be
 * kept (EVP_Digest then does with one of its own). After md_init. */
static EVP_MD_CTX *thread_md_ctx(void) {
  if (!md_ctx_key_ok) return NULL;
  EVP_MD_CTX *ctx = pthread_getspecific(md_ctx_key);
  if (ctx != NULL) return ctx;
  if ((ctx = EVP_MD_CTX_new()) != NULL && pthread_setspecific(md_ctx_key, ctx) != 0) {
    EVP_MD_CTX_free(ctx);
    ctx = NULL;
  }
  return ctx;
}

void hg_sha256(const void *data, size_t n, unsigned char out[32]) {
  uv_once(&md_once, md_init);
  unsigned int outlen = 0;
  EVP_MD_CTX *ctx = thread_md_ctx();
  int ok = ctx != NULL ? EVP_DigestInit_ex2(ctx, md_sha256, NULL) == 1 && EVP_DigestUpdate(ctx, data, n) == 1 &&
                             EVP_DigestFinal_ex(ctx, out, &outlen) == 1
                       : EVP_Digest(data, n, out, &outlen, md_sha256, NULL) == 1;
  if (!ok || outlen != 32) {
    fputs("hookgate: out of memory computing SHA-256\n", stderr);
    abort();
  }
}

struct hg_hmac {
  EVP_MAC_CTX *ctx; /* keyed; EVP_MAC_CTX_free wipes it */
};

hg_hmac_t *hg_hmac_sha256_new(const void *key, size_t keylen) {
  uv_once(&md_once, md_init);
  hg_hmac_t *h = malloc(sizeof(*h));
  if (h == NULL) return NULL;
  if ((h->ctx = EVP_MAC_CTX_new(mac_hmac)) == NULL) {
    free(h);
    return NULL;
  }
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  /* HMAC with an empty key is valid; libcrypto wants a non-NULL pointer. */
  static const unsigned char empty[1];
  if (EVP_MAC_init(h->ctx, keylen > 0 ? key : empty, keylen, params) != 1) {
    hg_hmac_sha256_free(h);
    return NULL;
  }
  return h;
}

int hg_hmac_sha256_run(hg_hmac_t *h, const void *const *parts, const size_t *lens, size_t nparts,
                       unsigned char out[32]) {
  size_t outlen = 0;
  /* A NULL key re-initialises HMAC with the key it already holds. */
  int ok = EVP_MAC_init(h->ctx, NULL, 0, NULL) == 1;
  for (size_t i = 0; ok && i < nparts; i++) {
    if (lens[i] == 0) continue;
    ok = EVP_MAC_update(h->ctx, parts[i], lens[i]) == 1;
  }
  if (ok) ok = EVP_MAC_final(h->ctx, out, &outlen, 32) == 1 && outlen == 32;
  if (!ok) {
    memset(out, 0, 32);
    return HG_ENOMEM;
  }
  return 0;
}

void hg_hmac_sha256_free(hg_hmac_t *h) {
  if (h == NULL) return;
  EVP_MAC_CTX_free(h->ctx);
  free(h);
}

int hg_hmac_sha256_parts(const void *key, size_t keylen, const void *const *parts, const size_t *lens,
                         size_t nparts, unsigned char out[32]) {
  hg_hmac_t *ctx = hg_hmac_sha256_new(key, keylen);
  if (ctx == NULL) {
    memset(out, 0, 32);
    return HG_ENOMEM;
  }
  int rc = hg_hmac_sha256_run(ctx, parts, lens, nparts, out);
  hg_hmac_sha256_free(ctx);
  return rc;
}

void hg_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n, unsigned char out[32]) {
  const void *parts[1] = {data};
  size_t lens[1] = {n};
  if (hg_hmac_sha256_parts(key, keylen, parts, lens, 1, out) != 0) {
    fputs("hookgate: out of memory computing HMAC-SHA-256\n", stderr);
    abort();
  }
}

struct hg_ed25519 {
  EVP_PKEY *pkey; /* holds the private key; EVP_PKEY_free wipes it */
  unsigned char pub[HG_ED25519_KEY_BYTES];
};

hg_ed25519_t *hg_ed25519_new(const unsigned char seed[HG_ED25519_KEY_BYTES]) {
  hg_ed25519_t *k = calloc(1, sizeof(*k));
  size_t publen = sizeof(k->pub);
  if (k == NULL) return NULL;
  k->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, HG_ED25519_KEY_BYTES);
  if (k->pkey == NULL || EVP_PKEY_get_raw_public_key(k->pkey, k->pub, &publen) != 1 || publen != HG_ED25519_KEY_BYTES)
    goto fail;
  return k;
fail:
  hg_ed25519_free(k);
  return NULL;
}

void hg_ed25519_public(const hg_ed25519_t *k, unsigned char pub[HG_ED25519_KEY_BYTES]) {
  memcpy(pub, k->pub, HG_ED25519_KEY_BYTES);
}

/* Ed25519 hashes the message twice, so libcrypto signs only a whole
 * message (no update calls): the parts are joined first, on the stack when
 * they are small (a typical event is well under 4 KiB). */
int hg_ed25519_sign(const hg_ed25519_t *k, const void *const *parts, const size_t *lens, size_t nparts,
                    unsigned char sig[HG_ED25519_SIG_BYTES]) {
  unsigned char small[4096], *msg = small;
  size_t n = 0, siglen = HG_ED25519_SIG_BYTES;
  int rc = HG_ENOMEM;
  EVP_MD_CTX *ctx = NULL;
  for (size_t i = 0; i < nparts; i++)
    n += lens[i];
  if (n > sizeof(small) && (msg = malloc(n)) == NULL) goto done;
  for (size_t i = 0, at = 0; i < nparts; at += lens[i], i++)
    if (lens[i] > 0) memcpy(msg + at, parts[i], lens[i]);
  if ((ctx = EVP_MD_CTX_new()) == NULL) goto done;
  /* No digest: Ed25519 brings its own (SHA-512), and libcrypto wants NULL. */
  if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1) goto done;
  if (EVP_DigestSign(ctx, sig, &siglen, msg, n) != 1 || siglen != HG_ED25519_SIG_BYTES) goto done;
  rc = 0;
done:
  EVP_MD_CTX_free(ctx);
  if (msg != small) free(msg);
  if (rc != 0) memset(sig, 0, HG_ED25519_SIG_BYTES);
  return rc;
}

void hg_ed25519_free(hg_ed25519_t *k) {
  if (k == NULL) return;
  EVP_PKEY_free(k->pkey);
  free(k);
}

int hg_ed25519_verify(const unsigned char pub[HG_ED25519_KEY_BYTES], const void *msg, size_t n,
                      const unsigned char sig[HG_ED25519_SIG_BYTES]) {
  EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, HG_ED25519_KEY_BYTES);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = pkey != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
           EVP_DigestVerify(ctx, sig, HG_ED25519_SIG_BYTES, msg, n) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pkey);
  return ok;
}

int hg_base64_encode(const unsigned char *in, size_t n, char *out, size_t outcap) {
  size_t olen = 0;
  if (outcap > 0) out[0] = '\0';
  /* The text must fit an int, the return type. */
  if (n > (size_t)INT32_MAX / 4 * 3 - 3 || outcap < HG_BASE64_LEN(n) + 1) return HG_ETOOBIG;
  if (n == 0) return 0;
  if (mbedtls_base64_encode((unsigned char *)out, outcap, &olen, in, n) != 0) {
    out[0] = '\0';
    return HG_ETOOBIG;
  }
  out[olen] = '\0';
  return (int)olen;
}

int hg_base64_encode_public(const unsigned char *in, size_t n, char *out, size_t outcap) {
  if (outcap > 0) out[0] = '\0';
  /* The same bound as hg_base64_encode; it also keeps n within the int
   * EVP_EncodeBlock takes. */
  if (n > (size_t)INT32_MAX / 4 * 3 - 3 || outcap < HG_BASE64_LEN(n) + 1) return HG_ETOOBIG;
  /* Writes the padded text and its NUL. */
  return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int hg_base64url_encode(const unsigned char *in, size_t n, char *out, size_t outcap) {
  size_t len = n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
  if (outcap > 0) out[0] = '\0';
  if (outcap < len + 1) return HG_ETOOBIG;
  /* Padding needs room the caller did not have to give: encode into a
   * bounded scratch in pieces of 48 bytes (64 characters, no padding
   * until the last piece). */
  size_t done = 0;
  char *o = out;
  while (done < n) {
    size_t chunk = n - done < 48 ? n - done : 48;
    char tmp[65];
    int m = hg_base64_encode(in + done, chunk, tmp, sizeof(tmp));
    if (m < 0) return m;
    for (int i = 0; i < m; i++) {
      char c = tmp[i];
      if (c == '=') break;
      *o++ = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    done += chunk;
  }
  *o = '\0';
  return (int)(o - out);
}

static int b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

int hg_base64_decode(const char *in, size_t n, unsigned char *out, size_t outcap, size_t *outlen) {
  *outlen = 0;
  if (n == 0) return 0;
  /* mbedTLS tolerates line breaks, trailing spaces and missing padding;
   * secrets and signatures must be exact, so check the shape first. */
  if (n % 4 != 0) return HG_EINVAL;
  size_t pad = 0;
  if (in[n - 1] == '=') pad = in[n - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i < n - pad; i++)
    if (!b64_char(in[i])) return HG_EINVAL;
  size_t need = n / 4 * 3 - pad;
  if (outcap < need) return HG_ETOOBIG;
  size_t olen = 0;
  int rc = mbedtls_base64_decode(out, outcap, &olen, (const unsigned char *)in, n);
  if (rc == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) return HG_ETOOBIG;
  if (rc != 0) return HG_EINVAL;
  *outlen = olen;
  return 0;
}

void hg_hex_encode(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

int hg_ct_equal(const void *a, const void *b, size_t n) {
  /* Eight bytes at a time (a key hash is four words), every byte read
   * whatever the earlier ones held. */
  const unsigned char *x = a, *y = b;
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t u, v;
    memcpy(&u, x + i, 8);
    memcpy(&v, y + i, 8);
    diff |= u ^ v;
    /* Opaque to the optimiser: no early exit once diff is known non-zero. */
    __asm__ volatile("" : "+r"(diff));
  }
  for (; i < n; i++) {
    diff |= (uint64_t)(x[i] ^ y[i]);
    __asm__ volatile("" : "+r"(diff));
  }
  /* 1 when diff is 0, 0 otherwise, without a data-dependent branch: the
   * top bit of diff | -diff is set exactly when diff is not 0. */
  return (int)(((diff | (0 - diff)) >> 63) ^ 1);
}
