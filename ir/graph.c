/* Graph construction: the raw node constructor and every checked builder.
 *
 * A builder (1) returns NULL silently when a source is NULL, so one error does
 * not cascade; (2) brings its operands into the primitive form the op table
 * wants (numpy broadcasting via BROADCAST nodes, dtype promotion via CAST
 * nodes, bool operands of arithmetic to f32); (3) runs the op's rule
 * (shape.c: ir_infer) on the final node and reports any violation as a
 * diagnostic at loc. Nodes live in the graph's arena; g->nodes only grows, so
 * creation order is a topological order. */
#include <math.h>
#include <string.h>

#include "../runtime/linalg.h"
#include "ir.h"
#include "op_cases.h"
#include "shape.h"

Graph *ir_graph_new(Arena *a, DiagList *d, const char *name) {
    Graph *g = arena_alloc(a, sizeof *g);
    if (!g) return NULL;
    g->arena = a;
    g->diags = d ? d : diag_list_new(a, NULL); /* builders always have somewhere to report */
    g->name = arena_strdup(a, name ? name : "main");
    return g;
}

/* Room for one more element in an arena-backed array of the graph. */
#define grow(a, pp, n, cap) arena_grow((a), (pp), (cap), (size_t)(n) + 1, 16)

int ir_graph_add_output(Graph *g, Node *n) {
    if (!g || !n) return -1;
    if (!grow(g->arena, &g->outputs, g->noutputs, &g->cap_outputs)) {
        diag_error(g->diags, n->loc, "out of memory");
        return -1;
    }
    g->outputs[g->noutputs] = n;
    return g->noutputs++;
}

Node *ir_node_new(Graph *g, OpKind op, DType dt, Shape shape, Node *const *src, int nsrc,
                  const Attr *attr, SrcLoc loc) {
    if (!g) return NULL;
    for (int i = 0; i < nsrc; i++)
        if (!src[i]) return NULL;
    if ((unsigned)op >= OP_COUNT || (ir_ops[op].arity >= 0 ? nsrc != ir_ops[op].arity : nsrc < 1)) {
        diag_error(g->diags, loc, "internal error: %s built with %d operands", ir_op_name(op),
                   nsrc);
        return NULL;
    }
    Node *n = arena_alloc(g->arena, sizeof *n);
    Node **s = nsrc ? arena_alloc(g->arena, sizeof(Node *) * (size_t)nsrc) : NULL;
    int cap = (int)g->cap;
    bool ok = n && (!nsrc || s) && grow(g->arena, &g->nodes, (int)g->nnodes, &cap);
    if (ok && op == OP_INPUT) ok = grow(g->arena, &g->inputs, g->ninputs, &g->cap_inputs);
    if (!ok) {
        diag_error(g->diags, loc, "out of memory");
        return NULL;
    }
    g->cap = (uint32_t)cap;
    if (nsrc) memcpy(s, src, sizeof(Node *) * (size_t)nsrc);
    n->id = g->nnodes;
    n->op = op;
    n->dtype = dt;
    n->shape = shape;
    n->nsrc = nsrc;
    n->src = s;
    if (attr) n->attr = *attr;
    n->loc = loc;
    g->nodes[g->nnodes++] = n;
    if (op == OP_INPUT) {
        n->attr.input.index = g->ninputs;
        g->inputs[g->ninputs++] = n;
    }
    return n;
}

/* Runs the op's rule, reporting its message at loc. */
static bool check(Graph *g, OpKind op, DType *dt, Shape *shape, Node *const *src, int nsrc,
                  const Attr *attr, SrcLoc loc) {
    char err[512];
    if (!ir_infer(op, src, nsrc, attr, dt, shape, err, sizeof err)) {
        diag_error(g->diags, loc, "%s", err);
        return false;
    }
    return true;
}

