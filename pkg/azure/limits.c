/*
 * Pure helpers of pkg/azure: token bucket arithmetic, Retry-After parsing,
 * secret scrubbing, name checks, the origin check of nextLinks and what
 * ARM's throttling headers and 429 answers mean. No I/O, no clock reads:
 * callers pass the time in, so the unit tests can drive them.
 */
#include "azure_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void azure__bucket_init(azure__bucket_t *b, double cap, double rate, uint64_t now_ms)
{
    b->cap = cap > 0 ? cap : 1;
    b->rate = rate > 0 ? rate : 0.001;
    b->tokens = b->cap;
    b->last_ms = now_ms;
    b->paused_until = 0;
}

double azure__bucket_peek(const azure__bucket_t *b, uint64_t now_ms)
{
    double t = b->tokens;
    if (now_ms > b->last_ms)
        t += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
    return t > b->cap ? b->cap : t;
}

void azure__bucket_refill(azure__bucket_t *b, uint64_t now_ms)
{
    b->tokens = azure__bucket_peek(b, now_ms);
    if (now_ms > b->last_ms)
        b->last_ms = now_ms;
}

uint64_t azure__bucket_token_wait_ms(const azure__bucket_t *b, uint64_t now_ms)
{
    double tokens = azure__bucket_peek(b, now_ms);
    if (tokens >= 1.0)
        return 0;
    /* Round up so that the bucket surely holds a whole token by then. */
    double need_ms = (1.0 - tokens) * 1000.0 / b->rate;
    return (uint64_t)need_ms + 1;
}

uint64_t azure__bucket_wait_ms(azure__bucket_t *b, uint64_t now_ms)
{
    azure__bucket_refill(b, now_ms);
    uint64_t pause = b->paused_until > now_ms ? b->paused_until - now_ms : 0;
    uint64_t wait = azure__bucket_token_wait_ms(b, now_ms);
    return wait > pause ? wait : pause;
}

void azure__bucket_take(azure__bucket_t *b)
{
    b->tokens -= 1.0;
}

void azure__bucket_pause(azure__bucket_t *b, uint64_t until_ms)
{
    if (until_ms > b->paused_until)
        b->paused_until = until_ms;
}

void azure__bucket_clamp(azure__bucket_t *b, double remaining)
{
    if (remaining < 0)
        remaining = 0;
    if (b->tokens > remaining)
        b->tokens = remaining;
}

#define RETRY_AFTER_MAX_S (24 * 3600)

int azure__parse_retry_after(const char *v, int64_t now_wall_ms, uint64_t *delay_ms)
{
    if (!v)
        return D8_EPARSE;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    if (n == 0 || n > 64)
        return D8_EPARSE;
    char tmp[65];
    memcpy(tmp, v, n);
    tmp[n] = '\0';

    size_t digits = 0;
    while (digits < n && isdigit((unsigned char)tmp[digits]))
        digits++;
    if (digits == n) {
        /* delta-seconds; very large values are held to one day. */
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            s = s * 10 + (uint64_t)(tmp[i] - '0');
            if (s > RETRY_AFTER_MAX_S) {
                s = RETRY_AFTER_MAX_S;
                break;
            }
        }
        *delay_ms = s * 1000;
        return 0;
    }
    /* An HTTP-date must name a weekday first: reject numbers with junk
     * ("12abc") that a lenient date parser would accept. */
    if (!isalpha((unsigned char)tmp[0]))
        return D8_EPARSE;
    time_t t = curl_getdate(tmp, NULL);
    if (t == (time_t)-1)
        return D8_EPARSE;
    int64_t when_ms = (int64_t)t * 1000;
    if (when_ms <= now_wall_ms) {
        *delay_ms = 0;
        return 0;
    }
    uint64_t d = (uint64_t)(when_ms - now_wall_ms);
    if (d > (uint64_t)RETRY_AFTER_MAX_S * 1000)
        d = (uint64_t)RETRY_AFTER_MAX_S * 1000;
    *delay_ms = d;
    return 0;
}

void azure__free_secret(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void az_secrets_add(az_secrets_t *l, const char *s)
{
    if (!s || !s[0])
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = d8_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = d8_xstrdup(s);
}

void az_secrets_release(az_secrets_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        azure__free_secret(l->v[i]);
    free(l->v);
    *l = (az_secrets_t){0};
}

void azure__scrub(char *text, size_t cap, const char *const *secrets, size_t n)
{
    static const char red[] = "<redacted>";
    if (!text || cap == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *sec = secrets[i];
        if (!sec)
            continue;
        size_t sl = strlen(sec);
        if (sl < 4)
            continue;
        char *hit = strstr(text, sec);
        if (!hit)
            continue;
        d8_buf_t out;
        d8_buf_init(&out);
        const char *p = text;
        while ((hit = strstr(p, sec)) != NULL) {
            d8_buf_append(&out, p, (size_t)(hit - p));
            d8_buf_append(&out, red, sizeof(red) - 1);
            p = hit + sl;
        }
        d8_buf_puts(&out, p);
        size_t keep = out.len < cap - 1 ? out.len : cap - 1;
        memcpy(text, out.data, keep);
        text[keep] = '\0';
        OPENSSL_cleanse(out.data, out.cap);
        d8_buf_release(&out);
    }
}

int azure__valid_name(const char *s, size_t maxlen)
{
    if (!s || !*s)
        return 0;
    size_t n = strlen(s);
    if (n > maxlen)
        return 0;
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '(' || ch == ')'))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ origins */

