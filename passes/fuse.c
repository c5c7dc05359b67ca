/* The fusion pass: decides kernels (groups) and materialised values.
 *
 * Sweeps over the node array, no fixpoint. (1) Roles: leaves and index
 * remaps are INLINE, elementwise and random ops tentatively FUSED,
 * reductions, matmuls, scatters, library calls (OPF_CALL: opaque, each its
 * own kernel, operands materialised) and graph outputs ROOT; a matmul operand
 * that is not a BLAS-readable strided view becomes a ROOT (a copy kernel).
 * (1b) A float product whose only reader adds it to (or subtracts it from)
 * a value of its shape is FUSED into that reader, now a ROOT: one BLAS call
 * accumulates onto the value (codegen's KMatmul.accumulate).
 * (2) Backwards over the node array, each inline or fused node collects the
 * set of groups (roots) its value reaches through inline and fused nodes,
 * and the worst way any path reads it: once per element, several times
 * (broadcast expansion, a smaller operand of an elementwise op), or from
 * memory (matmul, gather, scatter, other ops). A fused node read from
 * memory, read several times unless it is one cheap op, or reaching more
 * groups than its op may be recomputed in, becomes a ROOT; the set for a
 * node depends only on nodes after it, so one backward sweep settles all.
 * A broadcast that only repeats a value along trailing axes (a per-row
 * value over its row), read in loop order, is a ROW edge rather than an
 * expansion: the value depends on the outer loops only and is hoisted out
 * of the row loop, so it costs one evaluation per row. The same sweep
 * decides row phases: a row reduction (a ROOT so far) that every group it
 * reaches reads at exactly the group's outer loops (walk_group follows the
 * coordinates down from the group's root) becomes FUSED, a phase of those
 * groups. (2b) Forwards, a fused value whose subtree is too costly to
 * recompute in every group, or per read through a broadcast, becomes a
 * ROOT. Cutting deep expressions follows, then (2c) a last backward sweep
 * re-checks every phase against the groups as they now are (a new root may
 * have split a group) and materialises any that no longer fits.
 * (3) Groups: each root collects the inline and fused nodes above it by a
 * walk that stops at roots and inputs, which become the group's inputs; a
 * fused node shared by several groups is thus computed in each of them. */
#include "fuse.h"

#include <stdlib.h>
#include <string.h>

#include "../ir/op_cases.h"

enum { FUSE_MAX_DEPTH = 256 };

static bool is_inline_op(OpKind op) {
    switch (op) {
    case OP_STOP_GRAD: /* the identity on values */
    case OP_CONST:
    case OP_IOTA:
    case OP_RESHAPE:
    case OP_PERMUTE:
    case OP_BROADCAST:
    case OP_SLICE:
    case OP_PAD:
    case OP_CONCAT:
    case OP_GATHER:
        return true;
    case OP_INPUT:
    case OP_NEG:
    case OP_ABS:
    case OP_SIGN:
    case OP_FLOOR:
    case OP_EXP:
    case OP_LOG:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_ERF:
    case OP_NOT:
    case OP_CAST:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    IR_CASES_REDUCE:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        return false;
    }
    return false; /* not an op */
}

static bool is_compute_op(OpKind op) {
    return ((ir_ops[op].flags & OPF_EW) && op != OP_STOP_GRAD) || op == OP_RNG_UNIFORM ||
           op == OP_RNG_NORMAL || op == OP_FRESH_SEED;
}

/* The pure index remaps a strided view can absorb. */
static bool is_view_op(OpKind op) {
    return op == OP_RESHAPE || op == OP_PERMUTE || op == OP_BROADCAST || op == OP_SLICE;
}

static int64_t numel(const Node *n) {
    return rt_shape_numel(&n->shape);
}

/* How consumer c reads its operand k (= m): each element once (CLEAN),
 * some elements several times through a broadcast or a smaller operand of
 * an elementwise op (EXPAND: m may still be recomputed per read when it is
 * very cheap), or in a way that needs m in memory (HARD). Ordered: the worst
 * edge on any path wins. */
typedef enum { EDGE_CLEAN, EDGE_ROW, EDGE_EXPAND, EDGE_HARD } EdgeKind;

/* Broadcast c of m repeats m's elements along axes that all come after
 * the axes m's elements vary along: in a C-order loop nest each value is
 * needed for a run of consecutive inner iterations. */
static bool row_broadcast(const Node *m, const Node *c) {
    int r = c->shape.rank, lead = r - m->shape.rank, last_kept = -1, first_rep = r;
    for (int i = 0; i < r; i++) {
        int k = i - lead;
        int64_t sd = k < 0 ? 1 : m->shape.dims[k];
        if (c->shape.dims[i] == 1) continue;
        if (sd == 1) {
            if (i < first_rep) first_rep = i;
        } else {
            last_kept = i;
        }
    }
    return first_rep > last_kept;
}

/* Does reading through c change the order in which positions are visited
 * (so a value constant along the inner loops of the consumer may no longer
 * be)? */
static bool reorders(const Node *c) {
    switch (c->op) {
    case OP_PERMUTE:
        for (int i = 0; i < c->shape.rank; i++)
            if (c->attr.permute.perm[i] != i) return true;
        return false;
    case OP_RESHAPE:
        return !rt_shape_eq_squeezed(&c->shape, &c->src[0]->shape);
    case OP_SLICE:
    case OP_PAD:
    case OP_CONCAT:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
        return true;
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    IR_CASES_REDUCE:
    case OP_BROADCAST:
    IR_CASES_RAND:
        if (ir_ops[c->op].flags & OPF_RED) { /* loop order: kept axes, then reduced ones */
            uint32_t ax = c->attr.reduce.axes;
            int r = c->src[0]->shape.rank;
            bool inner = r == 0 || (ax >> (r - 1) & 1) || c->op == OP_ARGMAX;
            return inner && ax != 0 &&
                   (ax >> __builtin_ctz(ax)) != (1u << (r - __builtin_ctz(ax))) - 1;
        }
        return false;
    }
    return true; /* not an op: assume the worst */
}

