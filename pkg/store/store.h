/*
 * pkg/store: the desired state — every environment the API was given, its
 * generation and its status — plus the resourceVersion counter and the
 * ring of recent change events that watch clients resume from.
 *
 * Single-threaded (the loop's thread). Every mutation bumps the store's
 * resourceVersion, records one event in the ring and hands it to the
 * registered watchers synchronously.
 */
#ifndef D8_STORE_H
#define D8_STORE_H

#include "base/base.h"
#include "spec/spec.h"

#include <cjson/cJSON.h>

#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

/* Prisma EnvironmentStatus values, in this order. */
typedef enum env_phase {
    PHASE_CREATING = 0,
    PHASE_STARTING,
    PHASE_RUNNING,
    PHASE_STOPPING,
    PHASE_STOPPED,
    PHASE_ERROR,
    PHASE_DELETING,
    PHASE__COUNT
} env_phase_t;

typedef enum cond_status { COND_UNKNOWN = 0, COND_TRUE, COND_FALSE } cond_status_t;

typedef struct env_condition {
    cond_status_t status;
    char reason[32];
    char *message; /* owned, may be NULL */
    int64_t last_transition_ms;
} env_condition_t;

/*
 * status.usage and status.estimatedCostPerHour: a snapshot of pkg/usage's
 * totals, taken by the reconciler at each usage transition and at most
 * an hour apart otherwise (a live value would stream an event per pass).
 */
typedef struct env_usage {
    int set; /* 0: never observed, both fields absent */
    double running_seconds, cpu_core_seconds, memory_gb_seconds, storage_gb_hours;
    int priced; /* 0: the region has no prices: no cost fields */
    double estimated_cost, cost_per_hour;
    char currency[4];
    int64_t since_ms;
    int64_t taken_ms; /* when the snapshot was taken (not rendered) */
} env_usage_t;

/* Adds "usage" and "estimatedCostPerHour" to a status object (nothing
 * when the usage was never set). */
void store_usage_json(const env_usage_t *u, cJSON *status);

/* status.containers[0]: the workspace container as Azure last showed it. */
typedef struct env_container_status {
    int present; /* 0: nothing read yet (containers is []) */
    char name[64];
    char state[16]; /* Waiting, Running, Terminated */
    int restart_count;
    int has_exit_code; /* lastExitCode is known */
    int last_exit_code;
    int64_t last_restart_ms; /* when the previous run ended (it restarted), 0 = never */
} env_container_status_t;

/* Status of one environment; strings owned by the object, NULL = unset. */
typedef struct env_status {
    env_phase_t phase;
    int64_t observed_generation;
    env_condition_t ready;
    env_condition_t synced;
    char *aci_container_group_id;
    char *aci_public_ip;
    char *azure_file_share_name;
    char *fqdn;
    char *vscode_url;
    int64_t last_activity_ms;  /* 0 = never */
    int64_t last_reconcile_ms; /* 0 = never */
    int64_t observed_ms;       /* when Azure was last read for it, 0 = never */
    char *last_error_code;
    char *last_error_message;
    int retry_attempts;    /* failed attempts of a step being retried, 0 = none */
    int64_t next_retry_ms; /* when it is tried next, 0 = under way or none */
    env_usage_t usage;     /* status.usage, estimatedCostPerHour (pkg/usage) */
    env_container_status_t container;
    int64_t auto_stop_ms;         /* status.autoStopTime, 0 = none */
    int64_t auto_stop_pending_ms; /* AutoStopPending True since, 0 = not pending */
} env_status_t;

/*
 * One environment. Readable by callers; changed only through store_*.
 * A tombstone (DELETE of an id the store did not know) has has_spec 0.
 */
