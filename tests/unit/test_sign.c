#include "base/common.h"
#include "base/crypto.h"
#include "hgtest.h"
#include "base/sign.h"

/* Copied from /work/shared/reference/signature-vectors.json. */
static const struct {
  const char *secret, *id;
  int64_t ts;
  const char *body, *signature;
} vectors[] = {
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
     "{\"test\": 2432232314}", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    {"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
     "{\"email\":\"test@example.com\",\"username\":\"test_user\"}",
     "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
};

static void standard_vectors(void) {
  for (size_t i = 0; i < HG_ARRAY_LEN(vectors); i++) {
    char sig[64], ts[24];
    const char *body = vectors[i].body;
    CHECK_EQ_INT(hg_sign_v1(vectors[i].secret, vectors[i].id, vectors[i].ts, body, strlen(body), sig,
                            sizeof(sig)),
                 HG_SIG_V1_LEN);
    CHECK_EQ_STR(sig, vectors[i].signature);
    snprintf(ts, sizeof(ts), "%lld", (long long)vectors[i].ts);
    const char *secrets[1] = {vectors[i].secret};
    CHECK_EQ_INT(hg_verify(secrets, 1, vectors[i].id, ts, vectors[i].signature, body, strlen(body),
                           vectors[i].ts, 300),
                 0);
    CHECK_EQ_INT(hg_secret_check(vectors[i].secret), 0);
  }
}

static void rejections(void) {
  const char *secret[1] = {vectors[0].secret};
  const char *id = vectors[0].id, *body = vectors[0].body, *sig = vectors[0].signature;
  size_t len = strlen(body);
  int64_t now = vectors[0].ts;
  const char *ts = "1614265330";

  /* Any of the three headers missing. */
  CHECK_EQ_INT(hg_verify(secret, 1, NULL, ts, sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, id, NULL, sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, NULL, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, "", ts, sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, id, "", sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, "", body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, "nonsense", body, len, now, 300), HG_EINVAL);
  /* Timestamp not an integer. */
  CHECK_EQ_INT(hg_verify(secret, 1, id, "hello", sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, id, "1614265330.5", sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 1, id, "-1614265330", sig, body, len, now, 300), HG_EINVAL);
  /* Tolerance: 300 s either way is fine, 301 s is not. */
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, sig, body, len, now + 300, 300), 0);
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, sig, body, len, now - 300, 300), 0);
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, sig, body, len, now + 301, 300), HG_ETIMEDOUT);
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, sig, body, len, now - 301, 300), HG_ETIMEDOUT);
  /* One character changed in the signature, the body, the id. */
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", body, len, now, 300),
               HG_EFORBIDDEN);
  /* Same decoded bytes but non-canonical padding bits: still refused. */
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=", body, len, now, 300),
               HG_EFORBIDDEN);
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, sig, "{\"test\": 2432232315}", len, now, 300), HG_EFORBIDDEN);
  CHECK_EQ_INT(hg_verify(secret, 1, "msg_p5jXN8AQM9LWM0D4loKWxJel", ts, sig, body, len, now, 300), HG_EFORBIDDEN);
  /* A different version with the right bytes is ignored. */
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", body, len, now, 300),
               HG_EFORBIDDEN);
  /* Empty secret, "whsec_" alone. */
  const char *empty[1] = {""}, *bare[1] = {"whsec_"};
  CHECK_EQ_INT(hg_verify(empty, 1, id, ts, sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(bare, 1, id, ts, sig, body, len, now, 300), HG_EINVAL);
  CHECK_EQ_INT(hg_verify(secret, 0, id, ts, sig, body, len, now, 300), HG_EINVAL);
  char out[64];
  CHECK_EQ_INT(hg_sign_v1("", id, now, body, len, out, sizeof(out)), HG_EINVAL);
  CHECK_EQ_INT(hg_sign_v1("whsec_", id, now, body, len, out, sizeof(out)), HG_EINVAL);
  CHECK_EQ_INT(hg_sign_v1(secret[0], id, now, body, len, out, 47), HG_ETOOBIG);
  CHECK_EQ_STR(out, "");
}

static void header_entries(void) {
  const char *id = vectors[0].id, *body = vectors[0].body;
  size_t len = strlen(body);
  int64_t now = vectors[0].ts;
  const char *ts = "1614265330";
  /* Several entries, extra spaces, other versions: the v1 match counts. */
  char hdr[256];
  snprintf(hdr, sizeof(hdr), "v2,abc  v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= %s ", vectors[0].signature);
  const char *secret[1] = {vectors[0].secret};
  CHECK_EQ_INT(hg_verify(secret, 1, id, ts, hdr, body, len, now, 300), 0);
}

