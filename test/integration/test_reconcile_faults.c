/*
 * End-to-end tests of the reconcile loop under faults (DESIGN.md sections
 * 5 and 8): failed provisioning, 429 storms with 5xx, and kill -9 of the
 * agent in the middle of creations (invariant 4). The real bin/dev8-agent
 * against the real bin/azsim, fresh for each test; assertions on both the
 * agent's API and azsim's /_azsim/resources and /_azsim/stats. Each test
 * ends by stopping both with SIGTERM and requiring exit status 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "rc_steps.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_PATH "/api/v1/environments"
#define T_CONVERGE 15000

static void put_env(ta_rc_t *c, const char *id, const char *extra, long want)
{
    char *body = ta_spec("u-7", "workspace", "eastus", extra);
    long st = ta_put(&c->agent, id, body);
    free(body);
    if (st != want)
        print_message("PUT %s answered %ld, wanted %ld\n", id, st, want);
    assert_int_equal(st, want);
}

/* Requests of every operation answered with that status. */
static long stat_all(const cJSON *stats, const char *status)
{
    long n = 0;
    const cJSON *op;
    cJSON_ArrayForEach(op, ta_path(stats, "requests"))
    {
        n += ta_sim_stat(stats, op->string, status);
    }
    return n;
}

/* ---- 7. failed provisioning -> ERROR with Azure's message, then recovery ------- */

/* Times (test clock) at which azsim's count of an operation went up. */
typedef struct op_times {
    long n;
    long long at[16];
} op_times_t;

static void note(op_times_t *t, long n, long long now)
{
    while (t->n < n && t->n < 16)
        t->at[t->n++] = now;
}

