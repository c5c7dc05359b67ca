/* Tests for passes/fuse.c: the fusion legality rules and the kernel dump.
 *
 * Each test builds a small graph and checks which nodes end up materialised
 * (roots), which are fused into their consumers and which are inline
 * index expressions: chains with single uses fuse, a cheap value shared by
 * a few kernels is recomputed in each of them (and gives the interpreter's
 * results, bit-identical in every kernel), an expensive or widely shared
 * value and values read through an expanding broadcast are materialised,
 * a reduction ends a
 * group with its elementwise prologue, matmul stands alone with transposes
 * folded into BLAS views, outputs and NO_FUSE nodes are roots. Row
 * reductions read per row become phases of their readers: softmax,
 * log_softmax, layernorm and the cross-entropy loss are one kernel each,
 * the loss's gradient recomputes its row phases, and reductions read
 * across rows, rows too long, or phases that would leave a large kernel
 * serial stay kernels of their own. Then the
 * invariants every plan must satisfy (topological group order, inputs are
 * roots or graph inputs) on a gradient graph, and the exact text of
 * `dflow ir --after fuse` for a small graph. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codegen/kernel.h"
#include "codegen/llvm/llvm_backend.h"
#include "helpers/ir_helpers.h"
#include "ir/interp.h"
#include "ir/ir.h"
#include "passes/autodiff.h"
#include "passes/fuse.h"

static Arena *A;
static DiagList *D;
static Graph *G;
static SrcLoc L = {0, 0, 0, 0};

static void setup(void) {
    A = arena_new();
    D = diag_list_new(A, source_set_new(A));
    G = ir_graph_new(A, D, "t");
}
static void teardown(void) {
    arena_free(A);
}
TestSuite(fuse, .init = setup, .fini = teardown);

static Node *in(DType dt, Shape s) {
    return ir_input(G, dt, s, NULL, L);
}
static Node *bin(OpKind op, Node *a, Node *b) {
    return ir_binary(G, op, a, b, L);
}
static Node *un(OpKind op, Node *a) {
    return ir_unary(G, op, a, L);
}

static FusionPlan *plan(void) {
    cr_assert(ir_verify(G, "test"), "verify failed");
    FusionPlan *p = pass_fuse_plan(G, A);
    cr_assert_not_null(p);
    return p;
}

static FusionRole role(const FusionPlan *p, const Node *n) {
    return p->role[n->id];
}
static const FusionGroup *group(const FusionPlan *p, const Node *n) {
    int g = p->group_of[n->id];
    cr_assert_geq(g, 0, "%%%u has no group", n->id);
    return &p->groups[g];
}

Test(fuse, elementwise_chain_is_one_kernel) {
    Node *x = in(DT_F32, th_shape(1, 8)), *y = in(DT_F32, th_shape(1, 8));
    Node *a = bin(OP_MUL, x, y), *b = un(OP_EXP, a), *c = bin(OP_ADD, b, x);
    ir_graph_add_output(G, c);
    FusionPlan *p = plan();
    cr_assert_eq(p->ngroups, 1);
    cr_assert_eq(role(p, a), FN_FUSED);
    cr_assert_eq(role(p, b), FN_FUSED);
    cr_assert_eq(role(p, c), FN_ROOT);
    cr_assert_eq(p->groups[0].ninputs, 2);
    cr_assert_eq(role(p, x), FN_INPUT);
    cr_assert_eq(p->group_of[x->id], -1);
}

/* Does group gr compute n? */
static bool member(const FusionGroup *gr, const Node *n) {
    for (int i = 0; i < gr->nnodes; i++)
        if (gr->nodes[i] == n) return true;
    return false;
}

Test(fuse, shared_cheap_value_is_recomputed) {
    Node *x = in(DT_F32, th_shape(1, 8));
    Node *e = un(OP_EXP, x);
    Node *s = bin(OP_ADD, e, e); /* two uses in one kernel */
    Node *t = un(OP_NEG, e);     /* and a second kernel */
    ir_graph_add_output(G, s);
    ir_graph_add_output(G, t);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, e), FN_FUSED);
    cr_assert_eq(p->ngroups, 2);
    cr_assert(member(group(p, s), e) && member(group(p, t), e), "exp is computed in both");
    cr_assert_eq(group(p, s)->ninputs, 1);
    cr_assert_eq(group(p, s)->inputs[0], x, "nothing but x is read");
}

