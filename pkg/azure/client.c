/*
 * The request layer of pkg/azure: one curl multi handle on the caller's
 * libuv loop (pkg/curluv: a uv_poll per socket through curl_multi_assign,
 * one uv_timer for curl's timeouts), a scheduler
 * (one more uv_timer) that starts queued requests when the in-flight cap,
 * the throttle buckets, the token and their backoff allow, retries, the
 * per-call log line, and the metrics.
 *
 * Every user callback runs from a loop callback of this file, auth.c or
 * (for finished attempts) pkg/curluv, never from inside a public call and
 * never from inside a curl callback.
 * Requests change state only through req_set_state().
 */
#include "azure/azure_int.h"
#include "log/log.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef D8_VERSION
#define D8_VERSION "dev"
#endif

#define RESP_MAX ((size_t)64 << 20)
#define SYS_QUEUE 0

/* The client's own tuning, taken when an option is zero or NULL (the
 * options the application configures have no default here). */
#define DEF_TOKEN_SCOPE "https://management.azure.com/.default"
#define DEF_TOKEN_RESOURCE "https://management.azure.com/"
#define DEF_CONNECT_TIMEOUT_MS 5000
#define DEF_REQUEST_TIMEOUT_MS 30000
#define DEF_MAX_ATTEMPTS 5
#define DEF_BACKOFF_BASE_MS 1000
#define DEF_BACKOFF_CAP_MS 30000
#define DEF_STORAGE_KEY_TTL_MS (3600 * 1000)
#define DEF_MAX_PAGES 1000
#define DEF_REMAINING_LOW_WATER 10

const azure__op_info_t azure__ops[AZ_OP__COUNT] = {
    [AZ_OP_GROUP_PUT] = {"ContainerGroups_CreateOrUpdate", "PUT", AZURE_BUCKET_WRITE,
                         AZURE_BUCKET_ACI_CREATE, 1},
    [AZ_OP_GROUP_GET] = {"ContainerGroups_Get", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_GROUP_LIST] = {"ContainerGroups_ListByResourceGroup", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_GROUP_DELETE] = {"ContainerGroups_Delete", "DELETE", AZURE_BUCKET_DELETE,
                            AZURE_BUCKET_ACI_DELETE, 1},
    [AZ_OP_GROUP_START] = {"ContainerGroups_Start", "POST", AZURE_BUCKET_WRITE, -1, 1},
    [AZ_OP_GROUP_STOP] = {"ContainerGroups_Stop", "POST", AZURE_BUCKET_WRITE, -1, 1},
    [AZ_OP_SHARE_PUT] = {"FileShares_Create", "PUT", AZURE_BUCKET_WRITE, -1, 1},
    [AZ_OP_SHARE_GET] = {"FileShares_Get", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_SHARE_PATCH] = {"FileShares_Update", "PATCH", AZURE_BUCKET_WRITE, -1, 1},
    [AZ_OP_SHARE_LIST] = {"FileShares_List", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_SHARE_DELETE] = {"FileShares_Delete", "DELETE", AZURE_BUCKET_DELETE, -1, 1},
    /* listKeys is a POST action (ARM meters it as a write) that changes
     * nothing: logged at debug like a read. */
    [AZ_OP_LIST_KEYS] = {"StorageAccounts_ListKeys", "POST", AZURE_BUCKET_WRITE, -1, 0},
    [AZ_OP_OPERATION_GET] = {"AsyncOperation_Get", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_TOKEN] = {"Token", "POST", -1, -1, 0},
};

const double azure_hist_bounds[AZURE_HIST_BUCKETS] = {0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2.5,  5,   10,   30};

static const char *const bucket_kind_names[AZURE_BUCKET_KINDS] = {
    "read", "write", "delete", "aci_create", "aci_delete", "aci_create_hourly",
    "aci_delete_hourly"};

static void sched_cb(uv_timer_t *t);
static void teardown(azure_client_t *c);
static void req_finish(azure__req_t *r, int err, const char *code, const char *message);
static void on_attempt_done(void *ud, CURL *easy, CURLcode cres);

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

