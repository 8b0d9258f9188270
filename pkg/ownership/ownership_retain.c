/*
 * pkg/ownership: the keep-until mark of retained shares (issue 15). A
 * share kept after its environment was deleted carries dev8keep=true and
 * dev8keepuntil=<RFC 3339 UTC>, ASCII as Storage requires; past that time
 * the reaper may delete it like any orphan (every other guard holds).
 */
#include "ownership.h"

#include "base/base.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

size_t own_share_metadata_retained(azure_kv_t out[OWN_KV_MAX], char user_buf[OWN_META_VALUE_MAX],
                                   char until_buf[32], const char *controller, const char *id,
                                   const char *user_id, int64_t keep_until_ms)
{
    size_t n = own_share_metadata(out, user_buf, controller, id, user_id, 1);
    if (keep_until_ms <= 0)
        return n;
    /* Whole seconds, rounded up: the share is never reaped early. */
    int64_t secs = (keep_until_ms + 999) / 1000;
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(until_buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    out[n++] = (azure_kv_t){OWN_MD_KEEP_UNTIL, until_buf};
    return n;
}

int64_t own_parse_time(const char *s)
{
    if (!s)
        return 0;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int frac = 0, used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used != 19)
        return 0;
    const char *p = s + used;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return 0;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (strcmp(p, "Z") != 0 || tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 ||
        tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? 0 : (int64_t)t * 1000 + frac;
}

int own_keep_expired(const own_info_t *info, int64_t now_ms)
{
    return info->keep && info->keep_until_ms > 0 && now_ms >= info->keep_until_ms;
}
