/* The LLVM CPU backend's GraphRunner: compile on first run, cache, call.
 *
 * Compiling a graph: fusion plan -> memory plan -> kernel plans (with the
 * plan's in-place choices) -> one LLVM module with a task per kernel -> O3
 * -> LLJIT. The plans live in a per-graph arena kept with the cache entry,
 * together with the buffer pointer table and per-run scratch arrays, so a
 * run allocates nothing but output tensors the executor did not offer.
 *
 * Running: check the inputs as the interpreter does; point every buffer at
 * its storage (inputs in place; intermediates at their offsets in the
 * shared arena; outputs in the executor's offered tensors, in a donated
 * input the plan chose, or in fresh tensors); call the kernels in order,
 * each over the thread pool when its work passes PAR_MIN_WORK; then hand
 * the outputs over (a value returned twice, or an input returned, is
 * copied unless the input was donated). The memory plan is made with the
 * donations of the first compiled run; when a later run does not donate an
 * input the plan writes into, the output goes to an offered or fresh tensor
 * instead (and when the plan updates that input in place, the input is
 * first copied there and the in-place kernel updates the copy). When any step of
 * compilation cannot lower the graph, the entry records why and the graph
 * runs on the interpreter from then on. With DFLOW_PROFILE set in the
 * environment, every kernel is timed and the times per run are printed
 * (log stream) when the runner is freed. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../ir/interp.h"
#include "../../passes/fuse.h"
#include "../../passes/memplan.h"
#include "../../runtime/threadpool.h"
#include "llvm_backend.h"
#include "llvm_internal.h"

/* A kernel is split across threads when its estimated work (schedule.c's
 * units, about one per scalar operation) is at least PAR_MIN_WORK, in
 * chunks of at least PAR_CHUNK_WORK: waking a spinning worker costs about
 * a microsecond, a few thousand operations. */
#define PAR_MIN_WORK 32768.0
#define PAR_CHUNK_WORK 16384.0
#define ARENA_ALIGN 64
/* A graph that computes at least this many elements (summed over its
 * non-leaf nodes) is compiled on its first run whatever interp_runs says:
 * the interpreter spends a few nanoseconds per element and op, so such a
 * run costs more than compiling (about 10 ms for a small graph). */
#define INTERP_MAX_ELEMS (1 << 22)

typedef struct {
    const Graph *g;
    Node **nodes; /* the graph's node array when compiled: a rebuilt graph differs */
    uint32_t nnodes;
    Arena *arena;
    KernelProgram *prog; /* NULL: interpreter */
    const MemPlan *plan;
    LlvmTaskFn *tab;  /* per kernel: fast task, exact task or NULL */
    int64_t *grain;   /* per kernel: chunk grain for the pool; 0 = one task */
    void **bufs;      /* per buffer: its storage in the current run */
    RtTensor **store; /* per buffer: the tensor holding an output in the current run */
    int *first_out;   /* per buffer: the first output index it serves, or -1 */
    bool *claimed;    /* per input: donated input returned or written this run */
    RtTensor **fresh; /* per output: the tensor this run allocated for it, or NULL */
    double *kernel_s; /* DFLOW_PROFILE: seconds per kernel, all runs */
    LlvmGraphInfo info;
} Entry;

typedef struct {
    LlvmOptions opt;
    LlvmJit jit;
    Entry *entries;
    int n, cap;
    int serial;
    double total_s;
    RtPool *pool;
    void *arena; /* intermediates of whichever graph runs: graphs run one at a time */
    int64_t arena_cap;
    int64_t allocs;
    int blas_threads; /* what OpenBLAS was last told (0 = not yet) */
    bool profile;     /* DFLOW_PROFILE set: time every kernel, print at the end */
} LlvmRunner;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FILE *log_of(const LlvmRunner *r) {
    return r->opt.log ? r->opt.log : stderr;
}

static void set_blas_threads(LlvmRunner *r, int n) {
    if (r->blas_threads == n) return;
    openblas_set_num_threads(n);
    r->blas_threads = n;
}

