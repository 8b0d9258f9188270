/*
 * Unit tests of pkg/azsim, driving the model directly (azsim_handle) with
 * a fake clock: every example of the official specs for the operations
 * dev8-agent uses is accepted and answered in the example's shape, then
 * the behaviour the emulator promises (LROs, paging, secrets, auth,
 * throttling, faults, shares, config) and its scale (10,000 groups and
 * 10,000 shares). Run from the repository root: the specs are read from
 * ../shared/azure-specs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azsim/azsim.h"
#include "base/base.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SPECS "../shared/azure-specs"
#define ACI_EX                                                                                     \
    SPECS "/containerinstance/resource-manager/Microsoft.ContainerInstance/ContainerInstance/"     \
          "stable/2026-05-01/examples/"
#define FS_EX SPECS "/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/examples/"

#define SUB "00000000-0000-0000-0000-000000000000"
#define RG_PATH "/subscriptions/" SUB "/resourceGroups/rg1"
#define CG_PATH RG_PATH "/providers/Microsoft.ContainerInstance/containerGroups"
#define ACI_V "?api-version=2025-09-01"
#define SA_PATH RG_PATH "/providers/Microsoft.Storage/storageAccounts/dev8eastus"
#define FS_PATH SA_PATH "/fileServices/default/shares"
#define FS_V "?api-version=2025-01-01"

#define AZSIM_HARNESS_T0 1000000
#include "azsim_harness.h"

/* ---- fixture ------------------------------------------------------------ */

static void base_opts(azsim_opts_t *o)
{
    azsim_opts_init(o);
    o->clock = fake_clock;
    o->provision_ms = 2000;
    o->delete_ms = 1000;
    o->share_recreate_ms = 2000;
    o->throttle = 0;
}

static fx_t *fx_timed(void)
{
    azsim_opts_t o;
    base_opts(&o);
    return fx_new(&o);
}

static const char *header(const fx_t *f, const char *name)
{
    return azsim_resp_header(&f->r, name);
}

#define GROUP_BODY(extra)                                                                          \
    "{\"location\":\"East US\",\"tags\":{\"dev8-env-id\":\"e1\"},\"properties\":{\"osType\":"      \
    "\"Linux\",\"restartPolicy\":\"OnFailure\",\"containers\":[{\"name\":\"workspace\","           \
    "\"properties\":{\"image\":\"node:20\",\"resources\":{\"requests\":{\"cpu\":2,"                \
    "\"memoryInGB\":4}},\"ports\":[{\"port\":8080}],\"environmentVariables\":[{\"name\":"          \
    "\"PLAIN\",\"value\":\"v\"},{\"name\":\"GITHUB_TOKEN\",\"secureValue\":\"ghp_SECRET\"}]}}],"   \
    "\"ipAddress\":{\"type\":\"Public\",\"dnsNameLabel\":\"dev8-e1-abc123\",\"ports\":[{\"port\":" \
    "8080}]}" extra "}}"

/* ---- shape comparison against the examples ------------------------------ */

static int same_kind(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsBool(a))
        return cJSON_IsBool(b);
    return (a->type & 0xff) == (b->type & 0xff);
}

/*
 * Every key of `want` (the example) must be present in `got` with a value
 * of the same JSON kind, recursively (arrays element by element while both
 * have elements). Paths in `skip` ("zones", "properties.x") are exempt.
 */
static void shape(const cJSON *want, const cJSON *got, const char *path, const char *const *skip)
{
    for (const char *const *s = skip; s && *s; s++)
        if (strcmp(*s, path) == 0)
            return;
    if (!got) {
        fail_msg("missing '%s'", path);
        return;
    }
    if (!same_kind(want, got))
        fail_msg("'%s' has another JSON type than in the example", path);
    if (cJSON_IsObject(want)) {
        for (const cJSON *it = want->child; it; it = it->next) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", it->string);
            shape(it, cJSON_GetObjectItemCaseSensitive(got, it->string), sub, skip);
        }
    } else if (cJSON_IsArray(want)) {
        int n = cJSON_GetArraySize(want), m = cJSON_GetArraySize(got);
        if (n > 0 && m == 0)
            fail_msg("'%s' is empty, the example's is not", path);
        for (int i = 0; i < n && i < m; i++)
            shape(cJSON_GetArrayItem(want, i), cJSON_GetArrayItem(got, i), path, skip);
    }
}

static cJSON *load_example(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s: the official specs must be in ../shared/azure-specs relative "
                 "to the repository root (run the tests from the root)",
                 path);
    d8_buf_t b;
    d8_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        d8_buf_append(&b, chunk, n);
    fclose(fp);
    cJSON *j = cJSON_Parse(b.data);
    d8_buf_release(&b);
    assert_non_null(j);
    return j;
}

static const cJSON *param(const cJSON *ex, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(ex, "parameters"), name);
}

static const cJSON *resp_body(const cJSON *ex, const char *status)
{
    return cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(ex, "responses"), status), "body");
}

static int has_response(const cJSON *ex, int status)
{
    char s[8];
    snprintf(s, sizeof(s), "%d", status);
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(ex, "responses"), s) != NULL;
}

/* Percent-encodes the braces of "{subscription-id}" for a URL path. */
static void url_seg(d8_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '{' || *s == '}' || *s == ' ')
            d8_buf_printf(b, "%%%02X", (unsigned char)*s);
        else
            d8_buf_putc(b, *s);
    }
}

/* "/subscriptions/S/resourceGroups/R/providers/Microsoft.ContainerInstance/
 * containerGroups[/N][/tail]?api-version=V" from an example's parameters. */
static char *aci_url(const cJSON *ex, int with_name, const char *tail)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "/subscriptions/");
    url_seg(&b, param(ex, "subscriptionId")->valuestring);
    if (param(ex, "resourceGroupName")) {
        d8_buf_puts(&b, "/resourceGroups/");
        url_seg(&b, param(ex, "resourceGroupName")->valuestring);
    }
    d8_buf_puts(&b, "/providers/Microsoft.ContainerInstance/containerGroups");
    if (with_name) {
        d8_buf_putc(&b, '/');
        url_seg(&b, param(ex, "containerGroupName")->valuestring);
    }
    if (tail)
        d8_buf_puts(&b, tail);
    d8_buf_printf(&b, "?api-version=%s", param(ex, "api-version")->valuestring);
    return d8_buf_detach(&b, NULL);
}

static char *fs_url(const cJSON *ex, const char *share, const char *extra_query)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "/subscriptions/");
    url_seg(&b, param(ex, "subscriptionId")->valuestring);
    d8_buf_puts(&b, "/resourceGroups/");
    url_seg(&b, param(ex, "resourceGroupName")->valuestring);
    d8_buf_puts(&b, "/providers/Microsoft.Storage/storageAccounts/");
    url_seg(&b, param(ex, "accountName")->valuestring);
    d8_buf_puts(&b, "/fileServices/default/shares");
    if (share) {
        d8_buf_putc(&b, '/');
        url_seg(&b, share);
    }
    d8_buf_printf(&b, "?api-version=%s", param(ex, "api-version")->valuestring);
    if (extra_query)
        d8_buf_puts(&b, extra_query);
    return d8_buf_detach(&b, NULL);
}

