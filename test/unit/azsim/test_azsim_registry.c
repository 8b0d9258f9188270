/*
 * Unit tests of azsim's private registries, clouds and VNet groups
 * (BEHAVIOURS.md item 10), driving the model directly (azsim_handle) with
 * a fake clock: which imageRegistryCredentials a registry accepts, what
 * GET and /_azsim/aci show of a password, the token endpoints' scope check
 * per cloud, and a Private IP without FQDN.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "azsim/azsim.h"
#include "base/base.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB "00000000-0000-0000-0000-000000000000"
#define CG_PATH                                                                                    \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.ContainerInstance/"             \
    "containerGroups"
#define ACI_V "?api-version=2025-09-01"
#define MI                                                                                         \
    "/subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"                \
    "userAssignedIdentities/pull"
#define PUBLIC_SCOPE "scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
#define CHINA_SCOPE "scope=https%3A%2F%2Fmanagement.chinacloudapi.cn%2F.default"

#define AZSIM_HARNESS_T0 5000000
#include "azsim_harness.h"

/* A simulator of cloud index `cloud` (0 public, 1 China), with a token
 * for that cloud's scope. */
static fx_t *fx_cloud(int cloud, const char *scope)
{
    azsim_opts_t o;
    azsim_opts_init(&o);
    o.clock = fake_clock;
    o.throttle = 0;
    o.cloud = cloud;
    fx_t *f = d8_xcalloc(1, sizeof(*f));
    f->sim = azsim_new(&o);
    f->host = "azsim.test";
    azsim_opts_release(&o);
    azsim_resp_init(&f->r);
    char form[300];
    snprintf(form, sizeof form, "grant_type=client_credentials&client_id=app1&client_secret=s&%s",
             scope);
    assert_int_equal(req(f, "POST", "/tenant1/oauth2/v2.0/token", form), 200);
    snprintf(f->token, sizeof(f->token), "%s", jstr(f->j, "access_token"));
    return f;
}

/* PUT of group `name`: image, then extra top-level members and extra
 * properties (each NULL or text starting with ','). */
static int put(fx_t *f, const char *name, const char *image, const char *top, const char *props)
{
    char url[512], b[4096];
    snprintf(url, sizeof(url), CG_PATH "/%s" ACI_V, name);
    snprintf(b, sizeof b,
             "{\"location\":\"eastus\"%s,\"properties\":{\"osType\":\"Linux\","
             "\"restartPolicy\":\"OnFailure\",\"containers\":[{\"name\":\"workspace\","
             "\"properties\":{\"image\":\"%s\",\"resources\":{\"requests\":{\"cpu\":1,"
             "\"memoryInGB\":1}},\"ports\":[{\"port\":8080}]}}],\"ipAddress\":{\"type\":"
             "\"Public\",\"ports\":[{\"port\":8080}]}%s}}",
             top ? top : "", image, props ? props : "");
    return req(f, "PUT", url, b);
}

/* The provisioning state of `name` 2 s after its PUT (and the operation's code). */
static const char *settled(fx_t *f, const char *name, char *code, size_t n)
{
    g_now += 2000;
    char url[512];
    snprintf(url, sizeof(url), CG_PATH "/%s" ACI_V, name);
    assert_int_equal(req(f, "GET", url, NULL), 200);
    code[0] = '\0';
    const cJSON *ev = at(f->j, "properties.containers.0.properties.instanceView.events");
    const cJSON *e;
    cJSON_ArrayForEach(e, ev)
    {
        if (jstr(e, "message") && strstr(jstr(e, "message"), "is not accessible"))
            snprintf(code, n, "InaccessibleImage");
    }
    return jstr(f->j, "properties.provisioningState");
}

static void expect(fx_t *f, const char *name, const char *want_prov)
{
    char code[64];
    const char *p = settled(f, name, code, sizeof code);
    if (!p || strcmp(p, want_prov) != 0)
        fail_msg("%s: provisioningState %s, wanted %s", name, p ? p : "(none)", want_prov);
    if (strcmp(want_prov, "Failed") == 0)
        assert_string_equal(code, "InaccessibleImage");
}

