/*
 * pkg/reconcile: the reconcile loop of DESIGN.md section 5.
 *
 * It watches the store for desired changes and the observer (pkg/observe)
 * for completed region lists, and puts env ids on a work queue. A pass over
 * one id reads the group by GET when the observer says it is stale (and the
 * share when never seen), asks the pure decision (decide.h) for the next
 * step, publishes the status it names and issues at most one ARM mutation
 * (act.c), then requeues to observe the effect. Long-running operations are
 * never awaited; their outcome is observed by GET.
 *
 * It never touches a resource that pkg/ownership does not call ours (a
 * group or share of that name owned by someone else is reported as an
 * error and left alone).
 */
#ifndef D8_RECONCILE_H
#define D8_RECONCILE_H

#include "activity/activity.h"
#include "azure/azure.h"
#include "config/config.h"
#include "events/events.h"
#include "metrics/metrics.h"
#include "observe/observe.h"
#include "store/store.h"
#include "usage/usage.h"

#include <cjson/cJSON.h>
#include <uv.h>

typedef struct reconciler reconciler_t;

typedef struct reconcile_opts {
    uv_loop_t *loop;
    const config_t *cfg;           /* borrowed, outlives the reconciler */
    store_t *store;                /* borrowed */
    azure_client_t *az;            /* borrowed */
    observer_t *observer;          /* borrowed; freed after the reconciler */
    metrics_t *metrics;            /* borrowed; families are registered here */
    const unsigned char *hash_key; /* DEV8_SPEC_HASH_KEY, NULL when unset; copied */
    size_t hash_keylen;
    /* Usage accounting and retained shares (issue 15); NULL: none. */
    usage_t *usage;   /* borrowed; its changes are saved by the usage file (usage_file.h) */
    events_t *events; /* borrowed, may be NULL: each environment's events */
    /* borrowed, may be NULL (off): DEV8_ACTIVITY_URL and the secure
     * DEV8_ACTIVITY_TOKEN of every group created */
    const activity_t *activity;
} reconcile_opts_t;

/* A reconciler over opts' store and observer; it registers its metrics and
 * listens to the observer's lists at once, the store after reconciler_start. */
reconciler_t *reconciler_new(const reconcile_opts_t *opts);
/* Starts watching the store (the observer's lists queue the rest). */
void reconciler_start(reconciler_t *r);
/* Stops starting new passes (for shutdown). */
void reconciler_pause(reconciler_t *r);
/* Passes in flight (their Azure calls not answered yet). */
size_t reconciler_active(const reconciler_t *r);
/* Adds queueDepth, regions, throttle to a /api/v1/status answer. */
void reconciler_status(reconciler_t *r, cJSON *status);
/* Frees; the Azure client must be freed first or have nothing pending for
 * us (its callbacks reference the reconciler). */
void reconciler_free(reconciler_t *r);

/* The answer of reconcile_logs: status 200 with the log text (borrowed),
 * or an HTTP status with an error code and message for the API. */
typedef void (*reconcile_logs_cb)(void *ud, int status, const char *code, const char *message,
                                  const char *text, size_t len);
/*
 * Reads the last `tail` lines of env id's workspace container through ARM
 * (Containers_ListLogs). D8_ENOENT when the cache knows no container group
 * of id (cb is not called); else 0 and cb runs once, later: 200 with the
 * text, 409 NoContainerGroup when Azure has none any more, 502
 * AzureError for any other failure, 503 ShuttingDown when the call was
 * canceled.
 */
int reconcile_logs(reconciler_t *r, const char *id, int tail, reconcile_logs_cb cb, void *ud);

#endif
