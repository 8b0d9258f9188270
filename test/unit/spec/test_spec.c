/*
 * Unit tests of pkg/spec: every rule of DESIGN.md section 3 on both sides
 * of its bounds, defaults, normalisation, encoding with redaction,
 * comparison, copying and the spec hash of section 4.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "spec/spec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Pinned values of spec_hash (see test_hash_stable), checked against an
 * independent implementation of the encoding described in spec_hash.c.
 */
#define GOLDEN_PLAIN "8f4777ed4b064085"
#define GOLDEN_KEYED "6f5c8187a1fb845d"

#define BASE "\"userId\":\"u1\",\"name\":\"n\",\"cloudRegion\":\"eastus\""

static const char *const regions[] = {"eastus", "westeurope"};
static const char *const images[] = {"node", "python"};
static const spec_rules_t rules = {regions, 2, images, 2, 1024};

/* Parses json and decodes it; the parsed tree is freed here. */
static int decode_r(const spec_rules_t *r, const char *json, const char *id, const char *prefix,
                    env_spec_t *out, char *id_out, spec_error_t *err)
{
    cJSON *o = cJSON_Parse(json);
    int rc;

    if (!o)
        fail_msg("test JSON does not parse: %s", json);
    rc = spec_decode(o, id, r, prefix, out, id_out, err);
    cJSON_Delete(o);
    return rc;
}

/* Asserts that json decodes (with path id "env1") into *out. */
static void ok_r(const spec_rules_t *r, const char *json, env_spec_t *out)
{
    spec_error_t err;
    int rc = decode_r(r, json, "env1", "", out, NULL, &err);

    if (rc != 0)
        fail_msg("decode of %s failed: %s %s: %s", json, err.code, err.field, err.message);
}

static void ok(const char *json, env_spec_t *out)
{
    ok_r(&rules, json, out);
}

/* Asserts that json is rejected with code and field, and checks the failure contract. */
static void bad_full(const spec_rules_t *r, const char *json, const char *id, const char *prefix,
                     const char *code, const char *field, spec_error_t *err_out)
{
    spec_error_t err;
    env_spec_t s;
    char id_out[SPEC_ID_MAX + 1] = "garbage";
    static const env_spec_t zero;
    int rc;

    memset(&s, 0x5a, sizeof(s));
    rc = decode_r(r, json, id, prefix, &s, id_out, &err);
    if (rc == 0) {
        spec_release(&s);
        fail_msg("decode of %s succeeded; expected %s at %s", json, code, field);
    }
    assert_int_equal(rc, D8_EINVAL);
    assert_string_equal(err.code, code);
    assert_string_equal(err.field, field);
    assert_true(strlen(err.message) > 0);
    assert_memory_equal(&s, &zero, sizeof(s));
    assert_string_equal(id_out, "");
    if (err_out)
        *err_out = err;
}

static void bad(const char *json, const char *code, const char *field)
{
    bad_full(&rules, json, "env1", "", code, field, NULL);
}

static void bad_spec(const char *json, const char *field)
{
    bad(json, "InvalidSpec", field);
}

/* ---- ids ---- */

static void test_id_valid(void **state)
{
    char id[SPEC_ID_MAX + 2];

    (void)state;
    assert_true(spec_id_valid("a"));
    assert_true(spec_id_valid("0"));
    assert_true(spec_id_valid("ckx1"));
    assert_true(spec_id_valid("a-b"));
    assert_true(spec_id_valid("clh3z9x0a0000qz0h1b2c3d4e"));
    memset(id, 'a', SPEC_ID_MAX);
    id[SPEC_ID_MAX] = '\0';
    assert_true(spec_id_valid(id));
    id[SPEC_ID_MAX] = 'a';
    id[SPEC_ID_MAX + 1] = '\0';
    assert_false(spec_id_valid(id));

    assert_false(spec_id_valid(NULL));
    assert_false(spec_id_valid(""));
    assert_false(spec_id_valid("-a"));
    assert_false(spec_id_valid("a-"));
    assert_false(spec_id_valid("-"));
    assert_false(spec_id_valid("a--b"));
    assert_false(spec_id_valid("A"));
    assert_false(spec_id_valid("a_b"));
    assert_false(spec_id_valid("a.b"));
    assert_false(spec_id_valid("a b"));
    assert_false(spec_id_valid("\xc3\xa9"));
}

static void test_id_in_body(void **state)
{
    env_spec_t s;
    char id_out[SPEC_ID_MAX + 1];
    spec_error_t err;

    (void)state;
    /* Equal to the path id: accepted and reported. */
    assert_int_equal(decode_r(&rules, "{" BASE ",\"id\":\"env1\"}", "env1", "", &s, id_out, &err),
                     0);
    assert_string_equal(id_out, "env1");
    spec_release(&s);
    /* Absent: the path id is reported. */
    assert_int_equal(decode_r(&rules, "{" BASE "}", "env1", "", &s, id_out, &err), 0);
    assert_string_equal(id_out, "env1");
    spec_release(&s);
    /* null counts as absent. */
    ok("{" BASE ",\"id\":null}", &s);
    spec_release(&s);

    bad("{" BASE ",\"id\":\"env2\"}", "InvalidId", "id");
    bad("{" BASE ",\"id\":\"ENV1\"}", "InvalidId", "id");
    bad("{" BASE ",\"id\":1}", "InvalidId", "id");
    /* An invalid path id is refused even with a valid body. */
    bad_full(&rules, "{" BASE "}", "Bad_Id", "", "InvalidId", "", NULL);
    bad_full(&rules, "{" BASE "}", "a--b", "", "InvalidId", "", NULL);
}

static void test_full_sync_id(void **state)
{
    env_spec_t s;
    char id_out[SPEC_ID_MAX + 1];
    spec_error_t err;

    (void)state;
    assert_int_equal(
        decode_r(&rules, "{\"id\":\"ckx9\"," BASE "}", NULL, "items[2].", &s, id_out, &err), 0);
    assert_string_equal(id_out, "ckx9");
    spec_release(&s);
    /* id_out may be NULL. */
    assert_int_equal(decode_r(&rules, "{\"id\":\"ckx9\"," BASE "}", NULL, "", &s, NULL, &err), 0);
    spec_release(&s);

    bad_full(&rules, "{" BASE "}", NULL, "items[2].", "InvalidId", "items[2].id", NULL);
    bad_full(&rules, "{\"id\":null," BASE "}", NULL, "items[2].", "InvalidId", "items[2].id", NULL);
    bad_full(&rules, "{\"id\":\"a--b\"," BASE "}", NULL, "items[0].", "InvalidId", "items[0].id",
             NULL);
    bad_full(&rules, "{\"id\":\"-a\"," BASE "}", NULL, "", "InvalidId", "id", NULL);
    bad_full(&rules, "{\"id\":7," BASE "}", NULL, "", "InvalidId", "id", NULL);
    bad_full(&rules, "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"," BASE "}",
             NULL, "", "InvalidId", "id", NULL);
}

