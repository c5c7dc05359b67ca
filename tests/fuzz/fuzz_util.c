/* Helpers of the fuzz targets (fuzz_util.h). */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    fprintf(stderr, "%s:%d: contract broken: %s: ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void fz_file_open(FzFile *f, const char *tag) {
    f->fd = memfd_create(tag, MFD_CLOEXEC);
    fz_check(f->fd >= 0, "memfd_create: %s", strerror(errno));
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

void fz_file_set(FzFile *f, const uint8_t *data, size_t n) {
    fz_check(ftruncate(f->fd, 0) == 0, "ftruncate: %s", strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(f->fd, data + done, n - done, (off_t)done);
        fz_check(w > 0, "pwrite: %s", strerror(errno));
        done += (size_t)w;
    }
}

void fz_absolute_args(int *argc, char ***argv) {
    char cwd[4096];
    fz_check(getcwd(cwd, sizeof cwd) != NULL, "getcwd: %s", strerror(errno));
    for (int i = 1; i < *argc; i++) {
        const char *a = (*argv)[i];
        if (a[0] == '-' || a[0] == '/') continue;
        size_t n = strlen(cwd) + strlen(a) + 2;
        char *abs = malloc(n); /* lives as long as libFuzzer's arguments */
        fz_check(abs != NULL, "%s", "out of memory");
        snprintf(abs, n, "%s/%s", cwd, a);
        (*argv)[i] = abs;
    }
}

static char tempdirs[4][4096];
static int ntempdirs;

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tempdirs(void) {
    for (int i = 0; i < ntempdirs; i++)
        nftw(tempdirs[i], remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tempdir(const char *tag) {
    fz_check(ntempdirs < 4, "too many temporary folders");
    const char *tmp = getenv("TMPDIR");
    char *d = tempdirs[ntempdirs];
    snprintf(d, sizeof tempdirs[0], "%s/dflow-fuzz-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    fz_check(mkdtemp(d) != NULL, "mkdtemp %s: %s", d, strerror(errno));
    if (ntempdirs++ == 0) atexit(remove_tempdirs);
    return d;
}

void fz_write(const char *dir, const char *name, const void *data, size_t n) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    if (slash && slash > path + strlen(dir)) {
        *slash = 0;
        fz_check(mkdir(path, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", path, strerror(errno));
        *slash = '/';
    }
    FILE *f = fopen(path, "wb");
    fz_check(f != NULL, "open %s: %s", path, strerror(errno));
    fz_check(fwrite(data, 1, n, f) == n && fclose(f) == 0, "write %s", path);
}

/* ---- the data files of fz_tiny_data ---- */

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

/* An IDX pair of n images of side x side bytes and their labels 0..9. */
static void write_idx(const char *dir, int n, int side) {
    size_t ni = 16 + (size_t)n * (size_t)(side * side), nl = 8 + (size_t)n;
    uint8_t *img = calloc(ni, 1), *lab = calloc(nl, 1);
    fz_check(img && lab, "%s", "out of memory");
    img[2] = 0x08, img[3] = 3;
    put_be32(img + 4, (uint32_t)n), put_be32(img + 8, (uint32_t)side),
        put_be32(img + 12, (uint32_t)side);
    for (size_t i = 16; i < ni; i++)
        img[i] = (uint8_t)(i * 37 % 256);
    lab[2] = 0x08, lab[3] = 1;
    put_be32(lab + 4, (uint32_t)n);
    for (int i = 0; i < n; i++)
        lab[8 + i] = (uint8_t)(i % 10);
    fz_write(dir, "data/mnist10k-images-idx3-ubyte", img, ni);
    fz_write(dir, "data/mnist10k-labels-idx1-ubyte", lab, nl);
    free(img);
    free(lab);
}

/* f32[4, 3] with values 0..11. */
static void write_npy(const char *dir) {
    static const char head[] = "\x93NUMPY\x01\x00\x76\x00"
                               "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }";
    uint8_t buf[10 + 118 + 48];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, head, sizeof head - 1);
    buf[10 + 117] = '\n';
    for (int i = 0; i < 12; i++) {
        float v = (float)i;
        memcpy(buf + 128 + 4 * i, &v, 4);
    }
    fz_write(dir, "data/x.npy", buf, sizeof buf);
}

void fz_tiny_data(const char *dir) {
    write_idx(dir, 16, 28);
    write_npy(dir);
    static const char csv[] = "a,b,c,label\n0.5,1,2,0\n1.5,-1,0.25,1\n2,3,4,2\n-1,0,1,1\n";
    fz_write(dir, "data/x.csv", csv, sizeof csv - 1);
}
