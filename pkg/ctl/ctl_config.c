/*
 * dev8ctl's configuration, like a kubeconfig: named contexts (server URL
 * and where the API key comes from), the current one, and the overrides
 * --context, --server, DEV8_SERVER and DEV8_API_KEY.
 *
 *   current-context: local
 *   contexts:
 *     - name: local
 *       server: http://127.0.0.1:8080
 *       apiKeyEnv: DEV8_LOCAL_KEY          # or apiKeyFile: ~/.config/dev8/local.key
 *
 * A key written in the file (`apiKey:`) is refused unless the file also
 * says `allowInlineApiKeys: true` and is readable by its owner only.
 */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_SERVER "http://127.0.0.1:8080"

typedef struct cfgctx {
    const char *name, *server, *key_env, *key_file, *key_inline;
    const cJSON *node;
} cfgctx_t;

void ctl_target_release(ctl_target_t *t)
{
    if (!t)
        return;
    free(t->server);
    if (t->key) {
        volatile char *p = t->key;
        while (*p)
            *p++ = 0;
        free(t->key);
    }
    free(t->context);
    memset(t, 0, sizeof *t);
}

/* Reads a whole small file (at most 1 MiB) into a malloc'd string. */
static char *slurp(const char *path, size_t *len, int *eno)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *eno = errno;
        return NULL;
    }
    d8_buf_t b;
    d8_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= (1u << 20))
        d8_buf_append(&b, chunk, n);
    int bad = ferror(f) || b.len > (1u << 20);
    fclose(f);
    if (bad) {
        *eno = bad && b.len > (1u << 20) ? EFBIG : EIO;
        d8_buf_release(&b);
        return NULL;
    }
    return d8_buf_detach(&b, len);
}

/* "~/x" -> "$HOME/x"; a relative path is taken relative to the config's
 * directory. malloc'd. */
static char *expand_path(const char *p, const char *cfg_path)
{
    d8_buf_t b;
    d8_buf_init(&b);
    const char *home = getenv("HOME");
    if (p[0] == '~' && p[1] == '/' && home) {
        d8_buf_printf(&b, "%s%s", home, p + 1);
    } else if (p[0] != '/' && cfg_path && strrchr(cfg_path, '/')) {
        d8_buf_append(&b, cfg_path, (size_t)(strrchr(cfg_path, '/') - cfg_path) + 1);
        d8_buf_puts(&b, p);
    } else {
        d8_buf_puts(&b, p);
    }
    return d8_buf_detach(&b, NULL);
}

static int field_error(char *err, size_t errlen, const char *path, const ctl_marks_t *m,
                       const cJSON *node, const char *what)
{
    int line, col;
    ctl__mark_of(m, node, &line, &col);
    snprintf(err, errlen, "%s:%d:%d: %s", path, line, col, what);
    return -1;
}

/* One context mapping into *cx (strings borrowed from the tree). */
static int read_context(const cJSON *it, cfgctx_t *cx, const char *path, const ctl_marks_t *m,
                        char *err, size_t errlen)
{
    memset(cx, 0, sizeof *cx);
    cx->node = it;
    if (!cJSON_IsObject(it))
        return field_error(err, errlen, path, m, it, "contexts: each context must be a mapping");
    for (const cJSON *f = it->child; f; f = f->next) {
        const char **dst = strcmp(f->string, "name") == 0         ? &cx->name
                           : strcmp(f->string, "server") == 0     ? &cx->server
                           : strcmp(f->string, "apiKeyEnv") == 0  ? &cx->key_env
                           : strcmp(f->string, "apiKeyFile") == 0 ? &cx->key_file
                           : strcmp(f->string, "apiKey") == 0     ? &cx->key_inline
                                                                  : NULL;
        char what[320];
        if (!dst) {
            snprintf(what, sizeof what,
                     "%s: unknown key (a context takes name, server, apiKeyEnv, apiKeyFile)",
                     f->string);
            return field_error(err, errlen, path, m, it, what);
        }
        if (!cJSON_IsString(f) || !f->valuestring[0]) {
            snprintf(what, sizeof what, "%s: must be a non-empty string", f->string);
            return field_error(err, errlen, path, m, it, what);
        }
        *dst = f->valuestring;
    }
    if (!cx->name)
        return field_error(err, errlen, path, m, it, "name: a context needs a name");
    if (cx->server && strncmp(cx->server, "http://", 7) != 0 &&
        strncmp(cx->server, "https://", 8) != 0)
        return field_error(err, errlen, path, m, it, "server: must start with http:// or https://");
    if (!!cx->key_env + !!cx->key_file + !!cx->key_inline > 1)
        return field_error(err, errlen, path, m, it,
                           "apiKeyEnv, apiKeyFile and apiKey exclude each other");
    return 0;
}

