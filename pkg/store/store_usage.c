/*
 * pkg/store: rendering of status.usage and status.estimatedCostPerHour
 * (issue 15), apart from store.c so that the object renderer only calls it.
 */
#include "store.h"

#include <math.h>

/* Rounded to what a bill shows (6 decimals), so that float noise does not
 * change an answer's bytes. */
static double round6(double v)
{
    return round(v * 1e6) / 1e6;
}

void store_usage_json(const env_usage_t *u, cJSON *status)
{
    if (!u->set)
        return;
    cJSON *o = cJSON_AddObjectToObject(status, "usage");
    cJSON_AddNumberToObject(o, "runningSeconds", round(u->running_seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "cpuCoreSeconds", round(u->cpu_core_seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "memoryGBSeconds", round(u->memory_gb_seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "storageGBHours", round6(u->storage_gb_hours));
    if (u->priced) {
        cJSON_AddNumberToObject(o, "estimatedCost", round6(u->estimated_cost));
        cJSON_AddStringToObject(o, "currency", u->currency);
    }
    char ts[32];
    d8_rfc3339(u->since_ms, ts);
    cJSON_AddStringToObject(o, "since", ts);
    if (u->priced)
        cJSON_AddNumberToObject(status, "estimatedCostPerHour", round6(u->cost_per_hour));
}
