/*
 * The reaper's safety, end to end (DESIGN.md sections 6 and 8): the real
 * bin/dev8-agent against the real bin/azsim, both started per test.
 *
 * - orphans are reaped after their grace and not before, shares only after
 *   their group, one audit line per deletion;
 * - what is not provably ours (another controller's tags, no tags, no
 *   metadata) and what is tagged dev8-keep survives every cycle, untouched;
 * - after a restart nothing is deleted until a full sync, and the grace
 *   counts from then;
 * - a full sync that drops most environments suspends the reaper until
 *   POST /api/v1/reaper/resume, and a later one suspends it again;
 * - dryRun deletes nothing and reports everything;
 * - maxDeletesPerCycle bounds the deletions of one cycle;
 * - an orphan that was desired again in between gets its full grace anew.
 *
 * What azsim saw is read from its control API (/_azsim/stats "deleted",
 * /_azsim/resources) and from its request log (millisecond timestamps of
 * every ARM request), so "not before" is checked against the clock.
 * Every test ends with both processes stopped by SIGTERM and exit status 0
 * required (under `make SANITIZE=address,undefined test` that also fails
 * on leaks).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "reaper_fixture.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define G "containerGroup"
#define S "fileShare"

static int setup(void **state)
{
    rf_t *f = calloc(1, sizeof *f);
    *state = f;
    return f ? 0 : -1;
}

/* Cleans up after a test that failed before its own rf_stop. */
static int teardown(void **state)
{
    rf_t *f = *state;
    int rc = 0;
    if (f && (f->agent.pid > 0 || f->sim.pid > 0))
        rc = rf_stop(f);
    free(f);
    *state = NULL;
    return rc;
}

/* Every test ends here: SIGTERM to both, exit status 0 required. */
static void stop_cleanly(rf_t *f)
{
    assert_int_equal(rf_stop(f), 0);
}

static void start(rf_t *f, const rf_opts_t *o)
{
    assert_int_equal(rf_start(f, o), 0);
    assert_int_equal(rf_wait_listed(f, 15000), 0);
}

/* Full sync of ids (all Running, Delete), then waits until all RUNNING. */
static void converge(rf_t *f, const char *const ids[], const int region[], size_t n)
{
    assert_int_equal(rf_sync(f, ids, region, NULL, NULL, n), 200);
    const char *phases[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        phases[i] = "RUNNING";
    assert_int_equal(rf_wait_phases(f, ids, phases, n, 30000), 0);
}

static char *name_of(const char *id)
{
    static char buf[8][64];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 64, "dev8-%s", id);
    return b;
}

/* Both resources of env id exist in azsim (group Running when want_group). */
static void assert_env_resources(const cJSON *res, int region, const char *id, int want_group)
{
    const cJSON *g = rf_res_group(res, region, name_of(id));
    const cJSON *s = rf_res_share(res, region, name_of(id));
    if (!s || (want_group && !g))
        print_message("resources of %s missing (group %p share %p)\n", id, (const void *)g,
                      (const void *)s);
    assert_non_null(s);
    if (want_group) {
        assert_non_null(g);
        const char *st = ta_str(g, "properties.instanceView.state");
        assert_non_null(st);
        assert_string_equal(st, "Running");
    }
}

/* --- waiting on azsim --------------------------------------------------------- */

typedef struct del_wait {
    rf_t *f;
    const char *const *kinds;
    const char *const *names;
    size_t n;
    cJSON *stats; /* the last stats answer */
} del_wait_t;

static int deleted_pred(void *ud)
{
    del_wait_t *w = ud;
    cJSON_Delete(w->stats);
    w->stats = rf_sim_get(w->f, "/_azsim/stats");
    for (size_t i = 0; i < w->n; i++)
        if (rf_deleted_count(w->stats, w->kinds[i], w->names[i]) < 1)
            return 0;
    return 1;
}

/* Waits until azsim recorded the deletion of every (kind, name); returns
 * the stats answer (caller deletes) or fails the test. */
static cJSON *wait_deleted(rf_t *f, const char *const kinds[], const char *const names[], size_t n,
                           int timeout_ms)
{
    del_wait_t w = {f, kinds, names, n, NULL};
    if (th_wait_until(deleted_pred, &w, timeout_ms) != 0) {
        char *t = w.stats ? cJSON_PrintUnformatted(ta_path(w.stats, "deleted")) : NULL;
        print_message("deletions not seen within %d ms; deleted list: %s\n", timeout_ms,
                      t ? t : "(none)");
        free(t);
        cJSON_Delete(w.stats);
        fail();
    }
    return w.stats;
}

/* The time (wall ms) of the first successful DELETE azsim logged for the
 * resource of that kind and name, -1 when none. */
static int64_t delete_request_at(rf_t *f, const char *kind, const char *name)
{
    rf_req_t *reqs;
    size_t n = rf_sim_requests(f, 1, &reqs);
    char tail[128];
    snprintf(tail, sizeof tail, "%s/%s", strcmp(kind, G) == 0 ? "/containerGroups" : "/shares",
             name);
    int64_t at = -1;
    for (size_t i = 0; i < n && at < 0; i++) {
        size_t pl = strlen(reqs[i].path), tl = strlen(tail);
        if (strcmp(reqs[i].method, "DELETE") == 0 &&
            (reqs[i].status == 200 || reqs[i].status == 202) && pl >= tl &&
            strcasecmp(reqs[i].path + pl - tl, tail) == 0)
            at = reqs[i].ts_ms;
    }
    free(reqs);
    return at;
}

