/*
 * The typed operations of pkg/azure: container groups, file shares and
 * storage accounts, the storage account key cache, and nextLink paging.
 * Each public call checks its arguments, builds URL and body at once (so
 * nothing the caller passed is kept), and hands one or more requests to
 * the request layer.
 */
#include "azure_int.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MARKER "__dev8_storage_key_placeholder__"

struct azure__key_entry {
    d8_list_t link;
    char *sub;
    char *rg;
    char *acct;
    char *key; /* secret */
    uint64_t fetched_ms;
    int fetching;
    d8_list_t waiters; /* ops waiting for the key */
};

typedef struct op {
    d8_list_t link; /* in a key entry's waiters */
    azure_client_t *c;
    azure__op_t kind;
    int prio;
    void *ud;
    azure_done_cb done_cb;
    azure_group_cb group_cb;
    azure_group_list_cb glist_cb;
    azure_share_cb share_cb;
    azure_share_list_cb slist_cb;
    azure_operation_cb oper_cb;
    azure_storage_account_cb acct_cb;
    azure_logs_cb logs_cb;
    uint64_t accepted_ms;
    char *sub, *rg, *acct, *region;
    char *name;
    char *url;
    d8_buf_t pre, post; /* group PUT body around the storage key: secret */
    az_secrets_t secrets;
    azure_group_list_t glist;
    azure_share_list_t slist;
    size_t pages;
} op_t;

static void op_req_done(azure__req_t *r, const azure_result_t *res);

static char *xdup(const char *s)
{
    return s ? d8_xstrdup(s) : NULL;
}

static void wipe_buf(d8_buf_t *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        d8_buf_release(b);
    }
}

static op_t *op_new(azure_client_t *c, azure__op_t kind, azure_prio_t prio, const azure_scope_t *s,
                    const char *name, void *ud)
{
    op_t *op = d8_xcalloc(1, sizeof(*op));
    d8_list_init(&op->link);
    op->c = c;
    op->kind = kind;
    op->prio = (int)prio;
    op->ud = ud;
    op->accepted_ms = d8_mono_ms();
    op->sub = xdup(s->subscription_id);
    op->rg = xdup(s->resource_group);
    op->acct = xdup(s->storage_account);
    op->region = xdup(s->region);
    op->name = xdup(name);
    c->nops++;
    return op;
}

static void op_free(op_t *op)
{
    free(op->sub);
    free(op->rg);
    free(op->acct);
    free(op->region);
    free(op->name);
    free(op->url);
    wipe_buf(&op->pre);
    wipe_buf(&op->post);
    az_secrets_release(&op->secrets);
    azure_group_list_release(&op->glist);
    azure_share_list_release(&op->slist);
    free(op);
}

static void op_add_secret(op_t *op, const char *s)
{
    az_secrets_add(&op->secrets, s);
}

/* Calls the user's callback once and frees the op. */
static void op_complete(op_t *op, const azure_result_t *in, const void *payload)
{
    azure_result_t res = *in;
    res.duration_ms = d8_mono_ms() - op->accepted_ms;
    switch (op->kind) {
    case AZ_OP_GROUP_PUT:
    case AZ_OP_GROUP_GET:
        op->group_cb(op->ud, &res, payload);
        break;
    case AZ_OP_GROUP_LIST:
        op->glist_cb(op->ud, &res, payload ? &op->glist : NULL);
        break;
    case AZ_OP_SHARE_PUT:
    case AZ_OP_SHARE_GET:
    case AZ_OP_SHARE_PATCH:
        op->share_cb(op->ud, &res, payload);
        break;
    case AZ_OP_SHARE_LIST:
        op->slist_cb(op->ud, &res, payload ? &op->slist : NULL);
        break;
    case AZ_OP_OPERATION_GET:
        op->oper_cb(op->ud, &res, payload);
        break;
    case AZ_OP_ACCOUNT_GET:
        op->acct_cb(op->ud, &res, payload);
        break;
    case AZ_OP_CONTAINER_LOGS:
        op->logs_cb(op->ud, &res, payload);
        break;
    default:
        op->done_cb(op->ud, &res);
        break;
    }
    op->c->nops--;
    op_free(op);
}

