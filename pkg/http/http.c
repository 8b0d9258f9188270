/*
 * pkg/http: the server, its connections and the answers. This file holds
 * the connections: reading, parsing, timers, writing and closing. The
 * answers are in http_response.c, listening and accepting in
 * http_server.c.
 *
 * A connection parses one request at a time. http-parser is paused in
 * on_message_complete, so http_parser_execute returns exactly at the end
 * of the request; the bytes after it (pipelined requests) stay in the
 * connection's read buffer until the answer is queued, then parsing
 * resumes (the parser's callbacks are in http_parse.c). While a request is handled the socket keeps
 * being read until HTTP__RBUF_BOUND bytes wait unparsed, then reading stops. After an answer,
 * parsing goes on only while the answer bytes the socket has not taken stay within
 * max_queued_bytes: a client that pipelines requests and does not read the answers is neither read
 * nor parsed until it drains them (on_write resumes it), so its memory stays bounded.
 *
 * Each connection owns one uv_tcp_t and one uv_timer_t. The timer is
 * lazy: arming a deadline only writes a field unless the deadline is
 * earlier than the one the timer already waits for, so the common
 * request/answer cycle does no timer-heap work.
 *
 * Memory of a connection is released only in the close callback of its
 * last handle; the server's memory only once every handle is closed.
 */
#include "http_int.h"
#include "http_tls_int.h"

#include "base/base.h"
#include "log/log.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RBUF_INIT 16384u
#define RBUF_MIN_FREE 4096u

static const char *const state_names[] = {"idle",   "head",   "body",   "handling",
                                          "stream", "linger", "closing"};

/* Every change of a connection's state goes through here (STYLE 8). */
void http__conn_state(http__conn_t *c, http__conn_state_t to)
{
    if (c->state == to)
        return;
    LOG(LOG_DEBUG, "http connection state", LF_S("remote", c->remote),
        LF_S("from", state_names[c->state]), LF_S("to", state_names[to]));
    c->state = to;
}

static void conn_process(http__conn_t *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ------------------------------------------------------------ request ids */

/* splitmix64's finaliser: a bijection, so distinct inputs give distinct ids. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

void http__rid_generate(http_server_t *srv, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t x = mix64(srv->rid_key + srv->rid_ctr++);
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[x & 15];
        x >>= 4;
    }
    out[16] = '\0';
}

/* ------------------------------------------------------------------ timer */

static void on_timer(uv_timer_t *t);

void http__conn_set_deadline(http__conn_t *c, uint64_t ms)
{
    uint64_t now = uv_now(c->srv->loop);
    c->deadline = now + ms;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->timer_due > c->deadline) {
        uv_timer_start(&c->timer, on_timer, ms, 0);
        c->timer_due = c->deadline;
    }
}

static void conn_clear_deadline(http__conn_t *c)
{
    c->deadline = 0;
}

/* Acts on a passed deadline by state: an idle keep-alive connection
 * closes silently, a request that stalled gets a 408, a lingering close
 * stops draining. */
