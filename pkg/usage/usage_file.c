/*
 * pkg/usage: the usage file (format and contract in usage_file.h). The
 * write runs as one uv_queue_work job on a thread of libuv's pool: the
 * loop only copies the accountant (usage_clone: memcpy of the buckets,
 * ~16 KB per environment); the JSON, the checksum and the plain POSIX
 * calls of the atomic write happen on the thread, which owns the copy.
 */
#include "usage_file.h"
#include "usage_int.h"

#include "base/atomicfile.h"
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORMAT_VERSION 1
#define DEFAULT_INTERVAL_MS 60000
/* Far above 35 days of buckets for 10,000 environments (~40 KB each). */
#define MAX_FILE_BYTES ((size_t)1 << 30)

struct usage_file {
    uv_loop_t *loop;
    usage_t *usage;
    char *path;
    char *tmp_path; /* "<path>.tmp.<pid>" */
    char *dir_path;
    uint64_t interval_ms;
    metric_family_t *m_writes, *m_errors, *m_last_ok;
    uv_timer_t timer;
    int timer_closed;
    int freed;
    uint64_t saved;   /* usage_changes() of the last write that succeeded */
    uint64_t pending; /* usage_changes() of the write in flight */
    /* The write in flight (one at a time). */
    int writing;
    uv_work_t work;
    usage_t *snap;             /* the copy it writes, owned by the job */
    size_t len;                /* bytes it wrote (set by the thread) */
    int werr;                  /* errno of the failed step, 0 on success */
    const char *wop;           /* the failed step */
    usage_t *next;             /* copied by usage_file_free while a write was in flight */
    uint64_t nwrites, nerrors; /* for the tests (usage_int.h) */
};

usage_file_t *usage_file_new(const usage_file_opts_t *opts)
{
    usage_file_t *uf = d8_xcalloc(1, sizeof(*uf));
    uf->loop = opts->loop;
    uf->usage = opts->usage;
    uf->path = d8_xstrdup(opts->path);
    uf->interval_ms = opts->interval_ms ? opts->interval_ms : DEFAULT_INTERVAL_MS;
    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b, "%s.tmp.%ld", uf->path, (long)getpid());
    uf->tmp_path = d8_buf_detach(&b, NULL);
    const char *slash = strrchr(uf->path, '/');
    if (!slash)
        uf->dir_path = d8_xstrdup(".");
    else if (slash == uf->path)
        uf->dir_path = d8_xstrdup("/");
    else
        uf->dir_path = d8_xstrndup(uf->path, (size_t)(slash - uf->path));
    if (opts->metrics) {
        uf->m_writes = metrics_counter(opts->metrics, "dev8_usagefile_writes_total",
                                       "Usage file snapshots written and made durable.", 0, NULL);
        uf->m_errors = metrics_counter(opts->metrics, "dev8_usagefile_write_errors_total",
                                       "Usage file writes that failed (retried).", 0, NULL);
        uf->m_last_ok = metrics_gauge(opts->metrics, "dev8_usagefile_last_write_timestamp_seconds",
                                      "When the usage file was last written.", 0, NULL);
    }
    uv_timer_init(uf->loop, &uf->timer);
    uf->timer.data = uf;
    /* Nothing to write until usage changes (a load counts as one: the
     * caller sets saved after a load). */
    uf->saved = usage_changes(uf->usage);
    return uf;
}

/* The whole file for u (borrowed) as text (owned by the caller). Called on
 * the pool's thread with a copy, and at start-up. */
static char *serialise(const usage_t *u, size_t *len)
{
    d8_buf_t out;
    d8_buf_init(&out);
    d8_buf_printf(&out, "{\"version\":%d,\"writtenAtMs\":%lld,\"usage\":", FORMAT_VERSION,
                  (long long)d8_wall_ms());
    usage_save(u, &out);
    char sum[ATOMICFILE_CHECKSUM_SIZE];
    atomicfile_checksum(out.data, out.len, sum);
    d8_buf_printf(&out, ATOMICFILE_CHECKSUM_MARK "%s\"}\n", sum);
    return d8_buf_detach(&out, len);
}

/* ---- the write (a thread of the pool, or start-up) ------------------------- */

/* Writes buf to tmp, fsyncs, renames over path and fsyncs dir. Returns 0,
 * or an errno with the failed step in *op (the temp file removed). */
