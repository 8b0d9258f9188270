/*
 * pkg/api: GET /api/v1/environments/{id}/logs — the workspace container's
 * log, read through ARM by the controller (the logs hook) and answered as
 * text/plain when Azure answers.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGS_TAIL_DEFAULT 200
#define LOGS_TAIL_MAX 10000

/* GET /api/v1/environments/{id}/events: the ring, oldest first. */
void api__env_events(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)req;
    if (!store_get(api->store, id)) {
        http_respond_error(ex, 404, "NotFound", "no environment with this id", NULL);
        return;
    }
    d8_buf_t b;
    d8_buf_init(&b);
    events_json(api->opts.events, id, &b);
    api__respond_json(ex, 200, NULL, 0, b.data, b.len);
    d8_buf_release(&b);
}

/* An event was recorded: `event: EVENT` (no id: it is not a resource
 * version to resume from) on every open watch stream. */
static void broadcast(void *ud, const char *id, const env_event_t *e)
{
    api_t *api = ud;
    if (!api->nwatchers)
        return;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "event: EVENT\ndata: {\"environmentId\":");
    d8_buf_json_str(&b, id);
    d8_buf_puts(&b, ",\"event\":");
    events_item_json(e, &b);
    d8_buf_puts(&b, "}\n\n");
    /* The next one is read first: a failed write frees the client. */
    d8_list_t *it = api->watchers.next;
    while (it != &api->watchers) {
        api__watch_client_t *c = d8_container_of(it, api__watch_client_t, link);
        it = it->next;
        /* A stream still sending its snapshot gets live events only after
         * it (the events route has what it missed). */
        if (c->w)
            http_stream_write(c->ex, b.data, b.len);
    }
    d8_buf_release(&b);
}

void api__events_start(api_t *api)
{
    if (api->opts.events)
        events_on_add(api->opts.events, broadcast, api);
}

void api__events_stop(api_t *api)
{
    if (api->opts.events)
        events_on_add(api->opts.events, NULL, NULL);
}

/* One logs request waiting for Azure; ex is NULL once the client left. */
typedef struct logs_wait {
    http_exchange_t *ex;
} logs_wait_t;

static void logs_client_gone(void *ud)
{
    logs_wait_t *w = ud;
    w->ex = NULL;
}

static void logs_done(void *arg, int status, const char *code, const char *message,
                      const char *text, size_t len)
{
    logs_wait_t *w = arg;
    if (w->ex) {
        http_exchange_on_close(w->ex, NULL, NULL);
        if (status == 200)
            http_respond(w->ex, 200, NULL, 0, "text/plain; charset=utf-8", text, len);
        else
            http_respond_error(w->ex, status, code, message, NULL);
    }
    free(w);
}

/* ?tail: 1..10000, default 200; -1 after answering 400. */
static int tail_param(http_exchange_t *ex, const http_request_t *req)
{
    char buf[16];
    int n = http_query_param(req, "tail", buf, sizeof(buf));
    if (n == -1)
        return LOGS_TAIL_DEFAULT;
    char *end = NULL;
    long v = n > 0 ? strtol(buf, &end, 10) : 0;
    if (n < 1 || *end || v < 1 || v > LOGS_TAIL_MAX) {
        http_respond_error(ex, 400, "InvalidQuery", "tail must be an integer from 1 to 10000",
                           "tail");
        return -1;
    }
    return (int)v;
}

void api__env_logs(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    if (!store_get(api->store, id)) {
        http_respond_error(ex, 404, "NotFound", "no environment with this id", NULL);
        return;
    }
    int tail = tail_param(ex, req);
    if (tail < 0)
        return;
    logs_wait_t *w = d8_xcalloc(1, sizeof(*w));
    w->ex = ex;
    http_exchange_on_close(ex, logs_client_gone, w);
    int rc = api->opts.logs_hook(api->opts.logs_ud, id, tail, logs_done, w);
    if (rc == 0)
        return;
    http_exchange_on_close(ex, NULL, NULL);
    free(w);
    if (rc == D8_ENOENT)
        http_respond_error(ex, 409, "NoContainerGroup",
                           "the environment has no container group (stopped before one was "
                           "created, or not created yet)",
                           NULL);
    else if (rc == D8_ECANCELED)
        http_respond_error(ex, 503, "ShuttingDown", "the agent is shutting down", NULL);
    else
        http_respond_error(ex, 500, "InternalError", d8_strerror(rc), NULL);
}
