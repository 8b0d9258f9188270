/*
 * pkg/azsim: container group requests (Microsoft.ContainerInstance) and
 * their asynchronous operations. The containers' lives are in
 * azsim_aci_run.c, the checks before a request is accepted in
 * azsim_aci_admit.c, the rendering in azsim_aci_view.c.
 *
 *   PUT new       -> 201, provisioningState Creating, instanceView Pending;
 *                    a deployment (pull, start) then Succeeded + Running,
 *                    or Failed.
 *   PUT existing  -> 200; a changed spec (or a Failed group) deploys again
 *                    (Updating); an unchanged one restarts the running
 *                    containers in place (aci.identicalPutRestarts) or
 *                    deploys a stopped or exited group as new. ACI has no
 *                    conditional PUT: If-Match and If-None-Match are not
 *                    read. osType, restartPolicy, resources and the network
 *                    profile cannot change (InvalidContainerGroupUpdate).
 *   DELETE        -> 202 (Deleting), gone after delete_ms; 204 when absent.
 *                    A deployment in flight ends Canceled (a create or
 *                    update shows provisioningState Canceled until gone).
 *   start         -> 202 on a stopped or exited group (a new deployment),
 *                    204 when running or starting.
 *   stop          -> 204: Stopped, IP released; no effect on a group whose
 *                    containers exited (instance state Succeeded/Failed).
 *   restart       -> 204: running containers restart in place.
 *
 * 409 ContainerGroupTransitioning answers start, stop and restart while a
 * deployment runs (a start of a starting or running group stays a 204),
 * and these and delete for aci.transitionMs after a start, stop or
 * restart; otherwise a delete cancels a deployment in flight.
 *
 * The IP address is assigned when provisioning starts (the PUT answer
 * already shows it, as in the official examples). Like ACI, a stopped
 * group gives up its public IP and gets a new one when started again.
 */
#include "azsim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CG_TYPE "Microsoft.ContainerInstance/containerGroups"
#define MAX_OPS 100000

void azsim__group_free(azsim__group_t *g)
{
    if (!g)
        return;
    free(g->id);
    free(g->name);
    free(g->sub);
    free(g->rg);
    free(g->location);
    free(g->spec);
    free(g->props_text);
    free(g->op_id);
    free(g->fqdn);
    free(g->label_hash);
    free(g->rule_image);
    for (size_t i = 0; i < g->nimages; i++)
        free(g->images[i]);
    free(g->images);
    cJSON_Delete(g->cevents);
    cJSON_Delete(g->gevents);
    cJSON_Delete(g->logs);
    free(g);
}

void azsim__op_free(azsim__op_t *op)
{
    if (!op)
        return;
    free(op->resource_id);
    free(op->err_code);
    free(op->err_msg);
    free(op);
}

/* ---- operations --------------------------------------------------------- */

/*
 * Records a new operation of g ('C'reate/update, 'D'elete, 'S'tart) done
 * at done_at and makes it g's latest; at most MAX_OPS are kept, oldest
 * out. Its Retry-After points at hint_at (the end Azure can foresee).
 */
static azsim__op_t *new_op(azsim__rq_t *q, azsim__group_t *g, int kind, uint64_t done_at,
                           uint64_t hint_at)
{
    azsim_t *sim = q->sim;
    while (sim->ops.count >= MAX_OPS) {
        azsim__op_t *old = (azsim__op_t *)azsim__table_first(&sim->ops);
        azsim__table_del(&sim->ops, &old->e);
        azsim__op_free(old);
    }
    azsim__op_t *op = d8_xcalloc(1, sizeof(*op));
    char id[37];
    azsim__uuid(sim, id);
    op->resource_id = d8_xstrdup(g->id);
    op->kind = kind;
    op->done_at = done_at;
    op->hint_at = hint_at < done_at ? hint_at : done_at;
    op->final = AZSIM__OPST_SUCCEEDED;
    op->start_wall = q->wall;
    op->end_wall = azsim__wall_of(sim, done_at);
    azsim__table_put(&sim->ops, &op->e, id);
    free(g->op_id);
    g->op_id = d8_xstrdup(id);
    return op;
}

azsim__op_t *azsim__find_op(azsim_t *sim, const char *id)
{
    if (!id)
        return NULL;
    char key[64];
    snprintf(key, sizeof(key), "%s", id);
    return (azsim__op_t *)azsim__table_get(&sim->ops, azsim__lower(key));
}

