/* Tests for passes/fuse.c: the fusion legality rules and the kernel dump.
 *
 * Each test builds a small graph and checks which nodes end up materialised
 * (roots), which are fused into their one consumer and which are inline
 * index expressions: chains with single uses fuse, shared values and values
 * read through an expanding broadcast are materialised, a reduction ends a
 * group with its elementwise prologue, matmul stands alone with transposes
 * folded into BLAS views, outputs and NO_FUSE nodes are roots. Then the
 * invariants every plan must satisfy (topological group order, inputs are
 * roots or graph inputs) on a gradient graph, and the exact text of
 * `dflow ir --after fuse` for a small graph. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codegen/kernel.h"
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

static Shape shp(int rank, ...) {
    Shape s = {.rank = rank};
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++)
        s.dims[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

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
    Node *x = in(DT_F32, shp(1, 8)), *y = in(DT_F32, shp(1, 8));
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

Test(fuse, shared_value_is_materialised) {
    Node *x = in(DT_F32, shp(1, 8));
    Node *e = un(OP_EXP, x);
    Node *s = bin(OP_ADD, e, e); /* two uses */
    Node *t = un(OP_NEG, e);
    ir_graph_add_output(G, s);
    ir_graph_add_output(G, t);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, e), FN_ROOT);
    cr_assert_eq(p->ngroups, 3);
    cr_assert_eq(group(p, s)->inputs[0], e);
}

Test(fuse, broadcast_expansion_materialises_the_producer) {
    Node *x = in(DT_F32, shp(1, 8)), *m = in(DT_F32, shp(2, 4, 8));
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
    Node *y = in(DT_F32, shp(2, 3, 5));
    Node *t = ir_permute(G, un(OP_EXP, y), (int[]){1, 0}, L);
    Node *r = un(OP_NEG, t);
    ir_graph_add_output(G, r);
    p = plan();
    cr_assert_eq(p->ngroups, 1);
    cr_assert_eq(role(p, t->src[0]), FN_FUSED);
}

Test(fuse, reduction_ends_a_group_with_its_prologue) {
    Node *x = in(DT_F32, shp(2, 4, 8));
    Node *sq = bin(OP_MUL, x, x);
    Node *s = ir_reduce(G, OP_SUM, sq, 2, L);
    Node *o = un(OP_SQRT, s);
    ir_graph_add_output(G, o);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, sq), FN_FUSED);
    cr_assert_eq(role(p, s), FN_ROOT);
    cr_assert_eq(group(p, s)->kind, FG_REDUCE);
    cr_assert(group(p, s)->has_ew);
    cr_assert_eq(group(p, o)->kind, FG_MAP);
    char lb[32];
    cr_assert_str_eq(pass_fuse_label(group(p, s), lb, sizeof lb), "ew+reduce");
}

Test(fuse, softmax_is_three_kernels_plus_the_max) {
    Node *x = in(DT_F32, shp(2, 16, 10));
    ir_graph_add_output(G, ir_softmax(G, x, 1, L));
    FusionPlan *p = plan();
    int red = 0;
    for (int i = 0; i < p->ngroups; i++)
        red += p->groups[i].kind == FG_REDUCE;
    cr_assert_eq(red, 2, "row max and row sum");
    cr_assert_leq(p->ngroups, 5);
}

Test(fuse, matmul_stands_alone_with_transposes_folded) {
    Node *x = in(DT_F32, shp(2, 6, 4)), *w = in(DT_F32, shp(2, 5, 4));
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
    Node *a = in(DT_F32, shp(2, 3, 1)), *b = in(DT_F32, shp(2, 4, 5));
    Node *ab = ir_broadcast(G, a, shp(2, 3, 4), L); /* stride 0 inside the matrix */
    Node *y = ir_matmul(G, ab, b, L);
    ir_graph_add_output(G, y);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, ab), FN_ROOT);
    cr_assert_eq(group(p, ab)->kind, FG_COPY);
}

Test(fuse, outputs_and_no_fuse_are_roots) {
    Node *x = in(DT_F32, shp(1, 8));
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
    Node *x = in(DT_F32, shp(2, 3, 4));
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
    Node *s = in(DT_I64, shp(0)), *t = in(DT_I64, shp(0));
    Node *fs = ir_fresh_seed(G, s, t, 1, L);
    Node *z = ir_rng(G, OP_RNG_NORMAL, DT_F32, shp(1, 64), fs, ir_scalar(G, DT_I64, 0, L), 3, L);
    Node *o = bin(OP_ADD, z, in(DT_F32, shp(1, 64)));
    ir_graph_add_output(G, o);
    FusionPlan *p = plan();
    cr_assert_eq(role(p, fs), FN_ROOT, "a scalar feeding every element is materialised");
    cr_assert_eq(role(p, z), FN_FUSED);
    char lb[32];
    cr_assert_str_eq(pass_fuse_label(group(p, o), lb, sizeof lb), "rng+ew");
}

Test(fuse, plan_invariants_on_a_gradient_graph) {
    Node *x = in(DT_F32, shp(2, 16, 12)), *y = in(DT_I64, shp(1, 16));
    Node *w = in(DT_F32, shp(2, 12, 7)), *b = in(DT_F32, shp(1, 7));
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
                cr_assert_eq(p->group_of[n->id], g, "a fused node is in one kernel");
        }
    }
    for (uint32_t i = 0; i < G->nnodes; i++)
        if (role(p, G->nodes[i]) == FN_FUSED || role(p, G->nodes[i]) == FN_ROOT)
            cr_assert_geq(p->group_of[i], 0, "%%%u belongs to a kernel", i);
    char why[128];
    cr_assert_not_null(cg_schedule(G, p, A, why, sizeof why), "%s", why);
}

Test(fuse, dump_format) {
    Node *x = in(DT_F32, shp(1, 128)), *y = in(DT_F32, shp(1, 128));
    Node *d = bin(OP_SUB, x, y);
    Node *s = ir_reduce(G, OP_SUM, bin(OP_MUL, d, d), 1, L);
    ir_graph_add_output(G, s);
    ir_graph_add_output(G, un(OP_NEG, d));
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pass_fuse_print_graph(G, f);
    fclose(f);
    const char *want = "kernels t: 3\n"
                       "  kernel k0 (ew) f32[128] <- %0, %1 : %2\n"
                       "  kernel k1 (ew+reduce) f32[] <- %2 : %3 %4\n"
                       "  kernel k2 (ew) f32[128] <- %2 : %5\n";
    cr_assert(strstr(buf, want), "dump:\n%s", buf);
    cr_assert(strstr(buf, "graph t("), "the graph comes first:\n%s", buf);
    free(buf);
}

Test(fuse, deep_chains_are_cut) {
    Node *x = in(DT_F32, shp(1, 4)), *v = x;
    for (int i = 0; i < 1000; i++) v = un(i % 2 ? OP_NEG : OP_ABS, v);
    ir_graph_add_output(G, v);
    FusionPlan *p = plan();
    cr_assert_geq(p->ngroups, 4, "1000 fused nodes need at least 4 kernels of depth <= 256");
    for (int g = 0; g < p->ngroups; g++) cr_assert_leq(p->groups[g].nnodes, 257);
}
