/* Linear algebra from LAPACK: the one implementation of the library-call
 * ops (OPF_CALL in ir/ops.def), used by the interpreter and called by the
 * compiled kernels alike, so the two backends agree bit for bit.
 *
 * Contract of rt_linalg_call:
 *  - a and b are `batch` row-major (C order) matrices stored one after the
 *    other: a is m x n (n x n for the square ops), b (solve only) is n x k;
 *    dtype f32 (f64 == 0) or f64. They are only read (out may alias them:
 *    every input matrix is copied before anything is written).
 *  - out receives the op's results packed one after the other, each result
 *    for the whole batch before the next one (the layout of a tuple, see
 *    docs/architecture.md "Multi-output nodes"), in the same dtype:
 *      SOLVE    X [n,k]            A X = B
 *      CHOLESKY L [n,n]            lower, L L^T = A (A's lower triangle is read)
 *      INV      A^-1 [n,n]
 *      DET      det A (one value per matrix)
 *      SLOGDET  sign, log|det A|   (sign 0, log -inf for a singular matrix)
 *      QR       Q [m,r], R [r,n]   r = min(m, n); thin (reduced) QR
 *      SVD      U [m,r], S [r], Vt [r,n]  S descending
 *      EIGH     w [n], V [n,n]     A's lower triangle read; w ascending,
 *                                  columns of V the eigenvectors
 *  - f32 data is factorised in f64 (LAPACK's d-routines) and rounded once
 *    at the end.
 *  - Returns RT_LA_OK, or an error code; the failing matrix's index in the
 *    batch and LAPACK's info are kept for rt_linalg_error_text (one record
 *    per process: graphs run one at a time and a call kernel is one task).
 *    It never aborts; LAPACK's workspace is malloc'ed per call (an
 *    allocation failure is RT_LA_OOM). */
#ifndef DFLOW_RUNTIME_LINALG_H
#define DFLOW_RUNTIME_LINALG_H

#include <stddef.h>
#include <stdint.h>

/* The values are compiled into kernels (constants of their calls, and so of
 * the JIT cache's entries, which are keyed by the kernels' IR): append new
 * functions, never renumber. */
typedef enum {
    RT_LA_SOLVE,
    RT_LA_CHOLESKY,
    RT_LA_INV,
    RT_LA_DET,
    RT_LA_SLOGDET,
    RT_LA_QR,
    RT_LA_SVD,
    RT_LA_EIGH,
} RtLaFn;

typedef enum {
    RT_LA_OK,
    RT_LA_SINGULAR,     /* solve, inv: an exactly zero pivot U[info, info] */
    RT_LA_NOT_PD,       /* cholesky: leading minor `info` is not positive */
    RT_LA_NO_CONVERGE,  /* svd, eigh: the iteration did not converge */
    RT_LA_NONFINITE,    /* an input entry is inf or nan */
    RT_LA_OOM,          /* workspace could not be allocated */
    RT_LA_TOO_LARGE,    /* a dimension beyond LAPACK's integer */
    RT_LA_BAD_ARGUMENT, /* LAPACK rejected argument -info (internal error) */
} RtLaStatus;

int32_t rt_linalg_call(int32_t fn, int32_t f64, int64_t batch, int64_t m, int64_t n, int64_t k,
                       void *out, const void *a, const void *b);

/* The last failure's description ("matrix is not positive definite (leading
 * minor 3)", with "matrix 2 of the batch" when batch > 1), without the op's
 * name; "" when none. Does not clear it. */
const char *rt_linalg_error_text(void);
/* Forgets the last failure (a runner calls it before reporting a check). */
void rt_linalg_error_clear(void);

#endif
