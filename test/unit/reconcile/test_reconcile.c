/* Unit tests of pkg/reconcile's pure rules: auto-stop timing. The
 * decision table is in test_decide.c; the loop itself is tested end to end against azsim
 * (test/integration/test_reconcile*.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "reconcile/decide.h"

#include <string.h>

#define MINUTE 60000LL
#define T0 1800000000000LL /* an arbitrary wall time */

static void test_auto_stop_off_when_zero(void **state)
{
    (void)state;
    assert_false(reconcile_auto_stop_due(0, T0, 0, T0, T0 + 1000 * MINUTE));
}

static void test_auto_stop_counts_from_last_activity(void **state)
{
    (void)state;
    int64_t act = T0 + 10 * MINUTE;
    assert_false(reconcile_auto_stop_due(30, T0, act, T0, act + 30 * MINUTE - 1));
    assert_true(reconcile_auto_stop_due(30, T0, act, T0, act + 30 * MINUTE));
}

static void test_auto_stop_never_before_agent_start(void **state)
{
    (void)state;
    /* Activity long ago, but the agent just started: the clock starts now. */
    int64_t start = T0 + 500 * MINUTE;
    assert_false(reconcile_auto_stop_due(5, start, T0, 0, start + 5 * MINUTE - 1));
    assert_true(reconcile_auto_stop_due(5, start, T0, 0, start + 5 * MINUTE));
}

static void test_auto_stop_counts_from_becoming_running(void **state)
{
    (void)state;
    /* A start after a long stop: the time it was stopped does not count. */
    int64_t running = T0 + 100 * MINUTE;
    assert_false(reconcile_auto_stop_due(10, T0, T0, running, running + 9 * MINUTE));
    assert_true(reconcile_auto_stop_due(10, T0, T0, running, running + 10 * MINUTE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_stop_off_when_zero),
        cmocka_unit_test(test_auto_stop_counts_from_last_activity),
        cmocka_unit_test(test_auto_stop_never_before_agent_start),
        cmocka_unit_test(test_auto_stop_counts_from_becoming_running),
    };
    return cmocka_run_group_tests_name("reconcile", tests, NULL, NULL);
}
