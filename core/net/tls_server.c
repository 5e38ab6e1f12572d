/* tls_server.c: mbedTLS server configuration and connections over memory
 * buffers (the memory BIO of tls_bio.c). */
#include "net/tls_server.h"

#include "base/common.h"
#include "net/tls_bio.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hg_tls_server {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt chain;
  mbedtls_pk_context key;
  mbedtls_ssl_ticket_context ticket;
  mbedtls_ssl_config conf;
};

struct hg_tls_sconn {
  hg_tls_bio_t bio;
  int established;
};

static void errf(char *err, size_t errlen, const char *what, const char *file, int rc) {
  char msg[160];
  mbedtls_strerror(rc, msg, sizeof(msg));
  if (err != NULL && errlen > 0) snprintf(err, errlen, "%s %s: %s", what, file, msg);
}

int hg_tls_server_new(hg_tls_server_t **out, const char *cert_file, const char *key_file, char *err,
                      size_t errlen) {
  static const char pers[] = "hookgate tls server";
  int rc;
  *out = NULL;
  hg_tls_server_t *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    if (err != NULL && errlen > 0) snprintf(err, errlen, "tls: out of memory");
    return HG_ENOMEM;
  }
  mbedtls_entropy_init(&t->entropy);
  mbedtls_ctr_drbg_init(&t->drbg);
  mbedtls_x509_crt_init(&t->chain);
  mbedtls_pk_init(&t->key);
  mbedtls_ssl_ticket_init(&t->ticket);
  mbedtls_ssl_config_init(&t->conf);

  if ((rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                  (const unsigned char *)pers, sizeof(pers) - 1)) != 0) {
    errf(err, errlen, "tls", "random generator", rc);
    goto fail;
  }
  if ((rc = mbedtls_x509_crt_parse_file(&t->chain, cert_file)) != 0) {
    errf(err, errlen, "tls cert", cert_file, rc);
    goto fail;
  }
  if ((rc = mbedtls_pk_parse_keyfile(&t->key, key_file, NULL)) != 0) {
    errf(err, errlen, "tls key", key_file, rc);
    goto fail;
  }
  if ((rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_SERVER,
                                        MBEDTLS_SSL_TRANSPORT_STREAM,
                                        MBEDTLS_SSL_PRESET_DEFAULT)) != 0) {
    errf(err, errlen, "tls", "config", rc);
    goto fail;
  }
  mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
  hg_tls_bio_conf(&t->conf);
  if ((rc = mbedtls_ssl_conf_own_cert(&t->conf, &t->chain, &t->key)) != 0) {
    errf(err, errlen, "tls key", key_file, rc);
    goto fail;
  }
  if ((rc = mbedtls_ssl_ticket_setup(&t->ticket, mbedtls_ctr_drbg_random, &t->drbg,
                                     MBEDTLS_CIPHER_AES_256_GCM, 86400)) != 0) {
    errf(err, errlen, "tls", "session tickets", rc);
    goto fail;
  }
  mbedtls_ssl_conf_session_tickets_cb(&t->conf, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse,
                                      &t->ticket);
  *out = t;
  return 0;
fail:
  hg_tls_server_free(t);
  return HG_ECONFIG;
}

void hg_tls_server_free(hg_tls_server_t *t) {
  if (t == NULL) return;
  mbedtls_ssl_config_free(&t->conf);
  mbedtls_ssl_ticket_free(&t->ticket);
  mbedtls_pk_free(&t->key);
  mbedtls_x509_crt_free(&t->chain);
  mbedtls_ctr_drbg_free(&t->drbg);
  mbedtls_entropy_free(&t->entropy);
  free(t);
}

hg_tls_sconn_t *hg_tls_sconn_new(hg_tls_server_t *t) {
  hg_tls_sconn_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  if (hg_tls_bio_init(&c->bio, &t->conf) != 0) {
    hg_tls_sconn_free(c);
    return NULL;
  }
  return c;
}

void hg_tls_sconn_free(hg_tls_sconn_t *c) {
  if (c == NULL) return;
  hg_tls_bio_close(&c->bio);
  free(c);
}

int hg_tls_sconn_feed(hg_tls_sconn_t *c, const char *data, size_t len) {
  return hg_tls_bio_feed(&c->bio, data, len);
}

int hg_tls_sconn_read(hg_tls_sconn_t *c, char *buf, size_t len) {
  if (!c->established) {
    int rc = hg_tls_bio_handshake(&c->bio, NULL);
    if (rc != 0) return rc == 1 ? 0 : rc;
    c->established = 1;
  }
  return hg_tls_bio_read(&c->bio, buf, len, NULL);
}

int hg_tls_sconn_write(hg_tls_sconn_t *c, const char *data, size_t len) {
  if (!c->established) return HG_ESTATE;
  return hg_tls_bio_write(&c->bio, data, len, NULL);
}

int hg_tls_sconn_established(const hg_tls_sconn_t *c) { return c->established; }

const char *hg_tls_sconn_pending(hg_tls_sconn_t *c, size_t *len) { return hg_tls_bio_pending(&c->bio, len); }

void hg_tls_sconn_consume(hg_tls_sconn_t *c, size_t n) { hg_tls_bio_consume(&c->bio, n); }
