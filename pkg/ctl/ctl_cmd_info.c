/*
 * dev8ctl's per-environment streams and controller views: events, logs,
 * status, version, and the simple mutations (delete, start, stop, restart,
 * reaper resume).
 */
#include "ctl/ctl_int.h"

#include <stdlib.h>
#include <string.h>

static void env_path(d8_buf_t *p, const char *id, const char *suffix)
{
    d8_buf_init(p);
    d8_buf_puts(p, "/api/v1/environments/");
    ctl__url_escape(p, id);
    if (suffix)
        d8_buf_puts(p, suffix);
}

/* After a 404 of a per-environment route: the environment's own error when
 * it does not exist, else "the server does not offer <what>". */
static int route_404(ctl_t *c, const char *id, const char *what, const char *route)
{
    d8_buf_t p;
    env_path(&p, id, NULL);
    ctl_resp_t r;
    int rc = CTL_EXIT_ERROR;
    if (ctl__request(c, "GET", p.data, NULL, &r) == 0) {
        if (r.status == 200)
            ctl__fail(c,
                      "the server does not offer %s (GET %s answered 404; it needs a newer "
                      "dev8-agent)",
                      what, route);
        else
            ctl__api_error(c, &r, NULL);
    }
    ctl__resp_release(&r);
    d8_buf_release(&p);
    return rc;
}

int ctl__events_table(ctl_t *c, const char *id, d8_buf_t *b, const char *indent, cJSON **json_out)
{
    d8_buf_t p;
    env_path(&p, id, "/events");
    ctl_resp_t r;
    int rc = -1;
    if (ctl__request(c, "GET", p.data, NULL, &r) < 0)
        goto done;
    if (r.status == 404) {
        rc = 404;
        goto done;
    }
    if (r.status != 200) {
        rc = (int)r.status;
        ctl__api_error(c, &r, NULL);
        goto done;
    }
    cJSON *j = ctl__json(c, &r);
    if (!j)
        goto done;
    ctl_table_t t;
    ctl__table_init(&t, 6);
    const char *head[] = {"AGE", "TYPE", "REASON", "SOURCE", "COUNT", "MESSAGE"};
    ctl__table_row(&t, head);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    for (const cJSON *x = items ? items->child : NULL; x; x = x->next) {
        char age[32], count[32];
        ctl__age_of(c->now, ctl__str(x, "time"), age, sizeof age);
        snprintf(count, sizeof count, "%.0f", ctl__num(x, "count", 1));
        const char *row[] = {
            age,   ctl__str(x, "type"),   ctl__str(x, "reason"), ctl__str(x, "source"),
            count, ctl__str(x, "message")};
        ctl__table_row(&t, row);
        if (ctl__str(x, "type") && strcmp(ctl__str(x, "type"), "Warning") == 0)
            ctl__table_color(&t, t.nrows - 1, 1, 33);
    }
    if (t.nrows > 1)
        ctl__table_render(&t, b, indent, c->color);
    else
        d8_buf_printf(b, "%s<none>\n", indent);
    ctl__table_release(&t);
    if (json_out)
        *json_out = j;
    else
        cJSON_Delete(j);
    rc = 0;
done:
    ctl__resp_release(&r);
    d8_buf_release(&p);
    return rc;
}

int ctl__cmd_events(ctl_t *c)
{
    if (c->a.npos != 1)
        return ctl__usage(c, "events", "usage: events ID");
    const char *id = c->a.pos[0];
    d8_buf_t b;
    d8_buf_init(&b);
    cJSON *j = NULL;
    int rc = ctl__events_table(c, id, &b, "", &j);
    if (rc == 404) {
        d8_buf_t route;
        env_path(&route, id, "/events");
        rc = route_404(c, id, "events", route.data);
        d8_buf_release(&route);
    } else if (rc == 0) {
        if (c->out == OUT_JSON || c->out == OUT_YAML)
            ctl__print_value(c, j);
        else
            fputs(b.data, c->o);
    } else {
        rc = CTL_EXIT_ERROR;
    }
    cJSON_Delete(j);
    d8_buf_release(&b);
    return rc;
}

/* ---- logs -------------------------------------------------------------- */

/* One GET of the log tail into *text (owned); 0, 404 or an exit status. */
static int logs_once(ctl_t *c, const char *path, char **text)
{
    ctl_resp_t r;
    *text = NULL;
    if (ctl__request(c, "GET", path, NULL, &r) < 0) {
        ctl__resp_release(&r);
        return CTL_EXIT_ERROR;
    }
    int rc = 0;
    if (r.status == 404)
        rc = 404;
    else if (r.status != 200)
        rc = ctl__api_error(c, &r, NULL);
    else
        *text = d8_buf_detach(&r.body, NULL);
    ctl__resp_release(&r);
    return rc;
}

