/*
 * pkg/reaper: garbage collection of orphans (DESIGN.md section 6) that
 * never loses a user's data.
 *
 * An orphan is a container group tagged with our controller name, or a
 * file share named dev8-{id}, whose env id is not in the desired set. The
 * reaper works from the observer's cache (pkg/observe) and deletes an orphan
 * only when all of these hold:
 * - the desired set is authoritative (a full sync arrived since start, or
 *   the state file was loaded);
 * - the orphan stayed an orphan for its kind's grace period;
 * - the reaper is not suspended (orphans above maxOrphanFraction of our
 *   managed resources suspend it until POST /api/v1/reaper/resume) and
 *   not in dry-run;
 * - a fresh GET right before the DELETE shows our controller tag/metadata
 *   and no dev8-keep=true, the env id is still not desired, and no
 *   reconcile pass is acting on it; a share goes only after its group.
 * At most maxDeletesPerCycle deletions per cycle; one audit line each.
 */
#ifndef D8_REAPER_H
#define D8_REAPER_H

#include "azure/azure.h"
#include "config/config.h"
#include "events/events.h"
#include "metrics/metrics.h"
#include "observe/observe.h"
#include "store/store.h"
#include "usage/usage.h"

#include <cjson/cJSON.h>
#include <uv.h>

typedef struct reaper reaper_t;

typedef struct reaper_opts {
    uv_loop_t *loop;
    const config_t *cfg; /* all borrowed; they outlive the reaper */
    store_t *store;
    azure_client_t *az;
    observer_t *observer; /* the observed cache (and who is busy in it) */
    metrics_t *metrics;
    uint64_t cycle_ms; /* 0: controller.resyncSeconds */
    usage_t *usage;    /* borrowed, may be NULL: a reaped retained share leaves its table */
    events_t *events;  /* may be NULL: a deletion's outcome as an event of its environment */
} reaper_opts_t;

/* A reaper over opts' observer and store; it registers its metrics and
 * watches the store at once, and runs cycles after reaper_start. */
reaper_t *reaper_new(const reaper_opts_t *opts);
/* Starts the cycle timer (every cycle_ms). */
void reaper_start(reaper_t *rp);
/* Stops cycles (shutdown). Deletions in flight finish or are canceled. */
void reaper_pause(reaper_t *rp);
/* Marks the desired set authoritative without a full sync (state file). */
void reaper_set_authoritative(reaper_t *rp);
/*
 * 1 while a verification GET or a DELETE of the reaper is in flight for a
 * resource of env `id`. The API refuses to make such an id desired until it
 * is done, so a share is never deleted for an environment a PUT just
 * asked for (DESIGN.md section 8, invariant 2).
 */
int reaper_busy(const reaper_t *rp, const char *id);
/* Lifts a suspension; returns 1 when it was suspended. */
int reaper_resume(reaper_t *rp);
/* {"items":[{kind,name,envId,region,firstSeen,reapAfter,state,blockedBy}]} */
cJSON *reaper_orphans_json(reaper_t *rp);
/* Adds "reaper":{...} to a /api/v1/status answer. */
void reaper_status(reaper_t *rp, cJSON *status);
/* Closes the timer; memory goes in its close callback. Azure calls of the
 * reaper must have been canceled (client freed) first. */
void reaper_free(reaper_t *rp);

#endif