static EdgeKind edge_kind(const Node *m, const Node *c, int k, bool reorder_after) {
    switch (c->op) {
    case OP_MATMUL:
    IR_CASES_ORDER: /* the runtime routine reads its source from memory */
    IR_CASES_CALL:
        return EDGE_HARD;
    case OP_GATHER:
        return k == 0 || numel(c) > numel(m) ? EDGE_HARD : EDGE_CLEAN;
    case OP_SCATTER_ADD:
        return k == 1 && numel(c->src[0]) > numel(m) ? EDGE_HARD : EDGE_CLEAN;
    case OP_PAD:
        return EDGE_CLEAN; /* padded positions read a clamped element, then discard it */
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    IR_CASES_REDUCE:
    case OP_RESHAPE:
    case OP_PERMUTE:
    case OP_BROADCAST:
    case OP_SLICE:
    case OP_CONCAT:
    IR_CASES_RAND:
        if (numel(c) <= numel(m)) return EDGE_CLEAN;
        if (c->op == OP_BROADCAST && !reorder_after && row_broadcast(m, c)) return EDGE_ROW;
        return c->op == OP_BROADCAST || (ir_ops[c->op].flags & OPF_EW) ? EDGE_EXPAND : EDGE_HARD;
    }
    return EDGE_HARD; /* not an op */
}

/* ---- strided views ------------------------------------------------------------------ */

static void contig(const Shape *s, int64_t *st) {
    int64_t acc = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->dims[i];
    }
}

static bool is_contig(const FuseView *v) {
    int64_t acc = 1;
    for (int i = v->shape.rank - 1; i >= 0; i--) {
        if (v->shape.dims[i] != 1 && v->strides[i] != acc) return false;
        acc *= v->shape.dims[i];
    }
    return true;
}

/* Rewrites v (the view of n's source) into the view of n. */
static bool view_step(const Node *n, FuseView *v) {
    FuseView o = *v;
    int r = n->shape.rank;
    v->shape = n->shape;
    switch (n->op) {
    case OP_PERMUTE:
        for (int i = 0; i < r; i++)
            v->strides[i] = o.strides[n->attr.permute.perm[i]];
        return true;
    case OP_BROADCAST:
        for (int i = 0; i < r; i++) {
            int k = i - (r - o.shape.rank);
            v->strides[i] = (k < 0 || o.shape.dims[k] == 1) ? 0 : o.strides[k];
        }
        return true;
    case OP_SLICE:
        for (int i = 0; i < r; i++) {
            v->offset += n->attr.slice.start[i] * o.strides[i];
            v->strides[i] = o.strides[i] * n->attr.slice.step[i];
        }
        return true;
    case OP_RESHAPE: {
        if (is_contig(&o)) {
            contig(&n->shape, v->strides);
            return true;
        }
        /* Only size-1 axes added or removed: the other axes keep their strides. */
        int k = 0;
        for (int i = 0; i < r; i++) {
            if (n->shape.dims[i] == 1) {
                v->strides[i] = 0;
                continue;
            }
            while (k < o.shape.rank && o.shape.dims[k] == 1)
                k++;
            if (k >= o.shape.rank || o.shape.dims[k] != n->shape.dims[i]) return false;
            v->strides[i] = o.strides[k++];
        }
        while (k < o.shape.rank && o.shape.dims[k] == 1)
            k++;
        return k == o.shape.rank;
    }
    IR_CASES_LEAF:
    IR_CASES_EW_UNARY:
    IR_CASES_EW_BINARY:
    case OP_WHERE:
    IR_CASES_REDUCE:
    case OP_CONCAT:
    case OP_GATHER:
    case OP_SCATTER_ADD:
    case OP_PAD:
    case OP_MATMUL:
    IR_CASES_ORDER:
    IR_CASES_CALL:
    IR_CASES_RAND:
        return false;
    }
    return false; /* not an op */
}

bool pass_fuse_view(const Node *n, const FusionRole *role, FuseView *v) {
    enum { MAXCHAIN = 64 };
    const Node *chain[MAXCHAIN];
    int len = 0;
    const Node *m = n;
    while (role[m->id] == FN_INLINE && is_view_op(m->op)) {
        if (len == MAXCHAIN) return false;
        chain[len++] = m;
        m = m->src[0];
    }
    if (role[m->id] == FN_INLINE || role[m->id] == FN_DEAD) return false;
    memset(v, 0, sizeof *v);
    v->base = m;
    v->shape = m->shape;
    contig(&m->shape, v->strides);
    for (int i = len - 1; i >= 0; i--)
        if (!view_step(chain[i], v)) return false;
    return true;
}

bool pass_fuse_blas_matrix(const FuseView *v, bool *trans, int64_t *ld) {
    int r = v->shape.rank;
    if (r < 2) return false;
    int64_t rows = v->shape.dims[r - 2], cols = v->shape.dims[r - 1];
    int64_t sr = v->strides[r - 2], sc = v->strides[r - 1];
    if (rows == 0 || cols == 0) { /* nothing is read: any leading dimension will do */
        *trans = false;
        *ld = cols > 1 ? cols : 1;
        return true;
    }
    if (cols <= 1) sc = 1; /* a column: its stride never matters */
    if (rows <= 1) sr = cols > 1 ? cols : 1;
    if (sc == 1 && sr >= (cols > 1 ? cols : 1) && sr <= INT32_MAX) {
        *trans = false;
        *ld = sr;
        return true;
    }
    if (sr == 1 && sc >= (rows > 1 ? rows : 1) && sc <= INT32_MAX) {
        *trans = true;
        *ld = sc;
        return true;
    }
    return false;
}

/* ---- recomputation ------------------------------------------------------------------------ */

/* A cheap elementwise value read by several groups is recomputed in each
 * of them rather than written and read back: on a memory-bound kernel a few
 * extra arithmetic ops per element cost less than a store and a reload, and
 * the same ops on the same operands give the same bits. The weights are
 * rough costs per element; RNG and transcendentals are recomputed in at
 * most two groups. */
