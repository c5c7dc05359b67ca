/* Expressions: constants fold, tensors become nodes, trees map over leaves.
 *
 * A config value that folds (arithmetic, comparison, a branch, a shape, an
 * index) is fixed at compile time from then on: every fold calls
 * lw_cfg_bake, and only an unfolded config reaches graphs through its slot.
 *
 * lw_expr is the evaluator of the tracing interpreter. Constants (ints,
 * floats, bools, strings) fold at compile time with Python's rules (`/` on
 * ints gives a float, `%` takes the sign of the divisor); when a constant
 * meets a tensor it takes the tensor's dtype. Tensor operations call the IR
 * builders after checking shapes here, so that messages name the source
 * operator ("shape mismatch in '+': f32[128,256] and f32[10]"). Trees of the
 * same structure combine leaf by leaf; a scalar or tensor broadcasts to every
 * leaf. Indexing follows numpy (ints, slices, None, one integer-tensor index
 * that gathers). */
#include <math.h>
#include <string.h>

#include "lower_internal.h"

const char *lw_binop_sym(OpKindAst op) {
    switch (op) {
    case OPK_ADD:
        return "+";
    case OPK_SUB:
        return "-";
    case OPK_MUL:
        return "*";
    case OPK_DIV:
        return "/";
    case OPK_FLOORDIV:
        return "//";
    case OPK_MOD:
        return "%";
    case OPK_MATMUL:
        return "@";
    case OPK_POW:
        return "**";
    case OPK_EQ:
        return "==";
    case OPK_NE:
        return "!=";
    case OPK_LT:
        return "<";
    case OPK_LE:
        return "<=";
    case OPK_GT:
        return ">";
    case OPK_GE:
        return ">=";
    case OPK_AND:
        return "&&";
    case OPK_OR:
        return "||";
    case OPK_NEG:
        return "-";
    case OPK_PLUS:
        return "+";
    case OPK_NOT:
        return "!";
    }
    return "?";
}

/* ---- compile-time conversions -------------------------------------------------------- */

static const char *runtime_desc(Lower *L, const Value *v) {
    if (v && (v->kind == V_TENSOR || v->kind == V_SLOT || v->kind == V_LOSS))
        return lw_printf(L, "%s (a value known only at run time)",
                         v->kind == V_LOSS ? "the loss" : lw_value_desc(L, v));
    return lw_value_desc(L, v);
}

bool lw_const_int(Lower *L, const Value *v, int64_t *out, SrcLoc loc, const char *what) {
    if (val_is_error(v)) return false;
    lw_cfg_bake(L, v, loc);
    if (v->kind == V_INT) {
        *out = v->u.i;
        return true;
    }
    if (v->kind == V_FLOAT && v->u.f == floor(v->u.f) && fabs(v->u.f) < 9.0e15) {
        *out = (int64_t)v->u.f;
        return true;
    }
    diag_error(L->d, loc, "%s must be a compile-time integer, got %s", what, runtime_desc(L, v));
    return false;
}

bool lw_const_num(Lower *L, const Value *v, double *out, SrcLoc loc, const char *what) {
    if (val_is_error(v)) return false;
    lw_cfg_bake(L, v, loc);
    if (val_is_const(v)) {
        *out = val_num(v);
        return true;
    }
    diag_error(L->d, loc, "%s must be a compile-time number, got %s", what, runtime_desc(L, v));
    return false;
}

bool lw_const_bool(Lower *L, const Value *v, bool *out, SrcLoc loc, const char *what) {
    if (val_is_error(v)) return false;
    lw_cfg_bake(L, v, loc);
    if (v->kind == V_BOOL) {
        *out = v->u.b;
        return true;
    }
    diag_error(L->d, loc, "%s must be true or false, got %s", what, runtime_desc(L, v));
    return false;
}

bool lw_shape_from(Lower *L, const Value *v, Shape *out, SrcLoc loc, const char *what) {
    if (val_is_error(v)) return false;
    memset(out, 0, sizeof *out);
    const char *dim = lw_printf(L, "%s: a dimension", what);
    if (v->kind == V_INT || v->kind == V_FLOAT) {
        int64_t k;
        if (!lw_const_int(L, v, &k, loc, dim)) return false;
        out->rank = 1;
        out->dims[0] = k;
        return lw_check_numel(L, out, loc, what);
    }
    if (v->kind != V_LIST) {
        diag_error(L->d, loc, "%s: a shape must be a list of integers like [2, 3], got %s", what,
                   lw_value_desc(L, v));
        return false;
    }
    if (v->u.tree.n > IR_MAX_RANK) {
        diag_error(L->d, loc, "%s: rank %d is more than the maximum %d", what, v->u.tree.n,
                   IR_MAX_RANK);
        return false;
    }
    out->rank = v->u.tree.n;
    for (int i = 0; i < v->u.tree.n; i++) {
        int64_t k;
        if (!lw_const_int(L, v->u.tree.items[i], &k, loc, dim)) return false;
        out->dims[i] = k;
    }
    return lw_check_numel(L, out, loc, what);
}

/* ---- trees --------------------------------------------------------------------------- */

static bool is_tree(const Value *v) {
    return v && (v->kind == V_TREE || v->kind == V_LIST);
}

static Value *tree_like(Lower *L, const Value *shape_of, Value **items) {
    Value *r = arena_alloc(L->a, sizeof *r);
    if (!r) return lw_err(L);
    *r = *shape_of;
    r->u.tree.items = items;
    return r;
}

static Value **alloc_items(Lower *L, int n) {
    Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)(n > 0 ? n : 1));
    if (!items) L->oom = true;
    return items;
}

Value *lw_map1(Lower *L, Value *v, Node *(*f)(Lower *, Node *, void *, SrcLoc), void *ctx,
               SrcLoc loc) {
    if (val_is_error(v)) return lw_err(L);
    if (is_tree(v)) {
        Value **items = alloc_items(L, v->u.tree.n);
        if (!items) return lw_err(L);
        for (int i = 0; i < v->u.tree.n; i++) {
            items[i] = lw_map1(L, v->u.tree.items[i], f, ctx, loc);
            if (val_is_error(items[i])) return lw_err(L);
        }
        return tree_like(L, v, items);
    }
    Node *n = lw_need_node(L, v, DT_COUNT, loc, "argument");
    if (!n) return lw_err(L);
    return lw_tensor(L, f(L, n, ctx, loc));
}

/* ---- constant folding ---------------------------------------------------------------- */

