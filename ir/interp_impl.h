/* Internal to the reference interpreter (interp*.c): per-family kernels and
 * the scalar load/store helpers they share.
 *
 * Each kernel gets a node and its source values (dtypes and shapes already
 * checked by the op's rule) and returns a new tensor, or NULL after
 * reporting a diagnostic. Float values travel as double and are rounded once
 * when stored; integers travel as int64 and are wrapped to the width when
 * stored; bool is a 0/1 byte. The generic helpers below switch on the dtype
 * per element and serve the rare paths; the hot f32/f64 paths in the kernels
 * use typed loops instead. */
#ifndef DFLOW_IR_INTERP_IMPL_H
#define DFLOW_IR_INTERP_IMPL_H

#include <math.h>
#include <stdint.h>

#include "interp.h"

RtTensor *ir_interp_ew(const Node *n, RtTensor *const *src, DiagList *d);     /* interp_ew.c */
RtTensor *ir_interp_reduce(const Node *n, RtTensor *const *src, DiagList *d); /* interp_tensor.c */
RtTensor *ir_interp_move(const Node *n, RtTensor *const *src, DiagList *d);   /* interp_tensor.c */
RtTensor *ir_interp_matmul(const Node *n, RtTensor *const *src, DiagList *d); /* interp_tensor.c */
RtTensor *ir_interp_order(const Node *n, RtTensor *const *src, DiagList *d);  /* interp_order.c */
/* A library call: runtime/linalg.c, the same code the kernels call. */
RtTensor *ir_interp_call(const Node *n, RtTensor *const *src, DiagList *d); /* interp_tensor.c */

/* A fresh zeroed tensor for n's result, or NULL after an "out of memory" diagnostic. */
RtTensor *ir_interp_alloc(const Node *n, DiagList *d);

static inline bool interp_is_float(DType t) {
    return t == DT_F32 || t == DT_F64;
}

static inline double ld_f(const void *p, DType t, int64_t i) {
    switch (t) {
    case DT_F32:
        return ((const float *)p)[i];
    case DT_F64:
        return ((const double *)p)[i];
    case DT_I32:
        return ((const int32_t *)p)[i];
    case DT_I64:
        return (double)((const int64_t *)p)[i];
    case DT_BOOL:
        return ((const uint8_t *)p)[i] != 0;
    case DT_F16:
    case DT_BF16:
        break; /* no arithmetic: eval refuses these dtypes first */
    }
    return 0;
}

/* Float -> integer conversion: truncation toward zero, saturating at the
 * type's range, NaN -> 0 (C leaves out-of-range conversion undefined). */
static inline int64_t f_to_i64(double v) {
    if (v != v) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static inline int64_t ld_i(const void *p, DType t, int64_t i) {
    switch (t) {
    case DT_F32:
        return f_to_i64(((const float *)p)[i]);
    case DT_F64:
        return f_to_i64(((const double *)p)[i]);
    case DT_I32:
        return ((const int32_t *)p)[i];
    case DT_I64:
        return ((const int64_t *)p)[i];
    case DT_BOOL:
        return ((const uint8_t *)p)[i] != 0;
    case DT_F16:
    case DT_BF16:
        break; /* no arithmetic: eval refuses these dtypes first */
    }
    return 0;
}

/* Stores an integer, wrapping to the destination width (two's complement). */
static inline void st_i(void *p, DType t, int64_t i, int64_t v) {
    switch (t) {
    case DT_F32:
        ((float *)p)[i] = (float)v;
        break;
    case DT_F64:
        ((double *)p)[i] = (double)v;
        break;
    case DT_I32:
        ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)v;
        break;
    case DT_I64:
        ((int64_t *)p)[i] = v;
        break;
    case DT_BOOL:
        ((uint8_t *)p)[i] = v != 0;
        break;
    case DT_F16:
    case DT_BF16:
        break; /* no arithmetic: eval refuses these dtypes first */
    }
}

/* Stores a double: rounded for floats; truncated and saturated for i32/i64
 * (float -> int conversion), nonzero (NaN included) -> 1 for bool. */
static inline void st_f(void *p, DType t, int64_t i, double v) {
    switch (t) {
    case DT_F32:
        ((float *)p)[i] = (float)v;
        break;
    case DT_F64:
        ((double *)p)[i] = v;
        break;
    case DT_I32: {
        int64_t x = f_to_i64(v);
        ((int32_t *)p)[i] = x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : (int32_t)x;
        break;
    }
    case DT_I64:
        ((int64_t *)p)[i] = f_to_i64(v);
        break;
    case DT_BOOL:
        ((uint8_t *)p)[i] = v != 0;
        break;
    case DT_F16:
    case DT_BF16:
        break; /* no arithmetic: eval refuses these dtypes first */
    }
}

/* ---- strided walks: the one loop nest behind broadcast, permute, slice, pad
 * and reductions. Two operands (0 and 1) are walked together over dims, each
 * with its own element strides and base offset; axes that can be merged
 * (size 1, or contiguous in both) are merged first, so most walks are one or
 * two long rows. ---- */
typedef struct {
    int rank;
    int64_t dims[IR_MAX_RANK];
    int64_t stride[2][IR_MAX_RANK];
    int64_t base[2];
} Walk;

/* Row callback: n elements starting at off0/off1 with steps s0/s1. */
typedef void (*WalkRow)(void *ctx, int64_t off0, int64_t off1, int64_t n, int64_t s0, int64_t s1);

void ir_walk_init(Walk *w, int rank, const int64_t *dims, const int64_t *s0, const int64_t *s1);
void ir_walk_run(Walk *w, WalkRow fn, void *ctx);
/* Contiguous (C order) element strides of s. */
void ir_contig_strides(const Shape *s, int64_t *strides);

#endif
