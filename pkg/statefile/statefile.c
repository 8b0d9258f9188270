#include "statefile.h"
#include "statefile_int.h"

#include "base/atomicfile.h"
#include "base/base.h"
#include "log/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_DEBOUNCE_MS 500
#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000
/* Far above any real desired set (a full sync body is capped at 64 MiB). */
#define MAX_FILE_BYTES ((size_t)1 << 30)
#define KEY_CHECK_INPUT "dev8-statefile-key-check/v1"
/* One uv_fs_write at most this long (uv_buf_t lengths are unsigned int). */
#define MAX_WRITE_CHUNK ((size_t)1 << 30)

struct statefile {
    uv_loop_t *loop;
    store_t *store;
    char *path;
    char *tmp_path;     /* "<path>.tmp.<pid>" */
    char *dir_path;     /* the directory holding path */
    unsigned char *key; /* NULL = the empty key */
    size_t keylen;
    char key_check[STATEFILE__KEY_CHECK_LEN + 1];
    uint64_t debounce_ms;
    cJSON *legacy_usage; /* an old file's "usage" section, until taken */
    uint64_t commit_window_ms;
    metric_family_t *m_writes;
    metric_family_t *m_errors;
    metric_family_t *m_last_ok;

    uv_timer_t timer;   /* debounce, retry backoff and flush kick */
    uint64_t timer_due; /* uv_now when the timer fires, while active */
    int started;        /* listening to the store */
    int dirty;          /* changes not in any write started yet */
    int failures;       /* consecutive failed writes */
    int freed;
    int timer_closed;
    int flushing;
    statefile_done_fn flush_cb;
    void *flush_ud;

    /* The write in flight (one at a time). */
    int writing;
    uv_fs_t req;
    statefile__step_t step;
    char *buf;
    size_t len;
    size_t off;
    uv_file fd;    /* the temp file, -1 when closed */
    uv_file dirfd; /* the directory, -1 when closed */
    int renamed;
    int err; /* first libuv error of this write */
    const char *failed_op;
    /* Durable acknowledgements: every change of the desired set takes the
     * next seq; a write covers the changes up to write_seq (taken when it
     * is serialised); durable_seq is the last one on disk. want_seq: the
     * highest seq a commit asked for. */
    uint64_t seq;
    uint64_t write_seq;
    uint64_t durable_seq;
    uint64_t want_seq;
    statefile_commit_fn commit_fn;
    void *commit_ud;
    char last_error[160]; /* why the last write failed ("" when it did not) */
    /* Serialised by statefile_free while a write was in flight. */
    char *next_buf;
    size_t next_len;

    /* Test hooks and counters. */
    statefile__step_t crash_step;
    size_t crash_bytes;
    int crashed;
    uint64_t nwrites;
    uint64_t nerrors;
};

/* cJSON reports allocation failure with NULL; like pkg/base, give up. */
static void *need(void *p)
{
    if (!p)
        d8_die("out of memory");
    return p;
}

/* keyCheck: the first digits of HMAC(key, a constant), to tell a changed key at load. */
static void key_check_of(const unsigned char *key, size_t keylen,
                         char out[STATEFILE__KEY_CHECK_LEN + 1])
{
    char d[65];
    spec_secret_digest(key, keylen, KEY_CHECK_INPUT, d);
    memcpy(out, d, STATEFILE__KEY_CHECK_LEN);
    out[STATEFILE__KEY_CHECK_LEN] = '\0';
}