void azsim__op_fail(azsim__op_t *op, const char *code, const char *msg)
{
    if (!op || op->final != AZSIM__OPST_SUCCEEDED)
        return;
    op->final = AZSIM__OPST_FAILED;
    free(op->err_code);
    free(op->err_msg);
    op->err_code = d8_xstrdup(code);
    op->err_msg = d8_xstrdup(msg);
}

/* Ends an operation in flight at the request's time as Canceled. */
static void cancel_op(azsim__rq_t *q, azsim__op_t *op)
{
    op->final = AZSIM__OPST_CANCELED;
    op->done_at = op->hint_at = q->now;
    op->end_wall = q->wall;
    free(op->err_code);
    free(op->err_msg);
    op->err_code = d8_xstrdup("Canceled");
    op->err_msg = d8_xstrdup("The operation was canceled because the container group is being "
                             "deleted.");
}

/* Seconds to wait for op: until its foreseeable end, or, once that has
 * passed, the provisioning delay again (at least 1 s). */
static int retry_after_s(const azsim__rq_t *q, const azsim__op_t *op)
{
    uint64_t ms = op->hint_at > q->now ? op->hint_at - q->now : q->sim->o.provision_ms;
    int s = (int)((ms + 999) / 1000);
    return s < 1 ? 1 : s;
}

/* Azure-AsyncOperation, Location and Retry-After for an operation. */
static void lro_headers(azsim__rq_t *q, const azsim__group_t *g, const azsim__op_t *op)
{
    d8_buf_t path, url;
    d8_buf_init(&path);
    d8_buf_init(&url);
    d8_buf_printf(&path,
                  "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerInstance/"
                  "locations/%s/operations/%s",
                  g->sub, g->rg, g->location, op->e.key);
    azsim__url(q, &url, path.data);
    azsim__header(q->resp, "Azure-AsyncOperation", "%s", url.data);
    d8_buf_reset(&path);
    d8_buf_reset(&url);
    d8_buf_printf(&path,
                  "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerInstance/"
                  "locations/%s/operationResults/%s",
                  g->sub, g->rg, g->location, op->e.key);
    azsim__url(q, &url, path.data);
    azsim__header(q->resp, "Location", "%s", url.data);
    azsim__header(q->resp, "Retry-After", "%d", retry_after_s(q, op));
    d8_buf_release(&path);
    d8_buf_release(&url);
}

/* ---- helpers ------------------------------------------------------------ */

static void group_key(const azsim__rq_t *q, char *out, size_t outlen)
{
    snprintf(out, outlen,
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerInstance/"
             "containerGroups/%s",
             q->seg[1], q->seg[3], q->seg[7]);
    azsim__lower(out);
}

static azsim__group_t *find_group(azsim__rq_t *q)
{
    char key[1024];
    group_key(q, key, sizeof(key));
    return (azsim__group_t *)azsim__table_get(&q->sim->groups, key);
}

static void not_found(azsim__rq_t *q)
{
    azsim__arm_error(q->resp, 404, "ResourceNotFound",
                     "The Resource '" CG_TYPE "/%s' under resource group '%s' was not found. For "
                     "more details please go to https://aka.ms/ARMResourceNotFoundFix",
                     q->seg[7], q->seg[3]);
}

static void transitioning(azsim__rq_t *q, const azsim__group_t *g)
{
    azsim__arm_error(q->resp, 409, "ContainerGroupTransitioning",
                     "The container group '%s' is still transitioning, please retry later.",
                     g->name);
}

static void add_time(cJSON *o, const char *key, int64_t wall)
{
    char ts[32];
    d8_rfc3339(wall, ts);
    cJSON_AddStringToObject(o, key, ts);
}

static void render(azsim__rq_t *q, int status, const azsim__group_t *g, int mode)
{
    cJSON *j = azsim__group_json(q->sim, g, mode, q->now);
    azsim__json_body(q->resp, status, j);
    cJSON_Delete(j);
}

static int being_deleted(const azsim__group_t *g)
{
    return g->prov == AZSIM__PROV_DELETING || g->prov == AZSIM__PROV_CANCELED;
}

static int exited(const azsim__group_t *g)
{
    return g->power == AZSIM__POW_SUCCEEDED || g->power == AZSIM__POW_FAILED;
}

