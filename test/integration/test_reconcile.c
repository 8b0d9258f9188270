/*
 * End-to-end tests of the reconcile loop (DESIGN.md sections 4, 5 and 8):
 * the real bin/dev8-agent converges the real bin/azsim over HTTP. Every
 * test starts a fresh emulator (fast timing) and a fresh agent pointed at
 * it, and asserts on both sides: the agent's API answers and what azsim
 * holds (/_azsim/resources) and was asked (/_azsim/stats). Each test ends
 * by stopping both with SIGTERM and requiring exit status 0 (under
 * `make SANITIZE=address,undefined test` that also fails on leaks).
 *
 * Faults, throttling and crashes are in test_reconcile_faults.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "rc_steps.h"

#include <ctype.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_PATH "/api/v1/environments"
/* Convergence bounds: a create takes ~1-2 s against azsim's 300 ms. */
#define T_CONVERGE 15000
#define T_DELETE 15000

static void put_env(ta_rc_t *c, const char *id, const char *extra, long want)
{
    char *body = ta_spec("u-42", "workspace", "eastus", extra);
    long st = ta_put(&c->agent, id, body);
    free(body);
    if (st != want)
        print_message("PUT %s answered %ld, wanted %ld\n", id, st, want);
    assert_int_equal(st, want);
}

static void post_env(ta_rc_t *c, const char *id, const char *verb, long want)
{
    char path[256];
    snprintf(path, sizeof path, ENV_PATH "/%s/%s", id, verb);
    th_resp_t r;
    ta_req(&c->agent, "POST", path, NULL, &r);
    if (r.status != want)
        print_message("POST %s answered %ld: %s\n", path, r.status, r.body);
    assert_int_equal(r.status, want);
    th_resp_free(&r);
}

static cJSON *delete_env(ta_rc_t *c, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, ENV_PATH "/%s", id);
    th_resp_t r;
    ta_req(&c->agent, "DELETE", path, NULL, &r);
    if (r.status != 202)
        print_message("DELETE %s answered %ld: %s\n", path, r.status, r.body);
    assert_int_equal(r.status, 202);
    cJSON *j = ta_json(&r);
    th_resp_free(&r);
    return j;
}

static void assert_cond(const cJSON *obj, const char *type, const char *status, const char *reason)
{
    const char *st = cond_field(obj, type, "status");
    const char *re = cond_field(obj, type, "reason");
    if (!st || strcmp(st, status) != 0 || (reason && (!re || strcmp(re, reason) != 0))) {
        char *t = cJSON_PrintUnformatted(obj);
        print_message("condition %s: wanted %s/%s in %s\n", type, status, reason ? reason : "*", t);
        free(t);
    }
    assert_non_null(st);
    assert_string_equal(st, status);
    if (reason) {
        assert_non_null(re);
        assert_string_equal(re, reason);
    }
}

/* The group's environment variable of that name, or NULL. */
static const cJSON *env_var(const cJSON *group, const char *name)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, ta_path(group, "properties.containers.0.properties.environmentVariables"))
    {
        const char *n = ta_str(v, "name");
        if (n && strcmp(n, name) == 0)
            return v;
    }
    return NULL;
}

static int is_hex16(const char *s)
{
    if (!s || strlen(s) != 16)
        return 0;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
            return 0;
    return 1;
}

static size_t member_count(const cJSON *o)
{
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        n++;
    }
    return n;
}

/* Our five tags on the group, with the values of section 4. */
static void assert_group_tags(const cJSON *g, const char *id, const char *user)
{
    const cJSON *tags = ta_path(g, "tags");
    assert_int_equal(member_count(tags), 5);
    assert_string_equal(ta_str(tags, "dev8-managed-by"), "dev8-agent");
    assert_string_equal(ta_str(tags, "dev8-controller"), TA_RC_CONTROLLER);
    assert_string_equal(ta_str(tags, "dev8-env-id"), id);
    assert_string_equal(ta_str(tags, "dev8-user-id"), user);
    assert_true(is_hex16(ta_str(tags, "dev8-spec-hash")));
}

static void assert_share_metadata(const cJSON *s, const char *id, const char *user)
{
    const cJSON *md = ta_path(s, "properties.metadata");
    assert_int_equal(member_count(md), 4);
    assert_string_equal(ta_str(md, "dev8managedby"), "dev8agent");
    assert_string_equal(ta_str(md, "dev8controller"), TA_RC_CONTROLLER);
    assert_string_equal(ta_str(md, "dev8envid"), id);
    assert_string_equal(ta_str(md, "dev8userid"), user);
}

static const char *group_state(const cJSON *g)
{
    return ta_str(g, "properties.instanceView.state");
}

/* --- sim checks for ta_sim_wait --------------------------------------------- */

typedef struct group_want {
    const char *name;
    const char *state; /* instanceView.state, NULL: any */
    int absent;        /* 1: wait until the group is gone */
} group_want_t;

static int group_is(const cJSON *res, const void *arg)
{
    const group_want_t *w = arg;
    const cJSON *g = ta_sim_group(res, w->name);
    if (w->absent)
        return res && !g;
    if (!g)
        return 0;
    const char *st = group_state(g);
    return !w->state || (st && strcmp(st, w->state) == 0);
}

/* ---- 1. create -> RUNNING ------------------------------------------------ */

#define SECRET_1 "ghp_itestSECRETvalueNUMBER1"

