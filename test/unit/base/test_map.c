/* Unit tests of pkg/base: the string map (insert, replace, delete with
 * backward shift, iteration), the byte buffer, constant-time comparison,
 * RFC 3339 formatting, the error table, the retry backoff and d8_die. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "base/map.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- map ---------------------------------------------------------------- */

static void test_map_put_get_replace_del(void **state)
{
    (void)state;
    d8_map_t m;
    d8_map_init(&m);
    int a = 1, b = 2, c = 3;
    assert_int_equal(m.count, 0);
    assert_null(d8_map_get(&m, "a"));
    assert_null(d8_map_del(&m, "a"));

    assert_null(d8_map_put(&m, "a", &a));
    assert_null(d8_map_put(&m, "b", &b));
    assert_int_equal(m.count, 2);
    assert_ptr_equal(d8_map_get(&m, "a"), &a);
    assert_ptr_equal(d8_map_get(&m, "b"), &b);
    assert_null(d8_map_get(&m, "c"));
    assert_null(d8_map_get(&m, ""));
    assert_null(d8_map_get(&m, "aa"));

    /* Replace returns the previous value and keeps the count. */
    assert_ptr_equal(d8_map_put(&m, "a", &c), &a);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(d8_map_get(&m, "a"), &c);

    assert_ptr_equal(d8_map_del(&m, "a"), &c);
    assert_int_equal(m.count, 1);
    assert_null(d8_map_get(&m, "a"));
    assert_null(d8_map_del(&m, "a"));
    assert_ptr_equal(d8_map_get(&m, "b"), &b);

    /* The empty string is a key like any other. */
    assert_null(d8_map_put(&m, "", &a));
    assert_ptr_equal(d8_map_get(&m, ""), &a);
    assert_ptr_equal(d8_map_del(&m, ""), &a);
    assert_int_equal(m.count, 1);
    d8_map_release(&m);
    assert_int_equal(m.count, 0);
}

static void test_map_replace_takes_new_key_pointer(void **state)
{
    (void)state;
    /* Keys are borrowed: after a replace the map must use the new key, so
     * the old one may be freed (ASan reports a use after free if not). */
    d8_map_t m;
    d8_map_init(&m);
    int v1 = 1, v2 = 2;
    char *k1 = d8_xstrdup("env-1");
    char *k2 = d8_xstrdup("env-1");
    assert_null(d8_map_put(&m, k1, &v1));
    assert_ptr_equal(d8_map_put(&m, k2, &v2), &v1);
    free(k1);
    for (int i = 0; i < 100; i++) { /* force growth: every key rehashed */
        char *k = d8_xmalloc(16);
        snprintf(k, 16, "x%d", i);
        d8_map_put(&m, k, k);
    }
    assert_ptr_equal(d8_map_get(&m, "env-1"), &v2);
    assert_ptr_equal(d8_map_del(&m, "env-1"), &v2);
    size_t i = 0;
    char *k;
    while ((k = d8_map_next(&m, &i)))
        free(k);
    d8_map_release(&m);
    free(k2);
}

#define NKEYS 50000

static void test_map_many_keys_with_deletions(void **state)
{
    (void)state;
    char(*keys)[16] = d8_xcalloc(NKEYS, sizeof(*keys));
    int *vals = d8_xcalloc(NKEYS, sizeof(int));
    char *present = d8_xcalloc(NKEYS, 1);
    d8_map_t m;
    d8_map_init(&m);
    size_t live = 0;

    /* Insertions with deletions interleaved, so deletions happen at every
     * table size and load. */
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < NKEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "env-%d", i);
        vals[i] = i;
        assert_null(d8_map_put(&m, keys[i], &vals[i]));
        present[i] = 1;
        live++;
        if (i % 3 == 2) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int j = (int)(x % (uint64_t)(i + 1));
            void *v = d8_map_del(&m, keys[j]);
            if (present[j]) {
                assert_ptr_equal(v, &vals[j]);
                present[j] = 0;
                live--;
            } else {
                assert_null(v);
            }
        }
    }
    assert_int_equal(m.count, live);
    for (int i = 0; i < NKEYS; i++) {
        if (present[i])
            assert_ptr_equal(d8_map_get(&m, keys[i]), &vals[i]);
        else
            assert_null(d8_map_get(&m, keys[i]));
    }

    /* Delete every other remaining key, then check every key again. */
    for (int i = 0; i < NKEYS; i += 2) {
        if (present[i]) {
            assert_ptr_equal(d8_map_del(&m, keys[i]), &vals[i]);
            present[i] = 0;
            live--;
        }
    }
    assert_int_equal(m.count, live);
    for (int i = 0; i < NKEYS; i++) {
        if (present[i])
            assert_ptr_equal(d8_map_get(&m, keys[i]), &vals[i]);
        else
            assert_null(d8_map_get(&m, keys[i]));
    }

    /* Put everything back. */
    for (int i = 0; i < NKEYS; i++) {
        void *prev = d8_map_put(&m, keys[i], &vals[i]);
        if (present[i])
            assert_ptr_equal(prev, &vals[i]);
        else
            assert_null(prev);
    }
    assert_int_equal(m.count, NKEYS);
    for (int i = 0; i < NKEYS; i++)
        assert_ptr_equal(d8_map_get(&m, keys[i]), &vals[i]);

    d8_map_release(&m);
    free(present);
    free(vals);
    free(keys);
}