Test(fuse, shared_value_is_materialised_when_recomputing_costs_too_much) {
    /* a transcendental is recomputed in at most two kernels */
    Node *x = in(DT_F32, th_shape(1, 8));
    Node *e = un(OP_EXP, x);
    ir_graph_add_output(G, un(OP_NEG, e));
    ir_graph_add_output(G, un(OP_ABS, e));
    ir_graph_add_output(G, un(OP_SIGN, e));
    FusionPlan *p = plan();
    cr_assert_eq(role(p, e), FN_ROOT);
    cr_assert_eq(p->ngroups, 4);
    /* a cheap op in at most four */
    teardown();
    setup();
    x = in(DT_F32, th_shape(1, 8));
    Node *c = bin(OP_MUL, x, x);
    OpKind readers[5] = {OP_NEG, OP_ABS, OP_SIGN, OP_FLOOR, OP_EXP};
    for (int k = 0; k < 4; k++)
        ir_graph_add_output(G, un(readers[k], c));
    p = plan();
    cr_assert_eq(role(p, c), FN_FUSED, "four readers: recomputed");
    ir_graph_add_output(G, un(readers[4], c));
    p = plan();
    cr_assert_eq(role(p, c), FN_ROOT, "five readers: materialised");
    /* a deep subtree (7 exps: weight 28) is not worth recomputing even twice;
       the value below the budget is recomputed and the one above kept */
    teardown();
    setup();
    Node *v = in(DT_F32, th_shape(1, 8)), *chain[7];
    for (int k = 0; k < 7; k++)
        v = chain[k] = un(OP_EXP, v);
    ir_graph_add_output(G, un(OP_NEG, v));
    ir_graph_add_output(G, un(OP_ABS, v));
    p = plan();
    cr_assert_eq(role(p, v), FN_ROOT);
    cr_assert_eq(p->ngroups, 3);
    for (int k = 0; k < 6; k++)
        cr_assert_eq(role(p, chain[k]), FN_FUSED, "the chain itself fuses into one kernel");
    /* read through an expanding broadcast, one cheap op is recomputed per
       read; anything dearer is materialised */
    teardown();
    setup();
    x = in(DT_F32, th_shape(1, 8));
    Node *m = in(DT_F32, th_shape(2, 4, 8));
    e = bin(OP_ADD, x, x);
    Node *e2 = un(OP_NEG, un(OP_ABS, bin(OP_MUL, x, x)));
    ir_graph_add_output(G, bin(OP_MUL, bin(OP_MUL, m, e), e2));
    ir_graph_add_output(G, un(OP_NEG, e));
    p = plan();
    cr_assert_eq(role(p, e), FN_FUSED);
    cr_assert_eq(role(p, e2->src[0]), FN_FUSED, "|x*x|: weight 2");
    cr_assert_eq(role(p, e2), FN_ROOT, "-|x*x|: weight 3 per read");
    cr_assert_eq(p->ngroups, 3);
}

Test(fuse, broadcast_expansion_materialises_the_producer) {
    Node *x = in(DT_F32, th_shape(1, 8)), *m = in(DT_F32, th_shape(2, 4, 8));
    Node *e = un(OP_EXP, x);     /* read 4 times through the broadcast */
    Node *o = bin(OP_MUL, m, e); /* builder inserts broadcast(e) */
    ir_graph_add_output(G, o);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, e), FN_ROOT);
    cr_assert_eq(role(p, o->src[1]), FN_INLINE, "the broadcast is an index expression");
    cr_assert_eq(p->ngroups, 2);
    /* ...but a same-size remap does not: exp of a transposed value fuses */
    teardown();
    setup();
    Node *y = in(DT_F32, th_shape(2, 3, 5));
    Node *t = ir_permute(G, un(OP_EXP, y), (int[]){1, 0}, L);
    Node *r = un(OP_NEG, t);
    ir_graph_add_output(G, r);
    p = plan();
    cr_assert_eq(p->ngroups, 1);
    cr_assert_eq(role(p, t->src[0]), FN_FUSED);
}

