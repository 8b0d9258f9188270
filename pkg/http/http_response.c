/*
 * pkg/http answers: the head every answer starts with, the server's own
 * error answers, and the public answer calls (http_respond, the streams,
 * the exchange accessors). Writing goes through http__conn_write; what
 * follows an answer is http__conn_after_answer's (http.c).
 */
#include "http_int.h"

#include "log/log.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---------------------------------------------------------------- helpers */

static void put(d8_buf_t *b, const char *s, size_t n)
{
    d8_buf_append(b, s, n);
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

/* Appends the error body of every JSON error answer, the server's own and
 * the handlers', so that they share one shape:
 * {"error":{"code","message","field"?}}. field may be NULL. */
static void put_error_body(d8_buf_t *b, const char *code, const char *message, const char *field)
{
    PUT_LIT(b, "{\"error\":{\"code\":");
    d8_buf_json_str(b, code);
    PUT_LIT(b, ",\"message\":");
    d8_buf_json_str(b, message);
    if (field) {
        PUT_LIT(b, ",\"field\":");
        d8_buf_json_str(b, field);
    }
    PUT_LIT(b, "}}");
}

static void put_u64(d8_buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, tmp + i, sizeof(tmp) - i);
}

static const char *srv_date_line(http_server_t *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec || srv->date_len == 0) {
        char d[32];
        size_t n = http__format_date((int64_t)now, d);
        memcpy(srv->date_line, "Date: ", 6);
        memcpy(srv->date_line + 6, d, n);
        memcpy(srv->date_line + 6 + n, "\r\n", 3);
        srv->date_len = 6 + n + 2;
        srv->date_sec = now;
    }
    return srv->date_line;
}

/* ------------------------------------------------------------ answer head */

/* Headers the server writes itself; a caller's copies are ignored. */
static int header_reserved(const char *name)
{
    return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
           strcasecmp(name, "connection") == 0 || strcasecmp(name, "date") == 0 ||
           strcasecmp(name, "x-request-id") == 0;
}

/* A header is written only when neither part could split the head. */
static int header_safe(const http_header_t *h)
{
    if (!h->name || !h->value || !h->name[0])
        return 0;
    for (const char *s = h->name; *s; s++)
        if (*s == '\r' || *s == '\n' || *s == ':' || *s == ' ')
            return 0;
    for (const char *s = h->value; *s; s++)
        if (*s == '\r' || *s == '\n')
            return 0;
    return 1;
}

static int status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/*
 * Builds the answer's head in c->out. body_len is ignored when chunked;
 * raw means the body runs until the connection closes (HTTP/1.0 stream).
 */
static void build_head(http__conn_t *c, int status, const http_header_t *headers, size_t nheaders,
                       const char *content_type, size_t body_len, int keep, int chunked, int raw)
{
    d8_buf_t *b = &c->out;
    d8_buf_reset(b);
    d8_buf_reserve(b, 256);
    PUT_LIT(b, "HTTP/1.1 ");
    put_u64(b, (uint64_t)status);
    d8_buf_putc(b, ' ');
    d8_buf_puts(b, http_status_text(status));
    PUT_LIT(b, "\r\n");
    srv_date_line(c->srv);
    put(b, c->srv->date_line, c->srv->date_len);
    if (status_has_body(status)) {
        if (chunked) {
            PUT_LIT(b, "Transfer-Encoding: chunked\r\n");
        } else if (!raw) {
            PUT_LIT(b, "Content-Length: ");
            put_u64(b, body_len);
            PUT_LIT(b, "\r\n");
        }
        if (content_type || body_len || chunked || raw) {
            PUT_LIT(b, "Content-Type: ");
            d8_buf_puts(b, content_type ? content_type : "application/octet-stream");
            PUT_LIT(b, "\r\n");
        }
    }
    if (keep)
        PUT_LIT(b, "Connection: keep-alive\r\n");
    else
        PUT_LIT(b, "Connection: close\r\n");
    PUT_LIT(b, "X-Request-Id: ");
    d8_buf_puts(b, c->rid);
    PUT_LIT(b, "\r\n");
    for (size_t i = 0; i < nheaders; i++) {
        if (!header_safe(&headers[i]) || header_reserved(headers[i].name))
            continue;
        d8_buf_puts(b, headers[i].name);
        PUT_LIT(b, ": ");
        d8_buf_puts(b, headers[i].value);
        PUT_LIT(b, "\r\n");
    }
    PUT_LIT(b, "\r\n");
}

