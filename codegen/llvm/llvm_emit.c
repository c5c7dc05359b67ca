/* Kernel plans -> LLVM IR: one internal function per kernel, a task wrapper
 * per kernel, and one table of tasks per graph.
 *
 * A kernel function takes the buffers it touches as `ptr noalias` arguments
 * (an in-place input shares the output's argument, so LLVM sees the true
 * dependence) plus the range [lo, hi) of its parallel axis (kernel.h), and
 * returns i32 (bit 0: an index check failed). Its loops are plain counted
 * loops; the plan's instructions are emitted in the innermost body and
 * cached per loop depth, so a value is built once per scope and O3 (LICM,
 * the loop and SLP vectorisers) does the hoisting and widening. Reductions
 * pick one of two loop orders: when the innermost axis is reduced (row
 * sums, softmax) the kept axes go outside and the reduced ones accumulate
 * into a register-promoted local with reassociation allowed, so the inner
 * loop vectorises; otherwise (column sums, bias gradients) the output is
 * updated in place in source order, which vectorises along the kept
 * innermost axis (a split kernel initialises each element at its first
 * reduced point instead of in a separate pass, so tasks touch only their
 * own outputs). An f32 sum accumulates in f64: rows and row phases add
 * each chunk of 64 elements in f32 (vectorised at full width) and the
 * chunks in f64; columns sum into an f64 tile on the stack (acc_dt). Float matmuls are
 * cblas_sgemm/dgemm calls on the task's rows or columns of each batch matrix (a product accumulated
 * onto a start value first writes that value into the same rows, then calls with beta 1). A row
 * phase (KI_REDUCE) is its own counted loop with a register-promoted accumulator, emitted as soon
 * as the loops it depends on are open (at entry, or right after opening the last of them), so it
 * runs once per row before the row's other work and the row is still in cache when that work reads
 * it again; phases nested in a phase's row are placed the same way inside it. A kernel with f32
 * sin/cos is emitted twice: a fast variant on the polynomial path that reports (bit 1) any argument
 * beyond its range, and an exact variant with a libm branch, run instead only then (such kernels
 * never update in place, so a rerun is safe). Each kernel is emitted alone (llvm_emit_kernel:
 * external functions, so one compiled copy serves every kernel of the same structure); a graph's
 * glue (llvm_emit_glue) has per kernel a task wrapper `i32 task(ptr bufs, i64 lo, i64 hi)` that
 * loads the kernel's pointers from bufs[] and calls it, and the constant table `<name>_tab` of
 * (fast task, exact task or null) per kernel in execution order, which the runner calls
 * (codegen/llvm/llvm_runner.c). Flat random maps draw one Philox block per four elements
 * (emit_map_blocks) in kernels optimised at O3; at O0 (LlvmCG.fast), or with the environment
 * variable DFLOW_RNG_PER_ELEMENT, one element at a time: the same bits, a tenth of the compile
 * time. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ir/op_cases.h"
#include "../../runtime/order.h"
#include "llvm_internal.h"

typedef struct {
    LlvmCG *cg;
    const KernelProgram *p;
    const KernelPlan *k;
    LLVMValueRef fn;
    LLVMValueRef *bufp;    /* per program buffer: the kernel's argument, or NULL */
    LLVMValueRef *loopvar; /* per loop axis (main, then phases') */
    LLVMValueRef *val;     /* per instruction: value in the current scope */
    int *lvl;              /* per instruction: loop depth it was built at */
    int depth;
    uint32_t *dmain; /* per instruction: main axes it depends on (cg_kernel_deps) */
    uint64_t *dph;   /* per instruction: phase axes it depends on */
    uint32_t open;   /* main axes whose loops are open here */
    uint64_t open_ph;
    int stash;     /* the phase whose summand the map keeps in out_buf, or -1 */
    int pf_phase;  /* the phase that prefetches the next row (pick_prefetch), or -1 */
    int pf_axis;   /* the main axis that steps from row to row */
    int *pf_loads; /* the loads it prefetches */
    int npf;
    LLVMValueRef err;    /* i1 local: some check failed */
    LLVMValueRef lo, hi; /* i64: the task's range of the parallel axis */
} KE;

typedef struct {
    LLVMBasicBlockRef body, exit;
    LLVMValueRef iv, end;
    int axis;
} Loop;

static LLVMValueRef emit_ins(KE *ke, int i);

#define B (ke->cg->b)

/* Row phases that prefetch the next row do so a chunk of PF_CHUNK elements
 * at a time; rows shorter than PF_MIN_ROW, or kernels over fewer than
 * PF_MIN_POINTS points (in cache anyway), do not. */
#define PF_CHUNK 64
#define PF_MIN_ROW 256
#define PF_MIN_POINTS (1 << 18)

static LLVMValueRef i64c(KE *ke, int64_t v) {
    return LLVMConstInt(ke->cg->i64, (unsigned long long)v, 1);
}

static void axis_bit(KE *ke, int axis, bool on) {
    if (axis < 0) return;
    if (axis < ke->k->rank) {
        uint32_t b = 1u << axis;
        ke->open = on ? ke->open | b : ke->open & ~b;
    } else {
        uint64_t b = 1ull << (axis - ke->k->rank);
        ke->open_ph = on ? ke->open_ph | b : ke->open_ph & ~b;
    }
}

/* Emits here, in order, the row phases that the loop of `axis` (just
 * opened; -1: none, at entry) completes: all the loops they depend on are
 * open now, and they depend on this one (or on none at entry), so they
 * could not be placed further out. Each then runs once per row, before
 * anything in the row uses it. */
static bool emit_ready(KE *ke, int axis) {
    const KernelPlan *k = ke->k;
    uint32_t bm = axis >= 0 && axis < k->rank ? 1u << axis : 0;
    uint64_t bp = axis >= k->rank ? 1ull << (axis - k->rank) : 0;
    for (int p = 0; p < k->nphases; p++) {
        int i = k->phases[p].ins;
        if (ke->val[i] || (ke->dmain[i] & ~ke->open) || (ke->dph[i] & ~ke->open_ph)) continue;
        if (axis < 0 ? (ke->dmain[i] || ke->dph[i]) : !((ke->dmain[i] & bm) || (ke->dph[i] & bp)))
            continue;
        if (!emit_ins(ke, i)) return false;
    }
    return true;
}

/* A loop over [start, end) (i64 values; the caller guarantees start < end). */
static void loop_open_range(KE *ke, Loop *L, int axis, LLVMValueRef start, LLVMValueRef end) {
    LlvmCG *cg = ke->cg;
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
    L->end = end;
    L->axis = axis;
    L->body = LLVMAppendBasicBlockInContext(cg->ctx, ke->fn, "loop");
    L->exit = LLVMAppendBasicBlockInContext(cg->ctx, ke->fn, "done");
    LLVMBuildBr(B, L->body);
    LLVMPositionBuilderAtEnd(B, L->body);
    L->iv = LLVMBuildPhi(B, cg->i64, "i");
    LLVMAddIncoming(L->iv, &start, &pre, 1);
    if (axis >= 0) ke->loopvar[axis] = L->iv;
    ke->depth++;
    axis_bit(ke, axis, true);
    if (axis >= 0) emit_ready(ke, axis); /* a failure is recorded in cg->error */
}

static void loop_open(KE *ke, Loop *L, int axis, int64_t n) {
    loop_open_range(ke, L, axis, i64c(ke, 0), i64c(ke, n));
}

static void loop_close(KE *ke, Loop *L) {
    LLVMBasicBlockRef cur = LLVMGetInsertBlock(B);
    LLVMValueRef next = LLVMBuildNUWAdd(B, L->iv, i64c(ke, 1), "");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntULT, next, L->end, ""), L->body, L->exit);
    LLVMAddIncoming(L->iv, &next, &cur, 1);
    LLVMPositionBuilderAtEnd(B, L->exit);
    ke->depth--;
    axis_bit(ke, L->axis, false);
    for (int i = 0; i < ke->k->nins; i++) /* values built inside no longer dominate */
        if (ke->val[i] && ke->lvl[i] > ke->depth) ke->val[i] = NULL;
}

/* ---- instructions ------------------------------------------------------------------------ */

static LLVMValueRef elem_ptr(KE *ke, int buf, LLVMValueRef idx) {
    LLVMTypeRef t = llvm_mem_type(ke->cg, ke->p->bufs[buf].dt);
    return LLVMBuildInBoundsGEP2(B, t, ke->bufp[buf], &idx, 1, "");
}

static LLVMValueRef load_elem(KE *ke, int buf, LLVMValueRef idx) {
    DType dt = ke->p->bufs[buf].dt;
    LLVMTypeRef t = llvm_mem_type(ke->cg, dt);
    LLVMValueRef v = LLVMBuildLoad2(B, t, elem_ptr(ke, buf, idx), "");
    LLVMSetAlignment(v, (unsigned)rt_dtype_size(dt));
    if (dt == DT_BOOL) v = LLVMBuildICmp(B, LLVMIntNE, v, LLVMConstNull(t), "");
    return v;
}

static void store_elem(KE *ke, int buf, LLVMValueRef idx, LLVMValueRef v) {
    DType dt = ke->p->bufs[buf].dt;
    if (dt == DT_BOOL) v = LLVMBuildZExt(B, v, ke->cg->i8, "");
    LLVMValueRef st = LLVMBuildStore(B, v, elem_ptr(ke, buf, idx));
    LLVMSetAlignment(st, (unsigned)rt_dtype_size(dt));
}

