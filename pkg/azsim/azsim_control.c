/*
 * pkg/azsim: the /_azsim control API tests drive the emulator with: the
 * faults to inject, the statistics, every resource, and a reset. It needs
 * no token and stays out of the faults and the statistics.
 */
#include "azsim_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *faults_json(const azsim__faults_t *f)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "rate500", f->rate500);
    cJSON_AddNumberToObject(j, "rate503", f->rate503);
    cJSON_AddNumberToObject(j, "rate429", f->rate429);
    cJSON_AddNumberToObject(j, "resetRate", f->reset_rate);
    cJSON_AddNumberToObject(j, "latencyMs", (double)f->latency_ms);
    cJSON_AddNumberToObject(j, "jitterMs", (double)f->jitter_ms);
    cJSON_AddNumberToObject(j, "failProvisioningRate", f->fail_provisioning_rate);
    cJSON_AddNumberToObject(j, "retryAfterSeconds", f->retry_after_s);
    cJSON_AddNumberToObject(j, "failStopRate", f->fail_stop_rate);
    cJSON_AddNumberToObject(j, "failDeleteRate", f->fail_delete_rate);
    return j;
}

/* The fields POST /_azsim/faults takes, in the order of set_fault. */
static const struct {
    const char *name;
    int kind; /* 'r'ate 0..1, 'm'illiseconds, 's'econds */
} fault_keys[] = {{"rate500", 'r'},
                  {"rate503", 'r'},
                  {"rate429", 'r'},
                  {"resetRate", 'r'},
                  {"latencyMs", 'm'},
                  {"jitterMs", 'm'},
                  {"failProvisioningRate", 'r'},
                  {"retryAfterSeconds", 's'},
                  {"failStopRate", 'r'},
                  {"failDeleteRate", 'r'}};

/* Sets the field fault_keys[k] of f to v, which has been checked. */
static void set_fault(azsim__faults_t *f, size_t k, double v)
{
    switch (k) {
    case 0:
        f->rate500 = v;
        break;
    case 1:
        f->rate503 = v;
        break;
    case 2:
        f->rate429 = v;
        break;
    case 3:
        f->reset_rate = v;
        break;
    case 4:
        f->latency_ms = (uint64_t)v;
        break;
    case 5:
        f->jitter_ms = (uint64_t)v;
        break;
    case 6:
        f->fail_provisioning_rate = v;
        break;
    case 7:
        f->retry_after_s = (int)v;
        break;
    case 8:
        f->fail_stop_rate = v;
        break;
    default:
        f->fail_delete_rate = v;
        break;
    }
}

/*
 * Sets in f every field of the JSON object j (borrowed). Returns 1, or
 * answers 400 InvalidFault at the first unknown or out-of-range field and
 * returns 0, f then partly changed.
 */
static int parse_faults(azsim__rq_t *q, const cJSON *j, azsim__faults_t *f)
{
    const size_t nkeys = sizeof(fault_keys) / sizeof(fault_keys[0]);
    for (const cJSON *it = j->child; it; it = it->next) {
        size_t k;
        for (k = 0; k < nkeys; k++)
            if (strcmp(it->string, fault_keys[k].name) == 0)
                break;
        if (k == nkeys) {
            azsim__arm_error(q->resp, 400, "InvalidFault", "Unknown fault field '%s'.", it->string);
            return 0;
        }
        double v = it->valuedouble;
        int ok = cJSON_IsNumber(it) && isfinite(v) && v >= 0;
        if (fault_keys[k].kind == 'r')
            ok = ok && v <= 1;
        else
            ok = ok && v <= 3600000;
        if (!ok) {
            azsim__arm_error(q->resp, 400, "InvalidFault",
                             fault_keys[k].kind == 'r'
                                 ? "Field '%s' must be a number between 0 and 1."
                                 : "Field '%s' must be a non-negative number.",
                             it->string);
            return 0;
        }
        set_fault(f, k, v);
    }
    return 1;
}

/* GET or POST /_azsim/faults: a POST body changes the named faults, all
 * or none; both answer the faults now in force. */
static void ctl_faults(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    if (strcmp(q->req->method, "POST") == 0) {
        cJSON *j = cJSON_ParseWithLength(q->req->body, q->req->body_len);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            azsim__arm_error(q->resp, 400, "InvalidJson", "The body must be a JSON object.");
            return;
        }
        /* Validate everything before applying anything. */
        azsim__faults_t f = sim->faults;
        int ok = parse_faults(q, j, &f);
        cJSON_Delete(j);
        if (!ok)
            return;
        sim->faults = f;
    }
    cJSON *out = faults_json(&sim->faults);
    azsim__json_body(q->resp, 200, out);
    cJSON_Delete(out);
}

/* GET or POST /_azsim/aci: a POST body (the JSON form of the config's
 * `aci:` section) changes the named ACI behaviours, all or none; both
 * answer the behaviours now in force. /_azsim/reset restores the config's. */
