#include "agent.h"

#include "api/api.h"
#include "base/base.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "store/store.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#define DRAIN_POLL_MS 50

/* The one context of the process, owned by agent_run's stack frame. */
typedef struct agent {
    uv_loop_t loop;
    const config_t *cfg;
    store_t *store;
    metrics_t *metrics;
    api_t *api;
    uv_signal_t sigterm;
    uv_signal_t sigint;
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
    uv_close((uv_handle_t *)&a->sigterm, close_cb);
    uv_close((uv_handle_t *)&a->sigint, close_cb);
    uv_close((uv_handle_t *)&a->drain, close_cb);
}

/* Polls until the answers in flight are done or the grace period ends. */
static void drain_cb(uv_timer_t *t)
{
    agent_t *a = t->data;
    size_t open = api_connections(a->api);
    if (open > 0 && uv_now(&a->loop) < a->drain_deadline)
        return;
    uv_timer_stop(t);
    if (open > 0)
        LOG(LOG_WARN, "grace period over: closing connections still open", LF_I("open", open));
    LOG0(LOG_INFO, "stopped");
    api_free(a->api, api_gone, a);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    agent_t *a = s->data;
    if (a->stopping) {
        LOG(LOG_WARN, "second signal: exiting at once", LF_I("signal", signum));
        _exit(1);
    }
    a->stopping = 1;
    LOG(LOG_INFO, "shutting down", LF_I("signal", signum),
        LF_I("grace_seconds", a->cfg->shutdown_grace_seconds));
    api_shutdown(a->api);
    a->drain_deadline = uv_now(&a->loop) + (uint64_t)a->cfg->shutdown_grace_seconds * 1000;
    uv_timer_start(&a->drain, drain_cb, 0, DRAIN_POLL_MS);
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
    /* A client that goes away mid-answer must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&a.loop);
    a.store = store_new((size_t)cfg->watch_ring_size);
    a.metrics = metrics_new();

    api_opts_t ao = {.loop = &a.loop, .cfg = cfg, .store = a.store, .metrics = a.metrics};
    if (api_new(&ao, &a.api, err, sizeof(err)) != D8_OK) {
        LOG(LOG_ERROR, "cannot start the API server", LF_S("error", err));
        goto out;
    }
    metrics_process(a.metrics);

    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&a.sigint, signal_cb, SIGINT);
    uv_timer_init(&a.loop, &a.drain);
    a.drain.data = &a;

    /* Nothing talks to Azure yet: ready once the API listens. */
    api_set_ready(a.api, 1, NULL);
    LOG(LOG_INFO, "listening", LF_S("host", cfg->listen_host), LF_I("port", api_port(a.api)),
        LF_S("controller", cfg->controller_name), LF_S("version", D8_VERSION),
        LF_I("regions", cfg->nregions), LF_I("api_keys", cfg->napi_keys));
    uv_run(&a.loop, UV_RUN_DEFAULT);
    code = 0;

out:
    if (a.api) {
        /* Start-up failed after the server existed: close it properly. */
        api_free(a.api, NULL, NULL);
        uv_run(&a.loop, UV_RUN_DEFAULT);
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&a.loop) != 0)
        LOG0(LOG_WARN, "event loop closed with handles still open");
    store_free(a.store);
    metrics_free(a.metrics);
    return code;
}
