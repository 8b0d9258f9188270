/*
 * pkg/azsim helpers: the ordered hash table, the event heap, token
 * buckets, the seeded generator, parameter parsing and answer building.
 */
#include "azsim_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const azsim__op_names[AZSIM__OP_COUNT] = {
#define AZSIM__X(id, name) name,
    AZSIM__OPS(AZSIM__X)
#undef AZSIM__X
};

/* ---- table -------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    /* FNV-1a, 64 bit: the keys are short ASCII ids. */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void azsim__table_init(azsim__table_t *t)
{
    memset(t, 0, sizeof(*t));
    t->nbuckets = 64;
    t->buckets = d8_xcalloc(t->nbuckets, sizeof(*t->buckets));
    d8_list_init(&t->order);
    t->next_seq = 1;
}

void azsim__table_release(azsim__table_t *t)
{
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

azsim__ent_t *azsim__table_get(const azsim__table_t *t, const char *key)
{
    uint64_t h = hash_str(key);
    for (azsim__ent_t *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void grow(azsim__table_t *t)
{
    size_t n = t->nbuckets * 2;
    azsim__ent_t **b = d8_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        azsim__ent_t *e = t->buckets[i];
        while (e) {
            azsim__ent_t *next = e->hnext;
            size_t j = e->hash & (n - 1);
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

void azsim__table_put(azsim__table_t *t, azsim__ent_t *e, const char *key)
{
    if (t->count + 1 > t->nbuckets)
        grow(t);
    e->key = azsim__lower(d8_xstrdup(key));
    e->hash = hash_str(e->key);
    e->seq = t->next_seq++;
    size_t i = e->hash & (t->nbuckets - 1);
    e->hnext = t->buckets[i];
    t->buckets[i] = e;
    d8_list_push(&t->order, &e->order);
    t->count++;
}

void azsim__table_del(azsim__table_t *t, azsim__ent_t *e)
{
    azsim__ent_t **pp = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    d8_list_del(&e->order);
    t->count--;
    free(e->key);
    e->key = NULL;
    e->hnext = NULL;
}

/* ---- heap --------------------------------------------------------------- */

static int ev_less(const void *x, const void *y)
{
    const azsim__event_t *a = x, *b = y;
    if (a->due != b->due)
        return a->due < b->due;
    return a->order < b->order;
}

void azsim__heap_init(azsim__heap_t *h)
{
    d8_heap_init(&h->h, sizeof(azsim__event_t), ev_less, NULL);
    h->next_order = 0;
}

void azsim__heap_push(azsim__heap_t *h, uint64_t due, int kind, uint64_t epoch, const char *key)
{
    azsim__event_t ev = {.due = due,
                         .order = h->next_order++,
                         .kind = kind,
                         .epoch = epoch,
                         .key = azsim__lower(d8_xstrdup(key))};
    d8_heap_push(&h->h, &ev);
}

int azsim__heap_pop_due(azsim__heap_t *h, uint64_t now, azsim__event_t *out)
{
    const azsim__event_t *first = d8_heap_top(&h->h);
    if (!first || first->due > now)
        return 0;
    return d8_heap_pop(&h->h, out);
}

void azsim__heap_release(azsim__heap_t *h)
{
    for (size_t i = 0; i < h->h.count; i++)
        free(((azsim__event_t *)d8_heap_at(&h->h, i))->key);
    d8_heap_release(&h->h);
    h->next_order = 0;
}

/* ---- buckets ------------------------------------------------------------ */

void azsim__bucket_init(azsim__bucket_t *b, double cap, double per_second, uint64_t now)
{
    b->cap = cap;
    b->tokens = cap;
    b->rate_per_ms = per_second / 1000.0;
    b->last = now;
}

void azsim__bucket_refill(azsim__bucket_t *b, uint64_t now)
{
    if (now > b->last) {
        b->tokens += (double)(now - b->last) * b->rate_per_ms;
        if (b->tokens > b->cap)
            b->tokens = b->cap;
        b->last = now;
    }
}

int azsim__bucket_wait_s(const azsim__bucket_t *b)
{
    if (b->tokens >= 1.0 || b->rate_per_ms <= 0)
        return 1;
    double ms = (1.0 - b->tokens) / b->rate_per_ms;
    int s = (int)ceil(ms / 1000.0);
    return s < 1 ? 1 : s;
}

/* ---- generator and clocks ---------------------------------------------- */

uint64_t azsim__rng_next(uint64_t *state)
{
    /* splitmix64: tiny, seedable with any value, good enough for faults. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double azsim__rng_unit(uint64_t *state)
{
    return (double)(azsim__rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

void azsim__uuid(azsim_t *sim, char out[37])
{
    uint64_t a = azsim__rng_next(&sim->rng_ids), b = azsim__rng_next(&sim->rng_ids);
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & 0xffffffffffffull));
}

uint64_t azsim__now(const azsim_t *sim)
{
    return sim->o.clock ? sim->o.clock(sim->o.clock_ud) : d8_mono_ms();
}

int64_t azsim__wall_of(const azsim_t *sim, uint64_t clock_ms)
{
    return sim->wall0 + (int64_t)(clock_ms - sim->mono0);
}

/* ---- strings ------------------------------------------------------------ */

char *azsim__lower(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

int azsim__ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

int azsim__istarts(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int azsim__param(const char *qs, const char *name, char *out, size_t outlen)
{
    if (!qs)
        return -1;
    const char *p = qs;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        char nbuf[128];
        if (http_form_decode(p, nlen, nbuf, sizeof(nbuf)) >= 0 && strcmp(nbuf, name) == 0) {
            if (!eq) {
                if (outlen == 0)
                    return -2;
                out[0] = '\0';
                return 0;
            }
            int r = http_form_decode(eq + 1, len - nlen - 1, out, outlen);
            return r < 0 ? -2 : r;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return -1;
}

/* ---- answers ------------------------------------------------------------ */

void azsim__header(azsim_resp_t *r, const char *name, const char *fmt, ...)
{
    if (r->nheaders >= AZSIM_MAX_HEADERS)
        return;
    d8_buf_t b;
    d8_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    d8_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = d8_buf_detach(&b, NULL);
    r->nheaders++;
}

void azsim__arm_error(azsim_resp_t *r, int status, const char *code, const char *fmt, ...)
{
    d8_buf_t msg;
    d8_buf_init(&msg);
    va_list ap;
    va_start(ap, fmt);
    d8_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    r->status = status;
    r->content_type = "application/json; charset=utf-8";
    d8_buf_reset(&r->body);
    d8_buf_puts(&r->body, "{\"error\":{\"code\":");
    d8_buf_json_str(&r->body, code);
    d8_buf_puts(&r->body, ",\"message\":");
    d8_buf_json_str(&r->body, msg.data);
    d8_buf_puts(&r->body, "}}");
    d8_buf_release(&msg);
}

void azsim__json_body(azsim_resp_t *r, int status, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    r->status = status;
    r->content_type = "application/json; charset=utf-8";
    d8_buf_reset(&r->body);
    d8_buf_puts(&r->body, s ? s : "null");
    free(s);
}

/* ---- base64 ------------------------------------------------------------- */

void azsim__b64(d8_buf_t *b, const unsigned char *in, size_t n, int url)
{
    static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *a = url ? safe : std;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        d8_buf_putc(b, a[(v >> 18) & 63]);
        d8_buf_putc(b, a[(v >> 12) & 63]);
        if (i + 1 < n)
            d8_buf_putc(b, a[(v >> 6) & 63]);
        else if (!url)
            d8_buf_putc(b, '=');
        if (i + 2 < n)
            d8_buf_putc(b, a[v & 63]);
        else if (!url)
            d8_buf_putc(b, '=');
    }
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

int azsim__b64url_decode(const char *in, size_t n, d8_buf_t *out)
{
    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            d8_buf_putc(out, (char)((acc >> bits) & 0xff));
        }
    }
    return 0;
}

/* ---- names -------------------------------------------------------------- */

/* Lower-case letters, digits and dashes, no dash at either end. */
static int dns_like(const char *s, size_t min, size_t max, int no_double_dash)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return 0;
    if (s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        if (no_double_dash && c == '-' && i > 0 && s[i - 1] == '-')
            return 0;
    }
    return 1;
}

int azsim__valid_cg_name(const char *s)
{
    /* ACI: 1..63 lower-case letters, digits and dashes, not at an end.
     * ARM names are case-insensitive, so upper case is folded first. */
    char buf[80];
    if (strlen(s) >= sizeof(buf))
        return 0;
    strcpy(buf, s);
    return dns_like(azsim__lower(buf), 1, 63, 0);
}

int azsim__valid_share_name(const char *s)
{
    /* Azure Files: 3..63, lower case, digits, dashes; every dash between
     * a letter or digit on both sides. */
    return dns_like(s, 3, 63, 1);
}

int azsim__valid_account_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 24)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

int azsim__valid_c_identifier(const char *s)
{
    if (!s[0] || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (const char *p = s + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return 0;
    return 1;
}

/* ---- statistics --------------------------------------------------------- */

void azsim__stat(azsim_t *sim, int op, int status)
{
    if (op < 0 || op >= AZSIM__OP_COUNT)
        op = AZSIM__OP_UNKNOWN;
    for (size_t i = 0; i < sim->nstats[op]; i++) {
        if (sim->stats[op][i].status == status) {
            sim->stats[op][i].n++;
            return;
        }
    }
    if (sim->nstats[op] < sizeof(sim->stats[op]) / sizeof(sim->stats[op][0])) {
        sim->stats[op][sim->nstats[op]].status = status;
        sim->stats[op][sim->nstats[op]].n = 1;
        sim->nstats[op]++;
    }
}

void azsim__record_deleted(azsim_t *sim, char kind, const char *id, int64_t at_wall)
{
    if (sim->ndeleted == sim->capdeleted) {
        sim->capdeleted = sim->capdeleted ? sim->capdeleted * 2 : 64;
        sim->deleted = d8_xrealloc(sim->deleted, sim->capdeleted * sizeof(*sim->deleted));
    }
    sim->deleted[sim->ndeleted].kind = kind;
    sim->deleted[sim->ndeleted].id = d8_xstrdup(id);
    sim->deleted[sim->ndeleted].at_wall = at_wall;
    sim->ndeleted++;
}
