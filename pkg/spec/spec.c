/*
 * pkg/spec: decoding, validation, normalisation, encoding and comparison
 * of the Environment spec (DESIGN.md section 3). The spec hash lives in
 * spec_hash.c.
 *
 * Decoding works in two passes over the body object: the first checks the
 * keys (unknown or duplicate fields) in document order and remembers where
 * each known field is; the second validates the fields in the order of the
 * design's table, so the error a client sees for a body with several
 * problems is deterministic.
 */
#include "spec.h"

#include "base/base.h"

#include <math.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_CHARS 128  /* userId, name: code points */
#define ENV_NAME_MAX 256    /* bytes (names are ASCII) */
#define ENV_VALUE_MAX 32768 /* bytes */
#define ENV_MAX_ENTRIES 128 /* per object (env, secretEnv) */
#define DEFAULT_MAX_STORAGE_GB 1024
#define DEFAULT_IMAGE "node"
#define DEFAULT_CPU_HALVES 4    /* 2 cores */
#define DEFAULT_MEMORY_HALVES 8 /* 4 GB */
#define DEFAULT_STORAGE_GB 20
#define AUTO_STOP_MIN 5
#define AUTO_STOP_MAX 10080
#define SHOWN_NAME_MAX 64 /* bytes of a client-supplied key echoed in errors */

/* The body's fields; the order is the design's table (and the error order). */
enum field {
    F_ID,
    F_CLOUD_PROVIDER,
    F_USER_ID,
    F_NAME,
    F_CLOUD_REGION,
    F_BASE_IMAGE,
    F_CPU_CORES,
    F_MEMORY_GB,
    F_STORAGE_GB,
    F_POWER_STATE,
    F_ENV,
    F_SECRET_ENV,
    F_AUTO_STOP_MINUTES,
    F_STORAGE_POLICY,
    F_UPDATE_POLICY,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    [F_ID] = "id",
    [F_CLOUD_PROVIDER] = "cloudProvider",
    [F_USER_ID] = "userId",
    [F_NAME] = "name",
    [F_CLOUD_REGION] = "cloudRegion",
    [F_BASE_IMAGE] = "baseImage",
    [F_CPU_CORES] = "cpuCores",
    [F_MEMORY_GB] = "memoryGB",
    [F_STORAGE_GB] = "storageGB",
    [F_POWER_STATE] = "powerState",
    [F_ENV] = "env",
    [F_SECRET_ENV] = "secretEnv",
    [F_AUTO_STOP_MINUTES] = "autoStopMinutes",
    [F_STORAGE_POLICY] = "storagePolicy",
    [F_UPDATE_POLICY] = "updatePolicy",
};

/* State of one spec_decode call; everything borrowed. */
typedef struct decoder {
    const spec_rules_t *rules;
    const char *prefix;
    spec_error_t *err;
} decoder_t;

/*
 * Length of the well-formed UTF-8 sequence at p (avail bytes readable), or
 * 0 when it is not one: no overlong forms, no surrogates, nothing above
 * U+10FFFF. The code point goes to *cp.
 */
static size_t utf8_seq(const unsigned char *p, size_t avail, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[k] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* C0 controls, DEL and the C1 controls U+0080..U+009F. */
static int is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/*
 * Copies at most SHOWN_NAME_MAX bytes of a client-supplied string into out
 * (outsz >= SHOWN_NAME_MAX + 4) so it can be echoed in an error: valid
 * UTF-8 is kept, control characters and invalid bytes become '?', and a
 * cut is marked with "...".
 */
static void shown(const char *s, char *out, size_t outsz)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p), i = 0, o = 0;
    size_t limit = outsz - 4 < SHOWN_NAME_MAX ? outsz - 4 : SHOWN_NAME_MAX;

    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_seq(p + i, len - i, &cp);
        size_t w = n && !is_control(cp) ? n : 1;

        if (o + w > limit) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (w == 1 && (n == 0 || is_control(cp))) {
            out[o++] = '?';
            i += n ? n : 1;
        } else {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
}

/*
 * Cuts s at its first byte that does not start a well-formed UTF-8
 * sequence, so that a message truncated by snprintf in the middle of a
 * character still encodes as valid JSON.
 */
static void trim_utf8(char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0) {
            s[i] = '\0';
            return;
        }
        i += n;
    }
}

