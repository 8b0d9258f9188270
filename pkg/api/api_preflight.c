/*
 * GET /api/v1/preflight: the checks of `dev8-agent preflight`, run by the
 * controller's hook through its Azure client, answered when the last ARM
 * read is in. Nothing waits on the loop: each exchange is kept open (and
 * forgotten if its client goes away first) until the report arrives.
 *
 * Requests that arrive while a run is in flight join it rather than start
 * another: a client polling the route cannot multiply the ARM reads (each
 * run costs 3 + 6 per region from the subscription's read bucket, which
 * the reconciler shares).
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

/* The run in flight and the exchanges waiting for it. Outlives the api
 * when the api is freed first (api is then NULL). */
struct api__pf_batch {
    api_t *api;
    d8_list_t waiters; /* pf_waiter_t */
};

typedef struct pf_waiter {
    d8_list_t link;
    http_exchange_t *ex;
} pf_waiter_t;

/* The connection closed first: nothing to answer. */
static void pf_gone(void *ud)
{
    pf_waiter_t *w = ud;
    d8_list_del(&w->link);
    free(w);
}

static void pf_report(void *ud, const preflight_report_t *r)
{
    api__pf_batch_t *b = ud;
    if (b->api)
        b->api->pf_batch = NULL;
    cJSON *j = preflight_report_json(r);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    while (!d8_list_empty(&b->waiters)) {
        pf_waiter_t *w = d8_container_of(b->waiters.next, pf_waiter_t, link);
        d8_list_del(&w->link);
        http_exchange_on_close(w->ex, NULL, NULL);
        api__respond_json(w->ex, 200, NULL, 0, s, strlen(s));
        free(w);
    }
    free(s);
    free(b);
}

void api__preflight(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)req;
    (void)id;
    if (api->shutting_down) {
        http_respond_error(ex, 503, "ShuttingDown", "the controller is shutting down", NULL);
        return;
    }
    api__pf_batch_t *b = api->pf_batch;
    if (!b) {
        b = d8_xcalloc(1, sizeof(*b));
        b->api = api;
        d8_list_init(&b->waiters);
        if (api->opts.preflight_hook(api->opts.preflight_ud, pf_report, b) != D8_OK) {
            free(b);
            http_respond_error(ex, 503, "ShuttingDown",
                               "the Azure client is not available (shutting down)", NULL);
            return;
        }
        api->pf_batch = b;
    }
    pf_waiter_t *w = d8_xcalloc(1, sizeof(*w));
    w->ex = ex;
    d8_list_push(&b->waiters, &w->link);
    http_exchange_on_close(ex, pf_gone, w);
}

void api__preflight_detach(api_t *api)
{
    if (api->pf_batch)
        api->pf_batch->api = NULL;
    api->pf_batch = NULL;
}
