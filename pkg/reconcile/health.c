/*
 * The health rows of the reconcile decision: whether the workspace a
 * running group holds is usable, from what ACI's instance view shows of
 * its container (README "States a user can see"):
 *
 *   CrashLoop        restartCount >= 3, the last restart within 10 minutes,
 *                    and the container not running ready for a minute: ERROR with the
 *                    restart count and last exit code. ACI restarts it
 *                    with its own back-off; the controller recreates
 *                    nothing (a new image or spec is the fix).
 *   IdeStarting      the container runs, the readiness probe has not
 *                    passed yet, within initialDelay + period x (threshold
 *                    + 2) of the start: STARTING.
 *   ProbeFailing     ... and later than that: ERROR (the IDE does not
 *                    answer); it becomes RUNNING when the probe passes.
 *   ImagePullFailed  a container still Waiting with a "Failed to pull
 *                    image" event, or a provisioning failed for an image
 *                    (InaccessibleImage): ERROR with Azure's message.
 *
 * ACI's instance view has no ready flag: a failing readiness probe shows
 * only as an Unhealthy event ("Readiness probe failed: ...") whose
 * lastTimestamp moves each period. The probe is taken as passing once it
 * surely ran (initialDelay + one period into the run) and no failure was
 * seen for two periods; ACI writes whole seconds, so each bound has a
 * second of slack.
 */
#include "decide.h"
#include "reconcile_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void set_ready(decide_plan_t *p, int phase, const char *reason, const char *msg)
{
    p->status.publish = 1;
    p->status.phase = phase;
    p->status.ready = COND_FALSE;
    p->status.ready_reason = reason;
    p->status.ready_msg = msg;
}

static void set_error(decide_plan_t *p, const char *code, const char *msg)
{
    p->status.set_error = 1;
    p->status.err_code = code;
    p->status.err_msg = msg;
}

/* The pass ends waiting for Azure's next view: the status refresh, or
 * sooner while the IDE starts (cap: the probe period, at least 1 s). */
static void wait_refresh(const decide_input_t *in, decide_plan_t *p, uint64_t cap_ms)
{
    if (in->fetched_group || !p->next_get_ms)
        p->next_get_ms = in->now_ms + in->status_refresh_ms;
    if (cap_ms && p->next_get_ms > in->now_ms + cap_ms)
        p->next_get_ms = in->now_ms + cap_ms;
    p->settle = 0;
    p->action = DECIDE_NONE;
    p->requeue_ms = p->next_get_ms > in->now_ms ? p->next_get_ms - in->now_ms : 1;
    p->result = "waiting";
}

static int crash_looping(const decide_input_t *in, const observed_container_t *c, int ready)
{
    if (c->restart_count < DECIDE_CRASHLOOP_RESTARTS || !c->prev_finish_ms)
        return 0;
    if (in->wall_ms - c->prev_finish_ms > DECIDE_CRASHLOOP_WINDOW_MS)
        return 0;
    /* Running ready for a minute since the last restart: recovered. */
    return !(strcasecmp(c->state, "Running") == 0 && ready && c->start_ms &&
             in->wall_ms - c->start_ms >= DECIDE_CRASHLOOP_STABLE_MS);
}

/* Whether the IDE answers its readiness probe in the current run. */
static int probe_passing(const decide_input_t *in, const observed_container_t *c)
{
    if (!in->probe_period_s)
        return 1;
    if (strcasecmp(c->state, "Running") != 0 || !c->start_ms)
        return 0;
    int64_t period = (int64_t)in->probe_period_s * 1000;
    int64_t age = in->wall_ms - c->start_ms;
    if (age < (int64_t)in->probe_delay_s * 1000 + period + DECIDE_TIME_SLACK_MS)
        return 0;
    return c->unready_ms < c->start_ms ||
           in->wall_ms - c->unready_ms > 2 * period + DECIDE_TIME_SLACK_MS;
}

