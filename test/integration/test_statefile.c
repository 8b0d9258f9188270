/*
 * controller.stateFile and graceful shutdown, end to end: the real agent
 * against the real azsim.
 *
 * - After a crash (kill -9) and a restart with the state file, the desired
 *   set is back, authoritative for the reaper without a full sync, nothing
 *   in Azure is recreated or deleted, no secret value is in the file, and
 *   an environment with secrets waits for them; the PUT that brings the
 *   same secret back does not bump its generation.
 * - SIGTERM while ARM calls are in flight exits 0 within the grace period,
 *   leaves a state file the next start loads, and the next start finishes
 *   the work with no duplicate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_VALUE "ghp_statefile_S3CRET_value"

typedef struct sf_case {
    ta_sim_t sim;
    ta_agent_t agent;
    char path[600];
} sf_case_t;

static int start_case(sf_case_t *c, int latency_ms)
{
    static const char *const sim_args[] = {"--provision-ms", "300", "--delete-ms", "200", NULL};
    memset(c, 0, sizeof(*c));
    snprintf(c->path, sizeof(c->path), "%s/state-%d.json", th_tmpdir(), (int)getpid());
    remove(c->path);
    if (ta_sim_start(&c->sim, sim_args) != 0)
        return -1;
    if (latency_ms) {
        char f[64];
        snprintf(f, sizeof(f), "{\"latencyMs\":%d}", latency_ms);
        if (ta_sim_faults(&c->sim, f) != 0)
            return -1;
    }
    return ta_start_state_file(&c->agent, c->sim.port, c->path);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

static long count_status(const cJSON *stats, const char *op, const char *code)
{
    return ta_sim_stat(stats, op, code);
}

static void test_restart_from_state_file(void **state)
{
    (void)state;
    sf_case_t c;
    assert_int_equal(start_case(&c, 0), 0);
    th_resp_t r;
    ta_req(&c.agent, "PUT", "/api/v1/environments",
           "{\"items\":["
           "{\"id\":\"sf-secret\",\"userId\":\"u1\",\"name\":\"a\",\"cloudRegion\":\"eastus\","
           "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET_VALUE "\"}},"
           "{\"id\":\"sf-plain\",\"userId\":\"u1\",\"name\":\"b\",\"cloudRegion\":\"eastus\"}]}",
           &r);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    cJSON *o = ta_env_wait(&c.agent, "sf-secret", ta_is_phase, "RUNNING", 20000);
    assert_non_null(o);
    cJSON_Delete(o);
    o = ta_env_wait(&c.agent, "sf-plain", ta_is_phase, "RUNNING", 20000);
    assert_non_null(o);
    cJSON_Delete(o);
    ta_sleep_ms(1000); /* past the write debounce */

    char *file = read_file(c.path);
    assert_non_null(file);
    assert_non_null(strstr(file, "sf-secret"));
    assert_non_null(strstr(file, "GITHUB_TOKEN"));
    assert_null(strstr(file, SECRET_VALUE));
    free(file);

    int st;
    assert_int_equal(ta_restart_sig(&c.agent, SIGKILL, &st), 0);
    assert_int_equal(ta_wait_ready(&c.agent, 15000), 0);

    /* Authoritative without a full sync: the file said one was received. */
    ta_req(&c.agent, "GET", "/api/v1/status", NULL, &r);
    cJSON *s = ta_json(&r);
    th_resp_free(&r);
    assert_true(cJSON_IsTrue(ta_path(s, "synced")));
    assert_true(cJSON_IsTrue(ta_path(s, "reaper.authoritative")));
    cJSON_Delete(s);

    /* Both back, observed RUNNING; the one with a secret waits for it. */
    o = ta_env_wait(&c.agent, "sf-plain", ta_is_phase, "RUNNING", 20000);
    assert_non_null(o);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    o = ta_env_wait(&c.agent, "sf-secret", ta_is_phase, "RUNNING", 20000);
    assert_non_null(o);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    const cJSON *synced = ta_condition(o, "Synced");
    assert_non_null(synced);
    assert_string_equal(ta_str(synced, "status"), "False");
    assert_non_null(strstr(ta_str(synced, "message"), "secret"));
    cJSON_Delete(o);

    /* The same secret again: adopted, same generation, converged. */
    ta_req(&c.agent, "PUT", "/api/v1/environments/sf-secret",
           "{\"userId\":\"u1\",\"name\":\"a\",\"cloudRegion\":\"eastus\","
           "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET_VALUE "\"}}",
           &r);
    assert_int_equal(r.status, 200);
    o = ta_json(&r);
    th_resp_free(&r);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    ta_sleep_ms(3000);
    o = ta_env_get(&c.agent, "sf-secret", NULL);
    assert_non_null(o);
    assert_string_equal(ta_str(ta_condition(o, "Synced"), "status"), "True");
    cJSON_Delete(o);

    /* Azure saw one create per environment and no deletion at all. */
    cJSON *stats = ta_sim_get(&c.sim, "/_azsim/stats");
    assert_non_null(stats);
    assert_int_equal(count_status(stats, "containerGroups.createOrUpdate", NULL), 2);
    assert_int_equal(ta_sim_deleted(stats, "containerGroup", NULL), 0);
    assert_int_equal(ta_sim_deleted(stats, "fileShare", NULL), 0);
    cJSON_Delete(stats);

    char *log = ta_log(&c.agent);
    assert_null(strstr(log, SECRET_VALUE));
    free(log);
    assert_int_equal(ta_stop(&c.agent), 0);
    assert_int_equal(ta_sim_stop(&c.sim), 0);
    remove(c.path);
}

