/*
 * Fixture of the reaper integration tests (see reaper_fixture.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "reaper_fixture.h"

#include "agent_fixture.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

const char *const rf_region_name[RF_NREGIONS] = {"eastus", "westeurope"};
static const char *const region_rg[RF_NREGIONS] = {"rg-dev8-eastus", "rg-dev8-westeurope"};
static const char *const region_sa[RF_NREGIONS] = {"dev8eastus", "dev8westeurope"};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

int64_t rf_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rf_parse_time(const char *s)
{
    if (!s)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    char frac[16] = "";
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    const char *dot = strchr(s, '.');
    if (dot && sscanf(dot + 1, "%15[0-9]", frac) == 1) {
        /* Milliseconds: the first three digits, right-padded with zeros. */
        for (int i = 0; i < 3; i++)
            ms = ms * 10 + (frac[i] >= '0' && frac[i] <= '9' ? frac[i] - '0' : 0);
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

size_t rf_count_lines(const char *text, const char *const needles[])
{
    size_t n = 0;
    const char *line = text;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char *copy = xmalloc(len + 1);
        memcpy(copy, line, len);
        copy[len] = '\0';
        int all = 1;
        for (size_t i = 0; needles[i] && all; i++)
            all = strstr(copy, needles[i]) != NULL;
        n += (size_t)all;
        free(copy);
        line = eol ? eol + 1 : NULL;
    }
    return n;
}

/* --- processes ------------------------------------------------------------- */

static int start_sim(rf_t *f)
{
    static const char cfg[] =
        "# written by test/integration/reaper_fixture.c\n"
        "subscriptions: [\"" RF_SUB "\"]\n"
        "resourceGroups: [rg-dev8-eastus, rg-dev8-westeurope]\n"
        "storageAccounts: [dev8eastus, dev8westeurope]\n"
        "clients:\n"
        "  - {tenantId: " RF_TENANT ", clientId: " RF_CLIENT ", clientSecret: " RF_SECRET "}\n";
    f->sim_bin = th_bin("azsim");
    if (access(f->sim_bin, X_OK) != 0) {
        fprintf(stderr, "reaper fixture: %s is not an executable (run make first)\n", f->sim_bin);
        return -1;
    }
    f->sim_port = th_free_port();
    char name[64];
    snprintf(name, sizeof name, "rf-azsim-%d.yaml", f->sim_port);
    f->sim_cfg = th_write_file(name, cfg);
    if (f->sim_port <= 0 || !f->sim_cfg)
        return -1;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", f->sim_port);
    const char *argv[48] = {f->sim_bin,       "--listen", listen,        "--config", f->sim_cfg,
                            "--provision-ms", "300",      "--delete-ms", "200"};
    size_t n = 9;
    for (size_t i = 0; f->o.sim_args && f->o.sim_args[i] && n < 47; i++)
        argv[n++] = f->o.sim_args[i];
    argv[n] = NULL;
    snprintf(name, sizeof name, "rf-azsim-%d", f->sim_port);
    return th_start(&f->sim, name, (char *const *)argv, NULL, f->sim_port, "/_azsim/stats", 20000);
}

static int write_agent_config(rf_t *f)
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "# written by test/integration/reaper_fixture.c\n"
             "controller:\n"
             "  name: " RF_CONTROLLER "\n"
             "  listen: 127.0.0.1:%d\n"
             "  resyncSeconds: 1\n"
             "  statusRefreshSeconds: %d\n"
             "  shutdownGraceSeconds: 5\n"
             "azure:\n"
             "  auth: clientSecret\n"
             "  subscriptionId: \"" RF_SUB "\"\n"
             "  armEndpoint: http://127.0.0.1:%d\n"
             "  authorityHost: http://127.0.0.1:%d\n"
             "  imdsEndpoint: http://127.0.0.1:%d\n"
             "  regions:\n"
             "    - {name: eastus, resourceGroup: rg-dev8-eastus, storageAccount: dev8eastus}\n"
             "    - {name: westeurope, resourceGroup: rg-dev8-westeurope, "
             "storageAccount: dev8westeurope}\n"
             "images:\n"
             "  node: \"vaibhavsing/dev8-workspace:latest\"\n"
             "reaper:\n"
             "  enabled: true\n"
             "  dryRun: %s\n"
             "  containerGroupGraceSeconds: %d\n"
             "  fileShareGraceSeconds: %d\n"
             "  maxDeletesPerCycle: %d\n"
             "  maxOrphanFraction: %g\n"
             "log:\n"
             "  level: info\n",
             f->port, f->o.status_refresh, f->sim_port, f->sim_port, f->sim_port,
             f->o.dry_run ? "true" : "false", f->o.group_grace, f->o.share_grace, f->o.max_deletes,
             f->o.max_fraction);
    char name[64];
    snprintf(name, sizeof name, "rf-agent-%d.yaml", f->port);
    f->agent_cfg = th_write_file(name, yaml);
    return f->agent_cfg ? 0 : -1;
}

