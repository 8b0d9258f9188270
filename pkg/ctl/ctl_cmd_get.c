/*
 * dev8ctl's reading commands: get, describe, events, logs, status, version.
 */
#include "ctl/ctl_int.h"

#include <stdlib.h>
#include <string.h>

static int is_env_word(const char *w)
{
    return strcmp(w, "environments") == 0 || strcmp(w, "environment") == 0 ||
           strcmp(w, "env") == 0 || strcmp(w, "envs") == 0;
}

cJSON *ctl__list_all(ctl_t *c, long long *rv, int *rc)
{
    if (rv)
        *rv = -1;
    cJSON *all = cJSON_CreateArray();
    char *cont = NULL;
    for (;;) {
        d8_buf_t p;
        d8_buf_init(&p);
        d8_buf_puts(&p, "/api/v1/environments?limit=500");
        if (c->a.selector) {
            d8_buf_puts(&p, "&userId=");
            ctl__url_escape(&p, c->a.selector + strlen("userId="));
        }
        if (c->a.phase) {
            d8_buf_puts(&p, "&phase=");
            ctl__url_escape(&p, c->a.phase);
        }
        if (c->a.region) {
            d8_buf_puts(&p, "&cloudRegion=");
            ctl__url_escape(&p, c->a.region);
        }
        if (cont) {
            d8_buf_puts(&p, "&continue=");
            ctl__url_escape(&p, cont);
        }
        free(cont);
        cont = NULL;
        cJSON *page = ctl__get_json(c, p.data, rc);
        d8_buf_release(&p);
        if (!page) {
            cJSON_Delete(all);
            return NULL;
        }
        cJSON *items = cJSON_DetachItemFromObjectCaseSensitive(page, "items");
        for (cJSON *it = items ? items->child : NULL; it;) {
            cJSON *next = it->next;
            cJSON_AddItemToArray(all, cJSON_DetachItemViaPointer(items, it));
            it = next;
        }
        cJSON_Delete(items);
        if (rv && *rv < 0)
            *rv = (long long)ctl__num(page, "resourceVersion", -1);
        const char *nc = ctl__str(page, "continue");
        if (nc && nc[0])
            cont = d8_xstrdup(nc);
        cJSON_Delete(page);
        if (!cont)
            return all;
    }
}

/* get orphans: the reaper's list as a table (ages against the clock). */
static int get_orphans(ctl_t *c)
{
    int rc;
    cJSON *j = ctl__get_for_table(c, "/api/v1/orphans", &rc);
    if (!j)
        return rc;
    ctl_table_t t;
    ctl__table_init(&t, 8);
    const char *head[] = {"KIND",  "NAME",       "ENV",        "REGION",
                          "STATE", "FIRST SEEN", "REAP AFTER", "BLOCKED BY"};
    ctl__table_row(&t, head);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    for (const cJSON *o = items ? items->child : NULL; o; o = o->next) {
        char seen[48], reap[48];
        ctl__age_of(c->now, ctl__str(o, "firstSeen"), seen, sizeof seen);
        long long at;
        if (ctl_parse_time(ctl__str(o, "reapAfter"), &at) == 0 && at > c->now) {
            char in[32];
            ctl_age(at - c->now, in, sizeof in);
            snprintf(reap, sizeof reap, "in %s", in);
        } else {
            snprintf(reap, sizeof reap, "now");
        }
        strncat(seen, " ago", sizeof seen - strlen(seen) - 1);
        const char *row[] = {ctl__str(o, "kind"),
                             ctl__str(o, "name"),
                             ctl__str(o, "envId"),
                             ctl__str(o, "region"),
                             ctl__str(o, "state"),
                             seen,
                             reap,
                             ctl__str(o, "blockedBy")};
        ctl__table_row(&t, row);
    }
    d8_buf_t b;
    d8_buf_init(&b);
    if (t.nrows > 1)
        ctl__table_render(&t, &b, "", c->color);
    else
        d8_buf_puts(&b, "No orphans.\n");
    fputs(b.data, c->o);
    d8_buf_release(&b);
    ctl__table_release(&t);
    cJSON_Delete(j);
    return 0;
}

