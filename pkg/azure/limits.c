/*
 * Pure helpers of pkg/azure: token bucket arithmetic, Retry-After parsing,
 * secret scrubbing and name checks. No I/O, no clock reads: callers pass
 * the time in, so the unit tests can drive them.
 */
#include "azure_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

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
