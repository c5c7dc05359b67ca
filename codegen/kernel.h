/* Kernel plans: the backend-neutral description of how a graph runs.
 *
 * schedule.c lowers each fusion group (passes/fuse.h) once into a
 * KernelPlan: a loop nest over an iteration space, a small SSA list of
 * scalar instructions evaluated at each point of it (loads through index
 * expressions, the elementwise ops of ops.def, Philox draws, index
 * arithmetic), the value stored or accumulated there and the flat index it
 * goes to; or a BLAS call over strided views for a float matmul. Backends
 * (codegen/llvm, later CUDA) render plans with thin per-op tables and never
 * look at movement ops: broadcast, permute, slice, reshape, pad, concat and
 * gather are already index arithmetic here.
 *
 * Index arithmetic uses the same ops as data (OP_ADD, OP_MUL, OP_DIV,
 * OP_MOD, OP_MIN, OP_MAX, OP_LT, OP_WHERE, ...) on DT_I64 with non-negative
 * operands and constant positive divisors, so a backend needs one table. */
#ifndef DFLOW_CODEGEN_KERNEL_H
#define DFLOW_CODEGEN_KERNEL_H

#include <stdio.h>

#include "../ir/ir.h"
#include "../passes/fuse.h"

typedef enum {
    KI_LOOP,       /* i64: the loop variable of iteration axis `axis` */
    KI_CONST,      /* a constant of dtype dt: c.f for floats, c.i for ints and bool */
    KI_LOAD,       /* element src[0] (i64) of buffer `buf` (dtype dt = the buffer's) */
    KI_OP,         /* elementwise `op` of ops.def over src[]; result dtype dt */
    KI_RNG,        /* `op` RNG_UNIFORM/RNG_NORMAL: element src[1] (i64, wraps as u64)
                      of the stream `stream` of seed src[0]; dtype dt */
    KI_FRESH_SEED, /* i64: fresh seed `stream` (= attr k) of step src[1], run seed src[0] */
    KI_REDUCE,     /* a row phase: `op` (SUM, REDUCE_MAX, REDUCE_MIN) of src[0] over the
                      loops of phases[axis]; dtype dt (= src[0]'s). Its value depends on the
                      loops src[0] uses other than the phase's own, and a backend computes
                      it once per point of those, in its own loop nest, before use */
} KInstrKind;

typedef struct {
    KInstrKind kind;
    OpKind op;
    DType dt;
    int nsrc;
    int src[3];
    int axis;
    int buf;
    uint32_t stream;
    union {
        double f;
        int64_t i;
    } c;
} KInstr;

/* A row phase's loops: axes first_axis .. first_axis + rank - 1 of the
 * kernel's loop variables (after its `rank` main axes), with extents dims
 * (all >= 1: an empty row is folded to the reduction's identity). */
typedef struct {
    int ins; /* its KI_REDUCE instruction */
    int first_axis;
    int rank;
    int64_t dims[IR_MAX_RANK];
    /* A map whose value recomputes this phase's summand at the point of the
     * output row the phase visits (a softmax's exp(x - max)) may keep it
     * instead: the phase stores its summand (src[0] of ins) to out_buf at
     * stash_at (an i64 instruction of the phase's scope), and the map loads
     * out_buf at out_index in place of instruction stash_main. -1 when not
     * applicable; at most one phase per kernel has it. A backend uses it only
     * when no later read of an input sharing out_buf (inplace_buf) sees it. */
    int stash_at, stash_main;
} KPhase;

typedef enum {
    KP_MAP,     /* out[out_index] = value at every point */
    KP_REDUCE,  /* out[out_index] = red_op over the red_axes of value */
    KP_MATMUL,  /* BLAS gemm per batch matrix (float dtypes) */
    KP_SCATTER, /* out = 0; out[out_index] += value at every point, in C order */
    KP_ORDER,   /* out = dflow_rt_order(red_op, red_axes as its flag) of the buffer that
                   the plan's one KI_LOAD reads, seen as dims[0] x dims[1] x dims[2]
                   (runtime/order.h); a task computes the outer rows [lo, hi) */
    KP_CALL,    /* out = rt_linalg_call(call.fn, ...) over whole buffers (one task) */
} KPlanKind;

/* A library call (runtime/linalg.h): out_buf = fn over the dense row-major
 * buffers a_buf and b_buf (-1 when the op has one operand); its failure
 * (a singular matrix) fails the run like an index check, with the reason
 * kept by the runtime (rt_linalg_error_text). */
