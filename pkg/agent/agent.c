#include "agent.h"
#include "agent_int.h"

#include "api/api.h"
#include "azure/azure.h"
#include "base/base.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "observe/observe.h"
#include "reaper/reaper.h"
#include "reconcile/reconcile.h"
#include "sigstop/sigstop.h"
#include "statefile/statefile.h"
#include "store/store.h"
#include "usage/usage_file.h"
#include "webhook/webhook.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DRAIN_POLL_MS 50
#define TOKEN_RETRY_MS 5000

/* The one context of the process, owned by agent_run's stack frame. */
typedef struct agent {
    uv_loop_t loop;
    const config_t *cfg;
    store_t *store;
    metrics_t *metrics;
    api_t *api;
    azure_client_t *az;
    azure_scope_t *scopes; /* one per cfg->regions[i] */
    observer_t *ob;
    reconciler_t *rec;
    reaper_t *reaper;
    statefile_t *sf;
    usage_t *usage;
    usage_file_t *uf; /* "<stateFile>.usage", with the state file */
    webhook_t *wh;
    events_t *events;     /* each environment's events (API, reconciler) */
    activity_t *activity; /* activity tokens, NULL when activity.url is not set */
    uv_timer_t token_retry;
    sigstop_t *sig;
    uv_timer_t drain;
    uint64_t drain_deadline;
    int stopping;
} agent_t;

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void api_gone(void *arg)
{
    agent_t *a = arg;
    a->api = NULL;
    sigstop_free(a->sig);
    a->sig = NULL;
    uv_close((uv_handle_t *)&a->drain, close_cb);
    uv_close((uv_handle_t *)&a->token_retry, close_cb);
}

/*
 * Polls until the answers and the Azure requests on the wire are done or
 * the grace period ends. Requests only queued or waiting out a backoff are
 * abandoned at once, and so is whatever is still open at the deadline:
 * every mutation is idempotent by name, so the next start finds and
 * finishes its work.
 */
static void drain_cb(uv_timer_t *t)
{
    agent_t *a = t->data;
    size_t open = api_connections(a->api);
    size_t pending = 0;
    if (a->az) {
        azure_stats_t st;
        azure_client_stats(a->az, &st);
        pending = st.inflight;
    }
    if ((open > 0 || pending > 0) && uv_now(&a->loop) < a->drain_deadline)
        return;
    uv_timer_stop(t);
    if (open > 0 || pending > 0)
        LOG(LOG_WARN, "grace period over: abandoning what is still open", LF_I("connections", open),
            LF_I("azure_calls", pending));
    /* The client cancels what is pending (callbacks into the reconciler),
     * so it goes first. */
    azure_client_free(a->az);
    a->az = NULL;
    reaper_free(a->reaper);
    a->reaper = NULL;
    reconciler_free(a->rec);
    a->rec = NULL;
    observer_free(a->ob);
    a->ob = NULL;
    webhook_free(a->wh);
    a->wh = NULL;
    /* Writes what is not on disk yet; the loop runs until it is. */
    statefile_free(a->sf);
    a->sf = NULL;
    usage_file_free(a->uf);
    a->uf = NULL;
    LOG0(LOG_INFO, "stopped");
    api_free(a->api, api_gone, a);
}

static void token_cb(void *ud, const azure_result_t *res);

static void token_retry_cb(uv_timer_t *t)
{
    agent_t *a = t->data;
    if (!a->stopping && a->az)
        azure_token_acquire(a->az, token_cb, a);
}

/* Ready once an Azure token was obtained; until then retried. */
static void token_cb(void *ud, const azure_result_t *res)
{
    agent_t *a = ud;
    if (res->err == D8_ECANCELED || a->stopping)
        return;
    if (res->err == 0) {
        api_set_ready(a->api, 1, NULL);
        LOG(LOG_INFO, "azure credential obtained",
            LF_S("auth", azure_auth_kind_name(azure_client_auth_kind(a->az))));
        return;
    }
    char reason[160];
    snprintf(reason, sizeof(reason), "no Azure token yet: %s",
             res->error_code && *res->error_code ? res->error_code : d8_strerror(res->err));
    api_set_ready(a->api, 0, reason);
    LOG(LOG_WARN, "cannot obtain an Azure token; retrying",
        LF_S("code", res->error_code ? res->error_code : ""),
        LF_S("message", res->error_message ? res->error_message : ""));
    uv_timer_start(&a->token_retry, token_retry_cb, TOKEN_RETRY_MS, 0);
}

static void status_hook(void *ud, cJSON *status)
{
    agent_t *a = ud;
    if (a->rec)
        reconciler_status(a->rec, status);
    if (a->reaper)
        reaper_status(a->reaper, status);
}

