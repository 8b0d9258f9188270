/*
 * pkg/http TLS: the SSL_CTX (policy, certificate files) and its reloading
 * when the files change.
 *
 * Why a stat timer rather than inotify (uv_fs_event): Kubernetes updates a
 * mounted Secret by writing a new timestamped directory and swapping the
 * `..data` symlink; tls.crt and tls.key are symlinks through it. An
 * inotify watch on tls.crt follows the old inode, which is deleted by the
 * swap, so the watch dies after the first rotation and would have to be
 * re-armed on the directory with care for every way an operator may
 * replace files (rename, in-place write, symlink). stat() follows the
 * symlinks and sees every one of these as a new (device, inode, size,
 * mtime, ctime); checking three files every few seconds costs nothing.
 * The stats and the rebuild run on libuv's thread pool, so neither file
 * I/O nor key parsing blocks the loop.
 */
#include "http_tls_int.h"

#include "base/base.h"
#include "log/log.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NFILES 3

/* What identifies one version of a file: a rotation changes some of it. */
typedef struct file_sig {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
} file_sig_t;

/* One reload attempt, handed to a worker thread and back. */
typedef struct reload_job {
    uv_work_t work;
    http_tls_t *tls;
    file_sig_t sig[NFILES];
    int changed;
    SSL_CTX *ctx;
    http_tls_file_t bad;
    char err[256];
} reload_job_t;

struct http_tls {
    uv_loop_t *loop;
    uv_timer_t timer;
    http_tls_opts_t o; /* strings owned */
    SSL_CTX *ctx;      /* the current one; connections hold references */
    file_sig_t sig[NFILES];
    reload_job_t *job; /* in flight, or NULL */
    int timer_open;
    int freeing;
    http_tls_stats_t st;
};

/* ------------------------------------------------------------- reasons */

void http__tls_reason(char *out, size_t outlen, const char *fallback)
{
    /* The oldest error is the cause ("no start line", "No such file or
     * directory", "key values mismatch"); later ones only wrap it. */
    unsigned long first = ERR_peek_error();
    if (!first) {
        snprintf(out, outlen, "%s", fallback);
        return;
    }
    const char *lib = ERR_lib_error_string(first);
    const char *reason = ERR_reason_error_string(first);
    char num[32], sys[128];
    if (ERR_GET_LIB(first) == ERR_LIB_SYS) /* a file that cannot be opened (GNU strerror_r) */
        reason = strerror_r(ERR_GET_REASON(first), sys, sizeof sys);
    if (!reason) {
        snprintf(num, sizeof num, "error %d", ERR_GET_REASON(first));
        reason = num;
    }
    snprintf(out, outlen, "%s%s%s", lib ? lib : "", lib ? ": " : "", reason);
    ERR_clear_error();
}

/* ------------------------------------------------------------- the policy */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char mine[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    unsigned char sellen = 0;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, &sellen, mine, sizeof(mine) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol (RFC 7301) */
    *out = sel;
    *outlen = sellen;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_fail(SSL_CTX *ctx, http_tls_file_t which, http_tls_file_t *bad_file, char *err,
                         size_t errlen, const char *what)
{
    char reason[200];
    http__tls_reason(reason, sizeof reason, "unknown error");
    snprintf(err, errlen, "%s: %s", what, reason);
    if (bad_file)
        *bad_file = which;
    SSL_CTX_free(ctx);
    return NULL;
}

/* 1 when the pending error says the key is not the certificate's. */
static int key_mismatch(void)
{
    unsigned long e = ERR_peek_error();
    return ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
}

static int load_client_ca(SSL_CTX *ctx, const char *file)
{
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1)
        return -1;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(file);
    if (!names)
        return -1;
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
}

