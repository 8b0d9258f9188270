/*
 * Shared between the files of pkg/ctl: the state of one dev8ctl run, the
 * HTTP helpers and the command handlers.
 */
#ifndef D8_CTL_INT_H
#define D8_CTL_INT_H

#include "base/base.h"
#include "ctl/ctl.h"

#include <stdio.h>

typedef enum { OUT_TABLE, OUT_WIDE, OUT_JSON, OUT_YAML, OUT_NAME } ctl_out_t;

/* Parsed command line: the command's positional arguments and flags. */
#define CTL_MAX_ARGS 16
typedef struct ctl_args {
    const char *pos[CTL_MAX_ARGS];
    int npos;
    const char *config, *context, *server, *now;
    const char *output, *selector, *phase, *region, *filename, *dry_run, *tail, *interval;
    int prune, yes, follow, client_only, help;
} ctl_args_t;

/* One run of dev8ctl. */
typedef struct ctl {
    ctl_args_t a;
    ctl_target_t target;
    int resolved;  /* target resolved (on first request) */
    ctl_out_t out; /* -o */
    long long now; /* epoch seconds: the clock, or --now / DEV8CTL_NOW */
    int color;     /* stdout is a terminal and NO_COLOR is not set */
    int err_color; /* the same for stderr */
    FILE *o, *e;   /* stdout, stderr */
} ctl_t;

/* An answer of the API. */
typedef struct ctl_resp {
    long status; /* 0 when none arrived */
    d8_buf_t body;
    char ctype[128];
} ctl_resp_t;

