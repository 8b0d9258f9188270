/*
 * Unit tests of pkg/azure: decoders against every response body of the
 * official examples for our operations, request bodies against the
 * required fields of the official schemas, token bucket math,
 * Retry-After parsing, ARM error decoding, token/key decoding, secret
 * scrubbing, the client's bucket waits and buckets (ARM's per
 * subscription, ACI's per region), and its loop-safe lifecycle
 * (cancel on free, credential failure) without any server.
 *
 * The specs are read at test time from ../shared/azure-specs (relative to
 * the repository root, where `make test` runs), or from $D8_SPECS_DIR
 * (helpers/azure_specs.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/azure.h"
#include "azure/azure_int.h"
#include "helpers/azure_opts.h"
#include "helpers/azure_specs.h"
#include "log/log.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------ decoders */

static void check_group_example(const char *file, const char *status, const char *state,
                                const char *ip, const char *fqdn)
{
    char rel[512];
    snprintf(rel, sizeof(rel), ACI_DIR "/examples/%s", file);
    cJSON *ex = load_spec(rel);
    char *body = example_body(ex, status);
    assert_non_null(body);
    azure_group_t g;
    assert_int_equal(azure_decode_group(body, strlen(body), &g), 0);
    assert_string_equal(g.name, "demo1");
    assert_non_null(g.id);
    assert_string_equal(g.provisioning_state, state);
    if (ip)
        assert_string_equal(g.ip, ip);
    if (fqdn)
        assert_string_equal(g.fqdn, fqdn);
    else
        assert_null(g.fqdn);
    azure_group_release(&g);
    free(body);
    cJSON_Delete(ex);
}

static void test_decode_group_examples(void **state)
{
    (void)state;
    check_group_example("ContainerGroupsCreateOrUpdate.json", "200", "Succeeded", "10.0.0.1",
                        "dnsnamelabel1.azure-container.io");
    check_group_example("ContainerGroupsCreateOrUpdate.json", "201", "Succeeded", "10.0.0.1",
                        "dnsnamelabel1.azure-container.io");
    check_group_example("ContainerGroupsGet_Succeeded.json", "200", "Succeeded", "10.0.0.1", NULL);
    check_group_example("ContainerGroupsDelete.json", "200", "Succeeded", "10.0.0.1", NULL);

    cJSON *ex = load_spec(ACI_DIR "/examples/ContainerGroupsGet_Failed.json");
    char *body = example_body(ex, "200");
    azure_group_t g;
    assert_int_equal(azure_decode_group(body, strlen(body), &g), 0);
    assert_string_equal(g.provisioning_state, "Failed");
    assert_string_equal(g.instance_state, "Pending");
    assert_non_null(g.failure_message);
    assert_non_null(strstr(g.failure_message, "mount error(2): Permission denied"));
    assert_string_equal(g.location, "WestUs");
    azure_group_release(&g);
    free(body);
    cJSON_Delete(ex);
}

static void test_decode_group_list_examples(void **state)
{
    (void)state;
    const char *files[] = {"ContainerGroupsListByResourceGroup.json", "ContainerGroupsList.json"};
    for (size_t i = 0; i < 2; i++) {
        char rel[512];
        snprintf(rel, sizeof(rel), ACI_DIR "/examples/%s", files[i]);
        cJSON *ex = load_spec(rel);
        char *body = example_body(ex, "200");
        azure_group_list_t l = {0};
        char *next = (char *)"x";
        assert_int_equal(azure_decode_group_list(body, strlen(body), &l, &next), 0);
        assert_true(l.n >= 1);
        assert_null(next);
        assert_string_equal(l.items[0].provisioning_state, "Succeeded");
        assert_null(l.items[0].instance_state);
        /* A second page appends. */
        assert_int_equal(azure_decode_group_list(body, strlen(body), &l, &next), 0);
        assert_true(l.n >= 2);
        azure_group_list_release(&l);
        free(body);
        cJSON_Delete(ex);
    }
}

static void test_decode_tags(void **state)
{
    (void)state;
    const char *j = "{\"value\":[{\"name\":\"dev8-a\",\"tags\":{\"dev8-env-id\":\"a\","
                    "\"dev8-managed-by\":\"dev8-agent\",\"n\":3},\"properties\":"
                    "{\"provisioningState\":\"Creating\"}}],\"nextLink\":\"http://x/next\"}";
    azure_group_list_t l = {0};
    char *next = NULL;
    assert_int_equal(azure_decode_group_list(j, strlen(j), &l, &next), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(azure_map_get(&l.items[0].tags, "dev8-env-id"), "a");
    assert_string_equal(azure_map_get(&l.items[0].tags, "dev8-managed-by"), "dev8-agent");
    assert_null(azure_map_get(&l.items[0].tags, "n"));
    assert_string_equal(next, "http://x/next");
    free(next);
    azure_group_list_release(&l);
}

static void test_decode_share_examples(void **state)
{
    (void)state;
    cJSON *ex = load_spec(STO_DIR "/examples/FileSharesGet.json");
    char *body = example_body(ex, "200");
    azure_share_t s;
    assert_int_equal(azure_decode_share(body, strlen(body), &s), 0);
    assert_string_equal(s.name, "share1634");
    assert_int_equal(s.quota_gb, 1024);
    assert_int_equal(s.has_metadata, 0);
    azure_share_release(&s);
    free(body);
    cJSON_Delete(ex);

    const char *statuses[] = {"201", "200"};
    ex = load_spec(STO_DIR "/examples/FileSharesPut.json");
    for (size_t i = 0; i < 2; i++) {
        body = example_body(ex, statuses[i]);
        assert_int_equal(azure_decode_share(body, strlen(body), &s), 0);
        assert_string_equal(s.name, "share6185");
        assert_int_equal(s.quota_gb, -1);
        azure_share_release(&s);
        free(body);
    }
    cJSON_Delete(ex);

    ex = load_spec(STO_DIR "/examples/FileSharesPatch.json");
    body = example_body(ex, "200");
    assert_int_equal(azure_decode_share(body, strlen(body), &s), 0);
    assert_int_equal(s.has_metadata, 1);
    assert_string_equal(azure_map_get(&s.metadata, "type"), "image");
    azure_share_release(&s);
    free(body);
    cJSON_Delete(ex);

    ex = load_spec(STO_DIR "/examples/FileSharesList.json");
    body = example_body(ex, "200");
    azure_share_list_t l = {0};
    char *next = NULL;
    assert_int_equal(azure_decode_share_list(body, strlen(body), &l, &next), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].name, "share1644");
    assert_string_equal(l.items[1].name, "share4052");
    assert_int_equal(l.items[1].quota_gb, 1024);
    assert_non_null(next);
    assert_non_null(strstr(next, "$skipToken="));
    free(next);
    azure_share_list_release(&l);
    free(body);
    cJSON_Delete(ex);

    ex = load_spec(STO_DIR "/examples/DeletedFileSharesList.json");
    body = example_body(ex, "200");
    memset(&l, 0, sizeof(l));
    assert_int_equal(azure_decode_share_list(body, strlen(body), &l, &next), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].deleted, 1);
    assert_int_equal(l.items[1].deleted, 0);
    assert_null(next);
    azure_share_list_release(&l);
    free(body);
    cJSON_Delete(ex);
}

