/* Unit tests of pkg/workqueue on a real libuv loop: deduplication,
 * single-flight keys, max_active, FIFO order, delayed adds, failure
 * backoff, requeue delays, pause, stats and loop-safe teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "workqueue/workqueue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAXLOG 256
#define MAXACTIVE 64
#define KEYLEN 32

typedef struct fx fx_t;

/* One test's loop, queue and a record of every process callback. */
struct fx {
    uv_loop_t loop;
    uv_timer_t guard; /* bounds every wait */
    int guard_fired;
    int stop_at; /* run_until: stop the loop at this count */
    workqueue_t *q;
    int in_api;               /* set while a workqueue_* call runs */
    int nproc;                /* process callbacks so far */
    char log[MAXLOG][KEYLEN]; /* keys in processing order */
    uint64_t at_ms[MAXLOG];   /* loop time of each callback */
    double waited_s[MAXLOG];  /* what each callback was told it waited */
    char active[MAXACTIVE][KEYLEN];
    int nactive, max_active_seen;
    void (*on_process)(fx_t *fx, const char *key);
};

static void process_cb(void *ud, const char *key, double waited_s)
{
    fx_t *fx = ud;
    assert_true(waited_s >= 0.0);
    /* The contract: never from inside add/add_after/done. */
    assert_false(fx->in_api);
    assert_true(fx->nproc < MAXLOG);
    assert_true(strlen(key) < KEYLEN);
    for (int i = 0; i < fx->nactive; i++)
        assert_string_not_equal(fx->active[i], key); /* single flight */
    assert_true(fx->nactive < MAXACTIVE);
    snprintf(fx->active[fx->nactive++], KEYLEN, "%s", key);
    if (fx->nactive > fx->max_active_seen)
        fx->max_active_seen = fx->nactive;
    snprintf(fx->log[fx->nproc], KEYLEN, "%s", key);
    fx->at_ms[fx->nproc] = uv_now(&fx->loop);
    fx->waited_s[fx->nproc] = waited_s;
    fx->nproc++;
    if (fx->stop_at && fx->nproc >= fx->stop_at)
        uv_stop(&fx->loop);
    if (fx->on_process)
        fx->on_process(fx, key);
}