static cJSON *orphans_hook(void *ud)
{
    agent_t *a = ud;
    return reaper_orphans_json(a->reaper);
}

static int resume_hook(void *ud)
{
    agent_t *a = ud;
    return reaper_resume(a->reaper);
}

/* The hooks may run while the drain has already freed the controller
 * (its last answers): they then report nothing. */
static int reaping_hook(void *ud, const char *id)
{
    agent_t *a = ud;
    return a->reaper && reaper_busy(a->reaper, id);
}

/* The reconciler reads the logs; after the drain freed it: D8_ECANCELED. */
static int logs_hook(void *ud, const char *id, int tail, api_logs_done_fn done, void *arg)
{
    agent_t *a = ud;
    if (!a->rec || a->stopping)
        return D8_ECANCELED;
    return reconcile_logs(a->rec, id, tail, done, arg);
}

/* The first SIGTERM/SIGINT: stop taking work and drain (a second one
 * exits at once, in pkg/sigstop). */
static void on_stop(void *ud, int signum)
{
    agent_t *a = ud;
    a->stopping = 1;
    LOG(LOG_INFO, "shutting down", LF_I("signal", signum),
        LF_I("grace_seconds", a->cfg->shutdown_grace_seconds));
    api_shutdown(a->api);
    if (a->rec)
        reconciler_pause(a->rec);
    if (a->ob)
        observer_pause(a->ob);
    if (a->reaper)
        reaper_pause(a->reaper);
    uv_timer_stop(&a->token_retry);
    a->drain_deadline = uv_now(&a->loop) + (uint64_t)a->cfg->shutdown_grace_seconds * 1000;
    uv_timer_start(&a->drain, drain_cb, 0, DRAIN_POLL_MS);
}

/*
 * Opens "<stateFile>.usage" and loads it into the accountant; without one,
 * migrates the "usage" section of an older state file (written to the
 * usage file now, before the state file's next write drops it). 0, or -1
 * when the file cannot be trusted: usage is billing data, so a damaged
 * file is never silently replaced by zeros; the operator moves it aside.
 */
static int load_usage(agent_t *a)
{
    d8_buf_t path;
    d8_buf_init(&path);
    d8_buf_printf(&path, "%s.usage", a->cfg->state_file);
    usage_file_opts_t uo = {.loop = &a->loop,
                            .path = path.data,
                            .usage = a->usage,
                            .metrics = a->metrics,
                            .interval_ms = (uint64_t)a->cfg->usage_persist_seconds * 1000};
    a->uf = usage_file_new(&uo);
    char err[512];
    cJSON *legacy = statefile_take_legacy_usage(a->sf);
    int rc = usage_file_load(a->uf, err, sizeof(err));
    if (rc == D8_OK) {
        LOG(LOG_INFO, "usage file loaded", LF_S("path", path.data),
            LF_B("ignored_state_file_section", legacy != NULL));
    } else if (rc == D8_ENOENT && legacy) {
        rc = usage_load(a->usage, legacy, err, sizeof(err));
        if (rc == D8_OK && usage_file_write_now(a->uf, err, sizeof(err)) != D8_OK)
            /* The periodic writer retries; the state file keeps the
             * section until its next write. */
            LOG(LOG_ERROR, "cannot write the migrated usage file yet", LF_S("error", err));
        if (rc == D8_OK)
            LOG(LOG_INFO, "usage moved from the state file to its own file",
                LF_S("path", path.data));
    } else if (rc == D8_ENOENT) {
        LOG(LOG_INFO, "no usage file yet", LF_S("path", path.data));
        rc = D8_OK;
    }
    cJSON_Delete(legacy);
    if (rc != D8_OK)
        LOG(LOG_ERROR,
            "cannot load the usage file: refusing to start (move it aside to start "
            "with usage reset)",
            LF_S("path", path.data), LF_S("error", err));
    d8_buf_release(&path);
    return rc == D8_OK ? 0 : -1;
}

/*
 * Opens the state file when one is configured and puts its desired set in
 * the store. Returns 1 when a saved set was loaded, 0 when there is none
 * (no file configured, or not written yet), -1 when the file cannot be
 * trusted: then the agent must not start.
 */