Test(fuse, reduction_ends_a_group_with_its_prologue) {
    Node *x = in(DT_F32, th_shape(2, 4, 8));
    Node *sq = bin(OP_MUL, x, x);
    Node *s = ir_reduce(G, OP_SUM, sq, 2, L);
    Node *o = un(OP_SQRT, s);
    ir_graph_add_output(G, o);
    ir_graph_add_output(G, s); /* an output: materialised, not a row phase of o's kernel */
    FusionPlan *p = plan();
    cr_assert_eq(role(p, sq), FN_FUSED);
    cr_assert_eq(role(p, s), FN_ROOT);
    cr_assert_eq(group(p, s)->kind, FG_REDUCE);
    cr_assert(group(p, s)->has_ew);
    cr_assert_eq(group(p, o)->kind, FG_MAP);
    char lb[32];
    cr_assert_str_eq(pass_fuse_label(group(p, s), lb, sizeof lb), "ew+reduce");
}

Test(fuse, softmax_is_one_kernel_with_two_row_phases) {
    Node *x = in(DT_F32, th_shape(2, 16, 10));
    ir_graph_add_output(G, ir_softmax(G, x, 1, L));
    FusionPlan *p = plan();
    cr_assert_eq(p->ngroups, 1, "row max, row sum of exp and the division: one kernel");
    const FusionGroup *gr = &p->groups[0];
    cr_assert_eq(gr->kind, FG_MAP);
    cr_assert_eq(gr->nphases, 2);
    cr_assert_eq(gr->phases[0]->op, OP_REDUCE_MAX, "the max first");
    cr_assert_eq(gr->phases[1]->op, OP_SUM, "then the sum, which reads it");
    cr_assert_eq(role(p, gr->phases[0]), FN_FUSED);
    cr_assert_eq(gr->ninputs, 1, "x is the one value read from memory");
    char lb[32];
    cr_assert_str_eq(pass_fuse_label(gr, lb, sizeof lb), "rows+ew");
}

/* A library call is opaque: a group of its own (FG_CALL, labelled by its op)
 * holding only the call, every operand in memory (a transpose and a computed
 * value are materialised, an input is read as it is), and its tuple's
 * projections inlined into the consumers as views of the call's buffer. */
Test(fuse, library_calls_stand_alone_over_materialised_operands) {
    Node *x = in(DT_F32, th_shape(2, 4, 4)), *b = in(DT_F32, th_shape(2, 4, 2));
    Node *xt = ir_permute(G, x, (int[]){1, 0}, L);
    Node *src[2] = {xt, un(OP_EXP, b)};
    Node *s = ir_call(G, OP_SOLVE, src, L);
    Node *t = ir_call(G, OP_QR, &x, L);
    Node *q = ir_tuple_get(G, t, 0, L), *r = ir_tuple_get(G, t, 1, L);
    ir_graph_add_output(G, un(OP_NEG, s));
    ir_graph_add_output(G, bin(OP_ADD, q, r));
    FusionPlan *p = plan();
    const FusionGroup *gs = group(p, s), *gt = group(p, t);
    cr_assert_eq(gs->kind, FG_CALL);
    cr_assert_eq(gt->kind, FG_CALL);
    cr_assert_eq(gs->nnodes, 1, "nothing is fused into a call");
    cr_assert_eq(gt->nnodes, 1);
    cr_assert_eq(role(p, xt), FN_ROOT, "a transposed operand is copied into memory");
    cr_assert_eq(role(p, src[1]), FN_ROOT, "a computed operand is materialised");
    cr_assert_eq(role(p, x), FN_INPUT);
    cr_assert_eq(role(p, q), FN_INLINE, "a projection is a view of the tuple");
    cr_assert_eq(role(p, r->src[0]), FN_INLINE);
    const FusionGroup *ga = group(p, G->outputs[1]);
    cr_assert_eq(ga->ninputs, 1);
    cr_assert_eq(ga->inputs[0], t, "the consumer reads the call's buffer");
    char lb[32];
    cr_assert_str_eq(pass_fuse_label(gs, lb, sizeof lb), "solve");
    cr_assert_str_eq(pass_fuse_label(gt, lb, sizeof lb), "qr");
}

