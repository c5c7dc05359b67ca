/* The LLVM side of compilation: host target machine, O3, and LLJIT.
 *
 * The target machine is built from the host triple, CPU name AND feature
 * string: the loop vectoriser only uses AVX-512 when the features say so
 * (the CPU name alone loses it, toolchain.md section 1). O3 runs through the
 * new pass manager (LLVMRunPasses "default<O3>") with that machine, so the
 * cost model sees the real vector width. The LLJIT gets its own copy of the
 * same machine description and resolves external symbols (cblas_sgemm,
 * libm's pow/exp/fmodf) from the running process, and the runtime's
 * rt_linalg_call by its address. One thread-safe context
 * holds every module of one runner. Errors come back as text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "../../runtime/linalg.h"
#include "../../runtime/order.h"
#include "llvm_internal.h"

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool take_error(LLVMErrorRef e, const char *what, char *err, size_t errn) {
    if (!e) return true;
    char *msg = LLVMGetErrorMessage(e);
    snprintf(err, errn, "%s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

const char *llvm_opt_name(LlvmOpt o) {
    return o == LLVM_OPT_FULL ? "O3" : "O0";
}

LLVMTargetMachineRef llvm_target_machine(const char *cpu_name, bool jit, LlvmOpt opt, char *err,
                                         size_t errn) {
    char *triple = LLVMGetDefaultTargetTriple();
    /* the host: its CPU name and its feature string; a named CPU: the
       features that name implies (x86-64-v3 = AVX2 and FMA, ...) */
    char *cpu = cpu_name ? LLVMCreateMessage(cpu_name) : LLVMGetHostCPUName();
    char *features = cpu_name ? LLVMCreateMessage("") : LLVMGetHostCPUFeatures();
    char *msg = NULL;
    LLVMTargetRef target;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(err, errn, "no LLVM target for %s: %s", triple, msg ? msg : "?");
        LLVMDisposeMessage(msg);
    } else {
        LLVMCodeGenOptLevel cgl =
            opt == LLVM_OPT_FULL ? LLVMCodeGenLevelAggressive : LLVMCodeGenLevelNone;
        tm = LLVMCreateTargetMachine(target, triple, cpu, features, cgl, LLVMRelocPIC,
                                     jit ? LLVMCodeModelJITDefault : LLVMCodeModelDefault);
        if (!tm) snprintf(err, errn, "cannot create a target machine for %s (%s)", triple, cpu);
    }
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    return tm;
}

bool llvm_jit_init(LlvmJit *j, char *err, size_t errn) {
    memset(j, 0, sizeof *j);
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
        snprintf(err, errn, "LLVM has no native target for this machine");
        return false;
    }
    j->tm = llvm_target_machine(NULL, true, LLVM_OPT_FULL, err, errn);
    LLVMTargetMachineRef jtm = j->tm ? llvm_target_machine(NULL, true, LLVM_OPT_FULL, err, errn)
                                     : NULL; /* consumed by the JIT builder */
    if (!jtm) {
        llvm_jit_dispose(j);
        return false;
    }
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
        jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(jtm));
    if (!take_error(LLVMOrcCreateLLJIT(&j->jit, jb), "cannot create the LLVM JIT", err, errn)) {
        j->jit = NULL;
        llvm_jit_dispose(j);
        return false;
    }
    LLVMOrcDefinitionGeneratorRef gen;
    if (!take_error(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
                        &gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL),
                    "cannot resolve process symbols", err, errn)) {
        llvm_jit_dispose(j);
        return false;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->jit), gen);
    /* The runtime functions kernels call (runtime/order.h, runtime/linalg.h) are
     * linked into this executable but not exported from it: define them by
     * address. */
    LLVMJITSymbolFlags fl = {LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable,
                             0};
    LLVMOrcCSymbolMapPair rt[] = {
        {LLVMOrcLLJITMangleAndIntern(j->jit, "dflow_rt_order"),
         {(LLVMOrcExecutorAddress)(uintptr_t)&dflow_rt_order, fl}},
        {LLVMOrcLLJITMangleAndIntern(j->jit, "rt_linalg_call"),
         {(LLVMOrcExecutorAddress)(uintptr_t)&rt_linalg_call, fl}},
    };
    if (!take_error(LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j->jit),
                                          LLVMOrcAbsoluteSymbols(rt, sizeof rt / sizeof rt[0])),
                    "cannot define the runtime's symbols", err, errn)) {
        llvm_jit_dispose(j);
        return false;
    }
    j->tsctx = LLVMOrcCreateNewThreadSafeContext();
    return true;
}

