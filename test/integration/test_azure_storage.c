/*
 * End-to-end tests of the reconcile loop against ARM's and Storage's
 * documented behaviours (research notes items 6-8, modelled by azsim and
 * switched on per test through /_azsim/paging, /_azsim/storage,
 * /_azsim/shares, /_azsim/regenerateKey and /_azsim/faults): nextLinks
 * that write the default port with pages of one and an empty first page,
 * a non-ASCII userId in share metadata, a share delete refused by leased
 * snapshots, a premium account's share sizes, a regenerated storage key,
 * and a region whose lists fail with 403. The real bin/dev8-agent against
 * the real bin/azsim, fresh for each test; every test bounds the ARM calls
 * the controller makes (azsim's /_azsim/stats) as well as checking where
 * it converges. The blocked delete waits once for the controller's first
 * slow retry (30 to 60 s): the file takes about 90 s.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "rc_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENV_PATH "/api/v1/environments"
#define T_CONVERGE 15000
/* "Jürgen-😀" in UTF-8, and as the agent percent-encodes it for metadata. */
#define USER_UTF8 "J\xc3\xbcrgen-\xf0\x9f\x98\x80"
#define USER_META "J%C3%BCrgen-%F0%9F%98%80"

/* What varies between the pairs of this file. */
typedef struct pair_opts {
    int resync_s;                      /* controller.resyncSeconds */
    int via_proxy;                     /* the agent reaches azsim as ARM's host, through a proxy */
    const char *paging;                /* POST /_azsim/paging before the agent starts, or NULL */
    const char *storage;               /* POST /_azsim/storage before the agent starts, or NULL */
    const char *extra_yaml;            /* more agent config, or NULL */
    void (*before_agent)(ta_sim_t *s); /* makes resources in azsim first, or NULL */
} pair_opts_t;

/* POST of an azsim control path; must be accepted. */
static void sim_post(ta_sim_t *s, const char *path, const char *json)
{
    th_resp_t r;
    long st = ta_sim_ctl(s, "POST", path, json, &r);
    if (st != 200)
        print_message("POST %s %s answered %ld: %s\n", path, json, st, r.body);
    th_resp_free(&r);
    assert_int_equal(st, 200);
}

/* azsim with fast timing, set up as po says, then the agent. */
static int start_pair(ta_rc_t *c, const pair_opts_t *po)
{
    static const char *const sim_args[] = {"--provision-ms",      "300", "--delete-ms", "200",
                                           "--share-recreate-ms", "500", NULL};
    memset(c, 0, sizeof *c);
    if (ta_sim_start(&c->sim, sim_args) != 0)
        return -1;
    if (po->paging)
        sim_post(&c->sim, "/_azsim/paging", po->paging);
    if (po->storage)
        sim_post(&c->sim, "/_azsim/storage", po->storage);
    if (po->before_agent)
        po->before_agent(&c->sim);
    char extra[512];
    snprintf(extra, sizeof extra, "workspace:\n  ports: [%d]\n  mountPath: %s\n%s", TA_RC_PORT,
             TA_RC_MOUNT, po->extra_yaml ? po->extra_yaml : "");
    ta_opts_t o = {.azsim_port = c->sim.port,
                   .via_proxy = po->via_proxy,
                   .resync_seconds = po->resync_s ? po->resync_s : TA_RC_RESYNC_S,
                   .status_refresh_seconds = TA_RC_REFRESH_S,
                   .shutdown_grace_seconds = 5,
                   .extra_yaml = extra};
    if (ta_start(&c->agent, &o) != 0)
        return -1;
    return ta_wait_ready(&c->agent, 10000);
}