static void test_failed_provisioning_then_recovery(void **state)
{
    ta_rc_t *c = ctx(state);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"failProvisioningRate\":1}"), 0);
    put_env(c, "rf-fail", NULL, 201);

    /* Watch both sides: when the agent reported each failure (phase
     * ERROR, pushed on the watch stream) and when azsim saw each create
     * and each delete, until the third retry's delete. */
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, &c->agent, "/api/v1/watch", NULL), 0);
    op_times_t creates = {0, {0}}, deletes = {0, {0}}, errors = {0, {0}};
    cJSON *err = NULL;
    int left_error = 0; /* phases other than ERROR seen after the first failure */
    size_t seen = 0;
    long long deadline = ta_now_ms() + 25000;
    while (deletes.n < 3 && ta_now_ms() < deadline) {
        ta_watch_drain(&w, 25);
        long long now = ta_now_ms();
        for (; seen < w.nevents; seen++) {
            cJSON *d = cJSON_Parse(w.events[seen].data);
            const char *id = ta_str(d, "id");
            if (id && strcmp(id, "rf-fail") == 0) {
                int e = ta_is_phase(d, "ERROR");
                /* Each failure is reported with its attempt count and the
                 * time of the next attempt; the phase stays ERROR between. */
                const cJSON *next = ta_path(d, "status.retry.nextAttemptTime");
                long attempts = (long)ta_num(d, "status.retry.attempts");
                if (e && next && cJSON_IsString(next) && attempts > errors.n)
                    note(&errors, attempts, now);
                if (!e && errors.n > 0)
                    left_error++;
                if (e && !err) {
                    err = d;
                    d = NULL;
                }
            }
            cJSON_Delete(d);
        }
        cJSON *st = sim_get(c, "/_azsim/stats");
        now = ta_now_ms();
        note(&creates, ta_sim_stat(st, "containerGroups.createOrUpdate", NULL), now);
        note(&deletes, ta_sim_stat(st, "containerGroups.delete", NULL), now);
        cJSON_Delete(st);
    }
    ta_watch_close(&w);
    assert_non_null(err);
    /* Azure's own message (ACI's FailedMount event), not a generic one. */
    const char *msg = ta_str(err, "status.lastError.message");
    assert_non_null(msg);
    print_message("lastError: %s: %s\n", ta_str(err, "status.lastError.code"), msg);
    assert_non_null(strstr(msg, "mount error(13): Permission denied"));
    assert_non_null(ta_str(err, "status.lastError.code"));
    assert_string_equal(cond_field(err, "Ready", "status"), "False");
    assert_string_equal(cond_field(err, "Ready", "reason"), "Failed");
    assert_string_equal(cond_field(err, "Synced", "status"), "False");
    assert_non_null(strstr(cond_field(err, "Synced", "message"), "Permission denied"));
    cJSON_Delete(err);

    /* Retried (delete, then create) after a backoff that starts at 1 s and
     * grows with each failure: the third failure is held clearly longer
     * than the first, however often resyncs and status refreshes come by. */
    assert_int_equal(deletes.n, 3);
    assert_true(creates.n >= 3);
    assert_true(errors.n >= 3);
    /* Retries never flap ERROR -> CREATING -> ERROR. */
    assert_int_equal(left_error, 0);
    long long held[3];
    for (int k = 0; k < 3; k++)
        held[k] = deletes.at[k] - errors.at[k];
    print_message("failed group kept %lld, %lld, %lld ms after each ERROR before the retry\n",
                  held[0], held[1], held[2]);
    assert_true(held[0] >= 0 && held[0] < 1600);
    assert_true(held[2] >= 1700);
    cJSON *res = sim_get(c, "/_azsim/resources");
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "containerGroups")) <= 1, 1);
    cJSON_Delete(res);

    /* The fault clears: the next retry succeeds. */
    assert_int_equal(ta_sim_faults(&c->sim, "{\"failProvisioningRate\":0}"), 0);
    long long t0 = ta_now_ms();
    cJSON *o = wait_phase(c, "rf-fail", "RUNNING", 20000);
    print_message("recovered %lld ms after the fault cleared\n", ta_now_ms() - t0);
    assert_true(cJSON_IsNull(ta_path(o, "status.lastError")));
    assert_string_equal(cond_field(o, "Ready", "status"), "True");
    assert_string_equal(cond_field(o, "Synced", "status"), "True");
    cJSON_Delete(o);
    res = sim_get(c, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, "dev8-rf-fail");
    assert_non_null(g);
    assert_string_equal(ta_str(g, "properties.provisioningState"), "Succeeded");
    assert_string_equal(ta_str(g, "properties.instanceView.state"), "Running");
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "containerGroups")), 1);
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "fileShares")), 1);
    cJSON_Delete(res);
    cJSON *st = sim_get(c, "/_azsim/stats");
    /* The share is never part of the retry. */
    assert_int_equal(ta_sim_deleted(st, "fileShare", NULL), 0);
    assert_int_equal(ta_sim_stat(st, "fileShares.create", NULL), 1);
    cJSON_Delete(st);
    both_exit_cleanly(state);
}

/* ---- 8. 429 storms and 5xx: still converges ---------------------------------- */

#define NSTORM 5

static int all_running(ta_rc_t *c, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s-%02d", prefix, i);
        cJSON *o = ta_env_get(&c->agent, id, NULL);
        int ok = ta_is_phase(o, "RUNNING") &&
                 ta_num(o, "status.observedGeneration") == ta_num(o, "generation");
        cJSON_Delete(o);
        if (!ok)
            return 0;
    }
    return 1;
}

typedef struct all_ctx {
    ta_rc_t *c;
    const char *prefix;
    int n;
} all_ctx_t;

static int all_running_pred(void *ud)
{
    all_ctx_t *a = ud;
    return all_running(a->c, a->prefix, a->n);
}

/* Exactly one group (running, ours) and one share per env, nothing else. */
static void assert_exactly_one_each(ta_rc_t *c, const char *prefix, int n)
{
    cJSON *res = sim_get(c, "/_azsim/resources");
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "containerGroups")), n);
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "fileShares")), n);
    for (int i = 0; i < n; i++) {
        char id[32], name[40];
        snprintf(id, sizeof id, "%s-%02d", prefix, i);
        snprintf(name, sizeof name, "dev8-%s", id);
        const cJSON *g = ta_sim_group(res, name);
        if (!g)
            fail_msg("no container group %s", name);
        assert_string_equal(ta_str(g, "tags.dev8-env-id"), id);
        assert_string_equal(ta_str(g, "tags.dev8-controller"), TA_RC_CONTROLLER);
        assert_string_equal(ta_str(g, "properties.provisioningState"), "Succeeded");
        assert_string_equal(ta_str(g, "properties.instanceView.state"), "Running");
        const cJSON *s = ta_sim_share(res, name);
        if (!s)
            fail_msg("no file share %s", name);
        assert_string_equal(ta_str(s, "properties.metadata.dev8envid"), id);
    }
    cJSON_Delete(res);
}

