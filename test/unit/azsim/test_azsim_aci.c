/*
 * Unit tests of the documented ACI behaviours of pkg/azsim (the research
 * notes' items 1-5 and 9), driving the model directly (azsim_handle) with
 * a fake clock: terminal group states and restarts by restart policy,
 * ContainerGroupTransitioning and a stale view, quotas, capacity and
 * registration, image pulls (failures, pull times, the Waiting timeout,
 * events), failed stops and deletions, Canceled, identical and invalid
 * updates, DNS label scopes, and the `aci` settings (YAML and
 * /_azsim/aci). Every setting is switched on explicitly: the defaults are
 * covered by test_azsim.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azsim/azsim.h"
#include "base/base.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUB "00000000-0000-0000-0000-000000000000"
#define SUB2 "11111111-0000-0000-0000-000000000000"
#define CG_PATH                                                                                    \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.ContainerInstance/"             \
    "containerGroups"
#define CG_PATH2                                                                                   \
    "/subscriptions/" SUB "/resourceGroups/rg2/providers/Microsoft.ContainerInstance/"             \
    "containerGroups"
#define ACI_V "?api-version=2025-09-01"
#define TRANSITIONING_MSG(n)                                                                       \
    "The container group '" n "' is still transitioning, please retry later."

static uint64_t g_now = 5000000;

static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return g_now;
}

static void advance(uint64_t ms)
{
    g_now += ms;
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct fx {
    azsim_t *sim;
    char token[2048];
    azsim_resp_t r;
    cJSON *j;
} fx_t;

static void clear_last(fx_t *f)
{
    azsim_resp_release(&f->r);
    azsim_resp_init(&f->r);
    cJSON_Delete(f->j);
    f->j = NULL;
}

/* One request (target "path?query" or an absolute URL); extra is one more
 * header or NULL. Returns the status; the answer stays in f. */
static int req_h(fx_t *f, const char *method, const char *target, const char *body,
                 const char *extra_name, const char *extra_value)
{
    clear_last(f);
    if (strncmp(target, "http://", 7) == 0)
        target = strchr(target + 7, '/');
    char *t = d8_xstrdup(target);
    char *qm = strchr(t, '?');
    if (qm)
        *qm = '\0';
    char auth[2100];
    snprintf(auth, sizeof(auth), "Bearer %s", f->token);
    http_header_t h[4];
    size_t nh = 0;
    h[nh++] = (http_header_t){"host", "azsim.test"};
    if (f->token[0])
        h[nh++] = (http_header_t){"authorization", auth};
    if (body)
        h[nh++] = (http_header_t){"content-type", "application/json"};
    if (extra_name)
        h[nh++] = (http_header_t){extra_name, extra_value};
    http_request_t rq;
    memset(&rq, 0, sizeof(rq));
    rq.method = method;
    rq.target = target;
    rq.path = t;
    rq.query = qm ? qm + 1 : "";
    rq.headers = h;
    rq.nheaders = nh;
    rq.body = body ? body : "";
    rq.body_len = body ? strlen(body) : 0;
    rq.request_id = "test";
    azsim_handle(f->sim, &rq, &f->r);
    if (f->r.body.len)
        f->j = cJSON_Parse(f->r.body.data);
    free(t);
    return f->r.status;
}

static int req(fx_t *f, const char *method, const char *target, const char *body)
{
    return req_h(f, method, target, body, NULL, NULL);
}

/* "a.b.0.c": through objects and array indexes; NULL when missing. */
static const cJSON *at(const cJSON *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (*tok >= '0' && *tok <= '9') ? cJSON_GetArrayItem(cur, atoi(tok))
                                           : cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cur;
}

static const char *jstr(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *err_code(const fx_t *f)
{
    const char *c = jstr(f->j, "error.code");
    return c ? c : "";
}

static const char *err_msg(const fx_t *f)
{
    const char *c = jstr(f->j, "error.message");
    return c ? c : "";
}

static fx_t *fx_new(const azsim_opts_t *o)
{
    fx_t *f = d8_xcalloc(1, sizeof(*f));
    f->sim = azsim_new(o);
    azsim_resp_init(&f->r);
    assert_int_equal(req(f, "POST", "/tenant1/oauth2/v2.0/token",
                         "grant_type=client_credentials&client_id=app1&client_secret=s3cret&"
                         "scope=https%3A%2F%2Fmanagement.azure.com%2F.default"),
                     200);
    snprintf(f->token, sizeof(f->token), "%s", jstr(f->j, "access_token"));
    return f;
}

static fx_t *fx_default(void)
{
    azsim_opts_t o;
    azsim_opts_init(&o);
    o.clock = fake_clock;
    o.throttle = 0;
    fx_t *f = fx_new(&o);
    azsim_opts_release(&o);
    return f;
}

static void fx_free(fx_t *f)
{
    clear_last(f);
    azsim_resp_release(&f->r);
    azsim_free(f->sim);
    free(f);
}

/* POST /_azsim/aci with json; must be accepted. */
static void aci(fx_t *f, const char *json)
{
    if (req(f, "POST", "/_azsim/aci", json) != 200)
        fail_msg("POST /_azsim/aci %s answered %d: %s", json, f->r.status, f->r.body.data);
}

static void faults(fx_t *f, const char *json)
{
    assert_int_equal(req(f, "POST", "/_azsim/faults", json), 200);
}

/* A group body: one container "workspace" running image with cpu cores,
 * restartPolicy policy, and a public IP with label (NULL: none) under
 * scope (NULL: not sent). */
static char *body(const char *image, const char *policy, double cpu, const char *label,
                  const char *scope)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b,
                  "{\"location\":\"East US\",\"properties\":{\"osType\":\"Linux\","
                  "\"restartPolicy\":\"%s\",\"containers\":[{\"name\":\"workspace\","
                  "\"properties\":{\"image\":\"%s\",\"resources\":{\"requests\":{\"cpu\":%g,"
                  "\"memoryInGB\":4}},\"ports\":[{\"port\":8080}]}}],\"ipAddress\":{\"type\":"
                  "\"Public\",\"ports\":[{\"port\":8080}]",
                  policy, image, cpu);
    if (label)
        d8_buf_printf(&b, ",\"dnsNameLabel\":\"%s\"", label);
    if (scope)
        d8_buf_printf(&b, ",\"autoGeneratedDomainNameLabelScope\":\"%s\"", scope);
    d8_buf_puts(&b, "}}}");
    return d8_buf_detach(&b, NULL);
}

