/* Lowering: small programs compiled with fe_compile, checked for Module
 * structure (slots, parameter paths, train specs, host statements) and run
 * with the module executor on the reference interpreter for numbers:
 * gradients of known functions, the linear single-neuron autoencoder's
 * closed forms (methods.md section 3), shape variables, tree arithmetic,
 * loop-carried variables, host and graph control flow, training with the
 * std optimizers. Programs go to a temporary folder; `log` lines are
 * captured from the executor's log stream and parsed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/llvm/llvm_backend.h"
#include "frontend/frontend.h"
#include "helpers/ir_helpers.h"
#include "ir/exec.h"
#include "runtime/dataio.h"
#include "runtime/rng.h"

typedef struct {
    Arena *a;
    SourceSet *s;
    DiagList *d;
    Module *m;
    char *log;
    size_t loglen;
} P;

static P compile_opts(const char *src, bool check_only, const ConfigOverride *ov, int nov) {
    P p;
    memset(&p, 0, sizeof p);
    p.a = arena_new();
    p.s = source_set_new(p.a);
    p.d = diag_list_new(p.a, p.s);
    CompileOptions o = {ov, nov, check_only};
    p.m = fe_compile(p.a, p.s, p.d, th_write_program(src), &o);
    if (!p.m) {
        char *t = th_diags_text(p.d);
        cr_assert_not_null(p.m, "compilation failed:\n%s", t ? t : "");
        free(t);
    }
    return p;
}

static P compile(const char *src) {
    return compile_opts(src, false, NULL, 0);
}

/* Runs p on the interpreter, or (cpu) on the LLVM JIT compiling every graph
 * on its first run, none falling back to the interpreter. */
static void run_on(P *p, uint64_t seed, bool cpu) {
    free(p->log);
    p->log = NULL;
    FILE *lf = open_memstream(&p->log, &p->loglen);
    cr_assert_not_null(lf);
    ExecOptions o;
    memset(&o, 0, sizeof o);
    o.seed = seed;
    o.log = lf;
    o.runner = ir_interp_runner();
    GraphRunner jit = {0};
    if (cpu) {
        char err[200] = "";
        LlvmOptions lo = {.interp_runs = 0, .nthreads = 1};
        jit = llvm_runner_new(&lo, err, sizeof err);
        cr_assert_not_null(jit.run, "%s", err);
        o.runner = jit;
    }
    bool ok = ir_exec_module(p->m, &o);
    if (cpu) {
        for (int i = 0; i < llvm_runner_ngraphs(&jit); i++) {
            const LlvmGraphInfo *gi = llvm_runner_graph(&jit, i);
            cr_expect(!gi->fallback, "graph %s fell back to the interpreter: %s", gi->graph,
                      gi->reason);
        }
        llvm_runner_free(&jit);
    }
    fclose(lf);
    if (!ok) {
        char *t = th_diags_text(p->d);
        cr_assert(ok, "run failed:\n%s\nlog:\n%s", t ? t : "", p->log ? p->log : "");
        free(t);
    }
}

static void run(P *p, uint64_t seed) {
    run_on(p, seed, false);
}

static void release(P *p) {
    ir_module_free(p->m);
    arena_free(p->a);
    free(p->log);
}

/* The last logged value of `name` ("name = 1.25"). */
static double logged(const P *p, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "%s = ", name);
    const char *at = NULL;
    for (const char *s = p->log; s && (s = strstr(s, key)); s++)
        if (s == p->log || s[-1] == ' ' || s[-1] == '\n' || s[-1] == ',') at = s;
    cr_assert_not_null(at, "'%s' not logged; log:\n%s", name, p->log ? p->log : "");
    return strtod(at + strlen(key), NULL);
}

static int find_slot(const Module *m, const char *name) {
    for (int i = 0; i < m->nslots; i++)
        if (strcmp(m->slots[i].name, name) == 0) return i;
    return -1;
}

static const HostStmt *find_train(const Module *m) {
    for (int i = 0; i < m->main.n; i++)
        if (m->main.items[i]->op == HS_TRAIN) return m->main.items[i];
    return NULL;
}

#define NEAR(x, y, tol) near_check((x), (double)(y), (tol), #x)
static void near_check(double x, double y, double tol, const char *what) {
    cr_expect(fabs(x - y) <= tol * (1 + fabs(y)), "%s = %.9g, expected %.9g", what, x, y);
}

/* ---- structure ------------------------------------------------------------------------ */

Test(lower, mnist_mlp_structure_check_only) {
    const char *src =
        "import nn, optim\n"
        "config { batch_size = 128; hidden = 256; steps = 3000; lr = 0.1 }\n"
        "data mnist = idx(\"data/mnist10k\", scale = 1.0 / 255, split = [8000, 2000])\n"
        "fn mlp(x: f32[B, 784]) -> f32[B, 10] {\n"
        "  h = relu(nn.linear(x, hidden))\n"
        "  return nn.linear(h, 10)\n"
        "}\n"
        "train mlp {\n"
        "  data = mnist.train\n  batch = batch_size\n  shuffle = true\n  steps = steps\n"
        "  loss = cross_entropy(mlp(batch.x), batch.y)\n"
        "  optimizer = optim.sgd(lr = lr, momentum = 0.9)\n"
        "  every 500 { log test_acc = mean(argmax(mlp(mnist.test.x), axis = 1) == mnist.test.y) }\n"
        "}\n";
    ConfigOverride ov[] = {{"hidden", "32"}};
    P p = compile_opts(src, true, ov, 1);
    const Module *m = p.m;
    int tx = find_slot(m, "mnist.train.x"), ty = find_slot(m, "mnist.test.y");
    cr_assert_geq(tx, 0);
    cr_assert_geq(ty, 0);
    cr_expect_eq(m->slots[tx].kind, SLOT_DATA);
    cr_expect_eq(m->slots[tx].shape.dims[0], 8000);
    cr_expect_eq(m->slots[tx].shape.dims[1], 784);
    cr_expect_null(m->slots[tx].value, "check-only must not load data");
    cr_expect_eq(m->slots[ty].dtype, DT_I32);
    cr_expect_eq(m->slots[ty].shape.dims[0], 2000);
    /* parameters by path, in creation order */
    cr_assert_eq(m->nparams, 4);
    const char *paths[] = {"mlp.linear0.W", "mlp.linear0.b", "mlp.linear1.W", "mlp.linear1.b"};
    for (int i = 0; i < 4; i++)
        cr_expect_str_eq(m->slots[m->param_slots[i]].name, paths[i]);
    int w0 = m->param_slots[0];
    cr_expect_eq(m->slots[w0].shape.dims[0], 784);
    cr_expect_eq(m->slots[w0].shape.dims[1], 32, "--set hidden=32 decides the shape");
    int v0 = find_slot(m, "mlp.linear0.W.v");
    cr_assert_geq(v0, 0, "sgd's momentum state per parameter");
    cr_expect_eq(m->slots[v0].kind, SLOT_STATE);
    /* the train spec */
    const HostStmt *hs = find_train(m);
    cr_assert_not_null(hs);
    const TrainSpec *t = hs->u.train;
    cr_expect_eq(t->rows, 8000);
    cr_expect_eq(t->batch, 128);
    cr_expect_eq(t->steps, 3000);
    cr_expect(t->shuffle);
    cr_assert_eq(t->nfields, 2);
    cr_expect_str_eq(t->field_names[0], "x");
    cr_expect_eq(m->slots[t->batch_slots[0]].shape.dims[0], 128);
    cr_expect_eq(m->slots[t->batch_slots[0]].shape.dims[1], 784);
    cr_expect_eq(t->nevals, 1);
    cr_expect_eq(t->evals[0].every, 500);
    /* the step writes back every param, every state and the loss */
    cr_expect_eq(t->step.graph->noutputs, 4 + 4 + 1);
    /* initialisers: one init graph per param and per state tree */
    cr_expect_geq(m->init.n, 4);
    cr_expect(ir_module_verify(m, "test"));
    /* the first param's init graph draws from the path's stream (rng.md) */
    const Graph *g0 = m->init.items[0]->u.run.graph;
    bool stream_ok = false;
    for (uint32_t i = 0; i < g0->nnodes; i++)
        if (g0->nodes[i]->op == OP_RNG_UNIFORM)
            stream_ok = g0->nodes[i]->attr.rng.stream == 0xabfe42a2u;
    cr_expect(stream_ok, "glorot_uniform of mlp.linear0.W uses stream fnv1a(\"mlp.linear0.W\")");
    release(&p);
}

