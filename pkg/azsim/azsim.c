/*
 * pkg/azsim core: lifecycle, request classification and the pipeline every
 * request goes through (faults, authentication, restrictions, api-version,
 * throttling, statistics). The /_azsim control API is in azsim_control.c.
 */
#include "azsim_int.h"

#include <math.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Accepted api-versions. Real ARM answers an unknown api-version of a
 * registered resource type with 400 NoRegisteredProviderFound (naming the
 * supported versions) and a malformed one with 400
 * InvalidApiVersionParameter; the emulator answers both with
 * InvalidApiVersionParameter, which is what clients need to tell apart
 * from every other 400.
 */
static const char *const aci_versions[] = {"2026-05-01", "2025-09-01", "2023-05-01", NULL};
static const char *const storage_versions[] = {"2025-01-01", "2023-05-01", NULL};
/* Microsoft.Resources and Microsoft.Authorization, for preflight's reads
 * (the versions of the specs in test/fixtures/azure-specs). */
static const char *const resources_versions[] = {"2021-04-01", NULL};
static const char *const authorization_versions[] = {"2022-04-01", NULL};

/* Operation records kept for the Azure-AsyncOperation URLs. */
#define MAX_OPS 100000

/* ---- options ------------------------------------------------------------ */

void azsim_opts_init(azsim_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->provision_ms = 2000;
    o->delete_ms = 1000;
    o->share_recreate_ms = 2000;
    o->page_size = 100;
    o->token_ttl_s = 3600;
    o->seed = 1;
    o->throttle = 1;
    o->throttle_scale = 1.0;
    o->strict_mounts = 1;
    o->global_headers = 1;
    o->faults.retry_after_s = 1;
    azsim__aci_opts_init(&o->aci);
    azsim__storage_opts_init(&o->storage);
    azsim__arm_opts_init(&o->arm);
}

