#include "reaper.h"

#include "base/base.h"
#include "base/map.h"
#include "log/log.h"
#include "ownership/ownership.h"
#include "spec/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_GROUP = 0, KIND_SHARE = 1 } kind_t;

/* Listed shares whose metadata one cycle reads at most. */
#define VERIFY_PER_CYCLE 50

static const char *const kind_names[] = {"containerGroup", "fileShare"};

/* One resource seen without a desired owner. */
typedef struct orphan {
    char key[SPEC_ID_MAX + 4]; /* "g/<id>" or "s/<id>" */
    kind_t kind;
    char id[SPEC_ID_MAX + 1];
    int region;
    int64_t first_seen_ms; /* wall clock */
    uint64_t seen_cycle;
    int keep;              /* dev8-keep=true seen on it */
    int64_t keep_until_ms; /* a retained share's dev8keepuntil (wall ms), 0 = none */
    int in_flight;         /* a GET or DELETE of the reaper is running */
    int checking;          /* ... and it is only an ownership check, no deletion */
    int dry_run_logged;
    int gone;      /* left the orphan set while in flight */
    int redesired; /* its env id was desired again since first_seen */
    int announce;  /* new grace: tell a removed object when it ends */
    int verified;  /* proven ours (groups by their listed tags, shares
                      by a GET of their metadata); until then a share
                      is neither counted nor listed */
    reaper_t *rp;
} orphan_t;

struct reaper {
    uv_loop_t *loop;
    const config_t *cfg;
    store_t *store;
    events_t *events;
    azure_client_t *az;
    observer_t *ob;
    usage_t *usage;
    uv_timer_t timer;
    uint64_t cycle_ms;
    uint64_t cycle;
    int paused;
    int authoritative_loaded;
    int64_t auth_since_ms; /* wall time the reaper first saw the desired set
                              authoritative; 0 = not yet */
    store_watcher_t *watcher;
    int suspended;
    size_t ack_orphans; /* orphans acknowledged by the last resume */
    char suspend_reason[200];
    size_t managed; /* our resources seen in the last cycle */
    int64_t last_cycle_ms;
    d8_map_t orphans;
    uint64_t reaped[2];

    metric_family_t *m_orphans;
    metric_family_t *m_reaped;
    metric_family_t *m_suspended;
};

static int authoritative(const reaper_t *rp)
{
    return rp->authoritative_loaded || store_synced(rp->store);
}

static int64_t grace_ms(const reaper_t *rp, kind_t k)
{
    return (int64_t)(k == KIND_GROUP ? rp->cfg->reaper_group_grace_seconds
                                     : rp->cfg->reaper_share_grace_seconds) *
           1000;
}

/*
 * After a restart every resource looks orphaned until the full sync, so a
 * grace period never starts before the first cycle that saw the desired
 * set authoritative: a bad full sync arriving late still gets its grace.
 */
static void note_authoritative(reaper_t *rp, int64_t now)
{
    if (!rp->auth_since_ms && authoritative(rp))
        rp->auth_since_ms = now;
}

static int64_t grace_start(const reaper_t *rp, const orphan_t *o)
{
    return rp->auth_since_ms > o->first_seen_ms ? rp->auth_since_ms : o->first_seen_ms;
}

static void orphan_free(reaper_t *rp, orphan_t *o)
{
    d8_map_del(&rp->orphans, o->key);
    free(o);
}

/* ---- deletion ------------------------------------------------------------ */

/* Last checks right before a DELETE goes out; 1 when it may. */
static int still_reapable(reaper_t *rp, orphan_t *o)
{
    if (rp->paused || rp->suspended || !authoritative(rp) || rp->cfg->reaper_dry_run ||
        !rp->cfg->reaper_enabled)
        return 0;
    if (store_desired(rp->store, o->id))
        return 0; /* desired again since the cycle started */
    /* One lookup, not a scan: this runs for every eligible orphan. */
    const observed_t *ob = observer_find(rp->ob, o->id);
    if (!ob)
        return 1;
    if (ob->busy)
        return 0;
    if (o->kind == KIND_SHARE && ob->g.exists)
        return 0;
    return 1;
}

/* The audit line of a reaper decision (DESIGN.md section 6), and the same
 * decision as an event of the environment. */