/* Environments in the chosen format; single: one object, not a list. */
static void print_envs(ctl_t *c, cJSON *list, int single)
{
    if (c->out == OUT_JSON || c->out == OUT_YAML) {
        if (single) {
            ctl__print_value(c, list->child);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemReferenceToObject(o, "items", list);
            ctl__print_value(c, o);
            cJSON_Delete(o);
        }
    } else if (c->out == OUT_NAME) {
        for (const cJSON *e = list->child; e; e = e->next)
            fprintf(c->o, "%s\n", ctl__str(e, "id") ? ctl__str(e, "id") : "");
    } else if (!list->child) {
        fprintf(c->e, "No environments found.\n");
    } else {
        char *t = ctl_env_table(list, c->out == OUT_WIDE, c->now, c->color);
        fputs(t, c->o);
        free(t);
    }
}

int ctl__cmd_get(ctl_t *c)
{
    if (c->a.npos < 1)
        return ctl__usage(c, "get", "get needs a resource: environments or orphans");
    const char *what = c->a.pos[0];
    if (strcmp(what, "orphans") == 0 || strcmp(what, "orphan") == 0) {
        if (c->a.npos > 1 || c->a.selector || c->a.phase || c->a.region)
            return ctl__usage(c, "get", "get orphans takes no id and no filters");
        if (c->out == OUT_WIDE || c->out == OUT_NAME)
            return ctl__usage(c, "get", "get orphans prints table, json or yaml");
        return get_orphans(c);
    }
    if (!is_env_word(what))
        return ctl__usage(c, "get", "unknown resource \"%s\" (environments, orphans)", what);
    if (c->a.npos > 2)
        return ctl__usage(c, "get", "get environments takes at most one id");
    if (c->a.npos == 2 && (c->a.selector || c->a.phase || c->a.region))
        return ctl__usage(c, "get", "-l, --phase and --region filter lists, not one id");
    if (c->a.selector && strncmp(c->a.selector, "userId=", 7) != 0)
        return ctl__usage(c, "get", "-l %s: only userId=VALUE is supported", c->a.selector);
    int rc = 0;
    cJSON *list;
    if (c->a.npos == 2) {
        d8_buf_t p;
        d8_buf_init(&p);
        d8_buf_puts(&p, "/api/v1/environments/");
        ctl__url_escape(&p, c->a.pos[1]);
        cJSON *one = ctl__get_json(c, p.data, &rc);
        d8_buf_release(&p);
        if (!one)
            return rc;
        list = cJSON_CreateArray();
        cJSON_AddItemToArray(list, one);
    } else if (!(list = ctl__list_all(c, NULL, &rc))) {
        return rc;
    }
    print_envs(c, list, c->a.npos == 2);
    cJSON_Delete(list);
    return 0;
}

/* ---- describe ---------------------------------------------------------- */

static void kv(d8_buf_t *b, const char *indent, const char *k, const char *v)
{
    char key[64];
    snprintf(key, sizeof key, "%s:", k);
    d8_buf_printf(b, "%s%-17s %s\n", indent, key, v && v[0] ? v : "<none>");
}

static void kv_num(d8_buf_t *b, const char *indent, const char *k, const cJSON *o, const char *path,
                   const char *unit)
{
    char v[64];
    double d = ctl__num(o, path, -1);
    if (d < 0)
        snprintf(v, sizeof v, "<none>");
    else
        snprintf(v, sizeof v, "%g%s", d, unit);
    kv(b, indent, k, v);
}

/* "2026-..Z (5m ago)" for a time member, "<none>" when null. */
static void kv_time(ctl_t *c, d8_buf_t *b, const char *indent, const char *k, const cJSON *o,
                    const char *path)
{
    const char *t = ctl__str(o, path);
    char v[96], age[32];
    if (!t) {
        kv(b, indent, k, NULL);
        return;
    }
    ctl__age_of(c->now, t, age, sizeof age);
    snprintf(v, sizeof v, "%s (%s ago)", t, age);
    kv(b, indent, k, v);
}

static void describe_map(d8_buf_t *b, const char *k, const cJSON *m, int redacted)
{
    if (!cJSON_IsObject(m) || !m->child) {
        kv(b, "  ", k, NULL);
        return;
    }
    d8_buf_printf(b, "  %s:\n", k);
    for (const cJSON *x = m->child; x; x = x->next) {
        if (redacted)
            d8_buf_printf(b, "    %s (value not shown)\n", x->string);
        else
            d8_buf_printf(b, "    %s=%s\n", x->string,
                          cJSON_IsString(x) ? x->valuestring : "<not a string>");
    }
}

