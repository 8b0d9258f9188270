/*
 * pkg/http server: listening, accepting (or adopting) connections, and
 * stopping and freeing the server. The server's memory goes only once
 * every handle is closed (http__srv_maybe_done).
 */
#include "http_int.h"
#include "http_tls_int.h"

#include "log/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------------ accept */

/* A connection refused at accept (503) is closed this soon after its
 * answer rather than after the usual lingering close: refused connections
 * must not fill the server's connection limit for the clients that keep
 * within theirs. */
#define REJECT_LINGER_MS 100u

/* Writes the peer's "ip:port" (remote) and "ip" (the per-client limit's
 * key) into c; "unknown" when the address cannot be had. */
static void format_remote(http__conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "";
    snprintf(c->remote, sizeof(c->remote), "unknown");
    snprintf(c->ip, sizeof(c->ip), "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(c->remote, sizeof(c->remote), "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(c->remote, sizeof(c->remote), "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        snprintf(c->remote, sizeof(c->remote), "unix");
    }
    if (ip[0])
        snprintf(c->ip, sizeof(c->ip), "%s", ip);
}

/* ------------------------------------------------------- per-client count */

/* FNV-1a of the address text: the bucket of its count. */
static size_t peer_bucket(const char *ip)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)ip; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % HTTP__PEER_BUCKETS;
}

/* Counts c under its address; returns the address's count with c. */
static size_t peer_acquire(http__conn_t *c)
{
    http__peer_t **head = &c->srv->peers[peer_bucket(c->ip)];
    http__peer_t *p = *head;
    while (p && strcmp(p->ip, c->ip) != 0)
        p = p->next;
    if (!p) {
        p = d8_xcalloc(1, sizeof(*p));
        snprintf(p->ip, sizeof(p->ip), "%s", c->ip);
        p->next = *head;
        *head = p;
    }
    c->counted = 1;
    return ++p->n;
}

void http__peer_release(http__conn_t *c)
{
    if (!c->counted)
        return;
    c->counted = 0;
    http__peer_t **pp = &c->srv->peers[peer_bucket(c->ip)];
    while (*pp && strcmp((*pp)->ip, c->ip) != 0)
        pp = &(*pp)->next;
    http__peer_t *p = *pp;
    if (p && --p->n == 0) {
        *pp = p->next;
        free(p);
    }
}

/* Answers 503 to a connection over a limit and closes it soon; it no
 * longer counts against any limit (its descriptor goes within
 * REJECT_LINGER_MS). */
static void conn_reject(http__conn_t *c, const char *code, const char *message)
{
    http__peer_release(c);
    c->rejected = 1;
    c->srv->nrejected++;
    http__conn_send_error(c, 503, code, message);
    http__conn_set_deadline(c, REJECT_LINGER_MS);
}

/* Takes a connection whose tcp handle is initialised and connected. */
static void conn_start(http_server_t *srv, http__conn_t *c)
{
    c->srv = srv;
    c->tcp.data = c;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    d8_list_push(&srv->conns, &c->link);
    srv->nconns++;
    d8_buf_init(&c->strs);
    d8_buf_init(&c->body);
    d8_buf_init(&c->out);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    format_remote(c);
    http__request_reset(c);
    http__conn_state(c, HTTP__C_IDLE);
    c->req.start_ns = d8_mono_ns();
    size_t from_peer = peer_acquire(c);
    if (srv->o.tls && http__tls_conn_new(c, srv->o.tls) != 0) { /* TLS hook */
        LOG(LOG_WARN, "tls connection setup failed", LF_S("remote", c->remote));
        http__conn_close(c);
        return;
    }
    if (srv->nconns - srv->nrejected > srv->o.max_connections) {
        LOG(LOG_DEBUG, "http connection limit reached", LF_S("remote", c->remote));
        conn_reject(c, "ServiceUnavailable",
                    "the server has too many open connections; retry later");
        return;
    }
    if (srv->o.max_connections_per_client && from_peer > srv->o.max_connections_per_client) {
        LOG(LOG_DEBUG, "http per-client connection limit reached", LF_S("remote", c->remote));
        conn_reject(c, "TooManyConnections",
                    "this client address has too many open connections; close idle ones or "
                    "retry later");
        return;
    }
    http__conn_set_deadline(c, srv->o.header_timeout_ms);
    http__conn_update_reading(c);
}

static void on_raw_tcp_closed(uv_handle_t *h)
{
    free(h->data);
}

static http__conn_t *conn_alloc(http_server_t *srv)
{
    http__conn_t *c = d8_xcalloc(1, sizeof(*c));
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    return c;
}

static void on_connection(uv_stream_t *l, int status)
{
    http_server_t *srv = l->data;
    if (status < 0) {
        LOG(LOG_DEBUG, "http accept failed", LF_S("error", uv_err_name(status)));
        return;
    }
    http__conn_t *c = conn_alloc(srv);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_raw_tcp_closed);
        return;
    }
    conn_start(srv, c);
}

int http__server_adopt(http_server_t *srv, uv_os_sock_t fd)
{
    if (!srv || srv->freeing) {
        close(fd);
        return D8_EINVAL;
    }
    http__conn_t *c = conn_alloc(srv);
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&c->tcp, on_raw_tcp_closed);
        return D8_ESYS;
    }
    conn_start(srv, c);
    return 0;
}

/* ------------------------------------------------------------------ server */

/* Turns a listen host ("", "*", "localhost", an IPv4 or a bracketed or bare
 * IPv6 literal) and port into an address; D8_EINVAL for anything else. */
