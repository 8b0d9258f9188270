/*
 * pkg/azsim: container groups (Microsoft.ContainerInstance), their
 * asynchronous operations and their timed transitions.
 *
 *   PUT new       -> 201, provisioningState Creating, instanceView Pending;
 *                    after provision_ms Succeeded + Running (or Failed).
 *   PUT existing  -> 200; a changed spec (or a Failed group) re-provisions
 *                    (Updating -> Succeeded), an identical one only takes
 *                    the new tags.
 *   DELETE        -> 202 (Deleting), gone after delete_ms; 204 when absent.
 *   start         -> 202 on a stopped group (Pending -> Running), else 204.
 *   stop          -> 204, instanceView Stopped, public IP released.
 *   restart       -> 204.
 *
 * The IP address is assigned when provisioning starts (the PUT answer
 * already shows it, as in the official examples). Like ACI, a stopped
 * group gives up its public IP and gets a new one when started again.
 */
#include "azsim_int.h"

#include "log/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CG_TYPE "Microsoft.ContainerInstance/containerGroups"
#define MAX_OPS 100000

static const char *prov_name(int p)
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
    default:
        return "Deleting";
    }
}

static const char *power_name(int p)
{
    return p == AZSIM__POW_RUNNING ? "Running" : p == AZSIM__POW_STOPPED ? "Stopped" : "Pending";
}

/*
 * The one place a group's provisioningState or instanceView state
 * changes (-1 keeps a value); transitions are logged at debug level.
 */
static void set_state(azsim__group_t *g, int prov, int power)
{
    int p = prov < 0 ? g->prov : prov, w = power < 0 ? g->power : power;
    if (p == g->prov && w == g->power)
        return;
    LOG(LOG_DEBUG, "container group state", LF_S("id", g->id), LF_S("from", prov_name(g->prov)),
        LF_S("to", prov_name(p)), LF_S("power_from", power_name(g->power)),
        LF_S("power_to", power_name(w)));
    g->prov = p;
    g->power = w;
}

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
    free(g->fail_msg);
    free(g->op_id);
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

/* ---- stored form -------------------------------------------------------- */

static void normalise_location(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < outlen; p++)
        if (*p != ' ')
            out[o++] = *p;
    out[o] = '\0';
    azsim__lower(out);
}

static void drop_container_views(cJSON *arr)
{
    for (cJSON *c = arr ? arr->child : NULL; c; c = c->next)
        cJSON_DeleteItemFromObject(cJSON_GetObjectItem(c, "properties"), "instanceView");
}

/* The stored spec: the accepted fields, read-only ones dropped, a few
 * defaults ACI fills in made explicit. Takes ownership of nothing. */
static cJSON *stored_spec(const cJSON *body, const char *location)
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

static cJSON *event(const char *name, const char *type, const char *message, int64_t wall)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "count", 1);
    add_time(e, "firstTimestamp", wall);
    add_time(e, "lastTimestamp", wall);
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    return e;
}

/* The instanceView of a container of g running image: its current state
 * and the events that led there, as ACI reports them. Owned by the caller. */
static cJSON *container_view(const azsim__group_t *g, const char *image)
{
    cJSON *iv = cJSON_CreateObject();
    cJSON_AddNumberToObject(iv, "restartCount", g->restart_count);
    cJSON *cur = cJSON_AddObjectToObject(iv, "currentState");
    cJSON *events = cJSON_CreateArray();
    char msg[300];
    int pulled = g->prov == AZSIM__PROV_FAILED || g->power == AZSIM__POW_RUNNING ||
                 g->power == AZSIM__POW_STOPPED;
    if (pulled) {
        snprintf(msg, sizeof(msg), "pulling image \"%s\"", image);
        cJSON_AddItemToArray(events, event("Pulling", "Normal", msg, g->created_wall));
        snprintf(msg, sizeof(msg), "Successfully pulled image \"%s\"", image);
        cJSON_AddItemToArray(events, event("Pulled", "Normal", msg, g->created_wall));
    }
    if (g->prov == AZSIM__PROV_FAILED || g->power == AZSIM__POW_PENDING) {
        cJSON_AddStringToObject(cur, "state", "Waiting");
        add_time(cur, "startTime", g->created_wall);
        cJSON_AddStringToObject(cur, "detailStatus", "");
    } else if (g->power == AZSIM__POW_RUNNING) {
        cJSON_AddStringToObject(cur, "state", "Running");
        add_time(cur, "startTime", g->started_wall);
        cJSON_AddStringToObject(cur, "detailStatus", "");
        cJSON_AddItemToArray(events,
                             event("Started", "Normal", "Started container", g->started_wall));
    } else {
        cJSON_AddStringToObject(cur, "state", "Terminated");
        add_time(cur, "startTime", g->started_wall ? g->started_wall : g->created_wall);
        cJSON_AddNumberToObject(cur, "exitCode", 0);
        add_time(cur, "finishTime", g->stopped_wall);
        cJSON_AddStringToObject(cur, "detailStatus", "Completed");
        cJSON_AddItemToArray(events,
                             event("Killing", "Normal", "Killing container", g->stopped_wall));
    }
    cJSON_AddItemToObject(iv, "events", events);
    return iv;
}

