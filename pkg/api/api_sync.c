/*
 * pkg/api full sync: PUT /api/v1/environments replaces the whole desired
 * set, all or nothing, within a memory and a time budget:
 *
 * - the body is decoded one item at a time (cJSON parses one item, which
 *   is validated into a spec and freed): the peak is the body plus the
 *   decoded specs, never a JSON tree of the whole body; at most
 *   api.maxSyncItems items (413 TooManyItems past it);
 * - the decoding and then the store's apply run in slices of about
 *   SLICE_NS, one per turn of the loop (an idle handle, which also keeps
 *   the loop's poll from waiting while work remains), so no
 *   single request holds the loop; the answer comes at the end (after the
 *   state file write when there is one);
 * - one sync at a time: a second one meanwhile is 429 SyncInProgress with
 *   Retry-After.
 *
 * Every item is validated before anything is applied: one bad item is 400
 * and nothing changes. Requests interleaved with the apply are ordered
 * after the sync for the objects not yet applied, and an object a PUT
 * creates meanwhile is not removed by it (see store_sync_begin).
 */
#include "api_int.h"

#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Work per loop turn; the clock is read every CHECK_EVERY items. */
#define SLICE_NS (5 * 1000 * 1000)
#define CHECK_EVERY 32
#define RETRY_AFTER "2"
/* A body that is not an object is parsed whole only up to this size. */
#define NOT_OBJECT_PARSE_MAX ((size_t)1 << 20)

typedef enum { PH_OPEN, PH_KEY, PH_ITEMS, PH_AFTER_ITEM, PH_AFTER_ITEMS, PH_APPLY } phase_t;

/* The sync in progress (api->sync). */
struct api__sync_job {
    api_t *api;          /* NULL once the api is being freed */
    store_t *store;      /* outlives the loop run */
    http_exchange_t *ex; /* NULL once the connection closed */
    char request_id[160];
    phase_t phase;
    int seen_items;
    const char *p, *end; /* decode cursor in the request body */
    store_sync_item_t *items;
    size_t n, cap;
    size_t max_items;
    store_sync_run_t *run;
    uv_idle_t tick;
};

/* ---- validation helpers ------------------------------------------------ */

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

static int fail_spec(spec_error_t *err, const char *field, const char *fmt, const char *arg)
{
    snprintf(err->code, sizeof(err->code), "InvalidSpec");
    snprintf(err->message, sizeof(err->message), fmt, arg);
    snprintf(err->field, sizeof(err->field), "%.150s", field);
    return -1;
}

static int fail_json(spec_error_t *err)
{
    snprintf(err->code, sizeof(err->code), "InvalidJson");
    snprintf(err->message, sizeof(err->message),
             "the request body is not valid JSON (or nests deeper than 1000)");
    err->field[0] = '\0';
    return -1;
}

#define NOT_A_SET "the body must be an object {\"items\":[...]} holding every environment%s"

/* ---- the job ------------------------------------------------------------- */

static void job_closed(uv_handle_t *h)
{
    struct api__sync_job *j = h->data;
    for (size_t i = 0; j->items && i < j->n; i++)
        spec_release(&j->items[i].spec);
    free(j->items);
    free(j);
}

/* Takes the exchange from the job (to answer it), or NULL when the
 * connection is gone. */
static http_exchange_t *job_take_exchange(struct api__sync_job *j)
{
    http_exchange_t *ex = j->ex;
    if (ex)
        http_exchange_on_close(ex, NULL, NULL);
    j->ex = NULL;
    return ex;
}

/* Ends the job (its answer, if any, was given); memory goes with the idle
 * handle. */
static void job_end(struct api__sync_job *j)
{
    if (j->api)
        j->api->sync = NULL;
    job_take_exchange(j);
    uv_close((uv_handle_t *)&j->tick, job_closed);
}

static void job_fail(struct api__sync_job *j, int status, const spec_error_t *err)
{
    http_exchange_t *ex = job_take_exchange(j);
    if (ex)
        http_respond_error(ex, status, err->code[0] ? err->code : "InvalidSpec", err->message,
                           err->field[0] ? err->field : NULL);
    job_end(j);
}

static void skip_ws(struct api__sync_job *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r' || *j->p == '\n'))
        j->p++;
}

/* Parses one JSON value at the cursor (owned by the caller), or NULL. */
static cJSON *parse_value(struct api__sync_job *j)
{
    const char *stop = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(j->p, (size_t)(j->end - j->p), &stop, 0);
    if (v)
        j->p = stop;
    return v;
}

