/* Differential tests of the LLVM CPU backend against the interpreter.
 *
 * The main test walks the op table: every op of ops.def appears in at least
 * one graph below (single ops on odd sizes, size-1 axes, scalars and
 * broadcasting, in every dtype the op takes; movement ops both as outputs
 * and fused into a consumer), and each graph's outputs from the JIT must
 * agree with the interpreter's: exactly for integers and bool, within
 * 1e-5 relative per element for float elementwise results, within 1e-4 of
 * the result's norm for reductions and matmuls. Every graph must compile
 * (no interpreter fallback). Then: fused chains (softmax, losses, random
 * perturbations), a gradient graph from pass_grad on a small MLP, Philox
 * words and uniforms bit for bit (JIT-compiled Philox against runtime/rng.c
 * and the known answers of rng.md), the vectorised exp/log/sin/cos bit for
 * bit against runtime/vmath.c, run-time index errors, fallback for f16, and
 * the compile time of an MLP training step (printed, not asserted). Last,
 * the thread pool: every index of a range runs exactly once, and kernels
 * large enough to be split give the same bits on 1, 2 and 3 threads
 * (elementwise work, random numbers, row phases and reductions, each output
 * element of which is computed by one task; matmuls within the tolerance)
 * and agree with the interpreter. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codegen/llvm/llvm_backend.h"
#include "codegen/llvm/llvm_internal.h"
#include "helpers/ir_helpers.h"
#include "ir/interp.h"
#include "ir/ir.h"
#include "passes/autodiff.h"
#include "runtime/rng.h"
#include "runtime/threadpool.h"
#include "runtime/vmath.h"

/* ---- deterministic random numbers (splitmix64) ------------------------------------------ */

static uint64_t rs = 0x1234;

static uint64_t next_u64(void) {
    return th_splitmix64(&rs);
}

static double unif(double lo, double hi) {
    return th_uniform(&rs, lo, hi);
}
static int64_t irand(int64_t lo, int64_t hi) {
    return lo + (int64_t)(next_u64() % (uint64_t)(hi - lo + 1));
}

/* ---- fixture ------------------------------------------------------------------------------ */

static Arena *A;
static DiagList *D;
static GraphRunner R;
static SrcLoc L = {1, 1, 1, 1};
static bool covered[OP_COUNT];
static int ngraphs;

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

TestSuite(llvm, .init = setup, .fini = teardown);

/* ---- random inputs ------------------------------------------------------------------------ */

typedef enum {
    DOM_ANY,  /* floats in [-3, 3]; ints in [-50, 50] */
    DOM_POS,  /* (0.05, 5]; ints in [1, 50] */
    DOM_WIDE, /* floats over many magnitudes, with 0, +-inf and NaN; ints near their limits */
    DOM_TRIG, /* [-100, 100] */
    DOM_EXP,  /* [-110, 95]: overflow, underflow and subnormal results */
    DOM_LOG,  /* 0, subnormals, (0, 1e6], negatives */
    DOM_DIVS, /* ints with many 0 and -1 (divisors) */
    DOM_IDX,  /* ints in [0, imax) */
} Domain;

static double wide_value(void) {
    switch (next_u64() % 10) {
    case 0:
        return 0.0;
    case 1:
        return -0.0;
    case 2:
        return INFINITY;
    case 3:
        return -INFINITY;
    case 4:
        return NAN;
    case 5:
        return unif(-1, 1) * 1e30;
    case 6:
        return unif(-1, 1) * 3e9;
    default:
        return unif(-100, 100);
    }
}

static void fill_value(RtTensor *t, int64_t i, Domain dom, int64_t imax) {
    DType dt = t->dtype;
    bool fl = dt == DT_F32 || dt == DT_F64;
    if (dt == DT_BOOL) {
        rt_tensor_set_i64(t, i, (int64_t)(next_u64() & 1));
        return;
    }
    if (!fl) {
        int64_t v;
        switch (dom) {
        case DOM_POS:
            v = irand(1, 50);
            break;
        case DOM_WIDE: {
            int64_t lim = dt == DT_I32 ? INT32_MAX : INT64_MAX;
            int c = (int)(next_u64() % 4);
            v = c == 0   ? lim
                : c == 1 ? -lim - 1
                : c == 2 ? (int64_t)next_u64() >> (dt == DT_I32 ? 33 : 1)
                         : irand(-9, 9);
            break;
        }
        case DOM_DIVS:
            v = (next_u64() % 3 == 0) ? irand(-1, 0) : irand(-20, 20);
            break;
        case DOM_IDX:
            v = irand(0, imax - 1);
            break;
        default:
            v = irand(-50, 50);
            break;
        }
        rt_tensor_set_i64(t, i, v);
        return;
    }
    double v;
    switch (dom) {
    case DOM_POS:
        v = unif(0.05, 5);
        break;
    case DOM_WIDE:
        v = wide_value();
        break;
    case DOM_TRIG:
        v = unif(-100, 100);
        break;
    case DOM_EXP:
        v = unif(-110, 95);
        break;
    case DOM_LOG: {
        int c = (int)(next_u64() % 8);
        v = c == 0   ? 0.0
            : c == 1 ? -unif(0, 3)
            : c == 2 ? unif(0, 1) * 1e-39
            : c == 3 ? INFINITY
                     : unif(0, 1) * pow(10, unif(-6, 6));
        break;
    }
    default:
        v = unif(-3, 3);
        break;
    }
    rt_tensor_set_f64(t, i, v);
}

static RtTensor *rand_tensor(DType dt, Shape s, Domain dom, int64_t imax) {
    RtTensor *t = rt_tensor_new(dt, s);
    cr_assert_not_null(t);
    int64_t n = rt_shape_numel(&s);
    for (int64_t i = 0; i < n; i++)
        fill_value(t, i, dom, imax);
    return t;
}

/* ---- one graph ---------------------------------------------------------------------------- */

typedef enum { T_EW, T_NORM, T_EXACT } Tol;

typedef struct {
    Graph *g;
    RtTensor *in[16];
    int nin;
    Tol tol;
    char label[160];
} Case;

static Case *case_new(Tol tol, const char *fmt, ...) {
    static Case c;
    memset(&c, 0, sizeof c);
    c.g = ir_graph_new(A, D, "case");
    c.tol = tol;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c.label, sizeof c.label, fmt, ap);
    va_end(ap);
    return &c;
}

static Node *input(Case *c, DType dt, Shape s, Domain dom, int64_t imax) {
    c->in[c->nin++] = rand_tensor(dt, s, dom, imax);
    return ir_input(c->g, dt, s, NULL, L);
}

static bool same_float(double a, double b, double rel, double floor_abs) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= rel * fabs(b) + floor_abs;
}

/* Compares output j of both runs; returns false (after logging) on a mismatch. */
static bool compare(const Case *c, int j, const RtTensor *got, const RtTensor *want) {
    if (got->dtype != want->dtype || !rt_shape_eq(&got->shape, &want->shape)) {
        cr_log_error("%s: output %d has the wrong type", c->label, j);
        return false;
    }
    int64_t n = rt_shape_numel(&want->shape);
    DType dt = want->dtype;
    bool fl = dt == DT_F32 || dt == DT_F64;
    if (!fl || c->tol == T_EXACT) {
        size_t bytes = rt_tensor_bytes(want);
        for (int64_t i = 0; i < n; i++) {
            bool eq = fl ? (rt_tensor_get_f64(got, i) == rt_tensor_get_f64(want, i) ||
                            (isnan(rt_tensor_get_f64(got, i)) && isnan(rt_tensor_get_f64(want, i))))
                         : rt_tensor_get_i64(got, i) == rt_tensor_get_i64(want, i);
            if (!eq) {
                cr_log_error("%s: output %d element %lld: got %.17g, want %.17g", c->label, j,
                             (long long)i, rt_tensor_get_f64(got, i), rt_tensor_get_f64(want, i));
                return false;
            }
        }
        (void)bytes;
        return true;
    }
    double floor_abs = dt == DT_F32 ? 1e-37 : 1e-300;
    if (c->tol == T_EW) {
        for (int64_t i = 0; i < n; i++) {
            double a = rt_tensor_get_f64(got, i), b = rt_tensor_get_f64(want, i);
            if (!same_float(a, b, 1e-5, floor_abs)) {
                cr_log_error("%s: output %d element %lld: got %.9g, want %.9g", c->label, j,
                             (long long)i, a, b);
                return false;
            }
        }
        return true;
    }
    double norm = 0, worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = rt_tensor_get_f64(got, i), b = rt_tensor_get_f64(want, i);
        if (isnan(a) || isnan(b) || isinf(a) || isinf(b)) {
            if (!same_float(a, b, 0, 0)) {
                cr_log_error("%s: output %d element %lld: got %g, want %g", c->label, j,
                             (long long)i, a, b);
                return false;
            }
            continue;
        }
        norm += b * b;
        if (fabs(a - b) > worst) {
            worst = fabs(a - b);
            at = i;
        }
    }
    norm = sqrt(norm);
    if (worst > 1e-4 * norm + floor_abs) {
        cr_log_error("%s: output %d element %lld: off by %g with result norm %g", c->label, j,
                     (long long)at, worst, norm);
        return false;
    }
    return true;
}

/* Runs c on both backends and compares; frees the inputs. */
static bool check(Case *c, Node *out) {
    bool ok = true;
    if (out) ir_graph_add_output(c->g, out);
    if (c->g->noutputs == 0 || !ir_verify(c->g, "test")) {
        cr_log_error("%s: builder or verifier failed: %s", c->label, th_last_diag(D));
        ok = false;
    }
    for (uint32_t i = 0; ok && i < c->g->nnodes; i++)
        covered[c->g->nodes[i]->op] = true;
    RtTensor *want[8] = {0}, *got[8] = {0};
    int no = c->g->noutputs;
    if (ok && !ir_interp_run(c->g, c->in, want, D)) {
        cr_log_error("%s: interpreter failed: %s", c->label, th_last_diag(D));
        ok = false;
    }
    if (ok && !R.run(R.ctx, c->g, c->in, got, D)) {
        cr_log_error("%s: llvm runner failed: %s", c->label, th_last_diag(D));
        ok = false;
    }
    ngraphs++;
    const LlvmGraphInfo *info = llvm_runner_graph(&R, llvm_runner_ngraphs(&R) - 1);
    if (ok && (!info || info->fallback)) {
        cr_log_error("%s: fell back to the interpreter: %s", c->label, info ? info->reason : "?");
        ok = false;
    }
    for (int j = 0; ok && j < no; j++)
        ok = compare(c, j, got[j], want[j]);
    for (int j = 0; j < no && j < 8; j++) {
        rt_tensor_free(want[j]);
        rt_tensor_free(got[j]);
    }
    for (int i = 0; i < c->nin; i++)
        rt_tensor_free(c->in[i]);
    c->nin = 0;
    return ok;
}

#define CHECK(c, out) cr_expect(check((c), (out)), "%s", (c)->label)

/* ---- shapes ------------------------------------------------------------------------------- */

static Shape unary_shapes(int i) {
    switch (i) {
    case 0:
        return th_shape(1, 17);
    case 1:
        return th_shape(2, 3, 5);
    case 2:
        return th_shape(0);
    case 3:
        return th_shape(3, 2, 1, 9);
    case 4:
        return th_shape(1, 1);
    default:
        return th_shape(1, 1031); /* a vector body plus a remainder */
    }
}
enum { NUNARY_SHAPES = 6 };

/* A random shape of rank 0..3 with dims 1..9, and a random shape broadcastable to it. */
static void random_broadcast_pair(Shape *a, Shape *b) {
    a->rank = (int)irand(0, 3);
    for (int i = 0; i < a->rank; i++)
        a->dims[i] = irand(1, 9);
    b->rank = (int)irand(0, a->rank);
    for (int i = 0; i < b->rank; i++)
        b->dims[i] = next_u64() % 3 == 0 ? 1 : a->dims[a->rank - b->rank + i];
    if (next_u64() & 1) {
        Shape t = *a;
        *a = *b;
        *b = t;
    }
}

static const DType num_dtypes[] = {DT_F32, DT_F64, DT_I32, DT_I64};

