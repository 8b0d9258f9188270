/*
 * pkg/azsim: private registries and clouds.
 *
 * Registries (config aci.registries, POST /_azsim/aci): ACI pulls an image
 * of a private registry only with an imageRegistryCredentials entry for
 * its server that the registry accepts: a username and password it knows,
 * or a user-assigned managed identity it allows (AcrPull) which is also
 * one of the group's identities. Otherwise the deployment fails with
 * InaccessibleImage, "The image '…' in container group '…' is not
 * accessible. Please check the image and registry credential." (support
 * article "DeploymentFailed - InaccessibleImage error code";
 * BEHAVIOURS.md).
 *
 * Clouds: Microsoft Entra ID issues a token for a resource only when the
 * resource exists in the tenant's cloud; another cloud's Resource Manager
 * scope gets AADSTS500011 (invalid_resource).
 */
#include "azsim_int.h"

#include "azure/cloud.h"
#include "base/base.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_REGISTRIES 64

static int fail(char *err, size_t errlen, const char *msg, size_t i)
{
    snprintf(err, errlen, "registries[%zu]: %s", i, msg);
    return -1;
}

static int opt_string(const cJSON *it, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(it, key);
    return !v || (cJSON_IsString(v) && v->valuestring[0]);
}

int azsim__registries_parse(const cJSON *j, cJSON **out, char *err, size_t errlen)
{
    if (!cJSON_IsArray(j)) {
        snprintf(err, errlen, "registries: expected a list");
        return -1;
    }
    size_t i = 0;
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        if (i >= MAX_REGISTRIES)
            return fail(err, errlen, "too many registries", i);
        if (!cJSON_IsObject(it))
            return fail(err, errlen, "expected a mapping", i);
        for (const cJSON *k = it->child; k; k = k->next)
            if (strcmp(k->string, "server") && strcmp(k->string, "username") &&
                strcmp(k->string, "password") && strcmp(k->string, "identities"))
                return fail(err, errlen, "unknown key (server, username, password, identities)", i);
        const cJSON *server = cJSON_GetObjectItem(it, "server");
        if (!cJSON_IsString(server) || !server->valuestring[0])
            return fail(err, errlen, "server is required", i);
        if (!opt_string(it, "username") || !opt_string(it, "password"))
            return fail(err, errlen, "username and password must be non-empty strings", i);
        if (!cJSON_GetObjectItem(it, "username") != !cJSON_GetObjectItem(it, "password"))
            return fail(err, errlen, "give username and password together", i);
        const cJSON *ids = cJSON_GetObjectItem(it, "identities");
        if (ids && !cJSON_IsArray(ids))
            return fail(err, errlen, "identities must be a list of identity resource ids", i);
        for (const cJSON *id = ids ? ids->child : NULL; id; id = id->next)
            if (!cJSON_IsString(id) || !id->valuestring[0])
                return fail(err, errlen, "identities must be a list of identity resource ids", i);
    }
    *out = cJSON_Duplicate(j, 1);
    return 0;
}

cJSON *azsim__registries_json(const cJSON *regs)
{
    cJSON *a = cJSON_CreateArray();
    for (const cJSON *it = regs ? regs->child : NULL; it; it = it->next) {
        cJSON *c = cJSON_Duplicate(it, 1);
        if (cJSON_GetObjectItem(c, "password")) /* shown as set, never echoed */
            cJSON_ReplaceItemInObject(c, "password", cJSON_CreateString("<set>"));
        cJSON_AddItemToArray(a, c);
    }
    return a;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* Whether the group spec holds identity id among its user-assigned identities. */
static int group_has_identity(const cJSON *spec, const char *id)
{
    const cJSON *ident = cJSON_GetObjectItem(spec, "identity");
    const char *type = str_of(ident, "type");
    if (!type || !strstr(type, "UserAssigned"))
        return 0;
    const cJSON *uai = cJSON_GetObjectItem(ident, "userAssignedIdentities");
    for (const cJSON *k = uai ? uai->child : NULL; k; k = k->next)
        if (azsim__ieq(k->string, id))
            return 1;
    return 0;
}

/* Whether registry reg accepts the credential cred of group spec. */
static int accepts(const cJSON *reg, const cJSON *cred, const cJSON *spec)
{
    const char *identity = str_of(cred, "identity");
    if (identity) {
        const cJSON *ids = cJSON_GetObjectItem(reg, "identities");
        for (const cJSON *id = ids ? ids->child : NULL; id; id = id->next)
            if (azsim__ieq(id->valuestring, identity))
                return group_has_identity(spec, identity);
        return 0;
    }
    const char *user = str_of(cred, "username"), *pass = str_of(cred, "password");
    const char *want_user = str_of(reg, "username"), *want_pass = str_of(reg, "password");
    return same(user, want_user) && pass && want_pass &&
           d8_consttime_eq(pass, strlen(pass), want_pass, strlen(want_pass));
}

int azsim__registry_denies(const azsim_t *sim, const azsim__group_t *g, const char *image)
{
    const cJSON *regs = sim->aci.registries;
    if (!regs || !image)
        return 0;
    char host[300];
    d8_image_registry(image, host, sizeof(host));
    const cJSON *reg = NULL;
    for (const cJSON *it = regs->child; it && !reg; it = it->next)
        if (azsim__ieq(str_of(it, "server"), host))
            reg = it;
    if (!reg)
        return 0; /* a public registry */
    cJSON *spec = cJSON_Parse(g->spec);
    const cJSON *creds =
        cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "properties"), "imageRegistryCredentials");
    int ok = 0;
    for (const cJSON *c = creds ? creds->child : NULL; c && !ok; c = c->next)
        if (azsim__ieq(str_of(c, "server"), host))
            ok = accepts(reg, c, spec);
    cJSON_Delete(spec);
    return !ok;
}

/* ---- clouds ----------------------------------------------------------------- */

const char *azsim__cloud_authority(const azsim_t *sim)
{
    const azure_cloud_t *c = azure_cloud_at((size_t)sim->o.cloud);
    return (c ? c : azure_cloud_at(0))->authority_host;
}

int azsim__cloud_resource_ok(const azsim_t *sim, const char *resource)
{
    const azure_cloud_t *c = azure_cloud_at((size_t)sim->o.cloud);
    char want[600];
    if (!c || azure_scope_resource(c->token_scope, want, sizeof(want)) != 0 || !resource)
        return 0;
    size_t n = strlen(resource), w = strlen(want);
    /* With or without its trailing '/', as Entra ID takes it. */
    return azsim__ieq(resource, want) ||
           (n + 1 == w && strncasecmp(resource, want, n) == 0 && want[w - 1] == '/');
}

int azsim__cloud_index(const char *name)
{
    for (size_t i = 0; azure_cloud_at(i); i++)
        if (strcmp(azure_cloud_at(i)->name, name) == 0)
            return (int)i;
    return -1;
}
