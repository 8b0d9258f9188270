/*
 * pkg/azure: the Azure Resource Manager client of dev8-agent.
 *
 * One client per process, driven by the caller's libuv loop. Every HTTP
 * exchange (ARM and token endpoints) goes through one curl multi handle run
 * by curl_multi_socket_action: a uv_poll per socket, one uv_timer for
 * curl's timeouts, one uv_timer for this module's scheduler. Nothing here
 * blocks the loop. Connections are kept alive and reused.
 *
 * How to call it (the reconciler's view):
 *
 *   azure_client_opts_t o = {...};                  // every required field set
 *   if (azure_client_new(loop, &o, &az, err, sizeof err) < 0) ...
 *   azure_scope_t s = {sub, rg, account, "eastus"};
 *   azure_group_get(az, &s, "dev8-ckx1", AZURE_PRIO_NORMAL, on_group, key);
 *   ...
 *   static void on_group(void *ud, const azure_result_t *res,
 *                        const azure_group_t *g) {
 *       if (res->err == D8_ENOENT) ...   // absent
 *       else if (res->err < 0) ...       // res->error_code / error_message
 *       else ... g->provisioning_state, g->instance_state, tags ...
 *   }
 *
 * Contract shared by every asynchronous operation:
 * - It returns 0 when accepted: the callback then runs exactly once, always
 *   later from the loop (never from inside the call). It returns a negative
 *   D8_* error when the arguments are unusable (D8_EINVAL) or the client is
 *   being freed (D8_ECANCELED); the callback is then never called.
 * - Every pointer argument is borrowed for the duration of the call only:
 *   the client copies what it needs (request bodies are built at once).
 * - Everything handed to a callback (result, decoded resource, list) is
 *   borrowed for the duration of the callback; copy what must outlive it.
 * - res->err mapping: 0 success (2xx); D8_ENOENT 404; D8_ECONFLICT 409/412;
 *   D8_EAUTH 401 (after one token refresh) / 403 / no credential could be
 *   obtained; D8_EINVAL other 4xx; D8_EAGAIN 429 still answered after the
 *   last attempt; D8_EIO 5xx after the last attempt, connection errors,
 *   unexpected statuses; D8_ETIMEDOUT the last attempt timed out;
 *   D8_EPARSE a 2xx body that could not be decoded; D8_ETOOBIG an answer
 *   over 64 MiB; D8_ECANCELED the client was freed first.
 * - Retries (connection errors, timeouts, 408, 429, 500, 502, 503, 504) and
 *   a single token refresh on 401 happen inside; the callback sees the
 *   final outcome and the number of attempts. A Retry-After also pauses
 *   the bucket of the meter that answered: a 429 of ARM
 *   (SubscriptionRequestsThrottled) the subscription's ARM bucket of the
 *   request's kind; a 429 of ACI's create/delete meters (a container
 *   group PUT or DELETE answered TooManyRequests, or with a message naming
 *   container groups) only that region's ACI buckets.
 *
 * Long-running operations (group PUT answering 201, DELETE 202, start 202)
 * complete as soon as ARM accepts them: res->accepted is 1 and
 * res->retry_after_ms / res->async_operation / res->location carry what ARM
 * said. The caller observes the outcome with a later GET; nothing here
 * waits for an operation to finish.
 *
 * Secrets (client secret, federated assertion, tokens, storage keys,
 * secure environment values) are never logged, never placed in an error
 * message (ARM messages are scrubbed of the request's secret values) and
 * are wiped from this module's buffers when released.
 */
#ifndef D8_AZURE_H
#define D8_AZURE_H

#include "base/base.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct azure_client azure_client_t;

/* Queue priority when more than maxInflight requests are pending: strictly
 * by priority, FIFO within one priority. */
typedef enum azure_prio {
    AZURE_PRIO_HIGH = 0,   /* user-facing mutations (create, start, stop) */
    AZURE_PRIO_NORMAL = 1, /* reconcile observations */
    AZURE_PRIO_LOW = 2,    /* resync lists, reaper */
} azure_prio_t;
#define AZURE_PRIO_COUNT 3

