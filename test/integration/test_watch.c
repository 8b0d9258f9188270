/*
 * The watch stream, GET /api/v1/watch (DESIGN.md section 3): Server-Sent
 * Events "id: <rv>", "event: ADDED|MODIFIED|DELETED", "data: <object>";
 * the current objects first when no resourceVersion is given, resume from
 * resourceVersion or Last-Event-ID, 410 Gone beyond the ring buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ENV_PATH "/api/v1/environments"
/* The smallest ring the config accepts. */
#define RING 16

static ta_agent_t *agent(void **state)
{
    return *state;
}

/* Every test ends here: SIGTERM, and exit status 0 is required (a
 * sanitized agent exits non-zero on leaks). ta_teardown only cleans up
 * after a test that failed before reaching this. */
static void agent_exits_cleanly(void **state)
{
    ta_agent_t *a = *state;
    if (a->bin)
        assert_int_equal(ta_stop(a), 0);
}

static int setup_small_ring(void **state)
{
    ta_agent_t *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    ta_opts_t o = {.watch_ring_size = RING, .extra_yaml = NULL};
    if (ta_start(a, &o) != 0) {
        ta_stop(a);
        free(a);
        return -1;
    }
    *state = a;
    return 0;
}

static void put(ta_agent_t *a, const char *id, const char *name, long want)
{
    char *body = ta_spec("u1", name, "eastus", NULL);
    long st = ta_put(a, id, body);
    free(body);
    if (st != want)
        print_message("PUT %s answered %ld\n", id, st);
    assert_int_equal(st, want);
}

static void post(ta_agent_t *a, const char *path, long want)
{
    th_resp_t r;
    ta_req(a, "POST", path, NULL, &r);
    assert_int_equal(r.status, want);
    th_resp_free(&r);
}

static double list_rv(ta_agent_t *a)
{
    th_resp_t r;
    ta_req(a, "GET", ENV_PATH, NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *j = ta_json(&r);
    double rv = ta_num(j, "resourceVersion");
    cJSON_Delete(j);
    th_resp_free(&r);
    return rv;
}

static void dump(const ta_watch_t *w)
{
    print_message("watch status %ld, %zu events, stream:\n%.2000s\n", w->status, w->nevents,
                  w->all);
}

/* Event i is `type` for object `id`; returns its parsed data. */
static cJSON *assert_event(const ta_watch_t *w, size_t i, const char *type, const char *id)
{
    if (i >= w->nevents) {
        dump(w);
        fail_msg("event %zu missing", i);
    }
    const ta_event_t *e = &w->events[i];
    cJSON *d = cJSON_Parse(e->data);
    const char *got = ta_str(d, "id");
    if (strcmp(e->type, type) != 0 || !got || strcmp(got, id) != 0) {
        dump(w);
        fail_msg("event %zu: %s %s, wanted %s %s", i, e->type, got ? got : "?", type, id);
    }
    assert_true(e->id >= 0);
    return d;
}

static void assert_stream_headers(const ta_watch_t *w)
{
    assert_int_equal(w->status, 200);
    assert_non_null(strcasestr(w->headers, "\ncontent-type: text/event-stream"));
}

static void test_watch_lists_then_streams_changes(void **state)
{
    ta_agent_t *a = agent(state);
    put(a, "wa", "a", 201);
    put(a, "wb", "b", 201);

    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 2, 5000);
    assert_stream_headers(&w);
    assert_int_equal(w.nevents, 2);
    /* The current objects first, as ADDED. */
    int seen_a = 0, seen_b = 0;
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(w.events[i].type, "ADDED");
        cJSON *d = cJSON_Parse(w.events[i].data);
        assert_non_null(d);
        const char *id = ta_str(d, "id");
        assert_non_null(id);
        seen_a += strcmp(id, "wa") == 0;
        seen_b += strcmp(id, "wb") == 0;
        assert_non_null(ta_str(d, "status.phase"));
        cJSON_Delete(d);
        assert_true(w.events[i].id >= 0);
    }
    assert_true(seen_a == 1 && seen_b == 1);
    assert_true(w.events[1].id >= w.events[0].id);

    /* Then live changes, in order. */
    put(a, "wc", "c", 201);            /* ADDED wc */
    put(a, "wa", "a2", 200);           /* MODIFIED wa, generation 2 */
    put(a, "wa", "a2", 200);           /* unchanged: no event */
    post(a, ENV_PATH "/wb/stop", 202); /* MODIFIED wb */
    th_resp_t r;
    ta_req(
        a, "PUT", ENV_PATH,
        "{\"items\":[{\"id\":\"wa\",\"userId\":\"u1\",\"name\":\"a2\",\"cloudRegion\":\"eastus\"},"
        "{\"id\":\"wc\",\"userId\":\"u1\",\"name\":\"c\",\"cloudRegion\":\"eastus\"}]}",
        &r); /* MODIFIED wb: removed, DELETING */
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    ta_req(a, "DELETE", ENV_PATH "/wc", NULL, &r); /* MODIFIED wc, DELETING */
    assert_int_equal(r.status, 202);
    th_resp_free(&r);

    ta_watch_wait(&w, 7, 5000);
    ta_watch_drain(&w, 300);
    if (w.nevents != 7)
        dump(&w);
    assert_int_equal(w.nevents, 7);
    cJSON *d = assert_event(&w, 2, "ADDED", "wc");
    assert_int_equal((int)ta_num(d, "generation"), 1);
    cJSON_Delete(d);
    d = assert_event(&w, 3, "MODIFIED", "wa");
    assert_int_equal((int)ta_num(d, "generation"), 2);
    assert_string_equal(ta_str(d, "spec.name"), "a2");
    cJSON_Delete(d);
    d = assert_event(&w, 4, "MODIFIED", "wb");
    assert_string_equal(ta_str(d, "spec.powerState"), "Stopped");
    cJSON_Delete(d);
    /* Left out by the full sync: a deletion in progress (DELETED comes
     * only once Azure holds nothing of it). */
    d = assert_event(&w, 5, "MODIFIED", "wb");
    assert_string_equal(ta_str(d, "status.phase"), "DELETING");
    assert_string_equal(ta_str(d, "status.conditions.0.reason"), "RemovedFromDesiredSet");
    cJSON_Delete(d);
    d = assert_event(&w, 6, "MODIFIED", "wc");
    assert_string_equal(ta_str(d, "status.phase"), "DELETING");
    cJSON_Delete(d);
    /* Live event ids grow strictly, past the initial ones. */
    for (size_t i = 2; i < 7; i++)
        assert_true(w.events[i].id > w.events[i - 1].id);
    /* A watch from the list's resourceVersion has nothing to add. */
    double rv = list_rv(a);
    assert_true(rv >= (double)w.events[6].id);
    assert_false(w.done);
    ta_watch_close(&w);

    char path[128];
    snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%.0f", rv);
    assert_int_equal(ta_watch_open(&w, a, path, NULL), 0);
    ta_watch_wait(&w, 0, 3000);
    ta_watch_drain(&w, 300);
    assert_stream_headers(&w);
    assert_int_equal(w.nevents, 0);
    ta_watch_close(&w);
    agent_exits_cleanly(state);
}

