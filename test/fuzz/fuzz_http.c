/*
 * libFuzzer target for pkg/http: the input is what a client sends on one
 * connection. A fresh server adopts one end of a socketpair (the same read
 * path as an accepted socket); the input is written in pieces, the loop is
 * run without blocking in between, answers are drained, and the run ends
 * when every handle is closed. Some inputs free the server while the
 * connection is still open, to exercise teardown with exchanges in flight.
 *
 * The handler uses most of the public API: plain and error answers,
 * asynchronous answers from a timer, streams, query and header lookups.
 */
#include "base/base.h"
#include "http/http.h"
#include "http/http_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
    uv_loop_t loop;
    uv_timer_t timer;
    http_exchange_t *pending;
    int done;
    int client;
} fuzz_state_t;

static fuzz_state_t st;

static void on_pending_closed(void *ud)
{
    fuzz_state_t *s = ud;
    s->pending = NULL;
    uv_timer_stop(&s->timer);
}

static void on_timer(uv_timer_t *t)
{
    fuzz_state_t *s = t->data;
    http_exchange_t *ex = s->pending;
    s->pending = NULL;
    if (ex) {
        const http_request_t *req = http_exchange_request(ex);
        http_respond(ex, 202, NULL, 0, "text/plain", req->body, req->body_len);
    }
}

static void on_stream_closed(void *ud)
{
    (void)ud;
}

/* Small limits; /d... is refused at headers-complete, so that the fuzzer
 * reaches the early-answer path too. */
static void on_head(void *ud, const http_request_t *req, http_head_verdict_t *v)
{
    (void)ud;
    v->body_limit = (req->method[0] == 'P' && req->path[1] == 's') ? 16 : 4096;
    if (req->path[1] == 'd') {
        v->status = 401;
        v->code = "Unauthorized";
        v->header_name = "WWW-Authenticate";
        snprintf(v->header_value, sizeof(v->header_value), "Bearer");
    }
}

static void handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    fuzz_state_t *s = ud;
    char v[64];
    char c = req->path[0] ? req->path[1] : '\0';
    switch (c) {
    case 'a':
        if (s->pending) {
            http_respond_error(ex, 409, "Busy", "one at a time", NULL);
            break;
        }
        s->pending = ex;
        http_exchange_on_close(ex, on_pending_closed, s);
        uv_timer_start(&s->timer, on_timer, 0, 0);
        break;
    case 'x':
        http_exchange_abort(ex);
        break;
    case 'e':
        http_respond_error(ex, 400, "InvalidSpec", req->target, req->query);
        break;
    case 'q': {
        int n = 0;
        n += http_query_param(req, "a", v, sizeof(v));
        n += http_query_param(req, "b", v, 4);
        n += http_pct_decode(req->path, strlen(req->path), v, sizeof(v));
        snprintf(v, sizeof(v), "%d", n);
        http_header_t h[] = {{"X-N", v}, {"X-Q", req->query}};
        http_respond(ex, 200, h, 2, NULL, req->query, strlen(req->query));
        break;
    }
    case 's': {
        http_header_t h[] = {{"Cache-Control", "no-cache"}};
        if (http_stream_start(ex, 200, h, 1, "text/event-stream") != 0)
            break; /* closing: the close callback (none here) follows */
        http_exchange_on_close(ex, on_stream_closed, s);
        for (size_t off = 0; off < req->body_len; off += 7) {
            size_t n = req->body_len - off < 7 ? req->body_len - off : 7;
            if (http_stream_write(ex, req->body + off, n) != 0)
                return;
        }
        /* "/sx" leaves the stream open: it ends with the connection. */
        if (req->path[2] != 'x')
            http_stream_end(ex);
        break;
    }
    case 't': {
        int status = 100 + (int)(req->body_len % 450);
        http_respond(ex, status, NULL, 0, NULL, req->body, req->body_len);
        break;
    }
    default: {
        const char *ct = http_request_header(req, "content-type");
        const char *host = http_request_header(req, "host");
        http_header_t h[] = {{"X-Host", host ? host : ""},
                             {"X-Method", req->method},
                             {"X-Rid", req->request_id},
                             {host ? host : "X-Empty", ct ? ct : ""}};
        http_respond(ex, 200, h, 4, ct, req->body, req->body_len);
        break;
    }
    }
}

static void on_free_done(void *arg)
{
    fuzz_state_t *s = arg;
    s->done = 1;
}

static void drain_client(fuzz_state_t *s)
{
    char buf[16384];
    while (s->client >= 0) {
        ssize_t n = recv(s->client, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            break;
    }
}

static void pump(fuzz_state_t *s, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        drain_client(s);
    }
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
    uv_timer_init(&st.loop, &st.timer);
    st.timer.data = &st;
    st.client = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_state_t *s = &st;
    unsigned sum = 0;
    for (size_t i = 0; i < size; i++)
        sum = sum * 31 + data[i];
    size_t piece = 1 + sum % 97;
    int free_early = sum % 5 == 0;

    http_server_opts_t o = {
        .host = "127.0.0.1",
        .port = 0,
        .max_header_bytes = 1024,
        .max_connections = 4,
        .header_timeout_ms = 5000,
        .idle_timeout_ms = 5000,
        .on_head = on_head,
        .handler = handler,
        .ud = s,
    };
    http_server_t *srv = NULL;
    if (http_server_new(&s->loop, &o, &srv) != 0)
        abort();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    s->client = sv[0];
    s->done = 0;
    if (http__server_adopt(srv, sv[1]) != 0)
        abort();

    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
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

    if (!free_early) {
        shutdown(s->client, SHUT_WR);
        for (int i = 0; i < 100000 && http_server_connections(srv) > 0; i++)
            pump(s, 1);
        if (http_server_connections(srv) > 0) {
            fprintf(stderr, "fuzz_http: connection did not end after EOF\n");
            abort();
        }
    }
    http_server_free(srv, on_free_done, s);
    for (int i = 0; i < 100000 && !s->done; i++)
        pump(s, 1);
    if (!s->done || s->pending) {
        fprintf(stderr, "fuzz_http: server did not finish closing\n");
        abort();
    }
    close(s->client);
    s->client = -1;
    return 0;
}