static int setup(void **state)
{
    fx_t *fx = d8_xcalloc(1, sizeof(*fx));
    if (uv_loop_init(&fx->loop) != 0)
        return -1;
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    workqueue_free(fx->q);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    /* Let the close callbacks run: they free the queue. */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static void start(fx_t *fx, size_t max_active, uint64_t base_ms, uint64_t cap_ms)
{
    workqueue_opts_t o;
    memset(&o, 0, sizeof(o));
    o.max_active = max_active;
    o.backoff_base_ms = base_ms;
    o.backoff_cap_ms = cap_ms;
    o.process = process_cb;
    o.ud = fx;
    fx->q = workqueue_new(&fx->loop, &o);
    assert_non_null(fx->q);
}

static void add(fx_t *fx, const char *key)
{
    fx->in_api = 1;
    workqueue_add(fx->q, key);
    fx->in_api = 0;
}

static void add_after(fx_t *fx, const char *key, uint64_t ms)
{
    fx->in_api = 1;
    workqueue_add_after(fx->q, key, ms);
    fx->in_api = 0;
}

static uint64_t done(fx_t *fx, const char *key, int err, uint64_t requeue_ms)
{
    char copy[KEYLEN];
    snprintf(copy, sizeof(copy), "%s", key); /* key may be the queue's own */
    for (int i = 0; i < fx->nactive; i++) {
        if (strcmp(fx->active[i], copy) == 0) {
            memmove(fx->active[i], fx->active[i + 1], (size_t)(fx->nactive - i - 1) * KEYLEN);
            fx->nactive--;
            break;
        }
    }
    fx->in_api = 1;
    uint64_t d = workqueue_done(fx->q, copy, err, requeue_ms);
    fx->in_api = 0;
    return d;
}

/* Runs whatever is due now without blocking. */
static void pump(fx_t *fx)
{
    for (int i = 0; i < 4; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
}

static void guard_cb(uv_timer_t *t)
{
    fx_t *fx = t->data;
    fx->guard_fired = 1;
    uv_stop(t->loop);
}

/* Runs the loop for about ms milliseconds. */
static void run_for(fx_t *fx, uint64_t ms)
{
    fx->guard_fired = 0;
    uv_timer_start(&fx->guard, guard_cb, ms, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&fx->guard);
}

/* Runs the loop one iteration at a time until n callbacks have happened
 * or max_ms have passed. The n-th callback stops the loop, so that a
 * later timer does not fire in the same iteration. */
static void run_until(fx_t *fx, int n, uint64_t max_ms)
{
    fx->guard_fired = 0;
    fx->stop_at = n;
    uv_timer_start(&fx->guard, guard_cb, max_ms, 0);
    while (fx->nproc < n && !fx->guard_fired)
        uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    fx->stop_at = 0;
    assert_int_equal(fx->nproc, n);
}

static workqueue_stats_t stats(fx_t *fx)
{
    workqueue_stats_t s;
    memset(&s, 0xa5, sizeof(s));
    workqueue_stats(fx->q, &s);
    return s;
}

/* ---- tests ------------------------------------------------------------ */

static void test_dedup_before_dispatch(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    add(fx, "a");
    add(fx, "a");
    add(fx, "a");
    assert_int_equal(fx->nproc, 0);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.depth, 1);
    assert_int_equal(s.adds, 1);
    pump(fx);
    assert_int_equal(fx->nproc, 1);
    assert_string_equal(fx->log[0], "a");
    assert_int_equal(done(fx, "a", 0, 0), 0);
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 1);
    s = stats(fx);
    assert_int_equal(s.processed, 1);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.depth, 0);
    /* An idle queue holds no active handle: the loop can end. */
    assert_int_equal(uv_run(&fx->loop, UV_RUN_NOWAIT), 0);
}

static void test_process_never_called_synchronously(void **state)
{
    fx_t *fx = *state;
    start(fx, 1, 0, 0);
    /* process_cb asserts it is not inside add/add_after/done. */
    add(fx, "a");
    add_after(fx, "b", 0); /* no delay: the same as add */
    assert_int_equal(fx->nproc, 0);
    assert_int_equal(stats(fx).depth, 2);
    pump(fx);
    assert_int_equal(fx->nproc, 1);
    add(fx, "a"); /* dirty while active */
    assert_int_equal(done(fx, "a", 0, 0), 0);
    assert_int_equal(fx->nproc, 1);
    pump(fx);
    assert_int_equal(fx->nproc, 2);
    assert_string_equal(fx->log[1], "b");
    done(fx, "b", 0, 0);
    pump(fx);
    assert_int_equal(fx->nproc, 3);
    assert_string_equal(fx->log[2], "a");
    done(fx, "a", 0, 0);
}

static void test_single_flight(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    add(fx, "a");
    pump(fx);
    assert_int_equal(fx->nproc, 1);
    /* Added while active: marked dirty, not dispatched again yet. */
    add(fx, "a");
    add(fx, "a");
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 1);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.depth, 0);
    /* Done: processed once more, however many adds happened meanwhile. */
    assert_int_equal(done(fx, "a", 0, 0), 0);
    pump(fx);
    assert_int_equal(fx->nproc, 2);
    assert_string_equal(fx->log[1], "a");
    done(fx, "a", 0, 0);
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 2);
    assert_int_equal(fx->max_active_seen, 1);
}

