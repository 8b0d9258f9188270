/*
 * pkg/webhook: signed, coalesced, retried pushes of store events (see
 * webhook.h).
 *
 * Scheduling: an environment with work is in exactly one place — the
 * ready list (waiting for one of max_inflight slots), the backoff heap
 * (ordered by the time it may retry), or on the wire. One uv_timer runs
 * the scheduler: at once after an event or a completion (coalesced to one
 * run per loop turn), else when the earliest backoff ends. Store events
 * only record the state and kick the timer, so a burst of changes to one
 * environment within a loop turn costs one request.
 */
#include "webhook_int.h"

#include "base/base.h"
#include "base/heap.h"
#include "base/list.h"
#include "base/map.h"
#include "log/log.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef D8_VERSION
#define D8_VERSION "dev"
#endif

#define DEF_CONNECT_TIMEOUT_MS 5000
#define DEF_REQUEST_TIMEOUT_MS 10000
#define DEF_BACKOFF_BASE_MS 1000
#define DEF_BACKOFF_CAP_MS (300 * 1000)
#define DEF_MAX_INFLIGHT 8

/* ------------------------------------------------------------ pure part */

store_event_type_t webhook__coalesce(store_event_type_t older, store_event_type_t newer)
{
    if (newer == EV_DELETED)
        return EV_DELETED;
    if (older == EV_ADDED && newer == EV_MODIFIED)
        return EV_ADDED;
    return newer;
}

static void state_release(webhook__state_t *st)
{
    free(st->body);
    memset(st, 0, sizeof(*st));
}

void webhook__owe(webhook__slot_t *s, store_event_type_t type, uint64_t rv, const char *body,
                  size_t len)
{
    store_event_type_t t = s->owed.body ? webhook__coalesce(s->owed.type, type) : type;
    state_release(&s->owed);
    s->owed.body = d8_xstrndup(body, len);
    s->owed.len = len;
    s->owed.type = t;
    s->owed.rv = rv;
}

int webhook__take(webhook__slot_t *s)
{
    if (s->sending.body || !s->owed.body)
        return 0;
    s->sending = s->owed;
    memset(&s->owed, 0, sizeof(s->owed));
    return 1;
}

void webhook__delivered(webhook__slot_t *s)
{
    state_release(&s->sending);
    s->failures = 0;
}

void webhook__failed(webhook__slot_t *s)
{
    if (!s->sending.body)
        return;
    if (s->owed.body) {
        /* A newer state is owed: it replaces the failed one, but the
         * receiver never saw the failed one's event either. */
        s->owed.type = webhook__coalesce(s->sending.type, s->owed.type);
        state_release(&s->sending);
    } else {
        s->owed = s->sending;
        memset(&s->sending, 0, sizeof(s->sending));
    }
    s->failures++;
}

int webhook__idle(const webhook__slot_t *s)
{
    return !s->owed.body && !s->sending.body;
}

void webhook__slot_release(webhook__slot_t *s)
{
    state_release(&s->owed);
    state_release(&s->sending);
    s->failures = 0;
}

uint64_t webhook__backoff_ms(int failures, uint64_t base_ms, uint64_t cap_ms, double r)
{
    /* The receiver is promised no retry sooner than base (webhook.h), so
     * the first step, which d8_backoff_ms jitters down to base/2, is
     * floored. */
    uint64_t j = d8_backoff_ms(failures < 1 ? 1u : (unsigned)failures, base_ms, cap_ms, r);
    if (j < base_ms)
        j = base_ms;
    return j > cap_ms ? cap_ms : j;
}

int webhook_signature(const void *secret, size_t secret_len, const void *body, size_t body_len,
                      char out[WEBHOOK_SIGNATURE_LEN])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    static const unsigned char empty[1] = {0};
    out[0] = '\0';
    if (!HMAC(EVP_sha256(), secret_len ? secret : empty, (int)secret_len, body_len ? body : empty,
              body_len, mac, &maclen) ||
        maclen != 32)
        return D8_EIO;
    memcpy(out, "sha256=", 7);
    d8_hex(mac, maclen, out + 7);
    OPENSSL_cleanse(mac, sizeof(mac));
    return 0;
}

/* ------------------------------------------------------------ the webhook */

