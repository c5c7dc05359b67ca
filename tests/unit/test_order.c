/* The order ops and their composites against numpy (the committed fixture
 * tests/fixtures/order_numpy.txt, written by tests/fixtures/make_order.py),
 * on the interpreter and the CPU backend: cumsum, argsort, sort, top_k,
 * quantile and percentile with the gradient through the interpolation,
 * segment_sum and segment_mean (an empty group), components (rank 1 and 2),
 * and the located error of a label out of range. */
#include <criterion/criterion.h>
#include <math.h>
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

TestSuite(order, .init = setup, .fini = teardown);

/* ---- the fixture ---------------------------------------------------------------------- */

#define FIX_MAX 48

static struct {
    char name[32];
    int n;
    double *v;
} fix[FIX_MAX];
static int nfix;

static const double *fixture(const char *name, int *n) {
    if (nfix == 0) {
        FILE *f = fopen("tests/fixtures/order_numpy.txt", "r");
        cr_assert_not_null(f, "tests/fixtures/order_numpy.txt (run from the repository root)");
        char nm[32];
        int cnt;
        while (nfix < FIX_MAX && fscanf(f, " %31s", nm) == 1) {
            if (nm[0] == '#') {
                cr_assert_eq(fscanf(f, "%*[^\n]"), 0);
                continue;
            }
            cr_assert_eq(fscanf(f, "%d", &cnt), 1);
            snprintf(fix[nfix].name, sizeof fix[nfix].name, "%s", nm);
            fix[nfix].n = cnt;
            fix[nfix].v = malloc(sizeof(double) * (size_t)cnt);
            for (int i = 0; i < cnt; i++)
                cr_assert_eq(fscanf(f, "%lf", &fix[nfix].v[i]), 1);
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

/* ---- graphs on both backends --------------------------------------------------------- */

typedef enum { BK_INTERP, BK_CPU, BK_COUNT } Backend;
static const char *bk_name[BK_COUNT] = {"interp", "cpu"};

typedef struct {
    Graph *g;
    RtTensor *in[4];
    int nin;
} Prog;

static Prog prog(void) {
    Prog p = {.g = ir_graph_new(A, D, "order")};
    return p;
}

/* An input holding the fixture `name` as dt in shape s. */
static Node *feed(Prog *p, const char *name, DType dt, Shape s) {
    int n;
    const double *v = fixture(name, &n);
    cr_assert_eq(n, rt_shape_numel(&s), "%s: %d values for %lld", name, n,
                 (long long)rt_shape_numel(&s));
    RtTensor *t = rt_tensor_new(dt, s);
    for (int i = 0; i < n; i++)
        rt_tensor_set_f64(t, i, v[i]);
    p->in[p->nin++] = t;
    return ir_input(p->g, dt, s, name, L);
}

/* Runs p on both backends and expects output j to be the fixture want[j]
 * (within tol relative, 0: exactly). */
static void expect(Prog *p, const char *const *want, int nout, double tol) {
    for (int b = 0; b < BK_COUNT; b++) {
        RtTensor *out[8] = {0};
        cr_assert(ir_verify(p->g, "test"), "%s", th_last_diag(D));
        bool ok =
            b == BK_INTERP ? ir_interp_run(p->g, p->in, out, D) : R.run(R.ctx, p->g, p->in, out, D);
        cr_assert(ok, "%s: %s", bk_name[b], th_last_diag(D));
        for (int j = 0; j < nout; j++) {
            int n;
            const double *w = fixture(want[j], &n);
            cr_assert_eq(rt_shape_numel(&out[j]->shape), n, "%s size", want[j]);
            for (int i = 0; i < n; i++) {
                double got = rt_tensor_get_f64(out[j], i);
                bool same = isnan(w[i]) ? isnan(got) : fabs(got - w[i]) <= tol * (1 + fabs(w[i]));
                cr_expect(same, "%s %s[%d] = %.17g, want %.17g", bk_name[b], want[j], i, got, w[i]);
            }
            rt_tensor_free(out[j]);
        }
    }
    for (int i = 0; i < p->nin; i++)
        rt_tensor_free(p->in[i]);
}

static void out(Prog *p, Node *n) {
    cr_assert_not_null(n, "%s", th_last_diag(D));
    ir_graph_add_output(p->g, n);
}

/* ---- tests ---------------------------------------------------------------------------- */

Test(order, cumsum_matches_numpy) {
    for (int d = 0; d < 2; d++) {
        DType dt = d ? DT_F64 : DT_F32;
        Prog p = prog();
        Node *x = feed(&p, "x", dt, th_shape(2, 4, 7));
        out(&p, ir_cumsum(p.g, x, 0, false, L));
        out(&p, ir_cumsum(p.g, x, 1, false, L));
        out(&p, ir_cumsum(p.g, x, 1, true, L));
        const char *want[] = {"cumsum_ax0", "cumsum_ax1", "cumsum_ax1_rev"};
        expect(&p, want, 3, d ? 1e-15 : 1e-6);
    }
}

Test(order, argsort_sort_and_top_k_match_numpy_with_ties) {
    const DType dts[] = {DT_F32, DT_F64, DT_I64};
    for (int d = 0; d < 3; d++) {
        Prog p = prog();
        /* integers: twice the half-integer rows (the last row is then truncated, still tied-free)
         */
        Node *x = feed(&p, "x", DT_F64, th_shape(2, 4, 7));
        if (dts[d] != DT_F64) x = ir_cast(p.g, x, dts[d], L);
        if (dts[d] == DT_I64) {
            /* only the argsort of the tied rows is compared for integers */
            Node *x2 = ir_cast(p.g,
                               ir_binary(p.g, OP_MUL, feed(&p, "x", DT_F64, th_shape(2, 4, 7)),
                                         ir_scalar(p.g, DT_F64, 2, L), L),
                               DT_I64, L);
            int64_t st[2] = {0, 0}, sp[2] = {3, 7}, ss[2] = {1, 1};
            Node *tied = ir_slice(p.g, x2, st, sp, ss, L);
            out(&p, ir_argsort(p.g, tied, 1, false, L));
            Prog q = prog();
            (void)q;
            RtTensor *o[2] = {0};
            for (int b = 0; b < BK_COUNT; b++) {
                bool ok =
                    b == BK_INTERP ? ir_interp_run(p.g, p.in, o, D) : R.run(R.ctx, p.g, p.in, o, D);
                cr_assert(ok, "%s", th_last_diag(D));
                int n;
                const double *w = fixture("argsort_ax1", &n);
                for (int i = 0; i < 21; i++)
                    cr_expect_eq(rt_tensor_get_i64(o[0], i), (int64_t)w[i], "%s i64 argsort[%d]",
                                 bk_name[b], i);
                rt_tensor_free(o[0]);
            }
            for (int i = 0; i < p.nin; i++)
                rt_tensor_free(p.in[i]);
            continue;
        }
        out(&p, ir_argsort(p.g, x, 1, false, L));
        out(&p, ir_argsort(p.g, x, 0, false, L));
        out(&p, ir_argsort(p.g, x, 1, true, L));
        out(&p, ir_sort(p.g, x, 1, false, L));
        out(&p, ir_sort(p.g, x, 1, true, L));
        out(&p, ir_top_k_indices(p.g, x, 3, 1, L));
        out(&p, ir_top_k(p.g, x, 3, 1, L));
        out(&p, ir_top_k_indices(p.g, x, 2, 0, L));
        const char *want[] = {"argsort_ax1",   "argsort_ax0", "argsort_ax1_desc", "sort_ax1",
                              "sort_ax1_desc", "top_k3_idx",  "top_k3",           "top_k2_ax0_idx"};
        expect(&p, want, 8, 0);
    }
}

Test(order, quantile_and_percentile_match_numpy) {
    int nq;
    const double *qs = fixture("qs", &nq);
    for (int d = 0; d < 2; d++) {
        DType dt = d ? DT_F64 : DT_F32;
        double tol = d ? 1e-14 : 1e-6;
        for (int i = 0; i < nq; i++) {
            Prog p = prog();
            Node *x = feed(&p, "x", dt, th_shape(2, 4, 7));
            out(&p, ir_quantile(p.g, ir_reshape(p.g, x, th_shape(1, 28), L), qs[i], 0, L));
            out(&p, ir_quantile(p.g, x, qs[i], 1, L));
            RtTensor *o[2] = {0};
            int na, nb;
            const double *wa = fixture("quantile_all", &na), *wb = fixture("quantile_ax1", &nb);
            for (int b = 0; b < BK_COUNT; b++) {
                bool ok =
                    b == BK_INTERP ? ir_interp_run(p.g, p.in, o, D) : R.run(R.ctx, p.g, p.in, o, D);
                cr_assert(ok, "%s", th_last_diag(D));
                double g0 = rt_tensor_get_f64(o[0], 0);
                cr_expect(fabs(g0 - wa[i]) <= tol * (1 + fabs(wa[i])),
                          "%s quantile(%g) = %.17g, want %.17g", bk_name[b], qs[i], g0, wa[i]);
                for (int r = 0; r < 4; r++) {
                    double g = rt_tensor_get_f64(o[1], r), w = wb[i * 4 + r];
                    cr_expect(fabs(g - w) <= tol * (1 + fabs(w)),
                              "%s quantile(%g) row %d = %.17g, want %.17g", bk_name[b], qs[i], r, g,
                              w);
                }
                rt_tensor_free(o[0]);
                rt_tensor_free(o[1]);
            }
            rt_tensor_free(p.in[0]);
        }
        Prog p = prog();
        Node *x = feed(&p, "x", dt, th_shape(2, 4, 7));
        out(&p, ir_quantile(p.g, x, 0.4, 0, L));
        const char *want[] = {"percentile_ax0_40"};
        expect(&p, want, 1, tol);
    }
}

Test(order, nanquantile_matches_numpy_with_an_all_nan_row) {
    int nq;
    const double *qs = fixture("qs", &nq);
    for (int d = 0; d < 2; d++) {
        DType dt = d ? DT_F64 : DT_F32;
        double tol = d ? 1e-14 : 1e-6;
        int na, nb;
        const double *wa = fixture("nanquantile_all", &na), *wb = fixture("nanquantile_ax1", &nb);
        for (int i = 0; i < nq; i++) {
            Prog p = prog();
            Node *x = feed(&p, "xn", dt, th_shape(2, 4, 7));
            out(&p, ir_nanquantile(p.g, ir_reshape(p.g, x, th_shape(1, 28), L), qs[i], 0, L));
            out(&p, ir_nanquantile(p.g, x, qs[i], 1, L));
            for (int b = 0; b < BK_COUNT; b++) {
                RtTensor *o[2] = {0};
                bool ok =
                    b == BK_INTERP ? ir_interp_run(p.g, p.in, o, D) : R.run(R.ctx, p.g, p.in, o, D);
                cr_assert(ok, "%s", th_last_diag(D));
                double g0 = rt_tensor_get_f64(o[0], 0);
                cr_expect(fabs(g0 - wa[i]) <= tol * (1 + fabs(wa[i])),
                          "%s nanquantile(%g) = %.17g, want %.17g", bk_name[b], qs[i], g0, wa[i]);
                for (int r = 0; r < 4; r++) {
                    double g = rt_tensor_get_f64(o[1], r), w = wb[i * 4 + r];
                    bool same = isnan(w) ? isnan(g) : fabs(g - w) <= tol * (1 + fabs(w));
                    cr_expect(same, "%s nanquantile(%g) row %d = %.17g, want %.17g", bk_name[b],
                              qs[i], r, g, w);
                }
                rt_tensor_free(o[0]);
                rt_tensor_free(o[1]);
            }
            rt_tensor_free(p.in[0]);
        }
        Prog p = prog();
        Node *x = feed(&p, "xn", dt, th_shape(2, 4, 7));
        out(&p, ir_nanquantile(p.g, x, 0.4, 0, L));
        const char *want[] = {"nanpercentile_ax0_40"};
        expect(&p, want, 1, tol);
    }
}

Test(order, quantile_gradient_goes_to_the_two_neighbours) {
    Prog p = prog();
    Node *x = feed(&p, "x", DT_F64, th_shape(2, 4, 7));
    Node *w = feed(&p, "qgrad_w", DT_F64, th_shape(1, 4));
    Node *y =
        ir_reduce(p.g, OP_SUM, ir_binary(p.g, OP_MUL, ir_quantile(p.g, x, 0.37, 1, L), w, L), 1, L);
    Node *g = NULL;
    cr_assert(pass_grad(p.g, y, NULL, &x, 1, &g), "%s", th_last_diag(D));
    out(&p, g);
    const char *want[] = {"qgrad"};
    expect(&p, want, 1, 1e-14);
}

Test(order, segment_sum_and_mean_match_numpy) {
    for (int d = 0; d < 2; d++) {
        Prog p = prog();
        Node *x = feed(&p, "seg_x", d ? DT_F64 : DT_F32, th_shape(2, 9, 3));
        Node *lb = feed(&p, "seg_labels", d ? DT_I64 : DT_I32, th_shape(1, 9));
        out(&p, ir_segment_sum(p.g, x, lb, 5, L));
        out(&p, ir_segment_mean(p.g, x, lb, 5, L));
        const char *want[] = {"seg_sum", "seg_mean"};
        expect(&p, want, 2, d ? 1e-14 : 1e-6);
    }
}

Test(order, a_label_out_of_range_is_a_located_error) {
    for (int b = 0; b < BK_COUNT; b++) {
        Prog p = prog();
        Node *x = feed(&p, "seg_x", DT_F32, th_shape(2, 9, 3));
        Node *lb = feed(&p, "seg_labels", DT_I64, th_shape(1, 9));
        SrcLoc at = {1, 3, 7, 7};
        out(&p, ir_segment_mean(p.g, x, lb, 4, at)); /* label 4 is out of range for n = 4 */
        RtTensor *o[1] = {0};
        int before = D->nerrors;
        bool ok = b == BK_INTERP ? ir_interp_run(p.g, p.in, o, D) : R.run(R.ctx, p.g, p.in, o, D);
        cr_expect_not(ok, "%s: ran with a label out of range", bk_name[b]);
        cr_expect_gt(D->nerrors, before, "%s: no diagnostic", bk_name[b]);
        cr_expect(strstr(th_last_diag(D), "out of range") != NULL, "%s: %s", bk_name[b],
                  th_last_diag(D));
        for (int i = 0; i < p.nin; i++)
            rt_tensor_free(p.in[i]);
    }
}

Test(order, components_match_a_flood_fill) {
    Prog p = prog();
    Node *m2 = ir_cast(p.g, feed(&p, "cc2_mask", DT_F32, th_shape(2, 7, 9)), DT_BOOL, L);
    Node *m1 = ir_cast(p.g, feed(&p, "cc1_mask", DT_F32, th_shape(1, 30)), DT_BOOL, L);
    out(&p, ir_components(p.g, m2, L));
    out(&p, ir_components(p.g, m1, L));
    const char *want[] = {"cc2", "cc1"};
    expect(&p, want, 2, 0);
}

/* ---- through the language ------------------------------------------------------------- */

/* The builtins (default axes, keywords, bool counts, an empty group) in one
 * program on small integers with ties, on both backends and in a `dflow build`
 * image; the printed answers
 * are numpy's (np.argsort(-x, kind="stable"), np.sort, np.cumsum,
 * np.quantile, np.percentile, np.add.at), checked when this test was written. */
static const char order_program[] =
    "main {\n"
    "  x = reshape(float((iota(12) * 7) % 5 - 2), [3, 4])\n"
    "  lb = (iota(3) * 2) % 3\n"
    "  print x\n"
    "  print argsort(x, descending = true)\n"
    "  print sort(x, axis = 0)\n"
    "  print top_k_indices(x, 2), top_k(x, 2)\n"
    "  print cumsum(x, reverse = true), cumsum(x > 0, axis = 0)\n"
    "  print quantile(x, 0.25), percentile(x, 50, axis = 1)\n"
    "  print quantile(x, [0.25, 0.5]), nanpercentile(x, [50], axis = 0)\n"
    "  print segment_sum(x, lb, 3), segment_mean(x, lb, 4)\n"
    "  print segment_sum(x, key = lb, groups = 3)\n"
    "  print components(x > -1)\n"
    "  print grad(sum(top_k(x, 2)) + quantile(x, 0.3), x)\n"
    "}\n";

static const char order_program_out[] = "[[-2, 0, 2, -1],\n"
                                        " [1, -2, 0, 2],\n"
                                        " [-1, 1, -2, 0]]\n"
                                        "[[2, 1, 3, 0],\n"
                                        " [3, 0, 2, 1],\n"
                                        " [1, 3, 0, 2]]\n"
                                        "[[-2, -2, -2, -1],\n"
                                        " [-1, 0, 0, 0],\n"
                                        " [1, 1, 2, 2]]\n"
                                        "[[2, 1],\n"
                                        " [3, 0],\n"
                                        " [1, 3]] [[2, 0],\n"
                                        " [2, 1],\n"
                                        " [1, 0]]\n"
                                        "[[-1, 1, 1, -1],\n"
                                        " [1, 0, 2, 2],\n"
                                        " [-2, -1, -2, 0]] [[0, 0, 1, 0],\n"
                                        " [1, 0, 1, 1],\n"
                                        " [1, 1, 1, 1]]\n"
                                        "-1.25 [-0.5, 0.5, -0.5]\n"
                                        "[-1.25, 0] [[-1, 0, 0, 0]]\n"
                                        "[[-2, 0, 2, -1],\n"
                                        " [-1, 1, -2, 0],\n"
                                        " [1, -2, 0, 2]] [[-2, 0, 2, -1],\n"
                                        " [-1, 1, -2, 0],\n"
                                        " [1, -2, 0, 2],\n"
                                        " [0, 0, 0, 0]]\n"
                                        "[[-2, 0, 2, -1],\n"
                                        " [-1, 1, -2, 0],\n"
                                        " [1, -2, 0, 2]]\n"
                                        "[[0, 1, 1, 0],\n"
                                        " [2, 0, 1, 1],\n"
                                        " [0, 3, 0, 1]]\n"
                                        "[[0, 1, 1, 0.7],\n"
                                        " [1, 0, 0, 1],\n"
                                        " [0.3, 1, 0, 1]]\n";

Test(order, builtins_in_a_program_print_numpys_answers_on_both_backends, .timeout = 600) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    const char *path = th_write_program(order_program);
    cr_assert_not_null(path);
    static const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        char dir[256], outdir[320];
        cr_assert(th_tempdir(dir, sizeof dir, "order"));
        snprintf(outdir, sizeof outdir, "%s/run", dir);
        SpawnResult r =
            th_run(120, bin, "run", path, "--backend", backends[b], "--out", outdir, NULL);
        TH_EXPECT_EXIT(r, 0);
        cr_expect(strncmp(r.out, order_program_out, strlen(order_program_out)) == 0,
                  "%s printed:\n%s\nwant:\n%s", backends[b], r.out, order_program_out);
        th_spawn_free(&r);
        th_rmdir(dir);
    }
    /* a built image links the runtime routine: the same answers */
    char dir[256], exe[320], outdir[320];
    cr_assert(th_tempdir(dir, sizeof dir, "order"));
    snprintf(exe, sizeof exe, "%s/prog", dir);
    snprintf(outdir, sizeof outdir, "%s/run", dir);
    SpawnResult bld = th_run(300, bin, "build", path, "-o", exe, NULL);
    TH_EXPECT_EXIT(bld, 0);
    th_spawn_free(&bld);
    SpawnResult r = th_run(120, exe, "--out", outdir, NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_expect(strncmp(r.out, order_program_out, strlen(order_program_out)) == 0,
              "the built image printed:\n%s\nwant:\n%s", r.out, order_program_out);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* Rows enough for the kernel to be split over the runner's two threads
 * (KP_ORDER splits the outer rows): the same bits as the interpreter. */
Test(order, kernels_split_over_threads_agree_with_the_interpreter) {
    Prog p = prog();
    Shape s = th_shape(3, 64, 96, 3);
    RtTensor *t = rt_tensor_new(DT_F32, s);
    uint64_t st = 77;
    for (int64_t i = 0; i < rt_shape_numel(&s); i++) /* small integers: many ties */
        rt_tensor_set_f64(t, i, (double)(th_splitmix64(&st) % 9) - 4);
    p.in[p.nin++] = t;
    Node *x = ir_input(p.g, DT_F32, s, "x", L);
    out(&p, ir_argsort(p.g, x, 1, false, L));
    out(&p, ir_argsort(p.g, x, 1, true, L));
    out(&p, ir_cumsum(p.g, x, 1, false, L));
    out(&p, ir_cumsum(p.g, ir_reshape(p.g, x, th_shape(2, 64 * 96, 3), L), 1, true, L));
    RtTensor *ref[4] = {0}, *got[4] = {0};
    cr_assert(ir_interp_run(p.g, p.in, ref, D), "%s", th_last_diag(D));
    cr_assert(R.run(R.ctx, p.g, p.in, got, D), "%s", th_last_diag(D));
    const LlvmGraphInfo *info = llvm_runner_graph(&R, llvm_runner_ngraphs(&R) - 1);
    cr_assert(info && !info->fallback, "fell back to the interpreter");
    cr_expect_geq(info->nparallel, 3, "only %d kernels were split over threads", info->nparallel);
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(rt_tensor_bytes(ref[j]), rt_tensor_bytes(got[j]));
        cr_expect(memcmp(ref[j]->data, got[j]->data, rt_tensor_bytes(ref[j])) == 0,
                  "output %d differs from the interpreter", j);
        rt_tensor_free(ref[j]);
        rt_tensor_free(got[j]);
    }
    rt_tensor_free(t);
}
