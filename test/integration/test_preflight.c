/*
 * Preflight end to end: the real bin/dev8-agent (GET /api/v1/preflight and
 * `dev8-agent preflight --config FILE`) against the real bin/azsim. Every
 * check passes against azsim as configured, and fails, with its fix,
 * when azsim is switched (POST /_azsim/arm, /_azsim/storage, /_azsim/aci)
 * or the configuration points at what is not there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "agent_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* limits.maxStorageGB over a standard share's 5120 GiB, so that large
 * file shares matter. */
#define MAX_GB "8192"

static int setup(void **state)
{
    static const char *const sim_args[] = {"--provision-ms", "300", "--delete-ms", "200", NULL};
    ta_rc_t *c = calloc(1, sizeof *c);
    if (!c || ta_sim_start(&c->sim, sim_args) != 0)
        goto fail;
    ta_opts_t o = {.azsim_port = c->sim.port,
                   .shutdown_grace_seconds = 5,
                   .extra_yaml = "limits:\n  maxStorageGB: " MAX_GB "\n"};
    if (ta_start(&c->agent, &o) != 0 || ta_wait_ready(&c->agent, 10000) != 0)
        goto fail;
    *state = c;
    return 0;
fail:
    if (c)
        ta_rc_stop(c);
    free(c);
    return -1;
}

static int teardown(void **state)
{
    ta_rc_t *c = *state;
    int rc = ta_rc_stop(c);
    free(c);
    return rc == 0 ? 0 : -1;
}

/* GET /api/v1/preflight (owned report); fails the test unless 200. */
static cJSON *preflight(ta_rc_t *c)
{
    th_resp_t r;
    assert_int_equal(ta_req(&c->agent, "GET", "/api/v1/preflight", NULL, &r), 0);
    if (r.status != 200)
        fail_msg("preflight answered %ld: %s", r.status, r.body);
    assert_null(strstr(r.body, TA_AZ_SECRET));
    cJSON *j = ta_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    return j;
}

/* The check named `name` of a report (borrowed); fails the test without. */
static const cJSON *check_of(const cJSON *rep, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(rep, "checks"))
    {
        const char *n = ta_str(it, "name");
        if (n && strcmp(n, name) == 0)
            return it;
    }
    char *s = cJSON_Print(rep);
    fail_msg("no check '%s' in %s", name, s);
    free(s);
    return NULL;
}

static void assert_status(const cJSON *rep, const char *name, const char *status)
{
    const cJSON *ch = check_of(rep, name);
    const char *st = ta_str(ch, "status"), *fix = ta_str(ch, "fix");
    if (!st || strcmp(st, status) != 0)
        fail_msg("check '%s' is %s, expected %s: %s", name, st ? st : "?", status,
                 ta_str(ch, "message"));
    /* A check that did not pass says how to fix it; one that did, nothing. */
    assert_non_null(fix);
    assert_int_equal(strcmp(status, "pass") == 0, fix[0] == '\0');
}

/* POST of a control path; fails the test unless azsim answers want. */
static void post_sim(ta_rc_t *c, const char *path, const char *body, long want)
{
    th_resp_t r;
    long st = ta_sim_ctl(&c->sim, "POST", path, body, &r);
    if (st != want)
        fail_msg("POST %s %s answered %ld: %s", path, body ? body : "", st, r.body ? r.body : "");
    th_resp_free(&r);
}

