/*
 * Usage, cost and retention end to end (issue 15): the real agent against
 * the real azsim.
 *
 * - A known timeline (create, run, stop, resize, start, agent restart,
 *   delete) against a hand-computed expectation: running seconds, vCPU-
 *   and GiB-seconds, share GiB-hours and cost from the price table, within
 *   the stated error bound (each transition is counted from the
 *   observation that shows it: the test measures the same phases the
 *   agent observes, so each transition may differ by the test's poll and
 *   the agent's status publication, here at most TRANSITION_MS).
 * - status.usage and status.estimatedCostPerHour; the usage route's hour
 *   and day rows agree; its query errors are 400 InvalidQuery.
 * - Usage has its own file, "<stateFile>.usage", written within
 *   controller.usagePersistSeconds (1 s here) and at a graceful stop: the
 *   state file never holds usage, and its size does not grow with usage
 *   (a PUT's durable write carries the desired set only); usage survives
 *   a graceful restart. An older state file's "usage" section is migrated
 *   to the usage file at start, and the state file's next write drops it.
 * - A usage file that cannot be written is logged and counted; /readyz
 *   and the mutations are not affected, and the next tick writes it.
 * - Retention: a retained share carries its keep-until time, is listed by
 *   /api/v1/retained, survives the reaper's grace, and is reaped with an
 *   audit line once retainDays (a test value) passed; a PUT of the same
 *   id before then adopts it: the same share (azsim's marker) with
 *   dev8keep/dev8keepuntil cleared, never reaped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "statefile/statefile_int.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Prices of the test's table (eastus). */
#define P_VCPU 0.001
#define P_MEM 0.0001
#define P_SHARE_MONTH 7.3 /* = 0.01 per GiB-hour */
/* retention.retainDays: 15 s. */
#define RETAIN_S 15
/* The largest difference one transition may make between what the test
 * saw and what the agent counted. */
#define TRANSITION_MS 500

typedef struct uc {
    ta_sim_t sim;
    ta_agent_t agent;
    char path[600];  /* controller.stateFile */
    char upath[610]; /* its usage file */
} uc_t;

static int start_case(uc_t *c)
{
    static const char *const sim_args[] = {"--provision-ms",      "300", "--delete-ms", "200",
                                           "--share-recreate-ms", "500", NULL};
    memset(c, 0, sizeof(*c));
    snprintf(c->path, sizeof(c->path), "%s/usage-state-%d.json", th_tmpdir(), (int)getpid());
    snprintf(c->upath, sizeof(c->upath), "%s.usage", c->path);
    remove(c->path);
    remove(c->upath);
    if (ta_sim_start(&c->sim, sim_args) != 0)
        return -1;
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "pricing:\n"
             "  currency: USD\n"
             "  regions:\n"
             "    eastus: {vcpuSecond: %g, memoryGBSecond: %g, shareGBMonth: %g}\n"
             "retention:\n"
             "  retainDays: %.9f\n"
             "reaper:\n"
             "  fileShareGraceSeconds: 1\n"
             "  containerGroupGraceSeconds: 0\n"
             "  maxOrphanFraction: 1\n",
             P_VCPU, P_MEM, P_SHARE_MONTH, RETAIN_S / 86400.0);
    ta_opts_t o = {.azsim_port = c->sim.port,
                   .resync_seconds = 1,
                   .status_refresh_seconds = 2,
                   .shutdown_grace_seconds = 5,
                   .state_file = c->path,
                   .controller_yaml = "  usagePersistSeconds: 1\n",
                   .extra_yaml = extra};
    if (ta_start(&c->agent, &o) != 0)
        return -1;
    return ta_wait_ready(&c->agent, 15000);
}

static void stop_case(uc_t *c)
{
    assert_int_equal(ta_stop(&c->agent), 0);
    assert_int_equal(ta_sim_stop(&c->sim), 0);
}

static long req(uc_t *c, const char *method, const char *path, const char *body)
{
    th_resp_t r;
    if (ta_req(&c->agent, method, path, body, &r) != 0)
        return 0;
    long st = r.status;
    th_resp_free(&r);
    return st;
}