/* The group transitions until `until` (a deployment's end), and after a
 * start, stop or restart (kind 'T') for aci.transitionMs, when deletes
 * transition too; a deployment alone ('C') is canceled by a delete. */
static void busy(azsim__rq_t *q, azsim__group_t *g, uint64_t until, char kind)
{
    uint64_t t = q->now + q->sim->aci.transition_ms;
    g->trans_until = kind == 'T' ? t : g->trans_until;
    g->busy_until = kind == 'T' && t > until ? t : until;
}

/* Starts a deployment of g and records its operation (kind 'C' or 'S'). */
static azsim__op_t *deploy(azsim__rq_t *q, azsim__group_t *g, int prov, int kind)
{
    uint64_t settle = azsim__deploy(q->sim, g, prov, q->now);
    busy(q, g, settle, kind == 'C' ? 'C' : 'T');
    return new_op(q, g, kind, settle, q->now + q->sim->o.provision_ms);
}

/* ---- PUT ---------------------------------------------------------------- */

static void normalise_location(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < outlen; p++)
        if (*p != ' ')
            out[o++] = *p;
    out[o] = '\0';
    azsim__lower(out);
}

/*
 * Parses and validates the body of a PUT. Returns it (owned by the
 * caller), or answers 400 and returns NULL.
 */
static cJSON *put_body(azsim__rq_t *q)
{
    cJSON *body = cJSON_ParseWithLength(q->req->body, q->req->body_len);
    if (!body) {
        azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                         "The request content was invalid and could not be deserialized: the "
                         "body is not valid JSON.");
        return NULL;
    }
    if (!azsim__validate_group(body, q->resp)) {
        cJSON_Delete(body);
        return NULL;
    }
    return body;
}

/*
 * Whether a PUT of body in location may go ahead on g (NULL for a new
 * group): not while g is being deleted nor in another region; a create
 * within capacity, quotas and ACI's create rate; an update only of what
 * ACI updates in place. Otherwise answers and returns 0.
 */
static int put_allowed(azsim__rq_t *q, const azsim__group_t *g, const cJSON *body,
                       const char *location)
{
    if (g && being_deleted(g)) {
        transitioning(q, g);
        return 0;
    }
    if (g && strcmp(g->location, location) != 0) {
        azsim__arm_error(q->resp, 400, "InvalidResourceLocation",
                         "The resource '%s' already exists in location '%s' in resource group "
                         "'%s'. A resource with the same name cannot be created in location "
                         "'%s'. Please select a new resource name.",
                         g->name, g->location, g->rg, location);
        return 0;
    }
    if (g)
        return azsim__admit_update(q, g, body);
    return azsim__admit_create(q, body, location);
}

/* What a PUT stores: the compact texts of the spec and of its properties,
 * its DNS name and label hash (all owned), and the kind of IP address
 * asked for (see azsim__group_t). */
typedef struct put_spec {
    char *spec_text;
    char *props_text;
    char *fqdn, *hash;
    char ip_type;
} put_spec_t;

static void make_put_spec(const cJSON *body, const char *location, put_spec_t *out)
{
    cJSON *spec = azsim__stored_spec(body, location);
    const cJSON *iptype = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(body, "properties"), "ipAddress"), "type");
    out->ip_type = !cJSON_IsString(iptype)                      ? 0
                   : azsim__ieq(iptype->valuestring, "Private") ? 'V'
                                                                : 'P';
    out->spec_text = cJSON_PrintUnformatted(spec);
    out->props_text = cJSON_PrintUnformatted(cJSON_GetObjectItem(spec, "properties"));
    cJSON_Delete(spec);
}

/*
 * Stores a new group at the request's path, taking what s owns, and
 * starts creating it. Returns the group; *op is its create operation.
 */
static azsim__group_t *create_group(azsim__rq_t *q, const char *location, put_spec_t *s,
                                    azsim__op_t **op)
{
    azsim__group_t *g = d8_xcalloc(1, sizeof(*g));
    d8_buf_t id;
    d8_buf_init(&id);
    d8_buf_printf(&id,
                  "/subscriptions/%s/resourceGroups/%s/providers/"
                  "Microsoft.ContainerInstance/containerGroups/%s",
                  q->seg[1], q->seg[3], q->seg[7]);
    g->id = d8_buf_detach(&id, NULL);
    g->name = d8_xstrdup(q->seg[7]);
    g->sub = d8_xstrdup(q->seg[1]);
    g->rg = d8_xstrdup(q->seg[3]);
    g->location = d8_xstrdup(location);
    g->spec = s->spec_text;
    g->props_text = s->props_text;
    g->ip_type = s->ip_type;
    g->created_wall = q->wall;
    g->prov = AZSIM__PROV_CREATING;
    azsim__table_put(&q->sim->groups, &g->e, g->id);
    azsim__label_take(q->sim, g, s->fqdn, s->hash);
    azsim__read_spec_facts(g);
    *op = deploy(q, g, AZSIM__PROV_CREATING, 'C');
    return g;
}

