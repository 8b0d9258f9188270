#include "sigstop.h"

#include "base/base.h"
#include "log/log.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct sigstop {
    uv_signal_t term;
    uv_signal_t intr;
    sigstop_fn on_stop;
    void *ud;
    int stopping;
    int closing; /* handles whose close callback has not run */
};

static void on_signal(uv_signal_t *h, int signum)
{
    sigstop_t *s = h->data;
    if (s->stopping) {
        LOG(LOG_WARN, "second signal: exiting at once", LF_I("signal", signum));
        _exit(1);
    }
    s->stopping = 1;
    s->on_stop(s->ud, signum);
}

sigstop_t *sigstop_new(uv_loop_t *loop, sigstop_fn on_stop, void *ud)
{
    signal(SIGPIPE, SIG_IGN);
    sigstop_t *s = d8_xcalloc(1, sizeof(*s));
    s->on_stop = on_stop;
    s->ud = ud;
    uv_signal_init(loop, &s->term);
    uv_signal_init(loop, &s->intr);
    s->term.data = s->intr.data = s;
    uv_signal_start(&s->term, on_signal, SIGTERM);
    uv_signal_start(&s->intr, on_signal, SIGINT);
    return s;
}

static void on_closed(uv_handle_t *h)
{
    sigstop_t *s = h->data;
    if (--s->closing == 0)
        free(s);
}

void sigstop_free(sigstop_t *s)
{
    if (!s || s->closing)
        return;
    s->closing = 2;
    uv_close((uv_handle_t *)&s->term, on_closed);
    uv_close((uv_handle_t *)&s->intr, on_closed);
}