int ctl__cmd_logs(ctl_t *c)
{
    if (c->a.npos != 1)
        return ctl__usage(c, "logs", "usage: logs ID [--tail N] [-f]");
    char *end;
    long tail = c->a.tail ? strtol(c->a.tail, &end, 10) : 200;
    if (c->a.tail && (*end || tail < 1 || tail > 10000))
        return ctl__usage(c, "logs", "--tail %s: a number from 1 to 10000", c->a.tail);
    long interval = c->a.interval ? strtol(c->a.interval, &end, 10) : 2;
    if (c->a.interval && (*end || interval < 1 || interval > 60))
        return ctl__usage(c, "logs", "--interval %s: seconds from 1 to 60", c->a.interval);
    const char *id = c->a.pos[0];
    d8_buf_t p;
    env_path(&p, id, "/logs");
    d8_buf_t route;
    d8_buf_init(&route);
    d8_buf_puts(&route, p.data);
    d8_buf_printf(&p, "?tail=%ld", tail);
    char *prev = NULL, *text = NULL;
    int rc = logs_once(c, p.data, &text);
    while (rc == 0) {
        size_t off = prev ? ctl_logs_new_offset(prev, text) : 0;
        fputs(text + off, c->o);
        fflush(c->o);
        free(prev);
        prev = text;
        text = NULL;
        if (!c->a.follow)
            break;
        ctl__sleep_ms(c, (int)interval * 1000);
        if (ctl__stop)
            break;
        rc = logs_once(c, p.data, &text);
    }
    if (rc == 404)
        rc = route_404(c, id, "container logs", route.data);
    free(prev);
    free(text);
    d8_buf_release(&p);
    d8_buf_release(&route);
    return rc;
}

/* ---- status, version --------------------------------------------------- */

/* The regions of GET /api/v1/status as a table (stale ones in red). */
static void status_regions(ctl_t *c, const cJSON *j, d8_buf_t *b)
{
    ctl_table_t t;
    ctl__table_init(&t, 5);
    const char *head[] = {"REGION", "LAST LIST", "STALE", "FAILED LISTS", "ERROR"};
    ctl__table_row(&t, head);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "regions");
    for (const cJSON *x = rs ? rs->child : NULL; x; x = x->next) {
        char age[48] = "<never>", failed[32];
        if (ctl__str(x, "lastListTime")) {
            ctl__age_of(c->now, ctl__str(x, "lastListTime"), age, sizeof age);
            strncat(age, " ago", sizeof age - strlen(age) - 1);
        }
        snprintf(failed, sizeof failed, "%.0f", ctl__num(x, "failedLists", 0));
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(x, "stale");
        const char *row[] = {ctl__str(x, "name"), age, cJSON_IsTrue(st) ? "true" : "false", failed,
                             ctl__str(x, "lastError")};
        ctl__table_row(&t, row);
        if (cJSON_IsTrue(st))
            ctl__table_color(&t, t.nrows - 1, 2, 31);
    }
    ctl__table_render(&t, b, "  ", c->color);
    ctl__table_release(&t);
}

int ctl__cmd_status(ctl_t *c)
{
    if (c->a.npos)
        return ctl__usage(c, "status", "status takes no arguments");
    int rc;
    cJSON *j = ctl__get_for_table(c, "/api/v1/status", &rc);
    if (!j)
        return rc;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b, "Server:        %s\n", c->target.server);
    d8_buf_printf(&b, "Version:       %s\n", ctl__str(j, "version") ? ctl__str(j, "version") : "?");
    d8_buf_printf(&b, "Controller:    %s\n",
                  ctl__str(j, "controller") ? ctl__str(j, "controller") : "?");
    d8_buf_printf(&b, "Ready:         %s\n",
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ready")) ? "true" : "false");
    d8_buf_printf(&b, "Synced:        %s\n",
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "synced")) ? "true" : "false");
    d8_buf_printf(&b, "Environments:  %.0f", ctl__num(j, "environments.total", 0));
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "environments"), "byPhase");
    for (const cJSON *x = by ? by->child : NULL; x; x = x->next)
        if (cJSON_IsNumber(x) && x->valuedouble > 0)
            d8_buf_printf(&b, " %s=%.0f", x->string, x->valuedouble);
    d8_buf_printf(&b, "\nQueue:         depth %.0f, delayed %.0f, active %.0f\n",
                  ctl__num(j, "queueDepth", 0), ctl__num(j, "queueDelayed", 0),
                  ctl__num(j, "reconcilesActive", 0));
    d8_buf_printf(&b, "Watch clients: %.0f\n", ctl__num(j, "watchClients", 0));
    d8_buf_printf(&b, "Azure token:   %s\n",
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "azureTokenObtained"))
                      ? "obtained"
                      : "not obtained");
    d8_buf_printf(
        &b, "Reaper:        %s (orphans: %.0f groups, %.0f shares; reaped: %.0f, %.0f)\n",
        ctl__str(j, "reaper.state") ? ctl__str(j, "reaper.state") : "?",
        ctl__num(j, "reaper.orphans.containerGroup", 0), ctl__num(j, "reaper.orphans.fileShare", 0),
        ctl__num(j, "reaper.reaped.containerGroup", 0), ctl__num(j, "reaper.reaped.fileShare", 0));
    d8_buf_puts(&b, "Regions:\n");
    status_regions(c, j, &b);
    fputs(b.data, c->o);
    d8_buf_release(&b);
    cJSON_Delete(j);
    return 0;
}

