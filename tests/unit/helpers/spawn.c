/* Child processes for the CLI tests (see spawn.h).
 *
 * fork + execv with stdout/stderr on pipes; the parent polls both pipes with
 * a short timeout so it can watch the clock (kill at the limit, send the
 * optional signal) while draining the output. */
#include "spawn.h"
#include "runtime/grow.h"

#include <criterion/criterion.h>
#include <stdarg.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    char *buf;
    size_t n, cap;
} Buf;

static void buf_add(Buf *b, const char *p, size_t n) {
    if (!rt_grow(&b->buf, &b->cap, b->n + n + 1, 4096)) return;
    memcpy(b->buf + b->n, p, n);
    b->n += n;
    b->buf[b->n] = '\0';
}

/* Reads what is available; returns false at end of file. */
static bool drain(int fd, Buf *b) {
    char tmp[8192];
    ssize_t k = read(fd, tmp, sizeof tmp);
    if (k > 0) {
        buf_add(b, tmp, (size_t)k);
        return true;
    }
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    return false;
}

bool th_spawn(char *const *argv, const SpawnOptions *o, SpawnResult *r) {
    memset(r, 0, sizeof *r);
    SpawnOptions def = {0};
    if (!o) o = &def;
    double limit = o->timeout_s > 0 ? o->timeout_s : 60;
    int po[2], pe[2];
    if (pipe(po) != 0) return false;
    if (pipe(pe) != 0) {
        close(po[0]);
        close(po[1]);
        return false;
    }
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        return false;
    }
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        signal(SIGINT, SIG_DFL);
        if (o->rlimit_data > 0) {
            struct rlimit rl = {(rlim_t)o->rlimit_data, (rlim_t)o->rlimit_data};
            if (setrlimit(RLIMIT_DATA, &rl) != 0) _exit(126);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    Buf out = {0}, err = {0};
    bool out_open = true, err_open = true, sent = false, killed = false;
    int status = 0;
    bool reaped = false;
    while (out_open || err_open || !reaped) {
        double el = now_s() - t0;
        if (!killed && el > limit) {
            kill(pid, SIGKILL);
            killed = true;
        }
        if (o->send_sig && !sent && el >= o->send_after_s &&
            (!o->send_when || (out.buf && strstr(out.buf, o->send_when)) ||
             (err.buf && strstr(err.buf, o->send_when)))) {
            kill(pid, o->send_sig);
            sent = true;
        }
        if (out_open || err_open) {
            struct pollfd fds[2];
            int nf = 0;
            if (out_open) fds[nf++] = (struct pollfd){po[0], POLLIN, 0};
            if (err_open) fds[nf++] = (struct pollfd){pe[0], POLLIN, 0};
            int pr = poll(fds, (nfds_t)nf, 20);
            if (pr > 0) {
                for (int i = 0; i < nf; i++) {
                    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                    bool is_out = fds[i].fd == po[0];
                    if (!drain(fds[i].fd, is_out ? &out : &err)) {
                        if (is_out)
                            out_open = false;
                        else
                            err_open = false;
                    }
                }
            }
        } else {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) reaped = true;
        }
        /* a grandchild holding the pipes open must not keep us forever */
        if (reaped && now_s() - t0 > limit + 5) break;
    }
    close(po[0]);
    close(pe[0]);
    r->secs = now_s() - t0;
    r->out = out.buf ? out.buf : calloc(1, 1);
    r->err = err.buf ? err.buf : calloc(1, 1);
    r->outlen = out.n;
    r->errlen = err.n;
    if (killed) {
        r->timed_out = true;
    } else if (WIFEXITED(status)) {
        r->exited = true;
        r->code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r->signaled = true;
        r->sig = WTERMSIG(status);
    }
    return true;
}

void th_spawn_free(SpawnResult *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

const char *th_dflow_bin(void) {
    const char *b = getenv("DFLOW_BIN");
    return b && *b ? b : NULL;
}

bool th_tempdir(char *buf, size_t n, const char *tag) {
    const char *tmp = getenv("TMPDIR");
    snprintf(buf, n, "%s/dflow_%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    return mkdtemp(buf) != NULL;
}

void th_rmdir(const char *path) {
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", path, (char *)NULL);
        _exit(127);
    }
    if (pid > 0) waitpid(pid, NULL, 0);
}

char *th_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    Buf b = {0};
    char tmp[8192];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(&b, tmp, k);
    fclose(f);
    if (!b.buf) b.buf = calloc(1, 1);
    if (len) *len = b.n;
    return b.buf;
}

SpawnResult th_vrun(double timeout_s, const char *prog, const char *first, va_list ap) {
    char *argv[18];
    int n = 0;
    argv[n++] = (char *)prog;
    for (const char *a = first; a && n < 17; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    argv[n] = NULL;
    SpawnOptions o = {.timeout_s = timeout_s};
    SpawnResult r;
    cr_assert(th_spawn(argv, &o, &r), "could not start %s", prog);
    return r;
}

SpawnResult th_run(double timeout_s, const char *prog, ...) {
    va_list ap;
    va_start(ap, prog);
    const char *first = va_arg(ap, const char *);
    SpawnResult r = th_vrun(timeout_s, prog, first, ap);
    va_end(ap);
    return r;
}

SpawnResult th_dflow(double timeout_s, const char *a1, ...) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    va_list ap;
    va_start(ap, a1);
    SpawnResult r = th_vrun(timeout_s, bin, a1, ap);
    va_end(ap);
    return r;
}

int th_count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p++)
        n++;
    return n;
}

double th_number_after(const char *s, const char *label) {
    const char *p = strstr(s, label);
    return p ? strtod(p + strlen(label), NULL) : NAN;
}
