/* Tests for passes/autodiff.c and autodiff_rules.c against finite differences.
 *
 * The main test walks the op table: every op flagged OPF_DIFF must have at
 * least one case below (odd sizes, size-1 and scalar shapes, broadcasting),
 * and for each case the gradient of L = sum(op(x) * r), with r fixed random
 * weights, computed by pass_grad and the interpreter, must match central
 * finite differences in float64. Ops without OPF_DIFF must carry GRAD_NONE.
 * The same walk runs at second order: a Hessian-vector product (grad of
 * grad) against central differences of the gradient, for every op and
 * composite. Then specific semantics, an HVP through a small network and
 * the exact Hessian trace of the linear
 * single-neuron autoencoder against its closed form (methods.md section 3). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "ir/interp.h"
#include "ir/ir.h"
#include "passes/autodiff.h"
#include "passes/autodiff_rules.h"

#define FD_H 1e-6
#define FD_TOL 1e-6
#define MAXIN 4

/* ---- deterministic random numbers (splitmix64) ---------------------------- */

static uint64_t rng_state;

static uint64_t next_u64(void) {
    return th_splitmix64(&rng_state);
}

static double uniform(double lo, double hi) {
    return th_uniform(&rng_state, lo, hi);
}

/* ---- cases ----------------------------------------------------------------- */

typedef enum {
    DOM_ANY,  /* [-2, 2] */
    DOM_POS,  /* [0.5, 2]: log, sqrt, pow base, divisors */
    DOM_AWAY, /* +-[0.3, 2]: away from the kink at 0 (abs, relu, where conditions) */
    DOM_IDX,  /* integer index in [0, imax) */
} Domain;

typedef struct {
    DType dt;
    Shape shape;
    Domain dom;
    int64_t imax;
} InSpec;

typedef Node *(*BuildFn)(Graph *g, Node **in, int variant);

typedef struct {
    char label[48];
    int nin;
    InSpec in[MAXIN];
    BuildFn build;
    int variant;
} GradCase;

static Shape S(int rank, ...) {
    Shape s;
    memset(&s, 0, sizeof s);
    s.rank = rank;
    va_list ap;
    va_start(ap, rank);
    for (int i = 0; i < rank; i++)
        s.dims[i] = va_arg(ap, int);
    va_end(ap);
    return s;
}

static InSpec F(Shape s, Domain d) {
    return (InSpec){DT_F64, s, d, 0};
}
static InSpec IDX(Shape s, int64_t imax) {
    return (InSpec){DT_I64, s, DOM_IDX, imax};
}

static GradCase mk(const char *label, BuildFn b, int variant, int nin, InSpec a, InSpec b2,
                   InSpec c) {
    GradCase gc;
    memset(&gc, 0, sizeof gc);
    snprintf(gc.label, sizeof gc.label, "%s", label);
    gc.build = b;
    gc.variant = variant;
    gc.nin = nin;
    gc.in[0] = a;
    gc.in[1] = b2;
    gc.in[2] = c;
    return gc;
}

static const SrcLoc L0 = {0, 0, 0, 0};
static OpKind cur_op; /* the op a generic builder applies */

static Node *b_unary(Graph *g, Node **in, int v) {
    (void)v;
    return ir_unary(g, cur_op, in[0], L0);
}
static Node *b_binary(Graph *g, Node **in, int v) {
    (void)v;
    return ir_binary(g, cur_op, in[0], in[1], L0);
}
static Node *b_cast(Graph *g, Node **in, int v) {
    (void)v; /* a raw f64 -> f64 cast: exercises the rule without rounding */
    return ir_node_new(g, OP_CAST, DT_F64, in[0]->shape, &in[0], 1, NULL, L0);
}
static Node *b_where(Graph *g, Node **in, int v) {
    (void)v; /* condition from a third input: its gradient must be zero */
    Node *c = ir_binary(g, OP_LT, in[2], ir_scalar(g, DT_F64, 0.0, L0), L0);
    return ir_where(g, c, in[0], in[1], L0);
}
static const uint32_t reduce_axes[] = {0x2, 0x5, 0x7, 0x1};
static Node *b_reduce(Graph *g, Node **in, int v) {
    uint32_t axes = reduce_axes[v] & (uint32_t)((1u << in[0]->shape.rank) - 1);
    return ir_reduce(g, cur_op, in[0], axes, L0);
}
static Node *b_reshape(Graph *g, Node **in, int v) {
    return ir_reshape(g, in[0], v == 0 ? S(2, 2, 6) : S(0), L0);
}
static Node *b_permute(Graph *g, Node **in, int v) {
    static const int perms[2][3] = {{2, 0, 1}, {1, 0, 2}};
    return ir_permute(g, in[0], perms[v], L0);
}
static Node *b_broadcast(Graph *g, Node **in, int v) {
    return ir_broadcast(g, in[0], v == 0 ? S(3, 2, 3, 5) : S(1, 4), L0);
}
static Node *b_slice(Graph *g, Node **in, int v) {
    static const int64_t st[4][2] = {{1, 0}, {2, 0}, {1, 1}, {0, 2}};
    static const int64_t sp[4][2] = {{6, 5}, {9, 0}, {4, 3}, {3, 3}};
    static const int64_t ss[4][2] = {{2, 1}, {3, 1}, {1, 1}, {2, 5}};
    return ir_slice(g, in[0], st[v], sp[v], ss[v], L0);
}
static Node *b_concat(Graph *g, Node **in, int v) {
    return ir_concat(g, in, v == 0 ? 2 : 3, v == 0 ? 0 : 1, L0);
}
static Node *b_gather(Graph *g, Node **in, int v) {
    (void)v;
    return ir_gather(g, in[0], in[1], L0);
}
static Node *b_scatter(Graph *g, Node **in, int v) {
    (void)v;
    return ir_scatter_add(g, in[0], in[1], 5, L0);
}
static Node *b_pad(Graph *g, Node **in, int v) {
    static const int64_t lo[2][2] = {{1, 0}, {0, 2}}, hi[2][2] = {{2, 3}, {0, 0}};
    return ir_pad(g, in[0], lo[v], hi[v], v == 0 ? 0.5 : 0.0, L0);
}
static Node *b_cumsum(Graph *g, Node **in, int v) {
    static const int axis[3] = {1, 0, 1};
    return ir_cumsum(g, in[0], axis[v], v == 1, L0);
}
static Node *b_matmul(Graph *g, Node **in, int v) {
    (void)v;
    return ir_matmul(g, in[0], in[1], L0);
}

/* Library calls on well-conditioned matrices made from the raw inputs x:
 * x + 6 I (diagonally dominant) for solve, inv and det, x x^T + I
 * (symmetric positive definite, the domain cholesky's symmetric gradient is
 * defined on) for cholesky; the added terms have trivial derivatives. */
