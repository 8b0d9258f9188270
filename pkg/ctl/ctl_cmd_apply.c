/*
 * dev8ctl's writing commands from files: apply (PUT per environment, or a
 * full sync with --prune), diff (file against server), and the file reader
 * they share.
 */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ctl__read_items(ctl_t *c, ctl_items_t *items)
{
    memset(items, 0, sizeof *items);
    const char *f = c->a.filename;
    if (!f)
        return ctl__usage(c, NULL, "-f FILE is required (- reads stdin)");
    FILE *in = strcmp(f, "-") == 0 ? stdin : fopen(f, "rb");
    if (!in)
        return ctl__fail(c, "%s: cannot open: %s", f, strerror(errno));
    d8_buf_t b;
    d8_buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0 && b.len <= (16u << 20))
        d8_buf_append(&b, chunk, n);
    int bad = ferror(in);
    if (in != stdin)
        fclose(in);
    if (bad) {
        d8_buf_release(&b);
        return ctl__fail(c, "%s: cannot read", f);
    }
    char err[1024];
    const char *name = strcmp(f, "-") == 0 ? "<stdin>" : f;
    int rc = ctl_input_parse(name, b.data, b.len, items, err, sizeof err);
    d8_buf_release(&b);
    if (rc < 0) {
        ctl_items_release(items);
        return ctl__fail(c, "%s", err);
    }
    return 0;
}

static const char *input_name(const ctl_t *c)
{
    return strcmp(c->a.filename, "-") == 0 ? "<stdin>" : c->a.filename;
}

/* The server's object of id: 0 with *obj (NULL when it does not exist), or
 * an exit status after printing the error. */
static int fetch(ctl_t *c, const char *id, cJSON **obj)
{
    *obj = NULL;
    d8_buf_t p;
    d8_buf_init(&p);
    d8_buf_puts(&p, "/api/v1/environments/");
    ctl__url_escape(&p, id);
    ctl_resp_t r;
    int rc = 0;
    if (ctl__request(c, "GET", p.data, NULL, &r) < 0)
        rc = CTL_EXIT_ERROR;
    else if (r.status == 200)
        rc = (*obj = ctl__json(c, &r)) ? 0 : CTL_EXIT_ERROR;
    else if (r.status != 404)
        rc = ctl__api_error(c, &r, NULL);
    ctl__resp_release(&r);
    d8_buf_release(&p);
    return rc;
}

/* created / configured / unchanged: what a PUT of it would do to server
 * (the object or NULL). */
static const char *change_of(const ctl_item_t *it, const cJSON *server)
{
    if (!server || cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(server, "spec")))
        return "created";
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(server, "spec");
    cJSON *want = ctl_desired_spec(it->spec, ss);
    cJSON *have = ctl_canonical_spec(ss);
    int same = cJSON_Compare(want, have, 1);
    /* A secret value cannot be compared (the server never shows it): a
     * file that names secrets may still change them. */
    if (same && cJSON_GetObjectItemCaseSensitive(it->spec, "secretEnv"))
        same = 0;
    cJSON_Delete(want);
    cJSON_Delete(have);
    return same ? "unchanged" : "configured";
}

/* An error answer about one item, located in the file. */
static int item_error(ctl_t *c, const ctl_item_t *it, const ctl_resp_t *r)
{
    char what[512];
    snprintf(what, sizeof what, "%s:%d:%d: environment/%s", input_name(c), it->line, it->col,
             it->id);
    return ctl__api_error(c, r, what);
}

/* The server said it does not take the dryRun parameter. */
static int no_server_dry_run(const ctl_resp_t *r)
{
    if (r->status != 400)
        return 0;
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const char *code = ctl__str(j, "error.code"), *field = ctl__str(j, "error.field");
    int no = code && field && strcmp(code, "InvalidQuery") == 0 && strcmp(field, "dryRun") == 0;
    cJSON_Delete(j);
    return no;
}

static int fail_no_dry_run(ctl_t *c)
{
    return ctl__fail(c, "the server does not offer a server-side dry run (it refused the "
                        "dryRun parameter; nothing was changed); use --dry-run=client");
}

