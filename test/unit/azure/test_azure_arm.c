/*
 * Unit tests of pkg/azure for ARM as Microsoft documents it (issue 11,
 * client side), without a server: the origin check of nextLinks (ARM
 * writes the default port). test_azure.c has the client's buckets (one
 * ARM set per subscription); test/integration/test_azure_arm.c drives the
 * same behaviours over HTTP.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/azure.h"
#include "azure/azure_int.h"
#include "helpers/azure_specs.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <string.h>

/* ------------------------------------------------------------ paging */

static void test_same_origin(void **state)
{
    (void)state;
    const char *arm = "https://management.azure.com";
    static const struct {
        const char *url;
        int same;
    } cases[] = {
        /* What ARM sends: the default port written out, $skipToken as is. */
        {"https://management.azure.com:443/subscriptions/s/providers/Microsoft.Compute/"
         "virtualMachines?api-version=2021-11-01&$skiptoken=abc%3D%3D",
         1},
        {"https://management.azure.com/subscriptions/s?$skipToken=x", 1},
        {"HTTPS://Management.Azure.COM:443/subscriptions/s", 1},
        {"https://management.azure.com:/subscriptions/s", 1}, /* empty port: the default */
        {"https://management.azure.com?api-version=1", 1},
        {"https://management.azure.com:8443/subscriptions/s", 0},
        {"https://management.azure.com:80/subscriptions/s", 0},
        {"http://management.azure.com/subscriptions/s", 0},
        {"http://management.azure.com:443/subscriptions/s", 0},
        {"https://management.azure.com.evil.example/subscriptions/s", 0},
        {"https://management.azure.com@evil.example/subscriptions/s", 0},
        {"https://user@management.azure.com/subscriptions/s", 0},
        {"https://evil.example/?https://management.azure.com/", 0},
        {"https://management.azure.com:99999/subscriptions/s", 0},
        {"https://management.azure.com:44x/subscriptions/s", 0},
        {"https://management.azure.com", 0}, /* no path: nothing under armEndpoint */
        {"ftp://management.azure.com/subscriptions/s", 0},
        {"/subscriptions/s", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (azure__same_origin(arm, cases[i].url) != cases[i].same)
            fail_msg("%s: expected %d", cases[i].url, cases[i].same);
    }
    /* http and port 80 likewise; another port must match exactly. */
    assert_int_equal(azure__same_origin("http://arm.local", "http://ARM.local:80/x?y"), 1);
    assert_int_equal(azure__same_origin("http://arm.local:80", "http://arm.local/x"), 1);
    assert_int_equal(azure__same_origin("http://127.0.0.1:9090", "http://127.0.0.1:9090/x"), 1);
    assert_int_equal(azure__same_origin("http://127.0.0.1:9090", "http://127.0.0.1/x"), 0);
    assert_int_equal(azure__same_origin("http://127.0.0.1:9090", "http://127.0.0.1:9091/x"), 0);
    assert_int_equal(azure__same_origin("http://[::1]:9090", "http://[::1]:9090/x"), 1);
    assert_int_equal(azure__same_origin("http://[::1]:9090", "http://[::2]:9090/x"), 0);
    /* A base with a path (an emulator behind a prefix): under it only. */
    assert_int_equal(azure__same_origin("http://h:1/arm", "http://h:1/arm/subscriptions"), 1);
    assert_int_equal(azure__same_origin("http://h:1/arm/", "http://h:1/arm?x"), 1);
    assert_int_equal(azure__same_origin("http://h:1/arm", "http://h:1/armx/subscriptions"), 0);
    assert_int_equal(azure__same_origin("http://h:1/arm", "http://h:1/subscriptions"), 0);
    assert_int_equal(azure__same_origin(NULL, "http://h/x"), 0);
    assert_int_equal(azure__same_origin("http://h", NULL), 0);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_origin),
    };
    return cmocka_run_group_tests_name("azure_arm", tests, NULL, NULL);
}
