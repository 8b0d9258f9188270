#include "metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct series {
    char *key; /* label values joined by '\x1f' */
    char **values;
    double value;     /* counter/gauge */
    uint64_t *counts; /* histogram: per bucket (not cumulative) + Inf */
    double sum;
    uint64_t count;
    struct series *next;
} series_t;

struct metric_family {
    kind_t kind;
    const char *name;
    const char *help;
    size_t nlabels;
    const char *const *labels;
    double *buckets;
    size_t nbuckets;
    series_t *series;
    series_t **tail;
    metric_family_t *next;
};

typedef struct collector {
    void (*fn)(void *ud);
    void *ud;
    struct collector *next;
} collector_t;

typedef struct text_source {
    void (*fn)(void *ud, d8_buf_t *out);
    void *ud;
    struct text_source *next;
} text_source_t;

struct metrics {
    metric_family_t *families;
    metric_family_t **tail;
    collector_t *collectors;
    text_source_t *sources;
    text_source_t **sources_tail;
    metric_family_t *proc_rss, *proc_cpu, *proc_fds, *proc_start;
    double start_time;
};

metrics_t *metrics_new(void)
{
    metrics_t *m = d8_xcalloc(1, sizeof(*m));
    m->tail = &m->families;
    m->sources_tail = &m->sources;
    m->start_time = (double)d8_wall_ms() / 1000.0;
    return m;
}

static void series_free(series_t *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->key);
    free(s->counts);
    free(s);
}

void metrics_clear(metric_family_t *f)
{
    series_t *s = f->series;
    while (s) {
        series_t *next = s->next;
        series_free(s, f->nlabels);
        s = next;
    }
    f->series = NULL;
    f->tail = &f->series;
}

void metrics_free(metrics_t *m)
{
    if (!m)
        return;
    metric_family_t *f = m->families;
    while (f) {
        metric_family_t *next = f->next;
        metrics_clear(f);
        free(f->buckets);
        free(f);
        f = next;
    }
    collector_t *c = m->collectors;
    while (c) {
        collector_t *next = c->next;
        free(c);
        c = next;
    }
    text_source_t *t = m->sources;
    while (t) {
        text_source_t *next = t->next;
        free(t);
        t = next;
    }
    free(m);
}

static metric_family_t *family(metrics_t *m, kind_t kind, const char *name, const char *help,
                               size_t nlabels, const char *const *labels)
{
    metric_family_t *f = d8_xcalloc(1, sizeof(*f));
    f->kind = kind;
    f->name = name;
    f->help = help;
    f->nlabels = nlabels;
    f->labels = labels;
    f->tail = &f->series;
    *m->tail = f;
    m->tail = &f->next;
    return f;
}

metric_family_t *metrics_counter(metrics_t *m, const char *name, const char *help, size_t nlabels,
                                 const char *const *labels)
{
    return family(m, KIND_COUNTER, name, help, nlabels, labels);
}

metric_family_t *metrics_gauge(metrics_t *m, const char *name, const char *help, size_t nlabels,
                               const char *const *labels)
{
    return family(m, KIND_GAUGE, name, help, nlabels, labels);
}

metric_family_t *metrics_histogram(metrics_t *m, const char *name, const char *help, size_t nlabels,
                                   const char *const *labels, const double *buckets,
                                   size_t nbuckets)
{
    metric_family_t *f = family(m, KIND_HISTOGRAM, name, help, nlabels, labels);
    f->buckets = d8_xmalloc((nbuckets ? nbuckets : 1) * sizeof(double));
    if (nbuckets) /* buckets may be NULL then; memcpy must not see it */
        memcpy(f->buckets, buckets, nbuckets * sizeof(double));
    f->nbuckets = nbuckets;
    return f;
}

/*
 * The series of f with these label values (borrowed; copied when new),
 * created zeroed at the end of the family on first use. A key longer
 * than the buffer is cut, so such label sets share one series.
 */
static series_t *series_get(metric_family_t *f, const char *const *values)
{
    char key[512];
    size_t off = 0;
    for (size_t i = 0; values && i < f->nlabels; i++) {
        int n = snprintf(key + off, sizeof(key) - off, "%s\x1f", values[i] ? values[i] : "");
        if (n < 0 || (size_t)n >= sizeof(key) - off) {
            off = sizeof(key) - 1;
            break;
        }
        off += (size_t)n;
    }
    key[off] = '\0';
    for (series_t *s = f->series; s; s = s->next)
        if (strcmp(s->key, key) == 0)
            return s;
    series_t *s = d8_xcalloc(1, sizeof(*s));
    s->key = d8_xstrdup(key);
    s->values = d8_xcalloc(f->nlabels ? f->nlabels : 1, sizeof(char *));
    for (size_t i = 0; i < f->nlabels; i++)
        s->values[i] = d8_xstrdup(values[i] ? values[i] : "");
    if (f->kind == KIND_HISTOGRAM)
        s->counts = d8_xcalloc(f->nbuckets + 1, sizeof(uint64_t));
    *f->tail = s;
    f->tail = &s->next;
    return s;
}

void metrics_add(metric_family_t *f, const char *const *values, double v)
{
    series_get(f, values)->value += v;
}

void metrics_set(metric_family_t *f, const char *const *values, double v)
{
    series_get(f, values)->value = v;
}