static Value *fold(Lower *L, OpKindAst op, Value *a, Value *b, SrcLoc loc) {
    lw_cfg_bake(L, a, loc);
    lw_cfg_bake(L, b, loc);
    bool ints = (a->kind == V_INT || a->kind == V_BOOL) && (b->kind == V_INT || b->kind == V_BOOL);
    if (a->kind == V_BOOL && b->kind == V_BOOL &&
        (op == OPK_AND || op == OPK_OR || op == OPK_EQ || op == OPK_NE)) {
        bool x = a->u.b, y = b->u.b;
        switch (op) {
        case OPK_AND:
            return val_bool(L->a, x && y);
        case OPK_OR:
            return val_bool(L->a, x || y);
        case OPK_EQ:
            return val_bool(L->a, x == y);
        case OPK_ADD:
        case OPK_SUB:
        case OPK_MUL:
        case OPK_DIV:
        case OPK_FLOORDIV:
        case OPK_MOD:
        case OPK_MATMUL:
        case OPK_POW:
        case OPK_NE:
        case OPK_LT:
        case OPK_LE:
        case OPK_GT:
        case OPK_GE:
        case OPK_NEG:
        case OPK_PLUS:
        case OPK_NOT:
            return val_bool(L->a, x != y);
        }
    }
    if (op == OPK_AND || op == OPK_OR)
        return val_bool(L->a, op == OPK_AND ? (val_num(a) != 0 && val_num(b) != 0)
                                            : (val_num(a) != 0 || val_num(b) != 0));
    if (ints) {
        int64_t x = a->kind == V_BOOL ? a->u.b : a->u.i, y = b->kind == V_BOOL ? b->u.b : b->u.i, r;
        switch (op) {
        case OPK_ADD:
            if (__builtin_add_overflow(x, y, &r))
                return lw_error(L, loc, "integer overflow in '+'");
            return val_int(L->a, r);
        case OPK_SUB:
            if (__builtin_sub_overflow(x, y, &r))
                return lw_error(L, loc, "integer overflow in '-'");
            return val_int(L->a, r);
        case OPK_MUL:
            if (__builtin_mul_overflow(x, y, &r))
                return lw_error(L, loc, "integer overflow in '*'");
            return val_int(L->a, r);
        case OPK_DIV:
            if (y == 0) return lw_error(L, loc, "division by zero");
            return val_float(L->a, (double)x / (double)y);
        case OPK_FLOORDIV: {
            if (y == 0) return lw_error(L, loc, "division by zero");
            if (x == INT64_MIN && y == -1) return lw_error(L, loc, "integer overflow in '//'");
            int64_t q = x / y; /* truncates; floor is one less where the signs differ */
            if (x % y != 0 && ((x < 0) != (y < 0))) q--;
            return val_int(L->a, q);
        }
        case OPK_MOD: {
            if (y == 0) return lw_error(L, loc, "modulo by zero");
            if (x == INT64_MIN && y == -1) return val_int(L->a, 0);
            int64_t m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            return val_int(L->a, m);
        }
        case OPK_POW: {
            if (y < 0) return val_float(L->a, pow((double)x, (double)y));
            int64_t acc = 1, base = x;
            int64_t e = y;
            while (e > 0) {
                if (e & 1)
                    if (__builtin_mul_overflow(acc, base, &acc))
                        return lw_error(L, loc, "integer overflow in '**'");
                e >>= 1;
                if (e > 0 && __builtin_mul_overflow(base, base, &base))
                    return lw_error(L, loc, "integer overflow in '**'");
            }
            return val_int(L->a, acc);
        }
        case OPK_EQ:
            return val_bool(L->a, x == y);
        case OPK_NE:
            return val_bool(L->a, x != y);
        case OPK_LT:
            return val_bool(L->a, x < y);
        case OPK_LE:
            return val_bool(L->a, x <= y);
        case OPK_GT:
            return val_bool(L->a, x > y);
        case OPK_GE:
            return val_bool(L->a, x >= y);
        case OPK_MATMUL:
            return lw_error(L, loc, "'@' needs tensors, got two numbers");
        case OPK_AND:
        case OPK_OR:
        case OPK_NEG:
        case OPK_PLUS:
        case OPK_NOT:
            break;
        }
        return lw_error(L, loc, "operator '%s' does not apply to numbers", lw_binop_sym(op));
    }
    double x = val_num(a), y = val_num(b);
    switch (op) {
    case OPK_ADD:
        return val_float(L->a, x + y);
    case OPK_SUB:
        return val_float(L->a, x - y);
    case OPK_MUL:
        return val_float(L->a, x * y);
    case OPK_DIV:
        if (y == 0) return lw_error(L, loc, "division by zero");
        return val_float(L->a, x / y);
    case OPK_FLOORDIV: {
        /* CPython's float floor division (numpy's floor_divide): (x - x % y) / y
         * is within rounding of an integer; round it, so 1 // 0.1 is 9 */
        if (y == 0) return lw_error(L, loc, "division by zero");
        double m = fmod(x, y), d = (x - m) / y;
        if (m != 0 && ((m < 0) != (y < 0))) d -= 1.0;
        if (d == 0) return val_float(L->a, copysign(0.0, x / y));
        double f = floor(d);
        return val_float(L->a, d - f > 0.5 ? f + 1 : f);
    }
    case OPK_MOD: {
        if (y == 0) return lw_error(L, loc, "modulo by zero");
        double m = fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return val_float(L->a, m);
    }
    case OPK_POW:
        return val_float(L->a, pow(x, y));
    case OPK_EQ:
        return val_bool(L->a, x == y);
    case OPK_NE:
        return val_bool(L->a, x != y);
    case OPK_LT:
        return val_bool(L->a, x < y);
    case OPK_LE:
        return val_bool(L->a, x <= y);
    case OPK_GT:
        return val_bool(L->a, x > y);
    case OPK_GE:
        return val_bool(L->a, x >= y);
    case OPK_MATMUL:
        return lw_error(L, loc, "'@' needs tensors, got two numbers");
    case OPK_AND:
    case OPK_OR:
    case OPK_NEG:
    case OPK_PLUS:
    case OPK_NOT:
        break;
    }
    return lw_error(L, loc, "operator '%s' does not apply to numbers", lw_binop_sym(op));
}

/* ---- tensor operators ---------------------------------------------------------------- */

static bool is_float_dt(DType t) {
    return t == DT_F32 || t == DT_F64;
}
static bool is_int_dt(DType t) {
    return t == DT_I32 || t == DT_I64;
}

