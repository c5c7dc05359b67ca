/* Derivative rules, one per op, written as graph-to-graph rewrites.
 *
 * Each rule turns (node n, upstream gradient G with n's shape) into gradient
 * nodes for n's sources, built only with the public ir_* builders, so every
 * gradient is itself differentiable (grad of grad). Elementwise primitives
 * have equal source and result shapes (the builders insert BROADCAST nodes),
 * so their rules are shape-simple; the BROADCAST rule undoes broadcasting
 * with ir_sum_to. The driver (autodiff.c) only calls a rule for floating
 * nodes and drops contributions to non-floating sources (indices, masks).
 * The table at the bottom is generated from ops.def: every op needs a
 * RULE_<ID> macro, so a new op without a rule does not compile. */
#include "autodiff_rules.h"

/* ---- small helpers ------------------------------------------------------- */

static Node *zeros_like(Graph *g, const Node *like, SrcLoc loc) {
    return ir_const(g, like->dtype, like->shape, 0.0, loc);
}

static Node *full_like(Graph *g, const Node *like, double v, SrcLoc loc) {
    return ir_const(g, like->dtype, like->shape, v, loc);
}

static Node *scalar_like(Graph *g, const Node *like, double v, SrcLoc loc) {
    return ir_scalar(g, like->dtype, v, loc);
}

static Node *mul(Graph *g, Node *a, Node *b, SrcLoc loc) {
    return ir_binary(g, OP_MUL, a, b, loc);
}
static Node *divide(Graph *g, Node *a, Node *b, SrcLoc loc) {
    return ir_binary(g, OP_DIV, a, b, loc);
}
static Node *neg(Graph *g, Node *a, SrcLoc loc) {
    return ir_unary(g, OP_NEG, a, loc);
}

/* The shape of a reduction's source with the reduced axes kept as size 1. */
static Shape keepdims_shape(const Shape *src, uint32_t axes) {
    Shape s = *src;
    for (int k = 0; k < s.rank; k++)
        if (axes & (1u << k)) s.dims[k] = 1;
    return s;
}

/* r = reduce(src, axes) -> r expanded back to src's shape. */
static Node *expand_reduced(Graph *g, Node *r, const Node *src, uint32_t axes, SrcLoc loc) {
    Shape keep = keepdims_shape(&src->shape, axes);
    return ir_broadcast(g, ir_reshape(g, r, keep, loc), src->shape, loc);
}

/* Swaps the last two axes (matrix transpose with batch dims kept). */
static Node *transpose_last2(Graph *g, Node *a, SrcLoc loc) {
    if (!a) return NULL;
    int perm[IR_MAX_RANK];
    int r = a->shape.rank;
    for (int k = 0; k < r; k++)
        perm[k] = k;
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return ir_permute(g, a, perm, loc);
}

/* out = mask ? G : 0 (first) and mask ? 0 : G (second), for max/min/where. */
static bool split_by_mask(Graph *g, Node *mask, Node *gout, Node **ga, Node **gb, SrcLoc loc) {
    Node *z = zeros_like(g, gout, loc);
    *ga = ir_where(g, mask, gout, z, loc);
    *gb = ir_where(g, mask, z, gout, loc);
    return *ga && *gb;
}

/* ---- elementwise unary --------------------------------------------------- */

/* d/dx -x = -1 */
static bool grad_neg(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = neg(g, G, n->loc)) != NULL;
}

/* d/dx |x| = sign(x)  (0 at the kink) */
static bool grad_abs(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = mul(g, G, ir_unary(g, OP_SIGN, n->src[0], n->loc), n->loc)) != NULL;
}

/* d/dx e^x = e^x  (reuses the forward result) */
static bool grad_exp(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = mul(g, G, n, n->loc)) != NULL;
}

/* d/dx ln x = 1 / x */
static bool grad_log(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = divide(g, G, n->src[0], n->loc)) != NULL;
}

