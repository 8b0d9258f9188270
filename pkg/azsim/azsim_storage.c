/*
 * pkg/azsim: storage accounts (research notes item 8).
 *
 * StorageAccounts_GetProperties answers the shape of the spec's example
 * with the kind, SKU, location and largeFileSharesState of the account's
 * settings (azsim_storage_opts_t); the SKU decides the share sizes the
 * account takes (Learn, Azure Files scalability targets). ListKeys answers
 * the keys in force: POST /_azsim/regenerateKey replaces one as
 * StorageAccounts_RegenerateKey would, so that mounts with the old key
 * fail (strict mounts) and listKeys shows the new one. Management locks
 * (Learn, Lock your resources) on an account or a share, and a share's
 * snapshots, are switched by POST /_azsim/accounts and /_azsim/shares.
 */
#include "azsim_int.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCOUNT_TYPE "Microsoft.Storage/storageAccounts"

/* The account's state, or NULL when the model has none yet. */
static azsim__account_t *account_find(const azsim_t *sim, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s", name);
    return (azsim__account_t *)azsim__table_get(&sim->accounts, azsim__lower(key));
}

azsim__account_t *azsim__account_state(azsim_t *sim, const char *name)
{
    azsim__account_t *a = account_find(sim, name);
    if (!a) {
        a = d8_xcalloc(1, sizeof(*a));
        a->key_wall[0] = a->key_wall[1] = sim->wall0;
        azsim__table_put(&sim->accounts, &a->e, name);
    }
    return a;
}

void azsim__account_key(const azsim_t *sim, const char *account, int n, char out[96])
{
    const azsim__account_t *a = account_find(sim, account);
    unsigned gen = a ? a->key_gen[n - 1] : 0;
    char seed[256];
    /* Generation 0 is the key of a fresh account: the same for a seed
     * across restarts, as the keys of a real account are. */
    if (gen)
        snprintf(seed, sizeof(seed), "azsim-account-key|%llu|%s|%d|%u",
                 (unsigned long long)sim->o.seed, account, n, gen);
    else
        snprintf(seed, sizeof(seed), "azsim-account-key|%llu|%s|%d",
                 (unsigned long long)sim->o.seed, account, n);
    azsim__lower(seed);
    unsigned char md[SHA512_DIGEST_LENGTH];
    SHA512((const unsigned char *)seed, strlen(seed), md);
    d8_buf_t b;
    d8_buf_init(&b);
    azsim__b64(&b, md, sizeof(md), 0);
    snprintf(out, 96, "%s", b.data);
    d8_buf_release(&b);
}

int azsim__check_account(azsim__rq_t *q)
{
    if (azsim__valid_account_name(q->seg[7]))
        return 1;
    azsim__arm_error(q->resp, 400, "AccountNameInvalid",
                     "%s is not a valid storage account name. Storage account name must be "
                     "between 3 and 24 characters in length and use numbers and lower-case "
                     "letters only.",
                     q->seg[7]);
    return 0;
}

/* The "keys" of a ListKeys answer: both keys in force, with the time
 * each was (re)generated. */
static cJSON *keys_json(azsim_t *sim, const char *account)
{
    const azsim__account_t *a = account_find(sim, account);
    cJSON *j = cJSON_CreateObject();
    cJSON *keys = cJSON_AddArrayToObject(j, "keys");
    for (int i = 1; i <= 2; i++) {
        char k[96], ts[32];
        azsim__account_key(sim, account, i, k);
        d8_rfc3339(a ? a->key_wall[i - 1] : sim->wall0, ts);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "creationTime", ts);
        cJSON_AddStringToObject(o, "keyName", i == 1 ? "key1" : "key2");
        cJSON_AddStringToObject(o, "value", k);
        cJSON_AddStringToObject(o, "permissions", "Full");
        cJSON_AddItemToArray(keys, o);
    }
    return j;
}

/* StorageAccounts_ListKeys (a POST: a ReadOnly lock forbids it). */
static void list_keys(azsim__rq_t *q)
{
    if (!azsim__check_account(q) || azsim__locked(q, NULL, 'w'))
        return;
    cJSON *j = keys_json(q->sim, q->seg[7]);
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
}

/* The properties of a StorageAccount that matter here, in the shape of
 * the spec's example StorageAccountGetProperties.json. */
