/* The linear-algebra ops (library calls over LAPACK) on both backends.
 *
 * numpy.linalg is the independent reference: tests/fixtures/make_linalg.py
 * wrote tests/fixtures/linalg_numpy.txt once; every case runs on the
 * interpreter and on the LLVM backend and must match it (1e-5 of the
 * largest reference entry in f32, 1e-12 in f64; factors numpy defines only
 * up to a sign in absolute value), and the compiled results must satisfy
 * the reconstruction identities (helpers/linalg_ref.c; test_ops checks them
 * on the interpreter). Then closed-form answers, and whole programs through
 * $DFLOW_BIN: examples/linalg.dfl (the program docs/language.md shows) on
 * both backends, and singular / non-positive-definite matrices as located
 * errors with exit status 1 in `dflow run` and in a `dflow build`
 * executable. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/llvm/llvm_backend.h"
#include "helpers/ir_helpers.h"
#include "helpers/linalg_ref.h"
#include "helpers/spawn.h"
#include "ir/interp.h"

static Arena *A;
static DiagList *D;
static GraphRunner R;
static const SrcLoc L = {1, 1, 1, 1};

static void setup(void) {
    A = arena_new();
    D = th_diag_list(A, "t.dfl", "x\n");
    char err[200] = "";
    LlvmOptions o = {.verbose = false, .log = NULL, .interp_runs = 0, .poison = true};
    R = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(R.run, "llvm runner: %s", err);
}

static void teardown(void) {
    llvm_runner_free(&R);
    arena_free(A);
}

TestSuite(linalg, .init = setup, .fini = teardown, .timeout = 600);

/* ---- the numpy fixture --------------------------------------------------------------------- */

#define MAXT 4

typedef struct {
    char op[16];
    DType dt;
    int nin, nout;
    RtTensor *in[2];
    RtTensor *out[MAXT];
    bool abs_cmp[MAXT];
} Fix;

static RtTensor *read_tensor(FILE *f, DType dt) {
    int rank;
    cr_assert_eq(fscanf(f, "%d", &rank), 1);
    Shape s = {.rank = rank};
    for (int i = 0; i < rank; i++)
        cr_assert_eq(fscanf(f, "%lld", (long long *)&s.dims[i]), 1);
    RtTensor *t = rt_tensor_new(dt, s);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < rt_shape_numel(&s); i++) {
        char w[64];
        cr_assert_eq(fscanf(f, "%63s", w), 1);
        rt_tensor_set_f64(t, i, strtod(w, NULL));
    }
    return t;
}

/* The next case of f into x; false at the end of the file. */
static bool read_case(FILE *f, Fix *x) {
    char w[64];
    memset(x, 0, sizeof *x);
    while (fscanf(f, "%63s", w) == 1) {
        if (w[0] == '#') {
            int c;
            while ((c = fgetc(f)) != '\n' && c != EOF) {
            }
            continue;
        }
        cr_assert_str_eq(w, "case");
        char dt[8];
        cr_assert_eq(fscanf(f, "%15s %7s", x->op, dt), 2);
        x->dt = strcmp(dt, "f64") == 0 ? DT_F64 : DT_F32;
        while (fscanf(f, "%63s", w) == 1 && strcmp(w, "end") != 0) {
            if (strcmp(w, "in") == 0) {
                cr_assert_lt(x->nin, 2);
                x->in[x->nin++] = read_tensor(f, x->dt);
            } else {
                cr_assert_str_eq(w, "out");
                char mode[8];
                cr_assert_eq(fscanf(f, "%7s", mode), 1);
                cr_assert_lt(x->nout, MAXT);
                x->abs_cmp[x->nout] = strcmp(mode, "abs") == 0;
                x->out[x->nout++] = read_tensor(f, DT_F64);
            }
        }
        return true;
    }
    return false;
}

static void free_fix(Fix *x) {
    for (int i = 0; i < x->nin; i++)
        rt_tensor_free(x->in[i]);
    for (int i = 0; i < x->nout; i++)
        rt_tensor_free(x->out[i]);
}

static OpKind op_named(const char *name) {
    OpKind op;
    if (strcmp(name, "pinv") == 0) return OP_INPUT; /* the composite */
    cr_assert(ir_op_from_name(name, &op), "no op %s", name);
    return op;
}

/* The case's graph: its op over inputs of the fixture's types, every result an output. */
static Graph *fix_graph(const Fix *x, OpKind op) {
    Graph *g = ir_graph_new(A, D, x->op);
    if (op == OP_INPUT) {
        Node *a = ir_input(g, x->dt, x->in[0]->shape, "a", L);
        ir_graph_add_output(g, ir_pinv(g, a, L));
    } else {
        th_la_graph(g, op, x->dt, x->in[0]->shape, x->nin > 1 ? x->in[1]->shape : (Shape){0}, L);
    }
    cr_assert(ir_verify(g, "test"), "%s: %s", x->op, th_last_diag(D));
    return g;
}

