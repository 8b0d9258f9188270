#include "observe.h"

#include "base/base.h"
#include "base/map.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ERR 256
/* A region whose lists failed is listed again this soon (or at the resync
 * period, when shorter). */
#define RETRY_LIST_MS 5000

typedef struct region_state {
    int idx;
    uv_timer_t timer;
    int lists_pending; /* 2 while both lists are in flight */
    uint64_t list_start_ms;
    int64_t last_list_wall_ms;      /* 0 = never */
    int listed;                     /* completed at least once */
    int failed_lists;               /* rounds in a row with a failed list */
    int account_pending;            /* the storage account GET is in flight */
    int account_warned;             /* its failure was logged (once) */
    int share_min_gb, share_max_gb; /* from the account; 0 = unknown */
    const char *account_kind;       /* "premium" | "standard" | NULL */
    char last_error[MAX_ERR];
    azure_group_list_t groups;
    azure_share_list_t shares;
    int groups_ok, shares_ok;
    observer_t *ob;
} region_state_t;

struct observer {
    uv_loop_t *loop;
    const config_t *cfg;
    const azure_scope_t *scopes;
    azure_client_t *az;
    void (*on_listed)(void *ud, int region);
    void *ud;
    d8_map_t entries; /* env id -> observed_t */
    region_state_t *regions;
    int paused;
    size_t closing;           /* region timers still closing */
    metric_family_t *m_stale; /* NULL without metrics */
};

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* ---- the cache ------------------------------------------------------------ */

observed_t *observer_entry(observer_t *ob, const char *id)
{
    observed_t *o = d8_map_get(&ob->entries, id);
    if (!o) {
        o = d8_xcalloc(1, sizeof(*o));
        copy(o->id, sizeof(o->id), id);
        o->region = -1;
        d8_map_put(&ob->entries, o->id, o);
    }
    return o;
}

const observed_t *observer_find(const observer_t *ob, const char *id)
{
    return d8_map_get(&ob->entries, id);
}

void observer_each(const observer_t *ob, void (*fn)(void *ud, const observed_t *o), void *ud)
{
    size_t it = 0;
    const observed_t *o;
    while ((o = d8_map_next(&ob->entries, &it)))
        fn(ud, o);
}

void observer_each_in_region(observer_t *ob, int region, void (*fn)(void *ud, observed_t *o),
                             void *ud)
{
    size_t it = 0;
    observed_t *o;
    while ((o = d8_map_next(&ob->entries, &it)))
        if (o->region == region)
            fn(ud, o);
}

static void entry_free(observed_t *o)
{
    free(o->g.ip);
    free(o->g.fqdn);
    free(o->g.failure);
    free(o->g.c.unready_msg);
    free(o->g.c.pull_failed_msg);
    free(o);
}

void observed_group_seen(observer_t *ob, observed_t *o, const azure_group_t *g, int from_get)
{
    own_info_t own;
    own_parse_group(&g->tags, o->id, ob->cfg->controller_name, &own);
    o->g.known = 1;
    o->g.updated_ms = uv_now(ob->loop);
    if (!own.ours) {
        o->g.exists = 0;
        o->g.foreign = 1;
        return;
    }
    o->g.foreign = 0;
    o->g.exists = 1;
    o->g.keep = own.keep;
    copy(o->g.spec_hash, sizeof(o->g.spec_hash), own.spec_hash);
    if (!from_get && strcmp(o->g.prov, g->provisioning_state ? g->provisioning_state : "") != 0)
        o->g.inst[0] = '\0'; /* read with the old provisioning state: stale, read it again */
    copy(o->g.prov, sizeof(o->g.prov), g->provisioning_state);
    if (g->cpu_cores > 0)
        o->g.cpu_cores = g->cpu_cores;
    if (g->memory_gb > 0)
        o->g.memory_gb = g->memory_gb;
    if (from_get) {
        o->g.read_wall_ms = d8_wall_ms();
        copy(o->g.inst, sizeof(o->g.inst), g->instance_state);
        d8_set_str(&o->g.ip, g->ip);
        d8_set_str(&o->g.fqdn, g->fqdn);
        d8_set_str(&o->g.failure, g->failure_message);
        observed_container_set(&o->g.c, &g->container);
    }
}