static Node *lw_matmul(Lower *L, Node *a, Node *b, SrcLoc loc) {
    Graph *g = L->gc->g;
    char b1[160], b2[160];
    if (!is_float_dt(a->dtype) || !is_float_dt(b->dtype)) {
        diag_error(L->d, loc,
                   "'@' needs floating-point operands, got %s @ %s (integers never silently become "
                   "floats in '@'; convert with float())",
                   fe_type_str(a->dtype, &a->shape, b1, sizeof b1),
                   fe_type_str(b->dtype, &b->shape, b2, sizeof b2));
        return NULL;
    }
    int ra = a->shape.rank, rb = b->shape.rank;
    if (ra == 0 || rb == 0) {
        diag_error(L->d, loc, "'@' needs operands with at least one axis, got %s @ %s",
                   fe_type_str(a->dtype, &a->shape, b1, sizeof b1),
                   fe_type_str(b->dtype, &b->shape, b2, sizeof b2));
        return NULL;
    }
    int64_t ka = a->shape.dims[ra - 1], kb = rb == 1 ? b->shape.dims[0] : b->shape.dims[rb - 2];
    if (ka != kb) {
        diag_error(L->d, loc,
                   "shape mismatch in '@': %s @ %s (inner dimensions %lld and %lld differ)",
                   fe_type_str(a->dtype, &a->shape, b1, sizeof b1),
                   fe_type_str(b->dtype, &b->shape, b2, sizeof b2), (long long)ka, (long long)kb);
        return NULL;
    }
    Node *am = a, *bm = b;
    if (ra == 1) {
        Shape s = {.rank = 2, .dims = {1, ka}};
        am = ir_reshape(g, a, s, loc);
    }
    if (rb == 1) {
        Shape s = {.rank = 2, .dims = {kb, 1}};
        bm = ir_reshape(g, b, s, loc);
    }
    if (!am || !bm) return NULL;
    int ram = am->shape.rank, rbm = bm->shape.rank;
    if (ram > 2 && rbm > 2) {
        /* numpy: batch dimensions broadcast */
        Shape ba = {.rank = ram - 2}, bb = {.rank = rbm - 2}, bo;
        for (int i = 0; i < ram - 2; i++)
            ba.dims[i] = am->shape.dims[i];
        for (int i = 0; i < rbm - 2; i++)
            bb.dims[i] = bm->shape.dims[i];
        if (!ir_broadcast_shapes(&ba, &bb, &bo)) {
            diag_error(L->d, loc,
                       "shape mismatch in '@': batch dimensions of %s and %s do not broadcast",
                       fe_type_str(a->dtype, &a->shape, b1, sizeof b1),
                       fe_type_str(b->dtype, &b->shape, b2, sizeof b2));
            return NULL;
        }
        if (bo.rank + 2 > IR_MAX_RANK) {
            diag_error(L->d, loc, "'@': result rank too large");
            return NULL;
        }
        Shape sa = bo, sb = bo;
        sa.rank = sb.rank = bo.rank + 2;
        sa.dims[bo.rank] = am->shape.dims[ram - 2];
        sa.dims[bo.rank + 1] = am->shape.dims[ram - 1];
        sb.dims[bo.rank] = bm->shape.dims[rbm - 2];
        sb.dims[bo.rank + 1] = bm->shape.dims[rbm - 1];
        am = ir_broadcast(g, am, sa, loc);
        bm = ir_broadcast(g, bm, sb, loc);
    } else if (ram > 2 && rbm == 2) {
        /* ir_matmul folds the batch of a into its rows */
    } else if (ram == 2 && rbm > 2) {
        /* ir_matmul shares a across b's batch */
    }
    Node *r = ir_matmul(g, am, bm, loc);
    if (!r) return NULL;
    if (ra == 1 || rb == 1) {
        Shape s = r->shape;
        Shape o = {.rank = 0};
        for (int i = 0; i < s.rank; i++) {
            if (ra == 1 && i == s.rank - 2) continue;
            if (rb == 1 && i == s.rank - 1) continue;
            o.dims[o.rank++] = s.dims[i];
        }
        r = ir_reshape(g, r, o, loc);
    }
    return r;
}

/* fdt: the float dtype of a float constant meeting an integer tensor and of
 * an integer division or power (f32 unless a weak value is built again). */
static Value *tensor_binop_dt(Lower *L, OpKindAst op, Value *a, Value *b, SrcLoc loc, DType fdt) {
    Graph *g = L->gc ? L->gc->g : NULL;
    if (!g) /* only config is evaluated without a graph */
        return lw_error(
            L, loc,
            "'%s' on a tensor is not allowed here: config values are compile-time constants",
            lw_binop_sym(op));
    DType ta, tb;
    Shape sa, sb;
    bool ka = lw_type(L, a, &ta, &sa), kb = lw_type(L, b, &tb, &sb);
    if (!ka || !kb) {
        const Value *bad = ka ? b : a;
        return lw_error(L, loc, "operator '%s' does not apply to %s", lw_binop_sym(op),
                        lw_value_desc(L, bad));
    }
    /* a constant takes the dtype of the tensor it meets (a float one meeting
     * an integer tensor: fdt) */
    DType ha = val_is_const(a) && val_is_tensorish(b)
                   ? (a->kind == V_FLOAT && !is_float_dt(tb) ? fdt : tb)
                   : DT_COUNT;
    DType hb = val_is_const(b) && val_is_tensorish(a)
                   ? (b->kind == V_FLOAT && !is_float_dt(ta) ? fdt : ta)
                   : DT_COUNT;
    /* x ** 2 is x * x: exact, cheap and with a derivative that is finite at 0 */
    if (op == OPK_POW && val_is_const(b) && val_is_tensorish(a)) {
        double e = val_num(b);
        Node *x = lw_node(L, a, DT_COUNT, loc);
        if (!x) return lw_err(L);
        /* a config exponent that picks a special form is fixed at compile time */
        if (e == 1) {
            lw_cfg_bake(L, b, loc);
            return lw_tensor(L, x);
        }
        if (e == 2) {
            lw_cfg_bake(L, b, loc);
            if (x->dtype == DT_BOOL) x = ir_cast(g, x, DT_F32, loc);
            return lw_tensor(L, ir_binary(g, OP_MUL, x, x, loc));
        }
        if (e == 0.5 && is_float_dt(x->dtype)) {
            lw_cfg_bake(L, b, loc);
            return lw_tensor(L, ir_unary(g, OP_SQRT, x, loc));
        }
    }
    Node *x = lw_node(L, a, ha, loc);
    Node *y = lw_node(L, b, hb, loc);
    if (!x || !y) return lw_err(L);
    char b1[160], b2[160];
    if (op == OPK_MATMUL) return lw_tensor(L, lw_matmul(L, x, y, loc));
    Shape out;
    if (!ir_broadcast_shapes(&x->shape, &y->shape, &out)) {
        return lw_error(L, loc, "shape mismatch in '%s': %s and %s", lw_binop_sym(op),
                        fe_type_str(x->dtype, &x->shape, b1, sizeof b1),
                        fe_type_str(y->dtype, &y->shape, b2, sizeof b2));
    }
    if (!lw_check_numel(L, &out, loc, lw_binop_sym(op))) return lw_err(L);
    OpKind k = OP_ADD; /* every case below sets it or returns */
    switch (op) {
    case OPK_ADD:
        k = OP_ADD;
        break;
    case OPK_SUB:
        k = OP_SUB;
        break;
    case OPK_MUL:
        k = OP_MUL;
        break;
    case OPK_DIV:
        k = OP_DIV;
        /* true division, as Python: integers divide as f32 */
        if (!is_float_dt(ir_promote(x->dtype, y->dtype))) {
            x = ir_cast(g, x, fdt, loc);
            y = ir_cast(g, y, fdt, loc);
        }
        break;
    case OPK_FLOORDIV:
        return lw_tensor(L, ir_floordiv(g, x, y, loc));
    case OPK_MOD:
        k = OP_MOD;
        break;
    case OPK_POW:
        k = OP_POW;
        if (!is_float_dt(ir_promote(x->dtype, y->dtype))) {
            x = ir_cast(g, x, fdt, loc);
            y = ir_cast(g, y, fdt, loc);
        }
        break;
    case OPK_EQ:
        k = OP_EQ;
        break;
    case OPK_NE:
        k = OP_NE;
        break;
    case OPK_LT:
        k = OP_LT;
        break;
    case OPK_LE:
        k = OP_LE;
        break;
    case OPK_GT: {
        k = OP_LT;
        Node *t = x;
        x = y;
        y = t;
        break;
    }
    case OPK_GE: {
        k = OP_LE;
        Node *t = x;
        x = y;
        y = t;
        break;
    }
    case OPK_AND:
    case OPK_OR:
        k = op == OPK_AND ? OP_AND : OP_OR;
        x = ir_cast(g, x, DT_BOOL, loc);
        y = ir_cast(g, y, DT_BOOL, loc);
        break;
    case OPK_MATMUL:
    case OPK_NEG:
    case OPK_PLUS:
    case OPK_NOT:
        return lw_error(L, loc, "operator '%s' does not apply to tensors", lw_binop_sym(op));
    }
    if (!x || !y) return lw_err(L);
    return lw_tensor(L, ir_binary(g, k, x, y, loc));
}

