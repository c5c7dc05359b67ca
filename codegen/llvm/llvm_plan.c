/* Planning a graph for the LLVM backend (llvm_plan.h). */
#include "llvm_plan.h"

#include <string.h>

#include "../../ir/module_image.h"
#include "llvm_internal.h"

#define ARENA_ALIGN 64

/* Kernels with f32 sin/cos may be rerun exactly after writing their output
 * (llvm_emit.c), so they must not update an input in place. */
static bool trig_veto(void *ctx, const FusionGroup *gr) {
    (void)ctx;
    for (int i = 0; i < gr->nnodes; i++) {
        const Node *n = gr->nodes[i];
        if ((n->op == OP_SIN || n->op == OP_COS) && n->dtype == DT_F32) return true;
    }
    return false;
}

/* Copies the memory plan's in-place choices into the kernel plans. */
static void apply_plan(KernelProgram *p, const MemPlan *mp) {
    for (int i = 0; i < p->nkernels; i++) {
        const MemBuf *v = &mp->bufs[mp->group_buf[i]];
        p->kernels[i].inplace_buf =
            v->inplace_of >= 0 ? p->buf_of[mp->bufs[v->inplace_of].node->id] : -1;
    }
}

static void *alloc_in(Arena *a, size_t n, size_t size) {
    void *p = arena_alloc(a, (n ? n : 1) * size);
    if (p) memset(p, 0, (n ? n : 1) * size);
    return p;
}

/* The run-time form: where each buffer's storage comes from, per kernel its range. */
static bool flatten(const Graph *g, const KernelProgram *p, const MemPlan *mp, Arena *a,
                    RtKProg *kp) {
    memset(kp, 0, sizeof *kp);
    kp->ninputs = g->ninputs;
    kp->noutputs = g->noutputs;
    kp->nbufs = p->nbufs;
    kp->nkernels = p->nkernels;
    kp->arena_bytes = mp->arena_bytes;
    kp->bufs = alloc_in(a, (size_t)p->nbufs, sizeof *kp->bufs);
    kp->kernels = alloc_in(a, (size_t)p->nkernels, sizeof *kp->kernels);
    kp->out_bufs = alloc_in(a, (size_t)g->noutputs, sizeof *kp->out_bufs);
    kp->out_dtype = alloc_in(a, (size_t)g->noutputs, sizeof *kp->out_dtype);
    kp->out_shape = alloc_in(a, (size_t)g->noutputs, sizeof *kp->out_shape);
    void *scratch = alloc_in(a, rt_kprog_scratch_bytes(kp), 1);
    if (!kp->bufs || !kp->kernels || !kp->out_bufs || !kp->out_dtype || !kp->out_shape || !scratch)
        return false;
    rt_kprog_scratch(kp, scratch);
    for (int b = 0; b < p->nbufs; b++) {
        const KBuffer *kb = &p->bufs[b];
        RtKBuf *rb = &kp->bufs[b];
        rb->input = -1;
        if (kb->kind == KB_INPUT) {
            rb->kind = RK_INPUT;
            rb->input = kb->input;
            continue;
        }
        const MemBuf *v = &mp->bufs[mp->buf_of[kb->node->id]];
        if (kb->kind == KB_OUTPUT) {
            rb->kind = RK_OUTPUT;
            if (v->place == MB_DONATED) {
                rb->input = v->input;
                rb->inplace = v->inplace_of >= 0;
            }
        } else {
            rb->kind = mp->arena_bytes > 0 ? RK_TEMP : RK_EMPTY;
            rb->offset = v->offset;
        }
    }
    for (int i = 0; i < p->nkernels; i++) {
        const KernelPlan *k = &p->kernels[i];
        kp->kernels[i].par_n = k->par_n;
        kp->kernels[i].work = k->work;
        kp->kernels[i].matmul = k->kind == KP_MATMUL;
    }
    for (int j = 0; j < g->noutputs; j++) {
        kp->out_bufs[j] = p->out_bufs[j];
        kp->out_dtype[j] = g->outputs[j]->dtype;
        kp->out_shape[j] = g->outputs[j]->shape;
    }
    return true;
}

/* The cost model (constants measured once on the 2-core development
 * machine, bench/README.md): O3 code runs a unit of KernelPlan.work (about
 * one element operation) about SAVE_NS faster than O0 code with fast
 * instruction selection (an elementwise chain over 1M floats: 33 ns per
 * element against 2.7), and costs FULL_BASE_S plus FULL_UNIT_S per compile
 * unit more to compile (a small kernel: 1 ms against 20; a normal draw, a
 * Philox block and Box-Muller inline: 30 ms against several hundred). A
 * BLAS call runs the same code at either level: only a start-value fill is
 * emitted for it. */
#define SAVE_NS 2.0
#define FULL_BASE_S 15e-3
#define FULL_UNIT_S 1e-3

