/* Composites: mean, activations, softmax family, losses, one_hot and the
 * shape helpers, built only from the primitives of ops.def.
 *
 * Being ordinary nodes, composites get derivatives, fusion and every backend
 * for free. The formulas are chosen so that both the value and the derivative
 * the autodiff pass will build stay finite for any finite input: the
 * activations only ever exponentiate a non-positive number (exp(-|x|)), with
 * the branch picked by WHERE, and the softmax family subtracts a stop_grad'ed
 * row maximum (the result does not depend on it, so its derivative is zero
 * anyway). */
#include <math.h>

#include "ir.h"
#include "shape.h"

static bool is_float_dtype(DType t) {
    return t == DT_F32 || t == DT_F64;
}

static Node *scalar_like(Graph *g, Node *a, double v, SrcLoc loc) {
    return a ? ir_scalar(g, a->dtype, v, loc) : NULL;
}

static Node *add(Graph *g, Node *a, Node *b, SrcLoc l) {
    return ir_binary(g, OP_ADD, a, b, l);
}
static Node *sub(Graph *g, Node *a, Node *b, SrcLoc l) {
    return ir_binary(g, OP_SUB, a, b, l);
}
static Node *mul(Graph *g, Node *a, Node *b, SrcLoc l) {
    return ir_binary(g, OP_MUL, a, b, l);
}
static Node *dvd(Graph *g, Node *a, Node *b, SrcLoc l) {
    return ir_binary(g, OP_DIV, a, b, l);
}

static bool need_float(Graph *g, Node *a, const char *what, SrcLoc loc) {
    if (a->dtype == DT_F32 || a->dtype == DT_F64) return true;
    char b[96];
    diag_error(g->diags, loc, "%s: needs a floating-point operand, got %s", what,
               ir_type_str(a->dtype, &a->shape, b, sizeof b));
    return false;
}

static bool need_axis(Graph *g, Node *a, int axis, const char *what, SrcLoc loc) {
    if (axis >= 0 && axis < a->shape.rank) return true;
    char b[96];
    diag_error(g->diags, loc, "%s: axis %d out of range for %s", what, axis,
               ir_type_str(a->dtype, &a->shape, b, sizeof b));
    return false;
}

static uint32_t all_axes(const Node *a) {
    return a->shape.rank ? (uint32_t)((1ull << a->shape.rank) - 1) : 0u;
}

Node *ir_unsqueeze_axes(Graph *g, Node *a, uint32_t axes, SrcLoc loc) {
    if (!g || !a) return NULL;
    int rank = a->shape.rank + __builtin_popcount(axes);
    if (rank > IR_MAX_RANK || (axes >> rank) != 0) {
        char b[96];
        diag_error(g->diags, loc, "unsqueeze: axis mask 0x%x does not fit %s", axes,
                   ir_type_str(a->dtype, &a->shape, b, sizeof b));
        return NULL;
    }
    Shape s = {.rank = rank};
    for (int i = 0, k = 0; i < rank; i++)
        s.dims[i] = (axes >> i & 1) ? 1 : a->shape.dims[k++];
    return ir_reshape(g, a, s, loc);
}

Node *ir_mean(Graph *g, Node *a, uint32_t axes, SrcLoc loc) {
    if (!g || !a) return NULL;
    if (a->dtype != DT_F32 && a->dtype != DT_F64) a = ir_cast(g, a, DT_F32, loc);
    if (!a) return NULL;
    double count = 1;
    for (int i = 0; i < a->shape.rank; i++)
        if (axes >> i & 1) count *= (double)a->shape.dims[i];
    Node *s = ir_reduce(g, OP_SUM, a, axes, loc);
    return dvd(g, s, scalar_like(g, a, count, loc), loc);
}

Node *ir_relu(Graph *g, Node *a, SrcLoc loc) {
    if (!g || !a) return NULL;
    /* max(0, x): ties go to the zero, so relu'(0) = 0 as in PyTorch. */
    return ir_binary(g, OP_MAX, scalar_like(g, a, 0, loc), a, loc);
}

/* -|x| with the sign picked by WHERE (its derivative is -1 at 0, so the
 * x >= 0 branch below stays exact there), and the predicate x >= 0. */
static Node *neg_abs(Graph *g, Node *a, Node **pos, SrcLoc loc) {
    *pos = ir_binary(g, OP_LE, scalar_like(g, a, 0, loc), a, loc);
    return ir_where(g, *pos, ir_unary(g, OP_NEG, a, loc), a, loc);
}