static void ctl_aci(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    if (strcmp(q->req->method, "POST") == 0) {
        cJSON *j = cJSON_ParseWithLength(q->req->body, q->req->body_len);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            azsim__arm_error(q->resp, 400, "InvalidJson", "The body must be a JSON object.");
            return;
        }
        azsim_aci_opts_t tmp;
        azsim__aci_opts_copy(&tmp, &sim->aci);
        const cJSON *at = NULL;
        char err[256];
        int rc = azsim__aci_opts_parse(&tmp, j, &at, err, sizeof(err));
        cJSON_Delete(j);
        if (rc < 0) {
            azsim__aci_opts_release(&tmp);
            azsim__arm_error(q->resp, 400, "InvalidAciSettings", "%s", err);
            return;
        }
        azsim__aci_opts_release(&sim->aci);
        sim->aci = tmp;
    }
    cJSON *out = azsim__aci_opts_json(&sim->aci);
    azsim__json_body(q->resp, 200, out);
    cJSON_Delete(out);
}

/* GET /_azsim/stats: the answers counted per operation and status, the
 * deletions in order, and the counts of live resources. */
static void ctl_stats(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    d8_buf_t *b = &q->resp->body;
    d8_buf_reset(b);
    d8_buf_puts(b, "{\"requests\":{");
    int first = 1;
    for (int op = 0; op < AZSIM__OP_COUNT; op++) {
        if (sim->nstats[op] == 0)
            continue;
        d8_buf_printf(b, "%s\"%s\":{", first ? "" : ",", azsim__op_names[op]);
        first = 0;
        for (size_t i = 0; i < sim->nstats[op]; i++)
            d8_buf_printf(b, "%s\"%d\":%llu", i ? "," : "", sim->stats[op][i].status,
                          (unsigned long long)sim->stats[op][i].n);
        d8_buf_putc(b, '}');
    }
    d8_buf_puts(b, "},\"deleted\":[");
    for (size_t i = 0; i < sim->ndeleted; i++) {
        char ts[32];
        d8_rfc3339(sim->deleted[i].at_wall, ts);
        d8_buf_printf(b, "%s{\"kind\":\"%s\",\"id\":", i ? "," : "",
                      sim->deleted[i].kind == 'g' ? "containerGroup" : "fileShare");
        d8_buf_json_str(b, sim->deleted[i].id);
        d8_buf_printf(b, ",\"at\":\"%s\"}", ts);
    }
    d8_buf_printf(b, "],\"counts\":{\"containerGroups\":%zu,\"fileShares\":%zu}}",
                  azsim_count_groups(sim), azsim_count_shares(sim));
    q->resp->status = 200;
    q->resp->content_type = "application/json; charset=utf-8";
}

/* GET /_azsim/resources: every container group, secrets included, and
 * every live file share. */
static void ctl_resources(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    d8_buf_t *b = &q->resp->body;
    d8_buf_reset(b);
    d8_buf_puts(b, "{\"containerGroups\":[");
    int first = 1;
    for (azsim__ent_t *e = azsim__table_first(&sim->groups); e;
         e = azsim__table_next(&sim->groups, e)) {
        cJSON *j = azsim__group_json(sim, (azsim__group_t *)e, 'f', q->now);
        char *s = cJSON_PrintUnformatted(j);
        d8_buf_printf(b, "%s%s", first ? "" : ",", s);
        first = 0;
        free(s);
        cJSON_Delete(j);
    }
    d8_buf_puts(b, "],\"fileShares\":[");
    first = 1;
    for (azsim__ent_t *e = azsim__table_first(&sim->shares); e;
         e = azsim__table_next(&sim->shares, e)) {
        const azsim__share_t *s = (const azsim__share_t *)e;
        if (s->deleted)
            continue;
        cJSON *j = azsim__share_json(s, 'g');
        char *t = cJSON_PrintUnformatted(j);
        d8_buf_printf(b, "%s%s", first ? "" : ",", t);
        first = 0;
        free(t);
        cJSON_Delete(j);
    }
    d8_buf_puts(b, "]}");
    q->resp->status = 200;
    q->resp->content_type = "application/json; charset=utf-8";
}

void azsim__control(azsim__rq_t *q, int bad_method)
{
    switch (q->op) {
    case AZSIM__OP_CTL_FAULTS:
        ctl_faults(q);
        break;
    case AZSIM__OP_CTL_STATS:
        ctl_stats(q);
        break;
    case AZSIM__OP_CTL_RESOURCES:
        ctl_resources(q);
        break;
    case AZSIM__OP_CTL_ACI:
        ctl_aci(q);
        break;
    case AZSIM__OP_CTL_RESET:
        azsim__reset(q->sim);
        q->resp->status = 204;
        break;
    default:
        if (bad_method)
            azsim__arm_error(q->resp, 405, "MethodNotAllowed",
                             "The method '%s' is not allowed on '%s'.", q->req->method,
                             q->req->path);
        else
            azsim__arm_error(q->resp, 404, "NotFound", "No control endpoint '%s'.", q->req->path);
    }
}
