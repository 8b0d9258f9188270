/*
 * The evaluators of preflight: what each ARM answer means for the agent,
 * and the fix when it falls short. Pure functions of the JSON bodies.
 */
#include "preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The share size limits of Azure Files (Learn: Azure Files scalability
 * and performance targets): premium shares 100..102400 GiB; standard ones
 * up to 5120 GiB, or 102400 with large file shares enabled. */
#define STANDARD_SHARE_MAX_GB 5120
#define LARGE_SHARE_MAX_GB 102400
#define PREMIUM_SHARE_MIN_GB 100

static const cJSON *path(const cJSON *j, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

static const char *str_at(const cJSON *j, const char *a, const char *b)
{
    const cJSON *x = path(j, a, b);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static cJSON *parse(const char *body)
{
    return body ? cJSON_Parse(body) : NULL;
}

void preflight_eval_provider(preflight_report_t *r, const char *ns, const char *body)
{
    char name[128], fix[256];
    snprintf(name, sizeof(name), "provider %s", ns);
    snprintf(fix, sizeof(fix), "az provider register --namespace %s --wait", ns);
    cJSON *j = parse(body);
    const char *st = str_at(j, "registrationState", NULL);
    if (st && strcasecmp(st, "Registered") == 0)
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "registered");
    else
        preflight_add(r, name, PREFLIGHT_FAIL, fix, "registrationState is %s, not Registered",
                      st ? st : "absent");
    cJSON_Delete(j);
}

void preflight_eval_permissions(preflight_report_t *r, const char *name, const char *rg,
                                const char *body)
{
    cJSON *j = parse(body);
    const cJSON *perms = path(j, "value", NULL);
    d8_buf_t miss;
    d8_buf_init(&miss);
    size_t nmiss = 0, n = 0;
    for (const char *const *a = preflight_actions; *a; a++, n++) {
        if (!preflight_allows(perms, *a)) {
            d8_buf_printf(&miss, "%s%s", nmiss ? ", " : "", *a);
            nmiss++;
        }
    }
    char fix[512];
    snprintf(fix, sizeof(fix),
             "assign the role of hack/azure/role.json to the agent's identity on resource group "
             "%s (hack/azure/setup.sh does)",
             rg);
    if (nmiss == 0)
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "all %zu actions the agent uses are allowed",
                      n);
    else
        preflight_add(r, name, PREFLIGHT_FAIL, fix, "%zu of %zu actions not allowed: %s", nmiss, n,
                      miss.data);
    d8_buf_release(&miss);
    cJSON_Delete(j);
}

/* Kind and SKU: StorageV2 (any SKU) or FileStorage (premium) hold Azure
 * Files shares; general-purpose v1 does without large shares; blob-only
 * kinds hold none. */
static void eval_kind(preflight_report_t *r, const char *name, const char *account,
                      const char *kind, const char *sku)
{
    char fix[512];
    snprintf(fix, sizeof(fix),
             "use a StorageV2 (Standard_LRS/ZRS) or FileStorage (Premium_LRS/ZRS) account: az "
             "storage account create --name %s --kind StorageV2 --sku Standard_LRS",
             account);
    int premium = sku && strncasecmp(sku, "Premium_", 8) == 0;
    if (!kind || !sku)
        preflight_add(r, name, PREFLIGHT_FAIL, fix, "the account answer names no kind or SKU");
    else if (strcasecmp(kind, "StorageV2") == 0 ||
             (strcasecmp(kind, "FileStorage") == 0 && premium))
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "%s, %s", kind, sku);
    else if (strcasecmp(kind, "Storage") == 0)
        preflight_add(
            r, name, PREFLIGHT_WARN,
            "upgrade it: az storage account update --set kind=StorageV2 --access-tier Hot",
            "%s, %s: general-purpose v1 holds file shares but no large ones", kind, sku);
    else
        preflight_add(r, name, PREFLIGHT_FAIL, fix, "%s, %s holds no Azure Files shares", kind,
                      sku);
}

