/* tls_bio.c: the protocol settings and the memory BIO both TLS ends use. */
#include "net/tls_bio.h"

#include <mbedtls/aesni.h>
#include <pthread.h>
#include <string.h>

#include "base/common.h"

/* Preference order; mbedTLS keeps the pointer, so the list is static. */
static const mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

/* mbedTLS's own order puts ChaCha20-Poly1305 first, which it computes in
 * portable C; on a CPU with AES-NI and carry-less multiply its AES-GCM
 * runs on those instructions and costs a fraction of that per byte. There
 * the ECDHE AES-GCM suites go first, the rest follow in mbedTLS's order. */
#define MAX_SUITES 256
static int suites[MAX_SUITES + 1]; /* suites[0] == 0: mbedTLS's order is kept */
static pthread_once_t suites_once = PTHREAD_ONCE_INIT;

#if defined(MBEDTLS_AESNI_C) && defined(MBEDTLS_HAVE_X86_64)
static int fast_aead(int id) {
  const mbedtls_ssl_ciphersuite_t *cs = mbedtls_ssl_ciphersuite_from_id(id);
  return cs != NULL && (cs->cipher == MBEDTLS_CIPHER_AES_128_GCM || cs->cipher == MBEDTLS_CIPHER_AES_256_GCM) &&
         (cs->key_exchange == MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA || cs->key_exchange == MBEDTLS_KEY_EXCHANGE_ECDHE_RSA);
}
#endif

static void order_suites(void) {
#if defined(MBEDTLS_AESNI_C) && defined(MBEDTLS_HAVE_X86_64)
  if (!mbedtls_aesni_has_support(MBEDTLS_AESNI_AES) || !mbedtls_aesni_has_support(MBEDTLS_AESNI_CLMUL)) return;
  const int *all = mbedtls_ssl_list_ciphersuites();
  size_t n = 0;
  for (int pass = 0; pass < 2; pass++)
    for (const int *id = all; *id != 0 && n < MAX_SUITES; id++)
      if (fast_aead(*id) == (pass == 0)) suites[n++] = *id;
  suites[n] = 0;
#endif
}

void hg_tls_bio_conf(mbedtls_ssl_config *conf) {
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_curves(conf, curves);
  pthread_once(&suites_once, order_suites);
  if (suites[0] != 0) mbedtls_ssl_conf_ciphersuites(conf, suites);
}

static int bio_send(void *ctx, const unsigned char *data, size_t len) {
  hg_tls_bio_t *b = ctx;
  if (hg_buf_append(&b->out, data, len) != 0) return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  return (int)len;
}

static int bio_recv(void *ctx, unsigned char *data, size_t len) {
  hg_tls_bio_t *b = ctx;
  size_t avail = hg_buf_unread(&b->in);
  if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
  if (len > avail) len = avail;
  memcpy(data, b->in.data + b->in.off, len);
  hg_buf_consume(&b->in, len);
  return (int)len;
}

int hg_tls_bio_init(hg_tls_bio_t *b, const mbedtls_ssl_config *conf) {
  memset(b, 0, sizeof(*b));
  mbedtls_ssl_init(&b->ssl);
  int ret = mbedtls_ssl_setup(&b->ssl, conf);
  if (ret != 0) return ret;
  mbedtls_ssl_set_bio(&b->ssl, b, bio_send, bio_recv, NULL);
  return 0;
}

void hg_tls_bio_close(hg_tls_bio_t *b) {
  mbedtls_ssl_free(&b->ssl);
  hg_buf_free(&b->in);
  hg_buf_free(&b->out);
}

int hg_tls_bio_feed(hg_tls_bio_t *b, const char *data, size_t len) {
  return hg_buf_append(&b->in, data, len);
}

static int want(int ret) { return ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE; }

int hg_tls_bio_handshake(hg_tls_bio_t *b, int *ret) {
  int rc = mbedtls_ssl_handshake(&b->ssl);
  if (rc == 0) return 0;
  if (want(rc)) return 1;
  if (ret) *ret = rc;
  return HG_EIO;
}

int hg_tls_bio_read(hg_tls_bio_t *b, char *buf, size_t len, int *ret) {
  int rc = mbedtls_ssl_read(&b->ssl, (unsigned char *)buf, len);
  if (rc > 0) return rc;
  if (want(rc)) return 0;
  if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) return HG_ECLOSED;
  if (ret) *ret = rc;
  return HG_EIO;
}

int hg_tls_bio_write(hg_tls_bio_t *b, const char *data, size_t len, int *ret) {
  while (len > 0) {
    int rc = mbedtls_ssl_write(&b->ssl, (const unsigned char *)data, len);
    if (rc < 0) {
      if (ret) *ret = rc;
      return HG_EIO;
    }
    data += rc;
    len -= (size_t)rc;
  }
  return 0;
}

int hg_tls_bio_has_input(const hg_tls_bio_t *b) {
  return hg_buf_unread(&b->in) > 0 || mbedtls_ssl_get_bytes_avail(&b->ssl) > 0;
}
