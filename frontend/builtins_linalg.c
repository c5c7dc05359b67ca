/* The linear-algebra builtins over the library-call ops (ir/ops.def,
 * OPF_CALL; runtime/linalg.h).
 *
 * Operands are converted to a float dtype (integers and bools to f32, the
 * wider float of solve's two operands for both), and solve's batch axes
 * broadcast as numpy's. An op with several results returns a record of
 * them, named as numpy's result tuples in lower case: qr(a).q, .r;
 * svd(a).u, .s, .vt; eigh(a).w, .v; slogdet(a).sign, .logabsdet. */
#include <string.h>

#include "lower_internal.h"

static Graph *G(Lower *L) {
    return L->gc ? L->gc->g : NULL;
}

static Node *float_arg(Lower *L, BuiltinCall *c, int i) {
    Node *n = lw_need_node(L, c->pos[i], DT_F32, c->pos_loc[i],
                           lw_printf(L, "%s: argument %d", c->name, i + 1));
    if (!n) return NULL;
    return n->dtype == DT_F32 || n->dtype == DT_F64 ? n : ir_cast(G(L), n, DT_F32, c->pos_loc[i]);
}

static bool need_matrix(Lower *L, BuiltinCall *c, const Node *a, int i) {
    if (a->shape.rank >= 2) return true;
    char b[160];
    lw_error(L, c->pos_loc[i], "%s: needs a matrix [.., m, n], got %s", c->name,
             fe_type_str(a->dtype, &a->shape, b, sizeof b));
    return false;
}

/* a and b with their batch axes (all but the last `ka` and `kb`) broadcast
 * to one batch shape; false (reported) when they do not broadcast. */
static bool broadcast_batch(Lower *L, BuiltinCall *c, Node **a, int ka, Node **b, int kb) {
    Shape ba = {.rank = (*a)->shape.rank - ka}, bb = {.rank = (*b)->shape.rank - kb}, bs;
    memcpy(ba.dims, (*a)->shape.dims, sizeof(int64_t) * (size_t)ba.rank);
    memcpy(bb.dims, (*b)->shape.dims, sizeof(int64_t) * (size_t)bb.rank);
    if (!ir_broadcast_shapes(&ba, &bb, &bs) || bs.rank + (ka > kb ? ka : kb) > IR_MAX_RANK) {
        char b1[160], b2[160];
        lw_error(L, c->loc, "%s: batch axes do not broadcast: %s and %s", c->name,
                 fe_type_str((*a)->dtype, &(*a)->shape, b1, sizeof b1),
                 fe_type_str((*b)->dtype, &(*b)->shape, b2, sizeof b2));
        return false;
    }
    Node **ops[2] = {a, b};
    int tails[2] = {ka, kb};
    for (int k = 0; k < 2; k++) {
        Shape s = bs;
        const Shape *o = &(*ops[k])->shape;
        for (int i = 0; i < tails[k]; i++)
            s.dims[s.rank++] = o->dims[o->rank - tails[k] + i];
        *ops[k] = ir_broadcast(G(L), *ops[k], s, c->loc);
        if (!*ops[k]) return false;
    }
    return true;
}

/* solve(a, b): x with a x = b; b [.., n, k], or [n] (a vector, numpy's rule). */
Value *lw_bi_solve(Lower *L, BuiltinCall *c) {
    if (!G(L)) return lw_error(L, c->loc, "solve() needs a tensor context (not allowed in config)");
    Node *a = float_arg(L, c, 0), *b = float_arg(L, c, 1);
    if (!a || !b || !need_matrix(L, c, a, 0)) return lw_err(L);
    DType dt = a->dtype == DT_F64 || b->dtype == DT_F64 ? DT_F64 : DT_F32;
    a = ir_cast(G(L), a, dt, c->loc);
    b = ir_cast(G(L), b, dt, c->loc);
    bool vec = b->shape.rank == 1;
    if (vec) b = ir_reshape(G(L), b, (Shape){.rank = 2, .dims = {b->shape.dims[0], 1}}, c->loc);
    if (!a || !b || !broadcast_batch(L, c, &a, 2, &b, 2)) return lw_err(L);
    Node *src[2] = {a, b};
    Node *x = ir_call(G(L), OP_SOLVE, src, c->loc);
    if (x && vec) {
        Shape s = x->shape;
        s.rank--; /* drop the column axis */
        x = ir_reshape(G(L), x, s, c->loc);
    }
    return lw_tensor(L, x);
}

/* A record of the results of call t, named names[0..n). */
static Value *record(Lower *L, Node *t, const char *const *names, int n, SrcLoc loc) {
    const char **nm = arena_alloc(L->a, sizeof(char *) * (size_t)n);
    Value **items = arena_alloc(L->a, sizeof(Value *) * (size_t)n);
    if (!nm || !items || !t) return lw_err(L);
    for (int i = 0; i < n; i++) {
        nm[i] = names[i];
        items[i] = lw_tensor(L, ir_tuple_get(G(L), t, i, loc));
        if (val_is_error(items[i])) return lw_err(L);
    }
    Value *v = val_tree(L->a, n, nm, items);
    return v ? v : lw_err(L);
}

static const struct {
    const char *name;
    OpKind op; /* OP_INPUT: pinv, a composite */
    int nres;
    const char *res[3];
} one_arg[] = {
    {"cholesky", OP_CHOLESKY, 1, {NULL}},
    {"inv", OP_INV, 1, {NULL}},
    {"det", OP_DET, 1, {NULL}},
    {"pinv", OP_INPUT, 1, {NULL}},
    {"slogdet", OP_SLOGDET, 2, {"sign", "logabsdet"}},
    {"qr", OP_QR, 2, {"q", "r"}},
    {"svd", OP_SVD, 3, {"u", "s", "vt"}},
    {"eigh", OP_EIGH, 2, {"w", "v"}},
};

/* cholesky, inv, det, pinv, slogdet, qr, svd, eigh of one matrix (or a batch). */
Value *lw_bi_linalg1(Lower *L, BuiltinCall *c) {
    if (!G(L))
        return lw_error(L, c->loc, "%s() needs a tensor context (not allowed in config)", c->name);
    int k = -1;
    for (int i = 0; i < (int)(sizeof one_arg / sizeof one_arg[0]); i++)
        if (strcmp(one_arg[i].name, c->name) == 0) k = i;
    if (k < 0)
        return lw_error(L, c->loc, "internal error: %s is no linear-algebra builtin", c->name);
    Node *a = float_arg(L, c, 0);
    if (!a || !need_matrix(L, c, a, 0)) return lw_err(L);
    if (one_arg[k].op == OP_INPUT) return lw_tensor(L, ir_pinv(G(L), a, c->loc));
    Node *t = ir_call(G(L), one_arg[k].op, &a, c->loc);
    if (one_arg[k].nres == 1) return lw_tensor(L, t);
    return record(L, t, one_arg[k].res, one_arg[k].nres, c->loc);
}