/* The parts of an http(s) URL that name where it goes. */
typedef struct origin {
    int https;
    const char *host; /* as written, brackets included for IPv6 */
    size_t host_len;
    unsigned port;    /* the scheme's default when none is written */
    const char *rest; /* path, query and fragment: from the first / ? # */
} origin_t;

/*
 * Splits an absolute http or https URL. The host ends at ':' (or after
 * ']' for an IPv6 literal); an empty port is the default one (RFC 3986).
 * Userinfo ('@') is refused: an origin check must not be fooled by
 * "https://<ARM host>@evil.example/". 0, or -1.
 */
static int origin_parse(const char *url, origin_t *o)
{
    if (strncasecmp(url, "https://", 8) == 0) {
        o->https = 1;
        url += 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        o->https = 0;
        url += 7;
    } else {
        return -1;
    }
    size_t alen = strcspn(url, "/?#");
    if (alen == 0 || memchr(url, '@', alen))
        return -1;
    o->rest = url + alen;
    const char *end = url + alen;
    const char *colon;
    if (url[0] == '[') {
        const char *rb = memchr(url, ']', alen);
        if (!rb)
            return -1;
        colon = rb + 1 < end ? rb + 1 : NULL;
        if (colon && *colon != ':')
            return -1;
    } else {
        colon = memchr(url, ':', alen);
    }
    o->host = url;
    o->host_len = colon ? (size_t)(colon - url) : alen;
    o->port = o->https ? 443 : 80;
    if (colon && colon + 1 < end) {
        unsigned long p = 0;
        for (const char *d = colon + 1; d < end; d++) {
            if (!isdigit((unsigned char)*d) || (p = p * 10 + (unsigned long)(*d - '0')) > 65535)
                return -1;
        }
        if (p == 0)
            return -1;
        o->port = (unsigned)p;
    }
    return o->host_len > 0 ? 0 : -1;
}

int azure__same_origin(const char *base, const char *url)
{
    origin_t b, u;
    if (!base || !url || origin_parse(base, &b) < 0 || origin_parse(url, &u) < 0)
        return 0;
    if (b.https != u.https || b.port != u.port || b.host_len != u.host_len ||
        strncasecmp(b.host, u.host, b.host_len) != 0)
        return 0;
    /* Under base's path, if it has one (an emulator behind a prefix). */
    size_t n = strlen(b.rest);
    while (n && b.rest[n - 1] == '/')
        n--;
    return strncasecmp(u.rest, b.rest, n) == 0 && (u.rest[n] == '/' || u.rest[n] == '?');
}

/* ------------------------------------------------------------ throttling */

int azure__ratelimit_kind(const char *name, size_t nlen)
{
    static const char pre[] = "x-ms-ratelimit-remaining-subscription-";
    static const char *const kinds[AZ_ARM_KINDS] = {
        [AZURE_BUCKET_READ] = "reads",
        [AZURE_BUCKET_WRITE] = "writes",
        [AZURE_BUCKET_DELETE] = "deletes",
    };
    size_t pl = sizeof(pre) - 1;
    if (nlen <= pl || strncasecmp(name, pre, pl) != 0)
        return -1;
    name += pl;
    nlen -= pl;
    if (nlen > 7 && strncasecmp(name, "global-", 7) == 0) {
        name += 7;
        nlen -= 7;
    }
    for (int k = 0; k < AZ_ARM_KINDS; k++)
        if (strlen(kinds[k]) == nlen && strncasecmp(name, kinds[k], nlen) == 0)
            return k;
    return -1;
}

int azure__throttle_origin(azure__op_t op, const char *code, const char *message)
{
    if ((int)op < 0 || op >= AZ_OP__COUNT || azure__ops[op].aci_bucket < 0)
        return AZ_THROTTLED_ARM;
    if (code && strcasecmp(code, "SubscriptionRequestsThrottled") == 0)
        return AZ_THROTTLED_ARM;
    if ((code && strcasecmp(code, "TooManyRequests") == 0) ||
        (message && strcasestr(message, "container group")))
        return AZ_THROTTLED_ACI;
    return AZ_THROTTLED_ARM | AZ_THROTTLED_ACI;
}
