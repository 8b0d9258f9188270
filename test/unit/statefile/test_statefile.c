/* Unit tests of pkg/statefile on a real libuv loop and a temp directory:
 * round trip, no secret value in the file, secrets adopted after a
 * restore, a crash at every point of a write, corrupt files, debounce,
 * flush, write errors and loop-safe teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "statefile/statefile.h"
#include "statefile/statefile_int.h"
#include "store/store.h"
#include "helpers/loop_dir.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define SECRET1 "ghp_TopSecretValue123"
#define SECRET2 "hunter2-hunter2"

static const unsigned char KEY[] = "test-spec-hash-key";
#define KEYLEN (sizeof(KEY) - 1)

static const char *const regions[] = {"eastus", "westeurope"};
static const char *const images[] = {"node", "python"};
static const spec_rules_t rules = {regions, 2, images, 2, 1024};

static int setup(void **state)
{
    return loop_dir_setup(state, "d8-statefile", "state.json");
}

static int teardown(void **state)
{
    return loop_dir_teardown(state);
}

/* Number of "<name>.tmp.*" files in the directory. */
static int count_temps(const fx_t *fx)
{
    DIR *d = opendir(fx->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strstr(de->d_name, "state.json.tmp.") == de->d_name;
    closedir(d);
    return n;
}

static env_spec_t decode(const char *json, const char *id)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    env_spec_t s;
    spec_error_t e;
    int rc = spec_decode(j, id, &rules, "", &s, NULL, &e);
    if (rc != 0)
        fail_msg("spec does not decode: %s: %s", e.field, e.message);
    cJSON_Delete(j);
    return s;
}

static void put(store_t *st, const char *id, const char *json, store_put_result_t want)
{
    env_spec_t s = decode(json, id);
    store_put_result_t r;
    assert_int_equal(store_put(st, id, &s, -1, 0, &r, NULL), D8_OK);
    assert_int_equal(r, want);
    spec_release(&s);
}

#define SPEC_A                                                                                     \
    "{\"userId\":\"u1\",\"name\":\"A\",\"cloudRegion\":\"eastus\",\"env\":{\"PLAIN\":\"p\"},"      \
    "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET1 "\",\"API_KEY\":\"" SECRET2 "\"}}"
#define SPEC_A_STOPPED                                                                             \
    "{\"userId\":\"u1\",\"name\":\"A\",\"cloudRegion\":\"eastus\",\"env\":{\"PLAIN\":\"p\"},"      \
    "\"powerState\":\"Stopped\","                                                                  \
    "\"secretEnv\":{\"GITHUB_TOKEN\":\"" SECRET1 "\",\"API_KEY\":\"" SECRET2 "\"}}"
#define SPEC_B "{\"userId\":\"u2\",\"name\":\"B\",\"cloudRegion\":\"westeurope\",\"cpuCores\":1}"
#define SPEC_B2 "{\"userId\":\"u2\",\"name\":\"B\",\"cloudRegion\":\"westeurope\",\"cpuCores\":2}"

static statefile_t *new_sf(fx_t *fx, store_t *st, metrics_t *m, uint64_t debounce_ms)
{
    statefile_opts_t o = {.loop = &fx->loop,
                          .path = fx->path,
                          .store = st,
                          .metrics = m,
                          .key = KEY,
                          .keylen = KEYLEN,
                          .debounce_ms = debounce_ms};
    return statefile_new(&o);
}

