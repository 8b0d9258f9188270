/*
 * pkg/azsim: ARM paging as the ARM RPC contract spells it (research notes
 * item 7): a list answers {"value":[...],"nextLink":"<the request's URL>
 * ?api-version=...&$skipToken=<opaque>"} and omits nextLink on the last
 * page. The token is opaque to clients: base64url of a version, the
 * sequence number the next page starts after, and a check keyed by the
 * seed, so that a token made up or changed is 400 InvalidSkipToken.
 * Options: the default port written out (observed ":443" on ARM's
 * nextLinks) and an empty first page with a nextLink ("Returning zero
 * records with NextLink is an acceptable response").
 */
#include "azsim_int.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_VERSION 1
#define TOKEN_BYTES 12 /* version, 0, 8 bytes of sequence, 2 bytes of check */

/* The check bytes of a token's first 10 bytes. */
static void token_check(const azsim_t *sim, const unsigned char *raw, unsigned char out[2])
{
    unsigned char in[32 + 10], md[SHA256_DIGEST_LENGTH];
    memcpy(in, sim->token_key, 32);
    memcpy(in + 32, raw, 10);
    SHA256(in, sizeof(in), md);
    out[0] = md[0];
    out[1] = md[1];
}

/* Appends the token of a page that continues after sequence number after. */
static void token_encode(const azsim_t *sim, uint64_t after, d8_buf_t *out)
{
    unsigned char raw[TOKEN_BYTES] = {TOKEN_VERSION, 0};
    for (int i = 0; i < 8; i++)
        raw[2 + i] = (unsigned char)(after >> (56 - 8 * i));
    token_check(sim, raw, raw + 10);
    azsim__b64(out, raw, sizeof(raw), 1);
}

/* The sequence number a token continues after; -1 when it is not one of
 * ours. */
static int token_decode(const azsim_t *sim, const char *tok, uint64_t *after)
{
    d8_buf_t raw;
    d8_buf_init(&raw);
    int rc = -1;
    if (azsim__b64url_decode(tok, strlen(tok), &raw) == 0 && raw.len == TOKEN_BYTES &&
        (unsigned char)raw.data[0] == TOKEN_VERSION && raw.data[1] == 0) {
        const unsigned char *r = (const unsigned char *)raw.data;
        unsigned char check[2];
        token_check(sim, r, check);
        if (check[0] == r[10] && check[1] == r[11]) {
            *after = 0;
            for (int i = 0; i < 8; i++)
                *after = (*after << 8) | r[2 + i];
            rc = 0;
        }
    }
    d8_buf_release(&raw);
    return rc;
}

int azsim__page_start(azsim__rq_t *q, azsim__page_t *pg)
{
    memset(pg, 0, sizeof(*pg));
    pg->size = q->sim->page_size;
    char tok[64];
    /* ARM passes the token through as is; clients write either case. */
    int n = azsim__param(q->req->query, "$skipToken", tok, sizeof(tok));
    if (n == -1)
        n = azsim__param(q->req->query, "$skiptoken", tok, sizeof(tok));
    if (n == -1) {
        pg->empty_now = q->sim->paging.empty_pages;
        return 1;
    }
    if (n <= 0 || token_decode(q->sim, tok, &pg->after) < 0) {
        azsim__arm_error(q->resp, 400, "InvalidSkipToken", "The $skipToken is not valid.");
        return 0;
    }
    return 1;
}

/* Appends this server's origin as the client wrote it (q->base), with the
 * scheme's default port when paging.explicitPort asks and none is there. */
static void origin(const azsim__rq_t *q, d8_buf_t *b)
{
    d8_buf_puts(b, q->base);
    if (!q->sim->paging.explicit_port)
        return;
    const char *auth = strstr(q->base, "://");
    auth = auth ? auth + 3 : q->base;
    const char *rb = strrchr(auth, ']');
    const char *colon = strchr(rb ? rb : auth, ':');
    if (!colon)
        d8_buf_puts(b, azsim__istarts(q->base, "https:") ? ":443" : ":80");
}

void azsim__page_next_link(azsim__rq_t *q, d8_buf_t *b, const char *extra, uint64_t after)
{
    d8_buf_t url;
    d8_buf_init(&url);
    origin(q, &url);
    d8_buf_printf(&url, "%s?api-version=%s", q->req->path, q->api_version);
    if (extra)
        d8_buf_puts(&url, extra);
    d8_buf_puts(&url, "&$skipToken=");
    token_encode(q->sim, after, &url);
    d8_buf_puts(b, ",\"nextLink\":");
    d8_buf_json_str(b, url.data);
    d8_buf_release(&url);
}
