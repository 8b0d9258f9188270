/*
 * pkg/api: GET /api/v1/environments/{id}/logs — the workspace container's
 * log, read through ARM by the controller (the logs hook) and answered as
 * text/plain when Azure answers.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGS_TAIL_DEFAULT 200
#define LOGS_TAIL_MAX 10000

/* One logs request waiting for Azure; ex is NULL once the client left. */
typedef struct logs_wait {
    http_exchange_t *ex;
} logs_wait_t;

static void logs_client_gone(void *ud)
{
    logs_wait_t *w = ud;
    w->ex = NULL;
}

static void logs_done(void *arg, int status, const char *code, const char *message,
                      const char *text, size_t len)
{
    logs_wait_t *w = arg;
    if (w->ex) {
        http_exchange_on_close(w->ex, NULL, NULL);
        if (status == 200)
            http_respond(w->ex, 200, NULL, 0, "text/plain; charset=utf-8", text, len);
        else
            http_respond_error(w->ex, status, code, message, NULL);
    }
    free(w);
}

/* ?tail: 1..10000, default 200; -1 after answering 400. */
static int tail_param(http_exchange_t *ex, const http_request_t *req)
{
    char buf[16];
    int n = http_query_param(req, "tail", buf, sizeof(buf));
    if (n == -1)
        return LOGS_TAIL_DEFAULT;
    char *end = NULL;
    long v = n > 0 ? strtol(buf, &end, 10) : 0;
    if (n < 1 || *end || v < 1 || v > LOGS_TAIL_MAX) {
        http_respond_error(ex, 400, "InvalidQuery", "tail must be an integer from 1 to 10000",
                           "tail");
        return -1;
    }
    return (int)v;
}

void api__env_logs(api_t *api, http_exchange_t *ex, const http_request_t *req, const char *id)
{
    if (!store_get(api->store, id)) {
        http_respond_error(ex, 404, "NotFound", "no environment with this id", NULL);
        return;
    }
    int tail = tail_param(ex, req);
    if (tail < 0)
        return;
    logs_wait_t *w = d8_xcalloc(1, sizeof(*w));
    w->ex = ex;
    http_exchange_on_close(ex, logs_client_gone, w);
    int rc = api->opts.logs_hook(api->opts.logs_ud, id, tail, logs_done, w);
    if (rc == 0)
        return;
    http_exchange_on_close(ex, NULL, NULL);
    free(w);
    if (rc == D8_ENOENT)
        http_respond_error(ex, 409, "NoContainerGroup",
                           "the environment has no container group (stopped before one was "
                           "created, or not created yet)",
                           NULL);
    else if (rc == D8_ECANCELED)
        http_respond_error(ex, 503, "ShuttingDown", "the agent is shutting down", NULL);
    else
        http_respond_error(ex, 500, "InternalError", d8_strerror(rc), NULL);
}
