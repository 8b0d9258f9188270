/*
 * pkg/api durable acknowledgements (controller.stateFile): a request that
 * changes the desired set is answered only once that change is on disk.
 *
 * The handler changes the store as before, then hands its answer to
 * api__respond_durable, which asks the state file for a commit (the
 * agent's commit hook) and keeps a copy of the answer until the write
 * holding the change has been fsynced (api_committed). All the answers of
 * one commit window share one write and fsync (group commit). While the
 * state file cannot be written, mutations are refused with 503
 * StateNotWritable before anything changes (api__refuse_unwritable), and
 * the answers waiting for a write that failed get the same 503: their
 * change stays in memory and is written by the retry, so the client,
 * which must retry (PUT, DELETE, start and stop are idempotent), finds it
 * applied. Without a state file nothing waits.
 */
#include "api_int.h"

#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_AFTER "5"

/* One answer waiting for its change to be on disk. */
struct api__pending {
    api_t *api;
    http_exchange_t *ex;
    uint64_t seq; /* the state file's sequence number to wait for */
    int status;
    char *etag; /* NULL when the answer has no ETag */
    char *body;
    size_t len;
    d8_list_t link; /* in api->pending */
};

static void pending_free(api__pending_t *p)
{
    d8_list_del(&p->link);
    free(p->etag);
    free(p->body);
    free(p);
}

/* The connection closed before the write ended: nothing to answer. */
static void pending_closed(void *ud)
{
    pending_free(ud);
}

static void respond_unwritable(http_exchange_t *ex, const char *reason)
{
    char msg[320];
    snprintf(msg, sizeof(msg),
             "the state file cannot be written (%s): the change cannot be made durable; retry "
             "later",
             reason);
    static const http_header_t h = {"Retry-After", RETRY_AFTER};
    http_respond_error_h(ex, 503, &h, 1, "StateNotWritable", msg, NULL);
}

int api__durable_unwritable(const api_t *api, char *reason, size_t len)
{
    if (!api->opts.writable_hook)
        return 0;
    return !api->opts.writable_hook(api->opts.durable_ud, reason, len);
}

int api__refuse_unwritable(api_t *api, http_exchange_t *ex)
{
    char reason[200];
    if (!api__durable_unwritable(api, reason, sizeof(reason)))
        return 0;
    respond_unwritable(ex, reason);
    return 1;
}

void api__respond_durable(api_t *api, http_exchange_t *ex, int status, const char *etag,
                          const char *body, size_t len)
{
    uint64_t seq = api->opts.commit_hook ? api->opts.commit_hook(api->opts.durable_ud) : 0;
    if (seq == 0) {
        http_header_t h = {"ETag", etag};
        api__respond_json(ex, status, &h, etag ? 1 : 0, body, len);
        return;
    }
    api__pending_t *p = d8_xcalloc(1, sizeof(*p));
    p->api = api;
    p->ex = ex;
    p->seq = seq;
    p->status = status;
    p->etag = etag ? d8_xstrdup(etag) : NULL;
    p->body = d8_xmalloc(len + 1);
    memcpy(p->body, body, len);
    p->body[len] = '\0';
    p->len = len;
    d8_list_push(&api->pending, &p->link);
    http_exchange_on_close(ex, pending_closed, p);
}

void api_committed(api_t *api, uint64_t durable_seq, int status)
{
    char reason[200] = "";
    if (status != D8_OK && !api__durable_unwritable(api, reason, sizeof(reason)))
        snprintf(reason, sizeof(reason), "%s", d8_strerror(status));
    d8_list_t *it = api->pending.next;
    while (it != &api->pending) {
        api__pending_t *p = d8_container_of(it, api__pending_t, link);
        it = it->next;
        /* A failed write fails every waiting answer: the next write comes
         * only after the retry backoff. */
        if (status == D8_OK && p->seq > durable_seq)
            continue;
        http_exchange_t *ex = p->ex;
        http_exchange_on_close(ex, NULL, NULL);
        if (status == D8_OK) {
            http_header_t h = {"ETag", p->etag};
            api__respond_json(ex, p->status, &h, p->etag ? 1 : 0, p->body, p->len);
        } else {
            respond_unwritable(ex, reason);
        }
        pending_free(p);
    }
}
