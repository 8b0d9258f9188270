#include "decide.h"

#include "base/base.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char MSG_STOPPED[] = "stopped; the file share keeps the workspace";
static const char MSG_AUTO_STOPPED[] =
    "stopped for inactivity; a new generation or /start starts it again";

static const char *const action_names[DECIDE__COUNT] = {
    "none",        "getGroup",     "getShare",     "createShare", "growShare",
    "retainShare", "deleteShare",  "createGroup",  "deleteGroup", "startGroup",
    "stopGroup",   "removeObject", "getOperation", "adoptShare",
};

static const char *const call_names[DECIDE__COUNT] = {
    [DECIDE_NONE] = "none",
    [DECIDE_GET_GROUP] = "get container group",
    [DECIDE_GET_SHARE] = "get file share",
    [DECIDE_CREATE_SHARE] = "create file share",
    [DECIDE_GROW_SHARE] = "grow file share quota",
    [DECIDE_RETAIN_SHARE] = "mark file share retained",
    [DECIDE_DELETE_SHARE] = "delete file share",
    [DECIDE_CREATE_GROUP] = "create container group",
    [DECIDE_DELETE_GROUP] = "delete container group",
    [DECIDE_START_GROUP] = "start container group",
    [DECIDE_STOP_GROUP] = "stop container group",
    [DECIDE_ADOPT_SHARE] = "adopt retained file share",
    [DECIDE_REMOVE_OBJECT] = "remove object",
    [DECIDE_GET_OPERATION] = "get container group operation",
};

const char *reconcile_action_name(decide_action_t a)
{
    return (unsigned)a < DECIDE__COUNT ? action_names[a] : "unknown";
}

const char *reconcile_action_call(decide_action_t a)
{
    return (unsigned)a < DECIDE__COUNT ? call_names[a] : "unknown";
}

int reconcile_auto_stop_due(int minutes, int64_t agent_start_ms, int64_t last_activity_ms,
                            int64_t running_since_ms, int64_t now_ms)
{
    int64_t at =
        reconcile_auto_stop_at(minutes, 60000, agent_start_ms, last_activity_ms, running_since_ms);
    return at && now_ms >= at;
}

/* ---- plan builders ------------------------------------------------------------ */

/* The pass ends here with `result`, back in `requeue_ms` (0: only on change). */
static void end(decide_plan_t *p, uint64_t requeue_ms, const char *result)
{
    p->action = DECIDE_NONE;
    p->requeue_ms = requeue_ms;
    p->result = result;
}

/* Failed attempts of the step being retried (0: not retrying). */
static int retry_attempts(const decide_memory_t *m)
{
    return m->prov_failures > m->slow_failures ? m->prov_failures : m->slow_failures;
}

/* The pass issues `a`; a mutation publishes its status with it and ends
 * any wait for Azure (polling starts over after it). */
static void act(decide_plan_t *p, decide_action_t a, const char *reason)
{
    p->action = a;
    p->reason = reason;
    p->result = "acted";
    if (a != DECIDE_GET_GROUP && a != DECIDE_GET_SHARE && a != DECIDE_GET_OPERATION) {
        p->status.acted = 1;
        p->mem.poll_ms = 0;
        /* A retry under way: its attempts stay visible, no next time yet. */
        p->status.set_retry = retry_attempts(&p->mem) ? 1 : -1;
        p->status.retry_attempts = retry_attempts(&p->mem);
        p->status.retry_wall_ms = 0;
    }
}

/*
 * Waits for Azure to move: the group is read again after 2 s, 4 s, ... up
 * to 30 s while nothing changes. Only a pass that read the group (or the
 * first wait) moves that time; the passes of resyncs in between wait for
 * it, so a short resync period does not multiply the reads.
 */
static void poll_at(decide_plan_t *p, uint64_t now_ms, int fresh, int urgent)
{
    if (fresh || !p->settle || !p->next_get_ms) {
        /* Someone waits on an interactive change: look more often. */
        uint64_t cap = urgent ? DECIDE_URGENT_POLL_CAP_MS : DECIDE_POLL_CAP_MS;
        uint64_t next = p->mem.poll_ms ? p->mem.poll_ms * 2 : DECIDE_POLL_MS;
        p->mem.poll_ms = next < cap ? next : cap;
        p->next_get_ms = now_ms + p->mem.poll_ms;
    }
    p->settle = 1;
    end(p, p->next_get_ms > now_ms ? p->next_get_ms - now_ms : 1, "waiting");
}