/* ---- compiling ------------------------------------------------------------------------- */

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

static bool alloc_tables(Entry *e, const Graph *g) {
    const KernelProgram *p = e->prog;
    size_t nb = (size_t)(p->nbufs ? p->nbufs : 1), nk = (size_t)(p->nkernels ? p->nkernels : 1);
    e->grain = arena_alloc(e->arena, sizeof(int64_t) * nk);
    e->bufs = arena_alloc(e->arena, sizeof(void *) * nb);
    e->store = arena_alloc(e->arena, sizeof(RtTensor *) * nb);
    e->first_out = arena_alloc(e->arena, sizeof(int) * nb);
    e->claimed = arena_alloc(e->arena, (size_t)(g->ninputs ? g->ninputs : 1));
    e->fresh = arena_alloc(e->arena, sizeof(RtTensor *) * (size_t)(g->noutputs ? g->noutputs : 1));
    e->kernel_s = arena_alloc(e->arena, sizeof(double) * nk);
    return e->kernel_s && e->grain && e->bufs && e->store && e->first_out && e->claimed && e->fresh;
}

/* Copies the memory plan's in-place choices into the kernel plans. */
static void apply_plan(KernelProgram *p, const MemPlan *mp) {
    for (int i = 0; i < p->nkernels; i++) {
        const MemBuf *v = &mp->bufs[mp->group_buf[i]];
        p->kernels[i].inplace_buf =
            v->inplace_of >= 0 ? p->buf_of[mp->bufs[v->inplace_of].node->id] : -1;
    }
}

/* Fills e (already keyed): a compiled program, or a fallback with a reason. */
static void compile(LlvmRunner *r, Entry *e, const bool *donated) {
    const Graph *g = e->g;
    double t0 = now(), opt0 = r->jit.opt_s, cg0 = r->jit.codegen_s;
    e->info.graph = g->name ? g->name : "?";
    e->arena = arena_new();
    FusionPlan *fp = e->arena ? pass_fuse_plan(g, e->arena) : NULL;
    MemPlanOptions mo = pass_memplan_defaults();
    mo.donated = donated;
    mo.veto = trig_veto;
    mo.align = ARENA_ALIGN;
    MemPlan *mp = fp ? pass_memplan(fp, &mo, e->arena) : NULL;
    char why[192] = "out of memory";
    KernelProgram *prog = mp ? cg_schedule(g, fp, e->arena, why, sizeof why) : NULL;
    if (prog) {
        apply_plan(prog, mp);
        char name[48], tabname[64];
        snprintf(name, sizeof name, "dflow_g%d", r->serial++);
        snprintf(tabname, sizeof tabname, "%s_tab", name);
        LlvmCG cg;
        llvm_cg_init(&cg, llvm_jit_context(&r->jit), name);
        bool ok = llvm_emit_program(&cg, prog, name);
        LLVMDisposeBuilder(cg.b);
        void *tab = NULL;
        if (!ok) {
            snprintf(why, sizeof why, "%s", cg.error[0] ? cg.error : "cannot lower the graph");
            LLVMDisposeModule(cg.mod);
        } else if (llvm_jit_compile(&r->jit, cg.mod, tabname, &tab, why, sizeof why)) {
            e->prog = prog;
            e->plan = mp;
            e->tab = tab;
            if (!alloc_tables(e, g)) {
                snprintf(why, sizeof why, "out of memory");
                e->prog = NULL;
            }
        }
    }
    if (e->prog) {
        LlvmGraphInfo *in = &e->info;
        in->nkernels = prog->nkernels;
        in->arena_bytes = mp->arena_bytes;
        in->naive_bytes = mp->naive_bytes;
        in->ninplace = mp->ninplace;
        in->ndonated = mp->ndonated;
        int threads = rt_pool_size(r->pool);
        for (int i = 0; i < prog->nkernels; i++) {
            const KernelPlan *k = &prog->kernels[i];
            e->grain[i] = 0;
            if (threads < 2 || k->par_axis < 0 || k->par_n < 2 || k->work < PAR_MIN_WORK) continue;
            double per = k->work / (double)k->par_n; /* work per unit of the range */
            int64_t grain = (int64_t)(PAR_CHUNK_WORK / per) + 1;
            /* a matmul chunk packs the whole unsplit operand: one chunk per thread
               (MLP step at 2 threads: 0.76 ms against 0.86 ms with 4 per thread) */
            if (k->kind == KP_MATMUL && grain < (k->par_n + threads - 1) / threads)
                grain = (k->par_n + threads - 1) / threads;
            if (grain >= k->par_n) continue;
            e->grain[i] = grain;
            in->nparallel++;
        }
    } else {
        e->info.fallback = true;
        snprintf(e->info.reason, sizeof e->info.reason, "%s", why);
    }
    e->info.compile_s = now() - t0;
    e->info.opt_s = r->jit.opt_s - opt0;
    e->info.codegen_s = r->jit.codegen_s - cg0;
    r->total_s += e->info.compile_s;
    if (r->opt.verbose) {
        if (e->prog)
            fprintf(log_of(r),
                    "cpu: graph %s: %d kernels (%d on %d threads), compiled in %.1f ms (O3 %.1f, "
                    "machine code %.1f)\n",
                    e->info.graph, e->info.nkernels, e->info.nparallel, rt_pool_size(r->pool),
                    1e3 * e->info.compile_s, 1e3 * e->info.opt_s, 1e3 * e->info.codegen_s);
        else
            fprintf(log_of(r), "cpu: graph %s: running on the interpreter (%s)\n", e->info.graph,
                    e->info.reason);
    }
}