/* ---- the op walk -------------------------------------------------------------------------- */

static void leaves(void) {
    const double fvals[] = {0.5, -2.75, 3e9, NAN, 1.0}, ivals[] = {0, -3, 7, 2147483647.0, 1},
                 bvals[] = {0, 1};
    const DType dts[] = {DT_F32, DT_F64, DT_I32, DT_I64, DT_BOOL};
    for (int d = 0; d < 5; d++) {
        bool fl = dts[d] == DT_F32 || dts[d] == DT_F64;
        const double *vals = fl ? fvals : dts[d] == DT_BOOL ? bvals : ivals;
        int nv = dts[d] == DT_BOOL ? 2 : 5;
        for (int v = 0; v < nv; v++) {
            Case *c = case_new(T_EXACT, "const %s %g", rt_dtype_name(dts[d]), vals[v]);
            CHECK(c, ir_const(c->g, dts[d], th_shape(2, 3, 4), vals[v], L));
        }
        if (dts[d] == DT_BOOL) continue; /* iota takes numbers only */
        Case *c = case_new(T_EXACT, "iota %s", rt_dtype_name(dts[d]));
        ir_graph_add_output(c->g, ir_iota(c->g, dts[d], th_shape(3, 2, 3, 5), 1, L));
        CHECK(c, ir_iota(c->g, dts[d], th_shape(2, 7, 3), 0, L));
        c = case_new(T_EXACT, "iota fused %s", rt_dtype_name(dts[d]));
        Node *x = input(c, DT_I64, th_shape(2, 4, 6), DOM_ANY, 0);
        CHECK(c, ir_binary(c->g, OP_ADD, x, ir_iota(c->g, DT_I64, th_shape(2, 4, 6), 1, L), L));
    }
    Case *c = case_new(T_EXACT, "input returned");
    Node *x = input(c, DT_F32, th_shape(2, 3, 3), DOM_ANY, 0);
    ir_graph_add_output(c->g, x);
    CHECK(c, ir_unary(c->g, OP_NEG, x, L));
}

static void unary(void) {
    static const struct {
        OpKind op;
        Domain dom;
        bool ints;
    } ops[] = {
        {OP_NEG, DOM_WIDE, true},    {OP_ABS, DOM_WIDE, true},  {OP_SIGN, DOM_WIDE, true},
        {OP_FLOOR, DOM_WIDE, false}, {OP_EXP, DOM_EXP, false},  {OP_EXP, DOM_ANY, false},
        {OP_LOG, DOM_LOG, false},    {OP_SQRT, DOM_LOG, false}, {OP_SIN, DOM_TRIG, false},
        {OP_COS, DOM_TRIG, false},   {OP_SIN, DOM_WIDE, false}, {OP_STOP_GRAD, DOM_ANY, true},
        {OP_ERF, DOM_ANY, false},    {OP_ERF, DOM_WIDE, false},
    };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        for (int d = 0; d < 4; d++) {
            DType dt = num_dtypes[d];
            if (dt >= DT_I32 && !ops[k].ints) continue;
            for (int s = 0; s < NUNARY_SHAPES; s++) {
                Shape sh = unary_shapes(s);
                Case *c = case_new(T_EW, "%s %s s%d", ir_op_name(ops[k].op), rt_dtype_name(dt), s);
                CHECK(c, ir_unary(c->g, ops[k].op, input(c, dt, sh, ops[k].dom, 0), L));
            }
        }
    }
    for (int s = 0; s < NUNARY_SHAPES; s++) {
        Case *c = case_new(T_EXACT, "not s%d", s);
        CHECK(c, ir_unary(c->g, OP_NOT, input(c, DT_BOOL, unary_shapes(s), DOM_ANY, 0), L));
    }
}

static void casts(void) {
    const DType dts[] = {DT_F32, DT_F64, DT_I32, DT_I64, DT_BOOL};
    for (int a = 0; a < 5; a++) {
        for (int b = 0; b < 5; b++) {
            if (a == b) continue;
            Case *c =
                case_new(T_EXACT, "cast %s -> %s", rt_dtype_name(dts[a]), rt_dtype_name(dts[b]));
            CHECK(c, ir_cast(c->g, input(c, dts[a], th_shape(2, 9, 7), DOM_WIDE, 0), dts[b], L));
        }
    }
}

static void binary(void) {
    static const OpKind ops[] = {OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_POW, OP_MAX,
                                 OP_MIN, OP_LT,  OP_LE,  OP_EQ,  OP_NE,  OP_AND, OP_OR};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        OpKind op = ops[k];
        for (int d = 0; d < 4; d++) {
            DType dt = num_dtypes[d];
            bool fl = dt == DT_F32 || dt == DT_F64;
            if (op == OP_POW && !fl) continue;
            for (int s = 0; s < 5; s++) {
                Shape sa, sb;
                if (s == 0)
                    sa = sb = th_shape(1, 1031);
                else
                    random_broadcast_pair(&sa, &sb);
                Domain da = op == OP_POW ? DOM_POS : DOM_ANY;
                Domain db = (op == OP_DIV || op == OP_MOD) && !fl ? DOM_DIVS
                            : op == OP_POW                        ? DOM_ANY
                                                                  : DOM_ANY;
                if (s == 4) da = db = DOM_WIDE; /* NaN, inf, signed zeros, integer limits */
                if (s == 4 && op == OP_POW) da = DOM_WIDE;
                DType bt = (op == OP_AND || op == OP_OR) && s == 3 ? DT_BOOL : dt;
                Case *c = case_new(T_EW, "%s %s s%d", ir_op_name(op), rt_dtype_name(dt), s);
                Node *x = input(c, dt, sa, da, 0), *y = input(c, bt, sb, db, 0);
                CHECK(c, ir_binary(c->g, op, x, y, L));
            }
        }
    }
    /* integer division corner: INT_MIN / -1 wraps */
    Case *c = case_new(T_EXACT, "i32 min / -1");
    Node *x = ir_const(c->g, DT_I32, th_shape(1, 3), -2147483648.0, L);
    Node *m = ir_binary(c->g, OP_DIV,
                        ir_binary(c->g, OP_ADD, x, input(c, DT_I32, th_shape(1, 3), DOM_IDX, 1), L),
                        ir_const(c->g, DT_I32, th_shape(1, 3), -1, L), L);
    CHECK(c, m);
    for (int s = 0; s < 5; s++) {
        Shape sa, sb;
        random_broadcast_pair(&sa, &sb);
        c = case_new(T_EW, "where s%d", s);
        Node *cond = input(c, DT_BOOL, sa, DOM_ANY, 0);
        CHECK(c, ir_where(c->g, cond, input(c, DT_F32, sb, DOM_ANY, 0),
                          input(c, DT_F32, sa, DOM_ANY, 0), L));
    }
    c = case_new(T_EW, "where i64 with float condition");
    Node *fc = ir_binary(c->g, OP_LT, input(c, DT_F64, th_shape(2, 5, 3), DOM_ANY, 0),
                         ir_scalar(c->g, DT_F64, 0, L), L);
    CHECK(c, ir_where(c->g, fc, input(c, DT_I64, th_shape(1, 3), DOM_ANY, 0),
                      input(c, DT_I64, th_shape(2, 5, 3), DOM_ANY, 0), L));
}

static void reductions(void) {
    static const OpKind ops[] = {OP_SUM, OP_REDUCE_MAX, OP_REDUCE_MIN};
    static const uint32_t masks[] = {0x1, 0x2, 0x4, 0x3, 0x5, 0x6, 0x7, 0x0};
    for (size_t k = 0; k < 3; k++) {
        for (int d = 0; d < 4; d++) {
            for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++) {
                Case *c = case_new(T_NORM, "%s %s axes=0x%x", ir_op_name(ops[k]),
                                   rt_dtype_name(num_dtypes[d]), masks[m]);
                Node *x = input(c, num_dtypes[d], th_shape(3, 5, 1, 13), DOM_ANY, 0);
                CHECK(c, ir_reduce(c->g, ops[k], x, masks[m], L));
            }
            Case *c = case_new(T_NORM, "%s %s long row", ir_op_name(ops[k]),
                               rt_dtype_name(num_dtypes[d]));
            CHECK(c, ir_reduce(c->g, ops[k],
                               input(c, num_dtypes[d], th_shape(2, 3, 1037), DOM_ANY, 0), 0x2, L));
            c = case_new(T_NORM, "%s %s of a scalar", ir_op_name(ops[k]),
                         rt_dtype_name(num_dtypes[d]));
            CHECK(c,
                  ir_reduce(c->g, ops[k], input(c, num_dtypes[d], th_shape(0), DOM_ANY, 0), 0, L));
        }
        Case *c = case_new(T_NORM, "%s with NaN and inf", ir_op_name(ops[k]));
        CHECK(c, ir_reduce(c->g, ops[k], input(c, DT_F32, th_shape(2, 6, 7), DOM_WIDE, 0), 0x2, L));
        c = case_new(T_NORM, "%s with NaN and inf, columns", ir_op_name(ops[k]));
        CHECK(c, ir_reduce(c->g, ops[k], input(c, DT_F64, th_shape(2, 6, 7), DOM_WIDE, 0), 0x1, L));
        c = case_new(T_EXACT, "%s bool", ir_op_name(ops[k]));
        CHECK(c, ir_reduce(c->g, ops[k], input(c, DT_BOOL, th_shape(2, 6, 7), DOM_ANY, 0), 0x2, L));
        c = case_new(T_NORM, "%s over an empty axis", ir_op_name(ops[k]));
        CHECK(c, ir_reduce(c->g, ops[k], input(c, DT_F32, th_shape(2, 4, 0), DOM_ANY, 0), 0x2, L));
    }
    for (int ax = 0; ax < 3; ax++) {
        for (int d = 0; d < 4; d++) {
            Case *c = case_new(T_EXACT, "argmax %s axis %d", rt_dtype_name(num_dtypes[d]), ax);
            CHECK(c, ir_reduce(c->g, OP_ARGMAX,
                               input(c, num_dtypes[d], th_shape(3, 4, 1, 9), DOM_ANY, 0), 1u << ax,
                               L));
        }
        Case *c = case_new(T_EXACT, "argmax with NaN axis %d", ax);
        CHECK(c, ir_reduce(c->g, OP_ARGMAX, input(c, DT_F32, th_shape(3, 4, 5, 9), DOM_WIDE, 0),
                           1u << ax, L));
    }
    Case *c = case_new(T_EXACT, "argmax of ties");
    CHECK(c, ir_reduce(c->g, OP_ARGMAX, ir_const(c->g, DT_F32, th_shape(2, 3, 4), 1, L), 0x2, L));
}

/* Each movement op twice: as the graph's output (a copy kernel), and read
 * through by a consumer (index arithmetic inside an elementwise kernel). */
static void movement_case(const char *what, Node *(*make)(Graph *, Node *), Shape in, DType dt) {
    Case *c = case_new(T_EW, "%s %s as output", what, rt_dtype_name(dt));
    CHECK(c, make(c->g, input(c, dt, in, DOM_ANY, 0)));
    c = case_new(T_EW, "%s %s fused", what, rt_dtype_name(dt));
    Node *x = input(c, dt, in, DOM_ANY, 0);
    Node *y = ir_binary(c->g, OP_MUL, x, ir_scalar(c->g, dt, 3, L), L); /* fused producer */
    Node *m = make(c->g, y);
    CHECK(c, m ? ir_binary(c->g, OP_ADD, m, ir_scalar(c->g, m->dtype, 1, L), L) : NULL);
}

