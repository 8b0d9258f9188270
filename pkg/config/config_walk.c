/*
 * The walk that applies a YAML document to the configuration schema (the
 * field tables, string checks and custom keys of config_schema.c).
 *
 * libyaml loads the whole document into a node tree; the walk then visits
 * it top-down against tables of fields. Each field knows the node type it
 * takes (a nested section, an integer with a range, a boolean, a fraction,
 * a checked string, or a custom list/map handler) and where in the target
 * struct its value goes. The walk stops at the first problem and reports it
 * as "file:line:column: key.path: what is wrong"; the caller throws the
 * half-filled config away, so nothing is ever partially applied.
 */
#include "config_int.h"

#include "base/base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* A cap on '[' and '{', so that hostile input stays cheap to parse. */
#define MAX_FLOW_OPENERS 256
/* How much of a user's value an error message echoes. */
#define QUOTE_BYTES 60

/* ---- errors and key paths ---------------------------------------------- */

void config__quote(char *out, size_t outlen, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (outlen == 0)
        return;
    /* Room is kept for the closing quote, "..." and the NUL. */
    if (outlen < 6) {
        out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[5];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'x';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        } else {
            esc[n++] = (char)c;
        }
        if (i >= QUOTE_BYTES || o + n + 5 > outlen) {
            memcpy(out + o, "\"...", 4);
            o += 4;
            out[o] = '\0';
            return;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* Writes "name:line:column: path: message" into the caller's buffer. */
int config__fail(config__walk_t *w, yaml_mark_t m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->err && w->errlen) {
        if (w->pathlen)
            snprintf(w->err, w->errlen, "%s:%zu:%zu: %s: %s", w->name, m.line + 1, m.column + 1,
                     w->path, msg);
        else
            snprintf(w->err, w->errlen, "%s:%zu:%zu: %s", w->name, m.line + 1, m.column + 1, msg);
    }
    return D8_EINVAL;
}

/* Appends to the key path; returns the length to restore with config__path_pop. */
size_t config__path_push(config__walk_t *w, const char *fmt, ...)
{
    size_t old = w->pathlen;
    size_t room = sizeof w->path - w->pathlen;
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(w->path + w->pathlen, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->pathlen += (size_t)n < room ? (size_t)n : room - 1;
    return old;
}

void config__path_pop(config__walk_t *w, size_t old)
{
    w->pathlen = old;
    w->path[old] = '\0';
}

/* Pushes ".key" (or "key" at the top). Odd key text is shown quoted. */
size_t config__path_key(config__walk_t *w, const char *key, size_t len)
{
    int plain = len > 0 && len <= 64;
    for (size_t i = 0; plain && i < len; i++) {
        char c = key[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-';
    }
    const char *dot = w->pathlen ? "." : "";
    if (plain)
        return config__path_push(w, "%s%.*s", dot, (int)len, key);
    char q[96];
    config__quote(q, sizeof q, key, len);
    return config__path_push(w, "%s%s", dot, q);
}

/* ---- nodes --------------------------------------------------------------- */

yaml_node_t *config__node_at(config__walk_t *w, int index)
{
    return yaml_document_get_node(w->doc, index);
}

const char *config__scalar_of(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

yaml_node_t *config__map_get(config__walk_t *w, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = config__node_at(w, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp(config__scalar_of(k), key) == 0)
            return config__node_at(w, p->value);
    }
    return NULL;
}

/* A plain empty, "~" or "null" scalar: YAML's null, meaning "not set". */
int config__is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = config__scalar_of(n);
    return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/*
 * Describes a node for "got ..." in messages. `typed`: the field wants a
 * number or boolean, so a quoted scalar gets a hint. Returns buf.
 */
const char *config__describe(const yaml_node_t *n, int typed, char *buf, size_t len)
{
    char q[96];

    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_SCALAR_NODE:
        config__quote(q, sizeof q, config__scalar_of(n), n->data.scalar.length);
        if (typed && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            snprintf(buf, len, "the quoted string %s (write numbers and booleans without quotes)",
                     q);
        else
            snprintf(buf, len, "%s", q);
        return buf;
    default:
        return "nothing";
    }
}

/*
 * Marks n as walked, reporting at `where` when it was walked before. libyaml
 * resolves an alias to the very node its anchor names, so a node reached
 * twice means an alias: refused, because a few bytes of aliases can stand
 * for an exponentially large tree (the "billion laughs"). Explicit tags are
 * refused too: the schema decides every type.
 */
int config__visit(config__walk_t *w, yaml_node_t *n, yaml_mark_t where)
{
    size_t i = (size_t)(n - w->doc->nodes.start);
    const char *deftag = YAML_DEFAULT_SCALAR_TAG;
    char q[96];

    if (w->seen[i])
        return config__fail(w, where,
                            "aliases (*name) are not supported; repeat the value instead");
    w->seen[i] = 1;
    if (n->type == YAML_SEQUENCE_NODE)
        deftag = YAML_DEFAULT_SEQUENCE_TAG;
    else if (n->type == YAML_MAPPING_NODE)
        deftag = YAML_DEFAULT_MAPPING_TAG;
    if (n->tag && strcmp((const char *)n->tag, deftag) != 0) {
        config__quote(q, sizeof q, (const char *)n->tag, strlen((const char *)n->tag));
        return config__fail(w, n->start_mark, "YAML tags are not supported, got tag %s", q);
    }
    return 0;
}

/* ---- scalar values ------------------------------------------------------- */

/* Parses a plain decimal integer ("-12", "+3", "4096"); 1 on success. */
int config__parse_ll(const char *s, long long *out)
{
    const char *p = s;
    char *end;

    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return 0;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return 0;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

/* Reads an integer node in [min, max] into *out, or reports why not. */
int config__int_value(config__walk_t *w, yaml_node_t *n, long long min, long long max,
                      long long *out)
{
    char buf[200];
    long long v;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        !config__parse_ll(config__scalar_of(n), &v) || v < min || v > max)
        return config__fail(w, n->start_mark, "must be an integer between %lld and %lld, got %s",
                            min, max, config__describe(n, 1, buf, sizeof buf));
    *out = v;
    return 0;
}

static int bool_value(config__walk_t *w, yaml_node_t *n, int *out)
{
    char buf[200];

    if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcmp(config__scalar_of(n), "true") == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(config__scalar_of(n), "false") == 0) {
            *out = 0;
            return 0;
        }
    }
    return config__fail(w, n->start_mark, "must be true or false, got %s",
                        config__describe(n, 1, buf, sizeof buf));
}

static int fraction_value(config__walk_t *w, yaml_node_t *n, double *out)
{
    char buf[200];
    char *end;

    if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        n->data.scalar.length > 0 &&
        strspn(config__scalar_of(n), "0123456789.eE+-") == n->data.scalar.length) {
        errno = 0;
        double v = strtod(config__scalar_of(n), &end);
        if (!errno && *end == '\0' && v > 0.0 && v <= 1.0) {
            *out = v;
            return 0;
        }
    }
    return config__fail(w, n->start_mark, "must be a number greater than 0 and at most 1, got %s",
                        config__describe(n, 1, buf, sizeof buf));
}