static bool too_big_to_interpret(const Graph *g) {
    double elems = 0;
    for (uint32_t i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (n->op == OP_INPUT || n->op == OP_CONST || n->op == OP_IOTA || n->nsrc == 0) continue;
        elems += (double)rt_shape_numel(&n->shape);
    }
    return elems >= INTERP_MAX_ELEMS;
}

static Entry *lookup(LlvmRunner *r, const Graph *g) {
    for (int i = 0; i < r->n; i++) {
        Entry *e = &r->entries[i];
        if (e->g == g && e->nodes == g->nodes && e->nnodes == g->nnodes) return e;
    }
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        Entry *p = realloc(r->entries, sizeof *p * (size_t)cap);
        if (!p) return NULL;
        r->entries = p;
        r->cap = cap;
    }
    Entry *e = &r->entries[r->n++];
    memset(e, 0, sizeof *e);
    e->g = g;
    e->nodes = g->nodes;
    e->nnodes = g->nnodes;
    e->info.graph = g->name ? g->name : "?";
    return e;
}

/* ---- running ------------------------------------------------------------------------------ */

static bool check_inputs(const Graph *g, RtTensor *const *in, DiagList *d) {
    bool ok = true;
    for (int i = 0; i < g->ninputs; i++) {
        const Node *n = g->inputs[i];
        const RtTensor *t = in ? in[i] : NULL;
        if (t && t->dtype == n->dtype && rt_shape_eq(&t->shape, &n->shape)) continue;
        char want[80], got[80];
        rt_shape_str(&n->shape, want, sizeof want);
        if (t) rt_shape_str(&t->shape, got, sizeof got);
        diag_error(d, n->loc, "input #%d%s%s%s: expected %s%s, got %s%s", i, n->name ? " (" : "",
                   n->name ? n->name : "", n->name ? ")" : "", rt_dtype_name(n->dtype), want,
                   t ? rt_dtype_name(t->dtype) : "nothing", t ? got : "");
        ok = false;
    }
    return ok;
}