/* Mutating ARM requests azsim logged on a resource (path ends in /name or
 * continues with /name/...), from log request index `from` on. */
static int mutations_of(const rf_req_t *reqs, size_t n, size_t from, const char *name)
{
    int count = 0;
    char mid[128], tail[128];
    snprintf(mid, sizeof mid, "/%s/", name);
    snprintf(tail, sizeof tail, "/%s", name);
    for (size_t i = from; i < n; i++) {
        if (!rf_req_mutates(&reqs[i]) || strncmp(reqs[i].path, "/_azsim", 7) == 0)
            continue;
        size_t pl = strlen(reqs[i].path), tl = strlen(tail);
        if (strcasestr(reqs[i].path, mid) ||
            (pl >= tl && strcasecmp(reqs[i].path + pl - tl, tail) == 0)) {
            print_message("mutation of %s: %s %s -> %d\n", name, reqs[i].method, reqs[i].path,
                          reqs[i].status);
            count++;
        }
    }
    return count;
}

/* Audit lines of the agent about one resource, and in total. */
static size_t audit_lines(rf_t *f, const char *msg, const char *kind, const char *name)
{
    char *logs = rf_agent_logs(f);
    char k[64], nm[96];
    snprintf(k, sizeof k, "\"kind\":\"%s\"", kind ? kind : "");
    snprintf(nm, sizeof nm, "\"name\":\"%s\"", name ? name : "");
    const char *needles[5] = {"\"audit\":\"reaper\"", msg, NULL, NULL, NULL};
    size_t i = 2;
    if (kind)
        needles[i++] = k;
    if (name)
        needles[i++] = nm;
    size_t n = rf_count_lines(logs, needles);
    free(logs);
    return n;
}

typedef struct audit_wait {
    rf_t *f;
    const char *msg;
    size_t want;
} audit_wait_t;

static int audit_pred(void *ud)
{
    audit_wait_t *w = ud;
    return audit_lines(w->f, w->msg, NULL, NULL) >= w->want;
}

/* --- orphans reaped after grace, not before -------------------------------- */

typedef struct seen_orphan {
    const char *kind;
    const char *id;
    int64_t first_seen;
    int64_t reap_after;
} seen_orphan_t;

typedef struct orphan_watch {
    rf_t *f;
    seen_orphan_t *o;
    size_t n;
    const char *want_blocked; /* blockedBy expected at first sight */
    int bad;
} orphan_watch_t;

/* Records firstSeen/reapAfter of each orphan the first time it is listed,
 * and checks its state then. Done when all were seen. */
static int orphans_seen_pred(void *ud)
{
    orphan_watch_t *w = ud;
    cJSON *j = rf_orphans(w->f);
    size_t seen = 0;
    for (size_t i = 0; i < w->n; i++) {
        seen_orphan_t *o = &w->o[i];
        if (o->first_seen > 0) {
            seen++;
            continue;
        }
        const cJSON *it = rf_orphan(j, o->kind, o->id);
        if (!it)
            continue;
        o->first_seen = rf_parse_time(ta_str(it, "firstSeen"));
        o->reap_after = rf_parse_time(ta_str(it, "reapAfter"));
        const char *state = ta_str(it, "state"), *by = ta_str(it, "blockedBy");
        if (!state || strcmp(state, "Waiting") != 0 || !by || strcmp(by, w->want_blocked) != 0) {
            char *t = cJSON_PrintUnformatted(it);
            print_message("orphan %s %s first listed as %s\n", o->kind, o->id, t);
            free(t);
            w->bad = 1;
        }
        seen++;
    }
    cJSON_Delete(j);
    return seen == w->n;
}

