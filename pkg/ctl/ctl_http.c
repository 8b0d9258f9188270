/*
 * dev8ctl's HTTP client: libcurl's easy interface, one blocking request at
 * a time. That is right for a command line (it has nothing else to do
 * while it waits); the agent itself never blocks and uses curl multi.
 */
#include "ctl/ctl_int.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

volatile int ctl__stop;

int ctl__fail(ctl_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(c->err_color ? "\033[31merror:\033[0m " : "error: ", c->e);
    vfprintf(c->e, fmt, ap);
    fputc('\n', c->e);
    va_end(ap);
    return CTL_EXIT_ERROR;
}

int ctl__usage(ctl_t *c, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(c->err_color ? "\033[31merror:\033[0m " : "error: ", c->e);
    vfprintf(c->e, fmt, ap);
    fprintf(c->e, " (see 'dev8ctl %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
    va_end(ap);
    return CTL_EXIT_USAGE;
}

void ctl__sleep_ms(ctl_t *c, int ms)
{
    (void)c;
    while (ms > 0 && !ctl__stop) {
        int step = ms > 100 ? 100 : ms;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

int ctl__resolve(ctl_t *c)
{
    if (c->resolved)
        return 0;
    char err[1024];
    if (ctl_config_resolve(c->a.config, c->a.context, c->a.server, &c->target, err, sizeof err) <
        0) {
        ctl__fail(c, "%s", err);
        return -1;
    }
    c->resolved = 1;
    return 0;
}

void ctl__url_escape(d8_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            d8_buf_putc(b, (char)*p);
        } else {
            d8_buf_putc(b, '%');
            d8_buf_putc(b, hex[*p >> 4]);
            d8_buf_putc(b, hex[*p & 15]);
        }
    }
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    d8_buf_append(ud, data, size * n);
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    ctl_resp_t *r = ud;
    size_t len = size * n;
    if (len > 13 && strncasecmp(data, "Content-Type:", 13) == 0) {
        size_t i = 13;
        while (i < len && data[i] == ' ')
            i++;
        size_t m = len - i;
        while (m > 0 && (data[i + m - 1] == '\r' || data[i + m - 1] == '\n'))
            m--;
        if (m >= sizeof r->ctype)
            m = sizeof r->ctype - 1;
        memcpy(r->ctype, data + i, m);
        r->ctype[m] = 0;
    }
    return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    (void)ud, (void)a, (void)b, (void)c2, (void)d;
    return ctl__stop ? 1 : 0;
}

/* A configured easy handle for path (headers into *hdrs, freed by the
 * caller with curl_slist_free_all). */
static CURL *new_easy(ctl_t *c, const char *method, const char *path, const char *body,
                      struct curl_slist **hdrs)
{
    CURL *h = curl_easy_init();
    if (!h)
        d8_die("curl_easy_init");
    d8_buf_t url;
    d8_buf_init(&url);
    d8_buf_printf(&url, "%s%s", c->target.server, path);
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    d8_buf_release(&url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "dev8ctl/" D8_VERSION);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    *hdrs = NULL;
    if (c->target.key) {
        d8_buf_t a;
        d8_buf_init(&a);
        d8_buf_printf(&a, "Authorization: Bearer %s", c->target.key);
        *hdrs = curl_slist_append(*hdrs, a.data);
        memset(a.data, 0, a.len);
        d8_buf_release(&a);
    }
    if (body) {
        *hdrs = curl_slist_append(*hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    return h;
}

void ctl__resp_release(ctl_resp_t *r)
{
    d8_buf_release(&r->body);
    r->status = 0;
}

int ctl__request(ctl_t *c, const char *method, const char *path, const char *body, ctl_resp_t *r)
{
    memset(r, 0, sizeof *r);
    d8_buf_init(&r->body);
    if (ctl__resolve(c) < 0)
        return -1;
    struct curl_slist *hdrs;
    CURL *h = new_easy(c, method, path, body, &hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (cc != CURLE_OK) {
        if (cc == CURLE_ABORTED_BY_CALLBACK)
            ctl__fail(c, "interrupted");
        else
            ctl__fail(c, "cannot reach the server %s: %s", c->target.server,
                      curl_easy_strerror(cc));
        return -1;
    }
    return 0;
}

int ctl__api_error(ctl_t *c, const ctl_resp_t *r, const char *what)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
    const char *field = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "field"));
    const char *pre = what ? what : "", *sep = what ? ": " : "";
    if (code && msg && field && field[0])
        ctl__fail(c, "%s%s%s: %s (field %s)", pre, sep, code, msg, field);
    else if (code && msg)
        ctl__fail(c, "%s%s%s: %s", pre, sep, code, msg);
    else
        ctl__fail(c, "%s%sthe server answered HTTP %ld", pre, sep, r->status);
    cJSON_Delete(j);
    return CTL_EXIT_ERROR;
}

cJSON *ctl__json(ctl_t *c, const ctl_resp_t *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
    if (!j)
        ctl__fail(c, "the server's answer (HTTP %ld) is not JSON", r->status);
    return j;
}

cJSON *ctl__get_json(ctl_t *c, const char *path, int *rc)
{
    ctl_resp_t r;
    *rc = CTL_EXIT_ERROR;
    if (ctl__request(c, "GET", path, NULL, &r) < 0) {
        ctl__resp_release(&r);
        return NULL;
    }
    cJSON *j = NULL;
    if (r.status != 200)
        ctl__api_error(c, &r, NULL);
    else
        j = ctl__json(c, &r);
    ctl__resp_release(&r);
    return j;
}

cJSON *ctl__get_for_table(ctl_t *c, const char *path, int *rc)
{
    cJSON *j = ctl__get_json(c, path, rc);
    if (j && (c->out == OUT_JSON || c->out == OUT_YAML)) {
        ctl__print_value(c, j);
        cJSON_Delete(j);
        *rc = 0;
        return NULL;
    }
    return j;
}

/* ---- Server-Sent Events ------------------------------------------------ */

typedef struct sse {
    d8_buf_t line, data;
    char type[64], id[64];
    char *last_id; /* the caller's buffer (64 bytes) */
    ctl_sse_fn fn;
    void *ud;
    int rc;
    long status;
    d8_buf_t *errbody;
    CURL *h;
} sse_t;

/* One complete line of the stream ("" ends an event). */
static void sse_line(sse_t *s, const char *l)
{
    if (!l[0]) {
        if (s->data.len || s->type[0]) {
            if (s->id[0])
                snprintf(s->last_id, 64, "%s", s->id);
            if (s->rc == 0)
                s->rc = s->fn(s->type[0] ? s->type : "message", s->id,
                              s->data.data ? s->data.data : "", s->ud);
        }
        d8_buf_reset(&s->data);
        s->type[0] = s->id[0] = 0;
    } else if (strncmp(l, "data:", 5) == 0) {
        const char *v = l + 5 + (l[5] == ' ');
        if (s->data.len)
            d8_buf_putc(&s->data, '\n');
        d8_buf_puts(&s->data, v);
    } else if (strncmp(l, "event:", 6) == 0) {
        snprintf(s->type, sizeof s->type, "%s", l + 6 + (l[6] == ' '));
    } else if (strncmp(l, "id:", 3) == 0) {
        snprintf(s->id, sizeof s->id, "%s", l + 3 + (l[3] == ' '));
    }
}

/* curl's write callback for a stream: a non-200 answer is kept as the
 * error body; otherwise the bytes are cut into lines for sse_line. */
static size_t on_sse(char *data, size_t size, size_t n, void *ud)
{
    sse_t *s = ud;
    size_t len = size * n;
    if (s->status == 0)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200) {
        if (s->errbody->len < 65536)
            d8_buf_append(s->errbody, data, len);
        return len;
    }
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            if (s->line.len && s->line.data[s->line.len - 1] == '\r')
                s->line.data[--s->line.len] = 0;
            sse_line(s, s->line.data ? s->line.data : "");
            d8_buf_reset(&s->line);
        } else if (s->line.len < (1u << 24)) {
            d8_buf_putc(&s->line, data[i]);
        }
    }
    return s->rc ? 0 : len;
}

int ctl__sse(ctl_t *c, const char *path, char last_id[64], ctl_sse_fn on_event, void *ud,
             long *status, d8_buf_t *errbody)
{
    sse_t s = {.fn = on_event, .ud = ud, .errbody = errbody, .last_id = last_id};
    d8_buf_init(&s.line);
    d8_buf_init(&s.data);
    struct curl_slist *hdrs;
    CURL *h = new_easy(c, "GET", path, NULL, &hdrs);
    s.h = h;
    if (last_id && last_id[0]) {
        char hv[96];
        snprintf(hv, sizeof hv, "Last-Event-ID: %s", last_id);
        hdrs = curl_slist_append(hdrs, hv);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    }
    /* The server sends a heartbeat every 15 s: 45 s of silence is a dead
     * connection, not a quiet one. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 45L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(h);
    if (s.status == 0)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    d8_buf_release(&s.line);
    d8_buf_release(&s.data);
    *status = s.status;
    if (s.rc)
        return s.rc;
    if (cc != CURLE_OK && !ctl__stop && s.status == 0)
        return -1; /* no answer: the caller decides whether to retry */
    return 0;
}