static int launch_agent(rf_t *f)
{
    if (f->runs >= RF_MAX_RUNS) {
        fprintf(stderr, "reaper fixture: too many agent runs\n");
        return -1;
    }
    char name[64];
    snprintf(name, sizeof name, "rf-agent-%d-%d", f->port, f->runs + 1);
    char *argv[] = {f->agent_bin, (char *)"--config", f->agent_cfg, NULL};
    char *env[] = {
        (char *)"AGENT_API_KEYS=" RF_KEY,          (char *)"AZURE_TENANT_ID=" RF_TENANT,
        (char *)"AZURE_CLIENT_ID=" RF_CLIENT,      (char *)"AZURE_CLIENT_SECRET=" RF_SECRET,
        (char *)"DEV8_SPEC_HASH_KEY=" RF_HASH_KEY, NULL};
    int rc = th_start(&f->agent, name, argv, env, f->port, "/healthz", 20000);
    snprintf(f->logs[f->runs], sizeof f->logs[0], "%s", f->agent.log_path);
    f->runs++;
    return rc;
}

static int ready_pred(void *ud)
{
    rf_t *f = ud;
    th_resp_t r;
    th_api(f->port, "GET", "/readyz", NULL, NULL, &r);
    long st = r.status;
    th_resp_free(&r);
    return st == 200;
}

int rf_start(rf_t *f, const rf_opts_t *o)
{
    memset(f, 0, sizeof *f);
    rf_opts_t d = {2, 4, 20, 1.0, 0, 5, NULL};
    if (o) {
        d = *o;
        if (!d.group_grace)
            d.group_grace = 2;
        if (!d.share_grace)
            d.share_grace = 4;
        if (!d.max_deletes)
            d.max_deletes = 20;
        if (d.max_fraction <= 0)
            d.max_fraction = 1.0;
        if (!d.status_refresh)
            d.status_refresh = 5;
    }
    f->o = d;
    if (start_sim(f) != 0)
        return -1;
    f->agent_bin = th_bin("dev8-agent");
    f->port = th_free_port();
    if (f->port <= 0 || write_agent_config(f) != 0 || launch_agent(f) != 0)
        return -1;
    if (th_wait_until(ready_pred, f, 20000) != 0) {
        fprintf(stderr, "reaper fixture: the agent never became ready\n");
        return -1;
    }
    return 0;
}

static void print_tail(const th_proc_t *p, const char *what, int rc)
{
    char *log = th_read_log(p);
    size_t len = strlen(log);
    fprintf(stderr, "reaper fixture: %s exit status %d; log tail:\n%s\n", what, rc,
            log + (len > 6000 ? len - 6000 : 0));
    free(log);
}

int rf_stop(rf_t *f)
{
    int bad = 0;
    if (f->agent.pid > 0) {
        int rc = th_stop(&f->agent, SIGTERM, 10000);
        if (rc != 0) {
            print_tail(&f->agent, "dev8-agent", rc);
            bad = 1;
        }
        f->agent.pid = 0;
    }
    if (f->sim.pid > 0) {
        int rc = th_stop(&f->sim, SIGTERM, 10000);
        if (rc != 0) {
            print_tail(&f->sim, "azsim", rc);
            bad = 1;
        }
        f->sim.pid = 0;
    }
    free(f->agent_bin);
    free(f->agent_cfg);
    free(f->sim_bin);
    free(f->sim_cfg);
    f->agent_bin = f->agent_cfg = f->sim_bin = f->sim_cfg = NULL;
    return bad ? -1 : 0;
}

