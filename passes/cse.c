/* Common-subexpression elimination by hashing.
 *
 * Every op is pure (random ops are functions of seed, stream and index), so
 * two nodes with the same op, dtype, shape, sources and attributes compute
 * the same tensor and one can stand for both (flags must match too, so a
 * NO_FUSE mark is never lost). While pass_rebuild walks the
 * graph in order, each node, its sources already merged, is looked up in an
 * open-addressing table over the new graph; a hit replaces it, a miss copies
 * it and enters the copy. Attributes are compared field by field for the
 * op's family (the Attr union may hold stale bytes in unused members), and
 * constants by their bit pattern (so -0.0 and 0.0, or two NaNs, stay apart).
 * Inputs are never merged. */
#include <stdlib.h>
#include <string.h>

#include "../ir/op_cases.h"
#include "pass.h"

typedef struct {
    Node **slots;
    size_t mask;
} CseTable;

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

static uint64_t dbits(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* Mixes in the attribute fields that matter for the op. */
static uint64_t hash_attr(uint64_t h, const Node *n) {
    const Attr *a = &n->attr;
    int r = n->shape.rank;
    switch (n->op) {
    case OP_INPUT:
        h = mix(h, (uint64_t)a->input.index);
        break;
    case OP_CONST:
        h = mix(mix(h, dbits(a->constant.value)), (uint64_t)a->constant.ivalue);
        break;
    case OP_IOTA:
        h = mix(h, (uint64_t)a->iota.axis);
        break;
    case OP_SUM:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
    case OP_ARGMAX:
        h = mix(h, a->reduce.axes);
        break;
    case OP_PERMUTE:
        for (int k = 0; k < r; k++)
            h = mix(h, (uint64_t)a->permute.perm[k]);
        break;
    case OP_SLICE:
        for (int k = 0; k < r; k++)
            h = mix(mix(h, (uint64_t)a->slice.start[k]), (uint64_t)a->slice.step[k]);
        break;
    case OP_CONCAT:
        h = mix(h, (uint64_t)a->concat.axis);
        break;
    case OP_PAD:
        for (int k = 0; k < r; k++)
            h = mix(mix(h, (uint64_t)a->pad.lo[k]), (uint64_t)a->pad.hi[k]);
        h = mix(h, dbits(a->pad.value));
        break;
    case OP_RNG_UNIFORM:
    case OP_RNG_NORMAL:
    case OP_FRESH_SEED:
        h = mix(mix(h, a->rng.stream), a->rng.k);
        break;
    IR_CASES_ORDER:
        h = mix(mix(h, (uint64_t)a->order.axis), (uint64_t)a->order.flag);
        break;
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    case OP_RESHAPE:
    case OP_BROADCAST:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_CALL:
        break;
    }
    return h;
}

static bool attr_eq(const Node *x, const Node *y) {
    const Attr *a = &x->attr, *b = &y->attr;
    int r = x->shape.rank;
    switch (x->op) {
    case OP_INPUT:
        return a->input.index == b->input.index;
    case OP_CONST:
        return dbits(a->constant.value) == dbits(b->constant.value) &&
               a->constant.ivalue == b->constant.ivalue;
    case OP_IOTA:
        return a->iota.axis == b->iota.axis;
    case OP_SUM:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
    case OP_ARGMAX:
        return a->reduce.axes == b->reduce.axes;
    case OP_PERMUTE:
        for (int k = 0; k < r; k++)
            if (a->permute.perm[k] != b->permute.perm[k]) return false;
        return true;
    case OP_SLICE:
        for (int k = 0; k < r; k++)
            if (a->slice.start[k] != b->slice.start[k] || a->slice.step[k] != b->slice.step[k])
                return false;
        return true;
    case OP_CONCAT:
        return a->concat.axis == b->concat.axis;
    case OP_PAD:
        for (int k = 0; k < r; k++)
            if (a->pad.lo[k] != b->pad.lo[k] || a->pad.hi[k] != b->pad.hi[k]) return false;
        return dbits(a->pad.value) == dbits(b->pad.value);
    case OP_RNG_UNIFORM:
    case OP_RNG_NORMAL:
    case OP_FRESH_SEED:
        return a->rng.stream == b->rng.stream && a->rng.k == b->rng.k;
    IR_CASES_ORDER:
        return a->order.axis == b->order.axis && a->order.flag == b->order.flag;
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    case OP_RESHAPE:
    case OP_BROADCAST:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_CALL:
        return true; /* no attributes */
    }
    return false; /* not an op: never merged */
}

/* Hash of a node as it would be created: op, type, source ids, attrs. */
static uint64_t hash_node(const Node *n, Node *const *src) {
    uint64_t h = mix(0, (uint64_t)n->op);
    h = mix(h, (uint64_t)n->dtype);
    h = mix(h, (uint64_t)n->shape.rank);
    for (int k = 0; k < n->shape.rank; k++)
        h = mix(h, (uint64_t)n->shape.dims[k]);
    h = mix(h, (uint64_t)n->nsrc);
    for (int s = 0; s < n->nsrc; s++)
        h = mix(h, src[s]->id);
    return hash_attr(h, n);
}

static bool same_node(const Node *cand, const Node *n, Node *const *src) {
    if (cand->op != n->op || cand->dtype != n->dtype || cand->nsrc != n->nsrc ||
        cand->flags != n->flags || !rt_shape_eq(&cand->shape, &n->shape))
        return false;
    for (int s = 0; s < n->nsrc; s++)
        if (cand->src[s] != src[s]) return false;
    return attr_eq(cand, n);
}

static Node *cse_node(void *ctx, Graph *ng, Node *old, Node **src) {
    CseTable *t = ctx;
    size_t i = (size_t)hash_node(old, src) & t->mask;
    for (; t->slots[i]; i = (i + 1) & t->mask)
        if (same_node(t->slots[i], old, src)) return t->slots[i];
    Node *copy = pass_copy_node(ng, old, src);
    t->slots[i] = copy;
    return copy;
}

bool pass_cse(Graph *g, DiagList *d) {
    size_t cap = 16;
    while (cap < 2 * (size_t)g->nnodes)
        cap *= 2;
    CseTable t = {calloc(cap, sizeof(Node *)), cap - 1};
    if (!t.slots) {
        diag_error(d, srcloc_none(), "out of memory in pass cse");
        return false;
    }
    bool ok = pass_rebuild(g, NULL, cse_node, &t, "cse");
    free(t.slots);
    return ok;
}
