/* Tests of the memory planner (passes/memplan.c) and of how the LLVM runner
 * uses it.
 *
 * Every plan made here is checked exhaustively: no two arena values whose
 * live ranges meet share a byte unless one is the in-place update of the
 * other; offsets are aligned and inside the arena; the arena (peak) is at
 * most the sum of the intermediates; liveness agrees with the fusion plan's
 * reads; and every in-place choice is legal by an independent check on the
 * kernel plans (a map kernel whose loads of the shared buffer are all at the
 * output index, at that buffer's last use, same dtype and size, never a
 * graph output, an input only when donated). Small graphs pin down where
 * in-place must and must not happen; the example programs and a gradient
 * step give real plans. Then the runner, with its arena poisoned, must give
 * the interpreter's results through run_reuse with donated inputs (and when
 * a later call stops donating), and a training loop must stop allocating
 * after its first steps; `dflow run --mem-report` prints the plan. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kernel.h"
#include "codegen/llvm/llvm_backend.h"
#include "frontend/frontend.h"
#include "helpers/ir_helpers.h"
#include "helpers/spawn.h"
#include "ir/exec.h"
#include "ir/interp.h"
#include "passes/autodiff.h"
#include "passes/memplan.h"
#include "passes/pass.h"
#include "runtime/kprog.h"

static Arena *A;
static DiagList *D;
static SrcLoc L = {1, 1, 1, 1};

static void setup(void) {
    A = arena_new();
    D = th_diag_list(A, "t.dfl", "x\n");
}

static void teardown(void) {
    arena_free(A);
}

TestSuite(memplan, .init = setup, .fini = teardown);

static uint64_t rs = 0x5eed;
static double unif(double lo, double hi) {
    rs = rs * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rs >> 11) / 9007199254740992.0;
}

static RtTensor *rand_tensor(DType dt, Shape s, int imax) {
    RtTensor *t = rt_tensor_new(dt, s);
    cr_assert_not_null(t);
    int64_t n = rt_shape_numel(&s);
    for (int64_t i = 0; i < n; i++) {
        if (dt == DT_F32 || dt == DT_F64)
            rt_tensor_set_f64(t, i, unif(-1, 1));
        else
            rt_tensor_set_i64(t, i, (int64_t)unif(0, imax));
    }
    return t;
}

/* ---- the exhaustive plan check ----------------------------------------------------------------
 */

static bool is_output(const Graph *g, const Node *n) {
    for (int j = 0; j < g->noutputs; j++)
        if (g->outputs[j] == n) return true;
    return false;
}

static int64_t round64(int64_t v) {
    return (v + 63) / 64 * 64;
}

/* An in-place choice must be legal for the kernel that makes it. */
static void check_inplace(const Graph *g, const FusionPlan *fp, const MemPlan *mp,
                          const KernelProgram *kp, const bool *donated, int v) {
    const MemBuf *b = &mp->bufs[v], *x = &mp->bufs[b->inplace_of];
    int t = b->def;
    cr_assert_geq(t, 0);
    const KernelPlan *k = &kp->kernels[t];
    cr_assert_eq(fp->groups[t].kind, FG_MAP, "%%%u in place from a non-map group", b->node->id);
    cr_assert_eq(k->kind, KP_MAP);
    cr_assert_eq(x->last_use, t, "%%%u takes %%%u before its last use", b->node->id, x->node->id);
    cr_assert_not(is_output(g, x->node), "%%%u takes the storage of an output", b->node->id);
    cr_assert_eq(x->node->dtype, b->node->dtype);
    cr_assert_eq(x->bytes, b->bytes);
    int xb = kp->buf_of[x->node->id];
    int nloads = 0;
    /* reads away from the output index may only come from row phases, within
       the rows (outer loops) that the kernel's outermost phases are computed for */
    uint32_t *dm = calloc((size_t)k->nins + 1, sizeof *dm);
    uint64_t *dp = calloc((size_t)k->nins + 1, sizeof *dp);
    cr_assert(dm && dp);
    cg_kernel_deps(k, dm, dp);
    uint32_t rows = k->rank ? (uint32_t)((1ull << k->rank) - 1) : 0;
    for (int p = 0; p < k->nphases; p++)
        if (!dp[k->phases[p].ins]) rows &= dm[k->phases[p].ins];
    for (int i = 0; i < k->nins; i++) {
        const KInstr *in = &k->ins[i];
        if (in->kind != KI_LOAD || in->buf != xb) continue;
        nloads++;
        if (in->src[0] == k->out_index) continue;
        cr_assert(dp[i] != 0 && (dm[i] & ~rows) == 0,
                  "%%%u reads %%%u away from its output index outside its row phases", b->node->id,
                  x->node->id);
        cr_assert_eq(rt_shape_numel(&fp->groups[t].root->shape), rt_shape_numel(&x->node->shape));
    }
    free(dm);
    free(dp);
    cr_assert_gt(nloads, 0);
    for (int i = 0; i < k->nins; i++) /* a fast trig kernel may be rerun: never in place */
        cr_assert_not(k->ins[i].kind == KI_OP &&
                      (k->ins[i].op == OP_SIN || k->ins[i].op == OP_COS) && k->ins[i].dt == DT_F32);
    if (b->place == MB_ARENA) {
        cr_assert_eq(x->place, MB_ARENA);
        cr_assert_eq(x->offset, b->offset);
    } else {
        cr_assert_eq(b->place, MB_DONATED);
        cr_assert_eq(x->place, MB_INPUT);
        cr_assert(donated && donated[x->input], "%%%u written into an input not donated",
                  b->node->id);
        cr_assert_eq(b->input, x->input);
        cr_assert(is_output(g, b->node));
    }
}

