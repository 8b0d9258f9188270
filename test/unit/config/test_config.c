/*
 * Unit tests of pkg/config: defaults, the full DESIGN 5b file, every kind
 * of error with its exact file:line:column, the environment overrides and
 * the checked-in hack/local-config.yaml. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUB "11111111-2222-3333-4444-555555555555"
#define SUB2 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
/* The smallest valid azure section: one region and a subscription. */
#define MIN_AZURE                                                                                  \
    "azure:\n"                                                                                     \
    "  subscriptionId: \"" SUB "\"\n"                                                              \
    "  regions:\n"                                                                                 \
    "    - {name: eastus, resourceGroup: rg-a, storageAccount: dev8a}\n"

static char g_err[1024];

/* Every test starts from an environment without the variables config reads. */
static int clear_env(void **state)
{
    (void)state;
    unsetenv("AGENT_API_KEYS");
    unsetenv("AZURE_SUBSCRIPTION_ID");
    return 0;
}

static int load(const char *yaml, config_t **out)
{
    g_err[0] = '\0';
    return config_load_string("t.yaml", yaml, strlen(yaml), out, g_err, sizeof g_err);
}

/* Loads yaml that must be valid; prints the error before failing. */
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

/* `section` followed by MIN_AZURE must load. */
static config_t *load_with(const char *section)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", section, MIN_AZURE);
    return load_ok(yaml);
}

/* yaml must fail with exactly `want`, and hand out no config. */
static void expect_err(const char *yaml, const char *want)
{
    config_t *cfg = (config_t *)(uintptr_t)1;
    int rc = load(yaml, &cfg);
    assert_true(rc < 0);
    assert_null(cfg);
    assert_string_equal(g_err, want);
}

/* yaml must fail with an error containing `part`. */
static void expect_err_has(const char *yaml, const char *part)
{
    config_t *cfg = (config_t *)(uintptr_t)1;
    int rc = load(yaml, &cfg);
    assert_true(rc < 0);
    assert_null(cfg);
    if (!strstr(g_err, part))
        print_error("error \"%s\" lacks \"%s\"\n", g_err, part);
    assert_non_null(strstr(g_err, part));
}

/* `section` + MIN_AZURE must fail with exactly `want`. */
static void expect_err_with(const char *section, const char *want)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml, "%s%s", section, MIN_AZURE);
    expect_err(yaml, want);
}

static void test_defaults(void **state)
{
    (void)state;
    config_t *c = load_ok(MIN_AZURE);

    assert_string_equal(c->controller_name, "dev8");
    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_int_equal(c->listen_port, 8080);
    assert_int_equal(c->resync_seconds, 60);
    assert_int_equal(c->status_refresh_seconds, 300);
    assert_int_equal(c->shutdown_grace_seconds, 20);
    assert_int_equal(c->max_concurrent_reconciles, 16);
    assert_string_equal(c->state_file, "");
    assert_string_equal(c->keys_file, "");
    assert_int_equal(c->max_body_bytes, 1048576);
    assert_int_equal(c->max_sync_body_bytes, 67108864);
    assert_int_equal(c->max_connections, 1024);
    assert_int_equal(c->watch_ring_size, 4096);
    assert_int_equal(c->napi_keys, 0);
    assert_null(c->api_keys);
    assert_string_equal(c->azure_auth, "auto");
    assert_string_equal(c->subscription_id, SUB);
    assert_string_equal(c->arm_endpoint, "https://management.azure.com");
    assert_string_equal(c->authority_host, "https://login.microsoftonline.com");
    assert_string_equal(c->imds_endpoint, "http://169.254.169.254");
    assert_string_equal(c->aci_api_version, "2025-09-01");
    assert_string_equal(c->storage_api_version, "2025-01-01");
    assert_int_equal(c->max_inflight, 32);
    assert_int_equal(c->nregions, 1);
    assert_string_equal(c->regions[0].name, "eastus");
    assert_string_equal(c->regions[0].resource_group, "rg-a");
    assert_string_equal(c->regions[0].storage_account, "dev8a");
    assert_string_equal(c->regions[0].subscription_id, SUB);
    assert_int_equal(c->nimages, 1);
    assert_string_equal(config_image(c, "node"), "vaibhavsing/dev8-workspace:latest");
    assert_int_equal(c->nports, 1);
    assert_int_equal(c->ports[0], 8080);
    assert_string_equal(c->mount_path, "/home/dev8");
    assert_int_equal(c->max_storage_gb, 1024);
    assert_int_equal(c->reaper_enabled, 1);
    assert_int_equal(c->reaper_dry_run, 0);
    assert_int_equal(c->reaper_group_grace_seconds, 900);
    assert_int_equal(c->reaper_share_grace_seconds, 259200);
    assert_int_equal(c->reaper_max_deletes_per_cycle, 20);
    assert_true(c->reaper_max_orphan_fraction == 0.5);
    assert_string_equal(c->webhook_url, "");
    assert_string_equal(c->webhook_secret_env, "WEBHOOK_SECRET");
    assert_string_equal(c->log_level, "info");
    config_free(c);
}

/* The example of DESIGN.md 5b with real values and every default changed. */
static const char full_yaml[] =
    "# dev8-agent configuration\n"
    "controller:\n"
    "  name: dev8-prod              # goes into the dev8-controller tag\n"
    "  listen: 0.0.0.0:9443\n"
    "  resyncSeconds: 30\n"
    "  statusRefreshSeconds: 120\n"
    "  shutdownGraceSeconds: 25\n"
    "  maxConcurrentReconciles: 8\n"
    "  stateFile: /var/lib/dev8/state.json\n"
    "api:\n"
    "  keysFile: \"\"                 # else env AGENT_API_KEYS\n"
    "  maxBodyBytes: 2097152\n"
    "  maxSyncBodyBytes: 134217728\n"
    "  maxConnections: 2048\n"
    "  watchRingSize: 8192\n"
    "azure:\n"
    "  auth: workloadIdentity\n"
    "  subscriptionId: \"" SUB "\"\n"
    "  armEndpoint: https://management.usgovcloudapi.net/\n"
    "  authorityHost: https://login.microsoftonline.us\n"
    "  imdsEndpoint: http://169.254.169.254/\n"
    "  aciApiVersion: \"2025-09-01\"\n"
    "  storageApiVersion: 2024-05-01-preview\n"
    "  maxInflight: 64\n"
    "  regions:\n"
    "    - name: eastus             # the cloudRegion value in specs\n"
    "      resourceGroup: rg-dev8-eastus\n"
    "      storageAccount: dev8eastus\n"
    "    - name: westeurope\n"
    "      resourceGroup: rg_dev8.(weu)\n"
    "      storageAccount: dev8westeurope\n"
    "      subscriptionId: \"" SUB2 "\"\n"
    "images: { node: \"vaibhavsing/dev8-workspace:latest\", python: "
    "\"vaibhavsing/dev8-python:3.12\" }\n"
    "workspace: { ports: [8080, 3000], mountPath: /home/dev8/ }\n"
    "limits: { maxStorageGB: 2048 }\n"
    "reaper: { enabled: false, dryRun: true, containerGroupGraceSeconds: 600,\n"
    "          fileShareGraceSeconds: 86400, maxDeletesPerCycle: 5, maxOrphanFraction: 0.25 }\n"
    "webhook: { url: \"https://backend.example.com/hooks/dev8\", secretEnv: DEV8_HOOK_SECRET }\n"
    "log: { level: warn }\n";

