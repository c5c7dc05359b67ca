/* The LLVM CPU backend's GraphRunner: compile on first run, cache, call.
 *
 * Compiling a graph: fusion plan -> memory plan -> kernel plans (with the
 * plan's in-place choices and per kernel O0 or O3, llvm_kernel_opt) ->
 * code per kernel (llvm_kcomp.c: shared by identical kernels, compiled on
 * several threads, kept in the persistent cache of LlvmOptions.cache_dir)
 * -> objects linked into LLJIT with the graph's glue (its task table). The plans live in a
 * per-graph arena kept with the cache entry, together with the buffer pointer table and per-run
 * scratch arrays, so a run allocates nothing but output tensors the executor did not offer.
 *
 * Running: check the inputs as the interpreter does, then runtime/kprog.c
 * places the buffers (inputs in place, intermediates in the shared arena,
 * outputs in offered, donated or fresh tensors), calls the kernels over the
 * thread pool and hands the outputs over. The memory plan is made with the
 * donations of the first compiled run; later runs that donate less still
 * work (kprog.h). When any step of
 * compilation cannot lower the graph, the entry records why and the graph
 * runs on the interpreter from then on. With DFLOW_PROFILE set in the
 * environment, every kernel is timed and the times per run are printed
 * (log stream) when the runner is freed. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../ir/interp.h"
#include "../../ir/oom.h"
#include "../../passes/fuse.h"
#include "../../runtime/grow.h"
#include "../../runtime/kprog.h"
#include "../../runtime/linalg.h"
#include "llvm_backend.h"
#include "llvm_internal.h"
#include "llvm_numerics.h"
#include "llvm_plan.h"

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
    LlvmPlan plan;
    RtKProg *kp; /* NULL: interpreter */
    LlvmGraphInfo info;
} Entry;

typedef struct {
    LlvmOptions opt;
    LlvmJit jit;
    LlvmCache *cache; /* NULL: none */
    LlvmKComp *kc;
    /* One allocation per entry: an entry holds pointers into itself (kp ->
     * plan.kp) and callers keep &entry->info, so entries never move when
     * the table grows. */
    Entry **entries;
    int n, cap;
    int serial;
    double total_s;
    RtKExec x; /* the pool, the arena of intermediates, OpenBLAS's thread count */
} LlvmRunner;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the whole process (every compile thread): on a shared machine
 * the wall time of a compilation mostly measures waiting for a core. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FILE *log_of(const LlvmRunner *r) {
    return r->opt.log ? r->opt.log : stderr;
}

/* ---- compiling ------------------------------------------------------------------------- */

/* Links the kernels' new objects and the graph's glue (compiled through
 * the cache); the task table in *tab. */
static bool link_graph(LlvmRunner *r, Entry *e, LlvmKStats *st, void **tab, char *why,
                       size_t whyn) {
    const KernelProgram *p = e->plan.prog;
    int nk = p->nkernels;
    LlvmKCode **codes = arena_alloc(e->arena, sizeof *codes * (size_t)(nk ? nk : 1));
    const char **syms = arena_alloc(e->arena, sizeof *syms * (size_t)(2 * nk + 1));
    if (!codes || !syms) {
        snprintf(why, whyn, "out of memory");
        return false;
    }
    if (!llvm_kcomp_program(r->kc, p, e->plan.opts, codes, st, why, whyn)) return false;
    for (int i = 0; i < nk; i++) {
        LlvmKCode *c = codes[i];
        if (c->obj) {
            bool ok = llvm_jit_add_object(&r->jit, c->obj, c->nobj, why, whyn);
            free(c->obj);
            c->obj = NULL;
            if (!ok) return false;
        }
        syms[2 * i] = c->sym[0];
        syms[2 * i + 1] = c->sym[1][0] ? c->sym[1] : NULL;
    }
    char name[48], tabname[64];
    snprintf(name, sizeof name, "dflow_g%d", r->serial++);
    snprintf(tabname, sizeof tabname, "%s_tab", name);
    LlvmCG cg;
    llvm_cg_init(&cg, llvm_kcomp_context(r->kc), name);
    bool ok = llvm_emit_glue(&cg, p, syms, name);
    LLVMDisposeBuilder(cg.b);
    if (!ok) {
        snprintf(why, whyn, "%s", cg.error[0] ? cg.error : "cannot lower the graph");
        LLVMDisposeModule(cg.mod);
        return false;
    }
    void *obj = NULL;
    size_t n = 0;
    ok = llvm_kcomp_module(r->kc, cg.mod, &obj, &n, st, why, whyn) &&
         llvm_jit_add_object(&r->jit, obj, n, why, whyn);
    free(obj);
    return ok && llvm_jit_lookup(&r->jit, tabname, tab, why, whyn);
}