static int load_state(agent_t *a, const char *hk)
{
    const config_t *cfg = a->cfg;
    if (!cfg->state_file || !*cfg->state_file)
        return 0;
    statefile_opts_t so = {.loop = &a->loop,
                           .path = cfg->state_file,
                           .store = a->store,
                           .metrics = a->metrics,
                           .key = (const unsigned char *)hk,
                           .keylen = hk ? strlen(hk) : 0,
                           .commit_window_ms = (uint64_t)cfg->state_commit_ms};
    a->sf = statefile_new(&so);
    const char **regions = d8_xcalloc(cfg->nregions + 1, sizeof(char *));
    const char **images = d8_xcalloc(cfg->nimages + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->nregions; i++)
        regions[i] = cfg->regions[i].name;
    for (size_t i = 0; i < cfg->nimages; i++)
        images[i] = cfg->images[i].key;
    spec_rules_t rules = {regions, cfg->nregions, images, cfg->nimages, cfg->max_storage_gb};
    char serr[512];
    int rc = statefile_load(a->sf, &rules, serr, sizeof(serr));
    free(regions);
    free(images);
    if (rc != D8_OK && rc != D8_ENOENT) {
        /* A file we cannot trust must not be replaced by an empty desired
         * set: the operator decides (fix or remove it). */
        LOG(LOG_ERROR, "cannot load the state file: refusing to start",
            LF_S("path", cfg->state_file), LF_S("error", serr));
        return -1;
    }
    if (rc == D8_ENOENT)
        LOG(LOG_INFO, "no state file yet", LF_S("path", cfg->state_file));
    else
        LOG(LOG_INFO, "state file loaded", LF_S("path", cfg->state_file),
            LF_I("environments", store_count(a->store)), LF_B("synced", store_synced(a->store)));
    if (load_usage(a) != 0)
        return -1;
    statefile_start(a->sf);
    usage_file_start(a->uf);
    return rc == D8_OK;
}

/* The controller: observer, reconciler and reaper over the store and the
 * Azure client (which must exist). */
static void controller_new(agent_t *a, const char *hk, int loaded_state)
{
    const config_t *cfg = a->cfg;
    a->scopes = agent__scopes_new(cfg);
    observe_opts_t oo = {
        .loop = &a->loop, .cfg = cfg, .scopes = a->scopes, .az = a->az, .metrics = a->metrics};
    a->ob = observer_new(&oo);
    reconcile_opts_t ro = {.loop = &a->loop,
                           .cfg = cfg,
                           .store = a->store,
                           .az = a->az,
                           .observer = a->ob,
                           .metrics = a->metrics,
                           .hash_key = (const unsigned char *)hk,
                           .hash_keylen = hk ? strlen(hk) : 0,
                           .usage = a->usage,
                           .events = a->events,
                           .activity = a->activity};
    a->rec = reconciler_new(&ro);
    reaper_opts_t rpo = {.events = a->events,
                         .loop = &a->loop,
                         .cfg = cfg,
                         .store = a->store,
                         .az = a->az,
                         .observer = a->ob,
                         .metrics = a->metrics,
                         .usage = a->usage};
    a->reaper = reaper_new(&rpo);
    if (loaded_state && store_synced(a->store))
        reaper_set_authoritative(a->reaper);
}

/* GET /api/v1/preflight: the checks through the controller's client. */
static int preflight_hook(void *ud, preflight_cb cb, void *cbud)
{
    agent_t *a = ud;
    if (!a->az || a->stopping)
        return D8_ECANCELED;
    return preflight_run(a->az, a->cfg, cb, cbud);
}

/* Durable acknowledgements: the API waits for the state file's writes. */
static uint64_t commit_hook(void *ud)
{
    agent_t *a = ud;
    return a->sf ? statefile_commit(a->sf) : 0;
}

static int writable_hook(void *ud, char *reason, size_t len)
{
    agent_t *a = ud;
    return !a->sf || statefile_writable(a->sf, reason, len);
}

static void committed(void *ud, uint64_t durable_seq, int status)
{
    agent_t *a = ud;
    if (a->api)
        api_committed(a->api, durable_seq, status);
}

/* The API server with the controller's hooks; D8_OK or an error in err. */
static int api_start(agent_t *a, char *err, size_t errlen)
{
    api_opts_t ao = {.loop = &a->loop,
                     .cfg = a->cfg,
                     .store = a->store,
                     .metrics = a->metrics,
                     .status_hook = status_hook,
                     .status_ud = a,
                     .orphans_hook = orphans_hook,
                     .orphans_ud = a,
                     .resume_hook = resume_hook,
                     .resume_ud = a,
                     .reaping_hook = reaping_hook,
                     .reaping_ud = a,
                     .usage = a->usage,
                     .preflight_hook = preflight_hook,
                     .preflight_ud = a,
                     .commit_hook = a->sf ? commit_hook : NULL,
                     .writable_hook = a->sf ? writable_hook : NULL,
                     .durable_ud = a,
                     .logs_hook = logs_hook,
                     .logs_ud = a,
                     .events = a->events,
                     .activity = a->activity};
    int rc = api_new(&ao, &a->api, err, errlen);
    if (rc == D8_OK && a->sf)
        statefile_on_commit(a->sf, committed, a);
    return rc;
}