static Node *plus_diag(Graph *g, Node *x, double c) {
    int r = x->shape.rank;
    Node *eye = ir_cast(g,
                        ir_binary(g, OP_EQ, ir_iota(g, DT_I64, x->shape, r - 2, L0),
                                  ir_iota(g, DT_I64, x->shape, r - 1, L0), L0),
                        x->dtype, L0);
    return ir_binary(g, OP_ADD, x, ir_binary(g, OP_MUL, eye, ir_scalar(g, x->dtype, c, L0), L0),
                     L0);
}
static Node *b_linalg(Graph *g, Node **in, int v) {
    (void)v;
    Node *a = plus_diag(g, in[0], 6.0);
    if (cur_op == OP_SOLVE) {
        Node *src[2] = {a, in[1]};
        return ir_call(g, OP_SOLVE, src, L0);
    }
    if (cur_op == OP_CHOLESKY) {
        int r = in[0]->shape.rank, perm[IR_MAX_RANK];
        for (int i = 0; i < r; i++)
            perm[i] = i;
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 2;
        a = plus_diag(g, ir_matmul(g, in[0], ir_permute(g, in[0], perm, L0), L0), 1.0);
    }
    if (cur_op == OP_SVD) { /* x + diag(5, 10, 15, ..): singular values apart */
        int r = in[0]->shape.rank;
        Node *row = ir_iota(g, DT_I64, in[0]->shape, r - 2, L0),
             *col = ir_iota(g, DT_I64, in[0]->shape, r - 1, L0);
        Node *d = ir_where(g, ir_binary(g, OP_EQ, row, col, L0),
                           ir_binary(g, OP_MUL,
                                     ir_binary(g, OP_ADD, ir_cast(g, row, DT_F64, L0),
                                               ir_scalar(g, DT_F64, 1.0, L0), L0),
                                     ir_scalar(g, DT_F64, 5.0, L0), L0),
                           ir_const(g, DT_F64, in[0]->shape, 0.0, L0), L0);
        a = ir_binary(g, OP_ADD, in[0], d, L0);
    }
    if (cur_op == OP_EIGH) { /* (x + x^T) / 2 + diag(0, 5, 10, ..): eigenvalues apart */
        int r = in[0]->shape.rank, perm[IR_MAX_RANK];
        for (int i = 0; i < r; i++)
            perm[i] = i;
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 2;
        Node *sym =
            ir_binary(g, OP_MUL, ir_binary(g, OP_ADD, in[0], ir_permute(g, in[0], perm, L0), L0),
                      ir_scalar(g, DT_F64, 0.5, L0), L0);
        Node *row = ir_iota(g, DT_I64, in[0]->shape, r - 2, L0),
             *col = ir_iota(g, DT_I64, in[0]->shape, r - 1, L0);
        Node *d = ir_where(
            g, ir_binary(g, OP_EQ, row, col, L0),
            ir_binary(g, OP_MUL, ir_cast(g, row, DT_F64, L0), ir_scalar(g, DT_F64, 5.0, L0), L0),
            ir_const(g, DT_F64, in[0]->shape, 0.0, L0), L0);
        a = ir_binary(g, OP_ADD, sym, d, L0);
    }
    return ir_call(g, cur_op, &a, L0);
}

