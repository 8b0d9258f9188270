/*
 * `dev8ctl diff`: the desired spec in a file against the desired spec on
 * the server, both put in the API's canonical form (defaults filled in,
 * sticky fields kept, secret values redacted on both sides), rendered as
 * YAML and compared line by line (longest common subsequence; specs are a
 * few dozen lines). Also the overlap rule of `logs -f`.
 */
#include "ctl/ctl_int.h"

#include <stdlib.h>
#include <string.h>

/* The spec members in the order the API answers them, with the documented
 * defaults (README "The spec"); NULL default: required or sticky. */
static const struct {
    const char *name;
    const char *dflt; /* JSON text */
} fields[] = {
    {"userId", NULL},
    {"name", NULL},
    {"cloudRegion", NULL},
    {"baseImage", "\"node\""},
    {"cpuCores", "2"},
    {"memoryGB", "4"},
    {"storageGB", "20"},
    {"powerState", NULL},
    {"env", "{}"},
    {"secretEnv", NULL},
    {"autoStopMinutes", "0"},
    {"storagePolicy", "\"Delete\""},
    {"updatePolicy", "\"Immediate\""},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static int known(const char *name)
{
    for (size_t i = 0; i < NFIELDS; i++)
        if (strcmp(fields[i].name, name) == 0)
            return 1;
    return strcmp(name, "cloudProvider") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of a map with its members sorted by name, values redacted when
 * redact. */
static cJSON *sorted_map(const cJSON *m, int redact)
{
    cJSON *out = cJSON_CreateObject();
    size_t n = (size_t)cJSON_GetArraySize(m), i = 0;
    const char **names = d8_xcalloc(n ? n : 1, sizeof *names);
    for (const cJSON *x = m ? m->child : NULL; x; x = x->next)
        names[i++] = x->string;
    qsort(names, i, sizeof *names, cmp_str);
    for (size_t k = 0; k < i; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, names[k]);
        cJSON_AddItemToObject(out, names[k],
                              redact ? cJSON_CreateString("<redacted>") : cJSON_Duplicate(v, 1));
    }
    free(names);
    return out;
}

/* The canonical form of spec; sticky values from server when the spec
 * leaves them out and with_defaults is set. */
static cJSON *canonical(const cJSON *spec, const cJSON *server, int with_defaults)
{
    cJSON *out = cJSON_CreateObject();
    for (size_t i = 0; i < NFIELDS; i++) {
        const char *f = fields[i].name;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, f);
        if (!v && with_defaults && (strcmp(f, "powerState") == 0 || strcmp(f, "secretEnv") == 0))
            v = cJSON_GetObjectItemCaseSensitive(server, f);
        if (!v && with_defaults && strcmp(f, "powerState") == 0) {
            cJSON_AddStringToObject(out, f, "Running");
            continue;
        }
        if (!v && with_defaults && fields[i].dflt) {
            cJSON_AddItemToObject(out, f, cJSON_Parse(fields[i].dflt));
            continue;
        }
        if (!v)
            continue;
        if (cJSON_IsObject(v) && (strcmp(f, "env") == 0 || strcmp(f, "secretEnv") == 0))
            cJSON_AddItemToObject(out, f, sorted_map(v, strcmp(f, "secretEnv") == 0));
        else
            cJSON_AddItemToObject(out, f, cJSON_Duplicate(v, 1));
    }
    /* Members the API does not know stay visible (the server will refuse
     * them; the diff shows them rather than hiding them). */
    for (const cJSON *x = spec ? spec->child : NULL; x; x = x->next)
        if (!known(x->string))
            cJSON_AddItemToObject(out, x->string, cJSON_Duplicate(x, 1));
    return out;
}

cJSON *ctl_desired_spec(const cJSON *file_spec, const cJSON *server_spec)
{
    return canonical(file_spec, server_spec, 1);
}

cJSON *ctl_canonical_spec(const cJSON *server_spec)
{
    return canonical(server_spec, NULL, 0);
}

/* ---- unified diff ------------------------------------------------------ */

typedef struct lines {
    const char **v;
    size_t *len;
    size_t n;
} lines_t;

static void split(const char *s, lines_t *l)
{
    l->n = 0;
    size_t cap = 16;
    l->v = d8_xmalloc(cap * sizeof *l->v);
    l->len = d8_xmalloc(cap * sizeof *l->len);
    while (s && *s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        if (l->n == cap) {
            cap *= 2;
            l->v = d8_xrealloc(l->v, cap * sizeof *l->v);
            l->len = d8_xrealloc(l->len, cap * sizeof *l->len);
        }
        l->v[l->n] = s;
        l->len[l->n++] = n;
        s += n + (nl != NULL);
    }
}

