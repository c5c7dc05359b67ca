/* Tests for the simplification passes (fold, simplify, cse, dce) and the
 * pipeline that runs them.
 *
 * Small graphs go in, a pass runs, and the printed IR (ir_print into a
 * memory stream) is compared with the expected text, QBE style. A second
 * group builds random graphs and checks that the whole pipeline leaves the
 * interpreter's results unchanged. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "ir/interp.h"
#include "ir/ir.h"
#include "passes/autodiff.h"
#include "passes/pass.h"

static const SrcLoc L0 = {0, 0, 0, 0};

typedef struct {
    Arena *arena;
    DiagList *diags;
    Graph *g;
} Ctx;

static Ctx ctx_new(void) {
    Ctx c;
    c.arena = arena_new();
    c.diags = diag_list_new(c.arena, source_set_new(c.arena));
    c.g = ir_graph_new(c.arena, c.diags, "t");
    return c;
}

static Shape S1(int64_t n) {
    return rt_shape_make(1, &n);
}

static void expect_ir(const Graph *g, const char *want) {
    char *got = th_graph_text(g);
    cr_expect_str_eq(got, want, "got:\n%s\nwant:\n%s", got, want);
    free(got);
}

static void run_pass(Ctx *c, PassFn fn, const char *name) {
    bool ok = fn(c->g, c->diags);
    if (diag_has_errors(c->diags)) diag_print_all(c->diags, stderr);
    cr_assert(ok, "pass %s failed", name);
    cr_assert(ir_verify(c->g, name), "graph invalid after %s", name);
}

/* ---- fold ------------------------------------------------------------------ */

Test(passes, fold_evaluates_constant_subgraphs) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F32, S1(3), "x", L0);
    Node *k =
        ir_binary(c.g, OP_ADD, ir_scalar(c.g, DT_F32, 2, L0), ir_scalar(c.g, DT_F32, 3, L0), L0);
    Node *e = ir_unary(c.g, OP_SQRT, ir_broadcast(c.g, k, S1(3), L0), L0);
    ir_graph_add_output(c.g, ir_binary(c.g, OP_MUL, x, e, L0));
    run_pass(&c, pass_fold, "fold");
    run_pass(&c, pass_dce, "dce");
    /* sqrt(5) rounded to f32, printed as the double it is */
    expect_ir(c.g, "graph t(%0 x: f32[3])\n"
                   "  %1 = const f32[3] value=2.2360680103302\n"
                   "  %2 = mul f32[3] %0, %1\n"
                   "  return %2\n");
    arena_free(c.arena);
}

Test(passes, fold_keeps_random_and_integer_semantics) {
    Ctx c = ctx_new();
    Node *seed = ir_scalar(c.g, DT_I64, 7, L0);
    Node *off = ir_scalar(c.g, DT_I64, 0, L0);
    Node *r = ir_rng(c.g, OP_RNG_UNIFORM, DT_F32, S1(4), seed, off, 1, L0);
    /* 7 / 2 = 3 (truncating), -7 mod 2 = 1 (sign of b) */
    Node *q =
        ir_binary(c.g, OP_DIV, ir_scalar(c.g, DT_I64, 7, L0), ir_scalar(c.g, DT_I64, 2, L0), L0);
    Node *m =
        ir_binary(c.g, OP_MOD, ir_scalar(c.g, DT_I64, -7, L0), ir_scalar(c.g, DT_I64, 2, L0), L0);
    ir_graph_add_output(c.g, r);
    ir_graph_add_output(c.g, q);
    ir_graph_add_output(c.g, m);
    run_pass(&c, pass_fold, "fold");
    run_pass(&c, pass_dce, "dce");
    expect_ir(c.g, "graph t()\n"
                   "  %0 = const i64[] value=7\n"
                   "  %1 = const i64[] value=0\n"
                   "  %2 = rng_uniform f32[4] %0, %1 stream=0x00000001\n"
                   "  %3 = const i64[] value=3\n"
                   "  %4 = const i64[] value=1\n"
                   "  return %2, %3, %4\n");
    arena_free(c.arena);
}