static int setup_with(void **state, const pair_opts_t *po)
{
    ta_rc_t *c = calloc(1, sizeof *c);
    if (!c || start_pair(c, po) != 0) {
        if (c)
            ta_rc_stop(c);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int setup_default(void **state)
{
    pair_opts_t po = {0};
    return setup_with(state, &po);
}

/* ---- helpers ------------------------------------------------------------------ */

static void put_env(ta_rc_t *c, const char *id, const char *user, const char *extra, long want)
{
    char *body = ta_spec(user ? user : "u-11", "workspace", "eastus", extra);
    long st = ta_put(&c->agent, id, body);
    free(body);
    if (st != want)
        print_message("PUT %s answered %ld, wanted %ld\n", id, st, want);
    assert_int_equal(st, want);
}

static void delete_env(ta_rc_t *c, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, ENV_PATH "/%s", id);
    th_resp_t r;
    ta_req(&c->agent, "DELETE", path, NULL, &r);
    assert_int_equal(r.status, 202);
    th_resp_free(&r);
}

static int deleted_in_sim(ta_rc_t *c, const char *kind, const char *name)
{
    cJSON *st = ta_sim_get(&c->sim, "/_azsim/stats");
    assert_non_null(st);
    int n = ta_sim_deleted(st, kind, name);
    cJSON_Delete(st);
    return n;
}

/* Seconds from now to an RFC 3339 time ("2026-01-02T03:04:05Z"). */
static double seconds_until(const char *ts)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!ts || !strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm))
        return -1e9;
    return difftime(timegm(&tm), time(NULL));
}

static cJSON *status_of(ta_rc_t *c)
{
    th_resp_t r;
    ta_req(&c->agent, "GET", "/api/v1/status", NULL, &r);
    cJSON *j = r.status == 200 ? ta_json(&r) : NULL;
    th_resp_free(&r);
    return j;
}

/* The /api/v1/status entry of region name (borrowed from st), or NULL. */
static const cJSON *region_of(const cJSON *st, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, ta_path(st, "regions"))
    {
        const char *n = ta_str(it, "name");
        if (n && strcmp(n, name) == 0)
            return it;
    }
    return NULL;
}

/* Polls /api/v1/status until every region has a lastListTime; 1 or 0. */
static int wait_regions_listed(ta_rc_t *c, int timeout_ms)
{
    long long end = ta_now_ms() + timeout_ms;
    while (ta_now_ms() < end) {
        cJSON *st = status_of(c);
        int n = 0, listed = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, ta_path(st, "regions"))
        {
            n++;
            listed += ta_str(it, "lastListTime") != NULL;
        }
        cJSON_Delete(st);
        if (n == 2 && listed == n)
            return 1;
        ta_sleep_ms(50);
    }
    return 0;
}

/* The value of the metric line that starts with prefix, or -1. */
static double metric(ta_rc_t *c, const char *prefix)
{
    th_resp_t r;
    th_api(c->agent.port, "GET", "/metrics", NULL, NULL, &r);
    double v = -1;
    const char *p = r.body ? strstr(r.body, prefix) : NULL;
    if (p)
        v = strtod(p + strlen(prefix), NULL);
    th_resp_free(&r);
    return v;
}

/* ---- a. nextLinks as ARM writes them ---------------------------------------------- */

/* A group and a share of env id in eastus, tagged as the agent's. */
static void make_ours(ta_sim_t *s, const char *id)
{
    char path[512], body[1024];
    th_resp_t r;
    snprintf(path, sizeof path, TA_AZ_CG "/dev8-%s?" TA_AZ_ACI_V, id);
    snprintf(body, sizeof body,
             "{\"location\":\"eastus\",\"tags\":{\"dev8-managed-by\":\"dev8-agent\","
             "\"dev8-controller\":\"" TA_RC_CONTROLLER "\",\"dev8-env-id\":\"%s\"},"
             "\"properties\":{\"osType\":\"Linux\",\"restartPolicy\":\"OnFailure\",\"containers\":"
             "[{\"name\":\"workspace\",\"properties\":{\"image\":\"nginx\",\"resources\":"
             "{\"requests\":{\"cpu\":1,\"memoryInGB\":1}}}}]}}",
             id);
    assert_int_equal(ta_sim_arm(s, "PUT", path, body, &r), 201);
    th_resp_free(&r);
    snprintf(path, sizeof path, TA_AZ_FS "/dev8-%s?" TA_AZ_FS_V, id);
    snprintf(body, sizeof body,
             "{\"properties\":{\"shareQuota\":5,\"metadata\":{\"dev8managedby\":\"dev8agent\","
             "\"dev8controller\":\"" TA_RC_CONTROLLER "\",\"dev8envid\":\"%s\"}}}",
             id);
    assert_int_equal(ta_sim_arm(s, "PUT", path, body, &r), 201);
    th_resp_free(&r);
}