/* ---- structure ---- */

static void test_not_object(void **state)
{
    spec_error_t err;
    env_spec_t s;

    (void)state;
    bad_spec("[]", "");
    bad_spec("1", "");
    bad_spec("\"x\"", "");
    bad_spec("null", "");
    bad_full(&rules, "[1]", "env1", "items[3].", "InvalidSpec", "items[3]", NULL);
    assert_int_equal(spec_decode(NULL, "env1", &rules, "", &s, NULL, &err), D8_EINVAL);
    assert_string_equal(err.code, "InvalidSpec");
    /* A NULL error pointer is allowed. */
    assert_int_equal(spec_decode(NULL, "env1", &rules, NULL, &s, NULL, NULL), D8_EINVAL);
}

static void test_unknown_field(void **state)
{
    spec_error_t err;

    (void)state;
    bad_full(&rules, "{" BASE ",\"cpu\":1}", "env1", "", "InvalidSpec", "cpu", &err);
    assert_non_null(strstr(err.message, "\"cpu\""));
    /* Field names are case-sensitive. */
    bad_spec("{" BASE ",\"CpuCores\":1}", "CpuCores");
    bad_spec("{" BASE ",\"status\":{}}", "status");
    bad_spec("{" BASE ",\"\":1}", "");
    /* A hostile key is shown with control bytes and invalid UTF-8 replaced. */
    bad_full(&rules, "{" BASE ",\"a\\u0001b\xff\":1}", "env1", "", "InvalidSpec", "a?b?", &err);
    assert_non_null(strstr(err.message, "a?b?"));
    /* A long one is cut to 64 bytes and marked. */
    {
        char json[256], expect[80];

        snprintf(json, sizeof(json), "{" BASE ",\"%0100d\":1}", 0);
        snprintf(expect, sizeof(expect), "%064d...", 0);
        bad_full(&rules, json, "env1", "", "InvalidSpec", expect, NULL);
    }
}

static void test_duplicate_key(void **state)
{
    spec_error_t err;

    (void)state;
    bad_full(&rules, "{" BASE ",\"name\":\"m\"}", "env1", "", "InvalidSpec", "name", &err);
    assert_non_null(strstr(err.message, "more than once"));
    bad_spec("{" BASE ",\"cpuCores\":1,\"cpuCores\":1}", "cpuCores");
    bad_spec("{" BASE ",\"env\":{\"FOO\":\"a\",\"BAR\":\"b\",\"FOO\":\"a\"}}", "env.FOO");
    bad_spec("{" BASE ",\"secretEnv\":{\"T\":\"a\",\"T\":\"b\"}}", "secretEnv.T");
    bad_spec("{" BASE ",\"env\":{},\"env\":{}}", "env");
}

static void test_cloud_provider(void **state)
{
    env_spec_t s;

    (void)state;
    ok("{" BASE ",\"cloudProvider\":\"AZURE\"}", &s);
    spec_release(&s);
    ok("{" BASE ",\"cloudProvider\":null}", &s);
    spec_release(&s);
    bad_spec("{" BASE ",\"cloudProvider\":\"AWS\"}", "cloudProvider");
    bad_spec("{" BASE ",\"cloudProvider\":\"azure\"}", "cloudProvider");
    bad_spec("{" BASE ",\"cloudProvider\":1}", "cloudProvider");
}

/* ---- defaults and a full body ---- */

static void test_defaults(void **state)
{
    env_spec_t s;

    (void)state;
    ok("{" BASE "}", &s);
    assert_string_equal(s.user_id, "u1");
    assert_string_equal(s.name, "n");
    assert_string_equal(s.cloud_region, "eastus");
    assert_string_equal(s.base_image, "node");
    assert_int_equal(s.cpu_halves, 4);
    assert_int_equal(s.memory_halves, 8);
    assert_int_equal(s.storage_gb, 20);
    assert_int_equal(s.power, SPEC_POWER_RUNNING);
    assert_int_equal(s.nenv, 0);
    assert_null(s.env);
    assert_int_equal(s.nsecret, 0);
    assert_null(s.secret_env);
    assert_int_equal(s.auto_stop_minutes, 0);
    assert_int_equal(s.storage_policy, SPEC_STORAGE_DELETE);
    spec_release(&s);

    /* null means the default for every optional field. */
    ok("{" BASE ",\"baseImage\":null,\"cpuCores\":null,\"memoryGB\":null,\"storageGB\":null,"
       "\"powerState\":null,\"env\":null,\"secretEnv\":null,\"autoStopMinutes\":null,"
       "\"storagePolicy\":null}",
       &s);
    assert_string_equal(s.base_image, "node");
    assert_int_equal(s.cpu_halves, 4);
    assert_int_equal(s.memory_halves, 8);
    assert_int_equal(s.storage_gb, 20);
    assert_int_equal(s.power, SPEC_POWER_RUNNING);
    assert_int_equal(s.nenv + s.nsecret, 0);
    assert_int_equal(s.auto_stop_minutes, 0);
    assert_int_equal(s.storage_policy, SPEC_STORAGE_DELETE);
    spec_release(&s);
}

static void test_full_body(void **state)
{
    env_spec_t s;

    (void)state;
    ok("{\"id\":\"env1\",\"cloudProvider\":\"AZURE\",\"userId\":\"user-7\",\"name\":\"My env\","
       "\"cloudRegion\":\"westeurope\",\"baseImage\":\"python\",\"cpuCores\":1.5,"
       "\"memoryGB\":2.5,\"storageGB\":100,\"powerState\":\"Stopped\","
       "\"env\":{\"B\":\"2\",\"A\":\"1\"},\"secretEnv\":{\"TOKEN\":\"s3cr3t\"},"
       "\"autoStopMinutes\":30,\"storagePolicy\":\"Retain\"}",
       &s);
    assert_string_equal(s.user_id, "user-7");
    assert_string_equal(s.name, "My env");
    assert_string_equal(s.cloud_region, "westeurope");
    assert_string_equal(s.base_image, "python");
    assert_int_equal(s.cpu_halves, 3);
    assert_int_equal(s.memory_halves, 5);
    assert_int_equal(s.storage_gb, 100);
    assert_int_equal(s.power, SPEC_POWER_STOPPED);
    assert_int_equal(s.nenv, 2);
    assert_string_equal(s.env[0].name, "A");
    assert_string_equal(s.env[0].value, "1");
    assert_string_equal(s.env[1].name, "B");
    assert_int_equal(s.nsecret, 1);
    assert_string_equal(s.secret_env[0].name, "TOKEN");
    assert_string_equal(s.secret_env[0].value, "s3cr3t");
    assert_int_equal(s.auto_stop_minutes, 30);
    assert_int_equal(s.storage_policy, SPEC_STORAGE_RETAIN);
    spec_release(&s);
}

