/* Graph construction: shape and dtype inference, promotion and broadcasting
 * in ir_binary, every builder's error path (a diagnostic naming the shapes,
 * and NULL), NULL-source silence, the verifier on good and hand-corrupted
 * graphs, and the printer's text form against a golden dump. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/ir_helpers.h"
#include "ir/ir.h"

static Arena *A;
static DiagList *D;
static Graph *G;
static SrcLoc L;

static void setup(void) {
    A = arena_new();
    D = th_diag_list(A, "t.dfl", "x\n");
    D->max_errors = 1000;
    G = ir_graph_new(A, D, "t");
    L = (SrcLoc){1, 3, 5, 1};
}

static void teardown(void) {
    arena_free(A);
}

TestSuite(graph, .init = setup, .fini = teardown);

static Node *in(DType dt, Shape s) {
    return ir_input(G, dt, s, NULL, L);
}

/* The builder returned NULL and its last diagnostic contains want. */
#define EXPECT_ERR(expr, want)                                                                     \
    do {                                                                                           \
        int before_ = D->nerrors;                                                                  \
        Node *r_ = (expr);                                                                         \
        cr_expect_null(r_, "%s should fail", #expr);                                               \
        cr_expect_gt(D->nerrors, before_, "%s gave no diagnostic", #expr);                         \
        cr_expect(strstr(th_last_diag(D), want) != NULL, "%s: message '%s' lacks '%s'", #expr,     \
                  th_last_diag(D), want);                                                          \
    } while (0)

static bool shape_is(const Node *n, Shape s) {
    return n && rt_shape_eq(&n->shape, &s);
}

/* ---- inference and promotion ---------------------------------------------------------- */

Test(graph, promote_table) {
    cr_expect_eq(ir_promote(DT_F32, DT_I64), DT_F32);
    cr_expect_eq(ir_promote(DT_I32, DT_F64), DT_F64);
    cr_expect_eq(ir_promote(DT_F32, DT_F64), DT_F64);
    cr_expect_eq(ir_promote(DT_I32, DT_I64), DT_I64);
    cr_expect_eq(ir_promote(DT_BOOL, DT_I32), DT_I32);
    cr_expect_eq(ir_promote(DT_BOOL, DT_F32), DT_F32);
    cr_expect_eq(ir_promote(DT_BOOL, DT_BOOL), DT_BOOL);
}

Test(graph, broadcast_shapes) {
    Shape o;
    cr_expect(ir_broadcast_shapes(&(Shape){2, {3, 1}}, &(Shape){1, {4}}, &o));
    cr_expect(rt_shape_eq(&o, &(Shape){2, {3, 4}}));
    cr_expect(ir_broadcast_shapes(&(Shape){0, {0}}, &(Shape){3, {2, 1, 5}}, &o));
    cr_expect(rt_shape_eq(&o, &(Shape){3, {2, 1, 5}}));
    cr_expect_not(ir_broadcast_shapes(&(Shape){1, {3}}, &(Shape){1, {4}}, &o));
    cr_expect(ir_broadcast_shapes(&(Shape){2, {0, 1}}, &(Shape){1, {7}}, &o));
    cr_expect(rt_shape_eq(&o, &(Shape){2, {0, 7}}));
}

Test(graph, binary_broadcast_inserts_nodes) {
    Node *a = in(DT_F32, th_shape(2, 3, 1)), *b = in(DT_F32, th_shape(1, 4));
    Node *c = ir_binary(G, OP_ADD, a, b, L);
    cr_assert_not_null(c);
    cr_expect(shape_is(c, th_shape(2, 3, 4)));
    cr_expect_eq(c->dtype, DT_F32);
    cr_expect_eq(c->src[0]->op, OP_BROADCAST);
    cr_expect_eq(c->src[1]->op, OP_BROADCAST);
    cr_expect_eq(c->src[0]->src[0], a);
    /* same shapes: no broadcast */
    Node *d = ir_binary(G, OP_MUL, c, c, L);
    cr_expect_eq(d->src[0], c);
    cr_expect(ir_verify(G, "test"));
}

Test(graph, binary_promotion) {
    Node *i = in(DT_I32, th_shape(1, 5)), *f = in(DT_F32, th_shape(1, 5)),
         *l = in(DT_I64, th_shape(0));
    Node *bo = in(DT_BOOL, th_shape(1, 5)), *d = in(DT_F64, th_shape(1, 5));
    Node *x = ir_binary(G, OP_ADD, i, f, L);
    cr_expect_eq(x->dtype, DT_F32);
    cr_expect_eq(x->src[0]->op, OP_CAST);
    cr_expect_eq(x->src[0]->dtype, DT_F32);
    cr_expect_eq(ir_binary(G, OP_ADD, i, l, L)->dtype, DT_I64);
    cr_expect_eq(ir_binary(G, OP_ADD, bo, bo, L)->dtype, DT_F32);
    cr_expect_eq(ir_binary(G, OP_MUL, bo, i, L)->dtype, DT_I32);
    cr_expect_eq(ir_binary(G, OP_SUB, f, d, L)->dtype, DT_F64);
    Node *c = ir_binary(G, OP_LT, i, d, L);
    cr_expect_eq(c->dtype, DT_BOOL);
    cr_expect_eq(c->src[0]->dtype, DT_F64);
    Node *e = ir_binary(G, OP_EQ, bo, bo, L);
    cr_expect_eq(e->dtype, DT_BOOL);
    cr_expect_eq(e->src[0], bo);
    Node *an = ir_binary(G, OP_AND, f, i, L);
    cr_expect_eq(an->dtype, DT_BOOL);
    cr_expect_eq(an->src[0]->op, OP_CAST);
    cr_expect_eq(an->src[1]->dtype, DT_BOOL);
    cr_expect_eq(ir_binary(G, OP_POW, f, i, L)->dtype, DT_F32);
    cr_expect_eq(ir_unary(G, OP_NOT, i, L)->src[0]->dtype, DT_BOOL);
    cr_expect_eq(ir_unary(G, OP_NEG, bo, L)->dtype, DT_F32);
    cr_expect_eq(ir_reduce(G, OP_SUM, bo, 1, L)->dtype, DT_I64);
    cr_expect(ir_verify(G, "test"));
}

Test(graph, shapes_of_builders) {
    Node *x = in(DT_F32, th_shape(3, 2, 3, 4));
    cr_expect(shape_is(ir_reduce(G, OP_SUM, x, 0x5, L), th_shape(1, 3)));
    cr_expect(shape_is(ir_reduce(G, OP_REDUCE_MAX, x, 0, L), th_shape(3, 2, 3, 4)));
    Node *am = ir_reduce(G, OP_ARGMAX, x, 0x2, L);
    cr_expect(shape_is(am, th_shape(2, 2, 4)));
    cr_expect_eq(am->dtype, DT_I64);
    cr_expect(shape_is(ir_permute(G, x, (int[]){2, 0, 1}, L), th_shape(3, 4, 2, 3)));
    cr_expect_eq(ir_permute(G, x, (int[]){0, 1, 2}, L), x);
    cr_expect(shape_is(ir_reshape(G, x, th_shape(2, 6, 4), L), th_shape(2, 6, 4)));
    cr_expect_eq(ir_reshape(G, x, th_shape(3, 2, 3, 4), L), x);
    Node *sl = ir_slice(G, x, (int64_t[]){0, 1, 1}, (int64_t[]){2, 3, 4}, (int64_t[]){1, 1, 2}, L);
    cr_expect(shape_is(sl, th_shape(3, 2, 2, 2)));
    Node *sl0 = ir_slice(G, x, (int64_t[]){0, 3, 0}, (int64_t[]){2, 3, 4}, (int64_t[]){1, 1, 3}, L);
    cr_expect(shape_is(sl0, th_shape(3, 2, 0, 2)));
    Node *y = in(DT_F32, th_shape(3, 2, 5, 4));
    Node *cat = ir_concat(G, (Node *[]){x, y, x}, 3, 1, L);
    cr_expect(shape_is(cat, th_shape(3, 2, 11, 4)));
    Node *ci = ir_concat(G, (Node *[]){x, in(DT_I32, th_shape(3, 2, 1, 4))}, 2, 1, L);
    cr_expect_eq(ci->dtype, DT_F32);
    Node *idx = in(DT_I32, th_shape(2, 5, 6));
    cr_expect(shape_is(ir_gather(G, x, idx, L), th_shape(4, 5, 6, 3, 4)));
    Node *sc = ir_scatter_add(G, ir_gather(G, x, idx, L), idx, 7, L);
    cr_expect(shape_is(sc, th_shape(3, 7, 3, 4)));
    Node *pd = ir_pad(G, x, (int64_t[]){1, 0, 2}, (int64_t[]){0, 3, 2}, 0.5, L);
    cr_expect(shape_is(pd, th_shape(3, 3, 6, 8)));
    cr_expect(shape_is(ir_broadcast(G, in(DT_F32, th_shape(2, 3, 1)), th_shape(3, 5, 3, 4), L),
                       th_shape(3, 5, 3, 4)));
    Node *io = ir_iota(G, DT_I64, th_shape(2, 3, 4), 1, L);
    cr_expect_eq(io->dtype, DT_I64);
    Node *w = ir_where(G, in(DT_BOOL, th_shape(1, 4)), in(DT_I32, th_shape(2, 3, 1)),
                       in(DT_F32, th_shape(0)), L);
    cr_expect(shape_is(w, th_shape(2, 3, 4)));
    cr_expect_eq(w->dtype, DT_F32);
    cr_expect(ir_verify(G, "test"));
}

Test(graph, matmul_shapes) {
    Node *a = in(DT_F32, th_shape(2, 128, 784)), *w = in(DT_F32, th_shape(2, 784, 256));
    cr_expect(shape_is(ir_matmul(G, a, w, L), th_shape(2, 128, 256)));
    Node *x3 = in(DT_F32, th_shape(3, 4, 5, 784));
    Node *y = ir_matmul(G, x3, w, L); /* batch folded into M */
    cr_expect(shape_is(y, th_shape(3, 4, 5, 256)));
    cr_expect_eq(y->op, OP_RESHAPE);
    cr_expect_eq(y->src[0]->op, OP_MATMUL);
    Node *b3 = in(DT_F32, th_shape(3, 6, 784, 3));
    Node *z = ir_matmul(G, a, b3, L); /* a shared across b's batch */
    cr_expect(shape_is(z, th_shape(3, 6, 128, 3)));
    cr_expect_eq(z->src[0]->op, OP_BROADCAST);
    Node *ab = in(DT_F64, th_shape(3, 6, 2, 784));
    cr_expect(shape_is(ir_matmul(G, ab, ir_cast(G, b3, DT_F64, L), L), th_shape(3, 6, 2, 3)));
    Node *ii = ir_matmul(G, in(DT_I32, th_shape(2, 2, 3)), in(DT_I64, th_shape(2, 3, 1)), L);
    cr_expect_eq(ii->dtype, DT_I64);
    cr_expect(ir_verify(G, "test"));
}

Test(graph, inputs_and_outputs) {
    Node *a = ir_input(G, DT_F32, th_shape(1, 3), "x", L);
    Node *b = ir_input(G, DT_I64, th_shape(0), "y", L);
    cr_expect_eq(G->ninputs, 2);
    cr_expect_eq(G->inputs[1], b);
    cr_expect_eq(b->attr.input.index, 1);
    cr_expect_str_eq(a->name, "x");
    cr_expect_eq(a->id, 0);
    cr_expect_eq(b->id, 1);
    cr_expect_eq(ir_graph_add_output(G, a), 0);
    cr_expect_eq(ir_graph_add_output(G, b), 1);
    cr_expect_eq(ir_graph_add_output(G, NULL), -1);
    cr_expect_eq(G->noutputs, 2);
    /* many nodes: the node array grows, ids stay dense */
    Node *x = a;
    for (int i = 0; i < 500; i++)
        x = ir_binary(G, OP_ADD, x, a, L);
    cr_expect_eq(x->id, G->nnodes - 1);
    cr_expect(ir_verify(G, "test"));
}

/* ---- error paths ---------------------------------------------------------------------- */

Test(graph, errors_matmul) {
    EXPECT_ERR(ir_matmul(G, in(DT_F32, th_shape(2, 128, 784)), in(DT_F32, th_shape(2, 512, 10)), L),
               "matmul: inner dimensions differ: f32[128,784] @ f32[512,10]");
    EXPECT_ERR(ir_matmul(G, in(DT_F32, th_shape(1, 3)), in(DT_F32, th_shape(2, 3, 4)), L),
               "matmul: operands must have rank >= 2: f32[3] @ f32[3,4]");
    EXPECT_ERR(ir_matmul(G, in(DT_F32, th_shape(3, 2, 3, 4)), in(DT_F32, th_shape(3, 5, 4, 2)), L),
               "matmul: batch dimensions differ: f32[2,3,4] @ f32[5,4,2]");
    cr_expect_eq(D->items[0]->loc.line, 3);
    cr_expect_eq(D->items[0]->loc.col, 5);
}

Test(graph, errors_elementwise) {
    EXPECT_ERR(ir_binary(G, OP_ADD, in(DT_F32, th_shape(2, 3, 4)), in(DT_F32, th_shape(1, 5)), L),
               "add: shapes cannot be broadcast together: f32[3,4] and f32[5]");
    EXPECT_ERR(ir_unary(G, OP_EXP, in(DT_I32, th_shape(1, 3)), L),
               "exp: needs a floating-point operand, got i32[3]");
    EXPECT_ERR(ir_unary(G, OP_SQRT, in(DT_BOOL, th_shape(1, 3)), L),
               "sqrt: needs a floating-point operand");
    EXPECT_ERR(ir_binary(G, OP_POW, in(DT_I32, th_shape(1, 3)), in(DT_I64, th_shape(0)), L),
               "pow: needs floating-point operands, got i32[3] and i64[]");
    EXPECT_ERR(ir_unary(G, OP_ADD, in(DT_F32, th_shape(0)), L), "not a unary elementwise op");
    EXPECT_ERR(ir_binary(G, OP_SUM, in(DT_F32, th_shape(0)), in(DT_F32, th_shape(0)), L),
               "not a binary elementwise op");
    EXPECT_ERR(ir_where(G, in(DT_BOOL, th_shape(1, 2)), in(DT_F32, th_shape(1, 3)),
                        in(DT_F32, th_shape(0)), L),
               "where: shapes cannot be broadcast together: bool[2], f32[3] and f32[]");
    EXPECT_ERR(ir_binary(G, OP_ADD, in(DT_F16, th_shape(1, 3)), in(DT_F32, th_shape(1, 3)), L),
               "add: unsupported operands");
    EXPECT_ERR(ir_cast(G, in(DT_BF16, th_shape(1, 3)), DT_F32, L), "bf16 has no arithmetic yet");
}

Test(graph, errors_leaves) {
    EXPECT_ERR(ir_const(G, DT_I32, th_shape(1, 3), 0.5, L),
               "const: value 0.5 is not representable in i32");
    EXPECT_ERR(ir_const(G, DT_BOOL, th_shape(0), 2, L), "not representable in bool");
    EXPECT_ERR(ir_const(G, DT_F32, th_shape(1, -2), 1, L), "const: negative dimension -2");
    EXPECT_ERR(ir_iota(G, DT_I64, th_shape(2, 3, 4), 2, L),
               "iota: axis 2 out of range for i64[3,4]");
    EXPECT_ERR(ir_iota(G, DT_BOOL, th_shape(1, 3), 0, L), "iota: unsupported dtype bool");
    EXPECT_ERR(ir_input(G, DT_F32, (Shape){.rank = 9}, "x", L), "input: rank 9 out of range");
    cr_expect_eq(G->ninputs, 0);
}

Test(graph, errors_reduce_and_movement) {
    Node *x = in(DT_F32, th_shape(2, 3, 4));
    EXPECT_ERR(ir_reduce(G, OP_SUM, x, 0x4, L), "sum: axis mask 0x4 out of range for f32[3,4]");
    EXPECT_ERR(ir_reduce(G, OP_ARGMAX, x, 0x3, L), "argmax: needs exactly one axis");
    EXPECT_ERR(ir_reduce(G, OP_ADD, x, 1, L), "is not a reduction");
    EXPECT_ERR(ir_reshape(G, x, th_shape(2, 5, 2), L),
               "reshape: cannot reshape f32[3,4] to f32[5,2]");
    EXPECT_ERR(ir_permute(G, x, (int[]){0, 0}, L),
               "permute: [0,0] is not a permutation of the axes of f32[3,4]");
    EXPECT_ERR(ir_permute(G, x, (int[]){1, 2}, L), "not a permutation");
    EXPECT_ERR(ir_broadcast(G, x, th_shape(2, 3, 5), L),
               "broadcast: cannot broadcast f32[3,4] to f32[3,5]");
    EXPECT_ERR(ir_broadcast(G, x, th_shape(1, 4), L), "broadcast: cannot broadcast");
    EXPECT_ERR(ir_slice(G, x, (int64_t[]){0, 2}, (int64_t[]){3, 5}, (int64_t[]){1, 1}, L),
               "slice: axis 1: range 2:5 out of bounds for f32[3,4]");
    EXPECT_ERR(ir_slice(G, x, (int64_t[]){2, 0}, (int64_t[]){1, 4}, (int64_t[]){1, 1}, L),
               "range 2:1 out of bounds");
    EXPECT_ERR(ir_slice(G, x, (int64_t[]){0, 0}, (int64_t[]){3, 4}, (int64_t[]){0, 1}, L),
               "slice: axis 0: step 0 must be >= 1");
    EXPECT_ERR(ir_concat(G, (Node *[]){x, in(DT_F32, th_shape(2, 3, 5))}, 2, 0, L),
               "concat: shapes f32[3,4] and f32[3,5] differ off axis 0");
    EXPECT_ERR(ir_concat(G, (Node *[]){x, x}, 2, 2, L), "concat: axis 2 out of range for f32[3,4]");
    EXPECT_ERR(ir_concat(G, (Node *[]){x}, 1, -1, L), "concat: axis -1 out of range");
    EXPECT_ERR(ir_concat(G, NULL, 0, 0, L), "concat: needs at least one operand");
    EXPECT_ERR(ir_gather(G, x, in(DT_F32, th_shape(1, 2)), L),
               "gather: indices must be integer, got f32[2]");
    EXPECT_ERR(ir_gather(G, in(DT_F32, th_shape(0)), in(DT_I32, th_shape(1, 2)), L),
               "gather: cannot index a scalar f32[]");
    EXPECT_ERR(ir_scatter_add(G, x, in(DT_I32, th_shape(1, 2)), 5, L),
               "scatter_add: updates f32[3,4] do not match indices i32[2]");
    EXPECT_ERR(ir_scatter_add(G, x, in(DT_F32, th_shape(1, 3)), 5, L),
               "scatter_add: indices must be integer");
    EXPECT_ERR(ir_pad(G, x, (int64_t[]){0, -1}, (int64_t[]){0, 0}, 0, L),
               "pad: axis 1: negative padding (-1, 0)");
    EXPECT_ERR(ir_pad(G, in(DT_I32, th_shape(1, 2)), (int64_t[]){1}, (int64_t[]){1}, 0.5, L),
               "pad: value 0.5 is not representable in i32");
}

/* Sizes past int64 are diagnostics, never wrapped shapes (issue 7: a wrapped
 * pad shape corrupted the interpreter's heap). */
Test(graph, errors_size_overflow) {
    Node *x = in(DT_F32, th_shape(1, 3));
    int64_t big = INT64_MAX;
    EXPECT_ERR(ir_pad(G, x, (int64_t[]){big}, (int64_t[]){big}, 0, L),
               "pad: axis 0: 3 + 9223372036854775807 + 9223372036854775807 is too large");
    EXPECT_ERR(ir_pad(G, x, (int64_t[]){big - 2}, (int64_t[]){0}, 0, L),
               "pad: axis 0: 3 + 9223372036854775805");
    Node *h = in(DT_BOOL, (Shape){.rank = 1, .dims = {INT64_C(1) << 62}});
    cr_assert_not_null(h);
    EXPECT_ERR(ir_concat(G, (Node *[]){h, h}, 2, 0, L),
               "concat: axis 0 of the result is too large");
    Node *h2 = in(DT_F32, (Shape){.rank = 1, .dims = {(INT64_C(1) << 62) - 1}});
    EXPECT_ERR(ir_concat(G, (Node *[]){h2, x, h2}, 3, 0, L),
               "concat: axis 0 of the result is too large");
    Shape wide = {.rank = 3, .dims = {INT64_C(1) << 32, 0, INT64_C(1) << 32}};
    EXPECT_ERR(ir_const(G, DT_F32, wide, 0, L), "too many elements");
    Shape neg = {.rank = 2, .dims = {0, -4}};
    EXPECT_ERR(ir_const(G, DT_F32, neg, 0, L), "negative dimension");
    EXPECT_ERR(ir_broadcast(G, x, neg, L), "negative dimension");
    /* a huge step keeps the slice's length exact: one element of three */
    Node *s = ir_slice(G, x, (int64_t[]){0}, (int64_t[]){3}, (int64_t[]){big}, L);
    cr_expect(shape_is(s, th_shape(1, 1)), "slice 0:3:INT64_MAX has one element");
    cr_expect(s && s->attr.slice.step[0] == 1, "a step never taken is stored as 1");
    s = ir_slice(G, x, (int64_t[]){1}, (int64_t[]){3}, (int64_t[]){big - 1}, L);
    cr_expect(shape_is(s, th_shape(1, 1)));
    s = ir_slice(G, x, (int64_t[]){2}, (int64_t[]){2}, (int64_t[]){big}, L);
    cr_expect(shape_is(s, th_shape(1, 0)));
}

Test(graph, errors_rng) {
    Node *seed = in(DT_I64, th_shape(0)), *off = in(DT_I64, th_shape(0));
    EXPECT_ERR(ir_rng(G, OP_RNG_NORMAL, DT_F32, th_shape(1, 4), in(DT_F32, th_shape(0)), off, 1, L),
               "rng_normal: seed must be an integer scalar, got f32[]");
    EXPECT_ERR(
        ir_rng(G, OP_RNG_UNIFORM, DT_F32, th_shape(1, 4), seed, in(DT_I64, th_shape(1, 2)), 1, L),
        "rng_uniform: offset must be an integer scalar, got i64[2]");
    EXPECT_ERR(ir_rng(G, OP_RNG_UNIFORM, DT_I32, th_shape(1, 4), seed, off, 1, L),
               "rng_uniform: result must be f32 or f64");
    EXPECT_ERR(ir_rng(G, OP_ADD, DT_F32, th_shape(1, 4), seed, off, 1, L), "not an rng op");
    EXPECT_ERR(ir_fresh_seed(G, seed, in(DT_F32, th_shape(0)), 0, L),
               "fresh_seed: step must be an integer scalar");
    Node *r = ir_rng(G, OP_RNG_NORMAL, DT_F64, th_shape(1, 4), in(DT_I32, th_shape(0)), off, 7, L);
    cr_assert_not_null(r);
    cr_expect_eq(r->src[0]->op, OP_CAST);
    cr_expect_eq(r->attr.rng.stream, 7u);
}

Test(graph, errors_composites) {
    Node *x = in(DT_F32, th_shape(2, 4, 3));
    EXPECT_ERR(
        ir_cross_entropy(G, x, in(DT_I64, th_shape(1, 5)), L),
        "cross_entropy: expects logits [N,C] and integer labels [N], got f32[4,3] and i64[5]");
    EXPECT_ERR(ir_cross_entropy(G, x, in(DT_F32, th_shape(1, 4)), L),
               "cross_entropy: expects logits");
    EXPECT_ERR(ir_cross_entropy(G, in(DT_I32, th_shape(2, 4, 3)), in(DT_I32, th_shape(1, 4)), L),
               "cross_entropy: needs a floating-point operand");
    EXPECT_ERR(ir_one_hot(G, x, 3, DT_F32, L), "one_hot: labels must be integer, got f32[4,3]");
    EXPECT_ERR(ir_softmax(G, x, 2, L), "softmax: axis 2 out of range for f32[4,3]");
    EXPECT_ERR(ir_logsumexp(G, x, -1, L), "logsumexp: axis -1 out of range");
    EXPECT_ERR(ir_log_softmax(G, in(DT_I32, th_shape(1, 3)), 0, L),
               "log_softmax: needs a floating-point operand");
    EXPECT_ERR(ir_sigmoid(G, in(DT_I64, th_shape(1, 3)), L),
               "sigmoid: needs a floating-point operand, got i64[3]");
    EXPECT_ERR(ir_tanh(G, in(DT_BOOL, th_shape(1, 3)), L), "tanh: needs a floating-point operand");
    EXPECT_ERR(ir_gelu(G, in(DT_I32, th_shape(1, 3)), false, L),
               "gelu: needs a floating-point operand");
    EXPECT_ERR(ir_sum_to(G, x, th_shape(1, 4), L), "sum_to: f32[4,3] is not a broadcast of f32[4]");
    EXPECT_ERR(ir_mse(G, x, in(DT_F32, th_shape(1, 4)), L),
               "sub: shapes cannot be broadcast together");
    EXPECT_ERR(ir_unsqueeze_axes(G, x, 0x10, L), "unsqueeze: axis mask 0x10 does not fit f32[4,3]");
}

Test(graph, null_sources_are_silent) {
    Node *x = in(DT_F32, th_shape(1, 3));
    cr_expect_null(ir_unary(G, OP_NEG, NULL, L));
    cr_expect_null(ir_binary(G, OP_ADD, x, NULL, L));
    cr_expect_null(ir_where(G, NULL, x, x, L));
    cr_expect_null(ir_cast(G, NULL, DT_F64, L));
    cr_expect_null(ir_reduce(G, OP_SUM, NULL, 1, L));
    cr_expect_null(ir_reshape(G, NULL, th_shape(1, 3), L));
    cr_expect_null(ir_permute(G, NULL, (int[]){0}, L));
    cr_expect_null(ir_broadcast(G, NULL, th_shape(1, 3), L));
    cr_expect_null(ir_slice(G, NULL, (int64_t[]){0}, (int64_t[]){1}, (int64_t[]){1}, L));
    cr_expect_null(ir_concat(G, (Node *[]){x, NULL}, 2, 0, L));
    cr_expect_null(ir_gather(G, x, NULL, L));
    cr_expect_null(ir_scatter_add(G, NULL, x, 3, L));
    cr_expect_null(ir_pad(G, NULL, (int64_t[]){0}, (int64_t[]){0}, 0, L));
    cr_expect_null(ir_matmul(G, NULL, x, L));
    cr_expect_null(ir_rng(G, OP_RNG_NORMAL, DT_F32, th_shape(1, 3), NULL, NULL, 0, L));
    cr_expect_null(ir_fresh_seed(G, NULL, NULL, 0, L));
    cr_expect_null(ir_mean(G, NULL, 1, L));
    cr_expect_null(ir_relu(G, NULL, L));
    cr_expect_null(ir_sigmoid(G, NULL, L));
    cr_expect_null(ir_tanh(G, NULL, L));
    cr_expect_null(ir_gelu(G, NULL, false, L));
    cr_expect_null(ir_logsumexp(G, NULL, 0, L));
    cr_expect_null(ir_softmax(G, NULL, 0, L));
    cr_expect_null(ir_log_softmax(G, NULL, 0, L));
    cr_expect_null(ir_cross_entropy(G, NULL, x, L));
    cr_expect_null(ir_mse(G, x, NULL, L));
    cr_expect_null(ir_one_hot(G, NULL, 3, DT_F32, L));
    cr_expect_null(ir_sum_to(G, NULL, th_shape(0), L));
    cr_expect_null(ir_unsqueeze_axes(G, NULL, 1, L));
    /* a chain after an error stays quiet */
    Node *bad = ir_binary(G, OP_ADD, x, in(DT_F32, th_shape(1, 4)), L);
    cr_expect_null(ir_relu(G, ir_unary(G, OP_EXP, bad, L), L));
    cr_expect_eq(D->nerrors, 1);
}

Test(graph, composite_shapes) {
    Node *x = in(DT_F32, th_shape(2, 4, 3)), *lab = in(DT_I32, th_shape(1, 4));
    Node *ce = ir_cross_entropy(G, x, lab, L);
    cr_expect(shape_is(ce, th_shape(0)));
    cr_expect_eq(ce->dtype, DT_F32);
    cr_expect(shape_is(ir_logsumexp(G, x, 1, L), th_shape(1, 4)));
    cr_expect(shape_is(ir_softmax(G, x, 0, L), th_shape(2, 4, 3)));
    cr_expect(shape_is(ir_one_hot(G, lab, 7, DT_F64, L), th_shape(2, 4, 7)));
    cr_expect_eq(ir_one_hot(G, lab, 7, DT_F64, L)->dtype, DT_F64);
    Node *m = ir_mean(G, in(DT_I32, th_shape(2, 4, 3)), 2, L);
    cr_expect_eq(m->dtype, DT_F32);
    cr_expect(shape_is(m, th_shape(1, 4)));
    cr_expect(shape_is(ir_mse(G, x, in(DT_F32, th_shape(1, 3)), L), th_shape(0)));
    Node *big = in(DT_F32, th_shape(3, 5, 4, 3));
    cr_expect(shape_is(ir_sum_to(G, big, th_shape(2, 1, 3), L), th_shape(2, 1, 3)));
    cr_expect(shape_is(ir_sum_to(G, big, th_shape(1, 3), L), th_shape(1, 3)));
    cr_expect(shape_is(ir_sum_to(G, big, th_shape(0), L), th_shape(0)));
    cr_expect_eq(ir_sum_to(G, big, th_shape(3, 5, 4, 3), L), big);
    cr_expect(shape_is(ir_unsqueeze_axes(G, x, 0x5, L), th_shape(4, 1, 4, 1, 3)));
    cr_expect(shape_is(ir_gelu(G, x, false, L), th_shape(2, 4, 3)));
    cr_expect(ir_verify(G, "test"));
    cr_expect_eq(D->nerrors, 0);
}

/* ---- verifier --------------------------------------------------------------------------- */

static Node *small_mlp(void) {
    Node *x = ir_input(G, DT_F32, th_shape(2, 8, 5), "x", L);
    Node *w = ir_input(G, DT_F32, th_shape(2, 5, 3), "W", L);
    Node *b = ir_input(G, DT_F32, th_shape(1, 3), "b", L);
    Node *y = ir_input(G, DT_I64, th_shape(1, 8), "y", L);
    Node *h = ir_relu(G, ir_binary(G, OP_ADD, ir_matmul(G, x, w, L), b, L), L);
    Node *loss = ir_cross_entropy(G, h, y, L);
    ir_graph_add_output(G, loss);
    return loss;
}

Test(graph, verify_good_graph) {
    small_mlp();
    cr_expect(ir_verify(G, "build"));
    cr_expect_eq(D->nerrors, 0);
}

static bool verify_says(const char *want) {
    bool ok = ir_verify(G, "corrupt");
    if (ok) return false;
    for (int i = 0; i < D->n; i++)
        if (strstr(D->items[i]->msg, want)) return true;
    cr_log_error("no diagnostic contains '%s'; last: %s", want, th_last_diag(D));
    return false;
}

Test(graph, verify_catches_wrong_shape) {
    small_mlp();
    Node *mm = NULL;
    for (uint32_t i = 0; i < G->nnodes; i++)
        if (G->nodes[i]->op == OP_MATMUL) mm = G->nodes[i];
    cr_assert_not_null(mm);
    mm->shape.dims[1] = 4;
    cr_expect(verify_says("internal error: after corrupt: %"));
    cr_expect(verify_says("matmul: stored type f32[8,4], but its rule gives f32[8,3]"));
}

Test(graph, verify_catches_order_and_ownership) {
    small_mlp();
    Node *last = G->nodes[G->nnodes - 1];
    Node *first_ew = NULL;
    for (uint32_t i = 0; i < G->nnodes && !first_ew; i++)
        if (G->nodes[i]->nsrc == 1 && G->nodes[i]->op != OP_INPUT) first_ew = G->nodes[i];
    cr_assert_not_null(first_ew);
    Node *saved = first_ew->src[0];
    first_ew->src[0] = last;
    cr_expect(verify_says("does not come before it"));
    first_ew->src[0] = saved;
    cr_expect(ir_verify(G, "fixed"));
    /* a node from another graph */
    Graph *h = ir_graph_new(A, D, "other");
    Node *foreign = ir_input(h, saved->dtype, saved->shape, NULL, L);
    foreign->id = 0;
    first_ew->src[0] = foreign;
    cr_expect(verify_says("is not a node of graph t"));
    first_ew->src[0] = saved;
}

Test(graph, verify_catches_dtype_arity_attr_outputs) {
    Node *loss = small_mlp();
    loss->dtype = DT_F64;
    cr_expect(verify_says("stored type f64[], but its rule gives f32[]"));
    loss->dtype = DT_F32;
    Node *x = G->inputs[0];
    Node *e = ir_unary(G, OP_EXP, x, L);
    e->nsrc = 2;
    cr_expect(verify_says("exp: has 2 sources, expects 1"));
    e->nsrc = 1;
    Node *s = ir_reduce(G, OP_SUM, x, 1, L);
    s->attr.reduce.axes = 0x8;
    cr_expect(verify_says("sum: axis mask 0x8 out of range"));
    s->attr.reduce.axes = 1;
    G->inputs[1]->attr.input.index = 0;
    cr_expect(verify_says("input"));
    G->inputs[1]->attr.input.index = 1;
    cr_expect(ir_verify(G, "fixed"));
    ir_graph_add_output(G, x);
    G->outputs[1] = NULL;
    cr_expect(verify_says("output #1 is NULL"));
    Graph *none = ir_graph_new(A, D, "none");
    cr_expect(ir_verify(none, NULL));
}

/* ---- printer ------------------------------------------------------------------------------- */

Test(graph, print_golden) {
    Node *x = ir_input(G, DT_F32, th_shape(2, 4, 3), "x", L);
    Node *w = ir_input(G, DT_F32, th_shape(2, 3, 2), "mlp.W", (SrcLoc){1, 2, 1, 1});
    w->flags |= NODE_PARAM;
    Node *seed = ir_input(G, DT_I64, th_shape(0), NULL, srcloc_none());
    Node *h = ir_matmul(G, x, w, (SrcLoc){1, 14, 9, 3});
    Node *z = ir_rng(G, OP_RNG_NORMAL, DT_F32, th_shape(2, 4, 2), seed, ir_scalar(G, DT_I64, 0, L),
                     0xabfe42a2u, L);
    Node *y = ir_binary(G, OP_MUL, h, ir_scalar(G, DT_F32, 0.1, srcloc_none()), srcloc_none());
    Node *s = ir_reduce(G, OP_SUM, ir_binary(G, OP_ADD, y, z, L), 0x2, L);
    Node *p = ir_permute(G, h, (int[]){1, 0}, L);
    Node *sl = ir_slice(G, p, (int64_t[]){0, 1}, (int64_t[]){2, 4}, (int64_t[]){1, 2}, L);
    Node *pd = ir_pad(G, sl, (int64_t[]){1, 0}, (int64_t[]){0, 2}, -1.5, L);
    ir_graph_add_output(G, s);
    ir_graph_add_output(G, pd);
    char *text = th_graph_text(G);
    const char *want = "graph t(%0 x: f32[4,3], %1 param mlp.W: f32[3,2], %2: i64[])\n"
                       "  %3 = matmul f32[4,2] %0, %1  ; t.dfl:14:9\n"
                       "  %4 = const i64[] value=0  ; t.dfl:3:5\n"
                       "  %5 = rng_normal f32[4,2] %2, %4 stream=0xabfe42a2  ; t.dfl:3:5\n"
                       "  %6 = const f32[] value=0.1\n"
                       "  %7 = broadcast f32[4,2] %6\n"
                       "  %8 = mul f32[4,2] %3, %7\n"
                       "  %9 = add f32[4,2] %8, %5  ; t.dfl:3:5\n"
                       "  %10 = sum f32[4] %9 axes={1}  ; t.dfl:3:5\n"
                       "  %11 = permute f32[2,4] %3 perm=[1,0]  ; t.dfl:3:5\n"
                       "  %12 = slice f32[2,2] %11 start=[0,1] step=[1,2]  ; t.dfl:3:5\n"
                       "  %13 = pad f32[3,4] %12 lo=[1,0] hi=[0,2] value=-1.5  ; t.dfl:3:5\n"
                       "  return %10, %13\n";
    cr_expect_str_eq(text, want);
    free(text);
}

Test(graph, print_attrs_misc) {
    Node *lab = ir_input(G, DT_I32, th_shape(1, 3), NULL, srcloc_none());
    Node *oh = ir_one_hot(G, lab, 4, DT_F32, srcloc_none());
    Node *cat = ir_concat(G, (Node *[]){oh, oh}, 2, 1, srcloc_none());
    Node *fs = ir_fresh_seed(G, ir_scalar(G, DT_I64, 42, srcloc_none()),
                             ir_scalar(G, DT_I64, 7, srcloc_none()), 1, srcloc_none());
    ir_graph_add_output(G, cat);
    ir_graph_add_output(G, fs);
    char *text = th_graph_text(G);
    cr_expect(strstr(text, "iota i32[3,4] axis=1\n") != NULL, "%s", text);
    cr_expect(strstr(text, "concat f32[3,8] %") != NULL, "%s", text);
    cr_expect(strstr(text, " axis=1\n") != NULL, "%s", text);
    cr_expect(strstr(text, "fresh_seed i64[] %") != NULL, "%s", text);
    cr_expect(strstr(text, " k=1\n") != NULL, "%s", text);
    cr_expect(strstr(text, "const i64[] value=42\n") != NULL, "%s", text);
    free(text);
}

Test(graph, op_names) {
    OpKind k;
    cr_expect(ir_op_from_name("matmul", &k));
    cr_expect_eq(k, OP_MATMUL);
    cr_expect_not(ir_op_from_name("nope", &k));
    for (int i = 0; i < OP_COUNT; i++) {
        cr_expect(ir_op_from_name(ir_op_name((OpKind)i), &k));
        cr_expect_eq((int)k, i);
        cr_expect_not_null(ir_ops[i].doc);
    }
    cr_expect_str_eq(ir_op_name((OpKind)OP_COUNT), "?");
}