typedef struct env_obj {
    char id[SPEC_ID_MAX + 1];
    int64_t generation;
    int has_spec;
    env_spec_t spec;
    env_status_t status;
    int64_t created_ms;
    int64_t updated_ms;
    /*
     * 1 while the spec came from the state file (store_restore) and has
     * secretEnv entries whose values are unknown: spec.secret_env[i].value
     * is then NULL, so this spec must never be used to create or recreate
     * a container group. Cleared by a PUT or full sync that supplies the
     * values (see store_put). Always 0 for a spec without secrets.
     */
    int restored;
    /*
     * 1 when a full sync left this object out: phase DELETING with Ready
     * reason RemovedFromDesiredSet, but nothing is deleted by the
     * reconciler: its resources are orphans, deleted by the reaper after
     * their grace period (or kept when a PUT or sync brings it back). The
     * object goes (DELETED) once Azure holds nothing of it.
     */
    int removed;
    /* The generation a POST .../restart asked to apply now, whatever its
     * updatePolicy (0 = none). */
    int64_t apply_now_gen;
    /* While restored: hex HMAC-SHA256(digest key, value) of each secret
     * value, in spec.secret_env order (spec.nsecret entries); NULL
     * otherwise. Owned by the store. */
    char (*secret_digests)[65];
} env_obj_t;

typedef enum store_event_type { EV_ADDED = 0, EV_MODIFIED, EV_DELETED } store_event_type_t;

/* An event as kept in the ring and given to watchers (all borrowed). */
typedef struct store_event {
    uint64_t rv;
    store_event_type_t type;
    const char *id;
    const char *json; /* the object as the API shows it */
    size_t json_len;
    int status_only; /* 1: only the status moved (store_update_status);
                        0 in replays from the ring */
    int bulk;        /* 1: part of a full sync (not one user's request);
                        0 in replays from the ring */
} store_event_t;

typedef void (*store_watch_fn)(void *ud, const store_event_t *ev);
typedef struct store_watcher store_watcher_t;

/* ring_size: events kept for watch resume (>= 1). */
store_t *store_new(size_t ring_size);
void store_free(store_t *st);

/*
 * Starts this run's resourceVersions above `base` (no-op when the store is
 * already past it). The agent passes wall-clock milliseconds x 1000 when no
 * state file continues an earlier run: every resourceVersion of an earlier
 * run is then below this run's first one, so a watch resumed from another
 * run gets 410 Gone and lists again instead of silently missing events.
 */
void store_begin_epoch(store_t *st, uint64_t base);

/* Current resourceVersion (0 before any change). */
uint64_t store_rv(const store_t *st);
size_t store_count(const store_t *st);
/* Counts of objects by phase (array of PHASE__COUNT). */
void store_phase_counts(const store_t *st, size_t out[PHASE__COUNT]);
/* 1 once a full sync was applied (the desired set is authoritative). */
int store_synced(const store_t *st);

/* The object with that id, or NULL. Borrowed until the next mutation. */
const env_obj_t *store_get(const store_t *st, const char *id);
/* 1 when `id` is in the desired set: known and not removed by a full sync
 * (a removed object's resources are orphans). */
int store_desired(const store_t *st, const char *id);

typedef enum store_put_result { PUT_CREATED, PUT_UPDATED, PUT_UNCHANGED } store_put_result_t;

/*
 * Creates or replaces the spec of `id`. if_match < 0 means no
 * precondition; otherwise it must equal the current generation (0 for an
 * object that must not exist yet). `spec` is moved into the store on
 * success (the caller's copy is zeroed) and left alone on failure.
 * must_create: fail with D8_EEXIST when the id exists (POST).
 * Errors: D8_ECONFLICT (If-Match), D8_EEXIST, D8_EGONE (being deleted).
 *
 * On a restored object (see env_obj_t.restored): when `spec` equals the
 * restored spec apart from secret values and the digest of each of its
 * secret values matches the saved one, the values are adopted, `restored`
 * is cleared and the generation stays (PUT_UNCHANGED; a MODIFIED event
 * with the same generation tells the reconciler the object became
 * actionable). Anything else is an ordinary update (PUT_UPDATED).
 */