/* Fills out[] with the cases for op; returns how many. */
static int cases_for(OpKind op, GradCase *out) {
    int n = 0;
    InSpec none = {0};
    Domain d0 = DOM_ANY, d1 = DOM_ANY;
    switch (op) {
    case OP_NEG:
    case OP_ABS:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_ERF:
        d0 = (op == OP_LOG || op == OP_SQRT) ? DOM_POS : op == OP_ABS ? DOM_AWAY : DOM_ANY;
        out[n++] = mk("[3,5]", b_unary, 0, 1, F(S(2, 3, 5), d0), none, none);
        out[n++] = mk("[7]", b_unary, 0, 1, F(S(1, 7), d0), none, none);
        out[n++] = mk("[1]", b_unary, 0, 1, F(S(1, 1), d0), none, none);
        out[n++] = mk("scalar", b_unary, 0, 1, F(S(0), d0), none, none);
        return n;
    case OP_CAST:
        out[n++] = mk("f64->f64 [3,5]", b_cast, 0, 1, F(S(2, 3, 5), DOM_ANY), none, none);
        return n;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW:
    case OP_MAX:
    case OP_MIN:
        d0 = op == OP_POW ? DOM_POS : DOM_ANY;
        d1 = op == OP_DIV ? DOM_POS : DOM_ANY;
        out[n++] = mk("[3,5] [3,5]", b_binary, 0, 2, F(S(2, 3, 5), d0), F(S(2, 3, 5), d1), none);
        out[n++] = mk("[3,1] [1,5]", b_binary, 0, 2, F(S(2, 3, 1), d0), F(S(2, 1, 5), d1), none);
        out[n++] = mk("[4] []", b_binary, 0, 2, F(S(1, 4), d0), F(S(0), d1), none);
        out[n++] = mk("[] [2,3]", b_binary, 0, 2, F(S(0), d0), F(S(2, 2, 3), d1), none);
        out[n++] = mk("[1] [1]", b_binary, 0, 2, F(S(1, 1), d0), F(S(1, 1), d1), none);
        return n;
    case OP_WHERE:
        out[n++] = mk("[3,5]", b_where, 0, 3, F(S(2, 3, 5), DOM_ANY), F(S(2, 3, 5), DOM_ANY),
                      F(S(2, 3, 5), DOM_AWAY));
        out[n++] = mk("[3,5] [1,5] [3,1]", b_where, 0, 3, F(S(2, 3, 5), DOM_ANY),
                      F(S(2, 1, 5), DOM_ANY), F(S(2, 3, 1), DOM_AWAY));
        return n;
    case OP_SUM:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
        out[n++] = mk("[3,4,5] axis 1", b_reduce, 0, 1, F(S(3, 3, 4, 5), DOM_ANY), none, none);
        out[n++] = mk("[3,4,5] axes 0,2", b_reduce, 1, 1, F(S(3, 3, 4, 5), DOM_ANY), none, none);
        out[n++] = mk("[3,4,5] all", b_reduce, 2, 1, F(S(3, 3, 4, 5), DOM_ANY), none, none);
        out[n++] = mk("[7] all", b_reduce, 3, 1, F(S(1, 7), DOM_ANY), none, none);
        out[n++] = mk("[1] all", b_reduce, 3, 1, F(S(1, 1), DOM_ANY), none, none);
        return n;
    case OP_RESHAPE:
        out[n++] = mk("[3,4]->[2,6]", b_reshape, 0, 1, F(S(2, 3, 4), DOM_ANY), none, none);
        out[n++] = mk("[1,1]->[]", b_reshape, 1, 1, F(S(2, 1, 1), DOM_ANY), none, none);
        return n;
    case OP_PERMUTE:
        out[n++] = mk("[2,3,4] (2,0,1)", b_permute, 0, 1, F(S(3, 2, 3, 4), DOM_ANY), none, none);
        out[n++] = mk("[1,3,5] (1,0,2)", b_permute, 1, 1, F(S(3, 1, 3, 5), DOM_ANY), none, none);
        return n;
    case OP_BROADCAST:
        out[n++] = mk("[3,1]->[2,3,5]", b_broadcast, 0, 1, F(S(2, 3, 1), DOM_ANY), none, none);
        out[n++] = mk("[]->[4]", b_broadcast, 1, 1, F(S(0), DOM_ANY), none, none);
        return n;
    case OP_SLICE:
        out[n++] = mk("[7,5] 1:6:2, :", b_slice, 0, 1, F(S(2, 7, 5), DOM_ANY), none, none);
        out[n++] = mk("[9] 2:9:3", b_slice, 1, 1, F(S(1, 9), DOM_ANY), none, none);
        out[n++] = mk("[5,4] 1:4, 1:3", b_slice, 2, 1, F(S(2, 5, 4), DOM_ANY), none, none);
        out[n++] = mk("[3,7] 0:3:2, 2:3:5", b_slice, 3, 1, F(S(2, 3, 7), DOM_ANY), none, none);
        return n;
    case OP_CONCAT:
        out[n++] = mk("[2,3]+[4,3] axis 0", b_concat, 0, 2, F(S(2, 2, 3), DOM_ANY),
                      F(S(2, 4, 3), DOM_ANY), none);
        out[n++] = mk("[2,1]+[2,3]+[2,2] axis 1", b_concat, 1, 3, F(S(2, 2, 1), DOM_ANY),
                      F(S(2, 2, 3), DOM_ANY), F(S(2, 2, 2), DOM_ANY));
        return n;
    case OP_GATHER:
        out[n++] =
            mk("[5,3] idx[7]", b_gather, 0, 2, F(S(2, 5, 3), DOM_ANY), IDX(S(1, 7), 5), none);
        out[n++] =
            mk("[5] idx[2,3]", b_gather, 0, 2, F(S(1, 5), DOM_ANY), IDX(S(2, 2, 3), 5), none);
        return n;
    case OP_SCATTER_ADD:
        out[n++] = mk("upd[7,3] idx[7] rows 5", b_scatter, 0, 2, F(S(2, 7, 3), DOM_ANY),
                      IDX(S(1, 7), 5), none);
        out[n++] = mk("upd[2,3] idx[2,3] rows 5", b_scatter, 0, 2, F(S(2, 2, 3), DOM_ANY),
                      IDX(S(2, 2, 3), 5), none);
        return n;
    case OP_PAD:
        out[n++] = mk("[3,2] (1,2)(0,3) 0.5", b_pad, 0, 1, F(S(2, 3, 2), DOM_ANY), none, none);
        out[n++] = mk("[1,1] (0,0)(2,0)", b_pad, 1, 1, F(S(2, 1, 1), DOM_ANY), none, none);
        return n;
    case OP_CUMSUM:
        out[n++] = mk("[3,4] axis 1", b_cumsum, 0, 1, F(S(2, 3, 4), DOM_ANY), none, none);
        out[n++] = mk("[5] axis 0 reverse", b_cumsum, 1, 1, F(S(1, 5), DOM_ANY), none, none);
        out[n++] = mk("[2,3,4] axis 1", b_cumsum, 2, 1, F(S(3, 2, 3, 4), DOM_ANY), none, none);
        return n;
    case OP_MATMUL:
        out[n++] =
            mk("[3,4]@[4,2]", b_matmul, 0, 2, F(S(2, 3, 4), DOM_ANY), F(S(2, 4, 2), DOM_ANY), none);
        out[n++] = mk("[2,3,4]@[2,4,5]", b_matmul, 0, 2, F(S(3, 2, 3, 4), DOM_ANY),
                      F(S(3, 2, 4, 5), DOM_ANY), none);
        out[n++] =
            mk("[1,1]@[1,1]", b_matmul, 0, 2, F(S(2, 1, 1), DOM_ANY), F(S(2, 1, 1), DOM_ANY), none);
        out[n++] = mk("[2,3,4]@[4,5]", b_matmul, 0, 2, F(S(3, 2, 3, 4), DOM_ANY),
                      F(S(2, 4, 5), DOM_ANY), none);
        return n;
    case OP_SOLVE:
        out[n++] =
            mk("[3,3] [3,2]", b_linalg, 0, 2, F(S(2, 3, 3), DOM_ANY), F(S(2, 3, 2), DOM_ANY), none);
        out[n++] = mk("[2,3,3] [2,3,1]", b_linalg, 0, 2, F(S(3, 2, 3, 3), DOM_ANY),
                      F(S(3, 2, 3, 1), DOM_ANY), none);
        return n;
    case OP_QR:
        out[n++] = mk("[4,3]", b_linalg, 0, 1, F(S(2, 4, 3), DOM_ANY), none, none);
        out[n++] = mk("[2,3,3]", b_linalg, 0, 1, F(S(3, 2, 3, 3), DOM_ANY), none, none);
        out[n++] = mk("[1,1]", b_linalg, 0, 1, F(S(2, 1, 1), DOM_ANY), none, none);
        return n;
    case OP_SVD:
        out[n++] = mk("[4,3]", b_linalg, 0, 1, F(S(2, 4, 3), DOM_ANY), none, none);
        out[n++] = mk("[3,4]", b_linalg, 0, 1, F(S(2, 3, 4), DOM_ANY), none, none);
        out[n++] = mk("[2,3,3]", b_linalg, 0, 1, F(S(3, 2, 3, 3), DOM_ANY), none, none);
        return n;
    case OP_EIGH:
        out[n++] = mk("[3,3]", b_linalg, 0, 1, F(S(2, 3, 3), DOM_ANY), none, none);
        out[n++] = mk("[2,4,4]", b_linalg, 0, 1, F(S(3, 2, 4, 4), DOM_ANY), none, none);
        out[n++] = mk("[1,1]", b_linalg, 0, 1, F(S(2, 1, 1), DOM_ANY), none, none);
        return n;
    case OP_CHOLESKY:
    case OP_INV:
    case OP_DET:
    case OP_SLOGDET:
        out[n++] = mk("[3,3]", b_linalg, 0, 1, F(S(2, 3, 3), DOM_ANY), none, none);
        out[n++] = mk("[2,4,4]", b_linalg, 0, 1, F(S(3, 2, 4, 4), DOM_ANY), none, none);
        out[n++] = mk("[1,1]", b_linalg, 0, 1, F(S(2, 1, 1), DOM_ANY), none, none);
        return n;
    default:
        return 0;
    }
}