/* Frees sf and lets its last write and close finish. */
static void drop_sf(fx_t *fx, statefile_t *sf)
{
    statefile_free(sf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

/* Loads the file into a new store; returns the load's code. */
static int load_into(fx_t *fx, store_t **out, const unsigned char *key, size_t keylen, char *err,
                     size_t errlen)
{
    store_t *st = store_new(64);
    statefile_opts_t o = {
        .loop = &fx->loop, .path = fx->path, .store = st, .key = key, .keylen = keylen};
    statefile_t *sf = statefile_new(&o);
    int rc = statefile_load(sf, &rules, err, errlen);
    drop_sf(fx, sf);
    *out = st;
    return rc;
}

/* The desired set written by the round-trip test. */
static void fill(store_t *st)
{
    store_sync_item_t items[3];
    memset(items, 0, sizeof(items));
    snprintf(items[0].id, sizeof(items[0].id), "env-a");
    items[0].spec = decode(SPEC_A, "env-a");
    snprintf(items[1].id, sizeof(items[1].id), "env-b");
    items[1].spec = decode(SPEC_B, "env-b");
    snprintf(items[2].id, sizeof(items[2].id), "env-c");
    items[2].spec = decode(SPEC_B, "env-c");
    store_sync_counts_t n;
    store_sync(st, items, 3, &n);
    for (int i = 0; i < 3; i++)
        spec_release(&items[i].spec);
    put(st, "env-b", SPEC_B2, PUT_UPDATED); /* generation 2 */
    assert_int_equal(store_set_power(st, "env-a", SPEC_POWER_STOPPED, NULL), D8_OK); /* 2 */
    store_delete(st, "env-c");                                                       /* deleting */
    store_delete(st, "ghost");                                                       /* tombstone */
}

static void spec_json_eq(const env_obj_t *a, const env_obj_t *b)
{
    cJSON *ja = spec_to_json(&a->spec), *jb = spec_to_json(&b->spec);
    char *sa = cJSON_PrintUnformatted(ja), *sb = cJSON_PrintUnformatted(jb);
    assert_string_equal(sa, sb);
    cJSON_free(sa);
    cJSON_free(sb);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
}

static void test_round_trip_without_secret_values(void **state)
{
    fx_t *fx = *state;
    store_t *st = store_new(64);
    statefile_t *sf = new_sf(fx, st, NULL, 10);
    assert_int_equal(statefile_load(sf, &rules, NULL, 0), D8_ENOENT);
    statefile_start(sf);
    fill(st);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(statefile__writes(sf), 1);
    assert_int_equal(statefile__errors(sf), 0);

    size_t len;
    char *bytes = slurp(fx->path, &len);
    assert_non_null(bytes);
    assert_null(strstr(bytes, SECRET1));
    assert_null(strstr(bytes, SECRET2));
    char digest[65];
    spec_secret_digest(KEY, KEYLEN, SECRET1, digest);
    assert_non_null(strstr(bytes, digest));
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(count_temps(fx), 0);
    free(bytes);

    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_OK);
    assert_int_equal(store_count(back), 4);
    assert_true(store_synced(back));
    assert_true(store_rv(back) > store_rv(st));
    static const char *const ids[] = {"env-a", "env-b", "env-c", "ghost"};
    for (size_t i = 0; i < 4; i++) {
        const env_obj_t *a = store_get(st, ids[i]), *b = store_get(back, ids[i]);
        assert_non_null(b);
        assert_int_equal(a->generation, b->generation);
        assert_int_equal(a->has_spec, b->has_spec);
        assert_int_equal(a->status.phase == PHASE_DELETING, b->status.phase == PHASE_DELETING);
        assert_int_equal(a->created_ms, b->created_ms);
        assert_int_equal(a->updated_ms, b->updated_ms);
        if (a->has_spec)
            spec_json_eq(a, b);
    }
    const env_obj_t *a = store_get(back, "env-a");
    assert_int_equal(a->generation, 2);
    assert_int_equal(a->spec.power, SPEC_POWER_STOPPED);
    assert_int_equal(a->restored, 1);
    assert_int_equal(a->spec.nsecret, 2);
    assert_null(a->spec.secret_env[0].value);
    assert_null(a->spec.secret_env[1].value);
    assert_int_equal(store_get(back, "env-b")->restored, 0); /* no secrets: nothing unknown */
    assert_int_equal(store_get(back, "env-b")->generation, 2);
    assert_int_equal(store_get(back, "ghost")->generation, 0);

    store_free(back);
    drop_sf(fx, sf);
    store_free(st);
}

/* Rewrites the file at path as an older agent wrote it: `section` as a
 * "usage" member before the checksum, which is recomputed. */
static void add_legacy_usage(const char *path, const char *section)
{
    size_t len;
    char *bytes = slurp(path, &len);
    assert_non_null(bytes);
    char *mark = strstr(bytes, ATOMICFILE_CHECKSUM_MARK);
    assert_non_null(mark);
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_append(&b, bytes, (size_t)(mark - bytes));
    d8_buf_printf(&b, ",\"usage\":%s", section);
    char sum[ATOMICFILE_CHECKSUM_SIZE];
    atomicfile_checksum(b.data, b.len, sum);
    d8_buf_printf(&b, ATOMICFILE_CHECKSUM_MARK "%s\"}\n", sum);
    spit(path, b.data, b.len);
    d8_buf_release(&b);
    free(bytes);
}

/* The "usage" section of older files (now the usage file, pkg/usage): it
 * is accepted at load and handed over once, the desired set is restored
 * as usual, and the next write no longer has it. */
static void test_legacy_usage_section(void **state)
{
    fx_t *fx = *state;
    store_t *st = store_new(64);
    statefile_t *sf = new_sf(fx, st, NULL, 10);
    assert_int_equal(statefile_load(sf, &rules, NULL, 0), D8_ENOENT);
    assert_null(statefile_take_legacy_usage(sf));
    statefile_start(sf);
    put(st, "env-b", SPEC_B, PUT_CREATED);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    drop_sf(fx, sf);
    store_free(st);
    size_t len;
    char *bytes = slurp(fx->path, &len);
    assert_null(strstr(bytes, "\"usage\""));
    free(bytes);
    add_legacy_usage(fx->path, "{\"envs\":[],\"retained\":[],\"n\":1}");

    st = store_new(64);
    sf = new_sf(fx, st, NULL, 10);
    char err[256] = "";
    assert_int_equal(statefile_load(sf, &rules, err, sizeof(err)), D8_OK);
    assert_non_null(store_get(st, "env-b"));
    cJSON *u = statefile_take_legacy_usage(sf);
    assert_non_null(u);
    char *txt = cJSON_PrintUnformatted(u);
    assert_string_equal(txt, "{\"envs\":[],\"retained\":[],\"n\":1}");
    cJSON_free(txt);
    cJSON_Delete(u);
    assert_null(statefile_take_legacy_usage(sf)); /* once */
    statefile_start(sf);
    put(st, "env-b", SPEC_B2, PUT_UPDATED);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(statefile__writes(sf), 1);
    drop_sf(fx, sf);
    store_free(st);
    bytes = slurp(fx->path, &len);
    assert_null(strstr(bytes, "\"usage\""));
    free(bytes);

    /* A section never taken is freed with the state file (no leak). */
    add_legacy_usage(fx->path, "{\"envs\":[],\"retained\":[]}");
    st = store_new(64);
    sf = new_sf(fx, st, NULL, 10);
    assert_int_equal(statefile_load(sf, &rules, NULL, 0), D8_OK);
    drop_sf(fx, sf);
    store_free(st);
}

static void test_put_after_restore(void **state)
{
    fx_t *fx = *state;
    store_t *st = store_new(64);
    statefile_t *sf = new_sf(fx, st, NULL, 10);
    statefile_start(sf);
    fill(st);
    put(st, "env-d", SPEC_A, PUT_CREATED);
    drop_sf(fx, sf); /* free writes what is pending */
    store_free(st);

    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_OK);
    /* The same spec and secrets: no new generation, values adopted. */
    put(back, "env-a", SPEC_A_STOPPED, PUT_UNCHANGED);
    const env_obj_t *a = store_get(back, "env-a");
    assert_int_equal(a->generation, 2);
    assert_int_equal(a->restored, 0);
    assert_string_equal(a->spec.secret_env[1].value, SECRET1); /* sorted: API_KEY, GITHUB_TOKEN */
    /* A different secret value: a new generation. */
    put(back, "env-d",
        "{\"userId\":\"u1\",\"name\":\"A\",\"cloudRegion\":\"eastus\",\"env\":{\"PLAIN\":\"p\"},"
        "\"secretEnv\":{\"GITHUB_TOKEN\":\"rotated\",\"API_KEY\":\"" SECRET2 "\"}}",
        PUT_UPDATED);
    assert_int_equal(store_get(back, "env-d")->generation, 2);
    assert_int_equal(store_get(back, "env-d")->restored, 0);
    store_free(back);

    /* Another key than the one the file was written with: digests cannot
     * match, so the same PUT is a change. */
    static const unsigned char other[] = "another-key";
    assert_int_equal(load_into(fx, &back, other, sizeof(other) - 1, err, sizeof(err)), D8_OK);
    put(back, "env-a", SPEC_A_STOPPED, PUT_UPDATED);
    assert_int_equal(store_get(back, "env-a")->generation, 3);
    store_free(back);
}

