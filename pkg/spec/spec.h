/*
 * pkg/spec: the Environment spec of DESIGN.md section 3 — decoding from
 * JSON with every validation rule, defaults, normalisation, encoding
 * (with secret values redacted), comparison and the spec hash of
 * section 4.
 */
#ifndef D8_SPEC_H
#define D8_SPEC_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define SPEC_ID_MAX 48
#define SPEC_REDACTED "<redacted>"

typedef enum spec_power { SPEC_POWER_RUNNING = 0, SPEC_POWER_STOPPED = 1 } spec_power_t;
typedef enum spec_storage_policy {
    SPEC_STORAGE_DELETE = 0,
    SPEC_STORAGE_RETAIN = 1
} spec_storage_policy_t;
/* When a change that recreates the group applies: at once, or at the next
 * stop/start (never killing a live session), or on POST .../restart. */
typedef enum spec_update_policy {
    SPEC_UPDATE_IMMEDIATE = 0,
    SPEC_UPDATE_ON_NEXT_START = 1
} spec_update_policy_t;

/* One env var; both strings owned by the spec. */
typedef struct spec_kv {
    char *name;
    char *value;
} spec_kv_t;

/*
 * A decoded, validated, normalised spec. Callers read the fields; all
 * strings and arrays are owned by the struct (spec_release frees them).
 * env and secret_env are sorted by name, names unique.
 */
typedef struct env_spec {
    char *user_id;
    char *name;
    char *cloud_region;
    char *base_image;  /* a key of config `images` */
    int cpu_halves;    /* cpuCores * 2: 1..8 */
    int memory_halves; /* memoryGB * 2: 1..32 */
    int storage_gb;
    spec_power_t power;
    spec_kv_t *env;
    size_t nenv;
    spec_kv_t *secret_env;
    size_t nsecret;
    int auto_stop_minutes;
    spec_storage_policy_t storage_policy;
    spec_update_policy_t update_policy; /* not part of the spec hash */
    /* Whether the decoded body named powerState / secretEnv. Both are
     * sticky: on an existing environment an omitted one keeps its stored
     * value (store_put); spec_equal ignores these flags. */
    int power_set;
    int secret_env_set;
} env_spec_t;

/* What a spec is validated against (from config; all borrowed). */
typedef struct spec_rules {
    const char *const *regions;
    size_t nregions;
    const char *const *images; /* keys of config `images` */
    size_t nimages;
    int max_storage_gb; /* limits.maxStorageGB */
} spec_rules_t;

/* A validation failure, ready for {"error":{"code","message","field"}}. */
typedef struct spec_error {
    char code[32]; /* "InvalidSpec", "InvalidJson", "InvalidId" */
    char message[256];
    char field[160]; /* body path: "cpuCores", "env.FOO", "items[2].id", or "" */
} spec_error_t;

/* 1 when id matches ^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$ without "--". */
int spec_id_valid(const char *id);

/*
 * Decodes and validates one spec object. `id` is the id from the path
 * (NULL when the body supplies it, as in a full sync item, where the
 * body's "id" is then required and checked). field_prefix is prepended
 * to field names in errors ("" or "items[3]."). On success fills *out
 * (caller releases) and, when id_out is non-NULL, copies the id there.
 * On failure returns D8_EINVAL, fills *err (when non-NULL), and *out is
 * left zeroed. All arguments are borrowed; rules must outlive the call
 * only. Errors never quote an env or secretEnv value.
 *
 * cJSON ends a string at an escaped NUL ("\u0000") without telling, so
 * a value holding one cannot be seen here: callers reject such bodies
 * before parsing with spec_json_has_nul().
 */
int spec_decode(const cJSON *obj, const char *id, const spec_rules_t *rules,
                const char *field_prefix, env_spec_t *out, char id_out[SPEC_ID_MAX + 1],
                spec_error_t *err);

/* Frees what the spec owns and zeroes it; safe on a zeroed spec. */
void spec_release(env_spec_t *s);
/* Deep copy into *dst (which the caller later releases). */
void spec_copy(env_spec_t *dst, const env_spec_t *src);
/* 1 when every field, secret values included, is equal. */
int spec_equal(const env_spec_t *a, const env_spec_t *b);

/*
 * Encodes the spec as the JSON object of the API (camelCase fields, all
 * defaults explicit). Secret values are always SPEC_REDACTED. Returns a
 * new cJSON object owned by the caller, or NULL only when cJSON could not
 * allocate.
 */
cJSON *spec_to_json(const env_spec_t *s);

/*
 * 1 when the JSON text json[0..len) holds a NUL byte or a "\u0000" escape
 * inside a string (borrowed; not NUL-terminated necessarily). cJSON would
 * silently cut such a string, so the API answers InvalidJson instead.
 */
int spec_json_has_nul(const char *json, size_t len);

/* What shapes the container group besides the spec (from config). */
typedef struct spec_hash_input {
    const char *image; /* images[baseImage] */
    const int *ports;
    size_t nports;
    const char *mount_path;
    const unsigned char *key; /* DEV8_SPEC_HASH_KEY, NULL when unset */
    size_t keylen;
    /* The image's private registry (NULL server: anonymous pull) and the
     * region's subnets: hashed only when set, so that the hash of a group
     * without them is what it was before they existed. The password
     * enters only as HMAC-SHA256(key, password), and only with a key. */
    const char *registry_server;
    const char *registry_username;
    const char *registry_password; /* secret */
    const char *registry_identity;
    char *const *subnet_ids;
    size_t nsubnet_ids;
} spec_hash_input_t;

/*
 * The dev8-spec-hash tag: the first 16 hex digits of SHA-256 over the
 * normalised fields that shape the container group (image, cpu, memory,
 * ports, mount, env, secretEnv names and HMAC-SHA256(key, value) of each
 * secret value when a key is given — never a clear value; then, when set,
 * the registry's server, username or identity and the HMAC of its
 * password, and the subnet ids). A NULL key or
 * keylen 0 counts as no key: secret values are then left out entirely.
 * Everything is borrowed; out gets 16 hex digits and a NUL.
 */
void spec_hash(const env_spec_t *s, const spec_hash_input_t *in, char out[17]);

/*
 * Keyed digest of one secret value (hex HMAC-SHA256), for places that must
 * remember a secret without holding it (the state file). A NULL key is
 * the empty HMAC key: the digest then still hides nothing from someone
 * who can guess the value, so callers should pass the real key.
 */
void spec_secret_digest(const unsigned char *key, size_t keylen, const char *value, char out[65]);

#endif