static void test_watch_resumes(void **state)
{
    ta_agent_t *a = agent(state);
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 0, 3000);
    ta_watch_drain(&w, 200);
    assert_stream_headers(&w);
    assert_int_equal(w.nevents, 0); /* nothing to list */
    put(a, "ra", "a", 201);
    put(a, "rb", "b", 201);
    ta_watch_wait(&w, 2, 5000);
    assert_int_equal(w.nevents, 2);
    cJSON_Delete(assert_event(&w, 0, "ADDED", "ra"));
    cJSON_Delete(assert_event(&w, 1, "ADDED", "rb"));
    long long ida = w.events[0].id, idb = w.events[1].id;
    assert_true(idb > ida);
    ta_watch_close(&w);

    /* Changes while nobody watches. */
    put(a, "rc", "c", 201);
    post(a, ENV_PATH "/ra/stop", 202);

    /* resourceVersion: only what came after it, no initial list. */
    char path[128];
    snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%lld", idb);
    assert_int_equal(ta_watch_open(&w, a, path, NULL), 0);
    ta_watch_wait(&w, 2, 5000);
    ta_watch_drain(&w, 300);
    assert_stream_headers(&w);
    assert_int_equal(w.nevents, 2);
    cJSON_Delete(assert_event(&w, 0, "ADDED", "rc"));
    cJSON *d = assert_event(&w, 1, "MODIFIED", "ra");
    assert_string_equal(ta_str(d, "spec.powerState"), "Stopped");
    cJSON_Delete(d);
    assert_true(w.events[0].id > idb);
    long long last = w.events[1].id;
    ta_watch_close(&w);

    /* Last-Event-ID, the browser's way of resuming. */
    char lei[32];
    snprintf(lei, sizeof lei, "%lld", ida);
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", lei), 0);
    ta_watch_wait(&w, 3, 5000);
    ta_watch_drain(&w, 300);
    assert_stream_headers(&w);
    assert_int_equal(w.nevents, 3);
    cJSON_Delete(assert_event(&w, 0, "ADDED", "rb"));
    cJSON_Delete(assert_event(&w, 1, "ADDED", "rc"));
    cJSON_Delete(assert_event(&w, 2, "MODIFIED", "ra"));
    assert_int_equal(w.events[2].id, last);
    ta_watch_close(&w);

    /* From the newest version: quiet until the next change. */
    snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%lld", last);
    assert_int_equal(ta_watch_open(&w, a, path, NULL), 0);
    ta_watch_wait(&w, 0, 3000);
    ta_watch_drain(&w, 300);
    assert_int_equal(w.nevents, 0);
    put(a, "rd", "d", 201);
    ta_watch_wait(&w, 1, 5000);
    assert_int_equal(w.nevents, 1);
    cJSON_Delete(assert_event(&w, 0, "ADDED", "rd"));
    assert_true(w.events[0].id > last);
    ta_watch_close(&w);
    agent_exits_cleanly(state);
}

