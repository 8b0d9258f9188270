/*
 * pkg/azsim internals shared between the files of the module (and its unit
 * test). Not part of the public contract.
 */
#ifndef D8_AZSIM_INT_H
#define D8_AZSIM_INT_H

#include "azsim.h"
#include "base/heap.h"
#include "base/list.h"

#include <cjson/cJSON.h>
#include <stdarg.h>

/* ---- a string-keyed hash table that also keeps insertion order ------- */

/*
 * Embedded as the first member of every stored object. The key is the
 * lower-cased name (ARM names are case-insensitive) and owned by the
 * entry; seq grows with every insertion and orders lists and paging.
 */
typedef struct azsim__ent {
    char *key;
    uint64_t hash;
    uint64_t seq;
    struct azsim__ent *hnext;
    d8_list_t order; /* in the table's insertion order */
} azsim__ent_t;

typedef struct azsim__table {
    azsim__ent_t **buckets;
    size_t nbuckets;
    size_t count;
    d8_list_t order; /* every entry, oldest first */
    uint64_t next_seq;
} azsim__table_t;

/* An empty table; release it with azsim__table_release. */
void azsim__table_init(azsim__table_t *t);
/* Frees the buckets only; the caller frees its objects first. */
void azsim__table_release(azsim__table_t *t);
/* The entry under key, which must already be lower case; NULL if none. */
azsim__ent_t *azsim__table_get(const azsim__table_t *t, const char *key);
/* Inserts e under key (copied and lower-cased); the key must be absent. */
void azsim__table_put(azsim__table_t *t, azsim__ent_t *e, const char *key);
/* Unlinks e and frees its key; the object itself stays the caller's. */
void azsim__table_del(azsim__table_t *t, azsim__ent_t *e);

/* Iteration in insertion order: the oldest entry, or NULL when empty. */
static inline azsim__ent_t *azsim__table_first(const azsim__table_t *t)
{
    return d8_list_empty(&t->order) ? NULL : d8_container_of(t->order.next, azsim__ent_t, order);
}

/* The entry inserted after e, or NULL. e must still be in t. */
static inline azsim__ent_t *azsim__table_next(const azsim__table_t *t, const azsim__ent_t *e)
{
    return e->order.next == &t->order ? NULL : d8_container_of(e->order.next, azsim__ent_t, order);
}

/* ---- timed transitions -------------------------------------------------- */

enum {
    AZSIM__EV_DEPLOYED = 1, /* a deployment's pull and start are done (or failed) */
    AZSIM__EV_PULL_RETRY,   /* a failing pull is tried again (Failed, BackOff) */
    AZSIM__EV_TIMEOUT,      /* a deployment still Waiting fails */
    AZSIM__EV_EXIT,         /* a running container exits by its image rule */
    AZSIM__EV_RESTART,      /* a crashed container's back-off is over */
    AZSIM__EV_PROBE,        /* the readiness and liveness probes of a run are due */
    AZSIM__EV_DELETED,      /* container group deletion done */
    AZSIM__EV_SHARE_PURGE,  /* deleted share's name free again */
};

typedef struct azsim__event {
    uint64_t due;   /* clock ms */
    uint64_t order; /* ties keep scheduling order */
    int kind;
    uint64_t epoch; /* stale when the object moved on */
    char *key;      /* owned: lower-cased ARM id */
} azsim__event_t;

typedef struct azsim__heap {
    d8_heap_t h; /* azsim__event_t, by due then order */
    uint64_t next_order;
} azsim__heap_t;

/* An empty heap; release it with azsim__heap_release. */
void azsim__heap_init(azsim__heap_t *h);
/* Schedules event kind for key (copied, lower-cased) at clock ms due;
 * epoch tells a stale event from a current one when it is applied. */
void azsim__heap_push(azsim__heap_t *h, uint64_t due, int kind, uint64_t epoch, const char *key);
/* Pops the earliest event due at or before now into *out (key then owned
 * by the caller); returns 0 when none is due. */
int azsim__heap_pop_due(azsim__heap_t *h, uint64_t now, azsim__event_t *out);
/* Frees the pending events' keys and the heap. */
void azsim__heap_release(azsim__heap_t *h);

/* ---- throttling --------------------------------------------------------- */

typedef struct azsim__bucket {
    double tokens;
    double cap;
    double rate_per_ms;
    uint64_t last;
} azsim__bucket_t;

/* A full bucket of cap tokens that refills at per_second from now on. */
void azsim__bucket_init(azsim__bucket_t *b, double cap, double per_second, uint64_t now);
/* Adds the tokens earned since the last refill, up to the cap. */
void azsim__bucket_refill(azsim__bucket_t *b, uint64_t now);
/* Seconds (at least 1) until one token is available. */
int azsim__bucket_wait_s(const azsim__bucket_t *b);