static int fail(decoder_t *d, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Fills the error and returns D8_EINVAL. `code` is the API error code;
 * `field` is the body path without the decoder's prefix (NULL or "" for
 * none).
 */
static int fail(decoder_t *d, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (!d->err)
        return D8_EINVAL;
    snprintf(d->err->code, sizeof(d->err->code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(d->err->message, sizeof(d->err->message), fmt, ap);
    va_end(ap);
    if (field && *field) {
        snprintf(d->err->field, sizeof(d->err->field), "%s%s", d->prefix, field);
    } else {
        /* The object itself: "items[3]." names it as "items[3]". */
        size_t n = strlen(d->prefix);
        if (n && d->prefix[n - 1] == '.')
            n--;
        snprintf(d->err->field, sizeof(d->err->field), "%.*s", (int)n, d->prefix);
    }
    trim_utf8(d->err->message);
    trim_utf8(d->err->field);
    return D8_EINVAL;
}

/*
 * Checks that s[0..len) is well-formed UTF-8; when reject_ctl is set,
 * control characters are refused too. Stores the number of code points
 * in *ncp (when non-NULL). Returns 0, -1 for bad UTF-8, -2 for a control
 * character.
 */
static int utf8_check(const char *s, size_t len, int reject_ctl, size_t *ncp)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, count = 0;

    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_seq(p + i, len - i, &cp);

        if (n == 0)
            return -1;
        if (reject_ctl && is_control(cp))
            return -2;
        i += n;
        count++;
    }
    if (ncp)
        *ncp = count;
    return 0;
}

/* ^[A-Za-z_][A-Za-z0-9_]*$, at most ENV_NAME_MAX bytes. */
static int env_name_valid(const char *s)
{
    size_t i;

    if (!s || !*s)
        return 0;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        int digit = c >= '0' && c <= '9';
        if (!(alpha || (i > 0 && digit)))
            return 0;
        if (i >= ENV_NAME_MAX)
            return 0;
    }
    return 1;
}

int spec_id_valid(const char *id)
{
    size_t n;

    if (!id)
        return 0;
    n = strlen(id);
    if (n < 1 || n > SPEC_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (c == '-') {
            if (i == 0 || i == n - 1 || id[i - 1] == '-')
                return 0;
        } else if (!alnum) {
            return 0;
        }
    }
    return 1;
}

/* The value of a field, or NULL when it is absent or JSON null. */
static const cJSON *present(const cJSON *v)
{
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/*
 * A string field of 1..NAME_MAX_CHARS code points without control
 * characters. Stores a copy (owned by the caller) in *out.
 */
static int decode_label(decoder_t *d, const cJSON *v, const char *field, char **out)
{
    size_t n = 0;
    int rc;

    if (!present(v))
        return fail(d, "InvalidSpec", field, "%s is required", field);
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(d, "InvalidSpec", field, "%s must be a string", field);
    rc = utf8_check(v->valuestring, strlen(v->valuestring), 1, &n);
    if (rc == -1)
        return fail(d, "InvalidSpec", field, "%s is not valid UTF-8", field);
    if (rc == -2)
        return fail(d, "InvalidSpec", field, "%s must not contain control characters", field);
    if (n < 1 || n > NAME_MAX_CHARS)
        return fail(d, "InvalidSpec", field, "%s must be 1 to %d characters long (got %zu)", field,
                    NAME_MAX_CHARS, n);
    *out = d8_xstrdup(v->valuestring);
    return 0;
}

/* Index of s in list[0..n), or -1. */
static int find_in(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && strcmp(list[i], s) == 0)
            return (int)i;
    return -1;
}

/* Appends "a, b, c" of list to buf (size bufsz), cutting with "..." when full. */
static void join_list(const char *const *list, size_t n, char *buf, size_t bufsz)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *item = list[i] ? list[i] : "";
        size_t need = strlen(item) + (i ? 2 : 0);
        if (o + need + 4 > bufsz) {
            snprintf(buf + o, bufsz - o, "%s...", i ? ", " : "");
            return;
        }
        o += (size_t)snprintf(buf + o, bufsz - o, "%s%s", i ? ", " : "", item);
    }
    if (n == 0)
        snprintf(buf, bufsz, "(none configured)");
}

