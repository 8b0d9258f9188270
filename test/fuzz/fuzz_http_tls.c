/*
 * libFuzzer target for pkg/http's TLS engine (http_tls.c). A fresh TLS
 * server (a certificate made in memory at start) adopts one end of a
 * socketpair. The first input byte picks the mode:
 *  - even: the rest goes to the server raw, in pieces: what a client that
 *    is not (or not quite) TLS sends: broken ClientHellos, plain HTTP,
 *    garbage;
 *  - odd: an in-process OpenSSL client completes a real handshake first,
 *    then sends the rest as application data in pieces, so that arbitrary
 *    HTTP bytes travel through decryption into the parser, and answers
 *    back through encryption; the client ends with close_notify or a bare
 *    EOF.
 * Every run must end with the connection closed and the server freed.
 */
#include "base/base.h"
#include "http/http.h"
#include "http/http_int.h"
#include "http/http_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
    uv_loop_t loop;
    http_tls_t *tls;
    SSL_CTX *cctx;
    SSL *cssl; /* the in-process client, TLS mode only */
    BIO *cr, *cw;
    char pending[1 << 16]; /* client bytes the socket did not take yet */
    size_t npending;
    int client;
    int done;
} fuzz_state_t;

static fuzz_state_t st;

static void handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    (void)ud;
    if (req->path[0] && req->path[1] == 's') {
        if (http_stream_start(ex, 200, NULL, 0, "text/event-stream") != 0)
            return;
        for (size_t off = 0; off < req->body_len; off += 5)
            if (http_stream_write(ex, req->body + off,
                                  req->body_len - off < 5 ? req->body_len - off : 5) != 0)
                return;
        http_stream_end(ex);
        return;
    }
    http_respond(ex, 200, NULL, 0, "text/plain", req->body, req->body_len);
}

static void on_free_done(void *arg)
{
    ((fuzz_state_t *)arg)->done = 1;
}

/* Moves bytes between the socket and the client (or drains the socket
 * when there is no client). */
static void shuttle(fuzz_state_t *s)
{
    char buf[16384];
    ssize_t n;
    while (s->client >= 0 && (n = recv(s->client, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        if (s->cssl)
            BIO_write(s->cr, buf, (int)n);
    if (!s->cssl)
        return;
    if (!SSL_is_init_finished(s->cssl))
        SSL_do_handshake(s->cssl);
    else
        while (SSL_read(s->cssl, buf, sizeof buf) > 0)
            ;
    ERR_clear_error();
    int r;
    while (s->npending < sizeof s->pending &&
           (r = BIO_read(s->cw, s->pending + s->npending, (int)(sizeof s->pending - s->npending))) >
               0)
        s->npending += (size_t)r;
    if (s->npending) {
        n = send(s->client, s->pending, s->npending, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            memmove(s->pending, s->pending + n, s->npending - (size_t)n);
            s->npending -= (size_t)n;
        }
    }
}

static void pump(fuzz_state_t *s, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        shuttle(s);
    }
}

/* A self-signed P-256 certificate and its key, written to temporary files. */
static void make_cert(char crt[64], char key[64])
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!pk || !x)
        abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    if (!X509_sign(x, pk, EVP_sha256()))
        abort();
    snprintf(crt, 64, "/tmp/fuzz-tls-crt.XXXXXX");
    snprintf(key, 64, "/tmp/fuzz-tls-key.XXXXXX");
    int fc = mkstemp(crt), fk = mkstemp(key);
    FILE *c = fc >= 0 ? fdopen(fc, "w") : NULL, *k = fk >= 0 ? fdopen(fk, "w") : NULL;
    if (!c || !k || !PEM_write_X509(c, x) ||
        !PEM_write_PrivateKey(k, pk, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(c);
    fclose(k);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static void init_once(void)
{
    static int inited;
    if (inited)
        return;
    inited = 1;
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&st.loop) != 0)
        abort();
    char crt[64], key[64], err[256];
    make_cert(crt, key);
    http_tls_opts_t to = {.cert_file = crt, .key_file = key};
    if (http_tls_new(&st.loop, &to, &st.tls, NULL, err, sizeof err) != 0)
        abort();
    unlink(crt);
    unlink(key);
    st.cctx = SSL_CTX_new(TLS_client_method());
    if (!st.cctx)
        abort();
    st.client = -1;
}

static void client_start(fuzz_state_t *s, int tls13)
{
    s->cssl = SSL_new(s->cctx);
    s->cr = BIO_new(BIO_s_mem());
    s->cw = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(s->cr, -1);
    SSL_set_bio(s->cssl, s->cr, s->cw);
    SSL_set_connect_state(s->cssl);
    SSL_set_max_proto_version(s->cssl, tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    for (int i = 0; i < 100000 && !SSL_is_init_finished(s->cssl); i++)
        pump(s, 1);
    if (!SSL_is_init_finished(s->cssl)) {
        fprintf(stderr, "fuzz_http_tls: the handshake did not finish\n");
        abort();
    }
}

/* Sends data[0..size) in pieces: raw, or as application data. */
static void send_pieces(fuzz_state_t *s, const uint8_t *data, size_t size, size_t piece)
{
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        if (s->cssl) {
            if (SSL_write(s->cssl, data + off, (int)n) <= 0)
                break; /* the server ended the session */
            for (int tries = 0; s->npending && tries < 1000; tries++)
                pump(s, 1);
            pump(s, 2);
            continue;
        }
        size_t sent = 0;
        for (int tries = 0; sent < n && tries < 1000; tries++) {
            ssize_t w = send(s->client, data + off + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                break;
            pump(s, 1);
        }
        if (sent < n)
            break; /* the server closed; the rest has nowhere to go */
        pump(s, 2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_state_t *s = &st;
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    size_t piece = 1 + (mode >> 2) * 11 % 509;

    http_server_opts_t o = {
        .host = "127.0.0.1",
        .max_header_bytes = 1024,
        .max_connections = 4,
        .header_timeout_ms = 5000,
        .idle_timeout_ms = 5000,
        .default_body_limit = 8192,
        .handler = handler,
        .ud = s,
        .tls = s->tls,
    };
    http_server_t *srv = NULL;
    int sv[2];
    if (http_server_new(&s->loop, &o, &srv) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    s->client = sv[0];
    s->done = 0;
    s->npending = 0;
    if (http__server_adopt(srv, sv[1]) != 0)
        abort();
    if (mode & 1)
        client_start(s, (mode & 2) != 0);
    send_pieces(s, data, size, piece);
    if (s->cssl && (mode & 2))
        SSL_shutdown(s->cssl); /* close_notify, then EOF */
    for (int tries = 0; s->npending && tries < 1000; tries++)
        pump(s, 1);
    shutdown(s->client, SHUT_WR);
    for (int i = 0; i < 100000 && http_server_connections(srv) > 0; i++)
        pump(s, 1);
    if (http_server_connections(srv) > 0) {
        fprintf(stderr, "fuzz_http_tls: connection did not end after EOF\n");
        abort();
    }
    http_server_free(srv, on_free_done, s);
    for (int i = 0; i < 100000 && !s->done; i++)
        pump(s, 1);
    if (!s->done)
        abort();
    SSL_free(s->cssl); /* frees cr and cw */
    s->cssl = NULL;
    close(s->client);
    s->client = -1;
    ERR_clear_error();
    return 0;
}