static void compare_fix(const Fix *x, int backend, RtTensor *const *got) {
    for (int j = 0; j < x->nout; j++) {
        const RtTensor *want = x->out[j];
        cr_assert(rt_shape_eq(&got[j]->shape, &want->shape), "%s %s result %d: shape", x->op,
                  rt_dtype_name(x->dt), j);
        int64_t n = rt_shape_numel(&want->shape);
        double big = 1;
        for (int64_t i = 0; i < n; i++)
            if (isfinite(rt_tensor_get_f64(want, i)))
                big = fmax(big, fabs(rt_tensor_get_f64(want, i)));
        double tol = (x->dt == DT_F32 ? 1e-5 : 1e-12) * big;
        for (int64_t i = 0; i < n; i++) {
            double g = rt_tensor_get_f64(got[j], i), w = rt_tensor_get_f64(want, i);
            if (x->abs_cmp[j]) g = fabs(g), w = fabs(w);
            bool ok = isinf(w) ? g == w : fabs(g - w) <= tol;
            if (!ok) {
                cr_expect(false, "%s %s (backend %d) result %d element %lld: %.17g, numpy %.17g",
                          x->op, rt_dtype_name(x->dt), backend, j, (long long)i, g, w);
                break;
            }
        }
    }
}

Test(linalg, numpy_fixtures_on_both_backends) {
    FILE *f = fopen("tests/fixtures/linalg_numpy.txt", "r");
    cr_assert_not_null(f, "tests/fixtures/linalg_numpy.txt (run from the repository root)");
    Fix x;
    int ncases = 0;
    bool seen[OP_COUNT] = {false};
    while (read_case(f, &x)) {
        OpKind op = op_named(x.op);
        seen[op] = true;
        Graph *g = fix_graph(&x, op);
        for (int backend = 0; backend < 2; backend++) {
            RtTensor *got[MAXT] = {NULL};
            bool ok = backend ? R.run(R.ctx, g, x.in, got, D) : ir_interp_run(g, x.in, got, D);
            cr_assert(ok, "%s %s backend %d: %s", x.op, rt_dtype_name(x.dt), backend,
                      th_last_diag(D));
            cr_assert_eq(g->noutputs, x.nout, "%s: %d results, the fixture has %d", x.op,
                         g->noutputs, x.nout);
            compare_fix(&x, backend, got);
            if (backend && op != OP_INPUT) {
                char what[64];
                snprintf(what, sizeof what, "compiled %s %s", x.op, rt_dtype_name(x.dt));
                th_la_verify(what, op, x.in[0], x.nin > 1 ? x.in[1] : NULL, got);
            }
            for (int j = 0; j < g->noutputs; j++)
                rt_tensor_free(got[j]);
        }
        free_fix(&x);
        ncases++;
    }
    fclose(f);
    cr_expect_geq(ncases, 40, "only %d fixture cases", ncases);
    for (int op = 0; op < OP_COUNT; op++)
        if (ir_ops[op].flags & OPF_CALL)
            cr_expect(seen[op], "no numpy fixture for %s", ir_op_name((OpKind)op));
    cr_expect(seen[OP_INPUT], "no numpy fixture for pinv");
}

/* ---- closed forms -------------------------------------------------------------------------- */

/* Runs op on the f64 matrix a (rows x cols; b for solve) on both backends
 * and expects result `which` to be want (n values) to 1e-13. */
static void closed(OpKind op, int rows, int cols, const double *a, const double *b, int bcols,
                   int which, const double *want, int n, bool absval) {
    Graph *g = ir_graph_new(A, D, "closed");
    Shape sa = th_shape(2, rows, cols), sb = th_shape(2, rows, bcols);
    th_la_graph(g, op, DT_F64, sa, sb, L);
    RtTensor *in[2] = {rt_tensor_new(DT_F64, sa),
                       op == OP_SOLVE ? rt_tensor_new(DT_F64, sb) : NULL};
    for (int i = 0; i < rows * cols; i++)
        rt_tensor_set_f64(in[0], i, a[i]);
    for (int i = 0; in[1] && i < rows * bcols; i++)
        rt_tensor_set_f64(in[1], i, b[i]);
    for (int backend = 0; backend < 2; backend++) {
        RtTensor *got[MAXT] = {NULL};
        bool ok = backend ? R.run(R.ctx, g, in, got, D) : ir_interp_run(g, in, got, D);
        cr_assert(ok, "%s: %s", ir_op_name(op), th_last_diag(D));
        cr_assert_eq(rt_shape_numel(&got[which]->shape), n);
        for (int i = 0; i < n; i++) {
            double v = rt_tensor_get_f64(got[which], i);
            cr_expect(fabs((absval ? fabs(v) : v) - want[i]) <= 1e-13 * fmax(1, fabs(want[i])),
                      "%s backend %d element %d: %.17g, want %.17g", ir_op_name(op), backend, i, v,
                      want[i]);
        }
        for (int j = 0; j < g->noutputs; j++)
            rt_tensor_free(got[j]);
    }
    rt_tensor_free(in[0]);
    rt_tensor_free(in[1]);
}

