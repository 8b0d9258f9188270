/*
 * The ARM calls of a reconcile plan and their answers. Each call is issued
 * once per pass; long-running operations are never awaited: their outcome
 * is observed by GET in a later pass (the answer sets `settle`).
 */
#include "reconcile_int.h"

#include "base/base.h"
#include "log/log.h"
#include "ownership/ownership.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Requeue delay after an accepted long-running operation. */
static uint64_t lro_delay(const azure_result_t *res)
{
    return res->retry_after_ms > 0 ? (uint64_t)res->retry_after_ms : DECIDE_POLL_MS;
}

/* Interactive changes go before bulk work in the client's queue too. */
static azure_prio_t prio_of(const rec_env_t *e)
{
    return workqueue_urgent(e->r->wq, e->id) ? AZURE_PRIO_HIGH : AZURE_PRIO_NORMAL;
}

/* Where every call about e goes: its region's scope and its resource name. */
static const azure_scope_t *target_of(const rec_env_t *e, char name[OWN_NAME_MAX])
{
    own_name(e->id, name);
    return observer_scope(e->r->ob, e->o->region);
}

/* ---- answers ---------------------------------------------------------------- */

static void on_group_get(void *ud, const azure_result_t *res, const azure_group_t *g)
{
    rec_env_t *e = ud;
    if (res->err == D8_ENOENT) {
        observed_group_absent(e->r->ob, e->o);
    } else if (res->err < 0) {
        reconcile__failed(e, res);
        return;
    } else if (g) {
        observed_group_seen(e->r->ob, e->o, g, 1);
        reconcile__azure_events(e, g);
    }
    e->fetched_group = 1;
    reconcile__step(e);
}

static void on_share_get(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    rec_env_t *e = ud;
    if (res->err == D8_ENOENT) {
        observed_share_gone(e->r->ob, e->o);
    } else if (res->err < 0) {
        reconcile__failed(e, res);
        return;
    } else if (s) {
        observed_share_seen(e->r->ob, e->o, s, 1);
    }
    e->fetched_share = 1;
    reconcile__step(e);
}

static void on_share_put(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    rec_env_t *e = ud;
    if (res->err < 0) {
        reconcile__failed(e, res);
        return;
    }
    observed_share_created(e->r->ob, e->o, s ? s->quota_gb : 0, 0);
    reconcile__event_result(e, res);
    reconcile__finish(e, 0, 1, "acted");
}

static void on_share_quota(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    rec_env_t *e = ud;
    if (res->err < 0) {
        reconcile__failed(e, res);
        return;
    }
    observed_share_created(e->r->ob, e->o, s ? s->quota_gb : 0, e->o->s.keep);
    reconcile__event_result(e, res);
    reconcile__finish(e, 0, 1, "acted");
}

static void on_share_retained(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    rec_env_t *e = ud;
    (void)s;
    if (res->err < 0) {
        reconcile__failed(e, res);
        return;
    }
    observed_share_created(e->r->ob, e->o, 0, 1);
    e->o->s.keep_until_ms = e->keep_until_ms;
    reconcile__retained(e, s && s->quota_gb > 0 ? s->quota_gb : e->o->s.quota_gb);
    reconcile__event_result(e, res);
    reconcile__finish(e, 0, 1, "acted");
}

static void on_share_adopted(void *ud, const azure_result_t *res, const azure_share_t *s)
{
    rec_env_t *e = ud;
    if (res->err < 0) {
        reconcile__failed(e, res);
        return;
    }
    observed_share_created(e->r->ob, e->o, s ? s->quota_gb : 0, 0);
    e->o->s.keep_until_ms = 0;
    reconcile__adopted(e);
    reconcile__finish(e, 0, 1, "acted");
}

/* The share of e marked retained: dev8keep=true and, with
 * retention.retainDays > 0, dev8keepuntil = now + retainDays. */
