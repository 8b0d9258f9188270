/*
 * The client of pkg/azure: its options, its life and its loop-safe
 * teardown. The parts it is made of live beside it: request.c (one
 * request's attempts), queue.c (the queue, the scheduler and the throttle
 * buckets), stats.c (metrics), auth.c (credentials), ops.c (the typed
 * operations), codec.c (JSON), limits.c (pure helpers).
 *
 * One curl multi handle on the caller's libuv loop (pkg/curluv: a uv_poll
 * per socket through curl_multi_assign, one uv_timer for curl's timeouts)
 * and one more uv_timer for the scheduler. The client's memory is freed
 * only once every handle it owns is closed (refs).
 */
#include "azure_int.h"
#include "log/log.h"

#include "cloud.h"

#include <stdlib.h>
#include <string.h>

/* The client's own tuning, taken when an option is zero or NULL (the
 * options the application configures have no default here). */
#define DEF_CONNECT_TIMEOUT_MS 5000
#define DEF_REQUEST_TIMEOUT_MS 30000
#define DEF_MAX_ATTEMPTS 5
#define DEF_BACKOFF_BASE_MS 1000
#define DEF_BACKOFF_CAP_MS 30000
#define DEF_STORAGE_KEY_TTL_MS (3600 * 1000)
#define DEF_MAX_PAGES 1000
#define DEF_REMAINING_LOW_WATER 10

static void teardown(azure_client_t *c);

/* ------------------------------------------------------------ options */

int azure_auth_kind_parse(const char *name, azure_auth_kind_t *out)
{
    static const struct {
        const char *n;
        azure_auth_kind_t k;
    } t[] = {{"auto", AZURE_AUTH_AUTO},
             {"clientSecret", AZURE_AUTH_CLIENT_SECRET},
             {"workloadIdentity", AZURE_AUTH_WORKLOAD_IDENTITY},
             {"managedIdentity", AZURE_AUTH_MANAGED_IDENTITY}};
    for (size_t i = 0; name && i < sizeof(t) / sizeof(t[0]); i++) {
        if (strcmp(name, t[i].n) == 0) {
            *out = t[i].k;
            return 0;
        }
    }
    return D8_EINVAL;
}

const char *azure_auth_kind_name(azure_auth_kind_t kind)
{
    switch (kind) {
    case AZURE_AUTH_CLIENT_SECRET:
        return "clientSecret";
    case AZURE_AUTH_WORKLOAD_IDENTITY:
        return "workloadIdentity";
    case AZURE_AUTH_MANAGED_IDENTITY:
        return "managedIdentity";
    default:
        return "auto";
    }
}

/* ------------------------------------------------------------ helpers */

static char *dup_trim_slash(const char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        n--;
    return d8_xstrndup(s, n);
}

void azure__ref(azure_client_t *c)
{
    c->refs++;
}

/* Frees the client's memory: every handle is closed (refs is 0) or was
 * never opened. */
static void client_destroy(azure_client_t *c)
{
    azure__auth_release(c);
    azure__keys_release(c);
    azure__buckets_release(c);
    free(c->arm_endpoint);
    free(c->imds_endpoint);
    free(c->aci_api_version);
    free(c->storage_api_version);
    free(c->token_scope);
    free(c->token_resource);
    free(c->codes);
    free(c);
    curl_global_cleanup();
}

void azure__unref(azure_client_t *c)
{
    if (--c->refs == 0 && c->torn_down)
        client_destroy(c);
}

void azure__enter(azure_client_t *c)
{
    c->depth++;
}

void azure__leave(azure_client_t *c)
{
    if (--c->depth == 0 && c->teardown_pending) {
        c->teardown_pending = 0;
        teardown(c);
    }
}

/* ------------------------------------------------------------ lifecycle */

/*
 * Writes into err the first option the caller must set and did not, and
 * answers D8_EINVAL; 0 when every one is set.
 */
static int check_required(const azure_client_opts_t *o, char *err, size_t errlen)
{
    const struct {
        const char *name;
        const char *v;
    } strs[] = {{"arm_endpoint", o->arm_endpoint},
                {"authority_host", o->authority_host},
                {"imds_endpoint", o->imds_endpoint},
                {"aci_api_version", o->aci_api_version},
                {"storage_api_version", o->storage_api_version}};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (!strs[i].v || !strs[i].v[0]) {
            snprintf(err, errlen, "azure: option %s is not set", strs[i].name);
            return D8_EINVAL;
        }
    }
    if (o->max_inflight <= 0) {
        snprintf(err, errlen, "azure: option max_inflight is not set");
        return D8_EINVAL;
    }
    for (int k = 0; k < AZURE_BUCKET_KINDS; k++) {
        if (!(o->buckets[k].burst > 0) || !(o->buckets[k].per_second > 0)) {
            snprintf(err, errlen, "azure: bucket %s has no burst or rate",
                     azure__bucket_kind_names[k]);
            return D8_EINVAL;
        }
    }
    return 0;
}

/* The token scope (default: the public cloud's, cloud.h) and the IMDS
 * resource (default: the scope's resource). */
static void set_token_scope(azure_client_t *c, const azure_client_opts_t *opts)
{
    c->token_scope = d8_xstrdup(opts->token_scope && opts->token_scope[0]
                                    ? opts->token_scope
                                    : azure_cloud_find(AZURE_CLOUD_DEFAULT)->token_scope);
    char resource[600];
    if (opts->token_resource && opts->token_resource[0])
        c->token_resource = d8_xstrdup(opts->token_resource);
    else if (azure_scope_resource(c->token_scope, resource, sizeof(resource)) == 0)
        c->token_resource = d8_xstrdup(resource);
    else
        c->token_resource = d8_xstrdup(c->token_scope);
}

