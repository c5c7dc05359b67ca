/* Reverse-mode autodiff: the reverse sweep and gradient accumulation.
 *
 * pass_grad marks the nodes that lie on a path from some wrt to y (forward
 * reachability from wrt intersected with backward reachability from y), then
 * walks them in reverse creation order (a valid reverse topological order),
 * applies each op's rule from autodiff_rules.c and sums the contributions
 * per node (add-or-set). Gradient nodes are appended to the same graph, so
 * the sweep snapshots g->nnodes first and never looks at nodes it created;
 * side tables are indexed by node id and live in a scratch arena of their
 * own (the graph's arena must keep the new nodes), freed on return.
 * pass_hvp and pass_hessian_trace are grad of grad built on top. */
#include "autodiff.h"

#include "autodiff_rules.h"

static bool is_float(DType t) {
    return rt_dtype_is_float(t);
}

/* grads[id] += contribution (set when empty). */
static bool accumulate(Graph *g, Node **grads, const Node *src, Node *contrib, const char *opname) {
    if (!contrib) return true;
    if (!rt_shape_eq(&contrib->shape, &src->shape) || contrib->dtype != src->dtype) {
        char want[64], got[64];
        diag_error(g->diags, src->loc,
                   "internal error: autodiff: the %s rule gave a %s%s gradient for a %s%s source",
                   opname, rt_dtype_name(contrib->dtype),
                   rt_shape_str(&contrib->shape, got, sizeof got), rt_dtype_name(src->dtype),
                   rt_shape_str(&src->shape, want, sizeof want));
        return false;
    }
    Node **slot = &grads[src->id];
    *slot = *slot ? ir_binary(g, OP_ADD, *slot, contrib, src->loc) : contrib;
    return *slot != NULL;
}

/* on_path[i]: node i depends on some wrt and y depends on node i. */
static bool *mark_path(Graph *g, Arena *scratch, uint32_t nn, Node *y, Node *const *wrt, int nwrt) {
    bool *fwd = arena_alloc(scratch, nn ? nn : 1);
    bool *bwd = arena_alloc(scratch, nn ? nn : 1);
    if (!fwd || !bwd) return NULL;
    for (int i = 0; i < nwrt; i++)
        if (wrt[i] && wrt[i]->id < nn) fwd[wrt[i]->id] = true;
    for (uint32_t i = 0; i < nn; i++) {
        Node *n = g->nodes[i];
        for (int s = 0; s < n->nsrc && !fwd[i]; s++)
            fwd[i] = fwd[n->src[s]->id];
    }
    bwd[y->id] = true;
    for (uint32_t i = y->id + 1; i-- > 0;) {
        if (!bwd[i]) continue;
        Node *n = g->nodes[i];
        for (int s = 0; s < n->nsrc; s++)
            bwd[n->src[s]->id] = true;
    }
    for (uint32_t i = 0; i < nn; i++)
        fwd[i] = fwd[i] && bwd[i];
    return fwd;
}

bool pass_grad(Graph *g, Node *y, Node *seed, Node *const *wrt, int nwrt, Node **out) {
    for (int i = 0; i < nwrt; i++)
        out[i] = NULL;
    if (!y) return false;
    const uint32_t nn = g->nnodes; /* the sweep never looks at nodes it appends */
    bool ok = true;
    for (int i = 0; i < nwrt; i++) {
        if (!wrt[i]) return false;
        if (!is_float(wrt[i]->dtype)) {
            diag_error(g->diags, wrt[i]->loc,
                       "cannot differentiate with respect to a %s value; "
                       "gradients need a floating-point variable",
                       rt_dtype_name(wrt[i]->dtype));
            ok = false;
        }
    }
    if (!is_float(y->dtype)) {
        diag_error(g->diags, y->loc,
                   "cannot differentiate a %s value; the objective must be "
                   "floating point",
                   rt_dtype_name(y->dtype));
        return false;
    }
    if (seed && (!rt_shape_eq(&seed->shape, &y->shape) || seed->dtype != y->dtype)) {
        char ys[64], ss[64];
        diag_error(g->diags, seed->loc, "gradient seed %s%s does not match the value %s%s",
                   rt_dtype_name(seed->dtype), rt_shape_str(&seed->shape, ss, sizeof ss),
                   rt_dtype_name(y->dtype), rt_shape_str(&y->shape, ys, sizeof ys));
        return false;
    }

    /* Side tables live in a scratch arena of their own: the graph's arena
     * receives the gradient nodes and must not be reset under them. */
    Arena *scratch = arena_new();
    bool *on_path = scratch ? mark_path(g, scratch, nn, y, wrt, nwrt) : NULL;
    Node **grads = scratch ? arena_alloc(scratch, (nn ? nn : 1) * sizeof *grads) : NULL;
    if (!on_path || !grads) {
        arena_free(scratch);
        diag_error(g->diags, y->loc, "out of memory in autodiff");
        return false;
    }

    /* A seed of ones for a non-scalar y is the gradient of sum(y). */
    grads[y->id] = seed ? seed : ir_const(g, y->dtype, y->shape, 1.0, y->loc);
    if (!grads[y->id]) ok = false;

    for (uint32_t i = y->id + 1; ok && i-- > 0;) {
        Node *n = g->nodes[i];
        Node *gout = grads[i];
        if (!gout || !on_path[i] || !is_float(n->dtype)) continue;
        const GradRule *rule = &pass_grad_rules[n->op];
        if (rule->kind != GRAD_KIND_RULE) continue;
        bool any = false;
        for (int s = 0; s < n->nsrc; s++)
            any |= on_path[n->src[s]->id];
        if (!any) continue;
        Node **gsrc = arena_alloc(scratch, (size_t)n->nsrc * sizeof *gsrc);
        if (!gsrc) {
            ok = false;
            break;
        }
        if (!rule->fn(g, n, gout, gsrc)) {
            ok = false;
            break;
        }
        for (int s = 0; s < n->nsrc && ok; s++) {
            Node *src = n->src[s];
            if (!on_path[src->id] || !is_float(src->dtype)) continue;
            ok = accumulate(g, grads, src, gsrc[s], ir_op_name(n->op));
        }
    }

    for (int i = 0; ok && i < nwrt; i++) {
        Node *w = wrt[i];
        if (!is_float(w->dtype)) continue;
        /* zeros when y does not depend on w */
        out[i] = grads[w->id] ? grads[w->id] : ir_const(g, w->dtype, w->shape, 0.0, w->loc);
        if (!out[i]) ok = false;
    }
    arena_free(scratch);
    if (!ok)
        for (int i = 0; i < nwrt; i++)
            out[i] = NULL;
    return ok;
}

