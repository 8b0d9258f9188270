/*
 * libFuzzer target for dev8ctl's input parser (pkg/ctl/ctl_input.c): the
 * YAML or JSON of `apply -f` / `diff -f`. Any bytes must give environments
 * or one error line "name:line:column: ..."; never a crash, leak or hang
 * (aliases, tags, deep nesting, duplicate keys, invalid UTF-8, NULs). What
 * it accepts must survive the YAML emitter and read back the same.
 */
#include "ctl/ctl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An accepted item: id non-empty, spec an object without id, position
 * inside the input; and spec -> YAML -> spec is the identity. */
static void check_item(const ctl_item_t *it, size_t size)
{
    if (!it->id || !it->id[0] || !cJSON_IsObject(it->spec) ||
        cJSON_GetObjectItemCaseSensitive(it->spec, "id") || it->line < 1 || it->col < 1 ||
        (size_t)it->line > size + 1)
        abort();
    char *y = ctl_yaml_emit(it->spec);
    char err[512];
    cJSON *back = ctl_yaml_parse("emitted", y, strlen(y), err, sizeof err);
    if (!back || !cJSON_Compare(back, it->spec, 1))
        abort();
    cJSON_Delete(back);
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctl_items_t items;
    char err[1024];
    int rc = ctl_input_parse("fuzz.yaml", (const char *)data, size, &items, err, sizeof err);
    if (rc == 0) {
        if (items.n == 0)
            abort();
        for (size_t i = 0; i < items.n; i++)
            check_item(&items.v[i], size);
    } else if (strncmp(err, "fuzz.yaml:", 10) != 0 || memchr(err, '\n', strlen(err))) {
        abort();
    }
    ctl_items_release(&items);
    return 0;
}
