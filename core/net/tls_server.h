/* tls_server.h: the server side of TLS 1.2 (mbedTLS 2.28), with no I/O.
 *
 * The HTTP server owns the sockets. It feeds ciphertext it read into a
 * connection (hg_tls_sconn_feed), pulls plaintext out (hg_tls_sconn_read, which
 * also drives the handshake), pushes plaintext in (hg_tls_sconn_write), and
 * sends whatever ciphertext the connection has pending (hg_tls_sconn_pending,
 * hg_tls_sconn_consume). Nothing here blocks or touches the event loop. */
#ifndef HG_TLS_SERVER_H
#define HG_TLS_SERVER_H

#include <stddef.h>

typedef struct hg_tls_server hg_tls_server_t;
typedef struct hg_tls_sconn hg_tls_sconn_t;

/* Loads the PEM certificate chain and private key, and builds a TLS 1.2
 * server configuration: curves X25519, P-256, P-384; session tickets for
 * resumption; its own CTR-DRBG seeded from the system entropy. On failure
 * returns a negative HG_E* code and writes a sentence naming the file into
 * err, e.g. "tls key /etc/k.pem: PK - Read/write of file failed". */
int hg_tls_server_new(hg_tls_server_t **out, const char *cert_file, const char *key_file, char *err,
                      size_t errlen);

/* Frees the configuration. Every connection made from it must be freed
 * first. Accepts NULL. */
void hg_tls_server_free(hg_tls_server_t *t);

/* A new server-side connection (handshake not started). NULL when out of
 * memory. */
hg_tls_sconn_t *hg_tls_sconn_new(hg_tls_server_t *t);

/* Accepts NULL. */
void hg_tls_sconn_free(hg_tls_sconn_t *c);

/* Appends ciphertext received from the peer; copies it. 0 or HG_ENOMEM. */
int hg_tls_sconn_feed(hg_tls_sconn_t *c, const char *data, size_t len);

/* Advances the handshake and decrypts into buf. Returns the number of
 * plaintext bytes (> 0), 0 when more ciphertext is needed, HG_ECLOSED when
 * the peer sent close_notify, or HG_EIO on a protocol error (a bad
 * handshake): the connection is then unusable. May leave ciphertext
 * pending (handshake messages): send it. */
int hg_tls_sconn_read(hg_tls_sconn_t *c, char *buf, size_t len);

/* Encrypts all of data into the pending ciphertext. 0, HG_ESTATE before
 * the handshake finished, or HG_EIO. */
int hg_tls_sconn_write(hg_tls_sconn_t *c, const char *data, size_t len);

/* Nonzero once the handshake completed. */
int hg_tls_sconn_established(const hg_tls_sconn_t *c);

/* The ciphertext waiting to be sent; *len is 0 when none. The pointer is
 * valid until the next call on c. */
const char *hg_tls_sconn_pending(hg_tls_sconn_t *c, size_t *len);

/* Marks n bytes of the pending ciphertext as sent. */
void hg_tls_sconn_consume(hg_tls_sconn_t *c, size_t n);

#endif
