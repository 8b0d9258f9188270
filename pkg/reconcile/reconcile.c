#include "reconcile.h"

#include "base/base.h"
#include "base/map.h"
#include "log/log.h"
#include "spec/spec.h"
#include "workqueue/workqueue.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Polling delays while Azure settles (no Retry-After given). */
#define POLL_MS 2000
#define SHORT_MS 200
#define MAX_ERR 256

static const char TAG_MANAGED_BY[] = "dev8-managed-by";
static const char TAG_CONTROLLER[] = "dev8-controller";
static const char TAG_ENV_ID[] = "dev8-env-id";
static const char TAG_USER_ID[] = "dev8-user-id";
static const char TAG_SPEC_HASH[] = "dev8-spec-hash";
static const char TAG_KEEP[] = "dev8-keep";
static const char MANAGED_BY[] = "dev8-agent";

/* The observed Azure state of one environment id, and its pass state. */
typedef struct obs {
    char id[SPEC_ID_MAX + 1];
    int region;                /* index into cfg->regions, -1 unknown */

    int g_known;               /* a list or GET told us about the group */
    int g_exists;              /* ours and present */
    int g_foreign;             /* a group of our name not tagged as ours */
    int g_keep;
    char g_hash[17];
    char g_prov[24];           /* provisioningState */
    char g_inst[24];           /* instanceView.state ("" = not read yet) */
    char *g_ip;
    char *g_fqdn;
    char *g_failure;
    uint64_t g_updated_ms;     /* loop time of the last update */
    uint64_t g_next_get_ms;    /* next status refresh by GET */
    int g_settle;              /* an action ran: GET each pass until settled */
    int failed_seen;           /* a Failed provisioning was reported */
    int prov_failures;         /* consecutive failed provisionings (backoff) */
    uint64_t prov_retry_ms;    /* loop time before which a Failed group is kept */

    int s_known;
    int s_exists;
    int s_foreign;
    int s_verified;            /* metadata checked by GET: ours */
    int s_keep;                /* metadata dev8keep=true (read by GET) */
    int s_quota;
    uint64_t s_updated_ms;

    int ever_running;
    int64_t running_since_ms;  /* wall time RUNNING was first observed */
    int64_t auto_stopped_ms;   /* wall time of an auto-stop, 0 = none */
    int64_t auto_stopped_gen;

    /* pass state */
    int busy;
    int fetched_group;         /* GET done in this pass */
    int fetched_share;
    uint64_t pass_start_ns;
    reconciler_t *r;
} obs_t;

typedef struct region_state {
    int idx;
    uv_timer_t timer;
    int lists_pending;         /* 2 while both lists are in flight */
    uint64_t list_start_ms;
    int64_t last_list_wall_ms; /* 0 = never */
    int listed;                /* completed at least once */
    char last_error[MAX_ERR];
    azure_group_list_t groups;
    azure_share_list_t shares;
    int groups_ok, shares_ok;
    reconciler_t *r;
} region_state_t;

struct reconciler {
    uv_loop_t *loop;
    const config_t *cfg;
    store_t *store;
    azure_client_t *az;
    const azure_scope_t *scopes;
    metrics_t *metrics;
    unsigned char *hash_key;
    size_t hash_keylen;
    workqueue_t *wq;
    store_watcher_t *watcher;
    d8_map_t obs;
    region_state_t *regions;
    size_t active;
    int paused;
    size_t closing;            /* region timers still closing */
    int64_t start_wall_ms;
    uint64_t rng; /* d8_rand01 state: retry and refresh jitter */

    metric_family_t *m_total;
    metric_family_t *m_duration;
    metric_family_t *m_depth;
    metric_family_t *m_retries;
    metric_family_t *m_queue_wait;
    metric_family_t *m_actions;
};

/* ---- helpers ------------------------------------------------------------ */

static void set_str(char **dst, const char *src)
{
    if (*dst && src && strcmp(*dst, src) == 0)
        return;
    free(*dst);
    *dst = src ? d8_xstrdup(src) : NULL;
}

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

void reconcile_dns_label(const char *controller, const char *id, char out[64])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char in[160];
    char hex[7];
    int n = snprintf(in, sizeof(in), "%s/%s", controller, id);
    SHA256((const unsigned char *)in, (size_t)n, md);
    d8_hex(md, 3, hex);
    /* 5 + 48 + 1 + 6 = 60 characters at most: a valid DNS label. */
    snprintf(out, 64, "dev8-%.48s-%s", id, hex);
}

static obs_t *obs_get(reconciler_t *r, const char *id)
{
    obs_t *o = d8_map_get(&r->obs, id);
    if (!o) {
        o = d8_xcalloc(1, sizeof(*o));
        copy(o->id, sizeof(o->id), id);
        o->region = -1;
        o->r = r;
        d8_map_put(&r->obs, o->id, o);
    }
    return o;
}

static void obs_free(obs_t *o)
{
    free(o->g_ip);
    free(o->g_fqdn);
    free(o->g_failure);
    free(o);
}

static int region_index(const reconciler_t *r, const char *name)
{
    for (size_t i = 0; i < r->cfg->nregions; i++)
        if (strcmp(r->cfg->regions[i].name, name) == 0)
            return (int)i;
    return -1;
}

static void scope_of(const reconciler_t *r, int region, azure_scope_t *s)
{
    *s = r->scopes[region];
}

/* Room for "dev8-" + an environment id + NUL. */
#define RES_NAME_MAX (SPEC_ID_MAX + 8)

/*
 * The Azure name of an environment's container group and file share. It is
 * derived from the id alone, so a restarted agent finds what it created.
 */
static void name_of(const char *id, char name[RES_NAME_MAX])
{
    snprintf(name, RES_NAME_MAX, "dev8-%s", id);
}

/* Where every call about o goes: its region's scope and its resource name. */
static void target_of(const reconciler_t *r, const obs_t *o, azure_scope_t *s,
                      char name[RES_NAME_MAX])
{
    name_of(o->id, name);
    scope_of(r, o->region, s);
}

static int is_ours_tags(const reconciler_t *r, const azure_map_t *tags, const char *id)
{
    const char *mb = azure_map_get(tags, TAG_MANAGED_BY);
    const char *ctl = azure_map_get(tags, TAG_CONTROLLER);
    const char *eid = azure_map_get(tags, TAG_ENV_ID);
    return mb && ctl && eid && strcmp(mb, MANAGED_BY) == 0 &&
           strcmp(ctl, r->cfg->controller_name) == 0 && (!id || strcmp(eid, id) == 0);
}

static int is_ours_metadata(const reconciler_t *r, const azure_map_t *md, const char *id)
{
    const char *mb = azure_map_get(md, "dev8managedby");
    const char *ctl = azure_map_get(md, "dev8controller");
    const char *eid = azure_map_get(md, "dev8envid");
    return mb && ctl && eid && strcmp(mb, "dev8agent") == 0 &&
           strcmp(ctl, r->cfg->controller_name) == 0 && strcmp(eid, id) == 0;
}

