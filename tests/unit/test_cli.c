/* The `dflow` command end to end ($DFLOW_BIN): help and version, exit
 * codes and messages for bad flags and missing files, then real programs:
 * check and ir on the examples, `run` of linreg and the autoencoder with
 * their metrics, Ctrl-C keeping the files, and MNIST training whose loss
 * must fall below a stated bound. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"
#include "runtime/dataio.h"
#include "runtime/tensor.h"

/* Runs dflow with up to 15 arguments; the result is checked by the caller. */
static SpawnResult dflow(double timeout, const char *a1, ...) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    va_list ap;
    va_start(ap, a1);
    SpawnResult r = th_vrun(timeout, bin, a1, ap);
    va_end(ap);
    return r;
}

#define EXPECT_EXIT TH_EXPECT_EXIT

static bool exists(const char *path) {
    return access(path, R_OK) == 0;
}

/* ---- usage ---- */

Test(cli, help_and_version) {
    SpawnResult r = dflow(10, "--help", NULL);
    EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "usage: dflow"), "%s", r.out);
    cr_assert(strstr(r.out, "check") && strstr(r.out, "run"), "%s", r.out);
    th_spawn_free(&r);
    r = dflow(10, "-h", NULL);
    EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    r = dflow(10, "--version", NULL);
    EXPECT_EXIT(r, 0);
    cr_assert(strncmp(r.out, "dflow ", 6) == 0, "%s", r.out);
    th_spawn_free(&r);
    const char *cmds[] = {"check", "ir", "run"};
    for (int i = 0; i < 3; i++) {
        r = dflow(10, cmds[i], "--help", NULL);
        EXPECT_EXIT(r, 0);
        char want[64];
        snprintf(want, sizeof want, "usage: dflow %s", cmds[i]);
        cr_assert(strstr(r.out, want), "%s", r.out);
        th_spawn_free(&r);
    }
    r = dflow(10, "run", "-h", NULL);
    EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "--out DIR") && strstr(r.out, "--seed N"), "%s", r.out);
    cr_assert(strstr(r.out, "--check-numerics"), "%s", r.out);
    th_spawn_free(&r);
}

Test(cli, usage_errors_exit_1_and_name_the_problem) {
    struct {
        const char *args[5];
        const char *msg;
    } cases[] = {
        {{NULL}, "usage: dflow"},
        {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
        {{"--frob", NULL}, "unknown option '--frob'"},
        {{"run", "--bogus", "x.dfl", NULL}, "unknown option '--bogus'"},
        {{"run", NULL}, "missing the program file"},
        {{"check", "a.dfl", "b.dfl", NULL}, "unexpected argument 'b.dfl'"},
        {{"run", "--seed", "abc", "x.dfl", NULL},
         "--seed expects a non-negative integer, got 'abc'"},
        {{"run", "--seed=-3", "x.dfl", NULL}, "--seed expects a non-negative integer"},
        {{"run", "x.dfl", "--seed", NULL}, "option '--seed' needs a value"},
        {{"run", "--set", "steps", "x.dfl", NULL}, "--set expects KEY=VALUE, got 'steps'"},
        {{"run", "--backend", "cpu", "x.dfl", NULL}, "cannot open 'x.dfl'"},
        {{"run", "--backend=cuda", "x.dfl", NULL}, "backend 'cuda' is not built yet"},
        {{"run", "--backend", "tpu", "x.dfl", NULL}, "unknown backend 'tpu'"},
        {{"check", "--seed", "1", "x.dfl", NULL}, "unknown option '--seed'"},
        {{"ir", "--after", "nosuchpass", "x.dfl", NULL}, "unknown pass 'nosuchpass'; passes: fold"},
        {{"check", "no/such/file.dfl", NULL}, "cannot open 'no/such/file.dfl'"},
        {{"run", "no/such/file.dfl", NULL}, "cannot open 'no/such/file.dfl'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char **a = cases[i].args;
        SpawnResult r = dflow(10, a[0], a[1], a[2], a[3], a[4]);
        EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, cases[i].msg), "case %zu: want '%s' in stderr:\n%s", i,
                  cases[i].msg, r.err);
        th_spawn_free(&r);
    }
}

/* ---- real programs ---- */

static void need(const char *path) {
    if (!exists(path)) cr_skip_test("%s is missing", path);
}

