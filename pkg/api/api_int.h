/*
 * pkg/api internals shared between its files: api.c (route table,
 * dispatch, auth, controller routes, lifecycle), api_env.c (environment
 * handlers), api_sync.c (full sync) and api_watch.c (watch streams). Not
 * part of the public contract.
 */
#ifndef D8_API_INT_H
#define D8_API_INT_H

#include "api.h"

#include "base/list.h"
#include "http/http.h"
#include "http/http_tls.h"
#include "spec/spec.h"

typedef struct api__watch_client api__watch_client_t;
typedef struct api__pf_batch api__pf_batch_t;
typedef struct api__pending api__pending_t;

/* The API: its borrowed collaborators, the HTTP server, readiness, the
 * open watch streams and the metric families. */
struct api {
    uv_loop_t *loop;
    const config_t *cfg;
    store_t *store;
    metrics_t *metrics;
    http_server_t *srv;
    http_server_t *probe_srv;    /* controller.probeListen, or NULL */
    http_server_t *activity_srv; /* activity.listen, or NULL */
    api_opts_t opts;

    spec_rules_t rules;
    const char **region_names;
    const char **image_keys;

    int ready;
    char ready_reason[128];
    int shutting_down;

    d8_list_t pending;          /* api__pending_t: answers waiting for the state file */
    struct api__sync_job *sync; /* the full sync in progress (api_sync.c), or NULL */
    d8_list_t watchers;         /* api__watch_client_t, one per open watch stream */
    api__pf_batch_t *pf_batch;  /* the preflight run in flight, or NULL */
    size_t nwatchers;
    uint64_t snap_turn;    /* uv_now of the loop turn the snapshot budget is for */
    uint64_t snap_turn_ns; /* uv_hrtime when that turn's snapshot work began */
    uv_timer_t heartbeat;

    metric_family_t *m_requests;
    metric_family_t *m_duration;
    metric_family_t *m_envs;
    metric_family_t *m_watchers;
    metric_family_t *m_rv;
    /* api.tls (api_tls.c): NULL when the API speaks plain HTTP. */
    http_tls_t *tls;
    metric_family_t *m_tls_events, *m_tls_expiry;
    http_tls_stats_t tls_reported; /* counters already added to m_tls_events */

    void (*done)(void *arg);
    void *done_arg;
    int pending_closes;
};

/* One open watch stream, in api->watchers until its exchange closes. */
struct api__watch_client {
    api_t *api;
    http_exchange_t *ex;
    store_watcher_t *w; /* NULL while the snapshot is being sent */
    d8_list_t link;     /* in api->watchers */
    /* The snapshot (a watch without resourceVersion): the objects after
     * cursor are still to be sent, as ADDED with id snap_rv; then the
     * events after snap_rv are replayed from the ring and w follows. */
    int snapshot;
    uint64_t snap_rv;
    char cursor[SPEC_ID_MAX + 1];
    uv_idle_t idle; /* the next slice, when the socket took the last at once */
};

/* ---- request and answer helpers (api.c) --------------------------------- */

/* Answers body (borrowed) as application/json with extra headers hdrs. */
void api__respond_json(http_exchange_t *ex, int status, const http_header_t *hdrs, size_t n,
                       const char *body, size_t len);
/* Answers 400 with a spec error's code, message and field. */
void api__respond_spec_error(http_exchange_t *ex, const spec_error_t *e);
/* Checks framing (411), media type (415) and JSON syntax (400) of a JSON
 * body; returns the parsed document (owned by the caller) or NULL after
 * answering. */
cJSON *api__read_json_body(http_exchange_t *ex, const http_request_t *req);
/* The checks of api__read_json_body without the parse (411, 415, an empty
 * body and, when check_nul, NUL characters): 1 when they pass, else 0
 * after answering. */
int api__check_json_body(http_exchange_t *ex, const http_request_t *req, int check_nul);

/* ---- durable acknowledgements (api_durable.c) --------------------------- */

/* 1 when a state file is configured and cannot be written, with the
 * reason in reason (len bytes). */