static void test_throttling_storm_still_converges(void **state)
{
    ta_rc_t *c = ctx(state);
    /* The token was obtained at start-up (the fixture waited for /readyz). */
    assert_int_equal(ta_sim_faults(&c->sim, "{\"rate429\":0.5,\"rate500\":0.05,\"rate503\":0.05,"
                                            "\"retryAfterSeconds\":1}"),
                     0);
    long long t0 = ta_now_ms();
    for (int i = 0; i < NSTORM; i++) {
        char id[32];
        snprintf(id, sizeof id, "rf-storm-%02d", i);
        put_env(c, id, "\"secretEnv\":{\"T\":\"x\"}", 201);
    }
    all_ctx_t a = {c, "rf-storm", NSTORM};
    int rc = th_wait_until(all_running_pred, &a, 45000);
    print_message("%d environments converged in %lld ms under the storm\n", NSTORM,
                  ta_now_ms() - t0);
    if (rc != 0) {
        cJSON *st = ta_sim_get(&c->sim, "/_azsim/stats");
        char *t = cJSON_PrintUnformatted(st);
        print_message("stats: %s\n", t);
        free(t);
        cJSON_Delete(st);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"rate429\":0,\"rate500\":0,\"rate503\":0}"), 0);

    assert_exactly_one_each(c, "rf-storm", NSTORM);
    cJSON *st = sim_get(c, "/_azsim/stats");
    long n429 = stat_all(st, "429"), n500 = stat_all(st, "500"), n503 = stat_all(st, "503");
    print_message("azsim answered 429 x%ld, 500 x%ld, 503 x%ld\n", n429, n500, n503);
    assert_true(n429 >= 10);
    assert_true(n500 + n503 >= 1);
    /* Retries did not duplicate or destroy anything. */
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", "201"), NSTORM);
    assert_int_equal(ta_sim_stat(st, "fileShares.create", "201"), NSTORM);
    assert_int_equal(cJSON_GetArraySize(ta_path(st, "deleted")), 0);
    cJSON_Delete(st);

    /* The agent saw the throttling and says so. */
    th_resp_t r;
    ta_req(&c->agent, "GET", "/api/v1/status", NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *s = ta_json(&r);
    th_resp_free(&r);
    assert_true(ta_num(s, "throttle.throttled429") >= 1);
    cJSON_Delete(s);
    both_exit_cleanly(state);
}

/* ---- 9. kill -9 in the middle of creations (invariant 4) ------------------------ */

#define NKILL 20

static char *full_sync_body(void)
{
    size_t cap = 64 + NKILL * 256, len = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    len += (size_t)snprintf(b + len, cap - len, "{\"items\":[");
    for (int i = 0; i < NKILL; i++) {
        len += (size_t)snprintf(b + len, cap - len,
                                "%s{\"id\":\"rf-kill-%02d\",\"userId\":\"u-7\",\"name\":\"w\","
                                "\"cloudRegion\":\"eastus\",\"cpuCores\":%s%s}",
                                i ? "," : "", i, i % 2 ? "1" : "0.5",
                                i % 3 == 0 ? ",\"secretEnv\":{\"TOKEN\":\"s3cr3t\"}" : "");
    }
    snprintf(b + len, cap - len, "]}");
    return b;
}