Test(cli, check_and_ir_on_examples) {
    const char *ex[] = {"examples/linreg.dfl", "examples/autoencoder_sgd.dfl",
                        "examples/mnist_mlp.dfl", "examples/linalg.dfl",
                        "examples/importance_weights.dfl"};
    for (int i = 0; i < (int)(sizeof ex / sizeof ex[0]); i++) {
        need(ex[i]);
        SpawnResult r = dflow(30, "check", ex[i], NULL);
        EXPECT_EXIT(r, 0);
        th_spawn_free(&r);
        r = dflow(30, "ir", ex[i], NULL);
        EXPECT_EXIT(r, 0);
        cr_assert(strstr(r.out, "slots:") && strstr(r.out, "main:"), "%s", r.out);
        th_spawn_free(&r);
        r = dflow(30, "ir", "--after", "dce", ex[i], NULL);
        EXPECT_EXIT(r, 0);
        cr_assert(strstr(r.out, "slots:") && strstr(r.out, "main:") && strstr(r.out, "graph "),
                  "%s", r.out);
        th_spawn_free(&r);
    }
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static char *write_file(const char *dir, const char *name, const char *text) {
    static char path[8][400];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
    return p;
}

/* `ir --after PASS` shows the graph as that pass leaves it: fold computes
 * the constant expression, cse merges the repeated exp, dce drops what fold
 * left dead, fuse adds the kernel list. */
Test(cli, ir_after_shows_each_pass_at_work) {
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "cli"));
    const char *prog = write_file(dir, "p.dfl",
                                  "main {\n  x = randn([4], seed = 1)\n  a = exp(x) + exp(x)\n"
                                  "  c = ones([4]) * 2.0 + 1.0\n  print a + c\n}\n");
    static const char *passes[] = {NULL, "fold", "cse", "dce", "fuse"};
    char *out[5];
    for (int i = 0; i < 5; i++) {
        SpawnResult r = passes[i] ? dflow(30, "ir", "--after", passes[i], prog, NULL)
                                  : dflow(30, "ir", prog, NULL);
        EXPECT_EXIT(r, 0);
        out[i] = strdup(r.out);
        th_spawn_free(&r);
    }
    /* as lowered: two exps, the multiply and the add of constants */
    cr_expect_eq(count(out[0], "= exp f32[4]"), 2, "%s", out[0]);
    cr_expect_eq(count(out[0], "= mul f32[4]"), 1, "%s", out[0]);
    cr_expect_eq(count(out[0], "const f32[4] value=3"), 0, "%s", out[0]);
    /* fold: ones * 2 + 1 is the constant 3, no multiply is left */
    cr_expect_eq(count(out[1], "const f32[4] value=3"), 1, "%s", out[1]);
    cr_expect_eq(count(out[1], "= mul "), 0, "%s", out[1]);
    cr_expect_eq(count(out[1], "= exp f32[4]"), 2, "%s", out[1]);
    /* cse: one exp, added to itself */
    cr_expect_eq(count(out[2], "= exp f32[4]"), 1, "%s", out[2]);
    cr_expect_eq(count(out[2], "= add f32[4] %3, %3"), 1, "%s", out[2]);
    /* dce: the folded-away scalars and broadcasts are gone */
    cr_expect_eq(count(out[3], "const f32[] value="), 0, "%s", out[3]);
    cr_expect_lt(count(out[3], "\n  %"), count(out[2], "\n  %"), "dce removed nothing:\n%s",
                 out[3]);
    /* fuse: the kernel list, with the exp and its add in one elementwise kernel */
    cr_expect_eq(count(out[4], "kernels g0:"), 1, "%s", out[4]);
    cr_expect_eq(count(out[4], "(ew) f32[4] <- %2 : %3 %4\n"), 1, "%s", out[4]);
    cr_expect_eq(count(out[3], "kernels "), 0, "%s", out[3]);
    for (int i = 0; i < 5; i++)
        free(out[i]);
    th_rmdir(dir);
}

static RtTensor *load_npy(const char *dir, const char *name) {
    char p[400], err[256] = "";
    snprintf(p, sizeof p, "%s/%s", dir, name);
    RtTensor *t = rt_npy_read(p, err, sizeof err);
    cr_assert_not_null(t, "%s: %s", p, err);
    return t;
}

