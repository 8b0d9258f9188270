/* Unit tests of pkg/curluv against a pkg/http server on the same loop:
 * concurrent transfers, removal without a callback, re-adding a handle
 * from its own callback, and freeing the driver from inside a callback
 * while other transfers are on the wire (loop-safe teardown). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "curluv/curluv.h"
#include "http/http.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HELD 64

typedef struct fx {
    uv_loop_t loop;
    http_server_t *srv;
    curluv_t *cu;
    int port;
    http_exchange_t *held[MAX_HELD]; /* /hold requests, never answered */
    size_t nheld;
    int closed_calls;
} fx_t;

static void held_gone(void *ud)
{
    http_exchange_t **slot = ud;
    *slot = NULL;
}

static void handler(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    fx_t *f = ud;
    if (strcmp(req->path, "/hold") == 0 && f->nheld < MAX_HELD) {
        f->held[f->nheld] = ex;
        http_exchange_on_close(ex, held_gone, &f->held[f->nheld]);
        f->nheld++;
        return;
    }
    http_respond(ex, 200, NULL, 0, "text/plain", "ok", 2);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    http_server_opts_t so = {.host = "127.0.0.1", .handler = handler, .ud = f};
    if (http_server_new(&f->loop, &so, &f->srv) != 0)
        return -1;
    f->port = http_server_port(f->srv);
    if (curluv_new(&f->loop, &f->cu) != 0)
        return -1;
    *state = f;
    return 0;
}

static void closed(void *arg)
{
    fx_t *f = arg;
    f->closed_calls++;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    curluv_free(f->cu, NULL, NULL);
    if (f->srv)
        http_server_free(f->srv, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1;
}

static size_t discard(char *d, size_t s, size_t n, void *ud)
{
    (void)d;
    (void)ud;
    return s * n;
}

static CURL *mk(fx_t *f, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->port, path);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    return e;
}

typedef struct tr {
    fx_t *f;
    CURL *e;
    int calls;
    CURLcode res;
    long status;
    int readd;      /* re-add the handle this many more times */
    int free_cu;    /* curluv_free from inside the callback */
    int add_rc;     /* curluv_add's answer after that free */
    int multi_gone; /* curluv_multi answered NULL after that free */
} tr_t;

static void on_done(void *ud, CURL *e, CURLcode res)
{
    tr_t *t = ud;
    assert_ptr_equal(e, t->e);
    t->calls++;
    t->res = res;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t->status);
    /* Already out of the multi: removing is a no-op. */
    curluv_remove(t->f->cu, e);
    if (t->readd > 0) {
        t->readd--;
        assert_int_equal(curluv_add(t->f->cu, e, on_done, t), 0);
        return;
    }
    if (t->free_cu) {
        curluv_free(t->f->cu, closed, t->f);
        curluv_free(t->f->cu, closed, t->f); /* ignored */
        t->add_rc = curluv_add(t->f->cu, e, on_done, t);
        t->multi_gone = curluv_multi(t->f->cu) == NULL;
    }
}

static void run_until_idle(fx_t *f, size_t (*left)(fx_t *), int timeout_ms)
{
    uint64_t end = d8_mono_ms() + (uint64_t)timeout_ms;
    while (left(f) > 0 && d8_mono_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static size_t active(fx_t *f)
{
    return curluv_active(f->cu);
}

static void test_concurrent_and_readd(void **state)
{
    fx_t *f = *state;
    enum { N = 40 };
    tr_t t[N];
    memset(t, 0, sizeof(t));
    assert_non_null(curluv_multi(f->cu));
    for (int i = 0; i < N; i++) {
        t[i].f = f;
        t[i].e = mk(f, "/ok");
        t[i].readd = i % 4 == 0 ? 2 : 0;
        assert_int_equal(curluv_add(f->cu, t[i].e, on_done, &t[i]), 0);
    }
    /* Added twice, or without a callback: refused. */
    assert_int_equal(curluv_add(f->cu, t[0].e, on_done, &t[0]), D8_EINVAL);
    assert_int_equal(curluv_add(f->cu, NULL, on_done, &t[0]), D8_EINVAL);
    CURL *x = mk(f, "/ok");
    assert_int_equal(curluv_add(f->cu, x, NULL, NULL), D8_EINVAL);
    curl_easy_cleanup(x);
    assert_int_equal(curluv_active(f->cu), N);
    run_until_idle(f, active, 10000);
    assert_int_equal(curluv_active(f->cu), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].calls, i % 4 == 0 ? 3 : 1);
        assert_int_equal(t[i].res, CURLE_OK);
        assert_int_equal(t[i].status, 200);
        curl_easy_cleanup(t[i].e);
    }
}

static void test_remove_without_callback(void **state)
{
    fx_t *f = *state;
    tr_t t = {.f = f};
    t.e = mk(f, "/hold");
    assert_int_equal(curluv_add(f->cu, t.e, on_done, &t), 0);
    for (int i = 0; i < 500 && f->nheld == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->nheld, 1);
    curluv_remove(f->cu, t.e);
    curluv_remove(f->cu, t.e); /* no longer added: nothing happens */
    assert_int_equal(curluv_active(f->cu), 0);
    /* The handle is the caller's again and can run once more. */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", f->port);
    curl_easy_setopt(t.e, CURLOPT_URL, url);
    assert_int_equal(curluv_add(f->cu, t.e, on_done, &t), 0);
    run_until_idle(f, active, 10000);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, 200);
    curl_easy_cleanup(t.e);
}

/* Freed from inside a callback with transfers still on the wire: the
 * others never complete, curluv_add is refused, the loop closes. */
static void test_free_inside_callback(void **state)
{
    fx_t *f = *state;
    tr_t hold[3], quick = {.f = f, .free_cu = 1, .add_rc = 1};
    memset(hold, 0, sizeof(hold));
    for (int i = 0; i < 3; i++) {
        hold[i].f = f;
        hold[i].e = mk(f, "/hold");
        assert_int_equal(curluv_add(f->cu, hold[i].e, on_done, &hold[i]), 0);
    }
    for (int i = 0; i < 500 && f->nheld < 3; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->nheld, 3);
    quick.e = mk(f, "/ok");
    assert_int_equal(curluv_add(f->cu, quick.e, on_done, &quick), 0);
    for (int i = 0; i < 500 && quick.calls == 0; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(quick.calls, 1);
    assert_int_equal(quick.add_rc, D8_ECANCELED);
    assert_true(quick.multi_gone);
    /* Let the teardown finish; the held requests see their peer go. */
    http_server_free(f->srv, NULL, NULL);
    f->srv = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed_calls, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hold[i].calls, 0);
        curl_easy_cleanup(hold[i].e);
    }
    curl_easy_cleanup(quick.e);
    f->cu = NULL;
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    curluv_free(NULL, NULL, NULL);
    curluv_remove(NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_and_readd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_without_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
