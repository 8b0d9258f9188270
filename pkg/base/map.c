#include "map.h"

#include "base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void d8_map_init(d8_map_t *m)
{
    m->nslots = 16;
    m->count = 0;
    m->slots = d8_xcalloc(m->nslots, sizeof(d8_map_slot_t));
}

void d8_map_release(d8_map_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->nslots = m->count = 0;
}

static size_t find(const d8_map_t *m, const char *key)
{
    size_t mask = m->nslots - 1;
    size_t i = (size_t)hash(key) & mask;
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

void *d8_map_get(const d8_map_t *m, const char *key)
{
    return m->slots[find(m, key)].value;
}

static void grow(d8_map_t *m)
{
    d8_map_slot_t *old = m->slots;
    size_t oldn = m->nslots;
    m->nslots *= 2;
    m->slots = d8_xcalloc(m->nslots, sizeof(d8_map_slot_t));
    for (size_t i = 0; i < oldn; i++)
        if (old[i].key)
            m->slots[find(m, old[i].key)] = old[i];
    free(old);
}

void *d8_map_put(d8_map_t *m, const char *key, void *value)
{
    size_t i = find(m, key);
    if (m->slots[i].key) {
        void *prev = m->slots[i].value;
        m->slots[i].key = key;
        m->slots[i].value = value;
        return prev;
    }
    if ((m->count + 1) * 4 > m->nslots * 3) {
        grow(m);
        i = find(m, key);
    }
    m->slots[i].key = key;
    m->slots[i].value = value;
    m->count++;
    return NULL;
}

void *d8_map_del(d8_map_t *m, const char *key)
{
    size_t mask = m->nslots - 1;
    size_t i = find(m, key);
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    m->slots[i].key = NULL;
    m->slots[i].value = NULL;
    /* Backward shift: move later members of the probe chain into the hole
     * unless their home slot lies cyclically in (i, j]. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        size_t home = (size_t)hash(m->slots[j].key) & mask;
        int in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            m->slots[j].value = NULL;
            i = j;
        }
    }
    m->count--;
    return value;
}

void *d8_map_next(const d8_map_t *m, size_t *i)
{
    while (*i < m->nslots) {
        size_t k = (*i)++;
        if (m->slots[k].key)
            return m->slots[k].value;
    }
    return NULL;
}
