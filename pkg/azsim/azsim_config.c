/*
 * pkg/azsim: the optional YAML config file of the emulator (see azsim.h).
 * Read with libyaml's document API; every key knows the node type it
 * takes; the whole file is validated into a scratch copy before any of it
 * is applied.
 */
#include "azsim_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct ycx {
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errlen;
} ycx_t;

static int fail(ycx_t *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(ycx_t *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s:%zu:%zu: %s: %s", c->file, n->start_mark.line + 1,
             n->start_mark.column + 1, key, msg);
    return D8_EINVAL;
}

static const char *scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int get_string(ycx_t *c, const yaml_node_t *n, const char *key, char **out)
{
    const char *s = scalar(n);
    if (!s)
        return fail(c, n, key, "expected a string");
    free(*out);
    *out = d8_xstrdup(s);
    return 0;
}

static int get_u64(ycx_t *c, const yaml_node_t *n, const char *key, uint64_t min, uint64_t max,
                   uint64_t *out)
{
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    unsigned long long v = s && s[0] != '-' ? strtoull(s, &end, 10) : 0;
    if (!s || !s[0] || s[0] == '-' || *end || errno || v < min || v > max)
        return fail(c, n, key, "expected an integer from %llu to %llu", (unsigned long long)min,
                    (unsigned long long)max);
    *out = v;
    return 0;
}

static int get_bool(ycx_t *c, const yaml_node_t *n, const char *key, int *out)
{
    const char *s = scalar(n);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0))
        *out = 1;
    else if (s && (strcmp(s, "false") == 0 || strcmp(s, "no") == 0))
        *out = 0;
    else
        return fail(c, n, key, "expected true or false");
    return 0;
}

/* A sequence of non-empty names into *out (owned), replacing the list
 * there; fails on anything else, leaving *out as it was. */
static int get_list(ycx_t *c, const yaml_node_t *n, const char *key, char ***out, size_t *nout)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, key, "expected a list of names");
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    char **l = d8_xcalloc(count ? count : 1, sizeof(*l));
    size_t i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *e = yaml_document_get_node(c->doc, *it);
        const char *s = scalar(e);
        if (!s || !s[0]) {
            for (size_t k = 0; k < i; k++)
                free(l[k]);
            free(l);
            return fail(c, e, key, "expected a non-empty name");
        }
        l[i++] = d8_xstrdup(s);
    }
    for (size_t k = 0; k < *nout; k++)
        free((*out)[k]);
    free(*out);
    *out = l;
    *nout = i;
    return 0;
}

typedef int (*map_fn)(ycx_t *c, const char *key, const yaml_node_t *v, void *ud);

/* Calls fn for each key of a mapping node. */
static int each_pair(ycx_t *c, const yaml_node_t *n, const char *what, map_fn fn, void *ud)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, what, "expected a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        const char *ks = scalar(k);
        if (!ks)
            return fail(c, k, what, "keys must be strings");
        int rc = fn(c, ks, v, ud);
        if (rc)
            return rc;
    }
    return 0;
}

static int client_key(ycx_t *c, const char *key, const yaml_node_t *v, void *ud)
{
    azsim_client_t *cl = ud;
    if (strcmp(key, "tenantId") == 0)
        return get_string(c, v, "clients.tenantId", &cl->tenant_id);
    if (strcmp(key, "clientId") == 0)
        return get_string(c, v, "clients.clientId", &cl->client_id);
    if (strcmp(key, "clientSecret") == 0)
        return get_string(c, v, "clients.clientSecret", &cl->client_secret);
    if (strcmp(key, "federated") == 0)
        return get_bool(c, v, "clients.federated", &cl->federated);
    return fail(c, v, key, "unknown key in clients (tenantId, clientId, clientSecret, federated)");
}