Node *ir_sigmoid(Graph *g, Node *a, SrcLoc loc) {
    if (!g || !a || !need_float(g, a, "sigmoid", loc)) return NULL;
    /* e = exp(-|x|) in (0, 1]; sigmoid = 1/(1+e) for x >= 0, e/(1+e) below. */
    Node *pos, *e = ir_unary(g, OP_EXP, neg_abs(g, a, &pos, loc), loc);
    Node *den = add(g, scalar_like(g, a, 1, loc), e, loc);
    Node *hi = dvd(g, scalar_like(g, a, 1, loc), den, loc);
    Node *lo = dvd(g, e, den, loc);
    return ir_where(g, pos, hi, lo, loc);
}

/* Taylor coefficients of tanh x = x (1 + z (T1 + z (T2 + ...))), z = x^2,
 * T_n = 2^(2n+2) (2^(2n+2) - 1) B_(2n+2) / (2n+2)!: T1 .. T12. */
static const double tanh_taylor[12] = {
    -0.3333333333333333,     0.13333333333333333,   -0.05396825396825397,   0.021869488536155203,
    -0.008863235529902197,   0.003592128036572481,  -0.0014558343870513183, 0.000590027440945586,
    -0.00023912911424355248, 9.691537956929451e-05, -3.927832388331683e-05, 1.5918905069328964e-05,
};

/* tanh near 0 by its Taylor series: below `lim` the series to T_terms is
 * within a rounding (f32: 8 terms at 0.55, the last omitted term 5e-9
 * relative; f64: 12 terms at 0.3, 7e-18). The argument is zeroed above
 * lim, so neither branch nor its derivative sees a large x^2. */
static Node *tanh_small(Graph *g, Node *a, Node *small, SrcLoc loc) {
    bool f32 = a->dtype == DT_F32;
    int terms = f32 ? 8 : 12;
    Node *xs = ir_where(g, small, a, scalar_like(g, a, 0, loc), loc);
    Node *z = mul(g, xs, xs, loc);
    Node *p = scalar_like(g, a, tanh_taylor[terms - 1], loc);
    for (int k = terms - 2; k >= 0; k--)
        p = add(g, mul(g, p, z, loc), scalar_like(g, a, tanh_taylor[k], loc), loc);
    /* x (1 + z p) rather than x + x z p, which would turn -0 into +0 */
    return mul(g, xs, add(g, scalar_like(g, a, 1, loc), mul(g, z, p, loc), loc), loc);
}

Node *ir_tanh(Graph *g, Node *a, SrcLoc loc) {
    if (!g || !a || !need_float(g, a, "tanh", loc)) return NULL;
    /* tanh|x| = 1 - 2/(exp(2|x|)+1) = (1-e)/(1+e) with e = exp(-2|x|) in (0,1];
     * the sign is restored by WHERE. 1 - e cancels as |x| -> 0 (its error is
     * about 1/(2|x|) ulp of the result: tanh(1e-7) would be 9e-8 in f32), so
     * small arguments take the series (tanh_small). */
    Node *pos, *m = neg_abs(g, a, &pos, loc);
    Node *e = ir_unary(g, OP_EXP, mul(g, scalar_like(g, a, 2, loc), m, loc), loc);
    Node *one = scalar_like(g, a, 1, loc);
    Node *t = dvd(g, sub(g, one, e, loc), add(g, one, e, loc), loc);
    Node *big = ir_where(g, pos, t, ir_unary(g, OP_NEG, t, loc), loc);
    double lim = a->dtype == DT_F32 ? 0.55 : 0.3;
    Node *small =
        ir_binary(g, OP_LT, ir_unary(g, OP_ABS, a, loc), scalar_like(g, a, lim, loc), loc);
    return ir_where(g, small, tanh_small(g, a, small, loc), big, loc);
}

Node *ir_gelu(Graph *g, Node *a, bool tanh_form, SrcLoc loc) {
    if (!g || !a || !need_float(g, a, "gelu", loc)) return NULL;
    if (!tanh_form) { /* x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) */
        Node *s = mul(g, a, scalar_like(g, a, 0.7071067811865476 /* 1/sqrt 2 */, loc), loc);
        Node *t = add(g, scalar_like(g, a, 1, loc), ir_unary(g, OP_ERF, s, loc), loc);
        return mul(g, mul(g, scalar_like(g, a, 0.5, loc), a, loc), t, loc);
    }
    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    Node *x3 = mul(g, mul(g, a, a, loc), a, loc);
    Node *in = mul(g, scalar_like(g, a, 0.7978845608028654 /* sqrt(2/pi) */, loc),
                   add(g, a, mul(g, scalar_like(g, a, 0.044715, loc), x3, loc), loc), loc);
    Node *t = add(g, scalar_like(g, a, 1, loc), ir_tanh(g, in, loc), loc);
    return mul(g, mul(g, scalar_like(g, a, 0.5, loc), a, loc), t, loc);
}

