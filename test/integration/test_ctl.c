/*
 * dev8ctl end to end: the real bin/dev8ctl against the real agent and
 * azsim. Golden table and describe outputs with a fixed clock (--now), JSON
 * and YAML outputs parsed back, apply/diff/prune round trips, watch through
 * an agent restart (410, re-list), every error path with its exit status
 * and one-line message, --help of every command, the completion script.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"
#include "base/base.h"
#include "ctl/ctl.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECRET "s3cr3t-ctl-VALUE"
#define MAX_ARGS 32

typedef struct run {
    int status;
    char *out, *err;
} run_t;

static char g_server[64];
static char *g_seen; /* every output, for the secret check */

static char *slurp_path(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    d8_buf_t b;
    d8_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        d8_buf_append(&b, chunk, n);
    fclose(f);
    return d8_buf_detach(&b, NULL);
}

static void seen_add(const char *s)
{
    size_t a = g_seen ? strlen(g_seen) : 0;
    g_seen = realloc(g_seen, a + strlen(s) + 1);
    memcpy(g_seen + a, s, strlen(s) + 1);
}

/* Starts dev8ctl with args (NULL-terminated) and extra environment
 * entries; stdout/stderr to files named after tag, stdin from in_path
 * (NULL: /dev/null). */
static pid_t spawn(const char *tag, const char *const env[], const char *in_path,
                   const char *const args[])
{
    char out[512], err[512];
    snprintf(out, sizeof out, "%s/ctl-%s.out", th_tmpdir(), tag);
    snprintf(err, sizeof err, "%s/ctl-%s.err", th_tmpdir(), tag);
    char *bin = th_bin("dev8ctl");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int i = open(in_path ? in_path : "/dev/null", O_RDONLY);
        dup2(o, 1);
        dup2(e, 2);
        dup2(i, 0);
        char home[512];
        snprintf(home, sizeof home, "HOME=%s/home", th_tmpdir());
        putenv(home);
        unsetenv("XDG_CONFIG_HOME");
        setenv("DEV8_SERVER", g_server, 1);
        setenv("DEV8_API_KEY", TA_KEY1, 1);
        setenv("NO_COLOR", "1", 1);
        for (size_t k = 0; env && env[k]; k++)
            putenv((char *)env[k]);
        char *argv[MAX_ARGS + 2] = {bin};
        for (size_t k = 0; args[k] && k < MAX_ARGS; k++)
            argv[k + 1] = (char *)args[k];
        execv(bin, argv);
        _exit(127);
    }
    free(bin);
    return pid;
}

static run_t collect(const char *tag, pid_t pid)
{
    run_t r = {0};
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    char p[512];
    snprintf(p, sizeof p, "%s/ctl-%s.out", th_tmpdir(), tag);
    r.out = slurp_path(p);
    snprintf(p, sizeof p, "%s/ctl-%s.err", th_tmpdir(), tag);
    r.err = slurp_path(p);
    seen_add(r.out);
    seen_add(r.err);
    return r;
}

static run_t ctl_env_in(const char *const env[], const char *in, const char *const args[])
{
    return collect("run", spawn("run", env, in, args));
}

#define CTL(...) ctl_env_in(NULL, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CTL_ENV(env, ...) ctl_env_in(env, NULL, (const char *const[]){__VA_ARGS__, NULL})

static void run_free(run_t *r)
{
    free(r->out);
    free(r->err);
}

/* The run must exit with status and print one "error: ..." line equal to
 * want_err (when not NULL). */
static void expect(run_t *r, int status, const char *want_err)
{
    if (r->status != status || (want_err && strcmp(r->err, want_err) != 0))
        fail_msg("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwanted stderr:\n%s", r->status,
                 status, r->out, r->err, want_err ? want_err : "-");
}

static void expect_out(run_t *r, const char *want)
{
    if (r->status != 0 || strcmp(r->out, want) != 0)
        fail_msg("exit %d\nstdout:\n%s\nwanted:\n%s\nstderr:\n%s", r->status, r->out, want, r->err);
}

/* s with every occurrence of from replaced by to; malloc'd. */
static char *replace(const char *s, const char *from, const char *to)
{
    d8_buf_t b;
    d8_buf_init(&b);
    size_t n = strlen(from);
    const char *p;
    while (n && (p = strstr(s, from)) != NULL) {
        d8_buf_append(&b, s, (size_t)(p - s));
        d8_buf_puts(&b, to);
        s = p + n;
    }
    d8_buf_puts(&b, s);
    return d8_buf_detach(&b, NULL);
}

/* RFC 3339 times -> "<time>", "(... ago)" -> "(<age> ago)". malloc'd. */
static char *normalise_times(const char *s)
{
    d8_buf_t b;
    d8_buf_init(&b);
    while (*s) {
        int y, mo, d, h, mi, se, n = 0;
        if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &se, &n) == 6 &&
            n == 20) {
            d8_buf_puts(&b, "<time>");
            s += n;
        } else if (*s == '(' && strstr(s, " ago)") && strchr(s, '\n') > strstr(s, " ago)")) {
            d8_buf_puts(&b, "(<age> ago)");
            s = strstr(s, " ago)") + 5;
        } else {
            d8_buf_putc(&b, *s++);
        }
    }
    return d8_buf_detach(&b, NULL);
}

static ta_rc_t *rc_of(void **state)
{
    ta_rc_t *c = *state;
    snprintf(g_server, sizeof g_server, "http://127.0.0.1:%d", c->agent.api_port);
    return c;
}

