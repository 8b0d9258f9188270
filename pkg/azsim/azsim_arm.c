/*
 * pkg/azsim: the subscription reads `dev8-agent preflight` makes —
 * Providers_Get and ResourceGroups_Get (Microsoft.Resources 2021-04-01),
 * Permissions_ListForResourceGroup (Microsoft.Authorization 2022-04-01),
 * FileServices_GetServiceProperties (Storage), Location_ListUsage and
 * Location_ListCapabilities (ACI) — in the shapes of the specs' examples
 * (test/fixtures/azure-specs), and the `arm:` settings that make each
 * check fail: unregistered providers, the caller's permissions, the
 * region's capabilities.
 */
#include "azsim_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- settings ----------------------------------------------------------- */

/* NULL stays NULL: a list never set (arm.actions: the default). */
static char **list_dup(char *const *l, size_t n)
{
    if (!l)
        return NULL;
    char **o = d8_xcalloc(n ? n : 1, sizeof(*o));
    for (size_t i = 0; i < n; i++)
        o[i] = d8_xstrdup(l[i]);
    return o;
}

static void list_free(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void azsim__arm_opts_init(azsim_arm_opts_t *o)
{
    /* actions NULL: ["*"], a principal that may do anything, as azsim
     * authorizes every call (the 403 faults aside). Nothing is allocated
     * here, so that defaults need no release. */
    memset(o, 0, sizeof(*o));
    /* Learn, "Azure Container Instances resource availability": Linux
     * container groups without GPU take up to 4 cores and 16 GB in most
     * regions. */
    o->max_cpu = 4;
    o->max_memory_gb = 16;
}

void azsim__arm_opts_copy(azsim_arm_opts_t *dst, const azsim_arm_opts_t *src)
{
    *dst = *src;
    dst->actions = list_dup(src->actions, src->nactions);
    dst->not_actions = list_dup(src->not_actions, src->nnot_actions);
    dst->unregistered = list_dup(src->unregistered, src->nunregistered);
}

void azsim__arm_opts_release(azsim_arm_opts_t *o)
{
    list_free(o->actions, o->nactions);
    list_free(o->not_actions, o->nnot_actions);
    list_free(o->unregistered, o->nunregistered);
    memset(o, 0, sizeof(*o));
}

static int bad(const cJSON **at, const cJSON *node, char *err, size_t errlen, const char *key,
               const char *msg)
{
    *at = node;
    snprintf(err, errlen, "%s: %s", key, msg);
    return -1;
}

/* A list of non-empty strings replacing *l. */
static int set_list(char ***l, size_t *n, const cJSON *j, const cJSON **at, char *err,
                    size_t errlen, const char *key)
{
    if (!cJSON_IsArray(j))
        return bad(at, j, err, errlen, key, "expected a list of strings");
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 256)
            return bad(at, it, err, errlen, key, "expected non-empty strings of up to 256 bytes");
    }
    size_t k = (size_t)cJSON_GetArraySize(j), i = 0;
    char **out = d8_xcalloc(k ? k : 1, sizeof(*out));
    cJSON_ArrayForEach(it, j) out[i++] = d8_xstrdup(it->valuestring);
    list_free(*l, *n);
    *l = out;
    *n = k;
    return 0;
}

static int set_number(double *out, const cJSON *it, const cJSON **at, char *err, size_t errlen,
                      const char *key)
{
    double v = it->valuedouble;
    if (!cJSON_IsNumber(it) || !(v >= 0 && v <= 1024) || floor(v * 2) != v * 2)
        return bad(at, it, err, errlen, key, "expected a multiple of 0.5 from 0 to 1024");
    *out = v;
    return 0;
}

