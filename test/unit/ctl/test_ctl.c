/*
 * Unit tests of pkg/ctl (dev8ctl): the input parser (every accepted shape,
 * every refused one with its file:line:column), YAML output read back,
 * ages and times, the environment table, the unified diff and the desired
 * spec it compares, the logs -f overlap, the config/context rules, and the
 * exit status when stdout cannot be written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "ctl/ctl.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_err[1024];

static int parse(const char *text, ctl_items_t *items)
{
    g_err[0] = 0;
    return ctl_input_parse("f.yaml", text, strlen(text), items, g_err, sizeof g_err);
}

/* Parsing must fail with exactly this error. */
static void parse_fails(const char *text, const char *want)
{
    ctl_items_t items;
    int rc = parse(text, &items);
    ctl_items_release(&items);
    if (rc == 0 || strcmp(g_err, want) != 0)
        fail_msg("input %s\n  got rc %d err \"%s\"\n  want \"%s\"", text, rc, g_err, want);
}

static void test_input_shapes(void **state)
{
    (void)state;
    ctl_items_t it;
    /* One flat environment: id leaves the spec, types as YAML reads them. */
    assert_int_equal(parse("id: a1\nuserId: u\nname: \"2\"\ncpuCores: 0.5\nenv: {X: \"1\"}\n", &it),
                     0);
    assert_int_equal(it.n, 1);
    assert_string_equal(it.v[0].id, "a1");
    assert_null(cJSON_GetObjectItem(it.v[0].spec, "id"));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(it.v[0].spec, "name")));
    assert_true(cJSON_GetObjectItem(it.v[0].spec, "cpuCores")->valuedouble == 0.5);
    assert_int_equal(it.v[0].line, 1);
    ctl_items_release(&it);
    /* Found by fuzz_ctl_input: a literal beyond a double's range stays its
     * text (JSON has no infinity; the server names the field), and a nested
     * spec repeating the item's id loses it. */
    assert_int_equal(parse("id: a\ncpuCores: 6e6868\nmemoryGB: 66666666666\n", &it), 0);
    assert_string_equal(cJSON_GetObjectItem(it.v[0].spec, "cpuCores")->valuestring, "6e6868");
    assert_true(cJSON_GetObjectItem(it.v[0].spec, "memoryGB")->valuedouble == 66666666666.0);
    ctl_items_release(&it);
    assert_int_equal(parse("id: e\nspec:\n  id: e\n  name: x\n", &it), 0);
    assert_null(cJSON_GetObjectItem(it.v[0].spec, "id"));
    ctl_items_release(&it);
    /* Several documents, a list inside one, {items: [...]}. */
    assert_int_equal(parse("id: a\n---\n- id: b\n- id: c\n---\nitems:\n  - id: d\n", &it), 0);
    assert_int_equal(it.n, 4);
    assert_string_equal(it.v[3].id, "d");
    assert_int_equal(it.v[1].line, 3);
    assert_int_equal(it.v[1].col, 3);
    ctl_items_release(&it);
    /* JSON with tabs between tokens (YAML forbids tabs as indentation). */
    assert_int_equal(parse("{\n\t\"items\": [\n\t\t{\"id\": \"j1\", \"cpuCores\": 2},\n"
                           "\t\t{\"id\": \"j2\"}\n\t]\n}\n",
                           &it),
                     0);
    assert_int_equal(it.n, 2);
    assert_int_equal(it.v[1].line, 4);
    ctl_items_release(&it);
    /* An Environment as `get -o yaml` prints it: id and spec, status ignored,
     * the redacted secrets dropped (sticky: the stored ones stay). */
    assert_int_equal(parse("id: e1\ngeneration: 3\nspec:\n  userId: u\n  secretEnv:\n"
                           "    A: <redacted>\n    B: \"<redacted>\"\nstatus:\n  phase: RUNNING\n",
                           &it),
                     0);
    assert_int_equal(it.n, 1);
    assert_string_equal(cJSON_GetObjectItem(it.v[0].spec, "userId")->valuestring, "u");
    assert_null(cJSON_GetObjectItem(it.v[0].spec, "secretEnv"));
    assert_null(cJSON_GetObjectItem(it.v[0].spec, "status"));
    ctl_items_release(&it);
    /* Real secrets are kept as given. */
    assert_int_equal(parse("id: e1\nsecretEnv: {A: s3cret}\n", &it), 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(it.v[0].spec, "secretEnv"), "A")->valuestring,
        "s3cret");
    ctl_items_release(&it);
}

