#include "activity.h"

#include "base/base.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct activity {
    char *url;
    unsigned char *key;
    size_t keylen;
};

activity_t *activity_new(const char *url, const unsigned char *key, size_t keylen)
{
    if (!url || !url[0] || !key || !keylen)
        return NULL;
    activity_t *a = d8_xcalloc(1, sizeof(*a));
    a->url = d8_xstrdup(url);
    size_t n = strlen(a->url);
    while (n && a->url[n - 1] == '/')
        a->url[--n] = '\0';
    a->key = d8_xcalloc(1, keylen);
    memcpy(a->key, key, keylen);
    a->keylen = keylen;
    return a;
}

void activity_free(activity_t *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a->key, a->keylen);
    free(a->key);
    free(a->url);
    free(a);
}

void activity_token(const activity_t *a, const char *id, char out[ACTIVITY_TOKEN_LEN + 1])
{
    /* A buffer of the message's own length: a fixed one would be read past
     * (snprintf's n is the untruncated length) or cut, and two long ids
     * with one prefix would share a token. */
    d8_buf_t msg;
    d8_buf_init(&msg);
    d8_buf_printf(&msg, "dev8-activity/v1 POST /api/v1/environments/%s/activity", id);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), a->key, (int)a->keylen, (const unsigned char *)msg.data, msg.len, mac,
         &maclen);
    d8_buf_release(&msg);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < 32 && i < maclen; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[ACTIVITY_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

int activity_token_ok(const activity_t *a, const char *id, const char *token, size_t tlen)
{
    if (!a || !id || !token)
        return 0;
    char want[ACTIVITY_TOKEN_LEN + 1];
    activity_token(a, id, want);
    int ok = d8_consttime_eq(token, tlen, want, ACTIVITY_TOKEN_LEN);
    OPENSSL_cleanse(want, sizeof(want));
    return ok;
}

int activity_url(const activity_t *a, const char *id, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/api/v1/environments/%s/activity", a->url, id);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}