int api__durable_unwritable(const api_t *api, char *reason, size_t len);
/* Answers 503 StateNotWritable (Retry-After) and returns 1 when the state
 * file cannot be written; 0 otherwise. Mutating handlers call it before
 * changing anything. */
int api__refuse_unwritable(api_t *api, http_exchange_t *ex);
/* Answers body (JSON, borrowed) with status and an ETag (borrowed, may be
 * NULL) once the changes made so far are on disk: at once without a state
 * file, else after the write holding them (503 when it fails). */
void api__respond_durable(api_t *api, http_exchange_t *ex, int status, const char *etag,
                          const char *body, size_t len);

/* ---- environments (api_env.c) ------------------------------------------ */

/* POST /api/v1/environments/{id}/restart: apply a held-back update now. */
void api__restart_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
/* 1 while the reaper deletes a resource of env id (the reaping hook). */
int api__being_reaped(const api_t *api, const char *id);
/* Answers 409 with Retry-After while the reaper deletes a resource of id. */
void api__respond_reaping(http_exchange_t *ex, const char *id);
/* Fills err and returns 1 when spec would move existing env id to another
 * cloudRegion; prefix goes before the field name ("items[3]."). */
int api__region_moved(api_t *api, const char *id, const env_spec_t *spec, const char *prefix,
                      spec_error_t *err);

/*
 * Route handlers, one per route of the table in api.c; id is the decoded,
 * valid {id} segment or NULL. Each answers the exchange (api_env.c: the
 * environments, api_sync.c: the full sync, api_watch.c: the watch).
 */
void api__list_envs(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__create_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__get_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__replace_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__delete_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__start_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__stop_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__activity_env(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__full_sync(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__watch(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
/* GET /api/v1/usage and /api/v1/retained (api_usage.c). */
void api__usage(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__retained(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
/* GET /api/v1/preflight (api_preflight.c). */
void api__preflight(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
/* The api is going away: a preflight run in flight answers its waiters
 * (if their connections are still open) without touching the api. */
void api__preflight_detach(api_t *api);
void api__env_logs(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);
void api__env_events(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id);

/* ---- events (api_health.c) ---------------------------------------------- */

/* ---- activity (api_activity.c) ------------------------------------------ */

/* The token of req's "Authorization: Bearer <token>" header without the
 * spaces around it, or NULL when there is none; *len its length. Borrowed
 * from req. */
const char *api__bearer(const http_request_t *req, size_t *len);
/* 1 when req carries the activity token of the environment whose raw
 * (undecoded) id is raw_id[0..idlen). */
int api__activity_authorized(const api_t *api, const http_request_t *req, const char *raw_id,
                             size_t idlen);
/* Opens the activity listener when configured; D8_OK or an error in err. */
int api__activity_listen(api_t *api, char *err, size_t errlen);

/* Sends each new event to every watch stream as `event: EVENT`. */
void api__events_start(api_t *api);
/* Stops that (shutdown, free). */
void api__events_stop(api_t *api);

/* ---- full sync (api_sync.c) ---------------------------------------------- */

/* The api is going away: a sync being applied finishes on its own (it
 * needs only the store) and answers nothing more. */
void api__sync_detach(api_t *api);

/* ---- watch streams (api_watch.c) ---------------------------------------- */

/* Unlinks c from api->watchers, stops its store watch and its snapshot and
 * frees it (once its idle handle is closed); the exchange is left to the
 * caller. */
void api__watch_client_free(api__watch_client_t *c);
/* The heartbeat timer: a comment line to every watch stream. */
void api__heartbeat_cb(uv_timer_t *t);

/* api_tls.c: loads api.tls (when configured) into api->tls and registers
 * its metrics. On a file that does not load: D8_EINVAL and err reads
 * "file:line:column: api.tls.keyFile: <OpenSSL's reason>". */
int api__tls_start(api_t *api, char *err, size_t errlen);
/* Updates the TLS metrics from the engine's counters (collect hook). */
void api__tls_collect(api_t *api);

#endif
