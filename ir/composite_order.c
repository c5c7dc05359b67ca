/* Composites over the order ops and scatter_add: sorted values, top-k,
 * quantiles, segment sums and means (ir.h). Values are gathered from their
 * source positions, so the gradient of each goes back to the element it
 * came from (scatter_add, gather's rule); indices carry none. */
#include <math.h>

#include "ir.h"
#include "shape.h"

static const char *tstr(const Node *n, char *buf, size_t len) {
    return ir_type_str(n->dtype, &n->shape, buf, len);
}

/* out[.., j, ..] = x[.., idx[.., j, ..], ..] along axis: x and idx agree on
 * every other axis. One gather from x flattened: the flat index of each
 * picked element is built from iotas over idx's shape and x's strides. */
Node *ir_take_along(Graph *g, Node *x, Node *idx, int axis, SrcLoc loc) {
    if (!g || !x || !idx) return NULL;
    const Shape *xs = &x->shape, *is = &idx->shape;
    bool ok = xs->rank == is->rank && axis >= 0 && axis < xs->rank;
    for (int i = 0; ok && i < xs->rank; i++)
        ok = i == axis || xs->dims[i] == is->dims[i];
    if (!ok || (idx->dtype != DT_I64 && idx->dtype != DT_I32)) {
        char b1[96], b2[96];
        diag_error(g->diags, loc, "take_along: indices %s do not fit %s along axis %d",
                   tstr(idx, b2, sizeof b2), tstr(x, b1, sizeof b1), axis);
        return NULL;
    }
    int64_t stride[IR_MAX_RANK], acc = 1;
    for (int i = xs->rank - 1; i >= 0; i--) {
        stride[i] = acc;
        acc *= xs->dims[i];
    }
    Node *flat = ir_binary(g, OP_MUL, ir_cast(g, idx, DT_I64, loc),
                           ir_scalar_int(g, DT_I64, stride[axis], loc), loc);
    for (int i = 0; i < xs->rank; i++) {
        if (i == axis || xs->dims[i] == 1) continue;
        Node *c = ir_binary(g, OP_MUL, ir_iota(g, DT_I64, *is, i, loc),
                            ir_scalar_int(g, DT_I64, stride[i], loc), loc);
        flat = ir_binary(g, OP_ADD, flat, c, loc);
    }
    Shape one = {.rank = 1, .dims = {acc}};
    return ir_gather(g, ir_reshape(g, x, one, loc), flat, loc);
}

Node *ir_sort(Graph *g, Node *x, int axis, bool descending, SrcLoc loc) {
    return ir_take_along(g, x, ir_argsort(g, x, axis, descending, loc), axis, loc);
}

/* The indices of the k largest along axis, largest first; equal values by
 * lower index (the stable descending order), as torch.topk. */
Node *ir_top_k_indices(Graph *g, Node *x, int64_t k, int axis, SrcLoc loc) {
    if (!g || !x) return NULL;
    int r = x->shape.rank;
    if (axis < 0 || axis >= r || k < 0 || k > x->shape.dims[axis]) {
        char b[96];
        diag_error(g->diags, loc, "top_k: k = %lld is not in 0..%lld for %s", (long long)k,
                   (long long)(axis >= 0 && axis < r ? x->shape.dims[axis] : 0),
                   tstr(x, b, sizeof b));
        return NULL;
    }
    int64_t start[IR_MAX_RANK] = {0}, stop[IR_MAX_RANK], step[IR_MAX_RANK];
    for (int i = 0; i < r; i++) {
        stop[i] = x->shape.dims[i];
        step[i] = 1;
    }
    stop[axis] = k;
    return ir_slice(g, ir_argsort(g, x, axis, true, loc), start, stop, step, loc);
}

Node *ir_top_k(Graph *g, Node *x, int64_t k, int axis, SrcLoc loc) {
    Node *i = ir_top_k_indices(g, x, k, axis, loc);
    return i ? ir_take_along(g, x, i, axis, loc) : NULL;
}

