/*
 * End-to-end tests of the reconcile loop against Azure's documented
 * behaviours (research notes items 1-5 and 9, modelled by azsim and
 * switched on per test through POST /_azsim/aci and /_azsim/faults):
 * workspaces that exit, ContainerGroupTransitioning, capacity, long image
 * pulls, inaccessible images, a failed stop, and a DNS label held by a
 * foreign group. The real bin/dev8-agent against the real bin/azsim,
 * fresh for each test; every test bounds the ARM calls the controller
 * makes (azsim's /_azsim/stats) as well as checking where it converges.
 *
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "rc_steps.h"

#include <math.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENV_PATH "/api/v1/environments"
#define T_CONVERGE 15000

/* azsim with fast timing and an agent with resync and status refresh of
 * resync_s and refresh_s seconds (the reconcile fixture's, but tunable). */
static int start_pair(ta_rc_t *c, int resync_s, int refresh_s)
{
    static const char *const sim_args[] = {"--provision-ms",      "300", "--delete-ms", "200",
                                           "--share-recreate-ms", "500", NULL};
    memset(c, 0, sizeof *c);
    if (ta_sim_start(&c->sim, sim_args) != 0)
        return -1;
    char extra[256];
    snprintf(extra, sizeof extra, "workspace:\n  ports: [%d]\n  mountPath: %s\n", TA_RC_PORT,
             TA_RC_MOUNT);
    ta_opts_t o = {.azsim_port = c->sim.port,
                   .resync_seconds = resync_s,
                   .status_refresh_seconds = refresh_s,
                   .shutdown_grace_seconds = 5,
                   .extra_yaml = extra};
    if (ta_start(&c->agent, &o) != 0)
        return -1;
    return ta_wait_ready(&c->agent, 10000);
}

