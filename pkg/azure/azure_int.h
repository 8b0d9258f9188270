/*
 * pkg/azure internals shared between its files (azure__ prefix): the
 * client and request structs, the request layer used by the typed
 * operations and the credential code, and the pure throttle, Retry-After,
 * token and keys helpers that the unit tests check directly.
 */
#ifndef D8_AZURE_INT_H
#define D8_AZURE_INT_H

#include "azure.h"
#include "base/list.h"
#include "curluv/curluv.h"

#include <curl/curl.h>
#include <stdint.h>
#include <uv.h>

/* ---- pure helpers (limits.c) ---- */

/* A token bucket. Tokens refill continuously at `rate` per second up to
 * `cap`; `paused_until` (monotonic ms) holds the bucket shut after a
 * Retry-After. */
typedef struct azure__bucket {
    double cap;
    double rate;
    double tokens;
    uint64_t last_ms;
    uint64_t paused_until;
} azure__bucket_t;

/* A full bucket of cap tokens refilled at rate per second (each held
 * above 0). */
void azure__bucket_init(azure__bucket_t *b, double cap, double rate, uint64_t now_ms);
/* Brings tokens up to date for now_ms. */
void azure__bucket_refill(azure__bucket_t *b, uint64_t now_ms);
/* The tokens the bucket would hold at now_ms, without changing it. */
double azure__bucket_peek(const azure__bucket_t *b, uint64_t now_ms);
/* 0 when the bucket holds a whole token at now_ms; else the ms until it
 * will, by refill alone (a pause is not counted). Changes nothing. */
uint64_t azure__bucket_token_wait_ms(const azure__bucket_t *b, uint64_t now_ms);
/* 0 when one token can be taken at now_ms; else the ms to wait until it
 * can (pause included). Refills first. */
uint64_t azure__bucket_wait_ms(azure__bucket_t *b, uint64_t now_ms);
/* Takes one token (call only after wait_ms answered 0). */
void azure__bucket_take(azure__bucket_t *b);
/* Shuts the bucket until until_ms (never shortens an existing pause). */
void azure__bucket_pause(azure__bucket_t *b, uint64_t until_ms);
/* Lowers the tokens to `remaining` when the server says fewer are left. */
void azure__bucket_clamp(azure__bucket_t *b, double remaining);

/*
 * Parses a Retry-After value: delta-seconds or an HTTP-date (IMF-fixdate,
 * RFC 850 and asctime forms). Writes the delay in ms from now_wall_ms
 * (0 for a date in the past). Returns 0, or D8_EPARSE.
 */
int azure__parse_retry_after(const char *v, int64_t now_wall_ms, uint64_t *delay_ms);

/* Token endpoint answer (Entra ID: expires_in a number; IMDS: a string). */
typedef struct azure__token {
    char *access_token; /* secret */
    int64_t expires_in_s;
} azure__token_t;

/* Decodes a token answer into out (release it): 0, or D8_EPARSE without
 * an access_token. The parsed text is wiped. expires_in_s is -1 when the
 * lifetime is absent or unreadable. */
int azure__decode_token(const char *json, size_t len, azure__token_t *out);
/* Wipes and frees the token. */
void azure__token_release(azure__token_t *t);
/* The first key of a listKeys answer (malloc'd, secret) or D8_EPARSE. */
int azure__decode_keys(const char *json, size_t len, char **key);

/* Wipes a NUL-terminated secret in place (NULL is fine) and frees it. */
void azure__free_secret(char *s);
/* Replaces every occurrence of each secret (at least 4 bytes long) in the
 * NUL-terminated text with "<redacted>", in place when it fits, within
 * cap bytes. */
void azure__scrub(char *text, size_t cap, const char *const *secrets, size_t n);

/* Copies of the secrets a request carries (secretEnv values, registry
 * password, storage key), to scrub from its error messages. Unbounded: a
 * spec may carry many secure variables and every one must be scrubbed. */
