/*
 * Unit tests of pkg/http: a real server on a libuv loop in a background
 * thread, driven by plain blocking sockets from the test thread. Work that
 * must happen on the loop (streams, stop, free) is handed over through a
 * uv_async_t and waited for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "http/http.h"
#include "http/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ fixture */

/* cmocka's asserts longjmp and must stay on the test thread; code on the
 * loop thread checks with this and aborts, which fails the test run. */
#define LCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: loop-thread check failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fx fx_t;
typedef void (*fx_cmd_t)(fx_t *fx);

struct fx {
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t atimer; /* answers /async requests later */
    pthread_t thread;
    int thread_running;
    int loop_closed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fx_cmd_t cmd;
    int cmd_done;

    http_server_t *srv;
    int port;

    /* Loop-thread state. */
    http_exchange_t *pending;  /* /async */
    http_exchange_t *held;     /* /sse */
    size_t conns;              /* answer of cmd_count */
    http_exchange_t *drain_ex; /* /drain */
    int drain_left;            /* chunks /drain has still to write */

    /* Shared with the test thread. */
    atomic_int on_close_count;
    atomic_int access_count;
    atomic_int freed;
    atomic_int stream_err;
    atomic_int stream_err_set;
    atomic_int blob_calls;
    atomic_int drains;      /* /drain: drain callbacks run */
    atomic_int max_pending; /* /drain: most bytes seen pending before a write */
    pthread_mutex_t amu;
    int last_status;
    char last_rid[160];
    char last_method[16];
    char last_path[128];
};

static char flood_chunk[65536];
static char blob[256 * 1024];

static void on_async_closed(void *ud)
{
    fx_t *fx = ud;
    fx->pending = NULL;
    uv_timer_stop(&fx->atimer);
    atomic_fetch_add(&fx->on_close_count, 1);
}

static void on_atimer(uv_timer_t *t)
{
    fx_t *fx = t->data;
    http_exchange_t *ex = fx->pending;
    fx->pending = NULL;
    if (ex)
        http_respond(ex, 200, NULL, 0, "text/plain", "async", 5);
}

static void on_sse_closed(void *ud)
{
    fx_t *fx = ud;
    fx->held = NULL;
    atomic_fetch_add(&fx->on_close_count, 1);
}

static void on_flood_closed(void *ud)
{
    fx_t *fx = ud;
    atomic_fetch_add(&fx->on_close_count, 1);
}

#define DRAIN_BOUND (64 * 1024)

/* /drain: writes while less than DRAIN_BOUND is pending, then waits for
 * the drain callback; ends the stream once every chunk is written. */
static void drain_pump(void *ud)
{
    fx_t *fx = ud;
    http_exchange_t *ex = fx->drain_ex;
    while (fx->drain_left > 0) {
        size_t p = http_stream_pending(ex);
        if ((int)p > atomic_load(&fx->max_pending))
            atomic_store(&fx->max_pending, (int)p);
        if (p >= DRAIN_BOUND) {
            http_stream_on_drain(ex, drain_pump, fx);
            atomic_fetch_add(&fx->drains, 1);
            return;
        }
        LCHECK(http_stream_write(ex, flood_chunk, 16384) == 0);
        fx->drain_left--;
    }
    http_exchange_on_close(ex, NULL, NULL);
    http_stream_end(ex);
}

/* /small takes 16 body bytes; /deny is answered 401 at headers-complete
 * (with WWW-Authenticate), without its body. */
static void on_head(void *ud, const http_request_t *req, http_head_verdict_t *v)
{
    (void)ud;
    v->body_limit = strcmp(req->path, "/small") == 0 ? 16 : 1u << 20;
    if (strcmp(req->path, "/deny") == 0) {
        v->status = 401;
        v->code = "Unauthorized";
        v->header_name = "WWW-Authenticate";
        snprintf(v->header_value, sizeof(v->header_value), "Bearer realm=\"t\"");
        snprintf(v->message, sizeof(v->message), "no key");
    }
}

static void handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    fx_t *fx = ud;
    LCHECK(http_exchange_request(ex) == req);
    if (strcmp(req->path, "/hello") == 0) {
        http_header_t h[] = {{"X-Hello", "world"}, {"Bad", "a\r\nInjected: 1"}};
        http_respond(ex, 200, h, 2, "text/plain", "hello", 5);
    } else if (strcmp(req->path, "/echo") == 0 || strcmp(req->path, "/small") == 0) {
        char blen[32], framed[8], b[64] = "";
        snprintf(blen, sizeof(blen), "%zu", req->body_len);
        snprintf(framed, sizeof(framed), "%d", req->body_framed);
        int br = http_query_param(req, "b", b, sizeof(b));
        if (br < 0)
            snprintf(b, sizeof(b), "<%d>", br);
        const char *xt = http_request_header(req, "X-TEST");
        LCHECK(strlen(req->body) == req->body_len);
        http_header_t h[] = {
            {"X-Method", req->method}, {"X-Path", req->path},      {"X-Query", req->query},
            {"X-Body-Len", blen},      {"X-Framed", framed},       {"X-B", b},
            {"X-Test", xt ? xt : "-"}, {"X-Rid", req->request_id}, {"X-Remote", req->remote},
        };
        http_respond(ex, 200, h, sizeof(h) / sizeof(h[0]), "application/octet-stream", req->body,
                     req->body_len);
    } else if (strcmp(req->path, "/async") == 0) {
        char ms[16];
        int delay = http_query_param(req, "ms", ms, sizeof(ms)) > 0 ? atoi(ms) : 30;
        LCHECK(!fx->pending);
        fx->pending = ex;
        http_exchange_on_close(ex, on_async_closed, fx);
        uv_timer_start(&fx->atimer, on_atimer, (uint64_t)delay, 0);
    } else if (strcmp(req->path, "/sse") == 0) {
        http_header_t h[] = {{"Cache-Control", "no-cache"}};
        LCHECK(http_stream_start(ex, 200, h, 1, "text/event-stream") == 0);
        LCHECK(http_stream_write(ex, "data: one\n\n", 11) == 0);
        LCHECK(http_stream_write(ex, "", 0) == 0);
        http_exchange_on_close(ex, on_sse_closed, fx);
        fx->held = ex;
    } else if (strcmp(req->path, "/flood") == 0) {
        LCHECK(http_stream_start(ex, 200, NULL, 0, "text/event-stream") == 0);
        http_exchange_on_close(ex, on_flood_closed, fx);
        for (int i = 0; i < 2000; i++) {
            int r = http_stream_write(ex, flood_chunk, sizeof(flood_chunk));
            if (r != 0) {
                atomic_store(&fx->stream_err, r);
                atomic_store(&fx->stream_err_set, 1);
                /* The connection is closing; writing again says so. */
                LCHECK(http_stream_write(ex, "x", 1) == D8_EGONE);
                break;
            }
        }
    } else if (strcmp(req->path, "/blob") == 0) {
        atomic_fetch_add(&fx->blob_calls, 1);
        http_respond(ex, 200, NULL, 0, "text/plain", blob, sizeof(blob));
    } else if (strcmp(req->path, "/drain") == 0) {
        LCHECK(http_stream_start(ex, 200, NULL, 0, "application/octet-stream") == 0);
        http_exchange_on_close(ex, on_flood_closed, fx); /* must not run */
        fx->drain_ex = ex;
        fx->drain_left = 1024; /* 16 MiB */
        drain_pump(fx);
    } else if (strcmp(req->path, "/big") == 0) {
        size_t n = 3u << 20;
        char *big = malloc(n);
        LCHECK(big);
        for (size_t i = 0; i < n; i++)
            big[i] = (char)('a' + i % 26);
        http_respond(ex, 200, NULL, 0, "text/plain", big, n);
        free(big); /* the server copied what it could not send at once */
    } else if (strcmp(req->path, "/abort") == 0) {
        http_exchange_on_close(ex, on_flood_closed, fx); /* must not run */
        http_exchange_abort(ex);
    } else if (strcmp(req->path, "/nocontent") == 0) {
        http_respond(ex, 204, NULL, 0, NULL, NULL, 0);
    } else if (strcmp(req->path, "/busy") == 0) {
        http_header_t h[] = {{"Retry-After", "7"}, {"Content-Length", "1"}};
        http_respond_error_h(ex, 429, h, 2, "TooManyRequests", "slow \"down\"", "x.y");
    } else if (strcmp(req->path, "/defaults") == 0) {
        http_header_t h = {"Allow", "GET"};
        http_respond_error_h(ex, 405, &h, 1, NULL, NULL, NULL);
    } else {
        http_respond_error(ex, 404, "NotFound", "no such route \"x\"", "path");
    }
}

