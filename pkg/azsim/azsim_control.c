/*
 * pkg/azsim: the /_azsim control API tests drive the emulator with: the
 * faults to inject, the ACI, Storage and paging settings, the statistics,
 * every resource, and a reset (the switches of shares and accounts are in
 * azsim_storage.c). It needs no token and stays out of the faults and the
 * statistics.
 */
#include "azsim_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The JSON object body of a POST (owned), or NULL after answering 400. */
static cJSON *object_body(azsim__rq_t *q)
{
    cJSON *j = cJSON_ParseWithLength(q->req->body, q->req->body_len);
    if (cJSON_IsObject(j))
        return j;
    cJSON_Delete(j);
    azsim__arm_error(q->resp, 400, "InvalidJson", "The body must be a JSON object.");
    return NULL;
}

/* GET or POST /_azsim/faults: a POST body changes the named faults, all
 * or none; both answer the faults now in force. /_azsim/reset restores
 * the config's. */
static void ctl_faults(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    if (strcmp(q->req->method, "POST") == 0) {
        cJSON *j = object_body(q);
        if (!j)
            return;
        /* Validate everything before applying anything. */
        azsim_faults_t f = sim->faults;
        const cJSON *at = NULL;
        char err[256];
        int rc = azsim__faults_parse(&f, j, &at, err, sizeof(err));
        cJSON_Delete(j);
        if (rc < 0) {
            azsim__arm_error(q->resp, 400, "InvalidFault", "%s", err);
            return;
        }
        sim->faults = f;
    }
    cJSON *out = azsim__faults_json(&sim->faults);
    azsim__json_body(q->resp, 200, out);
    cJSON_Delete(out);
}

/*
 * One section of settings served at /_azsim/<section>: POST parses the
 * body into a copy of the live settings and swaps it in only when all of
 * it is valid (all or nothing); both methods answer the settings.
 */
typedef struct settings_ops {
    const char *error_code; /* "InvalidAciSettings" */
    void *(*dup)(const void *live);
    int (*parse)(void *o, const cJSON *j, const cJSON **at, char *err, size_t errlen);
    void (*swap)(void *live, void *o); /* releases live, moves o in, frees o */
    void (*drop)(void *o);             /* releases and frees a copy */
    cJSON *(*json)(const void *live);
} settings_ops_t;

/* GET or POST /_azsim/<section> for the live settings `live`. */
static void ctl_settings(azsim__rq_t *q, void *live, const settings_ops_t *ops)
{
    if (strcmp(q->req->method, "POST") == 0) {
        cJSON *j = object_body(q);
        if (!j)
            return;
        void *tmp = ops->dup(live);
        const cJSON *at = NULL;
        char err[256];
        int rc = ops->parse(tmp, j, &at, err, sizeof(err));
        cJSON_Delete(j);
        if (rc < 0) {
            ops->drop(tmp);
            azsim__arm_error(q->resp, 400, ops->error_code, "%s", err);
            return;
        }
        ops->swap(live, tmp);
    }
    cJSON *out = ops->json(live);
    azsim__json_body(q->resp, 200, out);
    cJSON_Delete(out);
}

/* The ACI settings (the config's `aci:`) as a settings section. */
static void *aci_dup(const void *live)
{
    azsim_aci_opts_t *o = d8_xmalloc(sizeof(*o));
    azsim__aci_opts_copy(o, live);
    return o;
}

static int aci_parse(void *o, const cJSON *j, const cJSON **at, char *err, size_t errlen)
{
    return azsim__aci_opts_parse(o, j, at, err, errlen);
}

static void aci_swap(void *live, void *o)
{
    azsim__aci_opts_release(live);
    memcpy(live, o, sizeof(azsim_aci_opts_t));
    free(o);
}

static void aci_drop(void *o)
{
    azsim__aci_opts_release(o);
    free(o);
}

