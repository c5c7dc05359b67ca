/* The LLVM CPU backend's GraphRunner: compile on first run, cache, call.
 *
 * Compiling a graph: fusion plan -> kernel plans -> one LLVM module whose
 * entry function takes the array of buffer pointers -> O3 -> LLJIT. The
 * plans live in a per-graph arena kept with the cache entry, since running
 * needs their buffer table. Running: check the inputs as the interpreter
 * does, allocate one zeroed tensor per materialised value, call the entry,
 * hand the output buffers over (inputs returned as outputs are copied, a
 * value returned twice is copied once more) and free the rest. When any
 * step of compilation cannot lower the graph, the entry records why and
 * the graph runs on the interpreter from then on. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../ir/interp.h"
#include "../../passes/fuse.h"
#include "llvm_backend.h"
#include "llvm_internal.h"

typedef int32_t (*EntryFn)(void **bufs);

typedef struct {
    const Graph *g;
    Node **nodes; /* the graph's node array when compiled: a rebuilt graph differs */
    uint32_t nnodes;
    Arena *arena;
    KernelProgram *prog; /* NULL: interpreter */
    EntryFn entry;
    LlvmGraphInfo info;
} Entry;

typedef struct {
    LlvmOptions opt;
    LlvmJit jit;
    Entry *entries;
    int n, cap;
    int serial;
    double total_s;
} LlvmRunner;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FILE *log_of(const LlvmRunner *r) {
    return r->opt.log ? r->opt.log : stderr;
}

/* ---- compiling ------------------------------------------------------------------------- */

/* Fills e (already keyed): a compiled program, or a fallback with a reason. */
static void compile(LlvmRunner *r, Entry *e) {
    const Graph *g = e->g;
    double t0 = now(), opt0 = r->jit.opt_s, cg0 = r->jit.codegen_s;
    e->info.graph = g->name ? g->name : "?";
    e->arena = arena_new();
    FusionPlan *fp = e->arena ? pass_fuse_plan(g, e->arena) : NULL;
    char why[192] = "out of memory";
    KernelProgram *prog = fp ? cg_schedule(g, fp, e->arena, why, sizeof why) : NULL;
    if (prog) {
        char name[48];
        snprintf(name, sizeof name, "dflow_g%d", r->serial++);
        LlvmCG cg;
        llvm_cg_init(&cg, llvm_jit_context(&r->jit), name);
        bool ok = llvm_emit_program(&cg, prog, name);
        LLVMDisposeBuilder(cg.b);
        void *fn = NULL;
        if (!ok) {
            snprintf(why, sizeof why, "%s", cg.error[0] ? cg.error : "cannot lower the graph");
            LLVMDisposeModule(cg.mod);
        } else if (llvm_jit_compile(&r->jit, cg.mod, name, &fn, why, sizeof why)) {
            e->prog = prog;
            e->entry = (EntryFn)fn;
            e->info.nkernels = prog->nkernels;
        }
    }
    if (!e->prog) {
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
                    "cpu: graph %s: %d kernels, compiled in %.1f ms (O3 %.1f, machine code %.1f)\n",
                    e->info.graph, e->info.nkernels, 1e3 * e->info.compile_s, 1e3 * e->info.opt_s,
                    1e3 * e->info.codegen_s);
        else
            fprintf(log_of(r), "cpu: graph %s: running on the interpreter (%s)\n", e->info.graph,
                    e->info.reason);
    }
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