static void test_full_file(void **state)
{
    (void)state;
    config_t *c = load_ok(full_yaml);

    assert_string_equal(c->controller_name, "dev8-prod");
    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_int_equal(c->listen_port, 9443);
    assert_int_equal(c->resync_seconds, 30);
    assert_int_equal(c->status_refresh_seconds, 120);
    assert_int_equal(c->shutdown_grace_seconds, 25);
    assert_int_equal(c->max_concurrent_reconciles, 8);
    assert_string_equal(c->state_file, "/var/lib/dev8/state.json");
    assert_string_equal(c->keys_file, "");
    assert_int_equal(c->max_body_bytes, 2097152);
    assert_int_equal(c->max_sync_body_bytes, 134217728);
    assert_int_equal(c->max_connections, 2048);
    assert_int_equal(c->watch_ring_size, 8192);
    assert_string_equal(c->azure_auth, "workloadIdentity");
    assert_string_equal(c->subscription_id, SUB);
    /* Endpoints lose their trailing '/', so paths can be appended. */
    assert_string_equal(c->arm_endpoint, "https://management.usgovcloudapi.net");
    assert_string_equal(c->authority_host, "https://login.microsoftonline.us");
    assert_string_equal(c->imds_endpoint, "http://169.254.169.254");
    assert_string_equal(c->aci_api_version, "2025-09-01");
    assert_string_equal(c->storage_api_version, "2024-05-01-preview");
    assert_int_equal(c->max_inflight, 64);
    assert_int_equal(c->nregions, 2);
    assert_string_equal(c->regions[0].name, "eastus");
    assert_string_equal(c->regions[0].resource_group, "rg-dev8-eastus");
    assert_string_equal(c->regions[0].storage_account, "dev8eastus");
    assert_string_equal(c->regions[0].subscription_id, SUB);
    assert_string_equal(c->regions[1].name, "westeurope");
    assert_string_equal(c->regions[1].resource_group, "rg_dev8.(weu)");
    assert_string_equal(c->regions[1].storage_account, "dev8westeurope");
    assert_string_equal(c->regions[1].subscription_id, SUB2);
    assert_int_equal(c->nimages, 2);
    assert_string_equal(config_image(c, "node"), "vaibhavsing/dev8-workspace:latest");
    assert_string_equal(config_image(c, "python"), "vaibhavsing/dev8-python:3.12");
    assert_int_equal(c->nports, 2);
    assert_int_equal(c->ports[0], 8080);
    assert_int_equal(c->ports[1], 3000);
    assert_string_equal(c->mount_path, "/home/dev8");
    assert_int_equal(c->max_storage_gb, 2048);
    assert_int_equal(c->reaper_enabled, 0);
    assert_int_equal(c->reaper_dry_run, 1);
    assert_int_equal(c->reaper_group_grace_seconds, 600);
    assert_int_equal(c->reaper_share_grace_seconds, 86400);
    assert_int_equal(c->reaper_max_deletes_per_cycle, 5);
    assert_true(c->reaper_max_orphan_fraction == 0.25);
    assert_string_equal(c->webhook_url, "https://backend.example.com/hooks/dev8");
    assert_string_equal(c->webhook_secret_env, "DEV8_HOOK_SECRET");
    assert_string_equal(c->log_level, "warn");
    config_free(c);
}

static void test_empty_and_null(void **state)
{
    (void)state;
    config_t *c = (config_t *)(uintptr_t)1;

    /* Empty means all defaults, and the defaults name no region. */
    expect_err("", "t.yaml:1:1: azure.regions: at least one region is required");
    expect_err("# only a comment\n", "t.yaml:1:1: azure.regions: at least one region is required");
    expect_err("---\n", "t.yaml:1:1: azure.regions: at least one region is required");
    expect_err("controller: {name: x}\n",
               "t.yaml:1:1: azure.regions: at least one region is required");
    assert_int_equal(config_load(NULL, &c, g_err, sizeof g_err), D8_EINVAL);
    assert_null(c);
    assert_string_equal(g_err, "<defaults>:1:1: azure.regions: at least one region is required");

    /* A key without a value (YAML null) keeps its default. */
    c = load_with("controller:\n  name:\n  resyncSeconds: ~\nwebhook:\nlog: {level: null}\n");
    assert_string_equal(c->controller_name, "dev8");
    assert_int_equal(c->resync_seconds, 60);
    assert_string_equal(c->log_level, "info");
    config_free(c);
    /* A quoted empty string is a value, not null. */
    expect_err_with("controller:\n  name: \"\"\n",
                    "t.yaml:2:9: controller.name: must be 1 to 32 lowercase letters, digits or "
                    "'-', starting and ending with a letter or digit, got \"\"");
}