statefile_t *statefile_new(const statefile_opts_t *opts)
{
    statefile_t *sf = d8_xcalloc(1, sizeof(*sf));
    sf->loop = opts->loop;
    sf->store = opts->store;
    sf->path = d8_xstrdup(opts->path);
    sf->debounce_ms = opts->debounce_ms ? opts->debounce_ms : DEFAULT_DEBOUNCE_MS;
    sf->commit_window_ms = opts->commit_window_ms;
    sf->fd = -1;
    sf->dirfd = -1;

    d8_buf_t b;
    d8_buf_init(&b);
    d8_buf_printf(&b, "%s.tmp.%ld", sf->path, (long)getpid());
    sf->tmp_path = d8_buf_detach(&b, NULL);
    const char *slash = strrchr(sf->path, '/');
    if (!slash)
        sf->dir_path = d8_xstrdup(".");
    else if (slash == sf->path)
        sf->dir_path = d8_xstrdup("/");
    else
        sf->dir_path = d8_xstrndup(sf->path, (size_t)(slash - sf->path));

    if (opts->key && opts->keylen) {
        sf->key = d8_xmalloc(opts->keylen);
        memcpy(sf->key, opts->key, opts->keylen);
        sf->keylen = opts->keylen;
    }
    key_check_of(sf->key, sf->keylen, sf->key_check);

    if (opts->metrics) {
        sf->m_writes = metrics_counter(opts->metrics, "dev8_statefile_writes_total",
                                       "State file snapshots written and made durable.", 0, NULL);
        sf->m_errors = metrics_counter(opts->metrics, "dev8_statefile_write_errors_total",
                                       "State file writes that failed (retried).", 0, NULL);
        sf->m_last_ok = metrics_gauge(opts->metrics, "dev8_statefile_last_write_timestamp_seconds",
                                      "When the state file was last written.", 0, NULL);
    }
    uv_timer_init(sf->loop, &sf->timer);
    sf->timer.data = sf;
    return sf;
}

/* ---- serialisation -------------------------------------------------------- */

typedef struct ser_ctx {
    statefile_t *sf;
    d8_buf_t *out;
    size_t n;
} ser_ctx_t;

/*
 * store_list callback: appends one environment to the "items" array, each
 * secret value as its digest, never the value.
 */
static void add_item(void *ud, const env_obj_t *o)
{
    ser_ctx_t *c = ud;
    d8_buf_t *out = c->out;
    /* Removed by a full sync: not desired. After a restart its resources
     * are orphans again, with a full grace period. */
    if (o->removed)
        return;
    if (c->n++)
        d8_buf_putc(out, ',');
    d8_buf_puts(out, "\n{\"id\":");
    d8_buf_json_str(out, o->id);
    d8_buf_printf(out, ",\"generation\":%lld,\"deleting\":%s,\"spec\":", (long long)o->generation,
                  o->status.phase == PHASE_DELETING ? "true" : "false");
    if (o->has_spec) {
        /* spec_to_json redacts every secret value. */
        cJSON *j = need(spec_to_json(&o->spec));
        char *txt = need(cJSON_PrintUnformatted(j));
        d8_buf_puts(out, txt);
        cJSON_free(txt);
        cJSON_Delete(j);
    } else {
        d8_buf_puts(out, "null");
    }
    d8_buf_puts(out, ",\"secretDigests\":{");
    for (size_t i = 0; o->has_spec && i < o->spec.nsecret; i++) {
        char d[65];
        if (o->restored)
            memcpy(d, o->secret_digests[i], sizeof(d));
        else
            spec_secret_digest(c->sf->key, c->sf->keylen, o->spec.secret_env[i].value, d);
        if (i)
            d8_buf_putc(out, ',');
        d8_buf_json_str(out, o->spec.secret_env[i].name);
        d8_buf_putc(out, ':');
        d8_buf_json_str(out, d);
        OPENSSL_cleanse(d, sizeof(d));
    }
    d8_buf_printf(out, "},\"createdAtMs\":%lld,\"updatedAtMs\":%lld}", (long long)o->created_ms,
                  (long long)o->updated_ms);
}

/* The whole snapshot as JSON text (owned by the caller). */
static char *serialise(statefile_t *sf, size_t *len)
{
    d8_buf_t out;
    d8_buf_init(&out);
    d8_buf_printf(&out,
                  "{\"version\":%d,\"resourceVersion\":%llu,\"synced\":%s,\"keyCheck\":\"%s\","
                  "\"items\":[",
                  STATEFILE__FORMAT_VERSION, (unsigned long long)store_rv(sf->store),
                  store_synced(sf->store) ? "true" : "false", sf->key_check);
    ser_ctx_t c = {sf, &out, 0};
    store_list(sf->store, NULL, NULL, SIZE_MAX, add_item, &c);
    d8_buf_puts(&out, "\n]");
    char sum[ATOMICFILE_CHECKSUM_SIZE];
    atomicfile_checksum(out.data, out.len, sum);
    d8_buf_printf(&out, ATOMICFILE_CHECKSUM_MARK "%s\"}\n", sum);
    return d8_buf_detach(&out, len);
}

