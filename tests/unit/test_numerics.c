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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/llvm/llvm_backend.h"
#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"
#include "ir/interp.h"
#include "ir/ir.h"
#include "ir/shape.h"
#include "passes/autodiff.h"
#include "runtime/vmath.h"

static Arena *A;
static DiagList *D;
static GraphRunner R;
static SrcLoc L = {1, 1, 1, 1};

static void setup(void) {
    A = arena_new();
    D = th_diag_list(A, "t.dfl", "x\n");
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
    return th_uniform(&rs, lo, hi);
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

/* ---- PyTorch fixtures (tests/fixtures/make_numerics.py) --------------------------------- */

#define FIX_MAX 16

static struct {
    char name[32];
    int n;
    double *v;
} fix[FIX_MAX];
static int nfix;

/* The values of fixture line `name` (asserts it exists); *n gets their count. */
static const double *fixture(const char *name, int *n) {
    if (nfix == 0) {
        FILE *f = fopen("tests/fixtures/numerics_torch.txt", "r");
        cr_assert_not_null(f, "tests/fixtures/numerics_torch.txt (run from the repository root)");
        char nm[32];
        int cnt;
        while (nfix < FIX_MAX && fscanf(f, " %31s", nm) == 1) {
            if (nm[0] == '#') {
                fscanf(f, "%*[^\n]");
                continue;
            }
            cr_assert_eq(fscanf(f, "%d", &cnt), 1);
            snprintf(fix[nfix].name, sizeof fix[nfix].name, "%s", nm);
            fix[nfix].n = cnt;
            fix[nfix].v = arena_alloc(A, sizeof(double) * (size_t)cnt);
            for (int i = 0; i < cnt; i++) {
                char tok[64];
                cr_assert_eq(fscanf(f, "%63s", tok), 1);
                fix[nfix].v[i] = strtod(tok, NULL);
            }
            nfix++;
        }
        fclose(f);
    }
    for (int i = 0; i < nfix; i++)
        if (strcmp(fix[i].name, name) == 0) {
            *n = fix[i].n;
            return fix[i].v;
        }
    cr_assert_fail("no fixture %s", name);
    return NULL;
}

static RtTensor *tensor_of(DType dt, Shape s, const double *v) {
    RtTensor *t = rt_tensor_new(dt, s);
    for (int64_t i = 0; i < rt_shape_numel(&s); i++)
        rt_tensor_set_f64(t, i, v[i]);
    return t;
}

/* got matches want: the same non-finite value, or within abs + rel |want| */
static bool matches(double got, double want, double abs_tol, double rel) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs(got - want) <= abs_tol + rel * fabs(want);
}

static void expect_all(Backend b, const char *what, DType dt, const RtTensor *got,
                       const double *want, int n, double abs_tol, double rel) {
    for (int i = 0; i < n; i++) {
        double g = rt_tensor_get_f64(got, i);
        cr_expect(matches(g, want[i], abs_tol, rel), "%s %s %s[%d] = %.17g, want %.17g", bk_name[b],
                  rt_dtype_name(dt), what, i, g, want[i]);
    }
}

Test(numerics, cross_entropy_with_masked_classes_is_finite_as_in_pytorch) {
    int nl, nb, n1, ng;
    const double *lg = fixture("ce_logits", &nl), *lb = fixture("ce_labels", &nb);
    const double *loss = fixture("ce_loss", &n1), *grad = fixture("ce_grad", &ng);
    DType dts[2] = {DT_F32, DT_F64};
    for (int d = 0; d < 2; d++) {
        Graph *g = ir_graph_new(A, D, "ce");
        Shape sl = th_shape(2, nb, nl / nb), sb = th_shape(1, nb);
        Node *x = ir_input(g, dts[d], sl, "logits", L), *y = ir_input(g, DT_I64, sb, "labels", L);
        Node *l = ir_cross_entropy(g, x, y, L), *gx = NULL;
        cr_assert(pass_grad(g, l, NULL, &x, 1, &gx), "%s", th_last_diag(D));
        ir_graph_add_output(g, l);
        ir_graph_add_output(g, gx);
        RtTensor *in[2] = {tensor_of(dts[d], sl, lg), tensor_of(DT_I64, sb, lb)};
        double tol = dts[d] == DT_F32 ? 1e-6 : 1e-13;
        for (int b = 0; b < BK_COUNT; b++) {
            RtTensor *out[2] = {0};
            run_on((Backend)b, g, in, out);
            expect_all((Backend)b, "cross_entropy", dts[d], out[0], loss, 1, tol, tol);
            expect_all((Backend)b, "d cross_entropy", dts[d], out[1], grad, ng, tol, tol);
            rt_tensor_free(out[0]);
            rt_tensor_free(out[1]);
        }
        rt_tensor_free(in[0]);
        rt_tensor_free(in[1]);
    }
}

