/* The module executor on hand-built Modules: host loops, branches, break,
 * while, logs into metrics.csv, print, save, the run seed, and training
 * (SGD on a linear model built with the ir.h builders and pass_grad):
 * convergence, the shuffle's determinism and coverage, the `every` cadence,
 * a NaN loss, and Ctrl-C. Also the metrics writer and the progress line.
 * Files go to a fresh temporary folder per test. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir/exec.h"
#include "ir/exec_internal.h"
#include "ir/interp.h"
#include "passes/autodiff.h"
#include "runtime/dataio.h"
#include "runtime/metrics.h"
#include "runtime/progress.h"

/* ---- fixtures ---- */

typedef struct {
    Arena *a;
    SourceSet *s;
    DiagList *d;
    Module *m;
    char dir[256];
    char *log; /* captured log stream */
    size_t loglen;
    FILE *logf;
} T;

static SrcLoc L(int line) {
    SrcLoc l = {1, (uint32_t)line, 1, 1};
    return l;
}

static void t_init(T *t) {
    memset(t, 0, sizeof *t);
    t->a = arena_new();
    t->s = source_set_new(t->a);
    source_add(t->s, "test.dfl", "line1\nline2\nline3\nline4\nline5\n", 30);
    t->d = diag_list_new(t->a, t->s);
    t->m = ir_module_new(t->a, t->d);
    cr_assert_not_null(t->m);
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/dflow_exec_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(t->dir));
    t->logf = open_memstream(&t->log, &t->loglen);
}

static void t_fini(T *t) {
    if (t->logf) fclose(t->logf);
    free(t->log);
    ir_module_free(t->m);
    arena_free(t->a);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", t->dir);
}

static ExecOptions opts(T *t, uint64_t seed, bool write) {
    ExecOptions o = {0};
    o.program = "test.dfl";
    o.seed = seed;
    o.out_dir = write ? t->dir : NULL;
    o.log = t->logf;
    o.runner = ir_interp_runner();
    return o;
}

static bool run(T *t, const ExecOptions *o) {
    bool ok = ir_exec_module(t->m, o);
    fflush(t->logf);
    if (!ok) diag_print_all(t->d, stderr);
    return ok;
}

static bool has_diag(T *t, const char *sub) {
    for (int i = 0; i < t->d->n; i++)
        if (strstr(t->d->items[i]->msg, sub)) return true;
    return false;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    return buf;
}

static char *slurp_out(T *t, const char *name) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", t->dir, name);
    return slurp(p);
}

/* metrics.csv without the time_s column (it varies run to run). */
static void strip_time(char *csv) {
    char *w = csv;
    for (char *line = csv; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *comma = NULL;
        for (size_t i = 0; i < len; i++)
            if (line[i] == ',') comma = line + i;
        size_t keep = comma ? (size_t)(comma - line) : len;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        if (!nl) break;
        line = nl + 1;
    }
    *w = '\0';
}

/* ---- graph building ---- */

typedef struct {
    T *t;
    Graph *g;
    int ins[16], outs[16];
} GB;

static GB gb_new(T *t, const char *name) {
    GB b;
    memset(&b, 0, sizeof b);
    b.t = t;
    b.g = ir_graph_new(t->a, t->d, name);
    return b;
}

static Node *gin(GB *b, int slot) {
    const Slot *s = &b->t->m->slots[slot];
    b->ins[b->g->ninputs] = slot;
    Node *n = ir_input(b->g, s->dtype, s->shape, s->name, L(1));
    cr_assert_not_null(n);
    return n;
}

static void gout(GB *b, Node *n, int slot) {
    cr_assert_not_null(n);
    b->outs[b->g->noutputs] = slot;
    ir_graph_add_output(b->g, n);
}

static GraphCall gb_call(GB *b) {
    GraphCall c;
    c.graph = b->g;
    c.in_slots = arena_alloc(b->t->a, sizeof(int) * 16);
    c.out_slots = arena_alloc(b->t->a, sizeof(int) * 16);
    memcpy(c.in_slots, b->ins, sizeof b->ins);
    memcpy(c.out_slots, b->outs, sizeof b->outs);
    return c;
}

static void emit_run(GB *b, HostBlock *blk) {
    HostStmt *s = ir_host_append(b->t->m, blk, HS_RUN, L(2));
    s->u.run = gb_call(b);
}

static int slot_f32(T *t, const char *name) {
    return ir_module_add_slot(t->m, name, SLOT_VAR, DT_F32, rt_shape_scalar());
}

static Node *cf(GB *b, double v) {
    return ir_scalar(b->g, DT_F32, v, L(1));
}

/* x = v (in block blk) */
static void emit_set(T *t, HostBlock *blk, int slot, double v) {
    GB b = gb_new(t, "set");
    gout(&b, cf(&b, v), slot);
    emit_run(&b, blk);
}

/* x = x + v */
static void emit_add(T *t, HostBlock *blk, int slot, double v) {
    GB b = gb_new(t, "add");
    Node *x = gin(&b, slot);
    gout(&b, ir_binary(b.g, OP_ADD, x, cf(&b, v), L(2)), slot);
    emit_run(&b, blk);
}

