/*
 * bin/azsim over HTTP: token endpoints (client secret, client assertion,
 * IMDS), authentication failures and token expiry, container group
 * PUT/GET/list paging (page size 2)/stop/start/DELETE as LROs, file shares
 * and listKeys, throttling with Retry-After, faults (errors, latency,
 * dropped connections, failed provisioning), stats, resources, reset, and
 * a clean exit 0 on SIGTERM (a sanitized build exits non-zero on leaks).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "harness.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUB "11111111-2222-3333-4444-555555555555"
#define RG "/subscriptions/" SUB "/resourceGroups/rg-dev8-eastus"
#define CG RG "/providers/Microsoft.ContainerInstance/containerGroups"
#define ACI_V "?api-version=2025-09-01"
#define SA RG "/providers/Microsoft.Storage/storageAccounts/dev8eastus"
#define FS SA "/fileServices/default/shares"
#define FS_V "?api-version=2025-01-01"
#define SECRET_ENV "ghp_TOPSECRET_VALUE"

#define GROUP_BODY                                                                                 \
    "{\"location\":\"eastus\",\"tags\":{\"dev8-env-id\":\"e1\"},\"properties\":{\"osType\":"       \
    "\"Linux\",\"containers\":[{\"name\":\"workspace\",\"properties\":{\"image\":\"node:20\","     \
    "\"resources\":{\"requests\":{\"cpu\":1,\"memoryInGB\":2}},\"environmentVariables\":[{"        \
    "\"name\":\"TOKEN\",\"secureValue\":\"" SECRET_ENV "\"}]}}],\"ipAddress\":{\"type\":"          \
    "\"Public\",\"dnsNameLabel\":\"dev8-e1\",\"ports\":[{\"port\":8080}]}}}"

static const char *const CONFIG_YAML = "subscriptions: [\"" SUB "\"]\n"
                                       "clients:\n"
                                       "  - {tenantId: t1, clientId: app1, clientSecret: s3cret}\n"
                                       "  - {clientId: wi-app, federated: true}\n";

typedef struct sim {
    th_proc_t p;
    char token[2048];
} sim_t;

static sim_t g_main; /* provision 300 ms, page size 2 */

/* ---- helpers ------------------------------------------------------------ */

static int start_sim(sim_t *s, const char *name, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    char *bin = th_bin("azsim");
    char *cfg = th_write_file("azsim.yaml", CONFIG_YAML);
    int port = th_free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    const char *argv[32] = {bin, "--listen", listen, "--config", cfg};
    size_t n = 5;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int rc = th_start(&s->p, name, (char *const *)argv, NULL, port, "/_azsim/stats", 10000);
    free(bin);
    free(cfg);
    return rc;
}

static cJSON *json(const th_resp_t *r)
{
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    return j;
}

static const char *jstr(const cJSON *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsString(cur) ? cur->valuestring : NULL;
}

/* A string field of a response body, copied (or "" when absent). */
static void field(const th_resp_t *r, const char *path, char *out, size_t outlen)
{
    cJSON *j = json(r);
    const char *v = jstr(j, path);
    snprintf(out, outlen, "%s", v ? v : "");
    cJSON_Delete(j);
}

static long form_post(const sim_t *s, const char *path, const char *form, th_resp_t *r)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->p.port, path);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    th_http("POST", url, h, form, r);
    return r->status;
}

static void get_token(sim_t *s)
{
    th_resp_t r;
    assert_int_equal(form_post(s, "/t1/oauth2/v2.0/token",
                               "grant_type=client_credentials&client_id=app1&client_secret=s3cret"
                               "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
                               &r),
                     200);
    field(&r, "access_token", s->token, sizeof(s->token));
    assert_true(s->token[0]);
    th_resp_free(&r);
}

/* An ARM call with the sim's token; url may be absolute (a nextLink). */
static long arm(const sim_t *s, const char *method, const char *path, const char *body,
                th_resp_t *r)
{
    if (strncmp(path, "http://", 7) == 0) {
        char auth[2100];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", s->token);
        const char *h[] = {auth, NULL};
        th_http(method, path, h, body, r);
        return r->status;
    }
    th_api(s->p.port, method, path, s->token[0] ? s->token : NULL, body, r);
    return r->status;
}