enum {
    REACH_MAX = 4,         /* most groups a fused value is recomputed in */
    REACH_HEAVY_MAX = 2,   /* ... when it is a transcendental or random op */
    RECOMPUTE_BUDGET = 24, /* subtree weight x extra groups */
    EXPAND_BUDGET = 2      /* subtree weight recomputed per read through a broadcast */
};

/* The groups (by root node id) that a node's value is computed in; n ==
 * REACH_MAX + 1 means "more than REACH_MAX". */
typedef struct {
    uint32_t root[REACH_MAX];
    int n;
} ReachSet;

static void reach_add(ReachSet *s, uint32_t root) {
    if (s->n > REACH_MAX) return;
    for (int k = 0; k < s->n; k++)
        if (s->root[k] == root) return;
    if (s->n == REACH_MAX) {
        s->n++;
        return;
    }
    s->root[s->n++] = root;
}

static void reach_union(ReachSet *s, const ReachSet *o) {
    if (o->n > REACH_MAX) {
        s->n = REACH_MAX + 1;
        return;
    }
    for (int k = 0; k < o->n; k++)
        reach_add(s, o->root[k]);
}

static int op_weight(OpKind op) {
    switch (op) {
    case OP_RNG_UNIFORM:
    case OP_RNG_NORMAL:
    case OP_FRESH_SEED:
        return 8;
    case OP_EXP:
    case OP_LOG:
    case OP_SIN:
    case OP_COS:
    case OP_POW:
        return 4;
    case OP_ERF:
        return 8;   /* a libm call */
    IR_CASES_ORDER: /* never fused: always a kernel of its own */
        return 8;
    case OP_DIV:
    case OP_SQRT:
    case OP_MOD:
        return 2;
    IR_CASES_LEAF:
    case OP_NEG:
    case OP_ABS:
    case OP_SIGN:
    case OP_FLOOR:
    case OP_NOT:
    case OP_CAST:
    case OP_STOP_GRAD:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_MAX:
    case OP_MIN:
    case OP_LT:
    case OP_LE:
    case OP_EQ:
    case OP_NE:
    case OP_AND:
    case OP_OR:
    case OP_WHERE:
    IR_CASES_REDUCE:
    IR_CASES_MOVE:
    case OP_MATMUL:
    IR_CASES_CALL:
        return 1;
    }
    return 1; /* not an op */
}

static int max_readers(OpKind op) {
    return op_weight(op) >= 4 ? REACH_HEAVY_MAX : REACH_MAX;
}

/* ---- row phases ---------------------------------------------------------------------------- */

/* A row reduction becomes a phase of the groups that read it when each of
 * them reads it at its own outer loop variables: then the kernel computes
 * it once per row, right after opening those loops, and every use inside
 * the row is that one value. walk_group follows positions from a group's
 * root down through its fused and inline members, as codegen/schedule.c
 * will evaluate them, tracking for each axis of each node which loop
 * variable its coordinate is (or 0, or something else); at the candidate it
 * checks that the coordinates are the leading loops of the enclosing loop
 * nest (the group's own, or an enclosing phase's: its outer loops and then
 * its row). */
enum {
    PHASE_READERS = 2,        /* most groups a row reduction is computed in */
    PHASE_SERIAL_MAX = 65536, /* elements of a phase, and of its group's loop nest, that may
                                 leave the group without an axis to split across threads */
    PHASE_AXES_MAX = 48,      /* reduced axes of all the phases of one group */
    WALK_BUDGET = 4096,       /* positions one walk may visit */
    D_ZERO = -1,              /* a size-1 axis: coordinate 0 */
    D_OTHER = -2,             /* a coordinate that is not a loop variable */
    MAIN_LOOPS = IR_MAX_RANK  /* loop ids below this are the group's own loops */
};

typedef struct {
    const Node *n;
    bool main; /* in the group's own loop nest, not inside a phase */
    int nscope;
    int desc[IR_MAX_RANK];  /* per axis of n: the loop its coordinate is, D_ZERO or D_OTHER */
    int scope[IR_MAX_RANK]; /* the loops around the position, outermost first */
} WFrame;

typedef struct {
    FusionPlan *p;
    const Node *root, *cand;
    uint32_t *seen, *met; /* per node: stamp of the last visit / of counting its axes */
    uint64_t *seen_key;   /* per node: the frame of that visit, hashed */
    uint32_t stamp;
    WFrame *stack; /* WALK_BUDGET frames */
    int axes;      /* reduced axes of the phases met */
    bool serial;   /* the candidate leaves the group no axis to split */
    bool inner;    /* the candidate met at a row loop of another phase */
} Walk;

static bool is_reduction(const Node *m) {
    return (ir_ops[m->op].flags & OPF_RED) != 0;
}

/* A SUM, MAX or MIN over trailing axes, rows of at most PASS_FUSE_ROW_MAX. */
static bool phase_candidate(const Node *m) {
    if (m->op != OP_SUM && m->op != OP_REDUCE_MAX && m->op != OP_REDUCE_MIN) return false;
    const Node *s = m->src[0];
    int r = s->shape.rank;
    uint32_t ax = m->attr.reduce.axes;
    if ((m->flags & NODE_NO_FUSE) || s->dtype != m->dtype || r == 0 || ax == 0) return false;
    int first = __builtin_ctz(ax);
    if ((ax >> first) != (1u << (r - first)) - 1) return false;
    int64_t row = 1;
    for (int i = first; i < r; i++)
        row *= s->shape.dims[i];
    return row <= PASS_FUSE_ROW_MAX;
}

static uint64_t frame_key(const WFrame *f) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)f->main ^ ((uint64_t)f->nscope << 8);
    for (int i = 0; i < f->n->shape.rank; i++)
        h = (h ^ (uint64_t)(uint32_t)f->desc[i]) * 1099511628211ull;
    for (int i = 0; i < f->nscope; i++)
        h = (h ^ (uint64_t)(uint32_t)f->scope[i] ^ 0x5bd1e995u) * 1099511628211ull;
    return h;
}

