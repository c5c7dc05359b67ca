/* What the libFuzzer targets of tests/fuzz share.
 *
 * The data readers take a path, not bytes (runtime/dataio.h), so a target
 * hands them its input as a file: an in-memory file (memfd) named by its
 * /proc/self/fd path, rewritten for every input, so no disk is touched and
 * nothing is left behind. fz_check is the targets' assertion: a broken
 * contract aborts, which libFuzzer reports as a crash with the input. */
#ifndef DFLOW_TESTS_FUZZ_UTIL_H
#define DFLOW_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fd;
    char path[64]; /* "/proc/self/fd/N" */
} FzFile;

/* Opens an in-memory file named after tag; aborts when the system has none. */
void fz_file_open(FzFile *f, const char *tag);
/* Replaces the file's contents with data[0..n). */
void fz_file_set(FzFile *f, const uint8_t *data, size_t n);

/* A fresh private directory (mkdtemp under $TMPDIR or /tmp), removed at exit
 * with everything in it. Aborts on failure. */
const char *fz_tempdir(const char *tag);
/* Writes data[0..n) to dir/name, creating dir/name's folder; aborts on failure. */
void fz_write(const char *dir, const char *name, const void *data, size_t n);

/* Makes every argument that is not a -flag an absolute path, for a target
 * that changes directory in LLVMFuzzerInitialize: libFuzzer parses its
 * arguments again after that call, so corpus folders and crash files given
 * relative to the caller's directory still resolve. */
void fz_absolute_args(int *argc, char ***argv);

/* Small data files under dir for seed programs: data/mnist10k-images-idx3-ubyte
 * and -labels-idx1-ubyte (16 digits of 28 x 28, labels 0..9), data/x.npy
 * (f32[4, 3], 0..11) and data/x.csv (a header, 4 rows of 4 columns, the
 * last an integer label). */
void fz_tiny_data(const char *dir);

#define fz_check(cond, ...) ((cond) ? (void)0 : fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__))
void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#endif
