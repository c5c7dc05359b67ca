/* Models as values: where each parameter came from, and the warning for
 * parameters that a program with train blocks uses but never trains.
 *
 * A call through a model name is that model's parameters wherever it stands
 * (lower_call.c), so a helper that calls a trained `mlp` sees the trained
 * weights. A call by another name -- a layer called from a helper, an
 * untrained instance -- makes parameters of its own, which keep their
 * initial values when no train block's loss uses them. That is legitimate
 * (a random-feature model) but far more often the silent bug of calling the
 * wrong name, so it is a warning at the call, naming the trained model of the
 * same fn when there is one. */
#include <string.h>

#include "lower_internal.h"

void lw_param_origin(Lower *L, int slot) {
    int n = 0;
    for (const Activation *a = L->act; a && a->fn; a = a->prev) {
        n++;
        if (a->root) break;
    }
    if (n == 0) return;
    ParamOrigin o = {slot, n, NULL, NULL, NULL, false};
    o.calls = arena_alloc(L->a, sizeof *o.calls * (size_t)n);
    o.fns = arena_alloc(L->a, sizeof *o.fns * (size_t)n);
    o.inst = arena_alloc(L->a, sizeof *o.inst * (size_t)n);
    if (!o.calls || !o.fns || !o.inst ||
        !arena_grow(L->a, &L->porig, &L->cap_porig, (size_t)L->nporig + 1, 16)) {
        L->oom = true;
        return;
    }
    int k = n;
    for (const Activation *a = L->act; k > 0; a = a->prev) {
        k--;
        o.calls[k] = a->call;
        o.fns[k] = a->fn;
        o.inst[k] = a->root && a->path != a->fn->name ? a->path : NULL;
    }
    L->porig[L->nporig++] = o;
}

void lw_mark_trained(Lower *L, const int *slots, int n) {
    for (int i = 0; i < L->nporig; i++)
        for (int k = 0; k < n; k++)
            if (L->porig[i].slot == slots[k]) L->porig[i].trained = true;
}

/* A trained model of fn d: a fn a train block names, or a `model` of d that
 * one trains; NULL when none. */
static const char *trained_model_of(Lower *L, const Decl *d) {
    FeMod *m = L->main;
    for (int i = 0; i < m->n; i++) {
        const Global *g = &m->g[i];
        if (g->kind == G_FN && g->trained && g->decl == d) return g->name;
        if (g->kind != G_MODEL || !g->v || g->v->kind != V_FUNC || g->v->u.fn.decl != d) continue;
        for (int k = 0; k < m->prog->ndecls; k++) {
            const Decl *t = m->prog->decls[k];
            if (t->kind == DC_TRAIN && strcmp(t->name, g->name) == 0) return g->name;
        }
    }
    return NULL;
}

static bool same_loc(SrcLoc a, SrcLoc b) {
    return a.file == b.file && a.line == b.line && a.col == b.col;
}

/* The call to name: the outermost one whose fn has a trained model (the
 * likely slip: calling that fn by another name), else the root's. */
static int blame(Lower *L, const ParamOrigin *p, const char **tm) {
    for (int k = 0; k < p->ncalls; k++)
        if ((*tm = trained_model_of(L, p->fns[k]))) return k;
    return 0;
}

void lw_warn_untrained(Lower *L) {
    if (L->ntrains == 0) return;
    for (int i = 0; i < L->nporig; i++) {
        const ParamOrigin *p = &L->porig[i];
        if (p->trained) continue;
        const char *tm = NULL;
        int k = blame(L, p, &tm);
        bool seen = false; /* one warning per call */
        for (int j = 0; j < i && !seen; j++) {
            const ParamOrigin *q = &L->porig[j];
            const char *t2;
            seen = !q->trained && same_loc(q->calls[blame(L, q, &t2)], p->calls[k]);
        }
        if (seen) continue;
        const char *path = L->m->slots[p->slot].name;
        const char *what = p->inst[k]
                               ? lw_printf(L, "model '%s' (a %s)", p->inst[k], p->fns[k]->name)
                               : lw_printf(L, "'%s'", p->fns[k]->name);
        Diag *dg = diag_warning(L->d, p->calls[k],
                                "this call of %s makes parameters of its own (%s, ...) that no "
                                "train block trains: they keep their initial values",
                                what, path);
        if (tm)
            diag_add_note(L->d, dg, p->calls[k],
                          "the trained %s is '%s': call it by that name to use its parameters",
                          p->fns[k]->name, tm);
        else
            diag_add_note(L->d, dg, p->calls[k],
                          "a model is trained under the name its train block gives "
                          "(`train %s`, or `model NAME = %s` and `train NAME`)",
                          p->fns[k]->name, p->fns[k]->name);
    }
}