static Node *mk_reshape(Graph *g, Node *a) {
    return ir_reshape(g, a, th_shape(3, 5, 3, 2), L);
}
static Node *mk_unsqueeze(Graph *g, Node *a) {
    return ir_reshape(g, a, th_shape(4, 1, 6, 1, 5), L);
}
static Node *mk_permute(Graph *g, Node *a) {
    return ir_permute(g, a, (int[]){2, 0, 1}, L);
}
static Node *mk_broadcast(Graph *g, Node *a) {
    return ir_broadcast(g, a, th_shape(3, 4, 6, 5), L);
}
static Node *mk_slice(Graph *g, Node *a) {
    return ir_slice(g, a, (int64_t[]){1, 0, 2}, (int64_t[]){6, 5, 5}, (int64_t[]){2, 3, 1}, L);
}
static Node *mk_pad(Graph *g, Node *a) {
    double v = a->dtype == DT_F32 || a->dtype == DT_F64 ? -1.5 : -2;
    return ir_pad(g, a, (int64_t[]){1, 0, 2}, (int64_t[]){2, 3, 0}, v, L);
}
static Node *mk_concat(Graph *g, Node *a) {
    Node *b = ir_unary(g, OP_NEG, a, L);
    Node *xs[3] = {a, b, a};
    return ir_concat(g, xs, 3, 1, L);
}

static void movement(void) {
    for (int d = 0; d < 4; d++) {
        DType dt = num_dtypes[d];
        movement_case("reshape", mk_reshape, th_shape(3, 6, 1, 5), dt);
        movement_case("unsqueeze", mk_unsqueeze, th_shape(2, 6, 5), dt);
        movement_case("permute", mk_permute, th_shape(3, 6, 1, 5), dt);
        movement_case("broadcast", mk_broadcast, th_shape(3, 1, 6, 1), dt);
        movement_case("slice", mk_slice, th_shape(3, 7, 5, 6), dt);
        movement_case("pad", mk_pad, th_shape(3, 4, 5, 6), dt);
        movement_case("concat", mk_concat, th_shape(3, 2, 3, 4), dt);
    }
    /* chains of remaps: a transposed slice of a broadcast, reshaped */
    Case *c = case_new(T_EW, "remap chain");
    Node *x = input(c, DT_F32, th_shape(2, 7, 1), DOM_ANY, 0);
    Node *b = ir_broadcast(c->g, x, th_shape(3, 4, 7, 6), L);
    Node *s =
        ir_slice(c->g, b, (int64_t[]){1, 2, 0}, (int64_t[]){4, 7, 6}, (int64_t[]){1, 2, 2}, L);
    Node *p = ir_permute(c->g, s, (int[]){2, 1, 0}, L);
    CHECK(c, ir_unary(c->g, OP_EXP, ir_reshape(c->g, p, th_shape(2, 9, 3), L), L));
    c = case_new(T_EW, "pad of empty and concat with an empty part");
    Node *e = input(c, DT_F32, th_shape(2, 0, 3), DOM_ANY, 0);
    ir_graph_add_output(c->g, ir_pad(c->g, e, (int64_t[]){1, 0}, (int64_t[]){1, 0}, 2.0, L));
    Node *parts[2] = {e, input(c, DT_F32, th_shape(2, 4, 3), DOM_ANY, 0)};
    CHECK(c, ir_concat(c->g, parts, 2, 0, L));
    /* gather and scatter_add with in-range indices */
    for (int d = 0; d < 4; d++) {
        DType dt = num_dtypes[d];
        c = case_new(T_EW, "gather %s", rt_dtype_name(dt));
        Node *data = input(c, dt, th_shape(2, 7, 5), DOM_ANY, 0);
        Node *idx = input(c, d % 2 ? DT_I32 : DT_I64, th_shape(2, 3, 4), DOM_IDX, 7);
        ir_graph_add_output(c->g, ir_gather(c->g, data, idx, L));
        CHECK(c,
              ir_unary(c->g, OP_ABS, ir_gather(c->g, ir_unary(c->g, OP_NEG, data, L), idx, L), L));
        c = case_new(T_NORM, "scatter_add %s", rt_dtype_name(dt));
        Node *upd = input(c, dt, th_shape(3, 3, 4, 5), DOM_ANY, 0);
        Node *ix = input(c, DT_I64, th_shape(2, 3, 4), DOM_IDX, 6);
        ir_graph_add_output(c->g, ir_scatter_add(c->g, upd, ix, 6, L));
        CHECK(c, ir_scatter_add(c->g, ir_binary(c->g, OP_MUL, upd, upd, L), ix, 6, L));
    }
}

/* The order ops: each an unfused kernel calling the runtime routine, read
 * from a fused producer (which the fusion pass must materialise first) and
 * read by a fused consumer; ties from small integers; the composites over them. */
static void order_ops(void) {
    for (int d = 0; d < 4; d++) {
        DType dt = num_dtypes[d];
        for (int ax = 0; ax < 3; ax++) {
            Case *c = case_new(T_EW, "cumsum %s axis %d", rt_dtype_name(dt), ax);
            Node *x = input(c, dt, th_shape(3, 4, 5, 6), DOM_ANY, 0);
            Node *y = ir_binary(c->g, OP_MUL, x, ir_scalar(c->g, dt, 3, L), L);
            ir_graph_add_output(c->g, ir_cumsum(c->g, x, ax, ax == 1, L));
            CHECK(c, ir_unary(c->g, OP_NEG, ir_cumsum(c->g, y, ax, ax != 1, L), L));
            c = case_new(T_EXACT, "argsort %s axis %d with ties", rt_dtype_name(dt), ax);
            Node *t = input(c, DT_I32, th_shape(3, 4, 5, 6), DOM_IDX, 4);
            Node *k =
                ir_cast(c->g, ir_binary(c->g, OP_SUB, t, ir_scalar(c->g, DT_I32, 2, L), L), dt, L);
            ir_graph_add_output(c->g, ir_argsort(c->g, k, ax, false, L));
            ir_graph_add_output(c->g, ir_argsort(c->g, k, ax, true, L));
            CHECK(c, ir_sort(c->g, k, ax, ax == 2, L));
        }
        Case *c = case_new(T_EXACT, "top_k %s", rt_dtype_name(dt));
        Node *x = input(c, dt, th_shape(2, 7, 9), DOM_ANY, 0);
        ir_graph_add_output(c->g, ir_top_k_indices(c->g, x, 3, 1, L));
        ir_graph_add_output(c->g, ir_top_k_indices(c->g, x, 4, 0, L));
        CHECK(c, ir_top_k(c->g, x, 3, 1, L));
    }
    for (int d = 0; d < 2; d++) { /* NaN above every number, -0 equal to 0, infinities */
        Case *c = case_new(T_EXACT, "argsort %s of wide values", rt_dtype_name(num_dtypes[d]));
        Node *w = input(c, num_dtypes[d], th_shape(2, 6, 40), DOM_WIDE, 0);
        ir_graph_add_output(c->g, ir_argsort(c->g, w, 1, true, L));
        CHECK(c, ir_argsort(c->g, w, 1, false, L));
    }
    for (int d = 0; d < 2; d++) {
        Case *c = case_new(T_EW, "quantile and segment_mean %s", rt_dtype_name(num_dtypes[d]));
        Node *x = input(c, num_dtypes[d], th_shape(2, 11, 4), DOM_ANY, 0);
        ir_graph_add_output(c->g, ir_quantile(c->g, x, 0.37, 0, L));
        Node *lb = input(c, DT_I64, th_shape(1, 11), DOM_IDX, 5);
        CHECK(c, ir_segment_mean(c->g, x, lb, 6, L));
    }
    for (int r = 1; r <= 2; r++) {
        Case *c = case_new(T_EXACT, "components rank %d", r);
        Shape s = r == 1 ? th_shape(1, 40) : th_shape(2, 9, 13);
        Node *x = input(c, DT_F32, s, DOM_ANY, 0);
        Node *m = ir_binary(c->g, OP_LT, x, ir_scalar(c->g, DT_F32, 0.5, L), L);
        CHECK(c, ir_binary(c->g, OP_MUL, ir_components(c->g, m, L),
                           ir_scalar_int(c->g, DT_I64, 2, L), L));
    }
}

static void matmuls(void) {
    static const int dims[][3] = {{1, 1, 1},    {3, 5, 7}, {17, 1, 9}, {8, 33, 1},
                                  {64, 48, 80}, {0, 3, 4}, {3, 0, 4}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        int M = dims[i][0], K = dims[i][1], N = dims[i][2];
        for (int d = 0; d < 4; d++) {
            DType dt = num_dtypes[d];
            Case *c = case_new(T_NORM, "matmul %s %dx%dx%d", rt_dtype_name(dt), M, K, N);
            CHECK(c, ir_matmul(c->g, input(c, dt, th_shape(2, M, K), DOM_ANY, 0),
                               input(c, dt, th_shape(2, K, N), DOM_ANY, 0), L));
        }
        /* transposed operands: folded into the BLAS call */
        Case *c = case_new(T_NORM, "matmul a^T b^T %dx%dx%d", M, K, N);
        Node *at =
            ir_permute(c->g, input(c, DT_F32, th_shape(2, K, M), DOM_ANY, 0), (int[]){1, 0}, L);
        Node *bt =
            ir_permute(c->g, input(c, DT_F32, th_shape(2, N, K), DOM_ANY, 0), (int[]){1, 0}, L);
        CHECK(c, ir_matmul(c->g, at, bt, L));
    }
    for (int d = 0; d < 4; d++) {
        DType dt = num_dtypes[d];
        Case *c = case_new(T_NORM, "batched matmul %s", rt_dtype_name(dt));
        CHECK(c, ir_matmul(c->g, input(c, dt, th_shape(4, 2, 3, 5, 4), DOM_ANY, 0),
                           input(c, dt, th_shape(4, 2, 3, 4, 6), DOM_ANY, 0), L));
        c = case_new(T_NORM, "matmul (B,T,C) @ (C,D) %s", rt_dtype_name(dt));
        CHECK(c, ir_matmul(c->g, input(c, dt, th_shape(3, 3, 5, 7), DOM_ANY, 0),
                           input(c, dt, th_shape(2, 7, 4), DOM_ANY, 0), L));
        c = case_new(T_NORM, "matmul (M,K) @ (B,K,N) %s", rt_dtype_name(dt));
        CHECK(c, ir_matmul(c->g, input(c, dt, th_shape(2, 5, 7), DOM_ANY, 0),
                           input(c, dt, th_shape(3, 3, 7, 4), DOM_ANY, 0), L));
    }
    /* operands that are no BLAS view: computed, sliced with a step, broadcast inside the matrix */
    Case *c = case_new(T_NORM, "matmul of computed and strided operands");
    Node *a = ir_unary(c->g, OP_EXP, input(c, DT_F32, th_shape(2, 6, 5), DOM_ANY, 0), L);
    Node *b = ir_slice(c->g, input(c, DT_F32, th_shape(2, 9, 4), DOM_ANY, 0), (int64_t[]){0, 0},
                       (int64_t[]){9, 4}, (int64_t[]){2, 1}, L);
    Node *m1 = ir_matmul(c->g, a, b, L);
    Node *bc =
        ir_broadcast(c->g, input(c, DT_F32, th_shape(2, 4, 1), DOM_ANY, 0), th_shape(2, 4, 3), L);
    CHECK(c, ir_matmul(c->g, m1, bc, L));
    c = case_new(T_NORM, "a difference of two products (one accumulates onto the other)");
    Node *p1 = ir_matmul(c->g, input(c, DT_F32, th_shape(2, 3, 4), DOM_ANY, 0),
                         input(c, DT_F32, th_shape(2, 4, 5), DOM_ANY, 0), L);
    Node *p2 = ir_matmul(c->g, input(c, DT_F32, th_shape(2, 3, 2), DOM_ANY, 0),
                         input(c, DT_F32, th_shape(2, 2, 5), DOM_ANY, 0), L);
    CHECK(c, ir_binary(c->g, OP_SUB, p1, p2, L));
    c = case_new(T_NORM, "batched matmul with a transposed batch");
    Node *x =
        ir_permute(c->g, input(c, DT_F64, th_shape(3, 5, 2, 3), DOM_ANY, 0), (int[]){1, 2, 0}, L);
    CHECK(c, ir_matmul(c->g, x, input(c, DT_F64, th_shape(3, 2, 5, 4), DOM_ANY, 0), L));
}

