/* The GraphRunner of a built executable: each graph of the program image
 * runs the kernels `dflow build` compiled for it (runtime/kprog.h), bound to
 * the task tables the executable was linked with. */
#ifndef DFLOW_CLI_BUILT_RUNNER_H
#define DFLOW_CLI_BUILT_RUNNER_H

#include "ir/exec.h"
#include "runtime/kprog.h"

/* What --check-numerics names when a kernel's output is not finite. */
typedef struct {
    SrcLoc loc;     /* the kernel's root op */
    const char *op; /* its name */
    DType dt;       /* the output buffer's dtype, shape and index */
    Shape shape;
    int32_t buf;
} BuiltScan;

typedef struct {
    const Graph *g; /* its signature graph in the module read from the image */
    RtKProg prog;
    SrcLoc *check_loc;     /* per kernel: where a failed index check points */
    const char **check_op; /* per kernel: the op it names */
    BuiltScan *scan;       /* per kernel */
} BuiltGraph;

typedef struct {
    BuiltGraph *graphs; /* by image graph id */
    int n, cap;
    RtKExec x;
    Arena *arena;         /* set before reading: where the table grows */
    const SourceSet *src; /* set before reading: the image's source paths */
    /* --check-numerics: set before binding (NULL: off; the executor keeps
       its step current); the graph running and its diagnostics */
    NumericsCheck *numerics;
    const BuiltGraph *cur;
    DiagList *cur_d;
} BuiltRunner;

/* ir_image_read's read_graph callback (ctx: a zeroed BuiltRunner with arena
 * and src set): reads graph id's program and check locations. */
bool built_runner_read_graph(void *ctx, Graph *g, int id, RtReader *r);
/* Binds graph i to tabs[i], starts the pool and sizes the chunks for it;
 * with b->numerics set, every kernel's float output is scanned after it
 * runs and the first NaN or Inf stops the run naming the kernel's root op
 * (the JIT names the exact fused op by replaying it on the interpreter,
 * which an executable does not carry). */
GraphRunner built_runner_bind(BuiltRunner *b, void *const *tabs, int ntabs, int threads, char *err,
                              size_t errn);
void built_runner_free(BuiltRunner *b);

#endif
