/*
 * pkg/azsim: access tokens. The Entra ID token endpoint (client
 * credentials with a client secret, or a client assertion as workload
 * identity sends it), the IMDS token endpoint of managed identity, and
 * the Bearer check of every ARM call.
 *
 * Tokens are JWT-shaped (header.payload.signature, HS256 under a key
 * derived from the seed), so clients that peek at "exp" find it; the
 * emulator needs no state to check them.
 */
#include "azsim_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define IMDS_DEFAULT_CLIENT "6a8f6d1e-5b1c-4a4e-9d1e-0000000a2b51"

/* ---- tokens ------------------------------------------------------------- */

static void sign(const azsim_t *sim, const char *data, size_t n, d8_buf_t *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), sim->token_key, sizeof(sim->token_key), (const unsigned char *)data, n, mac,
         &len);
    azsim__b64(out, mac, len, 1);
}

/* A signed token for app (client id) in tenant, audience aud. Owned. */
static char *mint(azsim__rq_t *q, const char *tenant, const char *app, const char *aud,
                  int64_t exp_s)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"azsim\"}";
    int64_t now_s = q->wall / 1000;
    char oid[37];
    azsim__uuid(q->sim, oid);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "aud", aud);
    char iss[200];
    snprintf(iss, sizeof(iss), "https://sts.windows.net/%s/", tenant);
    cJSON_AddStringToObject(p, "iss", iss);
    cJSON_AddNumberToObject(p, "iat", (double)now_s);
    cJSON_AddNumberToObject(p, "nbf", (double)now_s);
    cJSON_AddNumberToObject(p, "exp", (double)exp_s);
    cJSON_AddStringToObject(p, "appid", app);
    cJSON_AddStringToObject(p, "idtyp", "app");
    cJSON_AddStringToObject(p, "oid", oid);
    cJSON_AddStringToObject(p, "sub", oid);
    cJSON_AddStringToObject(p, "tid", tenant);
    cJSON_AddStringToObject(p, "ver", "1.0");
    char *payload = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    d8_buf_t t;
    d8_buf_init(&t);
    azsim__b64(&t, (const unsigned char *)header, strlen(header), 1);
    d8_buf_putc(&t, '.');
    azsim__b64(&t, (const unsigned char *)payload, strlen(payload), 1);
    free(payload);
    d8_buf_t sig;
    d8_buf_init(&sig);
    sign(q->sim, t.data, t.len, &sig);
    d8_buf_putc(&t, '.');
    d8_buf_append(&t, sig.data, sig.len);
    d8_buf_release(&sig);
    return d8_buf_detach(&t, NULL);
}

/* Decodes the payload of a three-part JWT; NULL when malformed. */
static cJSON *jwt_payload(const char *tok)
{
    const char *d1 = strchr(tok, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || d1 == tok || d2 == d1 + 1 || strchr(d2 + 1, '.') || !d2[1])
        return NULL;
    d8_buf_t b;
    d8_buf_init(&b);
    cJSON *j = NULL;
    if (azsim__b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &b) == 0)
        j = cJSON_ParseWithLength(b.data, b.len);
    d8_buf_release(&b);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

