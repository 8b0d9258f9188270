/*
 * pkg/config internals shared between config.c (defaults, environment,
 * public API), config_schema.c (the YAML schema: field tables, string
 * checks, custom keys) and config_walk.c (the walk of a document against
 * the tables): the tables' types, the walk's state and the helpers that
 * custom keys use.
 */
#ifndef D8_CONFIG_INT_H
#define D8_CONFIG_INT_H

#include "config.h"

#include <stddef.h>
#include <yaml.h>

/* A 1-based position in the configuration text. */
typedef struct config__pos {
    size_t line;
    size_t column;
} config__pos_t;

/*
 * Walks the YAML text against the schema and writes every value it finds
 * into cfg, which must hold the defaults. Validates the whole document;
 * nothing outside cfg is touched. On success returns 0 and, in
 * *region_pos, a new array (owned by the caller, free()) with the position
 * of each azure.regions entry, for checks that can only run after the
 * environment was applied. On failure returns D8_EPARSE (YAML syntax),
 * D8_EINVAL (schema) or D8_ETOOBIG, fills err, and cfg may hold partial
 * values: the caller frees it and never returns it.
 * name, yaml: borrowed.
 */
int config__parse_yaml(config_t *cfg, const char *name, const char *yaml, size_t len,
                       config__pos_t **region_pos, char *err, size_t errlen);

/* 1 when s is an Azure subscription id (a GUID, 8-4-4-4-12 hex digits). */
int config__is_guid(const char *s);

/*
 * Writes a printable, quoted and shortened copy of s[0..len) into out
 * (escapes quotes, backslashes and control bytes; long values end in
 * "..."), for error messages that echo what the user wrote.
 */
void config__quote(char *out, size_t outlen, const char *s, size_t len);

/*
 * The largest configuration file accepted. Real ones are a few KiB; the cap
 * also bounds the parts of libyaml 0.2.5 that are quadratic in the input
 * (anchors, %TAG directives, flow nesting) to a fraction of a second.
 */
#define CONFIG__MAX_FILE_BYTES ((size_t)64 << 10)

/* ---- the schema's field tables ----------------------------------------- */

/* config__walk_section tracks duplicate keys in an array of this many entries. */
#define CONFIG__MAX_FIELDS 32

typedef enum config__field_kind {
    CONFIG__F_SECTION,  /* a mapping walked against the nested table `sub` */
    CONFIG__F_INT,      /* a plain integer in [min, max], stored as int */
    CONFIG__F_SIZE,     /* a plain integer in [min, max], stored as size_t */
    CONFIG__F_BOOL,     /* true or false, stored as int 1/0 */
    CONFIG__F_FRACTION, /* a plain number in (0, 1], stored as double */
    CONFIG__F_STR,      /* any scalar, checked by `check`, stored as an owned char * */
    CONFIG__F_CUSTOM,   /* any node, handed to `custom` */
} config__field_kind_t;

struct config__walk;

/*
 * Checks a string value and may normalise it in place (only ever making it
 * shorter). Returns NULL when it is acceptable, else a static sentence that
 * starts with "must".
 */
typedef const char *(*config__str_check_fn)(char *s);

/*
 * Handles the value of a custom key. key and val are the document's nodes
 * (borrowed); base is the struct the field table describes. Also called
 * for null values, so that each handler decides what null means.
 */
typedef int (*config__custom_fn)(struct config__walk *w, yaml_node_t *key, yaml_node_t *val,
                                 void *base);

/* One key of a table; a table ends with a row whose key is NULL. */
typedef struct config__field {
    const char *key;
    config__field_kind_t kind;
    size_t off;                      /* offset of the value in the target struct */
    long long min, max;              /* CONFIG__F_INT, CONFIG__F_SIZE */
    config__str_check_fn check;      /* CONFIG__F_STR; NULL accepts any string */
    const struct config__field *sub; /* CONFIG__F_SECTION */
    config__custom_fn custom;        /* CONFIG__F_CUSTOM */
    int required;                    /* CONFIG__F_STR: must end up set (non-NULL) */
} config__field_t;

/* The pricing and retention sections (config_usage.c). */
extern const config__field_t config__pricing_fields[];
extern const config__field_t config__retention_fields[];
/* Each pricing.regions entry must name a configured region: 0, or
 * D8_EINVAL with "file:line:column: ..." in err. */
int config__check_prices(const config_t *cfg, const char *name, char *err, size_t errlen);

/* The top level of the configuration file, which fills a config_t. */
extern const config__field_t config__root_fields[];

/* ---- config_cloud.c and config_registry.c ------------------------------- */

/* Custom keys azure.cloud, azure.armEndpoint, azure.authorityHost,
 * azure.tokenScope (config_t): each stores its value and position. */
