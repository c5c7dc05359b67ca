/* Host tensors: a dtype, a static shape and one owned block of memory.
 *
 * This is the only tensor type below the compiler: the interpreter, the data
 * loaders and the executor all pass RtTensor. Data is dense, row-major (C
 * order), with no strides; views belong to kernels, not to this type.
 * Ownership: rt_tensor_new returns a tensor the caller frees with
 * rt_tensor_free; data is freed with it (unless the tensor is a view of
 * memory someone else owns). Allocation failure returns NULL. */
#ifndef DFLOW_RUNTIME_TENSOR_H
#define DFLOW_RUNTIME_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_MAX_RANK 8
/* rt_tensor_new refuses anything larger (1 TiB): sizes read from files or
 * programs are checked here before malloc sees them. */
#define RT_TENSOR_MAX_BYTES ((int64_t)1 << 40)

typedef enum {
    DT_F32,
    DT_F64,
    DT_F16,  /* declared for later backends; no arithmetic yet */
    DT_BF16, /* declared for later backends; no arithmetic yet */
    DT_I32,
    DT_I64,
    DT_BOOL, /* one byte per element, 0 or 1; the last (DT_COUNT below) */
} DType;

/* The number of dtypes, kept out of DType so that a switch naming every dtype
 * need not name a sentinel too (tensor.c checks its tables against it). */
#define DT_COUNT ((int)DT_BOOL + 1)

typedef struct {
    int rank; /* 0 for a scalar */
    int64_t dims[RT_MAX_RANK];
} Shape;

typedef struct {
    DType dtype;
    Shape shape;
    void *data;          /* numel * rt_dtype_size bytes, owned unless view */
    bool view;           /* data belongs to something else (a program image): not freed */
    int64_t alloc_bytes; /* what rt_tensor_new allocated (0 for a view) */
} RtTensor;

const char *rt_dtype_name(DType t); /* "f32", ... */
bool rt_dtype_from_name(const char *s, DType *out);
size_t rt_dtype_size(DType t); /* bytes per element */
bool rt_dtype_is_float(DType t);
bool rt_dtype_is_int(DType t); /* i32, i64 (not bool) */

int64_t rt_shape_numel(const Shape *s); /* 1 for a scalar; -1 if invalid
                                           (bad rank, negative dim, overflow) */
bool rt_shape_eq(const Shape *a, const Shape *b);
/* The same non-1 dimensions in the same order (a reshape between them only
 * adds or drops size-1 axes, so it maps coordinates one to one). */
bool rt_shape_eq_squeezed(const Shape *a, const Shape *b);
Shape rt_shape_make(int rank, const int64_t *dims);
Shape rt_shape_scalar(void);
/* Writes "[2,3]" (or "[]") into buf; returns buf. */
char *rt_shape_str(const Shape *s, char *buf, size_t n);

RtTensor *rt_tensor_new(DType t, Shape s); /* zero-filled; NULL on OOM or an
                                              invalid / oversized shape */
RtTensor *rt_tensor_clone(const RtTensor *t);
void rt_tensor_free(RtTensor *t);
size_t rt_tensor_bytes(const RtTensor *t);
/* Bytes held by the tensors rt_tensor_new made that are not freed yet. */
int64_t rt_tensor_live_bytes(void);
/* "512 B", "1.5 KiB", "3.0 MiB", "5.96 GiB" into buf; returns buf. */
char *rt_bytes_str(int64_t bytes, char *buf, size_t n);

/* Element access as double / int64 regardless of dtype (slow paths for
 * loaders, printing and tests). */
double rt_tensor_get_f64(const RtTensor *t, int64_t i);
void rt_tensor_set_f64(RtTensor *t, int64_t i, double v);
int64_t rt_tensor_get_i64(const RtTensor *t, int64_t i);
void rt_tensor_set_i64(RtTensor *t, int64_t i, int64_t v);

#endif
