/*
 * The configuration schema: what each key of the file takes. The string
 * checks, the handlers of the custom keys (controller.listen,
 * workspace.ports, images, azure.regions) and the field tables that
 * config_walk.c walks a YAML document against.
 */
#include "config_int.h"

#include "base/base.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Caps on the lists and maps, so that hostile input stays cheap to check. */
#define MAX_REGIONS 64
#define MAX_IMAGES 64
#define MAX_PORTS 5

/*
 * Table rows. T is the struct the table fills; m is the member a value
 * goes to; lo..hi is the accepted range; chk checks (and may normalise) a
 * string; req marks a string that must be set.
 */
/* clang-format off */
#define ROW_SECTION(k, t)          {.key = (k), .kind = CONFIG__F_SECTION, .sub = (t)}
#define ROW_INT(k, T, m, lo, hi)   {.key = (k), .kind = CONFIG__F_INT, .off = offsetof(T, m), \
                                    .min = (lo), .max = (hi)}
#define ROW_SIZE(k, T, m, lo, hi)  {.key = (k), .kind = CONFIG__F_SIZE, .off = offsetof(T, m), \
                                    .min = (lo), .max = (hi)}
#define ROW_BOOL(k, T, m)          {.key = (k), .kind = CONFIG__F_BOOL, .off = offsetof(T, m)}
#define ROW_FRACTION(k, T, m)      {.key = (k), .kind = CONFIG__F_FRACTION, .off = offsetof(T, m)}
#define ROW_STR(k, T, m, chk, req) {.key = (k), .kind = CONFIG__F_STR, .off = offsetof(T, m), \
                                    .check = (chk), .required = (req)}
#define ROW_CUSTOM(k, fn)          {.key = (k), .kind = CONFIG__F_CUSTOM, .custom = (fn)}
/* clang-format on */

/* ---- string checks ------------------------------------------------------- */

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* 1 when s is printable ASCII without spaces (URLs, image references). */
static int is_visible_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

