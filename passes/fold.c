/* Constant folding: nodes whose sources are all constants become constants.
 *
 * A CONST node is one scalar filled to a shape, so an elementwise op over
 * constants is a constant too: it is evaluated once, on rank-0 stand-ins,
 * with the interpreter's ir_interp_node (the oracle, so folding cannot drift
 * from what the interpreter computes). Moving a constant around (broadcast,
 * reshape, permute, slice, a pad with the same value, a concat of equal
 * constants) or taking its max/min gives the same constant in the new shape.
 * Sums, contractions and random ops are left alone. Folding cascades because
 * pass_rebuild hands each node its already-folded sources. */
#include "../ir/interp.h"
#include "../ir/op_cases.h"
#include "pass.h"

static bool all_const(Node *const *src, int n) {
    for (int i = 0; i < n; i++)
        if (src[i]->op != OP_CONST) return false;
    return n > 0;
}

/* A constant's value: the double, and for integer and bool dtypes the exact
 * integer (ir.h). */
typedef struct {
    double f;
    int64_t i;
} ConstVal;

static ConstVal const_of(const Node *n) {
    return (ConstVal){n->attr.constant.value, n->attr.constant.ivalue};
}

static bool const_eq(const Node *a, const Node *b) {
    return a->dtype == b->dtype && a->attr.constant.value == b->attr.constant.value &&
           a->attr.constant.ivalue == b->attr.constant.ivalue;
}

/* Evaluates an elementwise op on scalar versions of its constant sources.
 * Returns false when the interpreter declines. */
static bool eval_scalar(const Node *old, Node *const *src, Arena *scratch, ConstVal *out) {
    Node stand_in[4];
    Node *sp[4];
    RtTensor *vals[4] = {NULL, NULL, NULL, NULL};
    if (old->nsrc > 4) return false;
    bool ok = true;
    for (int i = 0; i < old->nsrc; i++) {
        stand_in[i] = *src[i];
        stand_in[i].shape = rt_shape_scalar();
        sp[i] = &stand_in[i];
        vals[i] = rt_tensor_new(src[i]->dtype, rt_shape_scalar());
        if (!vals[i])
            ok = false;
        else if (rt_dtype_is_int(src[i]->dtype) || src[i]->dtype == DT_BOOL)
            rt_tensor_set_i64(vals[i], 0, src[i]->attr.constant.ivalue);
        else
            rt_tensor_set_f64(vals[i], 0, src[i]->attr.constant.value);
    }
    Node n = *old;
    n.shape = rt_shape_scalar();
    n.src = sp;
    RtTensor *r = NULL;
    if (ok) {
        DiagList *quiet = diag_list_new(scratch, NULL);
        r = quiet ? ir_interp_node(&n, vals, quiet) : NULL;
    }
    for (int i = 0; i < old->nsrc; i++)
        rt_tensor_free(vals[i]);
    if (!r) return false;
    out->f = rt_tensor_get_f64(r, 0);
    out->i = rt_dtype_is_int(r->dtype) || r->dtype == DT_BOOL ? rt_tensor_get_i64(r, 0) : 0;
    rt_tensor_free(r);
    return ok;
}

/* The constant a movement/reduction of constants equals, if any. */
static bool moved_const(const Node *old, Node *const *src, ConstVal *out) {
    ConstVal v = const_of(src[0]);
    switch (old->op) {
    case OP_BROADCAST:
    case OP_RESHAPE:
    case OP_PERMUTE:
    case OP_SLICE:
        break;
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
        if (rt_shape_numel(&src[0]->shape) == 0) return false;
        break;
    case OP_PAD: /* a pad value is a double: equal only where it is exact */
        if (old->attr.pad.value != v.f) return false;
        if ((rt_dtype_is_int(old->dtype) || old->dtype == DT_BOOL) && (double)v.i != v.f)
            return false;
        break;
    case OP_CONCAT:
        for (int i = 1; i < old->nsrc; i++)
            if (!const_eq(src[i], src[0])) return false;
        break;
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    case OP_SUM:
    case OP_ARGMAX:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        return false;
    }
    *out = v;
    return true;
}

static Node *fold_node(void *ctx, Graph *ng, Node *old, Node **src) {
    Arena *scratch = ctx;
    if (!all_const(src, old->nsrc) || (ir_ops[old->op].flags & OPF_RAND)) return NULL;
    ConstVal v;
    bool ok = (ir_ops[old->op].flags & OPF_EW) ? eval_scalar(old, src, scratch, &v)
                                               : moved_const(old, src, &v);
    if (!ok) return NULL;
    bool exact = rt_dtype_is_int(old->dtype) || old->dtype == DT_BOOL;
    Node *c = exact ? ir_const_int(ng, old->dtype, old->shape, v.i, old->loc)
                    : ir_const(ng, old->dtype, old->shape, v.f, old->loc);
    if (c) c->name = old->name;
    return c;
}

bool pass_fold(Graph *g, DiagList *d) {
    (void)d;
    Arena *scratch = arena_new();
    if (!scratch) return false;
    bool ok = pass_rebuild(g, NULL, fold_node, scratch, "fold");
    arena_free(scratch);
    return ok;
}
