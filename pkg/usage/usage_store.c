/*
 * pkg/usage: the table of retained shares, the saved form of the
 * accountant (the "usage" member of the usage file, usage_file.h), and the
 * dev8_usage_* metrics.
 *
 * Saved format (one bucket per kept hour, expanded from the runs, in hour
 * order; the format of the ring before, so either loads in the other):
 *   {"envs":[{"id","userId","region","sinceMs","lastMs","running","cpu",
 *             "mem","shareGB","deleted","totals":[run,cpu,mem,shareGBs],
 *             "buckets":[[hour,run,cpu,mem,shareGBs],...],
 *             "open":[run,cpu,mem,shareGBs]}],   (the newest bucket's
 *             sums in double; absent from older files, then the bucket's)
 *    "retained":[{"id","userId","region","sizeGB","keepUntilMs"}]}
 * Regions are written by name (the configured order may change).
 */
#include "usage_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- retained shares ------------------------------------------------------ */

void usage_retained_set(usage_t *u, const char *id, const char *user_id, int region, int size_gb,
                        int64_t keep_until_ms)
{
    usage__ret_t *r = d8_map_get(&u->retained, id);
    if (!r) {
        r = d8_xcalloc(1, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", id);
        d8_map_put(&u->retained, r->id, r);
    }
    if (user_id)
        d8_set_str(&r->user_id, user_id);
    if (region >= 0 && (size_t)region < u->nregions)
        r->region = region;
    else if (!r->user_id)
        r->region = -1;
    r->size_gb = size_gb;
    r->keep_until_ms = keep_until_ms;
    u->changes++;
}

int usage_retained_drop(usage_t *u, const char *id, int64_t now_ms)
{
    usage__ret_t *r = d8_map_del(&u->retained, id);
    if (!r)
        return 0;
    usage__env_t *e = usage__env(u, id);
    if (e && e->deleted) {
        usage_deleted(u, id, now_ms);
        e->share_gb = 0;
    }
    free(r->user_id);
    free(r);
    u->changes++;
    return 1;
}

void usage_retained_each(const usage_t *u, void (*fn)(void *ud, const usage_retained_t *r),
                         void *ud)
{
    void **v;
    size_t n = usage__sorted(&u->retained, &v);
    for (size_t i = 0; i < n; i++) {
        const usage__ret_t *r = v[i];
        usage_retained_t x = {.environment_id = r->id,
                              .user_id = r->user_id ? r->user_id : "",
                              .region = r->region >= 0 ? u->region_names[r->region] : "",
                              .size_gb = r->size_gb,
                              .keep_until_ms = r->keep_until_ms};
        fn(ud, &x);
    }
    free(v);
}

/* ---- save ----------------------------------------------------------------- */

usage_t *usage_clone(const usage_t *u)
{
    usage_opts_t o = {.nregions = u->nregions,
                      .region_names = (const char *const *)u->region_names,
                      .prices = u->prices,
                      .currency = u->currency};
    usage_t *c = usage_new(&o);
    c->pruned_hour = u->pruned_hour;
    c->changes = u->changes;
    size_t it = 0;
    const usage__env_t *e;
    while ((e = d8_map_next(&u->envs, &it))) {
        usage__env_t *x = d8_xmalloc(sizeof(*x));
        *x = *e;
        x->user_id = e->user_id ? d8_xstrdup(e->user_id) : NULL;
        x->cap = e->nruns;
        x->runs = e->nruns ? d8_xmalloc(e->nruns * sizeof(*x->runs)) : NULL;
        if (e->nruns)
            memcpy(x->runs, e->runs, e->nruns * sizeof(*x->runs));
        d8_map_put(&c->envs, x->id, x);
    }
    it = 0;
    const usage__ret_t *r;
    while ((r = d8_map_next(&u->retained, &it))) {
        usage__ret_t *x = d8_xmalloc(sizeof(*x));
        *x = *r;
        x->user_id = r->user_id ? d8_xstrdup(r->user_id) : NULL;
        d8_map_put(&c->retained, x->id, x);
    }
    return c;
}

/* Appends one environment's record: a bucket per hour of its runs (gaps
 * are absent hours, hour 0 was the ring's empty slot). */
static void save_env(const usage_t *u, const usage__env_t *e, d8_buf_t *out)
{
    d8_buf_puts(out, "{\"id\":");
    d8_buf_json_str(out, e->id);
    d8_buf_puts(out, ",\"userId\":");
    d8_buf_json_str(out, e->user_id ? e->user_id : "");
    d8_buf_puts(out, ",\"region\":");
    d8_buf_json_str(out, e->region >= 0 ? u->region_names[e->region] : "");
    d8_buf_printf(out,
                  ",\"sinceMs\":%lld,\"lastMs\":%lld,\"running\":%s,\"cpu\":%.17g,\"mem\":%.17g,"
                  "\"shareGB\":%d,\"deleted\":%s,\"totals\":[%.17g,%.17g,%.17g,%.17g],"
                  "\"buckets\":[",
                  (long long)e->since_ms, (long long)e->last_ms, e->running ? "true" : "false",
                  e->cpu, e->mem, e->share_gb, e->deleted ? "true" : "false", e->total[0],
                  e->total[1], e->total[2], e->total[3]);
    int first = 1;
    for (uint32_t i = 0; i < e->nruns; i++) {
        const usage__run_t *b = &e->runs[i];
        uint32_t end = i + 1 < e->nruns ? e->runs[i + 1].hour : b->hour + 1;
        for (uint32_t h = b->hour ? b->hour : 1; h < end && b->q[Q_RUN] >= 0; h++) {
            d8_buf_printf(out, "%s[%u,%.9g,%.9g,%.9g,%.9g]", first ? "" : ",", h, (double)b->q[0],
                          (double)b->q[1], (double)b->q[2], (double)b->q[3]);
            first = 0;
        }
    }
    d8_buf_printf(out, "],\"open\":[%.17g,%.17g,%.17g,%.17g]}", e->open_q[0], e->open_q[1],
                  e->open_q[2], e->open_q[3]);
}

void usage_save(const usage_t *u, d8_buf_t *out)
{
    void **v;
    size_t n = usage__sorted(&u->envs, &v);
    d8_buf_puts(out, "{\"envs\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            d8_buf_putc(out, ',');
        save_env(u, v[i], out);
    }
    free(v);
    n = usage__sorted(&u->retained, &v);
    d8_buf_puts(out, "],\"retained\":[");
    for (size_t i = 0; i < n; i++) {
        const usage__ret_t *r = v[i];
        d8_buf_printf(out, "%s{\"id\":", i ? "," : "");
        d8_buf_json_str(out, r->id);
        d8_buf_puts(out, ",\"userId\":");
        d8_buf_json_str(out, r->user_id ? r->user_id : "");
        d8_buf_puts(out, ",\"region\":");
        d8_buf_json_str(out, r->region >= 0 ? u->region_names[r->region] : "");
        d8_buf_printf(out, ",\"sizeGB\":%d,\"keepUntilMs\":%lld}", r->size_gb,
                      (long long)r->keep_until_ms);
    }
    free(v);
    d8_buf_puts(out, "]}");
}

/* ---- load ----------------------------------------------------------------- */

static int num(const cJSON *o, const char *k, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return -1;
    *out = v->valuedouble;
    return 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static int cmp_hour(const void *a, const void *b)
{
    uint32_t x = ((const usage__run_t *)a)->hour, y = ((const usage__run_t *)b)->hour;
    return x < y ? -1 : x > y;
}

/* Reads the saved buckets into e's runs; 0, or -1 when malformed. They go
 * through a ring of USAGE_KEEP_HOURS slots first, as the ring kept them
 * (a later bucket of the same slot replaces), then into runs in hour
 * order. */
static int load_buckets(usage__env_t *e, const cJSON *arr)
{
    const cJSON *b;
    if (!cJSON_IsArray(arr))
        return -1;
    usage__run_t *ring = d8_xcalloc(USAGE_KEEP_HOURS, sizeof(*ring));
    int rc = 0;
    cJSON_ArrayForEach(b, arr)
    {
        const cJSON *hj =
            cJSON_IsArray(b) && cJSON_GetArraySize(b) == 1 + Q__N ? cJSON_GetArrayItem(b, 0) : NULL;
        double h = cJSON_IsNumber(hj) ? hj->valuedouble : 0;
        if (h < 1 || h > 4294967295.0 || h != floor(h)) {
            rc = -1;
            break;
        }
        usage__run_t *slot = &ring[(uint32_t)h % USAGE_KEEP_HOURS];
        slot->hour = (uint32_t)h;
        for (int i = 0; i < Q__N && rc == 0; i++) {
            const cJSON *x = cJSON_GetArrayItem(b, 1 + i);
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < 0)
                rc = -1;
            else
                slot->q[i] = (float)x->valuedouble;
        }
    }
    if (rc == 0) {
        qsort(ring, USAGE_KEEP_HOURS, sizeof(*ring), cmp_hour);
        for (size_t i = 0; i < USAGE_KEEP_HOURS; i++) {
            usage__run_t *r = ring[i].hour ? usage__open_hour(e, ring[i].hour) : NULL;
            for (int k = 0; r && k < Q__N; k++)
                e->open_q[k] = r->q[k] = ring[i].q[k];
        }
    }
    free(ring);
    return rc;
}

/* The open hour's sums saved in double ("open"), when they round to its
 * bucket; else (a file of the ring, or not matching) the bucket's floats. */
static void load_open(usage__env_t *e, const cJSON *arr)
{
    double v[Q__N];
    if (!e->nruns || !cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != Q__N)
        return;
    const usage__run_t *r = &e->runs[e->nruns - 1];
    for (int i = 0; i < Q__N; i++) {
        const cJSON *x = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || x->valuedouble < 0 ||
            (float)x->valuedouble != r->q[i])
            return;
        v[i] = x->valuedouble;
    }
    memcpy(e->open_q, v, sizeof(v));
}