/* One item of the array: decoded, validated and kept. */
static int decode_item(struct api__sync_job *j, spec_error_t *err)
{
    if (j->n == j->max_items) {
        char msg[64];
        snprintf(msg, sizeof(msg), "%zu", j->max_items);
        snprintf(err->code, sizeof(err->code), "TooManyItems");
        snprintf(err->message, sizeof(err->message),
                 "a full sync holds at most %s items (api.maxSyncItems)", msg);
        snprintf(err->field, sizeof(err->field), "items");
        return 413;
    }
    const char *start = j->p;
    cJSON *it = parse_value(j);
    if (!it)
        return fail_json(err), 400;
    if (spec_json_has_nul(start, (size_t)(j->p - start))) {
        /* cJSON would silently cut the string there (a secret stored short). */
        cJSON_Delete(it);
        fail_json(err);
        snprintf(err->message, sizeof(err->message),
                 "strings must not contain NUL characters (\\u0000)");
        return 400;
    }
    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 64;
        if (j->cap > j->max_items)
            j->cap = j->max_items;
        j->items = d8_xrealloc(j->items, j->cap * sizeof(*j->items));
    }
    store_sync_item_t *si = &j->items[j->n];
    memset(si, 0, sizeof(*si));
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "items[%zu].", j->n);
    int rc = spec_decode(it, NULL, &j->api->rules, prefix, &si->spec, si->id, err);
    cJSON_Delete(it);
    if (rc != D8_OK)
        return 400;
    j->n++;
    if (api__region_moved(j->api, si->id, &si->spec, prefix, err))
        return 400;
    return 0;
}

/* A member name of the top-level object: only "items", once. */
static int decode_key(struct api__sync_job *j, spec_error_t *err)
{
    if (j->p >= j->end || *j->p != '"')
        return fail_json(err);
    cJSON *k = parse_value(j);
    if (!k || !cJSON_IsString(k)) {
        cJSON_Delete(k);
        return fail_json(err);
    }
    char name[96];
    snprintf(name, sizeof(name), "%.80s", k->valuestring);
    cJSON_Delete(k);
    if (strcmp(name, "items") != 0)
        return fail_spec(err, name, "unknown field \"%s\"", name);
    if (j->seen_items)
        return fail_spec(err, "items", "\"items\" appears more than once%s", "");
    j->seen_items = 1;
    skip_ws(j);
    if (j->p >= j->end || *j->p != ':')
        return fail_json(err);
    j->p++;
    skip_ws(j);
    if (j->p >= j->end || *j->p != '[')
        return fail_spec(err, "items", NOT_A_SET, "");
    j->p++;
    return 0;
}

/* The body does not start an object: InvalidJson when it is not JSON at
 * all, else InvalidSpec. Only a body within NOT_OBJECT_PARSE_MAX is parsed
 * to tell (a whole-body parse of a large one is what the decoder avoids). */
static int not_an_object(struct api__sync_job *j, spec_error_t *err)
{
    size_t len = (size_t)(j->end - j->p);
    if (len <= NOT_OBJECT_PARSE_MAX) {
        const char *stop = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(j->p, len, &stop, 0);
        if (v)
            j->p = stop;
        skip_ws(j);
        int ok = v && j->p == j->end;
        cJSON_Delete(v);
        if (!ok)
            return fail_json(err);
    }
    return fail_spec(err, "items", NOT_A_SET, "");
}

/*
 * One token step of the decoder: returns 0 to go on, 1 when the body is
 * decoded, or an HTTP status with err filled.
 */
static int decode_step(struct api__sync_job *j, spec_error_t *err)
{
    skip_ws(j);
    char c = j->p < j->end ? *j->p : '\0';
    switch (j->phase) {
    case PH_OPEN:
        if (c != '{')
            return not_an_object(j, err), 400;
        j->p++;
        skip_ws(j);
        if (j->p < j->end && *j->p == '}')
            return fail_spec(err, "items", NOT_A_SET, ""), 400;
        j->phase = PH_KEY;
        return 0;
    case PH_KEY:
        if (decode_key(j, err) != 0)
            return 400;
        skip_ws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            j->phase = PH_AFTER_ITEMS;
        } else {
            j->phase = PH_ITEMS;
        }
        return 0;
    case PH_ITEMS: {
        int st = decode_item(j, err);
        if (st)
            return st;
        j->phase = PH_AFTER_ITEM;
        return 0;
    }
    case PH_AFTER_ITEM:
        if (c != ',' && c != ']')
            return fail_json(err), 400;
        j->p++;
        j->phase = c == ',' ? PH_ITEMS : PH_AFTER_ITEMS;
        return 0;
    case PH_AFTER_ITEMS:
        if (c == ',') {
            j->p++;
            skip_ws(j);
            j->phase = PH_KEY;
            return 0;
        }
        if (c != '}')
            return fail_json(err), 400;
        j->p++;
        skip_ws(j);
        if (j->p != j->end)
            return fail_json(err), 400;
        return 1;
    case PH_APPLY:
        return 1;
    }
    return 1;
}

static void tick_cb(uv_idle_t *t);

