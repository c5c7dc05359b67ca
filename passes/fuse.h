/* Fusion decisions: which nodes of a graph are computed together in one
 * kernel, and which values are materialised in memory between kernels.
 *
 * The plan is a side structure over a Graph (nothing is added to Node): a
 * role per node, a group per materialised value, groups in topological
 * order. Each group computes exactly one value (its root). Legality, in the
 * spirit of ggml_can_fuse: an elementwise or random node is fused into the
 * groups that consume it (counted through movement ops) when it is no graph
 * output, no path to them reads it from memory (matmul, gather, scatter, a
 * scalar operand of a random op), and recomputing it is cheap: at most four
 * groups (two for transcendental and random ops), its fused subtree's weight
 * times the extra groups within a budget, and through a broadcast expansion
 * (each element read several times) only a subtree of one or two cheap ops.
 * A shared value is thus recomputed in each reader, with the same bits, not
 * written and read back. Reductions end a group (a trailing
 * reduction over fused elementwise work), except row reductions: a SUM,
 * MAX or MIN over the trailing axes of a row of at most PASS_FUSE_ROW_MAX
 * elements, read by at most two groups through per-row broadcasts and
 * elementwise ops so that its kept coordinates are a prefix of each
 * group's loop nest, is a *phase* of those groups instead (FN_FUSED): the
 * kernel computes it once per row, in an inner loop over the row, before
 * the rest of the row's work, while the row is still in cache. Softmax,
 * log_softmax, layernorm and cross-entropy become one kernel each that reads
 * its input from memory once. Matmul is a group of its own, or of its only
 * reader when that is `x + product`, `product + x` or `x - product` (a bias,
 * an optimizer's `0 * v + grad`): x is written into the result and the
 * product added by the BLAS call (beta = 1), so the result is not first
 * zeroed and then read again; the rounding is the same (one addition of the
 * product's sum to x)
 * (BLAS). Movement ops that only remap indices (reshape, permute,
 * broadcast, slice, pad, concat, gather), stop_grad and leaves (const, iota) are never
 * materialised unless they are graph outputs: each consumer evaluates them
 * as index expressions, so they may appear in several groups. */
#ifndef DFLOW_PASSES_FUSE_H
#define DFLOW_PASSES_FUSE_H

#include <stdio.h>

#include "../ir/ir.h"

typedef enum {
    FN_DEAD,   /* not needed by any output */
    FN_INPUT,  /* a graph input: a buffer the caller provides */
    FN_INLINE, /* leaf or index remap, evaluated inside each consumer */
    FN_FUSED,  /* computed inside each group that consumes it (an elementwise or
                  random op, or a row reduction computed as a phase) */
    FN_ROOT,   /* materialised: the value a group computes */
} FusionRole;

typedef enum {
    FG_MAP,     /* elementwise over the root's shape (random ops included) */
    FG_REDUCE,  /* a reduction over fused elementwise work */
    FG_MATMUL,  /* a BLAS call; operands are strided views of buffers. The root may
                   be an add or sub of the product and a value of its shape (the
                   product's only use): that value is computed into the result
                   first and the product accumulated onto it (beta = 1) */
    FG_SCATTER, /* scatter_add: zero the result, accumulate rows */
    FG_COPY,    /* the root is a movement op or leaf (a graph output) */
    FG_ORDER,   /* cumsum, argsort, components: a call of runtime/order.h's routine on
                   the source's buffer (always materialised) */
    FG_CALL,    /* a library call (OPF_CALL) alone: its operands are buffers */
} FusionKind;

typedef struct {
    int id;
    FusionKind kind;
    Node *root;   /* the one value this group materialises */
    Node **nodes; /* members in topological order, root last */
    int nnodes;
    Node **inputs; /* materialised values read (inputs or other roots), by id */
    int ninputs;
    bool has_ew;  /* elementwise work besides the root (labels "ew+reduce") */
    bool has_rng; /* a random op among the members */
    /* row reductions among the members (FN_FUSED), topological order: each
       is computed per row of the loop nest before the row's other work
       (labels "rows+ew", "rows+ew+reduce") */
    Node **phases;
    int nphases;
    Node *matmul; /* FG_MATMUL: the product (the root, or an operand of the root) */
} FusionGroup;

/* The longest row (reduced elements) a reduction may be a phase over: rows
 * this long, and the few operands read with them, stay in L2 between the
 * phases. */
#define PASS_FUSE_ROW_MAX 65536

typedef struct {
    const Graph *graph;
    uint32_t nnodes;
    FusionRole *role;    /* per node id */
    int *group_of;       /* per node id; -1 for dead nodes and inputs; an inline
                            or fused node used by several groups names the first */
    FusionGroup *groups; /* topological order (by root id) */
    int ngroups;
    /* per node id, for phases: every group computes it at its own outer loop
       variables, never at the row loop of another phase, so the rows it reads
       are the rows of the group's output being computed (passes/memplan.c may
       then update its source in place) */
    bool *phase_outer;
} FusionPlan;

/* Decides the groups of g. Everything is allocated in a (the plan is valid
 * while g is unchanged and a lives). NULL with a diagnostic on g->diags on
 * out-of-memory. */
FusionPlan *pass_fuse_plan(const Graph *g, Arena *a);

/* "ew", "ew+reduce", "rng+ew", "matmul", ...: the label used in dumps. */
const char *pass_fuse_label(const FusionGroup *gr, char *buf, size_t n);

/* One line per kernel:
 *   kernel k3 (ew+reduce) f32[128] <- %4, %9 : %5 %6 %7 %8
 * (result type, materialised inputs, member nodes), and for a kernel with
 * row phases a second line naming them in the order they run:
 *     per row: %1 reduce_max, %7 sum over f32[64,64] axes={1} */
void pass_fuse_print(const FusionPlan *p, FILE *out);
/* The graph (ir_print) followed by its kernels: `dflow ir --after fuse`. */
void pass_fuse_print_graph(const Graph *g, FILE *out);

/* A strided view of a materialised value: element (i0..ir) of the view is
 * base[offset + sum i_k * strides[k]]. */
typedef struct {
    const Node *base;
    Shape shape;
    int64_t strides[IR_MAX_RANK];
    int64_t offset;
} FuseView;

/* True when n, read through inline movement ops (reshape, permute,
 * broadcast, slice), is a strided view of a materialised node (role INPUT
 * or ROOT in `role`, or n itself when it is not inline). */
bool pass_fuse_view(const Node *n, const FusionRole *role, FuseView *v);

/* True when the last two axes of v form a matrix BLAS can read: one of them
 * has stride 1 (trans tells which: false = row-major) and the other a
 * leading dimension >= the row length. */
bool pass_fuse_blas_matrix(const FuseView *v, bool *trans, int64_t *ld);

#endif