/* ---- weak literals --------------------------------------------------------------------- */

static bool strong_float(Lower *L, const Value *v, DType *dt) {
    Shape s;
    return val_is_tensorish(v) && !v->weak && lw_type(L, v, dt, &s) && is_float_dt(*dt);
}

static bool is_weak(const Value *v) {
    return v && (v->kind == V_FLOAT || (v->kind == V_TENSOR && v->weak));
}

static Value *neg_value(Lower *L, Value *a, SrcLoc loc);

/* v built again with float dtype dt (v itself when it is not weak). */
static Value *rebuild_weak(Lower *L, Value *v, DType dt) {
    if (!v || v->kind != V_TENSOR || !v->weak) return v;
    const WeakExpr *w = v->weak;
    Value *a = rebuild_weak(L, (Value *)w->a, dt);
    if (w->op < 0) return neg_value(L, a, w->loc);
    Value *b = rebuild_weak(L, (Value *)w->b, dt);
    if (val_is_error(a) || val_is_error(b)) return lw_err(L);
    return tensor_binop_dt(L, (OpKindAst)w->op, a, b, w->loc, dt);
}

static Value *mark_weak(Lower *L, Value *r, int op, Value *a, Value *b, SrcLoc loc) {
    if (val_is_error(r) || r->kind != V_TENSOR || !is_float_dt(r->u.t.node->dtype)) return r;
    WeakExpr *w = arena_alloc(L->a, sizeof *w);
    if (!w) return r;
    *w = (WeakExpr){op, a, b, loc};
    r->weak = w;
    return r;
}

/* A weak operand meeting a float tensor takes its dtype; a result whose
 * float dtype comes only from literals and integers stays weak. */
static Value *tensor_binop(Lower *L, OpKindAst op, Value *a, Value *b, SrcLoc loc) {
    DType da, db;
    bool sa = strong_float(L, a, &da), sb = strong_float(L, b, &db);
    if (sb && a->kind == V_TENSOR && a->weak && db != a->u.t.node->dtype)
        a = rebuild_weak(L, a, db);
    if (sa && b->kind == V_TENSOR && b->weak && da != b->u.t.node->dtype)
        b = rebuild_weak(L, b, da);
    if (val_is_error(a) || val_is_error(b)) return lw_err(L);
    Value *r = tensor_binop_dt(L, op, a, b, loc, DT_F32);
    bool from_literals = is_weak(a) || is_weak(b) || op == OPK_DIV || op == OPK_POW;
    if (!sa && !sb && from_literals && op != OPK_MATMUL) return mark_weak(L, r, op, a, b, loc);
    return r;
}

/* v as a tensor when it is a numeric list and other a tensor (with the
 * dtype an integer constant would take beside it); else v. NULL on error. */
static Value *literal_beside(Lower *L, Value *v, const Value *other, SrcLoc loc) {
    if (!lw_is_numeric_list(v) || !val_is_tensorish(other) || !L->gc || !L->gc->g) return v;
    DType dt;
    Shape s;
    if (!lw_type(L, other, &dt, &s)) return v;
    Node *n = lw_node(L, v, dt, loc);
    return n ? lw_tensor(L, n) : NULL;
}

Value *lw_binop(Lower *L, OpKindAst op, Value *a, Value *b, SrcLoc loc) {
    if (val_is_error(a) || val_is_error(b)) return lw_err(L);
    if (a->kind == V_LOSS) a = lw_loss_value(L, loc);
    if (b->kind == V_LOSS) b = lw_loss_value(L, loc);
    if (val_is_error(a) || val_is_error(b)) return lw_err(L);
    /* a list of numbers meeting a tensor is a tensor literal, not a tree */
    if (!(a = literal_beside(L, a, b, loc)) || !(b = literal_beside(L, b, a, loc)))
        return lw_err(L);
    if (is_tree(a) || is_tree(b)) {
        if (op == OPK_MATMUL) return lw_error(L, loc, "'@' does not apply to trees");
        if (is_tree(a) && is_tree(b)) {
            if (!val_same_structure(a, b))
                return lw_error(L, loc, "trees of different structure in '%s' (%d and %d leaves)",
                                lw_binop_sym(op), val_count_leaves(a), val_count_leaves(b));
            Value **items = alloc_items(L, a->u.tree.n);
            if (!items) return lw_err(L);
            for (int i = 0; i < a->u.tree.n; i++) {
                items[i] = lw_binop(L, op, a->u.tree.items[i], b->u.tree.items[i], loc);
                if (val_is_error(items[i])) return lw_err(L);
            }
            return tree_like(L, a, items);
        }
        Value *t = is_tree(a) ? a : b;
        Value **items = alloc_items(L, t->u.tree.n);
        if (!items) return lw_err(L);
        for (int i = 0; i < t->u.tree.n; i++) {
            items[i] = is_tree(a) ? lw_binop(L, op, a->u.tree.items[i], b, loc)
                                  : lw_binop(L, op, a, b->u.tree.items[i], loc);
            if (val_is_error(items[i])) return lw_err(L);
        }
        return tree_like(L, t, items);
    }
    if (val_is_const(a) && val_is_const(b)) return fold(L, op, a, b, loc);
    if (a->kind == V_STR || b->kind == V_STR) {
        if (a->kind == V_STR && b->kind == V_STR) {
            int c = strcmp(a->u.s, b->u.s);
            switch (op) {
            case OPK_ADD:
                return val_str(L->a, lw_printf(L, "%s%s", a->u.s, b->u.s));
            case OPK_EQ:
                return val_bool(L->a, c == 0);
            case OPK_NE:
                return val_bool(L->a, c != 0);
            case OPK_SUB:
            case OPK_MUL:
            case OPK_DIV:
            case OPK_FLOORDIV:
            case OPK_MOD:
            case OPK_MATMUL:
            case OPK_POW:
            case OPK_LT:
            case OPK_LE:
            case OPK_GT:
            case OPK_GE:
            case OPK_AND:
            case OPK_OR:
            case OPK_NEG:
            case OPK_PLUS:
            case OPK_NOT:
                break;
            }
        }
        return lw_error(L, loc, "operator '%s' does not apply to %s and %s", lw_binop_sym(op),
                        lw_value_desc(L, a), lw_value_desc(L, b));
    }
    return tensor_binop(L, op, a, b, loc);
}

static Node *neg_node(Lower *L, Node *n, void *ctx, SrcLoc loc) {
    (void)ctx;
    return ir_unary(L->gc->g, OP_NEG, n, loc);
}

static Node *not_node(Lower *L, Node *n, void *ctx, SrcLoc loc) {
    (void)ctx;
    return ir_unary(L->gc->g, OP_NOT, n, loc);
}

