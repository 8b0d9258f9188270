/*
 * pkg/api watch: GET /api/v1/watch as Server-Sent Events (replay or
 * snapshot, then every change) and the heartbeat of the open streams.
 */
#include "api_int.h"

#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WATCH_CLIENTS 1000

/* ---- watch (Server-Sent Events) --------------------------------------- */

static int send_event(http_exchange_t *ex, const store_event_t *ev)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_reserve(&b, ev->json_len + 64);
    d8_buf_printf(&b, "id: %llu\nevent: %s\ndata: ", (unsigned long long)ev->rv,
                  store_event_name(ev->type));
    d8_buf_append(&b, ev->json, ev->json_len);
    d8_buf_puts(&b, "\n\n");
    int rc = http_stream_write(ex, b.data, b.len);
    d8_buf_release(&b);
    return rc;
}

static void watch_event(void *ud, const store_event_t *ev)
{
    api__watch_client_t *c = ud;
    /* On failure the server closes the connection and our close callback
     * frees c; it must not be touched after a failed write. */
    send_event(c->ex, ev);
}

void api__watch_client_free(api__watch_client_t *c)
{
    api_t *api = c->api;
    store_unwatch(api->store, c->w);
    d8_list_del(&c->link);
    api->nwatchers--;
    free(c);
}

static void watch_closed(void *ud)
{
    api__watch_client_free(ud);
}

typedef struct replay_ctx {
    http_exchange_t *ex;
    int failed;
} replay_ctx_t;

static void replay_one(void *ud, const store_event_t *ev)
{
    replay_ctx_t *r = ud;
    if (!r->failed && send_event(r->ex, ev) != D8_OK)
        r->failed = 1;
}

typedef struct snapshot_ctx {
    store_t *store;
    http_exchange_t *ex;
    uint64_t rv;
    int failed;
} snapshot_ctx_t;

static void snapshot_one(void *ud, const env_obj_t *obj)
{
    snapshot_ctx_t *s = ud;
    if (s->failed)
        return;
    d8_buf_t json;
    d8_buf_init(&json);
    store_obj_json_append(s->store, obj, &json);
    store_event_t ev = {s->rv, EV_ADDED, obj->id, json.data, json.len, 0, 0};
    if (send_event(s->ex, &ev) != D8_OK)
        s->failed = 1;
    d8_buf_release(&json);
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/*
 * GET /api/v1/watch: replays events after resourceVersion (or
 * Last-Event-ID), or sends every object as ADDED when neither is given,
 * then keeps the stream open for every later change.
 */
void api__watch(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    char rv_s[32];
    uint64_t since = 0;
    int have_since = 0;
    const char *last = http_request_header(req, "last-event-id");
    if (last) {
        if (parse_u64(last, &since) != 0) {
            http_respond_error(ex, 400, "InvalidQuery", "Last-Event-ID must be a resourceVersion",
                               "Last-Event-ID");
            return;
        }
        have_since = 1;
    } else {
        int n = http_query_param(req, "resourceVersion", rv_s, sizeof(rv_s));
        if (n == -2 || (n >= 0 && parse_u64(rv_s, &since) != 0)) {
            http_respond_error(ex, 400, "InvalidQuery",
                               "resourceVersion must be a non-negative integer", "resourceVersion");
            return;
        }
        have_since = n >= 0;
    }
    if (api->nwatchers >= MAX_WATCH_CLIENTS) {
        static const http_header_t h = {"Retry-After", "5"};
        http_respond_error_h(ex, 429, &h, 1, "TooManyRequests",
                             "too many watch clients; retry later", NULL);
        return;
    }
    /* Newer than ours: from another run of the agent (or made up). Either
     * way the client must list again, as for one that is too old. */
    if (have_since &&
        (since > store_rv(api->store) || store_replay(api->store, since, NULL, NULL) == D8_EGONE)) {
        http_respond_error(ex, 410, "Gone",
                           "resourceVersion is too old or from another run of the agent: list "
                           "again and watch from the list's resourceVersion",
                           "resourceVersion");
        return;
    }
    static const http_header_t hdrs[] = {{"Cache-Control", "no-cache"},
                                         {"X-Accel-Buffering", "no"}};
    if (http_stream_start(ex, 200, hdrs, 2, "text/event-stream") != D8_OK)
        return;
    int failed;
    if (have_since) {
        replay_ctx_t r = {ex, 0};
        store_replay(api->store, since, replay_one, &r);
        failed = r.failed;
    } else {
        snapshot_ctx_t s = {api->store, ex, store_rv(api->store), 0};
        store_list(api->store, NULL, NULL, SIZE_MAX, snapshot_one, &s);
        failed = s.failed;
    }
    if (failed)
        return; /* the server is closing the connection */
    api__watch_client_t *c = d8_xcalloc(1, sizeof(*c));
    c->api = api;
    c->ex = ex;
    c->w = store_watch(api->store, watch_event, c);
    d8_list_push(&api->watchers, &c->link);
    api->nwatchers++;
    http_exchange_on_close(ex, watch_closed, c);
}

void api__heartbeat_cb(uv_timer_t *t)
{
    api_t *api = t->data;
    /* The next one is read first: a failed write frees the client. */
    d8_list_t *it = api->watchers.next;
    while (it != &api->watchers) {
        api__watch_client_t *c = d8_container_of(it, api__watch_client_t, link);
        it = it->next;
        http_stream_write(c->ex, ": heartbeat\n\n", 13);
    }
}
