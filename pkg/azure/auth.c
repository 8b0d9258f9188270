/*
 * Credentials of pkg/azure: client secret, workload identity (federated
 * token file, re-read on every refresh) and managed identity (IMDS). The
 * token is cached and refreshed before expiry; one refresh at a time
 * (single flight): requests that need a token wait in the scheduler's
 * queue until it arrives, and fail with D8_EAUTH when it cannot be had.
 *
 * Secrets (client secret, assertion, token) live only in buffers that are
 * wiped when released; they are never logged.
 */
#include "azure_int.h"
#include "log/log.h"

#include <ctype.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define ASSERTION_MAX (64 * 1024)

static const char *envor(const char *v, const char *name)
{
    if (v && v[0])
        return v;
    const char *e = getenv(name);
    return e && e[0] ? e : NULL;
}

static int valid_tenant(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
            return 0;
    return 1;
}

static char *dup_trim(const char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == '/')
        n--;
    return d8_xstrndup(s, n);
}

int azure__auth_init(azure_client_t *c, const azure_client_opts_t *o, const char *authority,
                     char *err, size_t errlen)
{
    azure__auth_t *a = &c->auth;
    const char *tenant = envor(o->tenant_id, "AZURE_TENANT_ID");
    const char *client = envor(o->client_id, "AZURE_CLIENT_ID");
    const char *secret = envor(o->client_secret, "AZURE_CLIENT_SECRET");
    const char *file = envor(o->federated_token_file, "AZURE_FEDERATED_TOKEN_FILE");
    azure_auth_kind_t kind = o->auth;
    if (kind == AZURE_AUTH_AUTO)
        kind = file ? AZURE_AUTH_WORKLOAD_IDENTITY
                    : (secret ? AZURE_AUTH_CLIENT_SECRET : AZURE_AUTH_MANAGED_IDENTITY);
    a->fs_fd = -1;
    a->kind = kind;
    switch (kind) {
    case AZURE_AUTH_CLIENT_SECRET:
        if (!tenant || !client || !secret) {
            snprintf(err, errlen,
                     "azure.auth clientSecret needs AZURE_TENANT_ID, "
                     "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET");
            return D8_EINVAL;
        }
        break;
    case AZURE_AUTH_WORKLOAD_IDENTITY: {
        if (!tenant || !client || !file) {
            snprintf(err, errlen,
                     "azure.auth workloadIdentity needs AZURE_TENANT_ID, "
                     "AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE");
            return D8_EINVAL;
        }
        /* The AKS workload identity webhook names the authority to use. */
        const char *env_auth = getenv("AZURE_AUTHORITY_HOST");
        if (env_auth && env_auth[0])
            authority = env_auth;
        break;
    }
    default:
        break;
    }
    if (tenant && !valid_tenant(tenant)) {
        snprintf(err, errlen, "AZURE_TENANT_ID is not a tenant id or domain name");
        return D8_EINVAL;
    }
    if (kind != AZURE_AUTH_MANAGED_IDENTITY && strncmp(authority, "https://", 8) != 0 &&
        strncmp(authority, "http://", 7) != 0) {
        snprintf(err, errlen, "azure.authorityHost must be an http(s) URL");
        return D8_EINVAL;
    }
    a->tenant_id = tenant ? d8_xstrdup(tenant) : NULL;
    a->client_id = client ? d8_xstrdup(client) : NULL;
    a->client_secret = kind == AZURE_AUTH_CLIENT_SECRET ? d8_xstrdup(secret) : NULL;
    a->federated_token_file = kind == AZURE_AUTH_WORKLOAD_IDENTITY ? d8_xstrdup(file) : NULL;
    a->authority = dup_trim(authority);
    return 0;
}

void azure__auth_release(azure_client_t *c)
{
    azure__auth_t *a = &c->auth;
    free(a->tenant_id);
    free(a->client_id);
    azure__free_secret(a->client_secret);
    free(a->federated_token_file);
    free(a->authority);
    azure__free_secret(a->token);
    if (a->fs_buf.data) {
        OPENSSL_cleanse(a->fs_buf.data, a->fs_buf.cap);
        d8_buf_release(&a->fs_buf);
    }
    memset(a, 0, sizeof(*a));
}

