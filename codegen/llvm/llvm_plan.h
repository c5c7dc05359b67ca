/* Planning one graph for the LLVM backend, shared by the JIT (llvm_runner.c)
 * and `dflow build` (llvm_aot.c): fusion plan -> memory plan (with the
 * inputs the caller donates) -> kernel plans with the plan's in-place
 * choices -> the run-time program (runtime/kprog.h) that places buffers and
 * calls the kernels. Everything lives in the caller's arena; the task table
 * (kp.tab) is left for the caller to bind once the kernels are compiled. */
#ifndef DFLOW_CODEGEN_LLVM_PLAN_H
#define DFLOW_CODEGEN_LLVM_PLAN_H

#include "../../passes/memplan.h"
#include "../../runtime/kprog.h"
#include "../kernel.h"

typedef struct {
    FusionPlan *fusion;
    MemPlan *mem;
    KernelProgram *prog;
    RtKProg kp;
} LlvmPlan;

/* False with the reason in why (the graph then runs on the interpreter, or
 * `dflow build` refuses it). */
bool llvm_plan_graph(const Graph *g, const bool *donated, Arena *a, LlvmPlan *out, char *why,
                     size_t whyn);

#endif