/* numpy's default ('linear') quantile along axis, which is dropped: at the
 * virtual index q (n - 1) of the sorted values, a + t (b - a) between the
 * neighbours a, b (t < 0.5), else b - (1 - t) (b - a), numpy's _lerp. */
Node *ir_quantile(Graph *g, Node *x, double q, int axis, SrcLoc loc) {
    if (!g || !x) return NULL;
    char b[96];
    int r = x->shape.rank;
    if (x->dtype != DT_F32 && x->dtype != DT_F64) {
        diag_error(g->diags, loc, "quantile: needs a floating-point operand, got %s",
                   tstr(x, b, sizeof b));
        return NULL;
    }
    if (!(q >= 0 && q <= 1)) {
        diag_error(g->diags, loc, "quantile: q = %g is not in [0, 1]", q);
        return NULL;
    }
    if (axis < 0 || axis >= r || x->shape.dims[axis] == 0) {
        diag_error(g->diags, loc, "quantile: no values along axis %d of %s", axis,
                   tstr(x, b, sizeof b));
        return NULL;
    }
    int64_t n = x->shape.dims[axis];
    double vi = q * (double)(n - 1), fl = floor(vi), t = vi - fl;
    int64_t lo = (int64_t)fl, hi = lo + 1 < n ? lo + 1 : n - 1;
    Node *s = ir_sort(g, x, axis, false, loc);
    int64_t start[IR_MAX_RANK] = {0}, stop[IR_MAX_RANK], step[IR_MAX_RANK];
    for (int i = 0; i < r; i++) {
        stop[i] = x->shape.dims[i];
        step[i] = 1;
    }
    Shape out = x->shape;
    for (int i = axis; i + 1 < r; i++)
        out.dims[i] = out.dims[i + 1];
    out.rank--;
    start[axis] = lo;
    stop[axis] = lo + 1;
    Node *a = ir_reshape(g, ir_slice(g, s, start, stop, step, loc), out, loc);
    if (t == 0) return a;
    start[axis] = hi;
    stop[axis] = hi + 1;
    Node *bb = ir_reshape(g, ir_slice(g, s, start, stop, step, loc), out, loc);
    Node *d = ir_binary(g, OP_SUB, bb, a, loc);
    if (t < 0.5)
        return ir_binary(g, OP_ADD, a, ir_binary(g, OP_MUL, d, ir_scalar(g, x->dtype, t, loc), loc),
                         loc);
    return ir_binary(g, OP_SUB, bb,
                     ir_binary(g, OP_MUL, d, ir_scalar(g, x->dtype, 1 - t, loc), loc), loc);
}

/* numpy's nanquantile: the linear quantile of the values that are not NaN
 * (sorted first, NaN last), at the virtual index q (m - 1) for m of them,
 * found at run time; NaN where all are NaN. */
