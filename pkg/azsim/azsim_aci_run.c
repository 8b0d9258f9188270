/*
 * pkg/azsim: the life of a container group's containers, as the ACI
 * documentation describes it (research notes items 1, 2 and 5):
 *
 *   deployment  create, update, start or a redeploy: instance state
 *               Pending, container Waiting, event Pulling per image; after
 *               provision_ms plus the pull time (a fixed time per image
 *               rule or a lognormal draw from the seeded generator):
 *               Pulled, Started, container Running, instance Running,
 *               provisioningState Succeeded. An image rule may instead
 *               fail it: InaccessibleImage (provisioningState Failed, the
 *               message as a Warning event), or pulls that keep failing
 *               (Failed and BackOff events, counts growing) until the
 *               Waiting timeout (30 min by default) fails provisioning,
 *               as does any deployment still Waiting then.
 *   exit        a rule's exitAfterMs ends each run with its exitCode:
 *               restartPolicy Always, or OnFailure with a non-zero code,
 *               restarts the container (previousState Terminated with the
 *               code, restartCount + 1, a crash-loop back-off in Waiting);
 *               otherwise the container stays Terminated and the group is
 *               Succeeded (code 0) or Failed (non-zero under Never).
 *   stop        every container Terminated, the IP released.
 *
 * Timed steps are heap events carrying the group's deploy or run epoch,
 * so a stop, a new deployment or a deletion makes older ones stale.
 */
#include "azsim_int.h"

#include "log/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENTS 32 /* kept per container (and per group), oldest out */
#define PULL_RETRY_BASE_MS 10000
#define BACKOFF_CAP_MS 300000 /* pulls and crash loops back off up to 5 minutes */
#define MIN_CYCLE_MS 100      /* a crash loop never spins faster than this */

void azsim__set_state(azsim__group_t *g, int prov, int power)
{
    int p = prov < 0 ? g->prov : prov, w = power < 0 ? g->power : power;
    if (p == g->prov && w == g->power)
        return;
    LOG(LOG_DEBUG, "container group state", LF_S("id", g->id),
        LF_S("from", azsim__prov_name(g->prov)), LF_S("to", azsim__prov_name(p)),
        LF_S("power_from", azsim__power_name(g->power)), LF_S("power_to", azsim__power_name(w)));
    g->prov = p;
    g->power = w;
}

/* ---- facts of the spec --------------------------------------------------- */

void azsim__read_spec_facts(azsim__group_t *g)
{
    cJSON *spec = cJSON_Parse(g->spec);
    const cJSON *p = cJSON_GetObjectItem(spec, "properties");
    const cJSON *rp = cJSON_GetObjectItem(p, "restartPolicy");
    const char *policy = cJSON_IsString(rp) ? rp->valuestring : "Always";
    g->policy = azsim__ieq(policy, "Never") ? 'N' : azsim__ieq(policy, "OnFailure") ? 'O' : 'A';
    for (size_t i = 0; i < g->nimages; i++)
        free(g->images[i]);
    free(g->images);
    const cJSON *cs = cJSON_GetObjectItem(p, "containers");
    g->nimages = (size_t)cJSON_GetArraySize(cs);
    g->images = d8_xcalloc(g->nimages ? g->nimages : 1, sizeof(*g->images));
    g->cores = 0;
    size_t i = 0;
    for (const cJSON *c = cs ? cs->child : NULL; c; c = c->next, i++) {
        const cJSON *cp = cJSON_GetObjectItem(c, "properties");
        if (i == 0) {
            const cJSON *name = cJSON_GetObjectItem(c, "name");
            snprintf(g->cname, sizeof(g->cname), "%s",
                     cJSON_IsString(name) ? name->valuestring : "");
            azsim__probe_read(g, cp);
        }
        const cJSON *img = cJSON_GetObjectItem(cp, "image");
        g->images[i] = d8_xstrdup(cJSON_IsString(img) ? img->valuestring : "");
        const cJSON *cpu = cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(cp, "resources"), "requests"), "cpu");
        if (cJSON_IsNumber(cpu))
            g->cores += cpu->valuedouble;
    }
    cJSON_Delete(spec);
    if (cJSON_GetArraySize(g->cevents) != (int)g->nimages) {
        cJSON_Delete(g->cevents);
        g->cevents = cJSON_CreateArray();
        for (i = 0; i < g->nimages; i++)
            cJSON_AddItemToArray(g->cevents, cJSON_CreateArray());
    }
    if (!g->gevents)
        g->gevents = cJSON_CreateArray();
}