/* Creates the shares an example group mounts (strict mounts need them). */
static void create_mounted_shares(fx_t *f, const cJSON *ex, const cJSON *group)
{
    const cJSON *vols = cJSON_GetObjectItem(cJSON_GetObjectItem(group, "properties"), "volumes");
    for (const cJSON *v = vols ? vols->child : NULL; v; v = v->next) {
        const cJSON *af = cJSON_GetObjectItem(v, "azureFile");
        if (!af)
            continue;
        const char *acct = cJSON_GetObjectItem(af, "storageAccountName")->valuestring;
        const char *share = cJSON_GetObjectItem(af, "shareName")->valuestring;
        /* Some examples use placeholders ("accountName") that are no valid
         * storage names; such a group simply fails its mount later. */
        if (strpbrk(acct, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") ||
            strpbrk(share, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
            continue;
        d8_buf_t b;
        d8_buf_init(&b);
        d8_buf_puts(&b, "/subscriptions/");
        url_seg(&b, param(ex, "subscriptionId")->valuestring);
        d8_buf_puts(&b, "/resourceGroups/");
        url_seg(&b, param(ex, "resourceGroupName")->valuestring);
        d8_buf_printf(&b,
                      "/providers/Microsoft.Storage/storageAccounts/%s/fileServices/default/"
                      "shares/%s?api-version=2025-01-01",
                      acct, share);
        if (req(f, "PUT", b.data, "{}") != 201)
            fail_msg("share PUT answered %d: %s", f->r.status, f->r.body.data);
        d8_buf_release(&b);
    }
}

/* PUTs the example's response body as a group (ARM ignores read-only
 * fields on input), after creating the shares it mounts. */
static void create_from_response(fx_t *f, const cJSON *ex, const cJSON *group)
{
    create_mounted_shares(f, ex, group);
    char *url = aci_url(ex, 1, NULL);
    char *body = cJSON_PrintUnformatted(group);
    int st = req(f, "PUT", url, body);
    if (st != 201)
        fail_msg("PUT from the example answered %d: %s", st, f->r.body.data);
    free(body);
    free(url);
}

static void no_secrets(const fx_t *f)
{
    const char *b = f->r.body.data;
    assert_null(strstr(b, "storageAccountKey"));
    assert_null(strstr(b, "secureValue"));
    assert_null(strstr(b, "workspaceKey"));
    assert_null(strstr(b, "SecretValue1InBase64"));
}

static void test_example_cg_create_or_update(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *ex = load_example(ACI_EX "ContainerGroupsCreateOrUpdate.json");
    char *url = aci_url(ex, 1, NULL);
    char *body = cJSON_PrintUnformatted(param(ex, "containerGroup"));
    /* zones is a parameter of the example, not part of the body it sends. */
    static const char *const skip[] = {"zones", NULL};
    assert_int_equal(req(f, "PUT", url, body), 201);
    assert_true(has_response(ex, 201));
    shape(resp_body(ex, "201"), f->j, "", skip);
    assert_non_null(header(f, "Azure-AsyncOperation"));
    no_secrets(f);
    assert_string_equal(jstr(f->j, "properties.ipAddress.fqdn"),
                        "dnsnamelabel1.westus.azurecontainer.io");
    assert_int_equal(req(f, "PUT", url, body), 200);
    assert_true(has_response(ex, 200));
    shape(resp_body(ex, "200"), f->j, "", skip);
    no_secrets(f);
    /* The control API alone shows the secrets. */
    assert_int_equal(req(f, "GET", "/_azsim/resources", NULL), 200);
    assert_non_null(strstr(f->r.body.data, "\"storageAccountKey\":\"accountKey\""));
    assert_non_null(strstr(f->r.body.data, "SecretValue1InBase64"));
    free(body);
    free(url);
    cJSON_Delete(ex);
    fx_free(f);
}

static void check_get_example(const char *file, int fail_provisioning)
{
    fx_t *f = fx_timed();
    cJSON *ex = load_example(file);
    const cJSON *want = resp_body(ex, "200");
    if (fail_provisioning)
        assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"failProvisioningRate\":1}"), 200);
    create_from_response(f, ex, want);
    advance(2500);
    char *url = aci_url(ex, 1, NULL);
    assert_int_equal(req(f, "GET", url, NULL), 200);
    shape(want, f->j, "", NULL);
    no_secrets(f);
    assert_string_equal(jstr(f->j, "properties.provisioningState"),
                        jstr(want, "properties.provisioningState"));
    if (fail_provisioning) {
        const cJSON *ev = cJSON_GetArrayItem(
            cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(f->j, "properties"), "instanceView"),
                "events"),
            0);
        assert_string_equal(jstr(ev, "name"), "FailedMount");
    } else {
        assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Running");
    }
    free(url);
    cJSON_Delete(ex);
    fx_free(f);
}

static void test_example_cg_get_succeeded(void **state)
{
    (void)state;
    check_get_example(ACI_EX "ContainerGroupsGet_Succeeded.json", 0);
}

static void test_example_cg_get_failed(void **state)
{
    (void)state;
    check_get_example(ACI_EX "ContainerGroupsGet_Failed.json", 1);
}

static void check_list_example(const char *file, int by_rg)
{
    fx_t *f = fx_timed();
    cJSON *ex = load_example(file);
    const cJSON *want = resp_body(ex, "200");
    const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(want, "value"), 0);
    /* The list example names no group; create one under resource group
     * "demo" (the id of the example's item) with the item's body. */
    cJSON *ex2 = cJSON_Duplicate(ex, 1);
    cJSON *params = cJSON_GetObjectItem(ex2, "parameters");
    if (!by_rg)
        cJSON_AddStringToObject(params, "resourceGroupName", "demo");
    cJSON_AddStringToObject(params, "containerGroupName", "demo1");
    create_from_response(f, ex2, item);
    advance(2500);
    char *url = aci_url(ex, 0, NULL);
    assert_int_equal(req(f, "GET", url, NULL), 200);
    shape(want, f->j, "", NULL);
    no_secrets(f);
    /* Like ARM, list items carry no instanceView. */
    assert_null(strstr(f->r.body.data, "instanceView"));
    free(url);
    cJSON_Delete(ex2);
    cJSON_Delete(ex);
    fx_free(f);
}

static void test_example_cg_list(void **state)
{
    (void)state;
    check_list_example(ACI_EX "ContainerGroupsList.json", 0);
}

static void test_example_cg_list_by_rg(void **state)
{
    (void)state;
    check_list_example(ACI_EX "ContainerGroupsListByResourceGroup.json", 1);
}

/* Headers an example documents for a status must be in our answer. */
static void example_headers(const fx_t *f, const cJSON *ex, const char *status)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(ex, "responses"), status), "headers");
    for (const cJSON *it = h ? h->child : NULL; it; it = it->next)
        if (!header(f, it->string))
            fail_msg("answer %s lacks the example's header %s", status, it->string);
}

/* Creates a running group from a small body under the example's names. */
static void create_running(fx_t *f, const cJSON *ex)
{
    char *url = aci_url(ex, 1, NULL);
    assert_int_equal(req(f, "PUT", url, GROUP_BODY("")), 201);
    advance(2500);
    free(url);
}

static void test_example_cg_delete(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *ex = load_example(ACI_EX "ContainerGroupsDelete.json");
    create_running(f, ex);
    char *url = aci_url(ex, 1, NULL);
    assert_int_equal(req(f, "DELETE", url, NULL), 202);
    assert_true(has_response(ex, 202));
    example_headers(f, ex, "202");
    assert_non_null(header(f, "Location"));
    assert_non_null(header(f, "Retry-After"));
    advance(1500);
    assert_int_equal(req(f, "DELETE", url, NULL), 204);
    assert_true(has_response(ex, 204));
    free(url);
    cJSON_Delete(ex);
    fx_free(f);
}

