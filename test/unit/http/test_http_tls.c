/*
 * Unit tests of pkg/http's TLS: the SSL_CTX builder and its error reasons,
 * the plain-HTTP sniff, and the memory-BIO engine end to end: a real
 * server with TLS on a libuv loop in a background thread, driven by a
 * blocking OpenSSL client (pipelining, answers and bodies much larger than
 * a TLS record and than the read buffer's bound, close_notify both ways).
 * Certificates are made with the openssl CLI in a temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "http/http.h"
#include "http/http_tls.h"
#include "http/http_tls_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256];
static char g_crt[320], g_key[320], g_ca[320], g_other_key[320];

static int sh(const char *cmd)
{
    char full[2048];
    snprintf(full, sizeof full, "cd '%s' && (%s) >/dev/null 2>&1", g_dir, cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/d8-unit-tls.XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_crt, sizeof g_crt, "%s/srv.crt", g_dir);
    snprintf(g_key, sizeof g_key, "%s/srv.key", g_dir);
    snprintf(g_ca, sizeof g_ca, "%s/ca.crt", g_dir);
    snprintf(g_other_key, sizeof g_other_key, "%s/other.key", g_dir);
    return sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
              "ca.key -out ca.crt -days 2 -subj /CN=unit-ca && "
              "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key "
              "-out srv.csr -subj /CN=localhost && "
              "printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
              "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -set_serial 0x77 -days 2 "
              "-extfile ext -out srv.crt && "
              "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out other.key && "
              "printf 'not a certificate\\n' > junk.pem");
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------- pure functions */

static void test_looks_plain(void **state)
{
    (void)state;
    assert_true(http__tls_looks_plain("GET / HTTP/1.1", 3));
    assert_true(http__tls_looks_plain("PUT", 3));
    assert_false(http__tls_looks_plain("\x16\x03\x01", 3));
    assert_false(http__tls_looks_plain("get", 3));
    assert_false(http__tls_looks_plain("", 0));
}

static void build_fails(const char *crt, const char *key, const char *ca, http_tls_file_t want,
                        const char *reason)
{
    http_tls_opts_t o = {.cert_file = crt, .key_file = key, .client_ca_file = ca};
    http_tls_file_t bad = HTTP_TLS_FILE_NONE;
    char err[256] = "";
    SSL_CTX *ctx = http__tls_ctx_build(&o, &bad, err, sizeof err);
    if (ctx || bad != want || !strstr(err, reason))
        print_message("got %d \"%s\", wanted %d \"%s\"\n", (int)bad, err, (int)want, reason);
    assert_null(ctx);
    assert_int_equal(bad, want);
    assert_non_null(strstr(err, reason));
    assert_int_equal(ERR_peek_error(), 0); /* the thread's queue is left clean */
}

static void test_ctx_build_errors(void **state)
{
    (void)state;
    char junk[320], missing[320];
    snprintf(junk, sizeof junk, "%s/junk.pem", g_dir);
    snprintf(missing, sizeof missing, "%s/missing.pem", g_dir);
    build_fails(missing, g_key, NULL, HTTP_TLS_FILE_CERT, "No such file or directory");
    build_fails(junk, g_key, NULL, HTTP_TLS_FILE_CERT, "no start line");
    build_fails("", g_key, NULL, HTTP_TLS_FILE_CERT, "cannot load the certificate");
    build_fails(g_crt, missing, NULL, HTTP_TLS_FILE_KEY, "No such file or directory");
    build_fails(g_crt, g_other_key, NULL, HTTP_TLS_FILE_KEY,
                "the private key does not match the certificate");
    build_fails(g_crt, g_key, junk, HTTP_TLS_FILE_CA, "cannot load the client CA");
    build_fails(g_crt, g_key, missing, HTTP_TLS_FILE_CA, "cannot load the client CA");
}

