/*
 * pkg/statefile: controller.stateFile (DESIGN.md sections 5b and 6) — a
 * snapshot of the desired set, so that after a restart the desired set is
 * known (and, when the snapshot was taken after a full sync,
 * authoritative) without waiting for the backend's next full sync.
 *
 * The file is JSON:
 *
 *   {"version":1,"resourceVersion":N,"synced":bool,"keyCheck":"<16 hex>",
 *    "items":[{"id":"..","generation":G,"deleting":bool,
 *              "spec":{...as spec_to_json, secret values "<redacted>"...} | null,
 *              "secretDigests":{"NAME":"<64 hex>"},
 *              "createdAtMs":T,"updatedAtMs":T}],
 *    "checksum":"sha256:<hex of every byte before ,"checksum">"}
 *
 * It never holds a secret value: each secretEnv value is represented by
 * its digest, hex HMAC-SHA256(DEV8_SPEC_HASH_KEY, value) — the same MAC
 * the spec hash uses — so that a PUT after a restart can be recognised as
 * "same secrets, no new generation". Without a key the digest uses the
 * empty HMAC key: it is then a plain hash that anyone holding the file
 * can test guesses against (the file is created 0600; set the key).
 * keyCheck is HMAC(key, a constant), so a load can tell that the key
 * changed since the file was written.
 *
 * Files written before the usage file (pkg/usage, usage_file.h) also
 * had a "usage" member before "checksum": it is still accepted at load
 * and handed over once (statefile_take_legacy_usage), never written.
 *
 * The rename makes a torn file impossible; the checksum catches the rest
 * (bit rot, a hand edit), so a damaged file is refused, never half-read.
 *
 * A spec "spec": null is a tombstone (DELETE of an unknown id), kept so
 * that the deletion resumes after a restart.
 *
 * Writes never block the loop: the snapshot is serialised on the loop,
 * then written by libuv's thread pool to "<path>.tmp.<pid>" in the same
 * directory (O_CREAT|O_TRUNC, 0600), fsynced, closed, renamed over the
 * path, and the directory is fsynced. A crash at any point leaves either
 * the old or the new file, never a torn one; temp files are never read.
 */
#ifndef D8_STATEFILE_H
#define D8_STATEFILE_H

#include "metrics/metrics.h"
#include "spec/spec.h"
#include "store/store.h"

#include <cjson/cJSON.h>

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct statefile statefile_t;

typedef struct statefile_opts {
    uv_loop_t *loop;          /* borrowed; outlives the state file */
    const char *path;         /* copied; controller.stateFile */
    store_t *store;           /* borrowed; outlives statefile_free */
    metrics_t *metrics;       /* borrowed, may be NULL; outlives the loop run
                                 that follows statefile_free */
    const unsigned char *key; /* DEV8_SPEC_HASH_KEY, copied; NULL = empty key */
    size_t keylen;
    uint64_t debounce_ms; /* delay from the first change to the write; 0 = 500 */
    /* Group commit: delay from a statefile_commit to the write, so that
     * the changes of that window share one write and fsync (0: the next
     * loop iteration). */
    uint64_t commit_window_ms;
} statefile_opts_t;

/* Result of a flush. status is 0 or a negative D8_* error. */
typedef void (*statefile_done_fn)(void *ud, int status);

/* A new state file object (nothing is read or written yet). */
statefile_t *statefile_new(const statefile_opts_t *opts);

/*
 * Reads the file once at start, before the loop runs, validates the whole
 * of it (each spec with spec_decode against rules, borrowed for the call)
 * and only then restores every object into the store, which must be
 * empty, and marks the store synced when the file says so. Also removes
 * temp files that a crashed write left behind.
 *
 * Returns 0; D8_ENOENT when there is no file (a first start: fine); or an
 * error with a sentence in err naming the file (and the item and field),
 * after which the store is untouched: D8_EIO (cannot read), D8_ETOOBIG,
 * D8_EPARSE (torn or not JSON), D8_EINVAL (not a valid state file, or a
 * spec the current config rejects). On any error the agent must refuse
 * to start: ignoring the file would make everything look orphaned once a
 * full sync arrives, and the operator must decide. err may be NULL.
 */
int statefile_load(statefile_t *sf, const spec_rules_t *rules, char *err, size_t errlen);

/*
 * Starts following the store: every change of the desired set schedules
 * a write debounce_ms later; at most one write is in flight and changes
 * made meanwhile are written by the next one. A failed write is logged,
 * counted (dev8_statefile_write_errors_total) and retried with backoff
 * (1 s doubling to 60 s) or at the next change after that.
 */
void statefile_start(statefile_t *sf);

/*
 * Older files also held a "usage" section (pkg/usage's accounting, now in
 * its own file, usage_file.h). After a statefile_load that found one, its
 * value (transferred to the caller; NULL when none, and on every later
 * call): the caller migrates it. The section is never written again.
 */
cJSON *statefile_take_legacy_usage(statefile_t *sf);
/*
 * Writes what has not been written yet now (waiting for a write in
 * flight first) and then calls done (asynchronously, always) with 0 or
 * the error of the failed write. One flush at a time: D8_EAGAIN (done
 * not called) while another is pending.
 */
int statefile_flush(statefile_t *sf, statefile_done_fn done, void *ud);

/*
 * Durable acknowledgements. Every change of the desired set takes the next
 * sequence number; a write makes durable every change made before it was
 * serialised.
 *
 * statefile_commit asks for every change made so far to be written within
 * commit_window_ms (changes of the same window, and those made while a
 * write is in flight, share the next write: group commit) and returns the
 * sequence number to wait for, or 0 when all of them are on disk already.
 * While writes fail it only records the wish: the retry backoff stays.
 */
uint64_t statefile_commit(statefile_t *sf);

/*
 * After every write ends (not after statefile_free), fn(ud, durable_seq,
 * status): status 0 when every change up to durable_seq is on disk, D8_EIO
 * when the write failed (durable_seq unchanged). One listener; fn NULL
 * removes it.
 */
typedef void (*statefile_commit_fn)(void *ud, uint64_t durable_seq, int status);
void statefile_on_commit(statefile_t *sf, statefile_commit_fn fn, void *ud);

/*
 * 1 while the file can be written (no write failed since the last one
 * that succeeded); else 0 with a sentence naming the failed operation, the
 * path and the system's reason in reason (len bytes; may be NULL).
 */
int statefile_writable(const statefile_t *sf, char *reason, size_t len);

/*
 * Stops following the store and closes the timer. Changes not written
 * yet are serialised now and written in the background, as is a write in
 * flight; the memory goes when the last one ends, so the loop must run
 * after this call (it ends on its own). No callback is called after
 * this. NULL is a no-op.
 */
void statefile_free(statefile_t *sf);

#endif
