/*
 * pkg/api environments: the handlers of one environment and of the list
 * (create, replace, get, delete, start, stop, activity), with the If-Match,
 * reaper and cloudRegion checks that the full sync shares.
 */
#include "api_int.h"

#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_LIMIT_DEFAULT 500
#define LIST_LIMIT_MAX 1000

/* ---- request and answer helpers --------------------------------------- */

/* Answers one changed environment object with its ETag once the change is
 * durable (api__respond_durable). */
static void respond_obj_durable(api_t *api, http_exchange_t *ex, int status, const env_obj_t *obj)
{
    size_t len;
    const char *json = store_obj_json(api->store, obj, &len);
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%lld\"", (long long)obj->generation);
    api__respond_durable(api, ex, status, etag, json, len);
}

/* Answers one environment object with its ETag. */
static void respond_obj(api_t *api, http_exchange_t *ex, int status, const env_obj_t *obj)
{
    size_t len;
    const char *json = store_obj_json(api->store, obj, &len);
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%lld\"", (long long)obj->generation);
    http_header_t h = {"ETag", etag};
    api__respond_json(ex, status, &h, 1, json, len);
}

/*
 * Parses If-Match: '"3"', '3', 'W/"3"' -> 3; '*' -> -2; absent -> -1;
 * unparseable -> -3.
 */
static int64_t parse_if_match(const http_request_t *req)
{
    const char *h = http_request_header(req, "if-match");
    if (!h)
        return -1;
    while (*h == ' ')
        h++;
    if (strcmp(h, "*") == 0)
        return -2;
    if (strncmp(h, "W/", 2) == 0)
        h += 2;
    if (*h == '"')
        h++;
    char *end;
    long long v = strtoll(h, &end, 10);
    if (end == h || v < 0)
        return -3;
    if (*end == '"')
        end++;
    while (*end == ' ')
        end++;
    return *end ? -3 : v;
}

/* ---- environments ------------------------------------------------------ */

int api__being_reaped(const api_t *api, const char *id)
{
    /* Only ids outside the desired set have orphans (a removed one too). */
    if (store_desired(api->store, id))
        return 0;
    return api->opts.reaping_hook(api->opts.reaping_ud, id);
}

void api__respond_reaping(http_exchange_t *ex, const char *id)
{
    char msg[200];
    snprintf(msg, sizeof(msg),
             "an orphaned resource of %s is being deleted by the reaper right now; retry in a "
             "few seconds",
             id);
    static const http_header_t h = {"Retry-After", "5"};
    http_respond_error_h(ex, 409, &h, 1, "Conflict", msg, NULL);
}

static void log_env(const char *msg, const http_request_t *req, const env_obj_t *obj)
{
    LOG(LOG_INFO, msg, LF_S("request_id", req->request_id), LF_S("env_id", obj->id),
        LF_I("generation", obj->generation), LF_S("phase", store_phase_name(obj->status.phase)));
}

/*
 * cloudRegion is fixed at creation: the file share, and so the user's data,
 * lives in that region and cannot follow a changed spec. Fills err and
 * returns 1 when the new spec would move an existing environment.
 */
int api__region_moved(api_t *api, const char *id, const env_spec_t *spec, const char *prefix,
                      spec_error_t *err)
{
    const env_obj_t *cur = store_get(api->store, id);
    if (!cur || !cur->has_spec || strcmp(cur->spec.cloud_region, spec->cloud_region) == 0)
        return 0;
    snprintf(err->code, sizeof(err->code), "InvalidSpec");
    snprintf(err->message, sizeof(err->message),
             "cloudRegion cannot change from %s: the file share holding the workspace stays in "
             "its region (delete and create the environment to move it)",
             cur->spec.cloud_region);
    snprintf(err->field, sizeof(err->field), "%scloudRegion", prefix);
    return 1;
}

/* Answers the 409 of a store_put that failed with rc: a stale If-Match,
 * a POST of an existing id, or an environment being deleted. */
static void respond_put_conflict(api_t *api, http_exchange_t *ex, const char *id, int rc)
{
    const env_obj_t *cur = store_get(api->store, id);
    char msg[160];
    if (rc == D8_ECONFLICT)
        snprintf(msg, sizeof(msg), "If-Match does not match the current generation %lld",
                 (long long)(cur ? cur->generation : 0));
    else if (rc == D8_EEXIST)
        snprintf(msg, sizeof(msg), "environment %s already exists", id);
    else
        snprintf(msg, sizeof(msg), "environment %s is being deleted", id);
    http_respond_error(ex, 409, "Conflict", msg, NULL);
}