static bool walk_push(Walk *w, int *top, const WFrame *f) {
    if (*top >= WALK_BUDGET) return false;
    w->stack[(*top)++] = *f;
    return true;
}

/* A frame for source s of f->n whose coordinates are all D_OTHER. */
static WFrame other_frame(const WFrame *f, const Node *s) {
    WFrame c = *f;
    c.n = s;
    for (int i = 0; i < s->shape.rank; i++)
        c.desc[i] = s->shape.dims[i] == 1 ? D_ZERO : D_OTHER;
    return c;
}

/* The candidate at frame f: are its coordinates the leading loops of the
 * scope (size-1 axes on either side skipped)? */
static bool cand_aligned(Walk *w, const WFrame *f) {
    const Node *m = f->n;
    int j = 0;
    bool split = false;
    for (int k = 0; k < m->shape.rank; k++) {
        if (m->shape.dims[k] == 1) continue;
        while (j < f->nscope && f->scope[j] < 0)
            j++;
        if (j == f->nscope || f->desc[k] < 0 || f->desc[k] != f->scope[j]) return false;
        int a = f->scope[j++];
        if (a >= MAIN_LOOPS) w->inner = true;
        if (a < MAIN_LOOPS && !(is_reduction(w->root) && (w->root->attr.reduce.axes >> a & 1)))
            split = true;
    }
    if (f->main && !split) w->serial = true;
    return true;
}

/* Pushes the frames of f->n's sources; false when the budget is spent. */
static bool walk_sources(Walk *w, const WFrame *f, int *top) {
    const Node *m = f->n;
    int r = m->shape.rank;
    if (is_reduction(m)) { /* a phase decided before: its row loops follow its outer ones */
        const Node *s = m->src[0];
        WFrame c = *f;
        c.n = s;
        c.main = false;
        c.nscope = 0;
        uint32_t ax = m->attr.reduce.axes;
        for (int i = 0, o = 0; i < s->shape.rank; i++) {
            int id;
            if (s->shape.dims[i] == 1)
                id = D_ZERO;
            else if (ax >> i & 1)
                id = MAIN_LOOPS + (int)m->id * IR_MAX_RANK + i;
            else
                id = f->desc[o];
            if (!(ax >> i & 1)) o++;
            c.desc[i] = c.scope[i] = id;
        }
        c.nscope = s->shape.rank;
        if (w->met[m->id] != w->stamp) {
            w->met[m->id] = w->stamp;
            w->axes += __builtin_popcount(ax);
        }
        return walk_push(w, top, &c);
    }
    for (int k = 0; k < m->nsrc; k++) {
        const Node *s = m->src[k];
        WFrame c = other_frame(f, s);
        switch (m->op) {
        case OP_BROADCAST: {
            int lead = r - s->shape.rank;
            for (int i = 0; i < s->shape.rank; i++)
                c.desc[i] = s->shape.dims[i] == 1 ? D_ZERO : f->desc[i + lead];
            break;
        }
        case OP_RESHAPE:
            if (rt_shape_eq_squeezed(&m->shape, &s->shape))
                for (int i = 0, o = 0; i < s->shape.rank; i++) {
                    if (s->shape.dims[i] == 1) continue;
                    while (m->shape.dims[o] == 1)
                        o++;
                    c.desc[i] = f->desc[o++];
                }
            break;
        case OP_PERMUTE:
            for (int i = 0; i < r; i++)
                c.desc[m->attr.permute.perm[i]] = f->desc[i];
            break;
        case OP_SLICE:
            for (int i = 0; i < r; i++)
                if (m->attr.slice.start[i] == 0 && m->attr.slice.step[i] == 1 &&
                    s->shape.dims[i] == m->shape.dims[i])
                    c.desc[i] = f->desc[i];
            break;
        IR_CASES_LEAF:
        IR_CASES_EW_UNARY:
        IR_CASES_EW_BINARY:
        case OP_WHERE:
        IR_CASES_REDUCE:
        case OP_CONCAT:
        case OP_GATHER:
        case OP_SCATTER_ADD:
        case OP_PAD:
        case OP_MATMUL:
        IR_CASES_ORDER:
        IR_CASES_CALL:
        IR_CASES_RAND:
            if (((ir_ops[m->op].flags & OPF_EW) || is_compute_op(m->op)) &&
                rt_shape_eq(&s->shape, &m->shape))
                memcpy(c.desc, f->desc, sizeof c.desc);
            break;
        }
        if (!walk_push(w, top, &c)) return false;
    }
    return true;
}

/* Does group root T read w->cand only at its leading loops (see above)? */
static bool walk_group(Walk *w, const Node *T) {
    if (T->op == OP_MATMUL || T->op == OP_SCATTER_ADD || (ir_ops[T->op].flags & OPF_CALL))
        return false;
    for (int k = 0; k < T->nsrc; k++) /* a product accumulated onto a start value */
        if (T->src[k]->op == OP_MATMUL && w->p->role[T->src[k]->id] == FN_FUSED) return false;
    w->root = T;
    w->stamp++;
    w->axes = 0;
    w->serial = false;
    WFrame f;
    memset(&f, 0, sizeof f);
    f.main = true;
    const Node *space = is_reduction(T) ? T->src[0] : T;
    int r = space->shape.rank, order[IR_MAX_RANK], no = 0;
    if (is_reduction(T)) { /* loop order of codegen: kept axes, then reduced ones */
        uint32_t ax = T->attr.reduce.axes;
        bool inner = r == 0 || (ax >> (r - 1) & 1) || T->op == OP_ARGMAX;
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < r; i++)
                if (!inner ? pass == 0 : (pass == 0) != ((ax >> i & 1) != 0)) order[no++] = i;
    } else {
        for (int i = 0; i < r; i++)
            order[no++] = i;
    }
    f.n = space;
    f.nscope = r;
    for (int i = 0; i < r; i++) {
        f.desc[i] = space->shape.dims[i] == 1 ? D_ZERO : i;
        f.scope[i] = space->shape.dims[order[i]] == 1 ? D_ZERO : order[i];
    }
    int top = 0;
    if (space == T) {
        if (!walk_sources(w, &f, &top)) return false;
    } else if (!walk_push(w, &top, &f)) {
        return false;
    }
    int budget = WALK_BUDGET;
    while (top > 0) {
        WFrame c = w->stack[--top];
        const Node *m = c.n;
        if (m == w->cand) {
            if (!cand_aligned(w, &c)) return false;
            continue;
        }
        FusionRole role = w->p->role[m->id];
        if (role != FN_FUSED && role != FN_INLINE) continue;
        uint64_t key = frame_key(&c);
        if (w->seen[m->id] == w->stamp && w->seen_key[m->id] == key) continue;
        w->seen[m->id] = w->stamp;
        w->seen_key[m->id] = key;
        if (--budget < 0 || !walk_sources(w, &c, &top)) return false;
    }
    return true;
}

