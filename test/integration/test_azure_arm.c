/*
 * Integration tests of pkg/azure for ARM as Microsoft documents it (issue
 * 11, client side), over HTTP against a scripted ARM responder in this
 * process (pkg/http on the test's loop), for what azsim does not show:
 * nextLinks that write the default port, change case or carry an opaque
 * $skipToken, empty pages and one-item pages; both
 * x-ms-ratelimit-remaining headers; ARM's buckets shared by the regions of
 * a subscription; an ACI 429 that pauses only that region's ACI buckets
 * and an ARM 429 that pauses the ARM bucket; the storage account GET.
 *
 * The client is configured as for Azure (armEndpoint
 * http://management.azure.com) and reaches the responder as its HTTP proxy
 * (http_proxy): a nextLink can then write ":80" as ARM writes ":443",
 * without a privileged port or a name lookup. Every test closes its loop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/azure.h"
#include "helpers/azure_opts.h"
#include "http/http.h"
#include "log/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARM "http://management.azure.com"
#define SUB "00000000-0000-0000-0000-0000000000b2"
#define SUB2 "00000000-0000-0000-0000-0000000000b3"
#define SUB3 "00000000-0000-0000-0000-0000000000b4"
#define CG_PATH(rg)                                                                                \
    "/subscriptions/" SUB "/resourceGroups/" rg "/providers/"                                      \
    "Microsoft.ContainerInstance/containerGroups"
#define CG_QUERY "api-version=2025-09-01"

/* ------------------------------------------------------------ responder */

typedef struct fx fx_t;
/* Answers one ARM request (the token endpoint is answered before). */
typedef void (*script_fn)(fx_t *fx, http_exchange_t *ex, const http_request_t *req);

typedef struct seen {
    char method[8];
    char path[256];
    char query[256];
    char host[64];
    uint64_t at_ms;
} seen_t;

struct fx {
    uv_loop_t loop;
    http_server_t *srv;
    azure_client_t *c;
    script_fn script;
    int freed;
    int n;           /* ARM requests seen */
    seen_t seen[64]; /* the first 64 of them */
    int step;        /* free for the script */
};

static void handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    fx_t *fx = ud;
    if (strstr(req->path, "/oauth2/v2.0/token")) {
        static const char tok[] =
            "{\"token_type\":\"Bearer\",\"expires_in\":3600,\"access_token\":\"arm-test-token\"}";
        http_respond(ex, 200, NULL, 0, "application/json", tok, sizeof(tok) - 1);
        return;
    }
    if (fx->n < 64) {
        seen_t *s = &fx->seen[fx->n];
        const char *host = http_request_header(req, "host");
        snprintf(s->method, sizeof(s->method), "%s", req->method);
        snprintf(s->path, sizeof(s->path), "%s", req->path);
        snprintf(s->query, sizeof(s->query), "%s", req->query);
        snprintf(s->host, sizeof(s->host), "%s", host ? host : "");
        s->at_ms = d8_mono_ms();
    }
    fx->n++;
    fx->script(fx, ex, req);
}

static void json(http_exchange_t *ex, int status, const char *body)
{
    http_respond(ex, status, NULL, 0, "application/json", body, strlen(body));
}

/* The loop, the responder on a free port as the client's HTTP proxy, and
 * a client-secret client for armEndpoint http://management.azure.com. */
static void fx_start(fx_t *fx, script_fn script, void (*tweak)(azure_client_opts_t *o))
{
    memset(fx, 0, sizeof(*fx));
    fx->script = script;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    http_server_opts_t so = {.host = "127.0.0.1", .handler = handler, .ud = fx};
    assert_int_equal(http_server_new(&fx->loop, &so, &fx->srv), 0);
    char proxy[64];
    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", http_server_port(fx->srv));
    setenv("http_proxy", proxy, 1);
    azure_client_opts_t o;
    test_azure_opts(&o, ARM);
    o.authority_host = "http://login.microsoftonline.com";
    o.auth = AZURE_AUTH_CLIENT_SECRET;
    o.tenant_id = "tenant-1";
    o.client_id = "app-1";
    o.client_secret = "arm-test-client-secret";
    o.backoff_base_ms = 20;
    o.backoff_cap_ms = 200;
    if (tweak)
        tweak(&o);
    char err[256];
    if (azure_client_new(&fx->loop, &o, &fx->c, err, sizeof(err)) < 0)
        fail_msg("azure_client_new: %s", err);
}

static void server_freed(void *arg)
{
    ((fx_t *)arg)->freed = 1;
}