/* Before the agent: resources of an id it never heard of (a-ghost), of
 * an orphan (a-orphan) and of someone else (foreign-1). */
static void make_paged_resources(ta_sim_t *s)
{
    make_ours(s, "a-ghost");
    make_ours(s, "a-orphan");
    th_resp_t r;
    assert_int_equal(ta_sim_arm(s, "PUT", TA_AZ_CG "/foreign-1?" TA_AZ_ACI_V,
                                "{\"location\":\"eastus\",\"properties\":{\"osType\":\"Linux\","
                                "\"containers\":[{\"name\":\"web\",\"properties\":{\"image\":"
                                "\"nginx\",\"resources\":{\"requests\":{\"cpu\":1,\"memoryInGB\":"
                                "1}}}}]}}",
                                &r),
                     201);
    th_resp_free(&r);
}

/* Pages of one, an empty first page, nextLinks that write ":80"; the
 * agent talks to "http://management.azure.com" through azsim as a proxy,
 * so its nextLinks name ARM's host with the default port written out. */
static int setup_paged(void **state)
{
    pair_opts_t po = {.via_proxy = 1,
                      .paging = "{\"pageSize\":1,\"explicitPort\":true,\"emptyPages\":true}",
                      .extra_yaml = "reaper:\n  containerGroupGraceSeconds: 0\n"
                                    "  fileShareGraceSeconds: 1\n  maxOrphanFraction: 1.0\n",
                      .before_agent = make_paged_resources};
    return setup_with(state, &po);
}