static void test_registry_credentials(void **state)
{
    (void)state;
    fx_t *f = fx_cloud(0, PUBLIC_SCOPE);
    assert_int_equal(req(f, "POST", "/_azsim/aci",
                         "{\"registries\":[{\"server\":\"pw.azurecr.io\",\"username\":\"u\","
                         "\"password\":\"right\"},{\"server\":\"mi.azurecr.io\",\"identities\":"
                         "[\"" MI "\"]},{\"server\":\"docker.io\",\"username\":\"hub\","
                         "\"password\":\"hubpw\"}]}"),
                     200);
    /* No credential, a wrong one, the right one. */
    assert_int_equal(put(f, "g-none", "pw.azurecr.io/ws:1", NULL, NULL), 201);
    expect(f, "g-none", "Failed");
    assert_int_equal(put(f, "g-wrong", "pw.azurecr.io/ws:1", NULL,
                         ",\"imageRegistryCredentials\":[{\"server\":\"pw.azurecr.io\","
                         "\"username\":\"u\",\"password\":\"wrong\"}]"),
                     201);
    expect(f, "g-wrong", "Failed");
    assert_int_equal(put(f, "g-user", "pw.azurecr.io/ws:1", NULL,
                         ",\"imageRegistryCredentials\":[{\"server\":\"pw.azurecr.io\","
                         "\"username\":\"v\",\"password\":\"right\"}]"),
                     201);
    expect(f, "g-user", "Failed");
    assert_int_equal(put(f, "g-right", "PW.azurecr.io/ws:1", NULL,
                         ",\"imageRegistryCredentials\":[{\"server\":\"pw.AZURECR.io\","
                         "\"username\":\"u\",\"password\":\"right\"}]"),
                     201);
    expect(f, "g-right", "Succeeded");
    /* GET never shows the password. */
    assert_null(at(f->j, "properties.imageRegistryCredentials.0.password"));
    assert_string_equal(jstr(f->j, "properties.imageRegistryCredentials.0.username"), "u");
    /* An allowed identity works only when the group holds it. */
    assert_int_equal(put(f, "g-mi-missing", "mi.azurecr.io/ws:1", NULL,
                         ",\"imageRegistryCredentials\":[{\"server\":\"mi.azurecr.io\","
                         "\"identity\":\"" MI "\"}]"),
                     201);
    expect(f, "g-mi-missing", "Failed");
    assert_int_equal(
        put(f, "g-mi", "mi.azurecr.io/ws:1",
            ",\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"" MI "\":{}}}",
            ",\"imageRegistryCredentials\":[{\"server\":\"mi.azurecr.io\","
            "\"identity\":\"" MI "\"}]"),
        201);
    expect(f, "g-mi", "Succeeded");
    assert_string_equal(jstr(f->j, "identity.type"), "UserAssigned");
    assert_int_equal(
        put(f, "g-mi-other", "mi.azurecr.io/ws:1",
            ",\"identity\":{\"type\":\"UserAssigned\",\"userAssignedIdentities\":{\"" MI "x\":{}}}",
            ",\"imageRegistryCredentials\":[{\"server\":\"mi.azurecr.io\","
            "\"identity\":\"" MI "x\"}]"),
        201);
    expect(f, "g-mi-other", "Failed");
    /* Docker Hub listed as docker.io: its short names need the credential. */
    assert_int_equal(put(f, "g-hub", "library/node:20", NULL, NULL), 201);
    expect(f, "g-hub", "Failed");
    /* An unlisted registry is public. */
    assert_int_equal(put(f, "g-pub", "ghcr.io/x/ws:1", NULL, NULL), 201);
    expect(f, "g-pub", "Succeeded");
    /* The settings show no password, and a malformed list changes nothing. */
    assert_int_equal(req(f, "GET", "/_azsim/aci", NULL), 200);
    assert_string_equal(jstr(f->j, "registries.0.password"), "<set>");
    assert_null(strstr(f->r.body.data, "right"));
    assert_int_equal(req(f, "POST", "/_azsim/aci", "{\"registries\":[{\"username\":\"u\"}]}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/aci", "{\"registries\":{}}"), 400);
    assert_int_equal(req(f, "POST", "/_azsim/aci",
                         "{\"registries\":[{\"server\":\"a.io\",\"identities\":[1]}]}"),
                     400);
    assert_int_equal(req(f, "GET", "/_azsim/aci", NULL), 200);
    assert_string_equal(jstr(f->j, "registries.1.server"), "mi.azurecr.io");
    fx_free(f);
}