static void test_create_converges_to_running(void **state)
{
    ta_rc_t *c = ctx(state);
    /* A second environment in the other region, to see the region's
     * resource group and storage account used. */
    char *we = ta_spec("u-43", "other", "westeurope", NULL);
    assert_int_equal(ta_put(&c->agent, "rc-west", we), 201);
    free(we);
    put_env(c, "rc-create",
            "\"baseImage\":\"python\",\"cpuCores\":1.5,\"memoryGB\":3,\"storageGB\":25,"
            "\"env\":{\"EDITOR\":\"vim\",\"LANG\":\"C.UTF-8\"},"
            "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET_1 "\"}",
            201);
    long long t0 = ta_now_ms();
    cJSON *o = wait_phase(c, "rc-create", "RUNNING", T_CONVERGE);
    print_message("rc-create RUNNING after %lld ms\n", ta_now_ms() - t0);

    cJSON_Delete(wait_phase(c, "rc-west", "RUNNING", T_CONVERGE));

    /* What azsim holds. */
    cJSON *res = sim_get(c, "/_azsim/resources");
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "containerGroups")), 2);
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "fileShares")), 2);
    const cJSON *gw = ta_sim_group(res, "dev8-rc-west");
    assert_non_null(gw);
    assert_string_equal(ta_str(gw, "location"), "westeurope");
    assert_non_null(strstr(ta_str(gw, "id"), "/resourceGroups/rg-dev8-westeurope/"));
    assert_string_equal(ta_str(gw, "properties.volumes.0.azureFile.storageAccountName"),
                        "dev8westeurope");
    assert_group_tags(gw, "rc-west", "u-43");
    const cJSON *sw = ta_sim_share(res, "dev8-rc-west");
    assert_non_null(sw);
    assert_non_null(strstr(ta_str(sw, "id"), "/storageAccounts/dev8westeurope/"));
    assert_int_equal((int)ta_num(sw, "properties.shareQuota"), 20);
    const cJSON *g = ta_sim_group(res, "dev8-rc-create");
    assert_non_null(g);
    assert_string_equal(ta_str(g, "name"), "dev8-rc-create");
    assert_string_equal(ta_str(g, "location"), "eastus");
    assert_group_tags(g, "rc-create", "u-42");
    assert_string_equal(ta_str(g, "properties.osType"), "Linux");
    assert_string_equal(ta_str(g, "properties.restartPolicy"), "OnFailure");
    assert_string_equal(ta_str(g, "properties.provisioningState"), "Succeeded");
    assert_string_equal(group_state(g), "Running");
    assert_int_equal(cJSON_GetArraySize(ta_path(g, "properties.containers")), 1);
    const cJSON *cp = ta_path(g, "properties.containers.0");
    assert_string_equal(ta_str(cp, "name"), "workspace");
    assert_string_equal(ta_str(cp, "properties.image"), TA_RC_IMAGE_PYTHON);
    assert_true(ta_num(cp, "properties.resources.requests.cpu") == 1.5);
    assert_true(ta_num(cp, "properties.resources.requests.memoryInGB") == 3);
    assert_int_equal((int)ta_num(cp, "properties.ports.0.port"), TA_RC_PORT);
    /* env as values, the secret only as secureValue. */
    const cJSON *v = env_var(g, "EDITOR");
    assert_non_null(v);
    assert_string_equal(ta_str(v, "value"), "vim");
    v = env_var(g, "LANG");
    assert_non_null(v);
    assert_string_equal(ta_str(v, "value"), "C.UTF-8");
    v = env_var(g, "GITHUB_TOKEN");
    assert_non_null(v);
    assert_string_equal(ta_str(v, "secureValue"), SECRET_1);
    assert_null(ta_path(v, "value"));
    /* The share mounted at workspace.mountPath. */
    const char *vol = ta_str(cp, "properties.volumeMounts.0.name");
    assert_non_null(vol);
    assert_string_equal(ta_str(cp, "properties.volumeMounts.0.mountPath"), TA_RC_MOUNT);
    const cJSON *volume = ta_path(g, "properties.volumes.0");
    assert_string_equal(ta_str(volume, "name"), vol);
    assert_string_equal(ta_str(volume, "azureFile.shareName"), "dev8-rc-create");
    assert_string_equal(ta_str(volume, "azureFile.storageAccountName"), "dev8eastus");
    /* Public IP, the port, and the DNS label dev8-{id}-{6 hex of sha256}. */
    assert_string_equal(ta_str(g, "properties.ipAddress.type"), "Public");
    assert_int_equal((int)ta_num(g, "properties.ipAddress.ports.0.port"), TA_RC_PORT);
    unsigned char md[SHA256_DIGEST_LENGTH];
    const char *in = TA_RC_CONTROLLER "/rc-create";
    SHA256((const unsigned char *)in, strlen(in), md);
    char label[64];
    snprintf(label, sizeof label, "dev8-rc-create-%02x%02x%02x", md[0], md[1], md[2]);
    assert_string_equal(ta_str(g, "properties.ipAddress.dnsNameLabel"), label);
    const char *ip = ta_str(g, "properties.ipAddress.ip");
    const char *fqdn = ta_str(g, "properties.ipAddress.fqdn");
    assert_non_null(ip);
    assert_non_null(fqdn);

    const cJSON *s = ta_sim_share(res, "dev8-rc-create");
    assert_non_null(s);
    assert_int_equal((int)ta_num(s, "properties.shareQuota"), 25);
    assert_share_metadata(s, "rc-create", "u-42");

    /* What the agent says. */
    assert_string_equal(ta_str(o, "status.aciContainerGroupId"), "dev8-rc-create");
    assert_string_equal(ta_str(o, "status.azureFileShareName"), "dev8-rc-create");
    assert_string_equal(ta_str(o, "status.aciPublicIp"), ip);
    assert_string_equal(ta_str(o, "status.fqdn"), fqdn);
    char url[320];
    snprintf(url, sizeof url, "http://%s:%d", fqdn, TA_RC_PORT);
    assert_string_equal(ta_str(o, "status.vsCodeUrl"), url);
    assert_cond(o, "Ready", "True", "Available");
    assert_cond(o, "Synced", "True", "ReconcileSuccess");
    assert_true(ta_num(o, "status.observedGeneration") == ta_num(o, "generation"));
    assert_true(ta_num(o, "generation") == 1);
    assert_true(cJSON_IsNull(ta_path(o, "status.lastError")));
    assert_non_null(ta_str(o, "status.lastReconcileTime"));
    assert_string_equal(ta_str(o, "spec.secretEnv.GITHUB_TOKEN"), "<redacted>");

    /* One share and one group per environment were created, nothing deleted. */
    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "fileShares.create", "201"), 2);
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", NULL), 2);
    assert_int_equal(ta_sim_stat(st, "containerGroups.delete", NULL), 0);
    assert_int_equal(cJSON_GetArraySize(ta_path(st, "deleted")), 0);
    cJSON_Delete(st);
    cJSON_Delete(res);
    cJSON_Delete(o);
    both_exit_cleanly(state);
}