/* Copies what a GET or list says about the group into o. */
static void obs_group_update(reconciler_t *r, obs_t *o, const azure_group_t *g, int from_get)
{
    o->g_known = 1;
    o->g_updated_ms = uv_now(r->loop);
    if (!is_ours_tags(r, &g->tags, o->id)) {
        o->g_exists = 0;
        o->g_foreign = 1;
        return;
    }
    o->g_foreign = 0;
    o->g_exists = 1;
    const char *keep = azure_map_get(&g->tags, TAG_KEEP);
    o->g_keep = keep && strcmp(keep, "true") == 0;
    copy(o->g_hash, sizeof(o->g_hash), azure_map_get(&g->tags, TAG_SPEC_HASH));
    copy(o->g_prov, sizeof(o->g_prov), g->provisioning_state);
    if (from_get) {
        copy(o->g_inst, sizeof(o->g_inst), g->instance_state);
        set_str(&o->g_ip, g->ip);
        set_str(&o->g_fqdn, g->fqdn);
        set_str(&o->g_failure, g->failure_message);
    }
}

static void obs_group_gone(reconciler_t *r, obs_t *o)
{
    o->g_known = 1;
    o->g_exists = 0;
    o->g_foreign = 0;
    o->g_prov[0] = o->g_inst[0] = o->g_hash[0] = '\0';
    set_str(&o->g_ip, NULL);
    set_str(&o->g_fqdn, NULL);
    set_str(&o->g_failure, NULL);
    o->g_updated_ms = uv_now(r->loop);
}

static void obs_share_update(reconciler_t *r, obs_t *o, const azure_share_t *s, int from_get)
{
    o->s_known = 1;
    o->s_exists = 1;
    o->s_updated_ms = uv_now(r->loop);
    if (s->quota_gb >= 0)
        o->s_quota = s->quota_gb;
    if (from_get) {
        int ours = is_ours_metadata(r, &s->metadata, o->id);
        const char *keep = azure_map_get(&s->metadata, "dev8keep");
        o->s_verified = ours;
        o->s_foreign = !ours;
        o->s_keep = keep && strcmp(keep, "true") == 0;
    }
}

static void obs_share_gone(reconciler_t *r, obs_t *o)
{
    o->s_known = 1;
    o->s_exists = 0;
    o->s_foreign = 0;
    o->s_verified = 0;
    o->s_quota = 0;
    o->s_updated_ms = uv_now(r->loop);
}

/* ---- status ------------------------------------------------------------- */

typedef struct status_change {
    reconciler_t *r;
    obs_t *o;
    int phase;                 /* -1 keeps the phase */
    cond_status_t ready;
    const char *ready_reason;
    const char *ready_msg;
    cond_status_t synced;
    const char *synced_reason;
    const char *synced_msg;
    int set_error;             /* 1 sets lastError, -1 clears it, 0 keeps */
    const char *err_code;
    const char *err_msg;
    int acted;                 /* an ARM mutation was issued */
} status_change_t;

static int str_differs(const char *a, const char *b)
{
    if (!a || !b)
        return a != b;
    return strcmp(a, b) != 0;
}

static void apply_status(void *ud, const env_obj_t *obj, env_status_t *s)
{
    status_change_t *c = ud;
    obs_t *o = c->o;
    int64_t now = d8_wall_ms();
    int changed = c->acted;
    if (c->phase >= 0 && (int)s->phase != c->phase) {
        s->phase = (env_phase_t)c->phase;
        changed = 1;
    }
    if (s->observed_generation != obj->generation) {
        s->observed_generation = obj->generation;
        changed = 1;
    }
    if (c->ready_reason && (s->ready.status != c->ready ||
                            strcmp(s->ready.reason, c->ready_reason) != 0 ||
                            str_differs(s->ready.message, c->ready_msg))) {
        store_set_condition(&s->ready, c->ready, c->ready_reason, c->ready_msg, now);
        changed = 1;
    }
    if (c->synced_reason && (s->synced.status != c->synced ||
                             strcmp(s->synced.reason, c->synced_reason) != 0 ||
                             str_differs(s->synced.message, c->synced_msg))) {
        store_set_condition(&s->synced, c->synced, c->synced_reason, c->synced_msg, now);
        changed = 1;
    }
    if (c->set_error > 0 && (str_differs(s->last_error_code, c->err_code) ||
                             str_differs(s->last_error_message, c->err_msg))) {
        set_str(&s->last_error_code, c->err_code);
        set_str(&s->last_error_message, c->err_msg ? c->err_msg : "");
        changed = 1;
    } else if (c->set_error < 0 && s->last_error_code) {
        set_str(&s->last_error_code, NULL);
        set_str(&s->last_error_message, NULL);
        changed = 1;
    }
    /* Resource fields: names are deterministic; addresses come from Azure. */
    char name[RES_NAME_MAX];
    name_of(o->id, name);
    const char *group = o->g_exists ? name : NULL;
    const char *share = o->s_exists ? name : NULL;
    const char *ip = o->g_exists ? o->g_ip : NULL;
    const char *fqdn = o->g_exists ? o->g_fqdn : NULL;
    char url[320];
    const char *vscode = NULL;
    if (fqdn && c->r->cfg->nports) {
        snprintf(url, sizeof(url), "http://%s:%d", fqdn, c->r->cfg->ports[0]);
        vscode = url;
    }
    if (str_differs(s->aci_container_group_id, group) ||
        str_differs(s->azure_file_share_name, share) || str_differs(s->aci_public_ip, ip) ||
        str_differs(s->fqdn, fqdn) || str_differs(s->vscode_url, vscode)) {
        set_str(&s->aci_container_group_id, group);
        set_str(&s->azure_file_share_name, share);
        set_str(&s->aci_public_ip, ip);
        set_str(&s->fqdn, fqdn);
        set_str(&s->vscode_url, vscode);
        changed = 1;
    }
    /* lastReconcileTime moves only with a visible change or an action, so
     * a quiet resync does not stream an event for every environment. */
    if (changed)
        s->last_reconcile_ms = now;
}

static void set_status(reconciler_t *r, obs_t *o, status_change_t *c)
{
    c->r = r;
    c->o = o;
    store_update_status(r->store, o->id, apply_status, c);
}

/* ---- pass lifecycle --------------------------------------------------------- */

static void step(reconciler_t *r, obs_t *o);

static void finish(reconciler_t *r, obs_t *o, int err, uint64_t requeue_ms, const char *result)
{
    double secs = (double)(d8_mono_ns() - o->pass_start_ns) / 1e9;
    const char *lbl[] = {result};
    metrics_add(r->m_total, lbl, 1);
    metrics_observe(r->m_duration, NULL, secs);
    o->busy = 0;
    r->active--;
    char id[SPEC_ID_MAX + 1];
    copy(id, sizeof(id), o->id);
    workqueue_done(r->wq, id, err, requeue_ms);
}

/* The status and outcome of an Azure call that failed. */
static void azure_failed(reconciler_t *r, obs_t *o, const char *what, const azure_result_t *res)
{
    if (res->err == D8_ECANCELED) {
        finish(r, o, 0, 0, "canceled");
        return;
    }
    const char *code = res->error_code && *res->error_code ? res->error_code
                                                            : d8_err_name(res->err);
    char msg[MAX_ERR + 64];
    snprintf(msg, sizeof(msg), "%s: %s", what,
             res->error_message && *res->error_message ? res->error_message
                                                        : d8_strerror(res->err));
    int throttled = res->err == D8_EAGAIN || res->http_status == 429;
    int quota = strstr(code, "Quota") != NULL;
    status_change_t c = {.phase = quota ? PHASE_ERROR : -1,
                         .synced = COND_FALSE,
                         .synced_reason = throttled ? "Throttled" : "ReconcileError",
                         .synced_msg = msg,
                         .set_error = 1,
                         .err_code = code,
                         .err_msg = msg};
    if (quota) {
        c.ready = COND_FALSE;
        c.ready_reason = "Failed";
        c.ready_msg = msg;
    }
    set_status(r, o, &c);
    LOG(LOG_WARN, "azure call failed", LF_S("env_id", o->id), LF_S("operation", what),
        LF_I("status", res->http_status), LF_S("code", code),
        LF_S("arm_request_id", res->request_id ? res->request_id : ""));
    /* Quota errors will not clear in seconds: retry slowly. */
    if (quota)
        finish(r, o, 0, 60000 + (uint64_t)(d8_rand01(&r->rng) * 60000), "error");
    else
        finish(r, o, D8_EIO, 0, "error");
}

