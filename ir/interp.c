/* The reference interpreter's driver: evaluates a graph node by node in
 * creation order (a topological order), plus the random-number kernels.
 *
 * Only nodes an output depends on are evaluated. Use counts are computed
 * first, so each intermediate is freed right after its last consumer runs;
 * input tensors are borrowed from the caller and never freed or written.
 * Every failure (bad inputs, out of memory, a gather index out of range)
 * becomes a diagnostic, and everything made so far is freed. */
#include <stdlib.h>
#include <string.h>

#include "../runtime/rng.h"
#include "exec.h"
#include "interp_impl.h"
#include "numerics.h"
#include "oom.h"
#include "op_cases.h"
#include "shape.h"

RtTensor *ir_interp_alloc(const Node *n, DiagList *d) {
    RtTensor *t = rt_tensor_new(n->dtype, n->shape);
    if (!t)
        ir_oom_value(d, n->loc, n->dtype, &n->shape, ir_op_name(n->op), 0, rt_tensor_live_bytes());
    return t;
}

/* ---- random numbers (rng.md): element i of a node uses index offset + i ---------- */

static RtTensor *rng(const Node *n, RtTensor *const *src, DiagList *d) {
    RtTensor *o = ir_interp_alloc(n, d);
    if (!o) return NULL;
    uint64_t seed = (uint64_t) * (const int64_t *)src[0]->data;
    uint64_t off =
        (uint64_t) * (const int64_t *)src[1]->data; /* i64 reinterpreted; wraps mod 2^64 */
    if (n->op == OP_FRESH_SEED) {
        *(int64_t *)o->data = (int64_t)rt_fresh_seed(seed, off, n->attr.rng.k);
        return o;
    }
    uint32_t stream = n->attr.rng.stream;
    int64_t cnt = rt_shape_numel(&n->shape);
    if (n->dtype == DT_F64) {
        double *p = o->data;
        for (int64_t i = 0; i < cnt; i++) {
            uint64_t idx = off + (uint64_t)i;
            p[i] = n->op == OP_RNG_NORMAL ? rt_rng_normal_f64(seed, stream, idx)
                                          : (double)rt_rng_uniform(seed, stream, idx);
        }
        return o;
    }
    /* f32: one Philox block serves four consecutive elements. The block is
     * Philox(counter = (j lo, j hi, stream, 0), key = (seed lo, seed hi)) for
     * j = index / 4, exactly as rt_rng_word computes it. */
    float *p = o->data;
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t w[4];
    uint64_t have = UINT64_MAX;
    for (int64_t i = 0; i < cnt; i++) {
        uint64_t idx = off + (uint64_t)i, j = idx / 4;
        if (j != have || i == 0) {
            const uint32_t ctr[4] = {(uint32_t)j, (uint32_t)(j >> 32), stream, 0};
            rt_philox4x32_10(ctr, key, w);
            have = j;
        }
        unsigned q = (unsigned)(idx % 4);
        if (n->op == OP_RNG_UNIFORM)
            p[i] = rt_rng_uniform_from_word(w[q]);
        else
            p[i] = rt_rng_normal_from_words(w[q & 2u], w[(q & 2u) + 1], (int)(idx & 1));
    }
    return o;
}

/* ---- one node ------------------------------------------------------------------------ */

static RtTensor *eval(const Node *n, RtTensor *const *src, DiagList *d) {
    if (!ir_dtype_arith(n->dtype)) {
        diag_error(d, n->loc, "%s: the interpreter has no %s arithmetic", ir_op_name(n->op),
                   rt_dtype_name(n->dtype));
        return NULL;
    }
    switch (n->op) {
    case OP_INPUT:
        diag_error(d, n->loc, "internal error: input #%d has no value", n->attr.input.index);
        return NULL;
    case OP_CONST:
    case OP_IOTA:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    IR_CASES_EW_TERNARY:
        return ir_interp_ew(n, src, d);
    IR_CASES_REDUCE:
        return ir_interp_reduce(n, src, d);
    IR_CASES_MOVE:
        return ir_interp_move(n, src, d);
    IR_CASES_CONTR:
        return ir_interp_matmul(n, src, d);
    IR_CASES_ORDER:
        return ir_interp_order(n, src, d);
    IR_CASES_CALL:
        return ir_interp_call(n, src, d);
    IR_CASES_RAND:
        return rng(n, src, d);
    }
    diag_error(d, n->loc, "internal error: the interpreter cannot run op %d", (int)n->op);
    return NULL;
}

static bool same_type(const RtTensor *t, DType dt, const Shape *s) {
    return t && t->dtype == dt && rt_shape_eq(&t->shape, s);
}

RtTensor *ir_interp_node(const Node *n, RtTensor *const *srcs, DiagList *diags) {
    if (!n) return NULL;
    for (int i = 0; i < n->nsrc; i++) {
        if (!same_type(srcs[i], n->src[i]->dtype, &n->src[i]->shape)) {
            char b[96];
            diag_error(diags, n->loc, "%s: operand %d is not a %s tensor", ir_op_name(n->op), i,
                       ir_type_str(n->src[i]->dtype, &n->src[i]->shape, b, sizeof b));
            return NULL;
        }
    }
    return eval(n, srcs, diags);
}

/* ---- a whole graph -------------------------------------------------------------------- */

typedef struct {
    RtTensor **val;
    bool *borrowed; /* inputs: the caller's tensors */
    int *uses;      /* remaining consumers, outputs counted once each */
    bool *live;
    uint32_t n;
} Run;

static void run_free(Run *r) {
    if (r->val)
        for (uint32_t i = 0; i < r->n; i++)
            if (!r->borrowed[i]) rt_tensor_free(r->val[i]);
    free(r->val);
    free(r->borrowed);
    free(r->uses);
    free(r->live);
}

