/* Whole output files through a temporary name and rename (outfile.h).
 *
 * The temporary is made by mkstemp as "TARGET.tmp-XXXXXX", so two writers
 * never share one; it is chmod'ed to the mode the target would have had.
 * fsync of the file comes before the rename (so the new name never points at
 * data still in flight) and of the folder after it (so the rename itself
 * survives a crash). */
#include "runtime/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void rt_out_error(char *err, size_t errn, const char *path, int e) {
    if (err && errn)
        snprintf(err, errn, "cannot write '%s': %s", path ? path : "?",
                 e ? strerror(e) : "I/O error");
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static unsigned current_umask(void) {
    mode_t m = umask(0);
    umask(m);
    return (unsigned)m;
}

/* fsync of the folder holding path (best effort: not every file system can). */
static void sync_folder(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

bool rt_out_open(RtOutFile *o, const char *path, unsigned mode, char *err, size_t errn) {
    memset(o, 0, sizeof *o);
    o->mode = mode & ~current_umask();
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        rt_out_error(err, errn, path, EISDIR);
        return false;
    }
    o->path = dup_str(path);
    if (!o->path) {
        rt_out_error(err, errn, path, ENOMEM);
        return false;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        o->f = fopen(path, "wb"); /* a device or a pipe: written in place */
        if (!o->f) {
            rt_out_error(err, errn, path, errno);
            rt_out_abort(o);
            return false;
        }
        return true;
    }
    size_t n = strlen(path) + 16;
    o->tmp = malloc(n);
    if (!o->tmp) {
        rt_out_error(err, errn, path, ENOMEM);
        rt_out_abort(o);
        return false;
    }
    snprintf(o->tmp, n, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int e = errno;
        free(o->tmp);
        o->tmp = NULL;
        rt_out_error(err, errn, path, e);
        rt_out_abort(o);
        return false;
    }
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        int e = errno;
        close(fd);
        rt_out_error(err, errn, path, e);
        rt_out_abort(o);
        return false;
    }
    return true;
}

void rt_out_abort(RtOutFile *o) {
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
}

bool rt_out_commit(RtOutFile *o, char *err, size_t errn) {
    int e = 0;
    if (fflush(o->f) != 0 || ferror(o->f)) e = errno ? errno : EIO;
    /* a device (or pipe) cannot be fsync'ed: only regular files are */
    if (!e && o->tmp && fsync(fileno(o->f)) != 0) e = errno;
    if (!e && o->tmp && fchmod(fileno(o->f), (mode_t)o->mode) != 0) e = errno;
    if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
    o->f = NULL;
    if (!e && o->tmp && rename(o->tmp, o->path) != 0) e = errno;
    if (e) {
        rt_out_error(err, errn, o->path, e);
        rt_out_abort(o);
        return false;
    }
    if (o->tmp) {
        sync_folder(o->path);
        free(o->tmp);
        o->tmp = NULL; /* renamed: nothing to remove */
    }
    rt_out_abort(o);
    return true;
}

bool rt_out_write_file(const char *path, const void *data, size_t n, unsigned mode, char *err,
                       size_t errn) {
    RtOutFile o;
    if (!rt_out_open(&o, path, mode, err, errn)) return false;
    if (n && fwrite(data, 1, n, o.f) != n) {
        rt_out_error(err, errn, path, errno ? errno : EIO);
        rt_out_abort(&o);
        return false;
    }
    return rt_out_commit(&o, err, errn);
}

bool rt_out_install(const char *from, const char *path, char *err, size_t errn) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        rt_out_error(err, errn, path, EISDIR);
        return false;
    }
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    int e = fd < 0 ? errno : 0;
    if (!e && fsync(fd) != 0) e = errno;
    if (fd >= 0) close(fd);
    if (!e && rename(from, path) != 0) e = errno;
    if (e) {
        rt_out_error(err, errn, path, e);
        return false;
    }
    sync_folder(path);
    return true;
}

bool rt_out_finish_stdout(const char *prog) {
    errno = 0;
    bool ok = fflush(stdout) == 0 && !ferror(stdout);
    if (!ok)
        fprintf(stderr, "%s: cannot write standard output: %s\n", prog,
                errno ? strerror(errno) : "a write to it failed");
    return ok;
}
