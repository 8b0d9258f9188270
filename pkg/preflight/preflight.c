/*
 * The run of preflight: a token first, then every read at once through
 * the Azure client (curl multi on the loop), each answer kept in its slot;
 * when the last one is in, the evaluators turn the slots into the report
 * in a fixed order, whatever order the answers came in.
 */
#include "preflight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The largest spec the API accepts (DESIGN.md section 3: cpuCores up to
 * 4, memoryGB up to 16): a region must take it. */
#define SPEC_MAX_CPU 4.0
#define SPEC_MAX_MEMORY_GB 16.0

static const char *const providers[] = {"Microsoft.ContainerInstance", "Microsoft.Storage"};
#define NPROVIDERS 2

/* The reads of one region, in report order. */
enum { R_RG = 0, R_PERMS, R_ACCOUNT, R_FILES, R_USAGES, R_CAPS, R__COUNT };

typedef struct run run_t;

/* The actions the groups need on resources outside the regions' groups. */
#define SUBNET_JOIN "Microsoft.Network/virtualNetworks/subnets/join/action"
#define IDENTITY_ASSIGN "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"

typedef struct slot {
    run_t *run;
    int done;
    int err;
    int status;
    char code[128];
    char message[512];
    char *body;
} slot_t;

/* A permission on one resource (a subnet of a region, a registry's
 * identity): Permissions_ListForResource of id. */
typedef struct extra {
    long region;    /* the region's index, or -1 (a registry) */
    const char *id; /* borrowed from the config */
    const char *action;
    char name[256];
    char sub[64]; /* the subscription of id */
} extra_t;

struct run {
    azure_client_t *az;
    const config_t *cfg;
    preflight_cb cb;
    void *ud;
    slot_t token;
    const char **subs; /* the distinct subscriptions, borrowed from cfg */
    size_t nsubs;
    slot_t *prov;    /* nsubs * NPROVIDERS */
    slot_t *regions; /* nregions * R__COUNT */
    extra_t *extras;
    slot_t *extra_slots;
    size_t nextras;
    size_t pending;
};

static void run_free(run_t *run)
{
    for (size_t i = 0; i < run->nsubs * NPROVIDERS; i++)
        free(run->prov[i].body);
    for (size_t i = 0; i < run->cfg->nregions * R__COUNT; i++)
        free(run->regions[i].body);
    for (size_t i = 0; i < run->nextras; i++)
        free(run->extra_slots[i].body);
    free(run->extras);
    free(run->extra_slots);
    free(run->prov);
    free(run->regions);
    free(run->subs);
    free(run);
}

static void slot_keep(slot_t *s, const azure_result_t *res, const char *body, size_t len)
{
    s->done = 1;
    s->err = res->err;
    s->status = res->http_status;
    snprintf(s->code, sizeof(s->code), "%s", res->error_code ? res->error_code : "");
    snprintf(s->message, sizeof(s->message), "%s", res->error_message ? res->error_message : "");
    if (res->err == 0 && body) {
        s->body = d8_xmalloc(len + 1);
        memcpy(s->body, body, len);
        s->body[len] = '\0';
    }
}

/*
 * Adds the line of a read that failed and returns 1, or 0 when it
 * succeeded. A 404 fails with fix_missing; a refused read of the agent's
 * own resource group fails; a refused subscription-level read (providers,
 * usages, capabilities: the agent itself never needs them) only warns.
 */
