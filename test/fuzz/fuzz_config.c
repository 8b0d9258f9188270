/*
 * libFuzzer target for pkg/config: arbitrary bytes as a YAML config. The
 * loader must answer with a config or one error line, never crash, leak or
 * run away (aliases, deep nesting, huge scalars, invalid UTF-8).
 */
#include "base/base.h"
#include "config/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A fixed environment: API keys come from AGENT_API_KEYS so that no input
 * makes the loader open files named in it (api.keysFile), and no
 * subscription comes from outside so that region fallback is exercised.
 */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("AGENT_API_KEYS", "fuzz-key-1,fuzz-key-2", 1);
    unsetenv("AZURE_SUBSCRIPTION_ID");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    config_t *cfg = NULL;
    char err[512];

    int rc = config_load_string("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof err);
    if (rc == 0) {
        /* A config handed out must be complete and self-consistent. */
        if (!cfg || cfg->nregions == 0 || cfg->nports == 0 || cfg->nimages == 0)
            abort();
        for (size_t i = 0; i < cfg->nregions; i++)
            if (config_region(cfg, cfg->regions[i].name) == NULL ||
                !cfg->regions[i].subscription_id[0])
                abort();
    } else if (cfg != NULL || strlen(err) == 0 || memchr(err, '\n', strlen(err))) {
        abort();
    }
    config_free(cfg);
    return 0;
}