/* sum over every axis */
static Node *sum_all(Graph *g, Node *a, SrcLoc loc) {
    if (!a) return NULL;
    uint32_t axes = a->shape.rank ? (uint32_t)((1ull << a->shape.rank) - 1) : 0;
    return a->shape.rank ? ir_reduce(g, OP_SUM, a, axes, loc) : a;
}

static bool check_scalar_objective(Graph *g, Node *y, const char *what) {
    if (y->shape.rank == 0) return true;
    char s[64];
    diag_error(g->diags, y->loc, "%s needs a scalar objective, got shape %s", what,
               rt_shape_str(&y->shape, s, sizeof s));
    return false;
}

/* H v = d/dw (grad(y, w) . v) */
Node *pass_hvp(Graph *g, Node *y, Node *w, Node *v, SrcLoc loc) {
    if (!y || !w || !v || !check_scalar_objective(g, y, "hvp")) return NULL;
    if (!rt_shape_eq(&v->shape, &w->shape)) {
        char ws[64], vs[64];
        diag_error(g->diags, loc, "hvp: the direction %s must have the shape of the variable %s",
                   rt_shape_str(&v->shape, vs, sizeof vs), rt_shape_str(&w->shape, ws, sizeof ws));
        return NULL;
    }
    Node *gw;
    if (!pass_grad(g, y, NULL, &w, 1, &gw)) return NULL;
    Node *dot = sum_all(g, ir_binary(g, OP_MUL, gw, ir_cast(g, v, gw->dtype, loc), loc), loc);
    if (!dot) return NULL;
    Node *hv;
    return pass_grad(g, dot, NULL, &w, 1, &hv) ? hv : NULL;
}

/* tr H = sum_i d/dw_i (dy/dw_i): the flat gradient is computed once; for each
 * element i its scalar g_i is sliced out and differentiated again, and the
 * i-th entry of that second gradient is the diagonal entry H_ii. */
Node *pass_hessian_trace(Graph *g, Node *y, Node *w, SrcLoc loc) {
    if (!y || !w || !check_scalar_objective(g, y, "hessian_trace")) return NULL;
    Node *gw;
    if (!pass_grad(g, y, NULL, &w, 1, &gw)) return NULL;
    int64_t d = rt_shape_numel(&w->shape);
    Shape flat = rt_shape_make(1, &d);
    Node *gflat = ir_reshape(g, gw, flat, loc);
    Node *trace = ir_scalar(g, w->dtype, 0.0, loc);
    for (int64_t i = 0; i < d && trace; i++) {
        int64_t start = i, stop = i + 1, step = 1;
        Node *gi =
            ir_reshape(g, ir_slice(g, gflat, &start, &stop, &step, loc), rt_shape_scalar(), loc);
        if (!gi) return NULL;
        Node *row;
        if (!pass_grad(g, gi, NULL, &w, 1, &row)) return NULL;
        Node *hii = ir_slice(g, ir_reshape(g, row, flat, loc), &start, &stop, &step, loc);
        trace = ir_binary(g, OP_ADD, trace, ir_reshape(g, hii, rt_shape_scalar(), loc), loc);
    }
    return trace;
}