Node *ir_argmin(Graph *g, Node *a, int axis, SrcLoc loc) {
    if (!g || !a || !need_axis(g, a, axis, "argmin", loc)) return NULL;
    /* argmax of an order-reversing map: -x for floats (exact; a NaN still
     * wins), ~x = -1 - x for integers (never overflows, where -x does for
     * the minimum integer), !x for bool. */
    Node *r;
    if (a->dtype == DT_BOOL)
        r = ir_unary(g, OP_NOT, a, loc);
    else if (a->dtype == DT_F32 || a->dtype == DT_F64)
        r = ir_unary(g, OP_NEG, a, loc);
    else
        r = sub(g, scalar_like(g, a, -1, loc), a, loc);
    return ir_reduce(g, OP_ARGMAX, r, 1u << axis, loc);
}

/* a - stop_grad(max over axis), keeping the axis: the shifted logits. */
static Node *shift_by_max(Graph *g, Node *a, int axis, SrcLoc loc) {
    Node *m = ir_unary(g, OP_STOP_GRAD, ir_reduce(g, OP_REDUCE_MAX, a, 1u << axis, loc), loc);
    return sub(g, a, ir_unsqueeze_axes(g, m, 1u << axis, loc), loc);
}

Node *ir_logsumexp(Graph *g, Node *a, int axis, SrcLoc loc) {
    if (!g || !a || !need_float(g, a, "logsumexp", loc) || !need_axis(g, a, axis, "logsumexp", loc))
        return NULL;
    /* The shift is the row maximum where it is finite and 0 where it is +-inf
     * (or NaN): a - inf would be NaN, while unshifted a row holding +inf sums
     * to inf and an all -inf row to 0, so the result is +inf or -inf as in
     * PyTorch and JAX (a NaN still gives NaN). */
    Node *m = ir_unary(g, OP_STOP_GRAD, ir_reduce(g, OP_REDUCE_MAX, a, 1u << axis, loc), loc);
    Node *fin =
        ir_binary(g, OP_LT, ir_unary(g, OP_ABS, m, loc), scalar_like(g, a, INFINITY, loc), loc);
    m = ir_where(g, fin, m, scalar_like(g, a, 0, loc), loc);
    Node *sh = sub(g, a, ir_unsqueeze_axes(g, m, 1u << axis, loc), loc);
    Node *s = ir_reduce(g, OP_SUM, ir_unary(g, OP_EXP, sh, loc), 1u << axis, loc);
    return add(g, ir_unary(g, OP_LOG, s, loc), m, loc);
}

Node *ir_softmax(Graph *g, Node *a, int axis, SrcLoc loc) {
    if (!g || !a || !need_float(g, a, "softmax", loc) || !need_axis(g, a, axis, "softmax", loc))
        return NULL;
    Node *e = ir_unary(g, OP_EXP, shift_by_max(g, a, axis, loc), loc);
    Node *s = ir_unsqueeze_axes(g, ir_reduce(g, OP_SUM, e, 1u << axis, loc), 1u << axis, loc);
    return dvd(g, e, s, loc);
}

Node *ir_log_softmax(Graph *g, Node *a, int axis, SrcLoc loc) {
    if (!g || !a || !need_float(g, a, "log_softmax", loc) ||
        !need_axis(g, a, axis, "log_softmax", loc))
        return NULL;
    Node *sh = shift_by_max(g, a, axis, loc);
    Node *s = ir_reduce(g, OP_SUM, ir_unary(g, OP_EXP, sh, loc), 1u << axis, loc);
    return sub(g, sh, ir_unsqueeze_axes(g, ir_unary(g, OP_LOG, s, loc), 1u << axis, loc), loc);
}

