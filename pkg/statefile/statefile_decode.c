/*
 * pkg/statefile: decoding the saved JSON (the format is in statefile.h).
 * Everything is validated before anything is restored, so a damaged or
 * hand-edited file is refused with a sentence naming the file, the item
 * and the field, never half-read.
 */
#include "statefile_int.h"

#include "base/base.h"
#include "base/map.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integers beyond 2^53 do not survive a JSON number. */
#define MAX_EXACT 9007199254740992.0

static const char *const top_keys[] = {"version", "resourceVersion", "synced",  "keyCheck",
                                       "items",   "usage",           "checksum"};
static const char *const item_keys[] = {
    "id", "generation", "deleting", "spec", "secretDigests", "createdAtMs", "updatedAtMs"};

/* Rejects keys outside `allowed` and any key given twice. */
static int check_keys(const char *path, const cJSON *obj, const char *const *allowed, size_t n,
                      const char *where, char *err, size_t errlen)
{
    unsigned seen = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        size_t i = 0;
        while (i < n && strcmp(c->string, allowed[i]) != 0)
            i++;
        if (i == n)
            return statefile__failf(err, errlen, D8_EINVAL, "%s: %s%s: unknown field", path, where,
                                    c->string);
        if (seen & (1u << i))
            return statefile__failf(err, errlen, D8_EINVAL, "%s: %s%s: given twice", path, where,
                                    c->string);
        seen |= 1u << i;
    }
    return 0;
}

/* An integer from lo to 2^53 held exactly by the number v, into *out; -1 when v is not one. */
static int get_int(const cJSON *v, int64_t lo, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= MAX_EXACT) || (double)(int64_t)d != d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

/* 1 when s is exactly len lower-case hex digits. */
static int is_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

void statefile__doc_release(statefile__doc_t *doc)
{
    cJSON_Delete(doc->usage);
    doc->usage = NULL;
    for (size_t i = 0; doc->items && i < doc->n; i++) {
        spec_release(&doc->items[i].spec);
        free(doc->items[i].secret_digests);
    }
    free(doc->items);
    memset(doc, 0, sizeof(*doc));
}

/* ---- one item ----------------------------------------------------------------- */

/*
 * The scalar fields of item j (where: "items[i]."): the id, unique among
 * the items seen so far (seen maps each id to its item), the generation,
 * the deleting flag and the two timestamps.
 */
static int decode_item_head(const char *path, const cJSON *j, const char *where, d8_map_t *seen,
                            store_restore_item_t *it, char *err, size_t errlen)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *gen = cJSON_GetObjectItemCaseSensitive(j, "generation");
    const cJSON *del = cJSON_GetObjectItemCaseSensitive(j, "deleting");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(j, "createdAtMs");
    const cJSON *up = cJSON_GetObjectItemCaseSensitive(j, "updatedAtMs");

    if (!cJSON_IsString(id) || !id->valuestring || !spec_id_valid(id->valuestring))
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: %sid: missing or not a valid environment id", path, where);
    snprintf(it->id, sizeof(it->id), "%s", id->valuestring);
    if (d8_map_get(seen, it->id))
        return statefile__failf(err, errlen, D8_EINVAL, "%s: %sid: \"%s\" appears more than once",
                                path, where, it->id);
    d8_map_put(seen, it->id, it);
    if (get_int(gen, 0, &it->generation) != 0)
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: %sgeneration: missing or not an integer from 0 to 2^53", path,
                                where);
    if (!cJSON_IsBool(del))
        return statefile__failf(err, errlen, D8_EINVAL, "%s: %sdeleting: missing or not a boolean",
                                path, where);
    it->deleting = cJSON_IsTrue(del);
    if (cr && get_int(cr, 0, &it->created_ms) != 0)
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: %screatedAtMs: not an integer of milliseconds", path, where);
    if (up && get_int(up, 0, &it->updated_ms) != 0)
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: %supdatedAtMs: not an integer of milliseconds", path, where);
    return 0;
}

/*
 * The item's spec: null only for a tombstone (a deletion of an unknown
 * id), otherwise a spec the current rules accept, of generation 1 or more.
 */
