/*
 * Unit tests of preflight's run and of pkg/azure's reads without a server:
 * azure_arm_read's argument checks, its cancellation when the client is
 * freed, and preflight_run's report when no token can be obtained (a
 * managed identity endpoint that refuses connections) or when the client
 * goes away mid-run. The reads against a server are test_preflight's
 * (integration, azsim).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "helpers/azure_opts.h"
#include "log/log.h"
#include "preflight/preflight.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const azure_scope_t scope = {"00000000-0000-0000-0000-000000000000", "rg-dev8", "dev8acct",
                                    "eastus"};

/* A loopback port that refuses connections (bound, never listening). */
static int refused_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

typedef struct fixture {
    uv_loop_t loop;
    azure_client_t *c;
    int fd;
    char endpoint[64];
} fixture_t;

static int setup(void **state)
{
    unsetenv("AZURE_TENANT_ID");
    unsetenv("AZURE_CLIENT_ID");
    unsetenv("AZURE_CLIENT_SECRET");
    unsetenv("AZURE_FEDERATED_TOKEN_FILE");
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    snprintf(f->endpoint, sizeof(f->endpoint), "http://127.0.0.1:%d", refused_port(&f->fd));
    azure_client_opts_t o;
    test_azure_opts(&o, f->endpoint);
    o.auth = AZURE_AUTH_MANAGED_IDENTITY;
    o.max_attempts = 2;
    o.backoff_base_ms = 5;
    o.backoff_cap_ms = 10;
    char err[256];
    assert_int_equal(azure_client_new(&f->loop, &o, &f->c, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    azure_client_free(f->c);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->fd);
    free(f);
    return 0;
}

typedef struct answer {
    int calls;
    int err;
} answer_t;

static void on_json(void *ud, const azure_result_t *res, const char *body, size_t len)
{
    answer_t *a = ud;
    a->calls++;
    a->err = res->err;
    assert_true(res->err < 0 ? body == NULL : body != NULL && strlen(body) == len);
}

static void test_read_arguments(void **state)
{
    fixture_t *f = *state;
    answer_t a = {0};
    assert_int_equal(
        azure_arm_read(NULL, &scope, AZURE_READ_PERMISSIONS, NULL, AZURE_PRIO_LOW, on_json, &a),
        D8_EINVAL);
    assert_int_equal(
        azure_arm_read(f->c, &scope, AZURE_READ_PERMISSIONS, NULL, AZURE_PRIO_LOW, NULL, &a),
        D8_EINVAL);
    /* A provider namespace is needed, and it is one path segment. */
    assert_int_equal(
        azure_arm_read(f->c, &scope, AZURE_READ_PROVIDER, NULL, AZURE_PRIO_LOW, on_json, &a),
        D8_EINVAL);
    assert_int_equal(azure_arm_read(f->c, &scope, AZURE_READ_PROVIDER, "Microsoft.Storage/../x",
                                    AZURE_PRIO_LOW, on_json, &a),
                     D8_EINVAL);
    /* The storage reads need an account, the ACI ones a region. */
    azure_scope_t s = scope;
    s.storage_account = NULL;
    assert_int_equal(
        azure_arm_read(f->c, &s, AZURE_READ_FILE_SERVICE, NULL, AZURE_PRIO_LOW, on_json, &a),
        D8_EINVAL);
    s = scope;
    s.region = "east us";
    assert_int_equal(
        azure_arm_read(f->c, &s, AZURE_READ_ACI_USAGES, NULL, AZURE_PRIO_LOW, on_json, &a),
        D8_EINVAL);
    assert_int_equal(
        azure_arm_read(f->c, &scope, (azure_read_t)99, NULL, AZURE_PRIO_LOW, on_json, &a),
        D8_EINVAL);
    assert_int_equal(a.calls, 0);
    assert_int_equal(azure_client_pending(f->c), 0);
}

static void test_read_canceled_on_free(void **state)
{
    fixture_t *f = *state;
    answer_t a = {0}, b = {0};
    assert_int_equal(azure_arm_read(f->c, &scope, AZURE_READ_ACI_CAPABILITIES, NULL, AZURE_PRIO_LOW,
                                    on_json, &a),
                     0);
    assert_int_equal(azure_arm_read(f->c, &scope, AZURE_READ_PROVIDER,
                                    "Microsoft.ContainerInstance", AZURE_PRIO_LOW, on_json, &b),
                     0);
    assert_int_equal(a.calls + b.calls, 0); /* never synchronously */
    assert_int_equal(azure_client_pending(f->c), 2);
    azure_client_free(f->c);
    f->c = NULL;
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, D8_ECANCELED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.err, D8_ECANCELED);
}

typedef struct got {
    int calls;
    preflight_report_t copy; /* names and statuses only */
    char first_message[512];
} got_t;

static void on_report(void *ud, const preflight_report_t *r)
{
    got_t *g = ud;
    g->calls++;
    preflight_report_init(&g->copy);
    for (size_t i = 0; i < r->n; i++)
        preflight_add(&g->copy, r->checks[i].name, r->checks[i].status, r->checks[i].fix, "%s",
                      r->checks[i].message);
    if (r->n)
        snprintf(g->first_message, sizeof(g->first_message), "%s", r->checks[0].message);
}

static config_t *one_region_config(void)
{
    static const char yaml[] = "azure:\n"
                               "  subscriptionId: \"00000000-0000-0000-0000-000000000000\"\n"
                               "  regions:\n"
                               "    - {name: eastus, resourceGroup: rg-dev8, storageAccount: "
                               "dev8acct}\n"
                               "images:\n"
                               "  node: \"mcr.microsoft.com/devcontainers/base:ubuntu\"\n";
    config_t *cfg = NULL;
    char err[256];
    assert_int_equal(config_load_string("t.yaml", yaml, sizeof(yaml) - 1, &cfg, err, sizeof(err)),
                     0);
    return cfg;
}

/* No token: credentials fail, nothing else is read, the images follow. */
static void test_run_without_token(void **state)
{
    fixture_t *f = *state;
    config_t *cfg = one_region_config();
    got_t g = {0};
    assert_int_equal(preflight_run(f->c, cfg, on_report, &g), 0);
    assert_int_equal(g.calls, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.copy.n, 2);
    assert_string_equal(g.copy.checks[0].name, "credentials");
    assert_int_equal(g.copy.checks[0].status, PREFLIGHT_FAIL);
    assert_non_null(strstr(g.copy.checks[0].fix, "AZURE_CLIENT_ID"));
    assert_string_equal(g.copy.checks[1].name, "image node");
    assert_int_equal(g.copy.checks[1].status, PREFLIGHT_PASS);
    assert_int_equal(g.copy.count[PREFLIGHT_FAIL], 1);
    preflight_report_release(&g.copy);
    config_free(cfg);
}

/* The client freed mid-run: the run still answers once. */
static void test_run_canceled(void **state)
{
    fixture_t *f = *state;
    config_t *cfg = one_region_config();
    got_t g = {0};
    assert_int_equal(preflight_run(f->c, cfg, on_report, &g), 0);
    azure_client_free(f->c);
    f->c = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.copy.checks[0].status, PREFLIGHT_FAIL);
    preflight_report_release(&g.copy);
    /* Without a client or a callback nothing starts. */
    assert_int_equal(preflight_run(NULL, cfg, on_report, &g), D8_EINVAL);
    assert_int_equal(g.calls, 1);
    config_free(cfg);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_canceled_on_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_without_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_canceled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