static void check_plan(const Graph *g, const FusionPlan *fp, const MemPlan *mp,
                       const bool *donated) {
    cr_assert_eq(mp->nsteps, fp->ngroups);
    /* liveness from the fusion plan's reads */
    for (int v = 0; v < mp->nbufs; v++) {
        const MemBuf *b = &mp->bufs[v];
        int last = b->def;
        for (int t = 0; t < fp->ngroups; t++)
            for (int i = 0; i < fp->groups[t].ninputs; i++)
                if (fp->groups[t].inputs[i] == b->node && t > last) last = t;
        if (is_output(g, b->node)) last = fp->ngroups;
        cr_assert_eq(b->last_use, last, "%%%u: last use %d, the reads say %d", b->node->id,
                     b->last_use, last);
        cr_assert_eq(mp->buf_of[b->node->id], v);
        cr_assert_eq(b->place == MB_INPUT, b->def < 0);
        if (b->place == MB_ARENA) {
            cr_assert_eq(b->offset % 64, 0);
            cr_assert_geq(b->offset, 0);
            cr_assert_leq(b->offset + b->bytes, mp->arena_bytes);
            cr_assert_not(is_output(g, b->node));
        }
        if (b->place == MB_OUTPUT || b->place == MB_DONATED) cr_assert(is_output(g, b->node));
    }
    /* no two simultaneously live values share a byte, unless in place */
    int64_t naive = 0;
    for (int u = 0; u < mp->nbufs; u++) {
        const MemBuf *a = &mp->bufs[u];
        if (a->place != MB_ARENA) continue;
        naive += round64(a->bytes);
        for (int v = u + 1; v < mp->nbufs; v++) {
            const MemBuf *b = &mp->bufs[v];
            if (b->place != MB_ARENA) continue;
            bool live = a->def <= b->last_use && b->def <= a->last_use;
            bool bytes = a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes;
            if (!live || !bytes || a->bytes == 0 || b->bytes == 0) continue;
            bool inplace = (b->inplace_of == u && b->def == a->last_use) ||
                           (a->inplace_of == v && a->def == b->last_use);
            cr_assert(inplace, "%%%u [%d..%d] @%lld+%lld and %%%u [%d..%d] @%lld+%lld overlap",
                      a->node->id, a->def, a->last_use, (long long)a->offset, (long long)a->bytes,
                      b->node->id, b->def, b->last_use, (long long)b->offset, (long long)b->bytes);
        }
    }
    cr_assert_eq(mp->naive_bytes, naive);
    cr_assert_leq(mp->arena_bytes, mp->naive_bytes, "peak above the sum of the sizes");
    /* in-place choices, checked on the kernel plans */
    char why[192];
    KernelProgram *kp = cg_schedule(g, fp, A, why, sizeof why);
    int ninplace = 0, ndonated = 0;
    bool used[64] = {false};
    for (int v = 0; v < mp->nbufs; v++) {
        const MemBuf *b = &mp->bufs[v];
        if (b->place == MB_DONATED) {
            ndonated++;
            cr_assert(donated && donated[b->input], "%%%u in an input not donated", b->node->id);
            cr_assert(b->input < 64 && !used[b->input], "input #%d donated twice", b->input);
            used[b->input] = true;
            const MemBuf *x = &mp->bufs[mp->buf_of[g->inputs[b->input]->id]];
            cr_assert_not(is_output(g, x->node));
            cr_assert_eq(x->node->dtype, b->node->dtype);
            cr_assert(rt_shape_eq(&x->node->shape, &b->node->shape), "a donor of another shape");
            if (b->inplace_of < 0)
                cr_assert_lt(x->last_use, b->def, "%%%u takes input #%d while it is live",
                             b->node->id, b->input);
        }
        if (b->inplace_of < 0) continue;
        ninplace++;
        cr_assert_not_null(kp, "cg_schedule: %s", why);
        check_inplace(g, fp, mp, kp, donated, v);
    }
    cr_assert_eq(mp->ninplace, ninplace);
    cr_assert_eq(mp->ndonated, ndonated);
}