/* A string that must be one of the configured names in list. */
static int decode_choice(decoder_t *d, const cJSON *v, const char *field, const char *dflt,
                         const char *const *list, size_t n, const char *what, char **out)
{
    const char *s;
    char allowed[128];
    char shown_val[SHOWN_NAME_MAX + 4];

    if (!present(v)) {
        if (!dflt)
            return fail(d, "InvalidSpec", field, "%s is required", field);
        s = dflt;
    } else if (!cJSON_IsString(v) || !v->valuestring) {
        return fail(d, "InvalidSpec", field, "%s must be a string", field);
    } else {
        s = v->valuestring;
    }
    if (find_in(list, n, s) < 0) {
        join_list(list, n, allowed, sizeof(allowed));
        shown(s, shown_val, sizeof(shown_val));
        if (!present(v))
            return fail(d, "InvalidSpec", field,
                        "%s defaults to \"%s\", which is not one of the configured %s (%s)", field,
                        s, what, allowed);
        return fail(d, "InvalidSpec", field, "%s \"%s\" is not one of the configured %s (%s)",
                    field, shown_val, what, allowed);
    }
    *out = d8_xstrdup(s);
    return 0;
}

/*
 * A number lo..hi (in halves) that is a multiple of 0.5; *halves gets
 * value * 2 or dflt when absent.
 */
static int decode_halves(decoder_t *d, const cJSON *v, const char *field, int lo, int hi, int dflt,
                         int *halves)
{
    double x, h;

    if (!present(v)) {
        *halves = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v))
        return fail(d, "InvalidSpec", field, "%s must be a number", field);
    x = v->valuedouble;
    if (!isfinite(x))
        return fail(d, "InvalidSpec", field, "%s must be a finite number", field);
    h = x * 2.0;
    if (h < lo || h > hi || h != floor(h))
        return fail(d, "InvalidSpec", field, "%s must be a multiple of 0.5 from %g to %g (got %g)",
                    field, lo / 2.0, hi / 2.0, x);
    *halves = (int)h;
    return 0;
}

/* A JSON number that is an integer; *out is unchanged when absent. */
static int decode_int(decoder_t *d, const cJSON *v, const char *field, double lo, double hi,
                      int *out, int *is_present)
{
    double x;

    *is_present = present(v) != NULL;
    if (!*is_present)
        return 0;
    if (!cJSON_IsNumber(v))
        return fail(d, "InvalidSpec", field, "%s must be an integer", field);
    x = v->valuedouble;
    if (!isfinite(x) || x != floor(x))
        return fail(d, "InvalidSpec", field, "%s must be an integer (got %g)", field, x);
    if (x < lo || x > hi)
        return fail(d, "InvalidSpec", field, "%s must be from %g to %g (got %g)", field, lo, hi, x);
    *out = (int)x;
    return 0;
}

/* One of two fixed strings; *out gets 0 for a (the default) or 1 for b. */
static int decode_enum2(decoder_t *d, const cJSON *v, const char *field, const char *a,
                        const char *b, int *out)
{
    char shown_val[SHOWN_NAME_MAX + 4];

    if (!present(v)) {
        *out = 0;
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(d, "InvalidSpec", field, "%s must be a string", field);
    if (strcmp(v->valuestring, a) == 0) {
        *out = 0;
        return 0;
    }
    if (strcmp(v->valuestring, b) == 0) {
        *out = 1;
        return 0;
    }
    shown(v->valuestring, shown_val, sizeof(shown_val));
    return fail(d, "InvalidSpec", field, "%s must be \"%s\" or \"%s\" (got \"%s\")", field, a, b,
                shown_val);
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const spec_kv_t *)a)->name, ((const spec_kv_t *)b)->name);
}

/* Frees n entries of kv (secret values are wiped first) and the array. */
static void kv_free(spec_kv_t *kv, size_t n, int secret)
{
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].name);
        if (kv[i].value) {
            if (secret)
                OPENSSL_cleanse(kv[i].value, strlen(kv[i].value));
            free(kv[i].value);
        }
    }
    free(kv);
}

/*
 * env or secretEnv: an object of name -> string, at most ENV_MAX_ENTRIES,
 * returned sorted by name in *out (owned by the caller) with *nout
 * entries. Errors never echo a value: only names, which are not secret.
 */