static void test_type_errors(void **state)
{
    (void)state;
    expect_err_with("controller:\n  resyncSeconds: abc\n",
                    "t.yaml:2:18: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got \"abc\"");
    expect_err_with("controller:\n  resyncSeconds: 1.5\n",
                    "t.yaml:2:18: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got \"1.5\"");
    expect_err_with("controller:\n  resyncSeconds: \"60\"\n",
                    "t.yaml:2:18: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got the quoted string \"60\" (write numbers and booleans without "
                    "quotes)");
    expect_err_with("controller:\n  resyncSeconds: [60]\n",
                    "t.yaml:2:18: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got a sequence");
    expect_err_with("api:\n  maxBodyBytes: 0x100000\n",
                    "t.yaml:2:17: api.maxBodyBytes: must be an integer between 1024 and "
                    "268435456, got \"0x100000\"");
    expect_err_with("reaper:\n  enabled: yes\n",
                    "t.yaml:2:12: reaper.enabled: must be true or false, got \"yes\"");
    expect_err_with("reaper:\n  dryRun: True\n",
                    "t.yaml:2:11: reaper.dryRun: must be true or false, got \"True\"");
    expect_err_with("reaper:\n  maxOrphanFraction: half\n",
                    "t.yaml:2:22: reaper.maxOrphanFraction: must be a number greater than 0 and "
                    "at most 1, got \"half\"");
    expect_err_with("reaper:\n  maxOrphanFraction: .nan\n",
                    "t.yaml:2:22: reaper.maxOrphanFraction: must be a number greater than 0 and "
                    "at most 1, got \".nan\"");
    expect_err_with("controller:\n  name: {a: 1}\n",
                    "t.yaml:2:9: controller.name: must be a string, got a mapping");
    expect_err_with("controller:\n  name: Dev8\n",
                    "t.yaml:2:9: controller.name: must be 1 to 32 lowercase letters, digits or "
                    "'-', starting and ending with a letter or digit, got \"Dev8\"");
    expect_err_with("controller:\n  name: dev8-\n",
                    "t.yaml:2:9: controller.name: must be 1 to 32 lowercase letters, digits or "
                    "'-', starting and ending with a letter or digit, got \"dev8-\"");
    expect_err_has("controller: 5\n" MIN_AZURE,
                   "t.yaml:1:13: controller: must be a mapping with keys name, listen, ");
    expect_err_with("log:\n  level: verbose\n",
                    "t.yaml:2:10: log.level: must be one of debug, info, warn, error, got "
                    "\"verbose\"");
    expect_err_with("workspace:\n  mountPath: home/dev8\n",
                    "t.yaml:2:14: workspace.mountPath: must be an absolute path other than / "
                    "without '.', '..' or empty segments, ':', '\\' or spaces, at most 255 "
                    "characters, got \"home/dev8\"");
    expect_err_has("workspace:\n  mountPath: /home/../etc\n" MIN_AZURE,
                   "t.yaml:2:14: workspace.mountPath: must be an absolute path");
    expect_err_has("workspace:\n  mountPath: /\n" MIN_AZURE,
                   "t.yaml:2:14: workspace.mountPath: must be an absolute path");
    expect_err_with("webhook:\n  url: backend:3000\n",
                    "t.yaml:2:8: webhook.url: must be empty or start with http:// or https://, "
                    "got \"backend:3000\"");
    expect_err_with("webhook:\n  secretEnv: 1SECRET\n",
                    "t.yaml:2:14: webhook.secretEnv: must be an environment variable name "
                    "([A-Za-z_][A-Za-z0-9_]*), got \"1SECRET\"");
    expect_err("azure:\n  auth: password\n",
               "t.yaml:2:9: azure.auth: must be one of auto, clientSecret, workloadIdentity, "
               "managedIdentity, got \"password\"");
    expect_err("azure:\n  armEndpoint: ftp://example.com\n",
               "t.yaml:2:16: azure.armEndpoint: must start with http:// or https://, got "
               "\"ftp://example.com\"");
    expect_err("azure:\n  authorityHost: https:///\n",
               "t.yaml:2:18: azure.authorityHost: must name a host after http:// or https://, "
               "got \"https:///\"");
    expect_err("azure:\n  aciApiVersion: 2025-9-1\n",
               "t.yaml:2:18: azure.aciApiVersion: must be an ARM api-version such as 2025-09-01 "
               "or 2024-05-01-preview, got \"2025-9-1\"");
    expect_err("azure:\n  subscriptionId: \"...\"\n",
               "t.yaml:2:19: azure.subscriptionId: must be empty or a subscription id (a GUID "
               "such as 00000000-0000-0000-0000-000000000000), got \"...\"");
    expect_err_with("controller:\n  stateFile: \"a\\nb\"\n",
                    "t.yaml:2:14: controller.stateFile: must be a path without control "
                    "characters, got \"a\\x0ab\"");
    expect_err_with("controller:\n  stateFile: \"a\\0b\"\n",
                    "t.yaml:2:14: controller.stateFile: must not contain NUL characters");
    expect_err_has("[1, 2]\n", "t.yaml:1:1: must be a mapping with keys controller, api, azure");
    expect_err_with("controller:\n  resyncSeconds: !!int 60\n",
                    "t.yaml:2:18: controller.resyncSeconds: YAML tags are not supported, got tag "
                    "\"tag:yaml.org,2002:int\"");
}

/* A section + MIN_AZURE loads, and returns the config for a field check. */
static void expect_int_ok(const char *section, size_t off, int want)
{
    config_t *c = load_with(section);
    assert_int_equal(*(int *)(void *)((char *)c + off), want);
    config_free(c);
}

