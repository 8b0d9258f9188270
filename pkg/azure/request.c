/*
 * The request layer of pkg/azure: one request's life through its states
 * (new -> queued -> inflight -> queued again for a retry or a token
 * refresh -> done), each attempt as a curl easy handle on the client's
 * curl multi (pkg/curluv), what an answer says (status, ARM headers,
 * body), the retry decision, the per-call log line and the result handed
 * to the request's owner.
 *
 * Every user callback runs from a loop callback of this file, queue.c,
 * auth.c or (for finished attempts) pkg/curluv, never from inside a public
 * call and never from inside a curl callback.
 * Requests change state only through azure__req_set_state().
 */
#include "azure_int.h"
#include "log/log.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef D8_VERSION
#define D8_VERSION "dev"
#endif

#define RESP_MAX ((size_t)64 << 20)

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
    [AZ_OP_ACCOUNT_GET] = {"StorageAccounts_GetProperties", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_PROVIDER_GET] = {"Providers_Get", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_RG_GET] = {"ResourceGroups_Get", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_PERMISSIONS_LIST] = {"Permissions_ListForResourceGroup", "GET", AZURE_BUCKET_READ, -1,
                                0},
    [AZ_OP_ACCOUNT_READ] = {"StorageAccounts_GetProperties", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_FILE_SERVICE_GET] = {"FileServices_GetServiceProperties", "GET", AZURE_BUCKET_READ, -1,
                                0},
    [AZ_OP_USAGE_LIST] = {"Location_ListUsage", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_CAPABILITIES_LIST] = {"Location_ListCapabilities", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_RESOURCE_PERMISSIONS_LIST] = {"Permissions_ListForResource", "GET", AZURE_BUCKET_READ,
                                         -1, 0},
    [AZ_OP_CONTAINER_LOGS] = {"Containers_ListLogs", "GET", AZURE_BUCKET_READ, -1, 0},
    [AZ_OP_TOKEN] = {"Token", "POST", -1, -1, 0},
};

static void on_attempt_done(void *ud, CURL *easy, CURLcode cres);

/* ------------------------------------------------------------ requests */

static const char *const req_state_names[] = {"new", "queued", "inflight", "done"};

void azure__req_set_state(azure__req_t *r, azure__req_state_t st)
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
    r->prio = op == AZ_OP_TOKEN ? AZ_SYS_QUEUE : prio + 1;
    r->url = url;
    r->body = body;
    r->body_len = body_len;
    r->needs_token = op != AZ_OP_TOKEN;
    r->done = done;
    r->ctx = ctx;
    r->retry_after_ms = -1;
    for (int i = 0; i < AZ_ARM_KINDS; i++)
        r->remaining[i] = -1;
    r->accepted_ms = d8_mono_ms();
    d8_buf_init(&r->resp);
    d8_uuid_v4(r->client_request_id);
    return r;
}

void azure__req_add_secret(azure__req_t *r, char *secret)
{
    az_secrets_add(&r->secrets, secret);
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
    az_secrets_release(&r->secrets);
    free(r);
}

/* curl's body callback: collects the answer, refusing more than
 * RESP_MAX (the transfer then fails with CURLE_WRITE_ERROR). */
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