static cJSON *wait_phase(ta_rc_t *c, const char *id, const char *phase)
{
    cJSON *o = ta_env_wait(&c->agent, id, ta_is_phase, phase, 15000);
    assert_non_null(o);
    return o;
}

/* The --now that makes the AGE of an object created at obj.createdAt read
 * 3h25m (30 s into that minute, so a second either way reads the same). */
static void now_for(const cJSON *obj, char *out, size_t n)
{
    long long t;
    assert_int_equal(ctl_parse_time(ta_str(obj, "createdAt"), &t), 0);
    snprintf(out, n, "--now=%lld", t + 3 * 3600 + 25 * 60 + 30);
}

static void put_two(ta_rc_t *c)
{
    char *b = ta_spec("alice", "first", "eastus",
                      "\"powerState\":\"Stopped\",\"env\":{\"FOO\":\"bar\"},"
                      "\"secretEnv\":{\"TOKEN\":\"" SECRET "\"}");
    assert_int_equal(ta_put(&c->agent, "g1", b), 201);
    free(b);
    b = ta_spec("bob", "second", "eastus", NULL);
    assert_int_equal(ta_put(&c->agent, "g2", b), 201);
    free(b);
    cJSON_Delete(wait_phase(c, "g1", "STOPPED"));
    cJSON_Delete(wait_phase(c, "g2", "RUNNING"));
}

static void test_get_golden(void **state)
{
    ta_rc_t *c = rc_of(state);
    put_two(c);
    cJSON *g1 = ta_env_get(&c->agent, "g1", NULL), *g2 = ta_env_get(&c->agent, "g2", NULL);
    char now[64];
    now_for(g1, now, sizeof now);
    run_t r = CTL("get", "environments", now);
    char *got = replace(r.out, ta_str(g2, "status.fqdn"), "<fqdn>");
    free(r.out);
    r.out = got;
    expect_out(&r, "ID  USER   REGION  PHASE    READY          AGE    FQDN\n"
                   "g1  alice  eastus  STOPPED  False/Stopped  3h25m  <none>\n"
                   "g2  bob    eastus  RUNNING  True           3h25m  <fqdn>\n");
    run_free(&r);
    r = CTL("get", "env", "g1", "-o", "wide", now);
    expect_out(&r, "ID  USER   REGION  PHASE    READY          AGE    FQDN    NAME   IMAGE  CPU  "
                   "MEMORY  STORAGE  POWER    GEN\n"
                   "g1  alice  eastus  STOPPED  False/Stopped  3h25m  <none>  first  node   2    "
                   "4Gi     20Gi     Stopped  1/1\n");
    run_free(&r);
    /* Filters go to the server. */
    r = CTL("get", "envs", "-l", "userId=bob", "-o", "name");
    expect_out(&r, "g2\n");
    run_free(&r);
    r = CTL("get", "envs", "--phase", "STOPPED", "-o", "name");
    expect_out(&r, "g1\n");
    run_free(&r);
    r = CTL("get", "envs", "--region", "westeurope");
    expect(&r, 0, "No environments found.\n");
    assert_string_equal(r.out, "");
    run_free(&r);
    /* Colour only on a terminal (script(1) gives it one), never with
     * NO_COLOR. */
    char *bin = th_bin("dev8ctl");
    for (int no_color = 0; no_color < 2; no_color++) {
        char cmd[1024], p[600];
        snprintf(p, sizeof p, "%s/tty%d.out", th_tmpdir(), no_color);
        snprintf(cmd, sizeof cmd,
                 "%s DEV8_SERVER=%s DEV8_API_KEY=%s HOME=/nonexistent script -qec '%s get envs' "
                 "/dev/null > %s 2>&1",
                 no_color ? "NO_COLOR=1" : "env -u NO_COLOR", g_server, TA_KEY1, bin, p);
        assert_int_equal(system(cmd), 0);
        char *tty = slurp_path(p);
        assert_non_null(strstr(tty, "g2  bob    eastus  "));
        if (no_color)
            assert_null(strchr(tty, '\033'));
        else
            assert_non_null(strstr(tty, "\033[32mRUNNING\033[0m  True"));
        free(tty);
    }
    free(bin);
    cJSON_Delete(g1);
    cJSON_Delete(g2);
}

