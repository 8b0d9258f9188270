/*
 * Static checks of manifests/ and the Dockerfile against the agent itself.
 *
 * - Every YAML document under manifests/ parses, and every resource names
 *   its apiVersion, kind and metadata.name.
 * - The config.yaml of every ConfigMap loads with the agent's own loader
 *   (config_load_string), so the schema, ranges and regions are checked by
 *   the real code, not by a copy of it.
 * - For the base and each overlay, as rendered (a small built-in renderer
 *   of the kustomize features used here: resources, strategic-merge patch
 *   files, secretGenerator literals; and, when kubectl is on PATH, once
 *   more as `kubectl kustomize` renders it, offline): the Deployment runs
 *   one replica with strategy Recreate; its container port and the
 *   liveness/readiness probes agree with the API ("/healthz", "/readyz")
 *   and with controller.listen of the mounted config; the config volume is
 *   mounted where --config (args, and the Dockerfile's CMD) points;
 *   terminationGracePeriodSeconds > controller.shutdownGraceSeconds; the
 *   pod is locked down (runAsNonRoot, UID 65532, read-only root, no
 *   privilege escalation, drop ALL, seccomp RuntimeDefault); the secrets
 *   come from Secret keys that exist; Service, PodDisruptionBudget and
 *   NetworkPolicy select the pod and expose the named port; a stateFile
 *   sits on a writable PersistentVolumeClaim; per overlay, the reaper's
 *   dryRun, workload identity, the azsim endpoints (dev) and the
 *   ServiceMonitor (production).
 *
 * Paths are relative to the repository root (make test runs from there).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "config/config.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_FILE_BYTES (1024 * 1024)
#define AGENT "dev8-agent"
#define AGENT_UID 65532

/* ---- failures: collected, so that one run shows every problem ---------- */

static char g_what[256];
static int g_failures;

static void check_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void check_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    print_error("%s: %s\n", g_what, msg);
    g_failures++;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_fail(__VA_ARGS__);                                                               \
    } while (0)

static void begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void begin(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(g_what, sizeof g_what, fmt, ap);
    va_end(ap);
    g_failures = 0;
}

/* ---- files ---------------------------------------------------------------- */

/* The whole file, NUL-terminated, or NULL; *len its size. Caller frees. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = d8_xmalloc(MAX_FILE_BYTES + 1);
    size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    int bad = ferror(f) || n > MAX_FILE_BYTES;
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- YAML documents --------------------------------------------------------- */

/* A set of YAML documents, each with the name of where it came from. */
typedef struct yset {
    yaml_document_t *docs;
    char **src;
    size_t n, cap;
} yset_t;

/* A node and the document it belongs to; n NULL: absent. */
typedef struct yref {
    yaml_document_t *d;
    yaml_node_t *n;
} yref_t;

static const yref_t YNONE = {NULL, NULL};

static void yset_push(yset_t *s, yaml_document_t *doc, const char *src)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->docs = d8_xrealloc(s->docs, s->cap * sizeof *s->docs);
        s->src = d8_xrealloc(s->src, s->cap * sizeof *s->src);
    }
    s->docs[s->n] = *doc;
    s->src[s->n] = d8_xstrdup(src);
    s->n++;
}

static void yset_free(yset_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        yaml_document_delete(&s->docs[i]);
        free(s->src[i]);
    }
    free(s->docs);
    free(s->src);
    memset(s, 0, sizeof *s);
}

/*
 * Parses every document of text into s (empty documents are skipped).
 * Returns 0, or -1 with "name:line:column: problem" in err.
 */
static int yset_add_text(yset_t *s, const char *name, const char *text, size_t len, char *err,
                         size_t errlen)
{
    yaml_parser_t p;
    int rc = 0;

    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&p, &doc)) {
            snprintf(err, errlen, "%s:%zu:%zu: %s", name, p.problem_mark.line + 1,
                     p.problem_mark.column + 1, p.problem ? p.problem : "YAML error");
            rc = -1;
            break;
        }
        if (!yaml_document_get_root_node(&doc)) {
            yaml_document_delete(&doc);
            break; /* end of the stream */
        }
        yset_push(s, &doc, name);
    }
    yaml_parser_delete(&p);
    return rc;
}

static int yset_add_file(yset_t *s, const char *path, char *err, size_t errlen)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    int rc = yset_add_text(s, path, text, len, err, errlen);
    free(text);
    return rc;
}

static yref_t yroot(yset_t *s, size_t i)
{
    yref_t r = {&s->docs[i], yaml_document_get_root_node(&s->docs[i])};
    return r;
}

static const char *ystr(yref_t r)
{
    return r.n && r.n->type == YAML_SCALAR_NODE ? (const char *)r.n->data.scalar.value : NULL;
}

static int ystreq(yref_t r, const char *want)
{
    const char *s = ystr(r);
    return s && strcmp(s, want) == 0;
}

/* A scalar that is a plain decimal integer; 1 on success. */
static int yint(yref_t r, long *out)
{
    const char *s = ystr(r);
    char *end = NULL;
    if (!s || !*s)
        return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return 0;
    *out = v;
    return 1;
}

static int ybool_true(yref_t r)
{
    return ystreq(r, "true");
}

static int ybool_false(yref_t r)
{
    return ystreq(r, "false");
}

static yref_t ykey(yref_t m, const char *key)
{
    if (!m.n || m.n->type != YAML_MAPPING_NODE)
        return YNONE;
    for (yaml_node_pair_t *p = m.n->data.mapping.pairs.start; p < m.n->data.mapping.pairs.top;
         p++) {
        yref_t k = {m.d, yaml_document_get_node(m.d, p->key)};
        if (ystreq(k, key)) {
            yref_t v = {m.d, yaml_document_get_node(m.d, p->value)};
            return v;
        }
    }
    return YNONE;
}

static size_t ylen(yref_t r)
{
    if (!r.n)
        return 0;
    if (r.n->type == YAML_SEQUENCE_NODE)
        return (size_t)(r.n->data.sequence.items.top - r.n->data.sequence.items.start);
    if (r.n->type == YAML_MAPPING_NODE)
        return (size_t)(r.n->data.mapping.pairs.top - r.n->data.mapping.pairs.start);
    return 0;
}

static yref_t yidx(yref_t seq, size_t i)
{
    if (!seq.n || seq.n->type != YAML_SEQUENCE_NODE || i >= ylen(seq))
        return YNONE;
    yref_t r = {seq.d, yaml_document_get_node(seq.d, seq.n->data.sequence.items.start[i])};
    return r;
}