static void op_fail(op_t *op, int err, const char *code, const char *message)
{
    azure_result_t res = {
        .err = err,
        .error_code = code,
        .error_message = message,
        .request_id = "",
        .client_request_id = "",
        .retry_after_ms = -1,
        .async_operation = "",
        .location = "",
    };
    op_complete(op, &res, NULL);
}

static void op_submit(op_t *op, azure__op_t kind, char *url, char *body, size_t blen)
{
    azure__req_t *r = azure__req_new(op->c, kind, op->prio, url, body, blen, op_req_done, op);
    snprintf(r->resource, sizeof(r->resource), "%s",
             op->name ? op->name : (kind == AZ_OP_SHARE_LIST ? op->acct : op->rg));
    for (size_t i = 0; i < op->secrets.n; i++)
        azure__req_add_secret(r, op->secrets.v[i]);
    azure_scope_t s = {op->sub, op->rg, op->acct, op->region};
    azure__req_submit(r, &s);
}

/* ------------------------------------------------------------ validation */

static int scope_ok(const azure_scope_t *s, int need_account)
{
    if (!s || !azure__valid_name(s->subscription_id, 64) ||
        !azure__valid_name(s->resource_group, 90))
        return 0;
    if (s->region && s->region[0] && !azure__valid_name(s->region, 64))
        return 0;
    if (need_account && !azure__valid_name(s->storage_account, 24))
        return 0;
    return 1;
}

static int precheck(azure_client_t *c, const azure_scope_t *s, int need_account, const void *cb)
{
    if (!c || !cb)
        return D8_EINVAL;
    if (c->closing)
        return D8_ECANCELED;
    if (!scope_ok(s, need_account))
        return D8_EINVAL;
    return 0;
}

static char *group_url(azure_client_t *c, const azure_scope_t *s, const char *name,
                       const char *action)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b,
                  "%s/subscriptions/%s/resourceGroups/%s/providers/"
                  "Microsoft.ContainerInstance/containerGroups%s%s%s%s?api-version=%s",
                  c->arm_endpoint, s->subscription_id, s->resource_group, name ? "/" : "",
                  name ? name : "", action ? "/" : "", action ? action : "", c->aci_api_version);
    return d8_buf_detach(&b, NULL);
}

static char *share_url(azure_client_t *c, const azure_scope_t *s, const char *name,
                       const char *extra_query)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b,
                  "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/"
                  "storageAccounts/%s/fileServices/default/shares%s%s?api-version=%s%s",
                  c->arm_endpoint, s->subscription_id, s->resource_group, s->storage_account,
                  name ? "/" : "", name ? name : "", c->storage_api_version,
                  extra_query ? extra_query : "");
    return d8_buf_detach(&b, NULL);
}

static char *account_url(azure_client_t *c, const azure_scope_t *s)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b,
                  "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/"
                  "storageAccounts/%s?api-version=%s",
                  c->arm_endpoint, s->subscription_id, s->resource_group, s->storage_account,
                  c->storage_api_version);
    return d8_buf_detach(&b, NULL);
}

static char *keys_url(azure_client_t *c, const char *sub, const char *rg, const char *acct)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b,
                  "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/"
                  "storageAccounts/%s/listKeys?api-version=%s",
                  c->arm_endpoint, sub, rg, acct, c->storage_api_version);
    return d8_buf_detach(&b, NULL);
}

/* ------------------------------------------------------------ completion */

/*
 * One page of a list arrived: appends its items to the op's list and
 * follows nextLink (same origin as armEndpoint only, at most max_pages),
 * or completes the op with every item when there is no next page.
 */