void metrics_observe(metric_family_t *f, const char *const *values, double v)
{
    series_t *s = series_get(f, values);
    size_t i = 0;
    while (i < f->nbuckets && v > f->buckets[i])
        i++;
    s->counts[i]++;
    s->sum += v;
    s->count++;
}

void metrics_on_collect(metrics_t *m, void (*fn)(void *ud), void *ud)
{
    collector_t *c = d8_xcalloc(1, sizeof(*c));
    c->fn = fn;
    c->ud = ud;
    c->next = m->collectors;
    m->collectors = c;
}

void metrics_on_render(metrics_t *m, void (*fn)(void *ud, d8_buf_t *out), void *ud)
{
    text_source_t *t = d8_xcalloc(1, sizeof(*t));
    t->fn = fn;
    t->ud = ud;
    *m->sources_tail = t;
    m->sources_tail = &t->next;
}

static void label_value(d8_buf_t *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            d8_buf_puts(out, "\\\\");
        else if (*v == '"')
            d8_buf_puts(out, "\\\"");
        else if (*v == '\n')
            d8_buf_puts(out, "\\n");
        else
            d8_buf_putc(out, *v);
    }
}

/* Writes {a="x",b="y"[,le="..."]} (nothing when there are no labels). */
static void labels(d8_buf_t *out, const metric_family_t *f, const series_t *s, const char *le)
{
    if (!f->nlabels && !le)
        return;
    d8_buf_putc(out, '{');
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i)
            d8_buf_putc(out, ',');
        d8_buf_printf(out, "%s=\"", f->labels[i]);
        label_value(out, s->values[i]);
        d8_buf_putc(out, '"');
    }
    if (le)
        d8_buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    d8_buf_putc(out, '}');
}

/* Writes " <v>\n" in a form Prometheus reads back as exactly v. */
static void number(d8_buf_t *out, double v)
{
    /* The range test comes first: converting NaN, an infinity or anything
     * beyond int64_t to an integer is undefined. printf would spell NaN
     * "-nan" when its sign bit is set, which Prometheus cannot parse. */
    if (isnan(v))
        d8_buf_puts(out, " NaN\n");
    else if (isinf(v))
        d8_buf_puts(out, v > 0 ? " +Inf\n" : " -Inf\n");
    else if (v < 9e15 && v > -9e15 && v == (double)(int64_t)v)
        d8_buf_printf(out, " %lld\n", (long long)v);
    else {
        /* Nine digits cut a start time in epoch seconds to tens of
         * seconds: use the shortest of 15 or 17 that reads back exactly. */
        char tmp[40];
        snprintf(tmp, sizeof(tmp), "%.15g", v);
        if (strtod(tmp, NULL) != v)
            snprintf(tmp, sizeof(tmp), "%.17g", v);
        d8_buf_printf(out, " %s\n", tmp);
    }
}

void metrics_render(metrics_t *m, d8_buf_t *out)
{
    for (collector_t *c = m->collectors; c; c = c->next)
        c->fn(c->ud);
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    for (metric_family_t *f = m->families; f; f = f->next) {
        d8_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                      kinds[f->kind]);
        for (series_t *s = f->series; s; s = s->next) {
            if (f->kind != KIND_HISTOGRAM) {
                d8_buf_puts(out, f->name);
                labels(out, f, s, NULL);
                number(out, s->value);
                continue;
            }
            uint64_t cum = 0;
            for (size_t i = 0; i <= f->nbuckets; i++) {
                char le[32];
                cum += s->counts[i];
                if (i < f->nbuckets)
                    snprintf(le, sizeof(le), "%g", f->buckets[i]);
                else
                    snprintf(le, sizeof(le), "+Inf");
                d8_buf_printf(out, "%s_bucket", f->name);
                labels(out, f, s, le);
                number(out, (double)cum);
            }
            d8_buf_printf(out, "%s_sum", f->name);
            labels(out, f, s, NULL);
            number(out, s->sum);
            d8_buf_printf(out, "%s_count", f->name);
            labels(out, f, s, NULL);
            number(out, (double)s->count);
        }
    }
    for (text_source_t *t = m->sources; t; t = t->next)
        t->fn(t->ud, out);
}

size_t metrics_rss_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp)
        return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(fp, "%lu %lu", &size, &resident);
    fclose(fp);
    if (n != 2)
        return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own descriptor */
}

static void collect_process(void *ud)
{
    metrics_t *m = ud;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    metrics_set(m->proc_rss, NULL, (double)metrics_rss_bytes());
    metrics_set(m->proc_cpu, NULL, cpu);
    metrics_set(m->proc_fds, NULL, (double)open_fds());
    metrics_set(m->proc_start, NULL, m->start_time);
}

void metrics_process(metrics_t *m)
{
    m->proc_rss = metrics_gauge(m, "process_resident_memory_bytes",
                                "Resident memory size in bytes.", 0, NULL);
    m->proc_cpu = metrics_counter(m, "process_cpu_seconds_total",
                                  "Total user and system CPU time spent in seconds.", 0, NULL);
    m->proc_fds = metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", 0, NULL);
    m->proc_start = metrics_gauge(m, "process_start_time_seconds",
                                  "Start time of the process since the epoch in seconds.", 0, NULL);
    metrics_on_collect(m, collect_process, m);
}