/* Every response body of every example of our operations decodes with the
 * decoder for its operation (the examples without a body are the 202/204
 * answers, which carry only headers). */
static void test_every_example_body_decodes(void **state)
{
    (void)state;
    static const struct {
        const char *rel;
        char kind; /* g group, G group list, s share, S share list, - none */
    } ex[] = {
        {ACI_DIR "/examples/ContainerGroupsCreateOrUpdate.json", 'g'},
        {ACI_DIR "/examples/ContainerGroupsGet_Succeeded.json", 'g'},
        {ACI_DIR "/examples/ContainerGroupsGet_Failed.json", 'g'},
        {ACI_DIR "/examples/ContainerGroupsList.json", 'G'},
        {ACI_DIR "/examples/ContainerGroupsListByResourceGroup.json", 'G'},
        {ACI_DIR "/examples/ContainerGroupsDelete.json", 'g'},
        {ACI_DIR "/examples/ContainerGroupsStart.json", '-'},
        {ACI_DIR "/examples/ContainerGroupsStop.json", '-'},
        {ACI_DIR "/examples/ContainerGroupsUpdate.json", 'g'},
        {STO_DIR "/examples/FileSharesPut.json", 's'},
        {STO_DIR "/examples/FileSharesGet.json", 's'},
        {STO_DIR "/examples/FileSharesPatch.json", 's'},
        {STO_DIR "/examples/FileSharesList.json", 'S'},
        {STO_DIR "/examples/DeletedFileSharesList.json", 'S'},
        {STO_DIR "/examples/FileSharesDelete.json", '-'},
    };
    int bodies = 0;
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        cJSON *j = load_spec(ex[i].rel);
        const cJSON *st;
        cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(j, "responses"))
        {
            char *body = example_body(j, st->string);
            if (!body)
                continue;
            bodies++;
            size_t n = strlen(body);
            char *next = NULL;
            int rc = -100;
            switch (ex[i].kind) {
            case 'g': {
                azure_group_t g;
                rc = azure_decode_group(body, n, &g);
                assert_non_null(g.name);
                azure_group_release(&g);
                break;
            }
            case 'G': {
                azure_group_list_t l = {0};
                rc = azure_decode_group_list(body, n, &l, &next);
                assert_true(l.n > 0);
                azure_group_list_release(&l);
                break;
            }
            case 's': {
                azure_share_t s;
                rc = azure_decode_share(body, n, &s);
                assert_non_null(s.name);
                azure_share_release(&s);
                break;
            }
            case 'S': {
                azure_share_list_t l = {0};
                rc = azure_decode_share_list(body, n, &l, &next);
                assert_true(l.n > 0);
                azure_share_list_release(&l);
                break;
            }
            default:
                fail_msg("%s %s has an unexpected body", ex[i].rel, st->string);
            }
            if (rc != 0)
                fail_msg("%s response %s did not decode", ex[i].rel, st->string);
            free(next);
            free(body);
        }
        cJSON_Delete(j);
    }
    assert_true(bodies >= 13);
}

static void test_decode_rejects_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "null",
                         "[]",
                         "\"x\"",
                         "{\"value\":3}",
                         "{\"value\":[1]}",
                         "{",
                         "{\"value\":[],\"nextLink\":5}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        azure_group_list_t gl = {0};
        azure_share_list_t sl = {0};
        char *next = NULL;
        assert_int_equal(azure_decode_group_list(bad[i], strlen(bad[i]), &gl, &next), D8_EPARSE);
        assert_int_equal(azure_decode_share_list(bad[i], strlen(bad[i]), &sl, &next), D8_EPARSE);
        assert_int_equal(gl.n, 0);
        assert_null(next);
    }
    azure_group_t g;
    assert_int_equal(azure_decode_group("[1]", 3, &g), D8_EPARSE);
    azure_group_release(&g);
    azure_share_t s;
    assert_int_equal(azure_decode_share("7", 1, &s), D8_EPARSE);
    azure_share_release(&s);
    /* Wrong types read as absent. */
    const char *odd = "{\"name\":5,\"properties\":{\"provisioningState\":[],\"ipAddress\":"
                      "{\"ip\":{}},\"shareQuota\":\"12\"}}";
    assert_int_equal(azure_decode_group(odd, strlen(odd), &g), 0);
    assert_null(g.name);
    assert_null(g.provisioning_state);
    assert_null(g.ip);
    azure_group_release(&g);
    assert_int_equal(azure_decode_share(odd, strlen(odd), &s), 0);
    assert_int_equal(s.quota_gb, -1);
    azure_share_release(&s);
}

/* ------------------------------------------------------------ errors */

