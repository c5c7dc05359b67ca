/* The persistent compile cache (llvm_cache.h). */
#include "llvm_cache.h"

#include "../../runtime/grow.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bump when the entry layout or the meaning of a key changes. */
#define CACHE_FORMAT 1u
#define DEFAULT_MAX_BYTES (256ll << 20)
#define STALE_TMP_S 3600

static const char MAGIC[8] = {'D', 'F', 'L', 'W', 'K', 'O', 'B', 'J'};

typedef struct {
    char magic[8];
    uint32_t format;
    uint32_t header_bytes;
    uint64_t key_lo, key_hi;
    uint64_t size;
    uint64_t sum_lo, sum_hi; /* of the object bytes */
    uint64_t header_sum;     /* of everything above */
} Header;

struct LlvmCache {
    char *dir;
    int64_t max_bytes;
    atomic_llong hits, misses, rejected;
    atomic_uint serial;
};

/* ---- hashing --------------------------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int r) {
    return x << r | x >> (64 - r);
}

static uint64_t avalanche(uint64_t z) {
    z ^= z >> 33;
    z *= 0xff51afd7ed558ccdull;
    z ^= z >> 33;
    z *= 0xc4ceb9fe1a85ec53ull;
    return z ^ z >> 33;
}

LlvmKey llvm_key_seed(void) {
    return (LlvmKey){0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull};
}

/* Two lanes of different word functions, so the 128 bits are independent. */
LlvmKey llvm_key_add(LlvmKey h, const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t a = h.lo, b = h.hi;
    size_t left = n;
    while (left >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        a = rotl((a ^ w) * 0x9e3779b97f4a7c15ull, 27);
        b = (rotl(b, 31) + w) * 0xc2b2ae3d27d4eb4full;
        p += 8;
        left -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, left);
    w ^= (uint64_t)left << 56;
    a = rotl((a ^ w) * 0x9e3779b97f4a7c15ull, 27);
    b = (rotl(b, 31) + w) * 0xc2b2ae3d27d4eb4full;
    a = avalanche(a ^ (uint64_t)n);
    b = avalanche(b + a + (uint64_t)n * 0x165667b19e3779f9ull);
    return (LlvmKey){a, b};
}

LlvmKey llvm_key_add_str(LlvmKey h, const char *s) {
    return llvm_key_add(h, s, strlen(s) + 1);
}

/* ---- the folder ------------------------------------------------------------------------- */

const char *llvm_cache_default_dir(char *buf, size_t n) {
    const char *off = getenv("DFLOW_NO_CACHE");
    if (off && *off && strcmp(off, "0") != 0) return NULL;
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int k;
    if (xdg && xdg[0] == '/') /* the XDG spec ignores relative paths */
        k = snprintf(buf, n, "%s/dflow", xdg);
    else if (home && *home)
        k = snprintf(buf, n, "%s/.cache/dflow", home);
    else
        return NULL;
    return k > 0 && (size_t)k < n ? buf : NULL;
}

