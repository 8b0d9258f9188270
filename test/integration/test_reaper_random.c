/*
 * A randomized end-to-end test of the reaper's safety (DESIGN.md section 8,
 * invariants 1, 2 and 4): the real bin/dev8-agent against the real
 * bin/azsim, driven by a seeded random sequence of
 *   PUTs (Running/Stopped, storagePolicy Delete/Retain, re-adding dropped
 *   ids), DELETEs (of desired and of dropped ids), full syncs (sometimes
 *   dropping environments), agent kills (SIGKILL) and graceful restarts,
 *   each followed, at once or after a delay, by a full sync, out-of-band
 *   changes in azsim (a group deleted or stopped behind the agent's back),
 *   small azsim fault rates (500/503/429) and pauses.
 *
 * The test keeps a model of the desired set as a timeline per environment
 * (when it became desired, when and how it left) and of the agent runs
 * (when each began, when its first full sync went out). After every step,
 * every deletion by the agent that azsim logged since the previous step
 * (its request log has millisecond timestamps; the test's own ARM calls
 * carry an X-Request-Id of their own) is judged against the timeline:
 * - never while the environment was desired;
 * - at once only after an explicit DELETE that owns the resource (the
 *   group always; the share with policy Delete, or for an id whose spec
 *   the agent did not know);
 * - otherwise (dropped by a full sync; the share after a DELETE with policy
 *   Retain) only as an orphan: no earlier than its grace after it left the
 *   desired set, and after the agent run's first full sync.
 * And nothing that is not ours (another controller's tags, no tags, no
 * metadata) or that is tagged dev8-keep is ever mutated or deleted.
 *
 * At the end (faults cleared, a final full sync) Azure must converge to the
 * desired set exactly: one container group (Running) and one share per
 * desired Running environment, a share and at most a stopped group per
 * Stopped one, nothing else of ours, no duplicates.
 *
 * Seed: D8_SEED (decimal) or a fixed default; printed so a failure can be
 * replayed (the sequence of steps is reproducible; timing is not). Bounded:
 * D8_STEPS (default 40) steps, and no new step after 40 s.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "reaper_fixture.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NIDS 10
#define DEFAULT_SEED 20261127u
#define DEFAULT_STEPS 40
#define STEP_BUDGET_MS 40000
#define GROUP_GRACE 1
#define SHARE_GRACE 4
/* A DELETE already on the wire when the agent acknowledged a PUT may land
 * just after the acknowledgement; anything later is a violation. */
#define RACE_SLACK_MS 100

/* --- the model ------------------------------------------------------------ */

/* ON: desired from then on. DROP: left the desired set; its resources are
 * orphans (grace). FREE: explicit DELETE that owns both resources.
 * FREE_GROUP: explicit DELETE with policy Retain: the group goes at once,
 * the share is an orphan. */
typedef enum { EV_ON, EV_DROP, EV_FREE, EV_FREE_GROUP } ev_kind_t;

typedef struct mev {
    int64_t t;
    ev_kind_t kind;
} mev_t;

typedef struct menv {
    char id[16];
    int region;
    int desired;
    int running;
    int retain;
    int known;     /* the current agent run has its spec */
    int deleting;  /* DELETE sent; the agent may still hold it as DELETING */
    mev_t ev[256]; /* the timeline */
    size_t nev;
} menv_t;

typedef struct run {
    int64_t begin; /* the previous run was gone by then */
    int64_t auth;  /* send time of the first full sync of this run */
} run_t;

typedef struct world {
    rf_t f;
    uint64_t rng;  /* the step sequence: two draws per step, always */
    uint64_t srng; /* choices within one step, seeded from rng */
    menv_t env[NIDS];
    run_t runs[RF_MAX_RUNS];
    size_t nruns;
    size_t share_deletions; /* by the agent, seen in azsim's log */
    size_t group_deletions;
    int violations;
    unsigned counts[16];
    uint64_t seed;
    char trace[16384]; /* what the steps did, printed on failure */
    size_t ntrace;
} world_t;

static const char *const foreign_names[] = {"dev8-foreign9", "dev8-untagged9", "dev8-nometa9",
                                            "dev8-kept8",    "dev8-kept9",     "legacy-app"};
