/*
 * status.containers: what Azure last showed of the workspace container
 * (state, restarts, last exit code, last restart), rendered into the
 * status object.
 */
#include "store.h"

#include <cjson/cJSON.h>

void store_containers_json(const env_status_t *s, struct cJSON *st)
{
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