int rf_agent_restart(rf_t *f, int sig, int *stop_status)
{
    int rc = th_stop(&f->agent, sig, 10000);
    if (stop_status)
        *stop_status = rc;
    if (sig == SIGTERM && rc != 0)
        print_tail(&f->agent, "dev8-agent (restart)", rc);
    return rf_agent_launch(f);
}

int rf_agent_launch(rf_t *f)
{
    if (launch_agent(f) != 0)
        return -1;
    if (th_wait_until(ready_pred, f, 20000) != 0) {
        fprintf(stderr, "reaper fixture: the restarted agent never became ready\n");
        return -1;
    }
    return 0;
}

static int listed_pred(void *ud)
{
    rf_t *f = ud;
    cJSON *st = rf_status(f);
    const cJSON *regions = ta_path(st, "regions");
    int n = 0, ok = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, regions)
    {
        n++;
        ok += ta_str(it, "lastListTime") != NULL;
    }
    cJSON_Delete(st);
    return n > 0 && ok == n;
}

int rf_wait_listed(rf_t *f, int timeout_ms)
{
    return th_wait_until(listed_pred, f, timeout_ms);
}

/* --- the agent's API ---------------------------------------------------------- */

long rf_api(rf_t *f, const char *method, const char *path, const char *body, cJSON **out)
{
    th_resp_t r;
    th_api(f->port, method, path, RF_KEY, body, &r);
    if (out)
        *out = r.body && r.len ? cJSON_ParseWithLength(r.body, r.len) : NULL;
    long st = r.status;
    th_resp_free(&r);
    return st;
}

char *rf_spec(int region, int running, int retain)
{
    char *s = xmalloc(256);
    snprintf(s, 256,
             "{\"userId\":\"u1\",\"name\":\"ws\",\"cloudRegion\":\"%s\",\"cpuCores\":1,"
             "\"memoryGB\":1,\"storageGB\":5,\"powerState\":\"%s\",\"storagePolicy\":\"%s\"}",
             rf_region_name[region], running ? "Running" : "Stopped", retain ? "Retain" : "Delete");
    return s;
}

long rf_put(rf_t *f, const char *id, int region, int running, int retain)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/environments/%s", id);
    char *body = rf_spec(region, running, retain);
    long st = rf_api(f, "PUT", path, body, NULL);
    free(body);
    return st;
}

long rf_delete(rf_t *f, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/environments/%s", id);
    return rf_api(f, "DELETE", path, NULL, NULL);
}

long rf_sync(rf_t *f, const char *const ids[], const int region[], const int running[],
             const int retain[], size_t n)
{
    size_t cap = 64 + n * 320, len = 0;
    char *body = xmalloc(cap);
    len += (size_t)snprintf(body, cap, "{\"items\":[");
    for (size_t i = 0; i < n; i++) {
        char *spec = rf_spec(region[i], running ? running[i] : 1, retain ? retain[i] : 0);
        len += (size_t)snprintf(body + len, cap - len, "%s{\"id\":\"%s\",%s", i ? "," : "", ids[i],
                                spec + 1);
        free(spec);
    }
    snprintf(body + len, cap - len, "]}");
    cJSON *out = NULL;
    long st = rf_api(f, "PUT", "/api/v1/environments", body, &out);
    if (st != 200)
        fprintf(stderr, "reaper fixture: full sync answered %ld\n", st);
    cJSON_Delete(out);
    free(body);
    return st;
}

cJSON *rf_status(rf_t *f)
{
    cJSON *j = NULL;
    if (rf_api(f, "GET", "/api/v1/status", NULL, &j) != 200) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

cJSON *rf_orphans(rf_t *f)
{
    cJSON *j = NULL;
    if (rf_api(f, "GET", "/api/v1/orphans", NULL, &j) != 200) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

const cJSON *rf_orphan(const cJSON *orphans, const char *kind, const char *env_id)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, ta_path(orphans, "items"))
    {
        const char *k = ta_str(it, "kind"), *e = ta_str(it, "envId");
        if (k && e && strcmp(k, kind) == 0 && strcmp(e, env_id) == 0)
            return it;
    }
    return NULL;
}

