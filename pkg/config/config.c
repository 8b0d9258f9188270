/*
 * pkg/config: defaults, the environment overrides and the public API. The
 * YAML schema lives in config_schema.c and its walk in config_walk.c.
 *
 * Loading is all-or-nothing: a fresh config gets the defaults, then the
 * file, then the environment, then the checks that need both; only a
 * config that passed everything is handed out.
 */
#include "config_int.h"

#include "azure/cloud.h"
#include "base/base.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on API keys, so that a stray file cannot balloon the config. */
#define MAX_API_KEYS 64
#define MAX_API_KEY_LEN 1024
#define MAX_KEYS_FILE_BYTES ((size_t)64 * 1024)

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Formats one line into the caller's error buffer and returns rc. */
static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The defaults of issue 13's keys: probes off, auto-stop warning, activity off. */
static void health_defaults(config_t *cfg)
{
    config_probe_t *probes[] = {&cfg->readiness_probe, &cfg->liveness_probe};
    for (size_t i = 0; i < 2; i++) {
        probes[i]->path = d8_xstrdup("");
        probes[i]->period_seconds = 10;
        probes[i]->failure_threshold = 3;
        probes[i]->timeout_seconds = 1;
    }
    cfg->auto_stop_warning_minutes = 5;
    cfg->auto_stop_minute_seconds = 60;
    cfg->activity_url = d8_xstrdup("");
    cfg->activity_key_env = d8_xstrdup("DEV8_ACTIVITY_KEY");
}

