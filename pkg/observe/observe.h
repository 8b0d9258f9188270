/*
 * pkg/observe: the informer of this controller. It lists each region's
 * container groups and file shares every controller.resyncSeconds (paged by
 * the Azure client) into an observed cache keyed by env id, remembers when
 * each region was last listed completely, and keeps the status-refresh
 * schedule of each group (when its power state must next be read by GET).
 *
 * The reconciler and the reaper both read Azure's state only from here.
 * The reconciler also writes what its own GETs and mutations learnt
 * (observed_group_seen and friends), so the cache is always the newest
 * knowledge; a list never overwrites an entry learnt about after the list
 * started, nor one a reconcile pass is working on (`busy`).
 *
 * Ownership is judged by pkg/ownership: a resource of our name that is not
 * ours is kept as `foreign` and never counted as ours.
 */
#ifndef D8_OBSERVE_H
#define D8_OBSERVE_H

#include "azure/azure.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "ownership/ownership.h"
#include "spec/spec.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

typedef struct observer observer_t;

/* What the last GET showed of the group's first container (the
 * workspace): the facts the health rules of pkg/reconcile read. */
typedef struct observed_container {
    int present; /* the GET carried its instance view */
    char name[64];
    char state[16];  /* Waiting, Running, Terminated */
    char detail[64]; /* detailStatus: CrashLoopBackOff, Error, ... */
    int restart_count;
    int64_t start_ms; /* wall ms the current state began, 0 = unknown */
    int has_exit, exit_code;
    int has_prev, prev_exit_code;
    int64_t prev_finish_ms; /* when the previous run ended, 0 = none */
    int64_t unready_ms;     /* newest "Readiness probe failed" event, 0 = none */
    char *unready_msg;      /* its message (owned), NULL = none */
    int64_t pull_failed_ms; /* newest "Failed to pull image" event, 0 = none */
    char *pull_failed_msg;  /* its message (owned), NULL = none */
} observed_container_t;

/* What is known of env id's container group. Strings owned by the entry. */
typedef struct observed_group {
    int known;   /* a list or GET told us about it */
    int exists;  /* ours and present */
    int foreign; /* a group of our name that is not ours */
    int keep;    /* dev8-keep=true */
    char spec_hash[OWN_HASH_MAX];
    char prov[24]; /* provisioningState */
    char inst[24]; /* instanceView.state ("" = not read by GET yet) */
    char *ip;
    char *fqdn;
    char *failure;           /* failure message of a Failed provisioning */
    uint64_t updated_ms;     /* loop time of the newest knowledge */
    int64_t read_wall_ms;    /* wall time of the last GET (status.observedTime), 0 = never */
    uint64_t absent_read_ms; /* loop time a GET last found no group, 0 = never */
    double cpu_cores;        /* the size the group has (list or GET), 0 = unknown */
    double memory_gb;
    observed_container_t c; /* the workspace container, as the last GET showed it */
} observed_group_t;

/* What is known of env id's file share. */
typedef struct observed_share {
    int known;
    int exists;            /* dev8-{id} present */
    int foreign;           /* read by GET and not ours */
    int verified;          /* read by GET (or created by us) and ours */
    int keep;              /* dev8keep=true, read by GET */
    int64_t keep_until_ms; /* dev8keepuntil (wall ms), read by GET; 0 = none */
    int quota_gb;
    uint64_t updated_ms;
} observed_share_t;

/* One entry of the cache. Fields are the caller's to read; writes go
 * through the observed_* functions, except `busy`, `settle` and
 * `next_get_ms`, which belong to the reconciler's pass. */
typedef struct observed {
    char id[SPEC_ID_MAX + 1];
    int region; /* index into cfg->regions, -1 unknown */
    observed_group_t g;
    observed_share_t s;
    int busy;             /* a reconcile pass is acting on it */
    int settle;           /* an action ran: read the group by GET each pass */
    uint64_t next_get_ms; /* loop time of the next status refresh, 0 = none */
} observed_t;

typedef struct observe_opts {
    uv_loop_t *loop;
    const config_t *cfg;         /* borrowed: regions, controller name, resync */
    const azure_scope_t *scopes; /* borrowed: one per cfg->regions[i], same index */
    azure_client_t *az;          /* borrowed */
    metrics_t *metrics;          /* borrowed, may be NULL: dev8_region_stale{region} */
} observe_opts_t;

