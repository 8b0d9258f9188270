/*
 * pkg/api: the route table, dispatch and bearer-key auth, the request and
 * answer helpers the handlers share, the controller routes (status,
 * orphans, reaper resume, probes, metrics) and the lifecycle. The
 * environment handlers are in api_env.c, the full sync in api_sync.c and
 * the watch streams in api_watch.c.
 */
#include "api_int.h"

#include "base/base.h"
#include "http/http.h"
#include "log/log.h"
#include "spec/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_HEARTBEAT_MS 15000

/* ---- answers ---------------------------------------------------------- */

void api__respond_json(http_exchange_t *ex, int status, const http_header_t *hdrs, size_t n,
                       const char *body, size_t len)
{
    http_respond(ex, status, hdrs, n, "application/json", body, len);
}

static void respond_cjson(http_exchange_t *ex, int status, cJSON *obj)
{
    char *body = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!body) {
        http_respond_error(ex, 500, "InternalError", "could not encode the answer", NULL);
        return;
    }
    api__respond_json(ex, status, NULL, 0, body, strlen(body));
    free(body);
}

void api__respond_spec_error(http_exchange_t *ex, const spec_error_t *e)
{
    http_respond_error(ex, 400, e->code[0] ? e->code : "InvalidSpec", e->message,
                       e->field[0] ? e->field : NULL);
}

/* ---- request helpers -------------------------------------------------- */

/* Checks Authorization: Bearer <key> against every configured key in
 * constant time (all keys are compared, whatever matches). */
static int authorized(const api_t *api, const http_request_t *req)
{
    size_t klen = 0;
    const char *key = api__bearer(req, &klen);
    if (!key)
        return 0;
    int ok = 0;
    for (size_t i = 0; i < api->cfg->napi_keys; i++) {
        const char *k = api->cfg->api_keys[i];
        ok |= d8_consttime_eq(key, klen, k, strlen(k));
    }
    return ok;
}

