/*
 * The reconcile decision table (pkg/reconcile/decide.h): every row gives
 * the desired object, what Azure looks like and what the reconciler
 * remembers, and checks the one step reconcile_decide() chooses — the ARM
 * call, the phase and conditions it publishes, and when it looks again.
 * The rows follow DESIGN.md section 5; the loop that carries the plans out
 * is tested end to end against azsim (test/integration/test_reconcile*.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "reconcile/decide.h"

#include <stdio.h>
#include <string.h>

#define HASH "0123456789abcdef"
#define NOW 1000000ULL       /* loop clock */
#define WALL 1800000000000LL /* wall clock */
#define MINUTE_MS 60000LL
#define ANY (-2)  /* expected value not checked */
#define KEEP (-1) /* phase kept */

/* Observed group shapes. */
enum {
    G_ABSENT = 0,
    G_UNKNOWN,
    G_FOREIGN,
    G_RUNNING,
    G_STOPPED,
    G_TERMINATED,
    G_PENDING,
    G_CREATING_RUNNING,
    G_FAILED,
    G_DELETING,
    G_NOT_READ,
    G_EXITED_OK,
    G_EXITED_FAILED,
    G_CANCELED,
    G_FAILED_RUNNING,
    G_FAILED_STOPPED
};
/* Observed share shapes. */
enum { S_OURS = 0, S_ABSENT, S_UNKNOWN, S_LISTED, S_FOREIGN, S_KEPT };
/* The workspace container as the last GET showed it. */
enum { C_NONE = 0, C_RUNNING, C_WAITING, C_PULL_FAILED };

typedef struct row {
    const char *name;
    /* desired */
    int phase;               /* the object's current phase */
    int stopped;             /* powerState Stopped */
    int storage_gb;          /* 0: 10 */
    int retain;              /* storagePolicy Retain */
    int restored;            /* restored without secret values */
    int tombstone;           /* a DELETE of an id never PUT */
    int removed;             /* left out by a full sync: the reaper's */
    int on_next_start;       /* updatePolicy OnNextStart */
    int op_unread;           /* the create's operation not read yet */
    const char *op_code;     /* its error code once read */
    int restart_asked;       /* POST .../restart for this generation */
    int auto_stop;           /* autoStopMinutes */
    int64_t activity_ago_ms; /* last activity this long ago (0: never) */
    int bad_region;          /* cloudRegion not configured */
    /* observed */
    int group;
    int drift; /* the group carries another spec hash */
    int share;
    int quota;       /* 0: 10 */
    int region;      /* 0: region 0; -1: never seen */
    int fetched;     /* 1 group, 2 share, 3 both read in this pass */
    int refresh_due; /* the status refresh is due */
    int not_listed;  /* some region was never listed */
    int stale;       /* the region's last lists failed */
    /* memory */
    int failed_seen;
    int prov_failures;      /* consecutive failed provisionings so far */
    int64_t retry_in_ms;    /* the Failed backoff ends this far ahead (<0: passed) */
    int64_t running_for_ms; /* seen RUNNING that long ago (0: not running) */
    int auto_stopped;       /* auto-stopped at this generation */
    uint64_t create_wait;
    uint64_t delete_wait;
    int min_gb, max_gb;          /* the storage account's share size limits */
    decide_action_t last_action; /* the last mutation issued */
    int64_t last_action_ago_ms;  /* ... this long ago */
    int repeats;
    uint64_t poll_ms;       /* current polling delay */
    int64_t poll_due_in_ms; /* settling: the next read is due this far ahead */
    int64_t absent_ago_ms;  /* a GET found no group this long ago (0: never) */
    int urgent;             /* an interactive change */
    int64_t hold_in_ms;     /* a slow-retry hold ends this far ahead */
    int hold_other_gen;     /* ... for an older generation */
    /* the workspace container (health rows) */
    int ctr;                   /* C_* */
    int probe;                 /* a readiness probe: 5 s period, no delay, 3 failures */
    int64_t ctr_age_ms;        /* its current state began this long ago */
    int64_t unready_ago_ms;    /* its last "Readiness probe failed" (0: none) */
    int restarts;              /* restartCount */
    int64_t last_crash_ago_ms; /* the previous run ended this long ago */
    int warn;                  /* autoStopWarningMinutes */
    int pending;               /* expected: 1 autoStopTime + AutoStopPending, 2 autoStopTime
                                  only, 3 both cleared, 0 not checked */
    /* expected */
    decide_action_t action;
    int exp_phase;      /* KEEP or a phase */
    const char *ready;  /* Ready reason, NULL: not checked */
    const char *synced; /* Synced reason, NULL: unchanged, "" not checked */
    const char *error;  /* lastError code set, "-" cleared, NULL unchanged */
    const char *result; /* NULL for mutations and reads */
    int64_t requeue_ms; /* ANY: not checked */
} row_t;

