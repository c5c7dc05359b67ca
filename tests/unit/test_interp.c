/* The reference interpreter on composites and whole graphs: softmax family
 * values and stability, activations at moderate and extreme inputs, the
 * losses against hand computations, run-time errors (gather index out of
 * range, mismatched inputs) reported as diagnostics without leaks, output
 * ownership (aliased outputs, inputs as outputs, dead code skipped), and a
 * small MLP: forward values, one SGD step with a hand-written backward
 * graph against the same step through autodiff and a double-precision
 * reference loss, and training that must learn its labels. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "ir/interp.h"
#include "ir/ir.h"
#include "passes/pass.h"

static Arena *A;
static DiagList *D;
static Graph *G;
static SrcLoc L;

static void setup(void) {
    A = arena_new();
    D = th_diag_list(A, "m.dfl", "a\nb\nc\n");
    G = ir_graph_new(A, D, "t");
    L = (SrcLoc){1, 2, 7, 3};
}
static void teardown(void) {
    arena_free(A);
}
TestSuite(interp, .init = setup, .fini = teardown);

static RtTensor *tensor_f32(Shape s, const float *v) {
    RtTensor *t = rt_tensor_new(DT_F32, s);
    memcpy(t->data, v, sizeof(float) * (size_t)rt_shape_numel(&s));
    return t;
}

/* Runs G (already holding its outputs) on ins; asserts success. */
static void run(RtTensor **ins, RtTensor **outs) {
    cr_assert(ir_verify(G, "test"), "verify: %s", th_last_diag(D));
    cr_assert(ir_interp_run(G, ins, outs, D), "interp: %s", th_last_diag(D));
}

/* Single output of a graph whose only input is a constant-fed f32 tensor. */
static RtTensor *eval1(Node *out, RtTensor *in0) {
    cr_assert_not_null(out, "builder: %s", th_last_diag(D));
    ir_graph_add_output(G, out);
    RtTensor *ins[1] = {in0}, *res = NULL;
    run(ins, &res);
    return res;
}

static float f(const RtTensor *t, int64_t i) {
    return ((const float *)t->data)[i];
}

/* ---- composites --------------------------------------------------------------------------- */

Test(interp, softmax_rows_sum_to_one) {
    float v[12] = {1, 2, 3, 4, -1, 0, 1, 2, 1000, 1000, 999, -1000};
    RtTensor *x = tensor_f32(th_shape(2, 3, 4), v);
    RtTensor *r = eval1(ir_softmax(G, ir_input(G, DT_F32, th_shape(2, 3, 4), "x", L), 1, L), x);
    for (int i = 0; i < 3; i++) {
        double s = 0, m = -INFINITY, ref_den = 0;
        for (int j = 0; j < 4; j++)
            m = fmax(m, v[i * 4 + j]);
        for (int j = 0; j < 4; j++)
            ref_den += exp(v[i * 4 + j] - m);
        for (int j = 0; j < 4; j++) {
            s += f(r, i * 4 + j);
            double want = exp(v[i * 4 + j] - m) / ref_den;
            cr_expect(fabs(f(r, i * 4 + j) - want) <= 1e-6 + 1e-5 * want, "softmax[%d,%d] %g vs %g",
                      i, j, f(r, i * 4 + j), want);
        }
        cr_expect(fabs(s - 1) < 1e-6, "row %d sums to %.9g", i, s);
    }
    rt_tensor_free(r);
    rt_tensor_free(x);
}

Test(interp, softmax_axis0_and_log_softmax) {
    float v[6] = {0.5f, -1, 2, 3, 0, -2};
    RtTensor *x = tensor_f32(th_shape(2, 2, 3), v);
    Node *in = ir_input(G, DT_F32, th_shape(2, 2, 3), "x", L);
    ir_graph_add_output(G, ir_softmax(G, in, 0, L));
    ir_graph_add_output(G, ir_log_softmax(G, in, 1, L));
    RtTensor *ins[1] = {x}, *outs[2];
    run(ins, outs);
    for (int j = 0; j < 3; j++) {
        double den = exp(v[j]) + exp(v[3 + j]);
        cr_expect(fabs(f(outs[0], j) - exp(v[j]) / den) < 1e-6);
        cr_expect(fabs(f(outs[0], 3 + j) - exp(v[3 + j]) / den) < 1e-6);
    }
    for (int i = 0; i < 2; i++) {
        double lse = log(exp(v[i * 3]) + exp(v[i * 3 + 1]) + exp(v[i * 3 + 2]));
        for (int j = 0; j < 3; j++)
            cr_expect(fabs(f(outs[1], i * 3 + j) - (v[i * 3 + j] - lse)) < 1e-5);
    }
    rt_tensor_free(outs[0]);
    rt_tensor_free(outs[1]);
    rt_tensor_free(x);
}