static const char *one_of(const char *s, const char *const *names, const char *msg)
{
    for (size_t i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return NULL;
    return msg;
}

/* It goes into Azure tags and metadata, and keys the reaper's ownership. */
static const char *check_controller_name(char *s)
{
    size_t n = strlen(s);
    int ok = n >= 1 && n <= 32 && is_lower_alnum(s[0]) && is_lower_alnum(s[n - 1]);
    for (size_t i = 0; ok && i < n; i++)
        ok = is_lower_alnum(s[i]) || s[i] == '-';
    return ok ? NULL
              : "must be 1 to 32 lowercase letters, digits or '-', starting and ending with a "
                "letter or digit";
}

static const char *check_auth(char *s)
{
    static const char *const names[] = {"auto", "clientSecret", "workloadIdentity",
                                        "managedIdentity", NULL};
    return one_of(s, names, "must be one of auto, clientSecret, workloadIdentity, managedIdentity");
}

static const char *check_log_level(char *s)
{
    static const char *const names[] = {"debug", "info", "warn", "error", NULL};
    return one_of(s, names, "must be one of debug, info, warn, error");
}

/* Length of the "http://" or "https://" prefix of s, or 0. */
static size_t scheme_len(const char *s)
{
    if (strncmp(s, "https://", 8) == 0)
        return 8;
    if (strncmp(s, "http://", 7) == 0)
        return 7;
    return 0;
}

/* A base URL that paths are appended to: the trailing '/' goes. */
static const char *check_endpoint(char *s)
{
    size_t skip = scheme_len(s);
    size_t n = strlen(s);

    if (!skip)
        return "must start with http:// or https://";
    while (n > skip && s[n - 1] == '/')
        s[--n] = '\0';
    if (n == skip || s[skip] == '/')
        return "must name a host after http:// or https://";
    if (n > 512)
        return "must be at most 512 characters";
    if (!is_visible_ascii(s) || strpbrk(s, "\"\\<>{}|^`"))
        return "must be a URL without spaces, quotes or control characters";
    if (strpbrk(s, "?#"))
        return "must be a base URL without a query or fragment";
    return NULL;
}

const char *config__check_endpoint(char *s)
{
    return check_endpoint(s);
}

static const char *check_url_or_empty(char *s)
{
    size_t skip = scheme_len(s);

    if (s[0] == '\0')
        return NULL;
    if (!skip)
        return "must be empty or start with http:// or https://";
    if (s[skip] == '\0' || s[skip] == '/')
        return "must name a host after http:// or https://";
    if (strlen(s) > 2048)
        return "must be at most 2048 characters";
    if (!is_visible_ascii(s) || strpbrk(s, "\"\\<>{}|^`"))
        return "must be a URL without spaces, quotes or control characters";
    return NULL;
}

/* ARM api-versions: "2025-09-01" or "2024-05-01-preview". */
static const char *check_api_version(char *s)
{
    static const char pattern[] = "dddd-dd-dd";
    size_t n = strlen(s);
    int ok = n == 10 || (n == 18 && strcmp(s + 10, "-preview") == 0);

    for (size_t i = 0; ok && i < 10; i++)
        ok = pattern[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == pattern[i];
    return ok ? NULL : "must be an ARM api-version such as 2025-09-01 or 2024-05-01-preview";
}

int config__is_guid(const char *s)
{
    static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

    for (size_t i = 0; i < sizeof pattern - 1; i++) {
        char c = s[i];
        int hexd = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (pattern[i] == 'x' ? !hexd : c != '-')
            return 0;
    }
    return s[sizeof pattern - 1] == '\0';
}

/* Empty means "not set here": the subscription then comes from elsewhere. */
static const char *check_subscription(char *s)
{
    if (s[0] == '\0' || config__is_guid(s))
        return NULL;
    return "must be empty or a subscription id (a GUID such as "
           "00000000-0000-0000-0000-000000000000)";
}

static const char *check_path_or_empty(char *s)
{
    if (has_control(s))
        return "must be a path without control characters";
    if (strlen(s) > 4096)
        return "must be at most 4096 characters";
    return NULL;
}

/* Where the file share is mounted in the container. */
static const char *check_mount_path(char *s)
{
    static const char msg[] =
        "must be an absolute path other than / without '.', '..' or empty segments, ':', "
        "'\\' or spaces, at most 255 characters";
    size_t n = strlen(s);

    while (n > 1 && s[n - 1] == '/')
        s[--n] = '\0';
    if (s[0] != '/' || n < 2 || n > 255 || !is_visible_ascii(s) || strpbrk(s, ":\\"))
        return msg;
    for (const char *seg = s + 1; seg;) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return msg;
        seg = slash ? slash + 1 : NULL;
    }
    return NULL;
}

static const char *check_env_name(char *s)
{
    int ok = s[0] != '\0' && !(s[0] >= '0' && s[0] <= '9') && strlen(s) <= 128;
    for (const char *p = s; ok && *p; p++)
        ok = is_alnum(*p) || *p == '_';
    return ok ? NULL : "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)";
}

static const char *check_region_name(char *s)
{
    size_t n = strlen(s);
    int ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_lower_alnum(s[i]);
    return ok ? NULL : "must be an Azure region name such as eastus (lowercase letters and digits)";
}

/* Azure: 1-90 of letters, digits, '-', '_', '.', '(' and ')', not ending in '.'. */
static const char *check_resource_group(char *s)
{
    size_t n = strlen(s);
    int ok = n >= 1 && n <= 90 && s[n - 1] != '.';
    for (size_t i = 0; ok && i < n; i++)
        ok = is_alnum(s[i]) || strchr("-_.()", s[i]) != NULL;
    return ok ? NULL
              : "must be 1 to 90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'";
}

/* Azure: 3-24 lowercase letters and digits, globally unique. */
static const char *check_storage_account(char *s)
{
    size_t n = strlen(s);
    int ok = n >= 3 && n <= 24;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_lower_alnum(s[i]);
    return ok ? NULL : "must be 3 to 24 lowercase letters and digits";
}

static const char *check_image_key(char *s)
{
    size_t n = strlen(s);
    int ok = n >= 1 && n <= 64 && is_alnum(s[0]);
    for (size_t i = 0; ok && i < n; i++)
        ok = is_alnum(s[i]) || strchr("._-", s[i]) != NULL;
    return ok ? NULL
              : "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit";
}

static const char *check_image_ref(char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 512 || !is_visible_ascii(s))
        return "must be a container image reference (1 to 512 characters, no spaces)";
    return NULL;
}

/* ---- custom keys --------------------------------------------------------- */

/* A listen address: "host:port", "[v6]:port", "localhost:port" or
 * ":port", into *host_out (replaced) and *port_out. */