/* 1 when the request's body (if any) is declared as JSON. */
static int json_content(const http_request_t *req)
{
    const char *ct = http_request_header(req, "content-type");
    if (!ct)
        return req->body_len == 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

int api__check_json_body(http_exchange_t *ex, const http_request_t *req, int check_nul)
{
    if (!req->body_framed) {
        http_respond_error(ex, 411, "LengthRequired",
                           "a JSON body with Content-Length or chunked encoding is required", NULL);
        return 0;
    }
    if (!json_content(req)) {
        http_respond_error(ex, 415, "UnsupportedMediaType",
                           "the body must be sent as Content-Type: application/json", NULL);
        return 0;
    }
    if (req->body_len == 0) {
        http_respond_error(ex, 400, "InvalidJson", "the request body is empty", NULL);
        return 0;
    }
    if (check_nul && spec_json_has_nul(req->body, req->body_len)) {
        /* cJSON would silently cut the string there (a secret stored short). */
        http_respond_error(ex, 400, "InvalidJson",
                           "strings must not contain NUL characters (\\u0000)", NULL);
        return 0;
    }
    return 1;
}

/*
 * Common checks of a request that carries a JSON body: framing (411),
 * media type (415) and JSON syntax (400). Returns the parsed document or
 * NULL after answering.
 */
cJSON *api__read_json_body(http_exchange_t *ex, const http_request_t *req)
{
    if (!api__check_json_body(ex, req, 1))
        return NULL;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 0);
    if (doc) {
        /* One JSON value only: trailing non-space is malformed input. */
        const char *stop = req->body + req->body_len;
        while (end < stop && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            end++;
        if (end != stop) {
            cJSON_Delete(doc);
            doc = NULL;
        }
    }
    if (!doc) {
        http_respond_error(ex, 400, "InvalidJson",
                           "the request body is not valid JSON (or nests deeper than 1000)", NULL);
        return NULL;
    }
    return doc;
}

/* ---- controller routes ------------------------------------------------ */

/* GET /api/v1/status: the store's counts here, the controller's state
 * (queue, regions, throttle, reaper) from the status hook. */
static void status_route(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)req;
    (void)id;
    size_t counts[PHASE__COUNT];
    store_phase_counts(api->store, counts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", D8_VERSION);
    cJSON_AddStringToObject(o, "controller", api->cfg->controller_name);
    cJSON_AddBoolToObject(o, "synced", store_synced(api->store));
    cJSON_AddBoolToObject(o, "ready", api->ready);
    cJSON_AddNumberToObject(o, "resourceVersion", (double)store_rv(api->store));
    cJSON *envs = cJSON_AddObjectToObject(o, "environments");
    cJSON_AddNumberToObject(envs, "total", (double)store_count(api->store));
    cJSON *by = cJSON_AddObjectToObject(envs, "byPhase");
    for (int i = 0; i < PHASE__COUNT; i++)
        cJSON_AddNumberToObject(by, store_phase_name((env_phase_t)i), (double)counts[i]);
    cJSON_AddNumberToObject(o, "watchClients", (double)api->nwatchers);
    api->opts.status_hook(api->opts.status_ud, o);
    respond_cjson(ex, 200, o);
}

static void orphans_route(api_t *api, http_exchange_t *ex, const http_request_t *req,
                          const char *id)
{
    (void)req;
    (void)id;
    respond_cjson(ex, 200, api->opts.orphans_hook(api->opts.orphans_ud));
}

static void metrics_route(api_t *api, http_exchange_t *ex, const http_request_t *req,
                          const char *id)
{
    (void)req;
    (void)id;
    d8_buf_t b;
    d8_buf_init(&b);
    metrics_render(api->metrics, &b);
    http_respond(ex, 200, NULL, 0, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    d8_buf_release(&b);
}

static void healthz_route(api_t *api, http_exchange_t *ex, const http_request_t *req,
                          const char *id)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    (void)api;
    (void)req;
    (void)id;
    api__respond_json(ex, 200, NULL, 0, ok, sizeof(ok) - 1);
}

static void readyz_route(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    static const char ready[] = "{\"status\":\"ready\"}";
    char reason[200], msg[240];
    (void)req;
    (void)id;
    if (api->ready && !api->shutting_down && api__durable_unwritable(api, reason, sizeof(reason))) {
        snprintf(msg, sizeof(msg), "state file not writable: %s", reason);
        http_respond_error(ex, 503, "NotReady", msg, NULL);
    } else if (api->ready && !api->shutting_down)
        api__respond_json(ex, 200, NULL, 0, ready, sizeof(ready) - 1);
    else
        http_respond_error(ex, 503, "NotReady",
                           api->shutting_down ? "shutting down" : api->ready_reason, NULL);
}

static void resume_route(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    int was = api->opts.resume_hook(api->opts.resume_ud);
    LOG(LOG_WARN, "reaper resume requested", LF_S("request_id", req->request_id),
        LF_B("was_suspended", was));
    api__respond_json(ex, 200, NULL, 0, was ? "{\"resumed\":true}" : "{\"resumed\":false}",
                      was ? 16 : 17);
}

static void collect(void *ud)
{
    api_t *api = ud;
    size_t counts[PHASE__COUNT];
    store_phase_counts(api->store, counts);
    for (int i = 0; i < PHASE__COUNT; i++) {
        const char *v[] = {store_phase_name((env_phase_t)i)};
        metrics_set(api->m_envs, v, (double)counts[i]);
    }
    metrics_set(api->m_watchers, NULL, (double)api->nwatchers);
    metrics_set(api->m_rv, NULL, (double)store_rv(api->store));
    api__tls_collect(api);
}

/* ---- route table ------------------------------------------------------ */

enum {
    ROUTE_AUTH = 1u << 0,  /* needs Authorization: Bearer <key> */
    ROUTE_HEAD = 1u << 1,  /* HEAD is answered as GET; Allow still names GET only */
    ROUTE_QUIET = 1u << 2, /* probes and scrapes are frequent: access log at debug */
    ROUTE_PROBE = 1u << 3, /* also served on the probe listener (probeListen) */
};

/* The configured body limit a route takes. */
typedef enum { BODY_DEFAULT, BODY_SYNC } route_body_t;

/* A route's handler; id is the decoded, valid {id} segment or NULL. */
typedef void (*route_fn)(api_t *api, http_exchange_t *ex, const http_request_t *req,
                         const char *id);

/* One method on one path pattern. The pattern is also the route label of
 * the request metrics, so that every id shares one series. */
typedef struct route {
    const char *method;
    const char *pattern;
    unsigned flags;
    route_body_t body;
    route_fn fn;
    const char *query; /* accepted query parameters, space-separated */
} route_t;

/* Methods that share a pattern are listed in the order Allow names them. */
static const route_t routes[] = {
    {"GET", "/healthz", ROUTE_HEAD | ROUTE_QUIET | ROUTE_PROBE, BODY_DEFAULT, healthz_route, NULL},
    {"GET", "/readyz", ROUTE_HEAD | ROUTE_QUIET | ROUTE_PROBE, BODY_DEFAULT, readyz_route, NULL},
    {"GET", "/metrics", ROUTE_QUIET | ROUTE_PROBE, BODY_DEFAULT, metrics_route, NULL},
    {"GET", "/api/v1/environments", ROUTE_AUTH, BODY_DEFAULT, api__list_envs,
     "userId cloudRegion phase limit continue"},
    {"POST", "/api/v1/environments", ROUTE_AUTH, BODY_DEFAULT, api__create_env, NULL},
    {"PUT", "/api/v1/environments", ROUTE_AUTH, BODY_SYNC, api__full_sync, NULL},
    {"GET", "/api/v1/environments/{id}", ROUTE_AUTH, BODY_DEFAULT, api__get_env, NULL},
    {"PUT", "/api/v1/environments/{id}", ROUTE_AUTH, BODY_DEFAULT, api__replace_env, NULL},
    {"DELETE", "/api/v1/environments/{id}", ROUTE_AUTH, BODY_DEFAULT, api__delete_env, NULL},
    {"POST", "/api/v1/environments/{id}/start", ROUTE_AUTH, BODY_DEFAULT, api__start_env, NULL},
    {"POST", "/api/v1/environments/{id}/stop", ROUTE_AUTH, BODY_DEFAULT, api__stop_env, NULL},
    {"POST", "/api/v1/environments/{id}/restart", ROUTE_AUTH, BODY_DEFAULT, api__restart_env, NULL},
    {"POST", "/api/v1/environments/{id}/activity", ROUTE_AUTH, BODY_DEFAULT, api__activity_env,
     NULL},
    {"GET", "/api/v1/environments/{id}/logs", ROUTE_AUTH, BODY_DEFAULT, api__env_logs, "tail"},
    {"GET", "/api/v1/environments/{id}/events", ROUTE_AUTH, BODY_DEFAULT, api__env_events, NULL},
    {"GET", "/api/v1/watch", ROUTE_AUTH, BODY_DEFAULT, api__watch, "resourceVersion"},
    {"GET", "/api/v1/orphans", ROUTE_AUTH, BODY_DEFAULT, orphans_route, NULL},
    {"POST", "/api/v1/reaper/resume", ROUTE_AUTH, BODY_DEFAULT, resume_route, NULL},
    {"GET", "/api/v1/preflight", ROUTE_AUTH, BODY_DEFAULT, api__preflight, NULL},
    {"GET", "/api/v1/status", ROUTE_AUTH, BODY_DEFAULT, status_route, NULL},
    {"GET", "/api/v1/usage", ROUTE_AUTH, BODY_DEFAULT, api__usage, "from to userId granularity"},
    {"GET", "/api/v1/retained", ROUTE_AUTH, BODY_DEFAULT, api__retained, NULL},
};

/* Paths under this prefix need a key even when no route serves them, so
 * that a client without one cannot probe which routes exist. */
static const char api_prefix[] = "/api/v1/";

typedef enum { MATCH_NONE, MATCH_ID, MATCH_FULL } route_match_t;

/*
 * Matches path against pattern; "{id}" matches one non-empty segment, whose
 * raw (undecoded) text is returned in *id and *idlen. MATCH_FULL: the whole
 * path matches, where one trailing '/' after an {id} that ends the pattern
 * is tolerated. MATCH_ID: the path matches up to the {id} and has at most
 * one segment after it, so it names that id even if no route serves it.
 */
static route_match_t route_match(const char *pattern, const char *path, const char **id,
                                 size_t *idlen)
{
    const char *p = pattern, *s = path, *after_id = NULL;
    *id = NULL;
    *idlen = 0;
    while (*p) {
        /* The first character decides: no call per character on the hot path. */
        if (*p == '{' && strncmp(p, "{id}", 4) == 0) {
            size_t n = strcspn(s, "/");
            if (n == 0)
                return MATCH_NONE;
            *id = s;
            *idlen = n;
            s += n;
            p += 4;
            after_id = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else {
            break;
        }
    }
    if (!*p && (!*s || (s == after_id && strcmp(s, "/") == 0)))
        return MATCH_FULL;
    if (after_id && !strchr(after_id + (*after_id == '/'), '/'))
        return MATCH_ID;
    return MATCH_NONE;
}

/* What the route table says about one request. */
typedef struct route_lookup {
    const route_t *route; /* serves the method on the path, or NULL */
    const route_t *first; /* first route of the path (its label), or NULL */
    char allow[64];       /* methods of the path's routes: "GET, PUT, DELETE" */
    const char *id;       /* raw {id} segment the path names, or NULL */
    size_t idlen;
} route_lookup_t;

static int route_serves(const route_t *r, const char *method)
{
    return strcmp(r->method, method) == 0 ||
           ((r->flags & ROUTE_HEAD) && strcmp(method, "HEAD") == 0 &&
            strcmp(r->method, "GET") == 0);
}

/* Looks method and path up in the route table (only the ROUTE_PROBE
 * routes when probe_only); the one place that decides which route a
 * request belongs to. */
static void route_lookup(const char *method, const char *path, int probe_only, route_lookup_t *lk)
{
    memset(lk, 0, sizeof(*lk));
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route_t *r = &routes[i];
        if (probe_only && !(r->flags & ROUTE_PROBE))
            continue;
        const char *id;
        size_t idlen;
        route_match_t m = route_match(r->pattern, path, &id, &idlen);
        if (m == MATCH_NONE)
            continue;
        if (!lk->id) {
            lk->id = id;
            lk->idlen = idlen;
        }
        if (m != MATCH_FULL)
            continue;
        if (!lk->first)
            lk->first = r;
        if (!lk->route && route_serves(r, method))
            lk->route = r;
        size_t used = strlen(lk->allow);
        snprintf(lk->allow + used, sizeof(lk->allow) - used, "%s%s", used ? ", " : "", r->method);
    }
}

/* 1 when `word` is one of the space-separated words of `list`. */
static int word_in(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p += len + (p[len] == ' ');
    }
    return 0;
}