static cJSON *account_props(azsim_t *sim, const azsim_account_opts_t *s, const char *name)
{
    const azsim__account_t *a = account_find(sim, name);
    char ts[32], url[128];
    cJSON *p = cJSON_CreateObject();
    cJSON *kt = cJSON_AddObjectToObject(p, "keyCreationTime");
    for (int i = 0; i < 2; i++) {
        d8_rfc3339(a ? a->key_wall[i] : sim->wall0, ts);
        cJSON_AddStringToObject(kt, i ? "key2" : "key1", ts);
    }
    d8_rfc3339(sim->wall0, ts);
    cJSON_AddStringToObject(p, "creationTime", ts);
    cJSON *ep = cJSON_AddObjectToObject(p, "primaryEndpoints");
    static const char *const services[] = {"web", "dfs", "blob", "file", "queue", "table"};
    int files_only = azsim__ieq(s->kind, "FileStorage");
    for (size_t i = files_only ? 3 : 0; i < (files_only ? 4u : 6u); i++) {
        snprintf(url, sizeof(url), "https://%s.%s.core.windows.net/", name, services[i]);
        azsim__lower(url);
        cJSON_AddStringToObject(ep, services[i], url);
    }
    cJSON_AddStringToObject(p, "primaryLocation", s->location);
    cJSON_AddStringToObject(p, "provisioningState", "Succeeded");
    cJSON *enc = cJSON_AddObjectToObject(p, "encryption");
    cJSON *file = cJSON_AddObjectToObject(cJSON_AddObjectToObject(enc, "services"), "file");
    cJSON_AddStringToObject(file, "keyType", "Account");
    cJSON_AddBoolToObject(file, "enabled", 1);
    cJSON_AddStringToObject(file, "lastEnabledTime", ts);
    cJSON_AddStringToObject(enc, "keySource", "Microsoft.Storage");
    cJSON_AddStringToObject(p, "statusOfPrimary", "available");
    cJSON_AddBoolToObject(p, "supportsHttpsTrafficOnly", 1);
    /* Absent unless enabled, as ARM answers for an account never enabled. */
    if (s->large_file_shares)
        cJSON_AddStringToObject(p, "largeFileSharesState", "Enabled");
    cJSON_AddBoolToObject(p, "allowSharedKeyAccess", s->shared_key_access);
    cJSON_AddStringToObject(p, "publicNetworkAccess", s->public_disabled ? "Disabled" : "Enabled");
    cJSON *acl = cJSON_AddObjectToObject(p, "networkAcls");
    cJSON_AddStringToObject(acl, "bypass", "AzureServices");
    cJSON_AddArrayToObject(acl, "virtualNetworkRules");
    cJSON_AddArrayToObject(acl, "ipRules");
    cJSON_AddStringToObject(acl, "defaultAction", s->network_deny ? "Deny" : "Allow");
    return p;
}

/* StorageAccounts_GetProperties. */
static void account_get(azsim__rq_t *q)
{
    if (!azsim__check_account(q))
        return;
    const azsim_account_opts_t *s = azsim__account_opts(q->sim, q->seg[7]);
    d8_buf_t id;
    d8_buf_init(&id);
    d8_buf_printf(&id, "/subscriptions/%s/resourceGroups/%s/providers/" ACCOUNT_TYPE "/%s",
                  q->seg[1], q->seg[3], q->seg[7]);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", id.data);
    cJSON_AddStringToObject(j, "kind", s->kind);
    cJSON_AddStringToObject(j, "location", s->location);
    cJSON_AddStringToObject(j, "name", q->seg[7]);
    cJSON_AddItemToObject(j, "properties", account_props(q->sim, s, q->seg[7]));
    cJSON *sku = cJSON_AddObjectToObject(j, "sku");
    cJSON_AddStringToObject(sku, "name", s->sku);
    cJSON_AddStringToObject(sku, "tier", azsim__account_premium(s) ? "Premium" : "Standard");
    cJSON_AddObjectToObject(j, "tags");
    cJSON_AddStringToObject(j, "type", ACCOUNT_TYPE);
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
    d8_buf_release(&id);
}

void azsim__account_route(azsim__rq_t *q)
{
    if (q->op == AZSIM__OP_SA_GET)
        account_get(q);
    else
        list_keys(q);
}

int azsim__quota_fits(azsim__rq_t *q, int quota)
{
    const azsim_account_opts_t *s = azsim__account_opts(q->sim, q->seg[7]);
    int premium = azsim__account_premium(s);
    int min = premium ? 100 : 1;
    int max = premium || s->large_file_shares ? 102400 : 5120;
    if (quota >= min && quota <= max)
        return 1;
    /* No ARM error of its own is documented: Azure answers as the data
     * plane does (observed through ARM for a premium share below 100). */
    azsim__arm_error(q->resp, 400, "InvalidHeaderValue",
                     "The value for one of the HTTP headers is not in the correct format.");
    return 0;
}