static void test_json_yaml_read_back(void **state)
{
    ta_rc_t *c = rc_of(state);
    put_two(c);
    run_t r = CTL("get", "environments", "-o", "json");
    assert_int_equal(r.status, 0);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 2);
    assert_string_equal(ta_str(j, "items.0.id"), "g1");
    assert_string_equal(ta_str(j, "items.0.spec.secretEnv.TOKEN"), "<redacted>");
    cJSON_Delete(j);
    run_free(&r);
    r = CTL("get", "environment", "g1", "-o", "yaml");
    assert_int_equal(r.status, 0);
    char err[256];
    cJSON *y = ctl_yaml_parse("out", r.out, strlen(r.out), err, sizeof err);
    assert_non_null(y);
    cJSON *api = ta_env_get(&c->agent, "g1", NULL);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(api, "spec"), cJSON_GetObjectItem(y, "spec"), 1));
    assert_string_equal(ta_str(y, "createdAt"), ta_str(api, "createdAt"));
    assert_string_equal(ta_str(y, "status.phase"), "STOPPED");
    cJSON_Delete(y);
    cJSON_Delete(api);
    run_free(&r);
    /* status, orphans, version in JSON and YAML. */
    r = CTL("status", "-o", "yaml");
    y = ctl_yaml_parse("out", r.out, strlen(r.out), err, sizeof err);
    assert_non_null(y);
    assert_string_equal(ta_str(y, "controller"), TA_RC_CONTROLLER);
    assert_true(ta_num(y, "environments.total") == 2);
    const char *server_version = ta_str(y, "version");
    char want[256];
    snprintf(want, sizeof want, "\nServer Version: %s\n", server_version);
    run_t v = CTL("version");
    assert_int_equal(v.status, 0);
    assert_int_equal(strncmp(v.out, "Client Version: ", 16), 0);
    assert_non_null(strstr(v.out, want));
    run_free(&v);
    v = CTL("version", "--client", "-o", "json");
    cJSON *vj = cJSON_Parse(v.out);
    assert_non_null(ta_str(vj, "clientVersion"));
    assert_null(ta_str(vj, "serverVersion"));
    cJSON_Delete(vj);
    run_free(&v);
    cJSON_Delete(y);
    run_free(&r);
    r = CTL("get", "orphans", "-o", "json");
    j = cJSON_Parse(r.out);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "items")));
    cJSON_Delete(j);
    run_free(&r);
    r = CTL("status");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Controller:    " TA_RC_CONTROLLER "\n"));
    assert_non_null(strstr(r.out, "Environments:  2 RUNNING=1 STOPPED=1\n"));
    assert_non_null(strstr(r.out, "  REGION      LAST LIST"));
    run_free(&r);
}

/* Describe without the parts other servers may add (containers, usage,
 * events, cost), times normalised. */
static char *describe_core(const char *out)
{
    char *n = normalise_times(out);
    char *cut = strstr(n, "\nContainers:\n");
    if (!cut)
        cut = strstr(n, "\nUsage:\n");
    if (!cut)
        cut = strstr(n, "\nEvents:\n");
    if (cut)
        cut[1] = 0;
    d8_buf_t b;
    d8_buf_init(&b);
    for (char *line = strtok(n, "\n"); line; line = strtok(NULL, "\n"))
        if (!strstr(line, "Cost Per Hour:") && !strstr(line, "Auto Stop At:") &&
            !strstr(line, "  Observed:"))
            d8_buf_printf(&b, "%s\n", line);
    free(n);
    return d8_buf_detach(&b, NULL);
}

static void test_describe_golden(void **state)
{
    ta_rc_t *c = rc_of(state);
    put_two(c);
    cJSON *g1 = ta_env_get(&c->agent, "g1", NULL);
    char now[64];
    now_for(g1, now, sizeof now);
    run_t r = CTL("describe", "environment", "g1", now);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Created:          "));
    assert_non_null(strstr(r.out, " (3h25m ago)\n"));
    char *core = describe_core(r.out);
    assert_string_equal(core, "ID:               g1\n"
                              "Generation:       1 (observed 1)\n"
                              "Created:          <time> (<age> ago)\n"
                              "Updated:          <time> (<age> ago)\n"
                              "Spec:\n"
                              "  Name:             first\n"
                              "  User:             alice\n"
                              "  Region:           eastus\n"
                              "  Image:            node\n"
                              "  CPU:              2 cores\n"
                              "  Memory:           4 GB\n"
                              "  Storage:          20 GB\n"
                              "  Power State:      Stopped\n"
                              "  Auto Stop:        off\n"
                              "  Storage Policy:   Delete\n"
                              "  Update Policy:    Immediate\n"
                              "  Env:\n"
                              "    FOO=bar\n"
                              "  Secret Env:\n"
                              "    TOKEN (value not shown)\n"
                              "Status:\n"
                              "  Phase:            STOPPED\n"
                              "  FQDN:             <none>\n"
                              "  VS Code URL:      <none>\n"
                              "  Public IP:        <none>\n"
                              "  Container Group:  <none>\n"
                              "  File Share:       dev8-g1\n"
                              "  Last Activity:    <none>\n"
                              "  Last Reconcile:   <time> (<age> ago)\n"
                              "  Last Error:       <none>\n"
                              "  Retry:            <none>\n"
                              "Conditions:\n"
                              "  TYPE    STATUS  REASON            LAST TRANSITION       MESSAGE\n"
                              "  Ready   False   Stopped           <time>  stopped; the file share "
                              "keeps the workspace\n"
                              "  Synced  True    ReconcileSuccess  <time>  <none>\n");
    free(core);
    /* Events: the agent's own, newest phase change included. */
    assert_non_null(strstr(r.out, "\nEvents:\n  AGE "));
    assert_non_null(strstr(r.out, "PhaseChanged"));
    /* The test config has no price table: no cost is made up. */
    assert_non_null(strstr(r.out, "  Estimated Cost:   <none> (no price table for the region)\n"));
    run_free(&r);
    cJSON_Delete(g1);
}

static char *write_tmp(const char *name, const char *text)
{
    return th_write_file(name, text);
}

static double cpu_of(ta_rc_t *c, const char *id)
{
    cJSON *o = ta_env_get(&c->agent, id, NULL);
    double v = o ? ta_num(o, "spec.cpuCores") : -1;
    cJSON_Delete(o);
    return v;
}

