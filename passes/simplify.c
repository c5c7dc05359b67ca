/* Algebraic simplification: exact identities only.
 *
 * x*1, 1*x, x/1, x-0, x+0, 0+x become x; -(-x) becomes x; casts to the
 * same dtype, broadcasts and reshapes to the same shape, identity permutes,
 * full slices and empty pads become their source. Elementwise primitives
 * have equal source and result shapes and dtypes, so the surviving operand
 * always fits the node it replaces. Nothing that changes a value is done
 * (no x*0 -> 0, which is wrong for inf and NaN); the one caveat is the sign
 * of zero: x+0 with x = -0.0 gives +0.0, the simplified graph gives -0.0,
 * which compares equal. The builders already skip most of these; this pass
 * catches what autodiff and folding leave behind. */
#include "../ir/op_cases.h"
#include "pass.h"

static bool same_type(const Node *a, const Node *b) {
    return a->dtype == b->dtype && rt_shape_eq(&a->shape, &b->shape);
}

static bool identity_perm(const Node *n) {
    for (int k = 0; k < n->shape.rank; k++)
        if (n->attr.permute.perm[k] != k) return false;
    return true;
}

static bool full_slice(const Node *n, const Node *src) {
    for (int k = 0; k < n->shape.rank; k++)
        if (n->attr.slice.start[k] != 0 || (n->attr.slice.step[k] != 1 && src->shape.dims[k] > 1))
            return false;
    return rt_shape_eq(&n->shape, &src->shape);
}

static bool empty_pad(const Node *n) {
    for (int k = 0; k < n->shape.rank; k++)
        if (n->attr.pad.lo[k] != 0 || n->attr.pad.hi[k] != 0) return false;
    return true;
}

/* The operand that old equals, or NULL. */
static Node *identity_of(const Node *old, Node **src) {
    Node *a = old->nsrc > 0 ? src[0] : NULL, *b = old->nsrc > 1 ? src[1] : NULL;
    Node *r = NULL;
    switch (old->op) {
    case OP_MUL:
        r = pass_is_const_value(b, 1.0) ? a : pass_is_const_value(a, 1.0) ? b : NULL;
        break;
    case OP_ADD:
        r = pass_is_const_value(b, 0.0) ? a : pass_is_const_value(a, 0.0) ? b : NULL;
        break;
    case OP_SUB:
        r = pass_is_const_value(b, 0.0) ? a : NULL;
        break;
    case OP_DIV:
        r = pass_is_const_value(b, 1.0) ? a : NULL;
        break;
    case OP_NEG:
        r = a->op == OP_NEG ? a->src[0] : NULL;
        break;
    case OP_CAST:
    case OP_BROADCAST:
    case OP_RESHAPE:
        r = a;
        break;
    case OP_PERMUTE:
        r = identity_perm(old) ? a : NULL;
        break;
    case OP_SLICE:
        r = full_slice(old, a) ? a : NULL;
        break;
    case OP_PAD:
        r = empty_pad(old) ? a : NULL;
        break;
    IR_CASES_LEAF:
    case OP_ABS:
    case OP_SIGN:
    case OP_FLOOR:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_ERF:
    case OP_NOT:
    case OP_STOP_GRAD:
    case OP_MOD:
    case OP_POW:
    case OP_MAX:
    case OP_MIN:
    case OP_LT:
    case OP_LE:
    case OP_EQ:
    case OP_NE:
    case OP_AND:
    case OP_OR:
    case OP_WHERE:
    IR_CASES_REDUCE:
    case OP_CONCAT:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        break;
    }
    return r && same_type(r, old) ? r : NULL;
}

static Node *simplify_node(void *ctx, Graph *ng, Node *old, Node **src) {
    (void)ctx;
    (void)ng;
    return identity_of(old, src);
}

bool pass_simplify(Graph *g, DiagList *d) {
    (void)d;
    return pass_rebuild(g, NULL, simplify_node, NULL, "simplify");
}