/* Requeue delay after an accepted long-running operation. */
static uint64_t lro_delay(const azure_result_t *res)
{
    if (res->retry_after_ms > 0)
        return (uint64_t)res->retry_after_ms;
    return POLL_MS;
}

static void count_action(reconciler_t *r, const char *action)
{
    const char *lbl[] = {action};
    metrics_add(r->m_actions, lbl, 1);
}

/* ---- Azure callbacks ---------------------------------------------------- */

static void on_group_get(void *ud, const azure_result_t *res, const azure_group_t *g)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err == D8_ENOENT) {
        obs_group_gone(r, o);
    } else if (res->err < 0) {
        azure_failed(r, o, "get container group", res);
        return;
    } else if (g) {
        obs_group_update(r, o, g, 1);
    }
    o->fetched_group = 1;
    step(r, o);
}

static void on_share_get(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err == D8_ENOENT) {
        obs_share_gone(r, o);
    } else if (res->err < 0) {
        azure_failed(r, o, "get file share", res);
        return;
    } else if (s) {
        obs_share_update(r, o, s, 1);
    }
    o->fetched_share = 1;
    step(r, o);
}

static void on_share_put(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err < 0) {
        azure_failed(r, o, "create file share", res);
        return;
    }
    o->s_known = o->s_exists = o->s_verified = 1;
    o->s_foreign = 0;
    if (s && s->quota_gb > 0)
        o->s_quota = s->quota_gb;
    o->s_updated_ms = uv_now(r->loop);
    finish(r, o, 0, 1, "acted");
}

static void on_share_quota(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err < 0) {
        azure_failed(r, o, "grow file share quota", res);
        return;
    }
    if (s && s->quota_gb > 0)
        o->s_quota = s->quota_gb;
    o->s_updated_ms = uv_now(r->loop);
    finish(r, o, 0, 1, "acted");
}

static void on_share_delete(void *ud, const azure_result_t *res)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err < 0 && res->err != D8_ENOENT) {
        azure_failed(r, o, "delete file share", res);
        return;
    }
    obs_share_gone(r, o);
    finish(r, o, 0, 1, "acted");
}

static void on_group_put(void *ud, const azure_result_t *res, const azure_group_t *g)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err < 0) {
        azure_failed(r, o, "create container group", res);
        return;
    }
    if (g)
        obs_group_update(r, o, g, 1);
    o->g_settle = 1;
    finish(r, o, 0, lro_delay(res), "acted");
}

static void on_group_lro(void *ud, const azure_result_t *res)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err < 0 && res->err != D8_ENOENT) {
        azure_failed(r, o, "container group operation", res);
        return;
    }
    if (res->err == D8_ENOENT)
        obs_group_gone(r, o);
    o->g_settle = 1;
    /* Observe right away when the operation completed synchronously. */
    finish(r, o, 0, res->accepted ? lro_delay(res) : SHORT_MS, "acted");
}

/* ---- actions ------------------------------------------------------------ */

static void act_failed_sync(reconciler_t *r, obs_t *o, const char *what, int rc)
{
    azure_result_t res;
    memset(&res, 0, sizeof(res));
    res.err = rc;
    res.error_code = "InvalidRequest";
    res.error_message = d8_strerror(rc);
    azure_failed(r, o, what, &res);
}

static void act_group_delete(reconciler_t *r, obs_t *o, const char *why)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    LOG(LOG_INFO, "deleting container group", LF_S("env_id", o->id), LF_S("group", name),
        LF_S("reason", why));
    count_action(r, "deleteGroup");
    int rc = azure_group_delete(r->az, &s, name, AZURE_PRIO_HIGH, on_group_lro, o);
    if (rc < 0)
        act_failed_sync(r, o, "delete container group", rc);
}

static void act_share_delete(reconciler_t *r, obs_t *o)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    /* The one place user data is destroyed: an audit line, always. */
    LOG(LOG_WARN, "audit: deleting file share", LF_S("env_id", o->id), LF_S("share", name),
        LF_S("storage_account", s.storage_account), LF_S("reason", "environment deleted"));
    count_action(r, "deleteShare");
    int rc = azure_share_delete(r->az, &s, name, AZURE_PRIO_HIGH, on_share_delete, o);
    if (rc < 0)
        act_failed_sync(r, o, "delete file share", rc);
}

static void act_share_put(reconciler_t *r, obs_t *o, const env_obj_t *obj)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    azure_kv_t md[] = {{"dev8managedby", "dev8agent"},
                       {"dev8controller", r->cfg->controller_name},
                       {"dev8envid", o->id},
                       {"dev8userid", obj->spec.user_id}};
    azure_share_spec_t spec = {name, obj->spec.storage_gb, md, 4};
    count_action(r, "createShare");
    int rc = azure_share_put(r->az, &s, &spec, AZURE_PRIO_HIGH, on_share_put, o);
    if (rc < 0)
        act_failed_sync(r, o, "create file share", rc);
}

static void on_share_retained(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    obs_t *o = ud;
    reconciler_t *r = o->r;
    if (res->err < 0) {
        azure_failed(r, o, "mark file share retained", res);
        return;
    }
    o->s_keep = 1;
    (void)s;
    finish(r, o, 0, 1, "acted");
}

/* Rewrites the share's metadata with dev8keep=true (its quota unchanged). */
static void act_share_retain(reconciler_t *r, obs_t *o, const env_obj_t *obj)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    azure_kv_t md[] = {{"dev8managedby", "dev8agent"},
                       {"dev8controller", r->cfg->controller_name},
                       {"dev8envid", o->id},
                       {"dev8userid", obj->spec.user_id},
                       {"dev8keep", "true"}};
    int quota = o->s_quota > 0 ? o->s_quota : obj->spec.storage_gb;
    azure_share_spec_t spec = {name, quota, md, 5};
    LOG(LOG_INFO, "retaining file share of a deleted environment", LF_S("env_id", o->id),
        LF_S("share", name));
    count_action(r, "retainShare");
    int rc = azure_share_put(r->az, &s, &spec, AZURE_PRIO_HIGH, on_share_retained, o);
    if (rc < 0)
        act_failed_sync(r, o, "mark file share retained", rc);
}

static void act_share_quota(reconciler_t *r, obs_t *o, int quota)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    LOG(LOG_INFO, "growing file share quota", LF_S("env_id", o->id), LF_I("from_gb", o->s_quota),
        LF_I("to_gb", quota));
    count_action(r, "growShare");
    int rc = azure_share_set_quota(r->az, &s, name, quota, AZURE_PRIO_HIGH, on_share_quota, o);
    if (rc < 0)
        act_failed_sync(r, o, "grow file share quota", rc);
}

static void spec_hash_of(reconciler_t *r, const env_obj_t *obj, char out[17])
{
    spec_hash_input_t in = {
        .image = config_image(r->cfg, obj->spec.base_image),
        .ports = r->cfg->ports,
        .nports = r->cfg->nports,
        .mount_path = r->cfg->mount_path,
        .key = r->hash_key,
        .keylen = r->hash_keylen,
    };
    spec_hash(&obj->spec, &in, out);
}