/* ---- 2. stop -> STOPPED, start -> RUNNING ------------------------------------ */

static void test_stop_then_start(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-power", NULL, 201);
    /* Created Stopped: the share only, no group until it is started. */
    put_env(c, "rc-cold", "\"powerState\":\"Stopped\"", 201);
    cJSON_Delete(wait_phase(c, "rc-power", "RUNNING", T_CONVERGE));
    cJSON *cold = wait_phase(c, "rc-cold", "STOPPED", T_CONVERGE);
    assert_string_equal(ta_str(cold, "status.azureFileShareName"), "dev8-rc-cold");
    assert_true(cJSON_IsNull(ta_path(cold, "status.aciContainerGroupId")));
    cJSON_Delete(cold);
    cJSON *res0 = sim_get(c, "/_azsim/resources");
    assert_null(ta_sim_group(res0, "dev8-rc-cold"));
    assert_non_null(ta_sim_share(res0, "dev8-rc-cold"));
    cJSON_Delete(res0);
    post_env(c, "rc-cold", "start", 202);

    post_env(c, "rc-power", "stop", 202);
    cJSON *o = wait_phase(c, "rc-power", "STOPPED", T_CONVERGE);
    assert_cond(o, "Ready", "False", "Stopped");
    assert_cond(o, "Synced", "True", NULL);
    assert_string_equal(ta_str(o, "spec.powerState"), "Stopped");
    assert_true(ta_num(o, "status.observedGeneration") == ta_num(o, "generation"));
    /* The share keeps the workspace; the group is still there, stopped. */
    assert_string_equal(ta_str(o, "status.azureFileShareName"), "dev8-rc-power");
    cJSON_Delete(o);
    cJSON *res = sim_get(c, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, "dev8-rc-power");
    assert_non_null(g);
    assert_string_equal(group_state(g), "Stopped");
    assert_non_null(ta_sim_share(res, "dev8-rc-power"));
    cJSON_Delete(res);

    post_env(c, "rc-power", "start", 202);
    o = wait_phase(c, "rc-power", "RUNNING", T_CONVERGE);
    assert_cond(o, "Ready", "True", "Available");
    res = sim_get(c, "/_azsim/resources");
    g = ta_sim_group(res, "dev8-rc-power");
    assert_non_null(g);
    assert_string_equal(group_state(g), "Running");
    /* ACI gives a new IP on start: the status follows. */
    assert_non_null(ta_str(g, "properties.ipAddress.ip"));
    assert_string_equal(ta_str(o, "status.aciPublicIp"), ta_str(g, "properties.ipAddress.ip"));
    cJSON_Delete(res);
    cJSON_Delete(o);

    cold = wait_phase(c, "rc-cold", "RUNNING", T_CONVERGE);
    assert_string_equal(ta_str(cold, "status.aciContainerGroupId"), "dev8-rc-cold");
    cJSON_Delete(cold);

    /* By the ACI stop/start operations, not by recreating the group. */
    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "containerGroups.stop", NULL), 1);
    assert_int_equal(ta_sim_stat(st, "containerGroups.start", NULL), 1);
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", NULL), 2);
    assert_int_equal(ta_sim_stat(st, "containerGroups.delete", NULL), 0);
    cJSON_Delete(st);
    both_exit_cleanly(state);
}

/* ---- 3. drift: a cpu change recreates the group, the share stays ------------- */

static int running_at_gen(const cJSON *o, const void *gen)
{
    return ta_is_phase(o, "RUNNING") &&
           ta_num(o, "status.observedGeneration") == (double)*(const int *)gen;
}

static void test_cpu_change_recreates_group_keeps_share(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-drift", "\"cpuCores\":2", 201);
    cJSON_Delete(wait_phase(c, "rc-drift", "RUNNING", T_CONVERGE));
    cJSON *res = sim_get(c, "/_azsim/resources");
    char hash1[32];
    snprintf(hash1, sizeof hash1, "%s",
             ta_str(ta_sim_group(res, "dev8-rc-drift"), "tags.dev8-spec-hash"));
    cJSON_Delete(res);

    put_env(c, "rc-drift", "\"cpuCores\":1", 200);
    int gen = 2;
    cJSON *o = ta_env_wait(&c->agent, "rc-drift", running_at_gen, &gen, T_CONVERGE);
    assert_non_null(o);
    assert_cond(o, "Ready", "True", "Available");
    cJSON_Delete(o);

    res = sim_get(c, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, "dev8-rc-drift");
    assert_non_null(g);
    assert_true(ta_num(g, "properties.containers.0.properties.resources.requests.cpu") == 1);
    assert_string_equal(group_state(g), "Running");
    assert_group_tags(g, "rc-drift", "u-42");
    assert_string_not_equal(ta_str(g, "tags.dev8-spec-hash"), hash1);
    assert_non_null(ta_sim_share(res, "dev8-rc-drift"));
    cJSON_Delete(res);

    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "containerGroups.delete", NULL), 1);
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", "201"), 2);
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", NULL), 2);
    assert_int_equal(ta_sim_deleted(st, "containerGroup", "dev8-rc-drift"), 1);
    /* Invariant 2: the share of a desired environment is never deleted. */
    assert_int_equal(ta_sim_deleted(st, "fileShare", NULL), 0);
    assert_int_equal(ta_sim_stat(st, "fileShares.delete", NULL), 0);
    assert_int_equal(ta_sim_stat(st, "fileShares.create", NULL), 1);
    cJSON_Delete(st);
    both_exit_cleanly(state);
}