static void ready(decide_plan_t *p, int phase, cond_status_t st, const char *reason,
                  const char *msg)
{
    p->status.publish = 1;
    p->status.phase = phase;
    p->status.ready = st;
    p->status.ready_reason = reason;
    p->status.ready_msg = msg;
}

static void synced(decide_plan_t *p, cond_status_t st, const char *reason, const char *msg)
{
    p->status.publish = 1;
    p->status.synced = st;
    p->status.synced_reason = reason;
    p->status.synced_msg = msg;
}

static void error(decide_plan_t *p, const char *code, const char *msg)
{
    p->status.set_error = 1;
    p->status.err_code = code;
    p->status.err_msg = msg;
}

/* ---- observations --------------------------------------------------------------- */

static int prov_is(const observed_t *o, const char *state)
{
    return strcasecmp(o->g.prov, state) == 0;
}

static int inst_is(const observed_t *o, const char *state)
{
    return strcasecmp(o->g.inst, state) == 0;
}

static int inst_stopped(const observed_t *o)
{
    return inst_is(o, "Stopped") || inst_is(o, "Terminated");
}

/* Every container exited and ACI will not restart them: instance state
 * Succeeded (exit 0) or Failed (non-zero under restartPolicy Never). The
 * group is provisioned; it runs again only when started. */
static int inst_exited(const observed_t *o)
{
    return inst_is(o, "Succeeded") || inst_is(o, "Failed");
}

/* CREATING for a workspace that never ran, STARTING for one that did. */
static int creating_phase(const decide_input_t *in)
{
    if (in->mem.ever_running)
        return PHASE_STARTING;
    switch (in->obj->status.phase) {
    case PHASE_RUNNING:
    case PHASE_STOPPED:
    case PHASE_STOPPING:
    case PHASE_STARTING:
        return PHASE_STARTING;
    default:
        return PHASE_CREATING;
    }
}

static const char *creating_reason(int phase)
{
    return phase == PHASE_CREATING ? "Creating" : "Starting";
}

/*
 * The next status GET: statusRefreshSeconds after the GET of this pass,
 * plus up to half of it again as jitter (refreshes spread out and are never
 * more frequent than once per period). A pass that did not GET keeps the
 * schedule, so resync passes cannot push it away forever.
 */
static void schedule_refresh(const decide_input_t *in, decide_plan_t *p)
{
    if (in->fetched_group || !p->next_get_ms)
        p->next_get_ms = in->now_ms + in->status_refresh_ms +
                         (uint64_t)(in->rand[0] * (double)in->status_refresh_ms / 2);
}

static uint64_t refresh_delay(const decide_input_t *in, const decide_plan_t *p)
{
    return p->next_get_ms > in->now_ms ? p->next_get_ms - in->now_ms : 1;
}

/*
 * ACI meters container group creates and deletes per region. A mutation
 * that would wait for the client's bucket gives its pass back instead of
 * holding a slot (which would stall the status work of every other
 * environment): Throttled, back when a token is due (plus up to 1 s).
 */
static int throttled(const decide_input_t *in, decide_plan_t *p, uint64_t wait_ms)
{
    if (!wait_ms)
        return 0;
    synced(p, COND_FALSE, "Throttled",
           "waiting for the region's Azure Container Instances rate limit");
    end(p, wait_ms + (uint64_t)(in->rand[1] * 1000.0), "throttled");
    return 1;
}

/* Auto-stop ends when a new generation or activity (e.g. /start) follows it. */
static int auto_stopped(const decide_input_t *in, decide_plan_t *p)
{
    if (!p->mem.auto_stopped_ms)
        return 0;
    if (p->mem.auto_stopped_gen != in->obj->generation ||
        in->obj->status.last_activity_ms > p->mem.auto_stopped_ms) {
        p->mem.auto_stopped_ms = 0;
        return 0;
    }
    return 1;
}

/* ---- deletion ------------------------------------------------------------------- */

/* Deletion: the group, then the share (Delete policy: ownership confirmed
 * by a fresh GET; Retain: marked dev8keep=true), then the object. */
