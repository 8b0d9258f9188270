/*
 * The report of preflight (its lines, JSON and table) and the agent's
 * action list with Azure RBAC's matching of permissions.
 */
#include "preflight.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Every action the agent performs in a region's resource group, by the
 * operations pkg/azure calls (Learn: Azure permissions for Containers and
 * for Storage, "Microsoft.ContainerInstance" and "Microsoft.Storage"
 * tables). hack/azure/role.json and the README list exactly these; a test
 * compares the three.
 */
const char *const preflight_actions[] = {
    "Microsoft.ContainerInstance/containerGroups/read",
    "Microsoft.ContainerInstance/containerGroups/write",
    "Microsoft.ContainerInstance/containerGroups/delete",
    "Microsoft.ContainerInstance/containerGroups/start/action",
    "Microsoft.ContainerInstance/containerGroups/stop/action",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Storage/storageAccounts/read",
    "Microsoft.Storage/storageAccounts/listKeys/action",
    "Microsoft.Storage/storageAccounts/fileServices/read",
    "Microsoft.Storage/storageAccounts/fileServices/shares/read",
    "Microsoft.Storage/storageAccounts/fileServices/shares/write",
    "Microsoft.Storage/storageAccounts/fileServices/shares/delete",
    NULL,
};

const char *preflight_status_name(preflight_status_t st)
{
    switch (st) {
    case PREFLIGHT_PASS:
        return "pass";
    case PREFLIGHT_WARN:
        return "warn";
    case PREFLIGHT_FAIL:
        return "fail";
    }
    return "fail";
}

void preflight_report_init(preflight_report_t *r)
{
    memset(r, 0, sizeof(*r));
}

void preflight_report_release(preflight_report_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->checks[i].name);
        free(r->checks[i].message);
        free(r->checks[i].fix);
    }
    free(r->checks);
    memset(r, 0, sizeof(*r));
}

void preflight_add(preflight_report_t *r, const char *name, preflight_status_t st, const char *fix,
                   const char *fmt, ...)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->checks = d8_xrealloc(r->checks, r->cap * sizeof(*r->checks));
    }
    d8_buf_t b;
    d8_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    d8_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    preflight_check_t *c = &r->checks[r->n++];
    c->name = d8_xstrdup(name);
    c->status = st;
    c->message = d8_buf_detach(&b, NULL);
    c->fix = d8_xstrdup(st == PREFLIGHT_PASS || !fix ? "" : fix);
    r->count[st]++;
}

cJSON *preflight_report_json(const preflight_report_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "checks");
    for (size_t i = 0; i < r->n; i++) {
        const preflight_check_t *c = &r->checks[i];
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "name", c->name);
        cJSON_AddStringToObject(it, "status", preflight_status_name(c->status));
        cJSON_AddStringToObject(it, "message", c->message);
        cJSON_AddStringToObject(it, "fix", c->fix);
        cJSON_AddItemToArray(arr, it);
    }
    cJSON *s = cJSON_AddObjectToObject(o, "summary");
    cJSON_AddNumberToObject(s, "pass", (double)r->count[PREFLIGHT_PASS]);
    cJSON_AddNumberToObject(s, "warn", (double)r->count[PREFLIGHT_WARN]);
    cJSON_AddNumberToObject(s, "fail", (double)r->count[PREFLIGHT_FAIL]);
    return o;
}

void preflight_report_table(const preflight_report_t *r, d8_buf_t *out)
{
    size_t w = 5;
    for (size_t i = 0; i < r->n; i++) {
        size_t n = strlen(r->checks[i].name);
        w = n > w ? n : w;
    }
    d8_buf_printf(out, "%-6s %-*s %s\n", "STATUS", (int)w, "CHECK", "MESSAGE");
    for (size_t i = 0; i < r->n; i++) {
        const preflight_check_t *c = &r->checks[i];
        d8_buf_printf(out, "%-6s %-*s %s\n", preflight_status_name(c->status), (int)w, c->name,
                      c->message);
        if (c->fix[0])
            d8_buf_printf(out, "       %-*s fix: %s\n", (int)w, "", c->fix);
    }
    d8_buf_printf(out, "%zu pass, %zu warn, %zu fail\n", r->count[PREFLIGHT_PASS],
                  r->count[PREFLIGHT_WARN], r->count[PREFLIGHT_FAIL]);
}

/* Glob match of an RBAC action pattern ('*' any run), any case. */
static int glob_ci(const char *p, const char *s)
{
    const char *star = NULL, *mark = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            mark = s;
        } else if (*p && tolower((unsigned char)*p) == tolower((unsigned char)*s)) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++mark;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static int any_match(const cJSON *patterns, const char *action)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, patterns)
    {
        if (cJSON_IsString(it) && glob_ci(it->valuestring, action))
            return 1;
    }
    return 0;
}

int preflight_allows(const cJSON *perms, const char *action)
{
    const cJSON *p;
    cJSON_ArrayForEach(p, perms)
    {
        if (any_match(cJSON_GetObjectItemCaseSensitive(p, "actions"), action) &&
            !any_match(cJSON_GetObjectItemCaseSensitive(p, "notActions"), action))
            return 1;
    }
    return 0;
}