/* One saved environment into a new record (NULL when malformed). */
static usage__env_t *load_env(const usage_t *u, const cJSON *j)
{
    const char *id = str(j, "id"), *user = str(j, "userId"), *region = str(j, "region");
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(j, "totals");
    double since, last, cpu, mem, share;
    if (!id || !spec_id_valid(id) || !user || !region || num(j, "sinceMs", 0, 1e15, &since) ||
        num(j, "lastMs", 0, 1e15, &last) || num(j, "cpu", 0, 1e6, &cpu) ||
        num(j, "mem", 0, 1e6, &mem) || num(j, "shareGB", 0, 1e7, &share) ||
        !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "running")) ||
        !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "deleted")) || !cJSON_IsArray(tot) ||
        cJSON_GetArraySize(tot) != Q__N)
        return NULL;
    usage__env_t *e = d8_xcalloc(1, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->user_id = user[0] ? d8_xstrdup(user) : NULL;
    e->region = usage__region_index(u, region);
    e->since_ms = (int64_t)since;
    e->last_ms = (int64_t)last;
    e->running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "running"));
    e->deleted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "deleted"));
    e->cpu = cpu;
    e->mem = mem;
    e->share_gb = (int)share;
    int ok = 1;
    for (int i = 0; i < Q__N; i++) {
        const cJSON *x = cJSON_GetArrayItem(tot, i);
        ok &= cJSON_IsNumber(x) && isfinite(x->valuedouble) && x->valuedouble >= 0;
        e->total[i] = ok ? x->valuedouble : 0;
    }
    if (!ok || load_buckets(e, cJSON_GetObjectItemCaseSensitive(j, "buckets")) != 0) {
        usage__env_free(e);
        return NULL;
    }
    load_open(e, cJSON_GetObjectItemCaseSensitive(j, "open"));
    return e;
}

