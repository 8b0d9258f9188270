/*
 * TLS on the API listener (api.tls), against the real agent: certificates
 * are made at test time with the openssl CLI in the test's temporary
 * directory (no private key is committed). HTTPS round trips with libcurl,
 * protocol versions with `openssl s_client`, mutual TLS, certificate
 * rotation by a Kubernetes-style symlink swap without a restart, plain
 * HTTP on the TLS port, and files that do not load at start.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_fixture.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The certificate directory: ca/ (trusted), other-ca/ (not), the server's
 * pairs v1 (serial 1001), v2 (2002) and a broken v3 (certificate of v2,
 * key of another pair), and client pairs. The agent reads tls/tls.crt and
 * tls/tls.key, symlinks through tls/..data as a mounted Secret. */
static char g_dir[512];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs cmd and returns its output (stdout and stderr), malloc'd. */
static char *run_out(const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    pclose(p);
    return buf;
}

#define Q "-subj /CN="
/* A key and a certificate <name>.crt signed by CA <ca> with that serial. */
static int make_pair(const char *name, const char *ca, const char *serial, const char *cn,
                     const char *ext)
{
    return sh("cd '%s' && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
              "-keyout %s.key -out %s.csr " Q "%s >/dev/null 2>&1 && "
              "printf '%s\\n' > %s.ext && "
              "openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -set_serial 0x%s -days 2 "
              "-extfile %s.ext -out %s.crt >/dev/null 2>&1",
              g_dir, name, name, cn, ext, name, name, ca, ca, serial, name, name);
}

static int make_ca(const char *name)
{
    return sh("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
              "-keyout %s.key -out %s.crt -days 2 " Q "%s >/dev/null 2>&1",
              g_dir, name, name, name);
}

/* Points tls/..data at version v (the kubelet's atomic symlink swap). */
static int swap_to(const char *v)
{
    return sh("cd '%s/tls' && ln -sfn ..%s ..data_tmp && mv -T ..data_tmp ..data", g_dir, v);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/tls-certs", th_tmpdir());
    static const char san[] = "subjectAltName=DNS:localhost,IP:127.0.0.1";
    static const char cli[] = "extendedKeyUsage=clientAuth";
    if (sh("mkdir -p '%s/tls'", g_dir) || make_ca("ca") || make_ca("other-ca") ||
        make_pair("v1", "ca", "1001", "localhost", san) ||
        make_pair("v2", "ca", "2002", "localhost", san) ||
        make_pair("client", "ca", "3003", "backend", cli) ||
        make_pair("stranger", "other-ca", "4004", "backend", cli))
        return -1;
    for (int v = 1; v <= 3; v++) {
        const char *crt = v == 1 ? "v1" : "v2";
        const char *key = v == 1 ? "v1" : v == 2 ? "v2" : "v1"; /* v3: mismatched */
        if (sh("cd '%s' && mkdir -p tls/..v%d && cp %s.crt tls/..v%d/tls.crt && "
               "cp %s.key tls/..v%d/tls.key",
               g_dir, v, crt, v, key, v))
            return -1;
    }
    return sh("cd '%s/tls' && ln -sfn ..v1 ..data && ln -sfn ..data/tls.crt tls.crt && "
              "ln -sfn ..data/tls.key tls.key",
              g_dir);
}

/* ---- HTTPS requests with libcurl ---------------------------------------- */

typedef struct hs_resp {
    long status; /* 0: no answer (handshake refused, connection closed) */
    long version;
    char body[262144];
    size_t len;
    char error[CURL_ERROR_SIZE];
} hs_resp_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    hs_resp_t *r = ud;
    size_t take = sz * n;
    if (take > sizeof r->body - 1 - r->len)
        take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, take);
    r->len += take;
    r->body[r->len] = '\0';
    return sz * n;
}

/* client: NULL, or the name of a pair in g_dir presented as client
 * certificate. */
static void https(int port, const char *method, const char *path, const char *body,
                  const char *client, hs_resp_t *r)
{
    char url[256], ca[600], crt[600], key[600];
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", port, path);
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Authorization: Bearer " TA_KEY1);
    hd = curl_slist_append(hd, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (client) {
        snprintf(crt, sizeof crt, "%s/%s.crt", g_dir, client);
        snprintf(key, sizeof key, "%s/%s.key", g_dir, client);
        curl_easy_setopt(h, CURLOPT_SSLCERT, crt);
        curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    }
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &r->version);
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
}

