/*
 * Azure client throughput: keeps `concurrency` GETs of one container group
 * in flight against an ARM endpoint (azsim) for `seconds`, through the real
 * pkg/azure client on one libuv loop, and prints GETs per second and CPU
 * microseconds per request. Driven by hack/bench-azure.sh; not a test.
 *
 *   bench_azure ARM_URL SUBSCRIPTION RG ACCOUNT GROUP CONCURRENCY SECONDS
 */
#include "azure/azure.h"
#include "helpers/azure_opts.h"
#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <uv.h>

typedef struct bench {
    azure_client_t *az;
    azure_scope_t scope;
    const char *group;
    uint64_t deadline_ms;
    uint64_t done;
    uint64_t failed;
    int inflight;
    uv_loop_t *loop;
} bench_t;

static void issue(bench_t *b);

static void on_get(void *ud, const azure_result_t *res, const azure_group_t *g)
{
    bench_t *b = ud;
    (void)g;
    b->inflight--;
    if (res->err == D8_ECANCELED)
        return;
    if (res->err < 0)
        b->failed++;
    else
        b->done++;
    if (uv_now(b->loop) < b->deadline_ms)
        issue(b);
    else if (b->inflight == 0)
        azure_client_free(b->az);
}

static void issue(bench_t *b)
{
    if (azure_group_get(b->az, &b->scope, b->group, AZURE_PRIO_NORMAL, on_get, b) == 0)
        b->inflight++;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: bench_azure ARM_URL SUB RG ACCOUNT GROUP CONCURRENCY SECONDS\n");
        return 2;
    }
    log_setup(LOG_ERROR, NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    test_azure_opts(&o, argv[1]);
    o.auth = AZURE_AUTH_CLIENT_SECRET;
    o.tenant_id = "bench-tenant";
    o.client_id = "bench-client";
    o.client_secret = "bench-secret";
    int conc = atoi(argv[6]);
    o.max_inflight = conc;
    /* The client's own ARM-rate buckets would cap the figure at 25 reads
     * per second: this measures the transport, so lift them. */
    for (int k = 0; k < AZURE_BUCKET_KINDS; k++) {
        o.buckets[k].burst = 1e9;
        o.buckets[k].per_second = 1e9;
    }
    bench_t b = {0};
    b.loop = &loop;
    char err[256];
    if (azure_client_new(&loop, &o, &b.az, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_azure: %s\n", err);
        return 1;
    }
    b.scope = (azure_scope_t){argv[2], argv[3], argv[4], "eastus"};
    b.group = argv[5];
    uv_update_time(&loop);
    b.deadline_ms = uv_now(&loop) + (uint64_t)atoi(argv[7]) * 1000;
    double cpu0 = cpu_seconds();
    uint64_t t0 = d8_mono_ns();
    for (int i = 0; i < conc; i++)
        issue(&b);
    uv_run(&loop, UV_RUN_DEFAULT);
    double secs = (double)(d8_mono_ns() - t0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    uv_loop_close(&loop);
    printf("%.0f %.1f %llu %llu\n", (double)b.done / secs,
           b.done ? cpu * 1e6 / (double)b.done : 0.0, (unsigned long long)b.done,
           (unsigned long long)b.failed);
    return b.failed ? 1 : 0;
}
