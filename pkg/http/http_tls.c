/*
 * pkg/http TLS engine: one connection's handshake, decryption into the
 * HTTP parser's read buffer, encryption of the answers, close_notify and
 * failures, on memory BIOs (see http_tls_int.h). The connection's libuv
 * read and write paths stay the plain ones: http.c calls in at the marked
 * "TLS hook" lines only.
 *
 * A failed handshake sends OpenSSL's alert and ends the connection; it is
 * counted and logged (remote address, OpenSSL's reason: never key
 * material). A plain HTTP request on the TLS port gets a plain 400 with
 * Connection: close, as nginx does, instead of a silent close.
 */
#include "http_tls_int.h"

#include "base/base.h"
#include "log/log.h"

#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RBUF_INIT 16384u
#define RBUF_MIN_FREE 4096u
/* Output kept in the write BIO's buffer between answers at most. */
#define WBIO_KEEP_MAX (64u * 1024u)

void http__tls_conn_free(http__conn_t *c)
{
    if (!c->tls)
        return;
    SSL_free(c->tls->ssl); /* frees both BIOs */
    free(c->tls);
    c->tls = NULL;
}

int http__tls_looks_plain(const char *data, size_t len)
{
    /* A TLS connection starts with a handshake record (0x16); every HTTP
     * method starts with an upper-case letter. */
    return len > 0 && data[0] >= 'A' && data[0] <= 'Z';
}

/* Queues what OpenSSL wrote to the write BIO (records, alerts) on the
 * socket; 0 or D8_EGONE. */
static int flush_wbio(http__conn_t *c)
{
    char *p = NULL;
    long n = BIO_get_mem_data(c->tls->wbio, &p);
    if (n <= 0)
        return 0;
    uv_buf_t b = uv_buf_init(p, (unsigned)n);
    /* The write copies what the kernel does not take; it may close the
     * connection, never free it, so c->tls is still there after it. */
    int rc = http__conn_write_raw(c, &b, 1);
    http__tls_conn_t *t = c->tls;
    if (n > (long)WBIO_KEEP_MAX) {
        /* A memory BIO keeps its largest size (and clears all of it on
         * every reset): after a big answer, start a small one again. */
        BIO *fresh = BIO_new(BIO_s_mem());
        if (fresh) {
            SSL_set0_wbio(t->ssl, fresh); /* frees the old one */
            t->wbio = fresh;
            return rc;
        }
    }
    (void)BIO_reset(t->wbio);
    return rc;
}

/* Makes at least RBUF_MIN_FREE bytes free after rbuf[rlen + used]. */
static void rbuf_room(http__conn_t *c, size_t used)
{
    if (!c->rbuf) {
        c->rbuf = d8_xmalloc(RBUF_INIT);
        c->rcap = RBUF_INIT;
    }
    if (c->rcap - c->rlen - used >= RBUF_MIN_FREE)
        return;
    if (c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rlen + used - c->rstart);
        c->rlen -= c->rstart;
        c->rstart = 0;
    }
    while (c->rcap - c->rlen - used < RBUF_MIN_FREE) {
        c->rcap *= 2;
        c->rbuf = d8_xrealloc(c->rbuf, c->rcap);
    }
}

/* Ends a connection whose TLS failed: the alert OpenSSL queued goes out,
 * then the connection closes. */
static void tls_fail(http__conn_t *c, const char *what, int hs)
{
    char reason[200];
    http__tls_reason(reason, sizeof reason, "connection closed");
    c->tls->dead = 1;
    if (hs)
        http__tls_count(c->tls->tls, HTTP__TLS_FAILED);
    LOG(hs ? LOG_INFO : LOG_DEBUG, what, LF_S("remote", c->remote), LF_S("reason", reason));
    flush_wbio(c);
    http__conn_end_graceful(c);
}

static void log_handshake(http__conn_t *c)
{
    if (!log_enabled(LOG_DEBUG))
        return;
    SSL *s = c->tls->ssl;
    X509 *peer = SSL_get0_peer_certificate(s);
    char subject[256] = "";
    if (peer)
        X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
    LOG(LOG_DEBUG, "tls handshake done", LF_S("remote", c->remote),
        LF_S("version", SSL_get_version(s)), LF_S("cipher", SSL_get_cipher_name(s)),
        LF_S("client", subject));
}