static cJSON *get_json(uc_t *c, const char *path, long want)
{
    th_resp_t r;
    long st = ta_req(&c->agent, "GET", path, NULL, &r) == 0 ? r.status : 0;
    if (st != want)
        fail_msg("GET %s: %ld (%s)", path, st, r.body ? r.body : "");
    cJSON *j = ta_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    return j;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    else
        buf[len] = '\0';
    return buf;
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* The state file holds no usage; the usage file holds id's buckets.
 * Returns the usage file's size. */
static long check_files(const uc_t *c, const char *id)
{
    char *st = slurp(c->path);
    assert_non_null(st);
    assert_null(strstr(st, "\"usage\""));
    assert_null(strstr(st, "\"buckets\""));
    free(st);
    char *u = slurp(c->upath);
    if (!u)
        fail_msg("%s: no usage file", c->upath);
    char want[128];
    snprintf(want, sizeof(want), "\"id\":\"%s\"", id);
    assert_non_null(strstr(u, want));
    assert_non_null(strstr(u, "\"buckets\":[["));
    assert_non_null(strstr(u, ",\"checksum\":\"sha256:"));
    free(u);
    printf("  state file %ld bytes, usage file %ld bytes\n", file_size(c->path),
           file_size(c->upath));
    return file_size(c->upath);
}

/* Waits for phase and returns the test's time of first sight. */
static long long phase_at(uc_t *c, const char *id, const char *phase, int timeout_ms)
{
    cJSON *o = ta_env_wait(&c->agent, id, ta_is_phase, phase, timeout_ms);
    if (!o)
        fail_msg("%s did not reach %s", id, phase);
    cJSON_Delete(o);
    return ta_now_ms();
}

typedef struct sums {
    double run, cpu, mem, gbh, cost;
    int rows;
} sums_t;

static sums_t usage_of(uc_t *c, const char *id, const char *granularity)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/usage?granularity=%s", granularity);
    cJSON *j = get_json(c, path, 200);
    sums_t s = {0};
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "items"))
    {
        if (strcmp(ta_str(it, "environmentId"), id) != 0)
            continue;
        assert_string_equal(ta_str(it, "userId"), "user-u");
        assert_string_equal(ta_str(it, "currency"), "USD");
        assert_non_null(ta_str(it, "periodStart"));
        s.run += ta_num(it, "runningSeconds");
        s.cpu += ta_num(it, "cpuCoreSeconds");
        s.mem += ta_num(it, "memoryGBSeconds");
        s.gbh += ta_num(it, "storageGBHours");
        s.cost += ta_num(it, "estimatedCost");
        s.rows++;
    }
    cJSON_Delete(j);
    return s;
}

static void near(double got, double want, double tol, const char *what)
{
    if (fabs(got - want) > tol)
        fail_msg("%s: %.6f, expected %.6f +- %.6f", what, got, want, tol);
    printf("  %s: %.3f (expected %.3f +- %.3f)\n", what, got, want, tol);
}

static void between(double got, double lo, double hi, const char *what)
{
    if (got < lo || got > hi)
        fail_msg("%s: %.6f, expected between %.6f and %.6f", what, got, lo, hi);
    printf("  %s: %.4f (expected %.4f .. %.4f)\n", what, got, lo, hi);
}

static double cost_of(double cpu, double mem, double gbh)
{
    return cpu * P_VCPU + mem * P_MEM + gbh / 730.0 * P_SHARE_MONTH;
}

/* create 1 vCPU/2 GiB/10 GiB -> run -> stop -> resize to 2/4 -> start ->
 * agent restart while running -> delete. */