static void full_sync(ta_rc_t *c, const char *body, long want_created)
{
    th_resp_t r;
    ta_req(&c->agent, "PUT", ENV_PATH, body, &r);
    if (r.status != 200)
        print_message("full sync answered %ld: %s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    cJSON *j = ta_json(&r);
    th_resp_free(&r);
    assert_int_equal((int)ta_num(j, "created"), want_created);
    cJSON_Delete(j);
}

static void kill_and_restart(ta_rc_t *c)
{
    int st = 0;
    assert_int_equal(ta_restart_sig(&c->agent, SIGKILL, &st), 0);
    assert_int_equal(st, 128 + SIGKILL);
    assert_int_equal(ta_wait_ready(&c->agent, 10000), 0);
}

static void test_kill9_mid_creation_converges_without_duplicates(void **state)
{
    ta_rc_t *c = ctx(state);
    char *body = full_sync_body();
    /* Azure answers slowly (100..400 ms), so that the kills land while
     * share and group PUTs are in flight. */
    assert_int_equal(ta_sim_faults(&c->sim, "{\"latencyMs\":100,\"jitterMs\":300}"), 0);
    /* Created one by one, as the backend would; killed ~300 ms later. */
    cJSON *items = cJSON_Parse(body);
    const cJSON *it;
    cJSON_ArrayForEach(it, ta_path(items, "items"))
    {
        char path[128];
        snprintf(path, sizeof path, ENV_PATH "/%s", ta_str(it, "id"));
        char *one = cJSON_PrintUnformatted(it);
        th_resp_t r;
        ta_req(&c->agent, "PUT", path, one, &r);
        assert_int_equal(r.status, 201);
        th_resp_free(&r);
        free(one);
    }
    cJSON_Delete(items);
    /* Killed 300 ms after the PUTs, then twice more while the re-sent
     * set is being created (later each time, so more is in flight). */
    static const int kill_after_ms[] = {300, 900, 1500};
    for (size_t k = 0; k < sizeof kill_after_ms / sizeof kill_after_ms[0]; k++) {
        ta_sleep_ms(kill_after_ms[k]);
        cJSON *res = sim_get(c, "/_azsim/resources");
        cJSON *st = sim_get(c, "/_azsim/stats");
        print_message("kill -9 #%zu: azsim holds %d groups, %d shares (%ld group PUTs so far)\n",
                      k + 1, cJSON_GetArraySize(ta_path(res, "containerGroups")),
                      cJSON_GetArraySize(ta_path(res, "fileShares")),
                      ta_sim_stat(st, "containerGroups.createOrUpdate", NULL));
        cJSON_Delete(st);
        cJSON_Delete(res);
        kill_and_restart(c);
        /* The desired state was in memory only: the backend re-sends it. */
        full_sync(c, body, NKILL);
    }
    free(body);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"latencyMs\":0,\"jitterMs\":0}"), 0);

    long long t0 = ta_now_ms();
    all_ctx_t a = {c, "rf-kill", NKILL};
    assert_int_equal(th_wait_until(all_running_pred, &a, 30000), 0);
    print_message("%d environments converged %lld ms after the last restart\n", NKILL,
                  ta_now_ms() - t0);

    /* Same end state as without the crashes: one group and one share per
     * env, nothing recreated (the spec hash survives restarts), nothing
     * deleted, nothing else. */
    assert_exactly_one_each(c, "rf-kill", NKILL);
    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", "201"), NKILL);
    assert_int_equal(ta_sim_stat(st, "fileShares.create", "201"), NKILL);
    assert_int_equal(ta_sim_stat(st, "containerGroups.delete", NULL), 0);
    assert_int_equal(cJSON_GetArraySize(ta_path(st, "deleted")), 0);
    cJSON_Delete(st);

    /* The agent sees no orphans. */
    th_resp_t r;
    ta_req(&c->agent, "GET", "/api/v1/orphans", NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *o = ta_json(&r);
    th_resp_free(&r);
    assert_int_equal(cJSON_GetArraySize(ta_path(o, "items")), 0);
    cJSON_Delete(o);
    both_exit_cleanly(state);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ta_rc_setup, ta_rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_failed_provisioning_then_recovery),
        T(test_throttling_storm_still_converges),
        T(test_kill9_mid_creation_converges_without_duplicates),
    };
#undef T
    return cmocka_run_group_tests_name("reconcile_faults", tests, NULL, NULL);
}
