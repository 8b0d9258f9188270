/*
 * Bad input at the HTTP layer (DESIGN.md section 8, invariant 5): oversized
 * header blocks, malformed requests, deeply nested JSON, pipelining, slow
 * and vanishing clients. Each must get a clear answer (or a closed
 * connection), never crash the agent, never change desired state; and the
 * agent must still exit 0 on SIGTERM afterwards (checked by the fixture).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ENV_PATH "/api/v1/environments"
#define AUTH "Authorization: Bearer " TA_KEY1 "\r\n"

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

/* The agent answers /healthz quickly; returns the time it took in ms. */
static long long assert_healthy(ta_agent_t *a)
{
    assert_true(th_alive(&a->proc));
    long long t0 = ta_now_ms();
    th_resp_t r;
    th_api(a->port, "GET", "/healthz", NULL, NULL, &r);
    long long took = ta_now_ms() - t0;
    if (r.status != 200)
        print_message("/healthz answered %ld\n", r.status);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    return took;
}

static void assert_no_environments(ta_agent_t *a)
{
    th_resp_t r;
    ta_req(a, "GET", ENV_PATH, NULL, &r);
    assert_int_equal(r.status, 200);
    cJSON *j = ta_json(&r);
    assert_int_equal(cJSON_GetArraySize(ta_path(j, "items")), 0);
    cJSON_Delete(j);
    th_resp_free(&r);
}

static int starts_with_status(const char *reply, int status)
{
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d", status);
    return strncmp(reply, want, strlen(want)) == 0;
}

static void test_header_block_over_16k_is_431(void **state)
{
    ta_agent_t *a = agent(state);
    /* One huge header. */
    size_t cap = 40000;
    char *req = malloc(cap);
    assert_non_null(req);
    size_t off = (size_t)snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + off, 'a', 20000);
    off += 20000;
    off += (size_t)snprintf(req + off, cap - off, "\r\n\r\n");
    char *reply = th_raw(a->port, req, off, 3000);
    if (!starts_with_status(reply, 431))
        print_message("reply: %.200s\n", reply);
    assert_true(starts_with_status(reply, 431));
    free(reply);

    /* Many small headers adding up to more than 16 KiB. */
    off = (size_t)snprintf(req, cap, "GET " ENV_PATH " HTTP/1.1\r\nHost: x\r\n" AUTH);
    for (int i = 0; i < 400; i++)
        off += (size_t)snprintf(req + off, cap - off, "X-H%03d: %060d\r\n", i, i);
    off += (size_t)snprintf(req + off, cap - off, "\r\n");
    assert_true(off > 16384);
    reply = th_raw(a->port, req, off, 3000);
    assert_true(starts_with_status(reply, 431));
    free(reply);

    /* A big header block that never ends is cut off as well, without
     * waiting for the end of the block. */
    off = (size_t)snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + off, 'b', 30000);
    off += 30000;
    long long t0 = ta_now_ms();
    reply = th_raw(a->port, req, off, 3000);
    assert_true(starts_with_status(reply, 431));
    assert_true(ta_now_ms() - t0 < 2500);
    free(reply);

    /* A block comfortably under the limit is served. */
    off = (size_t)snprintf(req, cap, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + off, 'c', 12000);
    off += 12000;
    off += (size_t)snprintf(req + off, cap - off, "\r\nConnection: close\r\n\r\n");
    reply = th_raw(a->port, req, off, 3000);
    assert_true(starts_with_status(reply, 200));
    free(reply);
    free(req);
    assert_healthy(a);
    agent_exits_cleanly(state);
}

