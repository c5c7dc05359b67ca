/* Interpreter kernels for reductions, data movement and matmul.
 *
 * Broadcast, permute, slice and pad are one strided copy each: the result
 * (or, for pad, the source) is walked in C order while the other side moves
 * by precomputed strides (0 on a broadcast axis, step*stride on a sliced one,
 * a permuted stride on a permuted one). Reductions walk the source with the
 * result's strides, 0 on reduced axes, accumulating in double (floats) or
 * int64 (integers) and rounding once at the end. Matmul calls OpenBLAS
 * sgemm/dgemm per batch matrix; integer matmul is a plain triple loop. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/linalg.h"
#include "interp_impl.h"
#include "op_cases.h"

/* ---- walks ---------------------------------------------------------------------- */

void ir_contig_strides(const Shape *s, int64_t *strides) {
    int64_t st = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        strides[i] = st;
        st *= s->dims[i];
    }
}

void ir_walk_init(Walk *w, int rank, const int64_t *dims, const int64_t *s0, const int64_t *s1) {
    w->rank = 0;
    w->base[0] = w->base[1] = 0;
    /* Merge axis i into the previous kept axis when both operands are
     * contiguous across the pair; drop size-1 axes. */
    for (int i = 0; i < rank; i++) {
        if (dims[i] == 1) continue;
        int k = w->rank - 1;
        if (k >= 0 && w->stride[0][k] == s0[i] * dims[i] && w->stride[1][k] == s1[i] * dims[i]) {
            w->dims[k] *= dims[i];
            w->stride[0][k] = s0[i];
            w->stride[1][k] = s1[i];
            continue;
        }
        w->dims[w->rank] = dims[i];
        w->stride[0][w->rank] = s0[i];
        w->stride[1][w->rank] = s1[i];
        w->rank++;
    }
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0) w->rank = -1; /* empty: nothing to visit */
    if (w->rank == 0) {                 /* a single element */
        w->rank = 1;
        w->dims[0] = 1;
        w->stride[0][0] = w->stride[1][0] = 0;
    }
}

void ir_walk_run(Walk *w, WalkRow fn, void *ctx) {
    int r = w->rank;
    if (r < 1) return;
    int64_t idx[IR_MAX_RANK] = {0};
    int64_t off0 = w->base[0], off1 = w->base[1], n = w->dims[r - 1];
    for (;;) {
        fn(ctx, off0, off1, n, w->stride[0][r - 1], w->stride[1][r - 1]);
        int k = r - 2;
        for (; k >= 0; k--) {
            off0 += w->stride[0][k];
            off1 += w->stride[1][k];
            if (++idx[k] < w->dims[k]) break;
            off0 -= w->stride[0][k] * w->dims[k];
            off1 -= w->stride[1][k] * w->dims[k];
            idx[k] = 0;
        }
        if (k < 0) return;
    }
}

/* ---- strided copy: operand 0 is the destination, operand 1 the source -------------- */

typedef struct {
    void *dst;
    const void *src;
} Copy;

#define COPY_ROW(NAME, T)                                                                          \
    static void NAME(void *ctx, int64_t o0, int64_t o1, int64_t n, int64_t s0, int64_t s1) {       \
        Copy *c = ctx;                                                                             \
        T *d = (T *)c->dst + o0;                                                                   \
        const T *s = (const T *)c->src + o1;                                                       \
        if (s0 == 1 && s1 == 1)                                                                    \
            memcpy(d, s, sizeof(T) * (size_t)n);                                                   \
        else if (s0 == 1 && s1 == 0)                                                               \
            for (int64_t j = 0; j < n; j++)                                                        \
                d[j] = s[0];                                                                       \
        else                                                                                       \
            for (int64_t j = 0; j < n; j++)                                                        \
                d[j * s0] = s[j * s1];                                                             \
    }
COPY_ROW(copy_row1, uint8_t)
COPY_ROW(copy_row4, uint32_t)
COPY_ROW(copy_row8, uint64_t)

static void copy_strided(Walk *w, void *dst, const void *src, size_t esize) {
    Copy c = {dst, src};
    ir_walk_run(w, esize == 1 ? copy_row1 : esize == 4 ? copy_row4 : copy_row8, &c);
}

/* ---- reductions ----------------------------------------------------------------------- */

typedef struct {
    const void *in;
    double *facc;
    int64_t *iacc;
    DType dt;
} Red;