static bool veto_trig(void *ctx, const FusionGroup *gr) {
    (void)ctx;
    for (int i = 0; i < gr->nnodes; i++)
        if ((gr->nodes[i]->op == OP_SIN || gr->nodes[i]->op == OP_COS) &&
            gr->nodes[i]->dtype == DT_F32)
            return true;
    return false;
}

static const MemPlan *plan(Graph *g, const bool *donated) {
    cr_assert(ir_verify(g, "test"), "%s", th_last_diag(D));
    FusionPlan *fp = pass_fuse_plan(g, A);
    cr_assert_not_null(fp);
    MemPlanOptions o = pass_memplan_defaults();
    o.donated = donated;
    o.veto = veto_trig;
    const MemPlan *mp = pass_memplan(fp, &o, A);
    cr_assert_not_null(mp, "%s", th_last_diag(D));
    check_plan(g, fp, mp, donated);
    return mp;
}

static const MemBuf *value_of(const MemPlan *mp, const Node *n) {
    int v = mp->buf_of[n->id];
    cr_assert_geq(v, 0, "%%%u is not materialised", n->id);
    return &mp->bufs[v];
}

/* The fusion pass recomputes a cheap elementwise value inside each group
 * that reads it; these tests need the value materialised, so they say so. */
static Node *kept(Node *n) {
    n->flags |= NODE_NO_FUSE;
    return n;
}

/* Two reductions of v, which is kept a materialised value. */
static void use_twice(Graph *g, Node *v) {
    kept(v);
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, v, 1u, L));
    ir_graph_add_output(g, ir_reduce(g, OP_REDUCE_MAX, v, 1u, L));
}

/* ---- sizes past int64 ---------------------------------------------------------------------- */

/* A value or an arena of more than 2^63 bytes is a located diagnostic, not a
 * wrapped size or offset (the planner's sums are checked). */
Test(memplan, sizes_past_int64_are_located_errors) {
    SrcLoc lb = {1, 1, 2, 1};
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, (Shape){.rank = 1, .dims = {INT64_C(1) << 60}}, "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    Node *b = kept(ir_unary(g, OP_SIN, x, lb)); /* a and b live together: 2^63 bytes */
    ir_graph_add_output(g, ir_binary(g, OP_ADD, a, b, L));
    cr_assert(ir_verify(g, "test"), "%s", th_last_diag(D));
    FusionPlan *fp = pass_fuse_plan(g, A);
    cr_assert_not_null(fp);
    MemPlanOptions o = pass_memplan_defaults();
    cr_expect_null(pass_memplan(fp, &o, A), "an arena of 2^63 bytes was planned");
    cr_expect(strstr(th_last_diag(D),
                     "graph g: a f32[1152921504606846976] value and those live with it "
                     "need more than 2^63 bytes"),
              "%s", th_last_diag(D));
    cr_expect_eq(D->items[D->n - 1]->loc.col, 2, "the error is at the value that does not fit");

    Graph *h = ir_graph_new(A, D, "h");
    Node *y = ir_input(h, DT_F32, (Shape){.rank = 1, .dims = {INT64_C(1) << 61}}, "y", lb);
    ir_graph_add_output(h, ir_unary(h, OP_NEG, y, L));
    fp = pass_fuse_plan(h, A);
    cr_assert_not_null(fp);
    cr_expect_null(pass_memplan(fp, &o, A), "an input of 2^63 bytes was planned");
    cr_expect(strstr(th_last_diag(D), "graph h: a f32[2305843009213693952] value"), "%s",
              th_last_diag(D));
}

/* An arena size near 2^63 (a corrupt program image) is out of memory, not
 * an aligned size that overflowed (undefined behaviour) and wrapped. */
Test(memplan, runner_arena_near_int64_is_out_of_memory) {
    RtKProg p;
    memset(&p, 0, sizeof p);
    void *scratch = calloc(1, rt_kprog_scratch_bytes(&p) + 64);
    cr_assert_not_null(scratch);
    rt_kprog_scratch(&p, scratch);
    p.arena_bytes = INT64_MAX - 8;
    RtKExec x;
    memset(&x, 0, sizeof x);
    int bad = -1;
    cr_expect_eq(rt_kprog_run(&x, &p, NULL, NULL, NULL, &bad), RK_OOM);
    cr_expect_eq(x.arena_cap, 0);
    rt_kexec_free(&x);
    free(scratch);
}

/* ---- where in place must and must not happen ---------------------------------------------- */