static void decide_delete(const decide_input_t *in, decide_plan_t *p)
{
    const observed_t *o = in->obs;
    if (o->region < 0) {
        /* A tombstone for an id never seen: once every region was listed,
         * there is nothing in Azure to delete. */
        if (in->listed_all) {
            p->action = DECIDE_REMOVE_OBJECT;
            p->reason = "nothing in Azure";
            p->result = "deleted";
        } else {
            end(p, DECIDE_POLL_MS, "waiting");
        }
        return;
    }
    if (observed_group_stale(o, in->fetched_group, in->now_ms)) {
        act(p, DECIDE_GET_GROUP, "deleting");
        return;
    }
    ready(p, PHASE_DELETING, COND_FALSE, "Deleting", "the environment is being deleted");
    synced(p, COND_TRUE, "ReconcileSuccess", NULL);
    if (o->g.exists) {
        if (prov_is(o, "Deleting")) {
            poll_at(p, in->now_ms, in->fetched_group, in->urgent);
            return;
        }
        act(p, DECIDE_DELETE_GROUP, "environment deleted");
        return;
    }
    int retain = in->obj->has_spec && in->obj->spec.storage_policy == SPEC_STORAGE_RETAIN;
    if (!o->s.known || o->s.exists) {
        if (!in->fetched_share) {
            act(p, DECIDE_GET_SHARE, "deleting");
            p->status.publish = 0;
            return;
        }
        if (retain && o->s.exists && o->s.verified && !o->s.keep) {
            act(p, DECIDE_RETAIN_SHARE, "environment deleted, storagePolicy Retain");
            return;
        }
        if (!retain && o->s.exists && o->s.verified) {
            act(p, DECIDE_DELETE_SHARE, "environment deleted");
            return;
        }
    }
    p->status.publish = 0;
    p->action = DECIDE_REMOVE_OBJECT;
    p->reason = retain && o->s.exists ? "share retained" : "resources deleted";
    p->result = "deleted";
}

/*
 * Removed from the desired set by a full sync: the reaper deletes its
 * resources after their grace period, so nothing is done here but to
 * notice when Azure holds nothing of it any more (a kept share counts as
 * not ours to delete): then the object goes.
 */
static void decide_removed(const decide_input_t *in, decide_plan_t *p)
{
    const observed_t *o = in->obs;
    int nothing = o->region < 0
                      ? in->listed_all
                      : o->g.known && !o->g.exists && o->s.known && (!o->s.exists || o->s.keep);
    if (!nothing) {
        end(p, 0, "waiting"); /* the region's next list queues it again */
        return;
    }
    p->action = DECIDE_REMOVE_OBJECT;
    p->reason = "removed from the desired set; nothing left in Azure";
    p->result = "deleted";
}

/* ---- restored objects ------------------------------------------------------------ */

/*
 * An environment restored from the state file with secrets has no secret
 * values until Next.js PUTs it again: no spec hash, no group can be made.
 * Observe only; the PUT (or full sync) that brings the values requeues it.
 */
static void decide_restored(const decide_input_t *in, decide_plan_t *p)
{
    const observed_t *o = in->obs;
    p->status.publish = 1;
    synced(p, COND_FALSE, "ReconcileError",
           "restored from the state file without secret values: "
           "waiting for a PUT or full sync of this environment");
    if (o->g.exists && prov_is(o, "Succeeded") && inst_is(o, "Running"))
        ready(p, PHASE_RUNNING, COND_TRUE, "Available", "the workspace is running");
    else if (o->g.exists && inst_stopped(o))
        ready(p, PHASE_STOPPED, COND_FALSE, "Stopped", MSG_STOPPED);
    end(p, 0, "waiting");
}

/* ---- the share ------------------------------------------------------------------- */

/* Step 1: the share exists, is ours and is large enough, before anything
 * mounts it. Returns 1 when the plan is made. */
