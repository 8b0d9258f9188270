/*
 * The usage file's costs at scale: N environments that each have all
 * USAGE_KEEP_HOURS hourly buckets (35 days of a share and a group running
 * two hours in three). Prints what the loop pays per write (usage_clone),
 * what the pool's thread pays (the JSON of usage_save), the synchronous
 * write with fsync, the file's size and the load at start. Not a test.
 * First, the memory of one environment's record and hourly runs after 35
 * days of four timelines (the ring before was 16,800 bytes of buckets
 * plus a 160-byte record, whatever the timeline).
 *
 *   bench_usagefile DIR [N]   (N = 1000)
 */
#include "base/base.h"
#include "log/log.h"
#include "usage/usage.h"
#include "usage/usage_file.h"
#include "usage/usage_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#define T0 1764547200000LL /* 2025-12-01T00:00:00Z */

static double ms_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* n environments with every hourly bucket used. */
static void fill(usage_t *u, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "env-%06d", i);
        for (int h = 0; h < USAGE_KEEP_HOURS; h++) {
            usage_sample_t s = {
                .running = h % 3 != 0, .cpu_cores = 2, .memory_gb = 4, .share_gb = 20};
            usage_observe(u, id, "user-0123456789", 0, T0 + h * HOUR_MS + 1234, &s);
        }
    }
}

/* One environment's timeline over 35 days, observed every 5 minutes and
 * at each transition (plus jitter_ms of pseudo-random settle delay):
 * running in [on, off) of each 10-minute or daily cycle. */
typedef struct timeline {
    const char *name;
    int64_t cycle_ms, on_ms, off_ms; /* running when t % cycle in [on, off) */
    int jitter_s;                    /* 0 or the settle poll's spread */
} timeline_t;

static size_t env_bytes_after(const timeline_t *tl)
{
    static const char *const regions[] = {"eastus"};
    usage_opts_t o = {.nregions = 1, .region_names = regions, .currency = "USD"};
    usage_t *u = usage_new(&o);
    uint32_t seed = 12345;
    int64_t end = T0 + (int64_t)USAGE_KEEP_HOURS * HOUR_MS, step = 5 * 60000;
    for (int64_t t = T0; t <= end; t += step) {
        int64_t in = t % tl->cycle_ms, next = t + step;
        int64_t edges[2] = {t - in + tl->on_ms, t - in + tl->off_ms};
        for (int k = 0; k < 2; k++)
            if (edges[k] > t && edges[k] < next)
                next = edges[k];
        seed = seed * 1103515245u + 12345u;
        int64_t at = t + (tl->jitter_s ? 2000 + (int64_t)(seed >> 8) % (tl->jitter_s * 1000) : 0);
        usage_sample_t s = {.running = in >= tl->on_ms && in < tl->off_ms,
                            .cpu_cores = 2,
                            .memory_gb = 4,
                            .share_gb = 20};
        usage_observe(u, "env-000001", "user-0123456789", 0, at, &s);
        step = next - t;
        if (step <= 0)
            step = 5 * 60000;
    }
    const usage__env_t *e = usage__env(u, "env-000001");
    size_t bytes = usage__env_bytes(e);
    printf("  %-44s %5u runs, %6zu bytes\n", tl->name, e->nruns, bytes);
    usage_free(u);
    return bytes;
}

static void memory_figures(void)
{
    static const timeline_t tl[] = {
        {"(a) stopped 35 days (share only)", 24 * HOUR_MS, 0, 0, 28},
        {"(b) running 09:00-17:00 each day", 24 * HOUR_MS, 9 * HOUR_MS, 17 * HOUR_MS, 28},
        {"(c) toggled every 10 minutes", 20 * 60000, 0, 10 * 60000, 0},
        {"(c') toggled every 10 min, 2-30 s settle", 20 * 60000, 0, 10 * 60000, 28},
    };
    printf("memory per environment after %d hours (record, user id, runs):\n", USAGE_KEEP_HOURS);
    for (size_t i = 0; i < sizeof(tl) / sizeof(tl[0]); i++)
        env_bytes_after(&tl[i]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_usagefile DIR [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    log_setup(LOG_WARN, stderr);
    memory_figures();
    static const char *const regions[] = {"eastus"};
    usage_opts_t o = {.nregions = 1, .region_names = regions, .currency = "USD"};
    usage_t *u = usage_new(&o), *back = usage_new(&o);
    fill(u, n);
    char path[512];
    snprintf(path, sizeof(path), "%s/bench-state.json.usage", argv[1]);
    uv_loop_t loop;
    uv_loop_init(&loop);
    usage_file_opts_t fo = {.loop = &loop, .path = path, .usage = u};
    usage_file_t *w = usage_file_new(&fo);
    fo.usage = back;
    usage_file_t *r = usage_file_new(&fo);

    double t0 = ms_now();
    usage_t *copy = usage_clone(u);
    double t1 = ms_now();
    d8_buf_t json;
    d8_buf_init(&json);
    usage_save(copy, &json);
    double t2 = ms_now();
    char err[256];
    int wrc = usage_file_write_now(w, err, sizeof(err));
    double t3 = ms_now();
    int lrc = usage_file_load(r, err, sizeof(err));
    double t4 = ms_now();
    struct stat sb;
    long long size = stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
    printf("environments %d (%d buckets each)\n", n, USAGE_KEEP_HOURS);
    printf("  loop, per write (usage_clone):      %8.1f ms\n", t1 - t0);
    printf("  thread, JSON (usage_save):          %8.1f ms, %zu bytes (%.0f per environment)\n",
           t2 - t1, json.len, (double)json.len / n);
    printf("  write_now (JSON+sha256+write+fsync):%8.1f ms, rc %d\n", t3 - t2, wrc);
    printf("  load at start (read+verify+parse):  %8.1f ms, rc %d, file %lld bytes\n", t4 - t3, lrc,
           size);
    d8_buf_release(&json);
    usage_free(copy);
    usage_file_free(w);
    usage_file_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    usage_free(u);
    usage_free(back);
    remove(path);
    return wrc == D8_OK && lrc == D8_OK ? 0 : 1;
}
