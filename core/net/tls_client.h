/* tls_client.h: client-side TLS 1.2 over in-memory buffers (mbedTLS 2.28).
 *
 * No sockets here: the caller feeds ciphertext read from the network with
 * hg_tls_conn_feed() and sends whatever hg_tls_conn_out() holds. This is how
 * http_client.c bridges mbedTLS to libuv without blocking.
 *
 * One hg_tls_client_t (shared config, CA chain, DRBG) serves every
 * connection of an HTTP client; hg_tls_session_t caches one session per
 * origin for resumption (session IDs and tickets). */
#ifndef HG_TLS_CLIENT_H
#define HG_TLS_CLIENT_H

#include <stddef.h>

typedef struct hg_tls_client hg_tls_client_t;
typedef struct hg_tls_conn hg_tls_conn_t;
typedef struct hg_tls_session hg_tls_session_t;

/* The bundle used when ca_file is NULL. */
#define HG_TLS_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* Creates the shared context: TLS 1.2 only, certificate and hostname
 * verification required, curves X25519, P-256, P-384, session tickets on.
 * ca_file is a PEM bundle, NULL for the system one. On failure returns
 * HG_ECONFIG (with a sentence in err, e.g. "tls: cannot load CA file x:
 * ...") or HG_ENOMEM. */
int hg_tls_client_new(hg_tls_client_t **out, const char *ca_file, char *err, size_t errlen);

/* Frees the context. Every hg_tls_conn_t made from it must be freed first.
 * Accepts NULL. */
void hg_tls_client_free(hg_tls_client_t *t);

/* A cached session for one origin; starts empty. */
hg_tls_session_t *hg_tls_session_new(void);
void hg_tls_session_free(hg_tls_session_t *s); /* accepts NULL */

/* Whether s holds a session a new connection can offer to resume (a
 * handshake with it completed). 0 for NULL. */
int hg_tls_session_valid(const hg_tls_session_t *s);

/* Starts a connection to hostname (checked against the certificate, and sent
 * as SNI). session may be NULL; when it holds a session, resumption is
 * offered. The connection borrows t (and session until the handshake ends).
 * Returns 0, HG_ENOMEM or HG_EINVAL (hostname unusable). */
int hg_tls_conn_new(hg_tls_conn_t **out, hg_tls_client_t *t, const char *hostname,
                    hg_tls_session_t *session);

/* Frees a connection. Accepts NULL. */
void hg_tls_conn_free(hg_tls_conn_t *c);

/* Appends ciphertext received from the peer (copied). Returns 0 or
 * HG_ENOMEM. */
int hg_tls_conn_feed(hg_tls_conn_t *c, const char *data, size_t len);

/* Advances the handshake. Returns 0 once complete (and then stores the
 * session in the session passed to hg_tls_conn_new(), if any), 1 when more
 * input is needed, or HG_EIO with the reason in err, e.g. "tls: certificate
 * verify failed: the certificate is not correctly signed by the trusted CA".
 * Send hg_tls_conn_out() after every call. */
int hg_tls_conn_handshake(hg_tls_conn_t *c, char *err, size_t errlen);

/* Encrypts len bytes into the output buffer. Returns 0, or HG_EIO with the
 * reason in err. */
int hg_tls_conn_write(hg_tls_conn_t *c, const char *data, size_t len, char *err, size_t errlen);

/* Decrypts into buf. Returns the number of bytes (> 0), 0 when more input
 * is needed, HG_ECLOSED when the peer sent close_notify, or HG_EIO with the
 * reason in err. */
int hg_tls_conn_read(hg_tls_conn_t *c, char *buf, size_t len, char *err, size_t errlen);

/* The ciphertext waiting to be sent; the caller sends (or copies) it and
 * then calls hg_tls_conn_out_clear(). */
void hg_tls_conn_out(hg_tls_conn_t *c, const char **data, size_t *len);
void hg_tls_conn_out_clear(hg_tls_conn_t *c);

/* Nonzero when ciphertext fed in was not consumed yet. */
int hg_tls_conn_has_input(const hg_tls_conn_t *c);

/* Nonzero when the completed handshake resumed a cached session. */
int hg_tls_conn_resumed(const hg_tls_conn_t *c);

#endif