static void access_cb(void *ud, const char *method, const char *path, int status,
                      uint64_t duration_ns, const char *request_id)
{
    fx_t *fx = ud;
    (void)duration_ns;
    LCHECK(method);
    LCHECK(path);
    LCHECK(request_id);
    pthread_mutex_lock(&fx->amu);
    fx->last_status = status;
    snprintf(fx->last_rid, sizeof(fx->last_rid), "%s", request_id);
    snprintf(fx->last_method, sizeof(fx->last_method), "%s", method);
    snprintf(fx->last_path, sizeof(fx->last_path), "%s", path);
    pthread_mutex_unlock(&fx->amu);
    atomic_fetch_add(&fx->access_count, 1);
}

static void on_async_cmd(uv_async_t *a)
{
    fx_t *fx = a->data;
    pthread_mutex_lock(&fx->mu);
    fx_cmd_t cmd = fx->cmd;
    fx->cmd = NULL;
    pthread_mutex_unlock(&fx->mu);
    if (!cmd)
        return;
    cmd(fx);
    pthread_mutex_lock(&fx->mu);
    fx->cmd_done = 1;
    pthread_cond_broadcast(&fx->cv);
    pthread_mutex_unlock(&fx->mu);
}

static void *loop_main(void *arg)
{
    fx_t *fx = arg;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs cmd on the loop thread and waits for it. */
static void on_loop(fx_t *fx, fx_cmd_t cmd)
{
    pthread_mutex_lock(&fx->mu);
    fx->cmd = cmd;
    fx->cmd_done = 0;
    pthread_mutex_unlock(&fx->mu);
    uv_async_send(&fx->async);
    pthread_mutex_lock(&fx->mu);
    while (!fx->cmd_done)
        pthread_cond_wait(&fx->cv, &fx->mu);
    pthread_mutex_unlock(&fx->mu);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_server_freed(void *arg)
{
    fx_t *fx = arg;
    atomic_store(&fx->freed, 1);
    uv_close((uv_handle_t *)&fx->async, on_handle_closed);
    uv_close((uv_handle_t *)&fx->atimer, on_handle_closed);
}

static void cmd_free(fx_t *fx)
{
    http_server_free(fx->srv, on_server_freed, fx);
    fx->srv = NULL;
}

static void cmd_stop_accepting(fx_t *fx)
{
    http_server_stop_accepting(fx->srv);
}

static void cmd_count(fx_t *fx)
{
    fx->conns = http_server_connections(fx->srv);
}

static void cmd_sse_write(fx_t *fx)
{
    LCHECK(fx->held);
    LCHECK(http_stream_write(fx->held, "data: two\n\n", 11) == 0);
}

static void cmd_sse_end(fx_t *fx)
{
    LCHECK(fx->held);
    http_stream_end(fx->held);
    fx->held = NULL;
}

typedef void (*opts_tweak_t)(http_server_opts_t *o);

static fx_t *fx_start(opts_tweak_t tweak)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    pthread_mutex_init(&fx->mu, NULL);
    pthread_mutex_init(&fx->amu, NULL);
    pthread_cond_init(&fx->cv, NULL);
    assert_int_equal(uv_async_init(&fx->loop, &fx->async, on_async_cmd), 0);
    fx->async.data = fx;
    uv_timer_init(&fx->loop, &fx->atimer);
    fx->atimer.data = fx;
    http_server_opts_t o = {
        .host = "127.0.0.1",
        .port = 0,
        .header_timeout_ms = 300,
        .idle_timeout_ms = 500,
        .on_head = on_head,
        .handler = handler,
        .access = access_cb,
        .ud = fx,
    };
    if (tweak)
        tweak(&o);
    assert_int_equal(http_server_new(&fx->loop, &o, &fx->srv), 0);
    assert_non_null(fx->srv);
    fx->port = http_server_port(fx->srv);
    assert_true(fx->port > 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, loop_main, fx), 0);
    fx->thread_running = 1;
    return fx;
}

/* Frees the server on the loop, waits for the loop to end, checks that
 * nothing is left open. */
static void fx_finish(fx_t *fx)
{
    if (fx->thread_running) {
        if (fx->srv)
            on_loop(fx, cmd_free);
        pthread_join(fx->thread, NULL);
        fx->thread_running = 0;
    }
    if (!fx->loop_closed) {
        assert_int_equal(atomic_load(&fx->freed), 1);
        assert_int_equal(uv_loop_close(&fx->loop), 0);
        fx->loop_closed = 1;
    }
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    if (fx) {
        fx_finish(fx);
        pthread_mutex_destroy(&fx->mu);
        pthread_mutex_destroy(&fx->amu);
        pthread_cond_destroy(&fx->cv);
        free(fx);
    }
    *state = NULL;
    return 0;
}

/* ------------------------------------------------------------ client */

typedef struct client {
    int fd;
    char buf[65536];
    size_t len;
} client_t;

typedef struct resp {
    http_parser parser;
    int status;
    int head_request;
    char headers[16384];
    size_t hlen;
    int last_value;
    char *body;
    size_t body_len, body_cap;
    int complete;
} resp_t;

static int64_t now_ms(void)
{
    return (int64_t)(d8_mono_ns() / 1000000u);
}