/* Everything is wired: start the timers, the token, the loops, and run. */
static void run(agent_t *a)
{
    const config_t *cfg = a->cfg;
    metrics_process(a->metrics);
    a->sig = sigstop_new(&a->loop, on_stop, a);
    uv_timer_init(&a->loop, &a->drain);
    a->drain.data = a;
    uv_timer_init(&a->loop, &a->token_retry);
    a->token_retry.data = a;
    api_set_ready(a->api, 0, "waiting for an Azure token");
    azure_token_acquire(a->az, token_cb, a);
    reconciler_start(a->rec);
    observer_start(a->ob);
    reaper_start(a->reaper);
    LOG(LOG_INFO, "listening", LF_S("host", cfg->listen_host), LF_I("port", api_port(a->api)),
        LF_S("controller", cfg->controller_name), LF_S("version", D8_VERSION),
        LF_I("regions", cfg->nregions), LF_I("api_keys", cfg->napi_keys));
    if (cfg->probe_listen_host)
        LOG(LOG_INFO, "probe listener", LF_S("host", cfg->probe_listen_host),
            LF_I("port", api_probe_port(a->api)), LF_S("serves", "/healthz /readyz /metrics"));
    uv_run(&a->loop, UV_RUN_DEFAULT);
}

/* activity.url set: the token key from $activity.keyEnv, which must be
 * set (a workspace must never get a token anyone could compute). */
static int activity_setup(agent_t *a)
{
    const config_t *cfg = a->cfg;
    if (!cfg->activity_url || !cfg->activity_url[0]) {
        if (cfg->activity_listen_host)
            LOG0(LOG_ERROR, "activity.listen is set but activity.url is not: refusing to start");
        return cfg->activity_listen_host ? -1 : 0;
    }
    const char *key = getenv(cfg->activity_key_env);
    if (!key || strlen(key) < 16) {
        LOG(LOG_ERROR, "activity.url is set but the token key is missing or shorter than 16 bytes",
            LF_S("keyEnv", cfg->activity_key_env));
        return -1;
    }
    a->activity = activity_new(cfg->activity_url, (const unsigned char *)key, strlen(key));
    return 0;
}

int agent_run(const config_t *cfg)
{
    agent_t a = {0};
    int code = 1;
    char err[256];

    a.cfg = cfg;
    if (cfg->napi_keys == 0) {
        LOG(LOG_ERROR, "no API keys: set AGENT_API_KEYS or api.keysFile",
            LF_S("hint", "keys are comma-separated; several keys allow rotation"));
        return 1;
    }
    agent__raise_nofile(cfg);
    uv_loop_init(&a.loop);
    a.store = store_new((size_t)cfg->watch_ring_size);
    a.metrics = metrics_new();
    a.usage = agent__usage_new(cfg, a.metrics);
    a.events = events_new();
    const char *hk = getenv("DEV8_SPEC_HASH_KEY");
    int loaded_state = load_state(&a, hk);
    if (loaded_state < 0)
        goto out;
    if (!loaded_state)
        store_begin_epoch(a.store, (uint64_t)d8_wall_ms() * 1000);
    /* Status pushes: refused without a secret rather than sent unsigned. */
    if (agent__webhook_new(&a.loop, NULL, cfg, a.store, a.metrics, &a.wh, err, sizeof(err)) < 0) {
        LOG(LOG_ERROR, "cannot set up the webhook: refusing to start", LF_S("error", err));
        goto out;
    }
    azure_client_opts_t azo;
    agent__azure_opts(&azo, cfg);
    if (azure_client_new(&a.loop, &azo, &a.az, err, sizeof(err)) != D8_OK) {
        LOG(LOG_ERROR, "cannot set up the Azure client", LF_S("error", err));
        goto out;
    }
    if (activity_setup(&a) < 0)
        goto out;
    if (!hk || !*hk)
        LOG0(LOG_WARN, "DEV8_SPEC_HASH_KEY is not set: a changed secret value alone will not "
                       "recreate a container group");
    controller_new(&a, hk, loaded_state);
    if (api_start(&a, err, sizeof(err)) != D8_OK) {
        LOG(LOG_ERROR, "cannot start the API server", LF_S("error", err));
        goto out;
    }
    run(&a);
    code = 0;

out:
    /* Start-up failed: close what exists, in the drain order. */
    azure_client_free(a.az);
    reaper_free(a.reaper);
    reconciler_free(a.rec);
    observer_free(a.ob);
    webhook_free(a.wh);
    statefile_free(a.sf);
    usage_file_free(a.uf);
    if (a.api)
        api_free(a.api, NULL, NULL);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&a.loop) != 0)
        LOG0(LOG_WARN, "event loop closed with handles still open");
    store_free(a.store);
    usage_free(a.usage);
    events_free(a.events);
    activity_free(a.activity);
    metrics_free(a.metrics);
    free(a.scopes);
    return code;
}
