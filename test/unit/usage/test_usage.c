/* Unit tests of pkg/usage: accounting from observations (start, resize,
 * stop, delete, share quota), hour buckets across boundaries, cost and
 * cost per hour, the usage rows (hour and day, user filter, the window),
 * retained shares and the saved form's round trip (usage_save/usage_load);
 * the hourly runs: merging, the window's edge across a run, a long
 * stopped environment in O(1) runs, the worst case bounded by the window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "usage/usage.h"
#include "usage/usage_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define H 3600000LL
/* 2025-12-01T00:00:00Z */
#define T0 1764547200000LL

static const char *const regions[] = {"eastus", "westeurope"};
static const usage_price_t prices[] = {
    {.set = 1, .vcpu_second = 0.0000113, .memory_gb_second = 0.0000012, .share_gb_month = 0.06},
    {.set = 0},
};

static usage_t *mk(void)
{
    usage_opts_t o = {.nregions = 2, .region_names = regions, .prices = prices, .currency = "USD"};
    return usage_new(&o);
}

static void obs(usage_t *u, const char *id, int64_t t, int running, double cpu, double mem, int gb)
{
    usage_sample_t s = {.running = running, .cpu_cores = cpu, .memory_gb = mem, .share_gb = gb};
    usage_observe(u, id, "user-1", 0, t, &s);
}

static void near(double a, double b, int line)
{
    if (fabs(a - b) > 1e-6 * (1 + fabs(b)))
        fail_msg("line %d: %.9g != %.9g", line, a, b);
}
#define NEAR(a, b) near((double)(a), (double)(b), __LINE__)

/* create (share only) -> run 2x4 for 1 h -> resize 4x8 for 30 min -> stop
 * 1 h -> delete: quantities and cost by hand. */
static void test_timeline(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0, 0, 0, 0, 20);                     /* share 20 GiB exists */
    obs(u, "e1", T0 + 60000, 1, 2, 4, 20);             /* seen running after 60 s */
    obs(u, "e1", T0 + 60000 + H, 1, 4, 8, 20);         /* resized */
    obs(u, "e1", T0 + 60000 + H + H / 2, 0, 0, 0, 20); /* stopped */
    usage_deleted(u, "e1", T0 + 60000 + 2 * H + H / 2);
    usage_totals_t t;
    assert_int_equal(usage_totals(u, "e1", T0 + 10 * H, &t), 1);
    NEAR(t.running_seconds, 5400);
    NEAR(t.cpu_core_seconds, 2 * 3600 + 4 * 1800);
    NEAR(t.memory_gb_seconds, 4 * 3600 + 8 * 1800);
    double span_h = (60000.0 + 2.5 * H) / H;
    NEAR(t.storage_gb_hours, 20 * span_h);
    double cost = 14400 * 0.0000113 + 28800 * 0.0000012 + 20 * span_h / 730.0 * 0.06;
    NEAR(t.estimated_cost, cost);
    assert_int_equal(t.priced, 1);
    assert_string_equal(t.currency, "USD");
    assert_true(t.since_ms == T0);
    NEAR(t.cost_per_hour, 0); /* deleted: nothing runs, no share */
    assert_int_equal(usage_totals(u, "nope", T0, &t), 0);
    usage_free(u);
}

/* Totals and cost per hour count the open interval up to now. */
static void test_open_interval(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 2, 4, 10);
    usage_totals_t t;
    usage_totals(u, "e1", T0 + 1000, &t);
    NEAR(t.running_seconds, 1);
    NEAR(t.cpu_core_seconds, 2);
    NEAR(t.cost_per_hour, 2 * 3600 * 0.0000113 + 4 * 3600 * 0.0000012 + 10 * 0.06 / 730.0);
    /* an unpriced region: quantities only */
    usage_sample_t s = {.running = 1, .cpu_cores = 1, .memory_gb = 1, .share_gb = 1};
    usage_observe(u, "e2", "u2", 1, T0, &s);
    usage_totals(u, "e2", T0 + H, &t);
    assert_int_equal(t.priced, 0);
    NEAR(t.running_seconds, 3600);
    usage_free(u);
}