static int decode_item_spec(const char *path, const cJSON *spec, const char *where,
                            const spec_rules_t *rules, store_restore_item_t *it, char *err,
                            size_t errlen)
{
    if (!spec)
        return statefile__failf(err, errlen, D8_EINVAL, "%s: %sspec: missing", path, where);
    if (cJSON_IsNull(spec)) {
        if (!it->deleting || it->generation != 0)
            return statefile__failf(
                err, errlen, D8_EINVAL,
                "%s: %sspec: null is only valid for a deletion of an unknown id "
                "(deleting true, generation 0)",
                path, where);
        return 0;
    }
    char prefix[80];
    spec_error_t se;
    snprintf(prefix, sizeof(prefix), "%sspec.", where);
    if (it->generation < 1)
        return statefile__failf(err, errlen, D8_EINVAL, "%s: %sgeneration: must be at least 1",
                                path, where);
    if (spec_decode(spec, it->id, rules, prefix, &it->spec, NULL, &se) != 0)
        return statefile__failf(err, errlen, D8_EINVAL, "%s: %s: %s", path,
                                se.field[0] ? se.field : "spec", se.message);
    it->has_spec = 1;
    return 0;
}

/* secretDigests: one 64-hex-digit digest for each secretEnv name of the spec, no more. */
static int decode_item_digests(const char *path, const cJSON *dig, const char *where,
                               store_restore_item_t *it, char *err, size_t errlen)
{
    if (!cJSON_IsObject(dig))
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: %ssecretDigests: missing or not an object", path, where);
    size_t ndig = (size_t)cJSON_GetArraySize(dig);
    if (ndig != it->spec.nsecret)
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: %ssecretDigests: %zu digests for %zu secretEnv entries", path,
                                where, ndig, it->spec.nsecret);
    if (ndig == 0)
        return 0;
    it->secret_digests = d8_xcalloc(ndig, sizeof(*it->secret_digests));
    for (size_t k = 0; k < ndig; k++) {
        const char *name = it->spec.secret_env[k].name;
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(dig, name);
        if (!cJSON_IsString(d) || !d->valuestring || !is_hex(d->valuestring, 64))
            return statefile__failf(
                err, errlen, D8_EINVAL,
                "%s: %ssecretDigests.%s: missing or not 64 lower-case hex digits", path, where,
                name);
        memcpy(it->secret_digests[k], d->valuestring, 65);
    }
    return 0;
}

/* Validates item i of the file into *it (owned by the caller, even on error). */
static int decode_item(const char *path, const cJSON *j, size_t i, const spec_rules_t *rules,
                       d8_map_t *seen, store_restore_item_t *it, char *err, size_t errlen)
{
    char where[64];
    int rc;

    snprintf(where, sizeof(where), "items[%zu].", i);
    if (!cJSON_IsObject(j))
        return statefile__failf(err, errlen, D8_EINVAL, "%s: items[%zu]: must be an object", path,
                                i);
    if ((rc = check_keys(path, j, item_keys, sizeof(item_keys) / sizeof(item_keys[0]), where, err,
                         errlen)) != 0 ||
        (rc = decode_item_head(path, j, where, seen, it, err, errlen)) != 0 ||
        (rc = decode_item_spec(path, cJSON_GetObjectItemCaseSensitive(j, "spec"), where, rules, it,
                               err, errlen)) != 0)
        return rc;
    return decode_item_digests(path, cJSON_GetObjectItemCaseSensitive(j, "secretDigests"), where,
                               it, err, errlen);
}

/* Every item of the array arr into doc->items (ids unique). */
static int decode_items(const char *path, const cJSON *arr, const spec_rules_t *rules,
                        statefile__doc_t *doc, char *err, size_t errlen)
{
    d8_map_t seen;
    size_t i = 0;
    int rc = 0;

    d8_map_init(&seen);
    doc->n = (size_t)cJSON_GetArraySize(arr);
    doc->items = d8_xcalloc(doc->n ? doc->n : 1, sizeof(*doc->items));
    for (const cJSON *j = arr->child; j; j = j->next, i++)
        if ((rc = decode_item(path, j, i, rules, &seen, &doc->items[i], err, errlen)) != 0)
            break;
    d8_map_release(&seen);
    return rc;
}

/* ---- the whole file -------------------------------------------------------------- */

/*
 * Parses buf[0..len) into *root (owned by the caller): one JSON object,
 * with nothing but white space after it and no NUL that cJSON would
 * silently cut a string at.
 */