static int decide_share(const decide_input_t *in, decide_plan_t *p)
{
    const observed_t *o = in->obs;
    const env_spec_t *sp = &in->obj->spec;
    if ((in->share_min_gb && sp->storage_gb < in->share_min_gb) ||
        (in->share_max_gb && sp->storage_gb > in->share_max_gb)) {
        /* Azure would refuse the share (or its growth): say why, in our words. */
        snprintf(p->msg, sizeof(p->msg),
                 "storageGB %d is outside what the %s storage account allows (%d to %d GiB)",
                 sp->storage_gb, in->account_kind ? in->account_kind : "region's",
                 in->share_min_gb ? in->share_min_gb : 1, in->share_max_gb);
        ready(p, PHASE_ERROR, COND_FALSE, "Failed", p->msg);
        synced(p, COND_FALSE, "ReconcileError", p->msg);
        error(p, "StorageGBOutOfRange", p->msg);
        end(p, 0, "error");
        return 1;
    }
    if (!o->s.exists) {
        int phase = creating_phase(in);
        ready(p, phase, COND_FALSE, "Creating", "creating the file share");
        act(p, DECIDE_CREATE_SHARE, "no file share");
        return 1;
    }
    if (!o->s.verified && !in->fetched_share) {
        /* Listed but never read: confirm it is ours before changing it. */
        act(p, DECIDE_GET_SHARE, "verify ownership");
        p->status.publish = 0;
        return 1;
    }
    if (o->s.keep && o->s.keep_until_ms > 0) {
        /* Retained by an earlier deletion of this id: the same share (and
         * data) serves it again, no longer to be reaped. */
        act(p, DECIDE_ADOPT_SHARE, "adopting the retained file share");
        return 1;
    }
    if (o->s.quota_gb > 0 && o->s.quota_gb < sp->storage_gb) {
        p->status.publish = 1;
        act(p, DECIDE_GROW_SHARE, "storageGB grew");
        p->quota_gb = sp->storage_gb;
        return 1;
    }
    if (o->s.quota_gb > sp->storage_gb) {
        snprintf(p->msg2, sizeof(p->msg2),
                 "storageGB %d is below the file share's quota of %d GB: shrinking is refused",
                 sp->storage_gb, o->s.quota_gb);
        synced(p, COND_FALSE, "ReconcileError", p->msg2);
    }
    return 0;
}

/* A settled state: lastError clears (unless a refused shrink stands),
 * status.retry clears, and the memory of pending mutations goes. */
static void settled(decide_plan_t *p)
{
    p->status.set_error = p->msg2[0] ? 0 : -1;
    p->status.set_retry = -1;
    p->mem.last_action = DECIDE_NONE;
    p->mem.repeats = 0;
    p->mem.poll_ms = 0;
    p->mem.slow_failures = 0;
}

/* ---- the group -------------------------------------------------------------------- */

/* A Failed provisioning of our create: report it first, then retry
 * (delete, then create) after a backoff that grows with each consecutive
 * failure. The backoff lives in the memory, not in the queue's failure
 * count: the passes in between succeed, and a resync or refresh must not
 * retry early (a group that always fails would burn the region's ACI
 * create budget). status.retry shows the attempts and when. */
static void decide_failed(const decide_input_t *in, decide_plan_t *p)
{
    const observed_t *o = in->obs;
    if (!p->mem.failed_seen && in->operation_unread) {
        /* The create's operation carries Azure's error code (the instance
         * view only its events): read it once before reporting. */
        act(p, DECIDE_GET_OPERATION, "failed create");
        return;
    }
    if (!p->mem.failed_seen) {
        snprintf(p->msg, sizeof(p->msg), "container group provisioning failed: %s",
                 o->g.failure ? o->g.failure : "no message from Azure");
        p->mem.failed_seen = 1;
        p->mem.prov_failures++;
        uint64_t delay = d8_backoff_ms((unsigned)p->mem.prov_failures, DECIDE_FAIL_BASE_MS,
                                       DECIDE_FAIL_CAP_MS, in->rand[1]);
        p->mem.prov_retry_ms = in->now_ms + delay;
        ready(p, PHASE_ERROR, COND_FALSE, reconcile_failed_reason(o->g.failure, in->operation_code),
              p->msg);
        synced(p, COND_FALSE, "ReconcileError", p->msg);
        error(p,
              in->operation_code && *in->operation_code ? in->operation_code : "ProvisioningFailed",
              p->msg);
        p->status.set_retry = 1;
        p->status.retry_attempts = p->mem.prov_failures;
        p->status.retry_wall_ms = in->wall_ms + (int64_t)delay;
        end(p, delay, "error");
        return;
    }
    if (in->now_ms < p->mem.prov_retry_ms) {
        p->status.publish = 0;
        end(p, p->mem.prov_retry_ms - in->now_ms, "waiting");
        return;
    }
    p->status.publish = 0;
    p->mem.failed_seen = 0;
    act(p, DECIDE_DELETE_GROUP, "retry after failed provisioning");
    p->status.acted = 0;
    /* A rotated storage key fails the mount: the retry lists the keys again. */
    p->refresh_key = 1;
}

/*
 * A provisioningState of Failed or Canceled is a failed create only when
 * our last mutation of the group was its create (or is unknown, after a
 * restart). A failed or canceled stop, start or delete leaves a group
 * whose power state still tells what to do.
 */
static int failed_create(const decide_plan_t *p, const observed_t *o)
{
    if (!prov_is(o, "Failed") && !prov_is(o, "Canceled"))
        return 0;
    decide_action_t last = p->mem.last_action;
    return last == DECIDE_NONE || last == DECIDE_CREATE_GROUP;
}

