/*
 * Integration tests of the desired-state API (DESIGN.md section 3): the
 * real bin/dev8-agent is started per test with a fresh config and driven
 * over HTTP. Each test ends by stopping the agent with SIGTERM and
 * requiring exit status 0 (under `make SANITIZE=address,undefined test`
 * that also fails on leaks).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_PATH "/api/v1/environments"

/* Prints the answer before failing, so a failure says what came back. */
#define ASSERT_STATUS(r, st)                                                                       \
    do {                                                                                           \
        if ((r).status != (st))                                                                    \
            print_message("unexpected answer %ld (wanted %d): %.600s\n", (r).status, (int)(st),    \
                          (r).body ? (r).body : "");                                               \
        assert_int_equal((r).status, (st));                                                        \
    } while (0)

#define ASSERT_ERROR(r, st, code)                                                                  \
    do {                                                                                           \
        ASSERT_STATUS(r, st);                                                                      \
        assert_string_equal(ta_err_code(&(r)), (code));                                            \
        assert_error_shape(&(r));                                                                  \
    } while (0)

static ta_agent_t *agent(void **state)
{
    return *state;
}

/* Every test ends here: SIGTERM, and exit status 0 is required (a
 * sanitized agent exits non-zero on leaks). ta_teardown only cleans up
 * after a test that failed before reaching this. */
static void agent_exits_cleanly(void **state)
{
    ta_agent_t *a = *state;
    if (a->bin)
        assert_int_equal(ta_stop(a), 0);
}

/* {"error":{"code":"..","message":".."}} with a non-empty message. */
static void assert_error_shape(const th_resp_t *r)
{
    cJSON *j = ta_json(r);
    assert_non_null(j);
    const char *msg = ta_str(j, "error.message");
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
    char *ct = th_resp_header(r, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "application/json"));
    free(ct);
    cJSON_Delete(j);
}

static void put_ok(ta_agent_t *a, const char *id, const char *user, const char *region,
                   const char *extra, long want)
{
    char *body = ta_spec(user, "workspace", region, extra);
    long st = ta_put(a, id, body);
    free(body);
    if (st != want)
        print_message("PUT %s answered %ld, wanted %ld\n", id, st, want);
    assert_int_equal(st, want);
}

static cJSON *get_obj(ta_agent_t *a, const char *id, long want)
{
    char path[256];
    snprintf(path, sizeof path, ENV_PATH "/%s", id);
    th_resp_t r;
    ta_req(a, "GET", path, NULL, &r);
    ASSERT_STATUS(r, want);
    cJSON *j = ta_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    return j;
}

/* GET <path> expecting 200; returns the parsed list answer. */
static cJSON *list(ta_agent_t *a, const char *query)
{
    char path[1024];
    snprintf(path, sizeof path, ENV_PATH "%s", query);
    th_resp_t r;
    ta_req(a, "GET", path, NULL, &r);
    ASSERT_STATUS(r, 200);
    cJSON *j = ta_json(&r);
    th_resp_free(&r);
    assert_non_null(j);
    assert_true(cJSON_IsArray(ta_path(j, "items")));
    assert_true(cJSON_IsNumber(ta_path(j, "resourceVersion")));
    assert_true(cJSON_IsString(ta_path(j, "continue")));
    return j;
}

/* The ids of a list answer joined with ',' into out. */
static const char *ids_of(const cJSON *list_answer, char *out, size_t outlen)
{
    out[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, ta_path(list_answer, "items"))
    {
        const char *id = ta_str(it, "id");
        size_t n = strlen(out);
        snprintf(out + n, outlen - n, "%s%s", n ? "," : "", id ? id : "?");
    }
    return out;
}

static void url_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 4 < outlen; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "%%%02X", c);
    }
    out[o] = '\0';
}

/* --- probes, metrics, auth, request ids ---------------------------------- */

static void test_health_ready_metrics_need_no_key(void **state)
{
    ta_agent_t *a = agent(state);
    th_resp_t r;
    ta_api(a, "GET", "/healthz", NULL, NULL, &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);

    /* These tests run without an Azure endpoint (a closed loopback port):
     * never ready, and it says why. Readiness with a credential is
     * covered against azsim in test_reconcile. */
    ta_api(a, "GET", "/readyz", NULL, NULL, &r);
    ASSERT_ERROR(r, 503, "NotReady");
    assert_non_null(strstr(r.body, "Azure"));
    th_resp_free(&r);

    /* Some API traffic first, so the request counter has samples. */
    ta_api(a, "GET", ENV_PATH, TA_KEY1, NULL, &r);
    th_resp_free(&r);
    ta_api(a, "GET", "/metrics", NULL, NULL, &r);
    ASSERT_STATUS(r, 200);
    char *ct = th_resp_header(&r, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "text/plain"));
    free(ct);
    assert_non_null(strstr(r.body, "dev8_http_requests_total"));
    assert_non_null(strstr(r.body, "dev8_environments"));
    assert_non_null(strstr(r.body, "# TYPE dev8_http_requests_total counter"));
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

/* Every /api/v1 route answers 401 without a key, and changes nothing. */
static void test_every_api_route_requires_a_key(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "keep1", "u1", "eastus", NULL, 201);
    char *spec = ta_spec("u1", "n", "eastus", NULL);
    char sync[512];
    snprintf(sync, sizeof sync, "{\"items\":[]}");
    const struct {
        const char *method, *path, *body;
    } routes[] = {
        {"GET", ENV_PATH, NULL},
        {"POST", ENV_PATH, spec},
        {"PUT", ENV_PATH, sync},
        {"GET", ENV_PATH "/keep1", NULL},
        {"PUT", ENV_PATH "/keep1", spec},
        {"PUT", ENV_PATH "/newone", spec},
        {"DELETE", ENV_PATH "/keep1", NULL},
        {"POST", ENV_PATH "/keep1/start", ""},
        {"POST", ENV_PATH "/keep1/stop", ""},
        {"POST", ENV_PATH "/keep1/activity", ""},
        {"GET", "/api/v1/watch", NULL},
        {"GET", "/api/v1/orphans", NULL},
        {"GET", "/api/v1/status", NULL},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        th_resp_t r;
        ta_api(a, routes[i].method, routes[i].path, NULL, routes[i].body, &r);
        if (r.status != 401)
            print_message("%s %s without key\n", routes[i].method, routes[i].path);
        ASSERT_ERROR(r, 401, "Unauthorized");
        char *wa = th_resp_header(&r, "WWW-Authenticate");
        assert_non_null(wa);
        assert_true(strncmp(wa, "Bearer", 6) == 0);
        free(wa);
        th_resp_free(&r);
    }
    free(spec);
    /* Nothing changed: keep1 is still there, untouched; newone is not. */
    cJSON *o = get_obj(a, "keep1", 200);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    assert_string_equal(ta_str(o, "status.phase"), "CREATING");
    assert_string_equal(ta_str(o, "spec.powerState"), "Running");
    cJSON_Delete(o);
    o = get_obj(a, "newone", 404);
    cJSON_Delete(o);
    cJSON *l = list(a, "");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 1);
    cJSON_Delete(l);
    agent_exits_cleanly(state);
}