/* ---- userId and name ---- */

/* {BASE-without-userId, "userId": <value>} as a heap string. */
static char *with_user(const char *value_json)
{
    d8_buf_t b;

    d8_buf_init(&b);
    d8_buf_printf(&b, "{\"name\":\"n\",\"cloudRegion\":\"eastus\",\"userId\":%s}", value_json);
    return d8_buf_detach(&b, NULL);
}

/* A JSON string literal of n copies of the UTF-8 sequence unit. */
static char *repeat_str(const char *unit, size_t n)
{
    d8_buf_t b;

    d8_buf_init(&b);
    d8_buf_putc(&b, '"');
    for (size_t i = 0; i < n; i++)
        d8_buf_puts(&b, unit);
    d8_buf_putc(&b, '"');
    return d8_buf_detach(&b, NULL);
}

static void user_ok(const char *value_json, const char *expect)
{
    char *j = with_user(value_json);
    env_spec_t s;

    ok(j, &s);
    if (expect)
        assert_string_equal(s.user_id, expect);
    spec_release(&s);
    free(j);
}

static void user_bad(const char *value_json)
{
    char *j = with_user(value_json);

    bad_spec(j, "userId");
    free(j);
}

static void test_labels(void **state)
{
    char *v;

    (void)state;
    user_ok("\"x\"", "x");
    user_ok("\"\\u00e9t\\u00e9\"", "\xc3\xa9t\xc3\xa9");
    user_ok("\"\xf0\x9f\x98\x80\"", "\xf0\x9f\x98\x80");
    user_ok("\"\xe2\x82\xac\xef\xbf\xbd\"", "\xe2\x82\xac\xef\xbf\xbd");
    user_bad("\"\"");
    user_bad("null");
    user_bad("1");
    user_bad("true");
    user_bad("[\"x\"]");
    bad_spec("{\"name\":\"n\",\"cloudRegion\":\"eastus\"}", "userId");

    /* 128 characters counted as code points, not bytes. */
    v = repeat_str("a", 128);
    user_ok(v, NULL);
    free(v);
    v = repeat_str("a", 129);
    user_bad(v);
    free(v);
    v = repeat_str("\xc3\xa9", 128); /* 256 bytes, 128 characters */
    user_ok(v, NULL);
    free(v);
    v = repeat_str("\xc3\xa9", 129);
    user_bad(v);
    free(v);
    v = repeat_str("\xf0\x9f\x98\x80", 128);
    user_ok(v, NULL);
    free(v);
    v = repeat_str("\xf0\x9f\x98\x80", 129);
    user_bad(v);
    free(v);

    /* Invalid UTF-8: stray byte, truncated, overlong, surrogate, above U+10FFFF. */
    user_bad("\"a\xff\"");
    user_bad("\"a\xc3\"");
    user_bad("\"\xe2\x82\"");
    user_bad("\"\xc0\xaf\"");
    user_bad("\"\xe0\x80\xaf\"");
    user_bad("\"\xed\xa0\x80\"");
    user_bad("\"\xf4\x90\x80\x80\"");
    /* Control characters. */
    user_bad("\"a\\u0001\"");
    user_bad("\"a\\tb\"");
    user_bad("\"a\\nb\"");
    user_bad("\"a\\u001f\"");
    user_bad("\"a\\u007f\"");
    user_bad("\"a\\u0085\"");
    user_ok("\"a\\u0020b\"", "a b");

    bad_spec("{\"userId\":\"u\",\"cloudRegion\":\"eastus\"}", "name");
    bad_spec("{\"userId\":\"u\",\"name\":\"\",\"cloudRegion\":\"eastus\"}", "name");
    bad_spec("{\"userId\":\"u\",\"name\":null,\"cloudRegion\":\"eastus\"}", "name");
    bad_spec("{\"userId\":\"u\",\"name\":\"\xfe\",\"cloudRegion\":\"eastus\"}", "name");
}

/* ---- cloudRegion and baseImage ---- */

static void test_region(void **state)
{
    env_spec_t s;
    spec_error_t err;

    (void)state;
    ok("{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"westeurope\"}", &s);
    assert_string_equal(s.cloud_region, "westeurope");
    spec_release(&s);
    bad_spec("{\"userId\":\"u\",\"name\":\"n\"}", "cloudRegion");
    bad_spec("{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":null}", "cloudRegion");
    bad_spec("{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":1}", "cloudRegion");
    bad_spec("{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"EastUS\"}", "cloudRegion");
    bad_full(&rules, "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"mars\"}", "env1", "",
             "InvalidSpec", "cloudRegion", &err);
    /* The message lists what is allowed. */
    assert_non_null(strstr(err.message, "eastus, westeurope"));
}

static void test_base_image(void **state)
{
    static const char *const no_node[] = {"python"};
    spec_rules_t r = rules;
    env_spec_t s;

    (void)state;
    ok("{" BASE ",\"baseImage\":\"python\"}", &s);
    assert_string_equal(s.base_image, "python");
    spec_release(&s);
    ok("{" BASE ",\"baseImage\":\"node\"}", &s);
    spec_release(&s);
    bad_spec("{" BASE ",\"baseImage\":\"ruby\"}", "baseImage");
    bad_spec("{" BASE ",\"baseImage\":\"Node\"}", "baseImage");
    bad_spec("{" BASE ",\"baseImage\":\"\"}", "baseImage");
    bad_spec("{" BASE ",\"baseImage\":2}", "baseImage");

    /* Without a "node" image the default is not available. */
    r.images = no_node;
    r.nimages = 1;
    bad_full(&r, "{" BASE "}", "env1", "", "InvalidSpec", "baseImage", NULL);
    ok_r(&r, "{" BASE ",\"baseImage\":\"python\"}", &s);
    spec_release(&s);
}

/* ---- numbers ---- */

static void num_case(const char *field, const char *value, int expect_ok, int expect)
{
    char json[256];
    env_spec_t s;

    snprintf(json, sizeof(json), "{" BASE ",\"%s\":%s}", field, value);
    if (!expect_ok) {
        bad_spec(json, field);
        return;
    }
    ok(json, &s);
    if (strcmp(field, "cpuCores") == 0)
        assert_int_equal(s.cpu_halves, expect);
    else if (strcmp(field, "memoryGB") == 0)
        assert_int_equal(s.memory_halves, expect);
    else if (strcmp(field, "storageGB") == 0)
        assert_int_equal(s.storage_gb, expect);
    else
        assert_int_equal(s.auto_stop_minutes, expect);
    spec_release(&s);
}