static void page_done(op_t *op, azure__req_t *r, const azure_result_t *res)
{
    char *next = NULL;
    int rc;
    if (op->kind == AZ_OP_GROUP_LIST)
        rc = azure_decode_group_list(r->resp.data, r->resp.len, &op->glist, &next);
    else
        rc = azure_decode_share_list(r->resp.data, r->resp.len, &op->slist, &next);
    azure_result_t out = *res;
    if (rc < 0) {
        out.err = D8_EPARSE;
        out.error_code = "InvalidResponse";
        out.error_message = "the list answer is not a JSON list of resources";
        op_complete(op, &out, NULL);
        return;
    }
    op->pages++;
    if (next) {
        if (!azure__same_origin(op->c->arm_endpoint, next)) {
            free(next);
            out.err = D8_EPARSE;
            out.error_code = "ForeignNextLink";
            out.error_message = "nextLink points outside armEndpoint; not followed";
            op_complete(op, &out, NULL);
            return;
        }
        if (op->pages >= op->c->max_pages) {
            free(next);
            out.err = D8_ETOOBIG;
            out.error_code = "TooManyPages";
            out.error_message = "the list has more pages than max_pages";
            op_complete(op, &out, NULL);
            return;
        }
        op_submit(op, op->kind, next, NULL, 0);
        return;
    }
    if (op->kind == AZ_OP_GROUP_LIST)
        op_complete(op, &out, &op->glist);
    else
        op_complete(op, &out, &op->slist);
}

/* Completes op with err D8_EPARSE, code InvalidResponse and message. */
static void op_bad_answer(op_t *op, const azure_result_t *res, const char *message)
{
    azure_result_t out = *res;
    out.err = D8_EPARSE;
    out.error_code = "InvalidResponse";
    out.error_message = message;
    op_complete(op, &out, NULL);
}

/* A group PUT or GET answered: a GET must describe the group; a PUT was
 * accepted even when its echo cannot be read. */
static void group_done(op_t *op, azure__req_t *r, const azure_result_t *res)
{
    azure_group_t g;
    int have = r->resp.len > 0 && azure_decode_group(r->resp.data, r->resp.len, &g) == 0;
    if (!have && op->kind == AZ_OP_GROUP_GET) {
        op_bad_answer(op, res, "the container group answer is not JSON");
        return;
    }
    op_complete(op, res, have ? &g : NULL);
    if (have)
        azure_group_release(&g);
}

/* A share PUT, GET or PATCH answered; like group_done. */
static void share_done(op_t *op, azure__req_t *r, const azure_result_t *res)
{
    azure_share_t s;
    int have = r->resp.len > 0 && azure_decode_share(r->resp.data, r->resp.len, &s) == 0;
    if (!have && op->kind == AZ_OP_SHARE_GET) {
        op_bad_answer(op, res, "the file share answer is not JSON");
        return;
    }
    op_complete(op, res, have ? &s : NULL);
    if (have)
        azure_share_release(&s);
}

static void operation_done(op_t *op, azure__req_t *r, const azure_result_t *res)
{
    azure_operation_t st;
    if (azure_decode_operation(r->resp.data, r->resp.len, &st) < 0) {
        op_bad_answer(op, res, "the operation status answer has no status");
        return;
    }
    op_complete(op, res, &st);
    azure_operation_release(&st);
}

static void account_done(op_t *op, azure__req_t *r, const azure_result_t *res)
{
    azure_storage_account_t a;
    if (azure_decode_storage_account(r->resp.data, r->resp.len, &a) < 0) {
        op_bad_answer(op, res, "the storage account answer is not JSON");
        return;
    }
    op_complete(op, res, &a);
    azure_storage_account_release(&a);
}

/* A logs GET answered: Logs {"content"} (absent content: an empty log). */
static void logs_done(op_t *op, azure__req_t *r, const azure_result_t *res)
{
    cJSON *j = r->resp.len ? cJSON_ParseWithLength(r->resp.data, r->resp.len) : NULL;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (!cJSON_IsObject(j) || (content && !cJSON_IsString(content) && !cJSON_IsNull(content))) {
        cJSON_Delete(j);
        op_bad_answer(op, res, "the container logs answer is not a Logs object");
        return;
    }
    op_complete(op, res, cJSON_IsString(content) ? content->valuestring : "");
    cJSON_Delete(j);
}

/* A request of a typed op is final: decodes the answer for the op's kind
 * and completes the op (a list may send its next page instead). */
