/*
 * pkg/preflight: checks a subscription against what dev8-agent needs
 * before the first environment fails — `dev8-agent preflight` and
 * GET /api/v1/preflight.
 *
 * preflight_run reads the subscription through the agent's Azure client
 * (pkg/azure: curl multi on the caller's loop, nothing blocks) and answers
 * once with a report: one check per line, each pass, warn or fail with a
 * message and, unless it passed, the fix. The checks, in order:
 *   credentials (a token for the client's scope), providers
 *   Microsoft.ContainerInstance and Microsoft.Storage registered, then per
 *   region: resource group, permissions (preflight_actions), storage
 *   account kind/SKU, shared key access, network rules, large file shares,
 *   share soft delete, limits.maxStorageGB, ACI quota (usages), ACI
 *   capabilities (the largest spec: 4 cores, 16 GB) and, per subnetIds
 *   entry, the subnet join action; then, per registry pulled with a
 *   managed identity, the identity's assign action; then each image.
 *
 * The evaluators (preflight_eval_*) are pure functions of ARM's JSON,
 * exposed for the unit tests.
 */
#ifndef D8_PREFLIGHT_H
#define D8_PREFLIGHT_H

#include "azure/azure.h"
#include "base/base.h"
#include "config/config.h"

#include <cjson/cJSON.h>
#include <stddef.h>

typedef enum preflight_status {
    PREFLIGHT_PASS = 0,
    PREFLIGHT_WARN,
    PREFLIGHT_FAIL,
} preflight_status_t;

/* "pass", "warn" or "fail". */
const char *preflight_status_name(preflight_status_t st);

/* One line of the report. Strings owned by the report. fix is "" when the
 * check passed. */
typedef struct preflight_check {
    char *name;
    preflight_status_t status;
    char *message;
    char *fix;
} preflight_check_t;

typedef struct preflight_report {
    preflight_check_t *checks;
    size_t n, cap;
    size_t count[3]; /* by preflight_status_t */
} preflight_report_t;

/* Zeroes a report. */
void preflight_report_init(preflight_report_t *r);
/* Frees what the report holds and zeroes it; NULL is a no-op. */
void preflight_report_release(preflight_report_t *r);
/* Appends a check; name, fix and the formatted message are copied. */
void preflight_add(preflight_report_t *r, const char *name, preflight_status_t st, const char *fix,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* {"checks":[{name,status,message,fix}],"summary":{pass,warn,fail}}; the
 * caller owns the result. */
cJSON *preflight_report_json(const preflight_report_t *r);
/* The human table: one line per check (status, name, message) and an
 * indented "fix:" line under each one that did not pass, then a summary
 * line. Appended to out. */
void preflight_report_table(const preflight_report_t *r, d8_buf_t *out);

/*
 * The actions of Azure RBAC the agent performs on a region's resource
 * group: the one list that `--print-actions`, hack/azure/role.json and the
 * README carry. NULL-terminated, static.
 */
extern const char *const preflight_actions[];

/*
 * 1 when an entry of ARM's permissions list (Permissions_ListForResourceGroup
 * "value") allows `action`: one entry whose actions match it and whose
 * notActions do not (wildcards '*', any case), as Azure RBAC reads role
 * definitions. perms borrowed.
 */
int preflight_allows(const cJSON *perms, const char *action);

/* The evaluators: each adds its check(s) to r from an answer body (NULL
 * or unreadable reads as missing fields). `name` is the check's name. */
void preflight_eval_provider(preflight_report_t *r, const char *ns, const char *body);
/* The actions of preflight_actions the permissions list does not allow. */
void preflight_eval_permissions(preflight_report_t *r, const char *name, const char *rg,
                                const char *body);
/* Kind/SKU, shared key access, network rules, large file shares and
 * maxStorageGB of one account body. prefix names the region. */
void preflight_eval_account(preflight_report_t *r, const char *prefix, const char *account,
                            int max_storage_gb, const char *body);
/* Share soft delete of a FileServices_GetServiceProperties body. */
void preflight_eval_file_service(preflight_report_t *r, const char *name, const char *account,
                                 const char *body);
/* ContainerGroups and StandardCores of a usages list. */
void preflight_eval_usages(preflight_report_t *r, const char *name, const char *region,
                           const char *body);
/* Linux, no-GPU container group capabilities against cpu and memory_gb. */
void preflight_eval_capabilities(preflight_report_t *r, const char *name, const char *region,
                                 double cpu, double memory_gb, const char *body);
/* An image reference and the registries[] entry it pulls with (NULL:
 * anonymous): warn on anonymous Docker Hub pulls. */
void preflight_eval_image(preflight_report_t *r, const char *key, const char *ref,
                          const config_registry_t *reg);
/* Whether a Permissions_ListForResource body allows `action` on the
 * resource `id` (a subnet the groups join, an identity they are given);
 * fix says which grant is missing. */
void preflight_eval_resource_action(preflight_report_t *r, const char *name, const char *id,
                                    const char *action, const char *fix, const char *body);

typedef struct preflight preflight_t;
/* The report is borrowed for the callback. */
typedef void (*preflight_cb)(void *ud, const preflight_report_t *report);

/*
 * Starts the checks of cfg (borrowed; must outlive the run) through az
 * (borrowed). cb runs exactly once, later from the loop, with the report;
 * then the run frees itself. When az is freed first every pending read
 * fails with D8_ECANCELED and the report says so. Returns 0, or
 * D8_EINVAL (cb is then never called).
 */
int preflight_run(azure_client_t *az, const config_t *cfg, preflight_cb cb, void *ud);

#endif