/* Writes the store's snapshot once (no crash) and returns the file's bytes. */
static char *write_once(fx_t *fx, store_t *st, size_t *len)
{
    statefile_t *sf = new_sf(fx, st, NULL, 1);
    statefile_start(sf);
    put(st, "zz-marker", SPEC_B, store_get(st, "zz-marker") ? PUT_UNCHANGED : PUT_CREATED);
    store_remove(st, "zz-marker");
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    drop_sf(fx, sf);
    return slurp(fx->path, len);
}

static void test_crash_at_every_point(void **state)
{
    fx_t *fx = *state;
    /* The old content: env-a only. */
    store_t *v1 = store_new(64);
    put(v1, "env-a", SPEC_A, PUT_CREATED);
    size_t old_len;
    char *old = write_once(fx, v1, &old_len);
    assert_non_null(old);
    store_free(v1);

    /* The new content: env-a and env-b; its size, from a clean write. */
    store_t *v2 = store_new(64);
    put(v2, "env-a", SPEC_A, PUT_CREATED);
    put(v2, "env-b", SPEC_B, PUT_CREATED);
    size_t new_len;
    char *fresh = write_once(fx, v2, &new_len);
    assert_non_null(fresh);
    free(fresh);

    typedef struct point {
        statefile__step_t step;
        size_t bytes;
    } point_t;
    point_t pts[64];
    size_t np = 0;
    pts[np++] = (point_t){STATEFILE__OPEN, 0};
    size_t stride = new_len / 24 ? new_len / 24 : 1;
    for (size_t b = 1; b < new_len && np < 60; b += stride)
        pts[np++] = (point_t){STATEFILE__WRITE, b};
    pts[np++] = (point_t){STATEFILE__WRITE, new_len - 1};
    pts[np++] = (point_t){STATEFILE__WRITE, new_len};
    pts[np++] = (point_t){STATEFILE__FSYNC, 0};
    pts[np++] = (point_t){STATEFILE__CLOSE, 0};
    pts[np++] = (point_t){STATEFILE__RENAME, 0};
    pts[np++] = (point_t){STATEFILE__DIR_FSYNC, 0};

    for (size_t i = 0; i < np; i++) {
        spit(fx->path, old, old_len);
        statefile_t *sf = new_sf(fx, v2, NULL, 1);
        statefile__crash_at(sf, pts[i].step, pts[i].bytes);
        statefile_start(sf);
        put(v2, "zz-marker", SPEC_B, PUT_CREATED); /* a change, then undo it */
        store_remove(v2, "zz-marker");
        uv_run(&fx->loop, UV_RUN_DEFAULT);
        assert_int_equal(statefile__writes(sf), 0);
        drop_sf(fx, sf); /* crashed: writes nothing more */
        int committed = pts[i].step >= STATEFILE__RENAME;
        /* Before the rename the (maybe torn) temp file is all there is. */
        assert_int_equal(count_temps(fx), committed ? 0 : 1);
        char tmp[200];
        struct stat sb;
        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", fx->path, (long)getpid());
        if (pts[i].step == STATEFILE__OPEN) {
            assert_int_equal(stat(tmp, &sb), 0);
            assert_int_equal(sb.st_size, 0);
        } else if (pts[i].step == STATEFILE__WRITE) {
            assert_int_equal(stat(tmp, &sb), 0);
            assert_int_equal((size_t)sb.st_size, pts[i].bytes);
        }

        store_t *back;
        char err[256];
        int rc = load_into(fx, &back, KEY, KEYLEN, err, sizeof(err));
        if (rc != D8_OK)
            fail_msg("crash after step %d (%zu bytes): %s", pts[i].step, pts[i].bytes, err);
        assert_non_null(store_get(back, "env-a"));
        if (committed)
            assert_non_null(store_get(back, "env-b"));
        else
            assert_null(store_get(back, "env-b"));
        assert_null(store_get(back, "zz-marker"));
        /* The load removed the stale temp file. */
        assert_int_equal(count_temps(fx), 0);
        store_free(back);
    }

    /* The very first write crashed: no file, only a torn temp file. */
    unlink(fx->path);
    statefile_t *sf = new_sf(fx, v2, NULL, 1);
    statefile__crash_at(sf, STATEFILE__WRITE, new_len / 2);
    statefile_start(sf);
    put(v2, "zz-marker", SPEC_B, PUT_CREATED);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    drop_sf(fx, sf);
    assert_int_equal(count_temps(fx), 1);
    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_ENOENT);
    assert_int_equal(store_count(back), 0);
    assert_int_equal(count_temps(fx), 0);
    store_free(back);

    free(old);
    store_free(v2);
}