static void test_input_errors(void **state)
{
    (void)state;
    parse_fails("id: a\nname: x\nname: y\n", "f.yaml:3:1: name: duplicate key");
    parse_fails("id: a\nname: [1, 2\n", "f.yaml:3:1: did not find expected ',' or ']' while "
                                        "parsing a flow sequence");
    parse_fails("id: a\nenv: &x {A: b}\nother: *x\n", "f.yaml:2:6: anchors and tags are not "
                                                      "accepted");
    parse_fails("id: a\nother: *x\n", "f.yaml:2:8: aliases are not accepted");
    parse_fails("id: !!str a\n", "f.yaml:1:5: anchors and tags are not accepted");
    parse_fails("userId: u\n", "f.yaml:1:1: id: an environment needs a string id");
    parse_fails("- id: a\n- id: b\n- id: a\n", "f.yaml:3:3: id: a appears twice (first at line 1)");
    /* Found by fuzz_ctl_input: a nested spec naming another id. */
    parse_fails("id: e\nspec:\n  id: f\n  name: x\n",
                "f.yaml:3:7: spec.id: differs from the environment's id e");
    parse_fails("", "f.yaml:1:1: no environments in the input");
    parse_fails("# nothing\n", "f.yaml:1:1: no environments in the input");
    parse_fails("- 5\n", "f.yaml:1:3: an environment must be a mapping");
    parse_fails("id: a\nsecretEnv:\n  A: <redacted>\n  B: real\n",
                "f.yaml:3:3: secretEnv.A is \"<redacted>\": give every value, or leave "
                "secretEnv out to keep the stored secrets");
    parse_fails("{\"id\": \"a\",\n \"x\": 1,,}\n", "f.yaml:2:9: did not find expected node "
                                                   "content while parsing a flow node");
    parse_fails("id: a\n\tname: b\n", "f.yaml:2:1: found a tab character that violates "
                                      "indentation while scanning a plain scalar");
    char longkey[400] = "id: a\n";
    memset(longkey + 6, 'k', 300);
    strcpy(longkey + 306, ": 1\n");
    parse_fails(longkey, "f.yaml:2:1: a key must be shorter than 256 bytes and hold no NUL "
                         "character");
    parse_fails("id: a\n!!str x: 1\n", "f.yaml:2:1: anchors and tags are not accepted");
    /* Nesting beyond 64 levels. */
    char deep[400] = "id: a\nx: ";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    parse_fails(deep, "f.yaml:2:68: nesting deeper than 64 levels");
}

static void test_yaml_round_trip(void **state)
{
    (void)state;
    const char *json =
        "{\"s\":[\"true\",\"2\",\"\",\"a: b\",\"2026-12-06T23:13:43Z\",\"yes\",\"null\",\"- x\","
        "\"#c\",\"multi\\nline\",\"caf\\u00e9 \\u2603\",\"<redacted>\",\"  pad  \",\"0.5\",\"~\"],"
        "\"n\":[0,-1,0.5,1e300,123456789012345],\"b\":[true,false,null],\"e\":{},\"ea\":[],"
        "\"nested\":{\"k y\":{\"x\":[{\"a\":1}]}}}";
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    char *y = ctl_yaml_emit(v);
    char err[256];
    cJSON *back = ctl_yaml_parse("emitted", y, strlen(y), err, sizeof err);
    if (!back || !cJSON_Compare(v, back, 1))
        fail_msg("YAML did not read back:\n%s\nerr: %s", y, back ? "-" : err);
    /* Timestamps and numbers-as-strings are quoted for YAML 1.1 readers. */
    assert_non_null(strstr(y, "\"2026-12-06T23:13:43Z\""));
    assert_non_null(strstr(y, "\"yes\""));
    assert_non_null(strstr(y, "e: {}"));
    free(y);
    cJSON_Delete(back);
    cJSON_Delete(v);
}

