/* crypto.h: randomness, hashes, MACs, Ed25519 and encodings (mbedTLS for
 * randomness and base64, OpenSSL's libcrypto for SHA-256, HMAC, Ed25519 and
 * the base64 of public bytes: see crypto.c).
 *
 * Every function here is thread-safe. Nothing here logs: inputs are often
 * secrets. */
#ifndef HG_CRYPTO_H
#define HG_CRYPTO_H

#include <stddef.h>

/* Bytes of base64 text (with padding, without the NUL) for n input bytes. */
#define HG_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Seeds the process-wide CTR_DRBG from the operating system's entropy
 * source. Idempotent and safe to call from any thread; hg_random calls it
 * on first use, so calling it at start-up only moves the cost (and the
 * failure) there. Returns 0 or HG_EIO (no entropy source); a failed seed
 * is retried by the next call. */
int hg_crypto_init(void);

/* Fills buf with n bytes from the process-wide CTR_DRBG, serialized by a
 * mutex. Returns 0 or HG_EIO (the generator could not be seeded or
 * failed); on failure buf holds no usable bytes. */
int hg_random(void *buf, size_t n);

/* SHA-256 of data (n bytes) into out. */
void hg_sha256(const void *data, size_t n, unsigned char out[32]);

/* HMAC-SHA-256 of data keyed with key into out. libcrypto allocates a small
 * context for this; should that allocation fail the process aborts, because
 * a void function cannot report it and a wrong MAC must never escape. Use
 * hg_hmac_sha256_parts to get the error instead. */
void hg_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n, unsigned char out[32]);

/* HMAC-SHA-256 over the concatenation of nparts buffers (parts[i] of
 * lens[i] bytes; a part of length 0 may be NULL), without building the
 * concatenation. Returns 0 or HG_ENOMEM; out is zeroed on failure and must
 * then not be used. */
int hg_hmac_sha256_parts(const void *key, size_t keylen, const void *const *parts, const size_t *lens,
                         size_t nparts, unsigned char out[32]);

/* A prepared HMAC-SHA-256 key, for a key that MACs many messages: the key
 * schedule (two hash blocks) is done once. hg_hmac_sha256_new returns NULL
 * when memory ran out; hg_hmac_sha256_run MACs the concatenation of the
 * parts as hg_hmac_sha256_parts does (0 or HG_ENOMEM, out zeroed on
 * failure); a prepared key is used by one thread at a time;
 * hg_hmac_sha256_free wipes and frees it (NULL is ignored). */
typedef struct hg_hmac hg_hmac_t;
hg_hmac_t *hg_hmac_sha256_new(const void *key, size_t keylen);
int hg_hmac_sha256_run(hg_hmac_t *h, const void *const *parts, const size_t *lens, size_t nparts,
                       unsigned char out[32]);
void hg_hmac_sha256_free(hg_hmac_t *h);

/* Ed25519 (RFC 8032, pure: no pre-hash) from libcrypto. A private key is
 * its 32-byte seed (32 bytes from hg_random make one); the public key is 32
 * bytes, a signature 64. hg_ed25519_new prepares a key from its seed (the
 * public key is derived once, here) and returns NULL when memory ran out
 * or libcrypto refused the key; hg_ed25519_public copies its public key;
 * hg_ed25519_sign signs the concatenation of nparts buffers (parts[i] of
 * lens[i] bytes; a part of length 0 may be NULL) and returns 0 or
 * HG_ENOMEM (sig zeroed); a prepared key may sign from several threads at
 * once; hg_ed25519_free wipes and frees it (NULL is ignored).
 * hg_ed25519_verify returns 1 when sig is a valid signature of msg under
 * the raw public key pub, 0 otherwise (also when memory ran out). */
#define HG_ED25519_KEY_BYTES 32
#define HG_ED25519_SIG_BYTES 64
typedef struct hg_ed25519 hg_ed25519_t;
hg_ed25519_t *hg_ed25519_new(const unsigned char seed[HG_ED25519_KEY_BYTES]);
void hg_ed25519_public(const hg_ed25519_t *k, unsigned char pub[HG_ED25519_KEY_BYTES]);
int hg_ed25519_sign(const hg_ed25519_t *k, const void *const *parts, const size_t *lens, size_t nparts,
                    unsigned char sig[HG_ED25519_SIG_BYTES]);
void hg_ed25519_free(hg_ed25519_t *k);
int hg_ed25519_verify(const unsigned char pub[HG_ED25519_KEY_BYTES], const void *msg, size_t n,
                      const unsigned char sig[HG_ED25519_SIG_BYTES]);

/* Standard base64 (RFC 4648 section 4) with padding. out receives the text
 * and a NUL and must hold HG_BASE64_LEN(n) + 1 bytes. Returns the text's
 * length or HG_ETOOBIG when outcap is too small (out then holds ""
 * if outcap > 0). */
int hg_base64_encode(const unsigned char *in, size_t n, char *out, size_t outcap);

/* hg_base64_encode for bytes that are not secret (a signature that goes out
 * in clear, an id): the same text, contract and errors, from libcrypto's
 * table-driven encoder, several times faster on the signing path but with
 * timing that depends on the bytes. Never use it for keys or secrets. */
int hg_base64_encode_public(const unsigned char *in, size_t n, char *out, size_t outcap);

/* URL-safe base64 (RFC 4648 section 5: '-' and '_'), without padding, NUL-
 * terminated. Returns the length or HG_ETOOBIG. */
int hg_base64url_encode(const unsigned char *in, size_t n, char *out, size_t outcap);

/* Decodes n characters of standard, padded base64. Strict: the length must
 * be a multiple of 4, only the alphabet is allowed, '=' only as the last one
 * or two characters; whitespace is an error. Writes *outlen bytes to out.
 * Returns 0, HG_EINVAL (not base64) or HG_ETOOBIG (outcap too small). */
int hg_base64_decode(const char *in, size_t n, unsigned char *out, size_t outcap, size_t *outlen);

/* Lowercase hex of n bytes; out must hold 2n + 1 bytes (NUL-terminated). */
void hg_hex_encode(const unsigned char *in, size_t n, char *out);

/* Returns 1 if the n bytes at a and b are equal, 0 otherwise, in time that
 * depends only on n. */
int hg_ct_equal(const void *a, const void *b, size_t n);

#endif