static int timing_key(ycx_t *c, const char *key, const yaml_node_t *v, void *ud)
{
    azsim_opts_t *o = ud;
    const uint64_t day = 86400000ull;
    if (strcmp(key, "provisionMs") == 0)
        return get_u64(c, v, "timing.provisionMs", 0, day, &o->provision_ms);
    if (strcmp(key, "deleteMs") == 0)
        return get_u64(c, v, "timing.deleteMs", 0, day, &o->delete_ms);
    if (strcmp(key, "shareRecreateMs") == 0)
        return get_u64(c, v, "timing.shareRecreateMs", 0, day, &o->share_recreate_ms);
    return fail(c, v, key, "unknown key in timing (provisionMs, deleteMs, shareRecreateMs)");
}

static int throttle_key(ycx_t *c, const char *key, const yaml_node_t *v, void *ud)
{
    azsim_opts_t *o = ud;
    if (strcmp(key, "enabled") == 0)
        return get_bool(c, v, "throttle.enabled", &o->throttle);
    if (strcmp(key, "globalHeaders") == 0)
        return get_bool(c, v, "throttle.globalHeaders", &o->global_headers);
    if (strcmp(key, "scale") == 0) {
        const char *s = scalar(v);
        char *end = NULL;
        double d = s ? strtod(s, &end) : 0;
        if (!s || !s[0] || *end || !(d > 0) || d > 1e6)
            return fail(c, v, "throttle.scale", "expected a number above 0");
        o->throttle_scale = d;
        return 0;
    }
    return fail(c, v, key, "unknown key in throttle (enabled, scale, globalHeaders)");
}

/* ---- the aci section: read as JSON by azsim__aci_opts_parse --------- */

/* A JSON node made from a YAML node, to find the YAML node's position. */
typedef struct ymark {
    const cJSON *j;
    const yaml_node_t *n;
} ymark_t;

typedef struct yconv {
    ycx_t *c;
    ymark_t *marks;
    size_t n, cap;
} yconv_t;

/* A scalar as JSON: plain numbers and true/false keep their type, every
 * other scalar (quoted ones too) is a string. */
static cJSON *scalar_json(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
            return cJSON_CreateBool(s[0] == 't');
        char *end = NULL;
        errno = 0;
        double d = s[0] ? strtod(s, &end) : 0;
        if (s[0] && !*end && !errno)
            return cJSON_CreateNumber(d);
    }
    return cJSON_CreateString(s);
}

/* The JSON form of node n (owned), each node's YAML origin noted in v;
 * nesting deeper than 8 (or a cycle of aliases) becomes null. */
static cJSON *yaml_json(yconv_t *v, const yaml_node_t *n, int depth)
{
    cJSON *out;
    if (!n || depth > 8) {
        out = cJSON_CreateNull();
    } else if (n->type == YAML_SCALAR_NODE) {
        out = scalar_json(n);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        out = cJSON_CreateArray();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++)
            cJSON_AddItemToArray(out,
                                 yaml_json(v, yaml_document_get_node(v->c->doc, *it), depth + 1));
    } else {
        out = cJSON_CreateObject();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            const char *k = scalar(yaml_document_get_node(v->c->doc, p->key));
            cJSON_AddItemToObject(
                out, k ? k : "",
                yaml_json(v, yaml_document_get_node(v->c->doc, p->value), depth + 1));
        }
    }
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 32;
        v->marks = d8_xrealloc(v->marks, v->cap * sizeof(*v->marks));
    }
    v->marks[v->n++] = (ymark_t){out, n};
    return out;
}

/* The JSON readers of sections shared with the control API. */
enum { SEC_ACI, SEC_STORAGE, SEC_PAGING, SEC_FAULTS, SEC_ARM };

/*
 * A section the control API also takes (aci, storage, paging, faults),
 * converted to JSON and checked by the control API's reader into o; an
 * error names the YAML node it is about.
 */