static void test_decode_error(void **state)
{
    (void)state;
    char code[64], msg[128];
    const char *arm = "{\"error\":{\"code\":\"ResourceNotFound\",\"message\":\"The Resource "
                      "'x' was not found.\",\"details\":[]}}";
    assert_int_equal(azure_decode_error(arm, strlen(arm), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "ResourceNotFound");
    assert_string_equal(msg, "The Resource 'x' was not found.");

    const char *aad = "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                      "Invalid client secret provided.\"}";
    assert_int_equal(azure_decode_error(aad, strlen(aad), code, sizeof(code), msg, sizeof(msg)), 0);
    assert_string_equal(code, "invalid_client");
    assert_true(strncmp(msg, "AADSTS7000215", 13) == 0);

    const char *flat = "{\"code\":\"Conflict\",\"message\":\"busy\"}";
    assert_int_equal(azure_decode_error(flat, strlen(flat), code, sizeof(code), msg, sizeof(msg)),
                     0);
    assert_string_equal(code, "Conflict");

    char small[5];
    assert_int_equal(azure_decode_error(arm, strlen(arm), small, sizeof(small), msg, sizeof(msg)),
                     0);
    assert_string_equal(small, "Reso");

    const char *bad[] = {"", "<html>502</html>", "{}", "{\"error\":{}}", "{\"error\":3}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            azure_decode_error(bad[i], strlen(bad[i]), code, sizeof(code), msg, sizeof(msg)),
            D8_EPARSE);
        assert_string_equal(code, "");
    }
}

static void test_decode_operation(void **state)
{
    (void)state;
    azure_operation_t op;
    const char *failed = "{\"id\":\"/x\",\"status\":\"Failed\",\"error\":{\"code\":"
                         "\"FailedMount\",\"message\":\"mount error(13)\"}}";
    assert_int_equal(azure_decode_operation(failed, strlen(failed), &op), 0);
    assert_string_equal(op.status, "Failed");
    assert_string_equal(op.error_code, "FailedMount");
    assert_string_equal(op.error_message, "mount error(13)");
    azure_operation_release(&op);
    const char *running = "{\"status\":\"InProgress\"}";
    assert_int_equal(azure_decode_operation(running, strlen(running), &op), 0);
    assert_string_equal(op.status, "InProgress");
    assert_null(op.error_code);
    azure_operation_release(&op);
    assert_int_equal(azure_decode_operation("{}", 2, &op), D8_EPARSE);
    assert_null(op.status);
}

static void test_decode_token_and_keys(void **state)
{
    (void)state;
    azure__token_t t;
    const char *aad = "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"access_token\":\"eyJ0\"}";
    assert_int_equal(azure__decode_token(aad, strlen(aad), &t), 0);
    assert_string_equal(t.access_token, "eyJ0");
    assert_int_equal(t.expires_in_s, 3599);
    azure__token_release(&t);

    const char *imds = "{\"access_token\":\"abc\",\"expires_in\":\"86399\",\"expires_on\":"
                       "\"1700000000\",\"resource\":\"https://management.azure.com/\"}";
    assert_int_equal(azure__decode_token(imds, strlen(imds), &t), 0);
    assert_int_equal(t.expires_in_s, 86399);
    azure__token_release(&t);

    const char *noexp = "{\"access_token\":\"abc\",\"expires_in\":\"12x\"}";
    assert_int_equal(azure__decode_token(noexp, strlen(noexp), &t), 0);
    assert_int_equal(t.expires_in_s, -1);
    azure__token_release(&t);

    const char *none = "{\"expires_in\":5}";
    assert_int_equal(azure__decode_token(none, strlen(none), &t), D8_EPARSE);
    assert_null(t.access_token);

    char *key = NULL;
    const char *keys = "{\"keys\":[{\"keyName\":\"key1\",\"value\":\"K1==\",\"permissions\":"
                       "\"FULL\"},{\"keyName\":\"key2\",\"value\":\"K2==\"}]}";
    assert_int_equal(azure__decode_keys(keys, strlen(keys), &key), 0);
    assert_string_equal(key, "K1==");
    azure__free_secret(key);
    assert_int_equal(azure__decode_keys("{\"keys\":[]}", 11, &key), D8_EPARSE);
    assert_null(key);
}

/* ------------------------------------------------------------ encoders */

static const cJSON *resolve_ref(const cJSON *doc, const cJSON *schema)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
    if (!cJSON_IsString(ref))
        return schema;
    if (strncmp(ref->valuestring, "#/definitions/", 14) != 0)
        return NULL; /* another file: the common types mark nothing we send required */
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(doc, "definitions");
    return cJSON_GetObjectItemCaseSensitive(defs, ref->valuestring + 14);
}

/* Walks instance `inst` along `schema`, counting required properties that
 * are absent; prints each. */
static int missing_required(const cJSON *doc, const cJSON *schema, const cJSON *inst,
                            const char *path)
{
    schema = resolve_ref(doc, schema);
    if (!schema)
        return 0;
    int missing = 0;
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(schema, "allOf");
    const cJSON *sub;
    cJSON_ArrayForEach(sub, all)
    {
        missing += missing_required(doc, sub, inst, path);
    }
    if (cJSON_IsObject(inst)) {
        const cJSON *req;
        cJSON_ArrayForEach(req, cJSON_GetObjectItemCaseSensitive(schema, "required"))
        {
            if (!cJSON_GetObjectItemCaseSensitive(inst, req->valuestring)) {
                print_error("missing required %s.%s\n", path, req->valuestring);
                missing++;
            }
        }
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
        const cJSON *member;
        cJSON_ArrayForEach(member, inst)
        {
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, member->string);
            if (ps) {
                char p[512];
                snprintf(p, sizeof(p), "%s.%s", path, member->string);
                missing += missing_required(doc, ps, member, p);
            }
        }
    } else if (cJSON_IsArray(inst)) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
        const cJSON *el;
        int i = 0;
        cJSON_ArrayForEach(el, inst)
        {
            char p[512];
            snprintf(p, sizeof(p), "%s[%d]", path, i++);
            if (items)
                missing += missing_required(doc, items, el, p);
        }
    }
    return missing;
}