int azure_client_new(uv_loop_t *loop, const azure_client_opts_t *opts, azure_client_t **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (!loop || !opts) {
        snprintf(err, errlen, "azure: no loop or options");
        return D8_EINVAL;
    }
    int rc = check_required(opts, err, errlen);
    if (rc < 0)
        return rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "azure: curl_global_init failed");
        return D8_EIO;
    }
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    if (!(vi->features & CURL_VERSION_ASYNCHDNS))
        LOG(LOG_WARN,
            "azure: libcurl has no asynchronous DNS resolver; name lookups may "
            "block the loop (use IP endpoints or a threaded-resolver libcurl)",
            LF_S("libcurl", vi->version));

    azure_client_t *c = d8_xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->sched_due = UINT64_MAX;
    for (int q = 0; q <= AZURE_PRIO_COUNT; q++)
        d8_list_init(&c->queue[q]);
    d8_list_init(&c->inflight);
    d8_list_init(&c->buckets);
    d8_list_init(&c->arm_buckets);
    d8_list_init(&c->keys);
    d8_list_init(&c->auth.waiters);
    c->arm_endpoint = dup_trim_slash(opts->arm_endpoint);
    c->imds_endpoint = dup_trim_slash(opts->imds_endpoint);
    c->aci_api_version = dup_trim_slash(opts->aci_api_version);
    c->storage_api_version = dup_trim_slash(opts->storage_api_version);
    set_token_scope(c, opts);
    c->max_inflight = opts->max_inflight;
    c->connect_timeout_ms =
        opts->connect_timeout_ms ? opts->connect_timeout_ms : DEF_CONNECT_TIMEOUT_MS;
    c->request_timeout_ms =
        opts->request_timeout_ms ? opts->request_timeout_ms : DEF_REQUEST_TIMEOUT_MS;
    c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEF_MAX_ATTEMPTS;
    c->backoff_base_ms = opts->backoff_base_ms ? opts->backoff_base_ms : DEF_BACKOFF_BASE_MS;
    c->backoff_cap_ms = opts->backoff_cap_ms ? opts->backoff_cap_ms : DEF_BACKOFF_CAP_MS;
    for (int k = 0; k < AZURE_BUCKET_KINDS; k++)
        c->bopts[k] = opts->buckets[k];
    c->key_ttl_ms = opts->storage_key_ttl_ms ? opts->storage_key_ttl_ms : DEF_STORAGE_KEY_TTL_MS;
    c->max_pages = opts->max_pages ? opts->max_pages : DEF_MAX_PAGES;
    c->low_water =
        opts->remaining_low_water > 0 ? opts->remaining_low_water : DEF_REMAINING_LOW_WATER;
    c->rng = d8_rand_seed();

    rc = azure__auth_init(c, opts, opts->authority_host, err, errlen);
    if (rc < 0) {
        c->torn_down = 1;
        client_destroy(c);
        return rc;
    }
    if (curluv_new(loop, &c->cu) < 0) {
        snprintf(err, errlen, "azure: curl_multi_init failed");
        c->torn_down = 1;
        client_destroy(c);
        return D8_ENOMEM;
    }
    /* Keep a warm connection for every slot (plus token endpoints). */
    curl_multi_setopt(curluv_multi(c->cu), CURLMOPT_MAXCONNECTS, (long)c->max_inflight + 4);
    uv_timer_init(loop, &c->sched_timer);
    c->sched_timer.data = c;
    c->refs = 2;
    LOG(LOG_INFO, "azure client ready", LF_S("arm_endpoint", c->arm_endpoint),
        LF_S("credential", azure_auth_kind_name(c->auth.kind)),
        LF_I("max_inflight", c->max_inflight), LF_S("libcurl", vi->version));
    *out = c;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    azure__unref(h->data);
}

static void curluv_closed(void *arg)
{
    azure__unref(arg);
}

/* Completes every request (and token waiter) with D8_ECANCELED. */
static void cancel_all(azure_client_t *c)
{
    for (;;) {
        azure__req_t *r = NULL;
        if (!d8_list_empty(&c->inflight)) {
            r = d8_container_of(c->inflight.next, azure__req_t, link);
            azure__req_release_easy(r);
            d8_list_del(&r->link);
        } else {
            for (int q = 0; q <= AZURE_PRIO_COUNT && !r; q++)
                if (!d8_list_empty(&c->queue[q]))
                    r = d8_container_of(c->queue[q].next, azure__req_t, link);
        }
        if (!r)
            break;
        azure__req_finish(r, D8_ECANCELED, "", "the Azure client is shutting down");
    }
    azure__auth_cancel(c);
}

static void teardown(azure_client_t *c)
{
    c->torn_down = 1;
    /* Every request was cancelled first, so no handle is left in the
     * multi; curluv closes its polls and timer, then drops its ref. */
    curluv_free(c->cu, curluv_closed, c);
    c->cu = NULL;
    uv_timer_stop(&c->sched_timer);
    uv_close((uv_handle_t *)&c->sched_timer, timer_closed);
}

void azure_client_free(azure_client_t *c)
{
    if (!c || c->closing)
        return;
    c->closing = 1;
    azure__enter(c);
    cancel_all(c);
    c->teardown_pending = 1;
    azure__leave(c);
}

azure_auth_kind_t azure_client_auth_kind(const azure_client_t *c)
{
    return c->auth.kind;
}

size_t azure_client_pending(const azure_client_t *c)
{
    return c->nops;
}

int azure_client_has_token(const azure_client_t *c)
{
    return c->auth.ever;
}
