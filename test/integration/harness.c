/*
 * Integration test harness (see harness.h): child processes on loopback
 * ports, blocking libcurl requests, raw sockets.
 *
 * Children are started with fork + execve so that, before the exec, the
 * child can put itself into its own process group and (on Linux) ask for
 * SIGKILL when the test process dies. Every child is also recorded in a
 * small table: an atexit handler and handlers for SIGINT/SIGTERM/SIGHUP
 * kill their process groups, so a failed or interrupted test leaves no
 * stray agent behind. Exit statuses reaped early (by th_alive) are kept
 * in the table so th_stop still reports the real status.
 *
 * The temporary directory (logs, configs) is removed at exit unless
 * D8_TEST_KEEP=1 is set; th_start and the test fixtures print a log's tail
 * when a child fails, so a failure is readable without it.
 *
 * The harness depends on libc and libcurl only, so it can be compiled on
 * its own (gcc harness.c test.c -lcurl ...).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

extern char **environ;

#define MAX_CHILDREN 64
#define HTTP_TIMEOUT_MS 15000L

/* Children started and not yet stopped. pid 0 marks a free slot; `reaped`
 * and `status` hold a wait status collected before th_stop asked. The
 * pids are read from signal handlers, hence volatile sig_atomic_t-sized
 * plain stores only. */
static struct child {
    volatile pid_t pid;
    int reaped;
    int status;
} children[MAX_CHILDREN];

static char tmpdir[512];
static int hooks_installed;
static int curl_ready;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "harness: out of memory\n");
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

/* A growable NUL-terminated buffer. */
typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

static void buf_add(buf_t *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static char *buf_take(buf_t *b)
{
    if (!b->data)
        buf_add(b, "", 0);
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* --- cleanup of children ------------------------------------------------ */

/* Async-signal-safe: SIGKILL every recorded child's process group. */
static void kill_all_children(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++) {
        pid_t pid = children[i].pid;
        if (pid > 0 && !children[i].reaped) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
        }
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void at_exit_cleanup(void)
{
    kill_all_children();
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i].pid > 0 && !children[i].reaped)
            waitpid(children[i].pid, NULL, 0);
        children[i].pid = 0;
    }
    if (tmpdir[0]) {
        const char *keep = getenv("D8_TEST_KEEP");
        if (keep && *keep && strcmp(keep, "0") != 0)
            fprintf(stderr, "harness: kept test files in %s\n", tmpdir);
        else
            nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (curl_ready) {
        curl_global_cleanup();
        curl_ready = 0;
    }
}

static void on_fatal_signal(int sig)
{
    kill_all_children();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_hooks(void)
{
    if (hooks_installed)
        return;
    hooks_installed = 1;
    atexit(at_exit_cleanup);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
            !(old.sa_flags & SA_SIGINFO)) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_fatal_signal;
            sigemptyset(&sa.sa_mask);
            sigaction(sigs[i], &sa, NULL);
        }
    }
    /* Writing to a peer that went away must be an error, not a death. */
    signal(SIGPIPE, SIG_IGN);
}

static void ensure_curl(void)
{
    install_hooks();
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
}

static struct child *child_slot(pid_t pid)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (children[i].pid == pid)
            return &children[i];
    return NULL;
}