static void test_orphans_reaped_after_grace_not_before(void **state)
{
    rf_t *f = *state;
    start(f, NULL);
    const char *ids[] = {"keep1", "orph1", "orph2"};
    const int reg[] = {0, 0, 1};
    converge(f, ids, reg, 3);

    int64_t t_drop = rf_wall_ms();
    assert_int_equal(rf_sync(f, ids, reg, NULL, NULL, 1), 200); /* keep1 only */

    seen_orphan_t o[] = {
        {G, "orph1", 0, 0}, {S, "orph1", 0, 0}, {G, "orph2", 0, 0}, {S, "orph2", 0, 0}};
    orphan_watch_t w = {f, o, 4, "GracePeriod", 0};
    assert_int_equal(th_wait_until(orphans_seen_pred, &w, 5000), 0);
    assert_false(w.bad);
    for (size_t i = 0; i < 4; i++) {
        int grace = strcmp(o[i].kind, G) == 0 ? f->o.group_grace : f->o.share_grace;
        assert_true(o[i].first_seen >= t_drop / 1000 * 1000);
        assert_int_equal(o[i].reap_after - o[i].first_seen, (int64_t)grace * 1000);
    }
    cJSON *j = rf_orphans(f);
    assert_null(rf_orphan(j, G, "keep1"));
    assert_null(rf_orphan(j, S, "keep1"));
    cJSON_Delete(j);

    const char *kinds[] = {G, S, G, S};
    const char *names[] = {"dev8-orph1", "dev8-orph1", "dev8-orph2", "dev8-orph2"};
    cJSON *stats = wait_deleted(f, kinds, names, 4, 20000);
    for (size_t i = 0; i < 4; i++) {
        /* "at" has second precision, as firstSeen: at >= firstSeen + grace
         * holds for the truncated values too. */
        int64_t at = rf_deleted_at(stats, kinds[i], names[i]);
        if (at < o[i].reap_after)
            print_message("%s %s deleted at %lld before reapAfter %lld\n", kinds[i], names[i],
                          (long long)at, (long long)o[i].reap_after);
        assert_true(at >= o[i].reap_after);
        assert_int_equal(rf_deleted_count(stats, kinds[i], names[i]), 1);
        /* Millisecond check from azsim's log: the DELETE went out no
         * earlier than the drop plus the grace. */
        int grace = strcmp(kinds[i], G) == 0 ? f->o.group_grace : f->o.share_grace;
        int64_t req = delete_request_at(f, kinds[i], names[i]);
        assert_true(req > 0);
        if (req < t_drop + grace * 1000)
            print_message("%s %s: DELETE at %lld, drop at %lld, grace %d s\n", kinds[i], names[i],
                          (long long)req, (long long)t_drop, grace);
        assert_true(req >= t_drop + grace * 1000);
    }
    /* A share goes only after its group is gone. */
    assert_true(delete_request_at(f, S, "dev8-orph1") >= rf_deleted_at(stats, G, "dev8-orph1"));
    assert_true(delete_request_at(f, S, "dev8-orph2") >= rf_deleted_at(stats, G, "dev8-orph2"));
    /* Nothing else was deleted. */
    assert_int_equal(rf_deleted_count(stats, G, NULL), 2);
    assert_int_equal(rf_deleted_count(stats, S, NULL), 2);
    cJSON_Delete(stats);

    /* One audit line per deletion. */
    audit_wait_t aw = {f, "orphan delet", 4};
    th_wait_until(audit_pred, &aw, 3000);
    ta_sleep_ms(300);
    assert_int_equal(audit_lines(f, NULL, NULL, NULL), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(audit_lines(f, "\"controller\":\"" RF_CONTROLLER "\"", kinds[i], names[i]),
                         1);

    cJSON *st = rf_status(f);
    assert_int_equal((int)ta_num(st, "reaper.reaped.containerGroup"), 2);
    assert_int_equal((int)ta_num(st, "reaper.reaped.fileShare"), 2);
    assert_string_equal(ta_str(st, "reaper.state"), "Active");
    cJSON_Delete(st);
    assert_true(rf_metric(f, "dev8_orphans_reaped_total", "kind=\"fileShare\"") == 2);
    assert_true(rf_metric(f, "dev8_orphans_reaped_total", "kind=\"containerGroup\"") == 2);

    const char *keep_phase[] = {"RUNNING"};
    assert_int_equal(rf_wait_phases(f, ids, keep_phase, 1, 5000), 0);
    cJSON *res = rf_sim_get(f, "/_azsim/resources");
    assert_env_resources(res, 0, "keep1", 1);
    assert_null(rf_res_share(res, 0, "dev8-orph1"));
    assert_null(rf_res_share(res, 1, "dev8-orph2"));
    cJSON_Delete(res);
    stop_cleanly(f);
}

/* --- what is not ours, or kept, survives ---------------------------------------- */

typedef struct survivor {
    int group; /* 1 group, 0 share */
    const char *name;
    const char *json; /* tags / metadata, NULL for none */
    cJSON *snap;      /* tags / metadata as read back */
} survivor_t;

static cJSON *labels_of(const cJSON *res, const survivor_t *s)
{
    const cJSON *r = s->group ? rf_res_group(res, 0, s->name) : rf_res_share(res, 0, s->name);
    if (!r)
        return NULL;
    const cJSON *l = ta_path(r, s->group ? "tags" : "properties.metadata");
    return l ? cJSON_Duplicate(l, 1) : cJSON_CreateObject();
}

static void test_foreign_untagged_and_kept_resources_survive(void **state)
{
    rf_t *f = *state;
    start(f, NULL);
    survivor_t sv[] = {
        /* another controller's group and share */
        {1, "dev8-foreign1",
         "{\"dev8-managed-by\":\"dev8-agent\",\"dev8-controller\":\"" RF_OTHER_CONTROLLER
         "\",\"dev8-env-id\":\"foreign1\",\"dev8-user-id\":\"u9\"}",
         NULL},
        {0, "dev8-foreign1",
         "{\"dev8managedby\":\"dev8agent\",\"dev8controller\":\"" RF_OTHER_CONTROLLER
         "\",\"dev8envid\":\"foreign1\"}",
         NULL},
        /* untagged group, share without metadata, both named like ours */
        {1, "dev8-untagged1", NULL, NULL},
        {0, "dev8-nometa1", NULL, NULL},
        /* someone else's resources in the same resource group / account */
        {1, "legacy-app", "{\"team\":\"web\"}", NULL},
        {0, "backups", NULL, NULL},
        /* ours, but dev8-keep=true */
        {1, "dev8-kept1",
         "{\"dev8-managed-by\":\"dev8-agent\",\"dev8-controller\":\"" RF_CONTROLLER
         "\",\"dev8-env-id\":\"kept1\",\"dev8-keep\":\"true\"}",
         NULL},
        {0, "dev8-kept2",
         "{\"dev8managedby\":\"dev8agent\",\"dev8controller\":\"" RF_CONTROLLER
         "\",\"dev8envid\":\"kept2\",\"dev8keep\":\"true\"}",
         NULL},
    };
    const size_t nsv = sizeof sv / sizeof sv[0];
    for (size_t i = 0; i < nsv; i++) {
        long st = sv[i].group ? rf_arm_put_group(f, 0, sv[i].name, sv[i].json)
                              : rf_arm_put_share(f, 0, sv[i].name, sv[i].json);
        if (st != 200 && st != 201)
            print_message("creating %s answered %ld\n", sv[i].name, st);
        assert_true(st == 200 || st == 201);
    }
    /* A true orphan next to them, created the same way: proves the reaper
     * was active while the others survived. */
    assert_true(
        rf_arm_put_share(f, 0, "dev8-gone1",
                         "{\"dev8managedby\":\"dev8agent\",\"dev8controller\":\"" RF_CONTROLLER
                         "\",\"dev8envid\":\"gone1\",\"dev8userid\":\"u1\"}") /
            100 ==
        2);
    assert_true(
        rf_arm_put_group(f, 0, "dev8-gone1",
                         "{\"dev8-managed-by\":\"dev8-agent\",\"dev8-controller\":\"" RF_CONTROLLER
                         "\",\"dev8-env-id\":\"gone1\"}") /
            100 ==
        2);
    ta_sleep_ms(500); /* provisioned */
    cJSON *res = rf_sim_get(f, "/_azsim/resources");
    for (size_t i = 0; i < nsv; i++) {
        sv[i].snap = labels_of(res, &sv[i]);
        assert_non_null(sv[i].snap);
    }
    cJSON_Delete(res);
    rf_req_t *reqs;
    size_t created = rf_sim_requests(f, 1, &reqs);
    free(reqs);

    const char *ids[] = {"live1"};
    const int reg[] = {0};
    int64_t t_sync = rf_wall_ms();
    converge(f, ids, reg, 1);

    const char *kinds[] = {G, S};
    const char *names[] = {"dev8-gone1", "dev8-gone1"};
    cJSON *stats = wait_deleted(f, kinds, names, 2, 20000);
    cJSON_Delete(stats);
    /* Several cycles past every grace. */
    while (rf_wall_ms() < t_sync + 2 * f->o.share_grace * 1000 + 3000)
        ta_sleep_ms(200);

    stats = rf_sim_get(f, "/_azsim/stats");
    res = rf_sim_get(f, "/_azsim/resources");
    size_t n = rf_sim_requests(f, 1, &reqs);
    for (size_t i = 0; i < nsv; i++) {
        const char *kind = sv[i].group ? G : S;
        assert_int_equal(rf_deleted_count(stats, kind, sv[i].name), 0);
        cJSON *now = labels_of(res, &sv[i]);
        if (!now)
            print_message("%s %s is gone\n", kind, sv[i].name);
        assert_non_null(now);
        assert_true(cJSON_Compare(now, sv[i].snap, 1));
        cJSON_Delete(now);
        if (sv[i].group) {
            const cJSON *g = rf_res_group(res, 0, sv[i].name);
            assert_string_equal(ta_str(g, "properties.provisioningState"), "Succeeded");
            assert_string_equal(ta_str(g, "properties.instanceView.state"), "Running");
        }
        assert_int_equal(mutations_of(reqs, n, created, sv[i].name), 0);
    }
    free(reqs);
    /* Only the true orphan was deleted. */
    assert_int_equal(rf_deleted_count(stats, G, NULL), 1);
    assert_int_equal(rf_deleted_count(stats, S, NULL), 1);
    assert_env_resources(res, 0, "live1", 1);
    cJSON_Delete(stats);
    cJSON_Delete(res);

    /* Ours and marked kept: reported as kept. Resources of others (a share
     * without our metadata, or another controller's) are no orphans of
     * ours at all: neither listed nor counted. */
    cJSON *j = rf_orphans(f);
    const char *kept[][2] = {{G, "kept1"}, {S, "kept2"}};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *it = rf_orphan(j, kept[i][0], kept[i][1]);
        if (!it)
            print_message("orphan %s %s not listed\n", kept[i][0], kept[i][1]);
        assert_non_null(it);
        assert_string_equal(ta_str(it, "state"), "Kept");
        assert_string_equal(ta_str(it, "blockedBy"), "Keep");
    }
    assert_null(rf_orphan(j, G, "foreign1"));
    assert_null(rf_orphan(j, S, "foreign1"));
    assert_null(rf_orphan(j, S, "nometa1"));
    assert_null(rf_orphan(j, G, "untagged1"));
    assert_null(rf_orphan(j, G, "gone1"));
    cJSON_Delete(j);
    assert_int_equal(audit_lines(f, NULL, NULL, NULL), 2);
    for (size_t i = 0; i < nsv; i++)
        cJSON_Delete(sv[i].snap);
    stop_cleanly(f);
}