static int slot_failed(preflight_report_t *r, const slot_t *s, const char *name, const char *what,
                       const char *fix_missing, int sub_level)
{
    if (s->err == 0)
        return 0;
    if (s->err == D8_ENOENT && fix_missing) {
        preflight_add(r, name, PREFLIGHT_FAIL, fix_missing, "%s not found (%s)", what,
                      s->code[0] ? s->code : "404");
        return 1;
    }
    if (strcmp(s->code, "MissingSubscriptionRegistration") == 0) {
        preflight_add(r, name, PREFLIGHT_FAIL,
                      "register the resource provider (see the provider checks above)",
                      "cannot read %s: %s: %s", what, s->code, s->message);
        return 1;
    }
    if (s->err == D8_EAUTH && sub_level) {
        preflight_add(r, name, PREFLIGHT_WARN,
                      "run preflight as a principal with Reader on the subscription to check this",
                      "cannot read %s: %s: %s", what, s->code, s->message);
        return 1;
    }
    preflight_add(r, name, PREFLIGHT_FAIL,
                  s->err == D8_EAUTH ? "assign the role of hack/azure/role.json to the agent's "
                                       "identity on the resource group (hack/azure/setup.sh)"
                                     : "retry; if it persists check azure.armEndpoint and the "
                                       "network path to ARM",
                  "cannot read %s: %s%s%s (%s)", what, s->code, s->code[0] ? ": " : "", s->message,
                  d8_err_name(s->err));
    return 1;
}

static void report_providers(run_t *run, preflight_report_t *r)
{
    for (size_t i = 0; i < run->nsubs; i++) {
        for (size_t p = 0; p < NPROVIDERS; p++) {
            const slot_t *s = &run->prov[i * NPROVIDERS + p];
            char name[160], fix[256];
            if (run->nsubs > 1)
                snprintf(name, sizeof(name), "provider %s (%s)", providers[p], run->subs[i]);
            else
                snprintf(name, sizeof(name), "provider %s", providers[p]);
            snprintf(fix, sizeof(fix), "az provider register --namespace %s --wait", providers[p]);
            if (!slot_failed(r, s, name, "the provider", fix, 1))
                preflight_eval_provider(r, providers[p], s->body);
        }
    }
}

/* The checks of region i, in order, from its slots. */
static void report_region(run_t *run, preflight_report_t *r, size_t i)
{
    const config_region_t *reg = &run->cfg->regions[i];
    const slot_t *s = &run->regions[i * R__COUNT];
    char pre[128], name[192], fix[512], what[160];
    snprintf(pre, sizeof(pre), "region %s", reg->name);
    snprintf(name, sizeof(name), "%s: resource group", pre);
    snprintf(fix, sizeof(fix), "az group create --name %s --location %s (or hack/azure/setup.sh)",
             reg->resource_group, reg->name);
    snprintf(what, sizeof(what), "resource group %s", reg->resource_group);
    if (!slot_failed(r, &s[R_RG], name, what, fix, 0))
        preflight_add(r, name, PREFLIGHT_PASS, NULL, "%s exists", reg->resource_group);
    snprintf(name, sizeof(name), "%s: permissions", pre);
    if (!slot_failed(r, &s[R_PERMS], name, "the permissions on the resource group", NULL, 0))
        preflight_eval_permissions(r, name, reg->resource_group, s[R_PERMS].body);
    snprintf(name, sizeof(name), "%s: storage account %s", pre, reg->storage_account);
    snprintf(fix, sizeof(fix),
             "create it: hack/azure/setup.sh, or az storage account create --name %s "
             "--resource-group %s --kind StorageV2 --sku Standard_LRS --enable-large-file-share",
             reg->storage_account, reg->resource_group);
    snprintf(what, sizeof(what), "storage account %s", reg->storage_account);
    if (!slot_failed(r, &s[R_ACCOUNT], name, what, fix, 0))
        preflight_eval_account(r, pre, reg->storage_account, run->cfg->max_storage_gb,
                               s[R_ACCOUNT].body);
    snprintf(name, sizeof(name), "%s: share soft delete", pre);
    if (!slot_failed(r, &s[R_FILES], name, "the file service properties", fix, 0))
        preflight_eval_file_service(r, name, reg->storage_account, s[R_FILES].body);
    snprintf(name, sizeof(name), "%s: ACI quota", pre);
    if (!slot_failed(r, &s[R_USAGES], name, "the ACI usages", NULL, 1))
        preflight_eval_usages(r, name, reg->name, s[R_USAGES].body);
    snprintf(name, sizeof(name), "%s: ACI capabilities", pre);
    if (!slot_failed(r, &s[R_CAPS], name, "the ACI capabilities", NULL, 1))
        preflight_eval_capabilities(r, name, reg->name, SPEC_MAX_CPU, SPEC_MAX_MEMORY_GB,
                                    s[R_CAPS].body);
}