/* Runs the op's rule and creates the node. */
static Node *make(Graph *g, OpKind op, DType dt, Shape shape, Node *const *src, int nsrc,
                  const Attr *attr, SrcLoc loc) {
    for (int i = 0; i < nsrc; i++)
        if (!src[i]) return NULL;
    Attr zero;
    memset(&zero, 0, sizeof zero);
    if (!attr) attr = &zero;
    if (!check(g, op, &dt, &shape, src, nsrc, attr, loc)) return NULL;
    return ir_node_new(g, op, dt, shape, src, nsrc, attr, loc);
}

static const char *tstr(const Node *n, char *buf, size_t len) {
    return ir_type_str(n->dtype, &n->shape, buf, len);
}

static bool shape_ok(Graph *g, const Shape *s, const char *what, SrcLoc loc) {
    if (s->rank < 0 || s->rank > IR_MAX_RANK) {
        diag_error(g->diags, loc, "%s: rank %d out of range (0..%d)", what, s->rank, IR_MAX_RANK);
        return false;
    }
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 0) {
            diag_error(g->diags, loc, "%s: negative dimension %lld", what, (long long)s->dims[i]);
            return false;
        }
    }
    return true;
}

static bool is_float(DType t) {
    return t == DT_F32 || t == DT_F64;
}

static bool is_int(DType t) {
    return t == DT_I32 || t == DT_I64;
}

DType ir_promote(DType a, DType b) {
    if (a == b) return a;
    if (!ir_dtype_arith(a)) return a; /* f16/bf16: no arithmetic; the op's rule reports it */
    if (!ir_dtype_arith(b)) return b;
    if (is_float(a) || is_float(b)) return (a == DT_F64 || b == DT_F64) ? DT_F64 : DT_F32;
    if (is_int(a) || is_int(b)) return (a == DT_I64 || b == DT_I64) ? DT_I64 : DT_I32;
    return DT_BOOL;
}

/* ---- leaves ---------------------------------------------------------------------- */

Node *ir_input(Graph *g, DType dt, Shape s, const char *name, SrcLoc loc) {
    if (!g) return NULL;
    if ((unsigned)dt >= DT_COUNT) {
        diag_error(g->diags, loc, "input: bad dtype %d", (int)dt);
        return NULL;
    }
    if (!shape_ok(g, &s, "input", loc)) return NULL;
    Node *n = make(g, OP_INPUT, dt, s, NULL, 0, NULL, loc);
    if (n && name) n->name = arena_strdup(g->arena, name);
    return n;
}

/* ivalue is value when that is an integer in int64's range, else 0, which
 * shape inference refuses for an integer dtype (value != ivalue). */
Node *ir_const(Graph *g, DType dt, Shape s, double value, SrcLoc loc) {
    if (!g || !shape_ok(g, &s, "const", loc)) return NULL;
    bool whole =
        value == floor(value) && value >= -9223372036854775808.0 && value < 9223372036854775808.0;
    Attr at = {.constant = {value, whole ? (int64_t)value : 0}};
    return make(g, OP_CONST, dt, s, NULL, 0, &at, loc);
}

Node *ir_scalar(Graph *g, DType dt, double value, SrcLoc loc) {
    return ir_const(g, dt, rt_shape_scalar(), value, loc);
}

Node *ir_const_int(Graph *g, DType dt, Shape s, int64_t value, SrcLoc loc) {
    if (!g || !shape_ok(g, &s, "const", loc)) return NULL;
    Attr at = {.constant = {(double)value, value}};
    return make(g, OP_CONST, dt, s, NULL, 0, &at, loc);
}

Node *ir_scalar_int(Graph *g, DType dt, int64_t value, SrcLoc loc) {
    return ir_const_int(g, dt, rt_shape_scalar(), value, loc);
}

Node *ir_iota(Graph *g, DType dt, Shape s, int axis, SrcLoc loc) {
    if (!g || !shape_ok(g, &s, "iota", loc)) return NULL;
    Attr at = {.iota = {axis}};
    return make(g, OP_IOTA, dt, s, NULL, 0, &at, loc);
}

/* ---- elementwise ---------------------------------------------------------------- */

