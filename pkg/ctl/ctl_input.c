/*
 * dev8ctl's input: YAML or JSON files of environments (apply, diff) and the
 * config file, parsed with libyaml into cJSON with the position of every
 * node, so that every error names file:line:column. JSON is read by the
 * same parser (JSON is YAML's flow style); tabs, which JSON allows between
 * tokens and YAML does not, are read as spaces in JSON input.
 */
#include "ctl/ctl_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_INPUT (16u << 20)

typedef struct yp {
    yaml_parser_t p;
    const char *name;
    ctl_marks_t *marks;
    char *err;
    size_t errlen;
    int failed;
} yp_t;

static void mark_add(ctl_marks_t *m, const cJSON *node, const yaml_mark_t *ym)
{
    if (!m)
        return;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->v = d8_xrealloc(m->v, m->cap * sizeof *m->v);
    }
    m->v[m->n++] = (ctl_mark_t){node, (int)ym->line + 1, (int)ym->column + 1};
}

void ctl__mark_of(const ctl_marks_t *m, const cJSON *node, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; m && i < m->n; i++)
        if (m->v[i].node == node) {
            *line = m->v[i].line;
            *col = m->v[i].col;
            return;
        }
}

void ctl__marks_release(ctl_marks_t *m)
{
    free(m->v);
    memset(m, 0, sizeof *m);
}

static void yfail(yp_t *y, const yaml_mark_t *at, const char *what)
{
    if (y->failed)
        return;
    y->failed = 1;
    snprintf(y->err, y->errlen, "%s:%d:%d: %s", y->name, (int)at->line + 1, (int)at->column + 1,
             what);
}

static int next_event(yp_t *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->p, ev))
        return 0;
    char what[256];
    if (y->p.context)
        snprintf(what, sizeof what, "%s %s", y->p.problem ? y->p.problem : "invalid YAML",
                 y->p.context);
    else
        snprintf(what, sizeof what, "%s", y->p.problem ? y->p.problem : "invalid YAML");
    yfail(y, &y->p.problem_mark, what);
    return -1;
}

/* The JSON-compatible type a plain scalar reads as (YAML 1.2 core schema,
 * restricted to what JSON can carry). */
static cJSON *plain_scalar(const char *s, size_t n)
{
    if (n == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0)
        return cJSON_CreateNull();
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return cJSON_CreateTrue();
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return cJSON_CreateFalse();
    /* -?digits(.digits)?([eE][+-]?digits)? */
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    const char *d = p;
    while (*p >= '0' && *p <= '9')
        p++;
    int ok = p > d;
    if (ok && *p == '.') {
        const char *f = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        ok = p > f;
    }
    if (ok && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        const char *e = p;
        while (*p >= '0' && *p <= '9')
            p++;
        ok = p > e;
    }
    if (ok && (size_t)(p - s) == n) {
        /* A literal beyond a double's range stays the text it is (JSON has
         * no infinity): the server then names the field it does not fit. */
        double v = strtod(s, NULL);
        if (isfinite(v))
            return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(s);
}

static cJSON *parse_node(yp_t *y, yaml_event_t *ev, int depth);

/* The members of a mapping whose start event was just read. */
static cJSON *parse_mapping(yp_t *y, int depth)
{
    cJSON *obj = cJSON_CreateObject();
    for (;;) {
        yaml_event_t k;
        if (next_event(y, &k) < 0)
            break;
        if (k.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&k);
            return obj;
        }
        if (k.type != YAML_SCALAR_EVENT) {
            yfail(y, &k.start_mark, "a key must be a plain string");
            yaml_event_delete(&k);
            break;
        }
        char key[256];
        snprintf(key, sizeof key, "%s", (const char *)k.data.scalar.value);
        yaml_mark_t kmark = k.start_mark;
        int bad = k.data.scalar.anchor || k.data.scalar.tag;
        int len_bad = strlen((const char *)k.data.scalar.value) != k.data.scalar.length ||
                      k.data.scalar.length >= sizeof key;
        yaml_event_delete(&k);
        if (bad || len_bad) {
            yfail(y, &kmark,
                  bad ? "anchors and tags are not accepted"
                      : "a key must be shorter than 256 bytes and hold no NUL character");
            break;
        }
        if (cJSON_GetObjectItemCaseSensitive(obj, key)) {
            char what[320];
            snprintf(what, sizeof what, "%s: duplicate key", key);
            yfail(y, &kmark, what);
            break;
        }
        yaml_event_t v;
        if (next_event(y, &v) < 0)
            break;
        cJSON *val = parse_node(y, &v, depth + 1);
        if (!val)
            break;
        cJSON_AddItemToObject(obj, key, val);
    }
    cJSON_Delete(obj);
    return NULL;
}

static cJSON *parse_sequence(yp_t *y, int depth)
{
    cJSON *arr = cJSON_CreateArray();
    for (;;) {
        yaml_event_t v;
        if (next_event(y, &v) < 0)
            break;
        if (v.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&v);
            return arr;
        }
        cJSON *val = parse_node(y, &v, depth + 1);
        if (!val)
            break;
        cJSON_AddItemToArray(arr, val);
    }
    cJSON_Delete(arr);
    return NULL;
}