Test(lower, repeat_counts_calls_in_paths) {
    const char *src =
        "fn block(x: f32[B, C]) -> f32[B, C] {\n"
        "  param W: f32[C, C] = zeros()\n"
        "  return x @ W + x\n"
        "}\n"
        "fn net(x: f32[B, C]) -> f32[B, C] {\n"
        "  repeat 3 { x = block(x) }\n"
        "  return block(x)\n"
        "}\n"
        "main { y = net(ones([2, 5])) ; z = net(ones([7, 5])) ; log s = sum(y) + sum(z) }\n";
    P p = compile(src);
    cr_assert_eq(p.m->nparams, 4, "the second call of net reuses net.block0..3");
    for (int i = 0; i < 4; i++) {
        char want[32];
        snprintf(want, sizeof want, "net.block%d.W", i);
        cr_expect_str_eq(p.m->slots[p.m->param_slots[i]].name, want);
    }
    run(&p, 0);
    NEAR(logged(&p, "s"), 2 * 5 + 7 * 5, 1e-6);
    release(&p);
}

/* ---- numbers -------------------------------------------------------------------------- */

Test(lower, grad_of_known_functions) {
    const char *src = "fn f(w: f32[N]) -> f32 = sum(w ** 3) + 2 * sum(sin(w))\n"
                      "main {\n"
                      "  w = iota(4) * 0.5 + 0.25\n"
                      "  g = grad(f(w), w)\n"
                      "  log g0 = g[0], g1 = g[1], g3 = g[3]\n"
                      "  h = hvp(f(w), w, ones([4]))\n"
                      "  log h2 = h[2], tr = hessian_trace(f(w), w)\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    double w[4] = {0.25, 0.75, 1.25, 1.75}, tr = 0;
    for (int i = 0; i < 4; i++)
        tr += 6 * w[i] - 2 * sin(w[i]);
    NEAR(logged(&p, "g0"), 3 * w[0] * w[0] + 2 * cos(w[0]), 1e-5);
    NEAR(logged(&p, "g1"), 3 * w[1] * w[1] + 2 * cos(w[1]), 1e-5);
    NEAR(logged(&p, "g3"), 3 * w[3] * w[3] + 2 * cos(w[3]), 1e-5);
    NEAR(logged(&p, "h2"), 6 * w[2] - 2 * sin(w[2]), 1e-5);
    NEAR(logged(&p, "tr"), tr, 1e-5);
    release(&p);
}

Test(lower, linear_autoencoder_closed_form) {
    /* methods.md 3, x_i = e_i: L = (n - 2a + a b) / n and
     * tr H = 2(a + b - 2) + 8a/n + 2a(d - n)/n, a = sum_{i<=n} w_i^2, b = |w|^2 */
    const char *src = "config { d = 6; n = 4 }\n"
                      "fn recon(w: f32[d], xb: f32[M, d]) -> f32 {\n"
                      "  return mean(sum((xb - outer(xb @ w, w)) ** 2, axis = 1))\n"
                      "}\n"
                      "main {\n"
                      "  X = eye(n, d)\n"
                      "  w = iota(d) * 0.1 + 0.2\n"
                      "  log loss = recon(w, X), sharp = hessian_trace(recon(w, X), w)\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    int d = 6, n = 4;
    double a = 0, b = 0;
    for (int i = 0; i < d; i++) {
        double wi = 0.1 * i + 0.2;
        b += wi * wi;
        if (i < n) a += wi * wi;
    }
    NEAR(logged(&p, "loss"), (n - 2 * a + a * b) / n, 1e-5);
    NEAR(logged(&p, "sharp"), 2 * (a + b - 2) + 8 * a / n + 2 * a * (d - n) / n, 1e-4);
    release(&p);
}

Test(lower, relu_autoencoder_sharpness_at_a_sparse_minimum) {
    /* at w = e_1 (coordinates at 0 inactive): tr H = 8/n + 2(d - 1)/n */
    const char *src =
        "config { d = 5; n = 5 }\n"
        "fn recon(w: f32[d], xb: f32[M, d]) -> f32 {\n"
        "  return mean(sum((xb - outer(relu(xb @ w), w)) ** 2, axis = 1))\n"
        "}\n"
        "main { X = eye(n, d)\n w = eye(d)[0]\n log sharp = hessian_trace(recon(w, X), w) }\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "sharp"), 8.0 / 5 + 2.0 * 4 / 5, 1e-5);
    release(&p);
}

Test(lower, shape_variables_bind) {
    const char *src =
        "fn dims(x: f32[B, K], y: f32[K]) -> f32 = float(B * 100 + K) + sum(y) * 0\n"
        "fn tail(x: f32[..., C]) -> f32[..., C] = x * C\n"
        "main { log v = dims(zeros([3, 4]), ones([4])), t = sum(tail(ones([2, 3, 5]))) }\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "v"), 304, 1e-9);
    NEAR(logged(&p, "t"), 2 * 3 * 5 * 5, 1e-9);
    release(&p);
}

Test(lower, tree_arithmetic) {
    const char *src = "main {\n"
                      "  t = [a = ones([2]), b = ones([3]) * 2]\n"
                      "  u = t * 3 + t\n"
                      "  z = zeros_like(u) - 1\n"
                      "  log d = dot(u, t), n = norm(t), s = sum(z.a) + sum(z.b), b0 = u.b[0]\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "d"), 2 * 4 + 3 * 8 * 2, 1e-6);
    NEAR(logged(&p, "n"), sqrt(2 + 12), 1e-6);
    NEAR(logged(&p, "s"), -5, 1e-9);
    NEAR(logged(&p, "b0"), 8, 1e-9);
    release(&p);
}

