/*
 * pkg/agent: the dev8-agent process — one context that owns the loop, the
 * store, the metrics, the API server and (as they arrive) the controller
 * parts, and the signal handling of DESIGN.md section 2.
 */
#ifndef D8_AGENT_H
#define D8_AGENT_H

#include "config/config.h"

/*
 * Runs the agent with cfg (borrowed) until SIGTERM/SIGINT and a graceful
 * stop. Returns the process exit code: 0 after a clean stop, 1 when it
 * could not start (the reason was logged).
 */
int agent_run(const config_t *cfg);

/*
 * `dev8-agent preflight`: runs pkg/preflight's checks of cfg (borrowed)
 * against Azure on a loop of its own and prints the table (json: the
 * GET /api/v1/preflight document) to stdout. Returns 0 when nothing
 * failed, 1 when a check failed, 2 when the run itself could not start.
 */
int agent_preflight(const config_t *cfg, int json);

/* Prints the RBAC actions the agent needs, one per line (--print-actions). */
void agent_print_actions(void);

#endif
