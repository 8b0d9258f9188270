/*
 * pkg/http: an HTTP/1.1 server on a libuv loop, parsed by http-parser.
 * Shared by dev8-agent and azsim.
 *
 * - keep-alive, chunked request bodies, pipelined requests answered in
 *   order (the next request of a connection is parsed only after the
 *   current one was answered);
 * - limits with clear answers, each a JSON error body
 *   {"error":{"code","message"}}: header block over max_header_bytes -> 431,
 *   body over the per-request limit -> 413, malformed request -> 400
 *   (strict HTTP/1.1: versions other than 1.0/1.1, header names that are
 *   not RFC 9110 tokens, a space before the colon, obs-fold),
 *   more than max_connections open, or more than
 *   max_connections_per_client from one address -> 503 then close,
 *   headers not complete
 *   within header_timeout_ms -> 408 then close; an idle keep-alive
 *   connection is closed after idle_timeout_ms, and a body must arrive
 *   within idle_timeout_ms of its headers;
 * - every answer carries X-Request-Id (the client's when it sent a sane
 *   one, else a generated one), Content-Length or chunked framing, Date,
 *   and Connection: close when the server is about to close.
 *
 * Nothing here blocks: reads, writes and timers all run on the loop. The
 * process must ignore SIGPIPE (libuv writes to sockets with writev).
 */
#ifndef D8_HTTP_H
#define D8_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server_t;
/* One request and its answer. Owned by the server; valid from the
 * handler call until the answer is complete (http_respond or
 * http_stream_end) or the connection closes. A handler that answers later
 * (from a timer, after I/O) must register http_exchange_on_close: once the
 * connection is gone the exchange's memory is gone with it. */
typedef struct http_exchange http_exchange_t;

typedef struct http_header {
    const char *name;
    const char *value;
} http_header_t;

/* A parsed request, borrowed by the handler for the exchange's lifetime. */
typedef struct http_request {
    const char *method;           /* "GET", "PUT", ... */
    int method_id;                /* enum http_method of http_parser.h */
    const char *target;           /* request target as sent ("/a/b?x=1") */
    const char *path;             /* target up to '?', not decoded */
    const char *query;            /* after '?', "" when none, not decoded */
    const http_header_t *headers; /* names lower-cased, in order sent */
    size_t nheaders;
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    int body_framed;        /* 1 when Content-Length or chunked was sent */
    const char *request_id; /* X-Request-Id answered with this request */
    const char *remote;     /* peer "ip:port" */
    uint64_t start_ns;      /* monotonic time the request began */
    const void *route;      /* what on_head left in its verdict, else NULL */
} http_request_t;

/* Returns the first header of that (case-insensitive) name, or NULL. */
const char *http_request_header(const http_request_t *req, const char *name);

/*
 * Finds query parameter `name` in req->query, percent-decodes it into out
 * (NUL-terminated). Returns its length, -1 when absent, -2 when it does not
 * fit or is badly encoded.
 */
int http_query_param(const http_request_t *req, const char *name, char *out, size_t outlen);

/* Percent-decodes src[0..len) into out; -1 on bad encoding or no room. */
int http_pct_decode(const char *src, size_t len, char *out, size_t outlen);
/* The same for application/x-www-form-urlencoded ('+' is a space). */
int http_form_decode(const char *src, size_t len, char *out, size_t outlen);

/*
 * What the server does with a request whose headers are complete, decided
 * by the on_head hook before any body byte is read. The hook finds
 * body_limit set to the server's default_body_limit and status 0.
 * - status 0: the body (up to body_limit bytes, else 413) is read, then
 *   the handler is called; Expect: 100-continue is answered only then.
 * - status 200..599 (else taken as 500): the server answers at once with the JSON
 *   error body {"error":{"code","message","field"?}} and, when header_name
 *   is set, one extra header; the handler is not called and no body is
 *   read. When the request announced a body the answer carries
 *   Connection: close and the connection ends (the body is discarded for
 *   a short while so that the client reads the answer).
 * Strings: code and header_name must be static; message, field and
 *   header_value are copied into the buffers here ("" = none).
 * route is opaque to the server and handed to the handler as req->route.
 */
typedef struct http_head_verdict {
    size_t body_limit;
    int status;
    const char *code;
    const char *header_name;
    char message[192];
    char field[64];
    char header_value[96];
    const void *route;
} http_head_verdict_t;

typedef struct http_server_opts {
    const char *host;           /* "127.0.0.1", "0.0.0.0", "::" */
    int port;                   /* 0 picks a free port: see http_server_port */
    size_t max_header_bytes;    /* default 16384 */
    size_t max_connections;     /* default 1024 */
    size_t default_body_limit;  /* default 1 MiB, when on_head keeps it */
    uint64_t header_timeout_ms; /* default 10000 */
    uint64_t idle_timeout_ms;   /* default 60000 */
    /* Connections open at once from one client address (the peer's IP,
     * whatever its port); one more gets 503 then close. 0 = no limit. */
    size_t max_connections_per_client;
    /* Answer bytes queued on a connection and not yet taken by the socket
     * beyond which the connection is neither read nor parsed until the
     * peer drains them (backpressure on pipelined requests); default
     * 256 KiB. Streams have their own bound (see http_stream_write). */
    size_t max_queued_bytes;
    /* Called when a request's headers are complete, before any body byte
     * is read: fills the verdict (see http_head_verdict_t). req->body is
     * "" then. May be NULL: every request takes default_body_limit. */
    void (*on_head)(void *ud, const http_request_t *req, http_head_verdict_t *v);
    /* Called once per complete request. Must eventually answer through
     * http_respond or http_stream_start/.../http_stream_end. */
    void (*handler)(void *ud, http_exchange_t *ex, const http_request_t *req);
    /* Called when an answer was fully queued, including answers the
     * server produced by itself (method/path may be "" then), and for a
     * stream cut short by the connection closing. May be NULL. */
    void (*access)(void *ud, const char *method, const char *path, int status, uint64_t duration_ns,
                   const char *request_id);
    void *ud;
    /* TLS on every connection (http_tls.h), borrowed; NULL = plain HTTP. */
    struct http_tls *tls;
} http_server_opts_t;