static void test_example_cg_start_stop_restart(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *stop = load_example(ACI_EX "ContainerGroupsStop.json");
    cJSON *start = load_example(ACI_EX "ContainerGroupsStart.json");
    cJSON *restart = load_example(ACI_EX "ContainerGroupsRestart.json");
    create_running(f, stop);
    char *u_stop = aci_url(stop, 1, "/stop");
    char *u_start = aci_url(start, 1, "/start");
    char *u_restart = aci_url(restart, 1, "/restart");
    assert_int_equal(req(f, "POST", u_stop, NULL), 204);
    assert_true(has_response(stop, 204));
    assert_int_equal(req(f, "POST", u_start, NULL), 202);
    assert_true(has_response(start, 202));
    example_headers(f, start, "202");
    advance(2500);
    assert_int_equal(req(f, "POST", u_start, NULL), 204); /* already running */
    assert_true(has_response(start, 204));
    assert_int_equal(req(f, "POST", u_restart, NULL), 204);
    assert_true(has_response(restart, 204));
    free(u_stop);
    free(u_start);
    free(u_restart);
    cJSON_Delete(stop);
    cJSON_Delete(start);
    cJSON_Delete(restart);
    fx_free(f);
}

static void test_example_cg_update(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *ex = load_example(ACI_EX "ContainerGroupsUpdate.json");
    const cJSON *want = resp_body(ex, "200");
    create_from_response(f, ex, want);
    char *url = aci_url(ex, 1, NULL);
    char *body = cJSON_PrintUnformatted(param(ex, "Resource"));
    assert_int_equal(req(f, "PATCH", url, body), 200);
    shape(want, f->j, "", NULL);
    assert_string_equal(jstr(f->j, "tags.tag1key"), "tag1Value");
    free(body);
    free(url);
    cJSON_Delete(ex);
    fx_free(f);
}

static void test_example_fs_put_get(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *put = load_example(FS_EX "FileSharesPut.json");
    char *url = fs_url(put, param(put, "shareName")->valuestring, NULL);
    char *body = cJSON_PrintUnformatted(param(put, "fileShare"));
    assert_int_equal(req(f, "PUT", url, body), 201);
    shape(resp_body(put, "201"), f->j, "", NULL);
    assert_int_equal(req(f, "PUT", url, body), 200);
    shape(resp_body(put, "200"), f->j, "", NULL);
    free(url);
    free(body);
    cJSON *get = load_example(FS_EX "FileSharesGet.json");
    url = fs_url(get, param(get, "shareName")->valuestring, NULL);
    assert_int_equal(req(f, "PUT", url, "{\"properties\":{\"shareQuota\":1024}}"), 201);
    assert_int_equal(req(f, "GET", url, NULL), 200);
    shape(resp_body(get, "200"), f->j, "", NULL);
    assert_string_equal(jstr(f->j, "id"), jstr(resp_body(get, "200"), "id"));
    free(url);
    cJSON_Delete(put);
    cJSON_Delete(get);
    fx_free(f);
}

static void test_example_fs_list(void **state)
{
    (void)state;
    azsim_opts_t o;
    base_opts(&o);
    o.page_size = 2;
    fx_t *f = fx_new(&o);
    cJSON *ex = load_example(FS_EX "FileSharesList.json");
    const char *names[] = {"share1644", "share4052", "share5103"};
    for (int i = 0; i < 3; i++) {
        char *u = fs_url(ex, names[i], NULL);
        assert_int_equal(req(f, "PUT", u, "{\"properties\":{\"shareQuota\":1024}}"), 201);
        free(u);
    }
    char *url = fs_url(ex, NULL, NULL);
    assert_int_equal(req(f, "GET", url, NULL), 200);
    shape(resp_body(ex, "200"), f->j, "", NULL);
    assert_string_equal(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(f->j, "value"), 1), "name"),
                        "share4052");
    char *next = d8_xstrdup(jstr(f->j, "nextLink"));
    assert_int_equal(req(f, "GET", next, NULL), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "value")), 1);
    assert_null(cJSON_GetObjectItem(f->j, "nextLink"));
    free(next);
    free(url);
    cJSON_Delete(ex);
    fx_free(f);
}

static void test_example_fs_deleted_list(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *ex = load_example(FS_EX "DeletedFileSharesList.json");
    char *a = fs_url(ex, "share1644", NULL), *b = fs_url(ex, "share4052", NULL);
    assert_int_equal(req(f, "PUT", a, "{\"properties\":{\"shareQuota\":1024}}"), 201);
    assert_int_equal(req(f, "PUT", b, "{\"properties\":{\"shareQuota\":1024}}"), 201);
    assert_int_equal(req(f, "DELETE", a, NULL), 200);
    char *url = fs_url(ex, NULL, "&$expand=deleted");
    assert_int_equal(req(f, "GET", url, NULL), 200);
    shape(resp_body(ex, "200"), f->j, "", NULL);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(f->j, "value"), 0);
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(first, "properties"), "deleted")));
    free(url);
    free(a);
    free(b);
    cJSON_Delete(ex);
    fx_free(f);
}

static void test_example_fs_delete_patch(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *del = load_example(FS_EX "FileSharesDelete.json");
    char *url = fs_url(del, param(del, "shareName")->valuestring, NULL);
    assert_int_equal(req(f, "PUT", url, "{}"), 201);
    assert_int_equal(req(f, "DELETE", url, NULL), 200);
    assert_true(has_response(del, 200));
    assert_int_equal(req(f, "DELETE", url, NULL), 204);
    assert_true(has_response(del, 204));
    free(url);
    cJSON *patch = load_example(FS_EX "FileSharesPatch.json");
    url = fs_url(patch, param(patch, "shareName")->valuestring, NULL);
    assert_int_equal(req(f, "PUT", url, "{}"), 201);
    char *body = cJSON_PrintUnformatted(param(patch, "fileShare"));
    assert_int_equal(req(f, "PATCH", url, body), 200);
    shape(resp_body(patch, "200"), f->j, "", NULL);
    assert_string_equal(jstr(f->j, "properties.metadata.type"), "image");
    free(body);
    free(url);
    cJSON_Delete(del);
    cJSON_Delete(patch);
    fx_free(f);
}

static void test_example_fs_restore(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    cJSON *ex = load_example(FS_EX "FileSharesRestore.json");
    const char *name = param(ex, "shareName")->valuestring;
    char *url = fs_url(ex, name, NULL);
    assert_int_equal(req(f, "PUT", url, "{}"), 201);
    assert_int_equal(req(f, "DELETE", url, NULL), 200);
    /* The version comes from the list of deleted shares, as a client
     * would take it; the rest of the body is the example's. */
    char *list = fs_url(ex, NULL, "&$expand=deleted");
    assert_int_equal(req(f, "GET", list, NULL), 200);
    const cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(f->j, "value"), 0);
    char *version = d8_xstrdup(jstr(item, "properties.version"));
    cJSON *body = cJSON_Duplicate(param(ex, "deletedShare"), 1);
    cJSON_ReplaceItemInObject(body, "deletedShareVersion", cJSON_CreateString(version));
    char *text = cJSON_PrintUnformatted(body);
    d8_buf_t restore;
    d8_buf_init(&restore);
    d8_buf_puts(&restore, url);
    char *qm = strchr(restore.data, '?');
    char tail[128];
    snprintf(tail, sizeof(tail), "/restore%s", qm);
    restore.len = (size_t)(qm - restore.data);
    restore.data[restore.len] = '\0';
    d8_buf_puts(&restore, tail);
    assert_int_equal(req(f, "POST", restore.data, text), 200);
    assert_true(has_response(ex, 200));
    assert_int_equal(req(f, "GET", url, NULL), 200);
    assert_int_equal(req(f, "POST", restore.data, text), 409);
    d8_buf_release(&restore);
    free(text);
    cJSON_Delete(body);
    free(version);
    free(list);
    free(url);
    cJSON_Delete(ex);
    fx_free(f);
}