static void two_secrets(void) {
  char s1[HG_SECRET_MAX], s2[HG_SECRET_MAX];
  CHECK_EQ_INT(hg_secret_generate(s1), 0);
  CHECK_EQ_INT(hg_secret_generate(s2), 0);
  CHECK_EQ_INT(strlen(s1), 50);
  CHECK(strcmp(s1, s2) != 0);
  CHECK_EQ_INT(hg_secret_check(s1), 0);

  const char *both[2] = {s1, s2};
  const char *body = "{\"type\":\"invoice.paid\"}";
  char hdr[2 * 48];
  int n = hg_sign_header(both, 2, "msg_1", 1700000000, body, strlen(body), hdr, sizeof(hdr));
  CHECK_EQ_INT(n, 2 * HG_SIG_V1_LEN + 1);
  CHECK(hdr[HG_SIG_V1_LEN] == ' ');
  CHECK_EQ_INT(hg_sign_header(both, 2, "msg_1", 1700000000, body, strlen(body), hdr, 2 * 48 - 1), HG_ETOOBIG);
  n = hg_sign_header(both, 2, "msg_1", 1700000000, body, strlen(body), hdr, sizeof(hdr));

  const char *only1[1] = {s1}, *only2[1] = {s2};
  char s3[HG_SECRET_MAX];
  hg_secret_generate(s3);
  const char *other[1] = {s3};
  CHECK_EQ_INT(hg_verify(only1, 1, "msg_1", "1700000000", hdr, body, strlen(body), 1700000010, 300), 0);
  CHECK_EQ_INT(hg_verify(only2, 1, "msg_1", "1700000000", hdr, body, strlen(body), 1700000010, 300), 0);
  CHECK_EQ_INT(hg_verify(other, 1, "msg_1", "1700000000", hdr, body, strlen(body), 1700000010, 300),
               HG_EFORBIDDEN);
  /* The receiver knows both secrets; the sender signed with one. */
  char one[64];
  hg_sign_v1(s2, "msg_1", 1700000000, body, strlen(body), one, sizeof(one));
  CHECK_EQ_INT(hg_verify(both, 2, "msg_1", "1700000000", one, body, strlen(body), 1700000000, 300), 0);
  /* Empty body. */
  hg_sign_v1(s1, "msg_2", 1700000000, NULL, 0, one, sizeof(one));
  CHECK_EQ_INT(hg_verify(only1, 1, "msg_2", "1700000000", one, "", 0, 1700000000, 300), 0);
}

/* v1a: a vector made with Node's crypto (an independent Ed25519), the seed
 * being the bytes 0..31. */
static const char v1a_key[] = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
static const char v1a_pub[] = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
static const char v1a_sig[] =
    "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ==";

static void v1a_vector(void) {
  char pub[HG_PUBLIC_KEY_MAX], sig[HG_SIG_V1A_LEN + 1];
  const char *body = vectors[0].body;
  CHECK_EQ_INT(hg_public_key(v1a_key, pub), 0);
  CHECK_EQ_STR(pub, v1a_pub);
  CHECK_EQ_INT(hg_sign_v1a(v1a_key, vectors[0].id, vectors[0].ts, body, strlen(body), sig, sizeof(sig)),
               HG_SIG_V1A_LEN);
  CHECK_EQ_STR(sig, v1a_sig);
  /* Too small a buffer; not a signing key; a v1 secret is refused by v1a
   * and a v1a key by v1. */
  CHECK_EQ_INT(hg_sign_v1a(v1a_key, "m", 1, "", 0, sig, HG_SIG_V1A_LEN), HG_ETOOBIG);
  CHECK_EQ_STR(sig, "");
  CHECK_EQ_INT(hg_sign_v1a(vectors[0].secret, "m", 1, "", 0, sig, sizeof(sig)), HG_EINVAL);
  CHECK_EQ_INT(hg_sign_v1a("whsk_AAEC", "m", 1, "", 0, sig, sizeof(sig)), HG_EINVAL);
  CHECK_EQ_INT(hg_sign_v1a("whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==", "m", 1, "", 0, sig, sizeof(sig)),
               HG_EINVAL); /* 34 bytes */
  CHECK_EQ_INT(hg_sign_v1a(v1a_key, NULL, 1, "", 0, sig, sizeof(sig)), HG_EINVAL);
  CHECK_EQ_INT(hg_sign_v1(v1a_key, "m", 1, "", 0, sig, sizeof(sig)), HG_EINVAL);
  CHECK_EQ_INT(hg_public_key(vectors[0].secret, pub), HG_EINVAL);
  CHECK_EQ_STR(pub, "");
  CHECK_EQ_INT(hg_signing_key_is_v1a(v1a_key), 1);
  CHECK_EQ_INT(hg_signing_key_is_v1a(vectors[0].secret), 0);
  CHECK_EQ_INT(hg_signing_key_is_v1a(NULL), 0);
}

/* Verifies one "v1a,<base64>" entry of len characters with the public key
 * "whpk_..." over "<id>.<ts>.<body>". */
