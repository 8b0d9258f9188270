/* Unit tests of pkg/agent's wiring: the configuration turned into the
 * Azure client's options (accepted by azure_client_new as they are), the
 * region scopes, and the webhook (disabled without a URL, refused without
 * a secret). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/agent_int.h"
#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB "11111111-2222-3333-4444-555555555555"
#define SUB2 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"

static config_t *load(const char *yaml)
{
    char err[512] = "";
    config_t *cfg = NULL;
    unsetenv("AZURE_SUBSCRIPTION_ID");
    if (config_load_string("t.yaml", yaml, strlen(yaml), &cfg, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
    return cfg;
}

static const char minimal[] = "azure:\n"
                              "  subscriptionId: \"" SUB "\"\n"
                              "  regions:\n"
                              "    - {name: eastus, resourceGroup: rg-a, storageAccount: dev8a}\n"
                              "    - {name: westus, resourceGroup: rg-b, storageAccount: dev8b,\n"
                              "       subscriptionId: \"" SUB2 "\"}\n";

/* The defaults of the configuration are complete client options. */
static void test_azure_opts_defaults(void **state)
{
    (void)state;
    config_t *cfg = load(minimal);
    azure_client_opts_t o;
    agent__azure_opts(&o, cfg);
    assert_string_equal(o.arm_endpoint, "https://management.azure.com");
    assert_string_equal(o.authority_host, "https://login.microsoftonline.com");
    assert_string_equal(o.imds_endpoint, "http://169.254.169.254");
    assert_string_equal(o.aci_api_version, "2025-09-01");
    assert_string_equal(o.storage_api_version, "2025-01-01");
    assert_int_equal(o.auth, AZURE_AUTH_AUTO);
    assert_int_equal(o.max_inflight, 32);
    assert_true(o.buckets[AZURE_BUCKET_READ].burst == 250);
    assert_true(o.buckets[AZURE_BUCKET_READ].per_second == 25);
    assert_true(o.buckets[AZURE_BUCKET_WRITE].burst == 200);
    assert_true(o.buckets[AZURE_BUCKET_WRITE].per_second == 10);
    assert_true(o.buckets[AZURE_BUCKET_DELETE].burst == 200);
    assert_true(o.buckets[AZURE_BUCKET_DELETE].per_second == 10);
    assert_true(o.buckets[AZURE_BUCKET_ACI_CREATE].burst == 100);
    assert_true(o.buckets[AZURE_BUCKET_ACI_CREATE].per_second == 100.0 / 300.0);
    assert_true(o.buckets[AZURE_BUCKET_ACI_DELETE_HOURLY].burst == 300);
    assert_true(o.buckets[AZURE_BUCKET_ACI_DELETE_HOURLY].per_second == 300.0 / 3600.0);
    /* The client's own tuning is left to the client. */
    assert_int_equal(o.connect_timeout_ms, 0);
    assert_int_equal(o.max_attempts, 0);
    assert_null(o.client_secret);

    /* azure_client_new takes them as they are (managed identity: no
     * credential input needed, no I/O before the first call). */
    o.auth = AZURE_AUTH_MANAGED_IDENTITY;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256] = "";
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    azure_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* A missing required option is refused, by name. */
    uv_loop_init(&loop);
    azure_client_opts_t bad = o;
    bad.aci_api_version = NULL;
    assert_int_equal(azure_client_new(&loop, &bad, &c, err, sizeof(err)), D8_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "aci_api_version"));
    bad = o;
    bad.buckets[AZURE_BUCKET_ACI_CREATE_HOURLY].per_second = 0;
    assert_int_equal(azure_client_new(&loop, &bad, &c, err, sizeof(err)), D8_EINVAL);
    assert_non_null(strstr(err, "aci_create_hourly"));
    bad = o;
    bad.max_inflight = 0;
    assert_int_equal(azure_client_new(&loop, &bad, &c, err, sizeof(err)), D8_EINVAL);
    assert_non_null(strstr(err, "max_inflight"));
    assert_int_equal(uv_loop_close(&loop), 0);
    config_free(cfg);
}

