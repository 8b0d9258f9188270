/*
 * pkg/statefile internals: the file format shared by the writer
 * (statefile.c) and the reader (statefile_decode.c), and, for the unit
 * tests, the steps of a write and a crash hook that stops a write after
 * one of them, leaving the files exactly as a killed process would.
 */
#ifndef D8_STATEFILE_INT_H
#define D8_STATEFILE_INT_H

#include "statefile.h"

#include "base/atomicfile.h"

#include <stddef.h>
#include <stdint.h>

#define STATEFILE__FORMAT_VERSION 1
/* Hex digits of keyCheck: HMAC(key, a constant), cut. */
#define STATEFILE__KEY_CHECK_LEN 16
/* Formats a sentence into err (errlen bytes, not NULL) and returns code. */
int statefile__failf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A state file's contents once decoded and validated: what a load restores. */
typedef struct statefile__doc {
    store_restore_item_t *items; /* owned; n of them, in file order */
    size_t n;
    int64_t rv; /* resourceVersion */
    int synced;
    char key_check[STATEFILE__KEY_CHECK_LEN + 1];
    cJSON *usage; /* owned: an older file's "usage" section, NULL when absent */
} statefile__doc_t;

/*
 * Decodes and validates the whole text buf[0..len) (borrowed) of the file
 * at path into *doc, each spec with spec_decode against rules (borrowed).
 * Returns 0, with *doc owned by the caller (statefile__doc_release); or
 * D8_EPARSE (torn, damaged or not JSON) or D8_EINVAL (not a valid state
 * file) with a sentence naming path (and the item and field) in err, and
 * *doc zeroed.
 */
int statefile__decode(const char *path, const char *buf, size_t len, const spec_rules_t *rules,
                      statefile__doc_t *doc, char *err, size_t errlen);

/* Frees what the document still owns and zeroes it; safe on a zeroed one. */
void statefile__doc_release(statefile__doc_t *doc);

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