/*
 * The client-side throttle buckets, mirroring the meters of ARM and ACI.
 * ARM meters reads, writes and deletes per subscription and principal in
 * the ARM instance that serves the caller, not per region of the
 * resources: the READ, WRITE and DELETE buckets are one set per
 * subscription, shared by all its regions. ACI meters container group
 * creates and deletes per subscription and region: the ACI buckets are
 * one set per subscription+region (azure_scope_t.region).
 */
typedef enum azure_bucket_kind {
    AZURE_BUCKET_READ = 0,
    AZURE_BUCKET_WRITE,
    AZURE_BUCKET_DELETE,
    AZURE_BUCKET_ACI_CREATE,        /* container group PUTs, on top of WRITE (5 min window) */
    AZURE_BUCKET_ACI_DELETE,        /* container group DELETEs, on top of DELETE (5 min window) */
    AZURE_BUCKET_ACI_CREATE_HOURLY, /* the same PUTs, hourly window */
    AZURE_BUCKET_ACI_DELETE_HOURLY, /* the same DELETEs, hourly window */
} azure_bucket_kind_t;
#define AZURE_BUCKET_KINDS 7
/* The hourly twin of an ACI bucket kind. */
#define AZURE_BUCKET_HOURLY(k) ((k) + 2)

typedef enum azure_auth_kind {
    AZURE_AUTH_AUTO = 0, /* workload identity if AZURE_FEDERATED_TOKEN_FILE is
                            set, else client secret if AZURE_CLIENT_SECRET is
                            set, else managed identity */
    AZURE_AUTH_CLIENT_SECRET,
    AZURE_AUTH_WORKLOAD_IDENTITY,
    AZURE_AUTH_MANAGED_IDENTITY,
} azure_auth_kind_t;

/* Parses "auto|clientSecret|workloadIdentity|managedIdentity"; 0 or D8_EINVAL. */
int azure_auth_kind_parse(const char *name, azure_auth_kind_t *out);
/* The configuration name of a kind ("clientSecret"); never NULL. */
const char *azure_auth_kind_name(azure_auth_kind_t kind);

typedef struct azure_bucket_opts {
    double burst;      /* capacity in requests */
    double per_second; /* refill rate */
} azure_bucket_opts_t;

/*
 * Client options. Every string is borrowed for the azure_client_new call
 * only (copied).
 *
 * The fields marked "required" have no default here: the caller sets every
 * one (dev8-agent takes them from its configuration, which holds their
 * defaults), and azure_client_new fails with D8_EINVAL naming the first
 * one missing. The others are the client's own tuning: zero or NULL takes
 * the value named beside them.
 */
typedef struct azure_client_opts {
    const char *arm_endpoint;        /* required: ARM's base URL */
    const char *authority_host;      /* required: Entra ID's base URL; for
                                        workload identity env AZURE_AUTHORITY_HOST
                                        (set by the AKS webhook) wins when set */
    const char *imds_endpoint;       /* required: the managed identity endpoint */
    const char *aci_api_version;     /* required */
    const char *storage_api_version; /* required */
    const char *token_scope;         /* the cloud's (cloud.h); default the public cloud's */
    const char *token_resource;      /* IMDS; default: token_scope's resource */
    azure_auth_kind_t auth;          /* AZURE_AUTH_AUTO is 0 */
    /* Credential inputs; NULL = read the environment variable of the same
     * name (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET,
     * AZURE_FEDERATED_TOKEN_FILE) at azure_client_new. */
    const char *tenant_id;
    const char *client_id;
    const char *client_secret;
    const char *federated_token_file;
    int max_inflight;            /* required: requests on the wire at once */
    uint64_t connect_timeout_ms; /* 5000 */
    uint64_t request_timeout_ms; /* 30000 per attempt */
    int max_attempts;            /* 5 (first try included) */
    uint64_t backoff_base_ms;    /* 1000: d8_backoff_ms, in [d/2, d), d = min(cap, base*2^n) */
    uint64_t backoff_cap_ms;     /* 30000 */
    /* Required, every kind (burst and rate above 0). An ACI request needs
     * a token of its kind and of its hourly twin (AZURE_BUCKET_HOURLY). */
    azure_bucket_opts_t buckets[AZURE_BUCKET_KINDS];
    uint64_t storage_key_ttl_ms; /* 3600000 */
    size_t max_pages;            /* 1000: a list longer than that fails */
    /* When x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}
     * or its -global- twin (the lower of the two counts) falls to this
     * many or fewer, the matching ARM bucket is drained to that figure so
     * the client slows to its refill rate. Default 10. */
    int remaining_low_water;
} azure_client_opts_t;

