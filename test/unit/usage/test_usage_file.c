/* Unit tests of pkg/usage's usage file on a real libuv loop and a temp
 * directory: the periodic write only when usage changed, the round trip,
 * the final write of usage_file_free (also behind a write in flight), the
 * synchronous start-up write, damaged files refused with the file named,
 * write errors counted and retried at the next tick, stale temp files;
 * a file written by the ring of 840 buckets (main at bc59796) loads into
 * the runs with the same rows and totals, and saves back to the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/atomicfile.h"
#include "base/base.h"
#include "metrics/metrics.h"
#include "usage/usage.h"
#include "usage/usage_file.h"
#include "usage/usage_int.h"
#include "helpers/loop_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define H 3600000LL
/* 2025-12-01T00:00:00Z */
#define T0 1764547200000LL
#define TICK_MS 20

static const char *const regions[] = {"eastus", "westeurope"};

static int setup(void **state)
{
    return loop_dir_setup(state, "d8-usagefile", "state.json.usage");
}

static int teardown(void **state)
{
    return loop_dir_teardown(state);
}

static usage_t *mk(void)
{
    usage_opts_t o = {.nregions = 2, .region_names = regions, .currency = "USD"};
    return usage_new(&o);
}

static void obs(usage_t *u, const char *id, int64_t t, int running, double cpu)
{
    usage_sample_t s = {.running = running, .cpu_cores = cpu, .memory_gb = 2, .share_gb = 10};
    usage_observe(u, id, "user-1", 0, t, &s);
}

static usage_file_t *mk_file(fx_t *fx, const char *path, usage_t *u, metrics_t *m)
{
    usage_file_opts_t o = {
        .loop = &fx->loop, .path = path, .usage = u, .metrics = m, .interval_ms = TICK_MS};
    return usage_file_new(&o);
}

/* Runs the loop for about ms milliseconds (the file's timer repeats). */
static void run_for(fx_t *fx, uint64_t ms)
{
    uint64_t end = uv_now(&fx->loop) + ms;
    while (uv_now(&fx->loop) < end) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(2000);
        uv_update_time(&fx->loop);
    }
}

