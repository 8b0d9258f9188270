/*
 * End to end (the real bin/dev8-agent against the real bin/azsim) for
 * issue 14 items 3-5: private registries (username + password from a
 * mounted file, a user-assigned managed identity), the cloud setting
 * (token scope checked by azsim's token endpoint) and VNet-injected
 * groups (subnetIds: private IP, no FQDN).
 *
 * azsim is told which registries are private and what they accept
 * (POST /_azsim/aci {"registries": ...}); a pull without an accepted
 * credential fails the deployment with InaccessibleImage, as ACI does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "rc_steps.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T_CONVERGE 20000
#define PW_RIGHT "itest-REGISTRY-pw-7c1e9a"
#define PW_WRONG "itest-WRONG-pw-52d0b3"
#define MI_GOOD                                                                                    \
    "/subscriptions/" TA_AZ_SUB "/resourceGroups/rg-id/providers/"                                 \
    "Microsoft.ManagedIdentity/userAssignedIdentities/dev8-pull"
#define MI_OTHER                                                                                   \
    "/subscriptions/" TA_AZ_SUB "/resourceGroups/rg-id/providers/"                                 \
    "Microsoft.ManagedIdentity/userAssignedIdentities/someone-else"
#define SUBNET                                                                                     \
    "/subscriptions/" TA_AZ_SUB "/resourceGroups/rg-net/providers/"                                \
    "Microsoft.Network/virtualNetworks/vnet-dev8/subnets/aci"

/* What azsim's registries accept: a password registry, and two identity
 * registries of which only the first allows the agent's identity. */
static const char SIM_REGISTRIES[] =
    "{\"registries\":["
    "{\"server\":\"dev8pw.azurecr.io\",\"username\":\"dev8pw\",\"password\":\"" PW_RIGHT "\"},"
    "{\"server\":\"dev8mi.azurecr.io\",\"identities\":[\"" MI_GOOD "\"]},"
    "{\"server\":\"dev8mi2.azurecr.io\",\"identities\":[\"" MI_OTHER "\"]}]}";

static const char IMAGES[] = "  node: \"vaibhavsing/dev8-workspace:latest\"\n"
                             "  pw: \"dev8pw.azurecr.io/dev8/workspace:1\"\n"
                             "  mi: \"dev8mi.azurecr.io/dev8/workspace:1\"\n"
                             "  mi2: \"dev8mi2.azurecr.io/dev8/workspace:1\"\n";

static char pw_path[PATH_MAX];

/* Writes the password file the agent's config names (absolute path). */
static void write_password(const char *pw)
{
    char *p = th_write_file("registry-password", pw);
    assert_non_null(p);
    assert_non_null(realpath(p, pw_path));
    free(p);
}

static void post_sim(ta_rc_t *c, const char *path, const char *json)
{
    th_resp_t r;
    long st = ta_sim_ctl(&c->sim, "POST", path, json, &r);
    if (st != 200)
        print_message("POST %s answered %ld: %s\n", path, st, r.body);
    th_resp_free(&r);
    assert_int_equal(st, 200);
}

/* azsim (fast timing, extra args) and an agent with the given extra azure
 * keys, regions and the registries config; 0 or -1. Not waited for. */
static int start_pair(ta_rc_t *c, const char *const sim_extra[], const char *azure_yaml,
                      const char *regions_yaml, const char *state_file)
{
    const char *args[16] = {"--provision-ms",      "300", "--delete-ms", "200",
                            "--share-recreate-ms", "500"};
    size_t n = 6;
    for (size_t i = 0; sim_extra && sim_extra[i] && n < 15; i++)
        args[n++] = sim_extra[i];
    args[n] = NULL;
    memset(c, 0, sizeof *c);
    if (ta_sim_start(&c->sim, args) != 0)
        return -1;
    static char extra[PATH_MAX + 1024];
    snprintf(extra, sizeof extra,
             "workspace:\n  ports: [%d]\n  mountPath: %s\n"
             "registries:\n"
             "  - server: dev8pw.azurecr.io\n"
             "    username: dev8pw\n"
             "    passwordFile: %s\n"
             "  - server: DEV8MI.azurecr.io\n"
             "    identity: " MI_GOOD "\n"
             "  - server: dev8mi2.azurecr.io\n"
             "    identity: " MI_GOOD "\n",
             TA_RC_PORT, TA_RC_MOUNT, pw_path);
    ta_opts_t o = {.azsim_port = c->sim.port,
                   .resync_seconds = TA_RC_RESYNC_S,
                   .status_refresh_seconds = TA_RC_REFRESH_S,
                   .shutdown_grace_seconds = 5,
                   .extra_yaml = extra,
                   .azure_yaml = azure_yaml,
                   .regions_yaml = regions_yaml,
                   .images_yaml = IMAGES,
                   .state_file = state_file};
    return ta_start(&c->agent, &o);
}

