/* Interpreter kernels for leaves (const, iota) and elementwise ops.
 *
 * Elementwise sources already share the result's shape (the builders
 * broadcast), so every kernel is one flat loop. f32 and f64 get typed loops,
 * one per op, with the op switch outside the loop: values are widened to
 * double, computed, and rounded once to the node's dtype. Integers are
 * computed in int64 with wrap-around (via uint64, so overflow is defined) and
 * stored wrapped to their width. Integer division truncates; x / 0 and x % 0
 * give 0, and INT_MIN / -1 wraps. MAX/MIN propagate NaN from either side. */
#include <string.h>

#include "interp_impl.h"
#include "op_cases.h"

/* ---- floating point ------------------------------------------------------------ */

static inline double fsign(double x) {
    return x > 0 ? 1.0 : x < 0 ? -1.0 : x;
}
/* Python's float modulo: the result takes the sign of b. */
static inline double fmod_py(double a, double b) {
    double r = fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
static inline double fmax_nan(double a, double b) {
    return (a >= b || a != a) ? a : b;
}
static inline double fmin_nan(double a, double b) {
    return (a <= b || a != a) ? a : b;
}

/* Each kernel returns false for an op that is not its own (ir_interp_ew
 * reports it); the switches name every op, so a new one does not compile
 * until its place here is decided. */
/* o[i] = expr for every i of n, and the op was handled */
#define EACH(expr)                                                                                 \
    for (int64_t i = 0; i < n; i++)                                                                \
        o[i] = (expr);                                                                             \
    return true

#define FLOAT_KERNELS(T)                                                                           \
    static bool unary_##T(OpKind op, const T *a, T *o, int64_t n) {                                \
        switch (op) {                                                                              \
        case OP_NEG:                                                                               \
            EACH(-a[i]);                                                                           \
        case OP_ABS:                                                                               \
            EACH((T)fabs((double)a[i]));                                                           \
        case OP_SIGN:                                                                              \
            EACH((T)fsign((double)a[i]));                                                          \
        case OP_FLOOR:                                                                             \
            EACH((T)floor((double)a[i]));                                                          \
        case OP_EXP:                                                                               \
            EACH((T)exp((double)a[i]));                                                            \
        case OP_LOG:                                                                               \
            EACH((T)log((double)a[i]));                                                            \
        case OP_SQRT:                                                                              \
            EACH((T)sqrt((double)a[i]));                                                           \
        case OP_SIN:                                                                               \
            EACH((T)sin((double)a[i]));                                                            \
        case OP_COS:                                                                               \
            EACH((T)cos((double)a[i]));                                                            \
        case OP_ERF:                                                                               \
            EACH((T)erf((double)a[i]));                                                            \
        case OP_STOP_GRAD:                                                                         \
            memcpy(o, a, sizeof(T) * (size_t)n);                                                   \
            return true;                                                                           \
        case OP_NOT:  /* bool operand: int_unary */                                                \
        case OP_CAST: /* cast() */                                                                 \
        IR_CASES_EW_BINARY:                                                                        \
        IR_CASES_EW_TERNARY:                                                                       \
        IR_CASES_NOT_EW:                                                                           \
            return false;                                                                          \
        }                                                                                          \
        return false;                                                                              \
    }                                                                                              \
    static bool binary_##T(OpKind op, const T *a, const T *b, T *o, int64_t n) {                   \
        switch (op) {                                                                              \
        case OP_ADD:                                                                               \
            EACH((T)((double)a[i] + b[i]));                                                        \
        case OP_SUB:                                                                               \
            EACH((T)((double)a[i] - b[i]));                                                        \
        case OP_MUL:                                                                               \
            EACH((T)((double)a[i] * b[i]));                                                        \
        case OP_DIV:                                                                               \
            EACH((T)((double)a[i] / b[i]));                                                        \
        case OP_MOD:                                                                               \
            EACH((T)fmod_py(a[i], b[i]));                                                          \
        case OP_POW:                                                                               \
            EACH((T)pow(a[i], b[i]));                                                              \
        case OP_MAX:                                                                               \
            EACH((T)fmax_nan(a[i], b[i]));                                                         \
        case OP_MIN:                                                                               \
            EACH((T)fmin_nan(a[i], b[i]));                                                         \
        case OP_LT: /* compare_T */                                                                \
        case OP_LE:                                                                                \
        case OP_EQ:                                                                                \
        case OP_NE:                                                                                \
        case OP_AND: /* bool operands: int_binary */                                               \
        case OP_OR:                                                                                \
        IR_CASES_EW_UNARY:                                                                         \
        IR_CASES_EW_TERNARY:                                                                       \
        IR_CASES_NOT_EW:                                                                           \
            return false;                                                                          \
        }                                                                                          \
        return false;                                                                              \
    }                                                                                              \
    static bool compare_##T(OpKind op, const T *a, const T *b, uint8_t *o, int64_t n) {            \
        switch (op) {                                                                              \
        case OP_LT:                                                                                \
            EACH(a[i] < b[i]);                                                                     \
        case OP_LE:                                                                                \
            EACH(a[i] <= b[i]);                                                                    \
        case OP_EQ:                                                                                \
            EACH(a[i] == b[i]);                                                                    \
        case OP_NE:                                                                                \
            EACH(a[i] != b[i]);                                                                    \
        case OP_ADD: /* binary_T */                                                                \
        case OP_SUB:                                                                               \
        case OP_MUL:                                                                               \
        case OP_DIV:                                                                               \
        case OP_MOD:                                                                               \
        case OP_POW:                                                                               \
        case OP_MAX:                                                                               \
        case OP_MIN:                                                                               \
        case OP_AND:                                                                               \
        case OP_OR:                                                                                \
        IR_CASES_EW_UNARY:                                                                         \
        IR_CASES_EW_TERNARY:                                                                       \
        IR_CASES_NOT_EW:                                                                           \
            return false;                                                                          \
        }                                                                                          \
        return false;                                                                              \
    }