int store_put(store_t *st, const char *id, env_spec_t *spec, int64_t if_match, int must_create,
              store_put_result_t *result, const env_obj_t **out);

/* Marks `id` for deletion (phase DELETING), creating a tombstone when
 * unknown; an object removed by a full sync becomes an explicit deletion
 * (deleted now, not after the reaper's grace). Never fails. */
const env_obj_t *store_delete(store_t *st, const char *id);

/* Removes `id` from the store (DELETED event). D8_ENOENT when absent. */
int store_remove(store_t *st, const char *id);

/* Asks for the current generation to be applied now (POST .../restart):
 * a change held back by updatePolicy OnNextStart recreates the group at
 * once. A MODIFIED event, no new generation. D8_ENOENT, D8_EGONE. */
int store_restart(store_t *st, const char *id, const env_obj_t **out);

/* Sets spec.powerState (bumping generation when it changes). D8_ENOENT,
 * D8_EGONE when being deleted. */
int store_set_power(store_t *st, const char *id, spec_power_t power, const env_obj_t **out);

/* Records activity now. No event (activity is too frequent to stream). */
int store_touch(store_t *st, const char *id, int64_t now_ms);
/* The same, with a MODIFIED event (a /start, which must reach the
 * reconciler even when the generation does not change). */
int store_touch_notify(store_t *st, const char *id, int64_t now_ms);

/* One item of a full sync: the id and a decoded spec (moved on success). */
typedef struct store_sync_item {
    char id[SPEC_ID_MAX + 1];
    env_spec_t spec;
} store_sync_item_t;

typedef struct store_sync_counts {
    size_t created, updated, unchanged, removed;
} store_sync_counts_t;

/*
 * Replaces the whole desired set by items (ids unique — checked by the
 * caller). What the set leaves out is marked removed (see env_obj_t), not
 * dropped; a removed object the set names again is desired again. Explicit
 * deletions are left to finish. Marks the store synced. Specs are moved in.
 */
void store_sync(store_t *st, store_sync_item_t *items, size_t n, store_sync_counts_t *counts);

/*
 * The same full sync applied in steps, so that a large one never holds the
 * loop: begin takes the set (items borrowed until end; ids unique),
 * snapshots the ids of the objects that exist now and returns the run;
 * each step applies at most `budget` units of work (an object marked
 * removed or an item put) and returns 1 once everything is applied; end
 * (only after the step that returned 1) marks the store synced, fills
 * counts and frees the run. Objects created between begin and end (by a
 * PUT interleaved with the steps) are not removed: the sync is ordered
 * before them. Each item's spec is moved in (or released) by its step.
 */
typedef struct store_sync_run store_sync_run_t;
store_sync_run_t *store_sync_begin(store_t *st, store_sync_item_t *items, size_t n);
int store_sync_step(store_t *st, store_sync_run_t *run, size_t budget);
void store_sync_end(store_t *st, store_sync_run_t *run, store_sync_counts_t *counts);

/*
 * Desired-set listener: fn is called synchronously after every change of
 * what a snapshot of the desired set holds (specs, generations, creations,
 * deletions, removals, secret values adopted, the synced flag) and never
 * for status-only changes, which are most of the event traffic. One
 * listener (the state file); fn NULL unregisters. ud is borrowed.
 */
void store_on_desired_change(store_t *st, void (*fn)(void *ud), void *ud);

/*
 * Key for the secret digests of restored objects (DEV8_SPEC_HASH_KEY;
 * copied, wiped on store_free). NULL or keylen 0 is the empty HMAC key.
 */
void store_set_digest_key(store_t *st, const unsigned char *key, size_t keylen);

/* One object read back from the state file. */
typedef struct store_restore_item {
    char id[SPEC_ID_MAX + 1];
    int64_t generation;         /* as saved: >= 1 with a spec, 0 for a tombstone */
    int has_spec;               /* 0: a tombstone, which must be deleting */
    int deleting;               /* phase DELETING */
    env_spec_t spec;            /* moved in on success; secret values are wiped
                                   (unknown) whatever they hold */
    char (*secret_digests)[65]; /* moved in on success; spec.nsecret entries
                                  (NULL when there are none) */
    int64_t created_ms;         /* 0 = now */
    int64_t updated_ms;         /* 0 = now */
} store_restore_item_t;