static int parse_json(const char *path, const char *buf, size_t len, cJSON **root, char *err,
                      size_t errlen)
{
    if (len == 0)
        return statefile__failf(err, errlen, D8_EPARSE, "%s: the state file is empty", path);
    if (spec_json_has_nul(buf, len))
        return statefile__failf(err, errlen, D8_EPARSE,
                                "%s: the state file holds a NUL byte: it is corrupt", path);
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!*root) {
        size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        return statefile__failf(err, errlen, D8_EPARSE,
                                "%s: not valid JSON (byte %zu of %zu): the file is torn or corrupt",
                                path, at, len);
    }
    for (const char *p = end; p < buf + len; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
            return statefile__failf(err, errlen, D8_EPARSE,
                                    "%s: unexpected data after the JSON (byte %zu)", path,
                                    (size_t)(p - buf));
    if (!cJSON_IsObject(*root))
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: the state file must hold a JSON object", path);
    return 0;
}

/*
 * JSON that parses can still be damaged (a flipped byte inside a string):
 * the "checksum" field must be the checksum of every byte before the last
 * ,"checksum":" of the text.
 */
static int check_checksum(const char *path, const cJSON *root, const char *buf, size_t len,
                          char *err, size_t errlen)
{
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "checksum");
    const char *mark = NULL;
    for (const char *p = buf; (p = memmem(p, len - (size_t)(p - buf), ATOMICFILE_CHECKSUM_MARK,
                                          sizeof(ATOMICFILE_CHECKSUM_MARK) - 1)) != NULL;
         p++)
        mark = p;
    char sum[ATOMICFILE_CHECKSUM_SIZE];
    if (mark)
        atomicfile_checksum(buf, (size_t)(mark - buf), sum);
    if (!cJSON_IsString(cs) || !cs->valuestring || !mark || strcmp(cs->valuestring, sum) != 0)
        return statefile__failf(
            err, errlen, D8_EPARSE,
            "%s: checksum: missing or wrong: the file was damaged or edited by hand", path);
    return 0;
}

/* The fields of the top object besides the items: version, resourceVersion, synced, keyCheck. */
static int decode_header(const char *path, const cJSON *root, statefile__doc_t *doc, char *err,
                         size_t errlen)
{
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *rvj = cJSON_GetObjectItemCaseSensitive(root, "resourceVersion");
    const cJSON *syn = cJSON_GetObjectItemCaseSensitive(root, "synced");
    const cJSON *kc = cJSON_GetObjectItemCaseSensitive(root, "keyCheck");
    int64_t version;

    if (get_int(ver, 0, &version) != 0 || version != STATEFILE__FORMAT_VERSION)
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: version: missing or not %d (the only format this agent reads)",
                                path, STATEFILE__FORMAT_VERSION);
    if (get_int(rvj, 0, &doc->rv) != 0)
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: resourceVersion: missing or not an integer", path);
    if (!cJSON_IsBool(syn))
        return statefile__failf(err, errlen, D8_EINVAL, "%s: synced: missing or not a boolean",
                                path);
    doc->synced = cJSON_IsTrue(syn);
    if (!cJSON_IsString(kc) || !kc->valuestring ||
        !is_hex(kc->valuestring, STATEFILE__KEY_CHECK_LEN))
        return statefile__failf(err, errlen, D8_EINVAL,
                                "%s: keyCheck: missing or not %d hex digits", path,
                                STATEFILE__KEY_CHECK_LEN);
    memcpy(doc->key_check, kc->valuestring, STATEFILE__KEY_CHECK_LEN + 1);
    return 0;
}

int statefile__decode(const char *path, const char *buf, size_t len, const spec_rules_t *rules,
                      statefile__doc_t *doc, char *err, size_t errlen)
{
    cJSON *root = NULL;
    const cJSON *arr;
    int rc;

    memset(doc, 0, sizeof(*doc));
    if ((rc = parse_json(path, buf, len, &root, err, errlen)) != 0 ||
        (rc = check_keys(path, root, top_keys, sizeof(top_keys) / sizeof(top_keys[0]), "", err,
                         errlen)) != 0 ||
        (rc = check_checksum(path, root, buf, len, err, errlen)) != 0 ||
        (rc = decode_header(path, root, doc, err, errlen)) != 0)
        goto cleanup;
    arr = cJSON_GetObjectItemCaseSensitive(root, "items");
    if (!cJSON_IsArray(arr)) {
        rc = statefile__failf(err, errlen, D8_EINVAL, "%s: items: missing or not an array", path);
        goto cleanup;
    }
    rc = decode_items(path, arr, rules, doc, err, errlen);
    if (rc == 0)
        doc->usage = cJSON_DetachItemFromObjectCaseSensitive(root, "usage");

cleanup:
    if (rc)
        statefile__doc_release(doc);
    cJSON_Delete(root);
    return rc;
}