Test(numerics, logsumexp_of_infinite_rows_is_infinite_as_in_pytorch) {
    int nr, nw;
    const double *rows = fixture("lse_rows", &nr), *want = fixture("lse", &nw);
    DType dts[2] = {DT_F32, DT_F64};
    for (int d = 0; d < 2; d++) {
        Graph *g = ir_graph_new(A, D, "lse");
        Shape s = th_shape(2, nw, nr / nw);
        ir_graph_add_output(g, ir_logsumexp(g, ir_input(g, dts[d], s, "x", L), 1, L));
        RtTensor *in[1] = {tensor_of(dts[d], s, rows)};
        for (int b = 0; b < BK_COUNT; b++) {
            RtTensor *out[1] = {0};
            run_on((Backend)b, g, in, out);
            expect_all((Backend)b, "logsumexp", dts[d], out[0], want, nw, 0,
                       dts[d] == DT_F32 ? 1e-6 : 1e-14);
            rt_tensor_free(out[0]);
        }
        rt_tensor_free(in[0]);
    }
}

Test(numerics, gelu_exact_and_tanh_forms_match_pytorch_with_their_gradients) {
    int nx, n;
    const double *xs = fixture("gelu_x", &nx);
    const char *names[2] = {"gelu", "gelu_tanh"};
    DType dts[2] = {DT_F32, DT_F64};
    for (int form = 0; form < 2; form++) {
        char gname[40];
        snprintf(gname, sizeof gname, "%s_grad", names[form]);
        const double *want = fixture(names[form], &n), *dwant = fixture(gname, &n);
        for (int d = 0; d < 2; d++) {
            Graph *g = ir_graph_new(A, D, "gelu");
            Shape s = th_shape(1, nx);
            Node *x = ir_input(g, dts[d], s, "x", L), *gx = NULL;
            Node *y = ir_gelu(g, x, form == 1, L);
            cr_assert(pass_grad(g, ir_reduce(g, OP_SUM, y, 1u, L), NULL, &x, 1, &gx), "%s",
                      th_last_diag(D));
            ir_graph_add_output(g, y);
            ir_graph_add_output(g, gx);
            RtTensor *in[1] = {tensor_of(dts[d], s, xs)};
            double tol = dts[d] == DT_F32 ? 1e-6 : 1e-12;
            for (int b = 0; b < BK_COUNT; b++) {
                RtTensor *out[2] = {0};
                run_on((Backend)b, g, in, out);
                expect_all((Backend)b, names[form], dts[d], out[0], want, nx, tol, tol);
                expect_all((Backend)b, gname, dts[d], out[1], dwant, nx, tol, tol);
                rt_tensor_free(out[0]);
                rt_tensor_free(out[1]);
            }
            rt_tensor_free(in[0]);
        }
    }
}

/* ---- answers from libm and C ----------------------------------------------------------- */