double rf_metric(rf_t *f, const char *name, const char *label)
{
    th_resp_t r;
    th_api(f->port, "GET", "/metrics", NULL, NULL, &r);
    double v = NAN;
    size_t nl = strlen(name);
    for (const char *line = r.body; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (len > nl && strncmp(line, name, nl) == 0 && (line[nl] == ' ' || line[nl] == '{')) {
            char *copy = xmalloc(len + 1);
            memcpy(copy, line, len);
            copy[len] = '\0';
            if (!label || strstr(copy, label)) {
                const char *sp = strrchr(copy, ' ');
                v = sp ? strtod(sp + 1, NULL) : NAN;
                free(copy);
                break;
            }
            free(copy);
        }
        line = eol ? eol + 1 : NULL;
    }
    th_resp_free(&r);
    return v;
}

typedef struct phase_wait {
    rf_t *f;
    const char *const *ids;
    const char *const *phases;
    size_t n;
    char last[256];
} phase_wait_t;

static int phases_pred(void *ud)
{
    phase_wait_t *w = ud;
    for (size_t i = 0; i < w->n; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/environments/%s", w->ids[i]);
        cJSON *j = NULL;
        long st = rf_api(w->f, "GET", path, NULL, &j);
        const char *ph = ta_str(j, "status.phase");
        int ok;
        if (!w->phases[i])
            ok = st == 200;
        else if (strcmp(w->phases[i], "GONE") == 0)
            ok = st == 404;
        else
            ok = st == 200 && ph && strcmp(ph, w->phases[i]) == 0;
        if (!ok)
            snprintf(w->last, sizeof w->last, "%s: status %ld phase %s (wanted %s)", w->ids[i], st,
                     ph ? ph : "-", w->phases[i] ? w->phases[i] : "any");
        cJSON_Delete(j);
        if (!ok)
            return 0;
    }
    return 1;
}

int rf_wait_phases(rf_t *f, const char *const ids[], const char *const phases[], size_t n,
                   int timeout_ms)
{
    phase_wait_t w = {f, ids, phases, n, ""};
    int rc = th_wait_until(phases_pred, &w, timeout_ms);
    if (rc != 0)
        fprintf(stderr, "reaper fixture: phases not reached in %d ms: %s\n", timeout_ms, w.last);
    return rc;
}

char *rf_agent_logs(const rf_t *f)
{
    size_t len = 0;
    char *all = xmalloc(1);
    all[0] = '\0';
    for (int i = 0; i < f->runs; i++) {
        th_proc_t p;
        memset(&p, 0, sizeof p);
        snprintf(p.log_path, sizeof p.log_path, "%s", f->logs[i]);
        char *log = th_read_log(&p);
        size_t n = strlen(log);
        all = xrealloc(all, len + n + 1);
        memcpy(all + len, log, n + 1);
        len += n;
        free(log);
    }
    return all;
}

/* --- azsim -------------------------------------------------------------------- */

cJSON *rf_sim_get(rf_t *f, const char *path)
{
    th_resp_t r;
    th_api(f->sim_port, "GET", path, NULL, NULL, &r);
    cJSON *j = r.status == 200 && r.body ? cJSON_ParseWithLength(r.body, r.len) : NULL;
    th_resp_free(&r);
    return j;
}

int rf_faults(rf_t *f, const char *json)
{
    th_resp_t r;
    th_api(f->sim_port, "POST", "/_azsim/faults", NULL, json, &r);
    long st = r.status;
    if (st != 200)
        fprintf(stderr, "reaper fixture: POST /_azsim/faults %s answered %ld\n", json, st);
    th_resp_free(&r);
    return st == 200 ? 0 : -1;
}