static void test_times(void **state)
{
    (void)state;
    long long t;
    assert_int_equal(ctl_parse_time("2026-11-27T12:00:00Z", &t), 0);
    assert_int_equal(t, 1795780800LL);
    assert_int_equal(ctl_parse_time("2026-11-27T12:00:00.250Z", &t), 0);
    assert_int_equal(t, 1795780800LL);
    assert_int_equal(ctl_parse_time("2026-11-27T12:00:00+02:00", &t), -1);
    assert_int_equal(ctl_parse_time("yesterday", &t), -1);
    assert_int_equal(ctl_parse_time(NULL, &t), -1);
    static const struct {
        long long s;
        const char *want;
    } ages[] = {{-5, "0s"},       {0, "0s"},      {59, "59s"},     {119, "119s"},
                {125, "2m5s"},    {600, "10m"},   {10799, "179m"}, {10800, "3h"},
                {12300, "3h25m"}, {28800, "8h"},  {172799, "47h"}, {172800, "2d"},
                {183600, "2d3h"}, {691200, "8d"}, {63072000, "2y"}};
    for (size_t i = 0; i < sizeof ages / sizeof ages[0]; i++) {
        char out[32];
        ctl_age(ages[i].s, out, sizeof out);
        if (strcmp(out, ages[i].want) != 0)
            fail_msg("age(%lld) = %s, want %s", ages[i].s, out, ages[i].want);
    }
}

static void test_env_table(void **state)
{
    (void)state;
    cJSON *items = cJSON_Parse(
        "[{\"id\":\"a\",\"generation\":2,\"createdAt\":\"2026-11-27T12:00:00Z\","
        "\"spec\":{\"userId\":\"us\\u00e9r\",\"cloudRegion\":\"eastus\",\"name\":\"n\\u001b[31m\","
        "\"cpuCores\":0.5,\"memoryGB\":1,\"storageGB\":20,\"baseImage\":\"node\","
        "\"powerState\":\"Running\"},"
        "\"status\":{\"phase\":\"RUNNING\",\"observedGeneration\":2,\"fqdn\":\"a.example\","
        "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Available\"}]}},"
        "{\"id\":\"bbbbbbbb\",\"createdAt\":\"2026-11-27T11:00:00Z\",\"spec\":null,"
        "\"status\":{\"phase\":\"DELETING\",\"fqdn\":null,\"conditions\":[{\"type\":\"Ready\","
        "\"status\":\"False\",\"reason\":\"Deleting\"}]}}]");
    char *t = ctl_env_table(items, 0, 1795780800LL + 90, 0);
    assert_string_equal(t, "ID        USER    REGION  PHASE     READY           AGE  FQDN\n"
                           "a         usér    eastus  RUNNING   True            90s  a.example\n"
                           "bbbbbbbb  <none>  <none>  DELETING  False/Deleting  61m  <none>\n");
    free(t);
    /* Colour codes wrap the phase outside the padding; the control
     * character of the name is neutralised in the wide table. */
    t = ctl_env_table(items, 1, 1795780800LL + 90, 1);
    assert_non_null(strstr(t, "\033[32mRUNNING\033[0m   "));
    assert_null(strstr(t, "\033[31m"));
    assert_non_null(strstr(t, "n [31m"));
    assert_non_null(strstr(t, "0.5     1Gi     20Gi     Running  2/2\n"));
    free(t);
    cJSON_Delete(items);
}

static void test_unified_diff(void **state)
{
    (void)state;
    char *d = ctl_unified_diff("a", "1\n2\n3\n", "b", "1\n2\n3\n");
    assert_string_equal(d, "");
    free(d);
    d = ctl_unified_diff("a", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "b",
                         "1\n2\nX\n4\n5\n6\n7\n8\n9\n10\n11\n12\nY\n");
    assert_string_equal(d, "--- a\n+++ b\n"
                           "@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+X\n 4\n 5\n 6\n"
                           "@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+Y\n");
    free(d);
    d = ctl_unified_diff("/dev/null", "", "b", "x\ny\n");
    assert_string_equal(d, "--- /dev/null\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n");
    free(d);
}