#define NFOREIGN (sizeof foreign_names / sizeof foreign_names[0])

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ull;
}

/* A choice within the current step. Steps draw from their own generator,
 * seeded from the main one, so how many draws a step makes (which may
 * depend on timing) never shifts the kinds of the following steps. */
static int rnd_below(world_t *w, int n)
{
    return (int)((xorshift(&w->srng) >> 33) % (uint64_t)n);
}

static int main_below(world_t *w, int n)
{
    return (int)((xorshift(&w->rng) >> 33) % (uint64_t)n);
}

static void add_ev(menv_t *e, ev_kind_t k, int64_t t)
{
    assert_true(e->nev < sizeof e->ev / sizeof e->ev[0]);
    e->ev[e->nev].t = t;
    e->ev[e->nev].kind = k;
    e->nev++;
}

/* Appends to the step trace (printed when something fails). */
static void trace(world_t *w, const char *fmt, ...)
{
    if (w->ntrace >= sizeof w->trace - 64)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->trace + w->ntrace, sizeof w->trace - w->ntrace, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->ntrace +=
            (size_t)n < sizeof w->trace - w->ntrace ? (size_t)n : sizeof w->trace - w->ntrace - 1;
}

static menv_t *env_by_id(world_t *w, const char *id)
{
    for (int i = 0; i < NIDS; i++)
        if (strcmp(w->env[i].id, id) == 0)
            return &w->env[i];
    return NULL;
}

static void dump_state(world_t *w);

/* --- the invariants ---------------------------------------------------------- */

/* Judges one deletion by the agent at time t of env e's group (group 1)
 * or share; returns 1 when allowed. */
static int deletion_allowed(world_t *w, const menv_t *e, int group, int64_t t, char *why, size_t n)
{
    const mev_t *last = NULL;
    for (size_t i = 0; i < e->nev; i++)
        if (e->ev[i].t <= t)
            last = &e->ev[i];
    if (!last) {
        snprintf(why, n, "its environment was never desired");
        return 0;
    }
    if (last->kind == EV_ON) {
        if (t - last->t <= RACE_SLACK_MS)
            return 1; /* a DELETE on the wire when the PUT was acknowledged */
        snprintf(why, n, "its environment was desired (since %lld ms before)",
                 (long long)(t - last->t));
        return 0;
    }
    if (last->kind == EV_FREE || (group && last->kind == EV_FREE_GROUP))
        return 1;
    /* An orphan: its grace, counted from the drop and from the first full
     * sync of the agent run that deleted it. */
    const run_t *run = NULL;
    for (size_t i = 0; i < w->nruns; i++)
        if (w->runs[i].begin <= t)
            run = &w->runs[i];
    if (!run || run->auth == INT64_MAX || run->auth > t) {
        snprintf(why, n, "the agent run had no full sync yet (not authoritative)");
        return 0;
    }
    int grace = group ? GROUP_GRACE : SHARE_GRACE;
    int64_t from = last->t > run->auth ? last->t : run->auth;
    if (t < from + grace * 1000) {
        snprintf(why, n, "an orphan for only %lld ms (grace %d s)", (long long)(t - from), grace);
        return 0;
    }
    return 1;
}

static int is_foreign(const char *name)
{
    for (size_t i = 0; i < NFOREIGN; i++)
        if (strcasecmp(name, foreign_names[i]) == 0)
            return 1;
    return 0;
}

/* The last path segment naming a resource: ".../shares/<name>" or
 * ".../containerGroups/<name>[/action]". */
static int resource_of(const char *path, char *kind, char *name, size_t n)
{
    const char *p = strcasestr(path, "/shares/");
    size_t skip = 8;
    *kind = 's';
    if (!p) {
        p = strcasestr(path, "/containerGroups/");
        skip = 17;
        *kind = 'g';
    }
    if (!p)
        return 0;
    p += skip;
    size_t len = strcspn(p, "/?");
    if (!len || len >= n)
        return 0;
    memcpy(name, p, len);
    name[len] = '\0';
    return 1;
}

