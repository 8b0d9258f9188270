/*
 * The pricing and retention sections of the configuration (issue 15):
 *
 *   pricing:
 *     currency: USD
 *     regions:
 *       eastus: {vcpuSecond: 0.0000113, memoryGBSecond: 0.0000012, shareGBMonth: 0.06}
 *   retention:
 *     retainDays: 30
 *
 * Prices are non-negative numbers; a region without an entry reports
 * quantities only. retainDays is a non-negative number of days (fractions
 * allowed, for tests and demos); 0 keeps retained shares forever.
 */
#include "config_int.h"

#include "base/base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PRICES 64

/* A plain non-negative number at most `max` into *out, or the error. */
static int number_value(config__walk_t *w, yaml_node_t *n, double max, double *out)
{
    char buf[200];
    char *end;
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        n->data.scalar.length > 0 &&
        strspn(config__scalar_of(n), "0123456789.eE+-") == n->data.scalar.length) {
        errno = 0;
        double v = strtod(config__scalar_of(n), &end);
        if (!errno && *end == '\0' && v >= 0.0 && v <= max) {
            *out = v;
            return 0;
        }
    }
    return config__fail(w, n->start_mark, "must be a number from 0 to %g, got %s", max,
                        config__describe(n, 1, buf, sizeof buf));
}

static int set_vcpu(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    return number_value(w, v, 1e3, &((config_price_t *)base)->vcpu_second);
}

static int set_memory(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    return number_value(w, v, 1e3, &((config_price_t *)base)->memory_gb_second);
}

static int set_share(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    return number_value(w, v, 1e6, &((config_price_t *)base)->share_gb_month);
}

static const config__field_t price_fields[] = {
    {.key = "vcpuSecond", .kind = CONFIG__F_CUSTOM, .custom = set_vcpu},
    {.key = "memoryGBSecond", .kind = CONFIG__F_CUSTOM, .custom = set_memory},
    {.key = "shareGBMonth", .kind = CONFIG__F_CUSTOM, .custom = set_share},
    {0},
};

/* pricing.regions: region name -> {vcpuSecond, memoryGBSecond, shareGBMonth}. */
static int set_prices(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    char buf[200];
    (void)k;
    if (config__is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return config__fail(w, v->start_mark,
                            "must be a mapping of region name to {vcpuSecond, memoryGBSecond, "
                            "shareGBMonth}, got %s",
                            config__describe(v, 0, buf, sizeof buf));
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > MAX_PRICES)
        return config__fail(w, v->start_mark, "must list at most %d regions, got %zu", MAX_PRICES,
                            n);
    for (size_t i = 0; i < cfg->nprices; i++)
        free(cfg->prices[i].region);
    free(cfg->prices);
    cfg->prices = d8_xcalloc(n ? n : 1, sizeof(*cfg->prices));
    cfg->nprices = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        yaml_node_t *key = config__node_at(w, p->key), *val = config__node_at(w, p->value);
        if (!key || !val || key->type != YAML_SCALAR_NODE)
            return config__fail(w, v->start_mark, "keys must be region names");
        const char *name = config__scalar_of(key);
        size_t old = config__path_key(w, name, key->data.scalar.length);
        int rc = config__visit(w, val, key->start_mark);
        for (size_t j = 0; rc == 0 && j < cfg->nprices; j++)
            if (strcmp(cfg->prices[j].region, name) == 0)
                rc = config__fail(w, key->start_mark, "duplicate region");
        if (rc == 0 && val->type != YAML_MAPPING_NODE)
            rc = config__fail(w, val->start_mark,
                              "must be a mapping with vcpuSecond, memoryGBSecond and "
                              "shareGBMonth, got %s",
                              config__describe(val, 0, buf, sizeof buf));
        config_price_t *pr = &cfg->prices[cfg->nprices];
        if (rc == 0) {
            pr->region = d8_xstrdup(name);
            pr->line = key->start_mark.line + 1;
            pr->column = key->start_mark.column + 1;
            cfg->nprices++;
            rc = config__walk_section(w, val, price_fields, pr);
        }
        config__path_pop(w, old);
        if (rc)
            return rc;
    }
    return 0;
}

/* pricing.currency: an ISO 4217 code (three capital letters). */
static const char *check_currency(char *s)
{
    int ok = strlen(s) == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok = s[i] >= 'A' && s[i] <= 'Z';
    return ok ? NULL : "must be an ISO 4217 currency code such as USD or EUR";
}

static int set_retain_days(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    (void)k;
    /* At most 100 years: far enough, and well inside int64 milliseconds. */
    return number_value(w, v, 36500, &((config_t *)base)->retain_days);
}

const config__field_t config__pricing_fields[] = {
    {.key = "currency",
     .kind = CONFIG__F_STR,
     .off = offsetof(config_t, currency),
     .check = check_currency},
    {.key = "regions", .kind = CONFIG__F_CUSTOM, .custom = set_prices},
    {0},
};

const config__field_t config__retention_fields[] = {
    {.key = "retainDays", .kind = CONFIG__F_CUSTOM, .custom = set_retain_days},
    {0},
};

int config__check_prices(const config_t *cfg, const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->nprices; i++) {
        const config_price_t *p = &cfg->prices[i];
        if (config_region(cfg, p->region))
            continue;
        if (err && errlen)
            snprintf(err, errlen, "%s:%zu:%zu: pricing.regions.%s: not a region of azure.regions",
                     name, p->line, p->column, p->region);
        return D8_EINVAL;
    }
    return 0;
}
