/*
 * Shared fixture of the dev8-agent API integration tests: writes a config,
 * starts the real bin/dev8-agent through the harness, and offers small
 * helpers for JSON answers, Server-Sent Events streams and raw sockets.
 *
 * Linked into every integration test binary (the Makefile links every
 * non-test_*.c file of test/integration), so it has no cmocka dependency:
 * functions report failures by return value and tests assert on them.
 */
#ifndef D8_TEST_AGENT_FIXTURE_H
#define D8_TEST_AGENT_FIXTURE_H

#include "harness.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define TA_KEY1 "key-one"
#define TA_KEY2 "key-two"
#define TA_MAX_BODY 65536

/* What varies between agents of the tests; zeroed means the defaults of
 * the fixture (maxBodyBytes 65536, ring size of the agent, level debug). */
typedef struct ta_opts {
    int watch_ring_size;    /* api.watchRingSize, 0 = not written */
    const char *extra_yaml; /* appended verbatim (whole top-level sections) */
    /* > 0: azure.armEndpoint, authorityHost and imdsEndpoint point at an
     * azsim on this port, auth is clientSecret, and the agent gets
     * AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET (TA_AZ_*) and
     * DEV8_SPEC_HASH_KEY (TA_HASH_KEY) in its environment. */
    int azsim_port;
    /* With azsim_port: armEndpoint http://management.azure.com and
     * authorityHost http://login.microsoftonline.com (ARM's own names, the
     * default port), which the agent reaches through azsim as its HTTP
     * proxy (http_proxy in its environment): azsim then sees ARM's host. */
    int via_proxy;
    int resync_seconds;         /* controller.resyncSeconds, 0 = not written */
    int status_refresh_seconds; /* controller.statusRefreshSeconds, 0 = not written */
    int shutdown_grace_seconds; /* controller.shutdownGraceSeconds, 0 = not written */
    const char *state_file;     /* controller.stateFile, NULL = not written */
    /* Each NULL = the fixture's own: azure_yaml adds keys to the azure
     * section (indented lines, e.g. "  cloud: Custom\n"); regions_yaml
     * replaces the entries under azure.regions; images_yaml replaces the
     * entries under images. */
    const char *azure_yaml;
    const char *regions_yaml;
    const char *images_yaml;
    int probe_port;              /* > 0: controller.probeListen 127.0.0.1:probe_port */
    const char *api_yaml;        /* lines appended to the api: section, or NULL */
    const char *controller_yaml; /* more controller: lines ("  key: value\n"), or NULL */
} ta_opts_t;

typedef struct ta_agent {
    th_proc_t proc;
    int port;           /* the agent's own port (raw sockets, watch streams) */
    int api_port;       /* where API requests go: port, or Prism's (D8_PRISM=1) */
    th_proc_t prism;    /* the Prism validating proxy when D8_PRISM=1 */
    int starts;         /* how many times started (log file names) */
    char *config_path;  /* owned */
    char *bin;          /* owned */
    int azure_env;      /* launch with the TA_AZ_* credential environment */
    char proxy_env[64]; /* "http_proxy=..." for the agent, or "" */
} ta_agent_t;

/* Writes the config and starts the agent on a free port; 0 or -1. */
int ta_start(ta_agent_t *a, const ta_opts_t *opts);
/* Starts the agent against azsim on azsim_port with state file
 * state_file (resync 2 s, status refresh 4 s, shutdown grace 5 s) and
 * waits (15 s) until it is ready; 0 or -1. */
int ta_start_state_file(ta_agent_t *a, int azsim_port, const char *state_file);
/* SIGTERM and waits (10 s): returns the exit status like th_stop. When it
 * is not 0 the log tail is printed. Frees what ta_start allocated. */
int ta_stop(ta_agent_t *a);
/* Stops (returning that exit status in *stop_status) and starts the agent
 * again with the same config and port; 0 or -1. */
int ta_restart(ta_agent_t *a, int *stop_status);
/* Starts the agent again with the same configuration after the test
 * stopped it itself (th_stop on a->proc), e.g. to change its files. */