static int synced_reason_is(const cJSON *o, const void *want)
{
    const char *re = cond_field(o, "Synced", "reason");
    return re && strcmp(re, (const char *)want) == 0 &&
           ta_num(o, "status.observedGeneration") == ta_num(o, "generation");
}

/* updatePolicy OnNextStart: a change that recreates the group never kills
 * the running session; it waits (Synced UpdatePending) until POST
 * .../restart (or the next stop/start) applies it. */
static void test_on_next_start_waits_for_restart(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-later", "\"cpuCores\":2,\"updatePolicy\":\"OnNextStart\"", 201);
    cJSON_Delete(wait_phase(c, "rc-later", "RUNNING", T_CONVERGE));
    put_env(c, "rc-later", "\"cpuCores\":1,\"updatePolicy\":\"OnNextStart\"", 200);
    cJSON *o = ta_env_wait(&c->agent, "rc-later", synced_reason_is, "UpdatePending", T_CONVERGE);
    assert_non_null(o);
    assert_string_equal(ta_str(o, "status.phase"), "RUNNING");
    cJSON_Delete(o);
    ta_sleep_ms(2 * TA_RC_RESYNC_S * 1000);
    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "containerGroups.delete", NULL), 0);
    cJSON_Delete(st);
    cJSON *res = sim_get(c, "/_azsim/resources");
    assert_true(ta_num(ta_sim_group(res, "dev8-rc-later"),
                       "properties.containers.0.properties.resources.requests.cpu") == 2);
    cJSON_Delete(res);

    post_env(c, "rc-later", "restart", 202);
    int gen = 2;
    o = ta_env_wait(&c->agent, "rc-later", running_at_gen, &gen, T_CONVERGE);
    assert_non_null(o);
    assert_cond(o, "Synced", "True", "ReconcileSuccess");
    cJSON_Delete(o);
    res = sim_get(c, "/_azsim/resources");
    assert_true(ta_num(ta_sim_group(res, "dev8-rc-later"),
                       "properties.containers.0.properties.resources.requests.cpu") == 1);
    cJSON_Delete(res);
    post_env(c, "rc-none", "restart", 404);
    both_exit_cleanly(state);
}

/*
 * A full sync built from Prisma rows (no powerState column, tokens kept
 * elsewhere) must neither start a stopped workspace nor recreate a running
 * one without its token: both fields are sticky.
 */
static void test_sync_without_sticky_fields_changes_nothing(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-st1", "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET_1 "\"}", 201);
    put_env(c, "rc-st2", NULL, 201);
    cJSON_Delete(wait_phase(c, "rc-st1", "RUNNING", T_CONVERGE));
    cJSON_Delete(wait_phase(c, "rc-st2", "RUNNING", T_CONVERGE));
    post_env(c, "rc-st2", "stop", 202);
    cJSON_Delete(wait_phase(c, "rc-st2", "STOPPED", T_CONVERGE));
    cJSON *st = sim_get(c, "/_azsim/stats");
    long creates = ta_sim_stat(st, "containerGroups.createOrUpdate", NULL);
    long starts = ta_sim_stat(st, "containerGroups.start", NULL);
    cJSON_Delete(st);

    th_resp_t r;
    ta_req(&c->agent, "PUT", ENV_PATH,
           "{\"items\":[{\"id\":\"rc-st1\",\"userId\":\"u-42\",\"name\":\"workspace\","
           "\"cloudRegion\":\"eastus\"},{\"id\":\"rc-st2\",\"userId\":\"u-42\","
           "\"name\":\"workspace\",\"cloudRegion\":\"eastus\"}]}",
           &r);
    assert_int_equal(r.status, 200);
    cJSON *res = ta_json(&r);
    th_resp_free(&r);
    assert_int_equal((int)ta_num(res, "unchanged"), 2);
    assert_int_equal((int)ta_num(res, "updated"), 0);
    cJSON_Delete(res);
    ta_sleep_ms(2 * TA_RC_RESYNC_S * 1000);
    cJSON *o = wait_phase(c, "rc-st2", "STOPPED", T_CONVERGE);
    assert_string_equal(ta_str(o, "spec.powerState"), "Stopped");
    cJSON_Delete(o);
    o = wait_phase(c, "rc-st1", "RUNNING", T_CONVERGE);
    assert_string_equal(ta_str(o, "spec.secretEnv.GITHUB_TOKEN"), "<redacted>");
    cJSON_Delete(o);
    st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", NULL), creates);
    assert_int_equal(ta_sim_stat(st, "containerGroups.start", NULL), starts);
    assert_int_equal(ta_sim_stat(st, "containerGroups.delete", NULL), 0);
    cJSON_Delete(st);
    both_exit_cleanly(state);
}

/* ---- 4. storage: grow in place, shrink refused --------------------------------- */

static int share_quota_is(const cJSON *res, const void *q)
{
    const cJSON *s = ta_sim_share(res, "dev8-rc-quota");
    return s && ta_num(s, "properties.shareQuota") == (double)*(const int *)q;
}

static int synced_is(const cJSON *o, const void *want)
{
    const char *st = cond_field(o, "Synced", "status");
    return st && strcmp(st, (const char *)want) == 0 && ta_is_phase(o, "RUNNING") &&
           ta_num(o, "status.observedGeneration") == ta_num(o, "generation");
}