static int conn_keep_alive(const http__conn_t *c)
{
    /* A peer that shut down its side and has nothing more buffered will
     * send no further request. */
    return c->keep_alive && !c->upgrade && !c->srv->stopping &&
           !(c->peer_eof && c->rstart == c->rlen);
}

static void call_access(http__conn_t *c, int status)
{
    http_server_t *srv = c->srv;
    if (srv->o.access)
        srv->o.access(srv->o.ud, c->req.method, c->req.path, status, d8_mono_ns() - c->req.start_ns,
                      c->req.request_id);
}

/* The exchange is complete: forget its close callback, log it. */
static void exchange_complete(http__conn_t *c, int status)
{
    c->ex_open = 0;
    c->ex.on_close = NULL;
    call_access(c, status);
}

/*
 * An answer the server produces by itself: JSON error body, Connection:
 * close, access callback, then a graceful end of the connection.
 */
void http__conn_send_error(http__conn_t *c, int status, const char *code, const char *message)
{
    if (c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
        return;
    if (!c->headers_done) {
        /* Nothing trustworthy of the request is known. */
        http__rid_generate(c->srv, c->rid);
        c->req.method = "";
        c->req.path = "";
        c->req.request_id = c->rid;
        if (!c->req.start_ns)
            c->req.start_ns = d8_mono_ns();
    }
    d8_buf_t body;
    d8_buf_init(&body);
    put_error_body(&body, code, message, NULL);
    build_head(c, status, NULL, 0, "application/json", body.len, 0, 0, 0);
    uv_buf_t bufs[2] = {uv_buf_init(c->out.data, (unsigned)c->out.len),
                        uv_buf_init(body.data, (unsigned)body.len)};
    http__conn_write(c, bufs, c->is_head && c->headers_done ? 1 : 2);
    d8_buf_release(&body);
    LOG(LOG_DEBUG, "http error answer", LF_I("status", status), LF_S("remote", c->remote),
        LF_S("request_id", c->rid));
    call_access(c, status);
    http__conn_end_graceful(c);
}

/* ------------------------------------------------------------ public: answers */

void http_respond(http_exchange_t *ex, int status, const http_header_t *headers, size_t nheaders,
                  const char *content_type, const char *body, size_t body_len)
{
    if (!ex)
        return;
    http__conn_t *c = ex->conn;
    if (!c->ex_open || c->state == HTTP__C_STREAM)
        return;
    if (status < 100 || status > 999)
        status = 500;
    ex->status = status;
    if (c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER) {
        exchange_complete(c, status);
        return;
    }
    int keep = conn_keep_alive(c);
    if (!body)
        body_len = 0;
    int send_body = status_has_body(status) && !c->is_head && body_len > 0;
    build_head(c, status, headers, nheaders, content_type, body_len, keep, 0, 0);
    uv_buf_t bufs[2] = {uv_buf_init(c->out.data, (unsigned)c->out.len),
                        uv_buf_init((char *)(uintptr_t)body, (unsigned)body_len)};
    if (body_len > UINT32_MAX) {
        /* uv_buf_t lengths are unsigned int on some platforms; such bodies
         * are not produced here, and refusing is better than truncating. */
        status = 500;
        build_head(c, status, NULL, 0, NULL, 0, 0, 0, 0);
        bufs[0] = uv_buf_init(c->out.data, (unsigned)c->out.len);
        send_body = 0;
        keep = 0;
    }
    http__conn_write(c, bufs, send_body ? 2 : 1);
    exchange_complete(c, status);
    http__conn_after_answer(c, keep);
}

void http_respond_error(http_exchange_t *ex, int status, const char *code, const char *message,
                        const char *field)
{
    http_respond_error_h(ex, status, NULL, 0, code, message, field);
}

void http_respond_error_h(http_exchange_t *ex, int status, const http_header_t *headers,
                          size_t nheaders, const char *code, const char *message, const char *field)
{
    d8_buf_t b;
    d8_buf_init(&b);
    put_error_body(&b, code ? code : "Error", message ? message : http_status_text(status), field);
    http_respond(ex, status, headers, nheaders, "application/json", b.data, b.len);
    d8_buf_release(&b);
}

int http_stream_start(http_exchange_t *ex, int status, const http_header_t *headers,
                      size_t nheaders, const char *content_type)
{
    if (!ex)
        return D8_EINVAL;
    http__conn_t *c = ex->conn;
    if (!c->ex_open)
        return D8_EGONE;
    if (c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
        return D8_EGONE;
    if (c->state != HTTP__C_HANDLING || status < 200 || status > 999 || !status_has_body(status))
        return D8_EINVAL;
    /* HTTP/1.0 has no chunked framing: the body runs until close. */
    c->stream_raw = c->parser.http_major == 1 && c->parser.http_minor == 0;
    c->stream_keep = c->stream_raw ? 0 : conn_keep_alive(c);
    ex->status = status;
    build_head(c, status, headers, nheaders, content_type, 0, c->stream_keep, !c->stream_raw,
               c->stream_raw);
    http__conn_state(c, HTTP__C_STREAM);
    c->stream_started = 1;
    ex->on_drain = NULL;
    ex->on_drain_ud = NULL;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    if (http__conn_write(c, &b, 1) != 0)
        return D8_EGONE;
    return 0;
}

int http_stream_write(http_exchange_t *ex, const char *data, size_t len)
{
    if (!ex)
        return D8_EINVAL;
    http__conn_t *c = ex->conn;
    if (!c->ex_open || c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
        return D8_EGONE;
    if (c->state != HTTP__C_STREAM)
        return D8_EINVAL;
    if (len == 0 || c->is_head)
        return 0;
    if (len > UINT32_MAX)
        return D8_ETOOBIG;
    char hdr[24];
    int hn = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
    uv_buf_t bufs[3] = {uv_buf_init(hdr, (unsigned)hn),
                        uv_buf_init((char *)(uintptr_t)data, (unsigned)len),
                        uv_buf_init((char *)(uintptr_t) "\r\n", 2)};
    int r = c->stream_raw ? http__conn_write(c, bufs + 1, 1) : http__conn_write(c, bufs, 3);
    if (r != 0)
        return D8_EGONE;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HTTP__STREAM_MAX_QUEUED) {
        LOG(LOG_DEBUG, "http stream peer not reading", LF_S("remote", c->remote),
            LF_S("request_id", c->rid));
        http__conn_close(c);
        return D8_ETOOBIG;
    }
    return 0;
}

void http_stream_end(http_exchange_t *ex)
{
    if (!ex)
        return;
    http__conn_t *c = ex->conn;
    if (!c->ex_open)
        return;
    if (c->state != HTTP__C_STREAM) {
        if (c->state == HTTP__C_CLOSING || c->state == HTTP__C_LINGER)
            exchange_complete(c, ex->status);
        return;
    }
    if (!c->stream_raw && !c->is_head) {
        uv_buf_t b = uv_buf_init((char *)(uintptr_t) "0\r\n\r\n", 5);
        http__conn_write(c, &b, 1);
    }
    exchange_complete(c, ex->status);
    c->stream_started = 0;
    http__conn_after_answer(c, c->stream_keep);
}

void http_exchange_abort(http_exchange_t *ex)
{
    if (!ex)
        return;
    http__conn_t *c = ex->conn;
    if (!c->ex_open)
        return;
    c->ex_open = 0;
    ex->on_close = NULL;
    LOG(LOG_DEBUG, "http exchange aborted", LF_S("remote", c->remote), LF_S("request_id", c->rid));
    http__conn_close_ex(c, 1);
}

size_t http_stream_pending(const http_exchange_t *ex)
{
    if (!ex || ex->conn->state == HTTP__C_CLOSING)
        return 0;
    return uv_stream_get_write_queue_size((const uv_stream_t *)&ex->conn->tcp);
}

void http_stream_on_drain(http_exchange_t *ex, void (*cb)(void *ud), void *ud)
{
    if (!ex)
        return;
    ex->on_drain = cb;
    ex->on_drain_ud = cb ? ud : NULL;
}

void http__stream_drained(http__conn_t *c)
{
    http_exchange_t *ex = &c->ex;
    if (c->state != HTTP__C_STREAM || !c->ex_open || !ex->on_drain)
        return;
    void (*cb)(void *) = ex->on_drain;
    void *ud = ex->on_drain_ud;
    ex->on_drain = NULL;
    ex->on_drain_ud = NULL;
    cb(ud);
}

void http_exchange_on_close(http_exchange_t *ex, void (*cb)(void *ud), void *ud)
{
    if (!ex)
        return;
    ex->on_close = cb;
    ex->on_close_ud = cb ? ud : NULL;
}

const http_request_t *http_exchange_request(const http_exchange_t *ex)
{
    return ex ? &ex->conn->req : NULL;
}