/* The reconcile fixture's timing: resync 3 s, status refresh 4 s. */
static int setup_fast(void **state)
{
    ta_rc_t *c = calloc(1, sizeof *c);
    if (!c || start_pair(c, TA_RC_RESYNC_S, TA_RC_REFRESH_S) != 0) {
        if (c)
            ta_rc_stop(c);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

/* A resync of 30 s: polls, not resyncs, pace the reads while Azure works. */
static int setup_slow_resync(void **state)
{
    ta_rc_t *c = calloc(1, sizeof *c);
    if (!c || start_pair(c, 30, 60) != 0) {
        if (c)
            ta_rc_stop(c);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static void put_env(ta_rc_t *c, const char *id, const char *extra, long want)
{
    char *body = ta_spec("u-11", "workspace", "eastus", extra);
    long st = ta_put(&c->agent, id, body);
    free(body);
    if (st != want)
        print_message("PUT %s answered %ld, wanted %ld\n", id, st, want);
    assert_int_equal(st, want);
}

static void post_env(ta_rc_t *c, const char *id, const char *verb)
{
    char path[256];
    snprintf(path, sizeof path, ENV_PATH "/%s/%s", id, verb);
    th_resp_t r;
    ta_req(&c->agent, "POST", path, NULL, &r);
    assert_int_equal(r.status, 202);
    th_resp_free(&r);
}

/* The group's instance state and provisioning state in azsim ("" when
 * there is no such group). */
static void sim_group_states(ta_rc_t *c, const char *name, char *inst, char *prov, size_t n)
{
    cJSON *res = ta_sim_get(&c->sim, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, name);
    const char *i = g ? ta_str(g, "properties.instanceView.state") : NULL;
    const char *p = g ? ta_str(g, "properties.provisioningState") : NULL;
    snprintf(inst, n, "%s", i ? i : "");
    snprintf(prov, n, "%s", p ? p : "");
    cJSON_Delete(res);
}

/* What a poll of an environment saw: every phase and Ready reason, once. */
typedef struct seen {
    char phases[256];
    char reasons[512];
} seen_t;

static void add_word(char *list, size_t n, const char *w)
{
    char needle[80];
    snprintf(needle, sizeof needle, " %s ", w);
    if (!strstr(list, needle) && strlen(list) + strlen(needle) < n)
        snprintf(list + strlen(list), n - strlen(list), "%s", list[0] ? needle + 1 : needle);
}

static void note_env(seen_t *s, const cJSON *o)
{
    const char *phase = ta_str(o, "status.phase");
    const char *reason = cond_field(o, "Ready", "reason");
    if (phase)
        add_word(s->phases, sizeof s->phases, phase);
    if (reason)
        add_word(s->reasons, sizeof s->reasons, reason);
}

static int seen_word(const char *list, const char *w)
{
    char needle[80];
    snprintf(needle, sizeof needle, " %s ", w);
    char padded[600];
    snprintf(padded, sizeof padded, " %s", list);
    return strstr(padded, needle) != NULL;
}

/* Polls env id every 50 ms for ms milliseconds, noting what it saw; stops
 * early when op (an azsim operation, may be NULL) reached count calls. */
static void observe(ta_rc_t *c, const char *id, seen_t *s, int ms, const char *op, long count)
{
    long long end = ta_now_ms() + ms;
    while (ta_now_ms() < end) {
        cJSON *o = ta_env_get(&c->agent, id, NULL);
        if (o)
            note_env(s, o);
        cJSON_Delete(o);
        if (op && stat_of(c, op, NULL) >= count)
            return;
        ta_sleep_ms(50);
    }
}

/* Seconds from now to an RFC 3339 time ("2026-01-02T03:04:05Z"). */
static double seconds_until(const char *ts)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm))
        return -1e9;
    return difftime(timegm(&tm), time(NULL));
}

/* ---- a. a workspace that exits 0 --------------------------------------- */

#define NODE_RULE(extra) "{\"images\":[{\"match\":\"*/dev8-workspace:latest\"" extra "}]}"

static void test_exited_workspace_desired_running_is_started(void **state)
{
    ta_rc_t *c = ctx(state);
    /* Every run of the workspace ends with exit code 0 after 1.5 s: under
     * restartPolicy OnFailure the group turns Succeeded. */
    sim_aci(c, NODE_RULE(",\"exitAfterMs\":1500,\"exitCode\":0"));
    put_env(c, "ab-exit", NULL, 201);
    seen_t s = {"", ""};
    observe(c, "ab-exit", &s, 20000, "containerGroups.start", 1);
    assert_true(stat_of(c, "containerGroups.start", NULL) >= 1);
    /* The workspace keeps running from now on. */
    sim_aci(c, NODE_RULE(""));
    long long t0 = ta_now_ms();
    for (;;) {
        cJSON *o = ta_env_get(&c->agent, "ab-exit", NULL);
        note_env(&s, o);
        char inst[32], prov[32];
        sim_group_states(c, "dev8-ab-exit", inst, prov, sizeof inst);
        int done = ta_is_phase(o, "RUNNING") && strcmp(inst, "Running") == 0;
        cJSON_Delete(o);
        if (done || ta_now_ms() - t0 > 25000)
            break;
        ta_sleep_ms(50);
    }
    cJSON *o = wait_phase(c, "ab-exit", "RUNNING", 1000);
    cJSON_Delete(o);
    long starts = stat_of(c, "containerGroups.start", NULL);
    print_message("phases seen: %s; Ready reasons: %s; start POSTs: %ld\n", s.phases, s.reasons,
                  starts);
    assert_true(seen_word(s.reasons, "Restarting") || seen_word(s.phases, "STARTING"));
    /* Started again by the ACI start operation, a handful of times at most
     * (runs deployed before the rule changed may exit once more). */
    assert_true(starts >= 1 && starts <= 4);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    assert_int_equal(stat_of(c, "containerGroups.stop", NULL), 0);
    both_exit_cleanly(state);
}

static void test_exited_workspace_desired_stopped_needs_no_stop(void **state)
{
    ta_rc_t *c = ctx(state);
    /* A 3 s pull, then the workspace exits 0 at once: the group goes from
     * Creating straight to instance state Succeeded. */
    sim_aci(c, NODE_RULE(",\"pullMs\":3000,\"exitAfterMs\":0,\"exitCode\":0"));
    put_env(c, "ab-done", NULL, 201);
    long long t0 = ta_now_ms();
    while (stat_of(c, "containerGroups.createOrUpdate", "201") < 1 && ta_now_ms() - t0 < 10000)
        ta_sleep_ms(20);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", "201"), 1);
    /* While it is still creating, the environment is to be stopped. */
    put_env(c, "ab-done", "\"powerState\":\"Stopped\"", 200);
    cJSON *o = wait_phase(c, "ab-done", "STOPPED", T_CONVERGE);
    print_message("STOPPED: %s\n", cond_field(o, "Ready", "message"));
    cJSON_Delete(o);
    char inst[32], prov[32];
    sim_group_states(c, "dev8-ab-done", inst, prov, sizeof inst);
    assert_string_equal(inst, "Succeeded");
    /* A stop would change nothing (Azure: no effect on a terminated group),
     * so none is sent — also not after a status refresh or two. */
    ta_sleep_ms(TA_RC_REFRESH_S * 1500);
    o = wait_phase(c, "ab-done", "STOPPED", 1000);
    cJSON_Delete(o);
    assert_int_equal(stat_of(c, "containerGroups.stop", NULL), 0);
    assert_int_equal(stat_of(c, "containerGroups.start", NULL), 0);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    both_exit_cleanly(state);
}

/* ---- b. ContainerGroupTransitioning on start and stop -------------------- */

static void test_transitioning_start_and_stop_converge(void **state)
{
    ta_rc_t *c = ctx(state);
    /* Azure: "allow at least 10 seconds between operations"; 4 s here. */
    sim_aci(c, "{\"transitionMs\":4000}");
    put_env(c, "ab-flip", NULL, 201);
    cJSON_Delete(wait_phase(c, "ab-flip", "RUNNING", T_CONVERGE));
    post_env(c, "ab-flip", "stop");
    cJSON_Delete(wait_phase(c, "ab-flip", "STOPPED", T_CONVERGE));
    /* Started right after the stop: 409 first, then accepted. */
    post_env(c, "ab-flip", "start");
    cJSON_Delete(wait_phase(c, "ab-flip", "RUNNING", 20000));
    long start409 = stat_of(c, "containerGroups.start", "409");
    long starts = stat_of(c, "containerGroups.start", NULL);
    /* Stopped right after the start: 409 first, then accepted. */
    post_env(c, "ab-flip", "stop");
    cJSON *o = wait_phase(c, "ab-flip", "STOPPED", 20000);
    assert_true(cJSON_IsNull(ta_path(o, "status.lastError")) ||
                ta_str(o, "status.lastError.code") == NULL);
    cJSON_Delete(o);
    long stop409 = stat_of(c, "containerGroups.stop", "409");
    long stops = stat_of(c, "containerGroups.stop", NULL);
    print_message("start POSTs %ld (409: %ld), stop POSTs %ld (409: %ld)\n", starts, start409,
                  stops, stop409);
    assert_true(start409 >= 1);
    assert_true(stop409 >= 1);
    /* At most ~3 identical mutations per transition. */
    assert_true(starts <= 3);
    assert_true(stops - 1 <= 3);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    both_exit_cleanly(state);
}

/* ---- c. no capacity in the region ------------------------------------------ */

static void test_capacity_error_holds_retries(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, "{\"capacityExhausted\":[\"eastus\"]}");
    put_env(c, "ab-full", NULL, 201);
    cJSON *o = wait_phase(c, "ab-full", "ERROR", T_CONVERGE);
    long long t_error = ta_now_ms();
    const char *code = ta_str(o, "status.lastError.code");
    const char *msg = ta_str(o, "status.lastError.message");
    print_message("lastError: %s: %s; next attempt %s (attempt %g)\n", code, msg,
                  ta_str(o, "status.retry.nextAttemptTime"), ta_num(o, "status.retry.attempts"));
    assert_non_null(code);
    assert_string_equal(code, "ServiceUnavailable");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "The requested resource is not available in the location "
                                "'eastus' at this moment. Please retry with a different "
                                "resource request or in another location."));
    /* The next attempt about a minute ahead (1 min, jittered down to half). */
    assert_true(ta_num(o, "status.retry.attempts") == 1);
    double ahead = seconds_until(ta_str(o, "status.retry.nextAttemptTime"));
    assert_true(ahead >= 25 && ahead <= 65);
    cJSON_Delete(o);
    /* No second create for 20 s, however often resyncs come by. */
    while (ta_now_ms() - t_error < 20000)
        ta_sleep_ms(250);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    o = wait_phase(c, "ab-full", "ERROR", 1000);
    cJSON_Delete(o);
    both_exit_cleanly(state);
}