/* Operand 0 walks the (contiguous) source, operand 1 the accumulator. */
#define RED_ROWS(T, SFX)                                                                           \
    static void sum_row_##SFX(void *ctx, int64_t o0, int64_t o1, int64_t n, int64_t s0,            \
                              int64_t s1) {                                                        \
        Red *r = ctx;                                                                              \
        const T *x = (const T *)r->in + o0;                                                        \
        double *a = r->facc + o1;                                                                  \
        if (s1 == 0) {                                                                             \
            double acc = 0;                                                                        \
            for (int64_t j = 0; j < n; j++)                                                        \
                acc += x[j * s0];                                                                  \
            a[0] += acc;                                                                           \
        } else {                                                                                   \
            for (int64_t j = 0; j < n; j++)                                                        \
                a[j * s1] += x[j * s0];                                                            \
        }                                                                                          \
    }                                                                                              \
    static void max_row_##SFX(void *ctx, int64_t o0, int64_t o1, int64_t n, int64_t s0,            \
                              int64_t s1) {                                                        \
        Red *r = ctx;                                                                              \
        const T *x = (const T *)r->in + o0;                                                        \
        double *a = r->facc + o1;                                                                  \
        for (int64_t j = 0; j < n; j++) {                                                          \
            double v = x[j * s0], *p = &a[j * s1];                                                 \
            if (v > *p || v != v) *p = v;                                                          \
        }                                                                                          \
    }                                                                                              \
    static void min_row_##SFX(void *ctx, int64_t o0, int64_t o1, int64_t n, int64_t s0,            \
                              int64_t s1) {                                                        \
        Red *r = ctx;                                                                              \
        const T *x = (const T *)r->in + o0;                                                        \
        double *a = r->facc + o1;                                                                  \
        for (int64_t j = 0; j < n; j++) {                                                          \
            double v = x[j * s0], *p = &a[j * s1];                                                 \
            if (v < *p || v != v) *p = v;                                                          \
        }                                                                                          \
    }
RED_ROWS(float, f32)
RED_ROWS(double, f64)

static void int_row(void *ctx, int64_t o0, int64_t o1, int64_t n, int64_t s0, int64_t s1,
                    int mode) {
    Red *r = ctx;
    for (int64_t j = 0; j < n; j++) {
        int64_t v = ld_i(r->in, r->dt, o0 + j * s0), *p = &r->iacc[o1 + j * s1];
        if (mode == 0)
            *p = (int64_t)((uint64_t)*p + (uint64_t)v);
        else if (mode == 1 ? v > *p : v < *p)
            *p = v;
    }
}
static void isum_row(void *c, int64_t a, int64_t b, int64_t n, int64_t s0, int64_t s1) {
    int_row(c, a, b, n, s0, s1, 0);
}
static void imax_row(void *c, int64_t a, int64_t b, int64_t n, int64_t s0, int64_t s1) {
    int_row(c, a, b, n, s0, s1, 1);
}
static void imin_row(void *c, int64_t a, int64_t b, int64_t n, int64_t s0, int64_t s1) {
    int_row(c, a, b, n, s0, s1, 2);
}

/* a[i] > a[j], NaN above everything; integers compared as integers (i64
 * values beyond 2^53 would tie as doubles). */
static bool arg_above(const RtTensor *a, int64_t i, int64_t j) {
    if (!interp_is_float(a->dtype)) return ld_i(a->data, a->dtype, i) > ld_i(a->data, a->dtype, j);
    double v = ld_f(a->data, a->dtype, i), w = ld_f(a->data, a->dtype, j);
    return w == w && (v > w || v != v);
}

static RtTensor *argmax(const Node *n, const RtTensor *a, RtTensor *o) {
    int ax = __builtin_ctz(n->attr.reduce.axes);
    int64_t outer = 1, inner = 1, dim = a->shape.dims[ax];
    for (int i = 0; i < ax; i++)
        outer *= a->shape.dims[i];
    for (int i = ax + 1; i < a->shape.rank; i++)
        inner *= a->shape.dims[i];
    int64_t *out = o->data;
    for (int64_t p = 0; p < outer; p++) {
        for (int64_t q = 0; q < inner; q++) {
            int64_t base = p * dim * inner + q, best = 0;
            for (int64_t k = 1; k < dim; k++)
                if (arg_above(a, base + k * inner, base + best * inner)) best = k;
            out[p * inner + q] = best;
        }
    }
    return o;
}