static LLVMValueRef emit_phase(KE *ke, int i);

static LLVMValueRef emit_ins(KE *ke, int i) {
    if (ke->val[i]) return ke->val[i];
    LlvmCG *cg = ke->cg;
    const KInstr *in = &ke->k->ins[i];
    LLVMValueRef v[3] = {NULL, NULL, NULL}, r = NULL;
    if (in->kind == KI_REDUCE) { /* its source belongs inside its own loops */
        r = emit_phase(ke, i);
        if (!r) return NULL;
        ke->val[i] = r;
        ke->lvl[i] = ke->depth;
        return r;
    }
    for (int s = 0; s < in->nsrc; s++)
        if (!(v[s] = emit_ins(ke, in->src[s]))) return NULL;
    switch (in->kind) {
    case KI_LOOP:
        r = ke->loopvar[in->axis];
        break;
    case KI_CONST:
        r = llvm_const(cg, in->dt, in->c.f, in->c.i);
        break;
    case KI_LOAD:
        r = load_elem(ke, in->buf, v[0]);
        break;
    case KI_OP: {
        const LlvmOpEntry *e = &llvm_op_table[in->op];
        if (e->how != LL_SCALAR || !e->emit) {
            llvm_fail(cg, "%s is not elementwise", ir_op_name(in->op));
            return NULL;
        }
        DType sdt = in->nsrc ? ke->k->ins[in->src[0]].dt : in->dt;
        r = e->emit(cg, in->op, in->dt, sdt, v);
        break;
    }
    case KI_RNG:
        r = llvm_rng(cg, in->op, in->dt, v[0], v[1], in->stream);
        break;
    case KI_FRESH_SEED:
        r = llvm_fresh_seed(cg, v[0], v[1], in->stream);
        break;
    case KI_REDUCE:
        break;
    }
    if (!r) {
        llvm_fail(cg, "cannot lower instruction %d of kernel %d", i, ke->k->id);
        return NULL;
    }
    ke->val[i] = r;
    ke->lvl[i] = ke->depth;
    return r;
}

/* The checks of the current scope: those depending on no phase loop, or
 * (phase >= 0) those whose innermost phase loop is one of that phase's. */
static bool emit_checks_of(KE *ke, int phase) {
    const KernelPlan *k = ke->k;
    for (int c = 0; c < k->nchecks; c++) {
        uint64_t ph = ke->dph[k->checks[c]];
        if (phase < 0 ? ph != 0 : ph == 0) continue;
        if (phase >= 0) {
            int top = 63 - __builtin_clzll(ph) + k->rank;
            const KPhase *p = &k->phases[phase];
            if (top < p->first_axis || top >= p->first_axis + p->rank) continue;
        }
        LLVMValueRef ok = emit_ins(ke, k->checks[c]);
        if (!ok) return false;
        LLVMValueRef e = LLVMBuildLoad2(B, ke->cg->i1, ke->err, "");
        LLVMBuildStore(B, LLVMBuildOr(B, e, LLVMBuildNot(B, ok, ""), ""), ke->err);
    }
    return true;
}

static bool emit_checks(KE *ke) {
    return emit_checks_of(ke, -1);
}

static bool empty_space(const KernelPlan *k) {
    for (int i = 0; i < k->rank; i++)
        if (k->dims[i] == 0) return true;
    return false;
}

/* Opens loops over the axes selected by mask, in order; returns how many.
 * The parallel axis runs over the task's range [lo, hi). */
static int open_axes(KE *ke, Loop *loops, uint32_t mask) {
    int n = 0;
    for (int a = 0; a < ke->k->rank; a++) {
        if (!(mask >> a & 1)) continue;
        if (a == ke->k->par_axis)
            loop_open_range(ke, &loops[n++], a, ke->lo, ke->hi);
        else
            loop_open(ke, &loops[n++], a, ke->k->dims[a]);
    }
    return n;
}

static void close_all(KE *ke, Loop *loops, int n) {
    while (n > 0)
        loop_close(ke, &loops[--n]);
}

/* out[0..numel) = v, over one flat loop. */
static void fill(KE *ke, LLVMValueRef v) {
    if (ke->k->out_numel == 0) return;
    Loop L;
    loop_open(ke, &L, -1, ke->k->out_numel);
    store_elem(ke, ke->k->out_buf, L.iv, v);
    loop_close(ke, &L);
}

/* ---- kernel kinds ------------------------------------------------------------------------- */

static uint32_t all_axes(const KernelPlan *k) {
    return k->rank ? (uint32_t)((1ull << k->rank) - 1) : 0;
}

/* ---- random maps by Philox block ------------------------------------------------------------ */

/* Does instruction i depend on a loop variable? (memo: 0 unknown, 1 no, 2 yes) */
static bool varies(const KernelPlan *k, int i, uint8_t *memo) {
    if (memo[i]) return memo[i] == 2;
    const KInstr *in = &k->ins[i];
    bool v = in->kind == KI_LOOP;
    for (int s = 0; s < in->nsrc && !v; s++)
        v = varies(k, in->src[s], memo);
    memo[i] = v ? 2 : 1;
    return v;
}

/* A flat map whose random draws are all at index loop0 + base, with one
 * loop-invariant base (or none: *base = -1), can draw a Philox block per
 * four elements. */
static bool rng_by_block(const KernelPlan *k, int *base) {
    if (k->kind != KP_MAP || k->rank != 1 || k->par_axis > 0 || k->out_numel < 8 || k->nphases)
        return false;
    uint8_t *memo = calloc((size_t)k->nins, 1);
    if (!memo) return false;
    bool any = false, ok = true;
    *base = -2;
    for (int i = 0; ok && i < k->nins; i++) {
        const KInstr *in = &k->ins[i];
        if (in->kind != KI_RNG) continue;
        any = true;
        const KInstr *ix = &k->ins[in->src[1]];
        int b = -3;
        if (ix->kind == KI_LOOP && ix->axis == 0) {
            b = -1;
        } else if (ix->kind == KI_OP && ix->op == OP_ADD && ix->nsrc == 2) {
            for (int s = 0; s < 2; s++) {
                const KInstr *lp = &k->ins[ix->src[s]];
                if (lp->kind == KI_LOOP && lp->axis == 0 && !varies(k, ix->src[1 - s], memo))
                    b = ix->src[1 - s];
            }
        }
        ok = b != -3 && (*base == -2 || *base == b) && !varies(k, in->src[0], memo);
        *base = b;
    }
    free(memo);
    return any && ok;
}

/* Elements [start, end) of a flat map, one at a time (nothing when empty). */
static bool emit_elements(KE *ke, LLVMValueRef start, LLVMValueRef end) {
    LlvmCG *cg = ke->cg;
    LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(cg->ctx, ke->fn, "elems");
    LLVMBasicBlockRef skip = LLVMAppendBasicBlockInContext(cg->ctx, ke->fn, "elems.done");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntSLT, start, end, ""), run, skip);
    LLVMPositionBuilderAtEnd(B, run);
    Loop L;
    loop_open_range(ke, &L, 0, start, end);
    LLVMValueRef v = emit_ins(ke, ke->k->value), idx = v ? emit_ins(ke, ke->k->out_index) : NULL;
    if (!idx) return false;
    store_elem(ke, ke->k->out_buf, idx, v);
    if (!emit_checks(ke)) return false;
    loop_close(ke, &L);
    LLVMBuildBr(B, skip);
    LLVMPositionBuilderAtEnd(B, skip);
    return true;
}

/* A flat random map over its range [lo, hi): the elements before the first
 * whole Philox block and after the last one singly, the blocks in between
 * four elements per block (each draw computed once per block, the rest of
 * the value evaluated for each of the four elements). Random index
 * arithmetic wraps as u64; a range that wraps takes the single path. */