static void test_auth_keys(void **state)
{
    ta_agent_t *a = agent(state);
    th_resp_t r;
    /* Both keys of AGENT_API_KEYS work (rotation). */
    ta_api(a, "GET", ENV_PATH, TA_KEY1, NULL, &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);
    ta_api(a, "GET", ENV_PATH, TA_KEY2, NULL, &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);

    /* Near misses, other schemes and malformed headers are refused. */
    const char *bad[] = {
        "Authorization: Bearer wrong-key", "Authorization: Bearer key-on",
        "Authorization: Bearer key-onex",  "Authorization: Bearer key-one,key-two",
        "Authorization: Bearer KEY-ONE",   "Authorization: Bearer ",
        "Authorization: Bearer",           "Authorization: Basic a2V5LW9uZTprZXktb25l",
        "Authorization: Basic key-one",    "Authorization: key-one",
        "Authorization: Token key-one",    "X-Api-Key: key-one",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *h[] = {bad[i], NULL};
        ta_req_h(a, "GET", ENV_PATH, h, NULL, &r);
        if (r.status != 401)
            print_message("accepted header \"%s\"\n", bad[i]);
        ASSERT_ERROR(r, 401, "Unauthorized");
        char *wa = th_resp_header(&r, "WWW-Authenticate");
        assert_non_null(wa);
        assert_true(strncmp(wa, "Bearer", 6) == 0);
        free(wa);
        th_resp_free(&r);
    }
    /* The scheme name is case-insensitive (RFC 9110 11.1). */
    const char *lower[] = {"Authorization: bearer " TA_KEY2, NULL};
    ta_req_h(a, "GET", ENV_PATH, lower, NULL, &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

static void test_request_id_on_every_answer(void **state)
{
    ta_agent_t *a = agent(state);
    const char *paths[] = {"/healthz", "/metrics", ENV_PATH, ENV_PATH "/nope", "/nope"};
    const char *keys[] = {NULL, NULL, TA_KEY1, TA_KEY1, TA_KEY1};
    for (size_t i = 0; i < 5; i++) {
        char auth[128];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", keys[i] ? keys[i] : "");
        const char *with[] = {"X-Request-Id: itest-req-42", keys[i] ? auth : NULL, NULL};
        th_resp_t r;
        ta_req_h(a, "GET", paths[i], with, NULL, &r);
        assert_true(r.status > 0);
        char *rid = th_resp_header(&r, "X-Request-Id");
        assert_non_null(rid);
        assert_string_equal(rid, "itest-req-42");
        free(rid);
        th_resp_free(&r);

        const char *without[] = {keys[i] ? auth : NULL, NULL};
        ta_req_h(a, "GET", paths[i], without, NULL, &r);
        rid = th_resp_header(&r, "X-Request-Id");
        assert_non_null(rid);
        assert_true(strlen(rid) > 0);
        free(rid);
        th_resp_free(&r);
    }
    /* 401 answers carry one too. */
    th_resp_t r;
    ta_api(a, "GET", ENV_PATH, "bad", NULL, &r);
    ASSERT_STATUS(r, 401);
    char *rid = th_resp_header(&r, "X-Request-Id");
    assert_non_null(rid);
    free(rid);
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

/* --- PUT / GET ----------------------------------------------------------- */

static void test_put_creates_with_defaults_and_get_returns_it(void **state)
{
    ta_agent_t *a = agent(state);
    char *body = ta_spec("user-1", "My workspace", "eastus", "\"env\":{\"EDITOR\":\"vim\"}");
    th_resp_t r;
    ta_req(a, "PUT", ENV_PATH "/ckx1", body, &r);
    free(body);
    ASSERT_STATUS(r, 201);
    char *etag = th_resp_header(&r, "ETag");
    assert_non_null(etag);
    assert_string_equal(etag, "\"1\"");
    free(etag);
    char *ct = th_resp_header(&r, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "application/json"));
    free(ct);
    cJSON *o = ta_json(&r);
    th_resp_free(&r);
    assert_non_null(o);
    assert_string_equal(ta_str(o, "id"), "ckx1");
    assert_int_equal((int)ta_num(o, "generation"), 1);
    /* Every default is explicit in the answer. */
    assert_string_equal(ta_str(o, "spec.userId"), "user-1");
    assert_string_equal(ta_str(o, "spec.name"), "My workspace");
    assert_string_equal(ta_str(o, "spec.cloudRegion"), "eastus");
    assert_string_equal(ta_str(o, "spec.baseImage"), "node");
    assert_true(ta_num(o, "spec.cpuCores") == 2.0);
    assert_true(ta_num(o, "spec.memoryGB") == 4.0);
    assert_true(ta_num(o, "spec.storageGB") == 20.0);
    assert_string_equal(ta_str(o, "spec.powerState"), "Running");
    assert_true(ta_num(o, "spec.autoStopMinutes") == 0.0);
    assert_string_equal(ta_str(o, "spec.storagePolicy"), "Delete");
    assert_string_equal(ta_str(o, "spec.env.EDITOR"), "vim");
    assert_true(cJSON_IsObject(ta_path(o, "spec.secretEnv")));
    /* Fresh status: CREATING, nothing known yet. */
    assert_string_equal(ta_str(o, "status.phase"), "CREATING");
    const cJSON *ready = ta_condition(o, "Ready");
    assert_non_null(ready);
    assert_string_equal(ta_str(ready, "status"), "Unknown");
    assert_string_equal(ta_str(ready, "reason"), "Creating");
    const cJSON *synced = ta_condition(o, "Synced");
    assert_non_null(synced);
    assert_string_equal(ta_str(synced, "status"), "Unknown");
    assert_non_null(ta_str(o, "createdAt"));
    assert_non_null(ta_str(o, "updatedAt"));
    /* RFC 3339 UTC. */
    assert_int_equal(strlen(ta_str(o, "createdAt")) >= 20, 1);
    assert_int_equal(ta_str(o, "createdAt")[10], 'T');

    cJSON *g = get_obj(a, "ckx1", 200);
    assert_true(cJSON_Compare(ta_path(o, "spec"), ta_path(g, "spec"), 1));
    assert_int_equal((int)ta_num(g, "generation"), 1);
    assert_string_equal(ta_str(g, "status.phase"), "CREATING");
    cJSON_Delete(g);
    cJSON_Delete(o);

    /* The other region and image are accepted too; cloudProvider AZURE and
     * an id equal to the path's may appear in the body. */
    put_ok(a, "ckx2", "user-1", "westeurope",
           "\"baseImage\":\"python\",\"cloudProvider\":\"AZURE\",\"id\":\"ckx2\"", 201);
    g = get_obj(a, "ckx2", 200);
    assert_string_equal(ta_str(g, "spec.baseImage"), "python");
    assert_string_equal(ta_str(g, "spec.cloudRegion"), "westeurope");
    cJSON_Delete(g);
    agent_exits_cleanly(state);
}

static void test_put_same_spec_keeps_generation_update_bumps_it(void **state)
{
    ta_agent_t *a = agent(state);
    char *v1 = ta_spec("u1", "ws", "eastus", "\"cpuCores\":1");
    char *v2 = ta_spec("u1", "ws", "eastus", "\"cpuCores\":1.5");
    th_resp_t r;
    ta_req(a, "PUT", ENV_PATH "/gen", v1, &r);
    ASSERT_STATUS(r, 201);
    th_resp_free(&r);

    /* Identical PUT: 200, generation stays 1. */
    ta_req(a, "PUT", ENV_PATH "/gen", v1, &r);
    ASSERT_STATUS(r, 200);
    char *etag = th_resp_header(&r, "ETag");
    assert_string_equal(etag, "\"1\"");
    free(etag);
    cJSON *o = ta_json(&r);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    th_resp_free(&r);

    /* The same spec spelled differently (defaults written out, other
     * member order) is still the same spec. */
    char *v1b = strdup("{\"cpuCores\":1,\"cloudRegion\":\"eastus\",\"name\":\"ws\","
                       "\"userId\":\"u1\",\"memoryGB\":4,\"storageGB\":20,\"baseImage\":\"node\","
                       "\"powerState\":\"Running\",\"env\":{},\"secretEnv\":{},"
                       "\"autoStopMinutes\":0,\"storagePolicy\":\"Delete\"}");
    ta_req(a, "PUT", ENV_PATH "/gen", v1b, &r);
    ASSERT_STATUS(r, 200);
    o = ta_json(&r);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    th_resp_free(&r);
    free(v1b);

    /* A change: 200, generation 2. */
    ta_req(a, "PUT", ENV_PATH "/gen", v2, &r);
    ASSERT_STATUS(r, 200);
    etag = th_resp_header(&r, "ETag");
    assert_string_equal(etag, "\"2\"");
    free(etag);
    o = ta_json(&r);
    assert_int_equal((int)ta_num(o, "generation"), 2);
    assert_true(ta_num(o, "spec.cpuCores") == 1.5);
    cJSON_Delete(o);
    th_resp_free(&r);

    /* If-Match with the stale generation: 409, nothing changes. */
    const char *stale[] = {"Authorization: Bearer " TA_KEY1, "Content-Type: application/json",
                           "If-Match: \"1\"", NULL};
    ta_req_h(a, "PUT", ENV_PATH "/gen", stale, v1, &r);
    ASSERT_ERROR(r, 409, "Conflict");
    th_resp_free(&r);
    o = get_obj(a, "gen", 200);
    assert_int_equal((int)ta_num(o, "generation"), 2);
    assert_true(ta_num(o, "spec.cpuCores") == 1.5);
    cJSON_Delete(o);

    /* If-Match with the current generation applies. */
    const char *fresh[] = {"Authorization: Bearer " TA_KEY1, "Content-Type: application/json",
                           "If-Match: \"2\"", NULL};
    ta_req_h(a, "PUT", ENV_PATH "/gen", fresh, v1, &r);
    ASSERT_STATUS(r, 200);
    etag = th_resp_header(&r, "ETag");
    assert_string_equal(etag, "\"3\"");
    free(etag);
    th_resp_free(&r);

    /* The GET carries the ETag as well. */
    ta_req(a, "GET", ENV_PATH "/gen", NULL, &r);
    ASSERT_STATUS(r, 200);
    etag = th_resp_header(&r, "ETag");
    assert_non_null(etag);
    assert_string_equal(etag, "\"3\"");
    free(etag);
    th_resp_free(&r);
    free(v1);
    free(v2);
    agent_exits_cleanly(state);
}

/* cloudRegion is fixed at creation: the share (the user's data) stays
 * there. A PUT or a full sync that moves an environment is refused and
 * changes nothing. */
static void test_cloud_region_cannot_change(void **state)
{
    ta_agent_t *a = agent(state);
    char *east = ta_spec("u1", "ws", "eastus", NULL);
    char *west = ta_spec("u1", "ws", "westeurope", NULL);
    th_resp_t r;
    ta_req(a, "PUT", ENV_PATH "/moving", east, &r);
    ASSERT_STATUS(r, 201);
    th_resp_free(&r);
    ta_req(a, "PUT", ENV_PATH "/moving", west, &r);
    ASSERT_ERROR(r, 400, "InvalidSpec");
    assert_string_equal(ta_err_field(&r), "cloudRegion");
    th_resp_free(&r);
    ta_req(a, "PUT", ENV_PATH,
           "{\"items\":[{\"id\":\"moving\",\"userId\":\"u1\",\"name\":\"ws\","
           "\"cloudRegion\":\"westeurope\"}]}",
           &r);
    ASSERT_ERROR(r, 400, "InvalidSpec");
    assert_string_equal(ta_err_field(&r), "items[0].cloudRegion");
    th_resp_free(&r);
    cJSON *o = get_obj(a, "moving", 200);
    assert_string_equal(ta_str(o, "spec.cloudRegion"), "eastus");
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    free(east);
    free(west);
    agent_exits_cleanly(state);
}

static void test_put_invalid_spec(void **state)
{
    ta_agent_t *a = agent(state);
    const struct {
        const char *body;  /* full body */
        const char *field; /* expected error.field suffix */
    } cases[] = {
        {"{\"name\":\"n\",\"cloudRegion\":\"eastus\"}", "userId"},
        {"{\"userId\":\"u\",\"cloudRegion\":\"eastus\"}", "name"},
        {"{\"userId\":\"u\",\"name\":\"n\"}", "cloudRegion"},
        {"{\"userId\":\"\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}", "userId"},
        {"{\"userId\":7,\"name\":\"n\",\"cloudRegion\":\"eastus\"}", "userId"},
        {"{\"userId\":\"u\",\"name\":\"\",\"cloudRegion\":\"eastus\"}", "name"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"westus\"}", "cloudRegion"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"baseImage\":\"ruby\"}",
         "baseImage"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"cpuCores\":0.7}",
         "cpuCores"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"cpuCores\":0}", "cpuCores"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"cpuCores\":4.5}",
         "cpuCores"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"cpuCores\":\"2\"}",
         "cpuCores"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"memoryGB\":0}", "memoryGB"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"memoryGB\":16.5}",
         "memoryGB"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"memoryGB\":1.25}",
         "memoryGB"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"storageGB\":0}",
         "storageGB"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"storageGB\":1.5}",
         "storageGB"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"storageGB\":1025}",
         "storageGB"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"powerState\":\"On\"}",
         "powerState"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"env\":{\"1BAD\":\"x\"}}",
         "env.1BAD"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"env\":{\"A-B\":\"x\"}}",
         "env.A-B"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"env\":{\"OK\":5}}",
         "env.OK"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"env\":[]}", "env"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
         "\"secretEnv\":{\"9X\":\"x\"}}",
         "secretEnv.9X"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"autoStopMinutes\":3}",
         "autoStopMinutes"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
         "\"autoStopMinutes\":10081}",
         "autoStopMinutes"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
         "\"storagePolicy\":\"Keep\"}",
         "storagePolicy"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"colour\":\"red\"}",
         "colour"},
        /* A member given twice is ambiguous (which one wins?): refused. */
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"cpuCores\":1,"
         "\"cpuCores\":2}",
         "cpuCores"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"id\":\"other\"}", "id"},
        {"{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
         "\"cloudProvider\":\"GCP\"}",
         "cloudProvider"},
    };
    char name129[140];
    memset(name129, 'n', 129);
    name129[129] = '\0';
    char *longname = ta_spec("u", name129, "eastus", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] + 1; i++) {
        const char *body = i < sizeof cases / sizeof cases[0] ? cases[i].body : longname;
        const char *field = i < sizeof cases / sizeof cases[0] ? cases[i].field : "name";
        th_resp_t r;
        ta_req(a, "PUT", ENV_PATH "/inv", body, &r);
        const char *want = "InvalidSpec";
        /* A body id that differs from the path's may be called either. */
        if (strcmp(field, "id") == 0 && strcmp(ta_err_code(&r), "InvalidId") == 0)
            want = "InvalidId";
        if (r.status != 400 || strcmp(ta_err_code(&r), want) != 0)
            print_message("case %zu: %s -> %ld %s\n", i, body, r.status, r.body);
        ASSERT_ERROR(r, 400, want);
        /* The field names the offending member (optionally with a prefix
         * such as "spec."). */
        const char *f = ta_err_field(&r);
        size_t fl = strlen(f), wl = strlen(field);
        if (!(fl >= wl && strcmp(f + fl - wl, field) == 0))
            print_message("case %zu: %s -> field \"%s\", wanted \"%s\"\n", i, body, f, field);
        assert_true(fl >= wl && strcmp(f + fl - wl, field) == 0);
        th_resp_free(&r);
    }
    free(longname);
    cJSON *o = get_obj(a, "inv", 404);
    cJSON_Delete(o);

    /* The edges of every range are accepted. */
    put_ok(a, "edge-low", "u", "eastus",
           "\"cpuCores\":0.5,\"memoryGB\":0.5,\"storageGB\":1,\"autoStopMinutes\":5", 201);
    put_ok(a, "edge-high", "u", "eastus",
           "\"cpuCores\":4,\"memoryGB\":16,\"storageGB\":1024,\"autoStopMinutes\":10080,"
           "\"powerState\":\"Stopped\",\"storagePolicy\":\"Retain\","
           "\"env\":{\"_A\":\"\",\"b9\":\"x\"},\"secretEnv\":{\"S_1\":\"v\"}",
           201);
    o = get_obj(a, "edge-high", 200);
    assert_string_equal(ta_str(o, "spec.powerState"), "Stopped");
    assert_string_equal(ta_str(o, "spec.storagePolicy"), "Retain");
    assert_true(ta_num(o, "spec.storageGB") == 1024.0);
    cJSON_Delete(o);
    agent_exits_cleanly(state);
}