/* `openssl s_client` against the agent with extra flags; its output.
 * Its input ends after wait_s seconds: in TLS 1.3 the server refuses a
 * client certificate after the client considers the handshake done, and
 * a client that closes at once may not read that alert. */
static char *s_client_wait(int port, const char *flags, int wait_s)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "sleep %d | timeout 10 openssl s_client -connect 127.0.0.1:%d -CAfile '%s/ca.crt' %s",
             wait_s, port, g_dir, flags);
    return run_out(cmd);
}

static char *s_client(int port, const char *flags)
{
    return s_client_wait(port, flags, 0);
}

/* The serial number of the certificate the agent presents now. */
static void served_serial(int port, char *out, size_t outlen)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d 2>/dev/null | "
             "openssl x509 -noout -serial",
             port);
    char *s = run_out(cmd);
    const char *eq = strstr(s, "serial=");
    snprintf(out, outlen, "%s", eq ? eq + 7 : "?");
    out[strcspn(out, "\r\n")] = '\0';
    free(s);
}

static int start_tls_agent(ta_agent_t *a, const char *ca)
{
    char api[2048];
    snprintf(api, sizeof api,
             "  tls:\n"
             "    certFile: %s/tls/tls.crt\n"
             "    keyFile: %s/tls/tls.key\n"
             "%s%s%s"
             "    reloadSeconds: 1\n",
             g_dir, g_dir, ca ? "    clientCAFile: " : "", ca ? ca : "", ca ? "\n" : "");
    ta_opts_t o = {.api_yaml = api};
    memset(a, 0, sizeof(*a));
    return ta_start(a, &o);
}

/* The value of the dev8_tls_events_total series of that event. */
static double tls_event(int port, const char *event, const char *client)
{
    hs_resp_t r;
    https(port, "GET", "/metrics", NULL, client, &r);
    char needle[128];
    snprintf(needle, sizeof needle, "dev8_tls_events_total{event=\"%s\"} ", event);
    const char *p = strstr(r.body, needle);
    if (!p)
        print_message("no %s in /metrics (%ld %s):\n%s\n", needle, r.status, r.error, r.body);
    return p ? atof(p + strlen(needle)) : -1;
}

/* Asserts that needle is in text, printing text when not. */
#define assert_has(text, needle)                                                                   \
    do {                                                                                           \
        if (!strstr((text), (needle)))                                                             \
            print_message("wanted \"%s\" in:\n%s\n", (needle), (text));                            \
        assert_non_null(strstr((text), (needle)));                                                 \
    } while (0)

/* ---- tests --------------------------------------------------------------- */

