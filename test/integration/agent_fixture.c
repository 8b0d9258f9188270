/*
 * Fixture of the dev8-agent integration tests (see agent_fixture.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent_fixture.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        abort();
    return q;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    *buf = xrealloc(*buf, *len + n + 1);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

long long ta_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ta_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* --- the agent process -------------------------------------------------- */

static int write_config(ta_agent_t *a, const ta_opts_t *opts)
{
    char ring[64] = "";
    if (opts && opts->watch_ring_size > 0)
        snprintf(ring, sizeof ring, "  watchRingSize: %d\n", opts->watch_ring_size);
    char ctl[1024] = "";
    if (opts && opts->resync_seconds > 0)
        snprintf(ctl + strlen(ctl), sizeof ctl - strlen(ctl), "  resyncSeconds: %d\n",
                 opts->resync_seconds);
    if (opts && opts->status_refresh_seconds > 0)
        snprintf(ctl + strlen(ctl), sizeof ctl - strlen(ctl), "  statusRefreshSeconds: %d\n",
                 opts->status_refresh_seconds);
    if (opts && opts->shutdown_grace_seconds > 0)
        snprintf(ctl + strlen(ctl), sizeof ctl - strlen(ctl), "  shutdownGraceSeconds: %d\n",
                 opts->shutdown_grace_seconds);
    if (opts && opts->state_file)
        snprintf(ctl + strlen(ctl), sizeof ctl - strlen(ctl), "  stateFile: \"%s\"\n",
                 opts->state_file);
    if (opts && opts->probe_port > 0)
        snprintf(ctl + strlen(ctl), sizeof ctl - strlen(ctl), "  probeListen: 127.0.0.1:%d\n",
                 opts->probe_port);
    if (opts && opts->controller_yaml)
        snprintf(ctl + strlen(ctl), sizeof ctl - strlen(ctl), "%s", opts->controller_yaml);
    char az[512] = "";
    if (opts && opts->azsim_port > 0 && opts->via_proxy)
        snprintf(az, sizeof az,
                 "  auth: clientSecret\n"
                 "  armEndpoint: http://management.azure.com\n"
                 "  authorityHost: http://login.microsoftonline.com\n"
                 "  imdsEndpoint: http://127.0.0.1:%d\n",
                 opts->azsim_port);
    else if (opts && opts->azsim_port > 0)
        snprintf(az, sizeof az,
                 "  auth: clientSecret\n"
                 "  armEndpoint: http://127.0.0.1:%d\n"
                 "  authorityHost: http://127.0.0.1:%d\n"
                 "  imdsEndpoint: http://127.0.0.1:%d\n",
                 opts->azsim_port, opts->azsim_port, opts->azsim_port);
    else
        /* No emulator: every Azure endpoint is a closed loopback port, so a
         * test never sends a byte off this machine (the defaults are the
         * public cloud and the IMDS link-local address). */
        snprintf(az, sizeof az,
                 "  armEndpoint: http://127.0.0.1:9\n"
                 "  authorityHost: http://127.0.0.1:9\n"
                 "  imdsEndpoint: http://127.0.0.1:9\n");
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "# written by test/integration/agent_fixture.c\n"
             "controller:\n"
             "  name: dev8-itest\n"
             "  listen: 127.0.0.1:%d\n"
             "%s"
             "api:\n"
             "  maxBodyBytes: %d\n"
             "%s"
             "%s"
             "azure:\n"
             "  subscriptionId: \"" TA_AZ_SUB "\"\n"
             "%s%s"
             "  regions:\n"
             "%s"
             "images:\n"
             "%s"
             "log:\n"
             "  level: debug\n"
             "%s",
             a->port, ctl, TA_MAX_BODY, ring, opts && opts->api_yaml ? opts->api_yaml : "", az,
             opts && opts->azure_yaml ? opts->azure_yaml : "",
             opts && opts->regions_yaml ? opts->regions_yaml
                                        : "    - name: eastus\n"
                                          "      resourceGroup: rg-dev8-eastus\n"
                                          "      storageAccount: dev8eastus\n"
                                          "    - name: westeurope\n"
                                          "      resourceGroup: rg-dev8-westeurope\n"
                                          "      storageAccount: dev8westeurope\n",
             opts && opts->images_yaml ? opts->images_yaml
                                       : "  node: \"vaibhavsing/dev8-workspace:latest\"\n"
                                         "  python: \"vaibhavsing/dev8-workspace-python:latest\"\n",
             opts && opts->extra_yaml ? opts->extra_yaml : "");
    char name[64];
    snprintf(name, sizeof name, "agent-%d.yaml", a->port);
    free(a->config_path);
    a->config_path = th_write_file(name, yaml);
    return a->config_path ? 0 : -1;
}

