/* `dflow build`: a module compiled ahead of time into a standalone executable.
 *
 * Every graph the host program runs is planned (llvm_plan.h) with the
 * inputs its call site donates, emitted, optimised at O3 for this host's CPU
 * and written as an object file; the module and the run-time programs go into
 * a program image (ir/module_image.h) assembled into the executable's
 * read-only data, next to a table of the graphs' task tables. The objects are
 * linked with the runtime library (libdflow_rt.a: runtime/, the executor and
 * the built executable's main) and the libraries it needs: no LLVM, no
 * compiler. The executable is tuned for the CPU it was built on, or for the
 * CPU named in the options (then it runs on any machine with that CPU's
 * features, and its reductions may round differently from `dflow run`'s). */
#ifndef DFLOW_CODEGEN_LLVM_AOT_H
#define DFLOW_CODEGEN_LLVM_AOT_H

#include <stdio.h>

#include "../../ir/module.h"

typedef struct {
    const char *output;     /* the executable to write */
    const char *rt_lib;     /* libdflow_rt.a */
    const char *cc;         /* the C compiler driver that links ("cc") */
    const char *link_flags; /* libraries and flags after the objects (BLAS, zlib, ...) */
    const char *work_dir;   /* an empty directory for the objects (the caller removes it) */
    const char *cpu;        /* an LLVM CPU name to compile for (x86-64-v3, ...); NULL: this host */
    bool verbose;           /* report each step on log */
    FILE *log;
} LlvmBuildOptions;

/* False with the reason in err (a graph that cannot be compiled, a failed
 * link with the linker's exit status). */
bool llvm_build_executable(Module *m, const SourceSet *src, const LlvmBuildOptions *o, char *err,
                           size_t errn);

#endif