static int decode_env(decoder_t *d, const cJSON *v, const char *field, int secret, spec_kv_t **out,
                      size_t *nout)
{
    spec_kv_t *kv = NULL;
    size_t n = 0, i = 0;
    char path[SHOWN_NAME_MAX + 32];
    char shown_name[SHOWN_NAME_MAX + 4];
    int rc = 0;

    *out = NULL;
    *nout = 0;
    if (!present(v))
        return 0;
    if (!cJSON_IsObject(v))
        return fail(d, "InvalidSpec", field, "%s must be an object of name to string", field);
    for (const cJSON *c = v->child; c; c = c->next)
        n++;
    if (n > ENV_MAX_ENTRIES)
        return fail(d, "InvalidSpec", field, "%s has %zu entries; at most %d are allowed", field, n,
                    ENV_MAX_ENTRIES);
    if (n == 0)
        return 0;

    kv = d8_xcalloc(n, sizeof(*kv));
    for (const cJSON *c = v->child; c; c = c->next) {
        const char *val;
        size_t len;

        shown(c->string, shown_name, sizeof(shown_name));
        snprintf(path, sizeof(path), "%s.%s", field, shown_name);
        if (!env_name_valid(c->string)) {
            rc = fail(d, "InvalidSpec", path,
                      "%s name \"%s\" is not valid: it must match ^[A-Za-z_][A-Za-z0-9_]*$ "
                      "and be at most %d characters",
                      field, shown_name, ENV_NAME_MAX);
            goto cleanup;
        }
        if (!cJSON_IsString(c) || !c->valuestring) {
            rc = fail(d, "InvalidSpec", path, "%s must be a string", path);
            goto cleanup;
        }
        val = c->valuestring;
        len = strlen(val);
        if (len > ENV_VALUE_MAX) {
            rc = fail(d, "InvalidSpec", path, "%s is longer than %d bytes", path, ENV_VALUE_MAX);
            goto cleanup;
        }
        if (utf8_check(val, len, 0, NULL) != 0) {
            rc = fail(d, "InvalidSpec", path, "%s is not valid UTF-8", path);
            goto cleanup;
        }
        kv[i].name = d8_xstrdup(c->string);
        kv[i].value = d8_xstrndup(val, len);
        i++;
    }

    qsort(kv, n, sizeof(*kv), kv_cmp);
    for (i = 1; i < n; i++) {
        if (strcmp(kv[i - 1].name, kv[i].name) == 0) {
            shown(kv[i].name, shown_name, sizeof(shown_name));
            snprintf(path, sizeof(path), "%s.%s", field, shown_name);
            rc = fail(d, "InvalidSpec", path, "%s appears more than once in %s", shown_name, field);
            goto cleanup;
        }
    }
    *out = kv;
    *nout = n;
    kv = NULL;

cleanup:
    /* Entries not filled yet are zeroed, which kv_free skips. */
    kv_free(kv, n, secret);
    return rc;
}

/* The body's id: checked against the path id, or required when there is none. */
static int decode_id(decoder_t *d, const cJSON *v, const char *path_id, const char **id)
{
    char shown_val[SHOWN_NAME_MAX + 4];

    if (path_id) {
        if (!spec_id_valid(path_id)) {
            shown(path_id, shown_val, sizeof(shown_val));
            return fail(d, "InvalidId", NULL,
                        "the id \"%s\" is not valid: it must match "
                        "^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$ without \"--\"",
                        shown_val);
        }
        *id = path_id;
        if (!present(v))
            return 0;
        if (!cJSON_IsString(v) || !v->valuestring)
            return fail(d, "InvalidId", "id", "id must be a string");
        if (strcmp(v->valuestring, path_id) != 0) {
            shown(v->valuestring, shown_val, sizeof(shown_val));
            return fail(d, "InvalidId", "id",
                        "id \"%s\" in the body does not match the id \"%s\" in the path", shown_val,
                        path_id);
        }
        return 0;
    }
    if (!present(v))
        return fail(d, "InvalidId", "id", "id is required");
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(d, "InvalidId", "id", "id must be a string");
    if (!spec_id_valid(v->valuestring)) {
        shown(v->valuestring, shown_val, sizeof(shown_val));
        return fail(d, "InvalidId", "id",
                    "id \"%s\" is not valid: it must match "
                    "^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$ without \"--\"",
                    shown_val);
    }
    *id = v->valuestring;
    return 0;
}

