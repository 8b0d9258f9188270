/*
 * pkg/agent internals (agent__ prefix): the application wiring that turns
 * the configuration into the option structs of the libraries, so that no
 * library includes config/config.h. Every default lives in the
 * configuration (pkg/config); these only translate. Exposed for the unit
 * tests.
 */
#ifndef D8_AGENT_INT_H
#define D8_AGENT_INT_H

#include "azure/azure.h"
#include "config/config.h"
#include "curluv/curluv.h"
#include "metrics/metrics.h"
#include "store/store.h"
#include "usage/usage.h"
#include "webhook/webhook.h"

#include <stddef.h>
#include <uv.h>

/*
 * The Azure client options of cfg (a loaded config): endpoints, api
 * versions, credential kind, maxInflight and the rate-limit buckets (ACI's
 * two windows per kind). Strings are borrowed from cfg. Credentials stay
 * NULL (the client reads the environment) and the client's own tuning
 * (timeouts, retries) stays zero, its defaults.
 */
void agent__azure_opts(azure_client_opts_t *o, const config_t *cfg);

/*
 * One scope per cfg->regions[i] (same index) of a loaded config, which
 * gives every region its subscription. Returns an array owned by the
 * caller (free()); its strings are borrowed from cfg.
 */
azure_scope_t *agent__scopes_new(const config_t *cfg);

/*
 * Starts the webhook of cfg: 0 with *out NULL when webhook.url is empty
 * (disabled); 0 and a running webhook; or D8_EINVAL when the URL is set
 * but the environment variable named by webhook.secretEnv is unset or
 * empty (refusing to send unsigned deliveries; err names the variable).
 * cu may be NULL (the webhook then has its own curl multi). Other
 * pointers borrowed as webhook_new says.
 */
int agent__webhook_new(uv_loop_t *loop, curluv_t *cu, const config_t *cfg, store_t *store,
                       metrics_t *metrics, webhook_t **out, char *err, size_t errlen);

/*
 * Raises the soft open-file limit to the hard one (connections are
 * descriptors; with none left no listener accepts, the probe listener
 * included) and warns when it stays below api.maxConnections + 512.
 */
void agent__raise_nofile(const config_t *cfg);

/*
 * The usage accountant of cfg: its regions, the price table
 * (pricing.regions; a region without prices reports quantities only) and
 * pricing.currency; dev8_usage_* registered in metrics (may be NULL).
 */
usage_t *agent__usage_new(const config_t *cfg, metrics_t *metrics);
#endif
