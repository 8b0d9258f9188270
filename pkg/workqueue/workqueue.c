#include "workqueue.h"

#include "base/base.h"
#include "base/map.h"

#include <stdlib.h>
#include <string.h>

typedef enum { ST_IDLE, ST_READY, ST_DELAYED, ST_ACTIVE } item_state_t;

typedef struct item {
    char *key;
    item_state_t state;
    int dirty;                 /* added while active */
    uint64_t due_ms;           /* ST_DELAYED: due time; ST_ACTIVE: pending
                                  delayed add (0 = none) */
    size_t heap_idx;
    uint64_t ready_since_ms;
    int failures;
    struct item *next;         /* ready FIFO */
} item_t;

struct workqueue {
    uv_loop_t *loop;
    workqueue_opts_t o;
    d8_map_t items;
    item_t *head, *tail;       /* ready FIFO */
    size_t nready;             /* items in the FIFO */
    item_t **heap;             /* delayed, min-heap by due_ms */
    size_t nheap, capheap;
    size_t active;
    int paused;
    uv_timer_t delay_timer;
    uv_timer_t kick_timer;
    int closing;
    workqueue_stats_t st;
    uint64_t rng; /* d8_rand01 state: backoff jitter */
};

/* ---- heap ---------------------------------------------------------------- */

static void heap_swap(workqueue_t *q, size_t a, size_t b)
{
    item_t *t = q->heap[a];
    q->heap[a] = q->heap[b];
    q->heap[b] = t;
    q->heap[a]->heap_idx = a;
    q->heap[b]->heap_idx = b;
}

static void heap_up(workqueue_t *q, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q->heap[p]->due_ms <= q->heap[i]->due_ms)
            break;
        heap_swap(q, p, i);
        i = p;
    }
}

static void heap_down(workqueue_t *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->nheap && q->heap[l]->due_ms < q->heap[m]->due_ms)
            m = l;
        if (r < q->nheap && q->heap[r]->due_ms < q->heap[m]->due_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(q, i, m);
        i = m;
    }
}

static void heap_push(workqueue_t *q, item_t *it)
{
    if (q->nheap == q->capheap) {
        q->capheap = q->capheap ? q->capheap * 2 : 64;
        q->heap = d8_xrealloc(q->heap, q->capheap * sizeof(item_t *));
    }
    it->heap_idx = q->nheap;
    q->heap[q->nheap++] = it;
    heap_up(q, it->heap_idx);
}

static void heap_remove(workqueue_t *q, item_t *it)
{
    size_t i = it->heap_idx;
    q->nheap--;
    if (i != q->nheap) {
        q->heap[i] = q->heap[q->nheap];
        q->heap[i]->heap_idx = i;
        heap_down(q, i);
        heap_up(q, i);
    }
}

/* ---- scheduling ------------------------------------------------------------ */

static void kick_cb(uv_timer_t *t);
static void delay_cb(uv_timer_t *t);

static void arm_delay_timer(workqueue_t *q)
{
    if (q->closing)
        return;
    if (!q->nheap) {
        uv_timer_stop(&q->delay_timer);
        return;
    }
    uint64_t now = uv_now(q->loop);
    uint64_t due = q->heap[0]->due_ms;
    uv_timer_start(&q->delay_timer, delay_cb, due > now ? due - now : 0, 0);
}

static void kick(workqueue_t *q)
{
    if (!q->closing && !q->paused && q->head && q->active < q->o.max_active &&
        !uv_is_active((uv_handle_t *)&q->kick_timer))
        uv_timer_start(&q->kick_timer, kick_cb, 0, 0);
}

static void make_ready(workqueue_t *q, item_t *it)
{
    it->state = ST_READY;
    it->next = NULL;
    it->ready_since_ms = uv_now(q->loop);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->nready++;
    q->st.adds++;
    kick(q);
}

static item_t *get_item(workqueue_t *q, const char *key)
{
    item_t *it = d8_map_get(&q->items, key);
    if (!it) {
        it = d8_xcalloc(1, sizeof(*it));
        it->key = d8_xstrdup(key);
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
    while (!q->closing && !q->paused && q->head && q->active < q->o.max_active) {
        item_t *it = q->head;
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        q->nready--;
        it->next = NULL;
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
    while (q->nheap && q->heap[0]->due_ms <= now) {
        item_t *it = q->heap[0];
        heap_remove(q, it);
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
    free(q->heap);
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
        heap_remove(q, it);
        it->due_ms = 0;
        arm_delay_timer(q);
        make_ready(q, it);
        break;
    case ST_ACTIVE:
        it->dirty = 1;
        break;
    }
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
        heap_push(q, it);
        arm_delay_timer(q);
        break;
    case ST_READY:
        break;
    case ST_DELAYED:
        if (due < it->due_ms) {
            it->due_ms = due;
            heap_up(q, it->heap_idx);
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
    out->delayed = q->nheap;
    out->active = q->active;
}
