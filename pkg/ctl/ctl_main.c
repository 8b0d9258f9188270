/*
 * dev8ctl's command line: the command table (usage, help, flags, the
 * completion scripts are all generated from it), flag parsing and dispatch.
 * Exit codes: 0, 1 (error), 2 (usage).
 */
#include "ctl/ctl_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct cmddef {
    const char *name;
    const char *usage;   /* after "dev8ctl " */
    const char *summary; /* one line */
    const char *help;    /* paragraphs, may be NULL */
    const char *flags;   /* long names it takes, space-separated */
    const char *words;   /* first-argument words (completion), may be NULL */
    int takes_id;        /* an environment id follows (completion) */
} cmddef_t;

static const cmddef_t cmds[] = {
    {"get",
     "get environments [ID] [-l userId=U] [--phase P] [--region R] [-o FORMAT]\n"
     "       dev8ctl get orphans [-o FORMAT]",
     "List environments (one or all) or the reaper's orphans",
     "Lists every environment (all pages) with aligned columns ID USER REGION PHASE READY AGE\n"
     "FQDN; -o wide adds NAME IMAGE CPU MEMORY STORAGE POWER GEN. -o json|yaml prints the\n"
     "objects as the API answers them (a list: {items: [...]}), -o name only the ids.\n"
     "Filters: -l userId=U, --phase PHASE, --region REGION (done by the server).",
     "output selector phase region", "environments orphans", 1},
    {"describe", "describe environment ID", "Show one environment in detail",
     "Spec (secret values are never shown: the API redacts them), status, conditions, and\n"
     "when the server offers them: containers, usage and recent events.",
     "", "environment", 1},
    {"apply", "apply -f FILE|- [--prune [--yes]] [--dry-run=client|server]",
     "Create or update environments from a YAML or JSON file",
     "FILE holds one environment ({id, userId, name, cloudRegion, ...}), an Environment as\n"
     "'get -o yaml' prints it, a list, {items: [...]}, or several YAML documents. Each is\n"
     "PUT to /api/v1/environments/ID. --prune sends the file as a full sync instead: every\n"
     "environment not in the file is removed; it asks for confirmation unless --yes.\n"
     "--dry-run=client shows what would change without sending anything;\n"
     "--dry-run=server asks the server to validate without storing (when it offers that).",
     "filename prune yes dry-run", NULL, 0},
    {"diff", "diff -f FILE|-", "Show the desired specs of a file against the server's",
     "A unified diff per environment: '-' the desired spec on the server, '+' the file's, with\n"
     "the API's defaults and sticky fields filled in. Exit 0: no differences; 1: differences\n"
     "(or an error, printed as 'error: ...').",
     "filename", NULL, 0},
    {"delete", "delete environment ID", "Delete an environment (its resources are removed)", NULL,
     "", "environment", 1},
    {"start", "start ID", "Start a stopped environment", NULL, "", NULL, 1},
    {"stop", "stop ID", "Stop a running environment (its share keeps the data)", NULL, "", NULL, 1},
    {"restart", "restart ID", "Recreate the container group with a held-back spec change", NULL, "",
     NULL, 1},
    {"events", "events ID [-o FORMAT]", "Recent events of an environment (oldest first)", NULL,
     "output", NULL, 1},
    {"logs", "logs ID [--tail N] [-f] [--interval SECONDS]", "The workspace container's log lines",
     "--tail N: the last N lines (1..10000, default 200). -f follows the log by polling every\n"
     "--interval seconds (1..60, default 2) and prints only new lines.",
     "tail follow interval", NULL, 1},
    {"watch", "watch [ID] [-o json]", "Follow changes: one line per change",
     "Follows the API's watch stream (Server-Sent Events). A dropped connection is resumed\n"
     "with Last-Event-ID; when the server cannot resume (410, e.g. after a restart) the\n"
     "environments are listed again and the watch continues from that list. Ctrl-C ends it.",
     "output", NULL, 1},
    {"status", "status [-o json|yaml]", "The controller's state (regions, queue, reaper)", NULL,
     "output", NULL, 0},
    {"reaper", "reaper resume", "Lift a suspension of the reaper", NULL, "", "resume", 0},
    {"version", "version [--client] [-o json|yaml]", "Client and server versions", NULL,
     "client output", NULL, 0},
    {"completion", "completion bash|zsh", "Print a shell completion script",
     "bash: source <(dev8ctl completion bash)\n"
     "zsh:  source <(dev8ctl completion zsh)",
     "", "bash zsh", 0},
    {"help", "help [COMMAND]", "Help about a command", NULL, "", NULL, 0},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

/* Every flag: long name, short letter (0: none), takes a value, help. */
typedef struct flagdef {
    const char *name;
    char shrt;
    int value;
    const char *help;
} flagdef_t;

static const flagdef_t flags[] = {
    {"output", 'o', 1, "-o, --output FORMAT   table (default), wide, json, yaml, name"},
    {"selector", 'l', 1, "-l, --selector K=V    only userId=U is supported"},
    {"phase", 0, 1,
     "    --phase PHASE     CREATING STARTING RUNNING STOPPING STOPPED ERROR "
     "DELETING"},
    {"region", 0, 1, "    --region REGION   only that cloudRegion"},
    {"filename", 'f', 1, "-f, --filename FILE   YAML or JSON; - reads stdin"},
    {"prune", 0, 0, "    --prune           full sync: remove environments not in the file"},
    {"yes", 'y', 0, "-y, --yes             do not ask before pruning"},
    {"dry-run", 0, 1, "    --dry-run=MODE    client or server: change nothing"},
    {"tail", 0, 1, "    --tail N          the last N lines (default 200)"},
    {"follow", 'f', 0, "-f, --follow          keep printing new lines"},
    {"interval", 0, 1, "    --interval S      seconds between polls with -f (default 2)"},
    {"client", 0, 0, "    --client          the client's version only"},
    /* Global flags (every command). */
    {"config", 0, 1, "    --config FILE     config file (default ~/.config/dev8/config.yaml)"},
    {"context", 0, 1, "    --context NAME    the context to use (default: current-context)"},
    {"server", 0, 1, "    --server URL      the agent's URL (overrides the context)"},
    {"now", 0, 1, NULL}, /* hidden: a fixed clock for ages (tests) */
    {"help", 'h', 0, "-h, --help            help for the command"},
};
#define NFLAGS (sizeof flags / sizeof flags[0])
#define FIRST_GLOBAL 12

static const cmddef_t *find_cmd(const char *name)
{
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

/* 1 when cmd takes the flag (global flags: every command). */
static int cmd_takes(const cmddef_t *cmd, const flagdef_t *f)
{
    if (f - flags >= FIRST_GLOBAL)
        return 1;
    if (!cmd)
        return 0;
    size_t n = strlen(f->name);
    for (const char *p = cmd->flags; (p = strstr(p, f->name)) != NULL; p += n)
        if ((p == cmd->flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return 1;
    return 0;
}

static const flagdef_t *find_flag(const cmddef_t *cmd, const char *lng, char shrt)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        const flagdef_t *f = &flags[i];
        if (((lng && strcmp(f->name, lng) == 0) || (!lng && shrt && f->shrt == shrt)) &&
            cmd_takes(cmd, f))
            return f;
    }
    return NULL;
}

static void set_flag(ctl_args_t *a, const flagdef_t *f, const char *v)
{
    const char **dst[] = {&a->output, &a->selector, &a->phase,  &a->region, &a->filename, NULL,
                          NULL,       &a->dry_run,  &a->tail,   NULL,       &a->interval, NULL,
                          &a->config, &a->context,  &a->server, &a->now};
    int *bools[] = {NULL,    NULL, NULL, NULL,       NULL,    &a->prune,
                    &a->yes, NULL, NULL, &a->follow, NULL,    &a->client_only,
                    NULL,    NULL, NULL, NULL,       &a->help};
    size_t i = (size_t)(f - flags);
    if (f->value)
        *dst[i] = v;
    else
        *bools[i] = 1;
}

/* The command: the first argument that is not a flag or a global flag's
 * value. */
static const char *scan_cmd(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0)
            return i + 1 < argc ? argv[i + 1] : NULL;
        if (s[0] != '-' || !s[1])
            return s;
        /* Any command's flag may come first ("-o json get envs"): skip its
         * value when the flag takes one. */
        const flagdef_t *f = NULL;
        size_t n = s[1] == '-' ? strcspn(s + 2, "=") : 0;
        for (size_t k = 0; k < NFLAGS && !f; k++)
            if (s[1] == '-' ? strlen(flags[k].name) == n && strncmp(flags[k].name, s + 2, n) == 0
                            : flags[k].shrt == s[1] && !s[2])
                f = &flags[k];
        if (f && f->value && !strchr(s, '='))
            i++;
    }
    return NULL;
}

