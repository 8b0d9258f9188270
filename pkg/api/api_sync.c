/*
 * pkg/api full sync: PUT /api/v1/environments replaces the whole desired
 * set at once, all or nothing.
 */
#include "api_int.h"

#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- full sync -------------------------------------------------------- */

typedef struct id_index {
    const char *id;
    size_t index; /* position in the request's items */
} id_index_t;

static int cmp_id_index(const void *a, const void *b)
{
    const id_index_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void sync_items_free(store_sync_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        spec_release(&items[i].spec);
    free(items);
}

/* Fills err and returns 1 when two items share an id. Sorting (id, index)
 * pairs finds them in n log n and lets the error name the later item. */
static int duplicate_id(const store_sync_item_t *items, size_t n, spec_error_t *err)
{
    int dup = 0;
    id_index_t *order = d8_xmalloc((n ? n : 1) * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = (id_index_t){items[i].id, i};
    qsort(order, n, sizeof(*order), cmp_id_index);
    for (size_t i = 1; i < n && !dup; i++) {
        if (strcmp(order[i - 1].id, order[i].id) == 0) {
            snprintf(err->code, sizeof(err->code), "InvalidSpec");
            snprintf(err->message, sizeof(err->message),
                     "id \"%s\" appears more than once (also items[%zu])", order[i].id,
                     order[i - 1].index);
            snprintf(err->field, sizeof(err->field), "items[%zu].id", order[i].index);
            dup = 1;
        }
    }
    free(order);
    return dup;
}

/*
 * Decodes a full-sync body {"items":[...]}, all or nothing. Returns 0 with
 * the items in *out (owned by the caller: sync_items_free) and their count
 * in *nout, or -1 with err filled and nothing left to free.
 */
static int decode_sync(api_t *api, const cJSON *doc, store_sync_item_t **out, size_t *nout,
                       spec_error_t *err)
{
    store_sync_item_t *items = NULL;
    size_t n = 0;
    const cJSON *jitems = cJSON_GetObjectItemCaseSensitive(doc, "items");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(jitems)) {
        snprintf(err->code, sizeof(err->code), "InvalidSpec");
        snprintf(err->message, sizeof(err->message),
                 "the body must be an object {\"items\":[...]} holding every environment");
        snprintf(err->field, sizeof(err->field), "items");
        return -1;
    }
    for (const cJSON *k = doc->child; k; k = k->next) {
        if (strcmp(k->string, "items") != 0) {
            snprintf(err->code, sizeof(err->code), "InvalidSpec");
            snprintf(err->message, sizeof(err->message), "unknown field \"%.80s\"", k->string);
            snprintf(err->field, sizeof(err->field), "%.150s", k->string);
            return -1;
        }
    }
    size_t cap = (size_t)cJSON_GetArraySize(jitems);
    items = d8_xcalloc(cap ? cap : 1, sizeof(*items));
    for (const cJSON *it = jitems->child; it; it = it->next) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "items[%zu].", n);
        if (spec_decode(it, NULL, &api->rules, prefix, &items[n].spec, items[n].id, err) != D8_OK)
            goto fail;
        n++;
        if (api__region_moved(api, items[n - 1].id, &items[n - 1].spec, prefix, err))
            goto fail;
    }
    if (duplicate_id(items, n, err))
        goto fail;
    *out = items;
    *nout = n;
    return 0;

fail:
    sync_items_free(items, n);
    return -1;
}

/*
 * PUT /api/v1/environments: replaces the whole desired set with the body's
 * items at once, unless one of them is invalid or waits for the reaper.
 * Answers the counts of what changed.
 */
void api__full_sync(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    if (api__refuse_unwritable(api, ex))
        return;
    cJSON *doc = api__read_json_body(ex, req);
    if (!doc)
        return;
    store_sync_item_t *items = NULL;
    size_t n = 0;
    spec_error_t err;
    memset(&err, 0, sizeof(err));
    int rc = decode_sync(api, doc, &items, &n, &err);
    cJSON_Delete(doc);
    if (rc != 0) {
        api__respond_spec_error(ex, &err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (api__being_reaped(api, items[i].id)) {
            api__respond_reaping(ex, items[i].id);
            sync_items_free(items, n);
            return;
        }
    }
    store_sync_counts_t counts;
    store_sync(api->store, items, n, &counts);
    free(items);
    LOG(LOG_INFO, "full sync applied", LF_S("request_id", req->request_id), LF_I("items", n),
        LF_I("created", counts.created), LF_I("updated", counts.updated),
        LF_I("unchanged", counts.unchanged), LF_I("removed", counts.removed));
    char body[256];
    int len = snprintf(body, sizeof(body),
                       "{\"created\":%zu,\"updated\":%zu,\"unchanged\":%zu,\"removed\":%zu,"
                       "\"resourceVersion\":%llu}",
                       counts.created, counts.updated, counts.unchanged, counts.removed,
                       (unsigned long long)store_rv(api->store));
    api__respond_durable(api, ex, 200, NULL, body, (size_t)len);
}