static void check_invariants(world_t *w, const char *after)
{
    rf_req_t *reqs;
    size_t n = rf_sim_requests(&w->f, 0, &reqs);
    for (size_t i = 0; i < n; i++) {
        const rf_req_t *r = &reqs[i];
        char kind, name[128];
        if (strncmp(r->path, "/_azsim", 7) == 0 || !resource_of(r->path, &kind, name, sizeof name))
            continue;
        if (rf_req_mutates(r) && is_foreign(name) && r->status / 100 == 2) {
            print_message("VIOLATION after %s: %s %s (not ours / kept) answered %d\n", after,
                          r->method, r->path, r->status);
            w->violations++;
        }
        /* Deletions by the agent: a share DELETE answered 200, a group
         * DELETE answered 200/202 (204: it was not there). */
        if (r->by_test || strcmp(r->method, "DELETE") != 0 ||
            !(r->status == 200 || (kind == 'g' && r->status == 202)))
            continue;
        if (kind == 's')
            w->share_deletions++;
        else
            w->group_deletions++;
        if (is_foreign(name)) {
            print_message("VIOLATION after %s: %s %s (not ours / kept) deleted\n", after,
                          kind == 's' ? "share" : "group", name);
            w->violations++;
            continue;
        }
        menv_t *e = strncasecmp(name, "dev8-", 5) == 0 ? env_by_id(w, name + 5) : NULL;
        char why[160];
        if (!e) {
            print_message("VIOLATION after %s: unknown resource %s deleted\n", after, name);
            w->violations++;
        } else if (!deletion_allowed(w, e, kind == 'g', r->ts_ms, why, sizeof why)) {
            print_message("VIOLATION after %s: %s %s deleted at %lld: %s\n", after,
                          kind == 's' ? "share" : "group", name, (long long)r->ts_ms, why);
            w->violations++;
        }
    }
    free(reqs);
    /* azsim's own record of deletions: nothing foreign. */
    cJSON *stats = rf_sim_get(&w->f, "/_azsim/stats");
    for (size_t i = 0; i < NFOREIGN; i++) {
        int d = rf_deleted_count(stats, "containerGroup", foreign_names[i]) +
                rf_deleted_count(stats, "fileShare", foreign_names[i]);
        if (d) {
            print_message("VIOLATION after %s: %s in azsim's deleted list\n", after,
                          foreign_names[i]);
            w->violations++;
        }
    }
    cJSON_Delete(stats);
    if (w->violations) {
        dump_state(w);
        print_message("seed %" PRIu64 ": invariant violated after %s (replay: D8_SEED=%" PRIu64
                      ")\n",
                      w->seed, after, w->seed);
        fail();
    }
}

/* --- steps -------------------------------------------------------------------- */

static const char *const step_names[] = {"put",        "delete",   "sync",   "kill", "restart",
                                         "oob-delete", "oob-stop", "faults", "pause"};
enum {
    S_PUT,
    S_DELETE,
    S_SYNC,
    S_KILL,
    S_RESTART,
    S_OOB_DELETE,
    S_OOB_STOP,
    S_FAULTS,
    S_PAUSE,
    S_COUNT
};
static const int step_weight[S_COUNT] = {28, 10, 16, 7, 4, 5, 5, 7, 10};

static void mark_desired(menv_t *e, int64_t t)
{
    if (!e->desired)
        add_ev(e, EV_ON, t);
    e->desired = 1;
    e->known = 1;
}

/* how: EV_DROP (full sync), EV_FREE or EV_FREE_GROUP (DELETE). */
static void drop(menv_t *e, int64_t t, ev_kind_t how)
{
    if (e->desired || how != EV_DROP)
        add_ev(e, how, t);
    e->desired = 0;
}