/* application/x-www-form-urlencoded name=value, RFC 3986 unreserved kept. */
static void form_put(d8_buf_t *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    if (b->len)
        d8_buf_putc(b, '&');
    d8_buf_puts(b, name);
    d8_buf_putc(b, '=');
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            d8_buf_putc(b, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            d8_buf_append(b, e, 3);
        }
    }
}

static void token_done(azure__req_t *r, const azure_result_t *res);

static void submit_token_request(azure_client_t *c, d8_buf_t *body, const char *secret)
{
    azure__auth_t *a = &c->auth;
    d8_buf_t url;
    d8_buf_init(&url);
    d8_buf_printf(&url, "%s/%s/oauth2/v2.0/token", a->authority, a->tenant_id);
    size_t len;
    char *b = d8_buf_detach(body, &len);
    azure__req_t *r =
        azure__req_new(c, AZ_OP_TOKEN, 0, d8_buf_detach(&url, NULL), b, len, token_done, NULL);
    snprintf(r->resource, sizeof(r->resource), "%s", "token");
    azure__req_add_secret(r, (char *)secret);
    azure__req_submit(r, NULL);
}

static void submit_client_secret(azure_client_t *c)
{
    azure__auth_t *a = &c->auth;
    d8_buf_t body;
    d8_buf_init(&body);
    /* Reserved once so the secret is never left behind by a realloc. */
    d8_buf_reserve(&body,
                   3 * (strlen(a->client_secret) + strlen(a->client_id) + strlen(c->token_scope)) +
                       128);
    form_put(&body, "grant_type", "client_credentials");
    form_put(&body, "client_id", a->client_id);
    form_put(&body, "client_secret", a->client_secret);
    form_put(&body, "scope", c->token_scope);
    submit_token_request(c, &body, a->client_secret);
}

static void submit_imds(azure_client_t *c)
{
    azure__auth_t *a = &c->auth;
    d8_buf_t q, url;
    d8_buf_init(&q);
    d8_buf_init(&url);
    form_put(&q, "api-version", "2018-02-01");
    form_put(&q, "resource", c->token_resource);
    if (a->client_id)
        form_put(&q, "client_id", a->client_id);
    d8_buf_printf(&url, "%s/metadata/identity/oauth2/token?%s", c->imds_endpoint, q.data);
    d8_buf_release(&q);
    azure__req_t *r =
        azure__req_new(c, AZ_OP_TOKEN, 0, d8_buf_detach(&url, NULL), NULL, 0, token_done, NULL);
    snprintf(r->resource, sizeof(r->resource), "%s", "imds");
    r->form_headers = d8_xcalloc(2, sizeof(char *));
    r->form_headers[0] = d8_xstrdup("Metadata: true");
    azure__req_submit(r, NULL);
}

/* ---- workload identity: read the projected token file without blocking */

static void wi_fail(azure_client_t *c, const char *code, const char *what, int uverr)
{
    azure__auth_t *a = &c->auth;
    snprintf(a->err_code, sizeof(a->err_code), "%s", code);
    snprintf(a->err_message, sizeof(a->err_message), "%s%s%s", what, uverr ? ": " : "",
             uverr ? uv_strerror(uverr) : "");
    a->fail_pending = 1;
    azure__sched_kick(c, 0);
}

/* The federated token file was read into fs_buf: sends the client
 * assertion (trimmed) to the token endpoint, then wipes the buffer. An
 * empty file fails the refresh instead. */