static void act_group_put(reconciler_t *r, obs_t *o, const env_obj_t *obj, const char *hash)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    char label[64];
    target_of(r, o, &s, name);
    reconcile_dns_label(r->cfg->controller_name, o->id, label);
    const env_spec_t *sp = &obj->spec;
    azure_kv_t tags[] = {{TAG_MANAGED_BY, MANAGED_BY},
                         {TAG_CONTROLLER, r->cfg->controller_name},
                         {TAG_ENV_ID, o->id},
                         {TAG_USER_ID, sp->user_id},
                         {TAG_SPEC_HASH, hash}};
    azure_kv_t *env = d8_xcalloc(sp->nenv + 1, sizeof(*env));
    azure_kv_t *sec = d8_xcalloc(sp->nsecret + 1, sizeof(*sec));
    for (size_t i = 0; i < sp->nenv; i++)
        env[i] = (azure_kv_t){sp->env[i].name, sp->env[i].value};
    for (size_t i = 0; i < sp->nsecret; i++)
        sec[i] = (azure_kv_t){sp->secret_env[i].name, sp->secret_env[i].value};
    azure_group_spec_t gs = {
        .name = name,
        .tags = tags,
        .ntags = 5,
        .image = config_image(r->cfg, sp->base_image),
        .cpu = sp->cpu_halves / 2.0,
        .memory_gb = sp->memory_halves / 2.0,
        .ports = r->cfg->ports,
        .nports = r->cfg->nports,
        .env = env,
        .nenv = sp->nenv,
        .secure_env = sec,
        .nsecure_env = sp->nsecret,
        .share_name = name,
        .mount_path = r->cfg->mount_path,
        .dns_label = label,
    };
    LOG(LOG_INFO, "creating container group", LF_S("env_id", o->id), LF_S("group", name),
        LF_S("spec_hash", hash), LF_I("generation", obj->generation));
    count_action(r, "createGroup");
    int rc = azure_group_put(r->az, &s, &gs, AZURE_PRIO_HIGH, on_group_put, o);
    free(env);
    free(sec);
    if (rc < 0)
        act_failed_sync(r, o, "create container group", rc);
}

static void act_power(reconciler_t *r, obs_t *o, int start)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    LOG(LOG_INFO, start ? "starting container group" : "stopping container group",
        LF_S("env_id", o->id), LF_S("group", name));
    count_action(r, start ? "startGroup" : "stopGroup");
    int rc = start ? azure_group_start(r->az, &s, name, AZURE_PRIO_HIGH, on_group_lro, o)
                   : azure_group_stop(r->az, &s, name, AZURE_PRIO_HIGH, on_group_lro, o);
    if (rc < 0)
        act_failed_sync(r, o, start ? "start container group" : "stop container group", rc);
}

/* ---- decide --------------------------------------------------------------- */

static int prov_is(const obs_t *o, const char *state)
{
    return strcasecmp(o->g_prov, state) == 0;
}

static int inst_is(const obs_t *o, const char *state)
{
    return strcasecmp(o->g_inst, state) == 0;
}

/* Whether this pass must GET the group before deciding. */
static int need_group_get(reconciler_t *r, const obs_t *o)
{
    if (o->fetched_group)
        return 0;
    if (!o->g_known)
        return 1;
    if (!o->g_exists)
        return 0;
    return o->g_settle || !o->g_inst[0] || uv_now(r->loop) >= o->g_next_get_ms;
}

static void get_group(reconciler_t *r, obs_t *o)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    int rc = azure_group_get(r->az, &s, name, AZURE_PRIO_NORMAL, on_group_get, o);
    if (rc < 0)
        act_failed_sync(r, o, "get container group", rc);
}

static void get_share(reconciler_t *r, obs_t *o)
{
    azure_scope_t s;
    char name[RES_NAME_MAX];
    target_of(r, o, &s, name);
    int rc = azure_share_get(r->az, &s, name, AZURE_PRIO_NORMAL, on_share_get, o);
    if (rc < 0)
        act_failed_sync(r, o, "get file share", rc);
}

static int creating_phase(const obs_t *o, const env_obj_t *obj)
{
    if (o->ever_running)
        return PHASE_STARTING;
    switch (obj->status.phase) {
    case PHASE_RUNNING:
    case PHASE_STOPPED:
    case PHASE_STOPPING:
    case PHASE_STARTING:
        return PHASE_STARTING;
    default:
        return PHASE_CREATING;
    }
}

/* The deletion path: group, then share (Delete policy), then the object. */
static void decide_delete(reconciler_t *r, obs_t *o, const env_obj_t *obj)
{
    if (o->region < 0) {
        /* A tombstone for an id we have not seen: wait until every region
         * was listed once, then there is nothing to delete. */
        if (reconciler_listed_all(r)) {
            LOG(LOG_INFO, "environment deleted (nothing in Azure)", LF_S("env_id", o->id));
            store_remove(r->store, o->id);
            finish(r, o, 0, 0, "deleted");
        } else {
            finish(r, o, 0, POLL_MS, "waiting");
        }
        return;
    }
    if (need_group_get(r, o)) {
        get_group(r, o);
        return;
    }
    status_change_t c = {.phase = PHASE_DELETING,
                         .ready = COND_FALSE,
                         .ready_reason = "Deleting",
                         .ready_msg = "the environment is being deleted",
                         .synced = COND_TRUE,
                         .synced_reason = "ReconcileSuccess"};
    if (o->g_exists) {
        if (prov_is(o, "Deleting")) {
            set_status(r, o, &c);
            finish(r, o, 0, POLL_MS, "waiting");
            return;
        }
        c.acted = 1;
        set_status(r, o, &c);
        act_group_delete(r, o, "environment deleted");
        return;
    }
    int retain = obj->has_spec && obj->spec.storage_policy == SPEC_STORAGE_RETAIN;
    if (retain && (!o->s_known || o->s_exists)) {
        /* Retain outlives the environment: mark the share dev8keep=true
         * before the object goes, or the reaper would take it as an orphan
         * once its grace ran out. */
        if (!o->fetched_share) {
            get_share(r, o);
            return;
        }
        if (o->s_exists && o->s_verified && !o->s_keep) {
            c.acted = 1;
            set_status(r, o, &c);
            act_share_retain(r, o, obj);
            return;
        }
    }
    if (!retain && (!o->s_known || o->s_exists)) {
        if (!o->fetched_share) {
            /* Ownership is confirmed by a fresh GET right before deleting. */
            get_share(r, o);
            return;
        }
        if (o->s_exists && o->s_verified) {
            c.acted = 1;
            set_status(r, o, &c);
            act_share_delete(r, o);
            return;
        }
        if (o->s_exists)
            LOG(LOG_WARN, "file share not tagged as ours: left alone", LF_S("env_id", o->id),
                LF_S("controller", r->cfg->controller_name));
    }
    LOG(LOG_INFO, "environment deleted", LF_S("env_id", o->id),
        LF_B("share_retained", retain && o->s_exists));
    store_remove(r->store, o->id);
    finish(r, o, 0, 0, "deleted");
}

/* Auto-stop: RUNNING, autoStopMinutes set, no activity for that long. The
 * clock never starts before the agent's own start. */