static void audit(reaper_t *rp, orphan_t *o, const char *msg, const azure_result_t *res)
{
    char name[OWN_NAME_MAX];
    char first[32];
    own_name(o->id, name);
    d8_rfc3339(o->first_seen_ms, first);
    LOG(LOG_WARN, msg, LF_S("audit", "reaper"), LF_S("kind", kind_names[o->kind]),
        LF_S("name", name), LF_S("env_id", o->id),
        LF_S("region", o->region >= 0 ? rp->cfg->regions[o->region].name : ""),
        LF_S("controller", rp->cfg->controller_name), LF_S("first_seen", first),
        LF_I("status", res ? res->http_status : 0),
        LF_S("retention", o->keep_until_ms > 0 ? "expired" : ""),
        LF_S("arm_request_id", res && res->request_id ? res->request_id : ""),
        LF_B("dry_run", rp->cfg->reaper_dry_run));
    /* An event only for an environment the store still has (one left out
     * of a full sync): nobody could read the ring of an unknown id. */
    if (!store_get(rp->store, o->id))
        return;
    char text[EVENTS_MESSAGE_MAX];
    snprintf(text, sizeof(text), "%s %s (%s, first seen %s)", msg + strlen("audit: "), name,
             kind_names[o->kind], first);
    events_add(rp->events, o->id, "Normal", "Reaped", "reaper", 0, 1, text);
}

/*
 * The outcome line in deletion_done is the one audit line of a deletion
 * (DESIGN.md section 6); this plain line is the trace of a DELETE that was
 * sent, should the agent die before the answer.
 */
static void log_deleting(const orphan_t *o)
{
    char name[OWN_NAME_MAX];
    own_name(o->id, name);
    LOG(LOG_INFO, "deleting orphan", LF_S("kind", kind_names[o->kind]), LF_S("name", name),
        LF_S("env_id", o->id));
}

/* A reaper DELETE answered: count and audit a deletion, or leave the
 * orphan for the next cycle (freed now if it left the set meanwhile). */
static void deletion_done(void *ud, const azure_result_t *res)
{
    orphan_t *o = ud;
    reaper_t *rp = o->rp;
    o->in_flight = 0;
    if (res->err == D8_ECANCELED)
        return;
    if (res->err == 0 || res->err == D8_ENOENT) {
        rp->reaped[o->kind]++;
        const char *lbl[] = {kind_names[o->kind]};
        metrics_add(rp->m_reaped, lbl, 1);
        audit(rp, o, res->accepted ? "audit: orphan deletion accepted" : "audit: orphan deleted",
              res);
        if (o->kind == KIND_SHARE && rp->usage)
            usage_retained_drop(rp->usage, o->id, d8_wall_ms());
        orphan_free(rp, o);
        return;
    }
    LOG(LOG_WARN, "orphan deletion failed; retried next cycle", LF_S("env_id", o->id),
        LF_S("kind", kind_names[o->kind]), LF_S("code", res->error_code ? res->error_code : ""));
    if (o->gone)
        orphan_free(rp, o);
}

/* The region scope and Azure name of o's resource, for its GET and DELETE. */
static const azure_scope_t *target_of(const reaper_t *rp, const orphan_t *o,
                                      char name[OWN_NAME_MAX])
{
    own_name(o->id, name);
    return observer_scope(rp->ob, o->region);
}

/*
 * The part of a verify GET's answer that does not depend on the kind:
 * returns 1 when `found` (the resource) is there to check, else 0 with the
 * orphan settled — left for the next cycle, or freed when Azure says it is
 * already gone.
 */
static int verify_answered(reaper_t *rp, orphan_t *o, const azure_result_t *res, const void *found)
{
    if (res->err == D8_ECANCELED) {
        o->in_flight = 0;
        return 0;
    }
    if (res->err == D8_ENOENT) {
        o->in_flight = 0;
        orphan_free(rp, o); /* already gone */
        return 0;
    }
    if (res->err < 0 || !found) {
        o->in_flight = 0;
        return 0;
    }
    return 1;
}

/* azure_group_delete or azure_share_delete. */
typedef int (*delete_fn)(azure_client_t *c, const azure_scope_t *s, const char *name,
                         azure_prio_t prio, azure_done_cb cb, void *ud);

/*
 * Called only once the caller has proven o's resource ours. Still honours
 * the keep mark (from the GET's answer) and re-checks that the orphan is
 * reapable now, since the GET took time; then sends the DELETE through
 * `del`.
 */