Test(interp, logsumexp_is_stable) {
    float v[8] = {1000, 1000, 1000, 1000, -1000, -1000, -999, -1000};
    RtTensor *x = tensor_f32(th_shape(2, 2, 4), v);
    RtTensor *r = eval1(ir_logsumexp(G, ir_input(G, DT_F32, th_shape(2, 2, 4), "x", L), 1, L), x);
    cr_expect(r->shape.rank == 1 && r->shape.dims[0] == 2);
    cr_expect(fabs(f(r, 0) - (1000 + log(4.0))) < 1e-3, "lse row 0 = %.9g", f(r, 0));
    double want = -999 + log(1 + 3 * exp(-1.0));
    cr_expect(fabs(f(r, 1) - want) < 1e-3, "lse row 1 = %.9g want %.9g", f(r, 1), want);
    rt_tensor_free(r);
    rt_tensor_free(x);
}

static void activation_case(Node *(*build)(Graph *, Node *, SrcLoc), double (*ref)(double),
                            const char *what) {
    float v[] = {0,   1e-3f, -1e-3f, 0.5f, -0.5f, 1,    -1,    2.5f,  -2.5f, 10,
                 -10, 30,    -30,    100,  -100,  1e4f, -1e4f, 1e30f, -1e30f};
    int n = (int)(sizeof v / sizeof v[0]);
    RtTensor *x = tensor_f32(th_shape(1, n), v);
    RtTensor *r = eval1(build(G, ir_input(G, DT_F32, th_shape(1, n), "x", L), L), x);
    for (int i = 0; i < n; i++) {
        double want = ref(v[i]), got = f(r, i);
        cr_expect(isfinite(got), "%s(%g) = %g", what, v[i], got);
        cr_expect(fabs(got - want) <= 2e-7 + 1e-5 * fabs(want), "%s(%g) = %.9g, want %.9g", what,
                  v[i], got, want);
    }
    rt_tensor_free(r);
    rt_tensor_free(x);
}

static double ref_sigmoid(double x) {
    return 1 / (1 + exp(-x));
}
static double ref_gelu_tanh(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}
static double ref_gelu(double x) {
    return 0.5 * x * (1 + erf(x / sqrt(2)));
}
static double ref_relu(double x) {
    return x > 0 ? x : 0;
}

Test(interp, activations) {
    activation_case(ir_tanh, tanh, "tanh");
}
Test(interp, sigmoid) {
    activation_case(ir_sigmoid, ref_sigmoid, "sigmoid");
}
Test(interp, relu) {
    activation_case(ir_relu, ref_relu, "relu");
}

static void gelu_case(bool tanh_form, double (*ref)(double)) {
    /* gelu of +-1e30 overflows x^3 to inf (and 0.5 x (1 + 1) to inf): check moderate inputs only */
    float v[] = {0, 1e-3f, -1e-3f, 0.5f, -0.5f, 1, -1, 2.5f, -2.5f, 5, -5, 10, -10};
    int n = (int)(sizeof v / sizeof v[0]);
    RtTensor *x = tensor_f32(th_shape(1, n), v);
    RtTensor *r = eval1(ir_gelu(G, ir_input(G, DT_F32, th_shape(1, n), "x", L), tanh_form, L), x);
    for (int i = 0; i < n; i++)
        cr_expect(fabs(f(r, i) - ref(v[i])) <= 2e-7 + 1e-5 * fabs(ref(v[i])),
                  "gelu(%g, tanh %d) = %.9g want %.9g", v[i], tanh_form, f(r, i), ref(v[i]));
    rt_tensor_free(r);
    rt_tensor_free(x);
}

Test(interp, gelu) {
    gelu_case(false, ref_gelu);
}
Test(interp, gelu_tanh) {
    gelu_case(true, ref_gelu_tanh);
}

Test(interp, cross_entropy_by_hand) {
    /* logits (3, 4), labels {2, 0, 3} */
    float lg[12] = {1, 2, 3, 4, 0.5f, -0.5f, 0, 0, -2, 5, 1, 0};
    int64_t lab[3] = {2, 0, 3};
    RtTensor *x = tensor_f32(th_shape(2, 3, 4), lg), *y = rt_tensor_new(DT_I64, th_shape(1, 3));
    memcpy(y->data, lab, sizeof lab);
    Node *nx = ir_input(G, DT_F32, th_shape(2, 3, 4), "logits", L),
         *ny = ir_input(G, DT_I64, th_shape(1, 3), "y", L);
    ir_graph_add_output(G, ir_cross_entropy(G, nx, ny, L));
    RtTensor *ins[2] = {x, y}, *loss;
    run(ins, &loss);
    double want = 0;
    for (int i = 0; i < 3; i++) {
        double s = 0;
        for (int j = 0; j < 4; j++)
            s += exp(lg[i * 4 + j]);
        want += -(lg[i * 4 + lab[i]] - log(s));
    }
    want /= 3;
    cr_expect_eq(loss->shape.rank, 0);
    cr_expect(fabs(f(loss, 0) - want) < 1e-5, "ce = %.9g want %.9g", f(loss, 0), want);
    rt_tensor_free(loss);
    rt_tensor_free(x);
    rt_tensor_free(y);
}

