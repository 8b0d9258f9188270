/*
 * Azure client options for tests that build them by hand: every option
 * the client requires (azure.h), all endpoints at `endpoint` (borrowed;
 * a test server, or a refused port), the api versions dev8-agent uses and
 * ARM's and ACI's published meters as buckets. The rest stays zero: the
 * client's own defaults.
 */
#ifndef D8_TEST_AZURE_OPTS_H
#define D8_TEST_AZURE_OPTS_H

#include "azure/azure.h"

#include <string.h>

static inline void test_azure_opts(azure_client_opts_t *o, const char *endpoint)
{
    memset(o, 0, sizeof(*o));
    o->arm_endpoint = endpoint;
    o->authority_host = endpoint;
    o->imds_endpoint = endpoint;
    o->aci_api_version = "2025-09-01";
    o->storage_api_version = "2025-01-01";
    o->max_inflight = 32;
    o->buckets[AZURE_BUCKET_READ] = (azure_bucket_opts_t){250, 25};
    o->buckets[AZURE_BUCKET_WRITE] = (azure_bucket_opts_t){200, 10};
    o->buckets[AZURE_BUCKET_DELETE] = (azure_bucket_opts_t){200, 10};
    o->buckets[AZURE_BUCKET_ACI_CREATE] = (azure_bucket_opts_t){100, 100.0 / 300.0};
    o->buckets[AZURE_BUCKET_ACI_DELETE] = (azure_bucket_opts_t){100, 100.0 / 300.0};
    o->buckets[AZURE_BUCKET_ACI_CREATE_HOURLY] = (azure_bucket_opts_t){300, 300.0 / 3600.0};
    o->buckets[AZURE_BUCKET_ACI_DELETE_HOURLY] = (azure_bucket_opts_t){300, 300.0 / 3600.0};
}

#endif