/* Refuses the request in on_head's verdict: the answer goes out without
 * reading a body. msg is copied. */
static void refuse(http_head_verdict_t *v, int status, const char *code, const char *msg,
                   const char *field)
{
    v->status = status;
    v->code = code;
    snprintf(v->message, sizeof(v->message), "%s", msg);
    snprintf(v->field, sizeof(v->field), "%s", field ? field : "");
}

/* Refuses with 400 InvalidQuery naming the first query parameter the
 * route does not take, so that a misspelt filter never silently lists
 * everything; returns 1 when it refused. */
static int unknown_query(const route_t *r, const http_request_t *req, http_head_verdict_t *v)
{
    const char *q = req->query;
    while (q && *q) {
        size_t len = strcspn(q, "&");
        size_t nlen = strcspn(q, "=&");
        char name[64];
        int ok = nlen > 0 && http_pct_decode(q, nlen, name, sizeof(name)) >= 0;
        if (nlen > 0 && !(ok && word_in(r->query, name))) {
            char msg[160];
            snprintf(msg, sizeof(msg), "unknown query parameter %s%s",
                     ok ? name : "(badly encoded)", r->query ? "" : ": this route takes none");
            refuse(v, 400, "InvalidQuery", msg, ok ? name : NULL);
            return 1;
        }
        q += len + (q[len] == '&');
    }
    return 0;
}