static void random_ops(void) {
    const uint32_t streams[] = {0xabfe42a2u, 7};
    for (int d = 0; d < 2; d++) {
        DType dt = d ? DT_F64 : DT_F32;
        for (int s = 0; s < 2; s++) {
            for (int off = 0; off < 3; off++) {
                Case *c = case_new(T_EXACT, "rng_uniform %s stream %u offset %d", rt_dtype_name(dt),
                                   streams[s], off);
                Node *seed = ir_scalar(c->g, DT_I64, s ? 42 : 123456789, L);
                Node *o = ir_scalar(c->g, DT_I64, off == 2 ? 4294967290.0 : off,
                                    L); /* crosses a 2^32 block */
                ir_graph_add_output(c->g, ir_rng(c->g, OP_RNG_UNIFORM, dt, th_shape(2, 7, 9), seed,
                                                 o, streams[s], L));
                /* normals: f64 exact (same libm); f32 checked below against the polynomials */
                c->tol = dt == DT_F64 ? T_EXACT : T_EW;
                CHECK(c,
                      ir_rng(c->g, OP_RNG_NORMAL, dt, th_shape(1, 1027), seed, o, streams[s], L));
            }
        }
    }
    Case *c = case_new(T_EXACT, "rng from an input seed, fused into a perturbation");
    Node *seed = input(c, DT_I64, th_shape(0), DOM_ANY, 0),
         *t = input(c, DT_I64, th_shape(0), DOM_IDX, 1000);
    Node *fs = ir_fresh_seed(c->g, seed, t, 3, L);
    ir_graph_add_output(c->g, fs);
    c->tol = T_EW;
    Node *p = input(c, DT_F32, th_shape(2, 33, 5), DOM_ANY, 0);
    Node *z = ir_rng(c->g, OP_RNG_NORMAL, DT_F32, th_shape(2, 33, 5), fs,
                     ir_scalar(c->g, DT_I64, 0, L), 99, L);
    CHECK(c, ir_binary(c->g, OP_ADD, p,
                       ir_binary(c->g, OP_MUL, ir_scalar(c->g, DT_F32, 1e-3, L), z, L), L));
    for (int k = 0; k < 4; k++) {
        c = case_new(T_EXACT, "fresh_seed k=%d", k);
        CHECK(c, ir_fresh_seed(c->g, input(c, DT_I64, th_shape(0), DOM_WIDE, 0),
                               input(c, DT_I64, th_shape(0), DOM_WIDE, 0), (uint32_t)k * 7, L));
    }
}

/* Library calls: the kernel calls the interpreter's C function, so results
 * agree exactly when the operands do; operands made well-conditioned in the
 * graph (x + 10 I, x x^T + I) and results read through tuple projections
 * fused into elementwise consumers. */
static Node *la_eye_plus(Case *c, Node *x, double d) {
    int r = x->shape.rank;
    Node *eye = ir_cast(c->g,
                        ir_binary(c->g, OP_EQ, ir_iota(c->g, DT_I64, x->shape, r - 2, L),
                                  ir_iota(c->g, DT_I64, x->shape, r - 1, L), L),
                        x->dtype, L);
    return ir_binary(c->g, OP_ADD, x,
                     ir_binary(c->g, OP_MUL, eye, ir_scalar(c->g, x->dtype, d, L), L), L);
}

static void la_outputs(Case *c, Node *t, bool consume) {
    Shape res[IR_MAX_RESULTS];
    int n = ir_call_results(t, res);
    for (int i = 0; i < n; i++) {
        Node *v = ir_tuple_get(c->g, t, i, L);
        if (consume)
            v = ir_binary(c->g, OP_ADD, ir_unary(c->g, OP_NEG, v, L),
                          ir_scalar(c->g, v->dtype, 0.5, L), L);
        ir_graph_add_output(c->g, v);
    }
}

static void linalg_calls(void) {
    static const OpKind ops[] = {OP_SOLVE,   OP_CHOLESKY, OP_INV, OP_DET,
                                 OP_SLOGDET, OP_QR,       OP_SVD, OP_EIGH};
    static const int sq[][4] = {{2, 4, 4, 3}, {3, 2, 3, 1}, {2, 1, 1, 1}};
    static const int any[][3] = {{2, 5, 3}, {2, 3, 5}, {3, 2, 4}};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        OpKind op = ops[o];
        bool general = op == OP_QR || op == OP_SVD;
        for (int d = 0; d < 2; d++) {
            DType dt = d ? DT_F64 : DT_F32;
            for (int k = 0; k < 3; k++) {
                Case *c = case_new(T_EXACT, "%s %s case %d", ir_op_name(op), rt_dtype_name(dt), k);
                Shape sa = general ? (any[k][0] == 2 ? th_shape(2, any[k][1], any[k][2])
                                                     : th_shape(3, any[k][1], any[k][2], any[k][2]))
                                   : (sq[k][0] == 2 ? th_shape(2, sq[k][1], sq[k][1])
                                                    : th_shape(3, sq[k][1], sq[k][2], sq[k][2]));
                Node *x = input(c, dt, sa, DOM_ANY, 0);
                Node *a = general ? x : la_eye_plus(c, x, 10);
                if (op == OP_CHOLESKY || op == OP_EIGH) {
                    int r = sa.rank, perm[IR_MAX_RANK];
                    for (int i = 0; i < r; i++)
                        perm[i] = i;
                    perm[r - 2] = r - 1;
                    perm[r - 1] = r - 2;
                    Node *xt = ir_permute(c->g, x, perm, L);
                    a = la_eye_plus(c, ir_binary(c->g, OP_ADD, x, xt, L), 20); /* symmetric */
                }
                Node *src[2] = {a, NULL};
                if (op == OP_SOLVE) {
                    Shape sb = sa;
                    sb.dims[sb.rank - 1] = sq[k][3];
                    src[1] = input(c, dt, sb, DOM_ANY, 0);
                }
                la_outputs(c, ir_call(c->g, op, src, L), k == 1);
                CHECK(c, NULL);
            }
        }
    }
    /* a product of two call results, and a call over a computed, transposed operand */
    Case *c = case_new(T_NORM, "qr then q @ r, solve(inv(a)^T, b)");
    Node *x = input(c, DT_F64, th_shape(2, 6, 4), DOM_ANY, 0);
    Node *t = ir_call(c->g, OP_QR, &x, L);
    ir_graph_add_output(
        c->g, ir_matmul(c->g, ir_tuple_get(c->g, t, 0, L), ir_tuple_get(c->g, t, 1, L), L));
    Node *a = la_eye_plus(c, input(c, DT_F32, th_shape(2, 5, 5), DOM_ANY, 0), 12);
    Node *ai = ir_call(c->g, OP_INV, &a, L);
    Node *src[2] = {ir_permute(c->g, ai, (int[]){1, 0}, L),
                    input(c, DT_F32, th_shape(2, 5, 2), DOM_ANY, 0)};
    CHECK(c, ir_call(c->g, OP_SOLVE, src, L));
}

/* Gradients through every differentiable call, compiled: the backward graph
 * holds calls over transposed and computed operands (materialised by the
 * fusion pass) and projections of packed tuple gradients. */
Test(llvm, linalg_gradients_agree_with_the_interpreter) {
    static const OpKind ops[] = {OP_SOLVE, OP_CHOLESKY, OP_INV, OP_DET, OP_SLOGDET, OP_QR, OP_EIGH};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (int d = 0; d < 2; d++) {
            DType dt = d ? DT_F64 : DT_F32;
            Case *c = case_new(T_NORM, "grad of %s %s", ir_op_name(ops[o]), rt_dtype_name(dt));
            Node *x = input(c, dt, th_shape(3, 2, 4, 4), DOM_ANY, 0);
            Node *xt = ir_permute(c->g, x, (int[]){0, 2, 1}, L);
            Node *a = la_eye_plus(c, ir_binary(c->g, OP_ADD, x, xt, L), 20); /* symmetric, PD */
            Node *src[2] = {a, input(c, dt, th_shape(3, 2, 4, 3), DOM_ANY, 0)};
            Node *t = ir_call(c->g, ops[o], src, L);
            Node *r = input(c, dt, t->shape, DOM_ANY, 0);
            Node *y = ir_reduce(c->g, OP_SUM, ir_binary(c->g, OP_MUL, t, r, L), 1, L);
            Node *wrt[2] = {x, src[1]}, *gs[2] = {NULL, NULL};
            cr_assert(pass_grad(c->g, y, NULL, wrt, ops[o] == OP_SOLVE ? 2 : 1, gs), "%s",
                      th_last_diag(D));
            ir_graph_add_output(c->g, gs[0]);
            CHECK(c, ops[o] == OP_SOLVE ? gs[1] : NULL);
        }
    }
}

/* A singular matrix or one that is not positive definite fails the run with
 * the reason at the call's location, on the compiled path as in the
 * interpreter. */
Test(llvm, linalg_failures_are_located_errors) {
    static const OpKind ops[] = {OP_SOLVE, OP_INV, OP_CHOLESKY};
    static const char *const want[] = {
        "solve: matrix is singular (zero pivot U[1,1])",
        "inv: matrix is singular (zero pivot U[1,1])",
        "cholesky: matrix is not positive definite (leading minor 2)"};
    for (size_t o = 0; o < 3; o++) {
        Graph *g = ir_graph_new(A, D, "bad");
        SrcLoc at = {1, 1, 1, 1};
        Node *src[2] = {ir_const(g, DT_F32, th_shape(2, 3, 3), 1.0, at),
                        ir_const(g, DT_F32, th_shape(2, 3, 1), 1.0, at)};
        ir_graph_add_output(g, ir_call(g, ops[o], src, at));
        for (int backend = 0; backend < 2; backend++) {
            RtTensor *out = NULL;
            int before = D->nerrors;
            bool ok = backend ? R.run(R.ctx, g, NULL, &out, D) : ir_interp_run(g, NULL, &out, D);
            cr_expect(!ok && out == NULL, "%s ran", ir_op_name(ops[o]));
            cr_expect_eq(D->nerrors, before + 1);
            cr_expect_str_eq(th_last_diag(D), want[o], "backend %d", backend);
        }
    }
}

Test(llvm, op_table_is_total) {
    for (int op = 0; op < OP_COUNT; op++) {
        cr_expect(llvm_op_table[op].how != LL_MISSING, "no LLVM lowering for %s",
                  ir_op_name((OpKind)op));
        cr_expect(llvm_op_table[op].how != LL_SCALAR || llvm_op_table[op].emit, "%s has no emitter",
                  ir_op_name((OpKind)op));
        if (ir_ops[op].flags & OPF_EW)
            cr_expect(llvm_op_table[op].how == LL_SCALAR, "elementwise %s must be scalar",
                      ir_op_name((OpKind)op));
    }
}

Test(llvm, every_op_agrees_with_the_interpreter) {
    leaves();
    unary();
    casts();
    binary();
    reductions();
    movement();
    order_ops();
    matmuls();
    linalg_calls();
    random_ops();
    for (int op = 0; op < OP_COUNT; op++)
        cr_expect(covered[op], "no differential case for %s", ir_op_name((OpKind)op));
    cr_log_info("%d graphs compared", ngraphs);
}

/* ---- fused chains -----------------------------------------------------------------------------
 */

