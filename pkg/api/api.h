/*
 * pkg/api: the desired-state API of DESIGN.md section 3 on top of pkg/http:
 * routing, bearer-key auth, handlers, watch streams (SSE), /healthz,
 * /readyz, /metrics, access logs and request metrics.
 */
#ifndef D8_API_H
#define D8_API_H

#include "activity/activity.h"
#include "config/config.h"
#include "events/events.h"
#include "metrics/metrics.h"
#include "preflight/preflight.h"
#include "store/store.h"
#include "usage/usage.h"

#include <cjson/cJSON.h>
#include <uv.h>

typedef struct api api_t;

/* The answer to a logs_hook call: status 200 and the text (borrowed), or
 * an HTTP error status with its code and message. */
typedef void (*api_logs_done_fn)(void *arg, int status, const char *code, const char *message,
                                 const char *text, size_t len);

typedef struct api_opts {
    uv_loop_t *loop;
    const config_t *cfg; /* borrowed; outlives the api */
    store_t *store;      /* borrowed */
    metrics_t *metrics;  /* borrowed; the api registers its families */
    /* The hooks below are required: api_new refuses opts without them, so
     * that no answer is ever made up in place of the controller's. Each
     * gets its *_ud back and runs on the loop thread. */
    /* Adds controller fields (queue depth, regions, throttle, reaper) to
     * the GET /api/v1/status answer object. */
    void (*status_hook)(void *ud, cJSON *status);
    void *status_ud;
    /* The reaper's answer for GET /api/v1/orphans: an object with "items",
     * owned by the api from then on. */
    cJSON *(*orphans_hook)(void *ud);
    void *orphans_ud;
    /* POST /api/v1/reaper/resume; returns 1 when the reaper was
     * suspended. */
    int (*resume_hook)(void *ud);
    void *resume_ud;
    /* 1 while the reaper is deleting a resource of env `id` (borrowed); a
     * PUT or full sync that would make it desired is answered 409 with
     * Retry-After until then. */
    int (*reaping_hook)(void *ud, const char *id);
    void *reaping_ud;
    /* Optional: usage rows and retained shares (GET /api/v1/usage,
     * /api/v1/retained answer empty lists without it). Borrowed. */
    usage_t *usage;
    /* GET /api/v1/preflight: starts pkg/preflight's checks (preflight_run
     * through the controller's Azure client) answering cb(cbud, report)
     * once; returns 0, or a D8_* error when they cannot start (cb is then
     * never called). */
    int (*preflight_hook)(void *ud, preflight_cb cb, void *cbud);
    void *preflight_ud;
    /* Durable acknowledgements (controller.stateFile); both NULL without
     * one, and then answers never wait. commit_hook asks for every change
     * of the desired set made so far to be written within the commit
     * window and returns the sequence number the answer must wait for (0:
     * already on disk); the owner then reports each write's end through
     * api_committed. writable_hook answers 1 while the state file can be
     * written, else 0 with a sentence in reason: mutations are then
     * refused with 503 StateNotWritable and /readyz answers 503. */
    uint64_t (*commit_hook)(void *ud);
    int (*writable_hook)(void *ud, char *reason, size_t len);
    void *durable_ud;
    /* GET /api/v1/environments/{id}/logs: starts reading the last `tail`
     * lines of env id's workspace container and returns 0, then calls
     * done(arg, ...) once, later (status 200 with the text, or an error
     * status, code and message); or returns D8_ENOENT (no container group)
     * or another D8_* error without calling done. */
    int (*logs_hook)(void *ud, const char *id, int tail, api_logs_done_fn done, void *arg);
    void *logs_ud;
    /* Each environment's events (GET .../events, `event: EVENT` on the
     * watch streams); borrowed, may be NULL (no events). */
    events_t *events;
    /* Activity tokens (pkg/activity), borrowed, may be NULL (off): the
     * activity route also takes its environment's token instead of a key,
     * and cfg->activity_listen_host opens a second listener serving only
     * that route, with tokens only. */
    const activity_t *activity;
} api_opts_t;

/*
 * Binds the listener of cfg->listen_host:listen_port and starts serving.
 * opts is copied; the api is owned by the caller (api_free). Returns 0, or
 * a D8_* error with a human line in err: D8_EINVAL when a hook is missing.
 */
int api_new(const api_opts_t *opts, api_t **out, char *err, size_t errlen);
/* The bound port. */
int api_port(const api_t *api);
/* The probe listener's bound port (controller.probeListen), 0 when off. */
int api_probe_port(const api_t *api);
/* /readyz answers 200 only while ready is set (and a reason otherwise). */
void api_set_ready(api_t *api, int ready, const char *reason);
/*
 * A state file write ended: status 0 answers every mutation waiting for a
 * sequence number up to durable_seq; an error answers every waiting
 * mutation 503 StateNotWritable.
 */
void api_committed(api_t *api, uint64_t durable_seq, int status);
/*
 * Starts a graceful stop: the listener closes, watch streams end, kept-alive
 * connections close after their answer in flight.
 */
void api_shutdown(api_t *api);
/* Open client connections. */
size_t api_connections(const api_t *api);
/* Closes everything; done(arg) runs once all handles are closed. */
void api_free(api_t *api, void (*done)(void *arg), void *arg);

#endif