static int v1a_ok(const char *whpk, const char *entry, size_t len, const char *content) {
  unsigned char pub[32], sig[64];
  size_t n = 0;
  if (len != HG_SIG_V1A_LEN || strncmp(entry, "v1a,", 4) != 0) return 0;
  if (hg_base64_decode(whpk + 5, strlen(whpk + 5), pub, sizeof(pub), &n) != 0 || n != 32) return 0;
  if (hg_base64_decode(entry + 4, 88, sig, sizeof(sig), &n) != 0 || n != 64) return 0;
  return hg_ed25519_verify(pub, content, strlen(content), sig);
}

static void v1a_keys_and_header(void) {
  char k1[HG_SECRET_MAX], k2[HG_SECRET_MAX], p1[HG_PUBLIC_KEY_MAX], p2[HG_PUBLIC_KEY_MAX];
  CHECK_EQ_INT(hg_signing_key_generate(k1), 0);
  CHECK_EQ_INT(hg_signing_key_generate(k2), 0);
  CHECK_EQ_INT(strlen(k1), 49);
  CHECK(strncmp(k1, "whsk_", 5) == 0);
  CHECK(strcmp(k1, k2) != 0);
  CHECK_EQ_INT(hg_public_key(k1, p1), 0);
  CHECK_EQ_INT(hg_public_key(k2, p2), 0);
  CHECK_EQ_INT(strlen(p1), 49);
  CHECK(strncmp(p1, "whpk_", 5) == 0);
  /* A signing key is no v1 secret a user could supply. */
  CHECK_EQ_INT(hg_secret_check(k1), HG_EINVAL);

  /* A rotation's header: one v1a entry per key, each verifying with its
   * own public key only; a body of 5000 bytes takes the allocated path. */
  static char body[5001];
  memset(body, 'x', 5000);
  static char content[5100];
  snprintf(content, sizeof(content), "msg_1.1700000000.%s", body);
  const char *both[2] = {k1, k2};
  char hdr[2 * (HG_SIG_ENTRY_MAX + 1)];
  CHECK_EQ_INT(hg_sign_header(both, 2, "msg_1", 1700000000, body, 5000, hdr, sizeof(hdr)), 2 * HG_SIG_V1A_LEN + 1);
  CHECK(hdr[HG_SIG_V1A_LEN] == ' ');
  CHECK(v1a_ok(p1, hdr, HG_SIG_V1A_LEN, content));
  CHECK(v1a_ok(p2, hdr + HG_SIG_V1A_LEN + 1, HG_SIG_V1A_LEN, content));
  CHECK(!v1a_ok(p2, hdr, HG_SIG_V1A_LEN, content));
  content[20] = 'y';
  CHECK(!v1a_ok(p1, hdr, HG_SIG_V1A_LEN, content));
  CHECK_EQ_INT(hg_sign_header(both, 2, "msg_1", 1700000000, body, 5000, hdr, 2 * HG_SIG_V1A_LEN), HG_ETOOBIG);
  CHECK_EQ_STR(hdr, "");
  /* v1 verification ignores v1a entries. */
  const char *v1[1] = {vectors[0].secret};
  CHECK_EQ_INT(
      hg_verify(v1, 1, vectors[0].id, "1614265330", v1a_sig, vectors[0].body, strlen(vectors[0].body), 1614265330, 300),
      HG_EFORBIDDEN);
}

static void secret_check(void) {
  CHECK_EQ_INT(hg_secret_check(NULL), HG_EINVAL);
  CHECK_EQ_INT(hg_secret_check(""), HG_EINVAL);
  CHECK_EQ_INT(hg_secret_check("whsec_"), HG_EINVAL);
  CHECK_EQ_INT(hg_secret_check("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), HG_EINVAL); /* no prefix */
  CHECK_EQ_INT(hg_secret_check("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa"), HG_EINVAL); /* 21 bytes */
  CHECK_EQ_INT(hg_secret_check("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"), HG_EINVAL); /* not base64 */
  CHECK_EQ_INT(hg_secret_check("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw "), HG_EINVAL);
  /* 64 bytes is the most; 65 is too many. */
  unsigned char raw[66] = {0};
  char s[HG_SECRET_MAX + 20] = "whsec_";
  hg_base64_encode(raw, 64, s + 6, sizeof(s) - 6);
  CHECK_EQ_INT(hg_secret_check(s), 0);
  hg_base64_encode(raw, 66, s + 6, sizeof(s) - 6);
  CHECK_EQ_INT(hg_secret_check(s), HG_EINVAL);
}

static void github_vector(void) {
  const char *secret = "It's a Secret to Everybody", *body = "Hello, World!";
  unsigned char mac[32];
  char hex[65], header[80];
  hg_hmac_sha256(secret, strlen(secret), body, strlen(body), mac);
  hg_hex_encode(mac, sizeof(mac), hex);
  snprintf(header, sizeof(header), "sha256=%s", hex);
  CHECK_EQ_STR(header, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

int main(void) {
  RUN(standard_vectors);
  RUN(rejections);
  RUN(header_entries);
  RUN(two_secrets);
  RUN(v1a_vector);
  RUN(v1a_keys_and_header);
  RUN(secret_check);
  RUN(github_vector);
  return HGT_DONE();
}