static void test_max_active(void **state)
{
    fx_t *fx = *state;
    start(fx, 2, 0, 0);
    const char *keys[] = {"k0", "k1", "k2", "k3", "k4"};
    for (int i = 0; i < 5; i++)
        add(fx, keys[i]);
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 2);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.active, 2);
    assert_int_equal(s.depth, 3);
    done(fx, "k1", 0, 0);
    run_for(fx, 10);
    assert_int_equal(fx->nproc, 3);
    assert_string_equal(fx->log[2], "k2");
    assert_int_equal(stats(fx).active, 2);
    /* Finish whatever is active until all five are through. */
    for (int guard = 0; guard < 10 && fx->nactive; guard++) {
        done(fx, fx->active[0], 0, 0);
        pump(fx);
        assert_true(fx->nactive <= 2);
    }
    assert_int_equal(fx->nproc, 5);
    assert_int_equal(fx->max_active_seen, 2);
    for (int i = 0; i < 5; i++)
        assert_string_equal(fx->log[i], keys[i]);
    s = stats(fx);
    assert_int_equal(s.processed, 5);
    assert_int_equal(s.active, 0);
}

static void test_fifo_order(void **state)
{
    fx_t *fx = *state;
    start(fx, 1, 0, 0);
    const char *order[] = {"c", "a", "b", "z", "m"};
    for (int i = 0; i < 5; i++)
        add(fx, order[i]);
    add(fx, "a"); /* a duplicate keeps its first place */
    add(fx, "c");
    for (int i = 0; i < 5; i++) {
        pump(fx);
        assert_int_equal(fx->nproc, i + 1);
        done(fx, fx->log[i], 0, 0);
    }
    pump(fx);
    assert_int_equal(fx->nproc, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(fx->log[i], order[i]);
}

/* An urgent key (one user's request) goes before every bulk key already
 * waiting, urgent keys keep FIFO order among themselves, and a bulk key
 * already ready is moved ahead when it becomes urgent. */
static void test_urgent_keys_go_first(void **state)
{
    fx_t *fx = *state;
    start(fx, 1, 0, 0);
    const char *bulk[] = {"b1", "b2", "b3", "b4"};
    for (int i = 0; i < 4; i++)
        add(fx, bulk[i]);
    fx->in_api = 1;
    workqueue_add_urgent(fx->q, "u1");
    workqueue_add_urgent(fx->q, "b3"); /* ready as bulk: moved ahead */
    workqueue_add_urgent(fx->q, "u2");
    fx->in_api = 0;
    assert_true(workqueue_urgent(fx->q, "u1"));
    assert_true(workqueue_urgent(fx->q, "b3"));
    assert_false(workqueue_urgent(fx->q, "b1"));
    assert_false(workqueue_urgent(fx->q, "nobody"));
    const char *want[] = {"u1", "b3", "u2", "b1", "b2", "b4"};
    for (int i = 0; i < 6; i++) {
        pump(fx);
        assert_int_equal(fx->nproc, i + 1);
        assert_string_equal(fx->log[i], want[i]);
        /* An urgent key keeps its mark for its polls until cleared. */
        if (strcmp(want[i], "u2") == 0) {
            fx->in_api = 1;
            workqueue_set_urgent(fx->q, "u2", 0);
            fx->in_api = 0;
            assert_false(workqueue_urgent(fx->q, "u2"));
        }
        /* u1 comes back after a poll delay, still urgent. */
        done(fx, fx->log[i], 0, strcmp(want[i], "u1") == 0 ? 20 : 0);
    }
    add(fx, "b9");
    add(fx, "b8");
    run_until(fx, 7, 1000);
    assert_string_equal(fx->log[6], "b9");
    run_for(fx, 60); /* u1's poll falls due while b9 holds the only slot */
    assert_int_equal(fx->nproc, 7);
    done(fx, "b9", 0, 0);
    pump(fx);
    assert_int_equal(fx->nproc, 8);
    assert_string_equal(fx->log[7], "u1");
    done(fx, "u1", 0, 0);
    pump(fx);
    assert_int_equal(fx->nproc, 9);
    assert_string_equal(fx->log[8], "b8");
    done(fx, "b8", 0, 0);
}

static void test_add_after_waits_for_delay(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    uv_update_time(&fx->loop);
    uint64_t t0 = uv_now(&fx->loop);
    uint64_t h0 = uv_hrtime();
    add_after(fx, "a", 60);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.delayed, 1);
    assert_int_equal(s.depth, 0);
    assert_int_equal(s.adds, 0);
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 0);
    run_until(fx, 1, 1000);
    assert_true(fx->at_ms[0] - t0 >= 60);
    /* Real time too (loop time is whole milliseconds). */
    assert_true(uv_hrtime() - h0 >= 59 * 1000000ull);
    s = stats(fx);
    assert_int_equal(s.delayed, 0);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.adds, 1);
    done(fx, "a", 0, 0);
    assert_int_equal(uv_run(&fx->loop, UV_RUN_NOWAIT), 0);
}

