/* Unit tests of pkg/ownership: names, DNS labels, and the one "is it ours"
 * rule that the reconciler and the reaper share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ownership/ownership.h"

#include <string.h>

static void test_dns_label_is_deterministic_and_short(void **state)
{
    (void)state;
    char a[64], b[64], c[64];
    own_dns_label("dev8-prod", "ckx1", a);
    own_dns_label("dev8-prod", "ckx1", b);
    own_dns_label("dev8-staging", "ckx1", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strncmp(a, "dev8-ckx1-", 10), 0);
    assert_int_equal(strlen(a), strlen("dev8-ckx1-") + 6);
    char longid[49];
    memset(longid, 'a', 48);
    longid[48] = '\0';
    own_dns_label("dev8-prod", longid, a);
    assert_true(strlen(a) <= 63);
}

/* A map over parallel arrays of keys and values (borrowed). */
static azure_map_t map_of(char **keys, char **values, size_t n)
{
    azure_map_t m = {n, keys, values};
    return m;
}

static void test_names_round_trip(void **state)
{
    (void)state;
    char name[OWN_NAME_MAX];
    own_name("ckx1", name);
    assert_string_equal(name, "dev8-ckx1");
    assert_string_equal(own_id_of_name(name), "ckx1");
    assert_null(own_id_of_name("other-ckx1"));
    assert_null(own_id_of_name("dev8-"));
    assert_null(own_id_of_name("dev8-Bad Id"));
    assert_null(own_id_of_name(NULL));
}

static void test_group_is_ours_only_with_all_three_marks(void **state)
{
    (void)state;
    azure_kv_t kv[OWN_KV_MAX];
    size_t n = own_group_tags(kv, "ctl-a", "e1", "u1", "0123456789abcdef");
    char *keys[OWN_KV_MAX + 1], *values[OWN_KV_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        keys[i] = (char *)kv[i].name;
        values[i] = (char *)kv[i].value;
    }
    azure_map_t m = map_of(keys, values, n);
    own_info_t info;
    own_parse_group(&m, "e1", "ctl-a", &info);
    assert_true(info.ours);
    assert_false(info.keep);
    assert_string_equal(info.user_id, "u1");
    assert_string_equal(info.spec_hash, "0123456789abcdef");
    /* Another controller, another id: not ours. */
    own_parse_group(&m, "e1", "ctl-b", &info);
    assert_false(info.ours);
    own_parse_group(&m, "e2", "ctl-a", &info);
    assert_false(info.ours);
    /* Without dev8-managed-by, a controller tag alone proves nothing. */
    azure_map_t partial = map_of(keys + 1, values + 1, n - 1);
    own_parse_group(&partial, "e1", "ctl-a", &info);
    assert_false(info.ours);
    /* The keep mark. */
    keys[n] = (char *)OWN_TAG_KEEP;
    values[n] = (char *)"true";
    azure_map_t kept = map_of(keys, values, n + 1);
    own_parse_group(&kept, "e1", "ctl-a", &info);
    assert_true(info.ours);
    assert_true(info.keep);
}

static void test_share_metadata_round_trip(void **state)
{
    (void)state;
    azure_kv_t kv[OWN_KV_MAX];
    char *keys[OWN_KV_MAX], *values[OWN_KV_MAX];
    for (int keep = 0; keep <= 1; keep++) {
        char user[OWN_META_VALUE_MAX];
        size_t n = own_share_metadata(kv, user, "ctl-a", "e1", "u1", keep);
        assert_string_equal(kv[3].value, "u1");
        assert_int_equal(n, keep ? 5 : 4);
        for (size_t i = 0; i < n; i++) {
            keys[i] = (char *)kv[i].name;
            values[i] = (char *)kv[i].value;
            /* Azure metadata names are C identifiers: no hyphen. */
            assert_null(strchr(kv[i].name, '-'));
        }
        azure_map_t m = map_of(keys, values, n);
        own_info_t info;
        own_parse_share(&m, "e1", "ctl-a", &info);
        assert_true(info.ours);
        assert_int_equal(info.keep, keep);
        own_parse_share(&m, "e1", "ctl-b", &info);
        assert_false(info.ours);
    }
}

/* A retained share's keep-until mark: written as RFC 3339 (rounded up to
 * the second), read back, and expired only once its time passed. */
static void test_share_keep_until(void **state)
{
    (void)state;
    azure_kv_t kv[OWN_KV_MAX];
    char *keys[OWN_KV_MAX], *values[OWN_KV_MAX];
    char user[OWN_META_VALUE_MAX], until[32];
    /* 2025-12-01T00:00:00.250Z */
    int64_t t = 1764547200250LL;
    size_t n = own_share_metadata_retained(kv, user, until, "ctl-a", "e1", "u1", t);
    assert_int_equal(n, 6);
    assert_string_equal(kv[5].name, "dev8keepuntil");
    assert_string_equal(kv[5].value, "2025-12-01T00:00:01Z");
    for (size_t i = 0; i < n; i++) {
        keys[i] = (char *)kv[i].name;
        values[i] = (char *)kv[i].value;
    }
    azure_map_t m = map_of(keys, values, n);
    own_info_t info;
    own_parse_share(&m, "e1", "ctl-a", &info);
    assert_true(info.ours && info.keep);
    assert_true(info.keep_until_ms == 1764547201000LL);
    assert_false(own_keep_expired(&info, t));
    assert_true(own_keep_expired(&info, 1764547201000LL));
    /* Without a time: kept forever. */
    assert_int_equal(own_share_metadata_retained(kv, user, until, "ctl-a", "e1", "u1", 0), 5);
    info.keep_until_ms = 0;
    assert_false(own_keep_expired(&info, INT64_MAX));
    assert_true(own_parse_time("2025-12-01T00:00:00.5Z") == 1764547200500LL);
    assert_true(own_parse_time("2026-12-01T00:00:00+01:00") == 0);
    assert_true(own_parse_time("2026-13-01T00:00:00Z") == 0);
    assert_true(own_parse_time("soon") == 0);
    assert_true(own_parse_time(NULL) == 0);
}

/* Storage takes only ASCII metadata: any UTF-8 userId is encoded, an
 * ASCII one is kept, and the encoding never overflows. */
static void test_user_id_encoding(void **state)
{
    (void)state;
    char out[OWN_META_VALUE_MAX];
    own_meta_encode("user_42@example.com", out);
    assert_string_equal(out, "user_42@example.com");
    own_meta_encode("J\xc3\xbcrgen 100%", out);
    assert_string_equal(out, "J%C3%BCrgen 100%25");
    own_meta_encode("a\nb", out);
    assert_string_equal(out, "a%0Ab");
    char big[1000];
    memset(big, 0xff, sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    own_meta_encode(big, out);
    assert_true(strlen(out) < OWN_META_VALUE_MAX);
    assert_int_equal(strlen(out) % 3, 0);
    for (const char *p = out; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_label_is_deterministic_and_short),
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_group_is_ours_only_with_all_three_marks),
        cmocka_unit_test(test_share_metadata_round_trip),
        cmocka_unit_test(test_share_keep_until),
        cmocka_unit_test(test_user_id_encoding),
    };
    return cmocka_run_group_tests_name("ownership", tests, NULL, NULL);
}