cJSON *azsim__group_json(azsim_t *sim, const azsim__group_t *g, int mode, uint64_t now)
{
    (void)sim;
    (void)now;
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
    cJSON_AddStringToObject(p, "provisioningState", prov_name(g->prov));
    cJSON *ip = cJSON_GetObjectItem(p, "ipAddress");
    if (ip) {
        if (g->ip[0])
            cJSON_AddStringToObject(ip, "ip", g->ip);
        const cJSON *label = cJSON_GetObjectItem(ip, "dnsNameLabel");
        if (cJSON_IsString(label) && label->valuestring[0]) {
            char fqdn[256];
            snprintf(fqdn, sizeof(fqdn), "%s.%s.azurecontainer.io", label->valuestring,
                     g->location);
            cJSON_AddStringToObject(ip, "fqdn", fqdn);
        }
    }
    cJSON_AddBoolToObject(p, "isCreatedFromStandbyPool", 0);
    if (mode != 'l') {
        cJSON *cs = cJSON_GetObjectItem(p, "containers");
        for (cJSON *c = cs ? cs->child : NULL; c; c = c->next) {
            cJSON *cp = cJSON_GetObjectItem(c, "properties");
            if (!cJSON_IsObject(cp))
                continue;
            const cJSON *image = cJSON_GetObjectItem(cp, "image");
            cJSON_AddItemToObject(
                cp, "instanceView",
                container_view(g, cJSON_IsString(image) ? image->valuestring : ""));
        }
        cJSON *iv = cJSON_AddObjectToObject(p, "instanceView");
        cJSON *events = cJSON_AddArrayToObject(iv, "events");
        const char *state;
        if (g->prov == AZSIM__PROV_FAILED) {
            state = "Pending";
            cJSON_AddItemToArray(events, event("FailedMount", "Normal",
                                               g->fail_msg ? g->fail_msg : "", g->stopped_wall));
        } else {
            state = g->power == AZSIM__POW_RUNNING   ? "Running"
                    : g->power == AZSIM__POW_STOPPED ? "Stopped"
                                                     : "Pending";
        }
        cJSON_AddStringToObject(iv, "state", state);
    }
    cJSON_AddItemToObject(o, "properties", p);
    return o;
}

/* ---- operations --------------------------------------------------------- */

/*
 * Records a new operation of g ('C'reate, 'D'elete, 'S'tart) done at
 * done_at and makes it g's latest; at most MAX_OPS are kept, oldest out.
 */
static azsim__op_t *new_op(azsim__rq_t *q, azsim__group_t *g, int kind, uint64_t done_at)
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
    op->final = AZSIM__OPST_SUCCEEDED;
    op->start_wall = q->wall;
    op->end_wall = azsim__wall_of(sim, done_at);
    azsim__table_put(&sim->ops, &op->e, id);
    free(g->op_id);
    g->op_id = d8_xstrdup(id);
    return op;
}

static azsim__op_t *find_op(azsim_t *sim, const char *id)
{
    if (!id)
        return NULL;
    char key[64];
    snprintf(key, sizeof(key), "%s", id);
    return (azsim__op_t *)azsim__table_get(&sim->ops, azsim__lower(key));
}

static int retry_after_s(uint64_t ms)
{
    return (int)((ms + 999) / 1000);
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
    azsim__header(q->resp, "Retry-After", "%d",
                  retry_after_s(op->done_at > q->now ? op->done_at - q->now : 0));
    d8_buf_release(&path);
    d8_buf_release(&url);
}

/* ---- handlers ----------------------------------------------------------- */

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

static void render(azsim__rq_t *q, int status, const azsim__group_t *g, int mode)
{
    cJSON *j = azsim__group_json(q->sim, g, mode, q->now);
    azsim__json_body(q->resp, status, j);
    cJSON_Delete(j);
}