Value *lw_unop(Lower *L, OpKindAst op, Value *a, SrcLoc loc) {
    if (val_is_error(a)) return lw_err(L);
    if (a->kind == V_LOSS) a = lw_loss_value(L, loc);
    if (val_is_error(a)) return lw_err(L);
    if (op == OPK_PLUS) {
        if (val_is_const(a) || val_is_tensorish(a) || is_tree(a)) return a;
        return lw_error(L, loc, "unary '+' does not apply to %s", lw_value_desc(L, a));
    }
    if (val_is_const(a)) {
        lw_cfg_bake(L, a, loc);
        if (op == OPK_NOT) return val_bool(L->a, val_num(a) == 0);
        if (a->kind == V_FLOAT) return val_float(L->a, -a->u.f);
        int64_t x = a->kind == V_BOOL ? a->u.b : a->u.i;
        if (x == INT64_MIN) return lw_error(L, loc, "integer overflow in '-'");
        return val_int(L->a, -x);
    }
    if (op == OPK_NEG && a->kind == V_TENSOR && a->weak) return neg_value(L, a, loc);
    if (val_is_tensorish(a) || is_tree(a))
        return lw_map1(L, a, op == OPK_NOT ? not_node : neg_node, NULL, loc);
    return lw_error(L, loc, "operator '%s' does not apply to %s", lw_binop_sym(op),
                    lw_value_desc(L, a));
}

/* -a for a tensor, keeping a weak value weak. */
static Value *neg_value(Lower *L, Value *a, SrcLoc loc) {
    if (val_is_error(a)) return lw_err(L);
    Value *r = lw_map1(L, a, neg_node, NULL, loc);
    return a->kind == V_TENSOR && a->weak ? mark_weak(L, r, -1, a, NULL, loc) : r;
}

Value *lw_where(Lower *L, Value *c, Value *a, Value *b, SrcLoc loc) {
    if (val_is_error(c) || val_is_error(a) || val_is_error(b)) return lw_err(L);
    if (a == b) return a;
    if (!(a = literal_beside(L, a, b, loc)) || !(b = literal_beside(L, b, a, loc)) ||
        !(a = literal_beside(L, a, c, loc)) || !(b = literal_beside(L, b, c, loc)))
        return lw_err(L);
    if (is_tree(a) || is_tree(b)) {
        if (!is_tree(a) || !is_tree(b) || !val_same_structure(a, b))
            return lw_error(L, loc, "the two alternatives are trees of different structure");
        Value **items = alloc_items(L, a->u.tree.n);
        if (!items) return lw_err(L);
        for (int i = 0; i < a->u.tree.n; i++) {
            items[i] = lw_where(L, c, a->u.tree.items[i], b->u.tree.items[i], loc);
            if (val_is_error(items[i])) return lw_err(L);
        }
        return tree_like(L, a, items);
    }
    if (val_is_const(a) && val_is_const(b) && a->kind == b->kind && val_num(a) == val_num(b)) {
        lw_cfg_bake(L, a, loc);
        lw_cfg_bake(L, b, loc);
        return a;
    }
    DType ta, tb;
    Shape sa, sb;
    if (!lw_type(L, a, &ta, &sa) || !lw_type(L, b, &tb, &sb))
        return lw_error(L, loc, "cannot choose between %s and %s at run time", lw_value_desc(L, a),
                        lw_value_desc(L, b));
    Node *cn = lw_need_node(L, c, DT_BOOL, loc, "condition");
    Node *an = lw_node(L, a, val_is_const(a) ? tb : DT_COUNT, loc);
    Node *bn = lw_node(L, b, val_is_const(b) ? ta : DT_COUNT, loc);
    if (!cn || !an || !bn) return lw_err(L);
    Shape o;
    char b1[160], b2[160];
    if (!ir_broadcast_shapes(&an->shape, &bn->shape, &o) ||
        !ir_broadcast_shapes(&o, &cn->shape, &o))
        return lw_error(L, loc, "shape mismatch between the alternatives: %s and %s",
                        fe_type_str(an->dtype, &an->shape, b1, sizeof b1),
                        fe_type_str(bn->dtype, &bn->shape, b2, sizeof b2));
    return lw_tensor(L, ir_where(L->gc->g, cn, an, bn, loc));
}

/* ---- fields -------------------------------------------------------------------------- */

Value *lw_field(Lower *L, Value *base, const char *name, SrcLoc loc) {
    if (val_is_error(base)) return lw_err(L);
    switch (base->kind) {
    case V_TREE: {
        Value *v = val_tree_get(base, name);
        if (v) return v;
        const char **cands = (const char **)base->u.tree.names;
        const char *near = fe_closest(name, cands, base->u.tree.n);
        const char *list = "";
        for (int i = 0; i < base->u.tree.n && i < 8; i++)
            list = lw_printf(L, "%s%s%s", list, i ? ", " : "", base->u.tree.names[i]);
        if (near) return lw_error(L, loc, "no field '%s' (did you mean '%s'?)", name, near);
        return lw_error(L, loc, "no field '%s'; the fields are: %s", name,
                        base->u.tree.n ? list : "(none)");
    }
    case V_MODULE: {
        FeMod *m = base->u.mod;
        Global *g = lw_global(m, name);
        if (!g) return lw_error(L, loc, "module '%s' has no '%s'", m->name, name);
        return lw_global_value(L, m, g, loc);
    }
    case V_TENSOR:
    case V_SLOT: {
        DType dt;
        Shape s;
        lw_type(L, base, &dt, &s);
        if (strcmp(name, "shape") == 0) {
            Value **items = alloc_items(L, s.rank);
            if (!items) return lw_err(L);
            for (int i = 0; i < s.rank; i++)
                items[i] = val_int(L->a, s.dims[i]);
            return val_list(L->a, s.rank, items);
        }
        if (strcmp(name, "rank") == 0) return val_int(L->a, s.rank);
        if (strcmp(name, "dtype") == 0) return val_str(L->a, rt_dtype_name(dt));
        return lw_error(L, loc, "a tensor (%s) has no field '%s' (it has .shape, .rank and .dtype)",
                        lw_value_desc(L, base), name);
    }
    case V_ERROR:
    case V_NONE:
    case V_INT:
    case V_FLOAT:
    case V_BOOL:
    case V_STR:
    case V_LIST:
    case V_FUNC:
    case V_OPTIM:
    case V_LOSS:
        break;
    }
    return lw_error(L, loc, "%s has no field '%s'", lw_value_desc(L, base), name);
}

/* ---- indexing ------------------------------------------------------------------------ */

static Value *index_list(Lower *L, Value *base, Value *iv, SrcLoc loc) {
    int64_t i;
    if (!lw_const_int(L, iv, &i, loc, "a list index")) return lw_err(L);
    int64_t n = base->u.tree.n;
    if (i < 0) i += n;
    if (i < 0 || i >= n)
        return lw_error(L, loc, "index %lld is out of range for a list of %lld",
                        (long long)(i < 0 ? i - n : i), (long long)n);
    return base->u.tree.items[i];
}

/* What an index expression selects from x: a box (start/stop per axis),
 * the integer-indexed axes dropped, at most one integer tensor gathering
 * along its axis, and the result's dims (None axes included). */
typedef struct {
    Node *x;
    int rank;
    int64_t start[IR_MAX_RANK], stop[IR_MAX_RANK];
    bool drop[IR_MAX_RANK];
    Node *tidx;
    int tidx_axis;
    int64_t final_dims[2 * IR_MAX_RANK];
    int final_rank;
} IndexPlan;

static bool slice_bound(Lower *L, Scope *s, const Expr *e, int64_t d, int64_t *out) {
    Value *v = lw_expr(L, s, e);
    if (!lw_const_int(L, v, out, e->loc, "a slice bound")) return false;
    if (*out < 0) *out += d;
    if (*out < 0) *out = 0;
    if (*out > d) *out = d;
    return true;
}