/* The item of a sequence of mappings whose `key` is `val`. */
static yref_t ywhere(yref_t seq, const char *key, const char *val)
{
    for (size_t i = 0; i < ylen(seq); i++) {
        yref_t it = yidx(seq, i);
        if (ystreq(ykey(it, key), val))
            return it;
    }
    return YNONE;
}

/*
 * Follows a dotted path: "spec.template.spec.containers[name=dev8-agent]"
 * or "items[0]". Keys holding dots (labels, data keys) need ykey.
 */
static yref_t ypath(yref_t r, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *seg = strtok(buf, "."); seg && r.n; seg = strtok(NULL, ".")) {
        char *br = strchr(seg, '[');
        if (br)
            *br = '\0';
        if (*seg)
            r = ykey(r, seg);
        while (br && r.n) {
            char *sel = br + 1;
            char *close = strchr(sel, ']');
            if (!close)
                return YNONE;
            *close = '\0';
            char *eq = strchr(sel, '=');
            if (eq) {
                *eq = '\0';
                r = ywhere(r, sel, eq + 1);
            } else {
                r = yidx(r, (size_t)strtoul(sel, NULL, 10));
            }
            br = close[1] == '[' ? close + 1 : NULL;
        }
    }
    return r;
}

static const char *kind_of(yref_t doc)
{
    return ystr(ykey(doc, "kind"));
}

static const char *name_of(yref_t doc)
{
    return ystr(ypath(doc, "metadata.name"));
}

/* The document of this kind and metadata.name; its index in *at. */
static yref_t yfind_at(yset_t *s, const char *kind, const char *name, size_t *at)
{
    for (size_t i = 0; i < s->n; i++) {
        yref_t d = yroot(s, i);
        const char *k = kind_of(d), *nm = name_of(d);
        if (k && nm && strcmp(k, kind) == 0 && strcmp(nm, name) == 0) {
            if (at)
                *at = i;
            return d;
        }
    }
    return YNONE;
}

static yref_t yfind(yset_t *s, const char *kind, const char *name)
{
    return yfind_at(s, kind, name, NULL);
}

/* Every key/value of the mapping `sel` is in the mapping `labels`. */
static int selects(yref_t sel, yref_t labels)
{
    if (!sel.n || sel.n->type != YAML_MAPPING_NODE || ylen(sel) == 0)
        return 0;
    for (yaml_node_pair_t *p = sel.n->data.mapping.pairs.start; p < sel.n->data.mapping.pairs.top;
         p++) {
        yref_t k = {sel.d, yaml_document_get_node(sel.d, p->key)};
        yref_t v = {sel.d, yaml_document_get_node(sel.d, p->value)};
        const char *want = ystr(v);
        if (!ystr(k) || !want || !ystreq(ykey(labels, ystr(k)), want))
            return 0;
    }
    return 1;
}

static int seq_has(yref_t seq, const char *val)
{
    for (size_t i = 0; i < ylen(seq); i++)
        if (ystreq(yidx(seq, i), val))
            return 1;
    return 0;
}

/* ---- a small kustomize ----------------------------------------------------- */

/* Copies node n of src into dst; returns its id there (0 on failure). */
static int ycopy(yaml_document_t *dst, yref_t n)
{
    int id = 0;

    switch (n.n->type) {
    case YAML_SCALAR_NODE:
        return yaml_document_add_scalar(dst, n.n->tag, n.n->data.scalar.value,
                                        (int)n.n->data.scalar.length, n.n->data.scalar.style);
    case YAML_SEQUENCE_NODE:
        id = yaml_document_add_sequence(dst, n.n->tag, YAML_BLOCK_SEQUENCE_STYLE);
        for (size_t i = 0; id && i < ylen(n); i++)
            yaml_document_append_sequence_item(dst, id, ycopy(dst, yidx(n, i)));
        return id;
    case YAML_MAPPING_NODE:
        id = yaml_document_add_mapping(dst, n.n->tag, YAML_BLOCK_MAPPING_STYLE);
        for (yaml_node_pair_t *p = n.n->data.mapping.pairs.start;
             id && p < n.n->data.mapping.pairs.top; p++) {
            yref_t k = {n.d, yaml_document_get_node(n.d, p->key)};
            yref_t v = {n.d, yaml_document_get_node(n.d, p->value)};
            int kid = ycopy(dst, k);
            int vid = ycopy(dst, v);
            yaml_document_append_mapping_pair(dst, id, kid, vid);
        }
        return id;
    default:
        return 0;
    }
}

/* A sequence whose items are all mappings with a scalar "name". */
static int named_list(yref_t seq)
{
    if (!seq.n || seq.n->type != YAML_SEQUENCE_NODE)
        return 0;
    for (size_t i = 0; i < ylen(seq); i++)
        if (!ystr(ykey(yidx(seq, i), "name")))
            return 0;
    return 1;
}

/*
 * Strategic merge of patch p onto base b into dst, as kustomize does for
 * the shapes used here: mappings merge key by key, lists of named items
 * (containers, env, volumes, volumeMounts) merge by name, anything else
 * is replaced by the patch.
 */
static int ymerge(yaml_document_t *dst, yref_t b, yref_t p)
{
    int id;

    if (!p.n)
        return ycopy(dst, b);
    if (!b.n)
        return ycopy(dst, p);
    if (b.n->type == YAML_MAPPING_NODE && p.n->type == YAML_MAPPING_NODE) {
        id = yaml_document_add_mapping(dst, NULL, YAML_BLOCK_MAPPING_STYLE);
        for (yaml_node_pair_t *q = b.n->data.mapping.pairs.start; q < b.n->data.mapping.pairs.top;
             q++) {
            yref_t k = {b.d, yaml_document_get_node(b.d, q->key)};
            yref_t v = {b.d, yaml_document_get_node(b.d, q->value)};
            int kid = ycopy(dst, k);
            int vid = ymerge(dst, v, ystr(k) ? ykey(p, ystr(k)) : YNONE);
            yaml_document_append_mapping_pair(dst, id, kid, vid);
        }
        for (yaml_node_pair_t *q = p.n->data.mapping.pairs.start; q < p.n->data.mapping.pairs.top;
             q++) {
            yref_t k = {p.d, yaml_document_get_node(p.d, q->key)};
            yref_t v = {p.d, yaml_document_get_node(p.d, q->value)};
            if (ystr(k) && ykey(b, ystr(k)).n)
                continue;
            int kid = ycopy(dst, k);
            int vid = ycopy(dst, v);
            yaml_document_append_mapping_pair(dst, id, kid, vid);
        }
        return id;
    }
    if (named_list(b) && named_list(p)) {
        id = yaml_document_add_sequence(dst, NULL, YAML_BLOCK_SEQUENCE_STYLE);
        for (size_t i = 0; i < ylen(b); i++) {
            yref_t it = yidx(b, i);
            yref_t pit = ywhere(p, "name", ystr(ykey(it, "name")));
            yaml_document_append_sequence_item(dst, id, ymerge(dst, it, pit));
        }
        for (size_t i = 0; i < ylen(p); i++) {
            yref_t pit = yidx(p, i);
            if (!ywhere(b, "name", ystr(ykey(pit, "name"))).n)
                yaml_document_append_sequence_item(dst, id, ycopy(dst, pit));
        }
        return id;
    }
    return ycopy(dst, p);
}