/* The table is laid out by hand, a row per case. */
/* clang-format off */
static const row_t rows[] = {
    /* Observation first. */
    {"unknown group is read", .group = G_UNKNOWN, .action = DECIDE_GET_GROUP,
     .exp_phase = KEEP, .requeue_ms = ANY},
    {"running group is read once its refresh is due", .group = G_RUNNING, .refresh_due = 1,
     .action = DECIDE_GET_GROUP, .exp_phase = KEEP, .requeue_ms = ANY},
    {"a listed group's power state is read before deciding", .group = G_NOT_READ,
     .action = DECIDE_GET_GROUP, .exp_phase = KEEP, .requeue_ms = ANY},
    {"unknown share is read", .group = G_ABSENT, .share = S_UNKNOWN, .fetched = 1,
     .action = DECIDE_GET_SHARE, .exp_phase = KEEP, .requeue_ms = ANY},
    {"a listed share is verified by GET before use", .group = G_ABSENT, .share = S_LISTED,
     .fetched = 1, .action = DECIDE_GET_SHARE, .exp_phase = KEEP, .requeue_ms = ANY},
    {"unconfigured region: nothing is safe", .bad_region = 1, .group = G_RUNNING,
     .action = DECIDE_NONE, .exp_phase = KEEP, .result = "error", .requeue_ms = 0},

    /* Create order: the share before the group that mounts it. */
    {"new environment: share first", .group = G_ABSENT, .share = S_ABSENT, .fetched = 3,
     .action = DECIDE_CREATE_SHARE, .exp_phase = PHASE_CREATING, .ready = "Creating",
     .synced = "ReconcileSuccess", .requeue_ms = ANY},
    {"group absent per an older read: read again before creating", .group = G_ABSENT,
     .action = DECIDE_GET_GROUP, .exp_phase = KEEP, .requeue_ms = ANY},
    {"absence read by GET a moment ago (last pass): created without another read",
     .group = G_ABSENT, .absent_ago_ms = 800, .action = DECIDE_CREATE_GROUP,
     .exp_phase = PHASE_CREATING, .requeue_ms = ANY},
    {"throttled create reads nothing", .group = G_ABSENT, .create_wait = 5000,
     .action = DECIDE_NONE, .exp_phase = PHASE_CREATING, .synced = "Throttled",
     .result = "throttled", .requeue_ms = 5000},
    {"share there: group next", .group = G_ABSENT, .fetched = 1, .action = DECIDE_CREATE_GROUP,
     .exp_phase = PHASE_CREATING, .ready = "Creating", .synced = "ReconcileSuccess",
     .requeue_ms = ANY},
    {"group create throttled by the ACI bucket", .group = G_ABSENT, .fetched = 1, .create_wait = 5000,
     .action = DECIDE_NONE, .exp_phase = PHASE_CREATING, .ready = "Creating",
     .synced = "Throttled", .result = "throttled", .requeue_ms = 5000},
    {"provisioning: wait and poll", .group = G_PENDING, .action = DECIDE_NONE,
     .exp_phase = PHASE_CREATING, .ready = "Creating", .result = "waiting",
     .requeue_ms = DECIDE_POLL_MS},
    {"provisioned, container not running yet", .group = G_CREATING_RUNNING,
     .action = DECIDE_NONE, .exp_phase = PHASE_CREATING, .ready = "Creating",
     .result = "waiting", .requeue_ms = DECIDE_POLL_MS},
    {"running: available, refresh later", .group = G_RUNNING, .action = DECIDE_NONE,
     .exp_phase = PHASE_RUNNING, .ready = "Available", .synced = "ReconcileSuccess",
     .error = "-", .result = "success", .requeue_ms = ANY},
    {"a workspace that ran before restarts as STARTING", .phase = PHASE_STOPPED,
     .group = G_ABSENT, .fetched = 1, .action = DECIDE_CREATE_GROUP, .exp_phase = PHASE_STARTING,
     .ready = "Starting", .requeue_ms = ANY},

    /* Power. */
    {"desired stopped, running: stop", .stopped = 1, .group = G_RUNNING,
     .action = DECIDE_STOP_GROUP, .exp_phase = PHASE_STOPPING, .ready = "Stopping",
     .requeue_ms = ANY},
    {"desired stopped, stopped: settled", .stopped = 1, .group = G_STOPPED,
     .action = DECIDE_NONE, .exp_phase = PHASE_STOPPED, .ready = "Stopped", .error = "-",
     .result = "success", .requeue_ms = ANY},
    {"desired stopped, no group: stopped without one", .stopped = 1, .group = G_ABSENT,
     .action = DECIDE_NONE, .exp_phase = PHASE_STOPPED, .ready = "Stopped", .error = "-",
     .result = "success", .requeue_ms = 0},
    {"desired running, stopped: start", .phase = PHASE_STOPPED, .group = G_STOPPED,
     .action = DECIDE_START_GROUP, .exp_phase = PHASE_STARTING, .ready = "Starting",
     .requeue_ms = ANY},
    {"desired running, terminated: start", .phase = PHASE_RUNNING, .group = G_TERMINATED,
     .action = DECIDE_START_GROUP, .exp_phase = PHASE_STARTING, .ready = "Starting",
     .requeue_ms = ANY},

    /* Drift and storage. */
    {"spec drift: recreate (delete first)", .phase = PHASE_RUNNING, .group = G_RUNNING,
     .drift = 1, .action = DECIDE_DELETE_GROUP, .exp_phase = PHASE_STARTING,
     .ready = "Starting", .requeue_ms = ANY},
    {"spec drift throttled by the ACI delete bucket", .phase = PHASE_RUNNING,
     .group = G_RUNNING, .drift = 1, .delete_wait = 7000, .action = DECIDE_NONE,
     .exp_phase = PHASE_STARTING, .ready = "Starting", .synced = "Throttled", .result = "throttled",
     .requeue_ms = 7000},
    {"old group still deleting: wait", .phase = PHASE_RUNNING, .group = G_DELETING,
     .action = DECIDE_NONE, .exp_phase = PHASE_STARTING, .ready = "Starting",
     .result = "waiting", .requeue_ms = DECIDE_POLL_MS},
    {"storage grew: grow the quota", .storage_gb = 20, .group = G_RUNNING,
     .action = DECIDE_GROW_SHARE, .exp_phase = KEEP, .synced = "ReconcileSuccess",
     .requeue_ms = ANY},
    {"storage shrank: refused, running on", .storage_gb = 5, .group = G_RUNNING,
     .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available",
     .synced = "ReconcileError", .result = "success", .requeue_ms = ANY},

    /* The storage account's limits (premium at least 100 GiB, standard at
     * most 5,120 GiB without large file shares). */
    {"premium account, 10 GiB: refused in our words", .group = G_ABSENT, .share = S_ABSENT,
     .fetched = 3, .min_gb = 100, .max_gb = 102400, .action = DECIDE_NONE,
     .exp_phase = PHASE_ERROR, .error = "StorageGBOutOfRange", .result = "error",
     .requeue_ms = 0},
    {"standard account, 6000 GiB: refused", .storage_gb = 6000, .quota = 10,
     .group = G_RUNNING, .max_gb = 5120, .action = DECIDE_NONE, .exp_phase = PHASE_ERROR,
     .error = "StorageGBOutOfRange", .result = "error", .requeue_ms = 0},
    {"within the limits: as usual", .storage_gb = 200, .quota = 200, .group = G_RUNNING,
     .min_gb = 100, .max_gb = 102400, .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING,
     .result = "success", .requeue_ms = ANY},

    /* Failed provisioning: read the create's operation for Azure's code,
     * report, back off, then retry. */
    {"failed: the create's operation is read first", .group = G_FAILED, .op_unread = 1,
     .action = DECIDE_GET_OPERATION, .exp_phase = KEEP, .requeue_ms = ANY},
    {"failed: Azure's code from the operation", .group = G_FAILED, .op_code = "InaccessibleImage",
     .action = DECIDE_NONE, .exp_phase = PHASE_ERROR, .error = "InaccessibleImage",
     .result = "error", .requeue_ms = ANY},
    {"failed: report first", .group = G_FAILED, .action = DECIDE_NONE,
     .exp_phase = PHASE_ERROR, .ready = "Failed", .synced = "ReconcileError",
     .error = "ProvisioningFailed", .result = "error", .requeue_ms = ANY},
    {"failed: backoff holds", .group = G_FAILED, .failed_seen = 1, .retry_in_ms = 30000,
     .action = DECIDE_NONE, .exp_phase = KEEP, .result = "waiting", .requeue_ms = 30000},
    {"failed: backoff over, delete to retry", .group = G_FAILED, .failed_seen = 1,
     .retry_in_ms = -1, .action = DECIDE_DELETE_GROUP, .exp_phase = KEEP, .requeue_ms = ANY},

    /* Foreign resources are never touched. */
    {"foreign group of our name", .group = G_FOREIGN, .action = DECIDE_NONE,
     .exp_phase = PHASE_ERROR, .ready = "Failed", .synced = "ReconcileError",
     .error = "NameConflict", .result = "error", .requeue_ms = 300000},
    {"foreign share of our name", .group = G_ABSENT, .share = S_FOREIGN, .fetched = 3,
     .action = DECIDE_NONE, .exp_phase = PHASE_ERROR, .ready = "Failed", .error = "NameConflict",
     .result = "error", .requeue_ms = 300000},

    /* Restored from the state file without secret values: observe only. */
    {"restored, running: reported, nothing done", .restored = 1, .group = G_RUNNING,
     .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available",
     .synced = "ReconcileError", .result = "waiting", .requeue_ms = 0},
    {"restored, no group: nothing created", .restored = 1, .group = G_ABSENT,
     .action = DECIDE_NONE, .exp_phase = KEEP, .synced = "ReconcileError",
     .result = "waiting", .requeue_ms = 0},

    /* Auto-stop. */
    {"idle past autoStopMinutes: stop", .auto_stop = 5, .activity_ago_ms = 6 * MINUTE_MS,
     .running_for_ms = 10 * MINUTE_MS, .group = G_RUNNING, .action = DECIDE_STOP_GROUP,
     .exp_phase = PHASE_STOPPING, .ready = "Stopping", .synced = "AutoStopped", .requeue_ms = ANY},
    {"active within autoStopMinutes: looked at each minute", .auto_stop = 5,
     .activity_ago_ms = 1 * MINUTE_MS, .running_for_ms = 10 * MINUTE_MS, .group = G_RUNNING,
     .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available", .result = "success",
     .requeue_ms = DECIDE_AUTO_STOP_CHECK_MS},
    {"idle, the stop 4 minutes away, warning 5: AutoStopPending, looked at within a minute",
     .auto_stop = 10, .warn = 5, .activity_ago_ms = 6 * MINUTE_MS, .running_for_ms = 30 * MINUTE_MS,
     .group = G_RUNNING, .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available",
     .result = "success", .pending = 1, .requeue_ms = DECIDE_AUTO_STOP_CHECK_MS},
    {"idle, the stop 9 minutes away: autoStopTime only", .auto_stop = 10, .warn = 5,
     .activity_ago_ms = 1 * MINUTE_MS, .running_for_ms = 30 * MINUTE_MS, .group = G_RUNNING,
     .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .result = "success", .pending = 2,
     .requeue_ms = ANY},
    {"the warning 20 s ahead: looked at then", .auto_stop = 10, .warn = 5,
     .activity_ago_ms = 5 * MINUTE_MS - 20000, .running_for_ms = 30 * MINUTE_MS, .group = G_RUNNING,
     .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .result = "success", .pending = 2,
     .requeue_ms = 20000},
    {"warning as long as autoStopMinutes: it starts a minute in", .auto_stop = 5, .warn = 5,
     .activity_ago_ms = 30000, .running_for_ms = 30 * MINUTE_MS, .group = G_RUNNING,
     .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .result = "success", .pending = 2,
     .requeue_ms = 30000},
    {"first seen running: the idle time counts from now", .auto_stop = 5, .warn = 2,
     .group = G_RUNNING, .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .result = "success",
     .pending = 2, .requeue_ms = ANY},
    {"auto-stop off: autoStopTime cleared", .group = G_RUNNING, .running_for_ms = MINUTE_MS,
     .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .result = "success", .pending = 3,
     .requeue_ms = ANY},
    {"stopping: autoStopTime cleared", .auto_stop = 5, .warn = 2, .stopped = 1,
     .group = G_RUNNING, .running_for_ms = MINUTE_MS, .action = DECIDE_STOP_GROUP,
     .exp_phase = PHASE_STOPPING, .pending = 3, .requeue_ms = ANY},
    {"auto-stopped stays stopped", .auto_stop = 5, .auto_stopped = 1, .group = G_STOPPED,
     .action = DECIDE_NONE, .exp_phase = PHASE_STOPPED, .ready = "Stopped", .synced = "AutoStopped",
     .result = "success", .requeue_ms = ANY},

    /* Deletion, both storage policies. */
    {"delete: group first", .phase = PHASE_DELETING, .group = G_RUNNING,
     .action = DECIDE_DELETE_GROUP, .exp_phase = PHASE_DELETING, .ready = "Deleting",
     .requeue_ms = ANY},
    {"delete: group still deleting", .phase = PHASE_DELETING, .group = G_DELETING,
     .action = DECIDE_NONE, .exp_phase = PHASE_DELETING, .ready = "Deleting", .result = "waiting",
     .requeue_ms = DECIDE_POLL_MS},
    {"delete: share read before it goes", .phase = PHASE_DELETING, .group = G_ABSENT,
     .action = DECIDE_GET_SHARE, .exp_phase = KEEP, .requeue_ms = ANY},
    {"delete: verified share goes", .phase = PHASE_DELETING, .group = G_ABSENT, .fetched = 2,
     .action = DECIDE_DELETE_SHARE, .exp_phase = PHASE_DELETING, .ready = "Deleting",
     .requeue_ms = ANY},
    {"delete: share not ours stays", .phase = PHASE_DELETING, .group = G_ABSENT,
     .share = S_FOREIGN, .fetched = 2, .action = DECIDE_REMOVE_OBJECT, .exp_phase = KEEP,
     .result = "deleted", .requeue_ms = ANY},
    {"delete with Retain: share marked kept", .phase = PHASE_DELETING, .retain = 1,
     .group = G_ABSENT, .fetched = 2, .action = DECIDE_RETAIN_SHARE,
     .exp_phase = PHASE_DELETING, .ready = "Deleting", .requeue_ms = ANY},
    {"delete with Retain: kept share stays, object goes", .phase = PHASE_DELETING,
     .retain = 1, .group = G_ABSENT, .share = S_KEPT, .fetched = 2,
     .action = DECIDE_REMOVE_OBJECT, .exp_phase = KEEP, .result = "deleted", .requeue_ms = ANY},
    {"delete: nothing left", .phase = PHASE_DELETING, .group = G_ABSENT, .share = S_ABSENT,
     .action = DECIDE_REMOVE_OBJECT, .exp_phase = KEEP, .result = "deleted", .requeue_ms = ANY},
    {"tombstone before every region was listed: wait", .phase = PHASE_DELETING,
     .tombstone = 1, .region = -1, .not_listed = 1, .group = G_UNKNOWN, .share = S_UNKNOWN,
     .action = DECIDE_NONE, .exp_phase = KEEP, .result = "waiting",
     .requeue_ms = DECIDE_POLL_MS},

    /* Terminal instance states: the workspace process exited. */
    {"exited 0, desired running: started again, and said so", .phase = PHASE_RUNNING,
     .group = G_EXITED_OK, .action = DECIDE_START_GROUP, .exp_phase = PHASE_STARTING,
     .ready = "Restarting", .requeue_ms = ANY},
    {"exited 0, desired stopped: stopped without a stop", .stopped = 1, .group = G_EXITED_OK,
     .action = DECIDE_NONE, .exp_phase = PHASE_STOPPED, .ready = "Stopped", .error = "-",
     .result = "success", .requeue_ms = ANY},
    {"exited non-zero, desired stopped: stopped", .stopped = 1, .group = G_EXITED_FAILED,
     .action = DECIDE_NONE, .exp_phase = PHASE_STOPPED, .ready = "Stopped",
     .result = "success", .requeue_ms = ANY},
    {"the same start right after a start: wait, never a loop", .phase = PHASE_STARTING,
     .group = G_STOPPED, .last_action = DECIDE_START_GROUP, .last_action_ago_ms = 1000,
     .action = DECIDE_NONE, .exp_phase = PHASE_STARTING, .ready = "Starting",
     .result = "waiting", .requeue_ms = 4000},
    {"the same start once its gap passed: again", .phase = PHASE_STARTING,
     .group = G_STOPPED, .last_action = DECIDE_START_GROUP, .last_action_ago_ms = 6000,
     .action = DECIDE_START_GROUP, .exp_phase = PHASE_STARTING, .requeue_ms = ANY},
    {"a third start waits twice as long", .phase = PHASE_STARTING, .group = G_STOPPED,
     .last_action = DECIDE_START_GROUP, .last_action_ago_ms = 6000, .repeats = 1,
     .action = DECIDE_NONE, .exp_phase = PHASE_STARTING, .result = "waiting",
     .requeue_ms = 4000},

    /* provisioningState Failed or Canceled: only a failed create is one. */
    {"Failed after our stop, still running: stop again", .stopped = 1,
     .group = G_FAILED_RUNNING, .last_action = DECIDE_STOP_GROUP,
     .last_action_ago_ms = 600000, .action = DECIDE_STOP_GROUP, .exp_phase = PHASE_STOPPING,
     .ready = "Stopping", .requeue_ms = ANY},
    {"Failed after our start, stopped: start again", .phase = PHASE_STARTING,
     .group = G_FAILED_STOPPED, .last_action = DECIDE_START_GROUP,
     .last_action_ago_ms = 600000, .action = DECIDE_START_GROUP,
     .exp_phase = PHASE_STARTING, .requeue_ms = ANY},
    {"Failed after our stop, stopped: settled", .stopped = 1, .group = G_FAILED_STOPPED,
     .last_action = DECIDE_STOP_GROUP, .last_action_ago_ms = 1000, .action = DECIDE_NONE,
     .exp_phase = PHASE_STOPPED, .result = "success", .requeue_ms = ANY},
    {"Canceled create: a failed create", .group = G_CANCELED,
     .last_action = DECIDE_CREATE_GROUP, .action = DECIDE_NONE, .exp_phase = PHASE_ERROR,
     .error = "ProvisioningFailed", .result = "error", .requeue_ms = ANY},

    /* Polling backs off while Azure works. */
    {"provisioning, polled before: twice as long", .group = G_PENDING, .poll_ms = 4000,
     .action = DECIDE_NONE, .exp_phase = PHASE_CREATING, .result = "waiting",
     .requeue_ms = 8000},
    {"provisioning, a resync pass before the poll is due: no read, same wait", .group = G_PENDING,
     .poll_ms = 8000, .poll_due_in_ms = 5000, .action = DECIDE_NONE, .exp_phase = PHASE_CREATING,
     .result = "waiting", .requeue_ms = 5000},
    {"provisioning, the poll is due: the group is read", .group = G_PENDING, .poll_ms = 8000,
     .poll_due_in_ms = -1, .action = DECIDE_GET_GROUP, .exp_phase = KEEP, .requeue_ms = ANY},
    {"provisioning an interactive change: polled at least every 4 s", .group = G_PENDING,
     .poll_ms = 4000, .urgent = 1, .action = DECIDE_NONE, .exp_phase = PHASE_CREATING,
     .result = "waiting", .requeue_ms = DECIDE_URGENT_POLL_CAP_MS},
    {"provisioning for long: capped", .group = G_PENDING, .poll_ms = 30000,
     .action = DECIDE_NONE, .exp_phase = PHASE_CREATING, .result = "waiting",
     .requeue_ms = DECIDE_POLL_CAP_MS},

    /* Slow retries hold mutations of their generation, and only those. */
    {"capacity hold: no create until its time, status kept", .phase = PHASE_ERROR,
     .group = G_ABSENT, .fetched = 1, .hold_in_ms = 90000, .action = DECIDE_NONE, .exp_phase = KEEP,
     .result = "waiting", .requeue_ms = 90000},
    {"capacity hold of an older generation: the new spec is tried", .phase = PHASE_ERROR,
     .group = G_ABSENT, .fetched = 1, .hold_in_ms = 90000, .hold_other_gen = 1,
     .action = DECIDE_CREATE_GROUP, .exp_phase = PHASE_CREATING, .requeue_ms = ANY},
    {"capacity hold over: the create goes, still ERROR while retrying", .phase = PHASE_ERROR,
     .group = G_ABSENT, .fetched = 1, .hold_in_ms = -1, .action = DECIDE_CREATE_GROUP,
     .exp_phase = PHASE_ERROR, .ready = "Creating", .requeue_ms = ANY},
    {"failed provisioning retried: the new group provisions, still ERROR", .phase = PHASE_ERROR,
     .group = G_PENDING, .failed_seen = 0, .prov_failures = 2, .action = DECIDE_NONE,
     .exp_phase = PHASE_ERROR, .ready = "Creating", .result = "waiting",
     .requeue_ms = DECIDE_POLL_MS},
    {"a hold does not stop observation", .group = G_RUNNING, .refresh_due = 1,
     .hold_in_ms = 90000, .action = DECIDE_GET_GROUP, .exp_phase = KEEP, .requeue_ms = ANY},
    {"blocked share deletion: held", .phase = PHASE_DELETING, .group = G_ABSENT,
     .fetched = 2, .hold_in_ms = 120000, .action = DECIDE_NONE, .exp_phase = KEEP,
     .result = "waiting", .requeue_ms = 120000},

    /* updatePolicy OnNextStart: a recreate never kills a live session. */
    {"OnNextStart, running, new spec: keeps running, UpdatePending", .phase = PHASE_RUNNING,
     .group = G_RUNNING, .drift = 1, .on_next_start = 1, .action = DECIDE_NONE,
     .exp_phase = PHASE_RUNNING, .ready = "Available", .synced = "UpdatePending",
     .result = "success", .requeue_ms = ANY},
    {"OnNextStart, stopped and to start: recreated with the new spec", .phase = PHASE_STOPPED,
     .group = G_STOPPED, .drift = 1, .on_next_start = 1, .action = DECIDE_DELETE_GROUP,
     .exp_phase = PHASE_STARTING, .requeue_ms = ANY},
    {"OnNextStart, stopped and to stay stopped: waits", .phase = PHASE_STOPPED, .stopped = 1,
     .group = G_STOPPED, .drift = 1, .on_next_start = 1, .action = DECIDE_NONE,
     .exp_phase = PHASE_STOPPED, .synced = "UpdatePending", .result = "success",
     .requeue_ms = ANY},
    {"OnNextStart and POST restart: recreated now", .phase = PHASE_RUNNING,
     .group = G_RUNNING, .drift = 1, .on_next_start = 1, .restart_asked = 1,
     .action = DECIDE_DELETE_GROUP, .exp_phase = PHASE_STARTING, .requeue_ms = ANY},

    /* Azure unreachable (the region's lists fail): the status says it may be stale. */
    {"region unreachable: running as last seen, Synced Unknown", .group = G_RUNNING,
     .stale = 1, .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available",
     .synced = "AzureUnreachable", .result = "success", .requeue_ms = ANY},

    /* Removed by a full sync: never deleted here, gone once Azure is empty. */
    {"removed by sync, group running: nothing done (the reaper's)", .phase = PHASE_DELETING,
     .removed = 1, .group = G_RUNNING, .action = DECIDE_NONE, .exp_phase = KEEP,
     .result = "waiting", .requeue_ms = 0},
    {"removed by sync, share left: nothing done", .phase = PHASE_DELETING, .removed = 1,
     .group = G_ABSENT, .action = DECIDE_NONE, .exp_phase = KEEP, .result = "waiting",
     .requeue_ms = 0},
    {"removed by sync, Azure empty: the object goes", .phase = PHASE_DELETING, .removed = 1,
     .group = G_ABSENT, .share = S_ABSENT, .action = DECIDE_REMOVE_OBJECT, .exp_phase = KEEP,
     .result = "deleted", .requeue_ms = ANY},
    {"removed by sync, only a kept share: the object goes", .phase = PHASE_DELETING,
     .removed = 1, .group = G_ABSENT, .share = S_KEPT, .action = DECIDE_REMOVE_OBJECT,
     .exp_phase = KEEP, .result = "deleted", .requeue_ms = ANY},
    {"tombstone never seen in Azure: removed", .phase = PHASE_DELETING, .tombstone = 1,
     .region = -1, .group = G_UNKNOWN, .share = S_UNKNOWN, .action = DECIDE_REMOVE_OBJECT,
     .exp_phase = KEEP, .result = "deleted", .requeue_ms = ANY},

    /* Workspace health: the IDE behind the readiness probe, crash loops, pulls. */
    {"IDE answers its probe: RUNNING", .group = G_RUNNING, .ctr = C_RUNNING, .probe = 1,
     .ctr_age_ms = 60000, .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available",
     .result = "success", .requeue_ms = ANY},
    {"IDE starting: STARTING IdeStarting, read again within a probe period", .group = G_RUNNING,
     .ctr = C_RUNNING, .probe = 1, .ctr_age_ms = 3000, .action = DECIDE_NONE,
     .exp_phase = PHASE_STARTING, .ready = "IdeStarting", .result = "waiting", .requeue_ms = 5000},
    {"IDE failing its probe within its budget: still IdeStarting", .group = G_RUNNING,
     .ctr = C_RUNNING, .probe = 1, .ctr_age_ms = 20000, .unready_ago_ms = 4000,
     .action = DECIDE_NONE, .exp_phase = PHASE_STARTING, .ready = "IdeStarting",
     .result = "waiting", .requeue_ms = ANY},
    {"IDE failing its probe past its budget: ERROR ProbeFailing, nothing recreated",
     .group = G_RUNNING, .ctr = C_RUNNING, .probe = 1, .ctr_age_ms = 60000,
     .unready_ago_ms = 1000, .action = DECIDE_NONE, .exp_phase = PHASE_ERROR,
     .ready = "ProbeFailing", .error = "ProbeFailing", .result = "waiting", .requeue_ms = ANY},
    {"last probe failure 15 s ago (3 periods): RUNNING", .group = G_RUNNING, .ctr = C_RUNNING,
     .probe = 1, .ctr_age_ms = 60000, .unready_ago_ms = 15000, .action = DECIDE_NONE,
     .exp_phase = PHASE_RUNNING, .ready = "Available", .result = "success", .requeue_ms = ANY},
    {"a failure of the previous run does not count", .group = G_RUNNING, .ctr = C_RUNNING,
     .probe = 1, .ctr_age_ms = 30000, .unready_ago_ms = 40000, .action = DECIDE_NONE,
     .exp_phase = PHASE_RUNNING, .ready = "Available", .result = "success", .requeue_ms = ANY},
    {"no probe configured: RUNNING follows the container", .group = G_RUNNING, .ctr = C_RUNNING,
     .ctr_age_ms = 1000, .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available",
     .result = "success", .requeue_ms = ANY},
    {"crash loop: ERROR CrashLoop, nothing recreated or started", .group = G_RUNNING,
     .ctr = C_WAITING, .restarts = 4, .last_crash_ago_ms = 5000, .ctr_age_ms = 5000,
     .action = DECIDE_NONE, .exp_phase = PHASE_ERROR, .ready = "CrashLoop", .error = "CrashLoop",
     .result = "waiting", .requeue_ms = 60000},
    {"crash loop between crashes (running a moment): still CrashLoop", .group = G_RUNNING,
     .ctr = C_RUNNING, .restarts = 5, .last_crash_ago_ms = 2000, .ctr_age_ms = 1000,
     .action = DECIDE_NONE, .exp_phase = PHASE_ERROR, .ready = "CrashLoop", .error = "CrashLoop",
     .result = "waiting", .requeue_ms = ANY},
    {"two restarts: not a crash loop yet", .group = G_RUNNING, .ctr = C_RUNNING, .restarts = 2,
     .last_crash_ago_ms = 10000, .ctr_age_ms = 10000, .action = DECIDE_NONE,
     .exp_phase = PHASE_RUNNING, .ready = "Available", .result = "success", .requeue_ms = ANY},
    {"restarts an hour ago: RUNNING", .group = G_RUNNING, .ctr = C_RUNNING, .restarts = 6,
     .last_crash_ago_ms = 60 * MINUTE_MS, .ctr_age_ms = 60 * MINUTE_MS, .action = DECIDE_NONE,
     .exp_phase = PHASE_RUNNING, .ready = "Available", .result = "success", .requeue_ms = ANY},
    {"ready for a minute since the last restart: recovered", .group = G_RUNNING,
     .ctr = C_RUNNING, .probe = 1, .restarts = 4, .last_crash_ago_ms = 90000,
     .ctr_age_ms = 90000, .action = DECIDE_NONE, .exp_phase = PHASE_RUNNING, .ready = "Available",
     .result = "success", .requeue_ms = ANY},
    {"image cannot be pulled while provisioning: ERROR ImagePullFailed, waits for ACI",
     .group = G_PENDING, .ctr = C_PULL_FAILED, .action = DECIDE_NONE, .exp_phase = PHASE_ERROR,
     .ready = "ImagePullFailed", .error = "ImagePullFailed", .result = "waiting",
     .requeue_ms = ANY},
    {"inaccessible image: Ready ImagePullFailed, Azure's code kept", .group = G_FAILED,
     .op_code = "InaccessibleImage", .action = DECIDE_NONE, .exp_phase = PHASE_ERROR,
     .ready = "ImagePullFailed", .error = "InaccessibleImage", .result = "error",
     .requeue_ms = ANY},
};
/* clang-format on */

