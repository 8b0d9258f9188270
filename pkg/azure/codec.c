/*
 * Encoders and decoders for exactly the ARM fields dev8-agent uses, per
 * the Microsoft.ContainerInstance 2026-05-01 and Microsoft.Storage
 * 2025-01-01 specs. Pure functions (no client, no I/O): the unit tests and
 * the fuzz target call them directly.
 */
#include "azure_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define FAILURE_MESSAGE_MAX 1024

/* ---------------------------------------------------------------- maps */

const char *azure_map_get(const azure_map_t *m, const char *key)
{
    if (!m || !key)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return NULL;
}

static void map_release(azure_map_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}

/* Reads a JSON object of strings; members of other types are skipped. */
static void map_from_json(azure_map_t *m, const cJSON *obj)
{
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (cJSON_IsString(it) && it->string)
            n++;
    }
    if (n == 0)
        return;
    m->keys = d8_xcalloc(n, sizeof(char *));
    m->values = d8_xcalloc(n, sizeof(char *));
    cJSON_ArrayForEach(it, obj)
    {
        if (cJSON_IsString(it) && it->string) {
            m->keys[m->n] = d8_xstrdup(it->string);
            m->values[m->n] = d8_xstrdup(it->valuestring);
            m->n++;
        }
    }
}

/* ------------------------------------------------------------ releases */

void azure_group_release(azure_group_t *g)
{
    if (!g)
        return;
    free(g->id);
    free(g->name);
    free(g->location);
    free(g->provisioning_state);
    free(g->instance_state);
    free(g->ip);
    free(g->fqdn);
    free(g->failure_message);
    azure__view_release(g);
    map_release(&g->tags);
    memset(g, 0, sizeof(*g));
}

void azure_group_list_release(azure_group_list_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        azure_group_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void azure_operation_release(azure_operation_t *op)
{
    if (!op)
        return;
    free(op->status);
    free(op->error_code);
    free(op->error_message);
    memset(op, 0, sizeof(*op));
}

void azure_share_release(azure_share_t *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->name);
    map_release(&s->metadata);
    memset(s, 0, sizeof(*s));
    s->quota_gb = -1;
}

void azure_storage_account_release(azure_storage_account_t *a)
{
    if (!a)
        return;
    free(a->id);
    free(a->name);
    free(a->location);
    free(a->kind);
    free(a->sku_name);
    free(a->large_file_shares_state);
    memset(a, 0, sizeof(*a));
}

void azure_share_list_release(azure_share_list_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        azure_share_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void azure_group_list_take(azure_group_list_t *dst, azure_group_list_t *src)
{
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

void azure_share_list_take(azure_share_list_t *dst, azure_share_list_t *src)
{
    *dst = *src;
    memset(src, 0, sizeof(*src));
}

/* ------------------------------------------------------------ decoding */

static const cJSON *obj_get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static char *str_dup_of(const cJSON *o, const char *key)
{
    const cJSON *v = obj_get(o, key);
    return cJSON_IsString(v) ? d8_xstrdup(v->valuestring) : NULL;
}

static cJSON *parse(const char *json, size_t len)
{
    if (!json || len == 0)
        return NULL;
    return cJSON_ParseWithLength(json, len);
}

/* Appends each event message of an events array, optionally skipping
 * events of type Normal. */
static void collect_events(d8_buf_t *b, const cJSON *events, int skip_normal)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events)
    {
        const cJSON *msg = obj_get(ev, "message");
        if (!cJSON_IsString(msg) || !msg->valuestring[0])
            continue;
        if (skip_normal) {
            const cJSON *type = obj_get(ev, "type");
            if (cJSON_IsString(type) && strcmp(type->valuestring, "Normal") == 0)
                continue;
        }
        if (b->len >= FAILURE_MESSAGE_MAX)
            return;
        if (b->len)
            d8_buf_puts(b, "; ");
        d8_buf_puts(b, msg->valuestring);
    }
}

/* Fills g (zeroed by the caller) from a container group object; for a
 * Failed provisioning, failure_message gathers the event messages. */