static void test_token_scope_of_the_cloud(void **state)
{
    (void)state;
    fx_t *f = fx_cloud(1, CHINA_SCOPE);
    assert_int_equal(req(f, "POST", "/tenant1/oauth2/v2.0/token",
                         "grant_type=client_credentials&client_id=app1&client_secret=s&"
                         "" PUBLIC_SCOPE),
                     400);
    assert_string_equal(jstr(f->j, "error"), "invalid_resource");
    assert_non_null(strstr(jstr(f->j, "error_description"),
                           "AADSTS500011: The resource principal named "
                           "https://management.azure.com was not found in the tenant named "
                           "tenant1."));
    /* IMDS: the same, with and without the trailing '/'. */
    assert_int_equal(req_h(f, "GET",
                           "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                           "https%3A%2F%2Fmanagement.azure.com%2F",
                           NULL, "metadata", "true"),
                     400);
    assert_string_equal(jstr(f->j, "error"), "invalid_resource");
    assert_int_equal(req_h(f, "GET",
                           "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                           "https%3A%2F%2Fmanagement.chinacloudapi.cn",
                           NULL, "metadata", "true"),
                     200);
    /* A 401 points at the cloud's own authority. */
    char saved[2048];
    snprintf(saved, sizeof saved, "%s", f->token);
    f->token[0] = '\0';
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 401);
    const char *www = azsim_resp_header(&f->r, "WWW-Authenticate");
    assert_non_null(www);
    assert_non_null(strstr(www, "authorization_uri=\"https://login.chinacloudapi.cn/common\""));
    snprintf(f->token, sizeof f->token, "%s", saved);
    assert_int_equal(req(f, "GET", CG_PATH ACI_V, NULL), 200);
    fx_free(f);
}

static void test_private_ip_has_no_fqdn(void **state)
{
    (void)state;
    fx_t *f = fx_cloud(0, PUBLIC_SCOPE);
    char url[512], b[2048];
    snprintf(url, sizeof(url), CG_PATH "/vnet1" ACI_V);
    snprintf(b, sizeof b,
             "{\"location\":\"eastus\",\"properties\":{\"osType\":\"Linux\",\"containers\":[{"
             "\"name\":\"w\",\"properties\":{\"image\":\"x/y\",\"resources\":{\"requests\":{"
             "\"cpu\":1,\"memoryInGB\":1}}}}],\"ipAddress\":{\"type\":\"Private\",\"ports\":[{"
             "\"port\":8080}],\"dnsNameLabel\":\"vnet-label-1\"},\"subnetIds\":[{\"id\":\"/"
             "subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.Network/"
             "virtualNetworks/v/subnets/s\"}]}}");
    assert_int_equal(req(f, "PUT", url, b), 201);
    g_now += 2000;
    assert_int_equal(req(f, "GET", url, NULL), 200);
    assert_string_equal(jstr(f->j, "properties.provisioningState"), "Succeeded");
    const char *ip = jstr(f->j, "properties.ipAddress.ip");
    assert_non_null(ip);
    assert_int_equal(strncmp(ip, "10.", 3), 0);
    assert_null(at(f->j, "properties.ipAddress.fqdn"));
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_credentials),
        cmocka_unit_test(test_token_scope_of_the_cloud),
        cmocka_unit_test(test_private_ip_has_no_fqdn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
