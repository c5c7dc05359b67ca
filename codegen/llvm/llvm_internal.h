/* Internal to the LLVM backend: the emission context shared by the op
 * table (llvm_ops.c), the math and random-number emitters (llvm_math.c),
 * the kernel emitter (llvm_emit.c) and the JIT (llvm_jit.c).
 *
 * Values in registers: f32 float, f64 double, i32, i64, bool i1 (a byte in
 * memory). Every helper builds at the builder's current position and
 * returns NULL after recording a reason in cg->error when it cannot lower
 * something, so the runner falls back to the interpreter for that graph. */
#ifndef DFLOW_CODEGEN_LLVM_INTERNAL_H
#define DFLOW_CODEGEN_LLVM_INTERNAL_H

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "../kernel.h"

typedef struct {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef f32, f64, i1, i8, i32, i64, ptr, vd;
    char error[160]; /* first construct that could not be lowered ("" = none) */
    /* f32 sin/cos: when set (an i1 local of the kernel being emitted), they
     * take the polynomial path only and set this flag for arguments beyond
     * RT_VM_TRIG_MAX; when NULL they branch to libm for those (exact) */
    LLVMValueRef trig_flag;
} LlvmCG;

/* A fresh module `name` in ctx, with a builder and the types above. */
void llvm_cg_init(LlvmCG *cg, LLVMContextRef ctx, const char *name);

/* ---- types and constants ---- */
LLVMTypeRef llvm_reg_type(LlvmCG *cg, DType dt);                    /* register type (bool: i1) */
LLVMTypeRef llvm_mem_type(LlvmCG *cg, DType dt);                    /* memory type (bool: i8) */
LLVMValueRef llvm_const(LlvmCG *cg, DType dt, double f, int64_t i); /* floats use f, the rest i */
/* Calls an overloaded intrinsic such as "llvm.fma" (over = its overload types). */
LLVMValueRef llvm_intrinsic(LlvmCG *cg, const char *name, LLVMTypeRef *over, unsigned nover,
                            LLVMValueRef *args, unsigned nargs);
bool llvm_fail(LlvmCG *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the per-op table: the scalar lowering of each op ---- */
typedef enum {
    LL_MISSING = 0, /* a hole in the table: the coverage test fails on it */
    LL_SCALAR,      /* emit() builds the scalar op inside the loop body */
    LL_INDEX,       /* leaf or movement: already index arithmetic in the kernel plan */
    LL_LOOP,        /* reduction: a loop structure of the kernel emitter */
    LL_BLAS,        /* matmul: a cblas_?gemm call (integer: a reduction loop) */
    LL_RNG,         /* random: Philox emitted inline (llvm_math.c) */
    LL_STRUCT,      /* input, scatter_add: handled by the runner / kernel emitter */
} LlvmLowering;

/* v: the source values; sdt: the dtype of source 0; out: the result dtype. */
typedef LLVMValueRef (*LlvmOpFn)(LlvmCG *cg, OpKind op, DType out, DType sdt, LLVMValueRef *v);

typedef struct {
    LlvmLowering how;
    LlvmOpFn emit; /* LL_SCALAR only */
} LlvmOpEntry;

extern const LlvmOpEntry llvm_op_table[];

/* ---- llvm_math.c ---- */
LLVMValueRef llvm_exp_f32(LlvmCG *cg, LLVMValueRef x);
LLVMValueRef llvm_log_f32(LlvmCG *cg, LLVMValueRef x);
LLVMValueRef llvm_sin_f32(LlvmCG *cg, LLVMValueRef x);
LLVMValueRef llvm_cos_f32(LlvmCG *cg, LLVMValueRef x);
/* Element `index` (i64) of (seed i64, stream) as rng_uniform / rng_normal of dtype dt. */
LLVMValueRef llvm_rng(LlvmCG *cg, OpKind op, DType dt, LLVMValueRef seed, LLVMValueRef index,
                      uint32_t stream);
/* The four elements 4 block .. 4 block + 3 of the stream at once (same bits
 * as four llvm_rng calls); false (with cg->error) for a dtype it cannot draw. */
bool llvm_rng_block(LlvmCG *cg, OpKind op, DType dt, LLVMValueRef seed, LLVMValueRef block,
                    uint32_t stream, LLVMValueRef out[4]);
/* The four Philox words of block `block` (i64) of (seed i64, stream i32). */
void llvm_philox_block(LlvmCG *cg, LLVMValueRef seed, LLVMValueRef block, LLVMValueRef stream,
                       LLVMValueRef w[4]);
LLVMValueRef llvm_fresh_seed(LlvmCG *cg, LLVMValueRef seed, LLVMValueRef t, uint32_t k);

/* ---- llvm_emit.c ---- */
/* A kernel task: runs part [lo, hi) of the kernel's parallel range
 * (KernelPlan.par_n) with the buffer pointers bufs[]; returns bit 0 when an
 * index check failed, bit 1 when (a fast variant) it must be rerun exactly. */
typedef int32_t (*LlvmTaskFn)(void **bufs, int64_t lo, int64_t hi);
/* Builds the kernels of p into cg->mod with the table `<name>_tab`: per
 * kernel in execution order, its LlvmTaskFn and its exact variant's (NULL
 * unless the kernel has f32 sin/cos, see llvm_kernel_has_trig). Buffer
 * pointers for an in-place kernel: bufs[out_buf] also serves inplace_buf. */
bool llvm_emit_program(LlvmCG *cg, const KernelProgram *p, const char *name);
/* f32 sin or cos in the kernel: it has an exact variant, and may be rerun. */
bool llvm_kernel_has_trig(const KernelPlan *k);

/* ---- llvm_jit.c ---- */
typedef struct {
    LLVMOrcLLJITRef jit;
    LLVMTargetMachineRef tm; /* host CPU name and features: O3 and the data layout */
    LLVMOrcThreadSafeContextRef tsctx;
    double opt_s, codegen_s; /* time spent in O3 and in machine code generation, all modules */
} LlvmJit;

/* A target machine at O3 (PIC; the JIT's code model when jit) for cpu, an
 * LLVM CPU name with the features it implies, or for NULL this host's CPU
 * name and feature string. NULL with the reason in err. */
LLVMTargetMachineRef llvm_target_machine(const char *cpu, bool jit, char *err, size_t errn);
/* Sets m's triple and data layout from tm, verifies it (DFLOW_VERIFY) and
 * runs default<O3> (full) or default<O0>, adding the time to *opt_s (may be
 * NULL). m stays the caller's. Graphs run once (Graph.once) get O0: half
 * the compile time of O1 for a Philox initialiser, still far faster to run
 * than the interpreter; the JIT and `dflow build` choose alike, so both
 * produce the same bits. */
bool llvm_optimize_module(LLVMTargetMachineRef tm, LLVMModuleRef m, bool full, double *opt_s,
                          char *err, size_t errn);
/* The optimisation level of a graph's kernels (see llvm_optimize_module). */
static inline bool llvm_full_opt(const Graph *g) { return !g->once; }
bool llvm_jit_init(LlvmJit *j, char *err, size_t errn);
void llvm_jit_dispose(LlvmJit *j);
LLVMContextRef llvm_jit_context(LlvmJit *j);
/* Takes ownership of m: llvm_optimize_module, then hands it to the JIT and
 * looks up entry. */
bool llvm_jit_compile(LlvmJit *j, LLVMModuleRef m, bool full, const char *entry, void **fn,
                      char *err, size_t errn);

#endif