static const azure_kv_t tags[] = {{"dev8-managed-by", "dev8-agent"}, {"dev8-env-id", "ckx1"}};
static const azure_kv_t env[] = {{"EDITOR", "vim"}, {"QUOTE", "a\"b\\c\n"}};
static const azure_kv_t senv[] = {{"GITHUB_TOKEN", "ghp_secretvalue123"}};
static const int ports[] = {8080};

static azure_group_spec_t sample_spec(void)
{
    azure_group_spec_t s = {
        .name = "dev8-ckx1",
        .tags = tags,
        .ntags = 2,
        .image = "vaibhavsing/dev8-workspace:latest",
        .cpu = 2,
        .memory_gb = 4.5,
        .ports = ports,
        .nports = 1,
        .env = env,
        .nenv = 2,
        .secure_env = senv,
        .nsecure_env = 1,
        .share_name = "dev8-ckx1",
        .mount_path = "/home/dev8",
        .dns_label = "dev8-ckx1-3f9a2c",
    };
    return s;
}

static void test_group_body_required_fields(void **state)
{
    (void)state;
    cJSON *doc = load_spec(ACI_DIR "/containerInstance.json");
    const cJSON *defs = cJSON_GetObjectItemCaseSensitive(doc, "definitions");
    const cJSON *cg = cJSON_GetObjectItemCaseSensitive(defs, "ContainerGroup");
    assert_non_null(cg);

    azure_group_spec_t spec = sample_spec();
    d8_buf_t b;
    d8_buf_init(&b);
    assert_int_equal(azure_group_body(&spec, "eastus", "dev8eastus", "storagekey==", &b), 0);
    cJSON *body = cJSON_ParseWithLength(b.data, b.len);
    assert_non_null(body);
    assert_int_equal(missing_required(doc, cg, body, "containerGroup"), 0);

    /* The fields of the issue, with their values. */
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(body, "properties");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(body, "location")->valuestring, "eastus");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(props, "osType")->valuestring, "Linux");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(props, "restartPolicy")->valuestring,
                        "OnFailure");
    const cJSON *ct = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(props, "containers"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ct, "name")->valuestring, "workspace");
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(ct, "properties");
    const cJSON *rq = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cp, "resources"), "requests");
    assert_true(cJSON_GetObjectItemCaseSensitive(rq, "cpu")->valuedouble == 2.0);
    assert_true(cJSON_GetObjectItemCaseSensitive(rq, "memoryInGB")->valuedouble == 4.5);
    const cJSON *envs = cJSON_GetObjectItemCaseSensitive(cp, "environmentVariables");
    assert_int_equal(cJSON_GetArraySize(envs), 3);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(envs, 1), "value")->valuestring,
        "a\"b\\c\n");
    const cJSON *sec = cJSON_GetArrayItem(envs, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(sec, "secureValue")->valuestring,
                        "ghp_secretvalue123");
    assert_null(cJSON_GetObjectItemCaseSensitive(sec, "value"));
    const cJSON *ip = cJSON_GetObjectItemCaseSensitive(props, "ipAddress");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ip, "type")->valuestring, "Public");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ip, "dnsNameLabel")->valuestring,
                        "dev8-ckx1-3f9a2c");
    const cJSON *vol = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(props, "volumes"), 0);
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(vol, "azureFile");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(af, "storageAccountKey")->valuestring,
                        "storagekey==");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(af, "shareName")->valuestring,
                        "dev8-ckx1");
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(body, "tags");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tg, "dev8-env-id")->valuestring, "ckx1");

    /* And what we send reads back with our own decoder. */
    azure_group_t g;
    assert_int_equal(azure_decode_group(b.data, b.len, &g), 0);
    assert_string_equal(azure_map_get(&g.tags, "dev8-managed-by"), "dev8-agent");
    azure_group_release(&g);

    /* Required inputs missing -> EINVAL, never a half body. */
    azure_group_spec_t bad = spec;
    bad.image = NULL;
    d8_buf_t b2;
    d8_buf_init(&b2);
    assert_int_equal(azure_group_body(&bad, "eastus", "acct", "k", &b2), D8_EINVAL);
    bad = spec;
    bad.nports = 0;
    assert_int_equal(azure_group_body(&bad, "eastus", "acct", "k", &b2), D8_EINVAL);
    bad = spec;
    assert_int_equal(azure_group_body(&bad, "eastus", "acct", NULL, &b2), D8_EINVAL);
    bad.cpu = 0;
    assert_int_equal(azure_group_body(&bad, "eastus", "acct", "k", &b2), D8_EINVAL);
    assert_int_equal(b2.len, 0);
    d8_buf_release(&b2);

    cJSON_Delete(body);
    d8_buf_release(&b);
    cJSON_Delete(doc);
}

static void test_share_body_required_fields(void **state)
{
    (void)state;
    cJSON *doc = load_spec(STO_DIR "/file.json");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "definitions"), "FileShare");
    assert_non_null(fs);
    const azure_kv_t md[] = {{"dev8managedby", "dev8agent"}, {"dev8envid", "ckx1"}};
    azure_share_spec_t spec = {.name = "dev8-ckx1", .quota_gb = 20, .metadata = md, .nmetadata = 2};
    d8_buf_t b;
    d8_buf_init(&b);
    assert_int_equal(azure_share_body(&spec, &b), 0);
    cJSON *body = cJSON_ParseWithLength(b.data, b.len);
    assert_non_null(body);
    assert_int_equal(missing_required(doc, fs, body, "fileShare"), 0);
    azure_share_t s;
    assert_int_equal(azure_decode_share(b.data, b.len, &s), 0);
    assert_int_equal(s.quota_gb, 20);
    assert_string_equal(azure_map_get(&s.metadata, "dev8envid"), "ckx1");
    azure_share_release(&s);
    cJSON_Delete(body);

    d8_buf_reset(&b);
    assert_int_equal(azure_share_quota_body(100, &b), 0);
    assert_string_equal(b.data, "{\"properties\":{\"shareQuota\":100}}");
    assert_int_equal(azure_share_quota_body(0, &b), D8_EINVAL);

    const azure_kv_t badmd[] = {{"dev8-env-id", "x"}};
    azure_share_spec_t bad = {.name = "s", .quota_gb = 1, .metadata = badmd, .nmetadata = 1};
    assert_int_equal(azure_share_body(&bad, &b), D8_EINVAL);
    bad.nmetadata = 0;
    bad.quota_gb = 102401;
    assert_int_equal(azure_share_body(&bad, &b), D8_EINVAL);
    d8_buf_release(&b);
    cJSON_Delete(doc);
}