/* Binds and listens. On failure returns a D8_* error and *out stays NULL. */
int http_server_new(uv_loop_t *loop, const http_server_opts_t *opts, http_server_t **out);
/* The bound port (useful after port 0). */
int http_server_port(const http_server_t *srv);
/* Number of open connections. */
size_t http_server_connections(const http_server_t *srv);
/* Stops accepting: closes the listener. Idle connections are closed; the
 * others finish the request in flight, answered with Connection: close.
 * Streams in progress are not ended here: their owners end them. */
void http_server_stop_accepting(http_server_t *srv);
/* Closes every connection and the listener; `done` is called (may be
 * NULL) once all handles are closed, after which the memory is gone.
 * Exchanges still open get their close callbacks first. */
void http_server_free(http_server_t *srv, void (*done)(void *arg), void *arg);

/*
 * Answers the request in one piece. headers: extra headers (borrowed);
 * content_type may be NULL when there is no body. Safe to call once per
 * exchange; the exchange must not be used afterwards. body is borrowed:
 * what the socket does not take at once is copied.
 * The server writes Content-Length, Transfer-Encoding, Connection, Date and
 * X-Request-Id itself and ignores those names in headers, as well as any
 * header containing CR or LF. 1xx, 204 and 304 answers carry no body and no
 * Content-Length; HEAD answers carry the length but not the body.
 */
void http_respond(http_exchange_t *ex, int status, const http_header_t *headers, size_t nheaders,
                  const char *content_type, const char *body, size_t body_len);

/* Answers {"error":{"code","message","field"?}} with that status. code
 * NULL answers "Error", message NULL the status's reason phrase, field NULL
 * leaves "field" out. All strings are borrowed. */
void http_respond_error(http_exchange_t *ex, int status, const char *code, const char *message,
                        const char *field);
/* The same error answer with extra headers (Allow, Retry-After,
 * WWW-Authenticate), under the rules of http_respond; headers are
 * borrowed. */
void http_respond_error_h(http_exchange_t *ex, int status, const http_header_t *headers,
                          size_t nheaders, const char *code, const char *message,
                          const char *field);

/*
 * Streaming answers (Server-Sent Events): start sends the status line and
 * headers with chunked framing; write sends one chunk; end sends the last
 * chunk. write returns D8_EGONE when the peer went away, and
 * D8_ETOOBIG when the peer is not reading (output queued beyond 8 MiB),
 * in which case the connection is being closed. After an error, write no
 * more: the close callback follows from the loop (clean up there). start
 * returns D8_EINVAL unless the exchange is unanswered and status is 2xx-5xx
 * with a body. To an HTTP/1.0 client the stream is sent unframed and the
 * connection closes at its end.
 */
int http_stream_start(http_exchange_t *ex, int status, const http_header_t *headers,
                      size_t nheaders, const char *content_type);
int http_stream_write(http_exchange_t *ex, const char *data, size_t len);
void http_stream_end(http_exchange_t *ex);

/*
 * Flow control of a stream: http_stream_pending answers the bytes written
 * to the stream that the socket has not taken yet (0 once all is sent, or
 * when the connection is closing). http_stream_on_drain registers cb to
 * run once, when every byte written so far has been taken by the socket;
 * it runs from a libuv write callback, never from inside an http_* call,
 * and only while the stream is open (not after http_stream_end or a
 * close). Register it only while http_stream_pending is above 0 (else
 * nothing is left to drain and it would not run). cb NULL unregisters.
 * A producer writes while pending is under its bound and waits for the
 * drain otherwise, so that its memory is bounded by what it writes at a
 * time, whatever the peer's speed.
 */
size_t http_stream_pending(const http_exchange_t *ex);
void http_stream_on_drain(http_exchange_t *ex, void (*cb)(void *ud), void *ud);

/*
 * Registers cb to run if the connection closes before the answer is
 * complete (peer gone, timeout, server shutdown). After cb the exchange
 * is gone. Passing cb NULL unregisters. cb runs from a uv_close callback,
 * never from inside an http_* call; it does not run for an exchange
 * completed by http_respond or http_stream_end (even after an error).
 */
void http_exchange_on_close(http_exchange_t *ex, void (*cb)(void *ud), void *ud);

/*
 * Drops the connection of an unanswered exchange without an answer, with
 * a TCP reset where the socket allows it (fault injection: azsim's
 * resetRate). The exchange is gone on return and its close callback does
 * not run; answers to earlier pipelined requests still queued may be lost.
 */
void http_exchange_abort(http_exchange_t *ex);

/* The request of an exchange (borrowed). */
const http_request_t *http_exchange_request(const http_exchange_t *ex);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