static void test_storage_grows_and_never_shrinks(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-quota", "\"storageGB\":20", 201);
    cJSON_Delete(wait_phase(c, "rc-quota", "RUNNING", T_CONVERGE));

    put_env(c, "rc-quota", "\"storageGB\":30", 200);
    int q30 = 30;
    cJSON *res = ta_sim_wait(&c->sim, "/_azsim/resources", share_quota_is, &q30, T_CONVERGE);
    assert_non_null(res);
    cJSON_Delete(res);
    cJSON *o = ta_env_wait(&c->agent, "rc-quota", synced_is, "True", T_CONVERGE);
    assert_non_null(o);
    assert_true(ta_num(o, "generation") == 2);
    cJSON_Delete(o);
    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "fileShares.update", "200"), 1);
    /* storageGB is not part of the group's spec: no recreation. */
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", NULL), 1);
    cJSON_Delete(st);

    /* A shrink is refused with a condition naming it, never applied. */
    put_env(c, "rc-quota", "\"storageGB\":10", 200);
    o = ta_env_wait(&c->agent, "rc-quota", synced_is, "False", T_CONVERGE);
    assert_non_null(o);
    assert_cond(o, "Synced", "False", NULL);
    const char *msg = cond_field(o, "Synced", "message");
    assert_non_null(msg);
    assert_true(strstr(msg, "shrink") != NULL);
    assert_true(strstr(msg, "10") != NULL && strstr(msg, "30") != NULL);
    assert_cond(o, "Ready", "True", "Available");
    cJSON_Delete(o);
    /* Still refused after a resync, and the quota untouched. */
    ta_sleep_ms(TA_RC_RESYNC_S * 1000 + 500);
    o = ta_env_get(&c->agent, "rc-quota", NULL);
    assert_non_null(o);
    assert_cond(o, "Synced", "False", NULL);
    cJSON_Delete(o);
    res = sim_get(c, "/_azsim/resources");
    assert_true(share_quota_is(res, &q30));
    cJSON_Delete(res);
    st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_stat(st, "fileShares.update", NULL), 1);
    assert_int_equal(ta_sim_deleted(st, "fileShare", NULL), 0);
    cJSON_Delete(st);

    /* Back to the share's size: Synced again. */
    put_env(c, "rc-quota", "\"storageGB\":30", 200);
    o = ta_env_wait(&c->agent, "rc-quota", synced_is, "True", T_CONVERGE);
    assert_non_null(o);
    cJSON_Delete(o);
    both_exit_cleanly(state);
}

/* ---- 5. DELETE with storagePolicy Delete and Retain ----------------------------- */

static int has_event(const ta_watch_t *w, const char *type, const char *id)
{
    for (size_t i = 0; i < w->nevents; i++) {
        if (strcmp(w->events[i].type, type) != 0)
            continue;
        cJSON *d = cJSON_Parse(w->events[i].data);
        const char *got = ta_str(d, "id");
        int match = got && strcmp(got, id) == 0;
        cJSON_Delete(d);
        if (match)
            return 1;
    }
    return 0;
}

static void test_delete_policies(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-del", "\"storagePolicy\":\"Delete\"", 201);
    put_env(c, "rc-keep", "\"storagePolicy\":\"Retain\"", 201);
    cJSON_Delete(wait_phase(c, "rc-del", "RUNNING", T_CONVERGE));
    cJSON_Delete(wait_phase(c, "rc-keep", "RUNNING", T_CONVERGE));

    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, &c->agent, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 2, 5000); /* the two ADDED of the current set */

    /* Deleted while its group is still being created. */
    put_env(c, "rc-quick", NULL, 201);
    group_want_t creating = {"dev8-rc-quick", NULL, 0};
    cJSON *res = ta_sim_wait(&c->sim, "/_azsim/resources", group_is, &creating, T_CONVERGE);
    assert_non_null(res);
    print_message("rc-quick deleted in provisioningState %s\n",
                  ta_str(ta_sim_group(res, "dev8-rc-quick"), "properties.provisioningState"));
    cJSON_Delete(res);
    cJSON_Delete(delete_env(c, "rc-quick"));

    cJSON *o = delete_env(c, "rc-del");
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    cJSON_Delete(o);
    cJSON_Delete(delete_env(c, "rc-keep"));
    assert_int_equal(ta_env_wait_gone(&c->agent, "rc-del", T_DELETE), 0);
    assert_int_equal(ta_env_wait_gone(&c->agent, "rc-keep", T_DELETE), 0);
    assert_int_equal(ta_env_wait_gone(&c->agent, "rc-quick", T_DELETE), 0);

    res = sim_get(c, "/_azsim/resources");
    assert_null(ta_sim_group(res, "dev8-rc-quick"));
    assert_null(ta_sim_share(res, "dev8-rc-quick"));
    assert_null(ta_sim_group(res, "dev8-rc-del"));
    assert_null(ta_sim_share(res, "dev8-rc-del"));
    assert_null(ta_sim_group(res, "dev8-rc-keep"));
    const cJSON *kept = ta_sim_share(res, "dev8-rc-keep");
    assert_non_null(kept);
    /* Retained: marked dev8keep=true until dev8keepuntil (retention.
     * retainDays, default 30), so the reaper takes it for an orphan only
     * after that; the rest of its metadata is unchanged. */
    const cJSON *md = ta_path(kept, "properties.metadata");
    assert_int_equal(member_count(md), 6);
    assert_string_equal(ta_str(md, "dev8keep"), "true");
    assert_non_null(ta_str(md, "dev8keepuntil"));
    assert_string_equal(ta_str(md, "dev8managedby"), "dev8agent");
    assert_string_equal(ta_str(md, "dev8controller"), TA_RC_CONTROLLER);
    assert_string_equal(ta_str(md, "dev8envid"), "rc-keep");
    assert_string_equal(ta_str(md, "dev8userid"), "u-42");
    cJSON_Delete(res);
    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_deleted(st, "containerGroup", "dev8-rc-del"), 1);
    assert_int_equal(ta_sim_deleted(st, "containerGroup", "dev8-rc-keep"), 1);
    assert_int_equal(ta_sim_deleted(st, "fileShare", "dev8-rc-del"), 1);
    assert_int_equal(ta_sim_deleted(st, "fileShare", "dev8-rc-keep"), 0);
    cJSON_Delete(st);

    /* The list is empty, and watchers were told. */
    th_resp_t r;
    ta_req(&c->agent, "GET", ENV_PATH, NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *l = ta_json(&r);
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 0);
    cJSON_Delete(l);
    th_resp_free(&r);
    ta_watch_drain(&w, 300);
    assert_true(has_event(&w, "DELETED", "rc-del"));
    assert_true(has_event(&w, "DELETED", "rc-keep"));
    assert_true(has_event(&w, "DELETED", "rc-quick"));
    ta_watch_close(&w);
    both_exit_cleanly(state);
}