Test(fuse, matmul_stands_alone_with_transposes_folded) {
    Node *x = in(DT_F32, th_shape(2, 6, 4)), *w = in(DT_F32, th_shape(2, 5, 4));
    Node *wt = ir_permute(G, w, (int[]){1, 0}, L);
    Node *y = ir_matmul(G, un(OP_EXP, x), wt, L);
    Node *o = un(OP_NEG, y);
    ir_graph_add_output(G, o);
    FusionPlan *p = plan();
    const FusionGroup *mg = group(p, y);
    cr_assert_eq(mg->kind, FG_MATMUL);
    cr_assert_eq(role(p, y->src[0]), FN_ROOT, "a computed operand is materialised");
    cr_assert_eq(role(p, wt), FN_INLINE, "a transpose is a BLAS view");
    FuseView v;
    bool trans;
    int64_t ld;
    cr_assert(pass_fuse_view(wt, p->role, &v));
    cr_assert_eq(v.base, w);
    cr_assert(pass_fuse_blas_matrix(&v, &trans, &ld));
    cr_assert(trans);
    cr_assert_eq(ld, 4);
    cr_assert_eq(role(p, o), FN_ROOT);
    cr_assert_neq(group(p, o), mg, "the epilogue is its own kernel");
    /* the schedule turns it into a transposed gemm */
    char why[128];
    KernelProgram *kp = cg_schedule(G, p, A, why, sizeof why);
    cr_assert_not_null(kp, "%s", why);
    const KernelPlan *k = &kp->kernels[mg->id];
    cr_assert_eq(k->kind, KP_MATMUL);
    cr_assert(k->mm.trans_b);
    cr_assert_not(k->mm.trans_a);
    cr_assert_eq(k->mm.M, 6);
    cr_assert_eq(k->mm.N, 5);
    cr_assert_eq(k->mm.K, 4);
}

Test(fuse, matmul_operand_that_is_no_view_gets_a_copy_kernel) {
    Node *a = in(DT_F32, th_shape(2, 3, 1)), *b = in(DT_F32, th_shape(2, 4, 5));
    Node *ab = ir_broadcast(G, a, th_shape(2, 3, 4), L); /* stride 0 inside the matrix */
    Node *y = ir_matmul(G, ab, b, L);
    ir_graph_add_output(G, y);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, ab), FN_ROOT);
    cr_assert_eq(group(p, ab)->kind, FG_COPY);
}

Test(fuse, outputs_and_no_fuse_are_roots) {
    Node *x = in(DT_F32, th_shape(1, 8));
    Node *a = un(OP_EXP, x), *b = un(OP_NEG, a), *c = un(OP_ABS, b);
    b->flags |= NODE_NO_FUSE;
    ir_graph_add_output(G, c);
    ir_graph_add_output(G, a);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, a), FN_ROOT);
    cr_assert_eq(role(p, b), FN_ROOT);
    cr_assert_eq(p->ngroups, 3);
}

Test(fuse, leaves_are_inlined_everywhere_and_dead_code_ignored) {
    Node *x = in(DT_F32, th_shape(2, 3, 4));
    Node *k = ir_scalar(G, DT_F32, 2, L);
    Node *a = bin(OP_MUL, x, k), *b = bin(OP_ADD, x, k);
    Node *dead = un(OP_EXP, x);
    ir_graph_add_output(G, a);
    ir_graph_add_output(G, b);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, k), FN_INLINE);
    cr_assert_eq(role(p, dead), FN_DEAD);
    cr_assert_eq(p->group_of[dead->id], -1);
    cr_assert_eq(p->ngroups, 2);
    int seen = 0;
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < p->groups[g].nnodes; i++)
            seen += p->groups[g].nodes[i] == k;
    cr_assert_eq(seen, 2, "the constant is a member of both kernels");
}

Test(fuse, random_seed_is_computed_once) {
    Node *s = in(DT_I64, th_shape(0)), *t = in(DT_I64, th_shape(0));
    Node *fs = ir_fresh_seed(G, s, t, 1, L);
    Node *z =
        ir_rng(G, OP_RNG_NORMAL, DT_F32, th_shape(1, 64), fs, ir_scalar(G, DT_I64, 0, L), 3, L);
    Node *o = bin(OP_ADD, z, in(DT_F32, th_shape(1, 64)));
    ir_graph_add_output(G, o);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, fs), FN_ROOT, "a scalar feeding every element is materialised");
    cr_assert_eq(role(p, z), FN_FUSED);
    char lb[32];
    cr_assert_str_eq(pass_fuse_label(group(p, o), lb, sizeof lb), "rng+ew");
}