static void conn_timeout(http__conn_t *c)
{
    switch (c->state) {
    case HTTP__C_IDLE:
        /* Nothing of a request arrived: close without a word, as a
         * keep-alive peer expects. */
        LOG(LOG_DEBUG, "http idle timeout", LF_S("remote", c->remote));
        http__conn_close(c);
        break;
    case HTTP__C_HEAD:
    case HTTP__C_BODY:
        http__conn_send_error(c, 408, "RequestTimeout",
                              c->state == HTTP__C_HEAD
                                  ? "the request headers did not arrive in time"
                                  : "the request body did not arrive in time");
        break;
    case HTTP__C_LINGER:
        http__conn_close(c);
        break;
    default:
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    http__conn_t *c = t->data;
    if (c->deadline == 0 || c->state == HTTP__C_CLOSING)
        return;
    uint64_t now = uv_now(c->srv->loop);
    if (now < c->deadline) {
        uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
        c->timer_due = c->deadline;
        return;
    }
    c->deadline = 0;
    conn_timeout(c);
}

/* ------------------------------------------------------------------ close */

static void conn_release(http__conn_t *c)
{
    d8_list_del(&c->link);
    c->srv->nconns--;
    if (c->deferred)
        d8_list_del(&c->ready_link);
    if (c->rejected)
        c->srv->nrejected--;
    http__peer_release(c);
    free(c->rbuf);
    d8_buf_release(&c->strs);
    d8_buf_release(&c->body);
    d8_buf_release(&c->out);
    http__tls_conn_free(c); /* TLS hook */
    free(c->hoff);
    free(c->hv);
    free(c);
}

/* uv_close callback of the connection's handles: the last one to close
 * ends an open exchange (access log, owner's close callback) and frees the
 * connection. */
static void on_conn_closed(uv_handle_t *h)
{
    http__conn_t *c = h->data;
    if (--c->closes_pending)
        return;
    http_server_t *srv = c->srv;
    if (c->ex_open) {
        /* The exchange ends with its connection: a stream that was cut
         * short still reaches the access log; then the owner hears. */
        void (*cb)(void *) = c->ex.on_close;
        void *ud = c->ex.on_close_ud;
        c->ex_open = 0;
        c->ex.on_close = NULL;
        if (c->stream_started && srv->o.access)
            srv->o.access(srv->o.ud, c->req.method, c->req.path, c->ex.status,
                          d8_mono_ns() - c->req.start_ns, c->req.request_id);
        if (cb)
            cb(ud);
    }
    conn_release(c);
    http__srv_maybe_done(srv);
}

/* Closes both handles; with reset, the peer gets a TCP RST instead of a
 * FIN (not possible while a shutdown is pending). */
void http__conn_close_ex(http__conn_t *c, int reset)
{
    if (c->state == HTTP__C_CLOSING)
        return;
    int can_reset = reset && c->state != HTTP__C_LINGER;
    http__conn_state(c, HTTP__C_CLOSING);
    c->deadline = 0;
    c->closes_pending = 2;
    if (!can_reset || uv_tcp_close_reset(&c->tcp, on_conn_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

void http__conn_close(http__conn_t *c)
{
    http__conn_close_ex(c, 0);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http__conn_t *c = req->data;
    if (c->state == HTTP__C_CLOSING)
        return;
    c->shut_done = 1;
    if (status < 0 || c->peer_eof)
        http__conn_close(c);
    /* else: keep draining input until the peer closes or the linger
     * deadline passes. */
}

/*
 * Ends a connection politely: queued answers are flushed, the write side
 * is shut down, and input is drained for a while so that the peer reads
 * the last answer rather than a reset.
 */
void http__conn_end_graceful(http__conn_t *c)
{
    if (c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
        return;
    if (c->tls) /* TLS hook: close_notify goes before the FIN */
        http__tls_close_notify(c);
    if (c->state == HTTP__C_CLOSING)
        return;
    http__conn_state(c, HTTP__C_LINGER);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        http__conn_close(c);
        return;
    }
    http__conn_set_deadline(c, c->srv->linger_ms);
    http__conn_update_reading(c);
}

/* ------------------------------------------------------------------ write */

typedef struct wreq {
    uv_write_t req;
    http__conn_t *conn;
    char data[];
} wreq_t;

size_t http__conn_queued(const http__conn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* 1 when more answer bytes wait for the socket than the server allows. */
static int conn_output_full(const http__conn_t *c)
{
    return http__conn_queued(c) > c->srv->o.max_queued_bytes;
}

/* A queued write finished: frees it; closes on a write error (the peer is
 * gone); keeps the idle deadline fresh while answers drain; resumes a
 * connection held by backpressure once its queue is within bounds. */
static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    http__conn_t *c = w->conn;
    free(w);
    c->nwrites--;
    if (c->state == HTTP__C_CLOSING)
        return;
    if (status < 0) {
        /* The peer is gone: what is still queued is freed with the handle. */
        http__conn_close(c);
        return;
    }
    if (c->state == HTTP__C_IDLE)
        /* Answers still drain: the idle deadline counts from the last
         * progress, so only a peer that stopped reading is cut. */
        http__conn_set_deadline(c, c->srv->o.idle_timeout_ms);
    if (c->wblocked && !conn_output_full(c)) {
        /* The peer drained its answers: parse the requests it sent. */
        c->wblocked = 0;
        conn_process(c);
    }
    if (c->nwrites == 0)
        http__stream_drained(c);
}

/* Queues bufs (borrowed): encrypted first on a TLS connection. */
int http__conn_write(http__conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->tls) /* TLS hook: http_tls.c encrypts, then writes raw */
        return http__tls_write(c, bufs, n);
    return http__conn_write_raw(c, bufs, n);
}

/*
 * Queues bufs (borrowed) in order after everything queued before, as they
 * are. Tries a direct write first; whatever the kernel does not take now
 * is copied. Returns 0, or D8_EGONE when the connection is (now) closing.
 */
int http__conn_write_raw(http__conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->state == HTTP__C_CLOSING)
        return D8_EGONE;
    size_t total = 0, skip = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (total == 0)
        return 0;
    c->turn_bytes += total;
    if (c->nwrites == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (r >= 0) {
            skip = (size_t)r;
            if (skip == total)
                return 0;
        } else if (r != UV_EAGAIN) {
            http__conn_close(c);
            return D8_EGONE;
        }
    }
    wreq_t *w = d8_xmalloc(sizeof(*w) + total - skip);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = bufs[i].len;
        const char *base = bufs[i].base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(w->data + off, base + skip, len - skip);
        off += len - skip;
        skip = 0;
    }
    w->conn = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)off);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(w);
        http__conn_close(c);
        return D8_EGONE;
    }
    c->nwrites++;
    return 0;
}