/* Compile units of a plan: what its instructions expand to in LLVM IR. */
static double compile_units(const KernelPlan *k) {
    double u = 0;
    for (int i = 0; i < k->nins; i++) {
        const KInstr *in = &k->ins[i];
        if (in->kind == KI_RNG)
            u += 100;
        else if (in->kind == KI_FRESH_SEED)
            u += 20;
        else if (in->kind != KI_OP)
            u += 1;
        else if (in->op == OP_EXP || in->op == OP_LOG || in->op == OP_SIN || in->op == OP_COS ||
                 in->op == OP_POW)
            u += 10;
        else
            u += 1;
    }
    return u;
}

int llvm_kernel_opt(const Graph *g, const KernelPlan *k) {
    double runs = g->once ? 1.0 : LLVM_LOOP_RUNS;
    double work = k->kind == KP_MATMUL ? (k->mm.accumulate ? (double)k->out_numel : 0) : k->work;
    double saved_s = runs * work * SAVE_NS * 1e-9;
    double cost_s = FULL_BASE_S + FULL_UNIT_S * compile_units(k);
    return saved_s > cost_s ? LLVM_OPT_FULL : LLVM_OPT_FAST;
}

/* O0 compile cost per kernel (fast instruction selection; a normal draw
 * emitted per element: about 5 ms) and the interpreter's per element and
 * per node costs (it computes in double, allocates every value; Philox and
 * Box-Muller in C), measured like the constants above. */
#define FAST_BASE_S 0.5e-3
#define FAST_UNIT_S 0.05e-3
#define INTERP_NODE_S 1e-6
#define INTERP_ELEM_NS 3.0

double llvm_compile_estimate_s(const KernelProgram *p, const uint8_t *opts) {
    double s = 0;
    for (int i = 0; i < p->nkernels; i++) {
        double u = compile_units(&p->kernels[i]);
        s += FAST_BASE_S + FAST_UNIT_S * u;
        if (opts[i] == LLVM_OPT_FULL) s += FULL_BASE_S + FULL_UNIT_S * u;
    }
    return s;
}

double llvm_interp_estimate_s(const Graph *g) {
    double s = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_INPUT || n->nsrc == 0 || (ir_ops[n->op].flags & OPF_MOVE)) continue;
        double w = 1; /* a matmul is a BLAS call on both paths: only its output counts */
        if (n->op == OP_RNG_NORMAL)
            w = 10;
        else if (n->op == OP_RNG_UNIFORM)
            w = 4;
        else if (n->op == OP_EXP || n->op == OP_LOG || n->op == OP_SIN || n->op == OP_COS ||
                 n->op == OP_POW)
            w = 4;
        double elems = (double)rt_shape_numel(&n->shape);
        if (ir_ops[n->op].flags & OPF_RED) elems = (double)rt_shape_numel(&n->src[0]->shape);
        s += INTERP_NODE_S + w * elems * INTERP_ELEM_NS * 1e-9;
    }
    return s;
}

bool llvm_plan_graph(const Graph *g, const bool *donated, Arena *a, LlvmPlan *out, char *why,
                     size_t whyn) {
    memset(out, 0, sizeof *out);
    snprintf(why, whyn, "out of memory");
    out->fusion = pass_fuse_plan(g, a);
    MemPlanOptions mo = pass_memplan_defaults();
    mo.donated = donated;
    mo.veto = trig_veto;
    mo.align = ARENA_ALIGN;
    out->mem = out->fusion ? pass_memplan(out->fusion, &mo, a) : NULL;
    out->prog = out->mem ? cg_schedule(g, out->fusion, a, why, whyn) : NULL;
    if (!out->prog) return false;
    apply_plan(out->prog, out->mem);
    out->opts = alloc_in(a, (size_t)out->prog->nkernels, 1);
    for (int i = 0; out->opts && i < out->prog->nkernels; i++)
        out->opts[i] = (uint8_t)llvm_kernel_opt(g, &out->prog->kernels[i]);
    if (!out->opts || !flatten(g, out->prog, out->mem, a, &out->kp)) {
        snprintf(why, whyn, "out of memory");
        return false;
    }
    return true;
}

void llvm_plan_write_image(const LlvmPlan *p, RtBuf *b) {
    rt_kprog_write(&p->kp, b);
    for (int i = 0; i < p->prog->nkernels; i++) {
        const KernelPlan *k = &p->prog->kernels[i];
        const Node *n = k->check_node ? k->check_node : k->group->root;
        ir_image_put_loc(b, n->loc);
        rt_buf_str(b, ir_op_name(n->op));
        /* what --check-numerics names when kernel i's output is not finite:
           its root op (an executable has no interpreter to replay on) */
        const Node *r = k->group->root;
        Shape s =
            rt_shape_numel(&r->shape) == k->out_numel ? r->shape : rt_shape_make(1, &k->out_numel);
        ir_image_put_loc(b, r->loc);
        rt_buf_str(b, ir_op_name(r->op));
        rt_buf_u8(b, (uint8_t)k->out_dt);
        rt_buf_u32(b, (uint32_t)k->out_buf);
        rt_buf_shape(b, &s);
    }
}
