/*
 * The instance view of a container group as ACI's GET shows it
 * (Microsoft.ContainerInstance 2026-05-01: ContainerPropertiesInstanceView,
 * ContainerState, Event): the first container's states, restart count and
 * events, and the group's own events. Pure decoding.
 */
#include "azure_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EVENTS 64 /* ACI keeps few; more than this is not read */

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static char *dup_str(const cJSON *o, const char *k)
{
    const cJSON *v = get(o, k);
    return cJSON_IsString(v) ? d8_xstrdup(v->valuestring) : NULL;
}

static int int_of(const cJSON *o, const char *k, int *out)
{
    const cJSON *v = get(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < -2147483648.0 || v->valuedouble > 2147483647.0)
        return 0;
    *out = (int)v->valuedouble;
    return 1;
}

int64_t azure_parse_time(const char *s)
{
    if (!s)
        return 0;
    int y, mo, d, h, mi, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return 0;
    const char *p = s + 19;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        if (!digits)
            return 0;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5)
            return 0;
        off = (int64_t)(oh * 60 + om) * 60000 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return 0;
    }
    if (*p)
        return 0;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return 0;
    return (int64_t)t * 1000 + ms - off;
}

/* Reads an array of ACI Events (at most MAX_EVENTS) into *out, *n of
 * them; members that are not events with a name are skipped. */
static void events_from_json(const cJSON *arr, azure_event_t **out, size_t *n)
{
    size_t cap = (size_t)cJSON_GetArraySize(arr);
    if (!cJSON_IsArray(arr) || cap == 0)
        return;
    cap = cap < MAX_EVENTS ? cap : MAX_EVENTS;
    *out = d8_xcalloc(cap, sizeof(**out));
    const cJSON *ev;
    cJSON_ArrayForEach(ev, arr)
    {
        if (*n == cap)
            break;
        if (!cJSON_IsObject(ev) || !cJSON_IsString(get(ev, "name")))
            continue;
        azure_event_t *e = &(*out)[(*n)++];
        e->name = dup_str(ev, "name");
        e->type = dup_str(ev, "type");
        e->message = dup_str(ev, "message");
        if (!int_of(ev, "count", &e->count))
            e->count = 1;
        const cJSON *f = get(ev, "firstTimestamp"), *l = get(ev, "lastTimestamp");
        e->first_ms = azure_parse_time(cJSON_IsString(f) ? f->valuestring : NULL);
        e->last_ms = azure_parse_time(cJSON_IsString(l) ? l->valuestring : NULL);
        if (!e->last_ms)
            e->last_ms = e->first_ms;
    }
}

static void events_release(azure_event_t *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ev[i].name);
        free(ev[i].type);
        free(ev[i].message);
    }
    free(ev);
}

void azure__view_from_json(azure_group_t *g, const struct cJSON *props)
{
    events_from_json(get(get(props, "instanceView"), "events"), &g->group_events,
                     &g->ngroup_events);
    const cJSON *cs = get(props, "containers");
    const cJSON *c0 = cJSON_IsArray(cs) ? cs->child : NULL;
    const cJSON *iv = get(get(c0, "properties"), "instanceView");
    if (!cJSON_IsObject(iv))
        return;
    azure_container_view_t *c = &g->container;
    c->present = 1;
    c->name = dup_str(c0, "name");
    int_of(iv, "restartCount", &c->restart_count);
    const cJSON *cur = get(iv, "currentState"), *prev = get(iv, "previousState");
    c->state = dup_str(cur, "state");
    c->detail = dup_str(cur, "detailStatus");
    const cJSON *st = get(cur, "startTime");
    c->start_ms = azure_parse_time(cJSON_IsString(st) ? st->valuestring : NULL);
    c->has_exit = int_of(cur, "exitCode", &c->exit_code);
    c->has_prev = int_of(prev, "exitCode", &c->prev_exit_code);
    const cJSON *pf = get(prev, "finishTime");
    c->prev_finish_ms = azure_parse_time(cJSON_IsString(pf) ? pf->valuestring : NULL);
    events_from_json(get(iv, "events"), &c->events, &c->nevents);
}

void azure__view_release(azure_group_t *g)
{
    azure_container_view_t *c = &g->container;
    free(c->name);
    free(c->state);
    free(c->detail);
    events_release(c->events, c->nevents);
    events_release(g->group_events, g->ngroup_events);
    memset(c, 0, sizeof(*c));
    g->group_events = NULL;
    g->ngroup_events = 0;
}

const azure_event_t *azure_view_last_event(const azure_container_view_t *c, const char *name,
                                           const char *prefix)
{
    const azure_event_t *best = NULL;
    for (size_t i = 0; c && i < c->nevents; i++) {
        const azure_event_t *e = &c->events[i];
        if (strcmp(e->name, name) != 0)
            continue;
        if (prefix && (!e->message || strncmp(e->message, prefix, strlen(prefix)) != 0))
            continue;
        if (!best || e->last_ms >= best->last_ms)
            best = e;
    }
    return best;
}
