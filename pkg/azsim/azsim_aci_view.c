/*
 * pkg/azsim: what ARM shows of a container group — the stored form of a
 * PUT body, and the rendering of a group for GET, list items and the
 * control API, with its instance view: the group's state, every
 * container's current and previous state, restart count and events.
 */
#include "azsim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CG_TYPE "Microsoft.ContainerInstance/containerGroups"

const char *azsim__prov_name(int p)
{
    switch (p) {
    case AZSIM__PROV_CREATING:
        return "Creating";
    case AZSIM__PROV_UPDATING:
        return "Updating";
    case AZSIM__PROV_SUCCEEDED:
        return "Succeeded";
    case AZSIM__PROV_FAILED:
        return "Failed";
    case AZSIM__PROV_CANCELED:
        return "Canceled";
    default:
        return "Deleting";
    }
}

const char *azsim__power_name(int p)
{
    switch (p) {
    case AZSIM__POW_RUNNING:
        return "Running";
    case AZSIM__POW_STOPPED:
        return "Stopped";
    case AZSIM__POW_SUCCEEDED:
        return "Succeeded";
    case AZSIM__POW_FAILED:
        return "Failed";
    default:
        return "Pending";
    }
}

/* ---- stored form -------------------------------------------------------- */

static void drop_container_views(cJSON *arr)
{
    for (cJSON *c = arr ? arr->child : NULL; c; c = c->next)
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(c, "properties"), "instanceView");
}

cJSON *azsim__stored_spec(const cJSON *body, const char *location)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "location", location);
    static const char *const keep[] = {"tags", "zones", "identity"};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        const cJSON *it = cJSON_GetObjectItem(body, keep[i]);
        if (it && !cJSON_IsNull(it))
            cJSON_AddItemToObject(s, keep[i], cJSON_Duplicate(it, 1));
    }
    cJSON *p = cJSON_Duplicate(cJSON_GetObjectItem(body, "properties"), 1);
    cJSON_DeleteItemFromObject(p, "provisioningState");
    cJSON_DeleteItemFromObject(p, "instanceView");
    cJSON_DeleteItemFromObject(p, "isCreatedFromStandbyPool");
    drop_container_views(cJSON_GetObjectItem(p, "containers"));
    drop_container_views(cJSON_GetObjectItem(p, "initContainers"));
    cJSON *ip = cJSON_GetObjectItem(p, "ipAddress");
    if (ip) {
        cJSON_DeleteItemFromObject(ip, "ip");
        cJSON_DeleteItemFromObject(ip, "fqdn");
    }
    if (!cJSON_GetObjectItem(p, "restartPolicy"))
        cJSON_AddStringToObject(p, "restartPolicy", "Always");
    if (!cJSON_GetObjectItem(p, "sku"))
        cJSON_AddStringToObject(p, "sku", "Standard");
    cJSON_AddItemToObject(s, "properties", p);
    return s;
}

/* Removes what ARM never echoes: secure values and keys. */
static void strip_secrets(cJSON *p)
{
    static const char *const lists[] = {"containers", "initContainers"};
    for (size_t l = 0; l < 2; l++) {
        for (cJSON *c = cJSON_GetObjectItem(p, lists[l]) ? cJSON_GetObjectItem(p, lists[l])->child
                                                         : NULL;
             c; c = c->next) {
            cJSON *envs =
                cJSON_GetObjectItem(cJSON_GetObjectItem(c, "properties"), "environmentVariables");
            for (cJSON *e = envs ? envs->child : NULL; e; e = e->next)
                cJSON_DeleteItemFromObject(e, "secureValue");
        }
    }
    cJSON *vols = cJSON_GetObjectItem(p, "volumes");
    for (cJSON *v = vols ? vols->child : NULL; v; v = v->next) {
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(v, "azureFile"), "storageAccountKey");
        if (cJSON_GetObjectItem(v, "secret"))
            cJSON_ReplaceItemInObject(v, "secret", cJSON_CreateObject());
    }
    cJSON *creds = cJSON_GetObjectItem(p, "imageRegistryCredentials");
    for (cJSON *c = creds ? creds->child : NULL; c; c = c->next)
        cJSON_DeleteItemFromObject(c, "password");
    cJSON_DeleteItemFromObject(
        cJSON_GetObjectItem(cJSON_GetObjectItem(p, "diagnostics"), "logAnalytics"), "workspaceKey");
    cJSON *exts = cJSON_GetObjectItem(p, "extensions");
    for (cJSON *e = exts ? exts->child : NULL; e; e = e->next)
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(e, "properties"), "protectedSettings");
}