int ta_relaunch(ta_agent_t *a);
/* Like ta_restart, but stops with signal sig (SIGKILL: a crash). */
int ta_restart_sig(ta_agent_t *a, int sig, int *stop_status);
/* The log of the current (or last) run, malloc'd. */
char *ta_log(const ta_agent_t *a);

/*
 * cmocka-compatible fixtures (int (*)(void **state)): ta_setup starts an
 * agent with default options into *state; ta_teardown stops it unless the
 * test already did (ta_stop) and fails when the exit status is not 0 —
 * which is how leaks found by a sanitized agent fail the test.
 */
int ta_setup(void **state);
int ta_teardown(void **state);

/*
 * Contract mode (D8_PRISM=1, see hack/test-prism.sh): ta_start also starts
 * `prism proxy pkg/api/openapi.yaml http://127.0.0.1:<port>` on a free port
 * (a->api_port) and every request of ta_req, ta_req_h and ta_api goes
 * through it. Prism validates the request and the answer against the
 * document and names what does not fit in an sl-violations header; the
 * fixture appends one JSON line per request (method, path, status,
 * violations) to $D8_PRISM_REPORT. Raw sockets and watch streams go to the
 * agent directly: Prism reads a whole answer before passing it on, and a
 * text/event-stream never ends. $D8_PRISM_BIN and $D8_OPENAPI name the
 * proxy and the document (defaults: hack/openapi's Prism, pkg/api/openapi.yaml).
 */
int ta_prism_enabled(void);

/* Request on the agent with key TA_KEY1 (JSON content type when body). */
int ta_req(const ta_agent_t *a, const char *method, const char *path, const char *body,
           th_resp_t *out);
/* Request with arbitrary extra headers (NULL-terminated) and body as is. */
int ta_req_h(const ta_agent_t *a, const char *method, const char *path, const char *const headers[],
             const char *body, th_resp_t *out);
/* th_api on the agent's API port: key may be NULL (no Authorization). */
int ta_api(const ta_agent_t *a, const char *method, const char *path, const char *key,
           const char *body, th_resp_t *out);

/* Parses the answer body; NULL when it is not JSON. Caller deletes. */
cJSON *ta_json(const th_resp_t *r);
/* error.code / error.field of an error answer (static storage per call,
 * "" when absent). */
const char *ta_err_code(const th_resp_t *r);
const char *ta_err_field(const th_resp_t *r);
/* Member by dotted path ("status.phase"); numbers index arrays. */
const cJSON *ta_path(const cJSON *root, const char *path);
const char *ta_str(const cJSON *root, const char *path); /* NULL if not a string */
double ta_num(const cJSON *root, const char *path);      /* -1e300 if not a number */
/* The condition of that type in status.conditions, or NULL. */
const cJSON *ta_condition(const cJSON *obj, const char *type);

/* A spec body: {"userId":u,"name":n,"cloudRegion":r<, extra>} where extra
 * is more JSON members without the leading comma (may be NULL). malloc'd. */
char *ta_spec(const char *user, const char *name, const char *region, const char *extra);
/* PUT /api/v1/environments/<id> with ta_spec(...); returns the status. */
long ta_put(const ta_agent_t *a, const char *id, const char *body);

/* 1 when the id matches ^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$ without "--". */
int ta_id_valid(const char *id);

/* One Server-Sent Event. */
typedef struct ta_event {
    long long id; /* -1 when the event had no id line */
    char type[32];
    char *data; /* owned */
} ta_event_t;

/* A watch stream read without blocking the test between reads. */
typedef struct ta_watch {
    void *multi, *easy, *hdrs; /* curl handles */
    char *pending;             /* unparsed stream text */
    size_t npending;
    char *all; /* everything received (for secret checks) */
    size_t nall;
    char *headers;
    size_t nheaders;
    ta_event_t *events; /* ADDED, MODIFIED, DELETED (what ta_watch_wait counts) */
    size_t nevents, cap;
    ta_event_t *env_events; /* `event: EVENT` (an environment's event), apart */
    size_t nenv_events, env_cap;
    size_t ncomments; /* ": ..." lines seen */
    int done;         /* the transfer ended */
    long status;
} ta_watch_t;

