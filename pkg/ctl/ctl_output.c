/*
 * dev8ctl's output: YAML through libyaml's emitter, JSON through cJSON,
 * aligned tables (widths in code points, colour codes outside the padding),
 * kubectl-style ages against a clock the tests can fix.
 */
#include "ctl/ctl_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

/* ---- YAML -------------------------------------------------------------- */

static int emit_write(void *ud, unsigned char *buf, size_t n)
{
    d8_buf_append(ud, buf, n);
    return 1;
}

/* 1 when a plain scalar s would read back as something other than this
 * string (a number, bool, null) or is not plain-safe at all. */
static int needs_quotes(const char *s)
{
    if (!s[0])
        return 1;
    /* YAML 1.1 readers (PyYAML, go-yaml v2) take these as timestamps,
     * octals, sexagesimals or booleans: quote them for every reader. */
    if ((s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '+' || s[0] == '-')
        return 1;
    static const char *const yaml11[] = {"y",  "Y",  "yes", "Yes", "YES", "n",   "N",   "no", "No",
                                         "NO", "on", "On",  "ON",  "off", "Off", "OFF", "="};
    for (size_t i = 0; i < sizeof yaml11 / sizeof yaml11[0]; i++)
        if (strcmp(s, yaml11[i]) == 0)
            return 1;
    cJSON *v = NULL;
    char err[8];
    v = ctl_yaml_parse("", s, strlen(s), err, sizeof err);
    int same = cJSON_IsString(v) && strcmp(v->valuestring, s) == 0;
    cJSON_Delete(v);
    return !same;
}

static void emit_scalar(yaml_emitter_t *em, const char *s, int quoted)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), !quoted, 1,
                                 quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    yaml_emitter_emit(em, &ev);
}

static void fmt_number(double d, char *out, size_t n)
{
    if (isfinite(d) && d == floor(d) && fabs(d) < 1e17)
        snprintf(out, n, "%.0f", d);
    else
        snprintf(out, n, "%.17g", d);
}

/* Emits v as YAML events: empty containers in flow style ({} and []),
 * others in block style, scalars quoted when needed. */
static void emit_value(yaml_emitter_t *em, const cJSON *v)
{
    yaml_event_t ev;
    char num[64];
    if (cJSON_IsObject(v)) {
        yaml_mapping_start_event_initialize(
            &ev, NULL, NULL, 1, v->child ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE);
        yaml_emitter_emit(em, &ev);
        for (const cJSON *m = v->child; m; m = m->next) {
            emit_scalar(em, m->string, needs_quotes(m->string));
            emit_value(em, m);
        }
        yaml_mapping_end_event_initialize(&ev);
        yaml_emitter_emit(em, &ev);
    } else if (cJSON_IsArray(v)) {
        yaml_sequence_start_event_initialize(
            &ev, NULL, NULL, 1, v->child ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE);
        yaml_emitter_emit(em, &ev);
        for (const cJSON *m = v->child; m; m = m->next)
            emit_value(em, m);
        yaml_sequence_end_event_initialize(&ev);
        yaml_emitter_emit(em, &ev);
    } else if (cJSON_IsString(v)) {
        emit_scalar(em, v->valuestring, needs_quotes(v->valuestring));
    } else if (cJSON_IsNumber(v)) {
        fmt_number(v->valuedouble, num, sizeof num);
        emit_scalar(em, num, 0);
    } else if (cJSON_IsBool(v)) {
        emit_scalar(em, cJSON_IsTrue(v) ? "true" : "false", 0);
    } else {
        emit_scalar(em, "null", 0);
    }
}

char *ctl_yaml_emit(const cJSON *v)
{
    d8_buf_t b;
    d8_buf_init(&b);
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em))
        d8_die("yaml_emitter_initialize");
    yaml_emitter_set_output(&em, emit_write, &b);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    yaml_emitter_emit(&em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    yaml_emitter_emit(&em, &ev);
    emit_value(&em, v);
    yaml_document_end_event_initialize(&ev, 1);
    yaml_emitter_emit(&em, &ev);
    yaml_stream_end_event_initialize(&ev);
    yaml_emitter_emit(&em, &ev);
    yaml_emitter_delete(&em);
    return d8_buf_detach(&b, NULL);
}