/* PUT of a group named name in rg1 from body(...); returns the status. */
static int put(fx_t *f, const char *name, const char *image, const char *policy, double cpu)
{
    char url[512];
    snprintf(url, sizeof(url), CG_PATH "/%s" ACI_V, name);
    char *b = body(image, policy, cpu, NULL, NULL);
    int st = req(f, "PUT", url, b);
    free(b);
    return st;
}

static int get(fx_t *f, const char *name)
{
    char url[512];
    snprintf(url, sizeof(url), CG_PATH "/%s" ACI_V, name);
    return req(f, "GET", url, NULL);
}

static int action(fx_t *f, const char *name, const char *verb)
{
    char url[512];
    snprintf(url, sizeof(url), CG_PATH "/%s/%s" ACI_V, name, verb);
    return req(f, "POST", url, NULL);
}

static int del(fx_t *f, const char *name)
{
    char url[512];
    snprintf(url, sizeof(url), CG_PATH "/%s" ACI_V, name);
    return req(f, "DELETE", url, NULL);
}

/* After get(): instance state, provisioning state, container 0's view. */
static const char *inst(const fx_t *f)
{
    return jstr(f->j, "properties.instanceView.state");
}

static const char *prov(const fx_t *f)
{
    return jstr(f->j, "properties.provisioningState");
}

static const cJSON *cview(const fx_t *f)
{
    return at(f->j, "properties.containers.0.properties.instanceView");
}

/* The event of that name in an events array, or NULL. */
static const cJSON *event(const cJSON *events, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, events)
    {
        if (strcmp(jstr(e, "name"), name) == 0)
            return e;
    }
    return NULL;
}

/* Creates a group and lets it provision (2 s). */
static void running(fx_t *f, const char *name, const char *image, const char *policy)
{
    assert_int_equal(put(f, name, image, policy, 1), 201);
    advance(2000);
    assert_int_equal(get(f, name), 200);
    assert_string_equal(prov(f), "Succeeded");
}

/* ---- 1. terminal states and restarts ------------------------------------ */

static void test_exit_zero_on_failure_succeeds(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"images\":[{\"match\":\"exit0*\",\"exitAfterMs\":5000,\"exitCode\":0}]}");
    running(f, "g1", "exit0/ws:1", "OnFailure");
    assert_string_equal(inst(f), "Running");
    assert_string_equal(jstr(cview(f), "currentState.state"), "Running");
    advance(4999);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Running");
    advance(1);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Succeeded");
    assert_string_equal(prov(f), "Succeeded");
    const cJSON *cv = cview(f);
    assert_string_equal(jstr(cv, "currentState.state"), "Terminated");
    assert_int_equal(jnum(cv, "currentState.exitCode"), 0);
    assert_non_null(jstr(cv, "currentState.finishTime"));
    assert_int_equal(jnum(cv, "restartCount"), 0);
    /* Stop has no effect on a group that ran to completion. */
    assert_int_equal(action(f, "g1", "stop"), 204);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Succeeded");
    /* Start runs it again as a new deployment. */
    assert_int_equal(action(f, "g1", "start"), 202);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Pending");
    advance(2000);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Running");
    assert_non_null(event(at(cview(f), "events"), "Started"));
    advance(5000);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Succeeded");
    fx_free(f);
}

static void test_exit_non_zero_on_failure_restarts(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"crashBackoffMs\":1000,\"images\":[{\"match\":\"crash*\",\"exitAfterMs\":3000,"
           "\"exitCode\":3}]}");
    running(f, "g1", "crash/ws:1", "OnFailure");
    advance(3000);
    assert_int_equal(get(f, "g1"), 200);
    /* ACI restarts it: the group stays Running, never Failed. */
    assert_string_equal(inst(f), "Running");
    const cJSON *cv = cview(f);
    assert_int_equal(jnum(cv, "restartCount"), 1);
    assert_string_equal(jstr(cv, "currentState.state"), "Waiting");
    assert_string_equal(jstr(cv, "previousState.state"), "Terminated");
    assert_int_equal(jnum(cv, "previousState.exitCode"), 3);
    assert_non_null(event(at(cv, "events"), "BackOff"));
    advance(1000);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(jstr(cview(f), "currentState.state"), "Running");
    assert_int_equal(jnum(event(at(cview(f), "events"), "Started"), "count"), 2);
    /* The second crash backs off twice as long. */
    advance(3000);
    assert_int_equal(get(f, "g1"), 200);
    assert_int_equal(jnum(cview(f), "restartCount"), 2);
    advance(1999);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(jstr(cview(f), "currentState.state"), "Waiting");
    advance(1);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(jstr(cview(f), "currentState.state"), "Running");
    fx_free(f);
}

/* ---- 11. probes, the IDE behind them, logs ------------------------------ */

/* PUT of a group whose container has a readiness probe (1 s period) and
 * optionally a liveness probe (1 s period, 2 failures). */