int azsim__arm_opts_parse(azsim_arm_opts_t *o, const cJSON *j, const cJSON **at, char *err,
                          size_t errlen)
{
    *at = j;
    if (!cJSON_IsObject(j))
        return bad(at, j, err, errlen, "arm", "expected a mapping");
    for (const cJSON *it = j->child; it; it = it->next) {
        const char *k = it->string;
        int rc;
        if (strcmp(k, "actions") == 0)
            rc = set_list(&o->actions, &o->nactions, it, at, err, errlen, k);
        else if (strcmp(k, "notActions") == 0)
            rc = set_list(&o->not_actions, &o->nnot_actions, it, at, err, errlen, k);
        else if (strcmp(k, "unregisteredProviders") == 0)
            rc = set_list(&o->unregistered, &o->nunregistered, it, at, err, errlen, k);
        else if (strcmp(k, "maxCpu") == 0)
            rc = set_number(&o->max_cpu, it, at, err, errlen, k);
        else if (strcmp(k, "maxMemoryInGB") == 0)
            rc = set_number(&o->max_memory_gb, it, at, err, errlen, k);
        else
            rc = bad(at, it, err, errlen, k,
                     "unknown key in arm (actions, notActions, unregisteredProviders, maxCpu, "
                     "maxMemoryInGB)");
        if (rc < 0)
            return -1;
    }
    return 0;
}

static cJSON *strings(char *const *l, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    if (!l) {
        cJSON_AddItemToArray(a, cJSON_CreateString("*"));
        return a;
    }
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(l[i]));
    return a;
}

/* The other lists: never set reads as empty. */
static cJSON *strings_or_none(char *const *l, size_t n)
{
    return l ? strings(l, n) : cJSON_CreateArray();
}

cJSON *azsim__arm_opts_json(const azsim_arm_opts_t *o)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "actions", strings(o->actions, o->nactions));
    cJSON_AddItemToObject(j, "notActions", strings_or_none(o->not_actions, o->nnot_actions));
    cJSON_AddItemToObject(j, "unregisteredProviders",
                          strings_or_none(o->unregistered, o->nunregistered));
    cJSON_AddNumberToObject(j, "maxCpu", o->max_cpu);
    cJSON_AddNumberToObject(j, "maxMemoryInGB", o->max_memory_gb);
    return j;
}

int azsim__provider_registered(azsim__rq_t *q, const char *ns)
{
    const azsim_arm_opts_t *a = &q->sim->arm;
    if (!a->nunregistered || !azsim__allowed(a->unregistered, a->nunregistered, ns))
        return 1;
    azsim__arm_error(q->resp, 409, "MissingSubscriptionRegistration",
                     "The subscription is not registered to use namespace '%s'. See "
                     "https://aka.ms/rps-not-found for how to register subscriptions.",
                     ns);
    return 0;
}

/* ---- the reads ---------------------------------------------------------- */

/*
 * Answers the items of value (consumed) as a pageable list, like the
 * other lists (pageSize, $skipToken, paging.emptyPages): item i has the
 * sequence number i + 1.
 */
static void answer_list(azsim__rq_t *q, cJSON *value)
{
    azsim__page_t pg;
    if (!azsim__page_start(q, &pg)) {
        cJSON_Delete(value);
        return;
    }
    d8_buf_t *b = &q->resp->body;
    d8_buf_reset(b);
    d8_buf_puts(b, "{\"value\":[");
    size_t n = (size_t)cJSON_GetArraySize(value), count = 0;
    uint64_t last = pg.after;
    for (size_t i = (size_t)pg.after; i < n && !pg.empty_now && count < pg.size; i++) {
        char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(value, (int)i));
        d8_buf_printf(b, "%s%s", count ? "," : "", s);
        free(s);
        count++;
        last = i + 1;
    }
    d8_buf_putc(b, ']');
    if (pg.empty_now || last < n)
        azsim__page_next_link(q, b, NULL, last);
    d8_buf_putc(b, '}');
    q->resp->status = 200;
    q->resp->content_type = "application/json; charset=utf-8";
    cJSON_Delete(value);
}

/* Providers_Get: Registered unless the namespace is in
 * arm.unregisteredProviders (any subscription) or, for
 * Microsoft.ContainerInstance, the subscription is in
 * aci.unregisteredSubscriptions. The shape of GetProvider.json. */