Node *ir_cast(Graph *g, Node *a, DType to, SrcLoc loc) {
    if (!g || !a) return NULL;
    if (a->dtype == to) return a;
    return make(g, OP_CAST, to, a->shape, &a, 1, NULL, loc);
}

Node *ir_unary(Graph *g, OpKind op, Node *a, SrcLoc loc) {
    if (!g || !a) return NULL;
    if ((unsigned)op >= OP_COUNT || !(ir_ops[op].flags & OPF_EW) || ir_ops[op].arity != 1 ||
        op == OP_CAST) {
        diag_error(g->diags, loc, "internal error: ir_unary: '%s' is not a unary elementwise op",
                   ir_op_name(op));
        return NULL;
    }
    if (op == OP_NOT && a->dtype != DT_BOOL && ir_dtype_arith(a->dtype))
        a = ir_cast(g, a, DT_BOOL, loc);
    if ((op == OP_NEG || op == OP_ABS || op == OP_SIGN) && a->dtype == DT_BOOL)
        a = ir_cast(g, a, DT_F32, loc);
    if (!a) return NULL;
    return make(g, op, a->dtype, a->shape, &a, 1, NULL, loc);
}

Node *ir_broadcast(Graph *g, Node *a, Shape s, SrcLoc loc) {
    if (!g || !a) return NULL;
    if (!shape_ok(g, &s, "broadcast", loc)) return NULL;
    if (rt_shape_eq(&a->shape, &s)) return a;
    return make(g, OP_BROADCAST, a->dtype, s, &a, 1, NULL, loc);
}

Node *ir_binary(Graph *g, OpKind op, Node *a, Node *b, SrcLoc loc) {
    if (!g || !a || !b) return NULL;
    if ((unsigned)op >= OP_COUNT || !(ir_ops[op].flags & OPF_EW) || ir_ops[op].arity != 2) {
        diag_error(g->diags, loc, "internal error: ir_binary: '%s' is not a binary elementwise op",
                   ir_op_name(op));
        return NULL;
    }
    const char *nm = ir_ops[op].name;
    char b1[96], b2[96];
    if (!ir_dtype_arith(a->dtype) || !ir_dtype_arith(b->dtype)) {
        diag_error(g->diags, loc, "%s: unsupported operands %s and %s", nm, tstr(a, b1, sizeof b1),
                   tstr(b, b2, sizeof b2));
        return NULL;
    }
    DType dt = ir_promote(a->dtype, b->dtype);
    bool to_bool = (ir_ops[op].flags & OPF_CMP) != 0;
    if (op == OP_AND || op == OP_OR)
        dt = DT_BOOL;
    else if (!to_bool && dt == DT_BOOL)
        dt = DT_F32; /* bool arithmetic counts in f32 */
    if ((ir_ops[op].flags & OPF_FLOATONLY) && !is_float(dt)) {
        diag_error(g->diags, loc, "%s: needs floating-point operands, got %s and %s", nm,
                   tstr(a, b1, sizeof b1), tstr(b, b2, sizeof b2));
        return NULL;
    }
    Shape s;
    if (!ir_broadcast_shapes(&a->shape, &b->shape, &s)) {
        diag_error(g->diags, loc, "%s: shapes cannot be broadcast together: %s and %s", nm,
                   tstr(a, b1, sizeof b1), tstr(b, b2, sizeof b2));
        return NULL;
    }
    a = ir_broadcast(g, ir_cast(g, a, dt, loc), s, loc);
    b = ir_broadcast(g, ir_cast(g, b, dt, loc), s, loc);
    if (!a || !b) return NULL;
    Node *src[2] = {a, b};
    return make(g, op, dt, s, src, 2, NULL, loc);
}