static int parse_listen(config__walk_t *w, yaml_node_t *v, char **host_out, int *port_out)
{
    static const char msg[] =
        "must be host:port with an IPv4 address, [IPv6 address] or localhost as host";
    char host[64], buf[200];
    const char *s, *port;
    size_t hostlen;
    int v6 = 0;

    if (v->type != YAML_SCALAR_NODE || memchr(config__scalar_of(v), '\0', v->data.scalar.length))
        return config__fail(w, v->start_mark, "%s, got %s", msg,
                            config__describe(v, 0, buf, sizeof buf));
    s = config__scalar_of(v);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return config__fail(w, v->start_mark, "%s, got %s", msg,
                                config__describe(v, 0, buf, sizeof buf));
        hostlen = (size_t)(close - s - 1);
        port = close + 2;
        v6 = 1;
        if (hostlen >= sizeof host)
            return config__fail(w, v->start_mark, "%s, got %s", msg,
                                config__describe(v, 0, buf, sizeof buf));
        memcpy(host, s + 1, hostlen);
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return config__fail(w, v->start_mark, "%s, got %s", msg,
                                config__describe(v, 0, buf, sizeof buf));
        hostlen = (size_t)(colon - s);
        if (memchr(s, ':', hostlen))
            return config__fail(w, v->start_mark,
                                "IPv6 addresses need brackets, as in [::1]:8080, got %s",
                                config__describe(v, 0, buf, sizeof buf));
        if (hostlen >= sizeof host)
            return config__fail(w, v->start_mark, "%s, got %s", msg,
                                config__describe(v, 0, buf, sizeof buf));
        memcpy(host, s, hostlen);
        port = colon + 1;
    }
    host[hostlen] = '\0';

    unsigned char addr[16];
    if (v6) {
        if (inet_pton(AF_INET6, host, addr) != 1)
            return config__fail(w, v->start_mark, "%s, got %s", msg,
                                config__describe(v, 0, buf, sizeof buf));
    } else if (hostlen == 0) {
        /* ":8080" listens on every interface, as Go's net package reads it. */
        snprintf(host, sizeof host, "0.0.0.0");
    } else if (strcmp(host, "localhost") == 0) {
        /* Resolved here so that the HTTP server binds without a DNS lookup. */
        snprintf(host, sizeof host, "127.0.0.1");
    } else if (inet_pton(AF_INET, host, addr) != 1) {
        return config__fail(w, v->start_mark, "%s, got %s", msg,
                            config__describe(v, 0, buf, sizeof buf));
    }

    size_t plen = strlen(port);
    long long p;
    if (plen < 1 || plen > 5 || !config__parse_ll(port, &p) || port[0] == '+' || port[0] == '-' ||
        p > 65535)
        return config__fail(w, v->start_mark, "port must be between 0 and 65535, got %s",
                            config__describe(v, 0, buf, sizeof buf));

    free(*host_out);
    *host_out = d8_xstrdup(host);
    *port_out = (int)p;
    return 0;
}

/* controller.listen: the API's address (parse_listen). */
static int set_listen(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    (void)k;
    if (config__is_null(v))
        return 0;
    return parse_listen(w, v, &cfg->listen_host, &cfg->listen_port);
}

/* controller.probeListen: the probe and metrics listener's address
 * (parse_listen); null or "" leaves it off. */
static int set_probe_listen(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    (void)k;
    if (config__is_null(v) || (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0)) {
        free(cfg->probe_listen_host);
        cfg->probe_listen_host = NULL;
        cfg->probe_listen_port = 0;
        return 0;
    }
    return parse_listen(w, v, &cfg->probe_listen_host, &cfg->probe_listen_port);
}

/* activity.listen: the listener that serves only the activity route. */
static int set_activity_listen(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    (void)k;
    if (config__is_null(v))
        return 0;
    return parse_listen(w, v, &cfg->activity_listen_host, &cfg->activity_listen_port);
}

