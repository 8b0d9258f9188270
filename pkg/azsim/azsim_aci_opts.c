/*
 * pkg/azsim: the settings of the documented ACI behaviours (azsim.h,
 * azsim_aci_opts_t): defaults, deep copies, and one reader of their JSON
 * form, which both the config file's `aci:` section (converted from YAML
 * by azsim_config.c, so errors still name file:line:column) and
 * POST /_azsim/aci go through.
 */
#include "azsim_int.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000ull

void azsim__aci_opts_init(azsim_aci_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->waiting_timeout_ms = 1800000;
    o->crash_backoff_ms = 10000;
    o->identical_put_restarts = 1;
    o->quota_groups = 100;
    o->quota_cores = 100;
    o->core_quota_status = 400;
    o->invalid_update_status = 400;
    o->dns_taken_status = 400;
}

static void free_strings(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

static void free_rules(azsim_image_rule_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i].match);
    free(r);
}

void azsim__aci_opts_release(azsim_aci_opts_t *o)
{
    free_strings(o->capacity_exhausted, o->ncapacity_exhausted);
    free_strings(o->unregistered, o->nunregistered);
    free_rules(o->images, o->nimages);
    cJSON_Delete(o->registries);
    azsim__aci_opts_init(o);
}

static char **copy_strings(char *const *l, size_t n)
{
    if (n == 0)
        return NULL;
    char **c = d8_xcalloc(n, sizeof(*c));
    for (size_t i = 0; i < n; i++)
        c[i] = d8_xstrdup(l[i]);
    return c;
}

void azsim__aci_opts_copy(azsim_aci_opts_t *dst, const azsim_aci_opts_t *src)
{
    *dst = *src;
    dst->capacity_exhausted = copy_strings(src->capacity_exhausted, src->ncapacity_exhausted);
    dst->unregistered = copy_strings(src->unregistered, src->nunregistered);
    dst->registries = src->registries ? cJSON_Duplicate(src->registries, 1) : NULL;
    dst->images = NULL;
    if (src->nimages) {
        dst->images = d8_xcalloc(src->nimages, sizeof(*dst->images));
        for (size_t i = 0; i < src->nimages; i++) {
            dst->images[i] = src->images[i];
            dst->images[i].match = d8_xstrdup(src->images[i].match);
        }
    }
}

/* ---- reading ------------------------------------------------------------ */

/* Where a reading failed: the node and "key: what is wrong". */
typedef struct perr {
    const cJSON **at;
    char *err;
    size_t errlen;
} perr_t;

static int bad(perr_t *e, const cJSON *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(perr_t *e, const cJSON *at, const char *key, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(e->err, e->errlen, "%s: %s", key, msg);
    *e->at = at;
    return -1;
}

/* A scalar setting: its key, kind ('m'illiseconds or a count up to max,
 * 'b'oolean, 's'tatus 400..499) and its field. */
typedef struct key_spec {
    const char *name;
    char kind;
    size_t off;
    uint64_t max;
} key_spec_t;

#define F(field) offsetof(azsim_aci_opts_t, field)
static const key_spec_t top_keys[] = {
    {"transitionMs", 'm', F(transition_ms), DAY_MS},
    {"staleMs", 'm', F(stale_ms), DAY_MS},
    {"waitingTimeoutMs", 'm', F(waiting_timeout_ms), DAY_MS},
    {"crashBackoffMs", 'm', F(crash_backoff_ms), DAY_MS},
    {"identicalPutRestarts", 'b', F(identical_put_restarts), 1},
    {"uniqueDnsLabels", 'b', F(unique_dns_labels), 1},
};
static const key_spec_t pull_keys[] = {
    {"medianMs", 'm', F(pull_median_ms), DAY_MS},
    {"p95Ms", 'm', F(pull_p95_ms), DAY_MS},
};
static const key_spec_t quota_keys[] = {
    {"containerGroups", 'm', F(quota_groups), 1000000},
    {"standardCores", 'm', F(quota_cores), 1000000},
};
static const key_spec_t status_keys[] = {
    {"containerGroupQuotaReached", 's', F(core_quota_status), 499},
    {"invalidContainerGroupUpdate", 's', F(invalid_update_status), 499},
    {"dnsNameLabelAlreadyTaken", 's', F(dns_taken_status), 499},
};
#undef F
#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

/* A whole number from 0 to max in *out; -1 on anything else. */
static int whole(const cJSON *v, uint64_t max, uint64_t *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > (double)max || floor(v->valuedouble) != v->valuedouble)
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

/* Sets the field of key k in base from v; what names the enclosing map
 * ("aci" for the top level) for the error. */
static int set_scalar(void *base, const key_spec_t *k, const cJSON *v, const char *what, perr_t *e)
{
    char *field = (char *)base + k->off;
    char name[80];
    snprintf(name, sizeof(name), "%s%s%s", strcmp(what, "aci") ? what : "",
             strcmp(what, "aci") ? "." : "", k->name);
    uint64_t u;
    if (k->kind == 'b') {
        if (!cJSON_IsBool(v))
            return bad(e, v, name, "expected true or false");
        *(int *)field = cJSON_IsTrue(v);
    } else if (k->kind == 's') {
        if (whole(v, k->max, &u) < 0 || u < 400)
            return bad(e, v, name, "expected an HTTP status from 400 to 499");
        *(int *)field = (int)u;
    } else {
        if (whole(v, k->max, &u) < 0)
            return bad(e, v, name, "expected an integer from 0 to %llu",
                       (unsigned long long)k->max);
        *(uint64_t *)field = u;
    }
    return 0;
}

static const key_spec_t *find_key(const key_spec_t *t, size_t n, const char *name)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(t[k].name, name) == 0)
            return &t[k];
    return NULL;
}

