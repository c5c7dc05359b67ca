/* --check-numerics (numerics.h). */
#include "numerics.h"

#include <string.h>

bool ir_numerics_computes(const Node *n) {
    if (n->op == OP_INPUT || n->op == OP_CONST || n->op == OP_IOTA || n->op == OP_STOP_GRAD)
        return false;
    return !(ir_ops[n->op].flags & OPF_MOVE);
}

void ir_numerics_error(DiagList *d, const Node *n, const void *p, int64_t i, RtTensor *const *srcs,
                       const NumericsCheck *c) {
    int from = 0;
    for (int k = 0; srcs && k < n->nsrc && !from; k++) {
        const RtTensor *t = srcs[k];
        if (t && ir_numerics_find(t->data, t->dtype, rt_shape_numel(&t->shape)) >= 0) from = k + 1;
    }
    ir_numerics_error_at(d, n->loc, ir_op_name(n->op), n->dtype, &n->shape, p, i, from, c);
}
