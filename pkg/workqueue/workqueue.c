#include "workqueue.h"

#include "base/base.h"
#include "base/heap.h"
#include "base/list.h"
#include "base/map.h"

#include <stdlib.h>
#include <string.h>

typedef enum { ST_IDLE, ST_READY, ST_DELAYED, ST_ACTIVE } item_state_t;

typedef struct item {
    char *key;
    item_state_t state;
    int dirty;       /* added while active */
    uint64_t due_ms; /* ST_DELAYED: due time; ST_ACTIVE: pending
                        delayed add (0 = none) */
    size_t heap_idx; /* in q->delayed while ST_DELAYED */
    uint64_t ready_since_ms;
    int failures;
    int urgent;     /* interactive: served before bulk keys */
    d8_list_t link; /* in a ready FIFO while ST_READY */
} item_t;

struct workqueue {
    uv_loop_t *loop;
    workqueue_opts_t o;
    d8_map_t items;
    d8_list_t ready[2]; /* ready FIFOs: [1] urgent keys, [0] the rest */
    size_t nready;      /* items in both FIFOs */
    d8_heap_t delayed;  /* item_t *, by due_ms */
    size_t active;
    int paused;
    uv_timer_t delay_timer;
    uv_timer_t kick_timer;
    int closing;
    workqueue_stats_t st;
    uint64_t rng; /* d8_rand01 state: backoff jitter */
};

/* ---- the delay heap ------------------------------------------------------ */

static int due_less(const void *a, const void *b)
{
    return (*(item_t *const *)a)->due_ms < (*(item_t *const *)b)->due_ms;
}

static void heap_moved(void *slot, size_t idx)
{
    (*(item_t **)slot)->heap_idx = idx;
}

static item_t *first_delayed(const workqueue_t *q)
{
    return q->delayed.count ? *(item_t **)d8_heap_top(&q->delayed) : NULL;
}

/* ---- scheduling ------------------------------------------------------------ */

static void kick_cb(uv_timer_t *t);
static void delay_cb(uv_timer_t *t);

static void arm_delay_timer(workqueue_t *q)
{
    if (q->closing)
        return;
    item_t *first = first_delayed(q);
    if (!first) {
        uv_timer_stop(&q->delay_timer);
        return;
    }
    uint64_t now = uv_now(q->loop);
    uint64_t due = first->due_ms;
    uv_timer_start(&q->delay_timer, delay_cb, due > now ? due - now : 0, 0);
}

static void kick(workqueue_t *q)
{
    if (!q->closing && !q->paused && q->nready && q->active < q->o.max_active &&
        !uv_is_active((uv_handle_t *)&q->kick_timer))
        uv_timer_start(&q->kick_timer, kick_cb, 0, 0);
}

static void make_ready(workqueue_t *q, item_t *it)
{
    it->state = ST_READY;
    it->ready_since_ms = uv_now(q->loop);
    d8_list_push(&q->ready[it->urgent], &it->link);
    q->nready++;
    q->st.adds++;
    kick(q);
}

/* The next ready key: urgent ones first, each lane in FIFO order. */
static item_t *pop_ready(workqueue_t *q)
{
    d8_list_t *lane = !d8_list_empty(&q->ready[1]) ? &q->ready[1] : &q->ready[0];
    if (d8_list_empty(lane))
        return NULL;
    item_t *it = d8_container_of(lane->next, item_t, link);
    d8_list_del(&it->link);
    q->nready--;
    return it;
}

static item_t *get_item(workqueue_t *q, const char *key)
{
    item_t *it = d8_map_get(&q->items, key);
    if (!it) {
        it = d8_xcalloc(1, sizeof(*it));
        it->key = d8_xstrdup(key);
        d8_list_init(&it->link);
        d8_map_put(&q->items, it->key, it);
    }
    return it;
}

static void drop_item(workqueue_t *q, item_t *it)
{
    d8_map_del(&q->items, it->key);
    free(it->key);
    free(it);
}

static void kick_cb(uv_timer_t *t)
{
    workqueue_t *q = t->data;
    /* q->closing: the process callback may have freed the queue. */
    item_t *it;
    while (!q->closing && !q->paused && q->active < q->o.max_active && (it = pop_ready(q))) {
        it->state = ST_ACTIVE;
        it->dirty = 0;
        it->due_ms = 0;
        q->active++;
        double waited = (double)(uv_now(q->loop) - it->ready_since_ms) / 1000.0;
        q->st.queue_seconds_sum += waited;
        q->o.process(q->o.ud, it->key, waited);
    }
}

static void delay_cb(uv_timer_t *t)
{
    workqueue_t *q = t->data;
    uint64_t now = uv_now(q->loop);
    item_t *it;
    while ((it = first_delayed(q)) && it->due_ms <= now) {
        d8_heap_pop(&q->delayed, NULL);
        it->due_ms = 0;
        make_ready(q, it);
    }
    arm_delay_timer(q);
}

/* ---- public ------------------------------------------------------------- */

workqueue_t *workqueue_new(uv_loop_t *loop, const workqueue_opts_t *opts)
{
    workqueue_t *q = d8_xcalloc(1, sizeof(*q));
    q->loop = loop;
    q->o = *opts;
    if (!q->o.max_active)
        q->o.max_active = 16;
    if (!q->o.backoff_base_ms)
        q->o.backoff_base_ms = 1000;
    if (!q->o.backoff_cap_ms)
        q->o.backoff_cap_ms = 300000;
    d8_map_init(&q->items);
    d8_list_init(&q->ready[0]);
    d8_list_init(&q->ready[1]);
    d8_heap_init(&q->delayed, sizeof(item_t *), due_less, heap_moved);
    uv_timer_init(loop, &q->delay_timer);
    uv_timer_init(loop, &q->kick_timer);
    q->delay_timer.data = q->kick_timer.data = q;
    q->rng = d8_rand_seed();
    return q;
}