static bool emit_map_blocks(KE *ke, int base_ins) {
    LlvmCG *cg = ke->cg;
    const KernelPlan *k = ke->k;
    bool split = k->par_axis == 0;
    LLVMValueRef lo = split ? ke->lo : i64c(ke, 0), hi = split ? ke->hi : i64c(ke, k->dims[0]);
    LLVMValueRef base = base_ins >= 0 ? emit_ins(ke, base_ins) : i64c(ke, 0);
    if (!base) return false;
    LLVMValueRef s = LLVMBuildAdd(B, base, lo, ""), e = LLVMBuildAdd(B, base, hi, "");
    LLVMValueRef qs = LLVMBuildLShr(B, LLVMBuildAdd(B, s, i64c(ke, 3), ""), i64c(ke, 2), "");
    LLVMValueRef qe = LLVMBuildLShr(B, e, i64c(ke, 2), "");
    LLVMValueRef use =
        LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntULE, s, e, ""),
                     LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntULE, s, i64c(ke, -4), ""),
                                  LLVMBuildICmp(B, LLVMIntULT, qs, qe, ""), ""),
                     "");
    LLVMValueRef mid_lo = LLVMBuildSelect(
        B, use, LLVMBuildSub(B, LLVMBuildShl(B, qs, i64c(ke, 2), ""), base, ""), hi, "");
    LLVMValueRef mid_hi = LLVMBuildSelect(
        B, use, LLVMBuildSub(B, LLVMBuildShl(B, qe, i64c(ke, 2), ""), base, ""), hi, "");
    LLVMValueRef qlo = LLVMBuildSelect(B, use, qs, i64c(ke, 0), "");
    LLVMValueRef qhi = LLVMBuildSelect(B, use, qe, i64c(ke, 0), "");
    if (!emit_elements(ke, lo, mid_lo)) return false;

    LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(cg->ctx, ke->fn, "blocks");
    LLVMBasicBlockRef skip = LLVMAppendBasicBlockInContext(cg->ctx, ke->fn, "blocks.done");
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntULT, qlo, qhi, ""), run, skip);
    LLVMPositionBuilderAtEnd(B, run);
    Loop L;
    loop_open_range(ke, &L, -1, qlo, qhi);
    int nr = 0;
    for (int i = 0; i < k->nins; i++)
        nr += k->ins[i].kind == KI_RNG;
    LLVMValueRef(*lanes)[4] = calloc((size_t)nr, sizeof *lanes);
    if (!lanes) return llvm_fail(cg, "out of memory");
    bool ok = true;
    for (int i = 0, r = 0; ok && i < k->nins; i++) {
        const KInstr *in = &k->ins[i];
        if (in->kind != KI_RNG) continue;
        LLVMValueRef seed = emit_ins(ke, in->src[0]);
        ok = seed && llvm_rng_block(cg, in->op, in->dt, seed, L.iv, in->stream, lanes[r++]);
    }
    LLVMValueRef first = LLVMBuildSub(B, LLVMBuildShl(B, L.iv, i64c(ke, 2), ""), base, "");
    for (int w = 0; ok && w < 4; w++) {
        for (int i = 0; i < k->nins; i++) /* values of the previous element */
            if (ke->val[i] && ke->lvl[i] >= ke->depth) ke->val[i] = NULL;
        ke->loopvar[0] = w ? LLVMBuildAdd(B, first, i64c(ke, w), "") : first;
        for (int i = 0, r = 0; i < k->nins; i++)
            if (k->ins[i].kind == KI_RNG) {
                ke->val[i] = lanes[r++][w];
                ke->lvl[i] = ke->depth;
            }
        LLVMValueRef v = emit_ins(ke, k->value), idx = v ? emit_ins(ke, k->out_index) : NULL;
        ok = idx != NULL;
        if (ok) store_elem(ke, k->out_buf, idx, v);
        ok = ok && emit_checks(ke);
    }
    free(lanes);
    if (!ok) return false;
    loop_close(ke, &L);
    LLVMBuildBr(B, skip);
    LLVMPositionBuilderAtEnd(B, skip);
    return emit_elements(ke, mid_hi, hi);
}

static bool emit_map(KE *ke) {
    const KernelPlan *k = ke->k;
    if (empty_space(k)) return true;
    int base;
    if (!ke->cg->fast && !getenv("DFLOW_RNG_PER_ELEMENT") && rng_by_block(k, &base))
        return emit_map_blocks(ke, base);
    Loop loops[IR_MAX_RANK + 1];
    int n = open_axes(ke, loops, all_axes(k));
    if (k->out_numel > 0) {
        if (ke->stash >= 0) { /* the phase left this value here */
            LLVMValueRef at = emit_ins(ke, k->out_index);
            if (!at) return false;
            int m = k->phases[ke->stash].stash_main;
            ke->val[m] = load_elem(ke, k->out_buf, at);
            ke->lvl[m] = ke->depth;
        }
        LLVMValueRef v = emit_ins(ke, k->value), idx = v ? emit_ins(ke, k->out_index) : NULL;
        if (!idx) return false;
        store_elem(ke, k->out_buf, idx, v);
    }
    if (!emit_checks(ke)) return false;
    close_all(ke, loops, n);
    return true;
}

static LLVMValueRef red_init_of(KE *ke, OpKind op, DType dt) {
    bool fl = dt == DT_F32 || dt == DT_F64;
    switch (op) {
    case OP_REDUCE_MAX:
        if (fl) return llvm_const(ke->cg, dt, -__builtin_inf(), 0);
        return llvm_const(ke->cg, dt, 0, dt == DT_I32 ? INT32_MIN : dt == DT_I64 ? INT64_MIN : 0);
    case OP_REDUCE_MIN:
        if (fl) return llvm_const(ke->cg, dt, __builtin_inf(), 0);
        return llvm_const(ke->cg, dt, 0, dt == DT_I32 ? INT32_MAX : dt == DT_I64 ? INT64_MAX : 1);
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    case OP_SUM:
    case OP_ARGMAX:
    IR_CASES_MOVE:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        return llvm_const(ke->cg, dt, 0, 0);
    }
    return llvm_const(ke->cg, dt, 0, 0);
}

static LLVMValueRef red_init(KE *ke) {
    return red_init_of(ke, ke->k->red_op, ke->k->out_dt);
}

/* The accumulator's dtype: an f32 sum adds in f64 and rounds once at the
 * end, so its error stays near one rounding (bounded by about n 2^-53 of
 * sum |x|, against n 2^-24 for f32 accumulation: a sum of 10^7 elements
 * would be off by several percent). Everything else accumulates in its
 * own dtype (max and min are exact; integer sums are i64 in the IR). */
static DType acc_dt(OpKind op, DType dt) {
    return op == OP_SUM && dt == DT_F32 ? DT_F64 : dt;
}

/* acc (op) v; reassoc lets the vectoriser split a float sum into lanes. A
 * narrower v is widened to acc's type first (acc_dt). */
static LLVMValueRef red_combine_of(KE *ke, OpKind op, DType dt, LLVMValueRef acc, LLVMValueRef v,
                                   bool reassoc) {
    LlvmCG *cg = ke->cg;
    bool fl = dt == DT_F32 || dt == DT_F64;
    LLVMTypeRef t = LLVMTypeOf(acc);
    if (fl && LLVMTypeOf(v) != t) v = LLVMBuildFPExt(B, v, t, "");
    LLVMValueRef args[2] = {acc, v};
    switch (op) {
    case OP_SUM:
        if (fl) {
            LLVMValueRef r = LLVMBuildFAdd(B, acc, v, "");
            if (reassoc) LLVMSetFastMathFlags(r, LLVMFastMathAllowReassoc);
            return r;
        }
        return dt == DT_BOOL ? LLVMBuildOr(B, acc, v, "") : LLVMBuildAdd(B, acc, v, "");
    case OP_REDUCE_MAX:
        if (dt == DT_BOOL) return LLVMBuildOr(B, acc, v, "");
        return llvm_intrinsic(cg, fl ? "llvm.maximum" : "llvm.smax", &t, 1, args, 2);
    case OP_REDUCE_MIN:
        if (dt == DT_BOOL) return LLVMBuildAnd(B, acc, v, "");
        return llvm_intrinsic(cg, fl ? "llvm.minimum" : "llvm.smin", &t, 1, args, 2);
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    case OP_ARGMAX:
    IR_CASES_MOVE:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        llvm_fail(cg, "reduction %s", ir_op_name(op));
        return NULL;
    }
    llvm_fail(cg, "reduction %d", (int)op);
    return NULL;
}

static LLVMValueRef red_combine(KE *ke, LLVMValueRef acc, LLVMValueRef v, bool reassoc) {
    return red_combine_of(ke, ke->k->red_op, ke->k->out_dt, acc, v, reassoc);
}

static LLVMValueRef local(KE *ke, LLVMTypeRef t, const char *name) {
    /* allocas go first in the entry block, where mem2reg promotes them */
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(ke->cg->ctx);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(ke->fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first)
        LLVMPositionBuilderBefore(eb, first);
    else
        LLVMPositionBuilderAtEnd(eb, entry);
    LLVMValueRef a = LLVMBuildAlloca(eb, t, name);
    LLVMDisposeBuilder(eb);
    return a;
}

/* Row phase i: a loop nest over the phase's axes accumulating its source
 * into a local; its value is the local after the loops. */
/* One point of row phase i (its loops open): accumulate, keep, check. */
static bool phase_point(KE *ke, int i, LLVMValueRef acc, LLVMTypeRef vt) {
    const KernelPlan *k = ke->k;
    const KInstr *in = &k->ins[i];
    const KPhase *ph = &k->phases[in->axis];
    LLVMValueRef v = emit_ins(ke, in->src[0]);
    if (!v) return false;
    LLVMValueRef r = red_combine_of(ke, in->op, in->dt, LLVMBuildLoad2(B, vt, acc, ""), v, true);
    if (!r) return false;
    LLVMBuildStore(B, r, acc);
    if (in->axis == ke->stash) { /* kept for the map (kernel.h: KPhase) */
        LLVMValueRef at = emit_ins(ke, ph->stash_at);
        if (!at) return false;
        store_elem(ke, k->out_buf, at, v);
    }
    return emit_checks_of(ke, in->axis);
}

/* Prefetches the elements that the loads of ke->pf_loads will read at
 * position `at` of the phase's row in the next row (row axis ke->pf_axis
 * one further on): the values of the current scope are set aside, the
 * indices are built with the substituted loop variables, then the scope is
 * restored. Prefetching past the end of a buffer is harmless (no fault),
 * so the address is a plain GEP. */
