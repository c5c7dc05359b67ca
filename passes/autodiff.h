/* Reverse-mode automatic differentiation, written in IR ops.
 *
 * pass_grad appends to g the nodes computing the gradient of y with respect
 * to each wrt[i]; gradients are ordinary nodes, so differentiating them again
 * gives second derivatives (Hessian-vector products, AWD, CDEP). Each op's rule
 * lives in autodiff_rules.c, a table indexed by OpKind. */
#ifndef DFLOW_PASSES_AUTODIFF_H
#define DFLOW_PASSES_AUTODIFF_H

#include "../ir/ir.h"

/* y: any node; seed: cotangent with y's shape and dtype, or NULL for a scalar
 * y (seed = 1). out[i] gets dy/dwrt[i] (shape and dtype of wrt[i]; zeros when
 * y does not depend on it; integer/bool wrt get NULL with an error). */
bool pass_grad(Graph *g, Node *y, Node *seed, Node *const *wrt, int nwrt, Node **out);

/* H v for scalar y and vector/tensor w: grad(dot(grad(y, w), v), w). */
Node *pass_hvp(Graph *g, Node *y, Node *w, Node *v, SrcLoc loc);
/* Exact trace of the Hessian of scalar y w.r.t. w: one HVP per element of w
 * (use for small w; d of them). */
Node *pass_hessian_trace(Graph *g, Node *y, Node *w, SrcLoc loc);

#endif