/* The spec part of describe; secret values are never in it (names only). */
static void describe_spec(d8_buf_t *b, const cJSON *e)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "spec");
    d8_buf_puts(b, "Spec:\n");
    if (!cJSON_IsObject(s)) {
        d8_buf_puts(b, "  <none> (a tombstone: the agent has no spec of this id)\n");
        return;
    }
    kv(b, "  ", "Name", ctl__str(s, "name"));
    kv(b, "  ", "User", ctl__str(s, "userId"));
    kv(b, "  ", "Region", ctl__str(s, "cloudRegion"));
    kv(b, "  ", "Image", ctl__str(s, "baseImage"));
    kv_num(b, "  ", "CPU", s, "cpuCores", " cores");
    kv_num(b, "  ", "Memory", s, "memoryGB", " GB");
    kv_num(b, "  ", "Storage", s, "storageGB", " GB");
    kv(b, "  ", "Power State", ctl__str(s, "powerState"));
    double as = ctl__num(s, "autoStopMinutes", 0);
    char v[64];
    snprintf(v, sizeof v, as > 0 ? "after %g minutes idle" : "off", as);
    kv(b, "  ", "Auto Stop", v);
    kv(b, "  ", "Storage Policy", ctl__str(s, "storagePolicy"));
    kv(b, "  ", "Update Policy", ctl__str(s, "updatePolicy"));
    describe_map(b, "Env", cJSON_GetObjectItemCaseSensitive(s, "env"), 0);
    describe_map(b, "Secret Env", cJSON_GetObjectItemCaseSensitive(s, "secretEnv"), 1);
}

/* The status part of describe: resources, times, last error, retry. */
static void describe_status(ctl_t *c, d8_buf_t *b, const cJSON *e)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
    d8_buf_puts(b, "Status:\n");
    kv(b, "  ", "Phase", ctl__str(st, "phase"));
    kv(b, "  ", "FQDN", ctl__str(st, "fqdn"));
    kv(b, "  ", "VS Code URL", ctl__str(st, "vsCodeUrl"));
    kv(b, "  ", "Public IP", ctl__str(st, "aciPublicIp"));
    kv(b, "  ", "Container Group", ctl__str(st, "aciContainerGroupId"));
    kv(b, "  ", "File Share", ctl__str(st, "azureFileShareName"));
    kv_time(c, b, "  ", "Last Activity", st, "lastActivityTime");
    kv_time(c, b, "  ", "Last Reconcile", st, "lastReconcileTime");
    kv_time(c, b, "  ", "Observed", st, "observedTime");
    if (cJSON_GetObjectItemCaseSensitive(st, "autoStopTime"))
        kv_time(c, b, "  ", "Auto Stop At", st, "autoStopTime");
    const cJSON *le = cJSON_GetObjectItemCaseSensitive(st, "lastError");
    char v[1200];
    if (cJSON_IsObject(le)) {
        snprintf(v, sizeof v, "%s: %s", ctl__str(le, "code") ? ctl__str(le, "code") : "",
                 ctl__str(le, "message") ? ctl__str(le, "message") : "");
        kv(b, "  ", "Last Error", v);
    } else {
        kv(b, "  ", "Last Error", NULL);
    }
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(st, "retry");
    if (cJSON_IsObject(rt)) {
        const char *next = ctl__str(rt, "nextAttemptTime");
        snprintf(v, sizeof v, "attempt %.0f, next %s", ctl__num(rt, "attempts", 0),
                 next ? next : "under way");
        kv(b, "  ", "Retry", v);
    } else {
        kv(b, "  ", "Retry", NULL);
    }
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(st, "estimatedCostPerHour"))) {
        snprintf(v, sizeof v, "%.4f", ctl__num(st, "estimatedCostPerHour", 0));
        kv(b, "  ", "Cost Per Hour", v);
    }
}

static void describe_conditions(d8_buf_t *b, const cJSON *e)
{
    ctl_table_t t;
    ctl__table_init(&t, 5);
    const char *head[] = {"TYPE", "STATUS", "REASON", "LAST TRANSITION", "MESSAGE"};
    ctl__table_row(&t, head);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(e, "status"), "conditions");
    for (const cJSON *x = cs ? cs->child : NULL; x; x = x->next) {
        const char *row[] = {ctl__str(x, "type"), ctl__str(x, "status"), ctl__str(x, "reason"),
                             ctl__str(x, "lastTransitionTime"), ctl__str(x, "message")};
        ctl__table_row(&t, row);
    }
    d8_buf_puts(b, "Conditions:\n");
    ctl__table_render(&t, b, "  ", 0);
    ctl__table_release(&t);
}