void llvm_jit_dispose(LlvmJit *j) {
    if (j->jit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->jit);
        if (e) LLVMConsumeError(e);
    }
    if (j->tsctx) LLVMOrcDisposeThreadSafeContext(j->tsctx);
    if (j->tm) LLVMDisposeTargetMachine(j->tm);
    memset(j, 0, sizeof *j);
}

LLVMContextRef llvm_jit_context(LlvmJit *j) {
    return LLVMOrcThreadSafeContextGetContext(j->tsctx);
}

bool llvm_prepare_module(LLVMTargetMachineRef tm, LLVMModuleRef m, char *err, size_t errn) {
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(m, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(m, td);
    LLVMDisposeTargetData(td);
#ifdef DFLOW_VERIFY
    char *msg = NULL;
    if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
        snprintf(err, errn, "internal error: invalid LLVM module: %.400s", msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return false;
    }
    LLVMDisposeMessage(msg);
#else
    (void)err;
    (void)errn;
#endif
    return true;
}

bool llvm_run_passes(LLVMTargetMachineRef tm, LLVMModuleRef m, LlvmOpt opt, double *opt_s,
                     char *err, size_t errn) {
    if (!llvm_prepare_module(tm, m, err, errn)) return false;
    double t0 = seconds();
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMErrorRef e = LLVMRunPasses(m, opt == LLVM_OPT_FULL ? "default<O3>" : "default<O0>", tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (opt_s) *opt_s += seconds() - t0;
    if (getenv("DFLOW_DUMP_LLVM"))
        LLVMDumpModule(m); /* debugging aid: the optimised IR on stderr */
    return take_error(e, "LLVM optimisation failed", err, errn);
}

bool llvm_optimize_module(LLVMTargetMachineRef tm, LLVMModuleRef m, bool full, double *opt_s,
                          char *err, size_t errn) {
    return llvm_run_passes(tm, m, full ? LLVM_OPT_FULL : LLVM_OPT_FAST, opt_s, err, errn);
}

bool llvm_jit_add_object(LlvmJit *j, const void *obj, size_t n, char *err, size_t errn) {
    char name[32];
    snprintf(name, sizeof name, "dflow-obj-%d", j->nobjects++);
    LLVMMemoryBufferRef mb = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, n, name);
    if (!mb) {
        snprintf(err, errn, "out of memory");
        return false;
    }
    return take_error(LLVMOrcLLJITAddObjectFile(j->jit, LLVMOrcLLJITGetMainJITDylib(j->jit), mb),
                      "cannot link an object into the JIT", err, errn);
}

bool llvm_jit_lookup(LlvmJit *j, const char *name, void **addr, char *err, size_t errn) {
    double t0 = seconds();
    LLVMOrcExecutorAddress a = 0;
    bool ok = take_error(LLVMOrcLLJITLookup(j->jit, &a, name), "JIT linking failed", err, errn);
    *addr = (void *)(uintptr_t)a;
    j->codegen_s += seconds() - t0;
    return ok;
}

bool llvm_jit_compile(LlvmJit *j, LLVMModuleRef m, bool full, const char *entry, void **fn,
                      char *err, size_t errn) {
    if (!llvm_optimize_module(j->tm, m, full, &j->opt_s, err, errn)) {
        LLVMDisposeModule(m);
        return false;
    }
    double t1 = seconds();
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, j->tsctx);
    if (!take_error(LLVMOrcLLJITAddLLVMIRModule(j->jit, LLVMOrcLLJITGetMainJITDylib(j->jit), tsm),
                    "cannot add the module to the JIT", err, errn))
        return false;
    LLVMOrcExecutorAddress addr = 0;
    if (!take_error(LLVMOrcLLJITLookup(j->jit, &addr, entry), "JIT compilation failed", err, errn))
        return false;
    *fn = (void *)(uintptr_t)addr;
    j->codegen_s += seconds() - t1;
    return true;
}