/*
 * Creates a client on `loop` (borrowed; must outlive the client). Resolves
 * the credential kind now; a kind whose inputs are missing fails here with
 * D8_EINVAL and one line in err (never a secret). No I/O is started until
 * the first operation (or azure_token_acquire).
 */
int azure_client_new(uv_loop_t *loop, const azure_client_opts_t *opts, azure_client_t **out,
                     char *err, size_t errlen);

/*
 * Loop-safe teardown. Every pending operation's callback runs with
 * D8_ECANCELED before this returns (so the caller may free its own state
 * right after). Handles are closed and the memory released in their close
 * callbacks: run the loop afterwards (uv_run until it has nothing left)
 * before closing it. May be called from inside a client callback. NULL is
 * a no-op.
 */
void azure_client_free(azure_client_t *c);

/* The credential kind in use (after AUTO was resolved). */
azure_auth_kind_t azure_client_auth_kind(const azure_client_t *c);
/* Operations accepted and not yet completed (for shutdown grace). */
size_t azure_client_pending(const azure_client_t *c);
/* 1 once an ARM token was obtained at least once (for /readyz). */
int azure_client_has_token(const azure_client_t *c);

/* ------------------------------------------------------------------ */
/* Results and decoded resources                                       */

typedef struct azure_result {
    int err;                       /* 0 or D8_* (mapping above) */
    int http_status;               /* final status; 0 when no answer arrived */
    const char *error_code;        /* ARM code ("ResourceNotFound"), "" if none */
    const char *error_message;     /* human text, "" if none; secret-free */
    const char *request_id;        /* x-ms-request-id of the last answer, "" */
    const char *client_request_id; /* the x-ms-client-request-id we sent, "" */
    int attempts;                  /* HTTP attempts made (0 if none) */
    uint64_t duration_ms;          /* from acceptance to this callback */
    int accepted;                  /* 201/202: a long-running operation runs on */
    int64_t retry_after_ms;        /* Retry-After of the final answer, -1 if none */
    const char *async_operation;   /* Azure-AsyncOperation URL, "" if none */
    const char *location;          /* Location URL, "" if none */
} azure_result_t;

/* A string map decoded from JSON (tags, metadata). Owned by its parent. */
typedef struct azure_map {
    size_t n;
    char **keys;
    char **values;
} azure_map_t;

/* The value for key (exact match), or NULL. */
const char *azure_map_get(const azure_map_t *m, const char *key);

/* An instance-view event of a container or group (ACI spec `Event`). */
typedef struct azure_event {
    char *name; /* Pulling, Pulled, Started, Failed, BackOff, Unhealthy, Killing, ... */
    char *type; /* Normal or Warning */
    char *message;
    int count;
    int64_t first_ms, last_ms; /* firstTimestamp, lastTimestamp (wall ms, 0 = absent) */
} azure_event_t;

/*
 * The instance view of the group's first container (the workspace), as a
 * GET shows it. Strings owned, NULL when absent; times are wall ms, 0 when
 * absent.
 */
