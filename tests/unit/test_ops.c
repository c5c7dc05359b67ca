/* Every op in the table, checked through the reference interpreter.
 *
 * op_table_is_covered walks OP_COUNT: each op must have a checker in
 * `checks` below, or the test fails (so a new row in ops.def cannot slip in
 * untested). Each checker builds small graphs with odd sizes, size 1, scalars
 * and broadcasting, runs them through ir_interp_run and compares with a
 * straightforward float64 (or exact integer) reference written here,
 * independently of ir/interp*.c. f32 elementwise results must be within 1e-5
 * relative; reductions and matmul within 1e-4 of the reference's norm;
 * integers and bools exactly. RNG ops are checked against rng.md's golden
 * values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "helpers/linalg_ref.h"
#include "ir/interp.h"
#include "ir/ir.h"
#include "runtime/rng.h"

static Arena *A;
static DiagList *D;
static Graph *G;
static SrcLoc L;
static uint64_t rng_state;

static void setup(void) {
    A = arena_new();
    D = diag_list_new(A, source_set_new(A));
    D->max_errors = 1000;
    L = (SrcLoc){0, 1, 1, 1};
    rng_state = 0x9E3779B97F4A7C15ull;
}
static void teardown(void) {
    arena_free(A);
}
TestSuite(ops, .init = setup, .fini = teardown);

/* xorshift64*: test data independent of the project's Philox. */
static double urand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-53;
}

static RtTensor *rand_tensor(DType dt, Shape s, double lo, double hi) {
    RtTensor *t = rt_tensor_new(dt, s);
    int64_t n = rt_shape_numel(&s);
    for (int64_t i = 0; i < n; i++) {
        double v = lo + (hi - lo) * urand();
        if (dt == DT_I32 || dt == DT_I64 || dt == DT_BOOL) v = floor(v + 0.5);
        rt_tensor_set_f64(t, i, v);
    }
    return t;
}

/* ---- graph plumbing --------------------------------------------------------------------- */

#define MAXIN 6
static RtTensor *ins[MAXIN];
static int nins;

static void fresh(void) {
    G = ir_graph_new(A, D, "t");
    nins = 0;
}

static Node *feed(RtTensor *t) {
    ins[nins++] = t;
    return ir_input(G, t->dtype, t->shape, NULL, L);
}

/* Runs G with out as its only output; frees the inputs; returns the result. */
static RtTensor *eval(Node *out) {
    cr_assert_not_null(out, "builder failed: %s", th_last_diag(D));
    ir_graph_add_output(G, out);
    cr_assert(ir_verify(G, "test"), "verify: %s", th_last_diag(D));
    RtTensor *res = NULL;
    bool ok = ir_interp_run(G, ins, &res, D);
    for (int i = 0; i < nins; i++)
        rt_tensor_free(ins[i]);
    nins = 0;
    cr_assert(ok, "interp failed: %s", th_last_diag(D));
    cr_assert(rt_shape_eq(&res->shape, &out->shape));
    cr_assert_eq(res->dtype, out->dtype);
    return res;
}

static void unravel(int64_t i, const Shape *s, int64_t *idx) {
    for (int k = s->rank - 1; k >= 0; k--) {
        idx[k] = s->dims[k] ? i % s->dims[k] : 0;
        i = s->dims[k] ? i / s->dims[k] : 0;
    }
}

static int64_t ravel(const int64_t *idx, const Shape *s) {
    int64_t i = 0;
    for (int k = 0; k < s->rank; k++)
        i = i * s->dims[k] + idx[k];
    return i;
}

/* Flat index into `from` of output index `oidx` under numpy broadcasting. */
static int64_t bcast_index(const int64_t *oidx, const Shape *out, const Shape *from) {
    int64_t idx[8];
    for (int k = 0; k < from->rank; k++) {
        int64_t o = oidx[out->rank - from->rank + k];
        idx[k] = from->dims[k] == 1 ? 0 : o;
    }
    return ravel(idx, from);
}

static void expect_close(double got, double want, double rtol, const char *what, int64_t i) {
    double err = fabs(got - want);
    bool ok = (isnan(want) && isnan(got)) || got == want || err <= rtol * fabs(want) + 1e-12;
    cr_expect(ok, "%s[%lld]: got %.9g want %.9g (rel %.3g)", what, (long long)i, got, want,
              err / (fabs(want) + 1e-300));
}

static double ew_tol(DType dt) {
    return dt == DT_F32 ? 1e-5 : 1e-12;
}

/* ---- leaves ----------------------------------------------------------------------------- */

static void check_input(void) {
    fresh();
    RtTensor *x = rand_tensor(DT_F32, th_shape(2, 3, 5), -1, 1), *copy = rt_tensor_clone(x);
    RtTensor *r = eval(feed(x));
    cr_expect(memcmp(r->data, copy->data, rt_tensor_bytes(copy)) == 0);
    rt_tensor_free(r);
    rt_tensor_free(copy);
}

