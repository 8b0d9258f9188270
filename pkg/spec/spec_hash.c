/*
 * pkg/spec: the spec hash of DESIGN.md section 4 (the dev8-spec-hash tag)
 * and the keyed digest of a secret value.
 *
 * The hash input is a canonical byte encoding in which every variable
 * length field is preceded by its length and every list by its count, so
 * no two different specs encode to the same bytes. A clear secret value is
 * only ever passed to HMAC; the hash sees the HMAC output, or nothing of
 * the value when no key is configured.
 */
#include "spec.h"

#include "base/base.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

/* Versioned so that a future change of the encoding cannot collide. */
#define HASH_DOMAIN "dev8-spec-hash/v1"

/*
 * Hashing fails only when OpenSSL cannot allocate. A wrong hash would make
 * the controller recreate container groups, so, as for any other
 * allocation failure, the process stops instead (d8_die).
 */
static void put_u64(EVP_MD_CTX *ctx, uint64_t v)
{
    unsigned char b[8];

    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    if (EVP_DigestUpdate(ctx, b, sizeof(b)) != 1)
        d8_die("OpenSSL failed: EVP_DigestUpdate");
}

/* Length-prefixed bytes. */
static void put_bytes(EVP_MD_CTX *ctx, const void *p, size_t len)
{
    put_u64(ctx, (uint64_t)len);
    if (len && EVP_DigestUpdate(ctx, p, len) != 1)
        d8_die("OpenSSL failed: EVP_DigestUpdate");
}

/* Length-prefixed string; NULL encodes like "". */
static void put_str(EVP_MD_CTX *ctx, const char *s)
{
    put_bytes(ctx, s ? s : "", s ? strlen(s) : 0);
}

/* HMAC-SHA256(key, value) into mac; a NULL key is the empty key. */
static void hmac_value(const unsigned char *key, size_t keylen, const char *value,
                       unsigned char mac[32])
{
    static const unsigned char empty_key[1];
    unsigned int maclen = 0;

    if (!key || keylen == 0) {
        key = empty_key;
        keylen = 0;
    }
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)(value ? value : ""),
              value ? strlen(value) : 0, mac, &maclen) ||
        maclen != 32)
        d8_die("OpenSSL failed: HMAC");
}

void spec_hash(const env_spec_t *s, const spec_hash_input_t *in, char out[17])
{
    EVP_MD_CTX *ctx = NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned char mac[32];
    unsigned int mdlen = 0;
    /* An empty key protects nothing (anyone can recompute it): treat it as unset. */
    int keyed = in->key != NULL && in->keylen > 0;

    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        d8_die("OpenSSL failed: EVP_DigestInit_ex");

    put_str(ctx, HASH_DOMAIN);
    put_u64(ctx, (uint64_t)keyed);
    put_str(ctx, in->image);
    put_u64(ctx, (uint64_t)(int64_t)s->cpu_halves);
    put_u64(ctx, (uint64_t)(int64_t)s->memory_halves);
    put_u64(ctx, (uint64_t)in->nports);
    for (size_t i = 0; i < in->nports; i++)
        put_u64(ctx, (uint64_t)(int64_t)in->ports[i]);
    put_str(ctx, in->mount_path);
    put_u64(ctx, (uint64_t)s->nenv);
    for (size_t i = 0; i < s->nenv; i++) {
        put_str(ctx, s->env[i].name);
        put_str(ctx, s->env[i].value);
    }
    put_u64(ctx, (uint64_t)s->nsecret);
    for (size_t i = 0; i < s->nsecret; i++) {
        put_str(ctx, s->secret_env[i].name);
        if (keyed) {
            hmac_value(in->key, in->keylen, s->secret_env[i].value, mac);
            put_bytes(ctx, mac, sizeof(mac));
        }
    }
    /* Additions after v1: each behind a marker, only when set. */
    if (in->registry_server) {
        put_str(ctx, "registry");
        put_str(ctx, in->registry_server);
        put_str(ctx, in->registry_username);
        put_str(ctx, in->registry_identity);
        if (keyed && in->registry_password) {
            hmac_value(in->key, in->keylen, in->registry_password, mac);
            put_bytes(ctx, mac, sizeof(mac));
        }
    }
    if (in->nsubnet_ids) {
        put_str(ctx, "subnets");
        put_u64(ctx, (uint64_t)in->nsubnet_ids);
        for (size_t i = 0; i < in->nsubnet_ids; i++)
            put_str(ctx, in->subnet_ids[i]);
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < 8)
        d8_die("OpenSSL failed: EVP_DigestFinal_ex");
    d8_hex(md, 8, out);

    /* The MAC of a secret is key material too: wipe it, and the context. */
    OPENSSL_cleanse(mac, sizeof(mac));
    OPENSSL_cleanse(md, sizeof(md));
    EVP_MD_CTX_free(ctx);
}

void spec_secret_digest(const unsigned char *key, size_t keylen, const char *value, char out[65])
{
    unsigned char mac[32];

    hmac_value(key, keylen, value, mac);
    d8_hex(mac, sizeof(mac), out);
    OPENSSL_cleanse(mac, sizeof(mac));
}