static void test_desired_spec(void **state)
{
    (void)state;
    cJSON *file = cJSON_Parse("{\"name\":\"n\",\"userId\":\"u\",\"cloudRegion\":\"eastus\","
                              "\"env\":{\"B\":\"2\",\"A\":\"1\"},\"bogus\":1}");
    cJSON *server = cJSON_Parse("{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
                                "\"baseImage\":\"node\",\"cpuCores\":2,\"memoryGB\":4,"
                                "\"storageGB\":20,\"powerState\":\"Stopped\",\"env\":{},"
                                "\"secretEnv\":{\"S\":\"<redacted>\"},\"autoStopMinutes\":0,"
                                "\"storagePolicy\":\"Delete\",\"updatePolicy\":\"Immediate\"}");
    cJSON *want = ctl_desired_spec(file, server);
    char *s = cJSON_PrintUnformatted(want);
    /* Defaults filled in, sticky powerState and secretEnv from the server,
     * env sorted, an unknown member kept visible at the end. */
    assert_string_equal(s, "{\"userId\":\"u\",\"name\":\"n\",\"cloudRegion\":\"eastus\","
                           "\"baseImage\":\"node\",\"cpuCores\":2,\"memoryGB\":4,\"storageGB\":20,"
                           "\"powerState\":\"Stopped\",\"env\":{\"A\":\"1\",\"B\":\"2\"},"
                           "\"secretEnv\":{\"S\":\"<redacted>\"},\"autoStopMinutes\":0,"
                           "\"storagePolicy\":\"Delete\",\"updatePolicy\":\"Immediate\","
                           "\"bogus\":1}");
    free(s);
    cJSON_Delete(want);
    /* A secret value in the file is never echoed. */
    cJSON_AddItemToObject(file, "secretEnv", cJSON_Parse("{\"T\":\"hunter2\"}"));
    want = ctl_desired_spec(file, NULL);
    s = cJSON_PrintUnformatted(want);
    assert_null(strstr(s, "hunter2"));
    assert_non_null(strstr(s, "\"powerState\":\"Running\""));
    free(s);
    cJSON_Delete(want);
    cJSON *canon = ctl_canonical_spec(server);
    cJSON_DeleteItemFromObject(file, "bogus");
    cJSON_DeleteItemFromObject(file, "secretEnv");
    cJSON_ReplaceItemInObject(file, "env", cJSON_CreateObject());
    want = ctl_desired_spec(file, server);
    assert_true(cJSON_Compare(canon, want, 1));
    cJSON_Delete(want);
    cJSON_Delete(canon);
    cJSON_Delete(file);
    cJSON_Delete(server);
}

static void test_logs_offset(void **state)
{
    (void)state;
    assert_int_equal(ctl_logs_new_offset("", "a\nb\n"), 0);
    assert_int_equal(ctl_logs_new_offset("a\nb\n", "a\nb\n"), 4);
    assert_int_equal(ctl_logs_new_offset("a\nb\nc\n", "b\nc\nd\n"), 4);
    assert_int_equal(ctl_logs_new_offset("a\nb\n", "x\ny\n"), 0);
    assert_int_equal(ctl_logs_new_offset("a\nb", "a\nb"), 3);
}

/* ---- config ------------------------------------------------------------ */

static char g_dir[256];

static int config_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/d8-ctl-unit-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    unsetenv("DEV8_SERVER");
    unsetenv("DEV8_API_KEY");
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", g_dir, 1);
    return 0;
}

static int config_teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static char *write_cfg(const char *name, const char *text, int mode)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, (mode_t)mode);
    return path;
}

static int resolve(const char *path, const char *ctx, const char *server, ctl_target_t *t)
{
    g_err[0] = 0;
    return ctl_config_resolve(path, ctx, server, t, g_err, sizeof g_err);
}

