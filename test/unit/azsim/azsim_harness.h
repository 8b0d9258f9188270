/*
 * The harness the azsim unit tests share: an in-process simulator on a
 * fake clock (g_now, starting at AZSIM_HARNESS_T0 ms, which a test may
 * define before including this), one request at a time through
 * azsim_handle with a bearer token from the simulator itself, and the
 * JSON helpers that read the answer. Include after cmocka.h.
 */
#ifndef D8_TEST_AZSIM_HARNESS_H
#define D8_TEST_AZSIM_HARNESS_H

#include "azsim/azsim.h"
#include "base/base.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ARM paths of the default subscription/rg1/dev8eastus, unless the test
 * defined its own SUB first. */
#ifndef SUB
#define SUB "00000000-0000-0000-0000-000000000000"
#define RG_PATH "/subscriptions/" SUB "/resourceGroups/rg1"
#define CG_PATH RG_PATH "/providers/Microsoft.ContainerInstance/containerGroups"
#define ACI_V "?api-version=2025-09-01"
#define SA_PATH RG_PATH "/providers/Microsoft.Storage/storageAccounts/dev8eastus"
#define SA_ID                                                                                      \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Storage/"                       \
    "storageAccounts/dev8eastus"
#define FS_PATH SA_PATH "/fileServices/default/shares"
#define FS_V "?api-version=2025-01-01"
#endif

#ifndef AZSIM_HARNESS_T0
#define AZSIM_HARNESS_T0 1000000
#endif

static uint64_t g_now = AZSIM_HARNESS_T0;

static inline uint64_t fake_clock(void *ud)
{
    (void)ud;
    return g_now;
}

static inline void advance(uint64_t ms)
{
    g_now += ms;
}

typedef struct fx {
    azsim_t *sim;
    char token[2048];
    const char *host; /* the Host header sent */
    azsim_resp_t r;   /* the last answer */
    cJSON *j;         /* its body, parsed */
} fx_t;

static inline void clear_last(fx_t *f)
{
    azsim_resp_release(&f->r);
    azsim_resp_init(&f->r);
    cJSON_Delete(f->j);
    f->j = NULL;
}

/*
 * One request: target is "path?query" (or an absolute http:// URL from a
 * nextLink); extra is one more "name: value" header or NULL. Returns the
 * status; the answer stays in f->r and f->j.
 */
static inline int req_h(fx_t *f, const char *method, const char *target, const char *body,
                        const char *extra_name, const char *extra_value)
{
    clear_last(f);
    if (strncmp(target, "http://", 7) == 0)
        target = strchr(target + 7, '/');
    char *t = d8_xstrdup(target);
    char *qm = strchr(t, '?');
    if (qm)
        *qm = '\0';
    char auth[2100];
    snprintf(auth, sizeof(auth), "Bearer %s", f->token);
    http_header_t h[4];
    size_t nh = 0;
    h[nh++] = (http_header_t){"host", f->host};
    if (f->token[0])
        h[nh++] = (http_header_t){"authorization", auth};
    if (body)
        h[nh++] = (http_header_t){"content-type", "application/json"};
    if (extra_name)
        h[nh++] = (http_header_t){extra_name, extra_value};
    http_request_t rq;
    memset(&rq, 0, sizeof(rq));
    rq.method = method;
    rq.target = target;
    rq.path = t;
    rq.query = qm ? qm + 1 : "";
    rq.headers = h;
    rq.nheaders = nh;
    rq.body = body ? body : "";
    rq.body_len = body ? strlen(body) : 0;
    rq.request_id = "test";
    rq.start_ns = d8_mono_ns();
    azsim_handle(f->sim, &rq, &f->r);
    if (f->r.body.len)
        f->j = cJSON_Parse(f->r.body.data);
    free(t);
    return f->r.status;
}

static inline int req(fx_t *f, const char *method, const char *target, const char *body)
{
    return req_h(f, method, target, body, NULL, NULL);
}

/* "a.b.0.c": through objects and array indexes; NULL when missing. */
static inline const cJSON *at(const cJSON *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (*tok >= '0' && *tok <= '9') ? cJSON_GetArrayItem(cur, atoi(tok))
                                           : cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cur;
}

static inline const char *jstr(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static inline double jnum(const cJSON *j, const char *path)
{
    const cJSON *v = at(j, path);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static inline const char *err_code(const fx_t *f)
{
    const char *c = jstr(f->j, "error.code");
    return c ? c : "";
}

static inline const char *err_msg(const fx_t *f)
{
    const char *c = jstr(f->j, "error.message");
    return c ? c : "";
}

/* A fresh token for ARM's public scope (the request goes without one). */
static inline void get_token(fx_t *f)
{
    f->token[0] = '\0';
    assert_int_equal(req(f, "POST", "/tenant1/oauth2/v2.0/token",
                         "grant_type=client_credentials&client_id=app1&client_secret=s3cret&"
                         "scope=https%3A%2F%2Fmanagement.azure.com%2F.default"),
                     200);
    const char *t = jstr(f->j, "access_token");
    assert_non_null(t);
    snprintf(f->token, sizeof(f->token), "%s", t);
}

/* A simulator with opts o (borrowed) and a token for ARM's public scope. */
static inline fx_t *fx_new(const azsim_opts_t *o)
{
    fx_t *f = d8_xcalloc(1, sizeof(*f));
    f->sim = azsim_new(o);
    f->host = "azsim.test";
    azsim_resp_init(&f->r);
    get_token(f);
    return f;
}

/* The default simulator on the fake clock, without throttling. */
static inline fx_t *fx_default(void)
{
    azsim_opts_t o;
    azsim_opts_init(&o);
    o.clock = fake_clock;
    o.throttle = 0;
    fx_t *f = fx_new(&o);
    azsim_opts_release(&o);
    return f;
}

static inline void fx_free(fx_t *f)
{
    clear_last(f);
    azsim_resp_release(&f->r);
    azsim_free(f->sim);
    free(f);
}

/* POST of a control path with json; must be accepted (200). */
static inline void ctl(fx_t *f, const char *path, const char *json)
{
    if (req(f, "POST", path, json) != 200)
        fail_msg("POST %s %s answered %d: %s", path, json, f->r.status, f->r.body.data);
}

/* Writes text to a new temporary file (mkstemp) and returns its path, which
 * the caller unlinks and frees. */
static inline char *write_tmp(const char *text)
{
    char *path = d8_xstrdup("/tmp/azsim-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

#endif