Test(interp, mse_mean_one_hot_sum_to) {
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {0.5f, 2, -1};
    RtTensor *ta = tensor_f32(th_shape(2, 2, 3), a), *tb = tensor_f32(th_shape(1, 3), b);
    Node *na = ir_input(G, DT_F32, th_shape(2, 2, 3), "a", L),
         *nb = ir_input(G, DT_F32, th_shape(1, 3), "b", L);
    ir_graph_add_output(G, ir_mse(G, na, nb, L));
    ir_graph_add_output(G, ir_mean(G, na, 1, L));
    ir_graph_add_output(G, ir_sum_to(G, na, th_shape(2, 1, 3), L));
    Node *lab = ir_cast(G, ir_iota(G, DT_I32, th_shape(1, 3), 0, L), DT_I32, L);
    ir_graph_add_output(G, ir_one_hot(G, lab, 4, DT_F32, L));
    ir_graph_add_output(G, ir_unsqueeze_axes(G, nb, 0x5, L));
    RtTensor *ins[2] = {ta, tb}, *o[5];
    run(ins, o);
    double mse = 0;
    for (int i = 0; i < 6; i++)
        mse += (a[i] - b[i % 3]) * (a[i] - b[i % 3]);
    cr_expect(fabs(f(o[0], 0) - mse / 6) < 1e-5);
    for (int j = 0; j < 3; j++) {
        cr_expect(fabs(f(o[1], j) - (a[j] + a[3 + j]) / 2) < 1e-6);
        cr_expect(fabs(f(o[2], j) - (a[j] + a[3 + j])) < 1e-6);
    }
    cr_expect(o[2]->shape.rank == 2 && o[2]->shape.dims[0] == 1);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 4; c++)
            cr_expect_eq(f(o[3], i * 4 + c), c == i ? 1.0f : 0.0f);
    cr_expect(o[4]->shape.rank == 3 && o[4]->shape.dims[0] == 1 && o[4]->shape.dims[1] == 3 &&
              o[4]->shape.dims[2] == 1);
    for (int k = 0; k < 5; k++)
        rt_tensor_free(o[k]);
    rt_tensor_free(ta);
    rt_tensor_free(tb);
}

/* ---- errors --------------------------------------------------------------------------------- */

Test(interp, gather_out_of_range) {
    RtTensor *d = rt_tensor_new(DT_F32, th_shape(2, 10, 3)),
             *idx = rt_tensor_new(DT_I64, th_shape(1, 4));
    int64_t iv[4] = {0, 9, 12, 3};
    memcpy(idx->data, iv, sizeof iv);
    Node *nd = ir_input(G, DT_F32, th_shape(2, 10, 3), "d", L),
         *ni = ir_input(G, DT_I64, th_shape(1, 4), "i", L);
    SrcLoc gl = {1, 3, 4, 6};
    Node *gth = ir_gather(G, ir_unary(G, OP_EXP, nd, L), ni, gl);
    ir_graph_add_output(G, ir_reduce(G, OP_SUM, gth, 1, L));
    ir_graph_add_output(G, nd);
    RtTensor *ins[2] = {d, idx}, *outs[2] = {(RtTensor *)1, (RtTensor *)1};
    cr_expect_not(ir_interp_run(G, ins, outs, D));
    cr_expect_null(outs[0]);
    cr_expect_null(outs[1]);
    cr_assert_eq(D->nerrors, 1);
    cr_expect(strstr(th_last_diag(D), "index 12 out of range for axis of size 10") != NULL, "%s",
              th_last_diag(D));
    cr_expect_eq(D->items[0]->loc.line, 3);
    cr_expect_eq(D->items[0]->loc.col, 4);
    /* negative indices are out of range too; scatter_add checks as well */
    iv[2] = -1;
    memcpy(idx->data, iv, sizeof iv);
    cr_expect_not(ir_interp_run(G, ins, outs, D));
    cr_expect(strstr(th_last_diag(D), "index -1 out of range for axis of size 10") != NULL, "%s",
              th_last_diag(D));
    iv[1] = 4;
    memcpy(idx->data, iv, sizeof iv);
    Graph *g2 = ir_graph_new(A, D, "s");
    Node *u = ir_input(g2, DT_F32, th_shape(2, 4, 3), "u", L),
         *i2 = ir_input(g2, DT_I64, th_shape(1, 4), "i", L);
    ir_graph_add_output(g2, ir_scatter_add(g2, u, i2, 5, L));
    RtTensor *ins2[2] = {rt_tensor_new(DT_F32, th_shape(2, 4, 3)), idx}, *o2;
    cr_expect_not(ir_interp_run(g2, ins2, &o2, D));
    cr_expect(strstr(th_last_diag(D), "scatter_add: index -1 out of range for axis of size 5") !=
                  NULL,
              "%s", th_last_diag(D));
    rt_tensor_free(ins2[0]);
    rt_tensor_free(d);
    rt_tensor_free(idx);
}