Node *ir_one_hot(Graph *g, Node *labels, int64_t classes, DType dt, SrcLoc loc) {
    if (!g || !labels) return NULL;
    char b[96];
    if (labels->dtype != DT_I32 && labels->dtype != DT_I64) {
        diag_error(g->diags, loc, "one_hot: labels must be integer, got %s",
                   ir_type_str(labels->dtype, &labels->shape, b, sizeof b));
        return NULL;
    }
    int r = labels->shape.rank;
    if (classes < 0 || r + 1 > IR_MAX_RANK) {
        diag_error(g->diags, loc, "one_hot: cannot make %lld classes for labels %s",
                   (long long)classes, ir_type_str(labels->dtype, &labels->shape, b, sizeof b));
        return NULL;
    }
    Shape s = labels->shape;
    s.rank = r + 1;
    s.dims[r] = classes;
    /* one_hot[.., c] = (iota_c == label): a compare, so no derivative flows to labels. */
    Node *io = ir_iota(g, labels->dtype, s, r, loc);
    Node *lb = ir_unsqueeze_axes(g, labels, 1u << r, loc);
    return ir_cast(g, ir_binary(g, OP_EQ, lb, io, loc), dt, loc);
}

Node *ir_cross_entropy(Graph *g, Node *logits, Node *labels, SrcLoc loc) {
    if (!g || !logits || !labels) return NULL;
    char b1[96], b2[96];
    if (logits->shape.rank != 2 || labels->shape.rank != 1 ||
        logits->shape.dims[0] != labels->shape.dims[0] ||
        (labels->dtype != DT_I32 && labels->dtype != DT_I64)) {
        diag_error(g->diags, loc,
                   "cross_entropy: expects logits [N,C] and integer labels [N], got %s and %s",
                   ir_type_str(logits->dtype, &logits->shape, b1, sizeof b1),
                   ir_type_str(labels->dtype, &labels->shape, b2, sizeof b2));
        return NULL;
    }
    if (!need_float(g, logits, "cross_entropy", loc)) return NULL;
    Node *ls = ir_log_softmax(g, logits, 1, loc);
    int64_t classes = logits->shape.dims[1];
    /* The target's log-probability, picked by WHERE rather than by a product
     * with one_hot: a masked class (logit -inf) has log-probability -inf,
     * and -inf * 0 would make the loss NaN. */
    Shape nc = logits->shape;
    Node *hit = ir_binary(g, OP_EQ, ir_unsqueeze_axes(g, labels, 1u << 1, loc),
                          ir_iota(g, labels->dtype, nc, 1, loc), loc);
    Node *picked = ir_reduce(g, OP_SUM, ir_where(g, hit, ls, scalar_like(g, ls, 0, loc), loc),
                             1u << 1, loc); /* (N) */
    /* A label outside 0..C-1 would pick nothing (a loss of 0 for that row):
       gathering a 1 per row from a [C] vector of ones makes it a located
       "index out of range" error instead, at the cost of an exact * 1. */
    Node *valid =
        ir_gather(g, ir_const(g, logits->dtype, rt_shape_make(1, &classes), 1.0, loc), labels, loc);
    return ir_unary(g, OP_NEG, ir_mean(g, mul(g, picked, valid, loc), 1u, loc), loc);
}

/* Integers: the truncating DIV quotient, less one where the MOD remainder is
 * nonzero and the signs differ (not (a - a % b) / b, whose subtraction can
 * overflow at the type's minimum); b == 0 gives 0, as DIV and MOD do there.
 * Floats: CPython's float floor division, which numpy's floor_divide shares:
 * d = (a - a % b) / b is within rounding of an integer, and rounding it (floor,
 * plus one when the rest is over 1/2) gives 1 // 0.1 = 9 where floor(1 / 0.1)
 * gives 10. The result is piecewise constant: its derivative is zero (stop_grad). */
Node *ir_floordiv(Graph *g, Node *a, Node *b, SrcLoc loc) {
    if (!g || !a || !b) return NULL;
    DType dt = ir_promote(a->dtype, b->dtype);
    if (dt == DT_BOOL) dt = DT_I32; /* True // True is the integer 1, as in Python */
    a = ir_cast(g, a, dt, loc);
    b = ir_cast(g, b, dt, loc);
    Node *m = ir_binary(g, OP_MOD, a, b, loc), *r;
    if (!is_float_dtype(dt)) {
        Node *z = ir_scalar_int(g, dt, 0, loc);
        Node *differ = ir_binary(g, OP_NE, ir_binary(g, OP_LT, a, z, loc),
                                 ir_binary(g, OP_LT, b, z, loc), loc);
        Node *fix = ir_binary(g, OP_AND, ir_binary(g, OP_NE, m, z, loc), differ, loc);
        r = sub(g, dvd(g, a, b, loc), ir_cast(g, fix, dt, loc), loc);
    } else {
        Node *d = dvd(g, sub(g, a, m, loc), b, loc);
        Node *f = ir_unary(g, OP_FLOOR, d, loc);
        Node *up = ir_binary(g, OP_LT, scalar_like(g, d, 0.5, loc), sub(g, d, f, loc), loc);
        r = add(g, f, ir_cast(g, up, dt, loc), loc);
    }
    return ir_unary(g, OP_STOP_GRAD, r, loc);
}