Test(memplan, elementwise_update_takes_a_dead_intermediate) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, th_shape(2, 24, 40), "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    Node *s = ir_reduce(g, OP_SUM, a, 2u, L); /* reads a: a is a value */
    Node *b =
        ir_binary(g, OP_DIV, a, ir_reshape(g, s, th_shape(2, 24, 1), L), L); /* a's last use */
    use_twice(g, b);
    const MemPlan *mp = plan(g, NULL);
    const MemBuf *va = value_of(mp, a), *vb = value_of(mp, b);
    cr_assert_eq(va->place, MB_ARENA);
    cr_assert_eq(vb->place, MB_ARENA);
    cr_assert_eq(vb->inplace_of, mp->buf_of[a->id], "b should update a in place");
    cr_assert_eq(vb->offset, va->offset);
    cr_assert_lt(mp->arena_bytes, mp->naive_bytes);
}

/* An element update as the frontend lowers `a[1:3, 5] = 2.0` (a where over
 * a padded value and an iota mask, docs/language.md "Updates") at a's last
 * use writes over a: the update costs no second buffer. */
Test(memplan, an_element_update_of_a_dead_value_is_in_place) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, th_shape(2, 24, 40), "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, a, 1u, L)); /* a is read before the update */
    Shape sh = a->shape;
    Node *io = ir_iota(g, DT_I64, sh, 0, L), *jo = ir_iota(g, DT_I64, sh, 1, L);
    Node *in0 = ir_binary(g, OP_AND, ir_binary(g, OP_LE, ir_const_int(g, DT_I64, sh, 1, L), io, L),
                          ir_binary(g, OP_LT, io, ir_const_int(g, DT_I64, sh, 3, L), L), L);
    Node *in1 = ir_binary(g, OP_AND, ir_binary(g, OP_LE, ir_const_int(g, DT_I64, sh, 5, L), jo, L),
                          ir_binary(g, OP_LT, jo, ir_const_int(g, DT_I64, sh, 6, L), L), L);
    int64_t lo[2] = {1, 5}, hi[2] = {21, 34};
    Node *v = ir_pad(g, ir_const(g, DT_F32, th_shape(2, 2, 1), 2.0, L), lo, hi, 0.0, L);
    Node *b = ir_where(g, ir_binary(g, OP_AND, in0, in1, L), v, a, L); /* a's last use */
    use_twice(g, b);
    const MemPlan *mp = plan(g, NULL);
    const MemBuf *va = value_of(mp, a), *vb = value_of(mp, b);
    cr_assert_eq(vb->inplace_of, mp->buf_of[a->id], "the update should write over a");
    cr_assert_eq(vb->offset, va->offset);
}

/* A library call reads its operands whole, through LAPACK's copies: its
 * result never takes an operand's storage, even at the operand's last use,
 * and its packed tuple is one value whose projections are read in place by
 * the consumers; the plan's checks (overlaps, liveness) hold. */
Test(memplan, library_calls_never_update_in_place) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, th_shape(2, 6, 6), "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    Node *y = ir_call(g, OP_INV, &a, L); /* a's last use, same size and dtype */
    Node *t = ir_call(g, OP_QR, &y, L);
    Node *q = ir_tuple_get(g, t, 0, L), *r = ir_tuple_get(g, t, 1, L);
    Node *z = kept(ir_binary(g, OP_ADD, q, r, L)); /* the tuple's last use */
    use_twice(g, ir_unary(g, OP_NEG, z, L));
    const MemPlan *mp = plan(g, NULL);
    const MemBuf *va = value_of(mp, a), *vy = value_of(mp, y), *vt = value_of(mp, t);
    cr_assert_eq(vy->inplace_of, -1, "inv must not overwrite its operand");
    cr_assert_neq(vy->offset, va->offset);
    cr_assert_eq(vt->inplace_of, -1);
    cr_assert_eq(vt->bytes, (36 + 36) * 4, "one packed value for Q and R");
    cr_assert_eq(mp->buf_of[q->id], -1, "a projection is no value of its own");
}

Test(memplan, permuted_or_broadcast_reads_are_not_in_place) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, th_shape(2, 32, 32), "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    int perm[2] = {1, 0};
    Node *t = ir_reduce(g, OP_SUM, a, 1u, L); /* keeps a a value */
    Node *b = ir_binary(g, OP_ADD, a, ir_permute(g, a, perm, L), L);
    use_twice(g, b);
    ir_graph_add_output(g, t);
    const MemPlan *mp = plan(g, NULL);
    cr_assert_eq(value_of(mp, b)->inplace_of, -1, "a transposed read must block in place");

    Graph *h = ir_graph_new(A, D, "h");
    Node *y = ir_input(h, DT_F32, th_shape(2, 16, 16), "y", L);
    Node *r = ir_unary(h, OP_EXP, ir_reshape(h, y, th_shape(2, 1, 256), L), L); /* [1,256] */
    Node *r2 = ir_unary(h, OP_LOG, ir_reshape(h, r, th_shape(2, 16, 16), L), L);
    ir_graph_add_output(h, ir_reduce(h, OP_SUM, r, 1u, L));
    /* r read as a broadcast row and reshaped: only the reshape read is aligned */
    Node *c = ir_binary(
        h, OP_MUL, r2,
        ir_broadcast(h, ir_reshape(h, ir_reduce(h, OP_SUM, r, 2u, L), th_shape(2, 1, 1), L),
                     th_shape(2, 16, 16), L),
        L);
    use_twice(h, c);
    plan(h, NULL); /* legality is checked exhaustively either way */
}

