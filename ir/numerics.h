/* --check-numerics: the first NaN or Inf a run computes, located.
 *
 * A runner given a NumericsCheck (ExecOptions.numerics; the executor keeps
 * its step current) scans every floating-point value an op computes as soon
 * as it exists: the interpreter after each node, the CPU backend after each
 * kernel, re-evaluating a failing kernel's fused ops one by one to find
 * which of them made the value. Leaves, graph inputs and movement ops only
 * pass values on, so the op named is the first that computed a non-finite
 * element (from finite operands, or from an input that already held one:
 * then the message says so). The run stops there:
 *   prog.dfl:5:9: error: --check-numerics: log produced nan at element [3]
 *   of f32[8] (step 12)
 * ("... produced inf in f32[]" for a scalar; no step outside loops).
 * Without a NumericsCheck nothing is scanned. */
#ifndef DFLOW_IR_NUMERICS_H
#define DFLOW_IR_NUMERICS_H

#include "exec.h"
#include "ir.h"

/* Index of the first NaN or Inf among the n values of dtype dt at p; -1 if
 * none or dt is not f32/f64. */
int64_t ir_numerics_find(const void *p, DType dt, int64_t n);
/* Does n compute values (not a leaf, input or movement op)? Only those are
 * scanned. */
bool ir_numerics_computes(const Node *n);
/* The error for node n whose value (data p) holds a non-finite element at
 * flat index i. srcs: its operands' values (NULL when unknown), to say
 * whether one already held a non-finite value. */
void ir_numerics_error(DiagList *d, const Node *n, const void *p, int64_t i, RtTensor *const *srcs,
                       const NumericsCheck *c);
/* The same message without a node (a built executable names a kernel's
 * root op from its image): op named at loc, its value of dtype dt and shape
 * at p; from_operand > 0 says that operand already held a non-finite value. */
void ir_numerics_error_at(DiagList *d, SrcLoc loc, const char *op, DType dt, const Shape *shape,
                          const void *p, int64_t i, int from_operand, const NumericsCheck *c);

#endif