static void test_add_after_earliest_due_wins(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    uv_update_time(&fx->loop);
    uint64_t t0 = uv_now(&fx->loop);
    /* Later first, then earlier: the earlier wins. */
    add_after(fx, "a", 600);
    add_after(fx, "a", 30);
    /* Earlier first, then later: the later does not postpone it. */
    add_after(fx, "b", 40);
    add_after(fx, "b", 600);
    assert_int_equal(stats(fx).delayed, 2);
    run_until(fx, 2, 1000);
    assert_string_equal(fx->log[0], "a");
    assert_string_equal(fx->log[1], "b");
    assert_true(fx->at_ms[0] - t0 >= 30);
    assert_true(fx->at_ms[1] - t0 >= 40);
    assert_true(fx->at_ms[1] - t0 < 400);
    done(fx, "a", 0, 0);
    done(fx, "b", 0, 0);
    /* Nothing stays behind for the later due times. */
    run_for(fx, 50);
    assert_int_equal(fx->nproc, 2);
    assert_int_equal(stats(fx).delayed, 0);
}

static void test_delayed_keys_run_in_due_order(void **state)
{
    fx_t *fx = *state;
    start(fx, 8, 0, 0);
    const char *keys[] = {"d50", "d10", "d40", "d20", "d30"};
    const uint64_t ms[] = {50, 10, 40, 20, 30};
    for (int i = 0; i < 5; i++)
        add_after(fx, keys[i], ms[i]);
    run_until(fx, 5, 1000);
    const char *want[] = {"d10", "d20", "d30", "d40", "d50"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(fx->log[i], want[i]);
}

static void test_add_makes_delayed_key_ready_now(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    add_after(fx, "a", 10000);
    assert_int_equal(stats(fx).delayed, 1);
    add(fx, "a");
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.delayed, 0);
    assert_int_equal(s.depth, 1);
    assert_int_equal(fx->nproc, 0);
    pump(fx);
    assert_int_equal(fx->nproc, 1);
    done(fx, "a", 0, 0);
    /* The 10 s timer is gone: the loop has nothing left to wait for. */
    assert_int_equal(uv_run(&fx->loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(fx->nproc, 1);
    /* A delayed add of a ready key changes nothing. */
    add(fx, "b");
    add_after(fx, "b", 5000);
    s = stats(fx);
    assert_int_equal(s.depth, 1);
    assert_int_equal(s.delayed, 0);
    pump(fx);
    assert_int_equal(fx->nproc, 2);
    done(fx, "b", 0, 0);
}

static void test_failure_backoff_and_counter(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 40, 1000);
    add(fx, "a");
    pump(fx);
    assert_int_equal(fx->nproc, 1);
    assert_int_equal(workqueue_failures(fx->q, "a"), 0);

    uint64_t t1 = uv_now(&fx->loop);
    uint64_t d1 = done(fx, "a", D8_EIO, 0);
    assert_in_range(d1, 20, 39);
    assert_int_equal(workqueue_failures(fx->q, "a"), 1);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.retries, 1);
    assert_int_equal(s.delayed, 1);
    assert_int_equal(s.depth, 0);
    run_until(fx, 2, 1000);
    assert_true(fx->at_ms[1] >= t1 + d1);

    uint64_t t2 = uv_now(&fx->loop);
    uint64_t d2 = done(fx, "a", D8_ETIMEDOUT, 0);
    assert_in_range(d2, 40, 79);
    assert_int_equal(workqueue_failures(fx->q, "a"), 2);
    run_until(fx, 3, 1000);
    assert_true(fx->at_ms[2] >= t2 + d2);

    uint64_t d3 = done(fx, "a", D8_EIO, 0);
    assert_in_range(d3, 80, 159);
    assert_int_equal(workqueue_failures(fx->q, "a"), 3);
    run_until(fx, 4, 1000);

    /* Success forgets the failures and does not requeue. */
    assert_int_equal(done(fx, "a", 0, 0), 0);
    assert_int_equal(workqueue_failures(fx->q, "a"), 0);
    s = stats(fx);
    assert_int_equal(s.retries, 3);
    assert_int_equal(s.processed, 4);
    assert_int_equal(s.delayed, 0);
    run_for(fx, 60);
    assert_int_equal(fx->nproc, 4);

    /* The next failure starts from the base again. */
    add(fx, "a");
    pump(fx);
    assert_in_range(done(fx, "a", D8_EIO, 0), 20, 39);
    assert_int_equal(workqueue_failures(fx->q, "a"), 1);
    run_until(fx, 6, 1000);
    assert_in_range(done(fx, "a", D8_EIO, 0), 40, 79);
    run_until(fx, 7, 1000);
    /* A success that keeps the key (requeue_ms) also forgets failures. */
    assert_int_equal(done(fx, "a", 0, 10), 10);
    assert_int_equal(workqueue_failures(fx->q, "a"), 0);
    run_until(fx, 8, 1000);
    assert_in_range(done(fx, "a", D8_EIO, 0), 20, 39);
}