Node *ir_nanquantile(Graph *g, Node *x, double q, int axis, SrcLoc loc) {
    if (!g || !x) return NULL;
    char b[96];
    int r = x->shape.rank;
    if (x->dtype != DT_F32 && x->dtype != DT_F64) {
        diag_error(g->diags, loc, "nanquantile: needs a floating-point operand, got %s",
                   tstr(x, b, sizeof b));
        return NULL;
    }
    if (!(q >= 0 && q <= 1) || axis < 0 || axis >= r || x->shape.dims[axis] == 0) {
        diag_error(g->diags, loc, "nanquantile: q = %g or axis %d does not fit %s", q, axis,
                   tstr(x, b, sizeof b));
        return NULL;
    }
    DType dt = x->dtype;
    Node *s = ir_sort(g, x, axis, false, loc);
    Node *valid = ir_cast(g, ir_binary(g, OP_EQ, x, x, loc), dt, loc);
    Shape kept = x->shape;
    kept.dims[axis] = 1;
    Node *m = ir_reshape(g, ir_reduce(g, OP_SUM, valid, 1u << axis, loc), kept, loc);
    Node *top = ir_binary(g, OP_MAX, ir_binary(g, OP_SUB, m, ir_scalar(g, dt, 1, loc), loc),
                          ir_scalar(g, dt, 0, loc), loc);
    Node *vi = ir_binary(g, OP_MUL, top, ir_scalar(g, dt, q, loc), loc);
    Node *lo = ir_unary(g, OP_FLOOR, vi, loc);
    Node *t = ir_binary(g, OP_SUB, vi, lo, loc);
    Node *hi =
        ir_binary(g, OP_MIN, ir_binary(g, OP_ADD, lo, ir_scalar(g, dt, 1, loc), loc), top, loc);
    Node *a = ir_take_along(g, s, ir_cast(g, lo, DT_I64, loc), axis, loc);
    Node *bb = ir_take_along(g, s, ir_cast(g, hi, DT_I64, loc), axis, loc);
    Node *d = ir_binary(g, OP_SUB, bb, a, loc);
    Node *low = ir_binary(g, OP_ADD, a, ir_binary(g, OP_MUL, d, t, loc), loc);
    Node *high = ir_binary(
        g, OP_SUB, bb,
        ir_binary(g, OP_MUL, d, ir_binary(g, OP_SUB, ir_scalar(g, dt, 1, loc), t, loc), loc), loc);
    Node *v = ir_where(g, ir_binary(g, OP_LT, t, ir_scalar(g, dt, 0.5, loc), loc), low, high, loc);
    v = ir_where(g, ir_binary(g, OP_EQ, m, ir_scalar(g, dt, 0, loc), loc),
                 ir_scalar(g, dt, NAN, loc), v, loc);
    Shape out = x->shape;
    for (int i = axis; i + 1 < r; i++)
        out.dims[i] = out.dims[i + 1];
    out.rank--;
    return ir_reshape(g, v, out, loc);
}

/* Rows of x (its first axis) summed by label: out[c, ..] = sum of x[i, ..]
 * over i with labels[i] = c. A label outside [0, n) fails the run at the
 * call (scatter_add's range check). */
static Node *segment_sum(Graph *g, Node *x, Node *labels, int64_t n, const char *name, SrcLoc loc) {
    if (!g || !x || !labels) return NULL;
    char b1[96], b2[96];
    if ((labels->dtype != DT_I32 && labels->dtype != DT_I64) || labels->shape.rank != 1 ||
        x->shape.rank < 1 || x->shape.dims[0] != labels->shape.dims[0] || n < 0) {
        diag_error(g->diags, loc,
                   "%s: needs integer labels[N] for the rows of x[N, ...] and n >= 0, "
                   "got %s, %s and n = %lld",
                   name, tstr(x, b1, sizeof b1), tstr(labels, b2, sizeof b2), (long long)n);
        return NULL;
    }
    return ir_scatter_add(g, x, labels, n, loc);
}

Node *ir_segment_sum(Graph *g, Node *x, Node *labels, int64_t n, SrcLoc loc) {
    return segment_sum(g, x, labels, n, "segment_sum", loc);
}

/* The mean of each group's rows; a group without rows has mean 0 (its sum 0
 * divided by max(count, 1)). */
Node *ir_segment_mean(Graph *g, Node *x, Node *labels, int64_t n, SrcLoc loc) {
    if (!g || !x || !labels) return NULL;
    if (x->dtype != DT_F32 && x->dtype != DT_F64) x = ir_cast(g, x, DT_F32, loc);
    Node *s = segment_sum(g, x, labels, n, "segment_mean", loc);
    if (!s) return NULL;
    Node *cnt = ir_scatter_add(g, ir_const(g, x->dtype, labels->shape, 1.0, loc), labels, n, loc);
    cnt = ir_binary(g, OP_MAX, cnt, ir_scalar(g, x->dtype, 1.0, loc), loc);
    Shape cs = s->shape;
    for (int i = 1; i < cs.rank; i++)
        cs.dims[i] = 1;
    return ir_binary(g, OP_DIV, s, ir_reshape(g, cnt, cs, loc), loc);
}
