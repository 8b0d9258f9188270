/*
 * The reconcile loop: store events and region lists put env ids on the
 * work queue; a pass over one id reads what it must (GET), asks
 * reconcile_decide() for the next step, publishes the status it names and
 * lets act.c issue at most one ARM mutation, then requeues to observe the
 * effect. Data path: API -> store -> queue -> decide -> act -> azure;
 * observe -> cache -> decide.
 */
#include "reconcile_int.h"

#include "base/base.h"
#include "log/log.h"
#include "ownership/ownership.h"
#include "spec/spec.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-environment state ------------------------------------------------------ */

static rec_env_t *env_get(reconciler_t *r, const char *id)
{
    rec_env_t *e = d8_map_get(&r->envs, id);
    if (!e) {
        e = d8_xcalloc(1, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", id);
        e->o = observer_entry(r->ob, id);
        e->r = r;
        d8_map_put(&r->envs, e->id, e);
    }
    return e;
}

const char *reconcile__spec_hash(rec_env_t *e, const env_obj_t *obj)
{
    /* A generation's spec never changes: its hash is computed once (an
     * HMAC over the spec and its secrets), not in every step of a pass. */
    if (e->hash_gen == obj->generation)
        return e->hash;
    const reconciler_t *r = e->r;
    const char *image = config_image(r->cfg, obj->spec.base_image);
    const config_registry_t *reg = config_registry_for(r->cfg, image);
    const config_region_t *region = config_region(r->cfg, obj->spec.cloud_region);
    spec_hash_input_t in = {
        .image = image,
        .ports = r->cfg->ports,
        .nports = r->cfg->nports,
        .mount_path = r->cfg->mount_path,
        .key = r->hash_key,
        .keylen = r->hash_keylen,
        .registry_server = reg ? reg->server : NULL,
        .registry_username = reg ? reg->username : NULL,
        .registry_password = reg ? reg->password : NULL,
        .registry_identity = reg ? reg->identity : NULL,
        .subnet_ids = region ? region->subnet_ids : NULL,
        .nsubnet_ids = region ? region->nsubnet_ids : 0,
    };
    spec_hash(&obj->spec, &in, e->hash);
    e->hash_gen = obj->generation;
    return e->hash;
}

/* ---- status ------------------------------------------------------------------------ */

typedef struct publish_ctx {
    const rec_env_t *e;
    const decide_status_t *st;
} publish_ctx_t;

static int str_differs(const char *a, const char *b)
{
    if (!a || !b)
        return a != b;
    return strcmp(a, b) != 0;
}

/* Sets condition c when it differs from the plan's; 1 when it changed. */
static int set_condition(env_condition_t *c, cond_status_t status, const char *reason,
                         const char *msg, int64_t now)
{
    if (!reason ||
        (c->status == status && strcmp(c->reason, reason) == 0 && !str_differs(c->message, msg)))
        return 0;
    store_set_condition(c, status, reason, msg, now);
    return 1;
}

/* Resource fields: names are deterministic, addresses come from Azure;
 * 1 when any changed. */
static int set_resources(const reconciler_t *r, const observed_t *o, env_status_t *s)
{
    char name[OWN_NAME_MAX];
    own_name(o->id, name);
    const char *group = o->g.exists ? name : NULL;
    const char *share = o->s.exists ? name : NULL;
    const char *ip = o->g.exists ? o->g.ip : NULL;
    const char *fqdn = o->g.exists ? o->g.fqdn : NULL;
    char url[320];
    const char *vscode = NULL;
    /* A VNet-injected group has a private IP and no FQDN: its URL is the
     * private address, for the operator's own gateway. */
    int vnet = o->region >= 0 && (size_t)o->region < r->cfg->nregions &&
               r->cfg->regions[o->region].nsubnet_ids > 0;
    const char *host = fqdn ? fqdn : vnet ? ip : NULL;
    if (host && r->cfg->nports) {
        snprintf(url, sizeof(url), "http://%s:%d", host, r->cfg->ports[0]);
        vscode = url;
    }
    if (!str_differs(s->aci_container_group_id, group) &&
        !str_differs(s->azure_file_share_name, share) && !str_differs(s->aci_public_ip, ip) &&
        !str_differs(s->fqdn, fqdn) && !str_differs(s->vscode_url, vscode))
        return 0;
    d8_set_str(&s->aci_container_group_id, group);
    d8_set_str(&s->azure_file_share_name, share);
    d8_set_str(&s->aci_public_ip, ip);
    d8_set_str(&s->fqdn, fqdn);
    d8_set_str(&s->vscode_url, vscode);
    return 1;
}

/* store_update_status callback: applies a plan's status to the object. */
static void apply_status(void *ud, const env_obj_t *obj, env_status_t *s)
{
    publish_ctx_t *c = ud;
    const decide_status_t *st = c->st;
    int64_t now = d8_wall_ms();
    int changed = st->acted;
    if (st->phase >= 0 && (int)s->phase != st->phase) {
        reconcile__event_phase(c->e, (int)s->phase, st->phase,
                               st->ready_reason ? st->ready_reason : st->synced_reason,
                               st->ready_msg ? st->ready_msg : st->synced_msg);
        store_set_phase(obj->id, s, (env_phase_t)st->phase,
                        st->ready_reason ? st->ready_reason : st->synced_reason);
        changed = 1;
    }
    if (s->observed_generation != obj->generation) {
        s->observed_generation = obj->generation;
        changed = 1;
    }
    changed |= set_condition(&s->ready, st->ready, st->ready_reason, st->ready_msg, now);
    changed |= set_condition(&s->synced, st->synced, st->synced_reason, st->synced_msg, now);
    if (st->set_error > 0 && (str_differs(s->last_error_code, st->err_code) ||
                              str_differs(s->last_error_message, st->err_msg))) {
        d8_set_str(&s->last_error_code, st->err_code);
        d8_set_str(&s->last_error_message, st->err_msg ? st->err_msg : "");
        changed = 1;
    } else if (st->set_error < 0 && s->last_error_code) {
        d8_set_str(&s->last_error_code, NULL);
        d8_set_str(&s->last_error_message, NULL);
        changed = 1;
    }
    if (st->set_retry && (s->retry_attempts != (st->set_retry > 0 ? st->retry_attempts : 0) ||
                          s->next_retry_ms != (st->set_retry > 0 ? st->retry_wall_ms : 0))) {
        s->retry_attempts = st->set_retry > 0 ? st->retry_attempts : 0;
        s->next_retry_ms = st->set_retry > 0 ? st->retry_wall_ms : 0;
        changed = 1;
    }
    changed |= set_resources(c->e->r, c->e->o, s);
    changed |= reconcile__set_containers(c->e->o, s);
    changed |= reconcile__set_auto_stop(c->e, st, s, now);
    /* observedTime follows the status refresh (a GET every
     * statusRefreshSeconds), not every list: no event per resync. */
    if (c->e->o->g.exists && c->e->o->g.read_wall_ms != s->observed_ms)
        s->observed_ms = c->e->o->g.read_wall_ms;
    else if (!c->e->o->g.exists && changed)
        s->observed_ms = d8_wall_ms();
    /* lastReconcileTime moves only with a visible change or an action, so
     * a quiet resync does not stream an event for every environment. */
    if (changed)
        s->last_reconcile_ms = now;
}

void reconcile__publish(rec_env_t *e, const decide_status_t *st)
{
    publish_ctx_t c = {e, st};
    store_update_status(e->r->store, e->id, apply_status, &c);
}

/* ---- passes ------------------------------------------------------------------------ */

void reconcile__finish(rec_env_t *e, int err, uint64_t requeue_ms, const char *result)
{
    reconciler_t *r = e->r;
    double secs = (double)(d8_mono_ns() - e->pass_start_ns) / 1e9;
    const char *lbl[] = {result};
    metrics_add(r->m_total, lbl, 1);
    metrics_observe(r->m_duration, NULL, secs);
    e->o->busy = 0;
    r->active--;
    workqueue_done(r->wq, e->id, err, requeue_ms);
}

void reconcile__failed(rec_env_t *e, const azure_result_t *res)
{
    reconcile__event_result(e, res);
    const env_obj_t *obj = store_get(e->r->store, e->id);
    const char *what = reconcile_action_call(e->action);
    decide_failure_t f = {.action = e->action,
                          .what = what,
                          .err = res->err,
                          .http_status = res->http_status,
                          .code = res->error_code,
                          .message = res->error_message,
                          .rand = d8_rand01(&e->r->rng),
                          .mem = e->mem,
                          .generation = obj ? obj->generation : 0,
                          .now_ms = uv_now(e->r->loop),
                          .wall_ms = d8_wall_ms()};
    decide_plan_t plan;
    int failed;
    reconcile_decide_failure(&f, &plan, &failed);
    e->mem = plan.mem;
    if (plan.settle) {
        e->o->settle = 1;
        e->o->next_get_ms = plan.next_get_ms;
    }
    if (plan.status.publish && obj && observer_region_stale(e->r->ob, e->o->region)) {
        /* One more failure of an unreachable region: stale, not a new error. */
        plan.status.synced = COND_UNKNOWN;
        plan.status.synced_reason = "AzureUnreachable";
        plan.status.synced_msg = "the last lists of this environment's region failed: its status "
                                 "may be stale";
    }
    if (plan.status.publish && obj)
        reconcile__publish(e, &plan.status);
    if (res->err != D8_ECANCELED)
        LOG(LOG_WARN, "azure call failed", LF_S("env_id", e->id), LF_S("operation", what),
            LF_I("status", res->http_status), LF_S("code", plan.msg2),
            LF_S("arm_request_id", res->request_id ? res->request_id : ""));
    reconcile__finish(e, failed ? D8_EIO : 0, plan.requeue_ms, plan.result);
}

/* The deletion finished: the object leaves the store. */
static void remove_object(rec_env_t *e, const decide_plan_t *plan, const env_obj_t *obj)
{
    const observed_t *o = e->o;
    int retain = obj->has_spec && obj->spec.storage_policy == SPEC_STORAGE_RETAIN;
    if (!retain && o->s.exists && !o->s.verified)
        LOG(LOG_WARN, "file share not tagged as ours: left alone", LF_S("env_id", e->id),
            LF_S("controller", e->r->cfg->controller_name));
    LOG(LOG_INFO, "environment deleted", LF_S("env_id", e->id), LF_S("reason", plan->reason),
        LF_B("share_retained", retain && o->s.exists));
    store_remove(e->r->store, e->id);
    events_forget(e->r->events, e->id);
    reconcile__finish(e, 0, 0, plan->result);
}

/* Everything reconcile_decide needs, read from the loop and the client. */
static void decide_input(reconciler_t *r, rec_env_t *e, const env_obj_t *obj, int region,
                         const char *hash, decide_input_t *in)
{
    const azure_scope_t *s = e->o->region >= 0 ? observer_scope(r->ob, e->o->region) : NULL;
    int min_gb, max_gb;
    const char *kind;
    observer_share_limits(r->ob, e->o->region, &min_gb, &max_gb, &kind);
    *in = (decide_input_t){
        .obj = obj,
        .obs = e->o,
        .mem = e->mem,
        .fetched_group = e->fetched_group,
        .fetched_share = e->fetched_share,
        .desired_region = region,
        .listed_all = observer_listed_all(r->ob),
        .region_stale = observer_region_stale(r->ob, e->o->region),
        .urgent = workqueue_urgent(r->wq, e->id),
        .controller = r->cfg->controller_name,
        .spec_hash = hash,
        .operation_unread = e->operation_url && !e->operation_read,
        .operation_code = e->operation_code,
        .now_ms = uv_now(r->loop),
        .wall_ms = d8_wall_ms(),
        .agent_start_ms = r->start_wall_ms,
        .status_refresh_ms = (uint64_t)r->cfg->status_refresh_seconds * 1000,
        .resync_ms = (uint64_t)r->cfg->resync_seconds * 1000,
        .aci_create_wait_ms = s ? azure_client_bucket_wait_ms(r->az, s->subscription_id, s->region,
                                                              AZURE_BUCKET_ACI_CREATE)
                                : 0,
        .aci_delete_wait_ms = s ? azure_client_bucket_wait_ms(r->az, s->subscription_id, s->region,
                                                              AZURE_BUCKET_ACI_DELETE)
                                : 0,
        .rand = {d8_rand01(&r->rng), d8_rand01(&r->rng)},
        .share_min_gb = min_gb,
        .share_max_gb = max_gb,
        .account_kind = kind,
    };
    in->auto_stop_warning_minutes = r->cfg->auto_stop_warning_minutes;
    in->minute_ms = (int64_t)r->cfg->auto_stop_minute_seconds * 1000;
    const config_probe_t *rp = &r->cfg->readiness_probe;
    if (rp->path && rp->path[0]) {
        in->probe_delay_s = rp->initial_delay_seconds;
        in->probe_period_s = rp->period_seconds;
        in->probe_failures = rp->failure_threshold;
    }
}

void reconcile__step(rec_env_t *e)
{
    reconciler_t *r = e->r;
    const env_obj_t *obj = store_get(r->store, e->id);
    if (!obj) {
        reconcile__finish(e, 0, 0, "success");
        return;
    }
    /* Where to look: the desired region, or for a deletion whatever
     * region the lists found the resources in. */
    int region = obj->has_spec ? observer_region_index(r->ob, obj->spec.cloud_region) : -1;
    int deleting = obj->status.phase == PHASE_DELETING;
    if (region >= 0 && (!deleting || e->o->region < 0))
        e->o->region = region;
    int hashable = obj->has_spec && !obj->restored && !deleting;
    decide_input_t in;
    decide_input(r, e, obj, region, hashable ? reconcile__spec_hash(e, obj) : NULL, &in);
    decide_plan_t plan;
    reconcile_decide(&in, &plan);
    e->mem = plan.mem;
    e->o->settle = plan.settle;
    e->o->next_get_ms = plan.next_get_ms;
    if (plan.status.publish)
        reconcile__publish(e, &plan.status);
    reconcile__account(e, obj, &plan);
    obj = store_get(r->store, e->id);
    if (plan.action == DECIDE_REMOVE_OBJECT ||
        (plan.action == DECIDE_NONE && strcmp(plan.result, "success") == 0)) {
        /* Settled: the interactive change is done, back to the bulk lane. */
        workqueue_set_urgent(r->wq, e->id, 0);
    }
    switch (plan.action) {
    case DECIDE_NONE:
        reconcile__finish(e, 0, plan.requeue_ms, plan.result);
        return;
    case DECIDE_REMOVE_OBJECT:
        remove_object(e, &plan, obj);
        return;
    default:
        reconcile__act(e, &plan, obj);
        return;
    }
}

/* The queue's callback: one pass over `key` begins. */
static void process(void *ud, const char *key, double waited)
{
    reconciler_t *r = ud;
    metrics_observe(r->m_queue_wait, NULL, waited);
    /* A key the cache has not seen is read by GET before anything is
     * created under its name, even right after a list: a resource of that
     * name may have appeared since, and one that is not ours must never be
     * overwritten (invariant 1). */
    rec_env_t *e = env_get(r, key);
    e->o->busy = 1;
    e->fetched_group = 0;
    e->fetched_share = 0;
    e->pass_start_ns = d8_mono_ns();
    r->active++;
    reconcile__step(e);
}

/* ---- what puts keys on the queue ------------------------------------------------------- */

static void queue_observed(void *ud, observed_t *o)
{
    reconciler_t *r = ud;
    workqueue_add(r->wq, o->id);
}

typedef struct queue_ctx {
    reconciler_t *r;
    int idx;
} queue_ctx_t;

static void queue_desired(void *ud, const env_obj_t *obj)
{
    queue_ctx_t *q = ud;
    if (!obj->has_spec || observer_region_index(q->r->ob, obj->spec.cloud_region) == q->idx ||
        obj->status.phase == PHASE_DELETING)
        workqueue_add(q->r->wq, obj->id);
}

/* Level-triggered: after each list of a region, every key of the region
 * (observed or desired) gets a pass. */
static void on_region_listed(void *ud, int region)
{
    reconciler_t *r = ud;
    if (r->paused)
        return;
    observer_each_in_region(r->ob, region, queue_observed, r);
    queue_ctx_t q = {r, region};
    store_list(r->store, NULL, NULL, SIZE_MAX, queue_desired, &q);
}

/* A desired change queues its key: urgent when one user asked for it,
 * bulk when a full sync did; removals and our own status writes do not. */
static void on_store_event(void *ud, const store_event_t *ev)
{
    reconciler_t *r = ud;
    /* An id removed and created again restarts its generations: forget
     * the hash of the old object. */
    if (ev->type != EV_MODIFIED) {
        rec_env_t *e = d8_map_get(&r->envs, ev->id);
        if (e)
            e->hash_gen = 0;
    }
    if (r->paused)
        return;
    /* An id that left the desired set is the reaper's now. Our own status
     * writes come back as events too: they change nothing a pass decides
     * on, and requeueing on them would skip the polling delay of
     * long-running operations. Everything the API changes (spec, deletion,
     * the activity of a /start, secrets brought back to a restored object)
     * requeues. */
    if (ev->type == EV_DELETED || ev->status_only)
        return;
    if (ev->bulk) {
        workqueue_add(r->wq, ev->id);
        return;
    }
    /* One user's request (a PUT, DELETE, start or stop) goes ahead of the
     * bulk work of a full sync, and so do its ARM calls until it settles. */
    workqueue_add_urgent(r->wq, ev->id);
}

/* ---- metrics and status ------------------------------------------------------------------ */

static void collect(void *ud)
{
    reconciler_t *r = ud;
    workqueue_stats_t st;
    workqueue_stats(r->wq, &st);
    metrics_set(r->m_depth, NULL, (double)st.depth);
    metrics_clear(r->m_retries);
    metrics_add(r->m_retries, NULL, (double)st.retries);
}

static void render_azure(void *ud, d8_buf_t *out)
{
    reconciler_t *r = ud;
    azure_client_metrics(r->az, out);
}

void reconciler_status(reconciler_t *r, cJSON *status)
{
    workqueue_stats_t st;
    workqueue_stats(r->wq, &st);
    cJSON_AddNumberToObject(status, "queueDepth", (double)st.depth);
    cJSON_AddNumberToObject(status, "queueDelayed", (double)st.delayed);
    cJSON_AddNumberToObject(status, "reconcilesActive", (double)st.active);
    observer_status(r->ob, status);
    azure_stats_t as;
    azure_client_stats(r->az, &as);
    cJSON *th = cJSON_AddObjectToObject(status, "throttle");
    cJSON_AddNumberToObject(th, "queued", (double)as.queued);
    cJSON_AddNumberToObject(th, "inflight", (double)as.inflight);
    cJSON_AddNumberToObject(th, "throttleWaits", (double)as.throttle_waits);
    cJSON_AddNumberToObject(th, "throttled429", (double)as.throttled);
    cJSON_AddBoolToObject(status, "azureTokenObtained", azure_client_has_token(r->az));
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

/* Registers the reconciler's metric families. */
static void register_metrics(reconciler_t *r)
{
    static const char *const result_label[] = {"result"};
    static const char *const action_label[] = {"action"};
    static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    const size_t nb = sizeof(buckets) / sizeof(buckets[0]);
    r->m_total = metrics_counter(r->metrics, "dev8_reconcile_total", "Reconcile passes by result.",
                                 1, result_label);
    r->m_duration = metrics_histogram(r->metrics, "dev8_reconcile_duration_seconds",
                                      "Duration of one reconcile pass (its Azure reads included).",
                                      0, NULL, buckets, nb);
    r->m_depth = metrics_gauge(r->metrics, "dev8_workqueue_depth",
                               "Keys ready and waiting for a reconcile pass.", 0, NULL);
    r->m_retries = metrics_counter(r->metrics, "dev8_workqueue_retries_total",
                                   "Keys requeued with backoff after a failed pass.", 0, NULL);
    r->m_queue_wait =
        metrics_histogram(r->metrics, "dev8_workqueue_queue_duration_seconds",
                          "How long a key waited ready before its pass.", 0, NULL, buckets, nb);
    r->m_actions = metrics_counter(r->metrics, "dev8_reconcile_actions_total",
                                   "ARM mutations issued by the reconcile loop.", 1, action_label);
    metrics_on_collect(r->metrics, collect, r);
    metrics_on_render(r->metrics, render_azure, r);
}

reconciler_t *reconciler_new(const reconcile_opts_t *opts)
{
    reconciler_t *r = d8_xcalloc(1, sizeof(*r));
    r->loop = opts->loop;
    r->cfg = opts->cfg;
    r->store = opts->store;
    r->az = opts->az;
    r->ob = opts->observer;
    r->metrics = opts->metrics;
    r->usage = opts->usage;
    r->events = opts->events;
    r->activity = opts->activity;
    if (opts->hash_key && opts->hash_keylen) {
        r->hash_key = d8_xmalloc(opts->hash_keylen);
        memcpy(r->hash_key, opts->hash_key, opts->hash_keylen);
        r->hash_keylen = opts->hash_keylen;
    }
    r->start_wall_ms = d8_wall_ms();
    r->rng = d8_rand_seed();
    d8_map_init(&r->envs);
    workqueue_opts_t wo = {
        .max_active = (size_t)r->cfg->max_concurrent_reconciles,
        .backoff_base_ms = 1000,
        .backoff_cap_ms = 300000,
        .process = process,
        .ud = r,
    };
    r->wq = workqueue_new(r->loop, &wo);
    observer_on_listed(r->ob, on_region_listed, r);
    register_metrics(r);
    return r;
}

void reconciler_start(reconciler_t *r)
{
    r->watcher = store_watch(r->store, on_store_event, r);
}

void reconciler_pause(reconciler_t *r)
{
    r->paused = 1;
    workqueue_pause(r->wq);
}

size_t reconciler_active(const reconciler_t *r)
{
    return r->active;
}

void reconciler_free(reconciler_t *r)
{
    if (!r)
        return;
    if (r->watcher)
        store_unwatch(r->store, r->watcher);
    observer_on_listed(r->ob, NULL, NULL);
    workqueue_free(r->wq);
    size_t it = 0;
    rec_env_t *e;
    while ((e = d8_map_next(&r->envs, &it))) {
        free(e->operation_url);
        free(e);
    }
    d8_map_release(&r->envs);
    if (r->hash_key)
        OPENSSL_cleanse(r->hash_key, r->hash_keylen);
    free(r->hash_key);
    free(r);
}