static HostStmt *emit_log1(T *t, HostBlock *blk, const char *name, int slot) {
    HostStmt *s = ir_host_append(t->m, blk, HS_LOG, L(3));
    s->u.log.n = 1;
    s->u.log.names = arena_alloc(t->a, sizeof(char *));
    s->u.log.slots = arena_alloc(t->a, sizeof(int));
    s->u.log.names[0] = name;
    s->u.log.slots[0] = slot;
    return s;
}

static HostStmt *emit_for(T *t, HostBlock *blk, int var, int64_t lo, int64_t hi) {
    HostStmt *s = ir_host_append(t->m, blk, HS_FOR, L(4));
    s->u.loop.var_slot = var;
    s->u.loop.lo = lo;
    s->u.loop.hi = hi;
    s->u.loop.lo_slot = s->u.loop.hi_slot = -1;
    return s;
}

/* ---- host program ---- */

Test(exec_host, for_loop_adds_and_logs) {
    T t;
    t_init(&t);
    int x = slot_f32(&t, "x");
    int i = ir_module_add_slot(t.m, "i", SLOT_STEP, DT_I64, rt_shape_scalar());
    emit_set(&t, &t.m->init, x, 0);
    HostStmt *f = emit_for(&t, &t.m->main, i, 0, 5);
    emit_add(&t, &f->u.loop.body, x, 1);
    emit_log1(&t, &t.m->main, "x", x);
    ExecOptions o = opts(&t, 0, true);
    cr_assert(run(&t, &o));
    cr_assert(strstr(t.log, "x = 5\n"), "log: %s", t.log);
    char *csv = slurp_out(&t, "metrics.csv");
    cr_assert_not_null(csv);
    strip_time(csv);
    cr_assert_str_eq(csv, "step,x\n,5\n");
    free(csv);
    t_fini(&t);
}

Test(exec_host, log_in_loop_uses_counter_as_step) {
    T t;
    t_init(&t);
    int x = slot_f32(&t, "x");
    int i = ir_module_add_slot(t.m, "i", SLOT_STEP, DT_I64, rt_shape_scalar());
    emit_set(&t, &t.m->init, x, 0);
    HostStmt *f = emit_for(&t, &t.m->main, i, 2, 5);
    emit_add(&t, &f->u.loop.body, x, 10);
    emit_log1(&t, &f->u.loop.body, "x", x);
    ExecOptions o = opts(&t, 0, true);
    cr_assert(run(&t, &o));
    const char *want = "step 2: x = 10\nstep 3: x = 20\nstep 4: x = 30\ndone: 3 steps in ";
    cr_assert(strncmp(t.log, want, strlen(want)) == 0, "%s", t.log);
    t_fini(&t);
}

/* The counter itself reaches the graphs: sum of i over 0..5 = 10 */
Test(exec_host, loop_counter_slot) {
    T t;
    t_init(&t);
    int x = slot_f32(&t, "x");
    int i = ir_module_add_slot(t.m, "i", SLOT_STEP, DT_I64, rt_shape_scalar());
    emit_set(&t, &t.m->init, x, 0);
    HostStmt *f = emit_for(&t, &t.m->main, i, 0, 5);
    GB b = gb_new(&t, "acc");
    Node *xv = gin(&b, x), *iv = gin(&b, i);
    gout(&b, ir_binary(b.g, OP_ADD, xv, ir_cast(b.g, iv, DT_F32, L(1)), L(1)), x);
    emit_run(&b, &f->u.loop.body);
    emit_log1(&t, &t.m->main, "x", x);
    ExecOptions o = opts(&t, 0, false);
    cr_assert(run(&t, &o));
    cr_assert(strstr(t.log, "x = 10\n"), "%s", t.log);
    t_fini(&t);
}

Test(exec_host, if_and_break) {
    T t;
    t_init(&t);
    int x = slot_f32(&t, "x");
    int c = ir_module_add_slot(t.m, "c", SLOT_VAR, DT_BOOL, rt_shape_scalar());
    int i = ir_module_add_slot(t.m, "i", SLOT_STEP, DT_I64, rt_shape_scalar());
    emit_set(&t, &t.m->init, x, 0);
    HostStmt *f = emit_for(&t, &t.m->main, i, 0, 100);
    emit_add(&t, &f->u.loop.body, x, 1);
    GB b = gb_new(&t, "cmp");
    Node *xv = gin(&b, x);
    gout(&b, ir_binary(b.g, OP_LE, cf(&b, 3), xv, L(1)), c); /* c = x >= 3 */
    emit_run(&b, &f->u.loop.body);
    HostStmt *cond = ir_host_append(t.m, &f->u.loop.body, HS_IF, L(5));
    cond->u.cond.cond_slot = c;
    ir_host_append(t.m, &cond->u.cond.then_b, HS_BREAK, L(5));
    emit_log1(&t, &cond->u.cond.else_b, "below", x);
    emit_log1(&t, &t.m->main, "x", x);
    ExecOptions o = opts(&t, 0, false);
    cr_assert(run(&t, &o));
    cr_assert(strstr(t.log, "step 0: below = 1\nstep 1: below = 2\nx = 3\n"), "%s", t.log);
    t_fini(&t);
}