typedef struct wh_env {
    webhook__slot_t slot;
    char *id; /* owned; the map key */
    webhook_t *wh;
    d8_list_t ready; /* linked while in wh->ready */
    int in_ready;
    size_t heap_idx; /* in wh->backoff while backing off, else D8_HEAP_NONE */
    uint64_t not_before;
    CURL *easy; /* the attempt on the wire */
    struct curl_slist *hdrs;
    uint64_t sent_ms;
    int64_t retry_after_ms; /* of the last answer, -1 when none */
} wh_env_t;

struct webhook {
    uv_loop_t *loop;
    curluv_t *cu;
    int own_cu;
    store_t *store;
    store_watcher_t *watcher;
    char *url;
    char *host; /* for logs: never the path, query or user info */
    unsigned char *secret;
    size_t secret_len;
    uint64_t connect_timeout_ms;
    uint64_t request_timeout_ms;
    uint64_t backoff_base_ms;
    uint64_t backoff_cap_ms;
    size_t max_inflight;
    d8_map_t envs; /* id -> wh_env_t, only environments with work */
    d8_list_t ready;
    d8_heap_t backoff; /* wh_env_t *, by not_before */
    size_t ninflight;
    uv_timer_t timer;
    uint64_t timer_due; /* UINT64_MAX when idle */
    uint64_t rng;       /* d8_rand01 state: retry jitter */
    metric_family_t *m_deliveries;
    metric_family_t *m_pending;
    int closing;
};

static void pump_cb(uv_timer_t *t);

static void set_pending(webhook_t *wh)
{
    if (wh->m_pending)
        metrics_set(wh->m_pending, NULL, (double)wh->envs.count);
}

static void count_delivery(webhook_t *wh, const char *result)
{
    if (wh->m_deliveries) {
        const char *v[] = {result};
        metrics_add(wh->m_deliveries, v, 1);
    }
}

/* ---- the backoff heap (min-heap on not_before) */

static int not_before_less(const void *a, const void *b)
{
    return (*(wh_env_t *const *)a)->not_before < (*(wh_env_t *const *)b)->not_before;
}

static void heap_moved(void *slot, size_t idx)
{
    (*(wh_env_t **)slot)->heap_idx = idx;
}

static wh_env_t *first_backoff(const webhook_t *wh)
{
    return wh->backoff.count ? *(wh_env_t **)d8_heap_top(&wh->backoff) : NULL;
}

/* ---- scheduling */

static void kick(webhook_t *wh, uint64_t delay_ms)
{
    if (wh->closing)
        return;
    uint64_t due = d8_mono_ms() + delay_ms;
    if (due >= wh->timer_due)
        return;
    wh->timer_due = due;
    uv_timer_start(&wh->timer, pump_cb, delay_ms, 0);
}

static void make_ready(webhook_t *wh, wh_env_t *e)
{
    if (e->in_ready || e->heap_idx != D8_HEAP_NONE || e->easy)
        return;
    e->in_ready = 1;
    d8_list_push(&wh->ready, &e->ready);
    kick(wh, 0);
}

static void env_free(wh_env_t *e)
{
    webhook__slot_release(&e->slot);
    free(e->id);
    free(e);
}

/* Forgets an environment with nothing left to deliver. */
static void env_drop(webhook_t *wh, wh_env_t *e)
{
    d8_map_del(&wh->envs, e->id);
    env_free(e);
    set_pending(wh);
}

static void release_attempt(wh_env_t *e)
{
    if (e->easy) {
        curluv_remove(e->wh->cu, e->easy);
        curl_easy_cleanup(e->easy);
        e->easy = NULL;
    }
    curl_slist_free_all(e->hdrs);
    e->hdrs = NULL;
}

