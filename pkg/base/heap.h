/*
 * A binary min-heap of fixed-size items: pointers to the caller's structs,
 * or small structs copied in and out. `less` orders them; equal items come
 * out in no particular order (add a sequence number to the key for FIFO
 * ties).
 *
 * A caller that removes or re-keys an item in the middle passes `moved`:
 * it is told every item's new index as the item moves, and D8_HEAP_NONE
 * when the item leaves the heap, so the item can remember where it is.
 *
 * Pointer items, for example:
 *
 *   static int less(const void *a, const void *b)
 *   {
 *       return (*(job_t *const *)a)->due < (*(job_t *const *)b)->due;
 *   }
 *   static void moved(void *item, size_t idx) { (*(job_t **)item)->heap_idx = idx; }
 *
 *   d8_heap_init(&h, sizeof(job_t *), less, moved);
 *   d8_heap_push(&h, &job);
 *   job_t *first = *(job_t **)d8_heap_top(&h);
 */
#ifndef D8_HEAP_H
#define D8_HEAP_H

#include <stddef.h>

/* Nonzero when item a must come out before item b. Both point into the
 * heap's own storage (or at the item being pushed). */
typedef int (*d8_heap_less_fn)(const void *a, const void *b);
/* The item at `item` (in the heap's storage) now sits at idx, or has left
 * the heap (idx D8_HEAP_NONE; `item` is then the copy handed out). */
typedef void (*d8_heap_moved_fn)(void *item, size_t idx);

#define D8_HEAP_NONE ((size_t)-1)

/* Embedded by callers; `count` is theirs to read, the rest is private. A
 * zeroed heap is empty and safe to release. */
typedef struct d8_heap {
    unsigned char *v; /* cap items, then two scratch slots */
    size_t count;
    size_t cap;
    size_t size;
    d8_heap_less_fn less;
    d8_heap_moved_fn moved;
} d8_heap_t;

/* An empty heap of items of item_size bytes; moved may be NULL. */
void d8_heap_init(d8_heap_t *h, size_t item_size, d8_heap_less_fn less, d8_heap_moved_fn moved);
/* Frees the storage; what pointer items point to stays the caller's. */
void d8_heap_release(d8_heap_t *h);
/* Copies item (borrowed) in. */
void d8_heap_push(d8_heap_t *h, const void *item);
/* The least item, in place (valid until the heap changes), or NULL. */
void *d8_heap_top(const d8_heap_t *h);
/* The item at idx (0 <= idx < count), in place: for walking every item. */
void *d8_heap_at(const d8_heap_t *h, size_t idx);
/* Copies the least item to out (may be NULL) and removes it; 0 when the
 * heap was empty. */
int d8_heap_pop(d8_heap_t *h, void *out);
/* Copies the item at idx to out (may be NULL) and removes it. */
void d8_heap_remove(d8_heap_t *h, size_t idx, void *out);
/* Restores the order after the key of the item at idx changed. */
void d8_heap_fix(d8_heap_t *h, size_t idx);

#endif