/* The body is decoded: the checks on the whole set, then the apply. */
static int begin_apply(struct api__sync_job *j, spec_error_t *err)
{
    if (!j->seen_items) {
        fail_spec(err, "items", NOT_A_SET, "");
        return 400;
    }
    if (duplicate_id(j->items, j->n, err))
        return 400;
    for (size_t i = 0; i < j->n; i++) {
        if (api__being_reaped(j->api, j->items[i].id)) {
            http_exchange_t *ex = job_take_exchange(j);
            if (ex)
                api__respond_reaping(ex, j->items[i].id);
            return -1;
        }
    }
    j->run = store_sync_begin(j->store, j->items, j->n);
    j->phase = PH_APPLY;
    return 0;
}

/* Everything is applied: marks the store synced, logs the counts and
 * answers them (once durable), unless the client or the api went away. */
static void finish(struct api__sync_job *j)
{
    store_sync_counts_t counts;
    store_sync_end(j->store, j->run, &counts);
    j->run = NULL;
    /* Every spec was moved into the store or released by the steps. */
    free(j->items);
    j->items = NULL;
    j->n = 0;
    LOG(LOG_INFO, "full sync applied", LF_S("request_id", j->request_id),
        LF_I("items", counts.created + counts.updated + counts.unchanged),
        LF_I("created", counts.created), LF_I("updated", counts.updated),
        LF_I("unchanged", counts.unchanged), LF_I("removed", counts.removed));
    if (j->ex && j->api) {
        char body[256];
        int len = snprintf(body, sizeof(body),
                           "{\"created\":%zu,\"updated\":%zu,\"unchanged\":%zu,\"removed\":%zu,"
                           "\"resourceVersion\":%llu}",
                           counts.created, counts.updated, counts.unchanged, counts.removed,
                           (unsigned long long)store_rv(j->store));
        api__respond_durable(j->api, job_take_exchange(j), 200, NULL, body, (size_t)len);
    }
    job_end(j);
}

/* One slice of work: decode or apply until SLICE_NS have passed. */
static void tick_cb(uv_idle_t *t)
{
    struct api__sync_job *j = t->data;
    uint64_t t0 = uv_hrtime();
    spec_error_t err;
    memset(&err, 0, sizeof(err));
    for (;;) {
        if (j->phase == PH_APPLY) {
            if (store_sync_step(j->store, j->run, CHECK_EVERY)) {
                finish(j);
                return;
            }
        } else {
            for (int k = 0; k < CHECK_EVERY; k++) {
                int st = decode_step(j, &err);
                if (st == 1) {
                    st = begin_apply(j, &err);
                    if (st < 0) {
                        job_end(j);
                        return;
                    }
                    if (st == 0)
                        break;
                }
                if (st > 1) {
                    job_fail(j, st, &err);
                    return;
                }
            }
        }
        if (uv_hrtime() - t0 >= SLICE_NS)
            break;
    }
}

/* The connection closed: while decoding, the sync is dropped (nothing was
 * applied); once applying, it finishes (the body is no longer needed). */
static void job_exchange_closed(void *ud)
{
    struct api__sync_job *j = ud;
    j->ex = NULL;
    if (j->phase != PH_APPLY) {
        uv_idle_stop(&j->tick);
        job_end(j);
    }
}

void api__sync_detach(api_t *api)
{
    struct api__sync_job *j = api->sync;
    if (!j)
        return;
    j->api = NULL;
    api->sync = NULL;
    /* Still decoding: it needs the api; the connection's close (which the
     * api's free brings) ends it. */
    if (j->phase != PH_APPLY)
        uv_idle_stop(&j->tick);
}

/*
 * PUT /api/v1/environments: replaces the whole desired set with the body's
 * items at once, unless one of them is invalid or waits for the reaper.
 * Answers the counts of what changed.
 */
void api__full_sync(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    if (api->sync) {
        static const http_header_t h = {"Retry-After", RETRY_AFTER};
        http_respond_error_h(ex, 429, &h, 1, "SyncInProgress",
                             "another full sync is being applied; one at a time", NULL);
        return;
    }
    /* NUL characters are looked for item by item (a scan of the whole body
     * at once would hold the loop). */
    if (api__refuse_unwritable(api, ex) || !api__check_json_body(ex, req, 0))
        return;
    struct api__sync_job *j = d8_xcalloc(1, sizeof(*j));
    j->api = api;
    j->store = api->store;
    j->ex = ex;
    snprintf(j->request_id, sizeof(j->request_id), "%s", req->request_id);
    j->p = req->body;
    j->end = req->body + req->body_len;
    j->max_items = (size_t)api->cfg->max_sync_items;
    uv_idle_init(api->loop, &j->tick);
    j->tick.data = j;
    api->sync = j;
    http_exchange_on_close(ex, job_exchange_closed, j);
    uv_idle_start(&j->tick, tick_cb);
}