/* Every example file of the two spec folders is exercised above; a new
 * example in the specs makes this fail until a test covers it. */
static void test_examples_all_covered(void **state)
{
    (void)state;
    static const char *const covered[] = {"ContainerGroupsCreateOrUpdate.json",
                                          "ContainerGroupsGet_Succeeded.json",
                                          "ContainerGroupsGet_Failed.json",
                                          "ContainerGroupsList.json",
                                          "ContainerGroupsListByResourceGroup.json",
                                          "ContainerGroupsDelete.json",
                                          "ContainerGroupsStart.json",
                                          "ContainerGroupsStop.json",
                                          "ContainerGroupsRestart.json",
                                          "ContainerGroupsUpdate.json",
                                          "FileSharesPut.json",
                                          "FileSharesGet.json",
                                          "FileSharesList.json",
                                          "DeletedFileSharesList.json",
                                          "FileSharesDelete.json",
                                          "FileSharesPatch.json",
                                          "FileSharesRestore.json",
                                          NULL};
    const char *dirs[] = {ACI_EX, FS_EX};
    int seen = 0;
    for (int d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir)
            fail_msg("cannot open %s: the official specs must be in ../shared/azure-specs "
                     "relative to the repository root",
                     dirs[d]);
        struct dirent *e;
        while ((e = readdir(dir))) {
            if (e->d_name[0] == '.')
                continue;
            int found = 0;
            for (const char *const *c = covered; *c; c++)
                found |= strcmp(*c, e->d_name) == 0;
            if (!found)
                fail_msg("example %s%s has no test", dirs[d], e->d_name);
            seen++;
        }
        closedir(dir);
    }
    assert_int_equal(seen, 17);
}

/* ---- behaviour ---------------------------------------------------------- */

static void test_api_version(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    assert_int_equal(req(f, "GET", CG_PATH "/g1", NULL), 400);
    assert_string_equal(err_code(f), "MissingApiVersionParameter");
    assert_int_equal(req(f, "GET", CG_PATH "/g1?api-version=2021-01-01", NULL), 400);
    assert_string_equal(err_code(f), "InvalidApiVersionParameter");
    const char *aci[] = {"2026-05-01", "2025-09-01", "2023-05-01"};
    for (int i = 0; i < 3; i++) {
        char u[512];
        snprintf(u, sizeof(u), CG_PATH "/g1?api-version=%s", aci[i]);
        assert_int_equal(req(f, "GET", u, NULL), 404);
        assert_string_equal(err_code(f), "ResourceNotFound");
    }
    assert_int_equal(req(f, "GET", FS_PATH "/s1?api-version=2023-05-01", NULL), 404);
    assert_string_equal(err_code(f), "ShareNotFound");
    assert_int_equal(req(f, "GET", FS_PATH "/s1?api-version=2026-05-01", NULL), 400);
    assert_string_equal(err_code(f), "InvalidApiVersionParameter");
    /* Every ARM answer carries the request id and the remaining budget. */
    assert_non_null(header(f, "x-ms-request-id"));
    assert_non_null(header(f, "x-ms-ratelimit-remaining-subscription-reads"));
    assert_non_null(header(f, "x-ms-ratelimit-remaining-subscription-writes"));
    assert_non_null(header(f, "x-ms-ratelimit-remaining-subscription-deletes"));
    fx_free(f);
}

static void test_auth(void **state)
{
    (void)state;
    azsim_opts_t o;
    base_opts(&o);
    o.token_ttl_s = 10;
    fx_t *f = fx_new(&o);
    char good[2048];
    snprintf(good, sizeof(good), "%s", f->token);
    f->token[0] = '\0';
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 401);
    assert_string_equal(err_code(f), "AuthenticationFailed");
    assert_non_null(header(f, "WWW-Authenticate"));
    snprintf(f->token, sizeof(f->token), "not-a-jwt");
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 401);
    assert_string_equal(err_code(f), "InvalidAuthenticationToken");
    /* A token with a changed signature. */
    snprintf(f->token, sizeof(f->token), "%s", good);
    char *last = f->token + strlen(f->token) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 401);
    assert_string_equal(err_code(f), "InvalidAuthenticationToken");
    snprintf(f->token, sizeof(f->token), "%s", good);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    advance(11000);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 401);
    assert_string_equal(err_code(f), "ExpiredAuthenticationToken");
    get_token(f);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    fx_free(f);
}

static const char *aad_error(const fx_t *f)
{
    const char *e = jstr(f->j, "error");
    return e ? e : "";
}

static void test_token_endpoint(void **state)
{
    (void)state;
    azsim_opts_t o;
    base_opts(&o);
    char t1[] = "t1", app1[] = "app1", secret[] = "s3cret", wi[] = "wi-app";
    azsim_client_t clients[2] = {
        {.tenant_id = t1, .client_id = app1, .client_secret = secret},
        {.client_id = wi, .federated = 1},
    };
    o.clients = clients;
    o.nclients = 2;
    o.token_ttl_s = 600;
    /* No fixture token: app1 is bound to tenant t1. */
    fx_t *f = d8_xcalloc(1, sizeof(*f));
    f->sim = azsim_new(&o);
    azsim_resp_init(&f->r);
    const char *base = "/t1/oauth2/v2.0/token";
    assert_int_equal(req(f, "POST", base,
                         "grant_type=client_credentials&client_id=app1&client_secret=s3cret&"
                         "scope=https://management.azure.com/.default"),
                     200);
    assert_string_equal(jstr(f->j, "token_type"), "Bearer");
    assert_int_equal(cJSON_GetObjectItem(f->j, "expires_in")->valueint, 600);
    assert_int_equal(req(f, "POST", base,
                         "grant_type=client_credentials&client_id=app1&client_secret=wrong&"
                         "scope=https://management.azure.com/.default"),
                     401);
    assert_string_equal(aad_error(f), "invalid_client");
    assert_int_equal(req(f, "POST", "/other/oauth2/v2.0/token",
                         "grant_type=client_credentials&client_id=app1&client_secret=s3cret&"
                         "scope=https://management.azure.com/.default"),
                     400);
    assert_string_equal(aad_error(f), "unauthorized_client");
    assert_int_equal(req(f, "POST", base,
                         "grant_type=password&client_id=app1&client_secret=s3cret&"
                         "scope=https://management.azure.com/.default"),
                     400);
    assert_string_equal(aad_error(f), "unsupported_grant_type");
    assert_int_equal(
        req(f, "POST", base, "grant_type=client_credentials&client_id=app1&client_secret=s3cret"),
        400);
    assert_string_equal(aad_error(f), "invalid_request");
    assert_int_equal(req(f, "POST", base,
                         "grant_type=client_credentials&client_id=app1&client_secret=s3cret&"
                         "scope=https://management.azure.com/user_impersonation"),
                     400);
    assert_string_equal(aad_error(f), "invalid_scope");
    assert_int_equal(req(f, "POST", base,
                         "grant_type=client_credentials&client_id=app1&"
                         "scope=https://management.azure.com/.default"),
                     401);
    /* Workload identity: a client assertion (a JWT) instead of a secret. */
    char assertion[512], form[1024];
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "eyJhbGciOiJSUzI1NiJ9.");
    char payload[128];
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"system:serviceaccount:dev8:agent\",\"exp\":%lld}",
             (long long)(d8_wall_ms() / 1000 + 3600));
    d8_buf_t enc;
    d8_buf_init(&enc);
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *in = (const unsigned char *)payload;
    size_t n = strlen(payload);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        d8_buf_putc(&enc, a[(v >> 18) & 63]);
        d8_buf_putc(&enc, a[(v >> 12) & 63]);
        if (i + 1 < n)
            d8_buf_putc(&enc, a[(v >> 6) & 63]);
        if (i + 2 < n)
            d8_buf_putc(&enc, a[v & 63]);
    }
    d8_buf_puts(&b, enc.data);
    d8_buf_puts(&b, ".c2lnbmF0dXJl");
    snprintf(assertion, sizeof(assertion), "%s", b.data);
    d8_buf_release(&b);
    d8_buf_release(&enc);
    snprintf(form, sizeof(form),
             "grant_type=client_credentials&client_id=wi-app&scope=https%%3A%%2F%%2Fmanagement."
             "azure.com%%2F.default&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-"
             "assertion-type%%3Ajwt-bearer&client_assertion=%s",
             assertion);
    assert_int_equal(req(f, "POST", "/any-tenant/oauth2/v2.0/token", form), 200);
    assert_non_null(jstr(f->j, "access_token"));
    assert_string_equal(f->r.operation, "token.clientAssertion");
    /* app1 is not federated. */
    snprintf(form, sizeof(form),
             "grant_type=client_credentials&client_id=app1&scope=x%%2F.default&"
             "client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3A"
             "jwt-bearer&client_assertion=%s",
             assertion);
    assert_int_equal(req(f, "POST", base, form), 400);
    assert_string_equal(aad_error(f), "invalid_client");
    snprintf(form, sizeof(form),
             "grant_type=client_credentials&client_id=wi-app&scope=x%%2F.default&"
             "client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3A"
             "jwt-bearer&client_assertion=garbage");
    assert_int_equal(req(f, "POST", base, form), 400);
    fx_free(f);
}

