/* Unit tests of pkg/metrics: the exact Prometheus text rendering of
 * counters, gauges and histograms, series per label values, clearing,
 * collectors, text sources and the process_* figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "metrics/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Renders m into a fresh string (owned by the caller). */
static char *render(metrics_t *m)
{
    d8_buf_t b;
    d8_buf_init(&b);
    metrics_render(m, &b);
    return d8_buf_detach(&b, NULL);
}

static void assert_render(metrics_t *m, const char *want)
{
    char *got = render(m);
    if (strcmp(got, want) != 0)
        print_error("got:\n%s\nwant:\n%s\n", got, want);
    assert_string_equal(got, want);
    free(got);
}

/* The value of the sample line that starts with `series ` in text. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;
    while (*p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    fail_msg("no sample %s", series);
    return 0;
}

static void test_counter_rendering(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metric_family_t *plain = metrics_counter(m, "d8_things_total", "Things done.", 0, NULL);
    static const char *const lbl[] = {"route", "code"};
    metric_family_t *req = metrics_counter(m, "d8_requests_total", "Requests.", 2, lbl);
    /* A family with no series yet renders its HELP and TYPE only. */
    assert_render(m, "# HELP d8_things_total Things done.\n"
                     "# TYPE d8_things_total counter\n"
                     "# HELP d8_requests_total Requests.\n"
                     "# TYPE d8_requests_total counter\n");
    metrics_add(plain, NULL, 1);
    metrics_add(plain, NULL, 2);
    const char *v1[] = {"/a", "200"};
    const char *v2[] = {"/b", "404"};
    metrics_add(req, v1, 1);
    metrics_add(req, v2, 0.5);
    metrics_add(req, v1, 1);
    assert_render(m, "# HELP d8_things_total Things done.\n"
                     "# TYPE d8_things_total counter\n"
                     "d8_things_total 3\n"
                     "# HELP d8_requests_total Requests.\n"
                     "# TYPE d8_requests_total counter\n"
                     "d8_requests_total{route=\"/a\",code=\"200\"} 2\n"
                     "d8_requests_total{route=\"/b\",code=\"404\"} 0.5\n");
    metrics_free(m);
    metrics_free(NULL);
}

static void test_series_per_label_values(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    static const char *const lbl[] = {"a", "b"};
    metric_family_t *f = metrics_counter(m, "c_total", "C.", 2, lbl);
    /* Label values are compared by content and copied. */
    char x[] = "x", y[] = "y";
    const char *v[] = {x, y};
    metrics_add(f, v, 1);
    x[0] = 'X';
    metrics_add(f, v, 10);
    const char *same[] = {"x", "y"};
    metrics_add(f, same, 100);
    /* ("x","y") and ("xy","") must not be one series. */
    const char *other[] = {"xy", ""};
    metrics_add(f, other, 1000);
    const char *nul[] = {NULL, "z"};
    metrics_add(f, nul, 5);
    assert_render(m, "# HELP c_total C.\n"
                     "# TYPE c_total counter\n"
                     "c_total{a=\"x\",b=\"y\"} 101\n"
                     "c_total{a=\"X\",b=\"y\"} 10\n"
                     "c_total{a=\"xy\",b=\"\"} 1000\n"
                     "c_total{a=\"\",b=\"z\"} 5\n");
    metrics_free(m);
}

static void test_label_escaping(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    static const char *const lbl[] = {"path"};
    metric_family_t *f = metrics_gauge(m, "g", "G.", 1, lbl);
    const char *v[] = {"a\"b\\c\nd'e\tf"};
    metrics_set(f, v, 1);
    assert_render(m, "# HELP g G.\n"
                     "# TYPE g gauge\n"
                     "g{path=\"a\\\"b\\\\c\\nd'e\tf\"} 1\n");
    metrics_free(m);
}

static void test_gauge_set_and_clear(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    static const char *const lbl[] = {"phase"};
    metric_family_t *f = metrics_gauge(m, "envs", "Envs.", 1, lbl);
    const char *run[] = {"Running"}, *stop[] = {"Stopped"};
    metrics_set(f, run, 5);
    metrics_set(f, stop, 2);
    metrics_set(f, run, 7); /* set overwrites */
    metrics_add(f, stop, -3);
    assert_render(m, "# HELP envs Envs.\n"
                     "# TYPE envs gauge\n"
                     "envs{phase=\"Running\"} 7\n"
                     "envs{phase=\"Stopped\"} -1\n");
    metrics_clear(f);
    assert_render(m, "# HELP envs Envs.\n"
                     "# TYPE envs gauge\n");
    metrics_set(f, stop, 1);
    assert_render(m, "# HELP envs Envs.\n"
                     "# TYPE envs gauge\n"
                     "envs{phase=\"Stopped\"} 1\n");
    metrics_clear(f);
    metrics_clear(f); /* twice is fine */
    metrics_free(m);
}