Test(lower, indexing_follows_numpy) {
    const char *src =
        "main {\n"
        "  x = reshape(iota(24) * 1.0, [2, 3, 4])\n"
        "  log a = x[1, 2, 3], b = x[-1][0][-2], c = sum(x[:, 1]), e = sum(x[0, :, 1:3])\n"
        "  i = iota(2) + 1\n"
        "  g = x[0][i]\n"
        "  log f = g[1, 0], h = sum(x[None, 0, 0]), k = sum(x[:, i])\n"
        "}\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "a"), 23, 0);
    NEAR(logged(&p, "b"), 14, 0);
    NEAR(logged(&p, "c"), (4 + 5 + 6 + 7) + (16 + 17 + 18 + 19), 0);
    NEAR(logged(&p, "e"), 1 + 2 + 5 + 6 + 9 + 10, 0);
    NEAR(logged(&p, "f"), 8, 0);
    NEAR(logged(&p, "h"), 0 + 1 + 2 + 3, 0);
    double k = 0;
    for (int a = 0; a < 2; a++)
        for (int r = 1; r <= 2; r++)
            for (int c = 0; c < 4; c++)
                k += a * 12 + r * 4 + c;
    NEAR(logged(&p, "k"), k, 0);
    release(&p);
}

Test(lower, loop_carried_variables_keep_their_own_slots) {
    const char *src = "main {\n"
                      "  w = ones([3])\n"
                      "  w0 = w\n"
                      "  total = 0.0\n"
                      "  for s in 0..5 {\n"
                      "    w = w + 1\n"
                      "    total += sum(w)\n"
                      "  }\n"
                      "  log dw = sum(w - w0), total = total, last = sum(w0)\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "dw"), 15, 0);
    NEAR(logged(&p, "total"), 3 * (2 + 3 + 4 + 5 + 6), 0);
    NEAR(logged(&p, "last"), 3, 0);
    release(&p);
}

Test(lower, host_control_flow) {
    const char *src = "main {\n"
                      "  x = sum(ones([3]))\n"
                      "  z = 5.0\n"
                      "  if x > 2.0 { y = 1.0; z = 7.0 } else { y = 2.0 }\n"
                      "  if x > 4.0 { q = 1.0 } else { q = 2.0 }\n"
                      "  n = 0\n"
                      "  hits = 0\n"
                      "  for i in 0..10 {\n"
                      "    n += 1\n"
                      "    if i > 6 { break }\n"
                      "    every 3 { hits += 1 }\n"
                      "  }\n"
                      "  k = 0\n"
                      "  while k < 5 { k = k + 2 }\n"
                      "  c = if x > 1.0 then 10.0 else 20.0\n"
                      "  log y = y, q = q, z = z, n = n, hits = hits, k = k, c = c\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "y"), 1, 0);
    NEAR(logged(&p, "q"), 2, 0);
    NEAR(logged(&p, "z"), 7, 0);
    NEAR(logged(&p, "n"), 8, 0);
    NEAR(logged(&p, "hits"), 2, 0);
    NEAR(logged(&p, "k"), 6, 0);
    NEAR(logged(&p, "c"), 10, 0);
    release(&p);
}

Test(lower, graph_if_in_function_selects) {
    const char *src = "fn pick(x: f32[N]) -> f32[N] {\n"
                      "  if sum(x) > 0.0 { y = x * 2 } else { y = x * 3 }\n"
                      "  return y\n"
                      "}\n"
                      "fn sgn(v: f32) -> f32 {\n"
                      "  if v > 0.0 { return 1.0 } else { return -1.0 }\n"
                      "}\n"
                      "main { log a = sum(pick(ones([2]))), b = sum(pick(-ones([2]))), c = "
                      "sgn(sum(-ones([2]))) }\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "a"), 4, 0);
    NEAR(logged(&p, "b"), -6, 0);
    NEAR(logged(&p, "c"), -1, 0);
    release(&p);
}

/* `//` and `%` against numpy's floor_divide and mod (tests/fixtures/
 * make_small_ops.py) in four dtypes, on the interpreter and the CPU backend:
 * exact, including 1 // 0.1 = 9 and the integer minimum. */
Test(lower, floordiv_and_mod_match_numpy) {
    const char *dts[] = {"f32", "f64", "i32", "i64"};
    for (int d = 0; d < 4; d++) {
        char src[1024];
        snprintf(src, sizeof src,
                 "data A = npy(\"tests/fixtures/fd_%s_a.npy\")\n"
                 "data B = npy(\"tests/fixtures/fd_%s_b.npy\")\n"
                 "data Q = npy(\"tests/fixtures/fd_%s_q.npy\")\n"
                 "data M = npy(\"tests/fixtures/fd_%s_m.npy\")\n"
                 "main {\n"
                 "  q = A // B\n"
                 "  log qerr = sum(q != Q), merr = sum(A %% B != M), n = len(A)\n"
                 "  log q0 = q[0], q6 = q[6]\n"
                 "}\n",
                 dts[d], dts[d], dts[d], dts[d]);
        for (int cpu = 0; cpu < 2; cpu++) {
            P p = compile(src);
            run_on(&p, 0, cpu);
            cr_expect_eq(logged(&p, "n"), 200);
            cr_expect_eq(logged(&p, "qerr"), 0, "%s cpu=%d", dts[d], cpu);
            cr_expect_eq(logged(&p, "merr"), 0, "%s cpu=%d", dts[d], cpu);
            if (d < 2) {
                cr_expect_eq(logged(&p, "q0"), 9, "1 // 0.1 (%s)", dts[d]);
                /* in f64 0.3 / 0.1 rounds up to 3 but 0.3 // 0.1 is 2 (f32: 3) */
                cr_expect_eq(logged(&p, "q6"), d == 1 ? 2 : 3, "0.3 // 0.1 (%s)", dts[d]);
            }
            release(&p);
        }
    }
}

/* Compile-time `//` on config and literal numbers is Python's, and a config
 * integer divided by `//` stays an integer (a shape). */
Test(lower, floordiv_at_compile_time) {
    const char *src = "config { n = 7; h = n // 2 }\n"
                      "main {\n"
                      "  x = zeros([n // 2, h])\n"
                      "  log a = -7 // 2, b = 7 // -2, c = -7 // -2, d = 7.5 // 2, e = 1 // 0.1,\n"
                      "      f = -1.5 // 1, g = -7 % 3, k = 7 % -3, r = len(x), s = -9 // 3\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "a"), -4, 0);
    NEAR(logged(&p, "b"), -4, 0);
    NEAR(logged(&p, "c"), 3, 0);
    NEAR(logged(&p, "d"), 3, 0);
    NEAR(logged(&p, "e"), 9, 0);
    NEAR(logged(&p, "f"), -2, 0);
    NEAR(logged(&p, "g"), 2, 0);
    NEAR(logged(&p, "k"), -2, 0);
    NEAR(logged(&p, "r"), 3, 0);
    NEAR(logged(&p, "s"), -3, 0);
    release(&p);
}

/* Tensor literals: a list of numbers meeting a tensor, passed to a builtin,
 * or given to tensor(), is a constant tensor (ints i64 unless a float is in
 * it or the tensor beside it is float); shape lists stay shape lists. Both
 * backends. */