/* workspace.ports: 1 to 5 distinct ports; replaces the default list. */
static int set_ports(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    int ports[MAX_PORTS];
    char buf[200];
    int rc;

    (void)k;
    if (config__is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return config__fail(w, v->start_mark, "must be a sequence of ports such as [8080], got %s",
                            config__describe(v, 0, buf, sizeof buf));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n < 1 || n > MAX_PORTS)
        return config__fail(w, v->start_mark, "must list 1 to %d ports, got %zu", MAX_PORTS, n);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = config__node_at(w, v->data.sequence.items.start[i]);
        long long p = 0;
        size_t old = config__path_push(w, "[%zu]", i);
        rc = config__visit(w, item, v->start_mark);
        if (rc == 0)
            rc = config__int_value(w, item, 1, 65535, &p);
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (ports[j] == (int)p)
                rc = config__fail(w, item->start_mark, "duplicate port %lld", p);
        config__path_pop(w, old);
        if (rc)
            return rc;
        ports[i] = (int)p;
    }
    free(cfg->ports);
    cfg->ports = d8_xmalloc(n * sizeof *cfg->ports);
    memcpy(cfg->ports, ports, n * sizeof *cfg->ports);
    cfg->nports = n;
    return 0;
}

/* images: key -> reference; replaces the default map as a whole. */
static int set_images(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    config_image_t *imgs = NULL;
    size_t lines[MAX_IMAGES];
    size_t n, count = 0;
    char buf[200];
    int rc = 0;

    (void)k;
    if (config__is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return config__fail(w, v->start_mark,
                            "must be a mapping of image key to container image reference, got %s",
                            config__describe(v, 0, buf, sizeof buf));
    n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n < 1 || n > MAX_IMAGES)
        return config__fail(w, v->start_mark, "must list 1 to %d images, got %zu", MAX_IMAGES, n);
    imgs = d8_xcalloc(n, sizeof *imgs);
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
        yaml_node_t *kn = config__node_at(w, p->key);
        yaml_node_t *vn = config__node_at(w, p->value);
        if ((rc = config__visit(w, kn, v->start_mark)) != 0)
            goto cleanup;
        if (kn->type != YAML_SCALAR_NODE || config__is_null(kn)) {
            rc = config__fail(w, kn->start_mark, "keys must be strings, got %s",
                              config__describe(kn, 0, buf, sizeof buf));
            goto cleanup;
        }
        size_t old = config__path_key(w, config__scalar_of(kn), kn->data.scalar.length);
        char *key = NULL, *ref = NULL;
        rc = config__string_value(w, kn, check_image_key, &key);
        for (size_t j = 0; rc == 0 && j < count; j++)
            if (strcmp(imgs[j].key, key) == 0)
                rc = config__fail(w, kn->start_mark, "duplicate key (first set at line %zu)",
                                  lines[j]);
        if (rc == 0)
            rc = config__visit(w, vn, kn->start_mark);
        if (rc == 0 && config__is_null(vn))
            rc = config__fail(w, vn->start_mark, "needs a container image reference");
        if (rc == 0)
            rc = config__string_value(w, vn, check_image_ref, &ref);
        config__path_pop(w, old);
        if (rc) {
            free(key);
            goto cleanup;
        }
        imgs[count].key = key;
        imgs[count].ref = ref;
        lines[count] = kn->start_mark.line + 1;
        count++;
    }
    for (size_t i = 0; i < cfg->nimages; i++) {
        free(cfg->images[i].key);
        free(cfg->images[i].ref);
    }
    free(cfg->images);
    cfg->images = imgs;
    cfg->nimages = count;
    imgs = NULL;
cleanup:
    for (size_t i = 0; imgs && i < count; i++) {
        free(imgs[i].key);
        free(imgs[i].ref);
    }
    free(imgs);
    return rc;
}

static const config__field_t region_fields[] = {
    ROW_STR("name", config_region_t, name, check_region_name, 1),
    ROW_STR("resourceGroup", config_region_t, resource_group, check_resource_group, 1),
    ROW_STR("storageAccount", config_region_t, storage_account, check_storage_account, 1),
    ROW_STR("subscriptionId", config_region_t, subscription_id, check_subscription, 0),
    ROW_CUSTOM("subnetIds", config__set_subnet_ids),
    {0},
};

