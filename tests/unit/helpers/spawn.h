/* Test helper: run a program (usually $DFLOW_BIN) as a child process with a
 * time limit, capturing stdout and stderr, and report how it ended.
 *
 * The child is killed (SIGKILL) when the limit passes; optionally a signal
 * (SIGINT, to test Ctrl-C) is sent to it after a delay. Never hangs on a
 * child that floods its pipes: both are drained while waiting. */
#ifndef DFLOW_TESTS_SPAWN_H
#define DFLOW_TESTS_SPAWN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    bool exited; /* normal exit: code holds the status */
    int code;
    bool signaled; /* killed by a signal other than our timeout kill */
    int sig;
    bool timed_out;  /* we killed it at the limit */
    char *out, *err; /* NUL-terminated captured output (caller frees: th_spawn_free) */
    size_t outlen, errlen;
    double secs;
} SpawnResult;

typedef struct {
    double timeout_s; /* kill after this long (<= 0: 60 s) */
    int send_sig;     /* 0 or a signal to send after send_after_s */
    double send_after_s;
    /* when send_sig is set and this is non-NULL, the signal is sent only
     * once this text has appeared in the child's stdout or stderr */
    const char *send_when;
    /* > 0: the child's data segment limit (RLIMIT_DATA, bytes), so that
       large allocations fail as they would on a smaller machine */
    long long rlimit_data;
} SpawnOptions;

/* argv[0] is the program path; argv ends with NULL. False when the child
 * could not be started at all. */
bool th_spawn(char *const *argv, const SpawnOptions *o, SpawnResult *r);
void th_spawn_free(SpawnResult *r);

/* Runs prog with the arguments that follow it, up to a NULL (at most 16),
 * and a time limit; a failure to start fails the calling Criterion test. */
SpawnResult th_run(double timeout_s, const char *prog, ...);
/* The same with the arguments first, then ap. */
SpawnResult th_vrun(double timeout_s, const char *prog, const char *first, va_list ap);

/* The child exited normally with status want (else the test fails with its output). */
#define TH_EXPECT_EXIT(r, want)                                                                    \
    do {                                                                                           \
        cr_assert((r).exited, "did not exit normally (signal %d, timed out %d); stderr:\n%s",      \
                  (r).sig, (int)(r).timed_out, (r).err);                                           \
        cr_assert_eq((r).code, (want), "exit %d, want %d; stderr:\n%s\nstdout:\n%s", (r).code,     \
                     (want), (r).err, (r).out);                                                    \
    } while (0)

/* $DFLOW_BIN, or NULL when unset. */
const char *th_dflow_bin(void);
/* Runs $DFLOW_BIN with up to 15 arguments (NULL-terminated); skips the
 * calling test when DFLOW_BIN is unset (outside ctest). */
SpawnResult th_dflow(double timeout_s, const char *a1, ...);
/* How many times sub occurs in s; the number right after label in s (NAN
 * when label is absent). */
int th_count(const char *s, const char *sub);
double th_number_after(const char *s, const char *label);
/* A fresh temporary folder (under $TMPDIR); path written to buf. */
bool th_tempdir(char *buf, size_t n, const char *tag);
/* rm -rf of a folder made by th_tempdir. */
void th_rmdir(const char *path);
/* Whole file as a NUL-terminated string (caller frees), or NULL. */
char *th_slurp(const char *path, size_t *len);

#endif
