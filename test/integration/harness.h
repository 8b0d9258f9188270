/*
 * Integration test harness: starts the real binaries (bin/dev8-agent,
 * bin/azsim) as child processes on free loopback ports and talks to them
 * over HTTP with libcurl (blocking easy API: fine in a test process).
 *
 * Binaries are found in $D8_BIN_DIR (set by `make test`; default "bin").
 * Child output goes to a log file under $D8_TEST_TMP or /tmp, so tests can
 * grep logs (e.g. that no secret was ever printed).
 */
#ifndef D8_TEST_HARNESS_H
#define D8_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct th_proc {
    pid_t pid;
    int port;           /* the HTTP port the process listens on */
    char log_path[512]; /* its stdout+stderr */
} th_proc_t;

/* A fresh temporary directory for this test process (created once). */
const char *th_tmpdir(void);
/* Absolute path of a binary in $D8_BIN_DIR ("dev8-agent", "azsim"); static buffer per call site is
 * not needed: result is malloc'd, caller frees. */
char *th_bin(const char *name);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int th_free_port(void);
/* Writes text to a new file in th_tmpdir(); returns its malloc'd path. */
char *th_write_file(const char *name, const char *text);

/*
 * Starts argv[0] with argv, the current environment plus `env` entries
 * ("NAME=value", NULL-terminated, may be NULL), output to a log named
 * `name` in th_tmpdir(). Then waits (up to timeout_ms) until
 * GET http://127.0.0.1:<port><ready_path> answers any HTTP status.
 * Returns 0, or -1 (the process is killed and the log tail printed).
 */
int th_start(th_proc_t *p, const char *name, char *const argv[], char *const env[], int port,
             const char *ready_path, int timeout_ms);
/* Sends sig and waits up to timeout_ms; returns the exit status
 * (0..255), 128+signal when killed by a signal, or -1 on timeout (then
 * SIGKILLed). */
int th_stop(th_proc_t *p, int sig, int timeout_ms);
/* 1 when the process is still running. */
int th_alive(th_proc_t *p);
/* Reads the whole log into a malloc'd string. */
char *th_read_log(const th_proc_t *p);

typedef struct th_resp {
    long status; /* 0 on transport failure */
    char *body;  /* NUL-terminated, malloc'd */
    size_t len;
    char *headers; /* raw header block, malloc'd */
} th_resp_t;

/*
 * One HTTP request. headers: NULL-terminated "Name: value" strings, may
 * be NULL. body may be NULL. Returns 0 when an answer arrived.
 */
int th_http(const char *method, const char *url, const char *const headers[], const char *body,
            th_resp_t *out);
/* Convenience: method on http://127.0.0.1:<port><path> with
 * Authorization: Bearer <key> (key may be NULL) and Content-Type JSON when
 * a body is given. */
int th_api(int port, const char *method, const char *path, const char *key, const char *body,
           th_resp_t *out);
/* Value of a response header (case-insensitive), malloc'd, or NULL. */
char *th_resp_header(const th_resp_t *r, const char *name);
void th_resp_free(th_resp_t *r);

/* Sends raw bytes on a new TCP connection and reads until the peer closes
 * or timeout_ms passes; returns malloc'd reply (NUL-terminated). */
char *th_raw(int port, const char *data, size_t len, int timeout_ms);

/* The value in KiB of a /proc/<pid>/status field such as "VmRSS:", or
 * -1 when it cannot be read. */
long th_proc_kib(pid_t pid, const char *field);
/* 1 when process pid has libasan mapped (a sanitizer build). */
int th_proc_sanitized(pid_t pid);

/* Polls until pred(ud) returns non-zero or timeout_ms passes; 0 / -1. */
int th_wait_until(int (*pred)(void *ud), void *ud, int timeout_ms);

#endif