static void join(char *out, size_t len, const char *dir, const char *rel)
{
    snprintf(out, len, "%s/%s", dir, rel);
}

/* A Secret named `name` with stringData from "KEY=value" literals. */
static void add_generated_secret(yset_t *out, const char *src, const char *name, yref_t literals)
{
    yaml_document_t doc;
    yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1);
    int root = yaml_document_add_mapping(&doc, NULL, YAML_BLOCK_MAPPING_STYLE);
#define SCALAR(s)                                                                                  \
    yaml_document_add_scalar(&doc, NULL, (const yaml_char_t *)(s), -1, YAML_PLAIN_SCALAR_STYLE)
    yaml_document_append_mapping_pair(&doc, root, SCALAR("apiVersion"), SCALAR("v1"));
    yaml_document_append_mapping_pair(&doc, root, SCALAR("kind"), SCALAR("Secret"));
    int meta = yaml_document_add_mapping(&doc, NULL, YAML_BLOCK_MAPPING_STYLE);
    yaml_document_append_mapping_pair(&doc, meta, SCALAR("name"), SCALAR(name));
    yaml_document_append_mapping_pair(&doc, root, SCALAR("metadata"), meta);
    int data = yaml_document_add_mapping(&doc, NULL, YAML_BLOCK_MAPPING_STYLE);
    for (size_t i = 0; i < ylen(literals); i++) {
        const char *lit = ystr(yidx(literals, i));
        const char *eq = lit ? strchr(lit, '=') : NULL;
        CHECK(eq && eq > lit, "%s: secretGenerator %s: literal %zu is not KEY=value", src, name, i);
        if (!eq || eq == lit)
            continue;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - lit), lit);
        yaml_document_append_mapping_pair(&doc, data, SCALAR(key), SCALAR(eq + 1));
    }
    yaml_document_append_mapping_pair(&doc, root, SCALAR("stringData"), data);
#undef SCALAR
    yset_push(out, &doc, src);
}

/*
 * Renders the kustomization in dir into out: resources (files and
 * directories, recursively), patches given by path (strategic merge,
 * matched by kind and metadata.name) and secretGenerator literals. Inline
 * patches are left out (kubectl kustomize covers them); any other
 * kustomize feature is reported, so that this renderer never silently
 * differs from kustomize.
 */
static void render_static(yset_t *out, const char *dir)
{
    static const char *const known[] = {"apiVersion", "kind",   "namespace",       "resources",
                                        "patches",    "images", "secretGenerator", NULL};
    char path[512], err[512] = "";
    yset_t k = {0};

    join(path, sizeof path, dir, "kustomization.yaml");
    if (yset_add_file(&k, path, err, sizeof err) != 0 || k.n != 1) {
        CHECK(0, "%s", k.n != 1 && !err[0] ? "kustomization.yaml: expected one document" : err);
        yset_free(&k);
        return;
    }
    yref_t kz = yroot(&k, 0);
    for (size_t i = 0; kz.n && kz.n->type == YAML_MAPPING_NODE && i < ylen(kz); i++) {
        yref_t key = {kz.d, yaml_document_get_node(kz.d, kz.n->data.mapping.pairs.start[i].key)};
        int ok = 0;
        for (size_t j = 0; known[j]; j++)
            ok |= ystreq(key, known[j]);
        CHECK(ok, "%s: key %s is not understood by this test's renderer; extend render_static",
              path, ystr(key) ? ystr(key) : "?");
    }

    yref_t res = ykey(kz, "resources");
    for (size_t i = 0; i < ylen(res); i++) {
        const char *rel = ystr(yidx(res, i));
        CHECK(rel, "%s: resources[%zu] is not a path", path, i);
        if (!rel)
            continue;
        char rpath[512];
        join(rpath, sizeof rpath, dir, rel);
        if (is_dir(rpath)) {
            render_static(out, rpath);
        } else if (yset_add_file(out, rpath, err, sizeof err) != 0) {
            CHECK(0, "%s: resources[%zu]: %s", path, i, err);
        }
    }

    yref_t patches = ykey(kz, "patches");
    for (size_t i = 0; i < ylen(patches); i++) {
        const char *rel = ystr(ykey(yidx(patches, i), "path"));
        if (!rel) {
            CHECK(ykey(yidx(patches, i), "patch").n, "%s: patches[%zu] has neither path nor patch",
                  path, i);
            continue; /* inline JSON6902 patch: only kubectl kustomize applies it */
        }
        char ppath[512];
        yset_t pset = {0};
        join(ppath, sizeof ppath, dir, rel);
        if (yset_add_file(&pset, ppath, err, sizeof err) != 0) {
            CHECK(0, "%s: patches[%zu]: %s", path, i, err);
            yset_free(&pset);
            continue;
        }
        for (size_t j = 0; j < pset.n; j++) {
            yref_t pd = yroot(&pset, j);
            const char *kind = kind_of(pd), *name = name_of(pd);
            size_t at = 0;
            yref_t target = kind && name ? yfind_at(out, kind, name, &at) : YNONE;
            CHECK(target.n, "%s: patch of %s/%s matches no resource", ppath, kind ? kind : "?",
                  name ? name : "?");
            if (!target.n)
                continue;
            yaml_document_t merged;
            yaml_document_initialize(&merged, NULL, NULL, NULL, 1, 1);
            ymerge(&merged, target, pd);
            yaml_document_delete(&out->docs[at]);
            out->docs[at] = merged;
        }
        yset_free(&pset);
    }

    yref_t gens = ykey(kz, "secretGenerator");
    for (size_t i = 0; i < ylen(gens); i++) {
        yref_t g = yidx(gens, i);
        const char *name = ystr(ykey(g, "name"));
        CHECK(name && ylen(ykey(g, "literals")) > 0 && ylen(g) == 2,
              "%s: secretGenerator[%zu]: only name + literals are understood here", path, i);
        if (name)
            add_generated_secret(out, path, name, ykey(g, "literals"));
    }
    yset_free(&k);
}