static void op_req_done(azure__req_t *r, const azure_result_t *res)
{
    op_t *op = r->ctx;
    if (res->err < 0) {
        op_complete(op, res, NULL);
        return;
    }
    switch (op->kind) {
    case AZ_OP_GROUP_LIST:
    case AZ_OP_SHARE_LIST:
        page_done(op, r, res);
        break;
    case AZ_OP_GROUP_PUT:
    case AZ_OP_GROUP_GET:
        group_done(op, r, res);
        break;
    case AZ_OP_SHARE_PUT:
    case AZ_OP_SHARE_GET:
    case AZ_OP_SHARE_PATCH:
        share_done(op, r, res);
        break;
    case AZ_OP_OPERATION_GET:
        operation_done(op, r, res);
        break;
    case AZ_OP_ACCOUNT_GET:
        account_done(op, r, res);
        break;
    case AZ_OP_CONTAINER_LOGS:
        logs_done(op, r, res);
        break;
    default:
        op_complete(op, res, NULL);
        break;
    }
}

/* ------------------------------------------------------------ key cache */

static azure__key_entry_t *key_entry(azure_client_t *c, const char *sub, const char *rg,
                                     const char *acct, int create)
{
    for (d8_list_t *it = c->keys.next; it != &c->keys; it = it->next) {
        azure__key_entry_t *k = d8_container_of(it, azure__key_entry_t, link);
        if (strcmp(k->sub, sub) == 0 && strcmp(k->rg, rg) == 0 && strcmp(k->acct, acct) == 0)
            return k;
    }
    if (!create)
        return NULL;
    azure__key_entry_t *k = d8_xcalloc(1, sizeof(*k));
    k->sub = d8_xstrdup(sub);
    k->rg = d8_xstrdup(rg);
    k->acct = d8_xstrdup(acct);
    d8_list_init(&k->waiters);
    d8_list_push(&c->keys, &k->link);
    return k;
}

void azure__keys_release(azure_client_t *c)
{
    while (!d8_list_empty(&c->keys)) {
        azure__key_entry_t *k = d8_container_of(c->keys.next, azure__key_entry_t, link);
        d8_list_del(&k->link);
        free(k->sub);
        free(k->rg);
        free(k->acct);
        azure__free_secret(k->key);
        free(k);
    }
}

void azure_storage_key_forget(azure_client_t *c, const azure_scope_t *s)
{
    if (!c || !s || !s->subscription_id || !s->resource_group || !s->storage_account)
        return;
    azure__key_entry_t *k =
        key_entry(c, s->subscription_id, s->resource_group, s->storage_account, 0);
    if (k) {
        azure__free_secret(k->key);
        k->key = NULL;
    }
}

/* Joins the two halves of a group body around the (JSON-escaped) key and
 * sends the PUT. */
static void group_put_with_key(op_t *op, const char *key)
{
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_reserve(&b, op->pre.len + op->post.len + 6 * strlen(key) + 16);
    d8_buf_append(&b, op->pre.data, op->pre.len);
    d8_buf_json_str(&b, key);
    d8_buf_append(&b, op->post.data, op->post.len);
    op_add_secret(op, key);
    wipe_buf(&op->pre);
    wipe_buf(&op->post);
    size_t len;
    char *body = d8_buf_detach(&b, &len);
    char *url = op->url;
    op->url = NULL;
    op_submit(op, AZ_OP_GROUP_PUT, url, body, len);
}

/* listKeys answered: caches the first key and sends every group PUT
 * that waited for it, or fails them all with listKeys' error. */