Test(llvm, fused_chains_agree) {
    for (int s = 0; s < 3; s++) {
        int rows = s == 0 ? 1 : s == 1 ? 7 : 64, cols = s == 0 ? 1 : s == 1 ? 13 : 1000;
        Case *c = case_new(T_NORM, "softmax %dx%d", rows, cols);
        CHECK(c, ir_softmax(c->g, input(c, DT_F32, th_shape(2, rows, cols), DOM_ANY, 0), 1, L));
        c = case_new(T_NORM, "log_softmax axis 0 %dx%d", rows, cols);
        CHECK(c, ir_log_softmax(c->g, input(c, DT_F64, th_shape(2, rows, cols), DOM_ANY, 0), 0, L));
        c = case_new(T_NORM, "cross_entropy %dx%d", rows, cols);
        Node *lg = input(c, DT_F32, th_shape(2, rows, cols), DOM_ANY, 0);
        CHECK(c, ir_cross_entropy(c->g, lg, input(c, DT_I64, th_shape(1, rows), DOM_IDX, cols), L));
    }
    Case *c = case_new(T_EW, "activations");
    Node *x = input(c, DT_F32, th_shape(2, 9, 31), DOM_WIDE, 0);
    ir_graph_add_output(c->g, ir_sigmoid(c->g, x, L));
    ir_graph_add_output(c->g, ir_tanh(c->g, x, L));
    ir_graph_add_output(
        c->g,
        ir_gelu(c->g, ir_binary(c->g, OP_MIN, x, ir_scalar(c->g, DT_F32, 1e3, L), L), false, L));
    ir_graph_add_output(
        c->g,
        ir_gelu(c->g, ir_binary(c->g, OP_MIN, x, ir_scalar(c->g, DT_F32, 1e3, L), L), true, L));
    CHECK(c, ir_relu(c->g, x, L));
    c = case_new(T_NORM, "mse and mean");
    Node *a = input(c, DT_F32, th_shape(3, 4, 5, 6), DOM_ANY, 0),
         *b = input(c, DT_F32, th_shape(1, 6), DOM_ANY, 0);
    ir_graph_add_output(c->g, ir_mean(c->g, a, 0x5, L));
    CHECK(c, ir_mse(c->g, a, b, L));
    c = case_new(T_EW, "a chain of 700 ops and a concat of 70 parts");
    Node *v = input(c, DT_F32, th_shape(2, 3, 5), DOM_ANY, 0), *parts[70];
    for (int i = 0; i < 700; i++)
        v = ir_binary(c->g, i % 3 ? OP_ADD : OP_MUL, v,
                      ir_scalar(c->g, DT_F32, i % 3 ? 0.01 : 0.999, L), L);
    for (int i = 0; i < 70; i++)
        parts[i] = ir_binary(c->g, OP_MUL, v, ir_scalar(c->g, DT_F32, i, L), L);
    CHECK(c, ir_concat(c->g, parts, 70, 1, L));
    c = case_new(T_EW, "long elementwise chain with shared subexpressions");
    Node *p = input(c, DT_F32, th_shape(1, 4099), DOM_POS, 0),
         *q = input(c, DT_F32, th_shape(1, 4099), DOM_ANY, 0);
    Node *e =
        ir_unary(c->g, OP_EXP, ir_binary(c->g, OP_MUL, q, ir_scalar(c->g, DT_F32, 0.5, L), L), L);
    Node *l = ir_unary(c->g, OP_LOG, p, L);
    Node *t =
        ir_binary(c->g, OP_ADD, ir_binary(c->g, OP_MUL, e, l, L), ir_unary(c->g, OP_SQRT, p, L), L);
    ir_graph_add_output(c->g,
                        ir_binary(c->g, OP_DIV, t,
                                  ir_binary(c->g, OP_ADD, e, ir_scalar(c->g, DT_F32, 1, L), L), L));
    CHECK(c, ir_unary(c->g, OP_SIN, ir_binary(c->g, OP_SUB, t, e, L), L));
}

static GraphRunner threads_runner(int n);
static bool bits_equal(const RtTensor *a, const RtTensor *b);

/* ---- row phases ------------------------------------------------------------------------------ */

/* (x - mean) / sqrt(var + eps) * g + b over the last axis: two row phases,
 * the second reading the first. */
static Node *layernorm(Graph *g, Node *x, Node *gain, Node *bias) {
    int r = x->shape.rank;
    uint32_t last = 1u << (r - 1);
    Node *mu = ir_unsqueeze_axes(g, ir_mean(g, x, last, L), last, L);
    Node *d = ir_binary(g, OP_SUB, x, mu, L);
    Node *var = ir_unsqueeze_axes(g, ir_mean(g, ir_binary(g, OP_MUL, d, d, L), last, L), last, L);
    Node *den =
        ir_unary(g, OP_SQRT, ir_binary(g, OP_ADD, var, ir_scalar(g, x->dtype, 1e-5, L), L), L);
    return ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, ir_binary(g, OP_DIV, d, den, L), gain, L),
                     bias, L);
}

/* Softmax, log_softmax, logsumexp, layernorm and cross-entropy as one
 * kernel per row block: odd row lengths (shorter and longer than a vector,
 * 4099 past any unrolling), rows of one element, rank 3, f64, wide values
 * (inf and NaN in a row), a row reduction that is also an output, and
 * axes that are not trailing (no phases: still right). */
Test(llvm, row_phases_agree) {
    static const int64_t shapes[][2] = {{1, 1}, {5, 1}, {7, 13}, {3, 4099}, {64, 1000}, {1, 37}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int64_t rows = shapes[k][0], cols = shapes[k][1];
        for (int d = 0; d < 2; d++) {
            DType dt = d ? DT_F64 : DT_F32;
            Case *c = case_new(T_NORM, "softmax rows %lldx%lld %s", (long long)rows,
                               (long long)cols, rt_dtype_name(dt));
            CHECK(c, ir_softmax(c->g, input(c, dt, th_shape(2, rows, cols), DOM_ANY, 0), 1, L));
            c = case_new(T_NORM, "log_softmax rows %lldx%lld %s", (long long)rows, (long long)cols,
                         rt_dtype_name(dt));
            CHECK(c, ir_log_softmax(c->g, input(c, dt, th_shape(2, rows, cols), DOM_ANY, 0), 1, L));
            c = case_new(T_NORM, "layernorm %lldx%lld %s", (long long)rows, (long long)cols,
                         rt_dtype_name(dt));
            Node *x = input(c, dt, th_shape(2, rows, cols), DOM_ANY, 0);
            CHECK(c, layernorm(c->g, x, input(c, dt, th_shape(1, cols), DOM_ANY, 0),
                               input(c, dt, th_shape(1, cols), DOM_ANY, 0)));
        }
        Case *c = case_new(T_NORM, "logsumexp and cross_entropy %lldx%lld", (long long)rows,
                           (long long)cols);
        Node *lg = input(c, DT_F32, th_shape(2, rows, cols), DOM_ANY, 0);
        ir_graph_add_output(c->g, ir_logsumexp(c->g, lg, 1, L));
        CHECK(c, ir_cross_entropy(c->g, lg, input(c, DT_I64, th_shape(1, rows), DOM_IDX, cols), L));
    }
    Case *c = case_new(T_NORM, "softmax rank 3, last axis");
    CHECK(c, ir_softmax(c->g, input(c, DT_F32, th_shape(3, 2, 3, 17), DOM_ANY, 0), 2, L));
    c = case_new(T_NORM, "softmax rank 3, middle axis");
    CHECK(c, ir_softmax(c->g, input(c, DT_F32, th_shape(3, 2, 9, 17), DOM_ANY, 0), 1, L));
    c = case_new(T_NORM, "softmax over columns");
    CHECK(c, ir_softmax(c->g, input(c, DT_F32, th_shape(2, 33, 17), DOM_ANY, 0), 0, L));
    c = case_new(T_NORM, "softmax with inf and NaN");
    CHECK(c, ir_softmax(c->g, input(c, DT_F32, th_shape(2, 9, 31), DOM_WIDE, 0), 1, L));
    c = case_new(T_NORM, "softmax and its row max, both outputs");
    Node *x = input(c, DT_F32, th_shape(2, 9, 31), DOM_ANY, 0);
    ir_graph_add_output(c->g, ir_reduce(c->g, OP_REDUCE_MAX, x, 2u, L));
    CHECK(c, ir_softmax(c->g, x, 1, L));
    c = case_new(T_NORM, "row sums of a permuted matrix, normalised");
    x = ir_permute(c->g, input(c, DT_F32, th_shape(2, 40, 30), DOM_POS, 0), (int[]){1, 0}, L);
    Node *rs = ir_unsqueeze_axes(c->g, ir_reduce(c->g, OP_SUM, x, 2u, L), 2u, L);
    CHECK(c, ir_binary(c->g, OP_DIV, x, rs, L));
    c = case_new(T_NORM, "a row minimum over two axes, and an integer row sum");
    x = input(c, DT_F32, th_shape(3, 4, 6, 5), DOM_ANY, 0);
    Node *mn = ir_unsqueeze_axes(c->g, ir_reduce(c->g, OP_REDUCE_MIN, x, 6u, L), 6u, L);
    ir_graph_add_output(c->g, ir_binary(c->g, OP_SUB, x, mn, L));
    Node *xi = input(c, DT_I32, th_shape(2, 6, 7), DOM_ANY, 0);
    CHECK(c, ir_binary(c->g, OP_MUL, xi,
                       ir_unsqueeze_axes(c->g, ir_reduce(c->g, OP_SUM, xi, 2u, L), 2u, L), L));
    c = case_new(T_NORM, "a gathered row inside a phase");
    x = input(c, DT_F32, th_shape(2, 6, 11), DOM_ANY, 0);
    Node *gx = ir_gather(c->g, x, input(c, DT_I64, th_shape(1, 8), DOM_IDX, 6), L); /* [8,11] */
    CHECK(c, ir_softmax(c->g, gx, 1, L));
}

/* A product whose only reader adds it to (or subtracts it from) a value of
 * its shape is accumulated onto that value by the BLAS call (beta = 1):
 * biases, x - product, product - x, batched, f64, an empty inner dimension,
 * and a start value that is itself fused work (0 * v + product). */
Test(llvm, products_accumulated_onto_a_start_value_agree) {
    for (int form = 0; form < 4; form++) {
        for (int d = 0; d < 2; d++) {
            DType dt = d ? DT_F64 : DT_F32;
            Case *c = case_new(T_NORM, "start value form %d %s", form, rt_dtype_name(dt));
            Node *a = input(c, dt, th_shape(2, 37, 19), DOM_ANY, 0);
            Node *b = input(c, dt, th_shape(2, 19, 23), DOM_ANY, 0);
            Node *bias = input(c, dt, th_shape(1, 23), DOM_ANY, 0);
            Node *x =
                ir_binary(c->g, OP_ADD, input(c, dt, th_shape(2, 37, 23), DOM_ANY, 0), bias, L);
            Node *p = ir_matmul(c->g, a, b, L);
            Node *y = form == 0   ? ir_binary(c->g, OP_ADD, p, bias, L)
                      : form == 1 ? ir_binary(c->g, OP_ADD, x, p, L)
                      : form == 2 ? ir_binary(c->g, OP_SUB, x, p, L)
                                  : ir_binary(c->g, OP_SUB, p, x, L);
            CHECK(c, ir_unary(c->g, OP_NEG, y, L));
        }
    }
    Case *c = case_new(T_NORM, "batched product onto a start value");
    Node *a = input(c, DT_F32, th_shape(3, 3, 9, 5), DOM_ANY, 0);
    Node *b = input(c, DT_F32, th_shape(3, 3, 5, 7), DOM_ANY, 0);
    CHECK(c, ir_binary(c->g, OP_SUB, input(c, DT_F32, th_shape(3, 3, 9, 7), DOM_ANY, 0),
                       ir_matmul(c->g, a, b, L), L));
    c = case_new(T_NORM, "empty inner dimension onto a start value");
    a = input(c, DT_F32, th_shape(2, 4, 0), DOM_ANY, 0);
    b = input(c, DT_F32, th_shape(2, 0, 6), DOM_ANY, 0);
    CHECK(c, ir_binary(c->g, OP_ADD, ir_matmul(c->g, a, b, L),
                       input(c, DT_F32, th_shape(2, 4, 6), DOM_ANY, 0), L));
    c = case_new(T_NORM, "momentum-free optimizer state: 0 * v + x^T dh");
    Node *xx = input(c, DT_F32, th_shape(2, 16, 30), DOM_ANY, 0);
    Node *dh = input(c, DT_F32, th_shape(2, 16, 12), DOM_ANY, 0);
    Node *v = input(c, DT_F32, th_shape(2, 30, 12), DOM_WIDE, 0); /* inf and NaN: 0 * v */
    Node *g = ir_matmul(c->g, ir_permute(c->g, xx, (int[]){1, 0}, L), dh, L);
    CHECK(c, ir_binary(c->g, OP_ADD, ir_binary(c->g, OP_MUL, ir_scalar(c->g, DT_F32, 0, L), v, L),
                       g, L));
}

/* An input given up by the caller is overwritten in place by a row kernel
 * (each row is read by its phases before any of it is written): the
 * results still agree, at 1, 2 and 3 threads, and bit for bit across them. */