static void test_cpu(void **state)
{
    (void)state;
    num_case("cpuCores", "0.5", 1, 1);
    num_case("cpuCores", "1", 1, 2);
    num_case("cpuCores", "1.5", 1, 3);
    num_case("cpuCores", "4", 1, 8);
    num_case("cpuCores", "4.0", 1, 8);
    num_case("cpuCores", "5e-1", 1, 1);
    num_case("cpuCores", "0.4", 0, 0);
    num_case("cpuCores", "0.75", 0, 0);
    num_case("cpuCores", "4.5", 0, 0);
    num_case("cpuCores", "0", 0, 0);
    num_case("cpuCores", "-1", 0, 0);
    num_case("cpuCores", "2.0000001", 0, 0);
    num_case("cpuCores", "1e400", 0, 0);
    num_case("cpuCores", "\"2\"", 0, 0);
    num_case("cpuCores", "true", 0, 0);
    num_case("cpuCores", "[2]", 0, 0);
    num_case("cpuCores", "{}", 0, 0);
}

static void test_memory(void **state)
{
    (void)state;
    num_case("memoryGB", "0.5", 1, 1);
    num_case("memoryGB", "16", 1, 32);
    num_case("memoryGB", "7.5", 1, 15);
    num_case("memoryGB", "0.25", 0, 0);
    num_case("memoryGB", "0", 0, 0);
    num_case("memoryGB", "16.5", 0, 0);
    num_case("memoryGB", "3.3", 0, 0);
    num_case("memoryGB", "-1e400", 0, 0);
    num_case("memoryGB", "\"4\"", 0, 0);
    num_case("memoryGB", "false", 0, 0);
}

/* Trees built in code (not parsed) can hold what JSON text cannot. */
static void test_non_finite(void **state)
{
    const char *fields[] = {"cpuCores", "memoryGB", "storageGB", "autoStopMinutes"};
    const double values[] = {NAN, INFINITY, -INFINITY};

    (void)state;
    for (size_t f = 0; f < 4; f++) {
        for (size_t v = 0; v < 3; v++) {
            cJSON *o = cJSON_Parse("{" BASE "}");
            spec_error_t err;
            env_spec_t s;

            assert_non_null(o);
            cJSON_AddNumberToObject(o, fields[f], values[v]);
            assert_int_equal(spec_decode(o, "env1", &rules, "", &s, NULL, &err), D8_EINVAL);
            assert_string_equal(err.field, fields[f]);
            cJSON_Delete(o);
        }
    }
}

static void test_storage(void **state)
{
    spec_rules_t r = rules;
    env_spec_t s;

    (void)state;
    num_case("storageGB", "1", 1, 1);
    num_case("storageGB", "20", 1, 20);
    num_case("storageGB", "1024", 1, 1024);
    num_case("storageGB", "0", 0, 0);
    num_case("storageGB", "-5", 0, 0);
    num_case("storageGB", "1025", 0, 0);
    num_case("storageGB", "20.5", 0, 0);
    num_case("storageGB", "1e300", 0, 0);
    num_case("storageGB", "\"20\"", 0, 0);
    num_case("storageGB", "true", 0, 0);

    /* The limit comes from the rules. */
    r.max_storage_gb = 50;
    ok_r(&r, "{" BASE ",\"storageGB\":50}", &s);
    spec_release(&s);
    bad_full(&r, "{" BASE ",\"storageGB\":51}", "env1", "", "InvalidSpec", "storageGB", NULL);
    /* A limit below the default makes the default unusable. */
    r.max_storage_gb = 10;
    bad_full(&r, "{" BASE "}", "env1", "", "InvalidSpec", "storageGB", NULL);
    ok_r(&r, "{" BASE ",\"storageGB\":10}", &s);
    spec_release(&s);
    /* An unset limit is the design's 1024. */
    r.max_storage_gb = 0;
    ok_r(&r, "{" BASE ",\"storageGB\":1024}", &s);
    spec_release(&s);
    bad_full(&r, "{" BASE ",\"storageGB\":1025}", "env1", "", "InvalidSpec", "storageGB", NULL);
}

static void test_auto_stop(void **state)
{
    (void)state;
    num_case("autoStopMinutes", "0", 1, 0);
    num_case("autoStopMinutes", "5", 1, 5);
    num_case("autoStopMinutes", "60", 1, 60);
    num_case("autoStopMinutes", "10080", 1, 10080);
    num_case("autoStopMinutes", "1", 0, 0);
    num_case("autoStopMinutes", "4", 0, 0);
    num_case("autoStopMinutes", "10081", 0, 0);
    num_case("autoStopMinutes", "-1", 0, 0);
    num_case("autoStopMinutes", "5.5", 0, 0);
    num_case("autoStopMinutes", "\"5\"", 0, 0);
    num_case("autoStopMinutes", "false", 0, 0);
}

/* ---- enums ---- */

static void test_power_and_policy(void **state)
{
    env_spec_t s;

    (void)state;
    ok("{" BASE ",\"powerState\":\"Running\"}", &s);
    assert_int_equal(s.power, SPEC_POWER_RUNNING);
    spec_release(&s);
    ok("{" BASE ",\"powerState\":\"Stopped\"}", &s);
    assert_int_equal(s.power, SPEC_POWER_STOPPED);
    spec_release(&s);
    bad_spec("{" BASE ",\"powerState\":\"running\"}", "powerState");
    bad_spec("{" BASE ",\"powerState\":\"Deallocated\"}", "powerState");
    bad_spec("{" BASE ",\"powerState\":0}", "powerState");

    ok("{" BASE ",\"storagePolicy\":\"Delete\"}", &s);
    assert_int_equal(s.storage_policy, SPEC_STORAGE_DELETE);
    spec_release(&s);
    ok("{" BASE ",\"storagePolicy\":\"Retain\"}", &s);
    assert_int_equal(s.storage_policy, SPEC_STORAGE_RETAIN);
    spec_release(&s);
    bad_spec("{" BASE ",\"storagePolicy\":\"retain\"}", "storagePolicy");
    bad_spec("{" BASE ",\"storagePolicy\":\"Keep\"}", "storagePolicy");
    bad_spec("{" BASE ",\"storagePolicy\":true}", "storagePolicy");

    ok("{" BASE "}", &s);
    assert_int_equal(s.update_policy, SPEC_UPDATE_IMMEDIATE);
    assert_false(s.power_set);
    assert_false(s.secret_env_set);
    spec_release(&s);
    ok("{" BASE ",\"updatePolicy\":\"OnNextStart\",\"powerState\":\"Running\","
       "\"secretEnv\":{}}",
       &s);
    assert_int_equal(s.update_policy, SPEC_UPDATE_ON_NEXT_START);
    assert_true(s.power_set);
    assert_true(s.secret_env_set);
    spec_release(&s);
    bad_spec("{" BASE ",\"updatePolicy\":\"Later\"}", "updatePolicy");
    ok("{" BASE ",\"powerState\":null,\"secretEnv\":null}", &s);
    assert_false(s.power_set);
    assert_false(s.secret_env_set);
    spec_release(&s);
}