/*
 * curl's header callback: keeps what ARM says in headers (x-ms-request-id,
 * Retry-After, Azure-AsyncOperation, Location, the lowest
 * x-ms-ratelimit-remaining-subscription-[global-]* figure per kind); a
 * status line starts a new response and forgets the previous one's.
 */
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
        for (int i = 0; i < AZ_ARM_KINDS; i++)
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
    int kind;
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
    } else if ((kind = azure__ratelimit_kind(data, nlen)) >= 0 && vlen > 0 && vlen < 12) {
        char tmp[16];
        memcpy(tmp, v, vlen);
        tmp[vlen] = '\0';
        char *e;
        long x = strtol(tmp, &e, 10);
        /* ARM sends the principal's figure and the subscription's global
         * one: the lower says how close the first bucket to run dry is. */
        if (*e == '\0' && x >= 0 && (r->remaining[kind] < 0 || x < r->remaining[kind]))
            r->remaining[kind] = x;
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
int azure__req_start(azure__req_t *r)
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

void azure__req_release_easy(azure__req_t *r)
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

/* The D8_* error of an HTTP status (the mapping documented in azure.h). */
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
void azure__req_finish(azure__req_t *r, int err, const char *code, const char *message)
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
    azure__scrub(emsg, sizeof(emsg), (const char *const *)r->secrets.v, r->secrets.n);
    azure__scrub(ecode, sizeof(ecode), (const char *const *)r->secrets.v, r->secrets.n);
    if (r->state == AZ_REQ_QUEUED)
        d8_list_del(&r->link);
    azure__req_set_state(r, AZ_REQ_DONE);
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

/* The statuses worth another attempt: timeouts, throttling and the
 * transient server errors. */
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

/*
 * Takes a finished attempt's handle out of the request and accounts for
 * it: r->status (0 when no answer arrived), connections, the metrics and
 * the log line. Returns 1 when the answer was cut off for being over
 * RESP_MAX.
 */
static int attempt_account(azure__req_t *r, CURLcode cres)
{
    azure_client_t *c = r->c;
    long status = 0, nconn = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &nconn);
    if (nconn > 0)
        c->st_connects += (uint64_t)nconn;
    int too_big = cres == CURLE_WRITE_ERROR && r->resp.len > 0;
    uint64_t dur_ns = d8_mono_ns() - r->sent_ns;
    azure__req_release_easy(r);
    d8_list_del(&r->link);
    r->status = cres == CURLE_OK ? status : 0;
    if (r->op != AZ_OP_TOKEN)
        azure__record_attempt(c, (int)r->op,
                              cres == CURLE_OK ? (int)status
                                               : (cres == CURLE_OPERATION_TIMEDOUT ? -2 : -1),
                              (double)dur_ns / 1e9);
    if (cres == CURLE_OPERATION_TIMEDOUT)
        c->st_timeouts++;
    if (r->status == 429)
        c->st_throttled++;
    log_attempt(r, cres, dur_ns / 1000000);
    return too_big;
}

/* Whose meters a Retry-After of this answer pauses (AZ_THROTTLED_*): a
 * 429 says from its error body whether ARM or ACI throttled; any other
 * retryable answer pauses every bucket the request drew from. */
static int throttled_by(azure__req_t *r)
{
    if (r->status != 429)
        return AZ_THROTTLED_ARM | AZ_THROTTLED_ACI;
    char code[128], message[512];
    /* An unreadable body leaves both empty: the origin is then unknown. */
    (void)azure_decode_error(r->resp.data, r->resp.len, code, sizeof(code), message,
                             sizeof(message));
    return azure__throttle_origin(r->op, code, message);
}

/* Finishes a request whose last attempt got no usable answer. */
static void attempt_failed(azure__req_t *r, CURLcode cres, int err, int too_big)
{
    char msg[CURL_ERROR_SIZE + 64];
    snprintf(msg, sizeof(msg), "%s: %s", azure__ops[r->op].name,
             r->errbuf[0] ? r->errbuf : curl_easy_strerror(cres));
    azure__req_finish(r, err, too_big ? "ResponseTooLarge" : "", msg);
}

/*
 * One HTTP attempt ended: account for it, let the buckets hear what ARM
 * said, then re-authenticate once on a 401, retry a retryable failure
 * while attempts are left (after Retry-After, else a jittered backoff),
 * or finish the request.
 */
static void attempt_done(azure__req_t *r, CURLcode cres)
{
    azure_client_t *c = r->c;
    int too_big = attempt_account(r, cres);
    uint64_t now = d8_mono_ms();
    /* A slot is free: let the scheduler fill it on the next turn. */
    azure__sched_kick(c, 0);
    azure__buckets_clamp(r);

    if (cres == CURLE_OK && r->status == 401 && r->needs_token && !r->auth_retried) {
        /* An expired or revoked token: refresh once (single-flight) and
         * resend; the scheduler holds the request until a token exists. */
        r->auth_retried = 1;
        azure__auth_invalidate(c, r->token_gen);
        azure__req_requeue(r, now, 0);
        return;
    }

    int retry, err;
    if (cres != CURLE_OK) {
        err = too_big ? D8_ETOOBIG : cres == CURLE_OPERATION_TIMEDOUT ? D8_ETIMEDOUT : D8_EIO;
        retry = !too_big;
    } else {
        err = status_err(r->status);
        retry = retryable_status(r->status);
    }
    if (retry && r->retry_after_ms >= 0)
        azure__buckets_pause(r, now + (uint64_t)r->retry_after_ms, throttled_by(r));

    if (retry && r->attempt < c->max_attempts) {
        uint64_t delay = r->retry_after_ms >= 0
                             ? (uint64_t)r->retry_after_ms
                             : d8_backoff_ms((unsigned)r->attempt, c->backoff_base_ms,
                                             c->backoff_cap_ms, d8_rand01(&c->rng));
        c->st_retries++;
        azure__req_requeue(r, now, delay);
        return;
    }
    if (cres != CURLE_OK)
        attempt_failed(r, cres, err, too_big);
    else
        azure__req_finish(r, err, NULL, NULL);
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