static long ctl(const sim_t *s, const char *method, const char *path, const char *body,
                th_resp_t *r)
{
    th_api(s->p.port, method, path, NULL, body, r);
    return r->status;
}

/* Polls GET path until the string at field equals want. */
typedef struct poll_ud {
    const sim_t *s;
    const char *path, *field, *want;
    long status; /* or, when want is NULL, until this status */
} poll_ud_t;

static int poll_pred(void *ud)
{
    poll_ud_t *p = ud;
    th_resp_t r;
    long st = arm(p->s, "GET", p->path, NULL, &r);
    int ok;
    if (!p->want) {
        ok = st == p->status;
    } else {
        char v[128];
        field(&r, p->field, v, sizeof(v));
        ok = st == 200 && strcmp(v, p->want) == 0;
    }
    th_resp_free(&r);
    return ok;
}

static void wait_field(const sim_t *s, const char *path, const char *f, const char *want)
{
    poll_ud_t p = {.s = s, .path = path, .field = f, .want = want};
    if (th_wait_until(poll_pred, &p, 5000) != 0)
        fail_msg("%s never had %s = %s", path, f, want);
}

static void wait_status(const sim_t *s, const char *path, long status)
{
    poll_ud_t p = {.s = s, .path = path, .status = status};
    if (th_wait_until(poll_pred, &p, 5000) != 0)
        fail_msg("%s never answered %ld", path, status);
}

static int count_items(const th_resp_t *r)
{
    cJSON *j = json(r);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "value"));
    cJSON_Delete(j);
    return n;
}

/* ---- setup -------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    const char *extra[] = {"--provision-ms",      "300", "--delete-ms", "300", "--page-size", "2",
                           "--share-recreate-ms", "300", "--seed",      "5",   NULL};
    if (start_sim(&g_main, "azsim-main", extra) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_main.p.pid) {
        int rc = th_stop(&g_main.p, SIGTERM, 10000);
        char *log = th_read_log(&g_main.p);
        int leaked = log && (strstr(log, SECRET_ENV) || strstr(log, "s3cret"));
        if (rc != 0 || leaked) {
            fprintf(stderr, "azsim exit %d%s; log tail:\n%s\n", rc,
                    leaked ? " (a secret was logged)" : "",
                    log ? log + (strlen(log) > 3000 ? strlen(log) - 3000 : 0) : "");
            free(log);
            return -1;
        }
        free(log);
    }
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_tokens(void **state)
{
    (void)state;
    sim_t *s = &g_main;
    th_resp_t r;
    get_token(s);
    assert_int_equal(form_post(s, "/t1/oauth2/v2.0/token",
                               "grant_type=client_credentials&client_id=app1&client_secret=nope"
                               "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
                               &r),
                     401);
    char v[128];
    field(&r, "error", v, sizeof(v));
    assert_string_equal(v, "invalid_client");
    th_resp_free(&r);
    /* Workload identity: a client assertion. */
    assert_int_equal(form_post(s, "/t1/oauth2/v2.0/token",
                               "grant_type=client_credentials&client_id=wi-app&scope=https%3A%2F"
                               "%2Fmanagement.azure.com%2F.default&client_assertion_type=urn%3A"
                               "ietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&"
                               "client_assertion=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
                               &r),
                     200);
    th_resp_free(&r);
    /* IMDS: Metadata: true required; expires_in is a string. */
    char url[256];
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%d/metadata/identity/oauth2/token?api-version=2018-02-01&"
             "resource=https%%3A%%2F%%2Fmanagement.azure.com%%2F",
             s->p.port);
    th_http("GET", url, NULL, NULL, &r);
    assert_int_equal(r.status, 400);
    th_resp_free(&r);
    const char *md[] = {"Metadata: true", NULL};
    th_http("GET", url, md, NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *j = json(&r);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "expires_in")));
    sim_t imds = *s;
    snprintf(imds.token, sizeof(imds.token), "%s", jstr(j, "access_token"));
    cJSON_Delete(j);
    th_resp_free(&r);
    assert_int_equal(arm(&imds, "GET", CG ACI_V, NULL, &r), 200);
    th_resp_free(&r);
}