/*
 * Decides a request at headers-complete, before any body byte is read,
 * from one route-table lookup: key (401 with WWW-Authenticate), then the
 * id the path names (400 InvalidId), then the query (400 InvalidQuery),
 * else 405 with Allow for a path served with other methods, else 404.
 * A request that passes gets its route's body limit; a request refused
 * here never reaches a handler and its body is never read, so that
 * clients without a key get no more than a small answer.
 */
static void head_check(api_t *api, const http_request_t *req, http_head_verdict_t *v,
                       int probe_only)
{
    route_lookup_t lk;
    route_lookup(req->method, req->path, probe_only, &lk);
    const route_t *r = lk.route ? lk.route : lk.first;
    int needs_key = r ? (r->flags & ROUTE_AUTH) != 0
                      : strncmp(req->path, api_prefix, sizeof(api_prefix) - 1) == 0;
    /* The activity route also opens with its environment's token. */
    if (!probe_only && needs_key && !authorized(api, req) &&
        !(lk.route && lk.route->fn == api__activity_env &&
          api__activity_authorized(api, req, lk.id, lk.idlen))) {
        v->header_name = "WWW-Authenticate";
        snprintf(v->header_value, sizeof(v->header_value), "Bearer realm=\"dev8-agent\"");
        refuse(v, 401, "Unauthorized", "a valid Authorization: Bearer <key> header is required",
               NULL);
        return;
    }
    if (lk.id) {
        char id[SPEC_ID_MAX + 2];
        if (http_pct_decode(lk.id, lk.idlen, id, sizeof(id)) < 0 || !spec_id_valid(id)) {
            refuse(v, 400, "InvalidId",
                   "environment ids are 1-48 characters of a-z, 0-9 and single '-', starting "
                   "and ending with a letter or digit",
                   "id");
            return;
        }
    }
    if (lk.route && unknown_query(lk.route, req, v))
        return;
    if (!lk.route && lk.allow[0]) {
        char msg[128];
        snprintf(msg, sizeof(msg), "this route accepts %s", lk.allow);
        v->header_name = "Allow";
        snprintf(v->header_value, sizeof(v->header_value), "%s", lk.allow);
        refuse(v, 405, "MethodNotAllowed", msg, NULL);
        return;
    }
    if (!lk.route) {
        refuse(v, 404, "NotFound", "no such route", NULL);
        return;
    }
    v->route = lk.route;
    v->body_limit =
        lk.route->body == BODY_SYNC ? api->cfg->max_sync_body_bytes : api->cfg->max_body_bytes;
}