static void test_ranges(void **state)
{
    (void)state;
    config_t *c;

    expect_int_ok("controller: {resyncSeconds: 1}\n", offsetof(config_t, resync_seconds), 1);
    expect_int_ok("controller: {resyncSeconds: 86400}\n", offsetof(config_t, resync_seconds),
                  86400);
    expect_err_with("controller: {resyncSeconds: 0}\n",
                    "t.yaml:1:29: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got \"0\"");
    expect_err_with("controller: {resyncSeconds: 86401}\n",
                    "t.yaml:1:29: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got \"86401\"");
    expect_err_with("controller: {resyncSeconds: -60}\n",
                    "t.yaml:1:29: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got \"-60\"");
    expect_err_with("controller: {resyncSeconds: 99999999999999999999999}\n",
                    "t.yaml:1:29: controller.resyncSeconds: must be an integer between 1 and "
                    "86400, got \"99999999999999999999999\"");
    expect_int_ok("controller: {shutdownGraceSeconds: 0}\n",
                  offsetof(config_t, shutdown_grace_seconds), 0);
    expect_err_has("controller: {maxConcurrentReconciles: 0}\n" MIN_AZURE,
                   "controller.maxConcurrentReconciles: must be an integer between 1 and 1024");
    expect_int_ok("limits: {maxStorageGB: 1}\n", offsetof(config_t, max_storage_gb), 1);
    expect_int_ok("limits: {maxStorageGB: 102400}\n", offsetof(config_t, max_storage_gb), 102400);
    expect_err_with("limits: {maxStorageGB: 0}\n",
                    "t.yaml:1:24: limits.maxStorageGB: must be an integer between 1 and 102400, "
                    "got \"0\"");
    expect_err_with("limits: {maxStorageGB: 102401}\n",
                    "t.yaml:1:24: limits.maxStorageGB: must be an integer between 1 and 102400, "
                    "got \"102401\"");
    expect_int_ok("reaper: {fileShareGraceSeconds: 1}\n",
                  offsetof(config_t, reaper_share_grace_seconds), 1);
    expect_err_has("reaper: {fileShareGraceSeconds: 0}\n" MIN_AZURE,
                   "reaper.fileShareGraceSeconds: must be an integer between 1 and 31536000");
    expect_int_ok("reaper: {containerGroupGraceSeconds: 0}\n",
                  offsetof(config_t, reaper_group_grace_seconds), 0);
    expect_int_ok("api: {watchRingSize: 16}\n", offsetof(config_t, watch_ring_size), 16);
    expect_err_has("api: {watchRingSize: 15}\n" MIN_AZURE,
                   "api.watchRingSize: must be an integer between 16 and 1048576");

    c = load_with("api: {maxBodyBytes: 1024, maxSyncBodyBytes: 1073741824, "
                  "maxConnections: 65536}\n");
    assert_int_equal(c->max_body_bytes, 1024);
    assert_int_equal(c->max_sync_body_bytes, 1073741824);
    assert_int_equal(c->max_connections, 65536);
    config_free(c);
    expect_err_has("api: {maxSyncBodyBytes: 1073741825}\n" MIN_AZURE,
                   "t.yaml:1:25: api.maxSyncBodyBytes: must be an integer between 1024 and "
                   "1073741824");
    expect_err_has("api: {maxConnections: 0}\n" MIN_AZURE,
                   "api.maxConnections: must be an integer between 1 and 65536");
    expect_int_ok("api: {maxSyncItems: 1}\n", offsetof(config_t, max_sync_items), 1);
    expect_err_has("api: {maxSyncItems: 0}\n" MIN_AZURE,
                   "api.maxSyncItems: must be an integer between 1 and 10000000");
    expect_int_ok("controller: {stateCommitMs: 0}\n", offsetof(config_t, state_commit_ms), 0);
    expect_err_has("controller: {stateCommitMs: 1001}\n" MIN_AZURE,
                   "controller.stateCommitMs: must be an integer between 0 and 1000");
    expect_int_ok("controller: {usagePersistSeconds: 1}\n",
                  offsetof(config_t, usage_persist_seconds), 1);
    expect_int_ok("controller: {usagePersistSeconds: 3600}\n",
                  offsetof(config_t, usage_persist_seconds), 3600);
    expect_err_has("controller: {usagePersistSeconds: 0}\n" MIN_AZURE,
                   "controller.usagePersistSeconds: must be an integer between 1 and 3600");
    expect_err_has("controller: {usagePersistSeconds: 3601}\n" MIN_AZURE,
                   "controller.usagePersistSeconds: must be an integer between 1 and 3600");
    c = load_with("");
    assert_int_equal(c->max_sync_items, 50000);
    assert_int_equal(c->state_commit_ms, 2);
    assert_int_equal(c->usage_persist_seconds, 60);
    config_free(c);

    c = load_with("reaper: {maxOrphanFraction: 1}\n");
    assert_true(c->reaper_max_orphan_fraction == 1.0);
    config_free(c);
    c = load_with("reaper: {maxOrphanFraction: 1e-3}\n");
    assert_true(c->reaper_max_orphan_fraction == 0.001);
    config_free(c);
    expect_err_with("reaper: {maxOrphanFraction: 0}\n",
                    "t.yaml:1:29: reaper.maxOrphanFraction: must be a number greater than 0 and "
                    "at most 1, got \"0\"");
    expect_err_with("reaper: {maxOrphanFraction: 1.0001}\n",
                    "t.yaml:1:29: reaper.maxOrphanFraction: must be a number greater than 0 and "
                    "at most 1, got \"1.0001\"");
    expect_err_has("reaper: {maxOrphanFraction: -0.5}\n" MIN_AZURE, "got \"-0.5\"");

    expect_err("azure: {maxInflight: 0}\n",
               "t.yaml:1:22: azure.maxInflight: must be an integer between 1 and 1024, got \"0\"");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_err("controller:\n  nmae: x\n",
               "t.yaml:2:3: controller.nmae: unknown key (expected one of: name, listen, "
               "probeListen, resyncSeconds, statusRefreshSeconds, shutdownGraceSeconds, "
               "maxConcurrentReconciles, stateFile, stateCommitMs, autoStopWarningMinutes, "
               "autoStopMinuteSeconds, usagePersistSeconds)");
    expect_err("foo: 1\n", "t.yaml:1:1: foo: unknown key (expected one of: controller, api, "
                           "azure, images, registries, workspace, limits, reaper, webhook, log, "
                           "pricing, retention, activity)");
    expect_err("api:\n  keys: [abc, def]\n",
               "t.yaml:2:3: api.keys: unknown key; secrets come from the environment (or files "
               "such as api.keysFile), never from the config file");
    expect_err_has("azure:\n  clientSecret: hunter2\n",
                   "t.yaml:2:3: azure.clientSecret: unknown key; secrets come from the "
                   "environment");
    expect_err_has("webhook: {secret: s3cr3t}\n",
                   "t.yaml:1:11: webhook.secret: unknown key; secrets come from the environment");
    expect_err_has("azure:\n  regions:\n    - {name: eastus, password: x}\n",
                   "t.yaml:3:22: azure.regions[0].password: unknown key; secrets come");
    /* The secret's value is never echoed. */
    assert_null(strstr(g_err, "x}"));
    /* Odd key text is shown quoted and escaped. */
    expect_err_has("\"a b\\t\": 1\n", "t.yaml:1:1: \"a b\\x09\": unknown key");
    expect_err_has("? [a, b]\n: 1\n", "t.yaml:1:3: keys must be strings, got a sequence");
    /* Keys are case-sensitive. */
    expect_err_has("Controller: {}\n", "t.yaml:1:1: Controller: unknown key");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_err("controller:\n  name: a\n  name: b\n",
               "t.yaml:3:3: controller.name: duplicate key (first set at line 2)");
    expect_err("log: {level: info}\ncontroller: {}\nlog: {level: warn}\n",
               "t.yaml:3:1: log: duplicate key (first set at line 1)");
    expect_err("images:\n  node: a/b\n  py: c/d\n  node: e/f\n",
               "t.yaml:4:3: images.node: duplicate key (first set at line 2)");
    expect_err("azure:\n  regions:\n    - name: eastus\n      name: westus\n",
               "t.yaml:4:7: azure.regions[0].name: duplicate key (first set at line 3)");
}

static void test_aliases_rejected(void **state)
{
    (void)state;
    expect_err("controller:\n  resyncSeconds: &n 60\n  statusRefreshSeconds: *n\n",
               "t.yaml:3:3: controller.statusRefreshSeconds: aliases (*name) are not "
               "supported; repeat the value instead");
    expect_err("controller: &c {name: a}\napi: *c\n",
               "t.yaml:2:1: api: aliases (*name) are not supported; repeat the value instead");
    /* An alias of its own ancestor would make the walk loop forever. */
    expect_err("controller: &c {name: *c}\n",
               "t.yaml:1:17: controller.name: aliases (*name) are not supported; repeat the "
               "value instead");
    expect_err_has("workspace: {ports: [&p 8080, *p]}\n",
                   "workspace.ports[1]: aliases (*name) are not supported");

    /* The billion laughs: refused at once, without expanding anything. */
    char yaml[4096];
    size_t o = (size_t)snprintf(yaml, sizeof yaml, "images:\n  a: &a lol\n");
    o += (size_t)snprintf(yaml + o, sizeof yaml - o, "azure:\n  regions: &b [");
    for (int i = 0; i < 9; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "%s*a", i ? "," : "");
    o += (size_t)snprintf(yaml + o, sizeof yaml - o, "]\nworkspace:\n  ports: &c [");
    for (int i = 0; i < 9; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "%s*b", i ? "," : "");
    snprintf(yaml + o, sizeof yaml - o, "]\n");
    expect_err_has(yaml, "aliases (*name) are not supported");
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_err("controller:\n  name: a\n bad: [\n",
               "t.yaml:3:2: syntax error: did not find expected key (while parsing a block "
               "mapping at line 1, column 1)");
    expect_err("controller:\n\tname: a\n",
               "t.yaml:2:1: syntax error: found character that cannot start any token");
    expect_err("log: {level: info\n",
               "t.yaml:2:1: syntax error: did not find expected ',' or '}' (while parsing a "
               "flow mapping at line 1, column 6)");
    expect_err("log:\n  level: \"debug\n",
               "t.yaml:3:1: syntax error: found unexpected end of stream (while scanning a "
               "quoted scalar at line 2, column 10)");
    expect_err("log: *nowhere\n", "t.yaml:1:6: syntax error: found undefined alias");
    expect_err("log:\n  level: \"\xff\"\n",
               "t.yaml:2:11: syntax error: invalid leading UTF-8 octet (byte 0xff)");
    expect_err("log: {level: info}\n---\nlog: {level: warn}\n",
               "t.yaml:2:1: only one YAML document is allowed; remove the second '---' "
               "document");
    /* A syntax error in a later document is still a syntax error. */
    expect_err_has("log: {level: info}\n---\n[\n", "t.yaml:4:1: syntax error:");
}