static void test_list_then_watch_has_no_gap(void **state)
{
    ta_agent_t *a = agent(state);
    put(a, "la", "a", 201);
    double rv = list_rv(a);
    put(a, "lb", "b", 201);
    post(a, ENV_PATH "/la/stop", 202);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%.0f", rv);
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, a, path, NULL), 0);
    ta_watch_wait(&w, 2, 5000);
    ta_watch_drain(&w, 200);
    assert_int_equal(w.nevents, 2);
    cJSON_Delete(assert_event(&w, 0, "ADDED", "lb"));
    cJSON_Delete(assert_event(&w, 1, "MODIFIED", "la"));
    assert_true((double)w.events[0].id > rv);
    ta_watch_close(&w);
    agent_exits_cleanly(state);
}

static void test_watch_too_old_is_410(void **state)
{
    ta_agent_t *a = agent(state);
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 0, 3000);
    put(a, "g00", "x", 201);
    ta_watch_wait(&w, 1, 5000);
    assert_int_equal(w.nevents, 1);
    long long first = w.events[0].id;
    ta_watch_close(&w);

    for (int i = 1; i < 3 * RING; i++) {
        char id[16];
        snprintf(id, sizeof id, "g%02d", i);
        put(a, id, "x", 201);
    }
    double rv = list_rv(a);

    /* The first version fell out of the ring long ago. */
    char path[128];
    snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%lld", first);
    th_resp_t r;
    ta_req(a, "GET", path, NULL, &r);
    if (r.status != 410)
        print_message("answer %ld: %.300s\n", r.status, r.body);
    assert_int_equal(r.status, 410);
    assert_string_equal(ta_err_code(&r), "Gone");
    th_resp_free(&r);
    char lei[32];
    snprintf(lei, sizeof lei, "%lld", first);
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", lei), 0);
    ta_watch_wait(&w, 100, 3000); /* until the answer is complete */
    assert_true(w.done);
    assert_int_equal(w.status, 410);
    assert_int_equal(w.nevents, 0);
    ta_watch_close(&w);

    /* Recent versions are still served from the ring. */
    snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%.0f", rv - 2);
    assert_int_equal(ta_watch_open(&w, a, path, NULL), 0);
    ta_watch_wait(&w, 2, 5000);
    ta_watch_drain(&w, 200);
    assert_int_equal(w.status, 200);
    assert_true(w.nevents >= 1 && w.nevents <= 2);
    char want[16];
    snprintf(want, sizeof want, "g%02d", 3 * RING - 1);
    cJSON_Delete(assert_event(&w, w.nevents - 1, "ADDED", want));
    assert_true((double)w.events[w.nevents - 1].id <= rv);
    ta_watch_close(&w);

    /* And a fresh watch lists everything, however many changes ago. */
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 3 * RING, 5000);
    assert_int_equal(w.nevents, 3 * RING);
    ta_watch_close(&w);
    agent_exits_cleanly(state);
}

/*
 * A run without a state file starts its resourceVersions above any earlier
 * run's (wall-clock milliseconds x 1000), so resuming with an id from an
 * earlier run (small) or from a later one (larger than ours) is 410 Gone,
 * never a silently wrong stream.
 */