static int launch(ta_agent_t *a)
{
    char name[64];
    a->starts++;
    snprintf(name, sizeof name, "agent-%d-%d", a->port, a->starts);
    char *argv[] = {a->bin, (char *)"--config", a->config_path, NULL};
    char *env[] = {
        (char *)"AGENT_API_KEYS=" TA_KEY1 "," TA_KEY2, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t n = 1;
    if (a->azure_env) {
        env[n++] = (char *)"AZURE_TENANT_ID=" TA_AZ_TENANT;
        env[n++] = (char *)"AZURE_CLIENT_ID=" TA_AZ_CLIENT;
        env[n++] = (char *)"AZURE_CLIENT_SECRET=" TA_AZ_SECRET;
        env[n++] = (char *)"DEV8_SPEC_HASH_KEY=" TA_HASH_KEY;
        env[n++] = (char *)"DEV8_ACTIVITY_KEY=" TA_ACTIVITY_KEY;
    }
    if (a->proxy_env[0])
        env[n++] = a->proxy_env;
    /* Sanitized builds start slower; 20 s is a generous upper bound. */
    return th_start(&a->proc, name, argv, env, a->port, "/healthz", 20000);
}

int ta_prism_enabled(void)
{
    const char *v = getenv("D8_PRISM");
    return v && strcmp(v, "1") == 0;
}

/* Starts the Prism validating proxy in front of the agent on a free port
 * (a->api_port); 0 or -1. It stays up across ta_restart (same upstream). */
static int start_prism(ta_agent_t *a)
{
    const char *bin = getenv("D8_PRISM_BIN");
    const char *doc = getenv("D8_OPENAPI");
    char upstream[64], port[16], name[64];
    a->api_port = th_free_port();
    if (a->api_port <= 0)
        return -1;
    snprintf(upstream, sizeof upstream, "http://127.0.0.1:%d", a->port);
    snprintf(port, sizeof port, "%d", a->api_port);
    snprintf(name, sizeof name, "prism-%d", a->api_port);
    /* Not --errors: Prism would then answer every deliberately invalid
     * request of the tests itself (422) instead of the agent; violations
     * are read from sl-violations instead (hack/test-prism.sh). */
    char *argv[] = {(char *)(bin ? bin : "hack/openapi/node_modules/.bin/prism"),
                    (char *)"proxy",
                    (char *)(doc ? doc : "pkg/api/openapi.yaml"),
                    upstream,
                    (char *)"--host",
                    (char *)"127.0.0.1",
                    (char *)"--port",
                    port,
                    NULL};
    /* The first request goes through to the agent: any answer means both are up. */
    return th_start(&a->prism, name, argv, NULL, a->api_port, "/healthz", 30000);
}

int ta_start(ta_agent_t *a, const ta_opts_t *opts)
{
    memset(a, 0, sizeof *a);
    a->bin = th_bin("dev8-agent");
    if (access(a->bin, X_OK) != 0) {
        fprintf(stderr, "fixture: %s is not an executable (run make first)\n", a->bin);
        return -1;
    }
    a->port = th_free_port();
    a->azure_env = opts && opts->azsim_port > 0;
    a->api_port = a->port;
    if (a->azure_env && opts->via_proxy)
        snprintf(a->proxy_env, sizeof a->proxy_env, "http_proxy=http://127.0.0.1:%d",
                 opts->azsim_port);
    if (a->port <= 0 || write_config(a, opts) != 0)
        return -1;
    if (launch(a) != 0)
        return -1;
    return ta_prism_enabled() ? start_prism(a) : 0;
}

int ta_start_state_file(ta_agent_t *a, int azsim_port, const char *state_file)
{
    ta_opts_t o = {.azsim_port = azsim_port,
                   .resync_seconds = 2,
                   .status_refresh_seconds = 4,
                   .shutdown_grace_seconds = 5,
                   .state_file = state_file};
    if (ta_start(a, &o) != 0)
        return -1;
    return ta_wait_ready(a, 15000);
}

int ta_stop(ta_agent_t *a)
{
    int rc = -1;
    if (a->prism.pid > 0)
        th_stop(&a->prism, SIGTERM, 10000);
    if (a->proc.pid > 0) {
        rc = th_stop(&a->proc, SIGTERM, 10000);
        if (rc != 0) {
            char *log = th_read_log(&a->proc);
            size_t len = strlen(log);
            fprintf(stderr, "fixture: dev8-agent exit status %d; log tail:\n%s\n", rc,
                    log + (len > 6000 ? len - 6000 : 0));
            free(log);
        }
    }
    free(a->bin);
    free(a->config_path);
    a->bin = a->config_path = NULL;
    return rc;
}

int ta_restart(ta_agent_t *a, int *stop_status)
{
    return ta_restart_sig(a, SIGTERM, stop_status);
}

int ta_relaunch(ta_agent_t *a)
{
    return launch(a);
}

int ta_restart_sig(ta_agent_t *a, int sig, int *stop_status)
{
    int rc = th_stop(&a->proc, sig, 10000);
    if (stop_status)
        *stop_status = rc;
    return launch(a);
}

int ta_setup(void **state)
{
    ta_agent_t *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    if (ta_start(a, NULL) != 0) {
        ta_stop(a);
        free(a);
        return -1;
    }
    *state = a;
    return 0;
}

int ta_teardown(void **state)
{
    ta_agent_t *a = *state;
    int rc = 0;
    if (a && a->bin) {
        rc = ta_stop(a);
        if (rc != 0)
            fprintf(stderr, "fixture: dev8-agent did not exit 0 on SIGTERM (status %d)\n", rc);
    }
    free(a);
    *state = NULL;
    return rc == 0 ? 0 : -1;
}

char *ta_log(const ta_agent_t *a)
{
    return th_read_log(&a->proc);
}

/* --- requests and JSON -------------------------------------------------- */

/* In contract mode, appends what Prism said about one exchange to
 * $D8_PRISM_REPORT as one JSON line: {"bin","method","path","status",
 * "violations" (sl-violations, parsed; [] when none), "prismError" (Prism
 * answered itself, application/problem+json), "code" and "field" (of the
 * error of a 4xx or 5xx), "authScheme" (the scheme word of an Authorization header the
 * test set itself)}. */
static void prism_note(const ta_agent_t *a, const char *method, const char *path,
                       const th_resp_t *r, const char *auth_scheme)
{
    const char *report = getenv("D8_PRISM_REPORT");
    if (a->api_port == a->port || !report || !*report)
        return;
    char *viol = th_resp_header(r, "sl-violations");
    char *ct = th_resp_header(r, "Content-Type");
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "bin", program_invocation_short_name);
    cJSON_AddStringToObject(line, "method", method);
    cJSON_AddStringToObject(line, "path", path);
    cJSON_AddNumberToObject(line, "status", (double)r->status);
    cJSON *v = viol ? cJSON_Parse(viol) : cJSON_CreateArray();
    if (!v) /* cut short by Prism ("Too many violations! ...") */
        v = cJSON_CreateString(viol);
    cJSON_AddItemToObject(line, "violations", v);
    cJSON_AddBoolToObject(line, "prismError", ct && strstr(ct, "application/problem+json"));
    if (r->status >= 400) {
        cJSON_AddStringToObject(line, "code", ta_err_code(r));
        cJSON_AddStringToObject(line, "field", ta_err_field(r));
    }
    if (auth_scheme)
        cJSON_AddStringToObject(line, "authScheme", auth_scheme);
    char *text = cJSON_PrintUnformatted(line);
    FILE *f = fopen(report, "a");
    if (f && text)
        fprintf(f, "%s\n", text);
    if (f)
        fclose(f);
    free(text);
    cJSON_Delete(line);
    free(viol);
    free(ct);
}

