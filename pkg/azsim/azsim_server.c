/*
 * pkg/azsim: the model behind pkg/http on a libuv loop. The only handles
 * of its own are the timers that hold answers for the latency fault.
 */
#include "azsim_int.h"

#include "base/list.h"
#include "log/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct delayed {
    uv_timer_t timer;
    azsim_server_t *srv;
    http_exchange_t *ex; /* NULL once the exchange is gone */
    d8_list_t link;      /* in srv->delayed until dropped */
} delayed_t;

struct azsim_server {
    azsim_t *sim;
    uv_loop_t *loop;
    http_server_t *http;
    d8_list_t delayed; /* delayed_t whose timer is not closing yet */
    size_t nclosing;   /* timers whose close callback is pending */
    int http_gone;
    void (*done)(void *arg);
    void *done_arg;
};

static void serve(azsim_server_t *srv, http_exchange_t *ex, const http_request_t *req)
{
    azsim_resp_t r;
    azsim_resp_init(&r);
    azsim_handle(srv->sim, req, &r);
    LOG(LOG_INFO, "request", LF_S("method", req->method), LF_S("path", req->path),
        LF_I("status", r.status), LF_S("operation", r.operation),
        LF_D("duration_ms", (double)(d8_mono_ns() - req->start_ns) / 1e6),
        LF_S("request_id", req->request_id));
    if (r.reset)
        http_exchange_abort(ex); /* the resetRate fault: no answer at all */
    else
        http_respond(ex, r.status, r.headers, r.nheaders, r.content_type,
                     r.content_type ? r.body.data : NULL, r.content_type ? r.body.len : 0);
    azsim_resp_release(&r);
}

static void maybe_done(azsim_server_t *srv)
{
    if (!srv->http_gone || !d8_list_empty(&srv->delayed) || srv->nclosing)
        return;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    free(srv);
    if (done)
        done(arg);
}

static void on_delayed_closed(uv_handle_t *h)
{
    delayed_t *d = h->data;
    azsim_server_t *srv = d->srv;
    free(d);
    srv->nclosing--;
    maybe_done(srv);
}

/* Unlinks d and closes its timer; the memory goes in the close callback. */
static void drop(delayed_t *d)
{
    d8_list_del(&d->link);
    d->srv->nclosing++;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

static void on_delay_done(uv_timer_t *t)
{
    delayed_t *d = t->data;
    azsim_server_t *srv = d->srv;
    http_exchange_t *ex = d->ex;
    drop(d);
    if (ex) {
        http_exchange_on_close(ex, NULL, NULL);
        serve(srv, ex, http_exchange_request(ex));
    }
}

static void on_exchange_gone(void *ud)
{
    delayed_t *d = ud;
    d->ex = NULL;
    drop(d);
}

static void on_request(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    azsim_server_t *srv = ud;
    uint64_t delay = azsim_fault_delay_ms(srv->sim, req);
    if (delay == 0) {
        serve(srv, ex, req);
        return;
    }
    delayed_t *d = d8_xcalloc(1, sizeof(*d));
    d->srv = srv;
    d->ex = ex;
    uv_timer_init(srv->loop, &d->timer);
    d->timer.data = d;
    d8_list_push(&srv->delayed, &d->link);
    http_exchange_on_close(ex, on_exchange_gone, d);
    uv_timer_start(&d->timer, on_delay_done, delay, 0);
}

int azsim_serve(azsim_t *sim, uv_loop_t *loop, const char *host, int port, azsim_server_t **out)
{
    *out = NULL;
    azsim_server_t *srv = d8_xcalloc(1, sizeof(*srv));
    srv->sim = sim;
    srv->loop = loop;
    d8_list_init(&srv->delayed);
    http_server_opts_t o;
    memset(&o, 0, sizeof(o));
    o.host = host;
    o.port = port;
    o.max_connections = 4096;
    o.default_body_limit = 4u << 20; /* ARM accepts request bodies up to 4 MiB */
    o.handler = on_request;
    o.ud = srv;
    int rc = http_server_new(loop, &o, &srv->http);
    if (rc) {
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int azsim_server_port(const azsim_server_t *srv)
{
    return http_server_port(srv->http);
}

static void on_http_freed(void *arg)
{
    azsim_server_t *srv = arg;
    srv->http = NULL;
    srv->http_gone = 1;
    /* Exchanges closed first, so no delay is left waiting for one. */
    while (!d8_list_empty(&srv->delayed))
        drop(d8_container_of(srv->delayed.next, delayed_t, link));
    maybe_done(srv);
}

void azsim_server_close(azsim_server_t *srv, void (*done)(void *arg), void *arg)
{
    srv->done = done;
    srv->done_arg = arg;
    http_server_free(srv->http, on_http_freed, srv);
}