int config__set_cloud(struct config__walk *w, yaml_node_t *k, yaml_node_t *v, void *base);
int config__set_arm_endpoint(struct config__walk *w, yaml_node_t *k, yaml_node_t *v, void *base);
int config__set_authority_host(struct config__walk *w, yaml_node_t *k, yaml_node_t *v, void *base);
int config__set_token_scope(struct config__walk *w, yaml_node_t *k, yaml_node_t *v, void *base);
/*
 * After the walk: fills arm_endpoint, authority_host and token_scope of
 * cfg from its cloud, and refuses what does not fit together (a named
 * cloud with any of the three set, Custom without all three). 0 or
 * D8_EINVAL with a file:line:column error.
 */
int config__resolve_cloud(struct config__walk *w, config_t *cfg);
/* The checks of an endpoint URL of config_schema.c (normalises in place). */
const char *config__check_endpoint(char *s);

/* Custom key `registries` (config_t): the private registries. */
int config__set_registries(struct config__walk *w, yaml_node_t *k, yaml_node_t *v, void *base);
/* Custom key azure.regions[].subnetIds (config_region_t). */
int config__set_subnet_ids(struct config__walk *w, yaml_node_t *k, yaml_node_t *v, void *base);
/* Frees what the two above filled (wiping passwords). */
void config__registries_free(config_t *cfg);
void config__subnet_ids_free(config_region_t *r);

/* ---- the walk ------------------------------------------------------------ */

/* The state of one walk over one document. */
typedef struct config__walk {
    yaml_document_t *doc;      /* borrowed */
    const char *name;          /* borrowed: the file name used in errors */
    unsigned char *seen;       /* owned: one flag per node, to spot aliases */
    config__pos_t *region_pos; /* owned until handed to the caller */
    char path[256];            /* the dotted key path being walked */
    size_t pathlen;
    char *err; /* borrowed: the caller's error buffer */
    size_t errlen;
    /* Where azure.cloud, armEndpoint, authorityHost and tokenScope were
     * set (set[i] 0: not in the file), for config__resolve_cloud. */
    yaml_mark_t cloud_mark[4];
    int cloud_set[4];
} config__walk_t;

/* Indexes of config__walk_t.cloud_mark / cloud_set. */
enum { CONFIG__CLOUD_NAME, CONFIG__CLOUD_ARM, CONFIG__CLOUD_AUTHORITY, CONFIG__CLOUD_SCOPE };

/*
 * Walks mapping `map` against `fields`, writing into `base`. Unknown and
 * duplicate keys are errors; required string fields must end up set.
 * 0, or D8_EINVAL with the walk's error buffer filled.
 */
int config__walk_section(config__walk_t *w, yaml_node_t *map, const config__field_t *fields,
                         void *base);

/*
 * Writes "name:line:column: path: message" into the walk's error buffer and
 * returns D8_EINVAL, so that a handler can `return config__fail(...)`.
 */
int config__fail(config__walk_t *w, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The key path that errors name. config__path_push appends text and
 * config__path_key ".key" (or "key" at the top; odd key text is shown
 * quoted); both return the length that config__path_pop restores.
 */
size_t config__path_push(config__walk_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t config__path_key(config__walk_t *w, const char *key, size_t len);
void config__path_pop(config__walk_t *w, size_t old);

/*
 * Marks n as walked, reporting at `where` when it was walked before (an
 * alias, refused) or when it carries an explicit YAML tag (refused too:
 * the schema decides every type). 0 or D8_EINVAL.
 */
int config__visit(config__walk_t *w, yaml_node_t *n, yaml_mark_t where);

/* ---- nodes and values ---------------------------------------------------- */

/* The document's node at index (borrowed), or NULL. */
yaml_node_t *config__node_at(config__walk_t *w, int index);
/* The text of a scalar node (borrowed, NUL-terminated). */
const char *config__scalar_of(const yaml_node_t *n);
/* The value node (borrowed) of the scalar key `key` in mapping map, or NULL. */
yaml_node_t *config__map_get(config__walk_t *w, yaml_node_t *map, const char *key);
/* 1 when n is a plain empty, "~" or "null" scalar: YAML's null, "not set". */
int config__is_null(const yaml_node_t *n);
/*
 * Describes a node for "got ..." in messages, into buf; returns buf or a
 * static string. `typed`: the field wants a number or boolean, so a quoted
 * scalar gets a hint.
 */
const char *config__describe(const yaml_node_t *n, int typed, char *buf, size_t len);

/* Parses a plain decimal integer ("-12", "+3", "4096"); 1 on success. */
int config__parse_ll(const char *s, long long *out);
/* Reads an integer node in [min, max] into *out, or reports why not. */
int config__int_value(config__walk_t *w, yaml_node_t *n, long long min, long long max,
                      long long *out);
/*
 * Reads a string node, runs `check` on it, and returns it in *out (owned by
 * the caller) or reports why not. Null values are the caller's business.
 */
int config__string_value(config__walk_t *w, yaml_node_t *n, config__str_check_fn check, char **out);

#endif