typedef struct rows {
    int n;
    usage_row_t r[64];
} rows_t;

static void collect(void *ud, const usage_row_t *row)
{
    rows_t *rs = ud;
    if (rs->n < 64)
        rs->r[rs->n++] = *row;
}

/* A run across an hour boundary splits into two hour rows and one day row. */
static void test_rows(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0 + H / 2, 1, 1, 2, 0);
    assert_int_equal(
        usage_observe(u, "e1", NULL, -1, T0 + H + H / 4, &(usage_sample_t){.running = 0}), 1);
    rows_t rs = {0};
    usage_query_t q = {.from_ms = T0, .to_ms = T0 + 3 * H, .now_ms = T0 + 3 * H};
    assert_int_equal(usage_query(u, &q, collect, &rs), 2);
    assert_true(rs.r[0].period_start_ms == T0 && rs.r[0].period_end_ms == T0 + H);
    NEAR(rs.r[0].running_seconds, 1800);
    NEAR(rs.r[1].running_seconds, 900);
    NEAR(rs.r[1].memory_gb_seconds, 1800);
    assert_string_equal(rs.r[0].user_id, "user-1");
    NEAR(rs.r[0].estimated_cost, 1800 * 0.0000113 + 3600 * 0.0000012);
    memset(&rs, 0, sizeof(rs));
    q.day = 1;
    assert_int_equal(usage_query(u, &q, collect, &rs), 1);
    NEAR(rs.r[0].running_seconds, 2700);
    assert_true(rs.r[0].period_end_ms - rs.r[0].period_start_ms == 24 * H);
    /* user filter */
    memset(&rs, 0, sizeof(rs));
    q.user_id = "someone-else";
    assert_int_equal(usage_query(u, &q, collect, &rs), 0);
    /* the open interval of a running environment shows in the current hour */
    obs(u, "e2", T0 + 2 * H, 1, 1, 1, 0);
    memset(&rs, 0, sizeof(rs));
    usage_query_t q2 = {.from_ms = T0 + 2 * H, .to_ms = T0 + 3 * H, .now_ms = T0 + 2 * H + 600000};
    assert_int_equal(usage_query(u, &q2, collect, &rs), 1);
    assert_string_equal(rs.r[0].environment_id, "e2");
    NEAR(rs.r[0].running_seconds, 600);
    usage_free(u);
}

/* Hours older than the window are gone from rows; totals keep them. */
static void test_window(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 1, 1, 0);
    obs(u, "e1", T0 + H, 0, 0, 0, 0);
    int64_t later = T0 + (int64_t)(USAGE_KEEP_HOURS + 5) * H;
    obs(u, "e1", later, 1, 1, 1, 0);
    obs(u, "e1", later + H, 0, 0, 0, 0);
    rows_t rs = {0};
    usage_query_t q = {.from_ms = T0, .to_ms = later + 2 * H, .now_ms = later + 2 * H};
    assert_int_equal(usage_query(u, &q, collect, &rs), 1);
    assert_true(rs.r[0].period_start_ms == later);
    usage_totals_t t;
    usage_totals(u, "e1", later + 2 * H, &t);
    NEAR(t.running_seconds, 7200);
    /* a deleted record leaves once its last use left the window */
    usage_deleted(u, "e1", later + H);
    obs(u, "e9", later + (int64_t)(USAGE_KEEP_HOURS + 3) * H, 0, 0, 0, 1);
    assert_int_equal(usage_totals(u, "e1", later, &t), 0);
    usage_free(u);
}

/* observe says when the state changed, and usage_changes moves with what
 * the usage file must keep (not with time passing in a known state). */