static bool check_inputs(const Graph *g, RtTensor *const *inputs, DiagList *d) {
    bool ok = true;
    for (int i = 0; i < g->ninputs; i++) {
        const Node *in = g->inputs[i];
        const RtTensor *t = inputs ? inputs[i] : NULL;
        if (same_type(t, in->dtype, &in->shape)) continue;
        char want[96], got[96];
        ir_type_str(in->dtype, &in->shape, want, sizeof want);
        if (t) ir_type_str(t->dtype, &t->shape, got, sizeof got);
        diag_error(d, in->loc, "input #%d%s%s%s: expected %s, got %s", i, in->name ? " (" : "",
                   in->name ? in->name : "", in->name ? ")" : "", want, t ? got : "nothing");
        ok = false;
    }
    return ok;
}

bool ir_interp_run(const Graph *g, RtTensor *const *inputs, RtTensor **outputs, DiagList *diags) {
    return ir_interp_run_checked(g, inputs, outputs, diags, NULL);
}

/* --check-numerics: false with the error when n's new value v holds a NaN
 * or Inf. */
static bool numerics_ok(const Node *n, const RtTensor *v, RtTensor *const *src,
                        const NumericsCheck *c, DiagList *d) {
    if (!c || !v || !ir_numerics_computes(n)) return true;
    int64_t i = ir_numerics_find(v->data, v->dtype, rt_shape_numel(&v->shape));
    if (i < 0) return true;
    ir_numerics_error(d, n, v->data, i, src, c);
    return false;
}

bool ir_interp_run_checked(const Graph *g, RtTensor *const *inputs, RtTensor **outputs,
                           DiagList *diags, const NumericsCheck *c) {
    if (!g) return false;
    for (int j = 0; j < g->noutputs; j++)
        outputs[j] = NULL;
    if (!check_inputs(g, inputs, diags)) return false;
    Run r = {0};
    r.n = g->nnodes;
    size_t cnt = r.n ? r.n : 1;
    r.val = calloc(cnt, sizeof *r.val);
    r.borrowed = calloc(cnt, sizeof *r.borrowed);
    r.uses = calloc(cnt, sizeof *r.uses);
    r.live = calloc(cnt, sizeof *r.live);
    if (!r.val || !r.borrowed || !r.uses || !r.live) {
        run_free(&r);
        diag_error(diags, srcloc_none(), "out of memory in the interpreter");
        return false;
    }
    /* Liveness: what the outputs need, walked backwards over the topological order. */
    for (int j = 0; j < g->noutputs; j++) {
        r.live[g->outputs[j]->id] = true;
        r.uses[g->outputs[j]->id]++;
    }
    for (uint32_t i = r.n; i-- > 0;) {
        if (!r.live[i]) continue;
        const Node *n = g->nodes[i];
        for (int k = 0; k < n->nsrc; k++) {
            r.live[n->src[k]->id] = true;
            r.uses[n->src[k]->id]++;
        }
    }
    RtTensor *srcbuf[8], **src = srcbuf;
    bool ok = true;
    for (uint32_t i = 0; i < r.n && ok; i++) {
        if (!r.live[i]) continue;
        const Node *n = g->nodes[i];
        if (n->op == OP_INPUT) {
            r.val[i] = inputs[n->attr.input.index];
            r.borrowed[i] = true;
            continue;
        }
        if (n->nsrc > 8 && !(src = malloc(sizeof *src * (size_t)n->nsrc))) {
            diag_error(diags, n->loc, "out of memory in the interpreter");
            ok = false;
            break;
        }
        for (int k = 0; k < n->nsrc; k++)
            src[k] = r.val[n->src[k]->id];
        r.val[i] = eval(n, src, diags);
        ok = r.val[i] != NULL && numerics_ok(n, r.val[i], src, c, diags);
        for (int k = 0; k < n->nsrc; k++) {
            uint32_t s = n->src[k]->id;
            if (--r.uses[s] == 0 && !r.borrowed[s]) {
                rt_tensor_free(r.val[s]);
                r.val[s] = NULL;
            }
        }
        if (src != srcbuf) free(src);
        src = srcbuf;
    }
    /* Hand the outputs over: the last reference to a value moves it, earlier
     * ones (and borrowed inputs) get a copy. */
    for (int j = 0; ok && j < g->noutputs; j++) {
        uint32_t id = g->outputs[j]->id;
        if (--r.uses[id] == 0 && !r.borrowed[id]) {
            outputs[j] = r.val[id];
            r.val[id] = NULL;
        } else if (!(outputs[j] = rt_tensor_clone(r.val[id]))) {
            const Node *o = g->outputs[j];
            ir_oom_value(diags, o->loc, o->dtype, &o->shape, ir_op_name(o->op), 0,
                         rt_tensor_live_bytes());
            ok = false;
        }
    }
    if (!ok)
        for (int j = 0; j < g->noutputs; j++) {
            rt_tensor_free(outputs[j]);
            outputs[j] = NULL;
        }
    run_free(&r);
    return ok;
}

/* ---- the interpreter as a GraphRunner (ir/exec.h) ---- */

static bool interp_run(void *ctx, const Graph *g, RtTensor *const *in, RtTensor **out,
                       DiagList *d) {
    return ir_interp_run_checked(g, in, out, d, ctx);
}

GraphRunner ir_interp_runner(void) {
    GraphRunner r = {"interp", NULL, interp_run, NULL};
    return r;
}

GraphRunner ir_interp_runner_checked(NumericsCheck *c) {
    GraphRunner r = {"interp", c, interp_run, NULL};
    return r;
}