/* The checks of the extra permissions of region (or -1: the registries'). */
static void report_extras(run_t *run, preflight_report_t *r, long region)
{
    for (size_t i = 0; i < run->nextras; i++) {
        const extra_t *x = &run->extras[i];
        if (x->region != region)
            continue;
        char fix[1400];
        snprintf(fix, sizeof(fix),
                 "grant %s on %s to the agent's identity (built-in role %s, or a custom role)",
                 x->action, x->id,
                 x->region >= 0 ? "Network Contributor" : "Managed Identity Operator");
        if (!slot_failed(r, &run->extra_slots[i], x->name, x->id, fix, 0))
            preflight_eval_resource_action(r, x->name, x->id, x->action, fix,
                                           run->extra_slots[i].body);
    }
}

/* Every read is in: builds the report, answers once and frees the run.
 * Without a token nothing else was read, so only the images follow. */
static void finish(run_t *run)
{
    preflight_report_t r;
    preflight_report_init(&r);
    if (run->token.err < 0) {
        preflight_add(&r, "credentials", PREFLIGHT_FAIL,
                      "check azure.auth and AZURE_TENANT_ID / AZURE_CLIENT_ID / "
                      "AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE; nothing else was "
                      "checked",
                      "no ARM token: %s%s%s", run->token.code, run->token.code[0] ? ": " : "",
                      run->token.message);
    } else {
        preflight_add(&r, "credentials", PREFLIGHT_PASS, NULL, "a token for %s (%s)",
                      run->cfg->token_scope ? run->cfg->token_scope : "ARM",
                      azure_auth_kind_name(azure_client_auth_kind(run->az)));
        report_providers(run, &r);
        for (size_t i = 0; i < run->cfg->nregions; i++) {
            report_region(run, &r, i);
            report_extras(run, &r, (long)i);
        }
        report_extras(run, &r, -1);
    }
    for (size_t i = 0; i < run->cfg->nimages; i++) {
        const config_image_t *im = &run->cfg->images[i];
        preflight_eval_image(&r, im->key, im->ref, config_registry_for(run->cfg, im->ref));
    }
    run->cb(run->ud, &r);
    preflight_report_release(&r);
    run_free(run);
}

static void read_cb(void *ud, const azure_result_t *res, const char *body, size_t len)
{
    slot_t *s = ud;
    run_t *run = s->run;
    slot_keep(s, res, body, len);
    if (--run->pending == 0)
        finish(run);
}

/* Starts one read into slot s; a read refused at once is kept as failed. */
static void start_read(run_t *run, slot_t *s, const azure_scope_t *sc, azure_read_t what,
                       const char *arg)
{
    s->run = run;
    run->pending++;
    int rc = azure_arm_read(run->az, sc, what, arg, AZURE_PRIO_LOW, read_cb, s);
    if (rc < 0) {
        s->done = 1;
        s->err = rc;
        snprintf(s->code, sizeof(s->code), "InvalidArgument");
        snprintf(s->message, sizeof(s->message), "the read could not be started");
        run->pending--;
    }
}

/* Starts every read of every subscription and region at once; the run
 * finishes when the last one answers. */
static void start_reads(run_t *run)
{
    const config_t *cfg = run->cfg;
    run->pending = 1; /* held until every read is started */
    for (size_t i = 0; i < run->nsubs; i++) {
        azure_scope_t sc = {run->subs[i], NULL, NULL, NULL};
        for (size_t p = 0; p < NPROVIDERS; p++)
            start_read(run, &run->prov[i * NPROVIDERS + p], &sc, AZURE_READ_PROVIDER, providers[p]);
    }
    static const azure_read_t reads[R__COUNT] = {
        [R_RG] = AZURE_READ_RESOURCE_GROUP,       [R_PERMS] = AZURE_READ_PERMISSIONS,
        [R_ACCOUNT] = AZURE_READ_STORAGE_ACCOUNT, [R_FILES] = AZURE_READ_FILE_SERVICE,
        [R_USAGES] = AZURE_READ_ACI_USAGES,       [R_CAPS] = AZURE_READ_ACI_CAPABILITIES,
    };
    for (size_t i = 0; i < cfg->nregions; i++) {
        const config_region_t *reg = &cfg->regions[i];
        azure_scope_t sc = {reg->subscription_id, reg->resource_group, reg->storage_account,
                            reg->name};
        for (size_t k = 0; k < R__COUNT; k++)
            start_read(run, &run->regions[i * R__COUNT + k], &sc, reads[k], NULL);
    }
    for (size_t i = 0; i < run->nextras; i++) {
        azure_scope_t sc = {run->extras[i].sub, NULL, NULL, NULL};
        start_read(run, &run->extra_slots[i], &sc, AZURE_READ_RESOURCE_PERMISSIONS,
                   run->extras[i].id);
    }
    if (--run->pending == 0)
        finish(run);
}

