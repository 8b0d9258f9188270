/*
 * Integration tests of pkg/azure against the real bin/azsim (started by
 * the harness): each credential kind and refresh on expiry, CRUD of
 * container groups and file shares, long-running operations observed by
 * GET, nextLink paging, a 429 storm (nothing sent before Retry-After),
 * 5xx and connection resets retried to success, a request that never
 * answers timing out without stalling others, and 1,000 concurrent
 * operations on one loop. Every test closes its loop (no leak under ASan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/azure.h"
#include "harness.h"
#include "helpers/azure_opts.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUB "00000000-0000-0000-0000-0000000000a1"
#define SECRET "azsim-client-secret-Value1"

typedef struct sim {
    th_proc_t proc;
    char base[64];
} sim_t;

static sim_t g_sim;  /* page size 2, fast provisioning */
static sim_t g_tsim; /* token TTL 2 s, its own signing key */

static int sim_start(sim_t *s, const char *name, const char *const extra[])
{
    char *bin = th_bin("azsim");
    int port = th_free_port();
    char listen[64], *argv[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    size_t n = 0;
    argv[n++] = bin;
    argv[n++] = (char *)"--listen";
    argv[n++] = listen;
    for (size_t i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    int rc = th_start(&s->proc, name, argv, NULL, port, "/_azsim/stats", 10000);
    free(bin);
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", port);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    const char *lvl = getenv("D8_TEST_LOG");
    log_level_t l = LOG_WARN;
    if (lvl)
        log_level_parse(lvl, &l);
    log_setup(l, NULL);
    unsetenv("AZURE_TENANT_ID");
    unsetenv("AZURE_CLIENT_ID");
    unsetenv("AZURE_CLIENT_SECRET");
    unsetenv("AZURE_FEDERATED_TOKEN_FILE");
    unsetenv("AZURE_AUTHORITY_HOST");
    const char *main_args[] = {
        "--provision-ms",   "300", "--delete-ms",         "200", "--page-size", "2",
        "--throttle-scale", "20",  "--share-recreate-ms", "100", NULL};
    if (sim_start(&g_sim, "azsim-main", main_args) < 0)
        return -1;
    /* Another seed: another token signing key than g_sim's. */
    const char *tok_args[] = {"--token-ttl", "2", "--seed", "7", NULL};
    if (sim_start(&g_tsim, "azsim-token", tok_args) < 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int a = th_stop(&g_sim.proc, 15, 5000);
    int b = th_stop(&g_tsim.proc, 15, 5000);
    return a == 0 && b == 0 ? 0 : -1;
}

static void post_faults(const char *json)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/_azsim/faults", g_sim.base);
    const char *h[] = {"Content-Type: application/json", NULL};
    th_resp_t r;
    assert_int_equal(th_http("POST", url, h, json, &r), 0);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
}

static cJSON *sim_get(const sim_t *s, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s->base, path);
    th_resp_t r;
    assert_int_equal(th_http("GET", url, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    th_resp_free(&r);
    assert_non_null(j);
    return j;
}

/* ------------------------------------------------------------ loop helpers */

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static void closed_cb(uv_handle_t *h)
{
    (void)h;
}

/* Runs the loop until *counter reaches target or timeout_ms passes. A
 * ticking timer keeps UV_RUN_ONCE from sleeping past the deadline. */
static int wait_for(uv_loop_t *loop, const int *counter, int target, int timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, tick_cb, 20, 20);
    uint64_t t0 = d8_mono_ms();
    while (*counter < target && d8_mono_ms() - t0 < (uint64_t)timeout_ms)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, closed_cb);
    uv_run(loop, UV_RUN_NOWAIT);
    return *counter >= target ? 0 : -1;
}

static void sleep_loop(uv_loop_t *loop, int ms)
{
    int never = 0;
    wait_for(loop, &never, 1, ms);
}

static void client_opts(azure_client_opts_t *o, const sim_t *s)
{
    test_azure_opts(o, s->base);
    o->auth = AZURE_AUTH_CLIENT_SECRET;
    o->tenant_id = "tenant-1";
    o->client_id = "app-1";
    o->client_secret = SECRET;
    o->backoff_base_ms = 20;
    o->backoff_cap_ms = 200;
}

static azure_client_t *client_new(uv_loop_t *loop, const azure_client_opts_t *o)
{
    char err[256];
    azure_client_t *c = NULL;
    int rc = azure_client_new(loop, o, &c, err, sizeof(err));
    if (rc < 0)
        fail_msg("azure_client_new: %s", err);
    return c;
}

static void client_done(uv_loop_t *loop, azure_client_t *c)
{
    assert_int_equal(azure_client_pending(c), 0);
    azure_client_free(c);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ------------------------------------------------------------ captures */

typedef struct cap {
    int calls;
    int err;
    int status;
    int accepted;
    int attempts;
    int64_t retry_after_ms;
    uint64_t duration_ms;
    uint64_t at_ms;
    char code[64];
    char message[512];
    char async_op[512];
    char request_id[96];
    char prov[32], inst[32], ip[64], fqdn[256], env_tag[64], failure[256];
    int quota;
    char md_env[64];
    size_t n;
    char names[16][64];
} cap_t;

static void cap_res(cap_t *c, const azure_result_t *r)
{
    c->calls++;
    c->err = r->err;
    c->status = r->http_status;
    c->accepted = r->accepted;
    c->attempts = r->attempts;
    c->retry_after_ms = r->retry_after_ms;
    c->duration_ms = r->duration_ms;
    c->at_ms = d8_mono_ms();
    snprintf(c->code, sizeof(c->code), "%s", r->error_code);
    snprintf(c->message, sizeof(c->message), "%s", r->error_message);
    snprintf(c->async_op, sizeof(c->async_op), "%s", r->async_operation);
    snprintf(c->request_id, sizeof(c->request_id), "%s", r->request_id);
}

static void on_done(void *ud, const azure_result_t *r)
{
    cap_res(ud, r);
}

static void on_group(void *ud, const azure_result_t *r, const azure_group_t *g)
{
    cap_t *c = ud;
    cap_res(c, r);
    c->prov[0] = c->inst[0] = c->ip[0] = c->fqdn[0] = c->env_tag[0] = c->failure[0] = '\0';
    if (!g)
        return;
    snprintf(c->prov, sizeof(c->prov), "%s", g->provisioning_state ? g->provisioning_state : "");
    snprintf(c->inst, sizeof(c->inst), "%s", g->instance_state ? g->instance_state : "");
    snprintf(c->ip, sizeof(c->ip), "%s", g->ip ? g->ip : "");
    snprintf(c->fqdn, sizeof(c->fqdn), "%s", g->fqdn ? g->fqdn : "");
    const char *t = azure_map_get(&g->tags, "dev8-env-id");
    snprintf(c->env_tag, sizeof(c->env_tag), "%s", t ? t : "");
    snprintf(c->failure, sizeof(c->failure), "%s", g->failure_message ? g->failure_message : "");
}

static void on_glist(void *ud, const azure_result_t *r, azure_group_list_t *l)
{
    cap_t *c = ud;
    cap_res(c, r);
    c->n = l ? l->n : 0;
    for (size_t i = 0; l && i < l->n && i < 16; i++) {
        const char *t = azure_map_get(&l->items[i].tags, "dev8-env-id");
        snprintf(c->names[i], sizeof(c->names[i]), "%s|%s", l->items[i].name, t ? t : "");
    }
}

static void on_share(void *ud, const azure_result_t *r, const azure_share_t *s)
{
    cap_t *c = ud;
    cap_res(c, r);
    c->quota = s ? s->quota_gb : -2;
    const char *m = s ? azure_map_get(&s->metadata, "dev8envid") : NULL;
    snprintf(c->md_env, sizeof(c->md_env), "%s", m ? m : "");
}

static void on_slist(void *ud, const azure_result_t *r, azure_share_list_t *l)
{
    cap_t *c = ud;
    cap_res(c, r);
    c->n = l ? l->n : 0;
    for (size_t i = 0; l && i < l->n && i < 16; i++)
        snprintf(c->names[i], sizeof(c->names[i]), "%s", l->items[i].name);
}

/* ------------------------------------------------------------ tokens */

static char *b64url(const char *s)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(s);
    char *o = malloc(n * 2 + 4), *p = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (uint32_t)(unsigned char)s[i + 2];
        *p++ = t[(v >> 18) & 63];
        *p++ = t[(v >> 12) & 63];
        if (i + 1 < n)
            *p++ = t[(v >> 6) & 63];
        if (i + 2 < n)
            *p++ = t[v & 63];
    }
    *p = '\0';
    return o;
}