Test(numerics, tanh_is_accurate_near_zero) {
    /* libm's tanh in f64 is the answer; 2 ulp for f32, 4 for f64 */
    double v[] = {1e-7, -1e-7, 1e-10, 1e-30, 1e-40, 0,    -0.0,  3e-4,     1e-3,     -1e-2,
                  0.1,  0.25,  0.29,  0.31,  0.5,   0.54, 0.549, 0.551,    0.56,     0.7,
                  1,    -1,    3,     10,    20,    100,  -100,  INFINITY, -INFINITY};
    int n = (int)(sizeof v / sizeof v[0]);
    DType dts[2] = {DT_F32, DT_F64};
    for (int d = 0; d < 2; d++) {
        Graph *g = ir_graph_new(A, D, "tanh");
        Shape s = th_shape(1, n);
        Node *x = ir_input(g, dts[d], s, "x", L), *gx = NULL;
        Node *y = ir_tanh(g, x, L);
        cr_assert(pass_grad(g, ir_reduce(g, OP_SUM, y, 1u, L), NULL, &x, 1, &gx));
        ir_graph_add_output(g, y);
        ir_graph_add_output(g, gx);
        RtTensor *in[1] = {tensor_of(dts[d], s, v)};
        double ulp = dts[d] == DT_F32 ? 0x1p-23 : 0x1p-52, lim = dts[d] == DT_F32 ? 2 : 4;
        for (int b = 0; b < BK_COUNT; b++) {
            RtTensor *out[2] = {0};
            run_on((Backend)b, g, in, out);
            for (int i = 0; i < n; i++) {
                double xi = rt_tensor_get_f64(in[0], i), want = tanh(xi),
                       got = rt_tensor_get_f64(out[0], i);
                double dw = 1 - want * want, dg = rt_tensor_get_f64(out[1], i);
                cr_expect(fabs(got - want) <= lim * ulp * fabs(want) + 1e-45,
                          "%s %s tanh(%g) = %.17g, want %.17g", bk_name[b], rt_dtype_name(dts[d]),
                          xi, got, want);
                cr_expect(fabs(dg - dw) <= 1e-6, "%s %s tanh'(%g) = %.17g, want %.17g", bk_name[b],
                          rt_dtype_name(dts[d]), xi, dg, dw);
                if (xi == 0) cr_expect_eq(signbit(got), signbit(xi), "tanh keeps the sign of zero");
            }
            rt_tensor_free(out[0]);
            rt_tensor_free(out[1]);
        }
        rt_tensor_free(in[0]);
    }
}

