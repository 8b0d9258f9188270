/*
 * azsim: the Azure emulator (DESIGN.md section 7). Flags -> config ->
 * model -> HTTP server -> uv_run. SIGTERM/SIGINT close everything and
 * exit 0; a second signal exits at once.
 */
#include "azsim/azsim.h"
#include "azure/cloud.h"
#include "base/base.h"
#include "log/log.h"
#include "sigstop/sigstop.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#ifndef D8_VERSION
#define D8_VERSION "dev"
#endif

typedef struct app {
    uv_loop_t loop;
    sigstop_t *sig;
    azsim_t *sim;
    azsim_server_t *srv;
} app_t;

/* getopt_long's answers for the long options, above any short option's character. */
enum {
    F_LISTEN = 256,
    F_CONFIG,
    F_PROVISION,
    F_DELETE,
    F_PAGE,
    F_TTL,
    F_SEED,
    F_RECREATE,
    F_NO_THROTTLE,
    F_SCALE,
    F_NO_STRICT,
    F_QUOTA_GROUPS,
    F_QUOTA_CORES,
    F_LOG,
    F_CLOUD,
    F_HELP,
    F_VERSION
};

/* The command line as given; every string is borrowed from argv. */
typedef struct flags {
    const char *listen, *config, *level_name;
    /* The value of each other flag given, by F_*: collected first and
     * applied over the config file. */
    const char *set[F_VERSION + 1];
} flags_t;

/* Prints what azsim is and its flags to out: stdout for --help, stderr after a bad flag. */
static void usage(FILE *out)
{
    fputs("usage: azsim --listen HOST:PORT [options]\n"
          "\n"
          "A stateful in-memory emulator of the Azure endpoints dev8-agent uses:\n"
          "container groups, file shares, listKeys, Entra ID and IMDS tokens.\n"
          "\n"
          "  --listen HOST:PORT        address to serve (default 127.0.0.1:9090)\n"
          "  --config FILE             YAML config (restrictions, clients, timing, aci,\n"
          "                            storage, paging, faults)\n"
          "  --provision-ms N          Creating -> Succeeded delay (default 2000)\n"
          "  --delete-ms N             DELETE completion delay (default 1000)\n"
          "  --page-size N             list page size (default 100)\n"
          "  --token-ttl SECONDS       access token lifetime (default 3600)\n"
          "  --seed N                  seed of faults, ids and keys (default 1)\n"
          "  --share-recreate-ms N     409 ShareBeingDeleted window (default 2000)\n"
          "  --no-throttle             disable the ARM and ACI token buckets\n"
          "  --throttle-scale F        multiply every bucket's burst and rate (default 1)\n"
          "  --no-strict-mounts        do not fail groups whose azureFile share is missing\n"
          "  --quota-groups N          container groups per subscription and region\n"
          "                            (default 100; 0: no quota)\n"
          "  --quota-cores N           StandardCores per subscription and region\n"
          "                            (default 100; 0: no quota)\n"
          "  --log-level LEVEL         debug|info|warn|error (default info)\n"
          "  --cloud NAME              AzurePublicCloud|AzureChinaCloud|AzureUSGovernment:\n"
          "                            tokens only for its ARM scope (default public)\n"
          "  --help, --version\n"
          "\n"
          "Flags override the config file.\n",
          out);
}

/* Parses "HOST:PORT" or "[V6]:PORT"; 0 or -1. */
static int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= hostlen)
            return -1;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