/* azure.regions: 1 to 64 entries with distinct names. */
static int set_regions(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    char buf[200];
    int rc;

    if (config__is_null(v))
        return config__fail(w, k->start_mark, "at least one region is required");
    if (v->type != YAML_SEQUENCE_NODE)
        return config__fail(w, v->start_mark,
                            "must be a sequence of regions (name, resourceGroup, storageAccount, "
                            "subscriptionId), got %s",
                            config__describe(v, 0, buf, sizeof buf));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0)
        return config__fail(w, v->start_mark, "at least one region is required");
    if (n > MAX_REGIONS)
        return config__fail(w, v->start_mark, "must list at most %d regions, got %zu", MAX_REGIONS,
                            n);
    /* Sized first so that config_free releases whatever the walk filled. */
    cfg->regions = d8_xcalloc(n, sizeof *cfg->regions);
    cfg->nregions = n;
    w->region_pos = d8_xcalloc(n, sizeof *w->region_pos);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = config__node_at(w, v->data.sequence.items.start[i]);
        size_t old = config__path_push(w, "[%zu]", i);
        rc = config__visit(w, item, v->start_mark);
        if (rc == 0 && item->type != YAML_MAPPING_NODE)
            rc = config__fail(
                w, item->start_mark,
                "must be a mapping with name, resourceGroup, storageAccount and optionally "
                "subscriptionId, got %s",
                config__describe(item, 0, buf, sizeof buf));
        if (rc == 0)
            rc = config__walk_section(w, item, region_fields, &cfg->regions[i]);
        for (size_t j = 0; rc == 0 && j < i; j++) {
            if (strcmp(cfg->regions[j].name, cfg->regions[i].name) == 0) {
                yaml_node_t *name = config__map_get(w, item, "name");
                config__path_push(w, ".name");
                rc = config__fail(w, name ? name->start_mark : item->start_mark,
                                  "duplicate region \"%s\" (first at line %zu)",
                                  cfg->regions[i].name, w->region_pos[j].line);
            }
        }
        w->region_pos[i].line = item->start_mark.line + 1;
        w->region_pos[i].column = item->start_mark.column + 1;
        config__path_pop(w, old);
        if (rc)
            return rc;
    }
    return 0;
}

static const config__field_t controller_fields[] = {
    ROW_STR("name", config_t, controller_name, check_controller_name, 0),
    ROW_CUSTOM("listen", set_listen),
    ROW_CUSTOM("probeListen", set_probe_listen),
    ROW_INT("resyncSeconds", config_t, resync_seconds, 1, 86400),
    ROW_INT("statusRefreshSeconds", config_t, status_refresh_seconds, 1, 86400),
    ROW_INT("shutdownGraceSeconds", config_t, shutdown_grace_seconds, 0, 3600),
    ROW_INT("maxConcurrentReconciles", config_t, max_concurrent_reconciles, 1, 1024),
    ROW_STR("stateFile", config_t, state_file, check_path_or_empty, 0),
    ROW_INT("stateCommitMs", config_t, state_commit_ms, 0, 1000),
    ROW_INT("autoStopWarningMinutes", config_t, auto_stop_warning_minutes, 0, 1440),
    /* A minute of autoStopMinutes and autoStopWarningMinutes, in seconds:
     * shorter only for tests and demos. */
    ROW_INT("autoStopMinuteSeconds", config_t, auto_stop_minute_seconds, 1, 60),
    ROW_INT("usagePersistSeconds", config_t, usage_persist_seconds, 1, 3600),
    {0},
};

/* api.tls: the files are read when the API starts (pkg/api), which names
 * the key's position recorded here when one does not load. */
static const config__field_t tls_fields[] = {
    ROW_STR("certFile", config_t, tls_cert_file, check_path_or_empty, 0),
    ROW_STR("keyFile", config_t, tls_key_file, check_path_or_empty, 0),
    ROW_STR("clientCAFile", config_t, tls_client_ca_file, check_path_or_empty, 0),
    ROW_INT("reloadSeconds", config_t, tls_reload_seconds, 1, 3600),
    {0},
};

/* api.tls: walks the section, records where each file key was written
 * (cfg->tls_*_at) and checks that certFile and keyFile go together. */