Test(fuse, plan_invariants_on_a_gradient_graph) {
    Node *x = in(DT_F32, th_shape(2, 16, 12)), *y = in(DT_I64, th_shape(1, 16));
    Node *w = in(DT_F32, th_shape(2, 12, 7)), *b = in(DT_F32, th_shape(1, 7));
    Node *lg = bin(OP_ADD, ir_matmul(G, ir_tanh(G, x, L), w, L), b);
    Node *loss = ir_cross_entropy(G, lg, y, L), *wrt[2] = {w, b}, *gr[2];
    cr_assert(pass_grad(G, loss, NULL, wrt, 2, gr));
    ir_graph_add_output(G, loss);
    ir_graph_add_output(G, gr[0]);
    ir_graph_add_output(G, gr[1]);
    FusionPlan *p = plan();
    for (int g = 0; g < p->ngroups; g++) {
        const FusionGroup *gr_ = &p->groups[g];
        cr_assert_eq(gr_->id, g);
        cr_assert_eq(gr_->nodes[gr_->nnodes - 1], gr_->root, "root last");
        if (g) cr_assert_gt(gr_->root->id, p->groups[g - 1].root->id, "topological order");
        for (int i = 0; i < gr_->ninputs; i++) {
            const Node *n = gr_->inputs[i];
            cr_assert(role(p, n) == FN_INPUT || role(p, n) == FN_ROOT);
            if (role(p, n) == FN_ROOT)
                cr_assert_lt(p->group_of[n->id], g, "inputs come from earlier kernels");
        }
        for (int i = 0; i < gr_->nnodes; i++) {
            const Node *n = gr_->nodes[i];
            cr_assert(n == gr_->root || role(p, n) == FN_FUSED || role(p, n) == FN_INLINE);
            if (role(p, n) == FN_FUSED)
                cr_assert_leq(p->group_of[n->id], g, "group_of names the first kernel");
        }
    }
    for (uint32_t i = 0; i < G->nnodes; i++)
        if (role(p, G->nodes[i]) == FN_FUSED || role(p, G->nodes[i]) == FN_ROOT)
            cr_assert_geq(p->group_of[i], 0, "%%%u belongs to a kernel", i);
    char why[128];
    cr_assert_not_null(cg_schedule(G, p, A, why, sizeof why), "%s", why);
}

Test(fuse, dump_format) {
    Node *x = in(DT_F32, th_shape(1, 128)), *y = in(DT_F32, th_shape(1, 128));
    Node *d = bin(OP_SUB, x, y);
    Node *s = ir_reduce(G, OP_SUM, bin(OP_MUL, d, d), 1, L);
    ir_graph_add_output(G, s);
    ir_graph_add_output(G, un(OP_NEG, d));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pass_fuse_print_graph(G, f);
    fclose(f);
    /* d = x - y has two readers and is recomputed in both kernels */
    const char *want = "kernels t: 2\n"
                       "  kernel k0 (ew+reduce) f32[] <- %0, %1 : %2 %3 %4\n"
                       "  kernel k1 (ew) f32[128] <- %0, %1 : %2 %5\n";
    cr_assert(strstr(buf, want), "dump:\n%s", buf);
    cr_assert(strstr(buf, "graph t("), "the graph comes first:\n%s", buf);
    free(buf);
}

Test(fuse, deep_chains_are_cut) {
    Node *x = in(DT_F32, th_shape(1, 4)), *v = x;
    for (int i = 0; i < 1000; i++)
        v = un(i % 2 ? OP_NEG : OP_ABS, v);
    ir_graph_add_output(G, v);
    FusionPlan *p = plan();
    cr_assert_geq(p->ngroups, 4, "1000 fused nodes need at least 4 kernels of depth <= 256");
    for (int g = 0; g < p->ngroups; g++)
        cr_assert_leq(p->groups[g].nnodes, 257);
}

/* ---- row phases ---------------------------------------------------------------------------- */

static const FusionGroup *only_group(const FusionPlan *p) {
    cr_assert_eq(p->ngroups, 1, "one kernel, got %d", p->ngroups);
    return &p->groups[0];
}

Test(fuse, log_softmax_is_one_kernel) {
    Node *x = in(DT_F32, th_shape(2, 16, 10));
    ir_graph_add_output(G, ir_log_softmax(G, x, 1, L));
    FusionPlan *p = plan();
    const FusionGroup *gr = only_group(p);
    cr_assert_eq(gr->nphases, 2);
    cr_assert_eq(gr->ninputs, 1);
    for (int i = 0; i < gr->nnodes; i++)
        if (gr->nodes[i]->op == OP_LOG)
            cr_assert_eq(role(p, gr->nodes[i]), FN_FUSED,
                         "log of the row sum: once per row, read through a row broadcast");
}