static int share_retain(rec_env_t *e, const env_obj_t *obj, int quota_gb)
{
    reconciler_t *r = e->r;
    char name[OWN_NAME_MAX];
    const azure_scope_t *s = target_of(e, name);
    azure_kv_t md[OWN_KV_MAX];
    char user[OWN_META_VALUE_MAX], until[32];
    double days = r->cfg->retain_days;
    e->keep_until_ms = days > 0 ? d8_wall_ms() + (int64_t)(days * 86400000.0) : 0;
    size_t nmd = own_share_metadata_retained(md, user, until, r->cfg->controller_name, e->id,
                                             obj->spec.user_id, e->keep_until_ms);
    azure_share_spec_t spec = {name, quota_gb, md, nmd};
    LOG(LOG_INFO, "retaining file share of a deleted environment", LF_S("env_id", e->id),
        LF_S("share", name), LF_S("keep_until", e->keep_until_ms ? until : "forever"));
    return azure_share_put(r->az, s, &spec, prio_of(e), on_share_retained, e);
}

static void on_share_delete(void *ud, const azure_result_t *res)
{
    rec_env_t *e = ud;
    if (res->err < 0 && res->err != D8_ENOENT) {
        reconcile__failed(e, res);
        return;
    }
    observed_share_gone(e->r->ob, e->o);
    reconcile__event_result(e, res);
    reconcile__finish(e, 0, 1, "acted");
}

static void on_group_put(void *ud, const azure_result_t *res, const azure_group_t *g)
{
    rec_env_t *e = ud;
    if (res->err < 0) {
        reconcile__failed(e, res);
        return;
    }
    if (g)
        observed_group_seen(e->r->ob, e->o, g, 1);
    /* Kept to read Azure's error code should this create fail. */
    free(e->operation_url);
    e->operation_url =
        res->async_operation && *res->async_operation ? d8_xstrdup(res->async_operation) : NULL;
    e->operation_read = 0;
    e->operation_code[0] = '\0';
    e->o->settle = 1;
    e->o->next_get_ms = 0; /* read it at the next pass */
    reconcile__event_result(e, res);
    reconcile__finish(e, 0, lro_delay(res), "acted");
}

static void on_group_lro(void *ud, const azure_result_t *res)
{
    rec_env_t *e = ud;
    if (res->err < 0 && res->err != D8_ENOENT) {
        reconcile__failed(e, res);
        return;
    }
    if (res->err == D8_ENOENT)
        observed_group_absent(e->r->ob, e->o);
    e->o->settle = 1;
    e->o->next_get_ms = 0; /* read it at the next pass */
    /* Observe right away when the operation completed synchronously. */
    reconcile__event_result(e, res);
    reconcile__finish(e, 0, res->accepted ? lro_delay(res) : DECIDE_SHORT_MS, "acted");
}

/* The operation's answer: its error code, if any, for lastError. A failed
 * read only means no code: the decision goes on without it. */
static void on_operation(void *ud, const azure_result_t *res, const azure_operation_t *op)
{
    rec_env_t *e = ud;
    if (res->err == D8_ECANCELED) {
        reconcile__finish(e, 0, 0, "canceled");
        return;
    }
    e->operation_read = 1;
    snprintf(e->operation_code, sizeof(e->operation_code), "%s",
             res->err == 0 && op && op->error_code ? op->error_code : "");
    reconcile__step(e);
}

/* ---- calls -------------------------------------------------------------------- */