/* A range of more than 2^63 - 1 iterations is a located error (hi - lo
 * overflowed), and a run-time bound that is not an i64 is one too (its
 * conversion was undefined). The loop would stop at once: the body breaks. */
Test(exec_host, loop_ranges_past_int64_are_errors) {
    T t;
    t_init(&t);
    int i = ir_module_add_slot(t.m, "i", SLOT_STEP, DT_I64, rt_shape_scalar());
    HostStmt *f = emit_for(&t, &t.m->main, i, INT64_MIN, INT64_MAX);
    ir_host_append(t.m, &f->u.loop.body, HS_BREAK, L(5));
    ExecOptions o = opts(&t, 0, false);
    cr_assert_not(ir_exec_module(t.m, &o));
    cr_expect(has_diag(
        &t, "for: the range -9223372036854775808..9223372036854775807 has more than 2^63 - 1"));
    cr_expect_eq(t.d->items[t.d->n - 1]->loc.line, 4);
    t_fini(&t);

    t_init(&t);
    int hi = slot_f32(&t, "hi");
    emit_set(&t, &t.m->init, hi, 1e30);
    f = emit_for(&t, &t.m->main, -1, 0, 0);
    f->u.loop.hi_slot = hi;
    ir_host_append(t.m, &f->u.loop.body, HS_BREAK, L(5));
    o = opts(&t, 0, false);
    cr_assert_not(ir_exec_module(t.m, &o));
    cr_expect(has_diag(&t, "for: the bound 1e+30 is not an integer in the range of i64"));
    t_fini(&t);
}

Test(exec_host, while_loop) {
    T t;
    t_init(&t);
    int x = slot_f32(&t, "x");
    int c = ir_module_add_slot(t.m, "c", SLOT_VAR, DT_BOOL, rt_shape_scalar());
    emit_set(&t, &t.m->init, x, 0);
    HostStmt *w = ir_host_append(t.m, &t.m->main, HS_WHILE, L(4));
    GB b = gb_new(&t, "cond");
    Node *xv = gin(&b, x);
    gout(&b, ir_binary(b.g, OP_LT, xv, cf(&b, 10), L(1)), c);
    w->u.whl.cond = gb_call(&b);
    w->u.whl.cond_slot = c;
    emit_add(&t, &w->u.whl.body, x, 3);
    emit_log1(&t, &t.m->main, "x", x);
    ExecOptions o = opts(&t, 0, false);
    cr_assert(run(&t, &o));
    cr_assert(strstr(t.log, "x = 12\n"), "%s", t.log);
    t_fini(&t);
}

Test(exec_host, read_before_write_is_a_diagnostic) {
    T t;
    t_init(&t);
    int x = slot_f32(&t, "x");
    emit_add(&t, &t.m->main, x, 1);
    ExecOptions o = opts(&t, 0, false);
    cr_assert_not(ir_exec_module(t.m, &o));
    cr_assert(has_diag(&t, "internal: slot x read before it was written"));
    t_fini(&t);
}

Test(exec_host, seed_slot_holds_run_seed) {
    T t;
    t_init(&t);
    int x = slot_f32(&t, "x");
    GB b = gb_new(&t, "s");
    Node *sv = gin(&b, t.m->seed_slot);
    gout(&b, ir_cast(b.g, sv, DT_F32, L(1)), x);
    emit_run(&b, &t.m->main);
    emit_log1(&t, &t.m->main, "s", x);
    ExecOptions o = opts(&t, 1234, true);
    cr_assert(run(&t, &o));
    cr_assert(strstr(t.log, "s = 1234\n"), "%s", t.log);
    char *js = slurp_out(&t, "summary.json");
    cr_assert_not_null(js);
    cr_assert(strstr(js, "\"seed\": 1234"), "%s", js);
    cr_assert(strstr(js, "\"rng\": \"philox4x32-10/v2\""), "%s", js);
    cr_assert(strstr(js, "\"status\": \"completed\""), "%s", js);
    cr_assert(strstr(js, "\"s\": 1234"), "%s", js);
    free(js);
    t_fini(&t);
}

Test(exec_host, log_of_non_scalar_is_an_error) {
    T t;
    t_init(&t);
    int v = ir_module_add_slot(t.m, "v", SLOT_VAR, DT_F32, rt_shape_make(1, (int64_t[]){3}));
    GB b = gb_new(&t, "v");
    gout(&b, ir_const(b.g, DT_F32, rt_shape_make(1, (int64_t[]){3}), 1, L(1)), v);
    emit_run(&b, &t.m->main);
    emit_log1(&t, &t.m->main, "v", v);
    ExecOptions o = opts(&t, 0, false);
    cr_assert_not(ir_exec_module(t.m, &o));
    cr_assert(has_diag(&t, "must be a scalar, got f32[3]"));
    t_fini(&t);
}