static void assign_ip(azsim_t *sim, azsim__group_t *g)
{
    if (!g->ip_type)
        return;
    uint64_t n = sim->ip_counter++;
    if (g->ip_type == 'V')
        snprintf(g->ip, sizeof(g->ip), "10.0.%u.%u", (unsigned)((n / 254) % 256),
                 (unsigned)(1 + n % 254));
    else
        snprintf(g->ip, sizeof(g->ip), "20.%u.%u.%u", (unsigned)((n / (254 * 256)) % 256),
                 (unsigned)((n / 254) % 256), (unsigned)(1 + n % 254));
}

/* Starts (re-)provisioning: Creating or Updating, then after provision_ms
 * Succeeded (or Failed) and Running. */
static azsim__op_t *provision(azsim__rq_t *q, azsim__group_t *g, int prov)
{
    azsim_t *sim = q->sim;
    set_state(g, prov, AZSIM__POW_PENDING);
    g->prov_epoch++;
    g->power_epoch++;
    free(g->fail_msg);
    g->fail_msg = NULL;
    g->fail_fault = sim->faults.fail_provisioning_rate > 0 &&
                    azsim__rng_unit(&sim->rng_faults) < sim->faults.fail_provisioning_rate;
    if (!g->ip[0])
        assign_ip(sim, g);
    uint64_t due = q->now + sim->o.provision_ms;
    azsim__heap_push(&sim->events, due, AZSIM__EV_PROVISIONED, g->prov_epoch, g->e.key);
    return new_op(q, g, 'C', due);
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
 * Whether a PUT in location may go ahead on g (NULL for a new group): not
 * while g is being deleted nor in another region, and a create only within
 * ACI's quota. Otherwise answers and returns 0.
 */
static int put_allowed(azsim__rq_t *q, const azsim__group_t *g, const char *location)
{
    if (g && g->prov == AZSIM__PROV_DELETING) {
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
    if (!g && !azsim__throttle_aci(q, location, 'c'))
        return 0;
    return 1;
}

/* What a PUT stores: the compact texts of the spec and of its properties
 * (owned) and the kind of IP address asked for (see azsim__group_t). */
typedef struct put_spec {
    char *spec_text;
    char *props_text;
    char ip_type;
} put_spec_t;

static void make_put_spec(const cJSON *body, const char *location, put_spec_t *out)
{
    cJSON *spec = stored_spec(body, location);
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
 * Stores a new group at the request's path, taking the texts of s, and
 * starts creating it. Returns the group; *op is its create operation.
 */
static azsim__group_t *create_group(azsim__rq_t *q, const char *location, const put_spec_t *s,
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
    azsim__table_put(&q->sim->groups, &g->e, g->id);
    *op = provision(q, g, AZSIM__PROV_CREATING);
    return g;
}

/*
 * Replaces the spec of g with the texts of s (taken). Changed properties,
 * or a Failed group, re-provision; otherwise the latest operation still in
 * flight is answered again, or a new one that is already done.
 */
static azsim__op_t *update_group(azsim__rq_t *q, azsim__group_t *g, const put_spec_t *s)
{
    int changed = strcmp(g->props_text, s->props_text) != 0 || g->prov == AZSIM__PROV_FAILED;
    free(g->spec);
    free(g->props_text);
    g->spec = s->spec_text;
    g->props_text = s->props_text;
    if (g->ip_type != s->ip_type)
        g->ip[0] = '\0';
    g->ip_type = s->ip_type;
    if (changed)
        return provision(q, g, AZSIM__PROV_UPDATING);
    azsim__op_t *op = find_op(q->sim, g->op_id);
    if (!op || op->done_at <= q->now)
        op = new_op(q, g, 'C', q->now);
    return op;
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
    char location[128];
    normalise_location(cJSON_GetObjectItem(body, "location")->valuestring, location,
                       sizeof(location));
    azsim__group_t *g = find_group(q);
    if (!put_allowed(q, g, location)) {
        cJSON_Delete(body);
        return;
    }
    put_spec_t spec;
    make_put_spec(body, location, &spec);
    cJSON_Delete(body);
    int status;
    azsim__op_t *op;
    if (!g) {
        g = create_group(q, location, &spec, &op);
        status = 201;
    } else {
        op = update_group(q, g, &spec);
        status = 200;
    }
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
    if (g->prov == AZSIM__PROV_DELETING) {
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
 * containerGroups.delete: 202 with the operation's headers while the group
 * is Deleting (a create or start in flight ends Canceled), 204 when absent.
 */
static void cg_delete(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    azsim__group_t *g = find_group(q);
    if (!g) {
        q->resp->status = 204;
        return;
    }
    azsim__op_t *op;
    if (g->prov == AZSIM__PROV_DELETING) {
        op = find_op(sim, g->op_id);
        if (!op)
            op = new_op(q, g, 'D', q->now);
    } else {
        if (!azsim__throttle_aci(q, g->location, 'd'))
            return;
        /* A create or start still in flight ends as Canceled. */
        azsim__op_t *prev = find_op(sim, g->op_id);
        if (prev && prev->done_at > q->now) {
            prev->final = AZSIM__OPST_CANCELED;
            prev->done_at = q->now;
            prev->end_wall = q->wall;
            free(prev->err_code);
            free(prev->err_msg);
            prev->err_code = d8_xstrdup("Canceled");
            prev->err_msg = d8_xstrdup("The operation was canceled because the container group "
                                       "is being deleted.");
        }
        set_state(g, AZSIM__PROV_DELETING, -1);
        g->prov_epoch++;
        uint64_t due = q->now + sim->o.delete_ms;
        azsim__heap_push(&sim->events, due, AZSIM__EV_DELETED, g->prov_epoch, g->e.key);
        op = new_op(q, g, 'D', due);
    }
    lro_headers(q, g, op);
    q->resp->status = 202;
}

/*
 * containerGroups.start, stop and restart. Stop releases the IP address;
 * start and restart deploy a Failed group again and start a stopped one.
 */
static void cg_action(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    azsim__group_t *g = find_group(q);
    if (!g) {
        not_found(q);
        return;
    }
    if (g->prov == AZSIM__PROV_DELETING) {
        transitioning(q, g);
        return;
    }
    if (q->op == AZSIM__OP_CG_STOP) {
        if (g->power != AZSIM__POW_STOPPED) {
            set_state(g, -1, AZSIM__POW_STOPPED);
            g->power_epoch++;
            g->stopped_wall = q->wall;
            g->ip[0] = '\0';
        }
        q->resp->status = 204;
        return;
    }
    if (g->prov == AZSIM__PROV_FAILED) {
        /* Starting a failed group deploys it again. */
        azsim__op_t *op = provision(q, g, AZSIM__PROV_UPDATING);
        if (q->op == AZSIM__OP_CG_START) {
            lro_headers(q, g, op);
            q->resp->status = 202;
        } else {
            q->resp->status = 204;
        }
        return;
    }
    if (g->power == AZSIM__POW_STOPPED) {
        set_state(g, -1, AZSIM__POW_PENDING);
        g->power_epoch++;
        assign_ip(sim, g);
        uint64_t due = q->now + sim->o.provision_ms;
        azsim__heap_push(&sim->events, due, AZSIM__EV_STARTED, g->power_epoch, g->e.key);
        azsim__op_t *op = new_op(q, g, 'S', due);
        if (q->op == AZSIM__OP_CG_START) {
            lro_headers(q, g, op);
            q->resp->status = 202;
        } else {
            q->resp->status = 204;
        }
        return;
    }
    if (q->op == AZSIM__OP_CG_RESTART && g->power == AZSIM__POW_RUNNING) {
        g->restart_count++;
        g->started_wall = q->wall;
    }
    q->resp->status = 204;
}

/* containerGroups.list and listByResourceGroup: one page in insertion
 * order, with a nextLink whose $skipToken is the last sequence number. */
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
    char tok[32];
    uint64_t after = 0;
    int n = azsim__param(q->req->query, "$skipToken", tok, sizeof(tok));
    if (n == -2 || n == 0 || (n > 0 && strspn(tok, "0123456789") != (size_t)n)) {
        azsim__arm_error(q->resp, 400, "InvalidSkipToken", "The $skipToken is not valid.");
        return;
    }
    if (n > 0)
        after = strtoull(tok, NULL, 10);
    d8_buf_t *b = &q->resp->body;
    d8_buf_reset(b);
    d8_buf_puts(b, "{\"value\":[");
    size_t count = 0;
    uint64_t last = 0;
    int more = 0;
    for (azsim__ent_t *e = azsim__table_first(&sim->groups); e;
         e = azsim__table_next(&sim->groups, e)) {
        if (e->seq <= after || strncmp(e->key, prefix, plen) != 0)
            continue;
        if (count == sim->o.page_size) {
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
    if (more) {
        d8_buf_t url;
        d8_buf_init(&url);
        azsim__url(q, &url, q->req->path);
        d8_buf_printf(&url, "&%%24skipToken=%llu", (unsigned long long)last);
        d8_buf_puts(b, ",\"nextLink\":");
        d8_buf_json_str(b, url.data);
        d8_buf_release(&url);
    }
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
    azsim__op_t *op = find_op(sim, q->seg[9]);
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
            azsim__header(q->resp, "Retry-After", "%d", retry_after_s(op->done_at - q->now));
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
        azsim__header(q->resp, "Retry-After", "%d", retry_after_s(op->done_at - q->now));
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
    default:
        azsim__arm_error(q->resp, 404, "InvalidResourceType", "Unknown operation.");
    }
}

/* ---- timed transitions -------------------------------------------------- */

/*
 * Why provisioning of g fails, or NULL. The failProvisioningRate fault
 * mimics ACI's FailedMount; with strict_mounts an azureFile volume must
 * name an existing share and, when a key is given, one of the account's
 * keys, as a real mount would.
 */
static const char *mount_failure(azsim_t *sim, const azsim__group_t *g)
{
    if (g->fail_fault)
        return "Output: mount error(13): Permission denied";
    if (!sim->o.strict_mounts)
        return NULL;
    const char *why = NULL;
    cJSON *spec = cJSON_Parse(g->spec);
    const cJSON *vols = cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "properties"), "volumes");
    for (const cJSON *v = vols ? vols->child : NULL; v && !why; v = v->next) {
        const cJSON *af = cJSON_GetObjectItem(v, "azureFile");
        if (!af)
            continue;
        const char *acct = cJSON_GetObjectItem(af, "storageAccountName")->valuestring;
        const char *share = cJSON_GetObjectItem(af, "shareName")->valuestring;
        if (!azsim__find_share(sim, g->sub, g->rg, acct, share)) {
            why = "Output: mount error(2): No such file or directory";
            break;
        }
        const cJSON *key = cJSON_GetObjectItem(af, "storageAccountKey");
        if (cJSON_IsString(key)) {
            char k1[96], k2[96];
            azsim__account_key(sim, acct, 1, k1);
            azsim__account_key(sim, acct, 2, k2);
            if (strcmp(key->valuestring, k1) != 0 && strcmp(key->valuestring, k2) != 0)
                why = "Output: mount error(13): Permission denied";
        }
    }
    cJSON_Delete(spec);
    return why;
}

void azsim__aci_apply_event(azsim_t *sim, const azsim__event_t *ev)
{
    azsim__group_t *g = (azsim__group_t *)azsim__table_get(&sim->groups, ev->key);
    if (!g)
        return;
    int64_t at = azsim__wall_of(sim, ev->due);
    switch (ev->kind) {
    case AZSIM__EV_PROVISIONED: {
        if (ev->epoch != g->prov_epoch ||
            (g->prov != AZSIM__PROV_CREATING && g->prov != AZSIM__PROV_UPDATING))
            return;
        const char *why = mount_failure(sim, g);
        azsim__op_t *op = find_op(sim, g->op_id);
        if (why) {
            set_state(g, AZSIM__PROV_FAILED, -1);
            g->fail_msg = d8_xstrdup(why);
            g->stopped_wall = at;
            if (op && op->kind == 'C' && op->final == AZSIM__OPST_SUCCEEDED) {
                op->final = AZSIM__OPST_FAILED;
                op->err_code = d8_xstrdup("FailedMount");
                op->err_msg = d8_xstrdup(why);
            }
            return;
        }
        set_state(g, AZSIM__PROV_SUCCEEDED, -1);
        if (g->power == AZSIM__POW_PENDING) {
            set_state(g, -1, AZSIM__POW_RUNNING);
            g->started_wall = at;
        }
        return;
    }
    case AZSIM__EV_STARTED:
        if (ev->epoch != g->power_epoch || g->power != AZSIM__POW_PENDING ||
            g->prov != AZSIM__PROV_SUCCEEDED)
            return;
        set_state(g, -1, AZSIM__POW_RUNNING);
        g->started_wall = at;
        return;
    case AZSIM__EV_DELETED:
        if (ev->epoch != g->prov_epoch || g->prov != AZSIM__PROV_DELETING)
            return;
        azsim__record_deleted(sim, 'g', g->id, at);
        azsim__table_del(&sim->groups, &g->e);
        azsim__group_free(g);
        return;
    default:
        return;
    }
}