static void test_paged_lists_with_explicit_port(void **state)
{
    ta_rc_t *c = ctx(state);
    /* What the agent is given: ARM's host, ":80" written out, a token. */
    assert_int_equal(ta_sim_token(&c->sim), 0);
    char url[512], auth[sizeof c->sim.token + 32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d" TA_AZ_CG "?" TA_AZ_ACI_V, c->sim.port);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->sim.token);
    const char *h[] = {auth, "Host: management.azure.com", NULL};
    th_resp_t r;
    th_http("GET", url, h, NULL, &r);
    assert_int_equal(r.status, 200);
    print_message("first page: %s\n", r.body);
    assert_non_null(strstr(r.body, "\"value\":[]"));
    assert_non_null(strstr(r.body, "\"nextLink\":\"http://management.azure.com:80/subscriptions/"));
    assert_non_null(strstr(r.body, "&$skipToken="));
    th_resp_free(&r);

    assert_true(wait_regions_listed(c, T_CONVERGE));
    cJSON *st = status_of(c);
    const cJSON *east = region_of(st, "eastus");
    print_message("eastus: lastListTime %s, lastListError %s\n", ta_str(east, "lastListTime"),
                  ta_str(east, "lastListError") ? ta_str(east, "lastListError") : "none");
    assert_null(ta_str(east, "lastListError"));
    cJSON_Delete(st);
    /* Three groups and two shares in eastus: every page was fetched. */
    assert_true(stat_of(c, "containerGroups.listByResourceGroup", "200") >= 4 + 2);
    assert_int_equal(stat_of(c, "containerGroups.listByResourceGroup", "400"), 0);

    /* An environment still converges. */
    put_env(c, "a-live", NULL, NULL, 201);
    cJSON_Delete(wait_phase(c, "a-live", "RUNNING", T_CONVERGE));
    /* DELETE of ids the agent never heard of: one with resources, which
     * go; one without, which finishes once the regions were listed. */
    delete_env(c, "a-ghost");
    delete_env(c, "a-never");
    assert_int_equal(ta_env_wait_gone(&c->agent, "a-never", T_CONVERGE), 0);
    assert_int_equal(ta_env_wait_gone(&c->agent, "a-ghost", T_CONVERGE), 0);
    assert_int_equal(deleted_in_sim(c, "containerGroup", "dev8-a-ghost"), 1);
    assert_int_equal(deleted_in_sim(c, "fileShare", "dev8-a-ghost"), 1);
    /* The reaper, once a full sync made the desired set authoritative. */
    th_resp_t s;
    ta_req(&c->agent, "PUT", ENV_PATH,
           "{\"items\":[{\"id\":\"a-live\",\"userId\":\"u-11\",\"name\":\"workspace\","
           "\"cloudRegion\":\"eastus\"}]}",
           &s);
    assert_int_equal(s.status, 200);
    th_resp_free(&s);
    long long t0 = ta_now_ms();
    while ((deleted_in_sim(c, "containerGroup", "dev8-a-orphan") < 1 ||
            deleted_in_sim(c, "fileShare", "dev8-a-orphan") < 1) &&
           ta_now_ms() - t0 < 20000)
        ta_sleep_ms(100);
    print_message("orphan reaped after %lld ms\n", ta_now_ms() - t0);
    assert_int_equal(deleted_in_sim(c, "containerGroup", "dev8-a-orphan"), 1);
    assert_int_equal(deleted_in_sim(c, "fileShare", "dev8-a-orphan"), 1);
    /* Nothing else was deleted; the foreign group is untouched. */
    assert_int_equal(deleted_in_sim(c, "containerGroup", NULL), 2);
    assert_int_equal(deleted_in_sim(c, "fileShare", NULL), 2);
    cJSON *res = ta_sim_get(&c->sim, "/_azsim/resources");
    assert_non_null(ta_sim_group(res, "foreign-1"));
    assert_non_null(ta_sim_group(res, "dev8-a-live"));
    cJSON_Delete(res);
    both_exit_cleanly(state);
}

/* ---- b. a userId that is not ASCII ------------------------------------------------- */

static void test_non_ascii_user_id(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "b-utf8", USER_UTF8, NULL, 201);
    cJSON *o = wait_phase(c, "b-utf8", "RUNNING", T_CONVERGE);
    assert_string_equal(ta_str(o, "spec.userId"), USER_UTF8);
    cJSON_Delete(o);
    /* Storage takes ASCII metadata values only: the agent encodes. */
    cJSON *res = ta_sim_get(&c->sim, "/_azsim/resources");
    const cJSON *sh = ta_sim_share(res, "dev8-b-utf8");
    assert_non_null(sh);
    assert_string_equal(ta_str(sh, "properties.metadata.dev8userid"), USER_META);
    assert_string_equal(ta_str(sh, "properties.metadata.dev8envid"), "b-utf8");
    cJSON_Delete(res);
    assert_int_equal(stat_of(c, "fileShares.create", "400"), 0);
    assert_int_equal(stat_of(c, "fileShares.create", NULL), 1);
    both_exit_cleanly(state);
}

/* ---- c. a share delete refused by leased snapshots -------------------------------- */

/* Checks for ta_env_wait: status.lastError.code equals arg. */
static int has_error_code(const cJSON *obj, const void *arg)
{
    const char *code = ta_str(obj, "status.lastError.code");
    return code && strcmp(code, arg) == 0;
}