/* ------------------------------------------------------------ limits */

static void test_token_bucket(void **state)
{
    (void)state;
    azure__bucket_t b;
    azure__bucket_init(&b, 250, 25, 1000);
    for (int i = 0; i < 250; i++) {
        assert_int_equal(azure__bucket_wait_ms(&b, 1000), 0);
        azure__bucket_take(&b);
    }
    /* Empty: one token every 40 ms at 25/s. */
    uint64_t w = azure__bucket_wait_ms(&b, 1000);
    assert_in_range(w, 40, 41);
    assert_int_equal(azure__bucket_wait_ms(&b, 1041), 0);
    azure__bucket_take(&b);
    /* Refill never exceeds the burst. */
    assert_true(azure__bucket_peek(&b, 1000000) == 250.0);
    /* 1 s later exactly 25 tokens came back. */
    azure__bucket_t c;
    azure__bucket_init(&c, 200, 10, 0);
    c.tokens = 0;
    assert_true(azure__bucket_peek(&c, 1000) > 9.999 && azure__bucket_peek(&c, 1000) < 10.001);
    /* ACI: 100 per 5 minutes. */
    azure__bucket_t a;
    azure__bucket_init(&a, 100, 100.0 / 300.0, 0);
    a.tokens = 0;
    w = azure__bucket_wait_ms(&a, 0);
    assert_in_range(w, 3000, 3001);

    /* A pause holds the bucket shut even when full, and never shortens. */
    azure__bucket_init(&b, 10, 1, 0);
    azure__bucket_pause(&b, 5000);
    azure__bucket_pause(&b, 2000);
    assert_int_equal(azure__bucket_wait_ms(&b, 1000), 4000);
    assert_int_equal(azure__bucket_wait_ms(&b, 5000), 0);
    /* Clamp to what the server says is left. */
    azure__bucket_clamp(&b, 2);
    assert_true(b.tokens == 2.0);
    azure__bucket_clamp(&b, 5);
    assert_true(b.tokens == 2.0);
    azure__bucket_clamp(&b, -3);
    assert_true(b.tokens == 0.0);
    /* Time going backwards changes nothing. */
    assert_true(azure__bucket_peek(&b, 10) == 0.0);
}