Test(interp, input_mismatch) {
    ir_input(G, DT_F32, th_shape(2, 3, 4), "x", L);
    Node *y = ir_input(G, DT_I64, th_shape(0), "step", L);
    ir_graph_add_output(G, y);
    RtTensor *a = rt_tensor_new(DT_F32, th_shape(2, 3, 5)), *b = rt_tensor_new(DT_I64, th_shape(0)),
             *out;
    RtTensor *ins[2] = {a, b};
    cr_expect_not(ir_interp_run(G, ins, &out, D));
    cr_expect(strstr(th_last_diag(D), "input #0 (x): expected f32[3,4], got f32[3,5]") != NULL,
              "%s", th_last_diag(D));
    RtTensor *ins2[2] = {NULL, b};
    cr_expect_not(ir_interp_run(G, ins2, &out, D));
    cr_expect(strstr(th_last_diag(D), "got nothing") != NULL, "%s", th_last_diag(D));
    rt_tensor_free(a);
    rt_tensor_free(b);
}

/* The verifier re-checks every node with the shape rules, so a malformed
 * node that a buggy pass might build (here a matmul whose batch dimensions
 * differ, made without the checking builder) is reported, not run. */
Test(interp, verifier_rejects_a_matmul_with_other_batch_dims) {
    Node *a = ir_input(G, DT_F32, th_shape(3, 2, 3, 4), "a", L),
         *b = ir_input(G, DT_F32, th_shape(3, 3, 4, 5), "b", L);
    Node *src[2] = {a, b};
    Node *m = ir_node_new(G, OP_MATMUL, DT_F32, th_shape(3, 2, 3, 5), src, 2, NULL, L);
    cr_assert_not_null(m);
    ir_graph_add_output(G, m);
    cr_expect_not(ir_verify(G, "test"));
    cr_expect(strstr(th_last_diag(D), "batch dimensions differ") != NULL, "%s", th_last_diag(D));
}

/* Near-duplicates that differ only in an attribute (a slice's step, a pad's
 * value, a permutation, reduced axes, an iota's axis) stay distinct through
 * the pass pipeline: the optimised graph computes what the interpreter
 * computes on the graph as built. */
Test(interp, pipeline_keeps_near_duplicates_apart) {
    Node *x = ir_input(G, DT_F64, th_shape(2, 4, 4), "x", L);
    int64_t st[2] = {0, 0}, sp1[2] = {4, 4}, sp2[2] = {2, 4}, s1[2] = {2, 1}, s2[2] = {1, 1};
    Node *a = ir_slice(G, x, st, sp1, s1, L),
         *b = ir_slice(G, x, st, sp2, s2, L); /* rows 0,2 vs 0,1 */
    int64_t lo[2] = {1, 0}, hi[2] = {0, 0};
    Node *pa = ir_pad(G, a, lo, hi, 0.5, L), *pb = ir_pad(G, b, lo, hi, -2.0, L);
    int tr[2] = {1, 0};
    Node *t = ir_permute(G, x, tr, L);
    Node *r0 = ir_reduce(G, OP_SUM, x, 1u, L), *r1 = ir_reduce(G, OP_SUM, x, 2u, L);
    Node *i0 = ir_iota(G, DT_F64, th_shape(2, 4, 4), 0, L),
         *i1 = ir_iota(G, DT_F64, th_shape(2, 4, 4), 1, L);
    ir_graph_add_output(G, ir_binary(G, OP_SUB, pa, pb, L));
    ir_graph_add_output(
        G, ir_binary(G, OP_SUB, ir_binary(G, OP_ADD, x, i0, L), ir_binary(G, OP_ADD, t, i1, L), L));
    ir_graph_add_output(G, ir_binary(G, OP_SUB, r0, r1, L));
    RtTensor *in = rt_tensor_new(DT_F64, th_shape(2, 4, 4));
    for (int i = 0; i < 16; i++)
        rt_tensor_set_f64(in, i, (i * 7) % 11 - 3.5);
    RtTensor *before[3], *after[3];
    run(&in, before);
    cr_assert(pass_run_pipeline(G, NULL), "%s", th_last_diag(D));
    run(&in, after);
    for (int k = 0; k < 3; k++) {
        cr_assert(rt_shape_eq(&before[k]->shape, &after[k]->shape), "output %d changed shape", k);
        for (int64_t i = 0; i < rt_shape_numel(&before[k]->shape); i++)
            cr_expect_eq(rt_tensor_get_f64(after[k], i), rt_tensor_get_f64(before[k], i),
                         "output %d element %lld: %g after the passes, %g before", k, (long long)i,
                         rt_tensor_get_f64(after[k], i), rt_tensor_get_f64(before[k], i));
        rt_tensor_free(before[k]);
        rt_tensor_free(after[k]);
    }
    rt_tensor_free(in);
}