/* Fills e (already keyed): a compiled program, or a fallback with a reason. */
static void compile(LlvmRunner *r, Entry *e, const bool *donated) {
    const Graph *g = e->g;
    double t0 = now(), c0 = cpu_now(), cg0 = r->jit.codegen_s;
    e->info.graph = g->name ? g->name : "?";
    e->arena = arena_new();
    char why[192] = "out of memory";
    LlvmKStats st = {0};
    void *tab = NULL;
    bool planned = e->arena && llvm_plan_graph(g, donated, e->arena, &e->plan, why, sizeof why);
    if (planned && r->opt.tiered) {
        double runs = g->runs > 0 ? g->runs : g->once ? 1 : LLVM_LOOP_RUNS;
        double ci = llvm_compile_estimate_s(e->plan.prog, e->plan.opts);
        double ii = runs * llvm_interp_estimate_s(g);
        if (ii < ci) {
            snprintf(why, sizeof why, "cheaper to interpret: expected %.2f ms, %.2f ms to compile",
                     1e3 * ii, 1e3 * ci);
            planned = false;
        }
    }
    if (planned && link_graph(r, e, &st, &tab, why, sizeof why)) {
        e->kp = &e->plan.kp;
        e->kp->tab = tab;
    }
    if (e->kp) {
        LlvmGraphInfo *in = &e->info;
        const MemPlan *mp = e->plan.mem;
        in->nkernels = e->kp->nkernels;
        in->arena_bytes = mp->arena_bytes;
        in->naive_bytes = mp->naive_bytes;
        in->ninplace = mp->ninplace;
        in->ndonated = mp->ndonated;
        in->nparallel = rt_kprog_set_grains(e->kp, rt_pool_size(r->x.pool));
    } else {
        e->info.fallback = true;
        snprintf(e->info.reason, sizeof e->info.reason, "%s", why);
    }
    e->info.compile_s = now() - t0;
    e->info.compile_cpu_s = cpu_now() - c0;
    e->info.opt_s = st.opt_s;
    e->info.codegen_s = st.codegen_s + r->jit.codegen_s - cg0;
    e->info.nunique = st.nloaded + st.ncompiled;
    e->info.ncached = st.nloaded;
    e->info.nshared = st.nreused;
    e->info.nfull = 0;
    for (int i = 0; e->kp && i < e->kp->nkernels; i++)
        e->info.nfull += e->plan.opts[i] == LLVM_OPT_FULL;
    r->total_s += e->info.compile_s;
    if (r->opt.verbose) {
        if (e->kp)
            fprintf(log_of(r),
                    "cpu: graph %s: %d kernels (%d on %d threads; %d O3; %d new, %d of them "
                    "cached, %d shared), compiled in %.1f ms (cpu %.1f ms; optimiser %.1f, "
                    "machine code %.1f, on %d threads)\n",
                    e->info.graph, e->info.nkernels, e->info.nparallel, rt_pool_size(r->x.pool),
                    e->info.nfull, e->info.nunique, e->info.ncached, e->info.nshared,
                    1e3 * e->info.compile_s, 1e3 * e->info.compile_cpu_s, 1e3 * e->info.opt_s,
                    1e3 * e->info.codegen_s, st.nthreads);
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
        Entry *e = r->entries[i];
        if (e->g == g && e->nodes == g->nodes && e->nnodes == g->nnodes) return e;
    }
    if (!rt_grow(&r->entries, &r->cap, (size_t)r->n + 1, 8)) return NULL;
    Entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    r->entries[r->n++] = e;
    e->g = g;
    e->nodes = g->nodes;
    e->nnodes = g->nnodes;
    e->info.graph = g->name ? g->name : "?";
    return e;
}

