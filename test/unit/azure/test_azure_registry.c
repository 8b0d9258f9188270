/*
 * pkg/azure's group body for a private registry (username + password, or
 * a user-assigned identity) and a VNet-injected group (subnetIds): every
 * member it writes is a property of the ACI 2026-05-01 spec at its place
 * (field by field), required ones are there, and incomplete inputs are
 * refused. Also the client's token scope default (the cloud table's).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azure/azure.h"
#include "azure/cloud.h"
#include "helpers/azure_specs.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MI                                                                                         \
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"             \
    "Microsoft.ManagedIdentity/userAssignedIdentities/dev8-pull"
#define SUBNET                                                                                     \
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"             \
    "Microsoft.Network/virtualNetworks/vnet/subnets/aci"

static const int ports[] = {8080};
static const azure_kv_t tags[] = {{"dev8-managed-by", "dev8-agent"}};
static char *const subnets[] = {(char *)SUBNET};

static azure_group_spec_t base_spec(void)
{
    azure_group_spec_t s = {
        .name = "dev8-r1",
        .tags = tags,
        .ntags = 1,
        .image = "myacr.azurecr.io/dev8/ws:1",
        .cpu = 1,
        .memory_gb = 2,
        .ports = ports,
        .nports = 1,
        .share_name = "dev8-r1",
        .mount_path = "/home/dev8",
        .dns_label = "dev8-r1-abcdef",
        .dns_label_scope = "TenantReuse",
    };
    return s;
}

static const cJSON *resolve(const cJSON *doc, const cJSON *schema)
{
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(schema, "$ref");
    if (!cJSON_IsString(ref))
        return schema;
    if (strncmp(ref->valuestring, "#/definitions/", 14) != 0)
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "definitions"),
                                            ref->valuestring + 14);
}

/* The schema of member `name` of an object schema (own or allOf), or NULL. */
static const cJSON *member_schema(const cJSON *doc, const cJSON *schema, const char *name)
{
    schema = resolve(doc, schema);
    if (!schema)
        return NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(schema, "properties"), name);
    if (p)
        return p;
    const cJSON *sub;
    cJSON_ArrayForEach(sub, cJSON_GetObjectItemCaseSensitive(schema, "allOf"))
    {
        if ((p = member_schema(doc, sub, name)) != NULL)
            return p;
    }
    return NULL;
}

/* Members of inst the schema does not name (maps excepted); printed. */
static int unknown_members(const cJSON *doc, const cJSON *schema, const cJSON *inst,
                           const char *path)
{
    schema = resolve(doc, schema);
    if (!schema)
        return 0;
    int bad = 0;
    if (cJSON_IsObject(inst)) {
        if (cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties"))
            return 0; /* a map (tags, userAssignedIdentities) */
        const cJSON *m;
        cJSON_ArrayForEach(m, inst)
        {
            const cJSON *ms = member_schema(doc, schema, m->string);
            char p[512];
            snprintf(p, sizeof p, "%s.%s", path, m->string);
            if (!ms) {
                print_error("not in the spec: %s\n", p);
                bad++;
            } else {
                bad += unknown_members(doc, ms, m, p);
            }
        }
    } else if (cJSON_IsArray(inst)) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(schema, "items");
        const cJSON *el;
        cJSON_ArrayForEach(el, inst)
        {
            bad += unknown_members(doc, items, el, path);
        }
    }
    return bad;
}

/* The body of spec, parsed and checked against the spec's ContainerGroup. */
static cJSON *body_of(const azure_group_spec_t *spec)
{
    d8_buf_t b;
    d8_buf_init(&b);
    assert_int_equal(azure_group_body(spec, "eastus", "dev8eastus", "key==", &b), 0);
    cJSON *body = cJSON_ParseWithLength(b.data, b.len);
    d8_buf_release(&b);
    assert_non_null(body);
    cJSON *doc = load_spec(ACI_DIR "/containerInstance.json");
    const cJSON *cg = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "definitions"), "ContainerGroup");
    assert_non_null(cg);
    assert_int_equal(unknown_members(doc, cg, body, "containerGroup"), 0);
    cJSON_Delete(doc);
    return body;
}

static const cJSON *at(const cJSON *j, const char *a, const char *b, const char *c)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (c)
        x = cJSON_GetObjectItemCaseSensitive(x, c);
    return x;
}