/* ---- d. a long provisioning is polled with backoff ------------------------ */

static void test_long_pull_polls_with_backoff(void **state)
{
    ta_rc_t *c = ctx(state);
    const double t_s = 12.0; /* provisioning: a 12 s pull (+ 0.3 s) */
    sim_aci(c, NODE_RULE(",\"pullMs\":12000"));
    put_env(c, "ab-pull", NULL, 201);
    long long t0 = ta_now_ms();
    while (stat_of(c, "containerGroups.createOrUpdate", "201") < 1 && ta_now_ms() - t0 < 10000)
        ta_sleep_ms(10);
    long gets_before = stat_of(c, "containerGroups.get", NULL);
    long long t_create = ta_now_ms();
    cJSON *o = wait_phase(c, "ab-pull", "RUNNING", 45000);
    cJSON_Delete(o);
    long gets = stat_of(c, "containerGroups.get", NULL) - gets_before;
    double bound = log2(t_s / 2) + t_s / 30 + 2;
    print_message("provisioning of %.0f s: RUNNING after %lld ms, %ld GETs (bound %.1f)\n", t_s,
                  ta_now_ms() - t_create, gets, bound);
    assert_true(gets <= (long)(bound + 0.5));
    both_exit_cleanly(state);
}

/* ---- e. an inaccessible image -------------------------------------------- */