/* ---- env and secretEnv ---- */

/* {BASE, "<obj>": {"<name>": <value_json>}} */
static char *env_body(const char *obj, const char *name, const char *value_json)
{
    d8_buf_t b;

    d8_buf_init(&b);
    d8_buf_printf(&b, "{" BASE ",\"%s\":{\"%s\":%s}}", obj, name, value_json);
    return d8_buf_detach(&b, NULL);
}

static void env_case(const char *obj, const char *name, const char *value_json, int expect_ok,
                     const char *field)
{
    char *j = env_body(obj, name, value_json);
    env_spec_t s;

    if (expect_ok) {
        ok(j, &s);
        spec_release(&s);
    } else {
        bad_spec(j, field);
    }
    free(j);
}

static void test_env_names(void **state)
{
    char name[300];

    (void)state;
    for (int k = 0; k < 2; k++) {
        const char *obj = k ? "secretEnv" : "env";
        char f[128];

        env_case(obj, "FOO", "\"1\"", 1, NULL);
        env_case(obj, "_", "\"1\"", 1, NULL);
        env_case(obj, "_a9", "\"1\"", 1, NULL);
        env_case(obj, "a", "\"\"", 1, NULL);
        snprintf(f, sizeof(f), "%s.1A", obj);
        env_case(obj, "1A", "\"1\"", 0, f);
        snprintf(f, sizeof(f), "%s.A-B", obj);
        env_case(obj, "A-B", "\"1\"", 0, f);
        snprintf(f, sizeof(f), "%s.A B", obj);
        env_case(obj, "A B", "\"1\"", 0, f);
        snprintf(f, sizeof(f), "%s.A.B", obj);
        env_case(obj, "A.B", "\"1\"", 0, f);
        snprintf(f, sizeof(f), "%s.", obj);
        env_case(obj, "", "\"1\"", 0, f);
        snprintf(f, sizeof(f), "%s.\xc3\xa9", obj);
        env_case(obj, "\xc3\xa9", "\"1\"", 0, f);

        /* Name length: 256 ok, 257 rejected. */
        memset(name, 'N', 256);
        name[256] = '\0';
        env_case(obj, name, "\"1\"", 1, NULL);
        name[256] = 'N';
        name[257] = '\0';
        {
            /* The field shows the name cut to 64 bytes. */
            char *j = env_body(obj, name, "\"1\"");
            snprintf(f, sizeof(f), "%s.%.64s...", obj, name);
            bad_spec(j, f);
            free(j);
        }
    }
}

static void test_env_values(void **state)
{
    char *big;
    char *j;
    env_spec_t s;

    (void)state;
    for (int k = 0; k < 2; k++) {
        const char *obj = k ? "secretEnv" : "env";
        char f[256];

        snprintf(f, sizeof(f), "%s.A", obj);
        env_case(obj, "A", "1", 0, f);
        env_case(obj, "A", "null", 0, f);
        env_case(obj, "A", "true", 0, f);
        env_case(obj, "A", "{}", 0, f);
        env_case(obj, "A", "\"a\\nb\\tc\"", 1, NULL); /* control characters are fine in values */
        env_case(obj, "A", "\"\xc3\xa9\"", 1, NULL);
        env_case(obj, "A", "\"\xc3\"", 0, f);
        env_case(obj, "A", "\"\xed\xa0\x80\"", 0, f);

        /* Value length: 32768 bytes ok, 32769 rejected. */
        big = repeat_str("v", 32768);
        env_case(obj, "A", big, 1, NULL);
        free(big);
        big = repeat_str("v", 32769);
        env_case(obj, "A", big, 0, f);
        free(big);

        /* Not an object. */
        snprintf(f, sizeof(f), "{" BASE ",\"%s\":[]}", obj);
        bad_spec(f, obj);
        snprintf(f, sizeof(f), "{" BASE ",\"%s\":\"A=1\"}", obj);
        bad_spec(f, obj);
        snprintf(f, sizeof(f), "{" BASE ",\"%s\":{}}", obj);
        ok(f, &s);
        assert_int_equal(s.nenv + s.nsecret, 0);
        spec_release(&s);
    }

    /* A name in both objects. */
    bad_spec("{" BASE ",\"env\":{\"A\":\"1\",\"SAME\":\"x\"},\"secretEnv\":{\"SAME\":\"y\"}}",
             "secretEnv.SAME");
    /* Case matters: these are two variables. */
    j = env_body("env", "same", "\"1\"");
    j[strlen(j) - 1] = '\0';
    {
        char *j2;
        d8_buf_t b;

        d8_buf_init(&b);
        d8_buf_printf(&b, "%s,\"secretEnv\":{\"SAME\":\"2\"}}", j);
        j2 = d8_buf_detach(&b, NULL);
        ok(j2, &s);
        assert_int_equal(s.nenv, 1);
        assert_int_equal(s.nsecret, 1);
        spec_release(&s);
        free(j2);
    }
    free(j);
}

/* {BASE, "<obj>": {V0:"0", ..., V<n-1>:"n-1"}} */
static char *many_env(const char *obj, int n)
{
    d8_buf_t b;

    d8_buf_init(&b);
    d8_buf_printf(&b, "{" BASE ",\"%s\":{", obj);
    for (int i = 0; i < n; i++)
        d8_buf_printf(&b, "%s\"V%d\":\"%d\"", i ? "," : "", i, i);
    d8_buf_puts(&b, "}}");
    return d8_buf_detach(&b, NULL);
}

static void test_env_count(void **state)
{
    env_spec_t s;
    char *j;

    (void)state;
    j = many_env("env", 128);
    ok(j, &s);
    assert_int_equal(s.nenv, 128);
    spec_release(&s);
    free(j);
    j = many_env("env", 129);
    bad_spec(j, "env");
    free(j);
    j = many_env("secretEnv", 128);
    ok(j, &s);
    assert_int_equal(s.nsecret, 128);
    spec_release(&s);
    free(j);
    j = many_env("secretEnv", 129);
    bad_spec(j, "secretEnv");
    free(j);
}