Test(exec_host, print_and_save) {
    T t;
    t_init(&t);
    Shape s3 = rt_shape_make(1, (int64_t[]){3});
    int v = ir_module_add_slot(t.m, "v", SLOT_VAR, DT_F32, s3);
    GB b = gb_new(&t, "v");
    gout(&b, ir_binary(b.g, OP_ADD, ir_iota(b.g, DT_F32, s3, 0, L(1)), cf(&b, 0.5), L(1)), v);
    emit_run(&b, &t.m->main);
    HostStmt *p = ir_host_append(t.m, &t.m->main, HS_PRINT, L(3));
    p->u.print.n = 2;
    p->u.print.slots = arena_alloc(t.a, 2 * sizeof(int));
    p->u.print.texts = arena_alloc(t.a, 2 * sizeof(char *));
    p->u.print.texts[0] = "v is";
    p->u.print.slots[0] = -1;
    p->u.print.slots[1] = v;
    HostStmt *sv = ir_host_append(t.m, &t.m->main, HS_SAVE, L(3));
    sv->u.save.path = "sub/v.npy";
    sv->u.save.slot = v;
    ExecOptions o = opts(&t, 0, true);
    cr_assert(run(&t, &o));
    cr_assert(strstr(t.log, "v is [0.5, 1.5, 2.5]\n"), "%s", t.log);
    char path[400], err[256];
    snprintf(path, sizeof path, "%s/sub/v.npy", t.dir);
    RtTensor *r = rt_npy_read(path, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(rt_shape_numel(&r->shape), 3);
    cr_assert_float_eq(rt_tensor_get_f64(r, 2), 2.5, 1e-6);
    rt_tensor_free(r);
    t_fini(&t);
}

/* ---- training ---- */

/* A linear model y = X w on N rows of 2 features, SGD on the mean squared
 * error, written with the builders and pass_grad. y column = row index
 * encodings chosen by the caller. */
typedef struct {
    int X, Y, bx, by, W, t, loss, sig, b;
    TrainSpec *ts;
    HostStmt *st;
} Lin;

static Lin build_linreg(T *t, int64_t rows, int64_t batch, int64_t steps, bool shuffle, double lr,
                        const double *yvals) {
    Lin l;
    Shape sx = rt_shape_make(2, (int64_t[]){rows, 2}), sy = rt_shape_make(1, (int64_t[]){rows});
    Shape sbx = rt_shape_make(2, (int64_t[]){batch, 2}), sby = rt_shape_make(1, (int64_t[]){batch});
    Shape sw = rt_shape_make(2, (int64_t[]){2, 1});
    l.X = ir_module_add_slot(t->m, "d.x", SLOT_DATA, DT_F32, sx);
    l.Y = ir_module_add_slot(t->m, "d.y", SLOT_DATA, DT_F32, sy);
    RtTensor *X = rt_tensor_new(DT_F32, sx), *Y = rt_tensor_new(DT_F32, sy);
    for (int64_t r = 0; r < rows; r++) {
        double a = (double)(r % 7) / 7.0 - 0.4, c = (double)((r * 3) % 5) / 5.0 - 0.5;
        rt_tensor_set_f64(X, 2 * r, a);
        rt_tensor_set_f64(X, 2 * r + 1, c);
        rt_tensor_set_f64(Y, r, yvals ? yvals[r] : 2.0 * a - 3.0 * c);
    }
    t->m->slots[l.X].value = X;
    t->m->slots[l.Y].value = Y;
    l.bx = ir_module_add_slot(t->m, "batch.x", SLOT_VAR, DT_F32, sbx);
    l.by = ir_module_add_slot(t->m, "batch.y", SLOT_VAR, DT_F32, sby);
    l.W = ir_module_add_slot(t->m, "lin.W", SLOT_PARAM, DT_F32, sw);
    l.t = ir_module_add_slot(t->m, "t", SLOT_STEP, DT_I64, rt_shape_scalar());
    l.loss = slot_f32(t, "loss");
    l.sig = slot_f32(t, "sig");
    l.b = slot_f32(t, "b0");

    GB ib = gb_new(t, "init");
    gout(&ib, ir_const(ib.g, DT_F32, sw, 0, L(1)), l.W);
    emit_run(&ib, &t->m->init);

    GB sb = gb_new(t, "step");
    Node *x = gin(&sb, l.bx), *y = gin(&sb, l.by), *w = gin(&sb, l.W);
    Node *pred = ir_reshape(sb.g, ir_matmul(sb.g, x, w, L(2)), sby, L(2));
    Node *loss = ir_mse(sb.g, pred, y, L(2));
    cr_assert_not_null(loss);
    Node *g = NULL;
    cr_assert(pass_grad(sb.g, loss, NULL, &w, 1, &g));
    Node *w2 = ir_binary(sb.g, OP_SUB, w, ir_binary(sb.g, OP_MUL, cf(&sb, lr), g, L(2)), L(2));
    gout(&sb, w2, l.W);
    gout(&sb, loss, l.loss);

    HostStmt *st = ir_host_append(t->m, &t->m->main, HS_TRAIN, L(5));
    TrainSpec *ts = arena_alloc(t->a, sizeof *ts);
    ts->name = "lin";
    ts->nfields = 2;
    ts->field_names = arena_alloc(t->a, 2 * sizeof(char *));
    ts->field_names[0] = "x";
    ts->field_names[1] = "y";
    ts->data_slots = arena_alloc(t->a, 2 * sizeof(int));
    ts->batch_slots = arena_alloc(t->a, 2 * sizeof(int));
    ts->data_slots[0] = l.X;
    ts->data_slots[1] = l.Y;
    ts->batch_slots[0] = l.bx;
    ts->batch_slots[1] = l.by;
    ts->rows = rows;
    ts->batch = batch;
    ts->steps = steps;
    ts->shuffle = shuffle;
    ts->t_slot = l.t;
    ts->step = gb_call(&sb);
    ts->loss_slot = l.loss;
    st->u.train = ts;
    l.ts = ts;
    l.st = st;
    return l;
}

static void add_every(T *t, Lin *l, int64_t every, HostBlock **body) {
    TrainSpec *ts = l->ts;
    TrainEvery *ev = arena_alloc(t->a, sizeof *ev * (size_t)(ts->nevals + 1));
    if (ts->nevals) memcpy(ev, ts->evals, sizeof *ev * (size_t)ts->nevals);
    ev[ts->nevals].every = every;
    ts->evals = ev;
    *body = &ev[ts->nevals].body;
    ts->nevals++;
}

/* every N { sig = sum(batch.y) ; log sig } */
static void add_batch_signature(T *t, Lin *l, int64_t every, const char *name) {
    HostBlock *body;
    add_every(t, l, every, &body);
    GB b = gb_new(t, "sig");
    Node *y = gin(&b, l->by);
    gout(&b, ir_reduce(b.g, OP_SUM, y, 1u, L(3)), l->sig);
    emit_run(&b, body);
    emit_log1(t, body, name, l->sig);
}

Test(exec_train, sgd_linear_regression_converges) {
    T t;
    t_init(&t);
    Lin l = build_linreg(&t, 64, 16, 400, true, 0.5, NULL);
    ExecOptions o = opts(&t, 3, true);
    cr_assert(run(&t, &o));
    char *csv = slurp_out(&t, "metrics.csv");
    cr_assert_not_null(csv);
    cr_assert(strncmp(csv, "step,loss,time_s\n", 17) == 0, "%s", csv);
    /* the loss is recorded about 200 times: every 2 steps for 400 steps */
    int rows = 0;
    for (char *p = csv; *p; p++)
        rows += *p == '\n';
    cr_assert_eq(rows, 1 + 200, "%d rows", rows);
    free(csv);
    char *js = slurp_out(&t, "summary.json");
    cr_assert(strstr(js, "\"steps\": 400"), "%s", js);
    char *lp = strstr(js, "\"loss\": ");
    cr_assert_not_null(lp, "%s", js);
    double final = atof(lp + 8);
    cr_assert_lt(final, 1e-3, "final loss %g", final);
    free(js);
    cr_assert(strstr(t.log, "done: 400 steps"), "%s", t.log);
    (void)l;
    t_fini(&t);
}

/* Rows hold powers of two, so sum(batch.y) is the set of rows in the batch. */
static char *batch_trace(uint64_t seed, bool shuffle, int64_t steps) {
    T t;
    t_init(&t);
    double y[8];
    for (int r = 0; r < 8; r++)
        y[r] = (double)(1 << r);
    Lin l = build_linreg(&t, 8, 4, steps, shuffle, 0.0, y);
    add_batch_signature(&t, &l, 1, "rows");
    ExecOptions o = opts(&t, seed, false);
    cr_assert(run(&t, &o));
    char *s = strdup(t.log);
    char *done = strstr(s, "done:"); /* the summary line has timings */
    if (done) *done = '\0';
    t_fini(&t);
    return s;
}

static int trace_value(const char *trace, int step) {
    char key[32];
    snprintf(key, sizeof key, "step %d: rows = ", step);
    const char *p = strstr(trace, key);
    cr_assert_not_null(p, "no %s in %s", key, trace);
    return atoi(p + strlen(key));
}

Test(exec_train, shuffle_is_deterministic_per_seed) {
    char *a = batch_trace(7, true, 8), *b = batch_trace(7, true, 8), *c = batch_trace(8, true, 8);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c);
    /* each epoch (2 steps of 4 rows) visits every row exactly once */
    for (int e = 0; e < 4; e++) {
        int m1 = trace_value(a, 2 * e + 1), m2 = trace_value(a, 2 * e + 2);
        cr_assert_eq(m1 & m2, 0, "epoch %d: %x %x", e, m1, m2);
        cr_assert_eq(m1 | m2, 255, "epoch %d: %x %x", e, m1, m2);
        cr_assert_eq(__builtin_popcount((unsigned)m1), 4);
    }
    /* epochs differ from each other (with overwhelming probability) */
    cr_assert(trace_value(a, 1) != trace_value(a, 3) || trace_value(a, 3) != trace_value(a, 5));
    free(a);
    free(b);
    free(c);
}