static void test_all_pass(void **state)
{
    ta_rc_t *c = *state;
    cJSON *rep = preflight(c);
    static const char *const names[] = {
        "credentials",
        "provider Microsoft.ContainerInstance",
        "provider Microsoft.Storage",
        "region eastus: resource group",
        "region eastus: permissions",
        "region eastus: storage account dev8eastus",
        "region eastus: shared key access",
        "region eastus: network rules",
        "region eastus: large file shares",
        "region eastus: maxStorageGB",
        "region eastus: share soft delete",
        "region eastus: ACI quota",
        "region eastus: ACI capabilities",
        "region westeurope: resource group",
        "region westeurope: permissions",
        "region westeurope: storage account dev8westeurope",
        "region westeurope: ACI capabilities",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_status(rep, names[i], "pass");
    /* The fixture's images are anonymous Docker Hub pulls. */
    assert_status(rep, "image node", "warn");
    assert_int_equal((int)ta_num(rep, "summary.fail"), 0);
    assert_int_equal((int)ta_num(rep, "summary.warn"), 2);
    assert_int_equal((int)ta_num(rep, "summary.pass"),
                     cJSON_GetArraySize(cJSON_GetObjectItem(rep, "checks")) - 2);
    cJSON_Delete(rep);
    /* The route needs the API key. */
    th_resp_t r;
    assert_int_equal(ta_api(&c->agent, "GET", "/api/v1/preflight", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    th_resp_free(&r);
}

typedef struct sw {
    const char *path, *body; /* the switch */
    const char *check;       /* what fails */
    const char *status;
} sw_t;

/* Each switch of azsim turns its check to fail (or warn); a reset turns
 * it back to pass. */
static void test_each_switch_fails_its_check(void **state)
{
    ta_rc_t *c = *state;
    static const sw_t cases[] = {
        {"/_azsim/arm", "{\"unregisteredProviders\":[\"Microsoft.ContainerInstance\"]}",
         "provider Microsoft.ContainerInstance", "fail"},
        {"/_azsim/aci", "{\"unregisteredSubscriptions\":[\"" TA_AZ_SUB "\"]}",
         "provider Microsoft.ContainerInstance", "fail"},
        {"/_azsim/arm", "{\"unregisteredProviders\":[\"microsoft.storage\"]}",
         "provider Microsoft.Storage", "fail"},
        /* ... and then the storage reads fail with the registration error. */
        {"/_azsim/arm", "{\"unregisteredProviders\":[\"Microsoft.Storage\"]}",
         "region eastus: storage account dev8eastus", "fail"},
        {"/_azsim/aci", "{\"unregisteredSubscriptions\":[\"" TA_AZ_SUB "\"]}",
         "region eastus: ACI quota", "fail"},
        {"/_azsim/arm", "{\"actions\":[\"Microsoft.ContainerInstance/*\"]}",
         "region eastus: permissions", "fail"},
        {"/_azsim/arm",
         "{\"actions\":[\"*\"],\"notActions\":[\"Microsoft.Storage/storageAccounts/listKeys/"
         "action\"]}",
         "region westeurope: permissions", "fail"},
        {"/_azsim/storage", "{\"accounts\":[{\"name\":\"dev8eastus\",\"kind\":\"BlobStorage\"}]}",
         "region eastus: storage account dev8eastus", "fail"},
        {"/_azsim/storage", "{\"accounts\":[{\"name\":\"dev8eastus\",\"kind\":\"Storage\"}]}",
         "region eastus: storage account dev8eastus", "warn"},
        {"/_azsim/storage",
         "{\"accounts\":[{\"name\":\"dev8eastus\",\"allowSharedKeyAccess\":false}]}",
         "region eastus: shared key access", "fail"},
        {"/_azsim/storage",
         "{\"accounts\":[{\"name\":\"dev8eastus\",\"networkDefaultAction\":\"Deny\"}]}",
         "region eastus: network rules", "fail"},
        {"/_azsim/storage",
         "{\"accounts\":[{\"name\":\"dev8westeurope\",\"publicNetworkAccess\":\"Disabled\"}]}",
         "region westeurope: network rules", "fail"},
        {"/_azsim/storage", "{\"accounts\":[{\"name\":\"dev8eastus\",\"largeFileShares\":false}]}",
         "region eastus: large file shares", "fail"},
        {"/_azsim/storage", "{\"accounts\":[{\"name\":\"dev8eastus\",\"largeFileShares\":false}]}",
         "region eastus: maxStorageGB", "fail"},
        {"/_azsim/storage",
         "{\"accounts\":[{\"name\":\"dev8eastus\",\"kind\":\"FileStorage\",\"sku\":"
         "\"Premium_LRS\"}]}",
         "region eastus: maxStorageGB", "warn"},
        {"/_azsim/storage",
         "{\"accounts\":[{\"name\":\"dev8eastus\",\"shareDeleteRetentionDays\":0}]}",
         "region eastus: share soft delete", "fail"},
        {"/_azsim/aci", "{\"quota\":{\"standardCores\":2}}", "region eastus: ACI quota", "fail"},

        {"/_azsim/arm", "{\"maxCpu\":2}", "region eastus: ACI capabilities", "fail"},
        {"/_azsim/arm", "{\"maxMemoryInGB\":8}", "region westeurope: ACI capabilities", "fail"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const sw_t *k = &cases[i];
        post_sim(c, k->path, k->body, 200);
        cJSON *rep = preflight(c);
        assert_status(rep, k->check, k->status);
        if (strcmp(k->status, "fail") == 0)
            assert_true(ta_num(rep, "summary.fail") >= 1);
        cJSON_Delete(rep);
        post_sim(c, "/_azsim/reset", NULL, 204);
        rep = preflight(c);
        assert_status(rep, k->check, "pass");
        assert_int_equal((int)ta_num(rep, "summary.fail"), 0);
        cJSON_Delete(rep);
    }
}

/* A refused permissions read is a fail of that region (the agent's own
 * resource group); a refused usages read only warns. */
static void test_refused_reads(void **state)
{
    ta_rc_t *c = *state;
    assert_int_equal(ta_sim_faults(&c->sim, "{\"rate403Reads\":1}"), 0);
    cJSON *rep = preflight(c);
    assert_status(rep, "region eastus: permissions", "fail");
    assert_status(rep, "region eastus: ACI quota", "warn");
    assert_status(rep, "provider Microsoft.Storage", "warn");
    cJSON_Delete(rep);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"rate403Reads\":0}"), 0);
}

/* Requests that arrive while a run is in flight join it: three at once
 * cost one run's ARM reads. */
static void test_concurrent_requests_share_a_run(void **state)
{
    ta_rc_t *c = *state;
    post_sim(c, "/_azsim/reset", NULL, 204);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"latencyMs\":400}"), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "for i in 1 2 3; do curl -s -o /dev/null -w '%%{http_code}\\n' -H 'Authorization: "
             "Bearer " TA_KEY1 "' http://127.0.0.1:%d/api/v1/preflight & done; wait",
             c->agent.port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[64];
    int ok = 0;
    while (fgets(line, sizeof line, p))
        ok += strncmp(line, "200", 3) == 0;
    assert_int_equal(pclose(p), 0);
    assert_int_equal(ok, 3);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"latencyMs\":0}"), 0);
    cJSON *st = ta_sim_get(&c->sim, "/_azsim/stats");
    assert_non_null(st);
    /* One run reads the permissions of each of the two regions once. */
    assert_int_equal(ta_sim_stat(st, "permissions.listForResourceGroup", NULL), 2);
    cJSON_Delete(st);
}

