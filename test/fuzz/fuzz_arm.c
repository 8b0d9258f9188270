/*
 * libFuzzer target: arbitrary bytes into every ARM/token response decoder
 * of pkg/azure (group, group list, share, share list, storage account,
 * operation status, ARM error, token, listKeys), into the Retry-After
 * parser, the nextLink origin check and the ratelimit header names. Each
 * decoder must either decode or answer D8_EPARSE, never crash, leak or
 * read out of bounds.
 * Seeds: the example bodies of the official specs (test/fuzz/corpus/arm).
 */
#include "azure/azure.h"
#include "azure/azure_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;

    azure_group_t g;
    if (azure_decode_group(json, size, &g) == 0) {
        (void)azure_map_get(&g.tags, "dev8-env-id");
        azure_group_release(&g);
    }

    azure_group_list_t gl = {0};
    char *next = NULL;
    if (azure_decode_group_list(json, size, &gl, &next) == 0) {
        free(next);
        next = NULL;
        /* A second page appends to the first. */
        if (azure_decode_group_list(json, size, &gl, &next) == 0)
            free(next);
    }
    azure_group_list_release(&gl);

    azure_share_t s;
    if (azure_decode_share(json, size, &s) == 0)
        azure_share_release(&s);

    azure_share_list_t sl = {0};
    next = NULL;
    if (azure_decode_share_list(json, size, &sl, &next) == 0)
        free(next);
    azure_share_list_release(&sl);

    azure_storage_account_t sa;
    if (azure_decode_storage_account(json, size, &sa) == 0)
        azure_storage_account_release(&sa);

    azure_operation_t op;
    if (azure_decode_operation(json, size, &op) == 0)
        azure_operation_release(&op);

    char code[64], msg[256];
    (void)azure_decode_error(json, size, code, sizeof(code), msg, sizeof(msg));

    azure__token_t t;
    if (azure__decode_token(json, size, &t) == 0)
        azure__token_release(&t);

    char *key = NULL;
    if (azure__decode_keys(json, size, &key) == 0)
        azure__free_secret(key);

    char ra[80];
    size_t n = size < sizeof(ra) - 1 ? size : sizeof(ra) - 1;
    memcpy(ra, data, n);
    ra[n] = '\0';
    uint64_t d;
    (void)azure__parse_retry_after(ra, 1445412480000LL, &d);
    (void)azure__ratelimit_kind(json, size);

    /* The input as a nextLink, and as the endpoint it is checked against. */
    char *link = malloc(size + 1);
    if (!link)
        return 0;
    memcpy(link, data, size);
    link[size] = '\0';
    (void)azure__same_origin("https://management.azure.com", link);
    (void)azure__same_origin(link, "https://management.azure.com:443/subscriptions/s?$skipToken=1");
    free(link);
    return 0;
}