static void delete_verified(reaper_t *rp, orphan_t *o, int keep, delete_fn del)
{
    if (keep) {
        o->keep = 1;
        o->in_flight = 0;
        return;
    }
    if (!still_reapable(rp, o)) {
        o->in_flight = 0;
        return;
    }
    char name[OWN_NAME_MAX];
    const azure_scope_t *s = target_of(rp, o, name);
    log_deleting(o);
    if (del(rp->az, s, name, AZURE_PRIO_LOW, deletion_done, o) < 0)
        o->in_flight = 0;
}

static void verified_group(void *ud, const azure_result_t *res, const azure_group_t *g)
{
    orphan_t *o = ud;
    reaper_t *rp = o->rp;
    if (!verify_answered(rp, o, res, g))
        return;
    own_info_t own;
    own_parse_group(&g->tags, o->id, rp->cfg->controller_name, &own);
    if (!own.ours) {
        o->in_flight = 0;
        orphan_free(rp, o); /* not ours after all: never touched */
        return;
    }
    delete_verified(rp, o, own.keep, azure_group_delete);
}

static void verified_share(void *ud, const azure_result_t *res, const azure_share_t *sh)
{
    orphan_t *o = ud;
    reaper_t *rp = o->rp;
    if (!verify_answered(rp, o, res, sh))
        return;
    /* Shares hold user data: ownership must be proven by metadata. */
    own_info_t own;
    own_parse_share(&sh->metadata, o->id, rp->cfg->controller_name, &own);
    if (!own.ours) {
        o->in_flight = 0;
        o->keep = 1; /* not provably ours: reported, never deleted */
        return;
    }
    /* A retained share past its keep-until time goes like any orphan. */
    o->keep_until_ms = own.keep ? own.keep_until_ms : 0;
    delete_verified(rp, o, own.keep && !own_keep_expired(&own, d8_wall_ms()), azure_share_delete);
}

static int start_deletion(reaper_t *rp, orphan_t *o)
{
    char name[OWN_NAME_MAX];
    const azure_scope_t *s = target_of(rp, o, name);
    o->in_flight = 1;
    int rc = o->kind == KIND_GROUP
                 ? azure_group_get(rp->az, s, name, AZURE_PRIO_LOW, verified_group, o)
                 : azure_share_get(rp->az, s, name, AZURE_PRIO_LOW, verified_share, o);
    if (rc < 0)
        o->in_flight = 0;
    return rc;
}

/* ---- cycle ----------------------------------------------------------------- */

/* Records that env ob's resource of `kind` is an orphan in this cycle. */
static void track(reaper_t *rp, kind_t kind, const observed_t *ob, int64_t now)
{
    char key[SPEC_ID_MAX + 4];
    snprintf(key, sizeof(key), "%c/%s", kind == KIND_GROUP ? 'g' : 's', ob->id);
    orphan_t *o = d8_map_get(&rp->orphans, key);
    if (!o) {
        o = d8_xcalloc(1, sizeof(*o));
        memcpy(o->key, key, sizeof(key));
        o->kind = kind;
        snprintf(o->id, sizeof(o->id), "%s", ob->id);
        o->first_seen_ms = now;
        o->rp = rp;
        d8_map_put(&rp->orphans, o->key, o);
        LOG(LOG_INFO, "orphan seen", LF_S("kind", kind_names[kind]), LF_S("env_id", ob->id));
        o->announce = 1;
    }
    if (o->redesired) {
        /* Desired again (and dropped again) since it was first seen,
         * maybe within one cycle: a new orphan, with a full grace. */
        o->redesired = 0;
        o->first_seen_ms = now;
        o->dry_run_logged = 0;
        o->announce = 1;
        LOG(LOG_INFO, "orphan seen again after being desired", LF_S("kind", kind_names[kind]),
            LF_S("env_id", ob->id));
    }
    o->region = ob->region;
    o->seen_cycle = rp->cycle;
    o->gone = 0;
    o->verified = kind == KIND_GROUP || ob->s.verified;
    /* A retained share is Kept from the moment it is marked. */
    if ((kind == KIND_GROUP && ob->g.keep) || (kind == KIND_SHARE && ob->s.keep))
        o->keep = 1;
    if (kind == KIND_SHARE && ob->s.keep && ob->s.keep_until_ms > o->keep_until_ms)
        o->keep_until_ms = ob->s.keep_until_ms;
    /* Retention over: no longer kept; the GET before the DELETE checks
     * the metadata again (a PUT may have adopted it meanwhile). */
    if (o->keep && o->keep_until_ms > 0 && now >= o->keep_until_ms)
        o->keep = 0;
}