/* ---- the write chain (libuv thread pool; the loop never blocks) ------------ */

static void fs_cb(uv_fs_t *req);
static void step_done(statefile_t *sf, ssize_t r);
static void timer_cb(uv_timer_t *t);

static void maybe_release(statefile_t *sf)
{
    if (!sf->freed || !sf->timer_closed || sf->writing)
        return;
    free(sf->next_buf);
    cJSON_Delete(sf->legacy_usage);
    free(sf->path);
    free(sf->tmp_path);
    free(sf->dir_path);
    if (sf->key)
        OPENSSL_cleanse(sf->key, sf->keylen);
    free(sf->key);
    free(sf);
}

/*
 * Starts `step` of the write on the thread pool; fs_cb then hands its
 * result to step_done. A step that libuv refuses ends at once, as failed.
 */
static void do_step(statefile_t *sf, statefile__step_t step)
{
    int rc = 0;
    sf->step = step;
    sf->req.data = sf;
    switch (step) {
    case STATEFILE__OPEN:
        rc = uv_fs_open(sf->loop, &sf->req, sf->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                        0600, fs_cb);
        break;
    case STATEFILE__WRITE: {
        size_t n = sf->len - sf->off;
        if (sf->crash_step == STATEFILE__WRITE && sf->off < sf->crash_bytes &&
            sf->crash_bytes - sf->off < n)
            n = sf->crash_bytes - sf->off;
        if (n > MAX_WRITE_CHUNK)
            n = MAX_WRITE_CHUNK;
        uv_buf_t b = uv_buf_init(sf->buf + sf->off, (unsigned int)n);
        rc = uv_fs_write(sf->loop, &sf->req, sf->fd, &b, 1, (int64_t)sf->off, fs_cb);
        break;
    }
    case STATEFILE__FSYNC:
        rc = uv_fs_fsync(sf->loop, &sf->req, sf->fd, fs_cb);
        break;
    case STATEFILE__CLOSE:
        rc = uv_fs_close(sf->loop, &sf->req, sf->fd, fs_cb);
        break;
    case STATEFILE__RENAME:
        rc = uv_fs_rename(sf->loop, &sf->req, sf->tmp_path, sf->path, fs_cb);
        break;
    case STATEFILE__DIR_OPEN:
        rc = uv_fs_open(sf->loop, &sf->req, sf->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0,
                        fs_cb);
        break;
    case STATEFILE__DIR_FSYNC:
        rc = uv_fs_fsync(sf->loop, &sf->req, sf->dirfd, fs_cb);
        break;
    case STATEFILE__DIR_CLOSE:
        rc = uv_fs_close(sf->loop, &sf->req, sf->dirfd, fs_cb);
        break;
    case STATEFILE__ABORT_CLOSE:
        rc = uv_fs_close(sf->loop, &sf->req, sf->fd >= 0 ? sf->fd : sf->dirfd, fs_cb);
        break;
    case STATEFILE__ABORT_UNLINK:
        rc = uv_fs_unlink(sf->loop, &sf->req, sf->tmp_path, fs_cb);
        break;
    case STATEFILE__IDLE:
        break;
    }
    if (rc < 0) {
        /* Refused before it started: no callback will come. */
        uv_fs_req_cleanup(&sf->req);
        step_done(sf, rc);
    }
}

static void begin_chain(statefile_t *sf, char *buf, size_t len)
{
    sf->writing = 1;
    sf->buf = buf;
    sf->len = len;
    sf->off = 0;
    sf->fd = -1;
    sf->dirfd = -1;
    sf->renamed = 0;
    sf->err = 0;
    sf->failed_op = NULL;
    do_step(sf, STATEFILE__OPEN);
}

static void start_write(statefile_t *sf)
{
    size_t len;
    char *buf = serialise(sf, &len);
    sf->dirty = 0;
    sf->write_seq = sf->seq;
    begin_chain(sf, buf, len);
}

static void schedule(statefile_t *sf, uint64_t ms)
{
    if (sf->freed)
        return;
    sf->timer_due = uv_now(sf->loop) + ms;
    uv_timer_start(&sf->timer, timer_cb, ms, 0);
}