static void test_azure_opts_configured(void **state)
{
    (void)state;
    config_t *cfg = load("azure:\n"
                         "  auth: managedIdentity\n"
                         "  subscriptionId: \"" SUB "\"\n"
                         "  armEndpoint: https://management.usgovcloudapi.net/\n"
                         "  authorityHost: https://login.microsoftonline.us\n"
                         "  aciApiVersion: 2024-05-01-preview\n"
                         "  maxInflight: 7\n"
                         "  rateLimits:\n"
                         "    readBurst: 10\n"
                         "    readsPerSecond: 2\n"
                         "    aciCreatesBurst: 30\n"
                         "    aciCreatesPerHour: 90\n"
                         "  regions:\n"
                         "    - {name: eastus, resourceGroup: rg-a, storageAccount: dev8a}\n");
    azure_client_opts_t o;
    agent__azure_opts(&o, cfg);
    assert_string_equal(o.arm_endpoint, "https://management.usgovcloudapi.net");
    assert_string_equal(o.authority_host, "https://login.microsoftonline.us");
    assert_string_equal(o.aci_api_version, "2024-05-01-preview");
    assert_int_equal(o.auth, AZURE_AUTH_MANAGED_IDENTITY);
    assert_int_equal(o.max_inflight, 7);
    assert_true(o.buckets[AZURE_BUCKET_READ].burst == 10);
    assert_true(o.buckets[AZURE_BUCKET_READ].per_second == 2);
    /* The burst refills over ACI's 5 minutes, the hourly figure per hour. */
    assert_true(o.buckets[AZURE_BUCKET_ACI_CREATE].burst == 30);
    assert_true(o.buckets[AZURE_BUCKET_ACI_CREATE].per_second == 30.0 / 300.0);
    assert_true(o.buckets[AZURE_BUCKET_ACI_CREATE_HOURLY].burst == 90);
    assert_true(o.buckets[AZURE_BUCKET_ACI_CREATE_HOURLY].per_second == 90.0 / 3600.0);
    config_free(cfg);
}

static void test_scopes(void **state)
{
    (void)state;
    config_t *cfg = load(minimal);
    azure_scope_t *s = agent__scopes_new(cfg);
    assert_string_equal(s[0].subscription_id, SUB);
    assert_string_equal(s[0].resource_group, "rg-a");
    assert_string_equal(s[0].storage_account, "dev8a");
    assert_string_equal(s[0].region, "eastus");
    /* A region's own subscription wins. */
    assert_string_equal(s[1].subscription_id, SUB2);
    assert_string_equal(s[1].resource_group, "rg-b");
    assert_string_equal(s[1].region, "westus");
    free(s);
    config_free(cfg);
}

static void test_webhook_needs_a_secret(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *st = store_new(8);
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char url[] = "http://127.0.0.1:9/hook", env[] = "D8_TEST_WEBHOOK_SECRET", empty[] = "";
    char err[256] = "";
    webhook_t *wh = (webhook_t *)&cfg; /* must be reset to NULL */

    /* No URL: disabled, whatever the secret. */
    cfg.webhook_url = empty;
    cfg.webhook_secret_env = env;
    assert_int_equal(agent__webhook_new(&loop, NULL, &cfg, st, NULL, &wh, err, sizeof(err)), 0);
    assert_null(wh);

    cfg.webhook_url = url;
    unsetenv(env);
    assert_int_equal(agent__webhook_new(&loop, NULL, &cfg, st, NULL, &wh, err, sizeof(err)),
                     D8_EINVAL);
    assert_null(wh);
    assert_non_null(strstr(err, env));
    setenv(env, "", 1);
    assert_int_equal(agent__webhook_new(&loop, NULL, &cfg, st, NULL, &wh, err, sizeof(err)),
                     D8_EINVAL);

    setenv(env, "the-secret-value", 1);
    assert_int_equal(agent__webhook_new(&loop, NULL, &cfg, st, NULL, &wh, err, sizeof(err)), 0);
    assert_non_null(wh);
    webhook_free(wh);
    unsetenv(env);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_free(st);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_azure_opts_defaults),
        cmocka_unit_test(test_azure_opts_configured),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_webhook_needs_a_secret),
    };
    return cmocka_run_group_tests_name("agent", tests, NULL, NULL);
}