/* --- restart without a full sync -------------------------------------------------- */

static void test_restart_without_full_sync_deletes_nothing(void **state)
{
    rf_t *f = *state;
    start(f, NULL);
    const char *ids[] = {"ra", "rb", "rc"};
    const int reg[] = {0, 1, 0};
    converge(f, ids, reg, 3);

    int stop_status = -1;
    assert_int_equal(rf_agent_restart(f, SIGTERM, &stop_status), 0);
    assert_int_equal(stop_status, 0);
    assert_int_equal(rf_wait_listed(f, 15000), 0);
    int64_t t_restart = rf_wall_ms();

    /* However long it runs: several graces of both kinds. */
    int checks = 0;
    while (rf_wall_ms() < t_restart + 2 * f->o.share_grace * 1000 + 2000) {
        cJSON *st = rf_status(f);
        assert_non_null(st);
        assert_string_equal(ta_str(st, "reaper.state"), "WaitingForFullSync");
        assert_false(cJSON_IsTrue(ta_path(st, "reaper.authoritative")));
        cJSON_Delete(st);
        cJSON *j = rf_orphans(f);
        size_t listed = 0;
        for (size_t i = 0; i < 3; i++) {
            const char *kinds[] = {G, S};
            for (size_t k = 0; k < 2; k++) {
                const cJSON *it = rf_orphan(j, kinds[k], ids[i]);
                if (!it)
                    continue;
                listed++;
                assert_string_equal(ta_str(it, "state"), "Waiting");
                assert_string_equal(ta_str(it, "blockedBy"), "NotAuthoritative");
            }
        }
        cJSON_Delete(j);
        if (rf_wall_ms() > t_restart + 2000)
            assert_int_equal(listed, 6); /* every resource is reported */
        cJSON *stats = rf_sim_get(f, "/_azsim/stats");
        assert_int_equal(rf_deleted_count(stats, G, NULL), 0);
        assert_int_equal(rf_deleted_count(stats, S, NULL), 0);
        cJSON_Delete(stats);
        checks++;
        ta_sleep_ms(250);
    }
    assert_true(checks > 10);
    /* Not one DELETE went to azsim. */
    rf_req_t *reqs;
    size_t n = rf_sim_requests(f, 1, &reqs);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(reqs[i].method, "DELETE");
    free(reqs);

    /* The full sync drops rc: only rc's resources go, after their grace
     * counted from the sync (not from the restart). */
    int64_t t_sync = rf_wall_ms();
    assert_int_equal(rf_sync(f, ids, reg, NULL, NULL, 2), 200);
    cJSON *st = rf_status(f);
    assert_string_equal(ta_str(st, "reaper.state"), "Active");
    cJSON_Delete(st);
    const char *kinds[] = {G, S};
    const char *names[] = {"dev8-rc", "dev8-rc"};
    cJSON *stats = wait_deleted(f, kinds, names, 2, 20000);
    int64_t g_req = delete_request_at(f, G, "dev8-rc"), s_req = delete_request_at(f, S, "dev8-rc");
    if (g_req < t_sync + f->o.group_grace * 1000 || s_req < t_sync + f->o.share_grace * 1000)
        print_message("rc deleted too early: group %lld share %lld, sync at %lld\n",
                      (long long)(g_req - t_sync), (long long)(s_req - t_sync), (long long)t_sync);
    assert_true(g_req >= t_sync + f->o.group_grace * 1000);
    assert_true(s_req >= t_sync + f->o.share_grace * 1000);
    ta_sleep_ms(1500);
    cJSON_Delete(stats);
    stats = rf_sim_get(f, "/_azsim/stats");
    assert_int_equal(rf_deleted_count(stats, G, NULL), 1);
    assert_int_equal(rf_deleted_count(stats, S, NULL), 1);
    cJSON_Delete(stats);
    const char *phases[] = {"RUNNING", "RUNNING"};
    assert_int_equal(rf_wait_phases(f, ids, phases, 2, 10000), 0);
    cJSON *res = rf_sim_get(f, "/_azsim/resources");
    assert_env_resources(res, 0, "ra", 1);
    assert_env_resources(res, 1, "rb", 1);
    cJSON_Delete(res);
    stop_cleanly(f);
}

