/*
 * pkg/azsim: the settings of the Storage behaviours and of ARM paging
 * (azsim.h, azsim_storage_opts_t and azsim_paging_opts_t): defaults, deep
 * copies, and one reader of each JSON form, which both the config file
 * (`storage:`, `paging:`, converted from YAML by azsim_config.c) and
 * POST /_azsim/storage and /_azsim/paging go through.
 */
#include "azsim_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The enums of StorageAccount.kind and SkuName in the Storage spec
 * (storage.json and common.json, 2025-01-01). */
static const char *const kinds[] = {"Storage",     "StorageV2",        "BlobStorage",
                                    "FileStorage", "BlockBlobStorage", NULL};
static const char *const skus[] = {
    "Standard_LRS",   "Standard_GRS",    "Standard_RAGRS",  "Standard_ZRS",   "Premium_LRS",
    "Premium_ZRS",    "Standard_GZRS",   "Standard_RAGZRS", "StandardV2_LRS", "StandardV2_GRS",
    "StandardV2_ZRS", "StandardV2_GZRS", "PremiumV2_LRS",   "PremiumV2_ZRS",  NULL};

/* An account not listed: shares of 1..102400 GiB, as before accounts
 * were modelled. */
static const azsim_account_opts_t default_account = {.name = (char *)"",
                                                     .kind = (char *)"StorageV2",
                                                     .sku = (char *)"Standard_LRS",
                                                     .location = (char *)"eastus",
                                                     .large_file_shares = 1,
                                                     .shared_key_access = 1,
                                                     .share_retention_days = 7};

void azsim__storage_opts_init(azsim_storage_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->ascii_metadata = 1;
}

static void free_accounts(azsim_account_opts_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].name);
        free(a[i].kind);
        free(a[i].sku);
        free(a[i].location);
    }
    free(a);
}

void azsim__storage_opts_release(azsim_storage_opts_t *o)
{
    free_accounts(o->accounts, o->naccounts);
    azsim__storage_opts_init(o);
}

static void copy_account(azsim_account_opts_t *dst, const azsim_account_opts_t *src)
{
    dst->name = d8_xstrdup(src->name);
    dst->kind = d8_xstrdup(src->kind);
    dst->sku = d8_xstrdup(src->sku);
    dst->location = d8_xstrdup(src->location);
    dst->large_file_shares = src->large_file_shares;
    dst->shared_key_access = src->shared_key_access;
    dst->network_deny = src->network_deny;
    dst->public_disabled = src->public_disabled;
    dst->share_retention_days = src->share_retention_days;
}

void azsim__storage_opts_copy(azsim_storage_opts_t *dst, const azsim_storage_opts_t *src)
{
    *dst = *src;
    dst->accounts = NULL;
    if (src->naccounts) {
        dst->accounts = d8_xcalloc(src->naccounts, sizeof(*dst->accounts));
        for (size_t i = 0; i < src->naccounts; i++)
            copy_account(&dst->accounts[i], &src->accounts[i]);
    }
}

const azsim_account_opts_t *azsim__account_opts(const azsim_t *sim, const char *name)
{
    for (size_t i = 0; i < sim->storage.naccounts; i++)
        if (azsim__ieq(sim->storage.accounts[i].name, name))
            return &sim->storage.accounts[i];
    return &default_account;
}

int azsim__account_premium(const azsim_account_opts_t *a)
{
    return azsim__istarts(a->sku, "Premium");
}

/* ---- reading ------------------------------------------------------------ */

static int bad(const cJSON **at, const cJSON *node, char *err, size_t errlen, const char *key,
               const char *msg)
{
    *at = node;
    snprintf(err, errlen, "%s: %s", key, msg);
    return -1;
}

/* The spelling of v in set (matched in any case), or NULL. */
static const char *one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (azsim__ieq(v, *set))
            return *set;
    return NULL;
}

/*
 * The members of an account that preflight reads: allowSharedKeyAccess,
 * networkDefaultAction (Allow|Deny), publicNetworkAccess
 * (Enabled|Disabled), shareDeleteRetentionDays (0 off, 1..365 as the
 * spec's DeleteRetentionPolicy.days). 1 when k is one of them (*rc then
 * says how reading it went).
 */