/* Containers and usage: only when the server's objects carry them. */
static void describe_optional(ctl_t *c, d8_buf_t *b, const cJSON *e)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(st, "containers");
    if (cJSON_IsArray(cs)) {
        ctl_table_t t;
        ctl__table_init(&t, 5);
        const char *head[] = {"NAME", "STATE", "RESTARTS", "LAST EXIT", "LAST RESTART"};
        ctl__table_row(&t, head);
        for (const cJSON *x = cs->child; x; x = x->next) {
            char rs[32], ex[32];
            snprintf(rs, sizeof rs, "%.0f", ctl__num(x, "restartCount", 0));
            const cJSON *le = cJSON_GetObjectItemCaseSensitive(x, "lastExitCode");
            snprintf(ex, sizeof ex, cJSON_IsNumber(le) ? "%.0f" : "<none>",
                     cJSON_IsNumber(le) ? le->valuedouble : 0.0);
            const char *row[] = {ctl__str(x, "name"), ctl__str(x, "state"), rs, ex,
                                 ctl__str(x, "lastRestartTime")};
            ctl__table_row(&t, row);
        }
        d8_buf_puts(b, "Containers:\n");
        ctl__table_render(&t, b, "  ", 0);
        ctl__table_release(&t);
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(st, "usage");
    if (cJSON_IsObject(u)) {
        char v[128];
        d8_buf_puts(b, "Usage:\n");
        kv_time(c, b, "  ", "Since", u, "since");
        kv_num(b, "  ", "Running", u, "runningSeconds", " s");
        kv_num(b, "  ", "CPU", u, "cpuCoreSeconds", " core-s");
        kv_num(b, "  ", "Memory", u, "memoryGBSeconds", " GB-s");
        kv_num(b, "  ", "Storage", u, "storageGBHours", " GB-h");
        /* The agent leaves the cost (and currency) out when the region has
         * no price table: say so rather than print a zero. */
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(u, "estimatedCost")))
            snprintf(v, sizeof v, "%.4f %s", ctl__num(u, "estimatedCost", 0),
                     ctl__str(u, "currency") ? ctl__str(u, "currency") : "");
        else
            snprintf(v, sizeof v, "<none> (no price table for the region)");
        kv(b, "  ", "Estimated Cost", v);
    }
}

int ctl__cmd_describe(ctl_t *c)
{
    if (c->a.npos != 2 || !is_env_word(c->a.pos[0]))
        return ctl__usage(c, "describe", "usage: describe environment ID");
    const char *id = c->a.pos[1];
    d8_buf_t p;
    d8_buf_init(&p);
    d8_buf_puts(&p, "/api/v1/environments/");
    ctl__url_escape(&p, id);
    int rc;
    cJSON *e = ctl__get_json(c, p.data, &rc);
    d8_buf_release(&p);
    if (!e)
        return rc;
    d8_buf_t b;
    d8_buf_init(&b);
    char gen[64];
    kv(&b, "", "ID", ctl__str(e, "id"));
    snprintf(gen, sizeof gen, "%.0f (observed %.0f)", ctl__num(e, "generation", 0),
             ctl__num(e, "status.observedGeneration", 0));
    kv(&b, "", "Generation", gen);
    kv_time(c, &b, "", "Created", e, "createdAt");
    kv_time(c, &b, "", "Updated", e, "updatedAt");
    describe_spec(&b, e);
    describe_status(c, &b, e);
    describe_conditions(&b, e);
    describe_optional(c, &b, e);
    d8_buf_puts(&b, "Events:\n");
    int ev = ctl__events_table(c, id, &b, "  ", NULL);
    if (ev == 404)
        d8_buf_puts(&b, "  <the server does not offer events>\n");
    else if (ev != 0)
        d8_buf_puts(&b, "  <could not be read>\n");
    fputs(b.data, c->o);
    d8_buf_release(&b);
    cJSON_Delete(e);
    return ev == 0 || ev == 404 ? 0 : CTL_EXIT_ERROR;
}
