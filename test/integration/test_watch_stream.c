/*
 * Streamed watch snapshots, end to end against the real agent:
 *
 * - 1,500 environments and 200 watchers without resourceVersion that do
 *   not read: /healthz keeps answering fast while their snapshots are
 *   written (each as its socket drains, in bounded pieces), the agent's
 *   memory grows by a bounded amount, and a watcher that reads gets every
 *   object once, then follows;
 * - a watcher that stops reading while changes keep coming is cut with a
 *   final `event: ERROR` whose data is {"error":{"code":"Gone",...}}
 *   (list again), and the agent goes on serving.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NENVS 1500
#define NWATCHERS 200 /* under api.maxConnectionsPerClient (256), with the probes */
#define STALL_BOUND_MS 250
#define RSS_GROWTH_BOUND_MIB 64

/* A blocking socket with a small receive buffer (set before connect, so
 * the window stays small), or -1. */
static int connect_small(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int open_watch(int port, int rcvbuf)
{
    int fd = connect_small(port, rcvbuf);
    if (fd < 0)
        return -1;
    static const char req[] = "GET /api/v1/watch HTTP/1.1\r\nHost: t\r\n"
                              "Authorization: Bearer " TA_KEY1 "\r\n\r\n";
    if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads from fd until `needle` occurs `want` times or timeout; returns the
 * count seen. */
static size_t read_until(int fd, const char *needle, size_t want, int timeout_ms, char **all)
{
    size_t cap = 1 << 20, len = 0, count = 0;
    char *buf = malloc(cap);
    long long deadline = ta_now_ms() + timeout_ms;
    size_t scanned = 0, nlen = strlen(needle);
    while (count < want && ta_now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) != 1)
            continue;
        if (cap - len < 65536) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        for (char *q = buf + scanned; (q = strstr(q, needle)); q += nlen)
            count++;
        scanned = len > nlen ? len - nlen + 1 : 0;
        /* Do not count a match twice across reads. */
        while (scanned < len && buf[scanned] != '\n')
            scanned++;
    }
    if (all)
        *all = buf;
    else
        free(buf);
    return count;
}

static long long healthz_ms(const ta_agent_t *a)
{
    long long t0 = ta_now_ms();
    th_resp_t r;
    ta_api(a, "GET", "/healthz", NULL, NULL, &r);
    long long took = ta_now_ms() - t0;
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    return took;
}

static void test_many_snapshot_watchers(void **state)
{
    (void)state;
    ta_agent_t a;
    memset(&a, 0, sizeof(a));
    ta_opts_t o = {0};
    assert_int_equal(ta_start(&a, &o), 0);
    char pad[1001];
    memset(pad, 'p', 1000);
    pad[1000] = '\0';
    size_t cap = NENVS * 1200 + 64, off = 0;
    char *body = malloc(cap);
    off += (size_t)snprintf(body + off, cap - off, "{\"items\":[");
    for (int i = 0; i < NENVS; i++)
        off += (size_t)snprintf(body + off, cap - off,
                                "%s{\"id\":\"w-%04d\",\"userId\":\"u\",\"name\":\"n\","
                                "\"cloudRegion\":\"eastus\",\"env\":{\"PAD\":\"%s\"}}",
                                i ? "," : "", i, pad);
    snprintf(body + off, cap - off, "]}");
    th_resp_t r;
    ta_req(&a, "PUT", "/api/v1/environments", body, &r);
    assert_int_equal(r.status, 200);
    th_resp_free(&r);
    free(body);

    long rss0 = th_proc_kib(a.proc.pid, "VmRSS:");
    int fds[NWATCHERS];
    long long worst = 0;
    for (int i = 0; i < NWATCHERS; i++) {
        fds[i] = open_watch(a.port, 4096);
        assert_true(fds[i] >= 0);
        if (i % 20 == 0) {
            long long t = healthz_ms(&a);
            worst = t > worst ? t : worst;
        }
    }
    for (int i = 0; i < 30; i++) {
        long long t = healthz_ms(&a);
        worst = t > worst ? t : worst;
        ta_sleep_ms(10);
    }
    long rss1 = th_proc_kib(a.proc.pid, "VmRSS:");
    print_message("%d envs, %d watchers not reading: worst /healthz %lld ms, RSS %ld -> %ld KiB\n",
                  NENVS, NWATCHERS, worst, rss0, rss1);
    assert_true(worst < STALL_BOUND_MS);
    if (!th_proc_sanitized(a.proc.pid))
        assert_true(rss1 - rss0 < RSS_GROWTH_BOUND_MIB * 1024L);

    /* One of them reads: every object once, then it follows. */
    char *all = NULL;
    size_t added = read_until(fds[0], "event: ADDED", NENVS, 20000, &all);
    free(all);
    assert_int_equal(added, NENVS);
    char *spec = ta_spec("u", "late", "eastus", NULL);
    assert_int_equal(ta_put(&a, "w-late", spec), 201);
    free(spec);
    assert_int_equal(read_until(fds[0], "\"id\":\"w-late\"", 1, 5000, NULL), 1);
    for (int i = 0; i < NWATCHERS; i++)
        close(fds[i]);
    assert_int_equal(healthz_ms(&a) < STALL_BOUND_MS, 1);
    assert_int_equal(ta_stop(&a), 0);
}

static void test_slow_watcher_is_cut_with_relist_event(void **state)
{
    (void)state;
    ta_agent_t a;
    memset(&a, 0, sizeof(a));
    ta_opts_t o = {0};
    assert_int_equal(ta_start(&a, &o), 0);
    char *spec = ta_spec("u", "slow", "eastus", NULL);
    assert_int_equal(ta_put(&a, "slow-0", spec), 201);
    free(spec);
    int fd = open_watch(a.port, 4096);
    assert_true(fd >= 0);
    assert_int_equal(read_until(fd, "event: ADDED", 1, 5000, NULL), 1);

    /* The watcher stops reading; ~31 KiB events keep coming. */
    char *big = malloc(31000);
    memset(big, 'b', 30000);
    big[30000] = '\0';
    char extra[30100];
    int cut_seen_at = -1;
    for (int i = 0; i < 600 && cut_seen_at < 0; i++) {
        char val[16];
        snprintf(val, sizeof(val), "%d", i);
        snprintf(extra, sizeof(extra), "\"env\":{\"PAD\":\"%s\",\"I\":\"%s\"}", big, val);
        spec = ta_spec("u", "slow", "eastus", extra);
        assert_int_equal(ta_put(&a, "slow-0", spec), 200);
        free(spec);
        if (i % 50 == 49) {
            char *log = ta_log(&a);
            if (strstr(log, "watch stream cut"))
                cut_seen_at = i;
            free(log);
        }
    }
    free(big);
    assert_true(cut_seen_at > 0);
    /* The client reads on: its events, then the final ERROR, then the end. */
    char *all = NULL;
    size_t len = 0;
    int closed = ta_recv_until_close(fd, &all, &len, 20000);
    assert_int_equal(closed, 1);
    assert_non_null(strstr(all, "event: ERROR\ndata: {\"error\":{\"code\":\"Gone\""));
    assert_non_null(strstr(all, "list again"));
    assert_null(strstr(strstr(all, "event: ERROR"), "event: MODIFIED"));
    free(all);
    close(fd);
    assert_true(healthz_ms(&a) < STALL_BOUND_MS);
    assert_int_equal(ta_stop(&a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_snapshot_watchers),
        cmocka_unit_test(test_slow_watcher_is_cut_with_relist_event),
    };
    return cmocka_run_group_tests_name("watch_stream", tests, NULL, NULL);
}