int reconcile_auto_stop_due(int minutes, int64_t agent_start_ms, int64_t last_activity_ms,
                            int64_t running_since_ms, int64_t now_ms)
{
    if (minutes <= 0)
        return 0;
    int64_t since = agent_start_ms;
    if (last_activity_ms > since)
        since = last_activity_ms;
    if (running_since_ms > since)
        since = running_since_ms;
    return now_ms - since >= (int64_t)minutes * 60000;
}

static int auto_stop_due(reconciler_t *r, obs_t *o, const env_obj_t *obj)
{
    if (obj->spec.power != SPEC_POWER_RUNNING)
        return 0;
    return reconcile_auto_stop_due(obj->spec.auto_stop_minutes, r->start_wall_ms,
                                   obj->status.last_activity_ms, o->running_since_ms,
                                   d8_wall_ms());
}

static int auto_stopped(obs_t *o, const env_obj_t *obj)
{
    if (!o->auto_stopped_ms)
        return 0;
    /* A new generation or activity after the stop (e.g. /start) ends it. */
    if (o->auto_stopped_gen != obj->generation ||
        obj->status.last_activity_ms > o->auto_stopped_ms) {
        o->auto_stopped_ms = 0;
        return 0;
    }
    return 1;
}

/*
 * An environment restored from the state file with secrets has no secret
 * values until Next.js PUTs it again: the spec hash cannot be computed and
 * a group cannot be created without them. Observe only; the PUT (or full
 * sync) that supplies the values requeues it.
 */
static void decide_restored(reconciler_t *r, obs_t *o)
{
    status_change_t c = {.phase = -1,
                         .synced = COND_FALSE,
                         .synced_reason = "ReconcileError",
                         .synced_msg = "restored from the state file without secret values: "
                                       "waiting for a PUT or full sync of this environment"};
    if (o->g_exists && prov_is(o, "Succeeded") && inst_is(o, "Running")) {
        c.phase = PHASE_RUNNING;
        c.ready = COND_TRUE;
        c.ready_reason = "Available";
        c.ready_msg = "the workspace is running";
    } else if (o->g_exists && (inst_is(o, "Stopped") || inst_is(o, "Terminated"))) {
        c.phase = PHASE_STOPPED;
        c.ready = COND_FALSE;
        c.ready_reason = "Stopped";
        c.ready_msg = "stopped; the file share keeps the workspace";
    }
    set_status(r, o, &c);
    finish(r, o, 0, 0, "waiting");
}

/*
 * The next status GET: statusRefreshSeconds after the last GET, plus up to
 * half of it again as jitter (so refreshes spread out and are never more
 * frequent than once per period). Only a pass that did GET moves it; the
 * passes of every resync in between must not push it away.
 */
static void schedule_refresh(reconciler_t *r, obs_t *o)
{
    uint64_t refresh = (uint64_t)r->cfg->status_refresh_seconds * 1000;
    if (o->fetched_group || !o->g_next_get_ms)
        o->g_next_get_ms =
            uv_now(r->loop) + refresh + (uint64_t)(d8_rand01(&r->rng) * (double)refresh / 2);
}

static uint64_t refresh_delay(reconciler_t *r, const obs_t *o)
{
    uint64_t now = uv_now(r->loop);
    return o->g_next_get_ms > now ? o->g_next_get_ms - now : 1;
}

/*
 * ACI meters container group creates and deletes per region (100 per 5
 * minutes, 300 per hour). A pass whose mutation would wait for the
 * client's bucket gives its slot back instead of holding it (which would
 * stall the status work of every other environment behind it): it says
 * Throttled and comes back when a token is due.
 */
static int aci_throttled(reconciler_t *r, obs_t *o, status_change_t *c, azure_bucket_kind_t kind)
{
    azure_scope_t s;
    scope_of(r, o->region, &s);
    /* Both windows (5 minutes and an hour): the longer wait wins. */
    uint64_t wait = azure_client_bucket_wait_ms(r->az, s.subscription_id, s.region, kind);
    if (!wait)
        return 0;
    wait += (uint64_t)(d8_rand01(&r->rng) * 1000.0);
    c->synced = COND_FALSE;
    c->synced_reason = "Throttled";
    c->synced_msg = "waiting for the region's Azure Container Instances rate limit";
    set_status(r, o, c);
    finish(r, o, 0, wait, "throttled");
    return 1;
}