/* The lists (permissions, usages, capabilities) are read page by page:
 * one item a page, each list starting with an empty page. */
static void test_paged_lists(void **state)
{
    ta_rc_t *c = *state;
    post_sim(c, "/_azsim/paging", "{\"pageSize\":1,\"emptyPages\":true}", 200);
    cJSON *rep = preflight(c);
    assert_status(rep, "region eastus: permissions", "pass");
    assert_status(rep, "region eastus: ACI quota", "pass");
    assert_status(rep, "region eastus: ACI capabilities", "pass");
    const char *msg = ta_str(check_of(rep, "region westeurope: ACI quota"), "message");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "ContainerGroups 0 of 100; StandardCores 0 of 100"));
    assert_int_equal((int)ta_num(rep, "summary.fail"), 0);
    cJSON_Delete(rep);
    cJSON *st = ta_sim_get(&c->sim, "/_azsim/stats");
    assert_non_null(st);
    /* Per region: the empty page and one page per item. */
    assert_int_equal(ta_sim_stat(st, "location.listUsage", "200"), 2 * 3);
    assert_int_equal(ta_sim_stat(st, "location.listCapabilities", "200"), 2 * 3);
    assert_int_equal(ta_sim_stat(st, "permissions.listForResourceGroup", "200"), 2 * 2);
    cJSON_Delete(st);
}