static void test_imds(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    const char *u = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                    "https%3A%2F%2Fmanagement.azure.com%2F";
    f->token[0] = '\0';
    assert_int_equal(req(f, "GET", u, NULL), 400);
    assert_string_equal(aad_error(f), "invalid_request");
    assert_int_equal(req_h(f, "GET", u, NULL, "metadata", "true"), 200);
    /* IMDS answers numbers as strings. */
    assert_true(cJSON_IsString(cJSON_GetObjectItem(f->j, "expires_in")));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(f->j, "expires_on")));
    assert_string_equal(jstr(f->j, "resource"), "https://management.azure.com/");
    assert_string_equal(f->r.operation, "token.imds");
    snprintf(f->token, sizeof(f->token), "%s", jstr(f->j, "access_token"));
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_int_equal(req_h(f, "GET", "/metadata/identity/oauth2/token?api-version=2018-02-01", NULL,
                           "metadata", "true"),
                     400);
    fx_free(f);
}

static void test_validation(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, "{not json"), 400);
    assert_string_equal(err_code(f), "InvalidRequestContent");
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, "{\"properties\":{}}"), 400);
    assert_string_equal(err_code(f), "LocationRequired");
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V,
                         "{\"location\":\"eastus\",\"properties\":{\"osType\":\"Linux\","
                         "\"containers\":[{\"name\":\"c\",\"properties\":{\"resources\":{"
                         "\"requests\":{\"cpu\":1,\"memoryInGB\":1}}}}]}}"),
                     400);
    assert_non_null(strstr(f->r.body.data, "'image'"));
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V,
                         "{\"location\":\"eastus\",\"properties\":{\"osType\":\"Linux\","
                         "\"containers\":[{\"name\":\"c\",\"properties\":{\"image\":\"x\","
                         "\"resources\":{\"requests\":{\"cpu\":1}}}}]}}"),
                     400);
    assert_non_null(strstr(f->r.body.data, "'memoryInGB'"));
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V,
                         "{\"location\":\"eastus\",\"properties\":{\"containers\":[{\"name\":"
                         "\"c\",\"properties\":{\"image\":\"x\",\"resources\":{\"requests\":{"
                         "\"cpu\":1,\"memoryInGB\":1}}}}]}}"),
                     400);
    assert_non_null(strstr(f->r.body.data, "'osType'"));
    assert_int_equal(req(f, "PUT", CG_PATH "/Bad_Name" ACI_V, GROUP_BODY("")), 400);
    assert_int_equal(azsim_count_groups(f->sim), 0);
    fx_free(f);
}

static void test_group_lifecycle(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, GROUP_BODY("")), 201);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Creating");
    char *op = d8_xstrdup(header(f, "Azure-AsyncOperation"));
    char *loc = d8_xstrdup(header(f, "Location"));
    assert_non_null(strstr(op, "http://azsim.test/subscriptions/"));
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "InProgress");
    assert_int_equal(req(f, "GET", loc, NULL), 202);
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Pending");
    assert_string_equal(jstr(f->j, "properties.ipAddress.ip"), "20.0.0.1");
    advance(2000);
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Succeeded");
    assert_int_equal(req(f, "GET", loc, NULL), 200);
    assert_int_equal(req(f, "GET", CG_PATH "/G1" ACI_V, NULL), 200); /* names fold case */
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Succeeded");
    assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Running");
    assert_string_equal(jstr(f->j, "properties.ipAddress.ip"), "20.0.0.1");
    assert_string_equal(jstr(f->j, "properties.ipAddress.fqdn"),
                        "dev8-e1-abc123.eastus.azurecontainer.io");
    assert_string_equal(jstr(f->j, "location"), "eastus");
    assert_null(strstr(f->r.body.data, "ghp_SECRET"));
    assert_null(strstr(f->r.body.data, "secureValue"));
    /* The same spec again: 200, nothing re-provisions. */
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, GROUP_BODY("")), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Succeeded");
    assert_non_null(header(f, "Azure-AsyncOperation"));
    /* A changed spec re-provisions. */
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, GROUP_BODY(",\"sku\":\"Confidential\"")),
                     200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Updating");
    advance(2000);
    /* stop: 204, Stopped, IP released; start: 202, Pending, then a new IP. */
    assert_int_equal(req(f, "POST", CG_PATH "/g1/stop" ACI_V, NULL), 204);
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Stopped");
    const cJSON *c0 = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(f->j, "properties"), "containers"), 0);
    assert_string_equal(jstr(c0, "properties.instanceView.currentState.state"), "Terminated");
    assert_null(jstr(f->j, "properties.ipAddress.ip"));
    assert_int_equal(req(f, "POST", CG_PATH "/g1/start" ACI_V, NULL), 202);
    assert_non_null(header(f, "Azure-AsyncOperation"));
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Pending");
    advance(2000);
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Running");
    assert_string_equal(jstr(f->j, "properties.ipAddress.ip"), "20.0.0.2");
    assert_int_equal(req(f, "POST", CG_PATH "/g1/restart" ACI_V, NULL), 204);
    c0 = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(f->j, "properties"), "containers"), 0);
    (void)c0;
    assert_int_equal(req(f, "PATCH", CG_PATH "/g1" ACI_V, "{\"tags\":{\"k\":\"v\"}}"), 200);
    assert_string_equal(jstr(f->j, "tags.k"), "v");
    /* DELETE: 202, Deleting, gone after delete_ms, then 204 and 404. */
    assert_int_equal(req(f, "DELETE", CG_PATH "/g1" ACI_V, NULL), 202);
    free(op);
    op = d8_xstrdup(header(f, "Azure-AsyncOperation"));
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Deleting");
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, GROUP_BODY("")), 409);
    assert_int_equal(req(f, "DELETE", CG_PATH "/g1" ACI_V, NULL), 202);
    advance(1000);
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Succeeded");
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 404);
    assert_int_equal(req(f, "DELETE", CG_PATH "/g1" ACI_V, NULL), 204);
    assert_int_equal(req(f, "POST", CG_PATH "/g1/start" ACI_V, NULL), 404);
    assert_int_equal(req(f, "GET", "/_azsim/stats", NULL), 200);
    const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(f->j, "deleted"), 0);
    assert_string_equal(jstr(d0, "kind"), "containerGroup");
    assert_string_equal(jstr(d0, "id"), "/subscriptions/" SUB "/resourceGroups/rg1/providers/"
                                        "Microsoft.ContainerInstance/containerGroups/g1");
    assert_non_null(jstr(d0, "at"));
    const cJSON *st = cJSON_GetObjectItem(cJSON_GetObjectItem(f->j, "requests"),
                                          "containerGroups.createOrUpdate");
    assert_int_equal(cJSON_GetObjectItem(st, "201")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(st, "409")->valueint, 1);
    free(op);
    free(loc);
    fx_free(f);
}