static void attempt_failed(webhook_t *wh, wh_env_t *e, long status, const char *error)
{
    const char *event = store_event_name(e->slot.sending.type);
    webhook__failed(&e->slot);
    uint64_t delay = webhook__backoff_ms(e->slot.failures, wh->backoff_base_ms, wh->backoff_cap_ms,
                                         d8_rand01(&wh->rng));
    if (e->retry_after_ms > 0 && (uint64_t)e->retry_after_ms > delay)
        delay = (uint64_t)e->retry_after_ms < wh->backoff_cap_ms ? (uint64_t)e->retry_after_ms
                                                                 : wh->backoff_cap_ms;
    e->not_before = d8_mono_ms() + delay;
    d8_heap_push(&wh->backoff, &e);
    /* Every failure of an unreachable endpoint would flood the log: warn
     * on the 1st, 2nd, 4th, 8th... failure of an environment. */
    int f = e->slot.failures;
    log_level_t lvl = (f & (f - 1)) == 0 ? LOG_WARN : LOG_DEBUG;
    LOG(lvl, "webhook delivery failed; will retry", LF_S("id", e->id), LF_S("event", event),
        LF_S("host", wh->host), LF_I("status", status), LF_S("error", error), LF_I("failures", f),
        LF_I("retry_in_ms", delay));
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return size * n; /* the answer's body is not used */
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    wh_env_t *e = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        e->retry_after_ms = -1;
    } else if (len > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
        /* Only delta-seconds: a date form is rare from webhook receivers,
         * and the backoff applies anyway. */
        int64_t v = 0;
        size_t i = 12, digits = 0;
        while (i < len && (data[i] == ' ' || data[i] == '\t'))
            i++;
        for (; i < len && data[i] >= '0' && data[i] <= '9' && digits < 9; i++, digits++)
            v = v * 10 + (data[i] - '0');
        if (digits > 0)
            e->retry_after_ms = v * 1000;
    }
    return len;
}

static void on_done(void *ud, CURL *easy, CURLcode res);

static int add_header(wh_env_t *e, const char *h)
{
    struct curl_slist *n = curl_slist_append(e->hdrs, h);
    if (!n)
        return -1;
    e->hdrs = n;
    return 0;
}

/* Puts the environment's owed state on the wire. */
static void start(webhook_t *wh, wh_env_t *e)
{
    if (!webhook__take(&e->slot)) {
        if (webhook__idle(&e->slot))
            env_drop(wh, e);
        return;
    }
    webhook__state_t *st = &e->slot.sending;
    if (!st->delivery[0])
        d8_uuid_v4(st->delivery);
    e->retry_after_ms = -1;
    char sig[WEBHOOK_SIGNATURE_LEN];
    if (webhook_signature(wh->secret, wh->secret_len, st->body, st->len, sig) < 0) {
        attempt_failed(wh, e, 0, "cannot compute the signature");
        return;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        attempt_failed(wh, e, 0, "cannot create a curl handle");
        return;
    }
    e->easy = c;
    char h[160];
    int bad = add_header(e, "Content-Type: application/json");
    bad |= add_header(e, "Expect:");
    snprintf(h, sizeof(h), "X-Dev8-Event: %s", store_event_name(st->type));
    bad |= add_header(e, h);
    snprintf(h, sizeof(h), "X-Dev8-Delivery: %s", st->delivery);
    bad |= add_header(e, h);
    snprintf(h, sizeof(h), "X-Dev8-Resource-Version: %llu", (unsigned long long)st->rv);
    bad |= add_header(e, h);
    snprintf(h, sizeof(h), "X-Dev8-Signature: %s", sig);
    bad |= add_header(e, h);
    curl_easy_setopt(c, CURLOPT_URL, wh->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)wh->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)wh->request_timeout_ms);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    /* Borrowed by curl: the body lives until the attempt is released. */
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, st->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, e);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dev8-agent/" D8_VERSION);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    OPENSSL_cleanse(sig, sizeof(sig));
    if (bad || curluv_add(wh->cu, c, on_done, e) < 0) {
        release_attempt(e);
        attempt_failed(wh, e, 0, "cannot start the request");
        return;
    }
    e->sent_ms = d8_mono_ms();
    wh->ninflight++;
}

/*
 * curluv's completion callback of an attempt: frees its handle and slot,
 * then a 2xx answer is a delivery (drop or requeue the environment) and
 * anything else a failure that backs off (attempt_failed).
 */
