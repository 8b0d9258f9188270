/*
 * pkg/config: azure.cloud (and the three values it sets together), the
 * private registries and azure.regions[].subnetIds; pkg/azure/cloud.h's
 * table. Errors are file:line:column, and never echo a password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/cloud.h"
#include "config/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUB "00000000-0000-0000-0000-000000000000"
#define REGIONS                                                                                    \
    "  regions:\n"                                                                                 \
    "    - {name: eastus, resourceGroup: rg, storageAccount: dev8eastus}\n"
#define MI                                                                                         \
    "/subscriptions/" SUB "/resourceGroups/rg-id/providers/Microsoft.ManagedIdentity/"             \
    "userAssignedIdentities/dev8-pull"
#define SUBNET                                                                                     \
    "/subscriptions/" SUB "/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/"    \
    "vnet/subnets/aci"

static char g_err[512];

static int load(const char *yaml, config_t **out)
{
    g_err[0] = '\0';
    return config_load_string("t.yaml", yaml, strlen(yaml), out, g_err, sizeof g_err);
}

static config_t *load_ok(const char *yaml)
{
    config_t *cfg = NULL;
    int rc = load(yaml, &cfg);
    if (rc != 0)
        print_error("unexpected error: %s\n", g_err);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    return cfg;
}

static void expect_err(const char *yaml, const char *want)
{
    config_t *cfg = (config_t *)(uintptr_t)1;
    int rc = load(yaml, &cfg);
    assert_true(rc < 0);
    assert_null(cfg);
    if (strcmp(g_err, want) != 0)
        print_error("got  %s\nwant %s\n", g_err, want);
    assert_string_equal(g_err, want);
}

/* "azure:\n  subscriptionId: SUB\n<azure>" REGIONS "<rest>" */
static char *doc(const char *azure, const char *rest)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "azure:\n  subscriptionId: \"" SUB "\"\n%s" REGIONS "%s", azure,
             rest);
    return buf;
}

/* ---- the cloud table ------------------------------------------------------ */

static void test_cloud_table(void **state)
{
    (void)state;
    const azure_cloud_t *p = azure_cloud_find("AzurePublicCloud");
    assert_non_null(p);
    assert_string_equal(p->arm_endpoint, "https://management.azure.com");
    assert_string_equal(p->authority_host, "https://login.microsoftonline.com");
    assert_string_equal(p->token_scope, "https://management.azure.com/.default");
    const azure_cloud_t *cn = azure_cloud_find("AzureChinaCloud");
    assert_non_null(cn);
    assert_string_equal(cn->arm_endpoint, "https://management.chinacloudapi.cn");
    assert_string_equal(cn->authority_host, "https://login.chinacloudapi.cn");
    assert_string_equal(cn->token_scope, "https://management.chinacloudapi.cn/.default");
    const azure_cloud_t *us = azure_cloud_find("AzureUSGovernment");
    assert_non_null(us);
    assert_string_equal(us->arm_endpoint, "https://management.usgovcloudapi.net");
    assert_string_equal(us->authority_host, "https://login.microsoftonline.us");
    assert_string_equal(us->token_scope, "https://management.usgovcloudapi.net/.default");
    assert_null(azure_cloud_find("Custom"));
    assert_null(azure_cloud_find("azurepubliccloud"));
    assert_null(azure_cloud_find(NULL));
    /* Every row: the scope is the ARM endpoint's resource. */
    size_t n = 0;
    for (const azure_cloud_t *c; (c = azure_cloud_at(n)) != NULL; n++) {
        char res[300], want[300];
        assert_int_equal(azure_scope_resource(c->token_scope, res, sizeof res), 0);
        snprintf(want, sizeof want, "%s/", c->arm_endpoint);
        assert_string_equal(res, want);
    }
    assert_int_equal(n, 3);
    char small[8];
    assert_int_equal(azure_scope_resource("https://x/.default", small, sizeof small), -1);
    assert_int_equal(azure_scope_resource("https://x/", small, sizeof small), -1);
}

/* The public cloud's hosts are spelled in the cloud table only (no scope or
 * endpoint hard-coded anywhere else in pkg/ or cmd/). Run from the
 * repository root, as hack/run-tests.sh does. */