static void test_env_sorted(void **state)
{
    env_spec_t s;

    (void)state;
    ok("{" BASE ",\"env\":{\"Z\":\"26\",\"A\":\"1\",\"M\":\"13\",\"a\":\"x\",\"_\":\"u\"},"
       "\"secretEnv\":{\"TOK2\":\"b\",\"TOK1\":\"a\"}}",
       &s);
    assert_int_equal(s.nenv, 5);
    /* Byte order: upper case, then '_', then lower case. */
    assert_string_equal(s.env[0].name, "A");
    assert_string_equal(s.env[0].value, "1");
    assert_string_equal(s.env[1].name, "M");
    assert_string_equal(s.env[1].value, "13");
    assert_string_equal(s.env[2].name, "Z");
    assert_string_equal(s.env[2].value, "26");
    assert_string_equal(s.env[3].name, "_");
    assert_string_equal(s.env[4].name, "a");
    assert_int_equal(s.nsecret, 2);
    assert_string_equal(s.secret_env[0].name, "TOK1");
    assert_string_equal(s.secret_env[0].value, "a");
    assert_string_equal(s.secret_env[1].name, "TOK2");
    assert_string_equal(s.secret_env[1].value, "b");
    spec_release(&s);
}

/* Secret values never appear in an error. */
static void test_errors_hide_values(void **state)
{
    spec_error_t err;
    char *big, *j;

    (void)state;
    bad_full(&rules, "{" BASE ",\"secretEnv\":{\"T\":\"hunter2\xff\"}}", "env1", "", "InvalidSpec",
             "secretEnv.T", &err);
    assert_null(strstr(err.message, "hunter2"));
    bad_full(&rules, "{" BASE ",\"secretEnv\":{\"bad-name\":\"hunter2\"}}", "env1", "",
             "InvalidSpec", "secretEnv.bad-name", &err);
    assert_null(strstr(err.message, "hunter2"));
    big = repeat_str("hunter2", 5000);
    j = env_body("secretEnv", "T", big);
    bad_full(&rules, j, "env1", "", "InvalidSpec", "secretEnv.T", &err);
    assert_null(strstr(err.message, "hunter2"));
    free(j);
    free(big);
}

/* ---- field prefix ---- */

static void test_field_prefix(void **state)
{
    (void)state;
    bad_full(&rules, "{" BASE ",\"memoryGB\":0.3}", "env1", "items[2].", "InvalidSpec",
             "items[2].memoryGB", NULL);
    bad_full(&rules, "{" BASE ",\"env\":{\"FOO\":1}}", "env1", "items[2].", "InvalidSpec",
             "items[2].env.FOO", NULL);
    bad_full(&rules, "{" BASE ",\"bogus\":1}", "env1", "items[0].", "InvalidSpec", "items[0].bogus",
             NULL);
    bad_full(&rules, "{\"name\":\"n\",\"cloudRegion\":\"eastus\"}", "env1", "items[7].",
             "InvalidSpec", "items[7].userId", NULL);
    bad_full(&rules, "{" BASE ",\"cpuCores\":1.25}", "env1", "spec.", "InvalidSpec",
             "spec.cpuCores", NULL);
    bad_full(&rules, "{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"A\":\"2\"}}", "env1",
             "items[1].", "InvalidSpec", "items[1].secretEnv.A", NULL);
    /* A path cut to fit err.field never ends inside a UTF-8 character. */
    {
        char prefix[151], expect[160];

        memset(prefix, 'p', 149);
        prefix[149] = '.';
        prefix[150] = '\0';
        snprintf(expect, sizeof(expect), "%senv.\xc3\xa9\xc3\xa9", prefix);
        bad_full(&rules, "{" BASE ",\"env\":{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\":\"1\"}}", "env1",
                 prefix, "InvalidSpec", expect, NULL);
    }
}

/* ---- encoding ---- */

static void test_to_json(void **state)
{
    env_spec_t s;
    cJSON *j;
    char *txt;
    const cJSON *c;
    static const char *const order[] = {
        "userId",          "name",          "cloudRegion", "baseImage", "cpuCores",
        "memoryGB",        "storageGB",     "powerState",  "env",       "secretEnv",
        "autoStopMinutes", "storagePolicy", "updatePolicy"};
    size_t i = 0;

    (void)state;
    ok("{\"id\":\"env1\"," BASE ",\"cpuCores\":0.5,\"memoryGB\":1.5,"
       "\"env\":{\"B\":\"b\",\"A\":\"a\\\"q\"},\"secretEnv\":{\"TOKEN\":\"hunter2-secret\"}}",
       &s);
    j = spec_to_json(&s);
    assert_non_null(j);
    for (c = j->child; c; c = c->next, i++) {
        assert_true(i < sizeof(order) / sizeof(order[0]));
        assert_string_equal(c->string, order[i]);
    }
    assert_int_equal(i, sizeof(order) / sizeof(order[0]));
    txt = cJSON_PrintUnformatted(j);
    assert_non_null(txt);
    assert_string_equal(
        txt, "{\"userId\":\"u1\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
             "\"baseImage\":\"node\",\"cpuCores\":0.5,\"memoryGB\":1.5,"
             "\"storageGB\":20,\"powerState\":\"Running\","
             "\"env\":{\"A\":\"a\\\"q\",\"B\":\"b\"},"
             "\"secretEnv\":{\"TOKEN\":\"<redacted>\"},"
             "\"autoStopMinutes\":0,\"storagePolicy\":\"Delete\",\"updatePolicy\":\"Immediate\"}");
    assert_null(strstr(txt, "hunter2"));
    assert_null(strstr(txt, "\"id\""));
    cJSON_free(txt);
    cJSON_Delete(j);
    spec_release(&s);

    ok("{" BASE ",\"powerState\":\"Stopped\",\"storagePolicy\":\"Retain\",\"cpuCores\":4,"
       "\"memoryGB\":16,\"storageGB\":1024,\"autoStopMinutes\":10080}",
       &s);
    j = spec_to_json(&s);
    txt = cJSON_PrintUnformatted(j);
    assert_string_equal(txt, "{\"userId\":\"u1\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
                             "\"baseImage\":\"node\",\"cpuCores\":4,\"memoryGB\":16,"
                             "\"storageGB\":1024,\"powerState\":\"Stopped\",\"env\":{},"
                             "\"secretEnv\":{},\"autoStopMinutes\":10080,"
                             "\"storagePolicy\":\"Retain\",\"updatePolicy\":\"Immediate\"}");
    cJSON_free(txt);
    cJSON_Delete(j);
    spec_release(&s);
}