/* Renders dir with `kubectl kustomize` (offline). 1 done, 0 no kubectl. */
static int render_kubectl(yset_t *out, const char *dir)
{
    char cmd[600], err[512];

    if (system("command -v kubectl >/dev/null 2>&1") != 0)
        return 0;
    snprintf(cmd, sizeof cmd, "kubectl kustomize '%s' 2>&1", dir);
    FILE *f = popen(cmd, "r");
    CHECK(f, "cannot run %s", cmd);
    if (!f)
        return 1;
    char *buf = d8_xmalloc(MAX_FILE_BYTES + 1);
    size_t n = fread(buf, 1, MAX_FILE_BYTES, f);
    buf[n] = '\0';
    int rc = pclose(f);
    CHECK(rc == 0, "kubectl kustomize %s failed:\n%s", dir, buf);
    if (rc == 0)
        CHECK(yset_add_text(out, dir, buf, n, err, sizeof err) == 0, "%s", err);
    free(buf);
    return 1;
}

/* ---- the Dockerfile --------------------------------------------------------- */

typedef struct dockerfile {
    char user[64];        /* USER of the final stage */
    char entrypoint[128]; /* ENTRYPOINT[0] (exec form) */
    char config[256];     /* the path after --config in CMD */
} dockerfile_t;

/* Reads ENTRYPOINT/CMD (exec form) and USER of the last stage. */
static void read_dockerfile(dockerfile_t *df)
{
    size_t len = 0;
    char *text = read_file("Dockerfile", &len);

    memset(df, 0, sizeof *df);
    CHECK(text, "Dockerfile: cannot read");
    if (!text)
        return;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ')
            line++;
        if (strncmp(line, "FROM ", 5) == 0) {
            memset(df, 0, sizeof *df); /* a new stage */
        } else if (strncmp(line, "USER ", 5) == 0) {
            snprintf(df->user, sizeof df->user, "%s", line + 5);
        } else if (strncmp(line, "ENTRYPOINT ", 11) == 0 || strncmp(line, "CMD ", 4) == 0) {
            int is_cmd = line[0] == 'C';
            cJSON *j = cJSON_Parse(line + (is_cmd ? 4 : 11));
            CHECK(cJSON_IsArray(j), "Dockerfile: %s is not in exec (JSON array) form", line);
            for (int i = 0; cJSON_IsArray(j) && i < cJSON_GetArraySize(j); i++) {
                const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(j, i));
                if (!s)
                    continue;
                if (!is_cmd && i == 0)
                    snprintf(df->entrypoint, sizeof df->entrypoint, "%s", s);
                const char *nx = cJSON_GetStringValue(cJSON_GetArrayItem(j, i + 1));
                if (is_cmd && strcmp(s, "--config") == 0 && nx)
                    snprintf(df->config, sizeof df->config, "%s", nx);
            }
            cJSON_Delete(j);
        }
    }
    free(text);
}

/* ---- the checks -------------------------------------------------------------- */

typedef struct expect {
    int state_file;        /* 1: a stateFile on a PVC; 0: none */
    int dry_run;           /* reaper.dryRun wanted */
    int workload_identity; /* the pod uses AKS workload identity */
    int azsim;             /* every Azure endpoint is the azsim Service */
    int service_monitor;   /* a ServiceMonitor scrapes /metrics */
} expect_t;

static const expect_t EXPECT_BASE = {0, 1, 1, 0, 0};
static const expect_t EXPECT_DEV = {0, 0, 0, 1, 0};
static const expect_t EXPECT_PROD = {1, 0, 1, 0, 1};

/*
 * api.tls: each file is on a readOnly volumeMount of a Secret volume
 * mounted whole (a subPath mount never sees a renewed certificate), and
 * that Secret is one cert-manager issues here (a Certificate of this
 * rendering) or one the rendering holds. A probe on the API port speaks
 * HTTPS exactly when the API does; one on the probe port never does.
 */
static long resolve_port(yref_t c, yref_t port);

static void check_tls(yset_t *s, yref_t pod, yref_t c, const config_t *cfg)
{
    int on = cfg->tls_cert_file[0] != '\0';
    const char *files[] = {cfg->tls_cert_file, cfg->tls_key_file, cfg->tls_client_ca_file};
    for (size_t f = 0; on && f < 3; f++) {
        if (!files[f][0])
            continue;
        yref_t fm = YNONE;
        for (size_t i = 0; i < ylen(ykey(c, "volumeMounts")); i++) {
            yref_t m = yidx(ykey(c, "volumeMounts"), i);
            const char *mp = ystr(ykey(m, "mountPath"));
            size_t ml = mp ? strlen(mp) : 0;
            if (mp && strncmp(files[f], mp, ml) == 0 && files[f][ml] == '/')
                fm = m;
        }
        CHECK(fm.n && ybool_true(ykey(fm, "readOnly")) && !ykey(fm, "subPath").n,
              "api.tls file %s is on no readOnly whole-volume mount", files[f]);
        yref_t v = ywhere(ykey(pod, "volumes"), "name", ystr(ykey(fm, "name")));
        const char *secret = ystr(ypath(v, "secret.secretName"));
        CHECK(secret, "api.tls file %s is not on a Secret volume", files[f]);
        int issued = 0;
        for (size_t i = 0; secret && i < s->n; i++) {
            yref_t d = yroot(s, i);
            const char *k = kind_of(d);
            issued |=
                k && strcmp(k, "Certificate") == 0 && ystreq(ypath(d, "spec.secretName"), secret);
        }
        CHECK(!secret || issued || yfind(s, "Secret", secret).n,
              "Secret %s of api.tls is neither issued by a Certificate nor in the rendering",
              secret ? secret : "?");
    }
    const char *probes[] = {"livenessProbe", "readinessProbe"};
    for (size_t i = 0; i < 2; i++) {
        yref_t g = ykey(ypath(c, probes[i]), "httpGet");
        int https = ystreq(ykey(g, "scheme"), "HTTPS");
        int api_port = resolve_port(c, ykey(g, "port")) == cfg->listen_port;
        CHECK(https == (on && api_port), "%s.httpGet.scheme is %s but its port speaks %s",
              probes[i], https ? "HTTPS" : "HTTP",
              on && api_port ? "HTTPS (api.tls)" : "plain HTTP");
    }
}