/* The delay before the next write of changes: the commit window when an
 * answer waits for them, else the debounce. */
static uint64_t next_delay(const statefile_t *sf)
{
    return sf->want_seq > sf->durable_seq ? sf->commit_window_ms : sf->debounce_ms;
}

/* A write ended: records its outcome for statefile_writable and tells the
 * commit listener. */
static void note_outcome(statefile_t *sf, int uverr)
{
    if (uverr == 0) {
        sf->durable_seq = sf->write_seq;
        sf->last_error[0] = '\0';
    } else {
        snprintf(sf->last_error, sizeof(sf->last_error), "%s %s: %s",
                 sf->failed_op ? sf->failed_op : "write", sf->path, uv_strerror(uverr));
    }
    if (sf->commit_fn)
        sf->commit_fn(sf->commit_ud, sf->durable_seq, uverr ? D8_EIO : D8_OK);
}

static void end_flush(statefile_t *sf, int status)
{
    statefile_done_fn cb = sf->flush_cb;
    void *ud = sf->flush_ud;
    sf->flushing = 0;
    sf->flush_cb = NULL;
    sf->flush_ud = NULL;
    if (cb)
        cb(ud, status);
}

/* The chain ended (uverr 0 or a libuv error). */
static void finish(statefile_t *sf, int uverr)
{
    free(sf->buf);
    sf->buf = NULL;
    sf->writing = 0;
    sf->step = STATEFILE__IDLE;
    int status = uverr ? D8_EIO : D8_OK;
    if (uverr == 0) {
        sf->nwrites++;
        sf->failures = 0;
        if (!sf->freed && sf->m_writes) {
            metrics_add(sf->m_writes, NULL, 1);
            metrics_set(sf->m_last_ok, NULL, (double)d8_wall_ms() / 1000.0);
        }
        LOG(LOG_DEBUG, "state file written", LF_S("path", sf->path), LF_I("bytes", sf->len));
    } else {
        sf->nerrors++;
        sf->failures++;
        /* What that write held is not on disk: write again. */
        sf->dirty = 1;
        if (!sf->freed && sf->m_errors)
            metrics_add(sf->m_errors, NULL, 1);
        LOG(LOG_ERROR, "cannot write the state file", LF_S("path", sf->path),
            LF_S("op", sf->failed_op ? sf->failed_op : "write"), LF_S("error", uv_strerror(uverr)),
            LF_I("consecutive_failures", sf->failures), LF_B("will_retry", !sf->freed));
    }
    if (!sf->freed)
        note_outcome(sf, uverr);
    if (sf->freed) {
        if (sf->next_buf) {
            char *b = sf->next_buf;
            sf->next_buf = NULL;
            begin_chain(sf, b, sf->next_len);
            return;
        }
        maybe_release(sf);
        return;
    }
    if (sf->flushing) {
        if (status == D8_OK && sf->dirty) {
            start_write(sf);
            return;
        }
        end_flush(sf, status);
        /* The callback may have freed us (memory goes later, in the
         * timer's close callback). */
        if (sf->freed)
            return;
    }
    /* No jitter (1.0): one writer has nobody to spread its retries from. */
    if (sf->dirty)
        schedule(sf, uverr ? d8_backoff_ms((unsigned)sf->failures, RETRY_MIN_MS, RETRY_MAX_MS, 1.0)
                           : next_delay(sf));
}

