/*
 * pkg/usage: accounting from observations, hourly runs, totals, cost
 * and the rows of GET /api/v1/usage. See usage.h for the model.
 */
#include "usage_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t usage__sorted(const d8_map_t *m, void ***out)
{
    void **v = d8_xcalloc(m->count ? m->count : 1, sizeof(*v));
    size_t n = 0, it = 0;
    void *x;
    while ((x = d8_map_next(m, &it)))
        v[n++] = x;
    /* Each value starts with its id (char id[]), so its address is one. */
    qsort(v, n, sizeof(*v), cmp_id);
    *out = v;
    return n;
}

usage_t *usage_new(const usage_opts_t *opts)
{
    usage_t *u = d8_xcalloc(1, sizeof(*u));
    u->nregions = opts->nregions;
    u->region_names = d8_xcalloc(u->nregions ? u->nregions : 1, sizeof(char *));
    u->prices = d8_xcalloc(u->nregions ? u->nregions : 1, sizeof(usage_price_t));
    for (size_t i = 0; i < u->nregions; i++) {
        u->region_names[i] = d8_xstrdup(opts->region_names[i]);
        if (opts->prices)
            u->prices[i] = opts->prices[i];
    }
    u->currency = d8_xstrdup(opts->currency ? opts->currency : "");
    d8_map_init(&u->envs);
    d8_map_init(&u->retained);
    u->metrics = opts->metrics;
    if (u->metrics)
        usage__metrics(u);
    return u;
}

void usage__env_free(usage__env_t *e)
{
    free(e->user_id);
    free(e->runs);
    free(e);
}

void usage_free(usage_t *u)
{
    if (!u)
        return;
    size_t it = 0;
    usage__env_t *e;
    while ((e = d8_map_next(&u->envs, &it)))
        usage__env_free(e);
    d8_map_release(&u->envs);
    it = 0;
    usage__ret_t *r;
    while ((r = d8_map_next(&u->retained, &it))) {
        free(r->user_id);
        free(r);
    }
    d8_map_release(&u->retained);
    for (size_t i = 0; i < u->nregions; i++)
        free(u->region_names[i]);
    free(u->region_names);
    free(u->prices);
    free(u->currency);
    free(u);
}

usage__env_t *usage__env(const usage_t *u, const char *id)
{
    return d8_map_get(&u->envs, id);
}