static void test_cloud_hosts_only_in_the_table(void **state)
{
    (void)state;
    if (access("pkg/azure/cloud.c", R_OK) != 0)
        skip();
    FILE *p = popen("grep -rlE 'management[.]azure[.]com|login[.]microsoftonline[.]com|"
                    "chinacloudapi[.]cn|usgovcloudapi[.]net|microsoftonline[.]us' "
                    "--include='*.c' --include='*.h' pkg cmd",
                    "r");
    assert_non_null(p);
    char line[512], all[4096] = "";
    while (fgets(line, sizeof line, p))
        strncat(all, line, sizeof all - strlen(all) - 1);
    pclose(p);
    if (strcmp(all, "pkg/azure/cloud.c\n") != 0)
        print_error("files naming a cloud host:\n%s", all);
    assert_string_equal(all, "pkg/azure/cloud.c\n");
}

/* ---- azure.cloud ------------------------------------------------------------ */

static void test_cloud_default_is_public(void **state)
{
    (void)state;
    config_t *cfg = load_ok(doc("", ""));
    assert_string_equal(cfg->cloud, "AzurePublicCloud");
    assert_string_equal(cfg->arm_endpoint, "https://management.azure.com");
    assert_string_equal(cfg->authority_host, "https://login.microsoftonline.com");
    assert_string_equal(cfg->token_scope, "https://management.azure.com/.default");
    config_free(cfg);
    /* Without a cloud, the endpoints may be redirected (an emulator);
     * the scope stays the public cloud's. */
    cfg = load_ok(doc("  armEndpoint: http://127.0.0.1:9090/\n"
                      "  authorityHost: http://127.0.0.1:9090\n",
                      ""));
    assert_string_equal(cfg->arm_endpoint, "http://127.0.0.1:9090");
    assert_string_equal(cfg->token_scope, "https://management.azure.com/.default");
    config_free(cfg);
}

static void test_named_clouds_set_all_three(void **state)
{
    (void)state;
    config_t *cfg = load_ok(doc("  cloud: AzureChinaCloud\n", ""));
    assert_string_equal(cfg->arm_endpoint, "https://management.chinacloudapi.cn");
    assert_string_equal(cfg->authority_host, "https://login.chinacloudapi.cn");
    assert_string_equal(cfg->token_scope, "https://management.chinacloudapi.cn/.default");
    config_free(cfg);
    cfg = load_ok(doc("  cloud: AzureUSGovernment\n", ""));
    assert_string_equal(cfg->arm_endpoint, "https://management.usgovcloudapi.net");
    assert_string_equal(cfg->authority_host, "https://login.microsoftonline.us");
    assert_string_equal(cfg->token_scope, "https://management.usgovcloudapi.net/.default");
    config_free(cfg);
}

static void test_custom_cloud_takes_all_three(void **state)
{
    (void)state;
    config_t *cfg = load_ok(doc("  cloud: Custom\n"
                                "  armEndpoint: https://arm.example/\n"
                                "  authorityHost: https://login.example\n"
                                "  tokenScope: https://arm.example/.default\n",
                                ""));
    assert_string_equal(cfg->arm_endpoint, "https://arm.example");
    assert_string_equal(cfg->authority_host, "https://login.example");
    assert_string_equal(cfg->token_scope, "https://arm.example/.default");
    config_free(cfg);
    expect_err(doc("  cloud: Custom\n"
                   "  armEndpoint: https://arm.example\n",
                   ""),
               "t.yaml:3:10: azure.cloud: Custom needs azure.armEndpoint, azure.authorityHost "
               "and azure.tokenScope, all three");
}

static void test_cloud_errors(void **state)
{
    (void)state;
    expect_err(doc("  cloud: AzureGermanCloud\n", ""),
               "t.yaml:3:10: azure.cloud: must be one of AzurePublicCloud, AzureChinaCloud, "
               "AzureUSGovernment, Custom, got \"AzureGermanCloud\"");
    /* A named cloud's values are not overridden piecemeal. */
    expect_err(doc("  cloud: AzureChinaCloud\n"
                   "  armEndpoint: https://management.azure.com\n",
                   ""),
               "t.yaml:4:16: azure.armEndpoint: is set by cloud AzureChinaCloud; set cloud: "
               "Custom to give armEndpoint, authorityHost and tokenScope yourself");
    expect_err(doc("  tokenScope: https://x.example/.default\n", ""),
               "t.yaml:3:15: azure.tokenScope: needs cloud: Custom (with armEndpoint and "
               "authorityHost)");
    expect_err(doc("  cloud: Custom\n"
                   "  armEndpoint: https://arm.example\n"
                   "  authorityHost: https://login.example\n"
                   "  tokenScope: https://arm.example\n",
                   ""),
               "t.yaml:6:15: azure.tokenScope: must be a resource URL followed by /.default, "
               "such as https://management.example/.default, got \"https://arm.example\"");
    expect_err(doc("  cloud: \n", ""), "t.yaml:3:9: azure.cloud: must not be empty, got \"\"");
}