static void test_apply_diff(void **state)
{
    ta_rc_t *c = rc_of(state);
    put_two(c);
    char *f = write_tmp("apply.yaml", "id: g1\nuserId: alice\nname: first\ncloudRegion: eastus\n"
                                      "env: {FOO: bar}\ncpuCores: 1\n---\n"
                                      "- id: p1\n  userId: carol\n  name: third\n"
                                      "  cloudRegion: eastus\n");
    run_t r = CTL("diff", "-f", f);
    char want[2048];
    snprintf(want, sizeof want,
             "--- environment/g1 (server)\n+++ environment/g1 (%s)\n@@ -2,7 +2,7 @@\n"
             " name: first\n cloudRegion: eastus\n baseImage: node\n"
             "-cpuCores: 2\n+cpuCores: 1\n memoryGB: 4\n storageGB: 20\n powerState: Stopped\n"
             "--- /dev/null\n+++ environment/p1 (%s)\n@@ -0,0 +1,12 @@\n+userId: carol\n"
             "+name: third\n+cloudRegion: eastus\n+baseImage: node\n+cpuCores: 2\n"
             "+memoryGB: 4\n+storageGB: 20\n+powerState: Running\n+env: {}\n"
             "+autoStopMinutes: 0\n+storagePolicy: Delete\n+updatePolicy: Immediate\n",
             f, f);
    expect(&r, 1, "");
    assert_string_equal(r.out, want);
    run_free(&r);
    /* Dry runs change nothing. */
    r = CTL("apply", "-f", f, "--dry-run=client");
    expect_out(&r, "environment/g1 configured (dry run)\nenvironment/p1 created (dry run)\n");
    run_free(&r);
    r = CTL("apply", "-f", f, "--dry-run=server");
    expect(&r, 1,
           "error: the server does not offer a server-side dry run (it refused the dryRun "
           "parameter; nothing was changed); use --dry-run=client\n");
    run_free(&r);
    assert_true(cpu_of(c, "g1") == 2);
    assert_true(cpu_of(c, "p1") == -1);
    r = CTL("apply", "-f", f);
    expect_out(&r, "environment/g1 configured\nenvironment/p1 created\n");
    run_free(&r);
    assert_true(cpu_of(c, "g1") == 1);
    assert_true(cpu_of(c, "p1") == 2);
    r = CTL("diff", "-f", f);
    expect(&r, 0, "");
    assert_string_equal(r.out, "");
    run_free(&r);
    r = CTL("apply", "-f", f);
    expect_out(&r, "environment/g1 unchanged\nenvironment/p1 unchanged\n");
    run_free(&r);
    /* get -o yaml applies back unchanged (the redacted secrets stay). */
    r = CTL("get", "env", "g1", "-o", "yaml");
    char *back = write_tmp("back.yaml", r.out);
    run_free(&r);
    r = CTL("apply", "-f", back);
    expect_out(&r, "environment/g1 unchanged\n");
    run_free(&r);
    cJSON *g1 = ta_env_get(&c->agent, "g1", NULL);
    assert_string_equal(ta_str(g1, "spec.secretEnv.TOKEN"), "<redacted>");
    assert_true(ta_num(g1, "generation") == 2);
    cJSON_Delete(g1);
    /* JSON on stdin; a refused item is located in the input. */
    char *in = write_tmp("in.json", "{\"items\": [\n\t{\"id\": \"p2\", \"userId\": \"d\", "
                                    "\"name\": \"n\", \"cloudRegion\": \"eastus\"},\n"
                                    "\t{\"id\": \"p3\", \"userId\": \"d\", \"name\": \"n\", "
                                    "\"cloudRegion\": \"eastus\", \"cpuCores\": 5}\n]}\n");
    r = ctl_env_in(NULL, in, (const char *const[]){"apply", "-f", "-", NULL});
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "environment/p2 created\n");
    assert_non_null(strstr(r.err, "error: <stdin>:3:2: environment/p3: InvalidSpec: "));
    assert_non_null(strstr(r.err, "(field cpuCores)\n"));
    assert_int_equal(ta_count(r.err, "\n"), 1);
    run_free(&r);
    free(in);
    free(back);
    free(f);
}

static void test_prune(void **state)
{
    ta_rc_t *c = rc_of(state);
    put_two(c);
    char *f = write_tmp("prune.yaml", "items:\n  - id: g1\n    userId: alice\n    name: first\n"
                                      "    cloudRegion: eastus\n    powerState: Stopped\n"
                                      "    env: {FOO: bar}\n");
    /* Without a terminal and without --yes: nothing happens. */
    run_t r = CTL("apply", "-f", f, "--prune");
    char want[1024];
    snprintf(want, sizeof want,
             "apply --prune removes 1 environment(s) that %s leaves out: g2\n"
             "error: not confirmed: nothing was changed (--yes confirms without asking)\n",
             f);
    expect(&r, 1, want);
    run_free(&r);
    r = CTL("apply", "-f", f, "--prune", "--dry-run=client");
    expect_out(&r, "environment/g1 unchanged (dry run)\nenvironment/g2 pruned (dry run)\n");
    run_free(&r);
    cJSON *g2 = ta_env_get(&c->agent, "g2", NULL);
    assert_string_equal(ta_str(g2, "status.phase"), "RUNNING");
    cJSON_Delete(g2);
    r = CTL("apply", "-f", f, "--prune", "--yes");
    expect_out(&r, "full sync: 0 created, 0 updated, 1 unchanged, 1 removed\n"
                   "environment/g2 pruned\n");
    run_free(&r);
    g2 = ta_env_get(&c->agent, "g2", NULL);
    assert_string_equal(ta_str(g2, "status.phase"), "DELETING");
    assert_string_equal(ta_str(ta_condition(g2, "Ready"), "reason"), "RemovedFromDesiredSet");
    cJSON_Delete(g2);
    /* Nothing left to prune: no question asked. */
    r = CTL("apply", "-f", f, "--prune");
    expect_out(&r, "full sync: 0 created, 0 updated, 1 unchanged, 0 removed\n");
    run_free(&r);
    free(f);
}