/* Builds the observed entry of a row. */
static void observed_of(const row_t *r, observed_t *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "e1");
    o->region = r->region;
    o->next_get_ms = r->refresh_due ? NOW - 1 : NOW + 60000;
    static const char *const prov[] = {
        [G_RUNNING] = "Succeeded",          [G_STOPPED] = "Succeeded",
        [G_TERMINATED] = "Succeeded",       [G_PENDING] = "Pending",
        [G_CREATING_RUNNING] = "Succeeded", [G_FAILED] = "Failed",
        [G_DELETING] = "Deleting",          [G_NOT_READ] = "Succeeded",
        [G_EXITED_OK] = "Succeeded",        [G_EXITED_FAILED] = "Succeeded",
        [G_CANCELED] = "Canceled",          [G_FAILED_RUNNING] = "Failed",
        [G_FAILED_STOPPED] = "Failed"};
    static const char *const inst[] = {
        [G_RUNNING] = "Running",          [G_STOPPED] = "Stopped",
        [G_TERMINATED] = "Terminated",    [G_PENDING] = "Pending",
        [G_CREATING_RUNNING] = "Waiting", [G_FAILED] = "Failed",
        [G_DELETING] = "Running",         [G_NOT_READ] = "",
        [G_EXITED_OK] = "Succeeded",      [G_EXITED_FAILED] = "Failed",
        [G_CANCELED] = "Pending",         [G_FAILED_RUNNING] = "Running",
        [G_FAILED_STOPPED] = "Stopped"};
    if (r->group != G_UNKNOWN)
        o->g.known = 1;
    if (r->group == G_FOREIGN)
        o->g.foreign = 1;
    if (r->group >= G_RUNNING) {
        o->g.exists = 1;
        snprintf(o->g.prov, sizeof(o->g.prov), "%s", prov[r->group]);
        snprintf(o->g.inst, sizeof(o->g.inst), "%s", inst[r->group]);
        snprintf(o->g.spec_hash, sizeof(o->g.spec_hash), "%s",
                 r->drift ? "ffffffffffffffff" : HASH);
    }
    if (r->share != S_UNKNOWN)
        o->s.known = 1;
    if (r->share == S_OURS || r->share == S_LISTED || r->share == S_FOREIGN || r->share == S_KEPT) {
        o->s.exists = 1;
        o->s.quota_gb = r->quota ? r->quota : 10;
    }
    o->s.verified = r->share == S_OURS || r->share == S_KEPT;
    o->s.foreign = r->share == S_FOREIGN;
    o->s.keep = r->share == S_KEPT;
    if (r->ctr == C_NONE)
        return;
    observed_container_t *c = &o->g.c;
    c->present = 1;
    snprintf(c->name, sizeof(c->name), "workspace");
    snprintf(c->state, sizeof(c->state), "%s", r->ctr == C_RUNNING ? "Running" : "Waiting");
    c->start_ms = WALL - r->ctr_age_ms;
    c->restart_count = r->restarts;
    if (r->restarts) {
        c->has_prev = 1;
        c->prev_exit_code = 3;
        c->prev_finish_ms = WALL - r->last_crash_ago_ms;
    }
    if (r->unready_ago_ms)
        c->unready_ms = WALL - r->unready_ago_ms;
    if (r->ctr == C_PULL_FAILED) {
        static char pull_msg[] = "Failed to pull image \"x\": not found";
        c->pull_failed_msg = pull_msg;
        c->pull_failed_ms = WALL - 1000;
    }
}