static void test_retry_after(void **state)
{
    (void)state;
    uint64_t d = 1;
    assert_int_equal(azure__parse_retry_after("120", 0, &d), 0);
    assert_int_equal(d, 120000);
    assert_int_equal(azure__parse_retry_after(" 0 ", 0, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(azure__parse_retry_after("99999999999", 0, &d), 0);
    assert_int_equal(d, 86400000);
    /* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
    int64_t when = 1445412480LL * 1000;
    assert_int_equal(azure__parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", when - 5000, &d), 0);
    assert_int_equal(d, 5000);
    assert_int_equal(azure__parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", when - 7000, &d),
                     0);
    assert_int_equal(d, 7000);
    assert_int_equal(azure__parse_retry_after("Wed Oct 21 07:28:00 2015", when - 1000, &d), 0);
    assert_int_equal(d, 1000);
    /* A date in the past means now. */
    assert_int_equal(azure__parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", when + 9000, &d), 0);
    assert_int_equal(d, 0);
    const char *bad[] = {"", "abc", "-5", "1.5", "12abc", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_int_equal(azure__parse_retry_after(bad[i], 0, &d), D8_EPARSE);
    assert_int_equal(azure__parse_retry_after(NULL, 0, &d), D8_EPARSE);
}

static void test_scrub_and_names(void **state)
{
    (void)state;
    char text[64] = "bad key storagekey== in storagekey==!";
    const char *secrets[] = {"storagekey==", "abc", NULL};
    azure__scrub(text, sizeof(text), secrets, 3);
    assert_string_equal(text, "bad key <redacted> in <redacted>!");
    char tiny[16] = "xxSECRETxxxx";
    const char *s2[] = {"SECRET"};
    azure__scrub(tiny, sizeof(tiny), s2, 1);
    assert_string_equal(tiny, "xx<redacted>xxx");

    /* Every secret of a request is scrubbed, however many it carries (a
     * spec may hold 128 secure variables, plus the registry password and
     * the storage key). */
    az_secrets_t list = {0};
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "secret-value-%03d", i);
        az_secrets_add(&list, name);
    }
    az_secrets_add(&list, NULL);
    az_secrets_add(&list, "");
    assert_int_equal(list.n, 200);
    char late[64] = "refused: secret-value-199";
    azure__scrub(late, sizeof(late), (const char *const *)list.v, list.n);
    assert_string_equal(late, "refused: <redacted>");
    az_secrets_release(&list);
    assert_int_equal(list.n, 0);

    assert_true(azure__valid_name("rg-dev8_eastus.(1)", 90));
    assert_false(azure__valid_name("a/b", 90));
    assert_false(azure__valid_name("a?b", 90));
    assert_false(azure__valid_name("..", 90));
    assert_false(azure__valid_name("", 90));
    assert_false(azure__valid_name(NULL, 90));
    assert_false(azure__valid_name("abcd", 3));
    azure_auth_kind_t k;
    assert_int_equal(azure_auth_kind_parse("workloadIdentity", &k), 0);
    assert_int_equal(k, AZURE_AUTH_WORKLOAD_IDENTITY);
    assert_int_equal(azure_auth_kind_parse("nope", &k), D8_EINVAL);
    assert_string_equal(azure_auth_kind_name(AZURE_AUTH_MANAGED_IDENTITY), "managedIdentity");
}

/* ------------------------------------------------------------ client */

static void clear_env(void)
{
    unsetenv("AZURE_TENANT_ID");
    unsetenv("AZURE_CLIENT_ID");
    unsetenv("AZURE_CLIENT_SECRET");
    unsetenv("AZURE_FEDERATED_TOKEN_FILE");
    unsetenv("AZURE_AUTHORITY_HOST");
}

/* A loopback port that refuses connections. */
static int refused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct cb_log {
    int calls;
    int last_err;
    char code[64];
    char message[256];
    azure_client_t *free_on_call;
} cb_log_t;

static void on_done(void *ud, const azure_result_t *res)
{
    cb_log_t *l = ud;
    l->calls++;
    l->last_err = res->err;
    snprintf(l->code, sizeof(l->code), "%s", res->error_code);
    snprintf(l->message, sizeof(l->message), "%s", res->error_message);
    if (l->free_on_call) {
        azure_client_t *c = l->free_on_call;
        l->free_on_call = NULL;
        azure_client_free(c);
    }
}

static void on_group(void *ud, const azure_result_t *res, const azure_group_t *g)
{
    assert_null(g);
    on_done(ud, res);
}

static void on_glist(void *ud, const azure_result_t *res, azure_group_list_t *l)
{
    assert_null(l);
    on_done(ud, res);
}

static void mi_opts(azure_client_opts_t *o, char *imds, size_t n)
{
    snprintf(imds, n, "http://127.0.0.1:%d", refused_port());
    test_azure_opts(o, imds);
    o->auth = AZURE_AUTH_MANAGED_IDENTITY;
    o->max_attempts = 2;
    o->backoff_base_ms = 5;
    o->backoff_cap_ms = 10;
}

static const azure_scope_t scope = {"00000000-0000-0000-0000-000000000000", "rg-dev8", "dev8acct",
                                    "eastus"};

static void test_client_cancel_on_free(void **state)
{
    (void)state;
    clear_env();
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    char imds[64], err[256];
    mi_opts(&o, imds, sizeof(imds));
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    assert_int_equal(azure_client_auth_kind(c), AZURE_AUTH_MANAGED_IDENTITY);
    cb_log_t a = {0}, b = {0}, t = {0};
    assert_int_equal(azure_group_get(c, &scope, "dev8-x", AZURE_PRIO_NORMAL, on_group, &a), 0);
    assert_int_equal(azure_group_list(c, &scope, AZURE_PRIO_LOW, on_glist, &b), 0);
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    /* Accepted calls never answer synchronously. */
    assert_int_equal(a.calls + b.calls + t.calls, 0);
    assert_int_equal(azure_client_pending(c), 2);
    azure_client_free(c);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.last_err, D8_ECANCELED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.last_err, D8_ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_client_invalid_args(void **state)
{
    (void)state;
    clear_env();
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    char imds[64], err[256];
    mi_opts(&o, imds, sizeof(imds));
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    cb_log_t a = {0};
    azure_scope_t bad = scope;
    bad.resource_group = "rg/../../x";
    assert_int_equal(azure_group_get(c, &bad, "dev8-x", AZURE_PRIO_NORMAL, on_group, &a),
                     D8_EINVAL);
    assert_int_equal(azure_group_get(c, &scope, "a b", AZURE_PRIO_NORMAL, on_group, &a), D8_EINVAL);
    assert_int_equal(azure_group_get(c, &scope, "ok", AZURE_PRIO_NORMAL, NULL, &a), D8_EINVAL);
    assert_int_equal(azure_share_set_quota(c, &scope, "s", 0, AZURE_PRIO_NORMAL, NULL, &a),
                     D8_EINVAL);
    azure_group_spec_t spec = sample_spec();
    spec.image = "";
    assert_int_equal(azure_group_put(c, &scope, &spec, AZURE_PRIO_HIGH, on_group, &a), D8_EINVAL);
    azure_scope_t noacct = scope;
    noacct.storage_account = NULL;
    assert_int_equal(azure_share_get(c, &noacct, "s", AZURE_PRIO_NORMAL, NULL, &a), D8_EINVAL);
    assert_int_equal(a.calls, 0);
    assert_int_equal(azure_client_pending(c), 0);
    azure_client_free(c);
    azure_client_free(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* A credential kind whose inputs are missing fails at creation, and
     * the message names variables, never values. */
    uv_loop_init(&loop);
    o.auth = AZURE_AUTH_CLIENT_SECRET;
    o.tenant_id = "tenant";
    o.client_secret = "supersecretvalue";
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), D8_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "AZURE_CLIENT_ID"));
    assert_null(strstr(err, "supersecretvalue"));
    o.auth = AZURE_AUTH_WORKLOAD_IDENTITY;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), D8_EINVAL);
    /* auto with a secret picks client secret. */
    o.auth = AZURE_AUTH_AUTO;
    o.client_id = "app";
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    assert_int_equal(azure_client_auth_kind(c), AZURE_AUTH_CLIENT_SECRET);
    azure_client_free(c);
    /* auto with a federated token file picks workload identity. */
    o.federated_token_file = "/nonexistent/token";
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    assert_int_equal(azure_client_auth_kind(c), AZURE_AUTH_WORKLOAD_IDENTITY);
    azure_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* No credential can be had (IMDS refuses connections): token waiters and
 * queued requests fail with D8_EAUTH, from the loop; freeing the client
 * from inside one callback cancels the rest. */
