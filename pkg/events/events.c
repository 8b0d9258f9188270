#include "events.h"

#include "base/map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ring {
    char id[64];
    size_t head, n, cap; /* oldest at head; cap grows to EVENTS_PER_ENV */
    env_event_t *items;
} ring_t;

struct events {
    d8_map_t rings; /* id -> ring_t */
    size_t total;
    void (*fn)(void *ud, const char *id, const env_event_t *e);
    void *ud;
};

static void ring_free(ring_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->items[(r->head + i) % r->cap].message);
    free(r->items);
    free(r);
}

events_t *events_new(void)
{
    events_t *ev = d8_xcalloc(1, sizeof(*ev));
    d8_map_init(&ev->rings);
    return ev;
}

void events_free(events_t *ev)
{
    if (!ev)
        return;
    size_t i = 0;
    ring_t *r;
    while ((r = d8_map_next(&ev->rings, &i)))
        ring_free(r);
    d8_map_release(&ev->rings);
    free(ev);
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* The newest event of r, or NULL. */
static env_event_t *newest(ring_t *r)
{
    return r->n ? &r->items[(r->head + r->n - 1) % r->cap] : NULL;
}

/* Room for one more event: the ring grows (unrolled to start at 0) until
 * it holds EVENTS_PER_ENV, then the oldest goes. */
static void make_room(events_t *ev, ring_t *r)
{
    if (r->n < r->cap)
        return;
    if (r->cap < EVENTS_PER_ENV) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        cap = cap < EVENTS_PER_ENV ? cap : EVENTS_PER_ENV;
        env_event_t *items = d8_xcalloc(cap, sizeof(*items));
        for (size_t i = 0; i < r->n; i++)
            items[i] = r->items[(r->head + i) % r->cap];
        free(r->items);
        r->items = items;
        r->cap = cap;
        r->head = 0;
        return;
    }
    free(r->items[r->head].message);
    r->head = (r->head + 1) % r->cap;
    r->n--;
    ev->total--;
}

void events_add(events_t *ev, const char *id, const char *type, const char *reason,
                const char *source, int64_t time_ms, int count, const char *message)
{
    if (!ev || !id || strlen(id) >= sizeof(((ring_t *)0)->id))
        return;
    ring_t *r = d8_map_get(&ev->rings, id);
    if (!r) {
        r = d8_xcalloc(1, sizeof(*r));
        copy(r->id, sizeof(r->id), id);
        d8_map_put(&ev->rings, r->id, r);
    }
    env_event_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.time_ms = time_ms ? time_ms : d8_wall_ms();
    copy(tmp.type, sizeof(tmp.type), type);
    copy(tmp.reason, sizeof(tmp.reason), reason);
    copy(tmp.source, sizeof(tmp.source), source);
    tmp.count = count > 0 ? count : 1;
    size_t mlen = message ? strlen(message) : 0;
    mlen = mlen < EVENTS_MESSAGE_MAX ? mlen : EVENTS_MESSAGE_MAX;
    env_event_t *last = newest(r);
    if (last && strcmp(last->type, tmp.type) == 0 && strcmp(last->reason, tmp.reason) == 0 &&
        strcmp(last->source, tmp.source) == 0 && strlen(last->message) == mlen &&
        memcmp(last->message, message ? message : "", mlen) == 0) {
        /* A repeat: Azure's count is its own total; ours counts up. */
        last->count = strcmp(tmp.source, "azure") == 0 ? tmp.count : last->count + 1;
        last->time_ms = tmp.time_ms;
    } else {
        make_room(ev, r);
        tmp.message = d8_xstrndup(message ? message : "", mlen);
        r->items[(r->head + r->n) % r->cap] = tmp;
        r->n++;
        ev->total++;
        last = newest(r);
    }
    if (ev->fn)
        ev->fn(ev->ud, r->id, last);
}

void events_forget(events_t *ev, const char *id)
{
    if (!ev)
        return;
    ring_t *r = d8_map_del(&ev->rings, id);
    if (r) {
        ev->total -= r->n;
        ring_free(r);
    }
}

void events_item_json(const env_event_t *e, d8_buf_t *out)
{
    char ts[32];
    d8_rfc3339(e->time_ms, ts);
    d8_buf_puts(out, "{\"time\":");
    d8_buf_json_str(out, ts);
    d8_buf_puts(out, ",\"type\":");
    d8_buf_json_str(out, e->type);
    d8_buf_puts(out, ",\"reason\":");
    d8_buf_json_str(out, e->reason);
    d8_buf_puts(out, ",\"message\":");
    d8_buf_json_str(out, e->message);
    d8_buf_puts(out, ",\"source\":");
    d8_buf_json_str(out, e->source);
    d8_buf_printf(out, ",\"count\":%d}", e->count);
}

void events_json(const events_t *ev, const char *id, d8_buf_t *out)
{
    d8_buf_puts(out, "{\"environmentId\":");
    d8_buf_json_str(out, id);
    d8_buf_puts(out, ",\"items\":[");
    const ring_t *r = ev ? d8_map_get(&ev->rings, id) : NULL;
    for (size_t i = 0; r && i < r->n; i++) {
        if (i)
            d8_buf_putc(out, ',');
        events_item_json(&r->items[(r->head + i) % r->cap], out);
    }
    d8_buf_puts(out, "]}");
}

void events_on_add(events_t *ev, void (*fn)(void *ud, const char *id, const env_event_t *e),
                   void *ud)
{
    ev->fn = fn;
    ev->ud = ud;
}

size_t events_count(const events_t *ev)
{
    return ev ? ev->total : 0;
}