/* Collects the child's status if it has exited; 1 when it has. */
static int child_poll(struct child *c)
{
    if (c->reaped)
        return 1;
    int st;
    pid_t r;
    do {
        r = waitpid(c->pid, &st, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == c->pid) {
        c->reaped = 1;
        c->status = st;
        /* Grandchildren, if any, go with it. */
        kill(-c->pid, SIGKILL);
        return 1;
    }
    if (r < 0) {
        /* Not our child any more (reaped elsewhere): report as lost. */
        c->reaped = 1;
        c->status = -1;
        return 1;
    }
    return 0;
}

static int decode_status(int st)
{
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* --- files and ports ---------------------------------------------------- */

const char *th_tmpdir(void)
{
    if (tmpdir[0])
        return tmpdir;
    install_hooks();
    const char *base = getenv("D8_TEST_TMP");
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(tmpdir, sizeof tmpdir, "%s/d8test.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "harness: mkdtemp %s: %s\n", tmpdir, strerror(errno));
        abort();
    }
    return tmpdir;
}

char *th_bin(const char *name)
{
    const char *dir = getenv("D8_BIN_DIR");
    if (!dir || !*dir)
        dir = "bin";
    char path[4096];
    if (dir[0] == '/') {
        snprintf(path, sizeof path, "%s/%s", dir, name);
    } else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd))
            snprintf(cwd, sizeof cwd, ".");
        snprintf(path, sizeof path, "%s/%s/%s", cwd, dir, name);
    }
    return xstrdup(path);
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t sl = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

char *th_write_file(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", th_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "harness: cannot write %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fputs(text, f);
    fclose(f);
    return xstrdup(path);
}

static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    buf_t b = {0};
    if (f) {
        char chunk[8192];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            buf_add(&b, chunk, n);
        fclose(f);
    }
    if (len_out)
        *len_out = b.len;
    return buf_take(&b);
}

char *th_read_log(const th_proc_t *p)
{
    return read_file(p->log_path, NULL);
}

static void print_log_tail(const th_proc_t *p, const char *why)
{
    size_t len;
    char *log = read_file(p->log_path, &len);
    size_t from = len > 4096 ? len - 4096 : 0;
    fprintf(stderr, "harness: %s (pid %d, port %d); last lines of %s:\n%s\n", why, (int)p->pid,
            p->port, p->log_path, log + from);
    free(log);
}

/* --- processes ---------------------------------------------------------- */

static int env_name_eq(const char *a, const char *b)
{
    /* Compares the NAME parts of two "NAME=value" entries. */
    const char *ea = strchr(a, '='), *eb = strchr(b, '=');
    size_t la = ea ? (size_t)(ea - a) : strlen(a);
    size_t lb = eb ? (size_t)(eb - b) : strlen(b);
    return la == lb && memcmp(a, b, la) == 0;
}

/* environ plus extra entries (which replace same-named ones). The
 * returned array is malloc'd; its strings are borrowed. */
static char **merge_env(char *const extra[])
{
    size_t n = 0, m = 0;
    while (environ && environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **out = xmalloc((n + m + 1) * sizeof *out);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int replaced = 0;
        for (size_t j = 0; j < m; j++)
            if (env_name_eq(environ[i], extra[j]))
                replaced = 1;
        if (!replaced)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        out[k++] = extra[j];
    out[k] = NULL;
    return out;
}

static size_t discard(char *data, size_t size, size_t nmemb, void *ud)
{
    (void)data;
    (void)ud;
    return size * nmemb;
}

/* Sends a probe GET; 1 when any HTTP status came back. */
static int probe(int port, const char *path)
{
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path ? path : "/");
    CURL *h = curl_easy_init();
    if (!h)
        return 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 500L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    return status > 0;
}

