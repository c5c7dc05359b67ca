/* THE pass pipeline: every graph-to-graph pass, in order, in one function.
 *
 * pass_run_pipeline is straight-line on purpose (QBE's func(), Halide's
 * Lower.cpp): read it top to bottom to know what happens to a graph. Between
 * passes the verifier runs when built with DFLOW_VERIFY, naming the pass
 * that broke the graph; `dflow ir --after NAME` stops after a pass. The
 * table below lists the same passes for lookups and messages; step() checks
 * that the two stay in the same order. */
#include <string.h>

#include "pass.h"

static const PassInfo passes[] = {
    {"fold", pass_fold, "constant folding"},
    {"simplify", pass_simplify, "exact algebraic identities"},
    {"cse", pass_cse, "common-subexpression elimination"},
    {"dce", pass_dce, "dead-code elimination"},
};
enum { NPASSES = sizeof passes / sizeof passes[0] };

typedef struct {
    Graph *g;
    const char *stop_after;
    int next; /* index into passes[] of the step to run next */
    bool stopped;
} Pipeline;

/* Runs one pass; false on failure. Sets p->stopped after stop_after. */
static bool step(Pipeline *p, const char *name, PassFn fn) {
    if (p->stopped) return true;
    /* internal invariant: the table and the function list the same order */
    if (p->next >= NPASSES || strcmp(passes[p->next].name, name) != 0 || passes[p->next].fn != fn) {
        diag_error(p->g->diags, srcloc_none(), "internal error: pass table out of order at '%s'",
                   name);
        return false;
    }
    p->next++;
    if (!fn(p->g, p->g->diags)) return false;
#ifdef DFLOW_VERIFY
    if (!ir_verify(p->g, name)) return false;
#endif
    if (p->stop_after && strcmp(p->stop_after, name) == 0) p->stopped = true;
    return true;
}

bool pass_run_pipeline(Graph *g, const char *stop_after) {
    if (stop_after && !pass_pipeline_has(stop_after)) {
        diag_error(g->diags, srcloc_none(), "unknown pass '%s'; the passes are: %s", stop_after,
                   pass_pipeline_names(g->arena));
        return false;
    }
    Pipeline p = {g, stop_after, 0, false};
    return step(&p, "fold", pass_fold) && step(&p, "simplify", pass_simplify) &&
           step(&p, "cse", pass_cse) && step(&p, "dce", pass_dce);
}

bool pass_pipeline_has(const char *name) {
    for (int i = 0; i < NPASSES; i++)
        if (name && strcmp(passes[i].name, name) == 0) return true;
    return false;
}

const PassInfo *pass_pipeline_list(int *n) {
    *n = NPASSES;
    return passes;
}

char *pass_pipeline_names(Arena *a) {
    size_t len = 1;
    for (int i = 0; i < NPASSES; i++)
        len += strlen(passes[i].name) + 2;
    char *buf = arena_alloc(a, len);
    if (!buf) return NULL;
    for (int i = 0; i < NPASSES; i++) {
        if (i) strcat(buf, ", ");
        strcat(buf, passes[i].name);
    }
    return buf;
}