static void token_cb(void *ud, const azure_result_t *res)
{
    run_t *run = ud;
    slot_keep(&run->token, res, NULL, 0);
    if (res->err < 0) {
        finish(run);
        return;
    }
    start_reads(run);
}

/* Adds the permission check of action on resource id (the subscription
 * is the id's own: "/subscriptions/<sub>/..."). */
static void add_extra(run_t *run, long region, const char *id, const char *action, const char *name)
{
    extra_t *x = &run->extras[run->nextras++];
    x->region = region;
    x->id = id;
    x->action = action;
    snprintf(x->name, sizeof(x->name), "%s", name);
    const char *s = strncasecmp(id, "/subscriptions/", 15) == 0 ? id + 15 : "";
    size_t n = strcspn(s, "/");
    snprintf(x->sub, sizeof(x->sub), "%.*s", (int)(n < sizeof(x->sub) ? n : 0), s);
}

/* The subnets of every region and the identities of the registries. */
static void plan_extras(run_t *run)
{
    const config_t *cfg = run->cfg;
    size_t n = cfg->nregistries;
    for (size_t i = 0; i < cfg->nregions; i++)
        n += cfg->regions[i].nsubnet_ids;
    run->extras = d8_xcalloc(n + 1, sizeof(extra_t));
    run->extra_slots = d8_xcalloc(n + 1, sizeof(slot_t));
    char name[256];
    for (size_t i = 0; i < cfg->nregions; i++) {
        for (size_t k = 0; k < cfg->regions[i].nsubnet_ids; k++) {
            snprintf(name, sizeof(name), "region %s: subnet join%s", cfg->regions[i].name,
                     cfg->regions[i].nsubnet_ids > 1 ? " (one per subnet)" : "");
            add_extra(run, (long)i, cfg->regions[i].subnet_ids[k], SUBNET_JOIN, name);
        }
    }
    for (size_t i = 0; i < cfg->nregistries; i++) {
        if (!cfg->registries[i].identity)
            continue;
        snprintf(name, sizeof(name), "registry %s: identity", cfg->registries[i].server);
        add_extra(run, -1, cfg->registries[i].identity, IDENTITY_ASSIGN, name);
    }
}

int preflight_run(azure_client_t *az, const config_t *cfg, preflight_cb cb, void *ud)
{
    if (!az || !cfg || !cb)
        return D8_EINVAL;
    run_t *run = d8_xcalloc(1, sizeof(*run));
    run->az = az;
    run->cfg = cfg;
    run->cb = cb;
    run->ud = ud;
    run->subs = d8_xcalloc(cfg->nregions + 1, sizeof(*run->subs));
    for (size_t i = 0; i < cfg->nregions; i++) {
        size_t k = 0;
        while (k < run->nsubs && strcmp(run->subs[k], cfg->regions[i].subscription_id) != 0)
            k++;
        if (k == run->nsubs)
            run->subs[run->nsubs++] = cfg->regions[i].subscription_id;
    }
    run->prov = d8_xcalloc(run->nsubs * NPROVIDERS + 1, sizeof(slot_t));
    run->regions = d8_xcalloc(cfg->nregions * R__COUNT + 1, sizeof(slot_t));
    plan_extras(run);
    int rc = azure_token_acquire(az, token_cb, run);
    if (rc < 0) {
        run_free(run);
        return rc;
    }
    return 0;
}