static void keys_done(azure__req_t *r, const azure_result_t *res)
{
    azure_client_t *c = r->c;
    azure__key_entry_t *k = r->ctx;
    k->fetching = 0;
    azure_result_t out = *res;
    if (res->err == 0) {
        char *key = NULL;
        if (azure__decode_keys(r->resp.data, r->resp.len, &key) == 0) {
            azure__free_secret(k->key);
            k->key = key;
            k->fetched_ms = d8_mono_ms();
        } else {
            out.err = D8_EPARSE;
            out.error_code = "InvalidResponse";
            out.error_message = "listKeys answered without a key";
        }
    }
    d8_list_t local;
    d8_list_init(&local);
    while (!d8_list_empty(&k->waiters)) {
        d8_list_t *n = k->waiters.next;
        d8_list_del(n);
        d8_list_push(&local, n);
    }
    while (!d8_list_empty(&local)) {
        op_t *op = d8_container_of(local.next, op_t, link);
        d8_list_del(&op->link);
        if (out.err == 0 && k->key && !c->closing) {
            group_put_with_key(op, k->key);
        } else if (out.err == 0) {
            op_fail(op, D8_ECANCELED, "", "the Azure client is shutting down");
        } else {
            op_complete(op, &out, NULL);
        }
    }
}

/* ------------------------------------------------------------ groups */

int azure_group_put(azure_client_t *c, const azure_scope_t *s, const azure_group_spec_t *spec,
                    azure_prio_t prio, azure_group_cb cb, void *ud)
{
    int rc = precheck(c, s, spec && spec->share_name, (const void *)cb);
    if (rc < 0)
        return rc;
    if (!spec || !azure__valid_name(spec->name, 63) || !s->region || !s->region[0] ||
        (spec->share_name && !azure__valid_name(spec->share_name, 63)))
        return D8_EINVAL;
    int need_key = spec->share_name && spec->share_name[0] && !spec->storage_key;
    d8_buf_t body;
    d8_buf_init(&body);
    rc = azure_group_body(spec, s->region, s->storage_account,
                          need_key ? KEY_MARKER : spec->storage_key, &body);
    if (rc < 0) {
        wipe_buf(&body);
        return rc;
    }
    /* The key goes last in the body (volumes), so the last occurrence of
     * the quoted marker is ours even if a user value contains it. */
    const char *q = "\"" KEY_MARKER "\"";
    char *hit = NULL;
    if (need_key) {
        for (char *p = body.data; (p = strstr(p, q)) != NULL; p++)
            hit = p;
        if (!hit) {
            wipe_buf(&body);
            return D8_EINVAL;
        }
    }
    op_t *op = op_new(c, AZ_OP_GROUP_PUT, prio, s, spec->name, ud);
    op->group_cb = cb;
    op_add_secret(op, spec->registry_password);
    for (size_t i = 0; i < spec->nsecure_env; i++)
        op_add_secret(op, spec->secure_env[i].value);
    op_add_secret(op, spec->storage_key);
    char *url = group_url(c, s, spec->name, NULL);
    if (!hit) {
        size_t len;
        char *b = d8_buf_detach(&body, &len);
        op_submit(op, AZ_OP_GROUP_PUT, url, b, len);
        return 0;
    }
    d8_buf_init(&op->pre);
    d8_buf_init(&op->post);
    size_t at = (size_t)(hit - body.data);
    size_t after = at + strlen(q);
    d8_buf_reserve(&op->pre, at + 1);
    d8_buf_reserve(&op->post, body.len - after + 1);
    d8_buf_append(&op->pre, body.data, at);
    d8_buf_append(&op->post, body.data + after, body.len - after);
    wipe_buf(&body);
    op->url = url;

    azure__key_entry_t *k =
        key_entry(c, s->subscription_id, s->resource_group, s->storage_account, 1);
    uint64_t now = d8_mono_ms();
    if (k->key && now - k->fetched_ms < c->key_ttl_ms) {
        group_put_with_key(op, k->key);
        return 0;
    }
    d8_list_push(&k->waiters, &op->link);
    if (!k->fetching) {
        /* Single flight: one listKeys per account, every waiting PUT
         * continues when it answers. */
        k->fetching = 1;
        azure__req_t *r =
            azure__req_new(c, AZ_OP_LIST_KEYS, (int)prio, keys_url(c, k->sub, k->rg, k->acct), NULL,
                           0, keys_done, k);
        snprintf(r->resource, sizeof(r->resource), "%s", k->acct);
        azure__req_submit(r, s);
    }
    return 0;
}