static int put_probed(fx_t *f, const char *name, const char *image, int liveness)
{
    char url[512], b[1400];
    snprintf(url, sizeof(url), CG_PATH "/%s" ACI_V, name);
    snprintf(b, sizeof(b),
             "{\"location\":\"East US\",\"properties\":{\"osType\":\"Linux\","
             "\"restartPolicy\":\"OnFailure\",\"containers\":[{\"name\":\"workspace\","
             "\"properties\":{\"image\":\"%s\",\"resources\":{\"requests\":{\"cpu\":1,"
             "\"memoryInGB\":4}},\"ports\":[{\"port\":8080}],\"readinessProbe\":{\"httpGet\":"
             "{\"path\":\"/healthz\",\"port\":8080,\"scheme\":\"http\"},\"periodSeconds\":1,"
             "\"failureThreshold\":3}%s}}],\"ipAddress\":{\"type\":\"Public\",\"ports\":"
             "[{\"port\":8080}]}}}",
             image,
             liveness ? ",\"livenessProbe\":{\"httpGet\":{\"path\":\"/alive\",\"port\":8080},"
                        "\"periodSeconds\":1,\"failureThreshold\":2}"
                      : "");
    return req(f, "PUT", url, b);
}

static void test_probes_and_logs(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"crashBackoffMs\":1000,\"images\":[{\"match\":\"slow*\",\"readyAfterMs\":2500},"
           "{\"match\":\"deaf*\",\"probeNeverPasses\":true}]}");
    /* A slow IDE: the readiness probe fails at 0, 1 and 2 s into the run
     * (one merged Unhealthy event, count 3), then passes: no more events. */
    assert_int_equal(put_probed(f, "slow", "slow/ws:1", 0), 201);
    advance(2000); /* provisioned: the run starts */
    advance(2600);
    assert_int_equal(get(f, "slow"), 200);
    const cJSON *u = event(at(cview(f), "events"), "Unhealthy");
    assert_non_null(u);
    assert_string_equal(jstr(u, "type"), "Warning");
    assert_int_equal(jnum(u, "count"), 3);
    assert_non_null(strstr(jstr(u, "message"), "Readiness probe failed: Get \"http://"));
    assert_non_null(strstr(jstr(u, "message"), ":8080/healthz\": dial tcp "));
    advance(5000);
    assert_int_equal(get(f, "slow"), 200);
    assert_int_equal(jnum(event(at(cview(f), "events"), "Unhealthy"), "count"), 3);
    assert_int_equal(jnum(cview(f), "restartCount"), 0);
    /* Its log: the start, then the IDE. */
    char url[512];
    snprintf(url, sizeof(url), CG_PATH "/slow/containers/workspace/logs" ACI_V);
    assert_int_equal(req(f, "GET", url, NULL), 200);
    const char *content = jstr(f->j, "content");
    assert_non_null(content);
    const char *st = strstr(content, "dev8 workspace: starting slow/ws:1 (restart 0)\n");
    assert_non_null(st);
    assert_non_null(strstr(st, "dev8 workspace: IDE listening on port 8080\n"));
    snprintf(url, sizeof(url), CG_PATH "/slow/containers/workspace/logs" ACI_V "&tail=1");
    assert_int_equal(req(f, "GET", url, NULL), 200);
    assert_string_equal(jstr(f->j, "content"), "dev8 workspace: IDE listening on port 8080\n");
    snprintf(url, sizeof(url),
             CG_PATH "/slow/containers/workspace/logs" ACI_V "&tail=1&timestamps=true");
    assert_int_equal(req(f, "GET", url, NULL), 200);
    assert_true(strlen(jstr(f->j, "content")) > 21 && jstr(f->j, "content")[4] == '-');
    snprintf(url, sizeof(url), CG_PATH "/slow/containers/other/logs" ACI_V);
    assert_int_equal(req(f, "GET", url, NULL), 404);
    assert_string_equal(jstr(f->j, "error.code"), "ContainerNotFound");
    snprintf(url, sizeof(url), CG_PATH "/nosuch/containers/workspace/logs" ACI_V);
    assert_int_equal(req(f, "GET", url, NULL), 404);
    snprintf(url, sizeof(url), CG_PATH "/slow/containers/workspace/logs" ACI_V "&tail=x");
    assert_int_equal(req(f, "GET", url, NULL), 400);

    /* An IDE that never answers a liveness probe: killed after 2 failures
     * (0 and 1 s into the run), restarted after the back-off: restartCount
     * 1, previousState Terminated 137, Killing with kubelet's words. */
    assert_int_equal(put_probed(f, "deaf", "deaf/ws:1", 1), 201);
    advance(2000);
    advance(1500);
    assert_int_equal(get(f, "deaf"), 200);
    const cJSON *cv = cview(f);
    assert_int_equal(jnum(cv, "restartCount"), 1);
    assert_string_equal(jstr(cv, "previousState.state"), "Terminated");
    assert_int_equal(jnum(cv, "previousState.exitCode"), 137);
    const cJSON *k = event(at(cv, "events"), "Killing");
    assert_non_null(k);
    assert_string_equal(jstr(k, "message"),
                        "Container workspace failed liveness probe, will be restarted");
    assert_string_equal(inst(f), "Running"); /* the group keeps running */
    fx_free(f);
}