void ctl__print_value(ctl_t *c, const cJSON *v)
{
    char *s = c->out == OUT_YAML ? ctl_yaml_emit(v) : cJSON_Print(v);
    fputs(s, c->o);
    if (c->out != OUT_YAML)
        fputc('\n', c->o);
    free(s);
}

/* ---- times ------------------------------------------------------------- */

int ctl_parse_time(const char *s, long long *out)
{
    struct tm tm = {0};
    if (!s)
        return -1;
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    *out = (long long)timegm(&tm);
    return 0;
}

void ctl_age(long long s, char *out, size_t n)
{
    if (s < 0)
        s = 0;
    long long m = s / 60, h = s / 3600, d = s / 86400, y = d / 365;
    if (s < 120)
        snprintf(out, n, "%llds", s);
    else if (m < 10 && s % 60)
        snprintf(out, n, "%lldm%llds", m, s % 60);
    else if (m < 180)
        snprintf(out, n, "%lldm", m);
    else if (h < 8 && m % 60)
        snprintf(out, n, "%lldh%lldm", h, m % 60);
    else if (h < 48)
        snprintf(out, n, "%lldh", h);
    else if (h < 192 && h % 24)
        snprintf(out, n, "%lldd%lldh", d, h % 24);
    else if (y < 2)
        snprintf(out, n, "%lldd", d);
    else
        snprintf(out, n, "%lldy", y);
}

void ctl__age_of(long long now, const char *t, char *out, size_t n)
{
    long long at;
    if (ctl_parse_time(t, &at) < 0)
        snprintf(out, n, "<unknown>");
    else
        ctl_age(now - at, out, n);
}

/* ---- JSON access ------------------------------------------------------- */

static const cJSON *at_path(const cJSON *o, const char *path)
{
    char part[128];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy(part, path, n);
        part[n] = 0;
        o = cJSON_GetObjectItemCaseSensitive(o, part);
        path += n + (path[n] == '.');
    }
    return o;
}

const char *ctl__str(const cJSON *o, const char *path)
{
    return cJSON_GetStringValue(at_path(o, path));
}

double ctl__num(const cJSON *o, const char *path, double dflt)
{
    const cJSON *v = at_path(o, path);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

const cJSON *ctl__cond(const cJSON *env, const char *type)
{
    const cJSON *cs = at_path(env, "status.conditions");
    for (const cJSON *x = cs ? cs->child : NULL; x; x = x->next) {
        const char *t = ctl__str(x, "type");
        if (t && strcmp(t, type) == 0)
            return x;
    }
    return NULL;
}

/* ---- tables ------------------------------------------------------------ */

void ctl__table_init(ctl_table_t *t, size_t ncols)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
}

void ctl__table_row(ctl_table_t *t, const char *const cells[])
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = d8_xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
        t->colors = d8_xrealloc(t->colors, t->cap * t->ncols * sizeof *t->colors);
    }
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = cells[i] && cells[i][0] ? cells[i] : "<none>";
        /* A cell is one line: control characters would break the columns
         * (and could drive the terminal). */
        char *copy = d8_xstrdup(s);
        for (char *p = copy; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
        t->cells[t->nrows * t->ncols + i] = copy;
        t->colors[t->nrows * t->ncols + i] = 0;
    }
    t->nrows++;
}

void ctl__table_color(ctl_table_t *t, size_t row, size_t col, int color)
{
    if (row < t->nrows && col < t->ncols)
        t->colors[row * t->ncols + col] = color;
}

