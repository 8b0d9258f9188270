/*
 * End-to-end tests of workspace health (issue 13): the real bin/dev8-agent
 * against the real bin/azsim, whose image rules model an IDE that starts
 * slowly, one that never answers its probe, a workspace that crash-loops
 * and an image that cannot be pulled. The agent creates its groups with a
 * readiness probe (workspace.readinessProbe, 1 s period) and reads what
 * ACI's instance view says of the container.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "rc_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_PATH "/api/v1/environments"
#define RULE(extra)                                                                                \
    "{\"crashBackoffMs\":100,\"images\":[{\"match\":\"*/dev8-workspace:latest\"" extra "}]}"

/* Whole top-level sections added to the agent's config (or NULL). */
static const char *g_extra_sections;

static int start(void **state, const char *controller_yaml)
{
    static const char *const sim_args[] = {"--provision-ms",      "300", "--delete-ms", "200",
                                           "--share-recreate-ms", "500", NULL};
    ta_rc_t *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    if (ta_sim_start(&c->sim, sim_args) != 0)
        goto fail;
    char extra[1024];
    snprintf(extra, sizeof extra,
             "workspace:\n  ports: [%d]\n  mountPath: %s\n  readinessProbe:\n    path: /healthz\n"
             "    periodSeconds: 1\n    failureThreshold: 5\n%s",
             TA_RC_PORT, TA_RC_MOUNT, g_extra_sections ? g_extra_sections : "");
    ta_opts_t o = {.azsim_port = c->sim.port,
                   .resync_seconds = TA_RC_RESYNC_S,
                   .status_refresh_seconds = TA_RC_REFRESH_S,
                   .shutdown_grace_seconds = 5,
                   .extra_yaml = extra,
                   .controller_yaml = controller_yaml};
    if (ta_start(&c->agent, &o) != 0 || ta_wait_ready(&c->agent, 10000) != 0)
        goto fail;
    *state = c;
    return 0;
fail:
    ta_rc_stop(c);
    free(c);
    return -1;
}

static int setup(void **state)
{
    return start(state, NULL);
}

static int g_activity_port;

/* activity.url set and activity.listen on a free port (g_activity_port). */
static int setup_activity(void **state)
{
    g_activity_port = th_free_port();
    static char yaml[256];
    snprintf(yaml, sizeof yaml,
             "activity:\n  url: http://agent.example.test:9090/\n  listen: 127.0.0.1:%d\n",
             g_activity_port);
    g_extra_sections = yaml;
    int rc = start(state, NULL);
    g_extra_sections = NULL;
    return rc;
}

/* Auto-stop "minutes" of one second: autoStopMinutes 5 stops after 5 s
 * idle, with AutoStopPending 2 s before. */
static int setup_fast_minutes(void **state)
{
    return start(state, "  autoStopMinuteSeconds: 1\n  autoStopWarningMinutes: 2\n");
}

static void put_env(ta_rc_t *c, const char *id)
{
    char *body = ta_spec("u-13", "workspace", "eastus", NULL);
    long st = ta_put(&c->agent, id, body);
    free(body);
    assert_int_equal(st, 201);
}

/* Polls the environment until its phase and Ready reason are these;
 * appends every "PHASE/reason" seen (changes only) to seen. */
static cJSON *wait_reason(ta_rc_t *c, const char *id, const char *phase, const char *reason,
                          int timeout_ms, char *seen, size_t seen_len)
{
    long long end = ta_now_ms() + timeout_ms;
    char last[96] = "";
    for (;;) {
        cJSON *o = ta_env_get(&c->agent, id, NULL);
        const char *ph = o ? ta_str(o, "status.phase") : NULL;
        const char *rs = o ? cond_field(o, "Ready", "reason") : NULL;
        char now[96];
        snprintf(now, sizeof now, "%s/%s", ph ? ph : "-", rs ? rs : "-");
        if (strcmp(now, last) != 0 && seen) {
            size_t n = strlen(seen);
            snprintf(seen + n, seen_len - n, "%s%s", n ? " " : "", now);
            snprintf(last, sizeof last, "%s", now);
        }
        if (ph && rs && strcmp(ph, phase) == 0 && strcmp(rs, reason) == 0)
            return o;
        cJSON_Delete(o);
        if (ta_now_ms() > end) {
            print_message("%s: wanted %s/%s, saw %s\n", id, phase, reason, seen ? seen : "");
            fail();
        }
        ta_sleep_ms(50);
    }
}