/*
 * An unchanged PUT of g: ACI restarts running containers in place and
 * deploys a stopped or exited group as new; a deployment in flight is
 * answered again. Returns the operation to answer with.
 */
static azsim__op_t *put_unchanged(azsim__rq_t *q, azsim__group_t *g)
{
    azsim__op_t *op = azsim__find_op(q->sim, g->op_id);
    if (q->sim->aci.identical_put_restarts) {
        if (g->power == AZSIM__POW_RUNNING && q->now >= g->busy_until) {
            azsim__restart_in_place(q->sim, g, q->now);
            azsim__set_state(g, AZSIM__PROV_SUCCEEDED, -1);
            busy(q, g, q->now, 'T');
            return new_op(q, g, 'C', q->now, q->now);
        }
        if (g->power == AZSIM__POW_STOPPED || exited(g))
            return deploy(q, g, AZSIM__PROV_UPDATING, 'C');
    }
    if (!op || op->done_at <= q->now)
        op = new_op(q, g, 'C', q->now, q->now);
    return op;
}

/*
 * Replaces the spec of g with the texts of s (taken). Changed properties,
 * or a Failed group, deploy again; an unchanged spec is put_unchanged's.
 */
static azsim__op_t *update_group(azsim__rq_t *q, azsim__group_t *g, put_spec_t *s)
{
    int changed = strcmp(g->props_text, s->props_text) != 0 || g->prov == AZSIM__PROV_FAILED;
    free(g->spec);
    free(g->props_text);
    g->spec = s->spec_text;
    g->props_text = s->props_text;
    azsim__label_take(q->sim, g, s->fqdn, s->hash);
    azsim__read_spec_facts(g);
    if (g->ip_type != s->ip_type)
        g->ip[0] = '\0';
    g->ip_type = s->ip_type;
    if (changed)
        return deploy(q, g, AZSIM__PROV_UPDATING, 'C');
    return put_unchanged(q, g);
}

/* containerGroups.createOrUpdate: 201 for a new group, 200 for an update,
 * both with the headers of the long-running operation. */
static void cg_put(azsim__rq_t *q)
{
    if (!azsim__valid_cg_name(q->seg[7])) {
        azsim__arm_error(q->resp, 400, "InvalidResourceName",
                         "The resource name '%s' is invalid. Container group names must be 1 to "
                         "63 characters of lower case letters, digits and '-', and must not "
                         "start or end with '-'.",
                         q->seg[7]);
        return;
    }
    cJSON *body = put_body(q);
    if (!body)
        return;
    char location[128], key[1024];
    normalise_location(cJSON_GetObjectItem(body, "location")->valuestring, location,
                       sizeof(location));
    group_key(q, key, sizeof(key));
    azsim__group_t *g = find_group(q);
    put_spec_t spec = {0};
    int ok = put_allowed(q, g, body, location) &&
             azsim__label_claim(q, g, key, body, location, &spec.fqdn, &spec.hash) &&
             (g || azsim__throttle_aci(q, location, 'c'));
    if (ok)
        make_put_spec(body, location, &spec);
    cJSON_Delete(body);
    if (!ok) {
        free(spec.fqdn);
        free(spec.hash);
        return;
    }
    int status = g ? 200 : 201;
    azsim__op_t *op;
    if (!g)
        g = create_group(q, location, &spec, &op);
    else
        op = update_group(q, g, &spec);
    lro_headers(q, g, op);
    render(q, status, g, 'l');
}

static void cg_get(azsim__rq_t *q)
{
    azsim__group_t *g = find_group(q);
    if (!g) {
        not_found(q);
        return;
    }
    render(q, 200, g, 'g');
}

/*
 * containers/{name}/logs: the last `tail` lines of the container's log
 * (all of it without tail) as Logs {"content"}; with timestamps=true each
 * line starts with its time. An unknown container is 404.
 */