/*
 * Small maps under random insert/delete, checked against a plain array
 * after every step. At up to 12 keys in a 16-slot table, probe chains
 * often wrap from the last slot to the first, which is where a
 * backward-shift deletion is easiest to get wrong.
 */
static void test_map_small_random_against_model(void **state)
{
    (void)state;
    enum { UNIVERSE = 40, TRIALS = 3000, STEPS = 60 };
    char keys[UNIVERSE][16];
    int vals[UNIVERSE];
    for (int i = 0; i < UNIVERSE; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        vals[i] = i;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int wrapped = 0;
    for (int t = 0; t < TRIALS; t++) {
        d8_map_t m;
        d8_map_init(&m);
        char present[UNIVERSE] = {0};
        size_t live = 0;
        for (int step = 0; step < STEPS; step++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int k = (int)(x % UNIVERSE);
            int insert = live < 6 || (live < 12 && (x >> 32) % 2 == 0);
            if (insert) {
                void *prev = d8_map_put(&m, keys[k], &vals[k]);
                assert_ptr_equal(prev, present[k] ? &vals[k] : NULL);
                if (!present[k])
                    live++;
                present[k] = 1;
            } else {
                void *v = d8_map_del(&m, keys[k]);
                assert_ptr_equal(v, present[k] ? &vals[k] : NULL);
                if (present[k])
                    live--;
                present[k] = 0;
            }
            /* Coverage only: reads the slots to know the case was hit. */
            if (m.slots[0].key && m.slots[m.nslots - 1].key)
                wrapped++;
            assert_int_equal(m.count, live);
            for (int i = 0; i < UNIVERSE; i++)
                assert_ptr_equal(d8_map_get(&m, keys[i]), present[i] ? &vals[i] : NULL);
        }
        d8_map_release(&m);
    }
    assert_true(wrapped > 100);
}

static void test_map_iteration_visits_each_once(void **state)
{
    (void)state;
    d8_map_t m;
    d8_map_init(&m);
    size_t i = 0;
    assert_null(d8_map_next(&m, &i));

    enum { N = 1000 };
    char keys[N][16];
    int vals[N], seen[N];
    for (int k = 0; k < N; k++) {
        snprintf(keys[k], sizeof(keys[k]), "%d", k);
        vals[k] = k;
        d8_map_put(&m, keys[k], &vals[k]);
    }
    for (int k = 0; k < N; k += 3)
        d8_map_del(&m, keys[k]);

    memset(seen, 0, sizeof(seen));
    size_t visited = 0;
    int *v;
    i = 0;
    while ((v = d8_map_next(&m, &i))) {
        assert_true(*v >= 0 && *v < N);
        seen[*v]++;
        visited++;
    }
    assert_int_equal(visited, m.count);
    for (int k = 0; k < N; k++)
        assert_int_equal(seen[k], k % 3 == 0 ? 0 : 1);
    /* The end is sticky. */
    assert_null(d8_map_next(&m, &i));
    d8_map_release(&m);
}

/* ---- d8_buf ------------------------------------------------------------- */

static void test_buf_init_append(void **state)
{
    (void)state;
    d8_buf_t b;
    d8_buf_init(&b);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    d8_buf_puts(&b, "ab");
    d8_buf_putc(&b, 'c');
    d8_buf_append(&b, "d\0e", 3); /* binary safe */
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "abcd\0e", 7);
    d8_buf_append(&b, NULL, 0);
    assert_int_equal(b.len, 6);
    d8_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    d8_buf_release(&b);
    assert_null(b.data);
    d8_buf_release(&b); /* twice is fine */
}