Test(lower, tensor_literals) {
    const char *src = "config { s = 2.0 }\n"
                      "main {\n"
                      "  x = ones([2, 3])\n"
                      "  m = [[1, 2, 3], [4, 5, 6]]\n"
                      "  log a = sum(x * m), b = (m * x)[1, 2], c = sum(x @ [0.5, 0.25, 1])\n"
                      "  t = tensor(m)\n"
                      "  f = tensor([1, 2.5])\n"
                      "  d = tensor([1, 2], dtype = \"f64\")\n"
                      "  log r = t.rank, n0 = t.shape[0], n1 = t.shape[1], ti = sum(t // 4)\n"
                      "  log fv = f[1], fs = sum(f), dv = sum(d / 3)\n"
                      "  log w = sum(where(x[0] > 0, [1.5, 2.5, 3.5], x[0])), k = sum([s, 1, 0] * "
                      "x[0])\n"
                      "  log p = sum(pad(x, [[1, 0], [0, 2]])), z = sum(zeros([2, 3]))\n"
                      "  log e = m[1][0]\n"
                      "}\n";
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(src);
        run_on(&p, 0, cpu);
        NEAR(logged(&p, "a"), 21, 0);
        NEAR(logged(&p, "b"), 6, 0);
        NEAR(logged(&p, "c"), 3.5, 0);
        NEAR(logged(&p, "r"), 2, 0);
        NEAR(logged(&p, "n0"), 2, 0);
        NEAR(logged(&p, "n1"), 3, 0);
        NEAR(logged(&p, "ti"), 3, 0); /* integer tensor: 4 // 4 + 5 // 4 + 6 // 4 */
        NEAR(logged(&p, "fv"), 2.5, 0);
        NEAR(logged(&p, "fs"), 3.5, 0);
        NEAR(logged(&p, "dv"), 1, 1e-15);
        NEAR(logged(&p, "w"), 7.5, 0);
        NEAR(logged(&p, "k"), 3, 0);
        NEAR(logged(&p, "p"), 6, 0);
        NEAR(logged(&p, "z"), 0, 0);
        NEAR(logged(&p, "e"), 4, 0);
        release(&p);
    }
    /* the dtypes */
    P q = compile("main {\n"
                  "  i = tensor([1, 2])\n"
                  "  f = tensor([1, 2.0])\n"
                  "  b = tensor([true, false])\n"
                  "  g = ones([2], dtype = \"f64\") * [1, 2]\n"
                  "  j = iota(2) + [1, 2]\n"
                  "  h = iota(2) * [0.5, 1]\n"
                  "  log s = sum(i) + sum(f) + sum(b) + sum(g) + sum(j) + sum(h)\n"
                  "}\n");
    const Module *m = q.m;
    const char *want[][2] = {{"i", "i64"}, {"f", "f32"}, {"b", "bool"},
                             {"g", "f64"}, {"j", "i32"}, {"h", "f32"}};
    for (int k = 0; k < 6; k++) {
        int si = find_slot(m, want[k][0]);
        cr_assert_geq(si, 0, "%s", want[k][0]);
        cr_expect_str_eq(rt_dtype_name(m->slots[si].dtype), want[k][1], "%s", want[k][0]);
    }
    run(&q, 0);
    NEAR(logged(&q, "s"), 3 + 3 + 1 + 3 + 4 + 1, 0);
    release(&q);
    /* a literal argument of a typed parameter takes its dtype, as a number does */
    P r = compile("fn f(v: f32[2]) = sum(v * 2)\nmain { log a = f([1, 2]) }\n");
    run(&r, 0);
    NEAR(logged(&r, "a"), 6, 0);
    release(&r);
}

/* histogram(x, bins, lo, hi) against numpy.histogram (tests/fixtures/
 * make_small_ops.py, cases in hist_cases.txt): exact counts, values on every
 * edge, the closed last bin, values outside, integer and rank-2 x; compile-
 * time bounds and the same bounds as run-time tensors; both backends. */
Test(lower, histogram_matches_numpy) {
    FILE *f = fopen("tests/fixtures/hist_cases.txt", "r");
    cr_assert_not_null(f, "tests/fixtures/hist_cases.txt");
    char name[64];
    int bins, ncases = 0;
    double lo, hi;
    while (fscanf(f, "%63s %d %lf %lf", name, &bins, &lo, &hi) == 4) {
        char src[1024];
        snprintf(src, sizeof src,
                 "data X = npy(\"tests/fixtures/hist_%s_x.npy\")\n"
                 "data C = npy(\"tests/fixtures/hist_%s_counts.npy\")\n"
                 "main {\n"
                 "  h = histogram(X, %d, %.17g, %.17g)\n"
                 "  lo = zeros([]) + %.17g\n"
                 "  r = histogram(X, %d, lo, lo * 0 + %.17g)\n"
                 "  log err = sum(abs(h - C)), rerr = sum(abs(r - C)), total = sum(h)\n"
                 "}\n",
                 name, name, bins, lo, hi, lo, bins, hi);
        for (int cpu = 0; cpu < 2; cpu++) {
            P p = compile(src);
            run_on(&p, 0, cpu);
            cr_expect_eq(logged(&p, "err"), 0, "%s (cpu=%d)", name, cpu);
            cr_expect_eq(logged(&p, "rerr"), 0, "%s, run-time bounds (cpu=%d)", name, cpu);
            cr_expect_gt(logged(&p, "total"), 0, "%s", name);
            int h = find_slot(p.m, "h");
            cr_assert_geq(h, 0);
            cr_expect_eq(p.m->slots[h].dtype, DT_I64);
            cr_expect_eq(p.m->slots[h].shape.dims[0], bins);
            release(&p);
        }
        ncases++;
    }
    fclose(f);
    cr_expect_eq(ncases, 5);
}

Test(lower, sample_draws_in_range_and_reproducibly) {
    const char *src = "main {\n"
                      "  i = sample(7, 1000, seed = 3, step = 2)\n"
                      "  log lo = min(i), hi = max(i), m = mean(i)\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    cr_expect_geq(logged(&p, "lo"), 0);
    cr_expect_leq(logged(&p, "hi"), 6);
    NEAR(logged(&p, "m"), 3.0, 0.1);
    release(&p);
}

Test(lower, run_seed_changes_randn) {
    const char *src = "main { log s = sum(randn([4], seed = seed)) }\n";
    P p = compile(src), q = compile(src);
    run(&p, 1);
    run(&q, 2);
    cr_expect_neq(logged(&p, "s"), logged(&q, "s"));
    release(&p);
    release(&q);
}

/* ---- streams of seeded draws (docs/rng.md, rng v2) ----------------------------------- */

/* The first n values of a draw from tests/fixtures/rng_expected.txt (written by
 * make_rng.py from docs/rng.md): the line "draw KIND SEED STREAM N v...". */
static void rng_expected(const char *kind, int seed, int stream, double *v, int n) {
    FILE *f = fopen("tests/fixtures/rng_expected.txt", "r");
    cr_assert_not_null(f, "tests/fixtures/rng_expected.txt");
    char line[1024], k[32];
    int got = 0;
    while (!got && fgets(line, sizeof line, f)) {
        int sd, st, cnt, off;
        if (sscanf(line, "draw %31s %d %d %d%n", k, &sd, &st, &cnt, &off) != 4) continue;
        if (strcmp(k, kind) != 0 || sd != seed || st != stream || cnt < n) continue;
        char *p = line + off;
        for (int i = 0; i < n; i++)
            v[i] = strtod(p, &p);
        got = 1;
    }
    fclose(f);
    cr_assert(got, "no line 'draw %s %d %d' in rng_expected.txt", kind, seed, stream);
}

