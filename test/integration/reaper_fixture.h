/*
 * Fixture of the reaper integration tests (test_reaper*.c): the real
 * bin/azsim and bin/dev8-agent, wired together, with helpers to drive the
 * agent's API, to act on azsim directly (as an operator or another
 * controller would, with a token from azsim's token endpoint) and to read
 * what azsim saw: its control API (/_azsim/stats, /_azsim/resources,
 * /_azsim/faults) and its request log (one JSON line per request, with
 * millisecond timestamps), which says exactly which resource was mutated
 * when.
 *
 * Self-contained on purpose (own config, own azsim start): it only uses
 * the harness and the JSON helpers of agent_fixture.h, so it does not
 * depend on the azsim helpers another fixture is growing. No cmocka
 * dependency: failures are return values.
 */
#ifndef D8_TEST_REAPER_FIXTURE_H
#define D8_TEST_REAPER_FIXTURE_H

#include "harness.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define RF_CONTROLLER "dev8-test"
#define RF_OTHER_CONTROLLER "dev8-other"
#define RF_KEY "reaper-itest-key"
#define RF_SUB "00000000-0000-0000-0000-0000000000aa"
#define RF_TENANT "rf-tenant"
#define RF_CLIENT "rf-client"
#define RF_SECRET "rf-client-s3cret"
#define RF_HASH_KEY "rf-spec-hash-key"
#define RF_ACI_V "api-version=2025-09-01"
#define RF_FS_V "api-version=2025-01-01"
#define RF_NREGIONS 2

/* Region i: name, resource group, storage account. */
extern const char *const rf_region_name[RF_NREGIONS]; /* eastus, westeurope */

typedef struct rf_opts {
    int group_grace;             /* reaper.containerGroupGraceSeconds (default 2) */
    int share_grace;             /* reaper.fileShareGraceSeconds (default 4) */
    int max_deletes;             /* reaper.maxDeletesPerCycle (default 20) */
    double max_fraction;         /* reaper.maxOrphanFraction (default 1.0: guard off) */
    int dry_run;                 /* reaper.dryRun */
    int status_refresh;          /* controller.statusRefreshSeconds (default 5) */
    const char *const *sim_args; /* extra azsim flags, NULL-terminated, or NULL */
} rf_opts_t;

#define RF_MAX_RUNS 64

typedef struct rf {
    /* azsim */
    th_proc_t sim;
    int sim_port;
    char *sim_bin, *sim_cfg;
    char token[4096];
    long sim_log_off; /* rf_sim_log_lines resumes here */
    /* dev8-agent */
    th_proc_t agent;
    int port;
    char *agent_bin, *agent_cfg;
    int runs;                    /* launches so far */
    char logs[RF_MAX_RUNS][512]; /* log path of each run */
    rf_opts_t o;
} rf_t;

/* Starts azsim (--provision-ms 300 --delete-ms 200 + o->sim_args), then
 * the agent against it; waits until the agent's Azure token was obtained.
 * 0, or -1 (what failed is printed). o may be NULL (defaults). */
int rf_start(rf_t *f, const rf_opts_t *o);
/* SIGTERM to both, waits 10 s each. 0 when both exited 0 (a sanitized
 * process exits non-zero on leaks); the failing log tail is printed. Safe
 * to call twice. */
int rf_stop(rf_t *f);
/* Stops the agent with sig (SIGTERM: graceful; SIGKILL: a crash), stores
 * that exit status in *stop_status, and starts it again with the same
 * config and port; 0 or -1. */
int rf_agent_restart(rf_t *f, int sig, int *stop_status);
/* Starts the agent again after it was stopped (e.g. by th_stop on
 * f->agent) with the same config and port, and waits until ready; 0 or -1. */
int rf_agent_launch(rf_t *f);
/* Waits until every region was listed by the current agent run
 * (status.regions[].lastListTime set): the reaper cycles from then on. */
int rf_wait_listed(rf_t *f, int timeout_ms);

/* --- the agent's API ------------------------------------------------------ */

/* method path [body] with the API key; returns the HTTP status, and the
 * parsed answer in *out when out is not NULL (NULL when not JSON). */
long rf_api(rf_t *f, const char *method, const char *path, const char *body, cJSON **out);
/* A spec body (region, powerState Running/Stopped, storagePolicy
 * Delete/Retain); malloc'd. */
