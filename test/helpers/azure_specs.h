/*
 * The official Azure REST specs for tests: read at test time from
 * ../shared/azure-specs (relative to the repository root, where `make
 * test` runs), or from $D8_SPECS_DIR. A missing file fails the test with a
 * message saying where it was looked for.
 */
#ifndef D8_TEST_AZURE_SPECS_H
#define D8_TEST_AZURE_SPECS_H

#include "base/base.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#define ACI_DIR                                                                                    \
    "containerinstance/resource-manager/Microsoft.ContainerInstance/ContainerInstance/stable/"     \
    "2026-05-01"
#define STO_DIR "storage/resource-manager/Microsoft.Storage/stable/2025-01-01"

static inline const char *specs_dir(void)
{
    const char *e = getenv("D8_SPECS_DIR");
    return e && e[0] ? e : "../shared/azure-specs";
}

/* The whole file (malloc'd, NUL-terminated), or NULL. */
static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    d8_buf_t b;
    d8_buf_init(&b);
    char tmp[8192];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        d8_buf_append(&b, tmp, n);
    fclose(f);
    return d8_buf_detach(&b, len);
}

/* Loads a spec file (caller deletes it) or fails the test with a clear
 * message. Needs cmocka.h included first. */
static inline cJSON *load_spec(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", specs_dir(), rel);
    size_t len;
    char *text = read_file(path, &len);
    if (!text)
        fail_msg("azure specs not found: %s (the tests read ../shared/azure-specs relative "
                 "to the repository root; CI must have shared/ beside the clone, or set "
                 "D8_SPECS_DIR)",
                 path);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j)
        fail_msg("%s is not JSON", path);
    return j;
}

/* The body of response `status` of an example, printed back to text
 * (malloc'd), or NULL. */
static inline char *example_body(const cJSON *ex, const char *status)
{
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(ex, "responses");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(resp, status);
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(st, "body");
    return body ? cJSON_PrintUnformatted(body) : NULL;
}

#endif