static void test_buf_printf_growth(void **state)
{
    (void)state;
    /* Every length around the capacity steps, against snprintf. */
    char src[700], want[100000];
    for (size_t i = 0; i < sizeof(src) - 1; i++)
        src[i] = (char)('a' + i % 26);
    src[sizeof(src) - 1] = '\0';
    d8_buf_t b;
    d8_buf_init(&b);
    size_t wl = 0;
    for (int n = 0; n < 300; n++) {
        d8_buf_printf(&b, "%.*s|%d", n, src, n);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%.*s|%d", n, src, n);
        assert_int_equal(b.len, wl);
        assert_true(b.cap > b.len);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_memory_equal(b.data, want, wl + 1);
    d8_buf_release(&b);

    /* One big write into a fresh buffer, and into a released one. */
    d8_buf_init(&b);
    d8_buf_printf(&b, "%s-%s", src, src);
    assert_int_equal(b.len, 2 * strlen(src) + 1);
    assert_memory_equal(b.data, src, strlen(src));
    assert_memory_equal(b.data + strlen(src), "-", 1);
    assert_string_equal(b.data + strlen(src) + 1, src);
    d8_buf_release(&b);
    d8_buf_printf(&b, "%d %s %.2f", 42, "x", 1.5);
    assert_string_equal(b.data, "42 x 1.50");
    d8_buf_release(&b);
}

static void test_buf_consume(void **state)
{
    (void)state;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "hello world");
    d8_buf_consume(&b, 0);
    assert_string_equal(b.data, "hello world");
    d8_buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "world");
    d8_buf_puts(&b, "!");
    assert_string_equal(b.data, "world!");
    d8_buf_consume(&b, 6);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    d8_buf_puts(&b, "abc");
    d8_buf_consume(&b, 1000);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    d8_buf_release(&b);
}

static void test_buf_detach(void **state)
{
    (void)state;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "owned text");
    size_t len = 0;
    char *p = d8_buf_detach(&b, &len);
    assert_int_equal(len, 10);
    assert_string_equal(p, "owned text");
    assert_int_equal(b.len, 0);
    /* b is usable again and does not share memory with p. */
    d8_buf_puts(&b, "next");
    assert_string_equal(b.data, "next");
    assert_string_equal(p, "owned text");
    free(p);
    d8_buf_release(&b);

    /* Detaching an empty or released buffer still gives a string. */
    d8_buf_init(&b);
    p = d8_buf_detach(&b, NULL);
    assert_non_null(p);
    assert_string_equal(p, "");
    free(p);
    p = d8_buf_detach(&b, &len);
    assert_non_null(p);
    assert_string_equal(p, "");
    assert_int_equal(len, 0);
    free(p);
    d8_buf_release(&b);
}

static void test_buf_json_str(void **state)
{
    (void)state;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_json_str(&b, "");
    assert_string_equal(b.data, "\"\"");
    d8_buf_reset(&b);

    d8_buf_puts(&b, "x=");
    d8_buf_json_str(&b, "a\"b\\c/d\n\r\t\x01\x1f\x7f \xc3\xa9");
    assert_string_equal(b.data, "x=\"a\\\"b\\\\c/d\\n\\r\\t\\u0001\\u001f\\u007f \xc3\xa9\"");
    d8_buf_reset(&b);

    /* Every control character comes out escaped, never raw. */
    char all[32];
    for (int c = 1; c < 32; c++)
        all[c - 1] = (char)c;
    all[31] = '\0';
    d8_buf_json_str(&b, all);
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] >= 0x20);
    assert_non_null(strstr(b.data, "\\u0008"));
    assert_non_null(strstr(b.data, "\\u000c"));
    assert_non_null(strstr(b.data, "\\u001b"));
    d8_buf_release(&b);
}

/* ---- misc --------------------------------------------------------------- */