/* Splits cut rows in file order: each part holds exactly its rows, on both
 * backends (x = the first two columns; y = the label column). */
Test(cli, data_split_parts_hold_exactly_their_rows) {
    char dir[256], prog[1024];
    cr_assert(th_tempdir(dir, sizeof dir, "cli"));
    /* a quoted header name may hold a comma */
    const char *csv =
        write_file(dir, "d.csv",
                   "\"width, cm\",\"height, cm\",label\n1,10,0\n2,20,1\n3,30,2\n4,40,0\n5,50,1\n"
                   "6,60,2\n7,70,0\n");
    snprintf(prog, sizeof prog,
             "data d = csv(\"%s\", labels = 2, split = [3, 2, 2])\n"
             "data e = csv(\"%s\", labels = 2, split = [5, 1])\n"
             "main {\n  save \"train_x.npy\" d.train.x\n  save \"train_y.npy\" d.train.y\n"
             "  save \"val_x.npy\" d.val.x\n  save \"val_y.npy\" d.val.y\n"
             "  save \"test_x.npy\" d.test.x\n  save \"test_y.npy\" d.test.y\n"
             "  save \"e_train_y.npy\" e.train.y\n  save \"e_test_x.npy\" e.test.x\n}\n",
             csv, csv);
    const char *path = write_file(dir, "split.dfl", prog);
    static const struct {
        const char *file;
        int rows, cols;
        double v[10];
    } want[] = {
        {"train_x.npy", 3, 2, {1, 10, 2, 20, 3, 30}},
        {"train_y.npy", 3, 0, {0, 1, 2}},
        {"val_x.npy", 2, 2, {4, 40, 5, 50}},
        {"val_y.npy", 2, 0, {0, 1}},
        {"test_x.npy", 2, 2, {6, 60, 7, 70}},
        {"test_y.npy", 2, 0, {2, 0}},
        {"e_train_y.npy", 5, 0, {0, 1, 2, 0, 1}},
        {"e_test_x.npy", 1, 2, {6, 60}}, /* the 7th row belongs to no part */
    };
    const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        char out[320];
        snprintf(out, sizeof out, "%s/%s", dir, backends[b]);
        SpawnResult r = dflow(120, "run", path, "--backend", backends[b], "--out", out, NULL);
        EXPECT_EXIT(r, 0);
        th_spawn_free(&r);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            RtTensor *t = load_npy(out, want[i].file);
            int rank = want[i].cols ? 2 : 1;
            cr_expect(t->shape.rank == rank && t->shape.dims[0] == want[i].rows &&
                          (rank == 1 || t->shape.dims[1] == want[i].cols),
                      "%s (%s): wrong shape", want[i].file, backends[b]);
            int64_t n = rt_shape_numel(&t->shape),
                    m = want[i].rows * (want[i].cols ? want[i].cols : 1);
            for (int64_t j = 0; j < n && j < m; j++)
                cr_expect_eq(rt_tensor_get_f64(t, j), want[i].v[j],
                             "%s (%s) element %lld: %g, want %g", want[i].file, backends[b],
                             (long long)j, rt_tensor_get_f64(t, j), want[i].v[j]);
            rt_tensor_free(t);
        }
    }
    th_rmdir(dir);
}

Test(cli, check_rejects_bad_set) {
    need("examples/linreg.dfl");
    SpawnResult r = dflow(30, "check", "examples/linreg.dfl", "--set", "nosuchkey=3", NULL);
    EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "nosuchkey"), "%s", r.err);
    th_spawn_free(&r);
}

/* The value of column `name` in the last row of metrics.csv that has it. */
static double last_metric(const char *csv, const char *name) {
    char head[1024];
    const char *nl = strchr(csv, '\n');
    cr_assert_not_null(nl, "empty metrics.csv");
    snprintf(head, sizeof head, "%.*s", (int)(nl - csv), csv);
    int col = -1, c = 0;
    for (char *tok = strtok(head, ","); tok; tok = strtok(NULL, ","), c++)
        if (strcmp(tok, name) == 0) col = c;
    cr_assert(col >= 0, "no column %s in %s", name, csv);
    double v = NAN;
    for (const char *line = nl + 1; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        const char *p = line;
        for (int k = 0; k < col && p < end; k++) {
            p = memchr(p, ',', (size_t)(end - p));
            if (!p) break;
            p++;
        }
        if (p && p < end && *p != ',' && *p != '\n') v = atof(p);
        line = *end ? end + 1 : end;
    }
    return v;
}

