/* tls_client.c: mbedTLS 2.28 client connections over memory buffers.
 *
 * mbedTLS reads and writes through two callbacks (the "bio"). Here the read
 * side drains a buffer the caller fills from the socket and reports
 * WANT_READ when it is empty; the write side appends to a buffer the caller
 * sends. The TLS state machine thus never touches a socket and never blocks. */
#include "net/tls_client.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"

struct hg_tls_client {
  mbedtls_ssl_config conf;
  mbedtls_x509_crt ca;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
};

struct hg_tls_session {
  mbedtls_ssl_session sess;
  int valid;
};

typedef struct buf {
  char *p;
  size_t off, len, cap; /* unread bytes are p[off, len) */
} buf_t;

struct hg_tls_conn {
  mbedtls_ssl_context ssl;
  hg_tls_session_t *session;
  buf_t in, out;
  int handshake_done;
  int verified_chain; /* the certificate chain was checked: a full handshake */
};

/* Preference order; mbedTLS keeps the pointer, so the list is static. */
static const mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

static void tls_reason(int ret, char *err, size_t errlen, const char *prefix) {
  char text[160];
  mbedtls_strerror(ret, text, sizeof(text));
  snprintf(err, errlen, "tls: %s%s", prefix, text);
}

int hg_tls_client_new(hg_tls_client_t **out, const char *ca_file, char *err, size_t errlen) {
  int rc = HG_ECONFIG, ret;
  hg_tls_client_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return HG_ENOMEM;
  mbedtls_ssl_config_init(&t->conf);
  mbedtls_x509_crt_init(&t->ca);
  mbedtls_entropy_init(&t->entropy);
  mbedtls_ctr_drbg_init(&t->drbg);
  if (ca_file == NULL) ca_file = HG_TLS_SYSTEM_CA_FILE;

  if ((ret = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                   (const unsigned char *)"hookgate", 8)) != 0) {
    tls_reason(ret, err, errlen, "cannot seed the random generator: ");
    goto fail;
  }
  /* A bundle with a few certificates mbedTLS cannot parse is still usable
   * (ret > 0 counts them); only a bundle with none is an error. */
  ret = mbedtls_x509_crt_parse_file(&t->ca, ca_file);
  if (ret < 0 || t->ca.version == 0) {
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "cannot load CA file %s: ", ca_file);
    tls_reason(ret < 0 ? ret : MBEDTLS_ERR_X509_INVALID_FORMAT, err, errlen, prefix);
    goto fail;
  }
  if ((ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
                                         MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
    tls_reason(ret, err, errlen, "");
    goto fail;
  }
  mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
  mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
  mbedtls_ssl_conf_curves(&t->conf, curves);
  mbedtls_ssl_conf_session_tickets(&t->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
  *out = t;
  return 0;
fail:
  hg_tls_client_free(t);
  return rc;
}

void hg_tls_client_free(hg_tls_client_t *t) {
  if (t == NULL) return;
  mbedtls_ssl_config_free(&t->conf);
  mbedtls_x509_crt_free(&t->ca);
  mbedtls_ctr_drbg_free(&t->drbg);
  mbedtls_entropy_free(&t->entropy);
  free(t);
}

hg_tls_session_t *hg_tls_session_new(void) {
  hg_tls_session_t *s = calloc(1, sizeof(*s));
  if (s) mbedtls_ssl_session_init(&s->sess);
  return s;
}

void hg_tls_session_free(hg_tls_session_t *s) {
  if (s == NULL) return;
  mbedtls_ssl_session_free(&s->sess);
  free(s);
}

static int buf_append(buf_t *b, const char *data, size_t len) {
  if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
  if (b->len + len > b->cap) {
    /* Reclaim consumed space before growing. */
    if (b->off > 0) {
      memmove(b->p, b->p + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    if (b->len + len > b->cap) {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + len) cap *= 2;
      char *p = realloc(b->p, cap);
      if (p == NULL) return HG_ENOMEM;
      b->p = p;
      b->cap = cap;
    }
  }
  memcpy(b->p + b->len, data, len);
  b->len += len;
  return 0;
}

static int bio_send(void *ctx, const unsigned char *data, size_t len) {
  hg_tls_conn_t *c = ctx;
  if (buf_append(&c->out, (const char *)data, len) != 0) return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  return (int)len;
}

static int bio_recv(void *ctx, unsigned char *data, size_t len) {
  hg_tls_conn_t *c = ctx;
  size_t avail = c->in.len - c->in.off;
  if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
  if (len > avail) len = avail;
  memcpy(data, c->in.p + c->in.off, len);
  c->in.off += len;
  return (int)len;
}

/* Called only while a certificate chain is verified, so only during a full
 * handshake: that is how a resumed session is told apart. */
static int verify_cb(void *ud, mbedtls_x509_crt *crt, int depth, uint32_t *flags) {
  (void)crt;
  (void)depth;
  (void)flags;
  ((hg_tls_conn_t *)ud)->verified_chain = 1;
  return 0;
}

int hg_tls_conn_new(hg_tls_conn_t **out, hg_tls_client_t *t, const char *hostname,
                    hg_tls_session_t *session) {
  int rc = HG_ENOMEM;
  hg_tls_conn_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return HG_ENOMEM;
  mbedtls_ssl_init(&c->ssl);
  if (mbedtls_ssl_setup(&c->ssl, &t->conf) != 0) goto fail;
  if (mbedtls_ssl_set_hostname(&c->ssl, hostname) != 0) {
    rc = HG_EINVAL;
    goto fail;
  }
  mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
  mbedtls_ssl_set_verify(&c->ssl, verify_cb, c);
  c->session = session;
  /* A session that fails to load only costs a full handshake. */
  if (session && session->valid) (void)mbedtls_ssl_set_session(&c->ssl, &session->sess);
  *out = c;
  return 0;
fail:
  hg_tls_conn_free(c);
  return rc;
}

void hg_tls_conn_free(hg_tls_conn_t *c) {
  if (c == NULL) return;
  mbedtls_ssl_free(&c->ssl);
  free(c->in.p);
  free(c->out.p);
  free(c);
}

int hg_tls_conn_feed(hg_tls_conn_t *c, const char *data, size_t len) {
  return buf_append(&c->in, data, len);
}

int hg_tls_conn_handshake(hg_tls_conn_t *c, char *err, size_t errlen) {
  if (c->handshake_done) return 0;
  int ret = mbedtls_ssl_handshake(&c->ssl);
  if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) return 1;
  if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
    uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
    char info[512];
    int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
    /* One line is enough for a delivery log: keep the first reason. */
    char *nl = n > 0 ? strchr(info, '\n') : NULL;
    if (nl) *nl = '\0';
    snprintf(err, errlen, "tls: certificate verify failed: %s", n > 0 ? info : "unknown reason");
    return HG_EIO;
  }
  if (ret != 0) {
    tls_reason(ret, err, errlen, "handshake failed: ");
    return HG_EIO;
  }
  c->handshake_done = 1;
  if (c->session) {
    mbedtls_ssl_session_free(&c->session->sess);
    mbedtls_ssl_session_init(&c->session->sess);
    c->session->valid = mbedtls_ssl_get_session(&c->ssl, &c->session->sess) == 0;
    c->session = NULL;
  }
  return 0;
}