static void test_consttime_eq(void **state)
{
    (void)state;
    assert_true(d8_consttime_eq("secret", 6, "secret", 6));
    assert_true(d8_consttime_eq("", 0, "", 0));
    assert_true(d8_consttime_eq(NULL, 0, NULL, 0));
    assert_false(d8_consttime_eq("secret", 6, "secreT", 6));
    assert_false(d8_consttime_eq("secret", 6, "Secret", 6));
    assert_false(d8_consttime_eq("secret", 6, "secrets", 7));
    assert_false(d8_consttime_eq("secrets", 7, "secret", 6));
    assert_false(d8_consttime_eq("sec", 3, "secret", 6));
    assert_false(d8_consttime_eq("", 0, "x", 1));
    /* A trailing NUL still makes the lengths differ. */
    assert_false(d8_consttime_eq("abc\0", 4, "abc", 3));
    /* Bytes past the given lengths do not matter. */
    assert_true(d8_consttime_eq("abcX", 3, "abcY", 3));
    /* Binary data, high bytes. */
    const unsigned char x[] = {0x00, 0xff, 0x80}, y[] = {0x00, 0xff, 0x81};
    assert_true(d8_consttime_eq(x, 3, x, 3));
    assert_false(d8_consttime_eq(x, 3, y, 3));
}

static void test_rfc3339(void **state)
{
    (void)state;
    char out[32];
    d8_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    d8_rfc3339(1795780800000, out);
    assert_string_equal(out, "2026-11-27T12:00:00Z");
    d8_rfc3339(1795780800999, out); /* milliseconds are dropped */
    assert_string_equal(out, "2026-11-27T12:00:00Z");
    d8_rfc3339(1709251199000, out);
    assert_string_equal(out, "2024-02-29T23:59:59Z");
    d8_rfc3339(1709251200000, out);
    assert_string_equal(out, "2024-03-01T00:00:00Z");
    /* Now is some time this century, in the right shape. */
    d8_rfc3339(d8_wall_ms(), out);
    assert_int_equal(strlen(out), 20);
    assert_memory_equal(out, "20", 2);
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[19], 'Z');
}

static void test_backoff_equal_jitter(void **state)
{
    (void)state;
    const uint64_t base = 1000, cap = 300000;
    /* First failure: [500, 1000). */
    assert_int_equal(d8_backoff_ms(1, base, cap, 0.0), 500);
    assert_int_equal(d8_backoff_ms(1, base, cap, 0.5), 750);
    assert_int_equal(d8_backoff_ms(1, base, cap, 0.999999999), 999);
    /* Doubling. */
    assert_int_equal(d8_backoff_ms(2, base, cap, 0.0), 1000);
    assert_int_equal(d8_backoff_ms(3, base, cap, 0.0), 2000);
    assert_int_equal(d8_backoff_ms(4, base, cap, 0.0), 4000);
    assert_int_equal(d8_backoff_ms(9, base, cap, 0.0), 128000);
    assert_int_equal(d8_backoff_ms(9, base, cap, 0.999999999), 255999);
    /* 2^9 s would be 512 s: capped at 5 min. */
    assert_int_equal(d8_backoff_ms(10, base, cap, 0.0), 150000);
    assert_int_equal(d8_backoff_ms(10, base, cap, 0.999999999), 299999);
    assert_int_equal(d8_backoff_ms(64, base, cap, 0.0), 150000);
    assert_int_equal(d8_backoff_ms(100000, base, cap, 0.999999999), 299999);
    /* A base above the cap is capped. */
    assert_int_equal(d8_backoff_ms(1, 10000, 4000, 0.0), 2000);

    /* Every jitter stays in [d/2, d) and never shrinks as n grows. */
    for (int k = 0; k < 1000; k++) {
        double r = (double)k / 1000.0;
        uint64_t prev = 0;
        for (int n = 1; n <= 40; n++) {
            uint64_t d = base;
            for (int i = 1; i < n && d < cap; i++)
                d *= 2;
            if (d > cap)
                d = cap;
            uint64_t v = d8_backoff_ms((unsigned)n, base, cap, r);
            assert_true(v >= d / 2);
            assert_true(v < d);
            assert_true(v >= prev);
            prev = v;
        }
    }
}

