/*
 * pkg/log: one JSON object per line on stderr (or a chosen FILE).
 *
 *   LOG(LOG_INFO, "request done", LF_S("request_id", rid), LF_I("status", 200));
 *
 * Field values are copied into the line at once; nothing is retained.
 * Secrets must never be passed here: callers log names, never values.
 */
#ifndef D8_LOG_H
#define D8_LOG_H

#include <stdint.h>
#include <stdio.h>

typedef enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
} log_level_t;

typedef enum log_ftype { LOG_FT_STR, LOG_FT_INT, LOG_FT_DBL, LOG_FT_BOOL } log_ftype_t;

typedef struct log_field {
    const char *key;
    log_ftype_t type;
    const char *s;
    int64_t i;
    double d;
} log_field_t;

#define LF_S(k, v) ((log_field_t){.key = (k), .type = LOG_FT_STR, .s = (v)})
#define LF_I(k, v) ((log_field_t){.key = (k), .type = LOG_FT_INT, .i = (int64_t)(v)})
#define LF_D(k, v) ((log_field_t){.key = (k), .type = LOG_FT_DBL, .d = (double)(v)})
#define LF_B(k, v) ((log_field_t){.key = (k), .type = LOG_FT_BOOL, .i = !!(v)})

/* Sets the minimum level written and the destination (NULL = stderr). */
void log_setup(log_level_t min, FILE *out);
/* Parses "debug|info|warn|error"; returns 0 or -1 for an unknown name. */
int log_level_parse(const char *name, log_level_t *out);
int log_enabled(log_level_t lvl);
/* Writes one line; fields are borrowed for the call only. */
void log_write(log_level_t lvl, const char *msg, const log_field_t *fields, size_t n);

#define LOG(lvl, msg, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled(lvl)) {                                                                    \
            const log_field_t log__f[] = {LF_S(NULL, NULL), __VA_ARGS__};                          \
            log_write((lvl), (msg), log__f + 1, sizeof(log__f) / sizeof(log__f[0]) - 1);           \
        }                                                                                          \
    } while (0)

#define LOG0(lvl, msg)                                                                             \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write((lvl), (msg), NULL, 0);                                                      \
    } while (0)

#endif