static char *read_out(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return th_slurp(p, NULL);
}

Test(cli, run_linreg) {
    need("examples/linreg.dfl");
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "cli"));
    char out[300];
    snprintf(out, sizeof out, "%s/run", dir);
    SpawnResult r = dflow(120, "run", "examples/linreg.dfl", "--out", out, NULL);
    EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "mse = ") && strstr(r.out, "err = "), "%s", r.out);
    cr_assert(strstr(r.out, "done"), "%s", r.out);
    cr_assert_null(strstr(r.err, "\r"), "progress drawn into a pipe:\n%s", r.err);
    char *csv = read_out(out, "metrics.csv");
    cr_assert_not_null(csv);
    double err = last_metric(csv, "err"), mse = last_metric(csv, "mse");
    cr_assert(err < 0.05, "err %g\n%s", err, csv);
    cr_assert(mse < 0.01, "mse %g\n%s", mse, csv);
    free(csv);
    char *js = read_out(out, "summary.json");
    cr_assert(js && strstr(js, "\"status\": \"completed\"") && strstr(js, "\"seed\": 0"), "%s", js);
    free(js);
    th_spawn_free(&r);
    th_rmdir(dir);
}

Test(cli, run_autoencoder_and_seed_changes_result) {
    need("examples/autoencoder_sgd.dfl");
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "cli"));
    char o1[300], o2[300], o3[300];
    snprintf(o1, sizeof o1, "%s/a", dir);
    snprintf(o2, sizeof o2, "%s/b", dir);
    snprintf(o3, sizeof o3, "%s/c", dir);
    SpawnResult r = dflow(120, "run", "examples/autoencoder_sgd.dfl", "--set", "steps=500",
                          "--seed", "1", "--out", o1, NULL);
    EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "alignment = ") && strstr(r.out, "sparsity = ") &&
                  strstr(r.out, "sharpness = "),
              "%s", r.out);
    th_spawn_free(&r);
    r = dflow(120, "run", "examples/autoencoder_sgd.dfl", "--set", "steps=500", "--seed", "1",
              "--out", o2, NULL);
    EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    r = dflow(120, "run", "examples/autoencoder_sgd.dfl", "--set", "steps=500", "--seed", "2",
              "--out", o3, NULL);
    EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    char *c1 = read_out(o1, "metrics.csv"), *c2 = read_out(o2, "metrics.csv"),
         *c3 = read_out(o3, "metrics.csv");
    cr_assert(c1 && c2 && c3);
    double s1 = last_metric(c1, "sparsity"), s2 = last_metric(c2, "sparsity"),
           s3 = last_metric(c3, "sparsity");
    cr_assert(s1 > 0 && s1 <= 1, "sparsity %g", s1);
    cr_assert_eq(s1, s2, "same seed, different results: %g %g", s1, s2);
    cr_assert_neq(s1, s3, "different seeds, same result %g", s1);
    free(c1);
    free(c2);
    free(c3);
    th_rmdir(dir);
}

/* Ctrl-C stops between steps, keeps the files and exits 130. */
Test(cli, sigint_stops_cleanly) {
    need("examples/linreg.dfl");
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set");
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "cli"));
    char *argv[] = {(char *)bin,
                    "run",
                    "examples/linreg.dfl",
                    "--set",
                    "steps=100000000",
                    "--progress",
                    "--out",
                    dir,
                    NULL};
    /* signal once the loop runs (the progress line shows), not while compiling */
    SpawnOptions o = {
        .timeout_s = 60, .send_sig = SIGINT, .send_after_s = 0.3, .send_when = "step "};
    SpawnResult r;
    cr_assert(th_spawn(argv, &o, &r));
    EXPECT_EXIT(r, 130);
    cr_assert(strstr(r.err, "interrupted at step"), "%s", r.err);
    cr_assert(strstr(r.err, "\rstep "), "no progress line with --progress:\n%s", r.err);
    char *js = read_out(dir, "summary.json");
    cr_assert(js && strstr(js, "\"status\": \"interrupted\""), "%s", js);
    free(js);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* MNIST, 300 SGD steps of the two-layer perceptron on the default backend
 * (the tiered JIT, which compiles the training loop): the training loss (of the last minibatch)
 * must fall from ln(10) = 2.30 to below 0.5. Measured with the interpreter and with the JIT alike:
 * 0.122 (seed 0) and 0.087-0.088 (seeds 1-4), so the bound leaves a wide margin for batch noise. */
