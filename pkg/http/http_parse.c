/*
 * pkg/http request parsing: http-parser's callbacks, which collect one
 * request's target, headers and body into its connection, settle the
 * request id, ask on_head for its verdict at headers-complete, and make
 * the parser strict: http-parser 2.9 accepts any one-digit version, a
 * space inside or after a header name and obs-fold; all are refused with
 * 400 here (RFC 9112 5.1, 5.2; RFC 9110 5.6.2).
 *
 * http-parser is paused in on_message_complete, so that
 * http_parser_execute returns exactly at the end of a request and the
 * connection (http.c) dispatches it.
 */
#include "http_int.h"

#include "base/base.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A body buffer grown beyond this is given back after its request. */
#define BODY_KEEP_MAX (1u << 20)

enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

static int on_message_begin(http_parser *p);
static int on_url(http_parser *p, const char *at, size_t len);
static int on_header_field(http_parser *p, const char *at, size_t len);
static int on_header_value(http_parser *p, const char *at, size_t len);
static int on_headers_complete(http_parser *p);
static int on_body(http_parser *p, const char *at, size_t len);
static int on_chunk_header(http_parser *p);
static int on_message_complete(http_parser *p);

const http_parser_settings http__parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

static int rid_acceptable(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (n >= 128)
            return 0;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return 0;
    }
    return n > 0;
}

/* Forgets everything of the previous request before the next one is
 * parsed; an unusually large body buffer is dropped rather than kept. */
void http__request_reset(http__conn_t *c)
{
    d8_buf_reset(&c->strs);
    if (c->body.cap > BODY_KEEP_MAX) {
        d8_buf_release(&c->body);
        d8_buf_init(&c->body);
    } else {
        d8_buf_reset(&c->body);
    }
    c->nhdr = 0;
    c->last_cb = CB_NONE;
    c->hdr_bytes = 0;
    c->chunked_total = 0;
    c->err_status = 0;
    c->err_msg = NULL;
    c->verdict.status = 0;
    c->verdict.route = NULL;
    c->headers_done = 0;
    c->upgrade = 0;
    c->is_head = 0;
    c->stream_started = 0;
    c->stream_raw = 0;
    memset(&c->req, 0, sizeof(c->req));
    c->req.remote = c->remote;
}

/* Refuses the request in a parser callback with 400 and that message. */
static int refuse(http__conn_t *c, const char *msg)
{
    c->err_status = 400;
    c->err_msg = msg;
    return -1;
}

/* tchar of RFC 9110 5.6.2: the characters of a header name. */
static int is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/*
 * 1 when the header value piece at `at` continues a header on a new line
 * (obs-fold): the bytes before it back to the previous LF are only SP or
 * HT. The look-back stops at the start of the input slice being parsed;
 * fold_carry says how the input before the slice ended.
 */