/* Loads text as the state file; expects failure with needle in err. */
static void expect_bad(fx_t *fx, const char *text, size_t len, int code, const char *needle)
{
    spit(fx->path, text, len);
    store_t *back;
    char err[512];
    int rc = load_into(fx, &back, KEY, KEYLEN, err, sizeof(err));
    if (rc == D8_OK || rc == D8_ENOENT || (code && rc != code))
        fail_msg("expected an error for %.60s: got %d (%s)", text, rc, err);
    assert_non_null(strstr(err, fx->path));
    if (needle && !strstr(err, needle))
        fail_msg("error \"%s\" does not name \"%s\"", err, needle);
    assert_int_equal(store_count(back), 0); /* nothing applied */
    assert_false(store_synced(back));
    store_free(back);
}

/* head + its checksum trailer, as the writer ends a file (caller frees). */
static char *with_sum(const char *head)
{
    unsigned char md[32];
    unsigned int n = 0;
    char hex[65];
    assert_int_equal(EVP_Digest(head, strlen(head), md, &n, EVP_sha256(), NULL), 1);
    d8_hex(md, sizeof(md), hex);
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b, "%s,\"checksum\":\"sha256:%s\"}\n", head, hex);
    return d8_buf_detach(&b, NULL);
}

static void expect_bad_sum(fx_t *fx, const char *head, int code, const char *needle)
{
    char *text = with_sum(head);
    expect_bad(fx, text, strlen(text), code, needle);
    free(text);
}