FLOAT_KERNELS(float)
FLOAT_KERNELS(double)
#undef EACH

/* ---- integers and bool ----------------------------------------------------------------- */

/* Integer and bool kernels: *ok is cleared for an op that is not theirs. */
static int64_t int_unary(OpKind op, int64_t x, bool *ok) {
    switch (op) {
    case OP_NEG:
        return (int64_t)(0 - (uint64_t)x);
    case OP_ABS:
        return x < 0 ? (int64_t)(0 - (uint64_t)x) : x;
    case OP_SIGN:
        return (x > 0) - (x < 0);
    case OP_NOT:
        return !x;
    case OP_STOP_GRAD:
        return x;
    case OP_FLOOR: /* float only (OPF_FLOATONLY) */
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_ERF:
    case OP_CAST: /* cast() */
    IR_CASES_EW_BINARY:
    IR_CASES_EW_TERNARY:
    IR_CASES_NOT_EW:
        break;
    }
    *ok = false;
    return 0;
}

static int64_t int_binary(OpKind op, int64_t a, int64_t b, bool *ok) {
    switch (op) {
    case OP_ADD:
        return (int64_t)((uint64_t)a + (uint64_t)b);
    case OP_SUB:
        return (int64_t)((uint64_t)a - (uint64_t)b);
    case OP_MUL:
        return (int64_t)((uint64_t)a * (uint64_t)b);
    case OP_DIV:
        if (b == 0) return 0;
        if (b == -1) return (int64_t)(0 - (uint64_t)a);
        return a / b;
    case OP_MOD: {
        if (b == 0 || b == -1) return 0;
        int64_t r = a % b;
        if (r != 0 && ((r < 0) != (b < 0))) r += b;
        return r;
    }
    case OP_MAX:
        return a >= b ? a : b;
    case OP_MIN:
        return a <= b ? a : b;
    case OP_LT:
        return a < b;
    case OP_LE:
        return a <= b;
    case OP_EQ:
        return a == b;
    case OP_NE:
        return a != b;
    case OP_AND:
        return a && b;
    case OP_OR:
        return a || b;
    case OP_POW: /* float only (OPF_FLOATONLY) */
    IR_CASES_EW_UNARY:
    IR_CASES_EW_TERNARY:
    IR_CASES_NOT_EW:
        break;
    }
    *ok = false;
    return 0;
}

/* ---- leaves ----------------------------------------------------------------------------- */

/* Integer and bool constants are their exact ivalue (ir.h). */
static void fill_const(RtTensor *o, double v, int64_t iv) {
    int64_t n = rt_shape_numel(&o->shape);
    if (o->dtype == DT_F32) {
        float *p = o->data, f = (float)v;
        for (int64_t i = 0; i < n; i++)
            p[i] = f;
    } else if (interp_is_float(o->dtype)) {
        for (int64_t i = 0; i < n; i++)
            st_f(o->data, o->dtype, i, v);
    } else if (iv != 0) {
        for (int64_t i = 0; i < n; i++)
            st_i(o->data, o->dtype, i, iv);
    }
}

static void fill_iota(RtTensor *o, int axis) {
    int64_t n = rt_shape_numel(&o->shape), inner = 1, dim = o->shape.dims[axis];
    for (int i = axis + 1; i < o->shape.rank; i++)
        inner *= o->shape.dims[i];
    for (int64_t i = 0; i < n; i++)
        st_i(o->data, o->dtype, i, (i / inner) % dim);
}

static void cast(const RtTensor *a, RtTensor *o, int64_t n) {
    DType from = a->dtype, to = o->dtype;
    if (from == DT_F32 && to == DT_F64) {
        const float *x = a->data;
        double *y = o->data;
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i];
    } else if (from == DT_F64 && to == DT_F32) {
        const double *x = a->data;
        float *y = o->data;
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)x[i];
    } else if (interp_is_float(from)) {
        for (int64_t i = 0; i < n; i++)
            st_f(o->data, to, i, ld_f(a->data, from, i));
    } else {
        for (int64_t i = 0; i < n; i++)
            st_i(o->data, to, i, ld_i(a->data, from, i));
    }
}