Test(exec_train, no_shuffle_takes_rows_in_order) {
    char *a = batch_trace(7, false, 4);
    cr_assert_eq(trace_value(a, 1), 0x0f);
    cr_assert_eq(trace_value(a, 2), 0xf0);
    cr_assert_eq(trace_value(a, 3), 0x0f);
    free(a);
}

Test(exec_train, partial_last_batch_is_skipped) {
    T t;
    t_init(&t);
    double y[10];
    for (int r = 0; r < 10; r++)
        y[r] = (double)(1 << r);
    Lin l = build_linreg(&t, 10, 4, 4, false, 0.0, y);
    add_batch_signature(&t, &l, 1, "rows");
    ExecOptions o = opts(&t, 0, false);
    cr_assert(run(&t, &o));
    /* 10 rows, batch 4: two batches per epoch; rows 8, 9 never used in order */
    cr_assert_eq(trace_value(t.log, 1), 0x00f);
    cr_assert_eq(trace_value(t.log, 2), 0x0f0);
    cr_assert_eq(trace_value(t.log, 3), 0x00f);
    t_fini(&t);
}

/* A negative step count (a wrapped `steps x epochs`, or a bad program
 * image) is an error, never a run that trains nothing and succeeds. */
Test(exec_train, negative_steps_is_an_error) {
    T t;
    t_init(&t);
    double y[8] = {0};
    build_linreg(&t, 8, 2, -4, false, 0.1, y);
    ExecOptions o = opts(&t, 0, false);
    cr_assert_not(ir_exec_module(t.m, &o), "a train of -4 steps ran and reported success");
    cr_expect(has_diag(&t, "negative step count -4"));
    t_fini(&t);
}