#define GOOD_ITEM_HEAD "{\"id\":\"a\",\"generation\":1,\"deleting\":false,\"spec\":"
#define GOOD_SPEC "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\"}"
#define HDR                                                                                        \
    "{\"version\":1,\"resourceVersion\":3,\"synced\":true,\"keyCheck\":\"0123456789abcdef\","

static void test_corrupt_files_are_refused(void **state)
{
    fx_t *fx = *state;
    store_t *st = store_new(64);
    statefile_t *sf = new_sf(fx, st, NULL, 1);
    statefile_start(sf);
    fill(st);
    drop_sf(fx, sf);
    size_t len;
    char *good = slurp(fx->path, &len);
    assert_non_null(good);
    store_free(st);

    /* Every truncation of a good file is refused, never half-loaded. */
    size_t body = len;
    while (body > 0 && (good[body - 1] == '\n' || good[body - 1] == ' '))
        body--;
    for (size_t cut = 0; cut < body; cut++)
        expect_bad(fx, good, cut, 0, NULL);
    expect_bad(fx, good, 0, D8_EPARSE, "empty");
    expect_bad(fx, good, body / 2, D8_EPARSE, "torn or corrupt");
    /* Any byte changed (even inside a string, where JSON still parses). */
    char *flip = d8_xstrndup(good, len);
    for (size_t i = 0; i < body; i += 7) {
        char was = flip[i];
        flip[i] = was == 'a' ? 'b' : 'a';
        expect_bad(fx, flip, len, 0, NULL);
        flip[i] = was;
    }
    const char *in_string = strstr(flip, "\"name\":\"B\"");
    assert_non_null(in_string);
    flip[in_string - flip + 8] = 'C';
    expect_bad(fx, flip, len, D8_EPARSE, "checksum");
    free(flip);
    free(good);

    static const char nul[] = HDR "\"items\":[]}\0";
    expect_bad(fx, nul, sizeof(nul) - 1, D8_EPARSE, "NUL");
    char *trailing = with_sum(HDR "\"items\":[]");
    size_t tl = strlen(trailing);
    trailing = d8_xrealloc(trailing, tl + 4);
    memcpy(trailing + tl, " {}", 4);
    expect_bad(fx, trailing, tl + 3, D8_EPARSE, "after the JSON");
    free(trailing);
    expect_bad_sum(fx,
                   "{\"version\":2,\"resourceVersion\":3,\"synced\":true,"
                   "\"keyCheck\":\"0123456789abcdef\",\"items\":[]",
                   D8_EINVAL, "version");
    expect_bad_sum(fx, HDR "\"extra\":1,\"items\":[]", D8_EINVAL, "extra");
    expect_bad_sum(fx, HDR "\"items\":{}", D8_EINVAL, "items");
    const char *nosum = HDR "\"items\":[]}";
    expect_bad(fx, nosum, strlen(nosum), D8_EPARSE, "checksum");
    expect_bad_sum(fx,
                   HDR "\"items\":[" GOOD_ITEM_HEAD GOOD_SPEC
                       ",\"secretDigests\":{}}," GOOD_ITEM_HEAD GOOD_SPEC ",\"secretDigests\":{}}]",
                   D8_EINVAL, "items[1].id");
    expect_bad_sum(fx,
                   HDR "\"items\":[" GOOD_ITEM_HEAD
                       "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"mars\"},"
                       "\"secretDigests\":{}}]",
                   D8_EINVAL, "items[0].spec.cloudRegion");
    expect_bad_sum(fx,
                   HDR "\"items\":[" GOOD_ITEM_HEAD
                       "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
                       "\"secretEnv\":{\"T\":\"<redacted>\"}},\"secretDigests\":{\"T\":\"xyz\"}}]",
                   D8_EINVAL, "items[0].secretDigests.T");
    expect_bad_sum(fx,
                   HDR "\"items\":[" GOOD_ITEM_HEAD
                       "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
                       "\"secretEnv\":{\"T\":\"<redacted>\"}},\"secretDigests\":{}}]",
                   D8_EINVAL, "items[0].secretDigests");
    expect_bad_sum(fx,
                   HDR "\"items\":[{\"id\":\"a\",\"generation\":0,\"deleting\":false,"
                       "\"spec\":null,\"secretDigests\":{}}]",
                   D8_EINVAL, "items[0].spec");
    expect_bad_sum(fx,
                   HDR "\"items\":[{\"id\":\"a\",\"generation\":1.5,\"deleting\":false,"
                       "\"spec\":" GOOD_SPEC ",\"secretDigests\":{}}]",
                   D8_EINVAL, "items[0].generation");
    expect_bad_sum(fx,
                   HDR "\"items\":[{\"id\":\"A--b\",\"generation\":1,\"deleting\":false,"
                       "\"spec\":" GOOD_SPEC ",\"secretDigests\":{}}]",
                   D8_EINVAL, "items[0].id");
    expect_bad(fx, "[]", 2, D8_EINVAL, "object");

    /* A directory where the file should be. */
    unlink(fx->path);
    assert_int_equal(mkdir(fx->path, 0700), 0);
    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_EIO);
    store_free(back);
    rmdir(fx->path);

    /* The minimal good file loads. */
    char *ok = with_sum(HDR "\"items\":[" GOOD_ITEM_HEAD GOOD_SPEC ",\"secretDigests\":{}}]");
    spit(fx->path, ok, strlen(ok));
    free(ok);
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_OK);
    assert_int_equal(store_count(back), 1);
    assert_true(store_synced(back));
    assert_int_equal(store_rv(back), 4);
    store_free(back);
}