/* ---- running ------------------------------------------------------------------------------ */

/* The largest value of e's arena of intermediates (its first, on a tie). */
static const Node *largest_intermediate(const Entry *e) {
    const MemPlan *mp = e->plan.mem;
    const MemBuf *best = NULL;
    for (int b = 0; b < mp->nbufs; b++)
        if (mp->bufs[b].place == MB_ARENA && (!best || mp->bufs[b].bytes > best->bytes))
            best = &mp->bufs[b];
    return best ? best->node : NULL;
}

/* Out of memory for output `bad` of e, or (bad < 0) for its arena:
 * located at the value that needed the memory (oom.h). */
static void oom_error(const LlvmRunner *r, const Entry *e, const Graph *g, int bad, DiagList *d) {
    int64_t held = rt_tensor_live_bytes() + r->x.arena_cap;
    const Node *n = bad >= 0 ? g->outputs[bad] : largest_intermediate(e);
    if (n)
        ir_oom_value(d, n->loc, n->dtype, &n->shape, ir_op_name(n->op),
                     bad >= 0 ? 0 : e->kp->arena_bytes, held);
    else
        ir_oom_arena(d, srcloc_none(), e->info.graph, e->kp->arena_bytes, held);
}

/* Runs the compiled program of e; diagnostics for a failed index check or
 * memory. */
static bool run_compiled(LlvmRunner *r, Entry *e, const Graph *g, RtTensor *const *in,
                         const bool *donated, RtTensor **out, DiagList *d) {
    int bad = -1;
    LlvmNumerics nc = {e->plan.prog, r->opt.numerics, d};
    if (r->opt.numerics) {
        r->x.after_kernel = llvm_numerics_after_kernel;
        r->x.after_ctx = &nc;
    }
    RtKStatus st = rt_kprog_run(&r->x, e->kp, in, donated, out, &bad);
    r->x.after_kernel = NULL;
    for (int j = 0; j < e->kp->noutputs; j++)
        e->info.allocs += e->kp->fresh[j] != NULL;
    if (st == RK_CHECK) {
        const KernelPlan *k = &e->plan.prog->kernels[bad];
        const Node *n = k->check_node ? k->check_node : k->group->root;
        const char *why = k->kind == KP_CALL ? rt_linalg_error_text() : "";
        diag_error(d, n->loc, "%s: %s", ir_op_name(n->op), why[0] ? why : "index out of range");
        rt_linalg_error_clear();
    } else if (st == RK_OOM) {
        oom_error(r, e, g, bad, d);
    }
    return st == RK_OK;
}

static bool run_reuse(void *ctx, const Graph *g, RtTensor *const *in, const bool *donated,
                      RtTensor **out, DiagList *d) {
    LlvmRunner *r = ctx;
    Entry *e = lookup(r, g);
    if (!e) {
        for (int j = 0; j < g->noutputs; j++)
            out[j] = NULL;
        diag_error(d, srcloc_none(), "out of memory");
        return false;
    }
    if (!e->info.compiled &&
        (e->info.runs >= r->opt.interp_runs || g->repeated || too_big_to_interpret(g))) {
        e->info.compiled = true;
        compile(r, e, donated);
    }
    e->info.runs++;
    if (!e->kp) {
        for (int j = 0; j < g->noutputs; j++)
            out[j] = NULL;
        rt_kexec_blas_threads(&r->x, rt_pool_size(r->x.pool)); /* our pool is idle meanwhile */
        return ir_interp_run_checked(g, in, out, d, r->opt.numerics);
    }
    if (!ir_check_graph_inputs(g, in, d)) {
        for (int j = 0; j < g->noutputs; j++)
            out[j] = NULL;
        return false;
    }
    return run_compiled(r, e, g, in, donated, out, d);
}

