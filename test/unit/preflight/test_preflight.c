/*
 * Unit tests of pkg/preflight: RBAC matching of the permissions list, each
 * evaluator against the specs' example bodies (test/fixtures/azure-specs)
 * and hand-made ones, the report's JSON and table, and that the action
 * list of the code, hack/azure/role.json and the README agree.
 * Run from the repository root (as `make test` does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "preflight/preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURES "test/fixtures/azure-specs/"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s (run from the repository root)", path);
    d8_buf_t b;
    d8_buf_init(&b);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        d8_buf_append(&b, tmp, n);
    fclose(f);
    return d8_buf_detach(&b, NULL);
}

/* The 200 body of an example in test/fixtures (malloc'd). */
static char *example(const char *file)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "%s", file);
    char *text = slurp(path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    const cJSON *body = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "responses"), "200"), "body");
    assert_non_null(body);
    char *s = cJSON_PrintUnformatted(body);
    cJSON_Delete(j);
    return s;
}

/* The status of the last check added. */
static preflight_status_t last(const preflight_report_t *r)
{
    assert_true(r->n > 0);
    return r->checks[r->n - 1].status;
}

/* The check named `name` (borrowed). */
static const preflight_check_t *named(const preflight_report_t *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->checks[i].name, name) == 0)
            return &r->checks[i];
    fail_msg("no check %s", name);
    return NULL;
}

static void test_allows(void **state)
{
    (void)state;
    cJSON *p = cJSON_Parse("[{\"actions\":[\"*\"],\"notActions\":[\"Microsoft.Authorization/*/"
                           "Write\",\"microsoft.storage/storageaccounts/listkeys/action\"]}]");
    assert_true(preflight_allows(p, "Microsoft.ContainerInstance/containerGroups/write"));
    assert_false(preflight_allows(p, "Microsoft.Storage/storageAccounts/listKeys/action"));
    assert_false(preflight_allows(p, "Microsoft.Authorization/roleAssignments/write"));
    cJSON_Delete(p);
    /* A reader ("*\/read") in one entry, container writes in another. */
    p = cJSON_Parse("[{\"actions\":[\"*/read\"]},{\"actions\":[\"Microsoft.ContainerInstance/"
                    "containerGroups/*\"],\"notActions\":[]}]");
    assert_true(preflight_allows(p, "Microsoft.Storage/storageAccounts/read"));
    assert_true(preflight_allows(p, "Microsoft.ContainerInstance/containerGroups/start/action"));
    assert_false(
        preflight_allows(p, "Microsoft.Storage/storageAccounts/fileServices/shares/write"));
    /* An entry's notActions do not take away what another entry grants. */
    cJSON_Delete(p);
    p = cJSON_Parse("[{\"actions\":[\"*\"],\"notActions\":[\"*/delete\"]},{\"actions\":["
                    "\"Microsoft.Storage/*\"]}]");
    assert_true(
        preflight_allows(p, "Microsoft.Storage/storageAccounts/fileServices/shares/delete"));
    assert_false(preflight_allows(p, "Microsoft.ContainerInstance/containerGroups/delete"));
    cJSON_Delete(p);
    /* Nothing, or not a list: nothing allowed. */
    assert_false(preflight_allows(NULL, "Microsoft.Storage/storageAccounts/read"));
}

static void test_provider(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    char *body = example("GetProvider.json"); /* registrationState Registering */
    preflight_eval_provider(&r, "Microsoft.Storage", body);
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    assert_non_null(strstr(r.checks[0].message, "Registering"));
    assert_non_null(strstr(r.checks[0].fix, "az provider register --namespace Microsoft.Storage"));
    free(body);
    preflight_eval_provider(&r, "Microsoft.Storage", "{\"registrationState\":\"Registered\"}");
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    assert_string_equal(r.checks[1].fix, "");
    preflight_eval_provider(&r, "Microsoft.Storage", "not json");
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    preflight_report_release(&r);
}

static void test_permissions(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    preflight_eval_permissions(&r, "p", "rg", "{\"value\":[{\"actions\":[\"*\"]}]}");
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    /* The role of hack/azure/role.json is exactly enough. */
    char *role = slurp("hack/azure/role.json");
    cJSON *j = cJSON_Parse(role);
    free(role);
    cJSON *v = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(v, "value");
    cJSON *perm = cJSON_CreateObject();
    cJSON_AddItemToObject(perm, "actions", cJSON_Duplicate(cJSON_GetObjectItem(j, "Actions"), 1));
    cJSON_AddItemToArray(arr, perm);
    char *body = cJSON_PrintUnformatted(v);
    preflight_eval_permissions(&r, "p", "rg", body);
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    free(body);
    /* Without one action it fails and names it. */
    cJSON_DeleteItemFromArray(cJSON_GetObjectItem(perm, "actions"), 1);
    body = cJSON_PrintUnformatted(v);
    preflight_eval_permissions(&r, "p", "rg", body);
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    assert_non_null(
        strstr(r.checks[r.n - 1].message, "Microsoft.ContainerInstance/containerGroups/write"));
    assert_non_null(strstr(r.checks[r.n - 1].fix, "hack/azure/role.json"));
    free(body);
    cJSON_Delete(v);
    cJSON_Delete(j);
    preflight_report_release(&r);
}