static bool ensure_arena(LlvmRunner *r, int64_t bytes, DiagList *d) {
    if (bytes <= r->arena_cap) return true;
    size_t n = (size_t)((bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    void *p = aligned_alloc(ARENA_ALIGN, n);
    if (!p) {
        diag_error(d, srcloc_none(), "out of memory: cannot allocate the %lld-byte buffer arena",
                   (long long)bytes);
        return false;
    }
    if (r->opt.poison) memset(p, 0xff, n); /* NaN in every float, -1 in every integer */
    free(r->arena);
    r->arena = p;
    r->arena_cap = (int64_t)n;
    r->allocs++;
    return true;
}

/* The offered tensor for output j, else a fresh one. */
static RtTensor *output_tensor(LlvmRunner *r, Entry *e, int j, RtTensor **offered, DiagList *d) {
    if (offered[j]) return offered[j];
    const Node *o = e->g->outputs[j];
    RtTensor *t = rt_tensor_new(o->dtype, o->shape);
    if (!t) {
        char sh[80];
        diag_error(d, o->loc, "out of memory: cannot allocate %s%s", rt_dtype_name(o->dtype),
                   rt_shape_str(&o->shape, sh, sizeof sh));
        return NULL;
    }
    if (r->opt.poison) memset(t->data, 0xff, rt_tensor_bytes(t));
    e->fresh[j] = t;
    r->allocs++;
    e->info.allocs++;
    return t;
}

typedef struct {
    LlvmTaskFn fn;
    void **bufs;
} TaskArg;

static uint32_t task_tramp(void *arg, int64_t lo, int64_t hi) {
    const TaskArg *a = arg;
    return (uint32_t)a->fn(a->bufs, lo, hi);
}

static uint32_t run_task(LlvmRunner *r, LlvmTaskFn fn, void **bufs, int64_t n, int64_t grain) {
    if (grain <= 0 || n <= 1) return (uint32_t)fn(bufs, 0, n);
    TaskArg a = {fn, bufs};
    return rt_pool_run(r->pool, task_tramp, &a, n, grain);
}

/* Runs the kernels of e over its bufs; false with a diagnostic on a failed check. */
static bool run_kernels(LlvmRunner *r, Entry *e, DiagList *d) {
    const KernelProgram *p = e->prog;
    /* matmuls are split across our pool: OpenBLAS on one thread per call
       (letting it run its own threads instead made the MLP step 1.45 ms
       against 0.76 ms at 2 threads: its idle threads spin against ours) */
    set_blas_threads(r, 1);
    for (int i = 0; i < p->nkernels; i++) {
        const KernelPlan *k = &p->kernels[i];
        double t0 = r->profile ? now() : 0;
        uint32_t st = run_task(r, e->tab[2 * i], e->bufs, k->par_n, e->grain[i]);
        if ((st & 2) && e->tab[2 * i + 1]) /* an argument beyond the fast path's range */
            st = run_task(r, e->tab[2 * i + 1], e->bufs, k->par_n, e->grain[i]);
        if (r->profile) e->kernel_s[i] += now() - t0;
        if (st & 1) {
            const Node *n = k->check_node ? k->check_node : k->group->root;
            diag_error(d, n->loc, "%s: index out of range", ir_op_name(n->op));
            return false;
        }
    }
    return true;
}

/* Points every buffer at its storage for this run (outputs: offered,
 * donated or fresh tensors, recorded in e->store). */
static bool place_buffers(LlvmRunner *r, Entry *e, RtTensor *const *in, const bool *donated,
                          RtTensor **offered, DiagList *d) {
    const KernelProgram *p = e->prog;
    const MemPlan *mp = e->plan;
    const Graph *g = e->g;
    char *base = r->arena;
    for (int b = 0; b < p->nbufs; b++) {
        const KBuffer *kb = &p->bufs[b];
        e->store[b] = NULL;
        e->first_out[b] = -1;
        if (kb->kind == KB_INPUT)
            e->bufs[b] = in[kb->input]->data;
        else if (kb->kind == KB_TEMP && base) /* (no arena: only empty temporaries) */
            e->bufs[b] = base + mp->bufs[mp->buf_of[kb->node->id]].offset;
        else
            e->bufs[b] = NULL;
    }
    for (int j = 0; j < g->noutputs; j++) {
        int b = p->out_bufs[j];
        const KBuffer *kb = &p->bufs[b];
        if (kb->kind != KB_OUTPUT || e->first_out[b] >= 0) continue;
        const MemBuf *v = &mp->bufs[mp->buf_of[kb->node->id]];
        RtTensor *t = NULL;
        if (v->place == MB_DONATED && donated && donated[v->input] && !e->claimed[v->input]) {
            t = in[v->input];
            e->claimed[v->input] = true;
        } else {
            t = output_tensor(r, e, j, offered, d);
            if (!t) return false;
            if (v->place == MB_DONATED && v->inplace_of >= 0) /* not donated now: update a copy */
                memcpy(t->data, in[v->input]->data, rt_tensor_bytes(t));
        }
        e->store[b] = t;
        e->first_out[b] = j;
        e->bufs[b] = t->data;
    }
    return true;
}

/* Fills out[] after the kernels ran; false (out of memory) leaves the
 * fresh tensors in out[] for the caller to free. */
static bool hand_over(LlvmRunner *r, Entry *e, RtTensor *const *in, const bool *donated,
                      RtTensor **offered, RtTensor **out, DiagList *d) {
    const KernelProgram *p = e->prog;
    const Graph *g = e->g;
    for (int j = 0; j < g->noutputs; j++) {
        int b = p->out_bufs[j];
        const KBuffer *kb = &p->bufs[b];
        const RtTensor *src;
        if (kb->kind == KB_INPUT) {
            int i = kb->input;
            if (donated && donated[i] && !e->claimed[i]) {
                e->claimed[i] = true;
                out[j] = in[i];
                continue;
            }
            src = in[i];
        } else if (e->first_out[b] == j) {
            out[j] = e->store[b];
            continue;
        } else {
            src = e->store[b];
        }
        out[j] = output_tensor(r, e, j, offered, d);
        if (!out[j]) return false;
        memcpy(out[j]->data, src->data, rt_tensor_bytes(src));
    }
    return true;
}

static bool run_reuse(void *ctx, const Graph *g, RtTensor *const *in, const bool *donated,
                      RtTensor **out, DiagList *d) {
    LlvmRunner *r = ctx;
    RtTensor *offbuf[16];
    RtTensor **offered = g->noutputs <= 16 ? offbuf : malloc(sizeof *offered * (size_t)g->noutputs);
    if (!offered) {
        diag_error(d, srcloc_none(), "out of memory");
        return false;
    }
    for (int j = 0; j < g->noutputs; j++) {
        offered[j] = out[j];
        out[j] = NULL;
    }
    bool ok = true;
    Entry *e = lookup(r, g);
    if (!e) {
        diag_error(d, srcloc_none(), "out of memory");
        ok = false;
    } else if (!e->info.compiled &&
               (e->info.runs >= r->opt.interp_runs || too_big_to_interpret(g))) {
        e->info.compiled = true;
        compile(r, e, donated);
    }
    if (ok) e->info.runs++;
    if (ok && !e->prog) {
        set_blas_threads(r, rt_pool_size(r->pool)); /* our pool is idle meanwhile */
        ok = ir_interp_run(g, in, out, d);
        goto done;
    }
    ok = ok && check_inputs(g, in, d) && ensure_arena(r, e->plan->arena_bytes, d);
    if (ok) {
        memset(e->claimed, 0, (size_t)(g->ninputs ? g->ninputs : 1));
        for (int j = 0; j < g->noutputs; j++)
            e->fresh[j] = NULL;
        ok = place_buffers(r, e, in, donated, offered, d) && run_kernels(r, e, d) &&
             hand_over(r, e, in, donated, offered, out, d);
        if (!ok) {
            /* free what this run allocated; offered and donated storage is the caller's */
            for (int j = 0; j < g->noutputs; j++) {
                rt_tensor_free(e->fresh[j]);
                out[j] = NULL;
            }
        }
    }
done:
    if (offered != offbuf) free(offered);
    return ok;
}

static bool run(void *ctx, const Graph *g, RtTensor *const *in, RtTensor **out, DiagList *d) {
    for (int j = 0; j < g->noutputs; j++)
        out[j] = NULL;
    return run_reuse(ctx, g, in, NULL, out, d);
}

/* ---- the runner ------------------------------------------------------------------------------ */

GraphRunner llvm_runner_new(const LlvmOptions *o, char *err, size_t errn) {
    GraphRunner gr = {"cpu", NULL, NULL, NULL};
    LlvmRunner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errn, "out of memory");
        return gr;
    }
    if (o) r->opt = *o;
    r->profile = getenv("DFLOW_PROFILE") != NULL;
    if (!llvm_jit_init(&r->jit, err, errn)) {
        free(r);
        return gr;
    }
    r->pool = rt_pool_new(r->opt.nthreads);
    if (!r->pool) {
        snprintf(err, errn, "cannot start %d kernel threads", r->opt.nthreads);
        llvm_jit_dispose(&r->jit);
        free(r);
        return gr;
    }
    gr.ctx = r;
    gr.run = run;
    gr.run_reuse = run_reuse;
    return gr;
}