static void test_watch_from_another_run_is_410(void **state)
{
    ta_agent_t *a = agent(state);
    put(a, "ep", "x", 201);
    double rv = list_rv(a);
    assert_true(rv > 1.7e15); /* the epoch of this run, past 2023 */
    const char *ids[] = {"8", "1", NULL};
    char future[64];
    snprintf(future, sizeof future, "%.0f", rv + 1000);
    ids[2] = future;
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%s", ids[i]);
        th_resp_t r;
        ta_req(a, "GET", path, NULL, &r);
        if (r.status != 410)
            print_message("resourceVersion=%s -> %ld %.300s\n", ids[i], r.status, r.body);
        assert_int_equal(r.status, 410);
        assert_string_equal(ta_err_code(&r), "Gone");
        th_resp_free(&r);
        ta_watch_t w;
        assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", ids[i]), 0);
        ta_watch_wait(&w, 100, 3000);
        assert_true(w.done);
        assert_int_equal(w.status, 410);
        ta_watch_close(&w);
    }
    agent_exits_cleanly(state);
}

static void test_watch_bad_resource_version_is_400(void **state)
{
    ta_agent_t *a = agent(state);
    const char *bad[] = {"abc", "-1", "1x", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%s", bad[i]);
        th_resp_t r;
        ta_req(a, "GET", path, NULL, &r);
        if (r.status != 400)
            print_message("resourceVersion=%s -> %ld %.200s\n", bad[i], r.status, r.body);
        assert_int_equal(r.status, 400);
        assert_string_equal(ta_err_code(&r), "InvalidQuery");
        assert_string_equal(ta_err_field(&r), "resourceVersion");
        th_resp_free(&r);
    }
    agent_exits_cleanly(state);
}

static void test_many_watchers_come_and_go(void **state)
{
    ta_agent_t *a = agent(state);
    put(a, "m0", "x", 201);
    enum { N = 12 };
    ta_watch_t w[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(ta_watch_open(&w[i], a, "/api/v1/watch", NULL), 0);
        ta_watch_wait(&w[i], 1, 5000);
        assert_int_equal(w[i].nevents, 1);
    }
    /* Half of them hang up. */
    for (int i = 0; i < N; i += 2)
        ta_watch_close(&w[i]);
    /* A raw watcher that never reads, and one that resets. */
    int quiet = ta_connect(a->port);
    int reset = ta_connect(a->port);
    assert_true(quiet >= 0 && reset >= 0);
    const char req[] = "GET /api/v1/watch HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer " TA_KEY1 "\r\n\r\n";
    assert_int_equal(ta_send_all(quiet, req, sizeof req - 1, 2000), 0);
    assert_int_equal(ta_send_all(reset, req, sizeof req - 1, 2000), 0);
    ta_sleep_ms(100);
    struct linger lg = {1, 0};
    setsockopt(reset, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(reset);

    put(a, "m1", "x", 201);
    post(a, ENV_PATH "/m0/stop", 202);
    for (int i = 1; i < N; i += 2) {
        ta_watch_wait(&w[i], 3, 5000);
        assert_int_equal(w[i].nevents, 3);
        cJSON_Delete(assert_event(&w[i], 1, "ADDED", "m1"));
        cJSON_Delete(assert_event(&w[i], 2, "MODIFIED", "m0"));
        ta_watch_close(&w[i]);
    }
    close(quiet);
    th_resp_t r;
    ta_api(a, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    agent_exits_cleanly(state);
}

static void test_sigterm_with_open_watch_exits_promptly(void **state)
{
    ta_agent_t *a = agent(state);
    put(a, "s0", "x", 201);
    ta_watch_t w;
    assert_int_equal(ta_watch_open(&w, a, "/api/v1/watch", NULL), 0);
    ta_watch_wait(&w, 1, 5000);
    assert_int_equal(w.nevents, 1);
    long long t0 = ta_now_ms();
    int rc = th_stop(&a->proc, SIGTERM, 5000);
    long long took = ta_now_ms() - t0;
    /* The stream was ended by the agent. */
    ta_watch_drain(&w, 1000);
    assert_true(w.done);
    ta_watch_close(&w);
    free(a->bin);
    free(a->config_path);
    a->bin = a->config_path = NULL;
    assert_int_equal(rc, 0);
    assert_true(took < 4500);
    agent_exits_cleanly(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, ta_setup, ta_teardown)
        T(test_watch_lists_then_streams_changes),
        T(test_watch_resumes),
        T(test_list_then_watch_has_no_gap),
        cmocka_unit_test_setup_teardown(test_watch_too_old_is_410, setup_small_ring, ta_teardown),
        T(test_watch_from_another_run_is_410),
        T(test_watch_bad_resource_version_is_400),
        T(test_many_watchers_come_and_go),
        T(test_sigterm_with_open_watch_exits_promptly),
#undef T
    };
    return cmocka_run_group_tests_name("watch", tests, NULL, NULL);
}