static void client_open(client_t *cl, int port)
{
    memset(cl, 0, sizeof(*cl));
    cl->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cl->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(cl->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    setsockopt(cl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void client_close(client_t *cl)
{
    if (cl->fd >= 0)
        close(cl->fd);
    cl->fd = -1;
}

static void client_send(client_t *cl, const char *data, size_t n)
{
    while (n) {
        ssize_t w = send(cl->fd, data, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        data += w;
        n -= (size_t)w;
    }
}

static void client_sends(client_t *cl, const char *s)
{
    client_send(cl, s, strlen(s));
}

/* Reads more bytes into cl->buf; 1 read, 0 EOF/reset, -1 timeout. */
static int client_fill(client_t *cl, int timeout_ms)
{
    struct pollfd p = {.fd = cl->fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r == 0)
        return -1;
    assert_true(cl->len < sizeof(cl->buf));
    ssize_t n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, 0);
    if (n <= 0)
        return 0;
    cl->len += (size_t)n;
    return 1;
}

static int r_on_status(http_parser *p, const char *at, size_t len)
{
    (void)at;
    (void)len;
    resp_t *r = p->data;
    r->status = (int)p->status_code;
    return 0;
}

static int r_on_field(http_parser *p, const char *at, size_t len)
{
    resp_t *r = p->data;
    if (r->hlen == 0 || r->last_value) {
        r->headers[r->hlen++] = '\n';
        r->last_value = 0;
    }
    for (size_t i = 0; i < len && r->hlen + 4 < sizeof(r->headers); i++) {
        char c = at[i];
        r->headers[r->hlen++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    r->headers[r->hlen] = '\0';
    return 0;
}

static int r_on_value(http_parser *p, const char *at, size_t len)
{
    resp_t *r = p->data;
    if (!r->last_value) {
        r->headers[r->hlen++] = ':';
        r->headers[r->hlen++] = ' ';
        r->last_value = 1;
    }
    for (size_t i = 0; i < len && r->hlen + 4 < sizeof(r->headers); i++)
        r->headers[r->hlen++] = at[i];
    r->headers[r->hlen] = '\0';
    return 0;
}

static int r_on_headers_complete(http_parser *p)
{
    resp_t *r = p->data;
    r->status = (int)p->status_code;
    r->headers[r->hlen++] = '\n';
    r->headers[r->hlen] = '\0';
    return r->head_request ? 1 : 0;
}

static int r_on_body(http_parser *p, const char *at, size_t len)
{
    resp_t *r = p->data;
    if (r->body_len + len + 1 > r->body_cap) {
        r->body_cap = (r->body_len + len + 1) * 2;
        r->body = realloc(r->body, r->body_cap);
        assert_non_null(r->body);
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int r_on_complete(http_parser *p)
{
    resp_t *r = p->data;
    r->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_status = r_on_status,
    .on_header_field = r_on_field,
    .on_header_value = r_on_value,
    .on_headers_complete = r_on_headers_complete,
    .on_body = r_on_body,
    .on_message_complete = r_on_complete,
};

static void resp_init(resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
}

static void resp_free(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/*
 * Feeds the client's bytes to the response parser until the response is
 * complete, or its body contains `until` (when not NULL). Returns 0, or -1
 * on EOF, timeout or a parse error.
 */
static int client_pump(client_t *cl, resp_t *r, const char *until)
{
    int64_t deadline = now_ms() + 3000;
    for (;;) {
        if (cl->len) {
            size_t n = http_parser_execute(&r->parser, &resp_settings, cl->buf, cl->len);
            memmove(cl->buf, cl->buf + n, cl->len - n);
            cl->len -= n;
            enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
            if (e == HPE_PAUSED)
                return 0;
            if (e != HPE_OK)
                return -1;
        }
        if (until && r->body && strstr(r->body, until))
            return 0;
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        int f = client_fill(cl, (int)left);
        if (f == 0) {
            /* EOF: completes a body that runs until close, nothing else. */
            http_parser_execute(&r->parser, &resp_settings, NULL, 0);
            return r->complete ? 0 : -1;
        }
        if (f < 0)
            return -1;
    }
}

static int client_read(client_t *cl, resp_t *r)
{
    resp_init(r);
    return client_pump(cl, r, NULL);
}

/* 1 when the server closes the connection within ms without sending
 * anything more, 0 otherwise. */
static int client_eof_within(client_t *cl, int ms)
{
    if (cl->len)
        return 0;
    int r = client_fill(cl, ms);
    return r == 0;
}

/* Copies header `name` (lower-case) of r into out; 1 found, 0 not. */
static int resp_header(const resp_t *r, const char *name, char *out, size_t outlen)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s: ", name);
    const char *p = strstr(r->headers, key);
    if (!p)
        return 0;
    p += strlen(key);
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

static void assert_header(const resp_t *r, const char *name, const char *want)
{
    char v[512];
    if (!resp_header(r, name, v, sizeof(v)))
        fail_msg("header %s missing in:%s", name, r->headers);
    assert_string_equal(v, want);
}

static int is_hex16(const char *s)
{
    if (strlen(s) != 16)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

static void assert_json_error(const resp_t *r, int status, const char *code)
{
    char want[128];
    assert_int_equal(r->status, status);
    assert_header(r, "content-type", "application/json");
    assert_header(r, "connection", "close");
    assert_non_null(r->body);
    snprintf(want, sizeof(want), "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
    assert_true(strncmp(r->body, want, strlen(want)) == 0);
}

/* Waits (polling the loop) until the server holds `want` connections. */
static void wait_conns(fx_t *fx, size_t want)
{
    int64_t deadline = now_ms() + 3000;
    for (;;) {
        on_loop(fx, cmd_count);
        if (fx->conns == want)
            return;
        if (now_ms() > deadline)
            fail_msg("server holds %zu connections, want %zu", fx->conns, want);
        usleep(5000);
    }
}

static void wait_atomic(atomic_int *v, int want)
{
    int64_t deadline = now_ms() + 3000;
    while (atomic_load(v) != want) {
        if (now_ms() > deadline)
            fail_msg("value %d, want %d", atomic_load(v), want);
        usleep(2000);
    }
}

/* ------------------------------------------------------------ tests */

static void test_get_simple(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_header(&r, "content-length", "5");
    assert_header(&r, "content-type", "text/plain");
    assert_header(&r, "connection", "keep-alive");
    assert_header(&r, "x-hello", "world");
    char v[128];
    assert_false(resp_header(&r, "bad", v, sizeof(v))); /* CR/LF in a value: dropped */
    assert_false(resp_header(&r, "injected", v, sizeof(v)));
    assert_true(resp_header(&r, "date", v, sizeof(v)));
    assert_true(strlen(v) == 29 && strcmp(v + 25, " GMT") == 0);
    assert_true(resp_header(&r, "x-request-id", v, sizeof(v)));
    assert_true(is_hex16(v));
    wait_atomic(&fx->access_count, 1);
    pthread_mutex_lock(&fx->amu);
    assert_int_equal(fx->last_status, 200);
    assert_string_equal(fx->last_method, "GET");
    assert_string_equal(fx->last_path, "/hello");
    assert_string_equal(fx->last_rid, v);
    pthread_mutex_unlock(&fx->amu);

    /* Unknown route: the handler's JSON error, keep-alive kept. */
    client_sends(&cl, "GET /nope HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 404);
    assert_header(&r, "connection", "keep-alive");
    assert_string_equal(r.body, "{\"error\":{\"code\":\"NotFound\",\"message\":\"no such route "
                                "\\\"x\\\"\",\"field\":\"path\"}}");
    /* 204 carries neither body nor Content-Length. */
    client_sends(&cl, "GET /nocontent HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 204);
    assert_false(resp_header(&r, "content-length", v, sizeof(v)));
    assert_header(&r, "connection", "keep-alive");
    resp_free(&r);
    client_close(&cl);
}

/* Error answers with extra headers keep the one error shape, and the
 * server's own framing headers still win over the handler's. */
static void test_error_with_headers(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /busy HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 429);
    assert_header(&r, "retry-after", "7");
    assert_header(&r, "content-type", "application/json");
    assert_header(&r, "connection", "keep-alive");
    static const char want[] = "{\"error\":{\"code\":\"TooManyRequests\",\"message\":"
                               "\"slow \\\"down\\\"\",\"field\":\"x.y\"}}";
    assert_string_equal(r.body, want);
    char len[16];
    snprintf(len, sizeof(len), "%zu", sizeof(want) - 1);
    assert_header(&r, "content-length", len);

    client_sends(&cl, "GET /defaults HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 405);
    assert_header(&r, "allow", "GET");
    assert_string_equal(r.body,
                        "{\"error\":{\"code\":\"Error\",\"message\":\"Method Not Allowed\"}}");
    resp_free(&r);
    client_close(&cl);
}

static void test_put_echo_and_query(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /echo?a=1&b=x%2Fy%20z HTTP/1.1\r\nHost: x\r\nX-Test: T1\r\n"
                      "Content-Type: application/json\r\nContent-Length: 13\r\n\r\n"
                      "{\"k\":\"value\"}");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"k\":\"value\"}");
    assert_header(&r, "x-method", "PUT");
    assert_header(&r, "x-path", "/echo");
    assert_header(&r, "x-query", "a=1&b=x%2Fy%20z");
    assert_header(&r, "x-b", "x/y z");
    assert_header(&r, "x-body-len", "13");
    assert_header(&r, "x-framed", "1");
    assert_header(&r, "x-test", "T1");
    assert_header(&r, "content-length", "13");
    char v[128];
    assert_true(resp_header(&r, "x-remote", v, sizeof(v)));
    assert_true(strncmp(v, "127.0.0.1:", 10) == 0);

    /* No body, no framing; a bad escape in the parameter reads as -2. */
    client_sends(&cl, "GET /echo?b=%zz HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "x-framed", "0");
    assert_header(&r, "x-body-len", "0");
    assert_header(&r, "x-b", "<-2>");
    assert_header(&r, "x-query", "b=%zz");

    /* absolute-form target */
    client_sends(&cl, "GET http://example.com/echo?b=1 HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "x-path", "/echo");
    assert_header(&r, "x-b", "1");
    resp_free(&r);
    client_close(&cl);
}

static void test_keepalive_two_requests(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    for (int i = 0; i < 2; i++) {
        client_sends(&cl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_int_equal(client_read(&cl, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        assert_header(&r, "connection", "keep-alive");
    }
    on_loop(fx, cmd_count);
    assert_int_equal(fx->conns, 1);
    assert_int_equal(atomic_load(&fx->access_count), 2);
    resp_free(&r);
    client_close(&cl);
}

static void test_pipelined(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    /* Three in one write, the middle one with a body, the first answered
     * asynchronously: the answers must come back in order. */
    client_sends(&cl, "GET /async?ms=40 HTTP/1.1\r\n\r\n"
                      "PUT /echo?b=2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /echo?b=3 HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "async");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "x-b", "2");
    assert_string_equal(r.body, "abc");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "x-b", "3");

    /* Three synchronous ones, the last asking to close. */
    client_sends(&cl, "GET /echo?b=4 HTTP/1.1\r\n\r\nGET /echo?b=5 HTTP/1.1\r\n\r\n"
                      "GET /echo?b=6 HTTP/1.1\r\nConnection: close\r\n\r\n");
    for (int i = 4; i <= 6; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        assert_int_equal(client_read(&cl, &r), 0);
        assert_header(&r, "x-b", want);
        assert_header(&r, "connection", i == 6 ? "close" : "keep-alive");
    }
    assert_true(client_eof_within(&cl, 2000));
    resp_free(&r);
    client_close(&cl);
}

/* Far more pipelined input than the server buffers while a slow request is
 * handled: reading pauses, then every request is answered, in order. */
static void test_backpressure_pipeline(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    enum { N = 6000 };
    d8_buf_t req;
    d8_buf_init(&req);
    d8_buf_puts(&req, "GET /async?ms=150 HTTP/1.1\r\n\r\n");
    for (int i = 0; i < N; i++)
        d8_buf_printf(&req, "GET /echo?b=%d HTTP/1.1\r\nX-Pad: padpadpadpad\r\n\r\n", i);
    assert_true(req.len > 4 * HTTP__RBUF_BOUND);
    client_open(&cl, fx->port);
    client_send(&cl, req.data, req.len);
    d8_buf_release(&req);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_string_equal(r.body, "async");
    for (int i = 0; i < N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", i);
        assert_int_equal(client_read(&cl, &r), 0);
        assert_header(&r, "x-b", want);
    }
    resp_free(&r);
    client_close(&cl);
}

static void test_chunked_body(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    usleep(20000);
    client_sends(&cl, "lo\r\n");
    usleep(20000);
    client_sends(&cl, "6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    assert_header(&r, "x-body-len", "11");
    assert_header(&r, "x-framed", "1");
    /* The connection goes on after a chunked body. */
    client_sends(&cl, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_string_equal(r.body, "hello");
    resp_free(&r);
    client_close(&cl);
}

static void test_expect_continue(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 100);
    client_sends(&cl, "data");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "data");
    resp_free(&r);
    client_close(&cl);
}

static void test_431_headers_too_large(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    size_t n = 20000;
    char *req = malloc(n + 128);
    assert_non_null(req);
    int off = snprintf(req, 128, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(req + off, 'a', n);
    memcpy(req + off + n, "\r\n\r\n", 5);
    client_sends(&cl, req);
    free(req);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 431, "RequestHeaderFieldsTooLarge");
    char v[64];
    assert_true(resp_header(&r, "x-request-id", v, sizeof(v)));
    assert_true(is_hex16(v));
    assert_true(client_eof_within(&cl, 2000));
    wait_atomic(&fx->access_count, 1);
    pthread_mutex_lock(&fx->amu);
    assert_int_equal(fx->last_status, 431);
    assert_string_equal(fx->last_rid, v);
    pthread_mutex_unlock(&fx->amu);
    resp_free(&r);
    client_close(&cl);
}

static void test_413_content_length(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    /* Refused on the headers alone: the body is never sent. */
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /small HTTP/1.1\r\nContent-Length: 17\r\nX-Request-Id: big-1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 413, "PayloadTooLarge");
    assert_header(&r, "x-request-id", "big-1");
    assert_true(client_eof_within(&cl, 2000));
    client_close(&cl);
    wait_atomic(&fx->access_count, 1);
    pthread_mutex_lock(&fx->amu);
    assert_string_equal(fx->last_method, "PUT");
    assert_string_equal(fx->last_path, "/small");
    pthread_mutex_unlock(&fx->amu);

    /* The default limit (1 MiB), with part of the body already sent. */
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\naaaaaaaaaa");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 413, "PayloadTooLarge");
    assert_true(client_eof_within(&cl, 2000));
    client_close(&cl);

    /* Exactly at the limit is fine. */
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /small HTTP/1.1\r\nContent-Length: 16\r\n\r\n0123456789abcdef");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "0123456789abcdef");
    resp_free(&r);
    client_close(&cl);
}

static void test_413_chunked(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /small HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "a\r\n0123456789\r\n");
    usleep(20000);
    client_sends(&cl, "a\r\n0123456789\r\n0\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 413, "PayloadTooLarge");
    assert_true(client_eof_within(&cl, 2000));
    resp_free(&r);
    client_close(&cl);
}

static void test_400_garbage(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_send(&cl, "BL\x01AH / HTTP/1.1\r\n\r\n", 19);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 400, "BadRequest");
    assert_true(client_eof_within(&cl, 2000));
    client_close(&cl);

    /* Good request first, then garbage on the same connection. */
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /hello HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: x\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 400, "BadRequest");
    assert_true(client_eof_within(&cl, 2000));
    client_close(&cl);

    /* Both Content-Length and chunked: refused (request smuggling). */
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
                      "\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 400, "BadRequest");
    resp_free(&r);
    client_close(&cl);
}

static void test_408_timeouts(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    /* Headers never completed. */
    client_open(&cl, fx->port);
    int64_t t0 = now_ms();
    client_sends(&cl, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    int64_t dt = now_ms() - t0;
    assert_true(dt >= 250 && dt < 2000);
    assert_json_error(&r, 408, "RequestTimeout");
    assert_true(client_eof_within(&cl, 2000));
    client_close(&cl);

    /* Body never completed: 408 after idle_timeout_ms (500) from the headers. */
    client_open(&cl, fx->port);
    t0 = now_ms();
    client_sends(&cl, "PUT /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    assert_int_equal(client_read(&cl, &r), 0);
    dt = now_ms() - t0;
    assert_true(dt >= 450 && dt < 2500);
    assert_json_error(&r, 408, "RequestTimeout");
    assert_true(client_eof_within(&cl, 2000));
    resp_free(&r);
    client_close(&cl);
}

static void test_idle_timeout(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    int64_t t0 = now_ms();
    assert_true(client_eof_within(&cl, 3000)); /* closed without a word */
    int64_t dt = now_ms() - t0;
    assert_true(dt >= 400 && dt < 2500);
    client_close(&cl);

    /* A connection that never sends anything goes after header_timeout_ms. */
    client_open(&cl, fx->port);
    t0 = now_ms();
    assert_true(client_eof_within(&cl, 3000));
    dt = now_ms() - t0;
    assert_true(dt >= 250 && dt < 2000);
    client_close(&cl);
    wait_conns(fx, 0);
    assert_int_equal(atomic_load(&fx->access_count), 1);
    resp_free(&r);
}

static void tweak_max2(http_server_opts_t *o)
{
    o->max_connections = 2;
}

static void test_max_connections(void **state)
{
    fx_t *fx = *state = fx_start(tweak_max2);
    client_t a, b, c;
    resp_t r = {0};
    client_open(&a, fx->port);
    client_open(&b, fx->port);
    client_sends(&a, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&a, &r), 0);
    client_sends(&b, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&b, &r), 0);
    client_open(&c, fx->port);
    client_sends(&c, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&c, &r), 0);
    assert_json_error(&r, 503, "ServiceUnavailable");
    assert_true(client_eof_within(&c, 2000));
    client_close(&c);
    client_close(&a);
    wait_conns(fx, 1);
    client_open(&c, fx->port);
    client_sends(&c, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&c, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_close(&b);
    client_close(&c);
}

static void test_request_id(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    char v1[64], v2[64];
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /echo HTTP/1.1\r\nX-Request-Id: Abc-1.2_3:z\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "x-request-id", "Abc-1.2_3:z");
    assert_header(&r, "x-rid", "Abc-1.2_3:z");

    client_sends(&cl, "GET /echo HTTP/1.1\r\nX-Request-Id: bad id!\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_true(resp_header(&r, "x-request-id", v1, sizeof(v1)));
    assert_true(is_hex16(v1));

    /* 128 characters are accepted, 129 are not. */
    char req[512], id[130];
    memset(id, 'k', 128);
    id[128] = '\0';
    snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", id);
    client_sends(&cl, req);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "x-request-id", id);
    id[128] = 'k';
    id[129] = '\0';
    snprintf(req, sizeof(req), "GET /echo HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", id);
    client_sends(&cl, req);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_true(resp_header(&r, "x-request-id", v2, sizeof(v2)));
    assert_true(is_hex16(v2));
    assert_string_not_equal(v1, v2);

    /* Empty is not sane either. */
    client_sends(&cl, "GET /echo HTTP/1.1\r\nX-Request-Id:\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_true(resp_header(&r, "x-request-id", v2, sizeof(v2)));
    assert_true(is_hex16(v2));
    resp_free(&r);
    client_close(&cl);
}

static void test_http10_and_close(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /hello HTTP/1.0\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_header(&r, "connection", "close");
    assert_true(client_eof_within(&cl, 2000));
    client_close(&cl);

    client_open(&cl, fx->port);
    client_sends(&cl, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "connection", "keep-alive");
    client_sends(&cl, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_header(&r, "connection", "close");
    assert_true(client_eof_within(&cl, 2000));
    client_close(&cl);

    /* HEAD: the length of what GET would send, and no body bytes. */
    client_open(&cl, fx->port);
    client_sends(&cl, "HEAD /hello HTTP/1.1\r\n\r\n");
    resp_init(&r);
    r.head_request = 1;
    assert_int_equal(client_pump(&cl, &r, NULL), 0);
    assert_header(&r, "content-length", "5");
    client_sends(&cl, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_string_equal(r.body, "hello");

    /* A client that shuts down its side after the request still gets it. */
    client_sends(&cl, "GET /async?ms=50 HTTP/1.1\r\n\r\n");
    shutdown(cl.fd, SHUT_WR);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_string_equal(r.body, "async");
    assert_true(client_eof_within(&cl, 2000));
    resp_free(&r);
    client_close(&cl);
}

static void test_big_response(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /big HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    /* Let the server fill the socket before anything is read. */
    usleep(50000);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 3u << 20);
    for (size_t i = 0; i < r.body_len; i += 4099)
        assert_int_equal(r.body[i], (char)('a' + i % 26));
    assert_int_equal(client_read(&cl, &r), 0);
    assert_string_equal(r.body, "hello");
    resp_free(&r);
    client_close(&cl);
}

static void test_sse_stream(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    /* The pipelined request after the stream waits for the stream's end. */
    client_sends(&cl, "GET /sse HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
    resp_init(&r);
    assert_int_equal(client_pump(&cl, &r, "data: one\n\n"), 0);
    assert_int_equal(r.status, 200);
    assert_header(&r, "transfer-encoding", "chunked");
    assert_header(&r, "content-type", "text/event-stream");
    assert_header(&r, "cache-control", "no-cache");
    assert_header(&r, "connection", "keep-alive");
    char v[64];
    assert_false(resp_header(&r, "content-length", v, sizeof(v)));
    on_loop(fx, cmd_sse_write);
    assert_int_equal(client_pump(&cl, &r, "data: two\n\n"), 0);
    assert_false(r.complete);
    on_loop(fx, cmd_sse_end);
    assert_int_equal(client_pump(&cl, &r, NULL), 0);
    assert_true(r.complete);
    assert_string_equal(r.body, "data: one\n\ndata: two\n\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_string_equal(r.body, "hello");
    assert_int_equal(atomic_load(&fx->on_close_count), 0);
    wait_atomic(&fx->access_count, 2);
    resp_free(&r);
    client_close(&cl);
}

static void test_abort(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    client_sends(&cl, "GET /abort HTTP/1.1\r\n\r\n");
    char buf[64];
    struct pollfd p = {.fd = cl.fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);
    errno = 0;
    assert_int_equal(recv(cl.fd, buf, sizeof(buf), 0), -1);
    assert_int_equal(errno, ECONNRESET);
    wait_conns(fx, 0);
    assert_int_equal(atomic_load(&fx->on_close_count), 0);
    assert_int_equal(atomic_load(&fx->access_count), 1);
    resp_free(&r);
    client_close(&cl);
}

static void test_sse_http10(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /sse HTTP/1.0\r\n\r\n");
    resp_init(&r);
    assert_int_equal(client_pump(&cl, &r, "data: one\n\n"), 0);
    char v[64];
    assert_false(resp_header(&r, "transfer-encoding", v, sizeof(v)));
    assert_false(resp_header(&r, "content-length", v, sizeof(v)));
    assert_header(&r, "connection", "close");
    on_loop(fx, cmd_sse_write);
    on_loop(fx, cmd_sse_end);
    assert_int_equal(client_pump(&cl, &r, NULL), 0); /* ends with the connection */
    assert_string_equal(r.body, "data: one\n\ndata: two\n\n");
    assert_int_equal(atomic_load(&fx->on_close_count), 0);
    resp_free(&r);
    client_close(&cl);
}

static void test_sse_peer_close(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /sse HTTP/1.1\r\n\r\n");
    resp_init(&r);
    assert_int_equal(client_pump(&cl, &r, "data: one"), 0);
    client_close(&cl);
    wait_atomic(&fx->on_close_count, 1);
    /* The cut-short stream is still logged. */
    wait_atomic(&fx->access_count, 1);
    wait_conns(fx, 0);
    resp_free(&r);
}

static void test_stream_peer_not_reading(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    client_open(&cl, fx->port);
    int small = 4096;
    setsockopt(cl.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    client_sends(&cl, "GET /flood HTTP/1.1\r\n\r\n");
    wait_atomic(&fx->stream_err_set, 1);
    assert_int_equal(atomic_load(&fx->stream_err), D8_ETOOBIG);
    wait_atomic(&fx->on_close_count, 1);
    wait_conns(fx, 0);
    client_close(&cl);
}

/* A producer that writes only while http_stream_pending is under a bound
 * and waits for http_stream_on_drain otherwise: everything arrives, the
 * drain callback ran, and the queue never held much more than the bound. */
static void test_stream_drain(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /drain HTTP/1.1\r\n\r\n");
    /* Not read at first: 16 MiB is more than the kernel's buffers hold, so
     * the producer meets its bound and waits for the drain. */
    usleep(300 * 1000);
    resp_init(&r);
    int rc = -1;
    for (int64_t end = now_ms() + 30000; rc != 0 && now_ms() < end;)
        rc = client_pump(&cl, &r, NULL);
    if (rc != 0)
        print_message("drain: status %d, %zu bytes, %d drains, max pending %d\n", r.status,
                      r.body_len, atomic_load(&fx->drains), atomic_load(&fx->max_pending));
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 1024u * 16384u);
    assert_true(atomic_load(&fx->drains) > 0);
    assert_true(atomic_load(&fx->max_pending) < DRAIN_BOUND + 16384 + 64);
    assert_int_equal(atomic_load(&fx->on_close_count), 0);
    resp_free(&r);
    client_close(&cl);
    wait_conns(fx, 0);
}

static void test_stop_accepting(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t idle, busy, late;
    resp_t r = {0};
    client_open(&idle, fx->port);
    client_sends(&idle, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&idle, &r), 0);
    client_open(&busy, fx->port);
    client_sends(&busy, "GET /async?ms=200 HTTP/1.1\r\n\r\n");
    wait_conns(fx, 2);
    usleep(30000); /* let the request reach the handler */
    on_loop(fx, cmd_stop_accepting);
    /* The idle one is closed, the busy one answered with Connection: close. */
    assert_true(client_eof_within(&idle, 2000));
    assert_int_equal(client_read(&busy, &r), 0);
    assert_string_equal(r.body, "async");
    assert_header(&r, "connection", "close");
    assert_true(client_eof_within(&busy, 2000));
    /* Nobody listens any more. */
    late.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(late.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(late.fd);
    client_close(&idle);
    client_close(&busy);
    wait_conns(fx, 0);
    resp_free(&r);
}

static void test_free_with_open_connections(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t idle, partial, busy, sse;
    resp_t r = {0};
    client_open(&idle, fx->port);
    client_sends(&idle, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&idle, &r), 0);
    client_open(&partial, fx->port);
    client_sends(&partial, "PUT /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
    client_open(&busy, fx->port);
    client_sends(&busy, "GET /async?ms=5000 HTTP/1.1\r\nX-Pad: 1\r\n\r\n");
    client_open(&sse, fx->port);
    client_sends(&sse, "GET /sse HTTP/1.1\r\n\r\n");
    resp_init(&r);
    assert_int_equal(client_pump(&sse, &r, "data: one"), 0);
    wait_conns(fx, 4);
    usleep(30000);
    int access_before = atomic_load(&fx->access_count);
    fx_finish(fx); /* http_server_free, wait for done, loop fully closed */
    assert_int_equal(atomic_load(&fx->on_close_count), 2);
    assert_int_equal(atomic_load(&fx->access_count), access_before + 1); /* the stream */
    assert_true(client_eof_within(&idle, 2000));
    assert_true(client_eof_within(&partial, 2000));
    assert_true(client_eof_within(&busy, 2000));
    client_close(&idle);
    client_close(&partial);
    client_close(&busy);
    client_close(&sse);
    resp_free(&r);
}

static void tweak_ipv6(http_server_opts_t *o)
{
    o->host = "::1";
}

static void test_bind_errors_and_ipv6(void **state)
{
    uv_loop_t loop;
    http_server_t *srv = (http_server_t *)1;
    http_server_opts_t o = {.host = "not-an-ip", .handler = handler};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_server_new(&loop, &o, &srv), D8_EINVAL);
    assert_null(srv);
    o.host = "127.0.0.1";
    o.handler = NULL;
    assert_int_equal(http_server_new(&loop, &o, &srv), D8_EINVAL);

    /* A port in use fails at once, with nothing to close. */
    o.handler = handler;
    assert_int_equal(http_server_new(&loop, &o, &srv), 0);
    http_server_opts_t o2 = o;
    o2.port = http_server_port(srv);
    http_server_t *srv2 = (http_server_t *)1;
    assert_int_not_equal(http_server_new(&loop, &o2, &srv2), 0);
    assert_null(srv2);
    http_server_free(srv, NULL, NULL);
    http_server_free(NULL, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* IPv6 loopback, when the host has it. */
    int s6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int have6 = s6 >= 0 && bind(s6, (struct sockaddr *)&a6, sizeof(a6)) == 0;
    if (s6 >= 0)
        close(s6);
    if (!have6)
        return;
    fx_t *fx = *state = fx_start(tweak_ipv6);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    a6.sin6_port = htons((uint16_t)fx->port);
    assert_int_equal(connect(fd, (struct sockaddr *)&a6, sizeof(a6)), 0);
    client_t cl;
    memset(&cl, 0, sizeof(cl));
    cl.fd = fd;
    resp_t r = {0};
    client_sends(&cl, "GET /echo HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    char v[128];
    assert_true(resp_header(&r, "x-remote", v, sizeof(v)));
    assert_true(strncmp(v, "[::1]:", 6) == 0);
    resp_free(&r);
    client_close(&cl);
}

static void test_helpers(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(http_pct_decode("a%20b", 5, out, sizeof(out)), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(http_pct_decode("a+b", 3, out, sizeof(out)), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(http_pct_decode("%zz", 3, out, sizeof(out)), -1);
    assert_int_equal(http_pct_decode("%2", 2, out, sizeof(out)), -1);
    assert_int_equal(http_pct_decode("%", 1, out, sizeof(out)), -1);
    assert_int_equal(http_pct_decode("%00", 3, out, sizeof(out)), -1);
    assert_int_equal(http_pct_decode("abcd", 4, out, 4), -1);
    assert_int_equal(http_pct_decode("abc", 3, out, 4), 3);
    assert_int_equal(http_pct_decode("", 0, out, 1), 0);
    assert_string_equal(out, "");

    http_header_t h[] = {{"content-type", "a/b"}, {"x-dup", "1"}, {"x-dup", "2"}};
    http_request_t req = {.query = "a=1&b=x%2Fy&c&d=&e=%41%", .headers = h, .nheaders = 3};
    assert_int_equal(http_query_param(&req, "a", out, sizeof(out)), 1);
    assert_string_equal(out, "1");
    assert_int_equal(http_query_param(&req, "b", out, sizeof(out)), 3);
    assert_string_equal(out, "x/y");
    assert_int_equal(http_query_param(&req, "c", out, sizeof(out)), 0);
    assert_int_equal(http_query_param(&req, "d", out, sizeof(out)), 0);
    assert_int_equal(http_query_param(&req, "e", out, sizeof(out)), -2);
    assert_int_equal(http_query_param(&req, "f", out, sizeof(out)), -1);
    assert_int_equal(http_query_param(&req, "b", out, 3), -2);
    assert_int_equal(http_query_param(&req, "", out, sizeof(out)), -1);

    assert_string_equal(http_request_header(&req, "Content-Type"), "a/b");
    assert_string_equal(http_request_header(&req, "X-DUP"), "1");
    assert_null(http_request_header(&req, "missing"));

    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(499), "Client Error");

    char d[32];
    assert_int_equal(http__format_date(0, d), 29);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT");
    http__format_date(1795780800, d); /* 2026-11-27T12:00:00Z */
    assert_string_equal(d, "Fri, 27 Nov 2026 12:00:00 GMT");
}

/* ------------------------------------------------- strictness, verdicts */

/* Sends req on a fresh connection and expects 400 BadRequest whose message
 * holds `msg`, then the connection's end. */
static void expect_400(fx_t *fx, const char *req, const char *msg)
{
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, req);
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 400, "BadRequest");
    if (!strstr(r.body, msg))
        fail_msg("want \"%s\" in %s (request %s)", msg, r.body, req);
    assert_true(client_eof_within(&cl, 2000));
    resp_free(&r);
    client_close(&cl);
}

/* RFC 9112: a space before the colon (the smuggling classic), a space in a
 * name, characters outside tchar, obs-fold and versions other than
 * 1.0/1.1 are refused; http-parser 2.9 accepts them all by itself. */
static void test_strict_http11(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    expect_400(fx, "PUT /echo HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
               "white space in a header name");
    expect_400(fx, "GET /hello HTTP/1.1\r\nX Test: a\r\n\r\n", "white space in a header name");
    expect_400(fx, "GET /hello HTTP/1.1\r\nX-T\"est: a\r\n\r\n", "character");
    expect_400(fx, "GET /hello HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", "obs-fold");
    expect_400(fx, "GET /hello HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", "obs-fold");
    expect_400(fx, "GET /hello HTTP/1.1\r\nX-A:\r\n b\r\n\r\n", "obs-fold");
    expect_400(fx, "GET /hello HTTP/9.9\r\n\r\n", "only HTTP/1.0 and HTTP/1.1");
    expect_400(fx, "GET /hello HTTP/2.0\r\n\r\n", "only HTTP/1.0 and HTTP/1.1");
    expect_400(fx, "GET /hello HTTP/1.2\r\n\r\n", "only HTTP/1.0 and HTTP/1.1");
    expect_400(fx, "GET /hello HTTP/0.9\r\n\r\n", "only HTTP/1.0 and HTTP/1.1");

    /* What stays accepted: values with inner spaces and tabs, tokens with
     * every tchar punctuation, HTTP/1.0. */
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /echo HTTP/1.1\r\nX-Test:  a b\tc\r\nX-Empty:\r\nX-E2: \r\n"
                      "!#$%&'*+-.^_`|~09az: v\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    assert_header(&r, "x-test", "a b\tc");
    client_sends(&cl, "GET /hello HTTP/1.0\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_close(&cl);
}

/* Sends s one byte per write, a little apart, so that the server parses
 * it in many slices. */
static void send_bytewise(client_t *cl, const char *s)
{
    for (; *s; s++) {
        client_send(cl, s, 1);
        usleep(300);
    }
}

/* The fold check must see through read boundaries (the continuation line
 * may start a slice) without taking a value split across reads for one. */
static void test_obs_fold_split_reads(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    send_bytewise(&cl, "GET /echo HTTP/1.1\r\nX-Test: a b  c\r\nX-B: \r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    if (r.status != 200)
        fail_msg("status %d: %s", r.status, r.body ? r.body : "");
    assert_header(&r, "x-test", "a b  c");
    send_bytewise(&cl, "GET /echo HTTP/1.1\r\nX-Test: a\r\n  b\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 400, "BadRequest");
    assert_non_null(strstr(r.body, "obs-fold"));
    resp_free(&r);
    client_close(&cl);
}

/* on_head answers before the body: no 100 Continue, no body read, the
 * extra header; keep-alive without a body, close with one. */
static void test_head_verdict(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    client_t cl;
    resp_t r = {0};
    client_open(&cl, fx->port);
    client_sends(&cl, "GET /deny HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 401);
    assert_header(&r, "www-authenticate", "Bearer realm=\"t\"");
    assert_header(&r, "connection", "keep-alive");
    assert_string_equal(r.body, "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"no key\"}}");
    client_sends(&cl, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_int_equal(r.status, 200);
    client_close(&cl);

    /* A 64 MiB body announced with Expect: the 401 comes first, then the
     * end of the connection; never 100 Continue. */
    client_open(&cl, fx->port);
    client_sends(&cl, "PUT /deny HTTP/1.1\r\nExpect: 100-continue\r\n"
                      "Content-Length: 67108864\r\n\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 401, "Unauthorized");
    assert_true(client_eof_within(&cl, 3000));
    client_close(&cl);

    /* Chunked, with the first chunk already sent. */
    client_open(&cl, fx->port);
    client_sends(&cl, "POST /deny HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n");
    assert_int_equal(client_read(&cl, &r), 0);
    assert_json_error(&r, 401, "Unauthorized");
    assert_true(client_eof_within(&cl, 3000));
    client_close(&cl);
    wait_atomic(&fx->access_count, 4);
    pthread_mutex_lock(&fx->amu);
    assert_int_equal(fx->last_status, 401);
    assert_string_equal(fx->last_path, "/deny");
    pthread_mutex_unlock(&fx->amu);
    resp_free(&r);
}

/* A client that pipelines requests for 256 KiB answers and does not read:
 * the server stops parsing once max_queued_bytes wait (plus what the
 * kernel buffers), and answers the rest, in order, as the client drains. */
static void test_output_backpressure(void **state)
{
    fx_t *fx = *state = fx_start(NULL);
    enum { N = 200 };
    client_t cl;
    memset(&cl, 0, sizeof(cl));
    cl.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cl.fd >= 0);
    int small = 4096;
    setsockopt(cl.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(cl.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    d8_buf_t req;
    d8_buf_init(&req);
    for (int i = 0; i < N; i++)
        d8_buf_puts(&req, "GET /blob HTTP/1.1\r\n\r\n");
    client_send(&cl, req.data, req.len);
    d8_buf_release(&req);
    usleep(300000);
    int handled = atomic_load(&fx->blob_calls);
    /* Unbounded, all 200 (50 MiB) would be queued by now; bounded: the
     * kernel's socket buffers (4 MiB send at most here) + 256 KiB. */
    if (handled >= 40)
        fail_msg("%d of %d pipelined requests handled while the client read nothing", handled, N);
    assert_true(handled >= 1);
    /* Drain: every answer arrives, complete and in order. */
    size_t want = 0, got = 0;
    for (int i = 0; i < N; i++)
        want += sizeof(blob);
    char buf[65536];
    int64_t deadline = now_ms() + 20000;
    size_t bodies = 0;
    while (bodies < want && now_ms() < deadline) {
        ssize_t n = recv(cl.fd, buf, sizeof(buf), 0);
        assert_true(n > 0);
        got += (size_t)n;
        for (ssize_t i = 0; i < n; i++)
            bodies += buf[i] == 'b';
    }
    assert_int_equal(atomic_load(&fx->blob_calls), N);
    assert_true(bodies >= want);
    (void)got;
    client_close(&cl);
}

static void tweak_per_client2(http_server_opts_t *o)
{
    o->max_connections_per_client = 2;
}

/* Two connections from 127.0.0.1 are served; a third gets 503
 * TooManyConnections and is closed; once one closes, a new one is served. */
static void test_per_client_limit(void **state)
{
    fx_t *fx = *state = fx_start(tweak_per_client2);
    client_t c1, c2, c3;
    resp_t r = {0};
    client_open(&c1, fx->port);
    client_open(&c2, fx->port);
    wait_conns(fx, 2);
    client_open(&c3, fx->port);
    assert_int_equal(client_read(&c3, &r), 0);
    assert_json_error(&r, 503, "TooManyConnections");
    assert_true(client_eof_within(&c3, 3000));
    client_close(&c3);
    client_sends(&c2, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&c2, &r), 0);
    assert_int_equal(r.status, 200);
    client_close(&c1);
    wait_conns(fx, 1);
    client_open(&c3, fx->port);
    client_sends(&c3, "GET /hello HTTP/1.1\r\n\r\n");
    assert_int_equal(client_read(&c3, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    client_close(&c2);
    client_close(&c3);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof(flood_chunk); i++)
        flood_chunk[i] = 'f';
    memset(blob, 'b', sizeof(blob));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_helpers),
        cmocka_unit_test_teardown(test_get_simple, teardown),
        cmocka_unit_test_teardown(test_error_with_headers, teardown),
        cmocka_unit_test_teardown(test_put_echo_and_query, teardown),
        cmocka_unit_test_teardown(test_keepalive_two_requests, teardown),
        cmocka_unit_test_teardown(test_pipelined, teardown),
        cmocka_unit_test_teardown(test_backpressure_pipeline, teardown),
        cmocka_unit_test_teardown(test_chunked_body, teardown),
        cmocka_unit_test_teardown(test_expect_continue, teardown),
        cmocka_unit_test_teardown(test_431_headers_too_large, teardown),
        cmocka_unit_test_teardown(test_413_content_length, teardown),
        cmocka_unit_test_teardown(test_413_chunked, teardown),
        cmocka_unit_test_teardown(test_400_garbage, teardown),
        cmocka_unit_test_teardown(test_408_timeouts, teardown),
        cmocka_unit_test_teardown(test_idle_timeout, teardown),
        cmocka_unit_test_teardown(test_max_connections, teardown),
        cmocka_unit_test_teardown(test_request_id, teardown),
        cmocka_unit_test_teardown(test_http10_and_close, teardown),
        cmocka_unit_test_teardown(test_big_response, teardown),
        cmocka_unit_test_teardown(test_sse_stream, teardown),
        cmocka_unit_test_teardown(test_sse_http10, teardown),
        cmocka_unit_test_teardown(test_abort, teardown),
        cmocka_unit_test_teardown(test_sse_peer_close, teardown),
        cmocka_unit_test_teardown(test_stream_peer_not_reading, teardown),
        cmocka_unit_test_teardown(test_stream_drain, teardown),
        cmocka_unit_test_teardown(test_stop_accepting, teardown),
        cmocka_unit_test_teardown(test_free_with_open_connections, teardown),
        cmocka_unit_test_teardown(test_bind_errors_and_ipv6, teardown),
        cmocka_unit_test_teardown(test_strict_http11, teardown),
        cmocka_unit_test_teardown(test_obs_fold_split_reads, teardown),
        cmocka_unit_test_teardown(test_head_verdict, teardown),
        cmocka_unit_test_teardown(test_output_backpressure, teardown),
        cmocka_unit_test_teardown(test_per_client_limit, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
