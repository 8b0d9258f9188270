/*
 * pkg/events: what happened to each environment, the `kubectl describe`
 * of dev8 — a bounded ring per environment (EVENTS_PER_ENV, oldest out)
 * of phase transitions, ARM mutations and their results, Azure
 * instance-view events newly seen, and reaper decisions. A repeat of the
 * newest event (same type, reason, source and message) counts up instead
 * of taking a slot. One listener (the API's watch streams) hears each
 * event as it is recorded. Loop thread only; in memory (a restart starts
 * every ring empty). A ring grows with its events: an environment with
 * few events costs little.
 */
#ifndef D8_EVENTS_H
#define D8_EVENTS_H

#include "base/base.h"

#include <stdint.h>

#define EVENTS_PER_ENV 64
#define EVENTS_MESSAGE_MAX 512

typedef struct events events_t;

/* One event; message (owned by the ring) cut at EVENTS_MESSAGE_MAX bytes. */
typedef struct env_event {
    int64_t time_ms; /* wall ms of the last occurrence */
    char type[8];    /* Normal or Warning */
    char reason[40]; /* PhaseChanged, ArmRequest, ArmSucceeded, ArmFailed, an Azure name, ... */
    char source[8];  /* agent, azure or reaper */
    int count;       /* occurrences merged into it */
    char *message;
} env_event_t;

/* An empty set of rings. */
events_t *events_new(void);
/* Frees every ring. NULL is ignored. */
void events_free(events_t *ev);

/*
 * Records an event of env id (NULL ev is ignored): type "Normal" or
 * "Warning", reason and source as in env_event_t, time_ms its wall time
 * (0: now). Azure's own events pass their count; others 1. Calls the
 * listener with the event as stored.
 */
void events_add(events_t *ev, const char *id, const char *type, const char *reason,
                const char *source, int64_t time_ms, int count, const char *message);
/* Drops the ring of id (the environment is gone). */
void events_forget(events_t *ev, const char *id);
/* Appends {"environmentId":id,"items":[...]} (oldest first; [] when none). */
void events_json(const events_t *ev, const char *id, d8_buf_t *out);
/* Appends one event as the API shows it: {"time","type","reason","message","source","count"}. */
void events_item_json(const env_event_t *e, d8_buf_t *out);
/* fn(ud, id, event) after each events_add; fn NULL unregisters. */
void events_on_add(events_t *ev, void (*fn)(void *ud, const char *id, const env_event_t *e),
                   void *ud);
/* Events held, over every ring (metrics, tests). */
size_t events_count(const events_t *ev);

#endif