static void test_slow_ide_is_starting_until_its_probe_passes(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(",\"readyAfterMs\":3000"));
    put_env(c, "h-slow");
    char seen[512] = "";
    cJSON *o = wait_reason(c, "h-slow", "STARTING", "IdeStarting", 15000, seen, sizeof seen);
    assert_string_equal(ta_str(o, "status.containers.0.state"), "Running");
    assert_string_equal(ta_str(o, "status.containers.0.name"), "workspace");
    cJSON_Delete(o);
    long long t0 = ta_now_ms();
    o = wait_reason(c, "h-slow", "RUNNING", "Available", 15000, seen, sizeof seen);
    print_message("phases: %s; RUNNING %lld ms after IdeStarting was seen\n", seen,
                  ta_now_ms() - t0);
    assert_true(ta_num(o, "status.containers.0.restartCount") == 0);
    cJSON_Delete(o);
    /* Never an ERROR on the way, never RUNNING before the IDE answered. */
    assert_null(strstr(seen, "ERROR"));
    assert_true(strstr(seen, "STARTING/IdeStarting") < strstr(seen, "RUNNING/Available"));
    both_exit_cleanly(state);
}

static void test_probe_that_never_passes_is_probe_failing(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(",\"probeNeverPasses\":true"));
    put_env(c, "h-deaf");
    char seen[512] = "";
    cJSON *o = wait_reason(c, "h-deaf", "ERROR", "ProbeFailing", 25000, seen, sizeof seen);
    print_message("phases: %s; lastError: %s\n", seen, ta_str(o, "status.lastError.message"));
    assert_string_equal(ta_str(o, "status.lastError.code"), "ProbeFailing");
    assert_non_null(strstr(ta_str(o, "status.lastError.message"), "Readiness probe failed"));
    assert_non_null(strstr(seen, "STARTING/IdeStarting"));
    cJSON_Delete(o);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    both_exit_cleanly(state);
}

static void test_crash_loop_is_error_and_not_recreated(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(",\"exitAfterMs\":300,\"exitCode\":3"));
    put_env(c, "h-crash");
    cJSON *o = wait_reason(c, "h-crash", "ERROR", "CrashLoop", 25000, NULL, 0);
    print_message("lastError: %s\n", ta_str(o, "status.lastError.message"));
    assert_string_equal(ta_str(o, "status.lastError.code"), "CrashLoop");
    assert_true(ta_num(o, "status.containers.0.restartCount") >= 3);
    assert_true(ta_num(o, "status.containers.0.lastExitCode") == 3);
    assert_non_null(ta_str(o, "status.containers.0.lastRestartTime"));
    assert_non_null(strstr(ta_str(o, "status.lastError.message"), "last exit code 3"));
    cJSON_Delete(o);
    /* The logs say why, in the order the runs wrote them. */
    th_resp_t r;
    ta_req(&c->agent, "GET", ENV_PATH "/h-crash/logs?tail=7", NULL, &r);
    print_message("logs: %s\n", r.body);
    assert_int_equal(r.status, 200);
    /* Seven lines hold a whole run: a crash, then the restart after it. */
    const char *crash = strstr(r.body, "dev8 workspace: fatal error, exiting with code 3");
    assert_non_null(crash);
    assert_non_null(strstr(crash, "dev8 workspace: starting"));
    assert_true(ta_count(r.body, "\n") == 7);
    th_resp_free(&r);
    /* It stays ERROR and nothing is recreated or restarted by the agent
     * while ACI restarts the container (two status refreshes). */
    ta_sleep_ms(TA_RC_REFRESH_S * 2000 + 500);
    o = ta_env_get(&c->agent, "h-crash", NULL);
    assert_string_equal(ta_str(o, "status.phase"), "ERROR");
    cJSON_Delete(o);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    assert_int_equal(stat_of(c, "containerGroups.start", NULL), 0);
    both_exit_cleanly(state);
}

static void test_image_that_cannot_be_pulled_is_image_pull_failed(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(",\"failure\":\"PullFailed\""));
    put_env(c, "h-pull");
    cJSON *o = wait_reason(c, "h-pull", "ERROR", "ImagePullFailed", 25000, NULL, 0);
    const char *msg = ta_str(o, "status.lastError.message");
    print_message("lastError: %s\n", msg);
    assert_string_equal(ta_str(o, "status.lastError.code"), "ImagePullFailed");
    /* Azure's own words, from the container's Failed event. */
    assert_non_null(strstr(msg, "Failed to pull image \"vaibhavsing/dev8-workspace:latest\""));
    assert_string_equal(ta_str(o, "status.containers.0.state"), "Waiting");
    cJSON_Delete(o);
    /* ACI retries the pull itself: the agent creates once and waits. */
    ta_sleep_ms(2000);
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    both_exit_cleanly(state);
}