/* Runs one row; returns 0 when every expectation held (and prints why not). */
static int run_row(const row_t *r)
{
    env_obj_t obj;
    memset(&obj, 0, sizeof(obj));
    snprintf(obj.id, sizeof(obj.id), "e1");
    obj.generation = 3;
    obj.has_spec = !r->tombstone;
    obj.restored = r->restored;
    obj.removed = r->removed;
    obj.spec.update_policy = r->on_next_start ? SPEC_UPDATE_ON_NEXT_START : SPEC_UPDATE_IMMEDIATE;
    obj.apply_now_gen = r->restart_asked ? obj.generation : 0;
    obj.status.phase = (env_phase_t)r->phase;
    obj.status.last_activity_ms = r->activity_ago_ms ? WALL - r->activity_ago_ms : 0;
    obj.spec.storage_gb = r->storage_gb ? r->storage_gb : 10;
    obj.spec.power = r->stopped ? SPEC_POWER_STOPPED : SPEC_POWER_RUNNING;
    obj.spec.storage_policy = r->retain ? SPEC_STORAGE_RETAIN : SPEC_STORAGE_DELETE;
    obj.spec.auto_stop_minutes = r->auto_stop;
    observed_t o;
    observed_of(r, &o);
    decide_input_t in = {
        .obj = &obj,
        .obs = &o,
        .fetched_group = r->fetched & 1,
        .fetched_share = (r->fetched & 2) != 0,
        .desired_region = r->bad_region ? -1 : 0,
        .listed_all = !r->not_listed,
        .region_stale = r->stale,
        .operation_unread = r->op_unread,
        .operation_code = r->op_code ? r->op_code : "",
        .controller = "ctl",
        .spec_hash = r->restored || r->tombstone ? NULL : HASH,
        .now_ms = NOW,
        .wall_ms = WALL,
        .agent_start_ms = WALL - 60 * MINUTE_MS,
        .status_refresh_ms = 60000,
        .resync_ms = 300000,
        .aci_create_wait_ms = r->create_wait,
        .aci_delete_wait_ms = r->delete_wait,
        .share_min_gb = r->min_gb,
        .share_max_gb = r->max_gb,
        .account_kind = r->min_gb ? "premium" : "standard",
        .rand = {0, 0},
        .probe_delay_s = 0,
        .probe_period_s = r->probe ? 5 : 0,
        .probe_failures = 3,
        .auto_stop_warning_minutes = r->warn,
        .minute_ms = MINUTE_MS,
    };
    in.mem.failed_seen = r->failed_seen;
    in.mem.prov_failures = r->prov_failures ? r->prov_failures : r->failed_seen;
    in.mem.prov_retry_ms = (uint64_t)((int64_t)NOW + r->retry_in_ms);
    in.mem.running_since_ms = r->running_for_ms ? WALL - r->running_for_ms : 0;
    in.mem.ever_running = r->running_for_ms != 0;
    if (r->auto_stopped) {
        in.mem.auto_stopped_ms = WALL - MINUTE_MS;
        in.mem.auto_stopped_gen = obj.generation;
    }
    in.mem.last_action = r->last_action;
    in.mem.last_action_ms = (uint64_t)((int64_t)NOW - r->last_action_ago_ms);
    in.mem.repeats = r->repeats;
    in.mem.poll_ms = r->poll_ms;
    if (r->absent_ago_ms)
        o.g.absent_read_ms = (uint64_t)((int64_t)NOW - r->absent_ago_ms);
    in.urgent = r->urgent;
    if (r->poll_due_in_ms) {
        o.settle = 1;
        o.next_get_ms = (uint64_t)((int64_t)NOW + r->poll_due_in_ms);
    }
    if (r->hold_in_ms) {
        in.mem.hold_until_ms = (uint64_t)((int64_t)NOW + r->hold_in_ms);
        in.mem.hold_gen = r->hold_other_gen ? obj.generation - 1 : obj.generation;
        in.mem.slow_failures = 1;
    }
    decide_plan_t p;
    reconcile_decide(&in, &p);
    int bad = 0;
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "row \"%s\": ", r->name);                                              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            bad = 1;                                                                               \
        }                                                                                          \
    } while (0)
    EXPECT(p.action == r->action, "action %s, want %s", reconcile_action_name(p.action),
           reconcile_action_name(r->action));
    int phase = p.status.publish ? p.status.phase : KEEP;
    EXPECT(phase == r->exp_phase, "phase %d, want %d", phase, r->exp_phase);
    const char *ready = p.status.publish ? p.status.ready_reason : NULL;
    if (r->ready)
        EXPECT(ready && strcmp(ready, r->ready) == 0, "Ready %s, want %s", ready ? ready : "(kept)",
               r->ready);
    const char *synced = p.status.publish ? p.status.synced_reason : NULL;
    if (r->synced && *r->synced)
        EXPECT(synced && strcmp(synced, r->synced) == 0, "Synced %s, want %s",
               synced ? synced : "(kept)", r->synced);
    if (r->error && strcmp(r->error, "-") == 0)
        EXPECT(p.status.set_error < 0, "lastError not cleared (%d)", p.status.set_error);
    else if (r->error)
        EXPECT(p.status.set_error > 0 && strcmp(p.status.err_code, r->error) == 0,
               "lastError %s, want %s", p.status.set_error > 0 ? p.status.err_code : "(none)",
               r->error);
    if (r->result)
        EXPECT(p.result && strcmp(p.result, r->result) == 0, "result %s, want %s",
               p.result ? p.result : "(none)", r->result);
    if (r->pending == 1)
        EXPECT(p.status.set_auto_stop > 0 && p.status.auto_stop_pending,
               "want autoStopTime and AutoStopPending (set %d, pending %d)", p.status.set_auto_stop,
               p.status.auto_stop_pending);
    else if (r->pending == 2)
        EXPECT(p.status.set_auto_stop > 0 && !p.status.auto_stop_pending,
               "want autoStopTime only (set %d, pending %d)", p.status.set_auto_stop,
               p.status.auto_stop_pending);
    else if (r->pending == 3)
        EXPECT(p.status.set_auto_stop < 0, "want autoStopTime cleared (set %d)",
               p.status.set_auto_stop);
    if (r->requeue_ms != ANY)
        EXPECT(p.requeue_ms == (uint64_t)r->requeue_ms, "requeue %llu ms, want %lld",
               (unsigned long long)p.requeue_ms, (long long)r->requeue_ms);
    /* A mutation is always published as an action (lastReconcileTime moves),
     * except the silent retry of a failed provisioning. */
    int mutation = p.action != DECIDE_NONE && p.action != DECIDE_GET_GROUP &&
                   p.action != DECIDE_GET_SHARE && p.action != DECIDE_REMOVE_OBJECT &&
                   p.action != DECIDE_GET_OPERATION;
    if (mutation && !r->failed_seen)
        EXPECT(p.status.publish && p.status.acted, "mutation without a published action");