/* 1 when an object anywhere in j has two members of one name. */
static int json_has_duplicates(const cJSON *j)
{
    for (const cJSON *c = j ? j->child : NULL; c; c = c->next) {
        if (cJSON_IsObject(j))
            for (const cJSON *d = c->next; d; d = d->next)
                if (c->string && d->string && strcmp(c->string, d->string) == 0)
                    return 1;
        if (json_has_duplicates(c))
            return 1;
    }
    return 0;
}

/*
 * The wire-level requests Prism cannot pass on unchanged, which go to the
 * agent directly (reported as bypassed): Prism parses a JSON body and
 * sends it re-encoded, so padding, duplicate members and malformed JSON
 * would not reach the agent; and a PUT without a body gets Content-Length: 0
 * where the test means no framing at all. Returns the reason or NULL.
 */
static const char *prism_bypass(const char *method, const char *body, int json_body)
{
    if (!body)
        return strcmp(method, "PUT") == 0 ? "PUT without framing" : NULL;
    if (!json_body || !*body)
        return NULL;
    cJSON *j = cJSON_ParseWithOpts(body, NULL, 1);
    char *again = j ? cJSON_PrintUnformatted(j) : NULL;
    const char *why = !j                              ? "body is not JSON"
                      : json_has_duplicates(j)        ? "duplicate members"
                      : !again || strcmp(again, body) ? "body is not compact JSON"
                                                      : NULL;
    free(again);
    cJSON_Delete(j);
    return why;
}