/* ---- registries ----------------------------------------------------------- */

static void test_registries_password_env_and_file(void **state)
{
    (void)state;
    setenv("ITEST_REG_PW", "s3cret-env-value", 1);
    char path[] = "/tmp/d8-regpw-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret-file-value\n", 18), 18);
    close(fd);
    char rest[1024];
    snprintf(rest, sizeof rest,
             "registries:\n"
             "  - server: MyACR.azurecr.io\n"
             "    username: myacr\n"
             "    passwordEnv: ITEST_REG_PW\n"
             "  - server: registry.example:5000\n"
             "    username: bot\n"
             "    passwordFile: %s\n"
             "  - server: mi.azurecr.io\n"
             "    identity: " MI "\n"
             "  - server: index.docker.io\n"
             "    username: hubuser\n"
             "    passwordEnv: ITEST_REG_PW\n",
             path);
    config_t *cfg = load_ok(doc("", rest));
    assert_int_equal(cfg->nregistries, 4);
    assert_string_equal(cfg->registries[0].server, "myacr.azurecr.io");
    assert_string_equal(cfg->registries[0].password, "s3cret-env-value");
    assert_string_equal(cfg->registries[1].password, "s3cret-file-value");
    assert_null(cfg->registries[2].password);
    assert_string_equal(cfg->registries[2].identity, MI);
    /* Which images pull with which entry (Docker's reference rule). */
    assert_ptr_equal(config_registry_for(cfg, "myacr.azurecr.io/ws:1"), &cfg->registries[0]);
    assert_ptr_equal(config_registry_for(cfg, "MYACR.AZURECR.IO/a/b/ws"), &cfg->registries[0]);
    assert_ptr_equal(config_registry_for(cfg, "registry.example:5000/ws"), &cfg->registries[1]);
    assert_null(config_registry_for(cfg, "registry.example/ws"));
    assert_ptr_equal(config_registry_for(cfg, "mi.azurecr.io/ws@sha256:00"), &cfg->registries[2]);
    assert_ptr_equal(config_registry_for(cfg, "vaibhavsing/dev8-workspace:latest"),
                     &cfg->registries[3]);
    assert_ptr_equal(config_registry_for(cfg, "ubuntu"), &cfg->registries[3]);
    assert_null(config_registry_for(cfg, "ghcr.io/x/y"));
    assert_null(config_registry_for(cfg, NULL));
    config_free(cfg);
    unlink(path);
    unsetenv("ITEST_REG_PW");
}

static void test_registry_errors(void **state)
{
    (void)state;
    setenv("ITEST_REG_PW", "topsecret-value", 1);
    expect_err(doc("", "registries:\n  - server: https://x.azurecr.io\n    identity: " MI "\n"),
               "t.yaml:6:13: registries[0].server: must be a registry host such as "
               "myacr.azurecr.io or registry.example:5000 (no scheme, no path), got "
               "\"https://x.azurecr.io\"");
    expect_err(doc("", "registries:\n  - server: x.azurecr.io\n"),
               "t.yaml:6:5: registries[0]: needs username with passwordEnv or passwordFile, or "
               "identity");
    expect_err(
        doc("", "registries:\n  - server: x.azurecr.io\n    identity: " MI "\n    username: u\n"),
        "t.yaml:6:5: registries[0]: takes either identity or username with "
        "passwordEnv/passwordFile, not both");
    expect_err(doc("", "registries:\n  - server: x.azurecr.io\n    username: u\n"
                       "    passwordEnv: ITEST_REG_PW\n    passwordFile: /x\n"),
               "t.yaml:6:5: registries[0]: needs exactly one of passwordEnv and passwordFile "
               "with username");
    expect_err(doc("", "registries:\n  - server: x.azurecr.io\n    username: u\n"
                       "    passwordEnv: ITEST_NOT_SET_ANYWHERE\n"),
               "t.yaml:8:18: registries[0].passwordEnv: names an environment variable that is "
               "not set or empty");
    expect_err(doc("", "registries:\n  - server: x.azurecr.io\n    username: u\n"
                       "    passwordFile: /nonexistent/d8-pw\n"),
               "t.yaml:8:19: registries[0].passwordFile: No such file or directory: "
               "/nonexistent/d8-pw");
    expect_err(doc("", "registries:\n  - server: x.azurecr.io\n    username: u\n"
                       "    password: topsecret-value\n"),
               "t.yaml:8:5: registries[0].password: unknown key; secrets come from the environment "
               "(or files such as api.keysFile), never from the config file");
    assert_null(strstr(g_err, "topsecret-value"));
    expect_err(doc("", "registries:\n  - server: x.azurecr.io\n    identity: /subscriptions/x\n"),
               "t.yaml:7:15: registries[0].identity: must be the resource id of a user-assigned "
               "managed identity: /subscriptions/<guid>/resourceGroups/<group>/providers/"
               "Microsoft.ManagedIdentity/userAssignedIdentities/<name>, got \"/subscriptions/x\"");
    expect_err(doc("", "registries:\n  - server: x.azurecr.io\n    identity: " MI
                       "\n  - server: X.azurecr.io\n    identity: " MI "\n"),
               "t.yaml:8:13: registries[1]: server x.azurecr.io is listed twice");
    unsetenv("ITEST_REG_PW");
}

