/*
 * Shared fixture of the dev8-agent API integration tests: writes a config,
 * starts the real bin/dev8-agent through the harness, and offers small
 * helpers for JSON answers, Server-Sent Events streams and raw sockets.
 *
 * Linked into every integration test binary (the Makefile links every
 * non-test_*.c file of test/integration), so it has no cmocka dependency:
 * functions report failures by return value and tests assert on them.
 */
#ifndef D8_TEST_AGENT_FIXTURE_H
#define D8_TEST_AGENT_FIXTURE_H

#include "harness.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define TA_KEY1 "key-one"
#define TA_KEY2 "key-two"
#define TA_MAX_BODY 65536

/* What varies between agents of the tests; zeroed means the defaults of
 * the fixture (maxBodyBytes 65536, ring size of the agent, level debug). */
typedef struct ta_opts {
    int watch_ring_size;       /* api.watchRingSize, 0 = not written */
    const char *extra_yaml;    /* appended verbatim (whole top-level sections) */
} ta_opts_t;

typedef struct ta_agent {
    th_proc_t proc;
    int port;
    int starts;                /* how many times started (log file names) */
    char *config_path;         /* owned */
    char *bin;                 /* owned */
} ta_agent_t;

/* Writes the config and starts the agent on a free port; 0 or -1. */
int ta_start(ta_agent_t *a, const ta_opts_t *opts);
/* SIGTERM and waits (10 s): returns the exit status like th_stop. When it
 * is not 0 the log tail is printed. Frees what ta_start allocated. */
int ta_stop(ta_agent_t *a);
/* Stops (returning that exit status in *stop_status) and starts the agent
 * again with the same config and port; 0 or -1. */
int ta_restart(ta_agent_t *a, int *stop_status);
/* The log of the current (or last) run, malloc'd. */
char *ta_log(const ta_agent_t *a);

/*
 * cmocka-compatible fixtures (int (*)(void **state)): ta_setup starts an
 * agent with default options into *state; ta_teardown stops it unless the
 * test already did (ta_stop) and fails when the exit status is not 0 —
 * which is how leaks found by a sanitized agent fail the test.
 */
int ta_setup(void **state);
int ta_teardown(void **state);

/* Request on the agent with key TA_KEY1 (JSON content type when body). */
int ta_req(const ta_agent_t *a, const char *method, const char *path, const char *body,
           th_resp_t *out);
/* Request with arbitrary extra headers (NULL-terminated) and body as is. */
int ta_req_h(const ta_agent_t *a, const char *method, const char *path,
             const char *const headers[], const char *body, th_resp_t *out);

/* Parses the answer body; NULL when it is not JSON. Caller deletes. */
cJSON *ta_json(const th_resp_t *r);
/* error.code / error.field of an error answer (static storage per call,
 * "" when absent). */
const char *ta_err_code(const th_resp_t *r);
const char *ta_err_field(const th_resp_t *r);
/* Member by dotted path ("status.phase"); numbers index arrays. */
const cJSON *ta_path(const cJSON *root, const char *path);
const char *ta_str(const cJSON *root, const char *path); /* NULL if not a string */
double ta_num(const cJSON *root, const char *path);     /* -1e300 if not a number */
/* The condition of that type in status.conditions, or NULL. */
const cJSON *ta_condition(const cJSON *obj, const char *type);

/* A spec body: {"userId":u,"name":n,"cloudRegion":r<, extra>} where extra
 * is more JSON members without the leading comma (may be NULL). malloc'd. */
char *ta_spec(const char *user, const char *name, const char *region, const char *extra);
/* PUT /api/v1/environments/<id> with ta_spec(...); returns the status. */
long ta_put(const ta_agent_t *a, const char *id, const char *body);

/* 1 when the id matches ^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$ without "--". */
int ta_id_valid(const char *id);

/* One Server-Sent Event. */
typedef struct ta_event {
    long long id;              /* -1 when the event had no id line */
    char type[32];
    char *data;                /* owned */
} ta_event_t;

/* A watch stream read without blocking the test between reads. */
typedef struct ta_watch {
    void *multi, *easy, *hdrs; /* curl handles */
    char *pending;             /* unparsed stream text */
    size_t npending;
    char *all;                 /* everything received (for secret checks) */
    size_t nall;
    char *headers;
    size_t nheaders;
    ta_event_t *events;
    size_t nevents, cap;
    size_t ncomments;          /* ": ..." lines seen */
    int done;                  /* the transfer ended */
    long status;
} ta_watch_t;

/* Opens GET <path> with key TA_KEY1; last_event_id may be NULL. */
int ta_watch_open(ta_watch_t *w, const ta_agent_t *a, const char *path,
                  const char *last_event_id);
/* Reads until at least n events arrived, the stream ended, or timeout;
 * returns the number of events. n 0 waits for the status line only. */
size_t ta_watch_wait(ta_watch_t *w, size_t n, int timeout_ms);
/* Reads for exactly ms milliseconds (to prove nothing more arrives). */
void ta_watch_drain(ta_watch_t *w, int ms);
void ta_watch_close(ta_watch_t *w);

/* Milliseconds of a monotonic clock. */
long long ta_now_ms(void);
void ta_sleep_ms(int ms);

/* A connected non-blocking TCP socket to 127.0.0.1:port, or -1. */
int ta_connect(int port);
/* Sends all bytes (waiting up to timeout_ms); 0, or -1 when the peer is
 * gone or the time ran out. */
int ta_send_all(int fd, const void *data, size_t len, int timeout_ms);
/* Reads what arrives within timeout_ms into buf (appending, NUL-terminated)
 * until the peer closes: returns 1 when closed, 0 on timeout, -1 on error
 * (e.g. reset). */
int ta_recv_until_close(int fd, char **buf, size_t *len, int timeout_ms);

/* Occurrences of needle in haystack. */
size_t ta_count(const char *haystack, const char *needle);

#endif