Test(llvm_threads, row_kernels_in_place, .init = setup, .fini = teardown) {
    for (int which = 0; which < 4; which++) {
        Case *c = case_new(T_NORM, "row kernel %d in place", which);
        Graph *g = c->g;
        Shape sh = th_shape(2, 301, 1031); /* past PF_MIN_POINTS: prefetching rows */
        Node *x = input(c, DT_F32, sh, DOM_ANY, 0);
        /* 3: the softmax's exp is not kept in the output, x is read after it */
        Node *y = which == 0   ? ir_softmax(g, x, 1, L)
                  : which == 1 ? ir_log_softmax(g, x, 1, L)
                  : which == 2
                      ? layernorm(g, x, ir_scalar(g, DT_F32, 1.5, L), ir_scalar(g, DT_F32, 0.5, L))
                      : ir_binary(g, OP_ADD, ir_softmax(g, x, 1, L), x, L);
        ir_graph_add_output(g, y);
        cr_assert(ir_verify(g, "test"), "%s", th_last_diag(D));
        RtTensor *want[1] = {0}, *got[4] = {0};
        cr_assert(ir_interp_run(g, c->in, want, D), "%s", th_last_diag(D));
        bool donated[1] = {true};
        for (int t = 1; t <= 3; t++) {
            GraphRunner r = threads_runner(t);
            for (int rep = 0; rep < 2; rep++) { /* the same again, compiled already */
                RtTensor *in = rt_tensor_new(DT_F32, sh), *out[1] = {NULL};
                cr_assert_not_null(in);
                memcpy(in->data, c->in[0]->data, rt_tensor_bytes(in));
                cr_assert(r.run_reuse(r.ctx, g, &in, donated, out, D), "%s", th_last_diag(D));
                cr_assert_eq(out[0], in, "the donated input holds the result");
                if (rep == 1)
                    got[t] = out[0];
                else
                    rt_tensor_free(out[0]);
            }
            const LlvmGraphInfo *info = llvm_runner_graph(&r, 0);
            cr_assert_not(info->fallback, "%s", info->reason);
            cr_assert_eq(info->nkernels, 1, "one kernel");
            cr_assert_eq(info->ninplace, 1, "in place");
            llvm_runner_free(&r);
            cr_expect(compare(c, 0, got[t], want[0]), "%d threads against the interpreter", t);
            if (t > 1) cr_expect(bits_equal(got[t], got[1]), "%d threads differ from 1", t);
        }
        rt_tensor_free(want[0]);
        for (int t = 1; t <= 3; t++)
            rt_tensor_free(got[t]);
        for (int i = 0; i < c->nin; i++)
            rt_tensor_free(c->in[i]);
        c->nin = 0;
    }
}

/* ---- a gradient graph
 * ---------------------------------------------------------------------------- */

/* MLP 784-256-10 (or smaller) with ReLU and softmax cross-entropy; outputs
 * the loss and the SGD-updated parameters (a training step). */
static Graph *mlp_step(Case *c, int batch, int in, int hidden, int classes, bool fill) {
    Graph *g = c->g;
    Node *x = fill ? input(c, DT_F32, th_shape(2, batch, in), DOM_ANY, 0)
                   : ir_input(g, DT_F32, th_shape(2, batch, in), "x", L);
    Node *y = fill ? input(c, DT_I64, th_shape(1, batch), DOM_IDX, classes)
                   : ir_input(g, DT_I64, th_shape(1, batch), "y", L);
    Node *w[4];
    Shape ps[4] = {th_shape(2, in, hidden), th_shape(1, hidden), th_shape(2, hidden, classes),
                   th_shape(1, classes)};
    for (int i = 0; i < 4; i++)
        w[i] = fill ? input(c, DT_F32, ps[i], DOM_ANY, 0) : ir_input(g, DT_F32, ps[i], "p", L);
    if (fill) /* scale the weights down so the logits stay moderate */
        for (int i = 0; i < 4; i++) {
            int64_t n = rt_shape_numel(&ps[i]);
            for (int64_t k = 0; k < n; k++)
                ((float *)c->in[2 + i]->data)[k] *= 0.05f;
        }
    th_mlp_sgd_step(g, x, y, w, L);
    return g;
}

Test(llvm, mlp_gradient_step_agrees) {
    Case *c = case_new(T_NORM, "mlp step 32x50x24x10");
    mlp_step(c, 32, 50, 24, 10, true);
    CHECK(c, NULL);
    c = case_new(T_NORM, "mlp step 1x3x1x2");
    mlp_step(c, 1, 3, 1, 2, true);
    CHECK(c, NULL);
}

Test(llvm, mlp_step_compile_time) {
    Case *c = case_new(T_NORM, "mlp step 128x784x256x10");
    Graph *g = mlp_step(c, 128, 784, 256, 10, true);
    (void)g;
    CHECK(c, NULL);
    const LlvmGraphInfo *info = llvm_runner_graph(&R, llvm_runner_ngraphs(&R) - 1);
    cr_assert_not_null(info);
    printf("llvm: MLP 784-256-10 training step (batch 128): %d kernels, compiled in %.1f ms (O3 "
           "%.1f ms, machine "
           "code %.1f ms)\n",
           info->nkernels, 1e3 * info->compile_s, 1e3 * info->opt_s, 1e3 * info->codegen_s);
    fflush(stdout);
}

/* ---- run-time errors and fallback
 * ------------------------------------------------------------------ */

Test(llvm, gather_index_out_of_range_is_a_diagnostic) {
    Graph *g = ir_graph_new(A, D, "bad");
    Node *data = ir_input(g, DT_F32, th_shape(2, 4, 3), "d", L),
         *idx = ir_input(g, DT_I64, th_shape(1, 5), "i", L);
    ir_graph_add_output(g, ir_gather(g, data, idx, L));
    RtTensor *in[2] = {rand_tensor(DT_F32, th_shape(2, 4, 3), DOM_ANY, 0),
                       rand_tensor(DT_I64, th_shape(1, 5), DOM_IDX, 4)};
    ((int64_t *)in[1]->data)[3] = 4;
    RtTensor *out[1] = {NULL};
    int before = D->nerrors;
    cr_assert_not(R.run(R.ctx, g, in, out, D));
    cr_assert_null(out[0]);
    cr_assert_gt(D->nerrors, before);
    cr_assert(strstr(th_last_diag(D), "out of range"), "message: %s", th_last_diag(D));
    ((int64_t *)in[1]->data)[3] = -1;
    cr_assert_not(R.run(R.ctx, g, in, out, D));
    ((int64_t *)in[1]->data)[3] = 2;
    cr_assert(R.run(R.ctx, g, in, out, D), "%s", th_last_diag(D));
    rt_tensor_free(out[0]);
    cr_assert_eq(llvm_runner_ngraphs(&R), 1, "the graph is compiled once");
    for (int i = 0; i < 2; i++)
        rt_tensor_free(in[i]);
}

Test(llvm, graphs_can_be_interpreted_before_compiling) {
    char err[200] = "";
    LlvmOptions o = {.verbose = false, .log = NULL, .interp_runs = 1, .poison = true};
    GraphRunner lazy = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(lazy.run, "%s", err);
    Graph *g = ir_graph_new(A, D, "g");
    ir_graph_add_output(g, ir_unary(g, OP_EXP, ir_input(g, DT_F32, th_shape(1, 5), "x", L), L));
    RtTensor *in[1] = {rand_tensor(DT_F32, th_shape(1, 5), DOM_ANY, 0)}, *out[1];
    for (int run = 0; run < 3; run++) {
        cr_assert(lazy.run(lazy.ctx, g, in, out, D), "%s", th_last_diag(D));
        rt_tensor_free(out[0]);
        const LlvmGraphInfo *info = llvm_runner_graph(&lazy, 0);
        cr_assert_eq(info->runs, run + 1);
        cr_assert_eq(info->compiled, run >= 1, "run %d", run);
        cr_assert_not(info->fallback);
    }
    cr_assert_eq(llvm_runner_ngraphs(&lazy), 1);
    rt_tensor_free(in[0]);
    llvm_runner_free(&lazy);
}

/* The runner's cache grows as graphs are compiled: a compiled graph must
 * still run, and its info stay readable, after many more graphs joined the
 * cache (a `main` loop with four `if`s compiles more than eight graphs; a
 * pointer into the old cache storage was a use-after-free). */
Test(llvm, graphs_run_after_the_cache_grows) {
    enum { NG = 40 };
    Graph *g[NG];
    RtTensor *in[1] = {rand_tensor(DT_F32, th_shape(1, 7), DOM_ANY, 0)}, *out[1];
    const float *x = in[0]->data;
    for (int i = 0; i < NG; i++) {
        g[i] = ir_graph_new(A, D, "g");
        Node *k = ir_scalar(g[i], DT_F32, (double)(i + 1), L);
        ir_graph_add_output(
            g[i], ir_binary(g[i], OP_MUL, ir_input(g[i], DT_F32, th_shape(1, 7), "x", L), k, L));
    }
    const LlvmGraphInfo *first = NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < NG; i++) {
            cr_assert(R.run(R.ctx, g[i], in, out, D), "graph %d: %s", i, th_last_diag(D));
            const float *y = out[0]->data;
            for (int j = 0; j < 7; j++)
                cr_assert_eq(y[j], x[j] * (float)(i + 1), "pass %d graph %d [%d]", pass, i, j);
            rt_tensor_free(out[0]);
            if (i == 0 && pass == 0) first = llvm_runner_graph(&R, 0);
        }
    }
    cr_assert_eq(llvm_runner_ngraphs(&R), NG);
    cr_assert_eq(first, llvm_runner_graph(&R, 0), "graph info stays where it was");
    cr_assert_eq(first->runs, 2);
    cr_assert_not(first->fallback, "%s", first->reason);
    rt_tensor_free(in[0]);
}

/* --check-numerics: the JIT scans each kernel's output and names the fused
 * op that made the first NaN or Inf, as the interpreter does node by node:
 * here log (line 2) inside one kernel log -> mul -> sum (line 4), and the
 * step the executor set. Without the check the same graph runs. */
Test(llvm, check_numerics_names_the_fused_op_like_the_interpreter) {
    Graph *g = ir_graph_new(A, D, "g");
    SrcLoc l2 = {1, 2, 5, 3}, l3 = {1, 3, 5, 1}, l4 = {1, 4, 5, 3};
    Node *x = ir_input(g, DT_F32, th_shape(2, 4, 6), "x", L);
    Node *lg = ir_unary(g, OP_LOG, x, l2);
    Node *m = ir_binary(g, OP_MUL, lg, ir_scalar(g, DT_F32, 2.0, l3), l3);
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, m, 2u, l4));
    RtTensor *in[1] = {rand_tensor(DT_F32, th_shape(2, 4, 6), DOM_POS, 0)}, *out[1] = {NULL};
    ((float *)in[0]->data)[9] = 0.0f; /* log(0) = -inf at [1,3] */
    NumericsCheck nc = {.step = 7};
    char err[200] = "";
    LlvmOptions o = {.interp_runs = 0, .poison = true, .numerics = &nc};
    GraphRunner r = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(r.run, "%s", err);
    GraphRunner gi = ir_interp_runner_checked(&nc);
    GraphRunner *runners[2] = {&gi, &r};
    for (int k = 0; k < 2; k++) {
        int before = D->n;
        cr_assert_not(runners[k]->run(runners[k]->ctx, g, in, out, D), "runner %d", k);
        cr_assert_null(out[0]);
        cr_assert_eq(D->n, before + 1, "one error");
        const Diag *dg = D->items[D->n - 1];
        cr_expect_eq(dg->loc.line, 2, "runner %d: at the log, got line %u", k, dg->loc.line);
        cr_expect_str_eq(
            dg->msg, "--check-numerics: log produced -inf at element [1,3] of f32[4,6] (step 7)",
            "runner %d", k);
    }
    const LlvmGraphInfo *info = llvm_runner_graph(&r, 0);
    cr_assert_eq(info->nkernels, 1, "log, mul and sum are one kernel");
    /* an input that already holds a NaN: the first op reading it says so */
    ((float *)in[0]->data)[9] = NAN;
    cr_assert_not(r.run(r.ctx, g, in, out, D));
    cr_expect(strstr(th_last_diag(D), "log produced nan at element [1,3] of f32[4,6] (step 7); its "
                                      "operand 1 already held a non-finite value"),
              "%s", th_last_diag(D));
    /* off: the same graph runs and returns the -inf */
    GraphRunner plain = R;
    ((float *)in[0]->data)[9] = 0.0f;
    cr_assert(plain.run(plain.ctx, g, in, out, D), "%s", th_last_diag(D));
    cr_expect(isinf(((float *)out[0]->data)[1]));
    rt_tensor_free(out[0]);
    llvm_runner_free(&r);
    rt_tensor_free(in[0]);
}