/* Per subscription: ARM's read/write/delete buckets, and the global ones
 * of all principals together (15 times as large). */
typedef struct azsim__sub {
    azsim__ent_t e;
    azsim__bucket_t reads, writes, deletes;
    azsim__bucket_t greads, gwrites, gdeletes;
} azsim__sub_t;

/* Per subscription and region: ACI's create/delete quotas, each a
 * 5-minute and a 1-hour bucket (100 per 5 min and 300 per hour). */
typedef struct azsim__region {
    azsim__ent_t e;
    azsim__bucket_t create5m, create1h, delete5m, delete1h;
} azsim__region_t;

/* ---- resources ---------------------------------------------------------- */

enum {
    AZSIM__PROV_CREATING,
    AZSIM__PROV_UPDATING,
    AZSIM__PROV_SUCCEEDED,
    AZSIM__PROV_FAILED,
    AZSIM__PROV_DELETING,
    AZSIM__PROV_CANCELED
};
/* instanceView.state; SUCCEEDED and FAILED: every container exited and
 * the restart policy does not restart it. */
enum {
    AZSIM__POW_PENDING,
    AZSIM__POW_RUNNING,
    AZSIM__POW_STOPPED,
    AZSIM__POW_SUCCEEDED,
    AZSIM__POW_FAILED
};
/* A container's currentState / previousState. */
enum { AZSIM__CS_NONE, AZSIM__CS_WAITING, AZSIM__CS_RUNNING, AZSIM__CS_TERMINATED };

typedef struct azsim__cstate {
    int state; /* AZSIM__CS_* */
    int exit_code;
    int64_t start_wall, finish_wall;
    const char *detail; /* static detailStatus */
} azsim__cstate_t;

/* A container's readinessProbe or livenessProbe (httpGet or exec). */
typedef struct azsim__probe {
    int set;
    int initial_delay_s, period_s, failure_threshold;
    int port;       /* httpGet.port, 0 for exec */
    char path[128]; /* httpGet.path, or the exec command */
} azsim__probe_t;

typedef struct azsim__group {
    azsim__ent_t e; /* key: lower-cased ARM id */
    char *id;       /* ARM id as first created */
    char *name;
    char *sub; /* as in the id */
    char *rg;
    char *location;   /* normalised: lower case, no blanks */
    char *spec;       /* compact JSON {location,tags,zones,identity,properties},
                         read-only fields removed, secrets kept */
    char *props_text; /* compact JSON of properties: change detection */
    int prov, power;
    uint64_t prov_epoch;   /* deletion events */
    uint64_t deploy_epoch; /* events of the current deployment */
    uint64_t run_epoch;    /* exit and restart events of the current run */
    int fail_fault;        /* provisioning fails by the failProvisioningRate fault */
    char fail_kind;        /* why prov is Failed: 'P'rovisioning, 'S'top, 'D'elete */
    char ip[16];           /* "" while none is assigned */
    char ip_type;          /* 'P'ublic, 'V' private (VNet), 0: no ipAddress */
    int64_t created_wall;
    int restart_count;
    char *op_id;   /* the group's latest async operation */
    char policy;   /* restartPolicy: 'A'lways, 'O'nFailure, 'N'ever */
    double cores;  /* the containers' cpu requests, for the StandardCores quota */
    char **images; /* each container's image, in spec order (owned) */
    size_t nimages;
    int delete_fault; /* the deletion under way fails (failDeleteRate) */
    char *fqdn;       /* the DNS name it holds in azsim's label table, or NULL */
    char *label_hash; /* the hash segment of a hashed label scope, or NULL */
    /* The current deployment: what its images' rules decided. */
    int pull_failure; /* AZSIM_PULL_* */
    char *rule_image; /* the image whose rule decided it (owned), or NULL */
    int64_t exit_after_ms;
    int exit_code;
    int pull_retries;
    azsim__cstate_t cur, prev; /* every container's current and previous state */
    cJSON *cevents;            /* one array of events per container (owned) */
    cJSON *gevents;            /* the group's own events (owned) */
    uint64_t busy_until;       /* clock ms: start/stop/restart answer 409 before it */
    uint64_t trans_until;      /* clock ms: ... and so does a delete (aci.transitionMs) */
    uint64_t stale_until;      /* clock ms: GET shows stale_power before it */
    int stale_power;
    /* The probes of the first container, and what its image rule says of
     * the IDE behind them (azsim_aci_probe.c). */
    azsim__probe_t readiness, liveness;
    int64_t ready_after_ms; /* the probes pass this long into a run; -1: never */
    uint64_t run_start;     /* clock ms the current run started */
    int live_failures;      /* consecutive liveness failures of this run */
    int ready_seen;         /* the readiness probe passed in this run */
    char cname[64];         /* the first container's name */
    cJSON *logs;            /* the first container's log lines (owned) */
} azsim__group_t;