static bool run(void *ctx, const Graph *g, RtTensor *const *in, RtTensor **out, DiagList *d) {
    LlvmRunner *r = ctx;
    for (int j = 0; j < g->noutputs; j++)
        out[j] = NULL;
    Entry *e = lookup(r, g);
    if (!e) {
        diag_error(d, srcloc_none(), "out of memory");
        return false;
    }
    if (!e->info.compiled && e->info.runs >= r->opt.interp_runs) {
        e->info.compiled = true;
        compile(r, e);
    }
    e->info.runs++;
    if (!e->prog) return ir_interp_run(g, in, out, d);
    if (!check_inputs(g, in, d)) return false;
    const KernelProgram *p = e->prog;
    size_t nb = (size_t)(p->nbufs ? p->nbufs : 1);
    void **bufs = calloc(nb, sizeof *bufs);
    RtTensor **owned = calloc(nb, sizeof *owned);
    bool ok = bufs && owned;
    if (!ok) diag_error(d, srcloc_none(), "out of memory");
    for (int b = 0; ok && b < p->nbufs; b++) {
        const KBuffer *kb = &p->bufs[b];
        if (kb->kind == KB_INPUT) {
            bufs[b] = in[kb->input]->data;
            continue;
        }
        owned[b] = rt_tensor_new(kb->dt, kb->shape);
        if (!owned[b]) {
            char sh[80];
            diag_error(d, kb->node->loc, "out of memory: cannot allocate %s%s",
                       rt_dtype_name(kb->dt), rt_shape_str(&kb->shape, sh, sizeof sh));
            ok = false;
        } else {
            bufs[b] = owned[b]->data;
        }
    }
    if (ok) {
        int32_t st = e->entry(bufs);
        if (st != 0) {
            const KernelPlan *k = &p->kernels[st - 1];
            const Node *n = k->check_node ? k->check_node : k->group->root;
            diag_error(d, n->loc, "%s: index out of range", ir_op_name(n->op));
            ok = false;
        }
    }
    for (int j = 0; ok && j < g->noutputs; j++) {
        int b = p->out_bufs[j];
        const KBuffer *kb = &p->bufs[b];
        if (kb->kind == KB_INPUT) {
            out[j] = rt_tensor_clone(in[kb->input]);
        } else if (owned[b]) {
            out[j] = owned[b];
            owned[b] = NULL;
        } else {
            for (int k = 0; k < j; k++)
                if (p->out_bufs[k] == b) out[j] = rt_tensor_clone(out[k]);
        }
        if (!out[j]) {
            diag_error(d, g->outputs[j]->loc, "out of memory copying output #%d", j);
            ok = false;
        }
    }
    if (!ok)
        for (int j = 0; j < g->noutputs; j++) {
            rt_tensor_free(out[j]);
            out[j] = NULL;
        }
    for (size_t b = 0; owned && b < nb; b++)
        rt_tensor_free(owned[b]);
    free(bufs);
    free(owned);
    return ok;
}

/* ---- the runner ------------------------------------------------------------------------------ */

GraphRunner llvm_runner_new(const LlvmOptions *o, char *err, size_t errn) {
    GraphRunner gr = {"cpu", NULL, NULL};
    LlvmRunner *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errn, "out of memory");
        return gr;
    }
    if (o) r->opt = *o;
    if (!llvm_jit_init(&r->jit, err, errn)) {
        free(r);
        return gr;
    }
    gr.ctx = r;
    gr.run = run;
    return gr;
}

void llvm_runner_free(GraphRunner *gr) {
    if (!gr || !gr->ctx) return;
    LlvmRunner *r = gr->ctx;
    for (int i = 0; i < r->n; i++)
        arena_free(r->entries[i].arena);
    free(r->entries);
    llvm_jit_dispose(&r->jit);
    free(r);
    gr->ctx = NULL;
    gr->run = NULL;
}

int llvm_runner_ngraphs(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->n : 0;
}

const LlvmGraphInfo *llvm_runner_graph(const GraphRunner *gr, int i) {
    if (!gr || !gr->ctx || i < 0 || i >= ((const LlvmRunner *)gr->ctx)->n) return NULL;
    return &((const LlvmRunner *)gr->ctx)->entries[i].info;
}

double llvm_runner_compile_seconds(const GraphRunner *gr) {
    return gr && gr->ctx ? ((const LlvmRunner *)gr->ctx)->total_s : 0;
}