/* The containerPort named `port` (or numbered so) in container c; -1. */
static long resolve_port(yref_t c, yref_t port)
{
    long n;
    if (yint(port, &n))
        return n;
    const char *name = ystr(port);
    if (!name)
        return -1;
    yref_t p = ywhere(ykey(c, "ports"), "name", name);
    return p.n && yint(ykey(p, "containerPort"), &n) ? n : -1;
}

/* The path after --config in args, or NULL. */
static const char *config_arg(yref_t args)
{
    for (size_t i = 0; i < ylen(args); i++) {
        const char *a = ystr(yidx(args, i));
        if (a && strcmp(a, "--config") == 0)
            return ystr(yidx(args, i + 1));
        if (a && strncmp(a, "--config=", 9) == 0)
            return a + 9;
    }
    return NULL;
}

/* A securityContext field: the container's, else the pod's. */
static yref_t effective(yref_t csc, yref_t psc, const char *path)
{
    yref_t r = ypath(csc, path);
    return r.n ? r : ypath(psc, path);
}

static void check_security(yref_t pod, yref_t c, const char *cname)
{
    yref_t psc = ykey(pod, "securityContext"), csc = ykey(c, "securityContext");
    long uid = -1;

    CHECK(ybool_true(effective(csc, psc, "runAsNonRoot")), "%s: runAsNonRoot is not true", cname);
    CHECK(yint(effective(csc, psc, "runAsUser"), &uid) && uid == AGENT_UID,
          "%s: runAsUser is not %d", cname, AGENT_UID);
    CHECK(ybool_true(ykey(csc, "readOnlyRootFilesystem")), "%s: readOnlyRootFilesystem is not true",
          cname);
    CHECK(ybool_false(ykey(csc, "allowPrivilegeEscalation")),
          "%s: allowPrivilegeEscalation is not false", cname);
    CHECK(seq_has(ypath(csc, "capabilities.drop"), "ALL"), "%s: capabilities.drop lacks ALL",
          cname);
    CHECK(!ykey(ykey(csc, "capabilities"), "add").n, "%s: adds capabilities", cname);
    CHECK(!ybool_true(ykey(csc, "privileged")), "%s: privileged", cname);
    CHECK(ystreq(effective(csc, psc, "seccompProfile.type"), "RuntimeDefault"),
          "%s: seccompProfile.type is not RuntimeDefault", cname);
}

/* Does a Secret of the set or the base template hold key? */
static int secret_has(yset_t *s, yset_t *tmpl, const char *name, const char *key)
{
    yref_t sec = yfind(s, "Secret", name);
    if (!sec.n)
        sec = yfind(tmpl, "Secret", name);
    return ykey(ykey(sec, "stringData"), key).n || ykey(ykey(sec, "data"), key).n;
}

/* "http://host:port" -> host, port; 1 on success. */
static int split_url(const char *url, char *host, size_t hostlen, long *port)
{
    const char *p = strstr(url, "://");
    if (!p)
        return 0;
    p += 3;
    const char *colon = strchr(p, ':');
    if (!colon || (size_t)(colon - p) >= hostlen)
        return 0;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    char *end = NULL;
    *port = strtol(colon + 1, &end, 10);
    return end != colon + 1 && (*end == '\0' || *end == '/');
}

static void check_azsim(yset_t *s, const config_t *cfg)
{
    yref_t svc = yfind(s, "Service", "azsim");
    yref_t dep = yfind(s, "Deployment", "azsim");
    CHECK(svc.n && dep.n, "no azsim Deployment and Service");
    if (!svc.n || !dep.n)
        return;
    yref_t pod = ypath(dep, "spec.template.spec");
    yref_t c = ypath(pod, "containers[name=azsim]");
    CHECK(selects(ypath(svc, "spec.selector"), ypath(dep, "spec.template.metadata.labels")),
          "Service azsim does not select the azsim pods");
    check_security(pod, c, "azsim");

    /* azsim --listen 0.0.0.0:PORT, and PORT is its containerPort. */
    long listen = -1;
    yref_t args = ykey(c, "args");
    for (size_t i = 0; i < ylen(args); i++)
        if (ystreq(yidx(args, i), "--listen")) {
            const char *v = ystr(yidx(args, i + 1));
            const char *colon = v ? strrchr(v, ':') : NULL;
            listen = colon ? strtol(colon + 1, NULL, 10) : -1;
            CHECK(v && strncmp(v, "0.0.0.0:", 8) == 0, "azsim must listen on 0.0.0.0, got %s",
                  v ? v : "nothing");
        }
    long cport = -1;
    yint(ypath(c, "ports[name=http].containerPort"), &cport);
    CHECK(listen > 0 && cport == listen,
          "azsim --listen port %ld is not its containerPort named http (%ld)", listen, cport);

    const char *eps[] = {cfg->arm_endpoint, cfg->authority_host, cfg->imds_endpoint};
    const char *names[] = {"azure.armEndpoint", "azure.authorityHost", "azure.imdsEndpoint"};
    for (size_t i = 0; i < 3; i++) {
        char host[128];
        long port = -1;
        int ok = split_url(eps[i], host, sizeof host, &port);
        CHECK(ok && (strcmp(host, "azsim") == 0 || strncmp(host, "azsim.", 6) == 0),
              "%s %s does not name the azsim Service", names[i], eps[i]);
        yref_t sp = YNONE;
        for (size_t j = 0; j < ylen(ypath(svc, "spec.ports")); j++) {
            long n;
            yref_t p = yidx(ypath(svc, "spec.ports"), j);
            if (yint(ykey(p, "port"), &n) && n == port)
                sp = p;
        }
        CHECK(sp.n, "%s %s: the azsim Service has no port %ld", names[i], eps[i], port);
        CHECK(!sp.n || resolve_port(c, ykey(sp, "targetPort")) == listen,
              "%s: the azsim Service port %ld does not reach azsim's --listen port", names[i],
              port);
    }
}