/* ---- the finite-difference check ----------------------------------------- */

typedef struct {
    Arena *arena;
    DiagList *diags;
    Graph *g;
    int nin; /* case inputs; input nin is the weight r */
    Node *in[MAXIN + 1];
    Node *loss;
} Built;

static uint32_t all_axes(const Node *a) {
    return a->shape.rank ? (uint32_t)((1u << a->shape.rank) - 1) : 0u;
}

static Node *sum_all(Graph *g, Node *a) {
    return a && a->shape.rank ? ir_reduce(g, OP_SUM, a, all_axes(a), L0) : a;
}

/* L = sum(build(in) * r); false (with a message) when building fails. */
static bool build_loss(Built *b, const GradCase *c) {
    b->arena = arena_new();
    b->diags = diag_list_new(b->arena, source_set_new(b->arena));
    b->g = ir_graph_new(b->arena, b->diags, "grad_case");
    b->nin = c->nin;
    for (int i = 0; i < c->nin; i++)
        b->in[i] = ir_input(b->g, c->in[i].dt, c->in[i].shape, NULL, L0);
    Node *y = c->build(b->g, b->in, c->variant);
    if (!y) return false;
    b->in[c->nin] = ir_input(b->g, y->dtype, y->shape, "r", L0);
    b->loss = sum_all(b->g, ir_binary(b->g, OP_MUL, y, b->in[c->nin], L0));
    return b->loss != NULL;
}

static void free_built(Built *b) {
    arena_free(b->arena);
}

static RtTensor *random_tensor(const InSpec *s) {
    RtTensor *t = rt_tensor_new(s->dt, s->shape);
    int64_t n = rt_shape_numel(&s->shape);
    for (int64_t i = 0; i < n; i++) {
        double v;
        switch (s->dom) {
        case DOM_POS:
            v = uniform(0.5, 2.0);
            break;
        case DOM_AWAY:
            v = uniform(0.3, 2.0) * (next_u64() & 1 ? 1 : -1);
            break;
        case DOM_IDX:
            rt_tensor_set_i64(t, i, (int64_t)(next_u64() % (uint64_t)s->imax));
            continue;
        default:
            v = uniform(-2.0, 2.0);
            break;
        }
        rt_tensor_set_f64(t, i, v);
    }
    return t;
}

static double eval_scalar(const Graph *g, RtTensor **vals, DiagList *d) {
    RtTensor *out[1] = {NULL};
    if (!ir_interp_run(g, vals, out, d)) {
        diag_print_all(d, stderr);
        return NAN;
    }
    double v = rt_tensor_get_f64(out[0], 0);
    rt_tensor_free(out[0]);
    return v;
}

static void print_diags(DiagList *d) {
    if (diag_has_errors(d)) diag_print_all(d, stderr);
}

/* Compares pass_grad with central differences for one case. */
static void check_case(const char *opname, const GradCase *c) {
    Built fwd, ad;
    cr_assert(build_loss(&fwd, c), "%s %s: building the forward graph failed", opname, c->label);
    cr_assert(build_loss(&ad, c), "%s %s: building failed", opname, c->label);
    ir_graph_add_output(fwd.g, fwd.loss);

    Node *wrt[MAXIN];
    int widx[MAXIN], nw = 0;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dt == DT_F64) {
            wrt[nw] = ad.in[i];
            widx[nw++] = i;
        }
    Node *grads[MAXIN];
    bool ok = pass_grad(ad.g, ad.loss, NULL, wrt, nw, grads);
    print_diags(ad.diags);
    cr_assert(ok, "%s %s: pass_grad failed", opname, c->label);
    ir_graph_add_output(ad.g, ad.loss);
    for (int k = 0; k < nw; k++)
        ir_graph_add_output(ad.g, grads[k]);
    cr_assert(ir_verify(ad.g, "autodiff"), "%s %s: verifier", opname, c->label);

    RtTensor *vals[MAXIN + 1];
    for (int i = 0; i < c->nin; i++)
        vals[i] = random_tensor(&c->in[i]);
    InSpec rs = F(ad.in[c->nin]->shape, DOM_ANY);
    vals[c->nin] = random_tensor(&rs);

    RtTensor *outs[MAXIN + 1] = {NULL};
    ok = ir_interp_run(ad.g, vals, outs, ad.diags);
    print_diags(ad.diags);
    cr_assert(ok, "%s %s: interpreter failed on the gradient graph", opname, c->label);

    for (int k = 0; k < nw; k++) {
        RtTensor *x = vals[widx[k]];
        int64_t n = rt_shape_numel(&x->shape);
        for (int64_t j = 0; j < n; j++) {
            double x0 = rt_tensor_get_f64(x, j);
            rt_tensor_set_f64(x, j, x0 + FD_H);
            double lp = eval_scalar(fwd.g, vals, fwd.diags);
            rt_tensor_set_f64(x, j, x0 - FD_H);
            double lm = eval_scalar(fwd.g, vals, fwd.diags);
            rt_tensor_set_f64(x, j, x0);
            double fd = (lp - lm) / (2 * FD_H);
            double an = rt_tensor_get_f64(outs[1 + k], j);
            cr_expect(fabs(an - fd) <= FD_TOL * (1 + fabs(fd)),
                      "%s %s: d/dinput%d[%lld]: autodiff %.12g, finite differences %.12g", opname,
                      c->label, widx[k], (long long)j, an, fd);
        }
    }
    for (int i = 0; i <= c->nin; i++)
        rt_tensor_free(vals[i]);
    for (int k = 0; k <= nw; k++)
        rt_tensor_free(outs[k]);
    free_built(&fwd);
    free_built(&ad);
}

/* ---- the same walk at second order ------------------------------------------ */

/* Differentiates the gradient again: for L = sum(op(x) * r) and a random
 * direction v over all floating inputs, H v = grad(sum_k <grad_k L, v_k>)
 * must match central differences of the gradient along v. Derivative rules
 * that are right at first order but treat a forward value as a constant
 * (a reused result or a saved input detached from the graph) fail here. */
#define FD2_H 1e-5
#define FD2_TOL 1e-6