static void test_share_delete_blocked_by_snapshots(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "c-snap", NULL, NULL, 201);
    put_env(c, "c-lease", NULL, NULL, 201);
    cJSON_Delete(wait_phase(c, "c-snap", "RUNNING", T_CONVERGE));
    cJSON_Delete(wait_phase(c, "c-lease", "RUNNING", T_CONVERGE));
    sim_post(&c->sim, "/_azsim/shares",
             "{\"account\":\"dev8eastus\",\"share\":\"dev8-c-snap\",\"snapshots\":3}");
    sim_post(&c->sim, "/_azsim/shares",
             "{\"account\":\"dev8eastus\",\"share\":\"dev8-c-lease\",\"snapshots\":1,"
             "\"leasedSnapshots\":1}");
    delete_env(c, "c-snap");
    delete_env(c, "c-lease");
    /* Snapshots without a lease go with the share ($include defaults to
     * snapshots): the agent sends no $include, so ShareHasSnapshots
     * (only for $include=none) cannot happen to it. */
    assert_int_equal(ta_env_wait_gone(&c->agent, "c-snap", T_CONVERGE), 0);
    assert_int_equal(deleted_in_sim(c, "fileShare", "dev8-c-snap"), 1);
    /* A leased snapshot blocks the delete: DELETING, Blocked, retried slowly. */
    cJSON *o = ta_env_wait(&c->agent, "c-lease", has_error_code, "DeleteShareWhenSnapshotLeased",
                           T_CONVERGE);
    assert_non_null(o);
    long long t_block = ta_now_ms();
    const char *next = ta_str(o, "status.retry.nextAttemptTime");
    print_message("blocked: phase %s, Synced %s/%s, lastError %s: %s, retry %g at %s\n",
                  ta_str(o, "status.phase"), cond_field(o, "Synced", "status"),
                  cond_field(o, "Synced", "reason"), ta_str(o, "status.lastError.code"),
                  ta_str(o, "status.lastError.message"), ta_num(o, "status.retry.attempts"),
                  next ? next : "none");
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    assert_string_equal(cond_field(o, "Synced", "status"), "False");
    assert_string_equal(cond_field(o, "Synced", "reason"), "Blocked");
    assert_non_null(strstr(ta_str(o, "status.lastError.message"),
                           "Unable to delete share because one or more share snapshots have "
                           "active leases."));
    assert_true(ta_num(o, "status.retry.attempts") >= 1);
    double ahead = seconds_until(next);
    assert_true(ahead >= 25 && ahead <= 65);
    cJSON_Delete(o);
    /* One delete attempt for the hold, however often resyncs come by. */
    ta_sleep_ms(8000);
    assert_int_equal(stat_of(c, "fileShares.delete", "409"), 1);
    o = ta_env_get(&c->agent, "c-lease", NULL);
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    cJSON_Delete(o);
    /* The lease ends; the next attempt (not before the hold) deletes it. */
    sim_post(&c->sim, "/_azsim/shares",
             "{\"account\":\"dev8eastus\",\"share\":\"dev8-c-lease\",\"leasedSnapshots\":0}");
    assert_int_equal(ta_env_wait_gone(&c->agent, "c-lease", (int)(ahead * 1000) + 15000), 0);
    long long waited = ta_now_ms() - t_block;
    print_message("deleted %lld ms after the block (retry was %.0f s ahead)\n", waited, ahead);
    assert_true(waited >= (long long)(ahead - 2) * 1000);
    assert_int_equal(stat_of(c, "fileShares.delete", "409"), 1);
    assert_int_equal(deleted_in_sim(c, "fileShare", "dev8-c-lease"), 1);
    both_exit_cleanly(state);
}

/* ---- d. a premium account's share sizes -------------------------------------------- */

static int setup_premium(void **state)
{
    pair_opts_t po = {.storage = "{\"accounts\":[{\"name\":\"dev8eastus\",\"kind\":"
                                 "\"FileStorage\",\"sku\":\"Premium_LRS\"}]}"};
    return setup_with(state, &po);
}