/*
 * Creates or replaces one environment from a JSON spec. id NULL is a POST:
 * the id then comes from the body or is generated, and must_create refuses
 * an existing one. Answers 201 or 200 with the object and its ETag.
 */
static void put_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id,
                    int must_create)
{
    if (api__refuse_unwritable(api, ex))
        return;
    int64_t if_match = parse_if_match(req);
    if (if_match == -3) {
        http_respond_error(ex, 400, "InvalidArgument",
                           "If-Match must be a generation such as \"3\"", "If-Match");
        return;
    }
    cJSON *doc = api__read_json_body(ex, req);
    if (!doc)
        return;
    env_spec_t spec;
    spec_error_t err;
    char body_id[SPEC_ID_MAX + 1];
    char gen_id[SPEC_ID_MAX + 1];
    memset(&spec, 0, sizeof(spec));
    if (!id) {
        /* POST: the id comes from the body, or is generated. */
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(doc, "id");
        if (cJSON_IsObject(doc) && !jid) {
            unsigned char rnd[12];
            d8_random_bytes(rnd, sizeof(rnd));
            gen_id[0] = 'c';
            d8_hex(rnd, sizeof(rnd), gen_id + 1);
            id = gen_id;
        }
    }
    int rc = spec_decode(doc, id, &api->rules, "", &spec, body_id, &err);
    cJSON_Delete(doc);
    if (rc != D8_OK) {
        api__respond_spec_error(ex, &err);
        return;
    }
    if (!id)
        id = body_id;
    if (api__region_moved(api, id, &spec, "", &err)) {
        spec_release(&spec);
        api__respond_spec_error(ex, &err);
        return;
    }
    if (api__being_reaped(api, id)) {
        spec_release(&spec);
        api__respond_reaping(ex, id);
        return;
    }
    if (if_match == -2) {
        if_match = -1;
        if (!store_get(api->store, id)) {
            spec_release(&spec);
            http_respond_error(ex, 409, "Conflict",
                               "If-Match: * but the environment does not exist", NULL);
            return;
        }
    }
    store_put_result_t result;
    const env_obj_t *obj;
    rc = store_put(api->store, id, &spec, if_match, must_create, &result, &obj);
    if (rc != D8_OK) {
        spec_release(&spec);
        respond_put_conflict(api, ex, id, rc);
        return;
    }
    if (result == PUT_CREATED)
        log_env("environment created", req, obj);
    else if (result == PUT_UPDATED)
        log_env("environment updated", req, obj);
    respond_obj_durable(api, ex, result == PUT_CREATED ? 201 : 200, obj);
}

void api__get_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)req;
    const env_obj_t *obj = store_get(api->store, id);
    if (!obj) {
        http_respond_error(ex, 404, "NotFound", "no environment with this id", NULL);
        return;
    }
    respond_obj(api, ex, 200, obj);
}

void api__delete_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    if (api__refuse_unwritable(api, ex))
        return;
    const env_obj_t *obj = store_delete(api->store, id);
    log_env("environment deletion requested", req, obj);
    respond_obj_durable(api, ex, 202, obj);
}

/* POST /api/v1/environments: the id comes from the body or is generated. */
void api__create_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    put_env(api, ex, req, NULL, 1);
}

void api__replace_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    put_env(api, ex, req, id, 0);
}

/* Sets the desired powerState of a known environment and answers 202; a
 * start also counts as activity, so it ends an auto-stop. */
/* Answers a store refusal of a change to one environment: 404 for an
 * unknown id, 409 while it is being deleted. Returns 1 when it answered. */
static int refused(http_exchange_t *ex, int rc)
{
    if (rc == D8_ENOENT)
        http_respond_error(ex, 404, "NotFound", "no environment with this id", NULL);
    else if (rc != D8_OK)
        http_respond_error(ex, 409, "Conflict", "the environment is being deleted", NULL);
    return rc != D8_OK;
}

static void power_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id,
                      spec_power_t power)
{
    const env_obj_t *obj;
    if (api__refuse_unwritable(api, ex))
        return;
    int rc = store_set_power(api->store, id, power, &obj);
    if (rc == D8_OK && power == SPEC_POWER_RUNNING) {
        /* A start is activity: it also ends an auto-stop (same generation). */
        store_touch_notify(api->store, id, d8_wall_ms());
        obj = store_get(api->store, id);
    }
    if (refused(ex, rc))
        return;
    log_env(power == SPEC_POWER_RUNNING ? "environment start requested"
                                        : "environment stop requested",
            req, obj);
    respond_obj_durable(api, ex, 202, obj);
}

