/*
 * pkg/azsim: the model of the Azure emulator (DESIGN.md section 7).
 *
 * A stateful, in-memory stand-in for the ARM endpoints dev8-agent uses —
 * container groups (Microsoft.ContainerInstance), file shares and listKeys
 * (Microsoft.Storage), the Entra ID and IMDS token endpoints — plus a small
 * control API under /_azsim/ for tests.
 *
 * The model is a pure request -> answer function (azsim_handle) driven by
 * a clock the caller may replace, so unit tests run it without sockets or
 * real time. Timed behaviour (provisioning, deletion, start) is not driven
 * by timers: every call first applies the transitions that fell due since
 * the previous call, stamped with the time they were due. azsim_serve
 * puts the model behind pkg/http on a libuv loop; the only timers there
 * delay answers for the latency fault.
 *
 * Nothing here blocks and nothing here is thread-safe: one loop owns it.
 *
 * Choices where the specs are silent (all ARM errors are
 * {"error":{"code","message"}}):
 * - api-version: ACI 2026-05-01, 2025-09-01, 2023-05-01; Storage
 *   2025-01-01, 2023-05-01. Missing: 400 MissingApiVersionParameter;
 *   other: 400 InvalidApiVersionParameter.
 * - No Authorization header: 401 AuthenticationFailed (as ARM); a bad
 *   token: InvalidAuthenticationToken; an expired one:
 *   ExpiredAuthenticationToken; all with WWW-Authenticate.
 * - Tokens are HS256 JWTs signed with a key derived from the seed, so they
 *   survive a restart and a /_azsim/reset with the same seed.
 * - The public IP is assigned when provisioning starts, released by stop,
 *   and a new one is assigned by start (ACI gives no stable IP either).
 * - strict_mounts (default on): provisioning fails (FailedMount) when an
 *   azureFile volume names a missing share or a key that is not one of the
 *   account's listKeys keys, as a real mount would.
 * - Throttling: per subscription reads 250/25 s^-1, writes 200/10, deletes
 *   200/10, and global buckets 15 times as large; per subscription and
 *   region ACI creates and deletes each need room in a 100-per-5-minute
 *   and a 300-per-hour bucket. 429s name SubscriptionRequestsThrottled
 *   (ARM buckets) or TooManyRequests (ACI, and the rate429 fault), with
 *   Retry-After.
 * - A deleted share stays soft-deleted for share_recreate_ms (default
 *   2000 ms, short so tests stay fast; Azure takes up to ~30 s): PUT of the
 *   name answers 409 ShareBeingDeleted, $expand=deleted lists it,
 *   FileShares_Restore brings it back.
 * - Validation codes: LocationRequired, InvalidRequestContent (with the
 *   JSON path), InvalidResourceName, AccountNameInvalid, OutOfRangeInput
 *   (shareQuota outside 1..102400), InvalidMetadata (names must be C
 *   identifiers, unique in any case), ContainerGroupTransitioning (409
 *   while Deleting).
 *
 * ARM's and Storage's documented behaviours (sources in
 * ../research/azure-behaviours.md, items 6-8; switched by the config's
 * `paging:`, `storage:`, `faults:` and throttle.globalHeaders, at run
 * time by POST /_azsim/paging, /_azsim/storage and /_azsim/faults; the
 * state of single resources by POST /_azsim/shares, /_azsim/accounts and
 * /_azsim/regenerateKey):
 * - Paging: nextLink is the request's URL with its api-version (and a
 *   share list's $expand and $maxpagesize) and &$skipToken=<opaque>
 *   (base64url, checked: another token is 400 InvalidSkipToken; $skiptoken
 *   is read too), omitted on the last page [ARM RPC resource-api-
 *   reference]. paging.explicitPort writes the scheme's default port when
 *   the client's Host has none (":80" here, as ARM's links write ":443",
 *   observed); paging.emptyPages starts every list with an empty page
 *   that has a nextLink ("zero records with NextLink is an acceptable
 *   response"). Pages of one item are allowed (pageSize 1..5000).
 * - Every ARM answer carries x-ms-ratelimit-remaining-subscription-
 *   {reads,writes,deletes} and, unless throttle.globalHeaders is false,
 *   -global-{reads,writes,deletes} from the global buckets (Learn: "15
 *   times the individual service principal limit"; observed 3749 beside
 *   249 on an ACI call).
 * - StorageAccounts_GetProperties answers the spec example's shape with
 *   the account's kind, sku {name, tier}, location and
 *   largeFileSharesState "Enabled" (absent when not enabled). Share PUT
 *   and PATCH take the sizes Learn gives (Azure Files scale targets):
 *   premium SKUs from 100 GiB, standard up to 5120 GiB, or 102400 with
 *   large file shares; otherwise 400 InvalidHeaderValue "The value for one
 *   of the HTTP headers is not in the correct format." (the ARM code is
 *   undocumented; this is what Azure answers, observed).
 * - Metadata values must be ASCII (storage.asciiMetadata, default on):
 *   400 InvalidMetadata "The metadata specified is invalid. It has
 *   characters that are not permitted." (observed, Azure SDK issues).
 * - FileShares_Delete applies $include as the spec says: "snapshots"
 *   (default) deletes the share with its snapshots unless one is leased
 *   (409 DeleteShareWhenSnapshotLeased "Unable to delete share because
 *   one or more share snapshots have active leases."), "leased-snapshots"
 *   deletes all, "none" refuses any (409 ShareHasSnapshots "The share has
 *   snapshots and the operation requires no snapshots."); another value
 *   is 400 InvalidQueryParameterValue. POST /_azsim/shares {account,
 *   share, snapshots, leasedSnapshots, lock, marker} sets a live share's;
 *   marker (a string standing for the files on the share, shown as
 *   azsimMarker in /_azsim/resources) survives updates and restores and
 *   goes with the share, so a test can tell the same share from a new one.
 * - Management locks (Learn, Lock your resources) on an account (POST
 *   /_azsim/accounts {account, lock}) or a share: CanNotDelete refuses
 *   share deletes, ReadOnly also share writes and listKeys, with 409
 *   ScopeLocked "The scope '<request's resource>' cannot perform delete
 *   (write) operation because following scope(s) are locked: '<locked
 *   resource>'. Please remove the lock and try again." (observed).
 * - POST /_azsim/regenerateKey {account, keyName} replaces a key as
 *   StorageAccounts_RegenerateKey does (answering the keys): listKeys and
 *   keyCreationTime show the new one; a deployment that mounts the old
 *   key fails (strict mounts: FailedMount, "Permission denied"); running
 *   groups keep their mounts (Azure documents nothing about them).
 * - The 403 fault (rate403, or rate403Reads/Writes/Deletes by ARM's
 *   operation type) answers an ARM call after its token and throttling
 *   with 403 AuthorizationFailed "The client '<appid>' with object id
 *   '<appid>' does not have authorization to perform action '<action>'
 *   over scope '<scope>' or the scope is invalid. If access was recently
 *   granted, please refresh your credentials." (ARM's text, observed).
 *
 * ACI's documented behaviours (sources in pkg/azsim/BEHAVIOURS.md,
 * items 1-5 and 9; switched by the config's `aci:` section, at run time by
 * POST /_azsim/aci, and the faults failStopRate/failDeleteRate):
 * - Deployments and runs. Create, update and start deploy: instanceView
 *   Pending, containers Waiting, events Pulling, then Pulled and Started
 *   (count, firstTimestamp, lastTimestamp, name, message, type; a repeat
 *   counts up). Image rules (aci.images) end runs with an exit code:
 *   restartPolicy Always, or OnFailure with a non-zero code, restarts the
 *   container (restartCount + 1, previousState Terminated with the code, a
 *   crash-loop back-off of aci.crashBackoffMs doubling, event BackOff);
 *   otherwise the group is Succeeded (code 0) or Failed (non-zero under
 *   Never). A stop has no effect on such a group (204); a start deploys it
 *   again. [Learn: container-state, restart-policy, stop-start]
 * - 409 ContainerGroupTransitioning ("The container group '<name>' is still
 *   transitioning, please retry later.") for start, stop and restart while
 *   a deployment runs, and for these and delete aci.transitionMs after a
 *   start, stop or restart (default 0; the support article advises 10 s
 *   between operations). A start of a starting or running group stays 204.
 *   Otherwise a DELETE cancels a deployment in flight (operation Canceled;
 *   after a create or update provisioningState Canceled until the group is
 *   gone). aci.staleMs keeps the pre-start instance state in GETs after a
 *   start.
 * - New groups: regions in aci.capacityExhausted answer 409
 *   ServiceUnavailable "The requested resource is not available in the
 *   location ..."; per subscription and region aci.quota.containerGroups
 *   (100) answers 409 ServiceUnavailable "... quota 'ContainerGroups'
 *   exceeded ..." and aci.quota.standardCores (100, cores of groups not
 *   stopped) ContainerGroupQuotaReached "... quota 'StandardCores' exceeded
 *   ..." (status undocumented: 400). Subscriptions in
 *   aci.unregisteredSubscriptions answer every ACI call with 409
 *   MissingSubscriptionRegistration. [Learn: quota limits; support articles]
 * - Images: failure InaccessibleImage fails provisioning with the
 *   documented message (Warning event, operation error); RegistryErrorResponse
 *   answers the PUT with 409 (observed, Docker Hub's rate limit); PullFailed
 *   fails each pull (Failed, BackOff) until aci.waitingTimeoutMs (30 min,
 *   documented) fails provisioning (ResourceDeploymentFailure, as observed),
 *   as it fails any deployment still Waiting then. Pull times are a rule's
 *   pullMs or a lognormal draw (median, p95) from the seeded generator; a
 *   create's Retry-After leaves the pull out, as Azure cannot foresee it.
 * - failStopRate: the stop answers 204, nothing stops, provisioningState
 *   turns Failed; failDeleteRate: the group stays, provisioningState Failed
 *   and the operation Failed. A later successful operation clears it.
 * - PUT of an unchanged spec restarts running containers in place
 *   (aci.identicalPutRestarts: restartCount, Killing, Started) and deploys a
 *   stopped or exited group as new. If-Match and If-None-Match are not read
 *   (ACI declares none). A change of osType, restartPolicy, a container's
 *   resources or the network profile answers InvalidContainerGroupUpdate
 *   with the documented message (status undocumented: 400).
 * - DNS labels: 5..63 lower-case letters, digits and hyphens, a letter
 *   first (400 InvalidDnsNameLabel, observed message).
 *   autoGeneratedDomainNameLabelScope (Unsecure, TenantReuse,
 *   SubscriptionReuse, ResourceGroupReuse, Noreuse; any case) hashes the
 *   FQDN for every scope but Unsecure: <label>.<16 chars>.<region>.
 *   azurecontainer.io, the hash of the tenant (from the token), subscription
 *   and resource group as the scope says; Noreuse is random per group. With
 *   aci.uniqueDnsLabels one group holds an FQDN per region: another PUT
 *   answers DnsNameLabelAlreadyTaken (status undocumented: 400). Off by
 *   default, as tests give many groups the same label.
 * Statuses Azure does not document are configurable (aci.statuses).
 */