/* A new config holding the defaults of DESIGN.md 5b; owned by the caller. */
static config_t *defaults_new(void)
{
    config_t *cfg = d8_xcalloc(1, sizeof *cfg);

    cfg->controller_name = d8_xstrdup("dev8");
    cfg->listen_host = d8_xstrdup("0.0.0.0");
    cfg->listen_port = 8080;
    cfg->resync_seconds = 60;
    cfg->status_refresh_seconds = 300;
    cfg->shutdown_grace_seconds = 20;
    health_defaults(cfg);
    cfg->max_concurrent_reconciles = 16;
    cfg->state_file = d8_xstrdup("");
    cfg->state_commit_ms = 2;
    cfg->usage_persist_seconds = 60;
    cfg->max_sync_items = 50000;

    cfg->keys_file = d8_xstrdup("");
    cfg->max_body_bytes = 1048576;
    cfg->max_sync_body_bytes = 67108864;
    cfg->max_connections = 1024;
    cfg->max_connections_per_client = 256;
    cfg->watch_ring_size = 4096;
    cfg->tls_cert_file = d8_xstrdup("");
    cfg->tls_key_file = d8_xstrdup("");
    cfg->tls_client_ca_file = d8_xstrdup("");
    cfg->tls_reload_seconds = 10;
    cfg->tls_cert_at = d8_xstrdup("");
    cfg->tls_key_at = d8_xstrdup("");
    cfg->tls_client_ca_at = d8_xstrdup("");

    cfg->azure_auth = d8_xstrdup("auto");
    cfg->subscription_id = d8_xstrdup("");
    /* arm_endpoint, authority_host, token_scope: from the cloud
     * (config__resolve_cloud). */
    cfg->cloud = d8_xstrdup(AZURE_CLOUD_DEFAULT);
    cfg->imds_endpoint = d8_xstrdup("http://169.254.169.254");
    cfg->aci_api_version = d8_xstrdup("2025-09-01");
    cfg->storage_api_version = d8_xstrdup("2025-01-01");
    cfg->max_inflight = 32;
    cfg->rl_read_burst = 250;
    cfg->rl_reads_per_second = 25;
    cfg->rl_write_burst = 200;
    cfg->rl_writes_per_second = 10;
    cfg->rl_delete_burst = 200;
    cfg->rl_deletes_per_second = 10;
    cfg->rl_aci_creates_burst = 100;
    cfg->rl_aci_creates_per_hour = 300;
    cfg->rl_aci_deletes_burst = 100;
    cfg->rl_aci_deletes_per_hour = 300;

    cfg->images = d8_xcalloc(1, sizeof *cfg->images);
    cfg->images[0].key = d8_xstrdup("node");
    cfg->images[0].ref = d8_xstrdup("vaibhavsing/dev8-workspace:latest");
    cfg->nimages = 1;
    cfg->ports = d8_xmalloc(sizeof *cfg->ports);
    cfg->ports[0] = 8080;
    cfg->nports = 1;
    cfg->mount_path = d8_xstrdup("/home/dev8");
    cfg->max_storage_gb = 1024;

    cfg->reaper_enabled = 1;
    cfg->reaper_dry_run = 0;
    cfg->reaper_group_grace_seconds = 900;
    cfg->reaper_share_grace_seconds = 259200;
    cfg->reaper_max_deletes_per_cycle = 20;
    cfg->reaper_max_orphan_fraction = 0.5;

    cfg->webhook_url = d8_xstrdup("");
    cfg->webhook_secret_env = d8_xstrdup("WEBHOOK_SECRET");
    cfg->log_level = d8_xstrdup("info");
    cfg->currency = d8_xstrdup("USD");
    cfg->retain_days = 30;
    return cfg;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Splits text[0..len) into API keys and appends them to cfg: ',' and
 * newlines separate keys, blanks around a key are trimmed and empty
 * entries dropped. In a file (`file` non-NULL, its path), '#' starts a
 * comment running to the end of the line, and errors give line:column;
 * otherwise `src` names the environment variable and errors give the key's
 * ordinal. Errors never echo a key. text: borrowed.
 */
static int add_keys(config_t *cfg, const char *text, size_t len, const char *file, const char *src,
                    char *err, size_t errlen)
{
    size_t i = 0;

    while (i < len) {
        size_t start = i;
        while (i < len && text[i] != ',' && text[i] != '\n' && !(file && text[i] == '#'))
            i++;
        size_t end = i;
        if (i < len && text[i] == '#')
            while (i < len && text[i] != '\n')
                i++;
        if (i < len)
            i++; /* the separator */
        while (start < end && is_blank(text[start]))
            start++;
        while (end > start && is_blank(text[end - 1]))
            end--;
        if (start == end)
            continue;

        const char *problem = NULL;
        if (end - start > MAX_API_KEY_LEN)
            problem = "API key is longer than 1024 characters";
        for (size_t j = start; !problem && j < end; j++)
            if ((unsigned char)text[j] <= 0x20 || (unsigned char)text[j] >= 0x7f)
                problem = "API key contains a space, a control character or a non-ASCII byte";
        if (!problem && cfg->napi_keys >= MAX_API_KEYS)
            problem = "more than 64 API keys";
        if (problem && file) {
            size_t line = 1, col = 1;
            for (size_t j = 0; j < start; j++) {
                if (text[j] == '\n') {
                    line++;
                    col = 1;
                } else {
                    col++;
                }
            }
            return errf(err, errlen, D8_EINVAL, "%s:%zu:%zu: %s", file, line, col, problem);
        }
        if (problem)
            return errf(err, errlen, D8_EINVAL, "%s: key %zu: %s", src, cfg->napi_keys + 1,
                        problem);

        cfg->api_keys = d8_xrealloc(cfg->api_keys, (cfg->napi_keys + 1) * sizeof *cfg->api_keys);
        cfg->api_keys[cfg->napi_keys++] = d8_xstrndup(text + start, end - start);
    }
    return 0;
}

/* Reads api.keysFile into cfg->api_keys, wiping the read buffer after. */
static int load_keys_file(config_t *cfg, char *err, size_t errlen)
{
    const char *path = cfg->keys_file;
    FILE *f = NULL;
    char *buf = NULL;
    size_t n;
    int rc = 0;

    f = fopen(path, "rb");
    if (!f) {
        rc = errf(err, errlen, D8_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto cleanup;
    }
    buf = d8_xmalloc(MAX_KEYS_FILE_BYTES + 1);
    n = fread(buf, 1, MAX_KEYS_FILE_BYTES + 1, f);
    if (ferror(f)) {
        rc = errf(err, errlen, D8_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto cleanup;
    }
    if (n > MAX_KEYS_FILE_BYTES) {
        rc = errf(err, errlen, D8_ETOOBIG, "%s: larger than %zu bytes", path, MAX_KEYS_FILE_BYTES);
        goto cleanup;
    }
    rc = add_keys(cfg, buf, n, path, "api.keysFile", err, errlen);
    /* A keys file the operator named but left empty would lock the API. */
    if (rc == 0 && cfg->napi_keys == 0)
        rc = errf(err, errlen, D8_EINVAL, "%s: contains no API keys", path);

cleanup:
    if (buf) {
        OPENSSL_cleanse(buf, MAX_KEYS_FILE_BYTES + 1);
        free(buf);
    }
    if (f)
        fclose(f);
    return rc;
}

/*
 * The environment overrides: AGENT_API_KEYS (else api.keysFile) and
 * AZURE_SUBSCRIPTION_ID. An AGENT_API_KEYS holding no key counts as unset.
 */
static int apply_env(config_t *cfg, char *err, size_t errlen)
{
    const char *keys = getenv("AGENT_API_KEYS");
    const char *sub = getenv("AZURE_SUBSCRIPTION_ID");
    int rc;

    if (keys && *keys) {
        rc = add_keys(cfg, keys, strlen(keys), NULL, "AGENT_API_KEYS", err, errlen);
        if (rc)
            return rc;
    }
    if (cfg->napi_keys == 0 && cfg->keys_file[0]) {
        rc = load_keys_file(cfg, err, errlen);
        if (rc)
            return rc;
    }
    if (sub && *sub) {
        if (!config__is_guid(sub)) {
            char q[96];
            config__quote(q, sizeof q, sub, strlen(sub));
            return errf(err, errlen, D8_EINVAL,
                        "AZURE_SUBSCRIPTION_ID: must be a subscription id (a GUID such as "
                        "00000000-0000-0000-0000-000000000000), got %s",
                        q);
        }
        free(cfg->subscription_id);
        cfg->subscription_id = d8_xstrdup(sub);
    }
    return 0;
}

/*
 * Gives every region its subscription: its own, else azure.subscriptionId
 * (as overridden by the environment). Runs after apply_env.
 */
static int resolve_regions(config_t *cfg, const char *name, const config__pos_t *pos, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < cfg->nregions; i++) {
        config_region_t *r = &cfg->regions[i];
        if (r->subscription_id && r->subscription_id[0])
            continue;
        if (!cfg->subscription_id[0])
            return errf(err, errlen, D8_EINVAL,
                        "%s:%zu:%zu: azure.regions[%zu]: region \"%s\" has no subscription id; "
                        "set its subscriptionId, azure.subscriptionId or AZURE_SUBSCRIPTION_ID",
                        name, pos[i].line, pos[i].column, i, r->name);
        free(r->subscription_id);
        r->subscription_id = d8_xstrdup(cfg->subscription_id);
    }
    return 0;
}

int config_load_string(const char *name, const char *yaml, size_t len, config_t **out, char *err,
                       size_t errlen)
{
    config_t *cfg = NULL;
    config__pos_t *pos = NULL;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!out || (!yaml && len))
        return errf(err, errlen, D8_EINVAL, "config_load_string: invalid arguments");
    *out = NULL;
    if (!name)
        name = "<string>";

    cfg = defaults_new();
    rc = config__parse_yaml(cfg, name, yaml, len, &pos, err, errlen);
    if (rc)
        goto cleanup;
    rc = apply_env(cfg, err, errlen);
    if (rc)
        goto cleanup;
    rc = resolve_regions(cfg, name, pos, err, errlen);
    if (rc)
        goto cleanup;
    rc = config__check_prices(cfg, name, err, errlen);
    if (rc)
        goto cleanup;
    *out = cfg;
    cfg = NULL;

cleanup:
    free(pos);
    config_free(cfg);
    return rc;
}

int config_load(const char *path, config_t **out, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t n;
    int rc;

    if (!out)
        return errf(err, errlen, D8_EINVAL, "config_load: invalid arguments");
    *out = NULL;
    if (!path)
        return config_load_string("<defaults>", "", 0, out, err, errlen);

    f = fopen(path, "rb");
    if (!f) {
        rc = errf(err, errlen, D8_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto cleanup;
    }
    buf = d8_xmalloc(CONFIG__MAX_FILE_BYTES + 1);
    n = fread(buf, 1, CONFIG__MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        rc = errf(err, errlen, D8_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto cleanup;
    }
    if (n > CONFIG__MAX_FILE_BYTES) {
        rc = errf(err, errlen, D8_ETOOBIG, "%s: larger than %zu bytes", path,
                  CONFIG__MAX_FILE_BYTES);
        goto cleanup;
    }
    rc = config_load_string(path, buf, n, out, err, errlen);

cleanup:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

void config_free(config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->controller_name);
    free(cfg->listen_host);
    free(cfg->probe_listen_host);
    free(cfg->state_file);
    free(cfg->keys_file);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->tls_client_ca_file);
    free(cfg->tls_cert_at);
    free(cfg->tls_key_at);
    free(cfg->tls_client_ca_at);
    for (size_t i = 0; i < cfg->napi_keys; i++) {
        OPENSSL_cleanse(cfg->api_keys[i], strlen(cfg->api_keys[i]));
        free(cfg->api_keys[i]);
    }
    free(cfg->api_keys);
    free(cfg->azure_auth);
    free(cfg->subscription_id);
    free(cfg->arm_endpoint);
    free(cfg->authority_host);
    free(cfg->cloud);
    free(cfg->token_scope);
    free(cfg->imds_endpoint);
    free(cfg->aci_api_version);
    free(cfg->storage_api_version);
    for (size_t i = 0; i < cfg->nregions; i++) {
        free(cfg->regions[i].name);
        free(cfg->regions[i].resource_group);
        free(cfg->regions[i].storage_account);
        free(cfg->regions[i].subscription_id);
        config__subnet_ids_free(&cfg->regions[i]);
    }
    free(cfg->regions);
    for (size_t i = 0; i < cfg->nimages; i++) {
        free(cfg->images[i].key);
        free(cfg->images[i].ref);
    }
    free(cfg->images);
    config__registries_free(cfg);
    free(cfg->ports);
    free(cfg->mount_path);
    free(cfg->readiness_probe.path);
    free(cfg->liveness_probe.path);
    free(cfg->webhook_url);
    free(cfg->webhook_secret_env);
    free(cfg->log_level);
    free(cfg->currency);
    for (size_t i = 0; i < cfg->nprices; i++)
        free(cfg->prices[i].region);
    free(cfg->prices);
    free(cfg->activity_url);
    free(cfg->activity_key_env);
    free(cfg->activity_listen_host);
    free(cfg);
}

const config_region_t *config_region(const config_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->nregions; i++)
        if (strcmp(cfg->regions[i].name, name) == 0)
            return &cfg->regions[i];
    return NULL;
}

const char *config_image(const config_t *cfg, const char *key)
{
    if (!cfg || !key)
        return NULL;
    for (size_t i = 0; i < cfg->nimages; i++)
        if (strcmp(cfg->images[i].key, key) == 0)
            return cfg->images[i].ref;
    return NULL;
}
