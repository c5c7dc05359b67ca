/* The linear-algebra ops' test references: graphs of one call with each
 * result an output, well-conditioned inputs, and the identities the
 * results must satisfy (A X = B, L L^T = A, A inv(A) = I, Q R = A,
 * U diag(S) Vt = A, V diag(w) V^T = A, orthonormal factors, triangles,
 * orders), checked in double with Criterion expectations. */
#ifndef DFLOW_TESTS_LINALG_REF_H
#define DFLOW_TESTS_LINALG_REF_H

#include "ir/ir.h"
#include "runtime/tensor.h"

/* Appends inputs a (shape sa) and, for solve, b (sb), one call of op and
 * its results as outputs to g; returns the call node. */
Node *th_la_graph(Graph *g, OpKind op, DType dt, Shape sa, Shape sb, SrcLoc loc);
/* An input for op: symmetric positive definite (M M^T / n + I) for
 * cholesky and eigh, random with a dominant diagonal for solve and inv,
 * plain random for det, slogdet, qr, svd and solve's right side (which = 1). */
RtTensor *th_la_input(OpKind op, int which, DType dt, Shape s, uint64_t *rng);
/* Checks the identities of op's results res[] for inputs a, b: to 1e-5 of
 * the inputs' largest entry in f32, 1e-12 in f64. `what` labels failures. */
void th_la_verify(const char *what, OpKind op, const RtTensor *a, const RtTensor *b,
                  RtTensor *const *res);

#endif