static void free_list(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

void azsim_opts_release(azsim_opts_t *o)
{
    free_list(o->subscriptions, o->nsubscriptions);
    free_list(o->resource_groups, o->nresource_groups);
    free_list(o->storage_accounts, o->nstorage_accounts);
    for (size_t i = 0; i < o->nclients; i++) {
        free(o->clients[i].tenant_id);
        free(o->clients[i].client_id);
        free(o->clients[i].client_secret);
    }
    free(o->clients);
    free(o->base_url);
    azsim__aci_opts_release(&o->aci);
    azsim__storage_opts_release(&o->storage);
    azsim__arm_opts_release(&o->arm);
    azsim_opts_init(o);
}

static char *dup_or_null(const char *s)
{
    return s ? d8_xstrdup(s) : NULL;
}

static char **copy_list(char *const *l, size_t n)
{
    if (n == 0)
        return NULL;
    char **c = d8_xcalloc(n, sizeof(*c));
    for (size_t i = 0; i < n; i++)
        c[i] = d8_xstrdup(l[i]);
    return c;
}

/* ---- lifecycle ---------------------------------------------------------- */

/* Empties the model: no resources, operations, buckets, events, faults or
 * statistics; the generators restart from the seed. */
static void init_state(azsim_t *sim)
{
    azsim__table_init(&sim->groups);
    azsim__table_init(&sim->shares);
    azsim__table_init(&sim->ops);
    azsim__table_init(&sim->subs);
    azsim__table_init(&sim->regions);
    azsim__table_init(&sim->labels);
    azsim__table_init(&sim->accounts);
    azsim__aci_opts_copy(&sim->aci, &sim->o.aci);
    azsim__storage_opts_copy(&sim->storage, &sim->o.storage);
    azsim__arm_opts_copy(&sim->arm, &sim->o.arm);
    sim->paging = sim->o.paging;
    sim->page_size = sim->o.page_size;
    azsim__heap_init(&sim->events);
    /* Two streams, so that creating resources does not shift the fault
     * sequence a test relies on. */
    sim->rng_faults = sim->o.seed ^ 0x5eedfa17ull;
    sim->rng_ids = sim->o.seed ^ 0x1d5eed00ull;
    sim->rng_pulls = sim->o.seed ^ 0x9a11ed5eull;
    sim->ip_counter = 0;
    sim->etag_counter = 0;
    sim->faults = sim->o.faults;
    memset(sim->stats, 0, sizeof(sim->stats));
    memset(sim->nstats, 0, sizeof(sim->nstats));
    sim->deleted = NULL;
    sim->ndeleted = sim->capdeleted = 0;
}

/* Frees everything init_state set up and the model gathered since; the
 * options and the token key stay. */
static void release_state(azsim_t *sim)
{
    azsim__ent_t *e, *next;
    for (e = azsim__table_first(&sim->groups); e; e = next) {
        next = azsim__table_next(&sim->groups, e);
        azsim__label_release(sim, (azsim__group_t *)e);
        azsim__table_del(&sim->groups, e);
        azsim__group_free((azsim__group_t *)e);
    }
    for (e = azsim__table_first(&sim->shares); e; e = next) {
        next = azsim__table_next(&sim->shares, e);
        azsim__table_del(&sim->shares, e);
        azsim__share_free((azsim__share_t *)e);
    }
    for (e = azsim__table_first(&sim->ops); e; e = next) {
        next = azsim__table_next(&sim->ops, e);
        azsim__table_del(&sim->ops, e);
        azsim__op_free((azsim__op_t *)e);
    }
    for (e = azsim__table_first(&sim->subs); e; e = next) {
        next = azsim__table_next(&sim->subs, e);
        azsim__table_del(&sim->subs, e);
        free(e);
    }
    for (e = azsim__table_first(&sim->regions); e; e = next) {
        next = azsim__table_next(&sim->regions, e);
        azsim__table_del(&sim->regions, e);
        free(e);
    }
    for (e = azsim__table_first(&sim->accounts); e; e = next) {
        next = azsim__table_next(&sim->accounts, e);
        azsim__table_del(&sim->accounts, e);
        free(e);
    }
    azsim__table_release(&sim->groups);
    azsim__table_release(&sim->shares);
    azsim__table_release(&sim->ops);
    azsim__table_release(&sim->subs);
    azsim__table_release(&sim->regions);
    azsim__table_release(&sim->labels);
    azsim__table_release(&sim->accounts);
    azsim__aci_opts_release(&sim->aci);
    azsim__storage_opts_release(&sim->storage);
    azsim__arm_opts_release(&sim->arm);
    azsim__heap_release(&sim->events);
    for (size_t i = 0; i < sim->ndeleted; i++)
        free(sim->deleted[i].id);
    free(sim->deleted);
    sim->deleted = NULL;
    sim->ndeleted = sim->capdeleted = 0;
}

void azsim__reset(azsim_t *sim)
{
    release_state(sim);
    init_state(sim);
}

azsim_t *azsim_new(const azsim_opts_t *opts)
{
    azsim_t *sim = d8_xcalloc(1, sizeof(*sim));
    sim->o = *opts;
    sim->o.subscriptions = copy_list(opts->subscriptions, opts->nsubscriptions);
    sim->o.resource_groups = copy_list(opts->resource_groups, opts->nresource_groups);
    sim->o.storage_accounts = copy_list(opts->storage_accounts, opts->nstorage_accounts);
    sim->o.base_url = dup_or_null(opts->base_url);
    azsim__aci_opts_copy(&sim->o.aci, &opts->aci);
    azsim__storage_opts_copy(&sim->o.storage, &opts->storage);
    azsim__arm_opts_copy(&sim->o.arm, &opts->arm);
    if (opts->nclients) {
        sim->o.clients = d8_xcalloc(opts->nclients, sizeof(*sim->o.clients));
        for (size_t i = 0; i < opts->nclients; i++) {
            sim->o.clients[i].tenant_id = dup_or_null(opts->clients[i].tenant_id);
            sim->o.clients[i].client_id = dup_or_null(opts->clients[i].client_id);
            sim->o.clients[i].client_secret = dup_or_null(opts->clients[i].client_secret);
            sim->o.clients[i].federated = opts->clients[i].federated;
        }
    }
    if (sim->o.page_size == 0)
        sim->o.page_size = 100;
    if (sim->o.token_ttl_s <= 0)
        sim->o.token_ttl_s = 3600;
    if (!(sim->o.throttle_scale > 0))
        sim->o.throttle_scale = 1.0;
    sim->mono0 = azsim__now(sim);
    sim->wall0 = d8_wall_ms();
    /*
     * The signing key of the access tokens derives from the seed, so that
     * tokens stay valid across an emulator restart with the same seed, as
     * real tokens survive a restart of an ARM front end. An emulator needs
     * no secrecy here.
     */
    char seedtxt[64];
    snprintf(seedtxt, sizeof(seedtxt), "azsim-token-key:%llu", (unsigned long long)sim->o.seed);
    SHA256((const unsigned char *)seedtxt, strlen(seedtxt), sim->token_key);
    init_state(sim);
    return sim;
}

void azsim_free(azsim_t *sim)
{
    if (!sim)
        return;
    release_state(sim);
    free(sim->tok_last);
    free_list(sim->o.subscriptions, sim->o.nsubscriptions);
    free_list(sim->o.resource_groups, sim->o.nresource_groups);
    free_list(sim->o.storage_accounts, sim->o.nstorage_accounts);
    for (size_t i = 0; i < sim->o.nclients; i++) {
        free(sim->o.clients[i].tenant_id);
        free(sim->o.clients[i].client_id);
        free(sim->o.clients[i].client_secret);
    }
    free(sim->o.clients);
    free(sim->o.base_url);
    azsim__aci_opts_release(&sim->o.aci);
    azsim__storage_opts_release(&sim->o.storage);
    azsim__arm_opts_release(&sim->o.arm);
    free(sim);
}

size_t azsim_count_groups(const azsim_t *sim)
{
    return sim->groups.count;
}

size_t azsim_count_shares(const azsim_t *sim)
{
    size_t n = 0;
    for (const azsim__ent_t *e = azsim__table_first(&sim->shares); e;
         e = azsim__table_next(&sim->shares, e))
        n += !((const azsim__share_t *)e)->deleted;
    return n;
}

/* ---- answers ------------------------------------------------------------ */

void azsim_resp_init(azsim_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    d8_buf_init(&r->body);
    r->operation = azsim__op_names[AZSIM__OP_UNKNOWN];
}

void azsim_resp_release(azsim_resp_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        free((char *)r->headers[i].value);
    r->nheaders = 0;
    d8_buf_release(&r->body);
}

const char *azsim_resp_header(const azsim_resp_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (azsim__ieq(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

/* ---- time --------------------------------------------------------------- */

/* Applies every transition due by now, each stamped with its due time. */
static void advance(azsim_t *sim, uint64_t now)
{
    azsim__event_t ev;
    while (azsim__heap_pop_due(&sim->events, now, &ev)) {
        if (ev.kind == AZSIM__EV_SHARE_PURGE)
            azsim__files_apply_event(sim, &ev);
        else
            azsim__aci_apply_event(sim, &ev);
        free(ev.key);
    }
}

/* ---- shared checks ------------------------------------------------------ */

int azsim__allowed(char *const *list, size_t n, const char *name)
{
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (azsim__ieq(list[i], name))
            return 1;
    return 0;
}

/* The buckets of subscription sub (created full on first use), refilled
 * up to now. */
static azsim__sub_t *sub_buckets(azsim_t *sim, const char *sub, uint64_t now)
{
    char key[160];
    snprintf(key, sizeof(key), "%s", sub);
    azsim__lower(key);
    azsim__sub_t *s = (azsim__sub_t *)azsim__table_get(&sim->subs, key);
    if (!s) {
        double k = sim->o.throttle_scale;
        s = d8_xcalloc(1, sizeof(*s));
        /* ARM's per-subscription numbers (DESIGN.md section 5). */
        azsim__bucket_init(&s->reads, 250 * k, 25 * k, now);
        azsim__bucket_init(&s->writes, 200 * k, 10 * k, now);
        azsim__bucket_init(&s->deletes, 200 * k, 10 * k, now);
        /* The global limit of all principals: 15 times the individual one
         * (research notes item 6; observed 3749 beside 249). */
        azsim__bucket_init(&s->greads, 15 * 250 * k, 15 * 25 * k, now);
        azsim__bucket_init(&s->gwrites, 15 * 200 * k, 15 * 10 * k, now);
        azsim__bucket_init(&s->gdeletes, 15 * 200 * k, 15 * 10 * k, now);
        azsim__table_put(&sim->subs, &s->e, key);
    }
    azsim__bucket_t *all[] = {&s->reads,  &s->writes,  &s->deletes,
                              &s->greads, &s->gwrites, &s->gdeletes};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        azsim__bucket_refill(all[i], now);
    return s;
}

static long floor_tokens(const azsim__bucket_t *b)
{
    return b->tokens < 0 ? 0 : (long)floor(b->tokens);
}

static void ratelimit_headers(azsim__rq_t *q)
{
    if (!q->sub)
        return;
    azsim__sub_t *s = sub_buckets(q->sim, q->sub, q->now);
    azsim__header(q->resp, "x-ms-ratelimit-remaining-subscription-reads", "%ld",
                  floor_tokens(&s->reads));
    azsim__header(q->resp, "x-ms-ratelimit-remaining-subscription-writes", "%ld",
                  floor_tokens(&s->writes));
    azsim__header(q->resp, "x-ms-ratelimit-remaining-subscription-deletes", "%ld",
                  floor_tokens(&s->deletes));
    if (!q->sim->o.global_headers)
        return;
    azsim__header(q->resp, "x-ms-ratelimit-remaining-subscription-global-reads", "%ld",
                  floor_tokens(&s->greads));
    azsim__header(q->resp, "x-ms-ratelimit-remaining-subscription-global-writes", "%ld",
                  floor_tokens(&s->gwrites));
    azsim__header(q->resp, "x-ms-ratelimit-remaining-subscription-global-deletes", "%ld",
                  floor_tokens(&s->gdeletes));
}

int azsim__throttle_arm(azsim__rq_t *q, int cls)
{
    azsim__sub_t *s = sub_buckets(q->sim, q->sub, q->now);
    if (!q->sim->o.throttle)
        return 1;
    azsim__bucket_t *b = cls == 'r' ? &s->reads : cls == 'd' ? &s->deletes : &s->writes;
    azsim__bucket_t *g = cls == 'r' ? &s->greads : cls == 'd' ? &s->gdeletes : &s->gwrites;
    if (b->tokens >= 1.0 && g->tokens >= 1.0) {
        b->tokens -= 1.0;
        g->tokens -= 1.0;
        return 1;
    }
    int wb = azsim__bucket_wait_s(b), wg = azsim__bucket_wait_s(g);
    int wait = wb > wg ? wb : wg;
    azsim__header(q->resp, "Retry-After", "%d", wait);
    azsim__arm_error(q->resp, 429, "SubscriptionRequestsThrottled",
                     "Number of '%s' requests for subscription '%s' actor '%s' exceeded. Please "
                     "try again after '%d' seconds after additional tokens are available. Refer "
                     "to https://aka.ms/armthrottling for additional information.",
                     cls == 'r'   ? "read"
                     : cls == 'd' ? "delete"
                                  : "write",
                     q->sub, q->client_app[0] ? q->client_app : "unknown", wait);
    return 0;
}

int azsim__throttle_aci(azsim__rq_t *q, const char *location, int cls)
{
    azsim_t *sim = q->sim;
    char key[320];
    snprintf(key, sizeof(key), "%s|%s", q->sub, location);
    azsim__lower(key);
    azsim__region_t *r = (azsim__region_t *)azsim__table_get(&sim->regions, key);
    if (!r) {
        double k = sim->o.throttle_scale;
        r = d8_xcalloc(1, sizeof(*r));
        /* ACI: 100 per 5 minutes and 300 per hour, creates and deletes
         * each; both windows must have room. */
        azsim__bucket_init(&r->create5m, 100 * k, 100 * k / 300.0, q->now);
        azsim__bucket_init(&r->create1h, 300 * k, 300 * k / 3600.0, q->now);
        azsim__bucket_init(&r->delete5m, 100 * k, 100 * k / 300.0, q->now);
        azsim__bucket_init(&r->delete1h, 300 * k, 300 * k / 3600.0, q->now);
        azsim__table_put(&sim->regions, &r->e, key);
    }
    if (!sim->o.throttle)
        return 1;
    azsim__bucket_t *a = cls == 'c' ? &r->create5m : &r->delete5m;
    azsim__bucket_t *b = cls == 'c' ? &r->create1h : &r->delete1h;
    azsim__bucket_refill(a, q->now);
    azsim__bucket_refill(b, q->now);
    if (a->tokens >= 1.0 && b->tokens >= 1.0) {
        a->tokens -= 1.0;
        b->tokens -= 1.0;
        return 1;
    }
    int wa = azsim__bucket_wait_s(a), wb = azsim__bucket_wait_s(b);
    int wait = wa > wb ? wa : wb;
    azsim__header(q->resp, "Retry-After", "%d", wait);
    azsim__arm_error(q->resp, 429, "TooManyRequests",
                     "The number of container group %s requests for subscription '%s' in region "
                     "'%s' exceeded the limit of 100 per 5 minutes and 300 per hour. Please retry "
                     "after %d seconds.",
                     cls == 'c' ? "create" : "delete", q->sub, location, wait);
    return 0;
}

int azsim__check_api_version(azsim__rq_t *q, const char *const *accepted)
{
    int n = azsim__param(q->req->query, "api-version", q->api_version, sizeof(q->api_version));
    if (n <= 0) {
        q->api_version[0] = '\0';
        azsim__arm_error(q->resp, 400, "MissingApiVersionParameter",
                         "The api-version query parameter (?api-version=) is required for all "
                         "requests.");
        return 0;
    }
    for (const char *const *v = accepted; *v; v++)
        if (strcmp(*v, q->api_version) == 0)
            return 1;
    d8_buf_t list;
    d8_buf_init(&list);
    for (const char *const *v = accepted; *v; v++)
        d8_buf_printf(&list, "%s%s", v == accepted ? "" : ", ", *v);
    azsim__arm_error(q->resp, 400, "InvalidApiVersionParameter",
                     "The api-version '%s' is invalid. The supported versions are '%s'.",
                     q->api_version, list.data);
    d8_buf_release(&list);
    return 0;
}

void azsim__url(const azsim__rq_t *q, d8_buf_t *b, const char *path)
{
    d8_buf_printf(b, "%s%s?api-version=%s", q->base, path, q->api_version);
}

/* ---- classification ----------------------------------------------------- */

/* Splits and percent-decodes the path; 0, or -1 when malformed. */
static int split_path(azsim__rq_t *q, const char *path)
{
    size_t used = 0;
    q->nseg = 0;
    if (path[0] != '/')
        return -1;
    const char *p = path + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 && !slash)
            break; /* trailing slash */
        if (q->nseg >= AZSIM__MAX_SEGS)
            return -1;
        int n = http_pct_decode(p, len, q->segbuf + used, sizeof(q->segbuf) - used);
        if (n < 0)
            return -1;
        q->seg[q->nseg++] = q->segbuf + used;
        used += (size_t)n + 1;
        if (!slash)
            break;
        p = slash + 1;
    }
    return 0;
}

static int seg_is(const azsim__rq_t *q, size_t i, const char *s)
{
    return i < q->nseg && azsim__ieq(q->seg[i], s);
}

static int method_is(const azsim__rq_t *q, const char *m)
{
    return strcmp(q->req->method, m) == 0;
}

enum { ROUTE_NONE, ROUTE_CONTROL, ROUTE_TOKEN, ROUTE_IMDS, ROUTE_ARM };

/* /_azsim/{name}: the control API; *bad_method for a known name. */
static void classify_control(azsim__rq_t *q, int *bad_method)
{
    static const struct {
        const char *name;
        int op;
        char methods; /* 'g'et, 'p'ost, 'b'oth */
    } routes[] = {
        {"faults", AZSIM__OP_CTL_FAULTS, 'b'},
        {"stats", AZSIM__OP_CTL_STATS, 'g'},
        {"resources", AZSIM__OP_CTL_RESOURCES, 'g'},
        {"reset", AZSIM__OP_CTL_RESET, 'p'},
        {"aci", AZSIM__OP_CTL_ACI, 'b'},
        {"storage", AZSIM__OP_CTL_STORAGE, 'b'},
        {"paging", AZSIM__OP_CTL_PAGING, 'b'},
        {"shares", AZSIM__OP_CTL_SHARES, 'p'},
        {"accounts", AZSIM__OP_CTL_ACCOUNTS, 'p'},
        {"regenerateKey", AZSIM__OP_CTL_REGENERATE_KEY, 'p'},
        {"arm", AZSIM__OP_CTL_ARM, 'b'},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(q->seg[1], routes[i].name) != 0)
            continue;
        int get = method_is(q, "GET"), post = method_is(q, "POST");
        char m = routes[i].methods;
        if ((m == 'b' && (get || post)) || (m == 'g' && get) || (m == 'p' && post))
            q->op = routes[i].op;
        else
            *bad_method = 1;
        return;
    }
}

/* /{tenant}/oauth2/v2.0/token: the operation names the credential the
 * form body carries, so that the statistics tell the flows apart. */
static void classify_token(azsim__rq_t *q, int *bad_method)
{
    if (!method_is(q, "POST")) {
        *bad_method = 1;
        return;
    }
    char tmp[8];
    const char *body = q->req->body ? q->req->body : "";
    if (azsim__param(body, "client_assertion", tmp, sizeof(tmp)) != -1)
        q->op = AZSIM__OP_TOKEN_ASSERTION;
    else if (azsim__param(body, "client_secret", tmp, sizeof(tmp)) != -1)
        q->op = AZSIM__OP_TOKEN_SECRET;
    else
        q->op = AZSIM__OP_TOKEN_INVALID;
}

/*
 * .../containerGroups[/{name}[/start|stop|restart]] under a resource group.
 * Paths of no operation leave *bad_method 0, so that they answer 404.
 */
static void classify_group(azsim__rq_t *q, int *bad_method)
{
    if (q->nseg == 7) {
        if (method_is(q, "GET"))
            q->op = AZSIM__OP_CG_LIST_RG;
    } else if (q->nseg == 8) {
        if (method_is(q, "GET"))
            q->op = AZSIM__OP_CG_GET;
        else if (method_is(q, "PUT"))
            q->op = AZSIM__OP_CG_CREATE;
        else if (method_is(q, "PATCH"))
            q->op = AZSIM__OP_CG_UPDATE;
        else if (method_is(q, "DELETE"))
            q->op = AZSIM__OP_CG_DELETE;
    } else if (q->nseg == 9 && method_is(q, "POST")) {
        if (seg_is(q, 8, "start"))
            q->op = AZSIM__OP_CG_START;
        else if (seg_is(q, 8, "stop"))
            q->op = AZSIM__OP_CG_STOP;
        else if (seg_is(q, 8, "restart"))
            q->op = AZSIM__OP_CG_RESTART;
        else
            return;
    } else if (q->nseg == 11 && seg_is(q, 8, "containers") && seg_is(q, 10, "logs")) {
        if (method_is(q, "GET"))
            q->op = AZSIM__OP_CG_LOGS;
    } else if (q->nseg == 9) {
        if (!(seg_is(q, 8, "start") || seg_is(q, 8, "stop") || seg_is(q, 8, "restart")))
            return;
    } else {
        return;
    }
    *bad_method = q->op == AZSIM__OP_UNKNOWN;
}

/* .../providers/Microsoft.ContainerInstance/...: container groups and the
 * operations of a location. */
static void classify_aci(azsim__rq_t *q, int *bad_method)
{
    if (seg_is(q, 6, "containerGroups")) {
        classify_group(q, bad_method);
    } else if (q->nseg == 10 && seg_is(q, 6, "locations") &&
               (seg_is(q, 8, "operations") || seg_is(q, 8, "operationResults"))) {
        if (method_is(q, "GET"))
            q->op = seg_is(q, 8, "operations") ? AZSIM__OP_CG_OPSTATUS : AZSIM__OP_CG_OPRESULT;
        else
            *bad_method = 1;
    }
}

/* .../providers/Microsoft.Storage/storageAccounts/{account}/...: listKeys
 * and the file shares of the default file service. */
static void classify_storage(azsim__rq_t *q, int *bad_method)
{
    if (q->nseg == 8) {
        if (method_is(q, "GET"))
            q->op = AZSIM__OP_SA_GET;
        else
            *bad_method = 1;
    } else if (q->nseg == 9 && seg_is(q, 8, "listKeys")) {
        if (method_is(q, "POST"))
            q->op = AZSIM__OP_SA_LISTKEYS;
        else
            *bad_method = 1;
    } else if (q->nseg == 10 && seg_is(q, 8, "fileServices") && seg_is(q, 9, "default")) {
        if (method_is(q, "GET"))
            q->op = AZSIM__OP_FILE_SERVICE_GET;
        else
            *bad_method = 1;
    } else if (q->nseg == 13 && seg_is(q, 8, "fileServices") && seg_is(q, 9, "default") &&
               seg_is(q, 10, "shares") && seg_is(q, 12, "restore")) {
        if (method_is(q, "POST"))
            q->op = AZSIM__OP_FS_RESTORE;
        else
            *bad_method = 1;
    } else if ((q->nseg == 11 || q->nseg == 12) && seg_is(q, 8, "fileServices") &&
               seg_is(q, 9, "default") && seg_is(q, 10, "shares")) {
        if (q->nseg == 11) {
            if (method_is(q, "GET"))
                q->op = AZSIM__OP_FS_LIST;
        } else if (method_is(q, "GET")) {
            q->op = AZSIM__OP_FS_GET;
        } else if (method_is(q, "PUT")) {
            q->op = AZSIM__OP_FS_CREATE;
        } else if (method_is(q, "PATCH")) {
            q->op = AZSIM__OP_FS_UPDATE;
        } else if (method_is(q, "DELETE")) {
            q->op = AZSIM__OP_FS_DELETE;
        }
        *bad_method = q->op == AZSIM__OP_UNKNOWN;
    }
}

/*
 * The reads of preflight above or beside the resource providers:
 * providers/{namespace}, resourcegroups/{rg},
 * resourcegroups/{rg}/providers/Microsoft.Authorization/permissions and
 * providers/Microsoft.ContainerInstance/locations/{l}/usages|capabilities,
 * and {a resource under a group}/providers/Microsoft.Authorization/permissions.
 * 1 when the path is one of them.
 */
static int classify_subscription_read(azsim__rq_t *q, int *bad_method)
{
    int op = AZSIM__OP_UNKNOWN;
    if (q->nseg == 4 && seg_is(q, 2, "providers"))
        op = AZSIM__OP_PROVIDER_GET;
    else if (q->nseg == 4 && seg_is(q, 2, "resourceGroups"))
        op = AZSIM__OP_RG_GET;
    else if (q->nseg == 7 && seg_is(q, 2, "resourceGroups") && seg_is(q, 4, "providers") &&
             seg_is(q, 5, "Microsoft.Authorization") && seg_is(q, 6, "permissions"))
        op = AZSIM__OP_PERMISSIONS_LIST;
    else if (q->nseg == 7 && seg_is(q, 2, "providers") &&
             seg_is(q, 3, "Microsoft.ContainerInstance") && seg_is(q, 4, "locations") &&
             (seg_is(q, 6, "usages") || seg_is(q, 6, "capabilities")))
        op = seg_is(q, 6, "usages") ? AZSIM__OP_USAGE_LIST : AZSIM__OP_CAPABILITIES_LIST;
    else if (q->nseg >= 10 && seg_is(q, 2, "resourceGroups") && seg_is(q, 4, "providers") &&
             seg_is(q, q->nseg - 3, "providers") &&
             seg_is(q, q->nseg - 2, "Microsoft.Authorization") &&
             seg_is(q, q->nseg - 1, "permissions"))
        op = AZSIM__OP_RESOURCE_PERMISSIONS_LIST;
    if (op == AZSIM__OP_UNKNOWN)
        return 0;
    if (method_is(q, "GET"))
        q->op = op;
    else
        *bad_method = 1;
    return 1;
}

/* The api-versions a request's provider takes, from its path (a wrong
 * method on a known path still has its provider's versions). */
static const char *const *versions_of(const azsim__rq_t *q)
{
    if (q->nseg == 4 && (seg_is(q, 2, "providers") || seg_is(q, 2, "resourceGroups")))
        return resources_versions;
    if (q->nseg >= 7 && seg_is(q, q->nseg - 2, "Microsoft.Authorization") &&
        seg_is(q, q->nseg - 1, "permissions"))
        return authorization_versions;
    if (q->nseg >= 6 && seg_is(q, 5, "Microsoft.Storage"))
        return storage_versions;
    return aci_versions;
}

/*
 * Names the operation of a request from its method and path, without
 * touching any state; *bad_method is set when the path is known but the
 * method is not. Returns the ROUTE_* family.
 */
static int classify(azsim__rq_t *q, int *bad_method)
{
    *bad_method = 0;
    q->op = AZSIM__OP_UNKNOWN;
    if (q->nseg == 2 && seg_is(q, 0, "_azsim")) {
        classify_control(q, bad_method);
        return ROUTE_CONTROL;
    }
    if (q->nseg == 4 && seg_is(q, 1, "oauth2") && seg_is(q, 2, "v2.0") && seg_is(q, 3, "token")) {
        classify_token(q, bad_method);
        return ROUTE_TOKEN;
    }
    if (q->nseg == 4 && seg_is(q, 0, "metadata") && seg_is(q, 1, "identity") &&
        seg_is(q, 2, "oauth2") && seg_is(q, 3, "token")) {
        if (method_is(q, "GET"))
            q->op = AZSIM__OP_TOKEN_IMDS;
        else
            *bad_method = 1;
        return ROUTE_IMDS;
    }
    if (!(q->nseg >= 2 && seg_is(q, 0, "subscriptions")))
        return ROUTE_NONE;
    q->sub = q->seg[1];
    if (classify_subscription_read(q, bad_method))
        return ROUTE_ARM;
    if (q->nseg == 5 && seg_is(q, 2, "providers") && seg_is(q, 3, "Microsoft.ContainerInstance") &&
        seg_is(q, 4, "containerGroups")) {
        if (method_is(q, "GET"))
            q->op = AZSIM__OP_CG_LIST;
        else
            *bad_method = 1;
        return ROUTE_ARM;
    }
    if (!(q->nseg >= 7 && seg_is(q, 2, "resourceGroups") && seg_is(q, 4, "providers")))
        return ROUTE_ARM;
    if (seg_is(q, 5, "Microsoft.ContainerInstance"))
        classify_aci(q, bad_method);
    else if (seg_is(q, 5, "Microsoft.Storage") && seg_is(q, 6, "storageAccounts") && q->nseg >= 8)
        classify_storage(q, bad_method);
    return ROUTE_ARM;
}

/* ---- the pipeline ------------------------------------------------------- */

static void set_base(azsim__rq_t *q)
{
    const char *host = http_request_header(q->req, "host");
    int sane = host && host[0] && strlen(host) < 256;
    for (const char *p = host; sane && *p; p++)
        sane = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']';
    if (sane)
        snprintf(q->base, sizeof(q->base), "http://%s", host);
    else
        snprintf(q->base, sizeof(q->base), "%s",
                 q->sim->o.base_url ? q->sim->o.base_url : "http://localhost");
}

/* Restrictions of the config: unknown names look like absent ones. */
static int check_scope(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    if (!azsim__allowed(sim->o.subscriptions, sim->o.nsubscriptions, q->sub)) {
        azsim__arm_error(q->resp, 404, "SubscriptionNotFound",
                         "The subscription '%s' could not be found.", q->sub);
        return 0;
    }
    if (q->nseg >= 4 && seg_is(q, 2, "resourceGroups") &&
        !azsim__allowed(sim->o.resource_groups, sim->o.nresource_groups, q->seg[3])) {
        azsim__arm_error(q->resp, 404, "ResourceGroupNotFound",
                         "Resource group '%s' could not be found.", q->seg[3]);
        return 0;
    }
    if (q->nseg >= 8 && seg_is(q, 6, "storageAccounts") &&
        !azsim__allowed(sim->o.storage_accounts, sim->o.nstorage_accounts, q->seg[7])) {
        azsim__arm_error(q->resp, 404, "ResourceNotFound",
                         "The Resource 'Microsoft.Storage/storageAccounts/%s' under resource "
                         "group '%s' was not found. For more details please go to "
                         "https://aka.ms/ARMResourceNotFoundFix",
                         q->seg[7], q->seg[3]);
        return 0;
    }
    return 1;
}

/*
 * An ARM call: the Bearer token, the configured scope, the api-version,
 * the subscription's throttling and the authorization fault, in that
 * order, then the resource handler.
 */
static void arm(azsim__rq_t *q, int bad_method)
{
    if (!azsim__check_bearer(q))
        return;
    if (!check_scope(q))
        return;
    int storage = q->nseg >= 6 && seg_is(q, 5, "Microsoft.Storage");
    if (q->op == AZSIM__OP_UNKNOWN) {
        /* ARM validates the api-version before the route. */
        if (!azsim__check_api_version(q, versions_of(q)))
            return;
        if (bad_method)
            azsim__arm_error(q->resp, 405, "MethodNotAllowed",
                             "The requested resource does not support http method '%s'.",
                             q->req->method);
        else
            azsim__arm_error(q->resp, 404, "InvalidResourceType",
                             "The resource type could not be found for the path '%s' and api "
                             "version '%s'.",
                             q->req->path, q->api_version);
        return;
    }
    if (!azsim__check_api_version(q, versions_of(q)))
        return;
    int cls = method_is(q, "GET") ? 'r' : method_is(q, "DELETE") ? 'd' : 'w';
    if (!azsim__throttle_arm(q, cls))
        return;
    /* ARM meters the request, then authorizes it (the 403 fault). */
    if (azsim__authz_fault(q, cls))
        return;
    if (q->op >= AZSIM__OP_PROVIDER_GET && q->op <= AZSIM__OP_RESOURCE_PERMISSIONS_LIST)
        azsim__arm_read_route(q);
    else if (storage)
        azsim__files_route(q);
    else
        azsim__aci_route(q);
}

void azsim_handle(azsim_t *sim, const http_request_t *req, azsim_resp_t *resp)
{
    azsim__rq_t *q = d8_xcalloc(1, sizeof(*q));
    q->sim = sim;
    q->req = req;
    q->resp = resp;
    q->now = azsim__now(sim);
    q->wall = azsim__wall_of(sim, q->now);
    advance(sim, q->now);
    set_base(q);
    int bad_method = 0, route = ROUTE_NONE;
    if (split_path(q, req->path) < 0) {
        azsim__arm_error(resp, 400, "InvalidRequestUri", "The request URI is malformed.");
        goto done;
    }
    route = classify(q, &bad_method);
    resp->operation = azsim__op_names[q->op];
    if (route == ROUTE_CONTROL) {
        azsim__control(q, bad_method);
        free(q);
        return; /* the control API stays out of the statistics */
    }
    if (route == ROUTE_ARM) {
        char rid[37];
        azsim__uuid(sim, rid);
        azsim__header(resp, "x-ms-request-id", "%s", rid);
        azsim__header(resp, "x-ms-correlation-request-id", "%s", rid);
    }
    if (route == ROUTE_NONE) {
        azsim__arm_error(resp, 404, "NotFound", "The path '%s' is not served here.", req->path);
        goto done;
    }
    if (azsim__inject_fault(q))
        goto done;
    if (route == ROUTE_TOKEN) {
        if (bad_method)
            azsim__arm_error(resp, 405, "MethodNotAllowed", "Use POST for the token endpoint.");
        else
            azsim__token_endpoint(q, q->seg[0]);
    } else if (route == ROUTE_IMDS) {
        if (bad_method)
            azsim__arm_error(resp, 405, "MethodNotAllowed", "Use GET for the IMDS token endpoint.");
        else
            azsim__imds_endpoint(q);
    } else {
        arm(q, bad_method);
    }
done:
    if (route == ROUTE_ARM && !resp->reset)
        ratelimit_headers(q);
    resp->operation = azsim__op_names[q->op];
    azsim__stat(sim, q->op, resp->status);
    free(q);
}
