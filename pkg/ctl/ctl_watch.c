/*
 * `dev8ctl watch [ID]`: follows GET /api/v1/watch and prints one line per
 * change (or one JSON object per line with -o json). A dropped connection
 * is resumed with Last-Event-ID after a bounded backoff; a 410 (the server
 * cannot resume: its ring moved on, or it restarted) lists the
 * environments again, prints what changed meanwhile, and watches from the
 * list's resourceVersion.
 */
#include "ctl/ctl_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct watch {
    ctl_t *c;
    const char *id; /* only this environment, or NULL */
    char last_id[64];
    int printed_header;
    cJSON *seen; /* id -> "PHASE/READY" last printed */
    int events;
} watch_t;

static void state_of(const cJSON *obj, char *out, size_t n)
{
    const cJSON *rc = ctl__cond(obj, "Ready");
    snprintf(
        out, n, "%s/%s/%.0f", ctl__str(obj, "status.phase") ? ctl__str(obj, "status.phase") : "",
        rc && ctl__str(rc, "reason") ? ctl__str(rc, "reason") : "", ctl__num(obj, "generation", 0));
}

/* Prints one change of obj (type ADDED, MODIFIED, DELETED or RESYNC). */
static void print_change(watch_t *w, const char *type, const cJSON *obj)
{
    ctl_t *c = w->c;
    const char *id = ctl__str(obj, "id");
    if (!id || (w->id && strcmp(w->id, id) != 0))
        return;
    char st[160];
    state_of(obj, st, sizeof st);
    cJSON_DeleteItemFromObjectCaseSensitive(w->seen, id);
    if (strcmp(type, "DELETED") != 0)
        cJSON_AddStringToObject(w->seen, id, st);
    w->events++;
    if (c->out == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", type);
        cJSON_AddItemToObject(o, "object", cJSON_Duplicate(obj, 1));
        char *s = cJSON_PrintUnformatted(o);
        fprintf(c->o, "%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        if (!w->printed_header) {
            fprintf(c->o, "%-9s  %-24s  %-9s  %-22s  %s\n", "EVENT", "ID", "PHASE", "READY",
                    "MESSAGE");
            w->printed_header = 1;
        }
        const cJSON *rc = ctl__cond(obj, "Ready");
        const char *phase = ctl__str(obj, "status.phase") ? ctl__str(obj, "status.phase") : "";
        int col = c->color ? ctl__phase_color(phase) : 0;
        char ready[64];
        snprintf(ready, sizeof ready, "%s/%s",
                 rc && ctl__str(rc, "status") ? ctl__str(rc, "status") : "?",
                 rc && ctl__str(rc, "reason") ? ctl__str(rc, "reason") : "?");
        const char *msg = rc && ctl__str(rc, "message") ? ctl__str(rc, "message") : "";
        if (col)
            fprintf(c->o, "%-9s  %-24s  \033[%dm%-9s\033[0m  %-22s  %s\n", type, id, col, phase,
                    ready, msg);
        else
            fprintf(c->o, "%-9s  %-24s  %-9s  %-22s  %s\n", type, id, phase, ready, msg);
    }
    fflush(c->o);
}

/* An `event: EVENT` of the stream ({"environmentId", "event": {time, type,
 * reason, message, source, count}}): one line, or the object with -o json. */
static void print_event(watch_t *w, const cJSON *ev)
{
    ctl_t *c = w->c;
    const char *id = ctl__str(ev, "environmentId");
    if (!id || (w->id && strcmp(w->id, id) != 0))
        return;
    if (c->out == OUT_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "EVENT");
        cJSON_AddStringToObject(o, "environmentId", id);
        cJSON_AddItemToObject(o, "event",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ev, "event"), 1));
        char *s = cJSON_PrintUnformatted(o);
        fprintf(c->o, "%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        const char *t = ctl__str(ev, "event.type"), *r = ctl__str(ev, "event.reason");
        const char *m = ctl__str(ev, "event.message");
        fprintf(c->o, "%-9s  %-24s  %-9s  %-22s  %s\n", "EVENT", id, t ? t : "?", r ? r : "?",
                m ? m : "");
    }
    fflush(c->o);
}

static int on_event(const char *type, const char *id, const char *data, void *ud)
{
    watch_t *w = ud;
    (void)id;
    int change =
        strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 || strcmp(type, "DELETED") == 0;
    if (!change && strcmp(type, "EVENT") != 0)
        return 0; /* a kind this client does not know */
    cJSON *obj = cJSON_Parse(data);
    if (obj && change)
        print_change(w, type, obj);
    else if (obj)
        print_event(w, obj);
    cJSON_Delete(obj);
    return 0;
}