static void test_auth_failures(void **state)
{
    (void)state;
    sim_t anon = g_main;
    th_resp_t r;
    char v[128];
    anon.token[0] = '\0';
    assert_int_equal(arm(&anon, "GET", CG ACI_V, NULL, &r), 401);
    char *www = th_resp_header(&r, "WWW-Authenticate");
    assert_non_null(www);
    free(www);
    th_resp_free(&r);
    snprintf(anon.token, sizeof(anon.token), "abc.def.ghi");
    assert_int_equal(arm(&anon, "GET", CG ACI_V, NULL, &r), 401);
    field(&r, "error.code", v, sizeof(v));
    assert_string_equal(v, "InvalidAuthenticationToken");
    th_resp_free(&r);
    /* The config restricts subscriptions. */
    get_token(&g_main);
    assert_int_equal(arm(&g_main, "GET",
                         "/subscriptions/99999999-2222-3333-4444-555555555555/providers/"
                         "Microsoft.ContainerInstance/containerGroups" ACI_V,
                         NULL, &r),
                     404);
    field(&r, "error.code", v, sizeof(v));
    assert_string_equal(v, "SubscriptionNotFound");
    th_resp_free(&r);
    assert_int_equal(arm(&g_main, "GET", CG, NULL, &r), 400);
    field(&r, "error.code", v, sizeof(v));
    assert_string_equal(v, "MissingApiVersionParameter");
    th_resp_free(&r);
}