/* Display width: code points (continuation bytes do not count). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

void ctl__table_render(const ctl_table_t *t, d8_buf_t *b, const char *indent, int color)
{
    size_t *w = d8_xcalloc(t->ncols ? t->ncols : 1, sizeof *w);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t x = width(t->cells[r * t->ncols + c]);
            if (x > w[c])
                w[c] = x;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        d8_buf_puts(b, indent);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            int col = t->colors[r * t->ncols + c];
            if (color && col)
                d8_buf_printf(b, "\033[%dm%s\033[0m", col, s);
            else
                d8_buf_puts(b, s);
            if (c + 1 < t->ncols)
                for (size_t p = width(s); p < w[c] + 2; p++)
                    d8_buf_putc(b, ' ');
        }
        d8_buf_putc(b, '\n');
    }
    free(w);
}

void ctl__table_release(ctl_table_t *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->colors);
    memset(t, 0, sizeof *t);
}

int ctl__phase_color(const char *phase)
{
    if (!phase)
        return 0;
    if (strcmp(phase, "RUNNING") == 0)
        return 32;
    if (strcmp(phase, "ERROR") == 0)
        return 31;
    if (strcmp(phase, "STOPPED") == 0)
        return 0;
    return 33;
}

static void num_cell(const cJSON *o, const char *path, const char *unit, char *out, size_t n)
{
    const cJSON *v = at_path(o, path);
    if (!cJSON_IsNumber(v)) {
        snprintf(out, n, "<none>");
        return;
    }
    fmt_number(v->valuedouble, out, n);
    if (unit)
        strncat(out, unit, n - strlen(out) - 1);
}

char *ctl_env_table(const cJSON *items, int wide, long long now, int color)
{
    static const char *const head[] = {"ID",     "USER",    "REGION", "PHASE", "READY",
                                       "AGE",    "FQDN",    "NAME",   "IMAGE", "CPU",
                                       "MEMORY", "STORAGE", "POWER",  "GEN"};
    size_t ncols = wide ? 14 : 7;
    ctl_table_t t;
    ctl__table_init(&t, ncols);
    ctl__table_row(&t, head);
    for (const cJSON *e = items ? items->child : NULL; e; e = e->next) {
        char age[32], cpu[32], mem[32], sto[32], gen[64], ready[96];
        const cJSON *rc = ctl__cond(e, "Ready");
        snprintf(ready, sizeof ready, "%s", rc ? ctl__str(rc, "reason") : "");
        if (rc && ctl__str(rc, "status") && strcmp(ctl__str(rc, "status"), "True") == 0)
            snprintf(ready, sizeof ready, "True");
        else if (rc)
            snprintf(ready, sizeof ready, "False/%s",
                     ctl__str(rc, "reason") ? ctl__str(rc, "reason") : "");
        ctl__age_of(now, ctl__str(e, "createdAt"), age, sizeof age);
        num_cell(e, "spec.cpuCores", NULL, cpu, sizeof cpu);
        num_cell(e, "spec.memoryGB", "Gi", mem, sizeof mem);
        num_cell(e, "spec.storageGB", "Gi", sto, sizeof sto);
        snprintf(gen, sizeof gen, "%.0f/%.0f", ctl__num(e, "generation", 0),
                 ctl__num(e, "status.observedGeneration", 0));
        const char *row[] = {ctl__str(e, "id"),
                             ctl__str(e, "spec.userId"),
                             ctl__str(e, "spec.cloudRegion"),
                             ctl__str(e, "status.phase"),
                             ready,
                             age,
                             ctl__str(e, "status.fqdn"),
                             ctl__str(e, "spec.name"),
                             ctl__str(e, "spec.baseImage"),
                             cpu,
                             mem,
                             sto,
                             ctl__str(e, "spec.powerState"),
                             gen};
        ctl__table_row(&t, row);
        ctl__table_color(&t, t.nrows - 1, 3, ctl__phase_color(ctl__str(e, "status.phase")));
    }
    d8_buf_t b;
    d8_buf_init(&b);
    ctl__table_render(&t, &b, "", color);
    ctl__table_release(&t);
    return d8_buf_detach(&b, NULL);
}