static void test_failure_backoff_beats_dirty_and_poll(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 100, 1000);
    add(fx, "a");
    pump(fx);
    add(fx, "a");          /* dirty */
    add_after(fx, "a", 5); /* and a sooner poll */
    uint64_t d = done(fx, "a", D8_EIO, 0);
    assert_in_range(d, 50, 99);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.depth, 0);
    assert_int_equal(s.delayed, 1);
    run_for(fx, 30);
    assert_int_equal(fx->nproc, 1);
    run_until(fx, 2, 1000);
    done(fx, "a", 0, 0);
}

static void test_failure_always_requeues(void **state)
{
    fx_t *fx = *state;
    /* With a 1 ms base the jittered first backoff rounds down to 0; the
     * failed key must still come back. */
    start(fx, 4, 1, 1000);
    add(fx, "a");
    pump(fx);
    uint64_t d = done(fx, "a", D8_EIO, 0);
    assert_true(d >= 1);
    assert_int_equal(workqueue_failures(fx->q, "a"), 1);
    run_until(fx, 2, 500);
    assert_int_equal(stats(fx).retries, 1);
    done(fx, "a", 0, 0);
}

static void test_requeue_ms(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    add(fx, "a");
    pump(fx);
    uint64_t t1 = uv_now(&fx->loop);
    assert_int_equal(done(fx, "a", 0, 60), 60);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.delayed, 1);
    assert_int_equal(s.retries, 0);
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 1);
    run_until(fx, 2, 1000);
    assert_true(fx->at_ms[1] >= t1 + 60);

    /* A delayed add made while active is kept; the earlier of it and
     * requeue_ms wins. */
    add_after(fx, "a", 30);
    uint64_t t2 = uv_now(&fx->loop);
    uint64_t d = done(fx, "a", 0, 5000);
    assert_in_range(d, 1, 30);
    run_until(fx, 3, 1000);
    assert_true(fx->at_ms[2] >= t2 + d);
    assert_true(fx->at_ms[2] - t2 < 1000);

    /* Without requeue_ms the pending delayed add is still honoured. */
    add_after(fx, "a", 20);
    d = done(fx, "a", 0, 0);
    assert_in_range(d, 1, 20);
    run_until(fx, 4, 1000);

    /* Added while active: processed again at once, requeue_ms or not. */
    add(fx, "a");
    assert_int_equal(done(fx, "a", 0, 5000), 0);
    assert_int_equal(stats(fx).depth, 1);
    pump(fx);
    assert_int_equal(fx->nproc, 5);
    done(fx, "a", 0, 0);
    assert_int_equal(stats(fx).delayed, 0);
}