typedef struct azure_container_view {
    int present;        /* the GET carried the container's instanceView */
    char *name;         /* the container's name */
    char *state;        /* currentState.state: Waiting, Running, Terminated */
    char *detail;       /* currentState.detailStatus */
    int restart_count;  /* restartCount */
    int64_t start_ms;   /* currentState.startTime */
    int has_exit;       /* currentState is Terminated with an exitCode */
    int exit_code;      /* ... that code */
    int has_prev;       /* previousState is Terminated with an exitCode */
    int prev_exit_code; /* ... that code */
    int64_t prev_finish_ms;
    azure_event_t *events; /* oldest first, as Azure lists them */
    size_t nevents;
} azure_container_view_t;

/* The newest lastTimestamp of c's events named `name` whose message starts
 * with `prefix` (NULL: any), and that event (NULL when none). Pure. */
const azure_event_t *azure_view_last_event(const azure_container_view_t *c, const char *name,
                                           const char *prefix);
/* Parses an RFC 3339 time ("2026-01-02T03:04:05.123Z", offsets allowed)
 * into wall ms; 0 when it is not one. */
int64_t azure_parse_time(const char *s);

/* A container group as read back (only the fields dev8-agent uses). Every
 * string is owned by the struct, NULL when Azure did not send it. */
typedef struct azure_group {
    char *id;
    char *name;
    char *location;
    char *provisioning_state; /* Creating|Pending|Succeeded|Failed|... */
    char *instance_state;     /* properties.instanceView.state (GET only) */
    char *ip;                 /* properties.ipAddress.ip */
    char *fqdn;               /* properties.ipAddress.fqdn */
    azure_map_t tags;
    /* When provisioningState is Failed: the group's instanceView event
     * messages (else the containers' non-Normal events), "; "-joined. */
    char *failure_message;
    /* Sums of the containers' resources.requests (cpu cores, memoryInGB):
     * the size the group really has; 0 when absent. */
    double cpu_cores;
    double memory_gb;
    /* The first container's instance view (GET only) and the group's own
     * instance-view events. */
    azure_container_view_t container;
    azure_event_t *group_events;
    size_t ngroup_events;
} azure_group_t;

typedef struct azure_group_list {
    azure_group_t *items;
    size_t n;
} azure_group_list_t;

/* A file share as read back. */
typedef struct azure_share {
    char *id;
    char *name;
    int quota_gb;     /* properties.shareQuota, -1 when absent */
    int has_metadata; /* properties.metadata was present */
    azure_map_t metadata;
    int deleted; /* properties.deleted (soft-deleted listings) */
} azure_share_t;

typedef struct azure_share_list {
    azure_share_t *items;
    size_t n;
} azure_share_list_t;

/* A storage account as read back (StorageAccounts_GetProperties): what
 * decides which shares it can hold. Strings owned by the struct, NULL
 * when Azure did not send them. */
typedef struct azure_storage_account {
    char *id;
    char *name;
    char *location;
    char *kind;                    /* StorageV2|FileStorage|Storage|... */
    char *sku_name;                /* sku.name: Standard_LRS|Premium_LRS|... */
    char *large_file_shares_state; /* properties.largeFileSharesState:
                                      Enabled|Disabled */
} azure_storage_account_t;

/* The status of a long-running operation, read at its Azure-AsyncOperation
 * URL. Strings owned by the struct, NULL when absent. */
typedef struct azure_operation {
    char *status;        /* InProgress|Succeeded|Failed|Canceled */
    char *error_code;    /* error.code (Failed/Canceled) */
    char *error_message; /* error.message */
} azure_operation_t;

/* Free what a decoder filled in and zero the struct (the struct itself is
 * the caller's); NULL is a no-op. */
void azure_group_release(azure_group_t *g);
void azure_operation_release(azure_operation_t *op);
void azure_group_list_release(azure_group_list_t *l);
void azure_share_release(azure_share_t *s);
void azure_share_list_release(azure_share_list_t *l);
/* Moves the items of src into dst (which must be empty or released) and
 * leaves src empty: how a list callback keeps what it was given. */
void azure_group_list_take(azure_group_list_t *dst, azure_group_list_t *src);
void azure_share_list_take(azure_share_list_t *dst, azure_share_list_t *src);
void azure_storage_account_release(azure_storage_account_t *a);