typedef struct scan_ctx {
    reaper_t *rp;
    int64_t now;
} scan_ctx_t;

/*
 * Counts our resources and tracks those without a desired owner. A listed
 * share carries no metadata: it counts as ours once a GET proved it (the
 * reconciler's, or the reaper's own verification); one proven foreign is
 * another controller's and is neither counted, tracked nor listed.
 */
static void scan_one(void *ud, const observed_t *ob)
{
    scan_ctx_t *c = ud;
    reaper_t *rp = c->rp;
    int share_ours = ob->s.exists && ob->s.verified;
    int share_unknown = ob->s.exists && !ob->s.verified && !ob->s.foreign;
    rp->managed += (size_t)(ob->g.exists + share_ours);
    if (ob->region < 0 || store_desired(rp->store, ob->id))
        return;
    /* A retained share deleted by someone else leaves the retained table. */
    if (rp->usage && ob->s.known && !ob->s.exists)
        usage_retained_drop(rp->usage, ob->id, d8_wall_ms());
    if (ob->g.exists)
        track(rp, KIND_GROUP, ob, c->now);
    if (share_ours || share_unknown)
        track(rp, KIND_SHARE, ob, c->now);
}

static const char *blocked_by(const reaper_t *rp, const orphan_t *o, int64_t now)
{
    if (o->keep)
        return "Keep";
    if (!rp->cfg->reaper_enabled)
        return "Disabled";
    if (!authoritative(rp))
        return "NotAuthoritative";
    if (rp->suspended)
        return "Suspended";
    if (now - grace_start(rp, o) < grace_ms(rp, o->kind))
        return "GracePeriod";
    if (rp->cfg->reaper_dry_run)
        return "DryRun";
    return NULL;
}

/* Forgets what is no longer an orphan (one in flight is marked gone and
 * freed by its answer); counts the orphans of each kind into `counts`. */
static void forget_settled(reaper_t *rp, size_t counts[2])
{
    size_t it = 0, n = 0;
    orphan_t **dead = d8_xcalloc(rp->orphans.count + 1, sizeof(*dead));
    orphan_t *o;
    counts[0] = counts[1] = 0;
    while ((o = d8_map_next(&rp->orphans, &it))) {
        if (o->seen_cycle != rp->cycle) {
            if (o->in_flight)
                o->gone = 1;
            else
                dead[n++] = o;
        } else if (o->verified) {
            counts[o->kind]++;
        }
    }
    for (size_t i = 0; i < n; i++)
        orphan_free(rp, dead[i]);
    free(dead);
    for (int k = 0; k < 2; k++) {
        const char *lbl[] = {kind_names[k]};
        metrics_set(rp->m_orphans, lbl, (double)counts[k]);
    }
}

/*
 * Too many orphans at once smells of a bad full sync: suspend and ask. A
 * resume acknowledges the orphans of that moment, not that many orphans
 * forever: the acknowledgement shrinks as those orphans go, so a later bad
 * sync dropping as many resources suspends again.
 */
static void guard_orphan_fraction(reaper_t *rp, size_t norphans)
{
    if (norphans < rp->ack_orphans)
        rp->ack_orphans = norphans;
    if (!rp->suspended && norphans > rp->ack_orphans && rp->managed > 0 &&
        (double)norphans > rp->cfg->reaper_max_orphan_fraction * (double)rp->managed) {
        rp->suspended = 1;
        snprintf(rp->suspend_reason, sizeof(rp->suspend_reason),
                 "%zu orphans of %zu managed resources exceed maxOrphanFraction %.2f", norphans,
                 rp->managed, rp->cfg->reaper_max_orphan_fraction);
        LOG(LOG_ERROR,
            "reaper suspended: POST /api/v1/reaper/resume after checking the desired set",
            LF_S("reason", rp->suspend_reason));
    }
    metrics_set(rp->m_suspended, NULL, rp->suspended);
}

