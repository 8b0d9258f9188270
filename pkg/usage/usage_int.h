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

/* One UTC hour of one environment: 20 bytes. hour 0 = an empty slot. */
typedef struct usage__bucket {
    uint32_t hour; /* wall ms / HOUR_MS */
    float q[Q__N];
} usage__bucket_t;
_Static_assert(sizeof(usage__bucket_t) == 20, "a bucket is 20 bytes (README: bytes per env)");

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
    usage__bucket_t *b; /* USAGE_KEEP_HOURS slots, by hour % USAGE_KEEP_HOURS */
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