/* Drives the handshake; 1 when done, 0 when it needs more input, -1 when
 * it failed (the connection is ending). */
static int handshake(http__conn_t *c)
{
    http__tls_conn_t *t = c->tls;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->hs_done = 1;
        http__tls_count(t->tls, HTTP__TLS_HANDSHAKE);
        log_handshake(c);
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        flush_wbio(c);
        return 0;
    }
    tls_fail(c, "tls handshake failed", 1);
    return -1;
}

/* A plain HTTP request on the TLS port: answered in plain, then closed. */
static void refuse_plain(http__conn_t *c)
{
    c->tls->dead = 1;
    c->tls->plain = 1;
    http__tls_count(c->tls->tls, HTTP__TLS_PLAIN);
    LOG(LOG_DEBUG, "plain HTTP request on the TLS port", LF_S("remote", c->remote));
    http__conn_send_error(c, 400, "PlainHTTPToTLSPort",
                          "this port speaks HTTPS: the request was sent in plain HTTP");
}

ssize_t http__tls_read(http__conn_t *c, const char *data, size_t n)
{
    http__tls_conn_t *t = c->tls;
    if (t->dead)
        return 0;
    /* SSL_get_error reads this thread's error queue, which other users of
     * OpenSSL on the loop (libcurl) may have left non-empty. */
    ERR_clear_error();
    if (!t->first_seen) {
        t->first_seen = 1;
        if (http__tls_looks_plain(data, n)) {
            refuse_plain(c);
            return 0;
        }
    }
    if (BIO_write(t->rbio, data, (int)n) != (int)n) {
        tls_fail(c, "tls input buffer failed", 0);
        return 0;
    }
    if (!t->hs_done && handshake(c) <= 0)
        return 0;
    size_t got = 0;
    int eof = 0;
    for (;;) {
        rbuf_room(c, got);
        size_t room = c->rcap - c->rlen - got;
        int r = SSL_read(t->ssl, c->rbuf + c->rlen + got, room > INT32_MAX ? INT32_MAX : (int)room);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            eof = 1; /* close_notify: the peer sends no more */
            break;
        }
        tls_fail(c, "tls read failed", 0);
        return 0;
    }
    ERR_clear_error();
    if (flush_wbio(c) != 0)
        return 0;
    if (eof) {
        c->rlen += got;
        return UV_EOF;
    }
    return (ssize_t)got;
}

int http__tls_write(http__conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    http__tls_conn_t *t = c->tls;
    if (t->plain)
        return http__conn_write_raw(c, bufs, n);
    if (c->state == HTTP__C_CLOSING)
        return D8_EGONE;
    ERR_clear_error(); /* see http__tls_read */
    if (!t->hs_done || t->dead) {
        /* Only the connection-limit 503 comes before a handshake: it
         * cannot be sent, so the connection just closes. */
        http__conn_close(c);
        return D8_EGONE;
    }
    /* A small answer's head and body go out as one record, not two. */
    char one[16384];
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    uv_buf_t joined;
    if (n > 1 && total <= sizeof one) {
        size_t at = 0;
        for (unsigned i = 0; i < n; i++) {
            if (bufs[i].len)
                memcpy(one + at, bufs[i].base, bufs[i].len);
            at += bufs[i].len;
        }
        joined = uv_buf_init(one, (unsigned)total);
        bufs = &joined;
        n = 1;
    }
    for (unsigned i = 0; i < n; i++) {
        size_t off = 0;
        while (off < bufs[i].len) {
            size_t len = bufs[i].len - off;
            int r = SSL_write(t->ssl, bufs[i].base + off, len > INT32_MAX ? INT32_MAX : (int)len);
            if (r <= 0) {
                char reason[200];
                http__tls_reason(reason, sizeof reason, "write failed");
                LOG(LOG_DEBUG, "tls write failed", LF_S("remote", c->remote),
                    LF_S("reason", reason));
                http__conn_close(c);
                return D8_EGONE;
            }
            off += (size_t)r;
        }
    }
    return flush_wbio(c);
}

void http__tls_close_notify(http__conn_t *c)
{
    http__tls_conn_t *t = c->tls;
    if (!t->hs_done || t->dead)
        return;
    t->dead = 1;
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
    flush_wbio(c);
}