/* Starts the deletion of at most maxDeletesPerCycle eligible orphans. */
static void start_deletions(reaper_t *rp, int64_t now)
{
    size_t started = 0, it = 0;
    orphan_t *o;
    while ((o = d8_map_next(&rp->orphans, &it))) {
        if (started >= (size_t)rp->cfg->reaper_max_deletes_per_cycle)
            break;
        if (o->in_flight || o->gone || !o->verified)
            continue;
        const char *why = blocked_by(rp, o, now);
        if (why) {
            if (strcmp(why, "DryRun") == 0 && !o->dry_run_logged) {
                o->dry_run_logged = 1;
                audit(rp, o, "audit: orphan would be deleted (dry run)", NULL);
            }
            continue;
        }
        if (!still_reapable(rp, o))
            continue;
        /* The iteration must not see the map change: deletions start now
         * but complete from later loop turns. */
        if (start_deletion(rp, o) == 0)
            started++;
    }
}

typedef struct announce_ctx {
    reaper_t *rp;
    const char *id;
} announce_ctx_t;

/* The reap times of an object's orphans, in its Ready message. */
static void set_removed_message(void *ud, const env_obj_t *obj, env_status_t *s)
{
    announce_ctx_t *c = ud;
    char msg[320], when[2][32];
    int n = 0;
    for (int k = 0; k < 2; k++) {
        char key[SPEC_ID_MAX + 4];
        snprintf(key, sizeof(key), "%c/%s", k == KIND_GROUP ? 'g' : 's', c->id);
        const orphan_t *o = d8_map_get(&c->rp->orphans, key);
        when[k][0] = '\0';
        if (o) {
            d8_rfc3339(grace_start(c->rp, o) + grace_ms(c->rp, (kind_t)k), when[k]);
            n++;
        }
    }
    (void)obj;
    if (!n)
        return;
    snprintf(msg, sizeof(msg),
             "removed from the desired set by a full sync: the reaper may delete%s%s%s%s%s "
             "unless it is desired again",
             when[0][0] ? " its container group after " : "", when[0],
             when[0][0] && when[1][0] ? " and" : "", when[1][0] ? " its file share after " : "",
             when[1]);
    store_set_condition(&s->ready, COND_FALSE, "RemovedFromDesiredSet", msg, d8_wall_ms());
}

/* Tells each removed object whose orphans got a new grace in this cycle
 * when the reaper may act on them (Ready message, a watch event). */
static void announce_reap_times(reaper_t *rp)
{
    size_t it = 0;
    orphan_t *o;
    while ((o = d8_map_next(&rp->orphans, &it))) {
        if (!o->announce)
            continue;
        o->announce = 0;
        const env_obj_t *obj = store_get(rp->store, o->id);
        if (!obj || !obj->removed)
            continue;
        announce_ctx_t c = {rp, o->id};
        store_update_status(rp->store, o->id, set_removed_message, &c);
    }
}

/* A verification GET of a listed share answered: what it says goes into
 * the observed cache (ours, foreign, kept), where the next cycle reads it. */
static void on_share_checked(void *ud, const azure_result_t *res, const azure_share_t *sh)
{
    orphan_t *o = ud;
    reaper_t *rp = o->rp;
    o->in_flight = o->checking = 0;
    if (res->err == D8_ECANCELED)
        return;
    observed_t *ob = observer_entry(rp->ob, o->id);
    if (res->err == D8_ENOENT)
        observed_share_gone(rp->ob, ob);
    else if (res->err == 0 && sh)
        observed_share_seen(rp->ob, ob, sh, 1);
    if (o->gone)
        orphan_free(rp, o);
}

/* Reads the metadata of listed shares not yet proven ours (a bounded
 * number per cycle, from the low-priority budget). */
static void verify_shares(reaper_t *rp)
{
    size_t started = 0, it = 0;
    orphan_t *o;
    while ((o = d8_map_next(&rp->orphans, &it)) && started < VERIFY_PER_CYCLE) {
        if (o->kind != KIND_SHARE || o->verified || o->in_flight || o->gone)
            continue;
        char name[OWN_NAME_MAX];
        const azure_scope_t *s = target_of(rp, o, name);
        o->in_flight = o->checking = 1;
        if (azure_share_get(rp->az, s, name, AZURE_PRIO_LOW, on_share_checked, o) < 0)
            o->in_flight = o->checking = 0;
        else
            started++;
    }
}

