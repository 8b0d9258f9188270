/*
 * pkg/http TLS: OpenSSL 3 on an http_server_t's connections.
 *
 * An http_tls_t holds the server's certificate, key and (for mutual TLS)
 * the client CA, as an SSL_CTX built from files, and rebuilds it when the
 * files change (cert-manager rotates a mounted Secret by swapping a
 * symlink): a timer stats the files every reload_ms and, when anything
 * changed, a libuv worker thread builds a new SSL_CTX; new connections
 * use it, connections already open keep the one they started with, and a
 * broken new pair keeps the old one (logged with OpenSSL's reason).
 *
 * Policy: TLS 1.2 minimum, OpenSSL's default ciphers and groups, server
 * cipher preference, no renegotiation, ALPN "http/1.1" only (a client
 * offering ALPN without it is refused with no_application_protocol).
 *
 * A server uses it through http_server_opts_t.tls (borrowed): free the
 * http_tls_t only after every server using it was freed.
 */
#ifndef D8_HTTP_TLS_H
#define D8_HTTP_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_tls http_tls_t;

typedef struct http_tls_opts {
    const char *cert_file;      /* PEM: the certificate, then its chain */
    const char *key_file;       /* PEM private key of the certificate */
    const char *client_ca_file; /* PEM CA(s) for client certificates; NULL or "" = no mTLS */
    uint64_t reload_ms;         /* how often the files are checked; 0 = never */
} http_tls_opts_t;

/* Which file a loading error is about. */
typedef enum http_tls_file {
    HTTP_TLS_FILE_NONE,
    HTTP_TLS_FILE_CERT,
    HTTP_TLS_FILE_KEY,
    HTTP_TLS_FILE_CA,
} http_tls_file_t;

/* Counters and the certificate in use, for logs and metrics. */
typedef struct http_tls_stats {
    uint64_t handshakes;         /* completed */
    uint64_t handshake_failures; /* refused or broken handshakes */
    uint64_t plain_http;         /* plain HTTP requests answered 400 */
    uint64_t reloads;            /* certificate pairs installed after the first */
    uint64_t reload_failures;    /* changed files that did not load */
    int64_t not_after;           /* the certificate's notAfter, Unix seconds */
    char serial[80];             /* its serial number, hex */
} http_tls_stats_t;

/*
 * Loads the files synchronously (at start, before serving) and, when
 * reload_ms > 0, starts watching them on loop. On failure returns
 * D8_EINVAL, *out stays NULL, *bad_file (may be NULL) names the file and
 * err holds "what: OpenSSL's reason" (no key material).
 */
int http_tls_new(uv_loop_t *loop, const http_tls_opts_t *opts, http_tls_t **out,
                 http_tls_file_t *bad_file, char *err, size_t errlen);

/* Stops watching and frees t once its handles and a reload in progress are
 * done (from the loop). NULL is a no-op. */
void http_tls_free(http_tls_t *t);

/* Copies the counters and the current certificate's facts. */
void http_tls_get_stats(const http_tls_t *t, http_tls_stats_t *out);

#endif