int reconcile_health_running(const decide_input_t *in, decide_plan_t *p)
{
    const observed_container_t *c = &in->obs->g.c;
    if (!c->present)
        return 0;
    int ready = probe_passing(in, c);
    if (crash_looping(in, c, ready)) {
        char code[24] = "unknown";
        if (c->has_prev)
            snprintf(code, sizeof(code), "%d", c->prev_exit_code);
        snprintf(p->msg, sizeof(p->msg),
                 "the workspace container keeps crashing: %d restarts, last exit code %s; Azure "
                 "restarts it with a back-off (see GET .../logs); a new image or spec fixes it",
                 c->restart_count, code);
        set_ready(p, PHASE_ERROR, "CrashLoop", p->msg);
        set_error(p, "CrashLoop", p->msg);
        p->status.set_retry = -1;
        p->mem.running_since_ms = 0;
        wait_refresh(in, p, 0);
        return 1;
    }
    if (ready)
        return 0;
    /* Two periods more than the probe's own budget: a pass is seen that late. */
    int64_t grace = ((int64_t)in->probe_delay_s +
                     (int64_t)in->probe_period_s * ((int64_t)in->probe_failures + 2)) *
                    1000;
    int64_t age = c->start_ms ? in->wall_ms - c->start_ms : 0;
    p->mem.running_since_ms = 0;
    if (strcasecmp(c->state, "Running") != 0 || age <= grace) {
        set_ready(p, PHASE_STARTING, "IdeStarting",
                  "the container runs; waiting for the IDE to answer its readiness probe");
        wait_refresh(in, p, (uint64_t)in->probe_period_s * 1000);
        return 1;
    }
    snprintf(p->msg, sizeof(p->msg), "the IDE has not answered its readiness probe for %lld s: %s",
             (long long)(age / 1000), c->unready_msg ? c->unready_msg : "no answer");
    set_ready(p, PHASE_ERROR, "ProbeFailing", p->msg);
    set_error(p, "ProbeFailing", p->msg);
    wait_refresh(in, p, (uint64_t)in->probe_period_s * 1000 * 2);
    return 1;
}

int reconcile_health_pending(const decide_input_t *in, decide_plan_t *p)
{
    const observed_container_t *c = &in->obs->g.c;
    if (!c->present || !c->pull_failed_msg || strcasecmp(c->state, "Running") == 0)
        return 0;
    snprintf(p->msg, sizeof(p->msg), "the workspace image cannot be pulled: %s",
             c->pull_failed_msg);
    set_ready(p, PHASE_ERROR, "ImagePullFailed", p->msg);
    set_error(p, "ImagePullFailed", p->msg);
    wait_refresh(in, p, 0);
    return 1;
}

const char *reconcile_failed_reason(const char *message, const char *code)
{
    if ((code && strcmp(code, "InaccessibleImage") == 0) ||
        (message &&
         (strstr(message, "Failed to pull image") || strstr(message, "is not accessible"))))
        return "ImagePullFailed";
    return "Failed";
}

const azure_probe_t *reconcile__probe(const config_t *cfg, const config_probe_t *c,
                                      azure_probe_t *out)
{
    if (!c->path || !c->path[0])
        return NULL;
    *out = (azure_probe_t){
        .path = c->path,
        .port = c->port ? c->port : (cfg->nports ? cfg->ports[0] : 8080),
        .initial_delay_seconds = c->initial_delay_seconds,
        .period_seconds = c->period_seconds,
        .failure_threshold = c->failure_threshold,
        .timeout_seconds = c->timeout_seconds,
    };
    return out;
}

int reconcile__set_containers(const observed_t *o, env_status_t *s)
{
    const observed_container_t *c = &o->g.c;
    env_container_status_t n;
    memset(&n, 0, sizeof(n));
    if (o->g.exists && c->present) {
        n.present = 1;
        snprintf(n.name, sizeof(n.name), "%s", c->name);
        snprintf(n.state, sizeof(n.state), "%s", c->state);
        n.restart_count = c->restart_count;
        if (c->has_prev) {
            n.has_exit_code = 1;
            n.last_exit_code = c->prev_exit_code;
        } else if (c->has_exit) {
            n.has_exit_code = 1;
            n.last_exit_code = c->exit_code;
        }
        n.last_restart_ms = c->restart_count > 0 ? c->prev_finish_ms : 0;
    } else if (o->g.exists) {
        return 0; /* a list does not show it: keep what the last GET said */
    }
    if (memcmp(&n, &s->container, sizeof(n)) == 0)
        return 0;
    s->container = n;
    return 1;
}

