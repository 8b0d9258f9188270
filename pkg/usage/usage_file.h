/*
 * pkg/usage: the usage file, "<controller.stateFile>.usage" — the
 * accountant (usage.h) kept apart from the state file, so that the state
 * file's durable writes (every acknowledged mutation waits for one) hold
 * the desired set only, whatever usage history has accumulated.
 *
 * The file is JSON:
 *
 *   {"version":1,"writtenAtMs":T,"usage":{...usage_save...},
 *    "checksum":"sha256:<hex of every byte before ,"checksum">"}
 *
 * It is written at most every interval_ms while usage_changes() moves,
 * and once more by usage_file_free (the agent's graceful stop). Each
 * write copies the accountant on the loop (usage_clone), then serialises
 * the copy and writes it on libuv's thread pool:
 * "<path>.tmp.<pid>" in the same directory (O_CREAT|O_TRUNC, 0600),
 * written, fsynced, closed, renamed over the path, and the directory
 * fsynced, so a crash leaves the old or the new file, never a torn one.
 * One write at a time. A failed write is logged, counted
 * (dev8_usagefile_write_errors_total) and retried at the next tick; it
 * never fails /readyz nor a mutation: usage is not part of the state
 * file's acknowledgement contract.
 */
#ifndef D8_USAGE_FILE_H
#define D8_USAGE_FILE_H

#include "metrics/metrics.h"
#include "usage.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct usage_file usage_file_t;

typedef struct usage_file_opts {
    uv_loop_t *loop;      /* borrowed; outlives the usage file */
    const char *path;     /* copied; "<controller.stateFile>.usage" */
    usage_t *usage;       /* borrowed; outlives usage_file_free (not the loop run after it) */
    metrics_t *metrics;   /* borrowed, may be NULL; outlives the loop run after usage_file_free */
    uint64_t interval_ms; /* at most one write per interval; 0 = 60000 */
} usage_file_opts_t;

/* A new usage file object (nothing is read or written yet). The
 * accountant's state at this call counts as written: create it before
 * anything is observed or loaded. */
usage_file_t *usage_file_new(const usage_file_opts_t *opts);

/*
 * Reads the file once at start, before the loop runs, verifies its
 * checksum and structure, and hands the "usage" member to usage_load
 * (all or nothing). Also removes temp files a killed write left behind.
 * Returns 0; D8_ENOENT when there is no file (usage untouched); or, with
 * a sentence naming the file in err (errlen > 0), D8_EIO (cannot read),
 * D8_ETOOBIG, D8_EPARSE (damaged: checksum or JSON) or D8_EINVAL (not a
 * usage file), usage untouched.
 */
int usage_file_load(usage_file_t *uf, char *err, size_t errlen);

/*
 * Writes the accountant now, synchronously (atomic and durable as the
 * background writes), for start-up only, before the loop runs: the
 * migration of an old state file's "usage" section. 0, or D8_EIO with a
 * sentence naming the file and the failed operation in err.
 */
int usage_file_write_now(usage_file_t *uf, char *err, size_t errlen);

/* Starts the timer: every interval_ms, a write when usage changed since
 * the last one that succeeded (or was started, while it is in flight). */
void usage_file_start(usage_file_t *uf);

/*
 * Stops the timer and writes what changed since the last write, in the
 * background (after a write in flight). The accountant is copied here,
 * so it may be freed after this call; the memory goes when the last write
 * ends, so the loop must run after this call. NULL is a no-op.
 */
void usage_file_free(usage_file_t *uf);

#endif