static void provider_get(azsim__rq_t *q)
{
    const azsim_t *sim = q->sim;
    const char *ns = q->seg[3];
    int unreg = (sim->arm.nunregistered &&
                 azsim__allowed(sim->arm.unregistered, sim->arm.nunregistered, ns)) ||
                (azsim__ieq(ns, "Microsoft.ContainerInstance") && sim->aci.nunregistered &&
                 azsim__allowed(sim->aci.unregistered, sim->aci.nunregistered, q->sub));
    d8_buf_t id;
    d8_buf_init(&id);
    d8_buf_printf(&id, "/subscriptions/%s/providers/%s", q->sub, ns);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id.data);
    cJSON_AddStringToObject(j, "namespace", ns);
    cJSON_AddStringToObject(j, "registrationState", unreg ? "NotRegistered" : "Registered");
    cJSON_AddStringToObject(j, "registrationPolicy", "RegistrationRequired");
    cJSON_AddArrayToObject(j, "resourceTypes");
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
    d8_buf_release(&id);
}

/* ResourceGroups_Get: every name the config's resourceGroups allows
 * exists (check_scope answered 404 ResourceGroupNotFound for the rest). */
static void rg_get(azsim__rq_t *q)
{
    d8_buf_t id;
    d8_buf_init(&id);
    d8_buf_printf(&id, "/subscriptions/%s/resourceGroups/%s", q->sub, q->seg[3]);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id.data);
    cJSON_AddStringToObject(j, "name", q->seg[3]);
    cJSON_AddStringToObject(j, "type", "Microsoft.Resources/resourceGroups");
    cJSON_AddStringToObject(j, "location", "eastus");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(j, "properties"), "provisioningState",
                            "Succeeded");
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
    d8_buf_release(&id);
}

/* Permissions_ListForResourceGroup and Permissions_ListForResource (any
 * resource under an allowed group; azsim holds no subnets or identities):
 * one entry from arm.actions and arm.notActions (PermissionGetResult of
 * the 2022-04-01 spec). */
static void permissions_list(azsim__rq_t *q)
{
    const azsim_arm_opts_t *a = &q->sim->arm;
    cJSON *v = cJSON_CreateArray();
    cJSON *p = cJSON_CreateObject();
    cJSON_AddItemToObject(p, "actions", strings(a->actions, a->nactions));
    cJSON_AddItemToObject(p, "notActions", strings_or_none(a->not_actions, a->nnot_actions));
    cJSON_AddArrayToObject(p, "dataActions");
    cJSON_AddArrayToObject(p, "notDataActions");
    cJSON_AddItemToArray(v, p);
    answer_list(q, v);
}

/* FileServices_GetServiceProperties of the default service: the account's
 * share soft delete (storage.accounts[].shareDeleteRetentionDays, 0 off). */
static void file_service_get(azsim__rq_t *q)
{
    if (!azsim__provider_registered(q, "Microsoft.Storage") || !azsim__check_account(q))
        return;
    const azsim_account_opts_t *s = azsim__account_opts(q->sim, q->seg[7]);
    d8_buf_t id;
    d8_buf_init(&id);
    d8_buf_printf(&id,
                  "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/"
                  "storageAccounts/%s/fileServices/default",
                  q->sub, q->seg[3], q->seg[7]);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id.data);
    cJSON_AddStringToObject(j, "name", "default");
    cJSON_AddStringToObject(j, "type", "Microsoft.Storage/storageAccounts/fileServices");
    cJSON *p = cJSON_AddObjectToObject(j, "properties");
    cJSON_AddObjectToObject(p, "cors");
    cJSON *pol = cJSON_AddObjectToObject(p, "shareDeleteRetentionPolicy");
    cJSON_AddBoolToObject(pol, "enabled", s->share_retention_days > 0);
    if (s->share_retention_days > 0)
        cJSON_AddNumberToObject(pol, "days", s->share_retention_days);
    cJSON *sku = cJSON_AddObjectToObject(j, "sku");
    cJSON_AddStringToObject(sku, "name", s->sku);
    cJSON_AddStringToObject(sku, "tier", azsim__account_premium(s) ? "Premium" : "Standard");
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
    d8_buf_release(&id);
}