/* Full sync of the model's desired set, minus `ndrop` random members. */
static void do_sync(world_t *w, int ndrop)
{
    const char *ids[NIDS];
    int reg[NIDS], running[NIDS], retain[NIDS];
    size_t n = 0;
    int dropped[NIDS] = {0};
    for (int k = 0; k < ndrop; k++) {
        int cand[NIDS], nc = 0;
        for (int i = 0; i < NIDS; i++)
            if (w->env[i].desired && !dropped[i])
                cand[nc++] = i;
        if (nc)
            dropped[cand[rnd_below(w, nc)]] = 1;
    }
    for (int i = 0; i < NIDS; i++) {
        menv_t *e = &w->env[i];
        if (!e->desired || dropped[i])
            continue;
        ids[n] = e->id;
        reg[n] = e->region;
        running[n] = e->running;
        retain[n] = e->retain;
        n++;
    }
    int64_t t0 = rf_wall_ms();
    long st = rf_sync(&w->f, ids, reg, running, retain, n);
    int64_t t1 = rf_wall_ms();
    assert_int_equal(st, 200);
    run_t *run = &w->runs[w->nruns - 1];
    if (run->auth == INT64_MAX)
        run->auth = t0;
    trace(w, "sync[");
    for (size_t i = 0; i < n; i++)
        trace(w, "%s%s", i ? " " : "", ids[i]);
    trace(w, "]");
    for (int i = 0; i < NIDS; i++)
        if (dropped[i])
            trace(w, " -%s", w->env[i].id);
    trace(w, "; ");
    for (int i = 0; i < NIDS; i++) {
        menv_t *e = &w->env[i];
        if (dropped[i])
            drop(e, t0, EV_DROP);
        else if (e->desired)
            mark_desired(e, t1);
        /* Ids not in the sync are unknown to the agent from now on, unless
         * it is still deleting them. */
        if (!e->desired && !e->deleting)
            e->known = 0;
    }
}

typedef struct gone_wait {
    world_t *w;
    const char *id;
} gone_wait_t;

static int env_gone_pred(void *ud)
{
    gone_wait_t *g = ud;
    char path[64];
    snprintf(path, sizeof path, "/api/v1/environments/%s", g->id);
    return rf_api(&g->w->f, "GET", path, NULL, NULL) == 404;
}

static void step_put(world_t *w)
{
    menv_t *e = &w->env[rnd_below(w, NIDS)];
    int running = rnd_below(w, 5) != 0;
    int retain = rnd_below(w, 3) == 0;
    if (e->deleting) {
        /* A PUT of an id being deleted is refused (409): wait until the
         * agent is done with it (the choice stays independent of timing). */
        gone_wait_t g = {w, e->id};
        if (th_wait_until(env_gone_pred, &g, 20000) != 0)
            print_message("%s is still being deleted after 20 s\n", e->id);
        assert_int_equal(env_gone_pred(&g), 1);
        e->deleting = 0;
    }
    trace(w, "put %s %s %s; ", e->id, running ? "Running" : "Stopped",
          retain ? "Retain" : "Delete");
    long st = rf_put(&w->f, e->id, e->region, running, retain);
    /* 409 while the reaper verifies or deletes an orphan of this id (the
     * API's Retry-After contract): the backend comes back, as told. */
    for (int i = 0; i < 100 && st == 409; i++) {
        ta_sleep_ms(200);
        st = rf_put(&w->f, e->id, e->region, running, retain);
    }
    int64_t t1 = rf_wall_ms();
    if (st != 200 && st != 201)
        print_message("PUT %s answered %ld\n", e->id, st);
    assert_true(st == 200 || st == 201);
    e->running = running;
    e->retain = retain;
    mark_desired(e, t1);
}

static void step_delete(world_t *w)
{
    /* Mostly desired ids; sometimes one that was dropped (the agent then
     * deletes whatever is tagged with it). */
    int cand[NIDS], nc = 0;
    int want_desired = rnd_below(w, 4) != 0;
    for (int i = 0; i < NIDS; i++) {
        menv_t *e = &w->env[i];
        if (e->deleting || !e->nev)
            continue;
        if (e->desired == want_desired)
            cand[nc++] = i;
    }
    if (!nc)
        return;
    menv_t *e = &w->env[cand[rnd_below(w, nc)]];
    /* The share goes with it unless the agent knows a Retain spec; the
     * group goes in any case. */
    int free_share = !(e->known && e->desired && e->retain);
    trace(w, "delete %s%s; ", e->id, free_share ? "" : " (retain)");
    int64_t t0 = rf_wall_ms();
    long st = rf_delete(&w->f, e->id);
    assert_int_equal(st, 202);
    drop(e, t0, free_share ? EV_FREE : EV_FREE_GROUP);
    e->deleting = 1;
}

