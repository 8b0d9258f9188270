/*
 * pkg/config: azure.cloud and the three values it sets together
 * (azure.armEndpoint, azure.authorityHost, azure.tokenScope). The values
 * of the named clouds come from pkg/azure/cloud.h, the one table that
 * spells them.
 *
 *   cloud absent          the public cloud; armEndpoint and authorityHost
 *                         may redirect its endpoints (an emulator, a
 *                         proxy); its token scope stays; no tokenScope
 *   cloud: <named cloud>  all three from the table; setting any is an error
 *   cloud: Custom         all three from the file, each required
 */
#include "config_int.h"

#include "azure/cloud.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

static const char cloud_names[] = "AzurePublicCloud, AzureChinaCloud, AzureUSGovernment or Custom";
static const char *const key_names[] = {"cloud", "armEndpoint", "authorityHost", "tokenScope"};

/* A token scope: an http(s) resource URL followed by "/.default". */
static const char *check_scope(char *s)
{
    static const char suffix[] = "/.default";
    size_t n = strlen(s), sl = sizeof(suffix) - 1;

    if (n <= sl || strcmp(s + n - sl, suffix) != 0)
        return "must be a resource URL followed by /.default, such as "
               "https://management.example/.default";
    char *base = d8_xstrndup(s, n - sl);
    const char *why = config__check_endpoint(base);
    free(base);
    return why ? "must be an http(s) resource URL without spaces, query or fragment followed by "
                 "/.default"
               : NULL;
}

static const char *check_cloud(char *s)
{
    if (strcmp(s, "Custom") == 0 || azure_cloud_find(s))
        return NULL;
    return "must be one of AzurePublicCloud, AzureChinaCloud, AzureUSGovernment, Custom";
}

/* Reads the string of key index i into *dst, remembering where it was. */
static int set_one(config__walk_t *w, yaml_node_t *v, int i, config__str_check_fn chk, char **dst)
{
    char buf[200];
    char *val = NULL;

    if (config__is_null(v))
        return config__fail(w, v->start_mark, "must not be empty, got %s",
                            config__describe(v, 0, buf, sizeof buf));
    int rc = config__string_value(w, v, chk, &val);
    if (rc)
        return rc;
    free(*dst);
    *dst = val;
    w->cloud_mark[i] = v->start_mark;
    w->cloud_set[i] = 1;
    return 0;
}

int config__set_cloud(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    return set_one(w, v, CONFIG__CLOUD_NAME, check_cloud, &((config_t *)base)->cloud);
}

int config__set_arm_endpoint(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    return set_one(w, v, CONFIG__CLOUD_ARM, config__check_endpoint,
                   &((config_t *)base)->arm_endpoint);
}

int config__set_authority_host(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    return set_one(w, v, CONFIG__CLOUD_AUTHORITY, config__check_endpoint,
                   &((config_t *)base)->authority_host);
}

int config__set_token_scope(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    return set_one(w, v, CONFIG__CLOUD_SCOPE, check_scope, &((config_t *)base)->token_scope);
}

/* Reports key i at its position, with the path azure.<key>. */
static int fail_at(config__walk_t *w, int i, const char *msg, const char *cloud)
{
    size_t old = config__path_push(w, "azure.%s", key_names[i]);
    int rc = config__fail(w, w->cloud_mark[i], msg, cloud);
    config__path_pop(w, old);
    return rc;
}

static void fill(char **dst, const char *value)
{
    if (!*dst)
        *dst = d8_xstrdup(value);
}

int config__resolve_cloud(config__walk_t *w, config_t *cfg)
{
    const int *set = w->cloud_set;
    if (strcmp(cfg->cloud, "Custom") == 0) {
        for (int i = CONFIG__CLOUD_ARM; i <= CONFIG__CLOUD_SCOPE; i++)
            if (!set[i])
                return fail_at(w, CONFIG__CLOUD_NAME,
                               "%s needs azure.armEndpoint, azure.authorityHost and "
                               "azure.tokenScope, all three",
                               "Custom");
        return 0;
    }
    const azure_cloud_t *c = azure_cloud_find(cfg->cloud);
    if (!c) /* cannot happen: check_cloud let it through */
        return fail_at(w, CONFIG__CLOUD_NAME, "must be one of %s", cloud_names);
    if (set[CONFIG__CLOUD_NAME]) {
        for (int i = CONFIG__CLOUD_ARM; i <= CONFIG__CLOUD_SCOPE; i++)
            if (set[i])
                return fail_at(w, i,
                               "is set by cloud %s; set cloud: Custom to give armEndpoint, "
                               "authorityHost and tokenScope yourself",
                               cfg->cloud);
    } else if (set[CONFIG__CLOUD_SCOPE]) {
        return fail_at(w, CONFIG__CLOUD_SCOPE,
                       "needs cloud: Custom (with armEndpoint and "
                       "authorityHost)%s",
                       "");
    }
    fill(&cfg->arm_endpoint, c->arm_endpoint);
    fill(&cfg->authority_host, c->authority_host);
    fill(&cfg->token_scope, c->token_scope);
    return 0;
}
