/*
 * pkg/config: private registries (`registries`) and VNet subnets
 * (`azure.regions[].subnetIds`).
 *
 *   registries:
 *     - server: myacr.azurecr.io          # host[:port], no scheme
 *       username: myacr
 *       passwordEnv: ACR_PASSWORD         # or passwordFile: /var/run/secrets/acr/password
 *     - server: other.azurecr.io
 *       identity: /subscriptions/<guid>/resourceGroups/<rg>/providers/
 *                 Microsoft.ManagedIdentity/userAssignedIdentities/<name>
 *
 * A password is read once, at load, from the variable or file named; the
 * YAML never holds it, and no error message echoes it.
 */
#include "config_int.h"

#include "base/base.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REGISTRIES 16
#define MAX_PASSWORD_BYTES 4096

/* ---- checks -------------------------------------------------------------- */

/* host[:port]: letters, digits, '.', '-', one optional :port; lower-cased. */
static const char *check_server(char *s)
{
    static const char msg[] = "must be a registry host such as myacr.azurecr.io or "
                              "registry.example:5000 (no scheme, no path)";
    size_t n = strlen(s);
    const char *colon = strchr(s, ':');

    if (n < 1 || n > 253 || s[0] == '.' || s[0] == '-')
        return msg;
    for (size_t i = 0; i < n; i++) {
        s[i] = (char)tolower((unsigned char)s[i]);
        if (s + i == colon)
            continue;
        if (colon && s + i > colon ? !isdigit((unsigned char)s[i])
                                   : !(isalnum((unsigned char)s[i]) || strchr(".-", s[i])))
            return msg;
    }
    if (colon &&
        (colon[1] == '\0' || strlen(colon + 1) > 5 || atoi(colon + 1) > 65535 || colon == s))
        return msg;
    return NULL;
}

static const char *check_username(char *s)
{
    size_t n = strlen(s);
    int ok = n >= 1 && n <= 256;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f;
    return ok ? NULL : "must be 1 to 256 printable ASCII characters without spaces";
}

static const char *check_env_name(char *s)
{
    int ok = s[0] != '\0' && !isdigit((unsigned char)s[0]) && strlen(s) <= 128;
    for (const char *p = s; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '_';
    return ok ? NULL : "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)";
}

static const char *check_file(char *s)
{
    if (s[0] != '/' || strlen(s) > 4096)
        return "must be an absolute path of at most 4096 characters";
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20)
            return "must be a path without control characters";
    return NULL;
}

/* "<prefix>/<name>" at s: returns what follows, or NULL. Case-insensitive prefix. */
static const char *segment(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncasecmp(s, prefix, n) != 0)
        return NULL;
    s += n;
    const char *end = strchr(s, '/');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    if (len == 0 || len > 128)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("-_.()", s[i])))
            return NULL;
    return s + len;
}

/* /subscriptions/<guid>/resourceGroups/<rg><rest>: what follows the group, or NULL. */
static const char *after_group(const char *s)
{
    static const char sub[] = "/subscriptions/";
    char guid[37];
    if (strncasecmp(s, sub, sizeof(sub) - 1) != 0 || strlen(s) < sizeof(sub) - 1 + 36)
        return NULL;
    memcpy(guid, s + sizeof(sub) - 1, 36);
    guid[36] = '\0';
    if (!config__is_guid(guid))
        return NULL;
    return segment(s + sizeof(sub) - 1 + 36, "/resourceGroups/");
}

static const char *check_identity(char *s)
{
    const char *p = after_group(s);
    if (p)
        p = segment(p, "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/");
    return p && *p == '\0' ? NULL
                           : "must be the resource id of a user-assigned managed identity: "
                             "/subscriptions/<guid>/resourceGroups/<group>/providers/"
                             "Microsoft.ManagedIdentity/userAssignedIdentities/<name>";
}