/* Whether lock level l forbids what ('d'elete or 'w'rite). */
static int forbids(char l, int what)
{
    return l == 'R' || (l == 'D' && what == 'd');
}

int azsim__locked(azsim__rq_t *q, const azsim__share_t *s, int what)
{
    const azsim__account_t *a = account_find(q->sim, q->seg[7]);
    int by_account = a && forbids(a->lock, what);
    if (!by_account && !(s && forbids(s->lock, what)))
        return 0;
    /* The scope of the request: its resource, without an action segment. */
    size_t n = q->nseg - (q->op == AZSIM__OP_SA_LISTKEYS || q->op == AZSIM__OP_FS_RESTORE);
    d8_buf_t scope, locked;
    d8_buf_init(&scope);
    d8_buf_init(&locked);
    for (size_t i = 0; i < n; i++)
        d8_buf_printf(&scope, "/%s", q->seg[i]);
    if (by_account)
        d8_buf_printf(&locked, "/subscriptions/%s/resourceGroups/%s/providers/" ACCOUNT_TYPE "/%s",
                      q->seg[1], q->seg[3], q->seg[7]);
    else
        d8_buf_puts(&locked, s->id);
    azsim__arm_error(q->resp, 409, "ScopeLocked",
                     "The scope '%s' cannot perform %s operation because following scope(s) are "
                     "locked: '%s'. Please remove the lock and try again.",
                     scope.data, what == 'd' ? "delete" : "write", locked.data);
    d8_buf_release(&scope);
    d8_buf_release(&locked);
    return 1;
}

/* ---- the control API ---------------------------------------------------- */

/* A lock level by name: 'D', 'R', 0 for None; -1 when it is none of them. */
static int lock_level(const cJSON *v)
{
    if (!cJSON_IsString(v))
        return -1;
    return azsim__ieq(v->valuestring, "CanNotDelete") ? 'D'
           : azsim__ieq(v->valuestring, "ReadOnly")   ? 'R'
           : azsim__ieq(v->valuestring, "None")       ? 0
                                                      : -1;
}

static const char *lock_name(char l)
{
    return l == 'D' ? "CanNotDelete" : l == 'R' ? "ReadOnly" : "None";
}

/* The JSON object body of a control POST (owned) with a string
 * "account" (and "share" when need_share), or NULL after answering 400
 * with what it must have (required). */
static cJSON *ctl_body(azsim__rq_t *q, int need_share, const char *required)
{
    cJSON *j = cJSON_ParseWithLength(q->req->body, q->req->body_len);
    const cJSON *acct = cJSON_GetObjectItem(j, "account");
    const cJSON *share = cJSON_GetObjectItem(j, "share");
    if (cJSON_IsObject(j) && cJSON_IsString(acct) && (!need_share || cJSON_IsString(share)))
        return j;
    cJSON_Delete(j);
    azsim__arm_error(q->resp, 400, "InvalidRequest", "The body must be a JSON object with %s.",
                     required);
    return NULL;
}

/* Reads the switches of POST /_azsim/shares into *snaps, *leased, *lock
 * (unchanged when absent). 1, or answers 400 and returns 0. */
static int share_switches(azsim__rq_t *q, const cJSON *j, int *snaps, int *leased, int *lock)
{
    for (const cJSON *it = j->child; it; it = it->next) {
        const char *k = it->string;
        int snap = strcmp(k, "snapshots") == 0, lsnap = strcmp(k, "leasedSnapshots") == 0;
        if (snap || lsnap) {
            double v = it->valuedouble;
            if (!cJSON_IsNumber(it) || v < 0 || v > 200 || v != (double)(int)v) {
                azsim__arm_error(q->resp, 400, "InvalidRequest",
                                 "%s must be an integer from 0 to 200 (a share's snapshot limit).",
                                 k);
                return 0;
            }
            *(snap ? snaps : leased) = (int)v;
        } else if (strcmp(k, "lock") == 0) {
            if ((*lock = lock_level(it)) < 0) {
                azsim__arm_error(q->resp, 400, "InvalidRequest",
                                 "lock must be CanNotDelete, ReadOnly or None.");
                return 0;
            }
        } else if (strcmp(k, "marker") == 0) {
            if (!cJSON_IsString(it) || strlen(it->valuestring) > 256) {
                azsim__arm_error(q->resp, 400, "InvalidRequest",
                                 "marker must be a string of at most 256 characters.");
                return 0;
            }
        } else if (strcmp(k, "account") != 0 && strcmp(k, "share") != 0) {
            azsim__arm_error(q->resp, 400, "InvalidRequest",
                             "Unknown field '%s' (account, share, snapshots, leasedSnapshots, "
                             "lock, marker).",
                             k);
            return 0;
        }
    }
    return 1;
}