static bool prefetch_next_row(KE *ke, const KPhase *ph, LLVMValueRef at) {
    const KernelPlan *k = ke->k;
    size_t n = (size_t)k->nins;
    LLVMValueRef *sv = malloc(sizeof(LLVMValueRef) * n);
    int *sl = malloc(sizeof(int) * n);
    if (!sv || !sl) {
        free(sv);
        free(sl);
        return llvm_fail(ke->cg, "out of memory");
    }
    memcpy(sv, ke->val, sizeof(LLVMValueRef) * n);
    memcpy(sl, ke->lvl, sizeof(int) * n);
    LLVMValueRef row = ke->loopvar[ke->pf_axis], pos = ke->loopvar[ph->first_axis];
    ke->loopvar[ke->pf_axis] = LLVMBuildAdd(B, row, i64c(ke, 1), "");
    uint64_t own = 1ull << (ph->first_axis - k->rank);
    bool ok = true;
    for (int j = 0; ok && j < ke->npf; j++) {
        int ld = ke->pf_loads[j];
        DType dt = k->ins[ld].dt;
        int64_t per_line = 64 / (int64_t)rt_dtype_size(dt);
        for (int64_t off = 0; ok && off < PF_CHUNK; off += per_line) {
            for (int q = 0; q < k->nins; q++)
                if ((ke->dmain[q] >> ke->pf_axis & 1) || (ke->dph[q] & own)) ke->val[q] = NULL;
            ke->loopvar[ph->first_axis] = LLVMBuildAdd(B, at, i64c(ke, off), "");
            LLVMValueRef idx = emit_ins(ke, k->ins[ld].src[0]);
            if (!idx) {
                ok = false;
                break;
            }
            LLVMTypeRef t = llvm_mem_type(ke->cg, dt);
            LLVMValueRef ptr = LLVMBuildGEP2(B, t, ke->bufp[k->ins[ld].buf], &idx, 1, "");
            LLVMTypeRef over = ke->cg->ptr;
            LLVMValueRef args[4] = {ptr, LLVMConstInt(ke->cg->i32, 0, 0),
                                    LLVMConstInt(ke->cg->i32, 2, 0), /* to L2: L1 holds this row */
                                    LLVMConstInt(ke->cg->i32, 1, 0)};
            llvm_intrinsic(ke->cg, "llvm.prefetch", &over, 1, args, 4);
        }
    }
    memcpy(ke->val, sv, sizeof(LLVMValueRef) * n);
    memcpy(ke->lvl, sl, sizeof(int) * n);
    ke->loopvar[ke->pf_axis] = row;
    ke->loopvar[ph->first_axis] = pos;
    free(sv);
    free(sl);
    return ok;
}

/* The accumulator acc (of type vt) read back in dtype dt (acc_dt). */
static LLVMValueRef acc_value(KE *ke, LLVMValueRef acc, LLVMTypeRef vt, DType dt) {
    LLVMValueRef v = LLVMBuildLoad2(B, vt, acc, "");
    LLVMTypeRef t = llvm_reg_type(ke->cg, dt);
    return t == vt ? v : LLVMBuildFPTrunc(B, v, t, "");
}

/* Emits one point of a reduction into the accumulator acc of type vt. */
typedef bool (*PointFn)(KE *ke, int i, LLVMValueRef acc, LLVMTypeRef vt);

/* Accumulates point(i) over axis ax in [0, n) into acc, SUM_CHUNK points
 * at a time. With a partial `part` (the summand's type pt, narrower than
 * acc's at: acc_dt), each chunk is summed into part, where it vectorises
 * at the summand's full width, and part is then added to acc: the error
 * grows with the chunk's length, not the row's (SUM_CHUNK * 2^-24 of
 * sum |x| at worst for f32, unvectorised at O0). With pf, each chunk first
 * prefetches the same chunk of the next row (prefetch_next_row). A fixed
 * order, whatever the thread count. */
#define SUM_CHUNK PF_CHUNK

static bool chunked_axis(KE *ke, int ax, int64_t n, PointFn point, int i, LLVMValueRef acc,
                         LLVMTypeRef at, LLVMValueRef part, LLVMTypeRef pt, const KPhase *pf) {
    int64_t whole = n / SUM_CHUNK * SUM_CHUNK;
    LLVMValueRef into = part ? part : acc;
    LLVMTypeRef it = part ? pt : at;
    if (whole > 0) {
        Loop chunk, inner;
        loop_open(ke, &chunk, -1, n / SUM_CHUNK);
        LLVMValueRef base = LLVMBuildMul(B, chunk.iv, i64c(ke, SUM_CHUNK), "");
        if (pf && !prefetch_next_row(ke, pf, base)) return false;
        if (part) LLVMBuildStore(B, LLVMConstNull(pt), part);
        loop_open(ke, &inner, -1, SUM_CHUNK);
        ke->loopvar[ax] = LLVMBuildAdd(B, base, inner.iv, "");
        axis_bit(ke, ax, true);
        if (!emit_ready(ke, ax) || !point(ke, i, into, it)) return false;
        loop_close(ke, &inner);
        axis_bit(ke, ax, false);
        if (part)
            LLVMBuildStore(B,
                           red_combine_of(ke, OP_SUM, DT_F64, LLVMBuildLoad2(B, at, acc, ""),
                                          LLVMBuildLoad2(B, pt, part, ""), false),
                           acc);
        loop_close(ke, &chunk);
    }
    if (whole < n) {
        Loop tail;
        if (part) LLVMBuildStore(B, LLVMConstNull(pt), part);
        loop_open_range(ke, &tail, ax, i64c(ke, whole), i64c(ke, n));
        if (!point(ke, i, into, it)) return false;
        loop_close(ke, &tail);
        if (part)
            LLVMBuildStore(B,
                           red_combine_of(ke, OP_SUM, DT_F64, LLVMBuildLoad2(B, at, acc, ""),
                                          LLVMBuildLoad2(B, pt, part, ""), false),
                           acc);
    }
    return true;
}

/* Row phase i: a loop nest over the phase's axes accumulating its source
 * into a local; its value is the local after the loops. A sum with a wider
 * accumulator (acc_dt) runs its last axis by chunks with a partial sum
 * (chunked_axis). The phase chosen to prefetch (ke->pf_phase: one axis, a
 * long row) runs its row in chunks of PF_CHUNK, each chunk first
 * prefetching the same chunk of the next row, so the next row streams in
 * from memory while this one computes (a prefetch inside a vectorised loop
 * would be repeated per lane; per chunk it is one per cache line). */
static LLVMValueRef emit_phase(KE *ke, int i) {
    const KernelPlan *k = ke->k;
    const KInstr *in = &k->ins[i];
    const KPhase *ph = &k->phases[in->axis];
    DType adt = acc_dt(in->op, in->dt);
    LLVMTypeRef vt = llvm_reg_type(ke->cg, adt), pt = llvm_reg_type(ke->cg, in->dt);
    LLVMValueRef acc = local(ke, vt, "row");
    LLVMValueRef part = adt != in->dt ? local(ke, pt, "part") : NULL;
    LLVMBuildStore(B, red_init_of(ke, in->op, adt), acc);
    bool pf = in->axis == ke->pf_phase;
    Loop loops[IR_MAX_RANK];
    if (!part && !pf) {
        for (int a = 0; a < ph->rank; a++)
            loop_open(ke, &loops[a], ph->first_axis + a, ph->dims[a]);
        if (!phase_point(ke, i, acc, vt)) return NULL;
        close_all(ke, loops, ph->rank);
        return acc_value(ke, acc, vt, in->dt);
    }
    int last = ph->rank - 1;
    for (int a = 0; a < last; a++)
        loop_open(ke, &loops[a], ph->first_axis + a, ph->dims[a]);
    if (!chunked_axis(ke, ph->first_axis + last, ph->dims[last], phase_point, i, acc, vt, part, pt,
                      pf ? ph : NULL))
        return NULL;
    close_all(ke, loops, last);
    return acc_value(ke, acc, vt, in->dt);
}

/* One point of a row-ordered reduction (not argmax): acc (op)= value. */
static bool row_point(KE *ke, int i, LLVMValueRef acc, LLVMTypeRef vt) {
    (void)i;
    LLVMValueRef v = emit_ins(ke, ke->k->value);
    if (!v) return false;
    LLVMValueRef r = red_combine(ke, LLVMBuildLoad2(B, vt, acc, ""), v, true);
    if (!r) return false;
    LLVMBuildStore(B, r, acc);
    return emit_checks(ke);
}