/* ---- rendering ---------------------------------------------------------- */

static void add_time(cJSON *o, const char *key, int64_t wall)
{
    char ts[32];
    d8_rfc3339(wall, ts);
    cJSON_AddStringToObject(o, key, ts);
}

/* A ContainerState: Waiting, Running, or Terminated with its exit code. */
static cJSON *cstate_json(const azsim__cstate_t *s, int64_t fallback_start)
{
    static const char *const names[] = {"Waiting", "Waiting", "Running", "Terminated"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "state", names[s->state]);
    add_time(o, "startTime", s->start_wall ? s->start_wall : fallback_start);
    if (s->state == AZSIM__CS_TERMINATED) {
        cJSON_AddNumberToObject(o, "exitCode", s->exit_code);
        add_time(o, "finishTime", s->finish_wall);
    }
    cJSON_AddStringToObject(o, "detailStatus", s->detail ? s->detail : "");
    return o;
}

/* The instanceView of container i of g: restart count, current and
 * previous state, and its events. Owned by the caller. */
static cJSON *container_view(const azsim__group_t *g, int i)
{
    cJSON *iv = cJSON_CreateObject();
    cJSON_AddNumberToObject(iv, "restartCount", g->restart_count);
    cJSON_AddItemToObject(iv, "currentState", cstate_json(&g->cur, g->created_wall));
    if (g->prev.state != AZSIM__CS_NONE)
        cJSON_AddItemToObject(iv, "previousState", cstate_json(&g->prev, g->created_wall));
    const cJSON *ev = cJSON_GetArrayItem(g->cevents, i);
    cJSON_AddItemToObject(iv, "events", ev ? cJSON_Duplicate(ev, 1) : cJSON_CreateArray());
    return iv;
}

/* instanceView.state: Pending after a failed provisioning (as in ACI's
 * Failed example), the state before a start while the view is stale. */
static const char *group_state(const azsim__group_t *g, uint64_t now)
{
    if (g->prov == AZSIM__PROV_FAILED && g->fail_kind == 'P')
        return "Pending";
    if (now < g->stale_until)
        return azsim__power_name(g->stale_power);
    return azsim__power_name(g->power);
}

/* Adds the instance views of g to its rendered properties p. */
static void add_instance_views(const azsim__group_t *g, cJSON *p, uint64_t now)
{
    cJSON *cs = cJSON_GetObjectItem(p, "containers");
    int i = 0;
    for (cJSON *c = cs ? cs->child : NULL; c; c = c->next, i++) {
        cJSON *cp = cJSON_GetObjectItem(c, "properties");
        if (cJSON_IsObject(cp))
            cJSON_AddItemToObject(cp, "instanceView", container_view(g, i));
    }
    cJSON *iv = cJSON_AddObjectToObject(p, "instanceView");
    cJSON_AddItemToObject(iv, "events",
                          g->gevents ? cJSON_Duplicate(g->gevents, 1) : cJSON_CreateArray());
    cJSON_AddStringToObject(iv, "state", group_state(g, now));
}

cJSON *azsim__group_json(azsim_t *sim, const azsim__group_t *g, int mode, uint64_t now)
{
    (void)sim;
    cJSON *spec = cJSON_Parse(g->spec);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", g->id);
    cJSON_AddStringToObject(o, "name", g->name);
    cJSON_AddStringToObject(o, "type", CG_TYPE);
    cJSON_AddStringToObject(o, "location", g->location);
    static const char *const keep[] = {"tags", "zones", "identity"};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        cJSON *it = cJSON_DetachItemFromObject(spec, keep[i]);
        if (it)
            cJSON_AddItemToObject(o, keep[i], it);
    }
    cJSON *p = cJSON_DetachItemFromObject(spec, "properties");
    cJSON_Delete(spec);
    if (!p)
        p = cJSON_CreateObject();
    if (mode != 'f')
        strip_secrets(p);
    cJSON_AddStringToObject(p, "provisioningState", azsim__prov_name(g->prov));
    cJSON *ip = cJSON_GetObjectItem(p, "ipAddress");
    if (ip) {
        if (g->ip[0])
            cJSON_AddStringToObject(ip, "ip", g->ip);
        if (g->fqdn)
            cJSON_AddStringToObject(ip, "fqdn", g->fqdn);
    }
    cJSON_AddBoolToObject(p, "isCreatedFromStandbyPool", 0);
    if (mode != 'l')
        add_instance_views(g, p, now);
    cJSON_AddItemToObject(o, "properties", p);
    return o;
}