/* The value starting with event ev (consumed here). */
static cJSON *parse_node(yp_t *y, yaml_event_t *ev, int depth)
{
    yaml_mark_t at = ev->start_mark;
    cJSON *out = NULL;
    if (depth > MAX_DEPTH) {
        yfail(y, &at, "nesting deeper than 64 levels");
    } else if (ev->type == YAML_ALIAS_EVENT) {
        yfail(y, &at, "aliases are not accepted");
    } else if (ev->type == YAML_SCALAR_EVENT) {
        if (ev->data.scalar.anchor || (ev->data.scalar.tag && !ev->data.scalar.quoted_implicit &&
                                       !ev->data.scalar.plain_implicit)) {
            yfail(y, &at, "anchors and tags are not accepted");
        } else if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
            yfail(y, &at, "a NUL character in a value");
        } else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            out = plain_scalar((const char *)ev->data.scalar.value, ev->data.scalar.length);
        } else {
            out = cJSON_CreateString((const char *)ev->data.scalar.value);
        }
    } else if (ev->type == YAML_MAPPING_START_EVENT || ev->type == YAML_SEQUENCE_START_EVENT) {
        int map = ev->type == YAML_MAPPING_START_EVENT;
        if ((map && (ev->data.mapping_start.anchor || ev->data.mapping_start.tag)) ||
            (!map && (ev->data.sequence_start.anchor || ev->data.sequence_start.tag))) {
            yfail(y, &at, "anchors and tags are not accepted");
        } else {
            yaml_event_delete(ev);
            out = map ? parse_mapping(y, depth) : parse_sequence(y, depth);
            if (out)
                mark_add(y->marks, out, &at);
            return out;
        }
    } else {
        yfail(y, &at, "unexpected YAML event");
    }
    yaml_event_delete(ev);
    if (out)
        mark_add(y->marks, out, &at);
    return out;
}

/* JSON text (first significant character '{' or '['): a copy with tabs as
 * spaces (a tab inside a JSON string is invalid JSON anyway), else NULL. */
static char *json_tabs(const char *text, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    if (i >= len || (text[i] != '{' && text[i] != '['))
        return NULL;
    char *copy = d8_xmalloc(len + 1);
    for (size_t j = 0; j < len; j++)
        copy[j] = text[j] == '\t' ? ' ' : text[j];
    copy[len] = 0;
    return copy;
}

/* Reads documents until the stream ends (or the first, unless all_docs). */
static cJSON *parse_stream(yp_t *y, int all_docs)
{
    cJSON *docs = cJSON_CreateArray();
    for (;;) {
        yaml_event_t ev;
        if (next_event(y, &ev) < 0)
            goto fail;
        yaml_event_type_t t = ev.type;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            break;
        if (t != YAML_DOCUMENT_START_EVENT)
            continue;
        yaml_event_t root;
        if (next_event(y, &root) < 0)
            goto fail;
        cJSON *v = parse_node(y, &root, 0);
        if (!v)
            goto fail;
        cJSON_AddItemToArray(docs, v);
        yaml_event_t end;
        if (next_event(y, &end) < 0)
            goto fail;
        yaml_event_delete(&end);
        if (!all_docs)
            break;
    }
    return docs;
fail:
    cJSON_Delete(docs);
    return NULL;
}

cJSON *ctl__yaml_parse(const char *name, const char *text, size_t len, int all_docs,
                       ctl_marks_t *marks, char *err, size_t errlen)
{
    if (len > MAX_INPUT) {
        snprintf(err, errlen, "%s: larger than 16 MiB", name);
        return NULL;
    }
    yp_t y = {.name = name, .marks = marks, .err = err, .errlen = errlen};
    char *copy = json_tabs(text, len);
    if (!yaml_parser_initialize(&y.p))
        d8_die("yaml_parser_initialize");
    yaml_parser_set_input_string(&y.p, (const unsigned char *)(copy ? copy : text), len);
    cJSON *docs = parse_stream(&y, all_docs);
    yaml_parser_delete(&y.p);
    free(copy);
    if (!docs && marks)
        marks->n = 0;
    if (!docs || all_docs)
        return docs;
    cJSON *first = cJSON_DetachItemFromArray(docs, 0);
    cJSON_Delete(docs);
    return first ? first : cJSON_CreateNull();
}

cJSON *ctl_yaml_parse(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    return ctl__yaml_parse(name, text, len, 0, NULL, err, errlen);
}

void ctl_items_release(ctl_items_t *items)
{
    for (size_t i = 0; items && i < items->n; i++) {
        free(items->v[i].id);
        cJSON_Delete(items->v[i].spec);
    }
    if (items) {
        free(items->v);
        memset(items, 0, sizeof *items);
    }
}

/* Drops a secretEnv that `get` wrote ("<redacted>" values); a mix of real
 * and redacted values is an error (the redacted ones would be stored). */