static void put_env(ta_rc_t *c, const char *id, const char *image, long want)
{
    char extra[128];
    snprintf(extra, sizeof extra, "\"baseImage\":\"%s\"", image);
    char *body = ta_spec("u-reg", "workspace", "eastus", extra);
    long st = ta_put(&c->agent, id, body);
    free(body);
    assert_int_equal(st, want);
}

/* The env once in ERROR, asserting Azure's InaccessibleImage and message. */
static void expect_inaccessible(ta_rc_t *c, const char *id, const char *image)
{
    cJSON *o = wait_phase(c, id, "ERROR", T_CONVERGE);
    print_message("%s: %s: %s\n", id, ta_str(o, "status.lastError.code"),
                  ta_str(o, "status.lastError.message"));
    assert_string_equal(ta_str(o, "status.lastError.code"), "InaccessibleImage");
    char want[300];
    snprintf(want, sizeof want, "The image '%s' in container group 'dev8-%s' is not accessible.",
             image, id);
    const char *msg = ta_str(o, "status.lastError.message");
    assert_non_null(msg);
    assert_non_null(strstr(msg, want));
    cJSON_Delete(o);
}

/* Fails when `text` (what = where it came from) holds either password. */
static void assert_no_password(const char *what, const char *text)
{
    if (!text)
        return;
    if (strstr(text, PW_RIGHT) || strstr(text, PW_WRONG))
        fail_msg("a registry password appears in %s", what);
}

/* An API answer of the agent, checked for the passwords. */
static void grep_api(ta_rc_t *c, const char *path)
{
    th_resp_t r;
    assert_int_equal(ta_req(&c->agent, "GET", path, NULL, &r), 0);
    assert_true(r.status == 200 || r.status == 503);
    assert_no_password(path, r.body);
    assert_no_password(path, r.headers);
    th_resp_free(&r);
}

/* Everything the agent exposes, and the tags Azure holds. */
static void grep_everything(ta_rc_t *c, const char *state_file)
{
    grep_api(c, "/api/v1/environments");
    grep_api(c, "/api/v1/environments/reg-pw");
    grep_api(c, "/api/v1/status");
    grep_api(c, "/metrics");
    grep_api(c, "/readyz");
    char *log = ta_log(&c->agent);
    assert_non_null(log);
    assert_no_password("the agent's log", log);
    free(log);
    if (state_file) {
        FILE *f = fopen(state_file, "rb");
        assert_non_null(f);
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        assert_true(n > 0);
        assert_no_password("the state file", buf);
    }
    /* Tags of every group (what Azure shows anybody with read access). */
    cJSON *res = sim_get(c, "/_azsim/resources");
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(res, "containerGroups"))
    {
        char *tags = cJSON_PrintUnformatted(cJSON_GetObjectItem(g, "tags"));
        assert_no_password("a group's tags", tags);
        free(tags);
    }
    cJSON_Delete(res);
}

/* The stored group of env id in azsim (secrets included), owned. */
static cJSON *sim_group(ta_rc_t *c, const char *id)
{
    char name[80];
    snprintf(name, sizeof name, "dev8-%s", id);
    cJSON *res = sim_get(c, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, name);
    cJSON *copy = g ? cJSON_Duplicate(g, 1) : NULL;
    cJSON_Delete(res);
    assert_non_null(copy);
    return copy;
}

/* ---- private registries -------------------------------------------------- */