/* The key of a context into *key (malloc'd, or NULL when it names none). */
static int context_key(const cfgctx_t *cx, int allow_inline, const char *path, const ctl_marks_t *m,
                       char **key, char *err, size_t errlen)
{
    *key = NULL;
    if (cx->key_inline) {
        struct stat st;
        if (!allow_inline)
            return field_error(err, errlen, path, m, cx->node,
                               "apiKey: a key written in the config file is refused; use "
                               "apiKeyEnv or apiKeyFile (or set allowInlineApiKeys: true and "
                               "chmod 600 the file)");
        if (stat(path, &st) == 0 && (st.st_mode & 077))
            return field_error(err, errlen, path, m, cx->node,
                               "apiKey: the file holds a key and others may read it (chmod 600)");
        *key = d8_xstrdup(cx->key_inline);
    } else if (cx->key_env) {
        const char *v = getenv(cx->key_env);
        if (!v || !v[0]) {
            char what[320];
            snprintf(what, sizeof what, "apiKeyEnv: the environment variable %s is not set",
                     cx->key_env);
            return field_error(err, errlen, path, m, cx->node, what);
        }
        *key = d8_xstrdup(v);
    } else if (cx->key_file) {
        char *kp = expand_path(cx->key_file, path);
        size_t len = 0;
        int eno = 0;
        char *text = slurp(kp, &len, &eno);
        if (!text) {
            char what[600];
            snprintf(what, sizeof what, "apiKeyFile: cannot read %s: %s", kp, strerror(eno));
            free(kp);
            return field_error(err, errlen, path, m, cx->node, what);
        }
        free(kp);
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                           text[len - 1] == '\t'))
            text[--len] = 0;
        if (len == 0 || strlen(text) != len || strchr(text, '\n')) {
            free(text);
            return field_error(err, errlen, path, m, cx->node,
                               "apiKeyFile: the file must hold one key on one line");
        }
        *key = text;
    }
    return 0;
}

/* The default config path: $XDG_CONFIG_HOME/dev8/config.yaml, else
 * ~/.config/dev8/config.yaml; malloc'd, NULL without HOME. */
static char *default_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    d8_buf_t b;
    d8_buf_init(&b);
    if (xdg && xdg[0] == '/')
        d8_buf_printf(&b, "%s/dev8/config.yaml", xdg);
    else if (home && home[0])
        d8_buf_printf(&b, "%s/.config/dev8/config.yaml", home);
    else {
        d8_buf_release(&b);
        return NULL;
    }
    return d8_buf_detach(&b, NULL);
}

/* Top-level keys of the file: current-context, contexts, allowInlineApiKeys. */
static int read_top(const cJSON *root, const char *path, const ctl_marks_t *m, const char **current,
                    const cJSON **contexts, int *allow, char *err, size_t errlen)
{
    if (cJSON_IsNull(root))
        return 0;
    if (!cJSON_IsObject(root))
        return field_error(err, errlen, path, m, root, "the config must be a mapping");
    for (const cJSON *f = root->child; f; f = f->next) {
        if (strcmp(f->string, "current-context") == 0 && cJSON_IsString(f)) {
            *current = f->valuestring;
        } else if (strcmp(f->string, "contexts") == 0 && cJSON_IsArray(f)) {
            *contexts = f;
        } else if (strcmp(f->string, "allowInlineApiKeys") == 0 && cJSON_IsBool(f)) {
            *allow = cJSON_IsTrue(f);
        } else {
            char what[400];
            snprintf(what, sizeof what,
                     "%s: unknown key or wrong type (current-context: string, contexts: list, "
                     "allowInlineApiKeys: true|false)",
                     f->string);
            return field_error(err, errlen, path, m, root, what);
        }
    }
    return 0;
}