int th_start(th_proc_t *p, const char *name, char *const argv[], char *const env[], int port,
             const char *ready_path, int timeout_ms)
{
    ensure_curl();
    memset(p, 0, sizeof *p);
    p->port = port;
    snprintf(p->log_path, sizeof p->log_path, "%.400s/%.100s.log", th_tmpdir(), name);

    struct child *slot = child_slot(0);
    if (!slot) {
        fprintf(stderr, "harness: more than %d children\n", MAX_CHILDREN);
        return -1;
    }

    /* Everything the child needs is prepared before fork: between fork
     * and exec only async-signal-safe calls are made. */
    char **envp = merge_env(env);
    int logfd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int errpipe[2] = {-1, -1};
    if (logfd < 0 || nullfd < 0 || pipe2(errpipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "harness: cannot prepare %s: %s\n", p->log_path, strerror(errno));
        if (logfd >= 0)
            close(logfd);
        if (nullfd >= 0)
            close(nullfd);
        free(envp);
        return -1;
    }
    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    pid_t parent = getpid();

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        close(logfd);
        close(nullfd);
        close(errpipe[0]);
        close(errpipe[1]);
        free(envp);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
#else
        (void)parent;
#endif
        /* Restore what the test process changed, so the child starts with
         * default dispositions. */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            goto fail;
            /* No descriptor of the test process (curl sockets, other
             * children's logs) leaks into the child: mark all close-on-exec
             * (the error pipe already is), else close them one by one. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
#endif
        {
            for (long fd = 3; fd < maxfd; fd++)
                if (fd != errpipe[1])
                    close((int)fd);
        }
        execve(argv[0], argv, envp);
    fail:;
        int e = errno;
        ssize_t w = write(errpipe[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }

    /* Parent. Also set the group from this side, which closes the race in
     * which a kill(-pid) arrives before the child ran setpgid. */
    setpgid(pid, pid);
    slot->pid = pid;
    slot->reaped = 0;
    slot->status = 0;
    p->pid = pid;
    close(logfd);
    close(nullfd);
    close(errpipe[1]);
    free(envp);

    int exec_errno = 0;
    ssize_t r;
    do {
        r = read(errpipe[0], &exec_errno, sizeof exec_errno);
    } while (r < 0 && errno == EINTR);
    close(errpipe[0]);
    if (r == (ssize_t)sizeof exec_errno) {
        fprintf(stderr, "harness: cannot execute %s: %s\n", argv[0], strerror(exec_errno));
        th_stop(p, SIGKILL, 2000);
        return -1;
    }

    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (child_poll(slot)) {
            char why[128];
            snprintf(why, sizeof why, "%s exited during start-up with status %d", name,
                     decode_status(slot->status));
            print_log_tail(p, why);
            th_stop(p, SIGKILL, 1000);
            return -1;
        }
        if (probe(port, ready_path))
            return 0;
        if (now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    char why[160];
    snprintf(why, sizeof why, "%s did not answer %s on port %d within %d ms", name,
             ready_path ? ready_path : "/", port, timeout_ms);
    print_log_tail(p, why);
    th_stop(p, SIGKILL, 2000);
    return -1;
}

int th_stop(th_proc_t *p, int sig, int timeout_ms)
{
    if (!p || p->pid <= 0)
        return -1;
    struct child *c = child_slot(p->pid);
    if (!c) {
        p->pid = 0;
        return -1;
    }
    if (!child_poll(c)) {
        kill(p->pid, sig);
        uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
        while (!child_poll(c)) {
            if (now_ms() >= deadline) {
                fprintf(stderr,
                        "harness: pid %d did not exit within %d ms of signal %d; "
                        "killing it\n",
                        (int)p->pid, timeout_ms, sig);
                kill(-p->pid, SIGKILL);
                kill(p->pid, SIGKILL);
                int st;
                while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {
                }
                c->pid = 0;
                c->reaped = 0;
                p->pid = 0;
                return -1;
            }
            sleep_ms(5);
        }
    }
    int rc = decode_status(c->status);
    c->pid = 0;
    c->reaped = 0;
    c->status = 0;
    p->pid = 0;
    return rc;
}

int th_alive(th_proc_t *p)
{
    if (!p || p->pid <= 0)
        return 0;
    struct child *c = child_slot(p->pid);
    if (!c)
        return 0;
    return !child_poll(c);
}

/* --- HTTP --------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    buf_add(ud, data, size * nmemb);
    return size * nmemb;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    buf_t *b = ud;
    size_t n = size * nmemb;
    /* Keep only the final answer's block (not a 100 Continue's). */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        b->len = 0;
    buf_add(b, data, n);
    return n;
}

