/*
 * pkg/store full sync: replaces the whole desired set, at once
 * (store_sync) or in steps between which the loop turns (store_sync_begin,
 * store_sync_step, store_sync_end; the API's large syncs).
 */
#include "store.h"
#include "store_int.h"

#include "base/base.h"

#include <stdlib.h>
#include <string.h>

struct store_sync_run {
    store_sync_item_t *items; /* borrowed */
    size_t n;
    store_sync_item_t **byid;     /* items sorted by id */
    char (*old)[SPEC_ID_MAX + 1]; /* ids of the objects at begin */
    size_t nold;
    size_t iold; /* next old id to check */
    size_t iput; /* next item to put */
    store_sync_counts_t counts;
};

static int cmp_item_ptr(const void *a, const void *b)
{
    const store_sync_item_t *x = *(store_sync_item_t *const *)a;
    const store_sync_item_t *y = *(store_sync_item_t *const *)b;
    return strcmp(x->id, y->id);
}

static int item_present(store_sync_item_t **byid, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(byid[mid]->id, id);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static void collect_id(void *ud, const env_obj_t *obj)
{
    store_sync_run_t *run = ud;
    memcpy(run->old[run->nold++], obj->id, SPEC_ID_MAX + 1);
}

store_sync_run_t *store_sync_begin(store_t *st, store_sync_item_t *items, size_t n)
{
    store_sync_run_t *run = d8_xcalloc(1, sizeof(*run));
    run->items = items;
    run->n = n;
    run->byid = d8_xmalloc((n ? n : 1) * sizeof(*run->byid));
    for (size_t i = 0; i < n; i++)
        run->byid[i] = &items[i];
    qsort(run->byid, n, sizeof(*run->byid), cmp_item_ptr);
    size_t count = store_count(st);
    run->old = d8_xmalloc((count ? count : 1) * sizeof(*run->old));
    store_list(st, NULL, NULL, count, collect_id, run);
    return run;
}

/* One item of the set: put, unless an explicit DELETE of it is in progress. */
static void put_item(store_t *st, store_sync_run_t *run, store_sync_item_t *it)
{
    const env_obj_t *o = store_get(st, it->id);
    if (o && o->status.phase == PHASE_DELETING && !o->removed) {
        /* An explicit DELETE is in progress: let it finish. */
        spec_release(&it->spec);
        run->counts.unchanged++;
        return;
    }
    store_put_result_t r;
    store_put(st, it->id, &it->spec, -1, 0, &r, NULL);
    if (r == PUT_CREATED)
        run->counts.created++;
    else if (r == PUT_UPDATED)
        run->counts.updated++;
    else
        run->counts.unchanged++;
}

int store_sync_step(store_t *st, store_sync_run_t *run, size_t budget)
{
    store__set_bulk(st, 1);
    /* First mark what left the desired set, then put every item. */
    for (; budget > 0 && run->iold < run->nold; budget--, run->iold++) {
        const char *id = run->old[run->iold];
        if (!item_present(run->byid, run->n, id) && store__remove_from_set(st, id))
            run->counts.removed++;
    }
    for (; budget > 0 && run->iput < run->n; budget--, run->iput++)
        put_item(st, run, &run->items[run->iput]);
    store__set_bulk(st, 0);
    return run->iold == run->nold && run->iput == run->n;
}

void store_sync_end(store_t *st, store_sync_run_t *run, store_sync_counts_t *counts)
{
    store__mark_synced(st);
    *counts = run->counts;
    free(run->byid);
    free(run->old);
    free(run);
}

void store_sync(store_t *st, store_sync_item_t *items, size_t n, store_sync_counts_t *counts)
{
    store_sync_run_t *run = store_sync_begin(st, items, n);
    store_sync_step(st, run, SIZE_MAX);
    store_sync_end(st, run, counts);
}
