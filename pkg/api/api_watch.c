/*
 * pkg/api watch: GET /api/v1/watch as Server-Sent Events (replay or
 * snapshot, then every change) and the heartbeat of the open streams.
 *
 * A snapshot (no resourceVersion) is written as the socket drains: a page
 * of objects at a time while less than SNAP_LOW bytes wait in the socket's
 * queue, and all the snapshots together for at most SNAP_TURN_NS per turn
 * of the loop (the watchers left over go on at the next turn), so that
 * neither a large store nor many watchers hold the loop, and a watcher
 * that does not read costs at most about SNAP_LOW + one page. The objects carry the
 * snapshot's resourceVersion as id; once all are sent, the events after
 * that resourceVersion are replayed from the ring (an object changed while
 * the snapshot was being sent may so come twice, its last state last), and
 * the stream follows.
 *
 * A watcher that falls behind (more than WATCH_MAX_PENDING bytes queued for
 * it) or whose snapshot outlasted the ring gets a final `event: ERROR` with
 * {"error":{"code":"Gone",...}} and the stream ends: like a 410, it must
 * list again and watch from the list's resourceVersion.
 */
#include "api_int.h"

#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WATCH_CLIENTS 1000
/* A snapshot is written while less than this waits in the socket's queue. */
#define SNAP_LOW (64u * 1024u)
/* Snapshot work of all watchers per turn of the loop. */
#define SNAP_TURN_NS (4u * 1000u * 1000u)
/* Objects rendered per page of a snapshot. */
#define SNAP_PAGE 32
/* A following watcher with more than this queued is cut (re-list). */
#define WATCH_MAX_PENDING (1024u * 1024u)

/* ---- watch (Server-Sent Events) --------------------------------------- */

static void append_event(d8_buf_t *b, const store_event_t *ev)
{
    d8_buf_reserve(b, b->len + ev->json_len + 64);
    d8_buf_printf(b, "id: %llu\nevent: %s\ndata: ", (unsigned long long)ev->rv,
                  store_event_name(ev->type));
    d8_buf_append(b, ev->json, ev->json_len);
    d8_buf_puts(b, "\n\n");
}

static int send_event(http_exchange_t *ex, const store_event_t *ev)
{
    d8_buf_t b;
    d8_buf_init(&b);
    append_event(&b, ev);
    int rc = http_stream_write(ex, b.data, b.len);
    d8_buf_release(&b);
    return rc;
}

static void idle_closed(uv_handle_t *h)
{
    free(h->data);
}

void api__watch_client_free(api__watch_client_t *c)
{
    api_t *api = c->api;
    if (c->w)
        store_unwatch(api->store, c->w);
    c->w = NULL;
    c->snapshot = 0;
    http_stream_on_drain(c->ex, NULL, NULL);
    d8_list_del(&c->link);
    api->nwatchers--;
    uv_close((uv_handle_t *)&c->idle, idle_closed);
}

/*
 * Ends the stream with a final ERROR event telling the client to list
 * again (why: reason), and frees c. Safe from inside a store delivery.
 */
static void cut(api__watch_client_t *c, const char *reason)
{
    http_exchange_t *ex = c->ex;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "event: ERROR\ndata: {\"error\":{\"code\":\"Gone\",\"message\":");
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: list again and watch from the list's resourceVersion", reason);
    d8_buf_json_str(&b, msg);
    d8_buf_puts(&b, "}}\n\n");
    LOG(LOG_WARN, "watch stream cut: the client must list again", LF_S("reason", reason),
        LF_S("request_id", http_exchange_request(ex)->request_id));
    http_exchange_on_close(ex, NULL, NULL);
    api__watch_client_free(c);
    if (http_stream_write(ex, b.data, b.len) == D8_OK)
        http_stream_end(ex);
    d8_buf_release(&b);
}