/* ---- events -------------------------------------------------------------- */

static void add_time(cJSON *o, const char *key, int64_t wall)
{
    char ts[32];
    d8_rfc3339(wall, ts);
    cJSON_AddStringToObject(o, key, ts);
}

/* Records an event in list: a repeat of the same name and message counts
 * up and moves lastTimestamp, as ACI merges them. */
static void note(cJSON *list, const char *name, const char *type, const char *msg, int64_t wall)
{
    for (cJSON *e = list ? list->child : NULL; e; e = e->next) {
        const cJSON *n = cJSON_GetObjectItem(e, "name"), *m = cJSON_GetObjectItem(e, "message");
        if (strcmp(n->valuestring, name) == 0 && strcmp(m->valuestring, msg) == 0) {
            cJSON *count = cJSON_GetObjectItem(e, "count");
            cJSON_SetNumberValue(count, count->valuedouble + 1);
            cJSON_DeleteItemFromObject(e, "lastTimestamp");
            add_time(e, "lastTimestamp", wall);
            return;
        }
    }
    if (!list)
        return;
    if (cJSON_GetArraySize(list) >= MAX_EVENTS)
        cJSON_DeleteItemFromArray(list, 0);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "count", 1);
    add_time(e, "firstTimestamp", wall);
    add_time(e, "lastTimestamp", wall);
    cJSON_AddStringToObject(e, "name", name);
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddItemToArray(list, e);
}

void azsim__note(cJSON *list, const char *name, const char *type, const char *msg, int64_t wall)
{
    note(list, name, type, msg, wall);
}

/* The event msg of every container whose image is only (NULL: all). */
static void note_msg(azsim__group_t *g, const char *only, const char *name, const char *type,
                     const char *msg, int64_t wall)
{
    for (size_t i = 0; i < g->nimages; i++)
        if (!only || strcmp(only, g->images[i]) == 0)
            note(cJSON_GetArrayItem(g->cevents, (int)i), name, type, msg, wall);
}

/* As note_msg, the message made from fmt (a literal) and each container's
 * image, which fmt may use up to twice. */
static void note_containers(azsim__group_t *g, const char *only, const char *name, const char *type,
                            const char *fmt, int64_t wall)
{
    char msg[600];
    for (size_t i = 0; i < g->nimages; i++) {
        if (only && strcmp(only, g->images[i]) != 0)
            continue;
        /* fmt is one of this file's literals naming the image once or twice;
         * cppcheck cannot see through the parameter. */
        // cppcheck-suppress wrongPrintfScanfArgNum
        snprintf(msg, sizeof(msg), fmt, g->images[i], g->images[i]);
        note(cJSON_GetArrayItem(g->cevents, (int)i), name, type, msg, wall);
    }
}

/* A new deployment starts with new containers: no restarts, no previous
 * state, no events yet. */
static void forget_runs(azsim__group_t *g)
{
    g->restart_count = 0;
    g->prev.state = AZSIM__CS_NONE;
    for (cJSON *l = g->cevents ? g->cevents->child : NULL; l; l = l->next)
        while (l->child)
            cJSON_DeleteItemFromArray(l, 0);
    while (g->gevents && g->gevents->child)
        cJSON_DeleteItemFromArray(g->gevents, 0);
    while (g->logs && g->logs->child)
        cJSON_DeleteItemFromArray(g->logs, 0);
}

/* ---- deployments --------------------------------------------------------- */

/* A lognormal draw through median and 95th percentile (ms). */
static uint64_t lognormal(azsim_t *sim, uint64_t median, uint64_t p95)
{
    if (median == 0 || p95 <= median)
        return median;
    double sigma = log((double)p95 / (double)median) / 1.6448536269514722;
    double u1 = azsim__rng_unit(&sim->rng_pulls), u2 = azsim__rng_unit(&sim->rng_pulls);
    if (u1 < 1e-12)
        u1 = 1e-12;
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    double x = (double)median * exp(sigma * z);
    return x > 86400000.0 ? 86400000 : (uint64_t)x;
}

/* The pull time of one image: its rule's fixed time or distribution, else
 * the configured one. */
static uint64_t pull_time(azsim_t *sim, const azsim_image_rule_t *r)
{
    if (r && r->pull_ms >= 0)
        return (uint64_t)r->pull_ms;
    if (r && r->pull_median_ms)
        return lognormal(sim, r->pull_median_ms, r->pull_p95_ms);
    return lognormal(sim, sim->aci.pull_median_ms, sim->aci.pull_p95_ms);
}