static void test_ctx_build_policy(void **state)
{
    (void)state;
    http_tls_opts_t o = {.cert_file = g_crt, .key_file = g_key, .client_ca_file = g_ca};
    char err[256] = "";
    SSL_CTX *ctx = http__tls_ctx_build(&o, NULL, err, sizeof err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    SSL_CTX_free(ctx);
    o.client_ca_file = "";
    ctx = http__tls_ctx_build(&o, NULL, err, sizeof err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
    SSL_CTX_free(ctx);
}

/* ------------------------------------------------------- the engine */

typedef struct fx {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    http_tls_t *tls;
    http_server_t *srv;
    int port;
} fx_t;

static void handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    (void)ud;
    if (strcmp(req->path, "/echo") == 0) {
        http_respond(ex, 200, NULL, 0, "application/octet-stream", req->body, req->body_len);
    } else if (strcmp(req->path, "/big") == 0) {
        char n[32];
        size_t len = http_query_param(req, "n", n, sizeof n) > 0 ? strtoul(n, NULL, 10) : 0;
        char *big = malloc(len + 1);
        for (size_t i = 0; i < len; i++)
            big[i] = (char)('a' + i % 26);
        http_respond(ex, 200, NULL, 0, "text/plain", big, len);
        free(big);
    } else if (strcmp(req->path, "/sse") == 0) {
        if (http_stream_start(ex, 200, NULL, 0, "text/event-stream") == 0) {
            for (int i = 0; i < 3; i++)
                http_stream_write(ex, "data: x\n\n", 9);
            http_stream_end(ex);
        }
    } else {
        http_respond_error(ex, 404, "NotFound", NULL, NULL);
    }
}

static void on_freed(void *arg)
{
    fx_t *fx = arg;
    http_tls_free(fx->tls);
    uv_close((uv_handle_t *)&fx->stop, NULL);
}

static void on_stop(uv_async_t *a)
{
    fx_t *fx = a->data;
    http_server_free(fx->srv, on_freed, fx);
}

static void *loop_main(void *arg)
{
    fx_t *fx = arg;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    uv_loop_init(&fx->loop);
    http_tls_opts_t to = {.cert_file = g_crt, .key_file = g_key};
    char err[256];
    if (http_tls_new(&fx->loop, &to, &fx->tls, NULL, err, sizeof err) != 0)
        return -1;
    http_server_opts_t so = {
        .host = "127.0.0.1",
        .handler = handler,
        .default_body_limit = 4u << 20,
        .ud = fx,
        .tls = fx->tls,
    };
    if (http_server_new(&fx->loop, &so, &fx->srv) != 0)
        return -1;
    fx->port = http_server_port(fx->srv);
    uv_async_init(&fx->loop, &fx->stop, on_stop);
    fx->stop.data = fx;
    pthread_create(&fx->thread, NULL, loop_main, fx);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    uv_async_send(&fx->stop);
    pthread_join(fx->thread, NULL);
    int rc = uv_loop_close(&fx->loop);
    free(fx);
    return rc == 0 ? 0 : -1;
}

typedef struct cli {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} cli_t;

static void cli_open(cli_t *c, int port)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, g_ca, NULL), 1);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set1_host(c->ssl, "127.0.0.1");
    assert_int_equal(SSL_connect(c->ssl), 1);
}

static void cli_close(cli_t *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
}

static void cli_send(cli_t *c, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        int r = SSL_write(c->ssl, data + off, (int)(len - off));
        assert_true(r > 0);
        off += (size_t)r;
    }
}

/* Reads one answer with a Content-Length body; returns the body length
 * and (optionally) the body, malloc'd. */
