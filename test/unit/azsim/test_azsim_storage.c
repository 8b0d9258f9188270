/*
 * Unit tests of the documented ARM and Storage behaviours of pkg/azsim
 * (the research notes' items 6-8), driving the model directly
 * (azsim_handle) with a fake clock: nextLinks as ARM spells them (opaque
 * $skipToken, the default port written out, pages of one, an empty first
 * page), the global ratelimit headers, StorageAccounts_GetProperties and
 * the share sizes an account takes, ASCII metadata values, share deletes
 * refused by snapshots and management locks, key regeneration, the 403
 * AuthorizationFailed fault, and the `storage`, `paging`, `faults` and
 * `throttle.globalHeaders` settings (YAML and the control API).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AZSIM_HARNESS_T0 7000000
#include "azsim_harness.h"

/* PUT of share name with body; returns the status. */
static int put_share(fx_t *f, const char *name, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), FS_PATH "/%s" FS_V, name);
    return req(f, "PUT", url, body);
}

static int share_op(fx_t *f, const char *method, const char *name, const char *query)
{
    char url[512];
    snprintf(url, sizeof(url), FS_PATH "/%s" FS_V "%s", name, query ? query : "");
    return req(f, method, url, method[0] == 'P' ? "{\"properties\":{}}" : NULL);
}

#define PLAIN_GROUP                                                                                \
    "{\"location\":\"eastus\",\"properties\":{\"osType\":\"Linux\",\"containers\":[{\"name\":"     \
    "\"w\",\"properties\":{\"image\":\"node:20\",\"resources\":{\"requests\":{\"cpu\":1,"          \
    "\"memoryInGB\":1}}}}]}}"
#define GROUP(key)                                                                                 \
    "{\"location\":\"eastus\",\"properties\":{\"osType\":\"Linux\",\"containers\":[{\"name\":"     \
    "\"w\",\"properties\":{\"image\":\"node:20\",\"resources\":{\"requests\":{\"cpu\":1,"          \
    "\"memoryInGB\":1}},\"volumeMounts\":[{\"name\":\"home\",\"mountPath\":\"/home/dev8\"}]}}],"   \
    "\"volumes\":[{\"name\":\"home\",\"azureFile\":{\"shareName\":\"sh1\",\"storageAccountName\":" \
    "\"dev8eastus\",\"storageAccountKey\":\"" key "\"}}]}}"

/* ---- paging ---------------------------------------------------------------- */

/* Follows nextLinks from url; returns the pages, adds the items to *items
 * and checks every nextLink starts with prefix and spells ARM's query. */
static int follow(fx_t *f, const char *url, const char *prefix, int *items)
{
    int pages = 0;
    char *next = d8_xstrdup(url);
    while (next) {
        assert_int_equal(req(f, "GET", next, NULL), 200);
        free(next);
        next = NULL;
        pages++;
        *items += cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "value"));
        const char *n = jstr(f->j, "nextLink");
        if (!n) {
            /* Omitted on the last page, never an empty string or null. */
            assert_null(cJSON_GetObjectItem(f->j, "nextLink"));
            continue;
        }
        if (strncmp(n, prefix, strlen(prefix)) != 0)
            fail_msg("nextLink %s does not start with %s", n, prefix);
        const char *tok = strstr(n, "&$skipToken=");
        assert_non_null(tok);
        assert_null(strstr(n, "%24"));
        /* Opaque: not a bare sequence number. */
        tok += strlen("&$skipToken=");
        assert_true(strspn(tok, "0123456789") < strlen(tok));
        next = d8_xstrdup(n);
    }
    return pages;
}

static void test_paging_pages_of_one(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    ctl(f, "/_azsim/paging", "{\"pageSize\":1}");
    assert_int_equal(jnum(f->j, "pageSize"), 1);
    for (int i = 0; i < 3; i++) {
        char u[256];
        snprintf(u, sizeof(u), CG_PATH "/g%d" ACI_V, i);
        assert_int_equal(req(f, "PUT", u, PLAIN_GROUP), 201);
        snprintf(u, sizeof(u), FS_PATH "/sh%d" FS_V, i);
        assert_int_equal(req(f, "PUT", u, "{}"), 201);
    }
    int items = 0;
    assert_int_equal(
        follow(f, CG_PATH ACI_V, "http://azsim.test" CG_PATH "?api-version=2025-09-01", &items), 3);
    assert_int_equal(items, 3);
    items = 0;
    /* $expand and $maxpagesize carry over, spelled as ARM spells them. */
    assert_int_equal(req(f, "GET", FS_PATH FS_V "&$expand=metadata&$maxpagesize=2", NULL), 200);
    assert_non_null(strstr(jstr(f->j, "nextLink"), "&$maxpagesize=2&$expand=metadata&$skipToken="));
    assert_int_equal(follow(f, FS_PATH FS_V, "http://azsim.test" FS_PATH "?api-version=", &items),
                     3);
    assert_int_equal(items, 3);
    /* A token in either case is taken; a made-up or changed one is not. */
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    char *next = d8_xstrdup(jstr(f->j, "nextLink"));
    char *lower = d8_xstrdup(next);
    memcpy(strstr(lower, "$skipToken"), "$skiptoken", 10);
    assert_int_equal(req(f, "GET", lower, NULL), 200);
    assert_string_equal(jstr(f->j, "value.0.name"), "g1");
    char *last = next + strlen(next) - 1;
    *last = *last == 'A' ? 'B' : 'A';
    assert_int_equal(req(f, "GET", next, NULL), 400);
    assert_string_equal(err_code(f), "InvalidSkipToken");
    assert_int_equal(req(f, "GET", CG_PATH ACI_V "&$skipToken=2", NULL), 400);
    assert_int_equal(req(f, "GET", FS_PATH FS_V "&$skipToken=", NULL), 400);
    free(lower);
    free(next);
    fx_free(f);
}