static void test_failed_provisioning_and_mounts(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"failProvisioningRate\":1}"), 200);
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, GROUP_BODY("")), 201);
    char *op = d8_xstrdup(header(f, "Azure-AsyncOperation"));
    advance(2000);
    assert_int_equal(req(f, "GET", op, NULL), 200);
    assert_string_equal(jstr(f->j, "status"), "Failed");
    assert_string_equal(jstr(f->j, "error.code"), "FailedMount");
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Failed");
    free(op);
    /* A PUT of the same spec retries a failed group. */
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"failProvisioningRate\":0}"), 200);
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, GROUP_BODY("")), 200);
    advance(2000);
    assert_int_equal(req(f, "GET", CG_PATH "/g1" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Succeeded");

    /* Strict mounts: the share must exist and the key must be the account's. */
#define MOUNT(key)                                                                                 \
    GROUP_BODY(",\"volumes\":[{\"name\":\"ws\",\"azureFile\":{\"shareName\":\"dev8-e2\","          \
               "\"storageAccountName\":\"dev8eastus\",\"storageAccountKey\":\"" key "\"}}]")
    assert_int_equal(req(f, "PUT", CG_PATH "/g2" ACI_V, MOUNT("k")), 201);
    advance(2000);
    assert_int_equal(req(f, "GET", CG_PATH "/g2" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Failed");
    assert_non_null(strstr(f->r.body.data, "No such file or directory"));
    assert_int_equal(req(f, "PUT", FS_PATH "/dev8-e2" FS_V, "{}"), 201);
    assert_int_equal(req(f, "PUT", CG_PATH "/g2" ACI_V, MOUNT("wrong")), 200);
    advance(2000);
    assert_int_equal(req(f, "GET", CG_PATH "/g2" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Failed");
    assert_non_null(strstr(f->r.body.data, "Permission denied"));
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 200);
    const cJSON *k1 = cJSON_GetArrayItem(cJSON_GetObjectItem(f->j, "keys"), 0);
    assert_string_equal(jstr(k1, "keyName"), "key1");
    assert_int_equal(strlen(jstr(k1, "value")), 88);
    char body[4096];
    snprintf(body, sizeof(body),
             GROUP_BODY(",\"volumes\":[{\"name\":\"ws\",\"azureFile\":{\"shareName\":\"dev8-e2\","
                        "\"storageAccountName\":\"dev8eastus\",\"storageAccountKey\":\"%s\"}}]"),
             jstr(k1, "value"));
    assert_int_equal(req(f, "PUT", CG_PATH "/g2" ACI_V, body), 200);
    assert_null(strstr(f->r.body.data, "storageAccountKey"));
    advance(2000);
    assert_int_equal(req(f, "GET", CG_PATH "/g2" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Succeeded");
    assert_null(strstr(f->r.body.data, "storageAccountKey"));
#undef MOUNT
    fx_free(f);
}

static void test_list_paging(void **state)
{
    (void)state;
    azsim_opts_t o;
    base_opts(&o);
    o.page_size = 2;
    fx_t *f = fx_new(&o);
    for (int i = 0; i < 5; i++) {
        char u[512];
        snprintf(u, sizeof(u), CG_PATH "/g%d" ACI_V, i);
        assert_int_equal(req(f, "PUT", u, GROUP_BODY("")), 201);
    }
    assert_int_equal(req(f, "PUT",
                         "/subscriptions/" SUB "/resourceGroups/rg2/providers/"
                         "Microsoft.ContainerInstance/containerGroups/other" ACI_V,
                         GROUP_BODY("")),
                     201);
    int pages = 0, items = 0;
    char *next = d8_xstrdup(CG_PATH ACI_V);
    while (next) {
        assert_int_equal(req(f, "GET", next, NULL), 200);
        free(next);
        next = NULL;
        pages++;
        items += cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "value"));
        assert_null(strstr(f->r.body.data, "instanceView"));
        assert_null(strstr(f->r.body.data, "ghp_SECRET"));
        const char *n = jstr(f->j, "nextLink");
        if (n) {
            assert_true(strncmp(n, "http://azsim.test/", 18) == 0);
            assert_non_null(strstr(n, "api-version=2025-09-01"));
            next = d8_xstrdup(n);
        }
    }
    assert_int_equal(pages, 3);
    assert_int_equal(items, 5);
    /* By subscription: all six, across resource groups. */
    items = 0;
    next = d8_xstrdup("/subscriptions/" SUB "/providers/Microsoft.ContainerInstance/"
                      "containerGroups" ACI_V);
    while (next) {
        assert_int_equal(req(f, "GET", next, NULL), 200);
        free(next);
        next = jstr(f->j, "nextLink") ? d8_xstrdup(jstr(f->j, "nextLink")) : NULL;
        items += cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "value"));
    }
    assert_int_equal(items, 6);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V "&$skipToken=abc", NULL), 400);
    fx_free(f);
}