static void test_put_invalid_json(void **state)
{
    ta_agent_t *a = agent(state);
    const char *bodies[] = {
        "{",
        "",
        "{\"userId\":",
        "nul",
        "{\"userId\":\"u\",}",
        "{} trailing",
        "\"\\x\"",
        "{\"userId\":\"u\" \"name\":\"n\"}",
        "\xff\xfe{}",
        /* cJSON would cut a string at an escaped NUL: refused, not truncated. */
        "{\"userId\":\"a\\u0000b\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        th_resp_t r;
        ta_req(a, "PUT", ENV_PATH "/badjson", bodies[i], &r);
        if (r.status != 400 || strcmp(ta_err_code(&r), "InvalidJson") != 0)
            print_message("body \"%s\" -> %ld %s\n", bodies[i], r.status, r.body);
        ASSERT_ERROR(r, 400, "InvalidJson");
        th_resp_free(&r);
    }
    /* JSON that is not an object is not a spec. */
    const char *nonobj[] = {"[]", "42", "null", "\"spec\""};
    for (size_t i = 0; i < 4; i++) {
        th_resp_t r;
        ta_req(a, "PUT", ENV_PATH "/badjson", nonobj[i], &r);
        ASSERT_STATUS(r, 400);
        const char *code = ta_err_code(&r);
        assert_true(strcmp(code, "InvalidSpec") == 0 || strcmp(code, "InvalidJson") == 0);
        th_resp_free(&r);
    }
    cJSON *o = get_obj(a, "badjson", 404);
    cJSON_Delete(o);
    agent_exits_cleanly(state);
}

static void test_put_invalid_id(void **state)
{
    ta_agent_t *a = agent(state);
    char id49[64], id48[64];
    memset(id49, 'a', 49);
    id49[49] = '\0';
    memset(id48, 'b', 48);
    id48[48] = '\0';
    const char *bad[] = {"Bad_ID", "a--b", id49, "-ab", "ab-", "UPPER", "a.b", "a%20b"};
    char *body = ta_spec("u", "n", "eastus", NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, ENV_PATH "/%s", bad[i]);
        th_resp_t r;
        ta_req(a, "PUT", path, body, &r);
        if (r.status != 400)
            print_message("id \"%s\" -> %ld\n", bad[i], r.status);
        ASSERT_ERROR(r, 400, "InvalidId");
        th_resp_free(&r);
    }
    cJSON *l = list(a, "");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 0);
    cJSON_Delete(l);
    /* The extremes of the id rule are valid. */
    const char *good[] = {id48, "a", "0", "a-b", "ckx1abc2def3ghi4jkl5mno6"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, ENV_PATH "/%s", good[i]);
        th_resp_t r;
        ta_req(a, "PUT", path, body, &r);
        ASSERT_STATUS(r, 201);
        th_resp_free(&r);
    }
    free(body);
    agent_exits_cleanly(state);
}