/* -------------------------------------------------------- after an answer */

/* After an answer was queued: next request, or the end of the connection. */
void http__conn_after_answer(http__conn_t *c, int keep)
{
    if (c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
        return;
    if (!keep || c->srv->stopping) {
        http__conn_end_graceful(c);
        return;
    }
    http__conn_state(c, HTTP__C_IDLE);
    http__request_reset(c);
    http__conn_set_deadline(c, c->srv->o.idle_timeout_ms);
    if (conn_output_full(c)) {
        /* Backpressure: no further request is parsed (and the socket is
         * not read) until on_write finds the queue drained; a peer that
         * never drains is closed by the idle deadline. */
        c->wblocked = 1;
        if (!c->in_parse)
            http__conn_update_reading(c);
        return;
    }
    if (!c->in_parse)
        conn_process(c);
}

/* Hands a complete request to the handler, or answers on_head's verdict
 * through the same exchange (access log, keep-alive rules). */
static void conn_dispatch(http__conn_t *c)
{
    http_server_t *srv = c->srv;
    c->req.body = c->body.data ? c->body.data : "";
    c->req.body_len = c->body.len;
    http__conn_state(c, HTTP__C_HANDLING);
    conn_clear_deadline(c);
    c->ex.conn = c;
    c->ex.on_close = NULL;
    c->ex.on_close_ud = NULL;
    c->ex.status = 0;
    c->ex_open = 1;
    LOG(LOG_DEBUG, "http request", LF_S("method", c->req.method), LF_S("path", c->req.path),
        LF_S("request_id", c->rid), LF_S("remote", c->remote));
    const http_head_verdict_t *v = &c->verdict;
    if (v->status) {
        http_header_t h = {v->header_name, v->header_value};
        http_respond_error_h(&c->ex, v->status, &h, v->header_name ? 1 : 0, v->code,
                             v->message[0] ? v->message : NULL, v->field[0] ? v->field : NULL);
        return;
    }
    srv->o.handler(srv->o.ud, &c->ex, &c->req);
}

/* Answers a request the parser refused: 431 or 413 when a limit caused it,
 * else 400 with the parser's reason; the connection then closes. */
static void conn_parse_error(http__conn_t *c, enum http_errno e)
{
    int status = c->err_status;
    if (!status)
        status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
    switch (status) {
    case 431:
        http__conn_send_error(c, 431, "RequestHeaderFieldsTooLarge",
                              "the request header block is too large");
        break;
    case 413:
        http__conn_send_error(c, 413, "PayloadTooLarge", "the request body is too large");
        break;
    default: {
        char msg[160];
        if (c->err_msg)
            snprintf(msg, sizeof(msg), "%s", c->err_msg);
        else
            snprintf(msg, sizeof(msg), "malformed request: %s", http_errno_description(e));
        http__conn_send_error(c, 400, "BadRequest", msg);
        break;
    }
    }
}

/* Starts or stops reading the socket: reading stops while too much input
 * waits for the handler (backpressure) and after the peer's EOF. */
void http__conn_update_reading(http__conn_t *c)
{
    int want;
    switch (c->state) {
    case HTTP__C_CLOSING:
        return;
    case HTTP__C_LINGER:
        want = !c->peer_eof;
        break;
    default:
        want = !c->peer_eof && !c->wblocked && c->rlen - c->rstart < HTTP__RBUF_BOUND;
        break;
    }
    if (want == (int)c->reading)
        return;
    if (want) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            http__conn_close(c);
            return;
        }
        c->reading = 1;
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* c served its HTTP__BURST requests: the rest of its input waits for the
 * next loop iteration (http__srv_run_ready). */
static void conn_defer(http__conn_t *c)
{
    http_server_t *srv = c->srv;
    c->deferred = 1;
    if (d8_list_empty(&srv->ready))
        uv_idle_start(&srv->anchor, http__srv_run_ready);
    d8_list_push(&srv->ready, &c->ready_link);
}

void http__srv_run_ready(uv_idle_t *anchor)
{
    http_server_t *srv = anchor->data;
    /* Those deferred again while this runs wait for the next turn. */
    d8_list_t batch;
    d8_list_init(&batch);
    while (!d8_list_empty(&srv->ready)) {
        d8_list_t *it = srv->ready.next;
        d8_list_del(it);
        d8_list_push(&batch, it);
    }
    while (!d8_list_empty(&batch)) {
        http__conn_t *c = d8_container_of(batch.next, http__conn_t, ready_link);
        d8_list_del(&c->ready_link);
        c->deferred = 0;
        if (c->state != HTTP__C_CLOSING)
            conn_process(c);
    }
    if (d8_list_empty(&srv->ready))
        uv_idle_stop(&srv->anchor);
}

/*
 * Parses buffered input while the connection may take a request, and
 * hands each complete request to the handler. Re-entered from
 * http_respond only when no parse is in progress.
 */
static void conn_process(http__conn_t *c)
{
    if (c->in_parse)
        return;
    if (c->deferred) {
        /* Waits for its turn; input stops at HTTP__RBUF_BOUND meanwhile. */
        http__conn_update_reading(c);
        return;
    }
    unsigned served = 0;
    c->turn_bytes = 0;
    c->in_parse = 1;
    while ((c->state == HTTP__C_IDLE || c->state == HTTP__C_HEAD || c->state == HTTP__C_BODY) &&
           !c->wblocked && !c->deferred && c->rstart < c->rlen) {
        size_t avail = c->rlen - c->rstart;
        const char *from = c->rbuf + c->rstart;
        c->exec_start = from;
        size_t n = http_parser_execute(&c->parser, &http__parser_settings, from, avail);
        http__fold_carry_update(c, from, from + n);
        c->rstart += n;
        if (c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
            break;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
            if ((++served >= HTTP__BURST || c->turn_bytes >= HTTP__BURST_BYTES) &&
                c->rstart < c->rlen) {
                conn_defer(c);
                break;
            }
            continue;
        }
        if (e == HPE_CB_headers_complete && c->verdict.status && !c->err_status) {
            /* on_head answered a request that announced a body: answer
             * without reading it; the connection then ends. */
            conn_dispatch(c);
            break;
        }
        if (e != HPE_OK) {
            conn_parse_error(c, e);
            break;
        }
        if (n < avail) {
            conn_parse_error(c, HPE_UNKNOWN);
            break;
        }
    }
    if (c->rstart == c->rlen)
        c->rstart = c->rlen = 0;
    c->in_parse = 0;
    if (c->peer_eof && !c->wblocked && !c->deferred &&
        (c->state == HTTP__C_IDLE || c->state == HTTP__C_HEAD || c->state == HTTP__C_BODY)) {
        /* The peer sent everything it will send and no request is complete. */
        http__conn_end_graceful(c);
        return;
    }
    http__conn_update_reading(c);
}

/* ------------------------------------------------------------------ read */

/* Hands libuv the free tail of the read buffer, compacting or growing it
 * first; input of a closing connection goes to a shared discard buffer. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http__conn_t *c = h->data;
    (void)suggested;
    if (c->state == HTTP__C_LINGER || c->state == HTTP__C_CLOSING || c->tls) {
        /* TLS hook: ciphertext lands here and is decrypted into rbuf at
         * once by http__tls_read. */
        *buf = uv_buf_init(c->srv->discard, sizeof(c->srv->discard));
        return;
    }
    if (!c->rbuf) {
        c->rbuf = d8_xmalloc(RBUF_INIT);
        c->rcap = RBUF_INIT;
    }
    if (c->rcap - c->rlen < RBUF_MIN_FREE && c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rlen - c->rstart);
        c->rlen -= c->rstart;
        c->rstart = 0;
    }
    if (c->rcap - c->rlen < RBUF_MIN_FREE) {
        c->rcap *= 2;
        c->rbuf = d8_xrealloc(c->rbuf, c->rcap);
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

/* Feeds new input to the parser. EOF from a peer that may only have shut
 * down its side still lets the request in hand be answered. */
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    http__conn_t *c = s->data;
    (void)buf;
    if (c->state == HTTP__C_CLOSING || nread == 0)
        return;
    if (c->state == HTTP__C_LINGER) {
        if (nread < 0) {
            c->peer_eof = 1;
            if (nread != UV_EOF || c->shut_done)
                http__conn_close(c);
            else
                http__conn_update_reading(c);
        }
        return;
    }
    if (c->tls && nread > 0) { /* TLS hook: ciphertext in, plaintext to rbuf[rlen..] */
        nread = http__tls_read(c, buf->base, (size_t)nread);
        if (nread == 0 || c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
            return;
    }
    if (nread < 0) {
        if (nread != UV_EOF || c->state == HTTP__C_STREAM) {
            /* A reset, or a watcher that went away. */
            http__conn_close(c);
            return;
        }
        c->peer_eof = 1;
        if (c->state == HTTP__C_HANDLING) {
            /* The peer may only have shut down its side: answer, then close. */
            http__conn_update_reading(c);
            return;
        }
        conn_process(c);
        return;
    }
    c->rlen += (size_t)nread;
    conn_process(c);
}