/* Notes a request sent to the agent directly in contract mode. */
static void prism_note_bypass(const ta_agent_t *a, const char *method, const char *path,
                              const th_resp_t *r, const char *why)
{
    const char *report = getenv("D8_PRISM_REPORT");
    FILE *f = report && *report ? fopen(report, "a") : NULL;
    if (!f)
        return;
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "bin", program_invocation_short_name);
    cJSON_AddStringToObject(line, "method", method);
    cJSON_AddStringToObject(line, "path", path);
    cJSON_AddNumberToObject(line, "status", (double)r->status);
    cJSON_AddStringToObject(line, "bypassed", why);
    char *text = cJSON_PrintUnformatted(line);
    if (text)
        fprintf(f, "%s\n", text);
    fclose(f);
    free(text);
    cJSON_Delete(line);
    (void)a;
}

int ta_req(const ta_agent_t *a, const char *method, const char *path, const char *body,
           th_resp_t *out)
{
    return ta_api(a, method, path, TA_KEY1, body, out);
}

int ta_api(const ta_agent_t *a, const char *method, const char *path, const char *key,
           const char *body, th_resp_t *out)
{
    const char *why = a->api_port != a->port ? prism_bypass(method, body, 1) : NULL;
    int rc = th_api(why ? a->port : a->api_port, method, path, key, body, out);
    if (why)
        prism_note_bypass(a, method, path, out, why);
    else
        prism_note(a, method, path, out, NULL);
    return rc;
}

int ta_req_h(const ta_agent_t *a, const char *method, const char *path, const char *const headers[],
             const char *body, th_resp_t *out)
{
    int json_body = 0, framed = 0;
    char scheme[32] = "";
    for (size_t i = 0; headers && headers[i]; i++) {
        if (strncasecmp(headers[i], "Authorization:", 14) == 0)
            sscanf(headers[i] + 14, " %31[^ ]", scheme);
        if (strncasecmp(headers[i], "Content-Type:", 13) == 0 && strstr(headers[i], "json"))
            json_body = 1;
        if (strncasecmp(headers[i], "Content-Length:", 15) == 0 ||
            strncasecmp(headers[i], "Transfer-Encoding:", 18) == 0)
            framed = 1;
    }
    const char *why = NULL;
    if (a->api_port != a->port)
        why = framed ? "explicit framing headers" : prism_bypass(method, body, json_body);
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", why ? a->port : a->api_port, path);
    int rc = th_http(method, url, headers, body, out);
    if (why)
        prism_note_bypass(a, method, path, out, why);
    else
        prism_note(a, method, path, out, scheme[0] ? scheme : NULL);
    return rc;
}

cJSON *ta_json(const th_resp_t *r)
{
    if (!r->body || !r->len)
        return NULL;
    return cJSON_ParseWithLength(r->body, r->len);
}

static const char *err_member(const th_resp_t *r, const char *member, char *out, size_t outlen)
{
    out[0] = '\0';
    cJSON *j = ta_json(r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, member);
    if (cJSON_IsString(v))
        snprintf(out, outlen, "%s", v->valuestring);
    cJSON_Delete(j);
    return out;
}

const char *ta_err_code(const th_resp_t *r)
{
    static char code[128];
    return err_member(r, "code", code, sizeof code);
}

const char *ta_err_field(const th_resp_t *r)
{
    static char field[256];
    return err_member(r, "field", field, sizeof field);
}

const cJSON *ta_path(const cJSON *root, const char *path)
{
    const cJSON *cur = root;
    char part[128];
    while (cur && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof part)
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        if (cJSON_IsArray(cur)) {
            char *end;
            long i = strtol(part, &end, 10);
            cur = *end ? NULL : cJSON_GetArrayItem(cur, (int)i);
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, part);
        }
        path += n + (dot ? 1 : 0);
    }
    return cur;
}

const char *ta_str(const cJSON *root, const char *path)
{
    const cJSON *v = ta_path(root, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double ta_num(const cJSON *root, const char *path)
{
    const cJSON *v = ta_path(root, path);
    return cJSON_IsNumber(v) ? v->valuedouble : -1e300;
}

const cJSON *ta_condition(const cJSON *obj, const char *type)
{
    const cJSON *conds = ta_path(obj, "status.conditions");
    const cJSON *c;
    cJSON_ArrayForEach(c, conds)
    {
        const char *t = ta_str(c, "type");
        if (t && strcmp(t, type) == 0)
            return c;
    }
    return NULL;
}

char *ta_spec(const char *user, const char *name, const char *region, const char *extra)
{
    size_t n = strlen(user) + strlen(name) + strlen(region) + (extra ? strlen(extra) : 0) + 128;
    char *s = malloc(n);
    if (!s)
        abort();
    snprintf(s, n, "{\"userId\":\"%s\",\"name\":\"%s\",\"cloudRegion\":\"%s\"%s%s}", user, name,
             region, extra && *extra ? "," : "", extra ? extra : "");
    return s;
}

long ta_put(const ta_agent_t *a, const char *id, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/environments/%s", id);
    th_resp_t r;
    ta_req(a, "PUT", path, body, &r);
    long st = r.status;
    th_resp_free(&r);
    return st;
}

int ta_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > 48)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-')
            return 0;
        if (c == '-' && (i == 0 || i == n - 1 || id[i - 1] == '-'))
            return 0;
    }
    return 1;
}