/* Callbacks. `ud` is the caller's pointer, passed back untouched. The
 * resource/list pointer is NULL unless res->err is 0 and a body came. A
 * resource is borrowed for the callback; a list is the callee's to take:
 * it may move the items out (azure_*_list_take), else they are released
 * after the callback. */
typedef void (*azure_done_cb)(void *ud, const azure_result_t *res);
typedef void (*azure_group_cb)(void *ud, const azure_result_t *res, const azure_group_t *g);
typedef void (*azure_group_list_cb)(void *ud, const azure_result_t *res, azure_group_list_t *list);
typedef void (*azure_share_cb)(void *ud, const azure_result_t *res, const azure_share_t *s);
typedef void (*azure_share_list_cb)(void *ud, const azure_result_t *res, azure_share_list_t *list);
typedef void (*azure_operation_cb)(void *ud, const azure_result_t *res,
                                   const azure_operation_t *op);
typedef void (*azure_storage_account_cb)(void *ud, const azure_result_t *res,
                                         const azure_storage_account_t *a);

/* ------------------------------------------------------------------ */
/* Operations                                                          */

/* Where a resource lives. All strings borrowed for the call. Names are
 * checked against ARM's character sets (D8_EINVAL otherwise). */
typedef struct azure_scope {
    const char *subscription_id;
    const char *resource_group;
    const char *storage_account; /* shares, keys, and the group's volume */
    const char *region;          /* Azure location, e.g. "eastus": the group's
                                    location and the ACI throttle buckets' key */
} azure_scope_t;

typedef struct azure_kv {
    const char *name;
    const char *value;
} azure_kv_t;

/* What dev8-agent asks ACI for (DESIGN section 4). Borrowed for the call. */
/* An HTTP GET probe of the container (ACI ContainerProbe). */
typedef struct azure_probe {
    const char *path; /* httpGet.path, absolute */
    int port;         /* httpGet.port, 1..65535 */
    int initial_delay_seconds, period_seconds, failure_threshold, timeout_seconds;
} azure_probe_t;

typedef struct azure_group_spec {
    const char *name; /* container group name */
    const azure_kv_t *tags;
    size_t ntags;
    const char *image;
    double cpu;
    double memory_gb;
    const int *ports; /* container and public ports, TCP */
    size_t nports;
    const azure_kv_t *env; /* plain values */
    size_t nenv;
    const azure_kv_t *secure_env; /* sent as secureValue; secret */
    size_t nsecure_env;
    const char *share_name; /* Azure Files share mounted as "workspace" */
    const char *mount_path;
    const char *dns_label; /* ipAddress.dnsNameLabel */
    /* ipAddress.autoGeneratedDomainNameLabelScope, spelled as in the ACI
     * spec: Unsecure, TenantReuse, SubscriptionReuse, ResourceGroupReuse or
     * Noreuse (anything else is D8_EINVAL); NULL or "" sends none, and
     * ACI's default applies. */
    const char *dns_label_scope;
    const char *storage_key; /* NULL: fetched by listKeys (cached) */
    /* A private registry (imageRegistryCredentials[0]); NULL server: none.
     * Either username + password (secret) or identity: the resource id of
     * a user-assigned managed identity, which also goes into the group's
     * identity (type UserAssigned). */
    const char *registry_server;
    const char *registry_username;
    const char *registry_password;
    const char *registry_identity;
    /* subnetIds: a VNet-injected group with ipAddress.type Private and
     * no DNS label (dns_label and dns_label_scope are then not sent). */
    char *const *subnet_ids;
    size_t nsubnet_ids;
    /* The workspace container's probes; NULL: none. */
    const azure_probe_t *readiness_probe;
    const azure_probe_t *liveness_probe;
} azure_group_spec_t;

typedef struct azure_share_spec {
    const char *name;
    int quota_gb;               /* 1..102400 */
    const azure_kv_t *metadata; /* names must be C identifiers */
    size_t nmetadata;
} azure_share_spec_t;

