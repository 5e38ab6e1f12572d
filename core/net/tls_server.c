/* tls_server.c: mbedTLS server configuration and memory-buffer connections. */
#include "net/tls_server.h"

#include "base/common.h"

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

/* A growable byte queue: data in [off, len). */
struct bytes {
  char *buf;
  size_t off, len, cap;
};

struct hg_tls_sconn {
  mbedtls_ssl_context ssl;
  struct bytes in;  /* ciphertext from the peer, not yet consumed */
  struct bytes out; /* ciphertext for the peer, not yet sent */
  int established;
};

static const mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};

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
  mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_curves(&t->conf, curves);
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

static int bytes_append(struct bytes *b, const char *data, size_t len) {
  if (b->off > 0 && b->off == b->len) b->off = b->len = 0;
  if (b->len + len > b->cap) {
    /* Reclaim the consumed prefix before growing. */
    if (b->off > 0) {
      memmove(b->buf, b->buf + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    if (b->len + len > b->cap) {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + len) cap *= 2;
      char *nb = realloc(b->buf, cap);
      if (nb == NULL) return HG_ENOMEM;
      b->buf = nb;
      b->cap = cap;
    }
  }
  memcpy(b->buf + b->len, data, len);
  b->len += len;
  return 0;
}

/* The bio callbacks: mbedTLS reads ciphertext from c->in and writes it to
 * c->out. Writing never fails short, so mbedtls_ssl_write never sees
 * WANT_WRITE; reading an empty buffer says WANT_READ. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len) {
  hg_tls_sconn_t *c = ctx;
  if (bytes_append(&c->out, (const char *)buf, len) != 0) return MBEDTLS_ERR_SSL_ALLOC_FAILED;
  return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len) {
  hg_tls_sconn_t *c = ctx;
  size_t avail = c->in.len - c->in.off;
  if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
  if (len > avail) len = avail;
  memcpy(buf, c->in.buf + c->in.off, len);
  c->in.off += len;
  return (int)len;
}

hg_tls_sconn_t *hg_tls_sconn_new(hg_tls_server_t *t) {
  hg_tls_sconn_t *c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  mbedtls_ssl_init(&c->ssl);
  if (mbedtls_ssl_setup(&c->ssl, &t->conf) != 0) {
    hg_tls_sconn_free(c);
    return NULL;
  }
  mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
  return c;
}

void hg_tls_sconn_free(hg_tls_sconn_t *c) {
  if (c == NULL) return;
  mbedtls_ssl_free(&c->ssl);
  free(c->in.buf);
  free(c->out.buf);
  free(c);
}

int hg_tls_sconn_feed(hg_tls_sconn_t *c, const char *data, size_t len) {
  return bytes_append(&c->in, data, len);
}

int hg_tls_sconn_read(hg_tls_sconn_t *c, char *buf, size_t len) {
  if (!c->established) {
    int rc = mbedtls_ssl_handshake(&c->ssl);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return 0;
    if (rc != 0) return HG_EIO;
    c->established = 1;
  }
  int rc = mbedtls_ssl_read(&c->ssl, (unsigned char *)buf, len);
  if (rc > 0) return rc;
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return 0;
  if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) return HG_ECLOSED;
  return HG_EIO;
}

int hg_tls_sconn_write(hg_tls_sconn_t *c, const char *data, size_t len) {
  if (!c->established) return HG_ESTATE;
  while (len > 0) {
    int rc = mbedtls_ssl_write(&c->ssl, (const unsigned char *)data, len);
    if (rc < 0) return HG_EIO;
    data += rc;
    len -= (size_t)rc;
  }
  return 0;
}

int hg_tls_sconn_established(const hg_tls_sconn_t *c) { return c->established; }

const char *hg_tls_sconn_pending(hg_tls_sconn_t *c, size_t *len) {
  *len = c->out.len - c->out.off;
  return c->out.buf + c->out.off;
}

void hg_tls_sconn_consume(hg_tls_sconn_t *c, size_t n) {
  c->out.off += n;
  if (c->out.off == c->out.len) c->out.off = c->out.len = 0;
}