static void client_destroy(azure_client_t *c)
{
    azure__auth_release(c);
    azure__keys_release(c);
    while (!d8_list_empty(&c->buckets)) {
        azure__bucket_entry_t *be = d8_container_of(c->buckets.next, azure__bucket_entry_t, link);
        d8_list_del(&be->link);
        free(be->subscription);
        free(be->region);
        free(be);
    }
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

/* ------------------------------------------------------------ buckets */

/* The buckets of a subscription+region, or NULL when nothing used them. */
static azure__bucket_entry_t *bucket_find(const azure_client_t *c, const char *sub,
                                          const char *region)
{
    for (d8_list_t *it = c->buckets.next; it != &c->buckets; it = it->next) {
        azure__bucket_entry_t *be = d8_container_of(it, azure__bucket_entry_t, link);
        if (strcmp(be->subscription, sub ? sub : "") == 0 &&
            strcmp(be->region, region ? region : "") == 0)
            return be;
    }
    return NULL;
}

/* The buckets of a subscription+region, created full on first use. */
static azure__bucket_entry_t *bucket_get(azure_client_t *c, const char *sub, const char *region)
{
    if (!sub)
        sub = "";
    if (!region)
        region = "";
    azure__bucket_entry_t *be = bucket_find(c, sub, region);
    if (be)
        return be;
    be = d8_xcalloc(1, sizeof(*be));
    be->subscription = d8_xstrdup(sub);
    be->region = d8_xstrdup(region);
    uint64_t now = d8_mono_ms();
    for (int k = 0; k < AZURE_BUCKET_KINDS; k++)
        azure__bucket_init(&be->b[k], c->bopts[k].burst, c->bopts[k].per_second, now);
    d8_list_push(&c->buckets, &be->link);
    return be;
}

/* The ms until every bucket of r can give a token (0 = now). */
static uint64_t req_bucket_wait(azure__req_t *r, uint64_t now)
{
    if (!r->bkt)
        return 0;
    const azure__op_info_t *oi = &azure__ops[r->op];
    uint64_t w = 0;
    if (oi->bucket >= 0) {
        uint64_t x = azure__bucket_wait_ms(&r->bkt->b[oi->bucket], now);
        w = x > w ? x : w;
    }
    if (oi->aci_bucket >= 0) {
        uint64_t x = azure__bucket_wait_ms(&r->bkt->b[oi->aci_bucket], now);
        w = x > w ? x : w;
        x = azure__bucket_wait_ms(&r->bkt->b[AZURE_BUCKET_HOURLY(oi->aci_bucket)], now);
        w = x > w ? x : w;
    }
    return w;
}

static void req_bucket_take(azure__req_t *r)
{
    if (!r->bkt)
        return;
    const azure__op_info_t *oi = &azure__ops[r->op];
    if (oi->bucket >= 0) {
        azure__bucket_take(&r->bkt->b[oi->bucket]);
        r->bkt->used[oi->bucket] = 1;
    }
    if (oi->aci_bucket >= 0) {
        int hourly = AZURE_BUCKET_HOURLY(oi->aci_bucket);
        azure__bucket_take(&r->bkt->b[oi->aci_bucket]);
        azure__bucket_take(&r->bkt->b[hourly]);
        r->bkt->used[oi->aci_bucket] = r->bkt->used[hourly] = 1;
    }
}

/* ------------------------------------------------------------ stats */

static void record_code(azure_client_t *c, int op, int status)
{
    for (size_t i = 0; i < c->ncodes; i++) {
        if (c->codes[i].op == op && c->codes[i].status == status) {
            c->codes[i].n++;
            return;
        }
    }
    if (c->ncodes == c->capcodes) {
        c->capcodes = c->capcodes ? c->capcodes * 2 : 16;
        c->codes = d8_xrealloc(c->codes, c->capcodes * sizeof(*c->codes));
    }
    c->codes[c->ncodes++] = (azure__code_count_t){op, status, 1};
}

static void record_duration(azure_client_t *c, double s)
{
    size_t i = 0;
    while (i < AZURE_HIST_BUCKETS && s > azure_hist_bounds[i])
        i++;
    c->hist[i]++;
    c->hist_sum += s;
    c->hist_count++;
}

void azure_client_stats(const azure_client_t *c, azure_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->requests = c->st_requests;
    out->retries = c->st_retries;
    out->throttle_waits = c->st_throttle_waits;
    out->throttled = c->st_throttled;
    out->timeouts = c->st_timeouts;
    out->connects = c->st_connects;
    out->token_refreshes = c->st_token_refreshes;
    out->token_failures = c->st_token_failures;
    out->queued = c->nqueued;
    out->inflight = c->ninflight;
    memcpy(out->duration_counts, c->hist, sizeof(c->hist));
    out->duration_sum_s = c->hist_sum;
    out->duration_count = c->hist_count;
}

uint64_t azure_client_requests(const azure_client_t *c, const char *operation, int status)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->ncodes; i++)
        if ((c->codes[i].status == status || (status == 0 && c->codes[i].status < 0)) &&
            strcmp(azure__ops[c->codes[i].op].name, operation) == 0)
            n += c->codes[i].n;
    return n;
}