static void test_mutations(void **state)
{
    ta_rc_t *c = rc_of(state);
    put_two(c);
    run_t r = CTL("stop", "g2");
    expect_out(&r, "environment/g2 stopping\n");
    run_free(&r);
    cJSON_Delete(wait_phase(c, "g2", "STOPPED"));
    r = CTL("start", "g2");
    expect_out(&r, "environment/g2 starting\n");
    run_free(&r);
    cJSON_Delete(wait_phase(c, "g2", "RUNNING"));
    r = CTL("restart", "g2");
    expect_out(&r, "environment/g2 restarting\n");
    run_free(&r);
    r = CTL("delete", "environment", "g1");
    expect_out(&r, "environment/g1 deleted (its resources are being removed)\n");
    run_free(&r);
    assert_int_equal(ta_env_wait_gone(&c->agent, "g1", 15000), 0);
    r = CTL("reaper", "resume");
    expect_out(&r, "reaper was not suspended\n");
    run_free(&r);
    r = CTL("get", "orphans");
    assert_int_equal(r.status, 0);
    assert_true(strcmp(r.out, "No orphans.\n") == 0 || strncmp(r.out, "KIND ", 5) == 0);
    run_free(&r);
    r = CTL("start", "nope");
    expect(&r, 1, "error: NotFound: no environment with this id\n");
    run_free(&r);
}

/* Reads the watch's output until it contains needle (10 s). */
static int wait_output(const char *tag, const char *needle)
{
    char p[512];
    snprintf(p, sizeof p, "%s/ctl-%s", th_tmpdir(), tag);
    for (int i = 0; i < 500; i++) {
        char *s = slurp_path(p);
        int found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return 0;
        ta_sleep_ms(20);
    }
    char *s = slurp_path(p);
    fprintf(stderr, "%s never showed \"%s\":\n%s\n", p, needle, s);
    free(s);
    return -1;
}