typedef struct azsim__share {
    azsim__ent_t e; /* key: lower-cased ARM id */
    char *id;
    char *name;
    char *account;
    int quota;
    cJSON *metadata; /* object of strings, owned */
    char *access_tier;
    char *protocols;
    int64_t created_wall, modified_wall;
    uint64_t etag_n;
    int deleted; /* soft-deleted: name blocked until purge */
    int64_t deleted_wall;
    uint64_t epoch;
    char version[24];
    /* Set through POST /_azsim/shares (a delete takes the snapshots too). */
    int snapshots;        /* share snapshots without a lease */
    int leased_snapshots; /* share snapshots with an active lease */
    char lock;            /* management lock on the share: 'D' CanNotDelete, 'R' ReadOnly */
    /* Stands for the files on the share (POST /_azsim/shares {marker}):
     * kept by updates and restores, gone with the share. Owned. */
    char *marker;
} azsim__share_t;

/* What the model keeps of a storage account (its settings are in
 * azsim_storage_opts_t): key regenerations and a management lock. */
typedef struct azsim__account {
    azsim__ent_t e;      /* key: lower-cased account name (names are global) */
    unsigned key_gen[2]; /* regenerations of key1 and key2 */
    int64_t key_wall[2]; /* wall ms each key was (re)generated */
    char lock;           /* 'D' CanNotDelete, 'R' ReadOnly, 0: none */
} azsim__account_t;

enum { AZSIM__OPST_SUCCEEDED, AZSIM__OPST_FAILED, AZSIM__OPST_CANCELED };

/* An asynchronous operation of ACI, answered at the URLs of the
 * Azure-AsyncOperation and Location headers. */
typedef struct azsim__op {
    azsim__ent_t e; /* key: the operation id */
    char *resource_id;
    int kind;         /* 'C'reate/update, 'D'elete, 'S'tart */
    uint64_t done_at; /* clock ms */
    int final;        /* AZSIM__OPST_* once done_at passed */
    char *err_code, *err_msg;
    int64_t start_wall, end_wall;
    uint64_t hint_at; /* clock ms Retry-After points at: the expected end
                         (Azure cannot foresee a pull's length) */
} azsim__op_t;

/* Operations for the statistics and the log. */
#define AZSIM__OPS(X)                                                                              \
    X(UNKNOWN, "unknown")                                                                          \
    X(CG_CREATE, "containerGroups.createOrUpdate")                                                 \
    X(CG_GET, "containerGroups.get")                                                               \
    X(CG_UPDATE, "containerGroups.update")                                                         \
    X(CG_DELETE, "containerGroups.delete")                                                         \
    X(CG_LIST, "containerGroups.list")                                                             \
    X(CG_LIST_RG, "containerGroups.listByResourceGroup")                                           \
    X(CG_START, "containerGroups.start")                                                           \
    X(CG_STOP, "containerGroups.stop")                                                             \
    X(CG_RESTART, "containerGroups.restart")                                                       \
    X(CG_OPSTATUS, "containerGroups.operationStatus")                                              \
    X(CG_OPRESULT, "containerGroups.operationResult")                                              \
    X(CG_LOGS, "containers.listLogs")                                                              \
    X(FS_CREATE, "fileShares.create")                                                              \
    X(FS_GET, "fileShares.get")                                                                    \
    X(FS_UPDATE, "fileShares.update")                                                              \
    X(FS_DELETE, "fileShares.delete")                                                              \
    X(FS_LIST, "fileShares.list")                                                                  \
    X(FS_RESTORE, "fileShares.restore")                                                            \
    X(SA_LISTKEYS, "storageAccounts.listKeys")                                                     \
    X(SA_GET, "storageAccounts.getProperties")                                                     \
    X(PROVIDER_GET, "providers.get")                                                               \
    X(RG_GET, "resourceGroups.get")                                                                \
    X(PERMISSIONS_LIST, "permissions.listForResourceGroup")                                        \
    X(FILE_SERVICE_GET, "fileServices.getServiceProperties")                                       \
    X(USAGE_LIST, "location.listUsage")                                                            \
    X(CAPABILITIES_LIST, "location.listCapabilities")                                              \
    X(RESOURCE_PERMISSIONS_LIST, "permissions.listForResource")                                    \
    X(TOKEN_SECRET, "token.clientSecret")                                                          \
    X(TOKEN_ASSERTION, "token.clientAssertion")                                                    \
    X(TOKEN_INVALID, "token.invalidRequest")                                                       \
    X(TOKEN_IMDS, "token.imds")                                                                    \
    X(CTL_FAULTS, "azsim.faults")                                                                  \
    X(CTL_STATS, "azsim.stats")                                                                    \
    X(CTL_RESOURCES, "azsim.resources")                                                            \
    X(CTL_RESET, "azsim.reset")                                                                    \
    X(CTL_ACI, "azsim.aci")                                                                        \
    X(CTL_STORAGE, "azsim.storage")                                                                \
    X(CTL_PAGING, "azsim.paging")                                                                  \
    X(CTL_SHARES, "azsim.shares")                                                                  \
    X(CTL_ACCOUNTS, "azsim.accounts")                                                              \
    X(CTL_REGENERATE_KEY, "azsim.regenerateKey")                                                   \
    X(CTL_ARM, "azsim.arm")