/* Row order: kept axes outside, reduced axes inside, accumulator in a local. */
static bool emit_reduce_rows(KE *ke) {
    const KernelPlan *k = ke->k;
    LlvmCG *cg = ke->cg;
    uint32_t kept = all_axes(k) & ~k->red_axes;
    for (int a = 0; a < k->rank; a++)
        if ((kept >> a & 1) && k->dims[a] == 0) return true; /* no output elements */
    bool argmax = k->red_op == OP_ARGMAX;
    DType vdt = argmax ? k->ins[k->value].dt : acc_dt(k->red_op, k->out_dt);
    LLVMTypeRef vt = llvm_reg_type(cg, vdt);
    LLVMValueRef acc = local(ke, vt, "acc"), best = argmax ? local(ke, cg->i64, "best") : NULL;
    Loop outer[IR_MAX_RANK + 1], inner[IR_MAX_RANK + 1];
    int no = open_axes(ke, outer, kept);
    LLVMBuildStore(B, argmax ? LLVMConstNull(vt) : red_init_of(ke, k->red_op, vdt), acc);
    if (argmax) LLVMBuildStore(B, i64c(ke, 0), best);
    bool empty = false;
    for (int a = 0; a < k->rank; a++)
        empty = empty || ((k->red_axes >> a & 1) && k->dims[a] == 0);
    if (!empty && !argmax && vdt != k->out_dt && k->rank > 0) { /* chunked_axis */
        int last = k->rank - 1;
        LLVMTypeRef pt = llvm_reg_type(cg, k->out_dt);
        LLVMValueRef part = local(ke, pt, "part");
        int ni = open_axes(ke, inner, k->red_axes & ~(1u << last));
        if (!chunked_axis(ke, last, k->dims[last], row_point, 0, acc, vt, part, pt, NULL))
            return false;
        close_all(ke, inner, ni);
    } else if (!empty) {
        int ni = open_axes(ke, inner, k->red_axes);
        LLVMValueRef v = emit_ins(ke, k->value);
        if (!v) return false;
        LLVMValueRef a = LLVMBuildLoad2(B, vt, acc, "");
        if (argmax) { /* the first maximum; the first NaN wins and stays */
            LLVMValueRef pos = ke->loopvar[__builtin_ctz(k->red_axes)];
            LLVMValueRef first = LLVMBuildICmp(B, LLVMIntEQ, pos, i64c(ke, 0), ""), take;
            if (vdt == DT_F32 || vdt == DT_F64) {
                LLVMValueRef gt = LLVMBuildFCmp(B, LLVMRealOGT, v, a, ""),
                             vnan = LLVMBuildFCmp(B, LLVMRealUNO, v, v, "");
                LLVMValueRef anum = LLVMBuildFCmp(B, LLVMRealORD, a, a, "");
                take = LLVMBuildAnd(B, anum, LLVMBuildOr(B, gt, vnan, ""), "");
            } else {
                LLVMValueRef x = v, y = a;
                if (vdt == DT_BOOL) {
                    x = LLVMBuildZExt(B, v, cg->i8, "");
                    y = LLVMBuildZExt(B, a, cg->i8, "");
                }
                take = LLVMBuildICmp(B, LLVMIntSGT, x, y, "");
            }
            take = LLVMBuildOr(B, first, take, "");
            LLVMBuildStore(B, LLVMBuildSelect(B, take, v, a, ""), acc);
            LLVMValueRef bi = LLVMBuildLoad2(B, cg->i64, best, "");
            LLVMBuildStore(B, LLVMBuildSelect(B, take, pos, bi, ""), best);
        } else {
            LLVMValueRef r = red_combine(ke, a, v, true);
            if (!r) return false;
            LLVMBuildStore(B, r, acc);
        }
        if (!emit_checks(ke)) return false;
        close_all(ke, inner, ni);
    }
    LLVMValueRef idx = emit_ins(ke, k->out_index);
    if (!idx) return false;
    if (k->out_numel > 0)
        store_elem(ke, k->out_buf, idx,
                   argmax ? LLVMBuildLoad2(B, cg->i64, best, "")
                          : acc_value(ke, acc, vt, k->out_dt));
    close_all(ke, outer, no);
    return true;
}

/* Source order, updating the output in place (innermost axis kept). A
 * serial kernel fills the output with the initial value first; a split one
 * (par_axis set, every axis non-empty) takes the initial value instead of
 * the stored one at the first point of the reduced axes. */
static bool emit_reduce_columns(KE *ke) {
    const KernelPlan *k = ke->k;
    LLVMValueRef init = red_init(ke);
    bool split = k->par_axis >= 0;
    if (!split) fill(ke, init);
    if (empty_space(k)) return true;
    Loop loops[IR_MAX_RANK + 1];
    int n = open_axes(ke, loops, all_axes(k));
    LLVMValueRef v = emit_ins(ke, k->value), idx = v ? emit_ins(ke, k->out_index) : NULL;
    if (!idx) return false;
    LLVMValueRef old = load_elem(ke, k->out_buf, idx);
    if (split) {
        LLVMValueRef first = LLVMConstInt(ke->cg->i1, 1, 0);
        for (int a = 0; a < k->rank; a++)
            if (k->red_axes >> a & 1)
                first = LLVMBuildAnd(
                    B, first, LLVMBuildICmp(B, LLVMIntEQ, ke->loopvar[a], i64c(ke, 0), ""), "");
        old = LLVMBuildSelect(B, first, init, old, "");
    }
    LLVMValueRef r = red_combine(ke, old, v, false);
    if (!r) return false;
    store_elem(ke, k->out_buf, idx, r);
    if (!emit_checks(ke)) return false;
    close_all(ke, loops, n);
    return true;
}

/* Columns of a sum whose accumulator is wider than its result (acc_dt):
 * the innermost (kept) axis runs in tiles of COL_TILE elements, each tile
 * summed over every reduced point into a stack array of the wider type and
 * stored once, rounded. Loop order: the other kept axes, the tile, the
 * reduced axes in order, the tile's elements (contiguous in the source
 * when the innermost axis is, so that loop vectorises). Each output element
 * still adds its summands in source order, whatever the tiling or the
 * task's range, so any thread count gives the same bits. */
#define COL_TILE 256

static bool emit_reduce_columns_wide(KE *ke) {
    const KernelPlan *k = ke->k;
    LlvmCG *cg = ke->cg;
    int in_ax = k->rank - 1;
    DType adt = acc_dt(k->red_op, k->out_dt);
    LLVMTypeRef at = llvm_reg_type(cg, adt), tile_t = LLVMArrayType(at, COL_TILE);
    uint32_t kept = all_axes(k) & ~k->red_axes & ~(1u << in_ax);
    for (int a = 0; a < k->rank; a++)
        if ((k->red_axes >> a & 1) == 0 && k->dims[a] == 0) return true; /* no outputs */
    bool empty = false;
    for (int a = 0; a < k->rank; a++)
        empty = empty || ((k->red_axes >> a & 1) && k->dims[a] == 0);
    LLVMValueRef tile = local(ke, tile_t, "tile");
    Loop outer[IR_MAX_RANK + 1], red[IR_MAX_RANK + 1], ti, el;
    int no = open_axes(ke, outer, kept);
    bool split = in_ax == k->par_axis;
    LLVMValueRef lo = split ? ke->lo : i64c(ke, 0), hi = split ? ke->hi : i64c(ke, k->dims[in_ax]);
    LLVMValueRef ntiles =
        LLVMBuildUDiv(B, LLVMBuildAdd(B, LLVMBuildSub(B, hi, lo, ""), i64c(ke, COL_TILE - 1), ""),
                      i64c(ke, COL_TILE), "");
    loop_open_range(ke, &ti, -1, i64c(ke, 0), ntiles);
    LLVMValueRef t0 = LLVMBuildAdd(B, lo, LLVMBuildMul(B, ti.iv, i64c(ke, COL_TILE), ""), "");
    LLVMValueRef left = LLVMBuildSub(B, hi, t0, "");
    LLVMValueRef w = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntULT, left, i64c(ke, COL_TILE), ""),
                                     left, i64c(ke, COL_TILE), "");
    LLVMValueRef zero = LLVMConstNull(at);
    /* the tile's slots, zeroed */
    loop_open_range(ke, &el, -1, i64c(ke, 0), w);
    LLVMValueRef gi[2] = {i64c(ke, 0), el.iv};
    LLVMBuildStore(B, zero, LLVMBuildInBoundsGEP2(B, tile_t, tile, gi, 2, ""));
    loop_close(ke, &el);
    if (!empty) {
        int nr = open_axes(ke, red, k->red_axes);
        loop_open_range(ke, &el, -1, i64c(ke, 0), w);
        ke->loopvar[in_ax] = LLVMBuildAdd(B, t0, el.iv, "");
        axis_bit(ke, in_ax, true);
        if (!emit_ready(ke, in_ax)) return false;
        LLVMValueRef v = emit_ins(ke, k->value);
        if (!v) return false;
        LLVMValueRef gj[2] = {i64c(ke, 0), el.iv};
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(B, tile_t, tile, gj, 2, "");
        LLVMValueRef r = red_combine(ke, LLVMBuildLoad2(B, at, slot, ""), v, false);
        if (!r) return false;
        LLVMBuildStore(B, r, slot);
        if (!emit_checks(ke)) return false;
        loop_close(ke, &el);
        axis_bit(ke, in_ax, false);
        close_all(ke, red, nr);
    }
    /* store the tile, rounded */
    loop_open_range(ke, &el, -1, i64c(ke, 0), w);
    ke->loopvar[in_ax] = LLVMBuildAdd(B, t0, el.iv, "");
    axis_bit(ke, in_ax, true);
    LLVMValueRef idx = emit_ins(ke, k->out_index);
    if (!idx) return false;
    LLVMValueRef gk[2] = {i64c(ke, 0), el.iv};
    LLVMValueRef slot = LLVMBuildInBoundsGEP2(B, tile_t, tile, gk, 2, "");
    store_elem(ke, k->out_buf, idx, acc_value(ke, slot, at, k->out_dt));
    loop_close(ke, &el);
    axis_bit(ke, in_ax, false);
    loop_close(ke, &ti);
    close_all(ke, outer, no);
    return true;
}

static bool emit_reduce(KE *ke) {
    const KernelPlan *k = ke->k;
    bool inner_reduced = k->rank == 0 || (k->red_axes >> (k->rank - 1) & 1);
    if (k->red_op == OP_ARGMAX || inner_reduced) return emit_reduce_rows(ke);
    if (acc_dt(k->red_op, k->out_dt) != k->out_dt) return emit_reduce_columns_wide(ke);
    return emit_reduce_columns(ke);
}

