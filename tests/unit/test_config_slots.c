/* Config values as run-time slots: numeric and bool `config` values of the
 * main module reach graphs through SLOT_CONFIG slots, and
 * fe_mark_runtime_configs tells which of them a compiled program may change.
 *
 * Checked here: the config table (order, types, value texts, slots); which
 * configs are runtime (an MLP's lr yes; hidden, batch_size, steps no; a
 * config in a compile-time `if`, a shape, a data loader or another config's
 * definition no); that replacing a runtime slot's value gives bit for bit
 * what recompiling with that value gives (saved tensors compared byte by
 * byte, on the interpreter); that a value read through its slot gives the
 * same numbers as the literal did (`dflow run` on the default backend and on
 * the interpreter); and ir_module_fingerprint / ir_module_print. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/frontend.h"
#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"
#include "ir/exec.h"

typedef struct {
    Arena *a;
    SourceSet *s;
    DiagList *d;
    Module *m;
    const char *path;
    CompileOptions o;
} P;

static char dir[256];

static const char *tmp_dir(void) {
    if (!dir[0]) cr_assert(th_tempdir(dir, sizeof dir, "cfgslots"));
    return dir;
}

static P compile_at(const char *path, bool check_only, const ConfigOverride *ov, int nov) {
    P p;
    memset(&p, 0, sizeof p);
    p.a = arena_new();
    p.s = source_set_new(p.a);
    p.d = diag_list_new(p.a, p.s);
    p.path = path;
    p.o = (CompileOptions){ov, nov, check_only};
    p.m = fe_compile(p.a, p.s, p.d, path, &p.o);
    if (!p.m) {
        char *t = th_diags_text(p.d);
        cr_assert_not_null(p.m, "compilation failed:\n%s", t ? t : "");
        free(t);
    }
    return p;
}

static P compile(const char *src) {
    return compile_at(th_write_program(src), false, NULL, 0);
}

static void mark(P *p) {
    bool ok = fe_mark_runtime_configs(p->path, &p->o, p->m, p->d);
    char *t = ok ? NULL : th_diags_text(p->d);
    cr_assert(ok, "fe_mark_runtime_configs failed:\n%s", t ? t : "");
    free(t);
}

static void release(P *p) {
    ir_module_free(p->m);
    arena_free(p->a);
}

static const ModuleConfig *cfg(const Module *m, const char *name) {
    for (int i = 0; i < m->nconfigs; i++)
        if (strcmp(m->configs[i].name, name) == 0) return &m->configs[i];
    cr_assert_fail("no config '%s'", name);
    return NULL;
}

#define EXPECT_RUNTIME(m, name, want)                                                              \
    do {                                                                                           \
        const ModuleConfig *c_ = cfg((m), (name));                                                 \
        cr_expect_eq(c_->runtime, (want), "config %s: runtime %d, want %d (%s)", (name),           \
                     (int)c_->runtime, (int)(want), c_->fixed_why ? c_->fixed_why : "no reason");  \
    } while (0)

/* Cuts the summary line ("done: ... steps/s ...") off a run's log. */
static char *without_done(char *log) {
    char *d = log ? strstr(log, "done") : NULL;
    if (d && (d == log || d[-1] == '\n')) *d = '\0';
    return log;
}

/* Runs m on the interpreter with out_dir `out`; returns the log text. */
static char *run_in(Module *m, const char *out, const DiagList *d) {
    char *log = NULL;
    size_t len = 0;
    FILE *lf = open_memstream(&log, &len);
    cr_assert_not_null(lf);
    ExecOptions o;
    memset(&o, 0, sizeof o);
    o.log = lf;
    o.out_dir = out;
    o.runner = ir_interp_runner();
    bool ok = ir_exec_module(m, &o);
    fclose(lf);
    if (!ok) {
        char *t = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&t, &n);
        diag_print_all(d, f);
        fclose(f);
        cr_assert(ok, "run failed:\n%s\nlog:\n%s", t ? t : "", log ? log : "");
    }
    return without_done(log);
}