static void test_exit_by_restart_policy(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"crashBackoffMs\":1000,\"images\":[{\"match\":\"fail*\",\"exitAfterMs\":1000,"
           "\"exitCode\":1},{\"match\":\"ok*\",\"exitAfterMs\":1000,\"exitCode\":0}]}");
    running(f, "never-bad", "fail/ws", "Never");
    running(f, "never-ok", "ok/ws", "Never");
    running(f, "always-ok", "ok/ws", "Always");
    advance(1000);
    assert_int_equal(get(f, "never-bad"), 200);
    assert_string_equal(inst(f), "Failed");
    assert_int_equal(jnum(cview(f), "currentState.exitCode"), 1);
    assert_int_equal(get(f, "never-ok"), 200);
    assert_string_equal(inst(f), "Succeeded");
    /* Always never ends in Succeeded: exit 0 restarts too. */
    assert_int_equal(get(f, "always-ok"), 200);
    assert_string_equal(inst(f), "Running");
    assert_true(jnum(cview(f), "restartCount") >= 1);
    /* A stop of a Failed (terminated) group changes nothing either. */
    assert_int_equal(action(f, "never-bad", "stop"), 204);
    assert_int_equal(get(f, "never-bad"), 200);
    assert_string_equal(inst(f), "Failed");
    fx_free(f);
}

/* ---- 2. transitions and a stale view -------------------------------------- */

static void test_transitioning(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    /* By default a group transitions while a deployment runs. */
    assert_int_equal(put(f, "g1", "img", "OnFailure", 1), 201);
    assert_int_equal(action(f, "g1", "stop"), 409);
    assert_string_equal(err_code(f), "ContainerGroupTransitioning");
    assert_string_equal(err_msg(f), TRANSITIONING_MSG("g1"));
    assert_int_equal(action(f, "g1", "restart"), 409);
    assert_int_equal(action(f, "g1", "start"), 204); /* "already running or starting" */
    advance(2000);
    /* With transitionMs, for that long after a start, stop or restart. */
    aci(f, "{\"transitionMs\":10000}");
    assert_int_equal(action(f, "g1", "stop"), 204);
    assert_int_equal(action(f, "g1", "start"), 409);
    assert_string_equal(err_msg(f), TRANSITIONING_MSG("g1"));
    advance(9999);
    assert_int_equal(action(f, "g1", "start"), 409);
    advance(1);
    assert_int_equal(action(f, "g1", "start"), 202);
    advance(2000);
    assert_int_equal(action(f, "g1", "stop"), 409);
    assert_int_equal(del(f, "g1"), 409);
    assert_string_equal(err_code(f), "ContainerGroupTransitioning");
    assert_int_equal(action(f, "g1", "start"), 204);
    advance(8000);
    assert_int_equal(action(f, "g1", "restart"), 204);
    advance(5000);
    assert_int_equal(action(f, "g1", "stop"), 409);
    advance(5000);
    assert_int_equal(del(f, "g1"), 202);
    /* Actions on a group being deleted transition too. */
    assert_int_equal(action(f, "g1", "start"), 409);
    fx_free(f);
}

static void test_stale_view_after_start(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"staleMs\":3000}");
    running(f, "g1", "img", "OnFailure");
    assert_int_equal(action(f, "g1", "stop"), 204);
    assert_int_equal(action(f, "g1", "start"), 202);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Stopped");
    advance(2999);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Stopped");
    advance(1);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Running");
    fx_free(f);
}

/* ---- 3. capacity, quotas and registration --------------------------------- */

static void test_quotas(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"quota\":{\"containerGroups\":2,\"standardCores\":5}}");
    assert_int_equal(put(f, "g1", "img", "OnFailure", 2), 201);
    assert_int_equal(put(f, "g2", "img", "OnFailure", 2), 201);
    assert_int_equal(put(f, "g3", "img", "OnFailure", 0.5), 409);
    assert_string_equal(err_code(f), "ServiceUnavailable");
    assert_string_equal(err_msg(f),
                        "Resource type 'Microsoft.ContainerInstance/containerGroups' container "
                        "group quota 'ContainerGroups' exceeded in region 'eastus'. Limit: '2', "
                        "Usage: '2' Requested: '1'.");
    /* Updates of existing groups are no new groups. */
    assert_int_equal(put(f, "g2", "img:2", "OnFailure", 2), 200);
    aci(f, "{\"quota\":{\"containerGroups\":10}}");
    assert_int_equal(put(f, "g3", "img", "OnFailure", 2), 400);
    assert_string_equal(err_code(f), "ContainerGroupQuotaReached");
    assert_string_equal(err_msg(f),
                        "Resource type 'Microsoft.ContainerInstance/containerGroups' container "
                        "group quota 'StandardCores' exceeded in region 'eastus'. Limit: '5', "
                        "Usage: '4' Requested: '2'.");
    assert_int_equal(put(f, "g3", "img", "OnFailure", 1), 201);
    /* Stopped groups hold no cores; the status is configurable. */
    advance(2000);
    assert_int_equal(action(f, "g1", "stop"), 204);
    assert_int_equal(put(f, "g4", "img", "OnFailure", 2), 201);
    aci(f, "{\"statuses\":{\"containerGroupQuotaReached\":409}}");
    assert_int_equal(put(f, "g5", "img", "OnFailure", 4), 409);
    assert_string_equal(err_code(f), "ContainerGroupQuotaReached");
    /* Another region has its own quota. */
    assert_int_equal(req(f, "PUT", CG_PATH "/g6" ACI_V,
                         "{\"location\":\"westus\",\"properties\":{\"osType\":\"Linux\","
                         "\"containers\":[{\"name\":\"c\",\"properties\":{\"image\":\"i\","
                         "\"resources\":{\"requests\":{\"cpu\":4,\"memoryInGB\":1}}}}]}}"),
                     201);
    fx_free(f);
}