typedef struct az_secrets {
    char **v;
    size_t n, cap;
} az_secrets_t;
/* Adds a copy of s (NULL or "" ignored). */
void az_secrets_add(az_secrets_t *l, const char *s);
/* Wipes and frees every copy; the list is empty and reusable after. */
void az_secrets_release(az_secrets_t *l);

/* 1 when s is a usable ARM path segment of the given class. */
int azure__valid_name(const char *s, size_t maxlen);

/*
 * 1 when url lies under base (armEndpoint): http or https like base, the
 * same host (case-insensitive) and port, an absent port being the
 * scheme's default (ARM's nextLinks spell "https://<its host>:443/"),
 * and a path under base's followed by '/' or '?'. 0 for any other host,
 * a userinfo part, or what is not an absolute http(s) URL. Both borrowed.
 */
int azure__same_origin(const char *base, const char *url);

/* ---- operations table ---- */
typedef enum azure__op {
    AZ_OP_GROUP_PUT = 0,
    AZ_OP_GROUP_GET,
    AZ_OP_GROUP_LIST,
    AZ_OP_GROUP_DELETE,
    AZ_OP_GROUP_START,
    AZ_OP_GROUP_STOP,
    AZ_OP_SHARE_PUT,
    AZ_OP_SHARE_GET,
    AZ_OP_SHARE_PATCH,
    AZ_OP_SHARE_LIST,
    AZ_OP_SHARE_DELETE,
    AZ_OP_LIST_KEYS,
    AZ_OP_OPERATION_GET,
    AZ_OP_ACCOUNT_GET,
    /* The subscription reads of preflight (arm_read.c). */
    AZ_OP_PROVIDER_GET,
    AZ_OP_RG_GET,
    AZ_OP_PERMISSIONS_LIST,
    AZ_OP_ACCOUNT_READ,
    AZ_OP_FILE_SERVICE_GET,
    AZ_OP_USAGE_LIST,
    AZ_OP_CAPABILITIES_LIST,
    AZ_OP_RESOURCE_PERMISSIONS_LIST,
    AZ_OP_CONTAINER_LOGS,
    AZ_OP_TOKEN, /* not ARM: no bucket, no token, not counted in maxInflight */
    AZ_OP__COUNT
} azure__op_t;

typedef struct azure__op_info {
    const char *name; /* ARM operationId */
    const char *method;
    int bucket;     /* azure_bucket_kind_t, -1 for none */
    int aci_bucket; /* AZURE_BUCKET_ACI_* or -1 */
    int mutation;   /* logged at info (reads at debug) */
} azure__op_info_t;

extern const azure__op_info_t azure__ops[AZ_OP__COUNT];

/* ---- throttling signals (limits.c) ---- */

/* The ARM bucket kind (AZURE_BUCKET_READ, _WRITE, _DELETE) whose remaining
 * requests a response header reports, from its name (nlen bytes, any
 * case): x-ms-ratelimit-remaining-subscription-{reads,writes,deletes} and
 * their -global- twins (ARM's global bucket of the subscription, 15 times
 * the principal's); -1 for any other header. */
int azure__ratelimit_kind(const char *name, size_t nlen);

/* Whose meter a 429 answer comes from, as a set of AZ_THROTTLED_* bits. */
#define AZ_THROTTLED_ARM 1 /* ARM's subscription bucket of the op's kind */
#define AZ_THROTTLED_ACI 2 /* ACI's create/delete meters of the region */
/*
 * Reads a 429 of operation op: only the container group PUT and DELETE
 * have ACI meters; for them the ARM error code SubscriptionRequestsThrottled
 * is ARM's, TooManyRequests or a message naming container groups is
 * ACI's, and anything else may be either (both bits). code and message
 * may be NULL or "".
 */
int azure__throttle_origin(azure__op_t op, const char *code, const char *message);

/* ---- the client ---- */