Node *ir_where(Graph *g, Node *c, Node *a, Node *b, SrcLoc loc) {
    if (!g || !c || !a || !b) return NULL;
    char b1[96], b2[96], b3[96];
    if (!ir_dtype_arith(a->dtype) || !ir_dtype_arith(b->dtype) || !ir_dtype_arith(c->dtype)) {
        diag_error(g->diags, loc, "where: unsupported operands %s, %s and %s",
                   tstr(c, b1, sizeof b1), tstr(a, b2, sizeof b2), tstr(b, b3, sizeof b3));
        return NULL;
    }
    DType dt = ir_promote(a->dtype, b->dtype);
    Shape s;
    if (!ir_broadcast_shapes(&a->shape, &b->shape, &s) || !ir_broadcast_shapes(&s, &c->shape, &s)) {
        diag_error(g->diags, loc, "where: shapes cannot be broadcast together: %s, %s and %s",
                   tstr(c, b1, sizeof b1), tstr(a, b2, sizeof b2), tstr(b, b3, sizeof b3));
        return NULL;
    }
    c = ir_broadcast(g, ir_cast(g, c, DT_BOOL, loc), s, loc);
    a = ir_broadcast(g, ir_cast(g, a, dt, loc), s, loc);
    b = ir_broadcast(g, ir_cast(g, b, dt, loc), s, loc);
    if (!a || !b || !c) return NULL;
    Node *src[3] = {c, a, b};
    return make(g, OP_WHERE, dt, s, src, 3, NULL, loc);
}

/* ---- reductions and movement -------------------------------------------------------- */

Node *ir_reduce(Graph *g, OpKind op, Node *a, uint32_t axes, SrcLoc loc) {
    if (!g || !a) return NULL;
    if ((unsigned)op >= OP_COUNT || !(ir_ops[op].flags & OPF_RED)) {
        diag_error(g->diags, loc, "internal error: ir_reduce: '%s' is not a reduction",
                   ir_op_name(op));
        return NULL;
    }
    /* integer and bool sums accumulate and return i64, as numpy and PyTorch
       (an i32 sum would wrap silently); bool sums count */
    if (op == OP_SUM && !rt_dtype_is_float(a->dtype) && a->dtype != DT_I64)
        a = ir_cast(g, a, DT_I64, loc);
    if (!a) return NULL;
    Attr at = {.reduce = {axes}};
    return make(g, op, a->dtype, a->shape, &a, 1, &at, loc);
}

Node *ir_reshape(Graph *g, Node *a, Shape s, SrcLoc loc) {
    if (!g || !a) return NULL;
    if (!shape_ok(g, &s, "reshape", loc)) return NULL;
    if (rt_shape_eq(&a->shape, &s)) return a;
    return make(g, OP_RESHAPE, a->dtype, s, &a, 1, NULL, loc);
}

Node *ir_permute(Graph *g, Node *a, const int *perm, SrcLoc loc) {
    if (!g || !a) return NULL;
    Attr at;
    memset(&at, 0, sizeof at);
    bool identity = true;
    for (int i = 0; i < a->shape.rank; i++) {
        at.permute.perm[i] = perm[i];
        identity = identity && perm[i] == i;
    }
    if (identity) {
        DType d;
        Shape s;
        return check(g, OP_PERMUTE, &d, &s, &a, 1, &at, loc) ? a : NULL;
    }
    return make(g, OP_PERMUTE, a->dtype, a->shape, &a, 1, &at, loc);
}

Node *ir_slice(Graph *g, Node *a, const int64_t *start, const int64_t *stop, const int64_t *step,
               SrcLoc loc) {
    if (!g || !a) return NULL;
    Attr at;
    memset(&at, 0, sizeof at);
    Shape s = a->shape;
    char b1[96];
    for (int i = 0; i < a->shape.rank; i++) {
        int64_t d = a->shape.dims[i];
        if (step[i] < 1) {
            diag_error(g->diags, loc, "slice: axis %d: step %lld must be >= 1", i,
                       (long long)step[i]);
            return NULL;
        }
        if (start[i] < 0 || start[i] > stop[i] || stop[i] > d) {
            diag_error(g->diags, loc, "slice: axis %d: range %lld:%lld out of bounds for %s", i,
                       (long long)start[i], (long long)stop[i], tstr(a, b1, sizeof b1));
            return NULL;
        }
        at.slice.start[i] = start[i];
        /* ceil((stop - start) / step) without forming stop - start + step - 1,
           which overflows for a huge step */
        s.dims[i] = stop[i] == start[i] ? 0 : (stop[i] - start[i] - 1) / step[i] + 1;
        /* with at most one element the step is never taken: 1 keeps every
           step * stride product a backend forms inside the tensor's size */
        at.slice.step[i] = s.dims[i] <= 1 ? 1 : step[i];
    }
    return make(g, OP_SLICE, a->dtype, s, &a, 1, &at, loc);
}