static void fx_finish(fx_t *fx)
{
    assert_int_equal(azure_client_pending(fx->c), 0);
    azure_client_free(fx->c);
    http_server_free(fx->srv, server_freed, fx);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->freed, 1);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    unsetenv("http_proxy");
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static void closed_cb(uv_handle_t *h)
{
    (void)h;
}

/* Runs the loop until *counter reaches target or timeout_ms passes. */
static int wait_for(fx_t *fx, const int *counter, int target, int timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(&fx->loop, &tick);
    uv_timer_start(&tick, tick_cb, 10, 10);
    uint64_t t0 = d8_mono_ms();
    while (*counter < target && d8_mono_ms() - t0 < (uint64_t)timeout_ms)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, closed_cb);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    return *counter >= target ? 0 : -1;
}

/* ------------------------------------------------------------ captures */

typedef struct cap {
    int calls;
    int err;
    int status;
    uint64_t at_ms;
    char code[64];
    size_t n;
    char names[8][32];
    char kind[32], sku[32], lfs[32];
} cap_t;

static void cap_res(cap_t *c, const azure_result_t *r)
{
    c->calls++;
    c->err = r->err;
    c->status = r->http_status;
    c->at_ms = d8_mono_ms();
    snprintf(c->code, sizeof(c->code), "%s", r->error_code);
}

static void on_done(void *ud, const azure_result_t *r)
{
    cap_res(ud, r);
}

static void on_group(void *ud, const azure_result_t *r, const azure_group_t *g)
{
    (void)g;
    cap_res(ud, r);
}

static void on_share(void *ud, const azure_result_t *r, const azure_share_t *s)
{
    (void)s;
    cap_res(ud, r);
}

static void on_glist(void *ud, const azure_result_t *r, azure_group_list_t *l)
{
    cap_t *c = ud;
    cap_res(c, r);
    c->n = l ? l->n : 0;
    for (size_t i = 0; l && i < l->n && i < 8; i++)
        snprintf(c->names[i], sizeof(c->names[i]), "%s", l->items[i].name);
}

static void on_account(void *ud, const azure_result_t *r, const azure_storage_account_t *a)
{
    cap_t *c = ud;
    cap_res(c, r);
    snprintf(c->kind, sizeof(c->kind), "%s", a && a->kind ? a->kind : "");
    snprintf(c->sku, sizeof(c->sku), "%s", a && a->sku_name ? a->sku_name : "");
    snprintf(c->lfs, sizeof(c->lfs), "%s",
             a && a->large_file_shares_state ? a->large_file_shares_state : "");
}

static const int ports[] = {8080};

static azure_group_spec_t group_spec(const char *name)
{
    azure_group_spec_t gs = {
        .name = name, .image = "img", .cpu = 1, .memory_gb = 1, .ports = ports, .nports = 1};
    return gs;
}

/* ------------------------------------------------------------ paging */

/* A nextLink to list rg of SUB from origin, with a $skipToken. */
#define NEXT(origin, rg, token) "\"nextLink\":\"" origin CG_PATH(rg) "?" CG_QUERY "&" token "\""

/* One group per page, an empty page between, each nextLink in another
 * spelling of armEndpoint's origin; rg-foreign and rg-port point
 * elsewhere. */
static void paging_script(fx_t *fx, http_exchange_t *ex, const http_request_t *req)
{
    (void)fx;
    const char *q = req->query;
    if (strstr(req->path, "/rg-foreign/")) {
        json(ex, 200,
             "{\"value\":[{\"name\":\"a\"}]," NEXT("http://evil.example", "rg-foreign",
                                                   "$skipToken=1") "}");
    } else if (strstr(req->path, "/rg-port/")) {
        json(ex, 200,
             "{\"value\":[]," NEXT("http://management.azure.com:8080", "rg-port",
                                   "$skipToken=1") "}");
    } else if (strcmp(q, CG_QUERY) == 0) {
        json(ex, 200,
             "{\"value\":[{\"name\":\"dev8-p1\"}]," NEXT(
                 "http://management.azure.com:80", "rg-page", "$skipToken=tok%2B1%3D%3D") "}");
    } else if (strcmp(q, CG_QUERY "&$skipToken=tok%2B1%3D%3D") == 0) {
        json(ex, 200,
             "{\"value\":[]," NEXT("HTTP://Management.Azure.COM", "rg-page", "$skipToken=2") "}");
    } else if (strcmp(q, CG_QUERY "&$skipToken=2") == 0) {
        json(ex, 200,
             "{\"value\":[{\"name\":\"dev8-p2\"}]," NEXT("http://management.azure.com:", "rg-page",
                                                         "$skiptoken=3") "}");
    } else if (strcmp(q, CG_QUERY "&$skiptoken=3") == 0) {
        json(ex, 200, "{\"value\":[{\"name\":\"dev8-p3\"}],\"nextLink\":null}");
    } else {
        json(ex, 400, "{\"error\":{\"code\":\"InvalidSkipToken\",\"message\":\"unexpected\"}}");
    }
}