#ifndef D8_AZSIM_H
#define D8_AZSIM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/http.h"
#include "base/base.h"

typedef struct azsim azsim_t;

/* One accepted application for the Entra ID token endpoint. */
typedef struct azsim_client {
    char *tenant_id;     /* NULL: any tenant */
    char *client_id;     /* required */
    char *client_secret; /* NULL: the client_secret flow is refused */
    int federated;       /* 1: client_assertion (workload identity) accepted */
} azsim_client_t;

/*
 * Settings. azsim_opts_init fills the defaults; azsim_opts_load_yaml adds
 * a config file; flags then override fields. Every pointer in here is
 * owned by the opts (azsim_opts_release frees them); azsim_new copies what
 * it keeps, so the opts may be released right after it.
 */
/* What pulling a matching image does (azsim_image_rule_t.failure). */
enum {
    AZSIM_PULL_OK = 0,         /* pulled after the pull time */
    AZSIM_PULL_INACCESSIBLE,   /* provisioning Failed: InaccessibleImage */
    AZSIM_PULL_REGISTRY_ERROR, /* the PUT answers 409 RegistryErrorResponse */
    AZSIM_PULL_NOT_FOUND       /* pulls fail (Failed, BackOff) until the Waiting timeout */
};

/*
 * A per-image rule of the ACI model (config aci.images). The first rule
 * whose glob matches a container's image decides its pulls and runs.
 */