static void test_premium_account_share_size(void **state)
{
    ta_rc_t *c = ctx(state);
    /* The agent reads each region's account once, before its lists. */
    assert_true(wait_regions_listed(c, T_CONVERGE));
    assert_true(stat_of(c, "storageAccounts.getProperties", "200") >= 2);
    put_env(c, "d-small", NULL, "\"storageGB\":10", 201);
    cJSON *o = wait_phase(c, "d-small", "ERROR", T_CONVERGE);
    print_message("lastError: %s: %s\n", ta_str(o, "status.lastError.code"),
                  ta_str(o, "status.lastError.message"));
    assert_string_equal(ta_str(o, "status.lastError.code"), "StorageGBOutOfRange");
    cJSON_Delete(o);
    put_env(c, "d-fits", NULL, "\"storageGB\":100", 201);
    cJSON_Delete(wait_phase(c, "d-fits", "RUNNING", T_CONVERGE));
    /* The refused size never reached Azure, also not by a retry. */
    ta_sleep_ms(TA_RC_RESYNC_S * 1000);
    o = wait_phase(c, "d-small", "ERROR", 1000);
    cJSON_Delete(o);
    cJSON *res = ta_sim_get(&c->sim, "/_azsim/resources");
    assert_null(ta_sim_share(res, "dev8-d-small"));
    assert_int_equal(ta_num(ta_sim_share(res, "dev8-d-fits"), "properties.shareQuota"), 100);
    cJSON_Delete(res);
    assert_int_equal(stat_of(c, "fileShares.create", NULL), 1);
    assert_int_equal(stat_of(c, "fileShares.create", "400"), 0);
    both_exit_cleanly(state);
}

/* ---- e. a regenerated storage key --------------------------------------------------- */

static void test_key_rotation_new_group_recovers(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "e-one", NULL, NULL, 201);
    cJSON_Delete(wait_phase(c, "e-one", "RUNNING", T_CONVERGE));
    long keys_before = stat_of(c, "storageAccounts.listKeys", "200");
    sim_post(&c->sim, "/_azsim/regenerateKey", "{\"account\":\"dev8eastus\",\"keyName\":\"key1\"}");
    put_env(c, "e-two", NULL, NULL, 201);
    /* The first provisioning mounts with the cached (old) key and fails;
     * the retry reads the keys again and works. */
    char codes[256] = "", mount_error[512] = "";
    long long end = ta_now_ms() + 30000;
    int running = 0;
    while (!running && ta_now_ms() < end) {
        cJSON *o = ta_env_get(&c->agent, "e-two", NULL);
        const char *code = ta_str(o, "status.lastError.code");
        const char *msg = ta_str(o, "status.lastError.message");
        if (code && !strstr(codes, code) && strlen(codes) + strlen(code) + 2 < sizeof codes)
            snprintf(codes + strlen(codes), sizeof codes - strlen(codes), "%s ", code);
        if (msg && strstr(msg, "mount error"))
            snprintf(mount_error, sizeof mount_error, "%s", msg);
        running = ta_is_phase(o, "RUNNING");
        cJSON_Delete(o);
        ta_sleep_ms(50);
    }
    long keys_after = stat_of(c, "storageAccounts.listKeys", "200");
    long creates = stat_of(c, "containerGroups.createOrUpdate", NULL);
    print_message("errors seen: %s(%s); listKeys %ld -> %ld; group PUTs %ld\n", codes, mount_error,
                  keys_before, keys_after, creates);
    assert_true(running);
    /* ACI's FailedMount: Azure's code, read from the failed create's
     * operation (ProvisioningFailed when the operation carries none). */
    assert_true(strstr(codes, "FailedMount") || strstr(codes, "ProvisioningFailed"));
    assert_non_null(strstr(mount_error, "mount error(13): Permission denied"));
    assert_true(keys_after > keys_before);
    /* A handful of PUTs: e-one's, e-two's failed one and its retry. */
    assert_true(creates >= 3 && creates <= 5);
    /* The running group keeps its mount and is not recreated. */
    cJSON_Delete(wait_phase(c, "e-one", "RUNNING", 1000));
    assert_int_equal(deleted_in_sim(c, "containerGroup", "dev8-e-one"), 0);
    both_exit_cleanly(state);
}

/* ---- f. a region whose lists fail with 403 ----------------------------------------- */

static int setup_fast_resync(void **state)
{
    pair_opts_t po = {.resync_s = 1};
    return setup_with(state, &po);
}

/* Checks for ta_env_wait: the Synced condition has status and reason
 * "status/reason" (arg). */
static int synced_is(const cJSON *obj, const void *arg)
{
    const char *st = cond_field(obj, "Synced", "status");
    const char *reason = cond_field(obj, "Synced", "reason");
    char want[64];
    snprintf(want, sizeof want, "%s/%s", st ? st : "", reason ? reason : "");
    return strcmp(want, arg) == 0;
}

