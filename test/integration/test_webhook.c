/*
 * End-to-end tests of the status webhook (DESIGN.md section 3, "Status
 * changes are also pushed"): the real bin/dev8-agent converges the real
 * bin/azsim with webhook.url pointing at a receiver run by this test (a
 * pkg/http server on its own libuv loop in a thread). The receiver records
 * every POST — headers, body, the status it answered — and the tests check
 * that every body is signed with the shared secret, that one environment's
 * states arrive in order, that the last state delivered equals what GET
 * answers, that a receiver failing for a while still ends up with the
 * latest state, that the secret never reaches the log, and that without a
 * secret the agent refuses to send anything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "http/http.h"
#include "log/log.h"
#include "webhook/webhook.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define ENV_PATH "/api/v1/environments"
#define SECRET_ENV "D8_ITEST_WEBHOOK_SECRET"
#define SECRET "itest-webhook-S3CRET-value-9f2c"
#define T_CONVERGE 20000

/* ------------------------------------------------------------ the receiver */

typedef struct rec {
    char id[64];
    char event[16];
    char delivery[40];
    unsigned long long rv;
    char *body;
    int sig_ok;
    int answered; /* the status the receiver answered */
} rec_t;

typedef struct receiver {
    pthread_t th;
    uv_loop_t loop;
    uv_async_t stop;
    http_server_t *srv;
    int port;
    pthread_mutex_t mu; /* guards everything below */
    rec_t *recs;
    size_t n, cap;
    int status; /* what to answer */
    int bad;    /* requests that were not signed JSON POSTs with our headers */
} receiver_t;

static receiver_t g_rx;

static void rx_handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    receiver_t *rx = ud;
    const char *ct = http_request_header(req, "content-type");
    const char *ev = http_request_header(req, "x-dev8-event");
    const char *dl = http_request_header(req, "x-dev8-delivery");
    const char *rv = http_request_header(req, "x-dev8-resource-version");
    const char *sg = http_request_header(req, "x-dev8-signature");
    char want[WEBHOOK_SIGNATURE_LEN];
    webhook_signature(SECRET, strlen(SECRET), req->body, req->body_len, want);
    cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");

    pthread_mutex_lock(&rx->mu);
    int status = rx->status;
    if (strcmp(req->method, "POST") != 0 || strcmp(req->path, "/hooks/dev8") != 0 || !ct ||
        strcmp(ct, "application/json") != 0 || !ev || !dl || strlen(dl) != 36 || !rv || !sg ||
        !cJSON_IsString(id))
        rx->bad++;
    if (rx->n == rx->cap) {
        rx->cap = rx->cap ? rx->cap * 2 : 64;
        rx->recs = realloc(rx->recs, rx->cap * sizeof(*rx->recs));
        if (!rx->recs)
            abort();
    }
    rec_t *r = &rx->recs[rx->n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", cJSON_IsString(id) ? id->valuestring : "?");
    snprintf(r->event, sizeof(r->event), "%s", ev ? ev : "");
    snprintf(r->delivery, sizeof(r->delivery), "%s", dl ? dl : "");
    r->rv = rv ? strtoull(rv, NULL, 10) : 0;
    r->body = strndup(req->body, req->body_len);
    r->sig_ok = sg && strcmp(sg, want) == 0;
    r->answered = status;
    pthread_mutex_unlock(&rx->mu);
    cJSON_Delete(j);

    if (status >= 200 && status < 300)
        http_respond(ex, status, NULL, 0, NULL, NULL, 0);
    else
        http_respond(ex, status, NULL, 0, "text/plain", "not now\n", 8);
}

