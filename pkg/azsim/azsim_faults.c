/*
 * pkg/azsim: injected faults (azsim.h, azsim_faults_t): one reader of
 * their JSON form (the config's `faults:` section and POST
 * /_azsim/faults), the latency fault, the errors rolled before the token
 * is checked, and ARM's 403 AuthorizationFailed after it.
 */
#include "azsim_int.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A field of azsim_faults_t: its JSON name, kind ('r'ate 0..1, 'm'illi-
 * seconds as uint64_t, 's'econds as int) and offset. */
typedef struct fault_key {
    const char *name;
    char kind;
    size_t off;
} fault_key_t;

#define F(field) offsetof(azsim_faults_t, field)
static const fault_key_t keys[] = {
    {"rate500", 'r', F(rate500)},
    {"rate503", 'r', F(rate503)},
    {"rate429", 'r', F(rate429)},
    {"rate403", 'r', F(rate403)},
    {"rate403Reads", 'r', F(rate403_reads)},
    {"rate403Writes", 'r', F(rate403_writes)},
    {"rate403Deletes", 'r', F(rate403_deletes)},
    {"resetRate", 'r', F(reset_rate)},
    {"latencyMs", 'm', F(latency_ms)},
    {"jitterMs", 'm', F(jitter_ms)},
    {"failProvisioningRate", 'r', F(fail_provisioning_rate)},
    {"retryAfterSeconds", 's', F(retry_after_s)},
    {"failStopRate", 'r', F(fail_stop_rate)},
    {"failDeleteRate", 'r', F(fail_delete_rate)},
};
#undef F
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

int azsim__faults_parse(azsim_faults_t *f, const cJSON *j, const cJSON **at, char *err,
                        size_t errlen)
{
    *at = j;
    if (!cJSON_IsObject(j)) {
        snprintf(err, errlen, "faults: expected a mapping");
        return -1;
    }
    for (const cJSON *it = j->child; it; it = it->next) {
        size_t k;
        for (k = 0; k < NKEYS; k++)
            if (strcmp(it->string, keys[k].name) == 0)
                break;
        *at = it;
        if (k == NKEYS) {
            snprintf(err, errlen, "%s: unknown fault", it->string);
            return -1;
        }
        double v = it->valuedouble;
        int ok = cJSON_IsNumber(it) && isfinite(v) && v >= 0;
        ok = ok && (keys[k].kind == 'r' ? v <= 1 : v <= 3600000 && floor(v) == v);
        if (!ok) {
            snprintf(err, errlen, "%s: expected %s", it->string,
                     keys[k].kind == 'r' ? "a number from 0 to 1"
                                         : "a whole number from 0 to 3600000");
            return -1;
        }
        /* memcpy through the field's offset: no aliasing through casts. */
        char *field = (char *)f + keys[k].off;
        uint64_t ms = (uint64_t)v;
        int n = (int)v;
        if (keys[k].kind == 'r')
            memcpy(field, &v, sizeof(v));
        else if (keys[k].kind == 'm')
            memcpy(field, &ms, sizeof(ms));
        else
            memcpy(field, &n, sizeof(n));
    }
    return 0;
}

cJSON *azsim__faults_json(const azsim_faults_t *f)
{
    cJSON *j = cJSON_CreateObject();
    for (size_t k = 0; k < NKEYS; k++) {
        const char *field = (const char *)f + keys[k].off;
        double v = 0;
        uint64_t ms = 0;
        int n = 0;
        if (keys[k].kind == 'r') {
            memcpy(&v, field, sizeof(v));
        } else if (keys[k].kind == 'm') {
            memcpy(&ms, field, sizeof(ms));
            v = (double)ms;
        } else {
            memcpy(&n, field, sizeof(n));
            v = n;
        }
        cJSON_AddNumberToObject(j, keys[k].name, v);
    }
    return j;
}

uint64_t azsim_fault_delay_ms(azsim_t *sim, const http_request_t *req)
{
    if (azsim__istarts(req->path, "/_azsim/") || strcmp(req->path, "/_azsim") == 0)
        return 0;
    uint64_t d = sim->faults.latency_ms;
    if (sim->faults.jitter_ms)
        d += (uint64_t)(azsim__rng_unit(&sim->rng_faults) * (double)(sim->faults.jitter_ms + 1));
    return d;
}