static void group_from_json(azure_group_t *g, const cJSON *root)
{
    g->id = str_dup_of(root, "id");
    g->name = str_dup_of(root, "name");
    g->location = str_dup_of(root, "location");
    const cJSON *tags = obj_get(root, "tags");
    if (cJSON_IsObject(tags))
        map_from_json(&g->tags, tags);
    const cJSON *props = obj_get(root, "properties");
    if (!cJSON_IsObject(props))
        return;
    g->provisioning_state = str_dup_of(props, "provisioningState");
    const cJSON *iv = obj_get(props, "instanceView");
    g->instance_state = str_dup_of(iv, "state");
    const cJSON *ip = obj_get(props, "ipAddress");
    g->ip = str_dup_of(ip, "ip");
    g->fqdn = str_dup_of(ip, "fqdn");
    const cJSON *sized;
    cJSON_ArrayForEach(sized, obj_get(props, "containers"))
    {
        const cJSON *rq = obj_get(obj_get(obj_get(sized, "properties"), "resources"), "requests");
        const cJSON *cpu = obj_get(rq, "cpu"), *mem = obj_get(rq, "memoryInGB");
        if (cJSON_IsNumber(cpu) && cpu->valuedouble > 0)
            g->cpu_cores += cpu->valuedouble;
        if (cJSON_IsNumber(mem) && mem->valuedouble > 0)
            g->memory_gb += mem->valuedouble;
    }
    if (cJSON_IsObject(iv))
        azure__view_from_json(g, props);

    if (g->provisioning_state && strcmp(g->provisioning_state, "Failed") == 0) {
        d8_buf_t b;
        d8_buf_init(&b);
        collect_events(&b, obj_get(iv, "events"), 0);
        if (b.len == 0) {
            const cJSON *ct;
            cJSON_ArrayForEach(ct, obj_get(props, "containers"))
            {
                const cJSON *civ = obj_get(obj_get(ct, "properties"), "instanceView");
                collect_events(&b, obj_get(civ, "events"), 1);
            }
        }
        if (b.len > FAILURE_MESSAGE_MAX) {
            b.len = FAILURE_MESSAGE_MAX;
            b.data[b.len] = '\0';
        }
        if (b.len)
            g->failure_message = d8_buf_detach(&b, NULL);
        d8_buf_release(&b);
    }
}

int azure_decode_group(const char *json, size_t len, azure_group_t *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *root = parse(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return D8_EPARSE;
    }
    group_from_json(out, root);
    cJSON_Delete(root);
    return 0;
}

static int next_link_of(const cJSON *root, char **next_link)
{
    const cJSON *nl = obj_get(root, "nextLink");
    if (cJSON_IsString(nl) && nl->valuestring[0])
        *next_link = d8_xstrdup(nl->valuestring);
    else if (nl && !cJSON_IsNull(nl) && !cJSON_IsString(nl))
        return D8_EPARSE;
    return 0;
}

/* One item of a list page is filled from its JSON object. */
typedef void (*fill_fn)(void *item, const cJSON *j);

/*
 * Appends the items of one ARM list page ({"value":[...],"nextLink"})
 * to *items (n of them, each `size` bytes, filled by fill); *next_link is
 * the next page's URL or NULL. A page that is not such a list changes
 * nothing and is D8_EPARSE.
 */
static int decode_list(const char *json, size_t len, void **items, size_t *n, size_t size,
                       fill_fn fill, char **next_link)
{
    *next_link = NULL;
    cJSON *root = parse(json, len);
    const cJSON *value = obj_get(root, "value");
    int rc = D8_EPARSE;
    if (!cJSON_IsArray(value))
        goto cleanup;
    size_t add = (size_t)cJSON_GetArraySize(value);
    const cJSON *it;
    cJSON_ArrayForEach(it, value)
    {
        if (!cJSON_IsObject(it))
            goto cleanup;
    }
    if (next_link_of(root, next_link) < 0)
        goto cleanup;
    if (add) {
        *items = d8_xrealloc(*items, (*n + add) * size);
        cJSON_ArrayForEach(it, value)
        {
            void *item = (char *)*items + (*n)++ * size;
            memset(item, 0, size);
            fill(item, it);
        }
    }
    rc = 0;
cleanup:
    cJSON_Delete(root);
    return rc;
}