/* First pass: every key known and seen once; fields[] gets each value. */
static int scan_keys(decoder_t *d, const cJSON *obj, const cJSON *fields[F_COUNT])
{
    char shown_name[SHOWN_NAME_MAX + 4];

    for (const cJSON *c = obj->child; c; c = c->next) {
        int f = -1;

        for (int k = 0; k < F_COUNT; k++) {
            if (c->string && strcmp(c->string, field_names[k]) == 0) {
                f = k;
                break;
            }
        }
        if (f < 0) {
            shown(c->string, shown_name, sizeof(shown_name));
            return fail(d, "InvalidSpec", shown_name, "unknown field \"%s\"", shown_name);
        }
        if (fields[f])
            return fail(d, "InvalidSpec", field_names[f], "field \"%s\" appears more than once",
                        field_names[f]);
        fields[f] = c;
    }
    return 0;
}

/* cloudProvider, when given, must be "AZURE": the only provider there is. */
static int check_provider(decoder_t *d, const cJSON *v)
{
    if (present(v) &&
        (!cJSON_IsString(v) || !v->valuestring || strcmp(v->valuestring, "AZURE") != 0))
        return fail(d, "InvalidSpec", "cloudProvider",
                    "cloudProvider must be \"AZURE\", the only provider supported");
    return 0;
}

/*
 * storageGB: 1 to limits.maxStorageGB, DEFAULT_STORAGE_GB when absent
 * (refused when that default is itself above the limit).
 */
static int decode_storage(decoder_t *d, const cJSON *v, int *out)
{
    int max_storage, present_flag, rc;

    /* A non-positive limit means the config left it unset: use the design's default. */
    max_storage = d->rules->max_storage_gb > 0 ? d->rules->max_storage_gb : DEFAULT_MAX_STORAGE_GB;
    *out = DEFAULT_STORAGE_GB;
    if ((rc = decode_int(d, v, "storageGB", 1, max_storage, out, &present_flag)) != 0)
        return rc;
    if (!present_flag && *out > max_storage)
        return fail(d, "InvalidSpec", "storageGB",
                    "storageGB defaults to %d, above limits.maxStorageGB (%d); give it explicitly",
                    DEFAULT_STORAGE_GB, max_storage);
    return 0;
}

/* No name may be set in both env and secretEnv. */
static int check_env_disjoint(decoder_t *d, const env_spec_t *s)
{
    /* Both lists are sorted: one merge walk finds a name in both. */
    for (size_t i = 0, j = 0; i < s->nenv && j < s->nsecret;) {
        int c = strcmp(s->env[i].name, s->secret_env[j].name);
        if (c == 0) {
            char path[ENV_NAME_MAX + 16];
            snprintf(path, sizeof(path), "secretEnv.%s", s->secret_env[j].name);
            return fail(d, "InvalidSpec", path, "%s is set in both env and secretEnv",
                        s->secret_env[j].name);
        }
        if (c < 0)
            i++;
        else
            j++;
    }
    return 0;
}

/* autoStopMinutes: 0 (off, also when absent) or AUTO_STOP_MIN..AUTO_STOP_MAX. */
static int decode_auto_stop(decoder_t *d, const cJSON *v, int *out)
{
    int present_flag, rc;

    *out = 0;
    if ((rc = decode_int(d, v, "autoStopMinutes", 0, AUTO_STOP_MAX, out, &present_flag)) != 0)
        return rc;
    if (*out != 0 && *out < AUTO_STOP_MIN)
        return fail(d, "InvalidSpec", "autoStopMinutes",
                    "autoStopMinutes must be 0 (off) or from %d to %d (got %d)", AUTO_STOP_MIN,
                    AUTO_STOP_MAX, *out);
    return 0;
}

/*
 * Second pass: validates the fields found by scan_keys in the order of the
 * design's table into *s (owned by the caller, also on error); *the_id
 * gets the id, borrowed from path_id or the body.
 */