/* A password with a control character is refused without being echoed. */
static void test_registry_password_never_echoed(void **state)
{
    (void)state;
    setenv("ITEST_REG_PW", "bad\x01secret-value", 1);
    config_t *cfg = (config_t *)(uintptr_t)1;
    int rc = load(doc("", "registries:\n  - server: x.azurecr.io\n    username: u\n"
                          "    passwordEnv: ITEST_REG_PW\n"),
                  &cfg);
    assert_true(rc < 0);
    assert_null(cfg);
    assert_non_null(strstr(g_err, "holds a password with control characters"));
    assert_null(strstr(g_err, "secret-value"));
    unsetenv("ITEST_REG_PW");
}

/* ---- subnetIds -------------------------------------------------------------- */

static void test_subnet_ids(void **state)
{
    (void)state;
    config_t *cfg =
        load_ok("azure:\n  subscriptionId: \"" SUB "\"\n"
                "  regions:\n"
                "    - name: eastus\n"
                "      resourceGroup: rg\n"
                "      storageAccount: dev8eastus\n"
                "      subnetIds: [\"" SUBNET "\"]\n"
                "    - {name: westus, resourceGroup: rg, storageAccount: dev8westus}\n");
    assert_int_equal(cfg->regions[0].nsubnet_ids, 1);
    assert_string_equal(cfg->regions[0].subnet_ids[0], SUBNET);
    assert_int_equal(cfg->regions[1].nsubnet_ids, 0);
    config_free(cfg);
    expect_err("azure:\n  subscriptionId: \"" SUB "\"\n"
               "  regions:\n"
               "    - name: eastus\n"
               "      resourceGroup: rg\n"
               "      storageAccount: dev8eastus\n"
               "      subnetIds: [\"/subscriptions/" SUB "/resourceGroups/rg/subnets/x\"]\n",
               "t.yaml:7:19: azure.regions[0].subnetIds[0]: must be a subnet resource id: "
               "/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Network/"
               "virtualNetworks/<vnet>/subnets/<subnet>, got \"/subscriptions/" SUB
               "/resource\"...");
    expect_err("azure:\n  subscriptionId: \"" SUB "\"\n"
               "  regions:\n"
               "    - name: eastus\n"
               "      resourceGroup: rg\n"
               "      storageAccount: dev8eastus\n"
               "      subnetIds: [\"" SUBNET "\", \"" SUBNET "\"]\n",
               "t.yaml:7:18: azure.regions[0].subnetIds: must list at most one subnet (ACI "
               "injects a container group into one subnet), got 2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cloud_table),
        cmocka_unit_test(test_cloud_hosts_only_in_the_table),
        cmocka_unit_test(test_cloud_default_is_public),
        cmocka_unit_test(test_named_clouds_set_all_three),
        cmocka_unit_test(test_custom_cloud_takes_all_three),
        cmocka_unit_test(test_cloud_errors),
        cmocka_unit_test(test_registries_password_env_and_file),
        cmocka_unit_test(test_registry_errors),
        cmocka_unit_test(test_registry_password_never_echoed),
        cmocka_unit_test(test_subnet_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