void azsim__ctl_shares(azsim__rq_t *q)
{
    cJSON *j = ctl_body(q, 1, "account and share names");
    if (!j)
        return;
    const char *acct = cJSON_GetObjectItem(j, "account")->valuestring;
    const char *name = cJSON_GetObjectItem(j, "share")->valuestring;
    azsim__share_t *s = azsim__find_share(q->sim, "", "", acct, name);
    int snaps = s ? s->snapshots : 0, leased = s ? s->leased_snapshots : 0;
    int lock = s ? s->lock : 0;
    if (!s) {
        azsim__arm_error(q->resp, 404, "ShareNotFound", "The specified share does not exist.");
    } else if (share_switches(q, j, &snaps, &leased, &lock)) {
        s->snapshots = snaps;
        s->leased_snapshots = leased;
        s->lock = (char)lock;
        const cJSON *marker = cJSON_GetObjectItem(j, "marker");
        if (marker)
            d8_set_str(&s->marker, marker->valuestring);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "id", s->id);
        cJSON_AddNumberToObject(out, "snapshots", s->snapshots);
        cJSON_AddNumberToObject(out, "leasedSnapshots", s->leased_snapshots);
        cJSON_AddStringToObject(out, "lock", lock_name(s->lock));
        if (s->marker)
            cJSON_AddStringToObject(out, "marker", s->marker);
        azsim__json_body(q->resp, 200, out);
        cJSON_Delete(out);
    }
    cJSON_Delete(j);
}

void azsim__ctl_accounts(azsim__rq_t *q)
{
    cJSON *j = ctl_body(q, 0, "an account name");
    if (!j)
        return;
    const char *acct = cJSON_GetObjectItem(j, "account")->valuestring;
    const cJSON *lock = cJSON_GetObjectItem(j, "lock");
    int level = lock ? lock_level(lock) : 0;
    if (!azsim__valid_account_name(acct) || level < 0 || cJSON_GetArraySize(j) > 2 ||
        (cJSON_GetArraySize(j) == 2 && !lock)) {
        azsim__arm_error(q->resp, 400, "InvalidRequest",
                         "Give a valid account name and lock: CanNotDelete, ReadOnly or None.");
    } else {
        azsim__account_t *a = azsim__account_state(q->sim, acct);
        if (lock)
            a->lock = (char)level;
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "account", acct);
        cJSON_AddStringToObject(out, "lock", lock_name(a->lock));
        azsim__json_body(q->resp, 200, out);
        cJSON_Delete(out);
    }
    cJSON_Delete(j);
}

void azsim__ctl_regenerate_key(azsim__rq_t *q)
{
    cJSON *j = ctl_body(q, 0, "an account name and keyName key1 or key2");
    if (!j)
        return;
    const char *acct = cJSON_GetObjectItem(j, "account")->valuestring;
    const cJSON *kn = cJSON_GetObjectItem(j, "keyName");
    int n = !cJSON_IsString(kn)                   ? 0
            : azsim__ieq(kn->valuestring, "key1") ? 1
            : azsim__ieq(kn->valuestring, "key2") ? 2
                                                  : 0;
    if (!azsim__valid_account_name(acct) || n == 0 || cJSON_GetArraySize(j) != 2) {
        azsim__arm_error(q->resp, 400, "InvalidRequest",
                         "The body must be {\"account\":<name>,\"keyName\":\"key1\"|\"key2\"}.");
    } else {
        azsim__account_t *a = azsim__account_state(q->sim, acct);
        a->key_gen[n - 1]++;
        a->key_wall[n - 1] = q->wall;
        /* StorageAccounts_RegenerateKey answers the keys, as ListKeys does. */
        cJSON *out = keys_json(q->sim, acct);
        azsim__json_body(q->resp, 200, out);
        cJSON_Delete(out);
    }
    cJSON_Delete(j);
}