static void test_transitions(void **state)
{
    (void)state;
    usage_t *u = mk();
    uint64_t c = usage_changes(u);
    usage_sample_t s = {.running = 1, .cpu_cores = 2, .memory_gb = 4, .share_gb = 20};
    assert_int_equal(usage_observe(u, "e1", "u", 0, T0, &s), 1);
    assert_true(usage_changes(u) > c);
    c = usage_changes(u);
    assert_int_equal(usage_observe(u, "e1", "u", 0, T0 + 1000, &s), 0);
    assert_true(usage_changes(u) == c);
    assert_int_equal(usage_observe(u, "e1", "u2", 0, T0 + 1100, &s), 0); /* new label */
    assert_true(usage_changes(u) > c);
    s.memory_gb = 8;
    assert_int_equal(usage_observe(u, "e1", "u", 0, T0 + 2000, &s), 1);
    /* an observation older than the last only updates the state */
    s.running = 0;
    assert_int_equal(usage_observe(u, "e1", "u", 0, T0 + 1500, &s), 1);
    usage_totals_t t;
    usage_totals(u, "e1", T0 + 2000, &t);
    NEAR(t.running_seconds, 2);
    /* A new record that shows nothing is still kept; so are deletions and
     * the retained table. */
    c = usage_changes(u);
    assert_int_equal(usage_observe(u, "e2", "u", 0, T0, &(usage_sample_t){0}), 0);
    assert_true(usage_changes(u) > c);
    c = usage_changes(u);
    usage_deleted(u, "e1", T0 + 3000);
    assert_true(usage_changes(u) > c);
    c = usage_changes(u);
    usage_retained_set(u, "e1", "u", 0, 20, T0 + H);
    assert_true(usage_changes(u) > c);
    c = usage_changes(u);
    assert_int_equal(usage_retained_drop(u, "e1", T0 + 4000), 1);
    assert_true(usage_changes(u) > c);
    c = usage_changes(u);
    assert_int_equal(usage_retained_drop(u, "e1", T0 + 4000), 0);
    assert_true(usage_changes(u) == c);
    usage_free(u);
}

static void ret_collect(void *ud, const usage_retained_t *r)
{
    int *n = ud;
    assert_string_equal(r->environment_id, *n == 0 ? "a1" : "b2");
    (*n)++;
}

/* The section round-trips; a malformed one changes nothing. */
static void test_persist(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 2, 4, 20);
    obs(u, "e1", T0 + H + 5000, 1, 2, 4, 20);
    usage_retained_set(u, "b2", "user-b", 1, 50, T0 + 30 * 24 * H);
    usage_retained_set(u, "a1", "user-a", 0, 10, T0 + 24 * H);
    d8_buf_t b;
    d8_buf_init(&b);
    usage_save(u, &b);
    usage_t *v = mk();
    cJSON *j = cJSON_Parse(b.data);
    char err[200];
    assert_int_equal(usage_load(v, j, err, sizeof(err)), 0);
    usage_totals_t a, c;
    usage_totals(u, "e1", T0 + 2 * H, &a);
    usage_totals(v, "e1", T0 + 2 * H, &c);
    NEAR(c.running_seconds, a.running_seconds);
    NEAR(c.estimated_cost, a.estimated_cost);
    assert_true(c.since_ms == T0);
    rows_t r1 = {0}, r2 = {0};
    usage_query_t q = {.from_ms = T0, .to_ms = T0 + 3 * H, .now_ms = T0 + 2 * H};
    usage_query(u, &q, collect, &r1);
    usage_query(v, &q, collect, &r2);
    assert_int_equal(r1.n, r2.n);
    for (int i = 0; i < r1.n; i++)
        NEAR(r1.r[i].cpu_core_seconds, r2.r[i].cpu_core_seconds);
    int n = 0;
    usage_retained_each(v, ret_collect, &n);
    assert_int_equal(n, 2);
    assert_int_equal(usage_retained_drop(v, "a1", T0), 1);
    assert_int_equal(usage_retained_drop(v, "a1", T0), 0);
    /* malformed: nothing changes */
    cJSON_ReplaceItemInObject(j, "envs", cJSON_CreateString("x"));
    assert_int_equal(usage_load(v, j, err, sizeof(err)), D8_EINVAL);
    assert_non_null(strstr(err, "usage.envs"));
    assert_int_equal(usage_totals(v, "e1", T0, &c), 1);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"envs\":[{\"id\":\"BAD ID\"}],\"retained\":[]}");
    assert_int_equal(usage_load(v, j, err, sizeof(err)), D8_EINVAL);
    assert_int_equal(usage_totals(v, "e1", T0, &c), 1);
    cJSON_Delete(j);
    d8_buf_release(&b);
    usage_free(u);
    usage_free(v);
}