static int write_atomic(const usage_file_t *uf, const char *buf, size_t len, const char **op)
{
    int fd = open(uf->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        *op = "open temp file";
        return errno;
    }
    int e = 0;
    for (size_t off = 0; off < len && !e;) {
        ssize_t n = write(fd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            e = n < 0 ? errno : EIO, *op = "write";
        else
            off += (size_t)n;
    }
    if (!e && fsync(fd) != 0)
        e = errno, *op = "fsync";
    if (close(fd) != 0 && !e)
        e = errno, *op = "close";
    if (!e && rename(uf->tmp_path, uf->path) != 0)
        e = errno, *op = "rename";
    if (e) {
        unlink(uf->tmp_path);
        return e;
    }
    int dfd = open(uf->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        *op = "open directory";
        return errno;
    }
    /* Some file systems cannot fsync a directory: the rename is then as
     * durable as they make it. */
    if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)
        e = errno, *op = "fsync directory";
    close(dfd);
    return e;
}

/* The pool's thread: touches only the copy, the paths and the outcome. */
static void work_cb(uv_work_t *w)
{
    usage_file_t *uf = w->data;
    char *buf = serialise(uf->snap, &uf->len);
    usage_free(uf->snap);
    uf->snap = NULL;
    uf->wop = NULL;
    uf->werr = write_atomic(uf, buf, uf->len, &uf->wop);
    free(buf);
}

static void after_work_cb(uv_work_t *w, int status);

/* Starts writing snap (transferred). */
static void begin_write(usage_file_t *uf, usage_t *snap)
{
    uf->writing = 1;
    uf->snap = snap;
    uf->len = 0;
    uf->werr = 0;
    uf->work.data = uf;
    int rc = uv_queue_work(uf->loop, &uf->work, work_cb, after_work_cb);
    if (rc < 0) {
        uf->werr = EIO;
        uf->wop = "queue";
        after_work_cb(&uf->work, rc);
    }
}

static void maybe_release(usage_file_t *uf)
{
    if (!uf->freed || !uf->timer_closed || uf->writing)
        return;
    usage_free(uf->next);
    free(uf->path);
    free(uf->tmp_path);
    free(uf->dir_path);
    free(uf);
}

/* Records the outcome of the write that just ended. */
static void note_outcome(usage_file_t *uf)
{
    if (uf->werr == 0) {
        uf->nwrites++;
        uf->saved = uf->pending;
        if (!uf->freed && uf->m_writes) {
            metrics_add(uf->m_writes, NULL, 1);
            metrics_set(uf->m_last_ok, NULL, (double)d8_wall_ms() / 1000.0);
        }
        LOG(LOG_DEBUG, "usage file written", LF_S("path", uf->path), LF_I("bytes", uf->len));
        return;
    }
    uf->nerrors++;
    if (!uf->freed && uf->m_errors)
        metrics_add(uf->m_errors, NULL, 1);
    LOG(LOG_ERROR, "cannot write the usage file", LF_S("path", uf->path),
        LF_S("op", uf->wop ? uf->wop : "write"), LF_S("error", strerror(uf->werr)),
        LF_B("will_retry", !uf->freed));
}

static void after_work_cb(uv_work_t *w, int status)
{
    usage_file_t *uf = w->data;
    if (status < 0 && !uf->werr) {
        uf->werr = EIO;
        uf->wop = "queue";
    }
    usage_free(uf->snap); /* still here when the job never ran */
    uf->snap = NULL;
    note_outcome(uf);
    uf->writing = 0;
    if (uf->freed && uf->next) {
        usage_t *n = uf->next;
        uf->next = NULL;
        begin_write(uf, n);
        return;
    }
    maybe_release(uf);
}

/* Serialises and starts a write when usage changed since the last one. */
static void write_if_changed(usage_file_t *uf)
{
    uint64_t now = usage_changes(uf->usage);
    if (uf->writing || now == uf->saved)
        return;
    uf->pending = now;
    begin_write(uf, usage_clone(uf->usage));
}

static void tick(uv_timer_t *t)
{
    write_if_changed(t->data);
}

void usage_file_start(usage_file_t *uf)
{
    uv_timer_start(&uf->timer, tick, uf->interval_ms, uf->interval_ms);
}

int usage_file_write_now(usage_file_t *uf, char *err, size_t errlen)
{
    size_t len;
    char *buf = serialise(uf->usage, &len);
    const char *op = "write";
    int e = write_atomic(uf, buf, len, &op);
    free(buf);
    if (e) {
        snprintf(err, errlen, "%s: cannot write the usage file: %s: %s", uf->path, op, strerror(e));
        return D8_EIO;
    }
    uf->saved = usage_changes(uf->usage);
    return D8_OK;
}

static void timer_closed(uv_handle_t *h)
{
    usage_file_t *uf = h->data;
    uf->timer_closed = 1;
    maybe_release(uf);
}

