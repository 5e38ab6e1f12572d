#include "base/common.h"
#include "base/crypto.h"
#include "hgtest.h"

#include <string.h>
#include <uv.h>

static void sha256_known(void) {
  unsigned char out[32];
  char hex[65];
  hg_sha256("abc", 3, out);
  hg_hex_encode(out, 32, hex);
  CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hg_sha256("", 0, out);
  hg_hex_encode(out, 32, hex);
  CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Each thread keeps a digest context of its own: threads hashing at the
 * same time each get the right digests (and ASan sees the contexts freed
 * as the threads end). */
static int sha256_thread_ok[4];

static void sha256_thread(void *arg) {
  int *ok = arg;
  unsigned char out[32];
  char hex[65];
  *ok = 1;
  for (int i = 0; i < 2000; i++) {
    hg_sha256(i % 2 ? "abc" : "", i % 2 ? 3 : 0, out);
    hg_hex_encode(out, 32, hex);
    if (strcmp(hex, i % 2 ? "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
                          : "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") != 0)
      *ok = 0;
  }
}

static void sha256_threads(void) {
  uv_thread_t t[4];
  for (int i = 0; i < 4; i++) CHECK_EQ_INT(uv_thread_create(&t[i], sha256_thread, &sha256_thread_ok[i]), 0);
  for (int i = 0; i < 4; i++) {
    uv_thread_join(&t[i]);
    CHECK_EQ_INT(sha256_thread_ok[i], 1);
  }
}

/* A prepared key gives the one-shot MAC every time it is reused, for
 * short, empty and longer-than-a-block keys (RFC 4231 test cases 2, 6). */
static void hmac_prepared(void) {
  unsigned char key[131], want[32], got[32];
  memset(key, 0xaa, sizeof(key));
  const size_t keylens[] = {4, 0, 131};
  const char *msgs[] = {"what do ya want for nothing?", "Test Using Larger Than Block-Size Key - Hash Key First", ""};
  for (size_t k = 0; k < HG_ARRAY_LEN(keylens); k++) {
    const unsigned char *kp = k == 0 ? (const unsigned char *)"Jefe" : key;
    hg_hmac_t *h = hg_hmac_sha256_new(kp, keylens[k]);
    CHECK(h != NULL);
    if (h == NULL) continue;
    for (int round = 0; round < 3; round++) {
      for (size_t m = 0; m < HG_ARRAY_LEN(msgs); m++) {
        const void *parts[1] = {msgs[m]};
        size_t lens[1] = {strlen(msgs[m])};
        hg_hmac_sha256(kp, keylens[k], msgs[m], strlen(msgs[m]), want);
        CHECK_EQ_INT(hg_hmac_sha256_run(h, parts, lens, 1, got), 0);
        CHECK(memcmp(want, got, 32) == 0);
      }
    }
    hg_hmac_sha256_free(h);
  }
  /* RFC 4231 case 6 (131-byte key of 0xaa) by value. */
  char hex[65];
  hg_hmac_sha256(key, 131, msgs[1], strlen(msgs[1]), got);
  hg_hex_encode(got, 32, hex);
  CHECK_EQ_STR(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  hg_hmac_sha256_free(NULL);
}

static void hmac_known(void) {
  /* RFC 4231 test case 2. */
  unsigned char out[32];
  char hex[65];
  hg_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out);
  hg_hex_encode(out, 32, hex);
  CHECK_EQ_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  /* The same message in parts. */
  const void *parts[3] = {"what do ya ", NULL, "want for nothing?"};
  size_t lens[3] = {11, 0, 17};
  unsigned char out2[32];
  CHECK_EQ_INT(hg_hmac_sha256_parts("Jefe", 4, parts, lens, 3, out2), 0);
  CHECK(hg_ct_equal(out, out2, 32));
}

static void base64_roundtrip(void) {
  char b[64];
  CHECK_EQ_INT(hg_base64_encode((const unsigned char *)"", 0, b, sizeof(b)), 0);
  CHECK_EQ_STR(b, "");
  CHECK_EQ_INT(hg_base64_encode((const unsigned char *)"f", 1, b, sizeof(b)), 4);
  CHECK_EQ_STR(b, "Zg==");
  CHECK_EQ_INT(hg_base64_encode((const unsigned char *)"foobar", 6, b, sizeof(b)), 8);
  CHECK_EQ_STR(b, "Zm9vYmFy");
  CHECK_EQ_INT(hg_base64_encode((const unsigned char *)"foobar", 6, b, 8), HG_ETOOBIG);
  CHECK_EQ_INT(hg_base64_encode((const unsigned char *)"foobar", 6, b, 9), 8);

  unsigned char bin[3] = {0xfb, 0xff, 0xfe};
  CHECK_EQ_INT(hg_base64_encode(bin, 3, b, sizeof(b)), 4);
  CHECK_EQ_STR(b, "+//+");
  CHECK_EQ_INT(hg_base64url_encode(bin, 3, b, sizeof(b)), 4);
  CHECK_EQ_STR(b, "-__-");
  CHECK_EQ_INT(hg_base64url_encode(bin, 2, b, sizeof(b)), 3);
  CHECK_EQ_STR(b, "-_8");
  CHECK_EQ_INT(hg_base64url_encode(bin, 2, b, 3), HG_ETOOBIG);
  /* Longer than one internal chunk. */
  unsigned char big[100];
  char enc[200];
  for (int i = 0; i < 100; i++) big[i] = (unsigned char)(i * 7);
  CHECK_EQ_INT(hg_base64url_encode(big, 100, enc, sizeof(enc)), 134);
  CHECK_EQ_INT(hg_base64_encode(big, 100, b, sizeof(b)), HG_ETOOBIG);

  unsigned char out[16];
  size_t n = 99;
  CHECK_EQ_INT(hg_base64_decode("Zm9vYmE=", 8, out, sizeof(out), &n), 0);
  CHECK_EQ_INT(n, 5);
  CHECK(memcmp(out, "fooba", 5) == 0);
  CHECK_EQ_INT(hg_base64_decode("", 0, out, sizeof(out), &n), 0);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(hg_base64_decode("Zm9vYmE", 7, out, sizeof(out), &n), HG_EINVAL);
  CHECK_EQ_INT(hg_base64_decode("Zm9v\nYmE=", 9, out, sizeof(out), &n), HG_EINVAL);
  CHECK_EQ_INT(hg_base64_decode("Zm9 YmE=", 8, out, sizeof(out), &n), HG_EINVAL);
  CHECK_EQ_INT(hg_base64_decode("Zm=vYmE=", 8, out, sizeof(out), &n), HG_EINVAL);
  CHECK_EQ_INT(hg_base64_decode("Z===", 4, out, sizeof(out), &n), HG_EINVAL);
  CHECK_EQ_INT(hg_base64_decode("-_-_", 4, out, sizeof(out), &n), HG_EINVAL);
  CHECK_EQ_INT(hg_base64_decode("Zm9vYmE=", 8, out, 4, &n), HG_ETOOBIG);
  CHECK_EQ_INT(hg_base64_decode("Zm9vYmE=", 8, out, 5, &n), 0);
}

static void hex_and_ct(void) {
  char hex[7];
  hg_hex_encode((const unsigned char *)"\x00\xab\xff", 3, hex);
  CHECK_EQ_STR(hex, "00abff");
  CHECK_EQ_INT(hg_ct_equal("abcd", "abcd", 4), 1);
  CHECK_EQ_INT(hg_ct_equal("abcd", "abce", 4), 0);
  CHECK_EQ_INT(hg_ct_equal("\x80", "\x00", 1), 0);
  CHECK_EQ_INT(hg_ct_equal("x", "y", 0), 1);
  /* Every length up to five words, a difference of each single bit at
   * every position (the word loop and the byte tail alike). */
  unsigned char a[40], b[40];
  for (size_t i = 0; i < sizeof(a); i++) a[i] = (unsigned char)(i * 37 + 11);
  int all = 1;
  for (size_t n = 0; n <= sizeof(a); n++) {
    memcpy(b, a, sizeof(a));
    all &= hg_ct_equal(a, b, n) == 1;
    for (size_t at = 0; at < n; at++)
      for (int bit = 0; bit < 8; bit++) {
        b[at] ^= (unsigned char)(1u << bit);
        all &= hg_ct_equal(a, b, n) == 0;
        b[at] ^= (unsigned char)(1u << bit);
      }
    if (n < sizeof(a)) {
      b[n] ^= 0xff; /* past the length: not compared */
      all &= hg_ct_equal(a, b, n) == 1;
    }
  }
  CHECK_EQ_INT(all, 1);
}

static void random_bytes(void) {
  CHECK_EQ_INT(hg_crypto_init(), 0);
  CHECK_EQ_INT(hg_crypto_init(), 0);
  unsigned char a[32], b[32];
  CHECK_EQ_INT(hg_random(a, sizeof(a)), 0);
  CHECK_EQ_INT(hg_random(b, sizeof(b)), 0);
  CHECK(!hg_ct_equal(a, b, sizeof(a)));
  /* More than one CTR_DRBG request. */
  static unsigned char big[5000];
  CHECK_EQ_INT(hg_random(big, sizeof(big)), 0);
  int zeros = 0;
  for (size_t i = 4000; i < sizeof(big); i++) zeros += big[i] == 0;
  CHECK(zeros < 50);
}

/* The encoder for public bytes gives the constant-time one's text and
 * errors, for every length around the padding cases and across blocks. */
static void base64_public(void) {
  unsigned char in[150];
  char want[256], got[256];
  for (int i = 0; i < 150; i++) in[i] = (unsigned char)(i * 37 + 11);
  for (size_t n = 0; n <= sizeof(in); n++) {
    int len = hg_base64_encode(in, n, want, sizeof(want));
    CHECK_EQ_INT(hg_base64_encode_public(in, n, got, sizeof(got)), len);
    CHECK_EQ_STR(got, want);
    /* Exactly enough room, and one byte short (out is then ""). */
    CHECK_EQ_INT(hg_base64_encode_public(in, n, got, (size_t)len + 1), len);
    CHECK_EQ_STR(got, want);
    CHECK_EQ_INT(hg_base64_encode_public(in, n, got, (size_t)len), HG_ETOOBIG);
    if (len > 0) CHECK_EQ_STR(got, "");
  }
  CHECK_EQ_INT(hg_base64_encode_public(in, 1, got, 0), HG_ETOOBIG);
}

int main(void) {
  RUN(sha256_known);
  RUN(sha256_threads);
  RUN(hmac_known);
  RUN(hmac_prepared);
  RUN(base64_roundtrip);
  RUN(base64_public);
  RUN(hex_and_ct);
  RUN(random_bytes);
  return HGT_DONE();
}