/* Desired running and the container runs: RUNNING, or an auto-stop. */
static void decide_running(const decide_input_t *in, decide_plan_t *p)
{
    uint64_t next_stop = UINT64_MAX;
    if (reconcile_auto_stop(in, p, &next_stop)) {
        ready(p, PHASE_STOPPING, COND_FALSE, "Stopping", "no activity for autoStopMinutes");
        synced(p, COND_TRUE, "AutoStopped", p->msg3);
        act(p, DECIDE_STOP_GROUP, "auto-stop: no activity for autoStopMinutes");
        return;
    }
    p->settle = 0;
    p->mem.ever_running = 1;
    if (!p->mem.running_since_ms)
        p->mem.running_since_ms = in->wall_ms;
    schedule_refresh(in, p);
    ready(p, PHASE_RUNNING, COND_TRUE, "Available", "the workspace is running");
    settled(p);
    uint64_t next = refresh_delay(in, p);
    if (in->obj->spec.auto_stop_minutes > 0 && next > DECIDE_AUTO_STOP_CHECK_MS)
        next = DECIDE_AUTO_STOP_CHECK_MS;
    end(p, next < next_stop ? next : next_stop, "success");
}

/* Synced AutoStopped's message: the idle time that stopped it. */
static const char *auto_stopped_msg(decide_plan_t *p)
{
    if (!p->mem.auto_stop_idle_ms)
        return MSG_AUTO_STOPPED;
    snprintf(p->msg3, sizeof(p->msg3),
             "stopped after %lld s without activity; a new generation or /start starts it again",
             (long long)(p->mem.auto_stop_idle_ms / 1000));
    return p->msg3;
}

/* Desired stopped (by spec or auto-stop): STOPPED once the group is
 * stopped or its containers exited (a stop would change nothing), else
 * stop it. */
static void decide_stopped(const decide_input_t *in, decide_plan_t *p)
{
    const observed_t *o = in->obs;
    int auto_stop = p->mem.auto_stopped_ms != 0;
    if (inst_stopped(o) || inst_exited(o)) {
        p->settle = 0;
        schedule_refresh(in, p);
        if (inst_exited(o)) {
            snprintf(p->msg, sizeof(p->msg),
                     "stopped; the workspace exited (instance state %s) and the file share "
                     "keeps it",
                     o->g.inst);
            ready(p, PHASE_STOPPED, COND_FALSE, "Stopped", p->msg);
        } else {
            ready(p, PHASE_STOPPED, COND_FALSE, "Stopped", MSG_STOPPED);
        }
        if (auto_stop)
            synced(p, COND_TRUE, "AutoStopped", auto_stopped_msg(p));
        settled(p);
        end(p, refresh_delay(in, p), "success");
        return;
    }
    ready(p, PHASE_STOPPING, COND_FALSE, "Stopping", "stopping the container group");
    if (auto_stop)
        synced(p, COND_TRUE, "AutoStopped", auto_stopped_msg(p));
    act(p, DECIDE_STOP_GROUP, auto_stop ? "auto-stopped" : "desired stopped");
}

/* Step 3: a provisioned group's power state against the desired one. */
static void decide_power(const decide_input_t *in, decide_plan_t *p, int want_running)
{
    const observed_t *o = in->obs;
    p->mem.prov_failures = 0;
    if (want_running && inst_is(o, "Running")) {
        if (!reconcile_health_running(in, p))
            decide_running(in, p);
        return;
    }
    p->mem.running_since_ms = 0;
    if (!want_running) {
        decide_stopped(in, p);
        return;
    }
    if (inst_exited(o)) {
        snprintf(p->msg, sizeof(p->msg),
                 "the workspace exited (instance state %s): starting it again", o->g.inst);
        ready(p, PHASE_STARTING, COND_FALSE, "Restarting", p->msg);
        act(p, DECIDE_START_GROUP, "the workspace exited");
        return;
    }
    if (inst_stopped(o)) {
        ready(p, PHASE_STARTING, COND_FALSE, "Starting", "starting the container group");
        act(p, DECIDE_START_GROUP, "desired running");
        return;
    }
    int phase = creating_phase(in);
    ready(p, phase, COND_FALSE, creating_reason(phase), "waiting for the container to run");
    poll_at(p, in->now_ms, in->fetched_group, in->urgent);
}

/* Whether a change that recreates the group waits (updatePolicy
 * OnNextStart): while the workspace runs, or while it is to stay stopped
 * (recreating would start it), unless a restart asked for this generation. */