void observed_container_set(observed_container_t *c, const azure_container_view_t *v)
{
    char *unready = c->unready_msg, *pull = c->pull_failed_msg;
    memset(c, 0, sizeof(*c));
    c->unready_msg = unready;
    c->pull_failed_msg = pull;
    d8_set_str(&c->unready_msg, NULL);
    d8_set_str(&c->pull_failed_msg, NULL);
    if (!v || !v->present)
        return;
    c->present = 1;
    copy(c->name, sizeof(c->name), v->name);
    copy(c->state, sizeof(c->state), v->state);
    copy(c->detail, sizeof(c->detail), v->detail);
    c->restart_count = v->restart_count;
    c->start_ms = v->start_ms;
    c->has_exit = v->has_exit;
    c->exit_code = v->exit_code;
    c->has_prev = v->has_prev;
    c->prev_exit_code = v->prev_exit_code;
    c->prev_finish_ms = v->prev_finish_ms;
    const azure_event_t *e = azure_view_last_event(v, "Unhealthy", "Readiness probe failed");
    if (e) {
        c->unready_ms = e->last_ms;
        d8_set_str(&c->unready_msg, e->message);
    }
    e = azure_view_last_event(v, "Failed", "Failed to pull image");
    if (e) {
        c->pull_failed_ms = e->last_ms;
        d8_set_str(&c->pull_failed_msg, e->message);
    }
}

void observed_group_absent(observer_t *ob, observed_t *o)
{
    observed_group_gone(ob, o);
    o->g.absent_read_ms = uv_now(ob->loop);
}

void observed_group_gone(observer_t *ob, observed_t *o)
{
    o->g.known = 1;
    o->g.exists = 0;
    o->g.foreign = 0;
    o->g.keep = 0;
    o->g.prov[0] = o->g.inst[0] = o->g.spec_hash[0] = '\0';
    d8_set_str(&o->g.ip, NULL);
    d8_set_str(&o->g.fqdn, NULL);
    d8_set_str(&o->g.failure, NULL);
    observed_container_set(&o->g.c, NULL);
    o->g.updated_ms = uv_now(ob->loop);
}

void observed_share_seen(observer_t *ob, observed_t *o, const azure_share_t *s, int from_get)
{
    o->s.known = 1;
    o->s.exists = 1;
    o->s.updated_ms = uv_now(ob->loop);
    if (s->quota_gb >= 0)
        o->s.quota_gb = s->quota_gb;
    if (from_get) {
        own_info_t own;
        own_parse_share(&s->metadata, o->id, ob->cfg->controller_name, &own);
        o->s.verified = own.ours;
        o->s.foreign = !own.ours;
        o->s.keep = own.keep;
        o->s.keep_until_ms = own.keep_until_ms;
    }
}

void observed_share_created(observer_t *ob, observed_t *o, int quota_gb, int keep)
{
    o->s.known = o->s.exists = o->s.verified = 1;
    o->s.foreign = 0;
    o->s.keep = keep;
    if (quota_gb > 0)
        o->s.quota_gb = quota_gb;
    o->s.updated_ms = uv_now(ob->loop);
}

void observed_share_gone(observer_t *ob, observed_t *o)
{
    o->s.known = 1;
    o->s.exists = 0;
    o->s.foreign = 0;
    o->s.verified = 0;
    o->s.keep = 0;
    o->s.quota_gb = 0;
    o->s.updated_ms = uv_now(ob->loop);
}

int observed_group_stale(const observed_t *o, int fetched, uint64_t now_ms)
{
    if (fetched)
        return 0;
    if (!o->g.known)
        return 1;
    if (!o->g.exists)
        return 0;
    /* While settling, next_get_ms is the next poll (2 s .. 30 s apart). */
    return !o->g.inst[0] || now_ms >= o->next_get_ms;
}