#define MNIST_LOSS_BOUND 0.5

Test(cli, mnist_mlp_trains, .timeout = 600) {
    need("examples/mnist_mlp.dfl");
    if (!exists("data/mnist10k-images-idx3-ubyte.gz") && !exists("data/mnist10k-images-idx3-ubyte"))
        cr_skip_test("data/mnist10k is missing (scripts/setup.sh)");
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "mnist"));
    SpawnResult r =
        dflow(580, "run", "examples/mnist_mlp.dfl", "--set", "steps=300", "--out", dir, NULL);
    EXPECT_EXIT(r, 0);
    cr_assert(strstr(r.out, "done: 300 steps"), "%s", r.out);
    char *csv = read_out(dir, "metrics.csv");
    cr_assert_not_null(csv);
    double loss = last_metric(csv, "loss");
    cr_log_info("mnist: final loss after 300 steps %g", loss);
    cr_assert(loss < MNIST_LOSS_BOUND, "final loss %g >= %g\n%s", loss, MNIST_LOSS_BOUND, csv);
    free(csv);
    char *js = read_out(dir, "summary.json");
    cr_assert(js && strstr(js, "\"steps\": 300"), "%s", js);
    cr_assert(strstr(js, "\"backend\": \"auto\""), "the tiered JIT is the default backend: %s", js);
    free(js);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* The LLVM backend runs the same programs to the same numbers: equal up to
 * float summation order (it accumulates f32 sums in f32, in its own order). */
static double run_metric(const char *dir, const char *sub, const char *backend, const char *prog,
                         const char *name, const char *set) {
    char out[400];
    snprintf(out, sizeof out, "%s/%s", dir, sub);
    SpawnResult r = dflow(300, "run", prog, "--backend", backend, "--set", set, "--out", out, NULL);
    EXPECT_EXIT(r, 0);
    th_spawn_free(&r);
    char *csv = read_out(out, "metrics.csv");
    cr_assert_not_null(csv);
    double v = last_metric(csv, name);
    free(csv);
    return v;
}

Test(cli, cpu_backend_agrees_with_interp, .timeout = 600) {
    need("examples/linreg.dfl");
    need("examples/mnist_mlp.dfl");
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "cpu"));
    double e1 = run_metric(dir, "li", "interp", "examples/linreg.dfl", "err", "steps=200");
    double e2 = run_metric(dir, "lc", "cpu", "examples/linreg.dfl", "err", "steps=200");
    cr_assert(fabs(e1 - e2) <= 1e-4 * fabs(e1) + 1e-7, "linreg err: interp %g, cpu %g", e1, e2);
    double l1 = run_metric(dir, "mi", "interp", "examples/mnist_mlp.dfl", "loss", "steps=100");
    double l2 = run_metric(dir, "mc", "cpu", "examples/mnist_mlp.dfl", "loss", "steps=100");
    cr_log_info("mnist loss after 100 steps: interp %g, cpu %g", l1, l2);
    cr_assert(fabs(l1 - l2) <= 0.02 * fabs(l1) + 1e-4, "mnist loss: interp %g, cpu %g", l1, l2);
    th_rmdir(dir);
}

/* A diverging run stops at the step where the loss stops being finite, with
 * a diagnostic at the train block, exit status 1, and its files kept. */
Test(cli, nan_loss_is_a_located_error) {
    need("examples/mnist_mlp.dfl");
    if (!exists("data/mnist10k-images-idx3-ubyte.gz") && !exists("data/mnist10k-images-idx3-ubyte"))
        cr_skip_test("data/mnist10k is missing (scripts/setup.sh)");
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "nan"));
    SpawnResult r = dflow(120, "run", "examples/mnist_mlp.dfl", "--set", "lr=1e6", "--set",
                          "steps=100", "--out", dir, NULL);
    EXPECT_EXIT(r, 1);
    cr_assert(strstr(r.err, "examples/mnist_mlp.dfl:") &&
                  strstr(r.err, ": error: train mlp: loss is "),
              "%s", r.err);
    cr_assert(strstr(r.err, "(try a smaller learning rate)"), "%s", r.err);
    char *js = read_out(dir, "summary.json");
    cr_assert(js && strstr(js, "\"status\": \"failed\""), "%s", js);
    free(js);
    th_spawn_free(&r);
    th_rmdir(dir);
}