Test(linalg, closed_forms) {
    const double m2[] = {4, 7, 2, 6}; /* det 10, inverse [[0.6, -0.7], [-0.2, 0.4]] */
    closed(OP_DET, 2, 2, m2, NULL, 0, 0, (double[]){10}, 1, false);
    closed(OP_INV, 2, 2, m2, NULL, 0, 0, (double[]){0.6, -0.7, -0.2, 0.4}, 4, false);
    closed(OP_SLOGDET, 2, 2, (double[]){0, 1, 1, 0}, NULL, 0, 0, (double[]){-1}, 1, false);
    closed(OP_SLOGDET, 2, 2, (double[]){0, 1, 1, 0}, NULL, 0, 1, (double[]){0}, 1, false);
    closed(OP_SOLVE, 2, 2, (double[]){2, 0, 0, 4}, (double[]){2, 2}, 1, 0, (double[]){1, 0.5}, 2,
           false);
    closed(OP_CHOLESKY, 2, 2, (double[]){4, 2, 2, 5}, NULL, 0, 0, (double[]){2, 0, 1, 2}, 4, false);
    /* eigh reads the lower triangle only: the upper 99 is ignored */
    closed(OP_EIGH, 2, 2, (double[]){2, 99, 1, 2}, NULL, 0, 0, (double[]){1, 3}, 2, false);
    closed(OP_SVD, 2, 2, (double[]){3, 0, 0, -2}, NULL, 0, 1, (double[]){3, 2}, 2, false);
    closed(OP_QR, 2, 1, (double[]){3, 4}, NULL, 0, 1, (double[]){5}, 1, true);
    closed(OP_QR, 2, 1, (double[]){3, 4}, NULL, 0, 0, (double[]){0.6, 0.8}, 2, true);
    closed(OP_DET, 3, 3, (double[]){1, 2, 3, 4, 5, 6, 7, 8, 10}, NULL, 0, 0, (double[]){-3}, 1,
           false);
}

/* ---- programs ------------------------------------------------------------------------------ */

static const char *dflow_bin(void) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    return bin;
}

/* stdout without the final "done in ..." line. */
static char *without_done(const char *s) {
    char *c = strdup(s), *d = strstr(c, "done in");
    if (d) *d = 0;
    return c;
}