/* ---- 6. out-of-band deletion and stop are undone --------------------------------- */

static int oob_repaired(const cJSON *res, const void *arg)
{
    (void)arg;
    const cJSON *gs = ta_sim_group(res, "dev8-rc-oobstop");
    const cJSON *gd = ta_sim_group(res, "dev8-rc-oobdel");
    const char *ss = gs ? group_state(gs) : NULL;
    const char *sd = gd ? group_state(gd) : NULL;
    return ss && sd && strcmp(ss, "Running") == 0 && strcmp(sd, "Running") == 0 &&
           ta_str(gd, "tags.dev8-env-id");
}

static void test_out_of_band_changes_are_undone(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-oobstop", NULL, 201);
    put_env(c, "rc-oobdel", NULL, 201);
    cJSON_Delete(wait_phase(c, "rc-oobstop", "RUNNING", T_CONVERGE));
    cJSON_Delete(wait_phase(c, "rc-oobdel", "RUNNING", T_CONVERGE));

    /* Someone stops one group and deletes the other, straight in Azure. */
    th_resp_t r;
    long st = ta_sim_arm(&c->sim, "POST", TA_AZ_CG "/dev8-rc-oobstop/stop?" TA_AZ_ACI_V, NULL, &r);
    th_resp_free(&r);
    assert_int_equal(st, 204);
    st = ta_sim_arm(&c->sim, "DELETE", TA_AZ_CG "/dev8-rc-oobdel?" TA_AZ_ACI_V, NULL, &r);
    th_resp_free(&r);
    assert_true(st == 202 || st == 200);
    long long t0 = ta_now_ms();
    group_want_t gone = {"dev8-rc-oobdel", NULL, 1};
    cJSON *res = ta_sim_wait(&c->sim, "/_azsim/resources", group_is, &gone, 5000);
    assert_non_null(res);
    cJSON_Delete(res);

    /* Within a resync (deleted) and a status refresh (stopped, 0.5-1.5x). */
    int bound = (TA_RC_REFRESH_S * 3 / 2 + TA_RC_RESYNC_S) * 1000 + 8000;
    res = ta_sim_wait(&c->sim, "/_azsim/resources", oob_repaired, NULL, bound);
    assert_non_null(res);
    print_message("out-of-band changes undone after %lld ms\n", ta_now_ms() - t0);
    const cJSON *g = ta_sim_group(res, "dev8-rc-oobdel");
    assert_group_tags(g, "rc-oobdel", "u-42");
    cJSON_Delete(res);

    cJSON *o = wait_phase(c, "rc-oobstop", "RUNNING", T_CONVERGE);
    cJSON_Delete(o);
    o = wait_phase(c, "rc-oobdel", "RUNNING", T_CONVERGE);
    res = sim_get(c, "/_azsim/resources");
    assert_string_equal(ta_str(o, "status.aciPublicIp"),
                        ta_str(ta_sim_group(res, "dev8-rc-oobdel"), "properties.ipAddress.ip"));
    cJSON_Delete(res);
    cJSON_Delete(o);

    cJSON *stats = sim_get(c, "/_azsim/stats");
    /* Ours: one stop and one delete; the agent's: one start, one create. */
    assert_int_equal(ta_sim_stat(stats, "containerGroups.stop", NULL), 1);
    assert_int_equal(ta_sim_stat(stats, "containerGroups.delete", NULL), 1);
    assert_int_equal(ta_sim_stat(stats, "containerGroups.start", NULL), 1);
    assert_int_equal(ta_sim_stat(stats, "containerGroups.createOrUpdate", "201"), 3);
    assert_int_equal(ta_sim_stat(stats, "fileShares.create", NULL), 2);
    assert_int_equal(ta_sim_deleted(stats, "fileShare", NULL), 0);
    cJSON_Delete(stats);
    both_exit_cleanly(state);
}

/* ---- 10. DELETE of an id unknown after a restart ------------------------------- */

static void test_delete_unknown_id_after_restart(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "rc-ghost", NULL, 201);
    cJSON_Delete(wait_phase(c, "rc-ghost", "RUNNING", T_CONVERGE));

    int stop_status = -1;
    assert_int_equal(ta_restart(&c->agent, &stop_status), 0);
    assert_int_equal(stop_status, 0);
    assert_int_equal(ta_wait_ready(&c->agent, 10000), 0);
    long gst = 0;
    assert_null(ta_env_get(&c->agent, "rc-ghost", &gst));
    assert_int_equal(gst, 404); /* desired state is in memory only */

    /* The agent no longer knows it, but Azure still holds its resources. */
    cJSON *o = delete_env(c, "rc-ghost");
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    cJSON_Delete(o);
    /* And an id that never existed anywhere. */
    cJSON_Delete(delete_env(c, "rc-never"));
    assert_int_equal(ta_env_wait_gone(&c->agent, "rc-ghost", T_DELETE), 0);
    assert_int_equal(ta_env_wait_gone(&c->agent, "rc-never", T_DELETE), 0);

    cJSON *res = sim_get(c, "/_azsim/resources");
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "containerGroups")), 0);
    assert_int_equal(cJSON_GetArraySize(ta_path(res, "fileShares")), 0);
    cJSON_Delete(res);
    cJSON *st = sim_get(c, "/_azsim/stats");
    assert_int_equal(ta_sim_deleted(st, "containerGroup", "dev8-rc-ghost"), 1);
    assert_int_equal(ta_sim_deleted(st, "fileShare", "dev8-rc-ghost"), 1);
    assert_int_equal(cJSON_GetArraySize(ta_path(st, "deleted")), 2);
    cJSON_Delete(st);
    both_exit_cleanly(state);
}