Node *ir_concat(Graph *g, Node *const *xs, int n, int axis, SrcLoc loc) {
    if (!g) return NULL;
    if (n < 1) {
        diag_error(g->diags, loc, "concat: needs at least one operand");
        return NULL;
    }
    DType dt = xs[0] ? xs[0]->dtype : DT_F32;
    for (int i = 0; i < n; i++) {
        if (!xs[i]) return NULL;
        dt = ir_promote(dt, xs[i]->dtype);
    }
    if (n == 1) {
        Attr at = {.concat = {axis}};
        DType d;
        Shape s;
        return check(g, OP_CONCAT, &d, &s, xs, 1, &at, loc) ? xs[0] : NULL;
    }
    Node **src = arena_alloc(g->arena, sizeof(Node *) * (size_t)n);
    if (!src) {
        diag_error(g->diags, loc, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!(src[i] = ir_cast(g, xs[i], dt, loc))) return NULL;
    Attr at = {.concat = {axis}};
    return make(g, OP_CONCAT, dt, src[0]->shape, src, n, &at, loc);
}

Node *ir_gather(Graph *g, Node *data, Node *idx, SrcLoc loc) {
    if (!g || !data || !idx) return NULL;
    Node *src[2] = {data, idx};
    return make(g, OP_GATHER, data->dtype, data->shape, src, 2, NULL, loc);
}

Node *ir_scatter_add(Graph *g, Node *upd, Node *idx, int64_t rows, SrcLoc loc) {
    if (!g || !upd || !idx) return NULL;
    char b1[96], b2[96];
    if (rows < 0 || upd->shape.rank < idx->shape.rank ||
        upd->shape.rank - idx->shape.rank + 1 > IR_MAX_RANK) {
        diag_error(g->diags, loc, "scatter_add: updates %s do not fit indices %s",
                   tstr(upd, b1, sizeof b1), tstr(idx, b2, sizeof b2));
        return NULL;
    }
    Shape s = {.rank = upd->shape.rank - idx->shape.rank + 1};
    s.dims[0] = rows;
    for (int i = 1; i < s.rank; i++)
        s.dims[i] = upd->shape.dims[idx->shape.rank + i - 1];
    Node *src[2] = {upd, idx};
    return make(g, OP_SCATTER_ADD, upd->dtype, s, src, 2, NULL, loc);
}

static Node *order_op(Graph *g, OpKind op, Node *a, int axis, bool flag, SrcLoc loc) {
    if (!g || !a) return NULL;
    Attr at;
    memset(&at, 0, sizeof at);
    at.order.axis = axis;
    at.order.flag = flag;
    return make(g, op, a->dtype, a->shape, &a, 1, &at, loc);
}

Node *ir_cumsum(Graph *g, Node *a, int axis, bool reverse, SrcLoc loc) {
    return order_op(g, OP_CUMSUM, a, axis, reverse, loc);
}

Node *ir_argsort(Graph *g, Node *a, int axis, bool descending, SrcLoc loc) {
    return order_op(g, OP_ARGSORT, a, axis, descending, loc);
}

Node *ir_components(Graph *g, Node *mask, SrcLoc loc) {
    return order_op(g, OP_COMPONENTS, mask, 0, false, loc);
}

Node *ir_pad(Graph *g, Node *a, const int64_t *lo, const int64_t *hi, double value, SrcLoc loc) {
    if (!g || !a) return NULL;
    Attr at;
    memset(&at, 0, sizeof at);
    for (int i = 0; i < a->shape.rank; i++) {
        at.pad.lo[i] = lo[i];
        at.pad.hi[i] = hi[i];
    }
    at.pad.value = value;
    return make(g, OP_PAD, a->dtype, a->shape, &a, 1, &at, loc);
}

/* rank >= 2; batch dims must match, except that a rank-2 operand is shared
 * across the other's batch (x[B,T,C] @ W[C,D]), the common layer case. */
Node *ir_matmul(Graph *g, Node *a, Node *b, SrcLoc loc) {
    if (!g || !a || !b) return NULL;
    char b1[96], b2[96];
    int ra = a->shape.rank, rb = b->shape.rank;
    if (ra < 2 || rb < 2) {
        diag_error(g->diags, loc, "matmul: operands must have rank >= 2: %s @ %s",
                   tstr(a, b1, sizeof b1), tstr(b, b2, sizeof b2));
        return NULL;
    }
    if (!ir_dtype_arith(a->dtype) || !ir_dtype_arith(b->dtype)) {
        diag_error(g->diags, loc, "matmul: unsupported operands %s @ %s", tstr(a, b1, sizeof b1),
                   tstr(b, b2, sizeof b2));
        return NULL;
    }
    if (a->shape.dims[ra - 1] != b->shape.dims[rb - 2]) {
        diag_error(g->diags, loc, "matmul: inner dimensions differ: %s @ %s",
                   tstr(a, b1, sizeof b1), tstr(b, b2, sizeof b2));
        return NULL;
    }
    bool same_batch = ra == rb;
    for (int i = 0; same_batch && i < ra - 2; i++)
        same_batch = a->shape.dims[i] == b->shape.dims[i];
    if (!same_batch && ra != 2 && rb != 2) {
        diag_error(g->diags, loc, "matmul: batch dimensions differ: %s @ %s",
                   tstr(a, b1, sizeof b1), tstr(b, b2, sizeof b2));
        return NULL;
    }
    DType dt = ir_promote(a->dtype, b->dtype);
    if (dt == DT_BOOL) dt = DT_F32;
    a = ir_cast(g, a, dt, loc);
    b = ir_cast(g, b, dt, loc);
    if (!a || !b) return NULL;
    if (!same_batch && rb == 2) {
        /* (..., M, K) @ (K, N): fold the batch into M. */
        Shape flat = {.rank = 2};
        flat.dims[0] = 1;
        for (int i = 0; i < ra - 1; i++)
            flat.dims[0] *= a->shape.dims[i];
        flat.dims[1] = a->shape.dims[ra - 1];
        Shape out = a->shape;
        out.dims[ra - 1] = b->shape.dims[1];
        Node *src[2] = {ir_reshape(g, a, flat, loc), b};
        if (!src[0]) return NULL;
        return ir_reshape(g, make(g, OP_MATMUL, dt, flat, src, 2, NULL, loc), out, loc);
    }
    if (!same_batch && ra == 2) {
        /* (M, K) @ (..., K, N): share a across b's batch. */
        Shape s = b->shape;
        s.dims[rb - 2] = a->shape.dims[0];
        s.dims[rb - 1] = a->shape.dims[1];
        a = ir_broadcast(g, a, s, loc);
    }
    Node *src[2] = {a, b};
    return make(g, OP_MATMUL, dt, a ? a->shape : b->shape, src, 2, NULL, loc);
}

/* ---- library calls and tuples ------------------------------------------------------------ */

Node *ir_call(Graph *g, OpKind op, Node *const *src, SrcLoc loc) {
    if (!(ir_ops[op].flags & OPF_CALL)) {
        diag_error(g->diags, loc, "internal error: %s is not a library call", ir_op_name(op));
        return NULL;
    }
    Shape s = {0};
    return make(g, op, DT_F32, s, src, ir_ops[op].arity, NULL, loc);
}

IrCallDims ir_call_dims(const Node *n) {
    IrCallDims d = {0};
    switch (n->op) {
    case OP_SOLVE:
        d.fn = RT_LA_SOLVE;
        break;
    case OP_CHOLESKY:
        d.fn = RT_LA_CHOLESKY;
        break;
    case OP_INV:
        d.fn = RT_LA_INV;
        break;
    case OP_DET:
        d.fn = RT_LA_DET;
        break;
    case OP_SLOGDET:
        d.fn = RT_LA_SLOGDET;
        break;
    case OP_QR:
        d.fn = RT_LA_QR;
        break;
    case OP_SVD:
        d.fn = RT_LA_SVD;
        break;
    case OP_EIGH:
        d.fn = RT_LA_EIGH;
        break;
    IR_CASES_NOT_CALL:
        return d;
    }
    const Shape *a = &n->src[0]->shape;
    d.m = a->dims[a->rank - 2];
    d.n = a->dims[a->rank - 1];
    d.batch = 1;
    for (int i = 0; i < a->rank - 2; i++)
        d.batch *= a->dims[i];
    d.k = n->op == OP_SOLVE ? n->src[1]->shape.dims[a->rank - 1] : 0;
    return d;
}

Node *ir_tuple_get(Graph *g, Node *t, int i, SrcLoc loc) {
    return ir_tuple_part(g, t, t, i, loc);
}

Node *ir_tuple_part(Graph *g, const Node *t, Node *packed, int i, SrcLoc loc) {
    if (!t || !packed) return NULL;
    Shape res[IR_MAX_RESULTS];
    int n = ir_call_results(t, res);
    if (i < 0 || i >= n || !rt_shape_eq(&packed->shape, &t->shape)) {
        diag_error(g->diags, loc, "internal error: %s has no result %d of that shape",
                   ir_op_name(t->op), i);
        return NULL;
    }
    if (n == 1) return packed;
    int64_t off = 0;
    for (int j = 0; j < i; j++)
        off += rt_shape_numel(&res[j]);
    int64_t start = off, stop = off + rt_shape_numel(&res[i]), step = 1;
    return ir_reshape(g, ir_slice(g, packed, &start, &stop, &step, loc), res[i], loc);
}

/* ---- random ---------------------------------------------------------------------- */

/* Seeds and counters are i64 scalars; i32 ones are widened. */
static Node *i64_scalar(Graph *g, Node *n, const char *op, const char *what, SrcLoc loc) {
    if (!n) return NULL;
    char b1[96];
    if (n->shape.rank != 0 || !is_int(n->dtype)) {
        diag_error(g->diags, loc, "%s: %s must be an integer scalar, got %s", op, what,
                   tstr(n, b1, sizeof b1));
        return NULL;
    }
    return ir_cast(g, n, DT_I64, loc);
}

Node *ir_rng(Graph *g, OpKind op, DType dt, Shape s, Node *seed, Node *offset, uint32_t stream,
             SrcLoc loc) {
    if (!g || !seed || !offset) return NULL;
    if (op != OP_RNG_UNIFORM && op != OP_RNG_NORMAL) {
        diag_error(g->diags, loc, "internal error: ir_rng: '%s' is not an rng op", ir_op_name(op));
        return NULL;
    }
    if (!shape_ok(g, &s, ir_ops[op].name, loc)) return NULL;
    Node *src[2] = {i64_scalar(g, seed, ir_ops[op].name, "seed", loc),
                    i64_scalar(g, offset, ir_ops[op].name, "offset", loc)};
    if (!src[0] || !src[1]) return NULL;
    Attr at;
    memset(&at, 0, sizeof at);
    at.rng.stream = stream;
    return make(g, op, dt, s, src, 2, &at, loc);
}

Node *ir_fresh_seed(Graph *g, Node *run_seed, Node *t, uint32_t k, SrcLoc loc) {
    if (!g || !run_seed || !t) return NULL;
    Node *src[2] = {i64_scalar(g, run_seed, "fresh_seed", "run seed", loc),
                    i64_scalar(g, t, "fresh_seed", "step", loc)};
    if (!src[0] || !src[1]) return NULL;
    Attr at;
    memset(&at, 0, sizeof at);
    at.rng.k = k;
    return make(g, OP_FRESH_SEED, DT_I64, rt_shape_scalar(), src, 2, &at, loc);
}