/* --- the orphan-fraction guard ---------------------------------------------------------- */

static int suspended_pred(void *ud)
{
    rf_t *f = ud;
    cJSON *st = rf_status(f);
    int s = cJSON_IsTrue(ta_path(st, "reaper.suspended"));
    cJSON_Delete(st);
    return s;
}

static void test_mass_drop_suspends_until_resume(void **state)
{
    rf_t *f = *state;
    rf_opts_t o = {.max_fraction = 0.5};
    start(f, &o);
    const char *ids[] = {"m1", "m2", "m3", "m4"};
    const int reg[] = {0, 0, 1, 1};
    converge(f, ids, reg, 4);

    int64_t t_drop = rf_wall_ms();
    assert_int_equal(rf_sync(f, ids, reg, NULL, NULL, 1), 200); /* 6 of 8 orphaned */
    assert_int_equal(th_wait_until(suspended_pred, f, 5000), 0);
    cJSON *st = rf_status(f);
    assert_string_equal(ta_str(st, "reaper.state"), "Suspended");
    assert_non_null(ta_str(st, "reaper.suspendedReason"));
    cJSON_Delete(st);
    assert_true(rf_metric(f, "dev8_reaper_suspended", NULL) == 1);

    /* Well past every grace: nothing goes. */
    while (rf_wall_ms() < t_drop + f->o.share_grace * 1000 + 3000) {
        cJSON *stats = rf_sim_get(f, "/_azsim/stats");
        assert_int_equal(rf_deleted_count(stats, G, NULL) + rf_deleted_count(stats, S, NULL), 0);
        cJSON_Delete(stats);
        ta_sleep_ms(250);
    }
    cJSON *j = rf_orphans(f);
    for (size_t i = 1; i < 4; i++) {
        const cJSON *it = rf_orphan(j, G, ids[i]);
        assert_non_null(it);
        assert_string_equal(ta_str(it, "blockedBy"), "Suspended");
        it = rf_orphan(j, S, ids[i]);
        assert_non_null(it);
        assert_string_equal(ta_str(it, "blockedBy"), "Suspended");
    }
    cJSON_Delete(j);
    assert_true(suspended_pred(f));

    cJSON *ans = NULL;
    assert_int_equal(rf_api(f, "POST", "/api/v1/reaper/resume", NULL, &ans), 200);
    assert_true(cJSON_IsTrue(ta_path(ans, "resumed")));
    cJSON_Delete(ans);
    st = rf_status(f);
    assert_false(cJSON_IsTrue(ta_path(st, "reaper.suspended")));
    cJSON_Delete(st);
    assert_true(rf_metric(f, "dev8_reaper_suspended", NULL) == 0);

    const char *kinds[] = {G, S, G, S, G, S};
    const char *names[] = {"dev8-m2", "dev8-m2", "dev8-m3", "dev8-m3", "dev8-m4", "dev8-m4"};
    cJSON *stats = wait_deleted(f, kinds, names, 6, 20000);
    assert_int_equal(rf_deleted_count(stats, G, "dev8-m1"), 0);
    assert_int_equal(rf_deleted_count(stats, S, "dev8-m1"), 0);
    cJSON_Delete(stats);
    /* Deleting what was acknowledged does not suspend it again. */
    assert_false(suspended_pred(f));
    cJSON *res = rf_sim_get(f, "/_azsim/resources");
    assert_env_resources(res, 0, "m1", 1);
    cJSON_Delete(res);

    /* The acknowledgement covered those orphans only: a later sync that
     * drops most environments again suspends the reaper again. */
    const char *ids2[] = {"m1", "m5", "m6", "m7"};
    converge(f, ids2, reg, 4);
    ta_sleep_ms(1500); /* a few cycles with no orphans */
    assert_false(suspended_pred(f));
    int64_t t_drop2 = rf_wall_ms();
    assert_int_equal(rf_sync(f, ids2, reg, NULL, NULL, 1), 200);
    if (th_wait_until(suspended_pred, f, 5000) != 0)
        print_message("a second mass drop did not suspend the reaper\n");
    assert_true(suspended_pred(f));
    while (rf_wall_ms() < t_drop2 + f->o.share_grace * 1000 + 2000) {
        stats = rf_sim_get(f, "/_azsim/stats");
        for (size_t i = 1; i < 4; i++) {
            assert_int_equal(rf_deleted_count(stats, G, name_of(ids2[i])), 0);
            assert_int_equal(rf_deleted_count(stats, S, name_of(ids2[i])), 0);
        }
        cJSON_Delete(stats);
        ta_sleep_ms(250);
    }
    stop_cleanly(f);
}