static void test_group_lifecycle(void **state)
{
    (void)state;
    sim_t *s = &g_main;
    th_resp_t r;
    char v[512];
    get_token(s);
    assert_int_equal(arm(s, "PUT", CG "/g1" ACI_V, GROUP_BODY, &r), 201);
    char *op = th_resp_header(&r, "Azure-AsyncOperation");
    assert_non_null(op);
    char *req_id = th_resp_header(&r, "x-ms-request-id");
    char *writes = th_resp_header(&r, "x-ms-ratelimit-remaining-subscription-writes");
    assert_non_null(req_id);
    assert_non_null(writes);
    free(req_id);
    free(writes);
    field(&r, "properties.provisioningState", v, sizeof(v));
    assert_string_equal(v, "Creating");
    assert_null(strstr(r.body, SECRET_ENV));
    th_resp_free(&r);
    /* The operation URL is absolute and points at azsim itself. */
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "http://127.0.0.1:%d/", s->p.port);
    assert_true(strncmp(op, prefix, strlen(prefix)) == 0);
    wait_field(s, op, "status", "Succeeded");
    free(op);
    assert_int_equal(arm(s, "GET", CG "/g1" ACI_V, NULL, &r), 200);
    field(&r, "properties.instanceView.state", v, sizeof(v));
    assert_string_equal(v, "Running");
    field(&r, "properties.ipAddress.fqdn", v, sizeof(v));
    assert_string_equal(v, "dev8-e1.eastus.azurecontainer.io");
    field(&r, "properties.ipAddress.ip", v, sizeof(v));
    assert_true(strncmp(v, "20.", 3) == 0);
    assert_null(strstr(r.body, SECRET_ENV));
    th_resp_free(&r);

    /* List, page size 2, by following nextLink. */
    assert_int_equal(arm(s, "PUT", CG "/g2" ACI_V, GROUP_BODY, &r), 201);
    th_resp_free(&r);
    assert_int_equal(arm(s, "PUT", CG "/g3" ACI_V, GROUP_BODY, &r), 201);
    th_resp_free(&r);
    int pages = 0, items = 0;
    char next[1024];
    snprintf(next, sizeof(next), "%s", CG ACI_V);
    while (next[0]) {
        assert_int_equal(arm(s, "GET", next, NULL, &r), 200);
        pages++;
        items += count_items(&r);
        assert_null(strstr(r.body, "instanceView"));
        assert_null(strstr(r.body, SECRET_ENV));
        field(&r, "nextLink", next, sizeof(next));
        if (next[0])
            assert_true(strncmp(next, prefix, strlen(prefix)) == 0);
        th_resp_free(&r);
    }
    assert_int_equal(pages, 2);
    assert_int_equal(items, 3);

    /* Secrets appear only in the control API. */
    assert_int_equal(ctl(s, "GET", "/_azsim/resources", NULL, &r), 200);
    assert_non_null(strstr(r.body, SECRET_ENV));
    th_resp_free(&r);

    /* stop 204 -> Stopped; start 202 -> Running. */
    assert_int_equal(arm(s, "POST", CG "/g1/stop" ACI_V, NULL, &r), 204);
    th_resp_free(&r);
    assert_int_equal(arm(s, "GET", CG "/g1" ACI_V, NULL, &r), 200);
    field(&r, "properties.instanceView.state", v, sizeof(v));
    assert_string_equal(v, "Stopped");
    th_resp_free(&r);
    assert_int_equal(arm(s, "POST", CG "/g1/start" ACI_V, NULL, &r), 202);
    char *sop = th_resp_header(&r, "Azure-AsyncOperation");
    assert_non_null(sop);
    th_resp_free(&r);
    wait_field(s, CG "/g1" ACI_V, "properties.instanceView.state", "Running");
    wait_field(s, sop, "status", "Succeeded");
    free(sop);
    assert_int_equal(arm(s, "POST", CG "/g1/restart" ACI_V, NULL, &r), 204);
    th_resp_free(&r);

    /* DELETE: 202 with the LRO headers, Deleting, then gone; 204 after. */
    assert_int_equal(arm(s, "DELETE", CG "/g1" ACI_V, NULL, &r), 202);
    char *loc = th_resp_header(&r, "Location");
    char *ra = th_resp_header(&r, "Retry-After");
    char *aop = th_resp_header(&r, "Azure-AsyncOperation");
    assert_non_null(loc);
    assert_non_null(ra);
    assert_non_null(aop);
    th_resp_free(&r);
    assert_int_equal(arm(s, "GET", CG "/g1" ACI_V, NULL, &r), 200);
    field(&r, "properties.provisioningState", v, sizeof(v));
    assert_string_equal(v, "Deleting");
    th_resp_free(&r);
    wait_status(s, CG "/g1" ACI_V, 404);
    wait_status(s, loc, 204);
    wait_field(s, aop, "status", "Succeeded");
    free(loc);
    free(ra);
    free(aop);
    assert_int_equal(arm(s, "DELETE", CG "/g1" ACI_V, NULL, &r), 204);
    th_resp_free(&r);
    assert_int_equal(ctl(s, "GET", "/_azsim/stats", NULL, &r), 200);
    cJSON *j = json(&r);
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "deleted"), 0);
    assert_string_equal(jstr(d, "kind"), "containerGroup");
    assert_non_null(strstr(jstr(d, "id"), "/containerGroups/g1"));
    const cJSON *puts =
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "requests"), "containerGroups.createOrUpdate");
    assert_int_equal(cJSON_GetObjectItem(puts, "201")->valueint, 3);
    cJSON_Delete(j);
    th_resp_free(&r);
}