static void test_usage_timeline(void **state)
{
    (void)state;
    uc_t c;
    assert_int_equal(start_case(&c), 0);
    long long t_put = ta_now_ms();
    assert_int_equal(ta_put(&c.agent, "us-a",
                            "{\"userId\":\"user-u\",\"name\":\"a\",\"cloudRegion\":\"eastus\","
                            "\"cpuCores\":1,\"memoryGB\":2,\"storageGB\":10}"),
                     201);
    long state_at_create = file_size(c.path); /* the 201 waited for its write */
    long long t_run1 = phase_at(&c, "us-a", "RUNNING", 20000);
    ta_sleep_ms(6000);
    /* Within usagePersistSeconds of the first observation: its own file. */
    long usage_before = check_files(&c, "us-a");
    long long t_stop_req = ta_now_ms();
    assert_int_equal(req(&c, "POST", "/api/v1/environments/us-a/stop", NULL), 202);
    long long t_stop1 = phase_at(&c, "us-a", "STOPPED", 20000);
    (void)t_stop_req;

    /* Stopped: only the share costs. */
    cJSON *o = ta_env_get(&c.agent, "us-a", NULL);
    assert_non_null(o);
    near(ta_num(o, "status.usage.runningSeconds"), (double)(t_stop1 - t_run1) / 1000.0,
         2 * TRANSITION_MS / 1000.0, "status.usage.runningSeconds after the stop");
    near(ta_num(o, "status.estimatedCostPerHour"), 10 * P_SHARE_MONTH / 730.0, 1e-6,
         "estimatedCostPerHour stopped");
    assert_string_equal(ta_str(o, "status.usage.currency"), "USD");
    assert_non_null(ta_str(o, "status.usage.since"));
    cJSON_Delete(o);

    /* Resize while stopped (powerState kept), then start. */
    assert_int_equal(ta_put(&c.agent, "us-a",
                            "{\"userId\":\"user-u\",\"name\":\"a\",\"cloudRegion\":\"eastus\","
                            "\"cpuCores\":2,\"memoryGB\":4,\"storageGB\":10}"),
                     200);
    /* The resize's durable write: the desired set only, as large as the
     * create's (the spec's numbers have as many digits), however much
     * usage there is by now. */
    long state_at_resize = file_size(c.path);
    assert_true(state_at_create > 0 && state_at_resize > 0);
    assert_true(labs(state_at_resize - state_at_create) < 64);
    assert_true(check_files(&c, "us-a") >= usage_before);
    ta_sleep_ms(1500);
    assert_int_equal(req(&c, "POST", "/api/v1/environments/us-a/start", NULL), 202);
    long long t_run2 = phase_at(&c, "us-a", "RUNNING", 30000);
    cJSON *res = ta_sim_get(&c.sim, "/_azsim/resources");
    const cJSON *g = ta_sim_group(res, "dev8-us-a");
    assert_non_null(g);
    const cJSON *ct = cJSON_GetArrayItem(ta_path(g, "properties.containers"), 0);
    assert_true(ta_num(ct, "properties.resources.requests.cpu") == 2);
    cJSON_Delete(res);
    o = ta_env_get(&c.agent, "us-a", NULL);
    near(ta_num(o, "status.estimatedCostPerHour"),
         (2 * P_VCPU + 4 * P_MEM) * 3600 + 10 * P_SHARE_MONTH / 730.0, 1e-6,
         "estimatedCostPerHour running 2 vCPU / 4 GiB");
    char since[40];
    snprintf(since, sizeof(since), "%s", ta_str(o, "status.usage.since"));
    cJSON_Delete(o);

    /* The agent restarts while the group runs: the state file keeps the
     * usage and the interval it was down is counted (it kept running). */
    ta_sleep_ms(3000);
    int st;
    assert_int_equal(ta_restart(&c.agent, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(ta_wait_ready(&c.agent, 15000), 0);
    char *log = ta_log(&c.agent);
    assert_non_null(strstr(log, "\"usage file loaded\""));
    free(log);
    check_files(&c, "us-a");
    ta_sleep_ms(4000);
    o = ta_env_wait(&c.agent, "us-a", ta_is_phase, "RUNNING", 10000);
    assert_non_null(o);
    assert_string_equal(ta_str(o, "status.usage.since"), since);
    cJSON_Delete(o);

    long long t_del = ta_now_ms();
    assert_int_equal(req(&c, "DELETE", "/api/v1/environments/us-a", NULL), 202);
    assert_int_equal(ta_env_wait_gone(&c.agent, "us-a", 30000), 0);
    long long t_gone = ta_now_ms();

    /* The hand-computed expectation. Running ends between the DELETE and
     * the object leaving (the agent counts until it sees the group go):
     * that interval widens the bound of the last transition. */
    double seg1 = (double)(t_stop1 - t_run1) / 1000.0;
    double seg2_lo = (double)(t_del - t_run2) / 1000.0;
    double seg2_hi = (double)(t_gone - t_run2) / 1000.0;
    double tr = 4 * TRANSITION_MS / 1000.0; /* run, stop, start, delete */
    sums_t d = usage_of(&c, "us-a", "day");
    sums_t h = usage_of(&c, "us-a", "hour");
    assert_true(d.rows >= 1 && h.rows >= d.rows);
    between(d.run, seg1 + seg2_lo - tr, seg1 + seg2_hi + tr, "runningSeconds");
    between(d.cpu, seg1 + 2 * seg2_lo - 2 * tr, seg1 + 2 * seg2_hi + 2 * tr, "cpuCoreSeconds");
    between(d.mem, 2 * seg1 + 4 * seg2_lo - 4 * tr, 2 * seg1 + 4 * seg2_hi + 4 * tr,
            "memoryGBSeconds");
    /* The share: from its creation (after the PUT) until its deletion
     * (before the object left). */
    double share_lo = 10 * (double)(t_del - t_run1) / 3600000.0;
    double share_hi = 10 * (double)(t_gone - t_put) / 3600000.0;
    between(d.gbh, share_lo - 1e-5, share_hi + 1e-5, "storageGBHours"); /* rounding of rows */
    near(d.cost, cost_of(d.cpu, d.mem, d.gbh), 1e-5, "estimatedCost (price table)");
    between(d.cost, cost_of(seg1 + 2 * seg2_lo - 2 * tr, 2 * seg1 + 4 * seg2_lo - 4 * tr, share_lo),
            cost_of(seg1 + 2 * seg2_hi + 2 * tr, 2 * seg1 + 4 * seg2_hi + 4 * tr, share_hi),
            "estimatedCost (expected)");
    near(h.run, d.run, 0.01, "hour rows = day rows (running)");
    near(h.cost, d.cost, 1e-5, "hour rows = day rows (cost)");

    /* Other users see nothing; bad queries are 400 InvalidQuery. */
    cJSON *j = get_json(&c, "/api/v1/usage?userId=someone-else", 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 0);
    cJSON_Delete(j);
    static const char *const bad[][2] = {
        {"/api/v1/usage?granularity=week", "granularity"},
        {"/api/v1/usage?from=yesterday", "from"},
        {"/api/v1/usage?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "to"},
        {"/api/v1/usage?from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z", "from"},
        {"/api/v1/usage?region=eastus", "region"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        th_resp_t r;
        assert_int_equal(ta_req(&c.agent, "GET", bad[i][0], NULL, &r), 0);
        assert_int_equal(r.status, 400);
        assert_string_equal(ta_err_code(&r), "InvalidQuery");
        assert_string_equal(ta_err_field(&r), bad[i][1]);
        th_resp_free(&r);
    }
    /* The metrics carry the region's counters. */
    th_resp_t r;
    assert_int_equal(ta_req(&c.agent, "GET", "/metrics", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "dev8_usage_cpu_core_seconds_total{region=\"eastus\""));
    assert_non_null(strstr(r.body, "dev8_usage_estimated_cost_total{region=\"eastus\""));
    th_resp_free(&r);
    stop_case(&c);
}

/* Rewrites the state file as an agent before the usage file wrote it:
 * the usage file's "usage" member as its "usage" section (checksum
 * recomputed); the usage file is removed. */
static void make_legacy(const uc_t *c)
{
    char *u = slurp(c->upath), *st = slurp(c->path);
    assert_non_null(u);
    assert_non_null(st);
    const char *from = strstr(u, ",\"usage\":");
    const char *to = strstr(u, ATOMICFILE_CHECKSUM_MARK);
    char *mark = strstr(st, ATOMICFILE_CHECKSUM_MARK);
    assert_true(from && to && mark && from < to);
    size_t head = (size_t)(mark - st), sec = (size_t)(to - from);
    char *out = malloc(head + sec + 200);
    assert_non_null(out);
    memcpy(out, st, head);
    memcpy(out + head, from, sec);
    char sum[ATOMICFILE_CHECKSUM_SIZE];
    atomicfile_checksum(out, head + sec, sum);
    snprintf(out + head + sec, 200, ATOMICFILE_CHECKSUM_MARK "%s\"}\n", sum);
    FILE *f = fopen(c->path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(out, f) >= 0, 1);
    fclose(f);
    free(out);
    free(u);
    free(st);
    assert_int_equal(remove(c->upath), 0);
}

/* An older state file's "usage" section is moved to the usage file at
 * start (written before the API listens) and the state file's next write
 * drops it; a damaged usage file stops the start naming it. */
static void test_usage_migration(void **state)
{
    (void)state;
    uc_t c;
    assert_int_equal(start_case(&c), 0);
    assert_int_equal(ta_put(&c.agent, "us-m",
                            "{\"userId\":\"user-u\",\"name\":\"m\",\"cloudRegion\":\"eastus\","
                            "\"cpuCores\":1,\"memoryGB\":2,\"storageGB\":10}"),
                     201);
    phase_at(&c, "us-m", "RUNNING", 20000);
    ta_sleep_ms(2500);
    cJSON *o = ta_env_get(&c.agent, "us-m", NULL);
    char since[40];
    snprintf(since, sizeof(since), "%s", ta_str(o, "status.usage.since"));
    cJSON_Delete(o);
    assert_int_equal(th_stop(&c.agent.proc, SIGTERM, 10000), 0);
    check_files(&c, "us-m"); /* the graceful stop wrote it */
    make_legacy(&c);

    assert_int_equal(ta_relaunch(&c.agent), 0);
    assert_int_equal(ta_wait_ready(&c.agent, 15000), 0);
    char *log = ta_log(&c.agent);
    assert_non_null(strstr(log, "\"usage moved from the state file to its own file\""));
    free(log);
    char *u = slurp(c.upath);
    assert_non_null(u);
    assert_non_null(strstr(u, "\"id\":\"us-m\""));
    free(u);
    o = ta_env_get(&c.agent, "us-m", NULL);
    assert_string_equal(ta_str(o, "status.usage.since"), since);
    cJSON_Delete(o);
    /* A change of the desired set: its durable write has no usage. */
    assert_int_equal(req(&c, "POST", "/api/v1/environments/us-m/stop", NULL), 202);
    check_files(&c, "us-m");

    /* A damaged usage file: the agent refuses to start, naming it. */
    assert_int_equal(th_stop(&c.agent.proc, SIGTERM, 10000), 0);
    FILE *f = fopen(c.upath, "ab");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
    assert_int_not_equal(ta_relaunch(&c.agent), 0);
    log = ta_log(&c.agent);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"cannot load the usage file: refusing to start"));
    assert_non_null(strstr(log, c.upath));
    free(log);
    ta_stop(&c.agent);
    assert_int_equal(ta_sim_stop(&c.sim), 0);
    remove(c.path);
    remove(c.upath);
}

/* A usage file that cannot be written (a directory in its place): logged
 * and counted, /readyz stays 200 and mutations are acknowledged (usage is
 * not part of the acknowledgement contract); the next tick after the
 * cause is gone writes it. */
static void test_usage_file_failure_is_not_fatal(void **state)
{
    (void)state;
    uc_t c;
    assert_int_equal(start_case(&c), 0);
    assert_int_equal(mkdir(c.upath, 0700), 0);
    assert_int_equal(ta_put(&c.agent, "us-f",
                            "{\"userId\":\"user-u\",\"name\":\"f\",\"cloudRegion\":\"eastus\","
                            "\"storageGB\":10}"),
                     201);
    phase_at(&c, "us-f", "RUNNING", 20000);
    ta_sleep_ms(2500); /* two ticks of usagePersistSeconds: 1 */
    th_resp_t r;
    assert_int_equal(ta_req(&c.agent, "GET", "/readyz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    assert_int_equal(req(&c, "POST", "/api/v1/environments/us-f/stop", NULL), 202);
    assert_int_equal(ta_req(&c.agent, "GET", "/metrics", NULL, &r), 0);
    const char *m = strstr(r.body, "\ndev8_usagefile_write_errors_total ");
    assert_non_null(m);
    assert_true(atof(m + strlen("\ndev8_usagefile_write_errors_total ")) >= 1);
    th_resp_free(&r);
    char *log = ta_log(&c.agent);
    assert_non_null(strstr(log, "\"cannot write the usage file\""));
    free(log);
    assert_int_equal(rmdir(c.upath), 0);
    phase_at(&c, "us-f", "STOPPED", 20000);
    for (int i = 0; i < 40 && file_size(c.upath) <= 0; i++)
        ta_sleep_ms(100);
    check_files(&c, "us-f");
    stop_case(&c);
    remove(c.path);
    remove(c.upath);
}

static int has_retained(uc_t *c, const char *id, cJSON **item)
{
    cJSON *j = get_json(c, "/api/v1/retained", 200);
    int found = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "items"))
    {
        if (strcmp(ta_str(it, "environmentId"), id) == 0) {
            found = 1;
            if (item)
                *item = cJSON_Duplicate(it, 1);
        }
    }
    cJSON_Delete(j);
    return found;
}

static const cJSON *share_md(const cJSON *res, const char *name, const char *key)
{
    const cJSON *s = ta_sim_share(res, name);
    return s ? cJSON_GetObjectItem(ta_path(s, "properties.metadata"), key) : NULL;
}

static void set_marker(uc_t *c, const char *share, const char *marker)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"account\":\"dev8eastus\",\"share\":\"%s\",\"marker\":\"%s\"}",
             share, marker);
    th_resp_t r;
    assert_int_equal(ta_sim_ctl(&c->sim, "POST", "/_azsim/shares", body, &r), 200);
    th_resp_free(&r);
}

