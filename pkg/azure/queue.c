/*
 * The queue and the throttle buckets of pkg/azure: requests wait per
 * priority (FIFO within one) until the in-flight cap, the token, their
 * backoff and their client-side buckets allow; one uv_timer runs the
 * scheduler (pump) when the earliest of those may have changed. The
 * buckets mirror ARM's and ACI's meters and follow what ARM answers: the
 * x-ms-ratelimit-remaining-* headers and Retry-After pauses.
 */
#include "azure_int.h"

#include <stdlib.h>
#include <string.h>

const char *const azure__bucket_kind_names[AZURE_BUCKET_KINDS] = {"read",
                                                                  "write",
                                                                  "delete",
                                                                  "aci_create",
                                                                  "aci_delete",
                                                                  "aci_create_hourly",
                                                                  "aci_delete_hourly"};

static void sched_cb(uv_timer_t *t);

/* ------------------------------------------------------------ buckets */

azure__bucket_t *azure__bucket_of(azure__bucket_entry_t *be, int kind)
{
    return kind < AZ_ARM_KINDS ? &be->arm->b[kind] : &be->aci[kind - AZ_ARM_KINDS];
}

/* The ARM buckets of a subscription, or NULL when nothing used them. */
static azure__arm_buckets_t *arm_find(const azure_client_t *c, const char *sub)
{
    for (d8_list_t *it = c->arm_buckets.next; it != &c->arm_buckets; it = it->next) {
        azure__arm_buckets_t *ab = d8_container_of(it, azure__arm_buckets_t, link);
        if (strcmp(ab->subscription, sub ? sub : "") == 0)
            return ab;
    }
    return NULL;
}

/* The buckets of a subscription+region, or NULL when nothing used them. */
static azure__bucket_entry_t *bucket_find(const azure_client_t *c, const char *sub,
                                          const char *region)
{
    for (d8_list_t *it = c->buckets.next; it != &c->buckets; it = it->next) {
        azure__bucket_entry_t *be = d8_container_of(it, azure__bucket_entry_t, link);
        if (strcmp(be->subscription, sub ? sub : "") == 0 &&
            strcmp(be->region, region ? region : "") == 0)
            return be;
    }
    return NULL;
}

/* The buckets of a subscription+region, created full on first use (the
 * subscription's ARM buckets too, when it is the first of its regions). */
static azure__bucket_entry_t *bucket_get(azure_client_t *c, const char *sub, const char *region)
{
    if (!sub)
        sub = "";
    if (!region)
        region = "";
    azure__bucket_entry_t *be = bucket_find(c, sub, region);
    if (be)
        return be;
    uint64_t now = d8_mono_ms();
    azure__arm_buckets_t *ab = arm_find(c, sub);
    if (!ab) {
        ab = d8_xcalloc(1, sizeof(*ab));
        ab->subscription = d8_xstrdup(sub);
        for (int k = 0; k < AZ_ARM_KINDS; k++)
            azure__bucket_init(&ab->b[k], c->bopts[k].burst, c->bopts[k].per_second, now);
        d8_list_push(&c->arm_buckets, &ab->link);
    }
    be = d8_xcalloc(1, sizeof(*be));
    be->subscription = d8_xstrdup(sub);
    be->region = d8_xstrdup(region);
    be->arm = ab;
    for (int k = AZ_ARM_KINDS; k < AZURE_BUCKET_KINDS; k++)
        azure__bucket_init(azure__bucket_of(be, k), c->bopts[k].burst, c->bopts[k].per_second, now);
    d8_list_push(&c->buckets, &be->link);
    return be;
}

/* The ms until every bucket of r can give a token (0 = now). */
static uint64_t req_bucket_wait(azure__req_t *r, uint64_t now)
{
    if (!r->bkt)
        return 0;
    const azure__op_info_t *oi = &azure__ops[r->op];
    uint64_t w = 0;
    if (oi->bucket >= 0) {
        uint64_t x = azure__bucket_wait_ms(azure__bucket_of(r->bkt, oi->bucket), now);
        w = x > w ? x : w;
    }
    if (oi->aci_bucket >= 0) {
        uint64_t x = azure__bucket_wait_ms(azure__bucket_of(r->bkt, oi->aci_bucket), now);
        w = x > w ? x : w;
        x = azure__bucket_wait_ms(azure__bucket_of(r->bkt, AZURE_BUCKET_HOURLY(oi->aci_bucket)),
                                  now);
        w = x > w ? x : w;
    }
    return w;
}

