/*
 * pkg/http TLS internals: the per-connection engine that http.c and
 * http_server.c call at a few marked hooks, and the pure SSL_CTX builder
 * (unit-tested). Not part of the public contract.
 *
 * The engine works on memory BIOs: ciphertext read from the socket is
 * written to the read BIO and decrypted straight into the connection's
 * read buffer, where the HTTP parser finds it as if it came in plain;
 * answers are encrypted into the write BIO, whose bytes go out through the
 * connection's ordinary (plain) write path.
 */
#ifndef D8_HTTP_TLS_INT_H
#define D8_HTTP_TLS_INT_H

#include "http_int.h"
#include "http_tls.h"

#include <openssl/ssl.h>
#include <sys/types.h>

/* One connection's TLS state; c->tls, owned by the connection. */
typedef struct http__tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    http_tls_t *tls;  /* the server's, for counters */
    unsigned hs_done : 1;
    unsigned first_seen : 1;
    unsigned dead : 1;  /* failed or refused: nothing more is decrypted */
    unsigned plain : 1; /* answering a plain HTTP request in plain */
} http__tls_conn_t;

/*
 * Builds a server SSL_CTX from the files (the policy of http_tls.h). On
 * failure returns NULL, sets *bad_file and writes the reason to err.
 * Thread-safe (used from a worker thread on reload).
 */
SSL_CTX *http__tls_ctx_build(const http_tls_opts_t *o, http_tls_file_t *bad_file, char *err,
                             size_t errlen);

/* Writes OpenSSL's reason for the last error of this thread's queue (or
 * `fallback`) into out, and clears the queue. */
void http__tls_reason(char *out, size_t outlen, const char *fallback);

/* 1 when the first bytes of a connection look like a plain HTTP request
 * (an upper-case method letter) rather than a TLS record. */
int http__tls_looks_plain(const char *data, size_t len);

/* Counts a completed handshake, a failed one, or a plain HTTP request on
 * the TLS port (http_tls_ctx.c owns the counters). */
enum { HTTP__TLS_HANDSHAKE, HTTP__TLS_FAILED, HTTP__TLS_PLAIN };
void http__tls_count(http_tls_t *tls, int what);

/* The plain write path of http.c (under the TLS hook of http__conn_write). */
int http__conn_write_raw(http__conn_t *c, const uv_buf_t *bufs, unsigned n);

/* ---- hooks called from http.c / http_server.c ------------------------- */

/* conn_start: gives c a TLS engine with the current SSL_CTX; 0 or -1. */
int http__tls_conn_new(http__conn_t *c, http_tls_t *tls);
/* conn_release: frees c's engine. */
void http__tls_conn_free(http__conn_t *c);
/*
 * on_read: takes n bytes of ciphertext, runs the handshake and decrypts
 * what it can to c->rbuf + c->rlen (growing rbuf; rlen is left to the
 * caller). Returns the number of plaintext bytes there; 0 when there is
 * nothing for the parser (handshake in progress, or the connection is
 * being closed); UV_EOF when the peer sent close_notify (plaintext before
 * it is then already counted into c->rlen).
 */
ssize_t http__tls_read(http__conn_t *c, const char *data, size_t n);
/* http__conn_write: encrypts bufs and queues the records; 0 or D8_EGONE. */
int http__tls_write(http__conn_t *c, const uv_buf_t *bufs, unsigned n);
/* http__conn_end_graceful: queues close_notify after the last answer. */
void http__tls_close_notify(http__conn_t *c);

#endif