static void new_run(world_t *w, int64_t begin)
{
    assert_true(w->nruns < RF_MAX_RUNS);
    w->runs[w->nruns].begin = begin;
    w->runs[w->nruns].auth = INT64_MAX;
    w->nruns++;
    for (int i = 0; i < NIDS; i++) {
        w->env[i].known = 0;
        w->env[i].deleting = 0; /* the new run has forgotten its tombstones */
    }
}

static void step_restart(world_t *w, int sig)
{
    rf_t *f = &w->f;
    trace(w, "%s; ", sig == SIGKILL ? "kill -9" : "restart");
    int status = th_stop(&f->agent, sig, 10000);
    if (status != (sig == SIGKILL ? 128 + SIGKILL : 0))
        print_message("stopping the agent with signal %d: exit status %d\n", sig, status);
    assert_int_equal(status, sig == SIGKILL ? 128 + SIGKILL : 0);
    /* Requests the stopped run had on the wire land within a moment. */
    new_run(w, rf_wall_ms() + 100);
    assert_int_equal(rf_agent_launch(f), 0);
    check_invariants(w, sig == SIGKILL ? "kill" : "restart");
    if (rnd_below(w, 2) == 0) {
        /* A while without a full sync (longer than a grace at times):
         * nothing may be deleted. */
        int ms = 1000 + rnd_below(w, 3500);
        trace(w, "no sync for %d ms; ", ms);
        int64_t until = rf_wall_ms() + ms;
        while (rf_wall_ms() < until) {
            ta_sleep_ms(250);
            check_invariants(w, "restart without full sync");
        }
    }
    do_sync(w, rnd_below(w, 3) == 0 ? 1 : 0);
}

/* An id chosen from the model: ever desired (any), or desired and
 * Running; NULL when there is none. Whether azsim still holds its group
 * is up to timing: then the action answers 404 and changes nothing. */
static menv_t *pick(world_t *w, int want_running)
{
    int cand[NIDS], nc = 0;
    for (int i = 0; i < NIDS; i++) {
        const menv_t *e = &w->env[i];
        if (want_running ? e->desired && e->running : e->nev > 0)
            cand[nc++] = i;
    }
    return nc ? &w->env[cand[rnd_below(w, nc)]] : NULL;
}

static void step_oob_delete(world_t *w)
{
    menv_t *e = pick(w, 0);
    if (!e)
        return;
    char name[32];
    snprintf(name, sizeof name, "dev8-%s", e->id);
    long st = rf_arm_delete_group(&w->f, e->region, name);
    trace(w, "oob delete group %s (%ld); ", name, st);
    assert_true(st == 200 || st == 202 || st == 204 || st == 404 || st == 409);
}

static void step_oob_stop(world_t *w)
{
    menv_t *e = pick(w, 1);
    if (!e)
        return;
    char name[32];
    snprintf(name, sizeof name, "dev8-%s", e->id);
    long st = rf_arm_stop_group(&w->f, e->region, name);
    trace(w, "oob stop group %s (%ld); ", name, st);
    assert_true(st == 204 || st == 200 || st == 404 || st == 409);
}

static void step_faults(world_t *w)
{
    static const double rates[] = {0, 0, 0.02, 0.05};
    char body[160];
    snprintf(body, sizeof body,
             "{\"rate500\":%g,\"rate503\":%g,\"rate429\":%g,\"retryAfterSeconds\":1}",
             rates[rnd_below(w, 4)], rates[rnd_below(w, 4)], rates[rnd_below(w, 4)]);
    assert_int_equal(rf_faults(&w->f, body), 0);
    trace(w, "faults %s; ", body);
}

/* --- the end state ---------------------------------------------------------------- */

typedef struct conv {
    world_t *w;
    char last[2048];
} conv_t;

static int our_group(const cJSON *g)
{
    const char *c = ta_str(g, "tags.dev8-controller");
    return c && strcmp(c, RF_CONTROLLER) == 0;
}

static int our_share(const cJSON *s)
{
    const char *c = ta_str(s, "properties.metadata.dev8controller");
    return c && strcmp(c, RF_CONTROLLER) == 0;
}