#undef EXPECT
    return bad;
}

static void test_decision_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        failures += run_row(&rows[i]);
    assert_int_equal(failures, 0);
}

/* The failure backoff grows with each consecutive failure and is capped. */
static void test_failed_backoff_grows(void **state)
{
    (void)state;
    env_obj_t obj;
    memset(&obj, 0, sizeof(obj));
    obj.has_spec = 1;
    obj.spec.storage_gb = 10;
    row_t r = {.group = G_FAILED};
    observed_t o;
    observed_of(&r, &o);
    decide_input_t in = {.obj = &obj,
                         .obs = &o,
                         .desired_region = 0,
                         .listed_all = 1,
                         .controller = "ctl",
                         .spec_hash = HASH,
                         .now_ms = NOW,
                         .wall_ms = WALL,
                         .rand = {0.999, 0.999}};
    uint64_t last = 0;
    for (int i = 0; i < 12; i++) {
        decide_plan_t p;
        reconcile_decide(&in, &p);
        assert_int_equal(p.action, DECIDE_NONE);
        assert_int_equal(p.mem.prov_failures, i + 1);
        assert_true(p.requeue_ms >= last || p.requeue_ms >= DECIDE_FAIL_CAP_MS / 2);
        assert_true(p.requeue_ms <= DECIDE_FAIL_CAP_MS);
        last = p.requeue_ms;
        in.mem = p.mem;
        in.mem.failed_seen = 0; /* the next failure, after a retry */
    }
    assert_true(last >= DECIDE_FAIL_CAP_MS / 2);
}