usage__env_t *usage__env_new(usage_t *u, const char *id)
{
    usage__env_t *e = usage__env(u, id);
    if (e)
        return e;
    e = d8_xcalloc(1, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->region = -1;
    d8_map_put(&u->envs, e->id, e);
    return e;
}

const usage_price_t *usage__price(const usage_t *u, int region)
{
    if (region < 0 || (size_t)region >= u->nregions || !u->prices[region].set)
        return NULL;
    return &u->prices[region];
}

double usage__cost(const usage_price_t *p, const double q[Q__N])
{
    return q[Q_CPU] * p->vcpu_second + q[Q_MEM] * p->memory_gb_second +
           q[Q_SHARE] / 3600.0 / USAGE_HOURS_PER_MONTH * p->share_gb_month;
}

int usage__region_index(const usage_t *u, const char *name)
{
    for (size_t i = 0; name && i < u->nregions; i++)
        if (strcmp(u->region_names[i], name) == 0)
            return (int)i;
    return -1;
}

/* The quantities of state e over `secs` seconds. */
static void rates(const usage__env_t *e, double secs, double q[Q__N])
{
    q[Q_RUN] = e->running ? secs : 0;
    q[Q_CPU] = e->running ? e->cpu * secs : 0;
    q[Q_MEM] = e->running ? e->mem * secs : 0;
    q[Q_SHARE] = (double)e->share_gb * secs;
}

/* Grows e's runs by one, up to USAGE_KEEP_HOURS + 2 (the window, the
 * open hour pushed before the trim, a gap); returns the new last run. */
static usage__run_t *push_run(usage__env_t *e)
{
    if (e->nruns == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 2;
        if (cap > USAGE_KEEP_HOURS + 2)
            cap = USAGE_KEEP_HOURS + 2;
        if (cap <= e->nruns)
            cap = e->nruns + 1;
        e->runs = d8_xrealloc(e->runs, cap * sizeof(*e->runs));
        e->cap = cap;
    }
    usage__run_t *r = &e->runs[e->nruns++];
    memset(r, 0, sizeof(*r));
    return r;
}

static int same_q(const usage__run_t *a, const usage__run_t *b)
{
    for (int i = 0; i < Q__N; i++)
        if (a->q[i] != b->q[i])
            return 0;
    return 1;
}

/* The newest run ends its hour: merged into its predecessor when equal. */
static void close_last(usage__env_t *e)
{
    if (e->nruns >= 2 && same_q(&e->runs[e->nruns - 2], &e->runs[e->nruns - 1]))
        e->nruns--;
}

/* Drops the hours before the window of newest hour h (the old ring's slot
 * reuse): whole runs, leading gaps, and the head of a run crossing the
 * edge. Halves the capacity when a quarter of it is used. */
static void trim(usage__env_t *e, uint32_t h)
{
    uint32_t oldest = h >= USAGE_KEEP_HOURS - 1 ? h - (USAGE_KEEP_HOURS - 1) : 0, k = 0;
    while (k + 1 < e->nruns && (e->runs[k + 1].hour <= oldest || e->runs[k].q[Q_RUN] < 0))
        k++;
    if (k) {
        memmove(e->runs, e->runs + k, (e->nruns - k) * sizeof(*e->runs));
        e->nruns -= k;
    }
    if (e->nruns && e->runs[0].hour < oldest)
        e->runs[0].hour = oldest;
    if (e->cap > 8 && e->nruns < e->cap / 4) {
        e->cap /= 2;
        e->runs = d8_xrealloc(e->runs, e->cap * sizeof(*e->runs));
    }
}

usage__run_t *usage__open_hour(usage__env_t *e, uint32_t h)
{
    if (e->nruns) {
        uint32_t newest = e->runs[e->nruns - 1].hour;
        if (h <= newest)
            return NULL;
        close_last(e);
        if (h > newest + 1) {
            usage__run_t *gap = push_run(e);
            gap->hour = newest + 1;
            gap->q[Q_RUN] = -1;
            close_last(e);
        }
    }
    usage__run_t *r = push_run(e);
    r->hour = h;
    memset(e->open_q, 0, sizeof(e->open_q));
    trim(e, h);
    return &e->runs[e->nruns - 1];
}

size_t usage__env_bytes(const usage__env_t *e)
{
    return sizeof(*e) + (e->user_id ? strlen(e->user_id) + 1 : 0) + e->cap * sizeof(*e->runs);
}

/* The open run of `hour` (opened when newer than e's newest hour); NULL
 * when the hour is older than the open one (not kept, as the old ring's
 * slot holding a newer hour). */
static usage__run_t *bucket(usage__env_t *e, uint32_t hour)
{
    if (e->nruns && e->runs[e->nruns - 1].hour == hour)
        return &e->runs[e->nruns - 1];
    return usage__open_hour(e, hour);
}

static void count_metrics(usage_t *u, const usage__env_t *e, const double q[Q__N])
{
    if (!u->metrics)
        return;
    const char *region = e->region >= 0 ? u->region_names[e->region] : "unknown";
    const char *lbl[] = {region, u->currency};
    static const double scale[Q__N] = {1, 1, 1, 1.0 / 3600.0};
    for (int i = 0; i < Q__N; i++)
        if (q[i] > 0)
            metrics_add(u->m_q[i], lbl, q[i] * scale[i]);
    const usage_price_t *p = usage__price(u, e->region);
    if (p && usage__cost(p, q) > 0)
        metrics_add(u->m_cost, lbl, usage__cost(p, q));
}

/* Counts [t0, t1) with e's state, hour by hour, into buckets and totals. */
static void accrue(usage_t *u, usage__env_t *e, int64_t t0, int64_t t1)
{
    while (t0 < t1) {
        int64_t hour = t0 / HOUR_MS;
        int64_t end = (hour + 1) * HOUR_MS < t1 ? (hour + 1) * HOUR_MS : t1;
        double q[Q__N];
        rates(e, (double)(end - t0) / 1000.0, q);
        usage__run_t *b = bucket(e, (uint32_t)hour);
        for (int i = 0; i < Q__N; i++) {
            e->total[i] += q[i];
            if (b) {
                e->open_q[i] += q[i];
                b->q[i] = (float)e->open_q[i];
            }
        }
        count_metrics(u, e, q);
        t0 = end;
    }
}

/* Drops, once an hour, the records of deleted environments whose last
 * use left the window: memory stays bounded by the environments of the
 * last USAGE_KEEP_HOURS hours. */
static void prune(usage_t *u, int64_t now_ms)
{
    int64_t hour = now_ms / HOUR_MS;
    if (hour == u->pruned_hour)
        return;
    u->pruned_hour = hour;
    void **v;
    size_t n = usage__sorted(&u->envs, &v);
    for (size_t i = 0; i < n; i++) {
        usage__env_t *e = v[i];
        if (e->deleted && e->share_gb == 0 &&
            e->last_ms < now_ms - (int64_t)USAGE_KEEP_HOURS * HOUR_MS) {
            d8_map_del(&u->envs, e->id);
            usage__env_free(e);
        }
    }
    free(v);
}

int usage_observe(usage_t *u, const char *id, const char *user_id, int region, int64_t now_ms,
                  const usage_sample_t *s)
{
    prune(u, now_ms);
    usage__env_t *e = usage__env_new(u, id);
    /* A new record or new labels are worth saving even without a transition. */
    int relabel = e->since_ms == 0;
    if (user_id && (!e->user_id || strcmp(e->user_id, user_id) != 0)) {
        d8_set_str(&e->user_id, user_id);
        relabel = 1;
    }
    if (region >= 0 && (size_t)region < u->nregions && e->region != region) {
        e->region = region;
        relabel = 1;
    }
    if (e->since_ms == 0)
        e->since_ms = e->last_ms = now_ms;
    if (now_ms > e->last_ms) {
        accrue(u, e, e->last_ms, now_ms);
        e->last_ms = now_ms;
    }
    int running = s->running != 0;
    double cpu = running ? s->cpu_cores : 0, mem = running ? s->memory_gb : 0;
    int share = s->share_gb > 0 ? s->share_gb : 0;
    int changed = e->deleted || running != e->running || cpu != e->cpu || mem != e->mem ||
                  share != e->share_gb;
    e->running = running;
    e->cpu = cpu;
    e->mem = mem;
    e->share_gb = share;
    e->deleted = 0;
    if (changed || relabel)
        u->changes++;
    return changed;
}

void usage_deleted(usage_t *u, const char *id, int64_t now_ms)
{
    usage__env_t *e = usage__env(u, id);
    if (!e)
        return;
    if (now_ms > e->last_ms) {
        accrue(u, e, e->last_ms, now_ms);
        e->last_ms = now_ms;
    }
    e->running = 0;
    e->cpu = e->mem = 0;
    if (!d8_map_get(&u->retained, id))
        e->share_gb = 0;
    e->deleted = 1;
    u->changes++;
}

uint64_t usage_changes(const usage_t *u)
{
    return u->changes;
}

int usage_totals(const usage_t *u, const char *id, int64_t now_ms, usage_totals_t *out)
{
    const usage__env_t *e = usage__env(u, id);
    memset(out, 0, sizeof(*out));
    if (!e)
        return 0;
    double q[Q__N];
    rates(e, now_ms > e->last_ms ? (double)(now_ms - e->last_ms) / 1000.0 : 0, q);
    for (int i = 0; i < Q__N; i++)
        q[i] += e->total[i];
    out->running_seconds = q[Q_RUN];
    out->cpu_core_seconds = q[Q_CPU];
    out->memory_gb_seconds = q[Q_MEM];
    out->storage_gb_hours = q[Q_SHARE] / 3600.0;
    out->since_ms = e->since_ms;
    out->currency = u->currency;
    const usage_price_t *p = usage__price(u, e->region);
    if (p) {
        double hour[Q__N];
        rates(e, 3600.0, hour);
        out->priced = 1;
        out->estimated_cost = usage__cost(p, q);
        out->cost_per_hour = usage__cost(p, hour);
    }
    return 1;
}

/* The index of the run holding `hour`: the last run starting at or
 * before it (0 when none does). */
static uint32_t run_at(const usage__env_t *e, uint32_t hour)
{
    uint32_t lo = 0, hi = e->nruns;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e->runs[mid].hour <= hour)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

/* Adds to q what e used in [h0, h1) (ms): its runs' hours in that span,
 * hour by hour (the old ring's float sums, in the same order), and the
 * interval since its last observation, up to now. */
static void period(const usage__env_t *e, int64_t h0, int64_t h1, int64_t now, double q[Q__N])
{
    uint32_t newest = e->nruns ? e->runs[e->nruns - 1].hour : 0;
    uint32_t k = run_at(e, (uint32_t)(h0 / HOUR_MS));
    for (int64_t t = h0; t < h1 && k < e->nruns; t += HOUR_MS) {
        uint32_t hour = (uint32_t)(t / HOUR_MS);
        if (hour > newest)
            break;
        while (k + 1 < e->nruns && e->runs[k + 1].hour <= hour)
            k++;
        const usage__run_t *b = &e->runs[k];
        if (b->hour <= hour && b->q[Q_RUN] >= 0)
            for (int i = 0; i < Q__N; i++)
                q[i] += b->q[i];
    }
    int64_t a = e->last_ms > h0 ? e->last_ms : h0, z = now < h1 ? now : h1;
    if (z > a) {
        double p[Q__N];
        rates(e, (double)(z - a) / 1000.0, p);
        for (int i = 0; i < Q__N; i++)
            q[i] += p[i];
    }
}

static int64_t floor_to(int64_t t, int64_t step)
{
    return t >= 0 ? t / step * step : -((-t + step - 1) / step) * step;
}

/* The rows of one environment. */
static size_t env_rows(const usage_t *u, const usage__env_t *e, const usage_query_t *q,
                       void (*fn)(void *ud, const usage_row_t *row), void *ud)
{
    int64_t step = q->day ? 24 * HOUR_MS : HOUR_MS;
    int64_t oldest = floor_to(q->now_ms, HOUR_MS) - (int64_t)(USAGE_KEEP_HOURS - 1) * HOUR_MS;
    size_t n = 0;
    const usage_price_t *price = usage__price(u, e->region);
    for (int64_t p = floor_to(q->from_ms, step); p < q->to_ms; p += step) {
        if (p + step <= oldest || p >= q->now_ms)
            continue;
        double v[Q__N] = {0};
        period(e, p < oldest ? oldest : p, p + step, q->now_ms, v);
        if (v[Q_RUN] <= 0 && v[Q_SHARE] <= 0)
            continue;
        usage_row_t r = {.environment_id = e->id,
                         .user_id = e->user_id ? e->user_id : "",
                         .period_start_ms = p,
                         .period_end_ms = p + step,
                         .running_seconds = v[Q_RUN],
                         .cpu_core_seconds = v[Q_CPU],
                         .memory_gb_seconds = v[Q_MEM],
                         .storage_gb_hours = v[Q_SHARE] / 3600.0,
                         .priced = price != NULL,
                         .estimated_cost = price ? usage__cost(price, v) : 0,
                         .currency = u->currency};
        fn(ud, &r);
        n++;
    }
    return n;
}

size_t usage_query(const usage_t *u, const usage_query_t *q,
                   void (*fn)(void *ud, const usage_row_t *row), void *ud)
{
    void **v;
    size_t n = usage__sorted(&u->envs, &v), rows = 0;
    for (size_t i = 0; i < n; i++) {
        const usage__env_t *e = v[i];
        if (q->user_id && (!e->user_id || strcmp(e->user_id, q->user_id) != 0))
            continue;
        rows += env_rows(u, e, q, fn, ud);
    }
    free(v);
    return rows;
}