/* usage_clone: the same saved form and changes count, and nothing shared
 * (the usage file formats the copy on another thread). */
static void test_clone(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 2, 4, 20);
    obs(u, "e1", T0 + H + 5000, 1, 2, 4, 20);
    usage_retained_set(u, "b2", "user-b", 1, 50, T0 + 30 * 24 * H);
    usage_t *c = usage_clone(u);
    d8_buf_t a, b;
    d8_buf_init(&a);
    d8_buf_init(&b);
    usage_save(u, &a);
    usage_save(c, &b);
    assert_string_equal(a.data, b.data);
    assert_true(usage_changes(c) == usage_changes(u));
    obs(u, "e1", T0 + 2 * H, 0, 0, 0, 20);
    usage_retained_drop(u, "b2", T0 + 2 * H);
    usage_free(u); /* the copy owns its own memory */
    d8_buf_release(&b);
    d8_buf_init(&b);
    usage_save(c, &b);
    assert_string_equal(a.data, b.data);
    usage_totals_t t;
    assert_int_equal(usage_totals(c, "e1", T0 + H + 5000, &t), 1);
    NEAR(t.cpu_core_seconds, 2 * 3605.0);
    d8_buf_release(&a);
    d8_buf_release(&b);
    usage_free(c);
}

/* A retained share keeps counting after its environment is deleted, until
 * it is dropped (adopted or reaped); a deleted one without retention stops. */
static void test_retained_share_counts(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "r1", T0, 0, 0, 0, 10);
    obs(u, "d1", T0, 0, 0, 0, 10);
    usage_retained_set(u, "r1", "user-1", 0, 10, T0 + 24 * H);
    usage_deleted(u, "r1", T0 + H);
    usage_deleted(u, "d1", T0 + H);
    usage_totals_t t;
    usage_totals(u, "r1", T0 + 3 * H, &t);
    NEAR(t.storage_gb_hours, 30);
    usage_totals(u, "d1", T0 + 3 * H, &t);
    NEAR(t.storage_gb_hours, 10);
    assert_int_equal(usage_retained_drop(u, "r1", T0 + 4 * H), 1);
    usage_totals(u, "r1", T0 + 9 * H, &t);
    NEAR(t.storage_gb_hours, 40);
    rows_t rs = {0};
    usage_query_t q = {.from_ms = T0, .to_ms = T0 + 10 * H, .now_ms = T0 + 10 * H};
    usage_query(u, &q, collect, &rs);
    double sum = 0;
    for (int i = 0; i < rs.n; i++)
        if (strcmp(rs.r[i].environment_id, "r1") == 0)
            sum += rs.r[i].storage_gb_hours;
    NEAR(sum, 40);
    usage_free(u);
}

/* Sums of the hour rows of one environment. */
typedef struct sums {
    const char *id;
    int n;
    double run, cpu, gbh;
} sums_t;

static void sum_rows(void *ud, const usage_row_t *row)
{
    sums_t *s = ud;
    if (strcmp(row->environment_id, s->id) != 0)
        return;
    s->n++;
    s->run += row->running_seconds;
    s->cpu += row->cpu_core_seconds;
    s->gbh += row->storage_gb_hours;
}