/* ACI mounts Azure Files with the account key: Shared Key must be on. */
static void eval_shared_key(preflight_report_t *r, const char *name, const char *account,
                            const cJSON *props)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(props, "allowSharedKeyAccess");
    char fix[256];
    snprintf(fix, sizeof(fix), "az storage account update --name %s --allow-shared-key-access true",
             account);
    if (cJSON_IsFalse(v))
        preflight_add(r, name, PREFLIGHT_FAIL, fix,
                      "allowSharedKeyAccess is false: ACI mounts Azure Files only with the "
                      "account key");
    else
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "Shared Key access allowed%s",
                      cJSON_IsTrue(v) ? "" : " (not set: the default)");
}

/* A container group on a public IP reaches the account from outside any
 * VNet, and ACI is not one of the trusted Azure services a firewall lets
 * through: the account must accept public traffic. */
static void eval_network(preflight_report_t *r, const char *name, const char *account,
                         const cJSON *props)
{
    const char *pna = str_at(props, "publicNetworkAccess", NULL);
    const char *def = str_at(props, "networkAcls", "defaultAction");
    const cJSON *vnets = path(props, "networkAcls", "virtualNetworkRules");
    char fix[256];
    snprintf(fix, sizeof(fix),
             "az storage account update --name %s --public-network-access Enabled "
             "--default-action Allow",
             account);
    if (pna && strcasecmp(pna, "Disabled") == 0)
        preflight_add(r, name, PREFLIGHT_FAIL, fix,
                      "publicNetworkAccess is Disabled: container groups cannot mount its shares");
    else if (def && strcasecmp(def, "Deny") == 0 && cJSON_GetArraySize(vnets) > 0)
        preflight_add(r, name, PREFLIGHT_WARN, fix,
                      "networkAcls deny by default: only container groups in the allowed "
                      "subnets (%d rules) can mount its shares",
                      cJSON_GetArraySize(vnets));
    else if (def && strcasecmp(def, "Deny") == 0)
        preflight_add(r, name, PREFLIGHT_FAIL, fix,
                      "networkAcls deny by default and ACI on a public IP is not a trusted "
                      "service: mounts fail");
    else
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "public network access allowed");
}

/* Large file shares and limits.maxStorageGB against the SKU's share
 * sizes. */
static void eval_sizes(preflight_report_t *r, const char *prefix, const char *account,
                       const char *sku, const cJSON *props, int max_gb)
{
    char lname[160], sname[160], fix[256];
    snprintf(lname, sizeof(lname), "%s: large file shares", prefix);
    snprintf(sname, sizeof(sname), "%s: maxStorageGB", prefix);
    snprintf(fix, sizeof(fix), "az storage account update --name %s --enable-large-file-share",
             account);
    int premium = sku && strncasecmp(sku, "Premium_", 8) == 0;
    const char *lfs = str_at(props, "largeFileSharesState", NULL);
    int large = premium || (lfs && strcasecmp(lfs, "Enabled") == 0);
    int cap = large ? LARGE_SHARE_MAX_GB : STANDARD_SHARE_MAX_GB;
    if (premium)
        preflight_add(r, lname, PREFLIGHT_PASS, NULL, "premium shares go to %d GiB", cap);
    else if (large)
        preflight_add(r, lname, PREFLIGHT_PASS, NULL, "Enabled: shares up to %d GiB", cap);
    else if (max_gb > STANDARD_SHARE_MAX_GB)
        preflight_add(r, lname, PREFLIGHT_FAIL, fix,
                      "not enabled: shares stop at %d GiB, below limits.maxStorageGB %d",
                      STANDARD_SHARE_MAX_GB, max_gb);
    else
        preflight_add(r, lname, PREFLIGHT_WARN, fix,
                      "not enabled: shares stop at %d GiB (enough for limits.maxStorageGB %d)",
                      STANDARD_SHARE_MAX_GB, max_gb);
    if (max_gb > cap)
        preflight_add(r, sname, PREFLIGHT_FAIL, large ? "lower limits.maxStorageGB" : fix,
                      "limits.maxStorageGB %d is over the account's largest share, %d GiB", max_gb,
                      cap);
    else if (premium)
        preflight_add(r, sname, PREFLIGHT_WARN,
                      "use a standard account, or keep workspace sizes at 100 GB or more",
                      "limits.maxStorageGB %d fits; premium shares start at %d GiB: smaller "
                      "workspaces are refused",
                      max_gb, PREMIUM_SHARE_MIN_GB);
    else
        preflight_add(r, sname, PREFLIGHT_PASS, NULL, "limits.maxStorageGB %d fits (up to %d GiB)",
                      max_gb, cap);
}