/* d/dx sqrt(x) = 0.5 / sqrt(x) */
static bool grad_sqrt(Graph *g, Node *n, Node *G, Node **gs) {
    Node *two_y = mul(g, scalar_like(g, n, 2.0, n->loc), n, n->loc);
    return (gs[0] = divide(g, G, two_y, n->loc)) != NULL;
}

/* d/dx sin x = cos x */
static bool grad_sin(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = mul(g, G, ir_unary(g, OP_COS, n->src[0], n->loc), n->loc)) != NULL;
}

/* d/dx cos x = -sin x */
static bool grad_cos(Graph *g, Node *n, Node *G, Node **gs) {
    Node *s = ir_unary(g, OP_SIN, n->src[0], n->loc);
    return (gs[0] = neg(g, mul(g, G, s, n->loc), n->loc)) != NULL;
}

/* d/dx erf x = 2/sqrt(pi) exp(-x^2) */
static bool grad_erf(Graph *g, Node *n, Node *G, Node **gs) {
    Node *x = n->src[0];
    Node *e = ir_unary(g, OP_EXP, neg(g, mul(g, x, x, n->loc), n->loc), n->loc);
    Node *d = mul(g, scalar_like(g, n, 1.1283791670955126 /* 2/sqrt(pi) */, n->loc), e, n->loc);
    return (gs[0] = mul(g, G, d, n->loc)) != NULL;
}

/* d/dx cast(x) = 1, cast back; integer sources or results carry no gradient */
static bool grad_cast(Graph *g, Node *n, Node *G, Node **gs) {
    const Node *a = n->src[0];
    if (!rt_dtype_is_float(a->dtype) || !rt_dtype_is_float(n->dtype)) return true;
    return (gs[0] = ir_cast(g, G, a->dtype, n->loc)) != NULL;
}

/* ---- elementwise binary -------------------------------------------------- */

/* d(a+b) = da + db */
static bool grad_add(Graph *g, Node *n, Node *G, Node **gs) {
    (void)g;
    (void)n;
    gs[0] = G;
    gs[1] = G;
    return true;
}

/* d(a-b) = da - db */
static bool grad_sub(Graph *g, Node *n, Node *G, Node **gs) {
    gs[0] = G;
    return (gs[1] = neg(g, G, n->loc)) != NULL;
}

/* d(a*b) = b da + a db */
static bool grad_mul(Graph *g, Node *n, Node *G, Node **gs) {
    gs[0] = mul(g, G, n->src[1], n->loc);
    gs[1] = mul(g, G, n->src[0], n->loc);
    return gs[0] && gs[1];
}

/* d(a/b) = da / b - (a/b) / b db */
static bool grad_div(Graph *g, Node *n, Node *G, Node **gs) {
    Node *b = n->src[1];
    gs[0] = divide(g, G, b, n->loc);
    gs[1] = neg(g, divide(g, mul(g, G, n, n->loc), b, n->loc), n->loc);
    return gs[0] && gs[1];
}

/* d/da a^b = b a^(b-1);  d/db a^b = a^b ln a, taken as 0 where a <= 0
 * (the log sees a guarded 1 there, so second derivatives stay finite). */
static bool grad_pow(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *a = n->src[0], *b = n->src[1];
    Node *bm1 = ir_binary(g, OP_SUB, b, scalar_like(g, b, 1.0, l), l);
    gs[0] = mul(g, G, mul(g, b, ir_binary(g, OP_POW, a, bm1, l), l), l);
    Node *pos = ir_binary(g, OP_LT, zeros_like(g, a, l), a, l);
    Node *safe_a = ir_where(g, pos, a, full_like(g, a, 1.0, l), l);
    Node *dlog = mul(g, n, ir_unary(g, OP_LOG, safe_a, l), l);
    gs[1] = mul(g, G, ir_where(g, pos, dlog, zeros_like(g, a, l), l), l);
    return gs[0] && gs[1];
}

/* d max(a,b) = da where a >= b (ties go to a), else db */
static bool grad_max(Graph *g, Node *n, Node *G, Node **gs) {
    Node *a_wins = ir_binary(g, OP_LE, n->src[1], n->src[0], n->loc);
    return split_by_mask(g, a_wins, G, &gs[0], &gs[1], n->loc);
}