static void on_head(void *ud, const http_request_t *req, http_head_verdict_t *v)
{
    head_check(ud, req, v, 0);
}

/* The probe listener serves /healthz, /readyz and /metrics only, without
 * a key; everything else is 404 there. */
static void on_probe_head(void *ud, const http_request_t *req, http_head_verdict_t *v)
{
    head_check(ud, req, v, 1);
    v->body_limit = 0;
}

/* Runs the route on_head chose (its {id} segment decoded again: it was
 * checked there). */
static void handle(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    api_t *api = ud;
    const route_t *r = req->route;
    if (!r) {
        http_respond_error(ex, 404, "NotFound", "no such route", NULL);
        return;
    }
    const char *raw;
    size_t rawlen;
    char id[SPEC_ID_MAX + 2];
    route_match(r->pattern, req->path, &raw, &rawlen);
    if (raw && http_pct_decode(raw, rawlen, id, sizeof(id)) < 0)
        id[0] = '\0';
    r->fn(api, ex, req, raw ? id : NULL);
}

/* Counts, times and logs every answer under its route's label ("other"
 * for paths no route serves, including the server's own error answers). */
static void access_cb(void *ud, const char *method, const char *path, int status,
                      uint64_t duration_ns, const char *request_id)
{
    api_t *api = ud;
    route_lookup_t lk;
    route_lookup(method, path, 0, &lk);
    const char *route = lk.first ? lk.first->pattern : "other";
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    const char *labels[] = {route, method[0] ? method : "-", code};
    double secs = (double)duration_ns / 1e9;
    metrics_add(api->m_requests, labels, 1);
    metrics_observe(api->m_duration, labels, secs);
    log_level_t lvl = lk.first && (lk.first->flags & ROUTE_QUIET) ? LOG_DEBUG : LOG_INFO;
    LOG(lvl, "http request", LF_S("request_id", request_id), LF_S("method", method),
        LF_S("route", route), LF_I("status", status), LF_D("duration_ms", secs * 1000.0));
}