static size_t cli_answer(cli_t *c, int *status, char **body_out)
{
    char head[8192];
    size_t n = 0;
    while (n < sizeof head - 1) {
        int r = SSL_read(c->ssl, head + n, 1);
        assert_int_equal(r, 1);
        n++;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[n] = '\0';
    *status = atoi(head + 9);
    const char *cl = strcasestr(head, "content-length: ");
    assert_non_null(cl);
    size_t len = strtoul(cl + 16, NULL, 10);
    char *body = malloc(len + 1);
    size_t got = 0;
    while (got < len) {
        int r = SSL_read(c->ssl, body + got, (int)(len - got));
        assert_true(r > 0);
        got += (size_t)r;
    }
    body[len] = '\0';
    if (body_out)
        *body_out = body;
    else
        free(body);
    return len;
}

/* Three requests in one TLS write are answered in order. */
static void test_pipelined(void **state)
{
    fx_t *fx = *state;
    cli_t c;
    cli_open(&c, fx->port);
    static const char reqs[] = "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                               "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
                               "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_send(&c, reqs, sizeof reqs - 1);
    int st;
    char *b;
    cli_answer(&c, &st, &b);
    assert_int_equal(st, 200);
    assert_string_equal(b, "one");
    free(b);
    cli_answer(&c, &st, &b);
    assert_string_equal(b, "two");
    free(b);
    cli_answer(&c, &st, NULL);
    assert_int_equal(st, 404);
    cli_close(&c);
}

/* Bodies and answers of megabytes: many records each way, the read
 * buffer's bound crossed while a request is handled. */
static void test_large(void **state)
{
    fx_t *fx = *state;
    cli_t c;
    cli_open(&c, fx->port);
    size_t n = 3u << 20;
    char head[128];
    snprintf(head, sizeof head, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('A' + i % 23);
    cli_send(&c, head, strlen(head));
    cli_send(&c, body, n);
    static const char big[] = "GET /big?n=2500000 HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_send(&c, big, sizeof big - 1);
    int st;
    char *got;
    assert_int_equal(cli_answer(&c, &st, &got), n);
    assert_int_equal(st, 200);
    assert_memory_equal(got, body, n);
    free(got);
    free(body);
    assert_int_equal(cli_answer(&c, &st, &got), 2500000);
    for (size_t i = 0; i < 2500000; i += 4999)
        assert_int_equal(got[i], 'a' + i % 26);
    free(got);
    cli_close(&c);
}

/* Connection: close ends with the server's close_notify; a streamed
 * answer arrives whole; the client's close_notify is taken as EOF. */
static void test_close_notify(void **state)
{
    fx_t *fx = *state;
    cli_t c;
    cli_open(&c, fx->port);
    static const char req[] = "GET /sse HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cli_send(&c, req, sizeof req - 1);
    char buf[4096];
    size_t n = 0;
    int r;
    while ((r = SSL_read(c.ssl, buf + n, (int)(sizeof buf - 1 - n))) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    assert_int_equal(SSL_get_error(c.ssl, r), SSL_ERROR_ZERO_RETURN);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    int events = 0;
    for (const char *p = strstr(buf, "data: x"); p; p = strstr(p + 1, "data: x"))
        events++;
    assert_int_equal(events, 3);
    cli_close(&c);

    cli_open(&c, fx->port);
    static const char req2[] = "GET /big?n=10 HTTP/1.1\r\nHost: x\r\n\r\n";
    cli_send(&c, req2, sizeof req2 - 1);
    int st;
    cli_answer(&c, &st, NULL);
    assert_int_equal(st, 200);
    SSL_shutdown(c.ssl); /* our close_notify: the server closes too */
    r = SSL_read(c.ssl, buf, sizeof buf);
    assert_true(r <= 0);
    cli_close(&c);
    http_tls_stats_t s;
    http_tls_get_stats(fx->tls, &s);
    assert_true(s.handshakes >= 2);
    assert_string_equal(s.serial, "77");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_looks_plain),
        cmocka_unit_test(test_ctx_build_errors),
        cmocka_unit_test(test_ctx_build_policy),
        cmocka_unit_test_setup_teardown(test_pipelined, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_large, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_notify, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