static void watch_event(void *ud, const store_event_t *ev)
{
    api__watch_client_t *c = ud;
    /* On failure the server closes the connection and our close callback
     * frees c; it must not be touched after a failed write. */
    if (send_event(c->ex, ev) != D8_OK)
        return;
    if (http_stream_pending(c->ex) > WATCH_MAX_PENDING)
        cut(c, "the client is not reading its events fast enough");
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

/* Follows the store from now on; 0, or -1 when the stream failed. */
static int follow(api__watch_client_t *c, uint64_t since)
{
    replay_ctx_t r = {c->ex, 0};
    if (store_replay(c->api->store, since, replay_one, &r) == D8_EGONE) {
        cut(c, "more changes happened while the snapshot was being sent than the ring holds");
        return -1;
    }
    if (r.failed)
        return -1; /* the server is closing the connection */
    c->w = store_watch(c->api->store, watch_event, c);
    return 0;
}

typedef struct page_ctx {
    api__watch_client_t *c;
    d8_buf_t *out;
} page_ctx_t;

static void page_one(void *ud, const env_obj_t *obj)
{
    page_ctx_t *p = ud;
    d8_buf_t json;
    d8_buf_init(&json);
    store_obj_json_append(p->c->api->store, obj, &json);
    store_event_t ev = {p->c->snap_rv, EV_ADDED, obj->id, json.data, json.len, 0, 0};
    append_event(p->out, &ev);
    d8_buf_release(&json);
    snprintf(p->c->cursor, sizeof(p->c->cursor), "%s", obj->id);
}

static void pump(api__watch_client_t *c);

static void drained(void *ud)
{
    pump(ud);
}

static void idle_cb(uv_idle_t *h)
{
    pump(h->data);
}

/* 1 while this turn of the loop has snapshot time left. */
static int turn_budget_left(api_t *api)
{
    uint64_t now = uv_now(api->loop);
    if (api->snap_turn != now) {
        api->snap_turn = now;
        api->snap_turn_ns = uv_hrtime();
        return 1;
    }
    return uv_hrtime() - api->snap_turn_ns < SNAP_TURN_NS;
}

/* Sends the next pages of the snapshot while the socket keeps up and the
 * turn's budget lasts. */
static void pump(api__watch_client_t *c)
{
    uv_idle_stop(&c->idle);
    while (c->snapshot) {
        if (http_stream_pending(c->ex) >= SNAP_LOW) {
            http_stream_on_drain(c->ex, drained, c);
            return;
        }
        if (!turn_budget_left(c->api)) {
            uv_idle_start(&c->idle, idle_cb);
            return;
        }
        d8_buf_t b;
        d8_buf_init(&b);
        page_ctx_t p = {c, &b};
        int more = store_list(c->api->store, c->cursor, NULL, SNAP_PAGE, page_one, &p);
        int rc = b.len ? http_stream_write(c->ex, b.data, b.len) : D8_OK;
        d8_buf_release(&b);
        if (rc != D8_OK)
            return; /* the server is closing the connection; its close frees c */
        if (!more) {
            c->snapshot = 0;
            follow(c, c->snap_rv);
            return;
        }
    }
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

/* The resourceVersion to resume after (Last-Event-ID wins over the
 * query): 1 with *since set, 0 when none was given, -1 after answering 400. */
static int watch_since(http_exchange_t *ex, const http_request_t *req, uint64_t *since)
{
    char rv_s[32];
    const char *last = http_request_header(req, "last-event-id");
    if (last) {
        if (parse_u64(last, since) != 0) {
            http_respond_error(ex, 400, "InvalidQuery", "Last-Event-ID must be a resourceVersion",
                               "Last-Event-ID");
            return -1;
        }
        return 1;
    }
    int n = http_query_param(req, "resourceVersion", rv_s, sizeof(rv_s));
    if (n == -2 || (n >= 0 && parse_u64(rv_s, since) != 0)) {
        http_respond_error(ex, 400, "InvalidQuery",
                           "resourceVersion must be a non-negative integer", "resourceVersion");
        return -1;
    }
    return n >= 0;
}

/*
 * GET /api/v1/watch: replays events after resourceVersion (or
 * Last-Event-ID), or sends every object as ADDED when neither is given,
 * then keeps the stream open for every later change.
 */
void api__watch(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    uint64_t since = 0;
    int have_since = watch_since(ex, req, &since);
    if (have_since < 0)
        return;
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
    api__watch_client_t *c = d8_xcalloc(1, sizeof(*c));
    c->api = api;
    c->ex = ex;
    uv_idle_init(api->loop, &c->idle);
    c->idle.data = c;
    d8_list_push(&api->watchers, &c->link);
    api->nwatchers++;
    http_exchange_on_close(ex, watch_closed, c);
    if (have_since) {
        follow(c, since);
        return;
    }
    c->snapshot = 1;
    c->snap_rv = store_rv(api->store);
    pump(c);
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
