/*
 * An intrusive circular doubly-linked list. A list head and its members
 * are the same d8_list_t; a member is embedded in the struct it links and
 * found again with d8_container_of. The list owns nothing: linking and
 * unlinking never allocate or free, the caller owns every node.
 *
 * Header-only (static inline) because the operations are a few pointer
 * moves that every caller wants inlined.
 */
#ifndef D8_LIST_H
#define D8_LIST_H

#include <stddef.h>

typedef struct d8_list {
    struct d8_list *prev, *next;
} d8_list_t;

/* The struct of type `type` whose field `member` is at `ptr`. */
#define d8_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Makes h an empty list (or an unlinked node, safe to d8_list_del). */
static inline void d8_list_init(d8_list_t *h)
{
    h->prev = h->next = h;
}

static inline int d8_list_empty(const d8_list_t *h)
{
    return h->next == h;
}

/* Links n just before h: at the tail when h is a list head. */
static inline void d8_list_push(d8_list_t *h, d8_list_t *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

/* Unlinks n and leaves it self-linked, so a second d8_list_del is a
 * no-op and d8_list_empty(n) tells whether it is linked. */
static inline void d8_list_del(d8_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