static void check_case_second_order(const char *opname, const GradCase *c) {
    Built gb, hb;
    cr_assert(build_loss(&gb, c), "%s %s: building the gradient graph failed", opname, c->label);
    cr_assert(build_loss(&hb, c), "%s %s: building the HVP graph failed", opname, c->label);
    Node *gw[MAXIN], *hw[MAXIN], *vin[MAXIN];
    int widx[MAXIN], nw = 0;
    for (int i = 0; i < c->nin; i++)
        if (c->in[i].dt == DT_F64) {
            gw[nw] = gb.in[i];
            hw[nw] = hb.in[i];
            widx[nw++] = i;
        }
    Node *g1[MAXIN], *g2[MAXIN], *hv[MAXIN];
    cr_assert(pass_grad(gb.g, gb.loss, NULL, gw, nw, g1), "%s %s: pass_grad failed", opname,
              c->label);
    for (int k = 0; k < nw; k++)
        ir_graph_add_output(gb.g, g1[k]);

    bool ok = pass_grad(hb.g, hb.loss, NULL, hw, nw, g2);
    print_diags(hb.diags);
    cr_assert(ok, "%s %s: pass_grad failed", opname, c->label);
    Node *dir = NULL; /* sum_k <grad_k L, v_k> */
    for (int k = 0; k < nw; k++) {
        vin[k] = ir_input(hb.g, DT_F64, hw[k]->shape, "v", L0);
        Node *t = sum_all(hb.g, ir_binary(hb.g, OP_MUL, g2[k], vin[k], L0));
        dir = dir ? ir_binary(hb.g, OP_ADD, dir, t, L0) : t;
    }
    ok = dir && pass_grad(hb.g, dir, NULL, hw, nw, hv);
    print_diags(hb.diags);
    cr_assert(ok, "%s %s: the second pass_grad failed", opname, c->label);
    for (int k = 0; k < nw; k++)
        ir_graph_add_output(hb.g, hv[k]);
    cr_assert(ir_verify(hb.g, "hvp"), "%s %s: verifier", opname, c->label);

    /* values: the case inputs, r, then one direction per floating input */
    RtTensor *vals[2 * MAXIN + 1];
    for (int i = 0; i < c->nin; i++)
        vals[i] = random_tensor(&c->in[i]);
    InSpec rs = F(hb.in[c->nin]->shape, DOM_ANY);
    vals[c->nin] = random_tensor(&rs);
    for (int k = 0; k < nw; k++) {
        InSpec vs = F(hw[k]->shape, DOM_ANY);
        vals[c->nin + 1 + k] = random_tensor(&vs);
    }
    RtTensor *h[MAXIN] = {NULL}, *gp[MAXIN] = {NULL}, *gm[MAXIN] = {NULL};
    ok = ir_interp_run(hb.g, vals, h, hb.diags);
    print_diags(hb.diags);
    cr_assert(ok, "%s %s: interpreter failed on the HVP graph", opname, c->label);

    /* the gradient at x + h v and x - h v */
    RtTensor *base[MAXIN];
    for (int k = 0; k < nw; k++)
        base[k] = rt_tensor_clone(vals[widx[k]]);
    for (int side = 0; side < 2; side++) {
        double sg = side ? -FD2_H : FD2_H;
        for (int k = 0; k < nw; k++) {
            RtTensor *x = vals[widx[k]], *v = vals[c->nin + 1 + k];
            for (int64_t j = 0; j < rt_shape_numel(&x->shape); j++)
                rt_tensor_set_f64(x, j,
                                  rt_tensor_get_f64(base[k], j) + sg * rt_tensor_get_f64(v, j));
        }
        ok = ir_interp_run(gb.g, vals, side ? gm : gp, gb.diags);
        print_diags(gb.diags);
        cr_assert(ok, "%s %s: interpreter failed on the gradient graph", opname, c->label);
    }
    for (int k = 0; k < nw; k++) {
        int64_t n = rt_shape_numel(&base[k]->shape);
        for (int64_t j = 0; j < n; j++) {
            double fd = (rt_tensor_get_f64(gp[k], j) - rt_tensor_get_f64(gm[k], j)) / (2 * FD2_H);
            double an = rt_tensor_get_f64(h[k], j);
            cr_expect(
                fabs(an - fd) <= FD2_TOL * (1 + fabs(fd)),
                "%s %s: (Hv) for input%d[%lld]: autodiff %.12g, differences of gradients %.12g",
                opname, c->label, widx[k], (long long)j, an, fd);
        }
    }
    for (int k = 0; k < nw; k++) {
        rt_tensor_free(base[k]);
        rt_tensor_free(h[k]);
        rt_tensor_free(gp[k]);
        rt_tensor_free(gm[k]);
        rt_tensor_free(vals[c->nin + 1 + k]);
    }
    for (int i = 0; i <= c->nin; i++)
        rt_tensor_free(vals[i]);
    free_built(&gb);
    free_built(&hb);
}

Test(grad, table_is_total) {
    for (int op = 0; op < OP_COUNT; op++) {
        const GradRule *r = &pass_grad_rules[op];
        if (ir_ops[op].flags & OPF_DIFF)
            cr_expect(r->kind == GRAD_KIND_RULE && r->fn, "%s is differentiable but has no rule",
                      ir_op_name(op));
        else
            cr_expect(r->kind == GRAD_KIND_NONE && !r->fn,
                      "%s is not differentiable but is not GRAD_NONE", ir_op_name(op));
    }
}

/* qr's derivative exists for square and tall matrices only (R must be
 * invertible): a wide one is a located error at the call, not a wrong or
 * zero gradient. */
Test(grad, qr_of_a_wide_matrix_is_a_located_error) {
    Arena *a = arena_new();
    DiagList *d = diag_list_new(a, source_set_new(a));
    Graph *g = ir_graph_new(a, d, "wide");
    SrcLoc at = {0, 3, 7, 1};
    Node *x = ir_input(g, DT_F64, S(2, 2, 3), "x", L0);
    Node *t = ir_call(g, OP_QR, &x, at);
    Node *y = sum_all(g, ir_tuple_get(g, t, 1, L0));
    Node *gx = NULL;
    cr_expect(!pass_grad(g, y, NULL, &x, 1, &gx));
    cr_expect_eq(d->nerrors, 1);
    cr_expect_str_eq(
        th_last_diag(d),
        "grad: qr's derivative needs a square or tall matrix (m >= n), got [.., 2, 3]");
    arena_free(a);
}

Test(grad, every_differentiable_op_matches_finite_differences) {
    GradCase cases[16];
    for (int op = 0; op < OP_COUNT; op++) {
        if (!(ir_ops[op].flags & OPF_DIFF)) continue;
        int n = cases_for((OpKind)op, cases);
        cr_expect(n > 0, "%s is differentiable but has no gradient test case", ir_op_name(op));
        cur_op = (OpKind)op;
        rng_state = 0x5eed0000u + (uint64_t)op;
        for (int i = 0; i < n; i++)
            check_case(ir_op_name(op), &cases[i]);
    }
}