/* Can the candidate reduction at node i be a phase of every group in rs? */
static bool phase_fits(Walk *w, const Graph *g, uint32_t i, const ReachSet *rs, EdgeKind bl) {
    const Node *m = g->nodes[i];
    if (bl == EDGE_HARD || rs->n < 1 || rs->n > PHASE_READERS) return false;
    w->cand = m;
    w->inner = false;
    for (int k = 0; k < rs->n; k++) {
        const Node *T = g->nodes[rs->root[k]];
        if (!walk_group(w, T)) return false;
        if (w->axes + __builtin_popcount(m->attr.reduce.axes) > PHASE_AXES_MAX) return false;
        if (w->serial) {
            const Node *space = is_reduction(T) ? T->src[0] : T;
            if (numel(space) > PHASE_SERIAL_MAX || numel(m->src[0]) > PHASE_SERIAL_MAX)
                return false;
        }
    }
    w->p->phase_outer[i] = !w->inner;
    return true;
}

/* ---- the plan ------------------------------------------------------------------------- */

typedef struct {
    uint32_t *start; /* CSR: consumers of node i are edges[start[i] .. start[i+1]) */
    uint32_t *node;
    int *k;
} Uses;

static bool build_uses(const Graph *g, const bool *live, Arena *a, Uses *u) {
    uint32_t n = g->nnodes;
    u->start = arena_alloc(a, sizeof(uint32_t) * (n + 1));
    if (!u->start) return false;
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!live[i]) continue;
        const Node *c = g->nodes[i];
        for (int k = 0; k < c->nsrc; k++)
            u->start[c->src[k]->id + 1]++;
        total += (uint32_t)c->nsrc;
    }
    for (uint32_t i = 0; i < n; i++)
        u->start[i + 1] += u->start[i];
    u->node = arena_alloc(a, sizeof(uint32_t) * (total ? total : 1));
    u->k = arena_alloc(a, sizeof(int) * (total ? total : 1));
    uint32_t *fill = arena_alloc(a, sizeof(uint32_t) * (n ? n : 1));
    if (!u->node || !u->k || !fill) return false;
    for (uint32_t i = 0; i < n; i++) {
        if (!live[i]) continue;
        const Node *c = g->nodes[i];
        for (int k = 0; k < c->nsrc; k++) {
            uint32_t s = c->src[k]->id, at = u->start[s] + fill[s]++;
            u->node[at] = i;
            u->k[at] = k;
        }
    }
    return true;
}