typedef struct ticker {
    uv_timer_t t;
    store_t *st;
    int left;
    int n;
} ticker_t;

static void tick(uv_timer_t *t)
{
    ticker_t *k = t->data;
    char id[32];
    snprintf(id, sizeof(id), "tick-%d", k->n++);
    put(k->st, id, SPEC_B, PUT_CREATED);
    if (--k->left == 0)
        uv_close((uv_handle_t *)t, NULL);
}

static void to_error(void *ud, const env_obj_t *obj, env_status_t *s)
{
    (void)ud;
    (void)obj;
    s->phase = PHASE_ERROR;
}

static void test_debounce_coalesces(void **state)
{
    fx_t *fx = *state;
    store_t *st = store_new(64);
    statefile_t *sf = new_sf(fx, st, NULL, 50);
    statefile_start(sf);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "e%04d", i);
        put(st, id, SPEC_B, PUT_CREATED);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(statefile__writes(sf), 1);

    /* Status-only changes are not in the file: no write. */
    store_update_status(st, "e0001", to_error, NULL);
    store_touch(st, "e0002", 5);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(statefile__writes(sf), 1);

    /* 40 changes 5 ms apart (about 200 ms) with a 50 ms debounce. */
    ticker_t k = {.st = st, .left = 40};
    uv_timer_init(&fx->loop, &k.t);
    k.t.data = &k;
    uv_timer_start(&k.t, tick, 5, 5);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uint64_t w = statefile__writes(sf) - 1;
    assert_true(w >= 1);
    assert_true(w <= 10);
    drop_sf(fx, sf);

    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_OK);
    assert_int_equal(store_count(back), 1040);
    store_free(back);
    store_free(st);
}