static bool plan_axis(Lower *L, Scope *s, const Expr *ie, IndexPlan *p, int ax) {
    Node *x = p->x;
    int64_t d = x->shape.dims[ax];
    char b1[160];
    if (ie->kind == EX_SLICE) {
        int64_t lo = 0, hi = d;
        if (ie->u.slice.lo && !slice_bound(L, s, ie->u.slice.lo, d, &lo)) return false;
        if (ie->u.slice.hi && !slice_bound(L, s, ie->u.slice.hi, d, &hi)) return false;
        if (hi < lo) hi = lo;
        p->start[ax] = lo;
        p->stop[ax] = hi;
        p->final_dims[p->final_rank++] = hi - lo;
        return true;
    }
    Value *iv = lw_expr(L, s, ie);
    if (val_is_error(iv)) return false;
    if (iv->kind == V_INT || iv->kind == V_FLOAT) {
        int64_t i;
        if (!lw_const_int(L, iv, &i, ie->loc, "an index")) return false;
        int64_t j = i < 0 ? i + d : i;
        if (j < 0 || j >= d) {
            lw_error(L, ie->loc, "index %lld is out of range for axis %d of %s", (long long)i, ax,
                     fe_type_str(x->dtype, &x->shape, b1, sizeof b1));
            return false;
        }
        p->start[ax] = j;
        p->stop[ax] = j + 1;
        p->drop[ax] = true;
        return true;
    }
    if (val_is_tensorish(iv)) {
        Node *in = lw_node(L, iv, DT_COUNT, ie->loc);
        if (!in) return false;
        if (in->dtype == DT_BOOL) {
            lw_error(L, ie->loc,
                     "a bool mask selects a number of elements known only at run time, and shapes "
                     "are static: use where(mask, x, 0) to read, or x[mask] = v to update");
            return false;
        }
        if (!is_int_dt(in->dtype)) {
            lw_error(L, ie->loc, "an index tensor must hold integers, got %s",
                     fe_type_str(in->dtype, &in->shape, b1, sizeof b1));
            return false;
        }
        if (p->tidx) {
            lw_error(L, ie->loc, "only one tensor index per indexing is supported");
            return false;
        }
        p->tidx = in;
        p->tidx_axis = ax;
        for (int r = 0; r < in->shape.rank && p->final_rank < 2 * IR_MAX_RANK; r++)
            p->final_dims[p->final_rank++] = in->shape.dims[r];
        return true;
    }
    lw_error(L, ie->loc, "an index must be an integer, a slice, None or an integer tensor, got %s",
             lw_value_desc(L, iv));
    return false;
}

static bool plan_index(Lower *L, Scope *s, const Expr *e, Node *x, IndexPlan *p) {
    memset(p, 0, sizeof *p);
    p->x = x;
    p->rank = x->shape.rank;
    p->tidx_axis = -1;
    for (int i = 0; i < p->rank; i++)
        p->stop[i] = x->shape.dims[i];
    int ax = 0;
    char b1[160];
    for (int k = 0; k < e->u.index.nidx; k++) {
        const Expr *ie = e->u.index.idx[k];
        if (p->final_rank >= IR_MAX_RANK + 1) break; /* reported below */
        if (ie->kind == EX_NONE) {
            p->final_dims[p->final_rank++] = 1;
            continue;
        }
        if (ax >= p->rank) {
            lw_error(L, ie->loc, "too many indices for %s",
                     fe_type_str(x->dtype, &x->shape, b1, sizeof b1));
            return false;
        }
        if (!plan_axis(L, s, ie, p, ax++)) return false;
    }
    for (int i = ax; i < p->rank && p->final_rank < 2 * IR_MAX_RANK; i++)
        p->final_dims[p->final_rank++] = x->shape.dims[i];
    if (p->final_rank > IR_MAX_RANK) {
        lw_error(L, e->loc, "indexing gives rank %d, more than the maximum %d", p->final_rank,
                 IR_MAX_RANK);
        return false;
    }
    return true;
}

/* The kept axes (the box without dropped axes) and where the tensor-indexed
 * axis is among them (-1: none). */
static Shape kept_shape(const IndexPlan *p, int *taxis) {
    Shape kept = {.rank = 0};
    *taxis = -1;
    for (int i = 0; i < p->rank; i++) {
        if (p->drop[i]) continue;
        if (i == p->tidx_axis) *taxis = kept.rank;
        kept.dims[kept.rank++] = p->stop[i] - p->start[i];
    }
    return kept;
}

/* The permutation that brings axis taxis of a rank-kr value to the front. */
static void front_perm(int taxis, int kr, int *perm) {
    int k = 0;
    perm[k++] = taxis;
    for (int i = 0; i < kr; i++)
        if (i != taxis) perm[k++] = i;
}

/* After the gather, the index's ri axes come first; put them at taxis. */
static void back_perm(int taxis, int ri, int total, int *perm) {
    for (int q = 0; q < total; q++)
        perm[q] = q < taxis ? ri + q : q < taxis + ri ? q - taxis : q;
}

static Shape final_shape(const IndexPlan *p) {
    Shape fs = {.rank = p->final_rank};
    for (int i = 0; i < p->final_rank; i++)
        fs.dims[i] = p->final_dims[i];
    return fs;
}

static Node *apply_index(Lower *L, const IndexPlan *p, SrcLoc loc) {
    Graph *g = L->gc->g;
    Node *x = p->x;
    bool trivial = true;
    for (int i = 0; i < p->rank; i++)
        trivial = trivial && p->start[i] == 0 && p->stop[i] == x->shape.dims[i];
    int64_t step[IR_MAX_RANK];
    for (int i = 0; i < p->rank; i++)
        step[i] = 1;
    Node *r = trivial ? x : ir_slice(g, x, p->start, p->stop, step, loc);
    int taxis;
    Shape kept = kept_shape(p, &taxis);
    r = r ? ir_reshape(g, r, kept, loc) : NULL;
    if (p->tidx && r) {
        int perm[IR_MAX_RANK];
        if (taxis > 0) {
            front_perm(taxis, kept.rank, perm);
            r = ir_permute(g, r, perm, loc);
        }
        r = r ? ir_gather(g, r, p->tidx, loc) : NULL;
        if (r && taxis > 0) {
            back_perm(taxis, p->tidx->shape.rank, r->shape.rank, perm);
            r = ir_permute(g, r, perm, loc);
        }
    }
    return r ? ir_reshape(g, r, final_shape(p), loc) : NULL;
}

static Value *lw_index(Lower *L, Scope *s, const Expr *e) {
    Value *base = lw_expr(L, s, e->u.index.base);
    if (val_is_error(base)) return lw_err(L);
    SrcLoc loc = e->loc;
    if (base->kind == V_LIST) {
        if (e->u.index.nidx != 1 || e->u.index.idx[0]->kind == EX_SLICE ||
            e->u.index.idx[0]->kind == EX_NONE)
            return lw_error(L, loc, "a list takes one integer index");
        return index_list(L, base, lw_expr(L, s, e->u.index.idx[0]), e->u.index.idx[0]->loc);
    }
    if (base->kind == V_LOSS) base = lw_loss_value(L, loc);
    Node *x = lw_node(L, base, DT_COUNT, loc);
    if (!x) {
        if (!val_is_error(base) && !val_is_tensorish(base) && !val_is_const(base))
            return lw_error(L, loc, "%s cannot be indexed", lw_value_desc(L, base));
        if (val_is_const(base)) return lw_error(L, loc, "a number cannot be indexed");
        return lw_err(L);
    }
    IndexPlan p;
    if (!plan_index(L, s, e, x, &p)) return lw_err(L);
    return lw_tensor(L, apply_index(L, &p, loc));
}