static int access_key(azsim_account_opts_t *a, const char *k, const cJSON *it, const cJSON **at,
                      char *err, size_t errlen, int *rc)
{
    const char *v = cJSON_IsString(it) ? it->valuestring : "";
    *rc = 0;
    if (strcmp(k, "allowSharedKeyAccess") == 0) {
        if (!cJSON_IsBool(it))
            *rc =
                bad(at, it, err, errlen, "accounts.allowSharedKeyAccess", "expected true or false");
        a->shared_key_access = cJSON_IsTrue(it);
    } else if (strcmp(k, "networkDefaultAction") == 0) {
        if (!azsim__ieq(v, "Allow") && !azsim__ieq(v, "Deny"))
            *rc =
                bad(at, it, err, errlen, "accounts.networkDefaultAction", "expected Allow or Deny");
        a->network_deny = azsim__ieq(v, "Deny");
    } else if (strcmp(k, "publicNetworkAccess") == 0) {
        if (!azsim__ieq(v, "Enabled") && !azsim__ieq(v, "Disabled"))
            *rc = bad(at, it, err, errlen, "accounts.publicNetworkAccess",
                      "expected Enabled or Disabled");
        a->public_disabled = azsim__ieq(v, "Disabled");
    } else if (strcmp(k, "shareDeleteRetentionDays") == 0) {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || !(d >= 0 && d <= 365) || floor(d) != d)
            *rc = bad(at, it, err, errlen, "accounts.shareDeleteRetentionDays",
                      "expected an integer from 0 (off) to 365");
        else
            a->share_retention_days = (int)d;
    } else {
        return 0;
    }
    return 1;
}

/* One member of an account mapping into a. */
static int account_key(azsim_account_opts_t *a, const cJSON *it, const cJSON **at, char *err,
                       size_t errlen)
{
    const char *k = it->string;
    const char *v = cJSON_IsString(it) ? it->valuestring : NULL;
    char **field = strcmp(k, "name") == 0       ? &a->name
                   : strcmp(k, "kind") == 0     ? &a->kind
                   : strcmp(k, "sku") == 0      ? &a->sku
                   : strcmp(k, "location") == 0 ? &a->location
                                                : NULL;
    int rc;
    if (access_key(a, k, it, at, err, errlen, &rc))
        return rc;
    if (strcmp(k, "largeFileShares") == 0) {
        if (!cJSON_IsBool(it))
            return bad(at, it, err, errlen, "accounts.largeFileShares", "expected true or false");
        a->large_file_shares = cJSON_IsTrue(it);
        return 0;
    }
    if (!field)
        return bad(at, it, err, errlen, k,
                   "unknown key in accounts (name, kind, sku, location, largeFileShares, "
                   "allowSharedKeyAccess, networkDefaultAction, publicNetworkAccess, "
                   "shareDeleteRetentionDays)");
    if (field == &a->kind && !(v && (v = one_of(v, kinds))))
        return bad(at, it, err, errlen, "accounts.kind",
                   "expected Storage, StorageV2, BlobStorage, FileStorage or BlockBlobStorage");
    if (field == &a->sku && !(v && (v = one_of(v, skus))))
        return bad(at, it, err, errlen, "accounts.sku",
                   "expected a SkuName of the spec (Standard_LRS, Premium_LRS, ...)");
    if (field == &a->name && !(v && azsim__valid_account_name(v)))
        return bad(at, it, err, errlen, "accounts.name",
                   "expected 3 to 24 lower-case letters and digits");
    if (!v || !v[0])
        return bad(at, it, err, errlen, k, "expected a non-empty string");
    free(*field);
    *field = d8_xstrdup(v);
    if (field == &a->location) {
        size_t o = 0;
        for (const char *p = *field; *p; p++)
            if (*p != ' ')
                (*field)[o++] = *p;
        (*field)[o] = '\0';
        azsim__lower(*field);
    }
    return 0;
}

/* One account mapping: omitted fields are those of an unlisted account;
 * FileStorage takes only Premium SKUs (as Azure creates them). */
static int read_account(azsim_account_opts_t *a, const cJSON *j, const cJSON **at, char *err,
                        size_t errlen)
{
    copy_account(a, &default_account);
    free(a->name);
    a->name = NULL;
    if (!cJSON_IsObject(j))
        return bad(at, j, err, errlen, "accounts", "expected a mapping");
    for (const cJSON *it = j->child; it; it = it->next)
        if (account_key(a, it, at, err, errlen) < 0)
            return -1;
    if (!a->name)
        return bad(at, j, err, errlen, "accounts", "name is required");
    if (azsim__ieq(a->kind, "FileStorage") && !azsim__account_premium(a))
        return bad(at, j, err, errlen, "accounts", "a FileStorage account needs a Premium sku");
    return 0;
}