static void test_logs_route_answers_and_refuses(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(""));
    th_resp_t r;
    ta_req(&c->agent, "GET", ENV_PATH "/h-none/logs", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(ta_err_code(&r), "NotFound");
    th_resp_free(&r);
    /* Desired stopped from the start: no group is ever created. */
    char *body = ta_spec("u-13", "workspace", "eastus", "\"powerState\":\"Stopped\"");
    assert_int_equal(ta_put(&c->agent, "h-off", body), 201);
    free(body);
    cJSON_Delete(wait_phase(c, "h-off", "STOPPED", 15000));
    ta_req(&c->agent, "GET", ENV_PATH "/h-off/logs", NULL, &r);
    assert_int_equal(r.status, 409);
    assert_string_equal(ta_err_code(&r), "NoContainerGroup");
    th_resp_free(&r);
    put_env(c, "h-logs");
    cJSON_Delete(wait_phase(c, "h-logs", "RUNNING", 15000));
    static const char *const bad[] = {"0", "10001", "-3", "abc", "", "5x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, ENV_PATH "/h-logs/logs?tail=%s", bad[i]);
        ta_req(&c->agent, "GET", path, NULL, &r);
        assert_int_equal(r.status, 400);
        assert_string_equal(ta_err_code(&r), "InvalidQuery");
        assert_string_equal(ta_err_field(&r), "tail");
        th_resp_free(&r);
    }
    /* Default tail; the IDE's lines in order. */
    long long end = ta_now_ms() + 10000;
    for (;;) {
        ta_req(&c->agent, "GET", ENV_PATH "/h-logs/logs", NULL, &r);
        assert_int_equal(r.status, 200);
        if (strstr(r.body, "IDE listening") || ta_now_ms() > end)
            break;
        th_resp_free(&r);
        ta_sleep_ms(200);
    }
    print_message("logs: %s\n", r.body);
    const char *a = strstr(r.body, "dev8 workspace: starting");
    const char *b = strstr(r.body, "dev8 workspace: IDE listening on port 8443");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    th_resp_free(&r);
    /* Without a key: 401, as every route under /api/v1/. */
    ta_api(&c->agent, "GET", ENV_PATH "/h-logs/logs", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
    both_exit_cleanly(state);
}

/* The index of the first item at or after `from` whose reason is `reason`
 * and whose message contains `text` (NULL: any), or -1. */
static int find_item(const cJSON *items, int from, const char *reason, const char *text)
{
    for (int i = from; i < cJSON_GetArraySize(items); i++) {
        const cJSON *it = cJSON_GetArrayItem(items, i);
        const char *r = ta_str(it, "reason"), *m = ta_str(it, "message");
        if (r && strcmp(r, reason) == 0 && (!text || (m && strstr(m, text))))
            return i;
    }
    return -1;
}

static void test_events_tell_what_happened_in_order(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(",\"readyAfterMs\":1500"));
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, &c->agent, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 0, 3000);
    put_env(c, "h-ev");
    cJSON_Delete(wait_reason(c, "h-ev", "RUNNING", "Available", 20000, NULL, 0));
    th_resp_t r;
    ta_req(&c->agent, "GET", ENV_PATH "/h-ev/events", NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *j = ta_json(&r);
    assert_non_null(j);
    assert_string_equal(ta_str(j, "environmentId"), "h-ev");
    const cJSON *items = ta_path(j, "items");
    int n = cJSON_GetArraySize(items);
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(items, i);
        print_message("  %s %-7s %-12s %-6s x%d %s\n", ta_str(it, "time"), ta_str(it, "type"),
                      ta_str(it, "reason"), ta_str(it, "source"), (int)ta_num(it, "count"),
                      ta_str(it, "message"));
    }
    /* What the agent did, what Azure said, and the phases, in order. */
    int share = find_item(items, 0, "ArmRequest", "create file share");
    int group = find_item(items, share + 1, "ArmRequest", "create container group");
    int put_ok = find_item(items, group + 1, "ArmSucceeded", "create container group");
    int pulled = find_item(items, put_ok + 1, "Pulled", "Successfully pulled image");
    int started = find_item(items, pulled + 1, "Started", NULL);
    int ide = find_item(items, started + 1, "PhaseChanged", "-> STARTING (IdeStarting)");
    int running = find_item(items, ide + 1, "PhaseChanged", "-> RUNNING (Available)");
    print_message("share %d group %d ok %d pulled %d started %d ide %d running %d\n", share, group,
                  put_ok, pulled, started, ide, running);
    assert_true(share >= 0 && group > share && put_ok > group && pulled > put_ok);
    assert_true(started > pulled && ide > started && running > ide);
    assert_string_equal(ta_str(cJSON_GetArrayItem(items, pulled), "source"), "azure");
    assert_string_equal(ta_str(cJSON_GetArrayItem(items, running), "source"), "agent");
    cJSON_Delete(j);
    th_resp_free(&r);
    /* The same events reached the watch stream as `event: EVENT`. */
    long long end = ta_now_ms() + 5000;
    int seen_running = 0;
    while (!seen_running && ta_now_ms() < end) {
        ta_watch_drain(&w, 100);
        for (size_t i = 0; i < w.nenv_events && !seen_running; i++) {
            cJSON *e = cJSON_Parse(w.env_events[i].data);
            const char *m = ta_str(e, "event.message");
            seen_running = ta_str(e, "environmentId") &&
                           strcmp(ta_str(e, "environmentId"), "h-ev") == 0 && m &&
                           strstr(m, "-> RUNNING (Available)");
            cJSON_Delete(e);
        }
    }
    print_message("%zu EVENT entries on the watch stream\n", w.nenv_events);
    assert_true(seen_running);
    ta_watch_close(&w);
    ta_req(&c->agent, "GET", ENV_PATH "/h-nope/events", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(ta_err_code(&r), "NotFound");
    th_resp_free(&r);
    both_exit_cleanly(state);
}