static int has_header(const char *const headers[], const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, nl) == 0 && headers[i][nl] == ':')
            return 1;
    return 0;
}

int th_http(const char *method, const char *url, const char *const headers[], const char *body,
            th_resp_t *out)
{
    ensure_curl();
    memset(out, 0, sizeof *out);
    buf_t bb = {0}, hb = {0};
    struct curl_slist *hl = NULL;
    CURL *h = curl_easy_init();
    int rc = -1;
    if (!h)
        goto done;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    /* curl would otherwise announce large bodies with Expect: 100-continue
     * and wait for the server; tests send bodies straight away. */
    if (!has_header(headers, "Expect"))
        hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hb);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status > 0) {
        rc = 0;
    } else {
        /* A transport failure: the caller sees status 0. A partial answer
         * (e.g. cut off) still shows what arrived. */
        status = 0;
    }
    out->status = status;
done:
    out->len = bb.len;
    out->body = buf_take(&bb);
    out->headers = buf_take(&hb);
    curl_slist_free_all(hl);
    if (h)
        curl_easy_cleanup(h);
    return rc;
}

int th_api(int port, const char *method, const char *path, const char *key, const char *body,
           th_resp_t *out)
{
    char url[2048];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    char *auth = NULL;
    const char *hdrs[3];
    size_t n = 0;
    if (key) {
        /* Sized from the key: bearer tokens (JWTs) run to kilobytes. */
        size_t len = strlen(key) + sizeof("Authorization: Bearer ");
        auth = malloc(len);
        if (!auth)
            return -1;
        snprintf(auth, len, "Authorization: Bearer %s", key);
        hdrs[n++] = auth;
    }
    if (body)
        hdrs[n++] = "Content-Type: application/json";
    hdrs[n] = NULL;
    int rc = th_http(method, url, hdrs, body, out);
    free(auth);
    return rc;
}

char *th_resp_header(const th_resp_t *r, const char *name)
{
    if (!r || !r->headers)
        return NULL;
    size_t nl = strlen(name);
    const char *line = r->headers;
    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            const char *end = line + ll;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            char *out = xmalloc((size_t)(end - v) + 1);
            memcpy(out, v, (size_t)(end - v));
            out[end - v] = '\0';
            return out;
        }
        if (!eol)
            break;
        line = eol + 1;
    }
    return NULL;
}

void th_resp_free(th_resp_t *r)
{
    if (!r)
        return;
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

/* --- raw TCP ------------------------------------------------------------ */

char *th_raw(int port, const char *data, size_t len, int timeout_ms)
{
    install_hooks();
    buf_t out = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return buf_take(&out);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        close(fd);
        return buf_take(&out);
    }
    /* Sends and reads at the same time: a server may answer (431, 413)
     * and close before it read everything, and that answer must not be
     * lost behind a reset. */
    size_t sent = 0;
    int can_send = 1;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (can_send && sent < len)
            pfd.events |= POLLOUT;
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pr == 0)
            break;
        if (pfd.revents & POLLOUT) {
            ssize_t w = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                can_send = 0;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[16384];
            ssize_t r = recv(fd, chunk, sizeof chunk, 0);
            if (r > 0)
                buf_add(&out, chunk, (size_t)r);
            else if (r == 0)
                break;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                break;
        }
    }
    close(fd);
    return buf_take(&out);
}

int th_wait_until(int (*pred)(void *ud), void *ud, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (pred(ud))
            return 0;
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(20);
    }
}

long th_proc_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, strlen(field)) == 0)
            v = atol(line + strlen(field) + 1);
    if (f)
        fclose(f);
    return v;
}

int th_proc_sanitized(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    int yes = 0;
    while (f && !yes && fgets(line, sizeof(line), f))
        yes = strstr(line, "libasan") != NULL;
    if (f)
        fclose(f);
    return yes;
}