Test(fuse, layernorm_is_one_kernel_with_mean_then_variance) {
    Node *x = in(DT_F32, th_shape(3, 4, 6, 32)), *g = in(DT_F32, th_shape(1, 32)),
         *b = in(DT_F32, th_shape(1, 32));
    Node *mu = ir_unsqueeze_axes(G, ir_mean(G, x, 4u, L), 4u, L);
    Node *d = bin(OP_SUB, x, mu);
    Node *var = ir_unsqueeze_axes(G, ir_mean(G, bin(OP_MUL, d, d), 4u, L), 4u, L);
    Node *y = bin(OP_ADD, bin(OP_MUL, bin(OP_DIV, d, un(OP_SQRT, var)), g), b);
    ir_graph_add_output(G, y);
    FusionPlan *p = plan();
    const FusionGroup *gr = only_group(p);
    cr_assert_eq(gr->nphases, 2);
    cr_assert_eq(gr->phases[0]->op, OP_SUM);
    cr_assert_eq(gr->phases[1]->op, OP_SUM);
    cr_assert_lt(gr->phases[0]->id, gr->phases[1]->id, "the mean first");
    cr_assert_eq(gr->ninputs, 3, "x, gain and bias");
    cr_assert(p->phase_outer[gr->phases[0]->id] && p->phase_outer[gr->phases[1]->id]);
}

/* The loss of softmax cross-entropy on small logits: one kernel, the
 * batch mean's row reductions nested in its loop over rows. */
Test(fuse, cross_entropy_loss_is_one_kernel) {
    Node *lg = in(DT_F32, th_shape(2, 128, 10)), *y = in(DT_I64, th_shape(1, 128));
    ir_graph_add_output(G, ir_cross_entropy(G, lg, y, L));
    FusionPlan *p = plan();
    const FusionGroup *gr = only_group(p);
    cr_assert_eq(gr->nphases, 4, "row max, row sum of exp, picked logit, batch sum");
    cr_assert_eq(gr->ninputs, 2);
}

/* Its gradient: the logits' gradient is one kernel with the row phases;
 * the loss another; neither reads a materialised row max or sum. */
Test(fuse, cross_entropy_gradient_recomputes_the_row_phases) {
    Node *lg = in(DT_F32, th_shape(2, 64, 10)), *y = in(DT_I64, th_shape(1, 64));
    Node *loss = ir_cross_entropy(G, lg, y, L), *wrt[1] = {lg}, *gr[1];
    cr_assert(pass_grad(G, loss, NULL, wrt, 1, gr));
    ir_graph_add_output(G, loss);
    ir_graph_add_output(G, gr[0]);
    FusionPlan *p = plan();
    cr_assert_eq(p->ngroups, 2, "the loss and the gradient");
    for (int g = 0; g < 2; g++) {
        cr_assert_gt(p->groups[g].nphases, 0);
        for (int i = 0; i < p->groups[g].ninputs; i++)
            cr_assert_eq(role(p, p->groups[g].inputs[i]), FN_INPUT, "only graph inputs are read");
    }
}

/* Softmax over a leading axis reads the reductions at the inner loop: no
 * phases, the reductions are materialised as before. */
Test(fuse, reductions_read_across_rows_stay_kernels) {
    Node *x = in(DT_F32, th_shape(2, 16, 10));
    ir_graph_add_output(G, ir_softmax(G, x, 0, L));
    FusionPlan *p = plan();
    int red = 0;
    for (int i = 0; i < p->ngroups; i++) {
        red += p->groups[i].kind == FG_REDUCE;
        cr_assert_eq(p->groups[i].nphases, 0);
    }
    cr_assert_eq(red, 2, "column max and column sum");
    cr_assert_eq(p->ngroups, 3);
}

/* Rows too long to stay in cache, and a whole-tensor sum that would leave
 * a large map with nothing to split across threads, stay kernels. */