static void test_inaccessible_image_errors_and_backs_off(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, NODE_RULE(",\"failure\":\"InaccessibleImage\""));
    put_env(c, "ab-image", NULL, 201);
    /* When azsim saw each create (the first and three retries). */
    long long at[4] = {0};
    long n = 0;
    cJSON *err = NULL;
    long long end = ta_now_ms() + 18000;
    while (ta_now_ms() < end && n < 4) {
        long creates = stat_of(c, "containerGroups.createOrUpdate", NULL);
        while (n < creates && n < 4)
            at[n++] = ta_now_ms();
        if (!err) {
            cJSON *o = ta_env_get(&c->agent, "ab-image", NULL);
            if (ta_is_phase(o, "ERROR"))
                err = o;
            else
                cJSON_Delete(o);
        }
        ta_sleep_ms(25);
    }
    assert_non_null(err);
    const char *msg = ta_str(err, "status.lastError.message");
    print_message("lastError: %s: %s\n", ta_str(err, "status.lastError.code"), msg);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "The image 'vaibhavsing/dev8-workspace:latest' in container "
                                "group 'dev8-ab-image' is not accessible. Please check the image "
                                "and registry credential."));
    assert_string_equal(cond_field(err, "Ready", "reason"), "ImagePullFailed");
    /* Azure's own code, read from the failed create's operation. */
    assert_string_equal(ta_str(err, "status.lastError.code"), "InaccessibleImage");
    cJSON_Delete(err);
    /* Retried (delete, create) with a growing backoff: the third retry
     * waits 2..4 s where the first waited 0.5..1 s. */
    assert_int_equal(n, 4);
    long long first = at[1] - at[0], third = at[3] - at[2];
    print_message("create to create: %lld ms, %lld ms, %lld ms\n", first, at[2] - at[1], third);
    assert_true(third > first);
    assert_int_equal(stat_of(c, "fileShares.create", NULL), 1);
    both_exit_cleanly(state);
}

/* ---- f. a failed stop is not a failed create ------------------------------- */

static void test_failed_stop_is_not_a_failed_create(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "ab-stop", NULL, 201);
    cJSON_Delete(wait_phase(c, "ab-stop", "RUNNING", T_CONVERGE));
    assert_int_equal(ta_sim_faults(&c->sim, "{\"failStopRate\":1}"), 0);
    post_env(c, "ab-stop", "stop");
    long long t0 = ta_now_ms();
    while (stat_of(c, "containerGroups.stop", NULL) < 1 && ta_now_ms() - t0 < 10000)
        ta_sleep_ms(20);
    char inst[32], prov[32];
    sim_group_states(c, "dev8-ab-stop", inst, prov, sizeof inst);
    assert_string_equal(prov, "Failed");
    assert_string_equal(inst, "Running");
    /* Let the agent see the Failed state before the fault clears. */
    ta_sleep_ms(3000);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"failStopRate\":0}"), 0);
    cJSON *o = wait_phase(c, "ab-stop", "STOPPED", 20000);
    const char *code = ta_str(o, "status.lastError.code");
    assert_true(!code || strcmp(code, "ProvisioningFailed") != 0);
    cJSON_Delete(o);
    long stops = stat_of(c, "containerGroups.stop", NULL);
    print_message("stop POSTs: %ld\n", stops);
    assert_true(stops >= 2 && stops <= 3);
    /* Never deleted and recreated. */
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    sim_group_states(c, "dev8-ab-stop", inst, prov, sizeof inst);
    assert_string_equal(inst, "Stopped");
    both_exit_cleanly(state);
}