/* --- dry run --------------------------------------------------------------------------------- */

typedef struct dry_wait {
    rf_t *f;
    const char *const *ids;
    size_t n;
} dry_wait_t;

static int all_dry_run_pred(void *ud)
{
    dry_wait_t *w = ud;
    cJSON *j = rf_orphans(w->f);
    int ok = 1;
    for (size_t i = 0; i < w->n && ok; i++) {
        const char *kinds[] = {G, S};
        for (size_t k = 0; k < 2 && ok; k++) {
            const cJSON *it = rf_orphan(j, kinds[k], w->ids[i]);
            const char *by = ta_str(it, "blockedBy");
            ok = it && by && strcmp(by, "DryRun") == 0;
        }
    }
    cJSON_Delete(j);
    return ok;
}

static void test_dry_run_deletes_nothing_and_reports_everything(void **state)
{
    rf_t *f = *state;
    rf_opts_t o = {.dry_run = 1};
    start(f, &o);
    const char *ids[] = {"dkeep", "d1", "d2"};
    const int reg[] = {0, 0, 1};
    converge(f, ids, reg, 3);
    int64_t t_drop = rf_wall_ms();
    assert_int_equal(rf_sync(f, ids, reg, NULL, NULL, 1), 200);
    cJSON *st = rf_status(f);
    assert_string_equal(ta_str(st, "reaper.state"), "DryRun");
    assert_true(cJSON_IsTrue(ta_path(st, "reaper.dryRun")));
    cJSON_Delete(st);

    dry_wait_t w = {f, ids + 1, 2};
    assert_int_equal(th_wait_until(all_dry_run_pred, &w, 15000), 0);
    /* A few more cycles. */
    while (rf_wall_ms() < t_drop + f->o.share_grace * 1000 + 3000)
        ta_sleep_ms(200);
    cJSON *stats = rf_sim_get(f, "/_azsim/stats");
    assert_int_equal(rf_deleted_count(stats, G, NULL) + rf_deleted_count(stats, S, NULL), 0);
    cJSON_Delete(stats);
    rf_req_t *reqs;
    size_t n = rf_sim_requests(f, 1, &reqs);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(reqs[i].method, "DELETE");
    free(reqs);
    cJSON *res = rf_sim_get(f, "/_azsim/resources");
    assert_env_resources(res, 0, "d1", 1);
    assert_env_resources(res, 1, "d2", 1);
    cJSON_Delete(res);
    assert_true(all_dry_run_pred(&w));

    /* One "would be deleted" audit line per orphan, and no other. */
    const char *kinds[] = {G, S};
    for (size_t i = 1; i < 3; i++)
        for (size_t k = 0; k < 2; k++)
            assert_int_equal(
                audit_lines(f, "would be deleted (dry run)", kinds[k], name_of(ids[i])), 1);
    assert_int_equal(audit_lines(f, "would be deleted (dry run)", NULL, NULL), 4);
    assert_int_equal(audit_lines(f, "\"dry_run\":true", NULL, NULL), 4);
    assert_int_equal(audit_lines(f, NULL, NULL, NULL), 4);
    cJSON *ors = rf_orphans(f);
    assert_int_equal(cJSON_GetArraySize(ta_path(ors, "items")), 4);
    cJSON_Delete(ors);
    /* The removed environment's events name the reaper's decisions. */
    cJSON *ev = NULL;
    assert_int_equal(rf_api(f, "GET", "/api/v1/environments/d1/events", NULL, &ev), 200);
    int reaped = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, ta_path(ev, "items"))
    {
        if (strcmp(ta_str(it, "reason"), "Reaped") == 0) {
            assert_string_equal(ta_str(it, "source"), "reaper");
            assert_non_null(strstr(ta_str(it, "message"), "would be deleted (dry run) dev8-d1"));
            reaped++;
        }
    }
    cJSON_Delete(ev);
    assert_int_equal(reaped, 2); /* its group and its share */
    stop_cleanly(f);
}

