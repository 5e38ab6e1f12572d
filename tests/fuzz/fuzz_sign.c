/* fuzz_sign.c: Standard Webhooks signing and verification (core/sign.c).
 *
 * Input: four lines, then the body: a secret, a message id, a timestamp
 * header, a webhook-signature header; everything after the fourth newline
 * is the body. hg_verify runs on them as a receiver would (any bytes in any
 * header). Then, when the secret is one hg_sign_v1 accepts:
 *  - the signature it makes verifies, alone and as one entry of a
 *    hg_sign_header rotation header, at the timestamp and at the edge of
 *    the tolerance, and not past it;
 *  - the same signature fails for a body one byte longer, another id, or
 *    one character changed;
 *  - hg_secret_check's accepted secrets are ones hg_sign_v1 accepts. */
#include "base/common.h"
#include "base/sign.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what) {
  fprintf(stderr, "sign: %s\n", what);
  abort();
}

static int verify_res_ok(int r) {
  return r == 0 || r == HG_EINVAL || r == HG_ETIMEDOUT || r == HG_EFORBIDDEN || r == HG_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  char *f[4] = {"", "", "", ""};
  char *p = text;
  for (int i = 0; i < 4; i++) {
    char *nl = memchr(p, '\n', (size_t)(text + size - p));
    if (nl == NULL) break;
    *nl = '\0';
    f[i] = p;
    p = nl + 1;
  }
  const char *secret = f[0], *msg_id = f[1], *ts_header = f[2], *sig_header = f[3];
  /* The body: the rest, in a buffer of exactly its length. */
  size_t len = (size_t)(text + size - p);
  char *body = malloc(len + 1);
  if (body == NULL) abort();
  memcpy(body, p, len);
  const char *secrets[2] = {secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
  int r = hg_verify(secrets, 1, msg_id, ts_header, sig_header, body, len, 1614265330, 300);
  if (!verify_res_ok(r)) fail("hg_verify returned an unknown code");
  r = hg_verify(secrets, 2, msg_id, ts_header, sig_header, body, len, 0, -1);
  if (r != HG_ETIMEDOUT && r != HG_EINVAL && r != HG_ENOMEM) fail("a negative tolerance did not refuse");

  /* Round trips. */
  int64_t ts = 1614265330 + (int64_t)(len * 7919 % 100000);
  char tsbuf[24];
  snprintf(tsbuf, sizeof(tsbuf), "%" PRId64, ts);
  char sig[HG_SIG_V1_LEN + 1];
  int n = hg_sign_v1(secret, msg_id, ts, body, len, sig, sizeof(sig));
  int checked = hg_secret_check(secret);
  if (checked == 0 && n < 0) fail("a secret hg_secret_check accepts cannot sign");
  if (n >= 0) {
    if (n != HG_SIG_V1_LEN || strlen(sig) != HG_SIG_V1_LEN || strncmp(sig, "v1,", 3) != 0) fail("bad v1 entry");
    if (*msg_id != '\0') {
      if (hg_verify(secrets, 1, msg_id, tsbuf, sig, body, len, ts, 300) != 0) fail("own signature does not verify");
      if (hg_verify(secrets, 1, msg_id, tsbuf, sig, body, len, ts + 300, 300) != 0) fail("tolerance edge refused");
      if (hg_verify(secrets, 1, msg_id, tsbuf, sig, body, len, ts - 301, 300) != HG_ETIMEDOUT)
        fail("past the tolerance accepted");
      char *longer = malloc(len + 1);
      if (longer == NULL) abort();
      memcpy(longer, body, len);
      longer[len] = 'x';
      if (hg_verify(secrets, 1, msg_id, tsbuf, sig, longer, len + 1, ts, 300) != HG_EFORBIDDEN)
        fail("a longer body verifies");
      free(longer);
      char bad[HG_SIG_V1_LEN + 1];
      memcpy(bad, sig, sizeof(bad));
      bad[10] = bad[10] == 'A' ? 'B' : 'A';
      if (hg_verify(secrets, 1, msg_id, tsbuf, bad, body, len, ts, 300) != HG_EFORBIDDEN)
        fail("a changed signature verifies");
      size_t il = strlen(msg_id);
      char *other_id = malloc(il + 2);
      if (other_id == NULL) abort();
      memcpy(other_id, msg_id, il);
      memcpy(other_id + il, "x", 2);
      if (hg_verify(secrets, 1, other_id, tsbuf, sig, body, len, ts, 300) != HG_EFORBIDDEN)
        fail("another message id verifies");
      free(other_id);
      char hdr[2 * 48 + 1];
      int hn = hg_sign_header(secrets, 2, msg_id, ts, body, len, hdr, sizeof(hdr));
      if (hn != 2 * HG_SIG_V1_LEN + 1 || strncmp(hdr, sig, HG_SIG_V1_LEN) != 0) fail("rotation header");
      if (hg_verify(secrets + 1, 1, msg_id, tsbuf, hdr, body, len, ts, 300) != 0)
        fail("a rotation header does not verify with its second secret");
      if (hg_sign_header(secrets, 2, msg_id, ts, body, len, hdr, 2 * 48 - 1) != HG_ETOOBIG || hdr[0] != '\0')
        fail("a short buffer was not refused");
    }
  }
  free(body);
  free(text);
  return 0;
}