static int update_waits(const decide_input_t *in, int want_running)
{
    const env_obj_t *obj = in->obj;
    if (obj->spec.update_policy != SPEC_UPDATE_ON_NEXT_START ||
        obj->apply_now_gen >= obj->generation)
        return 0;
    return inst_is(in->obs, "Running") || !want_running;
}

/* Step 2: the group exists with the desired spec and provisioned. */
static void decide_group(const decide_input_t *in, decide_plan_t *p)
{
    const observed_t *o = in->obs;
    int want_running = in->obj->spec.power == SPEC_POWER_RUNNING && !auto_stopped(in, p);
    int phase = creating_phase(in);
    if (!o->g.exists) {
        if (!want_running) {
            ready(p, PHASE_STOPPED, COND_FALSE, "Stopped", MSG_STOPPED);
            settled(p);
            end(p, 0, "success");
            return;
        }
        ready(p, phase, COND_FALSE, creating_reason(phase), "creating the container group");
        /* Waiting for a create token reads nothing: the absence is
         * confirmed only when the create can go. */
        if (throttled(in, p, in->aci_create_wait_ms))
            return;
        if (!in->fetched_group &&
            (!o->g.absent_read_ms || in->now_ms - o->g.absent_read_ms > DECIDE_ABSENCE_FRESH_MS)) {
            /* An identical PUT of an existing group restarts its containers
             * and ACI has no conditional PUT: a group is created only after
             * a GET found none moments ago. */
            p->status.publish = 0;
            act(p, DECIDE_GET_GROUP, "confirm absence before create");
            return;
        }
        act(p, DECIDE_CREATE_GROUP, "no container group");
        return;
    }
    if (prov_is(o, "Deleting")) {
        ready(p, phase, COND_FALSE, "Starting",
              "waiting for the old container group to be deleted");
        poll_at(p, in->now_ms, in->fetched_group, in->urgent);
        return;
    }
    if (strcmp(o->g.spec_hash, in->spec_hash) != 0 && update_waits(in, want_running)) {
        /* Never kill a live session for it: the change waits for the next
         * stop/start or a POST .../restart; until then the old group runs. */
        p->update_pending = 1;
    } else if (strcmp(o->g.spec_hash, in->spec_hash) != 0) {
        ready(p, phase, COND_FALSE, "Starting",
              "recreating the container group for the new spec (the share keeps the data)");
        if (throttled(in, p, in->aci_delete_wait_ms))
            return;
        act(p, DECIDE_DELETE_GROUP, "spec drift");
        return;
    }
    if (failed_create(p, o)) {
        decide_failed(in, p);
        return;
    }
    if (!prov_is(o, "Succeeded") && !prov_is(o, "Failed") && !prov_is(o, "Canceled")) {
        if (reconcile_health_pending(in, p))
            return;
        ready(p, phase, COND_FALSE, creating_reason(phase),
              "Azure is provisioning the container group");
        poll_at(p, in->now_ms, in->fetched_group, in->urgent);
        return;
    }
    decide_power(in, p, want_running);
}

static int is_mutation(decide_action_t a)
{
    return a != DECIDE_NONE && a != DECIDE_GET_GROUP && a != DECIDE_GET_SHARE &&
           a != DECIDE_REMOVE_OBJECT && a != DECIDE_GET_OPERATION;
}

/* A slow retry (capacity, quota, a blocked deletion) holds every mutation
 * of its generation until its time, keeping the status that says why;
 * observation goes on. A new generation may fit where the old one did
 * not, so it ends the hold. */
static void hold_mutation(const decide_input_t *in, decide_plan_t *p)
{
    if (!p->mem.hold_until_ms)
        return;
    if (p->mem.hold_gen != in->obj->generation || in->now_ms >= p->mem.hold_until_ms) {
        p->mem.hold_until_ms = 0;
        p->mem.hold_until_wall_ms = 0;
        if (p->mem.hold_gen != in->obj->generation)
            p->mem.slow_failures = 0;
        return;
    }
    if (!is_mutation(p->action))
        return;
    p->status.publish = 0;
    p->mem = in->mem;
    end(p, p->mem.hold_until_ms - in->now_ms, "waiting");
}

/*
 * The same stop, start or group delete issued again before the group
 * settled waits a little (5 s, doubling up to 5 minutes): a stale read
 * right after an operation, or an operation that changes nothing, must
 * never become a loop of identical mutations. Records the mutation.
 */