static void on_done(void *ud, CURL *easy, CURLcode res)
{
    wh_env_t *e = ud;
    webhook_t *wh = e->wh;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    release_attempt(e);
    wh->ninflight--;
    kick(wh, 0); /* a slot is free */
    if (res == CURLE_OK && status >= 200 && status < 300) {
        count_delivery(wh, "success");
        int failures = e->slot.failures;
        LOG(failures ? LOG_INFO : LOG_DEBUG, "webhook delivered", LF_S("id", e->id),
            LF_S("event", store_event_name(e->slot.sending.type)), LF_I("rv", e->slot.sending.rv),
            LF_S("delivery", e->slot.sending.delivery), LF_I("status", status),
            LF_I("duration_ms", d8_mono_ms() - e->sent_ms), LF_I("failures_before", failures));
        webhook__delivered(&e->slot);
        if (webhook__idle(&e->slot))
            env_drop(wh, e);
        else
            make_ready(wh, e);
        return;
    }
    if (res == CURLE_OK) {
        count_delivery(wh, "http_error");
        attempt_failed(wh, e, status, "");
    } else {
        count_delivery(wh, "transport_error");
        attempt_failed(wh, e, 0, curl_easy_strerror(res));
    }
}

/*
 * The scheduler, run by the one timer: moves environments whose backoff
 * ended to the ready list, starts ready ones while slots are free, and
 * arms the timer for the earliest remaining backoff.
 */
static void pump_cb(uv_timer_t *t)
{
    webhook_t *wh = t->data;
    wh->timer_due = UINT64_MAX;
    if (wh->closing)
        return;
    uint64_t now = d8_mono_ms();
    wh_env_t *e;
    while ((e = first_backoff(wh)) && e->not_before <= now) {
        d8_heap_pop(&wh->backoff, NULL);
        e->in_ready = 1;
        d8_list_push(&wh->ready, &e->ready);
    }
    while (wh->ninflight < wh->max_inflight && !d8_list_empty(&wh->ready)) {
        e = d8_container_of(wh->ready.next, wh_env_t, ready);
        d8_list_del(&e->ready);
        e->in_ready = 0;
        start(wh, e);
    }
    if ((e = first_backoff(wh))) {
        uint64_t nb = e->not_before;
        kick(wh, nb > now ? nb - now : 0);
    }
}

static void on_event(void *ud, const store_event_t *ev)
{
    webhook_t *wh = ud;
    if (wh->closing || !ev->id || !ev->json)
        return;
    wh_env_t *e = d8_map_get(&wh->envs, ev->id);
    if (!e) {
        e = d8_xcalloc(1, sizeof(*e));
        e->id = d8_xstrdup(ev->id);
        e->wh = wh;
        e->heap_idx = D8_HEAP_NONE;
        e->retry_after_ms = -1;
        d8_list_init(&e->ready);
        d8_map_put(&wh->envs, e->id, e);
        set_pending(wh);
    }
    webhook__owe(&e->slot, ev->type, ev->rv, ev->json, ev->json_len);
    /* In flight or backing off: the new state waits its turn. */
    make_ready(wh, e);
}

/* ------------------------------------------------------------ lifecycle */

/*
 * Checks that url is an http:// or https:// URL with a host and returns the
 * host in *host (owned by the caller), for logs that must not show the
 * path, query or user info. 0, or D8_EINVAL/D8_ENOMEM with err filled.
 */
static int url_host(const char *url, char **host, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL;
    int rc = D8_EINVAL;
    if (!u) {
        snprintf(err, errlen, "webhook: out of memory");
        return D8_ENOMEM;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !h[0]) {
        snprintf(err, errlen, "webhook: webhook.url is not a usable URL");
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(err, errlen, "webhook: webhook.url must start with http:// or https://");
        goto out;
    }
    *host = d8_xstrdup(h);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(h);
    curl_url_cleanup(u);
    return rc;
}