static void out_dir(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "%s/%s", tmp_dir(), tag);
}

static void out_file(char *buf, size_t n, const char *dir_, const char *file) {
    snprintf(buf, n, "%s/%s", dir_, file);
}

/* A metrics.csv without its last column (time_s). */
static char *metrics_wo_time(const char *out) {
    char path[700];
    out_file(path, sizeof path, out, "metrics.csv");
    size_t n = 0;
    char *t = th_slurp(path, &n);
    cr_assert_not_null(t, "no %s", path);
    char *r = calloc(1, n + 1);
    cr_assert_not_null(r);
    size_t k = 0;
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        size_t keep = len;
        while (keep > 0 && line[keep - 1] != ',')
            keep--;
        memcpy(r + k, line, keep);
        k += keep;
        r[k++] = '\n';
        line += len + (nl ? 1 : 0);
    }
    r[k] = '\0';
    free(t);
    return r;
}

static void expect_same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = th_slurp(a, &na), *y = th_slurp(b, &nb);
    cr_assert(x && y, "missing %s or %s", a, b);
    cr_expect(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* ---- the config table ---------------------------------------------------------------- */

static const char *MLP =
    "import nn, optim\n"
    "config { batch_size = 128; hidden = 256; steps = 3000; lr = 0.1; name = \"mlp\" }\n"
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

Test(config_slots, table_in_declaration_order) {
    P p = compile_at(th_write_program(MLP), true, NULL, 0);
    cr_assert_eq(p.m->nconfigs, 5);
    const char *names = "batch_size hidden steps lr name";
    char got[128] = "";
    for (int i = 0; i < p.m->nconfigs; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? " " : "",
                 p.m->configs[i].name);
    cr_expect_str_eq(got, names);
    cr_expect_eq(cfg(p.m, "batch_size")->type, 'i');
    cr_expect_str_eq(cfg(p.m, "batch_size")->value, "128");
    cr_expect_eq(cfg(p.m, "lr")->type, 'f');
    cr_expect_str_eq(cfg(p.m, "lr")->value, "0.1");
    cr_expect_eq(cfg(p.m, "name")->type, 's');
    cr_expect_str_eq(cfg(p.m, "name")->value, "mlp");
    for (int i = 0; i < p.m->nconfigs; i++)
        cr_expect(!p.m->configs[i].runtime, "runtime before the check");
    /* lr is read by the step graph through its slot; the rest never reach a graph as values */
    const ModuleConfig *lr = cfg(p.m, "lr");
    cr_assert_geq(lr->slot, 0);
    const Slot *sl = &p.m->slots[lr->slot];
    cr_expect_eq(sl->kind, SLOT_CONFIG);
    cr_expect_str_eq(sl->name, "config.lr");
    cr_expect_eq(sl->dtype, DT_F64);
    cr_expect_eq(sl->shape.rank, 0);
    cr_assert_not_null(sl->value);
    cr_expect_eq(rt_tensor_get_f64(sl->value, 0), 0.1);
    cr_expect_eq(cfg(p.m, "name")->slot, -1);
    cr_expect(cfg(p.m, "hidden")->baked && cfg(p.m, "steps")->baked &&
              cfg(p.m, "batch_size")->baked);
    cr_expect(!lr->baked);
    release(&p);
}

Test(config_slots, mlp_lr_is_runtime_shapes_and_schedule_are_not) {
    P p = compile_at(th_write_program(MLP), true, NULL, 0);
    mark(&p);
    EXPECT_RUNTIME(p.m, "lr", true);
    EXPECT_RUNTIME(p.m, "hidden", false);
    EXPECT_RUNTIME(p.m, "batch_size", false);
    EXPECT_RUNTIME(p.m, "steps", false);
    EXPECT_RUNTIME(p.m, "name", false);
    cr_expect(strstr(cfg(p.m, "hidden")->fixed_why, "the compiler uses its value"), "%s",
              cfg(p.m, "hidden")->fixed_why);
    release(&p);
}

Test(config_slots, set_overrides_are_kept_by_the_check) {
    ConfigOverride ov[] = {{"lr", "0.25"}, {"hidden", "32"}};
    P p = compile_at(th_write_program(MLP), true, ov, 2);
    cr_expect_str_eq(cfg(p.m, "lr")->value, "0.25");
    cr_expect_str_eq(cfg(p.m, "hidden")->value, "32");
    cr_expect_eq(rt_tensor_get_f64(p.m->slots[cfg(p.m, "lr")->slot].value, 0), 0.25);
    mark(&p);
    EXPECT_RUNTIME(p.m, "lr", true);
    EXPECT_RUNTIME(p.m, "hidden", false);
    release(&p);
}

/* ---- what bakes a config ------------------------------------------------------------- */

Test(config_slots, trace_time_if_bakes) {
    P p = compile("config { x = 0.7; y = 0.3; unused = 5; on = true }\n"
                  "main {\n"
                  "  w = zeros([4])\n"
                  "  if x > 0.5 { w = w + y }\n"
                  "  log s = sum(w)\n"
                  "}\n");
    mark(&p);
    EXPECT_RUNTIME(p.m, "x", false);
    EXPECT_RUNTIME(p.m, "y", true);
    EXPECT_RUNTIME(p.m, "unused", true); /* nothing depends on it */
    EXPECT_RUNTIME(p.m, "on", true);
    cr_expect(cfg(p.m, "x")->baked);
    cr_expect_eq(cfg(p.m, "x")->baked_at.line, 4);
    cr_expect_eq(cfg(p.m, "unused")->slot, -1);
    release(&p);
}

Test(config_slots, folds_shapes_bounds_and_aliases_bake) {
    P p = compile(
        "config { a = 2.0; b = a; k = 3; n = 4; e = 2; c = 0.5; f = 1.5; g = 0.25; t = true }\n"
        "main {\n"
        "  v = zeros([n]) + c\n"          /* n: a shape; c: a value */
        "  v = v * (f * 2)\n"             /* f: folded with 2 */
        "  v = v ** e\n"                  /* e: picks x*x */
        "  for i in 0..k { v = v + g }\n" /* k: a loop bound; g: a value in the loop */
        "  v = v + b + (if t then 1.0 else 0.0)\n"
        "  log s = sum(v)\n"
        "}\n");
    mark(&p);
    EXPECT_RUNTIME(p.m, "a", false); /* b = a copies it at compile time */
    EXPECT_RUNTIME(p.m, "b", true);
    EXPECT_RUNTIME(p.m, "k", false);
    EXPECT_RUNTIME(p.m, "n", false);
    EXPECT_RUNTIME(p.m, "e", false);
    EXPECT_RUNTIME(p.m, "c", true);
    EXPECT_RUNTIME(p.m, "f", false);
    EXPECT_RUNTIME(p.m, "g", true);
    EXPECT_RUNTIME(p.m, "t", false);
    release(&p);
}

Test(config_slots, data_from_a_config_is_baked) {
    char csv[600];
    out_file(csv, sizeof csv, tmp_dir(), "d.csv");
    FILE *f = fopen(csv, "w");
    cr_assert_not_null(f);
    fputs("a,b,y\n1,2,3\n4,5,6\n7,8,9\n10,11,12\n", f);
    fclose(f);
    char src[2048];
    snprintf(src, sizeof src,
             "config { hdr = true; col = 2; sc = 0.5; rows = 3 }\n"
             "data d = csv(\"%s\", header = hdr, y = col)\n"
             "data r = [x = randn([rows, 2], seed = 1) * sc]\n" /* computed at start-up: sc stays
                                                                   runtime */
             "main {\n"
             "  log s = sum(d.x) + sum(r.x)\n"
             "}\n",
             csv);
    P p = compile(src);
    mark(&p);
    EXPECT_RUNTIME(p.m, "hdr", false);
    EXPECT_RUNTIME(p.m, "col", false);
    EXPECT_RUNTIME(p.m, "rows", false);
    EXPECT_RUNTIME(p.m, "sc", true);
    release(&p);
}

Test(config_slots, index_and_shape_bake_value_does_not) {
    P p = compile("config { m = 3; lr = 0.5 }\n"
                  "main {\n"
                  "  x = ones([m])\n"
                  "  y = x[m - 1] * lr\n"
                  "  log s = y\n"
                  "}\n");
    mark(&p);
    EXPECT_RUNTIME(p.m, "m", false);
    EXPECT_RUNTIME(p.m, "lr", true);
    release(&p);
}

/* ---- changing a slot is recompiling ---------------------------------------------------- */

static const char *LOOP =
    "config { n = 16; d = 4; steps = 25; lr = 0.1; decay = 0.9; k = 3; flag = true }\n"
    "main {\n"
    "  X = randn([n, d], seed = 1)\n"
    "  y = X @ (iota(d) / d - 0.5) + 0.01 * randn([n], seed = 2)\n"
    "  w = zeros([d])\n"
    "  step = lr\n"
    "  for s in 0..steps {\n"
    "    w -= step * grad(mean((X @ w - y) ** 2), w)\n"
    "    step = step * decay\n"
    "  }\n"
    "  w = w * k + w * flag\n"
    "  save(\"w.npy\", w)\n"
    "  print \"lr\", lr, \"k\", k, \"flag\", flag\n"
    "}\n";

static void set_slot(Module *m, const char *name, double v) {
    const ModuleConfig *c = cfg(m, name);
    cr_assert(c->runtime, "%s is not runtime: %s", name, c->fixed_why ? c->fixed_why : "");
    cr_assert_geq(c->slot, 0);
    rt_tensor_set_f64(m->slots[c->slot].value, 0, v);
}

Test(config_slots, replacing_slot_values_equals_recompiling) {
    const char *path = th_write_program(LOOP);
    P p = compile_at(path, false, NULL, 0);
    mark(&p);
    EXPECT_RUNTIME(p.m, "lr", true);
    EXPECT_RUNTIME(p.m, "decay", true);
    EXPECT_RUNTIME(p.m, "k", true);
    EXPECT_RUNTIME(p.m, "flag", true);
    EXPECT_RUNTIME(p.m, "steps", false);
    EXPECT_RUNTIME(p.m, "n", false);
    EXPECT_RUNTIME(p.m, "d", false);
    set_slot(p.m, "lr", 0.05);
    set_slot(p.m, "decay", 0.95);
    set_slot(p.m, "k", 7);
    set_slot(p.m, "flag", 0);
    char o1[600], o2[600];
    out_dir(o1, sizeof o1, "slot");
    out_dir(o2, sizeof o2, "recompiled");
    char *log1 = run_in(p.m, o1, p.d);

    ConfigOverride ov[] = {{"lr", "0.05"}, {"decay", "0.95"}, {"k", "7"}, {"flag", "false"}};
    P q = compile_at(path, false, ov, 4);
    char *log2 = run_in(q.m, o2, q.d);
    cr_expect_str_eq(log1, log2);
    cr_expect(strstr(log1, "lr 0.05 k 7 flag false"), "%s", log1);
    char f1[700], f2[700];
    out_file(f1, sizeof f1, o1, "w.npy");
    out_file(f2, sizeof f2, o2, "w.npy");
    expect_same_file(f1, f2);
    free(log1);
    free(log2);
    release(&q);
    release(&p);
}

static const char *TRAIN = "import optim\n"
                           "config { n = 64; d = 4; steps = 40; lr = 0.05; mom = 0.5; wd = 0.0 }\n"
                           "data X = randn([n, d], seed = 1)\n"
                           "data ds = [x = X, y = X @ (iota(d) / d - 0.5)]\n"
                           "fn model(x: f32[B, d]) -> f32[B] {\n"
                           "  param w: f32[d] = zeros()\n"
                           "  return x @ w\n"
                           "}\n"
                           "train model {\n"
                           "  data = ds\n  batch = 16\n  steps = steps\n"
                           "  loss = mse(model(batch.x), batch.y)\n"
                           "  optimizer = optim.sgd(lr = lr, momentum = mom, weight_decay = wd)\n"
                           "  every 10 { log full = mse(model(ds.x), ds.y) }\n"
                           "}\n";

Test(config_slots, train_optimizer_arguments_are_runtime) {
    const char *path = th_write_program(TRAIN);
    P p = compile_at(path, false, NULL, 0);
    mark(&p);
    EXPECT_RUNTIME(p.m, "lr", true);
    EXPECT_RUNTIME(p.m, "mom", true);
    EXPECT_RUNTIME(p.m, "wd", true);
    EXPECT_RUNTIME(p.m, "steps", false);
    set_slot(p.m, "lr", 0.02);
    set_slot(p.m, "mom", 0.8);
    set_slot(p.m, "wd", 0.001);
    char o1[600], o2[600];
    out_dir(o1, sizeof o1, "train_slot");
    out_dir(o2, sizeof o2, "train_recompiled");
    char *log1 = run_in(p.m, o1, p.d);
    ConfigOverride ov[] = {{"lr", "0.02"}, {"mom", "0.8"}, {"wd", "0.001"}};
    P q = compile_at(path, false, ov, 3);
    char *log2 = run_in(q.m, o2, q.d);
    cr_expect_str_eq(log1, log2);
    char *m1 = metrics_wo_time(o1), *m2 = metrics_wo_time(o2);
    cr_expect_str_eq(m1, m2);
    cr_expect(strstr(m1, "step,full,loss"), "%s", m1);
    free(m1);
    free(m2);
    free(log1);
    free(log2);
    release(&q);
    release(&p);
}

/* ---- the fingerprint ----------------------------------------------------------------- */

Test(config_slots, fingerprint_ignores_config_values_only) {
    const char *path = th_write_program(LOOP);
    P a = compile_at(path, false, NULL, 0);
    ConfigOverride lr[] = {{"lr", "0.123456789"}};
    P b = compile_at(path, false, lr, 1);
    ConfigOverride n[] = {{"n", "17"}};
    P c = compile_at(path, false, n, 1);
    uint64_t fa, fb, fc;
    cr_assert(ir_module_fingerprint(a.m, &fa) && ir_module_fingerprint(b.m, &fb) &&
              ir_module_fingerprint(c.m, &fc));
    cr_expect_eq(fa, fb);
    cr_expect_neq(fa, fc);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ir_module_print(b.m, f);
    fclose(f);
    cr_expect_null(strstr(text, "0.123456789"), "a config value in the printout");
    cr_expect(strstr(text, "config config.lr f64[]"), "%s", text);
    cr_expect(strstr(text, "for $") && strstr(text, "in 0..25"), "%s", text);
    free(text);
    release(&a);
    release(&b);
    release(&c);
}

Test(config_slots, fingerprint_counts_data_bytes) {
    /* same printout, different DATA bytes: two csv files of equal shape */
    char csv1[600], csv2[600];
    out_file(csv1, sizeof csv1, tmp_dir(), "one.csv");
    out_file(csv2, sizeof csv2, tmp_dir(), "two.csv");
    FILE *f = fopen(csv1, "w");
    fputs("1,2\n3,4\n", f);
    fclose(f);
    f = fopen(csv2, "w");
    fputs("1,2\n3,5\n", f);
    fclose(f);
    char src[1400];
    snprintf(src, sizeof src,
             "config { which = \"%s\" }\n"
             "data d = csv(which, header = false, y = 1)\n"
             "main { log s = sum(d.x) }\n",
             csv1);
    const char *path = th_write_program(src);
    P a = compile_at(path, false, NULL, 0);
    ConfigOverride ov[] = {{"which", csv2}};
    P b = compile_at(path, false, ov, 1);
    uint64_t fa, fb;
    cr_assert(ir_module_fingerprint(a.m, &fa) && ir_module_fingerprint(b.m, &fb));
    cr_expect_neq(fa, fb);
    release(&a);
    release(&b);
}

/* ---- same numbers as the literal ----------------------------------------------------- */

static void run_cli(const char *prog, const char *backend, const char *out) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    char *argv[] = {(char *)bin,     "run",   (char *)prog, "--backend",
                    (char *)backend, "--out", (char *)out,  NULL};
    SpawnOptions o = {.timeout_s = 120};
    SpawnResult r;
    cr_assert(th_spawn(argv, &o, &r));
    cr_assert(r.exited && r.code == 0, "dflow run %s failed:\n%s", prog, r.err);
    th_spawn_free(&r);
}