/* One "-x", "-xVALUE", "--name", "--name=V" or "--name V" at argv[*i]. */
static int parse_flag(ctl_t *c, const cmddef_t *cmd, int argc, char **argv, int *i)
{
    const char *s = argv[*i], *v = NULL;
    const flagdef_t *f;
    char lng[64];
    if (s[1] == '-') {
        size_t n = strcspn(s + 2, "=");
        snprintf(lng, sizeof lng, "%.*s", (int)(n < 63 ? n : 63), s + 2);
        f = find_flag(cmd, lng, 0);
        if (s[2 + n] == '=')
            v = s + 3 + n;
    } else {
        f = find_flag(cmd, NULL, s[1]);
        if (s[2])
            v = s + 2;
    }
    const char *name = cmd ? cmd->name : NULL;
    if (!f)
        return ctl__usage(c, name, "unknown flag %s%s%s", s, cmd ? " for " : "",
                          cmd ? cmd->name : "");
    if (!f->value && v)
        return ctl__usage(c, name, "flag --%s takes no value", f->name);
    if (f->value && !v) {
        if (*i + 1 >= argc)
            return ctl__usage(c, name, "flag --%s needs a value", f->name);
        v = argv[++*i];
    }
    set_flag(&c->a, f, v);
    return 0;
}