/* A label outside 0..C-1 is a located run-time error on both backends (it
 * used to pick nothing: a silent loss of 0 for that row). */
Test(cli, cross_entropy_label_out_of_range_is_a_located_error) {
    const char *src = "main {\n"
                      "  x = randn([4, 3], seed = 1)\n"
                      "  y = iota(4)\n"
                      "  log loss = cross_entropy(x, y)\n"
                      "}\n";
    char dir[256], path[300];
    cr_assert(th_tempdir(dir, sizeof dir, "xent"));
    snprintf(path, sizeof path, "%s/labels.dfl", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f && fputs(src, f) >= 0 && fclose(f) == 0);
    const char *backends[] = {"cpu", "interp"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r = dflow(120, "run", path, "--backend", backends[b], NULL);
        EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, "labels.dfl:4:14: error: gather: index"), "%s: %s", backends[b],
                  r.err);
        cr_assert(strstr(r.err, "out of range"), "%s", r.err);
        th_spawn_free(&r);
    }
    th_rmdir(dir);
}

/* A `main` loop holding four `if`s compiles more than eight graphs: the
 * JIT once kept pointers into its graph cache across the cache's growth
 * (a crash on --backend cpu). Both backends print the same answer. */
Test(cli, main_loop_with_four_ifs_runs_on_both_backends) {
    const char *path = th_write_program("main {\n"
                                        "  x = zeros([4])\n"
                                        "  for s in 0..20 {\n"
                                        "    if s > 1 { x = x + 1 }\n"
                                        "    if s > 2 { x = x * 2 }\n"
                                        "    if s > 3 { x = x - 1 }\n"
                                        "    if s > 4 { x = x / 2 }\n"
                                        "  }\n"
                                        "  print x\n"
                                        "}\n");
    const char *backends[] = {"cpu", "interp"};
    for (int b = 0; b < 2; b++) {
        SpawnResult r = dflow(120, "run", path, "--backend", backends[b], NULL);
        EXPECT_EXIT(r, 0);
        cr_assert(strstr(r.out, "[16.5, 16.5, 16.5, 16.5]"), "%s: %s", backends[b], r.out);
        th_spawn_free(&r);
    }
}

/* Out of memory is a located diagnostic with one shape on both backends:
 * the value (dtype, shape, bytes), the op and its line, what the run
 * already holds, and for the JIT's arena of intermediates its size; exit
 * 1, never a signal. A child with a 1 GiB data segment cannot get 6 GiB
 * (ASan reserves more than that for itself, so it is skipped there). */
Test(cli, out_of_memory_is_a_located_error_on_both_backends) {
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("a data segment limit does not work under ASan");
#endif
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    static const char *const progs[2] = {
        "main {\n  x = randn([40000, 40000], seed = 1)\n  print x\n}\n",
        "main {\n  print sum(randn([40000, 40000], seed = 1) @ randn([40000, 40000], seed = "
        "2))\n}\n"};
    static const char *const where[2] = {":2:7: error: ", ":2:13: error: "};
    const char *backends[] = {"interp", "cpu"};
    for (int p = 0; p < 2; p++) {
        const char *path = th_write_program(progs[p]);
        for (int b = 0; b < 2; b++) {
            char *argv[] = {(char *)bin,         "run", (char *)path, "--backend",
                            (char *)backends[b], NULL};
            SpawnOptions o = {.timeout_s = 120, .rlimit_data = 1ll << 30};
            SpawnResult r;
            cr_assert(th_spawn(argv, &o, &r));
            EXPECT_EXIT(r, 1);
            const char *e = strstr(r.err, where[p]);
            cr_assert(e, "program %d, %s: %s", p, backends[b], r.err);
            cr_assert(strstr(e, "out of memory: cannot allocate f32[40000,40000] (5.96 GiB) for "
                                "rng_normal"),
                      "program %d, %s: %s", p, backends[b], r.err);
            cr_assert(strstr(e, " already in use\n"), "%s", r.err);
            bool arena = p == 1 && b == 1; /* the JIT keeps both factors in its arena */
            cr_assert_eq(strstr(e, "GiB arena of intermediates;") != NULL, arena, "%s: %s",
                         backends[b], r.err);
            th_spawn_free(&r);
        }
    }
}