/* ---- g. a DNS label held by a foreign group -------------------------------- */

/* Checks for ta_env_wait: status.lastError is set. */
static int has_error(const cJSON *obj, const void *arg)
{
    (void)arg;
    return ta_str(obj, "status.lastError.code") != NULL;
}

static void test_dns_label_taken_by_foreign_group(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, "{\"uniqueDnsLabels\":true}");
    /* The label the agent will use: dev8-{id}-{6 hex of sha256}. */
    unsigned char md[SHA256_DIGEST_LENGTH];
    const char *in = TA_RC_CONTROLLER "/ab-dns";
    SHA256((const unsigned char *)in, strlen(in), md);
    char label[64], body[1024];
    snprintf(label, sizeof label, "dev8-ab-dns-%02x%02x%02x", md[0], md[1], md[2]);
    snprintf(body, sizeof body,
             "{\"location\":\"eastus\",\"tags\":{\"owner\":\"someone-else\"},\"properties\":{"
             "\"osType\":\"Linux\",\"containers\":[{\"name\":\"web\",\"properties\":{\"image\":"
             "\"nginx\",\"resources\":{\"requests\":{\"cpu\":1,\"memoryInGB\":1}}}}],"
             "\"ipAddress\":{\"type\":\"Public\",\"dnsNameLabel\":\"%s\","
             "\"autoGeneratedDomainNameLabelScope\":\"TenantReuse\",\"ports\":[{\"port\":"
             "80}]}}}",
             label);
    th_resp_t r;
    long st = ta_sim_arm(
        &c->sim, "PUT",
        "/subscriptions/" TA_AZ_SUB "/resourceGroups/rg-dev8-westeurope/"
        "providers/Microsoft.ContainerInstance/containerGroups/someone-elses?" TA_AZ_ACI_V,
        body, &r);
    th_resp_free(&r);
    assert_int_equal(st, 201);
    put_env(c, "ab-dns", NULL, 201);
    cJSON *o = ta_env_wait(&c->agent, "ab-dns", has_error, NULL, T_CONVERGE);
    assert_non_null(o);
    /* Time for a retry or two, then the state they leave. */
    ta_sleep_ms(1500);
    cJSON_Delete(o);
    o = ta_env_get(&c->agent, "ab-dns", NULL);
    char phase[32], code[64], msg[512];
    snprintf(phase, sizeof phase, "%s", ta_str(o, "status.phase") ? ta_str(o, "status.phase") : "");
    snprintf(code, sizeof code, "%s",
             ta_str(o, "status.lastError.code") ? ta_str(o, "status.lastError.code") : "");
    snprintf(msg, sizeof msg, "%s",
             ta_str(o, "status.lastError.message") ? ta_str(o, "status.lastError.message") : "");
    cJSON_Delete(o);
    long puts = stat_of(c, "containerGroups.createOrUpdate", NULL);
    print_message("phase %s, lastError: %s: %s; create PUTs refused so far: %ld\n", phase, code,
                  msg, puts);
    assert_string_equal(code, "DnsNameLabelAlreadyTaken");
    assert_non_null(strstr(msg, "is not available"));
    /* The foreign group is never touched. */
    cJSON *res = ta_sim_get(&c->sim, "/_azsim/resources");
    int foreign = ta_sim_group(res, "someone-elses") != NULL;
    int ours = ta_sim_group(res, "dev8-ab-dns") != NULL;
    cJSON_Delete(res);
    assert_true(foreign);
    assert_false(ours);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    /* A create refused with a 4xx that no retry fixes is an ERROR with
     * the code, retried slowly (a minute and more), like a quota error. */
    assert_string_equal(phase, "ERROR");
    assert_true(puts <= 2);
    both_exit_cleanly(state);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_fast, ta_rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_exited_workspace_desired_running_is_started),
        T(test_exited_workspace_desired_stopped_needs_no_stop),
        T(test_transitioning_start_and_stop_converge),
        T(test_capacity_error_holds_retries),
        cmocka_unit_test_setup_teardown(test_long_pull_polls_with_backoff, setup_slow_resync,
                                        ta_rc_teardown),
        T(test_inaccessible_image_errors_and_backs_off),
        T(test_failed_stop_is_not_a_failed_create),
        T(test_dns_label_taken_by_foreign_group),
    };
#undef T
    return cmocka_run_group_tests_name("azure_behaviours", tests, NULL, NULL);
}