static void test_watch_restart(void **state)
{
    ta_rc_t *c = rc_of(state);
    char *b = ta_spec("u", "w", "eastus", NULL);
    assert_int_equal(ta_put(&c->agent, "w1", b), 201);
    pid_t pid = spawn("watch", NULL, NULL, (const char *const[]){"watch", NULL});
    assert_int_equal(wait_output("watch.out", "ADDED      w1 "), 0);
    /* A change is followed. */
    th_resp_t stop;
    assert_int_equal(ta_req(&c->agent, "POST", "/api/v1/environments/w1/stop", NULL, &stop), 0);
    assert_int_equal(stop.status, 202);
    th_resp_free(&stop);
    assert_int_equal(wait_output("watch.out", "STOPPED"), 0);
    /* The agent restarts without a state file: its resourceVersions start
     * anew, the watch's resume is answered 410, it lists again (w1 is gone
     * from the new agent) and follows the new agent. */
    int st;
    assert_int_equal(ta_restart(&c->agent, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(ta_wait_ready(&c->agent, 10000), 0);
    assert_int_equal(wait_output("watch.err", "(410 Gone); listing again"), 0);
    assert_int_equal(wait_output("watch.out", "DELETED    w1 "), 0);
    assert_int_equal(ta_put(&c->agent, "w2", b), 201);
    assert_int_equal(wait_output("watch.out", "ADDED      w2 "), 0);
    kill(pid, SIGTERM);
    run_t r = collect("watch", pid);
    assert_int_equal(r.status, 0);
    /* The header, then the agent's environment events (event: EVENT on
     * the stream) as lines of their own: w1's create and stop at least. */
    assert_true(ta_count(r.out, "EVENT ") >= 2);
    assert_non_null(strstr(r.out, "\nEVENT      w1 "));
    run_free(&r);
    /* -o json: one object per line. */
    pid = spawn("watchj", NULL, NULL, (const char *const[]){"watch", "w2", "-o", "json", NULL});
    assert_int_equal(wait_output("watchj.out", "\n"), 0);
    kill(pid, SIGTERM);
    r = collect("watchj", pid);
    assert_int_equal(r.status, 0);
    cJSON *line = cJSON_Parse(r.out);
    assert_non_null(line);
    assert_string_equal(ta_str(line, "type"), "ADDED");
    assert_string_equal(ta_str(line, "object.id"), "w2");
    cJSON_Delete(line);
    run_free(&r);
    free(b);
}

static void test_bad_input(void **state)
{
    ta_rc_t *c = rc_of(state);
    run_t r = CTL("get", "envs", "--bogus");
    expect(&r, 2, "error: unknown flag --bogus for get (see 'dev8ctl get --help')\n");
    run_free(&r);
    r = CTL("frobnicate");
    expect(&r, 2, "error: unknown command \"frobnicate\" (see 'dev8ctl --help')\n");
    run_free(&r);
    r = CTL("logs", "x", "--tail", "0");
    expect(&r, 2, "error: --tail 0: a number from 1 to 10000 (see 'dev8ctl logs --help')\n");
    run_free(&r);
    r = CTL("get", "envs", "-o", "xml");
    expect(&r, 2, "error: -o xml: not an output format of get (see 'dev8ctl get --help')\n");
    run_free(&r);
    char *f = write_tmp("bad.yaml", "id: b1\nuserId: u\nname: [unclosed\ncloudRegion: eastus\n");
    r = CTL("apply", "-f", f);
    char want[1024];
    snprintf(want, sizeof want,
             "error: %s:4:12: did not find expected ',' or ']' while parsing a flow sequence\n", f);
    expect(&r, 1, want);
    run_free(&r);
    free(f);
    r = CTL("apply", "-f", "/nonexistent/x.yaml");
    expect(&r, 1, "error: /nonexistent/x.yaml: cannot open: No such file or directory\n");
    run_free(&r);
    /* Unreachable server. */
    int port = th_free_port();
    char srv[64];
    snprintf(srv, sizeof srv, "http://127.0.0.1:%d", port);
    r = CTL("get", "envs", "--server", srv);
    snprintf(want, sizeof want, "error: cannot reach the server %s: Couldn't connect to server\n",
             srv);
    expect(&r, 1, want);
    run_free(&r);
    r = CTL("watch", "--server", srv);
    snprintf(want, sizeof want, "error: cannot reach the server %s\n", srv);
    expect(&r, 1, want);
    run_free(&r);
    /* Wrong key: the server's code and message. */
    r = CTL_ENV(((const char *const[]){"DEV8_API_KEY=wrong-key", NULL}), "get", "envs");
    expect(&r, 1, "error: Unauthorized: a valid Authorization: Bearer <key> header is required\n");
    run_free(&r);
    r = CTL("describe", "env", "missing");
    expect(&r, 1, "error: NotFound: no environment with this id\n");
    run_free(&r);
    /* Events and logs of the real agent: what happened, and the workspace
     * container's log lines once its group exists. */
    char *b = ta_spec("u", "n", "eastus", NULL);
    assert_int_equal(ta_put(&c->agent, "l1", b), 201);
    free(b);
    r = CTL("logs", "l1");
    if (r.status != 0) /* no group yet: Azure's side is said plainly */
        expect(&r, 1,
               "error: NoContainerGroup: the environment has no container group (stopped "
               "before one was created, or not created yet)\n");
    run_free(&r);
    cJSON_Delete(wait_phase(c, "l1", "RUNNING"));
    r = CTL("events", "l1");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "AGE  TYPE"));
    assert_non_null(strstr(r.out, "PhaseChanged"));
    assert_non_null(strstr(r.out, "RUNNING"));
    run_free(&r);
    r = CTL("logs", "l1", "--tail", "5");
    assert_int_equal(r.status, 0);
    assert_true(strlen(r.out) > 0);
    run_free(&r);
    static const char *const what[] = {"events", "logs"};
    for (int i = 0; i < 2; i++) {
        r = CTL(what[i], "missing");
        expect(&r, 1, "error: NotFound: no environment with this id\n");
        run_free(&r);
    }
}

static void test_config_contexts(void **state)
{
    (void)rc_of(state);
    char dir[512], cfg[600];
    snprintf(dir, sizeof dir, "%s/xdg/dev8", th_tmpdir());
    char mk[600];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
    assert_int_equal(system(mk), 0);
    snprintf(cfg, sizeof cfg,
             "current-context: itest\ncontexts:\n  - name: itest\n    server: %s\n"
             "    apiKeyEnv: ITEST_KEY\n  - name: broken\n    server: %s\n    apiKey: x\n",
             g_server, g_server);
    char path[600];
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(cfg, fp);
    fclose(fp);
    char xdg[600];
    snprintf(xdg, sizeof xdg, "XDG_CONFIG_HOME=%s/xdg", th_tmpdir());
    /* No DEV8_SERVER / DEV8_API_KEY: the context gives both. */
    const char *const env[] = {xdg, "DEV8_SERVER=", "DEV8_API_KEY=", "ITEST_KEY=" TA_KEY2, NULL};
    run_t r = CTL_ENV(env, "get", "envs", "-o", "json");
    assert_int_equal(r.status, 0);
    run_free(&r);
    r = CTL_ENV(env, "get", "envs", "--context", "broken");
    char want[1024];
    snprintf(want, sizeof want,
             "error: %s:6:5: apiKey: a key written in the config file is refused; use apiKeyEnv "
             "or apiKeyFile (or set allowInlineApiKeys: true and chmod 600 the file)\n",
             path);
    expect(&r, 1, want);
    run_free(&r);
    r = CTL_ENV(env, "get", "envs", "--context", "nope");
    snprintf(want, sizeof want, "error: %s: no context named \"nope\"\n", path);
    expect(&r, 1, want);
    run_free(&r);
}