static int set_tls(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    if (config__is_null(v))
        return 0;
    int rc = config__walk_section(w, v, tls_fields, base);
    if (rc)
        return rc;
    yaml_mark_t at_cert = k->start_mark, at_key = k->start_mark;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *pk = config__node_at(w, p->key);
        if (!pk || pk->type != YAML_SCALAR_NODE)
            continue;
        const char *name = config__scalar_of(pk);
        char **dst = strcmp(name, "certFile") == 0       ? &cfg->tls_cert_at
                     : strcmp(name, "keyFile") == 0      ? &cfg->tls_key_at
                     : strcmp(name, "clientCAFile") == 0 ? &cfg->tls_client_ca_at
                                                         : NULL;
        if (!dst)
            continue;
        if (dst == &cfg->tls_cert_at)
            at_cert = pk->start_mark;
        else if (dst == &cfg->tls_key_at)
            at_key = pk->start_mark;
        char buf[600];
        snprintf(buf, sizeof buf, "%s:%zu:%zu", w->name, pk->start_mark.line + 1,
                 pk->start_mark.column + 1);
        free(*dst);
        *dst = d8_xstrdup(buf);
    }
    if (cfg->tls_cert_file[0] && !cfg->tls_key_file[0]) {
        config__path_push(w, ".keyFile");
        return config__fail(w, at_cert, "must be set when certFile is");
    }
    if (!cfg->tls_cert_file[0] && (cfg->tls_key_file[0] || cfg->tls_client_ca_file[0])) {
        config__path_push(w, ".certFile");
        return config__fail(w, at_key, "must be set when keyFile or clientCAFile is");
    }
    return 0;
}

static const config__field_t api_fields[] = {
    ROW_STR("keysFile", config_t, keys_file, check_path_or_empty, 0),
    ROW_SIZE("maxBodyBytes", config_t, max_body_bytes, 1024, 268435456),
    ROW_SIZE("maxSyncBodyBytes", config_t, max_sync_body_bytes, 1024, 1073741824),
    ROW_INT("maxSyncItems", config_t, max_sync_items, 1, 10000000),
    ROW_SIZE("maxConnections", config_t, max_connections, 1, 65536),
    ROW_SIZE("maxConnectionsPerClient", config_t, max_connections_per_client, 0, 65536),
    ROW_INT("watchRingSize", config_t, watch_ring_size, 16, 1048576),
    ROW_CUSTOM("tls", set_tls),
    {0},
};

/* azure.rateLimits: ARM's and ACI's published meters by default; lower
 * them when another principal shares the subscription's budget. */
static const config__field_t rate_limit_fields[] = {
    ROW_INT("readBurst", config_t, rl_read_burst, 1, 1000000),
    ROW_INT("readsPerSecond", config_t, rl_reads_per_second, 1, 1000000),
    ROW_INT("writeBurst", config_t, rl_write_burst, 1, 1000000),
    ROW_INT("writesPerSecond", config_t, rl_writes_per_second, 1, 1000000),
    ROW_INT("deleteBurst", config_t, rl_delete_burst, 1, 1000000),
    ROW_INT("deletesPerSecond", config_t, rl_deletes_per_second, 1, 1000000),
    ROW_INT("aciCreatesBurst", config_t, rl_aci_creates_burst, 1, 1000000),
    ROW_INT("aciCreatesPerHour", config_t, rl_aci_creates_per_hour, 1, 100000000),
    ROW_INT("aciDeletesBurst", config_t, rl_aci_deletes_burst, 1, 1000000),
    ROW_INT("aciDeletesPerHour", config_t, rl_aci_deletes_per_hour, 1, 100000000),
    {0},
};

static const config__field_t azure_fields[] = {
    ROW_STR("auth", config_t, azure_auth, check_auth, 0),
    ROW_STR("subscriptionId", config_t, subscription_id, check_subscription, 0),
    ROW_CUSTOM("cloud", config__set_cloud),
    ROW_CUSTOM("armEndpoint", config__set_arm_endpoint),
    ROW_CUSTOM("authorityHost", config__set_authority_host),
    ROW_CUSTOM("tokenScope", config__set_token_scope),
    ROW_STR("imdsEndpoint", config_t, imds_endpoint, check_endpoint, 0),
    ROW_STR("aciApiVersion", config_t, aci_api_version, check_api_version, 0),
    ROW_STR("storageApiVersion", config_t, storage_api_version, check_api_version, 0),
    ROW_INT("maxInflight", config_t, max_inflight, 1, 1024),
    ROW_SECTION("rateLimits", rate_limit_fields),
    ROW_CUSTOM("regions", set_regions),
    {0},
};

/* An HTTP path for a probe: "" (no probe) or absolute, visible ASCII. */
static const char *check_probe_path(char *s)
{
    if (!s[0])
        return NULL;
    if (s[0] != '/' || strlen(s) > 255 || !is_visible_ascii(s))
        return "must be empty (no probe) or an absolute HTTP path of visible ASCII, at most 255 "
               "characters";
    return NULL;
}