void preflight_eval_account(preflight_report_t *r, const char *prefix, const char *account,
                            int max_storage_gb, const char *body)
{
    cJSON *j = parse(body);
    const cJSON *props = path(j, "properties", NULL);
    const char *sku = str_at(j, "sku", "name");
    char name[160];
    snprintf(name, sizeof(name), "%s: storage account %s", prefix, account);
    eval_kind(r, name, account, str_at(j, "kind", NULL), sku);
    snprintf(name, sizeof(name), "%s: shared key access", prefix);
    eval_shared_key(r, name, account, props);
    snprintf(name, sizeof(name), "%s: network rules", prefix);
    eval_network(r, name, account, props);
    eval_sizes(r, prefix, account, sku, props, max_storage_gb);
    cJSON_Delete(j);
}

void preflight_eval_file_service(preflight_report_t *r, const char *name, const char *account,
                                 const char *body)
{
    cJSON *j = parse(body);
    const cJSON *pol = path(path(j, "properties", NULL), "shareDeleteRetentionPolicy", NULL);
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(pol, "enabled");
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(pol, "days");
    char fix[256];
    snprintf(fix, sizeof(fix),
             "az storage account file-service-properties update --account-name %s "
             "--enable-delete-retention true --delete-retention-days 7",
             account);
    if (cJSON_IsTrue(en) && cJSON_IsNumber(days))
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "deleted shares kept %d days",
                      (int)days->valuedouble);
    else
        preflight_add(r, name, PREFLIGHT_FAIL, fix,
                      "share soft delete is off: a deleted workspace share is gone for good");
    cJSON_Delete(j);
}

/* The usage entry named `what` (name.value), or NULL. */
static const cJSON *usage_of(const cJSON *list, const char *what)
{
    const cJSON *u;
    cJSON_ArrayForEach(u, list)
    {
        const char *n = str_at(u, "name", "value");
        if (n && strcasecmp(n, what) == 0)
            return u;
    }
    return NULL;
}

void preflight_eval_usages(preflight_report_t *r, const char *name, const char *region,
                           const char *body)
{
    cJSON *j = parse(body);
    const cJSON *list = path(j, "value", NULL);
    static const char *const what[] = {"ContainerGroups", "StandardCores"};
    /* One workspace of the largest spec takes 1 group and 4 cores. */
    static const double need[] = {1, 4};
    preflight_status_t st = PREFLIGHT_PASS;
    d8_buf_t msg;
    d8_buf_init(&msg);
    for (size_t i = 0; i < 2; i++) {
        const cJSON *u = usage_of(list, what[i]);
        const cJSON *cur = path(u, "currentValue", NULL), *lim = path(u, "limit", NULL);
        if (!cJSON_IsNumber(cur) || !cJSON_IsNumber(lim)) {
            d8_buf_printf(&msg, "%s%s: not reported", i ? "; " : "", what[i]);
            st = st > PREFLIGHT_WARN ? st : PREFLIGHT_WARN;
            continue;
        }
        double left = lim->valuedouble - cur->valuedouble;
        d8_buf_printf(&msg, "%s%s %.0f of %.0f", i ? "; " : "", what[i], cur->valuedouble,
                      lim->valuedouble);
        if (left < need[i])
            st = PREFLIGHT_FAIL;
        else if (cur->valuedouble >= 0.8 * lim->valuedouble && st < PREFLIGHT_WARN)
            st = PREFLIGHT_WARN;
    }
    char fix[256];
    snprintf(fix, sizeof(fix),
             "request more ACI quota for %s (Azure portal: Quotas > Container Instances), or "
             "delete unused container groups",
             region);
    preflight_add(r, name, st, fix, "%s%s", msg.data,
                  st == PREFLIGHT_FAIL ? ": no room for another workspace" : "");
    d8_buf_release(&msg);
    cJSON_Delete(j);
}