static int64_t int_lowest(DType t) {
    return t == DT_I32 ? INT32_MIN : t == DT_I64 ? INT64_MIN : 0;
}
static int64_t int_highest(DType t) {
    return t == DT_I32 ? INT32_MAX : t == DT_I64 ? INT64_MAX : 1;
}

typedef enum { RED_SUM, RED_MAX, RED_MIN } RedMode;

/* The accumulation of a reduction op; false for ARGMAX and for an op that is
 * not a reduction. */
static bool red_mode(OpKind op, RedMode *m) {
    switch (op) {
    case OP_SUM:
        *m = RED_SUM;
        return true;
    case OP_REDUCE_MAX:
        *m = RED_MAX;
        return true;
    case OP_REDUCE_MIN:
        *m = RED_MIN;
        return true;
    case OP_ARGMAX: /* argmax() */
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    IR_CASES_EW_TERNARY:
    IR_CASES_MOVE:
    IR_CASES_CONTR:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        return false;
    }
    return false;
}

RtTensor *ir_interp_reduce(const Node *n, RtTensor *const *src, DiagList *d) {
    const RtTensor *a = src[0];
    RtTensor *o = ir_interp_alloc(n, d);
    if (!o) return NULL;
    if (n->op == OP_ARGMAX) return argmax(n, a, o);
    RedMode m;
    if (!red_mode(n->op, &m)) {
        rt_tensor_free(o);
        diag_error(d, n->loc,
                   "internal error: op %s is not handled by the interpreter's reductions",
                   ir_op_name(n->op));
        return NULL;
    }
    /* Result strides laid over the source's axes: 0 on reduced axes. */
    int64_t in_st[IR_MAX_RANK], out_st[IR_MAX_RANK], st[IR_MAX_RANK];
    ir_contig_strides(&a->shape, in_st);
    ir_contig_strides(&n->shape, st);
    for (int i = 0, k = 0; i < a->shape.rank; i++)
        out_st[i] = (n->attr.reduce.axes >> i & 1) ? 0 : st[k++];
    Walk w;
    ir_walk_init(&w, a->shape.rank, a->shape.dims, in_st, out_st);
    int64_t cnt = rt_shape_numel(&n->shape);
    Red r = {a->data, NULL, NULL, a->dtype};
    bool fl = interp_is_float(a->dtype);
    if (fl)
        r.facc = malloc(sizeof(double) * (size_t)(cnt ? cnt : 1));
    else
        r.iacc = malloc(sizeof(int64_t) * (size_t)(cnt ? cnt : 1));
    if (!r.facc && !r.iacc) {
        rt_tensor_free(o);
        diag_error(d, n->loc, "out of memory in %s", ir_op_name(n->op));
        return NULL;
    }
    if (fl) {
        double init = m == RED_SUM ? 0 : m == RED_MAX ? -INFINITY : INFINITY;
        for (int64_t i = 0; i < cnt; i++)
            r.facc[i] = init;
        bool f32 = a->dtype == DT_F32;
        WalkRow fn = m == RED_SUM   ? (f32 ? sum_row_f32 : sum_row_f64)
                     : m == RED_MAX ? (f32 ? max_row_f32 : max_row_f64)
                                    : (f32 ? min_row_f32 : min_row_f64);
        ir_walk_run(&w, fn, &r);
        for (int64_t i = 0; i < cnt; i++)
            st_f(o->data, o->dtype, i, r.facc[i]);
        free(r.facc);
    } else {
        int64_t init = m == RED_SUM   ? 0
                       : m == RED_MAX ? int_lowest(a->dtype)
                                      : int_highest(a->dtype);
        for (int64_t i = 0; i < cnt; i++)
            r.iacc[i] = init;
        ir_walk_run(&w, m == RED_SUM ? isum_row : m == RED_MAX ? imax_row : imin_row, &r);
        for (int64_t i = 0; i < cnt; i++)
            st_i(o->data, o->dtype, i, r.iacc[i]);
        free(r.iacc);
    }
    return o;
}

/* ---- movement -------------------------------------------------------------------------- */

static int64_t checked_index(const RtTensor *idx, int64_t i, int64_t size, const Node *n,
                             DiagList *d, bool *ok) {
    int64_t k = ld_i(idx->data, idx->dtype, i);
    if (k < 0 || k >= size) {
        diag_error(d, n->loc, "%s: index %lld out of range for axis of size %lld",
                   ir_op_name(n->op), (long long)k, (long long)size);
        *ok = false;
    }
    return k;
}