static void test_pause_stops_dispatch(void **state)
{
    fx_t *fx = *state;
    start(fx, 1, 0, 0);
    add(fx, "a");
    add(fx, "b");
    pump(fx);
    assert_int_equal(fx->nproc, 1);
    workqueue_pause(fx->q);
    done(fx, "a", 0, 0);
    add(fx, "c");
    add_after(fx, "d", 10);
    run_for(fx, 40);
    assert_int_equal(fx->nproc, 1);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.depth, 3); /* b, c and d (due while paused) */
    assert_int_equal(s.delayed, 0);
}

static void test_pause_before_first_dispatch(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    add(fx, "a");
    workqueue_pause(fx->q);
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 0);
    assert_int_equal(stats(fx).depth, 1);
}

static void pause_in_process(fx_t *fx, const char *key)
{
    (void)key;
    workqueue_pause(fx->q);
}

static void test_pause_inside_process(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    fx->on_process = pause_in_process;
    add(fx, "a");
    add(fx, "b");
    add(fx, "c");
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 1);
    assert_int_equal(stats(fx).depth, 2);
}

static void test_stats(void **state)
{
    fx_t *fx = *state;
    start(fx, 2, 50, 1000);
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.depth, 0);
    assert_int_equal(s.delayed, 0);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.adds, 0);
    assert_int_equal(s.retries, 0);
    assert_int_equal(s.processed, 0);
    assert_true(s.queue_seconds_sum == 0.0);

    add(fx, "a");
    add(fx, "b");
    add(fx, "c");
    add_after(fx, "d", 10000);
    add_after(fx, "e", 10000);
    s = stats(fx);
    assert_int_equal(s.depth, 3);
    assert_int_equal(s.delayed, 2);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.adds, 3);

    run_for(fx, 15);
    s = stats(fx);
    assert_int_equal(s.depth, 1);
    assert_int_equal(s.active, 2);
    assert_true(s.queue_seconds_sum >= 0.0 && s.queue_seconds_sum < 1.0);

    done(fx, "a", D8_EIO, 0);
    done(fx, "b", 0, 0);
    s = stats(fx);
    assert_int_equal(s.processed, 2);
    assert_int_equal(s.retries, 1);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.delayed, 3);
    assert_int_equal(s.depth, 1);
    assert_int_equal(s.adds, 3);

    /* c starts after having waited the 15 ms it sat behind a and b. */
    run_until(fx, 3, 500);
    assert_string_equal(fx->log[2], "c");
    assert_true(fx->waited_s[2] >= 0.010);
    assert_true(fx->waited_s[0] < fx->waited_s[2]);
    /* The stats add up exactly what the callbacks were told. */
    double sum = fx->waited_s[0] + fx->waited_s[1] + fx->waited_s[2];
    s = stats(fx);
    assert_true(s.queue_seconds_sum > sum - 1e-9 && s.queue_seconds_sum < sum + 1e-9);
    /* a's backoff ends: one more add. */
    run_until(fx, 4, 1000);
    s = stats(fx);
    assert_int_equal(s.adds, 4);
    assert_int_equal(s.active, 2);
    assert_int_equal(s.delayed, 2);

    /* done for a key that is not active changes nothing. */
    assert_int_equal(done(fx, "nope", 0, 100), 0);
    assert_int_equal(done(fx, "d", D8_EIO, 0), 0);
    s = stats(fx);
    assert_int_equal(s.processed, 2);
    assert_int_equal(s.retries, 1);
    assert_int_equal(s.delayed, 2);
}