enum {
#define AZSIM__X(id, name) AZSIM__OP_##id,
    AZSIM__OPS(AZSIM__X)
#undef AZSIM__X
        AZSIM__OP_COUNT
};

extern const char *const azsim__op_names[AZSIM__OP_COUNT];

typedef struct azsim__stat {
    int status;
    uint64_t n;
} azsim__stat_t;

typedef struct azsim__deleted {
    char kind; /* 'g'roup or 's'hare */
    char *id;
    int64_t at_wall;
} azsim__deleted_t;

struct azsim {
    azsim_opts_t o; /* deep copy; lists owned */
    uint64_t mono0; /* clock at creation */
    int64_t wall0;  /* wall ms at creation */
    unsigned char token_key[32];
    /* The last token that passed the Bearer check: clients reuse one
     * token for many calls, so its signature is checked once. */
    char *tok_last;
    int64_t tok_last_exp_ms;
    char tok_last_app[80];
    char tok_last_tenant[80];
    azsim__table_t groups, shares, ops, subs, regions;
    azsim__table_t accounts;      /* azsim__account_t by lower-cased name */
    azsim__table_t labels;        /* azsim__label_t by lower-cased FQDN */
    azsim_aci_opts_t aci;         /* in force: the config's, or the control API's */
    azsim_storage_opts_t storage; /* ... and so are these three */
    azsim_paging_opts_t paging;
    azsim_arm_opts_t arm; /* in force: the config's, or the control API's */
    size_t page_size;
    azsim__heap_t events;
    uint64_t rng_faults, rng_ids, rng_pulls;
    uint64_t ip_counter;
    uint64_t etag_counter;
    azsim_faults_t faults;
    azsim__stat_t stats[AZSIM__OP_COUNT][16];
    size_t nstats[AZSIM__OP_COUNT];
    azsim__deleted_t *deleted;
    size_t ndeleted, capdeleted;
};

/* The context of one request while it is handled. */
#define AZSIM__MAX_SEGS 16
typedef struct azsim__rq {
    azsim_t *sim;
    const http_request_t *req;
    azsim_resp_t *resp;
    int op;
    uint64_t now;                     /* clock ms */
    int64_t wall;                     /* wall ms */
    const char *seg[AZSIM__MAX_SEGS]; /* decoded path segments */
    size_t nseg;
    char segbuf[4096];
    char api_version[64];
    char base[320];         /* "http://host:port" of this server as the client sees it */
    const char *sub;        /* from the path, or NULL */
    char client_app[80];    /* the token's appid, for throttling messages */
    char client_tenant[80]; /* the token's tid (DNS label hashes) */
} azsim__rq_t;

/* A DNS name held by a container group (the key is the FQDN). */
typedef struct azsim__label {
    azsim__ent_t e;
    char *owner; /* the holding group's table key (owned) */
} azsim__label_t;

/* ---- helpers (azsim_util.c) -------------------------------------------- */

/* The next number of the splitmix64 generator whose state is *state. */
uint64_t azsim__rng_next(uint64_t *state);
/* Uniform in [0, 1). */
double azsim__rng_unit(uint64_t *state);
/* A version-4-shaped UUID from the id generator. */
void azsim__uuid(azsim_t *sim, char out[37]);

/* The model's clock in ms: the clock of the options, or the monotonic one. */
uint64_t azsim__now(const azsim_t *sim);
/* The wall time in ms (for timestamps) of a reading of the model's clock. */
int64_t azsim__wall_of(const azsim_t *sim, uint64_t clock_ms);

/* Lower-cases s in place; returns s. */
char *azsim__lower(char *s);
/* Whether a equals b, or s starts with prefix, ignoring ASCII case. */
int azsim__ieq(const char *a, const char *b);

/* ---- azsim_registry.c ---- */
/* Validates aci.registries (see azsim_aci_opts_t) and returns a copy in
 * *out (owned); -1 with err filled when it is wrong. */