/* A well-formed (unsigned) federated assertion like the AKS projected one. */
static char *make_assertion(void)
{
    char payload[256];
    snprintf(payload, sizeof(payload),
             "{\"aud\":\"api://AzureADTokenExchange\",\"iss\":\"https://oidc.example\","
             "\"sub\":\"system:serviceaccount:dev8:agent\",\"exp\":%lld}",
             (long long)(time(NULL) + 3600));
    char *h = b64url("{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
    char *p = b64url(payload);
    char *out = malloc(strlen(h) + strlen(p) + 32);
    sprintf(out, "%s.%s.c2lnbmF0dXJl\n", h, p);
    free(h);
    free(p);
    return out;
}

static const azure_scope_t tscope = {SUB, "rg-tokens", "dev8tokens", "eastus"};

static void test_tokens_each_kind(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;

    /* client secret */
    client_opts(&o, &g_tsim);
    azure_client_t *c = client_new(&loop, &o);
    cap_t t = {0};
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(wait_for(&loop, &t.calls, 1, 5000), 0);
    assert_int_equal(t.err, 0);
    assert_true(azure_client_has_token(c));
    /* Refresh on expiry: the token lives 2 s; calls keep working. */
    cap_t g1 = {0};
    assert_int_equal(azure_share_get(c, &tscope, "nothing", AZURE_PRIO_NORMAL, on_share, &g1), 0);
    assert_int_equal(wait_for(&loop, &g1.calls, 1, 5000), 0);
    assert_int_equal(g1.err, D8_ENOENT);
    sleep_loop(&loop, 2300);
    cap_t g2 = {0};
    assert_int_equal(azure_share_get(c, &tscope, "nothing", AZURE_PRIO_NORMAL, on_share, &g2), 0);
    assert_int_equal(wait_for(&loop, &g2.calls, 1, 5000), 0);
    assert_int_equal(g2.err, D8_ENOENT);
    azure_stats_t st;
    azure_client_stats(c, &st);
    assert_true(st.token_refreshes >= 2);
    client_done(&loop, c);

    /* managed identity (IMDS, expires_in as a string), with a client id */
    uv_loop_init(&loop);
    client_opts(&o, &g_tsim);
    o.auth = AZURE_AUTH_MANAGED_IDENTITY;
    o.client_secret = NULL;
    o.tenant_id = NULL;
    c = client_new(&loop, &o);
    memset(&t, 0, sizeof(t));
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(wait_for(&loop, &t.calls, 1, 5000), 0);
    assert_int_equal(t.err, 0);
    memset(&g1, 0, sizeof(g1));
    assert_int_equal(azure_share_get(c, &tscope, "nothing", AZURE_PRIO_NORMAL, on_share, &g1), 0);
    assert_int_equal(wait_for(&loop, &g1.calls, 1, 5000), 0);
    assert_int_equal(g1.err, D8_ENOENT);
    client_done(&loop, c);

    /* workload identity: the file is re-read on every refresh */
    uv_loop_init(&loop);
    char *assertion = make_assertion();
    char *file = th_write_file("federated-token", assertion);
    client_opts(&o, &g_tsim);
    o.auth = AZURE_AUTH_AUTO;
    o.client_secret = NULL;
    o.federated_token_file = file;
    c = client_new(&loop, &o);
    assert_int_equal(azure_client_auth_kind(c), AZURE_AUTH_WORKLOAD_IDENTITY);
    memset(&t, 0, sizeof(t));
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(wait_for(&loop, &t.calls, 1, 5000), 0);
    assert_int_equal(t.err, 0);
    /* Rotate the file to something the token endpoint refuses: once the
     * 2 s token expires, the refresh must read it again and fail. */
    free(th_write_file("federated-token", "not-a-jwt"));
    sleep_loop(&loop, 2300);
    memset(&t, 0, sizeof(t));
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(wait_for(&loop, &t.calls, 1, 5000), 0);
    assert_int_equal(t.err, D8_EAUTH);
    assert_string_equal(t.code, "invalid_client");
    memset(&g1, 0, sizeof(g1));
    assert_int_equal(azure_share_get(c, &tscope, "nothing", AZURE_PRIO_NORMAL, on_share, &g1), 0);
    assert_int_equal(wait_for(&loop, &g1.calls, 1, 5000), 0);
    assert_int_equal(g1.err, D8_EAUTH);
    client_done(&loop, c);
    free(file);
    free(assertion);

    /* A wrong secret never shows up in logs or errors. */
    char *log = th_read_log(&g_tsim.proc);
    assert_null(strstr(log, SECRET));
    free(log);
}

/* A token ARM refuses (signed by another authority): the client refreshes
 * once, resends once, then reports D8_EAUTH with ARM's error. */
static void test_401_refreshes_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    o.authority_host = g_tsim.base;
    azure_client_t *c = client_new(&loop, &o);
    cap_t g = {0};
    assert_int_equal(azure_share_get(c, &tscope, "nothing", AZURE_PRIO_NORMAL, on_share, &g), 0);
    assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
    assert_int_equal(g.err, D8_EAUTH);
    assert_int_equal(g.status, 401);
    assert_int_equal(g.attempts, 2);
    assert_string_equal(g.code, "InvalidAuthenticationToken");
    azure_stats_t st;
    azure_client_stats(c, &st);
    assert_int_equal(st.token_refreshes, 2);
    assert_int_equal(azure_client_requests(c, "FileShares_Get", 401), 2);
    client_done(&loop, c);
}