static void decide(reconciler_t *r, obs_t *o, const env_obj_t *obj)
{
    const env_spec_t *sp = &obj->spec;
    status_change_t c = {.phase = -1, .synced = COND_TRUE, .synced_reason = "ReconcileSuccess",
                         .synced_msg = ""};
    if (obj->restored) {
        decide_restored(r, o);
        return;
    }

    if (o->g_foreign || o->s_foreign) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "a %s named dev8-%s exists and is not tagged with controller %s: left alone",
                 o->g_foreign ? "container group" : "file share", o->id, r->cfg->controller_name);
        c.phase = PHASE_ERROR;
        c.ready = COND_FALSE;
        c.ready_reason = "Failed";
        c.ready_msg = msg;
        c.synced = COND_FALSE;
        c.synced_reason = "ReconcileError";
        c.synced_msg = msg;
        c.set_error = 1;
        c.err_code = "NameConflict";
        c.err_msg = msg;
        set_status(r, o, &c);
        finish(r, o, 0, (uint64_t)r->cfg->resync_seconds * 1000, "error");
        return;
    }

    /* 1. The share, before anything that mounts it. */
    if (!o->s_exists) {
        c.phase = creating_phase(o, obj);
        c.ready = COND_FALSE;
        c.ready_reason = "Creating";
        c.ready_msg = "creating the file share";
        c.acted = 1;
        set_status(r, o, &c);
        act_share_put(r, o, obj);
        return;
    }
    if (!o->s_verified) {
        /* Listed but never read: confirm it is ours before changing it. */
        if (!o->fetched_share) {
            get_share(r, o);
            return;
        }
    }
    char shrink[160] = "";
    if (o->s_quota > 0 && o->s_quota < sp->storage_gb) {
        c.acted = 1;
        set_status(r, o, &c);
        act_share_quota(r, o, sp->storage_gb);
        return;
    }
    if (o->s_quota > sp->storage_gb)
        snprintf(shrink, sizeof(shrink),
                 "storageGB %d is below the file share's quota of %d GB: shrinking is refused",
                 sp->storage_gb, o->s_quota);
    if (shrink[0]) {
        c.synced = COND_FALSE;
        c.synced_reason = "ReconcileError";
        c.synced_msg = shrink;
    }

    /* 2. The container group. */
    char hash[17];
    spec_hash_of(r, obj, hash);
    int want_running = sp->power == SPEC_POWER_RUNNING && !auto_stopped(o, obj);
    if (!o->g_exists) {
        if (!want_running) {
            c.phase = PHASE_STOPPED;
            c.ready = COND_FALSE;
            c.ready_reason = "Stopped";
            c.ready_msg = "stopped; the file share keeps the workspace";
            c.set_error = shrink[0] ? 0 : -1;
            set_status(r, o, &c);
            finish(r, o, 0, 0, "success");
            return;
        }
        c.phase = creating_phase(o, obj);
        c.ready = COND_FALSE;
        c.ready_reason = c.phase == PHASE_CREATING ? "Creating" : "Starting";
        c.ready_msg = "creating the container group";
        if (aci_throttled(r, o, &c, AZURE_BUCKET_ACI_CREATE))
            return;
        c.acted = 1;
        set_status(r, o, &c);
        act_group_put(r, o, obj, hash);
        return;
    }
    if (prov_is(o, "Deleting")) {
        c.phase = creating_phase(o, obj);
        c.ready = COND_FALSE;
        c.ready_reason = "Starting";
        c.ready_msg = "waiting for the old container group to be deleted";
        set_status(r, o, &c);
        finish(r, o, 0, POLL_MS, "waiting");
        return;
    }
    if (strcmp(o->g_hash, hash) != 0) {
        c.phase = creating_phase(o, obj);
        c.ready = COND_FALSE;
        c.ready_reason = "Starting";
        c.ready_msg = "recreating the container group for the new spec (the share keeps the data)";
        if (aci_throttled(r, o, &c, AZURE_BUCKET_ACI_DELETE))
            return;
        c.acted = 1;
        set_status(r, o, &c);
        act_group_delete(r, o, "spec drift");
        return;
    }
    if (prov_is(o, "Failed")) {
        char msg[MAX_ERR];
        snprintf(msg, sizeof(msg), "container group provisioning failed: %s",
                 o->g_failure ? o->g_failure : "no message from Azure");
        uint64_t now = uv_now(r->loop);
        if (!o->failed_seen) {
            /* Report first; the retry (delete, then create) waits for a
             * backoff that grows with each consecutive failure. It is kept
             * here, not in the queue's failure count: the delete and create
             * passes in between succeed (and reset that count), and a
             * resync or status refresh would otherwise retry at once, so a
             * group that always fails (bad image, broken mount) was
             * recreated every few seconds, burning ACI's create quota of
             * the whole region. */
            o->failed_seen = 1;
            o->prov_failures++;
            uint64_t delay = d8_backoff_ms((unsigned)o->prov_failures, 1000, 300000, d8_rand01(&r->rng));
            o->prov_retry_ms = now + delay;
            c.phase = PHASE_ERROR;
            c.ready = COND_FALSE;
            c.ready_reason = "Failed";
            c.ready_msg = msg;
            c.synced = COND_FALSE;
            c.synced_reason = "ReconcileError";
            c.synced_msg = msg;
            c.set_error = 1;
            c.err_code = "ProvisioningFailed";
            c.err_msg = msg;
            set_status(r, o, &c);
            finish(r, o, 0, delay, "error");
            return;
        }
        if (now < o->prov_retry_ms) {
            /* An early pass (resync, status refresh): the backoff holds. */
            finish(r, o, 0, o->prov_retry_ms - now, "waiting");
            return;
        }
        o->failed_seen = 0;
        act_group_delete(r, o, "retry after failed provisioning");
        return;
    }
    if (!prov_is(o, "Succeeded")) {
        c.phase = creating_phase(o, obj);
        c.ready = COND_FALSE;
        c.ready_reason = c.phase == PHASE_CREATING ? "Creating" : "Starting";
        c.ready_msg = "Azure is provisioning the container group";
        o->g_settle = 1;
        set_status(r, o, &c);
        finish(r, o, 0, POLL_MS, "waiting");
        return;
    }

    /* 3. Power state. The group provisioned: the failure backoff restarts. */
    o->prov_failures = 0;
    if (want_running && auto_stop_due(r, o, obj) && inst_is(o, "Running")) {
        o->auto_stopped_ms = d8_wall_ms();
        o->auto_stopped_gen = obj->generation;
        LOG(LOG_INFO, "auto-stopping idle environment", LF_S("env_id", o->id),
            LF_I("auto_stop_minutes", sp->auto_stop_minutes));
        c.phase = PHASE_STOPPING;
        c.ready = COND_FALSE;
        c.ready_reason = "Stopping";
        c.ready_msg = "no activity for autoStopMinutes";
        c.synced_reason = "AutoStopped";
        c.synced_msg = "stopped for inactivity; a new generation or /start starts it again";
        c.acted = 1;
        set_status(r, o, &c);
        act_power(r, o, 0);
        return;
    }
    if (want_running) {
        if (inst_is(o, "Running")) {
            o->g_settle = 0;
            o->ever_running = 1;
            if (!o->running_since_ms)
                o->running_since_ms = d8_wall_ms();
            schedule_refresh(r, o);
            c.phase = PHASE_RUNNING;
            c.ready = COND_TRUE;
            c.ready_reason = "Available";
            c.ready_msg = "the workspace is running";
            c.set_error = shrink[0] ? 0 : -1;
            set_status(r, o, &c);
            uint64_t next = refresh_delay(r, o);
            if (sp->auto_stop_minutes > 0 && next > 60000)
                next = 60000; /* look at the auto-stop clock every minute */
            finish(r, o, 0, next, "success");
            return;
        }
        o->running_since_ms = 0;
        if (inst_is(o, "Stopped") || inst_is(o, "Terminated")) {
            c.phase = PHASE_STARTING;
            c.ready = COND_FALSE;
            c.ready_reason = "Starting";
            c.ready_msg = "starting the container group";
            c.acted = 1;
            set_status(r, o, &c);
            act_power(r, o, 1);
            return;
        }
        c.phase = creating_phase(o, obj);
        c.ready = COND_FALSE;
        c.ready_reason = c.phase == PHASE_CREATING ? "Creating" : "Starting";
        c.ready_msg = "waiting for the container to run";
        o->g_settle = 1;
        set_status(r, o, &c);
        finish(r, o, 0, POLL_MS, "waiting");
        return;
    }
    /* Desired stopped (by spec or auto-stop). */
    o->running_since_ms = 0;
    if (inst_is(o, "Stopped") || inst_is(o, "Terminated")) {
        o->g_settle = 0;
        schedule_refresh(r, o);
        c.phase = PHASE_STOPPED;
        c.ready = COND_FALSE;
        c.ready_reason = "Stopped";
        c.ready_msg = "stopped; the file share keeps the workspace";
        if (o->auto_stopped_ms) {
            c.synced_reason = "AutoStopped";
            c.synced_msg = "stopped for inactivity; a new generation or /start starts it again";
        }
        c.set_error = shrink[0] ? 0 : -1;
        set_status(r, o, &c);
        finish(r, o, 0, refresh_delay(r, o), "success");
        return;
    }
    c.phase = PHASE_STOPPING;
    c.ready = COND_FALSE;
    c.ready_reason = "Stopping";
    c.ready_msg = "stopping the container group";
    if (o->auto_stopped_ms) {
        c.synced_reason = "AutoStopped";
        c.synced_msg = "stopped for inactivity; a new generation or /start starts it again";
    }
    c.acted = 1;
    set_status(r, o, &c);
    act_power(r, o, 0);
}

static void step(reconciler_t *r, obs_t *o)
{
    const env_obj_t *obj = store_get(r->store, o->id);
    if (!obj) {
        finish(r, o, 0, 0, "success");
        return;
    }
    if (obj->has_spec && obj->status.phase != PHASE_DELETING) {
        int idx = region_index(r, obj->spec.cloud_region);
        if (idx < 0) {
            /* The config lost the region: nothing safe to do. */
            finish(r, o, 0, 0, "error");
            return;
        }
        o->region = idx;
    }
    if (obj->status.phase == PHASE_DELETING) {
        if (o->region < 0 && obj->has_spec)
            o->region = region_index(r, obj->spec.cloud_region);
        decide_delete(r, o, obj);
        return;
    }
    if (need_group_get(r, o)) {
        get_group(r, o);
        return;
    }
    if (!o->s_known && !o->fetched_share) {
        get_share(r, o);
        return;
    }
    decide(r, o, obj);
}