static void add_row(RtTensor *o, int64_t oo, const RtTensor *u, int64_t uo, int64_t len) {
    switch (o->dtype) {
    case DT_F32: {
        float *p = (float *)o->data + oo;
        const float *q = (const float *)u->data + uo;
        for (int64_t j = 0; j < len; j++)
            p[j] = (float)((double)p[j] + q[j]);
        break;
    }
    case DT_F64: {
        double *p = (double *)o->data + oo;
        const double *q = (const double *)u->data + uo;
        for (int64_t j = 0; j < len; j++)
            p[j] += q[j];
        break;
    }
    case DT_I32:
    case DT_I64:
    case DT_BOOL:
        for (int64_t j = 0; j < len; j++)
            st_i(o->data, o->dtype, oo + j,
                 (int64_t)((uint64_t)ld_i(o->data, o->dtype, oo + j) +
                           (uint64_t)ld_i(u->data, u->dtype, uo + j)));
        break;
    case DT_F16:
    case DT_BF16:
        break; /* no arithmetic: eval refuses these dtypes first */
    }
}

RtTensor *ir_interp_move(const Node *n, RtTensor *const *src, DiagList *d) {
    RtTensor *o = ir_interp_alloc(n, d);
    if (!o) return NULL;
    const RtTensor *a = src[0];
    size_t es = rt_dtype_size(n->dtype);
    int64_t in_st[IR_MAX_RANK], out_st[IR_MAX_RANK], s1[IR_MAX_RANK];
    ir_contig_strides(&a->shape, in_st);
    ir_contig_strides(&n->shape, out_st);
    int r = n->shape.rank;
    Walk w;
    switch (n->op) {
    case OP_RESHAPE:
        memcpy(o->data, a->data, rt_tensor_bytes(a));
        return o;
    case OP_BROADCAST: /* right-aligned; size-1 and missing axes repeat */
        for (int i = 0; i < r; i++) {
            int k = i - (r - a->shape.rank);
            s1[i] = (k < 0 || a->shape.dims[k] == 1) ? 0 : in_st[k];
        }
        ir_walk_init(&w, r, n->shape.dims, out_st, s1);
        copy_strided(&w, o->data, a->data, es);
        return o;
    case OP_PERMUTE:
        for (int i = 0; i < r; i++)
            s1[i] = in_st[n->attr.permute.perm[i]];
        ir_walk_init(&w, r, n->shape.dims, out_st, s1);
        copy_strided(&w, o->data, a->data, es);
        return o;
    case OP_SLICE: {
        int64_t base = 0;
        for (int i = 0; i < r; i++) {
            s1[i] = in_st[i] * n->attr.slice.step[i];
            base += in_st[i] * n->attr.slice.start[i];
        }
        ir_walk_init(&w, r, n->shape.dims, out_st, s1);
        w.base[1] = base;
        copy_strided(&w, o->data, a->data, es);
        return o;
    }
    case OP_PAD: {
        int64_t cnt = rt_shape_numel(&n->shape), base = 0;
        double v = n->attr.pad.value;
        if (v != 0)
            for (int64_t i = 0; i < cnt; i++)
                st_f(o->data, o->dtype, i, v);
        for (int i = 0; i < r; i++)
            base += out_st[i] * n->attr.pad.lo[i];
        ir_walk_init(&w, r, a->shape.dims, out_st, in_st);
        w.base[0] = base;
        copy_strided(&w, o->data, a->data, es);
        return o;
    }
    case OP_CONCAT: {
        int ax = n->attr.concat.axis;
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < ax; i++)
            outer *= n->shape.dims[i];
        for (int i = ax + 1; i < r; i++)
            inner *= n->shape.dims[i];
        char *dst = o->data;
        for (int64_t p = 0; p < outer; p++) {
            for (int k = 0; k < n->nsrc; k++) {
                size_t chunk = (size_t)(src[k]->shape.dims[ax] * inner) * es;
                if (chunk) memcpy(dst, (const char *)src[k]->data + (size_t)p * chunk, chunk);
                dst += chunk;
            }
        }
        return o;
    }
    case OP_GATHER: {
        const RtTensor *idx = src[1];
        int64_t cnt = rt_shape_numel(&idx->shape), rows = a->shape.dims[0];
        size_t row = (size_t)(rows ? rt_shape_numel(&a->shape) / rows : 0) * es;
        bool ok = true;
        for (int64_t i = 0; i < cnt && ok; i++) {
            int64_t k = checked_index(idx, i, rows, n, d, &ok);
            if (ok && row)
                memcpy((char *)o->data + (size_t)i * row, (const char *)a->data + (size_t)k * row,
                       row);
        }
        if (!ok) {
            rt_tensor_free(o);
            return NULL;
        }
        return o;
    }
    case OP_SCATTER_ADD: {
        const RtTensor *idx = src[1];
        int64_t cnt = rt_shape_numel(&idx->shape), rows = n->shape.dims[0];
        int64_t len = rows ? rt_shape_numel(&n->shape) / rows : 0;
        bool ok = true;
        for (int64_t i = 0; i < cnt && ok; i++) {
            int64_t k = checked_index(idx, i, rows, n, d, &ok);
            if (ok) add_row(o, k * len, a, i * len, len);
        }
        if (!ok) {
            rt_tensor_free(o);
            return NULL;
        }
        return o;
    }
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    IR_CASES_EW_TERNARY:
    IR_CASES_REDUCE:
    IR_CASES_CONTR:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        break;
    }
    rt_tensor_free(o);
    diag_error(d, n->loc,
               "internal error: op %s is not handled by the interpreter's movement kernels",
               ir_op_name(n->op));
    return NULL;
}