/* Flags anywhere on the line (until "--"); the command word is skipped,
 * the rest are positional arguments. 0 or the usage exit status. */
static int parse_args(ctl_t *c, const cmddef_t *cmd, int argc, char **argv)
{
    int skipped_cmd = 0, flags_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!flags_done && strcmp(s, "--") == 0) {
            flags_done = 1;
        } else if (!flags_done && s[0] == '-' && s[1]) {
            int rc = parse_flag(c, cmd, argc, argv, &i);
            if (rc)
                return rc;
        } else if (cmd && !skipped_cmd) {
            skipped_cmd = 1;
        } else if (c->a.npos < CTL_MAX_ARGS) {
            c->a.pos[c->a.npos++] = s;
        } else {
            return ctl__usage(c, cmd ? cmd->name : NULL, "too many arguments");
        }
    }
    return 0;
}

/* The help of one command, or the overview when cmd is NULL. */
static void print_help(FILE *o, const cmddef_t *cmd)
{
    if (!cmd) {
        fprintf(o, "dev8ctl: the command line of dev8-agent.\n\nUsage: dev8ctl COMMAND [ARGS] "
                   "[FLAGS]\n\nCommands:\n");
        for (size_t i = 0; i < NCMDS; i++)
            fprintf(o, "  %-11s %s\n", cmds[i].name, cmds[i].summary);
        fprintf(o, "\nGlobal flags:\n");
        for (size_t i = FIRST_GLOBAL; i < NFLAGS; i++)
            if (flags[i].help)
                fprintf(o, "  %s\n", flags[i].help);
        fprintf(o, "\nEnvironment: DEV8_SERVER, DEV8_API_KEY, XDG_CONFIG_HOME, NO_COLOR.\n"
                   "Exit status: 0 ok, 1 error, 2 usage. 'dev8ctl COMMAND --help' for more.\n");
        return;
    }
    fprintf(o, "%s.\n\nUsage: dev8ctl %s\n", cmd->summary, cmd->usage);
    if (cmd->help)
        fprintf(o, "\n%s\n", cmd->help);
    if (cmd->flags[0]) {
        fprintf(o, "\nFlags:\n");
        for (size_t i = 0; i < FIRST_GLOBAL; i++)
            if (cmd_takes(cmd, &flags[i]))
                fprintf(o, "  %s\n", flags[i].help);
    }
    fprintf(o, "\nGlobal flags: --config FILE, --context NAME, --server URL, -h/--help.\n");
}

/* ---- completion scripts ------------------------------------------------ */

/* The flags of cmd as "--a --b -x" (global ones included). */
static void cmd_flags(d8_buf_t *b, const cmddef_t *cmd)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        if (!flags[i].help || !cmd_takes(cmd, &flags[i]))
            continue;
        d8_buf_printf(b, "%s--%s", b->len ? " " : "", flags[i].name);
        if (flags[i].shrt)
            d8_buf_printf(b, " -%c", flags[i].shrt);
    }
}

static void completion_cases(d8_buf_t *b, const char *indent, int zsh)
{
    for (size_t i = 0; i < NCMDS; i++) {
        d8_buf_t fl;
        d8_buf_init(&fl);
        cmd_flags(&fl, &cmds[i]);
        d8_buf_printf(b, "%s%s) flags=\"%s\"; subs=\"%s\"; ids=%d;;\n", indent, cmds[i].name,
                      fl.data, cmds[i].words ? cmds[i].words : "", cmds[i].takes_id);
        d8_buf_release(&fl);
    }
    (void)zsh; /* the same cases serve both shells */
}