/* d min(a,b) = da where a <= b (ties go to a), else db */
static bool grad_min(Graph *g, Node *n, Node *G, Node **gs) {
    Node *a_wins = ir_binary(g, OP_LE, n->src[0], n->src[1], n->loc);
    return split_by_mask(g, a_wins, G, &gs[0], &gs[1], n->loc);
}

/* d where(c, a, b) = c ? da : db; the condition gets nothing */
static bool grad_where(Graph *g, Node *n, Node *G, Node **gs) {
    return split_by_mask(g, n->src[0], G, &gs[1], &gs[2], n->loc);
}

/* ---- reductions ---------------------------------------------------------- */

/* d sum(a) / da = 1 everywhere: broadcast G back over the reduced axes */
static bool grad_sum(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = expand_reduced(g, G, n->src[0], n->attr.reduce.axes, n->loc)) != NULL;
}

/* d max(a) / da = [a == max] / (number of maxima): ties share equally.
 * Also serves reduce_min (the mask compares with the node's own value). */
static bool grad_reduce_extreme(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *a = n->src[0];
    uint32_t axes = n->attr.reduce.axes;
    Node *hit = ir_binary(g, OP_EQ, a, expand_reduced(g, n, a, axes, l), l);
    Node *count = ir_reduce(g, OP_SUM, ir_cast(g, hit, a->dtype, l), axes, l);
    Node *share = expand_reduced(g, divide(g, G, count, l), a, axes, l);
    return (gs[0] = ir_where(g, hit, share, zeros_like(g, a, l), l)) != NULL;
}

/* ---- data movement ------------------------------------------------------- */

/* reshape is linear and invertible: reshape G back */
static bool grad_reshape(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = ir_reshape(g, G, n->src[0]->shape, n->loc)) != NULL;
}

/* permute(a, p): G permuted by the inverse permutation */
static bool grad_permute(Graph *g, Node *n, Node *G, Node **gs) {
    int inv[IR_MAX_RANK];
    for (int k = 0; k < n->shape.rank; k++)
        inv[n->attr.permute.perm[k]] = k;
    return (gs[0] = ir_permute(g, G, inv, n->loc)) != NULL;
}

/* broadcast copies a: its gradient sums the copies */
static bool grad_broadcast(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = ir_sum_to(g, G, n->src[0]->shape, n->loc)) != NULL;
}

/* Spreads x along axis k so that element j lands at j*step; the result has
 * (m-1)*step+1 elements on that axis, zeros in between. Works on a rank-4
 * view [pre, m, 1, post] padded to [pre, m, step, post], so no rank limit. */
static Node *spread_axis(Graph *g, Node *x, int k, int64_t step, SrcLoc loc) {
    if (!x) return NULL;
    Shape s = x->shape;
    int64_t m = s.dims[k], pre = 1, post = 1;
    for (int i = 0; i < k; i++)
        pre *= s.dims[i];
    for (int i = k + 1; i < s.rank; i++)
        post *= s.dims[i];
    int64_t d4[4] = {pre, m, 1, post};
    Node *v = ir_reshape(g, x, rt_shape_make(4, d4), loc);
    int64_t lo4[4] = {0, 0, 0, 0}, hi4[4] = {0, 0, step - 1, 0};
    v = ir_pad(g, v, lo4, hi4, 0.0, loc);
    int64_t d3[3] = {pre, m * step, post};
    v = ir_reshape(g, v, rt_shape_make(3, d3), loc);
    int64_t ext = (m - 1) * step + 1;
    int64_t st3[3] = {0, 0, 0}, sp3[3] = {pre, ext, post}, one3[3] = {1, 1, 1};
    v = ir_slice(g, v, st3, sp3, one3, loc);
    s.dims[k] = ext;
    return ir_reshape(g, v, s, loc);
}