static void test_auto_stop_is_announced_before_it_happens(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(""));
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, &c->agent, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 0, 3000);
    char *body = ta_spec("u-13", "workspace", "eastus", "\"autoStopMinutes\":5");
    assert_int_equal(ta_put(&c->agent, "h-idle", body), 201);
    free(body);
    cJSON *o = wait_phase(c, "h-idle", "RUNNING", 15000);
    const char *at = ta_str(o, "status.autoStopTime");
    assert_non_null(at);
    print_message("RUNNING; autoStopTime %s\n", at);
    cJSON_Delete(o);
    o = wait_phase(c, "h-idle", "STOPPED", 20000);
    const cJSON *cond = ta_condition(o, "Synced");
    print_message("STOPPED: %s: %s\n", ta_str(cond, "reason"), ta_str(cond, "message"));
    assert_string_equal(ta_str(cond, "reason"), "AutoStopped");
    assert_non_null(strstr(ta_str(cond, "message"), "s without activity"));
    assert_null(ta_path(o, "status.autoStopTime"));
    assert_null(ta_condition(o, "AutoStopPending"));
    cJSON_Delete(o);
    /* On the watch: AutoStopPending (while RUNNING) came before STOPPING. */
    ta_watch_drain(&w, 300);
    long pending_at = -1, stopping_at = -1;
    for (size_t i = 0; i < w.nevents; i++) {
        cJSON *e = cJSON_Parse(w.events[i].data);
        if (e && strcmp(ta_str(e, "id") ? ta_str(e, "id") : "", "h-idle") == 0) {
            const cJSON *p = ta_condition(e, "AutoStopPending");
            if (p && pending_at < 0) {
                pending_at = (long)i;
                assert_string_equal(ta_str(e, "status.phase"), "RUNNING");
                assert_string_equal(ta_str(p, "status"), "True");
                print_message("AutoStopPending: %s\n", ta_str(p, "message"));
            }
            if (stopping_at < 0 && ta_str(e, "status.phase") &&
                strcmp(ta_str(e, "status.phase"), "STOPPING") == 0)
                stopping_at = (long)i;
        }
        cJSON_Delete(e);
    }
    print_message("watch: AutoStopPending at event %ld, STOPPING at %ld\n", pending_at,
                  stopping_at);
    assert_true(pending_at >= 0 && stopping_at > pending_at);
    ta_watch_close(&w);
    both_exit_cleanly(state);
}

/* POST .../activity on port with Authorization: Bearer <auth> (NULL: none). */
static long post_activity(int port, const char *id, const char *auth)
{
    char path[128];
    snprintf(path, sizeof path, ENV_PATH "/%s/activity", id);
    th_resp_t r;
    th_api(port, "POST", path, auth, NULL, &r);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

/* The value of env variable `name` of group `group` as azsim holds it
 * (its control API shows secure values too); owned. */
static char *group_env(ta_rc_t *c, const char *group, const char *name, int secure)
{
    cJSON *res = sim_get(c, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, group);
    assert_non_null(g);
    const cJSON *envs = ta_path(g, "properties.containers.0.properties.environmentVariables");
    char *out = NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, envs)
    {
        if (strcmp(ta_str(e, "name"), name) == 0 && !out) {
            const char *v = ta_str(e, secure ? "secureValue" : "value");
            out = v ? strdup(v) : NULL;
        }
    }
    cJSON_Delete(res);
    return out;
}