static void test_capacity_and_registration(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"capacityExhausted\":[\"East US\"],\"unregisteredSubscriptions\":[\"" SUB2 "\"]}");
    assert_int_equal(put(f, "g1", "img", "OnFailure", 2), 409);
    assert_string_equal(err_code(f), "ServiceUnavailable");
    assert_string_equal(err_msg(f),
                        "The requested resource is not available in the location 'eastus' at "
                        "this moment. Please retry with a different resource request or in "
                        "another location. Resource requested: '2' CPU '4' GB memory 'Linux' "
                        "OS.");
    aci(f, "{\"capacityExhausted\":[]}");
    assert_int_equal(put(f, "g1", "img", "OnFailure", 2), 201);
    /* Every ACI call of an unregistered subscription. */
    assert_int_equal(req(f, "GET",
                         "/subscriptions/" SUB2
                         "/providers/Microsoft.ContainerInstance/containerGroups" ACI_V,
                         NULL),
                     409);
    assert_string_equal(err_code(f), "MissingSubscriptionRegistration");
    assert_string_equal(err_msg(f), "The subscription is not registered to use namespace "
                                    "'Microsoft.ContainerInstance'. See "
                                    "https://aka.ms/rps-not-found for how to register "
                                    "subscriptions.");
    char *b = body("img", "OnFailure", 1, NULL, NULL);
    assert_int_equal(req(f, "PUT",
                         "/subscriptions/" SUB2 "/resourceGroups/rg1/providers/"
                         "Microsoft.ContainerInstance/containerGroups/g1" ACI_V,
                         b),
                     409);
    free(b);
    assert_int_equal(get(f, "g1"), 200);
    fx_free(f);
}

/* ---- 4. image pulls ------------------------------------------------------- */

static void test_inaccessible_and_registry_errors(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"images\":[{\"match\":\"private.azurecr.io/*\",\"failure\":\"InaccessibleImage\"},"
           "{\"match\":\"*library*\",\"failure\":\"RegistryErrorResponse\"}]}");
    assert_int_equal(put(f, "g1", "private.azurecr.io/ws:1", "OnFailure", 1), 201);
    char *op = d8_xstrdup(azsim_resp_header(&f->r, "Azure-AsyncOperation"));
    advance(2000);
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Failed");
    assert_string_equal(jstr(f->j, "error.code"), "InaccessibleImage");
    const char *msg = "The image 'private.azurecr.io/ws:1' in container group 'g1' is not "
                      "accessible. Please check the image and registry credential.";
    assert_string_equal(jstr(f->j, "error.message"), msg);
    free(op);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Failed");
    const cJSON *ev = event(at(cview(f), "events"), "Failed");
    assert_non_null(ev);
    assert_string_equal(jstr(ev, "type"), "Warning");
    assert_string_equal(jstr(ev, "message"), msg);
    /* Docker Hub's rate limit answers the PUT. */
    assert_int_equal(put(f, "g2", "library/node:20", "OnFailure", 1), 409);
    assert_string_equal(err_code(f), "RegistryErrorResponse");
    assert_string_equal(err_msg(f), "An error response is received from the docker registry "
                                    "'index.docker.io'. Please retry later.");
    assert_int_equal(put(f, "g2", "myreg.example.com/library/x", "OnFailure", 1), 409);
    assert_non_null(strstr(err_msg(f), "'myreg.example.com'"));
    assert_int_equal(get(f, "g2"), 404);
    fx_free(f);
}

static void test_pull_time_and_events(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"images\":[{\"match\":\"big*\",\"pullMs\":40000}]}");
    assert_int_equal(put(f, "g1", "big/ws", "OnFailure", 1), 201);
    /* Azure cannot foresee a pull: Retry-After is the provisioning delay. */
    assert_string_equal(azsim_resp_header(&f->r, "Retry-After"), "2");
    advance(41999);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Creating");
    assert_string_equal(jstr(cview(f), "currentState.state"), "Waiting");
    const cJSON *pulling = event(at(cview(f), "events"), "Pulling");
    assert_non_null(pulling);
    assert_string_equal(jstr(pulling, "message"), "pulling image \"big/ws\"");
    assert_null(event(at(cview(f), "events"), "Pulled"));
    advance(1);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Succeeded");
    const cJSON *evs = at(cview(f), "events");
    const cJSON *pulled = event(evs, "Pulled");
    assert_non_null(pulled);
    assert_string_equal(jstr(pulled, "message"), "Successfully pulled image \"big/ws\"");
    assert_int_equal(jnum(pulled, "count"), 1);
    assert_string_equal(jstr(pulled, "type"), "Normal");
    assert_non_null(jstr(pulled, "firstTimestamp"));
    assert_non_null(jstr(pulled, "lastTimestamp"));
    assert_string_not_equal(jstr(pulled, "firstTimestamp"),
                            jstr(event(evs, "Pulling"), "firstTimestamp"));
    assert_non_null(event(evs, "Started"));
    fx_free(f);
}

static void test_pull_failures_and_waiting_timeout(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"waitingTimeoutMs\":120000,\"images\":[{\"match\":\"gone*\",\"failure\":"
           "\"PullFailed\"},{\"match\":\"huge*\",\"pullMs\":200000}]}");
    assert_int_equal(put(f, "g1", "gone/ws", "OnFailure", 1), 201);
    char *op = d8_xstrdup(azsim_resp_header(&f->r, "Azure-AsyncOperation"));
    advance(60000);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Creating");
    assert_string_equal(jstr(cview(f), "currentState.state"), "Waiting");
    const cJSON *failed = event(at(cview(f), "events"), "Failed");
    assert_non_null(failed);
    assert_string_equal(jstr(failed, "type"), "Warning");
    assert_string_equal(jstr(failed, "message"),
                        "Failed to pull image \"gone/ws\": rpc error: code 2 desc Error: image "
                        "gone/ws not found");
    /* Tries at 2 s, 12 s, 32 s: the counts grow. */
    assert_int_equal(jnum(failed, "count"), 3);
    assert_int_equal(jnum(event(at(cview(f), "events"), "BackOff"), "count"), 3);
    advance(60000);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Failed");
    assert_string_equal(inst(f), "Pending");
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Failed");
    assert_string_equal(jstr(f->j, "error.code"), "ResourceDeploymentFailure");
    free(op);
    /* A pull longer than the timeout fails as well. */
    assert_int_equal(put(f, "g2", "huge/ws", "OnFailure", 1), 201);
    advance(119999);
    assert_int_equal(get(f, "g2"), 200);
    assert_string_equal(prov(f), "Creating");
    advance(1);
    assert_int_equal(get(f, "g2"), 200);
    assert_string_equal(prov(f), "Failed");
    fx_free(f);
}