/* Checks the Deployment dev8-agent and everything around it in s. */
static void check_agent(yset_t *s, yset_t *tmpl, const dockerfile_t *df, const expect_t *x)
{
    yref_t dep = yfind(s, "Deployment", AGENT);
    CHECK(dep.n, "no Deployment %s", AGENT);
    if (!dep.n)
        return;

    long n = -1;
    CHECK(yint(ypath(dep, "spec.replicas"), &n) && n == 1, "spec.replicas is not 1");
    CHECK(ystreq(ypath(dep, "spec.strategy.type"), "Recreate"), "spec.strategy.type is not "
                                                                "Recreate");
    yref_t labels = ypath(dep, "spec.template.metadata.labels");
    yref_t pod = ypath(dep, "spec.template.spec");
    CHECK(selects(ypath(dep, "spec.selector.matchLabels"), labels),
          "spec.selector does not match the pod labels");
    yref_t c = ypath(pod, "containers[name=" AGENT "]");
    CHECK(c.n, "no container named %s", AGENT);
    if (!c.n)
        return;
    check_security(pod, c, AGENT);

    /* --config, in args and in the image's CMD, names the mounted file. */
    const char *cfg_path = config_arg(ykey(c, "args"));
    CHECK(cfg_path && cfg_path[0] == '/', "container args have no --config /absolute/path");
    if (!cfg_path)
        return;
    CHECK(!df->config[0] || strcmp(df->config, cfg_path) == 0,
          "args --config %s differs from the Dockerfile's CMD --config %s", cfg_path, df->config);
    const char *slash = strrchr(cfg_path, '/');
    char dir[256];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - cfg_path), cfg_path);
    const char *file = slash + 1;
    yref_t mount = ywhere(ykey(c, "volumeMounts"), "mountPath", dir);
    CHECK(mount.n, "no volumeMount at %s, the directory of --config %s", dir, cfg_path);
    if (!mount.n)
        return;
    CHECK(ybool_true(ykey(mount, "readOnly")), "the config mount %s is not readOnly", dir);
    yref_t vol = ywhere(ykey(pod, "volumes"), "name", ystr(ykey(mount, "name")));
    const char *cm_name = ystr(ypath(vol, "configMap.name"));
    CHECK(cm_name, "the volume mounted at %s is not a ConfigMap", dir);
    if (!cm_name)
        return;
    yref_t items = ypath(vol, "configMap.items");
    const char *key = file;
    if (items.n) {
        yref_t it = ywhere(items, "path", file);
        key = ystr(ykey(it, "key"));
        CHECK(key, "ConfigMap volume items do not map %s", file);
        if (!key)
            return;
    }
    yref_t cm = yfind(s, "ConfigMap", cm_name);
    const char *text = ystr(ykey(ykey(cm, "data"), key));
    CHECK(text, "ConfigMap %s has no data key %s (mounted as %s)", cm_name, key, cfg_path);
    if (!text)
        return;

    char err[512];
    config_t *cfg = NULL;
    char name[300];
    snprintf(name, sizeof name, "ConfigMap %s %s", cm_name, key);
    int rc = config_load_string(name, text, strlen(text), &cfg, err, sizeof err);
    CHECK(rc == 0, "the config does not load: %s", err);
    if (rc != 0)
        return;

    /* The API's port and probes. */
    long port = -1;
    CHECK(yint(ypath(c, "ports[name=http].containerPort"), &port) && port == cfg->listen_port,
          "containerPort \"http\" (%ld) is not controller.listen's port %d", port,
          cfg->listen_port);
    CHECK(strcmp(cfg->listen_host, "127.0.0.1") != 0 && strcmp(cfg->listen_host, "::1") != 0,
          "controller.listen is loopback (%s): probes and the Service cannot reach it",
          cfg->listen_host);
    /* Probes and the scrape go to controller.probeListen when it is set
     * (never refused for the API's connection limits). */
    int probe_port = cfg->probe_listen_host ? cfg->probe_listen_port : cfg->listen_port;
    if (cfg->probe_listen_host) {
        CHECK(yint(ypath(c, "ports[name=probes].containerPort"), &port) && port == probe_port,
              "containerPort \"probes\" (%ld) is not controller.probeListen's port %d", port,
              probe_port);
        CHECK(probe_port != cfg->listen_port, "controller.probeListen shares the API's port");
    }
    struct {
        const char *probe, *path;
    } probes[] = {{"livenessProbe", "/healthz"}, {"readinessProbe", "/readyz"}};
    for (size_t i = 0; i < 2; i++) {
        yref_t g = ypath(c, probes[i].probe);
        g = ykey(g, "httpGet");
        CHECK(ystreq(ykey(g, "path"), probes[i].path), "%s.httpGet.path is not %s", probes[i].probe,
              probes[i].path);
        CHECK(resolve_port(c, ykey(g, "port")) == probe_port,
              "%s.httpGet.port does not reach the probe port %d", probes[i].probe, probe_port);
    }

    check_tls(s, pod, c, cfg);

    /* SIGTERM: the agent's grace must end before the kubelet's. */
    long tgps = 30; /* Kubernetes' default */
    yint(ykey(pod, "terminationGracePeriodSeconds"), &tgps);
    CHECK(tgps > cfg->shutdown_grace_seconds,
          "terminationGracePeriodSeconds %ld is not above controller.shutdownGraceSeconds %d", tgps,
          cfg->shutdown_grace_seconds);

    /* Secrets: from Secret keys that exist, never inline. */
    const char *secrets[] = {"AGENT_API_KEYS", "DEV8_SPEC_HASH_KEY", cfg->webhook_secret_env};
    for (size_t i = 0; i < 3; i++) {
        yref_t e = ywhere(ykey(c, "env"), "name", secrets[i]);
        yref_t ref = ypath(e, "valueFrom.secretKeyRef");
        CHECK(ref.n, "env %s does not come from a secretKeyRef", secrets[i]);
    }
    for (size_t i = 0; i < ylen(ykey(c, "env")); i++) {
        yref_t e = yidx(ykey(c, "env"), i);
        const char *en = ystr(ykey(e, "name"));
        yref_t ref = ypath(e, "valueFrom.secretKeyRef");
        const char *sname = ystr(ykey(ref, "name")), *skey = ystr(ykey(ref, "key"));
        /* Every key exists, even an optional one: it is documented there. */
        CHECK(!ref.n || (sname && skey && secret_has(s, tmpl, sname, skey)),
              "env %s: Secret %s has no key %s (nor does manifests/base/secret.yaml)",
              en ? en : "?", sname ? sname : "?", skey ? skey : "?");
        CHECK(!en || !ykey(e, "value").n ||
                  (!strstr(en, "SECRET") && !strstr(en, "KEY") && !strstr(en, "TOKEN")),
              "env %s has an inline value: secrets belong in a Secret", en);
    }

    /* Service, PodDisruptionBudget, NetworkPolicy. */
    yref_t svc = yfind(s, "Service", AGENT);
    CHECK(selects(ypath(svc, "spec.selector"), labels), "Service %s does not select the pod",
          AGENT);
    yref_t sport = ywhere(ypath(svc, "spec.ports"), "name", "http");
    CHECK(resolve_port(c, ykey(sport, "targetPort")) == cfg->listen_port,
          "Service port http does not target controller.listen's port");
    yref_t pdb = yfind(s, "PodDisruptionBudget", AGENT);
    CHECK(selects(ypath(pdb, "spec.selector.matchLabels"), labels), "PDB does not select the pod");
    CHECK(yint(ypath(pdb, "spec.maxUnavailable"), &n) && n == 1, "PDB maxUnavailable is not 1");
    yref_t np = yfind(s, "NetworkPolicy", AGENT);
    CHECK(selects(ypath(np, "spec.podSelector.matchLabels"), labels),
          "NetworkPolicy does not select the pod");
    CHECK(seq_has(ypath(np, "spec.policyTypes"), "Ingress") &&
              seq_has(ypath(np, "spec.policyTypes"), "Egress"),
          "NetworkPolicy does not restrict both Ingress and Egress");
    int ingress_port = 0, ingress_probe = 0, dns_udp = 0, dns_tcp = 0, https = 0;
    for (size_t i = 0; i < ylen(ypath(np, "spec.ingress")); i++) {
        yref_t ports = ykey(yidx(ypath(np, "spec.ingress"), i), "ports");
        for (size_t j = 0; j < ylen(ports); j++) {
            int pn = resolve_port(c, ykey(yidx(ports, j), "port"));
            ingress_port |= pn == cfg->listen_port;
            ingress_probe |= pn == probe_port;
        }
    }
    for (size_t i = 0; i < ylen(ypath(np, "spec.egress")); i++) {
        yref_t ports = ykey(yidx(ypath(np, "spec.egress"), i), "ports");
        for (size_t j = 0; j < ylen(ports); j++) {
            yref_t p = yidx(ports, j);
            const char *proto = ystr(ykey(p, "protocol"));
            long pn = -1;
            yint(ykey(p, "port"), &pn);
            int udp = proto && strcmp(proto, "UDP") == 0;
            dns_udp |= pn == 53 && udp;
            dns_tcp |= pn == 53 && !udp;
            https |= pn == 443 && !udp;
        }
    }
    CHECK(ingress_port, "NetworkPolicy ingress does not open the API port");
    CHECK(ingress_probe, "NetworkPolicy ingress does not open the probe port (the scrape)");
    CHECK(dns_udp && dns_tcp && https, "NetworkPolicy egress lacks DNS 53/UDP+TCP or 443/TCP");

    /* The state file: on a writable PersistentVolumeClaim, or none. */
    if (x->state_file) {
        CHECK(cfg->state_file[0] == '/', "controller.stateFile is not set");
        yref_t sm = YNONE;
        for (size_t i = 0; i < ylen(ykey(c, "volumeMounts")); i++) {
            yref_t m = yidx(ykey(c, "volumeMounts"), i);
            const char *mp = ystr(ykey(m, "mountPath"));
            size_t ml = mp ? strlen(mp) : 0;
            if (mp && strncmp(cfg->state_file, mp, ml) == 0 && cfg->state_file[ml] == '/')
                sm = m;
        }
        CHECK(sm.n && !ybool_true(ykey(sm, "readOnly")),
              "controller.stateFile %s is on no writable volumeMount", cfg->state_file);
        yref_t sv = ywhere(ykey(pod, "volumes"), "name", ystr(ykey(sm, "name")));
        const char *claim = ystr(ypath(sv, "persistentVolumeClaim.claimName"));
        CHECK(claim && yfind(s, "PersistentVolumeClaim", claim).n,
              "the stateFile volume is not a PersistentVolumeClaim of this overlay");
    } else {
        CHECK(cfg->state_file[0] == '\0',
              "controller.stateFile %s is set, but the root filesystem is read-only and no "
              "volume holds it",
              cfg->state_file);
    }
    CHECK(cfg->reaper_dry_run == x->dry_run, "reaper.dryRun is %s",
          cfg->reaper_dry_run ? "true" : "false");

    /* Workload identity: label, annotated ServiceAccount, auth mode. */
    yref_t wi = ykey(labels, "azure.workload.identity/use");
    if (x->workload_identity) {
        CHECK(ystreq(wi, "true"), "pod label azure.workload.identity/use is not \"true\"");
        const char *sa = ystr(ykey(pod, "serviceAccountName"));
        yref_t sad = sa ? yfind(s, "ServiceAccount", sa) : YNONE;
        CHECK(ystr(ykey(ypath(sad, "metadata.annotations"), "azure.workload.identity/client-id")),
              "ServiceAccount %s has no azure.workload.identity/client-id annotation",
              sa ? sa : "(none)");
        CHECK(strcmp(cfg->azure_auth, "workloadIdentity") == 0, "azure.auth is %s",
              cfg->azure_auth);
    } else {
        CHECK(!ystreq(wi, "true"), "workload identity is on, but this overlay does not use it");
    }
    if (x->azsim)
        check_azsim(s, cfg);

    if (x->service_monitor) {
        yref_t sm = yfind(s, "ServiceMonitor", AGENT);
        CHECK(sm.n, "no ServiceMonitor %s", AGENT);
        CHECK(ystreq(ykey(sm, "apiVersion"), "monitoring.coreos.com/v1"),
              "ServiceMonitor apiVersion is not monitoring.coreos.com/v1");
        CHECK(selects(ypath(sm, "spec.selector.matchLabels"), ypath(svc, "metadata.labels")),
              "ServiceMonitor does not select Service %s", AGENT);
        yref_t ep = ypath(sm, "spec.endpoints[0]");
        const char *smport = ystr(ykey(ep, "port"));
        yref_t target = ywhere(ypath(svc, "spec.ports"), "name", smport ? smport : "");
        CHECK(target.n && resolve_port(c, ykey(target, "targetPort")) == probe_port &&
                  ystreq(ykey(ep, "path"), "/metrics"),
              "ServiceMonitor does not scrape /metrics on the probe port %d", probe_port);
    }
    config_free(cfg);
}