static const char *check_subnet(char *s)
{
    const char *p = after_group(s);
    if (p)
        p = segment(p, "/providers/Microsoft.Network/virtualNetworks/");
    if (p)
        p = segment(p, "/subnets/");
    return p && *p == '\0' ? NULL
                           : "must be a subnet resource id: /subscriptions/<guid>/resourceGroups/"
                             "<group>/providers/Microsoft.Network/virtualNetworks/<vnet>/"
                             "subnets/<subnet>";
}

/* ---- registries ---------------------------------------------------------- */

static const config__field_t registry_fields[] = {
    {.key = "server",
     .kind = CONFIG__F_STR,
     .off = offsetof(config_registry_t, server),
     .check = check_server,
     .required = 1},
    {.key = "username",
     .kind = CONFIG__F_STR,
     .off = offsetof(config_registry_t, username),
     .check = check_username},
    {.key = "passwordEnv",
     .kind = CONFIG__F_STR,
     .off = offsetof(config_registry_t, password_env),
     .check = check_env_name},
    {.key = "passwordFile",
     .kind = CONFIG__F_STR,
     .off = offsetof(config_registry_t, password_file),
     .check = check_file},
    {.key = "identity",
     .kind = CONFIG__F_STR,
     .off = offsetof(config_registry_t, identity),
     .check = check_identity},
    {0},
};

static void registry_release(config_registry_t *r)
{
    if (r->password) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->server);
    free(r->username);
    free(r->identity);
    free(r->password_env);
    free(r->password_file);
    memset(r, 0, sizeof(*r));
}

void config__registries_free(config_t *cfg)
{
    for (size_t i = 0; i < cfg->nregistries; i++)
        registry_release(&cfg->registries[i]);
    free(cfg->registries);
    cfg->registries = NULL;
    cfg->nregistries = 0;
}

/* Reads the password file: at most MAX_PASSWORD_BYTES, trailing blanks and
 * newlines dropped. 0, or a static reason (never the content). */