/*
 * Container groups (Microsoft.ContainerInstance, aciApiVersion).
 *
 * azure_group_put: PUT (create or update). When spec->storage_key is NULL
 * the storage account key is obtained first by listKeys (first key, cached
 * per account for storage_key_ttl_ms, single-flight). Callback gets the
 * group of the 200/201 body; 201 sets res->accepted.
 */
int azure_group_put(azure_client_t *c, const azure_scope_t *s, const azure_group_spec_t *spec,
                    azure_prio_t prio, azure_group_cb cb, void *ud);
/* GET: provisioning state, instance view state, ip, fqdn, tags. */
int azure_group_get(azure_client_t *c, const azure_scope_t *s, const char *name, azure_prio_t prio,
                    azure_group_cb cb, void *ud);
/* LIST by resource group. Follows nextLink as given ($skipToken and all)
 * until done and answers once with every item of every page; a page may
 * be empty. The nextLink must have armEndpoint's origin: scheme and host
 * in any case, the port written or not when it is the default one
 * (ARM writes "https://<its host>:443/..."); any other host
 * fails the list with D8_EPARSE, code ForeignNextLink. */
int azure_group_list(azure_client_t *c, const azure_scope_t *s, azure_prio_t prio,
                     azure_group_list_cb cb, void *ud);
/* DELETE (200/204 done, 202 accepted). A 404 is reported as D8_ENOENT. */
int azure_group_delete(azure_client_t *c, const azure_scope_t *s, const char *name,
                       azure_prio_t prio, azure_done_cb cb, void *ud);
/* POST start (202 accepted, 204 done). */
int azure_group_start(azure_client_t *c, const azure_scope_t *s, const char *name,
                      azure_prio_t prio, azure_done_cb cb, void *ud);
/* POST stop (204). */
int azure_group_stop(azure_client_t *c, const azure_scope_t *s, const char *name, azure_prio_t prio,
                     azure_done_cb cb, void *ud);

/* File shares (Microsoft.Storage fileServices/default/shares,
 * storageApiVersion). */
int azure_share_put(azure_client_t *c, const azure_scope_t *s, const azure_share_spec_t *spec,
                    azure_prio_t prio, azure_share_cb cb, void *ud);
int azure_share_get(azure_client_t *c, const azure_scope_t *s, const char *name, azure_prio_t prio,
                    azure_share_cb cb, void *ud);
/* PATCH properties.shareQuota only. */
int azure_share_set_quota(azure_client_t *c, const azure_scope_t *s, const char *name, int quota_gb,
                          azure_prio_t prio, azure_share_cb cb, void *ud);
/* LIST, following nextLink like azure_group_list. With expand_metadata the
 * request carries $expand=metadata. */
int azure_share_list(azure_client_t *c, const azure_scope_t *s, int expand_metadata,
                     azure_prio_t prio, azure_share_list_cb cb, void *ud);
int azure_share_delete(azure_client_t *c, const azure_scope_t *s, const char *name,
                       azure_prio_t prio, azure_done_cb cb, void *ud);

/* A container's log (Logs.content, borrowed; NULL on failure). */
typedef void (*azure_logs_cb)(void *ud, const azure_result_t *res, const char *content);
/* GET .../containerGroups/{group}/containers/{container}/logs?tail=N
 * (Containers_ListLogs): the last `tail` lines (tail <= 0: all Azure
 * keeps, up to 4 MB). Paid from the read bucket. */
int azure_container_logs(azure_client_t *c, const azure_scope_t *s, const char *group,
                         const char *container, int tail, azure_prio_t prio, azure_logs_cb cb,
                         void *ud);

/* GET of the scope's storage account (Microsoft.Storage
 * StorageAccounts_GetProperties, storageApiVersion): its kind, SKU and
 * large file shares state. Paid from the subscription's read bucket. */
int azure_storage_account_get(azure_client_t *c, const azure_scope_t *s, azure_prio_t prio,
                              azure_storage_account_cb cb, void *ud);