/*
 * Puts one saved object back as it was: same generation, no event, no
 * resourceVersion bump, no listener call (it runs before the loop does).
 * The object is `restored` when its spec has secrets. Errors: D8_EEXIST
 * (id present), D8_EINVAL (inconsistent item); the item is then left with
 * the caller.
 */
int store_restore(store_t *st, store_restore_item_t *item);

/*
 * Ends a restore: raises resourceVersion past the saved one (events of
 * the previous run are gone: a watch resuming from before gets 410 and
 * relists, since statuses restart from scratch) and, when synced, marks
 * the desired set authoritative as a full sync would.
 */
void store_restore_finish(store_t *st, uint64_t saved_rv, int synced);

/* Status changes come from the reconciler: fn edits the status in place,
 * then the store emits MODIFIED if anything visible changed. */
int store_update_status(store_t *st, const char *id,
                        void (*fn)(void *ud, const env_obj_t *obj, env_status_t *status), void *ud);

/*
 * The one way an environment's phase changes: sets s->phase to `to` and,
 * when it moves, logs {"msg":"phase","env_id","from","to","reason"} at
 * info. `reason` says why in one word (a Ready reason such as "Creating").
 */
void store_set_phase(const char *id, env_status_t *s, env_phase_t to, const char *reason);

/* Sets a condition's fields, stamping last_transition_ms when status
 * or reason changes. message is copied. */
void store_set_condition(env_condition_t *c, cond_status_t status, const char *reason,
                         const char *message, int64_t now_ms);

/* What a list keeps (all borrowed): NULL strings and phase < 0 match any. */
typedef struct store_filter {
    const char *user_id;
    const char *cloud_region;
    int phase;
} store_filter_t;

/*
 * Lists objects in id order, starting after `after` (NULL or "" for the
 * start), matching `filter` (NULL: every object). Calls fn for at most
 * `limit` objects; returns 1 when more matching objects remain after the
 * last one visited.
 */
int store_list(store_t *st, const char *after, const store_filter_t *filter, size_t limit,
               void (*fn)(void *ud, const env_obj_t *obj), void *ud);

/* Adds the health fields of s to the status object st (store_health.c):
 * "containers":[{name,state,restartCount,lastExitCode,lastRestartTime}],
 * "autoStopTime" while one is set, and an AutoStopPending condition after
 * Ready and Synced while it is pending. */
struct cJSON;
void store_containers_json(const env_status_t *s, struct cJSON *st);

/* The object's API JSON (cached in the store; borrowed until the next
 * mutation of that object). */
const char *store_obj_json(store_t *st, const env_obj_t *obj, size_t *len);
/* Appends the object's API JSON to out without keeping it (lists, watch
 * snapshots: many objects read once). */
void store_obj_json_append(store_t *st, const env_obj_t *obj, d8_buf_t *out);

/*
 * Watch: registers fn for every future event. Returns the watcher (free
 * it with store_unwatch, also from inside fn).
 */
store_watcher_t *store_watch(store_t *st, store_watch_fn fn, void *ud);
void store_unwatch(store_t *st, store_watcher_t *w);
/*
 * Replays the ring's events with rv > since through fn. Returns 0, or
 * D8_EGONE when events after `since` have already left the ring. With fn
 * NULL it only checks.
 */
int store_replay(const store_t *st, uint64_t since, store_watch_fn fn, void *ud);

/* The Prisma name of a phase ("RUNNING"); "UNKNOWN" when out of range. */
const char *store_phase_name(env_phase_t p);
/* Phase by name, or -1. */
int store_phase_parse(const char *name);
const char *store_event_name(store_event_type_t t);

#endif