static int check_secrets(cJSON *spec, const ctl_marks_t *m, const char *name, char *err,
                         size_t errlen)
{
    cJSON *se = cJSON_GetObjectItemCaseSensitive(spec, "secretEnv");
    if (!cJSON_IsObject(se) || !se->child)
        return 0;
    size_t n = 0, red = 0;
    const cJSON *first_red = NULL;
    for (const cJSON *v = se->child; v; v = v->next, n++)
        if (cJSON_IsString(v) && strcmp(v->valuestring, "<redacted>") == 0) {
            red++;
            if (!first_red)
                first_red = v;
        }
    if (red == 0)
        return 0;
    if (red == n) {
        cJSON_DeleteItemFromObjectCaseSensitive(spec, "secretEnv");
        return 0;
    }
    int line, col;
    ctl__mark_of(m, se, &line, &col);
    snprintf(err, errlen,
             "%s:%d:%d: secretEnv.%s is \"<redacted>\": give every value, or leave secretEnv "
             "out to keep the stored secrets",
             name, line, col, first_red->string);
    return -1;
}

/* Adds one environment (a mapping) to out. */
static int add_item(ctl_items_t *out, const cJSON *it, const ctl_marks_t *m, const char *name,
                    char *err, size_t errlen)
{
    int line, col;
    ctl__mark_of(m, it, &line, &col);
    if (!cJSON_IsObject(it)) {
        snprintf(err, errlen, "%s:%d:%d: an environment must be a mapping", name, line, col);
        return -1;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
    if (!cJSON_IsString(id) || !id->valuestring[0]) {
        snprintf(err, errlen, "%s:%d:%d: id: an environment needs a string id", name, line, col);
        return -1;
    }
    for (size_t i = 0; i < out->n; i++)
        if (strcmp(out->v[i].id, id->valuestring) == 0) {
            snprintf(err, errlen, "%s:%d:%d: id: %s appears twice (first at line %d)", name, line,
                     col, id->valuestring, out->v[i].line);
            return -1;
        }
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(it, "spec");
    cJSON *copy;
    if (cJSON_IsObject(spec)) {
        /* The id is the item's: a spec.id that repeats it is dropped, one
         * that names another environment is a mistake worth a position. */
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(spec, "id");
        if (sid && !(cJSON_IsString(sid) && strcmp(sid->valuestring, id->valuestring) == 0)) {
            ctl__mark_of(m, sid, &line, &col);
            snprintf(err, errlen, "%s:%d:%d: spec.id: differs from the environment's id %s", name,
                     line, col, id->valuestring);
            return -1;
        }
        copy = cJSON_Duplicate(spec, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
    } else {
        copy = cJSON_Duplicate(it, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "id");
    }
    /* Marks are kept by node address: look the secrets up on the original. */
    const cJSON *orig = cJSON_IsObject(spec) ? spec : it;
    cJSON *se_copy = cJSON_GetObjectItemCaseSensitive(copy, "secretEnv");
    const cJSON *se_orig = cJSON_GetObjectItemCaseSensitive(orig, "secretEnv");
    if (se_copy && se_orig) {
        ctl_marks_t one = {0};
        int l, c;
        ctl__mark_of(m, se_orig, &l, &c);
        ctl_mark_t mk = {se_copy, l, c};
        one.v = &mk;
        one.n = 1;
        if (check_secrets(copy, &one, name, err, errlen) < 0) {
            cJSON_Delete(copy);
            return -1;
        }
    }
    out->v = d8_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
    out->v[out->n++] = (ctl_item_t){d8_xstrdup(id->valuestring), copy, line, col};
    return 0;
}

/* The environments one document holds: a list, {items: [...]}, or one. */
static int add_doc(ctl_items_t *out, const cJSON *doc, const ctl_marks_t *m, const char *name,
                   char *err, size_t errlen)
{
    if (cJSON_IsNull(doc))
        return 0;
    const cJSON *list = NULL;
    if (cJSON_IsArray(doc))
        list = doc;
    else if (cJSON_IsObject(doc) && !cJSON_GetObjectItemCaseSensitive(doc, "id") &&
             cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "items")))
        list = cJSON_GetObjectItemCaseSensitive(doc, "items");
    if (!list)
        return add_item(out, doc, m, name, err, errlen);
    for (const cJSON *it = list->child; it; it = it->next)
        if (add_item(out, it, m, name, err, errlen) < 0)
            return -1;
    return 0;
}

int ctl_input_parse(const char *name, const char *text, size_t len, ctl_items_t *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    ctl_marks_t marks = {0};
    cJSON *docs = ctl__yaml_parse(name, text, len, 1, &marks, err, errlen);
    int rc = docs ? 0 : -1;
    for (const cJSON *d = docs ? docs->child : NULL; d && rc == 0; d = d->next)
        rc = add_doc(out, d, &marks, name, err, errlen);
    if (rc == 0 && out->n == 0) {
        snprintf(err, errlen, "%s:1:1: no environments in the input", name);
        rc = -1;
    }
    cJSON_Delete(docs);
    ctl__marks_release(&marks);
    return rc;
}
