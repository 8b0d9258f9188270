/*
 * Durable acknowledgements (controller.stateFile), end to end: the real
 * agent against the real azsim.
 *
 * - A PUT answered 201 and a kill -9 right after it: after the restart the
 *   environment is there, its group and share are adopted (converged, not
 *   created twice, never deleted by the reaper, which is authoritative
 *   after a full sync).
 * - A state file that cannot be written (its directory replaced by a
 *   regular file: fails as root too, unlike chmod): the mutation waiting
 *   for the failed write and every later one get 503 StateNotWritable with
 *   Retry-After, the later ones change nothing, /readyz answers 503 naming
 *   the state file; once the directory is back the retry succeeds, /readyz
 *   answers 200 again and mutations are acknowledged as before.
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
#include <sys/stat.h>
#include <unistd.h>

typedef struct dur_case {
    ta_sim_t sim;
    ta_agent_t agent;
    char dir[512];
    char path[600];
} dur_case_t;

static int start_case(dur_case_t *c)
{
    static const char *const sim_args[] = {"--provision-ms", "300", "--delete-ms", "200", NULL};
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s/durable-%d", th_tmpdir(), (int)getpid());
    snprintf(c->path, sizeof(c->path), "%s/state.json", c->dir);
    remove(c->path);
    mkdir(c->dir, 0700);
    if (ta_sim_start(&c->sim, sim_args) != 0)
        return -1;
    return ta_start_state_file(&c->agent, c->sim.port, c->path);
}

static void end_case(dur_case_t *c)
{
    assert_int_equal(ta_stop(&c->agent), 0);
    assert_int_equal(ta_sim_stop(&c->sim), 0);
    remove(c->path);
    rmdir(c->dir);
}

static long readyz(const dur_case_t *c, char **body)
{
    th_resp_t r;
    ta_api(&c->agent, "GET", "/readyz", NULL, NULL, &r);
    long st = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    th_resp_free(&r);
    return st;
}

static void test_kill_right_after_201_loses_nothing(void **state)
{
    (void)state;
    dur_case_t c;
    assert_int_equal(start_case(&c), 0);
    th_resp_t r;
    /* A full sync first: the reaper is then authoritative, and anything
     * not desired after the restart would be reaped as an orphan. */
    ta_req(&c.agent, "PUT", "/api/v1/environments",
           "{\"items\":[{\"id\":\"dur-old\",\"userId\":\"u1\",\"name\":\"a\","
           "\"cloudRegion\":\"eastus\"}]}",
           &r);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    cJSON *o = ta_env_wait(&c.agent, "dur-old", ta_is_phase, "RUNNING", 20000);
    assert_non_null(o);
    cJSON_Delete(o);

    char *body = ta_spec("u1", "fresh", "eastus", NULL);
    assert_int_equal(ta_put(&c.agent, "dur-new", body), 201);
    free(body);
    long long t0 = ta_now_ms();
    ta_sleep_ms(60); /* the create reaches azsim; the old debounce was 500 ms */
    int st;
    assert_int_equal(ta_restart_sig(&c.agent, SIGKILL, &st), 0);
    assert_true(ta_now_ms() - t0 < 1000);
    assert_int_equal(ta_wait_ready(&c.agent, 15000), 0);

    /* Known at once from the file, with its generation. */
    o = ta_env_get(&c.agent, "dur-new", NULL);
    assert_non_null(o);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    o = ta_env_wait(&c.agent, "dur-new", ta_is_phase, "RUNNING", 30000);
    assert_non_null(o);
    cJSON_Delete(o);
    /* Past several reaper passes (resync 2 s): nothing reaped. */
    ta_sleep_ms(5000);
    cJSON *res = ta_sim_get(&c.sim, "/_azsim/resources");
    assert_non_null(res);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "containerGroups")),
                     2);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "fileShares")), 2);
    cJSON_Delete(res);
    cJSON *stats = ta_sim_get(&c.sim, "/_azsim/stats");
    assert_non_null(stats);
    assert_int_equal(ta_sim_deleted(stats, "containerGroup", NULL), 0);
    assert_int_equal(ta_sim_deleted(stats, "fileShare", NULL), 0);
    cJSON_Delete(stats);
    end_case(&c);
}