static void test_help_and_completion(void **state)
{
    (void)rc_of(state);
    static const char *const cmds[] = {
        "get",    "describe", "apply", "diff",   "delete", "start",   "stop",       "restart",
        "events", "logs",     "watch", "status", "reaper", "version", "completion", "help"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        run_t r = CTL(cmds[i], "--help");
        char want[64];
        snprintf(want, sizeof want, "\nUsage: dev8ctl %s", cmds[i]);
        if (r.status != 0 || !strstr(r.out, want))
            fail_msg("%s --help: exit %d\n%s", cmds[i], r.status, r.out);
        run_free(&r);
    }
    run_t r = CTL("--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "  watch       Follow changes"));
    run_free(&r);
    r = CTL("completion", "fish");
    expect(&r, 2,
           "error: completion needs one argument: bash or zsh (see 'dev8ctl completion "
           "--help')\n");
    run_free(&r);
    r = CTL("completion", "bash");
    assert_int_equal(r.status, 0);
    char *script = write_tmp("completion.bash", r.out);
    run_free(&r);
    /* Source it and complete a few words with the real bash. */
    char *bin = th_bin("dev8ctl");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", bin);
    *strrchr(dir, '/') = 0;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "PATH='%s':$PATH bash -c 'source %s; "
             "COMP_WORDS=(dev8ctl ge); COMP_CWORD=1; _dev8ctl; echo \"${COMPREPLY[*]}\"; "
             "COMP_WORDS=(dev8ctl get \"\"); COMP_CWORD=2; _dev8ctl; echo \"${COMPREPLY[*]}\"; "
             "COMP_WORDS=(dev8ctl apply --p); COMP_CWORD=2; _dev8ctl; echo \"${COMPREPLY[*]}\"; "
             "COMP_WORDS=(dev8ctl describe environment \"\"); COMP_CWORD=3; _dev8ctl; "
             "echo \"${COMPREPLY[*]}\"' > %s/completion.out 2>&1",
             dir, script, th_tmpdir());
    const char *const env_srv[] = {NULL};
    (void)env_srv;
    char put_env[128];
    snprintf(put_env, sizeof put_env, "DEV8_SERVER=%s", g_server);
    putenv(put_env);
    setenv("DEV8_API_KEY", TA_KEY1, 1);
    char *bb = ta_spec("u", "n", "eastus", NULL);
    assert_int_equal(ta_put(&((ta_rc_t *)*state)->agent, "comp1", bb), 201);
    free(bb);
    assert_int_equal(system(cmd), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/completion.out", th_tmpdir());
    char *out = slurp_path(p);
    assert_string_equal(out, "get\nenvironments orphans\n--prune\ncomp1\n");
    free(out);
    free(bin);
    free(script);
    r = CTL("completion", "zsh");
    assert_int_equal(r.status, 0);
    assert_int_equal(strncmp(r.out, "#compdef dev8ctl\n", 17), 0);
    assert_non_null(strstr(r.out, "compdef _dev8ctl dev8ctl"));
    run_free(&r);
}

/* ---- the routes other teams are adding, from a stand-in server ----------
 *
 * Until the agent serves /events and /logs (and status.containers, usage),
 * a forked stand-in answers them in the agreed shapes, so that dev8ctl's
 * follow loop, events table and describe sections run end to end.
 */
#define MOCK_ENV                                                                                   \
    "{\"id\":\"m1\",\"generation\":1,\"createdAt\":\"2026-11-27T12:00:00Z\","                      \
    "\"updatedAt\":\"2026-11-27T12:00:00Z\",\"spec\":{\"userId\":\"u\",\"name\":\"n\","            \
    "\"cloudRegion\":\"eastus\"},\"status\":{\"phase\":\"RUNNING\",\"observedGeneration\":1,"      \
    "\"conditions\":[],\"autoStopTime\":\"2026-11-27T13:00:00Z\",\"estimatedCostPerHour\":0.1234," \
    "\"containers\":[{\"name\":\"workspace\",\"state\":\"Running\",\"restartCount\":2,"            \
    "\"lastExitCode\":137,\"lastRestartTime\":\"2026-11-27T12:30:00Z\"}],"                         \
    "\"usage\":{\"runningSeconds\":3600,\"cpuCoreSeconds\":7200,\"memoryGBSeconds\":14400,"        \
    "\"storageGBHours\":20,\"estimatedCost\":0.25,\"currency\":\"USD\","                           \
    "\"since\":\"2026-11-27T12:00:00Z\"}}}"
#define MOCK_EVENTS                                                                                \
    "{\"environmentId\":\"m1\",\"items\":[{\"time\":\"2026-11-27T12:00:05Z\",\"type\":\"Normal\"," \
    "\"reason\":\"PhaseChanged\",\"message\":\"CREATING -> RUNNING\",\"source\":\"agent\","        \
    "\"count\":1},{\"time\":\"2026-11-27T12:30:00Z\",\"type\":\"Warning\",\"reason\":"             \
    "\"Restarted\","                                                                               \
    "\"message\":\"exit code 137\",\"source\":\"azure\",\"count\":2}]}"

/* Answers one request on fd: the n-th GET of the logs gets logs[n]. */
static void mock_answer(int fd, int *nlogs)
{
    static const char *const logs[] = {"a\nb\n", "a\nb\n", "a\nb\nc\n", "b\nc\nd\n"};
    char req[4096] = "";
    size_t len = 0;
    while (len < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t n = read(fd, req + len, sizeof req - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = 0;
    }
    const char *body = "{\"error\":{\"code\":\"NotFound\",\"message\":\"no such route\"}}";
    const char *type = "application/json";
    int status = 404;
    if (strncmp(req, "GET /api/v1/environments/m1/logs?tail=3 ", 40) == 0) {
        int i = *nlogs < 3 ? *nlogs : 3;
        (*nlogs)++;
        body = logs[i];
        type = "text/plain; charset=utf-8";
        status = 200;
    } else if (strncmp(req, "GET /api/v1/watch ", 18) == 0) {
        body = "id: 7\nevent: ADDED\ndata: " MOCK_ENV "\n\n: heartbeat\n\n"
               "event: EVENT\ndata: {\"environmentId\":\"m1\",\"event\":{\"time\":"
               "\"2026-11-27T12:30:00Z\",\"type\":\"Warning\",\"reason\":\"Restarted\","
               "\"message\":\"exit code 137\",\"source\":\"azure\",\"count\":2}}\n\n";
        type = "text/event-stream";
        status = 200;
    } else if (strncmp(req, "GET /api/v1/environments/m1/events ", 35) == 0) {
        body = MOCK_EVENTS;
        status = 200;
    } else if (strncmp(req, "GET /api/v1/environments/m1 ", 28) == 0) {
        body = MOCK_ENV;
        status = 200;
    }
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, type, strlen(body));
    if (write(fd, head, (size_t)hl) < 0 || write(fd, body, strlen(body)) < 0)
        return;
}

/* A forked stand-in on a free port; its pid. */
static pid_t mock_start(int *port)
{
    *port = th_free_port();
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 16), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int nlogs = 0;
        for (;;) {
            int fd = accept(ls, NULL, NULL);
            if (fd < 0)
                _exit(0);
            mock_answer(fd, &nlogs);
            close(fd);
        }
    }
    close(ls);
    return pid;
}