/* ------------------------------------------------------------ CRUD */

static const azure_scope_t cscope = {SUB, "rg-crud", "dev8crud", "eastus"};

static void test_crud_groups_and_shares(void **state)
{
    (void)state;
    /* Everything this client logs, at debug, must be free of secrets. */
    FILE *logf = tmpfile();
    assert_non_null(logf);
    log_setup(LOG_DEBUG, logf);
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    azure_client_t *c = client_new(&loop, &o);

    /* share: create, read, grow, list */
    const azure_kv_t md[] = {{"dev8managedby", "dev8agent"}, {"dev8envid", "crud1"}};
    azure_share_spec_t ss = {.name = "dev8-crud1", .quota_gb = 20, .metadata = md, .nmetadata = 2};
    cap_t s = {0};
    assert_int_equal(azure_share_put(c, &cscope, &ss, AZURE_PRIO_HIGH, on_share, &s), 0);
    assert_int_equal(wait_for(&loop, &s.calls, 1, 5000), 0);
    assert_int_equal(s.err, 0);
    assert_true(s.status == 201 || s.status == 200);
    memset(&s, 0, sizeof(s));
    assert_int_equal(azure_share_get(c, &cscope, "dev8-crud1", AZURE_PRIO_NORMAL, on_share, &s), 0);
    assert_int_equal(wait_for(&loop, &s.calls, 1, 5000), 0);
    assert_int_equal(s.err, 0);
    assert_int_equal(s.quota, 20);
    assert_string_equal(s.md_env, "crud1");
    memset(&s, 0, sizeof(s));
    assert_int_equal(
        azure_share_set_quota(c, &cscope, "dev8-crud1", 30, AZURE_PRIO_HIGH, on_share, &s), 0);
    assert_int_equal(wait_for(&loop, &s.calls, 1, 5000), 0);
    assert_int_equal(s.err, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(azure_share_get(c, &cscope, "dev8-crud1", AZURE_PRIO_NORMAL, on_share, &s), 0);
    assert_int_equal(wait_for(&loop, &s.calls, 1, 5000), 0);
    assert_int_equal(s.quota, 30);
    cap_t sl = {0};
    assert_int_equal(azure_share_list(c, &cscope, 1, AZURE_PRIO_LOW, on_slist, &sl), 0);
    assert_int_equal(wait_for(&loop, &sl.calls, 1, 5000), 0);
    assert_int_equal(sl.err, 0);
    assert_int_equal(sl.n, 1);
    assert_string_equal(sl.names[0], "dev8-crud1");

    /* group: PUT (the storage key comes from listKeys), LRO seen by GET */
    const azure_kv_t tags[] = {{"dev8-managed-by", "dev8-agent"}, {"dev8-env-id", "crud1"}};
    const azure_kv_t senv[] = {{"GITHUB_TOKEN", "ghp_integrationsecret"}};
    const int ports[] = {8080};
    azure_group_spec_t gs = {.name = "dev8-crud1",
                             .tags = tags,
                             .ntags = 2,
                             .image = "vaibhavsing/dev8-workspace:latest",
                             .cpu = 1,
                             .memory_gb = 2,
                             .ports = ports,
                             .nports = 1,
                             .secure_env = senv,
                             .nsecure_env = 1,
                             .share_name = "dev8-crud1",
                             .mount_path = "/home/dev8",
                             .dns_label = "dev8-crud1-abcdef",
                             .dns_label_scope = "TenantReuse"};
    cap_t g = {0};
    assert_int_equal(azure_group_put(c, &cscope, &gs, AZURE_PRIO_HIGH, on_group, &g), 0);
    assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 201);
    assert_int_equal(g.accepted, 1);
    assert_int_equal(azure_client_requests(c, "StorageAccounts_ListKeys", 200), 1);
    /* Observe the operation by GET until it is final. */
    uint64_t t0 = d8_mono_ms();
    do {
        memset(&g, 0, sizeof(g));
        assert_int_equal(azure_group_get(c, &cscope, "dev8-crud1", AZURE_PRIO_NORMAL, on_group, &g),
                         0);
        assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
        assert_int_equal(g.err, 0);
        if (strcmp(g.prov, "Succeeded") != 0)
            sleep_loop(&loop, 100);
    } while (strcmp(g.prov, "Succeeded") != 0 && strcmp(g.prov, "Failed") != 0 &&
             d8_mono_ms() - t0 < 10000);
    assert_string_equal(g.prov, "Succeeded");
    assert_string_equal(g.inst, "Running");
    assert_string_equal(g.env_tag, "crud1");
    assert_true(g.ip[0] != '\0');
    assert_non_null(strstr(g.fqdn, "dev8-crud1-abcdef"));

    /* The emulator received the key and the secure value. */
    cJSON *res = sim_get(&g_sim, "/_azsim/resources");
    char *txt = cJSON_PrintUnformatted(res);
    char storage_key[256] = "";
    assert_non_null(strstr(txt, "\"autoGeneratedDomainNameLabelScope\":\"TenantReuse\""));
    const char *kp = strstr(txt, "\"storageAccountKey\":\"");
    assert_non_null(kp);
    sscanf(kp + strlen("\"storageAccountKey\":\""), "%255[^\"]", storage_key);
    assert_true(strlen(storage_key) >= 8);
    assert_non_null(strstr(txt, "ghp_integrationsecret"));
    free(txt);
    cJSON_Delete(res);

    cap_t gl = {0};
    assert_int_equal(azure_group_list(c, &cscope, AZURE_PRIO_LOW, on_glist, &gl), 0);
    assert_int_equal(wait_for(&loop, &gl.calls, 1, 5000), 0);
    assert_int_equal(gl.err, 0);
    assert_int_equal(gl.n, 1);
    assert_string_equal(gl.names[0], "dev8-crud1|crud1");

    /* stop (204), start (202, an LRO), back to Running */
    cap_t d = {0};
    assert_int_equal(azure_group_stop(c, &cscope, "dev8-crud1", AZURE_PRIO_HIGH, on_done, &d), 0);
    assert_int_equal(wait_for(&loop, &d.calls, 1, 5000), 0);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.status, 204);
    memset(&g, 0, sizeof(g));
    assert_int_equal(azure_group_get(c, &cscope, "dev8-crud1", AZURE_PRIO_NORMAL, on_group, &g), 0);
    assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
    assert_string_equal(g.inst, "Stopped");
    memset(&d, 0, sizeof(d));
    assert_int_equal(azure_group_start(c, &cscope, "dev8-crud1", AZURE_PRIO_HIGH, on_done, &d), 0);
    assert_int_equal(wait_for(&loop, &d.calls, 1, 5000), 0);
    assert_int_equal(d.err, 0);
    if (d.status == 202) {
        assert_int_equal(d.accepted, 1);
        assert_true(d.async_op[0] != '\0');
    }
    t0 = d8_mono_ms();
    do {
        sleep_loop(&loop, 100);
        memset(&g, 0, sizeof(g));
        assert_int_equal(azure_group_get(c, &cscope, "dev8-crud1", AZURE_PRIO_NORMAL, on_group, &g),
                         0);
        assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
    } while (strcmp(g.inst, "Running") != 0 && d8_mono_ms() - t0 < 10000);
    assert_string_equal(g.inst, "Running");

    /* delete: 202 then gone */
    memset(&d, 0, sizeof(d));
    assert_int_equal(azure_group_delete(c, &cscope, "dev8-crud1", AZURE_PRIO_HIGH, on_done, &d), 0);
    assert_int_equal(wait_for(&loop, &d.calls, 1, 5000), 0);
    assert_int_equal(d.err, 0);
    assert_true(d.status == 202 || d.status == 200 || d.status == 204);
    t0 = d8_mono_ms();
    do {
        sleep_loop(&loop, 100);
        memset(&g, 0, sizeof(g));
        assert_int_equal(azure_group_get(c, &cscope, "dev8-crud1", AZURE_PRIO_NORMAL, on_group, &g),
                         0);
        assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
    } while (g.err == 0 && d8_mono_ms() - t0 < 10000);
    assert_int_equal(g.err, D8_ENOENT);
    assert_int_equal(g.status, 404);
    assert_true(g.code[0] != '\0');
    assert_true(g.request_id[0] != '\0');

    memset(&d, 0, sizeof(d));
    assert_int_equal(azure_share_delete(c, &cscope, "dev8-crud1", AZURE_PRIO_HIGH, on_done, &d), 0);
    assert_int_equal(wait_for(&loop, &d.calls, 1, 5000), 0);
    assert_int_equal(d.err, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(azure_share_get(c, &cscope, "dev8-crud1", AZURE_PRIO_NORMAL, on_share, &s), 0);
    assert_int_equal(wait_for(&loop, &s.calls, 1, 5000), 0);
    assert_int_equal(s.err, D8_ENOENT);

    /* Keep-alive: ~25 sequential calls (token included) on one connection. */
    azure_stats_t st;
    azure_client_stats(c, &st);
    assert_true(st.requests >= 20);
    assert_true(st.connects >= 1 && st.connects <= 2);

    /* Prometheus text carries what happened. */
    d8_buf_t m;
    d8_buf_init(&m);
    azure_client_metrics(c, &m);
    assert_non_null(
        strstr(m.data, "dev8_arm_requests_total{operation=\"ContainerGroups_Get\",code=\"200\"}"));
    assert_non_null(strstr(m.data, "dev8_azure_token_refreshes_total 1"));
    assert_null(strstr(m.data, "ghp_integrationsecret"));
    d8_buf_release(&m);
    client_done(&loop, c);

    log_setup(LOG_WARN, NULL);
    long n = ftell(logf);
    assert_true(n > 0);
    char *logs = calloc(1, (size_t)n + 1);
    rewind(logf);
    assert_int_equal(fread(logs, 1, (size_t)n, logf), (size_t)n);
    fclose(logf);
    assert_non_null(strstr(logs, "\"msg\":\"arm request\""));
    assert_non_null(strstr(logs, "\"operation\":\"ContainerGroups_CreateOrUpdate\""));
    assert_null(strstr(logs, SECRET));
    assert_null(strstr(logs, "ghp_integrationsecret"));
    assert_null(strstr(logs, storage_key));
    assert_null(strstr(logs, "Bearer"));
    free(logs);
}