static int parse_u64(const char *flag, const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (!s[0] || s[0] == '-' || *end || v > max) {
        fprintf(stderr, "azsim: %s: expected an integer from 0 to %llu, got '%s'\n", flag,
                (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static void on_server_closed(void *arg)
{
    app_t *app = arg;
    app->srv = NULL;
    sigstop_free(app->sig);
    app->sig = NULL;
}

static void on_stop(void *ud, int signum)
{
    app_t *app = ud;
    LOG(LOG_INFO, "shutting down", LF_I("signal", signum));
    azsim_server_close(app->srv, on_server_closed, app);
}

/*
 * Reads the command line into *f. Returns -1 when azsim should go on, else
 * the exit status: 0 after --help or --version, 2 after saying on stderr
 * what is wrong.
 */
static int parse_flags(int argc, char **argv, flags_t *f)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, F_LISTEN},
        {"config", required_argument, NULL, F_CONFIG},
        {"provision-ms", required_argument, NULL, F_PROVISION},
        {"delete-ms", required_argument, NULL, F_DELETE},
        {"page-size", required_argument, NULL, F_PAGE},
        {"token-ttl", required_argument, NULL, F_TTL},
        {"seed", required_argument, NULL, F_SEED},
        {"share-recreate-ms", required_argument, NULL, F_RECREATE},
        {"no-throttle", no_argument, NULL, F_NO_THROTTLE},
        {"throttle-scale", required_argument, NULL, F_SCALE},
        {"no-strict-mounts", no_argument, NULL, F_NO_STRICT},
        {"quota-groups", required_argument, NULL, F_QUOTA_GROUPS},
        {"quota-cores", required_argument, NULL, F_QUOTA_CORES},
        {"log-level", required_argument, NULL, F_LOG},
        {"cloud", required_argument, NULL, F_CLOUD},
        {"help", no_argument, NULL, F_HELP},
        {"version", no_argument, NULL, F_VERSION},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(f, 0, sizeof(*f));
    f->listen = "127.0.0.1:9090";
    f->level_name = "info";
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case F_LISTEN:
            f->listen = optarg;
            break;
        case F_CONFIG:
            f->config = optarg;
            break;
        case F_LOG:
            f->level_name = optarg;
            break;
        case 'h':
        case F_HELP:
            usage(stdout);
            return 0;
        case F_VERSION:
            printf("azsim %s\n", D8_VERSION);
            return 0;
        case F_NO_THROTTLE:
        case F_NO_STRICT:
            f->set[c] = "1";
            break;
        default:
            if (c >= F_LISTEN && c <= F_VERSION) {
                f->set[c] = optarg;
                break;
            }
            fprintf(stderr, "azsim: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "azsim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return -1;
}

/*
 * Applies the flags that override settings over o. Says on stderr what is
 * wrong with each bad value; returns 0, or -1 when any was bad.
 */
static int apply_flags(const flags_t *f, azsim_opts_t *o)
{
    const char *const *set = f->set;
    uint64_t v;
    int bad = 0;
    if (set[F_PROVISION])
        bad |= parse_u64("--provision-ms", set[F_PROVISION], 86400000, &o->provision_ms);
    if (set[F_DELETE])
        bad |= parse_u64("--delete-ms", set[F_DELETE], 86400000, &o->delete_ms);
    if (set[F_RECREATE])
        bad |= parse_u64("--share-recreate-ms", set[F_RECREATE], 86400000, &o->share_recreate_ms);
    if (set[F_SEED])
        bad |= parse_u64("--seed", set[F_SEED], UINT64_MAX, &o->seed);
    if (set[F_QUOTA_GROUPS])
        bad |= parse_u64("--quota-groups", set[F_QUOTA_GROUPS], 1000000, &o->aci.quota_groups);
    if (set[F_QUOTA_CORES])
        bad |= parse_u64("--quota-cores", set[F_QUOTA_CORES], 1000000, &o->aci.quota_cores);
    if (set[F_CLOUD]) {
        int idx = -1;
        for (size_t i = 0; azure_cloud_at(i); i++)
            if (strcmp(azure_cloud_at(i)->name, set[F_CLOUD]) == 0)
                idx = (int)i;
        if (idx < 0) {
            fprintf(stderr, "azsim: --cloud: expected AzurePublicCloud, AzureChinaCloud or "
                            "AzureUSGovernment\n");
            bad = 1;
        } else {
            o->cloud = idx;
        }
    }
    if (set[F_PAGE]) {
        if (parse_u64("--page-size", set[F_PAGE], 5000, &v) || v == 0) {
            fprintf(stderr, "azsim: --page-size: expected 1 to 5000\n");
            bad = 1;
        }
        o->page_size = (size_t)v;
    }
    if (set[F_TTL]) {
        if (parse_u64("--token-ttl", set[F_TTL], 7 * 86400, &v) || v == 0) {
            fprintf(stderr, "azsim: --token-ttl: expected 1 to 604800 seconds\n");
            bad = 1;
        }
        o->token_ttl_s = (int)v;
    }
    if (set[F_SCALE]) {
        char *end = NULL;
        double d = strtod(set[F_SCALE], &end);
        if (!set[F_SCALE][0] || *end || !(d > 0) || d > 1e6) {
            fprintf(stderr, "azsim: --throttle-scale: expected a number above 0\n");
            bad = 1;
        }
        o->throttle_scale = d;
    }
    if (set[F_NO_THROTTLE])
        o->throttle = 0;
    if (set[F_NO_STRICT])
        o->strict_mounts = 0;
    return bad ? -1 : 0;
}

/*
 * Fills *o with the defaults, then the config file, then the flags (each
 * overriding the one before). Returns 0 with *o to release by the caller,
 * or -1 after saying on stderr what is wrong (with *o released).
 */
static int opts_from_flags(const flags_t *f, azsim_opts_t *o)
{
    char err[512];

    azsim_opts_init(o);
    if (f->config && azsim_opts_load_yaml(o, f->config, err, sizeof(err)) != 0) {
        fprintf(stderr, "azsim: %s\n", err);
        azsim_opts_release(o);
        return -1;
    }
    if (apply_flags(f, o) != 0) {
        azsim_opts_release(o);
        return -1;
    }
    return 0;
}

/*
 * Wires the loop, the model (copied from o, which stays the caller's) and
 * its HTTP server on host:port, and logs the settings. Returns 0 with app
 * ready for run(), or 1 (the exit status) after logging why, with nothing
 * left open.
 */
static int start(app_t *app, const azsim_opts_t *o, const char *host, int port)
{
    memset(app, 0, sizeof(*app));
    uv_loop_init(&app->loop);
    app->sim = azsim_new(o);
    int rc = azsim_serve(app->sim, &app->loop, host, port, &app->srv);
    if (rc != 0) {
        LOG(LOG_ERROR, "cannot listen", LF_S("host", host), LF_I("port", port),
            LF_S("error", d8_strerror(rc)));
        azsim_free(app->sim);
        uv_loop_close(&app->loop);
        return 1;
    }
    LOG(LOG_INFO, "azsim listening", LF_S("host", host), LF_I("port", azsim_server_port(app->srv)),
        LF_I("provision_ms", o->provision_ms), LF_I("delete_ms", o->delete_ms),
        LF_I("page_size", o->page_size), LF_I("token_ttl_s", o->token_ttl_s),
        LF_I("share_recreate_ms", o->share_recreate_ms), LF_B("throttle", o->throttle),
        LF_D("throttle_scale", o->throttle_scale), LF_B("strict_mounts", o->strict_mounts),
        LF_I("seed", o->seed), LF_S("version", D8_VERSION));
    return 0;
}

/*
 * Serves until SIGTERM or SIGINT has closed the server, then frees the
 * model. Returns the exit status: 1 when handles were left open, else 0.
 */
static int run(app_t *app)
{
    app->sig = sigstop_new(&app->loop, on_stop, app);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&app->loop);
    azsim_free(app->sim);
    if (rc != 0) {
        LOG(LOG_ERROR, "loop closed with open handles", LF_S("error", uv_strerror(rc)));
        return 1;
    }
    LOG0(LOG_INFO, "azsim stopped");
    return 0;
}

int main(int argc, char **argv)
{
    flags_t f;
    int rc = parse_flags(argc, argv, &f);
    if (rc >= 0)
        return rc;
    log_level_t level;
    if (log_level_parse(f.level_name, &level) != 0) {
        fprintf(stderr, "azsim: --log-level: expected debug, info, warn or error\n");
        return 2;
    }
    log_setup(level, NULL);
    char host[256];
    int port;
    if (parse_listen(f.listen, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "azsim: --listen: expected HOST:PORT, got '%s'\n", f.listen);
        return 2;
    }

    azsim_opts_t o;
    if (opts_from_flags(&f, &o) != 0)
        return 2;
    app_t app;
    rc = start(&app, &o, host, port);
    azsim_opts_release(&o);
    return rc != 0 ? rc : run(&app);
}