void azsim__aci_logs(azsim__rq_t *q)
{
    azsim__group_t *g = find_group(q);
    if (!g) {
        not_found(q);
        return;
    }
    if (!g->nimages || !azsim__ieq(q->seg[9], g->cname)) {
        azsim__arm_error(q->resp, 404, "ContainerNotFound",
                         "The container '%s' is not found in container group '%s'.", q->seg[9],
                         g->name);
        return;
    }
    char v[32];
    long tail = -1;
    if (azsim__param(q->req->query, "tail", v, sizeof(v)) > 0) {
        char *end;
        tail = strtol(v, &end, 10);
        if (*end || tail < 0) {
            azsim__arm_error(q->resp, 400, "InvalidParameter",
                             "The value '%s' of parameter 'tail' is not valid.", v);
            return;
        }
    }
    int stamps =
        azsim__param(q->req->query, "timestamps", v, sizeof(v)) > 0 && azsim__ieq(v, "true");
    int n = g->logs ? cJSON_GetArraySize(g->logs) : 0;
    int skip = tail >= 0 && tail < n ? n - (int)tail : 0;
    d8_buf_t text;
    d8_buf_init(&text);
    int i = 0;
    for (const cJSON *l = g->logs ? g->logs->child : NULL; l; l = l->next, i++) {
        if (i < skip)
            continue;
        const char *line = l->valuestring;
        const char *sp = strchr(line, ' ');
        d8_buf_puts(&text, stamps || !sp ? line : sp + 1);
        d8_buf_putc(&text, '\n');
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "content", text.data ? text.data : "");
    d8_buf_release(&text);
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
}

/* containerGroups.update: replaces tags and zones only, no provisioning. */
static void cg_patch(azsim__rq_t *q)
{
    azsim__group_t *g = find_group(q);
    cJSON *body = cJSON_ParseWithLength(q->req->body, q->req->body_len);
    const cJSON *tags, *zones;
    if (!azsim__validate_group_patch(body, q->resp, &tags, &zones)) {
        cJSON_Delete(body);
        return;
    }
    if (!g) {
        cJSON_Delete(body);
        not_found(q);
        return;
    }
    if (being_deleted(g)) {
        cJSON_Delete(body);
        transitioning(q, g);
        return;
    }
    cJSON *spec = cJSON_Parse(g->spec);
    if (tags) {
        cJSON_DeleteItemFromObject(spec, "tags");
        cJSON_AddItemToObject(spec, "tags", cJSON_Duplicate(tags, 1));
    }
    if (zones) {
        cJSON_DeleteItemFromObject(spec, "zones");
        cJSON_AddItemToObject(spec, "zones", cJSON_Duplicate(zones, 1));
    }
    free(g->spec);
    g->spec = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    cJSON_Delete(body);
    render(q, 200, g, 'l');
}

/*
 * containerGroups.delete: 202 with the operation's headers, 204 when
 * absent. A deployment in flight ends Canceled (after a create or update
 * the group shows provisioningState Canceled until it is gone); within
 * aci.transitionMs of a start, stop or restart: 409. The failDeleteRate
 * fault leaves the group there, provisioningState Failed, once due.
 */
static void cg_delete(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    azsim__group_t *g = find_group(q);
    if (!g) {
        q->resp->status = 204;
        return;
    }
    azsim__op_t *op = azsim__find_op(sim, g->op_id);
    if (being_deleted(g)) {
        if (!op)
            op = new_op(q, g, 'D', q->now, q->now);
        lro_headers(q, g, op);
        q->resp->status = 202;
        return;
    }
    if (q->now < g->trans_until) {
        transitioning(q, g);
        return;
    }
    if (!azsim__throttle_aci(q, g->location, 'd'))
        return;
    /* A deployment in flight (create, update or start) is canceled. */
    if (op && op->done_at > q->now && (op->kind == 'C' || op->kind == 'S'))
        cancel_op(q, op);
    int creating = g->prov == AZSIM__PROV_CREATING || g->prov == AZSIM__PROV_UPDATING;
    azsim__set_state(g, creating ? AZSIM__PROV_CANCELED : AZSIM__PROV_DELETING, -1);
    g->busy_until = g->trans_until = 0;
    g->prov_epoch++;
    g->deploy_epoch++;
    g->delete_fault = sim->faults.fail_delete_rate > 0 &&
                      azsim__rng_unit(&sim->rng_faults) < sim->faults.fail_delete_rate;
    uint64_t due = q->now + sim->o.delete_ms;
    azsim__heap_push(&sim->events, due, AZSIM__EV_DELETED, g->prov_epoch, g->e.key);
    op = new_op(q, g, 'D', due, due);
    lro_headers(q, g, op);
    q->resp->status = 202;
}