/* Prints "error: <formatted>" on stderr; returns CTL_EXIT_ERROR. */
int ctl__fail(ctl_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "error: <formatted>" and a hint to --help; returns CTL_EXIT_USAGE. */
int ctl__usage(ctl_t *c, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * One request to the resolved server (path includes the query; body JSON
 * or NULL). Returns 0 when an answer arrived (any status), or -1 after
 * printing why none did (unreachable server, bad config). r is initialised
 * here; release it with ctl__resp_release.
 */
int ctl__request(ctl_t *c, const char *method, const char *path, const char *body, ctl_resp_t *r);
void ctl__resp_release(ctl_resp_t *r);
/* Resolves the target once (config, context, flags); 0 or -1 (printed). */
int ctl__resolve(ctl_t *c);
/* Prints the server's error answer as "error: <code>: <message> (field
 * <field>)" (or the status when the body is not an API error); returns
 * CTL_EXIT_ERROR. what prefixes the message when not NULL. */
int ctl__api_error(ctl_t *c, const ctl_resp_t *r, const char *what);
/* The answer parsed as JSON, or NULL (printed as an error). */
cJSON *ctl__json(ctl_t *c, const ctl_resp_t *r);
/* GET path expecting 200 JSON; NULL after printing the error. Sets *rc to
 * the exit status to use on NULL. */
cJSON *ctl__get_json(ctl_t *c, const char *path, int *rc);
/* GET path for a command that prints a table: with -o json or yaml the
 * answer is printed as it is and NULL returned with *rc 0; else the
 * answer (owned by the caller), or NULL after printing the error, with
 * *rc the exit status to use. */
cJSON *ctl__get_for_table(ctl_t *c, const char *path, int *rc);
/* Percent-encodes s for a path segment or query value into b. */
void ctl__url_escape(d8_buf_t *b, const char *s);

/*
 * Follows GET path as Server-Sent Events, calling on_event(type, id, data,
 * ud) per event; resumes with Last-Event-ID (*last_id, updated) after a
 * dropped connection. Returns when on_event returns non-zero (that value),
 * when stopped by a signal (0), or on an answer other than 200 (the status
 * is in *status, the body in errbody). Used by the watch command only.
 */
typedef int (*ctl_sse_fn)(const char *type, const char *id, const char *data, void *ud);
int ctl__sse(ctl_t *c, const char *path, char last_id[64], ctl_sse_fn on_event, void *ud,
             long *status, d8_buf_t *errbody);
/* Set by SIGINT/SIGTERM during long commands (watch, logs -f). */
extern volatile int ctl__stop;
/* Sleeps up to ms, returning early when ctl__stop is set. */
void ctl__sleep_ms(ctl_t *c, int ms);

/* Output helpers (ctl_output.c). */
void ctl__print_value(ctl_t *c, const cJSON *v);        /* -o json|yaml */
const char *ctl__str(const cJSON *o, const char *path); /* dotted path, NULL if absent */
double ctl__num(const cJSON *o, const char *path, double dflt);
const cJSON *ctl__cond(const cJSON *env, const char *type);
/* A table: rows of cells, printed with aligned columns. */
typedef struct ctl_table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, owned */
    int *colors;  /* per cell: 0 none, else an ANSI colour number */
} ctl_table_t;
void ctl__table_init(ctl_table_t *t, size_t ncols);
/* Appends a row of ncols cells (copied); NULL cells print as "<none>". */
void ctl__table_row(ctl_table_t *t, const char *const cells[]);
void ctl__table_color(ctl_table_t *t, size_t row, size_t col, int color);
/* Renders into b with two spaces between columns, indent before each row. */
void ctl__table_render(const ctl_table_t *t, d8_buf_t *b, const char *indent, int color);
void ctl__table_release(ctl_table_t *t);
/* The ANSI colour of a phase (0 for none). */
int ctl__phase_color(const char *phase);
/* "<age>" of an RFC 3339 time against c->now, or "<unknown>". */
void ctl__age_of(long long now, const char *t, char *out, size_t outlen);

/* Commands (ctl_cmd_get.c, ctl_cmd_apply.c, ctl_watch.c). */
int ctl__cmd_get(ctl_t *c);
int ctl__cmd_describe(ctl_t *c);
int ctl__cmd_status(ctl_t *c);
int ctl__cmd_version(ctl_t *c);
int ctl__cmd_events(ctl_t *c);
int ctl__cmd_logs(ctl_t *c);
int ctl__cmd_apply(ctl_t *c);
int ctl__cmd_diff(ctl_t *c);
int ctl__cmd_delete(ctl_t *c);
int ctl__cmd_power(ctl_t *c, const char *action);
int ctl__cmd_reaper(ctl_t *c);
int ctl__cmd_watch(ctl_t *c);
/* GET /api/v1/environments with the -l/--phase/--region filters,
 * following `continue` to the last page: all items as one array (owned),
 * *rv (may be NULL) the first page's resourceVersion; NULL after printing
 * an error. */
cJSON *ctl__list_all(ctl_t *c, long long *rv, int *rc);
/* Reads the file named by -f ("-": stdin) into items; exit status. */
int ctl__read_items(ctl_t *c, ctl_items_t *items);
/* The events of an environment as a table into b (for events and
 * describe); returns 0, 404 when the server does not offer the route, or
 * another status after printing the error. */
int ctl__events_table(ctl_t *c, const char *id, d8_buf_t *b, const char *indent, cJSON **json_out);

/* Where each node of a parsed YAML text began (ctl_input.c). */
typedef struct ctl_mark {
    const cJSON *node;
    int line, col;
} ctl_mark_t;
typedef struct ctl_marks {
    ctl_mark_t *v;
    size_t n, cap;
} ctl_marks_t;
/*
 * Parses YAML/JSON text into cJSON: every document as an element of the
 * returned array (all_docs) or the first document only. marks (may be
 * NULL) receives the line and column of every node. NULL with
 * "name:line:column: ..." in err.
 */
cJSON *ctl__yaml_parse(const char *name, const char *text, size_t len, int all_docs,
                       ctl_marks_t *marks, char *err, size_t errlen);
/* The mark of node (1:1 when unknown). */
void ctl__mark_of(const ctl_marks_t *m, const cJSON *node, int *line, int *col);
void ctl__marks_release(ctl_marks_t *m);

#endif
