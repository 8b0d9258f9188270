/*
 * pkg/statefile internals shared with its unit tests: the steps of a
 * write and a crash hook that stops a write after one of them, leaving
 * the files exactly as a killed process would.
 */
#ifndef D8_STATEFILE_INT_H
#define D8_STATEFILE_INT_H

#include "statefile.h"

#include <stddef.h>
#include <stdint.h>

/* The steps of one write, in order (then the clean-up after a failure). */
typedef enum statefile__step {
    STATEFILE__IDLE = 0,
    STATEFILE__OPEN,  /* open "<path>.tmp.<pid>" O_CREAT|O_TRUNC 0600 */
    STATEFILE__WRITE, /* write it all (several calls when short) */
    STATEFILE__FSYNC,
    STATEFILE__CLOSE,
    STATEFILE__RENAME, /* over <path>: the commit point */
    STATEFILE__DIR_OPEN,
    STATEFILE__DIR_FSYNC, /* makes the rename durable */
    STATEFILE__DIR_CLOSE,
    STATEFILE__ABORT_CLOSE, /* after a failure: close what is open */
    STATEFILE__ABORT_UNLINK /* and remove the temp file (before the rename) */
} statefile__step_t;

/*
 * Test hook: the next write stops right after `step` completed (for
 * STATEFILE__WRITE: once at least `bytes` bytes are written; the write is
 * cut into pieces that end there), closes its descriptors the way the
 * kernel would for a killed process, and the state file then writes
 * nothing more. A pending flush gets D8_ECANCELED.
 */
void statefile__crash_at(statefile_t *sf, statefile__step_t step, size_t bytes);

/* Writes completed and failed since statefile_new. */
uint64_t statefile__writes(const statefile_t *sf);
uint64_t statefile__errors(const statefile_t *sf);

#endif