static int decode_fields(decoder_t *d, const cJSON *const fields[F_COUNT], const char *path_id,
                         env_spec_t *s, const char **the_id)
{
    int tmp, rc;

    if ((rc = decode_id(d, fields[F_ID], path_id, the_id)) != 0 ||
        (rc = check_provider(d, fields[F_CLOUD_PROVIDER])) != 0)
        return rc;
    if ((rc = decode_label(d, fields[F_USER_ID], "userId", &s->user_id)) != 0 ||
        (rc = decode_label(d, fields[F_NAME], "name", &s->name)) != 0)
        return rc;
    if ((rc = decode_choice(d, fields[F_CLOUD_REGION], "cloudRegion", NULL, d->rules->regions,
                            d->rules->nregions, "regions", &s->cloud_region)) != 0 ||
        (rc = decode_choice(d, fields[F_BASE_IMAGE], "baseImage", DEFAULT_IMAGE, d->rules->images,
                            d->rules->nimages, "images", &s->base_image)) != 0)
        return rc;
    if ((rc = decode_halves(d, fields[F_CPU_CORES], "cpuCores", 1, 8, DEFAULT_CPU_HALVES,
                            &s->cpu_halves)) != 0 ||
        (rc = decode_halves(d, fields[F_MEMORY_GB], "memoryGB", 1, 32, DEFAULT_MEMORY_HALVES,
                            &s->memory_halves)) != 0)
        return rc;
    if ((rc = decode_storage(d, fields[F_STORAGE_GB], &s->storage_gb)) != 0)
        return rc;

    if ((rc = decode_enum2(d, fields[F_POWER_STATE], "powerState", "Running", "Stopped", &tmp)) !=
        0)
        return rc;
    s->power = tmp ? SPEC_POWER_STOPPED : SPEC_POWER_RUNNING;
    /* null is "not given", as an omitted field: both stay sticky. */
    s->power_set = fields[F_POWER_STATE] && !cJSON_IsNull(fields[F_POWER_STATE]);
    s->secret_env_set = fields[F_SECRET_ENV] && !cJSON_IsNull(fields[F_SECRET_ENV]);

    if ((rc = decode_env(d, fields[F_ENV], "env", 0, &s->env, &s->nenv)) != 0 ||
        (rc = decode_env(d, fields[F_SECRET_ENV], "secretEnv", 1, &s->secret_env, &s->nsecret)) !=
            0 ||
        (rc = check_env_disjoint(d, s)) != 0)
        return rc;
    if ((rc = decode_auto_stop(d, fields[F_AUTO_STOP_MINUTES], &s->auto_stop_minutes)) != 0)
        return rc;

    if ((rc = decode_enum2(d, fields[F_STORAGE_POLICY], "storagePolicy", "Delete", "Retain",
                           &tmp)) != 0)
        return rc;
    s->storage_policy = tmp ? SPEC_STORAGE_RETAIN : SPEC_STORAGE_DELETE;
    if ((rc = decode_enum2(d, fields[F_UPDATE_POLICY], "updatePolicy", "Immediate", "OnNextStart",
                           &tmp)) != 0)
        return rc;
    s->update_policy = tmp ? SPEC_UPDATE_ON_NEXT_START : SPEC_UPDATE_IMMEDIATE;
    return 0;
}

int spec_decode(const cJSON *obj, const char *id, const spec_rules_t *rules,
                const char *field_prefix, env_spec_t *out, char id_out[SPEC_ID_MAX + 1],
                spec_error_t *err)
{
    static const spec_rules_t no_rules;
    const cJSON *fields[F_COUNT] = {0};
    decoder_t d;
    env_spec_t s = {0};
    const char *the_id = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (id_out)
        id_out[0] = '\0';
    if (err)
        memset(err, 0, sizeof(*err));
    d.rules = rules ? rules : &no_rules;
    d.prefix = field_prefix ? field_prefix : "";
    d.err = err;

    if (!cJSON_IsObject(obj)) {
        rc = fail(&d, "InvalidSpec", NULL, "the environment spec must be a JSON object");
        goto cleanup;
    }
    if ((rc = scan_keys(&d, obj, fields)) != 0 ||
        (rc = decode_fields(&d, fields, id, &s, &the_id)) != 0)
        goto cleanup;

    if (id_out)
        snprintf(id_out, SPEC_ID_MAX + 1, "%s", the_id);
    *out = s;
    memset(&s, 0, sizeof(s));
    rc = 0;

cleanup:
    spec_release(&s);
    return rc;
}

void spec_release(env_spec_t *s)
{
    if (!s)
        return;
    free(s->user_id);
    free(s->name);
    free(s->cloud_region);
    free(s->base_image);
    kv_free(s->env, s->nenv, 0);
    kv_free(s->secret_env, s->nsecret, 1);
    memset(s, 0, sizeof(*s));
}