char *rf_spec(int region, int running, int retain);
/* PUT /api/v1/environments/<id>; returns the status. */
long rf_put(rf_t *f, const char *id, int region, int running, int retain);
/* DELETE /api/v1/environments/<id>; returns the status. */
long rf_delete(rf_t *f, const char *id);
/* Full sync: ids[i] with region[i], running[i], retain[i] (running and
 * retain may be NULL: Running, Delete). Returns the status. */
long rf_sync(rf_t *f, const char *const ids[], const int region[], const int running[],
             const int retain[], size_t n);
cJSON *rf_status(rf_t *f);
cJSON *rf_orphans(rf_t *f);
/* The item of an orphans answer of that kind ("containerGroup",
 * "fileShare") and env id, or NULL. */
const cJSON *rf_orphan(const cJSON *orphans, const char *kind, const char *env_id);
/* Value of the first sample of a metric family (name followed by a space
 * or '{' at the start of a line, optionally matching a label fragment
 * such as kind="fileShare"); NAN when absent. */
double rf_metric(rf_t *f, const char *name, const char *label);
/* Waits until every id has status.phase equal to the phase at the same
 * index (NULL: any phase; the string "GONE": answers 404). */
int rf_wait_phases(rf_t *f, const char *const ids[], const char *const phases[], size_t n,
                   int timeout_ms);
/* All logs of every agent run so far, concatenated; malloc'd. */
char *rf_agent_logs(const rf_t *f);

/* --- azsim ------------------------------------------------------------------ */

cJSON *rf_sim_get(rf_t *f, const char *path); /* control GET, parsed, or NULL */
int rf_faults(rf_t *f, const char *json);     /* POST /_azsim/faults; 0 when 200 */
/* An ARM request with a token of azsim's token endpoint (fetched on first
 * use; refreshed once on 401), marked X-Request-Id: rftest-<n> so azsim's
 * log tells the test's own requests from the agent's. Retries 429/5xx/transport failures a few
 * times (faults may be on). Returns the final status; body in *out when
 * out is not NULL (then th_resp_free it). */
long rf_arm(rf_t *f, const char *method, const char *path, const char *body, th_resp_t *out);
/* ARM path of a container group / file share of region i (no query). */
void rf_group_path(char *out, size_t n, int region, const char *name);
void rf_share_path(char *out, size_t n, int region, const char *name);
/* PUT of a container group with the given tags (a JSON object text, or
 * NULL for none) and no volume; PUT of a share with metadata (JSON object
 * text or NULL). Return the status. */
long rf_arm_put_group(rf_t *f, int region, const char *name, const char *tags_json);
long rf_arm_put_share(rf_t *f, int region, const char *name, const char *metadata_json);
long rf_arm_delete_group(rf_t *f, int region, const char *name);
long rf_arm_stop_group(rf_t *f, int region, const char *name);

/* In a /_azsim/resources answer: a group / share by name in region i
 * (matched on the ARM id's resource group), or NULL. */
const cJSON *rf_res_group(const cJSON *res, int region, const char *name);
const cJSON *rf_res_share(const cJSON *res, int region, const char *name);
/* Entries of a stats "deleted" list of kind whose ARM id ends in /name. */
int rf_deleted_count(const cJSON *stats, const char *kind, const char *name);
/* The "at" of the first such entry in wall milliseconds, or -1. */
int64_t rf_deleted_at(const cJSON *stats, const char *kind, const char *name);

/* One request line of azsim's log. */
typedef struct rf_req {
    int64_t ts_ms; /* wall clock, millisecond precision */
    char method[8];
    char path[512];
    int status;
    int by_test; /* sent by rf_arm (X-Request-Id "rftest-..."), not the agent */
} rf_req_t;
/* The request lines azsim logged since the previous call (or since start
 * when all is set, without moving the cursor). Returns how many were put
 * into *out (malloc'd array; free it). */
size_t rf_sim_requests(rf_t *f, int all, rf_req_t **out);
/* 1 for PUT/PATCH/DELETE/POST. */
int rf_req_mutates(const rf_req_t *r);

/* --- time and text ----------------------------------------------------------- */

int64_t rf_wall_ms(void);
/* RFC 3339 ("2026-11-27T12:00:00Z", optional fraction) to wall ms; -1. */
int64_t rf_parse_time(const char *s);
/* Lines of text containing every one of the needles (NULL-terminated). */
size_t rf_count_lines(const char *text, const char *const needles[]);

#endif