/* Rows far from zero (every logit <= -100, all positive, gaps of 100):
 * softmax, log_softmax and logsumexp fuse their row max and row sum into
 * one kernel on the CPU, which must give the interpreter's finite answers;
 * so must a row mean read through a transpose. */
Test(cli, cpu_matches_interp_on_rows_far_from_zero, .timeout = 600) {
    char dir[256];
    cr_assert(th_tempdir(dir, sizeof dir, "cli"));
    const char *prog =
        write_file(dir, "rows.dfl",
                   "main {\n  x = randn([5, 7], seed = 1)\n  z = randn([7, 5], seed = 2)\n"
                   "  gap = iota(7) * 100.0\n"
                   "  save \"neg.npy\" softmax(x - 200.0, axis = 1)\n"
                   "  save \"pos.npy\" log_softmax(x + 300.0, axis = 1)\n"
                   "  save \"lse.npy\" logsumexp(x - 300.0, axis = 1)\n"
                   "  save \"gap.npy\" softmax(x + gap, axis = 1)\n"
                   "  save \"min.npy\" x - min(x + 150.0, axis = 1, keepdims = true)\n"
                   "  save \"tr.npy\" transpose(x - mean(x, axis = 1, keepdims = true)) * z\n}\n");
    static const char *files[] = {"neg.npy", "pos.npy", "lse.npy", "gap.npy", "min.npy", "tr.npy"};
    const char *backends[] = {"interp", "cpu"};
    char out[2][320];
    for (int b = 0; b < 2; b++) {
        snprintf(out[b], sizeof out[b], "%s/%s", dir, backends[b]);
        SpawnResult r = dflow(120, "run", prog, "--backend", backends[b], "--out", out[b], NULL);
        EXPECT_EXIT(r, 0);
        th_spawn_free(&r);
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        RtTensor *a = load_npy(out[0], files[i]), *c = load_npy(out[1], files[i]);
        cr_assert(rt_shape_eq(&a->shape, &c->shape), "%s: shapes differ", files[i]);
        for (int64_t j = 0; j < rt_shape_numel(&a->shape); j++) {
            double va = rt_tensor_get_f64(a, j), vc = rt_tensor_get_f64(c, j);
            cr_expect(isfinite(va), "%s[%lld] on interp: %g", files[i], (long long)j, va);
            cr_expect(fabs(va - vc) <= 1e-5 * (1 + fabs(va)), "%s[%lld]: interp %.9g, cpu %.9g",
                      files[i], (long long)j, va, vc);
        }
        rt_tensor_free(a);
        rt_tensor_free(c);
    }
    th_rmdir(dir);
}

/* `epochs = E` runs E passes over the data: floor(rows / batch) steps each
 * (8 rows in batches of 3: 2 steps, the last partial batch skipped). */
Test(cli, epochs_run_every_epoch) {
    char dir[256], out[320], csvp[360];
    cr_assert(th_tempdir(dir, sizeof dir, "cli"));
    const char *prog = write_file(
        dir, "ep.dfl",
        "import optim\ndata X = randn([8, 2], seed = 1)\n"
        "data ds = [x = X, y = X @ ones([2])]\n"
        "fn model(x: f32[B, 2]) -> f32[B] {\n  param w: f32[2] = zeros()\n  return x @ w\n}\n"
        "train model {\n  data = ds\n  batch = 3\n  epochs = 3\n"
        "  loss = mse(model(batch.x), batch.y)\n  optimizer = optim.sgd(lr = 0.1)\n"
        "  every 1 { log w0 = params(model).w[0] }\n}\n");
    snprintf(out, sizeof out, "%s/run", dir);
    SpawnResult r = dflow(120, "run", prog, "--backend", "interp", "--out", out, NULL);
    EXPECT_EXIT(r, 0);
    cr_expect(strstr(r.out, "done: 6 steps"), "%s", r.out);
    th_spawn_free(&r);
    snprintf(csvp, sizeof csvp, "%s/metrics.csv", out);
    char *csv = th_slurp(csvp, NULL);
    cr_assert_not_null(csv);
    cr_expect_eq(count(csv, "\n"), 7, "a header and 6 rows:\n%s", csv);
    cr_expect(strstr(csv, "\n6,"), "%s", csv);
    free(csv);
    th_rmdir(dir);
}