/* Equal hours merge once the newest one closes; the open hour is its own
 * run; a different hour starts a run. */
static void test_runs_merge(void **state)
{
    (void)state;
    usage_t *u = mk();
    uint32_t h0 = (uint32_t)(T0 / H);
    obs(u, "e1", T0, 1, 1, 2, 0);
    obs(u, "e1", T0 + 3 * H, 0, 0, 0, 0);
    obs(u, "e1", T0 + 5 * H, 0, 0, 0, 0);
    const usage__env_t *e = usage__env(u, "e1");
    assert_int_equal(e->nruns, 3); /* 3 running hours, hour 3, open hour 4 */
    assert_int_equal(e->runs[0].hour, h0);
    assert_true(e->runs[0].q[Q_RUN] == 3600 && e->runs[0].q[Q_MEM] == 7200);
    assert_int_equal(e->runs[1].hour, h0 + 3);
    assert_int_equal(e->runs[2].hour, h0 + 4);
    obs(u, "e1", T0 + 6 * H + 1, 0, 0, 0, 0);
    assert_int_equal(e->nruns, 3); /* hour 4 and 5 merged into hour 3's run */
    assert_int_equal(e->runs[1].hour, h0 + 3);
    assert_int_equal(e->runs[2].hour, h0 + 6);
    /* half an hour running: its own run, between equal neighbours */
    obs(u, "e1", T0 + 7 * H + H / 2, 1, 1, 2, 0);
    obs(u, "e1", T0 + 8 * H, 0, 0, 0, 0);
    obs(u, "e1", T0 + 10 * H, 0, 0, 0, 0);
    assert_int_equal(e->nruns, 5);
    assert_int_equal(e->runs[2].hour, h0 + 7);
    assert_true(e->runs[2].q[Q_RUN] == 1800);
    sums_t s = {.id = "e1"};
    usage_query_t q = {.from_ms = T0, .to_ms = T0 + 10 * H, .now_ms = T0 + 10 * H};
    usage_query(u, &q, sum_rows, &s);
    assert_int_equal(s.n, 4);
    assert_true(s.run == 3 * 3600 + 1800 && s.cpu == 3 * 3600 + 1800);
    usage_free(u);
}

/* 60 days stopped with a share, observed at irregular times: a run or
 * two, the same bytes on day 2 and day 60; the window's edge cuts the run (839 full hours before
 * now). */
static void test_runs_stopped_is_constant(void **state)
{
    (void)state;
    usage_t *u = mk();
    size_t day2 = 0;
    for (int64_t t = T0; t <= T0 + 60 * 24 * H; t += 5 * 60000) {
        /* observed 0..29 s late: the hours' float sums are still equal */
        obs(u, "e1", t == T0 ? t : t + (t / 7) % 29000, 0, 0, 0, 10);
        const usage__env_t *e = usage__env(u, "e1");
        assert_true(e->nruns <= 2);
        if (t == T0 + 2 * 24 * H)
            day2 = usage__env_bytes(e);
    }
    const usage__env_t *e = usage__env(u, "e1");
    assert_true(day2 > 0 && usage__env_bytes(e) == day2);
    uint32_t newest = e->runs[e->nruns - 1].hour;
    assert_int_equal(e->runs[0].hour, newest - (USAGE_KEEP_HOURS - 1));
    int64_t now = T0 + 60 * 24 * H;
    sums_t s = {.id = "e1"};
    usage_query_t q = {.from_ms = T0, .to_ms = now, .now_ms = now};
    usage_query(u, &q, sum_rows, &s);
    assert_int_equal(s.n, USAGE_KEEP_HOURS - 1);
    assert_true(s.gbh == 10.0 * (USAGE_KEEP_HOURS - 1));
    usage_free(u);
}