static int converged_pred(void *ud)
{
    conv_t *c = ud;
    world_t *w = c->w;
    c->last[0] = '\0';
    cJSON *res = rf_sim_get(&w->f, "/_azsim/resources");
    if (!res) {
        snprintf(c->last, sizeof c->last, "no resources answer");
        return 0;
    }
    int ok = 1;
    size_t len = 0;
#define MISMATCH(...)                                                                              \
    do {                                                                                           \
        ok = 0;                                                                                    \
        if (len < sizeof c->last - 200)                                                            \
            len += (size_t)snprintf(c->last + len, sizeof c->last - len, __VA_ARGS__);             \
    } while (0)
    /* Every desired environment: its share, and its group when Running,
     * in its own region; none in the other region. */
    for (int i = 0; i < NIDS; i++) {
        menv_t *e = &w->env[i];
        char name[32];
        snprintf(name, sizeof name, "dev8-%s", e->id);
        const cJSON *g = rf_res_group(res, e->region, name);
        const cJSON *s = rf_res_share(res, e->region, name);
        if (rf_res_group(res, 1 - e->region, name) || rf_res_share(res, 1 - e->region, name))
            MISMATCH("%s: a resource in the wrong region; ", e->id);
        if (!e->desired) {
            if (g)
                MISMATCH("%s: leftover group; ", e->id);
            if (s)
                MISMATCH("%s: leftover share; ", e->id);
            char path[64];
            snprintf(path, sizeof path, "/api/v1/environments/%s", e->id);
            long st = rf_api(&w->f, "GET", path, NULL, NULL);
            if (st != 404)
                MISMATCH("%s: GET answered %ld, not 404; ", e->id, st);
            continue;
        }
        if (!s || !our_share(s))
            MISMATCH("%s: share missing or not ours; ", e->id);
        if (e->running) {
            const char *st = ta_str(g, "properties.instanceView.state");
            const char *ps = ta_str(g, "properties.provisioningState");
            if (!g || !our_group(g) || !st || strcmp(st, "Running") != 0 || !ps ||
                strcmp(ps, "Succeeded") != 0)
                MISMATCH("%s: group missing or not running (%s/%s); ", e->id, ps ? ps : "-",
                         st ? st : "-");
        } else if (g) {
            /* Stopping keeps the group (ACI stop); one created Stopped has
             * none. Either way nothing runs. */
            const char *st = ta_str(g, "properties.instanceView.state");
            if (!our_group(g) || (st && strcmp(st, "Running") == 0))
                MISMATCH("%s: stopped environment has a running group; ", e->id);
        }
        cJSON *obj = NULL;
        char path[64];
        snprintf(path, sizeof path, "/api/v1/environments/%s", e->id);
        rf_api(&w->f, "GET", path, NULL, &obj);
        const char *ph = ta_str(obj, "status.phase");
        const char *want = e->running ? "RUNNING" : "STOPPED";
        if (!ph || strcmp(ph, want) != 0)
            MISMATCH("%s: phase %s, wanted %s; ", e->id, ph ? ph : "-", want);
        cJSON_Delete(obj);
    }
    /* Nothing else of ours (the kept ones aside), nothing foreign lost. */
    const cJSON *it;
    cJSON_ArrayForEach(it, ta_path(res, "containerGroups"))
    {
        const char *n = ta_str(it, "name");
        if (our_group(it) && n && !is_foreign(n) && !env_by_id(w, n + 5))
            MISMATCH("unexpected group %s; ", n);
    }
    cJSON_ArrayForEach(it, ta_path(res, "fileShares"))
    {
        const char *n = ta_str(it, "name");
        if (our_share(it) && n && !is_foreign(n) && !env_by_id(w, n + 5))
            MISMATCH("unexpected share %s; ", n);
    }
    for (size_t i = 0; i < NFOREIGN; i++) {
        int g = rf_res_group(res, 0, foreign_names[i]) != NULL;
        int s = rf_res_share(res, 0, foreign_names[i]) != NULL;
        if (!g && !s)
            MISMATCH("%s is gone; ", foreign_names[i]);
    }
#undef MISMATCH
    cJSON_Delete(res);
    return ok;
}

/* What the agent says, and the steps, for a failure's message (stderr:
 * cmocka truncates long messages). */