static void test_client_credential_failure(void **state)
{
    (void)state;
    clear_env();
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    char imds[64], err[256];
    mi_opts(&o, imds, sizeof(imds));
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    cb_log_t t = {0}, g = {0};
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    assert_int_equal(azure_group_get(c, &scope, "dev8-x", AZURE_PRIO_NORMAL, on_group, &g), 0);
    uint64_t t0 = d8_mono_ms();
    while ((t.calls == 0 || g.calls == 0) && d8_mono_ms() - t0 < 10000)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.last_err, D8_EAUTH);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.last_err, D8_EAUTH);
    assert_true(strlen(g.message) > 0);
    azure_stats_t st;
    azure_client_stats(c, &st);
    assert_int_equal(st.token_failures, 1);
    assert_int_equal(azure_client_has_token(c), 0);

    /* Free from inside a callback: the other pending call is canceled. */
    cb_log_t g1 = {0}, g2 = {0};
    g1.free_on_call = c;
    assert_int_equal(azure_group_get(c, &scope, "dev8-a", AZURE_PRIO_HIGH, on_group, &g1), 0);
    assert_int_equal(azure_group_get(c, &scope, "dev8-b", AZURE_PRIO_LOW, on_group, &g2), 0);
    t0 = d8_mono_ms();
    while (g1.calls == 0 && d8_mono_ms() - t0 < 10000)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g2.calls, 1);
    assert_true(g2.last_err == D8_ECANCELED || g2.last_err == D8_EAUTH);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Workload identity with an unreadable token file: the failure is the
 * credential's, read without blocking, and reported from the loop. */