/*
 * Reads a string node, runs `check` on it, and returns it in *out (owned by
 * the caller) or reports why not. Null values are the caller's business.
 */
int config__string_value(config__walk_t *w, yaml_node_t *n, config__str_check_fn check, char **out)
{
    char buf[200];

    if (n->type != YAML_SCALAR_NODE)
        return config__fail(w, n->start_mark, "must be a string, got %s",
                            config__describe(n, 0, buf, sizeof buf));
    if (memchr(config__scalar_of(n), '\0', n->data.scalar.length))
        return config__fail(w, n->start_mark, "must not contain NUL characters");
    char *s = d8_xstrdup(config__scalar_of(n));
    const char *problem = check ? check(s) : NULL;
    if (problem) {
        free(s);
        return config__fail(w, n->start_mark, "%s, got %s", problem,
                            config__describe(n, 0, buf, sizeof buf));
    }
    *out = s;
    return 0;
}

/* ---- the walk ------------------------------------------------------------ */

/* Lists a table's keys ("name, listen, ...") into buf. */
static const char *key_list(const config__field_t *fields, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; fields[i].key && o < len; i++) {
        int n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", fields[i].key);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    return buf;
}

/* Key names that suggest someone is trying to put a secret in the file. */
static int looks_secret(const char *key)
{
    static const char *const words[] = {"key",   "secret",     "password", "passwd",
                                        "token", "credential", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strcasestr(key, words[i]))
            return 1;
    return 0;
}