static void test_number_format(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    static const char *const lbl[] = {"k"};
    metric_family_t *f = metrics_gauge(m, "n", "N.", 1, lbl);
    const struct {
        const char *k;
        double v;
    } cases[] = {
        {"zero", 0},          {"int", 1234567},          {"big", 1e15},   {"neg", -42},
        {"frac", 0.25},       {"small", 1.5e-7},         {"huge", 1e300}, {"negbig", -1e19},
        {"pinf", INFINITY},   {"ninf", -INFINITY},       {"nan", NAN},    {"nnan", -NAN},
        {"third", 1.0 / 3.0}, {"epoch", 1795780800.123},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        const char *v[] = {cases[i].k};
        metrics_set(f, v, cases[i].v);
    }
    char *text = render(m);
    assert_non_null(strstr(text, "n{k=\"zero\"} 0\n"));
    assert_non_null(strstr(text, "n{k=\"int\"} 1234567\n"));
    assert_non_null(strstr(text, "n{k=\"big\"} 1000000000000000\n"));
    assert_non_null(strstr(text, "n{k=\"neg\"} -42\n"));
    assert_non_null(strstr(text, "n{k=\"frac\"} 0.25\n"));
    assert_non_null(strstr(text, "n{k=\"small\"} 1.5e-07\n"));
    assert_non_null(strstr(text, "n{k=\"huge\"} 1e+300\n"));
    assert_non_null(strstr(text, "n{k=\"negbig\"} -1e+19\n"));
    /* The exposition format's spellings of the special values (Go's
     * ParseFloat, which Prometheus uses, rejects "-nan"). */
    assert_non_null(strstr(text, "n{k=\"pinf\"} +Inf\n"));
    assert_non_null(strstr(text, "n{k=\"ninf\"} -Inf\n"));
    assert_non_null(strstr(text, "n{k=\"nan\"} NaN\n"));
    assert_non_null(strstr(text, "n{k=\"nnan\"} NaN\n"));
    /* Non-integers read back exactly (an epoch time with milliseconds
     * must not be rounded to tens of seconds). */
    assert_true(sample(text, "n{k=\"third\"}") == 1.0 / 3.0);
    assert_true(sample(text, "n{k=\"epoch\"}") == 1795780800.123);
    assert_non_null(strstr(text, "n{k=\"epoch\"} 1795780800.123\n"));
    free(text);
    metrics_free(m);
}

static void test_histogram_rendering(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    static const char *const lbl[] = {"route"};
    double buckets[] = {0.1, 1, 10};
    metric_family_t *h = metrics_histogram(m, "lat_seconds", "Latency.", 1, lbl, buckets, 3);
    buckets[0] = 99; /* copied at registration */
    const char *a[] = {"/a"}, *b[] = {"/b"};
    metrics_observe(h, a, 0.05);
    metrics_observe(h, a, 0.1); /* on the bound: counted in le="0.1" */
    metrics_observe(h, a, 5);
    metrics_observe(h, a, 100);
    metrics_observe(h, b, 1);
    assert_render(m, "# HELP lat_seconds Latency.\n"
                     "# TYPE lat_seconds histogram\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"0.1\"} 2\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"1\"} 2\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"10\"} 3\n"
                     "lat_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
                     "lat_seconds_sum{route=\"/a\"} 105.15\n"
                     "lat_seconds_count{route=\"/a\"} 4\n"
                     "lat_seconds_bucket{route=\"/b\",le=\"0.1\"} 0\n"
                     "lat_seconds_bucket{route=\"/b\",le=\"1\"} 1\n"
                     "lat_seconds_bucket{route=\"/b\",le=\"10\"} 1\n"
                     "lat_seconds_bucket{route=\"/b\",le=\"+Inf\"} 1\n"
                     "lat_seconds_sum{route=\"/b\"} 1\n"
                     "lat_seconds_count{route=\"/b\"} 1\n");
    metrics_free(m);
}

