/* The fusion pass: decides kernels (groups) and materialised values.
 *
 * Sweeps over the node array, no fixpoint. (1) Roles: leaves and index
 * remaps are INLINE, elementwise and random ops tentatively FUSED,
 * reductions, matmuls, scatters and graph outputs ROOT; a matmul operand
 * that is not a BLAS-readable strided view becomes a ROOT (a copy kernel).
 * (2) Backwards over the node array, each inline or fused node collects the
 * set of groups (roots) its value reaches through inline and fused nodes,
 * and the worst way any path reads it: once per element, several times
 * (broadcast expansion, a smaller operand of an elementwise op), or from
 * memory (matmul, gather, scatter, other ops). A fused node read from
 * memory, read several times unless it is one cheap op, or reaching more
 * groups than its op may be recomputed in, becomes a ROOT; the set for a
 * node depends only on nodes after it, so one backward sweep settles all.
 * (2b) Forwards, a fused value whose subtree is too costly to recompute in
 * every group, or per read through a broadcast, becomes a ROOT.
 * (3) Groups: each root collects the inline and fused nodes above it by a
 * walk that stops at roots and inputs, which become the group's inputs; a
 * fused node shared by several groups is thus computed in each of them. */
#include "fuse.h"

#include <stdlib.h>
#include <string.h>

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
    default:
        return false;
    }
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
typedef enum { EDGE_CLEAN, EDGE_EXPAND, EDGE_HARD } EdgeKind;

static EdgeKind edge_kind(const Node *m, const Node *c, int k) {
    switch (c->op) {
    case OP_MATMUL:
        return EDGE_HARD;
    case OP_GATHER:
        return k == 0 || numel(c) > numel(m) ? EDGE_HARD : EDGE_CLEAN;
    case OP_SCATTER_ADD:
        return k == 1 && numel(c->src[0]) > numel(m) ? EDGE_HARD : EDGE_CLEAN;
    case OP_PAD:
        return EDGE_CLEAN; /* padded positions read a clamped element, then discard it */
    default:
        if (numel(c) <= numel(m)) return EDGE_CLEAN;
        return c->op == OP_BROADCAST || (ir_ops[c->op].flags & OPF_EW) ? EDGE_EXPAND : EDGE_HARD;
    }
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
    default:
        return false;
    }
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
    case OP_DIV:
    case OP_SQRT:
    case OP_MOD:
        return 2;
    default:
        return 1;
    }
}

static int max_readers(OpKind op) {
    return op_weight(op) >= 4 ? REACH_HEAVY_MAX : REACH_MAX;
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
    PtrVec members = {0}, inputs = {0}, stack = {0};
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
    gr->nodes = (Node **)members.items;
    gr->nnodes = members.n;
    gr->inputs = (Node **)inputs.items;
    gr->ninputs = inputs.n;
    qsort(gr->nodes, (size_t)gr->nnodes, sizeof(Node *), cmp_node_id);
    if (gr->ninputs) qsort(gr->inputs, (size_t)gr->ninputs, sizeof(Node *), cmp_node_id);
    for (int i = 0; i < gr->nnodes; i++) {
        const Node *m = gr->nodes[i];
        if (p->group_of[m->id] < 0) p->group_of[m->id] = gr->id;
        if (m->op == OP_RNG_UNIFORM || m->op == OP_RNG_NORMAL || m->op == OP_FRESH_SEED)
            gr->has_rng = true;
        else if (m != gr->root && p->role[m->id] == FN_FUSED)
            gr->has_ew = true;
    }
    OpKind op = gr->root->op;
    if (ir_ops[op].flags & OPF_RED)
        gr->kind = FG_REDUCE;
    else if (op == OP_MATMUL)
        gr->kind = FG_MATMUL;
    else if (op == OP_SCATTER_ADD)
        gr->kind = FG_SCATTER;
    else if (is_inline_op(op))
        gr->kind = FG_COPY;
    else
        gr->kind = FG_MAP;
    return true;
}