size_t ta_count(const char *haystack, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    if (!haystack || !nl)
        return 0;
    for (const char *p = strstr(haystack, needle); p; p = strstr(p + nl, needle))
        n++;
    return n;
}

/* --- Server-Sent Events ------------------------------------------------- */

static void parse_events(ta_watch_t *w)
{
    for (;;) {
        /* Events end at a blank line; the agent writes "\n", accept "\r\n" too. */
        char *end = NULL;
        size_t seplen = 0;
        for (size_t i = 0; i + 1 < w->npending; i++) {
            if (w->pending[i] == '\n' && w->pending[i + 1] == '\n') {
                end = w->pending + i;
                seplen = 2;
                break;
            }
            if (i + 3 < w->npending && memcmp(w->pending + i, "\r\n\r\n", 4) == 0) {
                end = w->pending + i;
                seplen = 4;
                break;
            }
        }
        if (!end)
            return;
        ta_event_t ev = {-1, "", NULL};
        char *data = NULL;
        size_t ndata = 0;
        int any = 0;
        char *line = w->pending;
        while (line < end) {
            char *eol = memchr(line, '\n', (size_t)(end - line));
            char *stop = eol ? eol : end;
            size_t ll = (size_t)(stop - line);
            if (ll && line[ll - 1] == '\r')
                ll--;
            if (ll && line[0] == ':') {
                w->ncomments++;
            } else if (ll) {
                char *colon = memchr(line, ':', ll);
                size_t fl = colon ? (size_t)(colon - line) : ll;
                const char *v = colon ? colon + 1 : line + ll;
                if (colon && v < line + ll && *v == ' ')
                    v++;
                size_t vl = (size_t)(line + ll - v);
                if (fl == 2 && memcmp(line, "id", 2) == 0) {
                    char tmp[32];
                    snprintf(tmp, sizeof tmp, "%.*s", (int)vl, v);
                    ev.id = strtoll(tmp, NULL, 10);
                    any = 1;
                } else if (fl == 5 && memcmp(line, "event", 5) == 0) {
                    snprintf(ev.type, sizeof ev.type, "%.*s", (int)vl, v);
                    any = 1;
                } else if (fl == 4 && memcmp(line, "data", 4) == 0) {
                    if (data)
                        append(&data, &ndata, "\n", 1);
                    append(&data, &ndata, v, vl);
                    any = 1;
                }
            }
            line = stop + 1;
        }
        if (any) {
            if (!data)
                append(&data, &ndata, "", 0);
            ev.data = data;
            if (strcmp(ev.type, "EVENT") == 0) {
                if (w->nenv_events == w->env_cap) {
                    w->env_cap = w->env_cap ? w->env_cap * 2 : 16;
                    w->env_events = xrealloc(w->env_events, w->env_cap * sizeof *w->env_events);
                }
                w->env_events[w->nenv_events++] = ev;
            } else {
                if (w->nevents == w->cap) {
                    w->cap = w->cap ? w->cap * 2 : 16;
                    w->events = xrealloc(w->events, w->cap * sizeof *w->events);
                }
                w->events[w->nevents++] = ev;
            }
        } else {
            free(data);
        }
        size_t used = (size_t)(end - w->pending) + seplen;
        memmove(w->pending, w->pending + used, w->npending - used + 1);
        w->npending -= used;
    }
}

static size_t on_stream(char *data, size_t size, size_t nmemb, void *ud)
{
    ta_watch_t *w = ud;
    size_t n = size * nmemb;
    append(&w->pending, &w->npending, data, n);
    append(&w->all, &w->nall, data, n);
    parse_events(w);
    return n;
}

static size_t on_stream_header(char *data, size_t size, size_t nmemb, void *ud)
{
    ta_watch_t *w = ud;
    append(&w->headers, &w->nheaders, data, size * nmemb);
    return size * nmemb;
}

int ta_watch_open(ta_watch_t *w, const ta_agent_t *a, const char *path, const char *last_event_id)
{
    memset(w, 0, sizeof *w);
    append(&w->pending, &w->npending, "", 0);
    append(&w->all, &w->nall, "", 0);
    append(&w->headers, &w->nheaders, "", 0);
    CURL *h = curl_easy_init();
    CURLM *m = curl_multi_init();
    if (!h || !m) {
        if (h)
            curl_easy_cleanup(h);
        if (m)
            curl_multi_cleanup(m);
        return -1;
    }
    char url[2048];
    /* Always the agent itself: Prism passes an answer on only once it is
     * complete, and a watch stream never is (see ta_prism_enabled). */
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", a->port, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Authorization: Bearer " TA_KEY1);
    hl = curl_slist_append(hl, "Accept: text/event-stream");
    if (last_event_id) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", last_event_id);
        hl = curl_slist_append(hl, hdr);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_stream_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, w);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_multi_add_handle(m, h);
    w->multi = m;
    w->easy = h;
    w->hdrs = hl;
    return 0;
}