static void test_histogram_without_labels(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    const double buckets[] = {0.005, 0.5, 2.5};
    metric_family_t *h = metrics_histogram(m, "d", "D.", 0, NULL, buckets, 3);
    metric_family_t *none = metrics_histogram(m, "e", "E.", 0, NULL, NULL, 0);
    for (int i = 0; i < 10; i++)
        metrics_observe(h, NULL, 0.25);
    metrics_observe(h, NULL, 3);
    metrics_observe(none, NULL, 7);
    assert_render(m, "# HELP d D.\n"
                     "# TYPE d histogram\n"
                     "d_bucket{le=\"0.005\"} 0\n"
                     "d_bucket{le=\"0.5\"} 10\n"
                     "d_bucket{le=\"2.5\"} 10\n"
                     "d_bucket{le=\"+Inf\"} 11\n"
                     "d_sum 5.5\n"
                     "d_count 11\n"
                     "# HELP e E.\n"
                     "# TYPE e histogram\n"
                     "e_bucket{le=\"+Inf\"} 1\n"
                     "e_sum 7\n"
                     "e_count 1\n");
    metrics_free(m);
}

typedef struct {
    metric_family_t *g;
    int calls;
    double source;
} coll_t;

static void collect(void *ud)
{
    coll_t *c = ud;
    c->calls++;
    metrics_set(c->g, NULL, c->source);
}

static void text_source(void *ud, d8_buf_t *out)
{
    d8_buf_puts(out, (const char *)ud);
}

static void test_collectors_run_before_render(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    coll_t c1 = {metrics_gauge(m, "depth", "Depth.", 0, NULL), 0, 3};
    coll_t c2 = {metrics_gauge(m, "active", "Active.", 0, NULL), 0, 1};
    metrics_on_collect(m, collect, &c1);
    metrics_on_collect(m, collect, &c2);
    static char ext_a[] = "# TYPE ext_a counter\next_a 1\n";
    static char ext_b[] = "# TYPE ext_b gauge\next_b 2\n";
    metrics_on_render(m, text_source, ext_a);
    metrics_on_render(m, text_source, ext_b);
    assert_int_equal(c1.calls, 0);
    const char *want1 = "# HELP depth Depth.\n# TYPE depth gauge\ndepth 3\n"
                        "# HELP active Active.\n# TYPE active gauge\nactive 1\n"
                        "# TYPE ext_a counter\next_a 1\n"
                        "# TYPE ext_b gauge\next_b 2\n";
    assert_render(m, want1);
    assert_int_equal(c1.calls, 1);
    assert_int_equal(c2.calls, 1);
    c1.source = 9;
    char *text = render(m);
    assert_true(sample(text, "depth") == 9);
    assert_true(sample(text, "active") == 1);
    free(text);
    assert_int_equal(c1.calls, 2);
    assert_int_equal(c2.calls, 2);
    metrics_free(m);
}

static void test_process_metrics(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_process(m);
    int64_t now_s = d8_wall_ms() / 1000;
    char *text = render(m);
    assert_non_null(strstr(text, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(text, "# TYPE process_open_fds gauge\n"));
    assert_non_null(strstr(text, "# TYPE process_start_time_seconds gauge\n"));
    assert_non_null(strstr(text, "# HELP process_resident_memory_bytes "));

    double rss = sample(text, "process_resident_memory_bytes");
    assert_true(rss > 1024.0 * 1024.0); /* any process has > 1 MiB */
    assert_true(rss < 1024.0 * 1024.0 * 1024.0 * 1024.0);
    size_t direct = metrics_rss_bytes();
    assert_true(direct > 0);
    assert_true(rss > (double)direct / 2 && rss < (double)direct * 2);
    double cpu = sample(text, "process_cpu_seconds_total");
    assert_true(cpu >= 0 && cpu < 3600);
    double fds = sample(text, "process_open_fds");
    assert_true(fds >= 0 && fds < 100000);
    double start = sample(text, "process_start_time_seconds");
    assert_true(start > (double)now_s - 600 && start <= (double)now_s + 1);
    free(text);

    /* Opening descriptors shows in the next render. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    text = render(m);
    assert_true(sample(text, "process_open_fds") == fds + 2);
    /* The start time does not move. */
    assert_true(sample(text, "process_start_time_seconds") == start);
    free(text);
    close(p[0]);
    close(p[1]);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_rendering),
        cmocka_unit_test(test_series_per_label_values),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_gauge_set_and_clear),
        cmocka_unit_test(test_number_format),
        cmocka_unit_test(test_histogram_rendering),
        cmocka_unit_test(test_histogram_without_labels),
        cmocka_unit_test(test_collectors_run_before_render),
        cmocka_unit_test(test_process_metrics),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
