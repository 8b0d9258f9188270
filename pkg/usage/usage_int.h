/*
 * pkg/usage internals shared by usage.c (accounting, queries) and
 * usage_store.c (retained shares, persistence).
 */
#ifndef D8_USAGE_INT_H
#define D8_USAGE_INT_H

#include "usage.h"
#include "usage_file.h"

#include "base/map.h"
#include "spec/spec.h"

#include <stdint.h>

/* Quantities of a bucket or a total, in this order. */
enum { Q_RUN = 0, Q_CPU, Q_MEM, Q_SHARE, Q__N }; /* Q_SHARE in GiB-seconds */

#define HOUR_MS 3600000LL

/*
 * A run of UTC hours of one environment with the same per-hour quantities:
 * 20 bytes. Runs are sorted and contiguous: run i covers the hours
 * [hour, runs[i + 1].hour); the last run is the newest hour alone (the
 * open hour, still counted into), merged into its predecessor when the
 * next hour opens if their quantities are equal. The open hour is summed
 * in double (open_q) and stored rounded to float once per interval, so
 * hours spent in one state are equal floats whatever the observations'
 * times. A gap (hours nothing was
 * counted in, only from a saved file) is a run with q[Q_RUN] < 0.
 */
typedef struct usage__run {
    uint32_t hour; /* wall ms / HOUR_MS of its first hour */
    float q[Q__N]; /* per hour */
} usage__run_t;
_Static_assert(sizeof(usage__run_t) == 20, "a run is 20 bytes (README: bytes per env)");

typedef struct usage__env {
    char id[SPEC_ID_MAX + 1];
    char *user_id; /* owned, NULL when unknown */
    int region;    /* -1 unknown */
    int64_t since_ms, last_ms;
    int running;
    double cpu, mem;
    int share_gb;
    int deleted;
    double total[Q__N];
    double open_q[Q__N]; /* the open hour's sums; its run holds them as floats */
    usage__run_t *runs;  /* nruns of cap; at most USAGE_KEEP_HOURS + 2 */
    uint32_t nruns, cap;
} usage__env_t;

typedef struct usage__ret {
    char id[SPEC_ID_MAX + 1];
    char *user_id; /* owned, NULL when unknown */
    int region;
    int size_gb;
    int64_t keep_until_ms;
} usage__ret_t;

struct usage {
    size_t nregions;
    char **region_names;   /* owned */
    usage_price_t *prices; /* owned, nregions entries */
    char *currency;
    d8_map_t envs;       /* id -> usage__env_t */
    d8_map_t retained;   /* id -> usage__ret_t */
    int64_t pruned_hour; /* hour of the last prune */
    uint64_t changes;    /* usage_changes: bumped by what the usage file must keep */
    metrics_t *metrics;
    metric_family_t *m_q[Q__N], *m_cost, *m_running, *m_cost_hour, *m_retained;
};

/* The environment record of id, or NULL. */
usage__env_t *usage__env(const usage_t *u, const char *id);
/* The record of id, created empty (nothing observed yet) when absent. */
usage__env_t *usage__env_new(usage_t *u, const char *id);
/* Frees one record. */
void usage__env_free(usage__env_t *e);
/* Opens hour h as the newest (the open) hour of e, zeroed: closes the
 * previous one (merged when equal), fills a gap, trims the runs before
 * the window, zeroes e->open_q. Returns the open run, or NULL when h is not after e's newest
 * hour (the hour is not kept; accruals only move forward). */
usage__run_t *usage__open_hour(usage__env_t *e, uint32_t h);
/* Bytes e holds in memory: its record and its runs' capacity. */
size_t usage__env_bytes(const usage__env_t *e);
/* The price of region r, or NULL when it has none. */
const usage_price_t *usage__price(const usage_t *u, int region);
/* The cost of quantities q (Q_SHARE in GiB-seconds) at price p. */
double usage__cost(const usage_price_t *p, const double q[Q__N]);
/* Region index of name, -1 when unknown. */
int usage__region_index(const usage_t *u, const char *name);
/* Fills *out with pointers to the values of m, sorted by their id (the
 * first member of each is a char id[]); returns the count (free *out). */
size_t usage__sorted(const d8_map_t *m, void ***out);
/* Registers the dev8_usage_* families and their collector. */
void usage__metrics(usage_t *u);

/* Test counters: usage file writes that succeeded and failed since
 * usage_file_new. */
uint64_t usage_file__writes(const usage_file_t *uf);
uint64_t usage_file__errors(const usage_file_t *uf);
/* 1 while a write is in flight. */
int usage_file__writing(const usage_file_t *uf);

#endif