static void test_password_credential(void **state)
{
    (void)state;
    azure_group_spec_t s = base_spec();
    s.registry_server = "myacr.azurecr.io";
    s.registry_username = "myacr";
    s.registry_password = "p\"w\\d";
    cJSON *body = body_of(&s);
    const cJSON *cred =
        cJSON_GetArrayItem(at(body, "properties", "imageRegistryCredentials", NULL), 0);
    assert_string_equal(at(cred, "server", NULL, NULL)->valuestring, "myacr.azurecr.io");
    assert_string_equal(at(cred, "username", NULL, NULL)->valuestring, "myacr");
    assert_string_equal(at(cred, "password", NULL, NULL)->valuestring, "p\"w\\d");
    assert_null(at(cred, "identity", NULL, NULL));
    assert_null(at(body, "identity", NULL, NULL));
    /* The public IP keeps its DNS label. */
    assert_string_equal(at(body, "properties", "ipAddress", "type")->valuestring, "Public");
    assert_string_equal(at(body, "properties", "ipAddress", "dnsNameLabel")->valuestring,
                        "dev8-r1-abcdef");
    assert_null(at(body, "properties", "subnetIds", NULL));
    /* The storage key still goes last (ops.c splits the body at it). */
    cJSON_Delete(body);
}

static void test_identity_credential(void **state)
{
    (void)state;
    azure_group_spec_t s = base_spec();
    s.registry_server = "myacr.azurecr.io";
    s.registry_identity = MI;
    cJSON *body = body_of(&s);
    assert_string_equal(at(body, "identity", "type", NULL)->valuestring, "UserAssigned");
    assert_true(cJSON_IsObject(at(body, "identity", "userAssignedIdentities", MI)));
    const cJSON *cred =
        cJSON_GetArrayItem(at(body, "properties", "imageRegistryCredentials", NULL), 0);
    assert_string_equal(at(cred, "identity", NULL, NULL)->valuestring, MI);
    assert_null(at(cred, "password", NULL, NULL));
    assert_null(at(cred, "username", NULL, NULL));
    cJSON_Delete(body);
}

static void test_subnet_group_is_private_without_label(void **state)
{
    (void)state;
    azure_group_spec_t s = base_spec();
    s.subnet_ids = subnets;
    s.nsubnet_ids = 1;
    cJSON *body = body_of(&s);
    assert_string_equal(at(body, "properties", "ipAddress", "type")->valuestring, "Private");
    assert_non_null(at(body, "properties", "ipAddress", "ports"));
    assert_null(at(body, "properties", "ipAddress", "dnsNameLabel"));
    assert_null(at(body, "properties", "ipAddress", "autoGeneratedDomainNameLabelScope"));
    const cJSON *sn = cJSON_GetArrayItem(at(body, "properties", "subnetIds", NULL), 0);
    assert_string_equal(at(sn, "id", NULL, NULL)->valuestring, SUBNET);
    cJSON_Delete(body);
}

static void test_incomplete_registry_is_refused(void **state)
{
    (void)state;
    d8_buf_t b;
    d8_buf_init(&b);
    azure_group_spec_t s = base_spec();
    s.registry_server = "myacr.azurecr.io"; /* neither password nor identity */
    assert_int_equal(azure_group_body(&s, "eastus", "a", "k", &b), D8_EINVAL);
    s.registry_username = "u"; /* no password */
    assert_int_equal(azure_group_body(&s, "eastus", "a", "k", &b), D8_EINVAL);
    s.registry_password = "p";
    s.registry_identity = MI; /* both */
    assert_int_equal(azure_group_body(&s, "eastus", "a", "k", &b), D8_EINVAL);
    s = base_spec();
    s.registry_password = "p"; /* no server */
    assert_int_equal(azure_group_body(&s, "eastus", "a", "k", &b), D8_EINVAL);
    s = base_spec();
    char *const empty[] = {(char *)""};
    s.subnet_ids = empty;
    s.nsubnet_ids = 1;
    assert_int_equal(azure_group_body(&s, "eastus", "a", "k", &b), D8_EINVAL);
    assert_int_equal(b.len, 0);
    d8_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_credential),
        cmocka_unit_test(test_identity_credential),
        cmocka_unit_test(test_subnet_group_is_private_without_label),
        cmocka_unit_test(test_incomplete_registry_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
