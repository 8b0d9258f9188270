/*
 * pkg/metrics: a small registry of counters, gauges and histograms with
 * labels, rendered in the Prometheus text exposition format (0.0.4).
 * Single-threaded (the loop's thread).
 */
#ifndef D8_METRICS_H
#define D8_METRICS_H

#include "base/base.h"

#include <stddef.h>

typedef struct metrics metrics_t;
typedef struct metric_family metric_family_t;

/* A new, empty registry, owned by the caller (metrics_free releases it). */
metrics_t *metrics_new(void);
/*
 * Frees the registry with every family, series and callback registration
 * it holds; family pointers from it are invalid afterwards. NULL is a no-op.
 */
void metrics_free(metrics_t *m);

/*
 * Registers a family. name/help/label names are borrowed and must outlive
 * the registry (string literals). Families render in registration order.
 */
metric_family_t *metrics_counter(metrics_t *m, const char *name, const char *help, size_t nlabels,
                                 const char *const *labels);
metric_family_t *metrics_gauge(metrics_t *m, const char *name, const char *help, size_t nlabels,
                               const char *const *labels);
/* buckets: ascending upper bounds (copied); +Inf is implicit. */
metric_family_t *metrics_histogram(metrics_t *m, const char *name, const char *help, size_t nlabels,
                                   const char *const *labels, const double *buckets,
                                   size_t nbuckets);

/* Adds v to the counter/gauge series with these label values (copied). */
void metrics_add(metric_family_t *f, const char *const *values, double v);
/* Sets the gauge series. */
void metrics_set(metric_family_t *f, const char *const *values, double v);
/* Drops every series of a gauge family (before re-setting a snapshot). */
void metrics_clear(metric_family_t *f);
/* Records one observation in the histogram series. */
void metrics_observe(metric_family_t *f, const char *const *values, double v);

/*
 * A collector runs right before rendering, to refresh gauges from their
 * source (queue depth, phase counts, process figures).
 */
void metrics_on_collect(metrics_t *m, void (*fn)(void *ud), void *ud);

/*
 * A text source appends ready-made exposition text (families kept by
 * another module, e.g. the Azure client's) after the registry's own.
 */
void metrics_on_render(metrics_t *m, void (*fn)(void *ud, d8_buf_t *out), void *ud);

/* Appends the exposition text of every family to out. */
void metrics_render(metrics_t *m, d8_buf_t *out);

/* Standard process_* figures (RSS, CPU seconds, open fds, start time). */
void metrics_process(metrics_t *m);

/* Reads this process's resident set size in bytes (0 when unknown). */
size_t metrics_rss_bytes(void);

#endif
