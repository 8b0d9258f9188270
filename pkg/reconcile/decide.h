/*
 * The reconcile decision of DESIGN.md section 5 as a pure function: from
 * the desired object, the observed Azure state and what the reconciler
 * remembers of earlier passes, it chooses the one thing to do now (an ARM
 * read, one ARM mutation, removing the object, or nothing), the status to
 * publish, and when to look again. No I/O, no clock reads, no globals:
 * every time and random number comes in through decide_input_t, so every
 * row of the decision is a table test (test/unit/reconcile).
 */
#ifndef D8_RECONCILE_DECIDE_H
#define D8_RECONCILE_DECIDE_H

#include "observe/observe.h"
#include "store/store.h"

#include <stdint.h>

/* Polling delays while Azure settles (no Retry-After given). */
#define DECIDE_POLL_MS 2000
#define DECIDE_SHORT_MS 200
/* Failed provisioning is retried with a backoff from 1 s up to 5 minutes. */
#define DECIDE_FAIL_BASE_MS 1000
#define DECIDE_FAIL_CAP_MS 300000
/* Capacity, quota and blocked deletions are retried slowly: 1 min up to 30. */
#define DECIDE_SLOW_BASE_MS 60000
#define DECIDE_SLOW_CAP_MS 1800000
/* While Azure provisions or transitions, polling backs off from 2 s to 30 s. */
#define DECIDE_POLL_CAP_MS 30000
/* The same power or delete mutation is not repeated sooner than this,
 * doubling with each repeat up to 5 minutes (a stale read never loops). */
#define DECIDE_REPEAT_BASE_MS 5000
#define DECIDE_REPEAT_CAP_MS 300000
/* A GET that found no group this recently allows its create. */
#define DECIDE_ABSENCE_FRESH_MS 5000
/* An interactive change is polled at most this far apart. */
#define DECIDE_URGENT_POLL_CAP_MS 4000
/* With auto-stop set, a running environment is looked at every minute. */
#define DECIDE_AUTO_STOP_CHECK_MS 60000
#define DECIDE_MSG_MAX 320

typedef enum decide_action {
    DECIDE_NONE = 0,
    DECIDE_GET_GROUP, /* read the group, then decide again */
    DECIDE_GET_SHARE, /* read the share, then decide again */
    DECIDE_CREATE_SHARE,
    DECIDE_GROW_SHARE,   /* to plan.quota_gb */
    DECIDE_RETAIN_SHARE, /* rewrite the metadata with dev8keep=true */
    DECIDE_DELETE_SHARE,
    DECIDE_CREATE_GROUP,
    DECIDE_DELETE_GROUP,
    DECIDE_START_GROUP,
    DECIDE_STOP_GROUP,
    DECIDE_REMOVE_OBJECT, /* the deletion finished: drop the object from the store */
    DECIDE_GET_OPERATION, /* read the failed create's operation for Azure's error code */
    DECIDE_ADOPT_SHARE,   /* a retained share is desired again: clear dev8keep/dev8keepuntil */
    DECIDE__COUNT
} decide_action_t;

/* What the reconciler remembers of one environment between passes. */
typedef struct decide_memory {
    int failed_seen;             /* the current Failed provisioning was reported */
    int prov_failures;           /* consecutive failed provisionings (backoff) */
    uint64_t prov_retry_ms;      /* loop time before which a Failed group is kept */
    int ever_running;            /* seen RUNNING since the agent started */
    int64_t running_since_ms;    /* wall time RUNNING was first observed, 0 = not running */
    int64_t auto_stopped_ms;     /* wall time of an auto-stop, 0 = none */
    int64_t auto_stopped_gen;    /* the generation that was auto-stopped */
    decide_action_t last_action; /* the last mutation issued, DECIDE_NONE after settling */
    uint64_t last_action_ms;     /* loop time it was issued */
    int repeats;                 /* times it was issued again without settling */
    uint64_t poll_ms;            /* current polling delay while Azure works (0: none yet) */
    int slow_failures;           /* consecutive capacity/quota/blocked failures */
    uint64_t hold_until_ms;      /* loop time before which mutations wait (slow retry) */
    int64_t hold_until_wall_ms;  /* the same, wall clock (status.retry) */
    int64_t hold_gen;            /* the generation the hold applies to */
    int64_t auto_stop_idle_ms;   /* how long it had been idle when auto-stopped */
} decide_memory_t;

