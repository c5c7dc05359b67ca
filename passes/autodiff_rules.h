/* The derivative table: one GradRule per op, indexed by OpKind.
 *
 * A rule receives the node n and the upstream gradient gout (shape and dtype
 * of n) and writes one gradient per source into gsrc[0..n->nsrc-1] (each with
 * that source's shape and dtype; NULL = no contribution). Rules build their
 * result only with the public ir_* builders, so a gradient is an ordinary
 * graph and can be differentiated again. Ops without a derivative carry the
 * explicit GRAD_NONE marker; the table is total (autodiff_rules.c fails to
 * compile when ops.def gains a row without a rule). */
#ifndef DFLOW_PASSES_AUTODIFF_RULES_H
#define DFLOW_PASSES_AUTODIFF_RULES_H

#include "../ir/ir.h"

typedef enum {
    GRAD_KIND_NONE = 1, /* not differentiable: zero contribution to every source */
    GRAD_KIND_RULE,     /* fn builds the source gradients */
} GradKind;

/* Returns false when a builder failed (its diagnostic is already reported). */
typedef bool (*GradFn)(Graph *g, Node *n, Node *gout, Node **gsrc);

typedef struct {
    GradKind kind;
    GradFn fn; /* GRAD_KIND_RULE only */
} GradRule;

/* Table entries (brace initializers, usable in the static table). */
#define GRAD_NONE                                                                                  \
    { GRAD_KIND_NONE, NULL }
#define GRAD_RULE(f)                                                                               \
    { GRAD_KIND_RULE, (f) }

extern const GradRule pass_grad_rules[OP_COUNT];

#endif
