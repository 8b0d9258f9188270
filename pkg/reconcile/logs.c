/*
 * GET /api/v1/environments/{id}/logs: the workspace container's log,
 * read through ARM (Containers_ListLogs) from the region the observer
 * found the group in.
 */
#include "reconcile_int.h"

#include "log/log.h"
#include "ownership/ownership.h"

#include <stdlib.h>
#include <string.h>

#define WORKSPACE_CONTAINER "workspace"

typedef struct logs_call {
    reconcile_logs_cb cb;
    void *ud;
    char id[SPEC_ID_MAX + 1];
} logs_call_t;

/* Azure answered the logs GET: the API's answer from it, once. */
static void on_logs(void *ud, const azure_result_t *res, const char *content)
{
    logs_call_t *call = ud;
    if (res->err == 0) {
        call->cb(call->ud, 200, NULL, NULL, content, strlen(content));
    } else if (res->err == D8_ECANCELED) {
        call->cb(call->ud, 503, "ShuttingDown", "the agent is shutting down", NULL, 0);
    } else if (res->http_status == 404) {
        call->cb(call->ud, 409, "NoContainerGroup",
                 "Azure holds no container group (or workspace container) for this environment",
                 NULL, 0);
    } else {
        char msg[512];
        snprintf(msg, sizeof(msg), "reading the container logs failed: %s%s%s",
                 res->error_code && *res->error_code ? res->error_code : d8_strerror(res->err),
                 res->error_message && *res->error_message ? ": " : "",
                 res->error_message ? res->error_message : "");
        LOG(LOG_WARN, "container logs read failed", LF_S("env_id", call->id),
            LF_I("http_status", res->http_status));
        call->cb(call->ud, 502, "AzureError", msg, NULL, 0);
    }
    free(call);
}

int reconcile_logs(reconciler_t *r, const char *id, int tail, reconcile_logs_cb cb, void *ud)
{
    const observed_t *o = observer_find(r->ob, id);
    if (!o || !o->g.exists || o->region < 0)
        return D8_ENOENT;
    char name[OWN_NAME_MAX];
    own_name(id, name);
    const char *container = o->g.c.present && o->g.c.name[0] ? o->g.c.name : WORKSPACE_CONTAINER;
    logs_call_t *call = d8_xcalloc(1, sizeof(*call));
    call->cb = cb;
    call->ud = ud;
    snprintf(call->id, sizeof(call->id), "%s", id);
    int rc = azure_container_logs(r->az, observer_scope(r->ob, o->region), name, container, tail,
                                  AZURE_PRIO_HIGH, on_logs, call);
    if (rc < 0)
        free(call);
    return rc;
}