/* a[start:stop:step]: G placed back at the selected positions, zeros elsewhere */
static bool grad_slice(Graph *g, Node *n, Node *G, Node **gs) {
    const Node *a = n->src[0];
    if (rt_shape_numel(&n->shape) == 0) return (gs[0] = zeros_like(g, a, n->loc)) != NULL;
    Node *x = G;
    for (int k = 0; k < n->shape.rank; k++) {
        int64_t step = n->attr.slice.step[k];
        if (step > 1 && n->shape.dims[k] > 1) x = spread_axis(g, x, k, step, n->loc);
    }
    if (!x) return false;
    int64_t lo[IR_MAX_RANK], hi[IR_MAX_RANK];
    for (int k = 0; k < a->shape.rank; k++) {
        lo[k] = n->attr.slice.start[k];
        hi[k] = a->shape.dims[k] - lo[k] - x->shape.dims[k];
    }
    return (gs[0] = ir_pad(g, x, lo, hi, 0.0, n->loc)) != NULL;
}

/* concat: each source gets its own slab of G back */
static bool grad_concat(Graph *g, Node *n, Node *G, Node **gs) {
    int axis = n->attr.concat.axis;
    int64_t start[IR_MAX_RANK], stop[IR_MAX_RANK], step[IR_MAX_RANK];
    for (int k = 0; k < n->shape.rank; k++) {
        start[k] = 0;
        stop[k] = n->shape.dims[k];
        step[k] = 1;
    }
    int64_t off = 0;
    for (int i = 0; i < n->nsrc; i++) {
        int64_t len = n->src[i]->shape.dims[axis];
        start[axis] = off;
        stop[axis] = off + len;
        off += len;
        if (!rt_dtype_is_float(n->src[i]->dtype)) continue;
        if (!(gs[i] = ir_slice(g, G, start, stop, step, n->loc))) return false;
    }
    return true;
}

/* gather rows of a: their gradients are added back into the rows they came from */
static bool grad_gather(Graph *g, Node *n, Node *G, Node **gs) {
    Node *a = n->src[0], *idx = n->src[1];
    return (gs[0] = ir_scatter_add(g, G, idx, a->shape.dims[0], n->loc)) != NULL;
}

/* scatter_add is linear in the updates: each update reads its row of G */
static bool grad_scatter_add(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = ir_gather(g, G, n->src[1], n->loc)) != NULL;
}

/* cumsum is linear: each element feeds every later running sum, so its
 * gradient is the running sum of G from the other end */
static bool grad_cumsum(Graph *g, Node *n, Node *G, Node **gs) {
    return (gs[0] = ir_cumsum(g, G, n->attr.order.axis, !n->attr.order.flag, n->loc)) != NULL;
}

/* pad (lo, hi >= 0): G without the padding */
static bool grad_pad(Graph *g, Node *n, Node *G, Node **gs) {
    const Node *a = n->src[0];
    int64_t start[IR_MAX_RANK], stop[IR_MAX_RANK], step[IR_MAX_RANK];
    for (int k = 0; k < a->shape.rank; k++) {
        start[k] = n->attr.pad.lo[k];
        stop[k] = start[k] + a->shape.dims[k];
        step[k] = 1;
    }
    return (gs[0] = ir_slice(g, G, start, stop, step, n->loc)) != NULL;
}

/* ---- contraction --------------------------------------------------------- */

/* C = A @ B:  dA = dC @ B^T,  dB = A^T @ dC  (batch dims ride along) */
static bool grad_matmul(Graph *g, Node *n, Node *G, Node **gs) {
    Node *a = n->src[0], *b = n->src[1];
    gs[0] = ir_matmul(g, G, transpose_last2(g, b, n->loc), n->loc);
    gs[1] = ir_matmul(g, transpose_last2(g, a, n->loc), G, n->loc);
    return gs[0] && gs[1];
}

/* ---- library calls (matrix calculus; the rules use differentiable ops only,
 * solve and inv included, so second derivatives come for free) ------------ */

static Node *mm(Graph *g, Node *a, Node *b, SrcLoc loc) {
    return ir_matmul(g, a, b, loc);
}

