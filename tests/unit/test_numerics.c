/* Numerical accuracy on every backend: the interpreter and the LLVM CPU
 * backend, each against an independent answer computed here in f64 (or a
 * committed PyTorch fixture, tests/fixtures/).
 *
 * Long reductions: sums, means, dots, column sums and row phases
 * (logsumexp, softmax) over 10^7 f32 elements, of a constant and of
 * random-sign data, must be within 1e-5 * sum |x_i| of the f64 sum (f32
 * accumulation one element at a time is off by percents there). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "codegen/llvm/llvm_backend.h"
#include "helpers/ir_helpers.h"
#include "ir/interp.h"
#include "ir/ir.h"

static Arena *A;
static DiagList *D;
static GraphRunner R;
static SrcLoc L = {1, 1, 1, 1};

static void setup(void) {
    A = arena_new();
    SourceSet *s = source_set_new(A);
    source_add(s, "t.dfl", "x\n", 2);
    D = diag_list_new(A, s);
    char err[200] = "";
    LlvmOptions o = {.interp_runs = 0, .nthreads = 2, .poison = true};
    R = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(R.run, "llvm runner: %s", err);
}

static void teardown(void) {
    llvm_runner_free(&R);
    arena_free(A);
}

TestSuite(numerics, .init = setup, .fini = teardown);

/* splitmix64: deterministic data */
static uint64_t rs = 0x5eed;
static double unif(double lo, double hi) {
    uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) / 9007199254740992.0;
}

typedef enum { BK_INTERP, BK_CPU, BK_COUNT } Backend;
static const char *bk_name[BK_COUNT] = {"interp", "cpu"};

/* Runs g on backend b; the outputs go to out[]. */
static void run_on(Backend b, Graph *g, RtTensor **in, RtTensor **out) {
    cr_assert(ir_verify(g, "test"), "%s", th_last_diag(D));
    bool ok = b == BK_INTERP ? ir_interp_run(g, in, out, D) : R.run(R.ctx, g, in, out, D);
    cr_assert(ok, "%s: %s", bk_name[b], th_last_diag(D));
    if (b == BK_CPU) {
        const LlvmGraphInfo *info = llvm_runner_graph(&R, llvm_runner_ngraphs(&R) - 1);
        cr_assert(info && !info->fallback, "fell back to the interpreter");
    }
}

static float *fdata(RtTensor *t) {
    return (float *)t->data;
}

/* ---- long reductions -------------------------------------------------------------------- */

#define NBIG 10000000

/* got within 1e-5 * mag (plus one f32 rounding of want) of want */
static bool close_to(double got, double want, double mag) {
    return fabs(got - want) <= 1e-5 * mag + 6e-8 * fabs(want);
}

