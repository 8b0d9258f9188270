/*
 * The subscription reads of preflight: providers, resource groups, the
 * caller's permissions, storage account and file service properties, ACI
 * usages and capabilities. They hand the caller ARM's JSON as it came
 * (lists merged across pages), since preflight reads a handful of fields
 * from each and nothing else in the agent needs them decoded.
 */
#include "azure_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ARM's Resources and Authorization api-versions these reads are written
 * against (the specs in test/fixtures/azure-specs). */
#define RESOURCES_API "2021-04-01"
#define AUTHORIZATION_API "2022-04-01"

typedef struct rd {
    azure_client_t *c;
    azure__op_t op;
    int prio;
    azure_json_cb cb;
    void *ud;
    char *sub, *rg, *acct, *region;
    cJSON *items; /* lists: the items of the pages read so far */
    size_t pages;
} rd_t;

static char *xdup(const char *s)
{
    return s ? d8_xstrdup(s) : NULL;
}

static void rd_free(rd_t *q)
{
    free(q->sub);
    free(q->rg);
    free(q->acct);
    free(q->region);
    cJSON_Delete(q->items);
    free(q);
}

static int is_list(azure__op_t op)
{
    return op == AZ_OP_PERMISSIONS_LIST || op == AZ_OP_USAGE_LIST ||
           op == AZ_OP_CAPABILITIES_LIST || op == AZ_OP_RESOURCE_PERMISSIONS_LIST;
}

static void rd_done(azure__req_t *r, const azure_result_t *res);

static void rd_submit(rd_t *q, char *url)
{
    azure__req_t *r = azure__req_new(q->c, q->op, q->prio, url, NULL, 0, rd_done, q);
    snprintf(r->resource, sizeof(r->resource), "%s", q->acct ? q->acct : q->rg ? q->rg : q->sub);
    azure_scope_t s = {q->sub, q->rg ? q->rg : "-", q->acct, q->region};
    azure__req_submit(r, &s);
}

/* Calls back once and frees the read. */
static void rd_complete(rd_t *q, const azure_result_t *in, const char *body, size_t len)
{
    azure_client_t *c = q->c;
    q->cb(q->ud, in, body, len);
    c->nops--;
    rd_free(q);
}

static void rd_fail(rd_t *q, const azure_result_t *in, int err, const char *code, const char *msg)
{
    azure_result_t out = *in;
    out.err = err;
    out.error_code = code;
    out.error_message = msg;
    rd_complete(q, &out, NULL, 0);
}

/* One page of a list: keeps its items and follows nextLink, or answers
 * {"value":[every item]}. */
static void rd_page(rd_t *q, azure__req_t *r, const azure_result_t *res)
{
    cJSON *j = cJSON_ParseWithLength(r->resp.data ? r->resp.data : "", r->resp.len);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "value");
    if (!cJSON_IsArray(v)) {
        cJSON_Delete(j);
        rd_fail(q, res, D8_EPARSE, "InvalidResponse", "the list answer has no value array");
        return;
    }
    if (!q->items)
        q->items = cJSON_CreateArray();
    cJSON *it;
    while ((it = cJSON_DetachItemFromArray(v, 0)) != NULL)
        cJSON_AddItemToArray(q->items, it);
    const cJSON *nl = cJSON_GetObjectItemCaseSensitive(j, "nextLink");
    char *next = cJSON_IsString(nl) && nl->valuestring[0] ? d8_xstrdup(nl->valuestring) : NULL;
    cJSON_Delete(j);
    q->pages++;
    if (next) {
        if (!azure__same_origin(q->c->arm_endpoint, next)) {
            free(next);
            rd_fail(q, res, D8_EPARSE, "ForeignNextLink",
                    "nextLink points outside armEndpoint; not followed");
            return;
        }
        if (q->pages >= q->c->max_pages) {
            free(next);
            rd_fail(q, res, D8_ETOOBIG, "TooManyPages", "the list has more pages than max_pages");
            return;
        }
        rd_submit(q, next);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "value", q->items);
    q->items = NULL;
    char *text = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    rd_complete(q, res, text, strlen(text));
    free(text);
}

static void rd_done(azure__req_t *r, const azure_result_t *res)
{
    rd_t *q = r->ctx;
    if (res->err < 0) {
        rd_complete(q, res, NULL, 0);
        return;
    }
    if (is_list(q->op)) {
        rd_page(q, r, res);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(r->resp.data ? r->resp.data : "", r->resp.len);
    int ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!ok) {
        rd_fail(q, res, D8_EPARSE, "InvalidResponse", "the answer is not a JSON object");
        return;
    }
    rd_complete(q, res, r->resp.data, r->resp.len);
}