/* ---- regions ---------------------------------------------------------------- */

int observer_region_index(const observer_t *ob, const char *name)
{
    for (size_t i = 0; i < ob->cfg->nregions; i++)
        if (strcmp(ob->cfg->regions[i].name, name) == 0)
            return (int)i;
    return -1;
}

const azure_scope_t *observer_scope(const observer_t *ob, int region)
{
    return &ob->scopes[region];
}

int observer_region_stale(const observer_t *ob, int region)
{
    return region >= 0 && (size_t)region < ob->cfg->nregions &&
           ob->regions[region].failed_lists >= OBSERVE_STALE_AFTER;
}

int observer_listed_all(const observer_t *ob)
{
    for (size_t i = 0; i < ob->cfg->nregions; i++)
        if (!ob->regions[i].listed)
            return 0;
    return 1;
}

void observer_status(const observer_t *ob, cJSON *status)
{
    cJSON *regions = cJSON_AddArrayToObject(status, "regions");
    for (size_t i = 0; i < ob->cfg->nregions; i++) {
        const region_state_t *rs = &ob->regions[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ob->cfg->regions[i].name);
        if (rs->last_list_wall_ms) {
            char ts[32];
            d8_rfc3339(rs->last_list_wall_ms, ts);
            cJSON_AddStringToObject(o, "lastListTime", ts);
        } else {
            cJSON_AddNullToObject(o, "lastListTime");
        }
        if (rs->last_error[0])
            cJSON_AddStringToObject(o, "lastListError", rs->last_error);
        cJSON_AddBoolToObject(o, "stale", rs->failed_lists >= OBSERVE_STALE_AFTER);
        cJSON_AddNumberToObject(o, "failedLists", rs->failed_lists);
        cJSON_AddItemToArray(regions, o);
    }
}

/* ---- lists ------------------------------------------------------------------ */

static void resync_cb(uv_timer_t *t);

/* Takes the groups of a region's list into the cache. A group counts under
 * the env id its name encodes; one whose dev8-env-id tag names another id
 * is not ours (pkg/ownership) and is recorded as foreign. */
static void apply_group_list(observer_t *ob, region_state_t *rs)
{
    for (size_t i = 0; i < rs->groups.n; i++) {
        const azure_group_t *g = &rs->groups.items[i];
        const char *id = own_id_of_name(g->name);
        if (!id)
            continue;
        observed_t *o = observer_entry(ob, id);
        if (o->busy || o->g.updated_ms > rs->list_start_ms)
            continue; /* newer knowledge than this list */
        o->region = rs->idx;
        observed_group_seen(ob, o, g, 0);
        o->g.updated_ms = rs->list_start_ms;
    }
}

static void apply_share_list(observer_t *ob, region_state_t *rs)
{
    for (size_t i = 0; i < rs->shares.n; i++) {
        const azure_share_t *s = &rs->shares.items[i];
        const char *id = own_id_of_name(s->name);
        if (!id || s->deleted)
            continue;
        observed_t *o = observer_entry(ob, id);
        if (o->busy || o->s.updated_ms > rs->list_start_ms)
            continue;
        o->region = rs->idx;
        int had = o->s.exists;
        observed_share_seen(ob, o, s, 0);
        if (!had)
            o->s.verified = 0; /* lists carry no metadata: a GET must confirm it */
        o->s.updated_ms = rs->list_start_ms;
    }
}

/* What a complete list did not show is gone, unless learnt about since. */
static void apply_absences(observer_t *ob, region_state_t *rs)
{
    size_t it = 0;
    observed_t *o;
    while ((o = d8_map_next(&ob->entries, &it))) {
        if (o->region != rs->idx || o->busy)
            continue;
        if (rs->groups_ok &&
            ((o->g.updated_ms < rs->list_start_ms && (o->g.exists || o->g.foreign)) || !o->g.known))
            observed_group_gone(ob, o);
        if (rs->shares_ok && ((o->s.updated_ms < rs->list_start_ms && o->s.exists) || !o->s.known))
            observed_share_gone(ob, o);
    }
}