static void test_account(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    /* A StorageV2 account as the spec example shows it (no flags set). */
    preflight_eval_account(&r, "region eastus", "acct", 1024,
                           "{\"kind\":\"StorageV2\",\"sku\":{\"name\":\"Standard_LRS\"},"
                           "\"properties\":{}}");
    assert_int_equal(named(&r, "region eastus: storage account acct")->status, PREFLIGHT_PASS);
    assert_int_equal(named(&r, "region eastus: shared key access")->status, PREFLIGHT_PASS);
    assert_int_equal(named(&r, "region eastus: network rules")->status, PREFLIGHT_PASS);
    assert_int_equal(named(&r, "region eastus: large file shares")->status, PREFLIGHT_WARN);
    assert_int_equal(named(&r, "region eastus: maxStorageGB")->status, PREFLIGHT_PASS);
    preflight_report_release(&r);
    preflight_report_init(&r);
    preflight_eval_account(&r, "x", "acct", 8192,
                           "{\"kind\":\"BlockBlobStorage\",\"sku\":{\"name\":\"Premium_LRS\"},"
                           "\"properties\":{\"allowSharedKeyAccess\":false,\"networkAcls\":{"
                           "\"defaultAction\":\"Deny\",\"virtualNetworkRules\":[]}}}");
    assert_int_equal(named(&r, "x: storage account acct")->status, PREFLIGHT_FAIL);
    assert_int_equal(named(&r, "x: shared key access")->status, PREFLIGHT_FAIL);
    assert_int_equal(named(&r, "x: network rules")->status, PREFLIGHT_FAIL);
    /* Premium shares go to 100 TiB; they start at 100 GiB. */
    assert_int_equal(named(&r, "x: large file shares")->status, PREFLIGHT_PASS);
    assert_int_equal(named(&r, "x: maxStorageGB")->status, PREFLIGHT_WARN);
    preflight_report_release(&r);
    preflight_report_init(&r);
    preflight_eval_account(&r, "y", "acct", 8192,
                           "{\"kind\":\"StorageV2\",\"sku\":{\"name\":\"Standard_ZRS\"},"
                           "\"properties\":{\"networkAcls\":{\"defaultAction\":\"Deny\","
                           "\"virtualNetworkRules\":[{\"id\":\"/s/x\"}]}}}");
    assert_int_equal(named(&r, "y: network rules")->status, PREFLIGHT_WARN);
    assert_int_equal(named(&r, "y: large file shares")->status, PREFLIGHT_FAIL);
    assert_int_equal(named(&r, "y: maxStorageGB")->status, PREFLIGHT_FAIL);
    assert_non_null(strstr(named(&r, "y: maxStorageGB")->fix, "--enable-large-file-share"));
    preflight_report_release(&r);
    preflight_report_init(&r);
    preflight_eval_account(&r, "z", "acct", 200000 / 2,
                           "{\"kind\":\"StorageV2\",\"sku\":{\"name\":\"Standard_LRS\"},"
                           "\"properties\":{\"largeFileSharesState\":\"Enabled\","
                           "\"publicNetworkAccess\":\"Disabled\"}}");
    assert_int_equal(named(&r, "z: network rules")->status, PREFLIGHT_FAIL);
    assert_int_equal(named(&r, "z: large file shares")->status, PREFLIGHT_PASS);
    assert_int_equal(named(&r, "z: maxStorageGB")->status, PREFLIGHT_PASS);
    preflight_report_release(&r);
}

static void test_file_service(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    preflight_eval_file_service(
        &r, "f", "acct",
        "{\"properties\":{\"shareDeleteRetentionPolicy\":{\"enabled\":true,\"days\":7}}}");
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    preflight_eval_file_service(
        &r, "f", "acct", "{\"properties\":{\"shareDeleteRetentionPolicy\":{\"enabled\":false}}}");
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    assert_non_null(strstr(r.checks[1].fix, "--enable-delete-retention true"));
    preflight_eval_file_service(&r, "f", "acct", "{}");
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    preflight_report_release(&r);
}