/* ---- updates: x[index] = v, x[index] += v ------------------------------------------- */

/* u (the shape of x[index], without its None axes inserted back) placed in
 * x's shape: zeros elsewhere; a tensor index scatters (repeats sum). */
static Node *place(Lower *L, const IndexPlan *p, Node *u, SrcLoc loc) {
    Graph *g = L->gc->g;
    int taxis;
    Shape kept = kept_shape(p, &taxis);
    if (p->tidx) {
        int ri = p->tidx->shape.rank;
        Shape gs = {.rank = 0}; /* the gather's layout: index axes, then the rest */
        for (int i = 0; i < ri; i++)
            gs.dims[gs.rank++] = p->tidx->shape.dims[i];
        for (int i = 0; i < kept.rank; i++)
            if (i != taxis) gs.dims[gs.rank++] = kept.dims[i];
        if (taxis > 0) { /* undo back_perm: final layout -> gather layout */
            int perm[IR_MAX_RANK], inv[IR_MAX_RANK];
            back_perm(taxis, ri, gs.rank, perm);
            for (int q = 0; q < gs.rank; q++)
                inv[perm[q]] = q;
            Shape fl = {.rank = gs.rank};
            for (int q = 0; q < gs.rank; q++)
                fl.dims[q] = gs.dims[perm[q]];
            u = ir_permute(g, ir_reshape(g, u, fl, loc), inv, loc);
        } else {
            u = ir_reshape(g, u, gs, loc);
        }
        u = u ? ir_scatter_add(g, u, p->tidx, kept.dims[taxis], loc) : NULL;
        if (u && taxis > 0) {
            int perm[IR_MAX_RANK], inv[IR_MAX_RANK];
            front_perm(taxis, kept.rank, perm);
            for (int q = 0; q < kept.rank; q++)
                inv[perm[q]] = q;
            u = ir_permute(g, u, inv, loc);
        }
    }
    Shape box = {.rank = p->rank};
    int64_t lo[IR_MAX_RANK], hi[IR_MAX_RANK];
    bool whole = true;
    for (int i = 0; i < p->rank; i++) {
        box.dims[i] = p->stop[i] - p->start[i];
        lo[i] = p->start[i];
        hi[i] = p->x->shape.dims[i] - p->stop[i];
        whole = whole && lo[i] == 0 && hi[i] == 0;
    }
    u = u ? ir_reshape(g, u, box, loc) : NULL;
    return u && !whole ? ir_pad(g, u, lo, hi, 0.0, loc) : u;
}

/* Inside the box of p (a bool of x's shape), built from iotas: elementwise,
 * so it fuses into the update's kernel. NULL when the box is all of x. */
static Node *box_mask(Lower *L, const IndexPlan *p, SrcLoc loc) {
    Graph *g = L->gc->g;
    Node *m = NULL;
    for (int i = 0; i < p->rank; i++) {
        if (p->start[i] == 0 && p->stop[i] == p->x->shape.dims[i]) continue;
        Node *io = ir_iota(g, DT_I64, p->x->shape, i, loc);
        Node *in = ir_binary(
            g, OP_AND,
            ir_binary(g, OP_LE, ir_const_int(g, DT_I64, p->x->shape, p->start[i], loc), io, loc),
            ir_binary(g, OP_LT, io, ir_const_int(g, DT_I64, p->x->shape, p->stop[i], loc), loc),
            loc);
        m = m ? ir_binary(g, OP_AND, m, in, loc) : in;
    }
    return m;
}

/* x[mask] op= v with a bool mask that broadcasts to x: where(mask, new, x). */
static Value *mask_update(Lower *L, Node *x, Node *mask, AssignOp op, Value *v, SrcLoc mloc,
                          SrcLoc loc) {
    Graph *g = L->gc->g;
    Shape bs;
    char b1[160], b2[160];
    if (!ir_broadcast_shapes(&mask->shape, &x->shape, &bs) || !rt_shape_eq(&bs, &x->shape))
        return lw_error(L, mloc, "a mask of %s does not fit %s",
                        fe_type_str(mask->dtype, &mask->shape, b1, sizeof b1),
                        fe_type_str(x->dtype, &x->shape, b2, sizeof b2));
    Value *nv = v;
    if (op != AS_SET) {
        OpKindAst k = op == AS_ADD   ? OPK_ADD
                      : op == AS_SUB ? OPK_SUB
                      : op == AS_MUL ? OPK_MUL
                                     : OPK_DIV;
        nv = lw_binop(L, k, lw_tensor(L, x), v, loc);
    }
    Node *n = val_is_error(nv) ? NULL : lw_need_node(L, nv, x->dtype, loc, "the assigned value");
    if (!n) return lw_err(L);
    if (!ir_broadcast_shapes(&n->shape, &x->shape, &bs) || !rt_shape_eq(&bs, &x->shape))
        return lw_error(L, loc, "cannot assign %s to the masked elements of %s",
                        fe_type_str(n->dtype, &n->shape, b1, sizeof b1),
                        fe_type_str(x->dtype, &x->shape, b2, sizeof b2));
    n = ir_broadcast(g, ir_cast(g, n, x->dtype, loc), x->shape, loc);
    return lw_tensor(L, ir_where(g, ir_broadcast(g, mask, x->shape, mloc), n, x, loc));
}

/* The bool tensor t's only index is, or NULL (not an error). */
static Node *bool_index(Lower *L, Scope *s, const Expr *t) {
    if (t->u.index.nidx != 1) return NULL;
    const Expr *ie = t->u.index.idx[0];
    if (ie->kind == EX_SLICE || ie->kind == EX_NONE) return NULL;
    int before = L->d->n;
    Value *iv = lw_expr(L, s, ie);
    if (L->d->n != before || !val_is_tensorish(iv)) return NULL; /* reported again by the plan */
    Node *n = lw_node(L, iv, DT_COUNT, ie->loc);
    return n && n->dtype == DT_BOOL ? n : NULL;
}