Test(numerics, argmin_and_argmax_of_extreme_integers) {
    const int64_t lo32 = INT32_MIN, hi32 = INT32_MAX;
    double big = 0x1p60; /* exact in f64; i64 neighbours differ below f64's resolution */
    struct {
        DType dt;
        int64_t v[4];
        int64_t amin, amax;
    } cases[] = {
        {DT_I32, {hi32, lo32, 0, lo32}, 1, 0},
        {DT_I32, {lo32, 5, lo32 + 1, 7}, 0, 3},
        {DT_I32, {0, hi32, -1, hi32}, 2, 1},
        {DT_I64, {INT64_MAX, INT64_MIN, 0, 1}, 1, 0},
        {DT_I64, {(int64_t)big + 1, (int64_t)big, (int64_t)big + 3, (int64_t)big + 2}, 1, 2},
        {DT_BOOL, {1, 0, 0, 1}, 1, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Graph *g = ir_graph_new(A, D, "arg");
        Shape s = th_shape(1, 4);
        Node *x = ir_input(g, cases[k].dt, s, "x", L);
        ir_graph_add_output(g, ir_argmin(g, x, 0, L));
        ir_graph_add_output(g, ir_reduce(g, OP_ARGMAX, x, 1u, L));
        RtTensor *in[1] = {rt_tensor_new(cases[k].dt, s)};
        for (int i = 0; i < 4; i++)
            rt_tensor_set_i64(in[0], i, cases[k].v[i]);
        for (int b = 0; b < BK_COUNT; b++) {
            RtTensor *out[2] = {0};
            run_on((Backend)b, g, in, out);
            cr_expect_eq(rt_tensor_get_i64(out[0], 0), cases[k].amin,
                         "%s case %zu: argmin %lld, want %lld", bk_name[b], k,
                         (long long)rt_tensor_get_i64(out[0], 0), (long long)cases[k].amin);
            cr_expect_eq(rt_tensor_get_i64(out[1], 0), cases[k].amax,
                         "%s case %zu: argmax %lld, want %lld", bk_name[b], k,
                         (long long)rt_tensor_get_i64(out[1], 0), (long long)cases[k].amax);
            rt_tensor_free(out[0]);
            rt_tensor_free(out[1]);
        }
        rt_tensor_free(in[0]);
    }
}

Test(numerics, integer_sums_accumulate_and_return_i64) {
    Graph *g = ir_graph_new(A, D, "isum");
    Shape s = th_shape(2, 3, 4);
    Node *x = ir_input(g, DT_I32, s, "x", L), *bx = ir_input(g, DT_BOOL, s, "b", L);
    Node *all = ir_reduce(g, OP_SUM, x, 3u, L), *cols = ir_reduce(g, OP_SUM, x, 1u, L);
    Node *rows = ir_reduce(g, OP_SUM, x, 2u, L), *cnt = ir_reduce(g, OP_SUM, bx, 3u, L);
    Node *outs[4] = {all, cols, rows, cnt};
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(outs[j]->dtype, DT_I64, "sum %d is i64", j);
        ir_graph_add_output(g, outs[j]);
    }
    RtTensor *in[2] = {rt_tensor_new(DT_I32, s), rt_tensor_new(DT_BOOL, s)};
    int64_t want_all = 0, want_cols[4] = {0}, want_rows[3] = {0}, want_cnt = 0;
    for (int i = 0; i < 12; i++) {
        int64_t v = i % 3 == 0 ? INT32_MAX : i % 3 == 1 ? INT32_MAX - i : -(int64_t)i;
        rt_tensor_set_i64(in[0], i, v);
        rt_tensor_set_i64(in[1], i, i % 5 != 0);
        want_all += v;
        want_cols[i % 4] += v;
        want_rows[i / 4] += v;
        want_cnt += i % 5 != 0;
    }
    for (int b = 0; b < BK_COUNT; b++) {
        RtTensor *out[4] = {0};
        run_on((Backend)b, g, in, out);
        cr_expect_eq(rt_tensor_get_i64(out[0], 0), want_all, "%s: sum %lld, want %lld", bk_name[b],
                     (long long)rt_tensor_get_i64(out[0], 0), (long long)want_all);
        for (int j = 0; j < 4; j++)
            cr_expect_eq(rt_tensor_get_i64(out[1], j), want_cols[j], "%s: column %d", bk_name[b],
                         j);
        for (int j = 0; j < 3; j++)
            cr_expect_eq(rt_tensor_get_i64(out[2], j), want_rows[j], "%s: row %d", bk_name[b], j);
        cr_expect_eq(rt_tensor_get_i64(out[3], 0), want_cnt, "%s: count", bk_name[b]);
        for (int j = 0; j < 4; j++)
            rt_tensor_free(out[j]);
    }
    rt_tensor_free(in[0]);
    rt_tensor_free(in[1]);
    /* the rule behind it: a SUM node of i32 is refused, so no backend sees one */
    char err[256];
    DType dt;
    Shape rs;
    Attr at = {.reduce = {3u}};
    cr_expect_not(ir_infer(OP_SUM, &x, 1, &at, &dt, &rs, err, sizeof err));
    cr_expect(strstr(err, "i64") != NULL, "%s", err);
}

/* ---- runtime/vmath against libm over the whole range ----------------------------------- */

/* |got - want| in ulps of want (the f32 ulp at want's binade; subnormals:
 * 2^-149), 0 when both are the same inf or NaN, huge when only one is. */
static double ulps_off(float got, double want) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got) ? 0 : 1e30;
    if (isinf(want) || isinf(got)) {
        if (got == want) return 0;
        if (isinf(got) && fabs(want) > 0x1.fffffep127) return 0.5; /* rounds to inf */
        return 1e30;
    }
    int e;
    frexp(fabs(want), &e);
    double ulp = fabs(want) < 0x1p-126 ? 0x1p-149 : ldexp(1.0, e - 24);
    return fabs((double)got - want) / ulp;
}

Test(numerics, vmath_is_within_its_promised_ulps_of_libm) {
    /* every exponent and sign: a stride through all 2^32 bit patterns,
       plus the neighbours of each power of two */
    const char *names[4] = {"exp", "log", "sin", "cos"};
    const double promise[4] = {1, 1, 2, 2}; /* vmath.h */
    for (int f = 0; f < 4; f++) {
        double worst = 0;
        float at = 0;
        for (uint64_t b = 0; b < (1ull << 32); b += 4099) {
            for (int d = -1; d <= 1; d++) {
                uint32_t bits =
                    (uint32_t)(d == 0 ? b : ((b >> 23) << 23) + (uint64_t)(d < 0 ? 0 : 1));
                float x;
                memcpy(&x, &bits, sizeof x);
                if (isnan(x)) continue;
                float got;
                double want;
                switch (f) {
                case 0:
                    got = rt_vm_expf(x), want = exp((double)x);
                    break;
                case 1:
                    got = rt_vm_logf(x), want = log((double)x);
                    break;
                case 2:
                    got = rt_vm_sinf(x), want = sin((double)x);
                    break;
                default:
                    got = rt_vm_cosf(x), want = cos((double)x);
                    break;
                }
                double u = ulps_off(got, want);
                if (u > worst) worst = u, at = x;
            }
        }
        cr_log_info("vmath %s: worst %.3f ulp at %a", names[f], worst, (double)at);
        cr_expect(worst < promise[f], "vmath %s: %.3f ulp at %a (%.9g), promised < %g", names[f],
                  worst, (double)at, (double)at, promise[f]);
    }
}