static int json_section(ycx_t *c, const char *key, const yaml_node_t *v, int sec, azsim_opts_t *o)
{
    yconv_t conv = {.c = c};
    cJSON *j = yaml_json(&conv, v, 0);
    const cJSON *at = NULL;
    char msg[256];
    int rc = 0;
    if (sec == SEC_ACI)
        rc = azsim__aci_opts_parse(&o->aci, j, &at, msg, sizeof(msg));
    else if (sec == SEC_STORAGE)
        rc = azsim__storage_opts_parse(&o->storage, j, &at, msg, sizeof(msg));
    else if (sec == SEC_ARM)
        rc = azsim__arm_opts_parse(&o->arm, j, &at, msg, sizeof(msg));
    else if (sec == SEC_PAGING)
        rc = azsim__paging_parse(&o->paging, &o->page_size, j, &at, msg, sizeof(msg));
    else
        rc = azsim__faults_parse(&o->faults, j, &at, msg, sizeof(msg));
    if (rc < 0) {
        const yaml_node_t *n = v;
        for (size_t i = 0; i < conv.n; i++)
            if (conv.marks[i].j == at && conv.marks[i].n)
                n = conv.marks[i].n;
        snprintf(c->err, c->errlen, "%s:%zu:%zu: %s.%s", c->file, n->start_mark.line + 1,
                 n->start_mark.column + 1, key, msg);
        rc = D8_EINVAL;
    }
    free(conv.marks);
    cJSON_Delete(j);
    return rc;
}

/* One key of the top-level mapping into the options ud; each key knows
 * the node type it takes and its range. */
static int top_key(ycx_t *c, const char *key, const yaml_node_t *v, void *ud)
{
    azsim_opts_t *o = ud;
    uint64_t u;
    int rc;
    if (strcmp(key, "subscriptions") == 0)
        return get_list(c, v, key, &o->subscriptions, &o->nsubscriptions);
    if (strcmp(key, "resourceGroups") == 0)
        return get_list(c, v, key, &o->resource_groups, &o->nresource_groups);
    if (strcmp(key, "storageAccounts") == 0)
        return get_list(c, v, key, &o->storage_accounts, &o->nstorage_accounts);
    if (strcmp(key, "timing") == 0)
        return each_pair(c, v, key, timing_key, o);
    if (strcmp(key, "throttle") == 0)
        return each_pair(c, v, key, throttle_key, o);
    if (strcmp(key, "strictMounts") == 0)
        return get_bool(c, v, key, &o->strict_mounts);
    if (strcmp(key, "aci") == 0)
        return json_section(c, key, v, SEC_ACI, o);
    if (strcmp(key, "storage") == 0)
        return json_section(c, key, v, SEC_STORAGE, o);
    if (strcmp(key, "paging") == 0)
        return json_section(c, key, v, SEC_PAGING, o);
    if (strcmp(key, "arm") == 0)
        return json_section(c, key, v, SEC_ARM, o);
    if (strcmp(key, "faults") == 0)
        return json_section(c, key, v, SEC_FAULTS, o);
    if (strcmp(key, "pageSize") == 0) {
        if ((rc = get_u64(c, v, key, 1, 5000, &u)))
            return rc;
        o->page_size = (size_t)u;
        return 0;
    }
    if (strcmp(key, "tokenTtlSeconds") == 0) {
        if ((rc = get_u64(c, v, key, 1, 86400 * 7, &u)))
            return rc;
        o->token_ttl_s = (int)u;
        return 0;
    }
    if (strcmp(key, "seed") == 0)
        return get_u64(c, v, key, 0, UINT64_MAX, &o->seed);
    if (strcmp(key, "cloud") == 0) {
        const char *name = scalar(v);
        int idx = name ? azsim__cloud_index(name) : -1;
        if (idx < 0)
            return fail(c, v, key,
                        "expected AzurePublicCloud, AzureChinaCloud or "
                        "AzureUSGovernment");
        o->cloud = idx;
        return 0;
    }
    if (strcmp(key, "clients") == 0) {
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(c, v, key, "expected a list of clients");
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            const yaml_node_t *e = yaml_document_get_node(c->doc, *it);
            o->clients = d8_xrealloc(o->clients, (o->nclients + 1) * sizeof(*o->clients));
            azsim_client_t *cl = &o->clients[o->nclients++];
            memset(cl, 0, sizeof(*cl));
            if ((rc = each_pair(c, e, "clients", client_key, cl)))
                return rc;
            if (!cl->client_id)
                return fail(c, e, "clients", "clientId is required");
            if (!cl->client_secret && !cl->federated)
                return fail(c, e, "clients", "give clientSecret, federated: true, or both");
        }
        return 0;
    }
    return fail(
        c, v, key,
        "unknown key (subscriptions, resourceGroups, storageAccounts, clients, timing, "
        "pageSize, tokenTtlSeconds, seed, throttle, strictMounts, aci, storage, arm, paging, "
        "faults)");
}