/* Many slices of one tensor with the same start and length but different
 * steps (x[s : : k] for k = 1..6): CSE must merge none of them, however they
 * meet in its table. */
Test(interp, pipeline_keeps_strided_slices_apart) {
    enum { STARTS = 16, STEPS = 6, LEN = 8 };
    Node *x = ir_input(G, DT_F64, th_shape(1, 64), "x", L), *parts[STARTS * STEPS];
    for (int s = 0; s < STARTS; s++)
        for (int k = 1; k <= STEPS; k++) {
            int64_t st = s, sp = s + (LEN - 1) * k + 1, step = k;
            parts[s * STEPS + k - 1] = ir_slice(G, x, &st, &sp, &step, L);
        }
    ir_graph_add_output(G, ir_concat(G, parts, STARTS * STEPS, 0, L));
    RtTensor *in = rt_tensor_new(DT_F64, th_shape(1, 64)), *before, *after;
    for (int i = 0; i < 64; i++)
        rt_tensor_set_f64(in, i, i);
    run(&in, &before);
    cr_assert(pass_run_pipeline(G, NULL), "%s", th_last_diag(D));
    run(&in, &after);
    for (int s = 0; s < STARTS; s++)
        for (int k = 1; k <= STEPS; k++)
            for (int j = 0; j < LEN; j++) {
                int64_t i = ((int64_t)s * STEPS + k - 1) * LEN + j;
                cr_expect_eq(rt_tensor_get_f64(before, i), s + j * k);
                cr_expect_eq(rt_tensor_get_f64(after, i), s + j * k,
                             "x[%d::%d][%d] after the passes: %g", s, k, j,
                             rt_tensor_get_f64(after, i));
            }
    rt_tensor_free(before);
    rt_tensor_free(after);
    rt_tensor_free(in);
}

/* ---- ownership ---------------------------------------------------------------------------------
 */

Test(interp, outputs_alias_and_dead_code) {
    float v[3] = {1, -2, 3};
    RtTensor *x = tensor_f32(th_shape(1, 3), v);
    Node *nx = ir_input(G, DT_F32, th_shape(1, 3), "x", L);
    Node *e = ir_unary(G, OP_NEG, nx, L);
    /* dead: an out-of-range gather nobody needs must not run */
    ir_gather(G, nx, ir_const(G, DT_I64, th_shape(1, 1), 7, L), L);
    ir_graph_add_output(G, e);
    ir_graph_add_output(G, e);
    ir_graph_add_output(G, nx);
    ir_graph_add_output(G, ir_binary(G, OP_MUL, e, e, L));
    RtTensor *ins[1] = {x}, *o[4];
    run(ins, o);
    cr_expect_neq(o[0], o[1]);
    cr_expect_neq(o[2], x);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(f(o[0], i), -v[i]);
        cr_expect_eq(f(o[1], i), -v[i]);
        cr_expect_eq(f(o[2], i), v[i]);
        cr_expect_eq(f(o[3], i), v[i] * v[i]);
        cr_expect_eq(f(x, i), v[i]); /* the caller's input is untouched */
    }
    for (int k = 0; k < 4; k++)
        rt_tensor_free(o[k]);
    rt_tensor_free(x);
}

Test(interp, interp_node) {
    Node *a = ir_input(G, DT_F64, th_shape(1, 2), "a", L),
         *b = ir_input(G, DT_F64, th_shape(1, 2), "b", L);
    Node *s = ir_binary(G, OP_POW, a, b, L);
    RtTensor *ta = rt_tensor_new(DT_F64, th_shape(1, 2)),
             *tb = rt_tensor_new(DT_F64, th_shape(1, 2));
    ((double *)ta->data)[0] = 2;
    ((double *)ta->data)[1] = 9;
    ((double *)tb->data)[0] = 10;
    ((double *)tb->data)[1] = 0.5;
    RtTensor *srcs[2] = {ta, tb};
    RtTensor *r = ir_interp_node(s, srcs, D);
    cr_assert_not_null(r);
    cr_expect_eq(((double *)r->data)[0], 1024);
    cr_expect_eq(((double *)r->data)[1], 3);
    rt_tensor_free(r);
    RtTensor *bad[2] = {ta, ta};
    ((Node *)b)->dtype = DT_F32; /* now the source types disagree */
    cr_expect_null(ir_interp_node(s, bad, D));
    cr_expect(strstr(th_last_diag(D), "operand 1 is not a f32[2] tensor") != NULL, "%s",
              th_last_diag(D));
    rt_tensor_free(ta);
    rt_tensor_free(tb);
}