Test(exec_shuffle, is_a_permutation_and_depends_on_inputs) {
    int64_t p[1000], q[1000];
    bool seen[1000] = {0};
    exec_shuffle(p, 1000, 42, 7, 0);
    for (int i = 0; i < 1000; i++) {
        cr_assert(p[i] >= 0 && p[i] < 1000);
        cr_assert_not(seen[p[i]]);
        seen[p[i]] = true;
    }
    exec_shuffle(q, 1000, 42, 7, 0);
    cr_assert_eq(memcmp(p, q, sizeof p), 0);
    exec_shuffle(q, 1000, 42, 7, 1);
    cr_assert_neq(memcmp(p, q, sizeof p), 0);
    exec_shuffle(q, 1000, 43, 7, 0);
    cr_assert_neq(memcmp(p, q, sizeof p), 0);
    exec_shuffle(q, 1000, 42, 8, 0);
    cr_assert_neq(memcmp(p, q, sizeof p), 0);
}

Test(exec_train, every_cadence_and_rows) {
    T t;
    t_init(&t);
    Lin l = build_linreg(&t, 16, 4, 10, true, 0.1, NULL);
    add_batch_signature(&t, &l, 3, "a");
    add_batch_signature(&t, &l, 5, "b");
    ExecOptions o = opts(&t, 0, true);
    cr_assert(run(&t, &o));
    /* rows printed after steps 3, 5, 6, 9, 10 only */
    const char *want[] = {
        "step 3: a = ", "step 5: b = ", "step 6: a = ", "step 9: a = ", "step 10: b = "};
    const char *p = t.log;
    for (int i = 0; i < 5; i++) {
        const char *q = strstr(p, want[i]);
        cr_assert_not_null(q, "missing '%s' in %s", want[i], t.log);
        p = q + 1;
    }
    cr_assert_null(strstr(t.log, "step 4:"), "%s", t.log);
    cr_assert_null(strstr(t.log, "step 1:"), "%s", t.log);
    char *csv = slurp_out(&t, "metrics.csv");
    strip_time(csv);
    /* header: step, names in first-seen order, loss last; one row per step
     * (10 steps: the loss alone is recorded every step) */
    cr_assert(strncmp(csv, "step,a,b,loss\n", 14) == 0, "%s", csv);
    int rows = 0;
    for (char *c = csv; *c; c++)
        rows += *c == '\n';
    cr_assert_eq(rows, 11, "%s", csv);
    cr_assert(strstr(csv, "\n1,,,"), "%s", csv); /* loss only */
    cr_assert(strstr(csv, "\n10,,"), "%s", csv); /* b, no a */
    free(csv);
    t_fini(&t);
}

Test(exec_train, nan_loss_stops_with_diagnostic) {
    T t;
    t_init(&t);
    Lin l = build_linreg(&t, 16, 4, 100, true, 0.1, NULL);
    /* replace the step: loss = sqrt(4 - t) is NaN at t = 5 (the 6th step) */
    GB b = gb_new(&t, "step");
    Node *tv = gin(&b, l.t);
    gin(&b, l.bx);
    Node *v =
        ir_unary(b.g, OP_SQRT,
                 ir_binary(b.g, OP_SUB, cf(&b, 4), ir_cast(b.g, tv, DT_F32, L(1)), L(1)), L(1));
    gout(&b, v, l.loss);
    l.ts->step = gb_call(&b);
    ExecOptions o = opts(&t, 0, true);
    cr_assert_not(ir_exec_module(t.m, &o));
    cr_assert(has_diag(&t, "train lin: loss is nan at step 6 (try a smaller learning rate)"));
    cr_assert_eq(t.d->items[0]->loc.line, 5); /* at the train statement */
    char *js = slurp_out(&t, "summary.json");
    cr_assert(js && strstr(js, "\"status\": \"failed\""), "%s", js);
    free(js);
    t_fini(&t);
}