/* The retry of a failed provisioning lists the storage keys again (a
 * rotated key fails the mount), and only that decision does. */
static void test_failed_retry_refreshes_key(void **state)
{
    (void)state;
    env_obj_t obj;
    memset(&obj, 0, sizeof(obj));
    obj.has_spec = 1;
    obj.spec.storage_gb = 10;
    row_t r = {.group = G_FAILED};
    observed_t o;
    observed_of(&r, &o);
    decide_input_t in = {.obj = &obj,
                         .obs = &o,
                         .listed_all = 1,
                         .controller = "ctl",
                         .spec_hash = HASH,
                         .now_ms = NOW,
                         .wall_ms = WALL};
    decide_plan_t p;
    reconcile_decide(&in, &p);
    assert_int_equal(p.action, DECIDE_NONE);
    assert_false(p.refresh_key);
    in.mem = p.mem;
    in.now_ms = p.mem.prov_retry_ms;
    reconcile_decide(&in, &p);
    assert_int_equal(p.action, DECIDE_DELETE_GROUP);
    assert_true(p.refresh_key);
}

/* A provisioned group resets the failure count; running starts the clock. */
static void test_running_resets_memory(void **state)
{
    (void)state;
    row_t r = {.group = G_RUNNING};
    env_obj_t obj;
    memset(&obj, 0, sizeof(obj));
    obj.has_spec = 1;
    obj.spec.storage_gb = 10;
    observed_t o;
    observed_of(&r, &o);
    o.settle = 1;
    decide_input_t in = {.obj = &obj,
                         .obs = &o,
                         .fetched_group = 1,
                         .listed_all = 1,
                         .controller = "ctl",
                         .spec_hash = HASH,
                         .now_ms = NOW,
                         .wall_ms = WALL,
                         .status_refresh_ms = 60000};
    in.mem.prov_failures = 4;
    decide_plan_t p;
    reconcile_decide(&in, &p);
    assert_int_equal(p.action, DECIDE_NONE);
    assert_int_equal(p.mem.prov_failures, 0);
    assert_true(p.mem.ever_running);
    assert_int_equal(p.mem.running_since_ms, WALL);
    assert_int_equal(p.settle, 0);
    /* The GET of this pass moved the refresh a period ahead. */
    assert_int_equal(p.next_get_ms, NOW + 60000);
    assert_int_equal(p.requeue_ms, 60000);
}