static void check_const(void) {
    const struct {
        DType dt;
        double v;
    } cases[] = {{DT_F32, 0.1},  {DT_F64, -2.5e300}, {DT_I32, -7},
                 {DT_I64, 1e15}, {DT_BOOL, 1},       {DT_F32, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fresh();
        RtTensor *r = eval(ir_const(G, cases[c].dt, th_shape(2, 3, 1), cases[c].v, L));
        for (int i = 0; i < 3; i++) {
            if (cases[c].dt == DT_F32)
                cr_expect_eq(((float *)r->data)[i], (float)cases[c].v);
            else
                cr_expect_eq(rt_tensor_get_f64(r, i), cases[c].v);
        }
        rt_tensor_free(r);
    }
    fresh();
    RtTensor *s = eval(ir_scalar(G, DT_I64, -3, L));
    cr_expect_eq(s->shape.rank, 0);
    cr_expect_eq(rt_tensor_get_i64(s, 0), -3);
    rt_tensor_free(s);
}

static void check_iota(void) {
    Shape s = th_shape(3, 2, 3, 4);
    for (int axis = 0; axis < 3; axis++) {
        DType dts[] = {DT_I64, DT_I32, DT_F32};
        fresh();
        RtTensor *r = eval(ir_iota(G, dts[axis], s, axis, L));
        for (int64_t i = 0; i < 24; i++) {
            int64_t idx[8];
            unravel(i, &s, idx);
            cr_expect_eq(rt_tensor_get_f64(r, i), (double)idx[axis]);
        }
        rt_tensor_free(r);
    }
}

/* ---- elementwise -------------------------------------------------------------------------- */

static const Shape *ew_shapes(int *n) {
    static Shape s[4];
    s[0] = th_shape(2, 7, 13);
    s[1] = th_shape(1, 1);
    s[2] = th_shape(0);
    s[3] = th_shape(2, 0, 3);
    *n = 4;
    return s;
}

static double sgn(double x) {
    return x > 0 ? 1 : x < 0 ? -1 : 0;
}

static double ref_unary(OpKind op, double x) {
    switch (op) {
    case OP_NEG:
        return -x;
    case OP_ABS:
        return fabs(x);
    case OP_SIGN:
        return sgn(x);
    case OP_FLOOR:
        return floor(x);
    case OP_EXP:
        return exp(x);
    case OP_LOG:
        return log(x);
    case OP_SQRT:
        return sqrt(x);
    case OP_SIN:
        return sin(x);
    case OP_COS:
        return cos(x);
    case OP_ERF:
        return erf(x);
    case OP_NOT:
        return x == 0;
    default:
        return x; /* STOP_GRAD */
    }
}

static void unary_case(OpKind op, DType dt, double lo, double hi) {
    int ns;
    const Shape *shapes = ew_shapes(&ns);
    for (int k = 0; k < ns; k++) {
        fresh();
        RtTensor *x = rand_tensor(dt, shapes[k], lo, hi), *xc = rt_tensor_clone(x);
        RtTensor *r = eval(ir_unary(G, op, feed(x), L));
        int64_t n = rt_shape_numel(&shapes[k]);
        for (int64_t i = 0; i < n; i++) {
            double want = ref_unary(op, rt_tensor_get_f64(xc, i));
            if (dt == DT_F32 || dt == DT_F64)
                expect_close(rt_tensor_get_f64(r, i), want, ew_tol(dt), ir_op_name(op), i);
            else
                cr_expect_eq(rt_tensor_get_f64(r, i), want, "%s[%lld]", ir_op_name(op),
                             (long long)i);
        }
        rt_tensor_free(r);
        rt_tensor_free(xc);
    }
}

static void check_neg(void) {
    unary_case(OP_NEG, DT_F32, -5, 5);
    unary_case(OP_NEG, DT_F64, -5, 5);
    unary_case(OP_NEG, DT_I32, -9, 9);
    unary_case(OP_NEG, DT_I64, -9, 9);
}
static void check_abs(void) {
    unary_case(OP_ABS, DT_F32, -5, 5);
    unary_case(OP_ABS, DT_F64, -5, 5);
    unary_case(OP_ABS, DT_I32, -9, 9);
    unary_case(OP_ABS, DT_I64, -9, 9);
}
static void check_sign(void) {
    unary_case(OP_SIGN, DT_F32, -2, 2);
    unary_case(OP_SIGN, DT_I32, -2, 2);
    unary_case(OP_SIGN, DT_I64, -2, 2);
    unary_case(OP_SIGN, DT_F64, -2, 2);
}
static void check_floor(void) {
    unary_case(OP_FLOOR, DT_F32, -5, 5);
    unary_case(OP_FLOOR, DT_F64, -5, 5);
}
static void check_exp(void) {
    unary_case(OP_EXP, DT_F32, -20, 20);
    unary_case(OP_EXP, DT_F64, -20, 20);
}
static void check_log(void) {
    unary_case(OP_LOG, DT_F32, 0.001, 100);
    unary_case(OP_LOG, DT_F64, 0.001, 100);
}
static void check_sqrt(void) {
    unary_case(OP_SQRT, DT_F32, 0, 100);
    unary_case(OP_SQRT, DT_F64, 0, 100);
}
static void check_sin(void) {
    unary_case(OP_SIN, DT_F32, -10, 10);
    unary_case(OP_SIN, DT_F64, -10, 10);
}
static void check_cos(void) {
    unary_case(OP_COS, DT_F32, -10, 10);
    unary_case(OP_COS, DT_F64, -10, 10);
}
static void check_erf(void) {
    unary_case(OP_ERF, DT_F32, -5, 5);
    unary_case(OP_ERF, DT_F64, -5, 5);
}
static void check_not(void) {
    unary_case(OP_NOT, DT_BOOL, 0, 1);
}
static void check_stop_grad(void) {
    unary_case(OP_STOP_GRAD, DT_F32, -3, 3);
    unary_case(OP_STOP_GRAD, DT_I64, -3, 3);
    unary_case(OP_STOP_GRAD, DT_BOOL, 0, 1);
}

/* Conversions: float -> int truncates toward zero; int -> int wraps. */
static void check_cast(void) {
    const struct {
        DType from, to;
        double lo, hi;
    } cases[] = {
        {DT_F32, DT_I32, -50, 50}, {DT_I32, DT_F32, -1000, 1000}, {DT_F32, DT_F64, -3, 3},
        {DT_F64, DT_F32, -3, 3},   {DT_F32, DT_BOOL, -1, 1},      {DT_BOOL, DT_F32, 0, 1},
        {DT_I64, DT_I32, -9, 9},   {DT_I32, DT_I64, -9, 9},       {DT_F64, DT_I64, -1e6, 1e6},
        {DT_I64, DT_BOOL, -2, 2},  {DT_BOOL, DT_I64, 0, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fresh();
        RtTensor *x = rand_tensor(cases[c].from, th_shape(2, 5, 3), cases[c].lo, cases[c].hi),
                 *xc = rt_tensor_clone(x);
        RtTensor *r = eval(ir_cast(G, feed(x), cases[c].to, L));
        for (int64_t i = 0; i < 15; i++) {
            double v = rt_tensor_get_f64(xc, i), want;
            switch (cases[c].to) {
            case DT_F32:
                want = (float)v;
                break;
            case DT_I32:
            case DT_I64:
                want = trunc(v);
                break;
            case DT_BOOL:
                want = v != 0;
                break;
            default:
                want = v;
            }
            cr_expect_eq(rt_tensor_get_f64(r, i), want, "cast %d->%d [%lld]: %.9g", cases[c].from,
                         cases[c].to, (long long)i, v);
        }
        rt_tensor_free(r);
        rt_tensor_free(xc);
    }
    /* wrap-around of a narrowing integer cast */
    fresh();
    RtTensor *x = rt_tensor_new(DT_I64, th_shape(1, 2));
    ((int64_t *)x->data)[0] = 0x100000005ll;
    ((int64_t *)x->data)[1] = -0x80000001ll;
    RtTensor *r = eval(ir_cast(G, feed(x), DT_I32, L));
    cr_expect_eq(((int32_t *)r->data)[0], 5);
    cr_expect_eq(((int32_t *)r->data)[1], INT32_MAX);
    rt_tensor_free(r);
}

static double ref_binary(OpKind op, double a, double b, bool integer) {
    switch (op) {
    case OP_ADD:
        return a + b;
    case OP_SUB:
        return a - b;
    case OP_MUL:
        return a * b;
    case OP_DIV:
        if (integer) return b == 0 ? 0 : trunc(a / b);
        return a / b;
    case OP_MOD:
        if (b == 0) return integer ? 0 : NAN;
        return a - floor(a / b) * b;
    case OP_POW:
        return pow(a, b);
    case OP_MAX:
        return a >= b ? a : b;
    case OP_MIN:
        return a <= b ? a : b;
    case OP_LT:
        return a < b;
    case OP_LE:
        return a <= b;
    case OP_EQ:
        return a == b;
    case OP_NE:
        return a != b;
    case OP_AND:
        return a != 0 && b != 0;
    case OP_OR:
        return a != 0 || b != 0;
    default:
        return NAN;
    }
}

static void binary_case(OpKind op, DType dt, double lo, double hi, double blo, double bhi) {
    static const int pairs[][2][4] = {
        /* {rank, d0, d1, d2} for a and b */
        {{3, 7, 1, 5}, {2, 3, 1, 0}}, {{1, 1, 0, 0}, {1, 4, 0, 0}}, {{0, 0, 0, 0}, {2, 2, 3, 0}},
        {{1, 6, 0, 0}, {1, 6, 0, 0}}, {{2, 0, 3, 0}, {1, 1, 0, 0}},
    };
    bool integer = dt == DT_I32 || dt == DT_I64 || dt == DT_BOOL;
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        Shape sa = {.rank = pairs[p][0][0]}, sb = {.rank = pairs[p][1][0]}, so;
        for (int k = 0; k < 3; k++) {
            sa.dims[k] = k < sa.rank ? pairs[p][0][k + 1] : 0;
            sb.dims[k] = k < sb.rank ? pairs[p][1][k + 1] : 0;
        }
        cr_assert(ir_broadcast_shapes(&sa, &sb, &so));
        fresh();
        RtTensor *a = rand_tensor(dt, sa, lo, hi), *b = rand_tensor(dt, sb, blo, bhi);
        RtTensor *ac = rt_tensor_clone(a), *bc = rt_tensor_clone(b);
        Node *na = feed(a), *nb = feed(b);
        RtTensor *r = eval(ir_binary(G, op, na, nb, L));
        int64_t n = rt_shape_numel(&so), idx[8];
        for (int64_t i = 0; i < n; i++) {
            unravel(i, &so, idx);
            double x = rt_tensor_get_f64(ac, bcast_index(idx, &so, &sa));
            double y = rt_tensor_get_f64(bc, bcast_index(idx, &so, &sb));
            double want = ref_binary(op, x, y, integer), got = rt_tensor_get_f64(r, i);
            if (integer || r->dtype == DT_BOOL)
                cr_expect_eq(got, want, "%s[%lld] (%g, %g): got %g want %g", ir_op_name(op),
                             (long long)i, x, y, got, want);
            else
                expect_close(got, want, ew_tol(dt), ir_op_name(op), i);
        }
        rt_tensor_free(r);
        rt_tensor_free(ac);
        rt_tensor_free(bc);
    }
}

static void arith(OpKind op, double lo, double hi, double blo, double bhi) {
    binary_case(op, DT_F32, lo, hi, blo, bhi);
    binary_case(op, DT_F64, lo, hi, blo, bhi);
    binary_case(op, DT_I32, -20, 20, -6, 6); /* includes zero divisors */
    binary_case(op, DT_I64, -20, 20, -6, 6);
}

static void check_add(void) {
    arith(OP_ADD, -5, 5, -5, 5);
}
static void check_sub(void) {
    arith(OP_SUB, -5, 5, -5, 5);
}
static void check_mul(void) {
    arith(OP_MUL, -5, 5, -5, 5);
}
static void check_div(void) {
    arith(OP_DIV, -5, 5, 0.5, 3);
    binary_case(OP_DIV, DT_F32, -5, 5, -3, -0.5);
}
static void check_mod(void) {
    arith(OP_MOD, -5, 5, 0.5, 3);
    binary_case(OP_MOD, DT_F32, -5, 5, -3, -0.5);
}
static void check_pow(void) {
    binary_case(OP_POW, DT_F32, 0.1, 4, -2, 2);
    binary_case(OP_POW, DT_F64, 0.1, 4, -2, 2);
}
static void check_max(void) {
    arith(OP_MAX, -5, 5, -5, 5);
}
static void check_min(void) {
    arith(OP_MIN, -5, 5, -5, 5);
}

static void compare(OpKind op) {
    binary_case(op, DT_F32, -2, 2, -2, 2);
    binary_case(op, DT_F64, -2, 2, -2, 2);
    binary_case(op, DT_I32, -2, 2, -2, 2); /* small ranges make ties common */
    binary_case(op, DT_I64, -2, 2, -2, 2);
    binary_case(op, DT_BOOL, 0, 1, 0, 1);
}
static void check_lt(void) {
    compare(OP_LT);
}
static void check_le(void) {
    compare(OP_LE);
}
static void check_eq(void) {
    compare(OP_EQ);
}
static void check_ne(void) {
    compare(OP_NE);
}
static void check_and(void) {
    binary_case(OP_AND, DT_BOOL, 0, 1, 0, 1);
}
static void check_or(void) {
    binary_case(OP_OR, DT_BOOL, 0, 1, 0, 1);
}

/* Integer edge cases that the random cases may miss. */
static void check_int_edges(void) {
    fresh();
    RtTensor *a = rt_tensor_new(DT_I32, th_shape(1, 4)), *b = rt_tensor_new(DT_I32, th_shape(1, 4));
    int32_t av[4] = {INT32_MIN, 7, -7, INT32_MAX}, bv[4] = {-1, 0, 2, 1};
    memcpy(a->data, av, sizeof av);
    memcpy(b->data, bv, sizeof bv);
    Node *na = feed(a), *nb = feed(b);
    Node *outs[3] = {ir_binary(G, OP_DIV, na, nb, L), ir_binary(G, OP_MOD, na, nb, L),
                     ir_binary(G, OP_ADD, na, nb, L)};
    for (int k = 0; k < 3; k++)
        ir_graph_add_output(G, outs[k]);
    RtTensor *r[3];
    cr_assert(ir_interp_run(G, ins, r, D));
    int32_t *dv = r[0]->data, *mv = r[1]->data, *sv = r[2]->data;
    cr_expect_eq(dv[0], INT32_MIN); /* wraps */
    cr_expect_eq(dv[1], 0);         /* x / 0 = 0 */
    cr_expect_eq(dv[2], -3);        /* truncation */
    cr_expect_eq(mv[1], 0);
    cr_expect_eq(mv[2], 1); /* sign of b */
    cr_expect_eq(sv[3], INT32_MIN);
    for (int k = 0; k < 3; k++)
        rt_tensor_free(r[k]);
    rt_tensor_free(a);
    rt_tensor_free(b);
    nins = 0;
}

static void check_where(void) {
    fresh();
    Shape sc = th_shape(2, 4, 1), sa = th_shape(1, 5), sb = th_shape(0), so = th_shape(2, 4, 5);
    RtTensor *c = rand_tensor(DT_BOOL, sc, 0, 1), *a = rand_tensor(DT_F32, sa, -3, 3),
             *b = rand_tensor(DT_F32, sb, -3, 3);
    RtTensor *cc = rt_tensor_clone(c), *acl = rt_tensor_clone(a), *bc = rt_tensor_clone(b);
    Node *nc = feed(c), *na = feed(a), *nb = feed(b);
    RtTensor *r = eval(ir_where(G, nc, na, nb, L));
    int64_t idx[8];
    for (int64_t i = 0; i < 20; i++) {
        unravel(i, &so, idx);
        double want = rt_tensor_get_f64(cc, bcast_index(idx, &so, &sc))
                          ? rt_tensor_get_f64(acl, bcast_index(idx, &so, &sa))
                          : rt_tensor_get_f64(bc, 0);
        cr_expect_eq(rt_tensor_get_f64(r, i), want);
    }
    rt_tensor_free(r);
    rt_tensor_free(cc);
    rt_tensor_free(acl);
    rt_tensor_free(bc);
    /* i64 and bool branches (8- and 1-byte paths) */
    for (int k = 0; k < 2; k++) {
        DType dt = k ? DT_BOOL : DT_I64;
        fresh();
        RtTensor *c2 = rand_tensor(DT_BOOL, th_shape(1, 9), 0, 1),
                 *x = rand_tensor(dt, th_shape(1, 9), 0, 1),
                 *y = rand_tensor(dt, th_shape(1, 9), 0, 1);
        RtTensor *c2c = rt_tensor_clone(c2), *xc = rt_tensor_clone(x), *yc = rt_tensor_clone(y);
        Node *n0 = feed(c2), *n1 = feed(x), *n2 = feed(y);
        RtTensor *r2 = eval(ir_where(G, n0, n1, n2, L));
        for (int64_t i = 0; i < 9; i++)
            cr_expect_eq(rt_tensor_get_i64(r2, i), rt_tensor_get_i64(c2c, i)
                                                       ? rt_tensor_get_i64(xc, i)
                                                       : rt_tensor_get_i64(yc, i));
        rt_tensor_free(r2);
        rt_tensor_free(c2c);
        rt_tensor_free(xc);
        rt_tensor_free(yc);
    }
}

/* ---- reductions --------------------------------------------------------------------------- */

static void reduce_case(OpKind op, DType dt, Shape s) {
    int r = s.rank;
    for (uint32_t axes = 0; axes < (1u << r); axes++) {
        fresh();
        RtTensor *x = rand_tensor(dt, s, dt == DT_BOOL ? 0 : -9, dt == DT_BOOL ? 1 : 9),
                 *xc = rt_tensor_clone(x);
        RtTensor *res = eval(ir_reduce(G, op, feed(x), axes, L));
        Shape os = res->shape;
        int64_t on = rt_shape_numel(&os), n = rt_shape_numel(&s), idx[8], oidx[8];
        double *ref = malloc(sizeof(double) * (size_t)(on ? on : 1)), norm = 1;
        for (int64_t o = 0; o < on; o++)
            ref[o] = op == OP_SUM ? 0 : op == OP_REDUCE_MAX ? -INFINITY : INFINITY;
        for (int64_t i = 0; i < n; i++) {
            unravel(i, &s, idx);
            int k = 0;
            for (int d = 0; d < r; d++)
                if (!(axes >> d & 1)) oidx[k++] = idx[d];
            int64_t o = ravel(oidx, &os);
            double v = rt_tensor_get_f64(xc, i);
            if (op == OP_SUM)
                ref[o] += v;
            else if (op == OP_REDUCE_MAX)
                ref[o] = fmax(ref[o], v);
            else
                ref[o] = fmin(ref[o], v);
        }
        for (int64_t o = 0; o < on; o++)
            norm = fmax(norm, fabs(ref[o]));
        for (int64_t o = 0; o < on; o++) {
            double got = rt_tensor_get_f64(res, o);
            if (dt == DT_F32 || dt == DT_F64)
                cr_expect(fabs(got - ref[o]) <= 1e-4 * norm, "%s axes=%x [%lld]: got %g want %g",
                          ir_op_name(op), axes, (long long)o, got, ref[o]);
            else
                cr_expect_eq(got, ref[o], "%s axes=%x [%lld]", ir_op_name(op), axes, (long long)o);
        }
        free(ref);
        rt_tensor_free(res);
        rt_tensor_free(xc);
    }
}

static void reduce_all(OpKind op) {
    reduce_case(op, DT_F32, th_shape(4, 3, 1, 5, 4));
    reduce_case(op, DT_F64, th_shape(3, 2, 7, 3));
    reduce_case(op, DT_I32, th_shape(3, 3, 4, 2));
    reduce_case(op, DT_I64, th_shape(2, 5, 3));
    reduce_case(op, DT_F32, th_shape(0));
    reduce_case(op, DT_F32, th_shape(1, 1));
    reduce_case(op, DT_F32, th_shape(3, 2, 65, 3)); /* long rows both ways */
    if (op != OP_SUM) reduce_case(op, DT_BOOL, th_shape(2, 3, 4));
}
static void check_sum(void) {
    reduce_all(OP_SUM);
}
static void check_reduce_max(void) {
    reduce_all(OP_REDUCE_MAX);
}
static void check_reduce_min(void) {
    reduce_all(OP_REDUCE_MIN);
}

static void check_argmax(void) {
    Shape s = th_shape(3, 4, 5, 3);
    for (int k = 0; k < 2; k++) {
        DType dt = k ? DT_I32 : DT_F32;
        for (int axis = 0; axis < 3; axis++) {
            fresh();
            RtTensor *x = rand_tensor(dt, s, -3, 3), *xc = rt_tensor_clone(x);
            RtTensor *res = eval(ir_reduce(G, OP_ARGMAX, feed(x), 1u << axis, L));
            cr_expect_eq(res->dtype, DT_I64);
            Shape os = res->shape;
            int64_t idx[8];
            for (int64_t o = 0; o < rt_shape_numel(&os); o++) {
                int64_t oidx[8];
                unravel(o, &os, oidx);
                int64_t best = -1;
                double bv = -INFINITY;
                for (int64_t j = 0; j < s.dims[axis]; j++) {
                    for (int d = 0, q = 0; d < 3; d++)
                        idx[d] = d == axis ? j : oidx[q++];
                    double v = rt_tensor_get_f64(xc, ravel(idx, &s));
                    if (v > bv) {
                        bv = v;
                        best = j; /* first maximum wins */
                    }
                }
                cr_expect_eq(rt_tensor_get_i64(res, o), best, "argmax axis %d [%lld]", axis,
                             (long long)o);
            }
            rt_tensor_free(res);
            rt_tensor_free(xc);
        }
    }
}

/* ---- movement ------------------------------------------------------------------------------ */

static void check_reshape(void) {
    fresh();
    RtTensor *x = rand_tensor(DT_F32, th_shape(3, 2, 3, 5), -1, 1), *xc = rt_tensor_clone(x);
    RtTensor *r = eval(ir_reshape(G, feed(x), th_shape(2, 5, 6), L));
    cr_expect(memcmp(r->data, xc->data, 30 * 4) == 0);
    rt_tensor_free(r);
    rt_tensor_free(xc);
}

static void check_permute(void) {
    static const int perms3[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    Shape s = th_shape(3, 2, 3, 5);
    for (int p = 0; p < 6; p++) {
        for (int k = 0; k < 2; k++) {
            DType dt = k ? DT_BOOL : DT_F64;
            fresh();
            RtTensor *x = rand_tensor(dt, s, 0, 1), *xc = rt_tensor_clone(x);
            RtTensor *r = eval(ir_permute(G, feed(x), perms3[p], L));
            int64_t oidx[8], iidx[8];
            for (int64_t i = 0; i < 30; i++) {
                unravel(i, &r->shape, oidx);
                for (int d = 0; d < 3; d++)
                    iidx[perms3[p][d]] = oidx[d];
                cr_expect_eq(rt_tensor_get_f64(r, i), rt_tensor_get_f64(xc, ravel(iidx, &s)));
            }
            rt_tensor_free(r);
            rt_tensor_free(xc);
        }
    }
    /* rank 4 with a size-1 axis, i32 */
    int perm[4] = {3, 1, 0, 2};
    Shape s4 = th_shape(4, 3, 1, 4, 2);
    fresh();
    RtTensor *x = rand_tensor(DT_I32, s4, -50, 50), *xc = rt_tensor_clone(x);
    RtTensor *r = eval(ir_permute(G, feed(x), perm, L));
    int64_t oidx[8], iidx[8];
    for (int64_t i = 0; i < 24; i++) {
        unravel(i, &r->shape, oidx);
        for (int d = 0; d < 4; d++)
            iidx[perm[d]] = oidx[d];
        cr_expect_eq(rt_tensor_get_i64(r, i), rt_tensor_get_i64(xc, ravel(iidx, &s4)));
    }
    rt_tensor_free(r);
    rt_tensor_free(xc);
}

static void check_broadcast(void) {
    const Shape from[] = {th_shape(2, 3, 1), th_shape(0), th_shape(1, 5), th_shape(3, 1, 3, 1)};
    const Shape to[] = {th_shape(3, 2, 3, 5), th_shape(2, 4, 3), th_shape(3, 2, 3, 5),
                        th_shape(3, 2, 3, 7)};
    for (int c = 0; c < 4; c++) {
        fresh();
        RtTensor *x = rand_tensor(DT_F32, from[c], -1, 1), *xc = rt_tensor_clone(x);
        RtTensor *r = eval(ir_broadcast(G, feed(x), to[c], L));
        int64_t idx[8];
        for (int64_t i = 0; i < rt_shape_numel(&to[c]); i++) {
            unravel(i, &to[c], idx);
            cr_expect_eq(rt_tensor_get_f64(r, i),
                         rt_tensor_get_f64(xc, bcast_index(idx, &to[c], &from[c])));
        }
        rt_tensor_free(r);
        rt_tensor_free(xc);
    }
}

static void check_slice(void) {
    Shape s = th_shape(3, 5, 7, 4);
    const int64_t cases[][3][3] = {{{1, 0, 0}, {4, 7, 4}, {1, 2, 3}},
                                   {{0, 6, 1}, {5, 7, 3}, {2, 1, 1}},
                                   {{2, 3, 0}, {2, 7, 4}, {1, 5, 1}}};
    for (int c = 0; c < 3; c++) {
        fresh();
        RtTensor *x = rand_tensor(DT_F32, s, -1, 1), *xc = rt_tensor_clone(x);
        RtTensor *r = eval(ir_slice(G, feed(x), cases[c][0], cases[c][1], cases[c][2], L));
        int64_t oidx[8], iidx[8];
        for (int d = 0; d < 3; d++)
            cr_expect_eq(r->shape.dims[d],
                         (cases[c][1][d] - cases[c][0][d] + cases[c][2][d] - 1) / cases[c][2][d]);
        for (int64_t i = 0; i < rt_shape_numel(&r->shape); i++) {
            unravel(i, &r->shape, oidx);
            for (int d = 0; d < 3; d++)
                iidx[d] = cases[c][0][d] + oidx[d] * cases[c][2][d];
            cr_expect_eq(rt_tensor_get_f64(r, i), rt_tensor_get_f64(xc, ravel(iidx, &s)));
        }
        rt_tensor_free(r);
        rt_tensor_free(xc);
    }
}

static void check_concat(void) {
    for (int axis = 0; axis < 3; axis++) {
        Shape s[3] = {th_shape(3, 2, 3, 4), th_shape(3, 2, 3, 4), th_shape(3, 2, 3, 4)};
        s[1].dims[axis] = 1;
        s[2].dims[axis] = 5;
        fresh();
        RtTensor *xc[3];
        Node *xs[3];
        for (int k = 0; k < 3; k++) {
            RtTensor *x = rand_tensor(DT_F32, s[k], -1, 1);
            xc[k] = rt_tensor_clone(x);
            xs[k] = feed(x);
        }
        RtTensor *r = eval(ir_concat(G, xs, 3, axis, L));
        int64_t oidx[8];
        for (int64_t i = 0; i < rt_shape_numel(&r->shape); i++) {
            unravel(i, &r->shape, oidx);
            int k = 0;
            while (oidx[axis] >= s[k].dims[axis])
                oidx[axis] -= s[k++].dims[axis];
            cr_expect_eq(rt_tensor_get_f64(r, i), rt_tensor_get_f64(xc[k], ravel(oidx, &s[k])));
        }
        rt_tensor_free(r);
        for (int k = 0; k < 3; k++)
            rt_tensor_free(xc[k]);
    }
}

static void check_gather(void) {
    for (int k = 0; k < 2; k++) {
        fresh();
        Shape ds = th_shape(3, 6, 2, 3), is = k ? th_shape(0) : th_shape(2, 4, 3);
        RtTensor *d = rand_tensor(DT_F32, ds, -1, 1),
                 *idx = rand_tensor(k ? DT_I64 : DT_I32, is, 0, 5);
        RtTensor *dc = rt_tensor_clone(d), *ic = rt_tensor_clone(idx);
        Node *nd = feed(d), *ni = feed(idx);
        RtTensor *r = eval(ir_gather(G, nd, ni, L));
        int64_t ni_ = rt_shape_numel(&is);
        for (int64_t i = 0; i < ni_; i++)
            for (int64_t j = 0; j < 6; j++)
                cr_expect_eq(rt_tensor_get_f64(r, i * 6 + j),
                             rt_tensor_get_f64(dc, rt_tensor_get_i64(ic, i) * 6 + j));
        rt_tensor_free(r);
        rt_tensor_free(dc);
        rt_tensor_free(ic);
    }
}

static void check_scatter_add(void) {
    for (int k = 0; k < 2; k++) {
        DType dt = k ? DT_I32 : DT_F32;
        fresh();
        RtTensor *u = rand_tensor(dt, th_shape(3, 4, 3, 2), -5, 5),
                 *idx = rand_tensor(DT_I64, th_shape(2, 4, 3), 0, 4);
        RtTensor *uc = rt_tensor_clone(u), *ic = rt_tensor_clone(idx);
        Node *nu = feed(u), *ni = feed(idx);
        RtTensor *r = eval(ir_scatter_add(G, nu, ni, 5, L));
        double ref[10] = {0};
        for (int64_t i = 0; i < 12; i++)
            for (int j = 0; j < 2; j++)
                ref[rt_tensor_get_i64(ic, i) * 2 + j] += rt_tensor_get_f64(uc, i * 2 + j);
        for (int j = 0; j < 10; j++)
            expect_close(rt_tensor_get_f64(r, j), ref[j], 1e-5, "scatter_add", j);
        rt_tensor_free(r);
        rt_tensor_free(uc);
        rt_tensor_free(ic);
    }
}

/* The order ops by hand on small cases (numpy's answers on larger ones:
 * test_order.c). */
static RtTensor *from(DType dt, Shape s, const double *v) {
    RtTensor *t = rt_tensor_new(dt, s);
    for (int64_t i = 0; i < rt_shape_numel(&s); i++)
        rt_tensor_set_f64(t, i, v[i]);
    return t;
}

static void expect_vals(RtTensor *r, const double *want, int n, const char *what) {
    cr_assert_not_null(r, "%s: %s", what, th_last_diag(D));
    for (int i = 0; i < n; i++)
        cr_expect_eq(rt_tensor_get_f64(r, i), want[i], "%s[%d] = %g, want %g", what, i,
                     rt_tensor_get_f64(r, i), want[i]);
    rt_tensor_free(r);
}

static void check_cumsum(void) {
    static const double x[6] = {1, -2, 3, 4, 0.5, -1};
    static const double ax1[6] = {1, -1, 2, 4, 4.5, 3.5};
    fresh();
    expect_vals(eval(ir_cumsum(G, feed(from(DT_F32, th_shape(2, 2, 3), x)), 1, false, L)), ax1, 6,
                "cumsum axis 1");
    fresh();
    expect_vals(
        eval(ir_cumsum(G, feed(from(DT_I32, th_shape(2, 2, 3), (double[]){1, -2, 3, 4, 0, -1})), 0,
                       true, L)),
        (double[]){5, -2, 2, 4, 0, -1}, 6, "cumsum i32 axis 0 reverse");
}

static void check_argsort(void) {
    static const double x[7] = {2, -1, 2, 0, -1, 3, 2};
    fresh();
    Node *n = feed(from(DT_F64, th_shape(1, 7), x));
    expect_vals(eval(ir_argsort(G, n, 0, false, L)), (double[]){1, 4, 3, 0, 2, 6, 5}, 7,
                "argsort (ties in index order)");
    fresh();
    n = feed(from(DT_I64, th_shape(1, 7), x));
    expect_vals(eval(ir_argsort(G, n, 0, true, L)), (double[]){5, 0, 2, 6, 3, 1, 4}, 7,
                "argsort descending (ties in index order)");
}

static void check_components(void) {
    /* 1 1 0 1
       0 1 0 1
       1 0 0 1 */
    static const double m[12] = {1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1};
    fresh();
    Node *n = ir_cast(G, feed(from(DT_F32, th_shape(2, 3, 4), m)), DT_BOOL, L);
    expect_vals(eval(ir_components(G, n, L)), (double[]){1, 1, 0, 2, 0, 1, 0, 2, 3, 0, 0, 2}, 12,
                "components 2-D");
    fresh();
    n = ir_cast(G, feed(from(DT_F32, th_shape(1, 12), m)), DT_BOOL, L);
    expect_vals(eval(ir_components(G, n, L)), (double[]){1, 1, 0, 2, 0, 3, 0, 4, 4, 0, 0, 5}, 12,
                "components 1-D runs");
}

static void check_pad(void) {
    Shape s = th_shape(3, 2, 3, 4);
    int64_t lo[3] = {1, 0, 2}, hi[3] = {0, 3, 1};
    for (int k = 0; k < 2; k++) {
        DType dt = k ? DT_I64 : DT_F32;
        double pv = k ? -7 : 0.25;
        fresh();
        RtTensor *x = rand_tensor(dt, s, -5, 5), *xc = rt_tensor_clone(x);
        RtTensor *r = eval(ir_pad(G, feed(x), lo, hi, pv, L));
        int64_t oidx[8], iidx[8];
        for (int64_t i = 0; i < rt_shape_numel(&r->shape); i++) {
            unravel(i, &r->shape, oidx);
            bool inside = true;
            for (int d = 0; d < 3; d++) {
                iidx[d] = oidx[d] - lo[d];
                inside = inside && iidx[d] >= 0 && iidx[d] < s.dims[d];
            }
            cr_expect_eq(rt_tensor_get_f64(r, i),
                         inside ? rt_tensor_get_f64(xc, ravel(iidx, &s)) : pv);
        }
        rt_tensor_free(r);
        rt_tensor_free(xc);
    }
}

/* ---- contraction ------------------------------------------------------------------------------
 */

static void matmul_case(DType dt, Shape sa, Shape sb) {
    fresh();
    RtTensor *a = rand_tensor(dt, sa, -3, 3), *b = rand_tensor(dt, sb, -3, 3);
    RtTensor *ac = rt_tensor_clone(a), *bc = rt_tensor_clone(b);
    Node *na = feed(a), *nb = feed(b);
    RtTensor *r = eval(ir_matmul(G, na, nb, L));
    int ra = sa.rank;
    int64_t M = sa.dims[ra - 2], K = sa.dims[ra - 1], N = sb.dims[sb.rank - 1];
    int64_t MN = M * N, batch = MN > 0 ? rt_shape_numel(&r->shape) / MN : 0;
    double norm = 1;
    int64_t total = rt_shape_numel(&r->shape);
    double *ref = calloc((size_t)(total ? total : 1), sizeof(double));
    for (int64_t p = 0; p < batch; p++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += rt_tensor_get_f64(ac, p * M * K + i * K + k) *
                         rt_tensor_get_f64(bc, p * K * N + k * N + j);
                ref[p * M * N + i * N + j] = s;
                norm = fmax(norm, fabs(s));
            }
    for (int64_t i = 0; i < total; i++) {
        double got = rt_tensor_get_f64(r, i);
        if (dt == DT_F32 || dt == DT_F64)
            cr_expect(fabs(got - ref[i]) <= 1e-4 * norm, "matmul [%lld]: %g vs %g", (long long)i,
                      got, ref[i]);
        else
            cr_expect_eq(got, ref[i]);
    }
    free(ref);
    rt_tensor_free(r);
    rt_tensor_free(ac);
    rt_tensor_free(bc);
}

static void check_matmul(void) {
    matmul_case(DT_F32, th_shape(2, 5, 7), th_shape(2, 7, 3));
    matmul_case(DT_F32, th_shape(2, 1, 1), th_shape(2, 1, 1));
    matmul_case(DT_F32, th_shape(2, 1, 13), th_shape(2, 13, 1));
    matmul_case(DT_F32, th_shape(3, 2, 3, 4), th_shape(3, 2, 4, 5));
    matmul_case(DT_F32, th_shape(4, 2, 1, 3, 4), th_shape(4, 2, 1, 4, 2));
    matmul_case(DT_F64, th_shape(2, 33, 17), th_shape(2, 17, 9));
    matmul_case(DT_I32, th_shape(3, 2, 3, 4), th_shape(3, 2, 4, 2));
    matmul_case(DT_I64, th_shape(2, 3, 0), th_shape(2, 0, 2)); /* K = 0: zeros */
    matmul_case(DT_F32, th_shape(2, 0, 4), th_shape(2, 4, 2));
}

/* ---- library calls (linear algebra): identities on odd, size-1, empty and batched
 * shapes in f32 and f64 (helpers/linalg_ref.c); numpy fixtures and closed forms are in
 * test_linalg.c ---------------------------------------------------------------------------- */

static void la_case(OpKind op, DType dt, Shape sa, Shape sb) {
    fresh();
    th_la_graph(G, op, dt, sa, sb, L);
    uint64_t r = rng_state++;
    RtTensor *in[2] = {th_la_input(op, 0, dt, sa, &r),
                       op == OP_SOLVE ? th_la_input(op, 1, dt, sb, &r) : NULL};
    RtTensor *out[IR_MAX_RESULTS] = {NULL};
    bool ok = ir_interp_run(G, in, out, D);
    char what[96], b1[48];
    snprintf(what, sizeof what, "%s %s%s", ir_op_name(op), rt_dtype_name(dt),
             rt_shape_str(&sa, b1, sizeof b1));
    cr_assert(ok, "%s: %s", what, th_last_diag(D));
    th_la_verify(what, op, in[0], in[1], out);
    for (int i = 0; i < G->noutputs; i++)
        rt_tensor_free(out[i]);
    rt_tensor_free(in[0]);
    rt_tensor_free(in[1]);
}

static void la_square(OpKind op) {
    for (int d = 0; d < 2; d++) {
        DType dt = d ? DT_F64 : DT_F32;
        la_case(op, dt, th_shape(2, 5, 5), th_shape(2, 5, 3));
        la_case(op, dt, th_shape(2, 1, 1), th_shape(2, 1, 1));
        la_case(op, dt, th_shape(3, 3, 4, 4), th_shape(3, 3, 4, 2));
        la_case(op, dt, th_shape(4, 2, 1, 3, 3), th_shape(4, 2, 1, 3, 1));
        la_case(op, dt, th_shape(2, 0, 0), th_shape(2, 0, 2));
    }
}

static void la_any(OpKind op) {
    for (int d = 0; d < 2; d++) {
        DType dt = d ? DT_F64 : DT_F32;
        la_case(op, dt, th_shape(2, 6, 4), th_shape(0));
        la_case(op, dt, th_shape(2, 4, 6), th_shape(0));
        la_case(op, dt, th_shape(2, 5, 5), th_shape(0));
        la_case(op, dt, th_shape(2, 1, 1), th_shape(0));
        la_case(op, dt, th_shape(3, 3, 5, 2), th_shape(0));
    }
}

static void check_solve(void) {
    la_square(OP_SOLVE);
}
static void check_cholesky(void) {
    la_square(OP_CHOLESKY);
}
static void check_inv(void) {
    la_square(OP_INV);
}
static void check_det(void) {
    la_square(OP_DET);
}
static void check_slogdet(void) {
    la_square(OP_SLOGDET);
}
static void check_qr(void) {
    la_any(OP_QR);
}
static void check_svd(void) {
    la_any(OP_SVD);
}
static void check_eigh(void) {
    la_square(OP_EIGH);
}

/* ---- random --------------------------------------------------------------------------------- */

static const uint32_t gold_words[6] = {0xe653847c, 0xcdd15fe2, 0xb4055292,
                                       0x0370f05f, 0x1823c60a, 0x4d131871};
static const double gold_uniform[6] = {0.8997118473052979,  0.8039760589599609,
                                       0.7032061815261841,  0.013442069292068481,
                                       0.09429588913917542, 0.3010726273059845};
static const double gold_normal[6] = {0.1529454605183685, -0.43355410190025206, 0.8361811147001171,
                                      0.0707914372363717, -0.6854580302806746,  2.0622275956299285};

static RtTensor *rng_run(OpKind op, DType dt, int64_t n, int64_t seed, int64_t offset) {
    fresh();
    Node *s = ir_scalar(G, DT_I64, (double)seed, L);
    Node *o = ir_scalar(G, DT_I64, (double)offset, L);
    return eval(ir_rng(G, op, dt, th_shape(1, (int)n), s, o, 0xabfe42a2u, L));
}

static void check_rng_uniform(void) {
    RtTensor *u = rng_run(OP_RNG_UNIFORM, DT_F32, 6, 42, 0);
    for (int i = 0; i < 6; i++) {
        cr_expect_eq(((float *)u->data)[i], (float)gold_uniform[i], "uniform %d", i);
        cr_expect_eq(((float *)u->data)[i], ((float)(gold_words[i] >> 8) + 0.5f) * 0x1p-24f);
    }
    rt_tensor_free(u);
    /* offset: element i is index offset + i, even across block boundaries */
    RtTensor *v = rng_run(OP_RNG_UNIFORM, DT_F32, 9, 42, 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(((float *)v->data)[i], (float)gold_uniform[i + 3]);
    rt_tensor_free(v);
    RtTensor *d = rng_run(OP_RNG_UNIFORM, DT_F64, 6, 42, 0);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(((double *)d->data)[i], gold_uniform[i]);
    rt_tensor_free(d);
    /* shape does not matter, only the flat index */
    fresh();
    RtTensor *m =
        eval(ir_rng(G, OP_RNG_UNIFORM, DT_F32, th_shape(2, 2, 3), ir_scalar(G, DT_I64, 42, L),
                    ir_scalar(G, DT_I64, 0, L), 0xabfe42a2u, L));
    for (int i = 0; i < 6; i++)
        cr_expect_eq(((float *)m->data)[i], (float)gold_uniform[i]);
    rt_tensor_free(m);
}

static void check_rng_normal(void) {
    RtTensor *z = rng_run(OP_RNG_NORMAL, DT_F32, 6, 42, 0);
    for (int i = 0; i < 6; i++) {
        double got = ((float *)z->data)[i];
        cr_expect(fabs(got - gold_normal[i]) <= 1e-6 * fabs(gold_normal[i]),
                  "normal %d: %.9g vs %.17g", i, got, gold_normal[i]);
        cr_expect_eq(((float *)z->data)[i], rt_rng_normal(42, 0xabfe42a2u, (uint64_t)i));
    }
    rt_tensor_free(z);
    RtTensor *w = rng_run(OP_RNG_NORMAL, DT_F32, 11, 42, 5);
    for (int i = 0; i < 11; i++)
        cr_expect_eq(((float *)w->data)[i], rt_rng_normal(42, 0xabfe42a2u, 5 + (uint64_t)i));
    rt_tensor_free(w);
    RtTensor *d = rng_run(OP_RNG_NORMAL, DT_F64, 6, 42, 0);
    for (int i = 0; i < 6; i++)
        cr_expect(fabs(((double *)d->data)[i] - gold_normal[i]) <= 1e-12 * fabs(gold_normal[i]),
                  "normal f64 %d", i);
    rt_tensor_free(d);
    /* a negative i64 seed is the same bits as the uint64 seed */
    RtTensor *neg = rng_run(OP_RNG_NORMAL, DT_F32, 3, -1, 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(((float *)neg->data)[i], rt_rng_normal(UINT64_MAX, 0xabfe42a2u, (uint64_t)i));
    rt_tensor_free(neg);
}

static void check_fresh_seed(void) {
    const struct {
        int64_t s, t;
        uint32_t k;
        uint64_t want;
    } cases[] = {{0, 0, 0, 0x3ed3f23b51dc4d72ull},
                 {0, 1, 0, 0xfc031d074b2a1a4cull},
                 {42, 0, 0, 0x3fababe99983069bull},
                 {42, 7, 1, 0xb40d6319921762d5ull}};
    for (int c = 0; c < 4; c++) {
        fresh();
        Node *s = ir_scalar(G, DT_I64, (double)cases[c].s, L),
             *t = ir_scalar(G, DT_I64, (double)cases[c].t, L);
        RtTensor *r = eval(ir_fresh_seed(G, s, t, cases[c].k, L));
        cr_expect_eq((uint64_t) * (int64_t *)r->data, cases[c].want, "fresh_seed case %d", c);
        rt_tensor_free(r);
    }
}

/* ---- the table walk -----------------------------------------------------------------------------
 */

typedef void (*OpCheck)(void);
static const OpCheck checks[OP_COUNT] = {
    [OP_INPUT] = check_input,
    [OP_CONST] = check_const,
    [OP_IOTA] = check_iota,
    [OP_NEG] = check_neg,
    [OP_ABS] = check_abs,
    [OP_SIGN] = check_sign,
    [OP_FLOOR] = check_floor,
    [OP_EXP] = check_exp,
    [OP_LOG] = check_log,
    [OP_SQRT] = check_sqrt,
    [OP_SIN] = check_sin,
    [OP_COS] = check_cos,
    [OP_ERF] = check_erf,
    [OP_NOT] = check_not,
    [OP_CAST] = check_cast,
    [OP_STOP_GRAD] = check_stop_grad,
    [OP_ADD] = check_add,
    [OP_SUB] = check_sub,
    [OP_MUL] = check_mul,
    [OP_DIV] = check_div,
    [OP_MOD] = check_mod,
    [OP_POW] = check_pow,
    [OP_MAX] = check_max,
    [OP_MIN] = check_min,
    [OP_LT] = check_lt,
    [OP_LE] = check_le,
    [OP_EQ] = check_eq,
    [OP_NE] = check_ne,
    [OP_AND] = check_and,
    [OP_OR] = check_or,
    [OP_WHERE] = check_where,
    [OP_SUM] = check_sum,
    [OP_REDUCE_MAX] = check_reduce_max,
    [OP_REDUCE_MIN] = check_reduce_min,
    [OP_ARGMAX] = check_argmax,
    [OP_RESHAPE] = check_reshape,
    [OP_PERMUTE] = check_permute,
    [OP_BROADCAST] = check_broadcast,
    [OP_SLICE] = check_slice,
    [OP_CONCAT] = check_concat,
    [OP_GATHER] = check_gather,
    [OP_SCATTER_ADD] = check_scatter_add,
    [OP_PAD] = check_pad,
    [OP_MATMUL] = check_matmul,
    [OP_CUMSUM] = check_cumsum,
    [OP_ARGSORT] = check_argsort,
    [OP_COMPONENTS] = check_components,
    [OP_SOLVE] = check_solve,
    [OP_CHOLESKY] = check_cholesky,
    [OP_INV] = check_inv,
    [OP_DET] = check_det,
    [OP_SLOGDET] = check_slogdet,
    [OP_QR] = check_qr,
    [OP_SVD] = check_svd,
    [OP_EIGH] = check_eigh,
    [OP_RNG_UNIFORM] = check_rng_uniform,
    [OP_RNG_NORMAL] = check_rng_normal,
    [OP_FRESH_SEED] = check_fresh_seed,
};
_Static_assert(sizeof checks / sizeof checks[0] == OP_COUNT, "one checker slot per op");

Test(ops, op_table_is_covered) {
    for (int op = 0; op < OP_COUNT; op++)
        cr_expect_not_null(checks[op], "op '%s' has no interpreter check in test_ops.c",
                           ir_op_name((OpKind)op));
}

/* One test per op, so a failure names the op. */
#define X(id, name, arity, shape, flags, doc)                                                      \
    Test(ops, id) {                                                                                \
        cr_assert_not_null(checks[OP_##id]);                                                       \
        checks[OP_##id]();                                                                         \
        cr_expect_eq(D->nerrors, 0, "unexpected diagnostic: %s", th_last_diag(D));                 \
    }
#include "ir/ops.def"
#undef X

Test(ops, int_edges) {
    check_int_edges();
}