/* The group e's plan creates, with tags, variables and secrets of obj. */
static int group_put(rec_env_t *e, const env_obj_t *obj)
{
    reconciler_t *r = e->r;
    const env_spec_t *sp = &obj->spec;
    char name[OWN_NAME_MAX], label[OWN_DNS_LABEL_MAX];
    const azure_scope_t *s = target_of(e, name);
    own_dns_label(r->cfg->controller_name, e->id, label);
    const char *hash = reconcile__spec_hash(e, obj);
    azure_kv_t tags[OWN_KV_MAX];
    size_t ntags = own_group_tags(tags, r->cfg->controller_name, e->id, sp->user_id, hash);
    azure_kv_t *env = d8_xcalloc(sp->nenv + 1, sizeof(*env));
    azure_kv_t *sec = d8_xcalloc(sp->nsecret + 1, sizeof(*sec));
    size_t nenv = 0, nsec = 0;
    for (size_t i = 0; i < sp->nenv; i++)
        if (!r->activity || !reconcile__activity_name(sp->env[i].name))
            env[nenv++] = (azure_kv_t){sp->env[i].name, sp->env[i].value};
    for (size_t i = 0; i < sp->nsecret; i++)
        if (!r->activity || !reconcile__activity_name(sp->secret_env[i].name))
            sec[nsec++] = (azure_kv_t){sp->secret_env[i].name, sp->secret_env[i].value};
    /* The workspace reports its own activity: its route and token. */
    char act_url[512], act_token[ACTIVITY_TOKEN_LEN + 1];
    if (r->activity && activity_url(r->activity, e->id, act_url, sizeof(act_url)) == 0) {
        activity_token(r->activity, e->id, act_token);
        env[nenv++] = (azure_kv_t){"DEV8_ACTIVITY_URL", act_url};
        sec[nsec++] = (azure_kv_t){"DEV8_ACTIVITY_TOKEN", act_token};
    }
    const char *image = config_image(r->cfg, sp->base_image);
    const config_registry_t *reg = config_registry_for(r->cfg, image);
    const config_region_t *region = &r->cfg->regions[e->o->region];
    azure_group_spec_t gs = {
        .name = name,
        .tags = tags,
        .ntags = ntags,
        .image = image,
        .cpu = sp->cpu_halves / 2.0,
        .memory_gb = sp->memory_halves / 2.0,
        .ports = r->cfg->ports,
        .nports = r->cfg->nports,
        .env = env,
        .nenv = nenv,
        .secure_env = sec,
        .nsecure_env = nsec,
        .share_name = name,
        .mount_path = r->cfg->mount_path,
        .dns_label = label,
        /* A deleted workspace's hostname can never be claimed by anyone
         * outside our tenant (DESIGN.md section 4, Azure's TenantReuse). */
        .dns_label_scope = "TenantReuse",
        .registry_server = reg ? reg->server : NULL,
        .registry_username = reg ? reg->username : NULL,
        .registry_password = reg ? reg->password : NULL,
        .registry_identity = reg ? reg->identity : NULL,
        .subnet_ids = region->subnet_ids,
        .nsubnet_ids = region->nsubnet_ids,
    };
    azure_probe_t ready, live;
    gs.readiness_probe = reconcile__probe(r->cfg, &r->cfg->readiness_probe, &ready);
    gs.liveness_probe = reconcile__probe(r->cfg, &r->cfg->liveness_probe, &live);
    LOG(LOG_INFO, "creating container group", LF_S("env_id", e->id), LF_S("group", name),
        LF_S("spec_hash", hash), LF_I("generation", obj->generation),
        LF_S("registry", reg ? reg->server : ""), LF_B("vnet", region->nsubnet_ids > 0));
    int rc = azure_group_put(r->az, s, &gs, prio_of(e), on_group_put, e);
    OPENSSL_cleanse(act_token, sizeof(act_token));
    free(env);
    free(sec);
    return rc;
}

/* The share of e, created or rewritten with its metadata (keep: dev8keep). */
static int share_put(rec_env_t *e, const env_obj_t *obj, int quota_gb, int keep, azure_share_cb cb)
{
    reconciler_t *r = e->r;
    char name[OWN_NAME_MAX];
    const azure_scope_t *s = target_of(e, name);
    azure_kv_t md[OWN_KV_MAX];
    char user[OWN_META_VALUE_MAX];
    size_t nmd =
        own_share_metadata(md, user, r->cfg->controller_name, e->id, obj->spec.user_id, keep);
    azure_share_spec_t spec = {name, quota_gb, md, nmd};
    return azure_share_put(r->az, s, &spec, prio_of(e), cb, e);
}