int azure_client_bucket_level(const azure_client_t *c, const char *subscription, const char *region,
                              azure_bucket_kind_t kind, double *tokens)
{
    if ((int)kind < 0 || kind >= AZURE_BUCKET_KINDS)
        return D8_EINVAL;
    const azure__bucket_entry_t *be = bucket_find(c, subscription, region);
    if (be) {
        *tokens = azure__bucket_peek(&be->b[kind], d8_mono_ms());
        return 0;
    }
    return D8_ENOENT;
}

uint64_t azure_client_bucket_wait_ms(azure_client_t *c, const char *subscription,
                                     const char *region, azure_bucket_kind_t kind)
{
    if ((int)kind < 0 || kind >= AZURE_BUCKET_KINDS)
        return 0;
    const azure__bucket_entry_t *be = bucket_find(c, subscription, region);
    if (!be)
        return 0; /* never used: full */
    uint64_t now = d8_mono_ms();
    uint64_t wait = azure__bucket_token_wait_ms(&be->b[kind], now);
    if (kind == AZURE_BUCKET_ACI_CREATE || kind == AZURE_BUCKET_ACI_DELETE) {
        uint64_t hourly = azure__bucket_token_wait_ms(&be->b[AZURE_BUCKET_HOURLY(kind)], now);
        wait = hourly > wait ? hourly : wait;
    }
    return wait;
}

static void put_label(d8_buf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            d8_buf_putc(out, '\\');
        if (*s == '\n') {
            d8_buf_puts(out, "\\n");
            continue;
        }
        d8_buf_putc(out, *s);
    }
}

static void status_label(int status, char out[16])
{
    if (status > 0)
        snprintf(out, 16, "%d", status);
    else if (status == -2)
        snprintf(out, 16, "timeout");
    else
        snprintf(out, 16, "error");
}

