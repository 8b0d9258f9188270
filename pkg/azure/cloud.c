/*
 * pkg/azure: the table of Azure clouds (see cloud.h). Values from
 * Microsoft Learn: "National clouds" (Microsoft identity platform: the
 * Entra ID endpoints), "Azure China developer guide" and "Azure Government
 * developer guide" (the Resource Manager endpoints).
 */
#include "cloud.h"

#include <stdio.h>
#include <string.h>

static const azure_cloud_t clouds[] = {
    {"AzurePublicCloud", "https://management.azure.com", "https://login.microsoftonline.com",
     "https://management.azure.com/.default"},
    {"AzureChinaCloud", "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn",
     "https://management.chinacloudapi.cn/.default"},
    {"AzureUSGovernment", "https://management.usgovcloudapi.net",
     "https://login.microsoftonline.us", "https://management.usgovcloudapi.net/.default"},
};

const azure_cloud_t *azure_cloud_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(clouds) / sizeof(clouds[0]); i++)
        if (strcmp(name, clouds[i].name) == 0)
            return &clouds[i];
    return NULL;
}

const azure_cloud_t *azure_cloud_at(size_t i)
{
    return i < sizeof(clouds) / sizeof(clouds[0]) ? &clouds[i] : NULL;
}

int azure_scope_resource(const char *scope, char *out, size_t outlen)
{
    static const char suffix[] = "/.default";
    size_t n = scope ? strlen(scope) : 0, sl = sizeof(suffix) - 1;

    if (n <= sl || strcmp(scope + n - sl, suffix) != 0 || n - sl + 2 > outlen)
        return -1;
    memcpy(out, scope, n - sl);
    out[n - sl] = '/';
    out[n - sl + 1] = '\0';
    return 0;
}
