/*
 * Unit tests of pkg/azure for ARM as Microsoft documents it (issue 11,
 * client side), without a server: the origin check of nextLinks (ARM
 * writes the default port), the x-ms-ratelimit-remaining-* headers with
 * their -global- twins, whose meter a 429 comes from, the storage account
 * decoder, and the DNS name label reuse scope of a container group body.
 * test_azure.c has the client's buckets (one ARM set per subscription);
 * test/integration/test_azure_arm.c drives the same behaviours over HTTP.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/azure.h"
#include "azure/azure_int.h"
#include "helpers/azure_specs.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <string.h>

/* ------------------------------------------------------------ paging */

static void test_same_origin(void **state)
{
    (void)state;
    const char *arm = "https://management.azure.com";
    static const struct {
        const char *url;
        int same;
    } cases[] = {
        /* What ARM sends: the default port written out, $skipToken as is. */
        {"https://management.azure.com:443/subscriptions/s/providers/Microsoft.Compute/"
         "virtualMachines?api-version=2021-11-01&$skiptoken=abc%3D%3D",
         1},
        {"https://management.azure.com/subscriptions/s?$skipToken=x", 1},
        {"HTTPS://Management.Azure.COM:443/subscriptions/s", 1},
        {"https://management.azure.com:/subscriptions/s", 1}, /* empty port: the default */
        {"https://management.azure.com?api-version=1", 1},
        {"https://management.azure.com:8443/subscriptions/s", 0},
        {"https://management.azure.com:80/subscriptions/s", 0},
        {"http://management.azure.com/subscriptions/s", 0},
        {"http://management.azure.com:443/subscriptions/s", 0},
        {"https://management.azure.com.evil.example/subscriptions/s", 0},
        {"https://management.azure.com@evil.example/subscriptions/s", 0},
        {"https://user@management.azure.com/subscriptions/s", 0},
        {"https://evil.example/?https://management.azure.com/", 0},
        {"https://management.azure.com:99999/subscriptions/s", 0},
        {"https://management.azure.com:44x/subscriptions/s", 0},
        {"https://management.azure.com", 0}, /* no path: nothing under armEndpoint */
        {"ftp://management.azure.com/subscriptions/s", 0},
        {"/subscriptions/s", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (azure__same_origin(arm, cases[i].url) != cases[i].same)
            fail_msg("%s: expected %d", cases[i].url, cases[i].same);
    }
    /* http and port 80 likewise; another port must match exactly. */
    assert_int_equal(azure__same_origin("http://arm.local", "http://ARM.local:80/x?y"), 1);
    assert_int_equal(azure__same_origin("http://arm.local:80", "http://arm.local/x"), 1);
    assert_int_equal(azure__same_origin("http://127.0.0.1:9090", "http://127.0.0.1:9090/x"), 1);
    assert_int_equal(azure__same_origin("http://127.0.0.1:9090", "http://127.0.0.1/x"), 0);
    assert_int_equal(azure__same_origin("http://127.0.0.1:9090", "http://127.0.0.1:9091/x"), 0);
    assert_int_equal(azure__same_origin("http://[::1]:9090", "http://[::1]:9090/x"), 1);
    assert_int_equal(azure__same_origin("http://[::1]:9090", "http://[::2]:9090/x"), 0);
    /* A base with a path (an emulator behind a prefix): under it only. */
    assert_int_equal(azure__same_origin("http://h:1/arm", "http://h:1/arm/subscriptions"), 1);
    assert_int_equal(azure__same_origin("http://h:1/arm/", "http://h:1/arm?x"), 1);
    assert_int_equal(azure__same_origin("http://h:1/arm", "http://h:1/armx/subscriptions"), 0);
    assert_int_equal(azure__same_origin("http://h:1/arm", "http://h:1/subscriptions"), 0);
    assert_int_equal(azure__same_origin(NULL, "http://h/x"), 0);
    assert_int_equal(azure__same_origin("http://h", NULL), 0);
}

/* ------------------------------------------------------------ throttling */

static int kind_of(const char *name)
{
    return azure__ratelimit_kind(name, strlen(name));
}

static void test_ratelimit_headers(void **state)
{
    (void)state;
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-reads"), AZURE_BUCKET_READ);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-writes"), AZURE_BUCKET_WRITE);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-deletes"), AZURE_BUCKET_DELETE);
    /* The global bucket of the subscription (observed: 3749 = 15 x 250 - 1). */
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-global-reads"),
                     AZURE_BUCKET_READ);
    assert_int_equal(kind_of("X-MS-RateLimit-Remaining-Subscription-Global-Writes"),
                     AZURE_BUCKET_WRITE);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-global-deletes"),
                     AZURE_BUCKET_DELETE);
    /* Not ours: the tenant's, the overridden-limit ones, and near misses. */
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-tenant-reads"), -1);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-resource-requests"), -1);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-resource-entities-read"), -1);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-global-"), -1);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-"), -1);
    assert_int_equal(kind_of("x-ms-ratelimit-remaining-subscription-readsx"), -1);
    /* Only the name's nlen bytes count (curl hands "name: value"). */
    const char *line = "x-ms-ratelimit-remaining-subscription-global-reads: 3749";
    assert_int_equal(azure__ratelimit_kind(line, 50), AZURE_BUCKET_READ);
}