/* A new generation ends an auto-stop: the workspace starts again. */
static void test_new_generation_ends_auto_stop(void **state)
{
    (void)state;
    row_t r = {.group = G_STOPPED};
    env_obj_t obj;
    memset(&obj, 0, sizeof(obj));
    obj.has_spec = 1;
    obj.generation = 4;
    obj.spec.storage_gb = 10;
    observed_t o;
    observed_of(&r, &o);
    decide_input_t in = {.obj = &obj,
                         .obs = &o,
                         .listed_all = 1,
                         .controller = "ctl",
                         .spec_hash = HASH,
                         .now_ms = NOW,
                         .wall_ms = WALL};
    in.mem.auto_stopped_ms = WALL - MINUTE_MS;
    in.mem.auto_stopped_gen = 3;
    decide_plan_t p;
    reconcile_decide(&in, &p);
    assert_int_equal(p.action, DECIDE_START_GROUP);
    assert_int_equal(p.mem.auto_stopped_ms, 0);
}

/* A failed call of `action` answered with status/code, from fresh memory. */
static void call_fails(decide_action_t action, int err, int status, const char *code,
                       decide_plan_t *p, int *failed)
{
    decide_failure_t f = {.action = action,
                          .what = reconcile_action_call(action),
                          .err = err,
                          .http_status = status,
                          .code = code,
                          .message = "azure says no",
                          .rand = 0.5,
                          .generation = 7,
                          .now_ms = NOW,
                          .wall_ms = WALL};
    reconcile_decide_failure(&f, p, failed);
}