/* An observer of opts' regions; nothing is listed before observer_start. */
observer_t *observer_new(const observe_opts_t *opts);
/* fn is called after each completed round of a region's lists (whether or
 * not they succeeded), so every key of the region gets a pass. One
 * listener; fn NULL unregisters. */
void observer_on_listed(observer_t *ob, void (*fn)(void *ud, int region), void *ud);
/* Starts the first list of every region. */
void observer_start(observer_t *ob);
/* Stops starting new lists (shutdown); lists in flight finish or are canceled. */
void observer_pause(observer_t *ob);
/* Frees. Azure calls of the observer must have been canceled (client freed)
 * first; timers close via the loop, memory goes in their close callbacks. */
void observer_free(observer_t *ob);

/* The entry of `id`, created empty (region -1, nothing known) when absent.
 * Entries live as long as the observer. */
observed_t *observer_entry(observer_t *ob, const char *id);
/* The entry of `id`, or NULL when the cache never saw it. */
const observed_t *observer_find(const observer_t *ob, const char *id);
/* Calls fn for each entry (the cache must not change meanwhile). */
void observer_each(const observer_t *ob, void (*fn)(void *ud, const observed_t *o), void *ud);
/* Calls fn for each entry of region `region`. */
void observer_each_in_region(observer_t *ob, int region, void (*fn)(void *ud, observed_t *o),
                             void *ud);
/* 1 once every region was listed completely at least once. */
int observer_listed_all(const observer_t *ob);
/* Lists of a region that failed in a row after which what the cache says
 * of it is called stale. */
#define OBSERVE_STALE_AFTER 3
/* 1 while the last OBSERVE_STALE_AFTER (or more) list rounds of `region`
 * failed: Azure is unreachable from here and its cache is stale. */
int observer_region_stale(const observer_t *ob, int region);
/* Index of the configured region `name`, -1 when not configured. */
int observer_region_index(const observer_t *ob, const char *name);
/* The scope of region `region` (borrowed). */
const azure_scope_t *observer_scope(const observer_t *ob, int region);
/*
 * The share sizes the region's storage account allows, read once from the
 * account (kind, SKU, large file shares): premium 100..102400 GiB,
 * standard 1..5120 GiB, or 1..102400 with large file shares. 0 for both
 * while unknown (not read yet, or the read failed: retried with the lists).
 * *kind: "premium" or "standard" (static), NULL while unknown.
 */
void observer_share_limits(const observer_t *ob, int region, int *min_gb, int *max_gb,
                           const char **kind);

/* Adds "regions":[{name,lastListTime,lastListError,stale,failedLists}] to a
 * status object. */
void observer_status(const observer_t *ob, cJSON *status);

/* What a GET (from_get, instance view included) or a list said of the group. */
void observed_group_seen(observer_t *ob, observed_t *o, const azure_group_t *g, int from_get);
/* Sets c from a GET's container view v (NULL: nothing known). */
void observed_container_set(observed_container_t *c, const azure_container_view_t *v);
/* The group is gone (deleted, or absent from a complete list). */
void observed_group_gone(observer_t *ob, observed_t *o);
/* A GET found no group (404): gone, and its absence freshly confirmed. */
void observed_group_absent(observer_t *ob, observed_t *o);
/* What a GET (from_get: metadata checked) or a list said of the share. */
void observed_share_seen(observer_t *ob, observed_t *o, const azure_share_t *s, int from_get);
/* We created (or rewrote) the share: it exists and is ours with that quota
 * (0 keeps the known quota) and keep mark. */
void observed_share_created(observer_t *ob, observed_t *o, int quota_gb, int keep);
/* The share is gone. */
void observed_share_gone(observer_t *ob, observed_t *o);

/*
 * Whether a pass must read the group by GET before deciding (pure):
 * `fetched` says it already did in this pass. Never seen: yes; seen absent:
 * no (the lists keep that current); present: before its power state was
 * ever read, and when its next read is due (the next poll while it
 * settles after an action, else its status refresh).
 */
int observed_group_stale(const observed_t *o, int fetched, uint64_t now_ms);

#endif