static void test_paging_explicit_port(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    ctl(f, "/_azsim/paging", "{\"pageSize\":1,\"explicitPort\":true}");
    for (int i = 0; i < 2; i++) {
        char u[256];
        snprintf(u, sizeof(u), CG_PATH "/g%d" ACI_V, i);
        assert_int_equal(req(f, "PUT", u, PLAIN_GROUP), 201);
    }
    /* The default port of the scheme, written out (ARM writes :443). */
    int items = 0;
    assert_int_equal(follow(f, CG_PATH ACI_V, "http://azsim.test:80" CG_PATH "?", &items), 2);
    /* A port the client wrote stays as it is. */
    f->host = "azsim.test:8080";
    items = 0;
    assert_int_equal(follow(f, CG_PATH ACI_V, "http://azsim.test:8080" CG_PATH "?", &items), 2);
    f->host = "[::1]";
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_true(strncmp(jstr(f->j, "nextLink"), "http://[::1]:80/", 16) == 0);
    /* Only nextLinks: the operation URLs stay as they were. */
    f->host = "azsim.test";
    assert_int_equal(req(f, "PUT", CG_PATH "/g9" ACI_V, PLAIN_GROUP), 201);
    assert_true(
        strncmp(azsim_resp_header(&f->r, "Azure-AsyncOperation"), "http://azsim.test/", 18) == 0);
    fx_free(f);
}

static void test_paging_empty_first_page(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    ctl(f, "/_azsim/paging", "{\"emptyPages\":true}");
    /* An empty list: an empty page with a nextLink, then one without. */
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(f->j, "value")), 0);
    int items = 0;
    assert_int_equal(follow(f, CG_PATH ACI_V, "http://azsim.test/", &items), 2);
    assert_int_equal(items, 0);
    assert_int_equal(req(f, "PUT", CG_PATH "/g1" ACI_V, PLAIN_GROUP), 201);
    assert_int_equal(put_share(f, "sh1", "{}"), 201);
    items = 0;
    assert_int_equal(follow(f, CG_PATH ACI_V, "http://azsim.test/", &items), 2);
    assert_int_equal(items, 1);
    items = 0;
    assert_int_equal(follow(f, FS_PATH FS_V, "http://azsim.test/", &items), 2);
    assert_int_equal(items, 1);
    /* With pages of one: empty, g1, g2. */
    ctl(f, "/_azsim/paging", "{\"pageSize\":1}");
    assert_int_equal(req(f, "PUT", CG_PATH "/g2" ACI_V, PLAIN_GROUP), 201);
    items = 0;
    assert_int_equal(follow(f, CG_PATH ACI_V, "http://azsim.test/", &items), 3);
    assert_int_equal(items, 2);
    fx_free(f);
}

static void test_paging_settings(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(req(f, "GET", "/_azsim/paging", NULL), 200);
    assert_int_equal(jnum(f->j, "pageSize"), 100);
    assert_true(cJSON_IsFalse(at(f->j, "explicitPort")));
    assert_true(cJSON_IsFalse(at(f->j, "emptyPages")));
    /* All or nothing. */
    assert_int_equal(req(f, "POST", "/_azsim/paging", "{\"emptyPages\":true,\"pageSize\":0}"), 400);
    assert_string_equal(err_code(f), "InvalidPagingSettings");
    assert_int_equal(req(f, "POST", "/_azsim/paging", "{\"explicitPorts\":true}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/paging", "{\"emptyPages\":1}"), 400);
    assert_int_equal(req(f, "GET", "/_azsim/paging", NULL), 200);
    assert_true(cJSON_IsFalse(at(f->j, "emptyPages")));
    ctl(f, "/_azsim/paging", "{\"emptyPages\":true,\"pageSize\":5000}");
    assert_int_equal(req(f, "POST", "/_azsim/reset", NULL), 204);
    assert_int_equal(req(f, "GET", "/_azsim/paging", NULL), 200);
    assert_int_equal(jnum(f->j, "pageSize"), 100);
    assert_true(cJSON_IsFalse(at(f->j, "emptyPages")));
    assert_int_equal(req(f, "DELETE", "/_azsim/paging", NULL), 405);
    fx_free(f);
}

