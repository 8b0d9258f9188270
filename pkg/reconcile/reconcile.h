/*
 * pkg/reconcile: the reconcile loop of DESIGN.md section 5.
 *
 * It watches the store for desired changes, lists each region's container
 * groups and file shares every controller.resyncSeconds into an observed
 * cache (keyed by env id: the dev8-env-id tag of groups, the dev8-{id}
 * name of shares), GETs groups only for power state (after an action until
 * it settles, and otherwise once per statusRefreshSeconds with jitter),
 * and for each key decides, then acts once: at most one ARM mutation per
 * pass, then it requeues to observe the effect. Long-running operations
 * are never awaited; their outcome is observed by GET.
 *
 * It never touches a resource that is not tagged with our controller name
 * (a group or share of that name owned by someone else is reported as an
 * error and left alone).
 */
#ifndef D8_RECONCILE_H
#define D8_RECONCILE_H

#include "azure/azure.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "store/store.h"

#include <cjson/cJSON.h>
#include <uv.h>

typedef struct reconciler reconciler_t;

typedef struct reconcile_opts {
    uv_loop_t *loop;
    const config_t *cfg;       /* borrowed, outlives the reconciler */
    store_t *store;            /* borrowed */
    azure_client_t *az;        /* borrowed */
    const azure_scope_t *scopes; /* borrowed: one per cfg->regions[i], same index */
    metrics_t *metrics;        /* borrowed; families are registered here */
    const unsigned char *hash_key; /* DEV8_SPEC_HASH_KEY, NULL when unset; copied */
    size_t hash_keylen;
} reconcile_opts_t;

reconciler_t *reconciler_new(const reconcile_opts_t *opts);
/* Starts watching the store and the first resync of every region. */
void reconciler_start(reconciler_t *r);
/* Stops starting new passes and resyncs (for shutdown). */
void reconciler_pause(reconciler_t *r);
/* Passes in flight (their Azure calls not answered yet). */
size_t reconciler_active(const reconciler_t *r);
/* Adds queueDepth, regions, throttle to a /api/v1/status answer. */
void reconciler_status(reconciler_t *r, cJSON *status);
/* Frees; the Azure client must be freed first or have nothing pending for
 * us (its callbacks reference the reconciler). Timers close via the loop. */
void reconciler_free(reconciler_t *r);

/*
 * The auto-stop rule of DESIGN.md section 5, as a pure function: an
 * environment with autoStopMinutes > 0 is due when nothing happened for that
 * long — counting from the latest of the agent's own start (so a restart
 * never stops anything early), the last activity and the moment it was
 * last seen becoming RUNNING. Times in wall milliseconds, 0 = never.
 */
int reconcile_auto_stop_due(int minutes, int64_t agent_start_ms, int64_t last_activity_ms,
                            int64_t running_since_ms, int64_t now_ms);

/* Names and labels of section 4, exposed for tests. */
void reconcile_dns_label(const char *controller, const char *id, char out[64]);

/* One observed environment as the reaper sees it (all borrowed). */
typedef struct reconcile_observed {
    const char *id;
    int region;                /* index into cfg->regions, -1 unknown */
    int group_exists;          /* ours, per the last list or GET */
    int share_exists;          /* dev8-{id} present, per the last list or GET */
    int keep;                  /* dev8-keep=true on the group */
    int busy;                  /* a reconcile pass is acting on it */
} reconcile_observed_t;

/* Calls fn for each entry of the observed cache. */
void reconciler_each_observed(reconciler_t *r,
                              void (*fn)(void *ud, const reconcile_observed_t *o), void *ud);
/* The entry of one env id (strings borrowed until the next loop turn);
 * D8_ENOENT when the cache never saw it. */
int reconciler_observed(const reconciler_t *r, const char *id, reconcile_observed_t *out);
/* 1 once every region was listed at least once. */
int reconciler_listed_all(const reconciler_t *r);

#endif