/* workspace.readinessProbe and livenessProbe (the ACI ContainerProbe). */
#define PROBE_FIELDS(name, member)                                                                 \
    static const config__field_t name[] = {                                                        \
        ROW_STR("path", config_t, member.path, check_probe_path, 0),                               \
        ROW_INT("port", config_t, member.port, 0, 65535),                                          \
        ROW_INT("initialDelaySeconds", config_t, member.initial_delay_seconds, 0, 3600),           \
        ROW_INT("periodSeconds", config_t, member.period_seconds, 1, 3600),                        \
        ROW_INT("failureThreshold", config_t, member.failure_threshold, 1, 1000),                  \
        ROW_INT("timeoutSeconds", config_t, member.timeout_seconds, 1, 3600),                      \
        {0},                                                                                       \
    }
PROBE_FIELDS(readiness_fields, readiness_probe);
PROBE_FIELDS(liveness_fields, liveness_probe);

static const config__field_t workspace_fields[] = {
    ROW_CUSTOM("ports", set_ports),
    ROW_STR("mountPath", config_t, mount_path, check_mount_path, 0),
    ROW_SECTION("readinessProbe", readiness_fields),
    ROW_SECTION("livenessProbe", liveness_fields),
    {0},
};

static const config__field_t limits_fields[] = {
    ROW_INT("maxStorageGB", config_t, max_storage_gb, 1, 102400),
    {0},
};

static const config__field_t reaper_fields[] = {
    ROW_BOOL("enabled", config_t, reaper_enabled),
    ROW_BOOL("dryRun", config_t, reaper_dry_run),
    ROW_INT("containerGroupGraceSeconds", config_t, reaper_group_grace_seconds, 0, 2592000),
    /* Shares hold user data; the default grace is 3 days. Short graces are
     * for tests and demos. */
    ROW_INT("fileShareGraceSeconds", config_t, reaper_share_grace_seconds, 1, 31536000),
    ROW_INT("maxDeletesPerCycle", config_t, reaper_max_deletes_per_cycle, 1, 10000),
    ROW_FRACTION("maxOrphanFraction", config_t, reaper_max_orphan_fraction),
    {0},
};

static const config__field_t webhook_fields[] = {
    ROW_STR("url", config_t, webhook_url, check_url_or_empty, 0),
    ROW_STR("secretEnv", config_t, webhook_secret_env, check_env_name, 0),
    {0},
};

/* activity: DEV8_ACTIVITY_URL / DEV8_ACTIVITY_TOKEN in every group. */
static const config__field_t activity_fields[] = {
    ROW_STR("url", config_t, activity_url, check_url_or_empty, 0),
    ROW_STR("keyEnv", config_t, activity_key_env, check_env_name, 0),
    ROW_CUSTOM("listen", set_activity_listen),
    {0},
};

static const config__field_t log_fields[] = {
    ROW_STR("level", config_t, log_level, check_log_level, 0),
    {0},
};

const config__field_t config__root_fields[] = {
    ROW_SECTION("controller", controller_fields),
    ROW_SECTION("api", api_fields),
    ROW_SECTION("azure", azure_fields),
    ROW_CUSTOM("images", set_images),
    ROW_CUSTOM("registries", config__set_registries),
    ROW_SECTION("workspace", workspace_fields),
    ROW_SECTION("limits", limits_fields),
    ROW_SECTION("reaper", reaper_fields),
    ROW_SECTION("webhook", webhook_fields),
    ROW_SECTION("log", log_fields),
    ROW_SECTION("pricing", config__pricing_fields),
    ROW_SECTION("retention", config__retention_fields),
    ROW_SECTION("activity", activity_fields),
    {0},
};

/* config__walk_section tracks duplicates in an array of CONFIG__MAX_FIELDS entries. */
#define FIELDS_FIT(t) (sizeof(t) / sizeof((t)[0]) <= CONFIG__MAX_FIELDS + 1)
_Static_assert(FIELDS_FIT(config__root_fields) && FIELDS_FIT(controller_fields) &&
                   FIELDS_FIT(api_fields) && FIELDS_FIT(azure_fields) &&
                   FIELDS_FIT(workspace_fields) && FIELDS_FIT(limits_fields) &&
                   FIELDS_FIT(reaper_fields) && FIELDS_FIT(webhook_fields) &&
                   FIELDS_FIT(log_fields) && FIELDS_FIT(region_fields) &&
                   FIELDS_FIT(activity_fields),
               "a field table outgrew CONFIG__MAX_FIELDS");
