/* --check-numerics for compiled graphs (ir/numerics.h).
 *
 * llvm_numerics_after_kernel is runtime/kprog's after_kernel hook: it scans
 * kernel k's output; at the first NaN or Inf it re-evaluates the kernel's
 * fused ops on the interpreter, from the kernel's input buffers (still in
 * place), in node order, and names the first op whose value is not finite
 * -- the op the interpreter would have named. When that cannot be done (the
 * kernel updated one of its inputs in place, or the re-evaluation finds
 * nothing: rounding), the kernel's root op is named. */
#ifndef DFLOW_CODEGEN_LLVM_NUMERICS_H
#define DFLOW_CODEGEN_LLVM_NUMERICS_H

#include "../../ir/numerics.h"
#include "../kernel.h"

typedef struct {
    const KernelProgram *prog;
    const NumericsCheck *check;
    DiagList *d;
} LlvmNumerics;

/* ctx: an LlvmNumerics. False (with the error in ctx->d) at a NaN or Inf. */
bool llvm_numerics_after_kernel(void *ctx, int k, void *const *bufs);

#endif