Value *lw_index_update(Lower *L, Scope *s, const Expr *t, AssignOp op, Value *v, SrcLoc loc) {
    Value *base = lw_expr(L, s, t->u.index.base);
    if (val_is_error(base) || val_is_error(v)) return lw_err(L);
    if (!val_is_tensorish(base))
        return lw_error(L, t->loc, "only a tensor's elements can be assigned, not those of %s",
                        lw_value_desc(L, base));
    Node *x = lw_node(L, base, DT_COUNT, t->loc);
    Node *mask = x ? bool_index(L, s, t) : NULL;
    if (mask) return mask_update(L, x, mask, op, v, t->u.index.idx[0]->loc, loc);
    IndexPlan p;
    if (!x || !plan_index(L, s, t, x, &p)) return lw_err(L);
    Graph *g = L->gc->g;
    Shape fs = final_shape(&p);
    char b1[160], b2[160];
    if (p.tidx && op != AS_ADD && op != AS_SUB)
        return lw_error(L, t->loc,
                        "through an integer tensor index only += and -= are supported (repeated "
                        "indices sum); to set elements use where() with a mask");
    Value *nv = v;
    if (op == AS_MUL || op == AS_DIV || (op != AS_SET && !p.tidx)) {
        Value *cur = lw_tensor(L, apply_index(L, &p, loc));
        OpKindAst k = op == AS_ADD   ? OPK_ADD
                      : op == AS_SUB ? OPK_SUB
                      : op == AS_MUL ? OPK_MUL
                                     : OPK_DIV;
        nv = lw_binop(L, k, cur, v, loc);
    } else if (op == AS_SUB) {
        nv = lw_unop(L, OPK_NEG, v, loc);
    }
    Node *n = val_is_error(nv) ? NULL : lw_need_node(L, nv, x->dtype, loc, "the assigned value");
    if (!n) return lw_err(L);
    Shape bs;
    if (!ir_broadcast_shapes(&n->shape, &fs, &bs) || !rt_shape_eq(&bs, &fs))
        return lw_error(L, loc, "cannot assign %s to %s, which is %s",
                        fe_type_str(n->dtype, &n->shape, b1, sizeof b1), "the indexed elements",
                        fe_type_str(x->dtype, &fs, b2, sizeof b2));
    n = ir_broadcast(g, ir_cast(g, n, x->dtype, loc), fs, loc);
    Node *u = n ? place(L, &p, n, loc) : NULL;
    if (!u) return lw_err(L);
    if (p.tidx) return lw_tensor(L, ir_binary(g, OP_ADD, x, u, loc));
    Node *m = box_mask(L, &p, loc);
    return lw_tensor(L, m ? ir_where(g, m, u, x, loc) : u);
}

/* ---- the evaluator ------------------------------------------------------------------- */

static Value *lw_list(Lower *L, Scope *s, const Expr *e) {
    int n = e->u.list.n, named = 0;
    for (int i = 0; i < n; i++)
        named += e->u.list.items[i].name != NULL;
    if (named && named != n)
        return lw_error(L, e->loc,
                        "a list is either all named ([x = a, y = b]) or unnamed ([a, b])");
    Value **items = alloc_items(L, n);
    const char **names = named ? arena_alloc(L->a, sizeof(char *) * (size_t)(n ? n : 1)) : NULL;
    if (!items || (named && !names)) return lw_err(L);
    bool err = false;
    for (int i = 0; i < n; i++) {
        items[i] = lw_expr(L, s, e->u.list.items[i].value);
        if (val_is_error(items[i])) err = true;
        if (named) {
            names[i] = e->u.list.items[i].name;
            for (int j = 0; j < i; j++)
                if (strcmp(names[j], names[i]) == 0) {
                    Diag *dg = diag_error(L->d, e->u.list.items[i].name_loc,
                                          "field '%s' appears twice", names[i]);
                    diag_add_note(L->d, dg, e->u.list.items[j].name_loc,
                                  "'%s' was first given here", names[i]);
                    return lw_err(L);
                }
        }
    }
    if (err) return lw_err(L);
    return named ? val_tree(L->a, n, names, items) : val_list(L->a, n, items);
}

static Value *lw_expr_in(Lower *L, Scope *s, const Expr *e);

Value *lw_expr(Lower *L, Scope *s, const Expr *e) {
    if (!e) return lw_err(L);
    if (L->oom) return lw_err(L);
    /* sema rejects deeper expressions; inlined calls nest further */
    if (L->expr_depth >= 4 * FE_MAX_EXPR_DEPTH)
        return lw_error(L, e->loc,
                        "expressions nested too deeply (more than %d levels through calls)",
                        4 * FE_MAX_EXPR_DEPTH);
    L->expr_depth++;
    Value *v = lw_expr_in(L, s, e);
    L->expr_depth--;
    return v;
}

static Value *lw_expr_in(Lower *L, Scope *s, const Expr *e) {
    if (L->gc && L->gc->g && L->gc->g->nnodes > FE_MAX_NODES)
        return lw_error(L, e->loc, "the program is too large: a graph has more than %d nodes",
                        FE_MAX_NODES);
    switch (e->kind) {
    case EX_INT:
        return val_int(L->a, e->u.ival);
    case EX_FLOAT:
        return val_float(L->a, e->u.fval);
    case EX_STRING:
        return val_str(L->a, e->u.sval);
    case EX_BOOL:
        return val_bool(L->a, e->u.ival != 0);
    case EX_NONE:
        return val_none(L->a);
    case EX_NAME: {
        Value *v = lw_lookup(L, s, e->u.name, e->loc);
        if (!v) return lw_error(L, e->loc, "unknown name '%s'", e->u.name);
        return v;
    }
    case EX_UNARY:
        return lw_unop(L, e->u.op.op, lw_expr(L, s, e->u.op.a), e->loc);
    case EX_BINARY: {
        Value *a = lw_expr(L, s, e->u.op.a);
        if (val_is_error(a)) return lw_err(L);
        if ((e->u.op.op == OPK_AND || e->u.op.op == OPK_OR) && val_is_const(a)) {
            lw_cfg_bake(L, a, e->loc);
            bool t = val_num(a) != 0;
            if (e->u.op.op == OPK_AND && !t) return val_bool(L->a, false);
            if (e->u.op.op == OPK_OR && t) return val_bool(L->a, true);
        }
        Value *b = lw_expr(L, s, e->u.op.b);
        return lw_binop(L, e->u.op.op, a, b, e->loc);
    }
    case EX_IF: {
        Value *c = lw_expr(L, s, e->u.ife.cond);
        if (val_is_error(c)) return lw_err(L);
        if (val_is_const(c)) {
            lw_cfg_bake(L, c, e->u.ife.cond->loc);
            return lw_expr(L, s, val_num(c) != 0 ? e->u.ife.then_e : e->u.ife.else_e);
        }
        if (c->kind == V_LOSS) c = lw_loss_value(L, e->loc);
        if (!val_is_tensorish(c))
            return lw_error(L, e->u.ife.cond->loc, "a condition must be a bool, got %s",
                            lw_value_desc(L, c));
        Value *a = lw_expr(L, s, e->u.ife.then_e);
        Value *b = lw_expr(L, s, e->u.ife.else_e);
        return lw_where(L, c, a, b, e->loc);
    }
    case EX_CALL:
        return lw_call_expr(L, s, e);
    case EX_INDEX:
        return lw_index(L, s, e);
    case EX_SLICE:
        return lw_error(L, e->loc, "a slice 'a:b' is only allowed inside [ ]");
    case EX_FIELD:
        return lw_field(L, lw_expr(L, s, e->u.field.base), e->u.field.name, e->u.field.name_loc);
    case EX_LIST:
        return lw_list(L, s, e);
    case EX_LAMBDA: {
        Value *v = arena_alloc(L->a, sizeof *v);
        if (!v) return lw_err(L);
        v->kind = V_FUNC;
        v->u.fn.kind = FN_LAMBDA;
        v->u.fn.lambda = e;
        v->u.fn.closure = s;
        v->u.fn.mod = s ? s->mod : L->main;
        return v;
    }
    }
    return lw_error(L, e->loc, "internal error: unknown expression kind %d", (int)e->kind);
}