static void rx_stop_cb(uv_async_t *a)
{
    receiver_t *rx = a->data;
    http_server_free(rx->srv, NULL, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *rx_thread(void *arg)
{
    receiver_t *rx = arg;
    uv_run(&rx->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int rx_start(receiver_t *rx)
{
    memset(rx, 0, sizeof(*rx));
    pthread_mutex_init(&rx->mu, NULL);
    rx->status = 204;
    uv_loop_init(&rx->loop);
    http_server_opts_t so = {.host = "127.0.0.1", .port = 0, .handler = rx_handler, .ud = rx};
    if (http_server_new(&rx->loop, &so, &rx->srv) != 0)
        return -1;
    rx->port = http_server_port(rx->srv);
    uv_async_init(&rx->loop, &rx->stop, rx_stop_cb);
    rx->stop.data = rx;
    return pthread_create(&rx->th, NULL, rx_thread, rx) == 0 ? 0 : -1;
}

static void rx_stop(receiver_t *rx)
{
    uv_async_send(&rx->stop);
    pthread_join(rx->th, NULL);
    uv_loop_close(&rx->loop);
    for (size_t i = 0; i < rx->n; i++)
        free(rx->recs[i].body);
    free(rx->recs);
    pthread_mutex_destroy(&rx->mu);
}

static void rx_set_status(int status)
{
    pthread_mutex_lock(&g_rx.mu);
    g_rx.status = status;
    pthread_mutex_unlock(&g_rx.mu);
}

/* A copy of the records for one environment (all when id is NULL). */
static rec_t *rx_copy(const char *id, size_t *n)
{
    pthread_mutex_lock(&g_rx.mu);
    rec_t *out = calloc(g_rx.n + 1, sizeof(*out));
    size_t k = 0;
    for (size_t i = 0; i < g_rx.n; i++) {
        if (id && strcmp(g_rx.recs[i].id, id) != 0)
            continue;
        out[k] = g_rx.recs[i];
        out[k].body = strdup(g_rx.recs[i].body);
        k++;
    }
    pthread_mutex_unlock(&g_rx.mu);
    *n = k;
    return out;
}

static void recs_free(rec_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i].body);
    free(r);
}

static int rx_bad(void)
{
    pthread_mutex_lock(&g_rx.mu);
    int b = g_rx.bad;
    pthread_mutex_unlock(&g_rx.mu);
    return b;
}

/* ------------------------------------------------------------ the processes */

static ta_sim_t g_sim;
static ta_agent_t g_agent;

static int start_agent(ta_agent_t *a, const char *secret_env)
{
    char extra[512];
    snprintf(extra, sizeof(extra),
             "webhook:\n"
             "  url: \"http://127.0.0.1:%d/hooks/dev8\"\n"
             "  secretEnv: %s\n",
             g_rx.port, secret_env);
    ta_opts_t o = {.azsim_port = g_sim.port, .shutdown_grace_seconds = 5, .extra_yaml = extra};
    if (ta_start(a, &o) != 0)
        return -1;
    if (ta_wait_ready(a, 15000) != 0) {
        fprintf(stderr, "test_webhook: the agent did not become ready against azsim\n");
        return -1;
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    static const char *const sim_args[] = {"--provision-ms", "300", "--delete-ms", "200", NULL};
    if (rx_start(&g_rx) != 0)
        return -1;
    setenv(SECRET_ENV, SECRET, 1); /* inherited by the agent */
    if (ta_sim_start(&g_sim, sim_args) != 0)
        return -1;
    if (start_agent(&g_agent, SECRET_ENV) != 0)
        return -1;
    char *log = ta_log(&g_agent);
    int wired = log && strstr(log, "webhook enabled") != NULL;
    free(log);
    if (!wired) {
        fprintf(stderr, "test_webhook: the agent never logged \"webhook enabled\": is pkg/webhook "
                        "wired into pkg/agent/agent.c?\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g_agent.bin && ta_stop(&g_agent) != 0) {
        fprintf(stderr, "test_webhook: dev8-agent did not exit 0\n");
        rc = -1;
    }
    if (g_sim.bin && ta_sim_stop(&g_sim) != 0)
        rc = -1;
    rx_stop(&g_rx);
    unsetenv(SECRET_ENV);
    return rc;
}

/* ------------------------------------------------------------ helpers */

static void put_env(const char *id)
{
    char *body = ta_spec("u-wh", "workspace", "eastus", NULL);
    long st = ta_put(&g_agent, id, body);
    free(body);
    assert_true(st == 201 || st == 200);
}

static void post_env(const char *id, const char *verb)
{
    char path[256];
    snprintf(path, sizeof(path), ENV_PATH "/%s/%s", id, verb);
    th_resp_t r;
    ta_req(&g_agent, "POST", path, NULL, &r);
    assert_int_equal(r.status, 202);
    th_resp_free(&r);
}

static void wait_phase(const char *id, const char *phase)
{
    cJSON *o = ta_env_wait(&g_agent, id, ta_is_phase, phase, T_CONVERGE);
    if (!o)
        fail_msg("%s did not reach %s", id, phase);
    cJSON_Delete(o);
}

static int phase_rank(const char *p)
{
    static const char *const order[] = {"CREATING", "STARTING", "RUNNING",
                                        "STOPPING", "STOPPED",  "DELETING"};
    for (int i = 0; i < 6; i++)
        if (p && strcmp(p, order[i]) == 0)
            return i;
    return -1;
}

/* The body of the last delivery the receiver answered with 2xx, or NULL. */
static char *last_delivered(const char *id, char *event, size_t evlen)
{
    size_t n;
    rec_t *r = rx_copy(id, &n);
    char *body = NULL;
    for (size_t i = n; i-- > 0;) {
        if (r[i].answered >= 200 && r[i].answered < 300) {
            body = strdup(r[i].body);
            if (event)
                snprintf(event, evlen, "%s", r[i].event);
            break;
        }
    }
    recs_free(r, n);
    return body;
}

/* 1 when the last delivered state of id equals what GET answers now. */
static int delivered_is_current(void *ud)
{
    const char *id = ud;
    long st = 0;
    cJSON *cur = ta_env_get(&g_agent, id, &st);
    char *body = last_delivered(id, NULL, 0);
    cJSON *got = body ? cJSON_Parse(body) : NULL;
    int same = cur && got && cJSON_Compare(cur, got, 1);
    cJSON_Delete(cur);
    cJSON_Delete(got);
    free(body);
    return same;
}

static int attempts_at_least_3(void *ud)
{
    size_t n;
    rec_t *r = rx_copy(ud, &n);
    recs_free(r, n);
    return n >= 3;
}

static int delivered_deleted(void *ud)
{
    char ev[16] = "";
    char *body = last_delivered(ud, ev, sizeof(ev));
    free(body);
    return strcmp(ev, "DELETED") == 0;
}

/*
 * Every record of id is signed; resource versions never go back (a retry
 * repeats one, a newer state has a larger one); the first announces ADDED;
 * the phases only move forward along the lifecycle this test drives.
 */
static void check_order(const char *id, size_t *out_n)
{
    size_t n;
    rec_t *r = rx_copy(id, &n);
    assert_true(n > 0);
    assert_string_equal(r[0].event, "ADDED");
    unsigned long long last_rv = 0;
    int last_rank = -1;
    for (size_t i = 0; i < n; i++) {
        assert_true(r[i].sig_ok);
        if (r[i].rv < last_rv)
            fail_msg("%s: delivery %zu has rv %llu after %llu", id, i, r[i].rv, last_rv);
        last_rv = r[i].rv;
        cJSON *j = cJSON_Parse(r[i].body);
        assert_non_null(j);
        int rank = phase_rank(ta_str(j, "status.phase"));
        cJSON_Delete(j);
        if (rank < last_rank)
            fail_msg("%s: delivery %zu goes back in phase (%d after %d)", id, i, rank, last_rank);
        last_rank = rank;
    }
    recs_free(r, n);
    if (out_n)
        *out_n = n;
}

/* ------------------------------------------------------------ tests */

static void test_signed_ordered_latest(void **state)
{
    (void)state;
    put_env("wh-a");
    put_env("wh-b");
    wait_phase("wh-a", "RUNNING");
    wait_phase("wh-b", "RUNNING");
    post_env("wh-b", "stop");
    wait_phase("wh-b", "STOPPED");
    th_resp_t r;
    ta_req(&g_agent, "DELETE", ENV_PATH "/wh-a", NULL, &r);
    assert_int_equal(r.status, 202);
    th_resp_free(&r);
    assert_int_equal(ta_env_wait_gone(&g_agent, "wh-a", T_CONVERGE), 0);

    assert_int_equal(th_wait_until(delivered_is_current, (void *)"wh-b", 15000), 0);
    assert_int_equal(th_wait_until(delivered_deleted, (void *)"wh-a", 15000), 0);
    assert_int_equal(rx_bad(), 0);
    size_t na, nb;
    check_order("wh-a", &na);
    check_order("wh-b", &nb);
    /* Both saw several states (create, run, stop / delete). */
    assert_true(na >= 3);
    assert_true(nb >= 3);

    /* The final DELETED body is the object as it was last seen. */
    char ev[16];
    char *body = last_delivered("wh-a", ev, sizeof(ev));
    cJSON *j = cJSON_Parse(body);
    assert_string_equal(ta_str(j, "id"), "wh-a");
    assert_string_equal(ta_str(j, "status.phase"), "DELETING");
    cJSON_Delete(j);
    free(body);
}

static void test_receiver_failing_then_recovering(void **state)
{
    (void)state;
    rx_set_status(500);
    put_env("wh-c");
    wait_phase("wh-c", "RUNNING");
    post_env("wh-c", "stop");
    wait_phase("wh-c", "STOPPED");
    /* Keep failing until a few attempts were refused (backoff 1 s, 2 s). */
    assert_int_equal(th_wait_until(attempts_at_least_3, (void *)"wh-c", 15000), 0);
    /* Meanwhile every attempt failed, and was retried. */
    size_t n;
    rec_t *r = rx_copy("wh-c", &n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(r[i].answered, 500);
    recs_free(r, n);
    assert_true(n >= 3);

    rx_set_status(200);
    /* Backoff grows to a few seconds while failing; allow for it. */
    assert_int_equal(th_wait_until(delivered_is_current, (void *)"wh-c", 45000), 0);
    char ev[16];
    free(last_delivered("wh-c", ev, sizeof(ev)));
    /* Never delivered before, so still announced as new. */
    assert_string_equal(ev, "ADDED");
    check_order("wh-c", NULL);
    assert_int_equal(rx_bad(), 0);

    th_resp_t m;
    th_api(g_agent.port, "GET", "/metrics", NULL, NULL, &m);
    assert_int_equal(m.status, 200);
    assert_non_null(strstr(m.body, "dev8_webhook_deliveries_total{result=\"http_error\"}"));
    assert_null(strstr(m.body, "dev8_webhook_deliveries_total{result=\"http_error\"} 0\n"));
    assert_non_null(strstr(m.body, "dev8_webhook_deliveries_total{result=\"success\"}"));
    assert_non_null(strstr(m.body, "dev8_webhook_pending"));
    assert_null(strstr(m.body, SECRET));
    th_resp_free(&m);
    char *log = ta_log(&g_agent);
    assert_non_null(strstr(log, "webhook delivery failed"));
    assert_null(strstr(log, SECRET));
    free(log);
}

static void test_secret_never_logged(void **state)
{
    (void)state;
    char *log = ta_log(&g_agent);
    assert_non_null(log);
    assert_non_null(strstr(log, "webhook enabled"));
    assert_null(strstr(log, SECRET));
    /* Nor the signature key in any other spelling the log could take. */
    assert_null(strstr(log, "S3CRET"));
    free(log);
}

/* With webhook.url set but no secret the agent refuses to start (exit 1)
 * and says why, rather than run without the status pushes Next.js
 * expects, or send them unsigned. */
static void test_refuses_without_secret(void **state)
{
    (void)state;
    char extra[512];
    snprintf(extra, sizeof(extra),
             "webhook:\n"
             "  url: \"http://127.0.0.1:%d/hooks/dev8\"\n"
             "  secretEnv: D8_ITEST_NO_SUCH_SECRET\n",
             g_rx.port);
    ta_opts_t o = {.azsim_port = g_sim.port, .shutdown_grace_seconds = 5, .extra_yaml = extra};
    ta_agent_t a;
    assert_int_not_equal(ta_start(&a, &o), 0);
    char *log = ta_log(&a);
    assert_non_null(log);
    assert_non_null(strstr(log, "refusing to start"));
    assert_non_null(strstr(log, "D8_ITEST_NO_SUCH_SECRET"));
    assert_null(strstr(log, "webhook enabled"));
    free(log);
    ta_stop(&a); /* the process is gone; frees the fixture's strings */
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_ordered_latest),
        cmocka_unit_test(test_receiver_failing_then_recovering),
        cmocka_unit_test(test_secret_never_logged),
        cmocka_unit_test(test_refuses_without_secret),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