/* PUT one item; prints its line. */
static int apply_one(ctl_t *c, const ctl_item_t *it, int server_dry)
{
    cJSON *server = NULL;
    int rc = fetch(c, it->id, &server);
    if (rc)
        return rc;
    const char *change = change_of(it, server);
    double gen_before = ctl__num(server, "generation", -1);
    cJSON_Delete(server);
    if (c->a.dry_run && !server_dry) {
        fprintf(c->o, "environment/%s %s (dry run)\n", it->id, change);
        return 0;
    }
    d8_buf_t p;
    d8_buf_init(&p);
    d8_buf_puts(&p, "/api/v1/environments/");
    ctl__url_escape(&p, it->id);
    if (server_dry)
        d8_buf_puts(&p, "?dryRun=All");
    char *body = cJSON_PrintUnformatted(it->spec);
    ctl_resp_t r;
    if (ctl__request(c, "PUT", p.data, body, &r) < 0)
        rc = CTL_EXIT_ERROR;
    else if (server_dry && no_server_dry_run(&r))
        rc = fail_no_dry_run(c);
    else if (r.status != 200 && r.status != 201)
        rc = item_error(c, it, &r);
    else if (server_dry)
        fprintf(c->o, "environment/%s %s (server dry run)\n", it->id, change);
    else {
        cJSON *j = ctl__json(c, &r);
        double gen = ctl__num(j, "generation", -1);
        const char *done = r.status == 201     ? "created"
                           : gen == gen_before ? "unchanged"
                                               : "configured";
        fprintf(c->o, "environment/%s %s\n", it->id, done);
        cJSON_Delete(j);
    }
    ctl__resp_release(&r);
    free(body);
    d8_buf_release(&p);
    return rc;
}

/* Ids on the server that the file leaves out (not already being deleted). */
static cJSON *prune_set(ctl_t *c, const ctl_items_t *items, int *rc)
{
    cJSON *page = ctl__get_json(c, "/api/v1/environments?limit=1000", rc);
    if (!page)
        return NULL;
    cJSON *out = cJSON_CreateArray();
    /* One page of 1000 is the route's maximum: a bigger set is followed by
     * its continue token. */
    for (;;) {
        const cJSON *its = cJSON_GetObjectItemCaseSensitive(page, "items");
        for (const cJSON *e = its ? its->child : NULL; e; e = e->next) {
            const char *id = ctl__str(e, "id"), *ph = ctl__str(e, "status.phase");
            int in_file = 0;
            for (size_t i = 0; id && i < items->n && !in_file; i++)
                in_file = strcmp(items->v[i].id, id) == 0;
            if (id && !in_file && !(ph && strcmp(ph, "DELETING") == 0))
                cJSON_AddItemToArray(out, cJSON_CreateString(id));
        }
        const char *cont = ctl__str(page, "continue");
        if (!cont || !cont[0])
            break;
        d8_buf_t p;
        d8_buf_init(&p);
        d8_buf_puts(&p, "/api/v1/environments?limit=1000&continue=");
        ctl__url_escape(&p, cont);
        cJSON_Delete(page);
        page = ctl__get_json(c, p.data, rc);
        d8_buf_release(&p);
        if (!page) {
            cJSON_Delete(out);
            return NULL;
        }
    }
    cJSON_Delete(page);
    return out;
}

/* Asks on the terminal; 1 for yes. Without a terminal: no (say --yes). */
static int confirm(ctl_t *c, const cJSON *gone)
{
    fprintf(c->e,
            "apply --prune removes %d environment(s) that %s leaves out:", cJSON_GetArraySize(gone),
            input_name(c));
    for (const cJSON *x = gone->child; x; x = x->next)
        fprintf(c->e, " %s", x->valuestring);
    fputc('\n', c->e);
    FILE *tty =
        strcmp(c->a.filename, "-") != 0 && isatty(STDIN_FILENO) ? fopen("/dev/tty", "r+") : NULL;
    if (!tty)
        return 0;
    fprintf(tty, "Remove them? [y/N] ");
    fflush(tty);
    char line[16] = "";
    int yes = fgets(line, sizeof line, tty) && (line[0] == 'y' || line[0] == 'Y');
    fclose(tty);
    return yes;
}

/* --prune: the whole file as one full sync (PUT /api/v1/environments); a
 * refused item is located in the file by the error's items[N] field. */