static void fill_group(void *item, const cJSON *j)
{
    group_from_json(item, j);
}

int azure_decode_group_list(const char *json, size_t len, azure_group_list_t *out, char **next_link)
{
    void *items = out->items;
    int rc = decode_list(json, len, &items, &out->n, sizeof(azure_group_t), fill_group, next_link);
    out->items = items;
    return rc;
}

static void share_from_json(azure_share_t *s, const cJSON *root)
{
    memset(s, 0, sizeof(*s));
    s->quota_gb = -1;
    s->id = str_dup_of(root, "id");
    s->name = str_dup_of(root, "name");
    const cJSON *props = obj_get(root, "properties");
    const cJSON *q = obj_get(props, "shareQuota");
    if (cJSON_IsNumber(q) && isfinite(q->valuedouble) && q->valuedouble >= 0 &&
        q->valuedouble <= 2147483647.0)
        s->quota_gb = (int)q->valuedouble;
    const cJSON *md = obj_get(props, "metadata");
    if (cJSON_IsObject(md)) {
        s->has_metadata = 1;
        map_from_json(&s->metadata, md);
    }
    s->deleted = cJSON_IsTrue(obj_get(props, "deleted"));
}

int azure_decode_share(const char *json, size_t len, azure_share_t *out)
{
    cJSON *root = parse(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        memset(out, 0, sizeof(*out));
        out->quota_gb = -1;
        return D8_EPARSE;
    }
    share_from_json(out, root);
    cJSON_Delete(root);
    return 0;
}

static void fill_share(void *item, const cJSON *j)
{
    share_from_json(item, j);
}

int azure_decode_share_list(const char *json, size_t len, azure_share_list_t *out, char **next_link)
{
    void *items = out->items;
    int rc = decode_list(json, len, &items, &out->n, sizeof(azure_share_t), fill_share, next_link);
    out->items = items;
    return rc;
}

int azure_decode_storage_account(const char *json, size_t len, azure_storage_account_t *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *root = parse(json, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return D8_EPARSE;
    }
    out->id = str_dup_of(root, "id");
    out->name = str_dup_of(root, "name");
    out->location = str_dup_of(root, "location");
    out->kind = str_dup_of(root, "kind");
    out->sku_name = str_dup_of(obj_get(root, "sku"), "name");
    out->large_file_shares_state = str_dup_of(obj_get(root, "properties"), "largeFileSharesState");
    cJSON_Delete(root);
    return 0;
}

int azure_decode_operation(const char *json, size_t len, azure_operation_t *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *root = parse(json, len);
    const cJSON *st = obj_get(root, "status");
    if (!cJSON_IsString(st)) {
        cJSON_Delete(root);
        return D8_EPARSE;
    }
    out->status = d8_xstrdup(st->valuestring);
    const cJSON *err = obj_get(root, "error");
    out->error_code = str_dup_of(err, "code");
    out->error_message = str_dup_of(err, "message");
    cJSON_Delete(root);
    return 0;
}

