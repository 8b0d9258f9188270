/*
 * pkg/spec: the spec hash with a private registry and subnets. Without
 * them the hash is the pinned one of before (no group is recreated on
 * upgrade); with them it changes with each field, and the password enters
 * only as an HMAC under DEV8_SPEC_HASH_KEY.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "spec/spec.h"

#include <cjson/cJSON.h>
#include <string.h>

/* The pinned hash of {BASE} without a key (test_spec.c's GOLDEN_PLAIN). */
#define GOLDEN_PLAIN "8f4777ed4b064085"
#define BASE "{\"userId\":\"u1\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}"

static const char *const regions[] = {"eastus"};
static const char *const images[] = {"node"};
static const spec_rules_t rules = {regions, 1, images, 1, 1024};
static const int ports[] = {8080};
static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
static char *const subnet_a[] = {(char *)"/subscriptions/s/resourceGroups/r/providers/"
                                         "Microsoft.Network/virtualNetworks/v/subnets/a"};
static char *const subnet_b[] = {(char *)"/subscriptions/s/resourceGroups/r/providers/"
                                         "Microsoft.Network/virtualNetworks/v/subnets/b"};

static void hash(const spec_hash_input_t *in, char out[17])
{
    cJSON *o = cJSON_Parse(BASE);
    env_spec_t s;
    spec_error_t err;
    assert_int_equal(spec_decode(o, "env1", &rules, "", &s, NULL, &err), 0);
    cJSON_Delete(o);
    spec_hash(&s, in, out);
    spec_release(&s);
}

static spec_hash_input_t input(const unsigned char *k)
{
    spec_hash_input_t in = {.image = "img:1",
                            .ports = ports,
                            .nports = 1,
                            .mount_path = "/home/dev8",
                            .key = k,
                            .keylen = k ? 32 : 0};
    return in;
}

static void test_without_registry_the_hash_is_unchanged(void **state)
{
    (void)state;
    char h[17];
    spec_hash_input_t in = input(NULL);
    hash(&in, h);
    assert_string_equal(h, GOLDEN_PLAIN);
    /* A password without a server is not a registry. */
    in.registry_password = "x";
    hash(&in, h);
    assert_string_equal(h, GOLDEN_PLAIN);
}

static void test_registry_fields_change_the_hash(void **state)
{
    (void)state;
    char plain[17], a[17], b[17];
    spec_hash_input_t in = input(key);
    hash(&in, plain);
    in.registry_server = "myacr.azurecr.io";
    in.registry_username = "u";
    in.registry_password = "pw-one";
    hash(&in, a);
    assert_string_not_equal(a, plain);
    in.registry_password = "pw-two"; /* a rotated password recreates the group */
    hash(&in, b);
    assert_string_not_equal(a, b);
    in.registry_password = "pw-one";
    hash(&in, b);
    assert_string_equal(a, b);
    in.registry_username = "v";
    hash(&in, b);
    assert_string_not_equal(a, b);
    /* An identity instead of a password. */
    spec_hash_input_t mi = input(key);
    mi.registry_server = "myacr.azurecr.io";
    mi.registry_identity = "/subscriptions/s/id1";
    hash(&mi, a);
    mi.registry_identity = "/subscriptions/s/id2";
    hash(&mi, b);
    assert_string_not_equal(a, b);
}

/* Without a key the password leaves no trace: only its presence counts. */
static void test_unkeyed_password_is_left_out(void **state)
{
    (void)state;
    char a[17], b[17];
    spec_hash_input_t in = input(NULL);
    in.registry_server = "myacr.azurecr.io";
    in.registry_username = "u";
    in.registry_password = "pw-one";
    hash(&in, a);
    in.registry_password = "pw-two";
    hash(&in, b);
    assert_string_equal(a, b);
}

static void test_subnets_change_the_hash(void **state)
{
    (void)state;
    char plain[17], a[17], b[17];
    spec_hash_input_t in = input(NULL);
    hash(&in, plain);
    in.subnet_ids = subnet_a;
    in.nsubnet_ids = 1;
    hash(&in, a);
    assert_string_not_equal(a, plain);
    in.subnet_ids = subnet_b;
    hash(&in, b);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_registry_the_hash_is_unchanged),
        cmocka_unit_test(test_registry_fields_change_the_hash),
        cmocka_unit_test(test_unkeyed_password_is_left_out),
        cmocka_unit_test(test_subnets_change_the_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