static bool run(void *ctx, const Graph *g, RtTensor *const *in, RtTensor **out, DiagList *d) {
    for (int j = 0; j < g->noutputs; j++)
        out[j] = NULL;
    return run_reuse(ctx, g, in, NULL, out, d);
}

/* ---- the runner ------------------------------------------------------------------------------ */

GraphRunner llvm_runner_new(const LlvmOptions *o, char *err, size_t errn) {
    /* the name goes into summary.json: a tiered run's bits may be the interpreter's */
    GraphRunner gr = {o && o->tiered ? "auto" : "cpu", NULL, NULL, NULL};
    LlvmRunner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errn, "out of memory");
        return gr;
    }
    if (o) r->opt = *o;
    r->x.profile = getenv("DFLOW_PROFILE") != NULL;
    r->x.poison = r->opt.poison;
    if (!llvm_jit_init(&r->jit, err, errn)) {
        free(r);
        return gr;
    }
    r->cache = llvm_cache_open(r->opt.cache_dir, 0);
    r->kc = llvm_kcomp_new(NULL, true, r->cache, r->opt.compile_threads, err, errn);
    if (!r->kc) {
        llvm_cache_close(r->cache);
        llvm_jit_dispose(&r->jit);
        free(r);
        return gr;
    }
    r->x.pool = rt_pool_new(r->opt.nthreads);
    if (!r->x.pool) {
        snprintf(err, errn, "cannot start %d kernel threads", r->opt.nthreads);
        llvm_kcomp_free(r->kc);
        llvm_cache_close(r->cache);
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
        const Entry *e = r->entries[i];
        if (!e->kp || e->info.runs == 0) continue;
        double total = 0;
        for (int k = 0; k < e->kp->nkernels; k++)
            total += e->kp->kernel_s[k];
        int runs = e->info.runs - (r->opt.interp_runs < e->info.runs ? r->opt.interp_runs : 0);
        if (runs <= 0) continue;
        fprintf(f, "profile: graph %s: %d runs, kernels %.1f us per run\n", e->info.graph, runs,
                1e6 * total / runs);
        for (int k = 0; k < e->kp->nkernels; k++) {
            const KernelPlan *kp = &e->plan.prog->kernels[k];
            char label[32];
            fprintf(f, "  k%-4d %-10s %8.1f us  %s\n", kp->id,
                    pass_fuse_label(kp->group, label, sizeof label),
                    1e6 * e->kp->kernel_s[k] / runs, e->kp->kernels[k].grain ? "split" : "");
        }
    }
}

void llvm_runner_free(GraphRunner *gr) {
    if (!gr || !gr->ctx) return;
    LlvmRunner *r = gr->ctx;
    if (r->x.profile) print_profile(r);
    for (int i = 0; i < r->n; i++) {
        arena_free(r->entries[i]->arena);
        free(r->entries[i]);
    }
    free(r->entries);
    rt_kexec_free(&r->x);
    rt_pool_free(r->x.pool);
    llvm_jit_dispose(&r->jit);
    llvm_kcomp_free(r->kc);
    llvm_cache_close(r->cache);
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
    return &((const LlvmRunner *)gr->ctx)->entries[i]->info;
}

const Graph *llvm_runner_graph_key(const GraphRunner *gr, int i) {
    if (!gr || !gr->ctx || i < 0 || i >= ((const LlvmRunner *)gr->ctx)->n) return NULL;
    return ((const LlvmRunner *)gr->ctx)->entries[i]->g;
}

double llvm_runner_compile_seconds(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->total_s : 0;
}

int64_t llvm_runner_allocs(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->x.allocs : 0;
}

int64_t llvm_runner_arena_bytes(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->x.arena_cap : 0;
}

int llvm_runner_threads(const GraphRunner *gr) {
    return gr && gr->ctx ? rt_pool_size(((const LlvmRunner *)gr->ctx)->x.pool) : 1;
}
