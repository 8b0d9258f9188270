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

#endif