static int value_is_fold(const http__conn_t *c, const char *at)
{
    const char *q = at;
    while (q > c->exec_start && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    if (q > c->exec_start)
        return q[-1] == '\n';
    return c->fold_carry;
}

/* Updates fold_carry after input [from, to) was parsed. */
void http__fold_carry_update(http__conn_t *c, const char *from, const char *to)
{
    const char *q = to;
    while (q > from && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    if (q > from)
        c->fold_carry = q[-1] == '\n';
}

static int header_bytes_add(http__conn_t *c, size_t n)
{
    c->hdr_bytes += n;
    if (c->hdr_bytes > c->srv->o.max_header_bytes) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

/* Closes the string in progress (URL, header name or value). */
static void finish_token(http__conn_t *c)
{
    if (c->last_cb == CB_FIELD) {
        /* A name without a value callback: give it an empty value. */
        d8_buf_putc(&c->strs, '\0');
        c->hoff[c->nhdr - 1].value = (uint32_t)c->strs.len;
        d8_buf_putc(&c->strs, '\0');
    } else if (c->last_cb == CB_VALUE || c->last_cb == CB_URL) {
        d8_buf_putc(&c->strs, '\0');
    }
    c->last_cb = CB_NONE;
}

static int on_message_begin(http_parser *p)
{
    http__conn_t *c = p->data;
    http__request_reset(c);
    http__conn_state(c, HTTP__C_HEAD);
    c->req.start_ns = d8_mono_ns();
    http__conn_set_deadline(c, c->srv->o.header_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http__conn_t *c = p->data;
    if (header_bytes_add(c, len))
        return -1;
    c->last_cb = CB_URL;
    d8_buf_append(&c->strs, at, len);
    return 0;
}

/* Collects a header name, lower-cased so lookups need not fold case; the
 * parser may deliver one name in several pieces. */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http__conn_t *c = p->data;
    if (c->headers_done)
        return 0; /* trailers are not kept */
    if (header_bytes_add(c, len))
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i]))
            return refuse(c, at[i] == ' ' || at[i] == '\t'
                                 ? "malformed request: white space in a header name or "
                                   "before its colon"
                                 : "malformed request: a header name holds a character "
                                   "that is not a token character (RFC 9110)");
    if (c->last_cb != CB_FIELD) {
        if (header_bytes_add(c, 4))
            return -1;
        finish_token(c);
        if (c->nhdr == c->hcap) {
            c->hcap = c->hcap ? c->hcap * 2 : 16;
            c->hoff = d8_xrealloc(c->hoff, c->hcap * sizeof(*c->hoff));
        }
        c->hoff[c->nhdr].name = (uint32_t)c->strs.len;
        c->hoff[c->nhdr].value = 0;
        c->nhdr++;
        c->last_cb = CB_FIELD;
    }
    d8_buf_reserve(&c->strs, len);
    char *dst = c->strs.data + c->strs.len;
    for (size_t i = 0; i < len; i++) {
        char ch = at[i];
        dst[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    c->strs.len += len;
    c->strs.data[c->strs.len] = '\0';
    return 0;
}

/* Collects a header value (possibly in pieces); refuses obs-fold. */
static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http__conn_t *c = p->data;
    if (c->headers_done)
        return 0;
    if (header_bytes_add(c, len))
        return -1;
    /* http-parser reports an empty value as a zero-length piece at the
     * next line's start: not a fold. */
    if (len > 0 && value_is_fold(c, at))
        return refuse(c, "malformed request: obs-fold (a header line continued on the next "
                         "line) is not accepted");
    if (c->last_cb != CB_VALUE) {
        if (c->last_cb != CB_FIELD)
            return -1; /* cannot happen with http-parser; refuse rather than guess */
        d8_buf_putc(&c->strs, '\0');
        c->hoff[c->nhdr - 1].value = (uint32_t)c->strs.len;
        c->last_cb = CB_VALUE;
    }
    d8_buf_append(&c->strs, at, len);
    return 0;
}

/* Appends the target's path and query, each NUL-terminated, to the
 * string buffer and returns their offsets. */
static void split_target(http__conn_t *c, size_t *path_off, size_t *query_off)
{
    const char *t = c->strs.data;
    size_t tlen = strlen(t);
    size_t ps = 0;
    if (tlen && t[0] != '/' && t[0] != '*') {
        /* absolute-form: skip "scheme://authority" */
        const char *sep = strstr(t, "://");
        if (sep) {
            const char *slash = strchr(sep + 3, '/');
            ps = slash ? (size_t)(slash - t) : tlen;
        }
    }
    size_t pe = ps;
    while (pe < tlen && t[pe] != '?' && t[pe] != '#')
        pe++;
    size_t qs = pe, qe = pe;
    if (pe < tlen && t[pe] == '?') {
        qs = qe = pe + 1;
        while (qe < tlen && t[qe] != '#')
            qe++;
    }
    /* Reserve first: the appends below copy from the buffer itself. */
    d8_buf_reserve(&c->strs, (pe - ps) + (qe - qs) + 3);
    *path_off = c->strs.len;
    if (pe == ps)
        d8_buf_putc(&c->strs, '/');
    else
        d8_buf_append(&c->strs, c->strs.data + ps, pe - ps);
    d8_buf_putc(&c->strs, '\0');
    *query_off = c->strs.len;
    d8_buf_append(&c->strs, c->strs.data + qs, qe - qs);
    d8_buf_putc(&c->strs, '\0');
}

/* Asks on_head what to do with the request; its verdict stays in
 * c->verdict. */
static void head_verdict(http__conn_t *c)
{
    http_server_t *srv = c->srv;
    http_head_verdict_t *v = &c->verdict;
    v->body_limit = srv->o.default_body_limit;
    v->status = 0;
    v->code = NULL;
    v->header_name = NULL;
    v->message[0] = v->field[0] = v->header_value[0] = '\0';
    v->route = NULL;
    if (srv->o.on_head)
        srv->o.on_head(srv->o.ud, &c->req, v);
    if (v->status != 0 && (v->status < 200 || v->status > 599))
        v->status = 500;
    c->req.route = v->route;
}

/* Publishes the request head in c->req (method, target, headers, request
 * id); returns the Expect header's value or NULL. */
static const char *publish_head(http__conn_t *c, const http_parser *p)
{
    size_t path_off, query_off;
    split_target(c, &path_off, &query_off);

    if (c->nhdr > c->hvcap) {
        c->hvcap = c->hcap;
        c->hv = d8_xrealloc(c->hv, c->hvcap * sizeof(*c->hv));
    }
    const char *base = c->strs.data;
    const char *rid = NULL;
    const char *expect = NULL;
    for (size_t i = 0; i < c->nhdr; i++) {
        c->hv[i].name = base + c->hoff[i].name;
        c->hv[i].value = base + c->hoff[i].value;
        if (!rid && strcmp(c->hv[i].name, "x-request-id") == 0)
            rid = c->hv[i].value;
        else if (!expect && strcmp(c->hv[i].name, "expect") == 0)
            expect = c->hv[i].value;
    }
    if (rid && rid_acceptable(rid)) {
        size_t n = strlen(rid);
        memcpy(c->rid, rid, n + 1);
    } else {
        http__rid_generate(c->srv, c->rid);
    }

    http_request_t *r = &c->req;
    r->method = http_method_str((enum http_method)p->method);
    r->method_id = (int)p->method;
    r->target = base;
    r->path = base + path_off;
    r->query = base + query_off;
    r->headers = c->hv;
    r->nheaders = c->nhdr;
    r->body = "";
    r->body_len = 0;
    r->body_framed = (p->flags & (F_CHUNKED | F_CONTENTLENGTH)) != 0;
    r->request_id = c->rid;
    r->remote = c->remote;
    return expect;
}

/* Publishes the request head, refuses versions other than 1.0/1.1, asks
 * on_head for its verdict (an answer without reading the body, or the
 * body limit: 413 at once on a Content-Length beyond it) and answers
 * Expect: 100-continue. */
static int on_headers_complete(http_parser *p)
{
    http__conn_t *c = p->data;
    http_server_t *srv = c->srv;
    finish_token(c);
    if (header_bytes_add(c, 2))
        return -1;
    c->headers_done = 1;
    const char *expect = publish_head(c, p);
    if (p->http_major != 1 || p->http_minor > 1)
        return refuse(c, "malformed request: only HTTP/1.0 and HTTP/1.1 are served");

    c->keep_alive = http_should_keep_alive(p) != 0;
    c->upgrade = p->upgrade != 0;
    c->is_head = p->method == HTTP_HEAD;
    int has_cl = (p->flags & F_CONTENTLENGTH) != 0;
    head_verdict(c);
    if (c->verdict.status) {
        if ((p->flags & F_CHUNKED) || (has_cl && p->content_length > 0)) {
            /* Answered without its body: the connection ends after the
             * answer (conn_process sends it). */
            c->keep_alive = 0;
            return -1;
        }
        /* No body: the answer goes out at message complete, keep-alive. */
        c->body_limit = 0;
        http__conn_state(c, HTTP__C_BODY);
        return 0;
    }
    c->body_limit = c->verdict.body_limit;
    if (has_cl && p->content_length > c->body_limit) {
        c->err_status = 413;
        return -1;
    }
    if (has_cl && p->content_length > 0)
        d8_buf_reserve(&c->body, (size_t)p->content_length);
    if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1 &&
        ((p->flags & F_CHUNKED) || (has_cl && p->content_length > 0))) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)cont, sizeof(cont) - 1);
        if (http__conn_write(c, &b, 1) != 0)
            return -1; /* closing: conn_process stops at once */
    }
    http__conn_state(c, HTTP__C_BODY);
    http__conn_set_deadline(c, srv->o.idle_timeout_ms);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http__conn_t *c = p->data;
    if (len > c->body_limit || c->body.len > c->body_limit - len) {
        c->err_status = 413;
        return -1;
    }
    d8_buf_append(&c->body, at, len);
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    http__conn_t *c = p->data;
    if (p->content_length > c->body_limit ||
        c->chunked_total > (uint64_t)c->body_limit - p->content_length) {
        c->err_status = 413;
        return -1;
    }
    c->chunked_total += p->content_length;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    /* Stop right after this request; conn_process dispatches it. */
    http_parser_pause(p, 1);
    return 0;
}