#define CFG                                                                                        \
    "current-context: local\n"                                                                     \
    "contexts:\n"                                                                                  \
    "  - name: local\n"                                                                            \
    "    server: http://127.0.0.1:9999/\n"                                                         \
    "    apiKeyEnv: T_LOCAL_KEY\n"                                                                 \
    "  - name: prod\n"                                                                             \
    "    server: https://agent.example\n"                                                          \
    "    apiKeyFile: prod.key\n"

static void test_config_contexts(void **state)
{
    (void)state;
    ctl_target_t t;
    /* No file at all: the default server, no key. */
    assert_int_equal(resolve(NULL, NULL, NULL, &t), 0);
    assert_string_equal(t.server, "http://127.0.0.1:8080");
    assert_null(t.key);
    ctl_target_release(&t);
    char *p = d8_xstrdup(write_cfg("config.yaml", CFG, 0644));
    write_cfg("prod.key", "prod-secret\n", 0600);
    setenv("T_LOCAL_KEY", "local-secret", 1);
    assert_int_equal(resolve(p, NULL, NULL, &t), 0);
    assert_string_equal(t.server, "http://127.0.0.1:9999");
    assert_string_equal(t.key, "local-secret");
    assert_string_equal(t.context, "local");
    ctl_target_release(&t);
    /* --context; the key file is relative to the config's directory. */
    assert_int_equal(resolve(p, "prod", NULL, &t), 0);
    assert_string_equal(t.server, "https://agent.example");
    assert_string_equal(t.key, "prod-secret");
    ctl_target_release(&t);
    /* --server elsewhere: the context's key does not follow it... */
    assert_int_equal(resolve(p, NULL, "http://other:1", &t), 0);
    assert_string_equal(t.server, "http://other:1");
    assert_null(t.key);
    ctl_target_release(&t);
    /* ...unless the context is named explicitly, or DEV8_API_KEY is set. */
    assert_int_equal(resolve(p, "prod", "http://other:1", &t), 0);
    assert_string_equal(t.key, "prod-secret");
    ctl_target_release(&t);
    setenv("DEV8_SERVER", "http://env:2", 1);
    setenv("DEV8_API_KEY", "env-key", 1);
    assert_int_equal(resolve(p, NULL, NULL, &t), 0);
    assert_string_equal(t.server, "http://env:2");
    assert_string_equal(t.key, "env-key");
    ctl_target_release(&t);
    unsetenv("DEV8_SERVER");
    unsetenv("DEV8_API_KEY");
    /* The default path under XDG_CONFIG_HOME. */
    char xdg[400];
    snprintf(xdg, sizeof xdg, "%s/xdg", g_dir);
    mkdir(xdg, 0700);
    strcat(xdg, "/dev8");
    mkdir(xdg, 0700);
    write_cfg("xdg/dev8/config.yaml",
              "contexts: [{name: x, server: \"http://xdg:3\"}]\n"
              "current-context: x\n",
              0600);
    xdg[strlen(xdg) - 5] = 0;
    setenv("XDG_CONFIG_HOME", xdg, 1);
    assert_int_equal(resolve(NULL, NULL, NULL, &t), 0);
    assert_string_equal(t.server, "http://xdg:3");
    ctl_target_release(&t);
    unsetenv("XDG_CONFIG_HOME");
    free(p);
}

static void cfg_fails(const char *text, int mode, const char *ctx, const char *want_suffix)
{
    char *p = d8_xstrdup(write_cfg("bad.yaml", text, mode));
    ctl_target_t t;
    int rc = resolve(p, ctx, NULL, &t);
    ctl_target_release(&t);
    char want[1024];
    snprintf(want, sizeof want, "%s%s", p, want_suffix);
    if (rc == 0 || strcmp(g_err, want) != 0)
        fail_msg("config %s\n  got rc %d \"%s\"\n want \"%s\"", text, rc, g_err, want);
    free(p);
}

