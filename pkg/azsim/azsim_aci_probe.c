/*
 * pkg/azsim: the probes of a container and the IDE behind them, and the
 * container's log (BEHAVIOURS.md item 11).
 *
 * ACI runs a container's readinessProbe and livenessProbe as Kubernetes
 * does (Learn: "The readiness probe behaves like a Kubernetes readiness
 * probe"): the first after initialDelaySeconds, then every periodSeconds.
 * The instance view has no ready flag; a failing probe shows as an
 * `Unhealthy` Warning event of the container ("Readiness probe failed:
 * ..."), merged with its repeats (count, lastTimestamp). A liveness probe
 * that fails failureThreshold times in a row kills the container
 * (`Killing`, "... failed liveness probe, will be restarted"), and the
 * restart policy restarts it: restartCount + 1, previousState Terminated
 * with exit code 137.
 *
 * Whether the IDE answers is the image rule's: readyAfterMs into each run
 * (0: at once), or never (probeNeverPasses). The probes are heap events
 * of the run's epoch, so a stop, a crash or a new deployment ends them.
 *
 * The log is what the workspace writes to stdout: a line when a run
 * starts, when the IDE listens, and when it crashes. It lives as long as
 * the deployment (a stop or a new deployment starts it empty); the logs
 * GET answers {"content": ...} with the last `tail` lines.
 */
#include "azsim_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_LOG_LINES 1000
#define DEFAULT_PERIOD_S 10
#define DEFAULT_FAILURE_THRESHOLD 3
#define KILLED_EXIT_CODE 137 /* SIGKILL */

static int int_of(const cJSON *o, const char *key, int dflt, int min)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > 86400)
        return dflt;
    return (int)v->valuedouble;
}

static void read_one(azsim__probe_t *p, const cJSON *j)
{
    memset(p, 0, sizeof(*p));
    if (!cJSON_IsObject(j))
        return;
    p->set = 1;
    p->initial_delay_s = int_of(j, "initialDelaySeconds", 0, 0);
    p->period_s = int_of(j, "periodSeconds", DEFAULT_PERIOD_S, 1);
    p->failure_threshold = int_of(j, "failureThreshold", DEFAULT_FAILURE_THRESHOLD, 1);
    const cJSON *http = cJSON_GetObjectItem(j, "httpGet");
    if (cJSON_IsObject(http)) {
        const cJSON *path = cJSON_GetObjectItem(http, "path");
        p->port = int_of(http, "port", 80, 1);
        snprintf(p->path, sizeof(p->path), "%s", cJSON_IsString(path) ? path->valuestring : "/");
        return;
    }
    const cJSON *cmd = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "exec"), "command");
    const cJSON *first = cJSON_IsArray(cmd) ? cmd->child : NULL;
    snprintf(p->path, sizeof(p->path), "%s", cJSON_IsString(first) ? first->valuestring : "exec");
}

void azsim__probe_read(azsim__group_t *g, const cJSON *container_props)
{
    read_one(&g->readiness, cJSON_GetObjectItem(container_props, "readinessProbe"));
    read_one(&g->liveness, cJSON_GetObjectItem(container_props, "livenessProbe"));
}

void azsim__log_line(azsim__group_t *g, int64_t wall, const char *fmt, ...)
{
    /* Kept as "<RFC 3339 time> <line>": the GET shows the time only with
     * timestamps=true. */
    char line[600];
    d8_rfc3339(wall, line);
    size_t n = strlen(line);
    line[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (!g->logs)
        g->logs = cJSON_CreateArray();
    if (cJSON_GetArraySize(g->logs) >= MAX_LOG_LINES)
        cJSON_DeleteItemFromArray(g->logs, 0);
    cJSON_AddItemToArray(g->logs, cJSON_CreateString(line));
}

/* The shortest probe period of g in ms, 0 when it has no probe. */
static uint64_t period_ms(const azsim__group_t *g)
{
    int p = 0;
    if (g->readiness.set)
        p = g->readiness.period_s;
    if (g->liveness.set && (!p || g->liveness.period_s < p))
        p = g->liveness.period_s;
    return (uint64_t)p * 1000;
}

static uint64_t first_delay_ms(const azsim__group_t *g)
{
    int d = -1;
    if (g->readiness.set)
        d = g->readiness.initial_delay_s;
    if (g->liveness.set && (d < 0 || g->liveness.initial_delay_s < d))
        d = g->liveness.initial_delay_s;
    return d < 0 ? 0 : (uint64_t)d * 1000;
}

void azsim__probe_schedule(azsim_t *sim, azsim__group_t *g, uint64_t due)
{
    g->run_start = due;
    g->live_failures = 0;
    g->ready_seen = 0;
    if (!period_ms(g))
        return;
    azsim__heap_push(&sim->events, due + first_delay_ms(g), AZSIM__EV_PROBE, g->run_epoch,
                     g->e.key);
}

/* What a failing probe says, kubelet's words ("Readiness", "Liveness"). */
static void failure_msg(const azsim__group_t *g, const azsim__probe_t *p, const char *kind,
                        char *out, size_t outlen)
{
    if (p->port)
        snprintf(out, outlen,
                 "%s probe failed: Get \"http://%s:%d%s\": dial tcp %s:%d: connect: connection "
                 "refused",
                 kind, g->ip[0] ? g->ip : "10.0.0.4", p->port, p->path,
                 g->ip[0] ? g->ip : "10.0.0.4", p->port);
    else
        snprintf(out, outlen, "%s probe failed: %s: exit status 1", kind, p->path);
}

/* Whether a probe at `age` ms into the run (past its initial delay) is
 * due on the common schedule of both probes. */
static int due_now(const azsim__probe_t *p, uint64_t age)
{
    return p->set && age >= (uint64_t)p->initial_delay_s * 1000;
}

void azsim__probe_run(azsim_t *sim, azsim__group_t *g, uint64_t due)
{
    int64_t wall = azsim__wall_of(sim, due);
    uint64_t age = due - g->run_start;
    int healthy = g->ready_after_ms >= 0 && age >= (uint64_t)g->ready_after_ms;
    cJSON *events = cJSON_GetArrayItem(g->cevents, 0);
    char msg[600];
    if (healthy) {
        if (!g->ready_seen) {
            g->ready_seen = 1;
            azsim__log_line(g, wall, "dev8 workspace: IDE listening on port %d",
                            g->readiness.port ? g->readiness.port : g->liveness.port);
        }
        g->live_failures = 0;
        return; /* the rule's IDE stays healthy for the rest of the run */
    }
    if (due_now(&g->readiness, age)) {
        failure_msg(g, &g->readiness, "Readiness", msg, sizeof(msg));
        azsim__note(events, "Unhealthy", "Warning", msg, wall);
    }
    if (due_now(&g->liveness, age)) {
        failure_msg(g, &g->liveness, "Liveness", msg, sizeof(msg));
        azsim__note(events, "Unhealthy", "Warning", msg, wall);
        if (++g->live_failures >= g->liveness.failure_threshold) {
            snprintf(msg, sizeof(msg), "Container %s failed liveness probe, will be restarted",
                     g->cname);
            azsim__note(events, "Killing", "Normal", msg, wall);
            azsim__run_ended(sim, g, due, KILLED_EXIT_CODE);
            return;
        }
    }
    azsim__heap_push(&sim->events, due + period_ms(g), AZSIM__EV_PROBE, g->run_epoch, g->e.key);
}
