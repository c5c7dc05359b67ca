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

#include "../../runtime/bytes.h"
#include "../kernel.h"
#include "llvm_cache.h"

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
    /* the kernel is compiled at LLVM_OPT_FAST: prefer code that is cheap to
       compile among forms with the same bits (random maps draw per element) */
    bool fast;
} LlvmCG;

/* A fresh module `name` in ctx, with a builder and the types above. */
void llvm_cg_init(LlvmCG *cg, LLVMContextRef ctx, const char *name);

/* ---- types and constants ---- */
LLVMTypeRef llvm_reg_type(LlvmCG *cg, DType dt);                    /* register type (bool: i1) */
LLVMTypeRef llvm_mem_type(LlvmCG *cg, DType dt);                    /* memory type (bool: i8) */
LLVMValueRef llvm_const(LlvmCG *cg, DType dt, double f, int64_t i); /* floats use f, the rest i */
bool llvm_fail(LlvmCG *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- llvm_call.c: calls from emitted code ---- */
/* The module's declaration of the external function `name` of type fty
 * (added on first use). */
LLVMValueRef llvm_declare(LlvmCG *cg, const char *name, LLVMTypeRef fty);
/* Calls an overloaded intrinsic such as "llvm.fma" (over = its overload types). */
LLVMValueRef llvm_intrinsic(LlvmCG *cg, const char *name, LLVMTypeRef *over, unsigned nover,
                            LLVMValueRef *args, unsigned nargs);
/* An intrinsic of one or two operands overloaded on x's type ("llvm.fabs", "llvm.pow"). */
LLVMValueRef llvm_intrinsic1(LlvmCG *cg, const char *name, LLVMValueRef x);
LLVMValueRef llvm_intrinsic2(LlvmCG *cg, const char *name, LLVMValueRef x, LLVMValueRef y);
/* double name(double) from libm (a nounwind declaration). */
LLVMValueRef llvm_call_libm(LlvmCG *cg, const char *name, LLVMValueRef x);

/* ---- the per-op table: the scalar lowering of each op ---- */
typedef enum {
    LL_MISSING = 0, /* a hole in the table: the coverage test fails on it */
    LL_SCALAR,      /* emit() builds the scalar op inside the loop body */
    LL_INDEX,       /* leaf or movement: already index arithmetic in the kernel plan */
    LL_LOOP,        /* reduction: a loop structure of the kernel emitter */
    LL_BLAS,        /* matmul: a cblas_?gemm call (integer: a reduction loop) */
    LL_RNG,         /* random: Philox emitted inline (llvm_math.c) */
    LL_STRUCT,      /* input, scatter_add, library calls: handled by the runner / kernel
                       emitter */
    LL_CALL,        /* order ops: a kernel that calls runtime/order.h's routine */
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
/* The buffers kernel k takes as arguments, ascending (an in-place input
 * shares the output's and is left out); returns how many, -1 out of memory. */
int llvm_kernel_params(const KernelProgram *p, const KernelPlan *k, int *out);
/* Kernel k of p as the external function `i32 name(ptr arg..., i64 lo, i64 hi)`
 * over its llvm_kernel_params buffers, and `name`_x, its exact variant, when
 * it has f32 sin/cos (llvm_kernel_has_trig). Its code depends only on the
 * kernel's structure (llvm_kernel_key), so one copy serves every kernel of
 * the same key. */
bool llvm_emit_kernel(LlvmCG *cg, const KernelProgram *p, const KernelPlan *k, const char *name);
/* A program's glue: per kernel a task (LlvmTaskFn) that loads the kernel's
 * buffers from bufs[] and calls syms[2 i] (syms[2 i + 1]: the exact variant,
 * or NULL), and the constant table `name`_tab of those tasks, two per
 * kernel in execution order (NULL for a missing exact variant). */
bool llvm_emit_glue(LlvmCG *cg, const KernelProgram *p, const char *const *syms, const char *name);
/* f32 sin or cos in the kernel: it has an exact variant, and may be rerun. */
bool llvm_kernel_has_trig(const KernelPlan *k);

/* ---- llvm_kernel_key.c ---- */
/* Appends to b the structural key of kernel k of p: equal keys, equal IR
 * (see the file). False when out of memory. */
bool llvm_kernel_key(const KernelProgram *p, const KernelPlan *k, RtBuf *b);

/* ---- llvm_jit.c ---- */
/* How hard a kernel is optimised (chosen per kernel by llvm_plan_graph from
 * its expected benefit, never from time measured): FAST runs default<O0>
 * and the fast instruction selector (LLVMCodeGenLevelNone), about ten
 * times cheaper to compile than FULL, default<O3> with the aggressive code
 * generator (the vectorisers). The JIT and `dflow build` use the same
 * choice, so both produce the same bits. */
typedef enum { LLVM_OPT_FAST, LLVM_OPT_FULL, LLVM_OPT_COUNT } LlvmOpt;
const char *llvm_opt_name(LlvmOpt o); /* "O0" or "O3" */

typedef struct LlvmKComp LlvmKComp;

typedef struct {
    LLVMOrcLLJITRef jit;
    LLVMTargetMachineRef tm; /* host CPU name and features: O3 and the data layout */
    LLVMOrcThreadSafeContextRef tsctx;
    double opt_s, codegen_s; /* time spent in O3 and in machine code generation, all modules */
    int nobjects;            /* object files linked */
} LlvmJit;

/* A target machine at opt (PIC; the JIT's code model when jit) for cpu, an
 * LLVM CPU name with the features it implies, or for NULL this host's CPU
 * name and feature string. NULL with the reason in err. */
LLVMTargetMachineRef llvm_target_machine(const char *cpu, bool jit, LlvmOpt opt, char *err,
                                         size_t errn);
/* Sets m's triple and data layout from tm and verifies it (DFLOW_VERIFY). */
bool llvm_prepare_module(LLVMTargetMachineRef tm, LLVMModuleRef m, char *err, size_t errn);
/* llvm_prepare_module, then runs the pipeline of opt, adding the time to
 * *opt_s (may be NULL). m stays the caller's. */
bool llvm_run_passes(LLVMTargetMachineRef tm, LLVMModuleRef m, LlvmOpt opt, double *opt_s,
                     char *err, size_t errn);
/* llvm_run_passes at FULL (full) or FAST. */
bool llvm_optimize_module(LLVMTargetMachineRef tm, LLVMModuleRef m, bool full, double *opt_s,
                          char *err, size_t errn);
bool llvm_jit_init(LlvmJit *j, char *err, size_t errn);
void llvm_jit_dispose(LlvmJit *j);
LLVMContextRef llvm_jit_context(LlvmJit *j);
/* Takes ownership of m: llvm_optimize_module, then hands it to the JIT and
 * looks up entry. */
bool llvm_jit_compile(LlvmJit *j, LLVMModuleRef m, bool full, const char *entry, void **fn,
                      char *err, size_t errn);
/* Links n bytes of object code (copied) into the JIT. */
bool llvm_jit_add_object(LlvmJit *j, const void *obj, size_t n, char *err, size_t errn);
/* The address of a linked symbol (linking its object on first use). */
bool llvm_jit_lookup(LlvmJit *j, const char *name, void **addr, char *err, size_t errn);

/* ---- llvm_kcomp.c: compiling kernels once, in parallel, through the cache ---- */
typedef struct {
    int nkernels;            /* kernels asked for */
    int nreused;             /* served by code compiled earlier in this process (dedup) */
    int nloaded;             /* unique kernels new to this process found in the disk cache */
    int ncompiled;           /* unique kernels compiled */
    int nthreads;            /* compile threads used */
    double opt_s, codegen_s; /* of the compiled ones, summed over threads */
} LlvmKStats;

/* One unique kernel's code. */
typedef struct {
    char sym[2][40]; /* its function and its exact variant's ("" when none) */
    void *obj; /* its object code, new ones only, until the caller takes it (frees it, sets NULL) */
    size_t nobj;
    void *addr[2]; /* the JIT's: the functions once linked */
} LlvmKCode;

/* A kernel compiler for cpu (NULL: the host) and the JIT's code model or
 * not, on up to threads threads (<= 0: the online cores), with cache (may
 * be NULL; not owned). NULL with the reason in err. */
LlvmKComp *llvm_kcomp_new(const char *cpu, bool jit, LlvmCache *cache, int threads, char *err,
                          size_t errn);
void llvm_kcomp_free(LlvmKComp *c);
/* Makes code for every kernel of p at opts[i]: kernels whose structural
 * key and level match code made before (in any program) share it; the
 * others are emitted, keyed by their IR, and loaded from the cache or
 * compiled, spread over the threads. code[i] receives kernel i's code. The
 * machine code depends on nothing but the kernel, its level and the target,
 * so results are the same whatever the threads and the cache did. */
bool llvm_kcomp_program(LlvmKComp *c, const KernelProgram *p, const uint8_t *opts, LlvmKCode **code,
                        LlvmKStats *st, char *err, size_t errn);
/* Compiles m (in llvm_kcomp_context; taken) at FAST through the cache: a
 * malloc'ed object in *obj. */
bool llvm_kcomp_module(LlvmKComp *c, LLVMModuleRef m, void **obj, size_t *n, LlvmKStats *st,
                       char *err, size_t errn);
LLVMContextRef llvm_kcomp_context(LlvmKComp *c); /* the calling thread's, for glue */

#endif