static void test_malformed_http_is_400(void **state)
{
    ta_agent_t *a = agent(state);
    static const struct {
        const char *what, *data;
    } cases[] = {
        {"garbage request line", "GARBAGE\r\n\r\n"},
        {"header without colon", "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n"},
        {"control character in target", "GET /heal\x01thz HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"bad version", "GET /healthz HTTP/x.y\r\nHost: x\r\n\r\n"},
        {"non-numeric Content-Length",
         "PUT " ENV_PATH "/x HTTP/1.1\r\nHost: x\r\n" AUTH "Content-Length: abc\r\n\r\n"},
        {"two Content-Lengths",
         "PUT " ENV_PATH "/x HTTP/1.1\r\nHost: x\r\n" AUTH
         "Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"},
        {"chunked and Content-Length",
         "PUT " ENV_PATH "/x HTTP/1.1\r\nHost: x\r\n" AUTH
         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 7\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
        {"bad chunk size",
         "PUT " ENV_PATH "/x HTTP/1.1\r\nHost: x\r\n" AUTH
         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long long t0 = ta_now_ms();
        char *reply = th_raw(a->port, cases[i].data, strlen(cases[i].data), 3000);
        long long took = ta_now_ms() - t0;
        if (!starts_with_status(reply, 400))
            print_message("%s: reply \"%.120s\"\n", cases[i].what, reply);
        assert_true(starts_with_status(reply, 400));
        /* A JSON error body, and the connection closed right away. */
        assert_non_null(strstr(reply, "\"error\""));
        if (took >= 2500)
            print_message("%s: connection not closed after the 400\n", cases[i].what);
        assert_true(took < 2500);
        free(reply);
        assert_healthy(a);
    }

    /* Binary junk and a TLS ClientHello: a 400 or a plain close, quickly. */
    unsigned char junk[1024];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 7919u + 13u);
    const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03,
                                   0x03, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    const struct {
        const void *data;
        size_t len;
    } bin[] = {{junk, sizeof junk}, {hello, sizeof hello}};
    for (int i = 0; i < 2; i++) {
        long long t0 = ta_now_ms();
        char *reply = th_raw(a->port, bin[i].data, bin[i].len, 3000);
        assert_true(reply[0] == '\0' || starts_with_status(reply, 400));
        assert_true(ta_now_ms() - t0 < 2500);
        free(reply);
        assert_healthy(a);
    }
    assert_no_environments(a);
    agent_exits_cleanly(state);
}

static char *nested(const char *open, const char *close_, size_t depth, const char *prefix,
                    const char *suffix)
{
    size_t ol = strlen(open), cl = strlen(close_ ? close_ : "");
    size_t n = strlen(prefix) + depth * (ol + cl) + strlen(suffix) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    size_t off = (size_t)snprintf(s, n, "%s", prefix);
    for (size_t i = 0; i < depth; i++, off += ol)
        memcpy(s + off, open, ol);
    for (size_t i = 0; close_ && i < depth; i++, off += cl)
        memcpy(s + off, close_, cl);
    snprintf(s + off, n - off, "%s", suffix);
    return s;
}

static void test_deeply_nested_json_is_400(void **state)
{
    ta_agent_t *a = agent(state);
    struct {
        const char *path;
        char *body;
    } cases[] = {
        /* Within api.maxBodyBytes for the single-environment routes. */
        {ENV_PATH "/deep", nested("[", NULL, 60000, "", "")},
        {ENV_PATH "/deep", nested("[", "]", 30000, "", "")},
        {ENV_PATH "/deep", nested("{\"a\":", "}", 10000, "{\"userId\":\"u\",\"x\":", "1}")},
        {ENV_PATH, nested("[", NULL, 60000, "", "")},
        /* The full sync's limit is larger: the whole 100000. */
        {ENV_PATH, nested("[", NULL, 100000, "", "")},
        {ENV_PATH, nested("[", "]", 50000, "{\"items\":", "}")},
        {ENV_PATH, nested("{\"e\":", "}", 20000, "{\"items\":[{\"id\":\"x\",\"env\":", "}]}")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *method = strcmp(cases[i].path, ENV_PATH) == 0 && i < 4 ? "POST" : "PUT";
        long long t0 = ta_now_ms();
        th_resp_t r;
        ta_req(a, method, cases[i].path, cases[i].body, &r);
        if (r.status != 400 || strcmp(ta_err_code(&r), "InvalidJson") != 0)
            print_message("case %zu (%s %s, %zu bytes): %ld %.200s\n", i, method, cases[i].path,
                          strlen(cases[i].body), r.status, r.body);
        assert_int_equal(r.status, 400);
        assert_string_equal(ta_err_code(&r), "InvalidJson");
        assert_true(ta_now_ms() - t0 < 5000);
        th_resp_free(&r);
        free(cases[i].body);
        assert_healthy(a);
    }
    assert_no_environments(a);
    agent_exits_cleanly(state);
}

/* Splits a stream of HTTP/1.1 answers at each status line. */
static size_t split_answers(char *stream, char *answers[], size_t max)
{
    size_t n = 0;
    char *p = stream;
    while (n < max && (p = strstr(p, "HTTP/1.1 ")) != NULL) {
        answers[n++] = p;
        p += 9;
    }
    return n;
}

static void test_pipelined_requests_answered_in_order(void **state)
{
    ta_agent_t *a = agent(state);
    const char body[] = "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}";
    char req[4096];
    int len = snprintf(
        req, sizeof req,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p1\r\n\r\n"
        "PUT " ENV_PATH "/pipe HTTP/1.1\r\nHost: x\r\n" AUTH
        "Content-Type: application/json\r\nContent-Length: %zu\r\nX-Request-Id: p2\r\n\r\n%s"
        "GET " ENV_PATH "/nope HTTP/1.1\r\nHost: x\r\n" AUTH "X-Request-Id: p3\r\n\r\n"
        "GET " ENV_PATH "/pipe HTTP/1.1\r\nHost: x\r\n" AUTH "X-Request-Id: p4\r\n\r\n"
        "GET " ENV_PATH " HTTP/1.1\r\nHost: x\r\nX-Request-Id: p5\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p6\r\nConnection: close\r\n\r\n",
        sizeof body - 1, body);
    long long t0 = ta_now_ms();
    char *reply = th_raw(a->port, req, (size_t)len, 5000);
    assert_true(ta_now_ms() - t0 < 4000); /* closed after the last one */
    char *answers[8];
    size_t n = split_answers(reply, answers, 8);
    if (n != 6)
        print_message("got %zu answers:\n%s\n", n, reply);
    assert_int_equal(n, 6);
    const char *ids[] = {"p1", "p2", "p3", "p4", "p5", "p6"};
    const int status[] = {200, 201, 404, 200, 401, 200};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(atoi(answers[i] + 9), status[i]);
        /* The request id of this answer lies before the next answer. */
        char want[64];
        snprintf(want, sizeof want, "\r\nX-Request-Id: %s\r\n", ids[i]);
        char *hit = strcasestr(answers[i], want);
        assert_non_null(hit);
        if (i + 1 < 6)
            assert_true(hit < answers[i + 1]);
    }
    free(reply);

    /* Keep-alive: two requests one after the other on one connection. */
    int fd = ta_connect(a->port);
    assert_true(fd >= 0);
    for (int i = 0; i < 2; i++) {
        const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_int_equal(ta_send_all(fd, get, sizeof get - 1, 2000), 0);
        char *buf = NULL;
        size_t blen = 0;
        /* Not closed: the read times out with an answer in hand. */
        int closed = ta_recv_until_close(fd, &buf, &blen, 500);
        assert_int_equal(closed, 0);
        assert_true(starts_with_status(buf, 200));
        free(buf);
    }
    close(fd);
    assert_healthy(a);
    agent_exits_cleanly(state);
}

/*
 * One byte a second of a header block that never ends: the header timeout
 * (10 s) must cut the connection off although bytes keep coming, and the
 * agent must keep serving everybody else in the meantime.
 */
static void test_slow_client_is_cut_off_others_served(void **state)
{
    ta_agent_t *a = agent(state);
    const char prefix[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    int fd = ta_connect(a->port);
    assert_true(fd >= 0);
    /* A few idle connections that never send anything, too. */
    int idle[5];
    for (int i = 0; i < 5; i++) {
        idle[i] = ta_connect(a->port);
        assert_true(idle[i] >= 0);
    }
    long long t0 = ta_now_ms();
    long long cut_at = -1;
    char *got = NULL;
    size_t glen = 0;
    long long worst = 0;
    size_t i = 0;
    while (ta_now_ms() - t0 < 12500) {
        char c = i < sizeof prefix - 1 ? prefix[i] : 'a';
        i++;
        ssize_t w = send(fd, &c, 1, MSG_NOSIGNAL);
        int st = ta_recv_until_close(fd, &got, &glen, 0);
        if (w < 0 || st != 0) {
            cut_at = ta_now_ms() - t0;
            break;
        }
        long long took = assert_healthy(a);
        if (took > worst)
            worst = took;
        /* Sleep out the rest of the second, watching the socket. */
        long long next = t0 + (long long)i * 1000;
        long long left = next - ta_now_ms();
        if (left > 0) {
            st = ta_recv_until_close(fd, &got, &glen, (int)left);
            if (st != 0) {
                cut_at = ta_now_ms() - t0;
                break;
            }
        }
    }
    close(fd);
    if (cut_at < 0)
        print_message("the slow client was still connected after %lld ms\n", ta_now_ms() - t0);
    assert_true(cut_at >= 0);
    /* Not before a reasonable header timeout, not much after 10 s. */
    assert_true(cut_at >= 3000);
    assert_true(cut_at <= 12500);
    /* Cut off with a 408, or silently. */
    assert_true(got[0] == '\0' || starts_with_status(got, 408));
    free(got);
    /* Everybody else was served promptly all along. */
    assert_true(worst < 1000);
    /* The silent connections were cut off by the same timeout. */
    for (int k = 0; k < 5; k++) {
        char *buf = NULL;
        size_t blen = 0;
        int st = ta_recv_until_close(idle[k], &buf, &blen, 1000);
        assert_true(st != 0);
        free(buf);
        close(idle[k]);
    }
    assert_healthy(a);
    agent_exits_cleanly(state);
}

static void test_vanishing_clients(void **state)
{
    ta_agent_t *a = agent(state);
    const char *partial[] = {
        "GET /heal",
        "GET /healthz HTTP/1.1\r\nHost: x\r\n",
        "PUT " ENV_PATH "/gone HTTP/1.1\r\nHost: x\r\n" AUTH
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"userId\":",
        "PUT " ENV_PATH "/gone HTTP/1.1\r\nHost: x\r\n" AUTH
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"us",
    };
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
            int fd = ta_connect(a->port);
            assert_true(fd >= 0);
            assert_int_equal(ta_send_all(fd, partial[i], strlen(partial[i]), 2000), 0);
            ta_sleep_ms(20);
            if (round == 1) {
                /* Reset instead of an orderly close. */
                struct linger lg = {1, 0};
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            close(fd);
        }
    }
    /* Full requests whose answers nobody reads. */
    for (int i = 0; i < 20; i++) {
        int fd = ta_connect(a->port);
        assert_true(fd >= 0);
        const char req[] = "GET " ENV_PATH " HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n"
                           "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_int_equal(ta_send_all(fd, req, sizeof req - 1, 2000), 0);
        struct linger lg = {1, 0};
        if (i % 2)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    ta_sleep_ms(100);
    assert_healthy(a);
    assert_no_environments(a);
    agent_exits_cleanly(state);
}

static void test_many_connections_at_once(void **state)
{
    ta_agent_t *a = agent(state);
    enum { N = 200 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = ta_connect(a->port);
        assert_true(fds[i] >= 0);
    }
    /* All of them send a request; every one gets its answer. */
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < N; i++)
        assert_int_equal(ta_send_all(fds[i], req, sizeof req - 1, 2000), 0);
    for (int i = 0; i < N; i++) {
        char *buf = NULL;
        size_t len = 0;
        int st = ta_recv_until_close(fds[i], &buf, &len, 5000);
        assert_int_equal(st, 1);
        assert_true(starts_with_status(buf, 200));
        free(buf);
        close(fds[i]);
    }
    assert_healthy(a);
    agent_exits_cleanly(state);
}

static void test_chunked_and_http10_requests(void **state)
{
    ta_agent_t *a = agent(state);
    const char req[] = "PUT " ENV_PATH "/chunky HTTP/1.1\r\nHost: x\r\n" AUTH
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                       "Connection: close\r\n\r\n"
                       "a\r\n{\"userId\":\r\n"
                       "26\r\n\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}\r\n"
                       "0\r\n\r\n";
    char *reply = th_raw(a->port, req, sizeof req - 1, 3000);
    if (!starts_with_status(reply, 201))
        print_message("reply: %.300s\n", reply);
    assert_true(starts_with_status(reply, 201));
    free(reply);
    th_resp_t r;
    ta_req(a, "GET", ENV_PATH "/chunky", NULL, &r);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);

    /* HTTP/1.0 without Host: answered, then closed. */
    const char old[] = "GET /healthz HTTP/1.0\r\n\r\n";
    long long t0 = ta_now_ms();
    reply = th_raw(a->port, old, sizeof old - 1, 3000);
    assert_true(strncmp(reply, "HTTP/1.", 7) == 0);
    assert_int_equal(atoi(reply + 9), 200);
    assert_true(ta_now_ms() - t0 < 2500);
    free(reply);
    agent_exits_cleanly(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, ta_setup, ta_teardown)
        T(test_header_block_over_16k_is_431),
        T(test_malformed_http_is_400),
        T(test_deeply_nested_json_is_400),
        T(test_pipelined_requests_answered_in_order),
        T(test_slow_client_is_cut_off_others_served),
        T(test_vanishing_clients),
        T(test_many_connections_at_once),
        T(test_chunked_and_http10_requests),
#undef T
    };
    return cmocka_run_group_tests_name("http_robustness", tests, NULL, NULL);
}