/* After a 410: lists again, prints RESYNC for what changed since the last
 * line printed (and DELETED for what is gone), and returns the list's
 * resourceVersion to watch from; -1 on failure (printed). */
static long long relist(watch_t *w)
{
    int rc;
    long long rv;
    cJSON *items = ctl__list_all(w->c, &rv, &rc);
    if (!items)
        return -1;
    cJSON *now = cJSON_CreateObject();
    for (const cJSON *e = items->child; e; e = e->next) {
        const char *id = ctl__str(e, "id");
        if (!id)
            continue;
        char st[160];
        state_of(e, st, sizeof st);
        cJSON_AddTrueToObject(now, id);
        const char *was = ctl__str(w->seen, id);
        if (!was || strcmp(was, st) != 0)
            print_change(w, "RESYNC", e);
    }
    for (cJSON *s = w->seen->child; s;) {
        cJSON *next = s->next;
        if (!cJSON_GetObjectItemCaseSensitive(now, s->string)) {
            cJSON *gone = cJSON_CreateObject();
            cJSON_AddStringToObject(gone, "id", s->string);
            print_change(w, "DELETED", gone);
            cJSON_Delete(gone);
        }
        s = next;
    }
    cJSON_Delete(now);
    cJSON_Delete(items);
    return rv;
}

/* One session of the stream; returns 1 to reconnect, 0 to end, or an exit
 * status + 10 on a final error. */
static int session(watch_t *w, long long from_rv, int *connected)
{
    ctl_t *c = w->c;
    char path[96];
    if (from_rv >= 0)
        snprintf(path, sizeof path, "/api/v1/watch?resourceVersion=%lld", from_rv);
    else
        snprintf(path, sizeof path, "/api/v1/watch");
    long status = 0;
    d8_buf_t eb;
    d8_buf_init(&eb);
    int rc = ctl__sse(c, path, w->last_id, on_event, w, &status, &eb);
    int out = 1;
    if (status == 200)
        *connected = 2; /* 2: this session was answered */
    if (ctl__stop) {
        out = 0;
    } else if (rc < 0 && !*connected) {
        ctl__fail(c, "cannot reach the server %s", c->target.server);
        out = 10 + CTL_EXIT_ERROR;
    } else if (status == 410) {
        fprintf(c->e, "watch: the server cannot resume from %s (410 Gone); listing again\n",
                w->last_id[0] ? w->last_id : "that resourceVersion");
        out = 2;
    } else if (status != 0 && status != 200) {
        ctl_resp_t r = {.status = status, .body = eb};
        ctl__api_error(c, &r, NULL);
        out = 10 + CTL_EXIT_ERROR;
    }
    d8_buf_release(&eb);
    return out;
}

int ctl__cmd_watch(ctl_t *c)
{
    if (c->a.npos > 1)
        return ctl__usage(c, "watch", "watch takes at most one id");
    if (c->out != OUT_TABLE && c->out != OUT_JSON)
        return ctl__usage(c, "watch", "watch prints lines or -o json");
    if (ctl__resolve(c) < 0)
        return CTL_EXIT_ERROR;
    watch_t w = {.c = c, .id = c->a.npos ? c->a.pos[0] : NULL, .seen = cJSON_CreateObject()};
    long long from = -1;
    int connected = 0, failures = 0, gone = 0, rc = 0;
    while (!ctl__stop) {
        int s = session(&w, from, &connected);
        if (connected == 2) {
            connected = 1;
            failures = 0;
            if (s != 2)
                gone = 0;
        }
        if (s == 0)
            break;
        if (s >= 10) {
            rc = s - 10;
            break;
        }
        if (s == 2) {
            /* Two 410s in a row (a ring outrun by churn): pause a little
             * rather than list in a tight loop. */
            if (gone++ > 0)
                ctl__sleep_ms(c, gone < 5 ? 200 << gone : 5000);
            w.last_id[0] = 0;
            from = relist(&w);
            if (from < 0) {
                /* The server went away again: retry the list later. */
                from = -1;
                ctl__sleep_ms(c, 1000);
                continue;
            }
            failures = 0;
            continue;
        }
        /* The stream ended or broke: resume after a bounded backoff. */
        if (failures++ == 0)
            fprintf(c->e, "watch: connection lost; resuming from %s\n",
                    w.last_id[0] ? w.last_id : "the start");
        ctl__sleep_ms(c, failures < 5 ? 200 << failures : 5000);
        from = -1;
    }
    cJSON_Delete(w.seen);
    return rc;
}
