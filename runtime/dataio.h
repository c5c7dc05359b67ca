/* Reading and writing data files: npy, CSV, IDX (plain or gzip).
 *
 * Every reader returns a newly allocated tensor (caller frees) or NULL with a
 * one-line reason in err ("data/x.npy: truncated: expected 3136 bytes of
 * data, found 1000"). Readers validate everything they are given: magic,
 * header, sizes against the file length; a corrupt file is an error, never a
 * crash or a huge allocation. Gzip is detected by its magic bytes, not by the
 * file name. */
#ifndef DFLOW_RUNTIME_DATAIO_H
#define DFLOW_RUNTIME_DATAIO_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

/* Whole file (gunzipped when it starts with the gzip magic). Caller frees *out.
 * The buffer holds one extra NUL after the *n data bytes (text-friendly).
 * Decompressed data is capped at 4 GiB. */
bool rt_read_file(const char *path, unsigned char **out, size_t *n, char *err, size_t errn);
/* Gunzips in memory (the same checks and cap); *out has the extra NUL. */
bool rt_gunzip(const char *name, const unsigned char *in, size_t n, unsigned char **out,
               size_t *outn, char *err, size_t errn);

/* .npy: f32, f64, i32, i64, bool, u8 (read as i32), little-endian, C order. */
RtTensor *rt_npy_read(const char *path, char *err, size_t errn);
/* The same on bytes in memory (name is used in errors): for tests and fuzzing. */
RtTensor *rt_npy_parse(const char *name, const unsigned char *buf, size_t n, char *err,
                       size_t errn);
bool rt_npy_write(const char *path, const RtTensor *t, char *err, size_t errn);

/* Numeric CSV: every row the same number of columns; result dtype[rows, cols].
 * The first row is a header by one rule (csv.c, docs/language.md): AUTO takes
 * it as a header when none of its cells is a number, as data when all are,
 * and refuses a mix; YES refuses an all-numeric first row; NO reads it as
 * data. A NUL byte is an error. has_int_col: column int_col (negative: from
 * the end) must hold integers in the i32 range (labels; in a float table
 * they are stored exactly). Errors are "file:line:col: ...". */
typedef enum { RT_CSV_HEADER_AUTO, RT_CSV_HEADER_YES, RT_CSV_HEADER_NO } RtCsvHeader;
typedef struct {
    DType dtype; /* f32, f64, i32, i64 */
    RtCsvHeader header;
    bool has_int_col;
    int64_t int_col;
} RtCsvOptions;
RtTensor *rt_csv_read_opts(const char *path, const RtCsvOptions *o, bool *had_header, char *err,
                           size_t errn);
/* The same on bytes in memory (name is used in errors): for tests and fuzzing. */
RtTensor *rt_csv_parse(const char *name, const unsigned char *buf, size_t n, const RtCsvOptions *o,
                       bool *had_header, char *err, size_t errn);
/* AUTO header, no integer column. */
RtTensor *rt_csv_read(const char *path, DType dt, bool *had_header, char *err, size_t errn);

/* IDX (MNIST format): magic 0x0000 08 NN (unsigned byte data), dims big-endian.
 * Images come back as f32[N, prod(rest)] times scale; labels (1-D) as i32[N].
 * A role checks the file's rank (images >= 2, labels == 1; the error names
 * the file); ANY takes the rank as it comes. */
typedef enum { RT_IDX_ANY, RT_IDX_IMAGES, RT_IDX_LABELS } RtIdxRole;
RtTensor *rt_idx_read(const char *path, double scale, char *err, size_t errn);
RtTensor *rt_idx_read_as(const char *path, RtIdxRole role, double scale, char *err, size_t errn);
/* The same on bytes in memory (name is used in errors): for tests and fuzzing. */
RtTensor *rt_idx_parse(const char *name, const unsigned char *buf, size_t n, RtIdxRole role,
                       double scale, char *err, size_t errn);
/* Reads only the header: dims and count, for compile-time shapes. */
bool rt_idx_shape(const char *path, Shape *shape, char *err, size_t errn);
bool rt_idx_shape_as(const char *path, RtIdxRole role, Shape *shape, char *err, size_t errn);

#endif