static void test_region_stale_on_authorization_failures(void **state)
{
    ta_rc_t *c = ctx(state);
    put_env(c, "f-env", NULL, NULL, 201);
    cJSON *o = wait_phase(c, "f-env", "RUNNING", T_CONVERGE);
    cJSON_Delete(o);
    o = ta_env_wait(&c->agent, "f-env", synced_is, "True/ReconcileSuccess", T_CONVERGE);
    assert_non_null(o);
    cJSON_Delete(o);
    assert_int_equal(ta_sim_faults(&c->sim, "{\"rate403\":1}"), 0);
    long long t0 = ta_now_ms();
    long lists0 = stat_of(c, "containerGroups.listByResourceGroup", NULL);
    /* Three failed rounds (a second apart) make the region stale. */
    o = ta_env_wait(&c->agent, "f-env", synced_is, "Unknown/AzureUnreachable", T_CONVERGE);
    long long t_stale = ta_now_ms() - t0;
    assert_non_null(o);
    print_message("stale after %lld ms: %s\n", t_stale, cond_field(o, "Synced", "message"));
    assert_string_equal(ta_str(o, "status.phase"), "RUNNING");
    cJSON_Delete(o);
    cJSON *st = status_of(c);
    const cJSON *east = region_of(st, "eastus");
    print_message("eastus: stale %d, failedLists %g, lastListError %s\n",
                  cJSON_IsTrue(ta_path(east, "stale")), ta_num(east, "failedLists"),
                  ta_str(east, "lastListError"));
    assert_true(cJSON_IsTrue(ta_path(east, "stale")));
    assert_true(ta_num(east, "failedLists") >= 3);
    assert_non_null(ta_str(east, "lastListError"));
    assert_non_null(strstr(ta_str(east, "lastListError"), "does not have authorization"));
    cJSON_Delete(st);
    assert_true(metric(c, "dev8_region_stale{region=\"eastus\"} ") == 1);
    /* A 403 is not retried: about one list per region and resync. */
    long lists = stat_of(c, "containerGroups.listByResourceGroup", NULL) - lists0;
    long long elapsed_s = (ta_now_ms() - t0) / 1000 + 1;
    print_message("%ld group lists in %lld s (403: %ld)\n", lists, elapsed_s,
                  stat_of(c, "containerGroups.listByResourceGroup", "403"));
    assert_true(lists <= 2 * (elapsed_s + 1));
    /* The fault clears: the next lists bring it back. */
    assert_int_equal(ta_sim_faults(&c->sim, "{\"rate403\":0}"), 0);
    o = ta_env_wait(&c->agent, "f-env", synced_is, "True/ReconcileSuccess", T_CONVERGE);
    assert_non_null(o);
    assert_string_equal(ta_str(o, "status.phase"), "RUNNING");
    cJSON_Delete(o);
    st = status_of(c);
    assert_false(cJSON_IsTrue(ta_path(region_of(st, "eastus"), "stale")));
    cJSON_Delete(st);
    assert_true(metric(c, "dev8_region_stale{region=\"eastus\"} ") == 0);
    /* Nothing was recreated or deleted on the way. */
    assert_int_equal(stat_of(c, "containerGroups.createOrUpdate", NULL), 1);
    assert_int_equal(stat_of(c, "containerGroups.delete", NULL), 0);
    both_exit_cleanly(state);
}

int main(void)
{
#define T(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, ta_rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_paged_lists_with_explicit_port, setup_paged),
        T(test_non_ascii_user_id, setup_default),
        T(test_share_delete_blocked_by_snapshots, setup_default),
        T(test_premium_account_share_size, setup_premium),
        T(test_key_rotation_new_group_recovers, setup_default),
        T(test_region_stale_on_authorization_failures, setup_fast_resync),
    };
#undef T
    return cmocka_run_group_tests_name("azure_storage", tests, NULL, NULL);
}