static void test_put_without_body_framing_is_411(void **state)
{
    ta_agent_t *a = agent(state);
    /* curl sends a PUT without Content-Length or chunked when no body. */
    th_resp_t r;
    ta_req(a, "PUT", ENV_PATH "/nolen", NULL, &r);
    ASSERT_ERROR(r, 411, "LengthRequired");
    th_resp_free(&r);
    ta_req(a, "PUT", ENV_PATH, NULL, &r);
    ASSERT_ERROR(r, 411, "LengthRequired");
    th_resp_free(&r);

    const char raw[] = "PUT " ENV_PATH "/nolen HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer " TA_KEY1 "\r\n"
                       "Content-Type: application/json\r\nConnection: close\r\n\r\n";
    char *reply = th_raw(a->port, raw, sizeof raw - 1, 3000);
    assert_true(strncmp(reply, "HTTP/1.1 411", 12) == 0);
    free(reply);
    cJSON *o = get_obj(a, "nolen", 404);
    cJSON_Delete(o);
    agent_exits_cleanly(state);
}

static void test_wrong_content_type_is_415(void **state)
{
    ta_agent_t *a = agent(state);
    char *body = ta_spec("u", "n", "eastus", NULL);
    const char *types[] = {"Content-Type: text/plain",
                           "Content-Type: application/x-www-form-urlencoded",
                           "Content-Type: application/jsonx", "Content-Type: text/json"};
    for (size_t i = 0; i < 4; i++) {
        const char *h[] = {"Authorization: Bearer " TA_KEY1, types[i], NULL};
        th_resp_t r;
        ta_req_h(a, "PUT", ENV_PATH "/ctype", h, body, &r);
        if (r.status != 415)
            print_message("%s -> %ld\n", types[i], r.status);
        ASSERT_ERROR(r, 415, "UnsupportedMediaType");
        th_resp_free(&r);
    }
    cJSON *o = get_obj(a, "ctype", 404);
    cJSON_Delete(o);
    /* Parameters and case of the media type are fine. */
    const char *ok[] = {"Authorization: Bearer " TA_KEY1,
                        "Content-Type: application/json; charset=utf-8", NULL};
    th_resp_t r;
    ta_req_h(a, "PUT", ENV_PATH "/ctype", ok, body, &r);
    ASSERT_STATUS(r, 201);
    th_resp_free(&r);
    const char *ok2[] = {"Authorization: Bearer " TA_KEY1, "Content-Type: Application/JSON", NULL};
    ta_req_h(a, "PUT", ENV_PATH "/ctype", ok2, body, &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);
    free(body);
    agent_exits_cleanly(state);
}

static void test_body_over_limit_is_413(void **state)
{
    ta_agent_t *a = agent(state);
    /* A valid spec padded with whitespace beyond api.maxBodyBytes. */
    size_t n = TA_MAX_BODY + 4096;
    char *big = malloc(n + 1);
    assert_non_null(big);
    char *spec = ta_spec("u", "n", "eastus", NULL);
    size_t sl = strlen(spec);
    memset(big, ' ', n);
    memcpy(big + n - sl, spec, sl);
    big[n] = '\0';
    free(spec);
    const char *h[] = {"Authorization: Bearer " TA_KEY1, "Content-Type: application/json",
                       "X-Request-Id: big-1", NULL};
    th_resp_t r;
    ta_req_h(a, "PUT", ENV_PATH "/big", h, big, &r);
    ASSERT_STATUS(r, 413);
    assert_error_shape(&r);
    char *rid = th_resp_header(&r, "X-Request-Id");
    assert_non_null(rid);
    assert_string_equal(rid, "big-1");
    free(rid);
    th_resp_free(&r);
    ta_req(a, "POST", ENV_PATH, big, &r);
    ASSERT_STATUS(r, 413);
    th_resp_free(&r);
    free(big);
    cJSON *o = get_obj(a, "big", 404);
    cJSON_Delete(o);

    /* A Content-Length over the limit is refused at once, without waiting
     * for the body. */
    char raw[512];
    int len = snprintf(raw, sizeof raw,
                       "PUT " ENV_PATH "/big HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer " TA_KEY1 "\r\n"
                       "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{");
    long long t0 = ta_now_ms();
    char *reply = th_raw(a->port, raw, (size_t)len, 3000);
    assert_true(strncmp(reply, "HTTP/1.1 413", 12) == 0);
    assert_true(ta_now_ms() - t0 < 2500);
    free(reply);

    /* A chunked body that grows past the limit. */
    size_t cap = TA_MAX_BODY * 2 + 4096;
    char *chunked = malloc(cap);
    assert_non_null(chunked);
    size_t off = (size_t)snprintf(chunked, cap,
                                  "PUT " ENV_PATH "/big HTTP/1.1\r\nHost: x\r\n"
                                  "Authorization: Bearer " TA_KEY1 "\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 20; i++) {
        off += (size_t)snprintf(chunked + off, cap - off, "1000\r\n");
        memset(chunked + off, ' ', 0x1000);
        off += 0x1000;
        off += (size_t)snprintf(chunked + off, cap - off, "\r\n");
    }
    off += (size_t)snprintf(chunked + off, cap - off, "0\r\n\r\n");
    reply = th_raw(a->port, chunked, off, 3000);
    assert_true(strncmp(reply, "HTTP/1.1 413", 12) == 0);
    free(reply);
    free(chunked);

    /* Still serving. */
    ta_api(a, "GET", "/healthz", NULL, NULL, &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

static void test_get_unknown_is_404(void **state)
{
    ta_agent_t *a = agent(state);
    th_resp_t r;
    ta_req(a, "GET", ENV_PATH "/does-not-exist", NULL, &r);
    ASSERT_ERROR(r, 404, "NotFound");
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

/* --- list ---------------------------------------------------------------- */

static void test_list_sorted_filtered_paged(void **state)
{
    ta_agent_t *a = agent(state);
    cJSON *l = list(a, "");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 0);
    assert_string_equal(ta_str(l, "continue"), "");
    double rv0 = ta_num(l, "resourceVersion");
    cJSON_Delete(l);

    /* Created out of order; listed by id. */
    put_ok(a, "env-d", "u1", "eastus", NULL, 201);
    put_ok(a, "env-b", "u2", "eastus", NULL, 201);
    put_ok(a, "env-a", "u1", "westeurope", NULL, 201);
    put_ok(a, "env-c", "u1", "eastus", NULL, 201);
    put_ok(a, "env-e", "u3", "eastus", NULL, 201);
    th_resp_t r;
    ta_req(a, "DELETE", ENV_PATH "/env-d", NULL, &r);
    ASSERT_STATUS(r, 202);
    th_resp_free(&r);

    char ids[512];
    l = list(a, "");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-a,env-b,env-c,env-d,env-e");
    assert_string_equal(ta_str(l, "continue"), "");
    double rv1 = ta_num(l, "resourceVersion");
    assert_true(rv1 >= rv0 + 6);
    /* Items are full objects. */
    assert_non_null(ta_str(ta_path(l, "items.0"), "status.phase"));
    assert_non_null(ta_str(ta_path(l, "items.0"), "spec.userId"));
    cJSON_Delete(l);

    l = list(a, "?userId=u1");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-a,env-c,env-d");
    cJSON_Delete(l);
    l = list(a, "?userId=nobody");
    assert_string_equal(ids_of(l, ids, sizeof ids), "");
    cJSON_Delete(l);
    l = list(a, "?phase=DELETING");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-d");
    cJSON_Delete(l);
    l = list(a, "?phase=CREATING&userId=u1");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-a,env-c");
    cJSON_Delete(l);
    l = list(a, "?phase=RUNNING");
    assert_string_equal(ids_of(l, ids, sizeof ids), "");
    cJSON_Delete(l);
    l = list(a, "?cloudRegion=westeurope");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-a");
    cJSON_Delete(l);
    l = list(a, "?cloudRegion=eastus&userId=u1");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-c,env-d");
    cJSON_Delete(l);

    /* Paging: limit 2 walks all five in order; a page shorter than the
     * limit ends the walk with an empty token. */
    char all[512] = "";
    char cont[512] = "";
    int pages = 0;
    do {
        char q[1024], esc[600];
        url_escape(cont, esc, sizeof esc);
        snprintf(q, sizeof q, "?limit=2%s%s", cont[0] ? "&continue=" : "", esc);
        l = list(a, q);
        int n = cJSON_GetArraySize(ta_path(l, "items"));
        assert_true(n <= 2);
        ids_of(l, ids, sizeof ids);
        if (n) {
            if (all[0])
                strncat(all, ",", sizeof all - strlen(all) - 1);
            strncat(all, ids, sizeof all - strlen(all) - 1);
        }
        snprintf(cont, sizeof cont, "%s", ta_str(l, "continue"));
        if (n < 2)
            assert_string_equal(cont, "");
        if (n == 2 && pages == 0)
            assert_true(cont[0] != '\0');
        cJSON_Delete(l);
        pages++;
    } while (cont[0] && pages < 10);
    assert_string_equal(all, "env-a,env-b,env-c,env-d,env-e");
    assert_true(pages == 3 || pages == 4);

    /* Paging combined with a filter. */
    l = list(a, "?userId=u1&limit=2");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-a,env-c");
    char esc[600];
    url_escape(ta_str(l, "continue"), esc, sizeof esc);
    assert_true(esc[0] != '\0');
    cJSON_Delete(l);
    char q[1024];
    snprintf(q, sizeof q, "?userId=u1&limit=2&continue=%s", esc);
    l = list(a, q);
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-d");
    assert_string_equal(ta_str(l, "continue"), "");
    cJSON_Delete(l);

    l = list(a, "?limit=1000");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 5);
    cJSON_Delete(l);
    l = list(a, "?limit=1");
    assert_string_equal(ids_of(l, ids, sizeof ids), "env-a");
    cJSON_Delete(l);
    agent_exits_cleanly(state);
}

static void test_list_bad_query_is_400(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "one", "u1", "eastus", NULL, 201);
    const struct {
        const char *query, *field;
    } cases[] = {
        {"?limit=0", "limit"},
        {"?limit=1001", "limit"},
        {"?limit=abc", "limit"},
        {"?limit=-1", "limit"},
        {"?limit=2x", "limit"},
        {"?limit=99999999999999999999", "limit"},
        {"?phase=BOGUS", "phase"},
        {"?continue=%%%zz", "continue"},
        {"?continue=Not_A_Token%21", "continue"},
        /* A filter the route does not know is refused, never ignored. */
        {"?region=eastus", "region"},
        {"?userid=u1", "userid"},
        {"?userId=u1&cloud_region=eastus", "cloud_region"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, ENV_PATH "%s", cases[i].query);
        th_resp_t r;
        ta_req(a, "GET", path, NULL, &r);
        if (r.status != 400 || strcmp(ta_err_field(&r), cases[i].field) != 0)
            print_message("%s -> %ld %s\n", cases[i].query, r.status, r.body);
        ASSERT_ERROR(r, 400, "InvalidQuery");
        assert_string_equal(ta_err_field(&r), cases[i].field);
        th_resp_free(&r);
    }
    agent_exits_cleanly(state);
}