/* ------------------------------------------------------------ failure */

static void on_oper(void *ud, const azure_result_t *r, const azure_operation_t *op)
{
    cap_t *c = ud;
    cap_res(c, r);
    snprintf(c->prov, sizeof(c->prov), "%s", op && op->status ? op->status : "");
    snprintf(c->failure, sizeof(c->failure), "%s|%s", op && op->error_code ? op->error_code : "",
             op && op->error_message ? op->error_message : "");
}

/* A group whose share does not exist fails provisioning (FailedMount):
 * the operation status and the group's GET both carry Azure's message. */
static void test_failed_provisioning(void **state)
{
    (void)state;
    const azure_scope_t fs = {SUB, "rg-failed", "dev8failed", "eastus"};
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    azure_client_t *c = client_new(&loop, &o);
    const int ports[] = {8080};
    azure_group_spec_t gs = {.name = "dev8-failed1",
                             .image = "img",
                             .cpu = 1,
                             .memory_gb = 1,
                             .ports = ports,
                             .nports = 1,
                             .share_name = "dev8-missing",
                             .mount_path = "/home/dev8",
                             .storage_key = "bm90LWEta2V5"};
    cap_t g = {0};
    assert_int_equal(azure_group_put(c, &fs, &gs, AZURE_PRIO_HIGH, on_group, &g), 0);
    assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.accepted, 1);
    assert_true(g.async_op[0] != '\0');
    /* A foreign URL is refused: the token goes to armEndpoint only. */
    cap_t op = {0};
    assert_int_equal(
        azure_operation_get(c, &fs, "https://evil.example/op", AZURE_PRIO_NORMAL, on_oper, &op),
        D8_EINVAL);
    char url[512];
    snprintf(url, sizeof(url), "%s", g.async_op);
    uint64_t t0 = d8_mono_ms();
    do {
        sleep_loop(&loop, 100);
        memset(&op, 0, sizeof(op));
        assert_int_equal(azure_operation_get(c, &fs, url, AZURE_PRIO_NORMAL, on_oper, &op), 0);
        assert_int_equal(wait_for(&loop, &op.calls, 1, 5000), 0);
        assert_int_equal(op.err, 0);
    } while (strcmp(op.prov, "InProgress") == 0 && d8_mono_ms() - t0 < 10000);
    assert_string_equal(op.prov, "Failed");
    assert_true(strncmp(op.failure, "FailedMount|", 12) == 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(azure_group_get(c, &fs, "dev8-failed1", AZURE_PRIO_NORMAL, on_group, &g), 0);
    assert_int_equal(wait_for(&loop, &g.calls, 1, 5000), 0);
    assert_string_equal(g.prov, "Failed");
    assert_non_null(strstr(g.failure, "mount error"));
    /* The key given by the caller never appears in an error or log. */
    assert_null(strstr(g.message, "bm90LWEta2V5"));
    cap_t d = {0};
    assert_int_equal(azure_group_delete(c, &fs, "dev8-failed1", AZURE_PRIO_HIGH, on_done, &d), 0);
    assert_int_equal(wait_for(&loop, &d.calls, 1, 5000), 0);
    assert_int_equal(d.err, 0);
    client_done(&loop, c);
}