void azure_client_metrics(const azure_client_t *c, d8_buf_t *out)
{
    d8_buf_puts(out, "# HELP dev8_arm_requests_total ARM HTTP attempts by operation and status "
                     "code (timeout/error when no answer arrived).\n"
                     "# TYPE dev8_arm_requests_total counter\n");
    for (size_t i = 0; i < c->ncodes; i++) {
        char code[16];
        status_label(c->codes[i].status, code);
        d8_buf_printf(out, "dev8_arm_requests_total{operation=\"%s\",code=\"%s\"} %llu\n",
                      azure__ops[c->codes[i].op].name, code, (unsigned long long)c->codes[i].n);
    }
    d8_buf_puts(out, "# HELP dev8_arm_request_duration_seconds Duration of ARM HTTP attempts.\n"
                     "# TYPE dev8_arm_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < AZURE_HIST_BUCKETS; i++) {
        cum += c->hist[i];
        d8_buf_printf(out, "dev8_arm_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      azure_hist_bounds[i], (unsigned long long)cum);
    }
    cum += c->hist[AZURE_HIST_BUCKETS];
    d8_buf_printf(out, "dev8_arm_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                  (unsigned long long)cum);
    d8_buf_printf(out, "dev8_arm_request_duration_seconds_sum %.6f\n", c->hist_sum);
    d8_buf_printf(out, "dev8_arm_request_duration_seconds_count %llu\n",
                  (unsigned long long)c->hist_count);
    d8_buf_printf(out,
                  "# HELP dev8_arm_throttle_waits_total Requests held back by a client-side "
                  "throttle bucket or a Retry-After pause.\n"
                  "# TYPE dev8_arm_throttle_waits_total counter\n"
                  "dev8_arm_throttle_waits_total %llu\n",
                  (unsigned long long)c->st_throttle_waits);
    d8_buf_puts(out, "# HELP dev8_arm_bucket_tokens Tokens left in a client-side throttle "
                     "bucket.\n# TYPE dev8_arm_bucket_tokens gauge\n");
    uint64_t now = d8_mono_ms();
    for (d8_list_t *it = c->buckets.next; it != &c->buckets; it = it->next) {
        const azure__bucket_entry_t *be = d8_container_of(it, azure__bucket_entry_t, link);
        for (int k = 0; k < AZURE_BUCKET_KINDS; k++) {
            d8_buf_puts(out, "dev8_arm_bucket_tokens{subscription=\"");
            put_label(out, be->subscription);
            d8_buf_puts(out, "\",region=\"");
            put_label(out, be->region);
            d8_buf_printf(out, "\",kind=\"%s\"} %.3f\n", bucket_kind_names[k],
                          azure__bucket_peek(&be->b[k], now));
        }
    }
    d8_buf_printf(out,
                  "# HELP dev8_azure_token_refreshes_total Azure access tokens obtained.\n"
                  "# TYPE dev8_azure_token_refreshes_total counter\n"
                  "dev8_azure_token_refreshes_total %llu\n",
                  (unsigned long long)c->st_token_refreshes);
}

/* ------------------------------------------------------------ requests */

static const char *const req_state_names[] = {"new", "queued", "inflight", "done"};

/* The one place a request changes state (STYLE 8). */
static void req_set_state(azure__req_t *r, azure__req_state_t st)
{
    azure_client_t *c = r->c;
    if (r->state == AZ_REQ_QUEUED)
        c->nqueued--;
    if (r->state == AZ_REQ_INFLIGHT && r->op != AZ_OP_TOKEN)
        c->ninflight--;
    if (st == AZ_REQ_QUEUED)
        c->nqueued++;
    if (st == AZ_REQ_INFLIGHT && r->op != AZ_OP_TOKEN)
        c->ninflight++;
    if (log_enabled(LOG_DEBUG) && st != AZ_REQ_NEW)
        LOG(LOG_DEBUG, "arm request state", LF_S("operation", azure__ops[r->op].name),
            LF_S("resource", r->resource), LF_S("from", req_state_names[r->state]),
            LF_S("to", req_state_names[st]), LF_I("attempt", r->attempt));
    r->state = st;
}

azure__req_t *azure__req_new(azure_client_t *c, azure__op_t op, int prio, char *url, char *body,
                             size_t body_len, azure__req_done_fn done, void *ctx)
{
    azure__req_t *r = d8_xcalloc(1, sizeof(*r));
    d8_list_init(&r->link);
    r->c = c;
    r->op = op;
    r->prio = op == AZ_OP_TOKEN ? SYS_QUEUE : prio + 1;
    r->url = url;
    r->body = body;
    r->body_len = body_len;
    r->needs_token = op != AZ_OP_TOKEN;
    r->done = done;
    r->ctx = ctx;
    r->retry_after_ms = -1;
    for (int i = 0; i < 3; i++)
        r->remaining[i] = -1;
    r->accepted_ms = d8_mono_ms();
    d8_buf_init(&r->resp);
    d8_uuid_v4(r->client_request_id);
    return r;
}

void azure__req_add_secret(azure__req_t *r, char *secret)
{
    if (secret && r->nsecrets < AZ_MAX_SECRETS)
        r->secrets[r->nsecrets++] = d8_xstrdup(secret);
}

static void wipe_slist(struct curl_slist *l)
{
    for (struct curl_slist *it = l; it; it = it->next)
        OPENSSL_cleanse(it->data, strlen(it->data));
    curl_slist_free_all(l);
}

static void req_free(azure__req_t *r)
{
    free(r->url);
    if (r->body) {
        OPENSSL_cleanse(r->body, r->body_len);
        free(r->body);
    }
    for (size_t i = 0; r->form_headers && r->form_headers[i]; i++)
        free(r->form_headers[i]);
    free(r->form_headers);
    if (r->resp.data)
        OPENSSL_cleanse(r->resp.data, r->resp.cap);
    d8_buf_release(&r->resp);
    free(r->async_op);
    free(r->location);
    for (size_t i = 0; i < r->nsecrets; i++)
        azure__free_secret(r->secrets[i]);
    free(r);
}

void azure__sched_kick(azure_client_t *c, uint64_t delay_ms)
{
    if (c->torn_down || c->closing)
        return;
    uint64_t due = d8_mono_ms() + delay_ms;
    if (due >= c->sched_due)
        return;
    c->sched_due = due;
    uv_timer_start(&c->sched_timer, sched_cb, delay_ms, 0);
}

void azure__req_submit(azure__req_t *r, const azure_scope_t *s)
{
    azure_client_t *c = r->c;
    if (s && r->op != AZ_OP_TOKEN)
        r->bkt = bucket_get(c, s->subscription_id, s->region);
    if (c->closing) {
        /* Only reached from inside a callback during teardown: complete at
         * once, there will be no later loop turn for this client. */
        req_finish(r, D8_ECANCELED, "", "the Azure client is shutting down");
        return;
    }
    d8_list_push(&c->queue[r->prio], &r->link);
    req_set_state(r, AZ_REQ_QUEUED);
    azure__sched_kick(c, 0);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    azure__req_t *r = ud;
    size_t len = size * n;
    if (r->resp.len + len > RESP_MAX)
        return 0;
    d8_buf_append(&r->resp, data, len);
    return len;
}

static void set_str(char **dst, const char *v, size_t n)
{
    free(*dst);
    *dst = d8_xstrndup(v, n);
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    azure__req_t *r = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after 100-continue or a retry on the same
         * handle): forget what the previous one said. */
        r->ms_request_id[0] = '\0';
        free(r->async_op);
        free(r->location);
        r->async_op = r->location = NULL;
        r->retry_after_ms = -1;
        for (int i = 0; i < 3; i++)
            r->remaining[i] = -1;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
#define HNAME(lit) (nlen == sizeof(lit) - 1 && strncasecmp(data, lit, nlen) == 0)
    if (HNAME("x-ms-request-id")) {
        size_t k = vlen < sizeof(r->ms_request_id) - 1 ? vlen : sizeof(r->ms_request_id) - 1;
        memcpy(r->ms_request_id, v, k);
        r->ms_request_id[k] = '\0';
    } else if (HNAME("retry-after")) {
        char tmp[80];
        size_t k = vlen < sizeof(tmp) - 1 ? vlen : sizeof(tmp) - 1;
        memcpy(tmp, v, k);
        tmp[k] = '\0';
        uint64_t d;
        if (azure__parse_retry_after(tmp, d8_wall_ms(), &d) == 0)
            r->retry_after_ms = (int64_t)d;
    } else if (HNAME("azure-asyncoperation")) {
        set_str(&r->async_op, v, vlen < 4096 ? vlen : 4096);
    } else if (HNAME("location")) {
        set_str(&r->location, v, vlen < 4096 ? vlen : 4096);
    } else if (nlen > 38 && strncasecmp(data, "x-ms-ratelimit-remaining-subscription-", 38) == 0) {
        const char *kind = data + 38;
        size_t klen = nlen - 38;
        /* Newer ARM regions send "global-" and "resource-" variants; the
         * last word names the bucket. */
        if (klen > 7 && strncasecmp(kind, "global-", 7) == 0) {
            kind += 7;
            klen -= 7;
        }
        int idx = -1;
        if (klen == 5 && strncasecmp(kind, "reads", 5) == 0)
            idx = 0;
        else if (klen == 6 && strncasecmp(kind, "writes", 6) == 0)
            idx = 1;
        else if (klen == 7 && strncasecmp(kind, "deletes", 7) == 0)
            idx = 2;
        if (idx >= 0 && vlen > 0 && vlen < 12) {
            char tmp[16];
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            char *e;
            long x = strtol(tmp, &e, 10);
            if (*e == '\0' && x >= 0)
                r->remaining[idx] = x;
        }
    }
#undef HNAME
    return len;
}

static int add_header(azure__req_t *r, const char *h)
{
    struct curl_slist *n = curl_slist_append(r->hdrs, h);
    if (!n)
        return -1;
    r->hdrs = n;
    return 0;
}

/* Builds the easy handle of one attempt and hands it to the multi. */
static int req_start(azure__req_t *r)
{
    azure_client_t *c = r->c;
    const char *method = azure__ops[r->op].method;
    if (r->op == AZ_OP_TOKEN && !r->body)
        method = "GET";
    CURL *e = curl_easy_init();
    if (!e)
        return D8_ENOMEM;
    r->easy = e;
    r->attempt++;
    d8_buf_reset(&r->resp);
    r->status = 0;
    r->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->request_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "dev8-agent/" D8_VERSION);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "DELETE") != 0) {
            /* The body is borrowed by curl (no copy): it lives as long as
             * the request. POST without a body sends Content-Length: 0. */
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(r->body ? r->body_len : 0));
        }
    }
    char h[128];
    int bad = add_header(r, "Accept: application/json");
    /* No Expect: 100-continue round trip for bodies over 1 KiB. */
    bad |= add_header(r, "Expect:");
    if (r->body && strcmp(method, "GET") != 0)
        bad |=
            add_header(r, r->op == AZ_OP_TOKEN ? "Content-Type: application/x-www-form-urlencoded"
                                               : "Content-Type: application/json");
    snprintf(h, sizeof(h), "x-ms-client-request-id: %s", r->client_request_id);
    bad |= add_header(r, h);
    for (size_t i = 0; r->form_headers && r->form_headers[i]; i++)
        bad |= add_header(r, r->form_headers[i]);
    if (r->needs_token && c->auth.token) {
        d8_buf_t a;
        d8_buf_init(&a);
        d8_buf_reserve(&a, strlen(c->auth.token) + 32);
        d8_buf_puts(&a, "Authorization: Bearer ");
        d8_buf_puts(&a, c->auth.token);
        bad |= add_header(r, a.data);
        OPENSSL_cleanse(a.data, a.cap);
        d8_buf_release(&a);
        r->token_gen = c->auth.gen;
    }
    if (bad)
        return D8_ENOMEM;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    r->sent_ns = d8_mono_ns();
    if (curluv_add(c->cu, e, on_attempt_done, r) < 0)
        return D8_EIO;
    return 0;
}