/* --- maxDeletesPerCycle ------------------------------------------------------------------------
 */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_max_deletes_per_cycle_bounds_deletions(void **state)
{
    rf_t *f = *state;
    rf_opts_t o = {.max_deletes = 1, .share_grace = 2};
    start(f, &o);
    const char *ids[] = {"bk", "b1", "b2", "b3", "b4"};
    const int reg[] = {0, 0, 0, 1, 1};
    converge(f, ids, reg, 5);
    assert_int_equal(rf_sync(f, ids, reg, NULL, NULL, 1), 200);

    const char *kinds[] = {G, S, G, S, G, S, G, S};
    const char *names[] = {"dev8-b1", "dev8-b1", "dev8-b2", "dev8-b2",
                           "dev8-b3", "dev8-b3", "dev8-b4", "dev8-b4"};
    cJSON *stats = wait_deleted(f, kinds, names, 8, 30000);
    cJSON_Delete(stats);
    int64_t at[8];
    for (size_t i = 0; i < 8; i++) {
        at[i] = delete_request_at(f, kinds[i], names[i]);
        assert_true(at[i] > 0);
    }
    qsort(at, 8, sizeof at[0], cmp_i64);
    /* One deletion per cycle of 1 s: consecutive DELETEs are most of a
     * cycle apart (slack for timer and request latency). */
    for (size_t i = 1; i < 8; i++) {
        if (at[i] - at[i - 1] < 300)
            print_message("DELETEs %zu and %zu only %lld ms apart\n", i - 1, i,
                          (long long)(at[i] - at[i - 1]));
        assert_true(at[i] - at[i - 1] >= 300);
    }
    assert_true(at[7] - at[0] >= 7 * 700);
    cJSON *res = rf_sim_get(f, "/_azsim/resources");
    assert_env_resources(res, 0, "bk", 1);
    cJSON_Delete(res);
    stop_cleanly(f);
}

/* --- an orphan desired again in between gets its grace anew -------------------------------------
 */

