/*
 * A string-keyed hash map (open addressing, linear probing, backward-shift
 * deletion). Keys are borrowed: each must stay valid and unchanged while
 * its entry is in the map (usually it lives inside the value).
 */
#ifndef D8_MAP_H
#define D8_MAP_H

#include <stddef.h>

typedef struct d8_map_slot {
    const char *key;
    void *value;
} d8_map_slot_t;

/* Embedded by callers; fields are private to map.c except `count`. */
typedef struct d8_map {
    d8_map_slot_t *slots;
    size_t nslots;
    size_t count;
} d8_map_t;

/* An empty map with 16 slots; release it with d8_map_release. */
void d8_map_init(d8_map_t *m);
/* Frees the slot array only (values are the caller's). */
void d8_map_release(d8_map_t *m);
void *d8_map_get(const d8_map_t *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *d8_map_put(d8_map_t *m, const char *key, void *value);
/* Removes key; returns its value or NULL. */
void *d8_map_del(d8_map_t *m, const char *key);
/*
 * Iteration: i starts at 0; returns the next occupied slot's value and
 * advances *i, or NULL at the end. The map must not change meanwhile.
 */
void *d8_map_next(const d8_map_t *m, size_t *i);

#endif