static void test_paging_as_arm_writes_it(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, paging_script, NULL);
    const azure_scope_t s = {SUB, "rg-page", "dev8arm", "eastus"};
    cap_t l = {0};
    assert_int_equal(azure_group_list(fx.c, &s, AZURE_PRIO_LOW, on_glist, &l), 0);
    assert_int_equal(wait_for(&fx, &l.calls, 1, 5000), 0);
    if (l.err != 0)
        fail_msg("list failed: %s %s", d8_err_name(l.err), l.code);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.names[0], "dev8-p1");
    assert_string_equal(l.names[1], "dev8-p2");
    assert_string_equal(l.names[2], "dev8-p3");
    /* Four pages, each nextLink followed as written: the opaque token is
     * neither decoded nor encoded again. */
    assert_int_equal(fx.n, 4);
    assert_string_equal(fx.seen[1].query, CG_QUERY "&$skipToken=tok%2B1%3D%3D");
    assert_string_equal(fx.seen[2].query, CG_QUERY "&$skipToken=2");
    assert_string_equal(fx.seen[3].query, CG_QUERY "&$skiptoken=3");
    for (int i = 0; i < 4; i++)
        assert_string_equal(fx.seen[i].path, CG_PATH("rg-page"));
    assert_int_equal(azure_client_requests(fx.c, "ContainerGroups_ListByResourceGroup", 200), 4);

    /* Another host, or another port, is still refused, unfollowed. */
    const char *foreign[] = {"rg-foreign", "rg-port"};
    for (int i = 0; i < 2; i++) {
        const azure_scope_t f = {SUB, foreign[i], "dev8arm", "eastus"};
        cap_t bad = {0};
        assert_int_equal(azure_group_list(fx.c, &f, AZURE_PRIO_LOW, on_glist, &bad), 0);
        assert_int_equal(wait_for(&fx, &bad.calls, 1, 5000), 0);
        assert_int_equal(bad.err, D8_EPARSE);
        assert_string_equal(bad.code, "ForeignNextLink");
    }
    assert_int_equal(fx.n, 6);
    fx_finish(&fx);
}

/* ------------------------------------------------------------ ratelimit headers */

/* Share GETs answered with both remaining-reads figures; which is low
 * depends on the subscription. */
static void ratelimit_script(fx_t *fx, http_exchange_t *ex, const http_request_t *req)
{
    (void)fx;
    http_header_t h[2] = {{"x-ms-ratelimit-remaining-subscription-reads", "200"},
                          {"x-ms-ratelimit-remaining-subscription-global-reads", "3"}};
    if (strstr(req->path, SUB2)) {
        h[0] = (http_header_t){"x-ms-ratelimit-remaining-subscription-reads", "3"};
        h[1] = (http_header_t){"x-ms-ratelimit-remaining-subscription-global-reads", "3000"};
    } else if (strstr(req->path, SUB3)) {
        h[1] = (http_header_t){"x-ms-ratelimit-remaining-subscription-global-reads", "3000"};
    }
    static const char body[] = "{\"name\":\"s1\",\"properties\":{\"shareQuota\":5}}";
    http_respond(ex, 200, h, 2, "application/json", body, sizeof(body) - 1);
}

static void test_ratelimit_global_headers(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, ratelimit_script, NULL);
    const char *subs[] = {SUB, SUB2, SUB3};
    cap_t g[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        const azure_scope_t s = {subs[i], "rg-rl", "dev8arm", "eastus"};
        assert_int_equal(azure_share_get(fx.c, &s, "s1", AZURE_PRIO_NORMAL, on_share, &g[i]), 0);
        assert_int_equal(wait_for(&fx, &g[i].calls, 1, 5000), 0);
        assert_int_equal(g[i].err, 0);
    }
    /* The lower figure governs, whether it is the global one (SUB) or the
     * principal's (SUB2): the bucket is drained to it. */
    double lvl = 0;
    assert_int_equal(azure_client_bucket_level(fx.c, SUB, "eastus", AZURE_BUCKET_READ, &lvl), 0);
    assert_true(lvl <= 3.5);
    assert_int_equal(azure_client_bucket_level(fx.c, SUB2, "eastus", AZURE_BUCKET_READ, &lvl), 0);
    assert_true(lvl <= 3.5);
    /* Both above the low-water mark: the bucket only paid its token. */
    assert_int_equal(azure_client_bucket_level(fx.c, SUB3, "eastus", AZURE_BUCKET_READ, &lvl), 0);
    assert_true(lvl >= 249.0);
    fx_finish(&fx);
}

