/*
 * libFuzzer target for pkg/spec: arbitrary bytes are parsed as JSON and
 * decoded as a spec, once with a path id and once as a full-sync item
 * (id in the body). Accepted specs go through every other function, and
 * the invariants that must hold for any input are checked: a decoded spec
 * equals its copy, encodes to JSON that decodes back to itself when it
 * holds no secrets, and never prints a secret value.
 */
#include "base/base.h"
#include "spec/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const regions[] = {"eastus", "westeurope"};
static const char *const images[] = {"node", "python"};
static const spec_rules_t rules = {regions, 2, images, 2, 1024};
static const int ports[] = {8080};
static const unsigned char key[] = "fuzz-spec-hash-key";

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static void exercise(const cJSON *obj, const char *id, const char *prefix)
{
    env_spec_t s, c, back;
    spec_error_t err;
    char id_out[SPEC_ID_MAX + 1];
    char h1[17], h2[17], digest[65];
    spec_hash_input_t in = {.image = "img:1",
                            .ports = ports,
                            .nports = 1,
                            .mount_path = "/home/dev8",
                            .key = NULL,
                            .keylen = 0};
    cJSON *j;
    char *txt;

    if (spec_decode(obj, id, &rules, prefix, &s, id_out, &err) != 0) {
        check(err.code[0] != '\0' && err.message[0] != '\0', "error filled");
        check(strlen(err.field) < sizeof(err.field), "field terminated");
        return;
    }
    check(spec_id_valid(id_out), "decoded id valid");
    for (size_t i = 1; i < s.nenv; i++)
        check(strcmp(s.env[i - 1].name, s.env[i].name) < 0, "env sorted and unique");
    for (size_t i = 1; i < s.nsecret; i++)
        check(strcmp(s.secret_env[i - 1].name, s.secret_env[i].name) < 0, "secrets sorted");

    spec_copy(&c, &s);
    check(spec_equal(&s, &c), "copy equal");

    spec_hash(&s, &in, h1);
    spec_hash(&c, &in, h2);
    check(strcmp(h1, h2) == 0, "hash stable");
    in.key = key;
    in.keylen = sizeof(key) - 1;
    spec_hash(&s, &in, h1);
    for (size_t i = 0; i < s.nsecret; i++)
        spec_secret_digest(key, sizeof(key) - 1, s.secret_env[i].value, digest);

    j = spec_to_json(&s);
    check(j != NULL, "to_json");
    txt = cJSON_PrintUnformatted(j);
    check(txt != NULL, "print");
    /* Every secret is listed by name with the redacted marker only. */
    {
        const cJSON *se = cJSON_GetObjectItemCaseSensitive(j, "secretEnv");
        size_t n = 0;

        check(cJSON_IsObject(se), "secretEnv object");
        for (const cJSON *e = se->child; e; e = e->next, n++)
            check(cJSON_IsString(e) && strcmp(e->valuestring, SPEC_REDACTED) == 0,
                  "secret value redacted");
        check(n == s.nsecret, "every secret listed");
    }
    if (s.nsecret == 0) {
        check(spec_decode(j, id_out, &rules, "", &back, NULL, &err) == 0, "round trip decodes");
        check(spec_equal(&s, &back), "round trip equal");
        spec_release(&back);
    }
    cJSON_free(txt);
    cJSON_Delete(j);
    spec_release(&c);
    spec_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *obj;

    (void)spec_json_has_nul((const char *)data, size);
    obj = cJSON_ParseWithLength((const char *)data, size);
    if (!obj)
        return 0;
    exercise(obj, "env1", "");
    exercise(obj, NULL, "items[0].");
    cJSON_Delete(obj);
    return 0;
}