/* ---- 11. invariant 1: resources without our tags are never touched ---------------- */

#define FOREIGN_GROUP                                                                              \
    "{\"location\":\"eastus\",\"tags\":{\"owner\":\"someone-else\",\"dev8-env-id\":\"rc-"          \
    "foreign\"},"                                                                                  \
    "\"properties\":{\"osType\":\"Linux\",\"containers\":[{\"name\":\"theirs\",\"properties\":{"   \
    "\"image\":\"nginx:1.27\",\"resources\":{\"requests\":{\"cpu\":1,\"memoryInGB\":1}}}}],"       \
    "\"ipAddress\":{\"type\":\"Public\",\"ports\":[{\"port\":80}]}}}"
#define FOREIGN_SHARE "{\"properties\":{\"shareQuota\":7,\"metadata\":{\"owner\":\"someone\"}}}"

static int is_error(const cJSON *o, const void *arg)
{
    (void)arg;
    return ta_is_phase(o, "ERROR");
}

static void assert_foreign_untouched(ta_rc_t *c)
{
    cJSON *res = sim_get(c, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, "dev8-rc-foreign");
    assert_non_null(g);
    const cJSON *tags = ta_path(g, "tags");
    assert_int_equal(member_count(tags), 2);
    assert_string_equal(ta_str(tags, "owner"), "someone-else");
    assert_string_equal(ta_str(g, "properties.containers.0.properties.image"), "nginx:1.27");
    assert_null(ta_sim_share(res, "dev8-rc-foreign")); /* nothing created around it */
    const cJSON *s = ta_sim_share(res, "dev8-rc-fshare");
    assert_non_null(s);
    assert_int_equal((int)ta_num(s, "properties.shareQuota"), 7);
    assert_int_equal(member_count(ta_path(s, "properties.metadata")), 1);
    assert_string_equal(ta_str(s, "properties.metadata.owner"), "someone");
    assert_null(ta_sim_group(res, "dev8-rc-fshare")); /* nothing would mount it */
    cJSON_Delete(res);
    cJSON *st = sim_get(c, "/_azsim/stats");
    /* Only our own two PUTs; no update, stop or delete by the agent. */
    assert_int_equal(ta_sim_stat(st, "containerGroups.createOrUpdate", NULL), 1);
    assert_int_equal(ta_sim_stat(st, "containerGroups.update", NULL), 0);
    assert_int_equal(ta_sim_stat(st, "containerGroups.stop", NULL), 0);
    assert_int_equal(ta_sim_stat(st, "containerGroups.delete", NULL), 0);
    assert_int_equal(ta_sim_stat(st, "fileShares.create", NULL), 1);
    assert_int_equal(ta_sim_stat(st, "fileShares.update", NULL), 0);
    assert_int_equal(ta_sim_stat(st, "fileShares.delete", NULL), 0);
    assert_int_equal(cJSON_GetArraySize(ta_path(st, "deleted")), 0);
    cJSON_Delete(st);
}

static void assert_name_conflict(const cJSON *o)
{
    assert_string_equal(ta_str(o, "status.phase"), "ERROR");
    assert_cond(o, "Ready", "False", "Failed");
    assert_cond(o, "Synced", "False", "ReconcileError");
    assert_string_equal(ta_str(o, "status.lastError.code"), "NameConflict");
    const char *msg = ta_str(o, "status.lastError.message");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "not tagged"));
    assert_true(cJSON_IsNull(ta_path(o, "status.aciContainerGroupId")));
}

static void test_foreign_resources_are_never_touched(void **state)
{
    ta_rc_t *c = ctx(state);
    th_resp_t r;
    long st =
        ta_sim_arm(&c->sim, "PUT", TA_AZ_CG "/dev8-rc-foreign?" TA_AZ_ACI_V, FOREIGN_GROUP, &r);
    if (st != 201)
        print_message("foreign group PUT: %ld %s\n", st, r.body);
    th_resp_free(&r);
    assert_int_equal(st, 201);
    st = ta_sim_arm(&c->sim, "PUT", TA_AZ_FS "/dev8-rc-fshare?" TA_AZ_FS_V, FOREIGN_SHARE, &r);
    if (st != 201)
        print_message("foreign share PUT: %ld %s\n", st, r.body);
    th_resp_free(&r);
    assert_int_equal(st, 201);

    put_env(c, "rc-foreign", NULL, 201);
    put_env(c, "rc-fshare", "\"storageGB\":50", 201);
    cJSON *o = ta_env_wait(&c->agent, "rc-foreign", is_error, NULL, T_CONVERGE);
    assert_non_null(o);
    assert_name_conflict(o);
    print_message("rc-foreign: %s\n", ta_str(o, "status.lastError.message"));
    cJSON_Delete(o);
    o = ta_env_wait(&c->agent, "rc-fshare", is_error, NULL, T_CONVERGE);
    assert_non_null(o);
    assert_name_conflict(o);
    cJSON_Delete(o);
    assert_foreign_untouched(c);

    /* Still so after resyncs (the list sees them too) ... */
    ta_sleep_ms(TA_RC_RESYNC_S * 1000 + 1000);
    o = ta_env_get(&c->agent, "rc-foreign", NULL);
    assert_non_null(o);
    assert_name_conflict(o);
    cJSON_Delete(o);
    assert_foreign_untouched(c);

    /* ... and deleting the environments deletes none of it. */
    cJSON_Delete(delete_env(c, "rc-foreign"));
    cJSON_Delete(delete_env(c, "rc-fshare"));
    assert_int_equal(ta_env_wait_gone(&c->agent, "rc-foreign", T_DELETE), 0);
    assert_int_equal(ta_env_wait_gone(&c->agent, "rc-fshare", T_DELETE), 0);
    assert_foreign_untouched(c);
    both_exit_cleanly(state);
}

