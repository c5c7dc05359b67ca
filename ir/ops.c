/* The op metadata table, generated from ops.def by the X-macro, and name
 * lookup for printing and parsing IR text.
 *
 * Every per-layer table in the project (interpreter, derivatives, emitters)
 * is indexed by OpKind and pinned to OP_COUNT the same way as this one. */
#include "ir.h"

#include <string.h>

const OpInfo ir_ops[OP_COUNT] = {
#define X(id, nm, ar, sr, fl, dc)                                                                  \
    [OP_##id] = {.name = nm, .arity = ar, .shape_rule = sr, .flags = fl, .doc = dc},
#include "ops.def"
#undef X
};

_Static_assert(sizeof ir_ops / sizeof ir_ops[0] == OP_COUNT,
               "ir_ops must cover every op in ops.def");

const char *ir_op_name(OpKind op) {
    return (unsigned)op < OP_COUNT ? ir_ops[op].name : "?";
}

bool ir_op_from_name(const char *name, OpKind *out) {
    if (!name) return false;
    for (int i = 0; i < OP_COUNT; i++) {
        if (strcmp(ir_ops[i].name, name) == 0) {
            if (out) *out = (OpKind)i;
            return true;
        }
    }
    return false;
}