Test(config_slots, slot_value_gives_the_literal_numbers, .timeout = 120) {
    /* random streams come from source locations unless given: give them, so
     * that the two programs differ only in where the numbers come from */
    const char *body =
        "  X = randn([64, 8], seed = 1, stream = 11)\n"
        "  y = X @ (iota(8) / 8 - 0.5) + NOISE * randn([64], seed = 2, stream = 12)\n"
        "  w = zeros([8])\n"
        "  for s in 0..50 {\n"
        "    w -= LR * grad(mean((X @ w - y) ** 2) + WD * sum(w * w), w)\n"
        "  }\n"
        "  save(\"w.npy\", w)\n"
        "  log mse = mean((X @ w - y) ** 2)\n"
        "}\n";
    char lit[2048], via[2048];
    /* the same program twice: numbers written in, and read from config */
    char b1[1024], b2[1024];
    snprintf(b1, sizeof b1, "%s", body);
    snprintf(b2, sizeof b2, "%s", body);
    const char *from[] = {"LR", "NOISE", "WD"}, *lits[] = {"0.1", "0.01", "0.003"},
               *names[] = {"lr", "noise", "wd"};
    for (int k = 0; k < 3; k++) {
        char *at;
        while ((at = strstr(b1, from[k]))) {
            char rest[1024];
            snprintf(rest, sizeof rest, "%s", at + strlen(from[k]));
            snprintf(at, sizeof b1 - (size_t)(at - b1), "%s%s", lits[k], rest);
        }
        while ((at = strstr(b2, from[k]))) {
            char rest[1024];
            snprintf(rest, sizeof rest, "%s", at + strlen(from[k]));
            snprintf(at, sizeof b2 - (size_t)(at - b2), "%s%s", names[k], rest);
        }
    }
    snprintf(lit, sizeof lit, "# no config\nmain {\n%s", b1);
    snprintf(via, sizeof via, "config { lr = 0.1; noise = 0.01; wd = 0.003 }\nmain {\n%s", b2);
    const char *pl = th_write_program(lit), *pv = th_write_program(via);
    P p = compile_at(pv, false, NULL, 0);
    mark(&p);
    EXPECT_RUNTIME(p.m, "lr", true);
    EXPECT_RUNTIME(p.m, "noise", true);
    EXPECT_RUNTIME(p.m, "wd", true);
    release(&p);
    const char *backends[] = {"interp", "cpu"};
    for (int b = 0; b < 2; b++) {
        char tag[64], o1[600], o2[600];
        snprintf(tag, sizeof tag, "lit_%s", backends[b]);
        out_dir(o1, sizeof o1, tag);
        snprintf(tag, sizeof tag, "via_%s", backends[b]);
        out_dir(o2, sizeof o2, tag);
        run_cli(pl, backends[b], o1);
        run_cli(pv, backends[b], o2);
        char f1[700], f2[700];
        out_file(f1, sizeof f1, o1, "w.npy");
        out_file(f2, sizeof f2, o2, "w.npy");
        expect_same_file(f1, f2);
        char *m1 = metrics_wo_time(o1), *m2 = metrics_wo_time(o2);
        cr_expect_str_eq(m1, m2);
        free(m1);
        free(m2);
    }
}