/* One turn of the transfer, waiting up to ms for activity. */
static void watch_step(ta_watch_t *w, int ms)
{
    int running = 0;
    curl_multi_perform(w->multi, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            w->done = 1;
    if (!running)
        w->done = 1;
    if (!w->status)
        curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
    if (!w->done && ms > 0)
        curl_multi_poll(w->multi, NULL, 0, ms, NULL);
}

size_t ta_watch_wait(ta_watch_t *w, size_t n, int timeout_ms)
{
    long long deadline = ta_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - ta_now_ms();
        watch_step(w, left > 50 ? 50 : (left > 0 ? (int)left : 0));
        if (w->done)
            break;
        if (n == 0 ? w->status != 0 : w->nevents >= n)
            break;
        if (ta_now_ms() >= deadline)
            break;
    }
    return w->nevents;
}

void ta_watch_drain(ta_watch_t *w, int ms)
{
    long long deadline = ta_now_ms() + ms;
    while (!w->done && ta_now_ms() < deadline) {
        long long left = deadline - ta_now_ms();
        watch_step(w, left > 50 ? 50 : (int)(left > 0 ? left : 0));
    }
}

void ta_watch_close(ta_watch_t *w)
{
    if (w->multi) {
        curl_multi_remove_handle(w->multi, w->easy);
        curl_easy_cleanup(w->easy);
        curl_multi_cleanup(w->multi);
        curl_slist_free_all(w->hdrs);
    }
    for (size_t i = 0; i < w->nevents; i++)
        free(w->events[i].data);
    free(w->events);
    for (size_t i = 0; i < w->nenv_events; i++)
        free(w->env_events[i].data);
    free(w->env_events);
    free(w->pending);
    free(w->all);
    free(w->headers);
    memset(w, 0, sizeof *w);
}

/* --- raw sockets -------------------------------------------------------- */

int ta_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, 3000) != 1 || (p.revents & (POLLERR | POLLHUP))) {
        close(fd);
        return -1;
    }
    return fd;
}

int ta_send_all(int fd, const void *data, size_t len, int timeout_ms)
{
    long long deadline = ta_now_ms() + timeout_ms;
    size_t sent = 0;
    while (sent < len) {
        ssize_t w = send(fd, (const char *)data + sent, len - sent, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        long long left = deadline - ta_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, (int)left);
    }
    return 0;
}

int ta_recv_until_close(int fd, char **buf, size_t *len, int timeout_ms)
{
    long long deadline = ta_now_ms() + timeout_ms;
    if (!*buf)
        append(buf, len, "", 0);
    for (;;) {
        char chunk[8192];
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r > 0) {
            append(buf, len, chunk, (size_t)r);
            continue;
        }
        if (r == 0)
            return 1;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        long long left = deadline - ta_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, (int)left);
    }
}

/* --- the Azure emulator ------------------------------------------------- */

static const char SIM_CONFIG[] = "# written by test/integration/agent_fixture.c\n"
                                 "subscriptions: [\"" TA_AZ_SUB "\"]\n"
                                 "resourceGroups: [rg-dev8-eastus, rg-dev8-westeurope]\n"
                                 "storageAccounts: [dev8eastus, dev8westeurope]\n"
                                 "clients:\n"
                                 "  - {tenantId: " TA_AZ_TENANT ", clientId: " TA_AZ_CLIENT
                                 ", clientSecret: " TA_AZ_SECRET "}\n";