static void test_config_errors(void **state)
{
    (void)state;
    cfg_fails("contexts:\n  - name: a\n    apiKey: inline-SECRET\ncurrent-context: a\n", 0600, NULL,
              ":2:5: apiKey: a key written in the config file is refused; use apiKeyEnv or "
              "apiKeyFile (or set allowInlineApiKeys: true and chmod 600 the file)");
    cfg_fails("allowInlineApiKeys: true\ncontexts:\n  - name: a\n    apiKey: inline-SECRET\n"
              "current-context: a\n",
              0644, NULL, ":3:5: apiKey: the file holds a key and others may read it (chmod 600)");
    cfg_fails("contexts:\n  - name: a\n    sever: http://x\n", 0600, NULL,
              ":2:5: sever: unknown key (a context takes name, server, apiKeyEnv, apiKeyFile)");
    cfg_fails("current-context: a\ncurrent-context: b\n", 0600, NULL,
              ":2:1: current-context: duplicate key");
    cfg_fails("contexts: [{name: a}]\ncurrent-context: b\n", 0600, NULL,
              ": no context named \"b\"");
    cfg_fails("contexts: [{name: a}]\n", 0600, "zz", ": no context named \"zz\"");
    cfg_fails("contexts: [{name: a, server: ftp://x}]\n", 0600, "a",
              ":1:12: server: must start with http:// or https://");
    cfg_fails("contexts: [{name: a, apiKeyEnv: T_UNSET_VAR}]\n", 0600, "a",
              ":1:12: apiKeyEnv: the environment variable T_UNSET_VAR is not set");
    cfg_fails("contexts: [{name: a}, {name: a}]\n", 0600, NULL,
              ":1:23: name: duplicate context "
              "name");
    char want[600];
    snprintf(want, sizeof want,
             ":1:12: apiKeyFile: cannot read %s/missing.key: No such file or directory", g_dir);
    cfg_fails("contexts: [{name: a, apiKeyFile: missing.key}]\n", 0600, "a", want);
    write_cfg("two.key", "a\nb\n", 0600);
    cfg_fails("contexts: [{name: a, apiKeyFile: two.key}]\n", 0600, "a",
              ":1:12: apiKeyFile: the file must hold one key on one line");
    cfg_fails("colour: red\n", 0600, NULL,
              ":1:1: colour: unknown key or wrong type (current-context: string, contexts: list, "
              "allowInlineApiKeys: true|false)");
    /* The inline key, once allowed, works and is never in an error. */
    char *p = d8_xstrdup(write_cfg("ok.yaml",
                                   "allowInlineApiKeys: true\ncurrent-context: a\n"
                                   "contexts: [{name: a, apiKey: inline-SECRET}]\n",
                                   0600));
    ctl_target_t t;
    assert_int_equal(resolve(p, NULL, NULL, &t), 0);
    assert_string_equal(t.key, "inline-SECRET");
    ctl_target_release(&t);
    /* A named config file that does not exist is an error. */
    char nope[600];
    snprintf(nope, sizeof nope, "%s.nope", p);
    assert_int_equal(resolve(nope, NULL, NULL, &t), -1);
    assert_non_null(strstr(g_err, "cannot read the config: No such file or directory"));
    free(p);
}

/* Output that cannot be written (stdout on /dev/full) fails the command. */
static void test_output_write_error(void **state)
{
    (void)state;
    int full = open("/dev/full", O_WRONLY);
    if (full < 0)
        skip();
    char a0[] = "dev8ctl", a1[] = "version", a2[] = "--client";
    char *argv[] = {a0, a1, a2, NULL};
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    dup2(full, STDOUT_FILENO);
    int rc = ctl_main(3, argv);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(full);
    clearerr(stdout);
    assert_int_equal(rc, CTL_EXIT_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_shapes),
        cmocka_unit_test(test_input_errors),
        cmocka_unit_test(test_yaml_round_trip),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_env_table),
        cmocka_unit_test(test_unified_diff),
        cmocka_unit_test(test_desired_spec),
        cmocka_unit_test(test_logs_offset),
        cmocka_unit_test(test_output_write_error),
        cmocka_unit_test_setup_teardown(test_config_contexts, config_setup, config_teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, config_setup, config_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