/* accounts: a list replacing the old one. */
static int set_accounts(azsim_storage_opts_t *o, const cJSON *j, const cJSON **at, char *err,
                        size_t errlen)
{
    if (!cJSON_IsArray(j))
        return bad(at, j, err, errlen, "accounts", "expected a list of accounts");
    size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
    azsim_account_opts_t *l = d8_xcalloc(n ? n : 1, sizeof(*l));
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        if (read_account(&l[i], it, at, err, errlen) < 0) {
            free_accounts(l, i + 1);
            return -1;
        }
    }
    free_accounts(o->accounts, o->naccounts);
    o->accounts = l;
    o->naccounts = n;
    return 0;
}

int azsim__storage_opts_parse(azsim_storage_opts_t *o, const cJSON *j, const cJSON **at, char *err,
                              size_t errlen)
{
    *at = j;
    if (!cJSON_IsObject(j))
        return bad(at, j, err, errlen, "storage", "expected a mapping");
    for (const cJSON *it = j->child; it; it = it->next) {
        if (strcmp(it->string, "asciiMetadata") == 0) {
            if (!cJSON_IsBool(it))
                return bad(at, it, err, errlen, "asciiMetadata", "expected true or false");
            o->ascii_metadata = cJSON_IsTrue(it);
        } else if (strcmp(it->string, "accounts") == 0) {
            if (set_accounts(o, it, at, err, errlen) < 0)
                return -1;
        } else {
            return bad(at, it, err, errlen, it->string,
                       "unknown key in storage (asciiMetadata, accounts)");
        }
    }
    return 0;
}

cJSON *azsim__storage_opts_json(const azsim_storage_opts_t *o)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "asciiMetadata", o->ascii_metadata);
    cJSON *l = cJSON_AddArrayToObject(j, "accounts");
    for (size_t i = 0; i < o->naccounts; i++) {
        const azsim_account_opts_t *a = &o->accounts[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "name", a->name);
        cJSON_AddStringToObject(x, "kind", a->kind);
        cJSON_AddStringToObject(x, "sku", a->sku);
        cJSON_AddStringToObject(x, "location", a->location);
        cJSON_AddBoolToObject(x, "largeFileShares", a->large_file_shares);
        cJSON_AddBoolToObject(x, "allowSharedKeyAccess", a->shared_key_access);
        cJSON_AddStringToObject(x, "networkDefaultAction", a->network_deny ? "Deny" : "Allow");
        cJSON_AddStringToObject(x, "publicNetworkAccess",
                                a->public_disabled ? "Disabled" : "Enabled");
        cJSON_AddNumberToObject(x, "shareDeleteRetentionDays", a->share_retention_days);
        cJSON_AddItemToArray(l, x);
    }
    return j;
}

int azsim__paging_parse(azsim_paging_opts_t *p, size_t *page_size, const cJSON *j, const cJSON **at,
                        char *err, size_t errlen)
{
    *at = j;
    if (!cJSON_IsObject(j))
        return bad(at, j, err, errlen, "paging", "expected a mapping");
    for (const cJSON *it = j->child; it; it = it->next) {
        const char *k = it->string;
        if (strcmp(k, "pageSize") == 0) {
            double v = it->valuedouble;
            if (!cJSON_IsNumber(it) || !(v >= 1 && v <= 5000) || floor(v) != v)
                return bad(at, it, err, errlen, "pageSize", "expected an integer from 1 to 5000");
            *page_size = (size_t)v;
        } else if (strcmp(k, "explicitPort") == 0 || strcmp(k, "emptyPages") == 0) {
            if (!cJSON_IsBool(it))
                return bad(at, it, err, errlen, k, "expected true or false");
            *(k[0] == 'e' && k[1] == 'x' ? &p->explicit_port : &p->empty_pages) = cJSON_IsTrue(it);
        } else {
            return bad(at, it, err, errlen, k,
                       "unknown key in paging (pageSize, explicitPort, emptyPages)");
        }
    }
    return 0;
}

cJSON *azsim__paging_json(const azsim_paging_opts_t *p, size_t page_size)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "pageSize", (double)page_size);
    cJSON_AddBoolToObject(j, "explicitPort", p->explicit_port);
    cJSON_AddBoolToObject(j, "emptyPages", p->empty_pages);
    return j;
}
