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

#include "frontend/frontend.h"
#include "helpers/ir_helpers.h"
#include "ir/exec.h"
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

static P compile(const char *src) { return compile_opts(src, false, NULL, 0); }

static void run(P *p, uint64_t seed) {
    FILE *lf = open_memstream(&p->log, &p->loglen);
    cr_assert_not_null(lf);
    ExecOptions o;
    memset(&o, 0, sizeof o);
    o.seed = seed;
    o.log = lf;
    o.runner = ir_interp_runner();
    bool ok = ir_exec_module(p->m, &o);
    fclose(lf);
    if (!ok) {
        char *t = th_diags_text(p->d);
        cr_assert(ok, "run failed:\n%s\nlog:\n%s", t ? t : "", p->log ? p->log : "");
        free(t);
    }
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
    const char *src = "import nn, optim\n"
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
    for (int i = 0; i < 4; i++) cr_expect_str_eq(m->slots[m->param_slots[i]].name, paths[i]);
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
        if (g0->nodes[i]->op == OP_RNG_UNIFORM) stream_ok = g0->nodes[i]->attr.rng.stream == 0xabfe42a2u;
    cr_expect(stream_ok, "glorot_uniform of mlp.linear0.W uses stream fnv1a(\"mlp.linear0.W\")");
    release(&p);
}

Test(lower, repeat_counts_calls_in_paths) {
    const char *src = "fn block(x: f32[B, C]) -> f32[B, C] {\n"
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
    for (int i = 0; i < 4; i++) tr += 6 * w[i] - 2 * sin(w[i]);
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
    const char *src = "config { d = 5; n = 5 }\n"
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
    const char *src = "fn dims(x: f32[B, K], y: f32[K]) -> f32 = float(B * 100 + K) + sum(y) * 0\n"
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
    const char *src = "main {\n"
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
            for (int c = 0; c < 4; c++) k += a * 12 + r * 4 + c;
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
                      "main { log a = sum(pick(ones([2]))), b = sum(pick(-ones([2]))), c = sgn(sum(-ones([2]))) }\n";
    P p = compile(src);
    run(&p, 0);
    NEAR(logged(&p, "a"), 4, 0);
    NEAR(logged(&p, "b"), -6, 0);
    NEAR(logged(&p, "c"), -1, 0);
    release(&p);
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

/* ---- training ------------------------------------------------------------------------- */

static const char *LINREG = "import optim\n"
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

Test(lower, train_sgd_converges) { train_with("sgd", 150, 1e-6); }
Test(lower, train_adam_converges) { train_with("adam", 300, 1e-4); }
Test(lower, train_adamw_converges) { train_with("adamw", 300, 1e-3); }
Test(lower, train_mezo_converges) { train_with("mezo", 300, 1e-2); }
Test(lower, train_mezo_svrg_converges) { train_with("svrg", 300, 1e-2); }

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
