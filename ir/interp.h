/* The reference interpreter: evaluates a Graph on host tensors.
 *
 * Simple and obviously correct on purpose; it is the oracle every backend and
 * pass is tested against. Floating ops are computed in double and rounded to
 * the node's dtype; integer ops in int64 and wrapped to the node's width.
 * Matmul calls OpenBLAS (sgemm/dgemm). Intermediates are freed after their
 * last use. Runtime errors that depend on data (a gather index out of range)
 * become diagnostics at the node's location. */
#ifndef DFLOW_IR_INTERP_H
#define DFLOW_IR_INTERP_H

#include "ir.h"

/* inputs[i] feeds g->inputs[i] (dtype and shape must match; checked).
 * On success outputs[j] receives a new tensor for g->outputs[j] (caller
 * frees). On failure returns false, frees what it made, reports to diags. */
bool ir_interp_run(const Graph *g, RtTensor *const *inputs, RtTensor **outputs, DiagList *diags);
/* The same, and with c (--check-numerics, numerics.h) it fails at the first
 * NaN or Inf an op computes. */
struct NumericsCheck;
bool ir_interp_run_checked(const Graph *g, RtTensor *const *inputs, RtTensor **outputs,
                           DiagList *diags, const struct NumericsCheck *c);

/* Evaluates one node given its source values (used by tests). */
RtTensor *ir_interp_node(const Node *n, RtTensor *const *srcs, DiagList *diags);

#endif
