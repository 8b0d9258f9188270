/*
 * dev8-agent: flags -> config -> agent_run. Everything else is in pkg/.
 */
#include "agent/agent.h"
#include "config/config.h"
#include "log/log.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: dev8-agent --config FILE [--check-config]\n"
                 "       dev8-agent --check-config FILE\n"
                 "       dev8-agent preflight --config FILE [--json]\n"
                 "       dev8-agent preflight --print-actions\n"
                 "       dev8-agent --version | --help\n"
                 "\n"
                 "Reconciles Dev8 environment specs with Azure Container Instances and\n"
                 "Azure Files. Secrets come from the environment: AGENT_API_KEYS,\n"
                 "AZURE_CLIENT_SECRET / AZURE_FEDERATED_TOKEN_FILE, DEV8_SPEC_HASH_KEY,\n"
                 "and the variable named by webhook.secretEnv.\n");
}

/* 1 when argv[*i] is `--config FILE` (then *i moves past FILE) or
 * `--config=FILE`, with FILE (borrowed from argv) in *path; else 0. */
static int config_arg(int argc, char **argv, int *i, const char **path)
{
    if (strcmp(argv[*i], "--config") == 0 && *i + 1 < argc) {
        *path = argv[++*i];
        return 1;
    }
    if (strncmp(argv[*i], "--config=", 9) == 0) {
        *path = argv[*i] + 9;
        return 1;
    }
    return 0;
}

/* Loads the config at path into *cfg (owned by the caller); 0, or 1 (the
 * exit status) with the error printed on stderr. */
static int load_config(const char *path, config_t **cfg)
{
    char err[512];
    if (config_load(path, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    return 0;
}

/* `dev8-agent preflight ...`: the checks of pkg/preflight, status 1 on
 * any fail. */
static int preflight_main(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    for (int i = 2; i < argc; i++) {
        if (config_arg(argc, argv, &i, &path))
            continue;
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--print-actions") == 0) {
            agent_print_actions();
            return 0;
        } else {
            fprintf(stderr, "dev8-agent: unknown preflight argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "dev8-agent: preflight needs --config FILE\n");
        usage(stderr);
        return 2;
    }
    config_t *cfg = NULL;
    if (load_config(path, &cfg) != 0)
        return 1;
    /* The table is the output: only warnings and errors go to the log. */
    log_setup(LOG_WARN, NULL);
    int code = agent_preflight(cfg, json);
    config_free(cfg);
    return code;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int check = 0;
    if (argc > 1 && strcmp(argv[1], "preflight") == 0)
        return preflight_main(argc, argv);
    for (int i = 1; i < argc; i++) {
        if (config_arg(argc, argv, &i, &path))
            continue;
        if (strcmp(argv[i], "--check-config") == 0) {
            check = 1;
            /* `--check-config FILE` reads as naturally as `--config FILE
             * --check-config`; both work. */
            if (i + 1 < argc && argv[i + 1][0] != '-')
                path = argv[++i];
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("dev8-agent %s\n", D8_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "dev8-agent: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "dev8-agent: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    config_t *cfg = NULL;
    if (load_config(path, &cfg) != 0)
        return 1;
    if (check) {
        printf("%s: ok\n", path);
        config_free(cfg);
        return 0;
    }
    log_level_t lvl = LOG_INFO;
    log_level_parse(cfg->log_level, &lvl);
    log_setup(lvl, NULL);
    int code = agent_run(cfg);
    config_free(cfg);
    return code;
}
