#include "base.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *d8_strerror(int err)
{
    switch (err) {
    case D8_OK:
        return "success";
#define D8_X(name, val, str)                                                                       \
    case D8_##name:                                                                                \
        return str;
        D8_ERRNO_MAP(D8_X)
#undef D8_X
    }
    return "unknown error";
}

const char *d8_err_name(int err)
{
    switch (err) {
    case D8_OK:
        return "OK";
#define D8_X(name, val, str)                                                                       \
    case D8_##name:                                                                                \
        return #name;
        D8_ERRNO_MAP(D8_X)
#undef D8_X
    }
    return "EUNKNOWN";
}

void d8_die(const char *what)
{
    /* The line has the shape of pkg/log's (which allocates, so it cannot
     * be used here): stdio on the unbuffered stderr and a stack buffer. */
    char ts[32];
    int64_t now = d8_wall_ms();
    d8_rfc3339(now, ts);
    ts[strlen(ts) - 1] = '\0';
    fprintf(stderr, "{\"ts\":\"%s.%03dZ\",\"level\":\"fatal\",\"msg\":\"", ts, (int)(now % 1000));
    for (const unsigned char *p = (const unsigned char *)(what ? what : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(stderr, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\u%04x", *p);
        else
            fputc(*p, stderr);
    }
    fputs("\"}\n", stderr);
    abort();
}

void *d8_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        d8_die("out of memory");
    return p;
}

void *d8_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        d8_die("out of memory");
    return p;
}

void *d8_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        d8_die("out of memory");
    return q;
}

char *d8_xstrdup(const char *s)
{
    return d8_xstrndup(s, strlen(s));
}

char *d8_xstrndup(const char *s, size_t n)
{
    char *p = d8_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void d8_set_str(char **dst, const char *src)
{
    if (*dst && src && strcmp(*dst, src) == 0)
        return;
    free(*dst);
    *dst = src ? d8_xstrdup(src) : NULL;
}

void d8_buf_init(d8_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    d8_buf_reserve(b, 64);
}

void d8_buf_release(d8_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void d8_buf_reset(d8_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void d8_buf_reserve(d8_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = d8_xrealloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0';
}

void d8_buf_append(d8_buf_t *b, const void *data, size_t len)
{
    d8_buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void d8_buf_puts(d8_buf_t *b, const char *s)
{
    d8_buf_append(b, s, strlen(s));
}

void d8_buf_putc(d8_buf_t *b, char c)
{
    d8_buf_append(b, &c, 1);
}

void d8_buf_vprintf(d8_buf_t *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    d8_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        d8_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    }
    b->len += (size_t)n;
}

void d8_buf_printf(d8_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    d8_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void d8_buf_consume(d8_buf_t *b, size_t n)
{
    if (n >= b->len) {
        d8_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *d8_buf_detach(d8_buf_t *b, size_t *len)
{
    if (!b->data)
        d8_buf_reserve(b, 0);
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void d8_buf_json_str(d8_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    d8_buf_reserve(b, strlen(s) + 2);
    d8_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"':
            d8_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            d8_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            d8_buf_append(b, "\\n", 2);
            break;
        case '\r':
            d8_buf_append(b, "\\r", 2);
            break;
        case '\t':
            d8_buf_append(b, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                d8_buf_append(b, esc, 6);
            } else {
                d8_buf_putc(b, (char)c);
            }
        }
    }
    d8_buf_putc(b, '"');
}

uint64_t d8_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t d8_mono_ms(void)
{
    return d8_mono_ns() / 1000000ull;
}

int64_t d8_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void d8_rfc3339(int64_t wall_ms, char out[32])
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int d8_consttime_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    /* Compare over the longer length so timing does not reveal a prefix. */
    const unsigned char *x = a, *y = b;
    size_t n = alen > blen ? alen : blen;
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < n; i++) {
        unsigned char cx = i < alen ? x[i] : 0;
        unsigned char cy = i < blen ? y[i] : 0;
        diff |= (unsigned char)(cx ^ cy);
    }
    return diff == 0;
}

int d8_random_bytes(void *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? D8_OK : D8_EIO;
}

void d8_uuid_v4(char out[37])
{
    unsigned char b[16];
    if (d8_random_bytes(b, sizeof(b)) < 0) {
        uint64_t t = d8_mono_ns();
        memcpy(b, &t, 8);
        memcpy(b + 8, &t, 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char hex[33];
    d8_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

uint64_t d8_rand_seed(void)
{
    uint64_t seed = 0;
    if (d8_random_bytes(&seed, sizeof(seed)) < 0 || seed == 0)
        seed = d8_mono_ns() | 1;
    return seed;
}

double d8_rand01(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    /* The top 53 bits of the product, scaled by 2^-53. */
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

uint64_t d8_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, double rand01)
{
    uint64_t d = base_ms;
    for (unsigned i = 1; i < attempt && d < cap_ms; i++)
        d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
    if (d > cap_ms)
        d = cap_ms;
    if (!(rand01 > 0)) /* also NaN */
        rand01 = 0;
    if (rand01 > 1)
        rand01 = 1;
    uint64_t half = d - d / 2;
    /* The double product may round up past `half` for huge delays. */
    double j = (double)half * rand01;
    uint64_t jitter = j >= (double)half ? half : (uint64_t)j;
    return d / 2 + jitter;
}

void d8_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void d8_image_registry(const char *ref, char *out, size_t outlen)
{
    const char *slash = strchr(ref, '/');
    size_t n = slash ? (size_t)(slash - ref) : 0;
    int host = n && (memchr(ref, '.', n) || memchr(ref, ':', n) ||
                     (n == 9 && strncmp(ref, "localhost", 9) == 0));
    if (!host || n >= outlen) {
        snprintf(out, outlen, "docker.io");
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)ref[i]);
    out[n] = '\0';
}
