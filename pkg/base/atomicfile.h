/*
 * Pieces shared by the files the agent replaces atomically (the state file
 * and the usage file): the "sha256:<hex>" checksum that ends them, the
 * clean-up of "<file>.tmp.<pid>" files a killed write left behind, and the
 * bounded read of a whole file at start-up. The wording of errors and logs
 * stays with each caller.
 */
#ifndef D8_ATOMICFILE_H
#define D8_ATOMICFILE_H

#include <stddef.h>

/* The checksum is the last field; it covers every byte before this mark. */
#define ATOMICFILE_CHECKSUM_MARK ",\"checksum\":\""
#define ATOMICFILE_CHECKSUM_PREFIX "sha256:"
#define ATOMICFILE_CHECKSUM_SIZE (sizeof(ATOMICFILE_CHECKSUM_PREFIX) + 64)

/* Writes "sha256:<hex>" of data[0..len) (borrowed), NUL-terminated, into
 * out. Dies as out of memory when OpenSSL fails (it cannot otherwise). */
void atomicfile_checksum(const char *data, size_t len, char out[ATOMICFILE_CHECKSUM_SIZE]);

/* Told of each stale temp file: `file` (borrowed, for the call) and 0 when
 * it was removed, or the errno of the unlink that failed. */
typedef void (*atomicfile_stale_fn)(void *ud, const char *file, int err);

/*
 * Removes every "<basename of path>.tmp.<digits>" file in dir (both
 * borrowed), calling fn(ud, ...) for each one found. They are never read:
 * only a renamed file is complete. An unreadable dir is skipped silently.
 */
void atomicfile_remove_stale_temps(const char *path, const char *dir, atomicfile_stale_fn fn,
                                   void *ud);

/* Why atomicfile_read failed (0 is success). */
typedef enum atomicfile_read_fail {
    ATOMICFILE_READ_OK = 0,
    ATOMICFILE_READ_ABSENT,      /* open: ENOENT */
    ATOMICFILE_READ_OPEN,        /* open failed otherwise (*errnum) */
    ATOMICFILE_READ_NOT_REGULAR, /* fstat failed or not a regular file */
    ATOMICFILE_READ_TOO_BIG,     /* larger than max bytes */
    ATOMICFILE_READ_READ         /* read failed (*errnum) */
} atomicfile_read_fail_t;

/*
 * Reads the whole regular file at path (borrowed) of at most max bytes,
 * synchronously (for start-up, before the loop runs). Returns
 * ATOMICFILE_READ_OK with *out (owned by the caller, NUL-terminated) and
 * *outlen; or the failure, with *errnum set for OPEN and READ (else 0) and
 * *out untouched.
 */
atomicfile_read_fail_t atomicfile_read(const char *path, size_t max, char **out, size_t *outlen,
                                       int *errnum);

#endif