/* Test hook: stop as a killed process would, leaving the files as they are. */
static void crash(statefile_t *sf)
{
    uv_fs_t req;
    if (sf->fd >= 0) {
        uv_fs_close(NULL, &req, sf->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    if (sf->dirfd >= 0) {
        uv_fs_close(NULL, &req, sf->dirfd, NULL);
        uv_fs_req_cleanup(&req);
    }
    sf->fd = sf->dirfd = -1;
    sf->crashed = 1;
    sf->dirty = 0;
    free(sf->buf);
    sf->buf = NULL;
    free(sf->next_buf);
    sf->next_buf = NULL;
    sf->writing = 0;
    sf->step = STATEFILE__IDLE;
    if (sf->freed) {
        maybe_release(sf);
        return;
    }
    if (sf->flushing)
        end_flush(sf, D8_ECANCELED);
}

static int crash_now(const statefile_t *sf, statefile__step_t done)
{
    if (sf->crash_step != done)
        return 0;
    return done != STATEFILE__WRITE || sf->off >= sf->crash_bytes || sf->off == sf->len;
}

/* The next step of the clean-up after a failure: close what is still open,
 * then remove the temp file unless it was renamed, then finish. */
static void abort_next(statefile_t *sf)
{
    if (sf->fd >= 0 || sf->dirfd >= 0)
        do_step(sf, STATEFILE__ABORT_CLOSE);
    else if (!sf->renamed)
        do_step(sf, STATEFILE__ABORT_UNLINK);
    else
        finish(sf, sf->err);
}

/* A step failed: record the first error, then clean up. */
static void fail(statefile_t *sf, const char *op, int uverr)
{
    if (!sf->err) {
        sf->err = uverr;
        sf->failed_op = op;
    }
    abort_next(sf);
}

/* A clean-up step ended. Its own result does not matter: the write has
 * already failed with sf->err. */
static void abort_step_done(statefile_t *sf, statefile__step_t done)
{
    if (done == STATEFILE__ABORT_UNLINK) {
        finish(sf, sf->err);
        return;
    }
    /* The descriptor is gone whatever close answered. */
    if (sf->fd >= 0)
        sf->fd = -1;
    else
        sf->dirfd = -1;
    abort_next(sf);
}

/* Step sf->step ended with result r: record it and start the step that
 * follows, or the clean-up when it failed. */
static void step_done(statefile_t *sf, ssize_t r)
{
    int uverr = r < 0 ? (int)r : 0;
    statefile__step_t done = sf->step;
    statefile__step_t next = STATEFILE__IDLE;
    const char *op = NULL;

    switch (done) {
    case STATEFILE__OPEN:
        op = "open temp file";
        if (!uverr)
            sf->fd = (uv_file)r;
        next = STATEFILE__WRITE;
        break;
    case STATEFILE__WRITE:
        op = "write";
        if (!uverr && r == 0)
            uverr = UV_EIO; /* a regular file that takes nothing: do not spin */
        if (!uverr)
            sf->off += (size_t)r;
        next = sf->off < sf->len ? STATEFILE__WRITE : STATEFILE__FSYNC;
        break;
    case STATEFILE__FSYNC:
        op = "fsync";
        next = STATEFILE__CLOSE;
        break;
    case STATEFILE__CLOSE:
        /* The descriptor is gone whatever close answered. */
        op = "close";
        sf->fd = -1;
        next = STATEFILE__RENAME;
        break;
    case STATEFILE__RENAME:
        op = "rename";
        if (!uverr)
            sf->renamed = 1;
        next = STATEFILE__DIR_OPEN;
        break;
    case STATEFILE__DIR_OPEN:
        op = "open directory";
        if (!uverr)
            sf->dirfd = (uv_file)r;
        next = STATEFILE__DIR_FSYNC;
        break;
    case STATEFILE__DIR_FSYNC:
        op = "fsync directory";
        /* Some file systems cannot fsync a directory: the rename is then
         * as durable as they make it. */
        if (uverr == UV_EINVAL || uverr == UV_ENOTSUP)
            uverr = 0;
        next = STATEFILE__DIR_CLOSE;
        break;
    case STATEFILE__DIR_CLOSE:
        sf->dirfd = -1;
        finish(sf, 0);
        return;
    case STATEFILE__ABORT_CLOSE:
    case STATEFILE__ABORT_UNLINK:
        abort_step_done(sf, done);
        return;
    case STATEFILE__IDLE:
        return;
    }
    if (uverr) {
        fail(sf, op, uverr);
        return;
    }
    if (crash_now(sf, done)) {
        crash(sf);
        return;
    }
    do_step(sf, next);
}

static void fs_cb(uv_fs_t *req)
{
    statefile_t *sf = req->data;
    ssize_t r = req->result;
    uv_fs_req_cleanup(req);
    step_done(sf, r);
}

/* ---- scheduling ------------------------------------------------------------- */

static void timer_cb(uv_timer_t *t)
{
    statefile_t *sf = t->data;
    if (sf->writing || sf->freed)
        return;
    if (sf->crashed) {
        if (sf->flushing)
            end_flush(sf, D8_ECANCELED);
        return;
    }
    if (sf->dirty)
        start_write(sf);
    else if (sf->flushing)
        end_flush(sf, D8_OK);
}

static void on_desired_change(void *ud)
{
    statefile_t *sf = ud;
    sf->dirty = 1;
    sf->seq++;
    /* A write in flight schedules the next one when it ends; an active
     * timer (debounce, backoff, flush) already covers this change. */
    if (!sf->writing && !uv_is_active((uv_handle_t *)&sf->timer))
        schedule(sf, sf->debounce_ms);
}

cJSON *statefile_take_legacy_usage(statefile_t *sf)
{
    cJSON *v = sf->legacy_usage;
    sf->legacy_usage = NULL;
    return v;
}

uint64_t statefile_commit(statefile_t *sf)
{
    if (sf->durable_seq >= sf->seq)
        return 0;
    if (sf->want_seq < sf->seq)
        sf->want_seq = sf->seq;
    /* A write in flight schedules the next one when it ends; a failing
     * file keeps its backoff (its answers are refused meanwhile). */
    if (sf->writing || sf->freed || sf->crashed || sf->failures > 0 || !sf->dirty)
        return sf->seq;
    uint64_t due = uv_now(sf->loop) + sf->commit_window_ms;
    if (!uv_is_active((uv_handle_t *)&sf->timer) || sf->timer_due > due)
        schedule(sf, sf->commit_window_ms);
    return sf->seq;
}

void statefile_on_commit(statefile_t *sf, statefile_commit_fn fn, void *ud)
{
    sf->commit_fn = fn;
    sf->commit_ud = ud;
}

int statefile_writable(const statefile_t *sf, char *reason, size_t len)
{
    if (sf->failures == 0)
        return 1;
    if (reason && len)
        snprintf(reason, len, "%s", sf->last_error);
    return 0;
}

void statefile_start(statefile_t *sf)
{
    sf->started = 1;
    store_on_desired_change(sf->store, on_desired_change, sf);
}

int statefile_flush(statefile_t *sf, statefile_done_fn done, void *ud)
{
    if (sf->flushing || sf->freed)
        return D8_EAGAIN;
    sf->flushing = 1;
    sf->flush_cb = done;
    sf->flush_ud = ud;
    if (!sf->writing) {
        /* Through the timer, so that done is never called from here. */
        uv_timer_stop(&sf->timer);
        sf->timer_due = uv_now(sf->loop);
        uv_timer_start(&sf->timer, timer_cb, 0, 0);
    }
    return D8_OK;
}

static void timer_closed(uv_handle_t *h)
{
    statefile_t *sf = h->data;
    sf->timer_closed = 1;
    maybe_release(sf);
}

void statefile_free(statefile_t *sf)
{
    if (!sf)
        return;
    if (sf->started)
        store_on_desired_change(sf->store, NULL, NULL);
    sf->commit_fn = NULL;
    sf->commit_ud = NULL;
    sf->flushing = 0;
    sf->flush_cb = NULL;
    sf->flush_ud = NULL;
    sf->freed = 1;
    uv_close((uv_handle_t *)&sf->timer, timer_closed);
    if (sf->dirty && !sf->crashed) {
        /* The store may be gone by the time a write in flight ends:
         * serialise now. */
        size_t len;
        char *buf = serialise(sf, &len);
        sf->dirty = 0;
        if (sf->writing) {
            free(sf->next_buf);
            sf->next_buf = buf;
            sf->next_len = len;
        } else {
            begin_chain(sf, buf, len);
        }
    }
}

void statefile__crash_at(statefile_t *sf, statefile__step_t step, size_t bytes)
{
    sf->crash_step = step;
    sf->crash_bytes = bytes;
}

uint64_t statefile__writes(const statefile_t *sf)
{
    return sf->nwrites;
}

uint64_t statefile__errors(const statefile_t *sf)
{
    return sf->nerrors;
}

/* ---- loading ------------------------------------------------------------------ */

int statefile__failf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Logs what atomicfile_remove_stale_temps did with one stale temp file. */
static void stale_removed(void *ud, const char *file, int err)
{
    (void)ud;
    if (err == 0)
        LOG(LOG_INFO, "removed a temp file left by an interrupted state file write",
            LF_S("file", file));
    else
        LOG(LOG_WARN, "cannot remove a stale state file temp file", LF_S("file", file),
            LF_S("error", strerror(err)));
}

/* Reads the whole file (at start, before the loop runs: a synchronous read
 * blocks nothing then). */
static int read_file(const statefile_t *sf, char **out, size_t *outlen, char *err, size_t errlen)
{
    int e = 0;
    switch (atomicfile_read(sf->path, MAX_FILE_BYTES, out, outlen, &e)) {
    case ATOMICFILE_READ_OK:
        return D8_OK;
    case ATOMICFILE_READ_ABSENT:
        return statefile__failf(err, errlen, D8_ENOENT, "%s: no state file yet", sf->path);
    case ATOMICFILE_READ_OPEN:
        return statefile__failf(err, errlen, D8_EIO, "%s: cannot open the state file: %s", sf->path,
                                strerror(e));
    case ATOMICFILE_READ_NOT_REGULAR:
        return statefile__failf(err, errlen, D8_EIO, "%s: the state file is not a regular file",
                                sf->path);
    case ATOMICFILE_READ_TOO_BIG:
        return statefile__failf(err, errlen, D8_ETOOBIG,
                                "%s: the state file is larger than %zu bytes", sf->path,
                                MAX_FILE_BYTES);
    case ATOMICFILE_READ_READ:
        break;
    }
    return statefile__failf(err, errlen, D8_EIO, "%s: cannot read the state file: %s", sf->path,
                            strerror(e));
}

/* Puts every decoded item into the store, which must be empty, and marks
 * the store synced when the file says so. */
static int restore(statefile_t *sf, statefile__doc_t *doc, char *err, size_t errlen)
{
    if (store_count(sf->store) != 0)
        return statefile__failf(err, errlen, D8_EINVAL, "%s: the store already holds environments",
                                sf->path);
    size_t with_secrets = 0, deleting = 0;
    store_set_digest_key(sf->store, sf->key, sf->keylen);
    for (size_t i = 0; i < doc->n; i++) {
        store_restore_item_t *it = &doc->items[i];
        with_secrets += it->has_spec && it->spec.nsecret > 0;
        deleting += (size_t)it->deleting;
        /* Validated by statefile__decode: ids unique, fields consistent;
         * and the store is empty. */
        int rc = store_restore(sf->store, it);
        if (rc != 0)
            return statefile__failf(err, errlen, rc, "%s: items[%zu]: cannot be restored: %s",
                                    sf->path, i, d8_strerror(rc));
    }
    store_restore_finish(sf->store, (uint64_t)doc->rv, doc->synced);
    cJSON_Delete(sf->legacy_usage);
    sf->legacy_usage = doc->usage;
    doc->usage = NULL;
    if (strcmp(doc->key_check, sf->key_check) != 0 && with_secrets > 0)
        LOG(LOG_WARN,
            "DEV8_SPEC_HASH_KEY is not the key the state file was written with: restored "
            "secret digests cannot match, so the next PUT of each environment with secrets "
            "counts as a change",
            LF_S("path", sf->path), LF_I("environments_with_secrets", with_secrets));
    LOG(LOG_INFO, "state file loaded", LF_S("path", sf->path), LF_I("environments", doc->n),
        LF_I("awaiting_secret_values", with_secrets), LF_I("deleting", deleting),
        LF_B("synced", doc->synced), LF_I("resource_version", doc->rv));
    return D8_OK;
}

int statefile_load(statefile_t *sf, const spec_rules_t *rules, char *err, size_t errlen)
{
    char scratch[8];
    char *buf = NULL;
    size_t len = 0;
    if (!err || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    atomicfile_remove_stale_temps(sf->path, sf->dir_path, stale_removed, NULL);
    int rc = read_file(sf, &buf, &len, err, errlen);
    if (rc != D8_OK)
        return rc;
    /* Everything is validated before anything is restored. */
    statefile__doc_t doc;
    rc = statefile__decode(sf->path, buf, len, rules, &doc, err, errlen);
    free(buf);
    if (rc == D8_OK)
        rc = restore(sf, &doc, err, errlen);
    statefile__doc_release(&doc);
    return rc;
}