static void dump_state(world_t *w)
{
    cJSON *st = rf_status(&w->f);
    char *t = st ? cJSON_PrintUnformatted(st) : NULL;
    fprintf(stderr, "agent status: %s\n", t ? t : "(none)");
    free(t);
    cJSON_Delete(st);
    cJSON *o = rf_orphans(&w->f);
    t = o ? cJSON_PrintUnformatted(o) : NULL;
    fprintf(stderr, "orphans: %s\n", t ? t : "(none)");
    free(t);
    cJSON_Delete(o);
    for (int i = 0; i < NIDS; i++) {
        if (!w->env[i].desired)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/api/v1/environments/%s", w->env[i].id);
        cJSON *e = NULL;
        rf_api(&w->f, "GET", path, NULL, &e);
        t = e ? cJSON_PrintUnformatted(ta_path(e, "status")) : NULL;
        fprintf(stderr, "%s (gen %g): %s\n", w->env[i].id, ta_num(e, "generation"),
                t ? t : "(none)");
        free(t);
        cJSON_Delete(e);
    }
    fprintf(stderr, "steps (seed %" PRIu64 "): %s\n", w->seed, w->trace);
}

static void create_foreign(world_t *w)
{
    rf_t *f = &w->f;
    struct {
        int group;
        const char *name, *json;
    } r[] = {
        {1, "dev8-foreign9",
         "{\"dev8-managed-by\":\"dev8-agent\",\"dev8-controller\":\"" RF_OTHER_CONTROLLER
         "\",\"dev8-env-id\":\"foreign9\"}"},
        {0, "dev8-foreign9",
         "{\"dev8managedby\":\"dev8agent\",\"dev8controller\":\"" RF_OTHER_CONTROLLER
         "\",\"dev8envid\":\"foreign9\"}"},
        {1, "dev8-untagged9", NULL},
        {0, "dev8-nometa9", NULL},
        {1, "dev8-kept8",
         "{\"dev8-managed-by\":\"dev8-agent\",\"dev8-controller\":\"" RF_CONTROLLER
         "\",\"dev8-env-id\":\"kept8\",\"dev8-keep\":\"true\"}"},
        {0, "dev8-kept9",
         "{\"dev8managedby\":\"dev8agent\",\"dev8controller\":\"" RF_CONTROLLER
         "\",\"dev8envid\":\"kept9\",\"dev8keep\":\"true\"}"},
        {1, "legacy-app", "{\"team\":\"web\"}"},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        long st = r[i].group ? rf_arm_put_group(f, 0, r[i].name, r[i].json)
                             : rf_arm_put_share(f, 0, r[i].name, r[i].json);
        assert_true(st == 200 || st == 201);
    }
    /* The creations above are the last mutations they may ever see. */
    rf_req_t *reqs;
    rf_sim_requests(f, 0, &reqs);
    free(reqs);
}