SSL_CTX *http__tls_ctx_build(const http_tls_opts_t *o, http_tls_file_t *bad_file, char *err,
                             size_t errlen)
{
    static const unsigned char sid_ctx[] = "dev8-agent";
    if (bad_file)
        *bad_file = HTTP_TLS_FILE_NONE;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return ctx_fail(NULL, HTTP_TLS_FILE_NONE, bad_file, err, errlen, "cannot create context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (!o->cert_file || !o->cert_file[0] ||
        SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
        return ctx_fail(ctx, HTTP_TLS_FILE_CERT, bad_file, err, errlen,
                        "cannot load the certificate (PEM chain)");
    if (!o->key_file || !o->key_file[0] ||
        SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
        return ctx_fail(ctx, HTTP_TLS_FILE_KEY, bad_file, err, errlen,
                        key_mismatch() ? "the private key does not match the certificate"
                                       : "cannot load the private key (PEM)");
    if (SSL_CTX_check_private_key(ctx) != 1)
        return ctx_fail(ctx, HTTP_TLS_FILE_KEY, bad_file, err, errlen,
                        "the private key does not match the certificate");
    if (o->client_ca_file && o->client_ca_file[0] && load_client_ca(ctx, o->client_ca_file) != 0)
        return ctx_fail(ctx, HTTP_TLS_FILE_CA, bad_file, err, errlen,
                        "cannot load the client CA certificates (PEM)");
    return ctx;
}

/* Records the serial and notAfter of ctx's certificate in st. */
static void cert_facts(SSL_CTX *ctx, http_tls_stats_t *st)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    st->serial[0] = '\0';
    st->not_after = 0;
    if (!x)
        return;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(st->serial, sizeof st->serial, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
        st->not_after = (int64_t)timegm(&tm);
    ERR_clear_error();
}

static void log_cert(const char *msg, const http_tls_t *t)
{
    LOG(LOG_INFO, msg, LF_S("certFile", t->o.cert_file), LF_S("serial", t->st.serial),
        LF_I("notAfter", t->st.not_after),
        LF_B("clientAuth", t->o.client_ca_file && t->o.client_ca_file[0]));
    if (t->st.not_after && t->st.not_after < (int64_t)time(NULL))
        LOG(LOG_WARN, "TLS certificate has expired", LF_S("serial", t->st.serial),
            LF_I("notAfter", t->st.not_after));
}

/* ------------------------------------------------------------- reloading */

static void sig_of(const char *path, file_sig_t *s)
{
    struct stat st;
    memset(s, 0, sizeof(*s));
    if (!path || !path[0] || stat(path, &st) != 0)
        return;
    s->exists = 1;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->size = st.st_size;
    s->mtime = st.st_mtim;
    s->ctime = st.st_ctim;
}

static int sig_equal(const file_sig_t *a, const file_sig_t *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void all_sigs(const http_tls_opts_t *o, file_sig_t sig[NFILES])
{
    sig_of(o->cert_file, &sig[0]);
    sig_of(o->key_file, &sig[1]);
    sig_of(o->client_ca_file, &sig[2]);
}

/* Worker thread: reads only the immutable options and the job. */
static void reload_work(uv_work_t *w)
{
    reload_job_t *j = (reload_job_t *)w;
    all_sigs(&j->tls->o, j->sig);
    j->changed = 0;
    for (int i = 0; i < NFILES; i++)
        if (!sig_equal(&j->sig[i], &j->tls->sig[i]))
            j->changed = 1;
    if (j->changed)
        j->ctx = http__tls_ctx_build(&j->tls->o, &j->bad, j->err, sizeof j->err);
}

static void tls_release(http_tls_t *t)
{
    SSL_CTX_free(t->ctx);
    free((char *)t->o.cert_file);
    free((char *)t->o.key_file);
    free((char *)t->o.client_ca_file);
    free(t);
}

/* Back on the loop: installs a new SSL_CTX, or logs why the changed files
 * did not load; frees t when http_tls_free ran meanwhile. */
static void reload_done(uv_work_t *w, int status)
{
    reload_job_t *j = (reload_job_t *)w;
    http_tls_t *t = j->tls;
    t->job = NULL;
    if (t->freeing || status != 0) {
        SSL_CTX_free(j->ctx);
        free(j);
        if (t->freeing && !t->timer_open)
            tls_release(t);
        return;
    }
    if (j->changed) {
        /* Remember what was tried either way: a broken pair is reported
         * once, and tried again when the files change again. */
        memcpy(t->sig, j->sig, sizeof t->sig);
        if (j->ctx) {
            SSL_CTX_free(t->ctx);
            t->ctx = j->ctx;
            t->st.reloads++;
            cert_facts(t->ctx, &t->st);
            log_cert("TLS certificate reloaded", t);
        } else {
            t->st.reload_failures++;
            static const char *const names[] = {"", "certFile", "keyFile", "clientCAFile"};
            LOG(LOG_WARN, "TLS certificate files changed but do not load; keeping the old ones",
                LF_S("file", names[j->bad]), LF_S("reason", j->err), LF_S("serial", t->st.serial));
        }
    }
    free(j);
}

static void on_reload_timer(uv_timer_t *timer)
{
    http_tls_t *t = timer->data;
    if (t->job || t->freeing)
        return;
    reload_job_t *j = d8_xcalloc(1, sizeof(*j));
    j->tls = t;
    if (uv_queue_work(t->loop, &j->work, reload_work, reload_done) != 0) {
        free(j);
        return;
    }
    t->job = j;
}

/* ------------------------------------------------------------- public */

int http_tls_new(uv_loop_t *loop, const http_tls_opts_t *opts, http_tls_t **out,
                 http_tls_file_t *bad_file, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (bad_file)
        *bad_file = HTTP_TLS_FILE_NONE;
    if (!loop || !opts || !out) {
        snprintf(err, errlen, "invalid arguments");
        return D8_EINVAL;
    }
    http_tls_t *t = d8_xcalloc(1, sizeof(*t));
    t->loop = loop;
    t->o.cert_file = d8_xstrdup(opts->cert_file ? opts->cert_file : "");
    t->o.key_file = d8_xstrdup(opts->key_file ? opts->key_file : "");
    t->o.client_ca_file = d8_xstrdup(opts->client_ca_file ? opts->client_ca_file : "");
    t->o.reload_ms = opts->reload_ms;
    all_sigs(&t->o, t->sig);
    t->ctx = http__tls_ctx_build(&t->o, bad_file, err, errlen);
    if (!t->ctx) {
        tls_release(t);
        return D8_EINVAL;
    }
    cert_facts(t->ctx, &t->st);
    log_cert("TLS certificate loaded", t);
    if (t->o.reload_ms) {
        uv_timer_init(loop, &t->timer);
        t->timer.data = t;
        t->timer_open = 1;
        uv_timer_start(&t->timer, on_reload_timer, t->o.reload_ms, t->o.reload_ms);
    }
    *out = t;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    http_tls_t *t = h->data;
    t->timer_open = 0;
    if (!t->job)
        tls_release(t);
}

void http_tls_free(http_tls_t *t)
{
    if (!t || t->freeing)
        return;
    t->freeing = 1;
    if (t->timer_open) {
        uv_close((uv_handle_t *)&t->timer, on_timer_closed);
        return;
    }
    if (!t->job)
        tls_release(t);
}

void http_tls_get_stats(const http_tls_t *t, http_tls_stats_t *out)
{
    if (!t) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = t->st;
}

/* ------------------------------------------------------------- connections */

int http__tls_conn_new(http__conn_t *c, http_tls_t *tls)
{
    http__tls_conn_t *tc = d8_xcalloc(1, sizeof(*tc));
    tc->tls = tls;
    tc->ssl = SSL_new(tls->ctx);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    if (!tc->ssl || !tc->rbio || !tc->wbio) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        SSL_free(tc->ssl);
        free(tc);
        ERR_clear_error();
        return -1;
    }
    /* An empty read BIO asks for more rather than signalling EOF. */
    BIO_set_mem_eof_return(tc->rbio, -1);
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_accept_state(tc->ssl);
    c->tls = tc;
    return 0;
}

void http__tls_count(http_tls_t *tls, int what)
{
    switch (what) {
    case HTTP__TLS_HANDSHAKE:
        tls->st.handshakes++;
        break;
    case HTTP__TLS_FAILED:
        tls->st.handshake_failures++;
        break;
    default:
        tls->st.plain_http++;
        break;
    }
}