static Node *call2(Graph *g, OpKind op, Node *a, Node *b, SrcLoc loc) {
    Node *src[2] = {a, b};
    return a && b ? ir_call(g, op, src, loc) : NULL;
}

/* a's entries on or below the diagonal (strict: below only), others 0. */
static Node *tril(Graph *g, Node *a, bool strict, SrcLoc loc) {
    if (!a) return NULL;
    int r = a->shape.rank;
    Node *row = ir_iota(g, DT_I64, a->shape, r - 2, loc),
         *col = ir_iota(g, DT_I64, a->shape, r - 1, loc);
    Node *keep = ir_binary(g, strict ? OP_LT : OP_LE, col, row, loc);
    return ir_where(g, keep, a, zeros_like(g, a, loc), loc);
}

/* X = solve(A, B): gB = solve(A^T, G), gA = -gB X^T */
static bool grad_solve(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    gs[1] = call2(g, OP_SOLVE, transpose_last2(g, n->src[0], l), G, l);
    gs[0] = neg(g, mm(g, gs[1], transpose_last2(g, n, l), l), l);
    return gs[0] && gs[1];
}

/* Y = inv(A): gA = -Y^T G Y^T */
static bool grad_inv(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *yt = transpose_last2(g, n, l);
    return (gs[0] = neg(g, mm(g, mm(g, yt, G, l), yt, l), l)) != NULL;
}

/* d = det(A): gA = G d inv(A)^T (a singular A fails in inv, located) */
static bool grad_det(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *a = n->src[0];
    Shape s = n->shape; /* the batch, then [1, 1] */
    s.dims[s.rank++] = 1;
    s.dims[s.rank++] = 1;
    Node *gd = ir_reshape(g, mul(g, G, n, l), s, l);
    Node *it = transpose_last2(g, ir_call(g, OP_INV, &a, l), l);
    return (gs[0] = mul(g, ir_broadcast(g, gd, a->shape, l), it, l)) != NULL;
}

/* L = cholesky(A), A symmetric (Murray 2016; PyTorch's cholesky_backward):
 * P = tril(L^T G), Phi = (P + tril(P, -1)^T) / 2 (symmetric, half diagonal),
 * gA = L^-T Phi L^-1 (symmetric) = (solve(L^T, (solve(L^T, Phi))^T))^T. */
static bool grad_cholesky(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *lt = transpose_last2(g, n, l);
    Node *p = tril(g, mm(g, lt, G, l), false, l);
    Node *phi = mul(g, ir_binary(g, OP_ADD, p, transpose_last2(g, tril(g, p, true, l), l), l),
                    scalar_like(g, n, 0.5, l), l);
    Node *y = call2(g, OP_SOLVE, lt, phi, l);
    Node *z = call2(g, OP_SOLVE, lt, transpose_last2(g, y, l), l);
    return (gs[0] = transpose_last2(g, z, l)) != NULL;
}

/* (sign, l) = slogdet(A): dl = tr(inv(A) dA), so gA = gl inv(A)^T; the sign
 * is piecewise constant. G is the packed gradient of the tuple. */
static bool grad_slogdet(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *a = n->src[0];
    Node *gl = ir_tuple_part(g, n, G, 1, l);
    if (!gl) return false;
    Shape s = gl->shape; /* the batch, then [1, 1] */
    s.dims[s.rank++] = 1;
    s.dims[s.rank++] = 1;
    Node *it = transpose_last2(g, ir_call(g, OP_INV, &a, l), l);
    return (gs[0] = mul(g, ir_broadcast(g, ir_reshape(g, gl, s, l), a->shape, l), it, l)) != NULL;
}

/* (w, V) = eigh(A), A symmetric with distinct eigenvalues (PyTorch's
 * linalg_eigh backward): with M = V^T gV, gA = V (diag(gw) + K) V^T where
 * K[i,j] = (M[i,j] - M[j,i]) / 2 / (w[j] - w[i]) off the diagonal, 0 on it
 * (symmetric). Built from eigh's own results, so it differentiates again. */