/* completion bash|zsh: a script generated from the command and flag
 * tables, so it never lags behind them; ids come from
 * `dev8ctl get environments -o name` at completion time. */
static int completion(ctl_t *c)
{
    const char *shell = c->a.npos > 0 ? c->a.pos[0] : NULL;
    if (!shell || c->a.npos > 1 || (strcmp(shell, "bash") != 0 && strcmp(shell, "zsh") != 0))
        return ctl__usage(c, "completion", "completion needs one argument: bash or zsh");
    int zsh = strcmp(shell, "zsh") == 0;
    d8_buf_t b;
    d8_buf_init(&b);
    /* zsh reads "#compdef" only on the first line (autoloaded from fpath). */
    if (zsh)
        d8_buf_puts(&b, "#compdef dev8ctl\n");
    d8_buf_printf(&b, "# %s completion for dev8ctl (generated by 'dev8ctl completion %s')\n", shell,
                  shell);
    d8_buf_puts(&b, "_dev8ctl_words() {\n  # $1: the command, $2: its arguments so far\n"
                    "  local flags subs ids\n  case \"$1\" in\n");
    completion_cases(&b, "    ", zsh);
    d8_buf_puts(&b, "    *) flags=\"\"; subs=\"\"; ids=0;;\n  esac\n"
                    "  case \"$CUR\" in\n    -*) echo \"$flags\"; return;;\n  esac\n"
                    "  case \"$PREV\" in\n    -o|--output) echo \"table wide json yaml name\"; "
                    "return;;\n    --context) sed -n 's/^ *- *name: *//p' "
                    "\"${XDG_CONFIG_HOME:-$HOME/.config}/dev8/config.yaml\" 2>/dev/null; "
                    "return;;\n  esac\n"
                    "  if [ -n \"$subs\" ] && [ \"$2\" -eq 0 ]; then echo \"$subs\"; return; "
                    "fi\n"
                    "  if [ \"$ids\" = 1 ]; then dev8ctl get environments -o name 2>/dev/null; "
                    "fi\n}\n");
    d8_buf_printf(&b, "_dev8ctl_cmds=\"");
    for (size_t i = 0; i < NCMDS; i++)
        d8_buf_printf(&b, "%s%s", i ? " " : "", cmds[i].name);
    d8_buf_puts(&b, "\"\n");
    if (!zsh) {
        d8_buf_puts(&b, "_dev8ctl() {\n  local CUR=\"${COMP_WORDS[COMP_CWORD]}\" "
                        "PREV=\"${COMP_WORDS[COMP_CWORD-1]}\" cmd=\"\" n=0 i\n"
                        "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
                        "    case \"${COMP_WORDS[i]}\" in -*) ;; *) if [ -z \"$cmd\" ]; then "
                        "cmd=\"${COMP_WORDS[i]}\"; else n=$((n + 1)); fi;; esac\n  done\n"
                        "  case \"$PREV\" in -f|--filename|--config) COMPREPLY=($(compgen -f "
                        "-- \"$CUR\")); return;; esac\n"
                        "  if [ -z \"$cmd\" ]; then COMPREPLY=($(compgen -W \"$_dev8ctl_cmds\" "
                        "-- \"$CUR\")); return; fi\n"
                        "  COMPREPLY=($(compgen -W \"$(_dev8ctl_words \"$cmd\" \"$n\")\" -- "
                        "\"$CUR\"))\n}\ncomplete -F _dev8ctl dev8ctl\n");
    } else {
        d8_buf_puts(&b, "_dev8ctl() {\n  local CUR=\"${words[CURRENT]}\" "
                        "PREV=\"${words[CURRENT-1]}\" cmd=\"\" n=0 i\n"
                        "  for ((i = 2; i < CURRENT; i++)); do\n"
                        "    case \"${words[i]}\" in -*) ;; *) if [ -z \"$cmd\" ]; then "
                        "cmd=\"${words[i]}\"; else n=$((n + 1)); fi;; esac\n  done\n"
                        "  case \"$PREV\" in -f|--filename|--config) _files; return;; esac\n"
                        "  if [ -z \"$cmd\" ]; then compadd -- ${=_dev8ctl_cmds}; return; fi\n"
                        "  compadd -- ${=$(_dev8ctl_words \"$cmd\" \"$n\")}\n}\n"
                        "if [ \"$funcstack[1]\" = \"_dev8ctl\" ]; then _dev8ctl \"$@\"; "
                        "else compdef _dev8ctl dev8ctl; fi\n");
    }
    fputs(b.data, c->o);
    d8_buf_release(&b);
    return 0;
}

