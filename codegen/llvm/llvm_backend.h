/* The LLVM CPU backend as a GraphRunner for the module executor.
 *
 * On the first run of a graph (or a later one: interp_runs) the runner decides fusion groups
 * (passes/fuse.h), plans their memory (passes/memplan.h), lowers them to
 * kernel plans (codegen/kernel.h) and makes code for each kernel: shared
 * with any kernel of the same structure compiled before, else loaded from
 * the persistent compile cache (cache_dir, llvm_cache.h) or compiled, at O3
 * for the host CPU where the expected benefit pays for it and at O0
 * otherwise (llvm_plan.h), on several threads; the result is cached per graph
 * (keyed by the Graph pointer and its node array, so a graph rebuilt by a
 * pass is compiled again). A graph using something the backend cannot
 * lower runs on the reference interpreter instead, with a note when
 * verbose. Intermediates live in one arena shared by all graphs (they run
 * one at a time), allocated when a graph first needs it, never in a
 * steady-state run; outputs go into the storage the executor offers or
 * donates (GraphRunner.run_reuse), so a training step allocates nothing.
 * Kernels run on a thread pool (runtime/threadpool.h) when their work is
 * large enough; OpenBLAS is kept at one thread while kernels run (matmuls
 * are split across the pool instead) and given the pool's size while the
 * interpreter runs a graph, so the cores are never oversubscribed.
 * Ownership: llvm_runner_new returns a runner the caller frees with
 * llvm_runner_free; the graphs it ran must outlive neither (it keeps no
 * pointer it dereferences after the graph is gone, but a recycled Graph
 * address with the same node array would hit a stale cache entry). */
#ifndef DFLOW_CODEGEN_LLVM_BACKEND_H
#define DFLOW_CODEGEN_LLVM_BACKEND_H

#include <stdio.h>

#include "../../ir/exec.h"

typedef struct {
    bool verbose; /* one line per graph compiled (or sent to the interpreter) */
    FILE *log;    /* where those lines go; NULL = stderr */
    /* runs of each graph served by the interpreter before it is compiled:
       0 compiles on the first run; 1 never compiles a graph run only once
       (an initialiser, a final evaluation), which is usually cheaper to
       interpret; a graph the host program runs in a loop (Graph.repeated)
       or computing millions of elements is compiled on its first run
       anyway, so every step of a loop runs the same machine code */
    int interp_runs;
    int nthreads; /* kernel threads; 0 = rt_pool_default_size() (DFLOW_NUM_THREADS or cores) */
    bool poison;  /* fill the arena and fresh output tensors with NaN bytes (tests: no
                     kernel may rely on zeroed memory) */
    /* the persistent compile cache's folder (llvm_cache.h); NULL: none */
    const char *cache_dir;
    int compile_threads;     /* 0: DFLOW_COMPILE_THREADS or the online cores */
    NumericsCheck *numerics; /* --check-numerics: scan every kernel's output (NULL: off) */
    /* `--backend auto`: a graph whose expected runs (Graph.runs: the constant
       trip counts of its loops) cost less to interpret than compiling it
       (llvm_plan.h, a fixed model: never a time measured) runs on the
       interpreter; its bits are then the interpreter's, not those of a built
       executable */
    bool tiered;
} LlvmOptions;

typedef struct {
    const char *graph; /* the graph's name */
    int runs;          /* how often it was run */
    bool compiled;     /* compilation happened (fallback tells whether it worked) */
    int nkernels;
    int nfull;            /* kernels optimised at O3 (the rest: O0, fast code generation) */
    int nunique;          /* kernels new to the runner: compiled or loaded from the cache */
    int ncached;          /* of which found in the persistent cache */
    int nshared;          /* kernels sharing code made earlier (identical structure) */
    double compile_s;     /* fusion + scheduling + IR + O3 + machine code */
    double compile_cpu_s; /* the same in CPU time of the process (all compile threads) */
    double opt_s;         /* of which the LLVM optimiser (O3, or O0 for a graph run once) */
    double codegen_s;     /* of which machine code generation (LLJIT) */
    bool fallback;        /* runs on the interpreter */
    char reason[192];     /* why, when it does */
    /* the memory plan (compiled graphs) */
    int64_t arena_bytes; /* peak of live intermediates */
    int64_t naive_bytes; /* intermediates without reuse */
    int ninplace;        /* values computed in the storage of another */
    int ndonated;        /* of which outputs in donated inputs */
    int nparallel;       /* kernels split across threads (with this runner's pool) */
    int64_t allocs;      /* tensors this graph's compiled runs allocated (outputs not
                            offered or donated by the executor) */
} LlvmGraphInfo;

/* A runner named "cpu". On failure (no usable LLVM target) .run is NULL and
 * err says why. */
GraphRunner llvm_runner_new(const LlvmOptions *o, char *err, size_t errn);
void llvm_runner_free(GraphRunner *r);

/* Compile reports: graphs in the order they were first run; a pointer is
 * valid until the runner's next run. */
int llvm_runner_ngraphs(const GraphRunner *r);
const LlvmGraphInfo *llvm_runner_graph(const GraphRunner *r, int i);
const Graph *llvm_runner_graph_key(const GraphRunner *r, int i); /* compare only */
double llvm_runner_compile_seconds(const GraphRunner *r);        /* all graphs */
/* Allocations made by runs so far: the shared arena's (re)allocations plus
 * output tensors; a steady-state training loop adds none. */
int64_t llvm_runner_allocs(const GraphRunner *r);
int64_t llvm_runner_arena_bytes(const GraphRunner *r); /* the shared arena's size */
int llvm_runner_threads(const GraphRunner *r);

#endif