static int fetch_token(rf_t *f)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/" RF_TENANT "/oauth2/v2.0/token", f->sim_port);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    for (int attempt = 0; attempt < 8; attempt++) {
        th_resp_t r;
        th_http("POST", url, h,
                "grant_type=client_credentials&client_id=" RF_CLIENT "&client_secret=" RF_SECRET
                "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
                &r);
        cJSON *j = r.status == 200 && r.body ? cJSON_ParseWithLength(r.body, r.len) : NULL;
        const char *tok = ta_str(j, "access_token");
        int ok = tok && strlen(tok) < sizeof f->token;
        if (ok)
            snprintf(f->token, sizeof f->token, "%s", tok);
        cJSON_Delete(j);
        th_resp_free(&r);
        if (ok)
            return 0;
        ta_sleep_ms(100);
    }
    fprintf(stderr, "reaper fixture: no token from azsim\n");
    return -1;
}

long rf_arm(rf_t *f, const char *method, const char *path, const char *body, th_resp_t *out)
{
    long st = 0;
    th_resp_t r;
    memset(&r, 0, sizeof r);
    for (int attempt = 0; attempt < 10; attempt++) {
        if (!f->token[0] && fetch_token(f) != 0)
            break;
        static unsigned seq;
        char url[1024], auth[4200], rid[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->sim_port, path);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", f->token);
        snprintf(rid, sizeof rid, "X-Request-Id: rftest-%u", ++seq);
        const char *h[] = {auth, rid, body ? "Content-Type: application/json" : NULL, NULL};
        th_http(method, url, h, body, &r);
        st = r.status;
        if (st == 401)
            f->token[0] = '\0';
        if (st != 0 && st != 401 && st != 429 && st < 500)
            break;
        if (attempt < 9) {
            th_resp_free(&r);
            memset(&r, 0, sizeof r);
            ta_sleep_ms(st == 429 ? 300 : 50);
        }
    }
    if (out)
        *out = r;
    else
        th_resp_free(&r);
    return st;
}

void rf_group_path(char *out, size_t n, int region, const char *name)
{
    snprintf(out, n,
             "/subscriptions/" RF_SUB "/resourceGroups/%s/providers/"
             "Microsoft.ContainerInstance/containerGroups/%s",
             region_rg[region], name);
}

void rf_share_path(char *out, size_t n, int region, const char *name)
{
    snprintf(out, n,
             "/subscriptions/" RF_SUB "/resourceGroups/%s/providers/Microsoft.Storage/"
             "storageAccounts/%s/fileServices/default/shares/%s",
             region_rg[region], region_sa[region], name);
}

long rf_arm_put_group(rf_t *f, int region, const char *name, const char *tags_json)
{
    char path[512], body[2048];
    rf_group_path(path, sizeof path - 32, region, name);
    strcat(path, "?" RF_ACI_V);
    snprintf(body, sizeof body,
             "{\"location\":\"%s\",%s%s%s\"properties\":{\"osType\":\"Linux\","
             "\"restartPolicy\":\"OnFailure\",\"containers\":[{\"name\":\"app\",\"properties\":"
             "{\"image\":\"nginx:latest\",\"resources\":{\"requests\":{\"cpu\":1,"
             "\"memoryInGB\":1}}}}]}}",
             rf_region_name[region], tags_json ? "\"tags\":" : "", tags_json ? tags_json : "",
             tags_json ? "," : "");
    return rf_arm(f, "PUT", path, body, NULL);
}

long rf_arm_put_share(rf_t *f, int region, const char *name, const char *metadata_json)
{
    char path[512], body[1024];
    rf_share_path(path, sizeof path - 32, region, name);
    strcat(path, "?" RF_FS_V);
    snprintf(body, sizeof body, "{\"properties\":{\"shareQuota\":5%s%s}}",
             metadata_json ? ",\"metadata\":" : "", metadata_json ? metadata_json : "");
    return rf_arm(f, "PUT", path, body, NULL);
}

long rf_arm_delete_group(rf_t *f, int region, const char *name)
{
    char path[512];
    rf_group_path(path, sizeof path - 32, region, name);
    strcat(path, "?" RF_ACI_V);
    return rf_arm(f, "DELETE", path, NULL, NULL);
}

long rf_arm_stop_group(rf_t *f, int region, const char *name)
{
    char path[512];
    rf_group_path(path, sizeof path - 40, region, name);
    strcat(path, "/stop?" RF_ACI_V);
    return rf_arm(f, "POST", path, NULL, NULL);
}