/* The member it of a map named what, by the table, into base. */
static int set_key(void *base, const key_spec_t *t, size_t n, const cJSON *it, const char *what,
                   perr_t *e)
{
    const key_spec_t *spec = find_key(t, n, it->string);
    if (spec)
        return set_scalar(base, spec, it, what, e);
    char keys[200] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%s", i ? ", " : "",
                 t[i].name);
    return bad(e, it, it->string, "unknown key in %s (%s)", what, keys);
}

/* Every member of the object j into base by the table; what names the map. */
static int set_map(void *base, const key_spec_t *t, size_t n, const cJSON *j, const char *what,
                   perr_t *e)
{
    if (!cJSON_IsObject(j))
        return bad(e, j, what, "expected a mapping");
    for (const cJSON *it = j->child; it; it = it->next)
        if (set_key(base, t, n, it, what, e) < 0)
            return -1;
    return 0;
}

/* A list of non-empty names (regions are normalised as ARM does: lower
 * case, no blanks) replacing *out. */
static int set_names(const cJSON *j, const char *key, int region, char ***out, size_t *nout,
                     perr_t *e)
{
    if (!cJSON_IsArray(j))
        return bad(e, j, key, "expected a list of names");
    size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
    char **l = d8_xcalloc(n ? n : 1, sizeof(*l));
    for (const cJSON *it = j->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring[0]) {
            free_strings(l, i);
            return bad(e, it, key, "expected a non-empty name");
        }
        char *s = d8_xstrdup(it->valuestring);
        if (region) {
            size_t o = 0;
            for (const char *p = s; *p; p++)
                if (*p != ' ')
                    s[o++] = *p;
            s[o] = '\0';
        }
        l[i++] = azsim__lower(s);
    }
    free_strings(*out, *nout);
    *out = l;
    *nout = i;
    return 0;
}

static const char *const failure_names[] = {"None", "InaccessibleImage", "RegistryErrorResponse",
                                            "PullFailed"};

/* rule.pull: {medianMs, p95Ms}, the median not above the 95th percentile. */
static int set_rule_pull(azsim_image_rule_t *r, const cJSON *v, perr_t *e)
{
    azsim_aci_opts_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (set_map(&tmp, pull_keys, NKEYS(pull_keys), v, "images.pull", e) < 0)
        return -1;
    if (tmp.pull_p95_ms < tmp.pull_median_ms)
        return bad(e, v, "images.pull", "p95Ms must not be below medianMs");
    r->pull_median_ms = tmp.pull_median_ms;
    r->pull_p95_ms = tmp.pull_p95_ms;
    return 0;
}