static void test_regions(void **state)
{
    (void)state;
    config_t *c;

    expect_err("azure:\n  auth: auto\n",
               "t.yaml:1:1: azure.regions: at least one region is required");
    expect_err("azure:\n  regions: []\n",
               "t.yaml:2:12: azure.regions: at least one region is required");
    expect_err("azure:\n  regions:\n",
               "t.yaml:2:3: azure.regions: at least one region is required");
    expect_err_has("azure:\n  regions: eastus\n",
                   "t.yaml:2:12: azure.regions: must be a sequence of regions");
    expect_err_has("azure:\n  regions: [eastus]\n",
                   "t.yaml:2:13: azure.regions[0]: must be a mapping with name, resourceGroup, "
                   "storageAccount and optionally subscriptionId, got \"eastus\"");
    expect_err("azure:\n  regions:\n    - name: eastus\n      resourceGroup: rg\n",
               "t.yaml:3:7: azure.regions[0]: missing required key \"storageAccount\"");
    expect_err("azure:\n  regions:\n    - name: eastus\n      resourceGroup: rg\n"
               "      storageAccount:\n",
               "t.yaml:3:7: azure.regions[0]: missing required key \"storageAccount\"");
    expect_err("azure:\n  subscriptionId: \"" SUB "\"\n  regions:\n"
               "    - {name: eastus, resourceGroup: rg, storageAccount: dev8a}\n"
               "    - {name: eastus, resourceGroup: rg2, storageAccount: dev8b}\n",
               "t.yaml:5:14: azure.regions[1].name: duplicate region \"eastus\" (first at line "
               "4)");
    expect_err("azure:\n  regions:\n    - {name: eastus, resourceGroup: rg, storageAccount: "
               "Dev8-East}\n",
               "t.yaml:3:57: azure.regions[0].storageAccount: must be 3 to 24 lowercase "
               "letters and digits, got \"Dev8-East\"");
    expect_err_has("azure:\n  regions:\n    - {name: eastus, resourceGroup: rg, storageAccount: "
                   "ab}\n",
                   "azure.regions[0].storageAccount: must be 3 to 24 lowercase letters");
    expect_err_has("azure:\n  regions:\n    - {name: eastus, resourceGroup: rg, storageAccount: "
                   "abcdefghijklmnopqrstuvwxy}\n",
                   "azure.regions[0].storageAccount: must be 3 to 24 lowercase letters");
    expect_err_has("azure:\n  regions:\n    - {name: eastus, resourceGroup: \"rg.\", "
                   "storageAccount: abc}\n",
                   "t.yaml:3:37: azure.regions[0].resourceGroup: must be 1 to 90 letters");
    expect_err_has("azure:\n  regions:\n    - {name: eastus, resourceGroup: \"rg/x\", "
                   "storageAccount: abc}\n",
                   "azure.regions[0].resourceGroup: must be 1 to 90 letters");
    expect_err_has("azure:\n  regions:\n    - {name: East US, resourceGroup: rg, "
                   "storageAccount: abc}\n",
                   "t.yaml:3:14: azure.regions[0].name: must be an Azure region name");

    /* Lookups. */
    c = load_ok("azure:\n  subscriptionId: \"" SUB "\"\n  regions:\n"
                "    - {name: eastus, resourceGroup: rg, storageAccount: dev8a}\n"
                "    - {name: westus2, resourceGroup: rg2, storageAccount: dev8b}\n");
    assert_string_equal(config_region(c, "westus2")->storage_account, "dev8b");
    assert_string_equal(config_region(c, "eastus")->resource_group, "rg");
    assert_null(config_region(c, "westus"));
    assert_null(config_region(c, NULL));
    assert_null(config_region(NULL, "eastus"));
    assert_null(config_image(c, "python"));
    assert_null(config_image(NULL, "node"));
    config_free(c);
}

static void test_subscriptions(void **state)
{
    (void)state;
    config_t *c;
    const char *two = "azure:\n  regions:\n"
                      "    - {name: eastus, resourceGroup: rg, storageAccount: dev8a}\n"
                      "    - {name: westus, resourceGroup: rg, storageAccount: dev8b, "
                      "subscriptionId: \"" SUB2 "\"}\n";

    expect_err(two, "t.yaml:3:7: azure.regions[0]: region \"eastus\" has no subscription id; "
                    "set its subscriptionId, azure.subscriptionId or AZURE_SUBSCRIPTION_ID");

    /* The environment fills in for the file. */
    setenv("AZURE_SUBSCRIPTION_ID", SUB, 1);
    c = load_ok(two);
    assert_string_equal(c->subscription_id, SUB);
    assert_string_equal(c->regions[0].subscription_id, SUB);
    assert_string_equal(c->regions[1].subscription_id, SUB2);
    config_free(c);

    /* ...and overrides it. */
    setenv("AZURE_SUBSCRIPTION_ID", SUB2, 1);
    c = load_ok(MIN_AZURE);
    assert_string_equal(c->subscription_id, SUB2);
    assert_string_equal(c->regions[0].subscription_id, SUB2);
    config_free(c);

    setenv("AZURE_SUBSCRIPTION_ID", "not-a-guid", 1);
    expect_err(MIN_AZURE, "AZURE_SUBSCRIPTION_ID: must be a subscription id (a GUID such as "
                          "00000000-0000-0000-0000-000000000000), got \"not-a-guid\"");
    /* Empty counts as unset. */
    setenv("AZURE_SUBSCRIPTION_ID", "", 1);
    c = load_ok(MIN_AZURE);
    assert_string_equal(c->subscription_id, SUB);
    config_free(c);
}

static void test_api_keys_env(void **state)
{
    (void)state;
    config_t *c;

    setenv("AGENT_API_KEYS", " key-one , ,key-two,,\tkey3 ,", 1);
    c = load_ok(MIN_AZURE);
    assert_int_equal(c->napi_keys, 3);
    assert_string_equal(c->api_keys[0], "key-one");
    assert_string_equal(c->api_keys[1], "key-two");
    assert_string_equal(c->api_keys[2], "key3");
    config_free(c);

    setenv("AGENT_API_KEYS", "single#key", 1);
    c = load_ok(MIN_AZURE);
    assert_int_equal(c->napi_keys, 1);
    assert_string_equal(c->api_keys[0], "single#key");
    config_free(c);

    setenv("AGENT_API_KEYS", " , ,", 1);
    c = load_ok(MIN_AZURE);
    assert_int_equal(c->napi_keys, 0);
    config_free(c);

    setenv("AGENT_API_KEYS", "good,bad key", 1);
    expect_err(MIN_AZURE, "AGENT_API_KEYS: key 2: API key contains a space, a control character "
                          "or a non-ASCII byte");
    /* The key itself is never echoed. */
    assert_null(strstr(g_err, "bad key"));
}