/* ---- 12. invariant 3: secrets ------------------------------------------------------ */

#define SECRET_A "ghs_S3CRET-first-do-not-leak-4242"
#define SECRET_B "ghs_S3CRET-second-do-not-leak-9797"

static void assert_no_secret(const char *where, const char *text)
{
    static const char *const secrets[] = {SECRET_A, SECRET_B, TA_AZ_SECRET, "S3CRET"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (ta_count(text, secrets[i]) != 0)
            fail_msg("secret %s found in %s", secrets[i], where);
    }
}

static void assert_answer_clean(ta_rc_t *c, const char *path)
{
    th_resp_t r;
    ta_req(&c->agent, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_no_secret(path, r.body);
    assert_no_secret(path, r.headers);
    th_resp_free(&r);
}

static int secure_value_is(const cJSON *res, const void *want)
{
    const cJSON *v = env_var(ta_sim_group(res, "dev8-rc-secret"), "GITHUB_TOKEN");
    const cJSON *g = ta_sim_group(res, "dev8-rc-secret");
    const char *sv = ta_str(v, "secureValue");
    const char *state = g ? group_state(g) : NULL;
    return sv && strcmp(sv, (const char *)want) == 0 && state && strcmp(state, "Running") == 0;
}

static void test_secrets_never_leak(void **state)
{
    ta_rc_t *c = ctx(state);
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, &c->agent, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 0, 3000);

    th_resp_t r;
    char *body = ta_spec("u-42", "workspace", "eastus",
                         "\"env\":{\"PLAIN\":\"visible\"},"
                         "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET_A "\"}");
    ta_req(&c->agent, "PUT", ENV_PATH "/rc-secret", body, &r);
    free(body);
    assert_int_equal(r.status, 201);
    assert_no_secret("the PUT answer", r.body);
    th_resp_free(&r);
    cJSON *o = wait_phase(c, "rc-secret", "RUNNING", T_CONVERGE);
    assert_string_equal(ta_str(o, "spec.secretEnv.GITHUB_TOKEN"), "<redacted>");
    cJSON_Delete(o);

    /* A changed secret value alone recreates the group (the spec hash has
     * an HMAC of it keyed by DEV8_SPEC_HASH_KEY), with the new value. */
    body = ta_spec("u-42", "workspace", "eastus",
                   "\"env\":{\"PLAIN\":\"visible\"},"
                   "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET_B "\"}");
    ta_req(&c->agent, "PUT", ENV_PATH "/rc-secret", body, &r);
    free(body);
    assert_int_equal(r.status, 200);
    assert_no_secret("the PUT answer", r.body);
    th_resp_free(&r);
    cJSON *res = ta_sim_wait(&c->sim, "/_azsim/resources", secure_value_is, SECRET_B, T_CONVERGE);
    assert_non_null(res);
    int gen = 2;
    cJSON_Delete(ta_env_wait(&c->agent, "rc-secret", running_at_gen, &gen, T_CONVERGE));

    /* In azsim's dump the secret is exactly the group's secureValue. */
    char *dump = cJSON_PrintUnformatted(res);
    assert_int_equal(ta_count(dump, SECRET_B), 1);
    assert_int_equal(ta_count(dump, SECRET_A), 0);
    free(dump);
    const cJSON *g = ta_sim_group(res, "dev8-rc-secret");
    const cJSON *v = env_var(g, "GITHUB_TOKEN");
    assert_string_equal(ta_str(v, "secureValue"), SECRET_B);
    assert_null(ta_path(v, "value"));
    char *tags = cJSON_PrintUnformatted(ta_path(g, "tags"));
    assert_no_secret("the group's tags", tags);
    free(tags);
    assert_string_equal(ta_str(env_var(g, "PLAIN"), "value"), "visible");
    cJSON_Delete(res);

    /* Nowhere in what the agent answers. */
    assert_answer_clean(c, ENV_PATH "/rc-secret");
    assert_answer_clean(c, ENV_PATH);
    assert_answer_clean(c, ENV_PATH "?userId=u-42");
    assert_answer_clean(c, "/api/v1/status");
    assert_answer_clean(c, "/api/v1/orphans");
    assert_answer_clean(c, "/metrics");
    ta_watch_drain(&w, 300);
    assert_true(w.nevents >= 2);
    assert_no_secret("the watch stream", w.all);
    ta_watch_close(&w);

    /* Nor in its log, at level debug, even after a shutdown. */
    both_exit_cleanly(state);
    char *log = ta_log(&c->agent);
    assert_true(strlen(log) > 0);
    assert_non_null(strstr(log, "rc-secret"));
    assert_no_secret("the agent log", log);
    free(log);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, ta_rc_setup, ta_rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_converges_to_running),
        T(test_stop_then_start),
        T(test_cpu_change_recreates_group_keeps_share),
        T(test_on_next_start_waits_for_restart),
        T(test_sync_without_sticky_fields_changes_nothing),
        T(test_storage_grows_and_never_shrinks),
        T(test_delete_policies),
        T(test_out_of_band_changes_are_undone),
        T(test_delete_unknown_id_after_restart),
        T(test_foreign_resources_are_never_touched),
        T(test_secrets_never_leak),
    };
#undef T
    return cmocka_run_group_tests_name("reconcile", tests, NULL, NULL);
}