static void test_registry_credentials_converge_and_wrong_ones_fail(void **state)
{
    (void)state;
    ta_rc_t c;
    char sf[PATH_MAX];
    snprintf(sf, sizeof sf, "%s/registry-state.json", th_tmpdir());
    write_password(PW_RIGHT);
    assert_int_equal(start_pair(&c, NULL, NULL, NULL, sf), 0);
    post_sim(&c, "/_azsim/aci", SIM_REGISTRIES);
    assert_int_equal(ta_wait_ready(&c.agent, 10000), 0);
    /* azsim shows its registries without their passwords, and refuses a
     * malformed list as a whole. */
    cJSON *aci = sim_get(&c, "/_azsim/aci");
    assert_string_equal(ta_str(aci, "registries.0.password"), "<set>");
    assert_string_equal(ta_str(aci, "registries.1.identities.0"), MI_GOOD);
    cJSON_Delete(aci);
    th_resp_t bad;
    assert_int_equal(ta_sim_ctl(&c.sim, "POST", "/_azsim/aci",
                                "{\"registries\":[{\"server\":\"x.io\",\"username\":\"u\"}]}",
                                &bad),
                     400);
    th_resp_free(&bad);

    /* Every watch event of the run is checked for the passwords too. */
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, &c.agent, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 0, 5000);
    assert_int_equal(w.status, 200);

    /* The right password and the allowed identity: RUNNING. */
    put_env(&c, "reg-pw", "pw", 201);
    put_env(&c, "reg-mi", "mi", 201);
    put_env(&c, "reg-mi2", "mi2", 201);
    cJSON_Delete(wait_phase(&c, "reg-pw", "RUNNING", T_CONVERGE));
    cJSON_Delete(wait_phase(&c, "reg-mi", "RUNNING", T_CONVERGE));
    /* An identity the registry does not allow: InaccessibleImage. */
    expect_inaccessible(&c, "reg-mi2", "dev8mi2.azurecr.io/dev8/workspace:1");

    /* What ACI was sent, field by field as the ACI spec names them. */
    cJSON *g = sim_group(&c, "reg-pw");
    const cJSON *cred = ta_path(g, "properties.imageRegistryCredentials.0");
    assert_non_null(cred);
    assert_string_equal(ta_str(cred, "server"), "dev8pw.azurecr.io");
    assert_string_equal(ta_str(cred, "username"), "dev8pw");
    assert_string_equal(ta_str(cred, "password"), PW_RIGHT);
    assert_null(ta_path(g, "identity"));
    const char *hash_right = ta_str(g, "tags.dev8-spec-hash");
    assert_non_null(hash_right);
    char hash1[17];
    snprintf(hash1, sizeof hash1, "%s", hash_right);
    cJSON_Delete(g);
    g = sim_group(&c, "reg-mi");
    assert_string_equal(ta_str(g, "identity.type"), "UserAssigned");
    assert_non_null(cJSON_GetObjectItem(ta_path(g, "identity.userAssignedIdentities"), MI_GOOD));
    assert_string_equal(ta_str(g, "properties.imageRegistryCredentials.0.server"),
                        "dev8mi.azurecr.io");
    assert_string_equal(ta_str(g, "properties.imageRegistryCredentials.0.identity"), MI_GOOD);
    assert_null(ta_path(g, "properties.imageRegistryCredentials.0.password"));
    cJSON_Delete(g);
    /* An anonymous image carries no credentials. */
    put_env(&c, "reg-anon", "node", 201);
    cJSON_Delete(wait_phase(&c, "reg-anon", "RUNNING", T_CONVERGE));
    g = sim_group(&c, "reg-anon");
    assert_null(ta_path(g, "properties.imageRegistryCredentials"));
    assert_null(ta_path(g, "identity"));
    cJSON_Delete(g);
    grep_everything(&c, sf);
    ta_watch_drain(&w, 200);
    print_message("watch: %zu events\n", w.nevents);
    assert_true(w.nevents >= 8); /* ADDED and MODIFIED of four environments */
    assert_non_null(w.all);
    assert_no_password("the watch stream", w.all);
    ta_watch_close(&w);

    /* A wrong password (the file rotated to a value the registry does not
     * know): the spec hash covers its HMAC, so the group is recreated,
     * and the pull fails as ACI fails it. */
    write_password(PW_WRONG);
    int st = -1;
    assert_int_equal(ta_restart(&c.agent, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(ta_wait_ready(&c.agent, 10000), 0);
    expect_inaccessible(&c, "reg-pw", "dev8pw.azurecr.io/dev8/workspace:1");
    put_env(&c, "reg-pw2", "pw", 201);
    expect_inaccessible(&c, "reg-pw2", "dev8pw.azurecr.io/dev8/workspace:1");
    g = sim_group(&c, "reg-pw");
    assert_string_equal(ta_str(g, "properties.imageRegistryCredentials.0.password"), PW_WRONG);
    assert_string_not_equal(ta_str(g, "tags.dev8-spec-hash"), hash1);
    cJSON_Delete(g);
    assert_int_equal(ta_watch_open(&w, &c.agent, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 5, 5000);
    ta_watch_drain(&w, 200);
    assert_no_password("the watch stream", w.all);
    ta_watch_close(&w);
    /* The others are untouched (their hash does not depend on it). */
    cJSON_Delete(wait_phase(&c, "reg-mi", "RUNNING", 2000));
    cJSON_Delete(wait_phase(&c, "reg-anon", "RUNNING", 2000));
    grep_everything(&c, sf);
    assert_int_equal(ta_rc_stop(&c), 0);
}

/* ---- clouds ------------------------------------------------------------- */

static void test_cloud_scope_is_what_the_token_endpoint_sees(void **state)
{
    (void)state;
    static const char *const china[] = {"--cloud", "AzureChinaCloud", NULL};
    ta_rc_t c;
    write_password(PW_RIGHT);
    /* No cloud: the public cloud's scope, which a China tenant refuses. */
    assert_int_equal(start_pair(&c, china, NULL, NULL, NULL), 0);
    assert_int_not_equal(ta_wait_ready(&c.agent, 3000), 0);
    char *log = ta_log(&c.agent);
    assert_non_null(log);
    assert_non_null(strstr(log, "AADSTS500011"));
    assert_non_null(strstr(log, "https://management.azure.com"));
    free(log);
    assert_int_equal(ta_rc_stop(&c), 0);

    /* Custom with the China scope (endpoints: azsim): ready, and it works. */
    assert_int_equal(start_pair(&c, china,
                                "  cloud: Custom\n"
                                "  tokenScope: https://management.chinacloudapi.cn/.default\n",
                                NULL, NULL),
                     0);
    assert_int_equal(ta_wait_ready(&c.agent, 10000), 0);
    put_env(&c, "cloud-ok", "node", 201);
    cJSON_Delete(wait_phase(&c, "cloud-ok", "RUNNING", T_CONVERGE));
    assert_int_equal(ta_rc_stop(&c), 0);
}

/* ---- VNet-injected groups ------------------------------------------------ */

static void test_subnet_groups_have_a_private_ip_and_no_fqdn(void **state)
{
    (void)state;
    ta_rc_t c;
    write_password(PW_RIGHT);
    assert_int_equal(start_pair(&c, NULL, NULL,
                                "    - name: eastus\n"
                                "      resourceGroup: rg-dev8-eastus\n"
                                "      storageAccount: dev8eastus\n"
                                "      subnetIds: [\"" SUBNET "\"]\n"
                                "    - name: westeurope\n"
                                "      resourceGroup: rg-dev8-westeurope\n"
                                "      storageAccount: dev8westeurope\n",
                                NULL),
                     0);
    assert_int_equal(ta_wait_ready(&c.agent, 10000), 0);
    put_env(&c, "vnet-1", "node", 201);
    cJSON *o = wait_phase(&c, "vnet-1", "RUNNING", T_CONVERGE);
    const char *ip = ta_str(o, "status.aciPublicIp");
    print_message("status: ip %s fqdn %s url %s\n", ip, ta_str(o, "status.fqdn"),
                  ta_str(o, "status.vsCodeUrl"));
    assert_non_null(ip);
    assert_int_equal(strncmp(ip, "10.", 3), 0);
    assert_true(cJSON_IsNull(ta_path(o, "status.fqdn")));
    char url[80];
    snprintf(url, sizeof url, "http://%s:%d", ip, TA_RC_PORT);
    assert_string_equal(ta_str(o, "status.vsCodeUrl"), url);
    cJSON_Delete(o);
    cJSON *g = sim_group(&c, "vnet-1");
    assert_string_equal(ta_str(g, "properties.ipAddress.type"), "Private");
    assert_null(ta_path(g, "properties.ipAddress.dnsNameLabel"));
    assert_null(ta_path(g, "properties.ipAddress.fqdn"));
    assert_string_equal(ta_str(g, "properties.subnetIds.0.id"), SUBNET);
    cJSON_Delete(g);
    /* The other region stays public, with its DNS label. */
    char *body = ta_spec("u-reg", "workspace", "westeurope", NULL);
    assert_int_equal(ta_put(&c.agent, "pub-1", body), 201);
    free(body);
    o = wait_phase(&c, "pub-1", "RUNNING", T_CONVERGE);
    assert_non_null(ta_str(o, "status.fqdn"));
    cJSON_Delete(o);
    assert_int_equal(ta_rc_stop(&c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_credentials_converge_and_wrong_ones_fail),
        cmocka_unit_test(test_cloud_scope_is_what_the_token_endpoint_sees),
        cmocka_unit_test(test_subnet_groups_have_a_private_ip_and_no_fqdn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