/* Routes that take no query parameters refuse any, naming it. */
static void test_unknown_query_is_400(void **state)
{
    ta_agent_t *a = agent(state);
    const char *paths[] = {"/api/v1/status?verbose=1", "/api/v1/orphans?kind=fileShare",
                           "/api/v1/watch?since=3", ENV_PATH "/one?expand=status"};
    const char *fields[] = {"verbose", "kind", "since", "expand"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        th_resp_t r;
        ta_req(a, "GET", paths[i], NULL, &r);
        ASSERT_ERROR(r, 400, "InvalidQuery");
        assert_string_equal(ta_err_field(&r), fields[i]);
        th_resp_free(&r);
    }
    agent_exits_cleanly(state);
}

/* --- POST, DELETE, start/stop/activity ------------------------------------ */

static void test_post_creates_with_given_or_generated_id(void **state)
{
    ta_agent_t *a = agent(state);
    char *body = ta_spec("u1", "n", "eastus", "\"id\":\"posted\"");
    th_resp_t r;
    ta_req(a, "POST", ENV_PATH, body, &r);
    ASSERT_STATUS(r, 201);
    cJSON *o = ta_json(&r);
    assert_string_equal(ta_str(o, "id"), "posted");
    assert_string_equal(ta_str(o, "status.phase"), "CREATING");
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    th_resp_free(&r);
    /* Again: the id exists. */
    ta_req(a, "POST", ENV_PATH, body, &r);
    ASSERT_ERROR(r, 409, "Conflict");
    th_resp_free(&r);
    free(body);

    /* Without an id: a generated one that fits the id rule. */
    body = ta_spec("u1", "n2", "westeurope", NULL);
    char ids[2][64];
    for (int i = 0; i < 2; i++) {
        ta_req(a, "POST", ENV_PATH, body, &r);
        ASSERT_STATUS(r, 201);
        o = ta_json(&r);
        const char *id = ta_str(o, "id");
        assert_non_null(id);
        assert_true(ta_id_valid(id));
        snprintf(ids[i], sizeof ids[i], "%s", id);
        cJSON_Delete(o);
        th_resp_free(&r);
        o = get_obj(a, ids[i], 200);
        assert_string_equal(ta_str(o, "spec.name"), "n2");
        cJSON_Delete(o);
    }
    assert_string_not_equal(ids[0], ids[1]);
    free(body);

    /* Invalid specs, ids and JSON are refused as on PUT. */
    body = ta_spec("u1", "n", "eastus", "\"cpuCores\":9");
    ta_req(a, "POST", ENV_PATH, body, &r);
    ASSERT_ERROR(r, 400, "InvalidSpec");
    th_resp_free(&r);
    free(body);
    body = ta_spec("u1", "n", "eastus", "\"id\":\"Bad_ID\"");
    ta_req(a, "POST", ENV_PATH, body, &r);
    ASSERT_STATUS(r, 400);
    assert_true(strcmp(ta_err_code(&r), "InvalidId") == 0 ||
                strcmp(ta_err_code(&r), "InvalidSpec") == 0);
    th_resp_free(&r);
    free(body);
    ta_req(a, "POST", ENV_PATH, "{", &r);
    ASSERT_ERROR(r, 400, "InvalidJson");
    th_resp_free(&r);

    cJSON *l = list(a, "");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 3);
    cJSON_Delete(l);
    agent_exits_cleanly(state);
}

static void test_delete_marks_deleting(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "del1", "u1", "eastus", NULL, 201);
    th_resp_t r;
    ta_req(a, "DELETE", ENV_PATH "/del1", NULL, &r);
    ASSERT_STATUS(r, 202);
    cJSON *o = ta_json(&r);
    assert_non_null(o);
    assert_string_equal(ta_str(o, "id"), "del1");
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    cJSON_Delete(o);
    th_resp_free(&r);

    /* The object stays (no reconciler removes it yet), as DELETING. */
    o = get_obj(a, "del1", 200);
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    cJSON_Delete(o);

    /* A PUT to a deleting environment is a conflict and changes nothing. */
    char *body = ta_spec("u1", "changed", "eastus", NULL);
    ta_req(a, "PUT", ENV_PATH "/del1", body, &r);
    ASSERT_ERROR(r, 409, "Conflict");
    th_resp_free(&r);
    free(body);
    o = get_obj(a, "del1", 200);
    assert_string_equal(ta_str(o, "spec.name"), "workspace");
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    cJSON_Delete(o);

    /* DELETE is idempotent. */
    ta_req(a, "DELETE", ENV_PATH "/del1", NULL, &r);
    ASSERT_STATUS(r, 202);
    th_resp_free(&r);

    /* An unknown id is still accepted: a tombstone answers. */
    ta_req(a, "DELETE", ENV_PATH "/never-seen", NULL, &r);
    ASSERT_STATUS(r, 202);
    o = ta_json(&r);
    assert_non_null(o);
    assert_string_equal(ta_str(o, "id"), "never-seen");
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    assert_int_equal((int)ta_num(o, "generation"), 0);
    cJSON_Delete(o);
    th_resp_free(&r);

    /* A bad id is still a bad id. */
    ta_req(a, "DELETE", ENV_PATH "/Bad_ID", NULL, &r);
    ASSERT_ERROR(r, 400, "InvalidId");
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

static void test_start_stop_activity(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "pw", "u1", "eastus", NULL, 201);
    th_resp_t r;
    ta_req(a, "POST", ENV_PATH "/pw/stop", NULL, &r);
    ASSERT_STATUS(r, 202);
    cJSON *o = ta_json(&r);
    assert_non_null(o);
    assert_string_equal(ta_str(o, "spec.powerState"), "Stopped");
    assert_int_equal((int)ta_num(o, "generation"), 2);
    cJSON_Delete(o);
    th_resp_free(&r);

    /* Stopping a stopped environment changes nothing. An empty body with
     * Content-Length: 0 is as good as none. */
    ta_req(a, "POST", ENV_PATH "/pw/stop", "", &r);
    ASSERT_STATUS(r, 202);
    o = ta_json(&r);
    assert_int_equal((int)ta_num(o, "generation"), 2);
    cJSON_Delete(o);
    th_resp_free(&r);

    ta_req(a, "POST", ENV_PATH "/pw/start", NULL, &r);
    ASSERT_STATUS(r, 202);
    o = ta_json(&r);
    assert_string_equal(ta_str(o, "spec.powerState"), "Running");
    assert_int_equal((int)ta_num(o, "generation"), 3);
    cJSON_Delete(o);
    th_resp_free(&r);
    o = get_obj(a, "pw", 200);
    assert_string_equal(ta_str(o, "spec.powerState"), "Running");
    assert_int_equal((int)ta_num(o, "generation"), 3);
    cJSON_Delete(o);

    ta_req(a, "POST", ENV_PATH "/pw/activity", NULL, &r);
    ASSERT_STATUS(r, 204);
    assert_int_equal(r.len, 0);
    th_resp_free(&r);
    o = get_obj(a, "pw", 200);
    assert_int_equal((int)ta_num(o, "generation"), 3);
    cJSON_Delete(o);

    const char *unknown[] = {ENV_PATH "/ghost/start", ENV_PATH "/ghost/stop",
                             ENV_PATH "/ghost/activity"};
    for (int i = 0; i < 3; i++) {
        ta_req(a, "POST", unknown[i], NULL, &r);
        ASSERT_ERROR(r, 404, "NotFound");
        th_resp_free(&r);
    }
    cJSON *l = list(a, "");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 1);
    cJSON_Delete(l);
    agent_exits_cleanly(state);
}