/* ---- throttling headers ------------------------------------------------------ */

static void test_global_ratelimit_headers(void **state)
{
    (void)state;
    azsim_opts_t o;
    azsim_opts_init(&o);
    o.clock = fake_clock;
    fx_t *f = fx_new(&o);
    /* 250 - 1 beside 15 x 250 - 1, as observed on ARM. */
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_string_equal(azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-reads"),
                        "249");
    assert_string_equal(
        azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-global-reads"), "3749");
    assert_string_equal(
        azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-global-writes"), "3000");
    assert_int_equal(put_share(f, "sh1", "{}"), 201);
    assert_string_equal(azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-writes"),
                        "199");
    assert_string_equal(
        azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-global-writes"), "2999");
    assert_int_equal(share_op(f, "DELETE", "sh1", NULL), 200);
    assert_string_equal(
        azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-global-deletes"), "2999");
    /* Refilled at 15 x the regional rate. */
    advance(1000);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_string_equal(
        azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-global-deletes"), "3000");
    fx_free(f);
    /* Switched off: only the regional headers. */
    o.global_headers = 0;
    f = fx_new(&o);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_non_null(azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-reads"));
    assert_null(azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-global-reads"));
    fx_free(f);
    azsim_opts_release(&o);
}

/* ---- storage accounts ---------------------------------------------------------- */

static void test_storage_account_get(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    /* An account not listed: the shape of the spec's example. */
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    assert_string_equal(jstr(f->j, "id"), SA_ID);
    assert_string_equal(jstr(f->j, "name"), "dev8eastus");
    assert_string_equal(jstr(f->j, "type"), "Microsoft.Storage/storageAccounts");
    assert_string_equal(jstr(f->j, "kind"), "StorageV2");
    assert_string_equal(jstr(f->j, "location"), "eastus");
    assert_string_equal(jstr(f->j, "sku.name"), "Standard_LRS");
    assert_string_equal(jstr(f->j, "sku.tier"), "Standard");
    assert_string_equal(jstr(f->j, "properties.largeFileSharesState"), "Enabled");
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Succeeded");
    assert_string_equal(jstr(f->j, "properties.primaryEndpoints.file"),
                        "https://dev8eastus.file.core.windows.net/");
    assert_non_null(jstr(f->j, "properties.keyCreationTime.key1"));
    assert_true(cJSON_IsObject(at(f->j, "tags")));
    /* Configured: a premium FileStorage account without large file shares. */
    ctl(f, "/_azsim/storage",
        "{\"accounts\":[{\"name\":\"dev8eastus\",\"kind\":\"filestorage\",\"sku\":"
        "\"Premium_LRS\",\"location\":\"West Europe\",\"largeFileShares\":false}]}");
    assert_string_equal(jstr(f->j, "accounts.0.kind"), "FileStorage");
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    assert_string_equal(jstr(f->j, "kind"), "FileStorage");
    assert_string_equal(jstr(f->j, "sku.tier"), "Premium");
    assert_string_equal(jstr(f->j, "location"), "westeurope");
    assert_null(at(f->j, "properties.largeFileSharesState"));
    assert_null(at(f->j, "properties.primaryEndpoints.blob"));
    /* Other accounts keep the default. */
    assert_int_equal(
        req(f, "GET", RG_PATH "/providers/Microsoft.Storage/storageAccounts/other" FS_V, NULL),
        200);
    assert_string_equal(jstr(f->j, "sku.name"), "Standard_LRS");
    /* Settings are checked, all or nothing. */
    static const char *const bad[] = {
        "{\"accounts\":[{\"name\":\"a1b2c\",\"kind\":\"FileStorage\",\"sku\":\"Standard_LRS\"}]}",
        "{\"accounts\":[{\"name\":\"a1b2c\",\"kind\":\"Disk\"}]}",
        "{\"accounts\":[{\"name\":\"a1b2c\",\"sku\":\"Gold\"}]}",
        "{\"accounts\":[{\"name\":\"Bad-Name\"}]}",
        "{\"accounts\":[{\"kind\":\"StorageV2\"}]}",
        "{\"accounts\":[{\"name\":\"a1b2c\",\"largeFileShares\":\"yes\"}]}",
        "{\"asciiMetadata\":true,\"colour\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (req(f, "POST", "/_azsim/storage", bad[i]) != 400)
            fail_msg("%s answered %d", bad[i], f->r.status);
        assert_string_equal(err_code(f), "InvalidStorageSettings");
    }
    assert_int_equal(req(f, "GET", "/_azsim/storage", NULL), 200);
    assert_string_equal(jstr(f->j, "accounts.0.sku"), "Premium_LRS");
    /* Names and methods, as for every ARM resource. */
    assert_int_equal(
        req(f, "GET", RG_PATH "/providers/Microsoft.Storage/storageAccounts/Bad" FS_V, NULL), 400);
    assert_string_equal(err_code(f), "AccountNameInvalid");
    assert_int_equal(req(f, "PUT", SA_PATH FS_V, "{}"), 405);
    assert_int_equal(req(f, "GET", SA_PATH ACI_V, NULL), 400);
    assert_string_equal(err_code(f), "InvalidApiVersionParameter");
    fx_free(f);
}

static void test_share_sizes_by_account(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    const char *invalid = "The value for one of the HTTP headers is not in the correct format.";
    ctl(f, "/_azsim/storage",
        "{\"accounts\":[{\"name\":\"dev8eastus\",\"kind\":\"FileStorage\",\"sku\":\"Premium_LRS\"}]"
        "}");
    /* Premium: provisioned from 100 GiB. */
    assert_int_equal(put_share(f, "pr1", "{\"properties\":{\"shareQuota\":99}}"), 400);
    assert_string_equal(err_code(f), "InvalidHeaderValue");
    assert_string_equal(err_msg(f), invalid);
    assert_int_equal(put_share(f, "pr1", "{\"properties\":{\"shareQuota\":100}}"), 201);
    assert_int_equal(req(f, "PATCH", FS_PATH "/pr1" FS_V, "{\"properties\":{\"shareQuota\":10}}"),
                     400);
    assert_string_equal(err_code(f), "InvalidHeaderValue");
    assert_int_equal(
        req(f, "PATCH", FS_PATH "/pr1" FS_V, "{\"properties\":{\"shareQuota\":102400}}"), 200);
    /* Standard without large file shares: up to 5 TiB. */
    ctl(f, "/_azsim/storage",
        "{\"accounts\":[{\"name\":\"dev8eastus\",\"largeFileShares\":false}]}");
    assert_int_equal(put_share(f, "sh1", "{\"properties\":{\"shareQuota\":1}}"), 201);
    assert_int_equal(put_share(f, "sh1", "{\"properties\":{\"shareQuota\":5120}}"), 200);
    assert_int_equal(put_share(f, "sh1", "{\"properties\":{\"shareQuota\":5121}}"), 400);
    assert_string_equal(err_code(f), "InvalidHeaderValue");
    assert_int_equal(put_share(f, "sh2", "{}"), 201); /* the default 5120 fits */
    /* With large file shares: up to 100 TiB; beyond, as before. */
    ctl(f, "/_azsim/storage",
        "{\"accounts\":[{\"name\":\"dev8eastus\",\"largeFileShares\":true}]}");
    assert_int_equal(put_share(f, "sh1", "{\"properties\":{\"shareQuota\":102400}}"), 200);
    assert_int_equal(put_share(f, "sh1", "{\"properties\":{\"shareQuota\":102401}}"), 400);
    assert_string_equal(err_code(f), "OutOfRangeInput");
    fx_free(f);
}

/* ---- metadata -------------------------------------------------------------------- */

static void test_metadata_ascii_values(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(
        put_share(f, "md1", "{\"properties\":{\"metadata\":{\"dev8userid\":\"J\xc3\xbcrgen\"}}}"),
        400);
    assert_string_equal(err_code(f), "InvalidMetadata");
    assert_string_equal(err_msg(f),
                        "The metadata specified is invalid. It has characters that are not "
                        "permitted.");
    assert_int_equal(put_share(f, "md1",
                               "{\"properties\":{\"metadata\":{\"dev8userid\":"
                               "\"J%C3%BCrgen-%F0%9F%98%80\"}}}"),
                     201);
    assert_int_equal(
        req(f, "PATCH", FS_PATH "/md1" FS_V, "{\"properties\":{\"metadata\":{\"a\":\"\\u00e9\"}}}"),
        400);
    assert_string_equal(err_code(f), "InvalidMetadata");
    /* Names are case-insensitive: one name twice is refused. */
    assert_int_equal(
        put_share(f, "md2", "{\"properties\":{\"metadata\":{\"Owner\":\"a\",\"owner\":\"b\"}}}"),
        400);
    assert_non_null(strstr(err_msg(f), "given twice"));
    /* Switched off, a value is taken as given. */
    ctl(f, "/_azsim/storage", "{\"asciiMetadata\":false}");
    assert_int_equal(
        put_share(f, "md3", "{\"properties\":{\"metadata\":{\"dev8userid\":\"J\xc3\xbcrgen\"}}}"),
        201);
    assert_string_equal(jstr(f->j, "properties.metadata.dev8userid"), "J\xc3\xbcrgen");
    fx_free(f);
}

/* ---- share deletes: snapshots and locks ---------------------------------------- */

static void test_share_delete_snapshots(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    for (int i = 1; i <= 3; i++) {
        char n[16];
        snprintf(n, sizeof(n), "sh%d", i);
        assert_int_equal(put_share(f, n, "{}"), 201);
    }
    ctl(f, "/_azsim/shares", "{\"account\":\"DEV8EASTUS\",\"share\":\"sh1\",\"snapshots\":2}");
    assert_int_equal(jnum(f->j, "snapshots"), 2);
    assert_string_equal(jstr(f->j, "lock"), "None");
    /* $include=none refuses any snapshot. */
    assert_int_equal(share_op(f, "DELETE", "sh1", "&$include=none"), 409);
    assert_string_equal(err_code(f), "ShareHasSnapshots");
    assert_string_equal(err_msg(f),
                        "The share has snapshots and the operation requires no snapshots.");
    /* The default (snapshots) deletes the share and its snapshots. */
    assert_int_equal(share_op(f, "DELETE", "sh1", NULL), 200);
    /* Leased snapshots stop the default; leased-snapshots takes them. */
    ctl(f, "/_azsim/shares",
        "{\"account\":\"dev8eastus\",\"share\":\"sh2\",\"snapshots\":1,\"leasedSnapshots\":1}");
    assert_int_equal(share_op(f, "DELETE", "sh2", NULL), 409);
    assert_string_equal(err_code(f), "DeleteShareWhenSnapshotLeased");
    assert_string_equal(err_msg(f), "Unable to delete share because one or more share snapshots "
                                    "have active leases.");
    assert_int_equal(share_op(f, "DELETE", "sh2", "&$include=snapshots"), 409);
    assert_int_equal(share_op(f, "GET", "sh2", NULL), 200);
    assert_int_equal(share_op(f, "DELETE", "sh2", "&$include=leased-snapshots"), 200);
    assert_int_equal(share_op(f, "GET", "sh2", NULL), 404);
    /* Cleared, the default delete goes through. */
    ctl(f, "/_azsim/shares",
        "{\"account\":\"dev8eastus\",\"share\":\"sh3\",\"leasedSnapshots\":3}");
    assert_int_equal(share_op(f, "DELETE", "sh3", NULL), 409);
    ctl(f, "/_azsim/shares",
        "{\"account\":\"dev8eastus\",\"share\":\"sh3\",\"leasedSnapshots\":0}");
    assert_int_equal(share_op(f, "DELETE", "sh3", NULL), 200);
    assert_int_equal(share_op(f, "DELETE", "sh3", NULL), 204);
    assert_int_equal(share_op(f, "DELETE", "sh3", "&$include=all"), 400);
    assert_string_equal(err_code(f), "InvalidQueryParameterValue");
    /* The control API: live shares only, fields checked. */
    assert_int_equal(req(f, "POST", "/_azsim/shares",
                         "{\"account\":\"dev8eastus\",\"share\":"
                         "\"sh3\",\"snapshots\":1}"),
                     404);
    assert_int_equal(put_share(f, "sh4", "{}"), 201);
    static const char *const bad[] = {
        "{\"account\":\"dev8eastus\",\"share\":\"sh4\",\"snapshots\":-1}",
        "{\"account\":\"dev8eastus\",\"share\":\"sh4\",\"snapshots\":201}",
        "{\"account\":\"dev8eastus\",\"share\":\"sh4\",\"lock\":\"Sealed\"}",
        "{\"account\":\"dev8eastus\",\"share\":\"sh4\",\"colour\":1}",
        "{\"account\":\"dev8eastus\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (req(f, "POST", "/_azsim/shares", bad[i]) != 400)
            fail_msg("%s answered %d", bad[i], f->r.status);
    assert_int_equal(req(f, "GET", "/_azsim/shares", NULL), 405);
    fx_free(f);
}

#define LOCKED(what, scope, locked)                                                                \
    "The scope '" scope "' cannot perform " what " operation because following scope(s) are "      \
    "locked: '" locked "'. Please remove the lock and try again."

static void test_management_locks(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(put_share(f, "sh1", "{}"), 201);
    /* CanNotDelete on the account: its shares cannot be deleted. */
    ctl(f, "/_azsim/accounts", "{\"account\":\"dev8eastus\",\"lock\":\"CanNotDelete\"}");
    assert_string_equal(jstr(f->j, "lock"), "CanNotDelete");
    assert_int_equal(share_op(f, "DELETE", "sh1", NULL), 409);
    assert_string_equal(err_code(f), "ScopeLocked");
    assert_string_equal(err_msg(f),
                        LOCKED("delete", SA_ID "/fileServices/default/shares/sh1", SA_ID));
    assert_int_equal(share_op(f, "DELETE", "gone", NULL), 409); /* ARM checks the scope first */
    assert_int_equal(share_op(f, "PATCH", "sh1", NULL), 200);
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 200);
    ctl(f, "/_azsim/accounts", "{\"account\":\"dev8eastus\",\"lock\":\"None\"}");
    /* On the share: that share only. */
    assert_int_equal(put_share(f, "sh2", "{}"), 201);
    ctl(f, "/_azsim/shares",
        "{\"account\":\"dev8eastus\",\"share\":\"sh1\",\"lock\":\"CanNotDelete\"}");
    assert_int_equal(share_op(f, "DELETE", "sh1", NULL), 409);
    assert_string_equal(err_msg(f), LOCKED("delete", SA_ID "/fileServices/default/shares/sh1",
                                           SA_ID "/fileServices/default/shares/sh1"));
    assert_int_equal(share_op(f, "DELETE", "sh2", NULL), 200);
    /* ReadOnly forbids writes too, and listKeys (a POST) on the account. */
    ctl(f, "/_azsim/shares",
        "{\"account\":\"dev8eastus\",\"share\":\"sh1\",\"lock\":\"ReadOnly\"}");
    assert_int_equal(share_op(f, "PATCH", "sh1", NULL), 409);
    assert_string_equal(err_msg(f), LOCKED("write", SA_ID "/fileServices/default/shares/sh1",
                                           SA_ID "/fileServices/default/shares/sh1"));
    assert_int_equal(put_share(f, "sh1", "{}"), 409);
    assert_int_equal(put_share(f, "sh3", "{}"), 201);
    ctl(f, "/_azsim/accounts", "{\"account\":\"dev8eastus\",\"lock\":\"ReadOnly\"}");
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 409);
    assert_string_equal(err_msg(f), LOCKED("write", SA_ID, SA_ID));
    assert_int_equal(put_share(f, "sh4", "{}"), 409);
    assert_int_equal(share_op(f, "GET", "sh3", NULL), 200);
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    /* A reset removes every lock. */
    assert_int_equal(req(f, "POST", "/_azsim/reset", NULL), 204);
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 200);
    assert_int_equal(req(f, "POST", "/_azsim/accounts",
                         "{\"account\":\"dev8eastus\",\"lock\":"
                         "\"Frozen\"}"),
                     400);
    assert_int_equal(req(f, "POST", "/_azsim/accounts", "{\"account\":\"x\"}"), 400);
    fx_free(f);
}

/* ---- key regeneration ------------------------------------------------------------- */

/* The value of key n (1 or 2) in the last ListKeys answer (copied). */
static void key_of(const fx_t *f, int n, char out[96])
{
    char path[32];
    snprintf(path, sizeof(path), "keys.%d.value", n - 1);
    assert_non_null(jstr(f->j, path));
    snprintf(out, 96, "%s", jstr(f->j, path));
}

/* PUT of group name mounting share s1 with key; returns the group's
 * provisioningState once provisioning is over. */
static const char *mount_with(fx_t *f, const char *name, const char *key)
{
    char url[256], *body = d8_xstrdup(GROUP("KEY")), *k = strstr(body, "KEY");
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_append(&b, body, (size_t)(k - body));
    d8_buf_printf(&b, "%s%s", key, k + 3);
    snprintf(url, sizeof(url), CG_PATH "/%s" ACI_V, name);
    assert_int_equal(req(f, "PUT", url, b.data), 201);
    advance(2500);
    assert_int_equal(req(f, "GET", url, NULL), 200);
    d8_buf_release(&b);
    free(body);
    return jstr(f->j, "properties.provisioningState");
}

static void test_key_regeneration(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(put_share(f, "sh1", "{}"), 201);
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 200);
    char k1[96], k2[96], nk1[96], nk2[96];
    key_of(f, 1, k1);
    key_of(f, 2, k2);
    char *created = d8_xstrdup(jstr(f->j, "keys.0.creationTime"));
    assert_string_equal(mount_with(f, "before", k1), "Succeeded");
    advance(60000);
    ctl(f, "/_azsim/regenerateKey", "{\"account\":\"dev8eastus\",\"keyName\":\"key1\"}");
    key_of(f, 1, nk1);
    assert_string_not_equal(nk1, k1);
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 200);
    key_of(f, 1, nk1);
    key_of(f, 2, nk2);
    assert_string_not_equal(nk1, k1);
    assert_string_equal(nk2, k2);
    assert_string_not_equal(jstr(f->j, "keys.0.creationTime"), created);
    assert_string_equal(jstr(f->j, "keys.1.creationTime"), created);
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    assert_string_not_equal(jstr(f->j, "properties.keyCreationTime.key1"), created);
    /* A new mount with the old key fails as a wrong key does ... */
    assert_string_equal(mount_with(f, "stale", k1), "Failed");
    assert_non_null(strstr(f->r.body.data, "FailedMount"));
    /* ... with the new one, or the unchanged key2, it works. */
    assert_string_equal(mount_with(f, "fresh", nk1), "Succeeded");
    assert_string_equal(mount_with(f, "other", k2), "Succeeded");
    /* A running group keeps its mount (what Azure does is not documented). */
    assert_int_equal(req(f, "GET", CG_PATH "/before" ACI_V, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.instanceView.state"), "Running");
    /* Bad requests; a reset restores the account's first keys. */
    assert_int_equal(req(f, "POST", "/_azsim/regenerateKey",
                         "{\"account\":\"dev8eastus\","
                         "\"keyName\":\"key3\"}"),
                     400);
    assert_int_equal(req(f, "POST", "/_azsim/regenerateKey", "{\"keyName\":\"key1\"}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/reset", NULL), 204);
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 200);
    key_of(f, 1, nk1);
    assert_string_equal(nk1, k1);
    free(created);
    fx_free(f);
}

/* ---- the 403 fault ----------------------------------------------------------------- */

#define DENIED(action, scope)                                                                      \
    "The client 'app1' with object id 'app1' does not have authorization to perform action "       \
    "'" action "' over scope '" scope                                                              \
    "' or the scope is invalid. If access was recently granted, "                                  \
    "please refresh your credentials."

static void test_authorization_failed_fault(void **state)
{
    (void)state;
    fx_t *f = fx_default();
    assert_int_equal(put_share(f, "sh1", "{}"), 201);
    ctl(f, "/_azsim/faults", "{\"rate403\":1}");
    assert_int_equal(jnum(f->j, "rate403"), 1);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 403);
    assert_string_equal(err_code(f), "AuthorizationFailed");
    assert_string_equal(err_msg(f),
                        DENIED("Microsoft.ContainerInstance/containerGroups/read", RG_PATH));
    /* Metered as any ARM answer. */
    assert_non_null(azsim_resp_header(&f->r, "x-ms-ratelimit-remaining-subscription-reads"));
    assert_int_equal(req(f, "GET", FS_PATH FS_V, NULL), 403);
    assert_string_equal(err_msg(f),
                        DENIED("Microsoft.Storage/storageAccounts/fileServices/shares/read",
                               SA_PATH "/fileServices/default"));
    assert_int_equal(req(f, "POST", SA_PATH "/listKeys" FS_V, NULL), 403);
    assert_string_equal(err_msg(f),
                        DENIED("Microsoft.Storage/storageAccounts/listkeys/action", SA_PATH));
    assert_int_equal(share_op(f, "DELETE", "sh1", NULL), 403);
    assert_non_null(strstr(err_msg(f), "fileServices/shares/delete' over scope '" FS_PATH "/sh1'"));
    /* Tokens, unknown paths and the control API are not ARM calls. */
    assert_int_equal(req(f, "POST", "/tenant1/oauth2/v2.0/token",
                         "grant_type=client_credentials&client_id=app1&client_secret=s3cret&"
                         "scope=https%3A%2F%2Fmanagement.azure.com%2F.default"),
                     200);
    assert_int_equal(req(f, "GET", RG_PATH "/providers/Microsoft.Nope/things" ACI_V, NULL), 404);
    /* By operation type: only writes. */
    ctl(f, "/_azsim/faults", "{\"rate403\":0,\"rate403Writes\":1}");
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    assert_int_equal(share_op(f, "DELETE", "sh1", NULL), 200);
    assert_int_equal(put_share(f, "sh2", "{}"), 403);
    ctl(f, "/_azsim/faults", "{\"rate403Writes\":0,\"rate403Reads\":1}");
    assert_int_equal(put_share(f, "sh2", "{}"), 201);
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 403);
    assert_non_null(strstr(err_msg(f), "'Microsoft.Storage/storageAccounts/read'"));
    assert_int_equal(req(f, "GET", "/_azsim/stats", NULL), 200);
    const cJSON *st = at(at(f->j, "requests"), "containerGroups.list");
    assert_null(st); /* a list by resource group is listByResourceGroup */
    st = cJSON_GetObjectItem(cJSON_GetObjectItem(f->j, "requests"),
                             "containerGroups.listByResourceGroup");
    assert_int_equal(cJSON_GetObjectItem(st, "403")->valueint, 1);
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"rate403\":2}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/faults", "{\"rate404\":1}"), 400);
    assert_string_equal(err_code(f), "InvalidFault");
    fx_free(f);
}