/* Milliseconds until each of n groups was Running, by 100 ms steps. */
static void pull_times(fx_t *f, int n, uint64_t *out)
{
    for (int i = 0; i < n; i++)
        out[i] = 0;
    for (uint64_t t = 0; t <= 60000; t += 100) {
        for (int i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof(name), "p%03d", i);
            if (!out[i] && get(f, name) == 200 && strcmp(prov(f), "Succeeded") == 0)
                out[i] = t;
        }
        advance(100);
    }
}

static void test_pull_time_distribution(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"pull\":{\"medianMs\":4000,\"p95Ms\":20000},\"quota\":{\"containerGroups\":0,"
           "\"standardCores\":0}}");
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "p%03d", i);
        assert_int_equal(put(f, name, "img", "OnFailure", 1), 201);
    }
    uint64_t t[N];
    pull_times(f, N, t);
    int by_median = 0, by_p95 = 0;
    for (int i = 0; i < N; i++) {
        assert_true(t[i] > 0);
        by_median += t[i] <= 2000 + 4000;
        by_p95 += t[i] <= 2000 + 20000;
    }
    print_message("pull times: %d of %d within the median, %d within p95\n", by_median, N, by_p95);
    assert_true(by_median >= N * 38 / 100 && by_median <= N * 62 / 100);
    assert_true(by_p95 >= N * 89 / 100 && by_p95 <= N * 99 / 100);
    fx_free(f);
}

/* ---- 5. failed stop and delete, Canceled ---------------------------------- */

static void test_failed_stop_and_delete(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    running(f, "g1", "img", "OnFailure");
    faults(f, "{\"failStopRate\":1}");
    assert_int_equal(action(f, "g1", "stop"), 204);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Failed");
    assert_string_equal(inst(f), "Running");
    faults(f, "{\"failStopRate\":0}");
    assert_int_equal(action(f, "g1", "stop"), 204);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Succeeded");
    assert_string_equal(inst(f), "Stopped");
    faults(f, "{\"failDeleteRate\":1}");
    assert_int_equal(del(f, "g1"), 202);
    char *op = d8_xstrdup(azsim_resp_header(&f->r, "Azure-AsyncOperation"));
    advance(1000);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Failed");
    assert_string_equal(inst(f), "Stopped");
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Failed");
    free(op);
    faults(f, "{\"failDeleteRate\":0}");
    assert_int_equal(del(f, "g1"), 202);
    advance(1000);
    assert_int_equal(get(f, "g1"), 404);
    fx_free(f);
}

static void test_delete_cancels_create(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    /* A start in flight (a deployment too) is canceled. */
    running(f, "g0", "img", "OnFailure");
    assert_int_equal(action(f, "g0", "stop"), 204);
    assert_int_equal(action(f, "g0", "start"), 202);
    char *start = d8_xstrdup(azsim_resp_header(&f->r, "Azure-AsyncOperation"));
    assert_int_equal(del(f, "g0"), 202);
    assert_int_equal(get(f, "g0"), 200);
    assert_string_equal(prov(f), "Deleting");
    assert_int_equal(req(f, "GET", start, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Canceled");
    free(start);
    assert_int_equal(put(f, "g1", "img", "OnFailure", 1), 201);
    char *op = d8_xstrdup(azsim_resp_header(&f->r, "Azure-AsyncOperation"));
    advance(500);
    assert_int_equal(del(f, "g1"), 202);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Canceled");
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Canceled");
    advance(2000);
    assert_int_equal(get(f, "g1"), 404);
    free(op);
    fx_free(f);
}

/* ---- 6. identical and invalid updates -------------------------------------- */

static void test_identical_put_restarts(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    running(f, "g1", "img", "OnFailure");
    /* No conditional PUT: If-None-Match is not read. */
    char *b = body("img", "OnFailure", 1, NULL, NULL);
    assert_int_equal(req_h(f, "PUT", CG_PATH "/g1" ACI_V, b, "If-None-Match", "*"), 200);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Succeeded");
    assert_string_equal(inst(f), "Running");
    assert_int_equal(jnum(cview(f), "restartCount"), 1);
    assert_string_equal(jstr(cview(f), "previousState.state"), "Terminated");
    assert_non_null(event(at(cview(f), "events"), "Killing"));
    assert_int_equal(jnum(event(at(cview(f), "events"), "Started"), "count"), 2);
    /* A stopped group is deployed as new. */
    assert_int_equal(action(f, "g1", "stop"), 204);
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, b), 200);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(prov(f), "Updating");
    assert_string_equal(inst(f), "Pending");
    advance(2000);
    assert_int_equal(get(f, "g1"), 200);
    assert_string_equal(inst(f), "Running");
    /* Switched off: an unchanged PUT changes nothing. */
    aci(f, "{\"identicalPutRestarts\":false}");
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, b), 200);
    assert_int_equal(get(f, "g1"), 200);
    assert_int_equal(jnum(cview(f), "restartCount"), 0);
    free(b);
    fx_free(f);
}