int webhook_new(const webhook_opts_t *o, webhook_t **out, char *err, size_t errlen)
{
    static const char *const result_label[] = {"result"};
    char *host = NULL;
    *out = NULL;
    if (!o || !o->loop || !o->store) {
        snprintf(err, errlen, "webhook: no loop or store");
        return D8_EINVAL;
    }
    if (!o->secret || o->secret_len == 0) {
        snprintf(err, errlen, "webhook: no signing secret: refusing to send unsigned deliveries");
        return D8_EINVAL;
    }
    if (!o->url || !o->url[0]) {
        snprintf(err, errlen, "webhook: no URL");
        return D8_EINVAL;
    }
    int rc = url_host(o->url, &host, err, errlen);
    if (rc < 0)
        return rc;

    webhook_t *wh = d8_xcalloc(1, sizeof(*wh));
    wh->loop = o->loop;
    wh->store = o->store;
    wh->url = d8_xstrdup(o->url);
    wh->host = host;
    wh->secret = d8_xmalloc(o->secret_len);
    memcpy(wh->secret, o->secret, o->secret_len);
    wh->secret_len = o->secret_len;
    wh->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEF_CONNECT_TIMEOUT_MS;
    wh->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : DEF_REQUEST_TIMEOUT_MS;
    wh->backoff_base_ms = o->backoff_base_ms ? o->backoff_base_ms : DEF_BACKOFF_BASE_MS;
    wh->backoff_cap_ms = o->backoff_cap_ms ? o->backoff_cap_ms : DEF_BACKOFF_CAP_MS;
    if (wh->backoff_cap_ms < wh->backoff_base_ms)
        wh->backoff_cap_ms = wh->backoff_base_ms;
    wh->max_inflight = o->max_inflight > 0 ? (size_t)o->max_inflight : DEF_MAX_INFLIGHT;
    d8_map_init(&wh->envs);
    d8_list_init(&wh->ready);
    d8_heap_init(&wh->backoff, sizeof(wh_env_t *), not_before_less, heap_moved);
    wh->timer_due = UINT64_MAX;
    wh->rng = d8_rand_seed();
    if (o->cu) {
        wh->cu = o->cu;
    } else {
        rc = curluv_new(o->loop, &wh->cu);
        if (rc < 0) {
            snprintf(err, errlen, "webhook: cannot set up libcurl");
            OPENSSL_cleanse(wh->secret, wh->secret_len);
            free(wh->secret);
            free(wh->url);
            free(wh->host);
            free(wh);
            return rc;
        }
        wh->own_cu = 1;
    }
    uv_timer_init(o->loop, &wh->timer);
    wh->timer.data = wh;
    if (o->metrics) {
        wh->m_deliveries = metrics_counter(
            o->metrics, "dev8_webhook_deliveries_total",
            "Webhook delivery attempts by result (success: a 2xx answer; http_error: "
            "another status; transport_error: no answer, e.g. refused or timed out).",
            1, result_label);
        wh->m_pending =
            metrics_gauge(o->metrics, "dev8_webhook_pending",
                          "Environments with a state not yet delivered to the webhook.", 0, NULL);
        static const char *const results[] = {"success", "http_error", "transport_error"};
        for (size_t i = 0; i < 3; i++)
            metrics_add(wh->m_deliveries, &results[i], 0);
        set_pending(wh);
    }
    wh->watcher = store_watch(o->store, on_event, wh);
    LOG(LOG_INFO, "webhook enabled", LF_S("host", wh->host),
        LF_I("max_inflight", wh->max_inflight));
    *out = wh;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void webhook_free(webhook_t *wh)
{
    if (!wh || wh->closing)
        return;
    wh->closing = 1;
    store_unwatch(wh->store, wh->watcher);
    size_t dropped = wh->envs.count;
    /* Collect first: the map's keys live inside the values. */
    wh_env_t **all = d8_xcalloc(dropped ? dropped : 1, sizeof(*all));
    size_t n = 0, it = 0;
    wh_env_t *e;
    while ((e = d8_map_next(&wh->envs, &it)) != NULL)
        all[n++] = e;
    d8_map_release(&wh->envs);
    for (size_t i = 0; i < n; i++) {
        release_attempt(all[i]);
        env_free(all[i]);
    }
    free(all);
    d8_heap_release(&wh->backoff);
    if (wh->m_pending)
        metrics_set(wh->m_pending, NULL, 0);
    if (wh->own_cu)
        curluv_free(wh->cu, NULL, NULL);
    wh->cu = NULL;
    if (dropped)
        LOG(LOG_WARN, "webhook stopped with undelivered states", LF_I("environments", dropped));
    OPENSSL_cleanse(wh->secret, wh->secret_len);
    free(wh->secret);
    wh->secret = NULL;
    free(wh->url);
    free(wh->host);
    wh->url = wh->host = NULL;
    uv_timer_stop(&wh->timer);
    uv_close((uv_handle_t *)&wh->timer, timer_closed);
}

size_t webhook_pending(const webhook_t *wh)
{
    return wh ? wh->envs.count : 0;
}