/* ---- tests ------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    /* The loader reads these; the manifests must stand on their own. */
    unsetenv("AGENT_API_KEYS");
    unsetenv("AZURE_SUBSCRIPTION_ID");
    /* From the repository root, wherever the binary was started. */
    for (int i = 0; i < 6 && access("manifests/base/kustomization.yaml", R_OK) != 0; i++)
        if (chdir("..") != 0)
            break;
    return access("manifests/base/kustomization.yaml", R_OK) == 0 ? 0 : -1;
}

/* Every .yaml under dir parses; resources are named; configs load. */
static void walk_yaml(const char *dir, size_t *nfiles, size_t *nconfigs)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    CHECK(d, "cannot open %s", dir);
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], err[512];
        join(path, sizeof path, dir, e->d_name);
        if (is_dir(path)) {
            walk_yaml(path, nfiles, nconfigs);
            continue;
        }
        size_t len = strlen(e->d_name);
        if (len < 5 ||
            (strcmp(e->d_name + len - 5, ".yaml") && strcmp(e->d_name + len - 4, ".yml")))
            continue;
        (*nfiles)++;
        yset_t s = {0};
        CHECK(yset_add_file(&s, path, err, sizeof err) == 0, "%s", err);
        CHECK(s.n > 0, "%s: no YAML document", path);
        int kz = strcmp(e->d_name, "kustomization.yaml") == 0;
        for (size_t i = 0; i < s.n; i++) {
            yref_t d0 = yroot(&s, i);
            const char *kind = kind_of(d0);
            CHECK(d0.n->type == YAML_MAPPING_NODE, "%s: document %zu is not a mapping", path, i);
            if (kz) {
                CHECK(ystreq(ykey(d0, "kind"), "Kustomization"), "%s: kind is not Kustomization",
                      path);
                continue;
            }
            CHECK(ystr(ykey(d0, "apiVersion")) && kind && name_of(d0),
                  "%s: document %zu lacks apiVersion, kind or metadata.name", path, i);
            if (!kind || strcmp(kind, "ConfigMap") != 0)
                continue;
            const char *text = ystr(ykey(ykey(d0, "data"), "config.yaml"));
            if (!text)
                continue;
            config_t *cfg = NULL;
            char name[600];
            snprintf(name, sizeof name, "%s (config.yaml)", path);
            CHECK(config_load_string(name, text, strlen(text), &cfg, err, sizeof err) == 0,
                  "config.yaml does not load: %s", err);
            config_free(cfg);
            (*nconfigs)++;
        }
        yset_free(&s);
    }
    closedir(d);
}