/* One member of an image rule. */
static int rule_key(azsim_image_rule_t *r, const cJSON *it, perr_t *e)
{
    uint64_t u;
    const char *k = it->string;
    if (strcmp(k, "match") == 0) {
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return bad(e, it, "images.match", "expected a non-empty glob");
        free(r->match);
        r->match = d8_xstrdup(it->valuestring);
    } else if (strcmp(k, "exitAfterMs") == 0) {
        if (whole(it, DAY_MS, &u) < 0)
            return bad(e, it, "images.exitAfterMs", "expected an integer from 0 to %llu", DAY_MS);
        r->exit_after_ms = (int64_t)u;
    } else if (strcmp(k, "exitCode") == 0) {
        if (whole(it, 255, &u) < 0)
            return bad(e, it, "images.exitCode", "expected an integer from 0 to 255");
        r->exit_code = (int)u;
    } else if (strcmp(k, "pullMs") == 0) {
        if (whole(it, DAY_MS, &u) < 0)
            return bad(e, it, "images.pullMs", "expected an integer from 0 to %llu", DAY_MS);
        r->pull_ms = (int64_t)u;
    } else if (strcmp(k, "pull") == 0) {
        return set_rule_pull(r, it, e);
    } else if (strcmp(k, "readyAfterMs") == 0) {
        if (whole(it, DAY_MS, &u) < 0)
            return bad(e, it, "images.readyAfterMs", "expected an integer from 0 to %llu", DAY_MS);
        r->ready_after_ms = (int64_t)u;
    } else if (strcmp(k, "probeNeverPasses") == 0) {
        if (!cJSON_IsBool(it))
            return bad(e, it, "images.probeNeverPasses", "expected true or false");
        if (cJSON_IsTrue(it))
            r->ready_after_ms = -1;
    } else if (strcmp(k, "failure") == 0) {
        size_t f;
        for (f = 0; f < NKEYS(failure_names); f++)
            if (cJSON_IsString(it) && strcmp(it->valuestring, failure_names[f]) == 0)
                break;
        if (f == NKEYS(failure_names))
            return bad(e, it, "images.failure",
                       "expected None, InaccessibleImage, RegistryErrorResponse or PullFailed");
        r->failure = (int)f;
    } else {
        return bad(e, it, k,
                   "unknown key in images (match, exitAfterMs, exitCode, pullMs, pull, failure, "
                   "readyAfterMs, probeNeverPasses)");
    }
    return 0;
}

/* images: a list of rules, each with a match, replacing the old list. */
static int set_images(azsim_aci_opts_t *o, const cJSON *j, perr_t *e)
{
    if (!cJSON_IsArray(j))
        return bad(e, j, "images", "expected a list of rules");
    size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
    azsim_image_rule_t *rules = d8_xcalloc(n ? n : 1, sizeof(*rules));
    for (const cJSON *it = j->child; it; it = it->next, i++) {
        azsim_image_rule_t *r = &rules[i];
        r->exit_after_ms = -1;
        r->pull_ms = -1;
        if (!cJSON_IsObject(it)) {
            free_rules(rules, i + 1);
            return bad(e, it, "images", "expected a mapping");
        }
        for (const cJSON *m = it->child; m; m = m->next) {
            if (rule_key(r, m, e) < 0) {
                free_rules(rules, i + 1);
                return -1;
            }
        }
        if (!r->match) {
            free_rules(rules, i + 1);
            return bad(e, it, "images", "match is required");
        }
    }
    free_rules(o->images, o->nimages);
    o->images = rules;
    o->nimages = n;
    return 0;
}

/* registries: the private registries (azsim_registry.c), replacing the old list. */
static int set_registries(azsim_aci_opts_t *o, const cJSON *j, perr_t *e)
{
    char why[200];
    cJSON *regs = NULL;
    if (azsim__registries_parse(j, &regs, why, sizeof(why)) < 0)
        return bad(e, j, "registries", "%s", why);
    cJSON_Delete(o->registries);
    o->registries = regs;
    return 0;
}