/* ---- matmul: (..., M, K) @ (..., K, N) ------------------------------------------------- */

RtTensor *ir_interp_matmul(const Node *n, RtTensor *const *src, DiagList *d) {
    RtTensor *o = ir_interp_alloc(n, d);
    if (!o) return NULL;
    const RtTensor *a = src[0], *b = src[1];
    int r = n->shape.rank;
    int64_t M = a->shape.dims[r - 2], K = a->shape.dims[r - 1], N = b->shape.dims[r - 1], batch = 1;
    for (int i = 0; i < r - 2; i++)
        batch *= n->shape.dims[i];
    if (M == 0 || N == 0 || K == 0) return o; /* zeros; BLAS rejects zero leading dimensions */
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) {
        rt_tensor_free(o);
        diag_error(d, n->loc, "matmul: dimensions too large for BLAS");
        return NULL;
    }
    for (int64_t p = 0; p < batch; p++) {
        size_t ao = (size_t)(p * M * K), bo = (size_t)(p * K * N), oo = (size_t)(p * M * N);
        if (n->dtype == DT_F32) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
                        (const float *)a->data + ao, (int)K, (const float *)b->data + bo, (int)N,
                        0.0f, (float *)o->data + oo, (int)N);
        } else if (n->dtype == DT_F64) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0,
                        (const double *)a->data + ao, (int)K, (const double *)b->data + bo, (int)N,
                        0.0, (double *)o->data + oo, (int)N);
        } else {
            for (int64_t i = 0; i < M; i++) {
                for (int64_t j = 0; j < N; j++) {
                    uint64_t acc = 0;
                    for (int64_t k = 0; k < K; k++)
                        acc += (uint64_t)ld_i(a->data, a->dtype, (int64_t)ao + i * K + k) *
                               (uint64_t)ld_i(b->data, b->dtype, (int64_t)bo + k * N + j);
                    st_i(o->data, o->dtype, (int64_t)oo + i * N + j, (int64_t)acc);
                }
            }
        }
    }
    return o;
}

/* ---- library calls ----------------------------------------------------------------------- */

RtTensor *ir_interp_call(const Node *n, RtTensor *const *src, DiagList *d) {
    RtTensor *o = rt_tensor_new(n->dtype, n->shape);
    if (!o) {
        diag_error(d, n->loc, "%s: out of memory", ir_op_name(n->op));
        return NULL;
    }
    IrCallDims cd = ir_call_dims(n);
    int32_t st = rt_linalg_call(cd.fn, n->dtype == DT_F64, cd.batch, cd.m, cd.n, cd.k, o->data,
                                src[0]->data, n->nsrc > 1 ? src[1]->data : NULL);
    if (st != RT_LA_OK) {
        diag_error(d, n->loc, "%s: %s", ir_op_name(n->op), rt_linalg_error_text());
        rt_linalg_error_clear();
        rt_tensor_free(o);
        return NULL;
    }
    return o;
}