static void copy_trunc(char *dst, size_t cap, const char *src)
{
    if (!dst || cap == 0)
        return;
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

int azure_decode_error(const char *json, size_t len, char *code, size_t codelen, char *message,
                       size_t msglen)
{
    copy_trunc(code, codelen, "");
    copy_trunc(message, msglen, "");
    cJSON *root = parse(json, len);
    int rc = D8_EPARSE;
    const cJSON *err = obj_get(root, "error");
    if (cJSON_IsObject(err)) {
        const cJSON *c = obj_get(err, "code");
        const cJSON *m = obj_get(err, "message");
        if (cJSON_IsString(c) || cJSON_IsString(m)) {
            copy_trunc(code, codelen, cJSON_IsString(c) ? c->valuestring : "");
            copy_trunc(message, msglen, cJSON_IsString(m) ? m->valuestring : "");
            rc = 0;
        }
    } else if (cJSON_IsString(err)) {
        /* Entra ID token endpoint: {"error":"invalid_client",
         * "error_description":"AADSTS..."} */
        const cJSON *d = obj_get(root, "error_description");
        copy_trunc(code, codelen, err->valuestring);
        copy_trunc(message, msglen, cJSON_IsString(d) ? d->valuestring : "");
        rc = 0;
    } else {
        const cJSON *c = obj_get(root, "code");
        const cJSON *m = obj_get(root, "message");
        if (cJSON_IsString(c) && cJSON_IsString(m)) {
            copy_trunc(code, codelen, c->valuestring);
            copy_trunc(message, msglen, m->valuestring);
            rc = 0;
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* Wipes every string value of a parsed tree before it is freed: token and
 * key answers hold secrets that cJSON would otherwise free as they are. */
static void wipe_strings(cJSON *n)
{
    for (; n; n = n->next) {
        if (cJSON_IsString(n) && n->valuestring)
            OPENSSL_cleanse(n->valuestring, strlen(n->valuestring));
        if (n->child)
            wipe_strings(n->child);
    }
}

int azure__decode_token(const char *json, size_t len, azure__token_t *out)
{
    memset(out, 0, sizeof(*out));
    out->expires_in_s = -1;
    cJSON *root = parse(json, len);
    int rc = D8_EPARSE;
    const cJSON *at = obj_get(root, "access_token");
    if (!cJSON_IsString(at) || !at->valuestring[0])
        goto cleanup;
    const cJSON *ei = obj_get(root, "expires_in");
    if (cJSON_IsNumber(ei) && isfinite(ei->valuedouble) && ei->valuedouble >= 0 &&
        ei->valuedouble < 1e9) {
        out->expires_in_s = (int64_t)ei->valuedouble;
    } else if (cJSON_IsString(ei)) {
        /* IMDS sends the lifetime as a string of digits. */
        const char *p = ei->valuestring;
        int64_t v = 0;
        size_t i = 0;
        for (; i < 10 && p[i]; i++) {
            if (!isdigit((unsigned char)p[i]))
                break;
            v = v * 10 + (p[i] - '0');
        }
        if (i > 0 && p[i] == '\0')
            out->expires_in_s = v;
    }
    out->access_token = d8_xstrdup(at->valuestring);
    rc = 0;
cleanup:
    if (root)
        wipe_strings(root);
    cJSON_Delete(root);
    return rc;
}

void azure__token_release(azure__token_t *t)
{
    if (!t)
        return;
    azure__free_secret(t->access_token);
    t->access_token = NULL;
}

int azure__decode_keys(const char *json, size_t len, char **key)
{
    *key = NULL;
    cJSON *root = parse(json, len);
    int rc = D8_EPARSE;
    const cJSON *keys = obj_get(root, "keys");
    const cJSON *first = cJSON_IsArray(keys) ? cJSON_GetArrayItem(keys, 0) : NULL;
    const cJSON *v = obj_get(first, "value");
    if (cJSON_IsString(v) && v->valuestring[0]) {
        *key = d8_xstrdup(v->valuestring);
        rc = 0;
    }
    if (root)
        wipe_strings(root);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------ encoding */

static size_t kv_len(const azure_kv_t *kv, size_t n)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += (kv[i].name ? strlen(kv[i].name) : 0) + (kv[i].value ? strlen(kv[i].value) : 0) + 32;
    return t;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

static int is_c_ident(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

static void put_num(d8_buf_t *b, double v)
{
    char tmp[40];
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    d8_buf_puts(b, tmp);
}

static void put_kv_object(d8_buf_t *b, const azure_kv_t *kv, size_t n)
{
    d8_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            d8_buf_putc(b, ',');
        d8_buf_json_str(b, kv[i].name);
        d8_buf_putc(b, ':');
        d8_buf_json_str(b, kv[i].value);
    }
    d8_buf_putc(b, '}');
}

static void put_ports(d8_buf_t *b, const int *ports, size_t n)
{
    d8_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++)
        d8_buf_printf(b, "%s{\"port\":%d,\"protocol\":\"TCP\"}", i ? "," : "", ports[i]);
    d8_buf_putc(b, ']');
}

static int kv_valid(const azure_kv_t *kv, size_t n)
{
    if (n && !kv)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!kv[i].name || !kv[i].name[0] || !kv[i].value)
            return 0;
    return 1;
}

/* The values of IpAddress.autoGeneratedDomainNameLabelScope, spelled as
 * the ACI spec 2026-05-01 spells its enum (DnsNameLabelReusePolicy). */
static const char *const dns_label_scopes[] = {"Unsecure", "TenantReuse", "SubscriptionReuse",
                                               "ResourceGroupReuse", "Noreuse"};

static int dns_label_scope_ok(const char *scope)
{
    if (!scope || !scope[0])
        return 1;
    for (size_t i = 0; i < sizeof(dns_label_scopes) / sizeof(dns_label_scopes[0]); i++)
        if (strcmp(scope, dns_label_scopes[i]) == 0)
            return 1;
    return 0;
}

/* 1 for no probe or a usable one. */
static int probe_ok(const azure_probe_t *p)
{
    return !p || (p->path && p->path[0] == '/' && p->port >= 1 && p->port <= 65535 &&
                  p->initial_delay_seconds >= 0 && p->period_seconds >= 1 &&
                  p->failure_threshold >= 1 && p->timeout_seconds >= 1);
}

/* ,"<key>":{ContainerProbe} of p, nothing for NULL. */
static void put_probe(d8_buf_t *out, const char *key, const azure_probe_t *p)
{
    if (!p)
        return;
    d8_buf_printf(out, ",\"%s\":{\"httpGet\":{\"path\":", key);
    d8_buf_json_str(out, p->path);
    d8_buf_printf(out,
                  ",\"port\":%d,\"scheme\":\"http\"},\"initialDelaySeconds\":%d,"
                  "\"periodSeconds\":%d,\"failureThreshold\":%d,\"successThreshold\":1,"
                  "\"timeoutSeconds\":%d}",
                  p->port, p->initial_delay_seconds, p->period_seconds, p->failure_threshold,
                  p->timeout_seconds);
}

/* 1 when spec holds every field a container group needs (and the storage
 * account and key when it mounts a share), each with a usable value. */
static int group_spec_ok(const azure_group_spec_t *spec, const char *location,
                         const char *storage_account, const char *storage_key)
{
    if (!spec || !spec->name || !spec->image || !spec->image[0] || !location || !location[0] ||
        !(spec->cpu > 0) || !(spec->memory_gb > 0) || !isfinite(spec->cpu) ||
        !isfinite(spec->memory_gb) || spec->nports == 0 || !spec->ports ||
        !kv_valid(spec->tags, spec->ntags) || !kv_valid(spec->env, spec->nenv) ||
        !kv_valid(spec->secure_env, spec->nsecure_env) ||
        !dns_label_scope_ok(spec->dns_label_scope))
        return 0;
    for (size_t i = 0; i < spec->nports; i++)
        if (spec->ports[i] < 1 || spec->ports[i] > 65535)
            return 0;
    if (!probe_ok(spec->readiness_probe) || !probe_ok(spec->liveness_probe))
        return 0;
    if (spec->share_name && spec->share_name[0] &&
        (!storage_account || !storage_account[0] || !storage_key || !storage_key[0] ||
         !spec->mount_path || !spec->mount_path[0]))
        return 0;
    return 1;
}

/* The container's environmentVariables: plain values, then the secure
 * ones as secureValue. */
static void put_env(d8_buf_t *out, const azure_group_spec_t *spec)
{
    d8_buf_puts(out, "[");
    size_t k = 0;
    for (size_t i = 0; i < spec->nenv; i++, k++) {
        d8_buf_puts(out, k ? ",{\"name\":" : "{\"name\":");
        d8_buf_json_str(out, spec->env[i].name);
        d8_buf_puts(out, ",\"value\":");
        d8_buf_json_str(out, spec->env[i].value);
        d8_buf_putc(out, '}');
    }
    for (size_t i = 0; i < spec->nsecure_env; i++, k++) {
        d8_buf_puts(out, k ? ",{\"name\":" : "{\"name\":");
        d8_buf_json_str(out, spec->secure_env[i].name);
        d8_buf_puts(out, ",\"secureValue\":");
        d8_buf_json_str(out, spec->secure_env[i].value);
        d8_buf_putc(out, '}');
    }
    d8_buf_putc(out, ']');
}

/* The group's public ipAddress object: its ports, DNS name label and the
 * label's reuse scope. */
static void put_ip_address(d8_buf_t *out, const azure_group_spec_t *spec)
{
    int vnet = spec->nsubnet_ids > 0;
    d8_buf_puts(out, vnet ? "{\"type\":\"Private\",\"ports\":" : "{\"type\":\"Public\",\"ports\":");
    put_ports(out, spec->ports, spec->nports);
    if (vnet) { /* a private IP has no DNS name label */
        d8_buf_putc(out, '}');
        return;
    }
    if (spec->dns_label && spec->dns_label[0]) {
        d8_buf_puts(out, ",\"dnsNameLabel\":");
        d8_buf_json_str(out, spec->dns_label);
    }
    if (spec->dns_label_scope && spec->dns_label_scope[0]) {
        d8_buf_puts(out, ",\"autoGeneratedDomainNameLabelScope\":");
        d8_buf_json_str(out, spec->dns_label_scope);
    }
    d8_buf_putc(out, '}');
}

/* The group's identity object (before "properties"): the registry's
 * user-assigned identity, when the pull uses one. */
static void put_identity(d8_buf_t *out, const azure_group_spec_t *spec)
{
    if (!spec->registry_identity)
        return;
    d8_buf_puts(out, ",\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{");
    d8_buf_json_str(out, spec->registry_identity);
    d8_buf_puts(out, ":{}}}");
}

/* properties.imageRegistryCredentials and properties.subnetIds. */
static void put_registry_and_subnets(d8_buf_t *out, const azure_group_spec_t *spec)
{
    if (spec->registry_server) {
        d8_buf_puts(out, ",\"imageRegistryCredentials\":[{\"server\":");
        d8_buf_json_str(out, spec->registry_server);
        if (spec->registry_identity) {
            d8_buf_puts(out, ",\"identity\":");
            d8_buf_json_str(out, spec->registry_identity);
        } else {
            d8_buf_puts(out, ",\"username\":");
            d8_buf_json_str(out, spec->registry_username);
            d8_buf_puts(out, ",\"password\":");
            d8_buf_json_str(out, spec->registry_password);
        }
        d8_buf_puts(out, "}]");
    }
    if (spec->nsubnet_ids) {
        d8_buf_puts(out, ",\"subnetIds\":[");
        for (size_t i = 0; i < spec->nsubnet_ids; i++) {
            d8_buf_puts(out, i ? ",{\"id\":" : "{\"id\":");
            d8_buf_json_str(out, spec->subnet_ids[i]);
            d8_buf_putc(out, '}');
        }
        d8_buf_putc(out, ']');
    }
}

/* 1 when the registry and subnet fields are complete: a server with
 * either an identity or a username and password; non-empty subnet ids. */
static int registry_ok(const azure_group_spec_t *spec)
{
    for (size_t i = 0; i < spec->nsubnet_ids; i++)
        if (!spec->subnet_ids || !spec->subnet_ids[i] || !spec->subnet_ids[i][0])
            return 0;
    if (!spec->registry_server)
        return !spec->registry_identity && !spec->registry_username && !spec->registry_password;
    if (!spec->registry_server[0])
        return 0;
    if (spec->registry_identity)
        return spec->registry_identity[0] && !spec->registry_username && !spec->registry_password;
    return spec->registry_username && spec->registry_username[0] && spec->registry_password &&
           spec->registry_password[0];
}

int azure_group_body(const azure_group_spec_t *spec, const char *location,
                     const char *storage_account, const char *storage_key, d8_buf_t *out)
{
    if (!group_spec_ok(spec, location, storage_account, storage_key) || !registry_ok(spec))
        return D8_EINVAL;
    int with_share = spec->share_name && spec->share_name[0];

    /* Reserve the worst case (every byte escaped as \u00XX) up front so
     * the buffer never moves: a realloc would leave a copy of the secrets
     * in freed memory. */
    size_t est = 4096 + 2 * 255 + slen(spec->name) + slen(spec->image) + slen(location) +
                 slen(storage_account) + slen(storage_key) + slen(spec->share_name) +
                 slen(spec->mount_path) + slen(spec->dns_label) + slen(spec->dns_label_scope) +
                 32 * spec->nports + kv_len(spec->tags, spec->ntags) +
                 kv_len(spec->env, spec->nenv) + kv_len(spec->secure_env, spec->nsecure_env) +
                 slen(spec->registry_server) + slen(spec->registry_username) +
                 slen(spec->registry_password) + 2 * slen(spec->registry_identity) + 128;
    for (size_t i = 0; i < spec->nsubnet_ids; i++)
        est += slen(spec->subnet_ids[i]) + 16;
    d8_buf_reserve(out, est * 6);

    d8_buf_puts(out, "{\"location\":");
    d8_buf_json_str(out, location);
    d8_buf_puts(out, ",\"tags\":");
    put_kv_object(out, spec->tags, spec->ntags);
    put_identity(out, spec);
    d8_buf_puts(out, ",\"properties\":{\"osType\":\"Linux\",\"restartPolicy\":\"OnFailure\","
                     "\"containers\":[{\"name\":\"workspace\",\"properties\":{\"image\":");
    d8_buf_json_str(out, spec->image);
    d8_buf_puts(out, ",\"resources\":{\"requests\":{\"cpu\":");
    put_num(out, spec->cpu);
    d8_buf_puts(out, ",\"memoryInGB\":");
    put_num(out, spec->memory_gb);
    d8_buf_puts(out, "}},\"ports\":");
    put_ports(out, spec->ports, spec->nports);
    d8_buf_puts(out, ",\"environmentVariables\":");
    put_env(out, spec);
    put_probe(out, "readinessProbe", spec->readiness_probe);
    put_probe(out, "livenessProbe", spec->liveness_probe);
    if (with_share) {
        d8_buf_puts(out, ",\"volumeMounts\":[{\"name\":\"workspace\",\"mountPath\":");
        d8_buf_json_str(out, spec->mount_path);
        d8_buf_puts(out, "}]");
    }
    d8_buf_puts(out, "}}],\"ipAddress\":");
    put_ip_address(out, spec);
    put_registry_and_subnets(out, spec);
    if (with_share) {
        /* The key goes last: ops.c splits the body at its placeholder. */
        d8_buf_puts(out, ",\"volumes\":[{\"name\":\"workspace\",\"azureFile\":{\"shareName\":");
        d8_buf_json_str(out, spec->share_name);
        d8_buf_puts(out, ",\"storageAccountName\":");
        d8_buf_json_str(out, storage_account);
        d8_buf_puts(out, ",\"storageAccountKey\":");
        d8_buf_json_str(out, storage_key);
        d8_buf_puts(out, "}}]");
    }
    d8_buf_puts(out, "}}");
    return 0;
}

int azure_share_body(const azure_share_spec_t *spec, d8_buf_t *out)
{
    if (!spec || spec->quota_gb < 1 || spec->quota_gb > 102400 ||
        !kv_valid(spec->metadata, spec->nmetadata))
        return D8_EINVAL;
    for (size_t i = 0; i < spec->nmetadata; i++)
        if (!is_c_ident(spec->metadata[i].name))
            return D8_EINVAL;
    d8_buf_printf(out, "{\"properties\":{\"shareQuota\":%d", spec->quota_gb);
    if (spec->nmetadata) {
        d8_buf_puts(out, ",\"metadata\":");
        put_kv_object(out, spec->metadata, spec->nmetadata);
    }
    d8_buf_puts(out, "}}");
    return 0;
}

int azure_share_quota_body(int quota_gb, d8_buf_t *out)
{
    if (quota_gb < 1 || quota_gb > 102400)
        return D8_EINVAL;
    d8_buf_printf(out, "{\"properties\":{\"shareQuota\":%d}}", quota_gb);
    return 0;
}
