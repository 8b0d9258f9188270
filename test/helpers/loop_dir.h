/*
 * The fixture of unit tests that write files from a libuv loop: one loop
 * and one fresh temporary directory per test, with the path of the file
 * under test in it. Setup makes them; teardown runs the loop dry, closes
 * it (asserting nothing is left open) and removes the directory. Include
 * after <cmocka.h>. Also: slurp and spit, a whole file read and written.
 */
#ifndef D8_TEST_LOOP_DIR_H
#define D8_TEST_LOOP_DIR_H

#include "base/base.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

typedef struct fx {
    uv_loop_t loop;
    char dir[64];
    char path[160];
} fx_t;

/* *state: a loop and the directory /tmp/<prefix>-XXXXXX; path is
 * <dir>/<file>. */
static inline int loop_dir_setup(void **state, const char *prefix, const char *file)
{
    fx_t *fx = d8_xcalloc(1, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/%s-XXXXXX", prefix);
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, file);
    *state = fx;
    return 0;
}

/* Removes dir and everything under it. */
static inline void loop_dir_rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int n = snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (n < 0 || (size_t)n >= sizeof(p))
            continue; /* cannot be under the short /tmp directory */
        if (unlink(p) != 0)
            loop_dir_rm_tree(p);
    }
    closedir(d);
    rmdir(dir);
}

static inline int loop_dir_teardown(void **state)
{
    fx_t *fx = *state;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    loop_dir_rm_tree(fx->dir);
    free(fx);
    return 0;
}

/* The whole file at path (*len its length; free it), or NULL when it
 * cannot be opened. */
static inline char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    d8_buf_t b;
    d8_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        d8_buf_append(&b, chunk, n);
    fclose(f);
    return d8_buf_detach(&b, len);
}

/* Writes data (len bytes) as the whole file at path. */
static inline void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

#endif