static void test_immutable_updates(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    running(f, "g1", "img", "OnFailure");
    const char *want = "The updates on container group 'g1' are invalid. If you are going to "
                       "update the os type, restart policy, network profile, CPU, memory or GPU "
                       "resources for a container group, you must delete it first and then "
                       "create a new one.";
    assert_int_equal(put(f, "g1", "img", "OnFailure", 2), 400);
    assert_string_equal(err_code(f), "InvalidContainerGroupUpdate");
    assert_string_equal(err_msg(f), want);
    assert_int_equal(put(f, "g1", "img", "Never", 1), 400);
    assert_string_equal(err_code(f), "InvalidContainerGroupUpdate");
    char *b = body("img", "OnFailure", 1, NULL, NULL);
    char *w = strstr(b, "Linux");
    memcpy(w, "Win  ", 5);
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, b), 400);
    free(b);
    aci(f, "{\"statuses\":{\"invalidContainerGroupUpdate\":409}}");
    assert_int_equal(put(f, "g1", "img", "OnFailure", 4), 409);
    /* The image may change: a new deployment. */
    assert_int_equal(put(f, "g1", "img:2", "OnFailure", 1), 200);
    assert_string_equal(prov(f), "Updating");
    fx_free(f);
}

/* ---- 10. DNS labels -------------------------------------------------------- */

static int put_label(fx_t *f, const char *path, const char *label, const char *scope)
{
    char *b = body("img", "OnFailure", 1, label, scope);
    int st = req(f, "PUT", path, b);
    free(b);
    return st;
}

static void test_dns_labels(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    aci(f, "{\"uniqueDnsLabels\":true}");
    assert_int_equal(put_label(f, CG_PATH "/a" ACI_V, "shared-label", NULL), 201);
    assert_string_equal(jstr(f->j, "properties.ipAddress.fqdn"),
                        "shared-label.eastus.azurecontainer.io");
    assert_int_equal(put_label(f, CG_PATH "/b" ACI_V, "shared-label", "Unsecure"), 400);
    assert_string_equal(err_code(f), "DnsNameLabelAlreadyTaken");
    assert_string_equal(err_msg(f), "The DNS name label 'shared-label' in container group 'b' "
                                    "is not available. Try using a different label.");
    /* A hashed scope gets its own name: label.<hash>.region. */
    assert_int_equal(put_label(f, CG_PATH "/c" ACI_V, "shared-label", "TenantReuse"), 201);
    const char *fq = jstr(f->j, "properties.ipAddress.fqdn");
    assert_int_equal(strlen(fq),
                     strlen("shared-label.") + 16 + strlen(".eastus.azurecontainer.io"));
    assert_non_null(strstr(fq, ".eastus.azurecontainer.io"));
    char tenant_fqdn[128];
    snprintf(tenant_fqdn, sizeof(tenant_fqdn), "%s", fq);
    /* The same scope and hash is the same name: taken. */
    assert_int_equal(put_label(f, CG_PATH2 "/d" ACI_V, "shared-label", "TenantReuse"), 400);
    assert_string_equal(err_code(f), "DnsNameLabelAlreadyTaken");
    /* Resource group reuse hashes the resource group in. */
    assert_int_equal(put_label(f, CG_PATH2 "/d" ACI_V, "shared-label", "ResourceGroupReuse"), 201);
    assert_string_not_equal(jstr(f->j, "properties.ipAddress.fqdn"), tenant_fqdn);
    /* Noreuse: a random hash each time (kept by updates). */
    assert_int_equal(put_label(f, CG_PATH "/e" ACI_V, "shared-label", "NoReuse"), 201);
    char e_fqdn[128];
    snprintf(e_fqdn, sizeof(e_fqdn), "%s", jstr(f->j, "properties.ipAddress.fqdn"));
    assert_int_equal(put_label(f, CG_PATH "/e" ACI_V, "shared-label", "Noreuse"), 200);
    assert_string_equal(jstr(f->j, "properties.ipAddress.fqdn"), e_fqdn);
    assert_int_equal(put_label(f, CG_PATH "/g" ACI_V, "shared-label", "Noreuse"), 201);
    assert_string_not_equal(jstr(f->j, "properties.ipAddress.fqdn"), e_fqdn);
    /* Values outside the enumeration, and bad labels, are refused. */
    assert_int_equal(put_label(f, CG_PATH "/h" ACI_V, "shared-label", "Global"), 400);
    assert_string_equal(err_code(f), "InvalidRequestContent");
    assert_int_equal(put_label(f, CG_PATH "/h" ACI_V, "Node", NULL), 400);
    assert_string_equal(err_code(f), "InvalidDnsNameLabel");
    /* Another region is another namespace; a deleted group frees its name. */
    char *b = body("img", "OnFailure", 1, "shared-label", NULL);
    memcpy(strstr(b, "East US"), "WestUS ", 7);
    assert_int_equal(req(f, "PUT", CG_PATH "/w" ACI_V, b), 201);
    free(b);
    assert_int_equal(req(f, "DELETE", CG_PATH "/a" ACI_V, NULL), 202);
    advance(1000);
    assert_int_equal(put_label(f, CG_PATH "/b" ACI_V, "shared-label", NULL), 201);
    fx_free(f);
}

/* ---- settings ------------------------------------------------------------- */

