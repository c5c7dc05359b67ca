/* The graph calls of a module's host program (module.h): one walk over its
 * statements, which the verifier, the program image, `dflow ir` and
 * `dflow run --mem-report` share, so all of them see the same calls in the
 * same order. */
#include "module.h"

#include <limits.h>

#include "../runtime/grow.h"

static bool walk_block(const HostBlock *b, bool (*visit)(void *, const GraphCall *), void *ctx);

static bool walk_stmt(const HostStmt *st, bool (*visit)(void *, const GraphCall *), void *ctx) {
    switch (st->op) {
    case HS_RUN:
        return visit(ctx, &st->u.run);
    case HS_FOR:
        return walk_block(&st->u.loop.body, visit, ctx);
    case HS_WHILE:
        return visit(ctx, &st->u.whl.cond) && walk_block(&st->u.whl.body, visit, ctx);
    case HS_IF:
        return walk_block(&st->u.cond.then_b, visit, ctx) &&
               walk_block(&st->u.cond.else_b, visit, ctx);
    case HS_TRAIN: {
        const TrainSpec *t = st->u.train;
        if (!t) return true;
        if (!visit(ctx, &t->step)) return false;
        for (int i = 0; i < t->nevals; i++)
            if (!walk_block(&t->evals[i].body, visit, ctx)) return false;
        return true;
    }
    case HS_BREAK:
    case HS_LOG:
    case HS_PRINT:
    case HS_SAVE:
        return true; /* no graph call */
    }
    return true; /* not a statement kind: nothing to visit */
}

static bool walk_block(const HostBlock *b, bool (*visit)(void *, const GraphCall *), void *ctx) {
    for (int i = 0; i < b->n; i++)
        if (!walk_stmt(b->items[i], visit, ctx)) return false;
    return true;
}

bool ir_module_each_call(const Module *m, bool (*visit)(void *ctx, const GraphCall *c), void *ctx) {
    return walk_block(&m->init, visit, ctx) && walk_block(&m->main, visit, ctx);
}

typedef struct {
    const Graph **graphs;
    const GraphCall **calls; /* the first call of each graph */
    int n, cap;
    Arena *a;
} Distinct;

static bool note_graph(void *ctx, const GraphCall *c) {
    Distinct *w = ctx;
    const Graph *g = c->graph;
    if (!g) return true;
    for (int i = 0; i < w->n; i++)
        if (w->graphs[i] == g) return true;
    if (w->n == w->cap) { /* two parallel arrays, one capacity */
        size_t old = (size_t)w->cap, cap;
        if (!rt_grow_cap(old, old + 1, 16, INT_MAX, &cap) ||
            !arena_resize(w->a, &w->graphs, old, cap) || !arena_resize(w->a, &w->calls, old, cap))
            return false;
        w->cap = (int)cap;
    }
    w->calls[w->n] = c;
    w->graphs[w->n++] = g;
    return true;
}

int ir_module_graphs(const Module *m, Arena *a, const Graph ***graphs, const GraphCall ***calls) {
    Distinct w = {.a = a};
    if (!ir_module_each_call(m, note_graph, &w)) return -1;
    if (graphs) *graphs = w.graphs;
    if (calls) *calls = w.calls;
    return w.n;
}