static void test_file_shares(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    const char *body = "{\"properties\":{\"shareQuota\":20,\"metadata\":{\"dev8managedby\":"
                       "\"dev8agent\",\"dev8envid\":\"e1\"}}}";
    assert_int_equal(req(f, "PUT", FS_PATH "/dev8-e1" FS_V, body), 201);
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(f->j, "properties"), "shareQuota")->valueint, 20);
    assert_int_equal(req(f, "PUT", FS_PATH "/dev8-e1" FS_V, body), 200);
    assert_int_equal(req(f, "GET", FS_PATH "/DEV8-E1" FS_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.metadata.dev8envid"), "e1");
    /* List: no metadata unless $expand asks for it. */
    assert_int_equal(req(f, "GET", FS_PATH FS_V, NULL), 200);
    assert_null(strstr(f->r.body.data, "metadata"));
    assert_int_equal(req(f, "GET", FS_PATH FS_V "&$expand=snapshots,metadata", NULL), 200);
    assert_non_null(strstr(f->r.body.data, "\"dev8managedby\":\"dev8agent\""));
    /* PATCH changes only what it names. */
    assert_int_equal(
        req(f, "PATCH", FS_PATH "/dev8-e1" FS_V, "{\"properties\":{\"shareQuota\":40}}"), 200);
    assert_string_equal(jstr(f->j, "properties.metadata.dev8envid"), "e1");
    assert_int_equal(req(f, "PATCH", FS_PATH "/nope" FS_V, "{\"properties\":{}}"), 404);
    /* Bounds and names. */
    assert_int_equal(req(f, "PUT", FS_PATH "/s2" FS_V, "{\"properties\":{\"shareQuota\":0}}"), 400);
    assert_int_equal(req(f, "PUT", FS_PATH "/s2x" FS_V, "{\"properties\":{\"shareQuota\":102401}}"),
                     400);
    assert_int_equal(req(f, "PUT", FS_PATH "/s2x" FS_V, "{\"properties\":{\"shareQuota\":102400}}"),
                     201);
    assert_int_equal(
        req(f, "PUT", FS_PATH "/s3x" FS_V, "{\"properties\":{\"metadata\":{\"dev8-env\":\"x\"}}}"),
        400);
    assert_string_equal(err_code(f), "InvalidMetadata");
    assert_int_equal(req(f, "PUT", FS_PATH "/bad--name" FS_V, "{}"), 400);
    assert_int_equal(req(f, "PUT",
                         RG_PATH "/providers/Microsoft.Storage/storageAccounts/Bad/"
                                 "fileServices/default/shares/s4x" FS_V,
                         "{}"),
                     400);
    /* DELETE 200, then 204; the name is blocked for share_recreate_ms. */
    assert_int_equal(req(f, "DELETE", FS_PATH "/dev8-e1" FS_V, NULL), 200);
    assert_int_equal(req(f, "DELETE", FS_PATH "/dev8-e1" FS_V, NULL), 204);
    assert_int_equal(req(f, "GET", FS_PATH "/dev8-e1" FS_V, NULL), 404);
    assert_int_equal(req(f, "PUT", FS_PATH "/dev8-e1" FS_V, body), 409);
    assert_string_equal(err_code(f), "ShareBeingDeleted");
    advance(2000);
    assert_int_equal(req(f, "PUT", FS_PATH "/dev8-e1" FS_V, body), 201);
    assert_int_equal(req(f, "GET", "/_azsim/stats", NULL), 200);
    const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(f->j, "deleted"), 0);
    assert_string_equal(jstr(d0, "kind"), "fileShare");
    assert_int_equal(req(f, "GET", "/_azsim/resources", NULL), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "fileShares")), 2);
    assert_non_null(strstr(f->r.body.data, "\"dev8managedby\":\"dev8agent\""));
    fx_free(f);
}

static void test_restrictions(void **state)
{
    (void)state;
    azsim_opts_t o;
    base_opts(&o);
    char sub[] = SUB, rg[] = "rg1", acct[] = "dev8eastus";
    char *subs[] = {sub}, *rgs[] = {rg}, *accts[] = {acct};
    o.subscriptions = subs;
    o.nsubscriptions = 1;
    o.resource_groups = rgs;
    o.nresource_groups = 1;
    o.storage_accounts = accts;
    o.nstorage_accounts = 1;
    fx_t *f = fx_new(&o);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_int_equal(req(f, "GET",
                         "/subscriptions/11111111-1111-1111-1111-111111111111/"
                         "providers/Microsoft.ContainerInstance/containerGroups" ACI_V,
                         NULL),
                     404);
    assert_string_equal(err_code(f), "SubscriptionNotFound");
    assert_int_equal(req(f, "GET",
                         "/subscriptions/" SUB "/resourceGroups/RG2/providers/"
                         "Microsoft.ContainerInstance/containerGroups" ACI_V,
                         NULL),
                     404);
    assert_string_equal(err_code(f), "ResourceGroupNotFound");
    assert_int_equal(req(f, "GET",
                         RG_PATH "/providers/Microsoft.Storage/storageAccounts/"
                                 "other/fileServices/default/shares" FS_V,
                         NULL),
                     404);
    assert_int_equal(req(f, "GET", FS_PATH FS_V, NULL), 200);
    fx_free(f);
}

static void test_throttling(void **state)
{
    (void)state;
    azsim_opts_t o;
    base_opts(&o);
    o.throttle = 1;
    o.throttle_scale = 0.01; /* writes: burst 2, 0.1/s; ACI creates: burst 1 */
    fx_t *f = fx_new(&o);
    assert_int_equal(req(f, "PUT", FS_PATH "/s1x" FS_V, "{}"), 201);
    assert_string_equal(header(f, "x-ms-ratelimit-remaining-subscription-writes"), "1");
    assert_int_equal(req(f, "PUT", FS_PATH "/s2x" FS_V, "{}"), 201);
    assert_int_equal(req(f, "PUT", FS_PATH "/s3x" FS_V, "{}"), 429);
    assert_string_equal(err_code(f), "SubscriptionRequestsThrottled");
    assert_string_equal(header(f, "Retry-After"), "10");
    assert_string_equal(header(f, "x-ms-ratelimit-remaining-subscription-writes"), "0");
    advance(10000);
    assert_int_equal(req(f, "PUT", FS_PATH "/s3x" FS_V, "{}"), 201);
    /* ACI's regional create quota, in another subscription. */
    const char *p2 = "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg1/"
                     "providers/Microsoft.ContainerInstance/containerGroups/";
    char u[512];
    snprintf(u, sizeof(u), "%sa" ACI_V, p2);
    assert_int_equal(req(f, "PUT", u, GROUP_BODY("")), 201);
    snprintf(u, sizeof(u), "%sb" ACI_V, p2);
    assert_int_equal(req(f, "PUT", u, GROUP_BODY("")), 429);
    assert_string_equal(err_code(f), "TooManyRequests");
    assert_non_null(header(f, "Retry-After"));
    fx_free(f);
}

static void test_faults(void **state)
{
    (void)state;
    fx_t *f = fx_timed();
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"bogus\":1}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"rate500\":2}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"rate500\":1}"), 200);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 500);
    assert_string_equal(err_code(f), "InternalServerError");
    assert_int_equal(
        req(f, "POST", "/_azsim/faults", "{\"rate500\":0,\"rate503\":1,\"retryAfterSeconds\":7}"),
        200);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 503);
    assert_string_equal(header(f, "Retry-After"), "7");
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"rate503\":0,\"rate429\":1}"), 200);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 429);
    assert_string_equal(header(f, "Retry-After"), "7");
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"rate429\":0,\"resetRate\":1}"), 200);
    req(f, "GET", CG_PATH ACI_V, NULL);
    assert_true(f->r.reset);
    /* The control API is never faulted. */
    assert_int_equal(req(f, "GET", "/_azsim/stats", NULL), 200);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(f->j, "requests"),
                                                             "containerGroups.listByResourceGroup"),
                                         "0")
                         ->valueint,
                     1);
    /* Latency: latencyMs plus up to jitterMs, never for the control API. */
    assert_int_equal(
        req(f, "POST", "/_azsim/faults", "{\"resetRate\":0,\"latencyMs\":50,\"jitterMs\":10}"),
        200);
    http_request_t r;
    memset(&r, 0, sizeof(r));
    r.method = "GET";
    r.path = CG_PATH;
    r.query = "";
    for (int i = 0; i < 20; i++) {
        uint64_t d = azsim_fault_delay_ms(f->sim, &r);
        assert_true(d >= 50 && d <= 60);
    }
    r.path = "/_azsim/stats";
    assert_int_equal(azsim_fault_delay_ms(f->sim, &r), 0);
    /* reset clears resources, faults and statistics. */
    assert_int_equal(req(f, "PUT", FS_PATH "/s1x" FS_V, "{}"), 201);
    assert_int_equal(req(f, "POST", "/_azsim/reset", NULL), 204);
    assert_int_equal(azsim_count_shares(f->sim), 0);
    r.path = CG_PATH;
    assert_int_equal(azsim_fault_delay_ms(f->sim, &r), 0);
    assert_int_equal(req(f, "GET", "/_azsim/stats", NULL), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "requests")), 0);
    fx_free(f);
}

