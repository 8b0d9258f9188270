/*
 * pkg/http internals shared between the files of the module and with its
 * tests and fuzz target. Not part of the public contract.
 */
#ifndef D8_HTTP_INT_H
#define D8_HTTP_INT_H

#include "http.h"

#include "base/base.h"
#include "base/list.h"

#include <http_parser.h>
#include <time.h>

/* Unparsed input held per connection while a request is being handled
 * before the socket stops being read (backpressure). */
#define HTTP__RBUF_BOUND (64u * 1024u)
/* Requests of one connection served in one turn; the rest wait for the
 * next loop iteration, so that one pipelining client cannot hold the loop
 * while others wait. */
#define HTTP__BURST 32u
/* Answer bytes of one connection's turn after which the turn ends too
 * (a few large answers, such as /metrics, make a full turn). */
#define HTTP__BURST_BYTES (64u * 1024u)
/* Output queued on a stream beyond which http_stream_write gives up. */
#define HTTP__STREAM_MAX_QUEUED (8u * 1024u * 1024u)
/* Upper bound for draining a closing connection's input after the last
 * answer (lingering close), so that the peer reads the answer instead of a
 * reset. Also capped by idle_timeout_ms. */
#define HTTP__LINGER_MS 2000u

/* ---- connections and the server (http.c, http_response.c, http_server.c) */

/* Where a connection is in its request/answer cycle; changed only through
 * http__conn_state. */
typedef enum http__conn_state {
    HTTP__C_IDLE,     /* waiting for the first byte of a request */
    HTTP__C_HEAD,     /* request line and headers arriving */
    HTTP__C_BODY,     /* body arriving */
    HTTP__C_HANDLING, /* the handler owns the exchange */
    HTTP__C_STREAM,   /* a streamed answer is in progress */
    HTTP__C_LINGER,   /* last answer queued: flush, shut down, drain input */
    HTTP__C_CLOSING,  /* uv_close issued; memory goes in the close callback */
} http__conn_state_t;

typedef struct http__conn http__conn_t;

struct http_exchange {
    http__conn_t *conn;
    void (*on_close)(void *ud);
    void *on_close_ud;
    void (*on_drain)(void *ud); /* http_stream_on_drain, one-shot */
    void *on_drain_ud;
    int status;
};

/* Offsets of a header's name and value in the connection's string buffer. */
typedef struct http__hdr_off {
    uint32_t name;
    uint32_t value;
} http__hdr_off_t;

/* One client connection: its handles, the request being parsed or handled
 * and its exchange. Freed only in the close callback of its last handle. */
struct http__conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    http_server_t *srv;
    d8_list_t link; /* in srv->conns from conn_start to conn_release */
    /* In srv->ready while deferred. */
    d8_list_t ready_link;
    http__conn_state_t state;
    http_parser parser;

    /* Input: rbuf[rstart, rlen) is received but not yet parsed. */
    char *rbuf;
    size_t rstart, rlen, rcap;

    /* The request being parsed: target, header names and values, path and
     * query, each NUL-terminated, in one buffer reused across requests. */
    d8_buf_t strs;
    http__hdr_off_t *hoff;
    size_t nhdr, hcap;
    http_header_t *hv;
    size_t hvcap;
    int last_cb;
    size_t hdr_bytes;
    d8_buf_t body;
    size_t body_limit;
    uint64_t chunked_total;
    int err_status; /* set by a parser callback that refuses the request */
    /* Its message (static), or NULL for the parser's. */
    const char *err_msg;
    /* The start of the input slice of the http_parser_execute call in
     * progress, and whether the input before it ended in LF followed only
     * by SP/HT (an obs-fold may start right at exec_start). */
    const char *exec_start;
    unsigned fold_carry;
    /* on_head's verdict for the request being parsed. */
    http_head_verdict_t verdict;

    http_request_t req;
    http_exchange_t ex;
    d8_buf_t out; /* the answer's head, reused */

    uint64_t deadline; /* loop ms, 0 = none */
    uint64_t timer_due;
    unsigned closes_pending;
    unsigned nwrites;
    /* Answer bytes queued since this connection's turn began. */
    size_t turn_bytes;

    unsigned reading : 1;
    unsigned peer_eof : 1;
    unsigned in_parse : 1;
    unsigned headers_done : 1;
    unsigned keep_alive : 1;
    unsigned upgrade : 1;
    unsigned is_head : 1;
    unsigned ex_open : 1;
    unsigned stream_started : 1;
    unsigned stream_raw : 1;
    unsigned stream_keep : 1;
    unsigned shut_done : 1;
    unsigned wblocked : 1; /* too many answer bytes queued: not parsing */
    unsigned counted : 1;  /* counted in srv->peers under ip */
    unsigned rejected : 1; /* refused at accept (503): counted in srv->nrejected */
    unsigned deferred : 1; /* used its turn: parsing resumes from srv->anchor */

    char rid[129];
    char remote[64];
    char ip[48];                /* remote without the port: the per-client limit's key */
    struct http__tls_conn *tls; /* TLS engine (http_tls.c); NULL on a plain listener */
};

