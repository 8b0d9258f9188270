/*
 * pkg/reconcile: what each pass observed goes to the usage accountant
 * (pkg/usage), and status.usage / status.estimatedCostPerHour follow it.
 *
 * A pass that ends in a read (GET of the group or share) observes nothing
 * yet: its next step, with the fresh answer, does. The snapshot in the
 * status is refreshed at each usage transition (start, stop, resize,
 * share created, grown or deleted) and at most USAGE_SNAPSHOT_MS apart
 * otherwise, so that a quiet resync never streams an event.
 */
#include "reconcile_int.h"

#include <stdio.h>
#include <string.h>

#define USAGE_SNAPSHOT_MS 3600000LL

typedef struct snap_ctx {
    const usage_totals_t *t;
    int64_t now;
} snap_ctx_t;

static void set_snapshot(void *ud, const env_obj_t *obj, env_status_t *s)
{
    const snap_ctx_t *c = ud;
    const usage_totals_t *t = c->t;
    (void)obj;
    env_usage_t *u = &s->usage;
    u->set = 1;
    u->running_seconds = t->running_seconds;
    u->cpu_core_seconds = t->cpu_core_seconds;
    u->memory_gb_seconds = t->memory_gb_seconds;
    u->storage_gb_hours = t->storage_gb_hours;
    u->priced = t->priced;
    u->estimated_cost = t->estimated_cost;
    u->cost_per_hour = t->cost_per_hour;
    snprintf(u->currency, sizeof(u->currency), "%s", t->currency ? t->currency : "");
    u->since_ms = t->since_ms;
    u->taken_ms = c->now;
}

void reconcile__account(rec_env_t *e, const env_obj_t *obj, const decide_plan_t *plan)
{
    reconciler_t *r = e->r;
    const observed_t *o = e->o;
    if (!r->usage || plan->action == DECIDE_GET_GROUP || plan->action == DECIDE_GET_SHARE ||
        o->region < 0)
        return;
    int64_t now = d8_wall_ms();
    int changed = 1;
    if (plan->action == DECIDE_REMOVE_OBJECT) {
        usage_deleted(r->usage, e->id, now);
    } else {
        int running = o->g.exists && strcmp(o->g.inst, "Running") == 0;
        const env_spec_t *sp = obj->has_spec ? &obj->spec : NULL;
        usage_sample_t s = {
            .running = running,
            /* The size Azure reports; the spec's only if Azure said none. */
            .cpu_cores = o->g.cpu_cores > 0 ? o->g.cpu_cores
                         : sp               ? sp->cpu_halves / 2.0
                                            : 0,
            .memory_gb = o->g.memory_gb > 0 ? o->g.memory_gb
                         : sp               ? sp->memory_halves / 2.0
                                            : 0,
            .share_gb = o->s.exists && !o->s.foreign ? o->s.quota_gb : 0,
        };
        changed = usage_observe(r->usage, e->id, sp ? sp->user_id : NULL, o->region, now, &s);
    }
    if (plan->action == DECIDE_REMOVE_OBJECT ||
        (!changed && obj->status.usage.set && now - obj->status.usage.taken_ms < USAGE_SNAPSHOT_MS))
        return;
    usage_totals_t t;
    if (!usage_totals(r->usage, e->id, now, &t))
        return;
    snap_ctx_t c = {&t, now};
    store_update_status(r->store, e->id, set_snapshot, &c);
}

void reconcile__retained(rec_env_t *e, int quota_gb)
{
    reconciler_t *r = e->r;
    const env_obj_t *obj = store_get(r->store, e->id);
    if (!r->usage)
        return;
    usage_retained_set(r->usage, e->id, obj && obj->has_spec ? obj->spec.user_id : NULL,
                       e->o->region, quota_gb, e->keep_until_ms);
}

void reconcile__adopted(rec_env_t *e)
{
    reconciler_t *r = e->r;
    if (r->usage)
        usage_retained_drop(r->usage, e->id, d8_wall_ms());
}