/* Writes text to a new temporary file; returns its path (static). */
static const char *temp_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/d8-config-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_keys_file(void **state)
{
    (void)state;
    char yaml[4096], want[512];
    config_t *c;
    const char *path = temp_file("# API keys, one per line\n"
                                 "first-key\n"
                                 "  second-key , third-key   # rotated in 2026\n"
                                 "\n"
                                 "\r\n"
                                 "fourth-key\r\n");

    snprintf(yaml, sizeof yaml, "api: {keysFile: %s}\n%s", path, MIN_AZURE);
    c = load_ok(yaml);
    assert_string_equal(c->keys_file, path);
    assert_int_equal(c->napi_keys, 4);
    assert_string_equal(c->api_keys[0], "first-key");
    assert_string_equal(c->api_keys[1], "second-key");
    assert_string_equal(c->api_keys[2], "third-key");
    assert_string_equal(c->api_keys[3], "fourth-key");
    config_free(c);

    /* AGENT_API_KEYS wins over the file. */
    setenv("AGENT_API_KEYS", "env-key", 1);
    c = load_ok(yaml);
    assert_int_equal(c->napi_keys, 1);
    assert_string_equal(c->api_keys[0], "env-key");
    config_free(c);
    unsetenv("AGENT_API_KEYS");
    unlink(path);

    /* A file that is gone. */
    snprintf(want, sizeof want, "%s: cannot read: %s", path, strerror(ENOENT));
    expect_err(yaml, want);

    /* A file with no key in it. */
    path = temp_file("# nothing yet\n\n , \n");
    snprintf(yaml, sizeof yaml, "api: {keysFile: %s}\n%s", path, MIN_AZURE);
    snprintf(want, sizeof want, "%s: contains no API keys", path);
    expect_err(yaml, want);
    unlink(path);

    /* A bad key: its position, never its text. */
    path = temp_file("ok-key\n  bad\001key\n");
    snprintf(yaml, sizeof yaml, "api: {keysFile: %s}\n%s", path, MIN_AZURE);
    snprintf(want, sizeof want,
             "%s:2:3: API key contains a space, a control character or a non-ASCII byte", path);
    expect_err(yaml, want);
    unlink(path);

    /* A directory. */
    snprintf(yaml, sizeof yaml, "api: {keysFile: /tmp}\n%s", MIN_AZURE);
    expect_err(yaml, "/tmp: cannot read: Is a directory");
}

static void test_listen(void **state)
{
    (void)state;
    static const struct {
        const char *listen;
        const char *host;
        int port;
    } ok[] = {
        {"0.0.0.0:8080", "0.0.0.0", 8080},
        {"127.0.0.1:0", "127.0.0.1", 0},
        {"10.1.2.3:65535", "10.1.2.3", 65535},
        {"\"[::1]:9000\"", "::1", 9000},
        {"\"[::]:80\"", "::", 80},
        {"localhost:8081", "127.0.0.1", 8081},
        {"\":8080\"", "0.0.0.0", 8080},
    };
    static const char *const bad[] = {
        "8080",           "\"::1:8080\"",  "1.2.3.4:65536", "\"1.2.3.4:\"",
        "example.com:80", "\"[::1]8080\"", "\"[zz]:80\"",   "1.2.3.4:-1",
        "1.2.3.4:+80",    "1.2.3:80",      "256.1.1.1:80",  "[a, b]",
    };
    char yaml[4096];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(yaml, sizeof yaml, "controller:\n  listen: %s\n%s", ok[i].listen, MIN_AZURE);
        config_t *c = load_ok(yaml);
        assert_string_equal(c->listen_host, ok[i].host);
        assert_int_equal(c->listen_port, ok[i].port);
        config_free(c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(yaml, sizeof yaml, "controller:\n  listen: %s\n%s", bad[i], MIN_AZURE);
        expect_err_has(yaml, "t.yaml:2:11: controller.listen: ");
    }
    expect_err_with("controller:\n  listen: 1.2.3.4:70000\n",
                    "t.yaml:2:11: controller.listen: port must be between 0 and 65535, got "
                    "\"1.2.3.4:70000\"");
    expect_err_with("controller:\n  listen: \"::1:8080\"\n",
                    "t.yaml:2:11: controller.listen: IPv6 addresses need brackets, as in "
                    "[::1]:8080, got \"::1:8080\"");
    expect_err_with("controller:\n  listen: example.com:80\n",
                    "t.yaml:2:11: controller.listen: must be host:port with an IPv4 address, "
                    "[IPv6 address] or localhost as host, got \"example.com:80\"");
}

/* controller.probeListen: off by default, same syntax as listen, "" or
 * null turn it off; api.maxConnectionsPerClient: 256 by default, 0 = off. */
static void test_probe_listen_and_client_limit(void **state)
{
    (void)state;
    char yaml[4096];
    config_t *c = load_with("");
    assert_null(c->probe_listen_host);
    assert_int_equal(c->max_connections_per_client, 256);
    config_free(c);
    snprintf(yaml, sizeof yaml, "controller:\n  probeListen: \":8081\"\n%s", MIN_AZURE);
    c = load_ok(yaml);
    assert_string_equal(c->probe_listen_host, "0.0.0.0");
    assert_int_equal(c->probe_listen_port, 8081);
    config_free(c);
    snprintf(yaml, sizeof yaml, "controller:\n  probeListen: \"[::1]:9000\"\n%s", MIN_AZURE);
    c = load_ok(yaml);
    assert_string_equal(c->probe_listen_host, "::1");
    assert_int_equal(c->probe_listen_port, 9000);
    config_free(c);
    snprintf(yaml, sizeof yaml, "controller:\n  probeListen: \"\"\n%s", MIN_AZURE);
    c = load_ok(yaml);
    assert_null(c->probe_listen_host);
    config_free(c);
    expect_err_with("controller:\n  probeListen: example.com:80\n",
                    "t.yaml:2:16: controller.probeListen: must be host:port with an IPv4 "
                    "address, [IPv6 address] or localhost as host, got \"example.com:80\"");
    c = load_with("api:\n  maxConnectionsPerClient: 0\n");
    assert_int_equal(c->max_connections_per_client, 0);
    config_free(c);
    expect_err_has("api:\n  maxConnectionsPerClient: 70000\n",
                   "t.yaml:2:28: api.maxConnectionsPerClient: ");
}

static void test_ports_and_images(void **state)
{
    (void)state;
    config_t *c;

    c = load_with("workspace:\n  ports: [8080, 22, 3000, 5000, 65535]\n");
    assert_int_equal(c->nports, 5);
    assert_int_equal(c->ports[1], 22);
    assert_int_equal(c->ports[4], 65535);
    config_free(c);
    expect_err_with("workspace:\n  ports: [8080, 8080]\n",
                    "t.yaml:2:17: workspace.ports[1]: duplicate port 8080");
    expect_err_with("workspace:\n  ports: [1, 2, 3, 4, 5, 6]\n",
                    "t.yaml:2:10: workspace.ports: must list 1 to 5 ports, got 6");
    expect_err_with("workspace:\n  ports: []\n",
                    "t.yaml:2:10: workspace.ports: must list 1 to 5 ports, got 0");
    expect_err_with("workspace:\n  ports: [0]\n",
                    "t.yaml:2:11: workspace.ports[0]: must be an integer between 1 and 65535, "
                    "got \"0\"");
    expect_err_with("workspace:\n  ports:\n    - 80\n    - 65536\n",
                    "t.yaml:4:7: workspace.ports[1]: must be an integer between 1 and 65535, got "
                    "\"65536\"");
    expect_err_with("workspace:\n  ports: 8080\n",
                    "t.yaml:2:10: workspace.ports: must be a sequence of ports such as [8080], "
                    "got \"8080\"");

    /* images replaces the default map as a whole. */
    c = load_with("images:\n  python: python:3.12\n  go-1.22: golang:1.22\n");
    assert_int_equal(c->nimages, 2);
    assert_null(config_image(c, "node"));
    assert_string_equal(config_image(c, "python"), "python:3.12");
    assert_string_equal(config_image(c, "go-1.22"), "golang:1.22");
    config_free(c);
    expect_err_with("images: {}\n", "t.yaml:1:9: images: must list 1 to 64 images, got 0");
    expect_err_with("images:\n  node:\n",
                    "t.yaml:2:8: images.node: needs a container image reference");
    expect_err_with("images:\n  node: \"a b\"\n",
                    "t.yaml:2:9: images.node: must be a container image reference (1 to 512 "
                    "characters, no spaces), got \"a b\"");
    expect_err_with("images:\n  -node: a/b\n",
                    "t.yaml:2:3: images.-node: must be 1 to 64 letters, digits, '.', '_' or '-', "
                    "starting with a letter or digit, got \"-node\"");
    expect_err_with("images: [node]\n",
                    "t.yaml:1:9: images: must be a mapping of image key to container image "
                    "reference, got a sequence");
}

