/* tls_bio.c: the protocol settings and the memory BIO both TLS ends use. */
#include "net/tls_bio.h"

#include <string.h>

#include "base/common.h"

/* Preference order; mbedTLS keeps the pointer, so the list is static. */
static const mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

void hg_tls_bio_conf(mbedtls_ssl_config *conf) {
  mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_curves(conf, curves);
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