static void test_usages(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    /* The example reports ContainerGroups only: StandardCores unknown. */
    char *body = example("ContainerGroupUsage.json");
    preflight_eval_usages(&r, "u", "westcentralus", body);
    assert_int_equal(last(&r), PREFLIGHT_WARN);
    assert_non_null(strstr(r.checks[0].message, "ContainerGroups 1 of 2000"));
    free(body);
    static const char ok[] = "{\"value\":[{\"currentValue\":3,\"limit\":100,\"name\":{\"value\":"
                             "\"ContainerGroups\"}},{\"currentValue\":10,\"limit\":100,\"name\":{"
                             "\"value\":\"StandardCores\"}}]}";
    preflight_eval_usages(&r, "u", "eastus", ok);
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    static const char high[] = "{\"value\":[{\"currentValue\":90,\"limit\":100,\"name\":{"
                               "\"value\":\"ContainerGroups\"}},{\"currentValue\":10,\"limit\":"
                               "100,\"name\":{\"value\":\"StandardCores\"}}]}";
    preflight_eval_usages(&r, "u", "eastus", high);
    assert_int_equal(last(&r), PREFLIGHT_WARN);
    static const char full[] = "{\"value\":[{\"currentValue\":3,\"limit\":100,\"name\":{\"value\":"
                               "\"ContainerGroups\"}},{\"currentValue\":97,\"limit\":100,\"name\":"
                               "{\"value\":\"StandardCores\"}}]}";
    preflight_eval_usages(&r, "u", "eastus", full);
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    preflight_report_release(&r);
}

static void test_capabilities(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    /* The example has Linux with a K80 GPU and Windows: no Linux without GPU. */
    char *body = example("CapabilitiesList.json");
    preflight_eval_capabilities(&r, "c", "westus", 4, 16, body);
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    free(body);
    static const char small[] = "{\"value\":[{\"resourceType\":\"containerGroups\",\"osType\":"
                                "\"Linux\",\"gpu\":\"None\",\"capabilities\":{\"maxMemoryInGB\":"
                                "14,\"maxCpu\":4}}]}";
    preflight_eval_capabilities(&r, "c", "westus", 4, 16, small);
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    assert_non_null(strstr(r.checks[1].message, "14 GB"));
    preflight_eval_capabilities(&r, "c", "westus", 4, 14, small);
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    preflight_report_release(&r);
}

static void test_images(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    static const char *const hub[] = {"ubuntu", "library/ubuntu:22.04", "vaibhavsing/dev8:1",
                                      "docker.io/x/y", "index.docker.io/x/y@sha256:00"};
    for (size_t i = 0; i < sizeof hub / sizeof hub[0]; i++) {
        preflight_eval_image(&r, "k", hub[i], NULL);
        assert_int_equal(last(&r), PREFLIGHT_WARN);
    }
    static const char *const other[] = {"mcr.microsoft.com/devcontainers/base:ubuntu",
                                        "myacr.azurecr.io/dev8/node:1", "localhost:5000/x",
                                        "ghcr.io/o/i:1"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        preflight_eval_image(&r, "k", other[i], NULL);
        assert_int_equal(last(&r), PREFLIGHT_PASS);
    }
    preflight_report_release(&r);
}

static void test_images_with_registries(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    config_registry_t pw = {.server = (char *)"docker.io", .username = (char *)"me"};
    preflight_eval_image(&r, "k", "vaibhavsing/dev8:1", &pw);
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    assert_non_null(strstr(r.checks[0].message, "registry credentials (user me)"));
    config_registry_t mi = {.server = (char *)"myacr.azurecr.io",
                            .identity =
                                (char *)"/subscriptions/s/resourceGroups/g/providers/"
                                        "Microsoft.ManagedIdentity/userAssignedIdentities/i"};
    preflight_eval_image(&r, "k", "myacr.azurecr.io/x:1", &mi);
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    assert_non_null(strstr(r.checks[1].message, "managed identity"));
    preflight_report_release(&r);
}

static void test_resource_action(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    static const char *const action = "Microsoft.Network/virtualNetworks/subnets/join/action";
    preflight_eval_resource_action(&r, "n", "/sub/x", action, "grant it",
                                   "{\"value\":[{\"actions\":[\"Microsoft.Network/*\"]}]}");
    assert_int_equal(last(&r), PREFLIGHT_PASS);
    preflight_eval_resource_action(
        &r, "n", "/sub/x", action, "grant it",
        "{\"value\":[{\"actions\":[\"*\"],\"notActions\":[\"*/join/action\"]}]}");
    assert_int_equal(last(&r), PREFLIGHT_FAIL);
    assert_string_equal(r.checks[1].fix, "grant it");
    preflight_report_release(&r);
}