Test(fuse, long_rows_and_serial_phases_stay_kernels) {
    Node *x = in(DT_F32, th_shape(2, 4, PASS_FUSE_ROW_MAX + 1));
    Node *sm = ir_softmax(G, x, 1, L);
    ir_graph_add_output(G, sm);
    Node *z = in(DT_F32, th_shape(2, 1000, 1000));
    Node *s = ir_reduce(G, OP_SUM, z, 3u, L);
    ir_graph_add_output(G, bin(OP_DIV, z, s));
    Node *v = in(DT_F32, th_shape(1, 100));
    Node *sv = ir_reduce(G, OP_SUM, v, 1u, L);
    Node *nv = bin(OP_DIV, v, sv); /* small: one serial kernel */
    ir_graph_add_output(G, nv);
    FusionPlan *p = plan();
    cr_assert_eq(group(p, sm)->nphases, 0, "rows past PASS_FUSE_ROW_MAX");
    cr_assert_eq(role(p, s), FN_ROOT, "a sum over 1M elements read by a 1M-element map");
    cr_assert_eq(role(p, sv), FN_FUSED);
    cr_assert_eq(group(p, nv)->nphases, 1);
}

Test(fuse, dump_names_the_row_phases) {
    Node *x = in(DT_F32, th_shape(2, 4, 8));
    ir_graph_add_output(G, ir_softmax(G, x, 1, L));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pass_fuse_print_graph(G, f);
    fclose(f);
    const char *want = "kernels t: 1\n"
                       "  kernel k0 (rows+ew) f32[4,8] <- %0 : %1 %2 %3 %4 %5 %6 %7 %8 %9 %10\n"
                       "    per row: %1 reduce_max axes={1} of f32[4,8], then %7 sum axes={1} of "
                       "f32[4,8]\n";
    cr_assert(strstr(buf, want), "dump:\n%s", buf);
    free(buf);
}

Test(fuse, a_product_is_accumulated_onto_its_only_reader) {
    Node *x = in(DT_F32, th_shape(2, 8, 5)), *w = in(DT_F32, th_shape(2, 5, 6)),
         *b = in(DT_F32, th_shape(1, 6));
    Node *p = ir_matmul(G, x, w, L), *y = bin(OP_ADD, p, b), *o = un(OP_EXP, y);
    Node *q = ir_matmul(G, x, w, L), *z = bin(OP_SUB, in(DT_F32, th_shape(2, 8, 6)), q);
    Node *r = ir_matmul(G, x, w, L); /* read twice: a product of its own */
    ir_graph_add_output(G, o);
    ir_graph_add_output(G, z);
    ir_graph_add_output(G, bin(OP_ADD, r, b));
    ir_graph_add_output(G, un(OP_NEG, r));
    FusionPlan *p_ = plan();
    const FusionGroup *gy = group(p_, y);
    cr_assert_eq(gy->kind, FG_MATMUL);
    cr_assert_eq(gy->root, y, "the sum is the root");
    cr_assert_eq(gy->matmul, p);
    cr_assert_eq(role(p_, p), FN_FUSED);
    char lb[32];
    cr_assert_str_eq(pass_fuse_label(gy, lb, sizeof lb), "ew+matmul");
    cr_assert_eq(group(p_, z)->matmul, q);
    cr_assert_eq(role(p_, r), FN_ROOT);
    cr_assert_eq(group(p_, r)->matmul, r);
    char why[128];
    KernelProgram *kp = cg_schedule(G, p_, A, why, sizeof why);
    cr_assert_not_null(kp, "%s", why);
    const KernelPlan *ky = &kp->kernels[p_->group_of[y->id]];
    cr_assert_eq(ky->kind, KP_MATMUL);
    cr_assert(ky->mm.accumulate);
    cr_assert_eq(ky->mm.alpha, 1.0);
    cr_assert_eq(kp->kernels[p_->group_of[z->id]].mm.alpha, -1.0, "x - product: alpha -1");
}

/* Fills t with values in [-3, 3) from a fixed LCG. */
static void fill(RtTensor *t, uint64_t seed) {
    float *f = t->data;
    for (int64_t i = 0; i < rt_shape_numel(&t->shape); i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        f[i] = (float)((double)(seed >> 40) / (double)(1ull << 24) * 6.0 - 3.0);
    }
}

/* Recomputed values give the interpreter's results, and the same bits in
 * every kernel that recomputes them: outputs 2k and 2k+1 are -v and v*-1
 * for a shared v, computed in different kernels. */
