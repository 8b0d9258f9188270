/* Unit tests of pkg/webhook: the signature against known HMAC-SHA256
 * vectors, the pure coalescing bookkeeping and backoff, and the webhook on
 * one loop against a pkg/http receiver on the same loop (coalescing,
 * order, retries, loop-safe teardown, refusing to run without a secret). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "http/http.h"
#include "log/log.h"
#include "store/store.h"
#include "webhook/webhook.h"
#include "webhook/webhook_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ signature */

static void test_signature_vectors(void **state)
{
    (void)state;
    char sig[WEBHOOK_SIGNATURE_LEN];
    /* RFC 4231 test case 2. */
    assert_int_equal(webhook_signature("Jefe", 4, "what do ya want for nothing?", 28, sig), 0);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 1: key 20 x 0x0b, "Hi There". */
    unsigned char key[20];
    memset(key, 0x0b, sizeof(key));
    assert_int_equal(webhook_signature(key, sizeof(key), "Hi There", 8, sig), 0);
    assert_string_equal(sig,
                        "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* The form GitHub documents for X-Hub-Signature-256. */
    const char *gh = "It's a Secret to Everybody";
    assert_int_equal(webhook_signature(gh, strlen(gh), "Hello, World!", 13, sig), 0);
    assert_string_equal(sig,
                        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    assert_int_equal(strlen(sig), WEBHOOK_SIGNATURE_LEN - 1);
}

/* ------------------------------------------------------------ pure bookkeeping */

static void test_coalesce_table(void **state)
{
    (void)state;
    assert_int_equal(webhook__coalesce(EV_ADDED, EV_MODIFIED), EV_ADDED);
    assert_int_equal(webhook__coalesce(EV_ADDED, EV_DELETED), EV_DELETED);
    assert_int_equal(webhook__coalesce(EV_MODIFIED, EV_MODIFIED), EV_MODIFIED);
    assert_int_equal(webhook__coalesce(EV_MODIFIED, EV_DELETED), EV_DELETED);
    assert_int_equal(webhook__coalesce(EV_DELETED, EV_ADDED), EV_ADDED);
    assert_int_equal(webhook__coalesce(EV_ADDED, EV_ADDED), EV_ADDED);
}

static void test_slot_coalesces_and_orders(void **state)
{
    (void)state;
    webhook__slot_t s;
    memset(&s, 0, sizeof(s));
    assert_true(webhook__idle(&s));
    assert_int_equal(webhook__take(&s), 0);

    /* Three states before anything is sent: one is owed, the latest, and
     * it is still announced as ADDED. */
    webhook__owe(&s, EV_ADDED, 1, "{\"v\":1}", 7);
    webhook__owe(&s, EV_MODIFIED, 2, "{\"v\":2}", 7);
    webhook__owe(&s, EV_MODIFIED, 3, "{\"v\":3}", 7);
    assert_false(webhook__idle(&s));
    assert_int_equal(webhook__take(&s), 1);
    assert_string_equal(s.sending.body, "{\"v\":3}");
    assert_int_equal(s.sending.type, EV_ADDED);
    assert_int_equal(s.sending.rv, 3);
    assert_null(s.owed.body);

    /* While one is on the wire, nothing else is taken (one in flight);
     * newer states replace each other. */
    webhook__owe(&s, EV_MODIFIED, 4, "{\"v\":4}", 7);
    webhook__owe(&s, EV_MODIFIED, 5, "{\"v\":5}", 7);
    assert_int_equal(webhook__take(&s), 0);
    webhook__delivered(&s);
    assert_null(s.sending.body);
    assert_int_equal(webhook__take(&s), 1);
    assert_string_equal(s.sending.body, "{\"v\":5}");
    assert_int_equal(s.sending.type, EV_MODIFIED);
    assert_int_equal(s.sending.rv, 5);
    webhook__delivered(&s);
    assert_true(webhook__idle(&s));

    /* DELETED wins over anything owed. */
    webhook__owe(&s, EV_MODIFIED, 6, "{\"v\":6}", 7);
    webhook__owe(&s, EV_DELETED, 7, "{\"v\":7}", 7);
    assert_int_equal(webhook__take(&s), 1);
    assert_int_equal(s.sending.type, EV_DELETED);
    webhook__delivered(&s);
    webhook__slot_release(&s);
}

static void test_slot_failure(void **state)
{
    (void)state;
    webhook__slot_t s;
    memset(&s, 0, sizeof(s));
    webhook__owe(&s, EV_ADDED, 1, "{\"v\":1}", 7);
    assert_int_equal(webhook__take(&s), 1);
    snprintf(s.sending.delivery, sizeof(s.sending.delivery), "d-1");

    /* Nothing newer: the same body, with the same delivery id, is owed
     * again. */
    webhook__failed(&s);
    assert_int_equal(s.failures, 1);
    assert_null(s.sending.body);
    assert_string_equal(s.owed.body, "{\"v\":1}");
    assert_string_equal(s.owed.delivery, "d-1");
    assert_int_equal(webhook__take(&s), 1);
    assert_string_equal(s.sending.delivery, "d-1");

    /* A newer state arrived while the retry was on the wire: after the
     * failure the newer one is owed (new delivery id), and since the
     * ADDED never got through, it is still announced as ADDED. */
    webhook__owe(&s, EV_MODIFIED, 2, "{\"v\":2}", 7);
    webhook__failed(&s);
    assert_int_equal(s.failures, 2);
    assert_null(s.sending.body);
    assert_string_equal(s.owed.body, "{\"v\":2}");
    assert_int_equal(s.owed.type, EV_ADDED);
    assert_int_equal(s.owed.rv, 2);
    assert_string_equal(s.owed.delivery, "");
    assert_int_equal(webhook__take(&s), 1);
    webhook__delivered(&s);
    assert_int_equal(s.failures, 0);
    assert_true(webhook__idle(&s));
    webhook__failed(&s); /* nothing sending: no-op */
    assert_int_equal(s.failures, 0);
    webhook__slot_release(&s);
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    const uint64_t base = 1000, cap = 300000;
    assert_int_equal(webhook__backoff_ms(1, base, cap, 0.0), 1000);
    assert_int_equal(webhook__backoff_ms(0, base, cap, 0.0), 1000);
    uint64_t prev_hi = 0;
    for (int f = 1; f <= 40; f++) {
        uint64_t lo = webhook__backoff_ms(f, base, cap, 0.0);
        uint64_t hi = webhook__backoff_ms(f, base, cap, 0.999999);
        assert_true(lo >= base && hi <= cap && lo <= hi);
        assert_true(hi >= prev_hi);
        prev_hi = hi;
        if (f >= 2 && f <= 8) {
            /* Jitter in the upper half of base * 2^(f-1). */
            uint64_t d = base << (f - 1);
            assert_true(lo >= d / 2 && hi <= d);
        }
    }
    assert_true(webhook__backoff_ms(40, base, cap, 0.999999) >= cap - 1);
    assert_true(webhook__backoff_ms(40, base, cap, 0.0) >= cap / 2);
}

/* ------------------------------------------------------------ on a loop */

#define SECRET "unit-webhook-secret-S3cr3t"
#define MAX_SEEN 256

typedef struct seen {
    char id[64];
    char event[16];
    unsigned long long rv;
    char delivery[40];
    char *body;
    int sig_ok;
} seen_t;

typedef struct rx {
    http_server_t *srv;
    int fail_next; /* answer 500 to this many requests */
    int hold;      /* never answer (keep the exchange open) */
    http_exchange_t *held;
    seen_t seen[MAX_SEEN];
    size_t nseen;
    int bad; /* a request that was not a signed JSON POST */
} rx_t;

static void held_closed(void *ud)
{
    rx_t *rx = ud;
    rx->held = NULL;
}

static void rx_handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    rx_t *rx = ud;
    const char *ct = http_request_header(req, "content-type");
    const char *ev = http_request_header(req, "x-dev8-event");
    const char *dl = http_request_header(req, "x-dev8-delivery");
    const char *rv = http_request_header(req, "x-dev8-resource-version");
    const char *sg = http_request_header(req, "x-dev8-signature");
    if (strcmp(req->method, "POST") != 0 || !ct || strcmp(ct, "application/json") != 0 || !ev ||
        !dl || strlen(dl) != 36 || !rv || !sg)
        rx->bad++;
    if (rx->nseen < MAX_SEEN) {
        seen_t *s = &rx->seen[rx->nseen++];
        cJSON *j = cJSON_ParseWithLength(req->body, req->body_len);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        snprintf(s->id, sizeof(s->id), "%s", cJSON_IsString(id) ? id->valuestring : "?");
        cJSON_Delete(j);
        snprintf(s->event, sizeof(s->event), "%s", ev ? ev : "");
        snprintf(s->delivery, sizeof(s->delivery), "%s", dl ? dl : "");
        s->rv = rv ? strtoull(rv, NULL, 10) : 0;
        s->body = d8_xstrndup(req->body, req->body_len);
        char want[WEBHOOK_SIGNATURE_LEN];
        webhook_signature(SECRET, strlen(SECRET), req->body, req->body_len, want);
        s->sig_ok = sg && strcmp(sg, want) == 0;
    }
    if (rx->hold) {
        rx->held = ex;
        http_exchange_on_close(ex, held_closed, rx);
        return;
    }
    if (rx->fail_next > 0) {
        rx->fail_next--;
        http_respond(ex, 500, NULL, 0, "text/plain", "no", 2);
        return;
    }
    http_respond(ex, 204, NULL, 0, NULL, NULL, 0);
}

typedef struct fx {
    uv_loop_t loop;
    store_t *st;
    metrics_t *m;
    webhook_t *wh;
    rx_t rx;
    char url[96];
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    f->st = store_new(64);
    f->m = metrics_new();
    http_server_opts_t so = {.host = "127.0.0.1", .port = 0, .handler = rx_handler, .ud = &f->rx};
    if (http_server_new(&f->loop, &so, &f->rx.srv) != 0)
        return -1;
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/hooks/dev8?x=1",
             http_server_port(f->rx.srv));
    webhook_opts_t o = {.loop = &f->loop,
                        .store = f->st,
                        .metrics = f->m,
                        .url = f->url,
                        .secret = SECRET,
                        .secret_len = strlen(SECRET),
                        .backoff_base_ms = 20,
                        .backoff_cap_ms = 200};
    char err[256];
    if (webhook_new(&o, &f->wh, err, sizeof(err)) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    webhook_free(f->wh);
    http_server_free(f->rx.srv, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    store_free(f->st);
    metrics_free(f->m);
    for (size_t i = 0; i < f->rx.nseen; i++)
        free(f->rx.seen[i].body);
    free(f);
    return rc == 0 ? 0 : -1;
}

typedef struct waiter {
    uv_timer_t t;
    int (*pred)(fx_t *f);
    fx_t *f;
    uint64_t deadline;
    int ok;
} waiter_t;

static void wait_tick(uv_timer_t *t)
{
    waiter_t *w = t->data;
    if (w->pred(w->f)) {
        w->ok = 1;
        uv_stop(t->loop);
    } else if (d8_mono_ms() > w->deadline) {
        uv_stop(t->loop);
    }
}

/* Runs the loop until pred holds (1) or timeout_ms passes (0). */
static int run_until(fx_t *f, int (*pred)(fx_t *f), int timeout_ms)
{
    waiter_t w = {.pred = pred, .f = f, .deadline = d8_mono_ms() + (uint64_t)timeout_ms};
    uv_timer_init(&f->loop, &w.t);
    w.t.data = &w;
    uv_timer_start(&w.t, wait_tick, 2, 2);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&w.t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return w.ok;
}

static int nothing_pending(fx_t *f)
{
    return webhook_pending(f->wh) == 0;
}

static env_spec_t mkspec(int cpu_halves)
{
    env_spec_t s;
    memset(&s, 0, sizeof(s));
    s.user_id = d8_xstrdup("u1");
    s.name = d8_xstrdup("ws");
    s.cloud_region = d8_xstrdup("eastus");
    s.base_image = d8_xstrdup("node");
    s.cpu_halves = cpu_halves;
    s.memory_halves = 8;
    s.storage_gb = 20;
    s.power_set = s.secret_env_set = 1;
    return s;
}

static void put(fx_t *f, const char *id, int cpu)
{
    env_spec_t s = mkspec(cpu);
    store_put_result_t r;
    assert_int_equal(store_put(f->st, id, &s, -1, 0, &r, NULL), 0);
    spec_release(&s);
}

static const seen_t *last_for(const fx_t *f, const char *id)
{
    const seen_t *l = NULL;
    for (size_t i = 0; i < f->rx.nseen; i++)
        if (strcmp(f->rx.seen[i].id, id) == 0)
            l = &f->rx.seen[i];
    return l;
}

static size_t count_for(const fx_t *f, const char *id)
{
    size_t n = 0;
    for (size_t i = 0; i < f->rx.nseen; i++)
        n += strcmp(f->rx.seen[i].id, id) == 0;
    return n;
}

static void assert_latest(fx_t *f, const char *id)
{
    const env_obj_t *o = store_get(f->st, id);
    assert_non_null(o);
    size_t len;
    const char *json = store_obj_json(f->st, o, &len);
    const seen_t *l = last_for(f, id);
    assert_non_null(l);
    assert_string_equal(l->body, json);
}

/* Changes within one loop turn cost one request, announced as ADDED and
 * carrying the latest object; later changes arrive in order. */
static void test_loop_coalesces_in_order(void **state)
{
    fx_t *f = *state;
    put(f, "env-a", 2);
    put(f, "env-a", 3);
    put(f, "env-a", 4);
    put(f, "env-b", 2);
    assert_int_equal(webhook_pending(f->wh), 2);
    assert_true(run_until(f, nothing_pending, 5000));
    assert_int_equal(f->rx.bad, 0);
    assert_int_equal(count_for(f, "env-a"), 1);
    assert_int_equal(count_for(f, "env-b"), 1);
    assert_string_equal(last_for(f, "env-a")->event, "ADDED");
    assert_latest(f, "env-a");
    assert_latest(f, "env-b");

    for (int i = 0; i < 5; i++) {
        put(f, "env-a", 5 + i);
        assert_true(run_until(f, nothing_pending, 5000));
    }
    store_delete(f->st, "env-b");
    assert_true(run_until(f, nothing_pending, 5000));
    assert_latest(f, "env-a");
    assert_latest(f, "env-b");
    assert_string_equal(last_for(f, "env-b")->event, "MODIFIED");
    assert_int_equal(store_remove(f->st, "env-b"), 0);
    assert_true(run_until(f, nothing_pending, 5000));
    assert_string_equal(last_for(f, "env-b")->event, "DELETED");

    /* Every delivery signed; per environment the resource versions only
     * grow. */
    unsigned long long last_a = 0, last_b = 0;
    for (size_t i = 0; i < f->rx.nseen; i++) {
        const seen_t *s = &f->rx.seen[i];
        assert_true(s->sig_ok);
        unsigned long long *last = strcmp(s->id, "env-a") == 0 ? &last_a : &last_b;
        assert_true(s->rv > *last);
        *last = s->rv;
    }
    assert_int_equal(count_for(f, "env-a"), 6);

    d8_buf_t out;
    d8_buf_init(&out);
    metrics_render(f->m, &out);
    assert_non_null(strstr(out.data, "dev8_webhook_deliveries_total{result=\"success\"} 9\n"));
    assert_non_null(strstr(out.data, "dev8_webhook_pending 0\n"));
    assert_null(strstr(out.data, SECRET));
    d8_buf_release(&out);
}

/* 5xx answers are retried with backoff; states that arrive meanwhile
 * replace the owed one, and the last delivery is the latest state. */
static void test_loop_retries_until_delivered(void **state)
{
    fx_t *f = *state;
    f->rx.fail_next = 3;
    put(f, "env-r", 2);
    assert_true(run_until(f, nothing_pending, 5000));
    assert_int_equal(count_for(f, "env-r"), 4);
    /* The same body is retried under the same delivery id. */
    for (size_t i = 1; i < 4; i++) {
        assert_string_equal(f->rx.seen[i].delivery, f->rx.seen[0].delivery);
        assert_string_equal(f->rx.seen[i].event, "ADDED");
    }
    assert_latest(f, "env-r");

    f->rx.fail_next = 2;
    put(f, "env-r", 3);
    /* Let the first attempt fail, then change the object again. */
    size_t before = f->rx.nseen;
    for (int i = 0; i < 200 && f->rx.nseen == before; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    put(f, "env-r", 4);
    put(f, "env-r", 5);
    assert_true(run_until(f, nothing_pending, 5000));
    assert_latest(f, "env-r");
    assert_string_equal(last_for(f, "env-r")->event, "MODIFIED");

    d8_buf_t out;
    d8_buf_init(&out);
    metrics_render(f->m, &out);
    assert_non_null(strstr(out.data, "dev8_webhook_deliveries_total{result=\"http_error\"} 5\n"));
    d8_buf_release(&out);
}

/* Freed with a delivery on the wire and another owed: nothing leaks, the
 * loop closes (checked by the fixture's teardown and ASan). */
static void test_loop_free_in_flight(void **state)
{
    fx_t *f = *state;
    f->rx.hold = 1;
    put(f, "env-h", 2);
    for (int i = 0; i < 500 && !f->rx.held; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_non_null(f->rx.held);
    put(f, "env-h", 3);
    put(f, "env-i", 2);
    assert_int_equal(webhook_pending(f->wh), 2);
    webhook_free(f->wh);
    f->wh = NULL;
}

/* An endpoint that refuses connections: transport errors, retried. */
static void test_loop_unreachable(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *st = store_new(8);
    metrics_t *m = metrics_new();
    webhook_t *wh = NULL;
    char err[256];
    webhook_opts_t o = {.loop = &loop,
                        .store = st,
                        .metrics = m,
                        .url = "http://127.0.0.1:1/x",
                        .secret = SECRET,
                        .secret_len = strlen(SECRET),
                        .backoff_base_ms = 10,
                        .backoff_cap_ms = 20};
    assert_int_equal(webhook_new(&o, &wh, err, sizeof(err)), 0);
    env_spec_t s = mkspec(2);
    store_put_result_t r;
    assert_int_equal(store_put(st, "env-u", &s, -1, 0, &r, NULL), 0);
    spec_release(&s);
    d8_buf_t out;
    d8_buf_init(&out);
    uint64_t deadline = d8_mono_ms() + 5000;
    int seen = 0;
    while (!seen && d8_mono_ms() < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
        d8_buf_reset(&out);
        metrics_render(m, &out);
        seen = strstr(out.data, "dev8_webhook_deliveries_total{result=\"transport_error\"} 3\n") !=
               NULL;
    }
    assert_true(seen);
    assert_non_null(strstr(out.data, "dev8_webhook_pending 1\n"));
    d8_buf_release(&out);
    assert_int_equal(webhook_pending(wh), 1);
    webhook_free(wh);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_free(st);
    metrics_free(m);
}

/* ------------------------------------------------------------ set-up errors */

/* Reading the secret from the environment is the agent's wiring (tested
 * in test/unit/agent); here, webhook_new's own refusals. */
static void test_refuses_without_secret(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    store_t *st = store_new(8);
    char url[] = "http://127.0.0.1:9/hook";
    char err[256] = "";
    webhook_t *wh = (webhook_t *)st; /* must be reset to NULL */

    webhook_opts_t o = {
        .loop = &loop, .store = st, .url = "ftp://x/y", .secret = "k", .secret_len = 1};
    assert_int_equal(webhook_new(&o, &wh, err, sizeof(err)), D8_EINVAL);
    assert_null(wh);
    o.url = "not a url";
    assert_int_equal(webhook_new(&o, &wh, err, sizeof(err)), D8_EINVAL);
    o.url = url;
    o.secret_len = 0;
    assert_int_equal(webhook_new(&o, &wh, err, sizeof(err)), D8_EINVAL);
    o.secret = NULL;
    o.secret_len = 1;
    assert_int_equal(webhook_new(&o, &wh, err, sizeof(err)), D8_EINVAL);
    assert_non_null(strstr(err, "secret"));

    o.secret = "the-secret-value";
    o.secret_len = strlen(o.secret);
    assert_int_equal(webhook_new(&o, &wh, err, sizeof(err)), 0);
    assert_non_null(wh);
    webhook_free(wh);
    webhook_free(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_free(st);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_vectors),
        cmocka_unit_test(test_coalesce_table),
        cmocka_unit_test(test_slot_coalesces_and_orders),
        cmocka_unit_test(test_slot_failure),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test_setup_teardown(test_loop_coalesces_in_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_loop_retries_until_delivered, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_loop_free_in_flight, fx_setup, fx_teardown),
        cmocka_unit_test(test_loop_unreachable),
        cmocka_unit_test(test_refuses_without_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