/* The URL of a read, or NULL when an argument it needs is missing. */
static char *read_url(azure_client_t *c, const azure_scope_t *s, azure_read_t what, const char *arg)
{
    d8_buf_t b;
    d8_buf_init(&b);
    const char *base = c->arm_endpoint, *sub = s->subscription_id;
    switch (what) {
    case AZURE_READ_PROVIDER:
        d8_buf_printf(&b, "%s/subscriptions/%s/providers/%s?api-version=%s", base, sub, arg,
                      RESOURCES_API);
        break;
    case AZURE_READ_RESOURCE_GROUP:
        d8_buf_printf(&b, "%s/subscriptions/%s/resourcegroups/%s?api-version=%s", base, sub,
                      s->resource_group, RESOURCES_API);
        break;
    case AZURE_READ_PERMISSIONS:
        d8_buf_printf(&b,
                      "%s/subscriptions/%s/resourcegroups/%s/providers/"
                      "Microsoft.Authorization/permissions?api-version=%s",
                      base, sub, s->resource_group, AUTHORIZATION_API);
        break;
    case AZURE_READ_STORAGE_ACCOUNT:
    case AZURE_READ_FILE_SERVICE:
        d8_buf_printf(&b,
                      "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/"
                      "storageAccounts/%s%s?api-version=%s",
                      base, sub, s->resource_group, s->storage_account,
                      what == AZURE_READ_FILE_SERVICE ? "/fileServices/default" : "",
                      c->storage_api_version);
        break;
    case AZURE_READ_ACI_USAGES:
    case AZURE_READ_ACI_CAPABILITIES:
        d8_buf_printf(&b,
                      "%s/subscriptions/%s/providers/Microsoft.ContainerInstance/locations/%s/"
                      "%s?api-version=%s",
                      base, sub, s->region,
                      what == AZURE_READ_ACI_USAGES ? "usages" : "capabilities",
                      c->aci_api_version);
        break;
    case AZURE_READ_RESOURCE_PERMISSIONS:
        d8_buf_printf(&b, "%s%s/providers/Microsoft.Authorization/permissions?api-version=%s", base,
                      arg, AUTHORIZATION_API);
        break;
    }
    return d8_buf_detach(&b, NULL);
}

static const azure__op_t read_ops[] = {
    [AZURE_READ_PROVIDER] = AZ_OP_PROVIDER_GET,
    [AZURE_READ_RESOURCE_GROUP] = AZ_OP_RG_GET,
    [AZURE_READ_PERMISSIONS] = AZ_OP_PERMISSIONS_LIST,
    [AZURE_READ_STORAGE_ACCOUNT] = AZ_OP_ACCOUNT_READ,
    [AZURE_READ_FILE_SERVICE] = AZ_OP_FILE_SERVICE_GET,
    [AZURE_READ_ACI_USAGES] = AZ_OP_USAGE_LIST,
    [AZURE_READ_ACI_CAPABILITIES] = AZ_OP_CAPABILITIES_LIST,
    [AZURE_READ_RESOURCE_PERMISSIONS] = AZ_OP_RESOURCE_PERMISSIONS_LIST,
};

/*
 * 1 when id is a resource id under a resource group of subscription sub:
 * "/subscriptions/<sub>/resourceGroups/<rg>/providers/<ns>/<type>/<name>..."
 * with every segment a valid ARM name (no '.' or '..' segments, no empty
 * ones, no query), at most 1024 bytes.
 */
static int resource_id_ok(const char *id, const char *sub)
{
    size_t len = id ? strlen(id) : 0;
    if (len < 2 || len > 1024 || id[0] != '/' || id[len - 1] == '/' || strstr(id, "//"))
        return 0;
    char buf[1025];
    snprintf(buf, sizeof(buf), "%s", id + 1);
    size_t n = 0;
    char *save = NULL;
    for (char *seg = strtok_r(buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save), n++) {
        if (!azure__valid_name(seg, 260))
            return 0;
        if ((n == 0 && strcasecmp(seg, "subscriptions") != 0) ||
            (n == 1 && strcasecmp(seg, sub) != 0) ||
            (n == 2 && strcasecmp(seg, "resourceGroups") != 0) ||
            (n == 4 && strcasecmp(seg, "providers") != 0))
            return 0;
    }
    return n >= 8;
}

/* 1 when s carries what a read of `what` needs, all valid ARM names. */
static int read_args_ok(const azure_scope_t *s, azure_read_t what, const char *arg)
{
    if (!s || !azure__valid_name(s->subscription_id, 64))
        return 0;
    switch (what) {
    case AZURE_READ_PROVIDER:
        return azure__valid_name(arg, 64);
    case AZURE_READ_RESOURCE_GROUP:
    case AZURE_READ_PERMISSIONS:
        return azure__valid_name(s->resource_group, 90);
    case AZURE_READ_STORAGE_ACCOUNT:
    case AZURE_READ_FILE_SERVICE:
        return azure__valid_name(s->resource_group, 90) &&
               azure__valid_name(s->storage_account, 24);
    case AZURE_READ_ACI_USAGES:
    case AZURE_READ_ACI_CAPABILITIES:
        return azure__valid_name(s->region, 64);
    case AZURE_READ_RESOURCE_PERMISSIONS:
        return resource_id_ok(arg, s->subscription_id);
    }
    return 0;
}

int azure_arm_read(azure_client_t *c, const azure_scope_t *s, azure_read_t what, const char *arg,
                   azure_prio_t prio, azure_json_cb cb, void *ud)
{
    if (!c || !cb || (int)what < 0 || what > AZURE_READ_RESOURCE_PERMISSIONS)
        return D8_EINVAL;
    if (c->closing)
        return D8_ECANCELED;
    if (!read_args_ok(s, what, arg))
        return D8_EINVAL;
    rd_t *q = d8_xcalloc(1, sizeof(*q));
    q->c = c;
    q->op = read_ops[what];
    q->prio = (int)prio;
    q->cb = cb;
    q->ud = ud;
    q->sub = xdup(s->subscription_id);
    q->rg = xdup(s->resource_group);
    q->acct = xdup(s->storage_account);
    q->region = xdup(s->region);
    c->nops++;
    rd_submit(q, read_url(c, s, what, arg));
    return 0;
}