static void test_throttle_origin(void **state)
{
    (void)state;
    const int both = AZ_THROTTLED_ARM | AZ_THROTTLED_ACI;
    /* ARM's throttling of any operation. */
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_PUT, "SubscriptionRequestsThrottled",
                                            "Number of 'write' requests for subscription "
                                            "'s' actor 'a' exceeded."),
                     AZ_THROTTLED_ARM);
    assert_int_equal(
        azure__throttle_origin(AZ_OP_GROUP_DELETE, "subscriptionrequeststhrottled", ""),
        AZ_THROTTLED_ARM);
    /* Operations without ACI meters: always ARM's bucket. */
    assert_int_equal(azure__throttle_origin(AZ_OP_SHARE_PUT, "TooManyRequests", ""),
                     AZ_THROTTLED_ARM);
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_START, "TooManyRequests", ""),
                     AZ_THROTTLED_ARM);
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_GET, "", ""), AZ_THROTTLED_ARM);
    /* ACI's create and delete meters. */
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_PUT, "TooManyRequests",
                                            "The request is being throttled."),
                     AZ_THROTTLED_ACI);
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_PUT, "ContainerGroupCreationThrottled",
                                            "The number of Container Group creation requests "
                                            "exceeded the limit."),
                     AZ_THROTTLED_ACI);
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_DELETE, NULL,
                                            "container group delete requests exceeded"),
                     AZ_THROTTLED_ACI);
    /* Nothing to tell by: both meters may be the one. */
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_PUT, "", ""), both);
    assert_int_equal(azure__throttle_origin(AZ_OP_GROUP_DELETE, NULL, NULL), both);
}

/* ------------------------------------------------------------ storage accounts */

/* The storage account answer of StorageAccounts_GetProperties, cut down
 * from the spec's example StorageAccountGetProperties.json (Azure/
 * azure-rest-api-specs, Microsoft.Storage stable/2025-01-01, which the
 * shared specs do not carry), and a premium file storage account with
 * large file shares on. */
static const char account_example[] =
    "{\"id\":\"/subscriptions/{subscription-id}/resourceGroups/res9407/providers/"
    "Microsoft.Storage/storageAccounts/sto8596\",\"kind\":\"Storage\",\"location\":"
    "\"eastus2(stage)\",\"name\":\"sto8596\",\"properties\":{\"isHnsEnabled\":true,"
    "\"creationTime\":\"2017-06-01T02:42:41.7633306Z\",\"primaryLocation\":\"eastus2(stage)\","
    "\"provisioningState\":\"Succeeded\",\"statusOfPrimary\":\"available\","
    "\"supportsHttpsTrafficOnly\":false},\"sku\":{\"name\":\"Standard_GRS\",\"tier\":"
    "\"Standard\"},\"tags\":{\"key1\":\"value1\"},\"type\":\"Microsoft.Storage/storageAccounts\"}";