/* --- full sync ------------------------------------------------------------ */

static void test_full_sync_replaces_desired_set(void **state)
{
    ta_agent_t *a = agent(state);
    th_resp_t r;
    ta_req(a, "GET", "/api/v1/status", NULL, &r);
    ASSERT_STATUS(r, 200);
    cJSON *s = ta_json(&r);
    assert_true(cJSON_IsFalse(ta_path(s, "synced")));
    cJSON_Delete(s);
    th_resp_free(&r);

    put_ok(a, "sa", "u1", "eastus", NULL, 201);
    put_ok(a, "sb", "u1", "eastus", NULL, 201);
    put_ok(a, "sc", "u2", "eastus", NULL, 201);
    const char *sync =
        "{\"items\":["
        "{\"id\":\"sa\",\"userId\":\"u1\",\"name\":\"workspace\",\"cloudRegion\":\"eastus\"},"
        "{\"id\":\"sb\",\"userId\":\"u1\",\"name\":\"workspace\",\"cloudRegion\":\"eastus\","
        "\"cpuCores\":3},"
        "{\"id\":\"sd\",\"userId\":\"u3\",\"name\":\"new\",\"cloudRegion\":\"westeurope\","
        "\"cloudProvider\":\"AZURE\"}"
        "]}";
    ta_req(a, "PUT", ENV_PATH, sync, &r);
    ASSERT_STATUS(r, 200);
    cJSON *res = ta_json(&r);
    th_resp_free(&r);
    assert_non_null(res);
    assert_int_equal((int)ta_num(res, "created"), 1);
    assert_int_equal((int)ta_num(res, "updated"), 1);
    assert_int_equal((int)ta_num(res, "unchanged"), 1);
    assert_int_equal((int)ta_num(res, "removed"), 1);
    double rv = ta_num(res, "resourceVersion");
    assert_true(rv >= 4);
    cJSON_Delete(res);

    /* Left out by the sync: a visible deletion, finished by the reaper. */
    cJSON *o = get_obj(a, "sc", 200);
    assert_string_equal(ta_str(o, "status.phase"), "DELETING");
    assert_string_equal(ta_str(o, "status.conditions.0.reason"), "RemovedFromDesiredSet");
    cJSON_Delete(o);
    o = get_obj(a, "sa", 200);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    cJSON_Delete(o);
    o = get_obj(a, "sb", 200);
    assert_int_equal((int)ta_num(o, "generation"), 2);
    assert_true(ta_num(o, "spec.cpuCores") == 3.0);
    cJSON_Delete(o);
    o = get_obj(a, "sd", 200);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    assert_string_equal(ta_str(o, "status.phase"), "CREATING");
    cJSON_Delete(o);
    char ids[256];
    cJSON *l = list(a, "?phase=CREATING");
    assert_string_equal(ids_of(l, ids, sizeof ids), "sa,sb,sd");
    assert_true(ta_num(l, "resourceVersion") >= rv);
    cJSON_Delete(l);

    ta_req(a, "GET", "/api/v1/status", NULL, &r);
    s = ta_json(&r);
    assert_true(cJSON_IsTrue(ta_path(s, "synced")));
    cJSON_Delete(s);
    th_resp_free(&r);

    /* The same sync again changes nothing. */
    ta_req(a, "PUT", ENV_PATH, sync, &r);
    ASSERT_STATUS(r, 200);
    res = ta_json(&r);
    th_resp_free(&r);
    assert_int_equal((int)ta_num(res, "created"), 0);
    assert_int_equal((int)ta_num(res, "updated"), 0);
    assert_int_equal((int)ta_num(res, "unchanged"), 3);
    assert_int_equal((int)ta_num(res, "removed"), 0);
    cJSON_Delete(res);

    /* An empty sync empties the desired set. */
    ta_req(a, "PUT", ENV_PATH, "{\"items\":[]}", &r);
    ASSERT_STATUS(r, 200);
    res = ta_json(&r);
    th_resp_free(&r);
    assert_int_equal((int)ta_num(res, "removed"), 3);
    cJSON_Delete(res);
    l = list(a, "?phase=DELETING");
    assert_string_equal(ids_of(l, ids, sizeof ids), "sa,sb,sc,sd");
    cJSON_Delete(l);
    /* Named again, one comes back. */
    ta_req(a, "PUT", ENV_PATH,
           "{\"items\":[{\"id\":\"sa\",\"userId\":\"u1\",\"name\":\"workspace\","
           "\"cloudRegion\":\"eastus\"}]}",
           &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);
    o = get_obj(a, "sa", 200);
    assert_string_not_equal(ta_str(o, "status.phase"), "DELETING");
    cJSON_Delete(o);
    agent_exits_cleanly(state);
}

/* The desired part of a list answer (ids, generations, specs, the
 * resourceVersion of desired changes is not stable: status updates from
 * the reconciler bump it), as text for comparison. */
static char *desired_text(ta_agent_t *a)
{
    cJSON *l = list(a, "");
    cJSON *out = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(l, "items"))
    {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "id",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "id"), 1));
        cJSON_AddItemToObject(
            o, "generation",
            cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "generation"), 1));
        cJSON_AddItemToObject(o, "spec",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "spec"), 1));
        cJSON_AddItemToArray(out, o);
    }
    char *txt = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    cJSON_Delete(l);
    return txt;
}

static void test_full_sync_is_all_or_nothing(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "keep", "u1", "eastus", NULL, 201);
    char *before_txt = desired_text(a);

    const struct {
        const char *body, *code, *field;
    } cases[] = {
        /* item 1 is bad; item 0 would have been a valid create */
        {"{\"items\":[{\"id\":\"new1\",\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"},"
         "{\"id\":\"new2\",\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
         "\"cpuCores\":9}]}",
         "InvalidSpec", "items[1].cpuCores"},
        {"{\"items\":[{\"id\":\"new1\",\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"},"
         "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}]}",
         NULL, "items[1].id"},
        {"{\"items\":[{\"id\":\"Bad_ID\",\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":"
         "\"eastus\"}]}",
         NULL, "items[0].id"},
        {"{\"items\":[{\"id\":\"new1\",\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
         "\"env\":{\"1BAD\":\"x\"}}]}",
         "InvalidSpec", "items[0].env.1BAD"},
        {"{\"items\":[{\"id\":\"dup\",\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"},"
         "{\"id\":\"dup\",\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}]}",
         NULL, "items[1].id"},
        {"{\"items\":{}}", NULL, "items"},
        {"{}", NULL, "items"},
        {"{\"items\":[],\"extra\":1}", NULL, "extra"},
        {"{\"items\":[42]}", NULL, "items[0]"},
        {"{\"items\":[", "InvalidJson", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_resp_t r;
        ta_req(a, "PUT", ENV_PATH, cases[i].body, &r);
        if (r.status != 400)
            print_message("case %zu -> %ld %s\n", i, r.status, r.body);
        ASSERT_STATUS(r, 400);
        assert_error_shape(&r);
        if (cases[i].code)
            assert_string_equal(ta_err_code(&r), cases[i].code);
        if (cases[i].field) {
            /* A prefix match: "items[0]" may come as "items[0]" or with a
             * member after it when the item is not an object. */
            char f[256];
            snprintf(f, sizeof f, "%s", ta_err_field(&r));
            if (strncmp(f, cases[i].field, strlen(cases[i].field)) != 0)
                print_message("case %zu: field \"%s\", wanted \"%s\"\n", i, f, cases[i].field);
            assert_true(strncmp(f, cases[i].field, strlen(cases[i].field)) == 0);
        }
        th_resp_free(&r);

        /* Nothing desired changed. */
        char *after_txt = desired_text(a);
        assert_string_equal(after_txt, before_txt);
        free(after_txt);
    }
    free(before_txt);

    th_resp_t r;
    ta_req(a, "GET", "/api/v1/status", NULL, &r);
    cJSON *s = ta_json(&r);
    assert_true(cJSON_IsFalse(ta_path(s, "synced")));
    cJSON_Delete(s);
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