static void test_activity_tokens_open_only_their_own_route(void **state)
{
    ta_rc_t *c = ctx(state);
    sim_aci(c, RULE(""));
    put_env(c, "h-act-a");
    put_env(c, "h-act-b");
    cJSON_Delete(wait_phase(c, "h-act-a", "RUNNING", 15000));
    cJSON_Delete(wait_phase(c, "h-act-b", "RUNNING", 15000));
    char *url = group_env(c, "dev8-h-act-a", "DEV8_ACTIVITY_URL", 0);
    char *tok_a = group_env(c, "dev8-h-act-a", "DEV8_ACTIVITY_TOKEN", 1);
    char *tok_b = group_env(c, "dev8-h-act-b", "DEV8_ACTIVITY_TOKEN", 1);
    assert_non_null(url);
    assert_non_null(tok_a);
    assert_non_null(tok_b);
    assert_string_equal(url, "http://agent.example.test:9090/api/v1/environments/h-act-a/activity");
    assert_int_equal(strlen(tok_a), 64);
    assert_string_not_equal(tok_a, tok_b);
    /* Sent as a secure value: ARM's GET does not echo it, nor do tags. */
    char path[256];
    snprintf(path, sizeof path, "%s/dev8-h-act-a?%s", TA_AZ_CG, TA_AZ_ACI_V);
    th_resp_t r;
    assert_int_equal(ta_sim_arm(&c->sim, "GET", path, NULL, &r), 200L);
    assert_null(strstr(r.body, tok_a));
    assert_non_null(strstr(r.body, "DEV8_ACTIVITY_TOKEN"));
    th_resp_free(&r);

    /* The activity listener: a's token opens a's route only. */
    int ap = g_activity_port;
    assert_int_equal(post_activity(ap, "h-act-a", tok_a), 204);
    cJSON *o = ta_env_get(&c->agent, "h-act-a", NULL);
    assert_non_null(ta_str(o, "status.lastActivityTime"));
    cJSON_Delete(o);
    assert_int_equal(post_activity(ap, "h-act-b", tok_a), 401);
    assert_int_equal(post_activity(ap, "h-act-a", tok_b), 401);
    assert_int_equal(post_activity(ap, "h-act-a", NULL), 401);
    assert_int_equal(post_activity(ap, "h-act-a", TA_KEY1), 401); /* no API keys here */
    assert_int_equal(post_activity(ap, "h-nobody", tok_a), 401);
    assert_int_equal(post_activity(ap, "h-act-b", tok_b), 204);
    /* Nothing else is served there. */
    assert_int_equal(th_api(ap, "GET", ENV_PATH, TA_KEY1, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    th_resp_free(&r);
    assert_int_equal(th_api(ap, "GET", ENV_PATH "/h-act-a/activity", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 405);
    th_resp_free(&r);
    /* The API's own activity route takes the token too, for its id only;
     * the token opens no other route. */
    assert_int_equal(post_activity(c->agent.port, "h-act-a", tok_a), 204);
    assert_int_equal(post_activity(c->agent.port, "h-act-b", tok_a), 401);
    assert_int_equal(th_api(c->agent.port, "GET", ENV_PATH "/h-act-a", tok_a, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
    /* Never in the agent's log. */
    char *log = ta_log(&c->agent);
    assert_non_null(log);
    assert_null(strstr(log, tok_a));
    assert_null(strstr(log, tok_b));
    assert_null(strstr(log, TA_ACTIVITY_KEY));
    free(log);
    free(url);
    free(tok_a);
    free(tok_b);
    both_exit_cleanly(state);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, ta_rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_slow_ide_is_starting_until_its_probe_passes),
        T(test_probe_that_never_passes_is_probe_failing),
        T(test_crash_loop_is_error_and_not_recreated),
        T(test_image_that_cannot_be_pulled_is_image_pull_failed),
        T(test_logs_route_answers_and_refuses),
        T(test_events_tell_what_happened_in_order),
        cmocka_unit_test_setup_teardown(test_activity_tokens_open_only_their_own_route,
                                        setup_activity, ta_rc_teardown),
        cmocka_unit_test_setup_teardown(test_auto_stop_is_announced_before_it_happens,
                                        setup_fast_minutes, ta_rc_teardown),
    };
#undef T
    return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