Test(passes, fold_casts_compares_and_where) {
    Ctx c = ctx_new();
    Node *k = ir_cast(c.g, ir_scalar(c.g, DT_F64, -2.7, L0), DT_I32, L0); /* truncates: -2 */
    Node *lt =
        ir_binary(c.g, OP_LT, ir_scalar(c.g, DT_F32, 1, L0), ir_scalar(c.g, DT_F32, 2, L0), L0);
    Node *w = ir_where(c.g, lt, ir_const(c.g, DT_F32, S1(2), 4, L0),
                       ir_const(c.g, DT_F32, S1(2), 5, L0), L0);
    ir_graph_add_output(c.g, k);
    ir_graph_add_output(c.g, lt);
    ir_graph_add_output(c.g, w);
    run_pass(&c, pass_fold, "fold");
    run_pass(&c, pass_dce, "dce");
    expect_ir(c.g, "graph t()\n"
                   "  %0 = const i32[] value=-2\n"
                   "  %1 = const bool[] value=1\n"
                   "  %2 = const f32[2] value=4\n"
                   "  return %0, %1, %2\n");
    arena_free(c.arena);
}

/* ---- simplify -------------------------------------------------------------- */

Test(passes, simplify_removes_exact_identities) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F64, S1(3), "x", L0);
    Node *a = ir_binary(c.g, OP_MUL, x, ir_scalar(c.g, DT_F64, 1, L0), L0);
    Node *b = ir_binary(c.g, OP_ADD, ir_scalar(c.g, DT_F64, 0, L0), a, L0);
    Node *d = ir_binary(c.g, OP_DIV, ir_binary(c.g, OP_SUB, b, ir_scalar(c.g, DT_F64, 0, L0), L0),
                        ir_scalar(c.g, DT_F64, 1, L0), L0);
    Node *nn = ir_unary(c.g, OP_NEG, ir_unary(c.g, OP_NEG, d, L0), L0);
    ir_graph_add_output(c.g, nn);
    /* x * 0 must stay: it is NaN for x = inf */
    ir_graph_add_output(c.g, ir_binary(c.g, OP_MUL, x, ir_scalar(c.g, DT_F64, 0, L0), L0));
    run_pass(&c, pass_simplify, "simplify");
    run_pass(&c, pass_dce, "dce");
    expect_ir(c.g, "graph t(%0 x: f64[3])\n"
                   "  %1 = const f64[] value=0\n"
                   "  %2 = broadcast f64[3] %1\n"
                   "  %3 = mul f64[3] %0, %2\n"
                   "  return %0, %3\n");
    arena_free(c.arena);
}

/* ---- cse ------------------------------------------------------------------- */

Test(passes, cse_merges_equal_nodes_including_rng) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F32, S1(5), "x", L0);
    Node *e1 = ir_unary(c.g, OP_EXP, x, L0), *e2 = ir_unary(c.g, OP_EXP, x, L0);
    Node *s = ir_binary(c.g, OP_ADD, e1, e2, L0);
    Node *seed = ir_scalar(c.g, DT_I64, 1, L0), *off = ir_scalar(c.g, DT_I64, 0, L0);
    Node *r1 = ir_rng(c.g, OP_RNG_NORMAL, DT_F32, S1(5), seed, off, 3, L0);
    Node *r2 = ir_rng(c.g, OP_RNG_NORMAL, DT_F32, S1(5), ir_scalar(c.g, DT_I64, 1, L0), off, 3, L0);
    Node *r3 = ir_rng(c.g, OP_RNG_NORMAL, DT_F32, S1(5), seed, off, 4, L0); /* other stream */
    Node *t = ir_binary(c.g, OP_SUB, r1, r2, L0);
    ir_graph_add_output(c.g, s);
    ir_graph_add_output(c.g, t);
    ir_graph_add_output(c.g, r3);
    run_pass(&c, pass_cse, "cse");
    run_pass(&c, pass_dce, "dce");
    expect_ir(c.g, "graph t(%0 x: f32[5])\n"
                   "  %1 = exp f32[5] %0\n"
                   "  %2 = add f32[5] %1, %1\n"
                   "  %3 = const i64[] value=1\n"
                   "  %4 = const i64[] value=0\n"
                   "  %5 = rng_normal f32[5] %3, %4 stream=0x00000003\n"
                   "  %6 = rng_normal f32[5] %3, %4 stream=0x00000004\n"
                   "  %7 = sub f32[5] %5, %5\n"
                   "  return %2, %7, %6\n");
    arena_free(c.arena);
}

Test(passes, cse_keeps_signed_zeros_apart) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F64, S1(2), "x", L0);
    Node *a = ir_binary(c.g, OP_DIV, x, ir_scalar(c.g, DT_F64, 0.0, L0), L0);
    Node *b = ir_binary(c.g, OP_DIV, x, ir_scalar(c.g, DT_F64, -0.0, L0), L0);
    ir_graph_add_output(c.g, a);
    ir_graph_add_output(c.g, b);
    uint32_t before = c.g->nnodes;
    run_pass(&c, pass_cse, "cse");
    cr_expect_eq(c.g->nnodes, before);
    arena_free(c.arena);
}