static void test_report(void **state)
{
    (void)state;
    preflight_report_t r;
    preflight_report_init(&r);
    preflight_add(&r, "a", PREFLIGHT_PASS, "ignored", "fine %d", 1);
    preflight_add(&r, "bb", PREFLIGHT_FAIL, "do this", "broken");
    preflight_add(&r, "c", PREFLIGHT_WARN, "maybe", "hmm");
    cJSON *j = preflight_report_json(&r);
    char *s = cJSON_PrintUnformatted(j);
    assert_string_equal(s, "{\"checks\":[{\"name\":\"a\",\"status\":\"pass\",\"message\":\"fine "
                           "1\",\"fix\":\"\"},{\"name\":\"bb\",\"status\":\"fail\",\"message\":"
                           "\"broken\",\"fix\":\"do this\"},{\"name\":\"c\",\"status\":\"warn\","
                           "\"message\":\"hmm\",\"fix\":\"maybe\"}],\"summary\":{\"pass\":1,"
                           "\"warn\":1,\"fail\":1}}");
    free(s);
    cJSON_Delete(j);
    d8_buf_t b;
    d8_buf_init(&b);
    preflight_report_table(&r, &b);
    assert_string_equal(b.data, "STATUS CHECK MESSAGE\n"
                                "pass   a     fine 1\n"
                                "fail   bb    broken\n"
                                "             fix: do this\n"
                                "warn   c     hmm\n"
                                "             fix: maybe\n"
                                "1 pass, 1 warn, 1 fail\n");
    d8_buf_release(&b);
    preflight_report_release(&r);
    preflight_report_release(NULL);
}

/* The lines of text between two markers that start with "Microsoft." (a
 * NULL-terminated malloc'd array of malloc'd strings). */
static char **actions_between(const char *text, const char *from, const char *to)
{
    const char *a = strstr(text, from), *z = a ? strstr(a, to) : NULL;
    if (!a || !z)
        fail_msg("markers %s .. %s not found", from, to);
    char **out = calloc(64, sizeof *out);
    size_t n = 0;
    for (const char *p = a; p < z && n < 63;) {
        const char *eol = strchr(p, '\n');
        if (!eol || eol > z)
            eol = z;
        while (p < eol && (*p == ' ' || *p == '-' || *p == '`' || *p == '"'))
            p++;
        if (strncmp(p, "Microsoft.", 10) == 0) {
            size_t len = 0;
            while (p + len < eol && p[len] != '`' && p[len] != ' ' && p[len] != '"' &&
                   p[len] != ',')
                len++;
            out[n++] = strndup(p, len);
        }
        p = eol + 1;
    }
    return out;
}

static void assert_same_list(char **got, const char *what)
{
    size_t n = 0;
    for (; got[n]; n++) {
        int found = 0;
        for (const char *const *a = preflight_actions; *a; a++)
            found |= strcmp(*a, got[n]) == 0;
        if (!found)
            fail_msg("%s lists %s, which the agent's list does not", what, got[n]);
    }
    size_t want = 0;
    for (const char *const *a = preflight_actions; *a; a++, want++) {
        int found = 0;
        for (size_t i = 0; got[i]; i++)
            found |= strcmp(*a, got[i]) == 0;
        if (!found)
            fail_msg("%s does not list %s", what, *a);
    }
    assert_int_equal(n, want);
    for (size_t i = 0; got[i]; i++)
        free(got[i]);
    free(got);
}

/* preflight_actions, hack/azure/role.json and the README list the same
 * actions. */
static void test_action_lists_agree(void **state)
{
    (void)state;
    char *role = slurp("hack/azure/role.json");
    assert_same_list(actions_between(role, "\"Actions\"", "\"NotActions\""), "role.json");
    free(role);
    char *readme = slurp("README.md");
    assert_same_list(
        actions_between(readme, "<!-- preflight-actions -->", "<!-- /preflight-actions -->"),
        "README.md");
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allows),          cmocka_unit_test(test_provider),
        cmocka_unit_test(test_permissions),     cmocka_unit_test(test_account),
        cmocka_unit_test(test_file_service),    cmocka_unit_test(test_usages),
        cmocka_unit_test(test_capabilities),    cmocka_unit_test(test_images),
        cmocka_unit_test(test_report),          cmocka_unit_test(test_images_with_registries),
        cmocka_unit_test(test_resource_action), cmocka_unit_test(test_action_lists_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