/* Opens GET <path> with key TA_KEY1; last_event_id may be NULL. */
int ta_watch_open(ta_watch_t *w, const ta_agent_t *a, const char *path, const char *last_event_id);
/* Reads until at least n events arrived, the stream ended, or timeout;
 * returns the number of events. n 0 waits for the status line only. */
size_t ta_watch_wait(ta_watch_t *w, size_t n, int timeout_ms);
/* Reads for exactly ms milliseconds (to prove nothing more arrives). */
void ta_watch_drain(ta_watch_t *w, int ms);
void ta_watch_close(ta_watch_t *w);

/* Milliseconds of a monotonic clock. */
long long ta_now_ms(void);
void ta_sleep_ms(int ms);

/* A connected non-blocking TCP socket to 127.0.0.1:port, or -1. */
int ta_connect(int port);
/* Sends all bytes (waiting up to timeout_ms); 0, or -1 when the peer is
 * gone or the time ran out. */
int ta_send_all(int fd, const void *data, size_t len, int timeout_ms);
/* Reads what arrives within timeout_ms into buf (appending, NUL-terminated)
 * until the peer closes: returns 1 when closed, 0 on timeout, -1 on error
 * (e.g. reset). */
int ta_recv_until_close(int fd, char **buf, size_t *len, int timeout_ms);

/* Occurrences of needle in haystack. */
size_t ta_count(const char *haystack, const char *needle);

/* --- the Azure emulator ---------------------------------------------------
 *
 * bin/azsim started on a free port with a config that accepts one client
 * (TA_AZ_TENANT / TA_AZ_CLIENT / TA_AZ_SECRET, the client-secret flow) and
 * only the fixture's subscription, resource groups and storage accounts,
 * so an agent that sends anything else fails visibly.
 */
#define TA_AZ_SUB "00000000-0000-0000-0000-000000000000"
#define TA_AZ_TENANT "itest-tenant"
#define TA_AZ_CLIENT "itest-client"
#define TA_AZ_SECRET "itest-client-SECRET-v4lue"
#define TA_HASH_KEY "itest-spec-hash-key"
/* DEV8_ACTIVITY_KEY of an agent against azsim (used when activity.url is set). */
#define TA_ACTIVITY_KEY "itest-activity-key-5ecret"
/* ARM paths of the fixture's eastus region. */
#define TA_AZ_RG "/subscriptions/" TA_AZ_SUB "/resourceGroups/rg-dev8-eastus"
#define TA_AZ_CG TA_AZ_RG "/providers/Microsoft.ContainerInstance/containerGroups"
#define TA_AZ_SA TA_AZ_RG "/providers/Microsoft.Storage/storageAccounts/dev8eastus"
#define TA_AZ_FS TA_AZ_SA "/fileServices/default/shares"
#define TA_AZ_ACI_V "api-version=2025-09-01"
#define TA_AZ_FS_V "api-version=2025-01-01"

typedef struct ta_sim {
    th_proc_t proc;
    int port;
    int starts;
    char *bin;         /* owned */
    char *config_path; /* owned */
    char token[4096];  /* ARM bearer token, after ta_sim_token */
} ta_sim_t;

/* Starts azsim with extra flags (NULL-terminated, may be NULL), e.g.
 * {"--provision-ms","300",NULL}; 0 or -1. */
int ta_sim_start(ta_sim_t *s, const char *const extra_args[]);
/* SIGTERM, waits (10 s); the exit status like th_stop (log tail printed
 * when not 0). Frees what ta_sim_start allocated; safe to call twice. */
int ta_sim_stop(ta_sim_t *s);
/* A control API call (/_azsim/...), no authentication. */
long ta_sim_ctl(const ta_sim_t *s, const char *method, const char *path, const char *body,
                th_resp_t *out);
/* GET of a control path, parsed; NULL on failure. Caller deletes. */
cJSON *ta_sim_get(const ta_sim_t *s, const char *path);
/* POST /_azsim/faults with body; 0 when azsim answered 200. */
int ta_sim_faults(const ta_sim_t *s, const char *json);
/* Obtains an ARM token from azsim's token endpoint with the client-secret
 * flow, as the agent does, into s->token; 0 or -1. */