Test(fuse, recomputed_values_match_the_interpreter) {
    Node *x = in(DT_F32, th_shape(2, 33, 17)), *w = in(DT_F32, th_shape(2, 33, 17));
    Node *seed = ir_scalar(G, DT_I64, 7, L);
    Node *vals[5];
    vals[0] = ir_sigmoid(G, bin(OP_ADD, bin(OP_MUL, x, ir_scalar(G, DT_F32, 1.01, L)), w), L);
    vals[1] = ir_softmax(G, x, 1, L);
    vals[2] = bin(OP_MUL,
                  ir_rng(G, OP_RNG_UNIFORM, DT_F32, th_shape(2, 33, 17), seed,
                         ir_scalar(G, DT_I64, 0, L), 2, L),
                  x);
    vals[3] = bin(OP_SUB, un(OP_EXP, x), w);
    Node *colsum = ir_reduce(G, OP_SUM, x, 1u, L); /* f32[17], read through a broadcast */
    Node *twice = bin(OP_ADD, colsum, colsum);
    vals[4] = bin(OP_MUL, w, twice);
    Node *m1 = ir_scalar(G, DT_F32, -1, L);
    for (int k = 0; k < 5; k++) {
        ir_graph_add_output(G, un(OP_NEG, vals[k]));
        ir_graph_add_output(G, bin(OP_MUL, vals[k], m1));
    }
    FusionPlan *p = plan();
    for (int k = 0; k < 5; k++)
        if (k != 1) cr_assert_eq(role(p, vals[k]), FN_FUSED, "value %d is recomputed", k);
    cr_assert_eq(role(p, twice), FN_FUSED, "recomputed per read through the broadcast");
    RtTensor *inp[2] = {rt_tensor_new(DT_F32, th_shape(2, 33, 17)),
                        rt_tensor_new(DT_F32, th_shape(2, 33, 17))};
    cr_assert(inp[0] && inp[1]);
    fill(inp[0], 1);
    fill(inp[1], 2);
    char err[200] = "";
    LlvmOptions o = {.poison = true};
    GraphRunner r = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(r.run, "llvm runner: %s", err);
    RtTensor *want[10] = {0}, *got[10] = {0};
    cr_assert(ir_interp_run(G, inp, want, D));
    cr_assert(r.run(r.ctx, G, inp, got, D));
    const LlvmGraphInfo *info = llvm_runner_graph(&r, llvm_runner_ngraphs(&r) - 1);
    cr_assert(info && !info->fallback, "compiled, no fallback");
    for (int j = 0; j < 10; j++) {
        const float *g = got[j]->data, *wv = want[j]->data, *twin = got[j ^ 1]->data;
        for (int64_t i = 0; i < rt_shape_numel(&got[j]->shape); i++) {
            cr_assert(fabsf(g[i] - wv[i]) <= 1e-5f * fabsf(wv[i]) + 1e-6f,
                      "output %d [%lld]: jit %g, interpreter %g", j, (long long)i, g[i], wv[i]);
            cr_assert_eq(memcmp(&g[i], &twin[i], sizeof(float)), 0, "output %d [%lld]: %g vs %g", j,
                         (long long)i, g[i], twin[i]);
        }
    }
    for (int j = 0; j < 10; j++) {
        rt_tensor_free(want[j]);
        rt_tensor_free(got[j]);
    }
    llvm_runner_free(&r);
    rt_tensor_free(inp[0]);
    rt_tensor_free(inp[1]);
}

/* A column sum read back through a broadcast over the rows (x - sum(x, axis 0))
 * has its kept axis last in the reader's loop nest, not a prefix: it cannot
 * be a row phase, and stays a kernel of its own; the row sum beside it, read
 * through a per-row broadcast, is a phase of its reader. */
Test(fuse, broadcast_column_sum_stays_its_own_kernel) {
    Node *x = in(DT_F32, th_shape(2, 6, 8));
    Node *cs = ir_reduce(G, OP_SUM, x, 1u, L); /* [8] */
    Node *rs = ir_reduce(G, OP_SUM, x, 2u, L); /* [6] */
    Node *o = bin(OP_SUB, x, cs);              /* builder broadcasts cs over the rows */
    Node *r = bin(OP_SUB, x, ir_unsqueeze_axes(G, rs, 2u, L));
    ir_graph_add_output(G, o);
    ir_graph_add_output(G, r);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, cs), FN_ROOT, "the column sum is materialised");
    cr_assert_eq(role(p, rs), FN_FUSED, "the row sum is a phase of its reader");
    cr_assert_eq(p->ngroups, 3, "column sum, x - column sum, x - row sum");
}