Test(grad, every_differentiable_op_matches_finite_differences_at_second_order) {
    GradCase cases[16];
    for (int op = 0; op < OP_COUNT; op++) {
        if (!(ir_ops[op].flags & OPF_DIFF)) continue;
        int n = cases_for((OpKind)op, cases);
        cur_op = (OpKind)op;
        rng_state = 0x2d0000u + (uint64_t)op;
        for (int i = 0; i < n; i++)
            check_case_second_order(ir_op_name(op), &cases[i]);
    }
}

/* ---- composites ------------------------------------------------------------ */

static Node *c_softmax(Graph *g, Node **in, int v) {
    return ir_softmax(g, in[0], v, L0);
}
static Node *c_log_softmax(Graph *g, Node **in, int v) {
    return ir_log_softmax(g, in[0], v, L0);
}
static Node *c_logsumexp(Graph *g, Node **in, int v) {
    return ir_logsumexp(g, in[0], v, L0);
}
static Node *c_xent(Graph *g, Node **in, int v) {
    (void)v;
    return ir_cross_entropy(g, in[0], in[1], L0);
}
static Node *c_tanh(Graph *g, Node **in, int v) {
    (void)v;
    return ir_tanh(g, in[0], L0);
}
static Node *c_gelu(Graph *g, Node **in, int v) {
    return ir_gelu(g, in[0], v != 0, L0);
}
static Node *c_sigmoid(Graph *g, Node **in, int v) {
    (void)v;
    return ir_sigmoid(g, in[0], L0);
}
static Node *c_relu(Graph *g, Node **in, int v) {
    (void)v;
    return ir_relu(g, in[0], L0);
}
static Node *c_mean(Graph *g, Node **in, int v) {
    return ir_mean(g, in[0], v ? 0x3u : 0x2u, L0);
}
static Node *c_mse(Graph *g, Node **in, int v) {
    (void)v;
    return ir_mse(g, in[0], in[1], L0);
}

/* order composites: distinct random values, so a small step keeps the order */
static Node *c_sort(Graph *g, Node **in, int v) {
    return ir_sort(g, in[0], v ? 0 : 1, v != 0, L0);
}
static Node *c_top_k(Graph *g, Node **in, int v) {
    return ir_top_k(g, in[0], 2, v, L0);
}
static Node *c_quantile(Graph *g, Node **in, int v) {
    if (v) return ir_quantile(g, ir_reshape(g, in[0], S(1, 12), L0), 0.8, 0, L0);
    return ir_quantile(g, in[0], 0.37, 1, L0);
}
static Node *c_nanquantile(Graph *g, Node **in, int v) {
    return ir_nanquantile(g, in[0], v ? 0.8 : 0.37, 1, L0);
}
static Node *c_segment(Graph *g, Node **in, int v) {
    return v ? ir_segment_mean(g, in[0], in[1], 4, L0) : ir_segment_sum(g, in[0], in[1], 4, L0);
}