static void where(const RtTensor *c, const RtTensor *a, const RtTensor *b, RtTensor *o, int64_t n) {
    const uint8_t *m = c->data;
    switch (rt_dtype_size(o->dtype)) {
    case 1: {
        const uint8_t *x = a->data, *y = b->data;
        uint8_t *z = o->data;
        for (int64_t i = 0; i < n; i++)
            z[i] = m[i] ? x[i] : y[i];
        break;
    }
    case 4: {
        const uint32_t *x = a->data, *y = b->data;
        uint32_t *z = o->data;
        for (int64_t i = 0; i < n; i++)
            z[i] = m[i] ? x[i] : y[i];
        break;
    }
    default: {
        const uint64_t *x = a->data, *y = b->data;
        uint64_t *z = o->data;
        for (int64_t i = 0; i < n; i++)
            z[i] = m[i] ? x[i] : y[i];
        break;
    }
    }
}

/* Integer and bool operands: computed element by element in int64. */
static bool int_kernel(const Node *n, RtTensor *const *src, RtTensor *o, int64_t cnt) {
    DType st = src[0]->dtype;
    bool ok = true;
    if (n->nsrc == 1)
        for (int64_t i = 0; ok && i < cnt; i++)
            st_i(o->data, o->dtype, i, int_unary(n->op, ld_i(src[0]->data, st, i), &ok));
    else
        for (int64_t i = 0; ok && i < cnt; i++)
            st_i(o->data, o->dtype, i,
                 int_binary(n->op, ld_i(src[0]->data, st, i), ld_i(src[1]->data, st, i), &ok));
    return ok;
}

static bool unary_kernel(const Node *n, RtTensor *const *src, RtTensor *o, int64_t cnt) {
    switch (src[0]->dtype) {
    case DT_F32:
        return unary_float(n->op, src[0]->data, o->data, cnt);
    case DT_F64:
        return unary_double(n->op, src[0]->data, o->data, cnt);
    case DT_I32:
    case DT_I64:
    case DT_BOOL:
        return int_kernel(n, src, o, cnt);
    case DT_F16:
    case DT_BF16:
        return false;
    }
    return false;
}

static bool binary_kernel(const Node *n, RtTensor *const *src, RtTensor *o, int64_t cnt, bool cmp) {
    const void *a = src[0]->data, *b = src[1]->data;
    switch (src[0]->dtype) {
    case DT_F32:
        return cmp ? compare_float(n->op, a, b, o->data, cnt)
                   : binary_float(n->op, a, b, o->data, cnt);
    case DT_F64:
        return cmp ? compare_double(n->op, a, b, o->data, cnt)
                   : binary_double(n->op, a, b, o->data, cnt);
    case DT_I32:
    case DT_I64:
    case DT_BOOL:
        return int_kernel(n, src, o, cnt);
    case DT_F16:
    case DT_BF16:
        return false;
    }
    return false;
}

static bool ew_kernel(const Node *n, RtTensor *const *src, RtTensor *o, int64_t cnt) {
    switch (n->op) {
    case OP_CONST:
        fill_const(o, n->attr.constant.value, n->attr.constant.ivalue);
        return true;
    case OP_IOTA:
        fill_iota(o, n->attr.iota.axis);
        return true;
    case OP_CAST:
        cast(src[0], o, cnt);
        return true;
    case OP_WHERE:
        where(src[0], src[1], src[2], o, cnt);
        return true;
    case OP_NOT:
        return int_kernel(n, src, o, cnt);
    case OP_NEG:
    case OP_ABS:
    case OP_SIGN:
    case OP_FLOOR:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_ERF:
    case OP_STOP_GRAD:
        return unary_kernel(n, src, o, cnt);
    case OP_LT:
    case OP_LE:
    case OP_EQ:
    case OP_NE:
        return binary_kernel(n, src, o, cnt, true);
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MOD:
    case OP_POW:
    case OP_MAX:
    case OP_MIN:
        return binary_kernel(n, src, o, cnt, false);
    case OP_AND:
    case OP_OR:
        return int_kernel(n, src, o, cnt);
    case OP_INPUT:
    IR_CASES_REDUCE:
    IR_CASES_MOVE:
    IR_CASES_CONTR:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        return false;
    }
    return false;
}

RtTensor *ir_interp_ew(const Node *n, RtTensor *const *src, DiagList *d) {
    RtTensor *o = ir_interp_alloc(n, d);
    if (!o) return NULL;
    if (ew_kernel(n, src, o, rt_shape_numel(&n->shape))) return o;
    diag_error(
        d, n->loc,
        "internal error: op %s (on %s) is not handled by the interpreter's elementwise kernels",
        ir_op_name(n->op), rt_dtype_name(n->nsrc ? src[0]->dtype : n->dtype));
    rt_tensor_free(o);
    return NULL;
}