/*
 * ARM's meters (AZURE_BUCKET_READ, _WRITE, _DELETE) of one subscription.
 * ARM keeps its token buckets per subscription and principal in the ARM
 * instance that serves the caller, whatever region the resources are in:
 * every region of the subscription draws from these.
 */
#define AZ_ARM_KINDS 3
typedef struct azure__arm_buckets {
    d8_list_t link;
    char *subscription;
    azure__bucket_t b[AZ_ARM_KINDS]; /* by kind */
} azure__arm_buckets_t;

/* The buckets a request of one subscription+region draws from: ACI's own
 * meters of that region (creates and deletes, 5-minute and hourly
 * windows) and the subscription's ARM buckets. Read a kind with
 * azure__bucket_of. */
typedef struct azure__bucket_entry {
    d8_list_t link;
    char *subscription;
    char *region;
    azure__arm_buckets_t *arm;                              /* the subscription's, shared */
    azure__bucket_t aci[AZURE_BUCKET_KINDS - AZ_ARM_KINDS]; /* by kind - AZ_ARM_KINDS */
} azure__bucket_entry_t;

typedef enum azure__req_state {
    AZ_REQ_NEW = 0,
    AZ_REQ_QUEUED,   /* waiting for a slot, a bucket, the token or a backoff */
    AZ_REQ_INFLIGHT, /* on the wire */
    AZ_REQ_DONE,
} azure__req_state_t;

typedef struct azure__req azure__req_t;
/* Called once when the request is final; the request is freed after. */
typedef void (*azure__req_done_fn)(azure__req_t *r, const azure_result_t *res);

struct azure__req {
    d8_list_t link;
    azure_client_t *c;
    azure__op_t op;
    azure__req_state_t state;
    int prio;
    char *url;
    char *body; /* may hold secrets: wiped on free */
    size_t body_len;
    char **form_headers; /* extra "Name: value" (Metadata: true) */
    int needs_token;     /* ARM requests carry the bearer token */
    char resource[160];  /* for logs */
    azure__bucket_entry_t *bkt;
    int attempt; /* attempts made */
    int auth_retried;
    int throttle_counted;
    uint64_t not_before; /* monotonic ms; backoff / Retry-After */
    uint64_t accepted_ms;
    uint64_t sent_ns;
    uint64_t token_gen;
    CURL *easy;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    d8_buf_t resp;
    /* captured from the last answer */
    long status;
    char ms_request_id[96];
    char client_request_id[40];
    char *async_op;
    char *location;
    int64_t retry_after_ms;
    /* x-ms-ratelimit-remaining-subscription-[global-]{reads,writes,deletes}:
     * the lower of the two figures per kind; -1 when not sent */
    long remaining[AZ_ARM_KINDS];
    /* secrets to scrub from error messages (borrowed from body owner) */
    az_secrets_t secrets;
    azure__req_done_fn done;
    void *ctx;
};

typedef struct azure__token_waiter {
    d8_list_t link;
    azure_done_cb cb;
    void *ud;
    uint64_t accepted_ms;
} azure__token_waiter_t;

typedef struct azure__auth {
    azure_auth_kind_t kind;
    char *tenant_id;
    char *client_id;
    char *client_secret; /* secret */
    char *federated_token_file;
    char *authority; /* without trailing slash */
    char *token;     /* secret */
    uint64_t gen;    /* bumped per new token */
    uint64_t obtained_ms;
    uint64_t expires_ms;       /* monotonic */
    uint64_t refresh_ms;       /* proactive refresh from here */
    uint64_t usable_until_ms;  /* expires minus skew */
    uint64_t retry_not_before; /* after a failed background refresh */
    int refreshing;            /* single flight: one refresh at a time */
    int fail_pending;          /* a refresh failed before any I/O */
    int ever;                  /* a token was obtained once */
    uv_fs_t fs;                /* workload identity token file read */
    int fs_busy;
    uv_file fs_fd;
    d8_buf_t fs_buf; /* the assertion: secret */
    char err_code[64];
    char err_message[256];
    d8_list_t waiters; /* azure_token_acquire callers */
} azure__auth_t;

