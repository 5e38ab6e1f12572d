/* tls_client.c: mbedTLS 2.28 client connections over memory buffers (the
 * memory BIO of tls_bio.c): verification, hostnames, session resumption. */
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
#include "net/tls_bio.h"

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

struct hg_tls_conn {
  hg_tls_bio_t bio;
  hg_tls_session_t *session;
  int handshake_done;
  int verified_chain; /* the certificate chain was checked: a full handshake */
};

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
  hg_tls_bio_conf(&t->conf);
  mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
  mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
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

int hg_tls_session_valid(const hg_tls_session_t *s) { return s != NULL && s->valid; }

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
  if (hg_tls_bio_init(&c->bio, &t->conf) != 0) goto fail;
  if (mbedtls_ssl_set_hostname(&c->bio.ssl, hostname) != 0) {
    rc = HG_EINVAL;
    goto fail;
  }
  mbedtls_ssl_set_verify(&c->bio.ssl, verify_cb, c);
  c->session = session;
  /* A session that fails to load only costs a full handshake. */
  if (session && session->valid) (void)mbedtls_ssl_set_session(&c->bio.ssl, &session->sess);
  *out = c;
  return 0;
fail:
  hg_tls_conn_free(c);
  return rc;
}

void hg_tls_conn_free(hg_tls_conn_t *c) {
  if (c == NULL) return;
  hg_tls_bio_close(&c->bio);
  free(c);
}

int hg_tls_conn_feed(hg_tls_conn_t *c, const char *data, size_t len) {
  return hg_tls_bio_feed(&c->bio, data, len);
}

int hg_tls_conn_handshake(hg_tls_conn_t *c, char *err, size_t errlen) {
  if (c->handshake_done) return 0;
  int ret = 0, rc = hg_tls_bio_handshake(&c->bio, &ret);
  if (rc == 1) return 1;
  if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
    uint32_t flags = mbedtls_ssl_get_verify_result(&c->bio.ssl);
    char info[512];
    int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
    /* One line is enough for a delivery log: keep the first reason. */
    char *nl = n > 0 ? strchr(info, '\n') : NULL;
    if (nl) *nl = '\0';
    snprintf(err, errlen, "tls: certificate verify failed: %s", n > 0 ? info : "unknown reason");
    return HG_EIO;
  }
  if (rc != 0) {
    tls_reason(ret, err, errlen, "handshake failed: ");
    return HG_EIO;
  }
  c->handshake_done = 1;
  if (c->session) {
    mbedtls_ssl_session_free(&c->session->sess);
    mbedtls_ssl_session_init(&c->session->sess);
    c->session->valid = mbedtls_ssl_get_session(&c->bio.ssl, &c->session->sess) == 0;
    c->session = NULL;
  }
  return 0;
}

int hg_tls_conn_write(hg_tls_conn_t *c, const char *data, size_t len, char *err, size_t errlen) {
  int ret = 0;
  if (hg_tls_bio_write(&c->bio, data, len, &ret) == 0) return 0;
  tls_reason(ret, err, errlen, "write failed: ");
  return HG_EIO;
}

int hg_tls_conn_read(hg_tls_conn_t *c, char *buf, size_t len, char *err, size_t errlen) {
  int ret = 0, n = hg_tls_bio_read(&c->bio, buf, len, &ret);
  if (n == HG_EIO) tls_reason(ret, err, errlen, "read failed: ");
  return n;
}

void hg_tls_conn_out(hg_tls_conn_t *c, const char **data, size_t *len) {
  *data = hg_tls_bio_pending(&c->bio, len);
}

void hg_tls_conn_out_clear(hg_tls_conn_t *c) { hg_buf_reset(&c->bio.out); }

int hg_tls_conn_has_input(const hg_tls_conn_t *c) { return hg_tls_bio_has_input(&c->bio); }

int hg_tls_conn_resumed(const hg_tls_conn_t *c) { return c->handshake_done && !c->verified_chain; }