/* DFLOW_PROFILE: per graph, the kernels by time spent (microseconds per run). */
static void print_profile(LlvmRunner *r) {
    FILE *f = log_of(r);
    for (int i = 0; i < r->n; i++) {
        const Entry *e = &r->entries[i];
        if (!e->prog || e->info.runs == 0) continue;
        double total = 0;
        for (int k = 0; k < e->prog->nkernels; k++)
            total += e->kernel_s[k];
        int runs = e->info.runs - (r->opt.interp_runs < e->info.runs ? r->opt.interp_runs : 0);
        if (runs <= 0) continue;
        fprintf(f, "profile: graph %s: %d runs, kernels %.1f us per run\n", e->info.graph, runs,
                1e6 * total / runs);
        for (int k = 0; k < e->prog->nkernels; k++) {
            const KernelPlan *kp = &e->prog->kernels[k];
            char label[32];
            fprintf(f, "  k%-4d %-10s %8.1f us  %s\n", kp->id,
                    pass_fuse_label(kp->group, label, sizeof label), 1e6 * e->kernel_s[k] / runs,
                    e->grain[k] ? "split" : "");
        }
    }
}

void llvm_runner_free(GraphRunner *gr) {
    if (!gr || !gr->ctx) return;
    LlvmRunner *r = gr->ctx;
    if (r->profile) print_profile(r);
    for (int i = 0; i < r->n; i++)
        arena_free(r->entries[i].arena);
    free(r->entries);
    free(r->arena);
    rt_pool_free(r->pool);
    llvm_jit_dispose(&r->jit);
    free(r);
    gr->ctx = NULL;
    gr->run = NULL;
    gr->run_reuse = NULL;
}

int llvm_runner_ngraphs(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->n : 0;
}

const LlvmGraphInfo *llvm_runner_graph(const GraphRunner *gr, int i) {
    if (!gr || !gr->ctx || i < 0 || i >= ((const LlvmRunner *)gr->ctx)->n) return NULL;
    return &((const LlvmRunner *)gr->ctx)->entries[i].info;
}

const Graph *llvm_runner_graph_key(const GraphRunner *gr, int i) {
    if (!gr || !gr->ctx || i < 0 || i >= ((const LlvmRunner *)gr->ctx)->n) return NULL;
    return ((const LlvmRunner *)gr->ctx)->entries[i].g;
}

double llvm_runner_compile_seconds(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->total_s : 0;
}

int64_t llvm_runner_allocs(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->allocs : 0;
}

int64_t llvm_runner_arena_bytes(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->arena_cap : 0;
}

int llvm_runner_threads(const GraphRunner *gr) {
    return gr && gr->ctx ? rt_pool_size(((const LlvmRunner *)gr->ctx)->pool) : 1;
}