typedef struct azure__key_entry azure__key_entry_t;

typedef struct azure__code_count {
    int op;
    int status;
    uint64_t n;
} azure__code_count_t;

struct azure_client {
    uv_loop_t *loop;
    curluv_t *cu; /* the curl multi on the loop (pkg/curluv) */
    uv_timer_t sched_timer;
    uint64_t sched_due; /* when sched_timer fires; UINT64_MAX idle */
    int refs;           /* sched_timer + cu until closed + fs requests */
    int closing;
    int depth; /* nesting of loop callbacks in progress */
    int teardown_pending;
    int torn_down;
    /* options (owned copies) */
    char *arm_endpoint;
    char *imds_endpoint;
    char *aci_api_version;
    char *storage_api_version;
    char *token_scope;
    char *token_resource;
    int max_inflight;
    uint64_t connect_timeout_ms;
    uint64_t request_timeout_ms;
    int max_attempts;
    uint64_t backoff_base_ms;
    uint64_t backoff_cap_ms;
    azure_bucket_opts_t bopts[AZURE_BUCKET_KINDS];
    uint64_t key_ttl_ms;
    size_t max_pages;
    int low_water;
    /* requests */
    d8_list_t queue[AZURE_PRIO_COUNT + 1]; /* +1: system (token) queue first */
    d8_list_t inflight;
    size_t nqueued;
    size_t ninflight;      /* ARM requests on the wire (token ones excluded) */
    size_t nops;           /* user operations accepted, not completed */
    d8_list_t buckets;     /* azure__bucket_entry_t, per subscription+region */
    d8_list_t arm_buckets; /* azure__arm_buckets_t, per subscription */
    d8_list_t keys;        /* storage key cache */
    azure__auth_t auth;
    uint64_t rng; /* d8_rand01 state: retry jitter */
    /* stats */
    azure__code_count_t *codes;
    size_t ncodes;
    size_t capcodes;
    uint64_t st_requests, st_retries, st_throttle_waits, st_throttled, st_timeouts;
    uint64_t st_token_refreshes, st_token_failures, st_connects;
    uint64_t hist[AZURE_HIST_BUCKETS + 1];
    double hist_sum;
    uint64_t hist_count;
};

/* The token endpoints' requests wait in queue 0, ahead of every user
 * priority (queue 1 + azure_prio_t). */
#define AZ_SYS_QUEUE 0

/* client.c: life of the client */
/* Loop entry/exit bookkeeping: a teardown asked for inside a loop
 * callback of this module waits until the outermost one returns. */
void azure__enter(azure_client_t *c);
void azure__leave(azure_client_t *c);
/* One more / one fewer handle or request that keeps the client's memory
 * alive; the last unref after teardown frees it. */
void azure__ref(azure_client_t *c);
void azure__unref(azure_client_t *c);

/* request.c: one request's life */
/*
 * A new request (state NEW) for operation op at priority prio (ignored
 * for AZ_OP_TOKEN, which goes to AZ_SYS_QUEUE). url and body (may be
 * NULL) are transferred: malloc'd, freed with the request, the body wiped
 * first. done is called exactly once with the final result; ctx is the
 * owner's, borrowed.
 */
azure__req_t *azure__req_new(azure_client_t *c, azure__op_t op, int prio, char *url, char *body,
                             size_t body_len, azure__req_done_fn done, void *ctx);
/* Adds a secret the request's error messages must never show (copied;
 * wiped and freed with the request). */
void azure__req_add_secret(azure__req_t *r, char *secret);
/* The one place a request changes state (STYLE 8): keeps the queued and
 * in-flight counts and logs the transition at debug. */
void azure__req_set_state(azure__req_t *r, azure__req_state_t st);
/* Builds the easy handle of one more attempt and hands it to the multi.
 * 0, or a D8_* error (the caller releases the handle and finishes). */