typedef struct azsim_image_rule {
    char *match;             /* shell glob on the image reference, case-insensitive */
    int64_t exit_after_ms;   /* every run exits this long after it started; -1: never */
    int exit_code;           /* the exit code of such a run, 0..255 */
    int64_t pull_ms;         /* a fixed pull time; -1: drawn from the distribution */
    uint64_t pull_median_ms; /* this image's own distribution when > 0 ... */
    uint64_t pull_p95_ms;    /* ... (lognormal through median and 95th percentile) */
    int failure;             /* AZSIM_PULL_* */
    /* The IDE's probes (readinessProbe, livenessProbe of the container)
     * pass this long into each run: 0 at once, -1 never. */
    int64_t ready_after_ms;
} azsim_image_rule_t;

/*
 * The documented ACI behaviours the model can switch (config `aci:`, and
 * at run time POST /_azsim/aci). azsim_opts_init fills the defaults given
 * here; every list and string is owned by the struct.
 */
typedef struct azsim_aci_opts {
    uint64_t transition_ms;      /* start/stop/restart/delete answer 409 this long after a
                                    start, stop or restart (and while a deployment runs); 0 */
    uint64_t stale_ms;           /* GET shows the pre-start instance state this long; 0 */
    uint64_t waiting_timeout_ms; /* a deployment still Waiting fails after; 1800000 (0: never) */
    uint64_t crash_backoff_ms;   /* first back-off before a crashed container restarts,
                                    doubling up to 300000; 10000 */
    uint64_t pull_median_ms;     /* image pull time distribution (lognormal); 0: no pull time */
    uint64_t pull_p95_ms;
    int identical_put_restarts; /* 1: a PUT of an unchanged spec restarts the containers */
    int unique_dns_labels;      /* 1: one group per FQDN in a region (DnsNameLabelAlreadyTaken);
                                   0 (default): labels are not checked against each other */
    uint64_t quota_groups;      /* container groups per subscription and region; 100 (0: none) */
    uint64_t quota_cores;       /* StandardCores per subscription and region; 100 (0: none) */
    int core_quota_status;      /* HTTP status of ContainerGroupQuotaReached; 400 */
    int invalid_update_status;  /* ... of InvalidContainerGroupUpdate; 400 */
    int dns_taken_status;       /* ... of DnsNameLabelAlreadyTaken; 400 */
    char **capacity_exhausted;  /* regions without capacity: 409 ServiceUnavailable */
    size_t ncapacity_exhausted;
    char **unregistered; /* subscriptions without Microsoft.ContainerInstance */
    size_t nunregistered;
    azsim_image_rule_t *images;
    size_t nimages;
    /* registries: the private registries (a JSON array, owned, validated
     * by azsim__aci_opts_parse): [{server, username, password,
     * identities: [user-assigned identity ids]}]. An image of a listed
     * server is pulled only with a matching imageRegistryCredentials
     * entry (that username and password, or one of the identities, which
     * the group's identity must also hold); else InaccessibleImage. NULL:
     * every registry is public. */
    struct cJSON *registries;
} azsim_aci_opts_t;

