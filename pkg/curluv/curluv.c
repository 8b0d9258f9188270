/*
 * pkg/curluv: curl multi on a libuv loop (see curluv.h).
 *
 * Lifetime: the driver counts its open handles (the timer and one uv_poll
 * per socket curl watches). curluv_free marks it closing; the teardown
 * (curl_multi_cleanup, closing every handle) runs at once, or, when
 * curluv_free was called from inside a completion callback, when that
 * loop callback unwinds. The memory goes when the last handle's close
 * callback has run.
 */
#include "curluv.h"

#include "base/base.h"
#include "base/list.h"
#include "log/log.h"

#include <stdlib.h>

/* One added transfer; its address is the easy handle's CURLOPT_PRIVATE. */
typedef struct xfer {
    d8_list_t link;
    curluv_t *cu;
    CURL *easy;
    curluv_done_cb done;
    void *ud;
} xfer_t;

/* The uv_poll of one socket curl watches (curl_multi_assign'ed to it). */
typedef struct cpoll {
    uv_poll_t h;
    d8_list_t link;
    curl_socket_t fd;
    curluv_t *cu;
} cpoll_t;

struct curluv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* CURLMOPT_TIMERFUNCTION */
    d8_list_t polls;
    d8_list_t xfers;
    size_t nxfers;
    int refs;  /* open handles: the timer and the polls */
    int depth; /* loop callbacks of this module in progress */
    int closing;
    int teardown_pending;
    int torn_down;
    void (*closed)(void *arg);
    void *closed_arg;
};

static void teardown(curluv_t *cu);

/* ------------------------------------------------------------ lifetime */

static void destroy(curluv_t *cu)
{
    void (*closed)(void *) = cu->closed;
    void *arg = cu->closed_arg;
    free(cu);
    curl_global_cleanup();
    if (closed)
        closed(arg);
}

static void unref(curluv_t *cu)
{
    if (--cu->refs == 0 && cu->torn_down)
        destroy(cu);
}

static void enter(curluv_t *cu)
{
    cu->depth++;
}

static void leave(curluv_t *cu)
{
    if (--cu->depth == 0 && cu->teardown_pending) {
        cu->teardown_pending = 0;
        teardown(cu);
    }
}

/* ------------------------------------------------------------ completions */

static void xfer_unlink(xfer_t *x)
{
    d8_list_del(&x->link);
    x->cu->nxfers--;
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, NULL);
    free(x);
}

/* Hands every finished transfer back to its owner. */
static void check_done(curluv_t *cu)
{
    CURLMsg *m;
    int left;
    while (!cu->closing && (m = curl_multi_info_read(cu->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* The message is invalid once the handle leaves the multi. */
        CURL *e = m->easy_handle;
        CURLcode res = m->data.result;
        xfer_t *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(cu->multi, e);
        if (!x)
            continue;
        curluv_done_cb done = x->done;
        void *ud = x->ud;
        xfer_unlink(x);
        done(ud, e, res);
    }
}

/* ------------------------------------------------------------ curl <-> uv */

static void poll_closed(uv_handle_t *h)
{
    cpoll_t *p = h->data;
    curluv_t *cu = p->cu;
    free(p);
    unref(cu);
}

static void poll_close(cpoll_t *p)
{
    d8_list_del(&p->link);
    uv_poll_stop(&p->h);
    uv_close((uv_handle_t *)&p->h, poll_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    cpoll_t *p = h->data;
    curluv_t *cu = p->cu;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & (UV_READABLE | UV_DISCONNECT))
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    enter(cu);
    if (!cu->closing) {
        int running;
        curl_multi_socket_action(cu->multi, p->fd, flags, &running);
        check_done(cu);
    }
    leave(cu);
}

/*
 * A new uv_poll for socket s, counted in refs and assigned to s in the
 * multi; NULL (logged) when libuv cannot poll it. A poll still held for a
 * descriptor that curl has since reused is closed first.
 */
static cpoll_t *poll_open(curluv_t *cu, curl_socket_t s)
{
    cpoll_t *p = d8_xcalloc(1, sizeof(*p));
    p->fd = s;
    p->cu = cu;
    int rc = uv_poll_init_socket(cu->loop, &p->h, s);
    if (rc == UV_EEXIST) {
        /* curl reused a descriptor whose old poll we still hold. */
        for (d8_list_t *it = cu->polls.next; it != &cu->polls; it = it->next) {
            cpoll_t *old = d8_container_of(it, cpoll_t, link);
            if (old->fd == s) {
                poll_close(old);
                break;
            }
        }
        rc = uv_poll_init_socket(cu->loop, &p->h, s);
    }
    if (rc < 0) {
        LOG(LOG_ERROR, "curl: cannot poll a socket", LF_S("error", uv_strerror(rc)));
        free(p);
        return NULL;
    }
    p->h.data = p;
    d8_list_push(&cu->polls, &p->link);
    cu->refs++;
    curl_multi_assign(cu->multi, s, p);
    return p;
}

/*
 * CURLMOPT_SOCKETFUNCTION: keeps one uv_poll per socket curl watches, set
 * to the events curl asks for, and closes it when curl lets the socket go.
 * After the teardown only removals are honoured.
 */
static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    curluv_t *cu = userp;
    cpoll_t *p = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (p) {
            poll_close(p);
            if (!cu->torn_down)
                curl_multi_assign(cu->multi, s, NULL);
        }
        return 0;
    }
    if (cu->torn_down)
        return 0;
    if (!p && !(p = poll_open(cu, s)))
        return -1;
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&p->h, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    curluv_t *cu = t->data;
    enter(cu);
    if (!cu->closing) {
        int running;
        curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_done(cu);
    }
    leave(cu);
}