/* --check-numerics names the first op that computed a NaN or Inf, its
 * line and the step, identically on both backends, and exits 1: here a mul
 * overflows f32 at loop step 38 (10^39) in a main loop, and a divergent
 * training run of the build test's MLP (loss -inf at train step 8). Without
 * the flag the loop runs to its end. */
Test(cli, check_numerics_names_the_first_op_and_step, .timeout = 600) {
    const char *loop = th_write_program("main {\n"
                                        "  x = full([3], 1.0)\n"
                                        "  for s in 0..60 {\n"
                                        "    x = x * 10.0\n"
                                        "  }\n"
                                        "  print x\n"
                                        "}\n");
    /* auto interprets this short loop's graph: the check must reach it too */
    const char *backends[] = {"interp", "cpu", "auto"};
    for (int b = 0; b < 3; b++) {
        SpawnResult r = dflow(120, "run", loop, "--backend", backends[b], "--check-numerics", NULL);
        EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err,
                         ":4:11: error: --check-numerics: mul produced inf at element [0] of "
                         "f32[3] (step 38)\n"),
                  "%s: %s", backends[b], r.err);
        th_spawn_free(&r);
        r = dflow(120, "run", loop, "--backend", backends[b], NULL);
        EXPECT_EXIT(r, 0);
        cr_assert(strstr(r.out, "[inf, inf, inf]"), "%s: %s", backends[b], r.out);
        th_spawn_free(&r);
    }
    need("tests/programs/build_mlp.dfl");
    if (!exists("data/mnist10k-images-idx3-ubyte.gz") && !exists("data/mnist10k-images-idx3-ubyte"))
        cr_skip_test("data/mnist10k is missing (scripts/setup.sh)");
    for (int b = 0; b < 3; b++) {
        SpawnResult r = dflow(120, "run", "tests/programs/build_mlp.dfl", "--backend", backends[b],
                              "--set", "lr=1e36", "--check-numerics", NULL);
        EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, "tests/programs/build_mlp.dfl:18:15: error: --check-numerics: sum "
                                "produced -inf in f32[] (step 8)\n"),
                  "%s: %s", backends[b], r.err);
        th_spawn_free(&r);
    }
}

/* --threads N bounds the run's threads (kernel pool, compile threads,
 * OpenBLAS) on dflow run and on a built executable; the answer does not
 * depend on it; anything but 1..256 is refused with the reason. */
Test(cli, threads_flag, .timeout = 600) {
    const char *prog = "examples/linreg.dfl";
    need(prog);
    SpawnResult one = dflow(120, "run", prog, "--backend", "cpu", "--threads", "1", "-v", NULL);
    EXPECT_EXIT(one, 0);
    cr_assert(strstr(one.err, "; 1 kernel thread\n"), "%s", one.err);
    SpawnResult two = dflow(120, "run", prog, "--backend", "cpu", "--threads=2", "-v", NULL);
    EXPECT_EXIT(two, 0);
    cr_assert(strstr(two.err, "; 2 kernel threads\n"), "%s", two.err);
    char *d1 = strstr(one.out, "done"), *d2 = strstr(two.out, "done");
    cr_assert(d1 && d2 && d1 - one.out == d2 - two.out &&
                  !strncmp(one.out, two.out, (size_t)(d1 - one.out)),
              "the same results at 1 and 2 threads:\n%s\n%s", one.out, two.out);
    th_spawn_free(&one);
    th_spawn_free(&two);
    const char *bad[] = {"0", "257", "2x", "-1", ""};
    for (int i = 0; i < 5; i++) {
        SpawnResult r = dflow(60, "run", prog, "--threads", bad[i], NULL);
        EXPECT_EXIT(r, 1);
        cr_assert(strstr(r.err, "--threads expects an integer from 1 to 256"), "%s", r.err);
        th_spawn_free(&r);
    }
}