static void guard_repeat(const decide_input_t *in, decide_plan_t *p)
{
    decide_action_t a = p->action;
    if (!is_mutation(a))
        return;
    int guarded = a == DECIDE_START_GROUP || a == DECIDE_STOP_GROUP || a == DECIDE_DELETE_GROUP;
    if (guarded && a == in->mem.last_action) {
        uint64_t gap = DECIDE_REPEAT_BASE_MS;
        for (int i = 0; i < in->mem.repeats && gap < DECIDE_REPEAT_CAP_MS; i++)
            gap *= 2;
        gap = gap < DECIDE_REPEAT_CAP_MS ? gap : DECIDE_REPEAT_CAP_MS;
        uint64_t since = in->now_ms - in->mem.last_action_ms;
        if (since < gap) {
            p->status.acted = 0;
            p->settle = 1;
            end(p, gap - since, "waiting");
            return;
        }
        p->mem.repeats = in->mem.repeats + 1;
    } else {
        p->mem.repeats = 0;
    }
    p->mem.last_action = a;
    p->mem.last_action_ms = in->now_ms;
}

/* An environment's group or share name is taken by a resource that is
 * not ours: report it and leave it alone (invariant 1). */
static void decide_conflict(const decide_input_t *in, decide_plan_t *p)
{
    snprintf(p->msg, sizeof(p->msg),
             "a %s named dev8-%s exists and is not tagged with controller %s: left alone",
             in->obs->g.foreign ? "container group" : "file share", in->obs->id, in->controller);
    ready(p, PHASE_ERROR, COND_FALSE, "Failed", p->msg);
    synced(p, COND_FALSE, "ReconcileError", p->msg);
    error(p, "NameConflict", p->msg);
    end(p, in->resync_ms, "error");
}

/* The decision before the guards that may turn a mutation into a wait. */
static void decide_step(const decide_input_t *in, decide_plan_t *p)
{
    const env_obj_t *obj = in->obj;
    const observed_t *o = in->obs;
    if (obj->removed) {
        decide_removed(in, p);
        return;
    }
    if (obj->status.phase == PHASE_DELETING) {
        p->status.synced_msg = NULL;
        decide_delete(in, p);
        return;
    }
    if (obj->has_spec && in->desired_region < 0) {
        /* The config lost the region: nothing is safe to do. */
        end(p, 0, "error");
        return;
    }
    if (observed_group_stale(o, in->fetched_group, in->now_ms)) {
        act(p, DECIDE_GET_GROUP, "observe");
        return;
    }
    if (!o->s.known && !in->fetched_share) {
        act(p, DECIDE_GET_SHARE, "observe");
        return;
    }
    if (obj->restored || !in->spec_hash) {
        decide_restored(in, p);
        return;
    }
    if (o->g.foreign || o->s.foreign) {
        decide_conflict(in, p);
        return;
    }
    if (decide_share(in, p))
        return;
    decide_group(in, p);
}

void reconcile_decide(const decide_input_t *in, decide_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    p->mem = in->mem;
    p->settle = in->obs->settle;
    p->next_get_ms = in->obs->next_get_ms;
    p->status.phase = -1;
    p->status.synced = COND_TRUE;
    p->status.synced_reason = "ReconcileSuccess";
    p->status.synced_msg = "";
    decide_step(in, p);
    /* status.autoStopTime exists only while the workspace runs. */
    if (p->status.publish && p->status.phase >= 0 && p->status.phase != PHASE_RUNNING &&
        !p->status.set_auto_stop)
        p->status.set_auto_stop = -1;
    hold_mutation(in, p);
    guard_repeat(in, p);
    /* With the region's lists failing, whatever this pass saw may be old:
     * say so rather than Synced True (the phase stays as last known). */
    if (p->update_pending && p->status.publish)
        synced(p, COND_FALSE, "UpdatePending",
               "a change of the spec waits for the next stop/start (updatePolicy OnNextStart) "
               "or POST .../restart");
    if (in->region_stale && p->action != DECIDE_REMOVE_OBJECT) {
        synced(p, COND_UNKNOWN, "AzureUnreachable",
               "the last lists of this environment's region failed: its status may be stale");
    }
    /* A retry keeps the environment ERROR until it succeeds: no flapping
     * ERROR -> CREATING -> ERROR with an event and a webhook each time. */
    if (p->status.publish && retry_attempts(&p->mem) &&
        (p->status.phase == PHASE_CREATING || p->status.phase == PHASE_STARTING))
        p->status.phase = PHASE_ERROR;
}

