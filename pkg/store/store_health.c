/*
 * status.containers: what Azure last showed of the workspace container
 * (state, restarts, last exit code, last restart), rendered into the
 * status object.
 */
#include "store.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/* autoStopTime and the AutoStopPending condition. */
static void auto_stop_json(const env_status_t *s, cJSON *st)
{
    if (!s->auto_stop_ms)
        return;
    char ts[32];
    d8_rfc3339(s->auto_stop_ms, ts);
    cJSON_AddStringToObject(st, "autoStopTime", ts);
    cJSON *conds = cJSON_GetObjectItem(st, "conditions");
    if (!s->auto_stop_pending_ms || !cJSON_IsArray(conds))
        return;
    char msg[160], since[32];
    snprintf(msg, sizeof(msg),
             "no activity: the workspace will be stopped at %s unless it is used (or POST "
             ".../activity)",
             ts);
    d8_rfc3339(s->auto_stop_pending_ms, since);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "type", "AutoStopPending");
    cJSON_AddStringToObject(c, "status", "True");
    cJSON_AddStringToObject(c, "reason", "Idle");
    cJSON_AddStringToObject(c, "message", msg);
    cJSON_AddStringToObject(c, "lastTransitionTime", since);
    cJSON_AddItemToArray(conds, c);
}

void store_containers_json(const env_status_t *s, struct cJSON *st)
{
    auto_stop_json(s, st);
    cJSON *arr = cJSON_AddArrayToObject(st, "containers");
    const env_container_status_t *c = &s->container;
    if (!c->present)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "state", c->state);
    cJSON_AddNumberToObject(o, "restartCount", c->restart_count);
    if (c->has_exit_code)
        cJSON_AddNumberToObject(o, "lastExitCode", c->last_exit_code);
    else
        cJSON_AddNullToObject(o, "lastExitCode");
    if (c->last_restart_ms) {
        char ts[32];
        d8_rfc3339(c->last_restart_ms, ts);
        cJSON_AddStringToObject(o, "lastRestartTime", ts);
    } else {
        cJSON_AddNullToObject(o, "lastRestartTime");
    }
    cJSON_AddItemToArray(arr, o);
}