/*
 * One storage account as StorageAccounts_GetProperties shows it (config
 * storage.accounts, POST /_azsim/storage). Its SKU decides the share
 * sizes it takes: Premium_* from 100 GiB, Standard_* up to 5120 GiB, or
 * 102400 GiB with large file shares. Strings owned by the struct.
 */
typedef struct azsim_account_opts {
    char *name;               /* the account (any case) */
    char *kind;               /* Storage|StorageV2|BlobStorage|FileStorage|BlockBlobStorage */
    char *sku;                /* a SkuName of the spec: Standard_LRS, Premium_LRS, ... */
    char *location;           /* normalised region name */
    int large_file_shares;    /* 1: largeFileSharesState Enabled */
    int shared_key_access;    /* allowSharedKeyAccess; 1 (default) */
    int network_deny;         /* 1: networkAcls.defaultAction Deny; 0 (default) Allow */
    int public_disabled;      /* 1: publicNetworkAccess Disabled; 0 (default) Enabled */
    int share_retention_days; /* share soft delete days, 1..365; 0 off; 7 (default) */
} azsim_account_opts_t;

/*
 * The documented Storage behaviours (config `storage:`, at run time
 * POST /_azsim/storage). Accounts not listed, and the fields a listed one
 * leaves out, are StorageV2, Standard_LRS, eastus, large file shares
 * Enabled: shares of 1..102400 GiB, as before the accounts were
 * modelled. Every list and string is owned.
 */