/* ------------------------------------------------------------ paging */

static void test_paging(void **state)
{
    (void)state;
    const azure_scope_t ps = {SUB, "rg-paging", "dev8paging", "eastus"};
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    azure_client_t *c = client_new(&loop, &o);
    cap_t caps[5] = {{0}};
    int done = 0;
    const int ports[] = {8080};
    for (int i = 0; i < 5; i++) {
        char name[32], id[16];
        snprintf(name, sizeof(name), "dev8-page%d", i);
        snprintf(id, sizeof(id), "page%d", i);
        const azure_kv_t tags[] = {{"dev8-env-id", id}};
        azure_group_spec_t gs = {.name = name,
                                 .tags = tags,
                                 .ntags = 1,
                                 .image = "img",
                                 .cpu = 1,
                                 .memory_gb = 1,
                                 .ports = ports,
                                 .nports = 1};
        assert_int_equal(azure_group_put(c, &ps, &gs, AZURE_PRIO_NORMAL, on_group, &caps[i]), 0);
        azure_share_spec_t ss = {.name = name, .quota_gb = 1};
        assert_int_equal(azure_share_put(c, &ps, &ss, AZURE_PRIO_NORMAL, on_share, &caps[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(wait_for(&loop, &caps[i].calls, 2, 5000), 0);
        done += caps[i].err == 0;
    }
    assert_int_equal(done, 5);
    cap_t gl = {0}, sl = {0};
    assert_int_equal(azure_group_list(c, &ps, AZURE_PRIO_LOW, on_glist, &gl), 0);
    assert_int_equal(azure_share_list(c, &ps, 0, AZURE_PRIO_LOW, on_slist, &sl), 0);
    assert_int_equal(wait_for(&loop, &gl.calls, 1, 5000), 0);
    assert_int_equal(wait_for(&loop, &sl.calls, 1, 5000), 0);
    assert_int_equal(gl.err, 0);
    assert_int_equal(gl.n, 5);
    assert_int_equal(sl.err, 0);
    assert_int_equal(sl.n, 5);
    int seen[5] = {0};
    for (size_t i = 0; i < 5; i++) {
        int k;
        assert_int_equal(sscanf(gl.names[i], "dev8-page%d|", &k), 1);
        seen[k]++;
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
    /* Page size 2: three pages each. */
    assert_int_equal(azure_client_requests(c, "ContainerGroups_ListByResourceGroup", 200), 3);
    assert_int_equal(azure_client_requests(c, "FileShares_List", 200), 3);
    client_done(&loop, c);
}

/* ------------------------------------------------------------ 429 storm */

/* "2026-11-27T12:00:00.123Z" -> ms since the epoch. */
static int64_t parse_ts(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void test_429_storm(void **state)
{
    (void)state;
    const azure_scope_t st_scope = {SUB, "rg-storm", "dev8storm", "westus"};
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    o.max_inflight = 1;
    o.max_attempts = 10;
    azure_client_t *c = client_new(&loop, &o);
    cap_t t = {0};
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(wait_for(&loop, &t.calls, 1, 5000), 0);

    post_faults("{\"rate429\":0.5,\"retryAfterSeconds\":1}");
    cap_t caps[6] = {{0}};
    for (int i = 0; i < 6; i++)
        assert_int_equal(
            azure_share_get(c, &st_scope, "absent", AZURE_PRIO_NORMAL, on_share, &caps[i]), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(wait_for(&loop, &caps[i].calls, 1, 30000), 0);
    post_faults("{\"rate429\":0}");
    for (int i = 0; i < 6; i++)
        assert_int_equal(caps[i].err, D8_ENOENT);
    azure_stats_t st;
    azure_client_stats(c, &st);
    assert_true(st.throttled >= 1);
    assert_true(st.throttle_waits >= 1);

    /* From azsim's own log: after every 429 on this bucket, the next
     * request arrived no earlier than its Retry-After (1 s). */
    char *log = th_read_log(&g_sim.proc);
    int64_t last429 = -1;
    int n429 = 0, checked = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *path = cJSON_GetObjectItem(j, "path");
        const cJSON *ts = cJSON_GetObjectItem(j, "ts");
        const cJSON *status = cJSON_GetObjectItem(j, "status");
        if (cJSON_IsString(path) && strstr(path->valuestring, "/rg-storm/") && cJSON_IsString(ts) &&
            cJSON_IsNumber(status)) {
            int64_t at = parse_ts(ts->valuestring);
            if (last429 >= 0) {
                assert_true(at - last429 >= 1000 - 2);
                checked++;
            }
            if (status->valueint == 429) {
                n429++;
                last429 = at;
            } else {
                last429 = -1;
            }
        }
        cJSON_Delete(j);
    }
    free(log);
    assert_int_equal(n429, (int)st.throttled);
    assert_int_equal(checked, n429);

    cJSON *stats = sim_get(&g_sim, "/_azsim/stats");
    const cJSON *fsget =
        cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "requests"), "fileShares.get");
    assert_non_null(cJSON_GetObjectItem(fsget, "429"));
    cJSON_Delete(stats);
    client_done(&loop, c);
}

/* ------------------------------------------------------------ 5xx, resets */

static void test_5xx_and_resets_retried(void **state)
{
    (void)state;
    const azure_scope_t fs = {SUB, "rg-faults", "dev8faults", "eastus"};
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    o.max_attempts = 10;
    azure_client_t *c = client_new(&loop, &o);
    cap_t t = {0};
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(wait_for(&loop, &t.calls, 1, 5000), 0);
    post_faults("{\"rate500\":0.25,\"rate503\":0.05,\"resetRate\":0.15,\"retryAfterSeconds\":0}");
    enum { N = 20 };
    cap_t caps[N];
    memset(caps, 0, sizeof(caps));
    int total = 0;
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "dev8-fault%d", i);
        azure_share_spec_t ss = {.name = name, .quota_gb = 5};
        assert_int_equal(azure_share_put(c, &fs, &ss, AZURE_PRIO_NORMAL, on_share, &caps[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(wait_for(&loop, &caps[i].calls, 1, 20000), 0);
        total += caps[i].attempts;
    }
    post_faults("{\"rate500\":0,\"rate503\":0,\"resetRate\":0}");
    for (int i = 0; i < N; i++) {
        if (caps[i].err != 0)
            fail_msg("share %d: %s %s (%s)", i, d8_err_name(caps[i].err), caps[i].code,
                     caps[i].message);
    }
    azure_stats_t st;
    azure_client_stats(c, &st);
    assert_true(st.retries > 0);
    assert_true(total > N);
    /* Both kinds of failure were seen, and retried to success. */
    assert_true(azure_client_requests(c, "FileShares_Create", 500) > 0);
    assert_true(azure_client_requests(c, "FileShares_Create", 0) > 0);
    client_done(&loop, c);
}

/* ------------------------------------------------------------ timeouts */

static void test_timeout_does_not_stall(void **state)
{
    (void)state;
    const azure_scope_t ts = {SUB, "rg-timeout", "dev8timeout", "eastus"};
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    o.request_timeout_ms = 700;
    o.max_attempts = 1;
    azure_client_t *c = client_new(&loop, &o);
    cap_t t = {0};
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(wait_for(&loop, &t.calls, 1, 5000), 0);

    post_faults("{\"latencyMs\":5000}");
    cap_t slow = {0}, fast = {0};
    assert_int_equal(azure_share_get(c, &ts, "slow", AZURE_PRIO_NORMAL, on_share, &slow), 0);
    sleep_loop(&loop, 150); /* the slow request is now held by azsim */
    post_faults("{\"latencyMs\":0}");
    uint64_t t0 = d8_mono_ms();
    assert_int_equal(azure_share_get(c, &ts, "fast", AZURE_PRIO_NORMAL, on_share, &fast), 0);
    assert_int_equal(wait_for(&loop, &fast.calls, 1, 5000), 0);
    assert_int_equal(fast.err, D8_ENOENT);
    assert_true(fast.at_ms - t0 < 650);
    assert_int_equal(slow.calls, 0);
    assert_int_equal(wait_for(&loop, &slow.calls, 1, 5000), 0);
    assert_int_equal(slow.err, D8_ETIMEDOUT);
    assert_in_range(slow.duration_ms, 650, 2000);
    assert_true(slow.at_ms > fast.at_ms);
    azure_stats_t st;
    azure_client_stats(c, &st);
    assert_int_equal(st.timeouts, 1);
    client_done(&loop, c);
}

/* ------------------------------------------------------------ 1,000 ops */

typedef struct many {
    int done;
    int ok;
    int bad;
    char first_bad[256];
} many_t;

static void on_many_share(void *ud, const azure_result_t *r, const azure_share_t *s)
{
    many_t *m = ud;
    (void)s;
    m->done++;
    if (r->err == 0 || r->err == D8_ENOENT) {
        m->ok++;
    } else if (m->bad++ == 0) {
        snprintf(m->first_bad, sizeof(m->first_bad), "%s %s %s", d8_err_name(r->err), r->error_code,
                 r->error_message);
    }
}

static void test_1000_concurrent(void **state)
{
    (void)state;
    const azure_scope_t ms = {SUB, "rg-many", "dev8many", "northeurope"};
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    client_opts(&o, &g_sim);
    o.max_inflight = 48;
    o.buckets[AZURE_BUCKET_READ] = (azure_bucket_opts_t){2000, 2000};
    o.buckets[AZURE_BUCKET_WRITE] = (azure_bucket_opts_t){2000, 2000};
    azure_client_t *c = client_new(&loop, &o);
    many_t m = {0};
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "dev8-many%d", i % 250);
        int rc;
        if (i < 250) {
            azure_share_spec_t ss = {.name = name, .quota_gb = 1 + i % 7};
            rc = azure_share_put(c, &ms, &ss, (azure_prio_t)(i % 3), on_many_share, &m);
        } else {
            rc = azure_share_get(c, &ms, name, (azure_prio_t)(i % 3), on_many_share, &m);
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(azure_client_pending(c), 1000);
    /* Never more than max_inflight on the wire. */
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 10, 10);
    size_t max_seen = 0;
    uint64_t t0 = d8_mono_ms();
    while (m.done < 1000 && d8_mono_ms() - t0 < 30000) {
        uv_run(&loop, UV_RUN_ONCE);
        azure_stats_t st;
        azure_client_stats(c, &st);
        if (st.inflight > max_seen)
            max_seen = st.inflight;
    }
    uv_close((uv_handle_t *)&tick, closed_cb);
    if (m.bad)
        fail_msg("%d failed; first: %s", m.bad, m.first_bad);
    assert_int_equal(m.done, 1000);
    assert_int_equal(m.ok, 1000);
    assert_true(max_seen <= 48);
    assert_true(max_seen > 1);
    client_done(&loop, c);
}

int main(void)
{
    /* D8_TEST_FILTER=test_paging runs one test (cmocka pattern). */
    const char *filter = getenv("D8_TEST_FILTER");
    if (filter && filter[0])
        cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_each_kind),
        cmocka_unit_test(test_401_refreshes_once),
        cmocka_unit_test(test_crud_groups_and_shares),
        cmocka_unit_test(test_failed_provisioning),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_429_storm),
        cmocka_unit_test(test_5xx_and_resets_retried),
        cmocka_unit_test(test_timeout_does_not_stall),
        cmocka_unit_test(test_1000_concurrent),
    };
    return cmocka_run_group_tests_name("azure_client", tests, group_setup, group_teardown);
}
