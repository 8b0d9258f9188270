/*
 * Shared between the files of pkg/reconcile: reconcile.c (the loop: queue,
 * passes, status), decide.c (the pure decision) and act.c (the ARM calls a
 * plan names, and their answers).
 */
#ifndef D8_RECONCILE_INT_H
#define D8_RECONCILE_INT_H

#include "decide.h"
#include "reconcile.h"

#include "base/map.h"
#include "workqueue/workqueue.h"

/* What the reconciler keeps per environment id. */
typedef struct rec_env {
    char id[SPEC_ID_MAX + 1];
    observed_t *o; /* borrowed: observer entries live as long as it */
    decide_memory_t mem;
    char hash[OWN_HASH_MAX]; /* the spec hash of generation hash_gen */
    int64_t hash_gen;        /* 0: none computed */
    int fetched_group;       /* this pass read the group by GET */
    int fetched_share;
    decide_action_t action;  /* the ARM call in flight */
    char *operation_url;     /* Azure-AsyncOperation of our last create, owned */
    int operation_read;      /* ... read since (or not readable) */
    char operation_code[64]; /* ... its error code, "" when none */
    uint64_t pass_start_ns;
    int64_t keep_until_ms; /* the keep-until of a retain in flight */
    reconciler_t *r;
    /* The Azure instance-view events seen at the last GET (hash of name
     * and message, and count): only new ones become events. */
    uint32_t az_seen[32];
    int az_seen_count[32];
    size_t naz_seen;
} rec_env_t;

struct reconciler {
    uv_loop_t *loop;
    const config_t *cfg;
    store_t *store;
    azure_client_t *az;
    observer_t *ob;
    metrics_t *metrics;
    events_t *events;           /* borrowed, may be NULL */
    const activity_t *activity; /* borrowed, may be NULL */
    unsigned char *hash_key;
    size_t hash_keylen;
    workqueue_t *wq;
    store_watcher_t *watcher;
    d8_map_t envs; /* id -> rec_env_t */
    size_t active;
    int paused;
    int64_t start_wall_ms;
    uint64_t rng; /* d8_rand01 state: jitter and backoff */

    metric_family_t *m_total;
    metric_family_t *m_duration;
    metric_family_t *m_depth;
    metric_family_t *m_retries;
    metric_family_t *m_queue_wait;
    metric_family_t *m_actions;
    usage_t *usage; /* may be NULL */
};

/* Decides the next step of e's pass and carries it out (reconcile.c). */
void reconcile__step(rec_env_t *e);
/* Ends e's pass: err < 0 requeues with the queue's backoff, else after
 * requeue_ms (0: only when something changes). */
void reconcile__finish(rec_env_t *e, int err, uint64_t requeue_ms, const char *result);
/* Publishes a plan's status for e (through the store's phase function). */
void reconcile__publish(rec_env_t *e, const decide_status_t *st);
/* The ARM call in flight for e (e->action) failed: status, memory, log
 * line and requeue, as reconcile_decide_failure says. */
void reconcile__failed(rec_env_t *e, const azure_result_t *res);

/* The desired spec's hash as the dev8-spec-hash tag carries it (borrowed
 * from e, computed once per generation); obj must not be restored. */
const char *reconcile__spec_hash(rec_env_t *e, const env_obj_t *obj);

/* Reports what the pass observed of e to the usage accountant, and
 * refreshes status.usage at transitions and hourly (account.c). `plan`
 * is the pass's decision: reads are not observations yet. */
void reconcile__account(rec_env_t *e, const env_obj_t *obj, const decide_plan_t *plan);
/* The retain of e's share (keep-until e->keep_until_ms) or its adoption
 * succeeded: the retained table follows (account.c). */
void reconcile__retained(rec_env_t *e, int quota_gb);
void reconcile__adopted(rec_env_t *e);
/* Issues the ARM call of plan->action for e (act.c). Its answer updates the
 * observer and either decides again (reads) or ends the pass (mutations). */
void reconcile__act(rec_env_t *e, const decide_plan_t *plan, const env_obj_t *obj);

/* The ACI probe of config probe c in *out, or NULL when c is off (an
 * empty path); port 0 means the first workspace port. */
const azure_probe_t *reconcile__probe(const config_t *cfg, const config_probe_t *c,
                                      azure_probe_t *out);
/* Records the Azure instance-view events of g (a GET of e's group) not
 * seen at the previous GET as events of e (events.c in pkg/reconcile). */
void reconcile__azure_events(rec_env_t *e, const azure_group_t *g);
/* Records that e issued mutation a (why: the plan's reason). */
void reconcile__event_request(rec_env_t *e, decide_action_t a, const char *why);
/* Records the result of e's mutation in flight: ok, or the failure. */
void reconcile__event_result(rec_env_t *e, const azure_result_t *res);
/* Records a phase transition of e's environment. */
void reconcile__event_phase(const rec_env_t *e, int from, int to, const char *reason,
                            const char *msg);

/* Applies a plan's autoStopTime and AutoStopPending to e's status s (now:
 * wall ms), with an event when the warning begins; 1 when they changed. */
int reconcile__set_auto_stop(const rec_env_t *e, const decide_status_t *st, env_status_t *s,
                             int64_t now);
/* 1 for DEV8_ACTIVITY_URL and DEV8_ACTIVITY_TOKEN: with activity on, the
 * agent's values replace a spec's. */
int reconcile__activity_name(const char *name);
/* Sets status.containers of s from what the last GET showed of the
 * workspace container; 1 when it changed. */
int reconcile__set_containers(const observed_t *o, env_status_t *s);

#endif