int ta_sim_token(ta_sim_t *s);
/* An ARM call with s->token (fetched on first use); path includes the
 * query. Returns the status (0 on transport failure). */
long ta_sim_arm(ta_sim_t *s, const char *method, const char *path, const char *body,
                th_resp_t *out);

/* In a /_azsim/resources answer: the container group / file share of that
 * name (case-insensitive, as ARM names are), or NULL. Borrowed from res. */
const cJSON *ta_sim_group(const cJSON *res, const char *name);
const cJSON *ta_sim_share(const cJSON *res, const char *name);
/* In a /_azsim/stats answer: requests of operation op ("containerGroups.
 * delete") answered with status ("202"), or with any status when NULL. */
long ta_sim_stat(const cJSON *stats, const char *op, const char *status);
/* Entries of the stats' "deleted" list of kind ("containerGroup",
 * "fileShare") whose ARM id ends with "/<name>" (any name when NULL). */
int ta_sim_deleted(const cJSON *stats, const char *kind, const char *name);

/* --- an agent against an emulator (the reconcile tests) ------------------
 *
 * azsim with fast timing (--provision-ms 300, --delete-ms 200,
 * --share-recreate-ms 500) and an agent pointed at it with resyncSeconds
 * TA_RC_RESYNC_S, statusRefreshSeconds TA_RC_REFRESH_S, workspace ports
 * [TA_RC_PORT] and mountPath TA_RC_MOUNT (not the defaults, so the tests
 * see that the config is what reaches Azure).
 */
#define TA_RC_RESYNC_S 3
#define TA_RC_REFRESH_S 4
#define TA_RC_PORT 8443
#define TA_RC_MOUNT "/home/itest"
#define TA_RC_CONTROLLER "dev8-itest"
#define TA_RC_IMAGE_PYTHON "vaibhavsing/dev8-workspace-python:latest"
#define TA_RC_IMAGE_NODE "vaibhavsing/dev8-workspace:latest"

typedef struct ta_rc {
    ta_sim_t sim;
    ta_agent_t agent;
} ta_rc_t;

/* Starts both and waits until the agent is ready (it obtained a token
 * from azsim); 0 or -1. */
int ta_rc_start(ta_rc_t *c);
/* Stops the agent, then azsim (each only if running); 0 when both exited
 * with status 0 (a sanitized build exits non-zero on leaks). */
int ta_rc_stop(ta_rc_t *c);
/* cmocka fixtures around ta_rc_start / ta_rc_stop (*state is a ta_rc_t). */
int ta_rc_setup(void **state);
int ta_rc_teardown(void **state);
/* Polls GET /readyz until 200; 0, or -1 on timeout. */
int ta_wait_ready(const ta_agent_t *a, int timeout_ms);

/* --- waiting for convergence ----------------------------------------------
 *
 * A check looks at one parsed answer (NULL when there was none or it was
 * not 200) and says whether the wait is over. The waits poll every 20 ms
 * (th_wait_until) and, on timeout, print the last answer and return NULL,
 * so that the caller's assertion names what was still wrong.
 */
typedef int (*ta_check_fn)(const cJSON *j, const void *arg);

/* GET /api/v1/environments/<id>: the object, or NULL (*status says why;
 * status may be NULL). Caller deletes. */
cJSON *ta_env_get(const ta_agent_t *a, const char *id, long *status);
/* Polls the environment until check(obj, arg); the last object or NULL. */
cJSON *ta_env_wait(const ta_agent_t *a, const char *id, ta_check_fn check, const void *arg,
                   int timeout_ms);
/* Checks for ta_env_wait: status.phase equals arg (a string). */
int ta_is_phase(const cJSON *obj, const void *phase);
/* Polls until GET answers 404; 0, or -1 on timeout. */
int ta_env_wait_gone(const ta_agent_t *a, const char *id, int timeout_ms);
/* Polls a control path of azsim until check(answer, arg); the answer or
 * NULL. Caller deletes. */
cJSON *ta_sim_wait(const ta_sim_t *s, const char *path, ta_check_fn check, const void *arg,
                   int timeout_ms);

#endif
