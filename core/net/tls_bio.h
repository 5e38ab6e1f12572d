/* tls_bio.h: what both ends of TLS share: the protocol settings, and an
 * mbedTLS 2.28 context over in-memory buffers (a "memory BIO").
 *
 * mbedTLS reads and writes through two callbacks. Here the read side drains
 * `in`, which the caller fills with ciphertext read from the socket, and
 * reports WANT_READ when it is empty; the write side appends to `out`,
 * which the caller sends. The TLS state machine thus never touches a socket
 * and never blocks, and writing never fails short, so mbedtls_ssl_write
 * never sees WANT_WRITE.
 *
 * Internal to net/: tls_client.c and tls_server.c build their connections
 * on it. Functions that fail with HG_EIO put mbedTLS's own code in *ret
 * (when ret is not NULL), so each side words the reason its own way. */
#ifndef HG_TLS_BIO_H
#define HG_TLS_BIO_H

#include <mbedtls/ssl.h>
#include <stddef.h>

#include "base/buf.h"

typedef struct hg_tls_bio {
  mbedtls_ssl_context ssl;
  hg_buf_t in;  /* ciphertext from the peer, not yet read by mbedTLS */
  hg_buf_t out; /* ciphertext for the peer, not yet sent */
} hg_tls_bio_t;

/* Sets what both sides use: TLS 1.2 only; curves X25519, P-256, P-384 in
 * that order of preference; mbedTLS's cipher suites, with the ECDHE
 * AES-GCM ones first when the CPU has AES-NI and carry-less multiply
 * (ChaCha20-Poly1305, mbedTLS's first choice, otherwise). */
void hg_tls_bio_conf(mbedtls_ssl_config *conf);

/* Sets up b (caller's storage, zeroed or not) on conf, which must outlive
 * it. Returns 0 or mbedTLS's error; either way hg_tls_bio_close releases
 * b. */
int hg_tls_bio_init(hg_tls_bio_t *b, const mbedtls_ssl_config *conf);

/* Releases b's context and buffers. */
void hg_tls_bio_close(hg_tls_bio_t *b);

/* Appends ciphertext received from the peer (copied). Returns 0 or
 * HG_ENOMEM. */
int hg_tls_bio_feed(hg_tls_bio_t *b, const char *data, size_t len);

/* Advances the handshake. Returns 0 once complete, 1 when more input is
 * needed, or HG_EIO. Output may be pending afterwards: send it. */
int hg_tls_bio_handshake(hg_tls_bio_t *b, int *ret);

/* Decrypts into buf. Returns the number of bytes (> 0), 0 when more input
 * is needed, HG_ECLOSED when the peer sent close_notify (or closed the
 * stream), or HG_EIO. */
int hg_tls_bio_read(hg_tls_bio_t *b, char *buf, size_t len, int *ret);

/* Encrypts all of data into the pending output. Returns 0 or HG_EIO. */
int hg_tls_bio_write(hg_tls_bio_t *b, const char *data, size_t len, int *ret);

/* The ciphertext waiting to be sent ("" and *len 0 when none). Valid until
 * the next call on b. */
static inline const char *hg_tls_bio_pending(const hg_tls_bio_t *b, size_t *len) {
  *len = hg_buf_unread(&b->out);
  return *len ? b->out.data + b->out.off : "";
}

/* Marks n bytes of the pending output sent. */
static inline void hg_tls_bio_consume(hg_tls_bio_t *b, size_t n) { hg_buf_consume(&b->out, n); }

/* Nonzero when ciphertext was fed in and not yet consumed, or decrypted
 * bytes wait in mbedTLS. */
int hg_tls_bio_has_input(const hg_tls_bio_t *b);

#endif
