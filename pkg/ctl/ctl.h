/*
 * pkg/ctl: dev8ctl, the operator's command line for dev8-agent. The main
 * (cmd/dev8ctl) only calls ctl_main; the pieces below are public so that
 * the unit tests and the fuzz target reach them directly.
 *
 * dev8ctl is a short-lived command, not part of the agent's loop: it talks
 * to the API with libcurl's blocking easy interface, one request at a time
 * (a watch or `logs -f` is one long transfer or a bounded poll).
 */
#ifndef D8_CTL_H
#define D8_CTL_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Exit codes of every command. */
enum { CTL_EXIT_OK = 0, CTL_EXIT_ERROR = 1, CTL_EXIT_USAGE = 2 };

/*
 * Runs dev8ctl with argv (borrowed) and returns the process exit status:
 * 0, 1 (an error, printed as one "error: ..." line on stderr) or 2 (bad
 * usage: unknown command or flag, missing argument).
 */
int ctl_main(int argc, char **argv);

/* ---- configuration (ctl_config.c) ------------------------------------- */

/* Where requests go: the server URL and the API key (both owned). */
typedef struct ctl_target {
    char *server;
    char *key;     /* NULL when no key was found (requests go without one) */
    char *context; /* the context used, or NULL */
} ctl_target_t;

/*
 * Resolves the target from, in order: server_flag (--server) or
 * $DEV8_SERVER, then the context (context_flag, else the file's
 * current-context) of the config file at path (NULL: $XDG_CONFIG_HOME/dev8/
 * config.yaml or ~/.config/dev8/config.yaml; a missing default file is not
 * an error, a missing named one is). The key comes from $DEV8_API_KEY, else
 * the context's apiKeyEnv / apiKeyFile; an inline `apiKey` is refused unless
 * the file sets `allowInlineApiKeys: true`. Without any server the default
 * is http://127.0.0.1:8080. Returns 0, or -1 with a one-line error in err
 * (file:line:column for a bad file). The key is never written into err.
 */
int ctl_config_resolve(const char *path, const char *context_flag, const char *server_flag,
                       ctl_target_t *out, char *err, size_t errlen);
/* Frees the strings of t (wiping the key) and zeroes it; NULL-safe. */
void ctl_target_release(ctl_target_t *t);

/* ---- input files (ctl_input.c) ---------------------------------------- */

/* One environment read from an input file: id and spec (owned), and where
 * it started in the file. */
typedef struct ctl_item {
    char *id;
    cJSON *spec; /* the spec members, without id */
    int line, col;
} ctl_item_t;

typedef struct ctl_items {
    ctl_item_t *v;
    size_t n;
} ctl_items_t;

/*
 * Parses YAML or JSON text (len bytes, need not be NUL-terminated) named
 * `name` (for messages) into environments: a mapping with `id` and the
 * spec fields, an Environment object as `get -o yaml|json` prints it
 * (`id` and `spec`; status is ignored), a list of either, a mapping with
 * `items`, or several YAML documents. Aliases, tags and duplicate keys are
 * refused; a secretEnv whose values are all "<redacted>" (a file written by
 * `get`) is dropped, so the stored secrets stay. Returns 0, or -1 with
 * "name:line:column: what is wrong" in err. Release out with
 * ctl_items_release either way.
 */
int ctl_input_parse(const char *name, const char *text, size_t len, ctl_items_t *out, char *err,
                    size_t errlen);
void ctl_items_release(ctl_items_t *items);
/* Parses one YAML or JSON value (the first document) into cJSON with the
 * same rules; NULL with the error in err. Caller deletes. */
cJSON *ctl_yaml_parse(const char *name, const char *text, size_t len, char *err, size_t errlen);

/* ---- output (ctl_output.c, ctl_diff.c) -------------------------------- */

/* v as a YAML document (block style, strings quoted when they would read
 * back as another type); malloc'd, caller frees. */
char *ctl_yaml_emit(const cJSON *v);
/* Parses an RFC 3339 UTC time ("2026-11-27T12:00:00Z", fraction allowed)
 * into epoch seconds; 0 or -1. */
int ctl_parse_time(const char *s, long long *out);
/* A kubectl-style age ("45s", "3m12s", "5h3m", "4d", "2y") into out. */
void ctl_age(long long seconds, char *out, size_t outlen);

/* The environments of a list answer as a table (columns ID USER REGION
 * PHASE READY AGE FQDN; wide adds NAME IMAGE CPU MEMORY STORAGE POWER GEN),
 * ages against now (epoch seconds), phases coloured when color. malloc'd. */
char *ctl_env_table(const cJSON *items, int wide, long long now, int color);

/* A unified diff (3 lines of context) of text a (named a_name) to b;
 * malloc'd, "" when they are equal. */
char *ctl_unified_diff(const char *a_name, const char *a, const char *b_name, const char *b);
/*
 * The spec as the server would hold it after a PUT of `file_spec`:
 * documented defaults for omitted fields, powerState and secretEnv kept from
 * server_spec when omitted (sticky), secret values replaced by "<redacted>",
 * members in the API's order. Either may be NULL. Caller deletes.
 */
cJSON *ctl_desired_spec(const cJSON *file_spec, const cJSON *server_spec);
/* server_spec canonicalised the same way (order, redaction); caller deletes. */
cJSON *ctl_canonical_spec(const cJSON *server_spec);

/*
 * For `logs -f`: given the lines printed before (prev) and a new tail of
 * the log (next), the offset in next where the unseen text begins (the
 * longest suffix of prev that is a prefix of next is skipped; 0 when they
 * do not overlap, e.g. the container restarted).
 */
size_t ctl_logs_new_offset(const char *prev, const char *next);

#endif