/* ---- lifecycle -------------------------------------------------------- */

/* The API listener, with the limits of the config. */
static int api_listen(api_t *api)
{
    const config_t *cfg = api->cfg;
    http_server_opts_t so = {
        .host = cfg->listen_host,
        .port = cfg->listen_port,
        .max_header_bytes = 16384,
        .max_connections = cfg->max_connections,
        .max_connections_per_client = cfg->max_connections_per_client,
        .default_body_limit = cfg->max_body_bytes,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .on_head = on_head,
        .handler = handle,
        .access = access_cb,
        .ud = api,
        .tls = api->tls, /* NULL: plain HTTP */
    };
    return http_server_new(api->loop, &so, &api->srv);
}

/* Probes and scrapes get their own listener, so that no number of API
 * clients can keep kubelet or Prometheus out: 64 connections, short
 * timeouts, no body, no key. */
#define PROBE_MAX_CONNECTIONS 64

static int probe_listen(api_t *api)
{
    http_server_opts_t po = {
        .host = api->cfg->probe_listen_host,
        .port = api->cfg->probe_listen_port,
        .max_header_bytes = 8192,
        .max_connections = PROBE_MAX_CONNECTIONS,
        .default_body_limit = 1024,
        .header_timeout_ms = 5000,
        .idle_timeout_ms = 30000,
        .on_head = on_probe_head,
        .handler = handle,
        .access = access_cb,
        .ud = api,
    };
    return http_server_new(api->loop, &po, &api->probe_srv);
}

int api_new(const api_opts_t *opts, api_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!opts->status_hook || !opts->orphans_hook || !opts->resume_hook || !opts->reaping_hook ||
        !opts->preflight_hook || !opts->logs_hook) {
        snprintf(err, errlen,
                 "the API needs its status, orphans, resume, reaping, preflight and logs hooks");
        return D8_EINVAL;
    }
    const config_t *cfg = opts->cfg;
    api_t *api = d8_xcalloc(1, sizeof(*api));
    d8_list_init(&api->watchers);
    d8_list_init(&api->pending);
    api->opts = *opts;
    api->loop = opts->loop;
    api->cfg = cfg;
    api->store = opts->store;
    api->metrics = opts->metrics;
    snprintf(api->ready_reason, sizeof(api->ready_reason), "starting");

    api->region_names = d8_xcalloc(cfg->nregions + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->nregions; i++)
        api->region_names[i] = cfg->regions[i].name;
    api->image_keys = d8_xcalloc(cfg->nimages + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->nimages; i++)
        api->image_keys[i] = cfg->images[i].key;
    api->rules.regions = api->region_names;
    api->rules.nregions = cfg->nregions;
    api->rules.images = api->image_keys;
    api->rules.nimages = cfg->nimages;
    api->rules.max_storage_gb = cfg->max_storage_gb;

    static const char *const req_labels[] = {"route", "method", "code"};
    static const char *const phase_label[] = {"phase"};
    static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                     0.01,   0.025,   0.05,   0.1,   0.25,   1};
    api->m_requests =
        metrics_counter(api->metrics, "dev8_http_requests_total",
                        "API requests by route, method and status code.", 3, req_labels);
    api->m_duration = metrics_histogram(api->metrics, "dev8_http_request_duration_seconds",
                                        "Time from the first byte of a request to its answer.", 3,
                                        req_labels, buckets, sizeof(buckets) / sizeof(buckets[0]));
    api->m_envs = metrics_gauge(api->metrics, "dev8_environments",
                                "Environments in the desired state by phase.", 1, phase_label);
    api->m_watchers = metrics_gauge(api->metrics, "dev8_watch_clients",
                                    "Open watch (Server-Sent Events) streams.", 0, NULL);
    api->m_rv = metrics_gauge(api->metrics, "dev8_store_resource_version",
                              "Current resourceVersion of the desired state.", 0, NULL);
    metrics_on_collect(api->metrics, collect, api);

    int rc = api__tls_start(api, err, errlen); /* err says why when it fails */
    if (rc == D8_OK && (rc = api_listen(api)) != D8_OK) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port,
                 d8_strerror(rc));
    } else if (rc == D8_OK && cfg->probe_listen_host && (rc = probe_listen(api)) != D8_OK) {
        snprintf(err, errlen, "cannot listen on %s:%d (probeListen): %s", cfg->probe_listen_host,
                 cfg->probe_listen_port, d8_strerror(rc));
        http_server_free(api->srv, NULL, NULL);
    }
    if (rc == D8_OK && (rc = api__activity_listen(api, err, errlen)) != D8_OK) {
        http_server_free(api->srv, NULL, NULL);
        if (api->probe_srv)
            http_server_free(api->probe_srv, NULL, NULL);
    }
    if (rc != D8_OK) {
        http_tls_free(api->tls); /* NULL, or used by no connection yet */
        free(api->region_names);
        free(api->image_keys);
        free(api);
        return rc;
    }
    uv_timer_init(api->loop, &api->heartbeat);
    api->heartbeat.data = api;
    uv_timer_start(&api->heartbeat, api__heartbeat_cb, WATCH_HEARTBEAT_MS, WATCH_HEARTBEAT_MS);
    api__events_start(api);
    *out = api;
    return D8_OK;
}