static void unauthorized(azsim__rq_t *q, const char *code, const char *desc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void unauthorized(azsim__rq_t *q, const char *code, const char *desc, const char *fmt, ...)
{
    d8_buf_t msg;
    d8_buf_init(&msg);
    va_list ap;
    va_start(ap, fmt);
    d8_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    azsim__header(q->resp, "WWW-Authenticate",
                  "Bearer authorization_uri=\"%s/common\", "
                  "error=\"invalid_token\", error_description=\"%s\"",
                  azsim__cloud_authority(q->sim), desc);
    azsim__arm_error(q->resp, 401, code, "%s", msg.data);
    d8_buf_release(&msg);
}

int azsim__check_bearer(azsim__rq_t *q)
{
    const char *h = http_request_header(q->req, "authorization");
    if (!h) {
        unauthorized(q, "AuthenticationFailed",
                     "The authentication failed because of missing "
                     "'Authorization' header.",
                     "Authentication failed. The 'Authorization' header is missing.");
        return 0;
    }
    if (!azsim__istarts(h, "Bearer ") || !h[7]) {
        unauthorized(q, "InvalidAuthenticationToken", "The access token is invalid.",
                     "Authentication failed. The 'Authorization' header is provided in an "
                     "invalid format.");
        return 0;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    azsim_t *sim = q->sim;
    if (sim->tok_last && q->wall < sim->tok_last_exp_ms &&
        d8_consttime_eq(sim->tok_last, strlen(sim->tok_last), tok, strlen(tok))) {
        snprintf(q->client_app, sizeof(q->client_app), "%s", sim->tok_last_app);
        snprintf(q->client_tenant, sizeof(q->client_tenant), "%s", sim->tok_last_tenant);
        return 1;
    }
    const char *last = strrchr(tok, '.');
    cJSON *p = jwt_payload(tok);
    int ok = 0;
    if (p && last) {
        d8_buf_t sig;
        d8_buf_init(&sig);
        sign(q->sim, tok, (size_t)(last - tok), &sig);
        ok = d8_consttime_eq(sig.data, sig.len, last + 1, strlen(last + 1));
        d8_buf_release(&sig);
    }
    const cJSON *exp = cJSON_GetObjectItem(p, "exp");
    if (!ok || !cJSON_IsNumber(exp)) {
        cJSON_Delete(p);
        unauthorized(q, "InvalidAuthenticationToken", "The access token is invalid.",
                     "The access token is invalid.");
        return 0;
    }
    int64_t exp_ms = (int64_t)exp->valuedouble * 1000;
    if (q->wall >= exp_ms) {
        char a[32], b[32];
        d8_rfc3339(exp_ms, a);
        d8_rfc3339(q->wall, b);
        cJSON_Delete(p);
        unauthorized(q, "ExpiredAuthenticationToken", "The access token has expired.",
                     "The access token expiry UTC time '%s' is earlier than current UTC time "
                     "'%s'.",
                     a, b);
        return 0;
    }
    const cJSON *app = cJSON_GetObjectItem(p, "appid");
    if (cJSON_IsString(app))
        snprintf(q->client_app, sizeof(q->client_app), "%s", app->valuestring);
    const cJSON *tid = cJSON_GetObjectItem(p, "tid");
    if (cJSON_IsString(tid))
        snprintf(q->client_tenant, sizeof(q->client_tenant), "%s", tid->valuestring);
    cJSON_Delete(p);
    free(sim->tok_last);
    sim->tok_last = d8_xstrdup(tok);
    sim->tok_last_exp_ms = exp_ms;
    snprintf(sim->tok_last_app, sizeof(sim->tok_last_app), "%s", q->client_app);
    snprintf(sim->tok_last_tenant, sizeof(sim->tok_last_tenant), "%s", q->client_tenant);
    return 1;
}

/* ---- Entra ID ----------------------------------------------------------- */

/* An Entra ID error answer (OAuth 2.0 shape plus AADSTS details). */
static void aad_error(azsim__rq_t *q, int status, const char *error, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void aad_error(azsim__rq_t *q, int status, const char *error, int code, const char *fmt, ...)
{
    d8_buf_t msg;
    d8_buf_init(&msg);
    va_list ap;
    va_start(ap, fmt);
    d8_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    char trace[37], ts[32];
    azsim__uuid(q->sim, trace);
    d8_rfc3339(q->wall, ts);
    d8_buf_t desc;
    d8_buf_init(&desc);
    d8_buf_printf(&desc, "AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code,
                  msg.data, trace, trace, ts);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", error);
    cJSON_AddStringToObject(j, "error_description", desc.data);
    cJSON *codes = cJSON_AddArrayToObject(j, "error_codes");
    cJSON_AddItemToArray(codes, cJSON_CreateNumber(code));
    cJSON_AddStringToObject(j, "timestamp", ts);
    cJSON_AddStringToObject(j, "trace_id", trace);
    cJSON_AddStringToObject(j, "correlation_id", trace);
    azsim__json_body(q->resp, status, j);
    cJSON_Delete(j);
    d8_buf_release(&desc);
    d8_buf_release(&msg);
}

static const azsim_client_t *find_client(const azsim_t *sim, const char *tenant, const char *id)
{
    for (size_t i = 0; i < sim->o.nclients; i++) {
        const azsim_client_t *c = &sim->o.clients[i];
        if (c->client_id && azsim__ieq(c->client_id, id) &&
            (!c->tenant_id || azsim__ieq(c->tenant_id, tenant)))
            return c;
    }
    return NULL;
}

/* Reads form parameter name; "" when absent. 0, or -1 (answered 400). */
static int form(azsim__rq_t *q, const char *name, char *out, size_t outlen)
{
    int n = azsim__param(q->req->body, name, out, outlen);
    if (n == -2) {
        aad_error(q, 400, "invalid_request", 900144,
                  "The request body parameter '%s' is malformed or too long.", name);
        return -1;
    }
    if (n < 0)
        out[0] = '\0';
    return 0;
}

#define ASSERTION_MAX 16384

/* The form of a token request. secret and assertion are credentials:
 * the caller wipes them once the request is answered. */
typedef struct token_form {
    char grant[64], client_id[128], scope[512], secret[512], atype[128];
    char *assertion; /* owned, ASSERTION_MAX bytes */
} token_form_t;

/* Reads every parameter of the form; 0, or -1 (answered 400). */
static int read_token_form(azsim__rq_t *q, token_form_t *f)
{
    if (form(q, "grant_type", f->grant, sizeof(f->grant)) ||
        form(q, "client_id", f->client_id, sizeof(f->client_id)) ||
        form(q, "scope", f->scope, sizeof(f->scope)) ||
        form(q, "client_secret", f->secret, sizeof(f->secret)) ||
        form(q, "client_assertion_type", f->atype, sizeof(f->atype)) ||
        form(q, "client_assertion", f->assertion, ASSERTION_MAX))
        return -1;
    return 0;
}

/*
 * The parts of a client credentials request that do not depend on the
 * client: the grant type, a client id, one scope ending in /.default.
 * Returns 1, or answers 400 and returns 0.
 */
static int check_token_request(azsim__rq_t *q, const token_form_t *f)
{
    if (!f->grant[0]) {
        aad_error(q, 400, "invalid_request", 900144,
                  "The request body must contain the following parameter: 'grant_type'.");
        return 0;
    }
    if (strcmp(f->grant, "client_credentials") != 0) {
        aad_error(q, 400, "unsupported_grant_type", 70003,
                  "The app requested an unsupported grant type '%s'.", f->grant);
        return 0;
    }
    if (!f->client_id[0]) {
        aad_error(q, 400, "invalid_request", 900144,
                  "The request body must contain the following parameter: 'client_id'.");
        return 0;
    }
    if (!f->scope[0]) {
        aad_error(q, 400, "invalid_request", 900144,
                  "The request body must contain the following parameter: 'scope'.");
        return 0;
    }
    size_t sl = strlen(f->scope);
    if (strchr(f->scope, ' ') || sl <= 9 || strcmp(f->scope + sl - 9, "/.default") != 0) {
        aad_error(q, 400, "invalid_scope", 1002012,
                  "The provided value for scope %s is not valid. Client credential flows must "
                  "have a scope value with /.default suffixed to the resource identifier "
                  "(application ID URI).",
                  f->scope);
        return 0;
    }
    return 1;
}

/*
 * A client assertion: the JWT bearer type, a JWT not yet expired, and a
 * configured client c (NULL: any) that accepts federated credentials.
 * Returns 1, or answers 400 and returns 0.
 */
static int check_assertion(azsim__rq_t *q, const azsim_client_t *c, const token_form_t *f)
{
    if (strcmp(f->atype, JWT_BEARER) != 0) {
        aad_error(q, 400, "invalid_request", 90014,
                  "The request body must contain 'client_assertion_type' with the value "
                  "'" JWT_BEARER "'.");
        return 0;
    }
    cJSON *p = jwt_payload(f->assertion);
    const cJSON *exp = cJSON_GetObjectItem(p, "exp");
    int bad = !p, expired = cJSON_IsNumber(exp) && (int64_t)exp->valuedouble * 1000 <= q->wall;
    cJSON_Delete(p);
    if (bad) {
        aad_error(q, 400, "invalid_client", 50027, "JWT token is invalid or malformed.");
        return 0;
    }
    if (expired) {
        aad_error(q, 400, "invalid_client", 700024,
                  "Client assertion is not within its valid time range.");
        return 0;
    }
    if (c && !c->federated) {
        aad_error(q, 400, "invalid_client", 70021,
                  "No matching federated identity record found for presented assertion.");
        return 0;
    }
    return 1;
}

/* A client secret: the one of the configured client c (NULL: any secret).
 * Returns 1, or answers 401 and returns 0. */
static int check_secret(azsim__rq_t *q, const azsim_client_t *c, const token_form_t *f)
{
    if (c && (!c->client_secret || !d8_consttime_eq(c->client_secret, strlen(c->client_secret),
                                                    f->secret, strlen(f->secret)))) {
        aad_error(q, 401, "invalid_client", 7000215,
                  "Invalid client secret provided. Ensure the secret being sent in the request "
                  "is the client secret value, not the client secret ID, for a secret added to "
                  "app '%s'.",
                  f->client_id);
        return 0;
    }
    return 1;
}

/*
 * The scope's resource must exist in the emulated cloud: Entra ID answers
 * another cloud's Resource Manager (or any unknown resource) with
 * AADSTS500011 invalid_resource. Returns 1, or answers 400 and returns 0.
 */
static int check_resource(azsim__rq_t *q, const char *tenant, const token_form_t *f)
{
    char res[sizeof(f->scope)];
    size_t n = strlen(f->scope) - 9; /* check_token_request saw the "/.default" */
    memcpy(res, f->scope, n);
    res[n] = '\0';
    if (azsim__cloud_resource_ok(q->sim, res))
        return 1;
    aad_error(q, 400, "invalid_resource", 500011,
              "The resource principal named %s was not found in the tenant named %s. This can "
              "happen if the application has not been installed by the administrator of the "
              "tenant or consented to by any user in the tenant. You might have sent your "
              "authentication request to the wrong tenant.",
              res, tenant);
    return 0;
}

/* Answers 200 with a token for the client of f, its audience the resource
 * of the scope; scope loses its "/.default" suffix. */
static void answer_token(azsim__rq_t *q, const char *tenant, token_form_t *f)
{
    f->scope[strlen(f->scope) - 9] = '\0'; /* the resource: scope without "/.default" */
    int ttl = q->sim->o.token_ttl_s;
    char *tok = mint(q, tenant, f->client_id, f->scope, q->wall / 1000 + ttl);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "token_type", "Bearer");
    cJSON_AddNumberToObject(j, "expires_in", ttl);
    cJSON_AddNumberToObject(j, "ext_expires_in", ttl);
    cJSON_AddStringToObject(j, "access_token", tok);
    azsim__json_body(q->resp, 200, j);
    azsim__header(q->resp, "Cache-Control", "no-store, no-cache");
    azsim__header(q->resp, "Pragma", "no-cache");
    cJSON_Delete(j);
    free(tok);
}

void azsim__token_endpoint(azsim__rq_t *q, const char *tenant)
{
    azsim_t *sim = q->sim;
    token_form_t f;
    f.assertion = d8_xmalloc(ASSERTION_MAX);
    const azsim_client_t *c = NULL;
    int federated = 0;
    if (read_token_form(q, &f) || !check_token_request(q, &f))
        goto done;
    federated = f.assertion[0] != '\0';
    q->op = federated     ? AZSIM__OP_TOKEN_ASSERTION
            : f.secret[0] ? AZSIM__OP_TOKEN_SECRET
                          : AZSIM__OP_TOKEN_INVALID;
    if (!federated && !f.secret[0]) {
        aad_error(q, 401, "invalid_client", 7000218,
                  "The request body must contain the following parameter: 'client_assertion' "
                  "or 'client_secret'.");
        goto done;
    }
    if (sim->o.nclients) {
        c = find_client(sim, tenant, f.client_id);
        if (!c) {
            aad_error(q, 400, "unauthorized_client", 700016,
                      "Application with identifier '%s' was not found in the directory '%s'.",
                      f.client_id, tenant);
            goto done;
        }
    }
    if (federated ? !check_assertion(q, c, &f) : !check_secret(q, c, &f))
        goto done;
    if (!check_resource(q, tenant, &f))
        goto done;
    answer_token(q, tenant, &f);
done:
    OPENSSL_cleanse(f.secret, sizeof(f.secret));
    OPENSSL_cleanse(f.assertion, ASSERTION_MAX);
    free(f.assertion);
}

/* ---- IMDS --------------------------------------------------------------- */

static void imds_error(azsim__rq_t *q, const char *error, const char *desc)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", error);
    cJSON_AddStringToObject(j, "error_description", desc);
    azsim__json_body(q->resp, 400, j);
    cJSON_Delete(j);
}

void azsim__imds_endpoint(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    const char *md = http_request_header(q->req, "metadata");
    if (!md || !azsim__ieq(md, "true")) {
        imds_error(q, "invalid_request", "Required metadata header not specified");
        return;
    }
    if (http_request_header(q->req, "x-forwarded-for")) {
        imds_error(q, "invalid_request", "Request contains X-Forwarded-For header");
        return;
    }
    char ver[32], resource[512], client[128];
    int n = azsim__param(q->req->query, "api-version", ver, sizeof(ver));
    if (n <= 0) {
        imds_error(q, "invalid_request", "Required query variable 'api-version' is missing");
        return;
    }
    if (strcmp(ver, "2018-02-01") != 0 && strcmp(ver, "2019-08-01") != 0) {
        imds_error(q, "invalid_request", "Invalid api-version");
        return;
    }
    if (azsim__param(q->req->query, "resource", resource, sizeof(resource)) <= 0) {
        imds_error(q, "invalid_request", "Required query variable 'resource' is missing");
        return;
    }
    if (!azsim__cloud_resource_ok(sim, resource)) {
        char desc[700];
        snprintf(desc, sizeof(desc),
                 "AADSTS500011: The resource principal named %s was not found in the tenant.",
                 resource);
        imds_error(q, "invalid_resource", desc);
        return;
    }
    if (azsim__param(q->req->query, "client_id", client, sizeof(client)) <= 0)
        snprintf(client, sizeof(client), "%s",
                 sim->o.nclients && sim->o.clients[0].client_id ? sim->o.clients[0].client_id
                                                                : IMDS_DEFAULT_CLIENT);
    int ttl = sim->o.token_ttl_s;
    int64_t now_s = q->wall / 1000;
    const char *tenant = sim->o.nclients && sim->o.clients[0].tenant_id
                             ? sim->o.clients[0].tenant_id
                             : "72f988bf-86f1-41af-91ab-2d7cd011db47";
    char *tok = mint(q, tenant, client, resource, now_s + ttl);
    char buf[32];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "access_token", tok);
    cJSON_AddStringToObject(j, "client_id", client);
    /* IMDS answers its numbers as strings, unlike Entra ID. */
    snprintf(buf, sizeof(buf), "%d", ttl);
    cJSON_AddStringToObject(j, "expires_in", buf);
    snprintf(buf, sizeof(buf), "%lld", (long long)(now_s + ttl));
    cJSON_AddStringToObject(j, "expires_on", buf);
    snprintf(buf, sizeof(buf), "%d", ttl);
    cJSON_AddStringToObject(j, "ext_expires_in", buf);
    snprintf(buf, sizeof(buf), "%lld", (long long)now_s);
    cJSON_AddStringToObject(j, "not_before", buf);
    cJSON_AddStringToObject(j, "resource", resource);
    cJSON_AddStringToObject(j, "token_type", "Bearer");
    azsim__json_body(q->resp, 200, j);
    cJSON_Delete(j);
    free(tok);
}