/* ---- dce ------------------------------------------------------------------- */

Test(passes, dce_keeps_inputs_and_their_indices) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F32, S1(2), "x", L0);
    ir_input(c.g, DT_F32, S1(2), "unused", L0);
    ir_unary(c.g, OP_EXP, x, L0); /* dead */
    Node *z = ir_input(c.g, DT_F32, S1(2), "z", L0);
    ir_graph_add_output(c.g, ir_binary(c.g, OP_ADD, x, z, L0));
    run_pass(&c, pass_dce, "dce");
    cr_expect_eq(c.g->ninputs, 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(c.g->inputs[i]->attr.input.index, i);
    cr_expect_str_eq(c.g->inputs[1]->name, "unused");
    expect_ir(c.g, "graph t(%0 x: f32[2], %1 unused: f32[2], %2 z: f32[2])\n"
                   "  %3 = add f32[2] %0, %2\n"
                   "  return %3\n");
    arena_free(c.arena);
}

/* ---- the pipeline ---------------------------------------------------------- */

Test(passes, pipeline_lists_and_checks_names) {
    int n;
    const PassInfo *p = pass_pipeline_list(&n);
    cr_assert_geq(n, 4);
    for (int i = 0; i < n; i++)
        cr_expect(pass_pipeline_has(p[i].name));
    cr_expect_not(pass_pipeline_has("nosuch"));
    cr_expect_not(pass_pipeline_has(NULL));

    Ctx c = ctx_new();
    ir_graph_add_output(c.g, ir_input(c.g, DT_F32, S1(2), "x", L0));
    cr_expect_not(pass_run_pipeline(c.g, "nosuch"));
    cr_assert_eq(c.diags->n, 1);
    cr_expect(strstr(c.diags->items[0]->msg, "fold, simplify, cse, dce") != NULL, "%s",
              c.diags->items[0]->msg);
    arena_free(c.arena);
}

Test(passes, pipeline_stops_after_a_named_pass) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F32, S1(2), "x", L0);
    ir_unary(c.g, OP_EXP, x, L0); /* dead: only dce removes it */
    ir_graph_add_output(c.g, ir_unary(c.g, OP_NEG, x, L0));
    cr_assert(pass_run_pipeline(c.g, "cse"));
    cr_expect_eq(c.g->nnodes, 3);
    cr_assert(pass_run_pipeline(c.g, NULL));
    cr_expect_eq(c.g->nnodes, 2);
    arena_free(c.arena);
}

/* Random graphs: a soup of elementwise ops, constants, identities,
 * duplicates and dead ends over three inputs; the pipeline must not change
 * what the interpreter computes. */
static uint64_t rs;
static uint64_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static Node *pick(Node **pool, int n) {
    return pool[rnd() % (uint64_t)n];
}

static Node *random_node(Graph *g, Node **pool, int n) {
    static const OpKind un[] = {OP_NEG, OP_EXP, OP_SIN, OP_COS, OP_ABS};
    static const OpKind bin[] = {OP_ADD, OP_SUB, OP_MUL, OP_MAX, OP_MIN};
    static const double consts[] = {0.0, 1.0, 2.0, -0.5};
    Node *a = pick(pool, n);
    switch (rnd() % 8) {
    case 0:
        return ir_unary(g, un[rnd() % 5], a, L0);
    case 1:
        return ir_binary(g, bin[rnd() % 5], a, pick(pool, n), L0);
    case 2:
        return ir_binary(g, bin[rnd() % 3], a, ir_scalar(g, DT_F64, consts[rnd() % 4], L0), L0);
    case 3:
        return ir_binary(
            g, OP_MUL, a,
            ir_binary(g, OP_ADD, ir_scalar(g, DT_F64, 0.5, L0), ir_scalar(g, DT_F64, 0.25, L0), L0),
            L0);
    case 4: {
        int64_t d[2] = {2, 3};
        return ir_reshape(g, ir_reshape(g, a, rt_shape_make(2, d), L0), a->shape, L0);
    }
    case 5:
        return ir_unary(g, OP_NEG, ir_unary(g, OP_NEG, a, L0), L0);
    case 6:
        return ir_broadcast(g, ir_reduce(g, OP_SUM, a, 1, L0), a->shape, L0);
    default:
        return ir_unary(g, OP_EXP, ir_unary(g, OP_SIN, a, L0), L0); /* often duplicated */
    }
}