typedef struct decide_input {
    const env_obj_t *obj;  /* the desired object; never NULL */
    const observed_t *obs; /* what Azure looks like */
    decide_memory_t mem;
    int fetched_group;          /* this pass already read the group by GET */
    int fetched_share;          /* ... and the share */
    int desired_region;         /* index of obj's cloudRegion, -1 when not configured */
    int listed_all;             /* every region was listed completely once */
    int region_stale;           /* the region's last lists failed: Azure unreachable */
    int urgent;                 /* an interactive change someone waits for */
    const char *controller;     /* controller name, for messages */
    const char *spec_hash;      /* the desired spec's hash; NULL for a restored object */
    int operation_unread;       /* our last create's async operation was not read yet */
    const char *operation_code; /* its error code once read ("" = none given) */
    uint64_t now_ms;            /* loop clock */
    int64_t wall_ms;            /* wall clock */
    int64_t agent_start_ms;     /* wall time the agent started */
    uint64_t status_refresh_ms;
    uint64_t resync_ms;
    uint64_t aci_create_wait_ms; /* the client's wait for an ACI create token */
    uint64_t aci_delete_wait_ms; /* ... for an ACI delete token */
    int share_min_gb;            /* the storage account's smallest share, 0 = unknown */
    int share_max_gb;            /* ... and largest, 0 = unknown */
    const char *account_kind;    /* for messages: "premium", "standard" (NULL = unknown) */
    /* The readiness probe the group was created with (workspace.readinessProbe):
     * period 0 = none, and RUNNING follows the container alone. */
    int probe_delay_s, probe_period_s, probe_failures;
    /* Auto-stop: AutoStopPending this many "minutes" before the stop, and
     * the length of such a minute in ms (0: 60000). */
    int auto_stop_warning_minutes;
    int64_t minute_ms;
    double rand[2]; /* uniform in [0,1): jitter and backoff */
} decide_input_t;

/* The status to publish; strings borrowed from the plan or static. */
typedef struct decide_status {
    int publish; /* write it (else the status stays) */
    int phase;   /* env_phase_t, -1 keeps the phase */
    cond_status_t ready;
    const char *ready_reason; /* NULL keeps the Ready condition */
    const char *ready_msg;
    cond_status_t synced;
    const char *synced_reason; /* NULL keeps the Synced condition */
    const char *synced_msg;
    int set_error; /* 1 sets lastError, -1 clears it, 0 keeps */
    const char *err_code;
    const char *err_msg;
    int acted;             /* an ARM mutation is issued with it */
    int set_retry;         /* 1 sets status.retry, -1 clears it (settled), 0 keeps */
    int retry_attempts;    /* failed attempts so far */
    int64_t retry_wall_ms; /* the next attempt, 0 = under way now */
    int set_auto_stop;     /* 1 sets status.autoStopTime (and AutoStopPending), -1 clears */
    int64_t auto_stop_ms;  /* when the running workspace is stopped if nothing happens */
    int auto_stop_pending; /* within autoStopWarningMinutes of it */
} decide_status_t;

typedef struct decide_plan {
    decide_action_t action;
    const char *reason; /* why (logs): "spec drift", ... */
    int quota_gb;       /* DECIDE_GROW_SHARE */
    decide_status_t status;
    /* When the action is DECIDE_NONE or DECIDE_REMOVE_OBJECT: the pass ends
     * with this outcome. Mutations requeue from their callback. */
    uint64_t requeue_ms;
    const char *result;       /* metric label: success|waiting|error|throttled|deleted */
    decide_memory_t mem;      /* the memory after this decision */
    int settle;               /* observed settle flag after this decision */
    int refresh_key;          /* forget the cached storage key before acting */
    int update_pending;       /* a recreate waits for the next stop/start */
    uint64_t next_get_ms;     /* observed status-refresh time after it */
    char msg[DECIDE_MSG_MAX]; /* storage for a composed message */
    char msg2[DECIDE_MSG_MAX];
    char msg3[DECIDE_MSG_MAX]; /* the auto-stop's message */
} decide_plan_t;

/* Decides one step of a pass over an environment (see the file comment). */
void reconcile_decide(const decide_input_t *in, decide_plan_t *plan);

/* An ARM call of a pass failed: the facts of the answer. */
typedef struct decide_failure {
    decide_action_t action; /* the call that failed */
    const char *what;       /* "create container group" */
    int err;                /* d8 error */
    int http_status;
    const char *code;    /* Azure's error code, NULL when none */
    const char *message; /* Azure's message, NULL when none */
    double rand;         /* uniform in [0,1) */
    decide_memory_t mem; /* the memory before the call */
    int64_t generation;  /* the object's generation */
    uint64_t now_ms;     /* loop clock */
    int64_t wall_ms;     /* wall clock */
} decide_failure_t;