static void test_sigterm_with_arm_calls_in_flight(void **state)
{
    (void)state;
    sf_case_t c;
    /* Every ARM answer takes 1.5 s: SIGTERM lands while calls are out. */
    assert_int_equal(start_case(&c, 1500), 0);
    const char *ids[] = {"sg-a", "sg-b", "sg-c", "sg-d"};
    for (size_t i = 0; i < 4; i++) {
        char *body = ta_spec("u1", "ws", "eastus", NULL);
        assert_int_equal(ta_put(&c.agent, ids[i], body), 201);
        free(body);
    }
    ta_sleep_ms(400);
    long long t0 = ta_now_ms();
    int st = th_stop(&c.agent.proc, SIGTERM, 15000);
    long long took = ta_now_ms() - t0;
    assert_int_equal(st, 0);
    /* Within shutdownGraceSeconds (5) plus start-up slack of a slow build. */
    assert_true(took < 7000);
    char *log = ta_log(&c.agent);
    assert_non_null(strstr(log, "\"msg\":\"stopped\""));
    free(log);

    /* The state file is whole: the next start loads it, with all four. */
    assert_int_equal(ta_sim_faults(&c.sim, "{\"latencyMs\":0}"), 0);
    int rst;
    assert_int_equal(ta_restart(&c.agent, &rst), 0);
    assert_int_equal(ta_wait_ready(&c.agent, 15000), 0);
    for (size_t i = 0; i < 4; i++) {
        cJSON *o = ta_env_wait(&c.agent, ids[i], ta_is_phase, "RUNNING", 30000);
        assert_non_null(o);
        cJSON_Delete(o);
    }
    /* Exactly one group and one share each: nothing duplicated. */
    cJSON *res = ta_sim_get(&c.sim, "/_azsim/resources");
    assert_non_null(res);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "containerGroups")),
                     4);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "fileShares")), 4);
    cJSON_Delete(res);
    assert_int_equal(ta_stop(&c.agent), 0);
    assert_int_equal(ta_sim_stop(&c.sim), 0);
    remove(c.path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_from_state_file),
        cmocka_unit_test(test_sigterm_with_arm_calls_in_flight),
    };
    return cmocka_run_group_tests_name("statefile_e2e", tests, NULL, NULL);
}