int ta_sim_start(ta_sim_t *s, const char *const extra_args[])
{
    memset(s, 0, sizeof *s);
    s->bin = th_bin("azsim");
    if (access(s->bin, X_OK) != 0) {
        fprintf(stderr, "fixture: %s is not an executable (run make first)\n", s->bin);
        return -1;
    }
    s->port = th_free_port();
    if (s->port <= 0)
        return -1;
    char name[64];
    snprintf(name, sizeof name, "azsim-%d.yaml", s->port);
    s->config_path = th_write_file(name, SIM_CONFIG);
    if (!s->config_path)
        return -1;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
    const char *argv[40] = {s->bin, "--listen", listen, "--config", s->config_path};
    size_t n = 5;
    for (size_t i = 0; extra_args && extra_args[i] && n < 39; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    s->starts++;
    snprintf(name, sizeof name, "azsim-%d-%d", s->port, s->starts);
    return th_start(&s->proc, name, (char *const *)argv, NULL, s->port, "/_azsim/stats", 20000);
}

int ta_sim_stop(ta_sim_t *s)
{
    int rc = -1;
    if (s->proc.pid > 0) {
        rc = th_stop(&s->proc, SIGTERM, 10000);
        if (rc != 0) {
            char *log = th_read_log(&s->proc);
            size_t len = strlen(log);
            fprintf(stderr, "fixture: azsim exit status %d; log tail:\n%s\n", rc,
                    log + (len > 4000 ? len - 4000 : 0));
            free(log);
        }
    }
    free(s->bin);
    free(s->config_path);
    s->bin = s->config_path = NULL;
    return rc;
}

long ta_sim_ctl(const ta_sim_t *s, const char *method, const char *path, const char *body,
                th_resp_t *out)
{
    th_api(s->port, method, path, NULL, body, out);
    return out->status;
}

cJSON *ta_sim_get(const ta_sim_t *s, const char *path)
{
    th_resp_t r;
    ta_sim_ctl(s, "GET", path, NULL, &r);
    cJSON *j = r.status == 200 ? ta_json(&r) : NULL;
    th_resp_free(&r);
    return j;
}

int ta_sim_faults(const ta_sim_t *s, const char *json)
{
    th_resp_t r;
    long st = ta_sim_ctl(s, "POST", "/_azsim/faults", json, &r);
    if (st != 200)
        fprintf(stderr, "fixture: POST /_azsim/faults %s answered %ld: %s\n", json, st,
                r.body ? r.body : "");
    th_resp_free(&r);
    return st == 200 ? 0 : -1;
}

int ta_sim_token(ta_sim_t *s)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/" TA_AZ_TENANT "/oauth2/v2.0/token", s->port);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    th_resp_t r;
    th_http("POST", url, h,
            "grant_type=client_credentials&client_id=" TA_AZ_CLIENT "&client_secret=" TA_AZ_SECRET
            "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
            &r);
    cJSON *j = r.status == 200 ? ta_json(&r) : NULL;
    const char *tok = ta_str(j, "access_token");
    int rc = -1;
    if (tok && strlen(tok) < sizeof s->token) {
        snprintf(s->token, sizeof s->token, "%s", tok);
        rc = 0;
    } else {
        fprintf(stderr, "fixture: azsim token endpoint answered %ld: %s\n", r.status,
                r.body ? r.body : "");
    }
    cJSON_Delete(j);
    th_resp_free(&r);
    return rc;
}

long ta_sim_arm(ta_sim_t *s, const char *method, const char *path, const char *body, th_resp_t *out)
{
    if (!s->token[0] && ta_sim_token(s) != 0) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    /* Not th_api: its header buffer is too small for a JWT. */
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    char auth[sizeof s->token + 32];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->token);
    const char *h[] = {auth, body ? "Content-Type: application/json" : NULL, NULL};
    th_http(method, url, h, body, out);
    return out->status;
}

static const cJSON *named(const cJSON *arr, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const char *n = ta_str(it, "name");
        if (n && strcasecmp(n, name) == 0)
            return it;
    }
    return NULL;
}

const cJSON *ta_sim_group(const cJSON *res, const char *name)
{
    return named(ta_path(res, "containerGroups"), name);
}

const cJSON *ta_sim_share(const cJSON *res, const char *name)
{
    return named(ta_path(res, "fileShares"), name);
}

long ta_sim_stat(const cJSON *stats, const char *op, const char *status)
{
    const cJSON *byop = cJSON_GetObjectItemCaseSensitive(ta_path(stats, "requests"), op);
    long n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, byop)
    {
        if (cJSON_IsNumber(it) && (!status || strcmp(it->string, status) == 0))
            n += (long)it->valuedouble;
    }
    return n;
}

int ta_sim_deleted(const cJSON *stats, const char *kind, const char *name)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, ta_path(stats, "deleted"))
    {
        const char *k = ta_str(it, "kind");
        const char *id = ta_str(it, "id");
        if (!k || !id || strcmp(k, kind) != 0)
            continue;
        if (name) {
            const char *slash = strrchr(id, '/');
            if (!slash || strcasecmp(slash + 1, name) != 0)
                continue;
        }
        n++;
    }
    return n;
}

cJSON *ta_env_get(const ta_agent_t *a, const char *id, long *status)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/environments/%s", id);
    th_resp_t r;
    ta_req(a, "GET", path, NULL, &r);
    if (status)
        *status = r.status;
    cJSON *j = r.status == 200 ? ta_json(&r) : NULL;
    th_resp_free(&r);
    return j;
}

typedef struct env_waiter {
    const ta_agent_t *a;
    const ta_sim_t *s;
    const char *what; /* env id or control path */
    ta_check_fn check;
    const void *arg;
    cJSON *last;
    long status;
} env_waiter_t;

