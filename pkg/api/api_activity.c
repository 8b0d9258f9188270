/*
 * pkg/api: activity reported by the workspaces themselves. The activity
 * route takes, besides an API key, the token of its own environment
 * (DEV8_ACTIVITY_TOKEN, pkg/activity); activity.listen opens a second
 * listener that serves only POST /api/v1/environments/{id}/activity and
 * only with such tokens, so it can be exposed through an Ingress without
 * exposing the API. Tokens are never logged.
 */
#include "api_int.h"

#include "log/log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ACTIVITY_PREFIX "/api/v1/environments/"
#define ACTIVITY_SUFFIX "/activity"

const char *api__bearer(const http_request_t *req, size_t *len)
{
    const char *h = http_request_header(req, "authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    const char *t = h + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n && t[n - 1] == ' ')
        n--;
    *len = n;
    return n ? t : NULL;
}

int api__activity_authorized(const api_t *api, const http_request_t *req, const char *raw_id,
                             size_t idlen)
{
    char id[SPEC_ID_MAX + 2];
    size_t tlen = 0;
    const char *token = api__bearer(req, &tlen);
    if (!api->opts.activity || !raw_id || !token ||
        http_pct_decode(raw_id, idlen, id, sizeof(id)) < 0 || !spec_id_valid(id))
        return 0;
    return activity_token_ok(api->opts.activity, id, token, tlen);
}

/* The raw id of an activity path, or NULL when path is not one. */
static const char *activity_path_id(const char *path, size_t *idlen)
{
    size_t plen = strlen(ACTIVITY_PREFIX), slen = strlen(ACTIVITY_SUFFIX), n = strlen(path);
    if (n <= plen + slen || strncmp(path, ACTIVITY_PREFIX, plen) != 0 ||
        strcmp(path + n - slen, ACTIVITY_SUFFIX) != 0)
        return NULL;
    const char *id = path + plen;
    *idlen = n - plen - slen;
    if (memchr(id, '/', *idlen))
        return NULL;
    return id;
}

/* The activity listener's only route. */
static void activity_handle(void *ud, http_exchange_t *ex, const http_request_t *req)
{
    api_t *api = ud;
    size_t idlen = 0;
    const char *raw = activity_path_id(req->path, &idlen);
    if (!raw) {
        http_respond_error(ex, 404, "NotFound",
                           "this listener serves only POST /api/v1/environments/{id}/activity",
                           NULL);
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        static const http_header_t allow = {"Allow", "POST"};
        http_respond_error_h(ex, 405, &allow, 1, "MethodNotAllowed", "this route accepts POST",
                             NULL);
        return;
    }
    if (!api__activity_authorized(api, req, raw, idlen)) {
        static const http_header_t h = {"WWW-Authenticate", "Bearer realm=\"dev8-activity\""};
        http_respond_error_h(ex, 401, &h, 1, "Unauthorized",
                             "the environment's DEV8_ACTIVITY_TOKEN is required", NULL);
        return;
    }
    char id[SPEC_ID_MAX + 2];
    http_pct_decode(raw, idlen, id, sizeof(id));
    if (store_touch(api->store, id, d8_wall_ms()) != D8_OK) {
        http_respond_error(ex, 404, "NotFound", "no environment with this id", NULL);
        return;
    }
    http_respond(ex, 204, NULL, 0, NULL, NULL, 0);
}

/* Requests of the activity listener: logged at debug, never with tokens. */
static void activity_access(void *ud, const char *method, const char *path, int status,
                            uint64_t duration_ns, const char *request_id)
{
    (void)ud;
    LOG(LOG_DEBUG, "activity request", LF_S("request_id", request_id), LF_S("method", method),
        LF_S("path", path), LF_I("status", status),
        LF_I("duration_us", (long long)(duration_ns / 1000)));
}

int api__activity_listen(api_t *api, char *err, size_t errlen)
{
    const config_t *cfg = api->cfg;
    if (!cfg->activity_listen_host)
        return D8_OK;
    if (!api->opts.activity) {
        snprintf(err, errlen, "activity.listen needs activity.url and its key");
        return D8_EINVAL;
    }
    http_server_opts_t so = {
        .host = cfg->activity_listen_host,
        .port = cfg->activity_listen_port,
        .max_connections = 256,
        .default_body_limit = 1024,
        .handler = activity_handle,
        .access = activity_access,
        .ud = api,
    };
    int rc = http_server_new(api->loop, &so, &api->activity_srv);
    if (rc != D8_OK) {
        snprintf(err, errlen, "cannot listen on %s:%d (activity.listen): %s",
                 cfg->activity_listen_host, cfg->activity_listen_port, d8_strerror(rc));
        return rc;
    }
    LOG(LOG_INFO, "activity listener", LF_S("host", cfg->activity_listen_host),
        LF_I("port", http_server_port(api->activity_srv)));
    return D8_OK;
}