/* A row phase reads its row before any of it is written: a softmax of a
 * dead intermediate takes its storage. Phases over another row layout (the
 * row sums of a transpose, read back per row of the original) do not. */
Test(memplan, row_phases_read_ahead_of_the_writes) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, th_shape(2, 24, 40), "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    Node *b = ir_softmax(g, a, 1, L);
    use_twice(g, b);
    const MemPlan *mp = plan(g, NULL);
    const FusionGroup *gr = &mp->fusion->groups[mp->fusion->group_of[b->id]];
    cr_assert_eq(gr->nphases, 2, "max and sum are phases of the softmax kernel");
    cr_assert_eq(value_of(mp, b)->inplace_of, mp->buf_of[a->id], "the softmax updates a in place");

    Graph *h = ir_graph_new(A, D, "h");
    Node *y = ir_input(h, DT_F32, th_shape(2, 32, 32), "y", L);
    Node *e = kept(ir_unary(h, OP_EXP, y, L));
    int perm[2] = {1, 0};
    Node *cs = ir_reduce(h, OP_SUM, ir_permute(h, e, perm, L), 2u, L); /* column sums of e */
    Node *c = ir_binary(h, OP_DIV, e, ir_reshape(h, cs, th_shape(2, 32, 1), L), L);
    use_twice(h, c);
    mp = plan(h, NULL);
    if (mp->fusion->role[cs->id] == FN_FUSED)
        cr_assert_eq(value_of(mp, c)->inplace_of, -1, "a phase reading other rows of e");
}

Test(memplan, a_value_read_later_is_not_taken) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, th_shape(2, 20, 30), "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    Node *b = ir_binary(g, OP_MUL, a, a, L);
    use_twice(g, b);                                                 /* b: a value, reads a */
    Node *c = ir_binary(g, OP_ADD, ir_unary(g, OP_NEG, b, L), a, L); /* a read again after b */
    use_twice(g, c);
    const MemPlan *mp = plan(g, NULL);
    cr_assert_eq(value_of(mp, b)->inplace_of, -1, "a is still needed after b");
    cr_assert_eq(value_of(mp, c)->inplace_of >= 0, true, "c may take a or b");
}

Test(memplan, inputs_only_when_donated_and_never_outputs) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *w = ir_input(g, DT_F32, th_shape(2, 8, 9), "w", L);
    Node *v = ir_input(g, DT_F32, th_shape(2, 8, 9), "v", L);
    Node *nw = ir_binary(g, OP_SUB, w, ir_binary(g, OP_MUL, ir_scalar(g, DT_F32, 0.1, L), v, L), L);
    ir_graph_add_output(g, nw);
    ir_graph_add_output(g, v); /* v passes through: its storage must survive */
    const MemPlan *mp = plan(g, NULL);
    cr_assert_eq(value_of(mp, nw)->place, MB_OUTPUT, "nothing donated: a fresh output");
    bool don[2] = {true, true};
    mp = plan(g, don);
    cr_assert_eq(value_of(mp, nw)->place, MB_DONATED);
    cr_assert_eq(value_of(mp, nw)->input, 0, "w' in w's storage, never in v's");
    bool don_v[2] = {false, true};
    mp = plan(g, don_v);
    cr_assert_eq(value_of(mp, nw)->place, MB_OUTPUT, "v is an output: never overwritten");

    /* x' = f(a) where a = exp(x) has two readers: x is dead before x' is
       computed, so x' reuses x's storage without an in-place read */
    Graph *h = ir_graph_new(A, D, "h");
    Node *x = ir_input(h, DT_F32, th_shape(2, 8, 9), "x", L);
    Node *a = kept(ir_unary(h, OP_EXP, x, L));
    Node *s = ir_reduce(h, OP_SUM, a, 2u, L);
    Node *nx = ir_binary(h, OP_DIV, a, ir_reshape(h, s, th_shape(2, 8, 1), L), L);
    ir_graph_add_output(h, nx);
    bool don_x[1] = {true};
    mp = plan(h, don_x);
    cr_assert_eq(value_of(mp, nx)->place, MB_DONATED);
    cr_assert_eq(value_of(mp, nx)->inplace_of, -1, "not an in-place read");
    cr_assert_lt(value_of(mp, x)->last_use, value_of(mp, nx)->def);
    mp = plan(h, NULL);
    cr_assert_eq(value_of(mp, nx)->place, MB_OUTPUT);
}