/* Both lists of a region answered: apply them, tell the owner, schedule
 * the next round (sooner after a failure). */
static void lists_done(region_state_t *rs)
{
    observer_t *ob = rs->ob;
    if (--rs->lists_pending > 0)
        return;
    if (rs->groups_ok && rs->shares_ok) {
        rs->listed = 1;
        rs->last_list_wall_ms = d8_wall_ms();
        rs->last_error[0] = '\0';
        rs->failed_lists = 0;
    } else {
        rs->failed_lists++;
    }
    if (ob->m_stale) {
        const char *lbl[] = {ob->cfg->regions[rs->idx].name};
        metrics_set(ob->m_stale, lbl, observer_region_stale(ob, rs->idx));
    }
    if (rs->groups_ok)
        apply_group_list(ob, rs);
    if (rs->shares_ok)
        apply_share_list(ob, rs);
    apply_absences(ob, rs);
    azure_group_list_release(&rs->groups);
    azure_share_list_release(&rs->shares);
    memset(&rs->groups, 0, sizeof(rs->groups));
    memset(&rs->shares, 0, sizeof(rs->shares));
    if (ob->paused)
        return;
    if (ob->on_listed)
        ob->on_listed(ob->ud, rs->idx);
    uint64_t period = (uint64_t)ob->cfg->resync_seconds * 1000;
    uint64_t delay = rs->listed && !rs->last_error[0]
                         ? period
                         : (period < RETRY_LIST_MS ? period : RETRY_LIST_MS);
    uv_timer_start(&rs->timer, resync_cb, delay, 0);
}

static void list_failed(region_state_t *rs, const char *what, const azure_result_t *res)
{
    if (res->err == D8_ECANCELED)
        return;
    snprintf(rs->last_error, sizeof(rs->last_error), "%s: %s", what,
             res->error_message && *res->error_message ? res->error_message
                                                       : d8_strerror(res->err));
    LOG(LOG_WARN, "resync list failed", LF_S("region", rs->ob->cfg->regions[rs->idx].name),
        LF_S("error", rs->last_error));
}