typedef struct azsim_storage_opts {
    int ascii_metadata; /* 1 (default): a non-ASCII metadata value is 400 InvalidMetadata */
    azsim_account_opts_t *accounts;
    size_t naccounts;
} azsim_storage_opts_t;

/*
 * The subscription reads of preflight (config `arm:`, at run time POST
 * /_azsim/arm): the caller's permissions on every resource group (one
 * entry: actions, notActions; default ["*"], []), the resource providers
 * answered NotRegistered (any subscription), and the largest Linux or
 * Windows container group of every region's capabilities (maxCpu 4,
 * maxMemoryInGB 16). Lists owned.
 */
typedef struct azsim_arm_opts {
    char **actions;
    size_t nactions;
    char **not_actions;
    size_t nnot_actions;
    char **unregistered; /* provider namespaces, any case */
    size_t nunregistered;
    double max_cpu;
    double max_memory_gb;
} azsim_arm_opts_t;

/* ARM paging (config `paging:`, at run time POST /_azsim/paging, which
 * also takes pageSize). */
typedef struct azsim_paging_opts {
    int explicit_port; /* 1: nextLink writes the default port of its scheme (:80, :443) */
    int empty_pages;   /* 1: every list starts with an empty page that has a nextLink */
} azsim_paging_opts_t;

/*
 * Faults (config `faults:`, at run time POST /_azsim/faults, which merges
 * the fields given): probabilities in [0, 1] rolled per request from the
 * seeded generator, in the order reset, 500, 503, 429 (before the token
 * is checked), then 403 (after it, ARM calls only: rate403 for every one,
 * plus rate403Reads/Writes/Deletes by ARM's operation type).
 */
typedef struct azsim_faults {
    double rate500, rate503, rate429, reset_rate;
    double rate403, rate403_reads, rate403_writes, rate403_deletes;
    double fail_provisioning_rate, fail_stop_rate, fail_delete_rate;
    uint64_t latency_ms, jitter_ms; /* every answer but the control API's is held this long */
    int retry_after_s;              /* Retry-After of the 429 and 503 faults; 1 */
} azsim_faults_t;

