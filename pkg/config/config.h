/*
 * pkg/config: the YAML configuration of DESIGN.md section 5b, read with
 * libyaml against a schema (each key knows the node type it takes), fully
 * validated before anything is applied, then overridden by the
 * environment variables the design names. Errors read
 * "file:line:column: key: what is wrong".
 *
 * Secrets (API keys, Azure client secret, webhook secret, spec hash key)
 * never come from the YAML: only from the environment or from files.
 */
#ifndef D8_CONFIG_H
#define D8_CONFIG_H

#include <stddef.h>

typedef struct config_region {
    char *name; /* the cloudRegion value in specs */
    char *resource_group;
    char *storage_account;
    char *subscription_id; /* its own, else azure.subscriptionId (or env
                              AZURE_SUBSCRIPTION_ID); always set once loaded */
    /* subnetIds: VNet-injected container groups (private IP, no DNS
     * label); 0 entries: public groups. Subnet resource ids. */
    char **subnet_ids;
    size_t nsubnet_ids;
} config_region_t;

typedef struct config_image {
    char *key; /* baseImage value in specs */
    char *ref; /* container image reference */
} config_image_t;

/*
 * registries[]: the credentials of a private registry server, used for
 * every image whose reference names that server. Either username and
 * password (the password read from the environment variable passwordEnv
 * or the file passwordFile at load time: secret, never logged, wiped by
 * config_free) or a user-assigned managed identity (its resource id) that
 * ACI uses for the pull.
 */
typedef struct config_registry {
    char *server;        /* lower case, host[:port] */
    char *username;      /* NULL with identity */
    char *password;      /* secret; NULL with identity */
    char *identity;      /* userAssignedIdentities resource id, or NULL */
    char *password_env;  /* passwordEnv as written, or NULL */
    char *password_file; /* passwordFile as written, or NULL */
} config_registry_t;

/* pricing.regions.<name>: one region's prices (pkg/usage). */
typedef struct config_price {
    char *region;            /* a configured region's name */
    double vcpu_second;      /* per vCPU-second */
    double memory_gb_second; /* per GiB-second of memory */
    double share_gb_month;   /* per GiB-month of share quota */
    size_t line, column;     /* where it is in the file, for errors */
} config_price_t;
/* All fields are owned by the config and readable by callers. */
/* An HTTP GET probe of the workspace container (ACI ContainerProbe). */
typedef struct config_probe {
    char *path;                /* httpGet.path; "" = no probe (default) */
    int port;                  /* httpGet.port; 0 = workspace.ports[0] */
    int initial_delay_seconds; /* 0 */
    int period_seconds;        /* 10 */
    int failure_threshold;     /* 3 */
    int timeout_seconds;       /* 1 */
} config_probe_t;

