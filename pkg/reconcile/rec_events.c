/*
 * The reconciler's side of each environment's events (pkg/events): phase
 * transitions, the ARM mutations it issues and their results, and the
 * Azure instance-view events it newly sees when it reads a group.
 */
#include "reconcile_int.h"

#include <stdio.h>
#include <string.h>

/* FNV-1a of an Azure event's name and message. */
static uint32_t event_hash(const azure_event_t *ev)
{
    uint32_t h = 2166136261u;
    const char *parts[] = {ev->name ? ev->name : "", "\n", ev->message ? ev->message : ""};
    for (size_t p = 0; p < 3; p++)
        for (const unsigned char *s = (const unsigned char *)parts[p]; *s; s++)
            h = (h ^ *s) * 16777619u;
    return h;
}

/* The count of event hash h at the previous GET, 0 when not seen. */
static int seen_count(const rec_env_t *e, uint32_t h)
{
    for (size_t i = 0; i < e->naz_seen; i++)
        if (e->az_seen[i] == h)
            return e->az_seen_count[i];
    return 0;
}

typedef struct seen_next {
    uint32_t h[32];
    int count[32];
    size_t n;
} seen_next_t;

/* Records ev when it is new or its count grew since the last GET. */
static void one_azure_event(rec_env_t *e, const azure_event_t *ev, seen_next_t *next)
{
    uint32_t h = event_hash(ev);
    if (next->n < 32) {
        next->h[next->n] = h;
        next->count[next->n++] = ev->count;
    }
    if (seen_count(e, h) >= ev->count)
        return;
    const char *type = ev->type && strcmp(ev->type, "Warning") == 0 ? "Warning" : "Normal";
    events_add(e->r->events, e->id, type, ev->name, "azure", ev->last_ms, ev->count, ev->message);
}

void reconcile__azure_events(rec_env_t *e, const azure_group_t *g)
{
    if (!e->r->events)
        return;
    seen_next_t next;
    memset(&next, 0, sizeof(next));
    for (size_t i = 0; i < g->ngroup_events; i++)
        one_azure_event(e, &g->group_events[i], &next);
    for (size_t i = 0; i < g->container.nevents; i++)
        one_azure_event(e, &g->container.events[i], &next);
    memcpy(e->az_seen, next.h, sizeof(next.h));
    memcpy(e->az_seen_count, next.count, sizeof(next.count));
    e->naz_seen = next.n;
}

void reconcile__event_request(rec_env_t *e, decide_action_t a, const char *why)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: %s", reconcile_action_call(a), why ? why : "");
    events_add(e->r->events, e->id, "Normal", "ArmRequest", "agent", 0, 1, msg);
}

void reconcile__event_result(rec_env_t *e, const azure_result_t *res)
{
    decide_action_t a = e->action;
    if (a == DECIDE_NONE || a == DECIDE_GET_GROUP || a == DECIDE_GET_SHARE ||
        a == DECIDE_GET_OPERATION || a == DECIDE_REMOVE_OBJECT)
        return;
    char msg[EVENTS_MESSAGE_MAX];
    if (res->err >= 0 || res->err == D8_ENOENT) {
        snprintf(msg, sizeof(msg), "%s: %s (HTTP %d)", reconcile_action_call(a),
                 res->err == D8_ENOENT ? "already gone"
                 : res->accepted       ? "accepted"
                                       : "done",
                 res->http_status);
        events_add(e->r->events, e->id, "Normal", "ArmSucceeded", "agent", 0, 1, msg);
        return;
    }
    if (res->err == D8_ECANCELED)
        return;
    snprintf(msg, sizeof(msg), "%s failed: %s%s%s", reconcile_action_call(a),
             res->error_code && *res->error_code ? res->error_code : d8_strerror(res->err),
             res->error_message && *res->error_message ? ": " : "",
             res->error_message ? res->error_message : "");
    events_add(e->r->events, e->id, "Warning", "ArmFailed", "agent", 0, 1, msg);
}

void reconcile__event_phase(const rec_env_t *e, int from, int to, const char *reason,
                            const char *msg)
{
    char text[EVENTS_MESSAGE_MAX];
    snprintf(text, sizeof(text), "%s -> %s (%s)%s%s", store_phase_name((env_phase_t)from),
             store_phase_name((env_phase_t)to), reason ? reason : "", msg && *msg ? ": " : "",
             msg ? msg : "");
    events_add(e->r->events, e->id, to == PHASE_ERROR ? "Warning" : "Normal", "PhaseChanged",
               "agent", 0, 1, text);
}