static const char account_premium[] =
    "{\"id\":\"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/"
    "dev8eastus\",\"name\":\"dev8eastus\",\"location\":\"eastus\",\"kind\":\"FileStorage\","
    "\"sku\":{\"name\":\"Premium_LRS\",\"tier\":\"Premium\"},\"properties\":{"
    "\"largeFileSharesState\":\"Enabled\",\"provisioningState\":\"Succeeded\"}}";

/* 1 when value is one of the enum values of a schema property. */
static int in_enum(const cJSON *prop, const char *value)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(prop, "enum"))
    {
        if (cJSON_IsString(v) && strcmp(v->valuestring, value) == 0)
            return 1;
    }
    return 0;
}

static void test_decode_storage_account(void **state)
{
    (void)state;
    azure_storage_account_t a;
    assert_int_equal(azure_decode_storage_account(account_example, strlen(account_example), &a), 0);
    assert_string_equal(a.name, "sto8596");
    assert_string_equal(a.kind, "Storage");
    assert_string_equal(a.sku_name, "Standard_GRS");
    assert_string_equal(a.location, "eastus2(stage)");
    assert_non_null(strstr(a.id, "/storageAccounts/sto8596"));
    assert_null(a.large_file_shares_state); /* not sent: left to the caller */
    azure_storage_account_release(&a);

    assert_int_equal(azure_decode_storage_account(account_premium, strlen(account_premium), &a), 0);
    assert_string_equal(a.kind, "FileStorage");
    assert_string_equal(a.sku_name, "Premium_LRS");
    assert_string_equal(a.large_file_shares_state, "Enabled");

    /* The values read are the spec's own enum values. */
    cJSON *doc = load_spec(STO_DIR "/storage.json");
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(doc, "definitions");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(defs, "StorageAccount"), "properties");
    assert_true(in_enum(cJSON_GetObjectItemCaseSensitive(sa, "kind"), a.kind));
    assert_true(in_enum(cJSON_GetObjectItemCaseSensitive(sa, "kind"), "StorageV2"));
    const cJSON *sap = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(defs, "StorageAccountProperties"), "properties");
    assert_true(in_enum(cJSON_GetObjectItemCaseSensitive(sap, "largeFileSharesState"),
                        a.large_file_shares_state));
    assert_true(in_enum(cJSON_GetObjectItemCaseSensitive(sap, "largeFileSharesState"), "Disabled"));
    cJSON_Delete(doc);
    cJSON *common = load_spec(STO_DIR "/common.json");
    const cJSON *sku = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(common, "definitions"), "SkuName");
    assert_true(in_enum(sku, a.sku_name));
    assert_true(in_enum(sku, "Standard_LRS"));
    cJSON_Delete(common);
    azure_storage_account_release(&a);
    azure_storage_account_release(NULL);

    /* Wrong types read as absent; what is not an object is refused. */
    const char *odd =
        "{\"kind\":3,\"sku\":\"Premium_LRS\",\"properties\":{\"largeFileSharesState\":true}}";
    assert_int_equal(azure_decode_storage_account(odd, strlen(odd), &a), 0);
    assert_null(a.kind);
    assert_null(a.sku_name);
    assert_null(a.large_file_shares_state);
    azure_storage_account_release(&a);
    assert_int_equal(azure_decode_storage_account("[]", 2, &a), D8_EPARSE);
    assert_null(a.kind);
    assert_int_equal(azure_decode_storage_account("", 0, &a), D8_EPARSE);
}

