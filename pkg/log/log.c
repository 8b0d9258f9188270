#include "log.h"

#include "base/base.h"

#include <math.h>
#include <string.h>

/*
 * The logger's settings are process-wide by nature (one stderr); they are
 * written once at start-up by main and only read afterwards.
 */
static log_level_t g_min = LOG_INFO;
static FILE *g_out;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(log_level_t min, FILE *out)
{
    g_min = min;
    g_out = out;
}

int log_level_parse(const char *name, log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int log_enabled(log_level_t lvl)
{
    return lvl >= g_min;
}

void log_write(log_level_t lvl, const char *msg, const log_field_t *fields, size_t n)
{
    if (!log_enabled(lvl))
        return;
    char ts[32];
    int64_t now = d8_wall_ms();
    d8_rfc3339(now, ts);
    d8_buf_t b;
    d8_buf_init(&b);
    /* Millisecond precision: replace the trailing Z with .mmmZ. */
    ts[strlen(ts) - 1] = '\0';
    d8_buf_printf(&b, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\",\"msg\":", ts, (int)(now % 1000),
                  level_names[lvl]);
    d8_buf_json_str(&b, msg);
    for (size_t i = 0; i < n; i++) {
        const log_field_t *f = &fields[i];
        if (!f->key)
            continue;
        d8_buf_putc(&b, ',');
        d8_buf_json_str(&b, f->key);
        d8_buf_putc(&b, ':');
        switch (f->type) {
        case LOG_FT_STR:
            if (f->s)
                d8_buf_json_str(&b, f->s);
            else
                d8_buf_puts(&b, "null");
            break;
        case LOG_FT_INT:
            d8_buf_printf(&b, "%lld", (long long)f->i);
            break;
        case LOG_FT_DBL:
            if (isfinite(f->d))
                d8_buf_printf(&b, "%.6g", f->d);
            else
                d8_buf_puts(&b, "null");
            break;
        case LOG_FT_BOOL:
            d8_buf_puts(&b, f->i ? "true" : "false");
            break;
        }
    }
    d8_buf_puts(&b, "}\n");
    FILE *out = g_out ? g_out : stderr;
    fwrite(b.data, 1, b.len, out);
    fflush(out);
    d8_buf_release(&b);
}