/* One reaper cycle, once every region was listed: scan the observed cache
 * for orphans, apply the guards, start the eligible deletions. */
static void cycle_cb(uv_timer_t *t)
{
    reaper_t *rp = t->data;
    if (rp->paused || !observer_listed_all(rp->ob))
        return;
    rp->cycle++;
    int64_t now = d8_wall_ms();
    rp->last_cycle_ms = now;
    note_authoritative(rp, now);
    rp->managed = 0;
    scan_ctx_t c = {rp, now};
    observer_each(rp->ob, scan_one, &c);
    size_t counts[2];
    forget_settled(rp, counts);
    announce_reap_times(rp);
    guard_orphan_fraction(rp, counts[0] + counts[1]);
    start_deletions(rp, now);
    verify_shares(rp);
}

/*
 * An orphan whose env id becomes desired again and is dropped again, maybe
 * within one cycle, must get a full grace again: every store event of an
 * id (it is in the desired set, or being deleted) marks its orphans, and
 * the next time they are seen as orphans their grace starts over.
 */
static void on_store_event(void *ud, const store_event_t *ev)
{
    reaper_t *rp = ud;
    /* Status writes (ours, the reconciler's) never make an id desired. */
    if (ev->type == EV_DELETED || !ev->id || ev->status_only)
        return;
    char key[SPEC_ID_MAX + 4];
    for (int k = 0; k < 2; k++) {
        snprintf(key, sizeof(key), "%c/%s", k == KIND_GROUP ? 'g' : 's', ev->id);
        orphan_t *o = d8_map_get(&rp->orphans, key);
        if (o)
            o->redesired = 1;
    }
}

/* ---- public -------------------------------------------------------------------- */

reaper_t *reaper_new(const reaper_opts_t *opts)
{
    reaper_t *rp = d8_xcalloc(1, sizeof(*rp));
    rp->loop = opts->loop;
    rp->cfg = opts->cfg;
    rp->store = opts->store;
    rp->events = opts->events;
    rp->az = opts->az;
    rp->ob = opts->observer;
    rp->usage = opts->usage;
    rp->cycle_ms = opts->cycle_ms ? opts->cycle_ms : (uint64_t)rp->cfg->resync_seconds * 1000;
    d8_map_init(&rp->orphans);
    rp->watcher = store_watch(rp->store, on_store_event, rp);
    uv_timer_init(rp->loop, &rp->timer);
    rp->timer.data = rp;
    static const char *const kind_label[] = {"kind"};
    rp->m_orphans =
        metrics_gauge(opts->metrics, "dev8_orphans",
                      "Resources of ours without a desired environment.", 1, kind_label);
    rp->m_reaped = metrics_counter(opts->metrics, "dev8_orphans_reaped_total",
                                   "Orphans deleted by the reaper.", 1, kind_label);
    rp->m_suspended =
        metrics_gauge(opts->metrics, "dev8_reaper_suspended",
                      "1 while the reaper is suspended by the orphan-fraction guard.", 0, NULL);
    metrics_set(rp->m_suspended, NULL, 0);
    return rp;
}

void reaper_start(reaper_t *rp)
{
    uv_timer_start(&rp->timer, cycle_cb, rp->cycle_ms, rp->cycle_ms);
}

void reaper_pause(reaper_t *rp)
{
    rp->paused = 1;
    uv_timer_stop(&rp->timer);
}

void reaper_set_authoritative(reaper_t *rp)
{
    rp->authoritative_loaded = 1;
}

int reaper_busy(const reaper_t *rp, const char *id)
{
    char key[SPEC_ID_MAX + 4];
    for (int k = 0; k < 2; k++) {
        snprintf(key, sizeof(key), "%c/%s", k == KIND_GROUP ? 'g' : 's', id);
        const orphan_t *o = d8_map_get(&rp->orphans, key);
        if (o && o->in_flight && !o->checking)
            return 1;
    }
    return 0;
}

int reaper_resume(reaper_t *rp)
{
    int was = rp->suspended;
    size_t norphans = 0, it = 0;
    while (d8_map_next(&rp->orphans, &it))
        norphans++;
    rp->suspended = 0;
    rp->suspend_reason[0] = '\0';
    /* The operator accepted the current orphans; only more suspend again. */
    rp->ack_orphans = norphans;
    metrics_set(rp->m_suspended, NULL, 0);
    LOG(LOG_WARN, "reaper resumed by the API", LF_B("was_suspended", was),
        LF_I("orphans_acknowledged", norphans));
    return was;
}