static int simple_group_op(azure_client_t *c, azure__op_t kind, const azure_scope_t *s,
                           const char *name, const char *action, azure_prio_t prio,
                           azure_done_cb dcb, azure_group_cb gcb, void *ud)
{
    int rc = precheck(c, s, 0, dcb ? (const void *)dcb : (const void *)gcb);
    if (rc < 0)
        return rc;
    if (!azure__valid_name(name, 63))
        return D8_EINVAL;
    op_t *op = op_new(c, kind, prio, s, name, ud);
    op->done_cb = dcb;
    op->group_cb = gcb;
    op_submit(op, kind, group_url(c, s, name, action), NULL, 0);
    return 0;
}

int azure_group_get(azure_client_t *c, const azure_scope_t *s, const char *name, azure_prio_t prio,
                    azure_group_cb cb, void *ud)
{
    return simple_group_op(c, AZ_OP_GROUP_GET, s, name, NULL, prio, NULL, cb, ud);
}

int azure_group_delete(azure_client_t *c, const azure_scope_t *s, const char *name,
                       azure_prio_t prio, azure_done_cb cb, void *ud)
{
    return simple_group_op(c, AZ_OP_GROUP_DELETE, s, name, NULL, prio, cb, NULL, ud);
}

int azure_group_start(azure_client_t *c, const azure_scope_t *s, const char *name,
                      azure_prio_t prio, azure_done_cb cb, void *ud)
{
    return simple_group_op(c, AZ_OP_GROUP_START, s, name, "start", prio, cb, NULL, ud);
}

int azure_group_stop(azure_client_t *c, const azure_scope_t *s, const char *name, azure_prio_t prio,
                     azure_done_cb cb, void *ud)
{
    return simple_group_op(c, AZ_OP_GROUP_STOP, s, name, "stop", prio, cb, NULL, ud);
}

int azure_group_list(azure_client_t *c, const azure_scope_t *s, azure_prio_t prio,
                     azure_group_list_cb cb, void *ud)
{
    int rc = precheck(c, s, 0, (const void *)cb);
    if (rc < 0)
        return rc;
    op_t *op = op_new(c, AZ_OP_GROUP_LIST, prio, s, NULL, ud);
    op->glist_cb = cb;
    op_submit(op, AZ_OP_GROUP_LIST, group_url(c, s, NULL, NULL), NULL, 0);
    return 0;
}

/* ------------------------------------------------------------ shares */

int azure_share_put(azure_client_t *c, const azure_scope_t *s, const azure_share_spec_t *spec,
                    azure_prio_t prio, azure_share_cb cb, void *ud)
{
    int rc = precheck(c, s, 1, (const void *)cb);
    if (rc < 0)
        return rc;
    if (!spec || !azure__valid_name(spec->name, 63))
        return D8_EINVAL;
    d8_buf_t body;
    d8_buf_init(&body);
    rc = azure_share_body(spec, &body);
    if (rc < 0) {
        d8_buf_release(&body);
        return rc;
    }
    op_t *op = op_new(c, AZ_OP_SHARE_PUT, prio, s, spec->name, ud);
    op->share_cb = cb;
    size_t len;
    char *b = d8_buf_detach(&body, &len);
    op_submit(op, AZ_OP_SHARE_PUT, share_url(c, s, spec->name, NULL), b, len);
    return 0;
}

static int simple_share_op(azure_client_t *c, azure__op_t kind, const azure_scope_t *s,
                           const char *name, azure_prio_t prio, azure_done_cb dcb,
                           azure_share_cb scb, void *ud, char *body, size_t blen)
{
    int rc = precheck(c, s, 1, dcb ? (const void *)dcb : (const void *)scb);
    if (rc == 0 && !azure__valid_name(name, 63))
        rc = D8_EINVAL;
    if (rc < 0) {
        free(body);
        return rc;
    }
    op_t *op = op_new(c, kind, prio, s, name, ud);
    op->done_cb = dcb;
    op->share_cb = scb;
    op_submit(op, kind, share_url(c, s, name, NULL), body, blen);
    return 0;
}