int ctl__cmd_version(ctl_t *c)
{
    if (c->a.npos)
        return ctl__usage(c, "version", "version takes no arguments");
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "clientVersion", D8_VERSION);
    int rc = 0, failed = 0;
    if (!c->a.client_only) {
        /* The API has no version route: GET /api/v1/status carries it. */
        cJSON *j = ctl__get_json(c, "/api/v1/status", &rc);
        failed = j == NULL;
        if (j && ctl__str(j, "version"))
            cJSON_AddStringToObject(v, "serverVersion", ctl__str(j, "version"));
        cJSON_Delete(j);
    }
    if (c->out == OUT_JSON || c->out == OUT_YAML) {
        ctl__print_value(c, v);
    } else {
        fprintf(c->o, "Client Version: %s\n", D8_VERSION);
        if (ctl__str(v, "serverVersion"))
            fprintf(c->o, "Server Version: %s\n", ctl__str(v, "serverVersion"));
    }
    cJSON_Delete(v);
    return failed ? CTL_EXIT_ERROR : 0;
}

/* ---- simple mutations -------------------------------------------------- */

/* method on path; prints "environment/ID <done>" on 2xx. */
static int mutate(ctl_t *c, const char *method, const char *path, const char *id, const char *done)
{
    ctl_resp_t r;
    if (ctl__request(c, method, path, NULL, &r) < 0) {
        ctl__resp_release(&r);
        return CTL_EXIT_ERROR;
    }
    int rc = 0;
    if (r.status / 100 != 2)
        rc = ctl__api_error(c, &r, NULL);
    else if (id)
        fprintf(c->o, "environment/%s %s\n", id, done);
    else
        fprintf(c->o, "%s\n", done);
    ctl__resp_release(&r);
    return rc;
}

int ctl__cmd_delete(ctl_t *c)
{
    const char *w = c->a.npos == 2 ? c->a.pos[0] : "";
    if (strcmp(w, "environment") != 0 && strcmp(w, "environments") != 0 && strcmp(w, "env") != 0 &&
        strcmp(w, "envs") != 0)
        return ctl__usage(c, "delete", "usage: delete environment ID");
    d8_buf_t p;
    env_path(&p, c->a.pos[1], NULL);
    int rc = mutate(c, "DELETE", p.data, c->a.pos[1], "deleted (its resources are being removed)");
    d8_buf_release(&p);
    return rc;
}

int ctl__cmd_power(ctl_t *c, const char *action)
{
    if (c->a.npos != 1)
        return ctl__usage(c, action, "usage: %s ID", action);
    d8_buf_t p;
    env_path(&p, c->a.pos[0], "/");
    d8_buf_puts(&p, action);
    const char *done = strcmp(action, "start") == 0  ? "starting"
                       : strcmp(action, "stop") == 0 ? "stopping"
                                                     : "restarting";
    int rc = mutate(c, "POST", p.data, c->a.pos[0], done);
    d8_buf_release(&p);
    return rc;
}

int ctl__cmd_reaper(ctl_t *c)
{
    if (c->a.npos != 1 || strcmp(c->a.pos[0], "resume") != 0)
        return ctl__usage(c, "reaper", "usage: reaper resume");
    ctl_resp_t r;
    if (ctl__request(c, "POST", "/api/v1/reaper/resume", NULL, &r) < 0) {
        ctl__resp_release(&r);
        return CTL_EXIT_ERROR;
    }
    int rc = 0;
    cJSON *j = r.status == 200 ? ctl__json(c, &r) : NULL;
    if (r.status != 200)
        rc = ctl__api_error(c, &r, NULL);
    else if (!j)
        rc = CTL_EXIT_ERROR;
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "resumed")))
        fprintf(c->o, "reaper resumed\n");
    else
        fprintf(c->o, "reaper was not suspended\n");
    cJSON_Delete(j);
    ctl__resp_release(&r);
    return rc;
}