/* A seeded draw is a key: moved to another line and column, after other
 * draws, it gives the same numbers, and those are docs/rng.md's. */
Test(lower, seeded_draw_gives_same_numbers_anywhere) {
    const char *a = "main {\n"
                    "  x = randn([8], seed = 3)\n"
                    "  u = rand([8], seed = 3, stream = 1)\n"
                    "  i = sample(10, 8, seed = 3)\n"
                    "  log x0 = x[0], x5 = x[5], u2 = u[2], i0 = i[0], i2 = i[2], i6 = i[6]\n"
                    "}\n";
    const char *b = "config { k = 2 }\n"
                    "fn f(v) = v * k\n"
                    "main {\n"
                    "  w = randn([3])\n"
                    "  q = f(rand([5], seed = 3))\n"
                    "        i = sample(10, 8, seed = 3)\n"
                    "  log w0 = w[0]\n"
                    "      u = rand([8], stream = 1, seed = 3)\n"
                    "   x = randn([8], seed = 3)\n"
                    "  log x0 = x[0], x5 = x[5], u2 = u[2], i0 = i[0], i2 = i[2], i6 = i[6]\n"
                    "}\n";
    P p = compile(a), q = compile(b);
    run(&p, 0);
    run(&q, 7); /* another run seed: seeded draws do not see it */
    const char *names[] = {"x0", "x5", "u2", "i0", "i2", "i6"};
    for (int k = 0; k < 6; k++)
        cr_expect_eq(logged(&p, names[k]), logged(&q, names[k]), "%s", names[k]);
    double z[8], u[8], s[8];
    rng_expected("randn", 3, 0, z, 8);
    rng_expected("rand", 3, 1, u, 8);
    rng_expected("sample:10", 3, 0, s, 8);
    NEAR(logged(&p, "x0"), z[0], 1e-5);
    NEAR(logged(&p, "x5"), z[5], 1e-5);
    NEAR(logged(&p, "u2"), u[2], 1e-5);
    NEAR(logged(&p, "i0"), s[0], 0);
    NEAR(logged(&p, "i2"), s[2], 0);
    NEAR(logged(&p, "i6"), s[6], 0);
    release(&p);
    release(&q);
}

/* randn_like(x, seed = s) is randn of x's shape with seed s; stream = 1 is
 * another stream; a seed-less draw still takes its position. */
Test(lower, seeded_draw_kinds_and_streams) {
    const char *src =
        "main {\n"
        "  a = randn_like(zeros([4, 2]), seed = 3)\n"
        "  b = randn([4, 2], seed = 3)\n"
        "  c = randn([4, 2], seed = 3, stream = 1)\n"
        "  d = randn([8])\n"
        "  e = randn([8])\n"
        "  log same = sum(abs(a - b)), other = sum(abs(b - c)), pos = sum(abs(d - e))\n"
        "  log c0 = c[0, 0], c7 = c[3, 1]\n"
        "}\n";
    P p = compile(src);
    run(&p, 1);
    NEAR(logged(&p, "same"), 0, 0);
    cr_expect_gt(logged(&p, "other"), 0.5);
    cr_expect_gt(logged(&p, "pos"), 0.5);
    double z[8];
    rng_expected("randn", 3, 1, z, 8);
    NEAR(logged(&p, "c0"), z[0], 1e-5);
    NEAR(logged(&p, "c7"), z[7], 1e-5);
    release(&p);
}

/* Draws of different kinds from one seed are independent streams: randn and
 * sample (examples/autoencoder_sgd.dfl draws both from `seed`), randn and
 * rand. Under one stream, sample(n, k) would be floor(n * rand([k])) and its
 * correlation with rand would be ~1. With 4000 draws an independent pair has
 * |r| < 0.06 with probability > 99.9%; the seed is fixed, so this cannot flake. */
Test(lower, seeded_draws_of_different_kinds_are_independent) {
    const char *src = "fn corr(a, b) {\n"
                      "  da = a - mean(a)\n"
                      "  db = b - mean(b)\n"
                      "  return mean(da * db) / sqrt(mean(da * da) * mean(db * db))\n"
                      "}\n"
                      "main {\n"
                      "  z = randn([4000], seed = 5)\n"
                      "  u = rand([4000], seed = 5)\n"
                      "  s = sample(1000, 4000, seed = 5) * 1.0\n"
                      "  log zs = corr(z, s), us = corr(u, s), zu = corr(z, u), same = "
                      "sum(abs(floor(u * 1000) - s))\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    cr_expect_lt(fabs(logged(&p, "zs")), 0.06);
    cr_expect_lt(fabs(logged(&p, "us")), 0.06);
    cr_expect_lt(fabs(logged(&p, "zu")), 0.06);
    cr_expect_gt(logged(&p, "same"), 1000); /* not floor(1000 u) */
    release(&p);
}

/* The line "draw KIND SEED STREAM STEP N v..." of rng_expected.txt. */
static void rng_expected_step(const char *kind, int step, double *v, int n) {
    FILE *f = fopen("tests/fixtures/rng_expected.txt", "r");
    cr_assert_not_null(f, "tests/fixtures/rng_expected.txt");
    char line[1024], k[32];
    int got = 0;
    while (!got && fgets(line, sizeof line, f)) {
        int sd, st, sp, cnt, off;
        if (sscanf(line, "draw %31s %d %d %d %d%n", k, &sd, &st, &sp, &cnt, &off) != 5) continue;
        if (strcmp(k, kind) != 0 || sp != step || cnt != n) continue;
        char *p = line + off;
        for (int i = 0; i < n; i++)
            v[i] = strtod(p, &p);
        got = 1;
    }
    fclose(f);
    cr_assert(got, "no line 'draw %s ... step %d' of %d in rng_expected.txt", kind, step, n);
}

/* choice(replace = false) and permutation: docs/rng.md's known answers
 * (make_rng.py), on the interpreter and the CPU backend. */