static int on_curl_timeout(CURLM *m, long ms, void *userp)
{
    curluv_t *cu = userp;
    (void)m;
    if (cu->torn_down)
        return 0;
    if (ms < 0)
        uv_timer_stop(&cu->timer);
    else
        uv_timer_start(&cu->timer, on_timer, (uint64_t)ms, 0);
    return 0;
}

/* ------------------------------------------------------------ public */

int curluv_new(uv_loop_t *loop, curluv_t **out)
{
    *out = NULL;
    if (!loop)
        return D8_EINVAL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return D8_EIO;
    curluv_t *cu = d8_xcalloc(1, sizeof(*cu));
    cu->loop = loop;
    d8_list_init(&cu->polls);
    d8_list_init(&cu->xfers);
    cu->multi = curl_multi_init();
    if (!cu->multi) {
        free(cu);
        curl_global_cleanup();
        return D8_ENOMEM;
    }
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
    uv_timer_init(loop, &cu->timer);
    cu->timer.data = cu;
    cu->refs = 1;
    *out = cu;
    return 0;
}

CURLM *curluv_multi(curluv_t *cu)
{
    return cu && !cu->closing ? cu->multi : NULL;
}

int curluv_add(curluv_t *cu, CURL *easy, curluv_done_cb done, void *ud)
{
    if (!cu || !easy || !done)
        return D8_EINVAL;
    if (cu->closing)
        return D8_ECANCELED;
    xfer_t *old = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&old);
    if (old)
        return D8_EINVAL;
    xfer_t *x = d8_xcalloc(1, sizeof(*x));
    x->cu = cu;
    x->easy = easy;
    x->done = done;
    x->ud = ud;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(cu->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return D8_EIO;
    }
    d8_list_init(&x->link);
    d8_list_push(&cu->xfers, &x->link);
    cu->nxfers++;
    return 0;
}

void curluv_remove(curluv_t *cu, CURL *easy)
{
    if (!cu || !easy)
        return;
    xfer_t *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (!x || x->cu != cu || x->easy != easy)
        return;
    if (cu->multi)
        curl_multi_remove_handle(cu->multi, easy);
    xfer_unlink(x);
}

size_t curluv_active(const curluv_t *cu)
{
    return cu ? cu->nxfers : 0;
}

static void timer_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void teardown(curluv_t *cu)
{
    cu->torn_down = 1;
    curl_multi_cleanup(cu->multi);
    cu->multi = NULL;
    while (!d8_list_empty(&cu->polls))
        poll_close(d8_container_of(cu->polls.next, cpoll_t, link));
    uv_timer_stop(&cu->timer);
    uv_close((uv_handle_t *)&cu->timer, timer_closed);
}

void curluv_free(curluv_t *cu, void (*closed)(void *arg), void *arg)
{
    if (!cu || cu->closing)
        return;
    cu->closing = 1;
    cu->closed = closed;
    cu->closed_arg = arg;
    while (!d8_list_empty(&cu->xfers)) {
        xfer_t *x = d8_container_of(cu->xfers.next, xfer_t, link);
        curl_multi_remove_handle(cu->multi, x->easy);
        xfer_unlink(x);
    }
    if (cu->depth > 0)
        cu->teardown_pending = 1;
    else
        teardown(cu);
}