static void test_file_shares(void **state)
{
    (void)state;
    sim_t *s = &g_main;
    th_resp_t r;
    char v[256];
    get_token(s);
    const char *body = "{\"properties\":{\"shareQuota\":20,\"metadata\":{\"dev8managedby\":"
                       "\"dev8agent\"}}}";
    assert_int_equal(arm(s, "PUT", FS "/dev8-e1" FS_V, body, &r), 201);
    th_resp_free(&r);
    assert_int_equal(arm(s, "PUT", FS "/dev8-e1" FS_V, body, &r), 200);
    th_resp_free(&r);
    assert_int_equal(arm(s, "GET", FS "/dev8-e1" FS_V, NULL, &r), 200);
    field(&r, "properties.metadata.dev8managedby", v, sizeof(v));
    assert_string_equal(v, "dev8agent");
    th_resp_free(&r);
    assert_int_equal(arm(s, "GET", FS FS_V, NULL, &r), 200);
    assert_null(strstr(r.body, "metadata"));
    th_resp_free(&r);
    assert_int_equal(arm(s, "GET", FS FS_V "&$expand=metadata", NULL, &r), 200);
    assert_non_null(strstr(r.body, "dev8managedby"));
    th_resp_free(&r);
    assert_int_equal(arm(s, "PUT", FS "/bad" FS_V,
                         "{\"properties\":{\"metadata\":{\"dev8-managed-by\":\"x\"}}}", &r),
                     400);
    th_resp_free(&r);
    assert_int_equal(arm(s, "POST", SA "/listKeys" FS_V, NULL, &r), 200);
    cJSON *j = json(&r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "keys")), 2);
    cJSON_Delete(j);
    th_resp_free(&r);
    assert_int_equal(arm(s, "DELETE", FS "/dev8-e1" FS_V, NULL, &r), 200);
    th_resp_free(&r);
    assert_int_equal(arm(s, "PUT", FS "/dev8-e1" FS_V, body, &r), 409);
    field(&r, "error.code", v, sizeof(v));
    assert_string_equal(v, "ShareBeingDeleted");
    th_resp_free(&r);
    assert_int_equal(arm(s, "DELETE", FS "/dev8-e1" FS_V, NULL, &r), 204);
    th_resp_free(&r);
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(arm(s, "PUT", FS "/dev8-e1" FS_V, body, &r), 201);
    th_resp_free(&r);
}

static void test_faults(void **state)
{
    (void)state;
    sim_t *s = &g_main;
    th_resp_t r;
    char v[256];
    get_token(s);
    assert_int_equal(ctl(s, "POST", "/_azsim/faults", "{\"rate500\":1}", &r), 200);
    th_resp_free(&r);
    assert_int_equal(arm(s, "GET", CG ACI_V, NULL, &r), 500);
    th_resp_free(&r);
    assert_int_equal(ctl(s, "POST", "/_azsim/faults",
                         "{\"rate500\":0,\"rate503\":1,\"retryAfterSeconds\":3}", &r),
                     200);
    th_resp_free(&r);
    assert_int_equal(arm(s, "GET", CG ACI_V, NULL, &r), 503);
    char *ra = th_resp_header(&r, "Retry-After");
    assert_string_equal(ra, "3");
    free(ra);
    th_resp_free(&r);
    /* A dropped connection: no answer at all. */
    assert_int_equal(ctl(s, "POST", "/_azsim/faults", "{\"rate503\":0,\"resetRate\":1}", &r), 200);
    th_resp_free(&r);
    arm(s, "GET", CG ACI_V, NULL, &r);
    assert_int_equal(r.status, 0);
    th_resp_free(&r);
    /* Latency: delayed on a timer, the server keeps answering others. */
    assert_int_equal(ctl(s, "POST", "/_azsim/faults", "{\"resetRate\":0,\"latencyMs\":300}", &r),
                     200);
    th_resp_free(&r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(arm(s, "GET", CG ACI_V, NULL, &r), 200);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    th_resp_free(&r);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 290);
    /* Failed provisioning, reported by the group and its operation. */
    assert_int_equal(
        ctl(s, "POST", "/_azsim/faults", "{\"latencyMs\":0,\"failProvisioningRate\":1}", &r), 200);
    th_resp_free(&r);
    assert_int_equal(arm(s, "PUT", CG "/gfail" ACI_V, GROUP_BODY, &r), 201);
    char *op = th_resp_header(&r, "Azure-AsyncOperation");
    th_resp_free(&r);
    wait_field(s, op, "status", "Failed");
    assert_int_equal(arm(s, "GET", op, NULL, &r), 200);
    field(&r, "error.code", v, sizeof(v));
    assert_string_equal(v, "FailedMount");
    th_resp_free(&r);
    free(op);
    assert_int_equal(arm(s, "GET", CG "/gfail" ACI_V, NULL, &r), 200);
    field(&r, "properties.provisioningState", v, sizeof(v));
    assert_string_equal(v, "Failed");
    th_resp_free(&r);
    assert_int_equal(ctl(s, "POST", "/_azsim/faults", "{\"failProvisioningRate\":0}", &r), 200);
    th_resp_free(&r);
    assert_int_equal(ctl(s, "POST", "/_azsim/faults", "{\"nope\":1}", &r), 400);
    th_resp_free(&r);
    /* Stats count the injected answers by operation and status. */
    assert_int_equal(ctl(s, "GET", "/_azsim/stats", NULL, &r), 200);
    cJSON *j = json(&r);
    const cJSON *lst = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "requests"),
                                           "containerGroups.listByResourceGroup");
    assert_non_null(cJSON_GetObjectItem(lst, "500"));
    assert_non_null(cJSON_GetObjectItem(lst, "503"));
    cJSON_Delete(j);
    th_resp_free(&r);
}

