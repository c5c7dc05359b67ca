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

/* .npy: f32, f64, i32, i64, bool, u8 (read as i32), little-endian, C order. */
RtTensor *rt_npy_read(const char *path, char *err, size_t errn);
bool rt_npy_write(const char *path, const RtTensor *t, char *err, size_t errn);

/* Numeric CSV: optional header row (detected: a non-numeric first row), every
 * row the same number of columns; result f32[rows, cols] (or f64/i32 as asked). */
RtTensor *rt_csv_read(const char *path, DType dt, bool *had_header, char *err, size_t errn);

/* IDX (MNIST format): magic 0x0000 08 NN (unsigned byte data), dims big-endian.
 * Images come back as f32[N, prod(rest)] times scale; labels (1-D) as i32[N]. */
RtTensor *rt_idx_read(const char *path, double scale, char *err, size_t errn);
/* Reads only the header: dims and count, for compile-time shapes. */
bool rt_idx_shape(const char *path, Shape *shape, char *err, size_t errn);

#endif