/* curl over HTTPS: PUT then GET of an environment; ALPN gives HTTP/1.1. */
static void test_https_round_trip(void **state)
{
    (void)state;
    ta_agent_t a;
    assert_int_equal(start_tls_agent(&a, NULL), 0);
    hs_resp_t r;
    char *spec = ta_spec("user-1", "tls", "eastus", NULL);
    https(a.port, "PUT", "/api/v1/environments/tls-env", spec, NULL, &r);
    free(spec);
    if (r.status != 201)
        print_message("PUT: %ld %s %s\n", r.status, r.error, r.body);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.version, CURL_HTTP_VERSION_1_1);
    https(a.port, "GET", "/api/v1/environments/tls-env", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_has(r.body, "\"id\":\"tls-env\"");
    /* A pipelined-size answer larger than one TLS record. */
    https(a.port, "GET", "/api/v1/environments", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(tls_event(a.port, "handshake", NULL) >= 3);

    char *log = ta_log(&a);
    assert_null(strstr(log, "PRIVATE KEY"));
    assert_has(log, "TLS certificate loaded");
    free(log);
    assert_int_equal(ta_stop(&a), 0);
}

/* s_client: TLS 1.2 and 1.3 accepted, TLS 1.1 refused (and counted);
 * ALPN h2 alone refused, http/1.1 selected. */
static void test_protocol_versions(void **state)
{
    (void)state;
    ta_agent_t a;
    assert_int_equal(start_tls_agent(&a, NULL), 0);
    char *o = s_client(a.port, "-tls1_2");
    assert_has(o, "New, TLSv1.2, Cipher is");
    assert_has(o, "Verify return code: 0 (ok)");
    free(o);
    o = s_client(a.port, "-tls1_3 -alpn http/1.1");
    assert_has(o, "New, TLSv1.3, Cipher is");
    assert_has(o, "ALPN protocol: http/1.1");
    free(o);
    o = s_client(a.port, "-tls1_1 -cipher DEFAULT@SECLEVEL=0");
    assert_null(strstr(o, "New, TLSv1.1"));
    assert_has(o, "alert protocol version");
    free(o);
    o = s_client(a.port, "-alpn h2");
    assert_has(o, "no application protocol");
    free(o);
    assert_true(tls_event(a.port, "handshake_failed", NULL) >= 2);
    assert_int_equal(ta_stop(&a), 0);
}

/* Plain HTTP on the TLS port: a plain 400 that says so, then close. */
static void test_plain_http_on_tls_port(void **state)
{
    (void)state;
    ta_agent_t a;
    assert_int_equal(start_tls_agent(&a, NULL), 0);
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char *reply = th_raw(a.port, req, sizeof req - 1, 5000);
    assert_has(reply, "HTTP/1.1 400 ");
    assert_has(reply, "PlainHTTPToTLSPort");
    assert_has(reply, "Connection: close");
    free(reply);
    /* Garbage that is neither: closed without an answer, agent fine. */
    static const char junk[] = "\x01\x02\x03\x04garbage\r\n\r\n";
    reply = th_raw(a.port, junk, sizeof junk - 1, 5000);
    assert_null(strstr(reply, "HTTP/1.1"));
    free(reply);
    assert_true(tls_event(a.port, "plain_http", NULL) >= 1);
    hs_resp_t r;
    https(a.port, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(ta_stop(&a), 0);
}

/* Mutual TLS: no client certificate and one of another CA are refused;
 * the right one is served. */
static void test_mutual_tls(void **state)
{
    (void)state;
    char ca[600];
    snprintf(ca, sizeof ca, "%s/ca.crt", g_dir);
    ta_agent_t a;
    assert_int_equal(start_tls_agent(&a, ca), 0);
    hs_resp_t r;
    https(a.port, "GET", "/api/v1/environments", NULL, NULL, &r);
    assert_int_equal(r.status, 0);
    https(a.port, "GET", "/api/v1/environments", NULL, "stranger", &r);
    assert_int_equal(r.status, 0);
    https(a.port, "GET", "/api/v1/environments", NULL, "client", &r);
    if (r.status != 200)
        print_message("with the right client certificate: %ld %s\n", r.status, r.error);
    assert_int_equal(r.status, 200);
    /* What a client without a certificate hears, in either version. */
    char *o = s_client(a.port, "-tls1_2");
    assert_has(o, "alert handshake failure");
    free(o);
    o = s_client_wait(a.port, "-tls1_3", 2);
    assert_has(o, "alert certificate required");
    free(o);
    assert_true(tls_event(a.port, "handshake_failed", "client") >= 4);
    char *log = ta_log(&a);
    assert_has(log, "peer did not return a certificate");
    assert_has(log, "certificate verify failed");
    free(log);
    assert_int_equal(ta_stop(&a), 0);
}

static int wait_serial(int port, const char *want, int timeout_ms)
{
    char got[64] = "";
    long long end = ta_now_ms() + timeout_ms;
    while (ta_now_ms() < end) {
        served_serial(port, got, sizeof got);
        if (strcmp(got, want) == 0)
            return 0;
        ta_sleep_ms(200);
    }
    print_message("serial %s, wanted %s\n", got, want);
    return -1;
}

/* Rotation as cert-manager and the kubelet do it: the ..data symlink swaps
 * to a new pair; new connections get it without a restart. A broken pair
 * keeps the old one and says why. */
static void test_rotation(void **state)
{
    (void)state;
    assert_int_equal(swap_to("v1"), 0);
    ta_agent_t a;
    assert_int_equal(start_tls_agent(&a, NULL), 0);
    assert_int_equal(wait_serial(a.port, "1001", 3000), 0);
    pid_t pid = a.proc.pid;

    assert_int_equal(swap_to("v2"), 0);
    assert_int_equal(wait_serial(a.port, "2002", 8000), 0);
    hs_resp_t r;
    https(a.port, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);

    assert_int_equal(swap_to("v3"), 0); /* certificate and key do not match */
    long long end = ta_now_ms() + 8000;
    char *log = NULL;
    while (ta_now_ms() < end) {
        free(log);
        log = ta_log(&a);
        if (strstr(log, "do not load; keeping the old ones"))
            break;
        ta_sleep_ms(200);
    }
    assert_has(log, "do not load; keeping the old ones");
    assert_has(log, "key values mismatch");
    assert_null(strstr(log, "PRIVATE KEY"));
    free(log);
    assert_int_equal(wait_serial(a.port, "2002", 1000), 0);
    https(a.port, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(tls_event(a.port, "reload", NULL) >= 1);
    assert_true(tls_event(a.port, "reload_failed", NULL) >= 1);

    assert_int_equal(swap_to("v1"), 0); /* and back: the fix is picked up */
    assert_int_equal(wait_serial(a.port, "1001", 8000), 0);
    assert_int_equal(a.proc.pid, pid);
    assert_true(th_alive(&a.proc));
    assert_int_equal(ta_stop(&a), 0);
}

/* Runs the agent on a config whose api section is `api`; its exit status
 * and output in *out. */
static int agent_with_api(const char *api, char **out)
{
    char yaml[4096], cmd[4096];
    snprintf(
        yaml, sizeof yaml,
        "controller:\n  listen: 127.0.0.1:%d\n"
        "api:\n%s"
        "azure:\n  subscriptionId: \"" TA_AZ_SUB "\"\n"
        "  armEndpoint: http://127.0.0.1:9\n  authorityHost: http://127.0.0.1:9\n"
        "  imdsEndpoint: http://127.0.0.1:9\n"
        "  regions:\n    - name: eastus\n      resourceGroup: rg\n      storageAccount: satls\n",
        th_free_port(), api);
    char *path = th_write_file("tls-bad.yaml", yaml);
    char *bin = th_bin("dev8-agent");
    snprintf(cmd, sizeof cmd,
             "AGENT_API_KEYS=k timeout 20 '%s' --config '%s' > '%s.out' 2>&1; echo \"rc=$?\"", bin,
             path, path);
    char *rc = run_out(cmd);
    snprintf(cmd, sizeof cmd, "cat '%s.out'", path);
    *out = run_out(cmd);
    int status = strstr(rc, "rc=0") ? 0 : 1;
    free(rc);
    free(bin);
    free(path);
    return status;
}

/* Files that do not load stop the agent at start with the key's position
 * and OpenSSL's reason; a half-configured section is a config error. */
static void test_bad_files_at_start(void **state)
{
    (void)state;
    char api[2048], *out = NULL;
    snprintf(api, sizeof api, "  tls:\n    certFile: %s/v1.crt\n    keyFile: %s/missing.key\n",
             g_dir, g_dir);
    assert_int_equal(agent_with_api(api, &out), 1);
    assert_has(out, "tls-bad.yaml:6:5: api.tls.keyFile: ");
    assert_has(out, "No such file or directory");
    free(out);

    snprintf(api, sizeof api, "  tls:\n    certFile: %s/v1.key\n    keyFile: %s/v1.key\n", g_dir,
             g_dir);
    assert_int_equal(agent_with_api(api, &out), 1);
    assert_has(out, "tls-bad.yaml:5:5: api.tls.certFile: ");
    assert_has(out, "no start line");
    assert_null(strstr(out, "PRIVATE KEY"));
    free(out);

    snprintf(api, sizeof api, "  tls:\n    certFile: %s/v1.crt\n    keyFile: %s/v2.key\n", g_dir,
             g_dir);
    assert_int_equal(agent_with_api(api, &out), 1);
    assert_has(out, "api.tls.keyFile: the private key does not match");
    free(out);

    snprintf(api, sizeof api,
             "  tls:\n    certFile: %s/v1.crt\n    keyFile: %s/v1.key\n"
             "    clientCAFile: %s/v1.key\n",
             g_dir, g_dir, g_dir);
    assert_int_equal(agent_with_api(api, &out), 1);
    assert_has(out, "tls-bad.yaml:7:5: api.tls.clientCAFile: ");
    free(out);

    snprintf(api, sizeof api, "  tls:\n    certFile: %s/v1.crt\n", g_dir);
    assert_int_equal(agent_with_api(api, &out), 1);
    assert_has(out, "api.tls.keyFile: must be set when certFile is");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_round_trip),
        cmocka_unit_test(test_protocol_versions),
        cmocka_unit_test(test_plain_http_on_tls_port),
        cmocka_unit_test(test_mutual_tls),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_bad_files_at_start),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
