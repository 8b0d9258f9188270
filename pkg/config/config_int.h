/*
 * pkg/config internals shared between config.c (defaults, environment,
 * public API) and config_schema.c (the YAML schema and its walker).
 */
#ifndef D8_CONFIG_INT_H
#define D8_CONFIG_INT_H

#include "config.h"

#include <stddef.h>

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

#endif