/* What the API returns decodes back to the same spec (no secrets involved). */
static void test_roundtrip(void **state)
{
    env_spec_t a, b;
    spec_error_t err;
    cJSON *j;

    (void)state;
    ok("{" BASE ",\"baseImage\":\"python\",\"cpuCores\":3.5,\"memoryGB\":0.5,\"storageGB\":7,"
       "\"powerState\":\"Stopped\",\"env\":{\"X\":\"\\u00e9\"},\"autoStopMinutes\":5,"
       "\"storagePolicy\":\"Retain\"}",
       &a);
    j = spec_to_json(&a);
    assert_int_equal(spec_decode(j, "env1", &rules, "", &b, NULL, &err), 0);
    assert_true(spec_equal(&a, &b));
    cJSON_Delete(j);
    spec_release(&a);
    spec_release(&b);
}

/* ---- equal, copy, release ---- */

static const char *const variants[] = {
    "{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{\"userId\":\"u2\",\"name\":\"n\",\"cloudRegion\":\"eastus\",\"env\":{\"A\":\"1\"},"
    "\"secretEnv\":{\"S\":\"x\"}}",
    "{\"userId\":\"u1\",\"name\":\"n2\",\"cloudRegion\":\"eastus\",\"env\":{\"A\":\"1\"},"
    "\"secretEnv\":{\"S\":\"x\"}}",
    "{\"userId\":\"u1\",\"name\":\"n\",\"cloudRegion\":\"westeurope\",\"env\":{\"A\":\"1\"},"
    "\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"baseImage\":\"python\",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"cpuCores\":1,\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"memoryGB\":1,\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"storageGB\":21,\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"powerState\":\"Stopped\",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"env\":{\"A\":\"2\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"env\":{\"B\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"env\":{\"A\":\"1\",\"B\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}",
    "{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"y\"}}",
    "{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"T\":\"x\"}}",
    "{" BASE ",\"env\":{\"A\":\"1\"}}",
    "{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"},\"autoStopMinutes\":5}",
    "{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"},\"storagePolicy\":\"Retain\"}",
};

static void test_equal(void **state)
{
    size_t n = sizeof(variants) / sizeof(variants[0]);
    env_spec_t a, b;

    (void)state;
    for (size_t i = 0; i < n; i++) {
        ok(variants[i], &a);
        for (size_t k = 0; k < n; k++) {
            ok(variants[k], &b);
            if ((i == k) != (spec_equal(&a, &b) != 0))
                fail_msg("spec_equal(variant %zu, variant %zu) = %d", i, k, spec_equal(&a, &b));
            spec_release(&b);
        }
        spec_release(&a);
    }
    /* Same content in another order and with explicit defaults is equal. */
    ok("{" BASE ",\"env\":{\"B\":\"2\",\"A\":\"1\"}}", &a);
    ok("{\"cloudRegion\":\"eastus\",\"env\":{\"A\":\"1\",\"B\":\"2\"},\"name\":\"n\","
       "\"userId\":\"u1\",\"cpuCores\":2,\"memoryGB\":4,\"storageGB\":20,"
       "\"baseImage\":\"node\",\"powerState\":\"Running\",\"secretEnv\":{}}",
       &b);
    assert_true(spec_equal(&a, &b));
    spec_release(&a);
    spec_release(&b);
}

static void test_copy_release(void **state)
{
    env_spec_t a, b, z;

    (void)state;
    ok("{" BASE ",\"env\":{\"A\":\"1\",\"B\":\"2\"},\"secretEnv\":{\"S\":\"x\"}}", &a);
    spec_copy(&b, &a);
    assert_true(spec_equal(&a, &b));
    assert_ptr_not_equal(a.user_id, b.user_id);
    assert_ptr_not_equal(a.env, b.env);
    assert_ptr_not_equal(a.env[0].name, b.env[0].name);
    assert_ptr_not_equal(a.secret_env[0].value, b.secret_env[0].value);
    spec_release(&a);
    /* The copy survives the original (ASan would see a use after free). */
    assert_string_equal(b.env[1].value, "2");
    assert_string_equal(b.secret_env[0].value, "x");
    spec_release(&b);
    assert_null(b.user_id);
    assert_int_equal(b.nenv, 0);
    /* Release twice and on a zeroed spec are harmless; copies of one too. */
    spec_release(&b);
    memset(&z, 0, sizeof(z));
    spec_copy(&a, &z);
    assert_true(spec_equal(&a, &z));
    spec_release(&a);
    spec_release(NULL);
}

/* ---- hash ---- */

static const int ports[] = {8080};
static const unsigned char key1[] = "0123456789abcdef0123456789abcdef";
static const unsigned char key2[] = "fedcba9876543210fedcba9876543210";

static void hash_of(const char *json, const unsigned char *key, char out[17])
{
    env_spec_t s;
    spec_hash_input_t in = {.image = "img:1",
                            .ports = ports,
                            .nports = 1,
                            .mount_path = "/home/dev8",
                            .key = key,
                            .keylen = key ? 32 : 0};

    ok(json, &s);
    spec_hash(&s, &in, out);
    spec_release(&s);
}

static void assert_hex16(const char *h)
{
    assert_int_equal(strlen(h), 16);
    for (size_t i = 0; i < 16; i++)
        assert_non_null(strchr("0123456789abcdef", h[i]));
}