/* Runs the loop until writes + errors reach n (5 s at most). */
static void run_until(fx_t *fx, const usage_file_t *uf, uint64_t n)
{
    for (int i = 0; i < 2500 && usage_file__writes(uf) + usage_file__errors(uf) < n; i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_true(usage_file__writes(uf) + usage_file__errors(uf) >= n);
}

/* Loads path into a new accountant; returns the load's code. */
static int load_into(fx_t *fx, const char *path, usage_t **out, char *err, size_t errlen)
{
    usage_t *u = mk();
    usage_file_t *uf = mk_file(fx, path, u, NULL);
    int rc = usage_file_load(uf, err, errlen);
    usage_file_free(uf); /* nothing changed since the load: nothing written */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    *out = u;
    return rc;
}

static double cpu_of(const usage_t *u, const char *id, int64_t now)
{
    usage_totals_t t;
    assert_int_equal(usage_totals(u, id, now, &t), 1);
    return t.cpu_core_seconds;
}

static void count_retained(void *ud, const usage_retained_t *r)
{
    assert_string_equal(r->environment_id, "r1");
    assert_string_equal(r->region, "westeurope");
    (*(int *)ud)++;
}

/* Written at the tick after a change, not again while nothing changes;
 * the file round-trips; usage_file_free writes the last change. */
static void test_periodic_write_and_round_trip(void **state)
{
    fx_t *fx = *state;
    metrics_t *m = metrics_new();
    usage_t *u = mk();
    usage_file_t *uf = mk_file(fx, fx->path, u, m);
    char err[256];
    assert_int_equal(usage_file_load(uf, err, sizeof(err)), D8_ENOENT);
    usage_file_start(uf);
    run_for(fx, 3 * TICK_MS);
    assert_int_equal(usage_file__writes(uf), 0); /* nothing to keep yet */
    obs(u, "e1", T0, 1, 2);
    obs(u, "e1", T0 + H, 1, 2);
    usage_retained_set(u, "r1", "user-r", 1, 7, T0 + 24 * H);
    run_until(fx, uf, 1);
    run_for(fx, 4 * TICK_MS);
    assert_int_equal(usage_file__writes(uf), 1); /* unchanged since */
    assert_int_equal(usage_file__errors(uf), 0);
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    size_t len;
    char *bytes = slurp(fx->path, &len);
    assert_non_null(strstr(bytes, "{\"version\":1,\"writtenAtMs\":"));
    assert_non_null(strstr(bytes, "\"checksum\":\"sha256:"));
    free(bytes);
    d8_buf_t text;
    d8_buf_init(&text);
    metrics_render(m, &text);
    assert_non_null(strstr(text.data, "\ndev8_usagefile_writes_total 1\n"));
    assert_null(strstr(text.data, "\ndev8_usagefile_write_errors_total 1"));
    d8_buf_release(&text);

    /* A transition after the last tick: usage_file_free writes it. */
    obs(u, "e1", T0 + 2 * H, 1, 4);
    usage_file_free(uf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    usage_t *back;
    assert_int_equal(load_into(fx, fx->path, &back, err, sizeof(err)), D8_OK);
    assert_true(cpu_of(back, "e1", T0 + 3 * H) == cpu_of(u, "e1", T0 + 3 * H));
    int n = 0;
    usage_retained_each(back, count_retained, &n);
    assert_int_equal(n, 1);
    usage_free(back);
    usage_free(u);
    metrics_free(m);
}

/* usage_file_free while a write is in flight: the change made meanwhile
 * is written after it, and the memory goes once both ended. */
static void test_free_behind_a_write_in_flight(void **state)
{
    fx_t *fx = *state;
    usage_t *u = mk();
    usage_file_t *uf = mk_file(fx, fx->path, u, NULL);
    usage_file_start(uf);
    obs(u, "e1", T0, 1, 2);
    /* Until the tick has started a write (it is then in flight). */
    for (int i = 0; i < 2500 && !usage_file__writing(uf); i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    assert_true(usage_file__writing(uf));
    obs(u, "e1", T0 + H, 1, 8);
    usage_file_free(uf);
    usage_free(u); /* serialised by usage_file_free: not needed any more */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    usage_t *back;
    char err[256];
    assert_int_equal(load_into(fx, fx->path, &back, err, sizeof(err)), D8_OK);
    assert_true(cpu_of(back, "e1", T0 + H) == 2 * 3600.0);
    usage_totals_t t;
    usage_totals(back, "e1", T0 + 2 * H, &t);
    assert_true(t.cpu_core_seconds == 2 * 3600.0 + 8 * 3600.0); /* the state after it */
    usage_free(back);
}

/* The synchronous start-up write (the migration of an old state file's
 * section): atomic, and the periodic writer then has nothing to do. */
static void test_write_now(void **state)
{
    fx_t *fx = *state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 2);
    usage_file_t *uf = mk_file(fx, fx->path, u, NULL);
    char err[256];
    assert_int_equal(usage_file_write_now(uf, err, sizeof(err)), D8_OK);
    usage_file_start(uf);
    run_for(fx, 3 * TICK_MS);
    assert_int_equal(usage_file__writes(uf), 0);
    usage_file_free(uf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    usage_t *back;
    assert_int_equal(load_into(fx, fx->path, &back, err, sizeof(err)), D8_OK);
    assert_true(cpu_of(back, "e1", T0 + H) == 2 * 3600.0);
    usage_free(back);

    char bad[256];
    snprintf(bad, sizeof(bad), "%s/missing/state.json.usage", fx->dir);
    uf = mk_file(fx, bad, u, NULL);
    assert_int_equal(usage_file_write_now(uf, err, sizeof(err)), D8_EIO);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, "open temp file"));
    usage_file_free(uf); /* nothing changed since usage_file_new: nothing to write */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    usage_free(u);
}

/* A damaged or foreign file is refused with the file named, and the
 * accountant is untouched; a missing one is D8_ENOENT. */
static void test_damaged_files_are_refused(void **state)
{
    fx_t *fx = *state;
    usage_t *u = mk();
    obs(u, "e1", T0, 1, 2);
    usage_file_t *uf = mk_file(fx, fx->path, u, NULL);
    char err[256];
    assert_int_equal(usage_file_write_now(uf, err, sizeof(err)), D8_OK);
    usage_file_free(uf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    usage_free(u);
    size_t len;
    char *good = slurp(fx->path, &len);

    static const struct {
        const char *what;
        int rc;
        const char *msg;
    } cases[] = {
        {"flip", D8_EPARSE, "damaged"},    {"truncate", D8_EPARSE, "damaged"},
        {"empty", D8_EPARSE, "damaged"},   {"version", D8_EINVAL, "version: not 1"},
        {"envs", D8_EINVAL, "usage.envs"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *b = d8_xstrdup(good);
        size_t n = len;
        if (strcmp(cases[i].what, "flip") == 0) {
            b[len / 2] ^= 1;
        } else if (strcmp(cases[i].what, "truncate") == 0) {
            n = len - 10;
        } else if (strcmp(cases[i].what, "empty") == 0) {
            n = 0;
        } else {
            /* Valid checksum over a wrong document. */
            const char *doc = strcmp(cases[i].what, "version") == 0
                                  ? "{\"version\":2,\"usage\":{\"envs\":[],\"retained\":[]}"
                                  : "{\"version\":1,\"usage\":{\"envs\":[{}],\"retained\":[]}";
            d8_buf_t d;
            d8_buf_init(&d);
            d8_buf_puts(&d, doc);
            char sum[80];
            atomicfile_checksum(d.data, d.len, sum);
            d8_buf_printf(&d, ",\"checksum\":\"%s\"}\n", sum);
            free(b);
            b = d8_buf_detach(&d, &n);
        }
        spit(fx->path, b, n);
        free(b);
        usage_t *back;
        err[0] = '\0';
        int rc = load_into(fx, fx->path, &back, err, sizeof(err));
        if (rc != cases[i].rc || !strstr(err, cases[i].msg) || !strstr(err, fx->path))
            fail_msg("%s: %d %s", cases[i].what, rc, err);
        usage_totals_t t;
        assert_int_equal(usage_totals(back, "e1", T0, &t), 0); /* untouched */
        assert_int_equal(usage_changes(back), 0);
        usage_free(back);
    }
    free(good);
    remove(fx->path);
    usage_t *back;
    assert_int_equal(load_into(fx, fx->path, &back, err, sizeof(err)), D8_ENOENT);
    usage_free(back);
}

/* A failed write is logged and counted, never fatal, and retried at the
 * next tick; the next one that succeeds writes everything. A temp file a
 * killed write left is removed at load. */
static void test_write_error_is_counted_and_retried(void **state)
{
    fx_t *fx = *state;
    char sub[128], path[200];
    snprintf(sub, sizeof(sub), "%s/later", fx->dir);
    snprintf(path, sizeof(path), "%s/state.json.usage", sub);
    metrics_t *m = metrics_new();
    usage_t *u = mk();
    usage_file_t *uf = mk_file(fx, path, u, m);
    usage_file_start(uf);
    obs(u, "e1", T0, 1, 2);
    run_until(fx, uf, 2);
    assert_int_equal(usage_file__writes(uf), 0);
    assert_true(usage_file__errors(uf) >= 2);
    d8_buf_t text;
    d8_buf_init(&text);
    metrics_render(m, &text);
    assert_non_null(strstr(text.data, "\ndev8_usagefile_write_errors_total "));
    d8_buf_release(&text);
    assert_int_equal(mkdir(sub, 0700), 0);
    run_until(fx, uf, usage_file__errors(uf) + 1);
    for (int i = 0; i < 2500 && usage_file__writes(uf) == 0; i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    assert_int_equal(usage_file__writes(uf), 1);
    usage_file_free(uf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);

    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.tmp.12345", path);
    spit(tmp, "{\"torn", 6);
    usage_t *back;
    char err[256];
    assert_int_equal(load_into(fx, path, &back, err, sizeof(err)), D8_OK);
    assert_true(cpu_of(back, "e1", T0 + H) == 2 * 3600.0);
    assert_int_equal(access(tmp, F_OK), -1);
    usage_free(back);
    usage_free(u);
    metrics_free(m);
}

/* Rows and totals of one environment of the fixture. */
typedef struct env_sums {
    const char *id;
    int n;
    double run, cpu, mem, gbh;
} env_sums_t;

static void sum_env(void *ud, const usage_row_t *r)
{
    env_sums_t *s = ud;
    if (strcmp(r->environment_id, s->id) != 0)
        return;
    s->n++;
    s->run += r->running_seconds;
    s->cpu += r->cpu_core_seconds;
    s->mem += r->memory_gb_seconds;
    s->gbh += r->storage_gb_hours;
}

#define FIXTURE_NOW 1767657600000LL

/* The fixture's rows as main (the ring) answered them: 36 days of
 * "stopped" (10 GiB share), "daily" (2 cores 09:30-17:30, 20 GiB) and
 * "gone" (5 h, deleted), at FIXTURE_NOW. */
static void check_fixture_rows(const usage_t *u)
{
    static const struct {
        const char *id;
        int day, n;
        double run, cpu, mem, gbh;
    } want[] = {
        {"stopped", 0, 839, 0, 0, 0, 8390},
        {"daily", 0, 839, 1008000, 2016000, 2016000, 16780},
        {"gone", 0, 6, 21600, 23399.9384765625, 43200, 0},
        {"stopped", 1, 35, 0, 0, 0, 8390},
        {"daily", 1, 35, 1008000, 2016000, 2016000, 16780},
        {"gone", 1, 1, 21600, 23399.9384765625, 43200, 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        env_sums_t s = {.id = want[i].id};
        usage_query_t q = {.from_ms = FIXTURE_NOW - 36 * 24 * H,
                           .to_ms = FIXTURE_NOW,
                           .day = want[i].day,
                           .now_ms = FIXTURE_NOW};
        usage_query(u, &q, sum_env, &s);
        assert_int_equal(s.n, want[i].n);
        assert_true(s.run == want[i].run && s.cpu == want[i].cpu);
        assert_true(s.mem == want[i].mem && s.gbh == want[i].gbh);
    }
    usage_totals_t t;
    assert_int_equal(usage_totals(u, "daily", FIXTURE_NOW, &t), 1);
    assert_true(t.running_seconds == 1036800 && t.storage_gb_hours == 17090);
}

/* A usage file written by main's ring (buckets in slot order, wrapped)
 * loads; the long runs merge; saved and loaded again, the same rows. */
static void test_file_of_the_ring_loads(void **state)
{
    fx_t *fx = *state;
    usage_t *u = NULL;
    char err[256] = "";
    size_t len;
    char *bytes = slurp("test/fixtures/usage/main-bc59796.usage", &len);
    assert_non_null(bytes);
    char old[200];
    snprintf(old, sizeof(old), "%s/old.usage", fx->dir);
    spit(old, bytes, len);
    free(bytes);
    assert_int_equal(load_into(fx, old, &u, err, sizeof(err)), 0);
    check_fixture_rows(u);
    assert_true(usage__env(u, "stopped")->nruns <= 2);
    assert_true(usage__env(u, "daily")->nruns <= 4 * 36);
    /* round trip through a usage file written by the runs */
    usage_file_t *uf = mk_file(fx, fx->path, u, NULL);
    assert_int_equal(usage_file_write_now(uf, err, sizeof(err)), 0);
    usage_file_free(uf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    usage_t *v = NULL;
    assert_int_equal(load_into(fx, fx->path, &v, err, sizeof(err)), 0);
    check_fixture_rows(v);
    d8_buf_t a, b;
    d8_buf_init(&a);
    d8_buf_init(&b);
    usage_save(u, &a);
    usage_save(v, &b);
    assert_true(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    d8_buf_release(&a);
    d8_buf_release(&b);
    usage_free(u);
    usage_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_periodic_write_and_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_behind_a_write_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_files_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_is_counted_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_of_the_ring_loads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