/*
 * containerGroups.stop: 204. A group whose containers exited stays as it
 * is; otherwise every container stops and the IP goes, or, under the
 * failStopRate fault, nothing stops and provisioningState turns Failed.
 */
static void cg_stop(azsim__rq_t *q, azsim__group_t *g)
{
    azsim_t *sim = q->sim;
    q->resp->status = 204;
    if (exited(g) || g->power == AZSIM__POW_STOPPED)
        return;
    if (q->now < g->busy_until) {
        transitioning(q, g);
        return;
    }
    busy(q, g, q->now, 'T');
    if (sim->faults.fail_stop_rate > 0 &&
        azsim__rng_unit(&sim->rng_faults) < sim->faults.fail_stop_rate) {
        azsim__set_state(g, AZSIM__PROV_FAILED, -1);
        g->fail_kind = 'S';
        return;
    }
    azsim__stop_containers(sim, g, q->now);
    azsim__set_state(g, AZSIM__PROV_SUCCEEDED, -1);
    g->fail_kind = 0;
}

/*
 * containerGroups.start (202 and an operation, or 204 when running or
 * starting) and restart (204): a stopped or exited group runs again as a
 * new deployment, a failed one deploys again, and restart restarts
 * running containers in place.
 */
static void cg_start(azsim__rq_t *q, azsim__group_t *g)
{
    int start = q->op == AZSIM__OP_CG_START;
    azsim__op_t *op = NULL;
    q->resp->status = 204;
    if (g->prov == AZSIM__PROV_FAILED && g->fail_kind == 'P') {
        op = deploy(q, g, AZSIM__PROV_UPDATING, 'C');
    } else if (g->power == AZSIM__POW_PENDING || g->power == AZSIM__POW_RUNNING) {
        if (start)
            return;
        if (q->now < g->busy_until || g->power == AZSIM__POW_PENDING) {
            transitioning(q, g);
            return;
        }
        azsim__restart_in_place(q->sim, g, q->now);
        azsim__set_state(g, AZSIM__PROV_SUCCEEDED, -1);
        busy(q, g, q->now, 'T');
        return;
    } else if (q->now < g->busy_until) {
        transitioning(q, g);
        return;
    } else {
        /* The view may stay stale for a while after a start (aci.staleMs). */
        g->stale_power = g->power;
        g->stale_until = q->now + q->sim->aci.stale_ms;
        op = deploy(q, g, -1, 'S');
    }
    if (start) {
        lro_headers(q, g, op);
        q->resp->status = 202;
    }
}

/* containerGroups.start, stop and restart of an existing group that is
 * not being deleted. */
static void cg_action(azsim__rq_t *q)
{
    azsim__group_t *g = find_group(q);
    if (!g) {
        not_found(q);
        return;
    }
    if (being_deleted(g)) {
        transitioning(q, g);
        return;
    }
    if (q->op == AZSIM__OP_CG_STOP)
        cg_stop(q, g);
    else
        cg_start(q, g);
}

/* containerGroups.list and listByResourceGroup: one page in insertion
 * order, with a nextLink (azsim_paging.c) when more follow. */
static void cg_list(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    char prefix[600];
    if (q->op == AZSIM__OP_CG_LIST)
        snprintf(prefix, sizeof(prefix), "/subscriptions/%s/", q->seg[1]);
    else
        snprintf(prefix, sizeof(prefix), "/subscriptions/%s/resourcegroups/%s/", q->seg[1],
                 q->seg[3]);
    azsim__lower(prefix);
    size_t plen = strlen(prefix);
    azsim__page_t pg;
    if (!azsim__page_start(q, &pg))
        return;
    d8_buf_t *b = &q->resp->body;
    d8_buf_reset(b);
    d8_buf_puts(b, "{\"value\":[");
    size_t count = 0;
    uint64_t last = pg.after;
    int more = pg.empty_now;
    for (azsim__ent_t *e = azsim__table_first(&sim->groups); e && !pg.empty_now;
         e = azsim__table_next(&sim->groups, e)) {
        if (e->seq <= pg.after || strncmp(e->key, prefix, plen) != 0)
            continue;
        if (count == pg.size) {
            more = 1;
            break;
        }
        cJSON *j = azsim__group_json(sim, (azsim__group_t *)e, 'l', q->now);
        char *s = cJSON_PrintUnformatted(j);
        d8_buf_printf(b, "%s%s", count ? "," : "", s);
        free(s);
        cJSON_Delete(j);
        count++;
        last = e->seq;
    }
    d8_buf_putc(b, ']');
    if (more)
        azsim__page_next_link(q, b, NULL, last);
    d8_buf_putc(b, '}');
    q->resp->status = 200;
    q->resp->content_type = "application/json; charset=utf-8";
}

