/*
 * libFuzzer target: arbitrary bytes as every ARM answer preflight reads
 * (provider, permissions, storage account, file service, usages,
 * capabilities) and as an image reference. Each evaluator must add its
 * check(s) whatever the input, never crash, leak or read out of bounds.
 * Seeds: the spec examples of test/fixtures/azure-specs and azsim's
 * answers (test/fuzz/corpus/preflight).
 */
#include "preflight/preflight.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    preflight_report_t r;
    preflight_report_init(&r);
    preflight_eval_provider(&r, "Microsoft.Storage", text);
    preflight_eval_permissions(&r, "p", "rg", text);
    preflight_eval_account(&r, "region x", "acct", 8192, text);
    preflight_eval_file_service(&r, "f", "acct", text);
    preflight_eval_usages(&r, "u", "eastus", text);
    preflight_eval_capabilities(&r, "c", "eastus", 4, 16, text);
    preflight_eval_image(&r, "k", text, NULL);
    preflight_eval_resource_action(&r, "x", "/s", "a/b", "fix", text);
    cJSON *j = cJSON_Parse(text);
    (void)preflight_allows(cJSON_GetObjectItem(j, "value"),
                           "Microsoft.Storage/storageAccounts/read");
    cJSON_Delete(j);
    cJSON *out = preflight_report_json(&r);
    cJSON_Delete(out);
    d8_buf_t b;
    d8_buf_init(&b);
    preflight_report_table(&r, &b);
    d8_buf_release(&b);
    preflight_report_release(&r);
    free(text);
    return 0;
}