static usage__ret_t *load_ret(const usage_t *u, const cJSON *j)
{
    const char *id = str(j, "id"), *user = str(j, "userId"), *region = str(j, "region");
    double gb, until;
    if (!id || !spec_id_valid(id) || !user || !region || num(j, "sizeGB", 0, 1e7, &gb) ||
        num(j, "keepUntilMs", 0, 1e15, &until))
        return NULL;
    usage__ret_t *r = d8_xcalloc(1, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->user_id = user[0] ? d8_xstrdup(user) : NULL;
    r->region = usage__region_index(u, region);
    r->size_gb = (int)gb;
    r->keep_until_ms = (int64_t)until;
    return r;
}

static void clear_maps(d8_map_t *envs, d8_map_t *ret)
{
    size_t it = 0;
    usage__env_t *e;
    while ((e = d8_map_next(envs, &it)))
        usage__env_free(e);
    d8_map_release(envs);
    it = 0;
    usage__ret_t *r;
    while ((r = d8_map_next(ret, &it))) {
        free(r->user_id);
        free(r);
    }
    d8_map_release(ret);
}

int usage_load(usage_t *u, const cJSON *v, char *err, size_t errlen)
{
    if (!v)
        return D8_OK;
    const cJSON *envs = cJSON_GetObjectItemCaseSensitive(v, "envs");
    const cJSON *ret = cJSON_GetObjectItemCaseSensitive(v, "retained");
    d8_map_t ne, nr;
    d8_map_init(&ne);
    d8_map_init(&nr);
    const char *bad = !cJSON_IsObject(v)     ? "usage: not an object"
                      : !cJSON_IsArray(envs) ? "usage.envs: missing or not an array"
                      : !cJSON_IsArray(ret)  ? "usage.retained: missing or not an array"
                                             : NULL;
    size_t i = 0;
    const cJSON *j;
    const cJSON *env_arr = bad ? NULL : envs, *ret_arr = bad ? NULL : ret;
    cJSON_ArrayForEach(j, env_arr)
    {
        usage__env_t *e = load_env(u, j);
        if (!e || d8_map_get(&ne, e->id)) {
            if (e)
                usage__env_free(e);
            snprintf(err, errlen, "usage.envs[%zu]: malformed or duplicate", i);
            clear_maps(&ne, &nr);
            return D8_EINVAL;
        }
        d8_map_put(&ne, e->id, e);
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(j, ret_arr)
    {
        usage__ret_t *r = load_ret(u, j);
        if (!r || d8_map_get(&nr, r->id)) {
            if (r) {
                free(r->user_id);
                free(r);
            }
            bad = "usage.retained: an entry is malformed or duplicate";
            break;
        }
        d8_map_put(&nr, r->id, r);
        i++;
    }
    if (bad) {
        snprintf(err, errlen, "%s", bad);
        clear_maps(&ne, &nr);
        return D8_EINVAL;
    }
    clear_maps(&u->envs, &u->retained);
    u->envs = ne;
    u->retained = nr;
    u->changes++;
    return D8_OK;
}

/* ---- metrics -------------------------------------------------------------- */

/* Metrics collector: the gauges from the current states. */
static void collect(void *ud)
{
    usage_t *u = ud;
    metrics_clear(u->m_running);
    metrics_clear(u->m_cost_hour);
    metrics_clear(u->m_retained);
    size_t it = 0;
    const usage__env_t *e;
    while ((e = d8_map_next(&u->envs, &it))) {
        const char *lbl[] = {e->region >= 0 ? u->region_names[e->region] : "unknown", u->currency};
        if (e->running)
            metrics_add(u->m_running, lbl, 1);
        const usage_price_t *p = usage__price(u, e->region);
        double q[Q__N];
        q[Q_RUN] = e->running ? 3600 : 0;
        q[Q_CPU] = e->cpu * q[Q_RUN];
        q[Q_MEM] = e->mem * q[Q_RUN];
        q[Q_SHARE] = (double)e->share_gb * 3600;
        if (p)
            metrics_add(u->m_cost_hour, lbl, usage__cost(p, q));
    }
    it = 0;
    const usage__ret_t *r;
    while ((r = d8_map_next(&u->retained, &it))) {
        const char *lbl[] = {r->region >= 0 ? u->region_names[r->region] : "unknown"};
        metrics_add(u->m_retained, lbl, 1);
    }
}

void usage__metrics(usage_t *u)
{
    static const char *const rc[] = {"region", "currency"};
    static const char *const r[] = {"region"};
    metrics_t *m = u->metrics;
    u->m_q[Q_RUN] = metrics_counter(m, "dev8_usage_running_seconds_total",
                                    "Seconds environments were observed running.", 2, rc);
    u->m_q[Q_CPU] = metrics_counter(m, "dev8_usage_cpu_core_seconds_total",
                                    "vCPU-seconds of running container groups.", 2, rc);
    u->m_q[Q_MEM] = metrics_counter(m, "dev8_usage_memory_gb_seconds_total",
                                    "GiB-seconds of memory of running container groups.", 2, rc);
    u->m_q[Q_SHARE] = metrics_counter(m, "dev8_usage_storage_gb_hours_total",
                                      "GiB-hours of file share quota.", 2, rc);
    u->m_cost = metrics_counter(m, "dev8_usage_estimated_cost_total",
                                "Estimated cost from the price table.", 2, rc);
    u->m_running = metrics_gauge(m, "dev8_usage_running_environments",
                                 "Environments observed running now.", 2, rc);
    u->m_cost_hour =
        metrics_gauge(m, "dev8_usage_estimated_cost_per_hour",
                      "Estimated cost per hour at the current sizes and power states.", 2, rc);
    u->m_retained = metrics_gauge(m, "dev8_usage_retained_shares",
                                  "File shares kept after deletion (storagePolicy Retain).", 1, r);
    metrics_on_collect(m, collect, u);
}