static const char *op_status_name(const azsim__op_t *op, uint64_t now)
{
    if (now < op->done_at)
        return "InProgress";
    return op->final == AZSIM__OPST_SUCCEEDED ? "Succeeded"
           : op->final == AZSIM__OPST_FAILED  ? "Failed"
                                              : "Canceled";
}

/*
 * An operation's status (Azure-AsyncOperation URL) or its result (Location
 * URL: 202 while in progress, then the group, 204, or the error).
 */
static void op_get(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    azsim__op_t *op = azsim__find_op(sim, q->seg[9]);
    if (!op) {
        azsim__arm_error(q->resp, 404, "OperationNotFound",
                         "The operation '%s' could not be found.", q->seg[9]);
        return;
    }
    const char *st = op_status_name(op, q->now);
    int done = q->now >= op->done_at;
    if (q->op == AZSIM__OP_CG_OPRESULT) {
        if (!done) {
            azsim__header(q->resp, "Location", "%s%s?%s", q->base, q->req->path, q->req->query);
            azsim__header(q->resp, "Retry-After", "%d", retry_after_s(q, op));
            q->resp->status = 202;
            return;
        }
        if (op->final != AZSIM__OPST_SUCCEEDED) {
            azsim__arm_error(q->resp, 400, op->err_code ? op->err_code : "Failed", "%s",
                             op->err_msg ? op->err_msg : "The operation failed.");
            return;
        }
        char key[1024];
        snprintf(key, sizeof(key), "%s", op->resource_id);
        azsim__group_t *g = (azsim__group_t *)azsim__table_get(&sim->groups, azsim__lower(key));
        if (op->kind == 'C' && g)
            render(q, 200, g, 'l');
        else
            q->resp->status = 204;
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", q->req->path);
    cJSON_AddStringToObject(j, "name", op->e.key);
    cJSON_AddStringToObject(j, "status", st);
    add_time(j, "startTime", op->start_wall);
    if (done)
        add_time(j, "endTime", op->end_wall);
    else
        azsim__header(q->resp, "Retry-After", "%d", retry_after_s(q, op));
    if (done && op->final != AZSIM__OPST_SUCCEEDED) {
        cJSON *err = cJSON_AddObjectToObject(j, "error");
        cJSON_AddStringToObject(err, "code", op->err_code ? op->err_code : "Failed");
        cJSON_AddStringToObject(err, "message",
                                op->err_msg ? op->err_msg : "The operation failed.");
    }
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
}

void azsim__aci_route(azsim__rq_t *q)
{
    if (!azsim__aci_registered(q))
        return;
    switch (q->op) {
    case AZSIM__OP_CG_CREATE:
        cg_put(q);
        break;
    case AZSIM__OP_CG_GET:
        cg_get(q);
        break;
    case AZSIM__OP_CG_UPDATE:
        cg_patch(q);
        break;
    case AZSIM__OP_CG_DELETE:
        cg_delete(q);
        break;
    case AZSIM__OP_CG_LIST:
    case AZSIM__OP_CG_LIST_RG:
        cg_list(q);
        break;
    case AZSIM__OP_CG_START:
    case AZSIM__OP_CG_STOP:
    case AZSIM__OP_CG_RESTART:
        cg_action(q);
        break;
    case AZSIM__OP_CG_OPSTATUS:
    case AZSIM__OP_CG_OPRESULT:
        op_get(q);
        break;
    case AZSIM__OP_CG_LOGS:
        azsim__aci_logs(q);
        break;
    default:
        azsim__arm_error(q->resp, 404, "InvalidResourceType", "Unknown operation.");
    }
}
