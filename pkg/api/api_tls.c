/*
 * api.tls: HTTPS on the API listener (pkg/http/http_tls.h does the work).
 * Loads the configured files when the API starts, turning a file that
 * does not load into a configuration error that points at its key, and
 * exports the TLS counters and the certificate's expiry as metrics.
 */
#include "api_int.h"

#include "base/base.h"
#include "log/log.h"

#include <stdio.h>
#include <string.h>

int api__tls_start(api_t *api, char *err, size_t errlen)
{
    const config_t *cfg = api->cfg;
    if (!cfg->tls_cert_file || !cfg->tls_cert_file[0])
        return D8_OK;
    http_tls_opts_t o = {
        .cert_file = cfg->tls_cert_file,
        .key_file = cfg->tls_key_file,
        .client_ca_file = cfg->tls_client_ca_file,
        .reload_ms = (uint64_t)cfg->tls_reload_seconds * 1000u,
    };
    http_tls_file_t bad = HTTP_TLS_FILE_NONE;
    char why[400];
    int rc = http_tls_new(api->loop, &o, &api->tls, &bad, why, sizeof why);
    if (rc != D8_OK) {
        const char *at = bad == HTTP_TLS_FILE_KEY  ? cfg->tls_key_at
                         : bad == HTTP_TLS_FILE_CA ? cfg->tls_client_ca_at
                                                   : cfg->tls_cert_at;
        const char *key = bad == HTTP_TLS_FILE_KEY  ? "api.tls.keyFile"
                          : bad == HTTP_TLS_FILE_CA ? "api.tls.clientCAFile"
                                                    : "api.tls.certFile";
        snprintf(err, errlen, "%s%s%s: %s", at && at[0] ? at : "", at && at[0] ? ": " : "", key,
                 why);
        return D8_EINVAL;
    }
    static const char *const ev_label[] = {"event"};
    api->m_tls_events = metrics_counter(
        api->metrics, "dev8_tls_events_total",
        "TLS on the API: handshakes done and failed, plain HTTP requests refused, certificate "
        "reloads done and failed.",
        1, ev_label);
    api->m_tls_expiry =
        metrics_gauge(api->metrics, "dev8_tls_certificate_expiry_timestamp_seconds",
                      "notAfter of the API's TLS certificate in use (Unix seconds).", 0, NULL);
    return D8_OK;
}

static void add_delta(metric_family_t *f, const char *event, uint64_t now, uint64_t *reported)
{
    const char *v[] = {event};
    if (now > *reported)
        metrics_add(f, v, (double)(now - *reported));
    *reported = now;
}

void api__tls_collect(api_t *api)
{
    if (!api->tls)
        return;
    http_tls_stats_t st;
    http_tls_get_stats(api->tls, &st);
    http_tls_stats_t *r = &api->tls_reported;
    add_delta(api->m_tls_events, "handshake", st.handshakes, &r->handshakes);
    add_delta(api->m_tls_events, "handshake_failed", st.handshake_failures, &r->handshake_failures);
    add_delta(api->m_tls_events, "plain_http", st.plain_http, &r->plain_http);
    add_delta(api->m_tls_events, "reload", st.reloads, &r->reloads);
    add_delta(api->m_tls_events, "reload_failed", st.reload_failures, &r->reload_failures);
    metrics_set(api->m_tls_expiry, NULL, (double)st.not_after);
}
