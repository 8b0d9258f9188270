/*
 * The metrics of pkg/azure: per-operation status counts, the attempt
 * duration histogram, the counters of azure_client_stats, and their
 * Prometheus text (azure_client_metrics). Written by the request layer
 * (request.c) after each attempt; read by the application's /metrics and
 * /api/v1/status.
 */
#include "azure_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double azure_hist_bounds[AZURE_HIST_BUCKETS] = {0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2.5,  5,   10,   30};

/* Counts one more attempt of op answered with status (-1 no answer, -2
 * timed out). */
static void record_code(azure_client_t *c, int op, int status)
{
    for (size_t i = 0; i < c->ncodes; i++) {
        if (c->codes[i].op == op && c->codes[i].status == status) {
            c->codes[i].n++;
            return;
        }
    }
    if (c->ncodes == c->capcodes) {
        c->capcodes = c->capcodes ? c->capcodes * 2 : 16;
        c->codes = d8_xrealloc(c->codes, c->capcodes * sizeof(*c->codes));
    }
    c->codes[c->ncodes++] = (azure__code_count_t){op, status, 1};
}

static void record_duration(azure_client_t *c, double s)
{
    size_t i = 0;
    while (i < AZURE_HIST_BUCKETS && s > azure_hist_bounds[i])
        i++;
    c->hist[i]++;
    c->hist_sum += s;
    c->hist_count++;
}

void azure__record_attempt(azure_client_t *c, int op, int status, double seconds)
{
    c->st_requests++;
    record_code(c, op, status);
    record_duration(c, seconds);
}

void azure_client_stats(const azure_client_t *c, azure_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->requests = c->st_requests;
    out->retries = c->st_retries;
    out->throttle_waits = c->st_throttle_waits;
    out->throttled = c->st_throttled;
    out->timeouts = c->st_timeouts;
    out->connects = c->st_connects;
    out->token_refreshes = c->st_token_refreshes;
    out->token_failures = c->st_token_failures;
    out->queued = c->nqueued;
    out->inflight = c->ninflight;
    memcpy(out->duration_counts, c->hist, sizeof(c->hist));
    out->duration_sum_s = c->hist_sum;
    out->duration_count = c->hist_count;
}

uint64_t azure_client_requests(const azure_client_t *c, const char *operation, int status)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->ncodes; i++)
        if ((c->codes[i].status == status || (status == 0 && c->codes[i].status < 0)) &&
            strcmp(azure__ops[c->codes[i].op].name, operation) == 0)
            n += c->codes[i].n;
    return n;
}

static void put_label(d8_buf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            d8_buf_putc(out, '\\');
        if (*s == '\n') {
            d8_buf_puts(out, "\\n");
            continue;
        }
        d8_buf_putc(out, *s);
    }
}

static void status_label(int status, char out[16])
{
    if (status > 0)
        snprintf(out, 16, "%d", status);
    else if (status == -2)
        snprintf(out, 16, "timeout");
    else
        snprintf(out, 16, "error");
}

void azure_client_metrics(const azure_client_t *c, d8_buf_t *out)
{
    d8_buf_puts(out, "# HELP dev8_arm_requests_total ARM HTTP attempts by operation and status "
                     "code (timeout/error when no answer arrived).\n"
                     "# TYPE dev8_arm_requests_total counter\n");
    for (size_t i = 0; i < c->ncodes; i++) {
        char code[16];
        status_label(c->codes[i].status, code);
        d8_buf_printf(out, "dev8_arm_requests_total{operation=\"%s\",code=\"%s\"} %llu\n",
                      azure__ops[c->codes[i].op].name, code, (unsigned long long)c->codes[i].n);
    }
    d8_buf_puts(out, "# HELP dev8_arm_request_duration_seconds Duration of ARM HTTP attempts.\n"
                     "# TYPE dev8_arm_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < AZURE_HIST_BUCKETS; i++) {
        cum += c->hist[i];
        d8_buf_printf(out, "dev8_arm_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      azure_hist_bounds[i], (unsigned long long)cum);
    }
    cum += c->hist[AZURE_HIST_BUCKETS];
    d8_buf_printf(out, "dev8_arm_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                  (unsigned long long)cum);
    d8_buf_printf(out, "dev8_arm_request_duration_seconds_sum %.6f\n", c->hist_sum);
    d8_buf_printf(out, "dev8_arm_request_duration_seconds_count %llu\n",
                  (unsigned long long)c->hist_count);
    d8_buf_printf(out,
                  "# HELP dev8_arm_throttle_waits_total Requests held back by a client-side "
                  "throttle bucket or a Retry-After pause.\n"
                  "# TYPE dev8_arm_throttle_waits_total counter\n"
                  "dev8_arm_throttle_waits_total %llu\n",
                  (unsigned long long)c->st_throttle_waits);
    d8_buf_puts(out, "# HELP dev8_arm_bucket_tokens Tokens left in a client-side throttle "
                     "bucket.\n# TYPE dev8_arm_bucket_tokens gauge\n");
    uint64_t now = d8_mono_ms();
    for (d8_list_t *it = c->buckets.next; it != &c->buckets; it = it->next) {
        /* One series per kind and region used; the read/write/delete
         * series of one subscription show its one shared ARM bucket. */
        azure__bucket_entry_t *be = d8_container_of(it, azure__bucket_entry_t, link);
        for (int k = 0; k < AZURE_BUCKET_KINDS; k++) {
            d8_buf_puts(out, "dev8_arm_bucket_tokens{subscription=\"");
            put_label(out, be->subscription);
            d8_buf_puts(out, "\",region=\"");
            put_label(out, be->region);
            d8_buf_printf(out, "\",kind=\"%s\"} %.3f\n", azure__bucket_kind_names[k],
                          azure__bucket_peek(azure__bucket_of(be, k), now));
        }
    }
    d8_buf_printf(out,
                  "# HELP dev8_azure_token_refreshes_total Azure access tokens obtained.\n"
                  "# TYPE dev8_azure_token_refreshes_total counter\n"
                  "dev8_azure_token_refreshes_total %llu\n",
                  (unsigned long long)c->st_token_refreshes);
}