Test(llvm, wrong_inputs_are_a_diagnostic) {
    Graph *g = ir_graph_new(A, D, "g");
    ir_graph_add_output(g, ir_unary(g, OP_NEG, ir_input(g, DT_F32, th_shape(1, 3), "x", L), L));
    RtTensor *in[1] = {rand_tensor(DT_F64, th_shape(1, 3), DOM_ANY, 0)}, *out[1];
    cr_assert_not(R.run(R.ctx, g, in, out, D));
    cr_assert(strstr(th_last_diag(D), "expected f32[3]"), "message: %s", th_last_diag(D));
    rt_tensor_free(in[0]);
}

Test(llvm, f16_falls_back_to_the_interpreter) {
    Graph *g = ir_graph_new(A, D, "half");
    ir_graph_add_output(g, ir_input(g, DT_F16, th_shape(1, 3), "x", L));
    RtTensor *in[1] = {rt_tensor_new(DT_F16, th_shape(1, 3))}, *out[1] = {NULL};
    R.run(R.ctx, g, in, out, D); /* the interpreter's answer, whatever it is */
    const LlvmGraphInfo *info = llvm_runner_graph(&R, 0);
    cr_assert_not_null(info);
    cr_assert(info->fallback);
    cr_assert(strstr(info->reason, "f16"), "reason: %s", info->reason);
    rt_tensor_free(out[0]);
    rt_tensor_free(in[0]);
}

/* ---- Philox and the polynomials, bit for bit
 * --------------------------------------------------------- */

/* JIT-compiles `void words(ptr out, i64 seed, i32 stream, i64 first, i64 n)`:
 * out[4 i + w] = word w of block first + i. */
typedef void (*WordsFn)(uint32_t *out, uint64_t seed, uint32_t stream, uint64_t first, int64_t n);
typedef void (*MapFn)(float *out, const float *in, int64_t n);

static LlvmJit J;

static void *jit_function(LlvmCG *cg, const char *name) {
    void *fn = NULL;
    char err[256] = "";
    LLVMDisposeBuilder(cg->b);
    cr_assert(llvm_jit_compile(&J, cg->mod, true, name, &fn, err, sizeof err), "%s", err);
    return fn;
}

static WordsFn build_words(void) {
    LlvmCG cg;
    llvm_cg_init(&cg, llvm_jit_context(&J), "words");
    LLVMTypeRef pt[5] = {cg.ptr, cg.i64, cg.i32, cg.i64, cg.i64};
    LLVMValueRef fn = LLVMAddFunction(cg.mod, "words", LLVMFunctionType(cg.vd, pt, 5, 0));
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(cg.ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg.ctx, fn, "body");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg.ctx, fn, "done");
    LLVMPositionBuilderAtEnd(cg.b, entry);
    LLVMValueRef n = LLVMGetParam(fn, 4);
    LLVMBuildCondBr(cg.b, LLVMBuildICmp(cg.b, LLVMIntSGT, n, LLVMConstInt(cg.i64, 0, 0), ""), body,
                    done);
    LLVMPositionBuilderAtEnd(cg.b, body);
    LLVMValueRef i = LLVMBuildPhi(cg.b, cg.i64, "i"), zero = LLVMConstInt(cg.i64, 0, 0);
    LLVMAddIncoming(i, &zero, &entry, 1);
    LLVMValueRef w[4];
    llvm_philox_block(&cg, LLVMGetParam(fn, 1), LLVMBuildAdd(cg.b, LLVMGetParam(fn, 3), i, ""),
                      LLVMGetParam(fn, 2), w);
    for (int k = 0; k < 4; k++) {
        LLVMValueRef at = LLVMBuildAdd(cg.b, LLVMBuildMul(cg.b, i, LLVMConstInt(cg.i64, 4, 0), ""),
                                       LLVMConstInt(cg.i64, (unsigned)k, 0), "");
        LLVMBuildStore(cg.b, w[k], LLVMBuildGEP2(cg.b, cg.i32, LLVMGetParam(fn, 0), &at, 1, ""));
    }
    LLVMValueRef next = LLVMBuildAdd(cg.b, i, LLVMConstInt(cg.i64, 1, 0), "");
    LLVMAddIncoming(i, &next, &body, 1);
    LLVMBuildCondBr(cg.b, LLVMBuildICmp(cg.b, LLVMIntSLT, next, n, ""), body, done);
    LLVMPositionBuilderAtEnd(cg.b, done);
    LLVMBuildRetVoid(cg.b);
    return (WordsFn)jit_function(&cg, "words");
}

/* JIT-compiles `void name(ptr out, ptr in, i64 n)`: out[i] = f(in[i]), vectorised by O3. */
static MapFn build_map(const char *name, LLVMValueRef (*f)(LlvmCG *, LLVMValueRef)) {
    LlvmCG cg;
    llvm_cg_init(&cg, llvm_jit_context(&J), name);
    LLVMTypeRef pt[3] = {cg.ptr, cg.ptr, cg.i64};
    LLVMValueRef fn = LLVMAddFunction(cg.mod, name, LLVMFunctionType(cg.vd, pt, 3, 0));
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    LLVMAddAttributeAtIndex(fn, 1, LLVMCreateEnumAttribute(cg.ctx, noalias, 0));
    LLVMAddAttributeAtIndex(fn, 2, LLVMCreateEnumAttribute(cg.ctx, noalias, 0));
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(cg.ctx, fn, "entry");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg.ctx, fn, "body");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg.ctx, fn, "done");
    LLVMPositionBuilderAtEnd(cg.b, entry);
    LLVMValueRef n = LLVMGetParam(fn, 2);
    LLVMBuildCondBr(cg.b, LLVMBuildICmp(cg.b, LLVMIntSGT, n, LLVMConstInt(cg.i64, 0, 0), ""), body,
                    done);
    LLVMPositionBuilderAtEnd(cg.b, body);
    LLVMValueRef i = LLVMBuildPhi(cg.b, cg.i64, "i"), zero = LLVMConstInt(cg.i64, 0, 0);
    LLVMAddIncoming(i, &zero, &entry, 1);
    LLVMValueRef x = LLVMBuildLoad2(
        cg.b, cg.f32, LLVMBuildGEP2(cg.b, cg.f32, LLVMGetParam(fn, 1), &i, 1, ""), "");
    LLVMBuildStore(cg.b, f(&cg, x), LLVMBuildGEP2(cg.b, cg.f32, LLVMGetParam(fn, 0), &i, 1, ""));
    LLVMValueRef next = LLVMBuildAdd(cg.b, i, LLVMConstInt(cg.i64, 1, 0), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg.b); /* f may have added blocks */
    LLVMAddIncoming(i, &next, &latch, 1);
    LLVMBuildCondBr(cg.b, LLVMBuildICmp(cg.b, LLVMIntSLT, next, n, ""), body, done);
    LLVMPositionBuilderAtEnd(cg.b, done);
    LLVMBuildRetVoid(cg.b);
    return (MapFn)jit_function(&cg, name);
}

static void jit_setup(void) {
    char err[256] = "";
    cr_assert(llvm_jit_init(&J, err, sizeof err), "%s", err);
}
static void jit_teardown(void) {
    llvm_jit_dispose(&J);
}

Test(llvm_bits, philox_words_match_the_reference, .init = jit_setup, .fini = jit_teardown) {
    WordsFn words = build_words();
    /* rng.md's known answers, through the (seed, stream, block) mapping */
    struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0}, {0xa4093822, 0x299f31d0}, {0}},
    };
    uint32_t got[4 * 1024];
    words(got, 0, 0, 0, 1);
    for (int k = 0; k < 4; k++)
        cr_expect_eq(got[k], kat[0].out[k], "known answer word %d: %08x", k, got[k]);
    uint64_t seeds[] = {0, 42, 0xffffffffffffffffull, 0x299f31d0a4093822ull};
    uint32_t streams[] = {0, 0xabfe42a2u, 0x13198a2eu, 0xffffffffu};
    uint64_t firsts[] = {0, 1000, 0xfffffffcull, 0x85a308d3243f6a88ull};
    int bad = 0;
    for (int a = 0; a < 4; a++)
        for (int s = 0; s < 4; s++)
            for (int f = 0; f < 4; f++) {
                words(got, seeds[a], streams[s], firsts[f], 1024);
                for (int i = 0; i < 1024; i++) {
                    uint64_t j = firsts[f] + (uint64_t)i;
                    uint32_t ctr[4] = {(uint32_t)j, (uint32_t)(j >> 32), streams[s], 0}, w[4];
                    uint32_t key[2] = {(uint32_t)seeds[a], (uint32_t)(seeds[a] >> 32)};
                    rt_philox4x32_10(ctr, key, w);
                    for (int k = 0; k < 4; k++)
                        bad += got[4 * i + k] != w[k];
                }
            }
    cr_expect_eq(bad, 0, "%d words differ from rt_philox4x32_10", bad);
    /* the golden values of rng.md: seed 42, stream 0xabfe42a2 */
    words(got, 42, 0xabfe42a2u, 0, 2);
    const uint32_t golden[6] = {0xe653847c, 0xcdd15fe2, 0xb4055292,
                                0x0370f05f, 0x1823c60a, 0x4d131871};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(got[i], golden[i], "golden word %d: %08x", i, got[i]);
}

Test(llvm_bits, rng_kernels_match_the_reference, .init = setup, .fini = teardown) {
    /* uniforms bit for bit with rt_rng_uniform, normals bit for bit with the
     * polynomial Box-Muller and within 1e-6 of rt_rng_normal (libm) */
    Graph *g = ir_graph_new(A, D, "rng");
    Node *seed = ir_input(g, DT_I64, th_shape(0), "seed", L),
         *off = ir_input(g, DT_I64, th_shape(0), "off", L);
    ir_graph_add_output(
        g, ir_rng(g, OP_RNG_UNIFORM, DT_F32, th_shape(1, 4099), seed, off, 0xabfe42a2u, L));
    ir_graph_add_output(
        g, ir_rng(g, OP_RNG_NORMAL, DT_F32, th_shape(1, 4099), seed, off, 0xabfe42a2u, L));
    RtTensor *in[2] = {rt_tensor_new(DT_I64, th_shape(0)), rt_tensor_new(DT_I64, th_shape(0))},
             *out[2];
    const uint64_t seeds[] = {42, 0, 0xdeadbeefcafef00dull};
    const int64_t offs[] = {0, 3, 1ll << 34};
    double worst = 0;
    for (int s = 0; s < 3; s++)
        for (int o = 0; o < 3; o++) {
            *(int64_t *)in[0]->data = (int64_t)seeds[s];
            *(int64_t *)in[1]->data = offs[o];
            cr_assert(R.run(R.ctx, g, in, out, D), "%s", th_last_diag(D));
            const float *u = out[0]->data, *z = out[1]->data;
            int badu = 0, badz = 0;
            for (int64_t i = 0; i < 4099; i++) {
                uint64_t idx = (uint64_t)offs[o] + (uint64_t)i;
                float ru = rt_rng_uniform(seeds[s], 0xabfe42a2u, idx);
                badu += memcmp(&u[i], &ru, 4) != 0;
                uint32_t w[4],
                    ctr[4] = {(uint32_t)(idx / 4), (uint32_t)(idx / 4 >> 32), 0xabfe42a2u, 0};
                uint32_t key[2] = {(uint32_t)seeds[s], (uint32_t)(seeds[s] >> 32)};
                rt_philox4x32_10(ctr, key, w);
                unsigned p = (unsigned)(idx % 4) & 2u;
                float vz = rt_vm_normal_from_words(w[p], w[p + 1], (int)(idx & 1));
                badz += memcmp(&z[i], &vz, 4) != 0;
                double ref = rt_rng_normal(seeds[s], 0xabfe42a2u, idx);
                double rel = fabs(z[i] - ref) / fmax(fabs(ref), 1e-3);
                if (rel > worst) worst = rel;
            }
            cr_expect_eq(badu, 0, "%d uniforms differ (seed %llu offset %lld)", badu,
                         (unsigned long long)seeds[s], (long long)offs[o]);
            cr_expect_eq(badz, 0, "%d normals differ from rt_vm_normal_from_words", badz);
            rt_tensor_free(out[0]);
            rt_tensor_free(out[1]);
        }
    cr_expect_leq(worst, 1e-6, "normals differ from libm's by %g relative", worst);
    /* rng.md's golden uniforms */
    *(int64_t *)in[0]->data = 42;
    *(int64_t *)in[1]->data = 0;
    cr_assert(R.run(R.ctx, g, in, out, D));
    const double gu[6] = {0.8997118473052979,   0.8039760589599609,  0.7032061815261841,
                          0.013442069292068481, 0.09429588913917542, 0.3010726273059845};
    for (int i = 0; i < 6; i++)
        cr_expect_eq(((float *)out[0]->data)[i], (float)gu[i], "golden uniform %d", i);
    rt_tensor_free(out[0]);
    rt_tensor_free(out[1]);
    rt_tensor_free(in[0]);
    rt_tensor_free(in[1]);
}