/* A copy of o without its lists and base_url, for a file to fill in; the
 * aci and storage settings are deep copies the file may change. */
static azsim_opts_t scratch_of(const azsim_opts_t *o)
{
    azsim_opts_t tmp = *o;
    azsim__aci_opts_copy(&tmp.aci, &o->aci);
    azsim__storage_opts_copy(&tmp.storage, &o->storage);
    azsim__arm_opts_copy(&tmp.arm, &o->arm);
    tmp.subscriptions = tmp.resource_groups = tmp.storage_accounts = NULL;
    tmp.nsubscriptions = tmp.nresource_groups = tmp.nstorage_accounts = 0;
    tmp.clients = NULL;
    tmp.nclients = 0;
    tmp.base_url = NULL;
    return tmp;
}

/* Keeps *list when the file gave one and frees old; otherwise *list takes
 * old (owned) back. */
static void keep_list(char ***list, size_t *n, char **old, size_t nold)
{
    if (*list) {
        for (size_t i = 0; i < nold; i++)
            free(old[i]);
        free(old);
    } else {
        *list = old;
        *n = nold;
    }
}

/* As keep_list, for the clients. */
static void keep_clients(azsim_opts_t *tmp, azsim_client_t *old, size_t nold)
{
    if (tmp->clients) {
        for (size_t i = 0; i < nold; i++) {
            free(old[i].tenant_id);
            free(old[i].client_id);
            free(old[i].client_secret);
        }
        free(old);
    } else {
        tmp->clients = old;
        tmp->nclients = nold;
    }
}

/* Makes the scratch copy tmp of a valid file the new o: lists given in the
 * file replace the old ones, the others carry over, and so does base_url. */
static void adopt(azsim_opts_t *o, azsim_opts_t *tmp)
{
    keep_list(&tmp->subscriptions, &tmp->nsubscriptions, o->subscriptions, o->nsubscriptions);
    keep_list(&tmp->resource_groups, &tmp->nresource_groups, o->resource_groups,
              o->nresource_groups);
    keep_list(&tmp->storage_accounts, &tmp->nstorage_accounts, o->storage_accounts,
              o->nstorage_accounts);
    keep_clients(tmp, o->clients, o->nclients);
    tmp->base_url = o->base_url;
    azsim__aci_opts_release(&o->aci);
    azsim__storage_opts_release(&o->storage);
    azsim__arm_opts_release(&o->arm);
    *o = *tmp;
}

int azsim_opts_load_yaml(azsim_opts_t *o, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return D8_EIO;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = 0, have_doc = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    /* Scratch copy: o changes only when the whole file is valid. */
    azsim_opts_t tmp = scratch_of(o);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "YAML syntax error");
        rc = D8_EPARSE;
        goto cleanup;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        ycx_t c = {.doc = &doc, .file = path, .err = err, .errlen = errlen};
        if (!(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
            rc = each_pair(&c, root, "(top level)", top_key, &tmp);
    }
    if (rc == 0) {
        adopt(o, &tmp);
    } else {
        tmp.base_url = NULL;
        azsim_opts_release(&tmp);
    }
cleanup:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}