static int unknown_key(config__walk_t *w, yaml_node_t *k, const config__field_t *fields)
{
    char keys[400];
    size_t old = config__path_key(w, config__scalar_of(k), k->data.scalar.length);
    int rc;

    if (looks_secret(config__scalar_of(k)))
        rc = config__fail(w, k->start_mark,
                          "unknown key; secrets come from the environment (or files such as "
                          "api.keysFile), never from the config file");
    else
        rc = config__fail(w, k->start_mark, "unknown key (expected one of: %s)",
                          key_list(fields, keys, sizeof keys));
    config__path_pop(w, old);
    return rc;
}

static int find_field(const config__field_t *fields, const yaml_node_t *k)
{
    for (int i = 0; fields[i].key; i++)
        if (strlen(fields[i].key) == k->data.scalar.length &&
            memcmp(fields[i].key, config__scalar_of(k), k->data.scalar.length) == 0)
            return i;
    return -1;
}

/* Stores one value; the key path already names the field. */
static int apply(config__walk_t *w, const config__field_t *f, yaml_node_t *k, yaml_node_t *v,
                 void *base)
{
    char *at = (char *)base + f->off;
    long long ll;
    int rc = 0;

    if (f->kind == CONFIG__F_CUSTOM)
        return f->custom(w, k, v, base);
    /* "key:" with no value, or null, leaves the default in place. */
    if (config__is_null(v))
        return 0;
    switch (f->kind) {
    case CONFIG__F_SECTION:
        return config__walk_section(w, v, f->sub, base);
    case CONFIG__F_INT:
        if ((rc = config__int_value(w, v, f->min, f->max, &ll)) == 0)
            *(int *)(void *)at = (int)ll;
        return rc;
    case CONFIG__F_SIZE:
        if ((rc = config__int_value(w, v, f->min, f->max, &ll)) == 0)
            *(size_t *)(void *)at = (size_t)ll;
        return rc;
    case CONFIG__F_BOOL:
        return bool_value(w, v, (int *)(void *)at);
    case CONFIG__F_FRACTION:
        return fraction_value(w, v, (double *)(void *)at);
    case CONFIG__F_STR: {
        char *s = NULL;
        if ((rc = config__string_value(w, v, f->check, &s)) == 0) {
            free(*(char **)(void *)at);
            *(char **)(void *)at = s;
        }
        return rc;
    }
    case CONFIG__F_CUSTOM:
        break;
    }
    return rc;
}

/*
 * Walks mapping `map` against `fields`, writing into `base`. Unknown and
 * duplicate keys are errors; required string fields must end up set.
 */
int config__walk_section(config__walk_t *w, yaml_node_t *map, const config__field_t *fields,
                         void *base)
{
    size_t first_line[CONFIG__MAX_FIELDS] = {0}; /* 0: key not seen yet */
    char buf[200], keys[400];
    int rc;

    if (map->type != YAML_MAPPING_NODE)
        return config__fail(w, map->start_mark, "must be a mapping with keys %s, got %s",
                            key_list(fields, keys, sizeof keys),
                            config__describe(map, 0, buf, sizeof buf));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = config__node_at(w, p->key);
        yaml_node_t *v = config__node_at(w, p->value);
        if ((rc = config__visit(w, k, map->start_mark)) != 0)
            return rc;
        if (k->type != YAML_SCALAR_NODE)
            return config__fail(w, k->start_mark, "keys must be strings, got %s",
                                config__describe(k, 0, buf, sizeof buf));
        int i = find_field(fields, k);
        if (i < 0)
            return unknown_key(w, k, fields);
        size_t old = config__path_key(w, fields[i].key, strlen(fields[i].key));
        if (first_line[i])
            rc = config__fail(w, k->start_mark, "duplicate key (first set at line %zu)",
                              first_line[i]);
        else {
            first_line[i] = k->start_mark.line + 1;
            rc = config__visit(w, v, k->start_mark);
            if (rc == 0)
                rc = apply(w, &fields[i], k, v, base);
        }
        config__path_pop(w, old);
        if (rc)
            return rc;
    }
    for (size_t i = 0; fields[i].key; i++) {
        if (fields[i].required && !*(char **)(void *)((char *)base + fields[i].off))
            return config__fail(w, map->start_mark, "missing required key \"%s\"", fields[i].key);
    }
    return 0;
}

/* ---- entry point --------------------------------------------------------- */