/* ---- auto-stop ------------------------------------------------------------------ */

int64_t reconcile_auto_stop_at(int minutes, int64_t minute_ms, int64_t agent_start_ms,
                               int64_t last_activity_ms, int64_t running_since_ms)
{
    if (minutes <= 0)
        return 0;
    int64_t since = agent_start_ms;
    if (last_activity_ms > since)
        since = last_activity_ms;
    if (running_since_ms > since)
        since = running_since_ms;
    return since + (int64_t)minutes * (minute_ms > 0 ? minute_ms : 60000);
}

int reconcile_auto_stop(const decide_input_t *in, decide_plan_t *p, uint64_t *next_ms)
{
    int minutes = in->obj->spec.auto_stop_minutes;
    if (minutes <= 0) {
        p->status.set_auto_stop = -1;
        return 0;
    }
    int64_t minute = in->minute_ms > 0 ? in->minute_ms : 60000;
    /* Seen running for the first time now: the count starts now. */
    int64_t running_since = p->mem.running_since_ms ? p->mem.running_since_ms : in->wall_ms;
    int64_t at = reconcile_auto_stop_at(minutes, minute, in->agent_start_ms,
                                        in->obj->status.last_activity_ms, running_since);
    if (in->wall_ms >= at) {
        int64_t idle = in->wall_ms - (at - (int64_t)minutes * minute);
        p->mem.auto_stopped_ms = in->wall_ms;
        p->mem.auto_stopped_gen = in->obj->generation;
        p->mem.auto_stop_idle_ms = idle;
        snprintf(p->msg3, sizeof(p->msg3),
                 "stopped after %lld s without activity; a new generation or /start starts it "
                 "again",
                 (long long)(idle / 1000));
        p->status.set_auto_stop = -1;
        return 1;
    }
    /* A warning as long as the whole idle time would always be on. */
    int warn =
        in->auto_stop_warning_minutes < minutes ? in->auto_stop_warning_minutes : minutes - 1;
    int64_t warn_at = at - (int64_t)warn * minute;
    p->status.set_auto_stop = 1;
    p->status.auto_stop_ms = at;
    p->status.auto_stop_pending = warn > 0 && in->wall_ms >= warn_at;
    int64_t next = (p->status.auto_stop_pending ? at : warn_at) - in->wall_ms;
    if (next < 1)
        next = 1;
    if ((uint64_t)next < *next_ms)
        *next_ms = (uint64_t)next;
    return 0;
}

int reconcile__set_auto_stop(const rec_env_t *e, const decide_status_t *st, env_status_t *s,
                             int64_t now)
{
    if (!st->set_auto_stop)
        return 0;
    int64_t at = st->set_auto_stop > 0 ? st->auto_stop_ms : 0;
    int pending = st->set_auto_stop > 0 && st->auto_stop_pending;
    int64_t pending_ms = pending ? (s->auto_stop_pending_ms ? s->auto_stop_pending_ms : now) : 0;
    if (at == s->auto_stop_ms && pending_ms == s->auto_stop_pending_ms)
        return 0;
    if (pending && !s->auto_stop_pending_ms) {
        char ts[32], msg[160];
        d8_rfc3339(at, ts);
        snprintf(msg, sizeof(msg), "no activity: the workspace will be stopped at %s", ts);
        events_add(e->r->events, e->id, "Warning", "AutoStopPending", "agent", now, 1, msg);
    }
    s->auto_stop_ms = at;
    s->auto_stop_pending_ms = pending_ms;
    return 1;
}

int reconcile__activity_name(const char *name)
{
    return strcmp(name, "DEV8_ACTIVITY_URL") == 0 || strcmp(name, "DEV8_ACTIVITY_TOKEN") == 0;
}