Test(memplan, dtype_changes_reductions_and_vetoed_groups_stay_apart) {
    Graph *g = ir_graph_new(A, D, "g");
    Node *x = ir_input(g, DT_F32, th_shape(2, 16, 12), "x", L);
    Node *a = kept(ir_unary(g, OP_EXP, x, L));
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, a, 1u, L));
    Node *c = ir_cast(g, a, DT_I32, L); /* same size, other dtype */
    use_twice(g, c);
    Node *s = ir_unary(g, OP_SIN, ir_unary(g, OP_EXP, ir_binary(g, OP_ADD, x, x, L), L), L);
    Node *e = ir_unary(g, OP_EXP, x, L);
    ir_graph_add_output(g, ir_reduce(g, OP_SUM, e, 2u, L));
    Node *se = ir_binary(g, OP_ADD, ir_unary(g, OP_SIN, e, L), s, L); /* vetoed: f32 sin */
    use_twice(g, se);
    const MemPlan *mp = plan(g, NULL);
    cr_assert_eq(value_of(mp, c)->inplace_of, -1, "a cast to another dtype");
    cr_assert_eq(value_of(mp, se)->inplace_of, -1, "a vetoed group");
    for (int t = 0; t < mp->nsteps; t++)
        if (mp->fusion->groups[t].kind != FG_MAP)
            cr_assert_eq(mp->bufs[mp->group_buf[t]].inplace_of, -1, "a non-map group in place");
}

/* ---- real graphs ---------------------------------------------------------------------------- */

/* MLP with ReLU and softmax cross-entropy; outputs the loss and SGD-updated parameters. */
static Graph *mlp_step(int batch, int in, int hidden, int classes) {
    Graph *g = ir_graph_new(A, D, "mlp_step");
    Node *x = ir_input(g, DT_F32, th_shape(2, batch, in), "x", L);
    Node *y = ir_input(g, DT_I64, th_shape(1, batch), "y", L);
    Node *w[4];
    Shape ps[4] = {th_shape(2, in, hidden), th_shape(1, hidden), th_shape(2, hidden, classes),
                   th_shape(1, classes)};
    for (int i = 0; i < 4; i++)
        w[i] = ir_input(g, DT_F32, ps[i], "p", L);
    th_mlp_sgd_step(g, x, y, w, L);
    cr_assert(pass_run_pipeline(g, NULL), "%s", th_last_diag(D));
    return g;
}

Test(memplan, gradient_step_reuses_and_updates_parameters_in_place) {
    Graph *g = mlp_step(32, 50, 24, 10);
    bool don[6] = {false, false, true, true, true, true};
    const MemPlan *mp = plan(g, don);
    cr_assert_lt(mp->arena_bytes, mp->naive_bytes, "no reuse in a gradient step");
    cr_assert_eq(mp->ndonated, 4, "every parameter update should be in place (%d)", mp->ndonated);
    plan(g, NULL);
}

/* The executor's donations for one call (ir/exec.c offer_storage, without ownership). */
static void donations(const GraphCall *c, bool *don) {
    const Graph *g = c->graph;
    for (int i = 0; i < g->ninputs; i++) {
        int s = c->in_slots[i], uses = 0;
        bool written = false;
        for (int k = 0; k < g->ninputs; k++)
            uses += c->in_slots[k] == s;
        for (int j = 0; j < g->noutputs; j++)
            written = written || c->out_slots[j] == s;
        don[i] = uses == 1 && written;
    }
}

/* The graphs m runs, each with its first call (ir_module_graphs). */
typedef struct {
    const GraphCall **calls;
    int n;
} Calls;

static Calls calls_of(const Module *m) {
    Calls cs = {NULL, 0};
    cs.n = ir_module_graphs(m, A, NULL, &cs.calls);
    cr_assert_geq(cs.n, 0, "out of memory");
    return cs;
}

static Module *compile_example(const char *path, const char *steps) {
    ConfigOverride ov = {"steps", steps};
    CompileOptions o = {&ov, steps ? 1 : 0, false};
    Module *m = fe_compile(A, D->sources, D, path, &o);
    cr_assert_not_null(m, "%s: %s", path, th_last_diag(D));
    Calls cs = calls_of(m);
    for (int i = 0; i < cs.n; i++)
        cr_assert(pass_run_pipeline(cs.calls[i]->graph, NULL), "%s", th_last_diag(D));
    return m;
}