/* ------------------------------------------------------------ shared buckets */

static void ok_script(fx_t *fx, http_exchange_t *ex, const http_request_t *req)
{
    (void)fx;
    if (strcmp(req->method, "PUT") == 0 && strstr(req->path, "containerGroups"))
        json(ex, 201, "{\"name\":\"g\",\"properties\":{\"provisioningState\":\"Creating\"}}");
    else if (strcmp(req->method, "DELETE") == 0)
        http_respond(ex, 204, NULL, 0, NULL, NULL, 0);
    else
        json(ex, 200, "{\"name\":\"s1\",\"properties\":{\"shareQuota\":5}}");
}

static void few_buckets(azure_client_opts_t *o)
{
    o->buckets[AZURE_BUCKET_READ] = (azure_bucket_opts_t){4, 0.5};
    o->buckets[AZURE_BUCKET_ACI_CREATE] = (azure_bucket_opts_t){1, 0.01};
}

static void test_arm_buckets_shared_by_regions(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, ok_script, few_buckets);
    const char *regions[] = {"eastus", "eastus", "westus", "westus", "centralus"};
    cap_t g[5] = {{0}};
    uint64_t t0 = d8_mono_ms();
    for (int i = 0; i < 5; i++) {
        const azure_scope_t s = {SUB, "rg-shared", "dev8arm", regions[i]};
        assert_int_equal(azure_share_get(fx.c, &s, "s1", AZURE_PRIO_NORMAL, on_share, &g[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(wait_for(&fx, &g[i].calls, 1, 10000), 0);
        assert_int_equal(g[i].err, 0);
    }
    /* Four reads in two regions emptied the subscription's 4-token bucket:
     * the fifth, in a third region, waited for its refill (0.5 a second). */
    assert_true(g[3].at_ms - t0 < 1000);
    assert_true(g[4].at_ms - t0 >= 1500);
    azure_stats_t st;
    azure_client_stats(fx.c, &st);
    assert_true(st.throttle_waits >= 1);

    /* ACI's creates are metered per region: with one create per region
     * in the bucket, eastus and westus each create at once. */
    cap_t p[2] = {{0}};
    azure_group_spec_t gs = group_spec("dev8-shared");
    const azure_scope_t east = {SUB, "rg-shared", "dev8arm", "eastus"};
    const azure_scope_t west = {SUB, "rg-shared", "dev8arm", "westus"};
    t0 = d8_mono_ms();
    assert_int_equal(azure_group_put(fx.c, &east, &gs, AZURE_PRIO_HIGH, on_group, &p[0]), 0);
    assert_int_equal(azure_group_put(fx.c, &west, &gs, AZURE_PRIO_HIGH, on_group, &p[1]), 0);
    assert_int_equal(wait_for(&fx, &p[1].calls, 1, 5000), 0);
    assert_int_equal(wait_for(&fx, &p[0].calls, 1, 5000), 0);
    assert_int_equal(p[0].err, 0);
    assert_int_equal(p[1].err, 0);
    assert_true(p[0].at_ms - t0 < 1000 && p[1].at_ms - t0 < 1000);
    assert_true(azure_client_bucket_wait_ms(fx.c, SUB, "eastus", AZURE_BUCKET_ACI_CREATE) > 50000);
    assert_int_equal(azure_client_bucket_wait_ms(fx.c, SUB, "northeurope", AZURE_BUCKET_ACI_CREATE),
                     0);
    fx_finish(&fx);
}

/* ------------------------------------------------------------ 429s */

/* The first group PUT in rg-aci meets ACI's create meter, the first share
 * PUT in rg-arm ARM's write meter; everything else succeeds. */
static void throttle_script(fx_t *fx, http_exchange_t *ex, const http_request_t *req)
{
    static const http_header_t ra[] = {{"Retry-After", "2"}};
    int is_put = strcmp(req->method, "PUT") == 0;
    if (is_put && strstr(req->path, "/rg-aci/") && strstr(req->path, "containerGroups") &&
        fx->step == 0) {
        fx->step = 1;
        http_respond_error_h(ex, 429, ra, 1, "TooManyRequests",
                             "The number of container group create requests for subscription "
                             "'" SUB "' in region 'eastus' exceeded the limit of 100 per 5 "
                             "minutes and 300 per hour. Please retry after 2 seconds.",
                             NULL);
        return;
    }
    if (is_put && strstr(req->path, "/rg-arm/") && strstr(req->path, "fileServices") &&
        fx->step == 1) {
        fx->step = 2;
        http_respond_error_h(ex, 429, ra, 1, "SubscriptionRequestsThrottled",
                             "Number of 'write' requests for subscription '" SUB "' actor "
                             "'app-1' exceeded. Please try again after '2' seconds after "
                             "additional tokens are available.",
                             NULL);
        return;
    }
    ok_script(fx, ex, req);
}

static void wait_throttled(fx_t *fx, uint64_t n)
{
    uint64_t t0 = d8_mono_ms();
    azure_stats_t st;
    do {
        int never = 0;
        wait_for(fx, &never, 1, 10);
        azure_client_stats(fx->c, &st);
    } while (st.throttled < n && d8_mono_ms() - t0 < 5000);
    assert_true(st.throttled >= n);
}

static void test_aci_429_pauses_its_region_only(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, throttle_script, NULL);
    azure_group_spec_t gs = group_spec("dev8-throttled");
    const azure_scope_t aci_east = {SUB, "rg-aci", "dev8arm", "eastus"};
    const azure_scope_t aci_west = {SUB, "rg-aci", "dev8arm", "westus"};
    cap_t first = {0}, west = {0}, share = {0}, again = {0};
    uint64_t t0 = d8_mono_ms();
    assert_int_equal(azure_group_put(fx.c, &aci_east, &gs, AZURE_PRIO_HIGH, on_group, &first), 0);
    wait_throttled(&fx, 1);
    /* ACI said no to creates in eastus: other writes of the subscription
     * go on, and so do creates in westus. */
    uint64_t t1 = d8_mono_ms();
    azure_share_spec_t ss = {.name = "s1", .quota_gb = 5};
    assert_int_equal(azure_share_put(fx.c, &aci_east, &ss, AZURE_PRIO_HIGH, on_share, &share), 0);
    assert_int_equal(azure_group_put(fx.c, &aci_west, &gs, AZURE_PRIO_HIGH, on_group, &west), 0);
    assert_int_equal(wait_for(&fx, &share.calls, 1, 5000), 0);
    assert_int_equal(wait_for(&fx, &west.calls, 1, 5000), 0);
    assert_int_equal(share.err, 0);
    assert_int_equal(west.err, 0);
    assert_true(share.at_ms - t1 < 1000);
    assert_true(west.at_ms - t1 < 1000);
    /* A second create in eastus waits for the Retry-After like the first. */
    assert_int_equal(azure_group_put(fx.c, &aci_east, &gs, AZURE_PRIO_HIGH, on_group, &again), 0);
    assert_int_equal(wait_for(&fx, &first.calls, 1, 5000), 0);
    assert_int_equal(wait_for(&fx, &again.calls, 1, 5000), 0);
    assert_int_equal(first.err, 0);
    assert_int_equal(again.err, 0);
    assert_true(first.at_ms - t0 >= 1900);
    assert_true(again.at_ms - t0 >= 1900);

    /* ARM said no to writes: every write of the subscription waits, in
     * every region; deletes, another meter, do not. */
    const azure_scope_t arm_east = {SUB, "rg-arm", "dev8arm", "eastus"};
    const azure_scope_t arm_west = {SUB, "rg-arm", "dev8arm", "westus"};
    cap_t sp = {0}, gp = {0}, del = {0};
    t0 = d8_mono_ms();
    assert_int_equal(azure_share_put(fx.c, &arm_east, &ss, AZURE_PRIO_HIGH, on_share, &sp), 0);
    wait_throttled(&fx, 2);
    t1 = d8_mono_ms();
    assert_int_equal(azure_group_put(fx.c, &arm_west, &gs, AZURE_PRIO_HIGH, on_group, &gp), 0);
    assert_int_equal(
        azure_group_delete(fx.c, &arm_west, "dev8-old", AZURE_PRIO_HIGH, on_done, &del), 0);
    assert_int_equal(wait_for(&fx, &del.calls, 1, 5000), 0);
    assert_int_equal(del.err, 0);
    assert_true(del.at_ms - t1 < 1000);
    assert_int_equal(wait_for(&fx, &gp.calls, 1, 5000), 0);
    assert_int_equal(wait_for(&fx, &sp.calls, 1, 5000), 0);
    assert_int_equal(gp.err, 0);
    assert_int_equal(sp.err, 0);
    assert_true(gp.at_ms - t0 >= 1900);
    assert_true(sp.at_ms - t0 >= 1900);
    fx_finish(&fx);
}

/* ------------------------------------------------------------ storage account */

static void account_script(fx_t *fx, http_exchange_t *ex, const http_request_t *req)
{
    (void)fx;
    if (strcmp(req->method, "GET") == 0 &&
        strcmp(req->path, "/subscriptions/" SUB "/resourceGroups/rg-sa/providers/"
                          "Microsoft.Storage/storageAccounts/dev8arm") == 0 &&
        strcmp(req->query, "api-version=2025-01-01") == 0) {
        json(ex, 200,
             "{\"id\":\"/subscriptions/" SUB "/resourceGroups/rg-sa/providers/"
             "Microsoft.Storage/storageAccounts/dev8arm\",\"name\":\"dev8arm\",\"location\":"
             "\"eastus\",\"kind\":\"FileStorage\",\"sku\":{\"name\":\"Premium_LRS\",\"tier\":"
             "\"Premium\"},\"properties\":{\"largeFileSharesState\":\"Enabled\"}}");
        return;
    }
    json(ex, 404,
         "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"The Resource "
         "'Microsoft.Storage/storageAccounts/x' was not found.\"}}");
}

static void test_storage_account_get(void **state)
{
    (void)state;
    fx_t fx;
    fx_start(&fx, account_script, NULL);
    const azure_scope_t s = {SUB, "rg-sa", "dev8arm", "eastus"};
    cap_t a = {0};
    assert_int_equal(azure_storage_account_get(fx.c, &s, AZURE_PRIO_NORMAL, on_account, &a), 0);
    assert_int_equal(wait_for(&fx, &a.calls, 1, 5000), 0);
    assert_int_equal(a.err, 0);
    assert_string_equal(a.kind, "FileStorage");
    assert_string_equal(a.sku, "Premium_LRS");
    assert_string_equal(a.lfs, "Enabled");
    assert_int_equal(azure_client_requests(fx.c, "StorageAccounts_GetProperties", 200), 1);

    const azure_scope_t missing = {SUB, "rg-none", "dev8none", "eastus"};
    memset(&a, 0, sizeof(a));
    assert_int_equal(azure_storage_account_get(fx.c, &missing, AZURE_PRIO_NORMAL, on_account, &a),
                     0);
    assert_int_equal(wait_for(&fx, &a.calls, 1, 5000), 0);
    assert_int_equal(a.err, D8_ENOENT);
    assert_string_equal(a.code, "ResourceNotFound");
    assert_string_equal(a.kind, "");
    /* The account must be named. */
    azure_scope_t noacct = s;
    noacct.storage_account = NULL;
    assert_int_equal(azure_storage_account_get(fx.c, &noacct, AZURE_PRIO_NORMAL, on_account, &a),
                     D8_EINVAL);
    fx_finish(&fx);
}

static int group_setup(void **state)
{
    (void)state;
    const char *lvl = getenv("D8_TEST_LOG");
    log_level_t l = LOG_WARN;
    if (lvl)
        log_level_parse(lvl, &l);
    log_setup(l, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *unset[] = {"AZURE_TENANT_ID",
                           "AZURE_CLIENT_ID",
                           "AZURE_CLIENT_SECRET",
                           "AZURE_FEDERATED_TOKEN_FILE",
                           "AZURE_AUTHORITY_HOST",
                           "no_proxy",
                           "NO_PROXY",
                           "all_proxy",
                           "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(unset) / sizeof(unset[0]); i++)
        unsetenv(unset[i]);
    return 0;
}

int main(void)
{
    const char *filter = getenv("D8_TEST_FILTER");
    if (filter && filter[0])
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paging_as_arm_writes_it),
        cmocka_unit_test(test_ratelimit_global_headers),
        cmocka_unit_test(test_arm_buckets_shared_by_regions),
        cmocka_unit_test(test_aci_429_pauses_its_region_only),
        cmocka_unit_test(test_storage_account_get),
    };
    return cmocka_run_group_tests_name("azure_arm", tests, group_setup, NULL);
}