static void test_default_backoff(void **state)
{
    fx_t *fx = *state;
    start(fx, 0, 0, 0); /* all defaults: 16 active, 1 s base, 5 min cap */
    char keys[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        add(fx, keys[i]);
    }
    pump(fx);
    assert_int_equal(fx->nproc, 16);
    assert_int_equal(stats(fx).depth, 4);
    /* Jitter differs between failures: not all sixteen delays equal. */
    uint64_t first = 0;
    int differ = 0;
    for (int i = 0; i < 16; i++) {
        uint64_t d = done(fx, keys[i], D8_EIO, 0);
        assert_in_range(d, 500, 999);
        if (i == 0)
            first = d;
        else if (d != first)
            differ = 1;
    }
    assert_true(differ);
    pump(fx);
    assert_int_equal(fx->nproc, 20);
}

static void test_free_with_items_pending(void **state)
{
    fx_t *fx = *state;
    start(fx, 2, 10, 100);
    char keys[40][16];
    for (int i = 0; i < 40; i++)
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
    for (int i = 0; i < 20; i++)
        add(fx, keys[i]);
    for (int i = 20; i < 40; i++)
        add_after(fx, keys[i], 1000 + (uint64_t)i);
    pump(fx);
    assert_int_equal(fx->nproc, 2);
    add(fx, keys[0]);             /* dirty */
    add_after(fx, keys[1], 5);    /* pending delayed add while active */
    done(fx, keys[0], D8_EIO, 0); /* failure state kept */
    workqueue_stats_t s = stats(fx);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.delayed, 21);
    assert_int_equal(s.depth, 18);
    workqueue_free(fx->q);
    fx->q = NULL;
    /* After free nothing more is dispatched; teardown runs the loop so the
     * close callbacks free everything and then closes the loop. */
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 2);
}

static void free_in_process(fx_t *fx, const char *key)
{
    (void)key;
    workqueue_free(fx->q);
    fx->q = NULL;
}

static void test_free_inside_process_stops_dispatch(void **state)
{
    fx_t *fx = *state;
    start(fx, 4, 0, 0);
    fx->on_process = free_in_process;
    add(fx, "a");
    add(fx, "b");
    add(fx, "c");
    run_for(fx, 20);
    assert_int_equal(fx->nproc, 1);
}

static void test_free_null_and_unused(void **state)
{
    fx_t *fx = *state;
    workqueue_free(NULL);
    start(fx, 1, 0, 0);
    /* Freed straight away, before the loop ever ran. */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_dedup_before_dispatch),
        T(test_process_never_called_synchronously),
        T(test_single_flight),
        T(test_max_active),
        T(test_fifo_order),
        T(test_urgent_keys_go_first),
        T(test_add_after_waits_for_delay),
        T(test_add_after_earliest_due_wins),
        T(test_delayed_keys_run_in_due_order),
        T(test_add_makes_delayed_key_ready_now),
        T(test_failure_backoff_and_counter),
        T(test_failure_backoff_beats_dirty_and_poll),
        T(test_failure_always_requeues),
        T(test_requeue_ms),
        T(test_pause_stops_dispatch),
        T(test_pause_before_first_dispatch),
        T(test_pause_inside_process),
        T(test_stats),
        T(test_default_backoff),
        T(test_free_with_items_pending),
        T(test_free_inside_process_stops_dispatch),
        T(test_free_null_and_unused),
    };
#undef T
    return cmocka_run_group_tests_name("workqueue", tests, NULL, NULL);
}
