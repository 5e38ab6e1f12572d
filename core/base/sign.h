/* sign.h: Standard Webhooks signatures (https://www.standardwebhooks.com).
 *
 * The signed content is "<webhook-id>.<webhook-timestamp>.<body>", the MAC
 * is HMAC-SHA-256 keyed with the base64-decoded secret (the text after
 * "whsec_"), and the webhook-signature header holds space-separated
 * "v1,<base64 MAC>" entries, one per secret during a rotation.
 *
 * The asymmetric scheme v1a signs the same content with Ed25519: the
 * gateway holds the signing key "whsk_<base64 of the 32-byte seed>", the
 * receiver the public key "whpk_<base64 of the 32-byte raw public key>",
 * and the header entry is "v1a,<base64 of the 64-byte signature>". Signing
 * keys and secrets live side by side (a webhook's keys are all of one
 * scheme); the prefix tells which scheme a key signs with. */
#ifndef HG_SIGN_H
#define HG_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* Room for any secret this module accepts, with its NUL. */
#define HG_SECRET_MAX 100
/* Length of one "v1,<base64 of 32 bytes>" entry, without a NUL. */
#define HG_SIG_V1_LEN 47
/* Length of one "v1a,<base64 of 64 bytes>" entry, without a NUL: the
 * longest entry of either scheme. */
#define HG_SIG_V1A_LEN 92
#define HG_SIG_ENTRY_MAX HG_SIG_V1A_LEN
/* Room for a "whpk_" public key (49 characters) and its NUL. */
#define HG_PUBLIC_KEY_MAX 50
/* Secrets accepted from users decode to this many bytes. */
#define HG_SECRET_MIN_BYTES 24
#define HG_SECRET_MAX_BYTES 64

/* Writes "whsec_" + base64 of 32 random bytes (50 characters) to out.
 * Returns 0 or HG_EIO (no randomness; out then holds ""). */
int hg_secret_generate(char out[HG_SECRET_MAX]);

/* Writes a new Ed25519 signing key, "whsk_" + base64 of 32 random bytes
 * (49 characters), to out. Returns 0 or HG_EIO (out then holds ""). */
int hg_signing_key_generate(char out[HG_SECRET_MAX]);

/* 1 when key is a v1a signing key (starts "whsk_"), else 0 (NULL too). */
int hg_signing_key_is_v1a(const char *key);

/* Writes the public key of a "whsk_" signing key, "whpk_" + base64 of the
 * 32 raw bytes, to out. Returns 0, HG_EINVAL (not a signing key; out then
 * holds "") or HG_ENOMEM. */
int hg_public_key(const char *signing_key, char out[HG_PUBLIC_KEY_MAX]);

/* Validates a secret a user supplies: "whsec_" followed by strict padded
 * base64 that decodes to 24..64 bytes. Returns 0 or HG_EINVAL (also for
 * NULL). */
int hg_secret_check(const char *secret);

/* Signs one message with one secret: writes "v1,<base64 MAC>" (47
 * characters) and a NUL to out. The secret's "whsec_" prefix is optional
 * here, as in the reference libraries, but what follows must be strict
 * base64 of 1..64 bytes. body may be NULL when len is 0. Returns the
 * length written, HG_EINVAL (bad secret or NULL msg_id), HG_ETOOBIG
 * (outcap < 48) or HG_ENOMEM. */
int hg_sign_v1(const char *secret, const char *msg_id, int64_t ts, const char *body, size_t len, char *out,
               size_t outcap);

/* Signs one message with one "whsk_" signing key: writes "v1a,<base64 of
 * the Ed25519 signature>" (92 characters) and a NUL to out. Returns the
 * length written, HG_EINVAL (not a signing key, or NULL msg_id),
 * HG_ETOOBIG (outcap < 93) or HG_ENOMEM. */
int hg_sign_v1a(const char *key, const char *msg_id, int64_t ts, const char *body, size_t len, char *out,
                size_t outcap);

/* The webhook-signature header value for n >= 1 keys: one entry per key,
 * in order, separated by single spaces, NUL-terminated; a "whsk_" key
 * gives a v1a entry (hg_sign_v1a), any other a v1 entry (hg_sign_v1).
 * outcap >= (HG_SIG_ENTRY_MAX + 1) * n is always enough (48 * n for v1
 * secrets alone). Returns the length written or, as hg_sign_v1, a
 * negative code (HG_EINVAL also for n == 0); out is then "" if outcap > 0. */
int hg_sign_header(const char *const *secrets, size_t n, const char *msg_id, int64_t ts, const char *body,
                   size_t len, char *out, size_t outcap);

/* Verifies a received webhook against n candidate secrets. ts_header is
 * the webhook-timestamp header (decimal Unix seconds, digits only);
 * sig_header the webhook-signature header: space-separated
 * "<version>,<signature>" entries, where entries of versions other than v1
 * are ignored. now is the current Unix time in seconds. Returns
 *   0              a v1 entry matches the MAC under one of the secrets
 *                  (compared in constant time);
 *   HG_EINVAL      msg_id, ts_header or sig_header missing (NULL or empty),
 *                  the timestamp not an integer, the header holding no
 *                  "<version>,<signature>" entry, n == 0, or a secret that
 *                  is empty, "whsec_" alone or not base64;
 *   HG_ETIMEDOUT   |now - ts| > tolerance_s (always, if tolerance_s < 0);
 *   HG_EFORBIDDEN  no entry matches;
 *   HG_ENOMEM. */
int hg_verify(const char *const *secrets, size_t n, const char *msg_id, const char *ts_header,
              const char *sig_header, const char *body, size_t len, int64_t now, int tolerance_s);

#endif