static void test_reset(void **state)
{
    (void)state;
    sim_t *s = &g_main;
    th_resp_t r;
    assert_int_equal(ctl(s, "POST", "/_azsim/reset", NULL, &r), 204);
    th_resp_free(&r);
    assert_int_equal(ctl(s, "GET", "/_azsim/resources", NULL, &r), 200);
    assert_string_equal(r.body, "{\"containerGroups\":[],\"fileShares\":[]}");
    th_resp_free(&r);
    assert_int_equal(ctl(s, "GET", "/_azsim/stats", NULL, &r), 200);
    cJSON *j = json(&r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "requests")), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "deleted")), 0);
    cJSON_Delete(j);
    th_resp_free(&r);
    /* Tokens stay valid across a reset. */
    assert_int_equal(arm(s, "GET", CG ACI_V, NULL, &r), 200);
    assert_int_equal(count_items(&r), 0);
    th_resp_free(&r);
}

/* A second emulator: real throttling at a hundredth of ARM's budget and
 * two-second tokens. */
static void test_throttle_and_expiry(void **state)
{
    (void)state;
    sim_t s;
    const char *extra[] = {"--throttle-scale", "0.01", "--token-ttl", "2", NULL};
    assert_int_equal(start_sim(&s, "azsim-throttle", extra), 0);
    th_resp_t r;
    char v[256];
    get_token(&s);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(arm(&s, "PUT", FS "/s1x" FS_V, "{}", &r), 201);
    th_resp_free(&r);
    assert_int_equal(arm(&s, "PUT", FS "/s2x" FS_V, "{}", &r), 201);
    th_resp_free(&r);
    assert_int_equal(arm(&s, "PUT", FS "/s3x" FS_V, "{}", &r), 429);
    char *ra = th_resp_header(&r, "Retry-After");
    char *rem = th_resp_header(&r, "x-ms-ratelimit-remaining-subscription-writes");
    assert_non_null(ra);
    assert_true(atoi(ra) >= 1);
    assert_string_equal(rem, "0");
    free(ra);
    free(rem);
    field(&r, "error.code", v, sizeof(v));
    assert_string_equal(v, "SubscriptionRequestsThrottled");
    th_resp_free(&r);
    /* Wait out the token: 401 ExpiredAuthenticationToken, then refresh. */
    struct timespec ts = {2, 200 * 1000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(arm(&s, "GET", FS "/s1x" FS_V, NULL, &r), 401);
    field(&r, "error.code", v, sizeof(v));
    assert_string_equal(v, "ExpiredAuthenticationToken");
    th_resp_free(&r);
    get_token(&s);
    assert_int_equal(arm(&s, "GET", FS "/s1x" FS_V, NULL, &r), 200);
    th_resp_free(&r);
    assert_int_equal(th_stop(&s.p, SIGINT, 10000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_auth_failures),
        cmocka_unit_test(test_group_lifecycle),
        cmocka_unit_test(test_file_shares),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_throttle_and_expiry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
