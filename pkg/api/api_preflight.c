/*
 * GET /api/v1/preflight: the checks of `dev8-agent preflight`, run by the
 * controller's hook through its Azure client, answered when the last ARM
 * read is in. Nothing waits on the loop: the exchange is kept open (and
 * forgotten if the client goes away first) until the report arrives.
 */
#include "api_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct pf_wait {
    http_exchange_t *ex; /* NULL once the connection closed */
} pf_wait_t;

static void pf_gone(void *ud)
{
    pf_wait_t *w = ud;
    w->ex = NULL;
}

static void pf_report(void *ud, const preflight_report_t *r)
{
    pf_wait_t *w = ud;
    if (w->ex) {
        http_exchange_on_close(w->ex, NULL, NULL);
        cJSON *j = preflight_report_json(r);
        char *s = cJSON_PrintUnformatted(j);
        api__respond_json(w->ex, 200, NULL, 0, s, strlen(s));
        free(s);
        cJSON_Delete(j);
    }
    free(w);
}

void api__preflight(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)req;
    (void)id;
    pf_wait_t *w = d8_xcalloc(1, sizeof(*w));
    w->ex = ex;
    if (api->shutting_down ||
        api->opts.preflight_hook(api->opts.preflight_ud, pf_report, w) != D8_OK) {
        free(w);
        http_respond_error(ex, 503, "Unavailable",
                           "the Azure client is not available (shutting down)", NULL);
        return;
    }
    http_exchange_on_close(ex, pf_gone, w);
}