/*
 * What the rules say of this deployment's images: the first failing image
 * decides a failure, the first rule with an exit decides the runs, and
 * the images are pulled side by side (the longest pull counts). Returns
 * the pull time.
 */
static uint64_t plan_images(azsim_t *sim, azsim__group_t *g)
{
    uint64_t longest = 0;
    g->pull_failure = AZSIM_PULL_OK;
    free(g->rule_image);
    g->rule_image = NULL;
    g->exit_after_ms = -1;
    g->exit_code = 0;
    g->pull_retries = 0;
    g->ready_after_ms = 0;
    for (size_t i = 0; i < g->nimages; i++) {
        const azsim_image_rule_t *r = azsim__image_rule(sim, g->images[i]);
        uint64_t t = pull_time(sim, r);
        longest = t > longest ? t : longest;
        if (g->pull_failure == AZSIM_PULL_OK && azsim__registry_denies(sim, g, g->images[i])) {
            g->pull_failure = AZSIM_PULL_INACCESSIBLE;
            g->rule_image = d8_xstrdup(g->images[i]);
        }
        if (!r)
            continue;
        if ((r->failure == AZSIM_PULL_INACCESSIBLE || r->failure == AZSIM_PULL_NOT_FOUND) &&
            g->pull_failure == AZSIM_PULL_OK) {
            g->pull_failure = r->failure;
            g->rule_image = d8_xstrdup(g->images[i]);
        }
        if (i == 0)
            g->ready_after_ms = r->ready_after_ms;
        if (r->exit_after_ms >= 0 && g->exit_after_ms < 0) {
            g->exit_after_ms = r->exit_after_ms;
            g->exit_code = r->exit_code;
        }
    }
    return longest;
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

uint64_t azsim__deploy(azsim_t *sim, azsim__group_t *g, int prov, uint64_t now)
{
    int64_t wall = azsim__wall_of(sim, now);
    azsim__set_state(g, prov, AZSIM__POW_PENDING);
    g->deploy_epoch++;
    g->run_epoch++;
    g->fail_kind = 0;
    g->fail_fault = sim->faults.fail_provisioning_rate > 0 &&
                    azsim__rng_unit(&sim->rng_faults) < sim->faults.fail_provisioning_rate;
    forget_runs(g);
    g->cur = (azsim__cstate_t){AZSIM__CS_WAITING, 0, wall, 0, ""};
    if (!g->ip[0])
        assign_ip(sim, g);
    uint64_t pull = plan_images(sim, g);
    note_containers(g, NULL, "Pulling", "Normal", "pulling image \"%s\"", wall);
    uint64_t begin = now + sim->o.provision_ms, timeout = sim->aci.waiting_timeout_ms;
    uint64_t settle;
    if (g->pull_failure == AZSIM_PULL_NOT_FOUND) {
        azsim__heap_push(&sim->events, begin, AZSIM__EV_PULL_RETRY, g->deploy_epoch, g->e.key);
        /* Without a timeout the deployment never ends. */
        settle = timeout ? now + timeout : UINT64_MAX / 4;
    } else if (g->pull_failure == AZSIM_PULL_INACCESSIBLE || !timeout ||
               begin + pull < now + timeout) {
        settle = g->pull_failure == AZSIM_PULL_INACCESSIBLE ? begin : begin + pull;
        azsim__heap_push(&sim->events, settle, AZSIM__EV_DEPLOYED, g->deploy_epoch, g->e.key);
        return settle;
    } else {
        settle = now + timeout;
    }
    if (timeout)
        azsim__heap_push(&sim->events, now + timeout, AZSIM__EV_TIMEOUT, g->deploy_epoch, g->e.key);
    return settle;
}

/* A new run of every container at clock ms due: Running, Started, and
 * the exit its image rule schedules. */
static void start_run(azsim_t *sim, azsim__group_t *g, uint64_t due)
{
    int64_t wall = azsim__wall_of(sim, due);
    g->run_epoch++;
    g->cur = (azsim__cstate_t){AZSIM__CS_RUNNING, 0, wall, 0, ""};
    note_containers(g, NULL, "Started", "Normal", "Started container", wall);
    azsim__log_line(g, wall, "dev8 workspace: starting %s (restart %d)",
                    g->nimages ? g->images[0] : "", g->restart_count);
    azsim__probe_schedule(sim, g, due);
    if (g->exit_after_ms >= 0)
        azsim__heap_push(&sim->events, due + (uint64_t)g->exit_after_ms, AZSIM__EV_EXIT,
                         g->run_epoch, g->e.key);
}

void azsim__restart_in_place(azsim_t *sim, azsim__group_t *g, uint64_t now)
{
    int64_t wall = azsim__wall_of(sim, now);
    if (g->power != AZSIM__POW_RUNNING)
        return;
    if (g->cur.state == AZSIM__CS_RUNNING)
        g->prev = (azsim__cstate_t){AZSIM__CS_TERMINATED, 0, g->cur.start_wall, wall, "Completed"};
    g->restart_count++;
    note_containers(g, NULL, "Killing", "Normal", "Killing container", wall);
    start_run(sim, g, now);
}

void azsim__stop_containers(azsim_t *sim, azsim__group_t *g, uint64_t now)
{
    int64_t wall = azsim__wall_of(sim, now);
    g->deploy_epoch++;
    g->run_epoch++;
    if (g->cur.state != AZSIM__CS_TERMINATED) {
        int64_t start = g->cur.start_wall ? g->cur.start_wall : g->created_wall;
        g->cur = (azsim__cstate_t){AZSIM__CS_TERMINATED, 0, start, wall, "Completed"};
        note_containers(g, NULL, "Killing", "Normal", "Killing container", wall);
    }
    azsim__set_state(g, -1, AZSIM__POW_STOPPED);
    g->ip[0] = '\0';
}

/* ---- timed steps ---------------------------------------------------------- */

/* The deployment failed at wall time at: provisioningState Failed (the
 * instance stays Pending, the containers Waiting, as in ACI's Failed
 * example) and the operation that tracks it fails with code and msg. */
static void fail_deployment(azsim_t *sim, azsim__group_t *g, const char *code, const char *msg)
{
    azsim__set_state(g, AZSIM__PROV_FAILED, -1);
    g->fail_kind = 'P';
    azsim__op_t *op = azsim__find_op(sim, g->op_id);
    if (op && (op->kind == 'C' || op->kind == 'S'))
        azsim__op_fail(op, code, msg);
}

/*
 * Why the mounts of g fail, or NULL. The failProvisioningRate fault
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

/* The pull and start of a deployment are done at clock ms due. */
static void deployed(azsim_t *sim, azsim__group_t *g, uint64_t due)
{
    int64_t at = azsim__wall_of(sim, due);
    const char *why = mount_failure(sim, g);
    if (why) {
        note_containers(g, NULL, "Pulled", "Normal", "Successfully pulled image \"%s\"", at);
        note(g->gevents, "FailedMount", "Normal", why, at);
        fail_deployment(sim, g, "FailedMount", why);
        return;
    }
    if (g->pull_failure == AZSIM_PULL_INACCESSIBLE) {
        char msg[600];
        snprintf(msg, sizeof(msg),
                 "The image '%s' in container group '%s' is not accessible. Please check the "
                 "image and registry credential.",
                 g->rule_image, g->name);
        note_msg(g, g->rule_image, "Failed", "Warning", msg, at);
        fail_deployment(sim, g, "InaccessibleImage", msg);
        return;
    }
    note_containers(g, NULL, "Pulled", "Normal", "Successfully pulled image \"%s\"", at);
    azsim__set_state(g, AZSIM__PROV_SUCCEEDED, AZSIM__POW_RUNNING);
    start_run(sim, g, due);
}

/* A failing pull is tried again: Failed and BackOff count up, and the
 * next try waits twice as long (10 s up to 5 minutes). */
static void pull_retry(azsim_t *sim, azsim__group_t *g, uint64_t due)
{
    int64_t at = azsim__wall_of(sim, due);
    note_containers(g, g->rule_image, "Failed", "Warning",
                    "Failed to pull image \"%s\": rpc error: code 2 desc Error: image %s not found",
                    at);
    note_containers(g, g->rule_image, "BackOff", "Normal", "Back-off pulling image \"%s\"", at);
    uint64_t wait = PULL_RETRY_BASE_MS << (g->pull_retries < 5 ? g->pull_retries : 5);
    g->pull_retries++;
    wait = wait < BACKOFF_CAP_MS ? wait : BACKOFF_CAP_MS;
    azsim__heap_push(&sim->events, due + wait, AZSIM__EV_PULL_RETRY, g->deploy_epoch, g->e.key);
}

void azsim__run_ended(azsim_t *sim, azsim__group_t *g, uint64_t due, int code)
{
    int64_t at = azsim__wall_of(sim, due);
    const char *detail = code ? "Error" : "Completed";
    azsim__cstate_t done = {AZSIM__CS_TERMINATED, code, g->cur.start_wall, at, detail};
    if (g->policy == 'A' || (g->policy == 'O' && code != 0)) {
        g->prev = done;
        g->restart_count++;
        unsigned n = (unsigned)(g->restart_count - 1 < 5 ? g->restart_count - 1 : 5);
        uint64_t wait = sim->aci.crash_backoff_ms << n;
        wait = wait < BACKOFF_CAP_MS ? wait : BACKOFF_CAP_MS;
        if ((uint64_t)g->exit_after_ms + wait < MIN_CYCLE_MS)
            wait = MIN_CYCLE_MS - (uint64_t)g->exit_after_ms;
        g->cur = (azsim__cstate_t){AZSIM__CS_WAITING, 0, at, 0, "CrashLoopBackOff"};
        note_containers(g, NULL, "BackOff", "Normal", "Back-off restarting failed container", at);
        azsim__heap_push(&sim->events, due + wait, AZSIM__EV_RESTART, g->run_epoch, g->e.key);
        return;
    }
    g->cur = done;
    azsim__set_state(g, -1, code == 0 ? AZSIM__POW_SUCCEEDED : AZSIM__POW_FAILED);
}

/* A deletion is done: the group goes, or stays Failed (failDeleteRate). */
static void deleted(azsim_t *sim, azsim__group_t *g, int64_t at)
{
    if (g->delete_fault) {
        g->delete_fault = 0;
        azsim__set_state(g, AZSIM__PROV_FAILED, -1);
        g->fail_kind = 'D';
        azsim__op_fail(azsim__find_op(sim, g->op_id), "InternalServerError",
                       "The container group could not be deleted. Please retry the operation.");
        return;
    }
    azsim__record_deleted(sim, 'g', g->id, at);
    azsim__label_release(sim, g);
    azsim__table_del(&sim->groups, &g->e);
    azsim__group_free(g);
}

void azsim__aci_apply_event(azsim_t *sim, const azsim__event_t *ev)
{
    azsim__group_t *g = (azsim__group_t *)azsim__table_get(&sim->groups, ev->key);
    if (!g)
        return;
    int deploying = ev->epoch == g->deploy_epoch && g->power == AZSIM__POW_PENDING &&
                    g->prov != AZSIM__PROV_DELETING && g->prov != AZSIM__PROV_CANCELED &&
                    !(g->prov == AZSIM__PROV_FAILED && g->fail_kind == 'P');
    int running = ev->epoch == g->run_epoch && g->power == AZSIM__POW_RUNNING;
    switch (ev->kind) {
    case AZSIM__EV_DEPLOYED:
        if (deploying)
            deployed(sim, g, ev->due);
        return;
    case AZSIM__EV_PULL_RETRY:
        if (deploying)
            pull_retry(sim, g, ev->due);
        return;
    case AZSIM__EV_TIMEOUT:
        if (deploying)
            fail_deployment(sim, g, "ResourceDeploymentFailure",
                            "The resource provision operation did not complete within the "
                            "allowed timeout period.");
        return;
    case AZSIM__EV_EXIT:
        if (running && g->cur.state == AZSIM__CS_RUNNING) {
            azsim__log_line(g, azsim__wall_of(sim, ev->due),
                            "dev8 workspace: fatal error, exiting with code %d", g->exit_code);
            azsim__run_ended(sim, g, ev->due, g->exit_code);
        }
        return;
    case AZSIM__EV_PROBE:
        if (running && g->cur.state == AZSIM__CS_RUNNING)
            azsim__probe_run(sim, g, ev->due);
        return;
    case AZSIM__EV_RESTART:
        if (running && g->cur.state == AZSIM__CS_WAITING)
            start_run(sim, g, ev->due);
        return;
    case AZSIM__EV_DELETED:
        if (ev->epoch == g->prov_epoch &&
            (g->prov == AZSIM__PROV_DELETING || g->prov == AZSIM__PROV_CANCELED))
            deleted(sim, g, azsim__wall_of(sim, ev->due));
        return;
    default:
        return;
    }
}