static void test_redesired_orphan_gets_full_grace_again(void **state)
{
    rf_t *f = *state;
    start(f, NULL);
    const char *ids[] = {"xk", "x1"};
    const int reg[] = {0, 0};
    const int running[] = {1, 0}; /* x1 is stopped: a share only */
    assert_int_equal(rf_sync(f, ids, reg, running, NULL, 2), 200);
    const char *phases[] = {"RUNNING", "STOPPED"};
    assert_int_equal(rf_wait_phases(f, ids, phases, 2, 30000), 0);

    /* x1 leaves the desired set; most of its grace passes... */
    assert_int_equal(rf_sync(f, ids, reg, running, NULL, 1), 200);
    seen_orphan_t o[] = {{S, "x1", 0, 0}};
    orphan_watch_t w = {f, o, 1, "GracePeriod", 0};
    assert_int_equal(th_wait_until(orphans_seen_pred, &w, 5000), 0);
    while (rf_wall_ms() < o[0].reap_after - 1200)
        ta_sleep_ms(50);
    /* ...then it is desired again and, at once, dropped again (both
     * within one reaper cycle): its grace starts over. */
    assert_int_equal(rf_sync(f, ids, reg, running, NULL, 2), 200);
    int64_t t_drop2 = rf_wall_ms();
    assert_int_equal(rf_sync(f, ids, reg, running, NULL, 1), 200);

    const char *kinds[] = {S};
    const char *names[] = {"dev8-x1"};
    cJSON *stats = wait_deleted(f, kinds, names, 1, 20000);
    cJSON_Delete(stats);
    int64_t req = delete_request_at(f, S, "dev8-x1");
    if (req < t_drop2 + f->o.share_grace * 1000)
        print_message("dev8-x1 deleted %lld ms after it was dropped again (grace %d s)\n",
                      (long long)(req - t_drop2), f->o.share_grace);
    assert_true(req >= t_drop2 + f->o.share_grace * 1000);
    stop_cleanly(f);
}

/* --- known race: a PUT while the reaper's DELETE is on the wire ------------------------------- */

typedef struct log_wait {
    rf_t *f;
    const char *const *needles;
} log_wait_t;

static int log_line_pred(void *ud)
{
    log_wait_t *w = ud;
    char *logs = rf_agent_logs(w->f);
    size_t n = rf_count_lines(logs, w->needles);
    free(logs);
    return n > 0;
}

/*
 * Invariant 2 says a share of a desired environment is never deleted. The
 * reaper checks the desired set right before it sends the DELETE, but a
 * DELETE that is slow to land (ARM latency; client retries) leaves a
 * window. The API closes it: while the reaper deletes a resource of an id,
 * a PUT that would make the id desired is answered 409 with Retry-After,
 * so no PUT is acknowledged before the deletion landed. A 1.5 s ARM
 * latency makes the window wide enough to hit every time.
 */
static void test_put_during_reaper_delete_in_flight(void **state)
{
    rf_t *f = *state;
    rf_opts_t o = {.share_grace = 2};
    start(f, &o);
    const char *ids[] = {"zk", "z1"};
    const int reg[] = {0, 0};
    const int running[] = {1, 0};
    assert_int_equal(rf_sync(f, ids, reg, running, NULL, 2), 200);
    const char *phases[] = {"RUNNING", "STOPPED"};
    assert_int_equal(rf_wait_phases(f, ids, phases, 2, 30000), 0);
    assert_int_equal(rf_faults(f, "{\"latencyMs\":1500}"), 0);
    assert_int_equal(rf_sync(f, ids, reg, running, NULL, 1), 200);
    const char *needles[] = {"\"msg\":\"deleting orphan\"", "\"env_id\":\"z1\"", NULL};
    log_wait_t lw = {f, needles};
    assert_int_equal(th_wait_until(log_line_pred, &lw, 20000), 0);
    /* The DELETE is on its way: the backend wants z1 again. It is told to
     * come back, and is acknowledged only once the deletion landed. */
    long st = rf_put(f, "z1", 0, 0, 0);
    int refused = 0;
    for (int i = 0; i < 100 && st == 409; i++) {
        refused++;
        ta_sleep_ms(200);
        st = rf_put(f, "z1", 0, 0, 0);
    }
    int64_t t_put = rf_wall_ms();
    assert_true(st == 200 || st == 201);
    assert_true(refused > 0);
    ta_sleep_ms(3000);
    int64_t at = delete_request_at(f, S, "dev8-z1");
    if (at > t_put)
        print_message("share dev8-z1 deleted %lld ms after the PUT that made z1 desired was "
                      "acknowledged\n",
                      (long long)(at - t_put));
    assert_false(at > t_put);
    assert_int_equal(rf_faults(f, "{\"latencyMs\":0}"), 0);
    stop_cleanly(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_orphans_reaped_after_grace_not_before),
        T(test_foreign_untagged_and_kept_resources_survive),
        T(test_restart_without_full_sync_deletes_nothing),
        T(test_mass_drop_suspends_until_resume),
        T(test_dry_run_deletes_nothing_and_reports_everything),
        T(test_max_deletes_per_cycle_bounds_deletions),
        T(test_redesired_orphan_gets_full_grace_again),
        T(test_put_during_reaper_delete_in_flight),
#undef T
    };
    /* D8_TEST_FILTER=pattern runs only the matching tests. */
    const char *filter = getenv("D8_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("reaper", tests, NULL, NULL);
}