static bool emit_scatter(KE *ke) {
    const KernelPlan *k = ke->k;
    DType dt = k->out_dt;
    fill(ke, llvm_const(ke->cg, dt, 0, 0));
    if (empty_space(k)) return true;
    Loop loops[IR_MAX_RANK + 1];
    int n = open_axes(ke, loops, all_axes(k));
    if (!emit_checks(ke)) return false;
    if (k->out_numel > 0) {
        LLVMValueRef v = emit_ins(ke, k->value), idx = v ? emit_ins(ke, k->out_index) : NULL;
        if (!idx) return false;
        LLVMValueRef old = load_elem(ke, k->out_buf, idx), r;
        if (dt == DT_F32 || dt == DT_F64)
            r = LLVMBuildFAdd(B, old, v, "");
        else if (dt == DT_BOOL)
            r = LLVMBuildOr(B, old, v, "");
        else
            r = LLVMBuildAdd(B, old, v, "");
        store_elem(ke, k->out_buf, idx, r);
    }
    close_all(ke, loops, n);
    return true;
}

/* i32 rt_linalg_call(i32 fn, i32 f64, i64 batch, i64 m, i64 n, i64 k, ptr out, ptr a, ptr b)
 * (runtime/linalg.h): the same function the interpreter calls; a nonzero
 * status fails the kernel like an index check. */
static bool emit_call(KE *ke) {
    const KCall *c = &ke->k->call;
    LlvmCG *cg = ke->cg;
    LLVMTypeRef pt[9] = {cg->i32, cg->i32, cg->i64, cg->i64, cg->i64,
                         cg->i64, cg->ptr, cg->ptr, cg->ptr};
    LLVMTypeRef fty = LLVMFunctionType(cg->i32, pt, 9, 0);
    LLVMValueRef fn = llvm_declare(cg, "rt_linalg_call", fty);
    LLVMValueRef args[9] = {LLVMConstInt(cg->i32, (unsigned long long)c->fn, 0),
                            LLVMConstInt(cg->i32, ke->k->out_dt == DT_F64, 0),
                            i64c(ke, c->batch),
                            i64c(ke, c->m),
                            i64c(ke, c->n),
                            i64c(ke, c->k),
                            ke->bufp[ke->k->out_buf],
                            ke->bufp[c->a_buf],
                            c->b_buf >= 0 ? ke->bufp[c->b_buf] : LLVMConstNull(cg->ptr)};
    LLVMValueRef st = LLVMBuildCall2(B, fty, fn, args, 9, "");
    LLVMValueRef bad = LLVMBuildICmp(B, LLVMIntNE, st, LLVMConstInt(cg->i32, 0, 0), "");
    LLVMBuildStore(B, LLVMBuildOr(B, LLVMBuildLoad2(B, cg->i1, ke->err, ""), bad, ""), ke->err);
    return true;
}

/* void cblas_?gemm(order, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) */
static LLVMValueRef gemm_decl(LlvmCG *cg, bool f64, LLVMTypeRef *fty) {
    const char *name = f64 ? "cblas_dgemm" : "cblas_sgemm";
    LLVMTypeRef bi = sizeof(blasint) == 8 ? cg->i64 : cg->i32, ft = f64 ? cg->f64 : cg->f32;
    LLVMTypeRef params[14] = {cg->i32, cg->i32, cg->i32, bi, bi, bi,      ft,
                              cg->ptr, bi,      cg->ptr, bi, ft, cg->ptr, bi};
    *fty = LLVMFunctionType(cg->vd, params, 14, 0);
    return llvm_declare(cg, name, *fty);
}

/* With mm.accumulate: C's start value at the task's rows (or columns) of
 * the batch matrix whose loops are open. */
static bool fill_start(KE *ke) {
    const KernelPlan *k = ke->k;
    int r = k->rank;
    Loop rl, cl;
    if (k->par_axis == 0)
        loop_open_range(ke, &rl, r - 2, ke->lo, ke->hi);
    else
        loop_open(ke, &rl, r - 2, k->dims[r - 2]);
    if (k->par_axis == 1)
        loop_open_range(ke, &cl, r - 1, ke->lo, ke->hi);
    else
        loop_open(ke, &cl, r - 1, k->dims[r - 1]);
    LLVMValueRef v = emit_ins(ke, k->value), idx = v ? emit_ins(ke, k->out_index) : NULL;
    if (!idx) return false;
    store_elem(ke, k->out_buf, idx, v);
    if (!emit_checks(ke)) return false;
    loop_close(ke, &cl);
    loop_close(ke, &rl);
    return true;
}

static bool emit_matmul(KE *ke) {
    const KernelPlan *k = ke->k;
    const KMatmul *m = &k->mm;
    LlvmCG *cg = ke->cg;
    if (k->out_numel == 0) return true;
    if (m->K == 0 && !m->accumulate) { /* an empty sum: zeros (BLAS rejects zero leading
                                          dimensions) */
        fill(ke, llvm_const(cg, k->out_dt, 0, 0));
        return true;
    }
    bool f64 = k->out_dt == DT_F64;
    LLVMTypeRef fty, bi = sizeof(blasint) == 8 ? cg->i64 : cg->i32, ft = f64 ? cg->f64 : cg->f32;
    LLVMValueRef fn = gemm_decl(cg, f64, &fty);
    Loop loops[IR_MAX_RANK];
    LLVMValueRef aoff = i64c(ke, m->a_off), boff = i64c(ke, m->b_off), coff = i64c(ke, 0);
    int64_t cstride = m->M * m->N; /* C is contiguous: batch matrix b starts at b*M*N */
    for (int i = 0; i < m->batch_rank; i++) {
        loop_open(ke, &loops[i], i, m->batch_dims[i]);
        LLVMValueRef iv = loops[i].iv;
        aoff = LLVMBuildAdd(B, aoff, LLVMBuildMul(B, iv, i64c(ke, m->a_bstride[i]), ""), "");
        boff = LLVMBuildAdd(B, boff, LLVMBuildMul(B, iv, i64c(ke, m->b_bstride[i]), ""), "");
        coff = LLVMBuildAdd(B, LLVMBuildMul(B, coff, i64c(ke, m->batch_dims[i]), ""), iv, "");
    }
    coff = LLVMBuildMul(B, coff, i64c(ke, cstride), "");
    if (m->accumulate) { /* C = start value, then C += alpha op(A) op(B) */
        if (!fill_start(ke)) return false;
        if (m->K == 0) {
            close_all(ke, loops, m->batch_rank);
            return true;
        }
    }
    /* the task's rows lo..hi of C (and of op(A)), or its columns (and of op(B)) */
    LLVMValueRef Mv = LLVMConstInt(bi, (unsigned long long)m->M, 0),
                 Nv = LLVMConstInt(bi, (unsigned long long)m->N, 0);
    LLVMValueRef cnt = LLVMBuildSub(B, ke->hi, ke->lo, "");
    if (bi != cg->i64) cnt = LLVMBuildTrunc(B, cnt, bi, "");
    if (k->par_axis == 0) {
        int64_t astep = m->trans_a ? 1 : m->lda;
        aoff = LLVMBuildAdd(B, aoff, LLVMBuildMul(B, ke->lo, i64c(ke, astep), ""), "");
        coff = LLVMBuildAdd(B, coff, LLVMBuildMul(B, ke->lo, i64c(ke, m->N), ""), "");
        Mv = cnt;
    } else if (k->par_axis == 1) {
        int64_t bstep = m->trans_b ? m->ldb : 1;
        boff = LLVMBuildAdd(B, boff, LLVMBuildMul(B, ke->lo, i64c(ke, bstep), ""), "");
        coff = LLVMBuildAdd(B, coff, ke->lo, "");
        Nv = cnt;
    }
    LLVMTypeRef et = llvm_mem_type(cg, k->out_dt);
    LLVMValueRef pa = LLVMBuildInBoundsGEP2(B, et, ke->bufp[m->a_buf], &aoff, 1, "");
    LLVMValueRef pb = LLVMBuildInBoundsGEP2(B, et, ke->bufp[m->b_buf], &boff, 1, "");
    LLVMValueRef pc = LLVMBuildInBoundsGEP2(B, et, ke->bufp[k->out_buf], &coff, 1, "");
    LLVMValueRef args[14] = {
        LLVMConstInt(cg->i32, CblasRowMajor, 0),
        LLVMConstInt(cg->i32, m->trans_a ? CblasTrans : CblasNoTrans, 0),
        LLVMConstInt(cg->i32, m->trans_b ? CblasTrans : CblasNoTrans, 0),
        Mv,
        Nv,
        LLVMConstInt(bi, (unsigned long long)m->K, 0),
        LLVMConstReal(ft, m->accumulate ? m->alpha : 1.0),
        pa,
        LLVMConstInt(bi, (unsigned long long)m->lda, 0),
        pb,
        LLVMConstInt(bi, (unsigned long long)m->ldb, 0),
        LLVMConstReal(ft, m->accumulate ? 1.0 : 0.0),
        pc,
        LLVMConstInt(bi, (unsigned long long)m->N, 0),
    };
    LLVMBuildCall2(B, fty, fn, args, 14, "");
    close_all(ke, loops, m->batch_rank);
    return true;
}

/* An order op (KP_ORDER): one call of the runtime routine on the source
 * buffer, for the task's outer rows lo..hi (all of them with one task); a
 * failure (no scratch memory) fails the run as a failed check does. */