void usage_file_free(usage_file_t *uf)
{
    if (!uf)
        return;
    uf->freed = 1;
    uv_close((uv_handle_t *)&uf->timer, timer_closed);
    uint64_t now = usage_changes(uf->usage);
    /* A write in flight holds the changes up to pending. */
    if (now == (uf->writing ? uf->pending : uf->saved))
        return;
    usage_t *snap = usage_clone(uf->usage);
    uf->pending = now;
    if (uf->writing)
        uf->next = snap;
    else
        begin_write(uf, snap);
}

uint64_t usage_file__writes(const usage_file_t *uf)
{
    return uf->nwrites;
}

uint64_t usage_file__errors(const usage_file_t *uf)
{
    return uf->nerrors;
}

int usage_file__writing(const usage_file_t *uf)
{
    return uf->writing;
}

/* ---- loading ------------------------------------------------------------------ */

/* Logs a temp file a killed write left behind once it is removed. */
static void stale_removed(void *ud, const char *file, int err)
{
    (void)ud;
    if (err == 0)
        LOG(LOG_INFO, "removed a temp file left by an interrupted usage file write",
            LF_S("file", file));
}

/* Reads the whole file (before the loop runs: nothing to block). */
static int read_all(const usage_file_t *uf, char **out, size_t *outlen, char *err, size_t errlen)
{
    int e = 0;
    switch (atomicfile_read(uf->path, MAX_FILE_BYTES, out, outlen, &e)) {
    case ATOMICFILE_READ_OK:
        return D8_OK;
    case ATOMICFILE_READ_ABSENT:
        snprintf(err, errlen, "%s: no usage file yet", uf->path);
        return D8_ENOENT;
    case ATOMICFILE_READ_OPEN:
        snprintf(err, errlen, "%s: cannot open the usage file: %s", uf->path, strerror(e));
        return D8_EIO;
    case ATOMICFILE_READ_NOT_REGULAR:
    case ATOMICFILE_READ_TOO_BIG:
        snprintf(err, errlen, "%s: the usage file is not a regular file of at most %zu bytes",
                 uf->path, MAX_FILE_BYTES);
        return D8_ETOOBIG;
    case ATOMICFILE_READ_READ:
        break;
    }
    snprintf(err, errlen, "%s: cannot read the usage file: %s", uf->path, strerror(e));
    return D8_EIO;
}

/* Checks the checksum and the structure of buf[0..len) and loads it. */
static int decode(usage_file_t *uf, char *buf, size_t len, char *err, size_t errlen)
{
    char *mark = NULL;
    for (char *p = strstr(buf, ATOMICFILE_CHECKSUM_MARK); p;
         p = strstr(p + 1, ATOMICFILE_CHECKSUM_MARK))
        mark = p;
    char sum[ATOMICFILE_CHECKSUM_SIZE];
    if (mark)
        atomicfile_checksum(buf, (size_t)(mark - buf), sum);
    const char *tail = mark ? mark + sizeof(ATOMICFILE_CHECKSUM_MARK) - 1 : NULL;
    if (!tail || strncmp(tail, sum, ATOMICFILE_CHECKSUM_SIZE - 1) != 0 ||
        strcmp(tail + ATOMICFILE_CHECKSUM_SIZE - 1, "\"}\n") != 0) {
        snprintf(err, errlen, "%s: the usage file is damaged (checksum missing or wrong)",
                 uf->path);
        return D8_EPARSE;
    }
    cJSON *root = cJSON_ParseWithLength(buf, len);
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    int rc = D8_OK;
    char uerr[200] = "";
    if (!root)
        rc = D8_EPARSE, snprintf(uerr, sizeof(uerr), "not JSON");
    else if (!cJSON_IsNumber(ver) || ver->valuedouble != FORMAT_VERSION)
        rc = D8_EINVAL, snprintf(uerr, sizeof(uerr), "version: not %d", FORMAT_VERSION);
    else if (!cJSON_IsObject(u))
        rc = D8_EINVAL, snprintf(uerr, sizeof(uerr), "usage: missing or not an object");
    else
        rc = usage_load(uf->usage, u, uerr, sizeof(uerr));
    cJSON_Delete(root);
    if (rc != D8_OK)
        snprintf(err, errlen, "%s: not a valid usage file: %s", uf->path, uerr);
    return rc;
}

int usage_file_load(usage_file_t *uf, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    atomicfile_remove_stale_temps(uf->path, uf->dir_path, stale_removed, NULL);
    int rc = read_all(uf, &buf, &len, err, errlen);
    if (rc != D8_OK)
        return rc;
    rc = decode(uf, buf, len, err, errlen);
    free(buf);
    if (rc == D8_OK)
        uf->saved = usage_changes(uf->usage); /* what is on disk */
    return rc;
}