int azure__req_start(azure__req_t *r);
/* Takes the attempt's easy handle out of the multi and frees it and its
 * headers (wiped: they carry the token). No-op without a handle. */
void azure__req_release_easy(azure__req_t *r);
/*
 * Completes a request (queued or off every list): builds the result
 * (code/message: given, or from the ARM error body when both are NULL;
 * scrubbed of the request's secrets), calls its done function once and
 * frees it.
 */
void azure__req_finish(azure__req_t *r, int err, const char *code, const char *message);

/* queue.c: the queue, the scheduler and the buckets */
/* Names of the bucket kinds, as in metrics ("aci_create"). */
extern const char *const azure__bucket_kind_names[AZURE_BUCKET_KINDS];
/* Queues the request (its buckets are those of scope s; NULL for token
 * requests); it runs when a slot, its buckets and the token allow. Never
 * completes synchronously, except with D8_ECANCELED during teardown. */
void azure__req_submit(azure__req_t *r, const azure_scope_t *s);
/* Puts a request that just ended an attempt back at the head of its
 * queue, not to start before now + delay_ms. */
void azure__req_requeue(azure__req_t *r, uint64_t now, uint64_t delay_ms);
/* Arms the scheduler to run within delay_ms. */
void azure__sched_kick(azure_client_t *c, uint64_t delay_ms);
/* Fails every queued request that waits for the token. */
void azure__fail_token_waiters(azure_client_t *c, const char *code, const char *message);
/* Lowers the request's buckets to the x-ms-ratelimit-remaining-* figures
 * of its last answer when they are at or below the low-water mark. */
void azure__buckets_clamp(azure__req_t *r);
/* Shuts the buckets the request drew from until until_ms (monotonic)
 * after a Retry-After: with AZ_THROTTLED_ARM the subscription's ARM bucket
 * of its kind, with AZ_THROTTLED_ACI its region's ACI buckets (both
 * windows), when it has them. */
void azure__buckets_pause(azure__req_t *r, uint64_t until_ms, int throttled);
/* The bucket of kind (an azure_bucket_kind_t) that be's requests draw
 * from: the subscription's for an ARM kind, the region's for an ACI one. */
azure__bucket_t *azure__bucket_of(azure__bucket_entry_t *be, int kind);
/* Frees every bucket (client teardown). */
void azure__buckets_release(azure_client_t *c);

/* stats.c */
/* Counts one ARM attempt of op: its status (-1 no answer, -2 timed out)
 * and its duration. */
void azure__record_attempt(azure_client_t *c, int op, int status, double seconds);

/* auth.c */
int azure__auth_init(azure_client_t *c, const azure_client_opts_t *o, const char *authority,
                     char *err, size_t errlen);
void azure__auth_release(azure_client_t *c);
/* 1 when a token is usable at now; otherwise starts (single-flight) a
 * refresh and answers 0. Also starts a background refresh past refresh_ms. */
int azure__auth_ready(azure_client_t *c, uint64_t now_ms);
/* The header value "Bearer ..." is built by the caller from c->auth.token. */
void azure__auth_invalidate(azure_client_t *c, uint64_t gen);
/* Answers token waiters whose token is ready (from the scheduler). */
void azure__auth_flush_waiters(azure_client_t *c, int err);
/* Runs at the start of every scheduler turn: reports a credential failure
 * that was found synchronously (so it is never reported from inside the
 * scheduler's queue walk). */
void azure__auth_pump(azure_client_t *c);
/* Client teardown: cancels waiters, the file read. */
void azure__auth_cancel(azure_client_t *c);

/* ops.c */
void azure__keys_release(azure_client_t *c);

/* codec_view.c: the container instance view of a group's JSON properties. */
struct cJSON;
void azure__view_from_json(azure_group_t *g, const struct cJSON *props);
/* Frees what azure__view_from_json filled. */
void azure__view_release(azure_group_t *g);

#endif