static void test_file_loading(void **state)
{
    (void)state;
    config_t *c = NULL;
    char want[512];

    assert_int_equal(config_load("/nonexistent/dev8.yaml", &c, g_err, sizeof g_err), D8_EIO);
    assert_null(c);
    snprintf(want, sizeof want, "/nonexistent/dev8.yaml: cannot read: %s", strerror(ENOENT));
    assert_string_equal(g_err, want);

    const char *path = temp_file("controller:\n  resyncSeconds: 0\n");
    assert_int_equal(config_load(path, &c, g_err, sizeof g_err), D8_EINVAL);
    assert_null(c);
    snprintf(want, sizeof want,
             "%s:2:18: controller.resyncSeconds: must be an integer between 1 and 86400, got "
             "\"0\"",
             path);
    assert_string_equal(g_err, want);
    unlink(path);

    /* Larger than 64 KiB: refused before parsing. */
    char *big = malloc((64 << 10) + 2);
    assert_non_null(big);
    memset(big, '#', (64 << 10) + 1);
    big[(64 << 10) + 1] = '\0';
    path = temp_file(big);
    assert_int_equal(config_load(path, &c, g_err, sizeof g_err), D8_ETOOBIG);
    assert_null(c);
    snprintf(want, sizeof want, "%s: larger than 65536 bytes", path);
    assert_string_equal(g_err, want);
    unlink(path);
    /* Exactly 64 KiB of comments is fine as YAML (and then lacks regions). */
    assert_int_equal(config_load_string("big", big, 64 << 10, &c, g_err, sizeof g_err), D8_EINVAL);
    assert_string_equal(g_err, "big:1:1: azure.regions: at least one region is required");
    free(big);

    /* Deep flow nesting would make libyaml quadratic: refused up front. */
    char deep[600];
    memcpy(deep, "log: ", 5);
    memset(deep + 5, '[', 300);
    deep[305] = '\0';
    expect_err(deep, "t.yaml:1:262: syntax error: more than 256 '[' or '{' in the file; write "
                     "nested structures in block style");

    /* No error buffer is fine too. */
    assert_int_equal(config_load_string("x", "log: 1", 6, &c, NULL, 0), D8_EINVAL);
    assert_null(c);
    config_free(NULL);
}

/* workspace.readinessProbe / livenessProbe and the auto-stop timing. */
static void test_health_settings(void **state)
{
    (void)state;
    config_t *c = load_ok(MIN_AZURE);
    assert_string_equal(c->readiness_probe.path, "");
    assert_string_equal(c->liveness_probe.path, "");
    assert_int_equal(c->readiness_probe.period_seconds, 10);
    assert_int_equal(c->readiness_probe.failure_threshold, 3);
    assert_int_equal(c->auto_stop_warning_minutes, 5);
    assert_int_equal(c->auto_stop_minute_seconds, 60);
    config_free(c);
    c = load_with("workspace:\n  readinessProbe: { path: /healthz, port: 8081, "
                  "initialDelaySeconds: 3, periodSeconds: 2, failureThreshold: 30 }\n"
                  "  livenessProbe: { path: /alive, timeoutSeconds: 4 }\n"
                  "controller: { autoStopWarningMinutes: 0, autoStopMinuteSeconds: 1 }\n");
    assert_string_equal(c->readiness_probe.path, "/healthz");
    assert_int_equal(c->readiness_probe.port, 8081);
    assert_int_equal(c->readiness_probe.initial_delay_seconds, 3);
    assert_int_equal(c->readiness_probe.period_seconds, 2);
    assert_int_equal(c->readiness_probe.failure_threshold, 30);
    assert_string_equal(c->liveness_probe.path, "/alive");
    assert_int_equal(c->liveness_probe.timeout_seconds, 4);
    assert_int_equal(c->liveness_probe.period_seconds, 10);
    assert_int_equal(c->auto_stop_warning_minutes, 0);
    assert_int_equal(c->auto_stop_minute_seconds, 1);
    config_free(c);
    expect_err_has("workspace:\n  readinessProbe:\n    path: healthz\n" MIN_AZURE,
                   "t.yaml:3:11: workspace.readinessProbe.path: must be empty (no probe) or an "
                   "absolute HTTP path");
    expect_err_has("workspace:\n  livenessProbe: { periodSeconds: 0 }\n" MIN_AZURE,
                   "workspace.livenessProbe.periodSeconds");
    expect_err_has("workspace:\n  readinessProbe: { port: 70000 }\n" MIN_AZURE,
                   "workspace.readinessProbe.port");
    expect_err_has("workspace:\n  readinessProbe: { command: ls }\n" MIN_AZURE,
                   "workspace.readinessProbe.command");
    expect_err_has("controller:\n  autoStopMinuteSeconds: 0\n" MIN_AZURE,
                   "t.yaml:2:26: controller.autoStopMinuteSeconds");
    expect_err_has("controller:\n  autoStopWarningMinutes: -1\n" MIN_AZURE,
                   "controller.autoStopWarningMinutes");
    c = load_ok(MIN_AZURE);
    assert_string_equal(c->activity_url, "");
    assert_string_equal(c->activity_key_env, "DEV8_ACTIVITY_KEY");
    assert_null(c->activity_listen_host);
    config_free(c);
    c = load_with("activity: { url: \"https://dev8.example.com/\", keyEnv: MY_KEY, "
                  "listen: \":8081\" }\n");
    assert_string_equal(c->activity_url, "https://dev8.example.com/");
    assert_string_equal(c->activity_key_env, "MY_KEY");
    assert_string_equal(c->activity_listen_host, "0.0.0.0");
    assert_int_equal(c->activity_listen_port, 8081);
    config_free(c);
    expect_err_has("activity:\n  url: dev8.example.com\n" MIN_AZURE,
                   "t.yaml:2:8: activity.url: must be empty or start with http:// or https://");
    expect_err_has("activity:\n  listen: nowhere\n" MIN_AZURE, "t.yaml:2:11: activity.listen");
    expect_err_has("activity:\n  keyEnv: 9KEY\n" MIN_AZURE, "activity.keyEnv");
}