/* Failed ARM calls: capacity is an ERROR held for slow retries; the rest
 * back off in the queue; a transition is waited out; cancel says nothing. */
static void test_failures(void **state)
{
    (void)state;
    decide_plan_t p;
    int failed;
    static const char *const capacity[] = {"ContainerGroupQuotaReached",
                                           "StandardCoresQuotaExceeded",
                                           "MissingSubscriptionRegistration"};
    for (size_t i = 0; i < 3; i++) {
        call_fails(DECIDE_CREATE_GROUP, D8_EIO, 409, capacity[i], &p, &failed);
        assert_false(failed);
        assert_int_equal(p.status.phase, PHASE_ERROR);
        assert_string_equal(p.status.ready_reason, "Failed");
        assert_string_equal(p.status.err_code, capacity[i]);
        assert_int_equal(p.requeue_ms, 45000); /* 1 min, jittered in [30 s, 60 s) */
        assert_int_equal(p.mem.hold_until_ms, NOW + 45000);
        assert_int_equal(p.mem.hold_gen, 7);
        assert_int_equal(p.status.set_retry, 1);
        assert_int_equal(p.status.retry_attempts, 1);
        assert_int_equal(p.status.retry_wall_ms, WALL + 45000);
    }
    /* ACI's capacity answer is a 409 ServiceUnavailable; ARM's 503 is transient. */
    call_fails(DECIDE_CREATE_GROUP, D8_EIO, 409, "ServiceUnavailable", &p, &failed);
    assert_int_equal(p.status.phase, PHASE_ERROR);
    assert_false(failed);
    call_fails(DECIDE_CREATE_GROUP, D8_EIO, 503, "ServiceUnavailable", &p, &failed);
    assert_int_equal(p.status.phase, -1);
    assert_true(failed);

    call_fails(DECIDE_GET_GROUP, D8_EAGAIN, 429, NULL, &p, &failed);
    assert_true(failed);
    assert_int_equal(p.status.phase, -1);
    assert_string_equal(p.status.synced_reason, "Throttled");
    assert_non_null(strstr(p.status.err_msg, "get container group: "));

    call_fails(DECIDE_STOP_GROUP, D8_EIO, 500, "InternalServerError", &p, &failed);
    assert_true(failed);
    assert_string_equal(p.status.synced_reason, "ReconcileError");
    assert_string_equal(p.status.err_msg, "stop container group: azure says no");

    call_fails(DECIDE_STOP_GROUP, D8_EIO, 409, "ContainerGroupTransitioning", &p, &failed);
    assert_false(failed);
    assert_string_equal(p.status.synced_reason, "Transitioning");
    assert_int_equal(p.status.set_error, 0);
    assert_true(p.settle);
    assert_int_equal(p.requeue_ms, DECIDE_POLL_MS);

    call_fails(DECIDE_DELETE_SHARE, D8_EIO, 409, "ShareHasSnapshots", &p, &failed);
    assert_false(failed);
    assert_int_equal(p.status.phase, -1);
    assert_string_equal(p.status.synced_reason, "Blocked");
    assert_string_equal(p.status.err_code, "ShareHasSnapshots");
    assert_true(p.mem.hold_until_ms > NOW);

    call_fails(DECIDE_CREATE_SHARE, D8_EIO, 409, "ShareBeingDeleted", &p, &failed);
    assert_int_equal(reconcile_failure_kind(&(decide_failure_t){.action = DECIDE_CREATE_SHARE,
                                                                .http_status = 409,
                                                                .code = "ShareBeingDeleted"}),
                     DECIDE_FAIL_BLOCKED);
    assert_false(failed);

    /* Azure refused the request: ERROR, held for a slow retry. */
    call_fails(DECIDE_CREATE_GROUP, D8_EIO, 400, "DnsNameLabelAlreadyTaken", &p, &failed);
    assert_false(failed);
    assert_int_equal(p.status.phase, PHASE_ERROR);
    assert_string_equal(p.status.err_code, "DnsNameLabelAlreadyTaken");
    assert_true(p.mem.hold_until_ms > NOW);
    /* ... but a refused read is only a failed pass. */
    call_fails(DECIDE_GET_GROUP, D8_EIO, 403, "AuthorizationFailed", &p, &failed);
    assert_true(failed);
    assert_int_equal(p.status.phase, -1);

    call_fails(DECIDE_STOP_GROUP, D8_ECANCELED, 0, NULL, &p, &failed);
    assert_false(failed);
    assert_false(p.status.publish);
    assert_string_equal(p.result, "canceled");
}

/* Consecutive capacity failures wait longer each time, up to 30 minutes. */
static void test_slow_retries_grow(void **state)
{
    (void)state;
    decide_failure_t f = {.action = DECIDE_CREATE_GROUP,
                          .what = "create container group",
                          .err = D8_EIO,
                          .http_status = 409,
                          .code = "ServiceUnavailable",
                          .rand = 0.999,
                          .generation = 1,
                          .now_ms = NOW,
                          .wall_ms = WALL};
    uint64_t last = 0;
    for (int i = 0; i < 10; i++) {
        decide_plan_t p;
        int failed;
        reconcile_decide_failure(&f, &p, &failed);
        assert_true(p.requeue_ms >= last);
        assert_true(p.requeue_ms <= DECIDE_SLOW_CAP_MS);
        last = p.requeue_ms;
        f.mem = p.mem;
    }
    assert_true(last >= DECIDE_SLOW_CAP_MS / 100 * 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_table),
        cmocka_unit_test(test_failed_backoff_grows),
        cmocka_unit_test(test_running_resets_memory),
        cmocka_unit_test(test_failed_retry_refreshes_key),
        cmocka_unit_test(test_new_generation_ends_auto_stop),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_slow_retries_grow),
    };
    return cmocka_run_group_tests_name("decide", tests, NULL, NULL);
}