int azsim__aci_opts_parse(azsim_aci_opts_t *o, const cJSON *j, const cJSON **at, char *err,
                          size_t errlen)
{
    perr_t e = {at, err, errlen};
    *at = j;
    if (!cJSON_IsObject(j))
        return bad(&e, j, "aci", "expected a mapping");
    for (const cJSON *it = j->child; it; it = it->next) {
        const char *k = it->string;
        int rc;
        if (strcmp(k, "pull") == 0)
            rc = set_map(o, pull_keys, NKEYS(pull_keys), it, "pull", &e);
        else if (strcmp(k, "quota") == 0)
            rc = set_map(o, quota_keys, NKEYS(quota_keys), it, "quota", &e);
        else if (strcmp(k, "statuses") == 0)
            rc = set_map(o, status_keys, NKEYS(status_keys), it, "statuses", &e);
        else if (strcmp(k, "capacityExhausted") == 0)
            rc = set_names(it, k, 1, &o->capacity_exhausted, &o->ncapacity_exhausted, &e);
        else if (strcmp(k, "unregisteredSubscriptions") == 0)
            rc = set_names(it, k, 0, &o->unregistered, &o->nunregistered, &e);
        else if (strcmp(k, "images") == 0)
            rc = set_images(o, it, &e);
        else if (strcmp(k, "registries") == 0)
            rc = set_registries(o, it, &e);
        else if (find_key(top_keys, NKEYS(top_keys), k))
            rc = set_scalar(o, find_key(top_keys, NKEYS(top_keys), k), it, "aci", &e);
        else
            rc = bad(&e, it, k,
                     "unknown key in aci (transitionMs, staleMs, waitingTimeoutMs, "
                     "crashBackoffMs, identicalPutRestarts, uniqueDnsLabels, pull, quota, "
                     "statuses, "
                     "capacityExhausted, unregisteredSubscriptions, images, registries)");
        if (rc < 0)
            return -1;
    }
    if (o->pull_p95_ms < o->pull_median_ms)
        return bad(&e, j, "pull", "p95Ms must not be below medianMs");
    return 0;
}

/* ---- writing ------------------------------------------------------------ */

static void add_map(cJSON *to, const void *base, const key_spec_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *field = (const char *)base + t[i].off;
        if (t[i].kind == 'b')
            cJSON_AddBoolToObject(to, t[i].name, *(const int *)field);
        else if (t[i].kind == 's')
            cJSON_AddNumberToObject(to, t[i].name, *(const int *)field);
        else
            cJSON_AddNumberToObject(to, t[i].name, (double)*(const uint64_t *)field);
    }
}

static cJSON *names_json(char *const *l, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(l[i]));
    return a;
}

/* An image rule as the control API and config read it back. */
static cJSON *rule_json(const azsim_image_rule_t *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "match", r->match);
    if (r->exit_after_ms >= 0) {
        cJSON_AddNumberToObject(o, "exitAfterMs", (double)r->exit_after_ms);
        cJSON_AddNumberToObject(o, "exitCode", r->exit_code);
    }
    if (r->pull_ms >= 0)
        cJSON_AddNumberToObject(o, "pullMs", (double)r->pull_ms);
    if (r->pull_median_ms) {
        cJSON *p = cJSON_AddObjectToObject(o, "pull");
        cJSON_AddNumberToObject(p, "medianMs", (double)r->pull_median_ms);
        cJSON_AddNumberToObject(p, "p95Ms", (double)r->pull_p95_ms);
    }
    cJSON_AddStringToObject(o, "failure", failure_names[r->failure]);
    if (r->ready_after_ms > 0)
        cJSON_AddNumberToObject(o, "readyAfterMs", (double)r->ready_after_ms);
    if (r->ready_after_ms < 0)
        cJSON_AddBoolToObject(o, "probeNeverPasses", 1);
    return o;
}

cJSON *azsim__aci_opts_json(const azsim_aci_opts_t *o)
{
    cJSON *j = cJSON_CreateObject();
    add_map(j, o, top_keys, NKEYS(top_keys));
    add_map(cJSON_AddObjectToObject(j, "pull"), o, pull_keys, NKEYS(pull_keys));
    add_map(cJSON_AddObjectToObject(j, "quota"), o, quota_keys, NKEYS(quota_keys));
    add_map(cJSON_AddObjectToObject(j, "statuses"), o, status_keys, NKEYS(status_keys));
    cJSON_AddItemToObject(j, "capacityExhausted",
                          names_json(o->capacity_exhausted, o->ncapacity_exhausted));
    cJSON_AddItemToObject(j, "unregisteredSubscriptions",
                          names_json(o->unregistered, o->nunregistered));
    cJSON *imgs = cJSON_AddArrayToObject(j, "images");
    for (size_t i = 0; i < o->nimages; i++)
        cJSON_AddItemToArray(imgs, rule_json(&o->images[i]));
    cJSON_AddItemToObject(j, "registries", azsim__registries_json(o->registries));
    return j;
}
