#include "heap.h"

#include "base.h"

#include <stdlib.h>
#include <string.h>

/* Scratch slots after the items: the one being sifted, the one leaving. */
#define SIFT(h) ((h)->v + (h)->cap * (h)->size)
#define GONE(h) ((h)->v + ((h)->cap + 1) * (h)->size)

static unsigned char *slot(const d8_heap_t *h, size_t i)
{
    return h->v + i * h->size;
}

/* Copies the item at `from` (a slot or a scratch slot) into slot i. */
static void place(d8_heap_t *h, size_t i, const void *from)
{
    memcpy(slot(h, i), from, h->size);
    if (h->moved)
        h->moved(slot(h, i), i);
}

void d8_heap_init(d8_heap_t *h, size_t item_size, d8_heap_less_fn less, d8_heap_moved_fn moved)
{
    memset(h, 0, sizeof(*h));
    h->size = item_size ? item_size : 1;
    h->less = less;
    h->moved = moved;
}

void d8_heap_release(d8_heap_t *h)
{
    free(h->v);
    h->v = NULL;
    h->count = h->cap = 0;
}

/* Moves the item at i towards the root while it is less than its parent;
 * returns where it ends. Parents move down into the hole, so each level
 * costs one copy instead of a swap. */
static size_t sift_up(d8_heap_t *h, size_t i)
{
    unsigned char *tmp = SIFT(h);
    memcpy(tmp, slot(h, i), h->size);
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!h->less(tmp, slot(h, parent)))
            break;
        place(h, i, slot(h, parent));
        i = parent;
    }
    place(h, i, tmp);
    return i;
}

/* Moves the item at i towards the leaves while a child is less than it,
 * taking the lesser child (the left one on a tie); returns where it ends. */
static size_t sift_down(d8_heap_t *h, size_t i)
{
    unsigned char *tmp = SIFT(h);
    memcpy(tmp, slot(h, i), h->size);
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const unsigned char *best = tmp;
        if (l < h->count && h->less(slot(h, l), best)) {
            m = l;
            best = slot(h, l);
        }
        if (r < h->count && h->less(slot(h, r), best))
            m = r;
        if (m == i)
            break;
        place(h, i, slot(h, m));
        i = m;
    }
    place(h, i, tmp);
    return i;
}

void d8_heap_push(d8_heap_t *h, const void *item)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        /* Two scratch slots ride behind the items (see SIFT and GONE). */
        h->v = d8_xrealloc(h->v, (cap + 2) * h->size);
        h->cap = cap;
    }
    place(h, h->count++, item);
    sift_up(h, h->count - 1);
}

void *d8_heap_top(const d8_heap_t *h)
{
    return h->count ? slot(h, 0) : NULL;
}

void *d8_heap_at(const d8_heap_t *h, size_t idx)
{
    return idx < h->count ? slot(h, idx) : NULL;
}

void d8_heap_remove(d8_heap_t *h, size_t idx, void *out)
{
    if (idx >= h->count)
        return;
    unsigned char *gone = GONE(h);
    memcpy(gone, slot(h, idx), h->size);
    h->count--;
    if (idx != h->count) {
        /* The last item fills the hole, then goes wherever it belongs:
         * down, or (when it came from another subtree) up. */
        place(h, idx, slot(h, h->count));
        if (sift_down(h, idx) == idx)
            sift_up(h, idx);
    }
    if (h->moved)
        h->moved(gone, D8_HEAP_NONE);
    if (out)
        memcpy(out, gone, h->size);
}

int d8_heap_pop(d8_heap_t *h, void *out)
{
    if (!h->count)
        return 0;
    d8_heap_remove(h, 0, out);
    return 1;
}

void d8_heap_fix(d8_heap_t *h, size_t idx)
{
    if (idx < h->count && sift_down(h, idx) == idx)
        sift_up(h, idx);
}