int azsim__registries_parse(const cJSON *j, cJSON **out, char *err, size_t errlen);
/* The registries as GET /_azsim/aci shows them (passwords as "<set>"). */
cJSON *azsim__registries_json(const cJSON *regs);
/* 1 when the pull of `image` by group g must fail: its registry is a
 * configured private one and g's spec holds no credential it accepts. */
int azsim__registry_denies(const azsim_t *sim, const azsim__group_t *g, const char *image);
/* The emulated cloud's authority host (for WWW-Authenticate). */
const char *azsim__cloud_authority(const azsim_t *sim);
/* 1 when `resource` (a scope without "/.default", or an IMDS resource)
 * is the emulated cloud's Resource Manager. */
int azsim__cloud_resource_ok(const azsim_t *sim, const char *resource);
/* The azure_cloud_at index of cloud `name`, or -1. */
int azsim__cloud_index(const char *name);
int azsim__istarts(const char *s, const char *prefix);

/*
 * Finds parameter `name` in an application/x-www-form-urlencoded string
 * (a query string or a form body), percent-decoding name and value ('+'
 * is a blank). Returns the value length, -1 when absent, -2 when it does
 * not fit or is badly encoded.
 */
int azsim__param(const char *qs, const char *name, char *out, size_t outlen);

/* Adds a header whose value is formatted (and owned by the answer). */
void azsim__header(azsim_resp_t *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An ARM error answer {"error":{"code","message"}}. */
void azsim__arm_error(azsim_resp_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets a JSON body from a cJSON tree (borrowed). */
void azsim__json_body(azsim_resp_t *r, int status, const cJSON *j);

/* Base64 (standard alphabet, padded) and base64url (no padding). */
void azsim__b64(d8_buf_t *b, const unsigned char *in, size_t n, int url);
/* Decodes base64url (padding optional); -1 on bad input. */
int azsim__b64url_decode(const char *in, size_t n, d8_buf_t *out);

/*
 * Whether s is a valid name: of a container group (any case), a file
 * share, a storage account, or a metadata key (a C identifier).
 */
int azsim__valid_cg_name(const char *s);
int azsim__valid_share_name(const char *s);
int azsim__valid_account_name(const char *s);
int azsim__valid_c_identifier(const char *s);

/* Records a finished request in the statistics. */
void azsim__stat(azsim_t *sim, int op, int status);
/* Adds to the deletions /_azsim/stats lists: a 'g'roup or 's'hare, its
 * id (copied) and when it went. */
void azsim__record_deleted(azsim_t *sim, char kind, const char *id, int64_t at_wall);

/* ---- parts of the model ------------------------------------------------- */

/* azsim_aci.c */
/* Answers a container group operation that the pipeline let through. */
void azsim__aci_route(azsim__rq_t *q);
/* Free a group or an operation already out of its table; NULL is a no-op.
 * A group's DNS name must have been released (azsim__label_release). */
void azsim__group_free(azsim__group_t *g);
void azsim__op_free(azsim__op_t *op);
/* The operation of that id (any case), or NULL. */
azsim__op_t *azsim__find_op(azsim_t *sim, const char *id);
/* Marks op failed with an ARM error code and message (copied), unless it
 * already ended otherwise. */
void azsim__op_fail(azsim__op_t *op, const char *code, const char *msg);

/* azsim_aci_view.c */
/* Names of a provisioningState and an instanceView state. */
const char *azsim__prov_name(int p);
const char *azsim__power_name(int p);
/* The stored form of a PUT body (borrowed): the accepted fields, read-only
 * ones dropped, ACI's defaults made explicit. Owned by the caller. */
cJSON *azsim__stored_spec(const cJSON *body, const char *location);
/* Renders a group; mode 'g'et, 'l'ist item, 'f'ull (secrets included). */
cJSON *azsim__group_json(azsim_t *sim, const azsim__group_t *g, int mode, uint64_t now);

/* azsim_aci_run.c: deployments and the containers' lives */
/* The one place a group's provisioningState or instanceView state
 * changes (-1 keeps a value); transitions are logged at debug level. */
void azsim__set_state(azsim__group_t *g, int prov, int power);
/*
 * Starts a deployment of g at clock ms now: prov (Creating or Updating,
 * -1 keeps it) and instance state Pending, the images pulled by their
 * rules, then Running (or Failed). Returns the clock ms at which the
 * deployment settles, for the operation that tracks it.
 */
uint64_t azsim__deploy(azsim_t *sim, azsim__group_t *g, int prov, uint64_t now);
/* Restarts the running containers of g in place (restartCount, events). */
void azsim__restart_in_place(azsim_t *sim, azsim__group_t *g, uint64_t now);
/* Stops g: every container terminated, the IP released, pending
 * deployment and run events made stale. */
void azsim__stop_containers(azsim_t *sim, azsim__group_t *g, uint64_t now);
/* Re-reads restartPolicy and the cpu requests of g's spec. */
void azsim__read_spec_facts(azsim__group_t *g);
/* Applies a due event of a group; stale ones do nothing. */
void azsim__aci_apply_event(azsim_t *sim, const azsim__event_t *ev);

/* azsim_aci_probe.c: probes, the IDE behind them, and container logs */
/* Reads the first container's probes from the spec of g. */
void azsim__probe_read(azsim__group_t *g, const cJSON *container_props);
/* A run of g ended at clock ms due with exit code `code` (detail
 * "Error" or "Completed"): restarted after a back-off by the restart
 * policy, or the group is done (azsim_aci_run.c). */
void azsim__run_ended(azsim_t *sim, azsim__group_t *g, uint64_t due, int code);
/* Records an event in list (an array of a container's or the group's
 * events): a repeat of the same name and message counts up and moves
 * lastTimestamp, as ACI merges them; at most 32 kept, oldest out. */
void azsim__note(cJSON *list, const char *name, const char *type, const char *msg, int64_t wall);
/* A run started at clock ms due: schedules its first probe. */
void azsim__probe_schedule(azsim_t *sim, azsim__group_t *g, uint64_t due);
/* The probes of g's current run are due at clock ms due. */
void azsim__probe_run(azsim_t *sim, azsim__group_t *g, uint64_t due);
/* Appends a line to the first container's log (bounded, oldest out). */
void azsim__log_line(azsim__group_t *g, int64_t wall, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* containers/{name}/logs: GET with tail, the Logs {content} answer. */
void azsim__aci_logs(azsim__rq_t *q);

/* azsim_aci_admit.c: what Azure checks before it accepts a request */
/* The first image rule matching image, or NULL. Borrowed from sim. */
const azsim_image_rule_t *azsim__image_rule(const azsim_t *sim, const char *image);
/* Whether the request's subscription has Microsoft.ContainerInstance
 * registered; otherwise answers 409 MissingSubscriptionRegistration. */
int azsim__aci_registered(azsim__rq_t *q);
/*
 * Checks a PUT body (borrowed, validated) of a new group in location:
 * capacity, the ContainerGroups and StandardCores quotas, and images the
 * registry refuses. Returns 1, or answers the error and returns 0.
 */
int azsim__admit_create(azsim__rq_t *q, const cJSON *body, const char *location);
/* Checks a PUT body of an existing group g: properties ACI cannot update
 * (osType, restartPolicy, resources, network profile) and refused images.
 * Returns 1, or answers the error and returns 0. */
int azsim__admit_update(azsim__rq_t *q, const azsim__group_t *g, const cJSON *body);
/*
 * The FQDN a PUT body (borrowed) asks for: the label, the hash of its
 * autoGeneratedDomainNameLabelScope, the region. g is the existing group
 * or NULL. Returns 1 with *fqdn (owned, NULL without a label) and *hash
 * (owned, NULL when unhashed); or answers 400 DnsNameLabelAlreadyTaken
 * (status configurable) when another group holds that name, and returns 0.
 */
int azsim__label_claim(azsim__rq_t *q, const azsim__group_t *g, const char *key, const cJSON *body,
                       const char *location, char **fqdn, char **hash);
/* Makes g hold fqdn and hash (taken; NULL for none), releasing what it
 * held before. */
void azsim__label_take(azsim_t *sim, azsim__group_t *g, char *fqdn, char *hash);
/* Releases g's DNS name, if any. */
void azsim__label_release(azsim_t *sim, azsim__group_t *g);

/* azsim_aci_opts.c */
/* Fills the defaults of azsim.h; copies (deep) and frees a set. */
void azsim__aci_opts_init(azsim_aci_opts_t *o);
void azsim__aci_opts_copy(azsim_aci_opts_t *dst, const azsim_aci_opts_t *src);
void azsim__aci_opts_release(azsim_aci_opts_t *o);
/*
 * Applies the JSON object j (borrowed; the form of the config's `aci:`
 * section) to o: given keys replace, lists as a whole. Returns 0, or -1
 * with "key: what is wrong" in err and *at the offending node; o may then
 * be partly changed (callers apply to a scratch copy).
 */
int azsim__aci_opts_parse(azsim_aci_opts_t *o, const cJSON *j, const cJSON **at, char *err,
                          size_t errlen);
/* The settings of o as JSON (the form azsim__aci_opts_parse reads). */
cJSON *azsim__aci_opts_json(const azsim_aci_opts_t *o);

/* azsim_aci_validate.c */
/*
 * Checks a container group PUT body (borrowed). Returns 1 when it is
 * valid; otherwise answers 400 in r and returns 0.
 */
int azsim__validate_group(const cJSON *b, azsim_resp_t *r);
/*
 * Checks a container group PATCH body, which may change only tags and
 * zones. Returns 1 with *tags and *zones borrowed from b (NULL when
 * absent); otherwise answers 400 in r and returns 0.
 */
int azsim__validate_group_patch(const cJSON *b, azsim_resp_t *r, const cJSON **tags,
                                const cJSON **zones);

/* azsim_faults.c */
/*
 * Applies the JSON object j (borrowed; the form of POST /_azsim/faults
 * and the config's `faults:`) to f: given fields replace. Returns 0, or
 * -1 with "key: what is wrong" in err and *at the offending node; f may
 * then be partly changed (callers apply to a scratch copy).
 */
int azsim__faults_parse(azsim_faults_t *f, const cJSON *j, const cJSON **at, char *err,
                        size_t errlen);
/* The faults of f as JSON (the form azsim__faults_parse reads). */
cJSON *azsim__faults_json(const azsim_faults_t *f);
/* Rolls the faults answered before the token is checked (reset, 500,
 * 503, 429); 1 when one was answered. */
int azsim__inject_fault(azsim__rq_t *q);
/* Rolls the 403 fault of an ARM call of type cls ('r', 'w', 'd'); 1 when
 * it answered 403 AuthorizationFailed. */
int azsim__authz_fault(azsim__rq_t *q, int cls);

/* azsim_storage_opts.c */
/* Fills the defaults of azsim.h; copies (deep) and frees a set. */
void azsim__storage_opts_init(azsim_storage_opts_t *o);
void azsim__storage_opts_copy(azsim_storage_opts_t *dst, const azsim_storage_opts_t *src);
void azsim__storage_opts_release(azsim_storage_opts_t *o);
/*
 * Applies the JSON object j (borrowed; the form of the config's
 * `storage:` and of POST /_azsim/storage) to o: given keys replace, lists
 * as a whole. Returns 0, or -1 with "key: what is wrong" in err and *at
 * the offending node; o may then be partly changed.
 */
int azsim__storage_opts_parse(azsim_storage_opts_t *o, const cJSON *j, const cJSON **at, char *err,
                              size_t errlen);
/* The settings of o as JSON (the form azsim__storage_opts_parse reads). */
cJSON *azsim__storage_opts_json(const azsim_storage_opts_t *o);
/* As azsim__storage_opts_parse for `paging:` (pageSize into *page_size). */
int azsim__paging_parse(azsim_paging_opts_t *p, size_t *page_size, const cJSON *j, const cJSON **at,
                        char *err, size_t errlen);
cJSON *azsim__paging_json(const azsim_paging_opts_t *p, size_t page_size);
/* The settings in force of the account of that name (any case): the
 * listed ones, or those of an unlisted account. Borrowed from sim. */
const azsim_account_opts_t *azsim__account_opts(const azsim_t *sim, const char *name);
/* Whether the account's SKU is a premium one (provisioned shares). */
int azsim__account_premium(const azsim_account_opts_t *a);

/* azsim_paging.c */
typedef struct azsim__page {
    uint64_t after; /* list what was inserted after this sequence number */
    size_t size;    /* items per page */
    int empty_now;  /* answer the empty first page (paging.emptyPages) */
} azsim__page_t;
/* Reads the request's $skipToken (or $skiptoken) into pg. Returns 1, or
 * answers 400 InvalidSkipToken and returns 0. */
int azsim__page_start(azsim__rq_t *q, azsim__page_t *pg);
/* Appends ,"nextLink":"..." to b: the request's URL with api-version,
 * then extra (more "&name=value", encoded; may be NULL), then a
 * $skipToken that continues after sequence number after. */
void azsim__page_next_link(azsim__rq_t *q, d8_buf_t *b, const char *extra, uint64_t after);

/* azsim_storage.c */
/* Answers StorageAccounts_GetProperties and ListKeys. */
void azsim__account_route(azsim__rq_t *q);
/* Whether q->seg[7] is a valid storage account name; otherwise answers
 * 400 AccountNameInvalid and returns 0. */
int azsim__check_account(azsim__rq_t *q);
/* The model's state of an account (created on first use). */
azsim__account_t *azsim__account_state(azsim_t *sim, const char *name);
/*
 * Whether a share of account q->seg[7] may take quota GiB: Premium from
 * 100, Standard up to 5120, or 102400 with large file shares. Returns 1,
 * or answers 400 InvalidHeaderValue (as observed) and returns 0.
 */
int azsim__quota_fits(azsim__rq_t *q, int quota);
/*
 * Whether a management lock forbids the request's 'd'elete or 'w'rite on
 * the account q->seg[7] or on share s (NULL: the account only). Returns
 * 0, or answers 409 ScopeLocked and returns 1.
 */
int azsim__locked(azsim__rq_t *q, const azsim__share_t *s, int what);
/* POST /_azsim/shares, /_azsim/accounts and /_azsim/regenerateKey. */
void azsim__ctl_shares(azsim__rq_t *q);
void azsim__ctl_accounts(azsim__rq_t *q);
void azsim__ctl_regenerate_key(azsim__rq_t *q);

/* azsim_files.c */
/* Answers a file share operation that the pipeline let through. */
void azsim__files_route(azsim__rq_t *q);
/* Purges a soft-deleted share once its event is due, unless restored since. */
void azsim__files_apply_event(azsim_t *sim, const azsim__event_t *ev);
/* mode 'g'et (metadata), 'l'ist (no metadata), 'm' list with metadata,
 * 'd' deleted item. */
cJSON *azsim__share_json(const azsim__share_t *s, int mode);
/* Frees a share already out of its table; NULL is a no-op. */
void azsim__share_free(azsim__share_t *s);
/* The storage account key number n (1 or 2) in force, 88 base64
 * characters (azsim_storage.c). */
void azsim__account_key(const azsim_t *sim, const char *account, int n, char out[96]);
/* The live share `name` of storage account `account`, preferring the
 * given subscription and resource group; NULL when none. */
azsim__share_t *azsim__find_share(azsim_t *sim, const char *sub, const char *rg,
                                  const char *account, const char *name);

/* azsim_token.c */
/* Entra ID's token endpoint of tenant: client credentials with a secret or
 * a client assertion; a token, or the error Entra ID would answer. */
void azsim__token_endpoint(azsim__rq_t *q, const char *tenant);
/* The IMDS token endpoint of managed identity; a token or an IMDS error. */
void azsim__imds_endpoint(azsim__rq_t *q);
/*
 * Checks the Authorization header of an ARM call. Returns 1 when valid;
 * otherwise answers 401 with the ARM error and returns 0.
 */
int azsim__check_bearer(azsim__rq_t *q);

/* azsim_control.c */
/* Answers a call of the /_azsim control API whose operation classify set;
 * bad_method: the path is known but the method is not. */
void azsim__control(azsim__rq_t *q, int bad_method);

/* azsim.c */
/* Empties the model as azsim_new left it, keeping the options and the
 * token key. */
void azsim__reset(azsim_t *sim);
/* Whether a name is allowed by a restriction list (empty: any). */
int azsim__allowed(char *const *list, size_t n, const char *name);
/*
 * Charges the ARM bucket for the request's method ('r'ead, 'w'rite,
 * 'd'elete) of subscription sub. Returns 1, or answers 429 and returns 0.
 * azsim_handle adds the x-ms-ratelimit-remaining-* headers either way.
 */
int azsim__throttle_arm(azsim__rq_t *q, int cls);
/* Charges ACI's regional create ('c') or delete ('d') quota; 1 or 429. */
int azsim__throttle_aci(azsim__rq_t *q, const char *location, int cls);
/* Checks api-version against a NULL-terminated list; 1, or answers 400. */
int azsim__check_api_version(azsim__rq_t *q, const char *const *accepted);
/* Builds "<base><path>?api-version=<v>" into b; callers append the rest. */
void azsim__url(const azsim__rq_t *q, d8_buf_t *b, const char *path);

/* ---- preflight's reads (azsim_arm.c) ------------------------------------ */

/* Defaults, deep copy, release, the JSON reader (config `arm:` and POST
 * /_azsim/arm; all or nothing is the caller's: parse into a copy) and the
 * JSON form of azsim_arm_opts_t. */
void azsim__arm_opts_init(azsim_arm_opts_t *o);
void azsim__arm_opts_copy(azsim_arm_opts_t *dst, const azsim_arm_opts_t *src);
void azsim__arm_opts_release(azsim_arm_opts_t *o);
int azsim__arm_opts_parse(azsim_arm_opts_t *o, const cJSON *j, const cJSON **at, char *err,
                          size_t errlen);
cJSON *azsim__arm_opts_json(const azsim_arm_opts_t *o);
/* 1 when namespace ns is registered (not in arm.unregisteredProviders);
 * else answers 409 MissingSubscriptionRegistration and returns 0. */
int azsim__provider_registered(azsim__rq_t *q, const char *ns);
/* Answers the read q->op names (AZSIM__OP_PROVIDER_GET ... _CAPABILITIES_LIST). */
void azsim__arm_read_route(azsim__rq_t *q);

#endif