static bool grad_eigh(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *w = ir_tuple_get(g, n, 0, l), *v = ir_tuple_get(g, n, 1, l);
    Node *gw = ir_tuple_part(g, n, G, 0, l), *gv = ir_tuple_part(g, n, G, 1, l);
    if (!w || !v || !gw || !gv) return false;
    Node *vt = transpose_last2(g, v, l);
    Node *m = mm(g, vt, gv, l);
    Node *skew =
        mul(g, ir_binary(g, OP_SUB, m, transpose_last2(g, m, l), l), scalar_like(g, n, 0.5, l), l);
    int r = v->shape.rank;
    Shape row = w->shape, col = w->shape; /* w as [.., 1, n] and as [.., n, 1] */
    row.dims[r - 2] = 1;
    row.dims[r - 1] = w->shape.dims[r - 2];
    row.rank = col.rank = r;
    col.dims[r - 2] = w->shape.dims[r - 2];
    col.dims[r - 1] = 1;
    Node *wj = ir_broadcast(g, ir_reshape(g, w, row, l), v->shape, l),
         *wi = ir_broadcast(g, ir_reshape(g, w, col, l), v->shape, l);
    Node *diag = ir_binary(g, OP_EQ, ir_iota(g, DT_I64, v->shape, r - 2, l),
                           ir_iota(g, DT_I64, v->shape, r - 1, l), l);
    Node *one = full_like(g, v, 1.0, l);
    Node *e = ir_where(g, diag, one, ir_binary(g, OP_SUB, wj, wi, l), l); /* no 0 / 0 */
    Node *gwd = ir_binary(g, OP_MUL, ir_broadcast(g, ir_reshape(g, gw, row, l), v->shape, l),
                          ir_cast(g, diag, v->dtype, l), l);
    Node *k = ir_where(g, diag, gwd, divide(g, skew, e, l), l);
    return (gs[0] = mm(g, mm(g, v, k, l), vt, l)) != NULL;
}

static Node *triu(Graph *g, Node *a, SrcLoc loc) {
    return transpose_last2(g, tril(g, transpose_last2(g, a, loc), false, loc), loc);
}

static Node *diag_part(Graph *g, Node *a, SrcLoc loc) {
    int r = a->shape.rank;
    Node *eq = ir_binary(g, OP_EQ, ir_iota(g, DT_I64, a->shape, r - 2, loc),
                         ir_iota(g, DT_I64, a->shape, r - 1, loc), loc);
    return ir_where(g, eq, a, zeros_like(g, a, loc), loc);
}

/* v [.., k] as [.., 1, k] (a row, scaling columns) or [.., k, 1] (a column). */
static Node *as_row(Graph *g, Node *v, bool column, SrcLoc loc) {
    Shape s = v->shape;
    s.dims[s.rank] = s.dims[s.rank - 1];
    s.dims[s.rank - 1] = 1;
    if (column) {
        s.dims[s.rank - 1] = s.dims[s.rank];
        s.dims[s.rank] = 1;
    }
    s.rank++;
    return ir_reshape(g, v, s, loc);
}

/* (Q, R) = qr(A), m >= n (PyTorch's linalg_qr_backward, reduced mode):
 * B = gR R^T - Q^T gQ, S = triu(B) + triu(B)^T - diag(B),
 * gA = (gQ + Q S) R^-T = (solve(R, (gQ + Q S)^T))^T. A wide A (m < n) has
 * no such rule: a located error. */