/*
 * GET of a long-running operation's status at `url` (res->async_operation
 * of an earlier call), to pick up a failed operation's error. The URL must
 * lie under armEndpoint (same origin as a nextLink; the bearer token goes
 * nowhere else): D8_EINVAL otherwise. Paid from the subscription's read
 * bucket.
 */
int azure_operation_get(azure_client_t *c, const azure_scope_t *s, const char *url,
                        azure_prio_t prio, azure_operation_cb cb, void *ud);

/*
 * The subscription reads of `dev8-agent preflight`: each answers the raw
 * JSON body ARM sent (a list answer has every page's "value" items merged
 * into one {"value":[...]} document, nextLink followed like
 * azure_group_list). Paid from the subscription's read bucket.
 */
typedef enum azure_read {
    AZURE_READ_PROVIDER = 0,     /* Providers_Get of `arg` (a namespace), Resources 2021-04-01 */
    AZURE_READ_RESOURCE_GROUP,   /* ResourceGroups_Get of s->resource_group, 2021-04-01 */
    AZURE_READ_PERMISSIONS,      /* Permissions_ListForResourceGroup, Authorization 2022-04-01 */
    AZURE_READ_STORAGE_ACCOUNT,  /* StorageAccounts_GetProperties, storageApiVersion */
    AZURE_READ_FILE_SERVICE,     /* FileServices_GetServiceProperties (default) */
    AZURE_READ_ACI_USAGES,       /* Location_ListUsage of s->region, aciApiVersion */
    AZURE_READ_ACI_CAPABILITIES, /* Location_ListCapabilities of s->region */
    /* Permissions_ListForResource of `arg`, a resource id under a resource
     * group of s's subscription (a subnet, a managed identity), 2022-04-01 */
    AZURE_READ_RESOURCE_PERMISSIONS,
} azure_read_t;

/* body: borrowed for the callback, NUL-terminated, NULL unless res->err
 * is 0. */
typedef void (*azure_json_cb)(void *ud, const azure_result_t *res, const char *body, size_t len);

/* Starts one read of `what` in scope s (the account is needed for the
 * storage reads, the region for the ACI ones; arg only for
 * AZURE_READ_PROVIDER). The common contract above applies. */
int azure_arm_read(azure_client_t *c, const azure_scope_t *s, azure_read_t what, const char *arg,
                   azure_prio_t prio, azure_json_cb cb, void *ud);

/* Drops the cached key of the scope's storage account (e.g. after a mount
 * failed with an auth error); the next group PUT fetches it again. */
void azure_storage_key_forget(azure_client_t *c, const azure_scope_t *s);

/*
 * Makes sure an ARM token is held: answers at once (from the loop) when a
 * valid one is cached, else after the single in-flight refresh. res->err is
 * D8_EAUTH with the token endpoint's error code/message on failure.
 */
int azure_token_acquire(azure_client_t *c, azure_done_cb cb, void *ud);

/* ------------------------------------------------------------------ */
/* Metrics                                                             */

#define AZURE_HIST_BUCKETS 10
/* Upper bounds in seconds of the duration histogram (+Inf implied). */
extern const double azure_hist_bounds[AZURE_HIST_BUCKETS];

typedef struct azure_stats {
    uint64_t requests;        /* HTTP attempts to ARM */
    uint64_t retries;         /* attempts after the first */
    uint64_t throttle_waits;  /* requests held back by a bucket (once each) */
    uint64_t throttled;       /* 429 answers received */
    uint64_t timeouts;        /* attempts that timed out */
    uint64_t connects;        /* new connections opened (the rest reused one) */
    uint64_t token_refreshes; /* tokens obtained */
    uint64_t token_failures;  /* token requests that finally failed */
    size_t queued;            /* waiting for a slot, a bucket or a backoff */
    size_t inflight;          /* on the wire */
    /* Non-cumulative counts per bound; [AZURE_HIST_BUCKETS] is +Inf. */
    uint64_t duration_counts[AZURE_HIST_BUCKETS + 1];
    double duration_sum_s;
    uint64_t duration_count;
} azure_stats_t;