static void process(void *ud, const char *key, double waited)
{
    reconciler_t *r = ud;
    metrics_observe(r->m_queue_wait, NULL, waited);
    /* A key the cache has not seen is read by GET before anything is
     * created under its name, even right after a list: a resource of that
     * name may have appeared since, and one that is not ours must never be
     * overwritten (invariant 1). */
    obs_t *o = obs_get(r, key);
    o->busy = 1;
    o->fetched_group = 0;
    o->fetched_share = 0;
    o->pass_start_ns = d8_mono_ns();
    r->active++;
    step(r, o);
}

/* ---- resync -------------------------------------------------------------- */

static void resync_cb(uv_timer_t *t);

static const char *env_id_of_share(const char *name)
{
    if (strncmp(name, "dev8-", 5) != 0 || !spec_id_valid(name + 5))
        return NULL;
    return name + 5;
}

static void queue_region(reconciler_t *r, int idx)
{
    size_t it = 0;
    obs_t *o;
    while ((o = d8_map_next(&r->obs, &it)))
        if (o->region == idx)
            workqueue_add(r->wq, o->id);
}

typedef struct queue_ctx {
    reconciler_t *r;
    int idx;
} queue_ctx_t;

static void queue_desired(void *ud, const env_obj_t *obj)
{
    queue_ctx_t *q = ud;
    if (!obj->has_spec || region_index(q->r, obj->spec.cloud_region) == q->idx ||
        obj->status.phase == PHASE_DELETING)
        workqueue_add(q->r->wq, obj->id);
}

static void apply_lists(reconciler_t *r, region_state_t *rs)
{
    uint64_t start = rs->list_start_ms;
    /* Everything the lists saw. */
    if (rs->groups_ok) {
        for (size_t i = 0; i < rs->groups.n; i++) {
            const azure_group_t *g = &rs->groups.items[i];
            const char *eid = azure_map_get(&g->tags, TAG_ENV_ID);
            const char *ctl = azure_map_get(&g->tags, TAG_CONTROLLER);
            const char *id = NULL;
            if (eid && ctl && strcmp(ctl, r->cfg->controller_name) == 0 && spec_id_valid(eid))
                id = eid;
            else if (g->name)
                id = env_id_of_share(g->name); /* same dev8-{id} naming */
            if (!id || !g->name)
                continue;
            char want[RES_NAME_MAX];
            name_of(id, want);
            if (strcasecmp(want, g->name) != 0)
                continue; /* tagged with an id that does not match its name */
            obs_t *o = obs_get(r, id);
            if (o->busy || o->g_updated_ms > start)
                continue; /* newer knowledge than this list */
            o->region = rs->idx;
            obs_group_update(r, o, g, 0);
            o->g_updated_ms = start;
        }
    }
    if (rs->shares_ok) {
        for (size_t i = 0; i < rs->shares.n; i++) {
            const azure_share_t *s = &rs->shares.items[i];
            const char *id = s->name ? env_id_of_share(s->name) : NULL;
            if (!id || s->deleted)
                continue;
            obs_t *o = obs_get(r, id);
            if (o->busy || o->s_updated_ms > start)
                continue;
            o->region = rs->idx;
            int had = o->s_exists;
            obs_share_update(r, o, s, 0);
            if (!had)
                o->s_verified = 0;
            o->s_updated_ms = start;
        }
    }
    /* What the lists did not see is gone (unless we learnt otherwise since). */
    size_t it = 0;
    obs_t *o;
    while ((o = d8_map_next(&r->obs, &it))) {
        if (o->region != rs->idx || o->busy)
            continue;
        if (rs->groups_ok && o->g_updated_ms < start && (o->g_exists || o->g_foreign))
            obs_group_gone(r, o);
        else if (rs->groups_ok && !o->g_known)
            obs_group_gone(r, o);
        if (rs->shares_ok && o->s_updated_ms < start && o->s_exists)
            obs_share_gone(r, o);
        else if (rs->shares_ok && !o->s_known)
            obs_share_gone(r, o);
    }
}

static void lists_done(region_state_t *rs)
{
    reconciler_t *r = rs->r;
    if (--rs->lists_pending > 0)
        return;
    if (rs->groups_ok && rs->shares_ok) {
        rs->listed = 1;
        rs->last_list_wall_ms = d8_wall_ms();
        rs->last_error[0] = '\0';
    }
    apply_lists(r, rs);
    azure_group_list_release(&rs->groups);
    azure_share_list_release(&rs->shares);
    memset(&rs->groups, 0, sizeof(rs->groups));
    memset(&rs->shares, 0, sizeof(rs->shares));
    if (r->paused)
        return;
    /* Level-triggered: every key of the region gets a pass. */
    queue_region(r, rs->idx);
    queue_ctx_t q = {r, rs->idx};
    store_list(r->store, NULL, NULL, -1, SIZE_MAX, queue_desired, &q);
    uint64_t period = (uint64_t)r->cfg->resync_seconds * 1000;
    uint64_t delay = rs->listed && !rs->last_error[0] ? period : (period < 5000 ? period : 5000);
    uv_timer_start(&rs->timer, resync_cb, delay, 0);
}

static void list_failed(region_state_t *rs, const char *what, const azure_result_t *res)
{
    if (res->err == D8_ECANCELED)
        return;
    snprintf(rs->last_error, sizeof(rs->last_error), "%s: %s", what,
             res->error_message && *res->error_message ? res->error_message
                                                        : d8_strerror(res->err));
    LOG(LOG_WARN, "resync list failed", LF_S("region", rs->r->cfg->regions[rs->idx].name),
        LF_S("error", rs->last_error));
}

static void on_group_list(void *ud, const azure_result_t *res, const azure_group_list_t *l)
{
    region_state_t *rs = ud;
    if (res->err == 0 && l) {
        /* Take over the items (the list is borrowed for the callback). */
        rs->groups = *l;
        memset((azure_group_list_t *)l, 0, sizeof(*l));
        rs->groups_ok = 1;
    } else {
        list_failed(rs, "list container groups", res);
    }
    if (res->err == D8_ECANCELED) {
        rs->lists_pending--;
        return;
    }
    lists_done(rs);
}

static void on_share_list(void *ud, const azure_result_t *res, const azure_share_list_t *l)
{
    region_state_t *rs = ud;
    if (res->err == 0 && l) {
        rs->shares = *l;
        memset((azure_share_list_t *)l, 0, sizeof(*l));
        rs->shares_ok = 1;
    } else {
        list_failed(rs, "list file shares", res);
    }
    if (res->err == D8_ECANCELED) {
        rs->lists_pending--;
        return;
    }
    lists_done(rs);
}

static void resync_cb(uv_timer_t *t)
{
    region_state_t *rs = t->data;
    reconciler_t *r = rs->r;
    if (r->paused || rs->lists_pending)
        return;
    azure_scope_t s;
    scope_of(r, rs->idx, &s);
    rs->list_start_ms = uv_now(r->loop);
    rs->groups_ok = rs->shares_ok = 0;
    rs->lists_pending = 2;
    if (azure_group_list(r->az, &s, AZURE_PRIO_LOW, on_group_list, rs) < 0)
        rs->lists_pending--;
    if (azure_share_list(r->az, &s, 0, AZURE_PRIO_LOW, on_share_list, rs) < 0)
        rs->lists_pending--;
    if (rs->lists_pending == 0)
        uv_timer_start(&rs->timer, resync_cb, 5000, 0);
}

/* ---- store events ---------------------------------------------------------- */