typedef struct config {
    /* controller */
    char *controller_name;         /* default "dev8" */
    char *listen_host;             /* from controller.listen, default 0.0.0.0; an IP
                                      literal ("::1" without brackets; "localhost"
                                      becomes 127.0.0.1) */
    int listen_port;               /* default 8080 */
    int resync_seconds;            /* 60 */
    int status_refresh_seconds;    /* 300 */
    int shutdown_grace_seconds;    /* 20 */
    int auto_stop_warning_minutes; /* AutoStopPending this long before an auto-stop; 5 (0: none) */
    int auto_stop_minute_seconds;  /* seconds in an auto-stop "minute"; 60 (tests and demos) */
    int max_concurrent_reconciles; /* 16 */
    char *state_file;              /* "" = none */
    /* controller.probeListen (parsed as controller.listen); NULL = no
     * probe listener, the default */
    char *probe_listen_host;
    int probe_listen_port;
    int state_commit_ms; /* 2: group-commit window of durable answers */
    /* 60: at most one write of "<state_file>.usage" per this many seconds */
    int usage_persist_seconds;
    /* api */
    char *keys_file;            /* "" = env AGENT_API_KEYS */
    size_t max_body_bytes;      /* 1048576 */
    size_t max_sync_body_bytes; /* 67108864 */
    int max_sync_items;         /* 50000: items of one full sync */
    size_t max_connections;     /* 1024 */
    int watch_ring_size;        /* 4096 events kept for watch resume */
    char **api_keys;            /* resolved keys (secret; never logged) */
    size_t napi_keys;           /* may be 0: no key configured anywhere */
    /* api.maxConnectionsPerClient: 256; 0 = no per-address limit */
    size_t max_connections_per_client;
    /* api.tls: HTTPS on the API listener when tls_cert_file is not "". */
    char *tls_cert_file;      /* "" = plain HTTP */
    char *tls_key_file;       /* set exactly when tls_cert_file is */
    char *tls_client_ca_file; /* "" = no client certificates asked */
    int tls_reload_seconds;   /* 10: how often the files are checked */
    /* "file:line:column" of each of the three keys in the config file ("" when
     * not written), for errors about the files found when they are loaded. */
    char *tls_cert_at, *tls_key_at, *tls_client_ca_at;
    /* azure */
    char *azure_auth; /* auto|clientSecret|workloadIdentity|managedIdentity */
    /* azure.cloud: AzurePublicCloud (default) | AzureChinaCloud |
     * AzureUSGovernment | Custom. A named cloud sets arm_endpoint,
     * authority_host and token_scope from pkg/azure/cloud.h (without an
     * explicit cloud, armEndpoint and authorityHost may still redirect the
     * public cloud's endpoints, e.g. to an emulator); Custom takes all
     * three from the file. */
    char *cloud;
    char *token_scope; /* always set once loaded */
    char *subscription_id;
    char *arm_endpoint;
    char *authority_host;
    char *imds_endpoint;
    char *aci_api_version;
    char *storage_api_version;
    int max_inflight; /* 32 */
    /* azure.rateLimits: the client-side buckets mirroring ARM's and ACI's
     * meters (per subscription and region). */
    int rl_read_burst;           /* 250 */
    int rl_reads_per_second;     /* 25 */
    int rl_write_burst;          /* 200 */
    int rl_writes_per_second;    /* 10 */
    int rl_delete_burst;         /* 200 */
    int rl_deletes_per_second;   /* 10 */
    int rl_aci_creates_burst;    /* 100 (ACI: 100 per 5 minutes) */
    int rl_aci_creates_per_hour; /* 300 */
    int rl_aci_deletes_burst;    /* 100 */
    int rl_aci_deletes_per_hour; /* 300 */
    config_region_t *regions;
    size_t nregions;
    /* images, workspace, limits */
    config_image_t *images;
    size_t nimages;
    config_registry_t *registries; /* registries: private registry credentials */
    size_t nregistries;
    int *ports; /* workspace.ports, default [8080] */
    size_t nports;
    char *mount_path; /* /home/dev8 */
    /* workspace.readinessProbe / livenessProbe: ACI probes on the IDE;
     * off while path is "" (the default). */
    config_probe_t readiness_probe;
    config_probe_t liveness_probe;
    int max_storage_gb; /* 1024 */
    /* reaper */
    int reaper_enabled;
    int reaper_dry_run;
    int reaper_group_grace_seconds;    /* 900 */
    int reaper_share_grace_seconds;    /* 259200 */
    int reaper_max_deletes_per_cycle;  /* 20 */
    double reaper_max_orphan_fraction; /* 0.5 */
    /* webhook */
    char *webhook_url;
    char *webhook_secret_env; /* name of the env var holding the secret */
    /* activity (workspaces report their own activity) */
    char *activity_url;         /* base URL the containers reach; "" = off */
    char *activity_key_env;     /* env var holding the token HMAC key; DEV8_ACTIVITY_KEY */
    char *activity_listen_host; /* activity.listen: a second listener, NULL = none */
    int activity_listen_port;
    /* log */
    char *log_level; /* debug|info|warn|error */
    /* pricing and retention (pkg/usage) */
    char *currency;         /* pricing.currency, "USD" */
    config_price_t *prices; /* pricing.regions, may be empty: quantities only */
    size_t nprices;
    double retain_days; /* retention.retainDays, 30; 0 = retained shares are kept forever */
} config_t;

/*
 * Loads defaults, then the YAML file (path may be NULL for defaults only),
 * then environment overrides (AGENT_API_KEYS, AZURE_SUBSCRIPTION_ID, ...).
 * On success returns 0 and a new config in *out (caller frees). On failure
 * returns a negative D8_* error, *out stays NULL, and err holds one line
 * "file:line:column: key: message" (line/column 1-based): D8_EIO (a file
 * cannot be read), D8_ETOOBIG (config over 64 KiB), D8_EPARSE (YAML
 * syntax), D8_EINVAL (schema or environment). err may be NULL.
 */
int config_load(const char *path, config_t **out, char *err, size_t errlen);

/* Same, from a YAML text already in memory; `name` is used in errors. */
int config_load_string(const char *name, const char *yaml, size_t len, config_t **out, char *err,
                       size_t errlen);

/* Frees the config (wiping key material). NULL is a no-op. */
void config_free(config_t *cfg);

/* The region entry named `name`, or NULL. */
const config_region_t *config_region(const config_t *cfg, const char *name);
/* The image reference for key `key`, or NULL. */
const char *config_image(const config_t *cfg, const char *key);
/*
 * The registries[] entry whose server the image reference `ref` pulls
 * from (Docker's rule: the first path component is a registry host when
 * it holds a '.' or ':' or is "localhost", else Docker Hub, which matches
 * a server of "docker.io" or "index.docker.io"), or NULL (anonymous
 * pull). Compared without regard to case.
 */
const config_registry_t *config_registry_for(const config_t *cfg, const char *ref);

#endif