static void check_long_reductions(const char *what, void (*fill)(float *, int64_t)) {
    int64_t n = NBIG;
    Graph *g = ir_graph_new(A, D, "long");
    Shape s1 = th_shape(1, (int)n);
    RtTensor *in[2] = {rt_tensor_new(DT_F32, s1), rt_tensor_new(DT_F32, s1)};
    fill(fdata(in[0]), n);
    fill(fdata(in[1]), n);
    float *x = fdata(in[0]), *y = fdata(in[1]);
    Node *xn = ir_input(g, DT_F32, s1, "x", L), *yn = ir_input(g, DT_F32, s1, "y", L);
    Node *cols = ir_reshape(g, xn, th_shape(2, (int)(n / 2), 2), L);
    Node *rows = ir_reshape(g, xn, th_shape(2, 1000, (int)(n / 1000)), L);
    Node *one_row = ir_reshape(g, xn, th_shape(2, 1, (int)n), L);
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, xn, 1u, L)); /* 0 */
    ir_graph_add_output(g, ir_mean(g, xn, 1u, L));           /* 1 */
    ir_graph_add_output(g,
                        ir_reduce(g, OP_SUM, ir_binary(g, OP_MUL, xn, yn, L), 1u, L)); /* 2: dot */
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, cols, 1u, L)); /* 3: columns */
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, rows, 2u, L)); /* 4: rows */
    ir_graph_add_output(g, ir_logsumexp(g, one_row, 1, L));    /* 5: phases */
    ir_graph_add_output(g, ir_softmax(g, one_row, 1, L));      /* 6: phases */

    /* the f64 answers and the magnitudes sum |terms| */
    double sum = 0, mag = 0, dot = 0, dmag = 0, col[2] = {0, 0}, cmag[2] = {0, 0}, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        sum += x[i];
        mag += fabs(x[i]);
        dot += (double)x[i] * y[i];
        dmag += fabs((double)x[i] * y[i]);
        col[i & 1] += x[i];
        cmag[i & 1] += fabs(x[i]);
        mx = fmax(mx, x[i]);
    }
    double se = 0;
    for (int64_t i = 0; i < n; i++)
        se += exp((double)x[i] - mx);
    double lse = mx + log(se);

    for (int b = 0; b < BK_COUNT; b++) {
        RtTensor *out[8] = {0};
        run_on((Backend)b, g, in, out);
        const char *bn = bk_name[b];
        double v = fdata(out[0])[0];
        cr_expect(close_to(v, sum, mag), "%s %s: sum = %.9g, want %.9g", bn, what, v, sum);
        v = fdata(out[1])[0];
        cr_expect(close_to(v, sum / (double)n, mag / (double)n), "%s %s: mean = %.9g, want %.9g",
                  bn, what, v, sum / (double)n);
        v = fdata(out[2])[0];
        cr_expect(close_to(v, dot, dmag), "%s %s: dot = %.9g, want %.9g", bn, what, v, dot);
        for (int j = 0; j < 2; j++) {
            v = fdata(out[3])[j];
            cr_expect(close_to(v, col[j], cmag[j]), "%s %s: column sum %d = %.9g, want %.9g", bn,
                      what, j, v, col[j]);
        }
        int64_t w = n / 1000;
        for (int r = 0; r < 1000; r += 333) {
            double rs_ = 0, rm = 0;
            for (int64_t i = r * w; i < (r + 1) * w; i++) {
                rs_ += x[i];
                rm += fabs(x[i]);
            }
            v = fdata(out[4])[r];
            cr_expect(close_to(v, rs_, rm), "%s %s: row sum %d = %.9g, want %.9g", bn, what, r, v,
                      rs_);
        }
        v = fdata(out[5])[0];
        /* d lse = d S / S, and S = sum |exp(x - max)| */
        cr_expect(close_to(v, lse, 1.0), "%s %s: logsumexp = %.9g, want %.9g", bn, what, v, lse);
        int bad = 0;
        for (int64_t i = 0; i < n && bad < 3; i += 9973) {
            double want = exp((double)x[i] - mx) / se, got = fdata(out[6])[i];
            if (!(fabs(got - want) <= 1e-5 * want + 1e-44)) {
                cr_log_error("%s %s: softmax[%lld] = %.9g, want %.9g", bn, what, (long long)i, got,
                             want);
                bad++;
            }
        }
        cr_expect_eq(bad, 0, "%s %s: softmax over a row of 10^7", bn, what);
        for (int j = 0; j < g->noutputs; j++)
            rt_tensor_free(out[j]);
    }
    rt_tensor_free(in[0]);
    rt_tensor_free(in[1]);
}

static void fill_tenth(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = 0.1f;
}

static void fill_signed(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)unif(-1, 1);
}

static void fill_biased(float *x, int64_t n) { /* mostly positive, wide magnitudes */
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(unif(-0.2, 1) * pow(10, unif(-3, 1)));
}

Test(numerics, long_sums_of_a_constant_are_accurate, .timeout = 600) {
    check_long_reductions("0.1 x 10^7", fill_tenth);
}

Test(numerics, long_sums_of_random_signs_are_accurate, .timeout = 600) {
    check_long_reductions("uniform(-1, 1) x 10^7", fill_signed);
}

Test(numerics, long_sums_of_mixed_magnitudes_are_accurate, .timeout = 600) {
    check_long_reductions("mixed magnitudes x 10^7", fill_biased);
}
