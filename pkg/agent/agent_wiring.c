/*
 * The application wiring of dev8-agent: configuration in, library option
 * structs out (see agent_int.h).
 */
#include "agent_int.h"

#include "base/base.h"

#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ACI meters creates and deletes in a 5-minute and an hourly window. */
#define ACI_SHORT_WINDOW_S 300.0
#define ACI_HOURLY_WINDOW_S 3600.0

void agent__azure_opts(azure_client_opts_t *o, const config_t *cfg)
{
    memset(o, 0, sizeof(*o));
    o->arm_endpoint = cfg->arm_endpoint;
    o->authority_host = cfg->authority_host;
    o->token_scope = cfg->token_scope; /* the cloud's, with its endpoints */
    o->imds_endpoint = cfg->imds_endpoint;
    o->aci_api_version = cfg->aci_api_version;
    o->storage_api_version = cfg->storage_api_version;
    /* The schema only lets the four names through. */
    if (azure_auth_kind_parse(cfg->azure_auth, &o->auth) != 0)
        o->auth = AZURE_AUTH_AUTO;
    o->max_inflight = cfg->max_inflight;
    o->buckets[AZURE_BUCKET_READ] =
        (azure_bucket_opts_t){cfg->rl_read_burst, cfg->rl_reads_per_second};
    o->buckets[AZURE_BUCKET_WRITE] =
        (azure_bucket_opts_t){cfg->rl_write_burst, cfg->rl_writes_per_second};
    o->buckets[AZURE_BUCKET_DELETE] =
        (azure_bucket_opts_t){cfg->rl_delete_burst, cfg->rl_deletes_per_second};
    /* The burst refills over the short window; the hourly figure is both
     * the hourly bucket's size and its refill per hour. */
    o->buckets[AZURE_BUCKET_ACI_CREATE] = (azure_bucket_opts_t){
        cfg->rl_aci_creates_burst, cfg->rl_aci_creates_burst / ACI_SHORT_WINDOW_S};
    o->buckets[AZURE_BUCKET_ACI_DELETE] = (azure_bucket_opts_t){
        cfg->rl_aci_deletes_burst, cfg->rl_aci_deletes_burst / ACI_SHORT_WINDOW_S};
    o->buckets[AZURE_BUCKET_ACI_CREATE_HOURLY] = (azure_bucket_opts_t){
        cfg->rl_aci_creates_per_hour, cfg->rl_aci_creates_per_hour / ACI_HOURLY_WINDOW_S};
    o->buckets[AZURE_BUCKET_ACI_DELETE_HOURLY] = (azure_bucket_opts_t){
        cfg->rl_aci_deletes_per_hour, cfg->rl_aci_deletes_per_hour / ACI_HOURLY_WINDOW_S};
}

azure_scope_t *agent__scopes_new(const config_t *cfg)
{
    azure_scope_t *s = d8_xcalloc(cfg->nregions ? cfg->nregions : 1, sizeof(*s));
    for (size_t i = 0; i < cfg->nregions; i++) {
        const config_region_t *r = &cfg->regions[i];
        s[i].subscription_id = r->subscription_id; /* resolved by config_load */
        s[i].resource_group = r->resource_group;
        s[i].storage_account = r->storage_account;
        s[i].region = r->name;
    }
    return s;
}

int agent__webhook_new(uv_loop_t *loop, curluv_t *cu, const config_t *cfg, store_t *store,
                       metrics_t *metrics, webhook_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->webhook_url || !cfg->webhook_url[0])
        return 0;
    const char *name = cfg->webhook_secret_env;
    const char *secret = name && name[0] ? getenv(name) : NULL;
    if (!secret || !secret[0]) {
        snprintf(err, errlen,
                 "webhook.url is set but the environment variable %s (webhook.secretEnv) is "
                 "empty: refusing to send unsigned deliveries",
                 name && name[0] ? name : "(none)");
        return D8_EINVAL;
    }
    webhook_opts_t o = {.loop = loop,
                        .cu = cu,
                        .store = store,
                        .metrics = metrics,
                        .url = cfg->webhook_url,
                        .secret = secret,
                        .secret_len = strlen(secret)};
    return webhook_new(&o, out, err, errlen);
}

void agent__raise_nofile(const config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    /* Each connection is one descriptor, and so is every connection over
     * a limit while its 503 goes out (up to 2 s): with descriptors
     * exhausted no listener accepts, the probe listener included. The
     * soft limit goes up to the hard one, as Go's runtime does. */
    rlim_t want = (rlim_t)cfg->max_connections + 512;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            cur = rl.rlim_cur;
        rl.rlim_cur = cur;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t cur = rl.rlim_cur;
        if (cur < want)
            LOG(LOG_WARN, "the open-file limit is below api.maxConnections + 512",
                LF_I("limit", (int64_t)cur), LF_I("wanted", (int64_t)want),
                LF_S("hint", "raise the container's nofile limit or lower api.maxConnections"));
    }
}

usage_t *agent__usage_new(const config_t *cfg, metrics_t *metrics)
{
    const char **names = d8_xcalloc(cfg->nregions + 1, sizeof(char *));
    usage_price_t *prices = d8_xcalloc(cfg->nregions + 1, sizeof(usage_price_t));
    for (size_t i = 0; i < cfg->nregions; i++) {
        names[i] = cfg->regions[i].name;
        for (size_t j = 0; j < cfg->nprices; j++) {
            const config_price_t *p = &cfg->prices[j];
            if (strcmp(p->region, names[i]) == 0)
                prices[i] =
                    (usage_price_t){1, p->vcpu_second, p->memory_gb_second, p->share_gb_month};
        }
    }
    usage_opts_t o = {.nregions = cfg->nregions,
                      .region_names = names,
                      .prices = prices,
                      .currency = cfg->currency,
                      .metrics = metrics};
    usage_t *u = usage_new(&o);
    free(names);
    free(prices);
    return u;
}