static void req_bucket_take(azure__req_t *r)
{
    if (!r->bkt)
        return;
    const azure__op_info_t *oi = &azure__ops[r->op];
    if (oi->bucket >= 0)
        azure__bucket_take(azure__bucket_of(r->bkt, oi->bucket));
    if (oi->aci_bucket >= 0) {
        azure__bucket_take(azure__bucket_of(r->bkt, oi->aci_bucket));
        azure__bucket_take(azure__bucket_of(r->bkt, AZURE_BUCKET_HOURLY(oi->aci_bucket)));
    }
}

void azure__buckets_release(azure_client_t *c)
{
    while (!d8_list_empty(&c->buckets)) {
        azure__bucket_entry_t *be = d8_container_of(c->buckets.next, azure__bucket_entry_t, link);
        d8_list_del(&be->link);
        free(be->subscription);
        free(be->region);
        free(be);
    }
    while (!d8_list_empty(&c->arm_buckets)) {
        azure__arm_buckets_t *ab = d8_container_of(c->arm_buckets.next, azure__arm_buckets_t, link);
        d8_list_del(&ab->link);
        free(ab->subscription);
        free(ab);
    }
}

void azure__buckets_clamp(azure__req_t *r)
{
    /* ARM tells how much of its bucket is left: when nearly empty, drain
     * ours to match so the client slows to the refill rate. */
    if (!r->bkt)
        return;
    for (int k = 0; k < AZ_ARM_KINDS; k++)
        if (r->remaining[k] >= 0 && r->remaining[k] <= r->c->low_water)
            azure__bucket_clamp(&r->bkt->arm->b[k], (double)r->remaining[k]);
}

void azure__buckets_pause(azure__req_t *r, uint64_t until_ms, int throttled)
{
    /* Retry-After pauses the whole bucket: nothing of that kind goes to
     * this subscription (ARM's) or subscription+region (ACI's) before the
     * time named. An ACI 429 leaves the subscription's other writes alone;
     * ARM's leaves ACI's meters alone. */
    if (!r->bkt)
        return;
    const azure__op_info_t *oi = &azure__ops[r->op];
    if (oi->bucket >= 0 && (throttled & AZ_THROTTLED_ARM))
        azure__bucket_pause(azure__bucket_of(r->bkt, oi->bucket), until_ms);
    if (oi->aci_bucket >= 0 && (throttled & AZ_THROTTLED_ACI)) {
        azure__bucket_pause(azure__bucket_of(r->bkt, oi->aci_bucket), until_ms);
        azure__bucket_pause(azure__bucket_of(r->bkt, AZURE_BUCKET_HOURLY(oi->aci_bucket)),
                            until_ms);
    }
}

/* The bucket of kind for subscription+region as the public calls see it:
 * an ARM kind is the subscription's whatever the region, an ACI kind the
 * region's; NULL when never used. */
static const azure__bucket_t *bucket_lookup(const azure_client_t *c, const char *subscription,
                                            const char *region, int kind)
{
    if (kind < AZ_ARM_KINDS) {
        const azure__arm_buckets_t *ab = arm_find(c, subscription);
        return ab ? &ab->b[kind] : NULL;
    }
    azure__bucket_entry_t *be = bucket_find(c, subscription, region);
    return be ? azure__bucket_of(be, kind) : NULL;
}

int azure_client_bucket_level(const azure_client_t *c, const char *subscription, const char *region,
                              azure_bucket_kind_t kind, double *tokens)
{
    if ((int)kind < 0 || kind >= AZURE_BUCKET_KINDS)
        return D8_EINVAL;
    const azure__bucket_t *b = bucket_lookup(c, subscription, region, (int)kind);
    if (!b)
        return D8_ENOENT;
    *tokens = azure__bucket_peek(b, d8_mono_ms());
    return 0;
}

uint64_t azure_client_bucket_wait_ms(azure_client_t *c, const char *subscription,
                                     const char *region, azure_bucket_kind_t kind)
{
    if ((int)kind < 0 || kind >= AZURE_BUCKET_KINDS)
        return 0;
    const azure__bucket_t *b = bucket_lookup(c, subscription, region, (int)kind);
    if (!b)
        return 0; /* never used: full */
    uint64_t now = d8_mono_ms();
    uint64_t wait = azure__bucket_token_wait_ms(b, now);
    if (kind == AZURE_BUCKET_ACI_CREATE || kind == AZURE_BUCKET_ACI_DELETE) {
        const azure__bucket_t *h =
            bucket_lookup(c, subscription, region, AZURE_BUCKET_HOURLY((int)kind));
        uint64_t hourly = azure__bucket_token_wait_ms(h, now);
        wait = hourly > wait ? hourly : wait;
    }
    return wait;
}