static bool grad_qr(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    const Shape *as = &n->src[0]->shape;
    if (as->dims[as->rank - 2] < as->dims[as->rank - 1]) {
        diag_error(g->diags, l,
                   "grad: qr's derivative needs a square or tall matrix (m >= n), got [.., %lld, "
                   "%lld]",
                   (long long)as->dims[as->rank - 2], (long long)as->dims[as->rank - 1]);
        return false;
    }
    Node *q = ir_tuple_get(g, n, 0, l), *r = ir_tuple_get(g, n, 1, l);
    Node *gq = ir_tuple_part(g, n, G, 0, l), *gr = ir_tuple_part(g, n, G, 1, l);
    if (!q || !r || !gq || !gr) return false;
    Node *b = ir_binary(g, OP_SUB, mm(g, gr, transpose_last2(g, r, l), l),
                        mm(g, transpose_last2(g, q, l), gq, l), l);
    Node *u = triu(g, b, l);
    Node *sm = ir_binary(g, OP_SUB, ir_binary(g, OP_ADD, u, transpose_last2(g, u, l), l),
                         diag_part(g, b, l), l);
    Node *y = ir_binary(g, OP_ADD, gq, mm(g, q, sm, l), l);
    return (gs[0] = transpose_last2(g, call2(g, OP_SOLVE, r, transpose_last2(g, y, l), l), l)) !=
           NULL;
}

/* (U, S, Vt) = svd(A), thin, distinct nonzero singular values (PyTorch's
 * svd_backward): with J = U^T gU, K = V^T gV, E[i,j] = s_j^2 - s_i^2,
 * gA = U [((J - J^T) / E) diag(S) + diag(S) ((K - K^T) / E) + diag(gS)] Vt
 *    + (gU - U J) diag(1/S) Vt + U diag(1/S) (gVt - (gVt V) Vt). */
static bool grad_svd(Graph *g, Node *n, Node *G, Node **gs) {
    SrcLoc l = n->loc;
    Node *u = ir_tuple_get(g, n, 0, l), *s = ir_tuple_get(g, n, 1, l),
         *vt = ir_tuple_get(g, n, 2, l);
    Node *gu = ir_tuple_part(g, n, G, 0, l), *gsv = ir_tuple_part(g, n, G, 1, l),
         *gvt = ir_tuple_part(g, n, G, 2, l);
    if (!u || !s || !vt || !gu || !gsv || !gvt) return false;
    Node *v = transpose_last2(g, vt, l), *gv = transpose_last2(g, gvt, l);
    Node *j = mm(g, transpose_last2(g, u, l), gu, l), *k = mm(g, vt, gv, l);
    Node *srow = as_row(g, s, false, l), *scol = as_row(g, s, true, l);
    Node *s2r = mul(g, srow, srow, l), *s2c = mul(g, scol, scol, l);
    Node *e = ir_binary(g, OP_SUB, s2r, s2c, l); /* [.., k, k] by broadcasting */
    int r = e->shape.rank;
    Node *eq = ir_binary(g, OP_EQ, ir_iota(g, DT_I64, e->shape, r - 2, l),
                         ir_iota(g, DT_I64, e->shape, r - 1, l), l);
    e = ir_where(g, eq, full_like(g, e, 1.0, l), e, l); /* no 0 / 0 on the diagonal */
    Node *fj = divide(g, ir_binary(g, OP_SUB, j, transpose_last2(g, j, l), l), e, l);
    Node *fk = divide(g, ir_binary(g, OP_SUB, k, transpose_last2(g, k, l), l), e, l);
    Node *gsd = ir_where(g, eq, ir_broadcast(g, as_row(g, gsv, false, l), e->shape, l),
                         zeros_like(g, e, l), l);
    Node *core = ir_binary(
        g, OP_ADD, ir_binary(g, OP_ADD, mul(g, fj, srow, l), mul(g, scol, fk, l), l), gsd, l);
    Node *ga = mm(g, mm(g, u, core, l), vt, l);
    Node *inv_r = divide(g, full_like(g, srow, 1.0, l), srow, l),
         *inv_c = divide(g, full_like(g, scol, 1.0, l), scol, l);
    Node *left = mm(g, mul(g, ir_binary(g, OP_SUB, gu, mm(g, u, j, l), l), inv_r, l), vt, l);
    Node *right =
        mm(g, mul(g, u, inv_r, l), ir_binary(g, OP_SUB, gvt, mm(g, mm(g, gvt, v, l), vt, l), l), l);
    (void)inv_c;
    return (gs[0] = ir_binary(g, OP_ADD, ga, ir_binary(g, OP_ADD, left, right, l), l)) != NULL;
}

