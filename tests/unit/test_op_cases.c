/* Every op is handled by every layer, or refused loudly.
 *
 * family_of is a switch over the family lists of ir/op_cases.h with no
 * default: it compiles only while the lists name every op exactly once.
 * op_families_match_the_table checks each list against the rows' arity and
 * flags, so the lists that the layers' exhaustive switches use say what
 * ops.def says. The table walks then hand every op to shape inference (with
 * exactly its arity of sources, the slot after the last one NULL, so a rule
 * that reads a source the op does not have crashes the test) and every op
 * outside a kernel family to that family's interpreter kernel, which must
 * answer with an "internal error" diagnostic, never a value.
 *
 * The compile-time half (a new ops.def row that a layer does not name breaks
 * the build) is check_op_switches.cmake, the ctest op_switches. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "ir/interp_impl.h"
#include "ir/op_cases.h"
#include "ir/shape.h"

typedef enum {
    F_LEAF,
    F_EW1,
    F_EW2,
    F_EW3,
    F_RED,
    F_MOVE,
    F_CONTR,
    F_ORDER,
    F_CALL,
    F_RAND,
    F_NONE
} Family;

static Family family_of(OpKind op) {
    switch (op) {
    IR_CASES_LEAF:
        return F_LEAF;
    IR_CASES_EW_UNARY:
        return F_EW1;
    IR_CASES_EW_BINARY:
        return F_EW2;
    IR_CASES_EW_TERNARY:
        return F_EW3;
    IR_CASES_REDUCE:
        return F_RED;
    IR_CASES_MOVE:
        return F_MOVE;
    IR_CASES_CONTR:
        return F_CONTR;
    IR_CASES_ORDER:
        return F_ORDER;
    IR_CASES_CALL:
        return F_CALL;
    IR_CASES_RAND:
        return F_RAND;
    }
    return F_NONE;
}

/* The family a row's arity and flags put it in. */
static Family family_of_row(const OpInfo *r) {
    if (r->flags & OPF_EW)
        return r->arity == 1 ? F_EW1 : r->arity == 2 ? F_EW2 : r->arity == 3 ? F_EW3 : F_NONE;
    if (r->flags & OPF_RED) return F_RED;
    if (r->flags & OPF_MOVE) return F_MOVE;
    if (r->flags & OPF_CONTR) return F_CONTR;
    if (r->flags & OPF_ORDER) return F_ORDER;
    if (r->flags & OPF_CALL) return F_CALL;
    if (r->flags & OPF_RAND) return F_RAND;
    return r->arity == 0 ? F_LEAF : F_NONE;
}

Test(op_cases, op_families_match_the_table) {
    for (int op = 0; op < OP_COUNT; op++) {
        const OpInfo *r = &ir_ops[op];
        cr_expect_eq(
            family_of((OpKind)op), family_of_row(r),
            "op %s is in family list %d of ir/op_cases.h, its row (arity %d, flags 0x%x) says %d",
            r->name, family_of((OpKind)op), r->arity, r->flags, family_of_row(r));
        int kinds = !!(r->flags & OPF_EW) + !!(r->flags & OPF_RED) + !!(r->flags & OPF_MOVE) +
                    !!(r->flags & OPF_CONTR) + !!(r->flags & OPF_RAND) + !!(r->flags & OPF_ORDER) +
                    !!(r->flags & OPF_CALL);
        cr_expect_leq(kinds, 1,
                      "op %s has more than one of EW, RED, MOVE, CONTR, ORDER, CALL, RAND",
                      r->name);
    }
}

/* ---- shape inference over the whole table ---------------------------------------- */

static Node *source(DType dt, Shape s) {
    Node *n = calloc(1, sizeof *n);
    cr_assert_not_null(n);
    n->op = OP_INPUT;
    n->dtype = dt;
    n->shape = s;
    return n;
}

/* ir_infer on op with nsrc sources of dtype dt and shape [2,3]. The array
 * holds one slot more than the op's sources, NULL, so reading a source the op
 * does not have crashes. */
