/* The table of backends behind `--backend NAME`: the interpreter and the
 * LLVM CPU JIT, each with its runner constructor and op support query. */
#include "backend.h"

#include <string.h>

#include "llvm/llvm_backend.h"
#include "llvm/llvm_internal.h"

static bool interp_supports(OpKind op) {
    return (unsigned)op < OP_COUNT;
}

static GraphRunner interp_new(const BackendOptions *o, char *err, size_t errn) {
    (void)o;
    (void)err;
    (void)errn;
    return ir_interp_runner();
}

static void interp_free(GraphRunner *r) {
    (void)r;
}

static bool cpu_supports(OpKind op) {
    return (unsigned)op < OP_COUNT && llvm_op_table[op].how != LL_MISSING;
}

static GraphRunner cpu_new(const BackendOptions *o, char *err, size_t errn) {
    LlvmOptions lo = {o ? o->verbose : false, o ? o->log : NULL, o ? o->interp_runs : 0};
    return llvm_runner_new(&lo, err, errn);
}

static const Backend backends[] = {
    {"interp", "the reference interpreter (slow, exact)", interp_supports, interp_new, interp_free},
    {"cpu", "LLVM JIT for the host CPU (fused, vectorised kernels; OpenBLAS matmul)", cpu_supports,
     cpu_new, llvm_runner_free},
};

const Backend *cg_backend_find(const char *name) {
    for (size_t i = 0; name && i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i].name, name) == 0) return &backends[i];
    return NULL;
}

const Backend *cg_backend_list(int *n) {
    *n = (int)(sizeof backends / sizeof backends[0]);
    return backends;
}