static void closed_cb(uv_handle_t *h)
{
    workqueue_t *q = h->data;
    if (--q->closing > 0)
        return;
    size_t i = 0;
    item_t *it;
    while ((it = d8_map_next(&q->items, &i))) {
        free(it->key);
        free(it);
    }
    d8_map_release(&q->items);
    d8_heap_release(&q->delayed);
    free(q);
}

void workqueue_free(workqueue_t *q)
{
    if (!q || q->closing)
        return;
    q->closing = 2;
    uv_close((uv_handle_t *)&q->delay_timer, closed_cb);
    uv_close((uv_handle_t *)&q->kick_timer, closed_cb);
}

void workqueue_add(workqueue_t *q, const char *key)
{
    if (q->closing)
        return;
    item_t *it = get_item(q, key);
    switch (it->state) {
    case ST_IDLE:
        make_ready(q, it);
        break;
    case ST_READY:
        break;
    case ST_DELAYED:
        d8_heap_remove(&q->delayed, it->heap_idx, NULL);
        it->due_ms = 0;
        arm_delay_timer(q);
        make_ready(q, it);
        break;
    case ST_ACTIVE:
        it->dirty = 1;
        break;
    }
}

void workqueue_add_urgent(workqueue_t *q, const char *key)
{
    if (q->closing)
        return;
    item_t *it = get_item(q, key);
    if (it->state == ST_READY && !it->urgent) {
        /* Move it ahead of the bulk keys, keeping the time it became ready. */
        d8_list_del(&it->link);
        d8_list_push(&q->ready[1], &it->link);
    }
    it->urgent = 1;
    workqueue_add(q, key);
}

void workqueue_set_urgent(workqueue_t *q, const char *key, int urgent)
{
    item_t *it = d8_map_get(&q->items, key);
    if (it && it->state != ST_READY)
        it->urgent = urgent != 0;
}

int workqueue_urgent(const workqueue_t *q, const char *key)
{
    const item_t *it = d8_map_get(&q->items, key);
    return it && it->urgent;
}

void workqueue_add_after(workqueue_t *q, const char *key, uint64_t delay_ms)
{
    if (q->closing)
        return;
    if (delay_ms == 0) {
        workqueue_add(q, key);
        return;
    }
    uint64_t due = uv_now(q->loop) + delay_ms;
    item_t *it = get_item(q, key);
    switch (it->state) {
    case ST_IDLE:
        it->state = ST_DELAYED;
        it->due_ms = due;
        d8_heap_push(&q->delayed, &it);
        arm_delay_timer(q);
        break;
    case ST_READY:
        break;
    case ST_DELAYED:
        if (due < it->due_ms) {
            it->due_ms = due;
            d8_heap_fix(&q->delayed, it->heap_idx);
            arm_delay_timer(q);
        }
        break;
    case ST_ACTIVE:
        if (!it->due_ms || due < it->due_ms)
            it->due_ms = due;
        break;
    }
}

uint64_t workqueue_done(workqueue_t *q, const char *key, int err, uint64_t requeue_ms)
{
    item_t *it = d8_map_get(&q->items, key);
    if (!it || it->state != ST_ACTIVE)
        return 0;
    q->active--;
    q->st.processed++;
    uint64_t pending_due = it->due_ms;
    int dirty = it->dirty;
    it->state = ST_IDLE;
    it->dirty = 0;
    it->due_ms = 0;
    uint64_t delay = requeue_ms;
    if (err < 0) {
        it->failures++;
        q->st.retries++;
        delay = d8_backoff_ms((unsigned)it->failures, q->o.backoff_base_ms, q->o.backoff_cap_ms,
                              d8_rand01(&q->rng));
        /* A 1 ms base jitters down to 0, which would drop the key. */
        if (!delay)
            delay = 1;
    } else {
        it->failures = 0;
    }
    uint64_t now = uv_now(q->loop);
    if (dirty && err >= 0) {
        make_ready(q, it);
        delay = 0;
    } else {
        if (pending_due) {
            uint64_t d = pending_due > now ? pending_due - now : 1;
            /* A failure's backoff wins over an earlier poll. */
            if (err >= 0 && (!delay || d < delay))
                delay = d;
        }
        if (delay)
            workqueue_add_after(q, key, delay);
        else if (dirty)
            make_ready(q, it);
        else
            drop_item(q, it);
    }
    kick(q);
    return delay;
}

void workqueue_forget(workqueue_t *q, const char *key)
{
    item_t *it = d8_map_get(&q->items, key);
    if (it && it->state == ST_IDLE)
        drop_item(q, it);
}

int workqueue_failures(const workqueue_t *q, const char *key)
{
    item_t *it = d8_map_get(&q->items, key);
    return it ? it->failures : 0;
}

void workqueue_pause(workqueue_t *q)
{
    q->paused = 1;
    uv_timer_stop(&q->kick_timer);
}

void workqueue_stats(const workqueue_t *q, workqueue_stats_t *out)
{
    *out = q->st;
    out->depth = q->nready;
    out->delayed = q->delayed.count;
    out->active = q->active;
}