/* ---- a small MLP
 * --------------------------------------------------------------------------------- */

static void fill(RtTensor *t, double scale, uint32_t *st) {
    int64_t n = rt_shape_numel(&t->shape);
    for (int64_t i = 0; i < n; i++) {
        *st = *st * 1664525u + 1013904223u;
        ((float *)t->data)[i] = (float)(scale * ((*st >> 8) * 0x1p-24 * 2 - 1));
    }
}

Test(interp, mlp_forward) {
    enum { N = 5, I = 7, H = 6, C = 3 };
    uint32_t st = 1;
    RtTensor *x = rt_tensor_new(DT_F32, th_shape(2, N, I)),
             *w1 = rt_tensor_new(DT_F32, th_shape(2, I, H));
    RtTensor *b1 = rt_tensor_new(DT_F32, th_shape(1, H)),
             *w2 = rt_tensor_new(DT_F32, th_shape(2, H, C));
    fill(x, 1, &st);
    fill(w1, 0.5, &st);
    fill(b1, 0.1, &st);
    fill(w2, 0.5, &st);
    Node *nx = ir_input(G, DT_F32, x->shape, "x", L), *n1 = ir_input(G, DT_F32, w1->shape, "W1", L);
    Node *nb = ir_input(G, DT_F32, b1->shape, "b1", L),
         *n2 = ir_input(G, DT_F32, w2->shape, "W2", L);
    Node *h = ir_relu(G, ir_binary(G, OP_ADD, ir_matmul(G, nx, n1, L), nb, L), L);
    ir_graph_add_output(G, ir_softmax(G, ir_matmul(G, h, n2, L), 1, L));
    RtTensor *ins[4] = {x, w1, b1, w2}, *p;
    run(ins, &p);
    for (int n = 0; n < N; n++) {
        double hv[H], lg[C], m = -INFINITY, den = 0;
        for (int j = 0; j < H; j++) {
            double s = f(b1, j);
            for (int i = 0; i < I; i++)
                s += (double)f(x, n * I + i) * f(w1, i * H + j);
            hv[j] = s > 0 ? s : 0;
        }
        for (int c = 0; c < C; c++) {
            lg[c] = 0;
            for (int j = 0; j < H; j++)
                lg[c] += hv[j] * f(w2, j * C + c);
            m = fmax(m, lg[c]);
        }
        for (int c = 0; c < C; c++)
            den += exp(lg[c] - m);
        for (int c = 0; c < C; c++)
            cr_expect(fabs(f(p, n * C + c) - exp(lg[c] - m) / den) < 1e-5, "p[%d,%d]", n, c);
    }
    rt_tensor_free(p);
    for (int k = 0; k < 4; k++)
        rt_tensor_free(ins[k]);
}

/* One SGD step of a 2-layer MLP with cross-entropy, backward written by hand
 * in IR ops: returns the loss and writes the new parameters as outputs. */
static void build_sgd_step(Graph *g, int64_t N, int64_t I, int64_t H, int64_t C, float lr) {
    Node *x = ir_input(g, DT_F32, th_shape(2, N, I), "x", L),
         *y = ir_input(g, DT_I64, th_shape(1, N), "y", L);
    Node *w1 = ir_input(g, DT_F32, th_shape(2, I, H), "W1", L),
         *b1 = ir_input(g, DT_F32, th_shape(1, H), "b1", L);
    Node *w2 = ir_input(g, DT_F32, th_shape(2, H, C), "W2", L),
         *b2 = ir_input(g, DT_F32, th_shape(1, C), "b2", L);
    Node *z = ir_binary(g, OP_ADD, ir_matmul(g, x, w1, L), b1, L);
    Node *h = ir_relu(g, z, L);
    Node *logits = ir_binary(g, OP_ADD, ir_matmul(g, h, w2, L), b2, L);
    Node *loss = ir_cross_entropy(g, logits, y, L);
    /* dlogits = (softmax - onehot) / N */
    Node *dl = ir_binary(
        g, OP_DIV,
        ir_binary(g, OP_SUB, ir_softmax(g, logits, 1, L), ir_one_hot(g, y, C, DT_F32, L), L),
        ir_scalar(g, DT_F32, (double)N, L), L);
    int tr[2] = {1, 0};
    Node *dw2 = ir_matmul(g, ir_permute(g, h, tr, L), dl, L);
    Node *db2 = ir_reduce(g, OP_SUM, dl, 1, L);
    Node *dh = ir_matmul(g, dl, ir_permute(g, w2, tr, L), L);
    Node *dz = ir_where(g, ir_binary(g, OP_LT, ir_scalar(g, DT_F32, 0, L), z, L), dh,
                        ir_scalar(g, DT_F32, 0, L), L);
    Node *dw1 = ir_matmul(g, ir_permute(g, x, tr, L), dz, L);
    Node *db1 = ir_reduce(g, OP_SUM, dz, 1, L);
    Node *lrn = ir_scalar(g, DT_F32, lr, L);
    Node *params[4] = {w1, b1, w2, b2}, *grads[4] = {dw1, db1, dw2, db2};
    ir_graph_add_output(g, loss);
    for (int k = 0; k < 4; k++)
        ir_graph_add_output(
            g, ir_binary(g, OP_SUB, params[k], ir_binary(g, OP_MUL, lrn, grads[k], L), L));
}