static void check_map(MapFn fn, float (*ref)(float), const char *name, const float *x, int64_t n) {
    float *y = malloc(sizeof(float) * (size_t)n);
    fn(y, x, n);
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        float r = ref(x[i]);
        if (memcmp(&r, &y[i], 4) != 0 && !(isnan(r) && isnan(y[i]))) {
            if (first < 0) first = i;
            bad++;
        }
    }
    cr_expect_eq(
        bad, 0,
        "%s: %lld of %lld values differ from the C reference, first at x=%.9g: %.9g vs %.9g", name,
        (long long)bad, (long long)n, first >= 0 ? x[first] : 0, first >= 0 ? y[first] : 0,
        first >= 0 ? ref(x[first]) : 0);
    free(y);
}

Test(llvm_bits, vector_math_matches_vmath, .init = jit_setup, .fini = jit_teardown) {
    enum { N = 200003 };
    float *x = malloc(sizeof(float) * N);
    for (int64_t i = 0; i < N; i++) {
        int c = (int)(i % 5);
        x[i] = c == 0   ? (float)unif(-110, 95)
               : c == 1 ? (float)unif(-1e5, 1e5)
               : c == 2 ? (float)unif(0, 3)
               : c == 3 ? (float)(unif(0, 1) * pow(10, unif(-44, 38)))
                        : (float)unif(-10, 10);
    }
    const float special[] = {0.0f,   -0.0f,           INFINITY, -INFINITY, NAN,
                             1e-45f, 1.17549435e-38f, 88.72f,   -103.9f,   1.0f};
    for (int i = 0; i < 10; i++)
        x[i * 7] = special[i];
    check_map(build_map("vexp", llvm_exp_f32), rt_vm_expf, "exp", x, N);
    check_map(build_map("vlog", llvm_log_f32), rt_vm_logf, "log", x, N);
    check_map(build_map("vsin", llvm_sin_f32), rt_vm_sinf, "sin", x, N);
    check_map(build_map("vcos", llvm_cos_f32), rt_vm_cosf, "cos", x, N);
    free(x);
}

/* ---- the thread pool and thread-count invariance ----------------------------------------------
 */

typedef struct {
    _Atomic int *hits;
} HitArg;

static uint32_t count_hits(void *arg, int64_t lo, int64_t hi) {
    HitArg *h = arg;
    for (int64_t i = lo; i < hi; i++)
        h->hits[i]++;
    return lo == 0 ? 1u : 2u; /* every chunk's status must reach the caller */
}

Test(threadpool, every_index_runs_once) {
    const int64_t ns[] = {1, 2, 3, 7, 64, 1000, 4099};
    const int64_t grains[] = {1, 2, 5, 100};
    for (int threads = 1; threads <= 4; threads++) {
        RtPool *p = rt_pool_new(threads);
        cr_assert_not_null(p);
        cr_assert_eq(rt_pool_size(p), threads);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t b = 0; b < sizeof grains / sizeof grains[0]; b++)
                for (int rep = 0; rep < 40; rep++) {
                    int64_t n = ns[a];
                    _Atomic int *hits = calloc((size_t)n, sizeof *hits);
                    HitArg h = {hits};
                    uint32_t st = rt_pool_run(p, count_hits, &h, n, grains[b]);
                    int chunks = rt_pool_chunks(p, n, grains[b]);
                    cr_assert_eq(st, 1u | (chunks > 1 ? 2u : 0u), "statuses are ORed (n %lld)",
                                 (long long)n);
                    for (int64_t i = 0; i < n; i++)
                        cr_assert_eq(hits[i], 1,
                                     "%d threads, n %lld, grain %lld: index %lld ran %d times",
                                     threads, (long long)n, (long long)grains[b], (long long)i,
                                     (int)hits[i]);
                    free(hits);
                }
        rt_pool_free(p);
    }
    cr_assert_eq(rt_pool_run(NULL, count_hits, &(HitArg){NULL}, 0, 1), 0u);
    /* long jobs, so the workers really take chunks */
    for (int threads = 2; threads <= 3; threads++) {
        RtPool *p = rt_pool_new(threads);
        int64_t n = 300000;
        _Atomic int *hits = calloc((size_t)n, sizeof *hits);
        HitArg h = {hits};
        for (int rep = 0; rep < 60; rep++)
            cr_assert_eq(rt_pool_run(p, count_hits, &h, n, 5000), 3u, "a chunk's status was lost");
        for (int64_t i = 0; i < n; i++)
            cr_assert_eq(hits[i], 60);
        free(hits);
        rt_pool_free(p);
    }
    /* chunks tile the range */
    for (int parts = 1; parts <= 9; parts++) {
        int64_t end = 0;
        for (int i = 0; i < parts; i++) {
            int64_t lo, hi;
            rt_pool_chunk(1003, parts, i, &lo, &hi);
            cr_assert_eq(lo, end);
            cr_assert_geq(hi - lo, 1003 / parts);
            end = hi;
        }
        cr_assert_eq(end, 1003);
    }
}

static GraphRunner threads_runner(int n) {
    char err[200] = "";
    LlvmOptions o = {.interp_runs = 0, .nthreads = n, .poison = true};
    GraphRunner r = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(r.run, "%s", err);
    cr_assert_eq(llvm_runner_threads(&r), n);
    return r;
}

static bool bits_equal(const RtTensor *a, const RtTensor *b) {
    return a->dtype == b->dtype && rt_shape_eq(&a->shape, &b->shape) &&
           memcmp(a->data, b->data, rt_tensor_bytes(a)) == 0;
}

Test(llvm_threads, results_do_not_depend_on_the_thread_count, .init = setup, .fini = teardown) {
    /* one graph per kind of split kernel; exact: elementwise and random */
    Case *c = case_new(T_EW, "split kernels");
    Graph *g = c->g;
    Node *x = input(c, DT_F32, th_shape(2, 300, 1001), DOM_TRIG, 0);
    Node *seed = input(c, DT_I64, th_shape(0), DOM_POS, 0);
    Node *off = input(c, DT_I64, th_shape(0), DOM_POS, 0);
    Node *m1 = input(c, DT_F32, th_shape(2, 300, 200), DOM_ANY, 0);
    Node *m2 = input(c, DT_F32, th_shape(2, 200, 333), DOM_ANY, 0);
    Node *xd = input(c, DT_F64, th_shape(2, 257, 260), DOM_ANY, 0);
    int exact = 0;
    ir_graph_add_output(g, ir_binary(g, OP_MUL, ir_unary(g, OP_EXP, ir_unary(g, OP_NEG, x, L), L),
                                     ir_unary(g, OP_SIN, x, L), L)); /* with the exact rerun */
    ir_graph_add_output(g, ir_binary(g, OP_ADD, x,
                                     ir_rng(g, OP_RNG_NORMAL, DT_F32, th_shape(2, 300, 1001), seed,
                                            off, 0x1234u, L),
                                     L));
    ir_graph_add_output(g,
                        ir_rng(g, OP_RNG_UNIFORM, DT_F32, th_shape(1, 1 << 20), seed, off, 77u, L));
    ir_graph_add_output(g,
                        ir_rng(g, OP_RNG_NORMAL, DT_F64, th_shape(2, 999, 301), seed, off, 78u, L));
    ir_graph_add_output(g, ir_softmax(g, x, 1, L)); /* row phases: a row is one task's */
    ir_graph_add_output(g, layernorm(g, xd, xd, xd));
    /* reductions: each output element is summed by one task in one order */
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, ir_unary(g, OP_EXP, x, L), 2u, L)); /* rows */
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, ir_unary(g, OP_COS, x, L), 1u, L)); /* columns */
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, xd, 1u, L)); /* f64 columns */
    ir_graph_add_output(g, ir_reduce(g, OP_REDUCE_MAX, ir_binary(g, OP_MUL, xd, xd, L), 1u, L));
    exact = g->noutputs;
    ir_graph_add_output(g, ir_matmul(g, m1, m2, L));
    int perm[2] = {1, 0};
    ir_graph_add_output(g, ir_matmul(g, ir_permute(g, m2, perm, L), ir_permute(g, m1, perm, L), L));
    /* products accumulated onto a start value, split by columns and by rows */
    Node *b1 = input(c, DT_F32, th_shape(1, 333), DOM_ANY, 0);
    Node *b2 = input(c, DT_F32, th_shape(1, 300), DOM_ANY, 0);
    ir_graph_add_output(g, ir_binary(g, OP_ADD, ir_matmul(g, m1, m2, L), b1, L));
    ir_graph_add_output(
        g, ir_binary(g, OP_SUB, b2,
                     ir_matmul(g, ir_permute(g, m2, perm, L), ir_permute(g, m1, perm, L), L), L));
    cr_assert(ir_verify(g, "test"), "%s", th_last_diag(D));
    *(int64_t *)c->in[1]->data = 42;
    *(int64_t *)c->in[2]->data = 5;

    int no = g->noutputs;
    RtTensor *want[16] = {0}, *got[4][16] = {{0}};
    cr_assert(ir_interp_run(g, c->in, want, D), "%s", th_last_diag(D));
    for (int t = 1; t <= 3; t++) {
        GraphRunner r = threads_runner(t);
        cr_assert(r.run(r.ctx, g, c->in, got[t], D), "%d threads: %s", t, th_last_diag(D));
        const LlvmGraphInfo *info = llvm_runner_graph(&r, 0);
        cr_assert_not(info->fallback, "%s", info->reason);
        if (t > 1)
            cr_assert_geq(info->nparallel, no, "%d of %d kernels split", info->nparallel, no);
        llvm_runner_free(&r);
    }
    c->tol = T_NORM;
    for (int j = 0; j < no; j++) {
        cr_expect(compare(c, j, got[1][j], want[j]), "output %d against the interpreter", j);
        cr_expect(compare(c, j, got[3][j], want[j]),
                  "output %d (3 threads) against the interpreter", j);
        for (int t = 2; t <= 3; t++) {
            if (j < exact)
                cr_expect(bits_equal(got[t][j], got[1][j]), "output %d: %d threads differ from 1",
                          j, t);
            else
                cr_expect(compare(c, j, got[t][j], got[1][j]), "output %d: %d threads vs 1", j, t);
            if (j >= exact && !bits_equal(got[t][j], got[1][j]))
                cr_log_info("output %d: %d threads within tolerance, not bit-identical", j, t);
        }
    }
    for (int j = 0; j < no; j++) {
        rt_tensor_free(want[j]);
        for (int t = 1; t <= 3; t++)
            rt_tensor_free(got[t][j]);
    }
    for (int i = 0; i < c->nin; i++)
        rt_tensor_free(c->in[i]);
    c->nin = 0;
}
