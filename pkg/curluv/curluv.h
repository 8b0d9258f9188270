/*
 * pkg/curluv: one libcurl multi handle driven by a libuv loop.
 *
 * curl_multi_socket_action is run from a uv_poll per socket (attached to
 * curl's socket through curl_multi_assign) and from one uv_timer that
 * serves CURLMOPT_TIMERFUNCTION, the way curl's docs/examples/multi-uv.c
 * does it. Nothing here blocks the loop. Callers build their easy handles
 * as they like, hand them over with curluv_add and get them back, removed
 * from the multi, in their completion callback.
 *
 *   curluv_t *cu;
 *   if (curluv_new(loop, &cu) < 0) ...
 *   CURL *e = curl_easy_init();  ...setopt...
 *   curluv_add(cu, e, on_done, me);
 *   static void on_done(void *ud, CURL *e, CURLcode res) {
 *       ...curl_easy_getinfo(e, ...)...;  curl_easy_cleanup(e);
 *   }
 *   curluv_free(cu, NULL, NULL);  // then run the loop until it is empty
 *
 * Contract:
 * - While a handle is added, curluv owns its CURLOPT_PRIVATE (callers keep
 *   their own pointer in `ud`); the handle itself stays the caller's and
 *   must not be cleaned up before it was removed or completed.
 * - A completion callback runs from a loop callback of this module, never
 *   from inside a curluv_* call nor from inside a curl callback. When it
 *   runs, the handle was already removed from the multi: the callback may
 *   read its info, clean it up, re-add it, add others, remove others, or
 *   call curluv_free.
 * - Single-threaded: every call on the loop's thread.
 */
#ifndef D8_CURLUV_H
#define D8_CURLUV_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

typedef struct curluv curluv_t;

/* One transfer ended (result CURLE_OK or an error). `easy` is the handle
 * given to curluv_add, no longer in the multi: the caller's again. */
typedef void (*curluv_done_cb)(void *ud, CURL *easy, CURLcode result);

/*
 * Creates a driver on `loop` (borrowed; must outlive the driver). Calls
 * curl_global_init (reference counted by libcurl; undone when the driver's
 * memory is released). Returns 0 and *out, or D8_EIO / D8_ENOMEM.
 */
int curluv_new(uv_loop_t *loop, curluv_t **out);

/*
 * The multi handle, for options such as CURLMOPT_MAXCONNECTS (borrowed;
 * never set the socket or timer functions, never clean it up). NULL once
 * curluv_free was called.
 */
CURLM *curluv_multi(curluv_t *cu);

/*
 * Starts the transfer of `easy` (borrowed until it completes or is
 * removed). `done` runs exactly once, later, unless curluv_remove or
 * curluv_free comes first. Returns 0; D8_EINVAL for a NULL argument or a
 * handle already added; D8_ECANCELED after curluv_free; D8_EIO when the
 * multi refuses it. On failure the callback is never called.
 */
int curluv_add(curluv_t *cu, CURL *easy, curluv_done_cb done, void *ud);

/*
 * Stops the transfer of `easy` without calling its callback; the handle is
 * the caller's again. A handle that is not added (already completed,
 * never added) is fine: nothing happens.
 */
void curluv_remove(curluv_t *cu, CURL *easy);

/* Transfers added and not yet completed or removed. */
size_t curluv_active(const curluv_t *cu);

/*
 * Loop-safe teardown: transfers still added are removed without their
 * callbacks (their handles stay the callers'), the multi is cleaned up and
 * every handle is closed; the memory goes in the last close callback,
 * which then calls closed(arg) when given. Run the loop afterwards until
 * it has nothing left. May be called from inside a completion callback.
 * NULL is a no-op; a second call is ignored.
 */
void curluv_free(curluv_t *cu, void (*closed)(void *arg), void *arg);

#endif