/* rank_i = #{j : key_j < key_i or (key_j == key_i and j < i)}, as a [k, n]
 * comparison summed over its second axis: the ranks are distinct (ties go by
 * index) and for independent keys the rank vector of all n is a uniformly
 * random permutation, so its first k entries are a uniform ordered k-subset.
 * No sort is needed, and fusion keeps the [k, n] comparison in registers. */
Node *ir_key_ranks(Graph *g, Node *key, int64_t k, SrcLoc loc) {
    if (!g || !key) return NULL;
    int64_t n = key->shape.dims[0];
    int64_t start = 0, step = 1;
    Node *ki = ir_slice(g, key, &start, &k, &step, loc);
    Shape col = {.rank = 2, .dims = {k, 1}}, row = {.rank = 2, .dims = {1, n}};
    Node *a = ir_reshape(g, ki, col, loc), *b = ir_reshape(g, key, row, loc);
    Node *ii = ir_iota(g, DT_I32, col, 0, loc), *jj = ir_iota(g, DT_I32, row, 1, loc);
    Node *before = ir_binary(
        g, OP_OR, ir_binary(g, OP_LT, b, a, loc),
        ir_binary(g, OP_AND, ir_binary(g, OP_EQ, b, a, loc), ir_binary(g, OP_LT, jj, ii, loc), loc),
        loc);
    return ir_reduce(g, OP_SUM, ir_cast(g, before, DT_I32, loc), 2u, loc);
}

/* numpy's edges: linspace(lo, hi, bins + 1), i.e. lo + b * ((hi - lo) / bins)
 * in f64 with the last edge hi itself, then rounded to x's float dtype (f64
 * for integer x, which is compared in f64). A value lies in bin b when
 * e_b <= x < e_(b+1), the last bin closed; values outside [e_0, e_bins] (and
 * NaN) are not counted. With C_b = #{counted x >= e_b}, bin b holds
 * C_b - C_(b+1) (C_bins = 0): one [N, bins] comparison reduced over N, exact
 * against the edges, where numpy computes an index and corrects it by one
 * ulp-wise; both give the same counts. */
/* Entries from..to-1 of the last axis of a rank-2 a. */
static Node *last_axis_range(Graph *g, Node *a, int64_t from, int64_t to, SrcLoc loc) {
    int64_t start[2] = {0, from}, stop[2] = {a->shape.dims[0], to}, step[2] = {1, 1};
    return ir_slice(g, a, start, stop, step, loc);
}

Node *ir_histogram(Graph *g, Node *x, int64_t bins, Node *lo, Node *hi, SrcLoc loc) {
    if (!g || !x || !lo || !hi) return NULL;
    DType dt = x->dtype == DT_F32 ? DT_F32 : DT_F64;
    int64_t n = rt_shape_numel(&x->shape);
    Shape col = {.rank = 2, .dims = {n, 1}}, row = {.rank = 2, .dims = {1, bins + 1}};
    Node *xs = ir_reshape(g, ir_cast(g, x, dt, loc), col, loc);
    Node *step = dvd(g, sub(g, hi, lo, loc), ir_scalar(g, DT_F64, (double)bins, loc), loc);
    Node *b = ir_iota(g, DT_F64, row, 1, loc);
    Node *at_end = ir_binary(g, OP_EQ, b, ir_scalar(g, DT_F64, (double)bins, loc), loc);
    Node *edge =
        ir_cast(g, ir_where(g, at_end, hi, add(g, mul(g, b, step, loc), lo, loc), loc), dt, loc);
    Node *e0 = last_axis_range(g, edge, 0, 1, loc),
         *en = last_axis_range(g, edge, bins, bins + 1, loc);
    Node *in = ir_binary(g, OP_AND, ir_binary(g, OP_LE, e0, xs, loc),
                         ir_binary(g, OP_LE, xs, en, loc), loc);
    Node *ge = ir_binary(g, OP_AND, in,
                         ir_binary(g, OP_LE, last_axis_range(g, edge, 0, bins, loc), xs, loc), loc);
    Node *c = ir_reduce(g, OP_SUM, ir_cast(g, ge, DT_I64, loc), 1u, loc); /* C_0 .. C_(bins-1) */
    Shape one = {.rank = 1, .dims = {1}}, flat = {.rank = 1, .dims = {bins}};
    c = ir_reshape(g, c, flat, loc);
    Node *next = ir_const_int(g, DT_I64, one, 0, loc); /* C_bins */
    if (bins > 1) {
        int64_t from = 1, to = bins, st = 1;
        Node *parts[2] = {ir_slice(g, c, &from, &to, &st, loc), next};
        next = ir_concat(g, parts, 2, 0, loc);
    }
    return sub(g, c, next, loc);
}