typedef struct flushed {
    int calls;
    int status;
    int *in_call;
} flushed_t;

static void on_flushed(void *ud, int status)
{
    flushed_t *f = ud;
    assert_int_equal(*f->in_call, 0); /* never from inside statefile_flush */
    f->calls++;
    f->status = status;
}

static void test_flush_and_free(void **state)
{
    fx_t *fx = *state;
    store_t *st = store_new(64);
    statefile_t *sf = new_sf(fx, st, NULL, 60000); /* the debounce never fires here */
    statefile_start(sf);
    int in_call = 0;
    flushed_t f = {.in_call = &in_call};

    /* Nothing to write: done still comes, asynchronously. */
    in_call = 1;
    assert_int_equal(statefile_flush(sf, on_flushed, &f), D8_OK);
    assert_int_equal(statefile_flush(sf, on_flushed, &f), D8_EAGAIN);
    in_call = 0;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.status, D8_OK);
    assert_int_equal(statefile__writes(sf), 0);

    /* A change is written at once by a flush. */
    put(st, "a", SPEC_A, PUT_CREATED);
    assert_int_equal(statefile_flush(sf, on_flushed, &f), D8_OK);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(f.calls, 2);
    assert_int_equal(f.status, D8_OK);
    assert_int_equal(statefile__writes(sf), 1);

    /* A change made while a write is in flight is written by a second one. */
    put(st, "b", SPEC_B, PUT_CREATED);
    assert_int_equal(statefile_flush(sf, on_flushed, &f), D8_OK);
    uv_run(&fx->loop, UV_RUN_ONCE); /* the flush kick: the write starts */
    put(st, "c", SPEC_B, PUT_CREATED);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(f.calls, 3);
    assert_int_equal(statefile__writes(sf), 3);

    /* free with pending changes and a write in flight writes them all. */
    put(st, "d", SPEC_B, PUT_CREATED);
    assert_int_equal(statefile_flush(sf, on_flushed, &f), D8_OK);
    uv_run(&fx->loop, UV_RUN_ONCE);
    put(st, "e", SPEC_B, PUT_CREATED);
    statefile_free(sf); /* the pending flush callback is dropped */
    store_free(st);     /* free serialised already: the store may go */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(f.calls, 3);

    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_OK);
    assert_int_equal(store_count(back), 5);
    assert_non_null(store_get(back, "e"));
    store_free(back);
}

