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

/* Evaluates an elementwise op on scalar versions of its constant sources.
 * Returns false when the interpreter declines or the result would not
 * survive the round trip through a double. */
static bool eval_scalar(const Node *old, Node *const *src, Arena *scratch, double *out) {
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
        if (!vals[i]) ok = false;
        else rt_tensor_set_f64(vals[i], 0, src[i]->attr.constant.value);
    }
    Node n = *old;
    n.shape = rt_shape_scalar();
    n.src = sp;
    RtTensor *r = NULL;
    if (ok) {
        DiagList *quiet = diag_list_new(scratch, NULL);
        r = quiet ? ir_interp_node(&n, vals, quiet) : NULL;
    }
    for (int i = 0; i < old->nsrc; i++) rt_tensor_free(vals[i]);
    if (!r) return false;
    double v = rt_tensor_get_f64(r, 0);
    if (rt_dtype_is_int(r->dtype) && (int64_t)v != rt_tensor_get_i64(r, 0)) ok = false;
    rt_tensor_free(r);
    *out = v;
    return ok;
}

/* The constant a movement/reduction of constants equals, if any. */
static bool moved_const(const Node *old, Node *const *src, double *out) {
    double v = src[0]->attr.constant.value;
    switch (old->op) {
    case OP_BROADCAST:
    case OP_RESHAPE:
    case OP_PERMUTE:
    case OP_SLICE: break;
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
        if (rt_shape_numel(&src[0]->shape) == 0) return false;
        break;
    case OP_PAD:
        if (old->attr.pad.value != v) return false;
        break;
    case OP_CONCAT:
        for (int i = 1; i < old->nsrc; i++)
            if (src[i]->attr.constant.value != v || src[i]->dtype != src[0]->dtype) return false;
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
    IR_CASES_RAND:
        return false;
    }
    *out = v;
    return true;
}

static Node *fold_node(void *ctx, Graph *ng, Node *old, Node **src) {
    Arena *scratch = ctx;
    if (!all_const(src, old->nsrc) || (ir_ops[old->op].flags & OPF_RAND)) return NULL;
    double v;
    bool ok = (ir_ops[old->op].flags & OPF_EW) ? eval_scalar(old, src, scratch, &v)
                                                 : moved_const(old, src, &v);
    if (!ok) return NULL;
    Node *c = ir_const(ng, old->dtype, old->shape, v, old->loc);
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