static int line_eq(const lines_t *a, size_t i, const lines_t *b, size_t j)
{
    return a->len[i] == b->len[j] && memcmp(a->v[i], b->v[j], a->len[i]) == 0;
}

/* ops: '=' keep, '-' from a, '+' from b, in order; returns the count. */
static size_t lcs_ops(const lines_t *a, const lines_t *b, char *ops)
{
    size_t n = a->n, m = b->n;
    if ((n + 1) * (m + 1) > (16u << 20)) {
        /* Too big to compare line by line: everything replaced. */
        memset(ops, '-', n);
        memset(ops + n, '+', m);
        return n + m;
    }
    unsigned *t = d8_xcalloc((n + 1) * (m + 1), sizeof *t);
#define T(i, j) t[(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            T(i, j) = line_eq(a, i, b, j)          ? T(i + 1, j + 1) + 1
                      : T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j)
                                                   : T(i, j + 1);
    size_t i = 0, j = 0, k = 0;
    while (i < n || j < m) {
        if (i < n && j < m && line_eq(a, i, b, j)) {
            ops[k++] = '=';
            i++, j++;
        } else if (i < n && (j == m || T(i + 1, j) >= T(i, j + 1))) {
            ops[k++] = '-';
            i++;
        } else {
            ops[k++] = '+';
            j++;
        }
    }
#undef T
    free(t);
    return k;
}

/* Appends the hunk of ops[from, to) starting at lines ai / bi. */
static void hunk(d8_buf_t *out, const char *ops, size_t from, size_t to, const lines_t *a,
                 size_t ai, const lines_t *b, size_t bi)
{
    size_t na = 0, nb = 0;
    for (size_t k = from; k < to; k++) {
        na += ops[k] != '+';
        nb += ops[k] != '-';
    }
    d8_buf_printf(out, "@@ -%zu,%zu +%zu,%zu @@\n", na ? ai + 1 : ai, na, nb ? bi + 1 : bi, nb);
    for (size_t k = from; k < to; k++) {
        if (ops[k] == '+') {
            d8_buf_putc(out, '+');
            d8_buf_append(out, b->v[bi], b->len[bi]);
            bi++;
        } else {
            d8_buf_putc(out, ops[k] == '-' ? '-' : ' ');
            d8_buf_append(out, a->v[ai], a->len[ai]);
            ai++;
            bi += ops[k] == '=';
        }
        d8_buf_putc(out, '\n');
    }
}

char *ctl_unified_diff(const char *a_name, const char *a, const char *b_name, const char *b)
{
    lines_t la, lb;
    split(a, &la);
    split(b, &lb);
    char *ops = d8_xmalloc(la.n + lb.n + 1);
    size_t nops = lcs_ops(&la, &lb, ops);
    d8_buf_t out;
    d8_buf_init(&out);
    size_t k = 0, ai = 0, bi = 0;
    while (k < nops) {
        if (ops[k] == '=') {
            ai++, bi++, k++;
            continue;
        }
        /* A hunk: 3 lines of context before, changes joined while fewer
         * than 7 equal lines separate them, 3 lines after. */
        size_t ctx = k < 3 ? k : 3, start = k - ctx, end = k;
        size_t sa = ai - ctx, sb = bi - ctx;
        while (end < nops) {
            if (ops[end] != '=') {
                end++;
                continue;
            }
            size_t run = 0;
            while (end + run < nops && ops[end + run] == '=')
                run++;
            if (end + run == nops || run > 6) {
                end += run < 3 ? run : 3;
                break;
            }
            end += run;
        }
        if (!out.len)
            d8_buf_printf(&out, "--- %s\n+++ %s\n", a_name, b_name);
        hunk(&out, ops, start, end, &la, sa, &lb, sb);
        for (; k < end; k++) {
            ai += ops[k] != '+';
            bi += ops[k] != '-';
        }
    }
    free(ops);
    free(la.v);
    free(la.len);
    free(lb.v);
    free(lb.len);
    return d8_buf_detach(&out, NULL);
}

/* ---- logs -f ----------------------------------------------------------- */

size_t ctl_logs_new_offset(const char *prev, const char *next)
{
    lines_t p, n;
    split(prev, &p);
    split(next, &n);
    size_t best = 0;
    /* The largest k such that the last k lines of prev are the first k of
     * next. */
    for (size_t k = p.n < n.n ? p.n : n.n; k > 0 && !best; k--) {
        size_t i = 0;
        while (i < k && line_eq(&p, p.n - k + i, &n, i))
            i++;
        if (i == k)
            best = k;
    }
    size_t off = 0;
    if (best) {
        const char *end = n.v[best - 1] + n.len[best - 1];
        off = (size_t)(end - next) + (*end == '\n');
    }
    free(p.v);
    free(p.len);
    free(n.v);
    free(n.len);
    return off;
}