int api_port(const api_t *api)
{
    return http_server_port(api->srv);
}

int api_probe_port(const api_t *api)
{
    return api->probe_srv ? http_server_port(api->probe_srv) : 0;
}

void api_set_ready(api_t *api, int ready, const char *reason)
{
    api->ready = ready;
    snprintf(api->ready_reason, sizeof(api->ready_reason), "%s", reason ? reason : "");
}

size_t api_connections(const api_t *api)
{
    return http_server_connections(api->srv);
}

void api_shutdown(api_t *api)
{
    if (api->shutting_down)
        return;
    api->shutting_down = 1;
    api__events_stop(api);
    http_server_stop_accepting(api->srv);
    if (api->activity_srv)
        http_server_stop_accepting(api->activity_srv);
    uv_timer_stop(&api->heartbeat);
    /* End every watch stream; their close callbacks free the clients. */
    while (!d8_list_empty(&api->watchers)) {
        api__watch_client_t *c = d8_container_of(api->watchers.next, api__watch_client_t, link);
        http_exchange_t *ex = c->ex;
        http_exchange_on_close(ex, NULL, NULL);
        api__watch_client_free(c);
        http_stream_end(ex);
    }
}

static void api_release(api_t *api)
{
    void (*done)(void *) = api->done;
    void *arg = api->done_arg;
    free(api->region_names);
    free(api->image_keys);
    free(api);
    if (done)
        done(arg);
}

static void part_closed(api_t *api)
{
    if (--api->pending_closes == 0)
        api_release(api);
}

static void heartbeat_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

static void server_freed(void *arg)
{
    part_closed(arg);
}

/* The API server's: its TLS context goes with it (the probe server has
 * none). */
static void api_server_freed(void *arg)
{
    api_t *api = arg;
    http_tls_free(api->tls); /* no connection uses it any more */
    api->tls = NULL;
    part_closed(arg);
}

void api_free(api_t *api, void (*done)(void *arg), void *arg)
{
    if (!api) {
        if (done)
            done(arg);
        return;
    }
    api__events_stop(api);
    api->done = done;
    api->done_arg = arg;
    api__preflight_detach(api);
    api_shutdown(api);
    api__sync_detach(api);
    api->pending_closes = 2 + (api->probe_srv != NULL) + (api->activity_srv != NULL);
    uv_close((uv_handle_t *)&api->heartbeat, heartbeat_closed);
    http_server_free(api->srv, api_server_freed, api);
    if (api->probe_srv)
        http_server_free(api->probe_srv, server_freed, api);
    if (api->activity_srv)
        http_server_free(api->activity_srv, server_freed, api);
}