/* What each former caller relied on still holds. */
static void test_backoff_callers(void **state)
{
    (void)state;
    /* Attempt 0 counts as the first. */
    assert_int_equal(d8_backoff_ms(0, 1000, 300000, 0.0), d8_backoff_ms(1, 1000, 300000, 0.0));
    /* rand01 = 1 is the exponential step itself (the state file's
     * retries): 1 s, 2 s, 4 s ... capped at 60 s. */
    uint64_t want = 1000;
    for (unsigned n = 1; n <= 12; n++) {
        assert_int_equal(d8_backoff_ms(n, 1000, 60000, 1.0), want);
        want = want * 2 < 60000 ? want * 2 : 60000;
    }
    /* Out-of-range jitter is clamped, NaN reads as 0. */
    assert_int_equal(d8_backoff_ms(1, 1000, 60000, -3.0), 500);
    assert_int_equal(d8_backoff_ms(1, 1000, 60000, 7.0), 1000);
    assert_int_equal(d8_backoff_ms(1, 1000, 60000, NAN), 500);
    /* The Azure client's retries: never above min(cap, base * 2^(n-1)),
     * and reaching it. */
    for (unsigned retry = 1; retry <= 12; retry++) {
        uint64_t ceiling = 1000ull << (retry - 1);
        if (ceiling > 30000)
            ceiling = 30000;
        uint64_t hi = d8_backoff_ms(retry, 1000, 30000, 0.999999);
        assert_true(hi <= ceiling);
        assert_true(hi + 2 >= ceiling);
        for (int k = 0; k < 100; k++)
            assert_true(d8_backoff_ms(retry, 1000, 30000, k / 100.0) <= ceiling);
    }
    /* No overflow at the top of the range. */
    assert_true(d8_backoff_ms(64, UINT64_MAX / 2, UINT64_MAX, 0.5) > 0);
    assert_int_equal(d8_backoff_ms(200, UINT64_MAX / 2, UINT64_MAX, 1.0), UINT64_MAX);
    assert_int_equal(d8_backoff_ms(3, 0, 1000, 0.5), 0);
}

/* d8_die writes one fatal JSON line and aborts: run it in a child. */
static void test_die(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(fds[1], 2);
        close(fds[0]);
        d8_die("impossible \"state\"\n");
    }
    close(fds[1]);
    char out[512];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_memory_equal(out, "{\"ts\":\"", 7);
    assert_non_null(
        strstr(out, "Z\",\"level\":\"fatal\",\"msg\":\"impossible \\\"state\\\"\\u000a\"}\n"));
}

static void test_errors(void **state)
{
    (void)state;
    struct {
        int code;
        const char *name;
        const char *text;
    } all[] = {
#define D8_X(name, val, str) {D8_##name, #name, str},
        D8_ERRNO_MAP(D8_X)
#undef D8_X
    };
    size_t n = sizeof(all) / sizeof(all[0]);
    assert_int_equal(n, 15);
    for (size_t i = 0; i < n; i++) {
        assert_true(all[i].code < 0);
        assert_string_equal(d8_err_name(all[i].code), all[i].name);
        assert_string_equal(d8_strerror(all[i].code), all[i].text);
        assert_string_not_equal(d8_strerror(all[i].code), "unknown error");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(all[i].code, all[j].code);
            assert_string_not_equal(d8_strerror(all[i].code), d8_strerror(all[j].code));
        }
    }
    assert_string_equal(d8_err_name(D8_ENOENT), "ENOENT");
    assert_string_equal(d8_strerror(D8_ENOENT), "not found");
    assert_string_equal(d8_err_name(D8_OK), "OK");
    assert_string_equal(d8_strerror(D8_OK), "success");
    const int unknown[] = {1, 5, -16, -999, -2147483647 - 1};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(d8_strerror(unknown[i]), "unknown error");
        assert_string_equal(d8_err_name(unknown[i]), "EUNKNOWN");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_put_get_replace_del),
        cmocka_unit_test(test_map_replace_takes_new_key_pointer),
        cmocka_unit_test(test_map_many_keys_with_deletions),
        cmocka_unit_test(test_map_small_random_against_model),
        cmocka_unit_test(test_map_iteration_visits_each_once),
        cmocka_unit_test(test_buf_init_append),
        cmocka_unit_test(test_buf_printf_growth),
        cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_buf_detach),
        cmocka_unit_test(test_buf_json_str),
        cmocka_unit_test(test_consttime_eq),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_backoff_equal_jitter),
        cmocka_unit_test(test_backoff_callers),
        cmocka_unit_test(test_die),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
