/* Graph-to-graph passes and the pipeline that runs them.
 *
 * A pass is a function bool(Graph *, DiagList *): it rewrites the graph in
 * place and returns false (with a diagnostic) when it fails. pipeline.c runs
 * them in one fixed order, verifying the graph after each when built with
 * DFLOW_VERIFY, and can stop after a named pass (`dflow ir --after PASS`).
 *
 * Rewriting: graphs are append-only arrays, so a pass that removes or
 * replaces nodes builds a fresh node array (pass_rebuild: copy the live nodes
 * in order with remapped sources) and swaps it into the same Graph struct.
 * The Graph pointer, input indices and the order of outputs stay the same;
 * every Node pointer into the old graph is stale afterwards, so callers that
 * hold Node pointers must re-read them from g->inputs and g->outputs. */
#ifndef DFLOW_PASSES_PASS_H
#define DFLOW_PASSES_PASS_H

#include <stdio.h>

#include "../ir/ir.h"

typedef bool (*PassFn)(Graph *g, DiagList *d);

typedef struct {
    const char *name; /* as accepted by `dflow ir --after NAME` */
    PassFn fn;
    const char *doc; /* one line for --help and error messages */
} PassInfo;

/* ---- the passes, in pipeline order ---- */
/* Constant folding: an op whose sources are all constants becomes a constant
 * (elementwise ops are evaluated once with the interpreter; movement of a
 * constant is a constant). Random ops are never folded. */
bool pass_fold(Graph *g, DiagList *d);
/* Algebraic identities that are exact: x*1, 1*x, x+0, 0+x, x-0, x/1,
 * -(-x), casts to the same dtype, broadcasts/reshapes to the same shape,
 * identity permutes, full slices and empty pads. */
bool pass_simplify(Graph *g, DiagList *d);
/* Common-subexpression elimination: nodes equal in op, dtype, shape,
 * sources and attributes are merged (random ops too: they are pure). */
bool pass_cse(Graph *g, DiagList *d);
/* Dead-code elimination: keeps what the outputs need, plus every input. */
bool pass_dce(Graph *g, DiagList *d);

/* ---- the pipeline ---- */
/* Runs every pass in order, or up to and including stop_after (NULL = all).
 * An unknown stop_after is an error listing the pass names. */
bool pass_run_pipeline(Graph *g, const char *stop_after);
/* True when name is a pipeline pass. */
bool pass_pipeline_has(const char *name);
/* The passes in order; *n receives their count. */
const PassInfo *pass_pipeline_list(int *n);
/* "fold, simplify, cse, dce", allocated in a (NULL on out-of-memory). */
char *pass_pipeline_names(Arena *a);

/* ---- rewriting helpers (rewrite.c) ---- */
/* Called for each kept node in order with its sources already mapped into
 * the new graph ng; returns the node that replaces it (an existing node of
 * ng or a new one), or NULL to copy it unchanged. */
typedef Node *(*RewriteFn)(void *ctx, Graph *ng, Node *old, Node **src);
/* Rebuilds g: nodes with keep[id] false are dropped (keep NULL = keep all;
 * inputs are always kept, at their indices), the rest are rewritten by fn
 * (may be NULL) or copied. Returns false with a diagnostic naming the pass
 * when a kept node needs a dropped one or a builder fails. */
bool pass_rebuild(Graph *g, const bool *keep, RewriteFn fn, void *ctx, const char *pass);
/* A copy of old in ng with the given sources (flags and name kept). */
Node *pass_copy_node(Graph *ng, const Node *old, Node **src);
/* True when n is a CONST equal to v, looking through broadcasts and reshapes. */
bool pass_is_const_value(const Node *n, double v);

#endif