/* ---- row phases on extreme rows: CPU against the interpreter ------------------------ */

typedef enum { ROW_POSITIVE, ROW_LOW, ROW_GAP, ROW_KINDS } RowKind;
static const char *row_name[ROW_KINDS] = {"all-positive", "<= -100", "gap >= 100"};

static void fill_rows(double *v, int rows, int cols, RowKind k) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double *p = &v[r * cols + c];
            if (k == ROW_POSITIVE)
                *p = unif(0.05, 5);
            else if (k == ROW_LOW)
                *p = unif(-400, -100);
            else
                *p = c == (r * 7) % cols ? unif(100, 150) : unif(-3, 3); /* one logit far above */
        }
}

static Node *layernorm_of(Graph *g, Node *x) {
    Node *m = ir_unsqueeze_axes(g, ir_mean(g, x, 2u, L), 2u, L);
    Node *d = ir_binary(g, OP_SUB, x, m, L);
    Node *var = ir_unsqueeze_axes(g, ir_mean(g, ir_binary(g, OP_MUL, d, d, L), 2u, L), 2u, L);
    Node *den =
        ir_unary(g, OP_SQRT, ir_binary(g, OP_ADD, var, ir_scalar(g, x->dtype, 1e-5, L), L), L);
    return ir_binary(g, OP_DIV, d, den, L);
}

Test(numerics, row_phases_agree_on_extreme_rows) {
    const int rows = 37, cols = 301;
    for (int k = 0; k < ROW_KINDS; k++) {
        for (int d = 0; d < 2; d++) {
            DType dt = d ? DT_F64 : DT_F32;
            Graph *g = ir_graph_new(A, D, "rows");
            Shape s = th_shape(2, rows, cols), sl = th_shape(1, rows);
            Node *x = ir_input(g, dt, s, "x", L), *y = ir_input(g, DT_I64, sl, "y", L);
            ir_graph_add_output(g, ir_softmax(g, x, 1, L));
            ir_graph_add_output(g, ir_log_softmax(g, x, 1, L));
            ir_graph_add_output(g, ir_logsumexp(g, x, 1, L));
            ir_graph_add_output(g, layernorm_of(g, x));
            Node *ce = ir_cross_entropy(g, x, y, L), *gx = NULL;
            cr_assert(pass_grad(g, ce, NULL, &x, 1, &gx), "%s", th_last_diag(D));
            ir_graph_add_output(g, ce);
            ir_graph_add_output(g, gx);
            double *v = arena_alloc(A, sizeof(double) * (size_t)(rows * cols)), lab[rows];
            fill_rows(v, rows, cols, k);
            for (int r = 0; r < rows; r++)
                lab[r] = (r * 13) % cols;
            RtTensor *in[2] = {tensor_of(dt, s, v), tensor_of(DT_I64, sl, lab)};
            RtTensor *want[6] = {0}, *got[6] = {0};
            run_on(BK_INTERP, g, in, want);
            run_on(BK_CPU, g, in, got);
            const char *what[6] = {"softmax",   "log_softmax",   "logsumexp",
                                   "layernorm", "cross_entropy", "d cross_entropy"};
            double rel = dt == DT_F32 ? 2e-5 : 1e-12;
            for (int j = 0; j < 6; j++) {
                int64_t n = rt_shape_numel(&want[j]->shape);
                int bad = 0;
                for (int64_t i = 0; i < n && bad < 3; i++) {
                    double a = rt_tensor_get_f64(got[j], i), b = rt_tensor_get_f64(want[j], i);
                    /* values near 0 (softmax tails, centred layernorm) on an absolute scale */
                    double scale = j == 3                       ? 1
                                   : j == 1 || j == 2 || j == 4 ? fabs(b) + 1
                                                                : fabs(b) + 1e-30;
                    if (!isfinite(a) || !(fabs(a - b) <= rel * scale)) {
                        cr_log_error("%s %s %s[%lld]: cpu %.9g, interp %.9g", rt_dtype_name(dt),
                                     row_name[k], what[j], (long long)i, a, b);
                        bad++;
                    }
                }
                cr_expect_eq(bad, 0, "%s %s %s", rt_dtype_name(dt), row_name[k], what[j]);
            }
            for (int j = 0; j < 6; j++) {
                rt_tensor_free(want[j]);
                rt_tensor_free(got[j]);
            }
            rt_tensor_free(in[0]);
            rt_tensor_free(in[1]);
        }
    }
}