static void test_local_config(void **state)
{
    (void)state;
    config_t *c = NULL;
    int rc = config_load("hack/local-config.yaml", &c, g_err, sizeof g_err);
    if (rc)
        print_error("hack/local-config.yaml: %s\n", g_err);
    assert_int_equal(rc, 0);
    assert_string_equal(c->controller_name, "dev8-local");
    assert_string_equal(c->listen_host, "127.0.0.1");
    assert_int_equal(c->listen_port, 8080);
    assert_string_equal(c->arm_endpoint, "http://127.0.0.1:9090");
    assert_string_equal(c->authority_host, "http://127.0.0.1:9090");
    assert_string_equal(c->imds_endpoint, "http://127.0.0.1:9090");
    assert_int_equal(c->nregions, 2);
    assert_non_null(config_region(c, "eastus"));
    assert_non_null(config_region(c, "westeurope"));
    assert_non_null(config_image(c, "node"));
    assert_non_null(config_image(c, "python"));
    assert_true(c->reaper_group_grace_seconds < 900);
    assert_true(c->reaper_share_grace_seconds < 259200);
    config_free(c);
}

/* pricing and retention (issue 15): defaults, values, and every error
 * names file:line:column and the key. */
static void test_pricing_retention(void **state)
{
    (void)state;
    config_t *c = load_with("");
    assert_string_equal(c->currency, "USD");
    assert_int_equal(c->nprices, 0);
    assert_true(c->retain_days == 30);
    config_free(c);
    c = load_with(
        "pricing:\n  currency: EUR\n  regions:\n"
        "    eastus: {vcpuSecond: 0.0000113, memoryGBSecond: 1.2e-6, shareGBMonth: 0.16}\n"
        "retention: {retainDays: 0.5}\n");
    assert_string_equal(c->currency, "EUR");
    assert_int_equal(c->nprices, 1);
    assert_string_equal(c->prices[0].region, "eastus");
    assert_true(c->prices[0].vcpu_second == 0.0000113);
    assert_true(c->prices[0].memory_gb_second == 1.2e-6);
    assert_true(c->prices[0].share_gb_month == 0.16);
    assert_true(c->retain_days == 0.5);
    config_free(c);
    c = load_with("retention: {retainDays: 0}\n");
    assert_true(c->retain_days == 0);
    config_free(c);
    expect_err_with("pricing:\n  regions:\n    westus: {vcpuSecond: 1}\n",
                    "t.yaml:3:5: pricing.regions.westus: not a region of azure.regions");
    expect_err_with("pricing:\n  regions:\n    eastus: {vcpuSecond: -1}\n",
                    "t.yaml:3:26: pricing.regions.eastus.vcpuSecond: must be a number from 0 to "
                    "1000, got \"-1\"");
    expect_err_has("pricing:\n  regions:\n    eastus: {cpu: 1}\n",
                   "pricing.regions.eastus.cpu: unknown key");
    expect_err_has("pricing:\n  regions:\n    eastus: {}\n    eastus: {}\n", "duplicate");
    expect_err_has("pricing: {currency: dollars}\n",
                   "pricing.currency: must be an ISO 4217 currency code");
    expect_err_has("pricing: {regions: [eastus]}\n", "pricing.regions: must be a mapping");
    expect_err_has("retention: {retainDays: forever}\n",
                   "retention.retainDays: must be a number from 0 to 36500");
    expect_err_has("retention: {retainDays: \"3\"}\n", "retention.retainDays: must be a number");
}

/* api.tls: the three paths and the reload interval, where each key was
 * written (for errors found when the files are read), and the pairs that
 * must go together. */
static void test_api_tls(void **state)
{
    (void)state;
    config_t *cfg = load_with("controller:\n  name: x\n");
    assert_string_equal(cfg->tls_cert_file, "");
    assert_string_equal(cfg->tls_cert_at, "");
    assert_int_equal(cfg->tls_reload_seconds, 10);
    config_free(cfg);

    cfg = load_with("api:\n"
                    "  tls:\n"
                    "    certFile: /etc/dev8/tls/tls.crt\n"
                    "    keyFile: /etc/dev8/tls/tls.key\n"
                    "    clientCAFile: /etc/dev8/ca/ca.crt\n"
                    "    reloadSeconds: 30\n");
    assert_string_equal(cfg->tls_cert_file, "/etc/dev8/tls/tls.crt");
    assert_string_equal(cfg->tls_key_file, "/etc/dev8/tls/tls.key");
    assert_string_equal(cfg->tls_client_ca_file, "/etc/dev8/ca/ca.crt");
    assert_int_equal(cfg->tls_reload_seconds, 30);
    assert_string_equal(cfg->tls_cert_at, "t.yaml:3:5");
    assert_string_equal(cfg->tls_key_at, "t.yaml:4:5");
    assert_string_equal(cfg->tls_client_ca_at, "t.yaml:5:5");
    config_free(cfg);

    cfg = load_with("api:\n  tls:\n");
    assert_string_equal(cfg->tls_cert_file, "");
    config_free(cfg);

    expect_err_with("api:\n  tls:\n    certFile: /a\n",
                    "t.yaml:3:5: api.tls.keyFile: must be set when certFile is");
    expect_err_with("api:\n  tls:\n    keyFile: /a\n",
                    "t.yaml:3:5: api.tls.certFile: must be set when keyFile or clientCAFile is");
    expect_err_with("api:\n  tls:\n    clientCAFile: /a\n",
                    "t.yaml:2:3: api.tls.certFile: must be set when keyFile or clientCAFile is");
    expect_err_has("api:\n  tls:\n    certFile: /a\n    keyFile: /b\n    reloadSeconds: 0\n",
                   "api.tls.reloadSeconds");
    expect_err_has("api:\n  tls:\n    certFile: /a\n    keyfile: /b\n", "api.tls.keyfile");
    expect_err_has("api:\n  tls: yes\n", "api.tls: must be a mapping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_full_file, clear_env),
        cmocka_unit_test_setup(test_empty_and_null, clear_env),
        cmocka_unit_test_setup(test_type_errors, clear_env),
        cmocka_unit_test_setup(test_ranges, clear_env),
        cmocka_unit_test_setup(test_unknown_keys, clear_env),
        cmocka_unit_test_setup(test_duplicate_keys, clear_env),
        cmocka_unit_test_setup(test_aliases_rejected, clear_env),
        cmocka_unit_test_setup(test_syntax_errors, clear_env),
        cmocka_unit_test_setup(test_regions, clear_env),
        cmocka_unit_test_setup(test_subscriptions, clear_env),
        cmocka_unit_test_setup(test_api_keys_env, clear_env),
        cmocka_unit_test_setup(test_keys_file, clear_env),
        cmocka_unit_test_setup(test_listen, clear_env),
        cmocka_unit_test_setup(test_probe_listen_and_client_limit, clear_env),
        cmocka_unit_test_setup(test_ports_and_images, clear_env),
        cmocka_unit_test_setup(test_file_loading, clear_env),
        cmocka_unit_test_setup(test_local_config, clear_env),
        cmocka_unit_test_setup(test_pricing_retention, clear_env),
        cmocka_unit_test_setup(test_api_tls, clear_env),
        cmocka_unit_test_setup(test_health_settings, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