/* The synthetic problem: inputs in [-1, 1], scaled weights, zero biases and
 * a learnable label (the argmax of a fixed projection of x). */
static void make_problem(int64_t N, int64_t I, int64_t H, int64_t C, RtTensor **x, RtTensor **y,
                         RtTensor *p[4]) {
    uint32_t st = 7;
    *x = rt_tensor_new(DT_F32, th_shape(2, N, I));
    *y = rt_tensor_new(DT_I64, th_shape(1, N));
    p[0] = rt_tensor_new(DT_F32, th_shape(2, I, H));
    p[1] = rt_tensor_new(DT_F32, th_shape(1, H));
    p[2] = rt_tensor_new(DT_F32, th_shape(2, H, C));
    p[3] = rt_tensor_new(DT_F32, th_shape(1, C));
    fill(*x, 1, &st);
    fill(p[0], 1.0 / sqrt((double)I), &st);
    fill(p[2], 1.0 / sqrt((double)H), &st);
    for (int64_t n = 0; n < N; n++) {
        double best = -INFINITY;
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t i = c; i < I; i += C)
                s += f(*x, n * I + i);
            if (s > best) {
                best = s;
                ((int64_t *)(*y)->data)[n] = c;
            }
        }
    }
}

/* The MLP in double, independently of the IR: mean cross-entropy, and the
 * fraction of rows whose largest logit is the label. */
static void reference(int64_t N, int64_t I, int64_t H, int64_t C, const RtTensor *x,
                      const RtTensor *y, RtTensor *const p[4], double *loss, double *acc) {
    double *hv = malloc(sizeof(double) * (size_t)H), *lg = malloc(sizeof(double) * (size_t)C);
    double total = 0;
    int64_t right = 0;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t j = 0; j < H; j++) {
            double s = f(p[1], j);
            for (int64_t i = 0; i < I; i++)
                s += (double)f(x, n * I + i) * f(p[0], i * H + j);
            hv[j] = s > 0 ? s : 0;
        }
        double m = -INFINITY, den = 0;
        int64_t arg = 0;
        for (int64_t c = 0; c < C; c++) {
            lg[c] = f(p[3], c);
            for (int64_t j = 0; j < H; j++)
                lg[c] += hv[j] * f(p[2], j * C + c);
            if (lg[c] > m) {
                m = lg[c];
                arg = c;
            }
        }
        for (int64_t c = 0; c < C; c++)
            den += exp(lg[c] - m);
        int64_t lab = ((const int64_t *)y->data)[n];
        total += m + log(den) - lg[lab];
        right += arg == lab;
    }
    free(hv);
    free(lg);
    *loss = total / (double)N;
    *acc = (double)right / (double)N;
}

/* Trains on the fixed synthetic batch; returns the last loss, the first via
 * *first, and the training accuracy of the final parameters via *acc. */
static double train(int64_t N, int64_t I, int64_t H, int64_t C, int steps, double *first,
                    double *acc) {
    Graph *g = ir_graph_new(A, D, "step");
    build_sgd_step(g, N, I, H, C, 0.1f);
    cr_assert(ir_verify(g, "build"), "%s", th_last_diag(D));
    RtTensor *x, *y, *p[4];
    make_problem(N, I, H, C, &x, &y, p);
    double loss = NAN;
    for (int s = 0; s < steps; s++) {
        RtTensor *ins[6] = {x, y, p[0], p[1], p[2], p[3]}, *outs[5];
        cr_assert(ir_interp_run(g, ins, outs, D), "%s", th_last_diag(D));
        loss = f(outs[0], 0);
        if (s == 0) *first = loss;
        rt_tensor_free(outs[0]);
        for (int k = 0; k < 4; k++) {
            rt_tensor_free(p[k]);
            p[k] = outs[k + 1];
        }
    }
    double ref_loss;
    reference(N, I, H, C, x, y, p, &ref_loss, acc);
    rt_tensor_free(x);
    rt_tensor_free(y);
    for (int k = 0; k < 4; k++)
        rt_tensor_free(p[k]);
    return loss;
}