/* Runs `dev8-agent preflight` with the agent's credentials (secret given)
 * on a config; the output in out (owned), the exit status returned. */
static int run_cli(const char *config, const char *secret, const char *extra_args, char **out)
{
    char *bin = th_bin("dev8-agent");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "AZURE_TENANT_ID=%s AZURE_CLIENT_ID=%s AZURE_CLIENT_SECRET='%s' %s preflight "
             "--config %s %s 2>&1",
             TA_AZ_TENANT, TA_AZ_CLIENT, secret, bin, config, extra_args);
    free(bin);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    buf[len] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A config of one region against this azsim, with the given names. */
static char *cli_config(ta_rc_t *c, const char *rg, const char *account, const char *image)
{
    char yaml[2048], name[64];
    snprintf(yaml, sizeof yaml,
             "azure:\n"
             "  auth: clientSecret\n"
             "  subscriptionId: \"" TA_AZ_SUB "\"\n"
             "  armEndpoint: http://127.0.0.1:%d\n"
             "  authorityHost: http://127.0.0.1:%d\n"
             "  imdsEndpoint: http://127.0.0.1:%d\n"
             "  regions:\n"
             "    - name: eastus\n"
             "      resourceGroup: %s\n"
             "      storageAccount: %s\n"
             "images:\n"
             "  node: \"%s\"\n",
             c->sim.port, c->sim.port, c->sim.port, rg, account, image);
    static int seq;
    snprintf(name, sizeof name, "preflight-%d.yaml", ++seq);
    return th_write_file(name, yaml);
}

static void test_cli(void **state)
{
    ta_rc_t *c = *state;
    char *out = NULL;
    /* All green: status 0, the table, a private registry's image passes. */
    char *good = cli_config(c, "rg-dev8-eastus", "dev8eastus", "myacr.azurecr.io/dev8/node:1");
    assert_int_equal(run_cli(good, TA_AZ_SECRET, "", &out), 0);
    assert_non_null(strstr(out, "pass   image node"));
    assert_non_null(strstr(out, " 0 warn, 0 fail"));
    assert_null(strstr(out, TA_AZ_SECRET));
    free(out);
    /* --json prints the document of the API route. */
    assert_int_equal(run_cli(good, TA_AZ_SECRET, "--json", &out), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal((int)ta_num(j, "summary.fail"), 0);
    cJSON_Delete(j);
    free(out);
    /* Wrong secret: credentials fail, nothing else read, status 1. */
    assert_int_equal(run_cli(good, "not-the-secret", "", &out), 1);
    assert_non_null(strstr(out, "fail   credentials"));
    assert_non_null(strstr(out, "fix: "));
    assert_null(strstr(out, "not-the-secret"));
    free(out);
    /* A resource group azsim does not have: fails with the az command. */
    char *norg = cli_config(c, "rg-missing", "dev8eastus", "myacr.azurecr.io/dev8/node:1");
    assert_int_equal(run_cli(norg, TA_AZ_SECRET, "", &out), 1);
    assert_non_null(strstr(out, "fail   region eastus: resource group"));
    assert_non_null(strstr(out, "az group create --name rg-missing --location eastus"));
    free(out);
    /* A storage account that does not exist. */
    char *noacct = cli_config(c, "rg-dev8-eastus", "dev8nothere", "myacr.azurecr.io/dev8/node:1");
    assert_int_equal(run_cli(noacct, TA_AZ_SECRET, "", &out), 1);
    assert_non_null(strstr(out, "fail   region eastus: storage account dev8nothere"));
    free(out);
    free(good);
    free(norg);
    free(noacct);
    /* --print-actions: the list of the README and hack/azure/role.json. */
    char *bin = th_bin("dev8-agent");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s preflight --print-actions", bin);
    free(bin);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, p))
        n += strncmp(line, "Microsoft.", 10) == 0;
    assert_int_equal(pclose(p), 0);
    assert_true(n >= 10);
}