/* ---- dispatch ---------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    ctl__stop = 1;
}

static int set_now(ctl_t *c)
{
    const char *now = c->a.now ? c->a.now : getenv("DEV8CTL_NOW");
    c->now = (long long)time(NULL);
    if (!now || !now[0])
        return 0;
    char *end;
    long long v = strtoll(now, &end, 10);
    if (*end == 0 && end != now)
        c->now = v;
    else if (ctl_parse_time(now, &c->now) < 0)
        return ctl__usage(c, NULL,
                          "--now / DEV8CTL_NOW: %s is not an RFC 3339 time or epoch "
                          "seconds",
                          now);
    return 0;
}

static int set_output(ctl_t *c, const cmddef_t *cmd)
{
    static const char *const names[] = {"table", "wide", "json", "yaml", "name"};
    const char *o = c->a.output;
    c->out = OUT_TABLE;
    if (!o)
        return 0;
    for (int i = 0; i < 5; i++)
        if (strcmp(o, names[i]) == 0) {
            c->out = (ctl_out_t)i;
            int ok = strcmp(cmd->name, "get") == 0 || c->out == OUT_JSON || c->out == OUT_YAML ||
                     c->out == OUT_TABLE;
            if (!ok)
                break;
            return 0;
        }
    return ctl__usage(c, cmd->name, "-o %s: not an output format of %s", o, cmd->name);
}

/* Dispatches to the command's handler; the exit status. */
static int run(ctl_t *c, const cmddef_t *cmd)
{
    const char *n = cmd->name;
    if (strcmp(n, "get") == 0)
        return ctl__cmd_get(c);
    if (strcmp(n, "describe") == 0)
        return ctl__cmd_describe(c);
    if (strcmp(n, "apply") == 0)
        return ctl__cmd_apply(c);
    if (strcmp(n, "diff") == 0)
        return ctl__cmd_diff(c);
    if (strcmp(n, "delete") == 0)
        return ctl__cmd_delete(c);
    if (strcmp(n, "start") == 0 || strcmp(n, "stop") == 0 || strcmp(n, "restart") == 0)
        return ctl__cmd_power(c, n);
    if (strcmp(n, "events") == 0)
        return ctl__cmd_events(c);
    if (strcmp(n, "logs") == 0)
        return ctl__cmd_logs(c);
    if (strcmp(n, "watch") == 0)
        return ctl__cmd_watch(c);
    if (strcmp(n, "status") == 0)
        return ctl__cmd_status(c);
    if (strcmp(n, "reaper") == 0)
        return ctl__cmd_reaper(c);
    if (strcmp(n, "version") == 0)
        return ctl__cmd_version(c);
    if (strcmp(n, "completion") == 0)
        return completion(c);
    /* help [COMMAND] */
    const cmddef_t *about = c->a.npos > 0 ? find_cmd(c->a.pos[0]) : NULL;
    if (c->a.npos > 0 && !about)
        return ctl__usage(c, NULL, "unknown command \"%s\"", c->a.pos[0]);
    print_help(c->o, about);
    return 0;
}

int ctl_main(int argc, char **argv)
{
    ctl_t c = {.o = stdout, .e = stderr};
    const char *nc = getenv("NO_COLOR");
    int no_color = nc && nc[0];
    c.color = !no_color && isatty(STDOUT_FILENO);
    c.err_color = !no_color && isatty(STDERR_FILENO);
    const char *name = scan_cmd(argc, argv);
    const cmddef_t *cmd = name ? find_cmd(name) : NULL;
    if (name && !cmd)
        return ctl__usage(&c, NULL, "unknown command \"%s\"", name);
    int rc = parse_args(&c, cmd, argc, argv);
    if (rc)
        return rc;
    if (!cmd || c.a.help) {
        print_help(cmd || c.a.help ? c.o : c.e, cmd);
        return cmd || c.a.help ? 0 : CTL_EXIT_USAGE;
    }
    if ((rc = set_now(&c)) != 0 || (rc = set_output(&c, cmd)) != 0)
        return rc;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = run(&c, cmd);
    /* A command whose output did not all reach stdout failed (a full disk,
     * a closed file), except a reader that stopped early (EPIPE: `| head`). */
    errno = 0;
    if ((fflush(c.o) != 0 || ferror(c.o)) && errno != EPIPE && rc == CTL_EXIT_OK)
        rc = ctl__fail(&c, "cannot write the output: %s", strerror(errno ? errno : EIO));
    ctl_target_release(&c.target);
    curl_global_cleanup();
    return rc;
}