/* The fault sequence depends on the seed only. */
static void fault_pattern(uint64_t seed, char *out, size_t n)
{
    azsim_opts_t o;
    base_opts(&o);
    o.seed = seed;
    fx_t *f = fx_new(&o);
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"rate500\":0.5}"), 200);
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = req(f, "GET", CG_PATH ACI_V, NULL) == 500 ? 'x' : '.';
    out[n - 1] = '\0';
    fx_free(f);
}

static void test_fault_determinism(void **state)
{
    (void)state;
    char a[41], b[41], c[41];
    fault_pattern(7, a, sizeof(a));
    fault_pattern(7, b, sizeof(b));
    fault_pattern(8, c, sizeof(c));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_non_null(strchr(a, 'x'));
    assert_non_null(strchr(a, '.'));
}

static void test_config_yaml(void **state)
{
    (void)state;
    char path[] = "/tmp/azsim-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = "subscriptions: [\"" SUB "\"]\n"
                       "resourceGroups: [rg1, rg2]\n"
                       "storageAccounts: [dev8eastus]\n"
                       "clients:\n"
                       "  - {tenantId: t1, clientId: app1, clientSecret: s3cret}\n"
                       "  - clientId: wi\n"
                       "    federated: true\n"
                       "timing: {provisionMs: 100, deleteMs: 50, shareRecreateMs: 10}\n"
                       "pageSize: 7\n"
                       "tokenTtlSeconds: 60\n"
                       "seed: 42\n"
                       "throttle: {enabled: false, scale: 0.5}\n"
                       "strictMounts: false\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    azsim_opts_t o;
    azsim_opts_init(&o);
    char err[256] = "";
    assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), 0);
    assert_int_equal(o.nsubscriptions, 1);
    assert_int_equal(o.nresource_groups, 2);
    assert_string_equal(o.resource_groups[1], "rg2");
    assert_int_equal(o.nclients, 2);
    assert_string_equal(o.clients[0].client_secret, "s3cret");
    assert_true(o.clients[1].federated);
    assert_int_equal(o.provision_ms, 100);
    assert_int_equal(o.delete_ms, 50);
    assert_int_equal(o.share_recreate_ms, 10);
    assert_int_equal(o.page_size, 7);
    assert_int_equal(o.token_ttl_s, 60);
    assert_int_equal(o.seed, 42);
    assert_int_equal(o.throttle, 0);
    assert_int_equal(o.strict_mounts, 0);
    azsim_opts_release(&o);

    FILE *fp = fopen(path, "w");
    fputs("pageSize: 7\ntiming:\n  provisionMs: soon\n", fp);
    fclose(fp);
    azsim_opts_init(&o);
    assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), D8_EINVAL);
    assert_non_null(strstr(err, ":3:16: timing.provisionMs:"));
    assert_int_equal(o.page_size, 100); /* nothing applied */
    fp = fopen(path, "w");
    fputs("colour: blue\n", fp);
    fclose(fp);
    assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), D8_EINVAL);
    assert_non_null(strstr(err, ":1:9: colour: unknown key"));
    fp = fopen(path, "w");
    fputs("a: [1, 2\n", fp);
    fclose(fp);
    assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), D8_EPARSE);
    azsim_opts_release(&o);
    unlink(path);
}

/* Benchmarks create 10,000 environments: both maps must stay fast. */
static void test_scale_10k(void **state)
{
    (void)state;
    azsim_opts_t o;
    base_opts(&o);
    o.strict_mounts = 0;
    /* 10,000 groups in one region: far above ACI's default quotas. */
    o.aci.quota_groups = 0;
    o.aci.quota_cores = 0;
    fx_t *f = fx_new(&o);
    uint64_t t0 = d8_mono_ms();
    char u[512];
    for (int i = 0; i < 10000; i++) {
        snprintf(u, sizeof(u), FS_PATH "/dev8-env%05d" FS_V, i);
        assert_int_equal(req(f, "PUT", u,
                             "{\"properties\":{\"shareQuota\":20,\"metadata\":{"
                             "\"dev8managedby\":\"dev8agent\"}}}"),
                         201);
        snprintf(u, sizeof(u), CG_PATH "/dev8-env%05d" ACI_V, i);
        assert_int_equal(req(f, "PUT", u, GROUP_BODY("")), 201);
    }
    advance(2000);
    int items = 0;
    char *next = d8_xstrdup(CG_PATH ACI_V);
    while (next) {
        assert_int_equal(req(f, "GET", next, NULL), 200);
        free(next);
        next = jstr(f->j, "nextLink") ? d8_xstrdup(jstr(f->j, "nextLink")) : NULL;
        items += cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "value"));
    }
    assert_int_equal(items, 10000);
    items = 0;
    next = d8_xstrdup(FS_PATH FS_V);
    while (next) {
        assert_int_equal(req(f, "GET", next, NULL), 200);
        free(next);
        next = jstr(f->j, "nextLink") ? d8_xstrdup(jstr(f->j, "nextLink")) : NULL;
        items += cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "value"));
    }
    assert_int_equal(items, 10000);
    for (int i = 0; i < 10000; i += 97) {
        snprintf(u, sizeof(u), CG_PATH "/dev8-env%05d" ACI_V, i);
        assert_int_equal(req(f, "GET", u, NULL), 200);
        assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Running");
    }
    assert_int_equal(azsim_count_groups(f->sim), 10000);
    assert_int_equal(azsim_count_shares(f->sim), 10000);
    uint64_t ms = d8_mono_ms() - t0;
    print_message("10k groups + 10k shares created and listed in %llu ms\n",
                  (unsigned long long)ms);
    assert_true(ms < 15000);
    fx_free(f);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_cg_create_or_update),
        cmocka_unit_test(test_example_cg_get_succeeded),
        cmocka_unit_test(test_example_cg_get_failed),
        cmocka_unit_test(test_example_cg_list),
        cmocka_unit_test(test_example_cg_list_by_rg),
        cmocka_unit_test(test_example_cg_delete),
        cmocka_unit_test(test_example_cg_start_stop_restart),
        cmocka_unit_test(test_example_cg_update),
        cmocka_unit_test(test_example_fs_put_get),
        cmocka_unit_test(test_example_fs_list),
        cmocka_unit_test(test_example_fs_deleted_list),
        cmocka_unit_test(test_example_fs_delete_patch),
        cmocka_unit_test(test_example_fs_restore),
        cmocka_unit_test(test_examples_all_covered),
        cmocka_unit_test(test_api_version),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_token_endpoint),
        cmocka_unit_test(test_imds),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_group_lifecycle),
        cmocka_unit_test(test_failed_provisioning_and_mounts),
        cmocka_unit_test(test_list_paging),
        cmocka_unit_test(test_file_shares),
        cmocka_unit_test(test_restrictions),
        cmocka_unit_test(test_throttling),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_fault_determinism),
        cmocka_unit_test(test_config_yaml),
        cmocka_unit_test(test_scale_10k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