Test(lower, choice_and_permutation_known_answers) {
    const char *src =
        "main {\n"
        "  a = choice(10, 6, replace = false, seed = 3)\n"
        "  b = choice(10, 6, replace = false, seed = 3, step = 1)\n"
        "  p = permutation(8, seed = 3)\n"
        "  q = permutation(8, seed = 3, step = 1)\n"
        "  c = choice(1000, 5, replace = false, seed = 3)\n"
        "  r = choice(10, 6, seed = 3, step = 1)\n"
        "  w = iota(6) + 1\n"
        "  v = iota(8) + 1\n"
        "  u = iota(5) + 1\n"
        "  log a1 = sum(a * w), a2 = sum(a * a * w), b1 = sum(b * w), b2 = sum(b * b * w)\n"
        "  log p1 = sum(p * v), p2 = sum(p * p * v), q1 = sum(q * v), q2 = sum(q * q * v)\n"
        "  log c1 = sum(c * u), c2 = sum(c * c * u), r1 = sum(r * w), r2 = sum(r * r * w)\n"
        "  log a0 = a[0], p0 = p[0], c4 = c[4], c0 = c[0], c1x = c[1], c2x = c[2]\n"
        "}\n";
    struct {
        const char *kind, *name;
        int step, n;
    } cases[] = {{"choice:10", "a", 0, 6},   {"choice:10", "b", 1, 6},
                 {"permutation", "p", 0, 8}, {"permutation", "q", 1, 8},
                 {"choice:1000", "c", 0, 5}, {"choice_replace:10", "r", 1, 6}};
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(src);
        run_on(&p, 0, cpu);
        for (int k = 0; k < 6; k++) {
            double v[8], s1 = 0, s2 = 0;
            rng_expected_step(cases[k].kind, cases[k].step, v, cases[k].n);
            for (int i = 0; i < cases[k].n; i++) {
                s1 += v[i] * (i + 1);
                s2 += v[i] * v[i] * (i + 1);
            }
            char n1[8], n2[8];
            snprintf(n1, sizeof n1, "%s1", cases[k].name);
            snprintf(n2, sizeof n2, "%s2", cases[k].name);
            cr_expect_eq(logged(&p, n1), s1, "%s (cpu=%d)", n1, cpu);
            /* (the log prints 6 digits: c2 is about 10^6) */
            NEAR(logged(&p, n2), s2, k == 4 ? 1e-5 : 0);
            if (k == 0) cr_expect_eq(logged(&p, "a0"), v[0]);
            if (k == 2) cr_expect_eq(logged(&p, "p0"), v[0]);
            if (k == 4) {
                cr_expect_eq(logged(&p, "c0"), v[0]);
                cr_expect_eq(logged(&p, "c1x"), v[1]);
                cr_expect_eq(logged(&p, "c2x"), v[2]);
                cr_expect_eq(logged(&p, "c4"), v[4]);
            }
        }
        release(&p);
    }
}

/* Without replacement every draw is distinct, and over 2000 steps of
 * choice(10, 4, replace = false) each index is chosen about equally often,
 * overall and in the first position: Pearson's chi-square with 9 degrees of
 * freedom stays below 27.9 (its 99.9% point). The seed is fixed, so the test
 * is deterministic; a biased draw (modulo bias, a fixed position, a stream
 * reused across steps) fails it. */
Test(lower, choice_without_replacement_is_uniform) {
    const char *src = "fn chi2(c, e) = sum((c - e) * (c - e) / e)\n"
                      "main {\n"
                      "  all = zeros([10])\n"
                      "  first = zeros([10])\n"
                      "  dup = 0\n"
                      "  for t in 0..2000 {\n"
                      "    s = choice(10, 4, replace = false, seed = 11, step = t)\n"
                      "    h = sum(one_hot(s, 10), axis = 0)\n"
                      "    dup = dup + sum(h > 1)\n"
                      "    all = all + h\n"
                      "    first = first + one_hot(s[0], 10)\n"
                      "  }\n"
                      "  p = permutation(300, seed = 2)\n"
                      "  log x_all = chi2(all, 800), x_first = chi2(first, 200), dup = dup\n"
                      "  log pdup = max(abs(sum(one_hot(p, 300), axis = 0) - 1)), psum = sum(p)\n"
                      "}\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "dup"), 0, 0);
    cr_expect_lt(logged(&p, "x_all"), 27.9);
    cr_expect_lt(logged(&p, "x_first"), 27.9);
    NEAR(logged(&p, "pdup"), 0, 0);
    NEAR(logged(&p, "psum"), 299 * 300 / 2, 0);
    release(&p);
}

/* ---- training ------------------------------------------------------------------------- */

static const char *LINREG =
    "import optim\n"
    "config { n = 256; d = 4; steps = 150; method = \"sgd\" }\n"
    "data X = randn([n, d], seed = 1)\n"
    "data ds = [x = X, y = X @ (iota(d) / d - 0.5)]\n"
    "fn model(x: f32[B, d]) -> f32[B] {\n"
    "  param w: f32[d] = zeros()\n"
    "  param b: f32[] = zeros()\n"
    "  return x @ w + b\n"
    "}\n"
    "train model {\n"
    "  data = ds\n  batch = 32\n  steps = steps\n"
    "  loss = mse(model(batch.x), batch.y)\n"
    "  optimizer = select(method, sgd = optim.sgd(lr = 0.1, momentum = 0.5),\n"
    "                     adam = optim.adam(lr = 0.05), adamw = optim.adamw(lr = 0.05),\n"
    "                     mezo = optim.mezo(lr = 0.02), svrg = optim.mezo_svrg(lr_full = 0.02, "
    "lr_mb = 0.02, full = 128))\n"
    "  every 50 { log full = mse(model(ds.x), ds.y) }\n"
    "}\n";

static void train_with(const char *method, int steps, double tol) {
    char st[16];
    snprintf(st, sizeof st, "%d", steps);
    ConfigOverride ov[] = {{"method", method}, {"steps", st}};
    P p = compile_opts(LINREG, false, ov, 2);
    run(&p, 0);
    double full = logged(&p, "full");
    cr_expect_lt(full, tol, "%s: full-data mse %g after %d steps", method, full, steps);
    release(&p);
}

Test(lower, train_sgd_converges) {
    train_with("sgd", 150, 1e-6);
}
Test(lower, train_adam_converges) {
    train_with("adam", 300, 1e-4);
}
Test(lower, train_adamw_converges) {
    train_with("adamw", 300, 1e-3);
}
Test(lower, train_mezo_converges) {
    train_with("mezo", 300, 1e-2);
}
Test(lower, train_mezo_svrg_converges) {
    train_with("svrg", 300, 1e-2);
}

Test(lower, train_state_slots_for_adam) {
    ConfigOverride ov[] = {{"method", "adam"}};
    P p = compile_opts(LINREG, true, ov, 1);
    cr_expect_geq(find_slot(p.m, "model.w.m"), 0);
    cr_expect_geq(find_slot(p.m, "model.w.v"), 0);
    cr_expect_geq(find_slot(p.m, "model.b.v"), 0);
    int ds = find_slot(p.m, "ds.y");
    cr_assert_geq(ds, 0, "a data record computed by an init graph");
    cr_expect_eq(p.m->slots[ds].shape.dims[0], 256);
    cr_expect_geq(find_slot(p.m, "X"), 0, "ds.x is the slot of data X itself");
    release(&p);
}

Test(lower, module_print_is_readable) {
    const char *src = "main {\n"
                      "  w = ones([3])\n"
                      "  for s in 0..5 { w = w * 2 }\n"
                      "  print \"w is\", w\n"
                      "  log total = sum(w)\n"
                      "}\n";
    P p = compile(src);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cr_assert_not_null(f);
    ir_module_print(p.m, f);
    fclose(f);
    cr_expect(strstr(buf, "var w f32[3]") != NULL, "%s", buf);
    cr_expect(strstr(buf, "in 0..5 {") != NULL, "%s", buf);
    cr_expect(strstr(buf, "print \"w is\", $") != NULL, "%s", buf);
    cr_expect(strstr(buf, "log total = $") != NULL, "%s", buf);
    free(buf);
    run(&p, 0);
    NEAR(logged(&p, "total"), 3 * 32, 0);
    cr_expect(strstr(p.log, "w is") != NULL);
    release(&p);
}

/* ---- grad through host statements ------------------------------------------------------ */