static const char *read_password_file(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strerror(errno);
    char *buf = d8_xmalloc(MAX_PASSWORD_BYTES + 2);
    size_t n = fread(buf, 1, MAX_PASSWORD_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX_PASSWORD_BYTES) {
        OPENSSL_cleanse(buf, MAX_PASSWORD_BYTES + 2);
        free(buf);
        return bad ? "cannot be read" : "is larger than 4096 bytes";
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    *out = buf;
    return NULL;
}

/* The password of r, from its variable or file; 0 or a reported error. */
static int load_password(config__walk_t *w, yaml_node_t *item, config_registry_t *r)
{
    const char *why = NULL;
    const char *key = r->password_env ? "passwordEnv" : "passwordFile";
    if (r->password_env) {
        const char *v = getenv(r->password_env);
        if (!v || !v[0])
            why = "names an environment variable that is not set or empty";
        else
            r->password = d8_xstrdup(v);
    } else {
        why = read_password_file(r->password_file, &r->password);
        if (!why && !r->password[0])
            why = "names an empty file";
    }
    for (const char *p = r->password; !why && p && *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            why = "holds a password with control characters";
    if (!why)
        return 0;
    yaml_node_t *n = config__map_get(w, item, key);
    size_t old = config__path_push(w, ".%s", key);
    int rc = config__fail(w, n ? n->start_mark : item->start_mark, "%s%s%s", why,
                          r->password_file && !r->password_env ? ": " : "",
                          r->password_file && !r->password_env ? r->password_file : "");
    config__path_pop(w, old);
    return rc;
}

/* Either username with exactly one password source, or identity alone. */
static int check_combination(config__walk_t *w, yaml_node_t *item, config_registry_t *r)
{
    int npw = (r->password_env != NULL) + (r->password_file != NULL);
    const char *why = NULL;
    if (r->identity && (r->username || npw))
        why = "takes either identity or username with passwordEnv/passwordFile, not both";
    else if (!r->identity && !r->username)
        why = "needs username with passwordEnv or passwordFile, or identity";
    else if (!r->identity && npw != 1)
        why = "needs exactly one of passwordEnv and passwordFile with username";
    if (why)
        return config__fail(w, item->start_mark, "%s", why);
    return r->identity ? 0 : load_password(w, item, r);
}

/* Walks registries[i] of sequence seq into all[i]: its keys, their
 * combination, its password, a server not listed before. 0 or D8_EINVAL. */
static int registry_item(config__walk_t *w, yaml_node_t *seq, size_t i, config_registry_t *all)
{
    char buf[200];
    yaml_node_t *item = config__node_at(w, seq->data.sequence.items.start[i]);
    size_t old = config__path_push(w, "[%zu]", i);
    int rc = config__visit(w, item, seq->start_mark);
    if (rc == 0 && item->type != YAML_MAPPING_NODE)
        rc = config__fail(w, item->start_mark,
                          "must be a mapping with server and username + passwordEnv / "
                          "passwordFile or identity, got %s",
                          config__describe(item, 0, buf, sizeof buf));
    if (rc == 0)
        rc = config__walk_section(w, item, registry_fields, &all[i]);
    if (rc == 0)
        rc = check_combination(w, item, &all[i]);
    for (size_t j = 0; rc == 0 && j < i; j++)
        if (strcmp(all[j].server, all[i].server) == 0) {
            yaml_node_t *s = config__map_get(w, item, "server");
            rc = config__fail(w, s ? s->start_mark : item->start_mark, "server %s is listed twice",
                              all[i].server);
        }
    config__path_pop(w, old);
    return rc;
}

int config__set_registries(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_t *cfg = base;
    char buf[200];

    (void)k;
    if (config__is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return config__fail(w, v->start_mark, "must be a sequence of registries, got %s",
                            config__describe(v, 0, buf, sizeof buf));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > MAX_REGISTRIES)
        return config__fail(w, v->start_mark, "must list at most %d registries, got %zu",
                            MAX_REGISTRIES, n);
    config__registries_free(cfg);
    /* Sized first so that config_free releases whatever the walk filled. */
    cfg->registries = d8_xcalloc(n ? n : 1, sizeof(*cfg->registries));
    cfg->nregistries = n;
    for (size_t i = 0; i < n; i++) {
        int rc = registry_item(w, v, i, cfg->registries);
        if (rc)
            return rc;
    }
    return 0;
}

const config_registry_t *config_registry_for(const config_t *cfg, const char *ref)
{
    char host[300];
    if (!cfg || !ref)
        return NULL;
    d8_image_registry(ref, host, sizeof(host));
    int hub = strcmp(host, "docker.io") == 0;
    for (size_t i = 0; i < cfg->nregistries; i++) {
        const char *s = cfg->registries[i].server;
        if (strcmp(s, host) == 0 || (hub && strcmp(s, "index.docker.io") == 0))
            return &cfg->registries[i];
    }
    return NULL;
}

/* ---- subnets ------------------------------------------------------------- */

void config__subnet_ids_free(config_region_t *r)
{
    for (size_t i = 0; i < r->nsubnet_ids; i++)
        free(r->subnet_ids[i]);
    free(r->subnet_ids);
    r->subnet_ids = NULL;
    r->nsubnet_ids = 0;
}

int config__set_subnet_ids(config__walk_t *w, yaml_node_t *k, yaml_node_t *v, void *base)
{
    config_region_t *r = base;
    char buf[200];

    (void)k;
    if (config__is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return config__fail(w, v->start_mark, "must be a sequence of subnet resource ids, got %s",
                            config__describe(v, 0, buf, sizeof buf));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > 1)
        return config__fail(w, v->start_mark,
                            "must list at most one subnet (ACI injects a container group into "
                            "one subnet), got %zu",
                            n);
    config__subnet_ids_free(r);
    r->subnet_ids = d8_xcalloc(n ? n : 1, sizeof(*r->subnet_ids));
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = config__node_at(w, v->data.sequence.items.start[i]);
        size_t old = config__path_push(w, "[%zu]", i);
        int rc = config__visit(w, item, v->start_mark);
        if (rc == 0)
            rc = config__string_value(w, item, check_subnet, &r->subnet_ids[i]);
        config__path_pop(w, old);
        if (rc)
            return rc;
        r->nsubnet_ids = i + 1;
    }
    return 0;
}