Test(memplan, example_programs_plan_soundly) {
    const char *progs[] = {"examples/mnist_mlp.dfl", "examples/autoencoder_sgd.dfl",
                           "examples/linreg.dfl"};
    int total = 0, inplace = 0, donated = 0;
    int64_t arena = 0, naive = 0;
    for (size_t p = 0; p < sizeof progs / sizeof progs[0]; p++) {
        Module *m = compile_example(progs[p], NULL);
        Calls cs = calls_of(m);
        for (int i = 0; i < cs.n; i++) {
            bool don[64] = {false};
            cr_assert_leq(cs.calls[i]->graph->ninputs, 64);
            donations(cs.calls[i], don);
            const MemPlan *mp = plan(cs.calls[i]->graph, don);
            plan(cs.calls[i]->graph, NULL);
            total++;
            inplace += mp->ninplace;
            donated += mp->ndonated;
            arena += mp->arena_bytes;
            naive += mp->naive_bytes;
        }
        ir_module_free(m);
    }
    cr_log_info("%d graphs: arena %lld bytes vs %lld without reuse; %d in place (%d donated)",
                total, (long long)arena, (long long)naive, inplace, donated);
    cr_assert_gt(inplace, 0);
    cr_assert_gt(donated, 0);
    cr_assert_lt(arena, naive);
}

/* ---- the runner with the plan: results, donations, allocations ------------------------------- */

static GraphRunner runner(int threads) {
    char err[200] = "";
    LlvmOptions o = {.interp_runs = 0, .nthreads = threads, .poison = true};
    GraphRunner r = llvm_runner_new(&o, err, sizeof err);
    cr_assert_not_null(r.run, "%s", err);
    return r;
}

static void expect_close(const RtTensor *got, const RtTensor *want, const char *what) {
    cr_assert_eq(got->dtype, want->dtype);
    cr_assert(rt_shape_eq(&got->shape, &want->shape));
    int64_t n = rt_shape_numel(&want->shape);
    double norm = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = rt_tensor_get_f64(got, i), b = rt_tensor_get_f64(want, i);
        cr_assert(isfinite(a) == isfinite(b), "%s: element %lld: %g vs %g", what, (long long)i, a,
                  b);
        if (!isfinite(b)) continue;
        norm += b * b;
        if (fabs(a - b) > worst) worst = fabs(a - b);
    }
    cr_assert_leq(worst, 1e-4 * sqrt(norm) + 1e-30, "%s: off by %g (norm %g)", what, worst,
                  sqrt(norm));
}

/* Runs g on the runner with run_reuse (donating as don says) and on the
 * interpreter, from the same inputs; compares; returns how often the runner
 * handed back a donated input. */
static int run_and_compare(GraphRunner *r, const Graph *g, RtTensor **vals, const bool *don,
                           const char *what) {
    int ni = g->ninputs, no = g->noutputs;
    RtTensor *in[64], *copy[64], *want[64] = {0}, *out[64] = {0};
    for (int i = 0; i < ni; i++) {
        in[i] = vals[i];
        copy[i] = rt_tensor_clone(vals[i]); /* the interpreter's untouched inputs */
    }
    cr_assert(ir_interp_run(g, copy, want, D), "%s: interpreter: %s", what, th_last_diag(D));
    cr_assert(r->run_reuse(r->ctx, g, in, don, out, D), "%s: runner: %s", what, th_last_diag(D));
    int returned = 0;
    for (int j = 0; j < no; j++) {
        expect_close(out[j], want[j], what);
        bool donor = false;
        for (int i = 0; i < ni; i++)
            if (out[j] == in[i]) {
                cr_assert(don && don[i], "%s: output %d is an input not donated", what, j);
                donor = true;
            }
        returned += donor;
        if (!donor) rt_tensor_free(out[j]);
        rt_tensor_free(want[j]);
    }
    for (int i = 0; i < ni; i++) {
        bool donated = don && don[i];
        if (!donated) /* an input not donated is never written */
            cr_assert_eq(memcmp(in[i]->data, copy[i]->data, rt_tensor_bytes(copy[i])), 0,
                         "%s: input %d was overwritten", what, i);
        rt_tensor_free(copy[i]);
    }
    return returned;
}

static RtTensor **random_inputs(const Graph *g, int classes) {
    RtTensor **v = calloc((size_t)g->ninputs + 1, sizeof *v);
    for (int i = 0; i < g->ninputs; i++) {
        const Node *n = g->inputs[i];
        v[i] = rand_tensor(n->dtype, n->shape, classes);
        if (n->dtype == DT_F32)
            for (int64_t k = 0; k < rt_shape_numel(&n->shape); k++)
                ((float *)v[i]->data)[k] *= 0.1f;
    }
    return v;
}