Test(grad, composites_match_finite_differences) {
    InSpec none = {0};
    GradCase cs[] = {
        mk("softmax axis 1", c_softmax, 1, 1, F(S(2, 3, 4), DOM_ANY), none, none),
        mk("softmax axis 0", c_softmax, 0, 1, F(S(2, 3, 4), DOM_ANY), none, none),
        mk("log_softmax axis 1", c_log_softmax, 1, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("logsumexp axis 0", c_logsumexp, 0, 1, F(S(2, 3, 4), DOM_ANY), none, none),
        mk("cross_entropy", c_xent, 0, 2, F(S(2, 4, 3), DOM_ANY), IDX(S(1, 4), 3), none),
        mk("tanh", c_tanh, 0, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("gelu", c_gelu, 0, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("gelu tanh", c_gelu, 1, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("sigmoid", c_sigmoid, 0, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("relu", c_relu, 0, 1, F(S(2, 3, 5), DOM_AWAY), none, none),
        mk("mean axis 1", c_mean, 0, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("mean all", c_mean, 1, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("mse", c_mse, 0, 2, F(S(2, 3, 5), DOM_ANY), F(S(2, 3, 5), DOM_ANY), none),
        mk("sort axis 1", c_sort, 0, 1, F(S(2, 3, 4), DOM_ANY), none, none),
        mk("sort axis 0 descending", c_sort, 1, 1, F(S(2, 3, 4), DOM_ANY), none, none),
        mk("top_k 2 axis 0", c_top_k, 0, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("top_k 2 axis 1", c_top_k, 1, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("quantile 0.37 axis 1", c_quantile, 0, 1, F(S(2, 3, 4), DOM_ANY), none, none),
        mk("quantile 0.8 all", c_quantile, 1, 1, F(S(2, 3, 4), DOM_ANY), none, none),
        mk("nanquantile 0.37 axis 1", c_nanquantile, 0, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("nanquantile 0.8 axis 1", c_nanquantile, 1, 1, F(S(2, 3, 5), DOM_ANY), none, none),
        mk("segment_sum", c_segment, 0, 2, F(S(2, 6, 3), DOM_ANY), IDX(S(1, 6), 4), none),
        mk("segment_mean", c_segment, 1, 2, F(S(2, 6, 3), DOM_ANY), IDX(S(1, 6), 4), none),
    };
    rng_state = 42;
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_case("composite", &cs[i]);
    rng_state = 43;
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        check_case_second_order("composite", &cs[i]);
}

/* ---- specific semantics ----------------------------------------------------- */

typedef struct {
    Arena *arena;
    DiagList *diags;
    Graph *g;
} Ctx;

static Ctx ctx_new(void) {
    Ctx c;
    c.arena = arena_new();
    c.diags = diag_list_new(c.arena, source_set_new(c.arena));
    c.g = ir_graph_new(c.arena, c.diags, "t");
    return c;
}

static RtTensor *tensor_of(Shape s, const double *v) {
    RtTensor *t = rt_tensor_new(DT_F64, s);
    for (int64_t i = 0; i < rt_shape_numel(&s); i++)
        rt_tensor_set_f64(t, i, v[i]);
    return t;
}

/* Runs c.g on one input and returns output j (caller frees). */
static RtTensor *run1(Ctx *c, RtTensor **in, int nout, int j) {
    RtTensor *outs[8] = {NULL};
    bool ok = ir_interp_run(c->g, in, outs, c->diags);
    print_diags(c->diags);
    cr_assert(ok);
    for (int k = 0; k < nout; k++)
        if (k != j) rt_tensor_free(outs[k]);
    return outs[j];
}

Test(grad, reduce_max_ties_share_the_gradient) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F64, S(1, 4), "x", L0);
    Node *m = ir_reduce(c.g, OP_REDUCE_MAX, x, 1, L0);
    Node *gx;
    cr_assert(pass_grad(c.g, m, NULL, &x, 1, &gx));
    ir_graph_add_output(c.g, gx);
    double xv[] = {1, 3, 0, 3};
    RtTensor *in = tensor_of(S(1, 4), xv);
    RtTensor *r = run1(&c, &in, 1, 0);
    double want[] = {0, 0.5, 0, 0.5};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(rt_tensor_get_f64(r, i), want[i], "element %d", i);
    rt_tensor_free(r);
    rt_tensor_free(in);
    arena_free(c.arena);
}

Test(grad, max_ties_go_to_the_first_operand) {
    Ctx c = ctx_new();
    Node *a = ir_input(c.g, DT_F64, S(1, 3), "a", L0);
    Node *b = ir_input(c.g, DT_F64, S(1, 3), "b", L0);
    Node *wrt[2] = {a, b}, *gr[2];
    Node *y = sum_all(c.g, ir_binary(c.g, OP_ADD, ir_binary(c.g, OP_MAX, a, b, L0),
                                     ir_binary(c.g, OP_MIN, a, b, L0), L0));
    cr_assert(pass_grad(c.g, y, NULL, wrt, 2, gr));
    ir_graph_add_output(c.g, gr[0]);
    ir_graph_add_output(c.g, gr[1]);
    double av[] = {1, 2, 3}, bv[] = {1, 5, 0};
    RtTensor *in[2] = {tensor_of(S(1, 3), av), tensor_of(S(1, 3), bv)};
    RtTensor *outs[2];
    cr_assert(ir_interp_run(c.g, in, outs, c.diags));
    /* tie at 0: both max and min send it to a */
    double wa[] = {2, 1, 1}, wb[] = {0, 1, 1};
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(rt_tensor_get_f64(outs[0], i), wa[i], "da[%d]", i);
        cr_expect_eq(rt_tensor_get_f64(outs[1], i), wb[i], "db[%d]", i);
    }
    for (int i = 0; i < 2; i++) {
        rt_tensor_free(outs[i]);
        rt_tensor_free(in[i]);
    }
    arena_free(c.arena);
}

Test(grad, unreached_wrt_gets_zeros_and_stop_grad_blocks) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F64, S(1, 3), "x", L0);
    Node *z = ir_input(c.g, DT_F64, S(2, 2, 2), "z", L0);
    Node *y = sum_all(c.g, ir_binary(c.g, OP_MUL, x, ir_unary(c.g, OP_STOP_GRAD, x, L0), L0));
    Node *wrt[2] = {x, z}, *gr[2];
    cr_assert(pass_grad(c.g, y, NULL, wrt, 2, gr));
    cr_assert(rt_shape_eq(&gr[1]->shape, &z->shape));
    ir_graph_add_output(c.g, gr[0]);
    ir_graph_add_output(c.g, gr[1]);
    double xv[] = {1, -2, 3}, zv[] = {1, 1, 1, 1};
    RtTensor *in[2] = {tensor_of(S(1, 3), xv), tensor_of(S(2, 2, 2), zv)};
    RtTensor *outs[2];
    cr_assert(ir_interp_run(c.g, in, outs, c.diags));
    for (int i = 0; i < 3; i++)
        cr_expect_eq(rt_tensor_get_f64(outs[0], i), xv[i]); /* only one path counts */
    for (int i = 0; i < 4; i++)
        cr_expect_eq(rt_tensor_get_f64(outs[1], i), 0.0);
    for (int i = 0; i < 2; i++) {
        rt_tensor_free(outs[i]);
        rt_tensor_free(in[i]);
    }
    arena_free(c.arena);
}

Test(grad, integer_wrt_is_an_error) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F64, S(1, 3), "x", L0);
    Node *k = ir_input(c.g, DT_I64, S(1, 3), "k", L0);
    Node *y = sum_all(c.g, ir_binary(c.g, OP_MUL, x, k, L0));
    Node *wrt[2] = {x, k}, *gr[2];
    cr_expect_not(pass_grad(c.g, y, NULL, wrt, 2, gr));
    cr_expect(diag_has_errors(c.diags));
    cr_expect_null(gr[1]);
    arena_free(c.arena);
}

Test(grad, casts_through_f32_and_integers) {
    Ctx c = ctx_new();
    Node *x = ir_input(c.g, DT_F64, S(1, 3), "x", L0);
    Node *via32 = ir_cast(c.g, ir_cast(c.g, x, DT_F32, L0), DT_F64, L0);
    Node *viaint = ir_cast(c.g, ir_cast(c.g, x, DT_I64, L0), DT_F64, L0);
    Node *y =
        sum_all(c.g, ir_binary(c.g, OP_ADD,
                               ir_binary(c.g, OP_MUL, via32, ir_scalar(c.g, DT_F64, 3, L0), L0),
                               viaint, L0));
    Node *gx;
    cr_assert(pass_grad(c.g, y, NULL, &x, 1, &gx));
    ir_graph_add_output(c.g, gx);
    double xv[] = {0.5, 1.5, -2.5};
    RtTensor *in = tensor_of(S(1, 3), xv);
    RtTensor *r = run1(&c, &in, 1, 0);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(rt_tensor_get_f64(r, i), 3.0); /* truncation adds nothing */
    rt_tensor_free(r);
    rt_tensor_free(in);
    arena_free(c.arena);
}

Test(grad, pow_exponent_gradient_is_guarded_for_nonpositive_bases) {
    Ctx c = ctx_new();
    Node *a = ir_input(c.g, DT_F64, S(1, 3), "a", L0);
    Node *b = ir_input(c.g, DT_F64, S(1, 3), "b", L0);
    Node *y = sum_all(c.g, ir_binary(c.g, OP_POW, a, b, L0));
    Node *wrt[2] = {a, b}, *gr[2];
    cr_assert(pass_grad(c.g, y, NULL, wrt, 2, gr));
    Node *tr = pass_hessian_trace(c.g, y, b, L0); /* second derivative through the guard */
    cr_assert_not_null(tr);
    ir_graph_add_output(c.g, gr[0]);
    ir_graph_add_output(c.g, gr[1]);
    ir_graph_add_output(c.g, tr);
    double av[] = {-2, 0, 3}, bv[] = {2, 2, 2};
    RtTensor *in[2] = {tensor_of(S(1, 3), av), tensor_of(S(1, 3), bv)};
    RtTensor *outs[3];
    cr_assert(ir_interp_run(c.g, in, outs, c.diags));
    double wa[] = {-4, 0, 6}, wb[] = {0, 0, 9 * log(3.0)};
    for (int i = 0; i < 3; i++) {
        cr_expect(fabs(rt_tensor_get_f64(outs[0], i) - wa[i]) < 1e-12, "da[%d] = %g", i,
                  rt_tensor_get_f64(outs[0], i));
        cr_expect(fabs(rt_tensor_get_f64(outs[1], i) - wb[i]) < 1e-12, "db[%d] = %g", i,
                  rt_tensor_get_f64(outs[1], i));
    }
    double want_tr = 9 * log(3.0) * log(3.0); /* d2/db2 a^b = a^b ln(a)^2, 0 where guarded */
    cr_expect(fabs(rt_tensor_get_f64(outs[2], 0) - want_tr) < 1e-12, "trace %.15g",
              rt_tensor_get_f64(outs[2], 0));
    for (int i = 0; i < 3; i++)
        rt_tensor_free(outs[i]);
    for (int i = 0; i < 2; i++)
        rt_tensor_free(in[i]);
    arena_free(c.arena);
}

/* ---- second order ---------------------------------------------------------- */

/* f(W) = sum(tanh(W @ X)^2), W[3,4], X[4,2] */
static Node *tanh_sq(Graph *g, Node *W, Node *X) {
    Node *t = ir_tanh(g, ir_matmul(g, W, X, L0), L0);
    return sum_all(g, ir_binary(g, OP_MUL, t, t, L0));
}

Test(grad, hvp_matches_finite_differences_of_gradients) {
    rng_state = 7;
    /* graph 1: Hv;  graph 2: grad f (for the differences) */
    Ctx c = ctx_new(), d = ctx_new();
    Node *W = ir_input(c.g, DT_F64, S(2, 3, 4), "W", L0);
    Node *X = ir_input(c.g, DT_F64, S(2, 4, 2), "X", L0);
    Node *V = ir_input(c.g, DT_F64, S(2, 3, 4), "V", L0);
    Node *hv = pass_hvp(c.g, tanh_sq(c.g, W, X), W, V, L0);
    print_diags(c.diags);
    cr_assert_not_null(hv);
    ir_graph_add_output(c.g, hv);
    cr_assert(ir_verify(c.g, "hvp"));

    Node *W2 = ir_input(d.g, DT_F64, S(2, 3, 4), "W", L0);
    Node *X2 = ir_input(d.g, DT_F64, S(2, 4, 2), "X", L0);
    Node *gw;
    cr_assert(pass_grad(d.g, tanh_sq(d.g, W2, X2), NULL, &W2, 1, &gw));
    ir_graph_add_output(d.g, gw);

    InSpec sw = F(S(2, 3, 4), DOM_ANY), sx = F(S(2, 4, 2), DOM_ANY);
    RtTensor *w = random_tensor(&sw), *x = random_tensor(&sx), *v = random_tensor(&sw);
    RtTensor *in[3] = {w, x, v};
    RtTensor *h = run1(&c, in, 1, 0);

    const double eps = 1e-5;
    RtTensor *wp = rt_tensor_clone(w), *wm = rt_tensor_clone(w);
    for (int i = 0; i < 12; i++) {
        rt_tensor_set_f64(wp, i, rt_tensor_get_f64(w, i) + eps * rt_tensor_get_f64(v, i));
        rt_tensor_set_f64(wm, i, rt_tensor_get_f64(w, i) - eps * rt_tensor_get_f64(v, i));
    }
    RtTensor *inp[2] = {wp, x}, *inm[2] = {wm, x};
    RtTensor *gp = run1(&d, inp, 1, 0), *gm = run1(&d, inm, 1, 0);
    for (int i = 0; i < 12; i++) {
        double fd = (rt_tensor_get_f64(gp, i) - rt_tensor_get_f64(gm, i)) / (2 * eps);
        double an = rt_tensor_get_f64(h, i);
        cr_expect(fabs(an - fd) <= 1e-6 * (1 + fabs(fd)), "Hv[%d]: %.12g vs %.12g", i, an, fd);
    }
    RtTensor *all[] = {w, x, v, wp, wm, gp, gm, h};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rt_tensor_free(all[i]);
    arena_free(c.arena);
    arena_free(d.arena);
}

/* L(w) = (1/n) sum_i ||x_i - w (w . x_i)||^2, x_i = e_i (i < n), w in R^d */
static Node *linear_autoencoder(Graph *g, Node *w, int n, int d) {
    Shape nd = S(2, n, d);
    Node *X = ir_cast(
        g, ir_binary(g, OP_EQ, ir_iota(g, DT_I64, nd, 0, L0), ir_iota(g, DT_I64, nd, 1, L0), L0),
        DT_F64, L0);                             /* (n,d) rows e_i */
    Node *wc = ir_reshape(g, w, S(2, d, 1), L0); /* (d,1) */
    Node *p = ir_matmul(g, X, wc, L0);           /* (n,1) = w . x_i */
    Node *recon = ir_binary(g, OP_MUL, p, ir_reshape(g, w, S(2, 1, d), L0), L0); /* (n,d) */
    Node *diff = ir_binary(g, OP_SUB, X, recon, L0);
    Node *sq = sum_all(g, ir_binary(g, OP_MUL, diff, diff, L0));
    return ir_binary(g, OP_DIV, sq, ir_scalar(g, DT_F64, n, L0), L0);
}

Test(grad, hessian_trace_of_linear_autoencoder_matches_closed_form) {
    enum { D = 6, N = 4 };
    Ctx c = ctx_new();
    Node *w = ir_input(c.g, DT_F64, S(1, D), "w", L0);
    Node *loss = linear_autoencoder(c.g, w, N, D);
    Node *tr = pass_hessian_trace(c.g, loss, w, L0);
    print_diags(c.diags);
    cr_assert_not_null(tr);
    ir_graph_add_output(c.g, loss);
    ir_graph_add_output(c.g, tr);
    cr_assert(ir_verify(c.g, "hessian_trace"));
    rng_state = 3;
    for (int trial = 0; trial < 3; trial++) {
        double wv[D], a = 0, b = 0;
        for (int i = 0; i < D; i++) {
            wv[i] = uniform(-1.5, 1.5);
            b += wv[i] * wv[i];
            if (i < N) a += wv[i] * wv[i];
        }
        RtTensor *in = tensor_of(S(1, D), wv);
        RtTensor *outs[2];
        cr_assert(ir_interp_run(c.g, &in, outs, c.diags));
        double want_loss = (N - 2 * a + a * b) / N;
        double want_tr = 2 * (a + b - 2) + 8 * a / N + 2 * a * (D - N) / N;
        cr_expect(fabs(rt_tensor_get_f64(outs[0], 0) - want_loss) <= 1e-12 * (1 + fabs(want_loss)),
                  "loss %.15g vs %.15g", rt_tensor_get_f64(outs[0], 0), want_loss);
        cr_expect(fabs(rt_tensor_get_f64(outs[1], 0) - want_tr) <= 1e-10 * (1 + fabs(want_tr)),
                  "trace %.15g vs closed form %.15g", rt_tensor_get_f64(outs[1], 0), want_tr);
        rt_tensor_free(outs[0]);
        rt_tensor_free(outs[1]);
        rt_tensor_free(in);
    }
    arena_free(c.arena);
}