/* Finds the wanted context among the file's; *found stays NULL-named when
 * none is wanted. */
static int pick_context(const cJSON *contexts, const char *want, const char *path,
                        const ctl_marks_t *m, cfgctx_t *found, char *err, size_t errlen)
{
    memset(found, 0, sizeof *found);
    for (const cJSON *it = contexts ? contexts->child : NULL; it; it = it->next) {
        cfgctx_t cx;
        if (read_context(it, &cx, path, m, err, errlen) < 0)
            return -1;
        for (const cJSON *o = contexts->child; o != it; o = o->next) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
            if (cJSON_IsString(n) && strcmp(n->valuestring, cx.name) == 0)
                return field_error(err, errlen, path, m, it, "name: duplicate context name");
        }
        if (want && strcmp(cx.name, want) == 0)
            *found = cx;
    }
    if (want && !found->name) {
        snprintf(err, errlen, "%s: no context named \"%s\"", path, want);
        return -1;
    }
    return 0;
}

/* Loads the file (when there is one) and picks the context. */
static int load_file(const char *path, int must_exist, const char *context_flag, cfgctx_t *cx,
                     int *allow, cJSON **root, ctl_marks_t *m, char *err, size_t errlen)
{
    size_t len = 0;
    int eno = 0;
    char *text = slurp(path, &len, &eno);
    if (!text) {
        if (eno == ENOENT && !must_exist && !context_flag)
            return 0;
        snprintf(err, errlen, "%s: cannot read the config: %s", path, strerror(eno));
        return -1;
    }
    *root = ctl__yaml_parse(path, text, len, 0, m, err, errlen);
    free(text);
    if (!*root)
        return -1;
    const char *current = NULL;
    const cJSON *contexts = NULL;
    if (read_top(*root, path, m, &current, &contexts, allow, err, errlen) < 0)
        return -1;
    return pick_context(contexts, context_flag ? context_flag : current, path, m, cx, err, errlen);
}

int ctl_config_resolve(const char *path, const char *context_flag, const char *server_flag,
                       ctl_target_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *def = path ? NULL : default_path();
    const char *file = path ? path : def;
    cfgctx_t cx = {0};
    int allow = 0, rc = -1;
    cJSON *root = NULL;
    ctl_marks_t m = {0};
    if (!file && context_flag) {
        snprintf(err, errlen, "--context %s: no config file (HOME is not set)", context_flag);
        goto done;
    }
    if (file &&
        load_file(file, path != NULL, context_flag, &cx, &allow, &root, &m, err, errlen) < 0)
        goto done;
    const char *env_server = getenv("DEV8_SERVER");
    const char *server = server_flag                   ? server_flag
                         : env_server && env_server[0] ? env_server
                         : cx.server                   ? cx.server
                                                       : DEFAULT_SERVER;
    if (strncmp(server, "http://", 7) != 0 && strncmp(server, "https://", 8) != 0) {
        snprintf(err, errlen, "server %.200s: must start with http:// or https://", server);
        goto done;
    }
    const char *env_key = getenv("DEV8_API_KEY");
    /* A context's key goes only to that context's server, unless the
     * operator named the context explicitly next to another server. */
    int overridden = server_flag || (env_server && env_server[0]);
    int ctx_key_ok = cx.name && (!overridden || context_flag);
    if (env_key && env_key[0])
        out->key = d8_xstrdup(env_key);
    else if (ctx_key_ok && context_key(&cx, allow, file, &m, &out->key, err, errlen) < 0)
        goto done;
    out->server = d8_xstrndup(server, strlen(server) - (server[strlen(server) - 1] == '/'));
    out->context = cx.name ? d8_xstrdup(cx.name) : NULL;
    rc = 0;
done:
    if (rc < 0)
        ctl_target_release(out);
    cJSON_Delete(root);
    ctl__marks_release(&m);
    free(def);
    return rc;
}