/* The diagnostics of a program that must not compile. */
static char *compile_errors(const char *src) {
    Arena *a = arena_new();
    SourceSet *s = source_set_new(a);
    DiagList *d = diag_list_new(a, s);
    CompileOptions o = {NULL, 0, false};
    Module *m = fe_compile(a, s, d, th_write_program(src), &o);
    cr_expect_null(m, "the program compiled");
    char *t = th_diags_text(d);
    if (m) ir_module_free(m);
    arena_free(a);
    return t ? t : calloc(1, 1);
}

/* A host statement between the objective's intermediate and grad used to cut
 * the graph: y became a slot and its gradient a silent zero. */
static void grad_across(const char *host) {
    char src[1024];
    snprintf(src, sizeof src,
             "main {\n"
             "  x = iota(3) + 1.0\n"
             "  y = x * 3\n"
             "  %s\n"
             "  g = grad(sum(y * y), x)\n"
             "  h = grad(sum(y), x)\n"
             "  log g0 = g[0], g2 = g[2], h1 = h[1]\n"
             "}\n",
             host);
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(src);
        run_on(&p, 0, cpu);
        NEAR(logged(&p, "g0"), 18, 1e-6); /* d/dx sum(9 x^2) = 18 x */
        NEAR(logged(&p, "g2"), 54, 1e-6);
        NEAR(logged(&p, "h1"), 3, 1e-6);
        release(&p);
    }
}

Test(lower, grad_across_print) {
    grad_across("print sum(y)");
}
Test(lower, grad_across_log) {
    grad_across("log s = sum(y)");
}
Test(lower, grad_across_save) {
    char dir[256], stmt[400];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/dflow_lower_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(stmt, sizeof stmt, "save \"%s/y.npy\" y", dir);
    grad_across(stmt);
    snprintf(stmt, sizeof stmt, "%s/y.npy", dir);
    cr_expect_eq(remove(stmt), 0, "save wrote %s", stmt);
    cr_expect_eq(rmdir(dir), 0);
}
Test(lower, grad_across_if) {
    grad_across("if sum(y) > 1.0 { print \"big\" } else { print \"small\" }");
}
Test(lower, grad_across_for) {
    grad_across("for i in 0..3 { print i }");
}
Test(lower, grad_across_while) {
    grad_across("k = 0\n  while k < 2 { k = k + 1 }");
}

/* Gradient descent in main that prints its loss: w_k = 1 - 0.8^k exactly
 * (the step is w - 0.1 * 2 (w - 1)). */
static void descent(const char *loop_head, const char *loop_tail) {
    char src[1024];
    snprintf(src, sizeof src,
             "main {\n"
             "  w = zeros([3])\n"
             "  %s\n"
             "    l = sum((w - 1.0) ** 2)\n"
             "    print \"loss\", l\n"
             "    if l > 100.0 { print \"diverged\" }\n"
             "    log loss = l\n"
             "    w = w - 0.1 * grad(l, w)\n"
             "  %s\n"
             "  log w0 = w[0], w2 = w[2]\n"
             "}\n",
             loop_head, loop_tail);
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(src);
        run_on(&p, 0, cpu);
        NEAR(logged(&p, "w0"), 1 - pow(0.8, 20), 1e-5);
        NEAR(logged(&p, "w2"), 1 - pow(0.8, 20), 1e-5);
        NEAR(logged(&p, "loss"), 3 * pow(0.8, 38), 1e-3); /* the loss before the last step */
        release(&p);
    }
}

Test(lower, grad_descent_in_a_for_loop_that_prints) {
    descent("for i in 0..20 {", "}");
}
Test(lower, grad_descent_in_a_while_loop_that_prints) {
    descent("k = 0\n  while k < 20 {\n    k = k + 1", "}");
}

/* In an every block of a train, and in main after it: the gradient of a
 * loss printed first equals the gradient traced in one graph, and is not
 * zero. */
Test(lower, grad_across_print_in_every_block) {
    const char *src = "import optim\n"
                      "data X = randn([64, 3], seed = 1)\n"
                      "data ds = [x = X, y = X @ (iota(3) - 1.0)]\n"
                      "fn model(x: f32[B, 3]) -> f32[B] {\n"
                      "  param w: f32[3] = zeros()\n"
                      "  return x @ w\n"
                      "}\n"
                      "train model {\n"
                      "  data = ds\n  batch = 16\n  steps = 4\n"
                      "  loss = mse(model(batch.x), batch.y)\n"
                      "  optimizer = optim.sgd(lr = 0.05)\n"
                      "  every 2 {\n"
                      "    l = mse(model(ds.x), ds.y)\n"
                      "    print \"full loss\", l\n"
                      "    g = grad(l, params(model))\n"
                      "    r = grad(mse(model(ds.x), ds.y), params(model))\n"
                      "    log gn = norm(g), diff = norm(g.w - r.w)\n"
                      "  }\n"
                      "}\n"
                      "main {\n"
                      "  l = mse(model(ds.x), ds.y)\n"
                      "  print \"after training\", l\n"
                      "  g = grad(l, params(model))\n"
                      "  r = grad(mse(model(ds.x), ds.y), params(model))\n"
                      "  log after_gn = norm(g), after_diff = norm(g.w - r.w)\n"
                      "}\n";
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(src);
        run_on(&p, 0, cpu);
        cr_expect_gt(logged(&p, "gn"), 0.1, "the gradient is not zero");
        NEAR(logged(&p, "diff"), 0, 1e-6);
        cr_expect_gt(logged(&p, "after_gn"), 0.01,
                     "the gradient after the train block is not zero");
        NEAR(logged(&p, "after_diff"), 0, 1e-6);
        release(&p);
    }
}

/* w_prev is a constant of each iteration's gradient: it was computed before
 * w's update (stop_grad before the loop: there it is the same value as w). */
Test(lower, grad_treats_the_previous_iterate_as_constant) {
    const char *src = "main {\n"
                      "  w = zeros([2])\n"
                      "  w_prev = stop_grad(w)\n"
                      "  for i in 0..10 {\n"
                      "    l = sum((w - 1.0) ** 2) + sum((w - w_prev) ** 2)\n"
                      "    print l\n"
                      "    w_prev = w\n"
                      "    w = w - 0.1 * grad(l, w)\n"
                      "  }\n"
                      "  log w0 = w[0]\n"
                      "}\n";
    /* per element: w' = w - 0.2 (w - 1) - 0.2 (w - w_prev) */
    double w = 0, wp = 0;
    for (int i = 0; i < 10; i++) {
        double nw = w - 0.2 * (w - 1) - 0.2 * (w - wp);
        wp = w;
        w = nw;
    }
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(src);
        run_on(&p, 0, cpu);
        NEAR(logged(&p, "w0"), w, 1e-5);
        release(&p);
    }
}

/* Values whose dependence on the target passes through a loop cannot be
 * differentiated: a located error, never a zero. */
