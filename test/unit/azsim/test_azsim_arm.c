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

#define SUB "00000000-0000-0000-0000-000000000000"
#define RG_PATH "/subscriptions/" SUB "/resourceGroups/rg1"
#define CG_PATH RG_PATH "/providers/Microsoft.ContainerInstance/containerGroups"
#define ACI_V "?api-version=2025-09-01"
#define SA_PATH RG_PATH "/providers/Microsoft.Storage/storageAccounts/dev8eastus"
#define SA_ID                                                                                      \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Storage/"                       \
    "storageAccounts/dev8eastus"
#define FS_PATH SA_PATH "/fileServices/default/shares"
#define FS_V "?api-version=2025-01-01"

static uint64_t g_now = 7000000;

static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return g_now;
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct fx {
    azsim_t *sim;
    char token[2048];
    const char *host; /* the Host header sent */
    azsim_resp_t r;
    cJSON *j;
} fx_t;

static void clear_last(fx_t *f)
{
    azsim_resp_release(&f->r);
    azsim_resp_init(&f->r);
    cJSON_Delete(f->j);
    f->j = NULL;
}

/* One request (target "path?query" or an absolute URL). Returns the
 * status; the answer stays in f. */
static int req(fx_t *f, const char *method, const char *target, const char *body)
{
    clear_last(f);
    if (strncmp(target, "http://", 7) == 0)
        target = strchr(target + 7, '/');
    char *t = d8_xstrdup(target);
    char *qm = strchr(t, '?');
    if (qm)
        *qm = '\0';
    char auth[2100];
    snprintf(auth, sizeof(auth), "Bearer %s", f->token);
    http_header_t h[3];
    size_t nh = 0;
    h[nh++] = (http_header_t){"host", f->host};
    if (f->token[0])
        h[nh++] = (http_header_t){"authorization", auth};
    if (body)
        h[nh++] = (http_header_t){"content-type", "application/json"};
    http_request_t rq;
    memset(&rq, 0, sizeof(rq));
    rq.method = method;
    rq.target = target;
    rq.path = t;
    rq.query = qm ? qm + 1 : "";
    rq.headers = h;
    rq.nheaders = nh;
    rq.body = body ? body : "";
    rq.body_len = body ? strlen(body) : 0;
    rq.request_id = "test";
    azsim_handle(f->sim, &rq, &f->r);
    if (f->r.body.len)
        f->j = cJSON_Parse(f->r.body.data);
    free(t);
    return f->r.status;
}

/* "a.b.0.c": through objects and array indexes; NULL when missing. */
static const cJSON *at(const cJSON *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (*tok >= '0' && *tok <= '9') ? cJSON_GetArrayItem(cur, atoi(tok))
                                           : cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cur;
}

static const char *jstr(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *err_code(const fx_t *f)
{
    const char *c = jstr(f->j, "error.code");
    return c ? c : "";
}

static const char *err_msg(const fx_t *f)
{
    const char *c = jstr(f->j, "error.message");
    return c ? c : "";
}

static fx_t *fx_new(const azsim_opts_t *o)
{
    fx_t *f = d8_xcalloc(1, sizeof(*f));
    f->sim = azsim_new(o);
    f->host = "azsim.test";
    azsim_resp_init(&f->r);
    assert_int_equal(req(f, "POST", "/tenant1/oauth2/v2.0/token",
                         "grant_type=client_credentials&client_id=app1&client_secret=s3cret&"
                         "scope=https%3A%2F%2Fmanagement.azure.com%2F.default"),
                     200);
    snprintf(f->token, sizeof(f->token), "%s", jstr(f->j, "access_token"));
    return f;
}

static fx_t *fx_default(void)
{
    azsim_opts_t o;
    azsim_opts_init(&o);
    o.clock = fake_clock;
    o.throttle = 0;
    fx_t *f = fx_new(&o);
    azsim_opts_release(&o);
    return f;
}

static void fx_free(fx_t *f)
{
    clear_last(f);
    azsim_resp_release(&f->r);
    azsim_free(f->sim);
    free(f);
}

/* POST of a control path with json; must be accepted (200). */
static void ctl(fx_t *f, const char *path, const char *json)
{
    if (req(f, "POST", path, json) != 200)
        fail_msg("POST %s %s answered %d: %s", path, json, f->r.status, f->r.body.data);
}

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