/* PUT of env id: the status, and the error code of a 503 in code. */
static long put_code(const dur_case_t *c, const char *id, char *code, size_t len, int *retry_after)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/environments/%s", id);
    char *body = ta_spec("u1", id, "eastus", NULL);
    th_resp_t r;
    ta_req(&c->agent, "PUT", path, body, &r);
    free(body);
    snprintf(code, len, "%s", ta_err_code(&r));
    char *ra = th_resp_header(&r, "retry-after");
    *retry_after = ra ? atoi(ra) : 0;
    free(ra);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

static void test_unwritable_state_file(void **state)
{
    (void)state;
    dur_case_t c;
    char code[64], moved[600], *rbody = NULL;
    int ra = 0;
    assert_int_equal(start_case(&c), 0);
    assert_int_equal(put_code(&c, "dw-a", code, sizeof(code), &ra), 201);

    /* The directory becomes a regular file: open() of the temp file fails
     * with ENOTDIR, for root as for anyone. */
    snprintf(moved, sizeof(moved), "%s.away", c.dir);
    assert_int_equal(rename(c.dir, moved), 0);
    FILE *f = fopen(c.dir, "w");
    assert_non_null(f);
    fclose(f);

    /* The change waiting for the failed write: 503, not 201. */
    assert_int_equal(put_code(&c, "dw-b", code, sizeof(code), &ra), 503);
    assert_string_equal(code, "StateNotWritable");
    assert_true(ra > 0);
    assert_int_equal(readyz(&c, &rbody), 503);
    assert_non_null(strstr(rbody, "state file not writable"));
    assert_non_null(strstr(rbody, "state.json"));
    free(rbody);
    /* Later ones are refused before anything changes. */
    assert_int_equal(put_code(&c, "dw-c", code, sizeof(code), &ra), 503);
    assert_string_equal(code, "StateNotWritable");
    long st = 0;
    cJSON *o = ta_env_get(&c.agent, "dw-c", &st);
    assert_null(o);
    assert_int_equal(st, 404);
    th_resp_t r;
    ta_req(&c.agent, "DELETE", "/api/v1/environments/dw-a", NULL, &r);
    assert_int_equal(r.status, 503);
    th_resp_free(&r);
    /* Reads still work. */
    o = ta_env_get(&c.agent, "dw-a", &st);
    assert_non_null(o);
    cJSON_Delete(o);

    /* The directory is back: the retry (backoff 1 s, 2 s, ...) succeeds. */
    assert_int_equal(remove(c.dir), 0);
    assert_int_equal(rename(moved, c.dir), 0);
    long long t0 = ta_now_ms();
    while (readyz(&c, NULL) != 200 && ta_now_ms() - t0 < 15000)
        ta_sleep_ms(100);
    assert_int_equal(readyz(&c, NULL), 200);
    assert_int_equal(put_code(&c, "dw-c", code, sizeof(code), &ra), 201);

    /* What was acknowledged, and dw-b (kept in memory, written by the
     * retry), survive a crash. */
    int kst;
    assert_int_equal(ta_restart_sig(&c.agent, SIGKILL, &kst), 0);
    assert_int_equal(ta_wait_ready(&c.agent, 15000), 0);
    const char *ids[] = {"dw-a", "dw-b", "dw-c"};
    for (size_t i = 0; i < 3; i++) {
        o = ta_env_get(&c.agent, ids[i], &st);
        assert_non_null(o);
        cJSON_Delete(o);
    }
    char *log = ta_log(&c.agent);
    free(log);
    end_case(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_right_after_201_loses_nothing),
        cmocka_unit_test(test_unwritable_state_file),
    };
    return cmocka_run_group_tests_name("durable_e2e", tests, NULL, NULL);
}
