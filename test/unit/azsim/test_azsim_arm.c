/*
 * Unit tests of azsim's subscription reads for preflight (azsim_arm.c):
 * Providers_Get, ResourceGroups_Get, Permissions_ListForResourceGroup and
 * _ListForResource, FileServices_GetServiceProperties, Location_ListUsage
 * and _ListCapabilities, their api-versions and paging, the `arm:`
 * settings (POST /_azsim/arm all or nothing, the config section) and the
 * storage account fields preflight reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azsim/azsim.h"
#include "base/base.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#define AZSIM_HARNESS_T0 7000000
#include "azsim_harness.h"

#define RES_V "?api-version=2021-04-01"
#define AUTH_V "?api-version=2022-04-01"
#define PERMS_PATH                                                                                 \
    "/subscriptions/" SUB "/resourcegroups/rg1/providers/Microsoft.Authorization/permissions"

static void test_provider_get(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(
        req(f, "GET", "/subscriptions/" SUB "/providers/Microsoft.Storage" RES_V, NULL), 200);
    assert_string_equal(jstr(f->j, "registrationState"), "Registered");
    assert_string_equal(jstr(f->j, "namespace"), "Microsoft.Storage");
    /* The Resources api-version, not ACI's. */
    assert_int_equal(
        req(f, "GET", "/subscriptions/" SUB "/providers/Microsoft.Storage" ACI_V, NULL), 400);
    assert_string_equal(err_code(f), "InvalidApiVersionParameter");
    assert_int_equal(
        req(f, "POST", "/subscriptions/" SUB "/providers/Microsoft.Storage" RES_V, NULL), 405);
    ctl(f, "/_azsim/arm", "{\"unregisteredProviders\":[\"microsoft.storage\"]}");
    assert_int_equal(
        req(f, "GET", "/subscriptions/" SUB "/providers/Microsoft.Storage" RES_V, NULL), 200);
    assert_string_equal(jstr(f->j, "registrationState"), "NotRegistered");
    /* ... and the namespace's calls answer the registration error. */
    assert_int_equal(req(f, "GET", FS_PATH FS_V, NULL), 409);
    assert_string_equal(err_code(f), "MissingSubscriptionRegistration");
    assert_non_null(strstr(err_msg(f), "'Microsoft.Storage'"));
    assert_int_equal(req(f, "GET", SA_PATH "/fileServices/default" FS_V, NULL), 409);
    /* ACI's own calls are unaffected. */
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_int_equal(req(f, "POST", "/_azsim/reset", NULL), 204);
    assert_int_equal(req(f, "GET", FS_PATH FS_V, NULL), 200);
    fx_free(f);
}