/* A runner that raises the interrupt flag after a number of graph runs. */
typedef struct {
    int left;
    volatile sig_atomic_t *flag;
} StopCtx;

static bool stopping_run(void *ctx, const Graph *g, RtTensor *const *in, RtTensor **out,
                         DiagList *d) {
    StopCtx *c = ctx;
    if (--c->left == 0) *c->flag = 1;
    return ir_interp_run(g, in, out, d);
}

Test(exec_train, interrupt_stops_cleanly_and_keeps_files) {
    T t;
    t_init(&t);
    build_linreg(&t, 16, 4, 1000, true, 0.1, NULL);
    volatile sig_atomic_t flag = 0;
    StopCtx c = {1 + 20, &flag}; /* the init graph, then 20 steps */
    ExecOptions o = opts(&t, 0, true);
    o.interrupted = &flag;
    o.runner.ctx = &c;
    o.runner.run = stopping_run;
    cr_assert_not(ir_exec_module(t.m, &o));
    cr_assert(has_diag(&t, "interrupted at step 20"));
    cr_assert_eq(t.d->nerrors, 0);
    char *js = slurp_out(&t, "summary.json");
    cr_assert(js && strstr(js, "\"status\": \"interrupted\""), "%s", js);
    cr_assert(strstr(js, "\"steps\": 20"), "%s", js);
    free(js);
    char *csv = slurp_out(&t, "metrics.csv");
    cr_assert(csv && strstr(csv, "\n20,"), "%s", csv);
    free(csv);
    t_fini(&t);
}

Test(exec_train, batch_larger_than_data_is_an_error) {
    T t;
    t_init(&t);
    build_linreg(&t, 8, 4, 10, true, 0.1, NULL);
    t.m->main.items[0]->u.train->batch = 16;
    ExecOptions o = opts(&t, 0, false);
    cr_assert_not(ir_exec_module(t.m, &o));
    cr_assert(has_diag(&t, "batch 16 is larger than the data set (8 rows)"));
    t_fini(&t);
}

/* ---- metrics writer ---- */

Test(metrics, union_of_columns_and_loss_last) {
    T t;
    t_init(&t);
    char err[256], sub[300];
    snprintf(sub, sizeof sub, "%s/a/b", t.dir);
    RtMetrics *m = rt_metrics_new(sub, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    const char *n1[] = {"loss", "acc"};
    double v1[] = {0.5, 0.25};
    cr_assert(rt_metrics_row(m, 10, 2, n1, v1, 1.0, err, sizeof err));
    const char *n2[] = {"err"};
    double v2[] = {NAN};
    cr_assert(rt_metrics_row(m, -1, 1, n2, v2, 2.0, err, sizeof err));
    const char *n3[] = {"step"};
    cr_assert_not(rt_metrics_row(m, 1, 1, n3, v2, 2.0, err, sizeof err));
    cr_assert(strstr(err, "reserved"));
    char path[400];
    snprintf(path, sizeof path, "%s/metrics.csv", sub);
    char *csv = slurp(path);
    cr_assert_str_eq(csv, "step,acc,err,loss,time_s\n10,0.25,,0.5,1.000\n,,nan,,2.000\n");
    free(csv);
    cr_assert_eq(rt_metrics_ncols(m), 5);
    cr_assert_str_eq(rt_metrics_col(m, 3), "loss");
    double v;
    cr_assert(rt_metrics_last(m, "acc", &v) && v == 0.25);
    RtRunSummary s = {"p \"q\".dfl", 5, "philox4x32-10/v2", "interp", "completed", 10, 2.0, 1.0};
    cr_assert(rt_metrics_write_summary(m, &s, err, sizeof err));
    snprintf(path, sizeof path, "%s/summary.json", sub);
    char *js = slurp(path);
    cr_assert(strstr(js, "\"program\": \"p \\\"q\\\".dfl\""), "%s", js);
    cr_assert(strstr(js, "\"err\": null"), "%s", js);
    cr_assert(strstr(js, "\"steps_per_s\": 10"), "%s", js);
    free(js);
    rt_metrics_free(m);
    t_fini(&t);
}

Test(metrics, unwritable_folder_is_an_error) {
    char err[256];
    cr_assert_null(rt_metrics_new("/proc/definitely/not/here", err, sizeof err));
    cr_assert(strstr(err, "cannot create folder"), "%s", err);
}

static void put_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    cr_assert(f && fputs(text, f) >= 0 && fclose(f) == 0, "%s", path);
}

/* A run resuming into a folder reads metrics.csv back: a torn last row (no
 * newline) is cut, rows after the resume step are dropped, the rows kept
 * are the in-memory record (final values), and new rows append to them. */
