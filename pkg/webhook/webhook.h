/*
 * pkg/webhook: pushes every change of an environment object to
 * webhook.url (DESIGN section 3, "Status changes are also pushed").
 *
 * The webhook watches the store. For each environment it owes the
 * endpoint only the latest object: a newer state replaces one not yet
 * sent, at most one request per environment is in flight (so one
 * environment's deliveries arrive in order), and a failed delivery is
 * retried forever with exponential backoff and jitter (1 s .. 5 min),
 * carrying whatever state is the latest by then. Memory is bounded by the
 * environments with undelivered changes: at most one body owed and one in
 * flight each.
 *
 * Each delivery is
 *   POST <url>
 *   Content-Type: application/json
 *   X-Dev8-Event: ADDED|MODIFIED|DELETED
 *   X-Dev8-Delivery: <uuid v4>            (the same on a retry of the same body)
 *   X-Dev8-Resource-Version: <store rv of the state sent>
 *   X-Dev8-Signature: sha256=<hex HMAC-SHA256(secret, body)>
 *   <the object as GET /api/v1/environments/{id} shows it>
 * Any 2xx answer means delivered. Connect timeout 5 s, request timeout
 * 10 s. The event type of coalesced states is the one the receiver needs:
 * a never-delivered ADDED stays ADDED when MODIFIED follows, DELETED wins.
 *
 * All outbound HTTP goes through pkg/curluv on the caller's loop; nothing
 * blocks. The secret is never logged, and wiped when released.
 */
#ifndef D8_WEBHOOK_H
#define D8_WEBHOOK_H

#include "curluv/curluv.h"
#include "metrics/metrics.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct webhook webhook_t;

/* Options of webhook_new. Pointers are borrowed for the call unless said
 * otherwise; zero numbers take the default named beside them. */
typedef struct webhook_opts {
    uv_loop_t *loop;             /* borrowed; must outlive the webhook */
    curluv_t *cu;                /* borrowed, must outlive the webhook; NULL: own one */
    store_t *store;              /* borrowed, watched; must outlive the webhook */
    metrics_t *metrics;          /* borrowed, may be NULL; families registered once */
    const char *url;             /* http:// or https:// (copied) */
    const void *secret;          /* HMAC key bytes (copied, wiped on free); required */
    size_t secret_len;           /* > 0 */
    uint64_t connect_timeout_ms; /* 5000 */
    uint64_t request_timeout_ms; /* 10000 */
    uint64_t backoff_base_ms;    /* 1000 */
    uint64_t backoff_cap_ms;     /* 300000 */
    int max_inflight;            /* 8 deliveries at once, over all environments */
} webhook_opts_t;

/*
 * Starts pushing store events. Returns 0 and *out; D8_EINVAL (no loop,
 * store, usable URL or secret: err says which, never the secret) or
 * D8_ENOMEM / D8_EIO (curl could not be set up).
 */
int webhook_new(const webhook_opts_t *opts, webhook_t **out, char *err, size_t errlen);

/*
 * Loop-safe teardown: stops watching the store, drops every owed and
 * in-flight delivery, closes the timer (and the own curl driver); the
 * memory goes in the close callbacks, so run the loop afterwards. Must be
 * called before the store is freed. NULL is a no-op.
 */
void webhook_free(webhook_t *wh);

/* Environments with a state not yet delivered (owed or in flight). */
size_t webhook_pending(const webhook_t *wh);

#define WEBHOOK_SIGNATURE_LEN 72 /* "sha256=" + 64 hex + NUL */

/*
 * Writes "sha256=<lower-case hex HMAC-SHA256(secret, body)>" into out.
 * Returns 0, or D8_EIO when OpenSSL fails.
 */
int webhook_signature(const void *secret, size_t secret_len, const void *body, size_t body_len,
                      char out[WEBHOOK_SIGNATURE_LEN]);

#endif