decide_failure_kind_t reconcile_failure_kind(const decide_failure_t *f)
{
    const char *code = f->code ? f->code : "";
    if (f->err == D8_ECANCELED)
        return DECIDE_FAIL_CANCELED;
    if (strcmp(code, "ContainerGroupTransitioning") == 0)
        return DECIDE_FAIL_TRANSITIONING;
    /* ACI answers 409 ServiceUnavailable both for "quota 'ContainerGroups'
     * exceeded" and "not available in the location"; a 503 is ARM's
     * transient error, retried like any other. */
    if ((f->http_status == 409 && strcmp(code, "ServiceUnavailable") == 0) ||
        strstr(code, "Quota") || strcmp(code, "MissingSubscriptionRegistration") == 0)
        return DECIDE_FAIL_CAPACITY;
    if (strcmp(code, "ScopeLocked") == 0 || strcmp(code, "ShareBeingDeleted") == 0 ||
        (f->action == DECIDE_DELETE_SHARE && f->http_status == 409))
        return DECIDE_FAIL_BLOCKED;
    if (f->err == D8_EAGAIN || f->http_status == 429)
        return DECIDE_FAIL_THROTTLED;
    /* Azure refused the request itself (a DNS label taken, an invalid
     * image, a registry error): the same request fails the same way, so
     * it is an ERROR retried slowly, not a hot loop in CREATING. */
    if (f->http_status >= 400 && f->http_status < 500 && f->http_status != 408 &&
        f->action != DECIDE_GET_GROUP && f->action != DECIDE_GET_SHARE &&
        f->action != DECIDE_GET_OPERATION)
        return DECIDE_FAIL_REJECTED;
    return DECIDE_FAIL_OTHER;
}

/* Holds the mutations of this generation for the next slow-retry delay
 * (1, 2, 4 .. 30 minutes, jittered) and says when in status.retry. */
static void hold(const decide_failure_t *f, decide_plan_t *p)
{
    p->mem.slow_failures++;
    uint64_t delay = d8_backoff_ms((unsigned)p->mem.slow_failures, DECIDE_SLOW_BASE_MS,
                                   DECIDE_SLOW_CAP_MS, f->rand);
    p->mem.hold_until_ms = f->now_ms + delay;
    p->mem.hold_until_wall_ms = f->wall_ms + (int64_t)delay;
    p->mem.hold_gen = f->generation;
    p->status.set_retry = 1;
    p->status.retry_attempts = p->mem.slow_failures;
    p->status.retry_wall_ms = p->mem.hold_until_wall_ms;
    end(p, delay, "error");
}

void reconcile_decide_failure(const decide_failure_t *f, decide_plan_t *p, int *failed)
{
    memset(p, 0, sizeof(*p));
    p->mem = f->mem;
    p->action = DECIDE_NONE;
    p->status.phase = -1;
    *failed = 0;
    decide_failure_kind_t kind = reconcile_failure_kind(f);
    if (kind == DECIDE_FAIL_CANCELED) {
        end(p, 0, "canceled");
        return;
    }
    const char *code = f->code && *f->code ? f->code : d8_err_name(f->err);
    snprintf(p->msg2, sizeof(p->msg2), "%s", code);
    snprintf(p->msg, sizeof(p->msg), "%s: %s", f->what,
             f->message && *f->message ? f->message : d8_strerror(f->err));
    switch (kind) {
    case DECIDE_FAIL_TRANSITIONING:
        /* Not an error: the previous operation is still running. */
        synced(p, COND_FALSE, "Transitioning", p->msg);
        /* The repeat guard spaces the next attempts (5 s, 10 s, ...): Azure
         * asks for at least 10 s between operations. */
        poll_at(p, f->now_ms, 1, 0);
        return;
    case DECIDE_FAIL_CAPACITY:
    case DECIDE_FAIL_REJECTED:
        ready(p, PHASE_ERROR, COND_FALSE, "Failed", p->msg);
        synced(p, COND_FALSE, "ReconcileError", p->msg);
        error(p, p->msg2, p->msg);
        hold(f, p);
        return;
    case DECIDE_FAIL_BLOCKED:
        synced(p, COND_FALSE, "Blocked", p->msg);
        error(p, p->msg2, p->msg);
        hold(f, p);
        return;
    default:
        synced(p, COND_FALSE, kind == DECIDE_FAIL_THROTTLED ? "Throttled" : "ReconcileError",
               p->msg);
        error(p, p->msg2, p->msg);
        end(p, 0, "error");
        *failed = 1;
        return;
    }
}