static void wi_submit(azure_client_t *c)
{
    azure__auth_t *a = &c->auth;
    char *p = a->fs_buf.data;
    size_t n = a->fs_buf.len;
    while (n && isspace((unsigned char)p[n - 1]))
        n--;
    size_t s = 0;
    while (s < n && isspace((unsigned char)p[s]))
        s++;
    if (n <= s) {
        wi_fail(c, "FederatedTokenFileEmpty", "the federated token file is empty", 0);
        return;
    }
    p[n] = '\0';
    d8_buf_t body;
    d8_buf_init(&body);
    d8_buf_reserve(&body, 3 * (n + strlen(a->client_id) + strlen(c->token_scope)) + 256);
    form_put(&body, "grant_type", "client_credentials");
    form_put(&body, "client_id", a->client_id);
    form_put(&body, "client_assertion_type",
             "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    form_put(&body, "client_assertion", p + s);
    form_put(&body, "scope", c->token_scope);
    submit_token_request(c, &body, p + s);
    OPENSSL_cleanse(a->fs_buf.data, a->fs_buf.cap);
    d8_buf_reset(&a->fs_buf);
}

static void wi_on_read(uv_fs_t *req);

static void wi_on_close(uv_fs_t *req)
{
    azure_client_t *c = req->data;
    uv_fs_req_cleanup(req);
    c->auth.fs_busy = 0;
    c->auth.fs_fd = -1;
    azure__enter(c);
    if (!c->closing)
        wi_submit(c);
    azure__leave(c);
    azure__unref(c);
}

/* Closes the file; when `closing` the client is going away: synchronously
 * (tiny, and there is no later turn to wait for). */
static void wi_close(azure_client_t *c, int async)
{
    azure__auth_t *a = &c->auth;
    if (a->fs_fd < 0)
        return;
    if (async && uv_fs_close(c->loop, &a->fs, a->fs_fd, wi_on_close) == 0) {
        a->fs_busy = 1;
        azure__ref(c);
        return;
    }
    uv_fs_t sync;
    uv_fs_close(c->loop, &sync, a->fs_fd, NULL);
    uv_fs_req_cleanup(&sync);
    a->fs_fd = -1;
}

static void wi_read_more(azure_client_t *c)
{
    azure__auth_t *a = &c->auth;
    size_t room = a->fs_buf.cap - a->fs_buf.len - 1;
    if (room == 0) {
        wi_close(c, 0);
        wi_fail(c, "FederatedTokenFileTooLarge", "the federated token file is over 64 KiB", 0);
        return;
    }
    uv_buf_t b = uv_buf_init(a->fs_buf.data + a->fs_buf.len, (unsigned int)room);
    int rc = uv_fs_read(c->loop, &a->fs, a->fs_fd, &b, 1, -1, wi_on_read);
    if (rc < 0) {
        wi_close(c, 0);
        wi_fail(c, "FederatedTokenFileUnreadable", "cannot read the federated token file", rc);
        return;
    }
    a->fs_busy = 1;
    azure__ref(c);
}

/* One read of the federated token file ended: read on until EOF (then
 * close, which submits), or fail the refresh on an error. */
static void wi_on_read(uv_fs_t *req)
{
    azure_client_t *c = req->data;
    azure__auth_t *a = &c->auth;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    a->fs_busy = 0;
    azure__enter(c);
    if (c->closing) {
        wi_close(c, 0);
    } else if (res < 0) {
        wi_close(c, 0);
        wi_fail(c, "FederatedTokenFileUnreadable", "cannot read the federated token file",
                (int)res);
    } else if (res == 0) {
        wi_close(c, 1);
    } else {
        a->fs_buf.len += (size_t)res;
        a->fs_buf.data[a->fs_buf.len] = '\0';
        wi_read_more(c);
    }
    azure__leave(c);
    azure__unref(c);
}

static void wi_on_open(uv_fs_t *req)
{
    azure_client_t *c = req->data;
    azure__auth_t *a = &c->auth;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    a->fs_busy = 0;
    azure__enter(c);
    if (res >= 0)
        a->fs_fd = (uv_file)res;
    if (c->closing)
        wi_close(c, 0);
    else if (res < 0)
        wi_fail(c, "FederatedTokenFileUnreadable", "cannot open the federated token file",
                (int)res);
    else
        wi_read_more(c);
    azure__leave(c);
    azure__unref(c);
}

static void wi_start(azure_client_t *c)
{
    azure__auth_t *a = &c->auth;
    if (!a->fs_buf.data) {
        d8_buf_init(&a->fs_buf);
        d8_buf_reserve(&a->fs_buf, ASSERTION_MAX);
    }
    d8_buf_reset(&a->fs_buf);
    a->fs.data = c;
    int rc =
        uv_fs_open(c->loop, &a->fs, a->federated_token_file, O_RDONLY | O_CLOEXEC, 0, wi_on_open);
    if (rc < 0) {
        wi_fail(c, "FederatedTokenFileUnreadable", "cannot open the federated token file", rc);
        return;
    }
    a->fs_busy = 1;
    azure__ref(c);
}

/* ---- refresh state machine */

static void start_refresh(azure_client_t *c)
{
    azure__auth_t *a = &c->auth;
    a->refreshing = 1;
    LOG(LOG_DEBUG, "azure token refresh", LF_S("credential", azure_auth_kind_name(a->kind)));
    switch (a->kind) {
    case AZURE_AUTH_CLIENT_SECRET:
        submit_client_secret(c);
        break;
    case AZURE_AUTH_WORKLOAD_IDENTITY:
        wi_start(c);
        break;
    default:
        submit_imds(c);
        break;
    }
}

/* Takes the access token out of t (t keeps nothing secret) as the
 * current one and schedules its proactive refresh. */
static void install(azure_client_t *c, azure__token_t *t)
{
    azure__auth_t *a = &c->auth;
    uint64_t now = d8_mono_ms();
    int64_t life_s = t->expires_in_s > 0 ? t->expires_in_s : 300;
    uint64_t life = (uint64_t)life_s * 1000;
    azure__free_secret(a->token);
    a->token = t->access_token;
    t->access_token = NULL;
    a->gen++;
    a->ever = 1;
    a->obtained_ms = now;
    a->expires_ms = now + life;
    /* Refresh at 80% of the lifetime or 5 minutes before expiry, whichever
     * is earlier; short-lived tokens are refreshed no earlier than half
     * way, so they are not re-fetched on every request. */
    uint64_t at80 = now + life * 8 / 10;
    uint64_t at5m = life > 300000 ? a->expires_ms - 300000 : now;
    uint64_t refresh = at80 < at5m ? at80 : at5m;
    if (refresh < now + life / 2)
        refresh = now + life / 2;
    a->refresh_ms = refresh;
    uint64_t skew = life / 10 < 30000 ? life / 10 : 30000;
    a->usable_until_ms = a->expires_ms - skew;
    a->retry_not_before = 0;
    a->err_code[0] = a->err_message[0] = '\0';
    c->st_token_refreshes++;
    LOG(LOG_INFO, "azure token obtained", LF_S("credential", azure_auth_kind_name(a->kind)),
        LF_I("expires_in_s", life_s), LF_I("refresh_in_s", (refresh - now) / 1000));
}

/*
 * A refresh failed (err_code/err_message say why). While the current
 * token is still usable the refresh is tried again in 5 s; otherwise every
 * token waiter and every queued request that needs a token fails with
 * D8_EAUTH.
 */
static void refresh_failed(azure_client_t *c, int status)
{
    azure__auth_t *a = &c->auth;
    uint64_t now = d8_mono_ms();
    a->refreshing = 0;
    c->st_token_failures++;
    if (!a->err_message[0])
        snprintf(a->err_message, sizeof(a->err_message), "the token endpoint answered HTTP %d",
                 status);
    LOG(LOG_WARN, "azure token request failed", LF_S("credential", azure_auth_kind_name(a->kind)),
        LF_I("status", status), LF_S("code", a->err_code), LF_S("message", a->err_message));
    if (a->token && now < a->usable_until_ms) {
        /* The current token is still good: try again a little later. */
        a->retry_not_before = now + 5000;
        azure__sched_kick(c, 5000);
        return;
    }
    char msg[384];
    snprintf(msg, sizeof(msg), "no Azure token (%s): %s", azure_auth_kind_name(a->kind),
             a->err_message);
    azure__auth_flush_waiters(c, D8_EAUTH);
    if (!c->closing)
        azure__fail_token_waiters(c, a->err_code[0] ? a->err_code : "AuthenticationFailed", msg);
}

/* The token endpoint answered (or the request failed): install the
 * token and wake its waiters, or record the error and fail the refresh. */
static void token_done(azure__req_t *r, const azure_result_t *res)
{
    azure_client_t *c = r->c;
    azure__auth_t *a = &c->auth;
    if (res->err == D8_ECANCELED) {
        a->refreshing = 0;
        return;
    }
    if (res->err == 0) {
        azure__token_t t;
        if (azure__decode_token(r->resp.data, r->resp.len, &t) == 0) {
            a->refreshing = 0;
            install(c, &t);
            azure__token_release(&t);
            azure__auth_flush_waiters(c, 0);
            azure__sched_kick(c, 0);
            return;
        }
        snprintf(a->err_code, sizeof(a->err_code), "InvalidTokenResponse");
        snprintf(a->err_message, sizeof(a->err_message),
                 "the token endpoint answered without an access_token");
    } else {
        snprintf(a->err_code, sizeof(a->err_code), "%s", res->error_code);
        snprintf(a->err_message, sizeof(a->err_message), "%s", res->error_message);
    }
    refresh_failed(c, res->http_status);
}

void azure__auth_pump(azure_client_t *c)
{
    if (c->auth.fail_pending) {
        c->auth.fail_pending = 0;
        refresh_failed(c, 0);
    }
}

int azure__auth_ready(azure_client_t *c, uint64_t now_ms)
{
    azure__auth_t *a = &c->auth;
    if (a->token && now_ms < a->usable_until_ms) {
        if (now_ms >= a->refresh_ms && !a->refreshing && !a->fail_pending &&
            now_ms >= a->retry_not_before)
            start_refresh(c);
        return 1;
    }
    if (!a->refreshing && !a->fail_pending)
        start_refresh(c);
    return 0;
}

void azure__auth_invalidate(azure_client_t *c, uint64_t gen)
{
    azure__auth_t *a = &c->auth;
    if (gen == a->gen && a->token) {
        a->usable_until_ms = 0;
        LOG(LOG_INFO, "azure token rejected by ARM; refreshing",
            LF_S("credential", azure_auth_kind_name(a->kind)));
    }
}

void azure__auth_flush_waiters(azure_client_t *c, int err)
{
    azure__auth_t *a = &c->auth;
    d8_list_t local;
    d8_list_init(&local);
    while (!d8_list_empty(&a->waiters)) {
        d8_list_t *n = a->waiters.next;
        d8_list_del(n);
        d8_list_push(&local, n);
    }
    while (!d8_list_empty(&local)) {
        azure__token_waiter_t *w = d8_container_of(local.next, azure__token_waiter_t, link);
        d8_list_del(&w->link);
        azure_result_t res = {
            .err = err,
            .error_code = err == D8_EAUTH ? a->err_code : "",
            .error_message = err == D8_EAUTH ? a->err_message : "",
            .request_id = "",
            .client_request_id = "",
            .duration_ms = d8_mono_ms() - w->accepted_ms,
            .retry_after_ms = -1,
            .async_operation = "",
            .location = "",
        };
        w->cb(w->ud, &res);
        free(w);
    }
}

void azure__auth_cancel(azure_client_t *c)
{
    azure__auth_flush_waiters(c, D8_ECANCELED);
    if (c->auth.fs_busy)
        uv_cancel((uv_req_t *)&c->auth.fs);
}

int azure_token_acquire(azure_client_t *c, azure_done_cb cb, void *ud)
{
    if (!c || !cb)
        return D8_EINVAL;
    if (c->closing)
        return D8_ECANCELED;
    azure__token_waiter_t *w = d8_xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->ud = ud;
    w->accepted_ms = d8_mono_ms();
    d8_list_push(&c->auth.waiters, &w->link);
    azure__sched_kick(c, 0);
    return 0;
}
