/* Planning one graph for the LLVM backend, shared by the JIT (llvm_runner.c)
 * and `dflow build` (llvm_aot.c): fusion plan -> memory plan (with the
 * inputs the caller donates) -> kernel plans with the plan's in-place
 * choices -> the run-time program (runtime/kprog.h) that places buffers and
 * calls the kernels, and per kernel its optimisation level. Everything lives in the caller's arena;
 * the task table (kp.tab) is left for the caller to bind once the kernels are compiled. */
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
    uint8_t *opts; /* per kernel its LlvmOpt (llvm_kernel_opt) */
} LlvmPlan;

/* How hard kernel k of graph g is worth optimising, from its expected
 * benefit: the work it saves over all the graph's expected runs (1 for a
 * graph run outside loops, LLVM_LOOP_RUNS otherwise) against what O3 costs
 * to compile. Constants measured once, never timed at run time: the choice
 * is a function of the program alone, the same in the JIT and `dflow build`. */
#define LLVM_LOOP_RUNS 1000.0
int llvm_kernel_opt(const Graph *g, const KernelPlan *k);
/* Expected seconds to compile p's kernels at opts (every kernel counted,
 * shared or not) and for the interpreter to run g once, from the same
 * fixed model: what `--backend auto` compares (times Graph.runs). */
double llvm_compile_estimate_s(const KernelProgram *p, const uint8_t *opts);
double llvm_interp_estimate_s(const Graph *g);

/* False with the reason in why (the graph then runs on the interpreter, or
 * `dflow build` refuses it). */
bool llvm_plan_graph(const Graph *g, const bool *donated, Arena *a, LlvmPlan *out, char *why,
                     size_t whyn);

/* Appends p's blob in a program image (ir/module_image.h): its run-time
 * program, then per kernel where a failed index check points and what it
 * says (cli/built/runner.c reads it back). `dflow build` and the image
 * fuzzer's seeds write it. */
void llvm_plan_write_image(const LlvmPlan *p, RtBuf *b);

#endif
