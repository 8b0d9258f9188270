/*
 * pkg/usage: what each environment used and what it costs (issue 15), and
 * the table of retained file shares.
 *
 * Usage is accumulated from observations, never from wishes: the
 * reconciler reports after each pass what Azure showed of the environment
 * (is its group running, with which cpu and memory; does its share exist,
 * with which quota). The interval between two observations is counted
 * with the state the first one showed, so a transition (start, stop,
 * resize, delete, share created or deleted) is counted from the
 * observation that first shows it. Error bound: per transition, at most
 * the time between the observation before it and the one that shows it
 * (the settle poll, 2..30 s, for changes the agent makes; at most
 * controller.statusRefreshSeconds for power changes made outside it; the
 * agent's downtime for a change made while it was down). Persistence
 * (usage_file.h) adds nothing after a graceful stop; after a crash
 * (kill -9), a transition made in the last persist interval before it
 * (controller.usagePersistSeconds, 60 s) is lost, so the state before it
 * is counted up to the first observation after the restart: at most that
 * interval (plus the downtime) per environment with such a transition.
 *
 * Per environment: totals since the first observation, and the use of
 * each UTC hour for the last USAGE_KEEP_HOURS hours, kept as runs of
 * consecutive hours with equal per-hour quantities (20 bytes a run,
 * usage_int.h): memory grows with the transitions, not with the hours.
 * A 200-byte record plus its runs' capacity: 35 days stopped, 2 runs;
 * running 8 h a day, ~4 runs a day; at worst (every hour different) one
 * run an hour, USAGE_KEEP_HOURS + 2 at most = the 16800 bytes of the ring
 * of 20-byte buckets this replaced. A deleted environment's record stays
 * until its newest hour leaves the window, so GET /api/v1/usage still
 * shows what it used.
 *
 * Cost = cpuCoreSeconds x vcpuSecond + memoryGBSeconds x memoryGBSecond
 *      + storageGBHours / 730 x shareGBMonth   (730 hours a month, as Azure
 *        prices monthly quantities), in the region's price table.
 *
 * Single-threaded (the loop's thread; a usage_clone copy belongs to
 * whichever thread holds it); usage.c and usage_store.c do no
 * I/O and read no clock (every function takes the time); usage_file.c
 * keeps the accountant in its own file (usage_file.h).
 */
#ifndef D8_USAGE_H
#define D8_USAGE_H

#include "base/base.h"
#include "metrics/metrics.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Hourly buckets kept per environment: 35 days. */
#define USAGE_KEEP_HOURS (35 * 24)
/* Hours in a month, for a price per GiB-month. */
#define USAGE_HOURS_PER_MONTH 730.0

typedef struct usage usage_t;

/* One region's prices; set 0: the region has none (quantities only). */
typedef struct usage_price {
    int set;
    double vcpu_second;      /* per vCPU-second */
    double memory_gb_second; /* per GiB-second of memory */
    double share_gb_month;   /* per GiB-month of provisioned share quota */
} usage_price_t;

typedef struct usage_opts {
    size_t nregions;
    const char *const *region_names; /* borrowed; index = region index */
    const usage_price_t *prices;     /* borrowed; nregions entries, may be NULL */
    const char *currency;            /* copied; e.g. "USD" */
    metrics_t *metrics;              /* borrowed, may be NULL: dev8_usage_* */
} usage_opts_t;

/* What one observation showed of an environment. */
typedef struct usage_sample {
    int running;      /* the group exists and its instance state is Running */
    double cpu_cores; /* the group's size (from Azure), when running */
    double memory_gb;
    int share_gb; /* the share's quota while it exists, 0 = no share */
} usage_sample_t;

/* A new accountant (copies what it needs from opts). */
usage_t *usage_new(const usage_opts_t *opts);
/* Frees; NULL is a no-op. */
void usage_free(usage_t *u);

/*
 * Records an observation of `id` at wall time now_ms: the time since the
 * previous one is counted with the previous state, then `s` becomes the
 * state. user_id (copied; may be NULL to keep the known one) and region
 * (index, -1 keeps the known one) label the rows. An observation older
 * than the previous one only updates the state. Returns 1 when the state
 * changed (a transition), else 0.
 */