typedef struct azsim_opts {
    uint64_t provision_ms;      /* Creating -> Succeeded, Pending -> Running; 2000 */
    uint64_t delete_ms;         /* DELETE 202 until gone; 1000 */
    uint64_t share_recreate_ms; /* 409 ShareBeingDeleted window after a share DELETE; 2000 */
    size_t page_size;           /* list page size; 100 */
    int token_ttl_s;            /* access token lifetime; 3600 */
    uint64_t seed;              /* faults, ids, token signing key; 1 */
    int throttle;               /* 1: ARM and ACI token buckets enforced */
    double throttle_scale;      /* multiplies every bucket's burst and rate; 1.0 */
    int strict_mounts;          /* 1: an azureFile volume whose share is missing or
                                   whose key is wrong fails provisioning (FailedMount) */
    /* Restrictions: an empty list accepts any name (case-insensitive). */
    char **subscriptions;
    size_t nsubscriptions;
    char **resource_groups;
    size_t nresource_groups;
    char **storage_accounts;
    size_t nstorage_accounts;
    /* Accepted token clients: empty accepts any client id with any
     * non-empty secret or well-formed assertion. */
    azsim_client_t *clients;
    size_t nclients;
    /* Used for nextLink and async-operation URLs when a request carries
     * no Host header ("http://127.0.0.1:9090"); NULL: "http://localhost". */
    char *base_url;
    /* Clock in milliseconds (monotonic); NULL uses d8_mono_ms. Wall time
     * is the wall clock at azsim_new plus the clock's progress since. */
    uint64_t (*clock)(void *ud);
    void *clock_ud;
    azsim_aci_opts_t aci;         /* ACI behaviours (see azsim_aci_opts_t) */
    azsim_storage_opts_t storage; /* Storage behaviours (see azsim_storage_opts_t) */
    azsim_paging_opts_t paging;   /* nextLink spelling, empty pages */
    azsim_arm_opts_t arm;         /* preflight's reads (see azsim_arm_opts_t) */
    azsim_faults_t faults;        /* in force from the start and after a reset; none */
    int global_headers;           /* 1: x-ms-ratelimit-remaining-subscription-global-*
                                     headers beside the regional ones (throttle.globalHeaders) */
    /* The cloud emulated (index of azure_cloud_at, pkg/azure/cloud.h; 0 =
     * AzurePublicCloud): the token endpoints issue tokens only for its
     * Resource Manager scope (else AADSTS500011). Config `cloud:`, flag
     * --cloud. */
    int cloud;
} azsim_opts_t;

/* Fills the defaults listed above. */
void azsim_opts_init(azsim_opts_t *o);
/*
 * Reads a YAML config file into o (see README / DESIGN.md section 7):
 *
 *   subscriptions: [ "00000000-0000-0000-0000-000000000000" ]
 *   resourceGroups: [ rg-dev8-eastus ]
 *   storageAccounts: [ dev8eastus ]
 *   clients:
 *     - { tenantId: t, clientId: c, clientSecret: s, federated: true }
 *   timing: { provisionMs: 2000, deleteMs: 1000, shareRecreateMs: 2000 }
 *   pageSize: 100
 *   tokenTtlSeconds: 3600
 *   seed: 1
 *   strictMounts: true
 *   throttle: { enabled: true, scale: 1.0, globalHeaders: true }
 *   paging: { explicitPort: false, emptyPages: false }   # pageSize: as above
 *   storage:                      # documented Storage behaviours, defaults shown
 *     asciiMetadata: true
 *     accounts:                   # unlisted: StorageV2, Standard_LRS, eastus, large shares
 *       - { name: dev8eastus, kind: FileStorage, sku: Premium_LRS,
 *           location: eastus, largeFileShares: false,
 *           allowSharedKeyAccess: true, networkDefaultAction: Allow,
 *           publicNetworkAccess: Enabled, shareDeleteRetentionDays: 7 }
 *   faults: { rate403: 0 }        # any field of POST /_azsim/faults
 *   arm:                          # preflight's reads, defaults shown
 *     actions: ["*"]
 *     notActions: []
 *     unregisteredProviders: []   # e.g. [Microsoft.Storage]
 *     maxCpu: 4
 *     maxMemoryInGB: 16
 *   aci:                          # documented ACI behaviours, defaults shown
 *     transitionMs: 0
 *     staleMs: 0
 *     waitingTimeoutMs: 1800000
 *     crashBackoffMs: 10000
 *     identicalPutRestarts: true
 *     uniqueDnsLabels: false
 *     pull: { medianMs: 0, p95Ms: 0 }
 *     quota: { containerGroups: 100, standardCores: 100 }   # 0: none
 *     statuses: { containerGroupQuotaReached: 400,
 *                 invalidContainerGroupUpdate: 400, dnsNameLabelAlreadyTaken: 400 }
 *     capacityExhausted: []         # regions
 *     unregisteredSubscriptions: []
 *     images:                       # first match wins (glob, any case)
 *       - { match: "exit0*", exitAfterMs: 5000, exitCode: 0 }
 *       - { match: "big-*", pullMs: 40000 }      # or pull: { medianMs, p95Ms }
 *       - { match: "private.azurecr.io*", failure: InaccessibleImage }
 *       # failure: None | InaccessibleImage | RegistryErrorResponse | PullFailed
 *
 * Returns 0, or D8_EPARSE / D8_EINVAL / D8_EIO with "file:line:column: key:
 * what is wrong" in err; o is then unchanged.
 */