/* Reports libyaml's own problem, with its position. */
static int syntax_error(const yaml_parser_t *p, const char *name, const char *yaml, size_t len,
                        char *err, size_t errlen)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    size_t line, col;

    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(err, errlen, "%s: out of memory while reading YAML", name);
        return D8_ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset rather than a mark. */
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (yaml[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (p->problem_value != -1)
            snprintf(err, errlen, "%s:%zu:%zu: syntax error: %s (byte 0x%02x)", name, line, col,
                     problem, (unsigned)p->problem_value & 0xffu);
        else
            snprintf(err, errlen, "%s:%zu:%zu: syntax error: %s", name, line, col, problem);
        return D8_EPARSE;
    }
    line = p->problem_mark.line + 1;
    col = p->problem_mark.column + 1;
    if (p->context && (p->context_mark.line != p->problem_mark.line ||
                       p->context_mark.column != p->problem_mark.column))
        snprintf(err, errlen, "%s:%zu:%zu: syntax error: %s (%s at line %zu, column %zu)", name,
                 line, col, problem, p->context, p->context_mark.line + 1,
                 p->context_mark.column + 1);
    else
        snprintf(err, errlen, "%s:%zu:%zu: syntax error: %s", name, line, col, problem);
    return D8_EPARSE;
}

/*
 * libyaml 0.2.5 scans each token in time proportional to the flow nesting
 * depth ('[' and '{'), with no limit of its own, so a hostile file of
 * nested brackets would take minutes. Counting every opener (even those in
 * strings and comments: a cheap, conservative bound on the depth) keeps the
 * worst case under a second; real configs use a handful.
 */
static int check_flow_openers(const char *name, const char *yaml, size_t len, char *err,
                              size_t errlen)
{
    size_t count = 0, line = 1, col = 1;

    for (size_t i = 0; i < len; i++) {
        if ((yaml[i] == '[' || yaml[i] == '{') && ++count > MAX_FLOW_OPENERS) {
            snprintf(err, errlen,
                     "%s:%zu:%zu: syntax error: more than %d '[' or '{' in the file; write "
                     "nested structures in block style",
                     name, line, col, MAX_FLOW_OPENERS);
            return D8_EPARSE;
        }
        if (yaml[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return 0;
}

int config__parse_yaml(config_t *cfg, const char *name, const char *yaml, size_t len,
                       config__pos_t **region_pos, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int have_parser = 0, have_doc = 0, have_extra = 0;
    config__walk_t w = {.name = name, .err = err, .errlen = errlen};
    char scratch[1];
    int rc = 0;

    *region_pos = NULL;
    if (!err || !errlen) {
        err = scratch;
        errlen = sizeof scratch;
        w.err = err;
        w.errlen = errlen;
    }
    if (len > CONFIG__MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: larger than %zu bytes", name, CONFIG__MAX_FILE_BYTES);
        return D8_ETOOBIG;
    }
    if ((rc = check_flow_openers(name, yaml, len, err, errlen)) != 0)
        return rc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory while reading YAML", name);
        return D8_ENOMEM;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&parser, name, yaml, len, err, errlen);
        goto cleanup;
    }
    have_doc = 1;
    /* A second load either ends the stream or finds a second document. */
    if (!yaml_parser_load(&parser, &extra)) {
        rc = syntax_error(&parser, name, yaml, len, err, errlen);
        goto cleanup;
    }
    have_extra = 1;
    if (yaml_document_get_root_node(&extra)) {
        rc = config__fail(&w, extra.start_mark,
                          "only one YAML document is allowed; remove the second '---' document");
        goto cleanup;
    }

    w.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        w.seen = d8_xcalloc((size_t)(doc.nodes.top - doc.nodes.start), 1);
        rc = config__visit(&w, root, root->start_mark);
        /* An empty document (or a lone "---") means all defaults. */
        if (rc == 0 && !config__is_null(root))
            rc = config__walk_section(&w, root, config__root_fields, cfg);
        if (rc)
            goto cleanup;
    }
    if ((rc = config__resolve_cloud(&w, cfg)) != 0)
        goto cleanup;
    if (cfg->nregions == 0) {
        yaml_mark_t top = {0, 0, 0};
        size_t old = config__path_push(&w, "azure.regions");
        rc = config__fail(&w, top, "at least one region is required");
        config__path_pop(&w, old);
        goto cleanup;
    }
    *region_pos = w.region_pos;
    w.region_pos = NULL;

cleanup:
    free(w.seen);
    free(w.region_pos);
    if (have_extra)
        yaml_document_delete(&extra);
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    return rc;
}