int usage_observe(usage_t *u, const char *id, const char *user_id, int region, int64_t now_ms,
                  const usage_sample_t *s);

/* The environment's object is gone (deleted): counts up to now_ms, then
 * nothing runs; its share's quota keeps counting only while the share is
 * in the retained table (until usage_retained_drop). The record stays for
 * the usage route. No-op when unknown. */
void usage_deleted(usage_t *u, const char *id, int64_t now_ms);

/* Totals of one environment up to now_ms (the interval since the last
 * observation counted with its state). */
typedef struct usage_totals {
    double running_seconds;
    double cpu_core_seconds;
    double memory_gb_seconds;
    double storage_gb_hours;
    int priced;            /* its region has prices: the two costs are set */
    double estimated_cost; /* of the totals */
    double cost_per_hour;  /* of the current size and power state */
    const char *currency;  /* borrowed from the accountant */
    int64_t since_ms;      /* first observation */
} usage_totals_t;

/* Fills *out for `id`; 1, or 0 when it was never observed. */
int usage_totals(const usage_t *u, const char *id, int64_t now_ms, usage_totals_t *out);

/* One row of GET /api/v1/usage: one environment over one period. */
typedef struct usage_row {
    const char *environment_id; /* borrowed */
    const char *user_id;        /* borrowed, "" when unknown */
    int64_t period_start_ms, period_end_ms;
    double running_seconds, cpu_core_seconds, memory_gb_seconds, storage_gb_hours;
    int priced;
    double estimated_cost;
    const char *currency;
} usage_row_t;

typedef struct usage_query {
    int64_t from_ms, to_ms; /* whole periods: from rounded down, to up */
    const char *user_id;    /* NULL = all users */
    int day;                /* 1: periods of a UTC day, else of an hour */
    int64_t now_ms;         /* counts the current interval up to here */
} usage_query_t;

/*
 * Calls fn for each environment (in id order) and period of q that used
 * anything, periods in time order. Only the last USAGE_KEEP_HOURS hours
 * are kept: older periods are absent. Returns the rows given.
 */
size_t usage_query(const usage_t *u, const usage_query_t *q,
                   void (*fn)(void *ud, const usage_row_t *row), void *ud);

/* ---- retained shares ---------------------------------------------------- */

typedef struct usage_retained {
    const char *environment_id; /* borrowed */
    const char *user_id;        /* borrowed, "" when unknown */
    const char *region;         /* borrowed, "" when unknown */
    int size_gb;
    int64_t keep_until_ms;
} usage_retained_t;

/* A share of `id` was marked retained until keep_until_ms (replaces). */
void usage_retained_set(usage_t *u, const char *id, const char *user_id, int region, int size_gb,
                        int64_t keep_until_ms);
/* The retained share of `id` was adopted or deleted at now_ms: it leaves
 * the table and, when its environment is gone, its quota stops counting.
 * Returns 1 when it was listed. */
int usage_retained_drop(usage_t *u, const char *id, int64_t now_ms);
/* Calls fn for each retained share, in id order. */
void usage_retained_each(const usage_t *u, void (*fn)(void *ud, const usage_retained_t *r),
                         void *ud);

/* ---- persistence (the usage file, usage_file.h) ---------------------------- */

/*
 * A counter that grows with every change the usage file must keep: a
 * transition, a new record or new labels, a deletion, a retained share
 * set or dropped, a load. Time passing in a known state is not a change:
 * the saved state and lastMs count it again after a restart.
 */
uint64_t usage_changes(const usage_t *u);

/*
 * A deep copy of the accountant's state (prices, records, buckets,
 * retained shares) without metrics, owned by the caller (usage_free). The
 * copy shares nothing with u, so another thread may usage_save and free
 * it while u goes on: the usage file formats its JSON off the loop.
 */
usage_t *usage_clone(const usage_t *u);

/* Appends the accountant's state to out as one JSON object. */
void usage_save(const usage_t *u, d8_buf_t *out);
/*
 * Replaces the accountant's state by the object `v` (a usage_save
 * output); NULL (no section) is a no-op. All or nothing: 0, or D8_EINVAL
 * with a sentence in err (errlen > 0) and nothing changed.
 */
int usage_load(usage_t *u, const cJSON *v, char *err, size_t errlen);

#endif
