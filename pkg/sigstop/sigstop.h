/*
 * pkg/sigstop: how a process of this project stops on a signal, the same
 * for dev8-agent and azsim, on the caller's libuv loop.
 *
 * - SIGPIPE is ignored: a peer that goes away mid-answer must not kill the
 *   process (the write fails with EPIPE instead).
 * - The first SIGTERM or SIGINT calls on_stop, from the loop: the graceful
 *   stop is the caller's.
 * - A second one logs "second signal: exiting at once" and exits with
 *   status 1 at once, for an operator who will not wait.
 */
#ifndef D8_SIGSTOP_H
#define D8_SIGSTOP_H

#include <uv.h>

typedef struct sigstop sigstop_t;

/* The first stop signal arrived (signum: SIGTERM or SIGINT). */
typedef void (*sigstop_fn)(void *ud, int signum);

/*
 * Ignores SIGPIPE and starts watching SIGTERM and SIGINT on loop
 * (borrowed; must outlive the watcher). on_stop and ud are kept for the
 * first signal. The watcher keeps the loop alive until sigstop_free.
 */
sigstop_t *sigstop_new(uv_loop_t *loop, sigstop_fn on_stop, void *ud);

/*
 * Stops watching (a later signal takes its default action). Loop-safe: the
 * memory goes in the handles' close callbacks, so run the loop afterwards.
 * May be called from on_stop. NULL is a no-op.
 */
void sigstop_free(sigstop_t *s);

#endif
