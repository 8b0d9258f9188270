/*
 * pkg/activity: a token opens one environment's activity route; it is a
 * stable function of the key and the id, and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "activity/activity.h"

#include <string.h>

#define KEY "0123456789abcdef-key"

static void test_tokens(void **state)
{
    (void)state;
    assert_null(activity_new("", (const unsigned char *)KEY, strlen(KEY)));
    assert_null(activity_new("https://x", NULL, 0));
    activity_t *a =
        activity_new("https://dev8.example.com//", (const unsigned char *)KEY, strlen(KEY));
    activity_t *b =
        activity_new("https://dev8.example.com", (const unsigned char *)"other-key-0123", 14);
    assert_non_null(a);
    char t1[ACTIVITY_TOKEN_LEN + 1], t2[ACTIVITY_TOKEN_LEN + 1], t3[ACTIVITY_TOKEN_LEN + 1];
    activity_token(a, "env-1", t1);
    activity_token(a, "env-1", t2);
    assert_string_equal(t1, t2); /* stable: a restarted agent accepts old tokens */
    assert_int_equal(strlen(t1), 64);
    assert_int_equal(strspn(t1, "0123456789abcdef"), 64);
    activity_token(a, "env-2", t2);
    assert_string_not_equal(t1, t2); /* scoped to one environment */
    activity_token(b, "env-1", t3);
    assert_string_not_equal(t1, t3); /* and to the key */
    assert_true(activity_token_ok(a, "env-1", t1, 64));
    assert_false(activity_token_ok(a, "env-2", t1, 64));
    assert_false(activity_token_ok(b, "env-1", t1, 64));
    assert_false(activity_token_ok(a, "env-1", t1, 63));
    assert_false(activity_token_ok(a, "env-1", "", 0));
    assert_false(activity_token_ok(NULL, "env-1", t1, 64));
    /* Ids beyond any fixed message buffer: each its own token. */
    char long1[301], long2[301];
    memset(long1, 'a', 300);
    long1[300] = '\0';
    memcpy(long2, long1, sizeof(long1));
    long2[299] = 'b';
    activity_token(a, long1, t2);
    activity_token(a, long2, t3);
    assert_string_not_equal(t2, t3);
    assert_true(activity_token_ok(a, long1, t2, 64));
    char url[128];
    assert_int_equal(activity_url(a, "env-1", url, sizeof url), 0);
    assert_string_equal(url, "https://dev8.example.com/api/v1/environments/env-1/activity");
    assert_int_equal(activity_url(a, "env-1", url, 20), -1);
    activity_free(a);
    activity_free(b);
    activity_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tokens)};
    return cmocka_run_group_tests_name("activity", tests, NULL, NULL);
}