static bool infer_with(OpKind op, DType dt, DType *out_dt, char *err, size_t errn) {
    int nsrc = ir_ops[op].arity < 0 ? 2 : ir_ops[op].arity;
    Node **src = calloc((size_t)nsrc + 1, sizeof *src);
    cr_assert_not_null(src);
    Shape s = th_shape(2, 2, 3);
    for (int i = 0; i < nsrc; i++)
        src[i] = source(dt, s);
    Attr attr;
    memset(&attr, 0, sizeof attr); /* concat and iota axis 0, no padding */
    switch (ir_ops[op].shape_rule) {
    case SR_REDUCE:
        attr.reduce.axes = 1;
        break;
    case SR_PERMUTE:
        for (int i = 0; i < IR_MAX_RANK; i++)
            attr.permute.perm[i] = i;
        break;
    case SR_SLICE:
        for (int i = 0; i < IR_MAX_RANK; i++)
            attr.slice.step[i] = 1;
        break;
    case SR_SAME:
    case SR_ATTR:
    case SR_CONCAT:
    case SR_GATHER:
    case SR_PAD:
    case SR_MATMUL:
    case SR_ORDER:
    case SR_CALL:
        break;
    }
    *out_dt = dt;
    Shape shape = s;
    bool ok = ir_infer(op, src, nsrc, &attr, out_dt, &shape, err, errn);
    for (int i = 0; i < nsrc; i++)
        free(src[i]);
    free(src);
    return ok;
}

Test(op_cases, shape_inference_answers_for_every_op) {
    const DType dts[] = {DT_F32, DT_F64, DT_I32, DT_I64, DT_BOOL};
    for (int op = 0; op < OP_COUNT; op++) {
        for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
            char err[256];
            DType out;
            bool ok = infer_with((OpKind)op, dts[k], &out, err, sizeof err);
            if (!ok) {
                cr_expect_neq(err[0], '\0', "%s on %s: refused without a message",
                              ir_op_name((OpKind)op), rt_dtype_name(dts[k]));
                cr_expect_null(strstr(err, "internal error"), "%s on %s: %s",
                               ir_op_name((OpKind)op), rt_dtype_name(dts[k]), err);
                continue;
            }
            /* OPF_CMP: the result is bool, and only then (for the elementwise rows). */
            if (ir_ops[op].shape_rule == SR_SAME && op != OP_CAST)
                cr_expect_eq(out == DT_BOOL, (ir_ops[op].flags & OPF_CMP) != 0 || dts[k] == DT_BOOL,
                             "%s on %s gives %s", ir_op_name((OpKind)op), rt_dtype_name(dts[k]),
                             rt_dtype_name(out));
        }
    }
}

/* ---- interpreter kernels refuse ops that are not theirs --------------------------- */

typedef RtTensor *(*Kernel)(const Node *n, RtTensor *const *src, DiagList *d);

/* Runs kernel on op over f32[4] sources (as many as the op's arity) and
 * expects an internal error, not a tensor. */
static void expect_refused(Kernel kernel, const char *kname, OpKind op) {
    Arena *a = arena_new();
    DiagList *d = diag_list_new(a, source_set_new(a));
    Shape s = th_shape(1, 4);
    RtTensor *t[3];
    Node *srcn[3];
    for (int i = 0; i < 3; i++) {
        t[i] = rt_tensor_new(DT_F32, s);
        cr_assert_not_null(t[i]);
        srcn[i] = source(DT_F32, s);
    }
    Node n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.dtype = DT_F32;
    n.shape = s;
    n.nsrc = ir_ops[op].arity < 0 ? 2 : ir_ops[op].arity;
    n.src = srcn;
    n.attr.reduce.axes = 1;
    RtTensor *o = kernel(&n, t, d);
    cr_expect_null(o, "the interpreter's %s kernel computed a value for op %s", kname,
                   ir_op_name(op));
    cr_expect_eq(d->nerrors, 1, "%s kernel, op %s: %d errors", kname, ir_op_name(op), d->nerrors);
    if (d->nerrors)
        cr_expect_not_null(strstr(th_last_diag(d), "internal error"), "%s kernel, op %s: %s", kname,
                           ir_op_name(op), th_last_diag(d));
    rt_tensor_free(o);
    for (int i = 0; i < 3; i++) {
        rt_tensor_free(t[i]);
        free(srcn[i]);
    }
    arena_free(a);
}

Test(op_cases, interpreter_kernels_refuse_other_ops) {
    for (int op = 0; op < OP_COUNT; op++) {
        Family f = family_of((OpKind)op);
        bool ew = f == F_EW1 || f == F_EW2 || f == F_EW3 || op == OP_CONST || op == OP_IOTA;
        if (!ew) expect_refused(ir_interp_ew, "elementwise", (OpKind)op);
        if (f != F_RED) expect_refused(ir_interp_reduce, "reduction", (OpKind)op);
        if (f != F_MOVE) expect_refused(ir_interp_move, "movement", (OpKind)op);
        if (f != F_ORDER) expect_refused(ir_interp_order, "order", (OpKind)op);
    }
}
