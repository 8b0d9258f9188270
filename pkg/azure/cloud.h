/*
 * pkg/azure: the Azure clouds dev8-agent knows. Each names its Resource
 * Manager endpoint, its Microsoft Entra ID authority host and the token
 * scope of Resource Manager, which always go together: a token for one
 * cloud's scope is refused by another cloud's Resource Manager. This table
 * is the only place these values are spelled (sources: Microsoft Learn,
 * "National clouds" of the Microsoft identity platform and the Azure
 * China / Azure Government developer guides; see README "Clouds").
 */
#ifndef D8_AZURE_CLOUD_H
#define D8_AZURE_CLOUD_H

#include <stddef.h>

typedef struct azure_cloud {
    const char *name;           /* AzurePublicCloud, AzureChinaCloud, AzureUSGovernment */
    const char *arm_endpoint;   /* Resource Manager's base URL, no trailing '/' */
    const char *authority_host; /* Entra ID's base URL, no trailing '/' */
    const char *token_scope;    /* "<ARM resource>/.default" */
} azure_cloud_t;

/* The name of the default cloud ("AzurePublicCloud"). */
#define AZURE_CLOUD_DEFAULT "AzurePublicCloud"

/* The cloud called `name` (exact spelling), or NULL for any other name,
 * "Custom" included. The entry is static. */
const azure_cloud_t *azure_cloud_find(const char *name);

/* The i-th known cloud (0-based), or NULL past the last: for listings. */
const azure_cloud_t *azure_cloud_at(size_t i);

/*
 * The resource that a token scope names: the scope without its
 * "/.default" suffix, with one trailing '/' (what the IMDS endpoint takes
 * as `resource`), written into out (NUL-terminated). Returns 0, or -1
 * when the scope does not end in "/.default" or out is too small.
 */
int azure_scope_resource(const char *scope, char *out, size_t outlen);

#endif