/* ------------------------------------------------------------ DNS label scope */

static const int ports[] = {8080};

static void test_group_body_dns_label_scope(void **state)
{
    (void)state;
    cJSON *doc = load_spec(ACI_DIR "/containerInstance.json");
    const cJSON *ipdef = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "definitions"), "IpAddress");
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ipdef, "properties"), "autoGeneratedDomainNameLabelScope");
    assert_non_null(scope);

    azure_group_spec_t spec = {.name = "dev8-ckx1",
                               .image = "img",
                               .cpu = 1,
                               .memory_gb = 1,
                               .ports = ports,
                               .nports = 1,
                               .dns_label = "dev8-ckx1-3f9a2c"};
    /* Every value of the spec's enum is sent as spelled there. */
    const cJSON *v;
    int n = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(scope, "enum"))
    {
        spec.dns_label_scope = v->valuestring;
        d8_buf_t b;
        d8_buf_init(&b);
        assert_int_equal(azure_group_body(&spec, "eastus", NULL, NULL, &b), 0);
        cJSON *body = cJSON_ParseWithLength(b.data, b.len);
        const cJSON *ip = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(body, "properties"), "ipAddress");
        const cJSON *sent =
            cJSON_GetObjectItemCaseSensitive(ip, "autoGeneratedDomainNameLabelScope");
        assert_true(cJSON_IsString(sent));
        assert_string_equal(sent->valuestring, v->valuestring);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(ip, "dnsNameLabel")->valuestring,
                            "dev8-ckx1-3f9a2c");
        cJSON_Delete(body);
        d8_buf_release(&b);
        n++;
    }
    assert_int_equal(n, 5);
    assert_true(in_enum(scope, "TenantReuse"));
    cJSON_Delete(doc);

    /* Unset: not sent (ACI's default applies), the body as before. */
    const char *unset[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        spec.dns_label_scope = unset[i];
        d8_buf_t b;
        d8_buf_init(&b);
        assert_int_equal(azure_group_body(&spec, "eastus", NULL, NULL, &b), 0);
        assert_null(strstr(b.data, "autoGeneratedDomainNameLabelScope"));
        d8_buf_release(&b);
    }
    /* Another spelling than the spec's is refused, not sent. */
    const char *bad[] = {"tenantReuse", "NoReuse", "TenantReuse ", "Global"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        spec.dns_label_scope = bad[i];
        d8_buf_t b;
        d8_buf_init(&b);
        assert_int_equal(azure_group_body(&spec, "eastus", NULL, NULL, &b), D8_EINVAL);
        d8_buf_release(&b);
    }

    /* The fqdn ACI answers reads back as before. */
    const char *answer = "{\"name\":\"dev8-ckx1\",\"properties\":{\"provisioningState\":"
                         "\"Succeeded\",\"ipAddress\":{\"type\":\"Public\",\"ip\":\"20.1.2.3\","
                         "\"dnsNameLabel\":\"dev8-ckx1-3f9a2c\","
                         "\"autoGeneratedDomainNameLabelScope\":\"TenantReuse\",\"fqdn\":"
                         "\"dev8-ckx1-3f9a2c.h7c3fde0bbh4c9f2.eastus.azurecontainer.io\"}}}";
    azure_group_t g;
    assert_int_equal(azure_decode_group(answer, strlen(answer), &g), 0);
    assert_string_equal(g.fqdn, "dev8-ckx1-3f9a2c.h7c3fde0bbh4c9f2.eastus.azurecontainer.io");
    assert_string_equal(g.ip, "20.1.2.3");
    azure_group_release(&g);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_ratelimit_headers),
        cmocka_unit_test(test_throttle_origin),
        cmocka_unit_test(test_decode_storage_account),
        cmocka_unit_test(test_group_body_dns_label_scope),
    };
    return cmocka_run_group_tests_name("azure_arm", tests, NULL, NULL);
}
