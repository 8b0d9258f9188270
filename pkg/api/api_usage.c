/*
 * pkg/api: GET /api/v1/usage (rows shaped for the platform's
 * ResourceUsage table) and GET /api/v1/retained (issue 15).
 *
 * usage?from=&to=&userId=&granularity=hour|day: from and to are RFC 3339
 * UTC times (to defaults to now, from to 24 hours before to); periods are
 * whole UTC hours or days (from rounded down, to up); to must be after
 * from and the span at most the 35 days the buckets keep. Errors are 400
 * InvalidQuery naming the parameter.
 */
#include "api_int.h"

#include "ownership/ownership.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define HOUR_MS 3600000LL

static double round6(double v)
{
    return round(v * 1e6) / 1e6;
}

static void add_time(cJSON *o, const char *k, int64_t ms)
{
    char ts[32];
    d8_rfc3339(ms, ts);
    cJSON_AddStringToObject(o, k, ts);
}

static void add_row(void *ud, const usage_row_t *r)
{
    cJSON *items = ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "environmentId", r->environment_id);
    cJSON_AddStringToObject(o, "userId", r->user_id);
    add_time(o, "periodStart", r->period_start_ms);
    add_time(o, "periodEnd", r->period_end_ms);
    cJSON_AddNumberToObject(o, "runningSeconds", round(r->running_seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "cpuCoreSeconds", round(r->cpu_core_seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "memoryGBSeconds", round(r->memory_gb_seconds * 1000) / 1000);
    cJSON_AddNumberToObject(o, "storageGBHours", round6(r->storage_gb_hours));
    if (r->priced) {
        cJSON_AddNumberToObject(o, "estimatedCost", round6(r->estimated_cost));
        cJSON_AddStringToObject(o, "currency", r->currency);
    }
    cJSON_AddItemToArray(items, o);
}

static void answer(http_exchange_t *ex, cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    if (!txt)
        d8_die("out of memory");
    api__respond_json(ex, 200, NULL, 0, txt, strlen(txt));
    cJSON_free(txt);
    cJSON_Delete(o);
}

static int bad(http_exchange_t *ex, const char *field, const char *msg)
{
    http_respond_error(ex, 400, "InvalidQuery", msg, field);
    return -1;
}

/* Reads time parameter `name` into *out (unchanged when absent); -1 after
 * answering 400. */
static int time_param(const http_request_t *req, http_exchange_t *ex, const char *name,
                      int64_t *out)
{
    char buf[64];
    int n = http_query_param(req, name, buf, sizeof(buf));
    if (n == -1)
        return 0;
    int64_t t = n >= 0 ? own_parse_time(buf) : 0;
    if (t <= 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s must be an RFC 3339 UTC time such as 2026-12-01T00:00:00Z",
                 name);
        return bad(ex, name, msg);
    }
    *out = t;
    return 0;
}

/* Fills *q from the query; -1 after answering 400. */
static int read_query(const http_request_t *req, http_exchange_t *ex, usage_query_t *q,
                      char user[160])
{
    char gran[16];
    q->now_ms = d8_wall_ms();
    q->to_ms = q->now_ms;
    q->from_ms = INT64_MIN;
    if (time_param(req, ex, "to", &q->to_ms) || time_param(req, ex, "from", &q->from_ms))
        return -1;
    if (q->from_ms == INT64_MIN)
        q->from_ms = q->to_ms - 24 * HOUR_MS;
    int n = http_query_param(req, "granularity", gran, sizeof(gran));
    if (n == -2 || (n >= 0 && strcmp(gran, "hour") != 0 && strcmp(gran, "day") != 0))
        return bad(ex, "granularity", "granularity must be hour or day");
    q->day = n >= 0 && strcmp(gran, "day") == 0;
    n = http_query_param(req, "userId", user, 160);
    if (n == -2 || n == 0)
        return bad(ex, "userId", "userId must be 1 to 128 characters");
    q->user_id = n > 0 ? user : NULL;
    if (q->to_ms <= q->from_ms)
        return bad(ex, "to", "to must be after from");
    if (q->to_ms - q->from_ms > (int64_t)USAGE_KEEP_HOURS * HOUR_MS)
        return bad(ex, "from", "from and to may be at most 35 days apart (the usage kept)");
    return 0;
}

void api__usage(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    usage_query_t q = {0};
    char user[160];
    if (read_query(req, ex, &q, user) != 0)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    if (api->opts.usage)
        usage_query(api->opts.usage, &q, add_row, items);
    answer(ex, o);
}

static void add_retained(void *ud, const usage_retained_t *r)
{
    cJSON *items = ud;
    cJSON *o = cJSON_CreateObject();
    char share[OWN_NAME_MAX];
    own_name(r->environment_id, share);
    cJSON_AddStringToObject(o, "environmentId", r->environment_id);
    cJSON_AddStringToObject(o, "userId", r->user_id);
    cJSON_AddStringToObject(o, "region", r->region);
    cJSON_AddStringToObject(o, "share", share);
    cJSON_AddNumberToObject(o, "sizeGB", r->size_gb);
    if (r->keep_until_ms > 0)
        add_time(o, "keepUntil", r->keep_until_ms);
    else
        cJSON_AddNullToObject(o, "keepUntil");
    cJSON_AddItemToArray(items, o);
}

void api__retained(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)req;
    (void)id;
    cJSON *o = cJSON_CreateObject();
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    if (api->opts.usage)
        usage_retained_each(api->opts.usage, add_retained, items);
    answer(ex, o);
}