typedef struct {
    int32_t fn; /* RtLaFn */
    int a_buf, b_buf;
    int64_t batch, m, n, k;
} KCall;

/* C[b] (M,N, contiguous) = op(A[b]) (M,K) @ op(B[b]) (K,N), op = transpose
 * when trans_*; A[b] starts at a_off + sum b_i * a_bstride[i] elements of
 * buffer a_buf. With accumulate, C is first set to the plan's value at
 * every point of the loop nest (rank, dims: C's shape; out_index), and
 * then C = alpha * op(A) op(B) + C (beta 1; alpha is +1 or -1). */
typedef struct {
    bool accumulate;
    double alpha;
    int a_buf, b_buf;
    int64_t a_off, b_off;
    bool trans_a, trans_b;
    int64_t lda, ldb;
    int64_t M, N, K;
    int batch_rank;
    int64_t batch_dims[IR_MAX_RANK];
    int64_t a_bstride[IR_MAX_RANK], b_bstride[IR_MAX_RANK];
} KMatmul;

typedef struct {
    int id; /* = the fusion group's id */
    const FusionGroup *group;
    KPlanKind kind;
    int out_buf;
    DType out_dt;
    int64_t out_numel;
    /* the iteration space (C order; rank 0 = one point) */
    int rank;
    int64_t dims[IR_MAX_RANK];
    uint32_t red_axes; /* KP_REDUCE: the loop axes reduced */
    OpKind red_op;     /* KP_REDUCE: SUM, REDUCE_MAX, REDUCE_MIN or ARGMAX (one axis);
                          KP_ORDER: CUMSUM, ARGSORT or COMPONENTS (red_axes: its flag) */
    KInstr *ins;
    int nins;
    /* row phases (passes/fuse.h), in instruction order; their loops are axes
       rank .. naxes - 1 (naxes - rank <= 64) */
    KPhase *phases;
    int nphases;
    int naxes;
    int value;     /* instruction: the value of a point */
    int out_index; /* instruction: where it goes in out_buf */
    int *checks;   /* bool instructions that must hold at every point (gather/scatter
                      index in range); a failing one makes the run fail */
    int nchecks;
    const Node *check_node; /* whose location a failed check reports */
    KMatmul mm;
    KCall call;
    /* Splitting across threads: a task runs the part [lo, hi) of the range
     * par_n: loop axis par_axis of the iteration space (a map's, or a kept
     * axis of a reduction: each output element is computed by one task, in
     * the same order at any thread count; with row phases, an axis every
     * outermost phase depends on, so each row is one task's), or for KP_MATMUL the rows
     * (par_axis 0) or columns (1) of every C matrix. par_axis -1: one task
     * (par_n 1). work estimates the kernel's cost in element operations. */
    int par_axis;
    int64_t par_n;
    double work;
    /* an input buffer that shares out_buf's storage (an in-place update
       chosen by the memory plan; its loads are at out_index), or -1; set by
       the backend before emission */
    int inplace_buf;
} KernelPlan;

typedef enum {
    KB_INPUT,  /* graph input `input`, provided by the caller */
    KB_TEMP,   /* an intermediate */
    KB_OUTPUT, /* a root that is (also) a graph output */
} KBufKind;

typedef struct {
    const Node *node;
    DType dt;
    Shape shape;
    KBufKind kind;
    int input;
} KBuffer;

typedef struct {
    const Graph *graph;
    const FusionPlan *fusion;
    KBuffer *bufs;
    int nbufs;
    KernelPlan *kernels; /* in execution order */
    int nkernels;
    int *out_bufs; /* per graph output: the buffer holding it */
    int *buf_of;   /* per node id: its buffer, or -1 */
} KernelProgram;

/* Lowers every group of fp into a kernel plan, in arena a. Returns NULL
 * when the graph uses something no plan can express (f16/bf16 arithmetic),
 * with the reason in why (e.g. "f16 arithmetic in %7"); NULL with "out of
 * memory" otherwise. */
KernelProgram *cg_schedule(const Graph *g, const FusionPlan *fp, Arena *a, char *why, size_t whyn);

/* Per instruction of k: the main loop axes (bit a: KI_LOOP a, a < rank)
 * and the phase loop axes (bit j: axis rank + j) its value depends on; a
 * KI_REDUCE hides its own phase's axes. Fills main[] and phase[] (k->nins
 * entries each). */
void cg_kernel_deps(const KernelPlan *k, uint32_t *main, uint64_t *phase);

/* A readable dump of the plans (for debugging and tests). */
void cg_program_print(const KernelProgram *p, FILE *out);

#endif