/* ---- settings ------------------------------------------------------------------------ */

static void test_settings_yaml(void **state)
{
    (void)state;
    char *path = write_tmp("storage:\n"
                           "  asciiMetadata: false\n"
                           "  accounts:\n"
                           "    - {name: dev8eastus, kind: FileStorage, sku: Premium_LRS}\n"
                           "    - name: dev8westeurope\n"
                           "      location: West Europe\n"
                           "      largeFileShares: false\n"
                           "paging: {explicitPort: true, emptyPages: true, pageSize: 1}\n"
                           "faults: {rate403Reads: 1, retryAfterSeconds: 7}\n"
                           "throttle: {globalHeaders: false}\n");
    azsim_opts_t o;
    azsim_opts_init(&o);
    char err[512] = "";
    assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), 0);
    assert_int_equal(o.storage.ascii_metadata, 0);
    assert_int_equal(o.storage.naccounts, 2);
    assert_string_equal(o.storage.accounts[0].sku, "Premium_LRS");
    assert_string_equal(o.storage.accounts[1].kind, "StorageV2");
    assert_string_equal(o.storage.accounts[1].location, "westeurope");
    assert_int_equal(o.storage.accounts[1].large_file_shares, 0);
    assert_int_equal(o.storage.accounts[0].large_file_shares, 1);
    assert_int_equal(o.paging.explicit_port, 1);
    assert_int_equal(o.paging.empty_pages, 1);
    assert_int_equal(o.page_size, 1);
    assert_true(o.faults.rate403_reads == 1.0);
    assert_int_equal(o.faults.retry_after_s, 7);
    assert_int_equal(o.global_headers, 0);
    /* The control API answers what the config set; a reset restores it. */
    o.clock = fake_clock;
    o.throttle = 0;
    fx_t *f = fx_new(&o);
    azsim_opts_release(&o);
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 403);
    ctl(f, "/_azsim/faults", "{\"rate403Reads\":0}");
    ctl(f, "/_azsim/storage", "{\"accounts\":[]}");
    assert_int_equal(req(f, "GET", SA_PATH FS_V, NULL), 200);
    assert_string_equal(jstr(f->j, "sku.name"), "Standard_LRS");
    assert_int_equal(req(f, "POST", "/_azsim/reset", NULL), 204);
    assert_int_equal(req(f, "GET", "/_azsim/faults", NULL), 200);
    assert_int_equal(jnum(f->j, "rate403Reads"), 1);
    assert_int_equal(jnum(f->j, "retryAfterSeconds"), 7);
    assert_int_equal(req(f, "GET", "/_azsim/storage", NULL), 200);
    assert_string_equal(jstr(f->j, "accounts.0.kind"), "FileStorage");
    assert_true(cJSON_IsFalse(at(f->j, "asciiMetadata")));
    assert_int_equal(req(f, "GET", "/_azsim/paging", NULL), 200);
    assert_int_equal(jnum(f->j, "pageSize"), 1);
    fx_free(f);

    /* YAML errors name the file position and the key. */
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"storage:\n  accounts:\n    - {name: abc, kind: Disk}\n",
         ":3:25: storage.accounts.kind: expected Storage"},
        {"storage:\n  accounts:\n    - {name: abc, kind: FileStorage}\n",
         ":3:7: storage.accounts: a FileStorage account needs a Premium sku"},
        {"storage:\n  asciiMetadata: maybe\n", ":2:18: storage.asciiMetadata: expected true"},
        {"paging:\n  pageSize: 0\n", ":2:13: paging.pageSize: expected an integer"},
        {"paging:\n  ports: true\n", ":2:10: paging.ports: unknown key in paging"},
        {"faults:\n  rate403: 1.5\n", ":2:12: faults.rate403: expected a number from 0 to 1"},
        {"throttle: {globalHeaders: 2}\n", ":1:27: throttle.globalHeaders: expected true"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        FILE *fp = fopen(path, "w");
        fputs(bad[i].yaml, fp);
        fclose(fp);
        azsim_opts_init(&o);
        assert_int_equal(azsim_opts_load_yaml(&o, path, err, sizeof(err)), D8_EINVAL);
        if (!strstr(err, bad[i].want))
            fail_msg("config %zu: '%s' lacks '%s'", i, err, bad[i].want);
        assert_int_equal(o.storage.naccounts, 0); /* nothing applied */
        assert_int_equal(o.page_size, 100);
        azsim_opts_release(&o);
    }
    unlink(path);
    free(path);
}

int main(void)
{
    log_setup(LOG_ERROR, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paging_pages_of_one),
        cmocka_unit_test(test_paging_explicit_port),
        cmocka_unit_test(test_paging_empty_first_page),
        cmocka_unit_test(test_paging_settings),
        cmocka_unit_test(test_global_ratelimit_headers),
        cmocka_unit_test(test_storage_account_get),
        cmocka_unit_test(test_share_sizes_by_account),
        cmocka_unit_test(test_metadata_ascii_values),
        cmocka_unit_test(test_share_delete_snapshots),
        cmocka_unit_test(test_management_locks),
        cmocka_unit_test(test_key_regeneration),
        cmocka_unit_test(test_authorization_failed_fault),
        cmocka_unit_test(test_settings_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