static void test_write_error_is_counted_and_retried(void **state)
{
    fx_t *fx = *state;
    /* The directory does not exist yet: every step fails until it does. */
    char sub[96];
    snprintf(sub, sizeof(sub), "%s/sub", fx->dir);
    snprintf(fx->path, sizeof(fx->path), "%s/state.json", sub);
    store_t *st = store_new(64);
    metrics_t *m = metrics_new();
    statefile_t *sf = new_sf(fx, st, m, 1);
    statefile_start(sf);
    put(st, "a", SPEC_B, PUT_CREATED);
    while (statefile__errors(sf) == 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(statefile__writes(sf), 0);
    d8_buf_t out;
    d8_buf_init(&out);
    metrics_render(m, &out);
    assert_non_null(strstr(out.data, "dev8_statefile_write_errors_total 1"));
    d8_buf_release(&out);

    /* The retry (after a 1 s backoff) succeeds once the directory exists. */
    assert_int_equal(mkdir(sub, 0700), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(statefile__writes(sf), 1);
    d8_buf_init(&out);
    metrics_render(m, &out);
    assert_non_null(strstr(out.data, "dev8_statefile_writes_total 1"));
    d8_buf_release(&out);
    drop_sf(fx, sf);

    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_OK);
    assert_int_equal(store_count(back), 1);
    store_free(back);
    unlink(fx->path);
    rmdir(sub);
    store_free(st);
    metrics_free(m);
}

typedef struct commits {
    int calls;
    uint64_t durable;
    int status;
} commits_t;

static void on_commit(void *ud, uint64_t durable_seq, int status)
{
    commits_t *c = ud;
    c->calls++;
    c->durable = durable_seq;
    c->status = status;
}

/* Group commit: the changes of one window share one write; a change made
 * while a write is in flight goes into the next one, within the window
 * rather than the (here endless) debounce. */
static void test_group_commit(void **state)
{
    fx_t *fx = *state;
    store_t *st = store_new(64);
    statefile_opts_t o = {.loop = &fx->loop,
                          .path = fx->path,
                          .store = st,
                          .key = KEY,
                          .keylen = KEYLEN,
                          .debounce_ms = 60000,
                          .commit_window_ms = 5};
    statefile_t *sf = statefile_new(&o);
    statefile_start(sf);
    commits_t c = {0};
    statefile_on_commit(sf, on_commit, &c);
    assert_int_equal(statefile_commit(sf), 0); /* nothing changed: nothing to wait for */
    assert_int_equal(statefile_writable(sf, NULL, 0), 1);

    uint64_t want = 0;
    char id[32];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "g%02d", i);
        put(st, id, SPEC_B, PUT_CREATED);
        uint64_t s = statefile_commit(sf);
        assert_true(s > want);
        want = s;
    }
    uint64_t t0 = uv_now(&fx->loop);
    while (c.calls == 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(uv_now(&fx->loop) - t0 < 5000); /* the window, not the debounce */
    assert_int_equal(statefile__writes(sf), 1);
    assert_int_equal(c.status, D8_OK);
    assert_int_equal(c.durable, want);
    assert_int_equal(statefile_commit(sf), 0); /* all on disk */

    /* A change while a write is in flight: the next write has it. */
    put(st, "h1", SPEC_B, PUT_CREATED);
    uint64_t s1 = statefile_commit(sf);
    uv_run(&fx->loop, UV_RUN_ONCE); /* the window passes, the write starts */
    int n = 0;
    while (statefile__writes(sf) == 1 && c.calls == 1) {
        snprintf(id, sizeof(id), "h2-%d", n++);
        put(st, id, SPEC_B, PUT_CREATED);
        uint64_t s2 = statefile_commit(sf);
        assert_true(s2 > s1);
        s1 = s2;
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    while (c.durable < s1)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(c.status, D8_OK);
    assert_true(statefile__writes(sf) <= 3);
    statefile_free(sf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);

    store_t *back;
    char err[256];
    assert_int_equal(load_into(fx, &back, KEY, KEYLEN, err, sizeof(err)), D8_OK);
    assert_int_equal(store_count(back), (size_t)(51 + n));
    store_free(back);
    store_free(st);
}

/* A failed write: the listener hears it, statefile_writable says why, and
 * the retry that succeeds makes it writable again. */
static void test_commit_failure_and_recovery(void **state)
{
    fx_t *fx = *state;
    char sub[96];
    snprintf(sub, sizeof(sub), "%s/sub", fx->dir);
    snprintf(fx->path, sizeof(fx->path), "%s/state.json", sub);
    store_t *st = store_new(64);
    statefile_opts_t o = {.loop = &fx->loop, .path = fx->path, .store = st, .commit_window_ms = 0};
    statefile_t *sf = statefile_new(&o);
    statefile_start(sf);
    commits_t c = {0};
    statefile_on_commit(sf, on_commit, &c);
    put(st, "a", SPEC_B, PUT_CREATED);
    uint64_t s = statefile_commit(sf);
    assert_true(s > 0);
    while (c.calls == 0)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(c.status, D8_EIO);
    assert_true(c.durable < s);
    char reason[200];
    assert_int_equal(statefile_writable(sf, reason, sizeof(reason)), 0);
    assert_non_null(strstr(reason, "state.json"));
    assert_non_null(strstr(reason, "no such file or directory"));
    /* While failing, a commit keeps the backoff: it only records the wish. */
    assert_int_equal(statefile_commit(sf), s);

    assert_int_equal(mkdir(sub, 0700), 0);
    while (c.status != D8_OK)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(c.durable, s);
    assert_int_equal(statefile_writable(sf, reason, sizeof(reason)), 1);
    assert_int_equal(statefile_commit(sf), 0);
    statefile_free(sf);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    unlink(fx->path);
    rmdir(sub);
    store_free(st);
}

int main(void)
{
    /* A hung loop must fail the run, not stall it. */
    alarm(120);
    log_setup(LOG_WARN, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_without_secret_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_usage_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_after_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_at_every_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debounce_coalesces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_and_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_is_counted_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_failure_and_recovery, setup, teardown),
    };
    return cmocka_run_group_tests_name("statefile", tests, NULL, NULL);
}