/* ---- the builtins end to end, on both backends -------------------------------------- */

Test(numerics, builtins_give_the_same_right_answers_on_both_backends, .timeout = 120) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    const char *path =
        th_write_program("main {\n"
                         "  print argmin(iota(3) - 2147483647 - 1), argmin(iota(4) % 2 == 0)\n"
                         "  print sum(iota(3) + 2147483645)\n"
                         "  print gelu(full([1], 1.0)), gelu(full([1], 1.0), approximate = "
                         "\"tanh\"), erf(full([1], 0.5))\n"
                         "  print tanh(full([1], 1e-10))\n"
                         "}\n");
    const char *want = "0 1\n6442450938\n[0.841345] [0.841192] [0.5205]\n[1e-10]\n";
    const char *backends[2] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r =
            th_run(60, bin, "run", path, "--backend", backends[b], "--no-progress", NULL);
        TH_EXPECT_EXIT(r, 0);
        cr_expect(strncmp(r.out, want, strlen(want)) == 0, "%s printed:\n%s\nwant:\n%s",
                  backends[b], r.out, want);
        th_spawn_free(&r);
    }
    path = th_write_program("main {\n  print gelu(full([2], 1.0), approximate = \"exact\")\n}\n");
    SpawnResult r = th_run(60, bin, "check", path, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_expect(strstr(r.err, ":2:44: error: gelu: approximate must be \"none\" or \"tanh\"") != NULL,
              "%s", r.err);
    th_spawn_free(&r);
}

/* Integer constants above 2^53 stay exact: they used to pass through a
 * double (9007199254740993 became ...992), in a fill value, a literal meeting
 * an i64 tensor, and a folded sum of constants. 2^63 - 1 is the largest. */
Test(numerics, integer_constants_above_2_53_are_exact_on_both_backends, .timeout = 120) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    const char *path =
        th_write_program("main {\n"
                         "  print full([2], 9007199254740993, dtype = \"i64\")\n"
                         "  print iota(2, dtype = \"i64\") + 9007199254740993\n"
                         "  print argmax(iota(3)) + 9007199254740993\n"
                         "  print full([1], 9223372036854775806, dtype = \"i64\") + 1\n"
                         "  print sum(full([3], 3002399751580331, dtype = \"i64\"))\n"
                         "}\n");
    const char *want = "[9007199254740993, 9007199254740993]\n"
                       "[9007199254740993, 9007199254740994]\n"
                       "9007199254740995\n"
                       "[9223372036854775807]\n"
                       "9007199254740993\n";
    const char *backends[3] = {"interp", "cpu", "auto"};
    for (int b = 0; b < 3; b++) {
        SpawnResult r =
            th_run(60, bin, "run", path, "--backend", backends[b], "--no-progress", NULL);
        TH_EXPECT_EXIT(r, 0);
        cr_expect(strncmp(r.out, want, strlen(want)) == 0, "%s printed:\n%s\nwant:\n%s",
                  backends[b], r.out, want);
        th_spawn_free(&r);
    }
    /* a whole number that i32 cannot hold is still refused, with its place */
    path = th_write_program("main {\n  print full([2], 2147483648, dtype = \"i32\")\n}\n");
    SpawnResult r = th_run(60, bin, "check", path, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_expect(strstr(r.err, "not representable in i32") != NULL, "%s", r.err);
    th_spawn_free(&r);
}