/* The kinds of failed ARM calls the decision tells apart. */
typedef enum decide_failure_kind {
    DECIDE_FAIL_CANCELED = 0,  /* shutdown: nothing to say */
    DECIDE_FAIL_TRANSITIONING, /* 409 ContainerGroupTransitioning: wait and look again */
    DECIDE_FAIL_CAPACITY,      /* capacity, quota, registration: ERROR, slow retries */
    DECIDE_FAIL_BLOCKED,       /* a share that cannot go (snapshots, lock) or whose
                                  name is still held: slow retries */
    DECIDE_FAIL_REJECTED,      /* a mutation refused as invalid (4xx): ERROR, slow retries */
    DECIDE_FAIL_THROTTLED,     /* 429 after the client's retries */
    DECIDE_FAIL_OTHER,         /* anything else: the queue's backoff */
} decide_failure_kind_t;

/* Classifies a failed call by its action, HTTP status and Azure code (pure). */
decide_failure_kind_t reconcile_failure_kind(const decide_failure_t *f);

/*
 * The status, memory and outcome of a failed ARM call (pure); *failed is 1
 * when the pass must requeue with the queue's backoff. Capacity and quota
 * errors (ServiceUnavailable, *Quota*, MissingSubscriptionRegistration)
 * mark the environment ERROR and hold every mutation of that generation
 * for 1, 2, 4 .. 30 minutes (status.retry), so retries never spend
 * the region's create budget; a blocked share deletion is held alike; a
 * transition in progress is waited out; a canceled call says nothing.
 */
void reconcile_decide_failure(const decide_failure_t *f, decide_plan_t *plan, int *failed);

/* The auto-stop rule of DESIGN.md section 5: an environment with
 * autoStopMinutes > 0 is due when nothing happened for that long, counting
 * from the latest of the agent's start (a restart never stops anything
 * early), the last activity and the moment it was seen becoming RUNNING.
 * Wall milliseconds, 0 = never. */
int reconcile_auto_stop_due(int minutes, int64_t agent_start_ms, int64_t last_activity_ms,
                            int64_t running_since_ms, int64_t now_ms);

/* A crash loop: the container restarted at least this often, the last
 * time within DECIDE_CRASHLOOP_WINDOW_MS, and is not running ready. */
#define DECIDE_CRASHLOOP_RESTARTS 3
#define DECIDE_CRASHLOOP_WINDOW_MS 600000
/* ACI's instance-view times are whole seconds: rules on them allow this. */
#define DECIDE_TIME_SLACK_MS 1000
/* ... and a run ready this long since the last restart ends it. */
#define DECIDE_CRASHLOOP_STABLE_MS 60000

/*
 * The health rows of the decision (pkg/reconcile/health.c), pure like the
 * rest. reconcile_health_running: the group runs and is desired running;
 * 1 when the plan is made (ERROR CrashLoop, STARTING IdeStarting, ERROR
 * ProbeFailing), 0 when the workspace is ready (RUNNING follows).
 * reconcile_health_pending: the group is still provisioning; 1 when its
 * container shows an image that cannot be pulled (ERROR ImagePullFailed
 * with Azure's message, waiting: ACI keeps retrying the pull).
 */
int reconcile_health_running(const decide_input_t *in, decide_plan_t *plan);
int reconcile_health_pending(const decide_input_t *in, decide_plan_t *plan);
/* The Ready reason of a failed provisioning with Azure's message and
 * operation code: ImagePullFailed for an image that cannot be pulled,
 * else Failed. Static; never NULL. */
const char *reconcile_failed_reason(const char *message, const char *code);

/*
 * Auto-stop of a running workspace (pkg/reconcile/health.c): 1 when it is
 * due (the plan stops it, with the idle time in its message); otherwise 0,
 * status.autoStopTime set (and AutoStopPending while within the warning),
 * and *next_ms lowered to the next moment that matters (warning or stop).
 */
int reconcile_auto_stop(const decide_input_t *in, decide_plan_t *plan, uint64_t *next_ms);
/* When an environment with autoStopMinutes `minutes` (minute_ms each) is
 * due, counting as reconcile_auto_stop_due does; 0 = never. */
int64_t reconcile_auto_stop_at(int minutes, int64_t minute_ms, int64_t agent_start_ms,
                               int64_t last_activity_ms, int64_t running_since_ms);

/* "createGroup", ... for logs and metrics; never NULL. */
const char *reconcile_action_name(decide_action_t a);
/* "create container group", ... for messages; never NULL. */
const char *reconcile_action_call(decide_action_t a);

#endif