Test(memplan, runner_results_match_the_interpreter_with_donations) {
    Graph *g = mlp_step(32, 50, 24, 10);
    bool don[6] = {false, false, true, true, true, true};
    GraphRunner r = runner(2);
    RtTensor **v = random_inputs(g, 10);
    int back = run_and_compare(&r, g, v, don, "mlp step, donated");
    cr_assert_eq(back, 4, "the four parameters come back in their own storage (%d)", back);
    /* a later call that donates nothing: the plan's in-place outputs go to copies */
    back = run_and_compare(&r, g, v, NULL, "mlp step, nothing donated");
    cr_assert_eq(back, 0);
    back = run_and_compare(&r, g, v, don, "mlp step, donated again");
    cr_assert_eq(back, 4);
    for (int i = 0; i < g->ninputs; i++)
        rt_tensor_free(v[i]);
    free(v);

    /* every graph of the examples, each with the executor's donations */
    const char *progs[] = {"examples/mnist_mlp.dfl", "examples/linreg.dfl",
                           "examples/autoencoder_sgd.dfl", "tests/programs/build_mlp.dfl"};
    for (size_t p = 0; p < sizeof progs / sizeof progs[0]; p++) {
        Module *m = compile_example(progs[p], NULL);
        Calls cs = calls_of(m);
        for (int i = 0; i < cs.n; i++) {
            const Graph *cg = cs.calls[i]->graph;
            bool d2[64] = {false};
            donations(cs.calls[i], d2);
            RtTensor **vi = random_inputs(cg, 10);
            char what[128];
            snprintf(what, sizeof what, "%s: %s", progs[p], cg->name ? cg->name : "?");
            run_and_compare(&r, cg, vi, d2, what);
            for (int k = 0; k < cg->ninputs; k++)
                rt_tensor_free(vi[k]);
            free(vi);
        }
        ir_module_free(m);
    }
    llvm_runner_free(&r);
}

Test(memplan, a_training_loop_stops_allocating) {
    Module *m = compile_example("examples/mnist_mlp.dfl", "12");
    GraphRunner r = runner(0);
    ExecOptions o = {.seed = 1, .runner = r};
    cr_assert(ir_exec_module(m, &o), "%s", th_last_diag(D));
    int64_t step_allocs = -1;
    for (int i = 0; i < llvm_runner_ngraphs(&r); i++) {
        const LlvmGraphInfo *gi = llvm_runner_graph(&r, i);
        cr_assert_not(gi->fallback, "%s: %s", gi->graph, gi->reason);
        if (gi->runs == 12) step_allocs = gi->allocs;
    }
    /* first compiled run: the loss slot is still empty; after it nothing */
    cr_assert_geq(step_allocs, 0, "no graph ran 12 times");
    cr_assert_leq(step_allocs, 1, "the step graph allocated %lld tensors in 12 runs",
                  (long long)step_allocs);
    int64_t total = llvm_runner_allocs(&r);
    llvm_runner_free(&r);
    ir_module_free(m);

    /* the same program for 40 steps: not one allocation more */
    m = compile_example("examples/mnist_mlp.dfl", "40");
    r = runner(0);
    o.runner = r;
    cr_assert(ir_exec_module(m, &o), "%s", th_last_diag(D));
    cr_assert_eq(llvm_runner_allocs(&r), total, "12 steps: %lld allocations, 40 steps: %lld",
                 (long long)total, (long long)llvm_runner_allocs(&r));
    llvm_runner_free(&r);
    ir_module_free(m);
}

/* ---- dflow run --mem-report ---------------------------------------------------------------- */

Test(memplan, run_mem_report_prints_the_categories, .timeout = 120) {
    const char *bin = th_dflow_bin();
    if (!bin) cr_skip_test("DFLOW_BIN is not set (run the tests through ctest)");
    char *argv[] = {(char *)bin, "run",      "examples/mnist_mlp.dfl", "--backend", "cpu",
                    "--set",     "steps=30", "--mem-report",           "-v",        NULL};
    SpawnOptions so = {.timeout_s = 110};
    SpawnResult r;
    cr_assert(th_spawn(argv, &so, &r));
    cr_assert(r.exited && r.code == 0, "exit %d:\n%s", r.code, r.err);
    /* 784*256 + 256 + 256*10 + 10 floats of parameters, as many of momentum */
    cr_assert(strstr(r.err, "mem: graph mlp_step: parameters 795.0 KiB, optimizer state 795.0 KiB, "
                            "activations "),
              "%s", r.err);
    /* the step graph is compiled before its first run, whose loss has no tensor to
       reuse yet: one allocation in 30 steps, none in the steady state */
    cr_assert(strstr(r.err, "mem: graph mlp_step: 30 runs, 1 output tensors allocated"), "%s",
              r.err);
    cr_assert(
        strstr(r.err, "mem: run: parameters 795.0 KiB, optimizer state 795.0 KiB, activations"),
        "%s", r.err);
    cr_assert(strstr(r.err, "scratch 0 B; data 29.9 MiB"), "%s", r.err);
    cr_assert(strstr(r.err, "cpu: graph mlp_step: ") && strstr(r.err, "cpu: compiled 6 graphs in "),
              "-v reports compile times:\n%s", r.err);
    cr_assert_null(strstr(r.out, "mem:"), "the report goes to stderr");
    th_spawn_free(&r);
}