/* ---- the table ----------------------------------------------------------- */

#define RULE_INPUT GRAD_NONE
#define RULE_CONST GRAD_NONE
#define RULE_IOTA GRAD_NONE
#define RULE_NEG GRAD_RULE(grad_neg)
#define RULE_ABS GRAD_RULE(grad_abs)
#define RULE_SIGN GRAD_NONE
#define RULE_FLOOR GRAD_NONE
#define RULE_EXP GRAD_RULE(grad_exp)
#define RULE_LOG GRAD_RULE(grad_log)
#define RULE_SQRT GRAD_RULE(grad_sqrt)
#define RULE_SIN GRAD_RULE(grad_sin)
#define RULE_COS GRAD_RULE(grad_cos)
#define RULE_ERF GRAD_RULE(grad_erf)
#define RULE_NOT GRAD_NONE
#define RULE_CAST GRAD_RULE(grad_cast)
#define RULE_STOP_GRAD GRAD_NONE
#define RULE_ADD GRAD_RULE(grad_add)
#define RULE_SUB GRAD_RULE(grad_sub)
#define RULE_MUL GRAD_RULE(grad_mul)
#define RULE_DIV GRAD_RULE(grad_div)
#define RULE_MOD GRAD_NONE
#define RULE_POW GRAD_RULE(grad_pow)
#define RULE_MAX GRAD_RULE(grad_max)
#define RULE_MIN GRAD_RULE(grad_min)
#define RULE_LT GRAD_NONE
#define RULE_LE GRAD_NONE
#define RULE_EQ GRAD_NONE
#define RULE_NE GRAD_NONE
#define RULE_AND GRAD_NONE
#define RULE_OR GRAD_NONE
#define RULE_WHERE GRAD_RULE(grad_where)
#define RULE_SUM GRAD_RULE(grad_sum)
#define RULE_REDUCE_MAX GRAD_RULE(grad_reduce_extreme)
#define RULE_REDUCE_MIN GRAD_RULE(grad_reduce_extreme)
#define RULE_ARGMAX GRAD_NONE
#define RULE_RESHAPE GRAD_RULE(grad_reshape)
#define RULE_PERMUTE GRAD_RULE(grad_permute)
#define RULE_BROADCAST GRAD_RULE(grad_broadcast)
#define RULE_SLICE GRAD_RULE(grad_slice)
#define RULE_CONCAT GRAD_RULE(grad_concat)
#define RULE_GATHER GRAD_RULE(grad_gather)
#define RULE_SCATTER_ADD GRAD_RULE(grad_scatter_add)
#define RULE_PAD GRAD_RULE(grad_pad)
#define RULE_MATMUL GRAD_RULE(grad_matmul)
#define RULE_CUMSUM GRAD_RULE(grad_cumsum)
#define RULE_ARGSORT GRAD_NONE
#define RULE_COMPONENTS GRAD_NONE
#define RULE_SOLVE GRAD_RULE(grad_solve)
#define RULE_CHOLESKY GRAD_RULE(grad_cholesky)
#define RULE_INV GRAD_RULE(grad_inv)
#define RULE_DET GRAD_RULE(grad_det)
#define RULE_SLOGDET GRAD_RULE(grad_slogdet)
#define RULE_QR GRAD_RULE(grad_qr)
#define RULE_SVD GRAD_RULE(grad_svd)
#define RULE_EIGH GRAD_RULE(grad_eigh)
#define RULE_RNG_UNIFORM GRAD_NONE
#define RULE_RNG_NORMAL GRAD_NONE
#define RULE_FRESH_SEED GRAD_NONE

const GradRule pass_grad_rules[OP_COUNT] = {
#define X(id, name, arity, shape, flags, doc) [OP_##id] = RULE_##id,
#include "../ir/ops.def"
#undef X
};

_Static_assert(sizeof pass_grad_rules / sizeof pass_grad_rules[0] == OP_COUNT,
               "pass_grad_rules must cover every op in ops.def");