static void test_every_document(void **state)
{
    (void)state;
    size_t nfiles = 0, nconfigs = 0;

    begin("manifests/");
    walk_yaml("manifests", &nfiles, &nconfigs);
    /* base, dev and production each carry one. */
    CHECK(nconfigs >= 3, "only %zu config.yaml found", nconfigs);
    CHECK(nfiles >= 15, "only %zu YAML files found", nfiles);
    assert_int_equal(g_failures, 0);
}

static void test_dockerfile(void **state)
{
    (void)state;
    dockerfile_t df;

    begin("Dockerfile");
    read_dockerfile(&df);
    CHECK(strcmp(df.entrypoint, AGENT) == 0, "ENTRYPOINT is not [\"%s\"]", AGENT);
    CHECK(strcmp(df.config, "/etc/dev8/config.yaml") == 0, "CMD --config is %s", df.config);
    CHECK(strcmp(df.user, "65532") == 0 || strcmp(df.user, "65532:65532") == 0,
          "the final stage's USER is %s, not 65532", df.user);
    assert_int_equal(g_failures, 0);
}

/* The Secret template is never applied and holds only placeholders. */
static void test_secret_template(void **state)
{
    (void)state;
    yset_t t = {0}, base = {0};
    char err[512];

    begin("manifests/base/secret.yaml");
    CHECK(yset_add_file(&t, "manifests/base/secret.yaml", err, sizeof err) == 0, "%s", err);
    yref_t sec = t.n ? yroot(&t, 0) : YNONE;
    CHECK(ystreq(ykey(sec, "kind"), "Secret"), "not a Secret");
    const char *keys[] = {"AGENT_API_KEYS", "WEBHOOK_SECRET", "DEV8_SPEC_HASH_KEY"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = ystr(ykey(ykey(sec, "stringData"), keys[i]));
        CHECK(v && strstr(v, "REPLACE"), "stringData.%s is not a REPLACE placeholder", keys[i]);
    }
    CHECK(yset_add_file(&base, "manifests/base/kustomization.yaml", err, sizeof err) == 0, "%s",
          err);
    CHECK(base.n && !seq_has(ykey(yroot(&base, 0), "resources"), "secret.yaml"),
          "the base kustomization must not apply the placeholder Secret");
    yset_free(&t);
    yset_free(&base);
    assert_int_equal(g_failures, 0);
}

static void run_overlay(const char *dir, const expect_t *x, int kubectl)
{
    yset_t s = {0}, tmpl = {0};
    dockerfile_t df;
    char err[512];

    begin("Dockerfile");
    read_dockerfile(&df);
    begin("%s (%s)", dir, kubectl ? "kubectl kustomize" : "static render");
    CHECK(yset_add_file(&tmpl, "manifests/base/secret.yaml", err, sizeof err) == 0, "%s", err);
    if (kubectl) {
        if (!render_kubectl(&s, dir)) {
            yset_free(&tmpl);
            print_message("kubectl is not installed: %s checked by the static render only\n", dir);
            skip();
        }
    } else {
        render_static(&s, dir);
    }
    check_agent(&s, &tmpl, &df, x);
    yset_free(&s);
    yset_free(&tmpl);
    assert_int_equal(g_failures, 0);
}

static void test_base(void **state)
{
    (void)state;
    run_overlay("manifests/base", &EXPECT_BASE, 0);
}

static void test_dev(void **state)
{
    (void)state;
    run_overlay("manifests/overlays/dev", &EXPECT_DEV, 0);
}

static void test_production(void **state)
{
    (void)state;
    run_overlay("manifests/overlays/production", &EXPECT_PROD, 0);
}

static void test_base_kubectl(void **state)
{
    (void)state;
    run_overlay("manifests/base", &EXPECT_BASE, 1);
}

static void test_dev_kubectl(void **state)
{
    (void)state;
    run_overlay("manifests/overlays/dev", &EXPECT_DEV, 1);
}

static void test_production_kubectl(void **state)
{
    (void)state;
    run_overlay("manifests/overlays/production", &EXPECT_PROD, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_document),
        cmocka_unit_test(test_dockerfile),
        cmocka_unit_test(test_secret_template),
        cmocka_unit_test(test_base),
        cmocka_unit_test(test_dev),
        cmocka_unit_test(test_production),
        cmocka_unit_test(test_base_kubectl),
        cmocka_unit_test(test_dev_kubectl),
        cmocka_unit_test(test_production_kubectl),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