static int apply_sync(ctl_t *c, const ctl_items_t *items, int server_dry)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(body, "items");
    for (size_t i = 0; i < items->n; i++) {
        cJSON *o = cJSON_Duplicate(items->v[i].spec, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
        cJSON_AddItemToObject(o, "id", cJSON_CreateString(items->v[i].id));
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    ctl_resp_t r;
    int rc = 0;
    const char *path = server_dry ? "/api/v1/environments?dryRun=All" : "/api/v1/environments";
    if (ctl__request(c, "PUT", path, text, &r) < 0) {
        rc = CTL_EXIT_ERROR;
    } else if (server_dry && no_server_dry_run(&r)) {
        rc = fail_no_dry_run(c);
    } else if (r.status != 200) {
        /* items[N].field: point at item N in the file. */
        cJSON *j = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
        const char *field = ctl__str(j, "error.field");
        long n = field && strncmp(field, "items[", 6) == 0 ? strtol(field + 6, NULL, 10) : -1;
        if (n >= 0 && (size_t)n < items->n)
            rc = item_error(c, &items->v[n], &r);
        else
            rc = ctl__api_error(c, &r, "full sync");
        cJSON_Delete(j);
    } else {
        cJSON *j = ctl__json(c, &r);
        fprintf(c->o, "full sync%s: %.0f created, %.0f updated, %.0f unchanged, %.0f removed\n",
                server_dry ? " (server dry run)" : "", ctl__num(j, "created", 0),
                ctl__num(j, "updated", 0), ctl__num(j, "unchanged", 0), ctl__num(j, "removed", 0));
        cJSON_Delete(j);
    }
    ctl__resp_release(&r);
    free(text);
    return rc;
}

/* --prune: what the file leaves out is listed, confirmed (or --yes), then
 * the full sync is sent; --dry-run=client only prints. */
static int apply_prune(ctl_t *c, const ctl_items_t *items, int server_dry)
{
    int rc;
    cJSON *gone = prune_set(c, items, &rc);
    if (!gone)
        return rc;
    rc = 0;
    if (c->a.dry_run && !server_dry) {
        for (size_t i = 0; i < items->n && rc == 0; i++)
            rc = apply_one(c, &items->v[i], 0);
        for (const cJSON *x = gone->child; x && rc == 0; x = x->next)
            fprintf(c->o, "environment/%s pruned (dry run)\n", x->valuestring);
    } else if (gone->child && !c->a.yes && !server_dry && !confirm(c, gone)) {
        rc = ctl__fail(c, "not confirmed: nothing was changed (--yes confirms without asking)");
    } else {
        rc = apply_sync(c, items, server_dry);
        for (const cJSON *x = gone->child; x && rc == 0 && !server_dry; x = x->next)
            fprintf(c->o, "environment/%s pruned\n", x->valuestring);
    }
    cJSON_Delete(gone);
    return rc;
}

int ctl__cmd_apply(ctl_t *c)
{
    if (c->a.npos)
        return ctl__usage(c, "apply", "apply takes no arguments (the file comes with -f)");
    if (!c->a.filename)
        return ctl__usage(c, "apply", "apply needs -f FILE (- reads stdin)");
    const char *dr = c->a.dry_run;
    if (dr && strcmp(dr, "client") != 0 && strcmp(dr, "server") != 0)
        return ctl__usage(c, "apply", "--dry-run=%s: client or server", dr);
    if (c->a.yes && !c->a.prune)
        return ctl__usage(c, "apply", "--yes only confirms --prune");
    int server_dry = dr && strcmp(dr, "server") == 0;
    ctl_items_t items;
    int rc = ctl__read_items(c, &items);
    if (rc)
        return rc;
    if (c->a.prune) {
        rc = apply_prune(c, &items, server_dry);
    } else {
        for (size_t i = 0; i < items.n; i++) {
            int one = apply_one(c, &items.v[i], server_dry);
            if (one)
                rc = one;
            if (server_dry && one)
                break;
        }
    }
    ctl_items_release(&items);
    return rc;
}

int ctl__cmd_diff(ctl_t *c)
{
    if (c->a.npos)
        return ctl__usage(c, "diff", "diff takes no arguments (the file comes with -f)");
    if (!c->a.filename)
        return ctl__usage(c, "diff", "diff needs -f FILE (- reads stdin)");
    ctl_items_t items;
    int rc = ctl__read_items(c, &items), differ = 0;
    for (size_t i = 0; rc == 0 && i < items.n; i++) {
        const ctl_item_t *it = &items.v[i];
        cJSON *server = NULL;
        if ((rc = fetch(c, it->id, &server)) != 0)
            break;
        const cJSON *ss = cJSON_GetObjectItemCaseSensitive(server, "spec");
        cJSON *have = cJSON_IsObject(ss) ? ctl_canonical_spec(ss) : NULL;
        cJSON *want = ctl_desired_spec(it->spec, cJSON_IsObject(ss) ? ss : NULL);
        char *a = have ? ctl_yaml_emit(have) : d8_xstrdup("");
        char *b = ctl_yaml_emit(want);
        char an[300], bn[300];
        if (have)
            snprintf(an, sizeof an, "environment/%s (server)", it->id);
        else
            snprintf(an, sizeof an, "/dev/null");
        snprintf(bn, sizeof bn, "environment/%s (%s)", it->id, input_name(c));
        char *d = ctl_unified_diff(an, a, bn, b);
        if (d[0]) {
            differ = 1;
            fputs(d, c->o);
        }
        free(d);
        free(a);
        free(b);
        cJSON_Delete(have);
        cJSON_Delete(want);
        cJSON_Delete(server);
    }
    ctl_items_release(&items);
    return rc ? rc : differ ? 1 : 0;
}