/* Issues the mutation of plan for e; returns the client's synchronous result. */
static int mutate(rec_env_t *e, const decide_plan_t *plan, const env_obj_t *obj)
{
    reconciler_t *r = e->r;
    char name[OWN_NAME_MAX];
    const azure_scope_t *s = target_of(e, name);
    switch (plan->action) {
    case DECIDE_CREATE_SHARE:
        return share_put(e, obj, obj->spec.storage_gb, 0, on_share_put);
    case DECIDE_RETAIN_SHARE:
        return share_retain(e, obj, e->o->s.quota_gb > 0 ? e->o->s.quota_gb : obj->spec.storage_gb);
    case DECIDE_ADOPT_SHARE:
        LOG(LOG_INFO, "adopting the retained file share of a deleted environment",
            LF_S("env_id", e->id), LF_S("share", name));
        return share_put(e, obj, e->o->s.quota_gb > 0 ? e->o->s.quota_gb : obj->spec.storage_gb, 0,
                         on_share_adopted);
    case DECIDE_GROW_SHARE:
        LOG(LOG_INFO, "growing file share quota", LF_S("env_id", e->id),
            LF_I("from_gb", e->o->s.quota_gb), LF_I("to_gb", plan->quota_gb));
        return azure_share_set_quota(r->az, s, name, plan->quota_gb, prio_of(e), on_share_quota, e);
    case DECIDE_DELETE_SHARE:
        /* The one place user data is destroyed: an audit line, always. */
        LOG(LOG_WARN, "audit: deleting file share", LF_S("env_id", e->id), LF_S("share", name),
            LF_S("storage_account", s->storage_account), LF_S("reason", plan->reason));
        return azure_share_delete(r->az, s, name, prio_of(e), on_share_delete, e);
    case DECIDE_CREATE_GROUP:
        return group_put(e, obj);
    case DECIDE_DELETE_GROUP:
        LOG(LOG_INFO, "deleting container group", LF_S("env_id", e->id), LF_S("group", name),
            LF_S("reason", plan->reason));
        return azure_group_delete(r->az, s, name, prio_of(e), on_group_lro, e);
    case DECIDE_START_GROUP:
    case DECIDE_STOP_GROUP: {
        int start = plan->action == DECIDE_START_GROUP;
        LOG(LOG_INFO, start ? "starting container group" : "stopping container group",
            LF_S("env_id", e->id), LF_S("group", name), LF_S("reason", plan->reason));
        return start ? azure_group_start(r->az, s, name, prio_of(e), on_group_lro, e)
                     : azure_group_stop(r->az, s, name, prio_of(e), on_group_lro, e);
    }
    default:
        return D8_EINVAL;
    }
}

void reconcile__act(rec_env_t *e, const decide_plan_t *plan, const env_obj_t *obj)
{
    reconciler_t *r = e->r;
    char name[OWN_NAME_MAX];
    const azure_scope_t *s = target_of(e, name);
    int rc;
    e->action = plan->action;
    if (plan->refresh_key)
        azure_storage_key_forget(r->az, s);
    if (plan->action == DECIDE_GET_GROUP) {
        rc = azure_group_get(r->az, s, name, prio_of(e), on_group_get, e);
    } else if (plan->action == DECIDE_GET_SHARE) {
        rc = azure_share_get(r->az, s, name, prio_of(e), on_share_get, e);
    } else if (plan->action == DECIDE_GET_OPERATION) {
        rc = azure_operation_get(r->az, s, e->operation_url, prio_of(e), on_operation, e);
        if (rc < 0) {
            /* Not readable (outside armEndpoint): decide without it. */
            e->operation_read = 1;
            reconcile__step(e);
            return;
        }
    } else {
        const char *lbl[] = {reconcile_action_name(plan->action)};
        metrics_add(r->m_actions, lbl, 1);
        reconcile__event_request(e, plan->action, plan->reason);
        rc = mutate(e, plan, obj);
    }
    if (rc < 0) {
        /* Refused before anything went out: the same path as a failed call. */
        azure_result_t res;
        memset(&res, 0, sizeof(res));
        res.err = rc;
        res.error_code = "InvalidRequest";
        res.error_message = d8_strerror(rc);
        reconcile__failed(e, &res);
    }
}
