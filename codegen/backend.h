/* Backends: the ways a graph can be run, chosen by name (`--backend`).
 *
 * A backend makes GraphRunners (ir/exec.h) for the module executor. "interp"
 * is the reference interpreter, "cpu" the LLVM JIT (codegen/llvm); "cuda"
 * joins later. Each backend keeps its own per-op table, derived from
 * ops.def and pinned to OP_COUNT; supports_op answers from it. */
#ifndef DFLOW_CODEGEN_BACKEND_H
#define DFLOW_CODEGEN_BACKEND_H

#include <stdio.h>

#include "../ir/exec.h"

typedef struct {
    bool verbose;    /* report compile times and interpreter fallbacks */
    FILE *log;       /* NULL = stderr */
    int interp_runs; /* compiled backends: interpret a graph's first runs (LlvmOptions) */
} BackendOptions;

typedef struct {
    const char *name;
    const char *doc;
    /* false when the backend cannot lower op at all (graphs using it fall
       back to the interpreter) */
    bool (*supports_op)(OpKind op);
    /* .run is NULL on failure, with the reason in err */
    GraphRunner (*runner_new)(const BackendOptions *o, char *err, size_t errn);
    void (*runner_free)(GraphRunner *r);
} Backend;

/* The backend called name, or NULL. */
const Backend *cg_backend_find(const char *name);
/* All backends; *n receives their count. */
const Backend *cg_backend_list(int *n);

#endif