static void on_group_list(void *ud, const azure_result_t *res, azure_group_list_t *l)
{
    region_state_t *rs = ud;
    if (res->err == 0 && l) {
        azure_group_list_take(&rs->groups, l);
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

static void on_share_list(void *ud, const azure_result_t *res, azure_share_list_t *l)
{
    region_state_t *rs = ud;
    if (res->err == 0 && l) {
        azure_share_list_take(&rs->shares, l);
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

void observer_share_limits(const observer_t *ob, int region, int *min_gb, int *max_gb,
                           const char **kind)
{
    const region_state_t *rs =
        region >= 0 && (size_t)region < ob->cfg->nregions ? &ob->regions[region] : NULL;
    *min_gb = rs ? rs->share_min_gb : 0;
    *max_gb = rs ? rs->share_max_gb : 0;
    *kind = rs ? rs->account_kind : NULL;
}

/* The account's answer: its share limits, by the documented rules. */
static void on_account(void *ud, const azure_result_t *res, const azure_storage_account_t *a)
{
    region_state_t *rs = ud;
    rs->account_pending = 0;
    if (res->err < 0 || !a) {
        if (res->err != D8_ECANCELED && !rs->account_warned++)
            LOG(LOG_WARN, "cannot read the storage account; share sizes are not checked",
                LF_S("region", rs->ob->cfg->regions[rs->idx].name),
                LF_S("code", res->error_code ? res->error_code : d8_err_name(res->err)));
        return;
    }
    int premium = (a->sku_name && strncasecmp(a->sku_name, "Premium", 7) == 0) ||
                  (a->kind && strcasecmp(a->kind, "FileStorage") == 0);
    int large =
        a->large_file_shares_state && strcasecmp(a->large_file_shares_state, "Enabled") == 0;
    rs->account_kind = premium ? "premium" : "standard";
    rs->share_min_gb = premium ? 100 : 1;
    rs->share_max_gb = premium || large ? 102400 : 5120;
}

/* A region's round: the account once (for its share limits), then both
 * lists; lists_done schedules the next round. */
static void resync_cb(uv_timer_t *t)
{
    region_state_t *rs = t->data;
    observer_t *ob = rs->ob;
    if (ob->paused || rs->lists_pending)
        return;
    if (!rs->account_kind && !rs->account_pending) {
        rs->account_pending = 1;
        if (azure_storage_account_get(ob->az, &ob->scopes[rs->idx], AZURE_PRIO_LOW, on_account,
                                      rs) < 0)
            rs->account_pending = 0;
    }
    const azure_scope_t *s = &ob->scopes[rs->idx];
    rs->list_start_ms = uv_now(ob->loop);
    rs->groups_ok = rs->shares_ok = 0;
    rs->lists_pending = 2;
    if (azure_group_list(ob->az, s, AZURE_PRIO_LOW, on_group_list, rs) < 0)
        rs->lists_pending--;
    if (azure_share_list(ob->az, s, 0, AZURE_PRIO_LOW, on_share_list, rs) < 0)
        rs->lists_pending--;
    if (rs->lists_pending == 0)
        uv_timer_start(&rs->timer, resync_cb, RETRY_LIST_MS, 0);
}

/* ---- lifecycle ---------------------------------------------------------------- */

observer_t *observer_new(const observe_opts_t *opts)
{
    observer_t *ob = d8_xcalloc(1, sizeof(*ob));
    ob->loop = opts->loop;
    ob->cfg = opts->cfg;
    ob->scopes = opts->scopes;
    ob->az = opts->az;
    d8_map_init(&ob->entries);
    if (opts->metrics) {
        static const char *const region_label[] = {"region"};
        ob->m_stale = metrics_gauge(opts->metrics, "dev8_region_stale",
                                    "1 while the last lists of a region failed "
                                    "(controller.resyncSeconds apart): its status is stale.",
                                    1, region_label);
    }
    size_t n = ob->cfg->nregions;
    ob->regions = d8_xcalloc(n ? n : 1, sizeof(region_state_t));
    for (size_t i = 0; i < n; i++) {
        region_state_t *rs = &ob->regions[i];
        rs->idx = (int)i;
        rs->ob = ob;
        uv_timer_init(ob->loop, &rs->timer);
        rs->timer.data = rs;
        if (ob->m_stale) {
            const char *lbl[] = {ob->cfg->regions[i].name};
            metrics_set(ob->m_stale, lbl, 0);
        }
    }
    return ob;
}

void observer_on_listed(observer_t *ob, void (*fn)(void *ud, int region), void *ud)
{
    ob->on_listed = fn;
    ob->ud = ud;
}

void observer_start(observer_t *ob)
{
    for (size_t i = 0; i < ob->cfg->nregions; i++)
        uv_timer_start(&ob->regions[i].timer, resync_cb, 0, 0);
}

void observer_pause(observer_t *ob)
{
    ob->paused = 1;
    for (size_t i = 0; i < ob->cfg->nregions; i++)
        uv_timer_stop(&ob->regions[i].timer);
}

static void release(observer_t *ob)
{
    size_t it = 0;
    observed_t *o;
    while ((o = d8_map_next(&ob->entries, &it)))
        entry_free(o);
    d8_map_release(&ob->entries);
    free(ob->regions);
    free(ob);
}

/* The last region timer to close frees the observer. */
static void region_closed(uv_handle_t *h)
{
    region_state_t *rs = h->data;
    observer_t *ob = rs->ob;
    azure_group_list_release(&rs->groups);
    azure_share_list_release(&rs->shares);
    if (--ob->closing > 0)
        return;
    release(ob);
}

void observer_free(observer_t *ob)
{
    if (!ob)
        return;
    ob->paused = 1;
    if (!ob->cfg->nregions) {
        release(ob);
        return;
    }
    ob->closing = ob->cfg->nregions;
    for (size_t i = 0; i < ob->cfg->nregions; i++)
        uv_close((uv_handle_t *)&ob->regions[i].timer, region_closed);
}