/* The full sync has its own, larger body limit (api.maxSyncBodyBytes). */
static void test_full_sync_larger_than_max_body_is_accepted(void **state)
{
    ta_agent_t *a = agent(state);
    size_t cap = 600 * 256 + 64;
    char *body = malloc(cap);
    assert_non_null(body);
    size_t off = (size_t)snprintf(body, cap, "{\"items\":[");
    for (int i = 0; i < 600; i++)
        off += (size_t)snprintf(body + off, cap - off,
                                "%s{\"id\":\"bulk-%04d\",\"userId\":\"user-%04d\","
                                "\"name\":\"bulk workspace number %04d\","
                                "\"cloudRegion\":\"%s\",\"env\":{\"INDEX\":\"%d\"}}",
                                i ? "," : "", i, i % 37, i, i % 2 ? "eastus" : "westeurope", i);
    off += (size_t)snprintf(body + off, cap - off, "]}");
    assert_true(off > TA_MAX_BODY);
    th_resp_t r;
    ta_req(a, "PUT", ENV_PATH, body, &r);
    free(body);
    ASSERT_STATUS(r, 200);
    cJSON *res = ta_json(&r);
    th_resp_free(&r);
    assert_int_equal((int)ta_num(res, "created"), 600);
    cJSON_Delete(res);
    cJSON *l = list(a, "?limit=1000");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 600);
    assert_string_equal(ta_str(ta_path(l, "items.0"), "id"), "bulk-0000");
    assert_string_equal(ta_str(ta_path(l, "items.599"), "id"), "bulk-0599");
    assert_string_equal(ta_str(l, "continue"), "");
    cJSON_Delete(l);
    /* The default page is 500 items. */
    l = list(a, "");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 500);
    assert_string_equal(ta_str(ta_path(l, "items.499"), "id"), "bulk-0499");
    assert_true(ta_str(l, "continue")[0] != '\0');
    cJSON_Delete(l);
    agent_exits_cleanly(state);
}

/* --- secrets ---------------------------------------------------------------- */

#define SECRET "s3cr3t-VALUE-do-not-leak-7781"
#define SECRET2 "another-S3CRET-2291-zz"

static void assert_no_secret(const char *what, const char *text)
{
    if (!text)
        return;
    if (strstr(text, SECRET) || strstr(text, SECRET2))
        print_message("a secret value appears in %s\n", what);
    assert_null(strstr(text, SECRET));
    assert_null(strstr(text, SECRET2));
}

static void req_no_secret(ta_agent_t *a, const char *method, const char *path, const char *body,
                          long want)
{
    th_resp_t r;
    ta_req(a, method, path, body, &r);
    if (r.status != want)
        print_message("%s %s -> %ld %s\n", method, path, r.status, r.body);
    assert_int_equal(r.status, want);
    assert_no_secret(path, r.body);
    assert_no_secret(path, r.headers);
    th_resp_free(&r);
}

static void test_secrets_never_returned_or_logged(void **state)
{
    ta_agent_t *a = agent(state);
    const char *extra = "\"env\":{\"PLAIN\":\"visible-value\"},"
                        "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET "\"}";
    char *body = ta_spec("u1", "n", "eastus", extra);
    th_resp_t r;
    ta_req(a, "PUT", ENV_PATH "/sec", body, &r);
    ASSERT_STATUS(r, 201);
    assert_no_secret("PUT answer", r.body);
    cJSON *o = ta_json(&r);
    assert_string_equal(ta_str(o, "spec.secretEnv.GITHUB_TOKEN"), "<redacted>");
    assert_string_equal(ta_str(o, "spec.env.PLAIN"), "visible-value");
    cJSON_Delete(o);
    th_resp_free(&r);

    /* Watch from the start: the ADDED event must be redacted too. */
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", NULL), 0);
    assert_true(ta_watch_wait(&w, 1, 5000) >= 1);

    /* Same PUT again: unchanged, still redacted. */
    req_no_secret(a, "PUT", ENV_PATH "/sec", body, 200);
    free(body);
    /* A new secret value is a new spec (generation 2), and never shown. */
    char *body2 = ta_spec("u1", "n", "eastus",
                          "\"env\":{\"PLAIN\":\"visible-value\"},"
                          "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET2 "\"}");
    ta_req(a, "PUT", ENV_PATH "/sec", body2, &r);
    ASSERT_STATUS(r, 200);
    assert_no_secret("PUT answer", r.body);
    o = ta_json(&r);
    assert_int_equal((int)ta_num(o, "generation"), 2);
    assert_string_equal(ta_str(o, "spec.secretEnv.GITHUB_TOKEN"), "<redacted>");
    cJSON_Delete(o);
    th_resp_free(&r);
    free(body2);

    req_no_secret(a, "GET", ENV_PATH "/sec", NULL, 200);
    req_no_secret(a, "GET", ENV_PATH, NULL, 200);
    req_no_secret(a, "GET", ENV_PATH "?userId=u1", NULL, 200);
    req_no_secret(a, "POST", ENV_PATH "/sec/stop", NULL, 202);
    req_no_secret(a, "POST", ENV_PATH "/sec/start", NULL, 202);
    req_no_secret(a, "POST", ENV_PATH "/sec/activity", NULL, 204);
    body = ta_spec("u2", "p", "eastus", "\"id\":\"sec-post\",\"secretEnv\":{\"T\":\"" SECRET "\"}");
    req_no_secret(a, "POST", ENV_PATH, body, 201);
    free(body);
    /* Refused requests carrying a secret don't echo it. */
    body = ta_spec("u2", "p", "eastus", "\"cpuCores\":9,\"secretEnv\":{\"T\":\"" SECRET "\"}");
    req_no_secret(a, "PUT", ENV_PATH "/sec-bad", body, 400);
    free(body);
    body = ta_spec("u2", "p", "eastus", "\"secretEnv\":{\"1BAD\":\"" SECRET "\"}");
    req_no_secret(a, "PUT", ENV_PATH "/sec-bad", body, 400);
    free(body);
    body = ta_spec("u2", "p", "eastus", "\"secretEnv\":{\"T\":[\"" SECRET "\"]}");
    req_no_secret(a, "PUT", ENV_PATH "/sec-bad", body, 400);
    free(body);
    req_no_secret(a, "PUT", ENV_PATH "/sec-bad", "{\"secretEnv\":{\"T\":\"" SECRET "\"", 400);
    /* Full sync answers counts only; its refusals don't echo either. */
    const char *sync = "{\"items\":[{\"id\":\"sec\",\"userId\":\"u1\",\"name\":\"n\","
                       "\"cloudRegion\":\"eastus\",\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET
                       "\"}},{\"id\":\"sec-post\",\"userId\":\"u2\",\"name\":\"p\","
                       "\"cloudRegion\":\"eastus\",\"secretEnv\":{\"T\":\"" SECRET "\"}}]}";
    req_no_secret(a, "PUT", ENV_PATH, sync, 200);
    req_no_secret(a, "PUT", ENV_PATH,
                  "{\"items\":[{\"id\":\"x\",\"userId\":\"u1\",\"name\":\"n\","
                  "\"cloudRegion\":\"eastus\",\"cpuCores\":9,\"secretEnv\":{\"S\":\"" SECRET
                  "\"}}]}",
                  400);
    req_no_secret(a, "GET", "/api/v1/status", NULL, 200);
    req_no_secret(a, "GET", "/api/v1/orphans", NULL, 200);
    req_no_secret(a, "DELETE", ENV_PATH "/sec", NULL, 202);
    req_no_secret(a, "GET", ENV_PATH "/sec", NULL, 200);
    ta_api(a, "GET", "/metrics", NULL, NULL, &r);
    assert_no_secret("/metrics", r.body);
    th_resp_free(&r);
    /* A wrong bearer token is a secret of somebody too. */
    ta_api(a, "GET", ENV_PATH, "wrong-" SECRET, NULL, &r);
    ASSERT_STATUS(r, 401);
    assert_no_secret("401 answer", r.body);
    th_resp_free(&r);

    /* Everything the watch streamed so far (ADDED, MODIFIED for the new
     * generation, stop/start, delete) is redacted. */
    ta_watch_wait(&w, 6, 3000);
    assert_true(w.nevents >= 5);
    assert_no_secret("the watch stream", w.all);
    assert_true(ta_count(w.all, "<redacted>") >= 5);
    ta_watch_close(&w);

    /* Finally the log: stop the agent so everything is flushed. */
    assert_int_equal(ta_stop(a), 0);
    char *log = ta_log(a);
    /* The right log, with the requests in it. */
    assert_non_null(strstr(log, "sec-post"));
    assert_no_secret("the agent's log", log);
    /* API keys are secrets as well. */
    assert_null(strstr(log, TA_KEY1));
    assert_null(strstr(log, TA_KEY2));
    free(log);
    agent_exits_cleanly(state);
}