static void req_release_easy(azure__req_t *r)
{
    if (r->easy) {
        curluv_remove(r->c->cu, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    if (r->hdrs) {
        wipe_slist(r->hdrs);
        r->hdrs = NULL;
    }
}

static int status_err(long status)
{
    if (status >= 200 && status < 300)
        return 0;
    switch (status) {
    case 404:
        return D8_ENOENT;
    case 409:
    case 412:
        return D8_ECONFLICT;
    case 401:
    case 403:
        return D8_EAUTH;
    case 429:
        return D8_EAGAIN;
    case 408:
        return D8_ETIMEDOUT;
    default:
        return status >= 400 && status < 500 ? D8_EINVAL : D8_EIO;
    }
}

/* Completes a request: builds the result, calls its owner, frees it. */
static void req_finish(azure__req_t *r, int err, const char *code, const char *message)
{
    azure_client_t *c = r->c;
    char ecode[128] = "", emsg[512] = "";
    if (code)
        snprintf(ecode, sizeof(ecode), "%s", code);
    if (message)
        snprintf(emsg, sizeof(emsg), "%s", message);
    if (!code && !message && r->status >= 400) {
        if (azure_decode_error(r->resp.data, r->resp.len, ecode, sizeof(ecode), emsg,
                               sizeof(emsg)) < 0 ||
            (!ecode[0] && !emsg[0]))
            snprintf(emsg, sizeof(emsg), "HTTP %ld from %s", r->status, azure__ops[r->op].name);
    }
    azure__scrub(emsg, sizeof(emsg), (const char *const *)r->secrets, r->nsecrets);
    azure__scrub(ecode, sizeof(ecode), (const char *const *)r->secrets, r->nsecrets);
    if (r->state == AZ_REQ_QUEUED)
        d8_list_del(&r->link);
    req_set_state(r, AZ_REQ_DONE);
    azure_result_t res = {
        .err = err,
        .http_status = (int)r->status,
        .error_code = ecode,
        .error_message = emsg,
        .request_id = r->ms_request_id,
        .client_request_id = r->client_request_id,
        .attempts = r->attempt,
        .duration_ms = d8_mono_ms() - r->accepted_ms,
        .accepted = err == 0 && (r->status == 201 || r->status == 202),
        .retry_after_ms = r->retry_after_ms,
        .async_operation = r->async_op ? r->async_op : "",
        .location = r->location ? r->location : "",
    };
    (void)c;
    if (r->done)
        r->done(r, &res);
    req_free(r);
}

/* A retried request goes back to the head of its priority: it is older
 * than anything queued behind it (FIFO per priority). */
static void queue_front(d8_list_t *q, d8_list_t *n)
{
    d8_list_push(q->next, n);
}

static int retryable_status(long s)
{
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

static void log_attempt(azure__req_t *r, CURLcode cres, uint64_t dur_ms)
{
    const azure__op_info_t *oi = &azure__ops[r->op];
    log_level_t lvl = oi->mutation ? LOG_INFO : LOG_DEBUG;
    if (!log_enabled(lvl))
        return;
    const char *err = cres != CURLE_OK ? curl_easy_strerror(cres) : "";
    if (r->op == AZ_OP_TOKEN) {
        LOG(lvl, "azure token request", LF_S("credential", azure_auth_kind_name(r->c->auth.kind)),
            LF_I("status", r->status), LF_I("duration_ms", dur_ms), LF_I("attempt", r->attempt),
            LF_S("error", err));
        return;
    }
    LOG(lvl, "arm request", LF_S("operation", oi->name), LF_S("resource", r->resource),
        LF_I("status", r->status), LF_I("duration_ms", dur_ms),
        LF_S("request_id", r->ms_request_id), LF_S("client_request_id", r->client_request_id),
        LF_I("attempt", r->attempt), LF_S("error", err));
}

/* One HTTP attempt ended: account, then retry, re-authenticate or finish. */
static void attempt_done(azure__req_t *r, CURLcode cres)
{
    azure_client_t *c = r->c;
    long status = 0, nconn = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &nconn);
    if (nconn > 0)
        c->st_connects += (uint64_t)nconn;
    int too_big = cres == CURLE_WRITE_ERROR && r->resp.len > 0;
    uint64_t dur_ns = d8_mono_ns() - r->sent_ns;
    req_release_easy(r);
    d8_list_del(&r->link);
    r->status = cres == CURLE_OK ? status : 0;
    uint64_t now = d8_mono_ms();
    /* A slot is free: let the scheduler fill it on the next turn. */
    azure__sched_kick(c, 0);

    if (r->op != AZ_OP_TOKEN) {
        c->st_requests++;
        record_code(c, (int)r->op,
                    cres == CURLE_OK ? (int)status : (cres == CURLE_OPERATION_TIMEDOUT ? -2 : -1));
        record_duration(c, (double)dur_ns / 1e9);
    }
    if (cres == CURLE_OPERATION_TIMEDOUT)
        c->st_timeouts++;
    if (r->status == 429)
        c->st_throttled++;
    log_attempt(r, cres, dur_ns / 1000000);

    /* ARM tells how much of its bucket is left: when nearly empty, drain
     * ours to match so the client slows to the refill rate. */
    if (r->bkt) {
        for (int i = 0; i < 3; i++)
            if (r->remaining[i] >= 0 && r->remaining[i] <= c->low_water)
                azure__bucket_clamp(&r->bkt->b[i], (double)r->remaining[i]);
    }

    if (cres == CURLE_OK && status == 401 && r->needs_token && !r->auth_retried) {
        /* An expired or revoked token: refresh once (single-flight) and
         * resend; the scheduler holds the request until a token exists. */
        r->auth_retried = 1;
        azure__auth_invalidate(c, r->token_gen);
        queue_front(&c->queue[r->prio], &r->link);
        req_set_state(r, AZ_REQ_QUEUED);
        azure__sched_kick(c, 0);
        return;
    }

    int retry = 0, err;
    if (cres != CURLE_OK) {
        err = cres == CURLE_OPERATION_TIMEDOUT ? D8_ETIMEDOUT : D8_EIO;
        retry = !too_big;
        if (too_big)
            err = D8_ETOOBIG;
    } else {
        err = status_err(status);
        retry = retryable_status(status);
    }

    if (retry && r->retry_after_ms >= 0 && r->bkt) {
        /* Retry-After pauses the whole bucket: nothing of that kind goes to
         * this subscription+region before the time ARM named. */
        const azure__op_info_t *oi = &azure__ops[r->op];
        uint64_t until = now + (uint64_t)r->retry_after_ms;
        if (oi->bucket >= 0)
            azure__bucket_pause(&r->bkt->b[oi->bucket], until);
        if (oi->aci_bucket >= 0) {
            azure__bucket_pause(&r->bkt->b[oi->aci_bucket], until);
            azure__bucket_pause(&r->bkt->b[AZURE_BUCKET_HOURLY(oi->aci_bucket)], until);
        }
    }

    if (retry && r->attempt < c->max_attempts) {
        uint64_t delay = r->retry_after_ms >= 0
                             ? (uint64_t)r->retry_after_ms
                             : d8_backoff_ms((unsigned)r->attempt, c->backoff_base_ms,
                                             c->backoff_cap_ms, d8_rand01(&c->rng));
        r->not_before = now + delay;
        c->st_retries++;
        queue_front(&c->queue[r->prio], &r->link);
        req_set_state(r, AZ_REQ_QUEUED);
        azure__sched_kick(c, delay);
        return;
    }

    if (cres != CURLE_OK) {
        char msg[CURL_ERROR_SIZE + 64];
        snprintf(msg, sizeof(msg), "%s: %s", azure__ops[r->op].name,
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(cres));
        req_finish(r, err, too_big ? "ResponseTooLarge" : "", msg);
        return;
    }
    req_finish(r, err, NULL, NULL);
}

/* curluv hands back a finished attempt (its handle already out of the
 * multi). A client being freed has removed all of its handles first, so
 * nothing arrives once it is closing. */
static void on_attempt_done(void *ud, CURL *easy, CURLcode cres)
{
    azure__req_t *r = ud;
    azure_client_t *c = r->c;
    (void)easy;
    azure__enter(c);
    if (!c->closing)
        attempt_done(r, cres);
    azure__leave(c);
}

/* The scheduler: starts what may start, and sleeps until the earliest
 * moment something else may. */
static void pump(azure_client_t *c)
{
    uint64_t now = d8_mono_ms();
    uint64_t next = UINT64_MAX;
    int token_ok = -1;

    azure__auth_pump(c);

    for (int q = 0; q <= AZURE_PRIO_COUNT && !c->closing; q++) {
        d8_list_t *it = c->queue[q].next;
        while (it != &c->queue[q] && !c->closing) {
            azure__req_t *r = d8_container_of(it, azure__req_t, link);
            it = it->next;
            if (q != SYS_QUEUE && c->ninflight >= (size_t)c->max_inflight)
                goto out;
            if (r->not_before > now) {
                if (r->not_before < next)
                    next = r->not_before;
                continue;
            }
            if (r->needs_token) {
                if (token_ok < 0)
                    token_ok = azure__auth_ready(c, now);
                if (!token_ok)
                    continue;
            }
            uint64_t w = req_bucket_wait(r, now);
            if (w > 0) {
                if (!r->throttle_counted) {
                    r->throttle_counted = 1;
                    c->st_throttle_waits++;
                }
                if (now + w < next)
                    next = now + w;
                continue;
            }
            req_bucket_take(r);
            d8_list_del(&r->link);
            req_set_state(r, AZ_REQ_INFLIGHT);
            d8_list_push(&c->inflight, &r->link);
            int rc = req_start(r);
            if (rc < 0) {
                req_release_easy(r);
                d8_list_del(&r->link);
                req_finish(r, rc, "", "could not start the HTTP request");
            }
        }
    }
out:
    if (!c->closing && !d8_list_empty(&c->auth.waiters) && azure__auth_ready(c, now))
        azure__auth_flush_waiters(c, 0);
    if (!c->closing && next != UINT64_MAX)
        azure__sched_kick(c, next > now ? next - now : 0);
}

static void sched_cb(uv_timer_t *t)
{
    azure_client_t *c = t->data;
    c->sched_due = UINT64_MAX;
    azure__enter(c);
    if (!c->closing)
        pump(c);
    azure__leave(c);
}

void azure__fail_token_waiters(azure_client_t *c, const char *code, const char *message)
{
    d8_list_t local;
    d8_list_init(&local);
    for (int q = 1; q <= AZURE_PRIO_COUNT; q++) {
        while (!d8_list_empty(&c->queue[q])) {
            d8_list_t *n = c->queue[q].next;
            d8_list_del(n);
            d8_list_push(&local, n);
        }
    }
    /* The requests stay in state QUEUED while on the local list; finish
     * unlinks them from it. */
    while (!d8_list_empty(&local)) {
        azure__req_t *r = d8_container_of(local.next, azure__req_t, link);
        if (!r->needs_token) {
            d8_list_del(&r->link);
            d8_list_push(&c->queue[r->prio], &r->link);
            continue;
        }
        req_finish(r, D8_EAUTH, code, message);
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
            snprintf(err, errlen, "azure: bucket %s has no burst or rate", bucket_kind_names[k]);
            return D8_EINVAL;
        }
    }
    return 0;
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
    d8_list_init(&c->keys);
    d8_list_init(&c->auth.waiters);
    c->arm_endpoint = dup_trim_slash(opts->arm_endpoint);
    c->imds_endpoint = dup_trim_slash(opts->imds_endpoint);
    c->aci_api_version = dup_trim_slash(opts->aci_api_version);
    c->storage_api_version = dup_trim_slash(opts->storage_api_version);
    c->token_scope =
        d8_xstrdup(opts->token_scope && opts->token_scope[0] ? opts->token_scope : DEF_TOKEN_SCOPE);
    c->token_resource =
        d8_xstrdup(opts->token_resource && opts->token_resource[0] ? opts->token_resource
                                                                   : DEF_TOKEN_RESOURCE);
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
            req_release_easy(r);
            d8_list_del(&r->link);
        } else {
            for (int q = 0; q <= AZURE_PRIO_COUNT && !r; q++)
                if (!d8_list_empty(&c->queue[q]))
                    r = d8_container_of(c->queue[q].next, azure__req_t, link);
        }
        if (!r)
            break;
        req_finish(r, D8_ECANCELED, "", "the Azure client is shutting down");
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