/* One step of the hand-written backward against the same step through
 * pass_grad (th_mlp_sgd_step): the same loss, equal to the double reference,
 * and the same new parameters, element by element. */
static void check_first_step(int64_t N, int64_t I, int64_t H, int64_t C) {
    Graph *hand = ir_graph_new(A, D, "hand"), *ad = ir_graph_new(A, D, "autodiff");
    build_sgd_step(hand, N, I, H, C, 0.1f);
    Node *ax = ir_input(ad, DT_F32, th_shape(2, N, I), "x", L),
         *ay = ir_input(ad, DT_I64, th_shape(1, N), "y", L);
    Node *aw[4] = {ir_input(ad, DT_F32, th_shape(2, I, H), "W1", L),
                   ir_input(ad, DT_F32, th_shape(1, H), "b1", L),
                   ir_input(ad, DT_F32, th_shape(2, H, C), "W2", L),
                   ir_input(ad, DT_F32, th_shape(1, C), "b2", L)};
    th_mlp_sgd_step(ad, ax, ay, aw, L);
    cr_assert(ir_verify(hand, "hand") && ir_verify(ad, "autodiff"), "%s", th_last_diag(D));
    RtTensor *x, *y, *p[4];
    make_problem(N, I, H, C, &x, &y, p);
    RtTensor *ins[6] = {x, y, p[0], p[1], p[2], p[3]}, *o1[5], *o2[5];
    cr_assert(ir_interp_run(hand, ins, o1, D), "%s", th_last_diag(D));
    cr_assert(ir_interp_run(ad, ins, o2, D), "%s", th_last_diag(D));
    double ref_loss, acc;
    reference(N, I, H, C, x, y, p, &ref_loss, &acc);
    cr_expect(fabs(f(o1[0], 0) - ref_loss) <= 1e-5 * fabs(ref_loss), "loss %.9g, reference %.9g",
              f(o1[0], 0), ref_loss);
    cr_expect(fabs(f(o2[0], 0) - ref_loss) <= 1e-5 * fabs(ref_loss),
              "autodiff graph's loss %.9g, reference %.9g", f(o2[0], 0), ref_loss);
    static const char *names[4] = {"W1", "b1", "W2", "b2"};
    for (int k = 0; k < 4; k++) {
        int64_t n = rt_shape_numel(&p[k]->shape), bad = 0;
        double moved = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = f(o1[k + 1], i), b = f(o2[k + 1], i);
            moved = fmax(moved, fabs(b - f(p[k], i)));
            if (fabs(a - b) > 1e-6 + 1e-5 * fabs(b) && bad++ < 3)
                cr_expect(false, "%s[%lld] after one step: hand-written %.9g, autodiff %.9g",
                          names[k], (long long)i, a, b);
        }
        cr_expect_eq(bad, 0, "%s: %lld of %lld elements differ", names[k], (long long)bad,
                     (long long)n);
        cr_expect(moved > 1e-6, "%s did not move in the step", names[k]);
    }
    for (int k = 0; k < 5; k++) {
        rt_tensor_free(o1[k]);
        rt_tensor_free(o2[k]);
    }
    rt_tensor_free(x);
    rt_tensor_free(y);
    for (int k = 0; k < 4; k++)
        rt_tensor_free(p[k]);
}

Test(interp, mlp_hand_written_step_matches_autodiff_and_reference) {
    check_first_step(64, 20, 32, 4);
}

Test(interp, mlp_sgd_learns_its_labels) {
    double first, acc;
    double last = train(64, 20, 32, 4, 200, &first, &acc);
    cr_expect(last < 0.5 * first, "loss %g -> %g", first, last);
    cr_expect(acc >= 0.9, "training accuracy %g after 200 steps (chance is 0.25)", acc);
}

/* The shape of the real workload (784-256-10, batch 128): one step checked
 * value by value, then a few steps that must lower the loss. The
 * interpreter's speed is measured by scripts/bench.sh (the "dflow interp"
 * row), not asserted here: a timed test fails on a loaded machine. */
Test(interp, mlp_784_256_10_trains) {
    check_first_step(128, 784, 256, 10);
    double first, acc;
    double last = train(128, 784, 256, 10, 20, &first, &acc);
    cr_expect(last < first, "loss %g -> %g", first, last);
}