static void test_hash_stable(void **state)
{
    char h1[17], h2[17];

    (void)state;
    hash_of("{" BASE ",\"env\":{\"A\":\"1\",\"B\":\"2\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h1);
    assert_hex16(h1);
    hash_of("{" BASE ",\"env\":{\"A\":\"1\",\"B\":\"2\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h2);
    assert_string_equal(h1, h2);
    /* env order is irrelevant. */
    hash_of("{" BASE ",\"env\":{\"B\":\"2\",\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h2);
    assert_string_equal(h1, h2);
    /* Fields that do not shape the container group do not change it. */
    hash_of("{\"userId\":\"other\",\"name\":\"x\",\"cloudRegion\":\"westeurope\","
            "\"env\":{\"A\":\"1\",\"B\":\"2\"},\"secretEnv\":{\"S\":\"x\"},\"storageGB\":99,"
            "\"powerState\":\"Stopped\",\"autoStopMinutes\":5,\"storagePolicy\":\"Retain\"}",
            NULL, h2);
    assert_string_equal(h1, h2);
    /*
     * The encoding is pinned: a change of it would make every live
     * container group look drifted and be recreated on upgrade.
     */
    hash_of("{" BASE "}", NULL, h1);
    assert_string_equal(h1, GOLDEN_PLAIN);
    hash_of("{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}", key1, h1);
    assert_string_equal(h1, GOLDEN_KEYED);
}

static void test_hash_changes(void **state)
{
    char h0[17], h[17];
    env_spec_t s;
    spec_hash_input_t in = {.image = "img:1",
                            .ports = ports,
                            .nports = 1,
                            .mount_path = "/home/dev8",
                            .key = NULL,
                            .keylen = 0};
    static const int ports2[] = {8080, 9090};
    static const int ports3[] = {9090, 8080};

    (void)state;
    hash_of("{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h0);
    hash_of("{" BASE ",\"cpuCores\":1,\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h);
    assert_string_not_equal(h0, h);
    hash_of("{" BASE ",\"memoryGB\":8,\"env\":{\"A\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h);
    assert_string_not_equal(h0, h);
    hash_of("{" BASE ",\"env\":{\"A\":\"2\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h);
    assert_string_not_equal(h0, h);
    hash_of("{" BASE ",\"env\":{\"B\":\"1\"},\"secretEnv\":{\"S\":\"x\"}}", NULL, h);
    assert_string_not_equal(h0, h);
    hash_of("{" BASE ",\"env\":{\"A\":\"1\"},\"secretEnv\":{\"T\":\"x\"}}", NULL, h);
    assert_string_not_equal(h0, h);
    hash_of("{" BASE ",\"env\":{\"A\":\"1\"}}", NULL, h);
    assert_string_not_equal(h0, h);
    /* Field boundaries are unambiguous. */
    hash_of("{" BASE ",\"env\":{\"A\":\"BC\"}}", NULL, h0);
    hash_of("{" BASE ",\"env\":{\"AB\":\"C\"}}", NULL, h);
    assert_string_not_equal(h0, h);
    /* An env var and a secret of the same name differ. */
    hash_of("{" BASE ",\"env\":{\"A\":\"x\"}}", NULL, h0);
    hash_of("{" BASE ",\"secretEnv\":{\"A\":\"x\"}}", NULL, h);
    assert_string_not_equal(h0, h);

    /* Image, ports and mount come from the input. */
    ok("{" BASE "}", &s);
    spec_hash(&s, &in, h0);
    in.image = "img:2";
    spec_hash(&s, &in, h);
    assert_string_not_equal(h0, h);
    in.image = "img:1";
    in.mount_path = "/home/other";
    spec_hash(&s, &in, h);
    assert_string_not_equal(h0, h);
    in.mount_path = "/home/dev8";
    in.ports = ports2;
    in.nports = 2;
    spec_hash(&s, &in, h0);
    in.ports = ports3;
    spec_hash(&s, &in, h);
    assert_string_not_equal(h0, h);
    in.nports = 0;
    spec_hash(&s, &in, h);
    assert_string_not_equal(h0, h);
    spec_release(&s);
}

static void test_hash_secrets(void **state)
{
    char a[17], b[17], c[17], d[17], e[17];
    env_spec_t s;
    spec_hash_input_t in = {.image = "img:1",
                            .ports = ports,
                            .nports = 1,
                            .mount_path = "/home/dev8",
                            .key = key1,
                            .keylen = 0};

    (void)state;
    /* Without a key a secret value change alone does not change the hash. */
    hash_of("{" BASE ",\"secretEnv\":{\"S\":\"old\"}}", NULL, a);
    hash_of("{" BASE ",\"secretEnv\":{\"S\":\"new\"}}", NULL, b);
    assert_string_equal(a, b);
    /* With a key it does. */
    hash_of("{" BASE ",\"secretEnv\":{\"S\":\"old\"}}", key1, c);
    hash_of("{" BASE ",\"secretEnv\":{\"S\":\"new\"}}", key1, d);
    assert_string_not_equal(c, d);
    assert_string_not_equal(a, c);
    /* Stable under the same key, different under another. */
    hash_of("{" BASE ",\"secretEnv\":{\"S\":\"old\"}}", key1, e);
    assert_string_equal(c, e);
    hash_of("{" BASE ",\"secretEnv\":{\"S\":\"old\"}}", key2, e);
    assert_string_not_equal(c, e);
    /* A key of length 0 counts as no key. */
    ok("{" BASE ",\"secretEnv\":{\"S\":\"old\"}}", &s);
    spec_hash(&s, &in, e);
    assert_string_equal(a, e);
    spec_release(&s);
}

static void test_secret_digest(void **state)
{
    char out[65];

    (void)state;
    /* RFC 4231 test case 2. */
    spec_secret_digest((const unsigned char *)"Jefe", 4, "what do ya want for nothing?", out);
    assert_string_equal(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* A NULL key is the empty key. */
    spec_secret_digest(NULL, 0, "", out);
    assert_string_equal(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    spec_secret_digest(NULL, 5, "", out);
    assert_string_equal(out, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* ---- raw JSON guard ---- */

static void test_json_has_nul(void **state)
{
    static const char with_nul[] = "{\"a\":\"x\0y\"}";

    (void)state;
    assert_false(spec_json_has_nul("{\"a\":\"b\"}", 9));
    assert_true(spec_json_has_nul("{\"a\":\"x\\u0000y\"}", 16));
    assert_true(spec_json_has_nul("{\"x\\u0000\":1}", 13));
    assert_true(spec_json_has_nul(with_nul, sizeof(with_nul) - 1));
    /* An escaped backslash followed by the text u0000 is not a NUL. */
    assert_false(spec_json_has_nul("{\"a\":\"\\\\u0000\"}", 15));
    assert_false(spec_json_has_nul("{\"a\":\"\\\"u0000\"}", 15));
    assert_false(spec_json_has_nul("{\"a\":\"\\u0010\"}", 14));
    /* Cut short: no read past len. */
    assert_false(spec_json_has_nul("{\"a\":\"\\u000", 11));
    assert_false(spec_json_has_nul("\"\\", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_id_in_body),
        cmocka_unit_test(test_full_sync_id),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_unknown_field),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_cloud_provider),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_body),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_region),
        cmocka_unit_test(test_base_image),
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_storage),
        cmocka_unit_test(test_non_finite),
        cmocka_unit_test(test_auto_stop),
        cmocka_unit_test(test_power_and_policy),
        cmocka_unit_test(test_env_names),
        cmocka_unit_test(test_env_values),
        cmocka_unit_test(test_env_count),
        cmocka_unit_test(test_env_sorted),
        cmocka_unit_test(test_errors_hide_values),
        cmocka_unit_test(test_field_prefix),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_copy_release),
        cmocka_unit_test(test_hash_stable),
        cmocka_unit_test(test_hash_changes),
        cmocka_unit_test(test_hash_secrets),
        cmocka_unit_test(test_secret_digest),
        cmocka_unit_test(test_json_has_nul),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