static void usage_item(cJSON *arr, const char *name, const char *local, double cur, uint64_t lim)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "unit", "Count");
    cJSON_AddNumberToObject(u, "currentValue", cur);
    /* aci.quota 0 means no quota here; ARM always reports one. */
    cJSON_AddNumberToObject(u, "limit", lim ? (double)lim : 2147483647.0);
    cJSON *n = cJSON_AddObjectToObject(u, "name");
    cJSON_AddStringToObject(n, "value", name);
    cJSON_AddStringToObject(n, "localizedValue", local);
    cJSON_AddItemToArray(arr, u);
}

/* Location_ListUsage: the subscription's groups and the cores of those not
 * stopped in the region, against aci.quota (as the create admits them). */
static void usages_list(azsim__rq_t *q)
{
    const char *loc = q->seg[5];
    double groups = 0, cores = 0;
    for (const azsim__ent_t *e = azsim__table_first(&q->sim->groups); e;
         e = azsim__table_next(&q->sim->groups, e)) {
        const azsim__group_t *g = (const azsim__group_t *)e;
        if (!azsim__ieq(g->sub, q->sub) || !azsim__ieq(g->location, loc))
            continue;
        groups++;
        if (g->power != AZSIM__POW_STOPPED)
            cores += g->cores;
    }
    cJSON *v = cJSON_CreateArray();
    usage_item(v, "ContainerGroups", "Container Groups", groups, q->sim->aci.quota_groups);
    usage_item(v, "StandardCores", "Standard Cores", cores, q->sim->aci.quota_cores);
    answer_list(q, v);
}

/* Location_ListCapabilities: Linux and Windows container groups without
 * GPU, up to arm.maxCpu and arm.maxMemoryInGB (the spec example's shape). */
static void capabilities_list(azsim__rq_t *q)
{
    const azsim_arm_opts_t *a = &q->sim->arm;
    cJSON *v = cJSON_CreateArray();
    static const char *const os[] = {"Linux", "Windows"};
    for (size_t i = 0; i < 2; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "resourceType", "containerGroups");
        cJSON_AddStringToObject(c, "osType", os[i]);
        cJSON_AddStringToObject(c, "location", q->seg[5]);
        cJSON_AddStringToObject(c, "ipAddressType", "Public");
        cJSON_AddStringToObject(c, "gpu", "None");
        cJSON *cap = cJSON_AddObjectToObject(c, "capabilities");
        cJSON_AddNumberToObject(cap, "maxMemoryInGB", a->max_memory_gb);
        cJSON_AddNumberToObject(cap, "maxCpu", a->max_cpu);
        cJSON_AddNumberToObject(cap, "maxGpuCount", 0);
        cJSON_AddItemToArray(v, c);
    }
    answer_list(q, v);
}

void azsim__arm_read_route(azsim__rq_t *q)
{
    switch (q->op) {
    case AZSIM__OP_PROVIDER_GET:
        provider_get(q);
        break;
    case AZSIM__OP_RG_GET:
        rg_get(q);
        break;
    case AZSIM__OP_PERMISSIONS_LIST:
    case AZSIM__OP_RESOURCE_PERMISSIONS_LIST:
        permissions_list(q);
        break;
    case AZSIM__OP_FILE_SERVICE_GET:
        file_service_get(q);
        break;
    case AZSIM__OP_USAGE_LIST:
    case AZSIM__OP_CAPABILITIES_LIST:
        /* ACI's location reads need the provider, as its other calls do. */
        if (!azsim__aci_registered(q))
            break;
        if (q->op == AZSIM__OP_USAGE_LIST)
            usages_list(q);
        else
            capabilities_list(q);
        break;
    default:
        break;
    }
}