static int env_pred(void *ud)
{
    env_waiter_t *w = ud;
    cJSON_Delete(w->last);
    w->last = ta_env_get(w->a, w->what, &w->status);
    return w->check(w->last, w->arg);
}

static cJSON *finish_wait(env_waiter_t *w, int rc, const char *kind, int timeout_ms)
{
    if (rc == 0)
        return w->last;
    char *text = w->last ? cJSON_PrintUnformatted(w->last) : NULL;
    fprintf(stderr, "fixture: %s %s: condition not met within %d ms (last answer %ld): %.3000s\n",
            kind, w->what, timeout_ms, w->status, text ? text : "(none)");
    free(text);
    cJSON_Delete(w->last);
    return NULL;
}

cJSON *ta_env_wait(const ta_agent_t *a, const char *id, ta_check_fn check, const void *arg,
                   int timeout_ms)
{
    env_waiter_t w = {a, NULL, id, check, arg, NULL, 0};
    int rc = th_wait_until(env_pred, &w, timeout_ms);
    return finish_wait(&w, rc, "environment", timeout_ms);
}

int ta_is_phase(const cJSON *obj, const void *phase)
{
    const char *p = ta_str(obj, "status.phase");
    return p && strcmp(p, (const char *)phase) == 0;
}

static int gone_pred(void *ud)
{
    env_waiter_t *w = ud;
    cJSON_Delete(w->last);
    w->last = ta_env_get(w->a, w->what, &w->status);
    return w->status == 404;
}

int ta_env_wait_gone(const ta_agent_t *a, const char *id, int timeout_ms)
{
    env_waiter_t w = {a, NULL, id, NULL, NULL, NULL, 0};
    int rc = th_wait_until(gone_pred, &w, timeout_ms);
    if (rc != 0) {
        finish_wait(&w, rc, "deletion of", timeout_ms);
        return -1;
    }
    cJSON_Delete(w.last);
    return 0;
}

static int sim_pred(void *ud)
{
    env_waiter_t *w = ud;
    cJSON_Delete(w->last);
    th_resp_t r;
    w->status = ta_sim_ctl(w->s, "GET", w->what, NULL, &r);
    w->last = r.status == 200 ? ta_json(&r) : NULL;
    th_resp_free(&r);
    return w->check(w->last, w->arg);
}

cJSON *ta_sim_wait(const ta_sim_t *s, const char *path, ta_check_fn check, const void *arg,
                   int timeout_ms)
{
    env_waiter_t w = {NULL, s, path, check, arg, NULL, 0};
    int rc = th_wait_until(sim_pred, &w, timeout_ms);
    return finish_wait(&w, rc, "azsim", timeout_ms);
}

/* --- an agent against an emulator ---------------------------------------- */

static int ready_pred(void *ud)
{
    const ta_agent_t *a = ud;
    th_resp_t r;
    ta_req(a, "GET", "/readyz", NULL, &r);
    long st = r.status;
    th_resp_free(&r);
    return st == 200;
}

int ta_wait_ready(const ta_agent_t *a, int timeout_ms)
{
    return th_wait_until(ready_pred, (void *)a, timeout_ms);
}

int ta_rc_start(ta_rc_t *c)
{
    static const char *const sim_args[] = {"--provision-ms",      "300", "--delete-ms", "200",
                                           "--share-recreate-ms", "500", NULL};
    memset(c, 0, sizeof *c);
    if (ta_sim_start(&c->sim, sim_args) != 0)
        return -1;
    char extra[256];
    snprintf(extra, sizeof extra, "workspace:\n  ports: [%d]\n  mountPath: %s\n", TA_RC_PORT,
             TA_RC_MOUNT);
    ta_opts_t o = {.azsim_port = c->sim.port,
                   .resync_seconds = TA_RC_RESYNC_S,
                   .status_refresh_seconds = TA_RC_REFRESH_S,
                   .shutdown_grace_seconds = 5,
                   .extra_yaml = extra};
    if (ta_start(&c->agent, &o) != 0)
        return -1;
    if (ta_wait_ready(&c->agent, 10000) != 0) {
        fprintf(stderr, "fixture: the agent did not become ready against azsim\n");
        return -1;
    }
    return 0;
}

int ta_rc_stop(ta_rc_t *c)
{
    int rc = 0;
    if (c->agent.bin && ta_stop(&c->agent) != 0)
        rc = -1;
    if (c->sim.bin && ta_sim_stop(&c->sim) != 0)
        rc = -1;
    return rc;
}

int ta_rc_setup(void **state)
{
    ta_rc_t *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    if (ta_rc_start(c) != 0) {
        ta_rc_stop(c);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

int ta_rc_teardown(void **state)
{
    ta_rc_t *c = *state;
    int rc = c ? ta_rc_stop(c) : 0;
    free(c);
    *state = NULL;
    return rc;
}
