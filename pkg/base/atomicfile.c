#include "atomicfile.h"

#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void atomicfile_checksum(const char *data, size_t len, char out[ATOMICFILE_CHECKSUM_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        d8_die("OpenSSL failed: EVP_Digest"); /* it cannot allocate: as out of memory */
    memcpy(out, ATOMICFILE_CHECKSUM_PREFIX, sizeof(ATOMICFILE_CHECKSUM_PREFIX) - 1);
    d8_hex(md, 32, out + sizeof(ATOMICFILE_CHECKSUM_PREFIX) - 1);
}

void atomicfile_remove_stale_temps(const char *path, const char *dir, atomicfile_stale_fn fn,
                                   void *ud)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0)
            continue;
        const char *p = n + blen + 5;
        if (!*p || strspn(p, "0123456789") != strlen(p))
            continue;
        d8_buf_t full;
        d8_buf_init(&full);
        d8_buf_printf(&full, "%s/%s", dir, n);
        int e = unlink(full.data) == 0 ? 0 : errno;
        fn(ud, full.data, e);
        d8_buf_release(&full);
    }
    closedir(d);
}

atomicfile_read_fail_t atomicfile_read(const char *path, size_t max, char **out, size_t *outlen,
                                       int *errnum)
{
    *errnum = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *errnum = errno;
        return *errnum == ENOENT ? ATOMICFILE_READ_ABSENT : ATOMICFILE_READ_OPEN;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ATOMICFILE_READ_NOT_REGULAR;
    }
    if ((unsigned long long)st.st_size > max) {
        close(fd);
        return ATOMICFILE_READ_TOO_BIG;
    }
    size_t cap = (size_t)st.st_size, len = 0;
    char *buf = d8_xmalloc(cap + 1);
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *errnum = errno;
            close(fd);
            free(buf);
            return ATOMICFILE_READ_READ;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return ATOMICFILE_READ_OK;
}
