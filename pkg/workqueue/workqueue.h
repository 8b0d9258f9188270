/*
 * pkg/workqueue: the controller's work queue (client-go's workqueue, on a
 * libuv loop).
 *
 * - Keys are strings (environment ids). A key queued twice before it is
 *   processed is processed once.
 * - A key is never processed twice at a time: a key added while it is
 *   being processed is marked dirty and queued again when it is done.
 * - At most max_active keys are processed at once.
 * - Delayed adds (polling, Retry-After) keep the earliest due time.
 * - Failures requeue with per-key exponential backoff and jitter between
 *   base and cap (d8_backoff_ms); a success forgets the key's failures.
 * - Urgent keys (interactive work) are served before the others, each in
 *   FIFO order, so one PUT is not stuck behind a full sync of thousands.
 *
 * The process callback is always called from the loop (never from inside
 * a workqueue_* call); the caller answers with workqueue_done when the
 * asynchronous reconcile of that key has finished.
 */
#ifndef D8_WORKQUEUE_H
#define D8_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct workqueue workqueue_t;

/* Borrowed: key is valid until workqueue_done for it. waited_s: how long
 * the key waited ready before this call. */
typedef void (*workqueue_fn)(void *ud, const char *key, double waited_s);

typedef struct workqueue_opts {
    size_t max_active;        /* default 16 */
    uint64_t backoff_base_ms; /* default 1000 */
    uint64_t backoff_cap_ms;  /* default 300000 */
    workqueue_fn process;
    void *ud;
} workqueue_opts_t;

typedef struct workqueue_stats {
    size_t depth;             /* ready to process, not yet started */
    size_t delayed;           /* waiting for their due time */
    size_t active;            /* being processed */
    uint64_t adds;            /* keys made ready */
    uint64_t retries;         /* requeues after a failure */
    uint64_t processed;       /* workqueue_done calls */
    double queue_seconds_sum; /* total time keys waited ready before start */
} workqueue_stats_t;

/*
 * A new, empty queue on loop (borrowed; it must outlive the queue). opts is
 * copied and its zero fields take the defaults. Never NULL; the caller owns
 * the queue and ends it with workqueue_free.
 */
workqueue_t *workqueue_new(uv_loop_t *loop, const workqueue_opts_t *opts);
/* Closes the timers; free happens in their close callbacks. Keys still
 * being processed must not be reported done afterwards. NULL is a no-op. */
void workqueue_free(workqueue_t *q);

/* Queues key now. */
void workqueue_add(workqueue_t *q, const char *key);
/* Queues key now as urgent: ready keys marked urgent go before all others.
 * The mark stays with the key (its delayed requeues are urgent too) until
 * workqueue_set_urgent clears it. */
void workqueue_add_urgent(workqueue_t *q, const char *key);
/* Sets or clears the urgent mark of a key that is not waiting ready. */
void workqueue_set_urgent(workqueue_t *q, const char *key, int urgent);
/* 1 while key carries the urgent mark (it is known to the queue). */
int workqueue_urgent(const workqueue_t *q, const char *key);
/* Queues key after delay_ms (an earlier pending due time wins). */
void workqueue_add_after(workqueue_t *q, const char *key, uint64_t delay_ms);
/*
 * Ends the processing of key. err < 0: requeue with backoff (the failure
 * count grows). err == 0: failures are forgotten, and when requeue_ms > 0
 * the key is queued again after that delay.
 * Returns the delay chosen (0 when not requeued by this call).
 */
uint64_t workqueue_done(workqueue_t *q, const char *key, int err, uint64_t requeue_ms);
/* Forgets key entirely if it is idle (not queued, delayed or active). */
void workqueue_forget(workqueue_t *q, const char *key);
/* Failures recorded for key since its last success. */
int workqueue_failures(const workqueue_t *q, const char *key);
/* Stops dispatching new keys (for shutdown); active ones may finish. */
void workqueue_pause(workqueue_t *q);

/* Copies the counters and the current depth, delayed and active counts into *out. */
void workqueue_stats(const workqueue_t *q, workqueue_stats_t *out);

#endif