int azsim__inject_fault(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    azsim_faults_t *f = &sim->faults;
    if (f->reset_rate <= 0 && f->rate500 <= 0 && f->rate503 <= 0 && f->rate429 <= 0)
        return 0;
    double x = azsim__rng_unit(&sim->rng_faults);
    if (x < f->reset_rate) {
        q->resp->reset = 1;
        q->resp->status = 0;
        return 1;
    }
    x -= f->reset_rate;
    char tracking[37];
    azsim__uuid(sim, tracking);
    if (x < f->rate500) {
        char ts[32];
        d8_rfc3339(q->wall, ts);
        azsim__arm_error(q->resp, 500, "InternalServerError",
                         "Encountered internal server error. Diagnostic information: timestamp "
                         "'%s', tracking id '%s'.",
                         ts, tracking);
        return 1;
    }
    x -= f->rate500;
    if (x < f->rate503) {
        azsim__header(q->resp, "Retry-After", "%d", f->retry_after_s);
        azsim__arm_error(q->resp, 503, "ServiceUnavailable",
                         "The service is temporarily unavailable. Please retry later. Tracking "
                         "id '%s'.",
                         tracking);
        return 1;
    }
    x -= f->rate503;
    if (x < f->rate429) {
        azsim__header(q->resp, "Retry-After", "%d", f->retry_after_s);
        azsim__arm_error(q->resp, 429, "TooManyRequests",
                         "The request is being throttled. Please retry after %d seconds.",
                         f->retry_after_s);
        return 1;
    }
    return 0;
}

/* The RBAC action an operation needs ("Microsoft.Storage/storageAccounts/
 * read"), and how many trailing path segments to drop to reach the scope
 * it is checked on (a list: its parent; an action: its resource). */
static const char *op_action(int op, size_t *drop)
{
    *drop = 0;
    switch (op) {
    case AZSIM__OP_CG_CREATE:
    case AZSIM__OP_CG_UPDATE:
        return "Microsoft.ContainerInstance/containerGroups/write";
    case AZSIM__OP_CG_DELETE:
        return "Microsoft.ContainerInstance/containerGroups/delete";
    case AZSIM__OP_CG_LIST:
    case AZSIM__OP_CG_LIST_RG:
        *drop = 3;
        return "Microsoft.ContainerInstance/containerGroups/read";
    case AZSIM__OP_CG_START:
    case AZSIM__OP_CG_STOP:
    case AZSIM__OP_CG_RESTART:
        *drop = 1;
        return op == AZSIM__OP_CG_START ? "Microsoft.ContainerInstance/containerGroups/start/action"
               : op == AZSIM__OP_CG_STOP ? "Microsoft.ContainerInstance/containerGroups/stop/action"
                                         : "Microsoft.ContainerInstance/containerGroups/restart/"
                                           "action";
    case AZSIM__OP_CG_OPSTATUS:
    case AZSIM__OP_CG_OPRESULT:
        return "Microsoft.ContainerInstance/locations/operations/read";
    case AZSIM__OP_CG_LOGS:
        *drop = 3;
        return "Microsoft.ContainerInstance/containerGroups/containers/logs/read";
    case AZSIM__OP_FS_CREATE:
    case AZSIM__OP_FS_UPDATE:
        return "Microsoft.Storage/storageAccounts/fileServices/shares/write";
    case AZSIM__OP_FS_DELETE:
        return "Microsoft.Storage/storageAccounts/fileServices/shares/delete";
    case AZSIM__OP_FS_LIST:
        *drop = 1;
        return "Microsoft.Storage/storageAccounts/fileServices/shares/read";
    case AZSIM__OP_FS_RESTORE:
        *drop = 1;
        return "Microsoft.Storage/storageAccounts/fileServices/shares/restore/action";
    case AZSIM__OP_SA_LISTKEYS:
        *drop = 1;
        return "Microsoft.Storage/storageAccounts/listkeys/action";
    case AZSIM__OP_SA_GET:
        return "Microsoft.Storage/storageAccounts/read";
    default:
        return "Microsoft.ContainerInstance/containerGroups/read";
    }
}

int azsim__authz_fault(azsim__rq_t *q, int cls)
{
    const azsim_faults_t *f = &q->sim->faults;
    double p = f->rate403 + (cls == 'r'   ? f->rate403_reads
                             : cls == 'd' ? f->rate403_deletes
                                          : f->rate403_writes);
    if (p <= 0 || azsim__rng_unit(&q->sim->rng_faults) >= p)
        return 0;
    size_t drop;
    const char *action = op_action(q->op, &drop);
    d8_buf_t scope;
    d8_buf_init(&scope);
    for (size_t i = 0; i + drop < q->nseg; i++)
        d8_buf_printf(&scope, "/%s", q->seg[i]);
    const char *app = q->client_app[0] ? q->client_app : "00000000-0000-0000-0000-000000000000";
    /* A service principal's object id is not in the token azsim issues;
     * observed messages of service principals repeat the client's id. */
    azsim__arm_error(q->resp, 403, "AuthorizationFailed",
                     "The client '%s' with object id '%s' does not have authorization to perform "
                     "action '%s' over scope '%s' or the scope is invalid. If access was recently "
                     "granted, please refresh your credentials.",
                     app, app, action, scope.len ? scope.data : "/");
    d8_buf_release(&scope);
    return 1;
}