Test(linalg, the_documented_example_runs_on_both_backends_and_built) {
    size_t n = 0;
    char *src = th_slurp("examples/linalg.dfl", &n), *doc = th_slurp("docs/language.md", NULL);
    cr_assert(src && doc);
    cr_expect(strstr(doc, src), "docs/language.md does not show examples/linalg.dfl as it is");
    SpawnResult a =
        th_run(120, dflow_bin(), "run", "examples/linalg.dfl", "--backend", "interp", NULL);
    SpawnResult b =
        th_run(120, dflow_bin(), "run", "examples/linalg.dfl", "--backend", "cpu", NULL);
    TH_EXPECT_EXIT(a, 0);
    TH_EXPECT_EXIT(b, 0);
    char dir[512], exe[600];
    cr_assert(th_tempdir(dir, sizeof dir, "linalg"));
    snprintf(exe, sizeof exe, "%s/prog", dir);
    SpawnResult bb = th_run(300, dflow_bin(), "build", "examples/linalg.dfl", "-o", exe, NULL);
    TH_EXPECT_EXIT(bb, 0);
    SpawnResult c = th_run(60, exe, NULL);
    TH_EXPECT_EXIT(c, 0);
    char *oa = without_done(a.out), *ob = without_done(b.out), *oc = without_done(c.out);
    cr_expect_str_eq(oa, ob);
    cr_expect_str_eq(oc, ob, "the built executable prints otherwise");
    free(oc);
    th_spawn_free(&bb);
    th_spawn_free(&c);
    th_rmdir(dir);
    /* the values the comments of the example state */
    const char *want[] = {"[-0.166667, 0.166667, 0.5]\n",
                          "[2, 0, 0]\n",
                          "\n3\n",
                          "\n54\n",
                          "1 3.98898\n",
                          "[6, 3, 3]\n",
                          "[3, 3, 6]\n",
                          "0.166667",
                          "\n27\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(oa, want[i]), "no '%s' in the output:\n%s", want[i], oa);
    free(oa);
    free(ob);
    free(src);
    free(doc);
    th_spawn_free(&a);
    th_spawn_free(&b);
}

/* A failing factorisation: exit 1, the call's file:line:col and the reason,
 * on the interpreter, the JIT and a built executable. */
static void expect_failure(const char *prog, const char *want) {
    const char *path = th_write_program(prog);
    const char *backends[] = {"interp", "cpu"};
    for (int i = 0; i < 2; i++) {
        SpawnResult r = th_run(120, dflow_bin(), "run", path, "--backend", backends[i], NULL);
        TH_EXPECT_EXIT(r, 1);
        cr_expect(strstr(r.err, want), "%s: no '%s' in:\n%s", backends[i], want, r.err);
        th_spawn_free(&r);
    }
    char dir[512], exe[600];
    cr_assert(th_tempdir(dir, sizeof dir, "linalg"));
    snprintf(exe, sizeof exe, "%s/prog", dir);
    SpawnResult b = th_run(300, dflow_bin(), "build", path, "-o", exe, NULL);
    TH_EXPECT_EXIT(b, 0);
    SpawnResult r = th_run(60, exe, NULL);
    TH_EXPECT_EXIT(r, 1);
    cr_expect(strstr(r.err, want), "built: no '%s' in:\n%s", want, r.err);
    th_spawn_free(&b);
    th_spawn_free(&r);
    th_rmdir(dir);
}

Test(linalg, failures_are_located_errors_everywhere) {
    expect_failure("main {\n  a = ones(3, 3) + eye(3) * 0.5\n  b = a - eye(3) * 2.0\n"
                   "  print cholesky(b)\n}\n",
                   ":4:9: error: cholesky: matrix is not positive definite (leading minor 1)");
    expect_failure("main {\n  a = ones(2, 3, 3)\n  print sum(solve(a, ones(3)))\n}\n",
                   ":3:13: error: solve: matrix is singular (matrix 0 of the batch, zero pivot "
                   "U[1,1])");
    expect_failure("main {\n  x = eye(4)\n  y = inv(x - eye(4))\n  print y\n}\n",
                   ":3:7: error: inv: matrix is singular (zero pivot U[0,0])");
}

/* solve's right side: a vector, a matrix, broadcast batch axes; dtypes promote. */
Test(linalg, solve_shapes_and_dtypes) {
    const char *prog = "main {\n"
                       "  a = eye(3) * 2.0\n"
                       "  print solve(a, ones(3))\n"
                       "  print solve(a, ones(3, 2))\n"
                       "  print solve(ones(1, 1, 1) * 4.0, ones(2, 1, 1))\n"
                       "  print solve(eye(2, dtype = \"f64\"), iota(2))\n"
                       "  print det(eye(2, dtype = \"i32\") * 3)\n"
                       "}\n";
    const char *path = th_write_program(prog);
    SpawnResult r = th_run(120, dflow_bin(), "run", path, "--backend", "cpu", NULL);
    TH_EXPECT_EXIT(r, 0);
    cr_expect(strstr(r.out, "[0.5, 0.5, 0.5]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "[[0.5, 0.5],\n [0.5, 0.5],\n [0.5, 0.5]]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "[[[0.25]],\n [[0.25]]]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "[0, 1]\n"), "%s", r.out);
    cr_expect(strstr(r.out, "\n9\n"), "%s", r.out);
    th_spawn_free(&r);
}

/* methods.md section 2.4: BBSE weights w = C^-1 q from a classifier trained
 * on the source recover the known class ratios p_target / p_source =
 * [1.8, 0.9, 0.3] (examples/importance_weights.dfl), on both backends. */
Test(linalg, importance_weights_recover_the_class_ratios) {
    const char *backends[] = {"interp", "cpu"};
    for (int i = 0; i < 2; i++) {
        SpawnResult r = th_run(300, dflow_bin(), "run", "examples/importance_weights.dfl",
                               "--backend", backends[i], NULL);
        TH_EXPECT_EXIT(r, 0);
        const char *p = strstr(r.out, "w = [");
        cr_assert(p, "%s", r.out);
        double w[3];
        cr_assert_eq(sscanf(p, "w = [%lf, %lf, %lf]", &w[0], &w[1], &w[2]), 3, "%s", r.out);
        const double want[3] = {1.8, 0.9, 0.3};
        for (int k = 0; k < 3; k++)
            cr_expect(fabs(w[k] - want[k]) < 0.05, "%s: w[%d] = %g, want %g", backends[i], k, w[k],
                      want[k]);
        th_spawn_free(&r);
    }
}
