/* Rebuilding a graph: the one way passes remove or replace nodes.
 *
 * Graphs are append-only arrays, so instead of editing nodes in place a pass
 * walks the old nodes in creation order, maps each one into a fresh graph in
 * the same arena (a replacement chosen by the pass, or a copy with remapped
 * sources) and finally moves the fresh node array into the old Graph struct.
 * Inputs are copied in order, so input indices survive; outputs keep their
 * order. The old nodes stay in the arena, unreachable, until it is freed. */
#include <string.h>

#include "pass.h"

Node *pass_copy_node(Graph *ng, const Node *old, Node **src) {
    Node *n;
    if (old->op == OP_INPUT) {
        n = ir_node_new(ng, OP_INPUT, old->dtype, old->shape, NULL, 0, NULL, old->loc);
    } else {
        n = ir_node_new(ng, old->op, old->dtype, old->shape, src, old->nsrc, &old->attr, old->loc);
    }
    if (!n) return NULL;
    n->flags = old->flags;
    n->name = old->name;
    return n;
}

bool pass_is_const_value(const Node *n, double v) {
    while (n && (n->op == OP_BROADCAST || n->op == OP_RESHAPE))
        n = n->src[0];
    return n && n->op == OP_CONST && n->attr.constant.value == v;
}

bool pass_rebuild(Graph *g, const bool *keep, RewriteFn fn, void *ctx, const char *pass) {
    Graph *ng = ir_graph_new(g->arena, g->diags, g->name);
    Node **map = arena_alloc(g->arena, (g->nnodes ? g->nnodes : 1) * sizeof *map);
    Node *srcbuf[8];
    if (!ng || !map) {
        diag_error(g->diags, srcloc_none(), "out of memory in pass %s", pass);
        return false;
    }
    for (uint32_t i = 0; i < g->nnodes; i++) {
        Node *old = g->nodes[i];
        if (keep && !keep[i] && old->op != OP_INPUT) continue;
        Node **src =
            old->nsrc <= 8 ? srcbuf : arena_alloc(g->arena, (size_t)old->nsrc * sizeof *src);
        if (!src) {
            diag_error(g->diags, old->loc, "out of memory in pass %s", pass);
            return false;
        }
        for (int s = 0; s < old->nsrc; s++) {
            src[s] = map[old->src[s]->id];
            if (!src[s]) {
                diag_error(g->diags, old->loc,
                           "internal error: %s: node %%%u needs dropped node %%%u", pass, old->id,
                           old->src[s]->id);
                return false;
            }
        }
        Node *r = (fn && old->op != OP_INPUT) ? fn(ctx, ng, old, src) : NULL;
        map[i] = r ? r : pass_copy_node(ng, old, src);
        if (!map[i]) {
            if (!diag_has_errors(g->diags))
                diag_error(g->diags, old->loc, "internal error: %s: could not rebuild node %%%u",
                           pass, old->id);
            return false;
        }
    }
    for (int j = 0; j < g->noutputs; j++) {
        Node *o = map[g->outputs[j]->id];
        if (!o) {
            diag_error(g->diags, g->outputs[j]->loc, "internal error: %s: output %d was dropped",
                       pass, j);
            return false;
        }
        if (ir_graph_add_output(ng, o) < 0) return false;
    }
    /* Same struct, new contents: callers keep their Graph pointer. */
    ng->name = g->name;
    *g = *ng;
    return true;
}