static cJSON *aci_json(const void *live)
{
    return azsim__aci_opts_json(live);
}

static const settings_ops_t aci_settings = {
    "InvalidAciSettings", aci_dup, aci_parse, aci_swap, aci_drop, aci_json};

/* The Storage settings (the config's `storage:`) as a settings section. */
static void *storage_dup(const void *live)
{
    azsim_storage_opts_t *o = d8_xmalloc(sizeof(*o));
    azsim__storage_opts_copy(o, live);
    return o;
}

static int storage_parse(void *o, const cJSON *j, const cJSON **at, char *err, size_t errlen)
{
    return azsim__storage_opts_parse(o, j, at, err, errlen);
}

static void storage_swap(void *live, void *o)
{
    azsim__storage_opts_release(live);
    memcpy(live, o, sizeof(azsim_storage_opts_t));
    free(o);
}

static void storage_drop(void *o)
{
    azsim__storage_opts_release(o);
    free(o);
}

static cJSON *storage_json(const void *live)
{
    return azsim__storage_opts_json(live);
}

static const settings_ops_t storage_settings = {
    "InvalidStorageSettings", storage_dup, storage_parse, storage_swap, storage_drop, storage_json};

/* The settings of preflight's reads (the config's `arm:`). */
static void *arm_dup(const void *live)
{
    azsim_arm_opts_t *o = d8_xmalloc(sizeof(*o));
    azsim__arm_opts_copy(o, live);
    return o;
}

static int arm_parse(void *o, const cJSON *j, const cJSON **at, char *err, size_t errlen)
{
    return azsim__arm_opts_parse(o, j, at, err, errlen);
}

static void arm_swap(void *live, void *o)
{
    azsim__arm_opts_release(live);
    memcpy(live, o, sizeof(azsim_arm_opts_t));
    free(o);
}

static void arm_drop(void *o)
{
    azsim__arm_opts_release(o);
    free(o);
}

static cJSON *arm_json(const void *live)
{
    return azsim__arm_opts_json(live);
}

static const settings_ops_t arm_settings = {
    "InvalidArmSettings", arm_dup, arm_parse, arm_swap, arm_drop, arm_json};

/* GET or POST /_azsim/paging: as /_azsim/aci, for the paging settings
 * and the page size (the form of the config's `paging:`). */
static void ctl_paging(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    if (strcmp(q->req->method, "POST") == 0) {
        cJSON *j = object_body(q);
        if (!j)
            return;
        azsim_paging_opts_t p = sim->paging;
        size_t size = sim->page_size;
        const cJSON *at = NULL;
        char err[256];
        int rc = azsim__paging_parse(&p, &size, j, &at, err, sizeof(err));
        cJSON_Delete(j);
        if (rc < 0) {
            azsim__arm_error(q->resp, 400, "InvalidPagingSettings", "%s", err);
            return;
        }
        sim->paging = p;
        sim->page_size = size;
    }
    cJSON *out = azsim__paging_json(&sim->paging, sim->page_size);
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
        if (s->marker) /* the emulator's stand-in for the share's files */
            cJSON_AddStringToObject(j, "azsimMarker", s->marker);
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
        ctl_settings(q, &q->sim->aci, &aci_settings);
        break;
    case AZSIM__OP_CTL_STORAGE:
        ctl_settings(q, &q->sim->storage, &storage_settings);
        break;
    case AZSIM__OP_CTL_ARM:
        ctl_settings(q, &q->sim->arm, &arm_settings);
        break;
    case AZSIM__OP_CTL_PAGING:
        ctl_paging(q);
        break;
    case AZSIM__OP_CTL_SHARES:
        azsim__ctl_shares(q);
        break;
    case AZSIM__OP_CTL_ACCOUNTS:
        azsim__ctl_accounts(q);
        break;
    case AZSIM__OP_CTL_REGENERATE_KEY:
        azsim__ctl_regenerate_key(q);
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