static char *dup_or_null(const char *s)
{
    return s ? d8_xstrdup(s) : NULL;
}

static spec_kv_t *kv_copy(const spec_kv_t *src, size_t n)
{
    spec_kv_t *kv;

    if (n == 0)
        return NULL;
    kv = d8_xcalloc(n, sizeof(*kv));
    for (size_t i = 0; i < n; i++) {
        kv[i].name = dup_or_null(src[i].name);
        kv[i].value = dup_or_null(src[i].value);
    }
    return kv;
}

void spec_copy(env_spec_t *dst, const env_spec_t *src)
{
    *dst = *src;
    dst->user_id = dup_or_null(src->user_id);
    dst->name = dup_or_null(src->name);
    dst->cloud_region = dup_or_null(src->cloud_region);
    dst->base_image = dup_or_null(src->base_image);
    dst->env = kv_copy(src->env, src->nenv);
    dst->secret_env = kv_copy(src->secret_env, src->nsecret);
}

static int str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static int kv_equal(const spec_kv_t *a, size_t na, const spec_kv_t *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value))
            return 0;
    return 1;
}

int spec_equal(const env_spec_t *a, const env_spec_t *b)
{
    return str_eq(a->user_id, b->user_id) && str_eq(a->name, b->name) &&
           str_eq(a->cloud_region, b->cloud_region) && str_eq(a->base_image, b->base_image) &&
           a->cpu_halves == b->cpu_halves && a->memory_halves == b->memory_halves &&
           a->storage_gb == b->storage_gb && a->power == b->power &&
           a->auto_stop_minutes == b->auto_stop_minutes && a->storage_policy == b->storage_policy &&
           a->update_policy == b->update_policy && kv_equal(a->env, a->nenv, b->env, b->nenv) &&
           kv_equal(a->secret_env, a->nsecret, b->secret_env, b->nsecret);
}

/* Adds name: string to obj; returns 0 or -1 when cJSON could not allocate. */
static int add_str(cJSON *obj, const char *name, const char *value)
{
    return cJSON_AddStringToObject(obj, name, value ? value : "") ? 0 : -1;
}

static int add_num(cJSON *obj, const char *name, double value)
{
    return cJSON_AddNumberToObject(obj, name, value) ? 0 : -1;
}

/* name -> value (or SPEC_REDACTED for every value when redact is set). */
static int add_env(cJSON *obj, const char *name, const spec_kv_t *kv, size_t n, int redact)
{
    cJSON *e = cJSON_AddObjectToObject(obj, name);

    if (!e)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (add_str(e, kv[i].name, redact ? SPEC_REDACTED : kv[i].value) != 0)
            return -1;
    return 0;
}

cJSON *spec_to_json(const env_spec_t *s)
{
    cJSON *o = cJSON_CreateObject();

    if (!o)
        return NULL;
    if (add_str(o, "userId", s->user_id) || add_str(o, "name", s->name) ||
        add_str(o, "cloudRegion", s->cloud_region) || add_str(o, "baseImage", s->base_image) ||
        add_num(o, "cpuCores", s->cpu_halves / 2.0) ||
        add_num(o, "memoryGB", s->memory_halves / 2.0) || add_num(o, "storageGB", s->storage_gb) ||
        add_str(o, "powerState", s->power == SPEC_POWER_STOPPED ? "Stopped" : "Running") ||
        add_env(o, "env", s->env, s->nenv, 0) ||
        add_env(o, "secretEnv", s->secret_env, s->nsecret, 1) ||
        add_num(o, "autoStopMinutes", s->auto_stop_minutes) ||
        add_str(o, "storagePolicy",
                s->storage_policy == SPEC_STORAGE_RETAIN ? "Retain" : "Delete") ||
        add_str(o, "updatePolicy",
                s->update_policy == SPEC_UPDATE_ON_NEXT_START ? "OnNextStart" : "Immediate")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int spec_json_has_nul(const char *json, size_t len)
{
    int in_str = 0;

    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (c == '\0')
            return 1;
        if (!in_str) {
            if (c == '"')
                in_str = 1;
            continue;
        }
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\' && i + 1 < len) {
            i++;
            if (json[i] == 'u' && i + 4 < len && memcmp(json + i + 1, "0000", 4) == 0)
                return 1;
        }
    }
    return 0;
}