static void test_resource_group_get(void **state)
{
    (void)state;
    azsim_opts_t o;
    azsim_opts_init(&o);
    o.clock = fake_clock;
    o.throttle = 0;
    o.resource_groups = d8_xcalloc(1, sizeof(char *));
    o.resource_groups[0] = d8_xstrdup("rg1");
    o.nresource_groups = 1;
    fx_t *f = fx_new(&o);
    azsim_opts_release(&o);
    assert_int_equal(req(f, "GET", "/subscriptions/" SUB "/resourcegroups/RG1" RES_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Succeeded");
    assert_int_equal(req(f, "GET", "/subscriptions/" SUB "/resourceGroups/rg2" RES_V, NULL), 404);
    assert_string_equal(err_code(f), "ResourceGroupNotFound");
    fx_free(f);
}

static void test_permissions(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(req(f, "GET", PERMS_PATH AUTH_V, NULL), 200);
    assert_string_equal(jstr(f->j, "value.0.actions.0"), "*");
    assert_int_equal(cJSON_GetArraySize(at(f->j, "value.0.notActions")), 0);
    assert_int_equal(req(f, "GET", PERMS_PATH RES_V, NULL), 400);
    /* A resource's permissions: the same entry. */
    assert_int_equal(req(f, "GET",
                         RG_PATH "/providers/Microsoft.Network/virtualNetworks/v/subnets/"
                                 "s/providers/Microsoft.Authorization/permissions" AUTH_V,
                         NULL),
                     200);
    assert_string_equal(jstr(f->j, "value.0.actions.0"), "*");
    /* POST /_azsim/arm is all or nothing. */
    assert_int_equal(req(f, "POST", "/_azsim/arm", "{\"actions\":[\"a/b\"],\"maxCpu\":3.3}"), 400);
    assert_string_equal(err_code(f), "InvalidArmSettings");
    assert_int_equal(req(f, "POST", "/_azsim/arm", "{\"actions\":\"a\"}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/arm", "{\"bogus\":1}"), 400);
    assert_int_equal(req(f, "GET", "/_azsim/arm", NULL), 200);
    assert_string_equal(jstr(f->j, "actions.0"), "*");
    assert_int_equal((int)jnum(f->j, "maxCpu"), 4);
    ctl(f, "/_azsim/arm", "{\"actions\":[\"Microsoft.Storage/*\"],\"notActions\":[\"*/delete\"]}");
    assert_int_equal(req(f, "GET", PERMS_PATH AUTH_V, NULL), 200);
    assert_string_equal(jstr(f->j, "value.0.actions.0"), "Microsoft.Storage/*");
    assert_string_equal(jstr(f->j, "value.0.notActions.0"), "*/delete");
    fx_free(f);
}

static void test_account_and_file_service(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    assert_true(cJSON_IsTrue(at(f->j, "properties.allowSharedKeyAccess")));
    assert_string_equal(jstr(f->j, "properties.networkAcls.defaultAction"), "Allow");
    assert_string_equal(jstr(f->j, "properties.publicNetworkAccess"), "Enabled");
    assert_int_equal(req(f, "GET", SA_PATH "/fileServices/default" FS_V, NULL), 200);
    assert_true(cJSON_IsTrue(at(f->j, "properties.shareDeleteRetentionPolicy.enabled")));
    assert_int_equal((int)jnum(f->j, "properties.shareDeleteRetentionPolicy.days"), 7);
    ctl(f, "/_azsim/storage",
        "{\"accounts\":[{\"name\":\"dev8eastus\",\"allowSharedKeyAccess\":false,"
        "\"networkDefaultAction\":\"deny\",\"publicNetworkAccess\":\"Disabled\","
        "\"shareDeleteRetentionDays\":0}]}");
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    assert_true(cJSON_IsFalse(at(f->j, "properties.allowSharedKeyAccess")));
    assert_string_equal(jstr(f->j, "properties.networkAcls.defaultAction"), "Deny");
    assert_string_equal(jstr(f->j, "properties.publicNetworkAccess"), "Disabled");
    assert_int_equal(req(f, "GET", SA_PATH "/fileServices/default" FS_V, NULL), 200);
    assert_true(cJSON_IsFalse(at(f->j, "properties.shareDeleteRetentionPolicy.enabled")));
    assert_null(at(f->j, "properties.shareDeleteRetentionPolicy.days"));
    /* Out of range: refused, nothing changed. */
    assert_int_equal(
        req(f, "POST", "/_azsim/storage",
            "{\"accounts\":[{\"name\":\"dev8eastus\",\"shareDeleteRetentionDays\":366}]}"),
        400);
    assert_int_equal(
        req(f, "POST", "/_azsim/storage",
            "{\"accounts\":[{\"name\":\"dev8eastus\",\"networkDefaultAction\":\"x\"}]}"),
        400);
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    assert_true(cJSON_IsFalse(at(f->j, "properties.allowSharedKeyAccess")));
    fx_free(f);
}

#define LOC_PATH "/subscriptions/" SUB "/providers/Microsoft.ContainerInstance/locations/eastus"

static void test_usages_and_capabilities(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(req(f, "GET", LOC_PATH "/usages" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "value.0.name.value"), "ContainerGroups");
    assert_int_equal((int)jnum(f->j, "value.0.currentValue"), 0);
    assert_int_equal((int)jnum(f->j, "value.0.limit"), 100);
    assert_string_equal(jstr(f->j, "value.1.name.value"), "StandardCores");
    assert_null(at(f->j, "nextLink"));
    ctl(f, "/_azsim/aci", "{\"quota\":{\"standardCores\":0}}");
    assert_int_equal(req(f, "GET", LOC_PATH "/usages" ACI_V, NULL), 200);
    assert_int_equal(jnum(f->j, "value.1.limit"), 2147483647.0);
    assert_int_equal(req(f, "GET", LOC_PATH "/capabilities" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "value.0.osType"), "Linux");
    assert_string_equal(jstr(f->j, "value.0.gpu"), "None");
    assert_int_equal((int)jnum(f->j, "value.0.capabilities.maxCpu"), 4);
    assert_int_equal((int)jnum(f->j, "value.0.capabilities.maxMemoryInGB"), 16);
    ctl(f, "/_azsim/arm", "{\"maxCpu\":2,\"maxMemoryInGB\":3.5}");
    assert_int_equal(req(f, "GET", LOC_PATH "/capabilities" ACI_V, NULL), 200);
    assert_int_equal((int)jnum(f->j, "value.1.capabilities.maxCpu"), 2);
    assert_true(jnum(f->j, "value.1.capabilities.maxMemoryInGB") == 3.5);
    /* Paged like the other lists: one item a page. */
    ctl(f, "/_azsim/paging", "{\"pageSize\":1}");
    assert_int_equal(req(f, "GET", LOC_PATH "/usages" ACI_V, NULL), 200);
    assert_int_equal(cJSON_GetArraySize(at(f->j, "value")), 1);
    const char *next = jstr(f->j, "nextLink");
    assert_non_null(next);
    char *link = d8_xstrdup(next);
    assert_int_equal(req(f, "GET", link, NULL), 200);
    free(link);
    assert_string_equal(jstr(f->j, "value.0.name.value"), "StandardCores");
    assert_null(at(f->j, "nextLink"));
    /* An unregistered subscription gets the registration error. */
    ctl(f, "/_azsim/aci", "{\"unregisteredSubscriptions\":[\"" SUB "\"]}");
    assert_int_equal(req(f, "GET", LOC_PATH "/capabilities" ACI_V, NULL), 409);
    assert_string_equal(err_code(f), "MissingSubscriptionRegistration");
    fx_free(f);
}

static void test_config_section(void **state)
{
    (void)state;
    char path[] = "/tmp/azsim-arm-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char good[] = "arm:\n  actions: [\"Microsoft.Storage/*\"]\n  maxCpu: 2\n";
    assert_int_equal(write(fd, good, sizeof(good) - 1), (ssize_t)(sizeof(good) - 1));
    close(fd);
    azsim_opts_t o;
    azsim_opts_init(&o);
    char err[256];
    assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), 0);
    assert_int_equal(o.arm.nactions, 1);
    assert_true(o.arm.max_cpu == 2);
    fd = open(path, O_WRONLY | O_TRUNC);
    static const char bad[] = "arm:\n  maxCpu: 2\n  nope: 1\n";
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
    close(fd);
    assert_int_not_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), 0);
    assert_non_null(strstr(err, ":3:9: arm.nope: unknown key in arm"));
    /* A failed load leaves o as it was. */
    assert_true(o.arm.max_cpu == 2);
    azsim_opts_release(&o);
    unlink(path);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_get),
        cmocka_unit_test(test_resource_group_get),
        cmocka_unit_test(test_permissions),
        cmocka_unit_test(test_account_and_file_service),
        cmocka_unit_test(test_usages_and_capabilities),
        cmocka_unit_test(test_config_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