/* A run crossing the window's edge keeps its tail: 40 days running, then
 * stopped; rows start at the window's first hour. */
static void test_window_trims_a_run(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 2, 4, 0);
    int64_t stop = T0 + 40 * 24 * H, now = stop + 10 * H;
    obs(u, "e1", stop, 0, 0, 0, 0);
    obs(u, "e1", now, 0, 0, 0, 0);
    const usage__env_t *e = usage__env(u, "e1");
    assert_int_equal(e->nruns, 3);
    uint32_t oldest = (uint32_t)(now / H) - 1 - (USAGE_KEEP_HOURS - 1);
    assert_int_equal(e->runs[0].hour, oldest);
    sums_t s = {.id = "e1"};
    usage_query_t q = {.from_ms = T0, .to_ms = now, .now_ms = now};
    usage_query(u, &q, sum_rows, &s);
    /* window: floor(now) - 839 h .. now: 829 running hours are in it */
    assert_int_equal(s.n, USAGE_KEEP_HOURS - 11);
    assert_true(s.run == 3600.0 * (USAGE_KEEP_HOURS - 11) && s.cpu == 2 * s.run);
    usage_free(u);
}

/* A deleted environment stays, its runs with it, until its last use left
 * the window; then the hourly prune drops it. */
static void test_deleted_expiry(void **state)
{
    (void)state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 1, 1, 0);
    usage_deleted(u, "e1", T0 + 2 * H);
    int64_t gone = T0 + 2 * H + (int64_t)USAGE_KEEP_HOURS * H;
    obs(u, "e2", gone - H, 0, 0, 0, 1);
    usage_totals_t t;
    assert_int_equal(usage_totals(u, "e1", gone - H, &t), 1);
    sums_t s = {.id = "e1"};
    usage_query_t q = {.from_ms = T0, .to_ms = gone, .now_ms = gone - 2 * H};
    usage_query(u, &q, sum_rows, &s);
    assert_int_equal(s.n, 1); /* the second hour; the first left the window */
    assert_true(s.run == 3600);
    obs(u, "e2", gone + H, 0, 0, 0, 1);
    assert_int_equal(usage_totals(u, "e1", gone + H, &t), 0);
    usage_free(u);
}

/* Worst case: every hour different (a resize each hour, or a toggle at a
 * different minute each hour): one run an hour, bounded by the window as
 * the old ring was; a toggle every 10 minutes repeats each hour: O(1). */
static void test_runs_worst_case(void **state)
{
    (void)state;
    usage_t *u = mk();
    for (int64_t h = 0; h < 40 * 24; h++) {
        obs(u, "w", T0 + h * H, 1, 0.5 * (double)(1 + h % 7), 1, 0);
        obs(u, "w", T0 + h * H + (h % 50 + 1) * 60000, 0, 0, 0, 0);
        for (int m = 0; m < 6; m++)
            obs(u, "t", T0 + h * H + m * 600000, m % 2 == 0, 2, 4, 20);
    }
    const usage__env_t *w = usage__env(u, "w"), *t = usage__env(u, "t");
    assert_true(w->nruns >= USAGE_KEEP_HOURS - 1 && w->nruns <= USAGE_KEEP_HOURS + 2);
    assert_true(w->cap <= USAGE_KEEP_HOURS + 2);
    assert_true(usage__env_bytes(w) <= sizeof(*w) + 7 + (USAGE_KEEP_HOURS + 2) * 20);
    assert_true(t->nruns <= 3);
    usage_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeline),
        cmocka_unit_test(test_open_interval),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_persist),
        cmocka_unit_test(test_clone),
        cmocka_unit_test(test_retained_share_counts),
        cmocka_unit_test(test_runs_merge),
        cmocka_unit_test(test_runs_stopped_is_constant),
        cmocka_unit_test(test_window_trims_a_run),
        cmocka_unit_test(test_deleted_expiry),
        cmocka_unit_test(test_runs_worst_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