FusionPlan *pass_fuse_plan(const Graph *g, Arena *a) {
    if (!g) return NULL;
    uint32_t n = g->nnodes;
    size_t cnt = n ? n : 1;
    FusionPlan *p = arena_alloc(a, sizeof *p);
    bool *live = arena_alloc(a, cnt);
    int *depth = arena_alloc(a, sizeof(int) * cnt);
    int *cost = arena_alloc(a, sizeof(int) * cnt);
    ReachSet *reach = arena_alloc(a, sizeof(ReachSet) * cnt);
    uint8_t *blocked = arena_alloc(a, cnt); /* EdgeKind */
    int *stamp = arena_alloc(a, sizeof(int) * cnt);
    Uses u;
    if (!p || !live || !depth || !cost || !reach || !blocked || !stamp) goto oom;
    p->graph = g;
    p->nnodes = n;
    p->role = arena_alloc(a, sizeof(FusionRole) * cnt);
    p->group_of = arena_alloc(a, sizeof(int) * cnt);
    if (!p->role || !p->group_of) goto oom;

    for (int j = 0; j < g->noutputs; j++)
        live[g->outputs[j]->id] = true;
    for (uint32_t i = n; i-- > 0;)
        if (live[i])
            for (int k = 0; k < g->nodes[i]->nsrc; k++)
                live[g->nodes[i]->src[k]->id] = true;
    if (!build_uses(g, live, a, &u)) goto oom;

    /* (1) roles */
    for (uint32_t i = 0; i < n; i++) {
        const Node *m = g->nodes[i];
        p->group_of[i] = -1;
        if (!live[i])
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
    for (int j = 0; j < g->noutputs; j++)
        if (p->role[g->outputs[j]->id] != FN_INPUT) p->role[g->outputs[j]->id] = FN_ROOT;
    for (uint32_t i = 0; i < n; i++) {
        const Node *m = g->nodes[i];
        if (!live[i] || m->op != OP_MATMUL) continue;
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

    /* (2) backwards: the groups each inline or fused node reaches, and
     * whether some path to them duplicates elements */
    for (uint32_t i = n; i-- > 0;) {
        FusionRole r = p->role[i];
        if (r != FN_INLINE && r != FN_FUSED) continue;
        ReachSet rs = {0};
        EdgeKind bl = EDGE_CLEAN;
        for (uint32_t e = u.start[i]; e < u.start[i + 1]; e++) {
            uint32_t c = u.node[e];
            EdgeKind k = edge_kind(g->nodes[i], g->nodes[c], u.k[e]);
            if (k > bl) bl = k;
            if (p->role[c] == FN_ROOT) {
                reach_add(&rs, c);
            } else {
                reach_union(&rs, &reach[c]);
                if (blocked[c] > bl) bl = blocked[c];
            }
        }
        reach[i] = rs;
        blocked[i] = (uint8_t)bl;
        OpKind op = g->nodes[i]->op;
        if (r == FN_FUSED && (rs.n == 0 || bl == EDGE_HARD || rs.n > max_readers(op) ||
                              (bl == EDGE_EXPAND && op_weight(op) > 1)))
            p->role[i] = FN_ROOT;
    }

    /* (2b) forwards: recomputing a shared value costs the weight of its
     * fused subtree once per extra group; past RECOMPUTE_BUDGET it is
     * materialised instead. Roles above node i are final when it is
     * visited, and a new root only shrinks what its sources reach, so the
     * checks made before it stay conservative. */
    for (uint32_t i = 0; i < n; i++) {
        FusionRole r = p->role[i];
        if (r != FN_INLINE && r != FN_FUSED) {
            cost[i] = 0;
            continue;
        }
        const Node *m = g->nodes[i];
        int c = r == FN_FUSED ? op_weight(m->op) : 0;
        for (int k = 0; k < m->nsrc && c <= RECOMPUTE_BUDGET; k++)
            c += cost[m->src[k]->id];
        if (c > RECOMPUTE_BUDGET) c = RECOMPUTE_BUDGET + 1;
        if (r == FN_FUSED && ((reach[i].n > 1 && c * (reach[i].n - 1) > RECOMPUTE_BUDGET) ||
                              (blocked[i] == EDGE_EXPAND && c > EXPAND_BUDGET))) {
            p->role[i] = FN_ROOT;
            c = 0;
        }
        cost[i] = c;
    }

    /* Bound the depth of fused expressions (the scheduler and emitters
     * recurse over them): past FUSE_MAX_DEPTH a node is materialised. Making
     * a node a root only shortens what follows, so one forward pass does. */
    for (uint32_t i = 0; i < n; i++) {
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

    /* (3) groups, in root order */
    int nroots = 0;
    for (uint32_t i = 0; i < n; i++)
        nroots += p->role[i] == FN_ROOT;
    p->groups = arena_alloc(a, sizeof(FusionGroup) * (size_t)(nroots ? nroots : 1));
    if (!p->groups) goto oom;
    for (uint32_t i = 0; i < n; i++) {
        if (p->role[i] != FN_ROOT) continue;
        FusionGroup *gr = &p->groups[p->ngroups];
        gr->id = p->ngroups++;
        gr->root = g->nodes[i];
        if (!collect_group(p, gr, stamp, a)) goto oom;
    }
    return p;
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
    }
    if (gr->kind == FG_MAP) {
        bool root_rng = gr->root->op == OP_RNG_UNIFORM || gr->root->op == OP_RNG_NORMAL;
        bool ew = gr->has_ew || !root_rng;
        snprintf(buf, n, "%s%s%s", gr->has_rng ? "rng" : "", gr->has_rng && ew ? "+" : "",
                 ew ? "ew" : "");
    } else {
        snprintf(buf, n, "%s%s%s", gr->has_rng ? "rng+" : "", gr->has_ew ? "ew+" : "", tail);
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