/* mkdir -p; false when some component cannot be made a folder. */
static bool make_dirs(char *path) {
    for (char *s = path + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        bool ok = mkdir(path, 0755) == 0 || errno == EEXIST;
        *s = c;
        if (!ok) return false;
        if (c == '\0') break;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

LlvmCache *llvm_cache_open(const char *dir, int64_t max_bytes) {
    if (!dir || !*dir) return NULL;
    LlvmCache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->dir = strdup(dir);
    if (!c->dir || !make_dirs(c->dir)) {
        free(c->dir);
        free(c);
        return NULL;
    }
    const char *mb = getenv("DFLOW_CACHE_MAX_MB");
    long long v = mb ? atoll(mb) : 0;
    c->max_bytes = max_bytes > 0 ? max_bytes : v > 0 ? v << 20 : DEFAULT_MAX_BYTES;
    return c;
}

void llvm_cache_close(LlvmCache *c) {
    if (!c) return;
    free(c->dir);
    free(c);
}

static void entry_path(const LlvmCache *c, LlvmKey key, char *buf, size_t n) {
    snprintf(buf, n, "%s/%016llx%016llx.obj", c->dir, (unsigned long long)key.hi,
             (unsigned long long)key.lo);
}

static uint64_t header_sum(const Header *h) {
    LlvmKey k = llvm_key_add(llvm_key_seed(), h, offsetof(Header, header_sum));
    return k.lo;
}

/* ---- reading and writing ---------------------------------------------------------------- */

static bool read_all(int fd, void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static bool write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* The entry's object when every check passes; NULL otherwise. */
static void *read_entry(int fd, LlvmKey key, size_t *n) {
    Header h;
    struct stat st;
    if (fstat(fd, &st) != 0 || !read_all(fd, &h, sizeof h)) return NULL;
    if (memcmp(h.magic, MAGIC, sizeof MAGIC) != 0 || h.format != CACHE_FORMAT ||
        h.header_bytes != sizeof h || h.header_sum != header_sum(&h) || h.key_lo != key.lo ||
        h.key_hi != key.hi || h.size == 0 || (uint64_t)st.st_size != sizeof h + h.size)
        return NULL;
    void *data = malloc((size_t)h.size);
    if (!data) return NULL;
    LlvmKey sum = llvm_key_seed();
    if (!read_all(fd, data, (size_t)h.size) || ((sum = llvm_key_add(sum, data, (size_t)h.size)),
                                                sum.lo != h.sum_lo || sum.hi != h.sum_hi)) {
        free(data);
        return NULL;
    }
    *n = (size_t)h.size;
    return data;
}

bool llvm_cache_get(LlvmCache *c, LlvmKey key, void **data, size_t *n) {
    *data = NULL;
    *n = 0;
    if (!c) return false;
    char path[4096];
    entry_path(c, key, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        atomic_fetch_add(&c->misses, 1);
        return false;
    }
    *data = read_entry(fd, key, n);
    if (*data) futimens(fd, NULL); /* recently used: evicted last */
    close(fd);
    if (!*data) {
        atomic_fetch_add(&c->rejected, 1);
        atomic_fetch_add(&c->misses, 1);
        return false;
    }
    atomic_fetch_add(&c->hits, 1);
    return true;
}

bool llvm_cache_put(LlvmCache *c, LlvmKey key, const void *data, size_t n) {
    if (!c || n == 0) return false;
    Header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MAGIC, sizeof MAGIC);
    h.format = CACHE_FORMAT;
    h.header_bytes = sizeof h;
    h.key_lo = key.lo;
    h.key_hi = key.hi;
    h.size = n;
    LlvmKey sum = llvm_key_add(llvm_key_seed(), data, n);
    h.sum_lo = sum.lo;
    h.sum_hi = sum.hi;
    h.header_sum = header_sum(&h);
    char path[4096], tmp[4200];
    entry_path(c, key, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%u", c->dir, (long)getpid(),
             atomic_fetch_add(&c->serial, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    bool ok = write_all(fd, &h, sizeof h) && write_all(fd, data, n);
    ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) unlink(tmp);
    return ok;
}

/* ---- bounding the folder ---------------------------------------------------------------- */

typedef struct {
    char name[48];
    time_t mtime;
    long mtime_ns;
    int64_t size;
} FileInfo;

static int older_first(const void *a, const void *b) {
    const FileInfo *x = a, *y = b;
    if (x->mtime != y->mtime) return x->mtime < y->mtime ? -1 : 1;
    if (x->mtime_ns != y->mtime_ns) return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

static bool is_entry(const char *name) {
    size_t n = strlen(name);
    return n == 36 && strcmp(name + 32, ".obj") == 0;
}

int llvm_cache_trim(LlvmCache *c) {
    if (!c) return 0;
    DIR *d = opendir(c->dir);
    if (!d) return 0;
    FileInfo *files = NULL;
    int nf = 0, cap = 0, removed = 0;
    int64_t total = 0;
    time_t now = time(NULL);
    char path[4200];
    for (struct dirent *e; (e = readdir(d));) {
        bool tmp = strncmp(e->d_name, ".tmp-", 5) == 0;
        if (!tmp && !is_entry(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", c->dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) continue; /* another run removed it */
        if (tmp) {
            if (now - st.st_mtime > STALE_TMP_S && unlink(path) == 0) removed++;
            continue;
        }
        if (!rt_grow(&files, &cap, (size_t)nf + 1, 256)) break;
        FileInfo *f = &files[nf++];
        snprintf(f->name, sizeof f->name, "%.40s", e->d_name); /* is_entry: 36 characters */
        f->mtime = st.st_mtim.tv_sec;
        f->mtime_ns = st.st_mtim.tv_nsec;
        f->size = (int64_t)st.st_size;
        total += f->size;
    }
    closedir(d);
    if (total > c->max_bytes) {
        qsort(files, (size_t)nf, sizeof *files, older_first);
        for (int i = 0; i < nf && total > c->max_bytes; i++) {
            snprintf(path, sizeof path, "%s/%s", c->dir, files[i].name);
            if (unlink(path) == 0 || errno == ENOENT) {
                total -= files[i].size;
                removed++;
            }
        }
    }
    free(files);
    return removed;
}

void llvm_cache_counts(const LlvmCache *c, int64_t *hits, int64_t *misses, int64_t *rejected) {
    LlvmCache *m = (LlvmCache *)c;
    if (hits) *hits = c ? atomic_load(&m->hits) : 0;
    if (misses) *misses = c ? atomic_load(&m->misses) : 0;
    if (rejected) *rejected = c ? atomic_load(&m->rejected) : 0;
}