int azure_share_get(azure_client_t *c, const azure_scope_t *s, const char *name, azure_prio_t prio,
                    azure_share_cb cb, void *ud)
{
    return simple_share_op(c, AZ_OP_SHARE_GET, s, name, prio, NULL, cb, ud, NULL, 0);
}

int azure_share_delete(azure_client_t *c, const azure_scope_t *s, const char *name,
                       azure_prio_t prio, azure_done_cb cb, void *ud)
{
    return simple_share_op(c, AZ_OP_SHARE_DELETE, s, name, prio, cb, NULL, ud, NULL, 0);
}

int azure_share_set_quota(azure_client_t *c, const azure_scope_t *s, const char *name, int quota_gb,
                          azure_prio_t prio, azure_share_cb cb, void *ud)
{
    d8_buf_t body;
    d8_buf_init(&body);
    if (azure_share_quota_body(quota_gb, &body) < 0) {
        d8_buf_release(&body);
        return D8_EINVAL;
    }
    size_t len;
    char *b = d8_buf_detach(&body, &len);
    return simple_share_op(c, AZ_OP_SHARE_PATCH, s, name, prio, NULL, cb, ud, b, len);
}

int azure_share_list(azure_client_t *c, const azure_scope_t *s, int expand_metadata,
                     azure_prio_t prio, azure_share_list_cb cb, void *ud)
{
    int rc = precheck(c, s, 1, (const void *)cb);
    if (rc < 0)
        return rc;
    op_t *op = op_new(c, AZ_OP_SHARE_LIST, prio, s, NULL, ud);
    op->slist_cb = cb;
    op_submit(op, AZ_OP_SHARE_LIST,
              share_url(c, s, NULL, expand_metadata ? "&$expand=metadata" : NULL), NULL, 0);
    return 0;
}

/* ------------------------------------------------------------ accounts */

int azure_storage_account_get(azure_client_t *c, const azure_scope_t *s, azure_prio_t prio,
                              azure_storage_account_cb cb, void *ud)
{
    int rc = precheck(c, s, 1, (const void *)cb);
    if (rc < 0)
        return rc;
    op_t *op = op_new(c, AZ_OP_ACCOUNT_GET, prio, s, s->storage_account, ud);
    op->acct_cb = cb;
    op_submit(op, AZ_OP_ACCOUNT_GET, account_url(c, s), NULL, 0);
    return 0;
}

int azure_container_logs(azure_client_t *c, const azure_scope_t *s, const char *group,
                         const char *container, int tail, azure_prio_t prio, azure_logs_cb cb,
                         void *ud)
{
    int rc = precheck(c, s, 0, (const void *)cb);
    if (rc < 0)
        return rc;
    if (!azure__valid_name(group, 63) || !azure__valid_name(container, 63))
        return D8_EINVAL;
    op_t *op = op_new(c, AZ_OP_CONTAINER_LOGS, prio, s, group, ud);
    op->logs_cb = cb;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b,
                  "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.ContainerInstance/"
                  "containerGroups/%s/containers/%s/logs?api-version=%s",
                  c->arm_endpoint, s->subscription_id, s->resource_group, group, container,
                  c->aci_api_version);
    if (tail > 0)
        d8_buf_printf(&b, "&tail=%d", tail);
    op_submit(op, AZ_OP_CONTAINER_LOGS, d8_buf_detach(&b, NULL), NULL, 0);
    return 0;
}

/* ------------------------------------------------------------ operations */

int azure_operation_get(azure_client_t *c, const azure_scope_t *s, const char *url,
                        azure_prio_t prio, azure_operation_cb cb, void *ud)
{
    int rc = precheck(c, s, 0, (const void *)cb);
    if (rc < 0)
        return rc;
    if (!url || !azure__same_origin(c->arm_endpoint, url) || strlen(url) > 4096)
        return D8_EINVAL;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return D8_EINVAL;
    op_t *op = op_new(c, AZ_OP_OPERATION_GET, prio, s, "operation", ud);
    op->oper_cb = cb;
    op_submit(op, AZ_OP_OPERATION_GET, d8_xstrdup(url), NULL, 0);
    return 0;
}