static void test_client_workload_identity_missing_file(void **state)
{
    (void)state;
    clear_env();
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    char imds[64], err[256];
    mi_opts(&o, imds, sizeof(imds));
    o.auth = AZURE_AUTH_WORKLOAD_IDENTITY;
    o.tenant_id = "tenant";
    o.client_id = "app";
    o.federated_token_file = "/nonexistent/dev8/token";
    o.authority_host = imds;
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    cb_log_t t = {0};
    assert_int_equal(azure_token_acquire(c, on_done, &t), 0);
    uint64_t t0 = d8_mono_ms();
    while (t.calls == 0 && d8_mono_ms() - t0 < 5000)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(t.last_err, D8_EAUTH);
    assert_string_equal(t.code, "FederatedTokenFileUnreadable");
    azure_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The buckets of subscription+region inside the client (test access). */
static azure__bucket_entry_t *bucket_entry(azure_client_t *c, const char *sub, const char *region)
{
    for (d8_list_t *it = c->buckets.next; it != &c->buckets; it = it->next) {
        azure__bucket_entry_t *be = d8_container_of(it, azure__bucket_entry_t, link);
        if (strcmp(be->subscription, sub) == 0 && strcmp(be->region, region) == 0)
            return be;
    }
    return NULL;
}

/* Empties a bucket down to `tokens`, as of now. */
static void drain_to(azure__bucket_t *b, double tokens)
{
    b->tokens = tokens;
    b->last_ms = d8_mono_ms();
}

/*
 * azure_client_bucket_wait_ms: the refill wait of both ACI windows (the
 * longer wins), of one bucket for the other kinds, and 0 for buckets that
 * are full, never used, or only paused.
 */
static void test_client_bucket_wait(void **state)
{
    (void)state;
    clear_env();
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    char imds[64], err[256];
    mi_opts(&o, imds, sizeof(imds));
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    const char *sub = scope.subscription_id;
    assert_int_equal(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_CREATE), 0);
    /* A request creates its subscription+region's buckets, full. */
    cb_log_t g = {0};
    assert_int_equal(azure_group_get(c, &scope, "dev8-x", AZURE_PRIO_NORMAL, on_group, &g), 0);
    azure__bucket_entry_t *be = bucket_entry(c, sub, "eastus");
    assert_non_null(be);
    for (int k = 0; k < AZURE_BUCKET_KINDS; k++)
        assert_int_equal(azure_client_bucket_wait_ms(c, sub, "eastus", (azure_bucket_kind_t)k), 0);
    assert_int_equal(azure_client_bucket_wait_ms(c, "other", "eastus", AZURE_BUCKET_READ), 0);
    assert_int_equal(azure_client_bucket_wait_ms(c, sub, "eastus", (azure_bucket_kind_t)-1), 0);
    assert_int_equal(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_KINDS), 0);

    /* 5-minute window: 100 per 300 s, half a token short = 1.5 s. A few
     * ms may pass between draining and asking. */
    drain_to(azure__bucket_of(be, AZURE_BUCKET_ACI_CREATE), 0.5);
    assert_in_range(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_CREATE), 1450,
                    1501);
    /* The hourly window (300 per hour: 12 s a token) is longer: it wins. */
    drain_to(azure__bucket_of(be, AZURE_BUCKET_ACI_CREATE_HOURLY), 0.0);
    assert_in_range(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_CREATE), 11950,
                    12001);
    assert_in_range(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_CREATE_HOURLY),
                    11950, 12001);
    /* Only the hourly window short: still a wait. */
    drain_to(azure__bucket_of(be, AZURE_BUCKET_ACI_CREATE), 100);
    assert_in_range(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_CREATE), 11950,
                    12001);
    /* Deletes have their own windows. */
    assert_int_equal(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_DELETE), 0);
    /* ARM's buckets: one window. 25 reads a second: 40 ms a token. */
    drain_to(azure__bucket_of(be, AZURE_BUCKET_READ), 0.0);
    assert_in_range(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_READ), 1, 41);
    /* A Retry-After pause is not a refill wait. */
    azure__bucket_pause(azure__bucket_of(be, AZURE_BUCKET_WRITE), d8_mono_ms() + 60000);
    assert_int_equal(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_WRITE), 0);
    /* Refilled: nothing to wait for. */
    drain_to(azure__bucket_of(be, AZURE_BUCKET_ACI_CREATE_HOURLY), 1.0);
    assert_int_equal(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_CREATE), 0);

    azure_client_free(c);
    assert_int_equal(g.calls, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/*
 * ARM meters reads, writes and deletes per subscription and principal, not
 * per region of the resources: every region of a subscription draws from
 * one set of ARM buckets. ACI's create/delete buckets stay per
 * subscription+region.
 */
static void test_client_buckets_per_subscription(void **state)
{
    (void)state;
    clear_env();
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    char imds[64], err[256];
    mi_opts(&o, imds, sizeof(imds));
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    const char *sub = scope.subscription_id;
    const char *sub2 = "11111111-1111-1111-1111-111111111111";
    azure_scope_t west = scope, other = scope;
    west.region = "westus";
    other.subscription_id = sub2;
    cb_log_t g = {0};
    assert_int_equal(azure_group_get(c, &scope, "dev8-x", AZURE_PRIO_NORMAL, on_group, &g), 0);
    assert_int_equal(azure_group_get(c, &west, "dev8-x", AZURE_PRIO_NORMAL, on_group, &g), 0);
    assert_int_equal(azure_group_get(c, &other, "dev8-x", AZURE_PRIO_NORMAL, on_group, &g), 0);
    azure__bucket_entry_t *east_be = bucket_entry(c, sub, "eastus");
    azure__bucket_entry_t *west_be = bucket_entry(c, sub, "westus");
    azure__bucket_entry_t *other_be = bucket_entry(c, sub2, "eastus");
    assert_non_null(east_be);
    assert_non_null(west_be);
    assert_non_null(other_be);
    for (int k = 0; k < AZURE_BUCKET_KINDS; k++) {
        int arm = k == AZURE_BUCKET_READ || k == AZURE_BUCKET_WRITE || k == AZURE_BUCKET_DELETE;
        assert_int_equal(azure__bucket_of(east_be, k) == azure__bucket_of(west_be, k), arm);
        assert_true(azure__bucket_of(east_be, k) != azure__bucket_of(other_be, k));
    }

    /* Reads spent through eastus are gone for westus too (25 a second:
     * 40 ms a token), not for another subscription. */
    drain_to(azure__bucket_of(east_be, AZURE_BUCKET_READ), 0.0);
    assert_in_range(azure_client_bucket_wait_ms(c, sub, "westus", AZURE_BUCKET_READ), 1, 41);
    assert_int_equal(azure_client_bucket_wait_ms(c, sub2, "eastus", AZURE_BUCKET_READ), 0);
    /* A region not used yet shares them as well; its ACI buckets do not
     * exist yet. */
    double lvl = 99;
    assert_int_equal(azure_client_bucket_level(c, sub, "centralus", AZURE_BUCKET_READ, &lvl), 0);
    assert_true(lvl < 1.0);
    assert_int_equal(azure_client_bucket_level(c, sub, "centralus", AZURE_BUCKET_ACI_CREATE, &lvl),
                     D8_ENOENT);
    /* ACI's creates spent in eastus leave westus's alone. */
    drain_to(azure__bucket_of(east_be, AZURE_BUCKET_ACI_CREATE), 0.0);
    assert_true(azure_client_bucket_wait_ms(c, sub, "eastus", AZURE_BUCKET_ACI_CREATE) > 1000);
    assert_int_equal(azure_client_bucket_wait_ms(c, sub, "westus", AZURE_BUCKET_ACI_CREATE), 0);
    /* Metrics keep one series per region used and kind. */
    d8_buf_t m;
    d8_buf_init(&m);
    azure_client_metrics(c, &m);
    assert_non_null(strstr(m.data, "region=\"westus\",kind=\"read\"}"));
    assert_non_null(strstr(m.data, "region=\"eastus\",kind=\"aci_create\"}"));
    d8_buf_release(&m);

    azure_client_free(c);
    assert_int_equal(g.calls, 3);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_metrics_text(void **state)
{
    (void)state;
    clear_env();
    uv_loop_t loop;
    uv_loop_init(&loop);
    azure_client_opts_t o;
    char imds[64], err[256];
    mi_opts(&o, imds, sizeof(imds));
    azure_client_t *c = NULL;
    assert_int_equal(azure_client_new(&loop, &o, &c, err, sizeof(err)), 0);
    cb_log_t g = {0};
    assert_int_equal(azure_group_get(c, &scope, "dev8-x", AZURE_PRIO_NORMAL, on_group, &g), 0);
    uint64_t t0 = d8_mono_ms();
    while (g.calls == 0 && d8_mono_ms() - t0 < 10000)
        uv_run(&loop, UV_RUN_ONCE);
    double lvl = 0;
    assert_int_equal(
        azure_client_bucket_level(c, scope.subscription_id, "eastus", AZURE_BUCKET_READ, &lvl), 0);
    assert_true(lvl > 249.0);
    assert_int_equal(azure_client_bucket_level(c, "other", "eastus", AZURE_BUCKET_READ, &lvl),
                     D8_ENOENT);
    d8_buf_t m;
    d8_buf_init(&m);
    azure_client_metrics(c, &m);
    assert_non_null(strstr(m.data, "# TYPE dev8_arm_requests_total counter"));
    assert_non_null(strstr(m.data, "dev8_arm_request_duration_seconds_bucket{le=\"+Inf\"} 0"));
    assert_non_null(strstr(m.data, "dev8_arm_throttle_waits_total 0"));
    assert_non_null(strstr(m.data, "dev8_arm_bucket_tokens{subscription=\"00000000-0000-0000-"
                                   "0000-000000000000\",region=\"eastus\",kind=\"read\"}"));
    assert_non_null(strstr(m.data, "dev8_azure_token_refreshes_total 0"));
    d8_buf_release(&m);
    azure_client_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_group_examples),
        cmocka_unit_test(test_decode_group_list_examples),
        cmocka_unit_test(test_decode_tags),
        cmocka_unit_test(test_decode_share_examples),
        cmocka_unit_test(test_every_example_body_decodes),
        cmocka_unit_test(test_decode_rejects_garbage),
        cmocka_unit_test(test_decode_error),
        cmocka_unit_test(test_decode_operation),
        cmocka_unit_test(test_decode_token_and_keys),
        cmocka_unit_test(test_group_body_required_fields),
        cmocka_unit_test(test_share_body_required_fields),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_scrub_and_names),
        cmocka_unit_test(test_client_cancel_on_free),
        cmocka_unit_test(test_client_invalid_args),
        cmocka_unit_test(test_client_credential_failure),
        cmocka_unit_test(test_client_workload_identity_missing_file),
        cmocka_unit_test(test_client_bucket_wait),
        cmocka_unit_test(test_client_buckets_per_subscription),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests_name("azure", tests, NULL, NULL);
}