Test(lower, grad_through_a_loop_carried_value_is_an_error) {
    char *e = compile_errors("main {\n"
                             "  w = zeros([3])\n"
                             "  b = sum(w * w)\n"
                             "  for i in 0..5 {\n"
                             "    print b\n"
                             "    g = grad(b + sum(w), w)\n"
                             "    w = w - 0.1 * g\n"
                             "    b = sum(w * w)\n"
                             "  }\n"
                             "}\n");
    cr_expect(
        strstr(e, ":6:9: error: grad: the objective uses 'b', which comes through a host loop"),
        "%s", e);
    free(e);
    e = compile_errors("main {\n"
                       "  a = full([3], 1.0)\n"
                       "  y = a\n"
                       "  for i in 0..2 { y = a * 3\n print sum(y) }\n"
                       "  print grad(sum(y), a)\n"
                       "}\n");
    cr_expect(strstr(e, ":6:9: error: grad: the objective uses 'y'"), "%s", e);
    free(e);
    e = compile_errors("main {\n"
                       "  a = full([3], 1.0)\n"
                       "  y = a * 2\n"
                       "  if sum(a) > 0.0 { y = a * 3 }\n"
                       "  print grad(sum(y), a)\n"
                       "}\n");
    cr_expect(strstr(e, ":5:9: error: grad: the objective uses 'y'"), "%s", e);
    free(e);
}

/* ---- stack ----------------------------------------------------------------------------- */

/* stack of two or more tensors used to compare the reshaped first operand
 * with the others and never compiled. */
Test(lower, stack_values_and_gradient) {
    const char *prog =
        "main {\n"
        "  a = iota(3) + 1.0\n"
        "  b = a * 10\n"
        "  c = a * 100\n"
        "  s = stack(a, b, c)\n"
        "  t = stack(a, b, axis = 1)\n"
        "  g = grad(sum(stack(a, a * a, axis = -1) * t), a)\n"
        "  log s00 = s[0, 0], s12 = s[1, 2], s21 = s[2, 1], t21 = t[2, 1], t10 = t[1, 0]\n"
        "  log g1 = g[1], n = sum(ones_like(s)), m = sum(ones_like(t[0]))\n"
        "}\n";
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(prog);
        run_on(&p, 0, cpu);
        NEAR(logged(&p, "s00"), 1, 0);
        NEAR(logged(&p, "s12"), 30, 0);
        NEAR(logged(&p, "s21"), 200, 0);
        NEAR(logged(&p, "t21"), 30, 0);
        NEAR(logged(&p, "t10"), 2, 0);
        NEAR(logged(&p, "n"), 9, 0); /* s is [3, 3] */
        NEAR(logged(&p, "m"), 2, 0); /* t is [3, 2] */
        /* sum(a * a + a^2 * 10 a) = sum(a^2 + 10 a^3): d/da = 2 a + 30 a^2 */
        NEAR(logged(&p, "g1"), 2 * 2 + 30 * 4, 1e-6);
        release(&p);
    }
    char *e = compile_errors("main { x = stack(iota(3), iota(4)) }\n");
    cr_expect(strstr(e, "stack: shapes i32[3] and i32[4] differ"), "%s", e);
    free(e);
}

/* ---- weak float literals ----------------------------------------------------------------- */

/* `0.999 ** (t + 1)` (a float literal meeting the integer step) used to be
 * computed in f32 inside an f64 program, so f64 Adam drifted from PyTorch's
 * by 7e-7 in 10 steps. tests/fixtures/make_adam_f64.py wrote the reference. */
Test(lower, adam_f64_matches_pytorch) {
    double want[4];
    FILE *f = fopen("tests/fixtures/adam_f64.txt", "r");
    cr_assert_not_null(f, "tests/fixtures/adam_f64.txt (run from the repository root)");
    char line[512];
    cr_assert_not_null(fgets(line, sizeof line, f)); /* the header */
    cr_assert_eq(fscanf(f, "%lf %lf %lf %lf", &want[0], &want[1], &want[2], &want[3]), 4);
    fclose(f);
    char dir[256], src[2048];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/dflow_adam_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(src, sizeof src,
             "import optim\n"
             "data X = sin(reshape(iota(24, dtype = \"f64\"), [8, 3]) + 1.0)\n"
             "data ds = [x = X, y = cos(iota(8, dtype = \"f64\"))]\n"
             "fn model(x: f64[B, 3]) -> f64[B] {\n"
             "  param w: f64[3] = iota(3, dtype = \"f64\") * 0.1 - 0.1\n"
             "  param b: f64[] = 0.05\n"
             "  return x @ w + b\n"
             "}\n"
             "train model {\n"
             "  data = ds\n  batch = 8\n  shuffle = false\n  steps = 10\n"
             "  loss = mse(model(batch.x), batch.y)\n"
             "  optimizer = optim.adam(lr = 0.01)\n"
             "}\n"
             "main {\n"
             "  save \"%s/w.npy\" params(model).w\n"
             "  save \"%s/b.npy\" params(model).b\n"
             "}\n",
             dir, dir);
    for (int cpu = 0; cpu < 2; cpu++) {
        P p = compile(src);
        run_on(&p, 0, cpu);
        char path[400], err[256];
        double got[4];
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/%s.npy", dir, k ? "b" : "w");
            RtTensor *t = rt_npy_read(path, err, sizeof err);
            cr_assert_not_null(t, "%s", err);
            cr_assert_eq(t->dtype, DT_F64);
            for (int i = 0; i < (k ? 1 : 3); i++)
                got[k ? 3 : i] = rt_tensor_get_f64(t, i);
            rt_tensor_free(t);
            remove(path);
        }
        for (int i = 0; i < 4; i++)
            cr_expect(fabs(got[i] - want[i]) <= 1e-12,
                      "%s: parameter %d is %.17g, PyTorch %.17g (%.3g apart)",
                      cpu ? "cpu" : "interp", i, got[i], want[i], fabs(got[i] - want[i]));
        release(&p);
    }
    rmdir(dir);
}

/* A weak value stays f32 in an f32 program and when it meets nothing. */
Test(lower, weak_literals_keep_f32_programs_f32) {
    const char *src = "main {\n"
                      "  t = iota(3)\n"
                      "  a = 0.5 ** (t + 1)\n"
                      "  b = full([3], 2.0) * a\n"
                      "  c = full([3], 2.0, dtype = \"f64\") * (1 - 0.999 ** (t + 1))\n"
                      "  d = -(0.999 ** (t + 1)) + full([3], 1.0, dtype = \"f64\")\n"
                      "  log a2 = a[2], b1 = b[1], c1 = c[1] * 1e6, d0 = d[0] * 1e6\n"
                      "}\n";
    P p = compile(src);
    const char *want[] = {"a", "b", "c", "d"};
    const DType dts[] = {DT_F32, DT_F32, DT_F64, DT_F64};
    for (int i = 0; i < 4; i++) {
        int s = find_slot(p.m, want[i]);
        if (s < 0) continue; /* values of main that no host statement needed */
        cr_expect_eq(p.m->slots[s].dtype, dts[i], "%s", want[i]);
    }
    run(&p, 0);
    NEAR(logged(&p, "a2"), 0.125, 0);
    NEAR(logged(&p, "b1"), 0.5, 0);
    /* 2 (1 - 0.999^2) in f64 is 0.003998; in f32 0.999^2 is off by 2e-8 */
    cr_expect(fabs(logged(&p, "c1") - 3998.0) < 1e-6, "c1 = %.12g", logged(&p, "c1"));
    cr_expect(fabs(logged(&p, "d0") - 1000.0) < 1e-6, "d0 = %.12g", logged(&p, "d0"));
    release(&p);
}