static char *write_tmp(const char *text)
{
    char *path = d8_xstrdup("/tmp/azsim-aci-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_aci_settings(void **state)
{
    (void)state;
    char *path = write_tmp("aci:\n"
                           "  transitionMs: 10000\n"
                           "  staleMs: 500\n"
                           "  waitingTimeoutMs: 60000\n"
                           "  crashBackoffMs: 2000\n"
                           "  identicalPutRestarts: false\n"
                           "  uniqueDnsLabels: true\n"
                           "  pull: {medianMs: 3000, p95Ms: 30000}\n"
                           "  quota: {containerGroups: 10, standardCores: 20}\n"
                           "  statuses: {containerGroupQuotaReached: 409, "
                           "invalidContainerGroupUpdate: 409, dnsNameLabelAlreadyTaken: 409}\n"
                           "  capacityExhausted: [West Europe]\n"
                           "  unregisteredSubscriptions: [\"" SUB2 "\"]\n"
                           "  images:\n"
                           "    - {match: \"exit0*\", exitAfterMs: 5000, exitCode: 0}\n"
                           "    - {match: \"*.azurecr.io/*\", failure: InaccessibleImage}\n"
                           "    - match: \"big*\"\n"
                           "      pull: {medianMs: 40000, p95Ms: 90000}\n");
    azsim_opts_t o;
    azsim_opts_init(&o);
    char err[512] = "";
    assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), 0);
    assert_int_equal(o.aci.transition_ms, 10000);
    assert_int_equal(o.aci.stale_ms, 500);
    assert_int_equal(o.aci.waiting_timeout_ms, 60000);
    assert_int_equal(o.aci.crash_backoff_ms, 2000);
    assert_int_equal(o.aci.identical_put_restarts, 0);
    assert_int_equal(o.aci.unique_dns_labels, 1);
    assert_int_equal(o.aci.pull_p95_ms, 30000);
    assert_int_equal(o.aci.quota_cores, 20);
    assert_int_equal(o.aci.dns_taken_status, 409);
    assert_string_equal(o.aci.capacity_exhausted[0], "westeurope");
    assert_int_equal(o.aci.nimages, 3);
    assert_int_equal(o.aci.images[0].exit_after_ms, 5000);
    assert_int_equal(o.aci.images[1].failure, AZSIM_PULL_INACCESSIBLE);
    assert_int_equal(o.aci.images[1].exit_after_ms, -1);
    assert_int_equal(o.aci.images[2].pull_median_ms, 40000);
    /* The control API answers what the config set; reset restores it. */
    o.clock = fake_clock;
    o.throttle = 0;
    fx_t *f = fx_new(&o);
    azsim_opts_release(&o);
    assert_int_equal(req(f, "GET", "/_azsim/aci", NULL), 200);
    assert_int_equal(jnum(f->j, "transitionMs"), 10000);
    assert_string_equal(jstr(f->j, "images.1.failure"), "InaccessibleImage");
    aci(f, "{\"transitionMs\":0,\"images\":[]}");
    assert_int_equal(jnum(f->j, "transitionMs"), 0);
    assert_int_equal(jnum(f->j, "staleMs"), 500);
    /* All or nothing: one bad field changes nothing. */
    assert_int_equal(req(f, "POST", "/_azsim/aci", "{\"staleMs\":1,\"quota\":{\"cores\":1}}"), 400);
    assert_string_equal(err_code(f), "InvalidAciSettings");
    assert_non_null(strstr(err_msg(f), "cores: unknown key in quota"));
    assert_int_equal(req(f, "GET", "/_azsim/aci", NULL), 200);
    assert_int_equal(jnum(f->j, "staleMs"), 500);
    assert_int_equal(req(f, "POST", "/_azsim/aci", "{\"images\":[{\"exitCode\":1}]}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/aci", "{\"pull\":{\"medianMs\":5,\"p95Ms\":4}}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/reset", NULL), 204);
    assert_int_equal(req(f, "GET", "/_azsim/aci", NULL), 200);
    assert_int_equal(jnum(f->j, "transitionMs"), 10000);
    fx_free(f);

    /* YAML errors name the file position and the key. */
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"aci:\n  transitionMs: soon\n", ":2:17: aci.transitionMs: expected an integer"},
        {"aci:\n  images:\n    - {exitCode: 300, match: x}\n",
         ":3:18: aci.images.exitCode: expected an integer from 0 to 255"},
        {"aci:\n  colour: blue\n", ":2:11: aci.colour: unknown key in aci"},
        {"aci:\n  images:\n    - {failure: Sometimes, match: x}\n",
         ":3:17: aci.images.failure: expected None"},
        {"aci:\n  statuses: {dnsNameLabelAlreadyTaken: 200}\n",
         ":2:40: aci.statuses.dnsNameLabelAlreadyTaken: expected an HTTP status"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *fp = fopen(path, "w");
        fputs(bad[i].yaml, fp);
        fclose(fp);
        azsim_opts_init(&o);
        assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), D8_EINVAL);
        if (!strstr(err, bad[i].want))
            fail_msg("config %zu: '%s' lacks '%s'", i, err, bad[i].want);
        assert_int_equal(o.aci.transition_ms, 0); /* nothing applied */
        azsim_opts_release(&o);
    }
    unlink(path);
    free(path);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_zero_on_failure_succeeds),
        cmocka_unit_test(test_exit_non_zero_on_failure_restarts),
        cmocka_unit_test(test_exit_by_restart_policy),
        cmocka_unit_test(test_probes_and_logs),
        cmocka_unit_test(test_transitioning),
        cmocka_unit_test(test_stale_view_after_start),
        cmocka_unit_test(test_quotas),
        cmocka_unit_test(test_capacity_and_registration),
        cmocka_unit_test(test_inaccessible_and_registry_errors),
        cmocka_unit_test(test_pull_time_and_events),
        cmocka_unit_test(test_pull_failures_and_waiting_timeout),
        cmocka_unit_test(test_pull_time_distribution),
        cmocka_unit_test(test_failed_stop_and_delete),
        cmocka_unit_test(test_delete_cancels_create),
        cmocka_unit_test(test_identical_put_restarts),
        cmocka_unit_test(test_immutable_updates),
        cmocka_unit_test(test_dns_labels),
        cmocka_unit_test(test_aci_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