/* Open connections of one client address (http_server.c). */
typedef struct http__peer {
    struct http__peer *next;
    size_t n;
    char ip[48];
} http__peer_t;

#define HTTP__PEER_BUCKETS 256u

/* The listener, the list of connections and the options; freed once every
 * handle is closed. */
struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    /* Runs while connections wait for their next turn (srv->ready);
     * closed by http_server_free so that `done` always runs from a close
     * callback, even when nothing else is open. */
    uv_idle_t anchor;
    d8_list_t ready;
    http_server_opts_t o;
    int port;
    int listener_open;
    int listener_closing;
    int anchor_open;
    int stopping;
    int freeing;
    void (*done)(void *arg);
    void *done_arg;
    d8_list_t conns;
    size_t nconns;
    size_t nrejected; /* of nconns: refused at accept, closing */
    http__peer_t *peers[HTTP__PEER_BUCKETS];
    uint64_t linger_ms;
    uint64_t rid_key, rid_ctr;
    time_t date_sec;
    size_t date_len;
    char date_line[48];
    char discard[16384];
};

/* ---- the connection (http.c) ------------------------------------------- */

/* Every change of a connection's state goes through here (STYLE 8). */
void http__conn_state(http__conn_t *c, http__conn_state_t to);
/* Arms c's deadline ms from now; an earlier deadline restarts the timer. */
void http__conn_set_deadline(http__conn_t *c, uint64_t ms);
/* Forgets the previous request before the next one is parsed. */
void http__request_reset(http__conn_t *c);
/* Starts or stops reading the socket: the one place that pauses and
 * resumes input (unparsed input over HTTP__RBUF_BOUND, answers queued
 * over max_queued_bytes, peer EOF). */
void http__conn_update_reading(http__conn_t *c);
/* Answer bytes queued on c that the socket has not taken yet. */
size_t http__conn_queued(const http__conn_t *c);
/* Queues bufs (borrowed) after everything queued before: the one place
 * where answer bytes are queued for writing. 0, or D8_EGONE when the
 * connection is (now) closing. */
int http__conn_write(http__conn_t *c, const uv_buf_t *bufs, unsigned n);
/* Every queued write of c has completed: runs a stream's drain callback
 * (http_stream_on_drain), if one is registered. */
void http__stream_drained(http__conn_t *c);
/* After an answer was queued: next request, or the end of the connection. */
void http__conn_after_answer(http__conn_t *c, int keep);
/* Ends c politely: flush, shut down the write side, drain input a while. */
void http__conn_end_graceful(http__conn_t *c);
/* Closes c's handles at once, with a TCP reset when reset is set and the
 * socket allows it; http__conn_close(c) is http__conn_close_ex(c, 0). */
void http__conn_close_ex(http__conn_t *c, int reset);
void http__conn_close(http__conn_t *c);
/* Writes a fresh request id (16 hex digits, distinct per server) to out. */
void http__rid_generate(http_server_t *srv, char out[17]);

/* ---- parsing (http_parse.c) -------------------------------------------- */

/* http-parser's callbacks for a request of an http__conn_t (parser.data). */
extern const http_parser_settings http__parser_settings;
/* Records whether input [from, to), just parsed, ended in LF followed only
 * by SP/HT: an obs-fold may then start the next slice. */
void http__fold_carry_update(http__conn_t *c, const char *from, const char *to);

/* ---- answers (http_response.c) and the server (http_server.c) ---------- */

/* The server's own error answer (JSON body, Connection: close), then a
 * graceful end of the connection (http_response.c). */
void http__conn_send_error(http__conn_t *c, int status, const char *code, const char *message);

/* Parses the input of the connections that waited for their turn
 * (http.c; the anchor idle callback). */
void http__srv_run_ready(uv_idle_t *anchor);

/* Forgets c in its client address's count (http_server.c). */
void http__peer_release(http__conn_t *c);

/* Frees a server being freed once its last handle is closed, then calls
 * its done callback (http_server.c). */
void http__srv_maybe_done(http_server_t *srv);

/*
 * Adopts a connected stream socket as a new connection of srv, exactly as
 * if the listener had accepted it (same limits, same read path). The fd is
 * owned by the server from then on, also on failure. Used by the fuzz
 * target with one end of a socketpair. Returns 0 or a D8_* error.
 */
int http__server_adopt(http_server_t *srv, uv_os_sock_t fd);

/* Writes "HTTP-date" for wall time t (seconds) into out; returns the length. */
size_t http__format_date(int64_t t, char out[32]);

#endif
