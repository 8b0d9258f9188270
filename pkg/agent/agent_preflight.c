/*
 * `dev8-agent preflight`: one run of pkg/preflight on a loop of its own,
 * through an Azure client built from the configuration as the agent
 * builds it, printed as a table (or JSON).
 */
#include "agent.h"
#include "agent_int.h"

#include "preflight/preflight.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct cli {
    uv_loop_t *loop;
    int json;
    int fails;
    d8_buf_t out;
} cli_t;

static void on_report(void *ud, const preflight_report_t *r)
{
    cli_t *c = ud;
    c->fails = (int)r->count[PREFLIGHT_FAIL];
    /* The client's timers would keep the loop running: stop it here. */
    uv_stop(c->loop);
    if (c->json) {
        cJSON *j = preflight_report_json(r);
        char *s = cJSON_Print(j);
        d8_buf_printf(&c->out, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        preflight_report_table(r, &c->out);
    }
}

int agent_preflight(const config_t *cfg, int json)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "dev8-agent: cannot create the event loop\n");
        return 2;
    }
    cli_t c = {.loop = &loop, .json = json, .fails = -1};
    d8_buf_init(&c.out);
    char err[256];
    azure_client_opts_t o;
    agent__azure_opts(&o, cfg);
    azure_client_t *az = NULL;
    int code = 2;
    if (azure_client_new(&loop, &o, &az, err, sizeof(err)) != D8_OK) {
        /* No credential could even be set up: that is the credentials
         * check failing, with the reason. */
        preflight_report_t r;
        preflight_report_init(&r);
        preflight_add(&r, "credentials", PREFLIGHT_FAIL,
                      "set azure.auth and the variables it reads (AZURE_TENANT_ID, "
                      "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE)",
                      "%s", err);
        on_report(&c, &r);
        preflight_report_release(&r);
    } else if (preflight_run(az, cfg, on_report, &c) == D8_OK) {
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    azure_client_free(az);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    fputs(c.out.data ? c.out.data : "", stdout);
    d8_buf_release(&c.out);
    if (c.fails >= 0)
        code = c.fails > 0 ? 1 : 0;
    return code;
}

void agent_print_actions(void)
{
    for (const char *const *a = preflight_actions; *a; a++)
        printf("%s\n", *a);
}