/* --- routing, status, orphans ------------------------------------------------ */

static void test_unknown_routes_and_wrong_methods(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "rt", "u1", "eastus", NULL, 201);
    const char *notfound[] = {"/nope",
                              "/api/v1/nope",
                              "/api/v2/environments",
                              ENV_PATH "/rt/bogus",
                              ENV_PATH "/rt/start/more",
                              "/api/v1"};
    for (size_t i = 0; i < sizeof notfound / sizeof notfound[0]; i++) {
        th_resp_t r;
        ta_req(a, "GET", notfound[i], NULL, &r);
        if (r.status != 404)
            print_message("GET %s -> %ld\n", notfound[i], r.status);
        ASSERT_ERROR(r, 404, "NotFound");
        th_resp_free(&r);
    }
    const struct {
        const char *method, *path, *allow[3];
    } wrong[] = {
        {"PATCH", ENV_PATH "/rt", {"GET", "PUT", "DELETE"}},
        {"POST", ENV_PATH "/rt", {"GET", "PUT", "DELETE"}},
        {"DELETE", ENV_PATH, {"GET", "POST", "PUT"}},
        {"PATCH", ENV_PATH, {"GET", "POST", "PUT"}},
        {"GET", ENV_PATH "/rt/start", {"POST", NULL, NULL}},
        {"PUT", ENV_PATH "/rt/stop", {"POST", NULL, NULL}},
        {"GET", ENV_PATH "/rt/activity", {"POST", NULL, NULL}},
        {"POST", "/api/v1/watch", {"GET", NULL, NULL}},
        {"DELETE", "/api/v1/status", {"GET", NULL, NULL}},
        {"POST", "/api/v1/orphans", {"GET", NULL, NULL}},
        {"POST", "/healthz", {"GET", NULL, NULL}},
        {"DELETE", "/metrics", {"GET", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        th_resp_t r;
        int has_body = !strcmp(wrong[i].method, "POST") || !strcmp(wrong[i].method, "PUT") ||
                       !strcmp(wrong[i].method, "PATCH");
        ta_req(a, wrong[i].method, wrong[i].path, has_body ? "{}" : NULL, &r);
        if (r.status != 405)
            print_message("%s %s -> %ld %s\n", wrong[i].method, wrong[i].path, r.status, r.body);
        ASSERT_ERROR(r, 405, "MethodNotAllowed");
        char *allow = th_resp_header(&r, "Allow");
        assert_non_null(allow);
        for (int k = 0; k < 3 && wrong[i].allow[k]; k++) {
            if (!strstr(allow, wrong[i].allow[k]))
                print_message("%s %s: Allow \"%s\" lacks %s\n", wrong[i].method, wrong[i].path,
                              allow, wrong[i].allow[k]);
            assert_non_null(strstr(allow, wrong[i].allow[k]));
        }
        free(allow);
        th_resp_free(&r);
    }
    /* Nothing above changed the environment. */
    cJSON *o = get_obj(a, "rt", 200);
    assert_int_equal((int)ta_num(o, "generation"), 1);
    assert_string_equal(ta_str(o, "status.phase"), "CREATING");
    cJSON_Delete(o);
    agent_exits_cleanly(state);
}

static void test_status_and_orphans(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "st1", "u1", "eastus", NULL, 201);
    put_ok(a, "st2", "u1", "eastus", NULL, 201);
    put_ok(a, "st3", "u1", "westeurope", NULL, 201);
    th_resp_t r;
    ta_req(a, "DELETE", ENV_PATH "/st3", NULL, &r);
    ASSERT_STATUS(r, 202);
    th_resp_free(&r);

    ta_req(a, "GET", "/api/v1/status", NULL, &r);
    ASSERT_STATUS(r, 200);
    cJSON *s = ta_json(&r);
    th_resp_free(&r);
    assert_non_null(s);
    assert_true(cJSON_IsFalse(ta_path(s, "synced")));
    const cJSON *envs = ta_path(s, "environments");
    assert_true(cJSON_IsObject(envs));
    /* Counts by phase, directly or under "byPhase". */
    if (ta_path(envs, "byPhase"))
        envs = ta_path(envs, "byPhase");
    assert_int_equal((int)ta_num(envs, "CREATING"), 2);
    assert_int_equal((int)ta_num(envs, "DELETING"), 1);
    assert_int_equal((int)ta_num(envs, "RUNNING"), 0);
    cJSON_Delete(s);

    ta_req(a, "GET", "/api/v1/orphans", NULL, &r);
    ASSERT_STATUS(r, 200);
    cJSON *o = ta_json(&r);
    th_resp_free(&r);
    assert_true(cJSON_IsArray(ta_path(o, "items")));
    assert_int_equal(cJSON_GetArraySize(ta_path(o, "items")), 0);
    cJSON_Delete(o);

    /* /metrics reflects the phases too. */
    ta_api(a, "GET", "/metrics", NULL, NULL, &r);
    ASSERT_STATUS(r, 200);
    const char *line = strstr(r.body, "dev8_environments{");
    assert_non_null(line);
    assert_non_null(strstr(r.body, "CREATING"));
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

/* --- lifecycle ---------------------------------------------------------------- */

static void test_restart_forgets_desired_state(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "ephemeral", "u1", "eastus", NULL, 201);
    th_resp_t r;
    ta_req(a, "PUT", ENV_PATH,
           "{\"items\":[{\"id\":\"ephemeral\",\"userId\":\"u1\","
           "\"name\":\"workspace\",\"cloudRegion\":\"eastus\"}]}",
           &r);
    ASSERT_STATUS(r, 200);
    th_resp_free(&r);
    int stop_status = -2;
    assert_int_equal(ta_restart(a, &stop_status), 0);
    assert_int_equal(stop_status, 0);
    /* No stateFile: the desired set is gone, and not authoritative. */
    ta_req(a, "GET", ENV_PATH "/ephemeral", NULL, &r);
    ASSERT_ERROR(r, 404, "NotFound");
    th_resp_free(&r);
    cJSON *l = list(a, "");
    assert_int_equal(cJSON_GetArraySize(ta_path(l, "items")), 0);
    cJSON_Delete(l);
    ta_req(a, "GET", "/api/v1/status", NULL, &r);
    cJSON *s = ta_json(&r);
    assert_true(cJSON_IsFalse(ta_path(s, "synced")));
    cJSON_Delete(s);
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

static void test_sigterm_exits_zero_promptly(void **state)
{
    ta_agent_t *a = agent(state);
    put_ok(a, "t1", "u1", "eastus", NULL, 201);
    /* An idle keep-alive connection must not hold the exit up. */
    int fd = ta_connect(a->port);
    assert_true(fd >= 0);
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(ta_send_all(fd, req, sizeof req - 1, 2000), 0);
    char *buf = NULL;
    size_t len = 0;
    ta_recv_until_close(fd, &buf, &len, 300);
    assert_non_null(strstr(buf, "200"));
    free(buf);
    long long t0 = ta_now_ms();
    int rc = th_stop(&a->proc, SIGTERM, 5000);
    long long took = ta_now_ms() - t0;
    close(fd);
    assert_int_equal(rc, 0);
    assert_true(took < 4500);
    /* The fixture's own stop has nothing left to do. */
    free(a->bin);
    free(a->config_path);
    a->bin = a->config_path = NULL;
    agent_exits_cleanly(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, ta_setup, ta_teardown)
        T(test_health_ready_metrics_need_no_key),
        T(test_every_api_route_requires_a_key),
        T(test_auth_keys),
        T(test_request_id_on_every_answer),
        T(test_put_creates_with_defaults_and_get_returns_it),
        T(test_put_same_spec_keeps_generation_update_bumps_it),
        T(test_put_invalid_spec),
        T(test_cloud_region_cannot_change),
        T(test_put_invalid_json),
        T(test_put_invalid_id),
        T(test_put_without_body_framing_is_411),
        T(test_wrong_content_type_is_415),
        T(test_body_over_limit_is_413),
        T(test_get_unknown_is_404),
        T(test_list_sorted_filtered_paged),
        T(test_list_bad_query_is_400),
        T(test_unknown_query_is_400),
        T(test_post_creates_with_given_or_generated_id),
        T(test_delete_marks_deleting),
        T(test_start_stop_activity),
        T(test_full_sync_replaces_desired_set),
        T(test_full_sync_is_all_or_nothing),
        T(test_full_sync_larger_than_max_body_is_accepted),
        T(test_secrets_never_returned_or_logged),
        T(test_unknown_routes_and_wrong_methods),
        T(test_status_and_orphans),
        T(test_restart_forgets_desired_state),
        T(test_sigterm_exits_zero_promptly),
#undef T
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
