/*
 * pkg/base: the few things every module needs — one error type, checked
 * allocation, a growable byte buffer, clocks and randomness. The intrusive
 * list is in base/list.h, the string map in base/map.h.
 */
#ifndef D8_BASE_H
#define D8_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One error space for the whole code base (libuv's UV_ERRNO_MAP habit):
 * 0 is success, every failure is one of these negative values.
 */
#define D8_ERRNO_MAP(X)                                                                            \
    X(ENOMEM, -1, "out of memory")                                                                 \
    X(EINVAL, -2, "invalid argument")                                                              \
    X(ENOENT, -3, "not found")                                                                     \
    X(EEXIST, -4, "already exists")                                                                \
    X(ECONFLICT, -5, "precondition failed")                                                        \
    X(EIO, -6, "input/output error")                                                               \
    X(ERANGE, -7, "value out of range")                                                            \
    X(ETOOBIG, -8, "too large")                                                                    \
    X(EPARSE, -9, "parse error")                                                                   \
    X(ESYS, -10, "system call failed")                                                             \
    X(EAGAIN, -11, "try again later")                                                              \
    X(ETIMEDOUT, -12, "timed out")                                                                 \
    X(EGONE, -13, "no longer available")                                                           \
    X(ECANCELED, -14, "canceled")                                                                  \
    X(EAUTH, -15, "authentication failed")

enum {
    D8_OK = 0,
#define D8_X(name, val, str) D8_##name = (val),
    D8_ERRNO_MAP(D8_X)
#undef D8_X
};

/* Human text for an error code; never NULL. */
const char *d8_strerror(int err);
/* Symbolic name ("ENOENT") for an error code; never NULL. */
const char *d8_err_name(int err);

/*
 * The one way to stop the process on out-of-memory or an impossible state:
 * writes one fatal JSON line naming `what` (borrowed) to stderr and aborts,
 * so a core dump or a supervisor restart follows. Allocates nothing, since
 * the usual reason to be here is that allocation failed.
 */
void d8_die(const char *what) __attribute__((noreturn));

/*
 * Checked allocation. Running out of memory in a controller is not
 * recoverable in any useful way, so these call d8_die (the git xmalloc
 * convention); callers never check for NULL.
 */
void *d8_xmalloc(size_t n);
void *d8_xcalloc(size_t nmemb, size_t size);
void *d8_xrealloc(void *p, size_t n);
char *d8_xstrdup(const char *s);
char *d8_xstrndup(const char *s, size_t n);
/* Replaces the owned string *dst by a copy of src (NULL clears it); keeps
 * it untouched when equal, so unchanged values cost no allocation. */
void d8_set_str(char **dst, const char *src);

/*
 * A growable byte buffer, always NUL-terminated after d8_buf_init.
 * Embedded by callers: `data` and `len` are theirs to read.
 */
typedef struct d8_buf {
    char *data;
    size_t len;
    size_t cap;
} d8_buf_t;

/* An empty buffer with room for 64 bytes; release it with d8_buf_release. */
void d8_buf_init(d8_buf_t *b);
/* Frees the data and leaves b empty (data NULL) and ready for reuse. */
void d8_buf_release(d8_buf_t *b);
/* Empties b but keeps its memory, so that the next appends reuse it. */
void d8_buf_reset(d8_buf_t *b);
/* Makes room for `extra` more bytes and the NUL, growing by doubling. */
void d8_buf_reserve(d8_buf_t *b, size_t extra);
/*
 * Appends bytes, a string, a character or formatted text; whatever is
 * appended is copied (borrowed). b stays NUL-terminated and grows as needed.
 */
void d8_buf_append(d8_buf_t *b, const void *data, size_t len);
void d8_buf_puts(d8_buf_t *b, const char *s);
void d8_buf_putc(d8_buf_t *b, char c);
void d8_buf_printf(d8_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void d8_buf_vprintf(d8_buf_t *b, const char *fmt, va_list ap);
/* Drops the first n bytes. */
void d8_buf_consume(d8_buf_t *b, size_t n);
/* Returns the data (owned by the caller, NUL-terminated) and leaves b
 * empty (b->data NULL) but ready for reuse. */
char *d8_buf_detach(d8_buf_t *b, size_t *len);
/* Appends s as a JSON string literal, quotes included. */
void d8_buf_json_str(d8_buf_t *b, const char *s);

/* Monotonic milliseconds, for timeouts and durations. */
uint64_t d8_mono_ms(void);
/* Monotonic nanoseconds, for latency measurement. */
uint64_t d8_mono_ns(void);
/* Wall clock milliseconds since the epoch. */
int64_t d8_wall_ms(void);
/* Formats wall milliseconds as RFC 3339 UTC ("2026-11-27T12:00:00Z"). */
void d8_rfc3339(int64_t wall_ms, char out[32]);

/* Constant-time comparison of two byte strings (lengths may differ). */
int d8_consttime_eq(const void *a, size_t alen, const void *b, size_t blen);

/* Fills out with n cryptographically random bytes; 0 or D8_EIO. */
int d8_random_bytes(void *out, size_t n);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void d8_hex(const unsigned char *in, size_t n, char *out);

/*
 * A random version 4 UUID, lower-case with dashes, into out (36 chars and
 * the NUL). For request and delivery ids, which must be unique, not secret:
 * if the system generator fails the clock stands in.
 */
void d8_uuid_v4(char out[37]);

/*
 * A seed for d8_rand01: random, or the clock when the system generator
 * fails; never 0 (the one state xorshift cannot leave).
 */
uint64_t d8_rand_seed(void);
/*
 * Advances *state (xorshift64*) and returns a uniform double in [0, 1).
 * For retry jitter, which needs spread, not secrecy; *state is the
 * caller's, seeded with d8_rand_seed and never 0.
 */
double d8_rand01(uint64_t *state);

/*
 * The delay before retry number `attempt` (1 for the first; 0 counts as
 * 1): d = min(cap_ms, base_ms * 2^(attempt-1)), jittered into [d/2, d)
 * by rand01 in [0, 1) ("equal jitter": spread out, yet never much shorter
 * than the exponential step). rand01 = 1 gives d itself, for a single
 * writer that has nobody to spread out from.
 */
uint64_t d8_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, double rand01);

/*
 * The registry host of the image reference ref (borrowed), lower case,
 * into out (outlen bytes): the part before the first '/' when it looks
 * like a host (has a '.' or a ':', or is "localhost"; Docker's rule), else
 * "docker.io" (also when the host does not fit in out).
 */
void d8_image_registry(const char *ref, char *out, size_t outlen);

#endif
