/* The table of backends behind `--backend NAME`: the interpreter and the
 * LLVM CPU JIT, each with its runner constructor and op support query. */
#include "backend.h"

#include <string.h>

#include "llvm/llvm_backend.h"
#include "llvm/llvm_internal.h"

static bool interp_supports(OpKind op) {
    return (unsigned)op < OP_COUNT;
}

static GraphRunner interp_new(const BackendOptions *o, char *err, size_t errn) {
    (void)err;
    (void)errn;
    return o && o->numerics ? ir_interp_runner_checked(o->numerics) : ir_interp_runner();
}

static void interp_free(GraphRunner *r) {
    (void)r;
}

static bool cpu_supports(OpKind op) {
    return (unsigned)op < OP_COUNT && llvm_op_table[op].how != LL_MISSING;
}

/* The LLVM runner behind `cpu` and `auto`; `tiered` interprets graphs whose
 * expected runs are cheaper to interpret than to compile
 * (LlvmOptions.tiered). */
static GraphRunner llvm_new(const BackendOptions *o, bool tiered, char *err, size_t errn) {
    char dir[4096]; /* the command's compile cache: named by the environment */
    LlvmOptions lo = {
        .cache_dir = llvm_cache_default_dir(dir, sizeof dir),
        .verbose = o ? o->verbose : false,
        .log = o ? o->log : NULL,
        .interp_runs = o ? o->interp_runs : 0,
        .nthreads = o ? o->nthreads : 0,
        .compile_threads = o ? o->nthreads : 0,
        .numerics = o ? o->numerics : NULL,
        .tiered = tiered,
    };
    return llvm_runner_new(&lo, err, errn);
}

static GraphRunner cpu_new(const BackendOptions *o, char *err, size_t errn) {
    return llvm_new(o, false, err, errn);
}

static GraphRunner auto_new(const BackendOptions *o, char *err, size_t errn) {
    return llvm_new(o, true, err, errn);
}

static int cpu_stats(const GraphRunner *r, BackendGraphStats *out, int max, int *threads) {
    int n = llvm_runner_ngraphs(r);
    if (threads) *threads = llvm_runner_threads(r);
    for (int i = 0; i < n && i < max; i++) {
        const LlvmGraphInfo *in = llvm_runner_graph(r, i);
        out[i] = (BackendGraphStats){
            .name = in->graph,
            .runs = in->runs,
            .compiled = in->compiled && !in->fallback,
            .fallback = in->fallback,
            .nkernels = in->nkernels,
            .nparallel = in->nparallel,
            .compile_s = in->compile_s,
            .opt_s = in->opt_s,
            .codegen_s = in->codegen_s,
            .arena_bytes = in->arena_bytes,
            .naive_bytes = in->naive_bytes,
            .ninplace = in->ninplace,
            .allocs = in->allocs,
        };
        out[i].graph = llvm_runner_graph_key(r, i);
    }
    return n;
}

static const Backend backends[] = {
    {"interp", "the reference interpreter (slow, exact)", interp_supports, interp_new, interp_free,
     NULL},
    {"cpu", "LLVM JIT for the host CPU (fused, vectorised kernels; OpenBLAS matmul)", cpu_supports,
     cpu_new, llvm_runner_free, cpu_stats},
    {"auto", "cpu, with graphs interpreted where that is expected to be cheaper", cpu_supports,
     auto_new, llvm_runner_free, cpu_stats},
};

const Backend *cg_backend_find(const char *name) {
    for (size_t i = 0; name && i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i].name, name) == 0) return &backends[i];
    return NULL;
}

const Backend *cg_backend_list(int *n) {
    *n = (int)(sizeof backends / sizeof backends[0]);
    return backends;
}
