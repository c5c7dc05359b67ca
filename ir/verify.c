/* The IR verifier: run after every pass (and by tests) to catch a pass that
 * broke the graph's invariants before anything downstream trips over it.
 *
 * It checks that ids are dense, that sources come earlier in the same graph
 * (so creation order is a topological order), the op's arity, that re-running
 * the op's rule (shape.c) reproduces the stored dtype and shape (which also
 * validates the attributes), the input table, and the outputs. Problems are
 * "internal error: after <pass>: %N ..." diagnostics: they are compiler bugs,
 * never the user's. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"
#include "shape.h"

typedef struct {
    const Graph *g;
    const char *pass;
    bool ok;
} Verifier;

static void report(Verifier *v, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(Verifier *v, SrcLoc loc, const char *fmt, ...) {
    v->ok = false;
    if (!v->g->diags) return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (v->pass)
        diag_error(v->g->diags, loc, "internal error: after %s: %s", v->pass, msg);
    else
        diag_error(v->g->diags, loc, "internal error: %s", msg);
}

/* n is a node of g (not merely a node with a plausible id). */
static bool owned(const Graph *g, const Node *n) {
    return n && n->id < g->nnodes && g->nodes[n->id] == n;
}

static void verify_node(Verifier *v, const Node *n, uint32_t i) {
    const Graph *g = v->g;
    if (n->id != i) {
        report(v, n->loc, "node at position %u has id %u", i, n->id);
        return;
    }
    if ((unsigned)n->op >= OP_COUNT) {
        report(v, n->loc, "%%%u: bad op %d", i, (int)n->op);
        return;
    }
    const OpInfo *info = &ir_ops[n->op];
    if (info->arity >= 0 ? n->nsrc != info->arity : n->nsrc < 1) {
        report(v, n->loc, "%%%u %s: has %d sources, expects %d", i, info->name, n->nsrc,
               info->arity);
        return;
    }
    if (n->nsrc && !n->src) {
        report(v, n->loc, "%%%u %s: missing source array", i, info->name);
        return;
    }
    for (int k = 0; k < n->nsrc; k++) {
        const Node *s = n->src[k];
        if (!s) {
            report(v, n->loc, "%%%u %s: source %d is NULL", i, info->name, k);
            return;
        }
        if (!owned(g, s)) {
            report(v, n->loc, "%%%u %s: source %d is not a node of graph %s", i, info->name, k,
                   g->name);
            return;
        }
        if (s->id >= i) {
            report(v, n->loc, "%%%u %s: source %%%u does not come before it", i, info->name, s->id);
            return;
        }
    }
    if (n->shape.rank < 0 || n->shape.rank > IR_MAX_RANK) {
        report(v, n->loc, "%%%u %s: rank %d out of range", i, info->name, n->shape.rank);
        return;
    }
    DType dt = n->dtype;
    Shape s = n->shape;
    char err[512];
    if (!ir_infer(n->op, n->src, n->nsrc, &n->attr, &dt, &s, err, sizeof err)) {
        report(v, n->loc, "%%%u %s", i, err);
        return;
    }
    if (dt != n->dtype || !rt_shape_eq(&s, &n->shape)) {
        char b1[96], b2[96];
        report(v, n->loc, "%%%u %s: stored type %s, but its rule gives %s", i, info->name,
               ir_type_str(n->dtype, &n->shape, b1, sizeof b1), ir_type_str(dt, &s, b2, sizeof b2));
        return;
    }
    if (n->op == OP_INPUT) {
        int k = n->attr.input.index;
        if (k < 0 || k >= g->ninputs || g->inputs[k] != n)
            report(v, n->loc, "%%%u input: index %d does not match the graph's input table", i, k);
    }
}

bool ir_verify(const Graph *g, const char *after_pass) {
    if (!g) return false;
    Verifier v = {g, after_pass, true};
    SrcLoc none = srcloc_none();
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!n) {
            report(&v, none, "node slot %u is empty", i);
            continue;
        }
        verify_node(&v, n, i);
    }
    for (int k = 0; k < g->ninputs; k++) {
        const Node *n = g->inputs[k];
        if (!owned(g, n) || n->op != OP_INPUT || n->attr.input.index != k)
            report(&v, n && owned(g, n) ? n->loc : none,
                   "input #%d is not an input node of graph %s at index %d", k, g->name, k);
    }
    for (int k = 0; k < g->noutputs; k++) {
        const Node *n = g->outputs[k];
        if (!n)
            report(&v, none, "output #%d is NULL", k);
        else if (!owned(g, n))
            report(&v, none, "output #%d is not a node of graph %s", k, g->name);
    }
    return v.ok;
}