/* ------------------------------------------------------------ queue */

void azure__sched_kick(azure_client_t *c, uint64_t delay_ms)
{
    if (c->torn_down || c->closing)
        return;
    uint64_t due = d8_mono_ms() + delay_ms;
    if (due >= c->sched_due)
        return;
    c->sched_due = due;
    uv_timer_start(&c->sched_timer, sched_cb, delay_ms, 0);
}

void azure__req_submit(azure__req_t *r, const azure_scope_t *s)
{
    azure_client_t *c = r->c;
    if (s && r->op != AZ_OP_TOKEN)
        r->bkt = bucket_get(c, s->subscription_id, s->region);
    if (c->closing) {
        /* Only reached from inside a callback during teardown: complete at
         * once, there will be no later loop turn for this client. */
        azure__req_finish(r, D8_ECANCELED, "", "the Azure client is shutting down");
        return;
    }
    d8_list_push(&c->queue[r->prio], &r->link);
    azure__req_set_state(r, AZ_REQ_QUEUED);
    azure__sched_kick(c, 0);
}

void azure__req_requeue(azure__req_t *r, uint64_t now, uint64_t delay_ms)
{
    /* A retried request goes back to the head of its priority: it is
     * older than anything queued behind it (FIFO per priority). */
    azure_client_t *c = r->c;
    r->not_before = now + delay_ms;
    d8_list_push(c->queue[r->prio].next, &r->link);
    azure__req_set_state(r, AZ_REQ_QUEUED);
    azure__sched_kick(c, delay_ms);
}

/* The scheduler: starts what may start, and sleeps until the earliest
 * moment something else may. */
static void pump(azure_client_t *c)
{
    uint64_t now = d8_mono_ms();
    uint64_t next = UINT64_MAX;
    int token_ok = -1;

    azure__auth_pump(c);

    for (int q = 0; q <= AZURE_PRIO_COUNT && !c->closing; q++) {
        d8_list_t *it = c->queue[q].next;
        while (it != &c->queue[q] && !c->closing) {
            azure__req_t *r = d8_container_of(it, azure__req_t, link);
            it = it->next;
            if (q != AZ_SYS_QUEUE && c->ninflight >= (size_t)c->max_inflight)
                goto out;
            if (r->not_before > now) {
                if (r->not_before < next)
                    next = r->not_before;
                continue;
            }
            if (r->needs_token) {
                if (token_ok < 0)
                    token_ok = azure__auth_ready(c, now);
                if (!token_ok)
                    continue;
            }
            uint64_t w = req_bucket_wait(r, now);
            if (w > 0) {
                if (!r->throttle_counted) {
                    r->throttle_counted = 1;
                    c->st_throttle_waits++;
                }
                if (now + w < next)
                    next = now + w;
                continue;
            }
            req_bucket_take(r);
            d8_list_del(&r->link);
            azure__req_set_state(r, AZ_REQ_INFLIGHT);
            d8_list_push(&c->inflight, &r->link);
            int rc = azure__req_start(r);
            if (rc < 0) {
                azure__req_release_easy(r);
                d8_list_del(&r->link);
                azure__req_finish(r, rc, "", "could not start the HTTP request");
            }
        }
    }
out:
    if (!c->closing && !d8_list_empty(&c->auth.waiters) && azure__auth_ready(c, now))
        azure__auth_flush_waiters(c, 0);
    if (!c->closing && next != UINT64_MAX)
        azure__sched_kick(c, next > now ? next - now : 0);
}

static void sched_cb(uv_timer_t *t)
{
    azure_client_t *c = t->data;
    c->sched_due = UINT64_MAX;
    azure__enter(c);
    if (!c->closing)
        pump(c);
    azure__leave(c);
}

void azure__fail_token_waiters(azure_client_t *c, const char *code, const char *message)
{
    d8_list_t local;
    d8_list_init(&local);
    for (int q = 1; q <= AZURE_PRIO_COUNT; q++) {
        while (!d8_list_empty(&c->queue[q])) {
            d8_list_t *n = c->queue[q].next;
            d8_list_del(n);
            d8_list_push(&local, n);
        }
    }
    /* The requests stay in state QUEUED while on the local list; finish
     * unlinks them from it. */
    while (!d8_list_empty(&local)) {
        azure__req_t *r = d8_container_of(local.next, azure__req_t, link);
        if (!r->needs_token) {
            d8_list_del(&r->link);
            d8_list_push(&c->queue[r->prio], &r->link);
            continue;
        }
        azure__req_finish(r, D8_EAUTH, code, message);
    }
}