/* Fills out with the counters and gauges of this client as of now. */
void azure_client_stats(const azure_client_t *c, azure_stats_t *out);
/* Attempts of ARM operation `operation` (an operationId such as
 * "ContainerGroups_Get") answered with `status` (0 = no answer). */
uint64_t azure_client_requests(const azure_client_t *c, const char *operation, int status);
/* Current tokens of a bucket; D8_ENOENT when that bucket was never used.
 * region is ignored for the ARM kinds (one bucket per subscription). */
int azure_client_bucket_level(const azure_client_t *c, const char *subscription, const char *region,
                              azure_bucket_kind_t kind, double *tokens);
/*
 * The milliseconds until a request of bucket `kind` could take its token
 * in subscription+region (region ignored for the ARM kinds), 0 when it
 * could now: for an ACI kind, the longer wait of its 5-minute and hourly
 * windows. By refill alone: a Retry-After pause is not counted. 0 for a
 * bucket never used (full) or a bad kind.
 * Lets a caller give way instead of queueing behind the bucket.
 */
uint64_t azure_client_bucket_wait_ms(azure_client_t *c, const char *subscription,
                                     const char *region, azure_bucket_kind_t kind);
/*
 * Appends the Prometheus text exposition of this client to out:
 * dev8_arm_requests_total{operation,code}, dev8_arm_request_duration_seconds
 * (histogram), dev8_arm_throttle_waits_total,
 * dev8_arm_bucket_tokens{subscription,region,kind} (for every region used;
 * the read/write/delete series of one subscription show its one shared
 * bucket), dev8_azure_token_refreshes_total.
 */
void azure_client_metrics(const azure_client_t *c, d8_buf_t *out);

/* ------------------------------------------------------------------ */
/* Codec: pure functions, exposed for tests and fuzzing.               */

/* The PUT body of a container group. Fails with D8_EINVAL when a field the
 * spec requires is missing. out is appended to; it holds secrets: wipe it
 * (OPENSSL_cleanse) before releasing. */
int azure_group_body(const azure_group_spec_t *spec, const char *location,
                     const char *storage_account, const char *storage_key, d8_buf_t *out);
/* The PUT body of a share; D8_EINVAL on a bad quota or metadata name. */
int azure_share_body(const azure_share_spec_t *spec, d8_buf_t *out);
/* The PATCH body setting a share's quota. */
int azure_share_quota_body(int quota_gb, d8_buf_t *out);

/*
 * Decoders. Each returns 0 with *out filled (caller releases), or
 * D8_EPARSE (out left empty) when the text is not the expected JSON
 * document. Unknown fields are ignored; fields of the wrong type read as
 * absent.
 */
int azure_decode_group(const char *json, size_t len, azure_group_t *out);
/* Appends the page's items to out (which the caller zero-initialises once)
 * and sets *next_link (malloc'd, caller frees) or NULL at the last page. */
int azure_decode_group_list(const char *json, size_t len, azure_group_list_t *out,
                            char **next_link);
int azure_decode_share(const char *json, size_t len, azure_share_t *out);
int azure_decode_share_list(const char *json, size_t len, azure_share_list_t *out,
                            char **next_link);
/* A storage account body (kind, sku.name, properties.largeFileSharesState). */
int azure_decode_storage_account(const char *json, size_t len, azure_storage_account_t *out);
/* An Azure-AsyncOperation status body {"status","error":{"code","message"}}. */
int azure_decode_operation(const char *json, size_t len, azure_operation_t *out);
/* An ARM error body {"error":{"code","message"}} (or an Entra ID one,
 * {"error":"...","error_description":"..."}). Copies truncated,
 * NUL-terminated code and message; 0, or D8_EPARSE when not an error body. */
int azure_decode_error(const char *json, size_t len, char *code, size_t codelen, char *message,
                       size_t msglen);

#endif
