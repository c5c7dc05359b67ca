/* Whole output files, never seen half-written.
 *
 * rt_out_open writes into a temporary name beside the target (same folder,
 * so the final rename is atomic); rt_out_commit flushes, fsyncs the file,
 * renames it over the target and fsyncs the folder; rt_out_abort removes
 * the temporary. A reader of the target sees the old file or the whole new
 * one, and a failed write (full disk, no permission, a directory in the way)
 * leaves the old file as it was. A target that exists and is not a regular
 * file (a device such as /dev/full or /dev/null, a pipe) is written in place
 * instead: it cannot be replaced, and the same write checks apply. Every
 * error is "cannot write 'PATH': REASON". The new file gets `mode` less the
 * umask (0666 for data, 0777 for executables), as open(2) would give it. */
#ifndef DFLOW_RUNTIME_OUTFILE_H
#define DFLOW_RUNTIME_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *f;    /* write here */
    char *path; /* the target */
    char *tmp;  /* the temporary, or NULL when writing the target in place */
    unsigned mode;
} RtOutFile;

bool rt_out_open(RtOutFile *o, const char *path, unsigned mode, char *err, size_t errn);
/* Completes the file; false (and the temporary removed) when any write failed. */
bool rt_out_commit(RtOutFile *o, char *err, size_t errn);
void rt_out_abort(RtOutFile *o);

/* The whole file at once. */
bool rt_out_write_file(const char *path, const void *data, size_t n, unsigned mode, char *err,
                       size_t errn);

/* Moves an already written file `from` (in the target's folder) over `path`
 * after an fsync of both; for files another program wrote (the linker). */
bool rt_out_install(const char *from, const char *path, char *err, size_t errn);

/* Flushes stdout at exit; false after "PROG: cannot write standard output:
 * REASON" on stderr when any write to it failed (a full disk under `> log`),
 * so that a run whose log was lost does not exit 0. */
bool rt_out_finish_stdout(const char *prog);

/* "cannot write 'PATH': REASON" for an errno. */
void rt_out_error(char *err, size_t errn, const char *path, int e);

#endif