void preflight_eval_capabilities(preflight_report_t *r, const char *name, const char *region,
                                 double cpu, double memory_gb, const char *body)
{
    cJSON *j = parse(body);
    const cJSON *c;
    double best_cpu = 0, best_mem = 0;
    cJSON_ArrayForEach(c, path(j, "value", NULL))
    {
        const char *rt = str_at(c, "resourceType", NULL), *os = str_at(c, "osType", NULL);
        const char *gpu = str_at(c, "gpu", NULL);
        if (!rt || strcasecmp(rt, "containerGroups") != 0 || !os || strcasecmp(os, "Linux") != 0)
            continue;
        if (gpu && gpu[0] && strcasecmp(gpu, "None") != 0)
            continue;
        const cJSON *mc = path(c, "capabilities", "maxCpu");
        const cJSON *mm = path(c, "capabilities", "maxMemoryInGB");
        if (cJSON_IsNumber(mc) && cJSON_IsNumber(mm) && mc->valuedouble >= best_cpu &&
            mm->valuedouble >= best_mem) {
            best_cpu = mc->valuedouble;
            best_mem = mm->valuedouble;
        }
    }
    char fix[256];
    snprintf(fix, sizeof(fix),
             "choose a region whose Linux container groups take %g cores and %g GB, or accept "
             "that larger specs fail there",
             cpu, memory_gb);
    if (best_cpu <= 0)
        preflight_add(r, name, PREFLIGHT_FAIL, fix, "%s offers no Linux container group capability",
                      region);
    else if (best_cpu < cpu || best_mem < memory_gb)
        preflight_add(r, name, PREFLIGHT_FAIL, fix,
                      "%s: Linux groups up to %g cores and %g GB, below the largest spec (%g "
                      "cores, %g GB)",
                      region, best_cpu, best_mem, cpu, memory_gb);
    else
        preflight_add(r, name, PREFLIGHT_PASS, NULL,
                      "Linux groups up to %g cores and %g GB (specs need %g and %g)", best_cpu,
                      best_mem, cpu, memory_gb);
    cJSON_Delete(j);
}

/* The registry host of an image reference: the first path component when
 * it has a '.' or ':' or is "localhost" (Docker's rule), else Docker Hub. */
static int is_docker_hub(const char *ref)
{
    const char *slash = strchr(ref, '/');
    if (!slash)
        return 1;
    size_t n = (size_t)(slash - ref);
    char host[256];
    if (n >= sizeof(host))
        return 0;
    memcpy(host, ref, n);
    host[n] = '\0';
    if (!strchr(host, '.') && !strchr(host, ':') && strcmp(host, "localhost") != 0)
        return 1;
    return strcasecmp(host, "docker.io") == 0 || strcasecmp(host, "index.docker.io") == 0 ||
           strcasecmp(host, "registry-1.docker.io") == 0;
}

void preflight_eval_resource_action(preflight_report_t *r, const char *name, const char *id,
                                    const char *action, const char *fix, const char *body)
{
    cJSON *j = parse(body);
    if (preflight_allows(path(j, "value", NULL), action))
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "%s allowed on %s", action, id);
    else
        preflight_add(r, name, PREFLIGHT_FAIL, fix, "%s not allowed on %s", action, id);
    cJSON_Delete(j);
}

void preflight_eval_image(preflight_report_t *r, const char *key, const char *ref,
                          const config_registry_t *reg)
{
    char name[160], fix[512];
    snprintf(name, sizeof(name), "image %s", key);
    snprintf(fix, sizeof(fix),
             "copy the image to Azure Container Registry (az acr import --source docker.io/...) "
             "and point images.%s at it, or give Docker Hub credentials under registries",
             key);
    if (reg && reg->identity)
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "%s: pulled from %s with a managed identity",
                      ref, reg->server);
    else if (reg)
        preflight_add(r, name, PREFLIGHT_PASS, NULL,
                      "%s: pulled from %s with registry credentials (user %s)", ref, reg->server,
                      reg->username ? reg->username : "?");
    else if (is_docker_hub(ref))
        preflight_add(r, name, PREFLIGHT_WARN, fix,
                      "%s is an anonymous Docker Hub pull: ACI's pulls are rate-limited "
                      "(RegistryErrorResponse; Learn: container-instances-troubleshooting)",
                      ref);
    else
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "%s: not Docker Hub", ref);
}