static bool same_value(double a, double b) {
    return a == b || (isnan(a) && isnan(b));
}

Test(passes, pipeline_preserves_interpreter_results_on_random_graphs) {
    rs = 0x1234567u;
    for (int trial = 0; trial < 40; trial++) {
        Ctx c = ctx_new();
        Node *pool[64];
        int n = 0;
        for (int i = 0; i < 3; i++)
            pool[n++] = ir_input(c.g, DT_F64, S1(6), NULL, L0);
        int steps = 5 + (int)(rnd() % 20);
        for (int i = 0; i < steps && n < 64; i++) {
            Node *m = random_node(c.g, pool, n);
            cr_assert_not_null(m);
            pool[n++] = m;
        }
        int nout = 1 + (int)(rnd() % 3);
        for (int j = 0; j < nout; j++)
            ir_graph_add_output(c.g, pick(pool, n));
        ir_graph_add_output(c.g, pool[n - 1]);
        nout++;

        RtTensor *in[3];
        for (int i = 0; i < 3; i++) {
            in[i] = rt_tensor_new(DT_F64, S1(6));
            for (int k = 0; k < 6; k++)
                rt_tensor_set_f64(in[i], k, (double)(rnd() % 2001) / 500.0 - 2.0);
        }
        RtTensor *before[8], *after[8];
        cr_assert(ir_interp_run(c.g, in, before, c.diags));
        uint32_t nodes_before = c.g->nnodes;
        bool ok = pass_run_pipeline(c.g, NULL);
        if (!ok) diag_print_all(c.diags, stderr);
        cr_assert(ok, "trial %d: pipeline failed", trial);
        cr_expect_leq(c.g->nnodes, nodes_before);
        cr_assert(ir_interp_run(c.g, in, after, c.diags));
        for (int j = 0; j < nout; j++) {
            for (int k = 0; k < 6; k++) {
                double a = rt_tensor_get_f64(before[j], k), b = rt_tensor_get_f64(after[j], k);
                cr_expect(same_value(a, b), "trial %d output %d[%d]: %.17g before, %.17g after",
                          trial, j, k, a, b);
            }
            rt_tensor_free(before[j]);
            rt_tensor_free(after[j]);
        }
        for (int i = 0; i < 3; i++)
            rt_tensor_free(in[i]);
        arena_free(c.arena);
    }
}

/* Autodiff output is where the passes earn their keep: the gradient of a
 * small network must shrink and keep its values. */
Test(passes, pipeline_shrinks_gradient_graphs_without_changing_them) {
    Ctx c = ctx_new();
    int64_t dw[2] = {3, 4}, dx[2] = {4, 2};
    Node *W = ir_input(c.g, DT_F64, rt_shape_make(2, dw), "W", L0);
    Node *X = ir_input(c.g, DT_F64, rt_shape_make(2, dx), "X", L0);
    Node *h = ir_tanh(c.g, ir_matmul(c.g, W, X, L0), L0);
    Node *loss = ir_reduce(c.g, OP_SUM, ir_binary(c.g, OP_MUL, h, h, L0), 3, L0);
    Node *hv = pass_hvp(c.g, loss, W, W, L0);
    Node *gw;
    cr_assert(pass_grad(c.g, loss, NULL, &W, 1, &gw));
    ir_graph_add_output(c.g, hv);
    ir_graph_add_output(c.g, gw);
    RtTensor *in[2] = {rt_tensor_new(DT_F64, W->shape), rt_tensor_new(DT_F64, X->shape)};
    for (int i = 0; i < 12; i++)
        rt_tensor_set_f64(in[0], i, sin(i + 1.0));
    for (int i = 0; i < 8; i++)
        rt_tensor_set_f64(in[1], i, cos(3.0 * i));
    RtTensor *before[2], *after[2];
    cr_assert(ir_interp_run(c.g, in, before, c.diags));
    uint32_t n0 = c.g->nnodes;
    cr_assert(pass_run_pipeline(c.g, NULL));
    cr_expect_lt(c.g->nnodes, n0 * 3 / 4, "%u nodes before, %u after", n0, c.g->nnodes);
    cr_assert(ir_interp_run(c.g, in, after, c.diags));
    for (int j = 0; j < 2; j++) {
        for (int i = 0; i < 12; i++)
            cr_expect(same_value(rt_tensor_get_f64(before[j], i), rt_tensor_get_f64(after[j], i)),
                      "out %d[%d]", j, i);
        rt_tensor_free(before[j]);
        rt_tensor_free(after[j]);
        rt_tensor_free(in[j]);
    }
    arena_free(c.arena);
}