static const cJSON *res_named(const cJSON *arr, int region, const char *name)
{
    char rg[64];
    snprintf(rg, sizeof rg, "/resourceGroups/%s/", region_rg[region]);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const char *n = ta_str(it, "name"), *id = ta_str(it, "id");
        if (n && id && strcasecmp(n, name) == 0 && strcasestr(id, rg))
            return it;
    }
    return NULL;
}

const cJSON *rf_res_group(const cJSON *res, int region, const char *name)
{
    return res_named(ta_path(res, "containerGroups"), region, name);
}

const cJSON *rf_res_share(const cJSON *res, int region, const char *name)
{
    return res_named(ta_path(res, "fileShares"), region, name);
}

static const cJSON *deleted_nth(const cJSON *stats, const char *kind, const char *name, int *count)
{
    const cJSON *first = NULL, *it;
    *count = 0;
    cJSON_ArrayForEach(it, ta_path(stats, "deleted"))
    {
        const char *k = ta_str(it, "kind"), *id = ta_str(it, "id");
        if (!k || !id || strcmp(k, kind) != 0)
            continue;
        const char *slash = strrchr(id, '/');
        if (name && (!slash || strcasecmp(slash + 1, name) != 0))
            continue;
        if (!first)
            first = it;
        (*count)++;
    }
    return first;
}

int rf_deleted_count(const cJSON *stats, const char *kind, const char *name)
{
    int n;
    deleted_nth(stats, kind, name, &n);
    return n;
}

int64_t rf_deleted_at(const cJSON *stats, const char *kind, const char *name)
{
    int n;
    const cJSON *e = deleted_nth(stats, kind, name, &n);
    return e ? rf_parse_time(ta_str(e, "at")) : -1;
}

static size_t parse_requests(const char *text, rf_req_t **out)
{
    size_t n = 0, cap = 0;
    rf_req_t *v = NULL;
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        if (!eol)
            break; /* a line still being written */
        if (len > 2 && line[0] == '{') {
            cJSON *j = cJSON_ParseWithLength(line, len);
            const char *msg = ta_str(j, "msg"), *m = ta_str(j, "method"), *p = ta_str(j, "path");
            const cJSON *st = ta_path(j, "status");
            if (msg && strcmp(msg, "request") == 0 && m && p && cJSON_IsNumber(st)) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    v = xrealloc(v, cap * sizeof *v);
                }
                rf_req_t *r = &v[n++];
                r->ts_ms = rf_parse_time(ta_str(j, "ts"));
                snprintf(r->method, sizeof r->method, "%s", m);
                snprintf(r->path, sizeof r->path, "%s", p);
                r->status = (int)st->valuedouble;
                const char *rid = ta_str(j, "request_id");
                r->by_test = rid && strncmp(rid, "rftest-", 7) == 0;
            }
            cJSON_Delete(j);
        }
        line = eol + 1;
    }
    *out = v;
    return n;
}

size_t rf_sim_requests(rf_t *f, int all, rf_req_t **out)
{
    *out = NULL;
    FILE *fp = fopen(f->sim.log_path, "rb");
    if (!fp)
        return 0;
    long off = all ? 0 : f->sim_log_off;
    fseek(fp, 0, SEEK_END);
    long end = ftell(fp);
    if (end < off)
        off = 0;
    size_t len = (size_t)(end - off);
    char *buf = xmalloc(len + 1);
    fseek(fp, off, SEEK_SET);
    len = fread(buf, 1, len, fp);
    buf[len] = '\0';
    fclose(fp);
    /* Only whole lines count; the cursor stops after the last newline. */
    char *last = strrchr(buf, '\n');
    size_t whole = last ? (size_t)(last - buf) + 1 : 0;
    buf[whole] = '\0';
    if (!all)
        f->sim_log_off = off + (long)whole;
    size_t n = parse_requests(buf, out);
    free(buf);
    return n;
}

int rf_req_mutates(const rf_req_t *r)
{
    return strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0 ||
           strcmp(r->method, "DELETE") == 0 || strcmp(r->method, "POST") == 0;
}