cJSON *reaper_orphans_json(reaper_t *rp)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(root, "items");
    int64_t now = d8_wall_ms();
    note_authoritative(rp, now);
    size_t it = 0;
    orphan_t *o;
    while ((o = d8_map_next(&rp->orphans, &it))) {
        if (o->gone || !o->verified)
            continue;
        char name[OWN_NAME_MAX], first[32], after[32];
        own_name(o->id, name);
        d8_rfc3339(o->first_seen_ms, first);
        d8_rfc3339(grace_start(rp, o) + grace_ms(rp, o->kind), after);
        const char *why = blocked_by(rp, o, now);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", kind_names[o->kind]);
        cJSON_AddStringToObject(j, "name", name);
        cJSON_AddStringToObject(j, "envId", o->id);
        cJSON_AddStringToObject(j, "region",
                                o->region >= 0 ? rp->cfg->regions[o->region].name : "");
        cJSON_AddStringToObject(j, "firstSeen", first);
        cJSON_AddStringToObject(j, "reapAfter", after);
        cJSON_AddStringToObject(j, "state",
                                o->in_flight && !o->checking ? "Deleting"
                                : o->keep                    ? "Kept"
                                : why                        ? "Waiting"
                                                             : "Eligible");
        if (why)
            cJSON_AddStringToObject(j, "blockedBy", why);
        else
            cJSON_AddNullToObject(j, "blockedBy");
        cJSON_AddItemToArray(items, j);
    }
    return root;
}

void reaper_status(reaper_t *rp, cJSON *status)
{
    cJSON *r = cJSON_AddObjectToObject(status, "reaper");
    const char *state = !rp->cfg->reaper_enabled  ? "Disabled"
                        : !authoritative(rp)      ? "WaitingForFullSync"
                        : rp->suspended           ? "Suspended"
                        : rp->cfg->reaper_dry_run ? "DryRun"
                                                  : "Active";
    cJSON_AddStringToObject(r, "state", state);
    cJSON_AddBoolToObject(r, "enabled", rp->cfg->reaper_enabled);
    cJSON_AddBoolToObject(r, "dryRun", rp->cfg->reaper_dry_run);
    cJSON_AddBoolToObject(r, "authoritative", authoritative(rp));
    cJSON_AddBoolToObject(r, "suspended", rp->suspended);
    if (rp->suspended)
        cJSON_AddStringToObject(r, "suspendedReason", rp->suspend_reason);
    size_t counts[2] = {0, 0}, it = 0;
    orphan_t *o;
    while ((o = d8_map_next(&rp->orphans, &it)))
        if (!o->gone && o->verified)
            counts[o->kind]++;
    cJSON *orph = cJSON_AddObjectToObject(r, "orphans");
    cJSON_AddNumberToObject(orph, "containerGroup", (double)counts[0]);
    cJSON_AddNumberToObject(orph, "fileShare", (double)counts[1]);
    cJSON *reaped = cJSON_AddObjectToObject(r, "reaped");
    cJSON_AddNumberToObject(reaped, "containerGroup", (double)rp->reaped[0]);
    cJSON_AddNumberToObject(reaped, "fileShare", (double)rp->reaped[1]);
    cJSON_AddNumberToObject(r, "managedResources", (double)rp->managed);
    if (rp->last_cycle_ms) {
        char ts[32];
        d8_rfc3339(rp->last_cycle_ms, ts);
        cJSON_AddStringToObject(r, "lastCycleTime", ts);
    } else {
        cJSON_AddNullToObject(r, "lastCycleTime");
    }
}

static void timer_closed(uv_handle_t *h)
{
    reaper_t *rp = h->data;
    size_t it = 0;
    orphan_t *o;
    while ((o = d8_map_next(&rp->orphans, &it)))
        free(o);
    d8_map_release(&rp->orphans);
    free(rp);
}

void reaper_free(reaper_t *rp)
{
    if (!rp)
        return;
    rp->paused = 1;
    if (rp->watcher)
        store_unwatch(rp->store, rp->watcher);
    rp->watcher = NULL;
    uv_close((uv_handle_t *)&rp->timer, timer_closed);
}