/* The output of a shell command (owned) and its exit status. */
static int run_sh(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 17, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    buf[len] = '\0';
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define SUBNET                                                                                     \
    "/subscriptions/" TA_AZ_SUB "/resourceGroups/rg-dev8-eastus/providers/Microsoft.Network/"      \
    "virtualNetworks/vnet-dev8/subnets/aci"
#define PULL_ID                                                                                    \
    "/subscriptions/" TA_AZ_SUB "/resourceGroups/rg-dev8-eastus/providers/"                        \
    "Microsoft.ManagedIdentity/userAssignedIdentities/dev8-pull"

/* A region with subnetIds and a registry pulled with a managed identity:
 * preflight checks the join action on the subnet and the assign action
 * on the identity (Permissions_ListForResource). */
static void test_subnet_and_identity(void **state)
{
    ta_rc_t *c = *state;
    char yaml[2048], *out = NULL;
    snprintf(yaml, sizeof yaml,
             "azure:\n"
             "  auth: clientSecret\n"
             "  subscriptionId: \"" TA_AZ_SUB "\"\n"
             "  armEndpoint: http://127.0.0.1:%d\n"
             "  authorityHost: http://127.0.0.1:%d\n"
             "  imdsEndpoint: http://127.0.0.1:%d\n"
             "  regions:\n"
             "    - name: eastus\n"
             "      resourceGroup: rg-dev8-eastus\n"
             "      storageAccount: dev8eastus\n"
             "      subnetIds: [\"" SUBNET "\"]\n"
             "registries:\n"
             "  - server: myacr.azurecr.io\n"
             "    identity: " PULL_ID "\n"
             "images:\n"
             "  node: \"myacr.azurecr.io/dev8/node:1\"\n",
             c->sim.port, c->sim.port, c->sim.port);
    char *cfg = th_write_file("preflight-extras.yaml", yaml);
    assert_int_equal(run_cli(cfg, TA_AZ_SECRET, "", &out), 0);
    assert_non_null(strstr(out, "pass   region eastus: subnet join"));
    assert_non_null(strstr(out, "pass   registry myacr.azurecr.io: identity"));
    assert_non_null(strstr(out, "pulled from myacr.azurecr.io with a managed identity"));
    free(out);
    /* Without the two actions both fail, with the grant to make. */
    post_sim(c, "/_azsim/arm",
             "{\"actions\":[\"*\"],\"notActions\":[\"Microsoft.Network/virtualNetworks/subnets/"
             "join/action\",\"Microsoft.ManagedIdentity/*/assign/action\"]}",
             200);
    assert_int_equal(run_cli(cfg, TA_AZ_SECRET, "", &out), 1);
    assert_non_null(strstr(out, "fail   region eastus: subnet join"));
    assert_non_null(strstr(out, "fail   registry myacr.azurecr.io: identity"));
    assert_non_null(strstr(out, "Managed Identity Operator"));
    assert_non_null(strstr(out, "Network Contributor"));
    /* The resource group's own permissions still pass. */
    assert_non_null(strstr(out, "pass   region eastus: permissions"));
    free(out);
    free(cfg);
}

/* hack/azure/setup.sh --dry-run prints every command of the set-up, runs
 * none, and its role definition carries exactly the actions of
 * `dev8-agent preflight --print-actions`. */
static void test_setup_dry_run(void **state)
{
    (void)state;
    char *out = NULL;
    int st = run_sh("PATH=/usr/bin:/bin hack/azure/setup.sh --subscription " TA_AZ_SUB
                    " --regions eastus,westeurope --issuer https://oidc.example/x --dry-run 2>&1",
                    &out);
    if (st != 0)
        fail_msg("setup.sh --dry-run exited %d: %s", st, out);
    static const char *const want[] = {
        "+ az provider register --namespace Microsoft.ContainerInstance --wait",
        "+ az provider register --namespace Microsoft.Storage --wait",
        "+ az group create --name rg-dev8-eastus --location eastus",
        "+ az group create --name rg-dev8-westeurope --location westeurope",
        "+ az storage account create --name dev8westeurope --resource-group rg-dev8-westeurope "
        "--location westeurope --kind StorageV2 --sku Standard_LRS --enable-large-file-share "
        "--allow-shared-key-access true --public-network-access Enabled --default-action Allow",
        "+ az storage account file-service-properties update --account-name dev8eastus "
        "--resource-group rg-dev8-eastus --enable-delete-retention true --delete-retention-days 7",
        "+ az identity create --name dev8-agent --resource-group rg-dev8-eastus",
        "+ az identity federated-credential create --name dev8-agent-dev8 --identity-name "
        "dev8-agent --resource-group rg-dev8-eastus --issuer https://oidc.example/x --subject "
        "system:serviceaccount:dev8:dev8-agent --audiences api://AzureADTokenExchange",
        "+ az role definition create --role-definition ",
        "--role Dev8\\ Agent --scope /subscriptions/" TA_AZ_SUB "/resourceGroups/rg-dev8-eastus",
        "--role Dev8\\ Agent --scope /subscriptions/" TA_AZ_SUB
        "/resourceGroups/rg-dev8-westeurope",
        "#     \"AssignableScopes\": [",
        "#       \"/subscriptions/" TA_AZ_SUB "\"",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(out, want[i]))
            fail_msg("the dry run does not print '%s':\n%s", want[i], out);
    /* Nothing at subscription scope but the role definition itself. */
    assert_null(strstr(out, "--scope /subscriptions/" TA_AZ_SUB " --output none"));
    /* The role's actions are the agent's. */
    char *bin = th_bin("dev8-agent"), cmd[1024], *actions = NULL;
    snprintf(cmd, sizeof cmd, "%s preflight --print-actions", bin);
    free(bin);
    assert_int_equal(run_sh(cmd, &actions), 0);
    size_t n = 0;
    for (char *line = strtok(actions, "\n"); line; line = strtok(NULL, "\n"), n++) {
        char quoted[300];
        snprintf(quoted, sizeof quoted, "\"%s\"", line);
        if (!strstr(out, quoted))
            fail_msg("the role of the dry run lacks %s", line);
    }
    size_t in_role = 0;
    for (const char *p = strstr(out, "\"Actions\""); p && (p = strstr(p, "\"Microsoft.")); p++)
        in_role++;
    assert_int_equal(in_role, n);
    free(actions);
    free(out);
    /* The grants of subnetIds and registry identities, on those resources. */
    assert_int_equal(run_sh("hack/azure/setup.sh --subscription " TA_AZ_SUB
                            " --regions eastus --issuer https://oidc.example/x --subnet " SUBNET
                            " --pull-identity " PULL_ID " --dry-run 2>&1",
                            &out),
                     0);
    assert_non_null(strstr(out, "--role Network\\ Contributor --scope " SUBNET " --output none"));
    assert_non_null(
        strstr(out, "--role Managed\\ Identity\\ Operator --scope " PULL_ID " --output none"));
    free(out);
    /* Bad arguments: status 2, nothing run. */
    assert_int_equal(run_sh("hack/azure/setup.sh --regions eastus 2>&1", &out), 2);
    assert_non_null(strstr(out, "--subscription is required"));
    free(out);
    assert_int_equal(run_sh("hack/azure/setup.sh --subscription " TA_AZ_SUB
                            " --regions eastus --issuer http://plain --dry-run 2>&1",
                            &out),
                     2);
    free(out);
    assert_int_equal(run_sh("hack/azure/setup.sh --subscription " TA_AZ_SUB
                            " --regions eastus --issuer https://o.example/x --subnet 'a b' "
                            "--dry-run 2>&1",
                            &out),
                     2);
    assert_null(strstr(out, "+ az"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_switch_fails_its_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paged_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_requests_share_a_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subnet_and_identity, setup, teardown),
        cmocka_unit_test(test_setup_dry_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