static void on_store_event(void *ud, const store_event_t *ev)
{
    reconciler_t *r = ud;
    if (r->paused)
        return;
    if (ev->type == EV_DELETED) {
        /* Left the desired set: its resources are the reaper's now. */
        return;
    }
    /* Our own status writes come back as events too: they change nothing
     * a pass decides on, and requeueing on them would skip the polling
     * delay of long-running operations. Everything the API changes (spec,
     * deletion, the activity of a /start, secrets brought back to a
     * restored object) requeues. */
    if (ev->status_only)
        return;
    workqueue_add(r->wq, ev->id);
}

/* ---- metrics and status ------------------------------------------------------ */

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
    cJSON *regions = cJSON_AddArrayToObject(status, "regions");
    for (size_t i = 0; i < r->cfg->nregions; i++) {
        region_state_t *rs = &r->regions[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", r->cfg->regions[i].name);
        if (rs->last_list_wall_ms) {
            char ts[32];
            d8_rfc3339(rs->last_list_wall_ms, ts);
            cJSON_AddStringToObject(o, "lastListTime", ts);
        } else {
            cJSON_AddNullToObject(o, "lastListTime");
        }
        if (rs->last_error[0])
            cJSON_AddStringToObject(o, "lastListError", rs->last_error);
        cJSON_AddItemToArray(regions, o);
    }
    azure_stats_t as;
    azure_client_stats(r->az, &as);
    cJSON *th = cJSON_AddObjectToObject(status, "throttle");
    cJSON_AddNumberToObject(th, "queued", (double)as.queued);
    cJSON_AddNumberToObject(th, "inflight", (double)as.inflight);
    cJSON_AddNumberToObject(th, "throttleWaits", (double)as.throttle_waits);
    cJSON_AddNumberToObject(th, "throttled429", (double)as.throttled);
    cJSON_AddBoolToObject(status, "azureTokenObtained", azure_client_has_token(r->az));
}

static reconcile_observed_t observed_view(const obs_t *o)
{
    return (reconcile_observed_t){o->id, o->region, o->g_exists, o->s_exists, o->g_keep, o->busy};
}

void reconciler_each_observed(reconciler_t *r,
                              void (*fn)(void *ud, const reconcile_observed_t *o), void *ud)
{
    size_t it = 0;
    obs_t *o;
    while ((o = d8_map_next(&r->obs, &it))) {
        reconcile_observed_t v = observed_view(o);
        fn(ud, &v);
    }
}

int reconciler_observed(const reconciler_t *r, const char *id, reconcile_observed_t *out)
{
    const obs_t *o = d8_map_get(&r->obs, id);
    if (!o)
        return D8_ENOENT;
    *out = observed_view(o);
    return D8_OK;
}

int reconciler_listed_all(const reconciler_t *r)
{
    for (size_t i = 0; i < r->cfg->nregions; i++)
        if (!r->regions[i].listed)
            return 0;
    return 1;
}

/* ---- lifecycle --------------------------------------------------------------- */

reconciler_t *reconciler_new(const reconcile_opts_t *opts)
{
    reconciler_t *r = d8_xcalloc(1, sizeof(*r));
    r->loop = opts->loop;
    r->cfg = opts->cfg;
    r->store = opts->store;
    r->az = opts->az;
    r->scopes = opts->scopes;
    r->metrics = opts->metrics;
    if (opts->hash_key && opts->hash_keylen) {
        r->hash_key = d8_xmalloc(opts->hash_keylen);
        memcpy(r->hash_key, opts->hash_key, opts->hash_keylen);
        r->hash_keylen = opts->hash_keylen;
    }
    r->start_wall_ms = d8_wall_ms();
    r->rng = d8_rand_seed();
    d8_map_init(&r->obs);
    workqueue_opts_t wo = {
        .max_active = (size_t)r->cfg->max_concurrent_reconciles,
        .backoff_base_ms = 1000,
        .backoff_cap_ms = 300000,
        .process = process,
        .ud = r,
    };
    r->wq = workqueue_new(r->loop, &wo);
    r->regions = d8_xcalloc(r->cfg->nregions ? r->cfg->nregions : 1, sizeof(region_state_t));
    for (size_t i = 0; i < r->cfg->nregions; i++) {
        region_state_t *rs = &r->regions[i];
        rs->idx = (int)i;
        rs->r = r;
        uv_timer_init(r->loop, &rs->timer);
        rs->timer.data = rs;
    }
    static const char *const result_label[] = {"result"};
    static const char *const action_label[] = {"action"};
    static const double buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    r->m_total = metrics_counter(r->metrics, "dev8_reconcile_total",
                                 "Reconcile passes by result.", 1, result_label);
    r->m_duration = metrics_histogram(r->metrics, "dev8_reconcile_duration_seconds",
                                      "Duration of one reconcile pass (its Azure reads included).",
                                      0, NULL, buckets, sizeof(buckets) / sizeof(buckets[0]));
    r->m_depth = metrics_gauge(r->metrics, "dev8_workqueue_depth",
                               "Keys ready and waiting for a reconcile pass.", 0, NULL);
    r->m_retries = metrics_counter(r->metrics, "dev8_workqueue_retries_total",
                                   "Keys requeued with backoff after a failed pass.", 0, NULL);
    r->m_queue_wait = metrics_histogram(r->metrics, "dev8_workqueue_queue_duration_seconds",
                                        "How long a key waited ready before its pass.", 0, NULL,
                                        buckets, sizeof(buckets) / sizeof(buckets[0]));
    r->m_actions = metrics_counter(r->metrics, "dev8_reconcile_actions_total",
                                   "ARM mutations issued by the reconcile loop.", 1, action_label);
    metrics_on_collect(r->metrics, collect, r);
    metrics_on_render(r->metrics, render_azure, r);
    return r;
}

void reconciler_start(reconciler_t *r)
{
    r->watcher = store_watch(r->store, on_store_event, r);
    for (size_t i = 0; i < r->cfg->nregions; i++)
        uv_timer_start(&r->regions[i].timer, resync_cb, 0, 0);
}

void reconciler_pause(reconciler_t *r)
{
    r->paused = 1;
    workqueue_pause(r->wq);
    for (size_t i = 0; i < r->cfg->nregions; i++)
        uv_timer_stop(&r->regions[i].timer);
}

size_t reconciler_active(const reconciler_t *r)
{
    return r->active;
}

static void region_closed(uv_handle_t *h)
{
    region_state_t *rs = h->data;
    reconciler_t *r = rs->r;
    azure_group_list_release(&rs->groups);
    azure_share_list_release(&rs->shares);
    /* The last region timer to close frees the reconciler. */
    if (--r->closing > 0)
        return;
    free(r->regions);
    free(r);
}

void reconciler_free(reconciler_t *r)
{
    if (!r)
        return;
    if (r->watcher)
        store_unwatch(r->store, r->watcher);
    workqueue_free(r->wq);
    size_t it = 0;
    obs_t *o;
    while ((o = d8_map_next(&r->obs, &it)))
        obs_free(o);
    d8_map_release(&r->obs);
    if (r->hash_key)
        OPENSSL_cleanse(r->hash_key, r->hash_keylen);
    free(r->hash_key);
    r->hash_key = NULL;
    if (!r->cfg->nregions) {
        free(r->regions);
        free(r);
        return;
    }
    r->closing = r->cfg->nregions;
    for (size_t i = 0; i < r->cfg->nregions; i++)
        uv_close((uv_handle_t *)&r->regions[i].timer, region_closed);
}