static void test_offered_routes(void **state)
{
    (void)state;
    int port;
    pid_t mock = mock_start(&port);
    snprintf(g_server, sizeof g_server, "http://127.0.0.1:%d", port);
    /* logs -f: every poll prints only what is new. */
    pid_t pid =
        spawn("logs", NULL, NULL,
              (const char *const[]){"logs", "m1", "--tail", "3", "-f", "--interval", "1", NULL});
    assert_int_equal(wait_output("logs.out", "d\n"), 0);
    kill(pid, SIGTERM);
    run_t r = collect("logs", pid);
    expect_out(&r, "a\nb\nc\nd\n");
    run_free(&r);
    r = CTL("events", "m1", "--now=2026-11-27T13:00:00Z");
    expect_out(&r, "AGE  TYPE     REASON        SOURCE  COUNT  MESSAGE\n"
                   "59m  Normal   PhaseChanged  agent   1      CREATING -> RUNNING\n"
                   "30m  Warning  Restarted     azure   2      exit code 137\n");
    run_free(&r);
    r = CTL("events", "m1", "-o", "json");
    cJSON *j = cJSON_Parse(r.out);
    assert_string_equal(ta_str(j, "items.1.reason"), "Restarted");
    cJSON_Delete(j);
    run_free(&r);
    r = CTL("describe", "env", "m1", "--now=2026-11-27T13:00:00Z");
    assert_int_equal(r.status, 0);
    const char *want = "  Auto Stop At:     2026-11-27T13:00:00Z (0s ago)\n"
                       "  Last Error:       <none>\n"
                       "  Retry:            <none>\n"
                       "  Cost Per Hour:    0.1234\n"
                       "Conditions:\n"
                       "  TYPE  STATUS  REASON  LAST TRANSITION  MESSAGE\n"
                       "Containers:\n"
                       "  NAME       STATE    RESTARTS  LAST EXIT  LAST RESTART\n"
                       "  workspace  Running  2         137        2026-11-27T12:30:00Z\n"
                       "Usage:\n"
                       "  Since:            2026-11-27T12:00:00Z (60m ago)\n"
                       "  Running:          3600 s\n"
                       "  CPU:              7200 core-s\n"
                       "  Memory:           14400 GB-s\n"
                       "  Storage:          20 GB-h\n"
                       "  Estimated Cost:   0.2500 USD\n"
                       "Events:\n"
                       "  AGE  TYPE     REASON        SOURCE  COUNT  MESSAGE\n"
                       "  59m  Normal   PhaseChanged  agent   1      CREATING -> RUNNING\n"
                       "  30m  Warning  Restarted     azure   2      exit code 137\n";
    if (!strstr(r.out, want))
        fail_msg("describe:\n%s\nwanted the end:\n%s", r.out, want);
    run_free(&r);
    /* Watch streams carry `event: EVENT` lines too. */
    pid = spawn("watchev", NULL, NULL, (const char *const[]){"watch", "m1", NULL});
    assert_int_equal(wait_output("watchev.out", "exit code 137\n"), 0);
    kill(pid, SIGTERM);
    r = collect("watchev", pid);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ADDED      m1                        RUNNING  "));
    assert_non_null(strstr(r.out, "EVENT      m1                        Warning    Restarted    "
                                  "           exit code 137\n"));
    run_free(&r);
    kill(mock, SIGKILL);
    waitpid(mock, NULL, 0);
}

/* Runs last: no output of any test carried the secret value. */
static void test_no_secret_printed(void **state)
{
    (void)state;
    assert_non_null(g_seen);
    assert_null(strstr(g_seen, SECRET));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, ta_rc_setup, ta_rc_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_get_golden),
        T(test_json_yaml_read_back),
        T(test_describe_golden),
        T(test_apply_diff),
        T(test_prune),
        T(test_mutations),
        T(test_watch_restart),
        T(test_bad_input),
        T(test_config_contexts),
        T(test_help_and_completion),
        cmocka_unit_test(test_offered_routes),
        cmocka_unit_test(test_no_secret_printed),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_seen);
    return rc;
}
