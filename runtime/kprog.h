/* Compiled graphs at run time: what running a graph's kernels needs, and
 * nothing of the compiler.
 *
 * A backend lowers a graph to kernels (machine-code tasks) and a memory plan;
 * RtKProg is that result flattened: per buffer where its storage comes from
 * (a graph input, an offset in the one arena of intermediates, or an output
 * tensor, possibly computed in a donated input), per kernel its parallel range
 * and task functions. The LLVM JIT builds one in memory; `dflow build` writes
 * it into the executable's image (rt_kprog_write) and the executable reads it
 * back (rt_kprog_read) and binds the tasks it was linked with.
 *
 * Running (rt_kprog_run): point every buffer at its storage (outputs go into
 * the tensors the caller offers, into a donated input the plan chose, or into
 * fresh tensors), run the kernels in order, each over the thread pool when it
 * was given a grain, then hand the outputs over, copying a value returned
 * twice or an input returned without being donated. A kernel whose plan
 * writes into a donated input that this call did not donate gets a copy of
 * that input to update instead. Nothing is allocated in a run beyond
 * output tensors the caller did not offer (and the arena, once).
 * Ownership: RtKExec owns the arena; RtKProg's arrays belong to whoever
 * built it (an arena of the compiler, or the loaded image). */
#ifndef DFLOW_RUNTIME_KPROG_H
#define DFLOW_RUNTIME_KPROG_H

#include <stdbool.h>
#include <stdint.h>

#include "bytes.h"
#include "tensor.h"
#include "threadpool.h"

/* One kernel task: runs part [lo, hi) of the kernel's parallel range with
 * the buffer pointers bufs[]; returns bit 0 when an index check failed, bit
 * 1 when (a fast variant) it must be rerun by the exact variant. */
typedef int32_t (*RtTaskFn)(void **bufs, int64_t lo, int64_t hi);

typedef enum {
    RK_INPUT,  /* graph input `input`: the caller's storage */
    RK_TEMP,   /* an intermediate at `offset` in the arena */
    RK_OUTPUT, /* a graph output (first served output: out_bufs) */
    RK_EMPTY,  /* an intermediate of no bytes */
} RtKBufKind;

typedef struct {
    uint8_t kind;   /* RtKBufKind */
    bool inplace;   /* RK_OUTPUT with a donor: the kernel updates the donor's values */
    int32_t input;  /* RK_INPUT: the graph input; RK_OUTPUT: the donor input, or -1 */
    int64_t offset; /* RK_TEMP: byte offset in the arena */
} RtKBuf;

typedef struct {
    int64_t par_n; /* the parallel range */
    double work;   /* estimated element operations of the whole kernel */
    bool matmul;   /* a BLAS call: one chunk per thread (packing cost) */
    int64_t grain; /* chunk grain over the pool; 0 = one task (rt_kprog_set_grains) */
} RtKKernel;

typedef struct {
    int ninputs, noutputs, nbufs, nkernels;
    RtKBuf *bufs;
    RtKKernel *kernels;
    int32_t *out_bufs; /* per output: the buffer holding it */
    DType *out_dtype;  /* per output, for fresh tensors */
    Shape *out_shape;
    int64_t arena_bytes;
    RtTaskFn *tab; /* 2 per kernel: the task and its exact variant (or NULL) */
    /* per-run scratch (rt_kprog_scratch) */
    void **ptrs;
    RtTensor **store;
    int32_t *first_out;
    bool *claimed;
    RtTensor **fresh;
    double *kernel_s; /* seconds per kernel over all runs (when profiling) */
} RtKProg;

/* The state runs share: the pool, the arena of intermediates (graphs run
 * one at a time), counters. Zero-initialise, set pool/poison/profile. */
typedef struct {
    RtPool *pool;
    bool poison;  /* fill the arena and fresh outputs with NaN bytes (tests) */
    bool profile; /* time every kernel into kernel_s */
    void *arena;
    int64_t arena_cap;
    int64_t allocs;   /* arena (re)allocations + fresh output tensors */
    int blas_threads; /* what OpenBLAS was last told (0 = not yet) */
    /* Optional (NULL: none, no cost): called after each kernel k with the
     * buffer pointers of the run; false stops the run with RK_STOPPED (the
     * hook reports why). --check-numerics scans outputs with it. */
    bool (*after_kernel)(void *ctx, int k, void *const *bufs);
    void *after_ctx;
} RtKExec;

typedef enum { RK_OK, RK_OOM, RK_CHECK, RK_STOPPED } RtKStatus;

/* Bytes of scratch a program needs, and carving it out of mem (8-aligned). */
size_t rt_kprog_scratch_bytes(const RtKProg *p);
void rt_kprog_scratch(RtKProg *p, void *mem);
/* Chunk grains for a pool of `threads` threads (work-based). Returns how
 * many kernels are split. */
int rt_kprog_set_grains(RtKProg *p, int threads);

/* Runs p: in[0..ninputs) (types already checked by the caller); donated as
 * in GraphRunner.run_reuse (NULL = none); out[j] on entry the offered tensor
 * or NULL, on success the result. RK_CHECK: kernel *bad failed an index
 * check. RK_OOM: output *bad could not be allocated, or (*bad == -1) the
 * arena of p->arena_bytes. RK_STOPPED: x->after_kernel refused kernel
 * *bad. On failure every out[j] is NULL. */
RtKStatus rt_kprog_run(RtKExec *x, RtKProg *p, RtTensor *const *in, const bool *donated,
                       RtTensor **out, int *bad);
/* Tells OpenBLAS how many threads to use (cached). */
void rt_kexec_blas_threads(RtKExec *x, int n);
void rt_kexec_free(RtKExec *x); /* the arena; not the pool */

/* The image form of p (without tasks and scratch). */
void rt_kprog_write(const RtKProg *p, RtBuf *b);
/* A shape in the image form (rank, dims); reading fails r on a rank above
 * RT_MAX_RANK or dims whose product overflows. */
void rt_buf_shape(RtBuf *b, const Shape *s);
Shape rt_read_shape(RtReader *r);
/* Reads a program written by rt_kprog_write; arrays are allocated with
 * rt_reader_alloc (the reader's arena) and scratch is carved. tab is left
 * NULL for the caller to bind to the tasks it was linked with. False on a
 * malformed image (indices out of range included). */
bool rt_kprog_read(RtReader *r, RtKProg *p);

#endif