int hg_tls_conn_write(hg_tls_conn_t *c, const char *data, size_t len, char *err, size_t errlen) {
  while (len > 0) {
    int ret = mbedtls_ssl_write(&c->ssl, (const unsigned char *)data, len);
    if (ret < 0) {
      tls_reason(ret, err, errlen, "write failed: ");
      return HG_EIO;
    }
    data += ret;
    len -= (size_t)ret;
  }
  return 0;
}

int hg_tls_conn_read(hg_tls_conn_t *c, char *buf, size_t len, char *err, size_t errlen) {
  int ret = mbedtls_ssl_read(&c->ssl, (unsigned char *)buf, len);
  if (ret > 0) return ret;
  if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) return 0;
  if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) return HG_ECLOSED;
  tls_reason(ret, err, errlen, "read failed: ");
  return HG_EIO;
}

void hg_tls_conn_out(hg_tls_conn_t *c, const char **data, size_t *len) {
  *len = c->out.len - c->out.off;
  *data = *len ? c->out.p + c->out.off : "";
}

void hg_tls_conn_out_clear(hg_tls_conn_t *c) { c->out.off = c->out.len = 0; }

int hg_tls_conn_has_input(const hg_tls_conn_t *c) {
  return c->in.len > c->in.off || mbedtls_ssl_get_bytes_avail(&c->ssl) > 0;
}

int hg_tls_conn_resumed(const hg_tls_conn_t *c) { return c->handshake_done && !c->verified_chain; }
