/* Backends: the ways a graph can be run, chosen by name (`--backend`).
 *
 * A backend makes GraphRunners (ir/exec.h) for the module executor. "interp"
 * is the reference interpreter, "cpu" the LLVM JIT (codegen/llvm); "cuda"
 * joins later. Each backend keeps its own per-op table, derived from
 * ops.def and pinned to OP_COUNT; supports_op answers from it. After a run
 * a backend can describe what it did per graph (graph_stats): compile time
 * and the memory plan, for `dflow run --verbose` and `--mem-report`. */
#ifndef DFLOW_CODEGEN_BACKEND_H
#define DFLOW_CODEGEN_BACKEND_H

#include <stdio.h>

#include "../ir/exec.h"

typedef struct {
    bool verbose;            /* report compile times and interpreter fallbacks */
    FILE *log;               /* NULL = stderr */
    int interp_runs;         /* compiled backends: interpret a graph's first runs (LlvmOptions) */
    int nthreads;            /* kernel threads, and at most as many compile and OpenBLAS
                                threads (--threads); 0 = DFLOW_NUM_THREADS or the cores */
    NumericsCheck *numerics; /* --check-numerics (ir/numerics.h); NULL = off */
} BackendOptions;

/* What a runner did with one graph. */
typedef struct {
    const Graph *graph; /* compare only; the graph may be gone */
    const char *name;
    int runs;
    bool compiled; /* compiled (false: interpreted so far, or always) */
    bool fallback; /* compilation failed: interpreted */
    int nkernels, nparallel;
    double compile_s, opt_s, codegen_s;
    /* the memory plan, when compiled */
    int64_t arena_bytes, naive_bytes, scratch_bytes;
    int ninplace;
    int64_t allocs; /* output tensors its runs allocated */
} BackendGraphStats;

typedef struct {
    const char *name;
    const char *doc;
    /* false when the backend cannot lower op at all (graphs using it fall
       back to the interpreter) */
    bool (*supports_op)(OpKind op);
    /* .run is NULL on failure, with the reason in err */
    GraphRunner (*runner_new)(const BackendOptions *o, char *err, size_t errn);
    void (*runner_free)(GraphRunner *r);
    /* NULL when the backend keeps no record. Fills up to max entries (graphs
       in the order first run) and returns how many graphs there are; *threads
       receives the kernel thread count. */
    int (*graph_stats)(const GraphRunner *r, BackendGraphStats *out, int max, int *threads);
} Backend;

/* The backend called name, or NULL. */
const Backend *cg_backend_find(const char *name);
/* All backends; *n receives their count. */
const Backend *cg_backend_list(int *n);

#endif