Node *ir_mse(Graph *g, Node *a, Node *b, SrcLoc loc) {
    if (!g || !a || !b) return NULL;
    Node *d = sub(g, a, b, loc);
    if (!d) return NULL;
    return ir_mean(g, mul(g, d, d, loc), all_axes(d), loc);
}

Node *ir_sum_to(Graph *g, Node *a, Shape to, SrcLoc loc) {
    if (!g || !a) return NULL;
    if (rt_shape_eq(&a->shape, &to)) return a;
    int lead = a->shape.rank - to.rank;
    bool ok = lead >= 0 && to.rank >= 0;
    uint32_t axes = 0;
    for (int i = 0; ok && i < a->shape.rank; i++) {
        if (i < lead) {
            axes |= 1u << i;
        } else {
            int64_t d = to.dims[i - lead];
            if (d == 1 && a->shape.dims[i] != 1)
                axes |= 1u << i;
            else
                ok = d == a->shape.dims[i];
        }
    }
    if (!ok) {
        char b1[96], b2[96];
        diag_error(g->diags, loc, "sum_to: %s is not a broadcast of %s",
                   ir_type_str(a->dtype, &a->shape, b1, sizeof b1),
                   ir_type_str(a->dtype, &to, b2, sizeof b2));
        return NULL;
    }
    return ir_reshape(g, ir_reduce(g, OP_SUM, a, axes, loc), to, loc);
}

/* pinv(a) = V diag(s+) U^T from the thin SVD, s+ = 1/s for the singular
 * values above max(m, n) * eps * max(s) (numpy's and PyTorch's default
 * tolerance), 0 for the others. No derivative: svd has none. */
Node *ir_pinv(Graph *g, Node *a, SrcLoc loc) {
    if (!a) return NULL;
    Node *t = ir_call(g, OP_SVD, &a, loc);
    Node *u = ir_tuple_get(g, t, 0, loc), *s = ir_tuple_get(g, t, 1, loc),
         *vt = ir_tuple_get(g, t, 2, loc);
    if (!u || !s || !vt) return NULL;
    int r = a->shape.rank;
    int64_t m = a->shape.dims[r - 2], n = a->shape.dims[r - 1];
    double eps = a->dtype == DT_F64 ? 2.220446049250313e-16 : 1.1920928955078125e-07;
    Node *smax = ir_reduce(g, OP_REDUCE_MAX, s, 1u << (r - 2), loc); /* [..] */
    Shape keep = s->shape;
    keep.dims[r - 2] = 1;
    Node *cut = ir_binary(g, OP_MUL, ir_reshape(g, smax, keep, loc),
                          ir_scalar(g, a->dtype, (double)(m > n ? m : n) * eps, loc), loc);
    Node *big = ir_binary(g, OP_LT, cut, s, loc); /* [.., k] */
    Node *one = ir_scalar(g, a->dtype, 1.0, loc), *zero = ir_scalar(g, a->dtype, 0.0, loc);
    Node *safe = ir_where(g, big, s, ir_broadcast(g, one, s->shape, loc), loc);
    Node *sinv = ir_where(g, big, ir_binary(g, OP_DIV, one, safe, loc),
                          ir_broadcast(g, zero, s->shape, loc), loc);
    Shape row = s->shape; /* [.., 1, k]: scales the columns of V */
    row.dims[r - 2] = 1;
    row.dims[r - 1] = s->shape.dims[r - 2];
    row.rank = r;
    int perm[IR_MAX_RANK];
    for (int i = 0; i < r; i++)
        perm[i] = i;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    Node *v = ir_permute(g, vt, perm, loc), *ut = ir_permute(g, u, perm, loc);
    Node *vs = ir_binary(g, OP_MUL, v, ir_reshape(g, sinv, row, loc), loc);
    return ir_matmul(g, vs, ut, loc);
}