static int create_retained(uc_t *c, const char *id)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"userId\":\"user-r\",\"name\":\"%s\",\"cloudRegion\":\"eastus\","
             "\"storageGB\":7,\"storagePolicy\":\"Retain\"}",
             id);
    return (int)ta_put(&c->agent, id, body);
}

static void test_retention(void **state)
{
    (void)state;
    uc_t c;
    assert_int_equal(start_case(&c), 0);
    /* A full sync makes the desired set authoritative for the reaper. */
    assert_int_equal(req(&c, "PUT", "/api/v1/environments", "{\"items\":[]}"), 200);
    assert_int_equal(create_retained(&c, "rt-a"), 201);
    assert_int_equal(create_retained(&c, "rt-b"), 201);
    phase_at(&c, "rt-a", "RUNNING", 20000);
    phase_at(&c, "rt-b", "RUNNING", 20000);
    set_marker(&c, "dev8-rt-a", "files-of-a");
    set_marker(&c, "dev8-rt-b", "files-of-b");
    long long t_del = ta_now_ms();
    assert_int_equal(req(&c, "DELETE", "/api/v1/environments/rt-a", NULL), 202);
    assert_int_equal(req(&c, "DELETE", "/api/v1/environments/rt-b", NULL), 202);
    assert_int_equal(ta_env_wait_gone(&c.agent, "rt-a", 20000), 0);
    assert_int_equal(ta_env_wait_gone(&c.agent, "rt-b", 20000), 0);

    /* Both shares kept, marked until now + retainDays, and listed. */
    cJSON *res = ta_sim_get(&c.sim, "/_azsim/resources");
    const cJSON *until = share_md(res, "dev8-rt-a", "dev8keepuntil");
    assert_true(cJSON_IsString(until));
    assert_string_equal(share_md(res, "dev8-rt-a", "dev8keep")->valuestring, "true");
    cJSON_Delete(res);
    cJSON *item = NULL;
    assert_true(has_retained(&c, "rt-a", &item));
    assert_string_equal(ta_str(item, "userId"), "user-r");
    assert_string_equal(ta_str(item, "region"), "eastus");
    assert_string_equal(ta_str(item, "share"), "dev8-rt-a");
    assert_true(ta_num(item, "sizeGB") == 7);
    assert_non_null(ta_str(item, "keepUntil"));
    cJSON_Delete(item);

    /* Adoption before expiry: the same share, no longer retained. */
    assert_int_equal(create_retained(&c, "rt-b"), 201);
    phase_at(&c, "rt-b", "RUNNING", 20000);
    for (int i = 0; i < 100 && has_retained(&c, "rt-b", NULL); i++)
        ta_sleep_ms(100);
    assert_false(has_retained(&c, "rt-b", NULL));
    res = ta_sim_get(&c.sim, "/_azsim/resources");
    assert_null(share_md(res, "dev8-rt-b", "dev8keepuntil"));
    assert_null(share_md(res, "dev8-rt-b", "dev8keep"));
    assert_string_equal(ta_str(ta_sim_share(res, "dev8-rt-b"), "azsimMarker"), "files-of-b");
    cJSON_Delete(res);

    /* Past the reaper's grace (1 s) the retained share is still there. */
    ta_sleep_ms(4000);
    res = ta_sim_get(&c.sim, "/_azsim/resources");
    assert_non_null(ta_sim_share(res, "dev8-rt-a"));
    assert_string_equal(ta_str(ta_sim_share(res, "dev8-rt-a"), "azsimMarker"), "files-of-a");
    cJSON_Delete(res);
    assert_true(has_retained(&c, "rt-a", NULL));
    assert_true(ta_now_ms() - t_del < RETAIN_S * 1000);

    /* After retainDays it is reaped, with an audit line. */
    int gone = 0;
    while (!gone && ta_now_ms() - t_del < (RETAIN_S + 15) * 1000) {
        ta_sleep_ms(250);
        res = ta_sim_get(&c.sim, "/_azsim/resources");
        gone = res && !ta_sim_share(res, "dev8-rt-a");
        cJSON_Delete(res);
    }
    assert_true(gone);
    assert_true(ta_now_ms() - t_del >= RETAIN_S * 1000);
    cJSON *stats = ta_sim_get(&c.sim, "/_azsim/stats");
    assert_int_equal(ta_sim_deleted(stats, "fileShare", "dev8-rt-a"), 1);
    assert_int_equal(ta_sim_deleted(stats, "fileShare", "dev8-rt-b"), 0);
    cJSON_Delete(stats);
    for (int i = 0; i < 40 && has_retained(&c, "rt-a", NULL); i++)
        ta_sleep_ms(100);
    assert_false(has_retained(&c, "rt-a", NULL));
    char *log = ta_log(&c.agent);
    assert_non_null(log);
    const char *line = strstr(log, "\"audit: orphan deleted\"");
    assert_non_null(line);
    const char *eol = strchr(line, '\n');
    char buf[2048];
    snprintf(buf, sizeof(buf), "%.*s", (int)(eol ? eol - line : 500), line);
    assert_non_null(strstr(buf, "\"env_id\":\"rt-a\""));
    assert_non_null(strstr(buf, "\"retention\":\"expired\""));
    free(log);
    /* The adopted share stays. */
    res = ta_sim_get(&c.sim, "/_azsim/resources");
    assert_non_null(ta_sim_share(res, "dev8-rt-b"));
    cJSON_Delete(res);
    stop_case(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_timeline),
        cmocka_unit_test(test_usage_migration),
        cmocka_unit_test(test_usage_file_failure_is_not_fatal),
        cmocka_unit_test(test_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
