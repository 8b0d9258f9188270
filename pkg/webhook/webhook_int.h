/*
 * pkg/webhook internals (webhook__ prefix): the per-environment delivery
 * bookkeeping as pure functions, and the backoff, so the unit tests can
 * check coalescing and ordering without any I/O.
 */
#ifndef D8_WEBHOOK_INT_H
#define D8_WEBHOOK_INT_H

#include "webhook.h"

/* One state of an environment to deliver. body NULL means none. */
typedef struct webhook__state {
    char *body; /* owned: the object JSON */
    size_t len;
    store_event_type_t type;
    uint64_t rv;
    char delivery[37]; /* X-Dev8-Delivery; "" until the first attempt */
} webhook__state_t;

/*
 * What one environment owes the endpoint: the latest state not yet sent
 * (owed) and the one on the wire (sending). Only ever one of each.
 */
typedef struct webhook__slot {
    webhook__state_t owed;
    webhook__state_t sending;
    int failures; /* consecutive failed attempts */
} webhook__slot_t;

/* The event type to announce when `newer` replaces an undelivered
 * `older`: a never-delivered ADDED stays ADDED under MODIFIED, DELETED
 * wins, an ADDED after an undelivered DELETED is ADDED. */
store_event_type_t webhook__coalesce(store_event_type_t older, store_event_type_t newer);

/* A new state: replaces what is owed (body copied; the previous owed body
 * is freed). Never touches the one being sent. */
void webhook__owe(webhook__slot_t *s, store_event_type_t type, uint64_t rv, const char *body,
                  size_t len);

/* When nothing is being sent and something is owed, moves it to sending
 * and answers 1; else 0. */
int webhook__take(webhook__slot_t *s);

/* The state being sent was delivered: drops it, resets failures. */
void webhook__delivered(webhook__slot_t *s);

/* The state being sent failed: it is owed again unless a newer state is
 * owed already (which then takes over, with the coalesced type). Keeps
 * the delivery id when the same body will be retried. failures++. */
void webhook__failed(webhook__slot_t *s);

/* 1 when nothing is owed nor being sent. */
int webhook__idle(const webhook__slot_t *s);

/* Frees both states. */
void webhook__slot_release(webhook__slot_t *s);

/*
 * Delay before retry number `failures` (1 for the first): d8_backoff_ms
 * (min(cap, base * 2^(failures-1)) jittered into its upper half by r in
 * [0,1)), never under base.
 */
uint64_t webhook__backoff_ms(int failures, uint64_t base_ms, uint64_t cap_ms, double r);

#endif