static int parse_host(const char *host, int port, struct sockaddr_storage *ss)
{
    char tmp[INET6_ADDRSTRLEN + 2];
    if (!host || !host[0] || strcmp(host, "*") == 0)
        host = "0.0.0.0";
    else if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        if (n - 2 >= sizeof(tmp))
            return D8_EINVAL;
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    memset(ss, 0, sizeof(*ss));
    if (strchr(host, ':')) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) != 0)
            return D8_EINVAL;
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) != 0) {
        return D8_EINVAL;
    }
    return 0;
}

void http__srv_maybe_done(http_server_t *srv)
{
    if (!srv->freeing || srv->listener_open || srv->anchor_open || srv->nconns)
        return;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    free(srv);
    if (done)
        done(arg);
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    srv->listener_open = 0;
    http__srv_maybe_done(srv);
}

static void on_anchor_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    srv->anchor_open = 0;
    http__srv_maybe_done(srv);
}

static void on_new_failed_closed(uv_handle_t *h)
{
    http_server_t *srv = h->data;
    if (h == (uv_handle_t *)&srv->listener)
        srv->listener_open = 0;
    else
        srv->anchor_open = 0;
    if (!srv->listener_open && !srv->anchor_open)
        free(srv);
}

int http_server_new(uv_loop_t *loop, const http_server_opts_t *opts, http_server_t **out)
{
    if (out)
        *out = NULL;
    if (!loop || !opts || !out || !opts->handler || opts->port < 0 || opts->port > 65535)
        return D8_EINVAL;
    struct sockaddr_storage ss;
    if (parse_host(opts->host, opts->port, &ss) != 0)
        return D8_EINVAL;

    /* The socket is bound before any libuv handle exists, so that a busy
     * port fails synchronously with nothing left to close. */
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return D8_ESYS;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t alen =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, alen) != 0 || listen(fd, 511) != 0) {
        int err = errno;
        LOG(LOG_ERROR, "http listen failed", LF_S("host", opts->host ? opts->host : ""),
            LF_I("port", opts->port), LF_S("error", strerror(err)));
        close(fd);
        return err == EADDRINUSE ? D8_EEXIST : D8_ESYS;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    int port = opts->port;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&bound)->sin_port);

    http_server_t *srv = d8_xcalloc(1, sizeof(*srv));
    d8_list_init(&srv->conns);
    d8_list_init(&srv->ready);
    srv->loop = loop;
    srv->o = *opts;
    srv->o.host = NULL; /* borrowed only for this call */
    if (!srv->o.max_header_bytes)
        srv->o.max_header_bytes = 16384;
    if (!srv->o.max_connections)
        srv->o.max_connections = 1024;
    if (!srv->o.default_body_limit)
        srv->o.default_body_limit = 1u << 20;
    if (!srv->o.max_queued_bytes)
        srv->o.max_queued_bytes = 256u * 1024u;
    if (!srv->o.header_timeout_ms)
        srv->o.header_timeout_ms = 10000;
    if (!srv->o.idle_timeout_ms)
        srv->o.idle_timeout_ms = 60000;
    srv->linger_ms =
        srv->o.idle_timeout_ms < HTTP__LINGER_MS ? srv->o.idle_timeout_ms : HTTP__LINGER_MS;
    srv->port = port;
    if (d8_random_bytes(&srv->rid_key, sizeof(srv->rid_key)) != 0)
        srv->rid_key = d8_mono_ns() ^ ((uint64_t)getpid() << 32);

    uv_idle_init(loop, &srv->anchor);
    srv->anchor.data = srv;
    srv->anchor_open = 1;
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = 1;
    int r = uv_tcp_open(&srv->listener, fd);
    int owned = r == 0;
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (r != 0) {
        if (!owned)
            close(fd);
        LOG(LOG_ERROR, "http listen failed", LF_I("port", port), LF_S("error", uv_strerror(r)));
        uv_close((uv_handle_t *)&srv->listener, on_new_failed_closed);
        uv_close((uv_handle_t *)&srv->anchor, on_new_failed_closed);
        return D8_ESYS;
    }
    *out = srv;
    return 0;
}

int http_server_port(const http_server_t *srv)
{
    return srv ? srv->port : 0;
}

size_t http_server_connections(const http_server_t *srv)
{
    return srv ? srv->nconns : 0;
}

static void srv_close_listener(http_server_t *srv)
{
    if (srv->listener_open && !srv->listener_closing) {
        srv->listener_closing = 1;
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    }
}

void http_server_stop_accepting(http_server_t *srv)
{
    if (!srv || srv->stopping)
        return;
    srv->stopping = 1;
    srv_close_listener(srv);
    for (d8_list_t *it = srv->conns.next; it != &srv->conns; it = it->next) {
        http__conn_t *c = d8_container_of(it, http__conn_t, link);
        if (c->state == HTTP__C_IDLE && c->rstart == c->rlen)
            http__conn_end_graceful(c);
    }
}

void http_server_free(http_server_t *srv, void (*done)(void *arg), void *arg)
{
    if (!srv || srv->freeing)
        return;
    srv->freeing = 1;
    srv->stopping = 1;
    srv->done = done;
    srv->done_arg = arg;
    srv_close_listener(srv);
    uv_close((uv_handle_t *)&srv->anchor, on_anchor_closed);
    for (d8_list_t *it = srv->conns.next; it != &srv->conns; it = it->next)
        http__conn_close(d8_container_of(it, http__conn_t, link));
}