static void test_random_sequences_keep_the_invariants(void **state)
{
    world_t *w = *state;
    const char *seed_env = getenv("D8_SEED");
    uint64_t seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 10) : DEFAULT_SEED;
    const char *steps_env = getenv("D8_STEPS");
    int steps = steps_env && *steps_env ? atoi(steps_env) : DEFAULT_STEPS;
    print_message("random seed %" PRIu64 " (D8_SEED=%" PRIu64 " replays it), %d steps\n", seed,
                  seed, steps);
    w->seed = seed;
    w->rng = seed * 0x9E3779B97F4A7C15ull + 1;
    w->srng = w->rng ^ 0x5DEECE66Dull;
    for (int i = 0; i < NIDS; i++) {
        snprintf(w->env[i].id, sizeof w->env[i].id, "r%d", i);
        w->env[i].region = i % RF_NREGIONS;
    }

    static const char *const sim_args[] = {"--share-recreate-ms", "500", NULL};
    rf_opts_t o = {.group_grace = GROUP_GRACE,
                   .share_grace = SHARE_GRACE,
                   .max_deletes = 20,
                   .max_fraction = 1.0,
                   .status_refresh = 2,
                   .sim_args = sim_args};
    int64_t t_start = rf_wall_ms();
    assert_int_equal(rf_start(&w->f, &o), 0);
    new_run(w, 0);
    create_foreign(w);
    /* The backend's first full sync: a few environments. */
    for (int i = 0; i < 4; i++) {
        w->env[i].desired = 1;
        w->env[i].running = 1;
    }
    do_sync(w, 0);
    int64_t t1 = rf_wall_ms();
    for (int i = 0; i < 4; i++)
        add_ev(&w->env[i], EV_ON, t1);
    check_invariants(w, "start");

    int total_weight = 0;
    for (int s = 0; s < S_COUNT; s++)
        total_weight += step_weight[s];
    int done = 0;
    for (int step = 0; step < steps; step++) {
        if (rf_wall_ms() - t_start > STEP_BUDGET_MS) {
            print_message("time budget reached after %d steps\n", step);
            break;
        }
        int x = main_below(w, total_weight), s = 0;
        w->srng = xorshift(&w->rng) | 1;
        while (x >= step_weight[s])
            x -= step_weight[s++];
        switch (s) {
        case S_PUT:
            step_put(w);
            break;
        case S_DELETE:
            step_delete(w);
            break;
        case S_SYNC:
            do_sync(w, rnd_below(w, 2) == 0 ? 1 + rnd_below(w, 2) : 0);
            break;
        case S_KILL:
            step_restart(w, SIGKILL);
            break;
        case S_RESTART:
            step_restart(w, SIGTERM);
            break;
        case S_OOB_DELETE:
            step_oob_delete(w);
            break;
        case S_OOB_STOP:
            step_oob_stop(w);
            break;
        case S_FAULTS:
            step_faults(w);
            break;
        default: {
            int ms = 300 + rnd_below(w, 1200);
            trace(w, "pause %d ms; ", ms);
            ta_sleep_ms(ms);
            break;
        }
        }
        w->counts[s]++;
        ta_sleep_ms(50 + rnd_below(w, 250));
        char label[64];
        snprintf(label, sizeof label, "step %d (%s)", step, step_names[s]);
        check_invariants(w, label);
        done++;
    }

    /* The end: faults off, the final full sync, convergence. */
    assert_int_equal(rf_faults(&w->f, "{\"rate500\":0,\"rate503\":0,\"rate429\":0}"), 0);
    do_sync(w, 0);
    cJSON *ans = NULL;
    assert_int_equal(rf_api(&w->f, "POST", "/api/v1/reaper/resume", NULL, &ans), 200);
    cJSON_Delete(ans);
    int64_t t_conv = rf_wall_ms();
    conv_t c = {w, ""};
    int rc = th_wait_until(converged_pred, &c, 30000);
    if (rc != 0) {
        print_message("not converged after 30 s: %s\n", c.last);
        dump_state(w);
    }
    check_invariants(w, "convergence");
    assert_int_equal(rc, 0);
    int64_t conv_ms = rf_wall_ms() - t_conv;

    /* The log and azsim's deleted list agree on the share deletions. */
    cJSON *stats = rf_sim_get(&w->f, "/_azsim/stats");
    assert_int_equal((size_t)rf_deleted_count(stats, "fileShare", NULL), w->share_deletions);
    cJSON_Delete(stats);
    char summary[512];
    size_t len = 0;
    for (int s = 0; s < S_COUNT; s++)
        len += (size_t)snprintf(summary + len, sizeof summary - len, "%s%s %u", s ? ", " : "",
                                step_names[s], w->counts[s]);
    int desired = 0;
    for (int i = 0; i < NIDS; i++)
        desired += w->env[i].desired;
    print_message("seed %" PRIu64 ": %d steps (%s); %zu agent runs; %zu share and %zu group "
                  "deletions checked; %d desired at the end; converged in %lld ms; total %lld ms\n",
                  seed, done, summary, w->nruns, w->share_deletions, w->group_deletions, desired,
                  (long long)conv_ms, (long long)(rf_wall_ms() - t_start));
    assert_int_equal(rf_stop(&w->f), 0);
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(world_t));
    return *state ? 0 : -1;
}

/* Cleans up after a failure before the test's own rf_stop. */
static int teardown(void **state)
{
    world_t *w = *state;
    int rc = 0;
    if (w && (w->f.agent.pid > 0 || w->f.sim.pid > 0))
        rc = rf_stop(&w->f);
    free(w);
    *state = NULL;
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random_sequences_keep_the_invariants, setup, teardown),
    };
    return cmocka_run_group_tests_name("reaper_random", tests, NULL, NULL);
}