void api__start_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    power_env(api, ex, req, id, SPEC_POWER_RUNNING);
}

void api__stop_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    power_env(api, ex, req, id, SPEC_POWER_STOPPED);
}

/* POST .../restart: applies a change held back by updatePolicy OnNextStart
 * now (the group is recreated with the new spec). */
void api__restart_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    const env_obj_t *obj;
    if (api__refuse_unwritable(api, ex))
        return;
    int rc = store_restart(api->store, id, &obj);
    if (refused(ex, rc))
        return;
    log_env("environment restart requested", req, obj);
    respond_obj_durable(api, ex, 202, obj);
}

/* Records activity now, which resets the auto-stop clock. */
void api__activity_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)req;
    if (store_touch(api->store, id, d8_wall_ms()) != D8_OK) {
        http_respond_error(ex, 404, "NotFound", "no environment with this id", NULL);
        return;
    }
    http_respond(ex, 204, NULL, 0, NULL, NULL, 0);
}

typedef struct list_ctx {
    d8_buf_t *b;
    int first;
    char last[SPEC_ID_MAX + 1];
    store_t *store;
} list_ctx_t;

static void list_one(void *ud, const env_obj_t *obj)
{
    list_ctx_t *c = ud;
    if (!c->first)
        d8_buf_putc(c->b, ',');
    c->first = 0;
    store_obj_json_append(c->store, obj, c->b);
    snprintf(c->last, sizeof(c->last), "%s", obj->id);
}

/* Query parameter `name` as a filter: *out points into buf when given.
 * Answers 400 InvalidQuery and returns -1 when it is badly encoded or too
 * long for buf. */
static int string_param(const http_request_t *req, http_exchange_t *ex, const char *name, char *buf,
                        size_t size, const char **out)
{
    int n = http_query_param(req, name, buf, size);
    if (n == -2) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s is badly encoded or too long", name);
        http_respond_error(ex, 400, "InvalidQuery", msg, name);
        return -1;
    }
    if (n >= 0)
        *out = buf;
    return 0;
}

/* GET /api/v1/environments: one page of objects filtered by userId,
 * cloudRegion and phase, in id order; "continue" holds the last id when
 * more follow. */
void api__list_envs(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    (void)id;
    /* userId: up to 128 characters of up to 4 UTF-8 bytes each. */
    char user[4 * 128 + 1], phase[32], limit_s[16], cont[SPEC_ID_MAX + 8], region[64];
    int n;
    store_filter_t f = {NULL, NULL, -1};
    size_t limit = LIST_LIMIT_DEFAULT;
    const char *after = NULL;

    if (string_param(req, ex, "userId", user, sizeof(user), &f.user_id) < 0 ||
        string_param(req, ex, "cloudRegion", region, sizeof(region), &f.cloud_region) < 0)
        return;
    n = http_query_param(req, "phase", phase, sizeof(phase));
    if (n == -2 || (n >= 0 && (f.phase = store_phase_parse(phase)) < 0)) {
        http_respond_error(ex, 400, "InvalidQuery",
                           "phase must be one of CREATING, STARTING, RUNNING, STOPPING, "
                           "STOPPED, ERROR, DELETING",
                           "phase");
        return;
    }
    n = http_query_param(req, "limit", limit_s, sizeof(limit_s));
    if (n >= 0 || n == -2) {
        char *end;
        long v = n >= 0 ? strtol(limit_s, &end, 10) : 0;
        if (n == -2 || end == limit_s || *end || v < 1 || v > LIST_LIMIT_MAX) {
            http_respond_error(ex, 400, "InvalidQuery", "limit must be an integer from 1 to 1000",
                               "limit");
            return;
        }
        limit = (size_t)v;
    }
    n = http_query_param(req, "continue", cont, sizeof(cont));
    if (n == -2 || (n > 0 && !spec_id_valid(cont))) {
        http_respond_error(ex, 400, "InvalidQuery",
                           "continue must be a token from a previous answer", "continue");
        return;
    }
    if (n > 0)
        after = cont;

    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_puts(&b, "{\"items\":[");
    list_ctx_t c = {&b, 1, "", api->store};
    int more = store_list(api->store, after, &f, limit, list_one, &c);
    d8_buf_printf(
        &b, "],\"resourceVersion\":%llu,\"continue\":", (unsigned long long)store_rv(api->store));
    d8_buf_json_str(&b, more ? c.last : "");
    d8_buf_putc(&b, '}');
    api__respond_json(ex, 200, NULL, 0, b.data, b.len);
    d8_buf_release(&b);
}
