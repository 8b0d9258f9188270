/*
 * pkg/azsim: validation of container group request bodies. A PUT body is
 * checked against what the ContainerGroup schema and ACI require, a PATCH
 * body against the few fields ARM lets it change; the first problem is
 * answered as ARM's 400 InvalidRequestContent (or LocationRequired).
 */
#include "azsim_int.h"

#include <stdio.h>

/* One validation: only the first problem found is answered, into r. */
typedef struct verr {
    azsim_resp_t *r;
    int failed;
} verr_t;

static void invalid(verr_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void invalid(verr_t *v, const char *fmt, ...)
{
    if (v->failed)
        return;
    d8_buf_t b;
    d8_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    d8_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    azsim__arm_error(v->r, 400, "InvalidRequestContent",
                     "The request content was invalid and could not be deserialized: '%s'.",
                     b.data);
    d8_buf_release(&b);
    v->failed = 1;
}

/* Requires `name` in obj with the cJSON type test; path names obj. */
static cJSON *need(verr_t *v, const cJSON *obj, const char *name, const char *path,
                   cJSON_bool (*is)(const cJSON *))
{
    cJSON *it = cJSON_GetObjectItem(obj, name);
    if (!it || cJSON_IsNull(it)) {
        invalid(v, "Required property '%s' not found in JSON. Path '%s'", name, path);
        return NULL;
    }
    if (!is(it)) {
        invalid(v, "Unexpected type for property '%s'. Path '%s%s%s'", name, path,
                path[0] ? "." : "", name);
        return NULL;
    }
    return it;
}

/* Optional `name`: NULL when absent, else must pass the type test. */
static cJSON *opt(verr_t *v, const cJSON *obj, const char *name, const char *path,
                  cJSON_bool (*is)(const cJSON *))
{
    cJSON *it = cJSON_GetObjectItem(obj, name);
    if (!it || cJSON_IsNull(it))
        return NULL;
    if (!is(it)) {
        invalid(v, "Unexpected type for property '%s'. Path '%s%s%s'", name, path,
                path[0] ? "." : "", name);
        return NULL;
    }
    return it;
}

static int nonempty_string(const cJSON *s)
{
    return cJSON_IsString(s) && s->valuestring[0];
}

static void check_string_map(verr_t *v, const cJSON *m, const char *path)
{
    for (const cJSON *it = m ? m->child : NULL; it; it = it->next)
        if (!cJSON_IsString(it))
            invalid(v, "The value of '%s' must be a string. Path '%s.%s'", it->string, path,
                    it->string);
}

/*
 * Checks container i of the list at base: a non-empty name, an image and
 * resources.requests (optional when relaxed), and well-formed ports,
 * environment variables and volume mounts.
 */
static void check_container(verr_t *v, const cJSON *c, const char *base, int i, int relaxed)
{
    char path[160], ppath[200], sub[260];
    snprintf(path, sizeof(path), "%s[%d]", base, i);
    if (!cJSON_IsObject(c)) {
        invalid(v, "Expected an object. Path '%s'", path);
        return;
    }
    const cJSON *name = need(v, c, "name", path, cJSON_IsString);
    if (name && !name->valuestring[0])
        invalid(v, "The container name must not be empty. Path '%s.name'", path);
    const cJSON *p = need(v, c, "properties", path, cJSON_IsObject);
    if (!p)
        return;
    snprintf(ppath, sizeof(ppath), "%s.properties", path);
    const cJSON *image = relaxed ? opt(v, p, "image", ppath, cJSON_IsString)
                                 : need(v, p, "image", ppath, cJSON_IsString);
    if (image && !image->valuestring[0])
        invalid(v, "The container image must not be empty. Path '%s.image'", ppath);
    const cJSON *res = relaxed ? opt(v, p, "resources", ppath, cJSON_IsObject)
                               : need(v, p, "resources", ppath, cJSON_IsObject);
    if (res) {
        snprintf(sub, sizeof(sub), "%s.resources", ppath);
        const cJSON *req = need(v, res, "requests", sub, cJSON_IsObject);
        if (req) {
            snprintf(sub, sizeof(sub), "%s.resources.requests", ppath);
            const cJSON *cpu = need(v, req, "cpu", sub, cJSON_IsNumber);
            const cJSON *mem = need(v, req, "memoryInGB", sub, cJSON_IsNumber);
            if (cpu && !(cpu->valuedouble > 0))
                invalid(v, "The cpu request must be positive. Path '%s.cpu'", sub);
            if (mem && !(mem->valuedouble > 0))
                invalid(v, "The memoryInGB request must be positive. Path '%s.memoryInGB'", sub);
        }
    }
    const cJSON *ports = opt(v, p, "ports", ppath, cJSON_IsArray);
    int j = 0;
    for (const cJSON *it = ports ? ports->child : NULL; it; it = it->next, j++) {
        snprintf(sub, sizeof(sub), "%s.ports[%d]", ppath, j);
        const cJSON *port = cJSON_IsObject(it) ? need(v, it, "port", sub, cJSON_IsNumber) : NULL;
        if (!cJSON_IsObject(it))
            invalid(v, "Expected an object. Path '%s'", sub);
        else if (port && (port->valuedouble < 1 || port->valuedouble > 65535))
            invalid(v, "The port must be between 1 and 65535. Path '%s.port'", sub);
    }
    const cJSON *envs = opt(v, p, "environmentVariables", ppath, cJSON_IsArray);
    j = 0;
    for (const cJSON *it = envs ? envs->child : NULL; it; it = it->next, j++) {
        snprintf(sub, sizeof(sub), "%s.environmentVariables[%d]", ppath, j);
        if (!cJSON_IsObject(it)) {
            invalid(v, "Expected an object. Path '%s'", sub);
            continue;
        }
        need(v, it, "name", sub, cJSON_IsString);
        opt(v, it, "value", sub, cJSON_IsString);
        opt(v, it, "secureValue", sub, cJSON_IsString);
    }
    const cJSON *mounts = opt(v, p, "volumeMounts", ppath, cJSON_IsArray);
    j = 0;
    for (const cJSON *it = mounts ? mounts->child : NULL; it; it = it->next, j++) {
        snprintf(sub, sizeof(sub), "%s.volumeMounts[%d]", ppath, j);
        if (!cJSON_IsObject(it)) {
            invalid(v, "Expected an object. Path '%s'", sub);
            continue;
        }
        need(v, it, "name", sub, cJSON_IsString);
        need(v, it, "mountPath", sub, cJSON_IsString);
    }
    opt(v, p, "command", ppath, cJSON_IsArray);
}

/* properties.containers: required, not empty, each a valid container. */
static void check_containers(verr_t *v, const cJSON *p, int relaxed)
{
    const cJSON *cs = need(v, p, "containers", "properties", cJSON_IsArray);
    if (cs && cJSON_GetArraySize(cs) == 0)
        invalid(v, "The container group must have at least one container. Path "
                   "'properties.containers'");
    int i = 0;
    for (const cJSON *c = cs ? cs->child : NULL; c && !v->failed; c = c->next, i++)
        check_container(v, c, "properties.containers", i, relaxed);
    const cJSON *inits = opt(v, p, "initContainers", "properties", cJSON_IsArray);
    i = 0;
    for (const cJSON *c = inits ? inits->child : NULL; c && !v->failed; c = c->next, i++)
        check_container(v, c, "properties.initContainers", i, 1);
}

/* A string the spec models as an enumeration (NULL-terminated `names`, any
 * case): otherwise ARM's converter error naming its type and path. */
static void check_enum(verr_t *v, const cJSON *s, const char *const *names, const char *type,
                       const char *path)
{
    if (!s)
        return;
    for (const char *const *n = names; *n; n++)
        if (azsim__ieq(s->valuestring, *n))
            return;
    invalid(v, "Error converting value \"%s\" to type '%s'. Path '%s'", s->valuestring, type, path);
}

/*
 * properties.osType (required unless the group is built from a profile)
 * and restartPolicy: one of the values of their enumerations, in any case.
 */
static void check_enums(verr_t *v, const cJSON *p, int relaxed)
{
    static const char *const os_types[] = {"Linux", "Windows", NULL};
    static const char *const policies[] = {"Always", "OnFailure", "Never", NULL};
    const cJSON *os = relaxed ? opt(v, p, "osType", "properties", cJSON_IsString)
                              : need(v, p, "osType", "properties", cJSON_IsString);
    check_enum(v, os, os_types, "OperatingSystemTypes", "properties.osType");
    const cJSON *rp = opt(v, p, "restartPolicy", "properties", cJSON_IsString);
    check_enum(v, rp, policies, "ContainerGroupRestartPolicy", "properties.restartPolicy");
}

/*
 * properties.ipAddress, when given: a type of Public or Private and a list
 * of port objects, each with a number port.
 */
static void check_ip_address(verr_t *v, const cJSON *p)
{
    const cJSON *ip = opt(v, p, "ipAddress", "properties", cJSON_IsObject);
    if (!ip)
        return;
    static const char *const ip_types[] = {"Public", "Private", NULL};
    const cJSON *type = need(v, ip, "type", "properties.ipAddress", cJSON_IsString);
    check_enum(v, type, ip_types, "ContainerGroupIpAddressType", "properties.ipAddress.type");
    const cJSON *ports = need(v, ip, "ports", "properties.ipAddress", cJSON_IsArray);
    int i = 0;
    for (const cJSON *it = ports ? ports->child : NULL; it && !v->failed; it = it->next, i++) {
        char path[80];
        snprintf(path, sizeof(path), "properties.ipAddress.ports[%d]", i);
        if (!cJSON_IsObject(it))
            invalid(v, "Expected an object. Path '%s'", path);
        else
            need(v, it, "port", path, cJSON_IsNumber);
    }
    opt(v, ip, "dnsNameLabel", "properties.ipAddress", cJSON_IsString);
    /* DnsNameLabelReusePolicy, modelAsString; any case ("NoReuse" too). */
    static const char *const scopes[] = {"Unsecure",           "TenantReuse", "SubscriptionReuse",
                                         "ResourceGroupReuse", "Noreuse",     NULL};
    const cJSON *scope =
        opt(v, ip, "autoGeneratedDomainNameLabelScope", "properties.ipAddress", cJSON_IsString);
    check_enum(v, scope, scopes, "DnsNameLabelReusePolicy",
               "properties.ipAddress.autoGeneratedDomainNameLabelScope");
}

/*
 * properties.volumes: each an object with a name; an azureFile names its
 * share and storage account, a secret maps names to strings.
 */
static void check_volumes(verr_t *v, const cJSON *p)
{
    const cJSON *vols = opt(v, p, "volumes", "properties", cJSON_IsArray);
    int i = 0;
    for (const cJSON *it = vols ? vols->child : NULL; it && !v->failed; it = it->next, i++) {
        char path[80], sub[100];
        snprintf(path, sizeof(path), "properties.volumes[%d]", i);
        if (!cJSON_IsObject(it)) {
            invalid(v, "Expected an object. Path '%s'", path);
            continue;
        }
        need(v, it, "name", path, cJSON_IsString);
        const cJSON *af = opt(v, it, "azureFile", path, cJSON_IsObject);
        if (af) {
            snprintf(sub, sizeof(sub), "%s.azureFile", path);
            need(v, af, "shareName", sub, cJSON_IsString);
            need(v, af, "storageAccountName", sub, cJSON_IsString);
            opt(v, af, "storageAccountKey", sub, cJSON_IsString);
        }
        const cJSON *secret = opt(v, it, "secret", path, cJSON_IsObject);
        snprintf(sub, sizeof(sub), "%s.secret", path);
        check_string_map(v, secret, sub);
    }
}

/* properties.imageRegistryCredentials: each an object naming its server. */
static void check_registry_credentials(verr_t *v, const cJSON *p)
{
    const cJSON *creds = opt(v, p, "imageRegistryCredentials", "properties", cJSON_IsArray);
    int i = 0;
    for (const cJSON *it = creds ? creds->child : NULL; it && !v->failed; it = it->next, i++) {
        char path[80];
        snprintf(path, sizeof(path), "properties.imageRegistryCredentials[%d]", i);
        if (!cJSON_IsObject(it))
            invalid(v, "Expected an object. Path '%s'", path);
        else
            need(v, it, "server", path, cJSON_IsString);
    }
}

/*
 * Checks the fields the ContainerGroup schema marks required, plus those
 * ACI itself requires of a group that is not built from a container group
 * profile (image, resources.requests, osType). Answers 400 on the first
 * problem and returns 0.
 */
int azsim__validate_group(const cJSON *b, azsim_resp_t *r)
{
    verr_t v = {.r = r};
    if (!cJSON_IsObject(b)) {
        invalid(&v, "The request body must be a JSON object");
        return 0;
    }
    const cJSON *loc = cJSON_GetObjectItem(b, "location");
    if (!nonempty_string(loc)) {
        azsim__arm_error(r, 400, "LocationRequired",
                         "The location property is required for this definition.");
        return 0;
    }
    const cJSON *tags = opt(&v, b, "tags", "", cJSON_IsObject);
    check_string_map(&v, tags, "tags");
    opt(&v, b, "zones", "", cJSON_IsArray);
    opt(&v, b, "identity", "", cJSON_IsObject);
    const cJSON *p = need(&v, b, "properties", "", cJSON_IsObject);
    if (!p)
        return 0;
    int relaxed = cJSON_IsObject(cJSON_GetObjectItem(p, "containerGroupProfile"));
    check_containers(&v, p, relaxed);
    check_enums(&v, p, relaxed);
    check_ip_address(&v, p);
    check_volumes(&v, p);
    check_registry_credentials(&v, p);
    return !v.failed;
}

int azsim__validate_group_patch(const cJSON *b, azsim_resp_t *r, const cJSON **tags,
                                const cJSON **zones)
{
    verr_t v = {.r = r};
    *tags = *zones = NULL;
    if (!cJSON_IsObject(b)) {
        invalid(&v, "The request body must be a JSON object");
        return 0;
    }
    *tags = opt(&v, b, "tags", "", cJSON_IsObject);
    check_string_map(&v, *tags, "tags");
    *zones = opt(&v, b, "zones", "", cJSON_IsArray);
    return !v.failed;
}
