/* sign.h: Standard Webhooks signatures (https://www.standardwebhooks.com).
 *
 * The signed content is "<webhook-id>.<webhook-timestamp>.<body>", the MAC
 * is HMAC-SHA-256 keyed with the base64-decoded secret (the text after
 * "whsec_"), and the webhook-signature header holds space-separated
 * "v1,<base64 MAC>" entries, one per secret during a rotation. */
#ifndef HG_SIGN_H
#define HG_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* Room for any secret this module accepts, with its NUL. */
#define HG_SECRET_MAX 100
/* Length of one "v1,<base64 of 32 bytes>" entry, without a NUL. */
#define HG_SIG_V1_LEN 47
/* Secrets accepted from users decode to this many bytes. */
#define HG_SECRET_MIN_BYTES 24
#define HG_SECRET_MAX_BYTES 64

/* Writes "whsec_" + base64 of 32 random bytes (50 characters) to out.
 * Returns 0 or HG_EIO (no randomness; out then holds ""). */
int hg_secret_generate(char out[HG_SECRET_MAX]);

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

/* The webhook-signature header value for n >= 1 secrets: one v1 entry per
 * secret, in order, separated by single spaces, NUL-terminated. Needs
 * outcap >= 48 * n. Returns the length written or, as hg_sign_v1, a
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