static int cmp_node_id(const void *a, const void *b) {
    uint32_t x = (*(Node *const *)a)->id, y = (*(Node *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* ptrvec_push drops the item when the arena is out of memory; notice it. */
static void push(Arena *a, PtrVec *v, void *item, bool *ok) {
    int before = v->n;
    ptrvec_push(a, v, item);
    if (v->n == before) *ok = false;
}

/* Collects the members and inputs of the group rooted at root. */
static bool collect_group(FusionPlan *p, FusionGroup *gr, int *stamp, Arena *a) {
    PtrVec members = {0}, inputs = {0}, stack = {0}, phases = {0};
    int mark = gr->id + 1;
    bool ok = true;
    push(a, &stack, gr->root, &ok);
    stamp[gr->root->id] = mark;
    while (ok && stack.n > 0) {
        Node *m = stack.items[--stack.n];
        push(a, &members, m, &ok);
        for (int k = 0; k < m->nsrc; k++) {
            Node *s = m->src[k];
            if (stamp[s->id] == mark) continue;
            stamp[s->id] = mark;
            FusionRole r = p->role[s->id];
            push(a, (r == FN_INPUT || r == FN_ROOT) ? &inputs : &stack, s, &ok);
        }
    }
    if (!ok) return false;
    qsort(members.items, (size_t)members.n, sizeof(Node *), cmp_node_id);
    for (int i = 0; i < members.n; i++) {
        Node *m = members.items[i];
        if (m != gr->root && p->role[m->id] == FN_FUSED && is_reduction(m))
            push(a, &phases, m, &ok);
    }
    if (!ok) return false;
    gr->phases = (Node **)phases.items;
    gr->nphases = phases.n;
    gr->nodes = (Node **)members.items;
    gr->nnodes = members.n;
    gr->inputs = (Node **)inputs.items;
    gr->ninputs = inputs.n;
    if (gr->ninputs) qsort(gr->inputs, (size_t)gr->ninputs, sizeof(Node *), cmp_node_id);
    for (int i = 0; i < gr->nnodes; i++) {
        const Node *m = gr->nodes[i];
        if (p->group_of[m->id] < 0) p->group_of[m->id] = gr->id;
        if (m->op == OP_RNG_UNIFORM || m->op == OP_RNG_NORMAL || m->op == OP_FRESH_SEED)
            gr->has_rng = true;
        else if (m != gr->root && p->role[m->id] == FN_FUSED && !is_reduction(m))
            gr->has_ew = true; /* (a product fused into its reader: "ew+matmul") */
    }
    OpKind op = gr->root->op;
    gr->matmul = op == OP_MATMUL ? gr->root : NULL;
    for (int i = 0; i < gr->nnodes && !gr->matmul; i++)
        if (gr->nodes[i]->op == OP_MATMUL && p->role[gr->nodes[i]->id] == FN_FUSED)
            gr->matmul = gr->nodes[i];
    if (ir_ops[op].flags & OPF_RED)
        gr->kind = FG_REDUCE;
    else if (gr->matmul)
        gr->kind = FG_MATMUL;
    else if (op == OP_SCATTER_ADD)
        gr->kind = FG_SCATTER;
    else if (ir_ops[op].flags & OPF_ORDER)
        gr->kind = FG_ORDER;
    else if (ir_ops[op].flags & OPF_CALL)
        gr->kind = FG_CALL;
    else if (is_inline_op(op))
        gr->kind = FG_COPY;
    else
        gr->kind = FG_MAP;
    return true;
}

/* reach[i], blocked[i] and reorder[i] of node i from its consumers (whose
 * roles and values are final). */
static void consumers_of(const FusionPlan *p, const Uses *u, uint32_t i, ReachSet *reach,
                         uint8_t *blocked, bool *reorder) {
    const Graph *g = p->graph;
    ReachSet rs = {0};
    EdgeKind bl = EDGE_CLEAN;
    bool ro = false;
    for (uint32_t e = u->start[i]; e < u->start[i + 1]; e++) {
        uint32_t c = u->node[e];
        const Node *cn = g->nodes[c];
        bool root = p->role[c] == FN_ROOT;
        /* a phase's row loops keep its source's order whatever reads the phase */
        bool cro = reorders(cn) || (!root && !is_reduction(cn) && reorder[c]);
        EdgeKind k = edge_kind(g->nodes[i], cn, u->k[e], cro);
        if (k > bl) bl = k;
        ro = ro || cro;
        if (root) {
            reach_add(&rs, c);
        } else {
            reach_union(&rs, &reach[c]);
            if (blocked[c] > bl) bl = blocked[c];
        }
    }
    reach[i] = rs;
    blocked[i] = (uint8_t)bl;
    reorder[i] = ro;
}

/* The planner's working arrays, one entry per node, shared by its steps. */
typedef struct {
    const Graph *g;
    Arena *a;
    FusionPlan *p;
    uint32_t n;
    bool *live, *is_out, *reorder;
    int *depth, *cost, *stamp;
    ReachSet *reach;
    uint8_t *blocked; /* EdgeKind */
    Walk w;
    Uses u;
} Planner;

static bool plan_alloc(Planner *P, const Graph *g, Arena *a) {
    uint32_t n = g->nnodes;
    size_t cnt = n ? n : 1;
    P->g = g;
    P->a = a;
    P->n = n;
    P->p = arena_alloc(a, sizeof *P->p);
    P->live = arena_alloc(a, cnt);
    P->depth = arena_alloc(a, sizeof(int) * cnt);
    P->cost = arena_alloc(a, sizeof(int) * cnt);
    P->reach = arena_alloc(a, sizeof(ReachSet) * cnt);
    P->blocked = arena_alloc(a, cnt);
    P->stamp = arena_alloc(a, sizeof(int) * cnt);
    P->reorder = arena_alloc(a, cnt);
    P->is_out = arena_alloc(a, cnt);
    P->w = (Walk){.p = P->p};
    P->w.seen = arena_alloc(a, sizeof(uint32_t) * cnt);
    P->w.met = arena_alloc(a, sizeof(uint32_t) * cnt);
    P->w.seen_key = arena_alloc(a, sizeof(uint64_t) * cnt);
    P->w.stack = arena_alloc(a, sizeof(WFrame) * WALK_BUDGET);
    if (!P->p || !P->live || !P->depth || !P->cost || !P->reach || !P->blocked || !P->stamp ||
        !P->reorder || !P->is_out || !P->w.seen || !P->w.met || !P->w.seen_key || !P->w.stack)
        return false;
    FusionPlan *p = P->p;
    p->graph = g;
    p->nnodes = n;
    p->role = arena_alloc(a, sizeof(FusionRole) * cnt);
    p->group_of = arena_alloc(a, sizeof(int) * cnt);
    p->phase_outer = arena_alloc(a, cnt);
    return p->role && p->group_of && p->phase_outer;
}

/* Liveness from the outputs (sources come before their readers), then the
 * reader lists of live nodes. */
static bool mark_live(Planner *P) {
    const Graph *g = P->g;
    for (int j = 0; j < g->noutputs; j++)
        P->live[g->outputs[j]->id] = true;
    for (uint32_t i = P->n; i-- > 0;)
        if (P->live[i])
            for (int k = 0; k < g->nodes[i]->nsrc; k++)
                P->live[g->nodes[i]->src[k]->id] = true;
    return build_uses(g, P->live, P->a, &P->u);
}

/* (1) roles by op; graph outputs are roots */
static void assign_roles(Planner *P) {
    const Graph *g = P->g;
    FusionPlan *p = P->p;
    for (uint32_t i = 0; i < P->n; i++) {
        const Node *m = g->nodes[i];
        p->group_of[i] = -1;
        if (!P->live[i])
            p->role[i] = FN_DEAD;
        else if (m->op == OP_INPUT)
            p->role[i] = FN_INPUT;
        else if (is_inline_op(m->op))
            p->role[i] = FN_INLINE;
        else if (is_compute_op(m->op) && !(m->flags & NODE_NO_FUSE))
            p->role[i] = FN_FUSED;
        else
            p->role[i] = FN_ROOT;
    }
    for (int j = 0; j < g->noutputs; j++) {
        P->is_out[g->outputs[j]->id] = true;
        if (p->role[g->outputs[j]->id] != FN_INPUT) p->role[g->outputs[j]->id] = FN_ROOT;
    }
}

/* (1) a matmul operand BLAS cannot read as a strided matrix, and every
 * operand of a library call (opaque: it reads dense row-major buffers), is
 * copied by a kernel of its own */
static void root_matmul_operands(Planner *P) {
    const Graph *g = P->g;
    FusionPlan *p = P->p;
    for (uint32_t i = 0; i < P->n; i++) {
        const Node *m = g->nodes[i];
        if (P->live[i] && (ir_ops[m->op].flags & OPF_CALL)) /* a call reads whole buffers */
            for (int k = 0; k < m->nsrc; k++)
                if (p->role[m->src[k]->id] == FN_INLINE || p->role[m->src[k]->id] == FN_FUSED)
                    p->role[m->src[k]->id] = FN_ROOT;
        if (!P->live[i] || m->op != OP_MATMUL) continue;
        for (int k = 0; k < 2; k++) {
            const Node *o = m->src[k];
            FuseView v;
            bool trans;
            int64_t ld;
            if (p->role[o->id] == FN_INLINE &&
                !(pass_fuse_view(o, p->role, &v) && pass_fuse_blas_matrix(&v, &trans, &ld)))
                p->role[o->id] = FN_ROOT;
        }
    }
}

/* (1) the source of an order op is read from memory by the runtime routine:
 * a view or leaf there is materialised by a kernel of its own */
static void root_order_sources(Planner *P) {
    FusionPlan *p = P->p;
    for (uint32_t i = 0; i < P->n; i++) {
        const Node *m = P->g->nodes[i];
        if (P->live[i] && (ir_ops[m->op].flags & OPF_ORDER) && p->role[m->src[0]->id] == FN_INLINE)
            p->role[m->src[0]->id] = FN_ROOT;
    }
}

/* (1b) a float product whose only reader is x + product, product + x or
 * x - product (same shape and dtype) is accumulated onto x by its BLAS
 * call: the product is FUSED into that reader, which becomes the root */
static void fuse_accumulating_products(Planner *P) {
    const Graph *g = P->g;
    FusionPlan *p = P->p;
    const Uses *u = &P->u;
    for (uint32_t i = 0; i < P->n; i++) {
        const Node *m = g->nodes[i];
        if (!P->live[i] || m->op != OP_MATMUL || p->role[i] != FN_ROOT || P->is_out[i] ||
            (m->flags & NODE_NO_FUSE) || (m->dtype != DT_F32 && m->dtype != DT_F64) ||
            u->start[i + 1] - u->start[i] != 1)
            continue;
        const Node *c = g->nodes[u->node[u->start[i]]];
        if ((c->op != OP_ADD && c->op != OP_SUB) || c->dtype != m->dtype ||
            !rt_shape_eq(&c->shape, &m->shape) || c->src[0] == c->src[1] ||
            (c->flags & NODE_NO_FUSE) || p->role[c->id] == FN_INPUT)
            continue;
        /* a @ b - c @ d: only the first product accumulates onto the other */
        const Node *x = c->src[0] == m ? c->src[1] : c->src[0];
        if (x->op == OP_MATMUL && p->role[x->id] == FN_FUSED) continue;
        p->role[i] = FN_FUSED;
        p->role[c->id] = FN_ROOT;
    }
}

/* (2) backwards: the groups each inline or fused node reaches, and
 * whether some path to them duplicates elements; row reductions that
 * fit become phases */
static void sweep_reach(Planner *P) {
    const Graph *g = P->g;
    FusionPlan *p = P->p;
    for (uint32_t i = P->n; i-- > 0;) {
        FusionRole r = p->role[i];
        bool cand = r == FN_ROOT && !P->is_out[i] && phase_candidate(g->nodes[i]);
        if (r != FN_INLINE && r != FN_FUSED && !cand) continue;
        consumers_of(p, &P->u, i, P->reach, P->blocked, P->reorder);
        const ReachSet *rs = &P->reach[i];
        EdgeKind bl = (EdgeKind)P->blocked[i];
        if (cand) {
            if (phase_fits(&P->w, g, i, rs, bl)) p->role[i] = FN_FUSED;
            continue;
        }
        OpKind op = g->nodes[i]->op;
        if (r == FN_FUSED && (rs->n == 0 || bl == EDGE_HARD || rs->n > max_readers(op) ||
                              (bl == EDGE_EXPAND && op_weight(op) > 1)))
            p->role[i] = FN_ROOT;
    }
}

/* (2b) forwards: recomputing a shared value costs the weight of its
 * fused subtree once per extra group; past RECOMPUTE_BUDGET it is
 * materialised instead. Roles above node i are final when it is
 * visited, and a new root only shrinks what its sources reach, so the
 * checks made before it stay conservative. */
static void root_costly(Planner *P) {
    const Graph *g = P->g;
    FusionPlan *p = P->p;
    int *cost = P->cost;
    for (uint32_t i = 0; i < P->n; i++) {
        FusionRole r = p->role[i];
        if (r != FN_INLINE && r != FN_FUSED) {
            cost[i] = 0;
            continue;
        }
        const Node *m = g->nodes[i];
        if (is_reduction(m)) { /* a phase: once per row, whoever reads it */
            cost[i] = 0;
            continue;
        }
        int c = r == FN_FUSED ? op_weight(m->op) : 0;
        for (int k = 0; k < m->nsrc && c <= RECOMPUTE_BUDGET; k++)
            c += cost[m->src[k]->id];
        if (c > RECOMPUTE_BUDGET) c = RECOMPUTE_BUDGET + 1;
        if (r == FN_FUSED && ((P->reach[i].n > 1 && c * (P->reach[i].n - 1) > RECOMPUTE_BUDGET) ||
                              (P->blocked[i] == EDGE_EXPAND && c > EXPAND_BUDGET))) {
            p->role[i] = FN_ROOT;
            c = 0;
        }
        cost[i] = c;
    }
}

/* Bound the depth of fused expressions (the scheduler and emitters
 * recurse over them): past FUSE_MAX_DEPTH a node is materialised. Making
 * a node a root only shortens what follows, so one forward pass does. */
static void root_deep(Planner *P) {
    const Graph *g = P->g;
    FusionPlan *p = P->p;
    int *depth = P->depth;
    for (uint32_t i = 0; i < P->n; i++) {
        const Node *m = g->nodes[i];
        int d = 0;
        for (int k = 0; k < m->nsrc; k++) {
            FusionRole r = p->role[m->src[k]->id];
            if ((r == FN_FUSED || r == FN_INLINE) && depth[m->src[k]->id] > d)
                d = depth[m->src[k]->id];
        }
        if (d >= FUSE_MAX_DEPTH && p->role[i] == FN_FUSED) p->role[i] = FN_ROOT;
        depth[i] =
            p->role[i] == FN_ROOT ? 0 : d + 1; /* the depth of the fused expression at node i */
    }
}

/* (2c) backwards again: a phase must still fit the groups it now
 * reaches (a root made above may have split one); else it is
 * materialised. A node's reach depends only on nodes after it. */
static void recheck_phases(Planner *P) {
    const Graph *g = P->g;
    FusionPlan *p = P->p;
    for (uint32_t i = P->n; i-- > 0;) {
        FusionRole r = p->role[i];
        if (r != FN_INLINE && r != FN_FUSED) continue;
        consumers_of(p, &P->u, i, P->reach, P->blocked, P->reorder);
        if (r == FN_FUSED && is_reduction(g->nodes[i]) &&
            !phase_fits(&P->w, g, i, &P->reach[i], (EdgeKind)P->blocked[i]))
            p->role[i] = FN_ROOT;
    }
}

/* (3) groups, in root order */
static bool build_groups(Planner *P) {
    FusionPlan *p = P->p;
    int nroots = 0;
    for (uint32_t i = 0; i < P->n; i++)
        nroots += p->role[i] == FN_ROOT;
    p->groups = arena_alloc(P->a, sizeof(FusionGroup) * (size_t)(nroots ? nroots : 1));
    if (!p->groups) return false;
    for (uint32_t i = 0; i < P->n; i++) {
        if (p->role[i] != FN_ROOT) continue;
        FusionGroup *gr = &p->groups[p->ngroups];
        gr->id = p->ngroups++;
        gr->root = P->g->nodes[i];
        if (!collect_group(p, gr, P->stamp, P->a)) return false;
    }
    return true;
}

FusionPlan *pass_fuse_plan(const Graph *g, Arena *a) {
    if (!g) return NULL;
    Planner P;
    if (!plan_alloc(&P, g, a) || !mark_live(&P)) goto oom;
    assign_roles(&P);
    root_matmul_operands(&P);
    root_order_sources(&P);
    fuse_accumulating_products(&P);
    sweep_reach(&P);
    root_costly(&P);
    root_deep(&P);
    recheck_phases(&P);
    if (!build_groups(&P)) goto oom;
    return P.p;
oom:
    diag_error(g->diags, srcloc_none(), "out of memory in the fusion pass");
    return NULL;
}

/* ---- printing ------------------------------------------------------------------------------ */

const char *pass_fuse_label(const FusionGroup *gr, char *buf, size_t n) {
    const char *tail = "ew";
    switch (gr->kind) {
    case FG_MAP:
        tail = NULL;
        break;
    case FG_REDUCE:
        tail = "reduce";
        break;
    case FG_MATMUL:
        tail = "matmul";
        break;
    case FG_SCATTER:
        tail = "scatter";
        break;
    case FG_COPY:
        tail = "copy";
        break;
    case FG_ORDER:
    case FG_CALL:
        tail = ir_op_name(gr->root->op);
        break;
    }
    const char *rows = gr->nphases ? "rows+" : "";
    if (gr->kind == FG_MAP) {
        bool root_rng = gr->root->op == OP_RNG_UNIFORM || gr->root->op == OP_RNG_NORMAL;
        bool ew = gr->has_ew || !root_rng;
        snprintf(buf, n, "%s%s%s%s", rows, gr->has_rng ? "rng" : "", gr->has_rng && ew ? "+" : "",
                 ew ? "ew" : "");
    } else {
        snprintf(buf, n, "%s%s%s%s", rows, gr->has_rng ? "rng+" : "", gr->has_ew ? "ew+" : "",
                 tail);
    }
    return buf;
}

static const char *type_str(const Node *n, char *buf, size_t len) {
    char sh[80];
    snprintf(buf, len, "%s%s", rt_dtype_name(n->dtype), rt_shape_str(&n->shape, sh, sizeof sh));
    return buf;
}

void pass_fuse_print(const FusionPlan *p, FILE *out) {
    for (int i = 0; i < p->ngroups; i++) {
        const FusionGroup *gr = &p->groups[i];
        char lb[32], ty[96];
        fprintf(out, "  kernel k%d (%s) %s <-", gr->id, pass_fuse_label(gr, lb, sizeof lb),
                type_str(gr->root, ty, sizeof ty));
        if (!gr->ninputs) fputs(" ()", out);
        for (int k = 0; k < gr->ninputs; k++)
            fprintf(out, "%s %%%u", k ? "," : "", gr->inputs[k]->id);
        fputs(" :", out);
        for (int k = 0; k < gr->nnodes; k++)
            fprintf(out, " %%%u", gr->nodes[k]->id);
        fputc('\n', out);
        for (int k = 0; k < gr->nphases; k++) {
            const Node *ph = gr->phases[k], *src = ph->src[0];
            fprintf(out, "%s%%%u %s axes={", k ? ", then " : "    per row: ", ph->id,
                    ir_op_name(ph->op));
            for (int i = 0, first = 1; i < src->shape.rank; i++)
                if (ph->attr.reduce.axes >> i & 1) {
                    fprintf(out, first ? "%d" : ",%d", i);
                    first = 0;
                }
            fprintf(out, "} of %s", type_str(src, ty, sizeof ty));
        }
        if (gr->nphases) fputc('\n', out);
    }
}

void pass_fuse_print_graph(const Graph *g, FILE *out) {
    ir_print(g, out);
    Arena *a = arena_new();
    if (!a) return;
    FusionPlan *p = pass_fuse_plan(g, a);
    if (p) {
        fprintf(out, "kernels %s: %d\n", g->name ? g->name : "?", p->ngroups);
        pass_fuse_print(p, out);
    }
    arena_free(a);
}