static bool emit_order(KE *ke) {
    const KernelPlan *k = ke->k;
    LlvmCG *cg = ke->cg;
    if (k->out_numel == 0) return true;
    const KInstr *ld = &k->ins[k->value];
    int32_t op = k->red_op == OP_CUMSUM    ? RT_ORDER_CUMSUM
                 : k->red_op == OP_ARGSORT ? RT_ORDER_ARGSORT
                                           : RT_ORDER_COMPONENTS;
    LLVMTypeRef pt[10] = {cg->i32, cg->i32, cg->i32, cg->ptr, cg->ptr,
                          cg->i64, cg->i64, cg->i64, cg->i64, cg->i64};
    LLVMTypeRef fty = LLVMFunctionType(cg->i32, pt, 10, 0);
    LLVMValueRef fn = llvm_declare(cg, "dflow_rt_order", fty);
    bool split = k->par_axis == 0;
    LLVMValueRef args[10] = {
        LLVMConstInt(cg->i32, (unsigned long long)op, 0),
        LLVMConstInt(cg->i32, (unsigned long long)ld->dt, 0),
        LLVMConstInt(cg->i32, k->red_axes, 0),
        ke->bufp[ld->buf],
        ke->bufp[k->out_buf],
        i64c(ke, k->dims[0]),
        i64c(ke, k->dims[1]),
        i64c(ke, k->dims[2]),
        split ? ke->lo : i64c(ke, 0),
        split ? ke->hi : i64c(ke, k->dims[0]),
    };
    LLVMValueRef rc = LLVMBuildCall2(B, fty, fn, args, 10, "");
    LLVMValueRef bad = LLVMBuildICmp(B, LLVMIntNE, rc, LLVMConstInt(cg->i32, 0, 0), "");
    LLVMValueRef err = LLVMBuildLoad2(B, cg->i1, ke->err, "");
    LLVMBuildStore(B, LLVMBuildOr(B, err, bad, ""), ke->err);
    return true;
}

/* ---- functions ---------------------------------------------------------------------------- */

static void add_attr(LlvmCG *cg, LLVMValueRef fn, unsigned idx, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

/* The buffers kernel k reads or writes, in ascending order, as kernel
 * arguments: an in-place input shares the output's argument, so it is left out. */
int llvm_kernel_params(const KernelProgram *p, const KernelPlan *k, int *out) {
    bool *used = calloc((size_t)p->nbufs, 1);
    if (!used) return -1;
    used[k->out_buf] = true;
    if (k->kind == KP_MATMUL) used[k->mm.a_buf] = used[k->mm.b_buf] = true;
    if (k->kind == KP_CALL) used[k->call.a_buf] = true;
    if (k->kind == KP_CALL && k->call.b_buf >= 0) used[k->call.b_buf] = true;
    for (int i = 0; i < k->nins; i++)
        if (k->ins[i].kind == KI_LOAD) used[k->ins[i].buf] = true;
    if (k->inplace_buf >= 0 && k->inplace_buf != k->out_buf) used[k->inplace_buf] = false;
    int n = 0;
    for (int b = 0; b < p->nbufs; b++)
        if (used[b]) out[n++] = b;
    free(used);
    return n;
}

typedef struct {
    const KernelPlan *k;
    const uint64_t *dph;
    int buf, at, stop;
    uint64_t nest; /* phase axes: a row phase depending on one is searched too */
    uint8_t *seen;
} ReadQuery;

/* Does the value of instruction i load q->buf at an index other than q->at
 * (any index when at < 0), not looking into q->stop nor into row phases
 * computed apart (those not depending on q->nest)? */
static bool reads_buf(ReadQuery *q, int i) {
    if (i == q->stop || q->seen[i]) return false;
    q->seen[i] = 1;
    const KInstr *in = &q->k->ins[i];
    if (in->kind == KI_LOAD && in->buf == q->buf && (q->at < 0 || in->src[0] != q->at)) return true;
    if (in->kind == KI_REDUCE && !(q->dph[i] & q->nest)) return false;
    for (int j = 0; j < in->nsrc; j++)
        if (reads_buf(q, in->src[j])) return true;
    return false;
}

static uint64_t own_axes(const KernelPlan *k, int p) {
    uint64_t m = 0;
    for (int a = 0; a < k->phases[p].rank; a++)
        m |= 1ull << (k->phases[p].first_axis + a - k->rank);
    return m;
}

/* The phase whose summand the map keeps in its output (KPhase.stash_main),
 * or -1: with an input updated in place, only when nothing reads that input
 * after the phase has overwritten part of a row: not the map's value (past
 * the kept summand), not the phase itself away from the element it
 * replaces, not a phase that may run after it. */
static int stash_phase(const KernelPlan *k, const uint32_t *dmain, const uint64_t *dph) {
    int p = -1;
    for (int i = 0; i < k->nphases; i++)
        if (k->phases[i].stash_main >= 0) p = i;
    if (p < 0 || k->inplace_buf < 0) return p;
    const KPhase *ph = &k->phases[p];
    int bins = ph->ins;
    uint8_t *seen = calloc((size_t)k->nins, 1);
    if (!seen) return -1;
    ReadQuery q = {k, dph, k->inplace_buf, -1, ph->stash_main, 0, seen};
    bool bad = reads_buf(&q, k->value);
    memset(seen, 0, (size_t)k->nins);
    q.at = ph->stash_at;
    q.stop = -1;
    q.nest = own_axes(k, p);
    bad = bad || reads_buf(&q, k->ins[bins].src[0]);
    for (int o = 0; !bad && o < k->nphases; o++) {
        int oi = k->phases[o].ins;
        if (o == p || (oi < bins && !dph[oi] && !(dmain[oi] & ~dmain[bins]))) continue;
        memset(seen, 0, (size_t)k->nins);
        q.at = -1;
        q.nest = own_axes(k, o);
        bad = reads_buf(&q, k->ins[oi].src[0]);
    }
    free(seen);
    return bad ? -1 : p;
}

/* Is instruction i pure index arithmetic (loops, constants, integer ops)?
 * Only such an index may be moved to the next row: it loads nothing. */
static bool pure_index(const KernelPlan *k, int i, int depth) {
    const KInstr *in = &k->ins[i];
    if (in->kind == KI_LOOP || in->kind == KI_CONST) return true;
    if (in->kind != KI_OP || depth > 64) return false;
    for (int j = 0; j < in->nsrc; j++)
        if (!pure_index(k, in->src[j], depth + 1)) return false;
    return true;
}

/* Instructions in the value of i, not looking into other row phases. */
static int body_size(const KernelPlan *k, int i, uint8_t *seen) {
    if (seen[i]) return 0;
    seen[i] = 1;
    const KInstr *in = &k->ins[i];
    if (in->kind == KI_REDUCE) return 1;
    int n = 1;
    for (int j = 0; j < in->nsrc; j++)
        n += body_size(k, in->src[j], seen);
    return n;
}

/* Chooses the row phase that prefetches the next row (kernel.h): among the
 * outermost phases over one long axis, the one with the most work per
 * point, so the memory traffic overlaps the most arithmetic; it prefetches
 * the loads of its own row that move with the row axis (the innermost main
 * axis all outermost phases depend on). DFLOW_ROW_PREFETCH=0 turns it off
 * (for comparisons). */
static void pick_prefetch(KE *ke) {
    const KernelPlan *k = ke->k;
    ke->pf_phase = -1;
    const char *env = getenv("DFLOW_ROW_PREFETCH");
    if (!k->nphases || (env && !strcmp(env, "0"))) return;
    double points = 1;
    uint32_t rows = k->rank ? (uint32_t)((1ull << k->rank) - 1) : 0;
    for (int a = 0; a < k->rank; a++)
        points *= (double)k->dims[a];
    for (int p = 0; p < k->nphases; p++)
        if (!ke->dph[k->phases[p].ins]) rows &= ke->dmain[k->phases[p].ins];
    if (!rows || points < PF_MIN_POINTS) return;
    int axis = 31 - __builtin_clz(rows), best = -1, best_size = 0;
    uint8_t *seen = calloc((size_t)k->nins, 1);
    ke->pf_loads = malloc(sizeof(int) * (size_t)k->nins);
    if (!seen || !ke->pf_loads) {
        free(seen);
        return;
    }
    for (int p = 0; p < k->nphases; p++) {
        const KPhase *ph = &k->phases[p];
        if (ke->dph[ph->ins] || ph->rank != 1 || ph->dims[0] < PF_MIN_ROW) continue;
        memset(seen, 0, (size_t)k->nins);
        int size = body_size(k, k->ins[ph->ins].src[0], seen);
        if (size > best_size) {
            best = p;
            best_size = size;
        }
    }
    if (best >= 0) {
        const KPhase *ph = &k->phases[best];
        uint64_t own = 1ull << (ph->first_axis - k->rank);
        memset(seen, 0, (size_t)k->nins);
        body_size(k, k->ins[ph->ins].src[0], seen);
        for (int q = 0; q < k->nins; q++) {
            const KInstr *in = &k->ins[q];
            if (seen[q] && in->kind == KI_LOAD && (ke->dph[q] & own) &&
                (ke->dmain[q] >> axis & 1) && pure_index(k, in->src[0], 0))
                ke->pf_loads[ke->npf++] = q;
        }
        if (ke->npf) {
            ke->pf_phase = best;
            ke->pf_axis = axis;
        }
    }
    free(seen);
}

/* f32 sin or cos anywhere in the kernel: emitted in a fast and an exact variant. */
bool llvm_kernel_has_trig(const KernelPlan *k) {
    for (int i = 0; i < k->nins; i++) {
        const KInstr *in = &k->ins[i];
        if (in->kind == KI_OP && (in->op == OP_SIN || in->op == OP_COS) && in->dt == DT_F32)
            return true;
    }
    return false;
}

/* `i32 name(ptr p..., i64 lo, i64 hi)`. Returns i32: bit 0 = a check
 * failed, bit 1 = (fast variant) an argument needs the exact variant. */
static LLVMValueRef emit_kernel(LlvmCG *cg, const KernelProgram *p, const KernelPlan *k,
                                const char *name, int *params, int nparams, bool fast) {
    LLVMTypeRef *pt = malloc(sizeof(LLVMTypeRef) * (size_t)(nparams + 2));
    KE ke = {.cg = cg, .p = p, .k = k};
    ke.bufp = calloc((size_t)p->nbufs, sizeof(LLVMValueRef));
    size_t ni = (size_t)(k->nins ? k->nins : 1);
    ke.val = calloc(ni, sizeof(LLVMValueRef));
    ke.lvl = calloc(ni, sizeof(int));
    ke.dmain = calloc(ni, sizeof(uint32_t));
    ke.dph = calloc(ni, sizeof(uint64_t));
    /* main and phase axes; a matmul's batch loops use axes below IR_MAX_RANK */
    ke.loopvar =
        calloc((size_t)(k->naxes > IR_MAX_RANK ? k->naxes : IR_MAX_RANK) + 1, sizeof(LLVMValueRef));
    LLVMValueRef fn = NULL;
    if (!pt || !ke.bufp || !ke.val || !ke.lvl || !ke.dmain || !ke.dph || !ke.loopvar) {
        llvm_fail(cg, "out of memory");
        goto done;
    }
    for (int i = 0; i < nparams; i++)
        pt[i] = cg->ptr;
    pt[nparams] = pt[nparams + 1] = cg->i64;
    fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->i32, pt, (unsigned)nparams + 2, 0));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_attr(cg, fn, LLVMAttributeFunctionIndex, "nounwind");
    for (int i = 0; i < nparams; i++) {
        ke.bufp[params[i]] = LLVMGetParam(fn, (unsigned)i);
        add_attr(cg, fn, (unsigned)i + 1, "noalias");
        add_attr(cg, fn, (unsigned)i + 1, "nocapture");
    }
    if (k->inplace_buf >= 0) ke.bufp[k->inplace_buf] = ke.bufp[k->out_buf];
    ke.lo = LLVMGetParam(fn, (unsigned)nparams);
    ke.hi = LLVMGetParam(fn, (unsigned)nparams + 1);
    ke.fn = fn;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry"));
    ke.err = LLVMBuildAlloca(cg->b, cg->i1, "err");
    LLVMBuildStore(cg->b, LLVMConstInt(cg->i1, 0, 0), ke.err);
    cg->trig_flag = NULL;
    if (fast) {
        cg->trig_flag = LLVMBuildAlloca(cg->b, cg->i1, "trig");
        LLVMBuildStore(cg->b, LLVMConstInt(cg->i1, 0, 0), cg->trig_flag);
    }
    cg_kernel_deps(k, ke.dmain, ke.dph);
    ke.stash = k->kind == KP_MAP ? stash_phase(k, ke.dmain, ke.dph) : -1;
    pick_prefetch(&ke);
    bool ok = emit_ready(&ke, -1); /* phases that depend on no loop */
    switch (ok ? k->kind : KP_MATMUL) {
    case KP_MAP:
        ok = emit_map(&ke);
        break;
    case KP_REDUCE:
        ok = emit_reduce(&ke);
        break;
    case KP_MATMUL:
        ok = ok && emit_matmul(&ke);
        break;
    case KP_SCATTER:
        ok = emit_scatter(&ke);
        break;
    case KP_ORDER:
        ok = emit_order(&ke);
        break;
    case KP_CALL:
        ok = ok && emit_call(&ke);
        break;
    }
    ok = ok && !cg->error[0]; /* emit_ready inside loop_open reports only there */
    if (!ok) {
        llvm_fail(cg, "kernel k%d", k->id);
        fn = NULL;
        goto done;
    }
    LLVMValueRef st = LLVMBuildZExt(cg->b, LLVMBuildLoad2(cg->b, cg->i1, ke.err, ""), cg->i32, "");
    if (fast) {
        LLVMValueRef t =
            LLVMBuildZExt(cg->b, LLVMBuildLoad2(cg->b, cg->i1, cg->trig_flag, ""), cg->i32, "");
        st = LLVMBuildOr(cg->b, st, LLVMBuildShl(cg->b, t, LLVMConstInt(cg->i32, 1, 0), ""), "");
    }
    LLVMBuildRet(cg->b, st);