Test(metrics, resume_cuts_a_torn_row_and_rows_after_the_step) {
    T t;
    t_init(&t);
    char err[256], path[400];
    snprintf(path, sizeof path, "%s/metrics.csv", t.dir);
    put_text(path, "step,acc,\"a,\"\"b\",loss,time_s\n10,0.25,,0.5,1.000\n,,nan,,2.000\n"
                   "20,0.5,3,0.25,3.000\n30,0.7");
    RtMetrics *m = rt_metrics_resume(t.dir, -1, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_assert_eq(rt_metrics_nrows(m), 3);
    cr_assert_str_eq(rt_metrics_col(m, 2), "a,\"b");
    double v;
    cr_assert(rt_metrics_last(m, "loss", &v) && v == 0.25);
    char *csv = slurp(path);
    cr_assert_str_eq(csv, "step,acc,\"a,\"\"b\",loss,time_s\n10,0.25,,0.5,1.000\n,,nan,,2.000\n"
                          "20,0.5,3,0.25,3.000\n");
    free(csv);
    const char *n[] = {"loss"};
    double x[] = {0.125};
    cr_assert(rt_metrics_row(m, 30, 1, n, x, 4.0, err, sizeof err), "%s", err);
    csv = slurp(path);
    cr_assert(strstr(csv, "3.000\n30,,,0.125,4.000\n"), "%s", csv);
    free(csv);
    rt_metrics_free(m);

    /* resuming from a checkpoint at step 10: steps 20 and 30 are redone */
    m = rt_metrics_resume(t.dir, 10, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_assert_eq(rt_metrics_nrows(m), 2, "the step-less row after step 10 stays");
    cr_assert(rt_metrics_last(m, "loss", &v) && v == 0.5);
    csv = slurp(path);
    cr_assert_str_eq(csv, "step,acc,\"a,\"\"b\",loss,time_s\n10,0.25,,0.5,1.000\n,,nan,,2.000\n");
    free(csv);
    rt_metrics_free(m);

    /* a torn header: nothing to keep, the file starts afresh */
    put_text(path, "step,lo");
    m = rt_metrics_resume(t.dir, -1, err, sizeof err);
    cr_assert_not_null(m, "%s", err);
    cr_assert_eq(rt_metrics_nrows(m), 0);
    cr_assert(rt_metrics_row(m, 1, 1, n, x, 1.0, err, sizeof err), "%s", err);
    csv = slurp(path);
    cr_assert_str_eq(csv, "step,loss,time_s\n1,0.125,1.000\n");
    free(csv);
    rt_metrics_free(m);
    t_fini(&t);
}

/* A damaged metrics file is never silently rewritten: the error names the
 * file and line, and the file is left as it was. */
Test(metrics, resume_refuses_a_damaged_file) {
    T t;
    t_init(&t);
    char err[256], path[400];
    snprintf(path, sizeof path, "%s/metrics.csv", t.dir);
    const char *bad[][2] = {
        {"step,loss,time_s\n1,0.5\n2,0.25,1.0\n", "line 2 has 2 cells, the header 3"},
        {"step,loss,time_s\n1,x,1.0\n", "line 2: loss 'x' is not a number"},
        {"step,loss,time_s\n-3,0.5,1.0\n", "line 2: step '-3' is not a step number"},
        {"epoch,loss\n1,2\n", "line 1 is not a metrics header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        put_text(path, bad[i][0]);
        cr_assert_null(rt_metrics_resume(t.dir, -1, err, sizeof err), "%s", bad[i][0]);
        cr_assert(strstr(err, "metrics.csv") && strstr(err, bad[i][1]), "%s", err);
        char *csv = slurp(path);
        cr_assert_str_eq(csv, bad[i][0]);
        free(csv);
    }
    t_fini(&t);
}

/* ---- progress line ---- */

Test(progress, format) {
    char buf[200];
    rt_progress_format(buf, sizeof buf, NULL, 1200, 3000, 0.2134, 812);
    cr_assert_str_eq(buf, "step 1200/3000  loss 0.2134  812 steps/s  ETA 2s");
    rt_progress_format(buf, sizeof buf, "mlp", 5, 0, NAN, 2.5);
    cr_assert_str_eq(buf, "mlp  step 5  2.5 steps/s");
    rt_progress_format(buf, sizeof buf, NULL, 10, 100000, 1.0, 10);
    cr_assert_str_eq(buf, "step 10/100000  loss 1  10 steps/s  ETA 2h46m");
}

Test(progress, disabled_prints_nothing) {
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    RtProgress *p = rt_progress_new(f, false);
    rt_progress_begin(p, "x", 10);
    rt_progress_update(p, 5, 1.0, true);
    rt_progress_end(p);
    rt_progress_free(p);
    fclose(f);
    cr_assert_eq(n, 0);
    free(out);
}

Test(progress, enabled_draws_and_ends_with_newline) {
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    RtProgress *p = rt_progress_new(f, true);
    rt_progress_begin(p, NULL, 10);
    rt_progress_update(p, 5, 1.0, true);
    rt_progress_update(p, 6, 1.0, false); /* throttled: too soon */
    rt_progress_end(p);
    rt_progress_free(p);
    fclose(f);
    cr_assert(strncmp(out, "\rstep 5/10  loss 1", 18) == 0, "%s", out);
    cr_assert_eq(out[n - 1], '\n');
    int draws = 0;
    for (size_t i = 0; i < n; i++)
        draws += out[i] == '\r';
    cr_assert_eq(draws, 2, "%s", out); /* the forced draw and the final one */
    cr_assert(strstr(out, "\rstep 6/10"), "%s", out);
    free(out);
}