int azsim_opts_load_yaml(azsim_opts_t *o, const char *path, char *err, size_t errlen);
/* Frees what o owns and re-initialises it to the defaults. */
void azsim_opts_release(azsim_opts_t *o);

/* Creates the model. opts is borrowed for the call. Never fails. */
azsim_t *azsim_new(const azsim_opts_t *opts);
/* Frees the model; azsim_free(NULL) is a no-op. */
void azsim_free(azsim_t *sim);

#define AZSIM_MAX_HEADERS 16

/* One answer of the model. Initialise with azsim_resp_init, release with
 * azsim_resp_release; every field is the caller's to read. */
typedef struct azsim_resp {
    int status;
    int reset;                                /* 1: close the connection without answering */
    const char *operation;                    /* static name ("containerGroups.get") */
    const char *content_type;                 /* static; NULL when there is no body */
    http_header_t headers[AZSIM_MAX_HEADERS]; /* names static, values owned */
    size_t nheaders;
    d8_buf_t body;
} azsim_resp_t;

/* Empties r for an answer: no status, headers or body yet. */
void azsim_resp_init(azsim_resp_t *r);
/* Frees the header values and the body that r owns. */
void azsim_resp_release(azsim_resp_t *r);
/* Value of an answer header (case-insensitive), borrowed, or NULL. */
const char *azsim_resp_header(const azsim_resp_t *r, const char *name);

/*
 * Handles one request: routing, authentication, api-version, throttling,
 * faults, the resource behaviour and the statistics. req is borrowed for
 * the call (only method, path, query, headers and body are read); the
 * answer goes to resp, which must have been initialised.
 */
void azsim_handle(azsim_t *sim, const http_request_t *req, azsim_resp_t *resp);

/*
 * The latency fault: milliseconds to hold this request before handling it
 * (latencyMs plus a uniform draw in [0, jitterMs]); 0 for the control API
 * or when no latency is configured. Draws from the seeded generator.
 */
uint64_t azsim_fault_delay_ms(azsim_t *sim, const http_request_t *req);

/* Counts of live resources (for tests and logs). */
size_t azsim_count_groups(const azsim_t *sim);
size_t azsim_count_shares(const azsim_t *sim);

typedef struct azsim_server azsim_server_t;

/*
 * Serves sim over HTTP on loop (pkg/http), one JSON log line per request.
 * sim is borrowed and must outlive the server. Returns 0 or a D8_* error
 * (then *out stays NULL).
 */
int azsim_serve(azsim_t *sim, uv_loop_t *loop, const char *host, int port, azsim_server_t **out);
/* The bound port. */
int azsim_server_port(const azsim_server_t *srv);
/*
 * Closes the listener, every connection and every pending delay timer;
 * done(arg) runs once all of them are closed, after which srv is freed.
 */
void azsim_server_close(azsim_server_t *srv, void (*done)(void *arg), void *arg);

#endif