done:
    cg->trig_flag = NULL;
    free(pt);
    free(ke.bufp);
    free(ke.val);
    free(ke.lvl);
    free(ke.dmain);
    free(ke.dph);
    free(ke.loopvar);
    free(ke.pf_loads);
    return fn;
}

/* `i32 name(ptr bufs, i64 lo, i64 hi)`: loads the kernel's pointers and calls it. */
static LLVMValueRef emit_task(LlvmCG *cg, LLVMValueRef kf, const char *name, const int *params,
                              int np) {
    LLVMTypeRef pt[3] = {cg->ptr, cg->i64, cg->i64};
    LLVMValueRef fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->i32, pt, 3, 0));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_attr(cg, fn, LLVMAttributeFunctionIndex, "nounwind");
    LLVMValueRef *args = malloc(sizeof(LLVMValueRef) * (size_t)(np + 2));
    if (!args) {
        llvm_fail(cg, "out of memory");
        return NULL;
    }
    LLVMBuilderRef b = LLVMCreateBuilderInContext(cg->ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry"));
    LLVMValueRef bufs = LLVMGetParam(fn, 0);
    for (int j = 0; j < np; j++) {
        LLVMValueRef at = LLVMConstInt(cg->i64, (unsigned long long)params[j], 0);
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(b, cg->ptr, bufs, &at, 1, "");
        args[j] = LLVMBuildLoad2(b, cg->ptr, slot, "");
    }
    args[np] = LLVMGetParam(fn, 1);
    args[np + 1] = LLVMGetParam(fn, 2);
    LLVMBuildRet(b, LLVMBuildCall2(b, LLVMGlobalGetValueType(kf), kf, args, (unsigned)np + 2, ""));
    LLVMDisposeBuilder(b);
    free(args);
    return fn;
}

/* The kernel's task functions are external (the runner looks them up, the
 * glue of each graph calls them); the rest stays internal. */
bool llvm_emit_kernel(LlvmCG *cg, const KernelProgram *p, const KernelPlan *k, const char *name) {
    int *params = malloc(sizeof(int) * (size_t)(p->nbufs ? p->nbufs : 1));
    int np = params ? llvm_kernel_params(p, k, params) : -1;
    bool trig = llvm_kernel_has_trig(k);
    char xname[112];
    snprintf(xname, sizeof xname, "%s_x", name);
    LLVMValueRef kf = np < 0 ? NULL : emit_kernel(cg, p, k, name, params, np, trig);
    LLVMValueRef xf = kf && trig ? emit_kernel(cg, p, k, xname, params, np, false) : NULL;
    free(params);
    if (np < 0) return llvm_fail(cg, "out of memory");
    if (!kf || (trig && !xf)) return false;
    LLVMSetLinkage(kf, LLVMExternalLinkage);
    if (xf) LLVMSetLinkage(xf, LLVMExternalLinkage);
    return true;
}

bool llvm_emit_glue(LlvmCG *cg, const KernelProgram *p, const char *const *syms, const char *name) {
    int nk = p->nkernels;
    int *params = malloc(sizeof(int) * (size_t)(p->nbufs ? p->nbufs : 1));
    LLVMTypeRef *pt = malloc(sizeof(LLVMTypeRef) * (size_t)(p->nbufs + 2));
    LLVMValueRef *tab = malloc(sizeof(LLVMValueRef) * (size_t)(2 * nk + 1));
    bool ok = params && tab && pt;
    if (!ok) llvm_fail(cg, "out of memory");
    for (int i = 0; ok && i < nk; i++) {
        int np = llvm_kernel_params(p, &p->kernels[i], params);
        if (np < 0) {
            ok = llvm_fail(cg, "out of memory");
            break;
        }
        for (int j = 0; j < np; j++)
            pt[j] = cg->ptr;
        pt[np] = pt[np + 1] = cg->i64;
        LLVMTypeRef fty = LLVMFunctionType(cg->i32, pt, (unsigned)np + 2, 0);
        for (int v = 0; v < 2; v++) {
            const char *sym = syms[2 * i + v];
            tab[2 * i + v] = LLVMConstNull(cg->ptr);
            if (!sym) continue;
            char tname[64];
            snprintf(tname, sizeof tname, "%s_t%d%s", name, i, v ? "x" : "");
            LLVMValueRef kf = llvm_declare(cg, sym, fty);
            tab[2 * i + v] = emit_task(cg, kf, tname, params, np);
            if (!tab[2 * i + v]) ok = false;
        }
    }
    if (ok) {
        char gname[96];
        snprintf(gname, sizeof gname, "%s_tab", name);
        LLVMTypeRef at = LLVMArrayType2(cg->ptr, (uint64_t)(2 * nk));
        LLVMValueRef g = LLVMAddGlobal(cg->mod, at, gname);
        LLVMSetInitializer(g, LLVMConstArray2(cg->ptr, tab, (uint64_t)(2 * nk)));
        LLVMSetGlobalConstant(g, 1);
    }
    free(params);
    free(pt);
    free(tab);
    return ok;
}
